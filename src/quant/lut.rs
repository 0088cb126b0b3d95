//! Integer sigmoid, tanh, hard sigmoid and softmax.
//!
//! Inputs are gate pre-activations in Q3.12 (`i16`, range `[-8, 8)`, where sigmoid and tanh
//! are within 3.4e-4 of their limits); outputs are Q0.15. Sigmoid and tanh interpolate
//! linearly between 257 table samples spaced 1/16 apart ([`super::tables`]); the measured
//! maximum error over every `i16` input is pinned by the tests below as [`SIGMOID_MAX_ERROR`]
//! and [`TANH_MAX_ERROR`] (in real units, so 1.0 = full scale of the output).

use super::fixed::shift_round;
use super::tables::{EXP_NEG_Q15, SIGMOID_Q15, TANH_Q15};

/// Fractional bits of gate pre-activations.
pub const GATE_FRAC_BITS: u32 = 12;
/// Fractional bits of gate outputs.
pub const OUT_FRAC_BITS: u32 = 15;
/// Measured max |integer sigmoid - sigmoid| over all Q3.12 inputs (test `sigmoid_error`).
pub const SIGMOID_MAX_ERROR: f64 = 7.0e-5;
/// Measured max |integer tanh - tanh| over all Q3.12 inputs (test `tanh_error`).
pub const TANH_MAX_ERROR: f64 = 4.0e-4;

/// Sample `k` (`0..=256`) of tanh (`mirror` 0) or sigmoid (`mirror` 32768) from the table of
/// its left half. Both are point-symmetric, `tanh(-x) = -tanh(x)` and
/// `sigmoid(-x) = 1 - sigmoid(x)`, and so are their Q0.15 samples (rounding half up is
/// symmetric when no sample is an exact tie, and none is), except that +1.0 saturates to 32767:
/// `T[k] = min(mirror - T[256 - k], 32767)` (checked against the functions by the tests).
// The reference rule: the fast interpolations (unfolded tables on hosts, one branch on
// microcontrollers) are tested against it.
#[allow(dead_code)]
#[inline]
pub(crate) fn sample(left: &[i16; 129], mirror: i32, k: usize) -> i32 {
    match left.get(k) {
        Some(&v) => i32::from(v),
        None => (mirror
            - left
                .get(256usize.wrapping_sub(k))
                .map_or(0, |&v| i32::from(v)))
        .min(32767),
    }
}

/// The whole 257-sample table unfolded from its left half by [`sample`]'s rule, at compile
/// time, which every target reads directly (but `small` microcontroller builds, which keep the
/// 258-byte halves): no mirror branch in the gate loop. On a
/// Cortex-M4F that is about 55 fewer instructions per LSTM unit (5 lookups; 7% of an int8
/// LSTM(64) step) for 512 bytes of tables and about 2 KB of code (the lighter lookups get
/// inlined); on a Cortex-M0, with [`interpolate_sat`], about 80 (5% of an LSTM(64) step).
#[cfg(any(test, not(edgernn_half_tables)))]
const fn unfold(left: &[i16; 129], mirror: i32) -> [i16; 257] {
    let mut full = [0i16; 257];
    let mut k = 0;
    while k < 257 {
        full[k] = if k < 129 {
            left[k]
        } else {
            let v = mirror - left[256 - k] as i32;
            if v > 32767 {
                32767
            } else {
                v as i16
            }
        };
        k += 1;
    }
    full
}

/// An unfolded table as the little-endian bytes of its samples: two adjacent samples are then
/// one (unaligned) 32-bit load, which x86-64, AArch64 and the Arm cores with the DSP
/// extension do in one instruction. Other targets (RISC-V microcontrollers, which split a
/// load of unknown alignment into bytes) keep `[i16; 257]` tables.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", edgernn_arm_dsp))]
const fn to_bytes(samples: &[i16; 257]) -> [u8; 514] {
    let mut bytes = [0u8; 514];
    let mut k = 0;
    while k < 257 {
        let [lo, hi] = samples[k].to_le_bytes();
        bytes[2 * k] = lo;
        bytes[2 * k + 1] = hi;
        k += 1;
    }
    bytes
}

/// Both unfolded tables in one static: a gate loop that reads both then keeps one base
/// address in a register, not two (the tanh table is a constant offset away).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", edgernn_arm_dsp))]
struct FullTables {
    sigmoid: [u8; 514],
    tanh: [u8; 514],
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", edgernn_arm_dsp))]
static FULL: FullTables = FullTables {
    sigmoid: to_bytes(&unfold(&SIGMOID_Q15, 32768)),
    tanh: to_bytes(&unfold(&TANH_Q15, 0)),
};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", edgernn_arm_dsp))]
static SIGMOID_FULL: &[u8; 514] = &FULL.sigmoid;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", edgernn_arm_dsp))]
static TANH_FULL: &[u8; 514] = &FULL.tanh;

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    edgernn_arm_dsp,
    edgernn_half_tables
)))]
static SIGMOID_FULL: &[i16; 257] = &unfold(&SIGMOID_Q15, 32768);
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    edgernn_arm_dsp,
    edgernn_half_tables
)))]
static TANH_FULL: &[i16; 257] = &unfold(&TANH_Q15, 0);

/// The unfolded sigmoid and tanh tables, for the ARMv6-M LSTM kernel, which interpolates them
/// in assembly exactly as [`interpolate_sat`] does.
#[cfg(edgernn_arm_v6m)]
pub(crate) fn v6m_tables() -> (&'static [i16; 257], &'static [i16; 257]) {
    (SIGMOID_FULL, TANH_FULL)
}

/// An unfolded table as this target stores it.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", edgernn_arm_dsp))]
type FullTable = [u8; 514];
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    edgernn_arm_dsp,
    edgernn_half_tables
)))]
type FullTable = [i16; 257];

/// Sample `k` of an unfolded table (0 past its end, which no caller reaches).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", edgernn_arm_dsp))]
#[inline]
fn full_sample(full: &FullTable, k: usize) -> i32 {
    match full.get(2 * k..2 * k + 2) {
        Some(&[lo, hi]) => i32::from(i16::from_le_bytes([lo, hi])),
        _ => 0,
    }
}

/// Sample `k` of an unfolded table (0 past its end, which no caller reaches).
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    edgernn_arm_dsp,
    edgernn_half_tables
)))]
#[inline]
fn full_sample(full: &FullTable, k: usize) -> i32 {
    full.get(k).map_or(0, |&v| i32::from(v))
}

/// Samples `k` and `k + 1` of an unfolded table as one word, `k` in the low half (0 past the
/// end, which no caller reaches).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", edgernn_arm_dsp))]
#[inline]
fn full_pair(full: &FullTable, k: usize) -> i32 {
    match full.get(2 * k..2 * k + 4) {
        Some(&[b0, b1, b2, b3]) => i32::from_le_bytes([b0, b1, b2, b3]),
        _ => 0,
    }
}

#[allow(dead_code)]
#[inline]
fn interpolate(left: &[i16; 129], mirror: i32, x: i16) -> i16 {
    let u = (i32::from(x) + 32768) as u32; // 0..=65535
    let index = (u >> 8) as usize; // 0..=255
    let frac = (u & 0xFF) as i32;
    let (a, b) = (sample(left, mirror, index), sample(left, mirror, index + 1));
    (a + (((b - a) * frac + 128) >> 8)) as i16
}

/// [`interpolate`] with one branch instead of one per sample, for microcontrollers: both
/// samples come from the left half below the middle, and both from its mirror from the middle
/// on (`sample`'s rule holds at the middle sample too, which is its own mirror). The same
/// samples, so the same bits (test `one_branch_interpolation_matches`). Only `small` builds
/// of microcontrollers read the half tables; one copy serves both functions and every caller.
#[cfg(any(test, edgernn_half_tables))]
#[inline(never)]
fn interpolate_mirrored(left: &[i16; 129], mirror: i32, x: i16) -> i16 {
    let u = (i32::from(x) + 32768) as u32;
    let index = (u >> 8) as usize;
    let frac = (u & 0xFF) as i32;
    let at = |k: usize| left.get(k).map_or(0, |&v| i32::from(v));
    let (a, b) = if index < 128 {
        (at(index), at(index + 1))
    } else {
        let far = |k: usize| (mirror - at(k)).min(32767);
        (far(256 - index), far(255usize.wrapping_sub(index)))
    };
    (a + (((b - a) * frac + 128) >> 8)) as i16
}

/// [`interpolate`] over an unfolded table: the same samples, so the same bits.
#[cfg(not(edgernn_half_tables))]
#[inline]
fn interpolate_full(full: &FullTable, x: i16) -> i16 {
    let u = (i32::from(x) + 32768) as u32;
    let index = (u >> 8) as usize;
    let frac = (u & 0xFF) as i32;
    let (a, b) = (full_sample(full, index), full_sample(full, index + 1));
    (a + (((b - a) * frac + 128) >> 8)) as i16
}

/// [`interpolate_full`] on a pre-activation `x` already in `i16` range, as `i32`, in the form
/// that suits cores with 16-bit multiplies: `a + ((b - a) * frac + 128) >> 8` equals
/// `(a * (256 - frac) + b * frac + 128) >> 8`, because `a * 256` is a multiple of 256 and so
/// passes through the floor unchanged. The two products read the two adjacent samples and the
/// weights, which Cortex-M4 multiplies as 16-bit halves (`smulbb`, `smlabt`) without the
/// subtraction and the narrowing (test `paired_interpolation_matches`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", edgernn_arm_dsp))]
#[inline]
fn interpolate_pair<const NON_NEGATIVE: bool>(full: &FullTable, x: i32) -> i32 {
    // `x` is in i16 range: the index is in 0..=255.
    let index = ((x >> 8) + 128) as usize;
    let frac = x & 0xFF;
    let pair = full_pair(full, index);
    // The low half sign-extended, and the high half.
    let (a, b) = ((pair << 16) >> 16, pair >> 16);
    let sum = a * (256 - frac) + b * frac + 128;
    if NON_NEGATIVE {
        // A table of non-negative samples gives a non-negative sum, whose arithmetic and
        // logical shifts agree; the logical one tells the compiler the result is not negative.
        ((sum as u32) >> 8) as i32
    } else {
        sum >> 8
    }
}

/// [`interpolate_full`] of `sat_i16(pre)`, for targets whose tables are `[i16; 257]`
/// (Cortex-M0, RISC-V), as `i32`. The saturation is done on `u = pre + 2^15`, which lies in
/// `0..=0xFFFF` exactly for the `pre` that need none: one add, one shift and a branch not
/// taken, where the clamp to `[-2^15, 2^15)` compares with two constants the Cortex-M0 loads
/// from memory (test `saturated_interpolation_matches`).
#[cfg(any(
    test,
    not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        edgernn_arm_dsp,
        edgernn_half_tables
    ))
))]
#[inline]
fn interpolate_sat(full: &[i16; 257], pre: i32) -> i32 {
    let u = pre.wrapping_add(32768) as u32;
    let u = if u >> 16 != 0 {
        if pre < 0 {
            0
        } else {
            0xFFFF
        }
    } else {
        u
    };
    let index = (u >> 8) as usize;
    let frac = (u & 0xFF) as i32;
    let at = |k: usize| full.get(k).map_or(0, |&v| i32::from(v));
    let (a, b) = (at(index), at(index + 1));
    a + (((b - a) * frac + 128) >> 8)
}

/// `sigmoid_q15(sat_i16(pre))` for any `i32` pre-activation, as `i32`: what the integer cells
/// call per gate. The unfolded table's samples are all in `0..=32767` and an interpolation
/// between two of them lies between them, so the `max(0)` and the narrowing of
/// [`sigmoid_q15`] are no-ops and are left out (test `cell_activations_match`); the compiler
/// knows the result is not negative (the GRU's blend relies on that to drop a test).
#[inline]
pub fn sigmoid_q15_sat(pre: i32) -> i32 {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64", edgernn_arm_dsp))]
    return interpolate_pair::<true>(SIGMOID_FULL, pre.clamp(-32768, 32767));
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        edgernn_arm_dsp,
        edgernn_half_tables
    )))]
    return interpolate_sat(SIGMOID_FULL, pre);
    #[cfg(edgernn_half_tables)]
    i32::from(sigmoid_q15(pre.clamp(-32768, 32767) as i16))
}

/// `tanh_q15(sat_i16(pre))` for any `i32` pre-activation, as `i32` (test
/// `cell_activations_match`).
#[inline]
pub fn tanh_q15_sat(pre: i32) -> i32 {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64", edgernn_arm_dsp))]
    return interpolate_pair::<false>(TANH_FULL, pre.clamp(-32768, 32767));
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        edgernn_arm_dsp,
        edgernn_half_tables
    )))]
    return interpolate_sat(TANH_FULL, pre);
    #[cfg(edgernn_half_tables)]
    i32::from(tanh_q15(pre.clamp(-32768, 32767) as i16))
}

/// An unfolded table as 256 words `T[k] << 16 | (T[k + 1] - T[k]) & 0xFFFF`, the form the
/// Cortex-M4's gate kernels read (`kernels::arm::dsp`): with `k = (x >> 8) + 128` and
/// `frac = x & 0xFF`, one `smlad` of the word with `256 << 16 | frac` (one `uxtab`) plus 128
/// is `T[k] * 256 + (T[k + 1] - T[k]) * frac + 128 = T[k] * (256 - frac) + T[k + 1] * frac +
/// 128`, the interpolation's sum: the same bits in 6 instructions per lookup instead of 8
/// (test `slope_words_match`). Every difference fits i16 (the samples rise by at most 2048).
#[cfg(any(test, edgernn_arm_dsp))]
const fn slope_words(full: &[i16; 257]) -> [u32; 256] {
    let mut words = [0u32; 256];
    let mut k = 0;
    while k < 256 {
        let d = full[k + 1] as i32 - full[k] as i32;
        assert!(d >= i16::MIN as i32 && d <= i16::MAX as i32);
        words[k] = ((full[k] as u16 as u32) << 16) | (d as u16 as u32);
        k += 1;
    }
    words
}

/// [`slope_words`] of the sigmoid table.
#[cfg(any(test, edgernn_arm_dsp))]
pub(crate) static SIGMOID_SLOPES: [u32; 256] = slope_words(&unfold(&SIGMOID_Q15, 32768));
/// [`slope_words`] of the tanh table.
#[cfg(any(test, edgernn_arm_dsp))]
pub(crate) static TANH_SLOPES: [u32; 256] = slope_words(&unfold(&TANH_Q15, 0));

/// The Cortex-M4 gate kernels' interpolation over [`slope_words`], stated in Rust (the
/// assembly's `ssat`, `asr`, `ldr`, `uxtab`, `smlad`, `asr`): the host tests it against the
/// cells' activations.
#[cfg(test)]
fn interpolate_slopes(words: &[u32; 256], pre: i32) -> i32 {
    let x = pre.clamp(-32768, 32767);
    let word = words[((x >> 8) + 128) as usize];
    let (d, a) = (i32::from(word as u16 as i16), (word as i32) >> 16);
    (d * (x & 0xFF) + a * 256 + 128) >> 8
}

/// Sigmoid of a Q3.12 value, in Q0.15 (`0..=32767`).
#[inline]
pub fn sigmoid_q15(x: i16) -> i16 {
    #[cfg(not(edgernn_half_tables))]
    return interpolate_full(SIGMOID_FULL, x).max(0);
    #[cfg(edgernn_half_tables)]
    interpolate_mirrored(&SIGMOID_Q15, 32768, x).max(0)
}

/// Tanh of a Q3.12 value, in Q0.15.
#[inline]
pub fn tanh_q15(x: i16) -> i16 {
    #[cfg(not(edgernn_half_tables))]
    return interpolate_full(TANH_FULL, x);
    #[cfg(edgernn_half_tables)]
    interpolate_mirrored(&TANH_Q15, 0, x)
}

/// Keras 3 hard sigmoid `clip(x / 6 + 0.5, 0, 1)` of a Q3.12 value, in Q0.15, exact up to
/// rounding: `x / 6` in Q0.15 is `4x / 3` in Q3.12 units.
#[inline]
pub fn hard_sigmoid_q15(x: i16) -> i16 {
    let v = (8 * i32::from(x) + 3).div_euclid(6) + 16384;
    v.clamp(0, 32767) as i16
}

/// `exp(-t)` for `t >= 0` in Q.12 (any size), in Q0.15 with 1.0 = 32768.
#[inline]
pub fn exp_neg_q15(t: i64) -> i64 {
    if t < 0 {
        return 32768;
    }
    if t >= 16 << GATE_FRAC_BITS {
        return 0;
    }
    let index = (t >> 8) as usize;
    let frac = t & 0xFF;
    let (Some(&a), Some(&b)) = (EXP_NEG_Q15.get(index), EXP_NEG_Q15.get(index + 1)) else {
        return 0;
    };
    let (a, b) = (i64::from(a), i64::from(b));
    a + shift_round((b - a) * frac, 8)
}

/// Softmax over logits in Q.12 (any `i32`), written in place as Q0.15 probabilities.
pub fn softmax_q15(values: &mut [i32]) {
    let Some(max) = values.iter().copied().max() else {
        return;
    };
    let mut sum = 0i64;
    for v in values.iter_mut() {
        let e = exp_neg_q15(i64::from(max) - i64::from(*v));
        *v = e as i32;
        sum += e;
    }
    // The max itself contributes 32768, so the sum is positive; it is at most 32768 per value
    // and widths are at most MAX_WIDTH (2^12), so `sum < 2^28` and `e * 32768 + sum / 2 < 2^31`:
    // the division runs in u32, which 32-bit cores do in hardware (an i64 division would link
    // a 1 KB library routine). Same quotient.
    let sum = u32::try_from(sum.max(1)).unwrap_or(u32::MAX);
    for v in values.iter_mut() {
        let e = u32::try_from(*v).unwrap_or(0);
        *v = ((e.saturating_mul(32768).saturating_add(sum / 2)) / sum).min(32767) as i32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[i16; 257]` targets' interpolation with its own saturation gives the unfolded
    /// tables' bits on the saturated input, for every `i16` value, well beyond on both sides
    /// and at the ends of `i32`.
    /// The `small` microcontroller builds' one-branch interpolation gives the per-sample rule's
    /// bits for every input.
    #[test]
    fn one_branch_interpolation_matches() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(
                interpolate_mirrored(&SIGMOID_Q15, 32768, x),
                interpolate(&SIGMOID_Q15, 32768, x),
                "{x}"
            );
            assert_eq!(
                interpolate_mirrored(&TANH_Q15, 0, x),
                interpolate(&TANH_Q15, 0, x),
                "{x}"
            );
        }
    }

    #[test]
    fn saturated_interpolation_matches() {
        let (sigmoid, tanh) = (unfold(&SIGMOID_Q15, 32768), unfold(&TANH_Q15, 0));
        let wide = (-100_000..=100_000).chain([i32::MIN, i32::MIN + 1, i32::MAX - 1, i32::MAX]);
        for pre in wide {
            let x = pre.clamp(-32768, 32767) as i16;
            let want = i32::from(interpolate(&SIGMOID_Q15, 32768, x));
            assert_eq!(interpolate_sat(&sigmoid, pre), want, "{pre}");
            let want = i32::from(interpolate(&TANH_Q15, 0, x));
            assert_eq!(interpolate_sat(&tanh, pre), want, "{pre}");
        }
    }

    /// The unfolded tables give the half tables' bits for every input.
    #[test]
    fn unfolded_tables_match_the_half_tables() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(
                interpolate_full(SIGMOID_FULL, x),
                interpolate(&SIGMOID_Q15, 32768, x),
                "{x}"
            );
            assert_eq!(
                interpolate_full(TANH_FULL, x),
                interpolate(&TANH_Q15, 0, x),
                "{x}"
            );
        }
    }

    /// The cells' activations on `i32` pre-activations give the `i16` functions' bits on the
    /// saturated input, for every `i16` value and well beyond on both sides.
    #[test]
    fn cell_activations_match() {
        let wide = (-100_000..=100_000).chain([i32::MIN, i32::MIN + 1, i32::MAX - 1, i32::MAX]);
        for pre in wide {
            let x = pre.clamp(-32768, 32767) as i16;
            assert_eq!(sigmoid_q15_sat(pre), i32::from(sigmoid_q15(x)), "{pre}");
            assert_eq!(tanh_q15_sat(pre), i32::from(tanh_q15(x)), "{pre}");
        }
    }

    /// The slope words' interpolation gives the cells' activations for every input.
    #[test]
    fn slope_words_match() {
        let wide = (-70_000..=70_000).chain([i32::MIN, i32::MIN + 1, i32::MAX - 1, i32::MAX]);
        for pre in wide {
            assert_eq!(
                interpolate_slopes(&SIGMOID_SLOPES, pre),
                sigmoid_q15_sat(pre),
                "{pre}"
            );
            assert_eq!(
                interpolate_slopes(&TANH_SLOPES, pre),
                tanh_q15_sat(pre),
                "{pre}"
            );
        }
    }

    /// The two-product interpolation gives the unfolded tables' bits for every input.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64", edgernn_arm_dsp))]
    #[test]
    fn paired_interpolation_matches() {
        for x in i16::MIN..=i16::MAX {
            let x32 = i32::from(x);
            assert_eq!(
                interpolate_pair::<true>(SIGMOID_FULL, x32),
                i32::from(interpolate_full(SIGMOID_FULL, x)),
                "{x}"
            );
            assert_eq!(
                interpolate_pair::<false>(TANH_FULL, x32),
                i32::from(interpolate_full(TANH_FULL, x)),
                "{x}"
            );
        }
    }

    fn max_error(f: impl Fn(i16) -> i16, reference: impl Fn(f64) -> f64) -> f64 {
        (i16::MIN..=i16::MAX)
            .map(|x| {
                let got = f64::from(f(x)) / 32768.0;
                (got - reference(f64::from(x) / 4096.0)).abs()
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn tables_match_the_functions() {
        let q15 = |v: f64| libm::floor(v * 32768.0 + 0.5).clamp(-32768.0, 32767.0) as i64;
        // Every sample of the whole range, the right halves of tanh and sigmoid derived.
        for (k, &exp) in EXP_NEG_Q15.iter().enumerate() {
            let x = -8.0 + k as f64 / 16.0;
            let tanh = sample(&TANH_Q15, 0, k);
            assert_eq!(i64::from(tanh), q15(libm::tanh(x)), "tanh {k}");
            assert_eq!(
                i64::from(sample(&SIGMOID_Q15, 32768, k)),
                q15(1.0 / (1.0 + libm::exp(-x))),
                "sigmoid {k}"
            );
            let e = libm::floor(libm::exp(-(k as f64) / 16.0) * 32768.0 + 0.5).min(32768.0);
            assert_eq!(f64::from(exp), e, "exp {k}");
        }
    }

    #[test]
    fn sigmoid_error() {
        let e = max_error(sigmoid_q15, |x| 1.0 / (1.0 + libm::exp(-x)));
        std::println!("integer sigmoid max error {e:.3e}");
        assert!(e <= SIGMOID_MAX_ERROR, "{e}");
    }

    #[test]
    fn tanh_error() {
        let e = max_error(tanh_q15, libm::tanh);
        std::println!("integer tanh max error {e:.3e}");
        assert!(e <= TANH_MAX_ERROR, "{e}");
    }

    #[test]
    fn hard_sigmoid_error() {
        let e = max_error(hard_sigmoid_q15, |x| (x / 6.0 + 0.5).clamp(0.0, 1.0));
        assert!(e <= 1.0 / 32768.0, "{e}");
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut v = [4096i32, 0, -8192, 100_000];
        softmax_q15(&mut v);
        let total: i32 = v.iter().sum();
        assert!((total - 32768).abs() <= 4, "{v:?}");
        assert_eq!(v[3], 32767);
    }
}
