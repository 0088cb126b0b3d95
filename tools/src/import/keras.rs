//! Keras importers (placeholder until the Keras importer lands).

use std::path::Path;

use super::{ImportError, Imported};

/// Imports a Keras 3 `.keras` file (zip of `config.json` and `model.weights.h5`).
///
/// # Errors
/// Not implemented yet.
pub fn import_keras_zip(path: &Path, _bytes: &[u8]) -> Result<Imported, ImportError> {
    Err(ImportError::file(path, ".keras import is not implemented yet"))
}

/// Imports a legacy Keras `.h5` file.
///
/// # Errors
/// Not implemented yet.
pub fn import_h5(path: &Path, _bytes: &[u8]) -> Result<Imported, ImportError> {
    Err(ImportError::file(path, ".h5 import is not implemented yet"))
}
