//! Error values of the core: one enum for loading a blob, one for running a model.
//!
//! Both are small `Copy` values so they can be returned from interrupt handlers, logged with
//! defmt, and compared in tests; `Display` needs no allocation.

use core::fmt;

/// Why a model blob was refused by [`crate::Model::from_bytes`].
///
/// Variants are named by the check that failed; `layer` fields are 0-based indices into the
/// blob's layer list, so a tool can point at the offending layer.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LoadError {
    /// Fewer bytes than the fixed preamble, or than the preamble's declared total length.
    Truncated { needed: u32, found: u32 },
    /// The first four bytes are not `ERNN`.
    BadMagic,
    /// The blob was written for a format version this build does not read.
    UnsupportedVersion { found: u16 },
    /// Reserved preamble bytes or flags are not zero (written by a newer, unknown writer).
    ReservedNotZero,
    /// The preamble's lengths and offsets are inconsistent with each other or the blob size.
    BadLayout,
    /// The CRC-32 stored in the preamble does not match the bytes.
    ChecksumMismatch { stored: u32, computed: u32 },
    /// The weight section does not start on a 4-byte boundary in memory.
    /// Place the blob in aligned memory (see [`crate::format::Aligned`] and [`crate::include_blob!`]).
    MisalignedWeights,
    /// The postcard header could not be decoded, or has bytes left over.
    HeaderDecode,
    /// Quantization parameters are missing, out of range, or present in the wrong mode.
    BadQuantization { layer: u8 },
    /// No layers, or more than [`crate::MAX_LAYERS`].
    LayerCount { found: u32 },
    /// A width (features or units) is zero or above [`crate::MAX_WIDTH`].
    BadWidth { layer: u8 },
    /// An activation is not allowed at this place (e.g. softmax inside a recurrent cell).
    BadActivation { layer: u8 },
    /// A recurrent layer reads a single vector; Keras requires it to read a sequence.
    RecurrentAfterVector { layer: u8 },
    /// A weight tensor's declared size does not match the layer's shape.
    WeightShape { layer: u8 },
    /// A weight tensor lies outside the weight section or is not 4-byte aligned within it.
    WeightBounds { layer: u8 },
    /// The combination of options is valid Keras but not supported by this build.
    Unsupported { layer: u8 },
    /// A layer that must come first (Embedding; Normalization in the integer modes) does not,
    /// or a RepeatVector does not follow a single vector.
    BadPlacement { layer: u8 },
    /// A format version 2 extension (detector parameters, vocabulary) is out of range or does
    /// not fit the model.
    BadExtension,
    /// The blob needs a part of edgernn that this build leaves out (a Cargo feature turned
    /// off to save flash): its quantization mode (`layer` is `None`) or layer `layer`.
    FeatureDisabled { feature: Feature, layer: Option<u8> },
    /// The preamble's flags name a bit this build does not know, or are set in a format
    /// version before 3 (which has none), or ask for packed weights in a float mode.
    BadFlags { flags: u16 },
    /// A layer of a blob with pre-packed weights (`interleaved4`) has a shape the packed
    /// kernels cannot take: units not a multiple of 4.
    PackedShape { layer: u8 },
}

/// A part of the runtime behind a Cargo feature of the same name (see the crate docs).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Feature {
    /// `float`: the F32 and Int8Weights modes.
    Float,
    /// `integer`: the Int8 and Int16 modes.
    Integer,
    /// `simple-rnn`: SimpleRNN cells.
    SimpleRnn,
    /// `lstm`: LSTM cells.
    Lstm,
    /// `gru`: GRU cells.
    Gru,
    /// `whole-window`: Bidirectional, `go_backwards` and RepeatVector layers.
    WholeWindow,
    /// `embedding`: Embedding layers.
    Embedding,
    /// `softmax`: softmax Dense layers.
    Softmax,
    /// `interleaved4`: blobs with pre-packed weights.
    Interleaved4,
}

impl Feature {
    /// The Cargo feature's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Integer => "integer",
            Self::SimpleRnn => "simple-rnn",
            Self::Lstm => "lstm",
            Self::Gru => "gru",
            Self::WholeWindow => "whole-window",
            Self::Embedding => "embedding",
            Self::Softmax => "softmax",
            Self::Interleaved4 => "interleaved4",
        }
    }

    /// The feature that runs `cell`.
    pub const fn for_cell(cell: crate::format::Cell) -> Self {
        match cell {
            crate::format::Cell::SimpleRnn => Self::SimpleRnn,
            crate::format::Cell::Lstm => Self::Lstm,
            crate::format::Cell::Gru { .. } => Self::Gru,
        }
    }

    /// Whether this build has it. A constant, so code behind a disabled feature is removed.
    pub const fn enabled(self) -> bool {
        match self {
            Self::Float => cfg!(feature = "float"),
            Self::Integer => cfg!(feature = "integer"),
            Self::SimpleRnn => cfg!(feature = "simple-rnn"),
            Self::Lstm => cfg!(feature = "lstm"),
            Self::Gru => cfg!(feature = "gru"),
            Self::WholeWindow => cfg!(feature = "whole-window"),
            Self::Embedding => cfg!(feature = "embedding"),
            Self::Softmax => cfg!(feature = "softmax"),
            Self::Interleaved4 => cfg!(feature = "interleaved4"),
        }
    }

    /// `Ok` when enabled, else [`LoadError::FeatureDisabled`] for `layer`.
    pub(crate) const fn require(self, layer: Option<u8>) -> Result<(), LoadError> {
        if self.enabled() {
            Ok(())
        } else {
            Err(LoadError::FeatureDisabled {
                feature: self,
                layer,
            })
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { needed, found } => {
                write!(f, "blob truncated: needs {needed} bytes, has {found}")
            }
            Self::BadMagic => f.write_str("not an edgernn blob (bad magic)"),
            Self::UnsupportedVersion { found } => {
                write!(f, "unsupported blob format version {found}")
            }
            Self::ReservedNotZero => f.write_str("reserved preamble bytes are not zero"),
            Self::BadLayout => f.write_str("inconsistent section offsets or lengths in preamble"),
            Self::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            Self::MisalignedWeights => {
                f.write_str("weight section is not 4-byte aligned in memory")
            }
            Self::HeaderDecode => f.write_str("model header could not be decoded"),
            Self::BadQuantization { layer } => {
                write!(
                    f,
                    "layer {layer}: invalid or missing quantization parameters"
                )
            }
            Self::LayerCount { found } => write!(
                f,
                "model has {found} layers; 1 to {} are supported",
                crate::MAX_LAYERS
            ),
            Self::BadWidth { layer } => write!(
                f,
                "layer {layer}: width is zero or above {}",
                crate::MAX_WIDTH
            ),
            Self::BadActivation { layer } => {
                write!(f, "layer {layer}: activation not allowed here")
            }
            Self::RecurrentAfterVector { layer } => write!(
                f,
                "layer {layer}: recurrent layer after a layer that returns a single vector"
            ),
            Self::WeightShape { layer } => {
                write!(f, "layer {layer}: weight tensor size does not match shape")
            }
            Self::WeightBounds { layer } => {
                write!(f, "layer {layer}: weight tensor outside the weight section")
            }
            Self::Unsupported { layer } => {
                write!(f, "layer {layer}: option combination not supported")
            }
            Self::BadPlacement { layer } => write!(
                f,
                "layer {layer}: layer not allowed at this position in the stack"
            ),
            Self::BadExtension => {
                f.write_str("detector parameters or vocabulary out of range for this model")
            }
            Self::FeatureDisabled { feature, layer } => {
                if let Some(layer) = layer {
                    write!(f, "layer {layer}: ")?;
                }
                write!(
                    f,
                    "needs edgernn's `{}` feature, which this build leaves out",
                    feature.name()
                )
            }
            Self::BadFlags { flags } => write!(
                f,
                "preamble flags {flags:#06x} unknown, or not allowed in this version or mode"
            ),
            Self::PackedShape { layer } => write!(
                f,
                "layer {layer}: pre-packed (interleaved4) weights need units a multiple of 4"
            ),
        }
    }
}

impl core::error::Error for LoadError {}

/// Why a call on a loaded [`crate::Model`] did not run.
///
/// All of these are caller mistakes detected before any state is touched: on error the state
/// buffer is unchanged.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RunError {
    /// The input slice does not hold `steps x input_features` values.
    InputLength { expected: u32, found: u32 },
    /// The state slice is not exactly [`crate::Model::state_len`] values.
    StateLength { expected: u32, found: u32 },
    /// The scratch slice is shorter than the model asked for.
    ScratchTooSmall { needed: u32, found: u32 },
    /// The output slice is shorter than the model's output.
    OutputTooSmall { needed: u32, found: u32 },
    /// The model has a layer that needs the whole window (Bidirectional or `go_backwards`).
    NotStreamable,
    /// A sequence call with zero time steps.
    EmptySequence,
    /// A size computation overflowed `usize` (absurd step count).
    TooLarge,
    /// An Embedding model got a value at `index` that is not a token id in `[0, vocab)`.
    InvalidToken { index: u32 },
    /// The state/scratch element type does not fit the model: `i32` buffers for the integer
    /// modes, `f32` otherwise.
    BufferType,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::InputLength { expected, found } => {
                write!(f, "input has {found} values, expected {expected}")
            }
            Self::StateLength { expected, found } => {
                write!(f, "state has {found} values, expected {expected}")
            }
            Self::ScratchTooSmall { needed, found } => {
                write!(f, "scratch has {found} values, needs {needed}")
            }
            Self::OutputTooSmall { needed, found } => {
                write!(f, "output has room for {found} values, needs {needed}")
            }
            Self::NotStreamable => f.write_str(
                "model needs the whole window (bidirectional or go_backwards layer): use the sequence call",
            ),
            Self::EmptySequence => f.write_str("sequence has zero time steps"),
            Self::TooLarge => f.write_str("sequence too long for this platform's address space"),
            Self::InvalidToken { index } => {
                write!(f, "input value {index} is not a token id of the model's vocabulary")
            }
            Self::BufferType => f.write_str(
                "state and scratch must be i32 for integer-mode models and f32 otherwise",
            ),
        }
    }
}

impl core::error::Error for RunError {}

/// Saturating conversion for error payloads: sizes above `u32::MAX` are reported as `u32::MAX`.
pub(crate) fn sat_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
