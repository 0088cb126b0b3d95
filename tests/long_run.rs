//! Long runs: millions of steps of an LSTM on random input, in f32 and in the integer modes, with
//! no NaN, no overflow and a bounded state. Ten million steps in release (`cargo test --release
//! -p edgernn --test long_run`, as CI runs it), fifty thousand in debug builds; streaming
//! must still equal one sequence call over the whole run, bit for bit.

use std::path::Path;

use edgernn::model::Word;
use edgernn::Model;

const STEPS: usize = if cfg!(debug_assertions) {
    50_000
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

/// `STEPS` random samples (uniform in [-4, 4], with rare spikes to ±1000), row-major.
fn inputs(features: usize) -> Vec<f32> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    (0..STEPS * features)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let u = (seed >> 40) as f32 / (1u64 << 24) as f32;
            if seed.is_multiple_of(10_007) {
                1000.0 * (u - 0.5).signum()
            } else {
                8.0 * u - 4.0
            }
        })
        .collect()
}

/// Streams the samples one step at a time, failing on any non-finite value; then runs the
/// same window as one sequence call and requires the same final output and state, bit for
/// bit. Returns the largest |output| and |state| seen.
fn run<W: Word>(model: &Model<'_>) -> (f32, f32) {
    let xs = inputs(model.input_features());
    let mut state = vec![W::default(); model.state_len()];
    model.reset_state(&mut state);
    let mut scratch = vec![W::default(); model.step_scratch_len()];
    let mut out = vec![0f32; model.output_width()];
    let (mut max_out, mut max_state) = (0f32, 0f32);
    for (step, x) in xs.chunks_exact(model.input_features()).enumerate() {
        model.step(x, &mut state, &mut scratch, &mut out).unwrap();
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
    let mut seq_state = vec![W::default(); model.state_len()];
    model.reset_state(&mut seq_state);
    let mut seq_scratch = vec![W::default(); model.sequence_scratch_len(STEPS).unwrap()];
    let mut seq_out = vec![0f32; model.output_len(STEPS).unwrap()];
    model
        .run_sequence(&xs, &mut seq_state, &mut seq_scratch, &mut seq_out)
        .unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let last = &seq_out[seq_out.len() - out.len()..];
    assert_eq!(
        bits(&out),
        bits(last),
        "streaming != sequence after {STEPS} steps"
    );
    for i in 0..state.len() {
        let (a, b) = (
            model.state_value(&mut state, i).unwrap(),
            model.state_value(&mut seq_state, i).unwrap(),
        );
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "state {i} differs after {STEPS} steps"
        );
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
