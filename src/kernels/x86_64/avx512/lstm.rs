//! The integer LSTM gate kernel of the AVX-512 tables: 16 units per step, the same formulas as
//! [`generic::lstm::lstm_units_i8`] on 32-bit lanes.
//!
//! * Table lookups: the pre-activation saturated to i16, `u = x + 2^15` split into an index
//!   (`u >> 8`) and a fraction (`u & 255`); one `vpgatherdd` reads the sample and the step to
//!   the next ([`crate::kernels::x86_64::lstm`]), and `a + ((step * frac + 128) >> 8)` is `lut`'s
//!   interpolation (sigmoid then clamped at 0).
//! * Products of Q0.15 values are at most `2^30` in size, so `vpmulld` and the rounding shifts
//!   are the scalar kernel's 32-bit arithmetic.
//! * The output code: `ToCodes::code`'s 32-bit rule, `((mul_high(v, m) >> (n - 33)) + 1) >> 1`
//!   with `n = 31 + shift`, `mul_high` from two 32-bit products (`mul_high_q15`, exact for
//!   `|v| <= 2^15`); it equals the rounded product for `n` in `33..=62` and gives the 128-bit
//!   path's 0 beyond (see `ToCodes::code`). The sum with the zero point cannot overflow for
//!   `|zero| <= 2^30` (the rounded value is below `2^14` in size).
//!
//! Anything else runs the generic kernel: output factors with `n < 33` or a negative
//! multiplier or a huge zero point (the whole call), and a group of 16 units where a cell
//! value is outside i16 (no step writes one).

use core::arch::x86_64::*;

use crate::kernels::x86_64::lstm::{Output, SIGMOID_PAIRS, TANH_PAIRS};
use crate::kernels::{generic, LstmGates, LstmParams};

/// Units per step.
const LANES: usize = 16;

/// The `avx512` tables' `lstm_units_i8`.
pub(super) fn avx512_lstm_units_i8(
    gates: LstmGates<'_>,
    c: &mut [i32],
    h: &mut [i32],
    params: &LstmParams,
) {
    super::count();
    let Some(output) = Output::new(params) else {
        return generic::lstm::lstm_units_i8(gates, c, h, params);
    };
    let units = gates
        .iter()
        .map(|g| g.len())
        .fold(c.len().min(h.len()), usize::min);
    // SAFETY: reachable only through the `avx512` tables, which `kernels()` hands out only
    // after checking AVX-512 F, BW and VL; every slice holds `units` values.
    unsafe { lstm_units(gates, &mut c[..units], &mut h[..units], params, output) }
}

/// `lut`'s interpolation of `table` (sigmoid or tanh pairs) at the pre-activations `p`
/// (saturated to i16 first).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn lookup(table: &[i32; 256], p: __m512i) -> __m512i {
    let x = _mm512_min_epi32(
        _mm512_max_epi32(p, _mm512_set1_epi32(-32768)),
        _mm512_set1_epi32(32767),
    );
    let u = _mm512_add_epi32(x, _mm512_set1_epi32(32768));
    let index = _mm512_srli_epi32::<8>(u);
    let frac = _mm512_and_si512(u, _mm512_set1_epi32(0xFF));
    // SAFETY: `index` is within 0..=255 (`u` is within 0..=65535), and `table` holds 256
    // values.
    let pair = unsafe { _mm512_i32gather_epi32::<4>(index, table.as_ptr().cast()) };
    let sample = _mm512_srai_epi32::<16>(_mm512_slli_epi32::<16>(pair));
    let step = _mm512_srai_epi32::<16>(pair);
    let delta = _mm512_mullo_epi32(step, frac);
    _mm512_add_epi32(
        sample,
        _mm512_srai_epi32::<8>(_mm512_add_epi32(delta, _mm512_set1_epi32(128))),
    )
}

/// `v` clamped to i16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn sat16(v: __m512i) -> __m512i {
    _mm512_min_epi32(
        _mm512_max_epi32(v, _mm512_set1_epi32(-32768)),
        _mm512_set1_epi32(32767),
    )
}

/// `(v + 2^14) >> 15`: `shift_round32(v, 15)`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn round15(v: __m512i) -> __m512i {
    _mm512_srai_epi32::<15>(_mm512_add_epi32(v, _mm512_set1_epi32(1 << 14)))
}

/// The units of `c` and `h` (all slices at least that long).
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL; every gate slice must hold `c.len()` values, and
/// `h` as many.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn lstm_units(
    gates: LstmGates<'_>,
    c: &mut [i32],
    h: &mut [i32],
    params: &LstmParams,
    output: Output,
) {
    let units = c.len();
    let frac = i32::from(params.cell_frac.min(15));
    // The scalar kernel's shifts (see `generic::lstm`): the input gate product by
    // `30 - frac` (15..=30) with rounding, the cell value to Q3.12 by `up` or `down`.
    let input_shift = _mm_cvtsi32_si128(30 - frac);
    let input_half = _mm512_set1_epi32(1 << (29 - frac));
    let (up, down) = ((12 - frac).max(0), (frac - 12).max(0));
    let (up, down, cell_half) = (
        _mm_cvtsi32_si128(up),
        _mm_cvtsi32_si128(down),
        _mm512_set1_epi32((1 << down) >> 1),
    );
    let (m_high, m_low) = (
        _mm512_set1_epi32(output.high),
        _mm512_set1_epi32(output.low),
    );
    let code_shift = _mm_cvtsi32_si128(output.shift);
    let (zero, lo, hi) = (
        _mm512_set1_epi32(params.codes.zero),
        _mm512_set1_epi32(params.codes.lo),
        _mm512_set1_epi32(params.codes.hi),
    );
    let one = _mm512_set1_epi32(1);
    let [gi, gf, gc, go] = gates.map(<[i32]>::as_ptr);
    let mut k = 0;
    while k < units {
        // Taken afresh each step: the fallback below borrows `c` and `h` again.
        let (cp, hp) = (c.as_mut_ptr(), h.as_mut_ptr());
        let left = units - k;
        let m: __mmask16 = if left >= LANES {
            0xFFFF
        } else {
            (1u16 << left) - 1
        };
        // SAFETY: lanes `k..k + 16` under the mask are within every slice (see `# Safety`);
        // masked-out lanes are neither read nor written.
        let old = unsafe { _mm512_maskz_loadu_epi32(m, cp.add(k)) };
        if _mm512_mask_cmpneq_epi32_mask(m, old, sat16(old)) != 0 {
            let end = units.min(k + LANES);
            let [gi, gf, gc, go] = gates.map(|g| g.get(k..end).unwrap_or(&[]));
            let (c, h) = (c.get_mut(k..end), h.get_mut(k..end));
            if let (Some(c), Some(h)) = (c, h) {
                generic::lstm::lstm_units_i8([gi, gf, gc, go], c, h, params);
            }
            k += LANES;
            continue;
        }
        // SAFETY: as above.
        let (pi, pf, pc, po) = unsafe {
            (
                _mm512_maskz_loadu_epi32(m, gi.add(k)),
                _mm512_maskz_loadu_epi32(m, gf.add(k)),
                _mm512_maskz_loadu_epi32(m, gc.add(k)),
                _mm512_maskz_loadu_epi32(m, go.add(k)),
            )
        };
        let i = _mm512_max_epi32(lookup(&SIGMOID_PAIRS, pi), _mm512_setzero_si512());
        let f = _mm512_max_epi32(lookup(&SIGMOID_PAIRS, pf), _mm512_setzero_si512());
        let g = lookup(&TANH_PAIRS, pc);
        let o = _mm512_max_epi32(lookup(&SIGMOID_PAIRS, po), _mm512_setzero_si512());
        let input = _mm512_sra_epi32(
            _mm512_add_epi32(_mm512_mullo_epi32(i, g), input_half),
            input_shift,
        );
        let cell = sat16(_mm512_add_epi32(round15(_mm512_mullo_epi32(f, old)), input));
        // SAFETY: as above.
        unsafe { _mm512_mask_storeu_epi32(cp.add(k), m, cell) };
        let q12 = _mm512_sra_epi32(
            _mm512_add_epi32(_mm512_sll_epi32(cell, up), cell_half),
            down,
        );
        let t = lookup(&TANH_PAIRS, sat16(q12));
        let v = round15(_mm512_mullo_epi32(o, t));
        // mul_high(v, m) = (v * mh + ((v * ml) >> 16)) >> 16 for |v| <= 2^15.
        let high = _mm512_srai_epi32::<16>(_mm512_add_epi32(
            _mm512_mullo_epi32(v, m_high),
            _mm512_srai_epi32::<16>(_mm512_mullo_epi32(v, m_low)),
        ));
        let r = _mm512_srai_epi32::<1>(_mm512_add_epi32(_mm512_sra_epi32(high, code_shift), one));
        let code = _mm512_max_epi32(_mm512_min_epi32(_mm512_add_epi32(r, zero), hi), lo);
        // SAFETY: as above.
        unsafe { _mm512_mask_storeu_epi32(hp.add(k), m, code) };
        k += LANES;
    }
}
