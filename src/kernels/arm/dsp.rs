//! The exact int8 products with the DSP extension: two 8x16-bit multiply-accumulates per
//! `smlad`, weights sign-extended two at a time by `sxtb16`.
//!
//! Per 4 columns the weights are one 32-bit load, `w = [w0 w1 w2 w3]`; `sxtb16 w` gives the
//! halfword pair `[w0, w2]` and `sxtb16 w, ror #8` gives `[w1, w3]`. The codes are packed once
//! per call into matching pairs `[x0, x2]`, `[x1, x3]` (they fit i16 in the integer modes; the
//! generic kernel runs otherwise), so each 4 columns cost one load, two extends and two
//! `smlad`. A pair sum is at most `2 * 2^7 * 2^15 = 2^23` and a chunk of `PACK` (128) columns
//! adds 64 of them, below `2^30`, in a 32-bit accumulator that is widened to i64 per chunk:
//! the exact sum, the same bits as the generic kernel.

use crate::kernels::{generic, Kernels, GENERIC};

/// Columns packed per chunk: 256 bytes of stack for the code pairs.
const PACK: usize = 128;

/// The generic table with the int8 products overridden.
pub static TABLE: Kernels = Kernels {
    name: "arm-dsp",
    dot_rows_i8: dsp_dot_rows_i8,
    ..GENERIC
};

#[inline(always)]
fn sxtb16(w: u32) -> u32 {
    let out: u32;
    // SAFETY: a register-only DSP instruction, present on every target this module is built
    // for (see the build script); no memory or flags are touched.
    unsafe {
        core::arch::asm!("sxtb16 {o}, {w}", o = lateout(reg) out, w = in(reg) w,
            options(pure, nomem, nostack, preserves_flags));
    }
    out
}

#[inline(always)]
fn sxtb16_ror8(w: u32) -> u32 {
    let out: u32;
    // SAFETY: as in `sxtb16`.
    unsafe {
        core::arch::asm!("sxtb16 {o}, {w}, ror #8", o = lateout(reg) out, w = in(reg) w,
            options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// `acc + a.lo * b.lo + a.hi * b.hi` on signed halfwords. The result never overflows here (see
/// the module docs), so the Q flag it could set is never read.
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let out: i32;
    // SAFETY: a register-only DSP instruction (it may set the sticky Q flag, which nothing reads).
    unsafe {
        core::arch::asm!("smlad {o}, {a}, {b}, {c}", o = lateout(reg) out, a = in(reg) a,
            b = in(reg) b, c = in(reg) acc, options(pure, nomem, nostack));
    }
    out
}

fn pair(lo: i16, hi: i16) -> u32 {
    u32::from(lo as u16) | (u32::from(hi as u16) << 16)
}

fn dsp_dot_rows_i8(weights: &[u8], x: &[i32], out: &mut [i64]) {
    let cols = x.len();
    if cols == 0 {
        out.fill(0);
        return;
    }
    // `[x0, x2], [x1, x3]` per 4 columns of the chunk.
    let mut pairs = [0u32; PACK / 2];
    let mut start = 0;
    while start < cols {
        let end = cols.min(start + PACK);
        let codes = &x[start..end];
        let quads = codes.chunks_exact(4);
        let tail = quads.remainder();
        // The codes are checked while they are packed (one pass): a chunk that does not fit
        // i16 hands the whole product to the generic kernel, which rewrites every output.
        let mut fits = tail.iter().all(|&v| i32::from(v as i16) == v);
        for (q, slot) in quads.zip(pairs.chunks_exact_mut(2)) {
            let (a, b, c, d) = (q[0] as i16, q[1] as i16, q[2] as i16, q[3] as i16);
            fits &= (i32::from(a), i32::from(b), i32::from(c), i32::from(d))
                == (q[0], q[1], q[2], q[3]);
            slot[0] = pair(a, c);
            slot[1] = pair(b, d);
        }
        if !fits {
            generic::dot_rows_i8(weights, x, out);
            return;
        }
        for (o, row) in out.iter_mut().zip(weights.chunks_exact(cols)) {
            let chunk = row.get(start..end).unwrap_or(&[]);
            let words = chunk.chunks_exact(4);
            let tail_weights = words.remainder();
            let mut acc = 0i32;
            for (w4, xs) in words.zip(pairs.chunks_exact(2)) {
                let w = u32::from_le_bytes([w4[0], w4[1], w4[2], w4[3]]);
                acc = smlad(sxtb16(w), xs[0], acc);
                acc = smlad(sxtb16_ror8(w), xs[1], acc);
            }
            for (&w, &xv) in tail_weights.iter().zip(tail) {
                acc += i32::from(w as i8) * xv;
            }
            let sum = i64::from(acc);
            *o = if start == 0 { sum } else { *o + sum };
        }
        start = end;
    }
}
