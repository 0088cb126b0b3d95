//! Any bytes as a CSV table: a matrix or an error naming the line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = edgernn_tools::io::csv_table::read_csv_matrix_from(data, std::path::Path::new("fuzz.csv"));
});
