//! Host-side tools for edgernn: build blobs, read and write arrays, run and inspect models.

#![forbid(unsafe_code)]

pub mod blob_file;
pub mod builder;
pub mod cli;
pub mod detect;
pub mod import;
pub mod io;
pub mod nab;
pub mod pack;
mod plot_png;
pub mod quantize;
pub mod runner;
#[cfg(feature = "train")]
pub mod train;
