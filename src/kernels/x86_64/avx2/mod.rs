//! AVX2 + FMA kernels: `avx2_matvec_f32`, `avx2_matvec_i8w`, `avx2_dot_rows_i8`.
//!
//! All three walk the matrix in blocks of rows that share each load of `x` (8 rows for the
//! float kernels, 4 for the integer one), read the weights with unaligned loads straight from
//! the blob bytes (valid for any address on x86_64; the blob's tensors are 16-byte aligned
//! anyway when loaded through `AlignedBlob` or `include_blob!`), and finish a partial vector of
//! columns with masked loads (float) or scalar code (integer).
//!
//! Gate activations (`avx2_activate`): sigmoid and tanh 8 lanes at a time from one `exp`
//! polynomial (absolute error below 1e-6 against `libm`, NaN kept); other activations run the
//! generic code. The integer LSTM gate kernel (`lstm.rs`) runs 8 units at a time, exact.
//!
//! Float sums: each row is accumulated in 8 lanes (column `c` in lane `c % 8`), the lanes are
//! reduced by a fixed tree `((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7))`, and the row sum is added
//! to `y` last. The order depends only on the number of columns, never on alignment or on
//! where the row sits in its block.
//!
//! Integer sums: the codes are packed to i16 once per call (checked to fit, as int8 and int16
//! modes guarantee; otherwise the generic kernel runs), int8 weights are widened to i16, and
//! `vpmaddwd` multiplies them, its pair sums at most `2 * 128 * 32768 = 2^23`. Lanes are
//! widened to i64 every `PACK_I16` (512) columns (at most `PACK_I16 / 16 * 2^23 + 2^23 < 2^31` per
//! lane), so the result is the exact sum, the same bits as the generic kernel.

mod batch;
mod lstm;

use core::arch::x86_64::*;

use crate::format::Activation;
use crate::kernels::{
    dot_rows_i8_by_i16_chunks, generic, project_rows_with, F32View, Kernels, RowsI8, PACK_I16,
};

/// The AVX2 table: every entry overridden (the AVX-512 tables start from it).
pub(crate) static TABLE: Kernels = Kernels {
    name: "avx2",
    matvec_f32: avx2_matvec_f32,
    matvec_i8w: avx2_matvec_i8w,
    dot_rows_i8: avx2_dot_rows_i8,
    activate: avx2_activate,
    pack_i16: generic::pack_i16,
    project_i8: avx2_project_i8,
    // The definition: two `avx2_project_i8` calls.
    project_pair_i8: None,
    project_split_i8: None,
    // The generic one: this table packs the codes the generic way.
    project_i8_interleaved4: crate::kernels::GENERIC_INTERLEAVED4,
    project_pair_i8_interleaved4: None,
    project_split_i8_interleaved4: None,
    matmul_f32: batch::avx2_matmul_f32,
    lstm_units_i8: lstm::avx2_lstm_units_i8,
    gru_units_i8: None,
    activate_codes_i8: None,
    transpose_f32: batch::avx2_transpose_f32,
    lstm_gates_f32: Some(batch::avx2_lstm_gates_f32),
    matmul_bias_f32: None,
};

/// The AVX2 + FMA table, only when this CPU can run it: decided at compile time when the build
/// enables both features, else at run time (with `std`, cached), else never.
#[inline]
pub fn kernels() -> Option<&'static Kernels> {
    if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        return Some(&TABLE);
    }
    #[cfg(any(test, feature = "std"))]
    if super::detect::avx2_fma() {
        return Some(&TABLE);
    }
    None
}

/// Calls of the AVX2 kernels, so tests can prove this path ran.
#[cfg(test)]
pub(crate) static CALLS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

#[inline(always)]
fn count() {
    #[cfg(test)]
    CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
}

fn avx2_matvec_f32(w: F32View<'_>, x: &[f32], y: &mut [f32]) {
    count();
    // SAFETY: this function is reachable only through `TABLE`, which `kernels()` returns only
    // when AVX2 and FMA are enabled at compile time or were detected on this CPU.
    unsafe { matvec_f32(w.as_bytes(), x, y) }
}

fn avx2_matvec_i8w(weights: &[u8], scales: F32View<'_>, x: &[f32], y: &mut [f32]) {
    count();
    // SAFETY: as in `avx2_matvec_f32`: only reachable after the AVX2 + FMA check.
    unsafe { matvec_i8w(weights, scales.as_bytes(), x, y) }
}

fn avx2_dot_rows_i8(weights: &[u8], x: &[i32], out: &mut [i64]) {
    count();
    dot_rows_i8_by_i16_chunks(weights, x, out, |w, cols, start, codes, out, first| {
        // SAFETY: as in `avx2_matvec_f32`: only reachable after the AVX2 + FMA check; the
        // driver passes only rows `w` holds, `cols` weights each, with `start + codes.len()
        // <= cols`.
        unsafe { dot_rows_i8_chunk(w, cols, start, codes, out, first) }
    });
}

/// Rows per block of [`avx2_project_i8`]: their i64 sums live on the stack.
const PROJECT_ROWS: usize = 32;

fn avx2_project_i8(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    count();
    if cols == 0 {
        return;
    }
    let codes = super::packed_as_i16(packed, cols);
    let held = out.len().min(rows.weights.len() / cols);
    let mut dots = [0i64; PROJECT_ROWS];
    for (block, outs) in out[..held].chunks_mut(PROJECT_ROWS).enumerate() {
        let first = block * PROJECT_ROWS;
        let dots = &mut dots[..outs.len()];
        let block_rows = RowsI8 {
            weights: &rows.weights[first * cols..],
            bias: rows.bias.skip(first),
            requant: rows.requant.skip(first),
        };
        for (chunk, start) in codes.chunks(PACK_I16).zip((0..).step_by(PACK_I16)) {
            // SAFETY: as in `avx2_matvec_f32`: only reachable after the AVX2 + FMA check; the
            // block holds `dots.len()` rows of `cols` values and `start + chunk.len() <= cols`.
            unsafe { dot_rows_i8_chunk(block_rows.weights, cols, start, chunk, dots, start == 0) };
        }
        let mut sums = dots.iter();
        project_rows_with(&block_rows, cols, outs, accumulate, |_| {
            sums.next().copied().unwrap_or(0)
        });
    }
}

/// Lane mask for the last `tail` (0..8) columns of a row: lanes `< tail` set.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tail_mask(tail: usize) -> __m256i {
    const ONES: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: `tail < 8`, so the 8 values read start at index `8 - tail` in 1..=8 and end by 16.
    unsafe { _mm256_loadu_si256(ONES.as_ptr().add(8 - tail).cast()) }
}

/// The 8 lane sums of 8 accumulators, `[sum(a0), ..., sum(a7)]`, each by the fixed tree
/// `((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7))`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum8(a: &[__m256; 8]) -> __m256 {
    let t0 = _mm256_hadd_ps(a[0], a[1]);
    let t1 = _mm256_hadd_ps(a[2], a[3]);
    let t2 = _mm256_hadd_ps(a[4], a[5]);
    let t3 = _mm256_hadd_ps(a[6], a[7]);
    let u0 = _mm256_hadd_ps(t0, t1);
    let u1 = _mm256_hadd_ps(t2, t3);
    let lo = _mm256_permute2f128_ps::<0x20>(u0, u1);
    let hi = _mm256_permute2f128_ps::<0x31>(u0, u1);
    _mm256_add_ps(lo, hi)
}

/// The sum of one accumulator's lanes, by the same tree as [`hsum8`].
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum1(a: __m256) -> f32 {
    let t = _mm256_hadd_ps(a, a);
    let u = _mm256_hadd_ps(t, t);
    _mm_cvtss_f32(_mm_add_ps(
        _mm256_castps256_ps128(u),
        _mm256_extractf128_ps::<1>(u),
    ))
}

/// Loads 8 int8 values at `p` as f32.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load_i8x8_ps(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 8 readable bytes at `p`; `loadl_epi64` has no alignment need.
    let b = unsafe { _mm_loadl_epi64(p.cast()) };
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b))
}

/// Loads the last `tail` (< 8) int8 values of a row at `p` as f32, zero elsewhere.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load_i8_tail_ps(p: *const u8, tail: usize) -> __m256 {
    let mut buf = [0u8; 8];
    // SAFETY: the caller guarantees `tail` readable bytes at `p`; `buf` holds 8 >= tail.
    unsafe { core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), tail) };
    // SAFETY: `buf` is 8 readable bytes.
    unsafe { load_i8x8_ps(buf.as_ptr()) }
}

/// `y[r] += sum_c W[r, c] * x[c]`, `W` little-endian f32 bytes, row-major, `x.len()` columns.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn matvec_f32(w: &[u8], x: &[f32], y: &mut [f32]) {
    let cols = x.len();
    let Some(row_bytes) = cols.checked_mul(4) else {
        return;
    };
    if cols == 0 {
        return;
    }
    let rows = y.len().min(w.len() / row_bytes);
    let full = cols & !7;
    let tail = cols - full;
    // SAFETY: `tail < 8`.
    let mask = unsafe { tail_mask(tail) };
    let xp = x.as_ptr();
    let wp = w.as_ptr();
    let yp = y.as_mut_ptr();
    let mut r = 0;
    // Bounds: rows `r..r + 8` (or `r`) are `< rows`, so every row start `r * row_bytes` plus
    // `cols * 4` bytes lies inside `w`; column loads read `c..c + 8 <= full <= cols` values,
    // or the masked tail (masked-out lanes are not read); `y` has `rows` values.
    while r + 8 <= rows {
        let mut acc = [_mm256_setzero_ps(); 8];
        // SAFETY: see "Bounds" above.
        unsafe {
            let base = wp.add(r * row_bytes);
            let mut c = 0;
            while c < full {
                let xv = _mm256_loadu_ps(xp.add(c));
                for (k, a) in acc.iter_mut().enumerate() {
                    let wv = _mm256_loadu_ps(base.add(k * row_bytes + c * 4).cast());
                    *a = _mm256_fmadd_ps(wv, xv, *a);
                }
                c += 8;
            }
            if tail != 0 {
                let xv = _mm256_maskload_ps(xp.add(full), mask);
                for (k, a) in acc.iter_mut().enumerate() {
                    let wv = _mm256_maskload_ps(base.add(k * row_bytes + full * 4).cast(), mask);
                    *a = _mm256_fmadd_ps(wv, xv, *a);
                }
            }
            let sums = hsum8(&acc);
            let yv = _mm256_loadu_ps(yp.add(r));
            _mm256_storeu_ps(yp.add(r), _mm256_add_ps(yv, sums));
        }
        r += 8;
    }
    while r < rows {
        let mut acc = _mm256_setzero_ps();
        // SAFETY: see "Bounds" above.
        unsafe {
            let base = wp.add(r * row_bytes);
            let mut c = 0;
            while c < full {
                let wv = _mm256_loadu_ps(base.add(c * 4).cast());
                acc = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp.add(c)), acc);
                c += 8;
            }
            if tail != 0 {
                let wv = _mm256_maskload_ps(base.add(full * 4).cast(), mask);
                acc = _mm256_fmadd_ps(wv, _mm256_maskload_ps(xp.add(full), mask), acc);
            }
            *yp.add(r) += hsum1(acc);
        }
        r += 1;
    }
}

/// `y[r] += scale[r] * sum_c W[r, c] * x[c]` with int8 `W` and little-endian f32 `scales`.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn matvec_i8w(w: &[u8], scales: &[u8], x: &[f32], y: &mut [f32]) {
    let cols = x.len();
    if cols == 0 {
        return;
    }
    let rows = y.len().min(w.len() / cols).min(scales.len() / 4);
    let full = cols & !7;
    let tail = cols - full;
    // SAFETY: `tail < 8`.
    let mask = unsafe { tail_mask(tail) };
    let xp = x.as_ptr();
    let wp = w.as_ptr();
    let sp = scales.as_ptr();
    let yp = y.as_mut_ptr();
    let mut r = 0;
    // Bounds as in `matvec_f32`, with one byte per weight; `scales` holds `rows` values.
    while r + 8 <= rows {
        let mut acc = [_mm256_setzero_ps(); 8];
        // SAFETY: see "Bounds" above.
        unsafe {
            let base = wp.add(r * cols);
            let mut c = 0;
            while c < full {
                let xv = _mm256_loadu_ps(xp.add(c));
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(load_i8x8_ps(base.add(k * cols + c)), xv, *a);
                }
                c += 8;
            }
            if tail != 0 {
                let xv = _mm256_maskload_ps(xp.add(full), mask);
                for (k, a) in acc.iter_mut().enumerate() {
                    let wv = load_i8_tail_ps(base.add(k * cols + full), tail);
                    *a = _mm256_fmadd_ps(wv, xv, *a);
                }
            }
            let sums = _mm256_mul_ps(hsum8(&acc), _mm256_loadu_ps(sp.add(r * 4).cast()));
            let yv = _mm256_loadu_ps(yp.add(r));
            _mm256_storeu_ps(yp.add(r), _mm256_add_ps(yv, sums));
        }
        r += 8;
    }
    while r < rows {
        let mut acc = _mm256_setzero_ps();
        // SAFETY: see "Bounds" above.
        unsafe {
            let base = wp.add(r * cols);
            let mut c = 0;
            while c < full {
                let wv = load_i8x8_ps(base.add(c));
                acc = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp.add(c)), acc);
                c += 8;
            }
            if tail != 0 {
                let wv = load_i8_tail_ps(base.add(full), tail);
                acc = _mm256_fmadd_ps(wv, _mm256_maskload_ps(xp.add(full), mask), acc);
            }
            let s = sp.add(r * 4);
            let scale = f32::from_le_bytes([*s, *s.add(1), *s.add(2), *s.add(3)]);
            *yp.add(r) += hsum1(acc) * scale;
        }
        r += 1;
    }
}

/// The exact i64 sum of 8 i32 lanes plus 4 more.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum_i32_to_i64(a: __m256i, b: __m128i) -> i64 {
    let lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(a));
    let hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(a));
    let s = _mm256_add_epi64(_mm256_add_epi64(lo, hi), _mm256_cvtepi32_epi64(b));
    let s = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    _mm_cvtsi128_si64(s).wrapping_add(_mm_extract_epi64::<1>(s))
}

/// `out[r] (=|+=) sum_{c in start..start + codes.len()} W[r, c] * codes[c - start]`, exact:
/// assigns on the first chunk of columns, adds on later ones.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `w` must hold `out.len()` rows of `cols` values and
/// `start + codes.len() <= cols`.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_rows_i8_chunk(
    w: &[u8],
    cols: usize,
    start: usize,
    codes: &[i16],
    out: &mut [i64],
    first: bool,
) {
    let rows = out.len();
    let n = codes.len();
    let xp = codes.as_ptr();
    let wp = w.as_ptr();
    let mut r = 0;
    // Bounds: rows `r..r + block` are `< rows`, so row `r + k` starts at `(r + k) * cols` with
    // `cols` readable bytes; column loads read `c..c + 16` (or `+ 8`) with that end `<= n`.
    while r < rows {
        let block = if r + 4 <= rows { 4 } else { 1 };
        let mut acc = [_mm256_setzero_si256(); 4];
        let mut acc8 = [_mm_setzero_si128(); 4];
        let mut c = 0;
        // SAFETY: see "Bounds" above.
        unsafe {
            while c + 16 <= n {
                let xv = _mm256_loadu_si256(xp.add(c).cast());
                for (k, a) in acc.iter_mut().enumerate().take(block) {
                    let wb = _mm_loadu_si128(wp.add((r + k) * cols + start + c).cast());
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(_mm256_cvtepi8_epi16(wb), xv));
                }
                c += 16;
            }
            if c + 8 <= n {
                let xv = _mm_loadu_si128(xp.add(c).cast());
                for (k, a) in acc8.iter_mut().enumerate().take(block) {
                    let wb = _mm_loadl_epi64(wp.add((r + k) * cols + start + c).cast());
                    *a = _mm_add_epi32(*a, _mm_madd_epi16(_mm_cvtepi8_epi16(wb), xv));
                }
                c += 8;
            }
        }
        for k in 0..block {
            let mut sum = hsum_i32_to_i64(acc[k], acc8[k]);
            for cc in c..n {
                // SAFETY: see "Bounds" above (`cc < n`).
                let (wv, xv) = unsafe { (*wp.add((r + k) * cols + start + cc) as i8, *xp.add(cc)) };
                sum += i64::from(wv) * i64::from(xv);
            }
            let o = &mut out[r + k];
            *o = if first { sum } else { *o + sum };
        }
        r += block;
    }
}

/// `e^x` for `x` already clamped to `[EXP_LO, EXP_HI]`: Cody-Waite range reduction by ln 2
/// and the Cephes `expf` polynomial (Moshier, Cephes Math Library; within 2 ulp of `e^x`).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp_clamped(x: __m256) -> __m256 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const P: [f32; 6] = [
        1.987_569_2e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(core::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut y = _mm256_set1_ps(P[0]);
    for &p in &P[1..] {
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(p));
    }
    let y = _mm256_add_ps(
        _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r),
        _mm256_set1_ps(1.0),
    );
    // 2^n by building the exponent field; n is in [-126, 127] for the clamped range.
    let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(y, _mm256_castsi256_ps(scale))
}

/// Arguments of [`exp_clamped`] stay in this range, where `2^n` is a normal f32.
const EXP_LO: f32 = -87.3;
const EXP_HI: f32 = 88.3;
/// `tanh(x)` rounds to 1 in f32 beyond this.
const TANH_CLAMP: f32 = 9.0;

/// `1 / (1 + e^-x)`, NaN kept.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sigmoid8(x: __m256) -> __m256 {
    let neg = _mm256_sub_ps(_mm256_setzero_ps(), x);
    let t = _mm256_min_ps(
        _mm256_max_ps(neg, _mm256_set1_ps(EXP_LO)),
        _mm256_set1_ps(EXP_HI),
    );
    let one = _mm256_set1_ps(1.0);
    let s = _mm256_div_ps(one, _mm256_add_ps(one, exp_clamped(t)));
    _mm256_blendv_ps(s, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x))
}

/// `sign(x) * (1 - 2 / (e^(2|x|) + 1))`, NaN kept; absolute error below 1e-7.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn tanh8(x: __m256) -> __m256 {
    let sign = _mm256_set1_ps(-0.0);
    let a = _mm256_min_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(TANH_CLAMP));
    let one = _mm256_set1_ps(1.0);
    let e = exp_clamped(_mm256_add_ps(a, a));
    let t = _mm256_sub_ps(
        one,
        _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)),
    );
    let t = _mm256_or_ps(t, _mm256_and_ps(sign, x));
    _mm256_blendv_ps(t, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x))
}

fn avx2_activate(activation: Activation, values: &mut [f32]) {
    count();
    match activation {
        // SAFETY: as in `avx2_matvec_f32`: only reachable after the AVX2 + FMA check.
        Activation::Sigmoid => unsafe { map8(values, Fn8::Sigmoid) },
        // SAFETY: as above.
        Activation::Tanh => unsafe { map8(values, Fn8::Tanh) },
        _ => generic::activate(activation, values),
    }
}

#[derive(Clone, Copy)]
enum Fn8 {
    Sigmoid,
    Tanh,
}

/// Applies `f` to `values` 8 at a time; a partial last vector goes through a stack copy so
/// every element sees the same formula.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn map8(values: &mut [f32], f: Fn8) {
    let apply = |v: __m256| match f {
        Fn8::Sigmoid => sigmoid8(v),
        Fn8::Tanh => tanh8(v),
    };
    let mut chunks = values.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let p = chunk.as_mut_ptr();
        // SAFETY: `chunk` holds exactly 8 values.
        unsafe { _mm256_storeu_ps(p, apply(_mm256_loadu_ps(p))) };
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut buf = [0.0f32; 8];
        buf[..rest.len()].copy_from_slice(rest);
        // SAFETY: `buf` holds 8 values.
        unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), apply(_mm256_loadu_ps(buf.as_ptr()))) };
        rest.copy_from_slice(&buf[..rest.len()]);
    }
}
