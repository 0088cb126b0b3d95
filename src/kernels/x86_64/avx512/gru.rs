//! The integer GRU update (`reset_after = true`) and SimpleRNN's output codes on the AVX-512
//! tables: 16 units per step, the integer cell's scalar formulas on 32-bit lanes, with the
//! LSTM kernel's table lookups (`lstm.rs`).
//!
//! * `r * cand_h`: `r` is a sigmoid value (`0..2^15`), so for `|cand_h| <= 2^16` the product
//!   and its rounding term stay inside i32 (`32767 * 2^16 + 2^14 < 2^31`). The candidate's
//!   input side is clamped to `+-2^17` before the sum: the rounded product is at most `2^15`
//!   in size, so the sum saturates to the same i16 as the exact one.
//! * The blend `z * h + (2^15 - z) * cand`: both weights are not negative and sum to `2^15`,
//!   and `|h|, |cand| <= 2^15`, so it is at most `2^30` in size, exact in 32 bits.
//! * The two requantizations (`h` codes to Q0.15, Q0.15 to codes) are `Requant::apply`'s own
//!   formula, `(a * m + 2^(n-1)) >> n`, on 64-bit lanes (`vpmuldq` of the even and the odd
//!   lanes): exact for any multiplier and `n <= 62` when `a` fits i32, which holds for
//!   `a = code - zero` with `|code| <= 2^30` and `|zero| <= 2^16`. For `n > 62` `apply` gives
//!   0 for `|a * m| < 2^62` (here always: `|a| < 2^31`), as the formula does with `m = 0`.
//!   The clamps run on the 64-bit values, so every result fits i32 before it is narrowed.
//!
//! The GRU kernel declines (returns `false` before writing) when an `h` code or a zero point
//! is out of those ranges, or a `cand_h` value exceeds `2^16` in size: never for a real
//! model's step, and the cell's scalar step then gives the same bits.

use core::arch::x86_64::*;

use super::lstm::{lookup, round15};
use crate::format::Activation;
use crate::kernels::x86_64::lstm::{SIGMOID_PAIRS, TANH_PAIRS};
use crate::kernels::{CodeParams, GruGates};
use crate::quant::fixed::{MAX_SHIFT, MIN_SHIFT};
use crate::quant::Requant;

/// Units per step.
const LANES: usize = 16;

/// `Requant::apply` prepared for the 64-bit lanes: `m` and `n` (`m = 0`, `n = 62` when
/// `n > 62`), and the rounding term.
#[derive(Clone, Copy)]
struct Apply {
    multiplier: i32,
    shift: i32,
    half: i64,
}

impl Apply {
    fn new(requant: Requant) -> Self {
        let n = 31 + i32::from(requant.shift.clamp(MIN_SHIFT, MAX_SHIFT));
        let (multiplier, n) = if n > 62 {
            (0, 62)
        } else {
            (requant.multiplier, n.max(1))
        };
        Self {
            multiplier,
            shift: n,
            half: 1i64 << (n - 1),
        }
    }
}

/// The registers of one [`Apply`] and the clamp after it.
#[derive(Clone, Copy)]
struct Wide {
    m: __m512i,
    half: __m512i,
    shift: __m128i,
    /// Added after the shift (the zero point of output codes, else 0).
    zero: __m512i,
    lo: __m512i,
    hi: __m512i,
}

impl Wide {
    /// `clamp(zero + apply(a), lo, hi)` (`lo` wins if the bounds cross).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn new(apply: Apply, zero: i32, lo: i32, hi: i32) -> Self {
        Self {
            m: _mm512_set1_epi64(i64::from(apply.multiplier)),
            half: _mm512_set1_epi64(apply.half),
            shift: _mm_cvtsi32_si128(apply.shift),
            zero: _mm512_set1_epi64(i64::from(zero)),
            lo: _mm512_set1_epi64(i64::from(lo)),
            hi: _mm512_set1_epi64(i64::from(hi)),
        }
    }

    /// The map of each i32 lane of `a`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn map(&self, a: __m512i) -> __m512i {
        // `vpmuldq` multiplies the low (signed) halves of the 64-bit lanes: the even lanes,
        // then the odd ones shifted down.
        let even = self.finish(_mm512_mul_epi32(a, self.m));
        let odd = self.finish(_mm512_mul_epi32(_mm512_srli_epi64::<32>(a), self.m));
        _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd))
    }

    /// The rounding shift, the zero point and the clamp of 64-bit products.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn finish(&self, p: __m512i) -> __m512i {
        let r = _mm512_sra_epi64(_mm512_add_epi64(p, self.half), self.shift);
        let v = _mm512_add_epi64(r, self.zero);
        _mm512_max_epi64(_mm512_min_epi64(v, self.hi), self.lo)
    }
}

/// The lanes of a step that hold units: all 16, or the tail's.
#[inline]
fn mask(left: usize) -> __mmask16 {
    if left >= LANES {
        0xFFFF
    } else {
        (1u16 << left) - 1
    }
}

/// The `avx512` tables' `gru_units_i8`.
pub(super) fn avx512_gru_units_i8(
    gates: &GruGates<'_>,
    h: &mut [i32],
    h_to_q15: Requant,
    codes: &CodeParams,
) -> bool {
    super::count();
    let zero_fits = |zero: i32| (-(1 << 16)..=1 << 16).contains(&zero);
    if !zero_fits(codes.zero) {
        return false;
    }
    let units = [gates.z, gates.r, gates.cand_x, gates.cand_h]
        .iter()
        .map(|g| g.len())
        .fold(h.len(), usize::min);
    // SAFETY: reachable only through the `avx512` tables, which `kernels()` hands out only
    // after checking AVX-512 F, BW and VL; every slice holds `units` values.
    unsafe { gru_units(gates, &mut h[..units], h_to_q15, codes) }
}

/// The GRU update of the units of `h` (see [`avx512_gru_units_i8`]).
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL; every gate slice must hold `h.len()` values.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn gru_units(
    gates: &GruGates<'_>,
    h: &mut [i32],
    h_to_q15: Requant,
    codes: &CodeParams,
) -> bool {
    let units = h.len();
    let (zp, rp, cxp, chp) = (
        gates.z.as_ptr(),
        gates.r.as_ptr(),
        gates.cand_x.as_ptr(),
        gates.cand_h.as_ptr(),
    );
    let hp = h.as_mut_ptr();
    // First the ranges the 32-bit formulas need, over every unit, before anything is written.
    let clamp = |v: __m512i, bound: i32| {
        _mm512_min_epi32(
            _mm512_max_epi32(v, _mm512_set1_epi32(-bound)),
            _mm512_set1_epi32(bound),
        )
    };
    let mut k = 0;
    while k < units {
        let m = mask(units - k);
        // SAFETY: lanes `k..k + 16` under the mask are within every slice (see `# Safety`);
        // masked-out lanes are not read.
        let (hv, hh) = unsafe {
            (
                _mm512_maskz_loadu_epi32(m, hp.add(k)),
                _mm512_maskz_loadu_epi32(m, chp.add(k)),
            )
        };
        let outside = _mm512_mask_cmpneq_epi32_mask(m, hv, clamp(hv, 1 << 30))
            | _mm512_mask_cmpneq_epi32_mask(m, hh, clamp(hh, 1 << 16));
        if outside != 0 {
            return false;
        }
        k += LANES;
    }
    let q15 = Wide::new(Apply::new(h_to_q15), 0, -32768, 32768);
    let out = Wide::new(Apply::new(codes.requant), codes.zero, codes.lo, codes.hi);
    let zero = _mm512_set1_epi32(codes.zero);
    let (cand_lo, cand_hi) = (_mm512_set1_epi32(-(1 << 17)), _mm512_set1_epi32(1 << 17));
    let one = _mm512_set1_epi32(1 << 15);
    let mut k = 0;
    while k < units {
        let m = mask(units - k);
        // SAFETY: as above; masked-out lanes are neither read nor written.
        let (z, r, cx, hh, hv) = unsafe {
            (
                _mm512_maskz_loadu_epi32(m, zp.add(k)),
                _mm512_maskz_loadu_epi32(m, rp.add(k)),
                _mm512_maskz_loadu_epi32(m, cxp.add(k)),
                _mm512_maskz_loadu_epi32(m, chp.add(k)),
                _mm512_maskz_loadu_epi32(m, hp.add(k)),
            )
        };
        let z = _mm512_max_epi32(lookup(&SIGMOID_PAIRS, z), _mm512_setzero_si512());
        let r = _mm512_max_epi32(lookup(&SIGMOID_PAIRS, r), _mm512_setzero_si512());
        let gated = round15(_mm512_mullo_epi32(r, hh));
        let cx = _mm512_min_epi32(_mm512_max_epi32(cx, cand_lo), cand_hi);
        // `lookup` saturates its argument to i16.
        let cand = lookup(&TANH_PAIRS, _mm512_add_epi32(cx, gated));
        let old = q15.map(_mm512_sub_epi32(hv, zero));
        let blend = _mm512_add_epi32(
            _mm512_mullo_epi32(z, old),
            _mm512_mullo_epi32(_mm512_sub_epi32(one, z), cand),
        );
        let code = out.map(round15(blend));
        // SAFETY: as above.
        unsafe { _mm512_mask_storeu_epi32(hp.add(k), m, code) };
        k += LANES;
    }
    true
}

/// The `avx512` tables' `activate_codes_i8`: sigmoid and tanh.
pub(super) fn avx512_activate_codes_i8(
    activation: Activation,
    pre: &[i32],
    h: &mut [i32],
    codes: &CodeParams,
) -> bool {
    super::count();
    // `lut::sigmoid_q15` clamps its values at 0; tanh's need no clamp.
    let (table, floor) = match activation {
        Activation::Sigmoid => (&SIGMOID_PAIRS, 0),
        Activation::Tanh => (&TANH_PAIRS, i32::MIN),
        _ => return false,
    };
    let units = pre.len().min(h.len());
    // SAFETY: reachable only through the `avx512` tables, which `kernels()` hands out only
    // after checking AVX-512 F, BW and VL; both slices hold `units` values.
    unsafe { activate_codes(table, floor, &pre[..units], &mut h[..units], codes) };
    true
}

/// `h = codes(max(table(sat16(pre)), floor))`.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL; `pre` must hold `h.len()` values.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn activate_codes(
    table: &[i32; 256],
    floor: i32,
    pre: &[i32],
    h: &mut [i32],
    codes: &CodeParams,
) {
    let units = h.len();
    let out = Wide::new(Apply::new(codes.requant), codes.zero, codes.lo, codes.hi);
    let floor = _mm512_set1_epi32(floor);
    let (pp, hp) = (pre.as_ptr(), h.as_mut_ptr());
    let mut k = 0;
    while k < units {
        let m = mask(units - k);
        // SAFETY: lanes `k..k + 16` under the mask are within both slices (see `# Safety`);
        // masked-out lanes are neither read nor written.
        let p = unsafe { _mm512_maskz_loadu_epi32(m, pp.add(k)) };
        let v = _mm512_max_epi32(lookup(table, p), floor);
        let code = out.map(v);
        // SAFETY: as above.
        unsafe { _mm512_mask_storeu_epi32(hp.add(k), m, code) };
        k += LANES;
    }
}
