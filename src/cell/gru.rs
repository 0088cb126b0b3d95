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
use crate::kernels::{init_bias, matvec_acc};
use crate::math;

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
    let (zx, rest) = scratch.split_at_mut(3 * units);
    let (zh, _) = rest.split_at_mut(3 * units);
    init_bias(w.bias, zx);
    matvec_acc(&w.kernel, x, zx);
    let (a, ra) = (spec.activation, spec.recurrent_activation);

    let (zx_zr, zx_h) = zx.split_at_mut(2 * units);
    let (zx_z, zx_r) = zx_zr.split_at_mut(units);
    if reset_after {
        init_bias(w.recurrent_bias, zh);
        matvec_acc(&w.recurrent_kernel, h, zh);
        let (zh_zr, zh_h) = zh.split_at(2 * units);
        let (zh_z, zh_r) = zh_zr.split_at(units);
        let lanes = h
            .iter_mut()
            .zip(zx_z.iter())
            .zip(zx_r.iter())
            .zip(zx_h.iter());
        for ((((hv, &xz), &xr), &xh), ((&hz, &hr), &hh)) in
            lanes.zip(zh_z.iter().zip(zh_r).zip(zh_h))
        {
            let z = math::apply(ra, xz + hz);
            let r = math::apply(ra, xr + hr);
            let cand = math::apply(a, xh + r * hh);
            *hv = z * *hv + (1.0 - z) * cand;
        }
    } else {
        // The candidate needs (r * h) U_h, so z and r are finished first and kept in zx.
        let (zh_zr, rest) = zh.split_at_mut(2 * units);
        let (reset_h, _) = rest.split_at_mut(units);
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
        let (zh_z, zh_r) = zh_zr.split_at(units);
        for ((((xz, xr), &hz), &hr), (rh, &hv)) in zx_z
            .iter_mut()
            .zip(zx_r.iter_mut())
            .zip(zh_z)
            .zip(zh_r)
            .zip(reset_h.iter_mut().zip(h.iter()))
        {
            *xz = math::apply(ra, *xz + hz);
            *xr = math::apply(ra, *xr + hr);
            *rh = *xr * hv;
        }
        matvec_acc(&recurrent_h, reset_h, zx_h);
        for ((hv, &z), &xh) in h.iter_mut().zip(zx_z.iter()).zip(zx_h.iter()) {
            let cand = math::apply(a, xh);
            *hv = z * *hv + (1.0 - z) * cand;
        }
    }
}
