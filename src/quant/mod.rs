//! The integer scheme: quantization parameters, requantization and integer activations.
//!
//! # Modes
//!
//! | mode | weights | activations and state | arithmetic |
//! |---|---|---|---|
//! | `F32` | f32 | f32 | f32 |
//! | `Int8Weights` | i8, symmetric, one f32 scale per output row | f32 | f32 (`y = b + s_row * sum(w_q * x)`) |
//! | `Int8` | i8 per-row symmetric | i8 codes, asymmetric (`real = (q - z) * s`) | integer |
//! | `Int16` | i8 per-row symmetric | i16 codes, asymmetric | integer |
//!
//! In the integer modes the raw f32 input is quantized once on entry
//! (`q = clamp(round_half_even(x / s) + z)`) and the output dequantized once on exit;
//! everything in between is integer and identical on every target.
//!
//! # One time step in integer arithmetic
//!
//! * **Projections.** For each gate row `r`: `acc_x = bias_x[r] + sum_c W[r,c] * x_q[c]` and
//!   `acc_h = bias_h[r] + sum_c U[r,c] * h_q[c]` in 64-bit integers (no overflow for any width
//!   the loader accepts). The zero points of `x` and `h` are folded into `bias_x` and `bias_h`
//!   by the quantizer (`- z * rowsum(W_q)`), so the inner loop is a plain dot product.
//! * **Requantization** ([`fixed::Requant`]): each accumulator is scaled by its row's
//!   multiplier/shift into gate pre-activations in Q3.12 and the two parts are added, then
//!   saturated to `i16`. Rounding is half toward positive infinity.
//! * **Gates** ([`lut`]): sigmoid and tanh by a 257-entry table with linear interpolation,
//!   hard sigmoid exactly, all giving Q0.15 (measured max errors in [`lut`]).
//! * **LSTM cell**: `c` is `i16` with a power-of-two scale (`cell_frac_bits` F, chosen by
//!   calibration): `c' = sat16(round(f*c >> 15) + round(i*g >> (30 - F)))`, then `tanh(c')`
//!   after shifting `c'` to Q3.12, and `h = o * tanh(c')` in Q0.30 requantized to `h` codes.
//! * **GRU**: `h' = (z * h + (1 - z) * hh)` in Q0.15 with `h` converted from its codes by
//!   `h_to_q15`; `reset_after = false` quantizes `r * h` to full-scale codes (`1 / 127` or
//!   `1 / 32767`) before its product with `U_h`, requantized per row by `reset_scale`.
//! * **SimpleRNN and Dense** with linear or relu: the per-row requantizers target the output
//!   codes directly (relu is `max(q, z)`); with sigmoid, tanh, hard sigmoid or softmax they
//!   target Q3.12 and `output_requant` maps the Q0.15 result to the output codes.
//! * **Bidirectional** `sum`/`ave`/`mul` merge the two directions' `h - z` exactly in integers
//!   and requantize with the layer's `merged` parameters.
//!
//! Integer modes support LSTM and GRU with sigmoid, tanh or hard sigmoid activations (the cell
//! values stay in `[-1, 1]`); a quantizer asked for anything else refuses.

pub mod fixed;
pub mod lut;
pub mod tables;

pub use fixed::Requant;

use crate::format::QParams;

/// Quantizes a real value to codes in `[lo, hi]` (round half to even, as NumPy and TFLite do).
///
/// The rule: `v = rintf(x / scale)`; NaN becomes the zero point, anything else (infinities
/// included) saturates to `[-1e9, 1e9]`, then `clamp(v + zero_point, lo, hi)`. After the
/// division, [`round_to_i32`] does the rounding and the saturation on the bits (test
/// `quantize_matches_the_float_rule`).
#[inline]
pub fn quantize(x: f32, p: QParams, lo: i32, hi: i32) -> i32 {
    match round_to_i32(x / p.scale) {
        // |v| <= 1e9: a saturating sum clamps to the same code as the exact one (the bounds
        // are i32), and `lo` wins if the bounds cross, as in `clamp_to`.
        Some(v) => v.saturating_add(p.zero_point).min(hi).max(lo),
        None => fixed::clamp_to(i64::from(p.zero_point), i64::from(lo), i64::from(hi)) as i32,
    }
}

/// Saturation bound of [`round_to_i32`] (exactly representable in f32).
const ROUND_LIMIT: u32 = 1_000_000_000;

/// `rintf(y).clamp(-1e9, 1e9) as i32` (round half to even), or `None` for NaN, computed on
/// the bits of `y` with integer operations only: on cores without an FPU (Cortex-M0) the
/// float rounding, comparisons and conversion are library calls, about 380 instructions per
/// value; on a Cortex-M4F, whose FPU has no rounding instruction, it is shorter too.
///
/// `y = m * 2^(e - 150)` with the 24-bit significand `m` (implicit bit set) and the biased
/// exponent `e`: from `e >= 150` it is an integer (already at least `2^30 > 1e9` from
/// `e >= 157`); below `e = 126` it is under 1/2 and rounds to 0; in between, `m >> (150 - e)`
/// rounded by the bits shifted out, half to even.
#[inline]
pub fn round_to_i32(y: f32) -> Option<i32> {
    let bits = y.to_bits();
    let exponent = (bits >> 23) & 0xFF;
    let fraction = bits & 0x7F_FFFF;
    if exponent == 0xFF && fraction != 0 {
        return None;
    }
    let m = fraction | 0x80_0000;
    let magnitude = if exponent >= 157 {
        ROUND_LIMIT
    } else if exponent >= 150 {
        (m << (exponent - 150)).min(ROUND_LIMIT)
    } else if exponent >= 126 {
        // 1..=24 bits shifted out; the result is at most 2^23.
        let shift = 150 - exponent;
        let q = m >> shift;
        let rest = m & ((1 << shift) - 1);
        let half = 1 << (shift - 1);
        q + u32::from(rest > half || (rest == half && q & 1 == 1))
    } else {
        0
    };
    // At most 1e9: fits i32 either way.
    let v = magnitude as i32;
    Some(if bits >> 31 == 0 { v } else { -v })
}

/// The real value of a code.
#[inline]
pub fn dequantize(q: i32, p: QParams) -> f32 {
    q.saturating_sub(p.zero_point) as f32 * p.scale
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The float rule `quantize` had: `rintf`, then the NaN test, the clamp and the cast.
    fn float_rule(y: f32) -> Option<i32> {
        let v = libm::rintf(y);
        (!v.is_nan()).then(|| v.clamp(-1.0e9, 1.0e9) as i32)
    }

    /// Every sign and exponent with the significands around the rounding boundaries, and
    /// every seventh significand of the exponents where rounding happens (`|y|` in
    /// `[0.25, 2^25)`, halves and odd/even neighbours included); the whole f32 range is
    /// `round_to_i32_is_exact_everywhere` (run with `--ignored --release`).
    #[test]
    fn round_to_i32_matches_rintf() {
        let edges = [
            0u32, 1, 2, 0x3F_FFFF, 0x40_0000, 0x40_0001, 0x7F_FFFE, 0x7F_FFFF,
        ];
        for sign in [0u32, 1 << 31] {
            for exponent in 0..=255u32 {
                let dense = (125..=152).contains(&exponent);
                let fractions = (0..=0x7F_FFFFu32).step_by(if dense { 7 } else { 4099 });
                for fraction in fractions.chain(edges) {
                    let y = f32::from_bits(sign | exponent << 23 | fraction);
                    assert_eq!(round_to_i32(y), float_rule(y), "{y:e} {:#x}", y.to_bits());
                }
            }
        }
    }

    #[test]
    #[ignore = "all 2^32 values: minutes in debug, about a minute with --release"]
    fn round_to_i32_is_exact_everywhere() {
        for bits in 0..=u32::MAX {
            let y = f32::from_bits(bits);
            assert_eq!(round_to_i32(y), float_rule(y), "{bits:#x}");
        }
    }

    /// `quantize` against the float rule with the old i64 clamp, for extreme zero points
    /// and bounds, crossed bounds included.
    #[test]
    fn quantize_matches_the_float_rule() {
        let old = |x: f32, p: QParams, lo: i32, hi: i32| -> i32 {
            let v = libm::rintf(x / p.scale);
            if v.is_nan() {
                return fixed::clamp_to(i64::from(p.zero_point), i64::from(lo), i64::from(hi))
                    as i32;
            }
            let v = i64::from(v.clamp(-1.0e9, 1.0e9) as i32) + i64::from(p.zero_point);
            fixed::clamp_to(v, i64::from(lo), i64::from(hi)) as i32
        };
        let xs = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -2.5,
            3.4e38,
            -3.4e38,
            1.0e-40,
            123.456,
            -98.76,
            2.0e9,
            -2.0e9,
        ];
        let zeros = [
            0,
            -1,
            5,
            -128,
            i32::MAX,
            i32::MIN,
            1_500_000_000,
            -1_500_000_000,
        ];
        let bounds = [
            (-128, 127),
            (-32768, 32767),
            (0, 255),
            (5, -5),
            (i32::MIN, i32::MAX),
        ];
        for &x in &xs {
            for scale in [1.0f32, 0.007_843_138, 3.0e-5, 250.0] {
                for &zero_point in &zeros {
                    let p = QParams { scale, zero_point };
                    for &(lo, hi) in &bounds {
                        assert_eq!(
                            quantize(x, p, lo, hi),
                            old(x, p, lo, hi),
                            "{x} {p:?} {lo} {hi}"
                        );
                    }
                }
            }
        }
    }
}
