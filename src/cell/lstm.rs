//! LSTM (Hochreiter & Schmidhuber 1997, with forget gate), Keras `LSTMCell` gate order i, f, c, o:
//!
//! ```text
//! z = x W + h U + b            (4 * units pre-activations)
//! i = ra(z_i)  f = ra(z_f)  g = a(z_c)  o = ra(z_o)
//! c' = f * c + i * g
//! h' = o * a(c')
//! ```

use super::{CellSpec, DirectionViews};
use crate::kernels::{activate, init_bias, matvec_acc};

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
    let (a, ra) = (spec.activation, spec.recurrent_activation);
    // Gates block by block (i, f | c | o), so the kernel activates whole vectors.
    let Some((ifg, zo)) = z.split_at_mut_checked(3 * units) else {
        return;
    };
    let Some((zif, zc)) = ifg.split_at_mut_checked(2 * units) else {
        return;
    };
    activate(ra, zif);
    activate(a, zc);
    activate(ra, zo);
    let Some((zi, zf)) = zif.split_at_mut_checked(units) else {
        return;
    };
    for (((cv, &i), &f), &g) in c.iter_mut().zip(zi.iter()).zip(zf.iter()).zip(zc.iter()) {
        *cv = f * *cv + i * g;
    }
    // a(c') into the spent input-gate block, then h' = o * a(c').
    for (t, &cv) in zi.iter_mut().zip(c.iter()) {
        *t = cv;
    }
    activate(a, zi);
    for ((hv, &o), &t) in h.iter_mut().zip(zo.iter()).zip(zi.iter()) {
        *hv = o * t;
    }
}
