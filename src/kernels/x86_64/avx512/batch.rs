//! The batched step's AVX-512 kernels: `avx512_matmul_f32` (below) and `avx512_lstm_gates_f32`
//! (the LSTM element-wise step, also `Model::step`'s: see the comment above its constants).
//!
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

use crate::format::Activation;
use crate::kernels::{generic, F32View};

pub(super) fn avx512_matmul_f32(w: F32View<'_>, x: &[f32], y: &mut [f32], streams: usize) {
    super::count();
    // SAFETY: reachable only through the AVX-512 tables, which `kernels()` / `kernels_vnni()`
    // hand out only after the AVX-512 F/BW/VL + AVX2 + FMA check (at compile time or on this
    // CPU).
    unsafe { matmul_f32(w.as_bytes(), x, y, streams, Start::Y) }
}

/// The table's `matmul_bias_f32`: `y = b + W x` in one pass, the sum added to the broadcast
/// bias (or `+0`) where the plain kernel adds it to `y`: the same operation on the same
/// values as the bias fill followed by `avx512_matmul_f32`, so the same bits. Shapes where
/// the bias or the weights do not cover every row of `y` take those two steps.
pub(super) fn avx512_matmul_bias_f32(
    bias: Option<F32View<'_>>,
    w: F32View<'_>,
    x: &[f32],
    y: &mut [f32],
    streams: usize,
) {
    let rows = y.len().checked_div(streams).unwrap_or(0);
    let cols = x.len().checked_div(streams).unwrap_or(0);
    let whole =
        cols > 0 && rows.checked_mul(cols) == Some(w.len()) && bias.is_none_or(|b| b.len() == rows);
    if !whole {
        crate::kernels::generic::batch::init_bias_tile(bias, y, streams);
        avx512_matmul_f32(w, x, y, streams);
        return;
    }
    super::count();
    let start = match bias {
        Some(b) => Start::Bias(b.as_bytes().as_ptr()),
        None => Start::Zero,
    };
    // SAFETY: reachable only through the AVX-512 tables (as `avx512_matmul_f32`); a bias holds
    // one value for each of the `rows` rows the kernel writes (checked above).
    unsafe { matmul_f32(w.as_bytes(), x, y, streams, start) }
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
    /// What each row sum is added to.
    start: Start,
}

/// What a row's sum is added to: `y` itself (`y += W x`), or, for a tile's first affine map,
/// the row's bias or `+0` (`y = b + W x`, what the bias fill and then `y += W x` give).
#[derive(Clone, Copy)]
enum Start {
    Y,
    Zero,
    /// Little-endian f32 bias of row 0; row `r`'s at byte `4 r`.
    Bias(*const u8),
}

impl Start {
    /// The start of the rows from `r` on.
    ///
    /// # Safety
    /// For `Bias`, row `r`'s value lies inside the bias.
    #[inline]
    unsafe fn at_row(self, r: usize) -> Self {
        match self {
            // SAFETY: the caller's guarantee.
            Start::Bias(b) => Start::Bias(unsafe { b.add(4 * r) }),
            other => other,
        }
    }
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
        unsafe {
            let s = Shape {
                start: s.start.at_row(r),
                ..s
            };
            block::<R, V>(w.add(r * s.row_bytes), x, y.add(r * s.stride), s, mask);
        }
        r += R;
    }
    while r < rows {
        // SAFETY: as above for row `r`.
        unsafe {
            let s = Shape {
                start: s.start.at_row(r),
                ..s
            };
            block::<1, V>(w.add(r * s.row_bytes), x, y.add(r * s.stride), s, mask);
        }
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
            // SAFETY: `y` has these streams of row `k` writable (the last vector masked); a
            // bias holds row `k` (the caller's guarantee).
            unsafe {
                let p = y.add(k * s.stride + v * 16);
                let m = if v + 1 == V { mask } else { stream_mask(0) };
                let old = match s.start {
                    Start::Y => _mm512_maskz_loadu_ps(m, p),
                    Start::Zero => _mm512_setzero_ps(),
                    Start::Bias(b) => _mm512_set1_ps(b.add(4 * k).cast::<f32>().read_unaligned()),
                };
                _mm512_mask_storeu_ps(p, m, _mm512_add_ps(old, sum));
            }
        }
    }
}

/// `y[r * s + j] += sum_c W[r, c] * x[c * s + j]`, `W` little-endian f32 bytes, row-major,
/// `x.len() / streams` columns, `y.len() / streams` rows (fewer if `w` holds fewer).
///
/// Each sum is added to what `start` says (see [`Start`]).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL, AVX2 and FMA; a `Start::Bias` holds a value for every
/// row the kernel writes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn matmul_f32(w: &[u8], x: &[f32], y: &mut [f32], streams: usize, start: Start) {
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
        start,
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

// The LSTM element-wise step, 16 units per vector.
//
// The definition (`generic::batch::lstm_gates_f32_with` with this table's `activate`, the AVX2
// `sigmoid8` / `tanh8`) is element-wise, so the same operations on 16 lanes give the same bits:
// the constants and every operation below are those of the AVX2 functions, in their order
// (`vrndscaleps` with immediate 8 is `vroundps` with 8; mask blends replace `vblendvps`; the
// bit operations run on the integer view). The conformance suite compares the two bit for bit.
// What 512 bits buy on a CPU that splits them in halves: a chain of dependent operations covers
// 16 units for the latency of 8, and 32 registers hold several chains side by side.

/// `ln 2` in two parts for the Cody-Waite reduction (as the AVX2 `exp_clamped`).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// The Cephes `expf` polynomial (as the AVX2 `exp_clamped`).
const EXP_P: [f32; 6] = [
    1.987_569_2e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];
/// The sigmoid's clamp of `-x` (as the AVX2 `sigmoid8`).
const EXP_LO: f32 = -87.3;
const EXP_HI: f32 = 88.3;
/// The tanh's clamp of `|x|` (as the AVX2 `tanh8`).
const TANH_CLAMP: f32 = 9.0;

/// Sigmoid (`tanh[k]` false) or tanh of `N` vectors, every step applied to all `N` before the
/// next, so `N` independent chains sit side by side (one vector's chain alone is latency
/// bound: about 70 cycles of dependent operations).
///
/// A macro rather than a function so it always sits in its caller's registers (as a function
/// it is too long for the inliner, and its arrays would go through memory).
/// `activate_n!(N, x, tanh)`: `x` an `[__m512; N]`, `tanh` a `[bool; N]` (constants, so the
/// choices fold away).
macro_rules! activate_n {
    ($n:ident, $x:expr, $tanh:expr) => {{
        let x: [__m512; $n] = $x;
        let tanh: [bool; $n] = $tanh;
        let one = _mm512_set1_ps(1.0);
        let sign = _mm512_castps_si512(_mm512_set1_ps(-0.0));
        // The argument of `exp`: `clamp(-x)` for the sigmoid, `2 min(|x|, 9)` for the tanh.
        let arg: [__m512; $n] = core::array::from_fn(|k| {
            if tanh[k] {
                let abs = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(x[k])));
                let a = _mm512_min_ps(abs, _mm512_set1_ps(TANH_CLAMP));
                _mm512_add_ps(a, a)
            } else {
                let neg = _mm512_sub_ps(_mm512_setzero_ps(), x[k]);
                _mm512_min_ps(
                    _mm512_max_ps(neg, _mm512_set1_ps(EXP_LO)),
                    _mm512_set1_ps(EXP_HI),
                )
            }
        });
        // `exp_clamped`, step by step over all vectors.
        let n: [__m512; $n] = core::array::from_fn(|k| {
            _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_mul_ps(arg[k], _mm512_set1_ps(core::f32::consts::LOG2_E)),
            )
        });
        let r: [__m512; $n] =
            core::array::from_fn(|k| _mm512_fnmadd_ps(n[k], _mm512_set1_ps(LN2_HI), arg[k]));
        let r: [__m512; $n] =
            core::array::from_fn(|k| _mm512_fnmadd_ps(n[k], _mm512_set1_ps(LN2_LO), r[k]));
        let mut y = [_mm512_set1_ps(EXP_P[0]); $n];
        for &p in &EXP_P[1..] {
            for (yk, &rk) in y.iter_mut().zip(r.iter()) {
                *yk = _mm512_fmadd_ps(*yk, rk, _mm512_set1_ps(p));
            }
        }
        let e: [__m512; $n] = core::array::from_fn(|k| {
            let y = _mm512_add_ps(_mm512_fmadd_ps(y[k], _mm512_mul_ps(r[k], r[k]), r[k]), one);
            let scale = _mm512_slli_epi32::<23>(_mm512_add_epi32(
                _mm512_cvtps_epi32(n[k]),
                _mm512_set1_epi32(127),
            ));
            _mm512_mul_ps(y, _mm512_castsi512_ps(scale))
        });
        core::array::from_fn(|k| {
            let v = if tanh[k] {
                let t = _mm512_sub_ps(
                    one,
                    _mm512_div_ps(_mm512_set1_ps(2.0), _mm512_add_ps(e[k], one)),
                );
                let s = _mm512_and_si512(sign, _mm512_castps_si512(x[k]));
                _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), s))
            } else {
                _mm512_div_ps(one, _mm512_add_ps(one, e[k]))
            };
            _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x[k], x[k]), v, x[k])
        })
    }};
}
/// The table's `lstm_gates_f32`: for sigmoid and tanh gates, two passes of 16-unit vectors
/// (see the comment above [`LN2_HI`]): the four gate activations and `c' = f * c + i * g` (two
/// products and a sum, as the definition), the activated `o` kept in its block of `z`; then
/// `h' = o * a(c')`. Other activations run the definition with the AVX2 `activate`.
pub(super) fn avx512_lstm_gates_f32(
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
    let tanh = |f: Activation| match f {
        Activation::Tanh => Some(true),
        Activation::Sigmoid => Some(false),
        _ => None,
    };
    let (Some(a_tanh), Some(ra_tanh)) = (tanh(a), tanh(ra)) else {
        let activate = super::super::avx2::TABLE.activate;
        generic::batch::lstm_gates_f32_with(activate, a, ra, z, c, h);
        return;
    };
    let (zp, cp, hp) = (z.as_mut_ptr(), c.as_mut_ptr(), h.as_mut_ptr());
    // SAFETY (every arm): reachable only through the AVX-512 tables (AVX-512 F/BW/VL + AVX2 +
    // FMA checked); `z` holds `4 n` values and `c`, `h` `n` (checked above).
    unsafe {
        match (a_tanh, ra_tanh) {
            (true, false) => gates::<true, false>(zp, cp, hp, n),
            (false, false) => gates::<false, false>(zp, cp, hp, n),
            (true, true) => gates::<true, true>(zp, cp, hp, n),
            (false, true) => gates::<false, true>(zp, cp, hp, n),
        }
    }
}

/// # Safety
/// AVX-512 F + FMA; `z` holds `4 n` values, `c` and `h` `n`, none overlapping.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn gates<const A: bool, const RA: bool>(z: *mut f32, c: *mut f32, h: *mut f32, n: usize) {
    let mut j = 0;
    // SAFETY (both loops): units `j..j + 16 K` (the last vector masked to end at `n`) of every
    // gate block and of `c`.
    while j + 32 <= n {
        unsafe { cell_pass::<2, 8, A, RA>(z, c, n, j, stream_mask(0)) };
        j += 32;
    }
    while j < n {
        unsafe { cell_pass::<1, 4, A, RA>(z, c, n, j, stream_mask(n - j)) };
        j += 16;
    }
    j = 0;
    // SAFETY (both loops): units `j..j + 16 K` (the last masked) of `c`, `h` and the `o` block.
    while j + 64 <= n {
        unsafe { h_pass::<4, A>(z.add(3 * n), c, h, j, stream_mask(0)) };
        j += 64;
    }
    while j < n {
        unsafe { h_pass::<1, A>(z.add(3 * n), c, h, j, stream_mask(n - j)) };
        j += 16;
    }
}

/// `K` vectors of units from `j` (`N = 4 K` gate vectors): activations, `c'` into `c`, the
/// activated `o` into its block of `z`. The last vector is masked by `mask`.
///
/// # Safety
/// As [`gates`], for units `j..j + 16 K` (the last vector's lanes outside `mask` untouched).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn cell_pass<const K: usize, const N: usize, const A: bool, const RA: bool>(
    z: *mut f32,
    c: *mut f32,
    n: usize,
    j: usize,
    mask: __mmask16,
) {
    let m = |v: usize| if v + 1 == K { mask } else { stream_mask(0) };
    // Gate `q / K` (i, f, c, o), vector `q % K`.
    let x: [__m512; N] = core::array::from_fn(|q| {
        // SAFETY: inside the gate block, per the caller.
        unsafe { _mm512_maskz_loadu_ps(m(q % K), z.add((q / K) * n + j + (q % K) * 16)) }
    });
    let kinds: [bool; N] = core::array::from_fn(|q| if q / K == 2 { A } else { RA });
    let y: [__m512; N] = activate_n!(N, x, kinds);
    for v in 0..K {
        let (i, f, g, o) = (y[v], y[K + v], y[2 * K + v], y[3 * K + v]);
        // SAFETY: as above, for `c` and the `o` block.
        unsafe {
            let p = c.add(j + v * 16);
            let old = _mm512_maskz_loadu_ps(m(v), p);
            let new = _mm512_add_ps(_mm512_mul_ps(f, old), _mm512_mul_ps(i, g));
            _mm512_mask_storeu_ps(p, m(v), new);
            _mm512_mask_storeu_ps(z.add(3 * n + j + v * 16), m(v), o);
        }
    }
}

/// `h' = o * a(c')` for `K` vectors of units from `j`, the last masked by `mask`.
///
/// # Safety
/// As [`gates`], for units `j..j + 16 K` of `o` (the activated output gate), `c` and `h`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn h_pass<const K: usize, const A: bool>(
    o: *const f32,
    c: *const f32,
    h: *mut f32,
    j: usize,
    mask: __mmask16,
) {
    let m = |v: usize| if v + 1 == K { mask } else { stream_mask(0) };
    // SAFETY: inside `c`, per the caller.
    let cs: [__m512; K] =
        core::array::from_fn(|v| unsafe { _mm512_maskz_loadu_ps(m(v), c.add(j + v * 16)) });
    let t: [__m512; K] = activate_n!(K, cs, [A; K]);
    for (v, &tv) in t.iter().enumerate() {
        // SAFETY: inside `o` and `h`, per the caller.
        unsafe {
            let ov = _mm512_maskz_loadu_ps(m(v), o.add(j + v * 16));
            _mm512_mask_storeu_ps(h.add(j + v * 16), m(v), _mm512_mul_ps(ov, tv));
        }
    }
}
