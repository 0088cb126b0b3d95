//! Any bytes as a .npy file: an array or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = edgernn_tools::io::npy::read_npy_bytes(data, std::path::Path::new("fuzz.npy"));
});
