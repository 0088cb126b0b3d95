//! `edgernn import`: a Keras or ONNX model file to a blob.

use std::path::Path;

use super::{inspect, Failure};
use crate::import::import_file;
use crate::io;

/// Runs `edgernn import MODEL -o OUT.ern`.
///
/// # Errors
/// An unreadable or unsupported model (exit 2) naming the layer or node; an output that would
/// overwrite the input.
pub fn run(model: &Path, output: &Path) -> Result<(), Failure> {
    io::atomic::ensure_not_same_file(model, output)?;
    let imported = import_file(model).map_err(|e| Failure::BadInput(e.to_string()))?;
    io::atomic::write_atomic(output, &imported.blob)?;
    eprintln!("imported {} ({})", model.display(), imported.source);
    for note in &imported.notes {
        eprintln!("  note: {note}");
    }
    if imported.time_major_input {
        eprintln!(
            "  note: the original model reads [time, batch, features]; the blob reads [batch, time, features]: transpose data made for the original (verify --time-major)"
        );
    }
    inspect::run(output, false)
}
