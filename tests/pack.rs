//! Weights pre-packed for the kernels (format version 3, `interleaved4`): a packed blob runs
//! to exactly its row-major twin's bits in every integer mode and cell, and the loader refuses
//! the flag wherever it does not belong.

use edgernn::format::QuantMode;
use edgernn::format::{
    blob_crc, Activation, Blob, Cell, Extensions, Header, Merge, Preamble, CRC_OFFSET,
    FLAG_INTERLEAVED4, FORMAT_VERSION_FLAGS, PREAMBLE_LEN, WEIGHT_ALIGN,
};
use edgernn::kernels::WeightLayout;
use edgernn::{LoadError, Model};
use edgernn_tools::blob_file::AlignedBlob;
use edgernn_tools::builder::{KerasWeights, ModelBuilder, RecurrentSpec};
use edgernn_tools::pack::{pack_interleaved4, Pack};
use edgernn_tools::quantize::{quantize, Options};
use edgernn_tools::runner::{run_window, Feed};

struct Rng(u64);

impl Rng {
    fn f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Seeded Keras weights of one direction.
fn weights(rng: &mut Rng, cell: Cell, width: usize, units: usize) -> KerasWeights {
    let rows = cell.gates() * units;
    let bias_len = if cell == (Cell::Gru { reset_after: true }) {
        2 * rows
    } else {
        rows
    };
    KerasWeights {
        kernel: (0..width * rows)
            .map(|_| rng.f32() / (width as f32).sqrt())
            .collect(),
        recurrent_kernel: (0..units * rows)
            .map(|_| rng.f32() / (units as f32).sqrt())
            .collect(),
        bias: Some((0..bias_len).map(|_| rng.f32() * 0.5).collect()),
    }
}

/// An f32 model: two recurrent layers of `cell` (the first on `features` inputs, the second
/// Bidirectional when asked) and a Dense head.
fn model(cell: Cell, features: usize, units: usize, bidirectional: bool, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut b = ModelBuilder::new(features);
    let activation = Activation::Tanh;
    let first = RecurrentSpec {
        cell,
        units,
        activation,
        recurrent_activation: Activation::Sigmoid,
        return_sequences: true,
        go_backwards: false,
        bidirectional: None,
    };
    b.recurrent(first, &weights(&mut rng, cell, features, units), None)
        .unwrap();
    let merge = bidirectional.then_some(Merge::Concat);
    let second = RecurrentSpec {
        bidirectional: merge,
        return_sequences: false,
        ..first
    };
    let backward = weights(&mut rng, cell, units, units);
    b.recurrent(
        second,
        &weights(&mut rng, cell, units, units),
        bidirectional.then_some(&backward),
    )
    .unwrap();
    let width = if bidirectional { 2 * units } else { units };
    let kernel: Vec<f32> = (0..width * 3).map(|_| rng.f32() / 4.0).collect();
    b.dense(3, Activation::Linear, &kernel, Some(&[0.1, -0.2, 0.3]))
        .unwrap();
    b.build().unwrap()
}

fn windows(rng: &mut Rng, features: usize) -> Vec<Vec<f32>> {
    (0..6)
        .map(|i| (0..(9 + i) * features).map(|_| rng.f32() * 2.0).collect())
        .collect()
}

fn outputs(blob: &[u8], windows: &[Vec<f32>], feed: Feed) -> Vec<u32> {
    let aligned = AlignedBlob::from_bytes(blob);
    let model = Model::from_bytes(aligned.bytes()).unwrap();
    windows
        .iter()
        .flat_map(|w| run_window(&model, w, feed).unwrap())
        .map(f32::to_bits)
        .collect()
}

fn version_and_layout(blob: &[u8]) -> (u16, WeightLayout) {
    let aligned = AlignedBlob::from_bytes(blob);
    let checked = Blob::new_checked(aligned.bytes()).unwrap();
    let pre = Preamble::parse(blob).unwrap();
    (pre.version, checked.info().layout)
}

#[test]
fn packed_blobs_give_the_row_major_bits() {
    let cells = [
        Cell::Lstm,
        Cell::Gru { reset_after: true },
        Cell::Gru { reset_after: false },
        Cell::SimpleRnn,
    ];
    // Input widths that pad (5, 7) and that do not (8); units that take one or several
    // blocks of the cells.
    let shapes = [
        (5usize, 8usize, false),
        (8, 12, true),
        (7, 36, false),
        (3, 4, true),
    ];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for cell in cells {
        for (features, units, bidirectional) in shapes {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let f32_blob = model(cell, features, units, bidirectional, seed);
            let mut rng = Rng(seed | 1);
            let data = windows(&mut rng, features);
            for mode in [QuantMode::Int8, QuantMode::Int16] {
                let (row_major, _) = quantize(
                    &f32_blob,
                    &data,
                    Options {
                        mode,
                        percentile: None,
                    },
                )
                .unwrap();
                let packed = pack_interleaved4(&row_major).unwrap();
                let what = format!("{cell:?} f{features} u{units} bi {bidirectional} {mode:?}");
                assert_eq!(
                    version_and_layout(&packed),
                    (FORMAT_VERSION_FLAGS, WeightLayout::Interleaved4),
                    "{what}"
                );
                assert!(version_and_layout(&row_major).0 < FORMAT_VERSION_FLAGS);
                // Bidirectional models run whole windows only.
                let feeds: &[Feed] = if bidirectional {
                    &[Feed::Sequence]
                } else {
                    &[Feed::Sequence, Feed::PerStep]
                };
                for &feed in feeds {
                    assert_eq!(
                        outputs(&packed, &data, feed),
                        outputs(&row_major, &data, feed),
                        "{what} {feed:?}"
                    );
                }
                // Inspect's parameter count ignores the padding.
                let params = |b: &[u8]| {
                    let a = AlignedBlob::from_bytes(b);
                    let n = Model::from_bytes(a.bytes()).unwrap().parameters();
                    n
                };
                assert_eq!(params(&packed), params(&row_major), "{what}");
            }
        }
    }
}

#[test]
fn pack_option_values() {
    assert_eq!(
        Pack::parse("--pack", "interleaved4").unwrap(),
        Pack::Interleaved4
    );
    assert_eq!(Pack::parse("--pack", "row-major").unwrap(), Pack::RowMajor);
    let e = Pack::parse("--pack", "interleaved8")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--pack interleaved8") && e.contains("interleaved4"),
        "{e}"
    );
}

#[test]
fn packing_refuses_what_it_cannot_pack() {
    // Units not a multiple of 4, named.
    let f32_blob = model(Cell::Lstm, 4, 6, false, 7);
    let data = windows(&mut Rng(3), 4);
    let opts = Options {
        mode: QuantMode::Int8,
        percentile: None,
    };
    let (int8, _) = quantize(&f32_blob, &data, opts).unwrap();
    let e = pack_interleaved4(&int8).unwrap_err().to_string();
    assert!(e.contains("layer 0 has 6 units"), "{e}");
    // Float modes have no packed layout.
    let e = pack_interleaved4(&model(Cell::Lstm, 4, 8, false, 7))
        .unwrap_err()
        .to_string();
    assert!(e.contains("integer modes"), "{e}");
}

/// A blob from its parts without the writer's load check, for the loader's refusals.
fn raw_blob(
    header: &Header,
    extensions: Option<&Extensions<'_>>,
    weights: &[u8],
    version: u16,
    flags: u16,
) -> Vec<u8> {
    let mut header_bytes = postcard::to_allocvec(header).unwrap();
    if let Some(e) = extensions {
        header_bytes.extend(postcard::to_allocvec(e).unwrap());
    }
    let weight_offset = (PREAMBLE_LEN + header_bytes.len()).div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN;
    let total = weight_offset + weights.len();
    let preamble = Preamble {
        version,
        flags,
        total_len: total as u32,
        header_len: header_bytes.len() as u32,
        weight_offset: weight_offset as u32,
        weight_len: weights.len() as u32,
        crc: 0,
        reserved: 0,
    };
    let mut blob = preamble.to_bytes().to_vec();
    blob.extend_from_slice(&header_bytes);
    blob.resize(weight_offset, 0);
    blob.extend_from_slice(weights);
    let crc = blob_crc(&blob);
    blob[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    blob
}

fn load(blob: &[u8]) -> Result<(), LoadError> {
    let aligned = AlignedBlob::from_bytes(blob);
    Model::from_bytes(aligned.bytes()).map(|_| ())
}

/// The header and weight section of a checked blob.
fn parts(blob: &[u8]) -> (Header, Vec<u8>) {
    let aligned = AlignedBlob::from_bytes(blob);
    let checked = Blob::new_checked(aligned.bytes()).unwrap();
    (checked.decode_header().unwrap(), checked.weights().to_vec())
}

#[test]
fn loader_refuses_misplaced_flags() {
    let data = windows(&mut Rng(5), 5);
    let opts = Options {
        mode: QuantMode::Int8,
        percentile: None,
    };
    let f32_blob = model(Cell::Gru { reset_after: true }, 5, 8, false, 11);
    let (int8, _) = quantize(&f32_blob, &data, opts).unwrap();
    let packed = pack_interleaved4(&int8).unwrap();
    assert_eq!(load(&packed), Ok(()));
    let none = Extensions::default();
    let flags = FLAG_INTERLEAVED4;
    let bad = |flags| Err(LoadError::BadFlags { flags });

    // The flag in version 1 or 2 (which have no flags), and unknown bits in version 3.
    let (header, weights) = parts(&packed);
    assert_eq!(
        load(&raw_blob(&header, None, &weights, 1, flags)),
        bad(flags)
    );
    assert_eq!(
        load(&raw_blob(&header, Some(&none), &weights, 2, flags)),
        bad(flags)
    );
    for unknown in [2u16, 0x8000, flags | 4] {
        let blob = raw_blob(&header, Some(&none), &weights, 3, unknown);
        assert_eq!(load(&blob), bad(unknown), "{unknown:#x}");
    }
    // Version 3 without flags is the row-major blob.
    let (rm_header, rm_weights) = parts(&int8);
    assert_eq!(
        load(&raw_blob(&rm_header, Some(&none), &rm_weights, 3, 0)),
        Ok(())
    );

    // The flag on a float blob.
    let (f_header, f_weights) = parts(&f32_blob);
    assert_eq!(
        load(&raw_blob(&f_header, Some(&none), &f_weights, 3, flags)),
        bad(flags)
    );

    // Row-major lengths under the flag (5 inputs pad to 8): the packed length is checked.
    assert_eq!(
        load(&raw_blob(&rm_header, Some(&none), &rm_weights, 3, flags)),
        Err(LoadError::WeightShape { layer: 0 })
    );

    // Units not a multiple of 4.
    let f32_six = model(Cell::Lstm, 4, 6, false, 13);
    let (six, _) = quantize(&f32_six, &windows(&mut Rng(9), 4), opts).unwrap();
    let (six_header, six_weights) = parts(&six);
    assert_eq!(
        load(&raw_blob(&six_header, Some(&none), &six_weights, 3, flags)),
        Err(LoadError::PackedShape { layer: 0 })
    );
}
