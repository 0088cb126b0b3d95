//! The model blob (`.ern`): its written specification and the one checked view over its bytes.
//!
//! # Layout (format versions 1 to 3)
//!
//! All integers are little-endian. A blob is a fixed 32-byte preamble, the postcard-encoded
//! [`Header`], zero padding, and the weight section:
//!
//! | offset | size | field | rule |
//! |---:|---:|---|---|
//! | 0 | 4 | magic | `b"ERNN"` |
//! | 4 | 2 | format version | 1; 2 when the header carries [`Extensions`]; 3 when flags are set ([`FORMAT_VERSION`]) |
//! | 6 | 2 | flags | 0 before version 3; in version 3 bit 0 = [`FLAG_INTERLEAVED4`], other bits 0 |
//! | 8 | 4 | total length | bytes in the blob, preamble included |
//! | 12 | 4 | header length | postcard bytes starting at offset 32 |
//! | 16 | 4 | weight offset | multiple of [`WEIGHT_ALIGN`], `>= 32 + header length` |
//! | 20 | 4 | weight length | bytes, multiple of 4; `weight offset + weight length = total length` |
//! | 24 | 4 | CRC-32 | IEEE CRC-32 of all `total length` bytes with this field read as zero |
//! | 28 | 4 | reserved | 0 |
//! | 32 | h | header | postcard encoding of [`Header`], then in version 2 of [`Extensions`] (the schema is in [`header`]) |
//! | 32 + h | .. | padding | zeros up to the weight offset |
//! | weight offset | w | weights | f32 little-endian tensors, each at a 4-byte aligned offset |
//!
//! Weight matrices are row-major with one row per output unit (the transpose of Keras'
//! `kernel`), gates stacked in Keras order: LSTM i, f, c, o; GRU z, r, h. Importers from ONNX and
//! PyTorch reorder gates to this order.
//!
//! ## Pre-packed weights (`interleaved4`, version 3)
//!
//! With [`FLAG_INTERLEAVED4`] (integer modes only) the int8 kernel and recurrent kernel of every
//! recurrent layer (Dense layers stay row-major) are stored for the projection kernels, so
//! firmware reads them from flash in order and repacks nothing at boot. For an `R x C`
//! matrix (`R` = gates x units, a multiple of 4), with `C4 = ceil(C / 4) * 4` columns (the
//! padding ones zero), the 4 weights of rows `4b..4b+3` and columns `4g..4g+3` are 16 bytes
//! at `b * 4 * C4 + g * 16`, row `r`'s 4 bytes at `+ 4 * (r % 4)`:
//!
//! ```text
//! block 0: r0[c0..c3] r1[c0..c3] r2[c0..c3] r3[c0..c3] | r0[c4..c7] r1[c4..c7] ... | (C4 / 4 groups)
//! block 1: r4[c0..c3] r5[c0..c3] ...
//! ```
//!
//! The tensor's length is `R * C4` bytes. Every recurrent layer's units must be a multiple of
//! 4 (so each gate's rows, and the cells' blocks of units, start on a block): the loader
//! refuses other shapes with [`LoadError::PackedShape`]. The Cortex-M4 kernel then loads a
//! block's four words with one `ldm`; every kernel table computes the same bits as for the
//! row-major twin of the blob.
//!
//! # Worked example
//!
//! The textbook model `SimpleRNN(1, activation="relu", return_sequences=True)` on 2 features,
//! kernel `[[2], [3]]`, recurrent kernel `[[-0.1]]`, bias `[0]`, is these 100 bytes (checked
//! byte for byte by `tests/format.rs`):
//!
//! ```text
//! 0x00  45 52 4e 4e | 01 00 | 00 00 | 64 00 00 00 | 19 00 00 00    "ERNN", v1, flags, total 100, header 25
//! 0x10  40 00 00 00 | 24 00 00 00 | ec 6c 68 dc | 00 00 00 00      weights at 64, 36 bytes, CRC, reserved
//! 0x20  00 02 00 01 00 00 01 01 03 01 00 00 00 02 10 01            header (postcard)
//! 0x30  01 20 01 00 00 00 00 00 00 | 00 .. 00                      header end, zero padding
//! 0x40  00 00 00 40  00 00 40 40 | 00 x 8                          kernel row [2.0, 3.0], pad
//! 0x50  cd cc cc bd | 00 x 12                                      recurrent kernel [-0.1], pad
//! 0x60  00 00 00 00                                                bias [0.0]
//! ```
//!
//! The header bytes read: mode `F32` (0), `input_features` 2, no input quantization (0), one
//! layer, `Layer::Recurrent` (0), `Cell::SimpleRnn` (0), `units` 1, activation `Relu` (1),
//! recurrent activation `Sigmoid` (3, unused by SimpleRNN), `return_sequences` 1,
//! `go_backwards` 0, no Bidirectional (0), kernel `{offset 0, len 2}`, recurrent kernel
//! `{offset 16, len 1}`, bias `Some({offset 32, len 1})`, no recurrent bias, kernel scale,
//! recurrent scale or reset scale (0 0 0 0), no backward weights (0), no integer parameters
//! (0). Postcard writes integers as LEB128 varints (`i32` zig-zag encoded), `f32` as 4
//! little-endian bytes, enums as their variant index and `Option` as 0, or 1 and the value.
//! The tools write the header with postcard; the core reads it with a small hand-written
//! decoder of exactly this schema (tested to accept and refuse the same bytes as postcard),
//! which takes a third of the flash of serde's generic one.
//! Each tensor starts at a 16-byte offset in the weight section; its element type follows
//! from the mode and its role (see [`DirectionWeights`] and [`crate::quant`]).
//!
//! # Versioning
//!
//! Version 2 differs from version 1 only by the [`Extensions`] record after the layer list
//! (detector parameters, a text model's vocabulary). Version 3 differs from version 2 only by
//! the flags field, which it allows to be non-zero ([`FLAG_INTERLEAVED4`]); a version 3 blob
//! always has the extensions record (possibly empty). Unknown flag bits, flags before version
//! 3 and [`FLAG_INTERLEAVED4`] in a float mode are refused with [`LoadError::BadFlags`]. Blobs
//! without flags are written as version 1 or 2, byte for byte what older writers wrote.
//!
//! Readers accept exactly the versions they know (1 to [`FORMAT_VERSION`]) and refuse any other with
//! [`LoadError::UnsupportedVersion`]: a blob never runs with a meaning its writer did not intend.
//! Any change to the preamble, the header schema or the weight layout bumps the version; a
//! writer emits the oldest version that can express the model, so old firmware keeps loading
//! new blobs of old models.
//!
//! # What the format does not promise
//!
//! It is not a container for training state, not self-describing beyond what inference needs
//! (no layer names), and not stable across major versions. The checksum detects corruption, not
//! tampering: sign blobs outside the format if they come over the air from untrusted places.

pub mod crc32;
pub mod header;
#[cfg(test)]
pub(crate) mod test_blob;
mod wire;

pub use header::{
    Activation, Cell, DenseLayer, DenseQuant, DetectorParams, DirectionWeights, EmbeddingLayer,
    Extensions, Header, Layer, Merge, NormalizationLayer, QParams, QuantMode, RecurrentLayer,
    RecurrentQuant, RepeatLayer, Requant, TensorRef,
};

use crate::error::{sat_u32, LoadError};
use crate::MAX_LAYERS;

/// The first four bytes of every blob.
pub const MAGIC: [u8; 4] = *b"ERNN";
/// The newest format version this build writes and reads (it reads every version from 1).
pub const FORMAT_VERSION: u16 = 3;
/// The version of blobs without [`Extensions`].
pub const FORMAT_VERSION_PLAIN: u16 = 1;
/// The version of blobs with [`Extensions`] and no flags.
pub const FORMAT_VERSION_EXTENSIONS: u16 = 2;
/// The first version whose preamble may carry flags.
pub const FORMAT_VERSION_FLAGS: u16 = 3;
/// Preamble flag: the recurrent layers' int8 weight matrices are stored interleaved by blocks
/// of 4 rows (see "Pre-packed weights" above).
pub const FLAG_INTERLEAVED4: u16 = 1;
/// Every flag this build knows.
pub const KNOWN_FLAGS: u16 = FLAG_INTERLEAVED4;
/// Size of the fixed preamble.
pub const PREAMBLE_LEN: usize = 32;
/// Alignment of the weight section's offset within the blob, so SIMD kernels can use aligned
/// loads when the blob itself is aligned (see [`Aligned`]).
pub const WEIGHT_ALIGN: usize = 16;
/// Byte offset of the CRC field in the preamble.
pub const CRC_OFFSET: usize = 24;

/// A byte array aligned to 16 bytes, for blobs in flash or RAM.
///
/// `&Aligned<[u8; N]>` coerces to `&Aligned<[u8]>`; [`crate::include_blob!`] builds one from a
/// file at compile time.
#[repr(C, align(16))]
pub struct Aligned<B: ?Sized>(pub B);

/// Embeds a blob file in the binary at a 16-byte aligned address, as a `&'static [u8]`.
///
/// ```ignore
/// static MODEL: &[u8] = edgernn::include_blob!("model.ern");
/// ```
#[macro_export]
macro_rules! include_blob {
    ($path:expr) => {{
        static ALIGNED: &$crate::format::Aligned<[u8]> =
            &$crate::format::Aligned(*include_bytes!($path));
        &ALIGNED.0
    }};
}

/// The preamble fields, read without any checks beyond length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    pub version: u16,
    pub flags: u16,
    pub total_len: u32,
    pub header_len: u32,
    pub weight_offset: u32,
    pub weight_len: u32,
    pub crc: u32,
    pub reserved: u32,
}

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    match bytes.get(at..at + 2) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => 0,
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

impl Preamble {
    /// Parses the fixed preamble.
    ///
    /// # Errors
    /// [`LoadError::Truncated`] when `bytes` is shorter than [`PREAMBLE_LEN`],
    /// [`LoadError::BadMagic`] when the magic is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Self, LoadError> {
        if bytes.len() < PREAMBLE_LEN {
            return Err(LoadError::Truncated {
                needed: PREAMBLE_LEN as u32,
                found: sat_u32(bytes.len()),
            });
        }
        if bytes.get(..4) != Some(&MAGIC[..]) {
            return Err(LoadError::BadMagic);
        }
        Ok(Self {
            version: read_u16(bytes, 4),
            flags: read_u16(bytes, 6),
            total_len: read_u32(bytes, 8),
            header_len: read_u32(bytes, 12),
            weight_offset: read_u32(bytes, 16),
            weight_len: read_u32(bytes, 20),
            crc: read_u32(bytes, CRC_OFFSET),
            reserved: read_u32(bytes, 28),
        })
    }

    /// Writes the preamble's 32 bytes (with the CRC field as given).
    pub fn to_bytes(&self) -> [u8; PREAMBLE_LEN] {
        let mut out = [0u8; PREAMBLE_LEN];
        let fields: [(usize, &[u8]); 8] = [
            (4, &self.version.to_le_bytes()),
            (6, &self.flags.to_le_bytes()),
            (8, &self.total_len.to_le_bytes()),
            (12, &self.header_len.to_le_bytes()),
            (16, &self.weight_offset.to_le_bytes()),
            (20, &self.weight_len.to_le_bytes()),
            (CRC_OFFSET, &self.crc.to_le_bytes()),
            (28, &self.reserved.to_le_bytes()),
        ];
        out[..4].copy_from_slice(&MAGIC);
        for (at, value) in fields {
            out[at..at + value.len()].copy_from_slice(value);
        }
        out
    }
}

/// The CRC-32 of a blob, computed with the CRC field read as zero.
///
/// Returns 0 for slices shorter than the preamble (they are refused before this matters).
pub fn blob_crc(blob: &[u8]) -> u32 {
    let (Some(before), Some(after)) = (blob.get(..CRC_OFFSET), blob.get(CRC_OFFSET + 4..)) else {
        return 0;
    };
    let mut crc = crc32::Crc32::new();
    crc.update(before);
    crc.update(&[0; 4]);
    crc.update(after);
    crc.finish()
}

/// The fixed part of the header, before the layer list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeaderInfo {
    pub mode: QuantMode,
    pub input_features: u32,
    pub input_quant: Option<QParams>,
    /// Number of layers in the list.
    pub layer_count: usize,
    /// The layout of the recurrent layers' int8 weight matrices.
    pub layout: crate::kernels::WeightLayout,
}

/// A blob whose preamble, checksum and header have been checked: the single entry point for
/// untrusted bytes. Layer shapes and weight bounds are checked by [`crate::Model::from_bytes`],
/// which builds on this view.
///
/// The header is decoded one layer at a time ([`Blob::layers`]) rather than into a [`Header`]
/// value, so loading on a microcontroller needs stack for one layer description, not sixteen.
#[derive(Debug, Clone, Copy)]
pub struct Blob<'a> {
    info: HeaderInfo,
    /// The encoded layer list (after its length prefix).
    layer_bytes: &'a [u8],
    extensions: Extensions<'a>,
    weights: &'a [u8],
    total_len: usize,
}

/// Decodes the layers of a checked blob in order.
#[derive(Debug, Clone)]
pub struct LayerIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl LayerIter<'_> {
    /// Decodes the next layer into `out` rather than returning it by value (a layer
    /// description is a few hundred bytes: the loader keeps one on its stack, not three).
    /// `None` after the last layer; on an error `out` is unspecified and the iteration ends.
    pub(crate) fn next_into(&mut self, out: &mut Layer) -> Option<Result<(), LoadError>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut reader = wire::Reader::new(self.rest);
        if reader.layer_into(out).is_err() {
            self.left = 0;
            return Some(Err(LoadError::HeaderDecode));
        }
        self.rest = reader.rest();
        Some(Ok(()))
    }
}

impl Iterator for LayerIter<'_> {
    type Item = Result<Layer, LoadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut layer = Layer::RepeatVector(RepeatLayer { times: 0 });
        Some(self.next_into(&mut layer)?.map(|()| layer))
    }
}

impl<'a> Blob<'a> {
    /// Checks magic, version, reserved fields, section layout, alignment and CRC, and decodes the
    /// header. Bytes after the declared total length are ignored (flash pages are often padded).
    ///
    /// # Errors
    /// The first failed check, as a [`LoadError`].
    ///
    /// # Panics
    /// Never.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, LoadError> {
        Self::check_with(bytes, &mut Layer::RepeatVector(RepeatLayer { times: 0 }))
    }

    /// [`Blob::new_checked`], decoding the layers into `layer` (left unspecified): the
    /// loader passes the one it decodes them into again to build its plans, so loading keeps
    /// a single layer description on the stack.
    pub(crate) fn check_with(bytes: &'a [u8], layer: &mut Layer) -> Result<Self, LoadError> {
        let pre = Preamble::parse(bytes)?;
        if !(FORMAT_VERSION_PLAIN..=FORMAT_VERSION).contains(&pre.version) {
            return Err(LoadError::UnsupportedVersion { found: pre.version });
        }
        if pre.reserved != 0 {
            return Err(LoadError::ReservedNotZero);
        }
        if pre.flags & !KNOWN_FLAGS != 0 || (pre.flags != 0 && pre.version < FORMAT_VERSION_FLAGS) {
            return Err(LoadError::BadFlags { flags: pre.flags });
        }
        let total = pre.total_len as usize;
        if bytes.len() < total {
            return Err(LoadError::Truncated {
                needed: pre.total_len,
                found: sat_u32(bytes.len()),
            });
        }
        let blob = bytes.get(..total).ok_or(LoadError::BadLayout)?;
        let header_end = PREAMBLE_LEN
            .checked_add(pre.header_len as usize)
            .ok_or(LoadError::BadLayout)?;
        let weight_offset = pre.weight_offset as usize;
        let weight_end = weight_offset
            .checked_add(pre.weight_len as usize)
            .ok_or(LoadError::BadLayout)?;
        if weight_offset < header_end
            || !weight_offset.is_multiple_of(WEIGHT_ALIGN)
            || !pre.weight_len.is_multiple_of(4)
            || weight_end != total
        {
            return Err(LoadError::BadLayout);
        }
        let stored = pre.crc;
        let computed = blob_crc(blob);
        if stored != computed && !cfg!(fuzzing) {
            return Err(LoadError::ChecksumMismatch { stored, computed });
        }
        let padding = blob
            .get(header_end..weight_offset)
            .ok_or(LoadError::BadLayout)?;
        if padding.iter().any(|&b| b != 0) {
            return Err(LoadError::BadLayout);
        }
        let weights = blob.get(weight_offset..).ok_or(LoadError::BadLayout)?;
        if !(weights.as_ptr() as usize).is_multiple_of(4) {
            return Err(LoadError::MisalignedWeights);
        }
        let header_bytes = blob
            .get(PREAMBLE_LEN..header_end)
            .ok_or(LoadError::BadLayout)?;
        // The wire format of `Header`: its three leading fields, then the layer list as a
        // varint length and the layers.
        let mut reader = wire::Reader::new(header_bytes);
        let (mode, input_features, input_quant) =
            reader.prefix().map_err(|_| LoadError::HeaderDecode)?;
        let count = reader.u32().map_err(|_| LoadError::HeaderDecode)?;
        let layer_bytes = reader.rest();
        let layer_count = count as usize;
        if layer_count > MAX_LAYERS {
            return Err(LoadError::LayerCount { found: count });
        }
        let layout = if pre.flags & FLAG_INTERLEAVED4 != 0 {
            // The packed layout is the integer projections'; the float paths read row-major.
            if !mode.is_integer() {
                return Err(LoadError::BadFlags { flags: pre.flags });
            }
            crate::error::Feature::Interleaved4.require(None)?;
            crate::kernels::WeightLayout::Interleaved4
        } else {
            crate::kernels::WeightLayout::RowMajor
        };
        let mut blob = Self {
            info: HeaderInfo {
                mode,
                input_features,
                input_quant,
                layer_count,
                layout,
            },
            layer_bytes,
            extensions: Extensions::default(),
            weights,
            total_len: total,
        };
        // Every layer must decode, then version 2 has its extensions, and nothing may follow.
        let mut layers = blob.layers();
        while let Some(decoded) = layers.next_into(layer) {
            decoded?;
        }
        let mut rest = layers.rest;
        if pre.version >= 2 {
            let mut reader = wire::Reader::new(rest);
            let mut extensions = reader.extensions().map_err(|_| LoadError::HeaderDecode)?;
            check_extensions(&mut extensions)?;
            blob.extensions = extensions;
            rest = reader.rest();
        }
        if !rest.is_empty() {
            return Err(LoadError::HeaderDecode);
        }
        Ok(blob)
    }

    /// The fixed part of the header.
    pub fn info(&self) -> HeaderInfo {
        self.info
    }

    /// The optional header parts of format version 2 (all absent in version 1).
    pub fn extensions(&self) -> Extensions<'a> {
        self.extensions
    }

    /// The layer descriptions, decoded one at a time.
    pub fn layers(&self) -> LayerIter<'a> {
        LayerIter {
            rest: self.layer_bytes,
            left: self.info.layer_count,
        }
    }

    /// The whole header as one value (for tools; it holds up to [`MAX_LAYERS`] layers).
    ///
    /// # Errors
    /// Never for a checked blob; [`LoadError::HeaderDecode`] is kept for completeness.
    pub fn decode_header(&self) -> Result<Header, LoadError> {
        let mut layers = heapless::Vec::new();
        for layer in self.layers() {
            layers.push(layer?).map_err(|_| LoadError::LayerCount {
                found: sat_u32(self.info.layer_count),
            })?;
        }
        Ok(Header {
            mode: self.info.mode,
            input_features: self.info.input_features,
            input_quant: self.info.input_quant,
            layers,
        })
    }

    /// The weight section.
    pub fn weights(&self) -> &'a [u8] {
        self.weights
    }

    /// Bytes of the blob (its declared total length).
    pub fn len(&self) -> usize {
        self.total_len
    }

    /// Always false: a checked blob has at least a preamble.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Range checks of the extension records, so the detector and text tools can trust them.
fn check_extensions(extensions: &mut Extensions<'_>) -> Result<(), LoadError> {
    // A build without the detector drops its parameters unread: `Model::detector_params`
    // then answers `None`, as for a blob without them.
    #[cfg(not(feature = "detect"))]
    {
        extensions.detector = None;
    }
    #[cfg(feature = "detect")]
    if let Some(d) = extensions.detector {
        crate::detect::check_params(&d)?;
    }
    if extensions.vocabulary == Some("") {
        return Err(LoadError::BadExtension);
    }
    Ok(())
}
