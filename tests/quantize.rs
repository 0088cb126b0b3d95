//! Quantized modes on every golden model, calibrated on its own input: error targets against
//! the f32 model, streaming equal to the sequence call bit for bit, and blob sizes.

mod common;

use common::{aligned, all_cases};
use edgernn::format::QuantMode;
use edgernn::Model;
use edgernn_tools::quantize::{quantize, Options};
use edgernn_tools::runner::{run_window, Feed};

/// Max |quantized - f32| / f32 output range, per mode (the targets).
const TARGETS: [(QuantMode, &str, f64); 3] = [
    (QuantMode::Int8Weights, "int8-weights", 0.01),
    (QuantMode::Int16, "int16", 0.005),
    (QuantMode::Int8, "int8", 0.03),
];

/// Calibration and evaluation windows: every contiguous sub-window of at least half the
/// length of each golden input, so that models with one output per window are judged on more
/// than two numbers.
fn windows(case: &common::GoldenCase) -> Vec<Vec<f32>> {
    let (t, f) = (case.steps, case.features);
    let min_len = (t / 2).max(1);
    let mut out = Vec::new();
    for seq in case.input.chunks(t * f) {
        for start in 0..t {
            for end in start + min_len..=t {
                out.push(seq[start * f..end * f].to_vec());
            }
        }
    }
    out
}

#[test]
fn every_golden_model_meets_the_error_targets_in_every_mode() {
    println!("| case | params | f32 B | mode | blob B | size | max err / range | rmse |");
    let mut failures = Vec::new();
    for case in all_cases() {
        let f32_model_blob = aligned(&case.blob);
        let params = Model::from_bytes(f32_model_blob.bytes())
            .unwrap()
            .parameters();
        for (mode, name, target) in TARGETS {
            let (blob, report) = quantize(
                &case.blob,
                &windows(&case),
                Options {
                    mode,
                    percentile: None,
                },
            )
            .unwrap_or_else(|e| panic!("{} {name}: {e:#}", case.name));
            let err = report.output.max_rel_range;
            println!(
                "| {} | {params} | {} | {name} | {} | {:.1}% | {:.3}% | {:.2e} |",
                case.name,
                report.f32_bytes,
                report.quantized_bytes,
                100.0 * report.quantized_bytes as f64 / report.f32_bytes as f64,
                100.0 * err,
                report.output.rmse
            );
            if err > target {
                failures.push(format!(
                    "{} {name}: {:.3}% > {:.1}%",
                    case.name,
                    100.0 * err,
                    100.0 * target
                ));
            }
            // Streaming equals the sequence call bit for bit in every mode.
            let q = aligned(&blob);
            let model = Model::from_bytes(q.bytes()).unwrap();
            assert_eq!(model.mode(), mode);
            if model.is_streamable() {
                for w in windows(&case) {
                    let seq = run_window(&model, &w, Feed::Sequence).unwrap();
                    let stream = run_window(&model, &w, Feed::Stream).unwrap();
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&seq), bits(&stream), "{} {name}", case.name);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A model of the size gateways and M4/M7 parts run (2 x LSTM(64) on 8 features, Dense(4)),
/// with seeded random weights and inputs: where the per-row parameters are amortised, the
/// quantized blobs fall to about a quarter of the f32 blob.
#[test]
fn larger_model_sizes_and_errors() {
    use edgernn::format::{Activation, Cell};
    use edgernn_tools::builder::{KerasWeights, ModelBuilder, RecurrentSpec};
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let (features, units) = (8usize, 64usize);
    let mut b = ModelBuilder::new(features);
    let mut width = features;
    for layer in 0..2 {
        let rows = 4 * units;
        let w = KerasWeights {
            kernel: (0..width * rows)
                .map(|_| next() / (width as f32).sqrt())
                .collect(),
            recurrent_kernel: (0..units * rows)
                .map(|_| next() / (units as f32).sqrt())
                .collect(),
            bias: Some((0..rows).map(|_| next() * 0.5).collect()),
        };
        let spec = RecurrentSpec {
            cell: Cell::Lstm,
            units,
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            return_sequences: layer == 0,
            go_backwards: false,
            bidirectional: None,
        };
        b.recurrent(spec, &w, None).unwrap();
        width = units;
    }
    let kernel: Vec<f32> = (0..units * 4).map(|_| next() / 8.0).collect();
    b.dense(4, Activation::Linear, &kernel, Some(&[0.1, -0.2, 0.0, 0.3]))
        .unwrap();
    let blob = b.build().unwrap();
    let windows: Vec<Vec<f32>> = (0..32)
        .map(|_| (0..20 * features).map(|_| next() * 2.0).collect())
        .collect();
    for (mode, name, target) in TARGETS {
        let (_, report) = quantize(
            &blob,
            &windows,
            Options {
                mode,
                percentile: None,
            },
        )
        .unwrap();
        let size = report.quantized_bytes as f64 / report.f32_bytes as f64;
        println!(
            "| 2xLSTM(64) f8 + Dense(4) | {name} | {} -> {} B | {:.1}% | {:.3}% |",
            report.f32_bytes,
            report.quantized_bytes,
            100.0 * size,
            100.0 * report.output.max_rel_range
        );
        assert!(report.output.max_rel_range <= target, "{name}");
        assert!(size <= 0.30, "{name}: {:.1}%", 100.0 * size);
    }
}

/// Committed integer test vectors (blob, input, expected output bits): the host checks them
/// now, firmware checks the same files later, so every target must produce these bits.
/// `EDGERNN_BLESS=1` regenerates them.
#[test]
fn committed_integer_vectors_are_bit_exact() {
    use edgernn_tools::io::{npy, Array};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors");
    let bless = std::env::var_os("EDGERNN_BLESS").is_some();
    let cases = [
        "torch_lstm_i4_h16_l2_seq",
        "gru_reset_before_u8_f3_seq",
        "bigru_sum_u8_f3_seq",
        "lstm_dense_softmax3_u16_f3",
    ];
    for case in all_cases()
        .into_iter()
        .filter(|c| cases.contains(&c.name.as_str()))
    {
        for (mode, name) in [(QuantMode::Int8, "int8"), (QuantMode::Int16, "int16")] {
            let stem = format!("{}.{name}", case.name);
            let blob_path = dir.join(format!("{stem}.ern"));
            let input = Array::new(
                vec![case.batch, case.steps, case.features],
                case.input.clone(),
            )
            .unwrap();
            if bless {
                // Calibration runs the f32 model, whose last bits depend on the host's f32
                // kernel, so the quantized blob is fixed here once and committed.
                let options = Options {
                    mode,
                    percentile: None,
                };
                let (blob, _) = quantize(&case.blob, &windows(&case), options).unwrap();
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&blob_path, &blob).unwrap();
                npy::write_npy(&dir.join(format!("{}.input.npy", case.name)), &input).unwrap();
            }
            let blob = std::fs::read(&blob_path).unwrap();
            let q = aligned(&blob);
            let model = Model::from_bytes(q.bytes()).unwrap();
            let n = case.steps * case.features;
            let mut outputs = Vec::new();
            for w in case.input.chunks(n) {
                outputs.extend(run_window(&model, w, Feed::Sequence).unwrap());
            }
            let expected = Array::new(vec![outputs.len()], outputs).unwrap();
            if bless {
                npy::write_npy(&dir.join(format!("{stem}.expected.npy")), &expected).unwrap();
            }
            let want = npy::read_npy(&dir.join(format!("{stem}.expected.npy"))).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&want.data), bits(&expected.data), "{stem}");
        }
    }
}

mod integer_properties {
    use super::*;
    use edgernn::format::{Activation, Cell, Merge};
    use edgernn_tools::builder::{KerasWeights, ModelBuilder, RecurrentSpec};
    use proptest::prelude::*;

    const CELLS: [Cell; 4] = [
        Cell::SimpleRnn,
        Cell::Lstm,
        Cell::Gru { reset_after: true },
        Cell::Gru { reset_after: false },
    ];
    const ACTS: [Activation; 3] = [
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::HardSigmoid,
    ];
    const DENSE: [Activation; 4] = [
        Activation::Linear,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Softmax,
    ];

    fn rng(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// A random float model: `layers` = (cell, units, activation, merge) and a Dense head.
    fn model(
        features: usize,
        layers: &[(usize, usize, usize, Option<usize>)],
        dense: (usize, usize),
        seed: u64,
    ) -> Vec<u8> {
        let mut s = seed;
        let mut b = ModelBuilder::new(features);
        let mut width = features;
        for (i, &(cell, units, act, merge)) in layers.iter().enumerate() {
            let cell = CELLS[cell];
            let rows = cell.gates() * units;
            let mut dir = || KerasWeights {
                kernel: (0..width * rows).map(|_| rng(&mut s)).collect(),
                recurrent_kernel: (0..units * rows).map(|_| rng(&mut s) * 0.5).collect(),
                bias: Some(
                    (0..if matches!(cell, Cell::Gru { reset_after: true }) {
                        2 * rows
                    } else {
                        rows
                    })
                        .map(|_| rng(&mut s) * 0.3)
                        .collect(),
                ),
            };
            let fwd = dir();
            let merge = merge.map(|m| [Merge::Concat, Merge::Sum, Merge::Ave, Merge::Mul][m]);
            let bwd = merge.map(|_| dir());
            let activation = if cell == Cell::SimpleRnn && act == 2 {
                Activation::Relu
            } else {
                ACTS[act]
            };
            b.recurrent(
                RecurrentSpec {
                    cell,
                    units,
                    activation,
                    recurrent_activation: Activation::Sigmoid,
                    return_sequences: i + 1 < layers.len(),
                    go_backwards: false,
                    bidirectional: merge,
                },
                &fwd,
                bwd.as_ref(),
            )
            .unwrap();
            width = if merge == Some(Merge::Concat) {
                2 * units
            } else {
                units
            };
        }
        let kernel: Vec<f32> = (0..width * dense.0).map(|_| rng(&mut s)).collect();
        let bias: Vec<f32> = (0..dense.0).map(|_| rng(&mut s)).collect();
        b.dense(dense.0, DENSE[dense.1], &kernel, Some(&bias))
            .unwrap();
        b.build().unwrap()
    }

    fn layer() -> impl Strategy<Value = (usize, usize, usize, Option<usize>)> {
        (
            0..4usize,
            1..7usize,
            0..3usize,
            prop::option::weighted(0.25, 0..4usize),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// In the integer modes, streaming equals the sequence call and a saved/restored i32
        /// state continues identically, bit for bit.
        #[test]
        fn integer_streaming_and_restore_are_exact(
            features in 1..5usize,
            layers in prop::collection::vec(layer(), 1..3),
            dense in (1..4usize, 0..4usize),
            seed in any::<u64>(),
            int16 in any::<bool>(),
            cut in 1..9usize,
        ) {
            let f32_blob = model(features, &layers, dense, seed);
            let mut s = seed ^ 0xABCD;
            let windows: Vec<Vec<f32>> = (0..4).map(|_| (0..10 * features).map(|_| rng(&mut s) * 3.0).collect()).collect();
            let mode = if int16 { QuantMode::Int16 } else { QuantMode::Int8 };
            let (blob, report) = quantize(&f32_blob, &windows, Options { mode, percentile: None }).unwrap();
            prop_assert!(report.output.max_abs.is_finite());
            let q = aligned(&blob);
            let model = Model::from_bytes(q.bytes()).unwrap();
            let xs = &windows[0];
            let seq = run_window(&model, xs, Feed::Sequence).unwrap();
            if !model.is_streamable() {
                return Ok(());
            }
            let per_step = run_window(&model, xs, Feed::PerStep).unwrap();
            let w = model.output_width();
            prop_assert_eq!(&per_step[per_step.len() - w..], &seq[seq.len() - w..]);

            // Save after `cut` steps, restore into a fresh buffer, continue.
            let mut state = vec![0i32; model.state_len()];
            model.reset_state(&mut state);
            let mut scratch = vec![0i32; model.step_scratch_len()];
            let mut y = vec![0.0; w];
            let steps: Vec<&[f32]> = xs.chunks(features).collect();
            for x in &steps[..cut] {
                model.step(x, &mut state, &mut scratch, &mut y).unwrap();
            }
            let saved = state.clone();
            let mut restored = saved.clone();
            let mut dirty = vec![i32::MIN; model.step_scratch_len()];
            for x in &steps[cut..] {
                model.step(x, &mut restored, &mut dirty, &mut y).unwrap();
            }
            prop_assert_eq!(y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), seq[seq.len() - w..].iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            // Wrong buffer type is an error, not a wrong answer.
            let mut fstate = vec![0.0f32; model.state_len()];
            let mut fscratch = vec![0.0f32; model.step_scratch_len()];
            prop_assert_eq!(model.step(steps[0], &mut fstate, &mut fscratch, &mut y), Err(edgernn::RunError::BufferType));
        }
    }
}
