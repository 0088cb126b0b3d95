//! NEON kernels: `neon_matvec_f32`, `neon_matvec_i8w`, `neon_dot_rows_i8`; activations run the
//! generic code.
//!
//! Float sums: each row is accumulated in four 4-lane registers (column `c` in register
//! `(c / 4) % 4`, lane `c % 4`), the registers added as `(a0 + a1) + (a2 + a3)`, the lanes by
//! `vaddvq_f32`, leftover columns added in order after that, and the row sum added to `y`
//! last. The order depends only on the number of columns, never on alignment.
//!
//! Integer sums: the codes are packed to i16 once per call (checked to fit, as the int8 and
//! int16 modes guarantee; otherwise the generic kernel runs), int8 weights are widened to i16,
//! and `smlal`/`smlal2` multiply-accumulate them into 32-bit lanes: each lane takes 2 products
//! of at most `2^7 * 2^15 = 2^22` per 8 columns, so `PACK_I16` (512) columns add at most `2^29`
//! before the lanes are widened to i64 — the exact sum, the same bits as the generic kernel.

use core::arch::aarch64::*;

use crate::kernels::{
    dot_rows_i8_by_i16_chunks, generic, project_rows_with, F32View, Kernels, RowsI8, PACK_I16,
};

/// The NEON table: the products overridden, activations generic.
pub static TABLE: Kernels = Kernels {
    name: "neon",
    matvec_f32: neon_matvec_f32,
    matvec_i8w: neon_matvec_i8w,
    dot_rows_i8: neon_dot_rows_i8,
    activate: generic::activate,
    pack_i16: generic::pack_i16,
    project_i8: neon_project_i8,
    project_pair_i8: None,
    project_split_i8: None,
    // The generic one: this table packs the codes the generic way.
    project_i8_interleaved4: crate::kernels::GENERIC_INTERLEAVED4,
    project_pair_i8_interleaved4: None,
    project_split_i8_interleaved4: None,
    matmul_f32: neon_matmul_f32,
    lstm_units_i8: generic::lstm::lstm_units_i8,
    gru_units_i8: None,
    activate_codes_i8: None,
    transpose_f32: generic::batch::transpose_f32,
    lstm_gates_f32: None,
    matmul_bias_f32: None,
};

/// Calls of the NEON kernels, so tests can prove this path ran.
#[cfg(test)]
pub(crate) static CALLS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

#[inline(always)]
fn count() {
    #[cfg(test)]
    CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
}

fn neon_matvec_f32(w: F32View<'_>, x: &[f32], y: &mut [f32]) {
    count();
    let cols = x.len();
    if cols == 0 {
        return;
    }
    for (out, row) in y.iter_mut().zip(w.as_bytes().chunks_exact(cols * 4)) {
        // SAFETY: this table is only built for targets with NEON enabled at compile time; `row`
        // holds `cols` little-endian f32 values (`cols * 4` bytes) and `x` holds `cols`.
        *out += unsafe { dot_f32(row.as_ptr(), x) };
    }
}

/// The batched product by `neon_matvec_f32` on each stream's column (gathered on the stack,
/// 64 output rows at a time), so a stream gets the bits `neon_matvec_f32` gives it alone; no
/// NEON tile kernel yet.
fn neon_matmul_f32(w: F32View<'_>, x: &[f32], y: &mut [f32], streams: usize) {
    const ROWS: usize = 64;
    let Some(cols) = x.len().checked_div(streams) else {
        return;
    };
    let mut x_col = [0.0f32; crate::MAX_WIDTH];
    let (Some(x_col), Some(rows)) = (x_col.get_mut(..cols), y.len().checked_div(streams)) else {
        return;
    };
    for j in 0..streams {
        for (x, &v) in x_col.iter_mut().zip(x.iter().skip(j).step_by(streams)) {
            *x = v;
        }
        for start in (0..rows).step_by(ROWS) {
            let n = ROWS.min(rows - start);
            let Some(w_rows) = w.slice(start * cols, n * cols) else {
                return;
            };
            let mut y_col = [0.0f32; ROWS];
            let y_rows = y.iter().skip(start * streams + j).step_by(streams);
            for (c, &v) in y_col.iter_mut().zip(y_rows) {
                *c = v;
            }
            neon_matvec_f32(w_rows, x_col, &mut y_col[..n]);
            let y_rows = y.iter_mut().skip(start * streams + j).step_by(streams);
            for (v, &c) in y_rows.zip(y_col.iter()) {
                *v = c;
            }
        }
    }
}

fn neon_matvec_i8w(weights: &[u8], scales: F32View<'_>, x: &[f32], y: &mut [f32]) {
    count();
    let cols = x.len();
    if cols == 0 {
        return;
    }
    for ((out, row), scale) in y
        .iter_mut()
        .zip(weights.chunks_exact(cols))
        .zip(scales.iter())
    {
        // SAFETY: NEON is enabled at compile time (see `neon_matvec_f32`); `row` holds `cols`
        // int8 values and `x` holds `cols` values.
        *out += unsafe { dot_i8_f32(row.as_ptr(), x) } * scale;
    }
}

fn neon_dot_rows_i8(weights: &[u8], x: &[i32], out: &mut [i64]) {
    count();
    dot_rows_i8_by_i16_chunks(weights, x, out, |w, cols, start, codes, out, first| {
        for (r, o) in out.iter_mut().enumerate() {
            // SAFETY: NEON is enabled at compile time; the driver passes only rows `w` holds,
            // `cols` weights each, and `start + codes.len() <= cols`.
            let sum = unsafe { dot_i8_i16(w.as_ptr().add(r * cols + start), codes) };
            *o = if first { sum } else { *o + sum };
        }
    });
}

fn neon_project_i8(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    count();
    let codes = super::packed_as_i16(packed, cols);
    project_rows_with(rows, cols, out, accumulate, |row| {
        codes
            .chunks(PACK_I16)
            .zip(row.chunks(PACK_I16))
            .map(|(codes, weights)| {
                // SAFETY: NEON is enabled at compile time; `weights` holds one weight per code
                // (`row` has `cols` values and `codes` at most that many), at most `PACK_I16`.
                unsafe { dot_i8_i16(weights.as_ptr(), &codes[..weights.len().min(codes.len())]) }
            })
            .sum()
    });
}

/// `sum_c W[c] * x[c]` over little-endian f32 weights at `w`, in the order of the module docs.
///
/// # Safety
/// NEON must be available; `w` must point to `x.len() * 4` readable bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot_f32(w: *const u8, x: &[f32]) -> f32 {
    let n = x.len();
    let xp = x.as_ptr();
    // Weights are loaded as bytes and reinterpreted, so any address works (the blob is only
    // guaranteed byte-addressable here; `ld1` of bytes has no alignment requirement).
    let load = |c: usize| {
        // SAFETY: callers below pass `c + 4 <= n`, and `w` holds `n * 4` bytes.
        unsafe { vreinterpretq_f32_u8(vld1q_u8(w.add(4 * c))) }
    };
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut c = 0;
    // SAFETY: `x` loads read columns `c..c + 16` (or `+ 4`) with that end `<= n`.
    unsafe {
        while c + 16 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let at = c + 4 * k;
                *a = vfmaq_f32(*a, load(at), vld1q_f32(xp.add(at)));
            }
            c += 16;
        }
        while c + 4 <= n {
            let k = (c / 4) % 4;
            acc[k] = vfmaq_f32(acc[k], load(c), vld1q_f32(xp.add(c)));
            c += 4;
        }
    }
    let mut sum = vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ));
    for (cc, &xv) in x.iter().enumerate().skip(c) {
        // SAFETY: `cc < n`: bytes `4 cc..4 cc + 4` of `w` are readable.
        let bytes = unsafe { w.add(4 * cc).cast::<[u8; 4]>().read_unaligned() };
        sum += f32::from_le_bytes(bytes) * xv;
    }
    sum
}

/// `sum_c W[c] * x[c]` over int8 weights at `w` and f32 `x`, in the order of [`dot_f32`].
///
/// # Safety
/// NEON must be available; `w` must point to `x.len()` readable bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot_i8_f32(w: *const u8, x: &[f32]) -> f32 {
    let n = x.len();
    let xp = x.as_ptr();
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut c = 0;
    // SAFETY: loads read columns `c..c + 16` with that end `<= n`.
    unsafe {
        while c + 16 <= n {
            let wb = vld1q_s8(w.add(c).cast());
            let lo = vmovl_s8(vget_low_s8(wb));
            let hi = vmovl_s8(vget_high_s8(wb));
            let parts = [
                vmovl_s16(vget_low_s16(lo)),
                vmovl_s16(vget_high_s16(lo)),
                vmovl_s16(vget_low_s16(hi)),
                vmovl_s16(vget_high_s16(hi)),
            ];
            for (k, (a, p)) in acc.iter_mut().zip(parts).enumerate() {
                *a = vfmaq_f32(*a, vcvtq_f32_s32(p), vld1q_f32(xp.add(c + 4 * k)));
            }
            c += 16;
        }
    }
    let mut sum = vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ));
    for cc in c..n {
        // SAFETY: `cc < n`.
        sum += unsafe { f32::from(*w.add(cc) as i8) * *xp.add(cc) };
    }
    sum
}

/// `sum_c W[c] * x[c]` over int8 weights at `w` and i16 codes, exact (see the module docs).
///
/// # Safety
/// NEON must be available; `w` must point to `x.len()` readable bytes, `x.len() <= PACK_I16`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot_i8_i16(w: *const u8, x: &[i16]) -> i64 {
    let n = x.len();
    let xp = x.as_ptr();
    let mut acc = [vdupq_n_s32(0); 2];
    let mut c = 0;
    // SAFETY: loads read columns `c..c + 8` with that end `<= n`.
    unsafe {
        while c + 8 <= n {
            let wv = vmovl_s8(vld1_s8(w.add(c).cast()));
            let xv = vld1q_s16(xp.add(c));
            acc[0] = vmlal_s16(acc[0], vget_low_s16(wv), vget_low_s16(xv));
            acc[1] = vmlal_high_s16(acc[1], wv, xv);
            c += 8;
        }
    }
    let mut sum = vaddlvq_s32(acc[0]) + vaddlvq_s32(acc[1]);
    for cc in c..n {
        // SAFETY: `cc < n`.
        sum += unsafe { i64::from(*w.add(cc) as i8) * i64::from(*xp.add(cc)) };
    }
    sum
}
