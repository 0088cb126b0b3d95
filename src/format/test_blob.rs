//! Blobs written by hand for the core's unit tests (the tools' builder is not available to
//! them): the preamble, header, extensions and weight section exactly as the module docs of
//! [`super`] specify them.

use std::boxed::Box;
use std::vec::Vec;

use super::{
    blob_crc, Extensions, Header, Layer, Preamble, QuantMode, TensorRef, CRC_OFFSET,
    FORMAT_VERSION_EXTENSIONS, FORMAT_VERSION_PLAIN, PREAMBLE_LEN, WEIGHT_ALIGN,
};

/// A 16-byte aligned blob buffer.
#[repr(C, align(16))]
pub struct Buf(pub [u8; 4096]);

/// f32 weight values collected while the layers are described.
#[derive(Default)]
pub struct Weights(pub Vec<f32>);

impl Weights {
    /// Appends `values` at a 16-byte aligned offset.
    pub fn push(&mut self, values: &[f32]) -> TensorRef {
        while !self.0.len().is_multiple_of(WEIGHT_ALIGN / 4) {
            self.0.push(0.0);
        }
        let offset = (self.0.len() * 4) as u32;
        self.0.extend_from_slice(values);
        TensorRef {
            offset,
            len: values.len() as u32,
        }
    }
}

/// An f32 blob of `layers` and `extensions` (format version 1 when they are empty), and its
/// length in the buffer.
pub fn blob(
    input_features: u32,
    layers: &[Layer],
    weights: &Weights,
    extensions: Extensions<'_>,
) -> (Box<Buf>, usize) {
    let header = Header {
        mode: QuantMode::F32,
        input_features,
        input_quant: None,
        layers: layers.iter().copied().collect(),
    };
    let mut buf = Box::new(Buf([0; 4096]));
    let mut header_len = postcard::to_slice(&header, &mut buf.0[PREAMBLE_LEN..])
        .expect("header fits")
        .len();
    let version = if extensions.is_empty() {
        FORMAT_VERSION_PLAIN
    } else {
        header_len += postcard::to_slice(&extensions, &mut buf.0[PREAMBLE_LEN + header_len..])
            .expect("extensions fit")
            .len();
        FORMAT_VERSION_EXTENSIONS
    };
    let weight_offset = (PREAMBLE_LEN + header_len).div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN;
    for (i, w) in weights.0.iter().enumerate() {
        let at = weight_offset + 4 * i;
        buf.0[at..at + 4].copy_from_slice(&w.to_le_bytes());
    }
    let weight_len = 4 * weights.0.len();
    let total = weight_offset + weight_len;
    let preamble = Preamble {
        version,
        flags: 0,
        total_len: total as u32,
        header_len: header_len as u32,
        weight_offset: weight_offset as u32,
        weight_len: weight_len as u32,
        crc: 0,
        reserved: 0,
    };
    buf.0[..PREAMBLE_LEN].copy_from_slice(&preamble.to_bytes());
    let crc = blob_crc(&buf.0[..total]);
    buf.0[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    (buf, total)
}
