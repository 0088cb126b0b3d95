//! The reference batched product: one weight matrix applied to a tile of streams at once.

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
