//! LSTM (Hochreiter & Schmidhuber 1997, with forget gate), Keras `LSTMCell` gate order i, f, c, o:
//!
//! ```text
//! z = x W + h U + b            (4 * units pre-activations)
//! i = ra(z_i)  f = ra(z_f)  g = a(z_c)  o = ra(z_o)
//! c' = f * c + i * g
//! h' = o * a(c')
//! ```

use super::{CellSpec, DirectionViews, Lanes};

/// One step over `lanes`: `h` and `c` hold `n` values (`units` per stream), `scratch` at
/// least `4 * n`.
#[inline]
pub(crate) fn step(
    lanes: &mut impl Lanes,
    spec: &CellSpec,
    w: &DirectionViews<'_>,
    x: &[f32],
    h: &mut [f32],
    c: &mut [f32],
    scratch: &mut [f32],
) {
    let n = h.len();
    if n == 0 || c.len() < n {
        return;
    }
    let Some(z) = scratch.get_mut(..4 * n) else {
        return;
    };
    lanes.affine(w.bias, &w.kernel, x, z);
    lanes.product(&w.recurrent_kernel, h, z);
    // The element-wise rest of the equations above is one kernel call
    // (`generic::batch::lstm_gates_f32_with` defines it), so a table can run it in one or two
    // passes over memory instead of six, over one stream or a whole tile alike.
    lanes.lstm_gates(spec.activation, spec.recurrent_activation, z, c, h);
}
