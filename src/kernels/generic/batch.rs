//! The reference batched product: one weight matrix applied to a tile of streams at once.

use crate::format::Activation;
use crate::kernels::F32View;

/// Streams summed side by side in one stack block; a multiple of every SIMD width.
const BLOCK: usize = 64;

/// `y[r * s + j] += sum_c W[r, c] * x[c * s + j]` for the `s = streams` streams of a tile
/// stored stream-minor (row `c` of `x` holds feature `c` of every stream, row `r` of `y` output
/// `r`). Each `(r, j)` sum runs left to right in one f32 accumulator and is added to `y` last:
/// the order of [`super::matvec_acc_f32`], so every stream gets the bits a matrix-vector
/// product on it alone gives. Rows the view does not hold, and a partial last row of `x` or
/// `y`, are left alone.
pub fn matmul_acc_f32(w: F32View<'_>, x: &[f32], y: &mut [f32], streams: usize) {
    let Some(cols) = x.len().checked_div(streams) else {
        return;
    };
    let Some(row_bytes) = cols.checked_mul(4).filter(|&b| b > 0) else {
        return;
    };
    for (w_row, y_row) in w
        .as_bytes()
        .chunks_exact(row_bytes)
        .zip(y.chunks_exact_mut(streams))
    {
        for (start, y_block) in (0..).step_by(BLOCK).zip(y_row.chunks_mut(BLOCK)) {
            let mut acc = [0.0f32; BLOCK];
            let acc = &mut acc[..y_block.len()];
            for (wb, x_row) in w_row.as_chunks::<4>().0.iter().zip(x.chunks_exact(streams)) {
                let wv = f32::from_le_bytes(*wb);
                let x_block = x_row.get(start..start + acc.len()).unwrap_or(&[]);
                for (a, &xv) in acc.iter_mut().zip(x_block) {
                    *a += wv * xv;
                }
            }
            for (out, &a) in y_block.iter_mut().zip(acc.iter()) {
                *out += a;
            }
        }
    }
}

/// Row `r` of the tile `y` (`streams` values) = `bias[r]` for every stream (zeros without a
/// bias), as [`crate::kernels::init_bias`] starts each stream's affine map. Rows the bias does
/// not hold, and a partial last row, are left alone.
pub fn init_bias_tile(bias: Option<F32View<'_>>, y: &mut [f32], streams: usize) {
    match bias {
        Some(b) => {
            for (row, v) in y.chunks_exact_mut(streams.max(1)).zip(b.iter()) {
                row.fill(v);
            }
        }
        None => y.fill(0.0),
    }
}

/// `dst[c * dst_stride + r] = src[r * src_stride + c]` for `r < rows`, `c < cols`: moves `rows`
/// stream-major rows into a stream-minor tile and back. Pure copies, so any order of them
/// gives the same bits; values the slices do not hold are skipped.
pub fn transpose_f32(
    src: &[f32],
    src_stride: usize,
    dst: &mut [f32],
    dst_stride: usize,
    rows: usize,
    cols: usize,
) {
    for r in 0..rows {
        for c in 0..cols {
            let from = r.checked_mul(src_stride).and_then(|i| i.checked_add(c));
            let to = c.checked_mul(dst_stride).and_then(|i| i.checked_add(r));
            if let (Some(&v), Some(d)) = (
                from.and_then(|i| src.get(i)),
                to.and_then(|i| dst.get_mut(i)),
            ) {
                *d = v;
            }
        }
    }
}

/// The LSTM cell's element-wise step (`crate::cell::lstm`), the definition every table's
/// [`crate::kernels::Kernels::lstm_gates_f32`] reproduces bit for bit: `z` holds the
/// pre-activations of the gates i, f, c, o in four blocks of `n = h.len()` values;
///
/// ```text
/// i = ra(z_i)  f = ra(z_f)  g = a(z_c)  o = ra(z_o)
/// c' = f * c + i * g       (two products and a sum, no fused multiply-add)
/// h' = o * a(c')
/// ```
///
/// with `activate` (a table's element-wise activation) applied block by block. `z` is
/// scratch: it is left holding intermediate values. Short slices compute nothing.
pub fn lstm_gates_f32_with(
    activate: fn(Activation, &mut [f32]),
    a: Activation,
    ra: Activation,
    z: &mut [f32],
    c: &mut [f32],
    h: &mut [f32],
) {
    let n = h.len();
    let (Some(z), Some(c)) = (z.get_mut(..4 * n), c.get_mut(..n)) else {
        return;
    };
    // Gates block by block (i, f | c | o), so the activation runs over whole vectors.
    let (ifg, zo) = z.split_at_mut(3 * n);
    let (zif, zc) = ifg.split_at_mut(2 * n);
    activate(ra, zif);
    activate(a, zc);
    activate(ra, zo);
    let (zi, zf) = zif.split_at_mut(n);
    for (((cv, &i), &f), &g) in c.iter_mut().zip(zi.iter()).zip(zf.iter()).zip(zc.iter()) {
        *cv = f * *cv + i * g;
    }
    // a(c') into the spent input-gate block, then h' = o * a(c').
    zi.copy_from_slice(c);
    activate(a, zi);
    for ((hv, &o), &t) in h.iter_mut().zip(zo.iter()).zip(zi.iter()) {
        *hv = o * t;
    }
}
