//! The fuzz targets' inputs worth keeping (seeds, crashers and interesting inputs found by
//! `cargo +nightly fuzz run --fuzz-dir tests/fuzz <target>`), replayed on stable: each must
//! give a value or an error, never a panic.

use std::path::{Path, PathBuf};

use edgernn::Model;
use edgernn_tools::runner::{run_window, Feed};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz");
    let mut files = Vec::new();
    for dir in ["seeds", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) {
            files.extend(entries.map(|e| e.expect("entry").path()));
        }
    }
    files.sort();
    files
}

/// The `blob` target: load, then run a short window both ways.
#[test]
fn blob_inputs_never_panic() {
    let files = inputs("blob");
    assert!(!files.is_empty());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let blob = edgernn_tools::blob_file::AlignedBlob::from_bytes(&bytes);
        let Ok(model) = Model::from_bytes(blob.bytes()) else {
            continue;
        };
        let features = model.input_features();
        if features <= 64 && model.state_len() <= 1 << 14 {
            let xs: Vec<f32> = (0..3 * features).map(|i| (i % 7) as f32 - 3.0).collect();
            let _ = run_window(&model, &xs, Feed::Sequence);
            let _ = run_window(&model, &xs, Feed::Stream);
        }
    }
}

#[test]
fn npy_csv_keras_onnx_inputs_never_panic() {
    for path in inputs("npy") {
        let bytes = std::fs::read(&path).unwrap();
        let _ = edgernn_tools::io::npy::read_npy_bytes(&bytes, &path);
    }
    for path in inputs("csv") {
        let bytes = std::fs::read(&path).unwrap();
        let _ = edgernn_tools::io::csv_table::read_csv_matrix_from(&bytes[..], &path);
    }
    for path in inputs("keras") {
        let bytes = std::fs::read(&path).unwrap();
        if bytes.first() == Some(&0x89) {
            let _ = edgernn_tools::import::keras::import_h5(&path, &bytes);
        } else {
            let _ = edgernn_tools::import::keras::import_keras_zip(&path, &bytes);
        }
    }
    for path in inputs("onnx") {
        let bytes = std::fs::read(&path).unwrap();
        let _ = edgernn_tools::import::onnx::import_onnx(&path, &bytes);
    }
}
