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

/// How a cell runs its affine maps and activations: over one stream's vectors
/// ([`OneStream`], `Model::step`), or over a tile of streams laid out `[row][stream]` (the
/// batched step). The cells are written once against this, so both run the same operations in
/// the same order and give every stream the same bits.
pub(crate) trait Lanes {
    /// `y = b` for every row (zeros without a bias), the start of every affine map.
    fn init_bias(&mut self, bias: Option<F32View<'_>>, y: &mut [f32]);
    /// `y += W x`.
    fn product(&mut self, w: &Matrix<'_>, x: &[f32], y: &mut [f32]);
    /// `y = b + W x`: [`Lanes::init_bias`] then [`Lanes::product`], which a tile may run as
    /// one kernel call.
    #[inline]
    fn affine(&mut self, bias: Option<F32View<'_>>, w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
        self.init_bias(bias, y);
        self.product(w, x, y);
    }
    /// An element-wise activation in place.
    fn activate(&mut self, activation: Activation, values: &mut [f32]);
    /// The LSTM element-wise step: `c` and `h` from the gate blocks i, f, c, o of `z`
    /// (see [`crate::kernels::Kernels::lstm_gates_f32`]); `z` is left as scratch.
    fn lstm_gates(
        &mut self,
        a: Activation,
        ra: Activation,
        z: &mut [f32],
        c: &mut [f32],
        h: &mut [f32],
    );
}

/// One stream: the kernel table's matrix-vector products.
pub(crate) struct OneStream;

impl Lanes for OneStream {
    #[inline]
    fn init_bias(&mut self, bias: Option<F32View<'_>>, y: &mut [f32]) {
        crate::kernels::init_bias(bias, y);
    }

    #[inline]
    fn product(&mut self, w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
        crate::kernels::matvec_acc(w, x, y);
    }

    #[inline]
    fn activate(&mut self, activation: Activation, values: &mut [f32]) {
        crate::kernels::activate(activation, values);
    }

    #[inline]
    fn lstm_gates(
        &mut self,
        a: Activation,
        ra: Activation,
        z: &mut [f32],
        c: &mut [f32],
        h: &mut [f32],
    ) {
        crate::kernels::lstm_gates_f32(crate::kernels::active(), a, ra, z, c, h);
    }
}

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

impl DirectionViews<'_> {
    /// No weights (the value a plan keeps for a direction it does not have).
    pub const EMPTY: Self = Self {
        kernel: Matrix::F32(F32View::new(&[])),
        recurrent_kernel: Matrix::F32(F32View::new(&[])),
        bias: None,
        recurrent_bias: None,
    };
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
        let units = if self.cell.has_cell_state() {
            self.units.min(state.len())
        } else {
            state.len()
        };
        let (h, c) = state.split_at_mut(units);
        self.step_with(&mut OneStream, w, x, h, c, scratch);
    }

    /// [`CellSpec::step`] over `lanes`: `h` (and `c` for LSTM) hold `units` values per stream,
    /// `x` the input, `scratch` [`CellSpec::scratch_len`] values per stream, all in the
    /// layout `lanes` works in.
    #[inline]
    pub(crate) fn step_with(
        &self,
        lanes: &mut impl Lanes,
        w: &DirectionViews<'_>,
        x: &[f32],
        h: &mut [f32],
        c: &mut [f32],
        scratch: &mut [f32],
    ) {
        // As in the integer cells: a cell whose feature is off compiles to nothing here and
        // is refused at load.
        match self.cell {
            Cell::SimpleRnn if cfg!(feature = "simple-rnn") => {
                simple_rnn::step(lanes, self.activation, w, x, h, scratch);
            }
            Cell::Lstm if cfg!(feature = "lstm") => lstm::step(lanes, self, w, x, h, c, scratch),
            Cell::Gru { reset_after } if cfg!(feature = "gru") => {
                gru::step(lanes, self, reset_after, w, x, h, scratch);
            }
            _ => {}
        }
    }
}
