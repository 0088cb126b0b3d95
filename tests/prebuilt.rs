//! Models loaded at build time (`edgernn export --plan`): every generated `PLAN` is, value for
//! value, the model the loader builds from the same blob, runs to the same bits, and the
//! committed files are what the exporter writes today.
//!
//! The fixtures in `tests/prebuilt/` hold one of each kind of plan value (f32, Int8Weights,
//! int8, int16 and packed weights; every layer type; Bidirectional merges; `go_backwards`);
//! the firmware examples' model files add the detector and vocabulary records and the int16
//! Embedding table. `EDGERNN_BLESS=1 cargo test -p edgernn-tools --test prebuilt` rewrites the
//! fixtures' `.rs` files from their blobs (`tests/prebuilt/make-blobs.sh` makes the blobs).

use std::path::{Path, PathBuf};

use edgernn::Model;
use edgernn_tools::blob_file::AlignedBlob;
use edgernn_tools::cli::export::{run, ExportOptions};

macro_rules! plans {
    ($($name:ident => $path:literal,)*) => {
        $(
            #[path = $path]
            #[allow(dead_code, clippy::all)]
            mod $name;
        )*

        /// Each generated file: its name, its blob and its `PLAN`.
        fn generated() -> Vec<(&'static str, &'static [u8], &'static dyn Planned)> {
            vec![$((stringify!($name), &$name::MODEL.0[..], &$name::PLAN)),*]
        }
    };
}

plans! {
    bilstm_concat_u8_f3_seq => "prebuilt/bilstm_concat_u8_f3_seq.rs",
    lstm_go_backwards_u8_f3_seq => "prebuilt/lstm_go_backwards_u8_f3_seq.rs",
    embedding_lstm_softmax4_v20 => "prebuilt/embedding_lstm_softmax4_v20.rs",
    seq2vec2seq_lstm_u16_rep5 => "prebuilt/seq2vec2seq_lstm_u16_rep5.rs",
    normalization_gru_dense1_f3 => "prebuilt/normalization_gru_dense1_f3.rs",
    simplernn_dropout_simplernn_sigmoid => "prebuilt/simplernn_dropout_simplernn_sigmoid.rs",
    simplernn_int8_weights => "prebuilt/simplernn_int8_weights.rs",
    bigru_sum_int8 => "prebuilt/bigru_sum_int8.rs",
    gru_reset_before_int16 => "prebuilt/gru_reset_before_int16.rs",
    lstm_softmax_int8_packed => "prebuilt/lstm_softmax_int8_packed.rs",
    machine_temperature_int8 => "../firmware-examples/models/machine_temperature_int8.rs",
    devils_dictionary_int8 => "../firmware-examples/models/devils_dictionary_int8.rs",
    machine_temperature_lstm32_int8 => "../firmware-examples/models/machine_temperature_lstm32_int8.rs",
}

/// A `PLAN` of any layer capacity.
trait Planned: Sync {
    fn debug(&self) -> String;
    fn run(&self, window: &[f32], steps: usize) -> Vec<u32>;
}

impl<const L: usize> Planned for Model<'static, L> {
    fn debug(&self) -> String {
        format!("{self:?}")
    }

    fn run(&self, window: &[f32], steps: usize) -> Vec<u32> {
        run_bits(self, window, steps)
    }
}

/// The output bits of a sequence call on `window` (`steps` steps).
fn run_bits<const L: usize>(model: &Model<'_, L>, window: &[f32], steps: usize) -> Vec<u32> {
    let scratch_len = model.sequence_scratch_len(steps).unwrap();
    let mut out = vec![0.0f32; model.output_len(steps).unwrap()];
    if model.uses_integer_buffers() {
        let mut state = vec![0i32; model.state_len()];
        let mut scratch = vec![0i32; scratch_len];
        model.reset_state(&mut state);
        model
            .run_sequence(window, &mut state, &mut scratch, &mut out)
            .unwrap();
    } else {
        let mut state = vec![0.0f32; model.state_len()];
        let mut scratch = vec![0.0f32; scratch_len];
        model.reset_state(&mut state);
        model
            .run_sequence(window, &mut state, &mut scratch, &mut out)
            .unwrap();
    }
    out.iter().map(|v| v.to_bits()).collect()
}

/// A window of `steps` inputs the model accepts: token ids for token models, else values
/// around the training ranges.
fn window<const L: usize>(model: &Model<'_, L>, steps: usize) -> Vec<f32> {
    let n = steps * model.input_features();
    (0..n)
        .map(|i| {
            if model.reads_tokens() {
                (i * 7 % 11) as f32
            } else {
                ((i as f32) * 0.37).sin() * 2.0
            }
        })
        .collect()
}

#[test]
fn every_plan_is_the_loaded_model() {
    for (name, blob, plan) in generated() {
        let loaded = Model::from_bytes(blob).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(plan.debug(), format!("{loaded:?}"), "{name}");
    }
}

#[test]
fn every_plan_runs_to_the_loaded_bits() {
    for (name, blob, plan) in generated() {
        let loaded = Model::from_bytes(blob).unwrap();
        for steps in [1, 7] {
            let x = window(&loaded, steps);
            assert_eq!(plan.run(&x, steps), run_bits(&loaded, &x, steps), "{name}");
        }
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/prebuilt")
}

/// The committed fixtures are what `edgernn export --plan` writes from their blobs today
/// (with `EDGERNN_BLESS=1`, rewrites them).
#[test]
fn fixtures_are_current() {
    let bless = std::env::var_os("EDGERNN_BLESS").is_some();
    let dir = fixtures_dir();
    let tmp = tempfile::tempdir().unwrap();
    let mut blobs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ern"))
        .collect();
    blobs.sort();
    assert_eq!(
        blobs.len(),
        10,
        "a fixture blob without its test entry, or the reverse"
    );
    for blob in blobs {
        let stem = blob.file_stem().unwrap().to_str().unwrap().to_string();
        let written = tmp.path().join(format!("{stem}.rs"));
        run(&ExportOptions {
            model: blob.clone(),
            rust: Some(written.clone()),
            c: None,
            vectors: None,
            detect: None,
            detect_rows: None,
            pack: None,
            plan: true,
        })
        .unwrap_or_else(|e| panic!("{stem}: {e:?}"));
        // The first line names the blob by the path it was given: name it from the repository.
        let text = std::fs::read_to_string(&written).unwrap();
        let text = text.replacen(
            &blob.display().to_string(),
            &format!("tests/prebuilt/{stem}.ern"),
            1,
        );
        let committed = dir.join(format!("{stem}.rs"));
        if bless {
            std::fs::write(&committed, &text).unwrap();
        } else {
            let old = std::fs::read_to_string(&committed).unwrap_or_default();
            assert!(
                old == text,
                "{} is stale: run EDGERNN_BLESS=1 cargo test -p edgernn-tools --test prebuilt",
                committed.display()
            );
        }
    }
}

/// `--plan` writes Rust: alone with `--c` it is a usage error naming the fix.
#[test]
fn plan_needs_rust_output() {
    let tmp = tempfile::tempdir().unwrap();
    let err = run(&ExportOptions {
        model: fixtures_dir().join("bigru_sum_int8.ern"),
        rust: None,
        c: Some(tmp.path().join("m.h")),
        vectors: None,
        detect: None,
        detect_rows: None,
        pack: None,
        plan: true,
    })
    .unwrap_err();
    assert!(format!("{err:?}").contains("--rust"), "{err:?}");
    assert!(!tmp.path().join("m.h").exists());
}

/// The plan is written from the blob the model was loaded from; a model of another blob is
/// refused (its views lie outside), never written with wrong offsets.
#[test]
fn views_outside_the_blob_are_refused() {
    let bytes = std::fs::read(fixtures_dir().join("bigru_sum_int8.ern")).unwrap();
    let blob = AlignedBlob::from_bytes(&bytes);
    let other = AlignedBlob::from_bytes(blob.bytes());
    let model = Model::from_bytes(blob.bytes()).unwrap();
    let mut out = String::new();
    let written = edgernn::model::prebuilt::write_plan(&model, other.bytes(), "&MODEL.0", &mut out);
    assert!(written.is_err());
    out.clear();
    edgernn::model::prebuilt::write_plan(&model, blob.bytes(), "&MODEL.0", &mut out).unwrap();
    assert!(out.contains("with_backward("), "{out}");
}
