//! The command implementations behind the `edgernn` binary.

pub mod bench;
pub mod detect;
pub mod evaluate;
pub mod export;
pub mod generate;
pub mod import;
pub mod inspect;
#[cfg(feature = "train")]
pub mod nab;
pub mod quantize;
pub mod run;
#[cfg(feature = "train")]
pub mod train;
pub mod verify;

use std::fmt::Display;
use std::path::Path;

use crate::blob_file::AlignedBlob;

/// How a command failed, which decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// The user's input is wrong (exit 2). The message names the file.
    BadInput(String),
    /// Something failed that is not the user's fault (exit 1).
    Internal(String),
    /// The run worked but its output disagrees with the expected values (exit 1).
    Mismatch(String),
}

impl Failure {
    /// A bad-input failure about `path`.
    pub fn input(path: &Path, what: impl Display) -> Self {
        Self::BadInput(format!("{}: {what}", path.display()))
    }
}

impl From<crate::io::IoError> for Failure {
    fn from(e: crate::io::IoError) -> Self {
        Self::BadInput(e.to_string())
    }
}

/// Prints panics as a one-line internal error without a backtrace, and exits 1: a panic is a
/// bug, but the user should still get a clear message and a defined exit code.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        // `println!` panics when the reader of stdout went away (`edgernn inspect m.ern | head`):
        // not a bug, and nothing is left to say; stop quietly as ripgrep does.
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        eprintln!("error: internal: {message} (this is a bug in edgernn)");
        std::process::exit(1);
    }));
}

/// Reads a blob file into aligned memory.
///
/// # Errors
/// A bad-input failure naming the file when it cannot be read.
pub fn read_blob(path: &Path) -> Result<AlignedBlob, Failure> {
    let bytes =
        std::fs::read(path).map_err(|e| Failure::input(path, format!("cannot read: {e}")))?;
    Ok(AlignedBlob::from_bytes(&bytes))
}

/// Loads a model from an aligned blob, naming the file in the error.
///
/// # Errors
/// A bad-input failure with the loader's reason.
pub fn load_model<'a>(path: &Path, blob: &'a AlignedBlob) -> Result<edgernn::Model<'a>, Failure> {
    edgernn::Model::from_bytes(blob.bytes()).map_err(|e| Failure::input(path, e))
}
