//! `avx2_matmul_f32`: one f32 weight matrix times a tile of streams, 8 streams per vector.
//!
//! The tile is stream-minor (`x[c * streams + j]`), so a vector holds one feature of 8
//! streams and each weight is broadcast once for 16 streams: the weights are read once
//! per tile instead of once per stream, which is the whole point of batching.
//!
//! Same bits as `avx2_matvec_f32` on each stream alone: that kernel sums row `r` in 8 lanes
//! (column `c` in lane `c % 8`, fused multiply-adds from zero, the masked tail adding `0 * 0`
//! to the lanes past it), then reduces the lanes by the tree `((l0+l1)+(l2+l3)) +
//! ((l4+l5)+(l6+l7))` and adds the row sum to `y`. Here every one of those lanes is a vector
//! of 8 streams and the same operations run in the same order, so the extra cost is the
//! reduction tree (additions, which run beside the multiply-adds) rather than lost
//! exactness.

use core::arch::x86_64::*;

use crate::kernels::F32View;

pub(super) fn avx2_matmul_f32(w: F32View<'_>, x: &[f32], y: &mut [f32], streams: usize) {
    super::count();
    // SAFETY: reachable only through the AVX2 table, which `kernels()` hands out only when
    // AVX2 and FMA are enabled at compile time or were detected on this CPU.
    unsafe { matmul_f32(w.as_bytes(), x, y, streams) }
}

/// 8-stream vectors per block: a weight broadcast feeds this many multiply-adds.
const VECTORS: usize = 2;

/// Stream mask for the last `tail` (1..8) streams of a tile: lanes `< tail` set.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn stream_mask(tail: usize) -> __m256i {
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(tail.min(8) as i32), lane)
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
}

/// Half of the lane tree for `V` stream vectors: lanes `first..first + 4` (column `c` in lane
/// `c % 8`) multiply-added from zero in column order, `0 * 0` added to a lane past the tail
/// (as the masked tail of the matrix-vector kernel does), then `(l0 + l1) + (l2 + l3)`.
/// The 4 lanes of 2 vectors are 8 independent chains, enough to hide the multiply-add latency.
///
/// # Safety
/// AVX2 + FMA; `w` holds `full + tail` values; `x` points at a tile column with `V * 8`
/// readable streams (or `mask` set) in each of `full + tail` rows `stride` apart.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn half<const V: usize>(
    w: *const f32,
    x: *const f32,
    s: Shape,
    first: usize,
    mask: Option<__m256i>,
) -> [__m256; V] {
    let mut acc = [[_mm256_setzero_ps(); V]; 4];
    let load = |p: *const f32| match mask {
        // SAFETY: the caller guarantees the (masked) 8 streams at `p` are readable.
        Some(m) => unsafe { _mm256_maskload_ps(p, m) },
        // SAFETY: as above.
        None => unsafe { _mm256_loadu_ps(p) },
    };
    let mut c0 = 0;
    while c0 < s.full {
        for (l, lane) in acc.iter_mut().enumerate() {
            let c = c0 + first + l;
            // SAFETY: `c < full`, inside the row and the tile's rows; the blob's bytes may
            // sit at any address, hence the unaligned read.
            let wv = _mm256_set1_ps(unsafe { w.add(c).read_unaligned() });
            for (v, a) in lane.iter_mut().enumerate() {
                // SAFETY: as above, stream vector `v < V`.
                *a = _mm256_fmadd_ps(wv, load(unsafe { x.add(c * s.stride + v * 8) }), *a);
            }
        }
        c0 += 8;
    }
    if s.tail != 0 {
        for (l, lane) in acc.iter_mut().enumerate() {
            if first + l < s.tail {
                let c = s.full + first + l;
                // SAFETY: `c < full + tail`, inside the row and the tile's rows (unaligned
                // read as above).
                let wv = _mm256_set1_ps(unsafe { w.add(c).read_unaligned() });
                for (v, a) in lane.iter_mut().enumerate() {
                    // SAFETY: as above.
                    *a = _mm256_fmadd_ps(wv, load(unsafe { x.add(c * s.stride + v * 8) }), *a);
                }
            } else {
                for a in lane.iter_mut() {
                    *a = _mm256_add_ps(*a, _mm256_setzero_ps());
                }
            }
        }
    }
    let [a0, a1, a2, a3] = acc;
    add(add(a0, a1), add(a2, a3))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn add<const V: usize>(a: [__m256; V], b: [__m256; V]) -> [__m256; V] {
    let mut out = a;
    for (o, b) in out.iter_mut().zip(b) {
        *o = _mm256_add_ps(*o, b);
    }
    out
}

/// `y += W x` for one row and `V` stream vectors (or one masked partial vector).
///
/// # Safety
/// As [`half`]; `y` has the same `V * 8` (or masked) streams writable.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn block<const V: usize>(
    w: *const f32,
    x: *const f32,
    y: *mut f32,
    s: Shape,
    mask: Option<__m256i>,
) {
    // SAFETY (both calls): forwarded from the caller. The tree of `hsum8`: (low) + (high).
    let (low, high) = unsafe { (half::<V>(w, x, s, 0, mask), half::<V>(w, x, s, 4, mask)) };
    for (v, sum) in add(low, high).into_iter().enumerate() {
        // SAFETY: `y` has these streams writable (masked when `mask` is set).
        unsafe {
            let p = y.add(v * 8);
            match mask {
                Some(m) => _mm256_maskstore_ps(p, m, _mm256_add_ps(_mm256_maskload_ps(p, m), sum)),
                None => _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), sum)),
            }
        }
    }
}

/// `y[r * s + j] += sum_c W[r, c] * x[c * s + j]`, `W` little-endian f32 bytes, row-major,
/// `x.len() / streams` columns, `y.len() / streams` rows (fewer if `w` holds fewer).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn matmul_f32(w: &[u8], x: &[f32], y: &mut [f32], streams: usize) {
    let Some(cols) = x.len().checked_div(streams) else {
        return;
    };
    let Some(row_bytes) = cols.checked_mul(4).filter(|&b| b > 0) else {
        return;
    };
    let rows = (y.len() / streams).min(w.len() / row_bytes);
    let full = cols & !7;
    let s = Shape {
        stride: streams,
        full,
        tail: cols - full,
    };
    let (wp, xp, yp) = (w.as_ptr(), x.as_ptr(), y.as_mut_ptr());
    let tail_mask = stream_mask(streams % 8);
    // Bounds: row `r < rows` starts at byte `r * row_bytes` with `cols` values inside `w`;
    // stream block `j..j + 8 * V <= streams` (or the masked `j..streams`) of row `c < cols`
    // of `x` and of row `r < rows` of `y` lies inside `cols * streams <= x.len()` and
    // `rows * streams <= y.len()` values.
    for r in 0..rows {
        // SAFETY: see "Bounds" above (every pointer below stays inside its slice).
        unsafe {
            let w_row = wp.add(r * row_bytes).cast::<f32>();
            let y_row = yp.add(r * streams);
            let mut j = 0;
            while j + 8 * VECTORS <= streams {
                block::<VECTORS>(w_row, xp.add(j), y_row.add(j), s, None);
                j += 8 * VECTORS;
            }
            while j + 8 <= streams {
                block::<1>(w_row, xp.add(j), y_row.add(j), s, None);
                j += 8;
            }
            if j < streams {
                block::<1>(w_row, xp.add(j), y_row.add(j), s, Some(tail_mask));
            }
        }
    }
}
