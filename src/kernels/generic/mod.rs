//! Portable scalar reference kernels. Every other kernel is tested against these.

pub mod batch;
pub mod lstm;

use super::{finish_row, project_rows_with, F32View, RowsI8, WeightLayout};

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
pub(crate) const I32_BLOCK: usize = 256;

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

/// A code saturated to i16, the range every integer mode keeps its codes in.
#[inline]
fn sat_code(v: i32) -> i32 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// Packs codes two per word in natural order: word `k` holds code `2k` in its low half and
/// `2k + 1` in its high half (0 past the end), each saturated to i16. Words beyond the codes'
/// are left untouched.
pub fn pack_i16(codes: &[i32], packed: &mut [i32]) {
    for (word, pair) in packed.iter_mut().zip(codes.chunks(2)) {
        let (lo, hi) = match *pair {
            [lo, hi] => (sat_code(lo), sat_code(hi)),
            [lo] => (sat_code(lo), 0),
            _ => (0, 0),
        };
        *word = (lo & 0xFFFF) | (hi << 16);
    }
}

/// `sum_c w[c] * x[c]` over int8 weights and natural-order packed codes, exact: blocks of 256
/// products (128 words) summed in i32, below 2^30 each (see [`I32_BLOCK`]). Whole pairs run
/// through `as_chunks` (two loads, two extends, two multiplies per word, no per-pair branch),
/// an odd last weight on its own.
fn dot_i8_packed(row: &[u8], packed: &[i32]) -> i64 {
    row.chunks(I32_BLOCK)
        .zip(packed.chunks(I32_BLOCK / 2))
        .map(|(w, words)| {
            let (pairs, odd) = w.as_chunks::<2>();
            // Wrapping only to keep debug builds panic-free: it never wraps (see above).
            let mut acc = pairs.iter().zip(words).fold(0i32, |acc, (&[a, b], &word)| {
                let lo = i32::from(a as i8).wrapping_mul(i32::from(word as i16));
                let hi = i32::from(b as i8).wrapping_mul(word >> 16);
                acc.wrapping_add(lo).wrapping_add(hi)
            });
            if let (Some(&a), Some(&word)) = (odd.first(), words.get(pairs.len())) {
                acc = acc.wrapping_add(i32::from(a as i8).wrapping_mul(i32::from(word as i16)));
            }
            i64::from(acc)
        })
        .sum()
}

/// The reference projection of the integer cells: for each row `k` of `out`,
/// `v = requant[k](bias[k] + sum_c W[k, c] * x[c])` (exact sum, the crate's one rounding rule)
/// and `out[k] = v`, or `out[k] + v` when `accumulate`, saturated to i32. `x` is `cols` codes
/// packed by [`pack_i16`]. Rows the weights do not hold, and every row when `cols` is 0, are
/// left untouched.
pub fn project_i8(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    project_rows_with(rows, cols, out, accumulate, |row| {
        dot_i8_packed(row, packed)
    });
}

/// The reference of [`crate::kernels::Kernels::project_i8_interleaved4`]: [`project_i8`]'s
/// bits for the same rows stored [`WeightLayout::Interleaved4`], codes packed by
/// [`pack_i16`] (see [`project_interleaved_with`]).
pub fn project_i8_interleaved4(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    project_interleaved_with(rows, cols, out, accumulate, |c| natural_code(packed, c));
}

/// Code `c` of codes [`pack_i16`] packed (0 past the end).
#[inline]
pub(crate) fn natural_code(packed: &[i32], c: usize) -> i32 {
    let word = packed.get(c / 2).copied().unwrap_or(0);
    if c.is_multiple_of(2) {
        i32::from(word as i16)
    } else {
        word >> 16
    }
}

/// [`project_i8`] of rows stored [`WeightLayout::Interleaved4`], code `c` of the `cols`
/// codes being `code(c)`: the reference path of every table for
/// that layout, each table passing the reader of its own packing. A row sum is exact (i64).
/// Rows whose whole block of 4 the weights do not hold are left untouched, as is every row
/// when `cols` is 0.
pub fn project_interleaved_with(
    rows: &RowsI8<'_>,
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
    code: impl Fn(usize) -> i32,
) {
    // Never 0 (`chunks_exact` would panic): a zero product only from wrapping, past any view.
    let Some(block_bytes) = WeightLayout::Interleaved4
        .row_bytes(cols)
        .checked_mul(4)
        .filter(|&b| cols > 0 && b > 0)
    else {
        return;
    };
    for (b, (outs, block)) in out
        .chunks_mut(4)
        .zip(rows.weights.chunks_exact(block_bytes))
        .enumerate()
    {
        for (j, o) in outs.iter_mut().enumerate() {
            // Row `4b + j`'s 4 bytes of column group `g` are at `16 g + 4 j`.
            let dot: i64 = (0..cols)
                .map(|c| {
                    let w = block.get(c / 4 * 16 + 4 * j + c % 4).copied().unwrap_or(0);
                    i64::from(w as i8) * i64::from(code(c))
                })
                .sum();
            finish_row(rows, 4 * b + j, dot, o, accumulate);
        }
    }
}

/// Packs a row-major `rows x cols` int8 matrix into [`WeightLayout::Interleaved4`] (what the
/// tools write; `rows` a multiple of 4). `out` needs `rows * ceil(cols / 4) * 4` bytes; the
/// padding columns are written as zeros. Returns `false`, having written nothing, when the
/// sizes do not fit.
pub fn interleave4(row_major: &[u8], rows: usize, cols: usize, out: &mut [u8]) -> bool {
    let row_bytes = WeightLayout::Interleaved4.row_bytes(cols);
    let fits = rows.is_multiple_of(4)
        && rows.checked_mul(cols) == Some(row_major.len())
        && rows.checked_mul(row_bytes) == Some(out.len());
    if !fits {
        return false;
    }
    out.fill(0);
    for (r, row) in row_major.chunks_exact(cols.max(1)).take(rows).enumerate() {
        let base = r / 4 * 4 * row_bytes + 4 * (r % 4);
        for (c, &w) in row.iter().enumerate() {
            if let Some(slot) = out.get_mut(base + c / 4 * 16 + c % 4) {
                *slot = w;
            }
        }
    }
    true
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

    /// The packed dot product matches the plain one, odd widths and block edges included.
    #[test]
    fn dot_i8_packed_matches_dot_i8() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for cols in (0..70).chain([255, 256, 257, 511, 513]) {
            let row: std::vec::Vec<u8> = (0..cols).map(|_| next() as u8).collect();
            let x: std::vec::Vec<i32> =
                (0..cols).map(|_| (next() % 65536) as i32 - 32768).collect();
            let mut packed = std::vec![0i32; crate::kernels::packed_len(cols)];
            pack_i16(&x, &mut packed);
            assert_eq!(dot_i8_packed(&row, &packed), dot_i8(&row, &x), "{cols}");
        }
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
