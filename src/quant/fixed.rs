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
    // Out of line with `small`: inlined at every requantization it costs about 500 bytes of
    // flash in an int8 LSTM firmware (cortex-m4f-minimal).
    #[cfg_attr(not(feature = "small"), inline)]
    #[cfg_attr(feature = "small", inline(never))]
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

/// [`Requant::apply`] prepared once for many 32-bit values: for factors with `n = 31 + shift`
/// in `16..=31` (from `2^-16` up to 2: e.g. int8 codes to Q0.15, about 257) and
/// `|a| < 2^14`, 32-bit multiplies and shifts only (where the core multiplies into 64 bits,
/// one rounding high-word product: [`SmallRequant::apply_high`]); anything else calls
/// `apply`. Same bits (test `small_requant_matches_apply`, exhaustive in `a`).
#[derive(Debug, Clone, Copy)]
pub struct SmallRequant {
    requant: Requant,
    /// `n` when the fast path applies to this factor, else 0.
    n: u32,
    /// `32 - n` when [`SmallRequant::apply_high`] applies (`n` in `16..=32`), else 32.
    up: u32,
}

impl SmallRequant {
    /// The factor it applies.
    #[inline]
    pub fn requant(&self) -> Requant {
        self.requant
    }

    /// Prepares `requant`.
    pub fn new(requant: Requant) -> Self {
        let n = 31 + i32::from(requant.shift.clamp(MIN_SHIFT, MAX_SHIFT));
        let fast = (16..=31).contains(&n) && requant.multiplier >= 0;
        Self {
            requant,
            n: if fast { n as u32 } else { 0 },
            up: if (16..=32).contains(&n) {
                (32 - n) as u32
            } else {
                32
            },
        }
    }

    /// Whether [`SmallRequant::apply_small`] has a fast path for this factor (then it declines
    /// only inputs out of its range).
    #[inline]
    pub fn is_fast(&self) -> bool {
        if WIDE_MULTIPLY {
            self.up <= 16
        } else {
            self.n != 0
        }
    }

    /// [`SmallRequant::apply_high`]'s left shift `32 - n` when it has a fast path (then
    /// `apply_small(a)` is `smmulr(a << shift, multiplier)` for `|a| <= 2^14`), for kernels
    /// that run it in assembly.
    #[cfg(edgernn_arm_dsp)]
    #[inline]
    pub(crate) fn high_shift(&self) -> Option<u32> {
        (self.up <= 16).then_some(self.up)
    }

    /// Whether every int8 code `c` has `apply_high(c - zero)` (not `None`) within
    /// `[-2^15, 2^15)`: then a GRU's `h` codes need neither the range test nor the clamp to
    /// `[-2^15, 2^15]` per unit, only a test that the code is int8 (the DSP blend loop's fast
    /// path). The product is monotonic in `c - zero` (for either sign of the multiplier), so
    /// the two ends of the codes decide (test `int8_codes_unclamped_holds`, every code).
    #[cfg_attr(not(any(test, edgernn_arm_dsp)), allow(dead_code))]
    pub(crate) fn int8_codes_unclamped(&self, zero: i32) -> bool {
        // Both ends' `c - zero` in `[-2^14, 2^14)` (so none overflows).
        if !(-16256..=16256).contains(&zero) {
            return false;
        }
        let fits = |c: i32| {
            self.apply_high(c - zero)
                .is_some_and(|v| (-32768..32768).contains(&v))
        };
        fits(-128) && fits(127)
    }

    /// `requant.apply(a)` by the cheapest exact route this target has for small `a`:
    /// [`SmallRequant::apply_high`] where the core multiplies into 64 bits,
    /// [`SmallRequant::apply32`] elsewhere (`None` when it cannot).
    #[inline]
    pub fn apply_small(&self, a: i32) -> Option<i32> {
        if WIDE_MULTIPLY {
            self.apply_high(a)
        } else {
            self.apply32(a)
        }
    }

    /// `requant.apply(a)` as one rounding high-word product, for `n` in `16..=32` and
    /// `|a| <= 2^14` (`None` otherwise): with `k = 32 - n` (`0..=16`), `a * 2^k` fits i32
    /// (`|a * 2^k| <= 2^30`) and `floor((a * 2^k * m + 2^31) / 2^32)` is
    /// `floor((a * m + 2^(n-1)) / 2^n)` (numerator and denominator divided by `2^k`), which
    /// is `apply`'s rule. On a Cortex-M4 the product is one `smmulr`; any sign of `m` works.
    #[inline]
    pub fn apply_high(&self, a: i32) -> Option<i32> {
        let k = self.up;
        // `a` is in range when saturating it to 15 bits leaves it unchanged (an `ssat`).
        if k > 16 || a.clamp(-16384, 16383) != a {
            return None;
        }
        let product = i64::from(a << k) * i64::from(self.requant.multiplier);
        Some(((product + (1 << 31)) >> 32) as i32)
    }

    /// `requant.apply(a)`, in 32 bits when it can (`None` when it cannot).
    ///
    /// `apply` computes `floor((a * m + 2^(n-1)) / 2^n)`. With `m = mh * 2^16 + ml`
    /// (`mh = m >> 16` in `[0, 2^15)`, `ml` in `[0, 2^16)`), `A = a * mh` and `B = a * ml`, the
    /// numerator is `A * 2^16 + (B + 2^(n-1))`, so for `n >= 16` the result is
    /// `floor((A + floor((B + 2^(n-1)) / 2^16)) / 2^(n-16))` (nested floors compose). For
    /// `|a| < 2^14`: `|A| < 2^29`, `|B| < 2^30` and `2^(n-1) <= 2^30`, so `B + 2^(n-1)` is in
    /// `(-2^30, 2^31)` and every intermediate fits i32.
    #[inline]
    pub fn apply32(&self, a: i32) -> Option<i32> {
        let n = self.n;
        if n == 0 || !(-16383..=16383).contains(&a) {
            return None;
        }
        let m = self.requant.multiplier;
        let (mh, ml) = (m >> 16, m & 0xFFFF);
        let low = (a * ml + (1 << (n - 1))) >> 16;
        Some((a * mh + low) >> (n - 16))
    }

    /// `requant.apply(a)`.
    #[inline]
    pub fn apply(&self, a: i64) -> i64 {
        match i32::try_from(a).ok().and_then(|a| self.apply32(a)) {
            Some(v) => i64::from(v),
            None => self.requant.apply(a),
        }
    }
}

/// Whether this target multiplies 32 by 32 bits into 64 in hardware. ARMv6-M (Cortex-M0/M0+)
/// and ARMv7-M without the DSP extension are the 32-bit ARM cores the crate builds for without
/// `edgernn_arm_dsp` (see `build.rs`); ARMv6-M has no `smull`, so an `i64` product there is a
/// library call (`__aeabi_lmul`). ARMv7-M does have `smull` but takes the split product too:
/// correct, a few instructions slower, and no stable `cfg` tells the two apart.
pub(crate) const WIDE_MULTIPLY: bool = !cfg!(target_arch = "arm") || cfg!(edgernn_arm_dsp);

/// `floor(a * m / 2^32)`, the high word of the exact 64-bit product (`smull`'s high register
/// on a Cortex-M4, one `imul` on x86-64).
#[inline]
pub fn mul_high(a: i32, m: i32) -> i32 {
    ((i64::from(a) * i64::from(m)) >> 32) as i32
}

/// [`mul_high`] in 32-bit multiplies only, for `|a| <= 2^15` (Q0.15 values), any `m`.
///
/// With `m = mh * 2^16 + ml`, `mh = m >> 16` in `[-2^15, 2^15)` and `ml` in `[0, 2^16)`:
/// `a * m = X * 2^16 + Y` for `X = a * mh` and `Y = a * ml`, so
/// `floor(a * m / 2^32) = floor((X + floor(Y / 2^16)) / 2^16)` (nested floors of divisions by
/// positive integers compose, and `X` is an integer). Bounds: `|X| <= 2^15 * 2^15 = 2^30`,
/// `|Y| <= 2^15 * (2^16 - 1) < 2^31` and `|X + (Y >> 16)| <= 2^30 + 2^15`: nothing overflows
/// i32 (test `split_mul_high_matches_the_wide_product`, exhaustive in `a`).
#[inline]
pub fn mul_high_q15(a: i32, m: i32) -> i32 {
    let (mh, ml) = (m >> 16, m & 0xFFFF);
    (a * mh + ((a * ml) >> 16)) >> 16
}

/// [`mul_high`] by the cheapest exact route this target has: the 64-bit product where the core
/// multiplies into 64 bits, else two 16-bit products for Q0.15 values and four otherwise.
#[inline]
fn mul_high_fast(a: i32, m: i32) -> i32 {
    if WIDE_MULTIPLY {
        mul_high(a, m)
    } else if (-32768..=32768).contains(&a) {
        mul_high_q15(a, m)
    } else {
        mul_i32_wide(a, m).0
    }
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
/// same bits as [`Requant::apply`] whenever it returns a value. The ARMv6-M
/// kernel runs this arithmetic in assembly; this is its portable statement, tested on the host.
///
/// With `p = acc * m`, `n = 31 + shift` (the shift clamped as `apply` clamps it) and the exact
/// 64-bit product's high word `high` ([`mul_i32_wide`]), the result is
/// `floor((p + 2^(n-1)) / 2^n)`:
///
/// * shifts of 2 and more (`n >= 33`, the usual gate rows): `floor((floor(p / 2^(n-1)) + 1) /
///   2)`, and `floor(p / 2^(n-1))` is `high >> (n - 33)`: the high-word
///   rounding of [`Requant::apply`] on 32-bit cores (`high` from two 16-bit products when `acc` fits i16, four otherwise).
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
            // |acc| <= 2^15: two products (see `mul_high_q15`).
            Ok(a) => mul_high_q15(i32::from(a), multiplier),
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

/// `clamp(zero + requant.apply(v), lo, hi)` for 32-bit `v`: the integer cells' step from a
/// Q0.15 value to an output code, done once per unit. Built once per step, it keeps only
/// 32-bit work per value for the usual factors (`n = 31 + shift >= 33`, i.e. below 1/4: int8
/// outputs) and zero points; other factors take [`Requant::apply`] itself. Same bits either
/// way (test `to_codes_matches_requant_apply`).
#[derive(Debug, Clone, Copy)]
pub struct ToCodes {
    requant: Requant,
    zero: i32,
    lo: i32,
    hi: i32,
    /// `n - 32` when the 32-bit path applies (`n` in `33..=62` and `|bias| < 2^30`), else 32:
    /// one register for the shift and the check.
    shift: u32,
    /// `2^(n-33) + zero * 2^(n-32)`: the rounding term and the zero point in one addend.
    bias: i32,
    /// `(n, 2^(n-1))` on 64-bit targets when `n <= 62` and the multiplier is not negative,
    /// else `None`.
    wide: Option<(u32, i64)>,
}

impl ToCodes {
    /// Prepares `clamp(zero + requant.apply(v), lo, hi)` (`lo` wins if the bounds cross, as in
    /// [`clamp_to`]).
    // Out of line (once per step): inlined, LLVM re-derives the fast-path check from the
    // shift byte in every gate loop iteration instead of testing the prepared shift.
    #[inline(never)]
    pub fn new(requant: Requant, zero: i32, lo: i32, hi: i32) -> Self {
        let n = 31 + i32::from(requant.shift.clamp(MIN_SHIFT, MAX_SHIFT));
        // Any sign of multiplier: the rounding identity and the bounds in `code` hold for
        // `|m| <= 2^31` (and a known-positive one made LLVM widen the product by `umull`
        // and `mla` instead of one `smmul`). With `s = n - 32` in `1..=30`, `zero << s` is
        // exact when shifting back gives `zero`, and then at most `2^31 - 2^s`, so adding
        // `2^(s-1)` cannot overflow.
        let (shift, bias) = match n - 32 {
            s @ 1..=30 => {
                let s = s as u32;
                let scaled = zero.wrapping_shl(s);
                let bias = scaled.wrapping_add(1 << (s - 1));
                if scaled >> s == zero && bias.unsigned_abs() < 1 << 30 {
                    (s, bias)
                } else {
                    (32, 0)
                }
            }
            _ => (32, 0),
        };
        // Only 64-bit targets read it. `n >= 1` always (`MIN_SHIFT` is -30); the clamp only
        // keeps the unused shift of larger `n` in range.
        let wide = (cfg!(target_pointer_width = "64") && n <= 62 && requant.multiplier >= 0)
            .then_some((n as u32, 1i64 << (n.clamp(1, 62) - 1)));
        Self {
            requant,
            zero,
            lo,
            hi,
            shift,
            bias,
            wide,
        }
    }

    /// The code range `(lo, hi)`.
    #[inline]
    pub fn bounds(&self) -> (i32, i32) {
        (self.lo, self.hi)
    }

    /// Whether [`ToCodes::code`] takes its fast path for every `v` (a loop under this test
    /// lets the compiler drop the per-value test).
    #[inline]
    pub fn is_fast(&self) -> bool {
        if cfg!(target_pointer_width = "64") {
            self.wide.is_some()
        } else {
            self.shift <= 31
        }
    }

    /// The 32-bit fast path's parts `(multiplier, bias, shift)`, for the Arm per-unit kernels
    /// that run it in assembly: `code(v) = clamp((mul_high(v, multiplier) + bias) >> shift,
    /// lo, hi)` for every `v` (see [`ToCodes::code`] and [`ToCodes::code_high`]); `None`
    /// where `code` takes another path.
    #[cfg(any(edgernn_arm_dsp, edgernn_arm_v6m))]
    #[inline]
    pub(crate) fn high_parts(&self) -> Option<(i32, i32, u32)> {
        (self.shift <= 31).then_some((self.requant.multiplier, self.bias, self.shift))
    }

    /// The code of `v`.
    ///
    /// The fast path computes `clamp((t + bias) >> (n - 32), lo, hi)` with
    /// `t = floor(v * m / 2^32)` and `bias = 2^(n-33) + zero * 2^(n-32)`. [`Requant::apply`]
    /// on 32-bit cores gives `r = ((t >> (n - 33)) + 1) >> 1` for `n` in `33..=62`, which is
    /// `(v * m + 2^(n-1)) >> n` (see `round_shift_high`), and by nested floors (with
    /// `s = n - 33`) `r = floor((floor(t / 2^s) + 1) / 2) = floor((t + 2^s) / 2^(s+1))`, so
    /// `zero + r = floor((t + bias) / 2^(s+1))`, exactly. `|t| <= 2^30` (`|v|, |m| <= 2^31`)
    /// and `|bias| < 2^30`, so `t + bias` cannot overflow; `|r| <= 2^29 + 1` and
    /// `|zero| <= 2^(30-(s+1)) <= 2^29`, so the saturating `zero + r` of `apply`'s rule never
    /// saturates: it is this exact sum. On a
    /// Cortex-M4, `t + bias` is one `smmla`, then one shift and the clamp (one `ssat` for
    /// int8 codes).
    #[inline]
    pub fn code(&self, v: i32) -> i32 {
        if cfg!(target_pointer_width = "64") {
            // 64-bit registers: `apply`'s own formula for `n <= 62`, one multiply and one
            // shift (`|v * m| < 2^62`, so adding `2^(n-1) <= 2^61` cannot overflow), and
            // the sum with the zero point cannot overflow either.
            if let Some((n, half)) = self.wide {
                let r = (i64::from(v) * i64::from(self.requant.multiplier) + half) >> n;
                return clamp_to(
                    r + i64::from(self.zero),
                    i64::from(self.lo),
                    i64::from(self.hi),
                ) as i32;
            }
        } else if let Some(code) = self.code_high(v) {
            return code;
        }
        code_wide(self.requant, self.zero, self.bounds(), v)
    }

    /// The 32-bit cores' fast path of [`ToCodes::code`] (`None` for factors and zero points
    /// it does not cover); apart so that the host tests run it too.
    #[inline]
    fn code_high(&self, v: i32) -> Option<i32> {
        let s = self.shift;
        if s > 31 {
            return None;
        }
        let t = mul_high_fast(v, self.requant.multiplier);
        Some(((t + self.bias) >> s).min(self.hi).max(self.lo))
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

/// [`ToCodes::code`]'s reference: [`Requant::apply`] in 64 bits and more. Its inputs by value:
/// a reference to the prepared `ToCodes` would keep it in memory, where the loops that can
/// call this reload its fields for every value.
#[cold]
#[inline(never)]
fn code_wide(requant: Requant, zero: i32, (lo, hi): (i32, i32), v: i32) -> i32 {
    let v = i64::from(zero) + requant.apply(i64::from(v));
    clamp_to(v, i64::from(lo), i64::from(hi)) as i32
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

/// Saturates an `i32` to `i16`: [`sat_i16`]'s bits without widening (a 64-bit comparison is
/// two on 32-bit cores).
#[inline]
pub fn sat_i16_32(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// Saturates to `i16`.
#[inline]
pub fn sat_i16(v: i64) -> i16 {
    v.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A xorshift64 stream from `seed`: reproducible test inputs.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// The 32-bit requantization gives `Requant::apply`'s bits (or declines, only where its
    /// docs say) for random and extreme accumulators, every shift byte (valid or not) and
    /// random or extreme multipliers.
    #[test]
    fn requant_i32_matches_apply() {
        let mut next = xorshift(0x2545_F491_4F6C_DD1Du64);
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
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15u64);
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

    /// Exhaustive in `a` over the Q0.15 range, for multipliers across the whole i32 range.
    #[test]
    fn split_mul_high_matches_the_wide_product() {
        let mut next = xorshift(0x2545_F491_4F6C_DD1Du64);
        let mut multipliers = std::vec![0, 1, -1, 0xFFFF, 0x1_0000, 1 << 30, i32::MAX, i32::MIN];
        multipliers.extend((0..56).map(|_| next() as i32));
        for m in multipliers {
            for a in -32768..=32768 {
                assert_eq!(mul_high_q15(a, m), mul_high(a, m), "{a} {m}");
            }
        }
    }

    /// `ToCodes` gives `clamp(zero + apply(v), lo, hi)` for every shift, random valid and
    /// invalid multipliers, every Q0.15 value and random and extreme i32 values.
    #[test]
    fn to_codes_matches_requant_apply() {
        let mut next = xorshift(0xD1B5_4A32_D192_ED03u64);
        let bounds = [(-128, 127), (-32768, 32767), (0, 255), (5, -5)];
        for shift in i8::MIN..=i8::MAX {
            for case in 0..8 {
                let multiplier = match case {
                    0 => 0,
                    1 => 1 << 30,
                    2 => i32::MAX,
                    3 => (1 << 30) | (next() as i32 & 0x3FFF_FF00),
                    4 => next() as i32,
                    6 => i32::MIN,
                    7 => -(1 << 30) - (next() as i32 & 0x3FFF_FFFF),
                    _ => (1 << 30) | (next() as i32 & 0x3FFF_FFFF),
                };
                let r = Requant { multiplier, shift };
                let (lo, hi) = bounds[(next() % 4) as usize];
                let zero = match next() % 5 {
                    0 => 0,
                    1 => (next() % 256) as i32 - 128,
                    2 => i32::MAX,
                    // Every magnitude, around the fast path's limit `|bias| < 2^30` too.
                    3 => (next() as i32) >> (next() % 32),
                    _ => next() as i32,
                };
                let t = ToCodes::new(r, zero, lo, hi);
                let n = 31 + i32::from(shift.clamp(MIN_SHIFT, MAX_SHIFT));
                if (33..=50).contains(&n) && (-128..=127).contains(&zero) {
                    assert!(t.code_high(0).is_some(), "{r:?} zero {zero}");
                }
                let check = |v: i32| {
                    let want = clamp_to(
                        i64::from(zero) + r.apply(i64::from(v)),
                        i64::from(lo),
                        i64::from(hi),
                    ) as i32;
                    assert_eq!(t.code(v), want, "{r:?} zero {zero} [{lo}, {hi}] v {v}");
                    // The 32-bit cores' path, which `code` does not take on this host.
                    if let Some(got) = t.code_high(v) {
                        assert_eq!(got, want, "high {r:?} zero {zero} [{lo}, {hi}] v {v}");
                    }
                };
                (-98_304..=98_304).step_by(61).for_each(check);
                if case == 5 || case == 7 {
                    (-32768..=32768).for_each(check);
                }
                [
                    i32::MIN,
                    i32::MIN + 1,
                    -32769,
                    32769,
                    i32::MAX - 1,
                    i32::MAX,
                ]
                .into_iter()
                .for_each(check);
                (0..200).for_each(|_| check(next() as i32));
            }
        }
    }

    /// Every `a` of the fast range and beyond, every `n` around it, random multipliers.
    /// Where `int8_codes_unclamped` holds, every int8 code's `apply_high` is the clamped
    /// `h_to_q15` of the 64-bit rule (what the GRU's general path computes) and needs no
    /// clamp: factors around real models' (int8 codes to Q0.15, 128 to 258) and far off,
    /// either sign, every zero point that matters and some that overflow.
    #[test]
    fn int8_codes_unclamped_holds() {
        let mut held = 0;
        for (factor, sign) in [
            1.0, 100.0, 128.0, 128.5, 200.0, 204.4, 256.0, 257.3, 258.0, 1000.0, 3.0e-6,
        ]
        .into_iter()
        .flat_map(|f| [(f, 1), (f, -1)])
        {
            // A negative multiplier: the product falls as the code rises.
            let r = Requant::from_f64(factor).unwrap();
            let r = Requant {
                multiplier: r.multiplier * sign,
                ..r
            };
            let s = SmallRequant::new(r);
            for zero in (-400..=400).chain([-16384, 16383, i32::MIN, i32::MAX]) {
                if !s.int8_codes_unclamped(zero) {
                    continue;
                }
                held += 1;
                for c in -128..=127 {
                    let centered = i64::from(c) - i64::from(zero);
                    let want = r.apply(centered).clamp(-32768, 32768);
                    let got = s.apply_high(c - zero);
                    assert_eq!(got.map(i64::from), Some(want), "{factor} {zero} {c}");
                    assert!(want < 32768, "{factor} {zero} {c}");
                }
            }
        }
        // Not vacuous, and a real model's parameters (the bench GRU's) hold.
        assert!(held > 1000, "{held}");
        let bench = SmallRequant::new(Requant {
            multiplier: 1_714_398_464,
            shift: -8,
        });
        assert!(bench.int8_codes_unclamped(4));
        // Codes that reach 2^15 need the clamp: they do not hold.
        let full = SmallRequant::new(Requant::from_f64(257.0).unwrap());
        assert!(!full.int8_codes_unclamped(-1));
    }

    #[test]
    fn small_requant_matches_apply() {
        let mut next = xorshift(0x8CB9_2BA7_2F3D_8DD7u64);
        for shift in -18i8..=3 {
            for case in 0..5 {
                let multiplier = match case {
                    0 => 1 << 30,
                    1 => i32::MAX,
                    2 => -(next() as i32 & 0x7FFF_FFFF),
                    3 => i32::MIN,
                    _ => (1 << 30) | (next() as i32 & 0x3FFF_FFFF),
                };
                let r = Requant { multiplier, shift };
                let s = SmallRequant::new(r);
                for a in (-20_000..=20_000).chain([i32::MIN, i32::MAX]) {
                    let want = r.apply(i64::from(a));
                    assert_eq!(s.apply(i64::from(a)), want, "{r:?} {a}");
                    for got in [s.apply32(a), s.apply_high(a), s.apply_small(a)]
                        .into_iter()
                        .flatten()
                    {
                        assert_eq!(i64::from(got), want, "{r:?} {a}");
                    }
                    let n = 31 + i32::from(shift);
                    if (16..=32).contains(&n) && (-16384..=16383).contains(&a) {
                        assert!(s.apply_high(a).is_some(), "{r:?} {a}");
                    }
                }
                assert_eq!(s.apply(1 << 40), r.apply(1 << 40));
            }
        }
    }

    #[test]
    fn sat_i16_32_matches_sat_i16() {
        for v in [i32::MIN, -32769, -32768, -1, 0, 32767, 32768, i32::MAX] {
            assert_eq!(sat_i16_32(v), sat_i16(i64::from(v)));
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
