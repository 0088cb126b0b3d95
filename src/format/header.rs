//! The model header: the postcard-encoded description of layers, shapes, activations and
//! where each weight tensor lives in the weight section.
//!
//! These types are the schema of format version 1. Postcard encodes enums by variant index and
//! structs by field order, so reordering variants or fields is a format change: append only, and
//! bump [`super::FORMAT_VERSION`] when the meaning of existing bytes changes.

use serde::{Deserialize, Serialize};

use crate::MAX_LAYERS;

/// Element type of the weights and of the arithmetic.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DType {
    /// IEEE-754 binary32, little-endian in the blob.
    F32,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
/// product reads each row contiguously.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionWeights {
    /// `[gates * units, input_width]`.
    pub kernel: TensorRef,
    /// `[gates * units, units]`.
    pub recurrent_kernel: TensorRef,
    /// `[gates * units]`, added to the input projection. `None` when `use_bias = false`.
    pub bias: Option<TensorRef>,
    /// `[gates * units]`, added to the recurrent projection; only GRU with `reset_after`.
    pub recurrent_bias: Option<TensorRef>,
}

/// A recurrent layer (SimpleRNN, LSTM, GRU), possibly wrapped in Bidirectional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// A fully connected layer, applied to the last axis (per time step on a sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenseLayer {
    pub units: u32,
    pub activation: Activation,
    /// `[units, input_width]`, row-major (the transpose of Keras' kernel).
    pub kernel: TensorRef,
    /// `[units]`, or `None` when `use_bias = false`.
    pub bias: Option<TensorRef>,
}

/// One layer of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layer {
    Recurrent(RecurrentLayer),
    Dense(DenseLayer),
}

/// The whole header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub dtype: DType,
    /// Features per time step of the model input.
    pub input_features: u32,
    /// Layers in execution order.
    pub layers: heapless::Vec<Layer, MAX_LAYERS>,
}
