//! Portable scalar reference kernels. Every other kernel is tested against these.

use super::F32View;

/// `y[r] += sum_c W[r, c] * x[c]`, summing each row left to right in one f32 accumulator and
/// adding it to `y[r]` last. That fixed order is what makes results reproducible: streaming and
/// sequence calls run this same code, so they agree bit for bit.
pub fn matvec_acc_f32(w: F32View<'_>, x: &[f32], y: &mut [f32]) {
    let cols = x.len();
    if cols == 0 {
        return;
    }
    let Some(row_bytes) = cols.checked_mul(4) else {
        return;
    };
    for (out, row) in y.iter_mut().zip(w.as_bytes().chunks_exact(row_bytes)) {
        let mut acc = 0.0f32;
        for (wb, &xv) in row.as_chunks::<4>().0.iter().zip(x) {
            acc += f32::from_le_bytes(*wb) * xv;
        }
        *out += acc;
    }
}

/// `y[r] += scale[r] * sum_c W[r, c] * x[c]` with int8 `W`: the sum runs in f32 over exact
/// int8 values, left to right, then is scaled once per row.
pub fn matvec_acc_i8w(weights: &[u8], scales: F32View<'_>, x: &[f32], y: &mut [f32]) {
    let cols = x.len();
    if cols == 0 {
        return;
    }
    for ((out, row), scale) in y
        .iter_mut()
        .zip(weights.chunks_exact(cols))
        .zip(scales.iter())
    {
        let mut acc = 0.0f32;
        for (&w, &xv) in row.iter().zip(x) {
            acc += f32::from(w as i8) * xv;
        }
        *out += acc * scale;
    }
}

/// Products summed in 32 bits before widening: codes are within the i16 range (every producer
/// clamps them) and weights within i8, so a product is below 2^22 and 256 of them below 2^30.
const I32_BLOCK: usize = 256;

/// `sum_c w[c] * x[c]` for int8 weights and integer codes (int8 or int16 range), exact. Blocks
/// of 256 products are summed in i32 (cheap on 32-bit cores) and widened to i64.
pub fn dot_i8(row: &[u8], x: &[i32]) -> i64 {
    row.chunks(I32_BLOCK)
        .zip(x.chunks(I32_BLOCK))
        .map(|(w, xs)| {
            // Wrapping only to keep debug builds panic-free: with codes in range it never wraps.
            let block = w.iter().zip(xs).fold(0i32, |acc, (&w, &xv)| {
                acc.wrapping_add(i32::from(w as i8).wrapping_mul(xv))
            });
            i64::from(block)
        })
        .sum()
}

/// `out[r] = sum_c W[r, c] * x[c]` for the rows of an int8 matrix with `x.len()` columns, exact
/// in i64. Rows the weights do not hold leave their `out` entry untouched; with no columns
/// every `out` entry is 0 (the empty sum).
pub fn dot_rows_i8(weights: &[u8], x: &[i32], out: &mut [i64]) {
    let cols = x.len();
    if cols == 0 {
        out.fill(0);
        return;
    }
    for (o, row) in out.iter_mut().zip(weights.chunks_exact(cols)) {
        *o = dot_i8(row, x);
    }
}

/// `v = act(v)` for every value, by [`crate::math::apply`] (softmax, which is not element-wise,
/// is treated as linear there; the loader never lets it reach a cell).
pub fn activate(activation: crate::format::Activation, values: &mut [f32]) {
    for v in values.iter_mut() {
        *v = crate::math::apply(activation, *v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le_bytes(values: &[f32]) -> std::vec::Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn matches_nalgebra_over_shapes() {
        for rows in 0..9usize {
            for cols in 0..13usize {
                let w: std::vec::Vec<f32> = (0..rows * cols)
                    .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
                    .collect();
                let x: std::vec::Vec<f32> = (0..cols).map(|i| (i as f32 - 3.0) / 4.0).collect();
                let bytes = le_bytes(&w);
                let mut y = std::vec![0.25f32; rows];
                matvec_acc_f32(F32View::new(&bytes), &x, &mut y);
                let m = nalgebra::DMatrix::from_row_slice(rows, cols, &w);
                let v = nalgebra::DVector::from_column_slice(&x);
                let expected = m * v;
                for r in 0..rows {
                    assert!(
                        (y[r] - 0.25 - expected[r]).abs() < 1e-5,
                        "{rows}x{cols} row {r}"
                    );
                }
            }
        }
    }
}
