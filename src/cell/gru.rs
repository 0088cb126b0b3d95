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

use super::{CellSpec, DirectionViews};
use crate::kernels::{activate, init_bias, matvec_acc};

pub(crate) fn step(
    spec: &CellSpec,
    reset_after: bool,
    w: &DirectionViews<'_>,
    x: &[f32],
    h: &mut [f32],
    scratch: &mut [f32],
) {
    let units = spec.units;
    if units == 0 || h.len() != units {
        return;
    }
    let Some(scratch) = scratch.get_mut(..6 * units) else {
        return;
    };
    let Some((zx, rest)) = scratch.split_at_mut_checked(3 * units) else {
        return;
    };
    let Some((zh, _)) = rest.split_at_mut_checked(3 * units) else {
        return;
    };
    init_bias(w.bias, zx);
    matvec_acc(&w.kernel, x, zx);
    let (a, ra) = (spec.activation, spec.recurrent_activation);

    let Some((zx_zr, zx_h)) = zx.split_at_mut_checked(2 * units) else {
        return;
    };
    if reset_after {
        init_bias(w.recurrent_bias, zh);
        matvec_acc(&w.recurrent_kernel, h, zh);
        let Some((zh_zr, zh_h)) = zh.split_at_checked(2 * units) else {
            return;
        };
        for (xv, &hv) in zx_zr.iter_mut().zip(zh_zr.iter()) {
            *xv += hv;
        }
        activate(ra, zx_zr);
        let Some((zx_z, zx_r)) = zx_zr.split_at_checked(units) else {
            return;
        };
        for ((xh, &r), &hh) in zx_h.iter_mut().zip(zx_r.iter()).zip(zh_h.iter()) {
            *xh += r * hh;
        }
        activate(a, zx_h);
        for ((hv, &z), &cand) in h.iter_mut().zip(zx_z.iter()).zip(zx_h.iter()) {
            *hv = z * *hv + (1.0 - z) * cand;
        }
    } else {
        // The candidate needs (r * h) U_h, so z and r are finished first and kept in zx.
        let Some((zh_zr, rest)) = zh.split_at_mut_checked(2 * units) else {
            return;
        };
        let Some((reset_h, _)) = rest.split_at_mut_checked(units) else {
            return;
        };
        let recurrent_zr = w
            .recurrent_kernel
            .rows(0, 2 * units, units)
            .unwrap_or_default();
        let recurrent_h = w
            .recurrent_kernel
            .rows(2 * units, units, units)
            .unwrap_or_default();
        zh_zr.fill(0.0);
        matvec_acc(&recurrent_zr, h, zh_zr);
        for (xv, &hv) in zx_zr.iter_mut().zip(zh_zr.iter()) {
            *xv += hv;
        }
        activate(ra, zx_zr);
        let Some((zx_z, zx_r)) = zx_zr.split_at_checked(units) else {
            return;
        };
        for ((rh, &r), &hv) in reset_h.iter_mut().zip(zx_r.iter()).zip(h.iter()) {
            *rh = r * hv;
        }
        matvec_acc(&recurrent_h, reset_h, zx_h);
        activate(a, zx_h);
        for ((hv, &z), &cand) in h.iter_mut().zip(zx_z.iter()).zip(zx_h.iter()) {
            *hv = z * *hv + (1.0 - z) * cand;
        }
    }
}
