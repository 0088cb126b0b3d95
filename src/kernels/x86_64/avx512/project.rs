//! The integer projection of the AVX-512 tables: products, bias, requantization, accumulation.
//!
//! Products, 8 rows at a time (each row in its own 16-lane i32 accumulator, `x` loaded once
//! per step for all 8), then one transposing reduction to the 8 row sums:
//!
//! * i16 codes (`avx512`, and `avx512vnni` when a code is outside i8): weights widened to i16,
//!   32 columns per step, `vpmaddwd` + `vpaddd` (`vpdpwssd` with VNNI). A product is at most
//!   `2^7 * 2^15 = 2^22` in size, so any partial sum of [`CHUNK`] (448) of them is below 2^31:
//!   columns run in chunks of 448, each chunk's sums are exact in i32 in any order and are
//!   widened to i64 before the next.
//! * i8 codes (`avx512vnni` when every code fits i8, as in the int8 mode): the codes are
//!   narrowed once per call, 64 columns per step by `vpdpbusd`, which multiplies unsigned by
//!   signed bytes: the weights are flipped to `w + 128` (xor 0x80), and `128 * sum(x)` is
//!   subtracted from each row sum after. Every partial sum is below `255 * 128 * 1024 < 2^26`
//!   in size for the at most [`I8_COLS`] columns this path takes, so it is exact.
//!
//!   The i8 path computes the sums of up to 64 rows into a buffer before requantizing them
//!   16 at a time ([`finish16`]), so products and requantization do not wait on each other;
//!   rows of 4, 8 or 16 columns (small inputs) take whole rows from each 64-byte load
//!   ([`short_rows`]) instead of one masked load per row.
//!
//! Requantization runs on the 8 rows' i64 accumulators (`bias + dot`) at once with the rule of
//! [`crate::quant::Requant::apply`]: `(a * m + 2^(n-1)) >> n` with `n = 31 + shift`, the
//! product by `vpmuldq`, the variable shifts by `vpsllvq` / `vpsravq`, saturation to i32 by
//! `vpmovsqd`. That is the scalar code's own fast path, so it gives the same bits whenever the
//! scalar code takes it (accumulator within i32, `n <= 62`: every real model); a group of rows
//! where any lane is outside it runs the scalar rule instead. The i16 path does this 8 rows at
//! a time ([`finish`]); the i8 path's [`finish16`] takes 16 rows in i32 lanes, the accumulators
//! checked for i32 overflow, and forms the 64-bit products of the even and the odd rows apart.

use core::arch::x86_64::*;

use crate::kernels::{generic, RowsI8};
use crate::quant::fixed::clamp_to;

/// Columns per chunk of the i16 path: `448 * 2^22 < 2^31` (see the module docs).
const CHUNK: usize = 448;
/// Widest input the i8 path takes (its narrowed codes live on the stack).
const I8_COLS: usize = 1024;
/// Rows per block: their sums fill one vector of 8 i64 lanes for the requantization.
const ROWS: usize = 8;

/// `u32::MAX` over the low `n` (`0..=32`) bits.
#[inline]
fn mask32(n: usize) -> u32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
    }
}

/// `u64::MAX` over the low `n` (`0..=64`) bits.
#[inline]
fn mask64(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Lane `k` of the result is the sum of `a[k]`'s 16 lanes: pairs of rows interleaved and added
/// (`vpunpck*dq`, then `*qdq`), then the 128-bit lanes folded.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn reduce8(a: &[__m512i; ROWS]) -> __m256i {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = *a;
    let t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
    let t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
    let t2 = _mm512_add_epi32(_mm512_unpacklo_epi32(a4, a5), _mm512_unpackhi_epi32(a4, a5));
    let t3 = _mm512_add_epi32(_mm512_unpacklo_epi32(a6, a7), _mm512_unpackhi_epi32(a6, a7));
    // Each 128-bit lane of u0 holds partial sums of rows 0..4, of u1 rows 4..8.
    let u0 = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
    let u1 = _mm512_add_epi32(_mm512_unpacklo_epi64(t2, t3), _mm512_unpackhi_epi64(t2, t3));
    let v = _mm512_add_epi32(
        _mm512_shuffle_i32x4::<0b10_00_10_00>(u0, u1),
        _mm512_shuffle_i32x4::<0b11_01_11_01>(u0, u1),
    );
    let w = _mm512_add_epi32(
        _mm512_shuffle_i32x4::<0b10_00_10_00>(v, v),
        _mm512_shuffle_i32x4::<0b11_01_11_01>(v, v),
    );
    _mm512_castsi512_si256(w)
}

/// Defines `$name::<NR>(w, stride, x, n)`: the exact i32 sums `sum_{c < n} W[k, c] * x[c]` of
/// rows `k < NR` (`NR <= 8`; the other lanes are 0), row `k` at `w + k * stride`, over
/// `n <= CHUNK` i16 codes, 32 columns per step, `$madd(acc, w, x)` adding the pair products.
macro_rules! sums_i16 {
    ($name:ident, $features:literal, $madd:path) => {
        /// See [`sums_i16!`].
        ///
        /// # Safety
        /// The CPU must have the enabled features; rows `0..NR` must each have `n` readable
        /// bytes at `w + k * stride`, and `x` `n` readable codes.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn $name<const NR: usize>(
            w: *const u8,
            stride: usize,
            x: *const i16,
            n: usize,
        ) -> __m256i {
            let mut acc = [_mm512_setzero_si512(); ROWS];
            let mut c = 0;
            // SAFETY: full steps read `c..c + 32 <= n`; the tail's masked loads read only the
            // `n - c` lanes the caller guarantees (masked-out lanes never fault).
            unsafe {
                while c + 32 <= n {
                    let xv = _mm512_loadu_si512(x.add(c).cast());
                    for (k, a) in acc.iter_mut().enumerate().take(NR) {
                        let wb = _mm256_loadu_si256(w.add(k * stride + c).cast());
                        *a = $madd(*a, _mm512_cvtepi8_epi16(wb), xv);
                    }
                    c += 32;
                }
                if c < n {
                    let m = mask32(n - c);
                    let xv = _mm512_maskz_loadu_epi16(m, x.add(c));
                    for (k, a) in acc.iter_mut().enumerate().take(NR) {
                        let wb = _mm256_maskz_loadu_epi8(m, w.add(k * stride + c).cast());
                        *a = $madd(*a, _mm512_cvtepi8_epi16(wb), xv);
                    }
                }
            }
            reduce8(&acc)
        }
    };
}

/// `acc + vpmaddwd(w, x)`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn madd_add(acc: __m512i, w: __m512i, x: __m512i) -> __m512i {
    _mm512_add_epi32(acc, _mm512_madd_epi16(w, x))
}

sums_i16!(sums_i16, "avx512f,avx512bw,avx512vl", madd_add);
sums_i16!(
    sums_i16_vnni,
    "avx512f,avx512bw,avx512vl,avx512vnni",
    _mm512_dpwssd_epi32
);

/// `sum_{c < n} (W[k, c] + 128) * x[c]` of rows `k < NR` over `n <= I8_COLS` i8 codes by
/// `vpdpbusd`, 64 columns per step (lanes past `NR` are 0; masked-out weight bytes become 128
/// but meet zero codes).
///
/// # Safety
/// As for [`sums_i16!`], with AVX-512 VNNI.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn sums_i8<const NR: usize>(w: *const u8, stride: usize, x: *const i8, n: usize) -> __m256i {
    let flip = _mm512_set1_epi8(-128);
    let mut acc = [_mm512_setzero_si512(); ROWS];
    let mut c = 0;
    // SAFETY: as in `sums_i16!`, 64 bytes per step.
    unsafe {
        while c + 64 <= n {
            let xv = _mm512_loadu_si512(x.add(c).cast());
            for (k, a) in acc.iter_mut().enumerate().take(NR) {
                let wv = _mm512_loadu_si512(w.add(k * stride + c).cast());
                *a = _mm512_dpbusd_epi32(*a, _mm512_xor_si512(wv, flip), xv);
            }
            c += 64;
        }
        if c < n {
            let m = mask64(n - c);
            let xv = _mm512_maskz_loadu_epi8(m, x.add(c));
            for (k, a) in acc.iter_mut().enumerate().take(NR) {
                let wv = _mm512_maskz_loadu_epi8(m, w.add(k * stride + c).cast());
                *a = _mm512_dpbusd_epi32(*a, _mm512_xor_si512(wv, flip), xv);
            }
        }
    }
    reduce8(&acc)
}

/// `out[k] (+)= requant[first + k](bias[first + k] + dots[k])` saturated to i32, for the
/// `out.len() <= 8` rows of one block (see the module docs for the rule and its fallback).
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn finish(
    dots: __m512i,
    rows: &RowsI8<'_>,
    first: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    let nr = out.len().min(ROWS);
    let lanes = mask32(nr) as __mmask8;
    // Bias and requantizer lanes the views hold; the rest read as 0 (a zero factor), as the
    // views' own accessors give.
    let load = |bytes: &[u8]| -> __m256i {
        let held = (bytes.len() / 4).saturating_sub(first).min(nr);
        match bytes.get(first * 4..) {
            // SAFETY: `held` values of 4 bytes are readable from `first * 4` (masked-out
            // lanes are not read).
            Some(from) if held > 0 => unsafe {
                _mm256_maskz_loadu_epi32(mask32(held) as __mmask8, from.as_ptr().cast())
            },
            _ => _mm256_setzero_si256(),
        }
    };
    let bias = load(rows.bias.as_bytes());
    let packed = load(rows.requant.values().as_bytes());
    let acc = _mm512_add_epi64(dots, _mm512_cvtepi32_epi64(bias));
    let fits = _mm512_cmpeq_epi64_mask(acc, _mm512_cvtepi32_epi64(_mm512_cvtepi64_epi32(acc)));
    // Requant::unpack: multiplier in the top 24 bits, shift in the low byte (sign-extended).
    let m = _mm256_and_si256(packed, _mm256_set1_epi32(!0xFF));
    let shift = _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(packed));
    let shift = _mm256_min_epi32(
        _mm256_max_epi32(
            shift,
            _mm256_set1_epi32(crate::quant::fixed::MIN_SHIFT.into()),
        ),
        _mm256_set1_epi32(crate::quant::fixed::MAX_SHIFT.into()),
    );
    let n = _mm256_add_epi32(shift, _mm256_set1_epi32(31));
    let short = _mm256_cmple_epi32_mask(n, _mm256_set1_epi32(62));
    let out_ptr = out.as_mut_ptr();
    if fits & short & lanes != lanes {
        let mut sums = [0i64; ROWS];
        // SAFETY: `sums` holds 8 i64.
        unsafe { _mm512_storeu_si512(sums.as_mut_ptr().cast(), acc) };
        for (k, (o, &a)) in out.iter_mut().zip(&sums).enumerate() {
            let v = rows.requant.get(first + k).apply(a);
            let v = if accumulate { i64::from(*o) + v } else { v };
            *o = clamp_to(v, i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        }
        return;
    }
    let n = _mm512_cvtepi32_epi64(n);
    let product = _mm512_mul_epi32(acc, _mm512_cvtepi32_epi64(m));
    let round = _mm512_sllv_epi64(
        _mm512_set1_epi64(1),
        _mm512_sub_epi64(n, _mm512_set1_epi64(1)),
    );
    let mut v = _mm512_srav_epi64(_mm512_add_epi64(product, round), n);
    if accumulate {
        // SAFETY: `out` holds `nr` values; masked-out lanes are not read.
        let old = unsafe { _mm256_maskz_loadu_epi32(lanes, out_ptr.cast_const()) };
        v = _mm512_add_epi64(v, _mm512_cvtepi32_epi64(old));
    }
    // SAFETY: as above, for the store.
    unsafe { _mm256_mask_storeu_epi32(out_ptr, lanes, _mm512_cvtsepi64_epi32(v)) };
}

/// Defines the i16-code projection `$name(rows, codes, out, accumulate)` over `$sums`.
macro_rules! project_i16 {
    ($name:ident, $features:literal, $sums:ident) => {
        /// The projection over i16 codes (`codes.len()` columns, at least 1).
        ///
        /// # Safety
        /// The CPU must have the enabled features.
        #[target_feature(enable = $features)]
        unsafe fn $name(rows: &RowsI8<'_>, codes: &[i16], out: &mut [i32], accumulate: bool) {
            let cols = codes.len();
            let held = out.len().min(rows.weights.len() / cols.max(1));
            let (w, x) = (rows.weights.as_ptr(), codes.as_ptr());
            // Bounds: rows `r + k < held` start at `(r + k) * cols` with `cols` bytes in
            // `weights`; chunk `start..start + n` lies within the row and the codes.
            for (block, outs) in out[..held].chunks_mut(ROWS).enumerate() {
                let r = block * ROWS;
                let mut total = _mm512_setzero_si512();
                let mut start = 0;
                while start < cols {
                    let n = (cols - start).min(CHUNK);
                    // SAFETY: see "Bounds" above.
                    let sums = unsafe {
                        let (wb, xb) = (w.add(r * cols + start), x.add(start));
                        if outs.len() == ROWS {
                            $sums::<ROWS>(wb, cols, xb, n)
                        } else {
                            let mut one = [0i32; ROWS];
                            for (k, s) in one.iter_mut().enumerate().take(outs.len()) {
                                *s =
                                    _mm256_cvtsi256_si32($sums::<1>(wb.add(k * cols), cols, xb, n));
                            }
                            _mm256_loadu_si256(one.as_ptr().cast())
                        }
                    };
                    total = _mm512_add_epi64(total, _mm512_cvtepi32_epi64(sums));
                    start += n;
                }
                // SAFETY: the features are enabled here.
                unsafe { finish(total, rows, r, outs, accumulate) };
            }
        }
    };
}

project_i16!(project_i16, "avx512f,avx512bw,avx512vl", sums_i16);
project_i16!(
    project_i16_vnni,
    "avx512f,avx512bw,avx512vl,avx512vnni",
    sums_i16_vnni
);

/// Narrows `codes` into `narrow` (at least as long), or `None` if one does not fit i8; with
/// the codes' sum.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn narrow_codes(codes: &[i16], narrow: &mut [i8]) -> Option<i32> {
    if narrow.len() < codes.len() {
        return None;
    }
    let (x, out) = (codes.as_ptr(), narrow.as_mut_ptr());
    let mut sum = _mm512_setzero_si512();
    let mut bad = 0u32;
    let mut c = 0;
    while c < codes.len() {
        let m = mask32(codes.len() - c);
        // SAFETY: the mask covers only codes `c..codes.len()`, and `narrow` is as long.
        unsafe {
            let v = _mm512_maskz_loadu_epi16(m, x.add(c));
            let n8 = _mm512_cvtsepi16_epi8(v);
            bad |= _mm512_cmpneq_epi16_mask(v, _mm512_cvtepi8_epi16(n8));
            _mm256_mask_storeu_epi8(out.add(c), m, n8);
            sum = _mm512_add_epi32(sum, _mm512_madd_epi16(v, _mm512_set1_epi16(1)));
        }
        c += 32;
    }
    (bad == 0).then(|| _mm512_reduce_add_epi32(sum))
}

/// Rows whose sums [`project_i8_vnni`] computes before requantizing them (on the stack).
const GROUP: usize = 64;

/// The projection over i8 codes (`codes.len()` columns, `1..=I8_COLS`) whose sum is `sum`:
/// the row sums of up to [`GROUP`] rows into a buffer, then their requantization 16 rows at
/// a time ([`finish16`]), so neither waits on the other.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VL and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn project_i8_vnni(
    rows: &RowsI8<'_>,
    codes: &[i8],
    sum: i32,
    out: &mut [i32],
    accumulate: bool,
) {
    let cols = codes.len();
    let held = out.len().min(rows.weights.len() / cols.max(1));
    let (w, x) = (rows.weights.as_ptr(), codes.as_ptr());
    // The flipped weights' sums exceed the products' by 128 * sum(x) (see the module docs).
    let offset = sum.wrapping_mul(128);
    let mut sums = [0i32; GROUP];
    // Bounds as in `project_i16!`, with one chunk: rows `r < held` hold `cols` weights from
    // `r * cols`, and `x` holds `cols` codes.
    for (group, outs) in out[..held].chunks_mut(GROUP).enumerate() {
        let first = group * GROUP;
        let nr = outs.len();
        let dots = sums.as_mut_ptr();
        // SAFETY: see "Bounds" above; `sums` holds `GROUP >= nr` values.
        unsafe {
            let wg = w.add(first * cols);
            match cols {
                4 => short_rows::<4>(wg, x, nr, dots),
                8 => short_rows::<8>(wg, x, nr, dots),
                16 => short_rows::<16>(wg, x, nr, dots),
                _ => {
                    let mut r = 0;
                    while r + ROWS <= nr {
                        let s = sums_i8::<ROWS>(wg.add(r * cols), cols, x, cols);
                        _mm256_storeu_si256(dots.add(r).cast(), s);
                        r += ROWS;
                    }
                    while r < nr {
                        let s = sums_i8::<1>(wg.add(r * cols), cols, x, cols);
                        *dots.add(r) = _mm256_cvtsi256_si32(s);
                        r += 1;
                    }
                }
            }
        }
        for (block, o) in outs.chunks_mut(LANES16).enumerate() {
            let at = block * LANES16;
            let lanes = mask32(o.len()) as __mmask16;
            // SAFETY: `at + o.len() <= nr <= GROUP` values of `sums`; the features are
            // enabled here.
            unsafe {
                let s = _mm512_maskz_loadu_epi32(lanes, sums.as_ptr().add(at));
                finish16(s, offset, rows, first + at, o, accumulate);
            }
        }
    }
}

/// Rows per [`finish16`].
const LANES16: usize = 16;

/// The flipped-weight sums (see [`sums_i8`]) of `nr` consecutive rows of `COLS` (4, 8 or
/// 16) columns at `w`, whole rows of one 64-byte load at a time: `vpdpbusd` against `x`
/// repeated across the vector gives each row's sum in `COLS / 4` neighbouring lanes, which
/// are added and stored to `dots[..nr]`. Bytes past the rows are masked out (they become 128
/// after the flip, so their lanes hold junk, which is never stored).
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VL and VNNI; `w` must hold `nr * COLS` readable bytes, `x`
/// `COLS` codes, `dots` `nr` writable values.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn short_rows<const COLS: usize>(w: *const u8, x: *const i8, nr: usize, dots: *mut i32) {
    let per = 64 / COLS;
    // SAFETY: `x` holds `COLS` codes (see `# Safety`).
    let xv = unsafe {
        match COLS {
            4 => _mm512_set1_epi32(x.cast::<i32>().read_unaligned()),
            8 => _mm512_set1_epi64(x.cast::<i64>().read_unaligned()),
            _ => _mm512_broadcast_i32x4(_mm_loadu_si128(x.cast())),
        }
    };
    let flip = _mm512_set1_epi8(-128);
    let mut r = 0;
    while r < nr {
        let n = (nr - r).min(per);
        // SAFETY: the mask covers the `n * COLS` bytes of rows `r..r + n` (see `# Safety`),
        // and the stores the `n` values of `dots` from `r`.
        unsafe {
            let wv = _mm512_maskz_loadu_epi8(mask64(n * COLS), w.add(r * COLS).cast());
            let v = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(wv, flip), xv);
            let m = mask32(n);
            match COLS {
                4 => _mm512_mask_storeu_epi32(dots.add(r), m as __mmask16, v),
                8 => {
                    let pairs = _mm512_add_epi32(v, _mm512_srli_epi64::<32>(v));
                    _mm256_mask_storeu_epi32(
                        dots.add(r),
                        m as __mmask8,
                        _mm512_cvtepi64_epi32(pairs),
                    );
                }
                _ => {
                    let pairs = _mm512_add_epi32(v, _mm512_srli_epi64::<32>(v));
                    let quads = _mm512_add_epi32(pairs, _mm512_bsrli_epi128::<8>(pairs));
                    let rows = _mm512_maskz_compress_epi32(0x1111, quads);
                    _mm_mask_storeu_epi32(dots.add(r), m as __mmask8, _mm512_castsi512_si128(rows));
                }
            }
        }
        r += per;
    }
}

/// `out[k] (+)= requant[first + k](bias[first + k] + sums[k] - offset)` saturated to i32, for
/// the `out.len() <= 16` rows of one block, `sums[k] - offset` their exact i32 dot products.
///
/// `Requant::apply`'s fast path on 64-bit lanes, the even rows' and the odd rows' apart: with
/// the accumulator `a` in i32 and `n = 31 + shift <= 62`, `p = a * m` (`vpmuldq`) is below
/// `2^62` in size and `(p + 2^(n-1)) >> n` is `((p >> (n - 1)) + 1) >> 1` (nested floors), the
/// same bits. The sum with `out` and the saturation to i32 run on the same 64-bit lanes. A
/// block where a lane's accumulator leaves i32 or `n > 62` runs the scalar rule.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn finish16(
    sums: __m512i,
    offset: i32,
    rows: &RowsI8<'_>,
    first: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    let nr = out.len().min(LANES16);
    let lanes = mask32(nr) as __mmask16;
    // Bias and requantizer lanes the views hold; the rest read as 0 (a zero factor), as the
    // views' own accessors give.
    let load = |bytes: &[u8]| -> __m512i {
        let held = (bytes.len() / 4).saturating_sub(first).min(nr);
        match bytes.get(first * 4..) {
            // SAFETY: `held` values of 4 bytes are readable from `first * 4` (masked-out
            // lanes are not read).
            Some(from) if held > 0 => unsafe {
                _mm512_maskz_loadu_epi32(mask32(held) as __mmask16, from.as_ptr().cast())
            },
            _ => _mm512_setzero_si512(),
        }
    };
    let bias = load(rows.bias.as_bytes());
    let packed = load(rows.requant.values().as_bytes());
    let dots = _mm512_sub_epi32(sums, _mm512_set1_epi32(offset));
    let acc = _mm512_add_epi32(dots, bias);
    // The i32 sum overflowed where it has the sign of neither term.
    let wrapped = _mm512_and_si512(_mm512_xor_si512(acc, dots), _mm512_xor_si512(acc, bias));
    let wrapped = _mm512_cmplt_epi32_mask(wrapped, _mm512_setzero_si512());
    // Requant::unpack: multiplier in the top 24 bits, shift in the low byte (sign-extended).
    let m = _mm512_and_si512(packed, _mm512_set1_epi32(!0xFF));
    let shift = _mm512_srai_epi32::<24>(_mm512_slli_epi32::<24>(packed));
    let shift = _mm512_min_epi32(
        _mm512_max_epi32(
            shift,
            _mm512_set1_epi32(crate::quant::fixed::MIN_SHIFT.into()),
        ),
        _mm512_set1_epi32(crate::quant::fixed::MAX_SHIFT.into()),
    );
    // n - 1 = 30 + shift, in 0..=61 on the fast path.
    let n1 = _mm512_add_epi32(shift, _mm512_set1_epi32(30));
    let long = _mm512_cmpgt_epi32_mask(n1, _mm512_set1_epi32(61));
    if (wrapped | long) & lanes != 0 {
        let mut lanes = [0i32; LANES16];
        // SAFETY: `lanes` holds 16 i32.
        unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), dots) };
        for (k, (o, &d)) in out.iter_mut().zip(&lanes).enumerate() {
            let a = i64::from(rows.bias.get_or_zero(first + k)) + i64::from(d);
            let v = rows.requant.get(first + k).apply(a);
            let v = if accumulate { i64::from(*o) + v } else { v };
            *o = clamp_to(v, i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        }
        return;
    }
    let low = _mm512_set1_epi64(0xFFFF_FFFF);
    let one = _mm512_set1_epi64(1);
    let round = |a: __m512i, m: __m512i, n1: __m512i| -> __m512i {
        _mm512_srai_epi64::<1>(_mm512_add_epi64(
            _mm512_srav_epi64(_mm512_mul_epi32(a, m), n1),
            one,
        ))
    };
    let mut even = round(acc, m, _mm512_and_si512(n1, low));
    let mut odd = round(
        _mm512_srli_epi64::<32>(acc),
        _mm512_srli_epi64::<32>(m),
        _mm512_srli_epi64::<32>(n1),
    );
    let out_ptr = out.as_mut_ptr();
    if accumulate {
        // SAFETY: `out` holds `nr` values; masked-out lanes are not read.
        let old = unsafe { _mm512_maskz_loadu_epi32(lanes, out_ptr.cast_const()) };
        even = _mm512_add_epi64(even, _mm512_srai_epi64::<32>(_mm512_slli_epi64::<32>(old)));
        odd = _mm512_add_epi64(odd, _mm512_srai_epi64::<32>(old));
    }
    let sat = |v: __m512i| {
        _mm512_min_epi64(
            _mm512_max_epi64(v, _mm512_set1_epi64(i32::MIN.into())),
            _mm512_set1_epi64(i32::MAX.into()),
        )
    };
    let v = _mm512_mask_blend_epi32(0xAAAA, sat(even), _mm512_slli_epi64::<32>(sat(odd)));
    // SAFETY: as above, for the store.
    unsafe { _mm512_mask_storeu_epi32(out_ptr, lanes, v) };
}

/// The `avx512` tables' `pack_i16`: [`generic::pack_i16`]'s natural order and saturation,
/// 16 codes per step by `vpmovsdw` (the projections read the words as i16 codes).
pub(super) fn avx512_pack_i16(codes: &[i32], packed: &mut [i32]) {
    // The codes the generic kernel packs: as many pairs as there are words.
    let n = codes.len().min(packed.len().saturating_mul(2));
    // SAFETY: reachable only through the `avx512` tables (see `avx512_project_i8`).
    unsafe { pack_i16(&codes[..n], packed) }
}

/// See [`avx512_pack_i16`].
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL; `packed` must hold `codes.len().div_ceil(2)` words.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pack_i16(codes: &[i32], packed: &mut [i32]) {
    let (x, out) = (codes.as_ptr(), packed.as_mut_ptr().cast::<i16>());
    let mut c = 0;
    while c < codes.len() {
        let n = (codes.len() - c).min(16);
        // SAFETY: the load mask covers codes `c..c + n`; the store covers `n` rounded up to
        // even i16 lanes, within the `div_ceil(2)` words from word `c / 2` (an odd last code's
        // partner is a masked-out lane's 0, as in the generic packing).
        unsafe {
            let v = _mm512_maskz_loadu_epi32(mask32(n) as __mmask16, x.add(c));
            let lanes = mask32((n + 1) & !1) as __mmask16;
            _mm256_mask_storeu_epi16(out.add(c), lanes, _mm512_cvtsepi32_epi16(v));
        }
        c += 16;
    }
}

/// The `avx512` table's `project_i8`.
pub(super) fn avx512_project_i8(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    super::count();
    let codes = crate::kernels::x86_64::packed_as_i16(packed, cols);
    if cols == 0 || codes.len() < cols {
        // Nothing to do, or a short buffer (callers never pass one): the reference's result.
        return generic::project_i8(rows, packed, cols, out, accumulate);
    }
    // SAFETY: reachable only through the `avx512` tables, which `kernels()` hands out only
    // after checking AVX-512 F, BW and VL (at compile time or on this CPU).
    unsafe { project_i16(rows, codes, out, accumulate) }
}

/// The `avx512vnni` table's `project_i8`: i8 codes by `vpdpbusd` when they all fit (int8
/// mode), else i16 codes by `vpdpwssd`.
pub(super) fn avx512vnni_project_i8(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    super::count();
    let codes = crate::kernels::x86_64::packed_as_i16(packed, cols);
    if cols == 0 || codes.len() < cols {
        return generic::project_i8(rows, packed, cols, out, accumulate);
    }
    // Short inputs get a short buffer (it is cleared on every call).
    match cols {
        0..=64 => with_narrowed::<64>(rows, codes, out, accumulate),
        65..=256 => with_narrowed::<256>(rows, codes, out, accumulate),
        _ => with_narrowed::<I8_COLS>(rows, codes, out, accumulate),
    }
}

fn with_narrowed<const N: usize>(
    rows: &RowsI8<'_>,
    codes: &[i16],
    out: &mut [i32],
    accumulate: bool,
) {
    let mut narrow = [0i8; N];
    // SAFETY: reachable only through the `avx512vnni` table, which `kernels_vnni()` hands
    // out only after checking AVX-512 F, BW, VL and VNNI.
    unsafe {
        match narrow_codes(codes, &mut narrow) {
            Some(sum) => project_i8_vnni(rows, &narrow[..codes.len()], sum, out, accumulate),
            None => project_i16_vnni(rows, codes, out, accumulate),
        }
    }
}

/// The `avx512` tables' `dot_rows_i8`: the exact i64 row sums by the i16 product core, on
/// the codes the shared driver packs to i16 (it runs the generic kernel when one does not fit).
pub(super) fn avx512_dot_rows_i8(weights: &[u8], x: &[i32], out: &mut [i64]) {
    super::count();
    crate::kernels::dot_rows_i8_by_i16_chunks(
        weights,
        x,
        out,
        |w, cols, start, codes, out, first| {
            // SAFETY: reachable only through the `avx512` tables (see `avx512_project_i8`); the
            // driver passes only rows `w` holds, `cols` weights each, with `start + codes.len()
            // <= cols`.
            unsafe { dot_rows_chunk(w, cols, start, codes, out, first) }
        },
    );
}

/// `out[r] (=|+=) sum_{c < codes.len()} W[r, start + c] * codes[c]`, exact: assigns on the
/// first chunk of columns, adds on later ones.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL; `w` must hold `out.len()` rows of `cols` values and
/// `start + codes.len() <= cols`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn dot_rows_chunk(
    w: &[u8],
    cols: usize,
    start: usize,
    codes: &[i16],
    out: &mut [i64],
    first: bool,
) {
    let (wp, xp) = (w.as_ptr(), codes.as_ptr());
    for (block, outs) in out.chunks_mut(ROWS).enumerate() {
        let r = block * ROWS;
        let mut sums = [0i64; ROWS];
        let mut from = 0;
        while from < codes.len() {
            let n = (codes.len() - from).min(CHUNK);
            // SAFETY: rows `r + k < out.len()` hold `cols` bytes from `(r + k) * cols`, and
            // columns `start + from .. start + from + n <= cols`.
            let s = unsafe {
                let (wb, xb) = (wp.add(r * cols + start + from), xp.add(from));
                if outs.len() == ROWS {
                    sums_i16::<ROWS>(wb, cols, xb, n)
                } else {
                    let mut one = [0i32; ROWS];
                    for (k, s) in one.iter_mut().enumerate().take(outs.len()) {
                        *s = _mm256_cvtsi256_si32(sums_i16::<1>(wb.add(k * cols), cols, xb, n));
                    }
                    _mm256_loadu_si256(one.as_ptr().cast())
                }
            };
            let mut lanes = [0i32; ROWS];
            // SAFETY: `lanes` holds 8 i32.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), s) };
            for (t, &l) in sums.iter_mut().zip(&lanes) {
                *t += i64::from(l);
            }
            from += n;
        }
        for (o, &s) in outs.iter_mut().zip(&sums) {
            *o = if first { s } else { *o + s };
        }
    }
}
