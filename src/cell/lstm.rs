//! LSTM (Hochreiter & Schmidhuber 1997, with forget gate), Keras `LSTMCell` gate order i, f, c, o:
//!
//! ```text
//! z = x W + h U + b            (4 * units pre-activations)
//! i = ra(z_i)  f = ra(z_f)  g = a(z_c)  o = ra(z_o)
//! c' = f * c + i * g
//! h' = o * a(c')
//! ```

use super::{CellSpec, DirectionViews};
use crate::kernels::{init_bias, matvec_acc};
use crate::math;

pub(crate) fn step(
    spec: &CellSpec,
    w: &DirectionViews<'_>,
    x: &[f32],
    h: &mut [f32],
    c: &mut [f32],
    scratch: &mut [f32],
) {
    let units = spec.units;
    if units == 0 {
        return;
    }
    let Some(z) = scratch.get_mut(..4 * units) else {
        return;
    };
    init_bias(w.bias, z);
    matvec_acc(&w.kernel, x, z);
    matvec_acc(&w.recurrent_kernel, h, z);
    let mut gates = z.chunks_exact(units);
    let (Some(zi), Some(zf), Some(zc), Some(zo)) =
        (gates.next(), gates.next(), gates.next(), gates.next())
    else {
        return;
    };
    let (a, ra) = (spec.activation, spec.recurrent_activation);
    let lanes = h
        .iter_mut()
        .zip(c.iter_mut())
        .zip(zi)
        .zip(zf)
        .zip(zc)
        .zip(zo);
    for (((((hv, cv), &zi), &zf), &zc), &zo) in lanes {
        let i = math::apply(ra, zi);
        let f = math::apply(ra, zf);
        let g = math::apply(a, zc);
        let o = math::apply(ra, zo);
        *cv = f * *cv + i * g;
        *hv = o * math::apply(a, *cv);
    }
}
