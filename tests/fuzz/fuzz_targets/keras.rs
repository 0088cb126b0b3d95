//! Any bytes as a .keras (zip) or .h5 (HDF5) file: a blob or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.keras");
    if data.first() == Some(&0x89) {
        let _ = edgernn_tools::import::keras::import_h5(path, data);
    } else {
        let _ = edgernn_tools::import::keras::import_keras_zip(path, data);
    }
});
