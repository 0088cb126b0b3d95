//! ONNX importer (placeholder until the ONNX importer lands).

use std::path::Path;

use super::{ImportError, Imported};

/// Imports an ONNX model.
///
/// # Errors
/// Not implemented yet.
pub fn import_onnx(path: &Path, _bytes: &[u8]) -> Result<Imported, ImportError> {
    Err(ImportError::file(path, "ONNX import is not implemented yet"))
}
