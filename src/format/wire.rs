//! The header's wire format, decoded by hand: postcard's encoding of exactly the types of
//! [`super::header`], nothing generic.
//!
//! Postcard writes unsigned integers as LEB128 varints (a `u32` in at most 5 bytes, the last
//! holding at most 4 bits), `i32` zig-zag encoded first, `u8`/`i8` and `bool` (0 or 1) as one
//! byte, `f32` as 4 little-endian bytes, an `Option` as 0, or 1 then the value, an enum as its
//! variant index then its fields, a struct or tuple as its fields in order, and a `&str` as a
//! varint length then UTF-8 bytes. The tools write headers with postcard; the core reads them
//! here because serde's generic visitors cost about 3 KB of flash and a deep stack on a
//! Cortex-M. The tests check that every byte string gives what `postcard::take_from_bytes`
//! gives: the same value and the same rest, or an error for the same inputs.

use super::header::{
    Activation, Cell, DenseLayer, DenseQuant, DetectorParams, DirectionWeights, EmbeddingLayer,
    Extensions, Layer, Merge, NormalizationLayer, QParams, QuantMode, RecurrentLayer,
    RecurrentQuant, RepeatLayer, Requant, TensorRef,
};

/// The input ended early or holds a value its type does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

type Decoded<T> = Result<T, Malformed>;

/// A cursor over header bytes.
///
/// Errors are sticky: a read past the end or of a value its type does not allow marks the
/// reader as failed and gives a placeholder (zero, `false`, the first variant), and decoding
/// goes on until the public entry points ([`Reader::layer_into`], [`Reader::prefix`], ...)
/// report [`Malformed`] once. Valid input decodes exactly as with an early return at the first
/// error, invalid input is refused all the same, and the schema's reads need no branch each
/// (about 300 bytes less flash on a Cortex-M4 than `?` after every read). A failed reader
/// does a bounded amount of work: no loop depends on a value read after the failure but the
/// caller's layer count, which is bounded by `MAX_LAYERS`.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    failed: bool,
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            failed: false,
        }
    }

    /// The bytes not read yet (unspecified after a failure).
    pub(crate) const fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    /// `value`, or [`Malformed`] if any read so far failed.
    fn done<T>(&self, value: T) -> Decoded<T> {
        if self.failed {
            Err(Malformed)
        } else {
            Ok(value)
        }
    }

    /// Marks the reader failed unless `ok`.
    fn check(&mut self, ok: bool) {
        self.failed |= !ok;
    }

    #[inline(never)]
    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => {
                self.failed = true;
                0
            }
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        match self.bytes.split_at_checked(n) {
            Some((head, rest)) => {
                self.bytes = rest;
                head
            }
            None => {
                self.failed = true;
                &[]
            }
        }
    }

    /// A `u32` varint, refused past 32 bits as postcard does.
    #[inline(never)]
    fn varint(&mut self) -> u32 {
        let mut out = 0u32;
        for i in 0..5 {
            let b = self.byte();
            out |= u32::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                self.check(i < 4 || b <= 0x0F);
                return out;
            }
        }
        self.failed = true;
        out
    }

    /// A `u32` varint (see [`Reader::varint`]).
    pub(crate) fn u32(&mut self) -> Decoded<u32> {
        let v = self.varint();
        self.done(v)
    }

    fn i32(&mut self) -> i32 {
        let n = self.varint();
        ((n >> 1) as i32) ^ -((n & 1) as i32)
    }

    fn f32(&mut self) -> f32 {
        match *self.take(4) {
            [a, b, c, d] => f32::from_le_bytes([a, b, c, d]),
            _ => 0.0,
        }
    }

    /// A `bool`: 0 or 1. Also an `Option` tag (whether a value follows), encoded the same way.
    /// Out of line: it is read at some twenty places of the schema.
    #[inline(never)]
    fn bool(&mut self) -> bool {
        let b = self.byte();
        self.check(b <= 1);
        b == 1
    }

    /// An `Option` tag: whether a value follows.
    fn some(&mut self) -> bool {
        self.bool()
    }

    /// An enum's variant index, below `count` (0 when it is not).
    #[inline(never)]
    fn variant(&mut self, count: u32) -> u32 {
        let v = self.varint();
        self.check(v < count);
        if v < count {
            v
        } else {
            0
        }
    }

    fn mode(&mut self) -> QuantMode {
        match self.variant(4) {
            0 => QuantMode::F32,
            1 => QuantMode::Int8Weights,
            2 => QuantMode::Int8,
            _ => QuantMode::Int16,
        }
    }

    #[inline(never)]
    fn qparams(&mut self) -> QParams {
        QParams {
            scale: self.f32(),
            zero_point: self.i32(),
        }
    }

    fn opt_qparams(&mut self) -> Option<QParams> {
        self.some().then(|| self.qparams())
    }

    #[inline(never)]
    fn requant(&mut self) -> Requant {
        Requant {
            multiplier: self.i32(),
            shift: self.byte() as i8,
        }
    }

    fn activation(&mut self) -> Activation {
        match self.variant(6) {
            0 => Activation::Linear,
            1 => Activation::Relu,
            2 => Activation::Tanh,
            3 => Activation::Sigmoid,
            4 => Activation::HardSigmoid,
            _ => Activation::Softmax,
        }
    }

    fn cell(&mut self) -> Cell {
        match self.variant(3) {
            0 => Cell::SimpleRnn,
            1 => Cell::Lstm,
            _ => Cell::Gru {
                reset_after: self.bool(),
            },
        }
    }

    fn merge(&mut self) -> Merge {
        match self.variant(4) {
            0 => Merge::Concat,
            1 => Merge::Sum,
            2 => Merge::Mul,
            _ => Merge::Ave,
        }
    }

    #[inline(never)]
    fn tensor(&mut self) -> TensorRef {
        TensorRef {
            offset: self.varint(),
            len: self.varint(),
        }
    }

    fn opt_tensor(&mut self) -> Option<TensorRef> {
        self.some().then(|| self.tensor())
    }

    /// Decodes [`DirectionWeights`] into `d`, field by field, in place.
    fn direction_into(&mut self, d: &mut DirectionWeights) {
        d.kernel = self.tensor();
        d.recurrent_kernel = self.tensor();
        for t in [
            &mut d.bias,
            &mut d.recurrent_bias,
            &mut d.kernel_scale,
            &mut d.recurrent_scale,
            &mut d.reset_scale,
        ] {
            *t = self.opt_tensor();
        }
    }

    fn recurrent_quant(&mut self) -> RecurrentQuant {
        RecurrentQuant {
            output: self.qparams(),
            output_requant: self.requant(),
            h_to_q15: self.requant(),
            cell_frac_bits: self.byte(),
            merged: self.some().then(|| (self.qparams(), self.requant())),
        }
    }

    /// Decodes a [`RecurrentLayer`] into `r` in place: the two directions' weights are the
    /// bulk of a layer description, and building them into `r` rather than into temporaries
    /// moved by value keeps the decoder's stack frame small on a microcontroller.
    fn recurrent_into(&mut self, r: &mut RecurrentLayer) {
        r.cell = self.cell();
        r.units = self.varint();
        r.activation = self.activation();
        r.recurrent_activation = self.activation();
        r.return_sequences = self.bool();
        r.go_backwards = self.bool();
        r.bidirectional = self.some().then(|| self.merge());
        self.direction_into(&mut r.forward);
        r.backward = None;
        if self.some() {
            // Any value: `direction_into` overwrites every field. Not a copy of `forward`,
            // which becomes a call to `memcpy`, linked for nothing else in small firmware.
            let backward = r.backward.insert(DirectionWeights::default());
            self.direction_into(backward);
        }
        r.quant = self.some().then(|| self.recurrent_quant());
    }

    fn dense(&mut self) -> DenseLayer {
        DenseLayer {
            units: self.varint(),
            activation: self.activation(),
            kernel: self.tensor(),
            bias: self.opt_tensor(),
            kernel_scale: self.opt_tensor(),
            quant: self.some().then(|| DenseQuant {
                output: self.qparams(),
                output_requant: self.requant(),
            }),
        }
    }

    /// One [`Layer`].
    #[cfg(test)]
    pub(crate) fn layer(&mut self) -> Decoded<Layer> {
        let mut layer = Layer::RepeatVector(RepeatLayer { times: 0 });
        self.layer_into(&mut layer)?;
        Ok(layer)
    }

    /// Decodes one [`Layer`] into `out` (whose value is unspecified on error). A recurrent
    /// layer is decoded in place ([`Reader::recurrent_into`]); the other kinds are small.
    pub(crate) fn layer_into(&mut self, out: &mut Layer) -> Decoded<()> {
        // Each kind is written straight into `out`: no layer-sized temporary on the stack.
        match self.variant(5) {
            0 => {
                if !matches!(out, Layer::Recurrent(_)) {
                    // Any value of the variant: `recurrent_into` overwrites every field.
                    *out = Layer::Recurrent(RecurrentLayer {
                        cell: Cell::SimpleRnn,
                        units: 0,
                        activation: Activation::Linear,
                        recurrent_activation: Activation::Linear,
                        return_sequences: false,
                        go_backwards: false,
                        bidirectional: None,
                        forward: DirectionWeights::default(),
                        backward: None,
                        quant: None,
                    });
                }
                if let Layer::Recurrent(r) = out {
                    self.recurrent_into(r);
                }
            }
            1 => *out = Layer::Dense(self.dense()),
            2 => {
                *out = Layer::Normalization(NormalizationLayer {
                    mean: self.tensor(),
                    std: self.tensor(),
                });
            }
            3 => {
                *out = Layer::Embedding(EmbeddingLayer {
                    vocab: self.varint(),
                    dim: self.varint(),
                    table: self.tensor(),
                    quant: self.opt_qparams(),
                });
            }
            _ => {
                *out = Layer::RepeatVector(RepeatLayer {
                    times: self.varint(),
                })
            }
        }
        self.done(())
    }

    /// The header's leading fields: mode, input features, input quantization.
    pub(crate) fn prefix(&mut self) -> Decoded<(QuantMode, u32, Option<QParams>)> {
        let prefix = (self.mode(), self.varint(), self.opt_qparams());
        self.done(prefix)
    }

    /// The version 2 [`Extensions`] record.
    pub(crate) fn extensions(&mut self) -> Decoded<Extensions<'a>> {
        let detector = self.some().then(|| DetectorParams {
            window: self.varint(),
            forecasts_change: self.bool(),
            short_window: self.varint(),
            long_window: self.varint(),
            warmup: self.varint(),
            flag_on: self.f32(),
            flag_off: self.f32(),
            refractory: self.varint(),
        });
        let vocabulary = if self.some() {
            let len = self.varint() as usize;
            let text = core::str::from_utf8(self.take(len));
            self.check(text.is_ok());
            text.ok()
        } else {
            None
        };
        self.done(Extensions {
            detector,
            vocabulary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::DeserializeOwned;

    /// Decodes `bytes` both ways; they must agree on the value and the rest, or both refuse.
    /// Values are compared by their encodings, so a NaN read from random bytes compares by
    /// its bits.
    fn agree<T>(bytes: &[u8], ours: impl Fn(&mut Reader<'_>) -> Decoded<T>)
    where
        T: DeserializeOwned + serde::Serialize,
    {
        let mut r = Reader::new(bytes);
        let mine = ours(&mut r).ok().map(|v| (encode(&v), r.rest()));
        let theirs = postcard::take_from_bytes::<T>(bytes)
            .ok()
            .map(|(v, rest)| (encode(&v), rest));
        assert_eq!(mine, theirs, "{bytes:02x?}");
    }

    fn encode<T: serde::Serialize>(value: &T) -> std::vec::Vec<u8> {
        let mut buf = [0u8; 1024];
        postcard::to_slice(value, &mut buf).unwrap().to_vec()
    }

    fn tensor(n: u32) -> TensorRef {
        TensorRef {
            offset: n.wrapping_mul(0x0101_0101),
            len: n,
        }
    }

    fn sample_layers() -> std::vec::Vec<Layer> {
        let direction = |n| DirectionWeights {
            kernel: tensor(n),
            recurrent_kernel: tensor(n + 1),
            bias: Some(tensor(n + 2)),
            recurrent_bias: None,
            kernel_scale: Some(tensor(u32::MAX)),
            recurrent_scale: Some(tensor(0)),
            reset_scale: if n % 2 == 0 { None } else { Some(tensor(7)) },
        };
        let q = QParams {
            scale: 0.012_5,
            zero_point: -128,
        };
        let rq = Requant {
            multiplier: 1 << 30,
            shift: -30,
        };
        let mut layers = std::vec::Vec::new();
        for (i, cell) in [Cell::SimpleRnn, Cell::Lstm, Cell::Gru { reset_after: true }]
            .into_iter()
            .enumerate()
        {
            layers.push(Layer::Recurrent(RecurrentLayer {
                cell,
                units: 300 + i as u32,
                activation: Activation::HardSigmoid,
                recurrent_activation: Activation::Softmax,
                return_sequences: i == 1,
                go_backwards: i == 2,
                bidirectional: [None, Some(Merge::Ave), Some(Merge::Concat)][i],
                forward: direction(i as u32),
                backward: (i > 0).then(|| direction(9)),
                quant: (i != 1).then_some(RecurrentQuant {
                    output: q,
                    output_requant: rq,
                    h_to_q15: Requant::default(),
                    cell_frac_bits: 11,
                    merged: (i == 2).then_some((q, rq)),
                }),
            }));
        }
        layers.push(Layer::Dense(DenseLayer {
            units: 77,
            activation: Activation::Relu,
            kernel: tensor(3),
            bias: None,
            kernel_scale: Some(tensor(4)),
            quant: Some(DenseQuant {
                output: q,
                output_requant: rq,
            }),
        }));
        layers.push(Layer::Normalization(NormalizationLayer {
            mean: tensor(5),
            std: tensor(6),
        }));
        layers.push(Layer::Embedding(EmbeddingLayer {
            vocab: 1 << 24,
            dim: 16,
            table: tensor(8),
            quant: Some(q),
        }));
        layers.push(Layer::RepeatVector(RepeatLayer { times: 65_536 }));
        layers
    }

    #[test]
    fn every_layer_kind_decodes_as_postcard_does() {
        for layer in sample_layers() {
            let bytes = encode(&layer);
            agree::<Layer>(&bytes, |r| r.layer());
            let mut r = Reader::new(&bytes);
            assert_eq!(r.layer(), Ok(layer));
            // Every truncation is refused by both.
            for cut in 0..bytes.len() {
                agree::<Layer>(&bytes[..cut], |r| r.layer());
            }
        }
    }

    /// The loader decodes every layer into one value in place: whatever layer it held before
    /// (any kind, a bidirectional one with quantization included), the result equals a fresh
    /// decode.
    #[test]
    fn decoding_in_place_overwrites_every_field() {
        let layers = sample_layers();
        for before in &layers {
            for layer in &layers {
                let bytes = encode(layer);
                let mut slot = *before;
                let mut r = Reader::new(&bytes);
                assert_eq!(r.layer_into(&mut slot), Ok(()));
                assert_eq!(&slot, layer);
                assert!(r.rest().is_empty());
            }
        }
    }

    #[test]
    fn prefix_and_extensions_decode_as_postcard_does() {
        let prefix = (
            QuantMode::Int16,
            4096u32,
            Some(QParams {
                scale: 1.5,
                zero_point: 32767,
            }),
        );
        agree::<(QuantMode, u32, Option<QParams>)>(&encode(&prefix), |r| r.prefix());
        let detector = DetectorParams {
            window: 24,
            forecasts_change: true,
            short_window: 3,
            long_window: 1000,
            warmup: u32::MAX,
            flag_on: 0.5,
            flag_off: 0.25,
            refractory: 7,
        };
        for extensions in [
            Extensions::default(),
            Extensions {
                detector: Some(detector),
                vocabulary: Some("ab\u{e9}\u{1F600}"),
            },
        ] {
            let bytes = encode(&extensions);
            let mut r = Reader::new(&bytes);
            assert_eq!(r.extensions(), Ok(extensions));
            assert!(r.rest().is_empty());
        }
        // Invalid UTF-8 in the vocabulary.
        let mut r = Reader::new(&[0, 1, 2, 0xC3, 0x28]);
        assert_eq!(r.extensions(), Err(Malformed));
    }

    #[test]
    fn varints_are_refused_where_postcard_refuses_them() {
        for bytes in [
            &[0x80, 0x80, 0x80, 0x80, 0x0F][..],
            &[0x80, 0x80, 0x80, 0x80, 0x10],
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            &[0x80],
            &[0x7F, 0x00],
            &[],
        ] {
            agree::<u32>(bytes, |r| r.u32());
        }
    }

    proptest! {
        #[test]
        fn random_bytes_decode_as_postcard_does(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            agree::<Layer>(&bytes, |r| r.layer());
            agree::<(QuantMode, u32, Option<QParams>)>(&bytes, |r| r.prefix());
        }

        #[test]
        fn mutated_layers_decode_as_postcard_does(
            which in 0usize..7,
            at in any::<prop::sample::Index>(),
            value in any::<u8>(),
        ) {
            let layers = sample_layers();
            let mut bytes = encode(&layers[which]);
            let i = at.index(bytes.len());
            bytes[i] = value;
            agree::<Layer>(&bytes, |r| r.layer());
        }
    }
}
