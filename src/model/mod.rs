//! A loaded model: the validated layer plan over a blob, and the two ways to run it.
//!
//! * [`Model::step`] consumes one time step and updates caller-owned state: a sensor stream.
//! * [`Model::run_sequence`] runs a whole window.
//!
//! Both call the same cell functions in the same order, so stepping a window one sample at a
//! time gives exactly, bit for bit, what the sequence call gives.
//!
//! # State layout
//!
//! The state is a flat `[f32]` of [`Model::state_len`] values: for each recurrent layer in
//! order, for each direction (forward, then backward), `h` (`units` values) then, for LSTM, `c`.
//! It is plain data: copy it out to survive a deep sleep and copy it back to continue exactly
//! where the stream stopped. Zeros are the initial state ([`Model::reset_state`]), as in Keras.

mod load;
mod run;

use crate::cell::{CellSpec, DirectionViews};
use crate::format::{Activation, Header, Merge};
use crate::kernels::F32View;
use crate::MAX_LAYERS;

/// A recurrent layer ready to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecurrentPlan<'a> {
    pub spec: CellSpec,
    pub input_width: usize,
    pub return_sequences: bool,
    pub go_backwards: bool,
    pub merge: Option<Merge>,
    pub forward: DirectionViews<'a>,
    pub backward: DirectionViews<'a>,
    pub state_offset: usize,
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
pub(crate) struct DensePlan<'a> {
    pub units: usize,
    pub input_width: usize,
    pub activation: Activation,
    pub kernel: F32View<'a>,
    pub bias: Option<F32View<'a>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum LayerPlan<'a> {
    Recurrent(RecurrentPlan<'a>),
    Dense(DensePlan<'a>),
}

impl LayerPlan<'_> {
    fn output_width(&self) -> usize {
        match self {
            Self::Recurrent(r) => r.output_width(),
            Self::Dense(d) => d.units,
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

/// A model loaded from a checked blob. Borrowing the blob, it copies no weights.
///
/// Every shape, offset and size was validated by [`Model::from_bytes`]; the run methods only
/// check the lengths of the slices the caller passes, and never panic.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    header: Header,
    layers: heapless::Vec<LayerPlan<'a>, MAX_LAYERS>,
    blob_len: usize,
    input_features: usize,
    output_width: usize,
    output_is_sequence: bool,
    state_len: usize,
    max_width: usize,
    max_units: usize,
    max_cell_scratch: usize,
    streamable: bool,
    /// Index of the first layer that reads a single vector (after a recurrent layer with
    /// `return_sequences = false`); `layers.len()` when every layer reads a sequence.
    head_start: usize,
}

impl<'a> Model<'a> {
    /// The decoded header, as written by the tools.
    pub fn header(&self) -> &Header {
        &self.header
    }

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
            steps.checked_mul(self.output_width)
        } else {
            Some(self.output_width)
        }
    }

    /// f32 values of state (see the module docs for the layout).
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

    /// f32 values of scratch [`Model::step`] needs.
    pub fn step_scratch_len(&self) -> usize {
        2 * self.max_width + self.max_cell_scratch
    }

    /// f32 values of scratch [`Model::run_sequence`] needs for `steps` time steps, or `None`
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
        steps
            .checked_mul(per_step)?
            .checked_add(self.max_cell_scratch)
    }

    /// Number of layers.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Shape facts about layer `index`, or `None` past the end.
    pub fn layer_summary(&self, index: usize) -> Option<LayerSummary> {
        let layer = self.layers.get(index)?;
        let returns_sequence = index < self.head_start
            && match layer {
                LayerPlan::Recurrent(r) => r.return_sequences,
                LayerPlan::Dense(_) => true,
            };
        Some(match layer {
            LayerPlan::Recurrent(r) => {
                let dirs = r.directions();
                let per_dir = r.forward.kernel.len()
                    + r.forward.recurrent_kernel.len()
                    + r.forward.bias.map_or(0, |b| b.len())
                    + r.forward.recurrent_bias.map_or(0, |b| b.len());
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
                kind: LayerKind::Dense,
                units: d.units,
                input_width: d.input_width,
                output_width: d.units,
                returns_sequence,
                parameters: d.kernel.len() + d.bias.map_or(0, |b| b.len()),
                state_len: 0,
                activation: d.activation,
                recurrent_activation: None,
            },
        })
    }

    /// Total weight values of the model.
    pub fn parameters(&self) -> usize {
        (0..self.layers.len())
            .filter_map(|i| self.layer_summary(i))
            .map(|s| s.parameters)
            .sum()
    }

    /// Sets the state to zeros, the initial state of every Keras recurrent layer.
    pub fn reset_state(&self, state: &mut [f32]) {
        state.fill(0.0);
    }
}
