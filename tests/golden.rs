//! Every golden case: builder -> blob -> load -> run, in sequence and streaming mode.

mod common;

use common::{aligned, all_cases, scaled_error, TOLERANCE};
use edgernn::{Model, RunError};

#[test]
fn textbook_case_is_exact() {
    let case = common::keras_case(&common::golden_dir().join("simplernn_relu_textbook.json"));
    let blob = aligned(&case.blob);
    let model = Model::from_bytes(blob.bytes()).unwrap();
    let mut state = vec![0.0; model.state_len()];
    let mut scratch = vec![0.0; model.sequence_scratch_len(4).unwrap()];
    let mut out = vec![0.0; model.output_len(4).unwrap()];
    model
        .run_sequence(&case.input, &mut state, &mut scratch, &mut out)
        .unwrap();
    assert_eq!(out, [69.0, 0.0, 170.0, 23.0]);
}

#[test]
fn every_golden_case_matches_in_both_modes() {
    let cases = all_cases();
    assert_eq!(
        cases.len(),
        18,
        "14 Keras and 4 PyTorch cases are committed"
    );
    println!("| case | seq max err | stream max err | state B | step scratch B | seq scratch B (T) | blob B |");
    for case in &cases {
        let blob = aligned(&case.blob);
        let model = Model::from_bytes(blob.bytes()).unwrap();
        let t = case.steps;
        let in_len = t * case.features;
        let out_len = model.output_len(t).unwrap();
        assert_eq!(case.expected.len(), case.batch * out_len, "{}", case.name);
        let mut seq_err = 0.0f32;
        let mut stream_err = 0.0f32;
        for b in 0..case.batch {
            let x = &case.input[b * in_len..(b + 1) * in_len];
            let expected = &case.expected[b * out_len..(b + 1) * out_len];

            let mut state = vec![0.0; model.state_len()];
            let mut scratch = vec![0.0; model.sequence_scratch_len(t).unwrap()];
            let mut out = vec![0.0; out_len];
            model
                .run_sequence(x, &mut state, &mut scratch, &mut out)
                .unwrap();
            let err = scaled_error(&out, expected);
            assert!(
                err < TOLERANCE,
                "{} batch {b}: sequence error {err}",
                case.name
            );
            seq_err = seq_err.max(err);
            if let Some(final_state) = &case.final_state {
                let err = scaled_error(&state, &final_state[b]);
                assert!(
                    err < TOLERANCE,
                    "{} batch {b}: final state error {err}",
                    case.name
                );
            }

            let mut stream_state = vec![0.0; model.state_len()];
            let mut step_scratch = vec![0.0; model.step_scratch_len()];
            let mut y = vec![0.0; model.output_width()];
            if !model.is_streamable() {
                assert_eq!(
                    model.step(
                        &x[..case.features],
                        &mut stream_state,
                        &mut step_scratch,
                        &mut y
                    ),
                    Err(RunError::NotStreamable),
                    "{}",
                    case.name
                );
                assert!(stream_state.iter().all(|&v| v == 0.0));
                continue;
            }
            let w = model.output_width();
            for (k, xt) in x.chunks(case.features).enumerate() {
                model
                    .step(xt, &mut stream_state, &mut step_scratch, &mut y)
                    .unwrap();
                let rows = if model.output_is_sequence() {
                    Some((&out[k * w..(k + 1) * w], &expected[k * w..(k + 1) * w]))
                } else if k + 1 == t {
                    Some((&out[..], expected))
                } else {
                    None
                };
                if let Some((seq_row, exp_row)) = rows {
                    stream_err = stream_err.max(scaled_error(&y, exp_row));
                    let bits = |s: &[f32]| s.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&y),
                        bits(seq_row),
                        "{} step {k}: stream != sequence",
                        case.name
                    );
                }
            }
            assert_eq!(
                stream_state.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                state.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{}: final states differ",
                case.name
            );
        }
        let stream = if model.is_streamable() {
            format!("{stream_err:.2e}")
        } else {
            "n/a (NotStreamable)".to_string()
        };
        println!(
            "| {} | {seq_err:.2e} | {stream} | {} | {} | {} ({t}) | {} |",
            case.name,
            model.state_bytes(),
            model.step_scratch_len() * 4,
            model.sequence_scratch_len(t).unwrap() * 4,
            model.blob_len()
        );
    }
}

#[test]
fn layerwise_path_equals_streaming_path() {
    for case in all_cases() {
        let blob = aligned(&case.blob);
        let model = Model::from_bytes(blob.bytes()).unwrap();
        if !model.is_streamable() {
            continue;
        }
        let t = case.steps;
        let x = &case.input[..t * case.features];
        let out_len = model.output_len(t).unwrap();
        let run = |layerwise: bool| {
            let mut state = vec![0.0; model.state_len()];
            let mut scratch =
                vec![f32::NAN; 4 * model.sequence_scratch_len(t).unwrap() + 4 * t * 64];
            let mut out = vec![0.0; out_len];
            if layerwise {
                model
                    .run_layerwise(x, &mut state, &mut scratch, &mut out)
                    .unwrap();
            } else {
                model
                    .run_sequence(x, &mut state, &mut scratch, &mut out)
                    .unwrap();
            }
            (
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                state.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(run(true), run(false), "{}", case.name);
    }
}

/// The demo model in `tools/demo` is the golden `lstm_dense_softmax3_u16_f3` case; the
/// committed blob must be what the builder writes today. `EDGERNN_BLESS=1` rewrites it.
#[test]
fn committed_demo_blob_is_current() {
    let case = common::keras_case(&common::golden_dir().join("lstm_dense_softmax3_u16_f3.json"));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/lstm_classifier.ern");
    if std::env::var_os("EDGERNN_BLESS").is_some() {
        std::fs::write(&path, &case.blob).unwrap();
    }
    let committed = std::fs::read(&path).expect("tools/demo/lstm_classifier.ern");
    assert!(
        committed == case.blob,
        "stale demo blob: rerun with EDGERNN_BLESS=1"
    );
}
