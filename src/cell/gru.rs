//! GRU (Cho et al. 2014), Keras `GRUCell` gate order z, r, h:
//!
//! ```text
//! reset_after = true (Keras 3 default; PyTorch; ONNX linear_before_reset = 1):
//!   zx = x W + b_in        zh = h U + b_rec
//!   z = ra(zx_z + zh_z)    r = ra(zx_r + zh_r)
//!   hh = a(zx_h + r * zh_h)
//! reset_after = false (the original paper; ONNX linear_before_reset = 0):
//!   zx = x W + b           z = ra(zx_z + h U_z)    r = ra(zx_r + h U_r)
//!   hh = a(zx_h + (r * h) U_h)
//! h' = z * h + (1 - z) * hh
//! ```

use super::{CellSpec, DirectionViews, Lanes};

/// One step over `lanes`: `h` holds `n` values (`units` per stream), `scratch` at least
/// `6 * n`.
#[inline]
pub(crate) fn step(
    lanes: &mut impl Lanes,
    spec: &CellSpec,
    reset_after: bool,
    w: &DirectionViews<'_>,
    x: &[f32],
    h: &mut [f32],
    scratch: &mut [f32],
) {
    let (n, units) = (h.len(), spec.units);
    if units == 0 || n < units {
        return;
    }
    let Some(scratch) = scratch.get_mut(..6 * n) else {
        return;
    };
    let Some((zx, zh)) = scratch.split_at_mut_checked(3 * n) else {
        return;
    };
    lanes.init_bias(w.bias, zx);
    lanes.product(&w.kernel, x, zx);
    let (a, ra) = (spec.activation, spec.recurrent_activation);

    let Some((zx_zr, zx_h)) = zx.split_at_mut_checked(2 * n) else {
        return;
    };
    if reset_after {
        lanes.init_bias(w.recurrent_bias, zh);
        lanes.product(&w.recurrent_kernel, h, zh);
        let Some((zh_zr, zh_h)) = zh.split_at_checked(2 * n) else {
            return;
        };
        for (xv, &hv) in zx_zr.iter_mut().zip(zh_zr.iter()) {
            *xv += hv;
        }
        lanes.activate(ra, zx_zr);
        let Some((zx_z, zx_r)) = zx_zr.split_at_checked(n) else {
            return;
        };
        for ((xh, &r), &hh) in zx_h.iter_mut().zip(zx_r.iter()).zip(zh_h.iter()) {
            *xh += r * hh;
        }
        lanes.activate(a, zx_h);
        for ((hv, &z), &cand) in h.iter_mut().zip(zx_z.iter()).zip(zx_h.iter()) {
            *hv = z * *hv + (1.0 - z) * cand;
        }
    } else {
        // The candidate needs (r * h) U_h, so z and r are finished first and kept in zx.
        let Some((zh_zr, rest)) = zh.split_at_mut_checked(2 * n) else {
            return;
        };
        let Some(reset_h) = rest.get_mut(..n) else {
            return;
        };
        let u = &w.recurrent_kernel;
        let recurrent_zr = u.rows(0, 2 * units, units).unwrap_or_default();
        let recurrent_h = u.rows(2 * units, units, units).unwrap_or_default();
        zh_zr.fill(0.0);
        lanes.product(&recurrent_zr, h, zh_zr);
        for (xv, &hv) in zx_zr.iter_mut().zip(zh_zr.iter()) {
            *xv += hv;
        }
        lanes.activate(ra, zx_zr);
        let Some((zx_z, zx_r)) = zx_zr.split_at_checked(n) else {
            return;
        };
        for ((rh, &r), &hv) in reset_h.iter_mut().zip(zx_r.iter()).zip(h.iter()) {
            *rh = r * hv;
        }
        lanes.product(&recurrent_h, reset_h, zx_h);
        lanes.activate(a, zx_h);
        for ((hv, &z), &cand) in h.iter_mut().zip(zx_z.iter()).zip(zx_h.iter()) {
            *hv = z * *hv + (1.0 - z) * cand;
        }
    }
}
