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
