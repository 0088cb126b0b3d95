//! The integer LSTM gate kernel of the AVX2 table: the AVX-512 kernel's arithmetic
//! (`avx512/lstm.rs`, whose docs give the rules and why they are exact) on 8 lanes, with
//! `vpgatherdd` for the table lookups and `vpmaskmovd` for the last units.

use core::arch::x86_64::*;

use crate::kernels::x86_64::lstm::{Output, SIGMOID_PAIRS, TANH_PAIRS};
use crate::kernels::{generic, LstmGates, LstmParams};

/// Units per step.
const LANES: usize = 8;

/// The AVX2 table's `lstm_units_i8`.
pub(super) fn avx2_lstm_units_i8(
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
    // SAFETY: reachable only through the AVX2 table, which `kernels()` hands out only after
    // checking AVX2 and FMA; every slice holds `units` values.
    unsafe { lstm_units(gates, &mut c[..units], &mut h[..units], params, output) }
}

/// `lut`'s interpolation of `table` (sigmoid or tanh pairs) at the pre-activations `p`
/// (saturated to i16 first).
#[inline]
#[target_feature(enable = "avx2")]
fn lookup(table: &[i32; 256], p: __m256i) -> __m256i {
    let x = _mm256_min_epi32(
        _mm256_max_epi32(p, _mm256_set1_epi32(-32768)),
        _mm256_set1_epi32(32767),
    );
    let u = _mm256_add_epi32(x, _mm256_set1_epi32(32768));
    let index = _mm256_srli_epi32::<8>(u);
    let frac = _mm256_and_si256(u, _mm256_set1_epi32(0xFF));
    // SAFETY: `index` is within 0..=255 (`u` is within 0..=65535), and `table` holds 256
    // values.
    let pair = unsafe { _mm256_i32gather_epi32::<4>(table.as_ptr(), index) };
    let sample = _mm256_srai_epi32::<16>(_mm256_slli_epi32::<16>(pair));
    let step = _mm256_srai_epi32::<16>(pair);
    let delta = _mm256_mullo_epi32(step, frac);
    _mm256_add_epi32(
        sample,
        _mm256_srai_epi32::<8>(_mm256_add_epi32(delta, _mm256_set1_epi32(128))),
    )
}

/// `v` clamped to i16.
#[inline]
#[target_feature(enable = "avx2")]
fn sat16(v: __m256i) -> __m256i {
    _mm256_min_epi32(
        _mm256_max_epi32(v, _mm256_set1_epi32(-32768)),
        _mm256_set1_epi32(32767),
    )
}

/// `(v + 2^14) >> 15`: `shift_round32(v, 15)`.
#[inline]
#[target_feature(enable = "avx2")]
fn round15(v: __m256i) -> __m256i {
    _mm256_srai_epi32::<15>(_mm256_add_epi32(v, _mm256_set1_epi32(1 << 14)))
}

/// The units of `c` and `h` (all slices at least that long).
///
/// # Safety
/// The CPU must have AVX2; every gate slice must hold `c.len()` values, and
/// `h` as many.
#[target_feature(enable = "avx2")]
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
    let input_half = _mm256_set1_epi32(1 << (29 - frac));
    let (up, down) = ((12 - frac).max(0), (frac - 12).max(0));
    let (up, down, cell_half) = (
        _mm_cvtsi32_si128(up),
        _mm_cvtsi32_si128(down),
        _mm256_set1_epi32((1 << down) >> 1),
    );
    let (m_high, m_low) = (
        _mm256_set1_epi32(output.high),
        _mm256_set1_epi32(output.low),
    );
    let code_shift = _mm_cvtsi32_si128(output.shift);
    let (zero, lo, hi) = (
        _mm256_set1_epi32(params.codes.zero),
        _mm256_set1_epi32(params.codes.lo),
        _mm256_set1_epi32(params.codes.hi),
    );
    let one = _mm256_set1_epi32(1);
    let [gi, gf, gc, go] = gates.map(<[i32]>::as_ptr);
    let mut k = 0;
    while k < units {
        // Taken afresh each step: the fallback below borrows `c` and `h` again.
        let (cp, hp) = (c.as_mut_ptr(), h.as_mut_ptr());
        let left = units - k;
        // Lane `j` active when `j < left`: all ones there.
        let m = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(left.min(LANES) as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        // SAFETY: lanes `k..k + 8` under the mask are within every slice (see `# Safety`);
        // masked-out lanes are neither read nor written (they read as 0, which passes the
        // check below).
        let old = unsafe { _mm256_maskload_epi32(cp.add(k), m) };
        if _mm256_movemask_epi8(_mm256_cmpeq_epi32(old, sat16(old))) != -1 {
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
                _mm256_maskload_epi32(gi.add(k), m),
                _mm256_maskload_epi32(gf.add(k), m),
                _mm256_maskload_epi32(gc.add(k), m),
                _mm256_maskload_epi32(go.add(k), m),
            )
        };
        let i = _mm256_max_epi32(lookup(&SIGMOID_PAIRS, pi), _mm256_setzero_si256());
        let f = _mm256_max_epi32(lookup(&SIGMOID_PAIRS, pf), _mm256_setzero_si256());
        let g = lookup(&TANH_PAIRS, pc);
        let o = _mm256_max_epi32(lookup(&SIGMOID_PAIRS, po), _mm256_setzero_si256());
        let input = _mm256_sra_epi32(
            _mm256_add_epi32(_mm256_mullo_epi32(i, g), input_half),
            input_shift,
        );
        let cell = sat16(_mm256_add_epi32(round15(_mm256_mullo_epi32(f, old)), input));
        // SAFETY: as above.
        unsafe { _mm256_maskstore_epi32(cp.add(k), m, cell) };
        let q12 = _mm256_sra_epi32(
            _mm256_add_epi32(_mm256_sll_epi32(cell, up), cell_half),
            down,
        );
        let t = lookup(&TANH_PAIRS, sat16(q12));
        let v = round15(_mm256_mullo_epi32(o, t));
        // mul_high(v, m) = (v * mh + ((v * ml) >> 16)) >> 16 for |v| <= 2^15.
        let high = _mm256_srai_epi32::<16>(_mm256_add_epi32(
            _mm256_mullo_epi32(v, m_high),
            _mm256_srai_epi32::<16>(_mm256_mullo_epi32(v, m_low)),
        ));
        let r = _mm256_srai_epi32::<1>(_mm256_add_epi32(_mm256_sra_epi32(high, code_shift), one));
        let code = _mm256_max_epi32(_mm256_min_epi32(_mm256_add_epi32(r, zero), hi), lo);
        // SAFETY: as above.
        unsafe { _mm256_maskstore_epi32(hp.add(k), m, code) };
        k += LANES;
    }
}
