//! Reading blobs into memory aligned the way the core requires.

use std::path::Path;

use anyhow::{Context, Result};

/// A copy of a blob whose weight section lands on a 4-byte boundary.
///
/// `Vec<u8>` promises no alignment, and the core refuses misaligned weights rather than read
/// them slowly; over-allocating by 15 bytes and starting at an aligned offset fixes that
/// without `unsafe`.
#[derive(Debug, Clone)]
pub struct AlignedBlob {
    buffer: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBlob {
    /// Copies `bytes` into aligned memory.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut buffer = vec![0u8; bytes.len() + 15];
        let start = buffer.as_ptr().align_offset(16).min(15);
        buffer[start..start + bytes.len()].copy_from_slice(bytes);
        Self {
            buffer,
            start,
            len: bytes.len(),
        }
    }

    /// Reads a blob file.
    ///
    /// # Errors
    /// When the file cannot be read.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The blob's bytes, 16-byte aligned.
    pub fn bytes(&self) -> &[u8] {
        &self.buffer[self.start..self.start + self.len]
    }
}
