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
    lanes.init_bias(w.bias, z);
    lanes.product(&w.kernel, x, z);
    lanes.product(&w.recurrent_kernel, h, z);
    let (a, ra) = (spec.activation, spec.recurrent_activation);
    // Gates block by block (i, f | c | o), so the kernel activates whole vectors.
    let Some((ifg, zo)) = z.split_at_mut_checked(3 * n) else {
        return;
    };
    let Some((zif, zc)) = ifg.split_at_mut_checked(2 * n) else {
        return;
    };
    lanes.activate(ra, zif);
    lanes.activate(a, zc);
    lanes.activate(ra, zo);
    let Some((zi, zf)) = zif.split_at_mut_checked(n) else {
        return;
    };
    for (((cv, &i), &f), &g) in c.iter_mut().zip(zi.iter()).zip(zf.iter()).zip(zc.iter()) {
        *cv = f * *cv + i * g;
    }
    // a(c') into the spent input-gate block, then h' = o * a(c').
    for (t, &cv) in zi.iter_mut().zip(c.iter()) {
        *t = cv;
    }
    lanes.activate(a, zi);
    for ((hv, &o), &t) in h.iter_mut().zip(zo.iter()).zip(zi.iter()) {
        *hv = o * t;
    }
}
