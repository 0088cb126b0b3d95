//! The model header: the postcard-encoded description of layers, shapes, activations and
//! where each weight tensor lives in the weight section.
//!
//! These types are the schema of format versions 1 and 2 (version 2 appends [`Extensions`] after
//! the layer list). Postcard encodes enums by variant index and structs by field order, so
//! reordering variants or fields is a format change: append only, and bump
//! [`super::FORMAT_VERSION`] when the meaning of existing bytes changes.

use serde::{Deserialize, Serialize};

pub use crate::quant::fixed::Requant;
use crate::MAX_LAYERS;

/// How weights are stored and how the arithmetic runs (see [`crate::quant`]).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum QuantMode {
    /// f32 weights and arithmetic.
    F32,
    /// int8 weights with one f32 scale per output row; f32 activations, state and arithmetic.
    Int8Weights,
    /// Integer only: int8 activations, int8 weights, wide accumulators, Q0.15 gates, int16 cell
    /// state.
    Int8,
    /// Integer only with int16 activations and state and int8 weights.
    Int16,
}

impl QuantMode {
    /// Whether the arithmetic is integer-only.
    pub const fn is_integer(self) -> bool {
        matches!(self, Self::Int8 | Self::Int16)
    }

    /// Range of activation codes in the integer modes.
    pub const fn activation_range(self) -> (i32, i32) {
        match self {
            Self::Int16 => (i16::MIN as i32, i16::MAX as i32),
            _ => (i8::MIN as i32, i8::MAX as i32),
        }
    }
}

/// Affine quantization of an activation tensor: `real = (code - zero_point) * scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QParams {
    /// Positive and finite.
    pub scale: f32,
    /// Within the mode's code range.
    pub zero_point: i32,
}

/// Element-wise activation functions, with Keras 3 definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Activation {
    /// `x`.
    Linear,
    /// `max(x, 0)`; NaN stays NaN.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// The logistic function `1 / (1 + exp(-x))` (Keras 3's `sigmoid`).
    Sigmoid,
    /// Keras 3's `hard_sigmoid`: `clip(x / 6 + 0.5, 0, 1)` (Keras 2 used `0.2 x + 0.5`).
    HardSigmoid,
    /// Softmax over the feature axis; only for Dense layers.
    Softmax,
}

/// The recurrent cell of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Cell {
    /// `h = a(W x + U h + b)`.
    SimpleRnn,
    /// Gates in Keras order i, f, c, o.
    Lstm,
    /// Gates in Keras order z, r, h. `reset_after = true` is the Keras 3 default and matches
    /// PyTorch and ONNX `linear_before_reset = 1`.
    Gru { reset_after: bool },
}

impl Cell {
    /// Number of stacked gate blocks in the kernels.
    pub const fn gates(self) -> usize {
        match self {
            Self::SimpleRnn => 1,
            Self::Lstm => 4,
            Self::Gru { .. } => 3,
        }
    }

    /// Whether the cell carries a memory cell `c` beside `h`.
    pub const fn has_cell_state(self) -> bool {
        matches!(self, Self::Lstm)
    }
}

/// How a Bidirectional layer combines its forward and backward outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Merge {
    /// `[forward, backward]` on the feature axis (width `2 * units`).
    Concat,
    /// `forward + backward`.
    Sum,
    /// `forward * backward`.
    Mul,
    /// `(forward + backward) / 2`.
    Ave,
}

/// A weight tensor: `len` f32 values starting `offset` bytes into the weight section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorRef {
    /// Byte offset from the start of the weight section; a multiple of 4.
    pub offset: u32,
    /// Number of elements.
    pub len: u32,
}

/// Weights of one direction of a recurrent layer.
///
/// Matrices are stored row-major with one row per output (gate unit), i.e. the transpose of
/// Keras' `kernel` and the same as ONNX `W`/`R` with Keras' gate order, so a matrix-vector
/// product reads each row contiguously. Element types depend on the [`QuantMode`]:
///
/// | field | `F32` | `Int8Weights` | `Int8`, `Int16` |
/// |---|---|---|---|
/// | `kernel`, `recurrent_kernel` | f32 | i8 | i8 |
/// | `bias` | f32, optional | f32, optional | i32, required: input-side bias incl. zero-point corrections |
/// | `recurrent_bias` | f32, GRU `reset_after` only | same | i32, optional (zeros when absent): recurrent-side bias |
/// | `kernel_scale`, `recurrent_scale` | absent | f32 per row | [`Requant`] per row, packed in one i32 ([`Requant::pack`]) |
/// | `reset_scale` | absent | absent | integer GRU `reset_after = false`: packed [`Requant`] per candidate row for `U_h (r * h)` |
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionWeights {
    /// `[gates * units, input_width]`.
    pub kernel: TensorRef,
    /// `[gates * units, units]`.
    pub recurrent_kernel: TensorRef,
    /// `[gates * units]`, added to the input projection. `None` when `use_bias = false`.
    pub bias: Option<TensorRef>,
    /// `[gates * units]`, added to the recurrent projection; only GRU with `reset_after`.
    pub recurrent_bias: Option<TensorRef>,
    /// Per-row scales or requantizers of `kernel` (quantized modes).
    pub kernel_scale: Option<TensorRef>,
    /// Per-row scales or requantizers of `recurrent_kernel` (quantized modes).
    pub recurrent_scale: Option<TensorRef>,
    /// Requantizers of the candidate rows' `(r * h)` product (integer GRU, `reset_after = false`).
    pub reset_scale: Option<TensorRef>,
}

/// Integer-mode parameters of a recurrent layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecurrentQuant {
    /// Codes of `h` (the state and each direction's output).
    pub output: QParams,
    /// From the Q0.15 cell output to `output` codes (`h = o * act(c)`, GRU blend, bounded
    /// SimpleRNN activations).
    pub output_requant: Requant,
    /// From `h` codes minus zero point to Q0.15 (GRU's `z * h` blend and `r * h`).
    pub h_to_q15: Requant,
    /// LSTM cell state fractional bits: `c` is stored as `i16` in Q(15-F).F, `F` in `0..=15`.
    pub cell_frac_bits: u8,
    /// Bidirectional `sum`/`ave`/`mul`: the merged output's codes and the requantizer from
    /// the merge's exact integer result to them.
    pub merged: Option<(QParams, Requant)>,
}

/// Integer-mode parameters of a Dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DenseQuant {
    /// Codes of the output.
    pub output: QParams,
    /// From the Q0.15 activation output to `output` codes (sigmoid, tanh, hard_sigmoid,
    /// softmax); unused for linear and relu, whose per-row requantizers target `output`.
    pub output_requant: Requant,
}

/// A recurrent layer (SimpleRNN, LSTM, GRU), possibly wrapped in Bidirectional.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecurrentLayer {
    pub cell: Cell,
    pub units: u32,
    /// The cell's main activation (`activation` in Keras).
    pub activation: Activation,
    /// The gates' activation (`recurrent_activation` in Keras); ignored by SimpleRNN.
    pub recurrent_activation: Activation,
    pub return_sequences: bool,
    /// Process the window from its last step to its first (unidirectional layers only).
    pub go_backwards: bool,
    /// `Some` for a Bidirectional wrapper; then `backward` holds the backward weights.
    pub bidirectional: Option<Merge>,
    pub forward: DirectionWeights,
    pub backward: Option<DirectionWeights>,
    /// Integer modes only.
    pub quant: Option<RecurrentQuant>,
}

/// A fully connected layer, applied to the last axis (per time step on a sequence).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DenseLayer {
    pub units: u32,
    pub activation: Activation,
    /// `[units, input_width]`, row-major (the transpose of Keras' kernel).
    pub kernel: TensorRef,
    /// `[units]`, or `None` when `use_bias = false` (required i32 in integer modes).
    pub bias: Option<TensorRef>,
    /// Per-row scales (int8-weights) or requantizers (integer modes).
    pub kernel_scale: Option<TensorRef>,
    /// Integer modes only.
    pub quant: Option<DenseQuant>,
}

/// Per-feature standardisation (Keras `Normalization`): `y = (x - mean) / std`, with
/// `std = max(sqrt(variance), 1e-7)` computed in f32 by the writer as Keras does. In the
/// integer modes it must be the first layer and runs on the f32 input before quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormalizationLayer {
    /// `[features]` f32.
    pub mean: TensorRef,
    /// `[features]` f32.
    pub std: TensorRef,
}

/// Token lookup (Keras `Embedding`, `mask_zero = false`): the first layer, reading one token id
/// per time step (an integer-valued f32 in `[0, vocab)`), writing row `id` of the table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingLayer {
    pub vocab: u32,
    pub dim: u32,
    /// `[vocab, dim]`: f32, or i16 codes of `quant` in the integer modes.
    pub table: TensorRef,
    /// Integer modes only: the codes' parameters.
    pub quant: Option<QParams>,
}

/// Keras `RepeatVector(times)`: a single vector becomes a sequence of `times` copies (the
/// bridge from an encoder's summary to a decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatLayer {
    pub times: u32,
}

/// One layer of the stack. New kinds are appended (postcard encodes the variant index).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Layer {
    Recurrent(RecurrentLayer),
    Dense(DenseLayer),
    Normalization(NormalizationLayer),
    Embedding(EmbeddingLayer),
    RepeatVector(RepeatLayer),
}

/// The whole header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub mode: QuantMode,
    /// Features per time step of the model input.
    pub input_features: u32,
    /// Integer modes: how raw f32 inputs are quantized on entry.
    pub input_quant: Option<QParams>,
    /// Layers in execution order.
    pub layers: heapless::Vec<Layer, MAX_LAYERS>,
}

/// Parameters of the streaming anomaly detector ([`crate::detect`]) that runs around a
/// one-step forecasting model: the model reads the last `window` raw samples and forecasts the
/// next one; the detector scores how unusual the recent forecast errors are.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DetectorParams {
    /// Past samples the model reads to forecast the next one (its training window).
    pub window: u32,
    /// The model forecasts the change from the window's last sample, not the next value:
    /// such models keep forecasting sensibly when the signal leaves the range it was trained
    /// on (after a level shift, say).
    pub forecasts_change: bool,
    /// Forecast errors averaged into the short-term error that is scored.
    pub short_window: u32,
    /// Memory, in samples, of the long-term error statistics (exponential forgetting).
    pub long_window: u32,
    /// Forecasts, after the first one, during which the score is 0 while the statistics settle.
    pub warmup: u32,
    /// Score at or above which an alarm is raised and the flag rises.
    pub flag_on: f32,
    /// Score below which a raised flag falls (at most `flag_on`: the hysteresis band).
    pub flag_off: f32,
    /// Samples after an alarm during which the reported score is 0, so one event raises one
    /// alarm rather than a burst.
    pub refractory: u32,
}

/// Optional parts of the header after the layer list, present from format version 2 (a
/// writer emits version 1 when all are absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Extensions<'a> {
    /// The anomaly detector configured for this model.
    pub detector: Option<DetectorParams>,
    /// Text models: the character of each token id, in id order (token `i` is the `i`-th
    /// `char`), so tools and firmware turn ids into text without a side file.
    #[serde(borrow)]
    pub vocabulary: Option<&'a str>,
}

impl Extensions<'_> {
    /// Whether nothing is present (the blob can be written as format version 1).
    pub fn is_empty(&self) -> bool {
        self.detector.is_none() && self.vocabulary.is_none()
    }
}
