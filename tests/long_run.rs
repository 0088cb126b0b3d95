//! Long runs: millions of steps of an LSTM on random input, in f32 and in the integer modes, with
//! no NaN, no overflow and a bounded state. Ten million steps in release (`cargo test --release
//! -p edgernn --test long_run`, as CI runs it), a hundred thousand in debug builds.

use std::path::Path;

use edgernn::model::Word;
use edgernn::Model;

const STEPS: usize = if cfg!(debug_assertions) {
    100_000
} else {
    10_000_000
};

/// A blob file placed at a 16-byte boundary.
fn load(path: &Path) -> (Vec<u8>, usize, usize) {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut buffer = vec![0u8; raw.len() + 15];
    let start = buffer.as_ptr().align_offset(16);
    buffer[start..start + raw.len()].copy_from_slice(&raw);
    (buffer, start, raw.len())
}

/// Streams `STEPS` random samples (uniform in [-4, 4], with rare spikes to ±1000) and returns
/// the largest |output| and |state| seen, failing on any non-finite value.
fn run<W: Word>(model: &Model<'_>) -> (f32, f32) {
    let mut state = vec![W::default(); model.state_len()];
    model.reset_state(&mut state);
    let mut scratch = vec![W::default(); model.step_scratch_len()];
    let mut out = vec![0f32; model.output_width()];
    let mut x = vec![0f32; model.input_features()];
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let (mut max_out, mut max_state) = (0f32, 0f32);
    for step in 0..STEPS {
        for v in x.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let u = (seed >> 40) as f32 / (1u64 << 24) as f32;
            *v = if seed % 10_007 == 0 {
                1000.0 * (u - 0.5).signum()
            } else {
                8.0 * u - 4.0
            };
        }
        model.step(&x, &mut state, &mut scratch, &mut out).unwrap();
        for &y in &out {
            assert!(y.is_finite(), "step {step}: output {y}");
            max_out = max_out.max(y.abs());
        }
        if step % 1000 == 0 || step + 1 == STEPS {
            for i in 0..state.len() {
                let s = model.state_value(&mut state, i).unwrap();
                assert!(s.is_finite(), "step {step}: state {i} = {s}");
                max_state = max_state.max(s.abs());
            }
        }
    }
    (max_out, max_state)
}

#[test]
fn lstm_streams_millions_of_steps_in_every_mode() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let blobs = [
        root.join("tools/demo/lstm_classifier.ern"),
        root.join("tests/vectors/lstm_dense_softmax3_u16_f3.int8.ern"),
        root.join("tests/vectors/lstm_dense_softmax3_u16_f3.int16.ern"),
    ];
    for path in &blobs {
        let (buffer, start, len) = load(path);
        let model = Model::from_bytes(&buffer[start..start + len]).unwrap();
        let (max_out, max_state) = if model.uses_integer_buffers() {
            run::<i32>(&model)
        } else {
            run::<f32>(&model)
        };
        println!(
            "{}: {STEPS} steps, max |output| {max_out}, max |state| {max_state}",
            path.file_name().unwrap().to_string_lossy()
        );
        // Softmax outputs stay probabilities; h = o * tanh(c) stays in [-1, 1]; an LSTM cell
        // grows by at most 1 per step, but with forget gates below 1 it settles far lower.
        assert!(max_out <= 1.0 + 1e-6, "{path:?}: {max_out}");
        assert!(max_state < 1e3, "{path:?}: state blew up to {max_state}");
    }
}
