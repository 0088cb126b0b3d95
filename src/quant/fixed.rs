//! Fixed-point requantization: the one rounding rule of the integer modes.
//!
//! A real factor `f` is stored as a multiplier `m` in `[2^30, 2^31)` (or 0) and a shift `s`,
//! with `f = m * 2^-(31 + s)`. Applying it to an integer `a` computes
//! `floor((a * m + 2^(n-1)) / 2^n)` with `n = 31 + s`: round half toward positive infinity,
//! in exact 128-bit integer arithmetic, so every target gets the same bits.

use serde::{Deserialize, Serialize};

/// Smallest stored shift (a factor up to `2^(31-1) * 2^-1`... i.e. `n = 31 + s >= 1`).
pub const MIN_SHIFT: i8 = -30;
/// Largest stored shift (factors down to about `2^-96`).
pub const MAX_SHIFT: i8 = 64;

/// A real multiplier in fixed point; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Requant {
    /// In `[2^30, 2^31)`, or 0 for a zero factor.
    pub multiplier: i32,
    /// `f = multiplier * 2^-(31 + shift)`, in `MIN_SHIFT..=MAX_SHIFT`.
    pub shift: i8,
}

impl Requant {
    /// Whether the fields are in range (checked when a blob is loaded).
    pub fn is_valid(&self) -> bool {
        (self.multiplier == 0 || self.multiplier >= 1 << 30)
            && (MIN_SHIFT..=MAX_SHIFT).contains(&self.shift)
    }

    /// The nearest representable factor to `factor` (finite, `>= 0`); `None` if it is out of
    /// the representable range (too large) or not finite. Tiny factors become 0.
    pub fn from_f64(factor: f64) -> Option<Self> {
        if !factor.is_finite() || factor < 0.0 {
            return None;
        }
        if factor == 0.0 {
            return Some(Self::default());
        }
        let (mantissa, exp) = libm::frexp(factor);
        // factor = mantissa * 2^exp with mantissa in [0.5, 1): m = mantissa * 2^31.
        let mut m = libm::round(mantissa * (1u64 << 31) as f64) as i64;
        let mut exp = exp;
        if m == 1 << 31 {
            m /= 2;
            exp += 1;
        }
        // factor = m * 2^(exp - 31) = m * 2^-(31 + shift)  =>  shift = -exp.
        let shift = -exp;
        if shift > i32::from(MAX_SHIFT) {
            return Some(Self::default());
        }
        if shift < i32::from(MIN_SHIFT) {
            return None;
        }
        Some(Self {
            multiplier: m as i32,
            shift: shift as i8,
        })
    }

    /// The factor as a real number (for reports and tests).
    pub fn to_f64(&self) -> f64 {
        f64::from(self.multiplier) * libm::exp2(-(31.0 + f64::from(self.shift)))
    }

    /// `round(a * factor)` with the crate's rounding rule. Never overflows: the product is
    /// computed in 128 bits and the result saturates to `i64`.
    #[inline]
    pub fn apply(&self, a: i64) -> i64 {
        let n = 31 + i32::from(self.shift.clamp(MIN_SHIFT, MAX_SHIFT));
        // Accumulators of real models fit in i32: then the same exact product fits in i64
        // (|a * m| < 2^62, plus the rounding term < 2^61), which 32-bit cores compute far
        // faster than a 128-bit product. Same bits either way.
        if let Ok(small) = i32::try_from(a) {
            let product = i64::from(small) * i64::from(self.multiplier);
            if cfg!(target_pointer_width = "32") && (33..=62).contains(&n) {
                return round_shift_high(product, n);
            }
            if n <= 62 {
                return (product + (1i64 << (n - 1))) >> n;
            }
        }
        self.apply_wide(a, n)
    }

    /// The 128-bit path of [`Requant::apply`]. Out of line: it is large on 32-bit cores and
    /// `apply` is inlined at every requantization, so one copy saves about 700 bytes of flash
    /// in an int8 LSTM firmware (cortex-m4f-minimal), at no cost to the common path.
    #[cold]
    #[inline(never)]
    fn apply_wide(&self, a: i64, n: i32) -> i64 {
        let product = i128::from(a) * i128::from(self.multiplier);
        let rounded = (product + (1i128 << (n - 1))) >> n;
        rounded.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// `(p + 2^(n-1)) >> n` for `n` in `33..=62`, on 32-bit cores (the usual requantization:
/// factors below 1/2): `floor((p + 2^(n-1)) / 2^n)` equals `floor((floor(p / 2^(n-1)) + 1) / 2)`,
/// and `p / 2^(n-1)` is the product's high word shifted by `n - 33`, so only 32-bit shifts run,
/// not a 64-bit shift by a variable amount (a branchy sequence there). Same bits.
#[inline]
fn round_shift_high(p: i64, n: i32) -> i64 {
    let high = (p >> 32) as i32;
    (i64::from(high >> (n - 33)) + 1) >> 1
}

impl Requant {
    /// Packs into one `i32` for per-row tensors: the top 24 bits hold the multiplier rounded
    /// to 23 significant bits, the low 8 bits the shift. `None` if it does not fit.
    pub fn pack(&self) -> Option<i32> {
        if self.multiplier == 0 {
            return Some(i32::from(self.shift as u8));
        }
        let mut m24 = (i64::from(self.multiplier) + 128) >> 8;
        let mut shift = i32::from(self.shift);
        if m24 == 1 << 23 {
            m24 >>= 1;
            shift -= 1;
        }
        let shift = i8::try_from(shift).ok()?;
        if !(MIN_SHIFT..=MAX_SHIFT).contains(&shift) {
            return None;
        }
        Some(((m24 << 8) as i32) | i32::from(shift as u8))
    }

    /// Unpacks [`Requant::pack`]'s encoding.
    pub fn unpack(packed: i32) -> Self {
        Self {
            multiplier: packed & !0xFF,
            shift: (packed & 0xFF) as u8 as i8,
        }
    }
}

/// Rounds a right shift by `n` bits half toward positive infinity (`n` in `0..=62`).
#[inline]
pub fn shift_round(a: i64, n: u32) -> i64 {
    if n == 0 {
        a
    } else {
        let n = n.min(62);
        (a + (1i64 << (n - 1))) >> n
    }
}

/// [`shift_round`] in 32 bits, for values where it is exact: `a + 2^(n-1)` fits i32 (`n` in
/// `0..=31`). The integer cells' gate products are at most `2^30` in magnitude, so this gives
/// [`shift_round`]'s bits without 64-bit arithmetic (a library call on Cortex-M0).
#[inline]
pub fn shift_round32(a: i32, n: u32) -> i32 {
    if n == 0 {
        a
    } else {
        let n = n.min(31);
        a.wrapping_add(1 << (n - 1)) >> n
    }
}

/// `v` limited to `[lo, hi]` (`lo` wins if the bounds cross). Unlike `Ord::clamp`, it has no
/// panic path for bounds the compiler cannot see are ordered.
#[inline]
pub fn clamp_to(v: i64, lo: i64, hi: i64) -> i64 {
    v.min(hi).max(lo)
}

/// Saturates to `i16`.
#[inline]
pub fn sat_i16(v: i64) -> i16 {
    v.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_factors() {
        for &f in &[
            1.0,
            0.5,
            0.25,
            3.0e-5,
            1.0 / 4096.0,
            123.456,
            0.999_999_9,
            7.0e-20,
        ] {
            let r = Requant::from_f64(f).unwrap();
            assert!(r.is_valid(), "{f} -> {r:?}");
            assert!(((r.to_f64() - f) / f).abs() < 1e-9, "{f} -> {}", r.to_f64());
        }
        assert_eq!(Requant::from_f64(0.0), Some(Requant::default()));
        assert_eq!(Requant::from_f64(f64::NAN), None);
        assert_eq!(Requant::from_f64(1e30), None);
    }

    #[test]
    fn rounds_half_up_and_matches_real_math() {
        let half = Requant::from_f64(0.5).unwrap();
        assert_eq!(half.apply(3), 2); // 1.5 -> 2
        assert_eq!(half.apply(-3), -1); // -1.5 -> -1
        assert_eq!(half.apply(5), 3);
        let f = 0.013_7;
        let r = Requant::from_f64(f).unwrap();
        for a in [-1_000_000i64, -12345, -1, 0, 1, 999, 1 << 40] {
            let expected = (a as f64 * r.to_f64() + 0.5).floor() as i64;
            assert_eq!(r.apply(a), expected, "{a}");
        }
    }

    /// The 32-bit cores' rounding shift gives the 64-bit formula's bits, and `apply` the
    /// 128-bit reference's, for random products and every shift.
    #[test]
    fn fast_paths_match_the_wide_reference() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200_000 {
            let shift = (next() % 95) as i8 - 30;
            let r = Requant {
                multiplier: (next() as i32) & !0xFF,
                shift,
            };
            let a = match next() % 4 {
                0 => i64::from(next() as i32),
                1 => i64::from((next() % 2001) as i32 - 1000),
                2 => i64::from(i32::MIN) + (next() % 3) as i64,
                _ => i64::from(i32::MAX) - (next() % 3) as i64,
            };
            let n = 31 + i32::from(shift);
            assert_eq!(r.apply(a), r.apply_wide(a, n), "{r:?} {a}");
            let p = a * i64::from(r.multiplier);
            let n = 33 + (next() % 30) as i32;
            assert_eq!(
                round_shift_high(p, n),
                (p + (1i64 << (n - 1))) >> n,
                "{p} {n}"
            );
        }
    }

    #[test]
    fn shift_round32_matches_shift_round_where_exact() {
        for n in 0..=31u32 {
            let half = if n == 0 { 0 } else { 1i64 << (n - 1) };
            for a in [
                -(1 << 30),
                -(1 << 30) + 1,
                -32769,
                -3,
                -1,
                0,
                1,
                2,
                3,
                16384,
                1 << 30,
            ] {
                if i64::from(a) + half <= i64::from(i32::MAX) {
                    assert_eq!(
                        i64::from(shift_round32(a, n)),
                        shift_round(i64::from(a), n),
                        "{a} {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn packing_keeps_23_bits() {
        for &f in &[1.0, 3.0e-5, 0.999_999_9, 123.456, 1e-12] {
            let r = Requant::from_f64(f).unwrap();
            let p = Requant::unpack(r.pack().unwrap());
            assert!(p.is_valid());
            assert!(((p.to_f64() - f) / f).abs() < 2.0e-7, "{f}: {}", p.to_f64());
        }
        assert_eq!(
            Requant::unpack(Requant::default().pack().unwrap()).to_f64(),
            0.0
        );
    }

    #[test]
    fn extreme_inputs_do_not_overflow() {
        let r = Requant::from_f64(1e9).unwrap();
        assert_eq!(r.apply(i64::MAX), i64::MAX);
        assert_eq!(r.apply(i64::MIN), i64::MIN);
        let bad = Requant {
            multiplier: i32::MAX,
            shift: i8::MIN,
        };
        let _ = bad.apply(i64::MAX);
    }
}
