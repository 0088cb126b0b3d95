//! Cell math: one time step of one direction of a recurrent layer, and the Dense layer.
//!
//! Equations follow Keras 3 (`keras/src/layers/rnn/*.py`) and are summarised in each file.
//! Every function here reads weights through [`F32View`]s validated at load time and writes only
//! into caller-provided slices, so nothing allocates and nothing panics.

pub mod dense;
pub mod gru;
pub mod lstm;
pub mod quantized;
pub mod simple_rnn;

use crate::format::{Activation, Cell};
use crate::kernels::{F32View, Matrix};

/// The weights of one direction, as views into the blob.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectionViews<'a> {
    /// `[gates * units, input_width]`.
    pub kernel: Matrix<'a>,
    /// `[gates * units, units]`.
    pub recurrent_kernel: Matrix<'a>,
    /// `[gates * units]`.
    pub bias: Option<F32View<'a>>,
    /// `[gates * units]`, GRU `reset_after` only.
    pub recurrent_bias: Option<F32View<'a>>,
}

/// The static description of a recurrent cell needed to step it.
#[derive(Debug, Clone, Copy)]
pub struct CellSpec {
    pub cell: Cell,
    pub units: usize,
    pub activation: Activation,
    pub recurrent_activation: Activation,
}

impl CellSpec {
    /// Scratch values one step needs: the gate pre-activations (GRU keeps the input and
    /// recurrent projections apart, hence twice its gates).
    pub const fn scratch_len(&self) -> usize {
        match self.cell {
            Cell::SimpleRnn => self.units,
            Cell::Lstm => 4 * self.units,
            Cell::Gru { .. } => 6 * self.units,
        }
    }

    /// State values per direction: `h`, and `c` for LSTM.
    pub const fn state_len(&self) -> usize {
        if self.cell.has_cell_state() {
            2 * self.units
        } else {
            self.units
        }
    }

    /// Advances one direction by one time step: reads `x`, updates `state` (`h`, then `c` for
    /// LSTM) in place. The new `h` is the step's output.
    ///
    /// Slices shorter than the spec asks for make the step compute on the overlap only; the
    /// model checks every length before calling, so that path is never taken.
    pub fn step(&self, w: &DirectionViews<'_>, x: &[f32], state: &mut [f32], scratch: &mut [f32]) {
        let units = self.units;
        // As in the integer cells: a cell whose feature is off compiles to nothing here and
        // is refused at load.
        match self.cell {
            Cell::SimpleRnn if cfg!(feature = "simple-rnn") => {
                simple_rnn::step(self.activation, w, x, state, scratch);
            }
            Cell::Lstm if cfg!(feature = "lstm") => {
                let (h, c) = state.split_at_mut(units.min(state.len()));
                lstm::step(self, w, x, h, c, scratch);
            }
            Cell::Gru { reset_after } if cfg!(feature = "gru") => {
                gru::step(self, reset_after, w, x, state, scratch);
            }
            _ => {}
        }
    }
}
