//! Importing trained models: Keras 3 `.keras`, legacy Keras `.h5`, and ONNX graphs with the
//! standard recurrent operators. Every importer converts to Keras layout and writes the blob
//! through [`crate::builder::ModelBuilder`], so gate orders and transposes are decided once per
//! source format, here, and the blob is checked by the core before it is returned.
//!
//! Anything the runtime cannot represent exactly is an [`ImportError`] naming the layer or
//! node: never a silently different model.

pub mod keras;
pub mod onnx;

use std::fmt;
use std::path::{Path, PathBuf};

/// Why an import failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// The file being imported.
    pub path: PathBuf,
    /// Where in the model, e.g. `layer 2 'lstm_1' (LSTM)` or `node 5 'LSTM_0' (LSTM)`.
    pub location: Option<String>,
    /// What is wrong, what was found, and what is supported.
    pub message: String,
}

impl ImportError {
    /// An error about the whole file.
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            location: None,
            message: message.into(),
        }
    }

    /// An error about one layer or node.
    pub fn at(path: &Path, location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            location: Some(location.into()),
            message: message.into(),
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(at) => write!(f, "{}: {at}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ImportError {}

/// A successfully imported model.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The blob, already loaded once by the core.
    pub blob: Vec<u8>,
    /// What was read, e.g. `Keras 3 .keras (keras 3.15.1)` or `ONNX opset 17 (pytorch 2.15)`.
    pub source: String,
    /// True when the original model reads `[time, batch, features]` (PyTorch's default
    /// `batch_first=False`): the blob always reads `[batch, time, features]`, so data made for
    /// the original must be transposed.
    pub time_major_input: bool,
    /// Conversions worth telling the user (folded biases, dropped Dropout layers, ...).
    pub notes: Vec<String>,
}

/// Imports a model file, choosing the reader by content (zip: `.keras`; HDF5 signature:
/// `.h5`; otherwise by the `.onnx` extension).
///
/// # Errors
/// An unreadable, truncated or unsupported file, with the layer or node at fault.
pub fn import_file(path: &Path) -> Result<Imported, ImportError> {
    let bytes =
        std::fs::read(path).map_err(|e| ImportError::file(path, format!("cannot read: {e}")))?;
    if bytes.starts_with(b"PK\x03\x04") {
        keras::import_keras_zip(path, &bytes)
    } else if bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
        keras::import_h5(path, &bytes)
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        onnx::import_onnx(path, &bytes)
    } else {
        Err(ImportError::file(
            path,
            "not a model file this tool reads: expected a Keras 3 .keras (zip), a legacy Keras .h5 (HDF5) or an ONNX .onnx file",
        ))
    }
}
