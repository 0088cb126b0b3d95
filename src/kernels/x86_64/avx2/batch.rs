//! The batched step's AVX2 kernels: `avx2_matmul_f32` (below), `avx2_transpose_f32` (8 x 8
//! blocks between stream-major states and stream-minor tiles) and `avx2_lstm_gates_f32` (the
//! LSTM element-wise step, also `Model::step`'s, in two passes).
//!
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

use crate::format::Activation;
use crate::kernels::{generic, F32View};

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

/// The table's `transpose_f32`: 8 x 8 blocks through registers (unpack, shuffle and lane
/// permutes), the edges one value at a time. Pure copies: the same bits as the generic kernel.
pub(super) fn avx2_transpose_f32(
    src: &[f32],
    src_stride: usize,
    dst: &mut [f32],
    dst_stride: usize,
    rows: usize,
    cols: usize,
) {
    super::count();
    if rows == 0 || cols == 0 {
        return;
    }
    // The last value read is `(rows - 1) * src_stride + cols - 1`, the last written
    // `(cols - 1) * dst_stride + rows - 1`.
    let fits = |len: usize, stride: usize, lines: usize, width: usize| {
        (lines - 1)
            .checked_mul(stride)
            .and_then(|e| e.checked_add(width))
            .is_some_and(|e| e <= len)
    };
    if !fits(src.len(), src_stride, rows, cols) || !fits(dst.len(), dst_stride, cols, rows) {
        // Values past the slices are skipped there, as the definition says.
        generic::batch::transpose_f32(src, src_stride, dst, dst_stride, rows, cols);
        return;
    }
    // SAFETY: reachable only through the AVX2 tables (AVX2 + FMA checked); every index the
    // kernel touches is inside the slices by `fits` above.
    unsafe {
        transpose(
            src.as_ptr(),
            src_stride,
            dst.as_mut_ptr(),
            dst_stride,
            rows,
            cols,
        );
    }
}

/// # Safety
/// AVX2; `src[r * ss + c]` readable and `dst[c * ds + r]` writable for `r < rows`, `c < cols`.
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose(
    src: *const f32,
    ss: usize,
    dst: *mut f32,
    ds: usize,
    rows: usize,
    cols: usize,
) {
    let (rows8, cols8) = (rows & !7, cols & !7);
    let mut r = 0;
    while r < rows8 {
        let mut c = 0;
        while c < cols8 {
            // SAFETY: rows `r..r + 8 <= rows` and columns `c..c + 8 <= cols`.
            unsafe { block8(src.add(r * ss + c), ss, dst.add(c * ds + r), ds) };
            c += 8;
        }
        for c in cols8..cols {
            for k in r..r + 8 {
                // SAFETY: `k < rows`, `c < cols`.
                unsafe { *dst.add(c * ds + k) = *src.add(k * ss + c) };
            }
        }
        r += 8;
    }
    for k in rows8..rows {
        for c in 0..cols {
            // SAFETY: `k < rows`, `c < cols`.
            unsafe { *dst.add(c * ds + k) = *src.add(k * ss + c) };
        }
    }
}

/// One 8 x 8 block: row `k` of `src` (8 values) becomes column `k` of `dst`.
///
/// # Safety
/// AVX2; 8 rows of 8 values `ss` apart readable at `src`, 8 rows `ds` apart writable at `dst`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn block8(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
    let mut r = [_mm256_setzero_ps(); 8];
    for (k, v) in r.iter_mut().enumerate() {
        // SAFETY: row `k < 8` of the block.
        *v = unsafe { _mm256_loadu_ps(src.add(k * ss)) };
    }
    // Pairs of rows interleaved, then quads, then the 128-bit halves swapped into place.
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let out = [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ];
    for (k, v) in out.into_iter().enumerate() {
        // SAFETY: row `k < 8` of the block.
        unsafe { _mm256_storeu_ps(dst.add(k * ds), v) };
    }
}

/// Which of the table's vector activations a gate uses (a const parameter, so each pairing
/// compiles to straight-line code).
const SIGMOID: u8 = 0;
const TANH: u8 = 1;

/// The table's `lstm_gates_f32`: for sigmoid and tanh gates, 8 units at a time, the
/// activations by the table's own `sigmoid8` / `tanh8` (the functions `avx2_activate` maps
/// over memory; element-wise, so the bits do not depend on which values share a vector), then
/// `c' = f * c + i * g` as two products and a sum and `h' = o * a(c')`, the operations of the
/// definition in its order. Two passes over `z`, `c` and `h` instead of six. Other
/// activations run the definition.
pub(super) fn avx2_lstm_gates_f32(
    a: Activation,
    ra: Activation,
    z: &mut [f32],
    c: &mut [f32],
    h: &mut [f32],
) {
    super::count();
    let n = h.len();
    let (Some(z), Some(c)) = (z.get_mut(..4 * n), c.get_mut(..n)) else {
        return;
    };
    // SAFETY (every arm): reachable only through the AVX2 tables (AVX2 + FMA checked); the
    // lengths are the ones `gates` asks for (just checked).
    unsafe {
        match (a, ra) {
            (Activation::Tanh, Activation::Sigmoid) => gates::<TANH, SIGMOID>(z, c, h),
            (Activation::Sigmoid, Activation::Sigmoid) => gates::<SIGMOID, SIGMOID>(z, c, h),
            (Activation::Tanh, Activation::Tanh) => gates::<TANH, TANH>(z, c, h),
            (Activation::Sigmoid, Activation::Tanh) => gates::<SIGMOID, TANH>(z, c, h),
            _ => generic::batch::lstm_gates_f32_with(super::avx2_activate, a, ra, z, c, h),
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn act<const K: u8>(v: __m256) -> __m256 {
    if K == TANH {
        super::tanh8(v)
    } else {
        super::sigmoid8(v)
    }
}

/// One vector of units: `(c', h')` from the four pre-activations and `c`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn unit8<const A: u8, const RA: u8>(z: [__m256; 4], c: __m256) -> (__m256, __m256) {
    let i = act::<RA>(z[0]);
    let f = act::<RA>(z[1]);
    let g = act::<A>(z[2]);
    let o = act::<RA>(z[3]);
    let c = _mm256_add_ps(_mm256_mul_ps(f, c), _mm256_mul_ps(i, g));
    (c, _mm256_mul_ps(o, act::<A>(c)))
}

/// # Safety
/// AVX2 + FMA; `z.len() >= 4 * h.len()` and `c.len() >= h.len()`. `z` is left as scratch.
#[target_feature(enable = "avx2,fma")]
unsafe fn gates<const A: u8, const RA: u8>(z: &mut [f32], c: &mut [f32], h: &mut [f32]) {
    let n = h.len();
    let full = n & !7;
    let (zp, cp, hp) = (z.as_mut_ptr(), c.as_mut_ptr(), h.as_mut_ptr());
    // Two passes, each vector's work one activation deep, so the out-of-order core overlaps
    // the vectors (one pass doing both activations in a row waits on a chain twice as long).
    // First the gates and `c'`, the activated `o` kept in its block of `z`.
    let mut j = 0;
    while j < full {
        // SAFETY: `j + 8 <= n`; gate block `g` holds `z[g * n..(g + 1) * n]`.
        unsafe {
            let i = act::<RA>(_mm256_loadu_ps(zp.add(j)));
            let f = act::<RA>(_mm256_loadu_ps(zp.add(n + j)));
            let g = act::<A>(_mm256_loadu_ps(zp.add(2 * n + j)));
            let o = act::<RA>(_mm256_loadu_ps(zp.add(3 * n + j)));
            let old = _mm256_loadu_ps(cp.add(j));
            let new = _mm256_add_ps(_mm256_mul_ps(f, old), _mm256_mul_ps(i, g));
            _mm256_storeu_ps(cp.add(j), new);
            _mm256_storeu_ps(zp.add(3 * n + j), o);
        }
        j += 8;
    }
    // Then `h' = o * a(c')`.
    j = 0;
    while j < full {
        // SAFETY: as above.
        unsafe {
            let t = act::<A>(_mm256_loadu_ps(cp.add(j)));
            let o = _mm256_loadu_ps(zp.add(3 * n + j));
            _mm256_storeu_ps(hp.add(j), _mm256_mul_ps(o, t));
        }
        j += 8;
    }
    if j < n {
        // The last units through zero-padded copies: each lane sees the same formula.
        let rest = n - j;
        let mut zs = [[0.0f32; 8]; 4];
        for (g, buf) in zs.iter_mut().enumerate() {
            for (k, b) in buf.iter_mut().take(rest).enumerate() {
                *b = z.get(g * n + j + k).copied().unwrap_or(0.0);
            }
        }
        let (c_rest, h_rest) = (
            c.get_mut(j..).unwrap_or(&mut []),
            h.get_mut(j..).unwrap_or(&mut []),
        );
        let mut cb = [0.0f32; 8];
        for (b, &v) in cb.iter_mut().zip(c_rest.iter()) {
            *b = v;
        }
        let mut hb = [0.0f32; 8];
        // SAFETY: every buffer holds 8 values.
        unsafe {
            let zv: [__m256; 4] = core::array::from_fn(|g| _mm256_loadu_ps(zs[g].as_ptr()));
            let (cv, hv) = unit8::<A, RA>(zv, _mm256_loadu_ps(cb.as_ptr()));
            _mm256_storeu_ps(cb.as_mut_ptr(), cv);
            _mm256_storeu_ps(hb.as_mut_ptr(), hv);
        }
        for (d, &v) in c_rest.iter_mut().zip(cb.iter()) {
            *d = v;
        }
        for (d, &v) in h_rest.iter_mut().zip(hb.iter()) {
            *d = v;
        }
    }
}
