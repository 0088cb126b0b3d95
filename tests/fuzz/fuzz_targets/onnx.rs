//! Any bytes as an ONNX model: a blob or an error naming the node, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = edgernn_tools::import::onnx::import_onnx(std::path::Path::new("fuzz.onnx"), data);
});
