//! Any bytes as a blob: loading never panics, and a model that loads runs without panicking.
//! Under `cfg(fuzzing)` the CRC check is bypassed so mutations reach the validation behind it.
#![no_main]

use edgernn::Model;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let blob = edgernn_tools::blob_file::AlignedBlob::from_bytes(data);
    let Ok(model) = Model::from_bytes(blob.bytes()) else {
        return;
    };
    let features = model.input_features();
    if features > 64 || model.state_len() > 1 << 14 {
        return;
    }
    let xs: Vec<f32> = (0..3 * features).map(|i| (i % 7) as f32 - 3.0).collect();
    let _ = edgernn_tools::runner::run_window(&model, &xs, edgernn_tools::runner::Feed::Sequence);
    let _ = edgernn_tools::runner::run_window(&model, &xs, edgernn_tools::runner::Feed::Stream);
});
