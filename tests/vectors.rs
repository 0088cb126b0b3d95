//! The committed integer test vectors, checked by the core alone (no tools crate), so the same
//! test runs on every target the core builds for (x86_64 natively, aarch64 under qemu-user):
//! integer results must be identical bits everywhere.

use std::path::Path;

use edgernn::Model;

/// Reads a little-endian float32 `.npy` written by the tools (version 1, C order).
fn read_f32_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{path:?}");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(
        header.contains("'<f4'") && header.contains("False"),
        "{header}"
    );
    bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The shape tuple of a `.npy` header.
fn npy_shape(path: &Path) -> Vec<usize> {
    let bytes = std::fs::read(path).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    let inner = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    inner
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect()
}

#[test]
fn integer_vectors_are_bit_exact_on_this_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ern"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 8, "vectors missing");
    for blob_path in &paths {
        let stem = blob_path.file_stem().unwrap().to_str().unwrap();
        let (case, _mode) = stem.rsplit_once('.').unwrap();
        let raw = std::fs::read(blob_path).unwrap();
        // A Vec<u8> promises no alignment: place the blob at a 16-byte boundary inside it.
        let mut buffer = vec![0u8; raw.len() + 15];
        let start = buffer.as_ptr().align_offset(16);
        buffer[start..start + raw.len()].copy_from_slice(&raw);
        let model = Model::from_bytes(&buffer[start..start + raw.len()]).unwrap();

        let input_path = dir.join(format!("{case}.input.npy"));
        let shape = npy_shape(&input_path);
        let input = read_f32_npy(&input_path);
        let expected = read_f32_npy(&dir.join(format!("{stem}.expected.npy")));
        let window = shape[1] * shape[2];
        let mut got = Vec::new();
        for xs in input.chunks(window) {
            let mut state = vec![0i32; model.state_len()];
            model.reset_state(&mut state);
            let mut scratch = vec![0i32; model.sequence_scratch_len(shape[1]).unwrap()];
            let mut out = vec![0f32; model.output_len(shape[1]).unwrap()];
            model
                .run_sequence(xs, &mut state, &mut scratch, &mut out)
                .unwrap();
            got.extend(out);
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&expected), "{stem}");
    }
}
