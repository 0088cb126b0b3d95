//! `avx512_matmul_f32`: one f32 weight matrix times a tile of streams, 16 streams per vector.
//!
//! The tile is stream-minor (`x[c * streams + j]`), so a 512-bit vector holds one feature of 16
//! streams, and each weight is broadcast (straight from the blob, as a memory operand) once for
//! up to 64 streams: the weights are read once per tile instead of once per stream.
//!
//! Same bits as this table's `matvec_f32` (the AVX2 kernel's summation order) on each stream
//! alone: row `r` in 8 lanes (column `c` in lane `c % 8`, fused multiply-adds
//! from zero, the masked tail adding `0 * 0` to the lanes past it), the lanes reduced by the
//! tree `((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7))`, the row sum added to `y` last. Here every one
//! of those lanes is a vector of 16 streams and the same operations run in the same order.
//!
//! Two rows share every load of `x`: a block is 2 rows x 4 lanes (one half of the tree) x `V`
//! stream vectors of accumulators, so a column costs 2 weight broadcasts and `V` loads of `x`
//! for `2 V` multiply-adds, and the 8 (or more) independent chains hide the multiply-add
//! latency. The low half's sums wait in registers while the high half runs.

use core::arch::x86_64::*;

use crate::kernels::F32View;

pub(super) fn avx512_matmul_f32(w: F32View<'_>, x: &[f32], y: &mut [f32], streams: usize) {
    super::count();
    // SAFETY: reachable only through the AVX-512 tables, which `kernels()` / `kernels_vnni()`
    // hand out only after the AVX-512 F/BW/VL + AVX2 + FMA check (at compile time or on this
    // CPU).
    unsafe { matmul_f32(w.as_bytes(), x, y, streams) }
}

/// Lane mask of the last `tail` (0..16) streams of a tile: all 16 lanes for 0.
#[inline]
fn stream_mask(tail: usize) -> __mmask16 {
    if tail == 0 || tail >= 16 {
        0xFFFF
    } else {
        ((1u32 << tail) - 1) as __mmask16
    }
}

/// The shape of one call, shared by its blocks.
#[derive(Clone, Copy)]
struct Shape {
    /// Floats between one feature's row and the next in `x` (the tile's stream count).
    stride: usize,
    /// Columns in whole groups of 8.
    full: usize,
    /// Columns past `full` (0..8).
    tail: usize,
    /// Bytes between one weight row and the next.
    row_bytes: usize,
}

/// Rows `0..rows` of `y` for the stream vectors `0..V` at `x` and `y` (the last one masked by
/// `mask`), `R` rows at a time, one row at a time at the end.
///
/// # Safety
/// AVX-512 F + FMA; every row `< rows` of `w` holds `full + tail` values `row_bytes` apart;
/// the streams the vectors cover are readable in every row `< full + tail` of `x` and
/// writable in every row `< rows` of `y` (rows `stride` apart).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn rows<const R: usize, const V: usize>(
    w: *const u8,
    x: *const f32,
    y: *mut f32,
    rows: usize,
    s: Shape,
    mask: __mmask16,
) {
    let mut r = 0;
    while r + R <= rows {
        // SAFETY: rows `r..r + R` are `< rows`; the rest is the caller's guarantee.
        unsafe { block::<R, V>(w.add(r * s.row_bytes), x, y.add(r * s.stride), s, mask) };
        r += R;
    }
    while r < rows {
        // SAFETY: as above for row `r`.
        unsafe { block::<1, V>(w.add(r * s.row_bytes), x, y.add(r * s.stride), s, mask) };
        r += 1;
    }
}

/// `y += W x` for `R` rows and `V` stream vectors: both halves of the lane tree, each lane
/// `l` (column `c` in lane `c % 8`) multiply-added from zero in column order, `0 * 0` added
/// to a lane past the tail (as the masked tail of the matrix-vector kernel does), the half
/// reduced as `(l0 + l1) + (l2 + l3)`, then `(low + high)` added to `y`.
///
/// # Safety
/// As [`rows`], for rows `0..R`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn block<const R: usize, const V: usize>(
    w: *const u8,
    x: *const f32,
    y: *mut f32,
    s: Shape,
    mask: __mmask16,
) {
    // Column `c` of the tile, stream vector `v`: the last vector masked.
    let load = |c: usize, v: usize| {
        // SAFETY: the caller guarantees these streams of row `c` are readable.
        unsafe {
            let p = x.add(c * s.stride + v * 16);
            if v + 1 == V {
                _mm512_maskz_loadu_ps(mask, p)
            } else {
                _mm512_loadu_ps(p)
            }
        }
    };
    // Weight `c` of row `k`, broadcast; the blob's bytes may sit at any address.
    let weight = |k: usize, c: usize| {
        // SAFETY: `k < R` and `c < full + tail`: inside the caller's rows.
        _mm512_set1_ps(unsafe {
            w.add(k * s.row_bytes + c * 4)
                .cast::<f32>()
                .read_unaligned()
        })
    };
    // One half of the tree: lanes `$first..$first + 4`, reduced as `(l0 + l1) + (l2 + l3)`
    // (a macro, so both halves sit in this function's registers).
    macro_rules! half {
        ($first:expr) => {{
            let first: usize = $first;
            let mut acc = [[[_mm512_setzero_ps(); V]; R]; 4];
            let mut c0 = 0;
            while c0 < s.full {
                for (l, lane) in acc.iter_mut().enumerate() {
                    let c = c0 + first + l;
                    let xs: [__m512; V] = core::array::from_fn(|v| load(c, v));
                    for (k, row) in lane.iter_mut().enumerate() {
                        let wv = weight(k, c);
                        for (a, &xv) in row.iter_mut().zip(xs.iter()) {
                            *a = _mm512_fmadd_ps(wv, xv, *a);
                        }
                    }
                }
                c0 += 8;
            }
            if s.tail != 0 {
                for (l, lane) in acc.iter_mut().enumerate() {
                    if first + l < s.tail {
                        let c = s.full + first + l;
                        let xs: [__m512; V] = core::array::from_fn(|v| load(c, v));
                        for (k, row) in lane.iter_mut().enumerate() {
                            let wv = weight(k, c);
                            for (a, &xv) in row.iter_mut().zip(xs.iter()) {
                                *a = _mm512_fmadd_ps(wv, xv, *a);
                            }
                        }
                    } else {
                        for a in lane.iter_mut().flatten() {
                            *a = _mm512_add_ps(*a, _mm512_setzero_ps());
                        }
                    }
                }
            }
            let [a0, a1, a2, a3] = acc;
            let mut out = a0;
            for (k, row) in out.iter_mut().enumerate() {
                for (v, o) in row.iter_mut().enumerate() {
                    let low = _mm512_add_ps(*o, a1[k][v]);
                    *o = _mm512_add_ps(low, _mm512_add_ps(a2[k][v], a3[k][v]));
                }
            }
            out
        }};
    }
    let (low, high) = (half!(0), half!(4));
    for (k, (low, high)) in low.iter().zip(&high).enumerate() {
        for (v, (&low, &high)) in low.iter().zip(high).enumerate() {
            let sum = _mm512_add_ps(low, high);
            // SAFETY: `y` has these streams of row `k` writable (the last vector masked).
            unsafe {
                let p = y.add(k * s.stride + v * 16);
                if v + 1 == V {
                    let old = _mm512_maskz_loadu_ps(mask, p);
                    _mm512_mask_storeu_ps(p, mask, _mm512_add_ps(old, sum));
                } else {
                    _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), sum));
                }
            }
        }
    }
}

/// `y[r * s + j] += sum_c W[r, c] * x[c * s + j]`, `W` little-endian f32 bytes, row-major,
/// `x.len() / streams` columns, `y.len() / streams` rows (fewer if `w` holds fewer).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn matmul_f32(w: &[u8], x: &[f32], y: &mut [f32], streams: usize) {
    let Some(cols) = x.len().checked_div(streams) else {
        return;
    };
    let Some(row_bytes) = cols.checked_mul(4).filter(|&b| b > 0) else {
        return;
    };
    let n_rows = (y.len() / streams).min(w.len() / row_bytes);
    let full = cols & !7;
    let s = Shape {
        stride: streams,
        full,
        tail: cols - full,
        row_bytes,
    };
    let (wp, xp, yp) = (w.as_ptr(), x.as_ptr(), y.as_mut_ptr());
    let all = stream_mask(0);
    // Bounds: row `r < n_rows` starts at byte `r * row_bytes` with `cols` values inside `w`;
    // stream vectors `j..j + 16 * V` (`<= streams` or the last masked to end at `streams`) of row
    // `c < cols` of `x` and of row `r < n_rows` of `y` lie inside `cols * streams <= x.len()`
    // and `n_rows * streams <= y.len()` values.
    let mut j = 0;
    // SAFETY (every call): see "Bounds" above.
    unsafe {
        while j + 32 <= streams {
            rows::<2, 2>(wp, xp.add(j), yp.add(j), n_rows, s, all);
            j += 32;
        }
        match streams - j {
            0 => {}
            rest @ 1..=16 => rows::<2, 1>(wp, xp.add(j), yp.add(j), n_rows, s, stream_mask(rest)),
            rest => rows::<2, 2>(wp, xp.add(j), yp.add(j), n_rows, s, stream_mask(rest - 16)),
        }
    }
}
