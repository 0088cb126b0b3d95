//! A loaded model: the validated layer plan over a blob, and the two ways to run it.
//!
//! * [`Model::step`] consumes one time step and updates caller-owned state: a sensor stream.
//! * [`Model::run_sequence`] runs a whole window.
//! * [`Model::step_batch`] advances many independent streams by one step each, reading the
//!   weights once per tile of streams (a gateway watching thousands of sensors).
//!
//! Both call the same cell functions in the same order, so stepping a window one sample at a
//! time gives exactly, bit for bit, what the sequence call gives.
//!
//! # State layout
//!
//! The state is a flat slice of [`Model::state_len`] words ([`Word`]: `f32`, or `i32` codes in
//! the integer modes): for each recurrent layer in order, for each direction (forward, then
//! backward), `h` (`units` values) then, for LSTM, `c`. It is plain data: copy it out to
//! survive a deep sleep and copy it back to continue exactly where the stream stopped.
//! [`Model::reset_state`] writes the initial state (real zeros, as in Keras).

mod batch;
mod load;
pub mod prebuilt;
mod run;

pub use batch::BATCH_TILE;

use crate::cell::quantized::{IntCell, IntDense, IntDirectionViews};
use crate::cell::{CellSpec, DirectionViews};
use crate::format::{Activation, DetectorParams, Extensions, Merge, QParams, QuantMode};
use crate::kernels::{F32View, Matrix};

/// Whether this build runs `mode` in integer arithmetic. A constant `false` without the
/// `integer` feature (and [`runs_float`] without `float`), so branches on it let the compiler
/// drop the other arithmetic's code; the loader refuses modes this build does not run.
pub(crate) const fn runs_integer(mode: QuantMode) -> bool {
    cfg!(feature = "integer") && mode.is_integer()
}

/// Whether this build runs `mode` in f32 arithmetic (see [`runs_integer`]).
pub(crate) const fn runs_float(mode: QuantMode) -> bool {
    cfg!(feature = "float") && !mode.is_integer()
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for i32 {}
}

/// The element type of state and scratch buffers: `f32` for `F32` and `Int8Weights` models,
/// `i32` for the integer modes ([`Model::uses_integer_buffers`]). Inputs and outputs are
/// always `f32`.
pub trait Word: Copy + Default + sealed::Sealed + 'static {
    #[doc(hidden)]
    fn as_f32(buffer: &mut [Self]) -> Option<&mut [f32]>;
    #[doc(hidden)]
    fn as_i32(buffer: &mut [Self]) -> Option<&mut [i32]>;
}

impl Word for f32 {
    fn as_f32(buffer: &mut [Self]) -> Option<&mut [f32]> {
        Some(buffer)
    }
    fn as_i32(_: &mut [Self]) -> Option<&mut [i32]> {
        None
    }
}

impl Word for i32 {
    fn as_f32(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
    fn as_i32(buffer: &mut [Self]) -> Option<&mut [i32]> {
        Some(buffer)
    }
}

/// One direction's weights: float paths or integer.
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub enum DirWeights<'a> {
    Float(DirectionViews<'a>),
    Int(IntDirectionViews<'a>),
}

impl Default for DirWeights<'_> {
    fn default() -> Self {
        Self::Float(DirectionViews::default())
    }
}

impl DirWeights<'_> {
    /// Weights and biases of one direction of `units` units reading `input_width` values (the
    /// true count, not the stored one: pre-packed matrices hold zero padding).
    fn parameters(&self, input_width: usize, units: usize) -> usize {
        match self {
            Self::Float(d) => {
                d.kernel.len()
                    + d.recurrent_kernel.len()
                    + d.bias.map_or(0, |b| b.len())
                    + d.recurrent_bias.map_or(0, |b| b.len())
            }
            Self::Int(d) => {
                // One input-side bias per row (gates x units).
                let rows = d.bias_x.len();
                rows * (input_width + units) + rows + d.bias_h.len()
            }
        }
    }
}

/// A Dense layer's weights: float paths or integer.
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub enum DenseWeights<'a> {
    Float {
        kernel: Matrix<'a>,
        bias: Option<F32View<'a>>,
    },
    Int(IntDense<'a>),
}

/// A recurrent layer ready to run.
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub struct RecurrentPlan<'a> {
    pub spec: CellSpec,
    pub input_width: usize,
    pub return_sequences: bool,
    pub go_backwards: bool,
    pub merge: Option<Merge>,
    pub forward: DirWeights<'a>,
    /// Bidirectional layers' backward weights: only with `whole-window`, the feature that runs
    /// them (56 bytes of every layer's plan in the `Model` value on a 32-bit MCU).
    #[cfg(feature = "whole-window")]
    pub backward: DirWeights<'a>,
    pub state_offset: usize,
    /// Integer modes.
    pub int: Option<IntCell>,
}

impl RecurrentPlan<'_> {
    pub fn output_width(&self) -> usize {
        match self.merge {
            Some(Merge::Concat) => 2 * self.spec.units,
            _ => self.spec.units,
        }
    }

    pub fn directions(&self) -> usize {
        if self.merge.is_some() {
            2
        } else {
            1
        }
    }
}

/// A Dense layer ready to run.
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub struct DensePlan<'a> {
    pub units: usize,
    pub activation: Activation,
    pub weights: DenseWeights<'a>,
}

/// An Embedding table: f32 rows, or i16 codes in the integer modes.
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub enum Table<'a> {
    F32(F32View<'a>),
    /// Little-endian i16 codes.
    I16(&'a [u8]),
}

/// An Embedding layer ready to run.
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub struct EmbeddingPlan<'a> {
    pub vocab: usize,
    pub dim: usize,
    pub table: Table<'a>,
}

/// A Normalization layer ready to run.
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub struct NormalizationPlan<'a> {
    pub mean: F32View<'a>,
    pub std: F32View<'a>,
}

// Plans live in a fixed-capacity array (no heap to box into); the size difference is the price.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub enum LayerPlan<'a> {
    Recurrent(RecurrentPlan<'a>),
    Dense(DensePlan<'a>),
    Normalization(NormalizationPlan<'a>, usize),
    Embedding(EmbeddingPlan<'a>),
    /// Repeats a vector this many times.
    Repeat(usize, usize),
}

impl LayerPlan<'_> {
    fn output_width(&self) -> usize {
        match self {
            Self::Recurrent(r) => r.output_width(),
            Self::Dense(d) => d.units,
            Self::Normalization(_, width) | Self::Repeat(_, width) => *width,
            Self::Embedding(e) => e.dim,
        }
    }
}

/// What kind of layer, for [`LayerSummary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LayerKind {
    /// A recurrent layer, with its cell and options.
    Recurrent {
        cell: crate::format::Cell,
        bidirectional: Option<Merge>,
        go_backwards: bool,
    },
    /// A Dense layer.
    Dense,
    /// Per-feature standardisation.
    Normalization,
    /// Token lookup.
    Embedding { vocab: usize },
    /// A vector repeated into a sequence of this many steps.
    RepeatVector { times: usize },
}

/// Shape facts about one layer, for tools and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LayerSummary {
    pub kind: LayerKind,
    pub units: usize,
    pub input_width: usize,
    pub output_width: usize,
    /// Whether the layer outputs one vector per time step.
    pub returns_sequence: bool,
    /// Weight values (parameters) of the layer.
    pub parameters: usize,
    /// State values the layer keeps between steps.
    pub state_len: usize,
    pub activation: Activation,
    pub recurrent_activation: Option<Activation>,
}

/// Layers a [`Model`] holds unless asked for another capacity.
pub const DEFAULT_LAYERS: usize = 8;

/// A model loaded from a checked blob. Borrowing the blob, it copies no weights.
///
/// `L` is the most layers it can hold (its plans live inline, so `L` sets its size: a few
/// hundred bytes per layer). [`Model::from_bytes`] uses [`DEFAULT_LAYERS`]; firmware that
/// counts bytes picks its own with [`Model::from_bytes_with_capacity`], e.g. `Model::<2>` for
/// an LSTM and a Dense head.
///
/// Every shape, offset and size was validated at load; the run methods only check the lengths
/// of the slices the caller passes, and never panic.
#[derive(Debug, Clone)]
pub struct Model<'a, const L: usize = DEFAULT_LAYERS> {
    mode: QuantMode,
    /// Integer modes: the input's and the final output's quantization.
    input_quant: Option<QParams>,
    output_quant: Option<QParams>,
    layers: heapless::Vec<LayerPlan<'a>, L>,
    blob_len: usize,
    input_features: usize,
    output_width: usize,
    output_is_sequence: bool,
    state_len: usize,
    max_width: usize,
    /// The widest output a step writes to scratch: non-recurrent layers' (a recurrent layer's
    /// output is its `h`, read where it lies in the state), so an LSTM + Dense(1) model's step
    /// needs two scratch words for outputs, not twice the LSTM's width.
    step_width: usize,
    max_units: usize,
    max_cell_scratch: usize,
    streamable: bool,
    /// The window length after the last RepeatVector, which replaces the input's.
    repeated_steps: Option<usize>,
    /// The first layer reads token ids (Embedding).
    reads_tokens: bool,
    /// Index of the first layer that reads a single vector (after a recurrent layer with
    /// `return_sequences = false`); `layers.len()` when every layer reads a sequence.
    head_start: usize,
    /// Format version 2 records: a text model's vocabulary and, only in builds with the
    /// detector (without it the loader drops them: 36 bytes of every `Model` value spared),
    /// the detector parameters.
    vocabulary: Option<&'a str>,
    #[cfg(feature = "detect")]
    detector: Option<DetectorParams>,
}

impl<'a, const L: usize> Model<'a, L> {
    /// The anomaly detector parameters stored in the blob, if any (see [`crate::detect`]).
    pub fn detector_params(&self) -> Option<DetectorParams> {
        #[cfg(feature = "detect")]
        return self.detector;
        #[cfg(not(feature = "detect"))]
        None
    }

    /// A text model's characters in token-id order, if the blob stores them.
    pub fn vocabulary(&self) -> Option<&'a str> {
        self.vocabulary
    }

    /// Every format version 2 record of the blob (without the `detect` feature, no detector
    /// parameters: see [`Model::detector_params`]).
    pub fn extensions(&self) -> Extensions<'a> {
        Extensions {
            detector: self.detector_params(),
            vocabulary: self.vocabulary,
        }
    }

    /// The layer plans, for the crate's drivers built on the model (`crate::generate`).
    #[cfg_attr(not(feature = "generate"), allow(dead_code))]
    pub(crate) fn plans(&self) -> &[LayerPlan<'a>] {
        &self.layers
    }
}

impl<const L: usize> Model<'_, L> {
    /// Bytes of the blob this model was loaded from.
    pub fn blob_len(&self) -> usize {
        self.blob_len
    }

    /// Features per time step the model reads.
    pub fn input_features(&self) -> usize {
        self.input_features
    }

    /// Values the model outputs per time step (or once, for a vector output).
    pub fn output_width(&self) -> usize {
        self.output_width
    }

    /// Whether the sequence call returns one output row per time step (`return_sequences` on
    /// the last recurrent layer) or a single vector.
    pub fn output_is_sequence(&self) -> bool {
        self.output_is_sequence
    }

    /// Values [`Model::run_sequence`] writes for a window of `steps` time steps, or `None` on
    /// overflow.
    pub fn output_len(&self, steps: usize) -> Option<usize> {
        if self.output_is_sequence {
            self.repeated_steps
                .unwrap_or(steps)
                .checked_mul(self.output_width)
        } else {
            Some(self.output_width)
        }
    }

    /// Time steps of the output for an input window of `steps` (a RepeatVector sets its own).
    pub fn output_steps(&self, steps: usize) -> usize {
        if self.output_is_sequence {
            self.repeated_steps.unwrap_or(steps)
        } else {
            1
        }
    }

    /// Whether the model reads token ids (its first layer is an Embedding).
    pub fn reads_tokens(&self) -> bool {
        self.reads_tokens
    }

    /// Words of state (see the module docs for the layout).
    pub fn state_len(&self) -> usize {
        self.state_len
    }

    /// Bytes of state.
    pub fn state_bytes(&self) -> usize {
        self.state_len * 4
    }

    /// Whether [`Model::step`] is allowed: false when a Bidirectional or `go_backwards` layer
    /// needs the whole window.
    pub fn is_streamable(&self) -> bool {
        self.streamable
    }

    /// Scratch words ([`Word`]) [`Model::step`] needs.
    pub fn step_scratch_len(&self) -> usize {
        self.input_slot() + 2 * self.step_width + self.max_cell_scratch
    }

    /// Scratch words holding the quantized input of one step (integer modes only).
    fn input_slot(&self) -> usize {
        if self.mode.is_integer() {
            self.input_features
        } else {
            0
        }
    }

    /// Scratch words [`Model::run_sequence`] needs for `steps` time steps, or `None`
    /// on overflow. Streamable models run the window step by step and need only
    /// [`Model::step_scratch_len`]; others keep whole intermediate sequences.
    pub fn sequence_scratch_len(&self, steps: usize) -> Option<usize> {
        if self.streamable {
            return Some(self.step_scratch_len());
        }
        self.layerwise_scratch_len(steps)
    }

    fn layerwise_scratch_len(&self, steps: usize) -> Option<usize> {
        let per_step = self.max_width.checked_mul(2)?.checked_add(self.max_units)?;
        self.max_rows(steps)
            .checked_mul(per_step)?
            .checked_add(self.max_cell_scratch)
    }

    /// The longest sequence any layer sees for an input window of `steps`.
    fn max_rows(&self, steps: usize) -> usize {
        self.layers.iter().fold(steps, |rows, layer| match layer {
            LayerPlan::Repeat(times, _) => rows.max(*times),
            _ => rows,
        })
    }

    /// Number of layers.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Shape facts about layer `index`, or `None` past the end.
    pub fn layer_summary(&self, index: usize) -> Option<LayerSummary> {
        let layer = self.layers.get(index)?;
        let input_width = if index == 0 {
            self.input_features
        } else {
            self.layers.get(index - 1)?.output_width()
        };
        let returns_sequence = self.sequence_after(index);
        let plain = |kind, units, parameters| LayerSummary {
            kind,
            units,
            input_width,
            output_width: layer.output_width(),
            returns_sequence,
            parameters,
            state_len: 0,
            activation: Activation::Linear,
            recurrent_activation: None,
        };
        Some(match layer {
            LayerPlan::Recurrent(r) => {
                let dirs = r.directions();
                let per_dir = r.forward.parameters(r.input_width, r.spec.units);
                LayerSummary {
                    kind: LayerKind::Recurrent {
                        cell: r.spec.cell,
                        bidirectional: r.merge,
                        go_backwards: r.go_backwards,
                    },
                    units: r.spec.units,
                    input_width: r.input_width,
                    output_width: r.output_width(),
                    returns_sequence,
                    parameters: per_dir * dirs,
                    state_len: r.spec.state_len() * dirs,
                    activation: r.spec.activation,
                    recurrent_activation: match r.spec.cell {
                        crate::format::Cell::SimpleRnn => None,
                        _ => Some(r.spec.recurrent_activation),
                    },
                }
            }
            LayerPlan::Dense(d) => LayerSummary {
                activation: d.activation,
                ..plain(
                    LayerKind::Dense,
                    d.units,
                    match &d.weights {
                        DenseWeights::Float { kernel, bias } => {
                            kernel.len() + bias.map_or(0, |b| b.len())
                        }
                        DenseWeights::Int(i) => i.kernel.len() + i.bias.len(),
                    },
                )
            },
            LayerPlan::Normalization(n, width) => {
                plain(LayerKind::Normalization, *width, n.mean.len() + n.std.len())
            }
            LayerPlan::Embedding(e) => plain(
                LayerKind::Embedding { vocab: e.vocab },
                e.dim,
                e.vocab * e.dim,
            ),
            LayerPlan::Repeat(times, width) => {
                plain(LayerKind::RepeatVector { times: *times }, *width, 0)
            }
        })
    }

    /// Whether layer `index` outputs one vector per time step.
    fn sequence_after(&self, index: usize) -> bool {
        self.layers
            .iter()
            .take(index + 1)
            .fold(true, |is_sequence, layer| match layer {
                LayerPlan::Recurrent(r) => r.return_sequences,
                LayerPlan::Repeat(..) => true,
                _ => is_sequence,
            })
    }

    /// Total weight values of the model.
    pub fn parameters(&self) -> usize {
        (0..self.layers.len())
            .filter_map(|i| self.layer_summary(i))
            .map(|s| s.parameters)
            .sum()
    }

    /// How weights are stored and the arithmetic runs.
    pub fn mode(&self) -> QuantMode {
        self.mode
    }

    /// Whether state and scratch buffers are `i32` (integer modes) rather than `f32`.
    pub fn uses_integer_buffers(&self) -> bool {
        self.mode.is_integer()
    }

    /// Sets the state to real zeros, the initial state of every Keras recurrent layer (in the
    /// integer modes, `h` codes equal to their zero point and `c = 0`).
    pub fn reset_state<W: Word>(&self, state: &mut [W]) {
        if let Some(state) = W::as_f32(state) {
            state.fill(0.0);
            return;
        }
        let Some(state) = W::as_i32(state) else {
            return;
        };
        state.fill(0);
        for layer in &self.layers {
            let LayerPlan::Recurrent(r) = layer else {
                continue;
            };
            let Some(int) = &r.int else { continue };
            let len = r.spec.state_len();
            for dir in 0..r.directions() {
                let start = r.state_offset + dir * len;
                if let Some(h) = state.get_mut(start..start + r.spec.units) {
                    h.fill(int.quant.output.zero_point);
                }
            }
        }
    }

    /// The real value of state word `index` (dequantized in the integer modes; `c` of an
    /// integer LSTM is reported in its fixed-point scale). `None` past the end.
    pub fn state_value<W: Word>(&self, state: &mut [W], index: usize) -> Option<f32> {
        if let Some(s) = W::as_f32(state) {
            return s.get(index).copied();
        }
        let s = W::as_i32(state)?;
        let code = *s.get(index)?;
        for layer in &self.layers {
            let LayerPlan::Recurrent(r) = layer else {
                continue;
            };
            let len = r.spec.state_len();
            let end = r.state_offset + len * r.directions();
            if index < r.state_offset || index >= end {
                continue;
            }
            let int = r.int.as_ref()?;
            let within = (index - r.state_offset) % len;
            return Some(if within < r.spec.units {
                crate::quant::dequantize(code, int.quant.output)
            } else {
                code as f32 / (1u32 << int.quant.cell_frac_bits.min(15)) as f32
            });
        }
        None
    }
}
