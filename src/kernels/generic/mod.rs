//! Portable scalar reference kernels. Every other kernel is tested against these.

pub mod batch;

use super::{project_rows_with, F32View, RowsI8};

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

/// The signed 64-bit product `a * b` as its high word and low word, from four 16x16-bit
/// products (Hacker's Delight, `mulhs`): for cores whose only multiply is 32x32->32
/// (Cortex-M0), where an `i64` product is a library call. Every partial sum below stays
/// inside i32 (the bounds are in the comments), so the wrapping operations never wrap.
#[inline]
pub fn mul_i32_wide(a: i32, b: i32) -> (i32, u32) {
    let (a0, a1) = (a & 0xFFFF, a >> 16);
    let (b0, b1) = (b & 0xFFFF, b >> 16);
    // 0..2^32, unsigned.
    let w0 = (a0 as u32).wrapping_mul(b0 as u32);
    // |a1 * b0| < 2^31 - 2^15 - 2^16, plus < 2^16.
    let t = a1.wrapping_mul(b0).wrapping_add((w0 >> 16) as i32);
    // < 2^16 plus |a0 * b1| < 2^31 - 2^16 - 2^15.
    let w1 = (t & 0xFFFF).wrapping_add(a0.wrapping_mul(b1));
    // |a1 * b1| <= 2^30, plus two terms below 2^15.
    let high = a1
        .wrapping_mul(b1)
        .wrapping_add(t >> 16)
        .wrapping_add(w1 >> 16);
    let low = ((w1 as u32) << 16) | (w0 & 0xFFFF);
    (high, low)
}

/// `Requant::unpack(packed).apply(acc)` for an i32 accumulator in 32-bit arithmetic only (no
/// 64-bit multiply or shift), or `None` for the few inputs it leaves to the 64-bit rule: the
/// same bits as [`crate::quant::Requant::apply`] whenever it returns a value. The ARMv6-M
/// kernel runs this arithmetic in assembly; this is its portable statement, tested on the host.
///
/// With `p = acc * m`, `n = 31 + shift` (the shift clamped as `apply` clamps it) and the exact
/// 64-bit product's high word `high` ([`mul_i32_wide`]), the result is
/// `floor((p + 2^(n-1)) / 2^n)`:
///
/// * shifts of 2 and more (`n >= 33`, the usual gate rows): `floor((floor(p / 2^(n-1)) + 1) /
///   2)`, and `floor(p / 2^(n-1))` is `high >> (n - 33)`: [`crate::quant::fixed`]'s high-word
///   rounding (`high` from two 16-bit products when `acc` fits i16, four otherwise).
///   `|p| <= 2^62`, so `high` is in `[-2^30, 2^30]` and for `n - 33 >= 31` the shift by 31
///   already gives `floor(p / 2^(n-1))` (`-1` or `0`): the amount is capped at 31 (same bits
///   as the 128-bit path `apply` takes for `n > 62`).
/// * below (`n <= 32`): with `k = 32 - n` (`0..=31`), the result is
///   `floor((acc * 2^k * m + 2^31) / 2^32)`: the high word of `(acc << k) * m` plus the carry
///   of adding `2^31` to its low word (that word's top bit). Exact when `acc << k` fits i32;
///   otherwise `None` (then the result may not even fit i32; real gate rows have small sums).
#[inline]
pub fn requant_i32(acc: i32, packed: i32) -> Option<i32> {
    // `packed & !0xFF` by two shifts: no constant to load on Thumb-1.
    let multiplier = (packed >> 8) << 8;
    let shift = i32::from(packed as u8 as i8);
    if shift >= 2 {
        let high = match i16::try_from(acc) {
            // |acc| <= 2^15: two products, `acc * (m >> 16)` (|.| <= 2^30) plus the floor of
            // `acc * (m & 0xFFFF)` (|.| < 2^31) over 2^16, over 2^16 again: the same word.
            Ok(a) => {
                let a = i32::from(a);
                let low = a.wrapping_mul(multiplier & 0xFFFF) >> 16;
                a.wrapping_mul(multiplier >> 16).wrapping_add(low) >> 16
            }
            Err(_) => mul_i32_wide(acc, multiplier).0,
        };
        // n - 33 = shift - 2; `apply` clamps shifts above 64, where the cap at 31 rules anyway.
        let by = ((shift - 2) as u32).min(31);
        // high >> by is within [-2^30, 2^30]: the increment cannot overflow.
        return Some(((high >> by) + 1) >> 1);
    }
    // k = 32 - n = 1 - shift, with the shift clamped at MIN_SHIFT = -30.
    let k = ((1 - shift) as u32).min(31);
    let scaled = acc.wrapping_shl(k);
    if scaled >> k != acc {
        return None;
    }
    let (high, low) = mul_i32_wide(scaled, multiplier);
    // |high| <= 2^30: adding the carry cannot overflow.
    Some(high + (low >> 31) as i32)
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

    /// The 32-bit requantization gives `Requant::apply`'s bits (or declines, only where its
    /// docs say) for random and extreme accumulators, every shift byte (valid or not) and
    /// random or extreme multipliers.
    #[test]
    fn requant_i32_matches_apply() {
        use crate::quant::Requant;
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let edges = [
            i32::MIN,
            i32::MIN + 1,
            -(1 << 30),
            -65537,
            -65536,
            -65535,
            -32769,
            -32768,
            -1,
            0,
            1,
            32767,
            32768,
            65535,
            65536,
            1 << 30,
            i32::MAX - 1,
            i32::MAX,
        ];
        let mut declined = 0u32;
        for round in 0..3_000_000u32 {
            let acc = match round % 4 {
                0 => next() as i32,
                1 => (next() % 200_001) as i32 - 100_000,
                2 => edges[(next() % edges.len() as u64) as usize],
                _ => (next() as i32) >> (next() % 32),
            };
            let multiplier = match next() % 8 {
                0 => edges[(next() % edges.len() as u64) as usize],
                1 => 0,
                2 => next() as i32,
                _ => 0x4000_0000 | (next() as i32 & 0x3FFF_FFFF),
            } & !0xFF;
            let shift = match next() % 4 {
                0 => next() as u8 as i32,
                _ => (next() % 95) as i32 - 30,
            };
            let packed = multiplier | (shift & 0xFF);
            let want = Requant::unpack(packed).apply(i64::from(acc));
            match requant_i32(acc, packed) {
                Some(got) => assert_eq!(i64::from(got), want, "{acc} {packed:#x}"),
                None => {
                    // Only for shifts below 2 whose scaled sum leaves i32 (see the docs).
                    let shift = i32::from(packed as u8 as i8);
                    let k = ((1 - shift) as u32).min(31);
                    assert!(
                        shift < 2 && acc.wrapping_shl(k) >> k != acc,
                        "{acc} {packed:#x}: {want}"
                    );
                    declined += 1;
                }
            }
            let b = next() as i32;
            let (high, low) = mul_i32_wide(acc, b);
            let p = i64::from(acc) * i64::from(b);
            assert_eq!((high, low), ((p >> 32) as i32, p as u32), "{acc} * {b}");
        }
        assert!(declined > 0, "the out-of-range results were not exercised");
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
