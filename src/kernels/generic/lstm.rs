//! The reference LSTM gate kernel of the integer cells, for the usual activation pair
//! (sigmoid gates, tanh candidate and output).

use crate::kernels::{LstmGates, LstmParams};
use crate::quant::fixed::{sat_i16, sat_i16_32, shift_round, shift_round32, ToCodes};
use crate::quant::lut;

/// The LSTM update of a block of units from the pre-activations `gates` (i, f, c, o; Q3.12,
/// saturated to i16 on the way into the tables), with sigmoid gates and tanh: `c` (cell state
/// codes in `params.cell_frac` fractional bits) and `h` (output codes) updated in place, over
/// the units every slice holds.
///
/// This is the integer LSTM step of [`crate::cell`] (its `lstm_units` with
/// [`lut::sigmoid_q15`] and [`lut::tanh_q15`]), stated once more here so every kernel table
/// has it; the conformance suite holds each table to a 64-bit oracle of the same formulas:
///
/// * `input = round(i * g >> (30 - frac))`, `c = sat16(round(f * c >> 15) + input)`;
/// * `h = clamp(zero + requant(round(o * tanh(sat16(c in Q3.12)) >> 15)), lo, hi)`.
///
/// Gate values are Q0.15 (`|v| <= 2^15`), so every product is at most `2^30` and the rounding
/// shifts are exact in 32 bits; a cell value outside i16 (a caller-written state; no step
/// writes one) takes 64 bits.
pub fn lstm_units_i8(gates: LstmGates<'_>, c: &mut [i32], h: &mut [i32], params: &LstmParams) {
    let codes = ToCodes::new(params.requant, params.zero, params.lo, params.hi);
    let frac = u32::from(params.cell_frac.min(15));
    let (up, down) = (12u32.saturating_sub(frac), frac.saturating_sub(12));
    // `((c << up) + half) >> down` is the cell value in Q3.12: one of the shifts is 0, and
    // with `half = 2^(down-1)` (0 for `down = 0`) the right shift rounds as `shift_round32`.
    // `|c| <= 2^15` and `up <= 12`: no overflow.
    let half = (1i32 << down) >> 1;
    let sigmoid = |p: i32| i32::from(lut::sigmoid_q15(sat_i16_32(p)));
    let tanh = |p: i32| i32::from(lut::tanh_q15(sat_i16_32(p)));
    let [gi, gf, gc, go] = gates;
    for (((((hv, cv), &pi), &pf), &pc), &po) in h
        .iter_mut()
        .zip(c.iter_mut())
        .zip(gi)
        .zip(gf)
        .zip(gc)
        .zip(go)
    {
        let (i, f, g, o) = (sigmoid(pi), sigmoid(pf), tanh(pc), sigmoid(po));
        let input = shift_round32(i * g, 30 - frac);
        let c_new = match i16::try_from(*cv) {
            Ok(c) => (shift_round32(f * i32::from(c), 15) + input).clamp(-32768, 32767),
            Err(_) => wide_cell(f, *cv, input),
        };
        *cv = c_new;
        let t = tanh((((c_new << up) + half) >> down).clamp(-32768, 32767));
        // o * t is Q0.30; the output requantizer maps Q0.15, so drop 15 bits first.
        *hv = codes.code(shift_round32(o * t, 15));
    }
}

/// `sat16(round(f * c >> 15) + input)` for a cell value outside i16, in 64 bits.
#[cold]
#[inline(never)]
fn wide_cell(f: i32, c: i32, input: i32) -> i32 {
    let forget = shift_round(i64::from(f) * i64::from(c), 15);
    i32::from(sat_i16(forget + i64::from(input)))
}
