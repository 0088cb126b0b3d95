//! `Model::step_batch` against `Model::step`: for every stream, after every step, the state and
//! the output must be bit for bit what stepping that stream alone gives (NaN compared as NaN),
//! in every mode, for SimpleRNN, LSTM, GRU (both reset variants), stacked layers,
//! Normalization and Dense heads (softmax included), and for stream counts around the tile
//! size. Streams start from different states and move between the two calls.

use edgernn::format::{Activation, Cell, QuantMode};
use edgernn::{Model, RunError};
use edgernn_tools::builder::{KerasWeights, ModelBuilder, RecurrentSpec};
use edgernn_tools::quantize::{quantize, Options};

struct Rng(u64);

impl Rng {
    fn f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32() * scale).collect()
    }
}

fn gates(cell: Cell) -> usize {
    match cell {
        Cell::SimpleRnn => 1,
        Cell::Lstm => 4,
        Cell::Gru { .. } => 3,
    }
}

/// Normalization, two recurrent layers of `cell` (the first returning sequences), and a Dense
/// head with `head` activation.
fn model_blob(
    cell: Cell,
    features: usize,
    units: usize,
    head: Activation,
    rng: &mut Rng,
) -> Vec<u8> {
    let mut b = ModelBuilder::new(features);
    let mean = rng.vec(features, 0.5);
    let variance: Vec<f32> = (0..features).map(|i| 0.5 + i as f32 * 0.25).collect();
    b.normalization(&mean, &variance).unwrap();
    let mut width = features;
    for layer in 0..2 {
        let rows = gates(cell) * units;
        let bias_len = match cell {
            Cell::Gru { reset_after: true } => 2 * rows,
            _ => rows,
        };
        let w = KerasWeights {
            kernel: rng.vec(width * rows, 1.0 / (width as f32).sqrt()),
            recurrent_kernel: rng.vec(units * rows, 1.0 / (units as f32).sqrt()),
            bias: Some(rng.vec(bias_len, 0.5)),
        };
        let spec = RecurrentSpec {
            cell,
            units,
            activation: Activation::Tanh,
            recurrent_activation: if layer == 0 {
                Activation::Sigmoid
            } else {
                Activation::HardSigmoid
            },
            return_sequences: layer == 0,
            go_backwards: false,
            bidirectional: None,
        };
        b.recurrent(spec, &w, None).unwrap();
        width = units;
    }
    let out = 3;
    let bias = rng.vec(out, 0.2);
    b.dense(out, head, &rng.vec(units * out, 0.3), Some(&bias))
        .unwrap();
    b.build().unwrap()
}

fn blob_in(mode: QuantMode, f32_blob: &[u8], features: usize, rng: &mut Rng) -> Vec<u8> {
    if mode == QuantMode::F32 {
        return f32_blob.to_vec();
    }
    let windows: Vec<Vec<f32>> = (0..8).map(|_| rng.vec(12 * features, 2.0)).collect();
    quantize(
        f32_blob,
        &windows,
        Options {
            mode,
            percentile: None,
        },
    )
    .unwrap()
    .0
}

fn same(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Steps `streams` streams for a few steps both ways and compares every bit.
fn compare<W: edgernn::model::Word + PartialEq + core::fmt::Debug>(
    model: &Model<'_>,
    streams: usize,
    rng: &mut Rng,
    what: &str,
) {
    let (f, sl, ow) = (
        model.input_features(),
        model.state_len(),
        model.output_width(),
    );
    let mut batch_states = vec![W::default(); streams * sl];
    for s in 0..streams {
        model.reset_state(&mut batch_states[s * sl..(s + 1) * sl]);
    }
    let mut single_states = batch_states.clone();
    let mut scratch = vec![W::default(); model.batch_scratch_len(streams)];
    // Dirty scratch: nothing may depend on what it held.
    for v in scratch.iter_mut() {
        *v = single_states.first().copied().unwrap_or_default();
    }
    let mut step_scratch = vec![W::default(); model.step_scratch_len()];
    let mut out = vec![f32::NAN; streams * ow];
    let mut single_out = vec![0.0f32; ow];
    for t in 0..5 {
        // Different histories: stream s skips the batch for its first s % 3 steps (stepped
        // alone instead, in both runs), so streams also move between the calls.
        let mut x = rng.vec(streams * f, 2.0);
        if t == 3 && streams > 2 {
            x[f] = f32::NAN;
            x[2 * f] = 1e30;
        }
        for s in 0..streams {
            if t < s % 3 {
                let xs = &x[s * f..(s + 1) * f];
                model
                    .step(
                        xs,
                        &mut batch_states[s * sl..(s + 1) * sl],
                        &mut step_scratch,
                        &mut single_out,
                    )
                    .unwrap();
            }
        }
        model
            .step_batch(streams, &x, &mut batch_states, &mut scratch, &mut out)
            .unwrap();
        for s in 0..streams {
            let xs = &x[s * f..(s + 1) * f];
            let st = &mut single_states[s * sl..(s + 1) * sl];
            if t < s % 3 {
                model
                    .step(xs, st, &mut step_scratch, &mut single_out)
                    .unwrap();
            }
            model
                .step(xs, st, &mut step_scratch, &mut single_out)
                .unwrap();
            for (i, (&a, &b)) in out[s * ow..(s + 1) * ow]
                .iter()
                .zip(&single_out)
                .enumerate()
            {
                assert!(same(a, b), "{what}, {streams} streams, step {t}, stream {s}, output {i}: batch {a:e}, step {b:e}");
            }
        }
        for (i, (a, b)) in batch_states.iter().zip(&single_states).enumerate() {
            let (a, b) = (*a, *b);
            let equal = a == b || {
                // f32 NaN != NaN: compare through the model's dequantized view.
                let (mut x, mut y) = ([a], [b]);
                let (p, q) = (model.state_value(&mut x, 0), model.state_value(&mut y, 0));
                matches!((p, q), (Some(p), Some(q)) if same(p, q))
            };
            assert!(equal, "{what}, {streams} streams, step {t}: state word {i} (stream {}): batch {a:?}, step {b:?}", i / sl.max(1));
        }
    }
}

const CELLS: [Cell; 4] = [
    Cell::SimpleRnn,
    Cell::Lstm,
    Cell::Gru { reset_after: true },
    Cell::Gru { reset_after: false },
];
const MODES: [QuantMode; 4] = [
    QuantMode::F32,
    QuantMode::Int8Weights,
    QuantMode::Int8,
    QuantMode::Int16,
];

#[test]
fn step_batch_equals_step_for_every_stream() {
    let mut rng = Rng(0x0DDB_1A5E_5BAD_5EED);
    for cell in CELLS {
        for (features, units, head) in [(8, 32, Activation::Linear), (5, 13, Activation::Softmax)] {
            let f32_blob = model_blob(cell, features, units, head, &mut rng);
            for mode in MODES {
                let blob = blob_in(mode, &f32_blob, features, &mut rng);
                let model = Model::from_bytes(&blob).unwrap();
                for streams in [1usize, 7, 32, 33, 70] {
                    let what = format!("{cell:?} I={features} H={units} {head:?} {mode:?}");
                    if model.uses_integer_buffers() {
                        compare::<i32>(&model, streams, &mut rng, &what);
                    } else {
                        compare::<f32>(&model, streams, &mut rng, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn step_batch_checks_every_slice_and_leaves_state_alone() {
    let mut rng = Rng(42);
    let blob = model_blob(Cell::Lstm, 4, 6, Activation::Linear, &mut rng);
    let model = Model::from_bytes(&blob).unwrap();
    let (f, sl, ow) = (
        model.input_features(),
        model.state_len(),
        model.output_width(),
    );
    let n = 5;
    let x = rng.vec(n * f, 1.0);
    let mut states = rng.vec(n * sl, 0.5);
    let before = states.clone();
    let mut scratch = vec![0.0f32; model.batch_scratch_len(n)];
    let mut out = vec![0.0f32; n * ow];
    let short = model.batch_scratch_len(n) - 1;
    let cases: [(&str, RunError); 4] = [
        (
            "input",
            model
                .step_batch(n, &x[1..], &mut states, &mut scratch, &mut out)
                .unwrap_err(),
        ),
        (
            "state",
            model
                .step_batch(n, &x, &mut states[1..], &mut scratch, &mut out)
                .unwrap_err(),
        ),
        (
            "scratch",
            model
                .step_batch(n, &x, &mut states, &mut scratch[..short], &mut out)
                .unwrap_err(),
        ),
        (
            "output",
            model
                .step_batch(n, &x, &mut states, &mut scratch, &mut out[1..])
                .unwrap_err(),
        ),
    ];
    assert!(
        matches!(cases[0].1, RunError::InputLength { .. }),
        "{cases:?}"
    );
    assert!(
        matches!(cases[1].1, RunError::StateLength { .. }),
        "{cases:?}"
    );
    assert!(
        matches!(cases[2].1, RunError::ScratchTooSmall { .. }),
        "{cases:?}"
    );
    assert!(
        matches!(cases[3].1, RunError::OutputTooSmall { .. }),
        "{cases:?}"
    );
    assert_eq!(states, before);
    // Wrong buffer type, overflowing stream counts, no streams.
    let mut istates = vec![0i32; n * sl];
    let mut iscratch = vec![0i32; scratch.len()];
    assert_eq!(
        model.step_batch(n, &x, &mut istates, &mut iscratch, &mut out),
        Err(RunError::BufferType)
    );
    assert_eq!(
        model.step_batch(usize::MAX, &x, &mut states, &mut scratch, &mut out),
        Err(RunError::TooLarge)
    );
    assert_eq!(model.batch_scratch_len(0), 0);
    model
        .step_batch::<f32>(0, &[], &mut [], &mut [], &mut [])
        .unwrap();
    // Scratch stops growing at the tile size.
    assert_eq!(model.batch_scratch_len(10_000), model.batch_scratch_len(64));
}
