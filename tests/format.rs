//! Byte-exact format vectors: the worked example of the `format` module docs, built by the
//! tools' builder, must be exactly these bytes, and must load and run.

mod common;

use edgernn::format::{Activation, Cell};
use edgernn::Model;
use edgernn_tools::builder::{KerasWeights, ModelBuilder, RecurrentSpec};

/// The textbook model: `SimpleRNN(1, relu, return_sequences=True)` on 2 features, kernel
/// `[[2], [3]]`, recurrent kernel `[[-0.1]]`, bias `[0]`.
fn textbook_blob() -> Vec<u8> {
    let mut b = ModelBuilder::new(2);
    b.recurrent(
        RecurrentSpec {
            cell: Cell::SimpleRnn,
            units: 1,
            activation: Activation::Relu,
            recurrent_activation: Activation::Sigmoid,
            return_sequences: true,
            go_backwards: false,
            bidirectional: None,
        },
        &KerasWeights {
            kernel: vec![2.0, 3.0],
            recurrent_kernel: vec![-0.1],
            bias: Some(vec![0.0]),
        },
        None,
    )
    .unwrap();
    b.build().unwrap()
}

#[rustfmt::skip]
const TEXTBOOK_BYTES: &[u8] = &[
    // Preamble: magic, version 1, flags, total 100, header 25, weights at 64, 36 bytes, CRC, 0.
    0x45, 0x52, 0x4e, 0x4e, 0x01, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x19, 0x00, 0x00, 0x00,
    0x40, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0xec, 0x6c, 0x68, 0xdc, 0x00, 0x00, 0x00, 0x00,
    // Header (25 bytes), then zero padding to offset 64.
    0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x01, 0x01, 0x03, 0x01, 0x00, 0x00, 0x00, 0x02, 0x10, 0x01,
    0x01, 0x20, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    // Weights: kernel [2.0, 3.0], recurrent [-0.1], bias [0.0], each at a 16-byte offset.
    0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xcd, 0xcc, 0xcc, 0xbd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];

fn hex(bytes: &[u8]) -> String {
    let rows = bytes.chunks(16).map(|row| {
        let cells: Vec<String> = row.iter().map(|b| format!("0x{b:02x},")).collect();
        cells.join(" ")
    });
    rows.collect::<Vec<_>>().join("\n")
}

#[test]
fn worked_example_is_byte_exact() {
    let blob = textbook_blob();
    assert_eq!(blob, TEXTBOOK_BYTES, "\n{}", hex(&blob));
}

#[test]
fn worked_example_runs_the_textbook_sequence() {
    let blob = common::aligned(TEXTBOOK_BYTES);
    let model = Model::from_bytes(blob.bytes()).unwrap();
    assert_eq!(model.state_len(), 1);
    let xs = [0.0, 23.0, 1.0, -3.0, 1.0, 56.0, 2.0, 12.0];
    let mut state = [0.0];
    let mut scratch = vec![0.0; model.sequence_scratch_len(4).unwrap()];
    let mut out = [0.0; 4];
    model
        .run_sequence(&xs, &mut state, &mut scratch, &mut out)
        .unwrap();
    assert_eq!(out, [69.0, 0.0, 170.0, 23.0]);
}
