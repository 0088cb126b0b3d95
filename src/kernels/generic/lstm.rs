//! The integer LSTM's per-unit update: from the four gates' pre-activations to the new cell
//! state and `h` codes. The generic table's gate kernel, and the loop the cells run for any
//! other activation pair.

use crate::kernels::{LstmGates, LstmParams};
use crate::quant::fixed::{sat_i16, sat_i16_32, shift_round, shift_round32, ToCodes};
use crate::quant::lut;

/// The per-unit update (this module's `lstm_units`) with sigmoid gates and tanh, the pair
/// [`crate::kernels::Kernels::lstm_units_i8`] covers: the reference the conformance suite holds
/// every table's gate kernel to.
pub fn lstm_units_i8(gates: LstmGates<'_>, c: &mut [i32], h: &mut [i32], params: &LstmParams) {
    let p = &params.codes;
    let codes = ToCodes::new(p.requant, p.zero, p.lo, p.hi);
    let cell = CellFormat::new(params.cell_frac);
    lstm_units::<true>(
        gates,
        c,
        h,
        cell,
        &codes,
        lut::sigmoid_q15_sat,
        lut::tanh_q15_sat,
    );
}

/// The cell state's fractional bits `frac` (`0..=15`) and its conversion to Q3.12.
#[derive(Clone, Copy)]
pub(crate) struct CellFormat {
    frac: u32,
    /// `frac + 3`: the shift of [`CellFormat::q12`].
    shift: u32,
    /// `2^(frac + 2)`: its rounding term.
    half: i32,
}

impl CellFormat {
    pub(crate) fn new(frac: u8) -> Self {
        let frac = u32::from(frac.min(15));
        Self {
            frac,
            shift: frac + 3,
            half: 1 << (frac + 2),
        }
    }

    /// A cell value `c` (`|c| <= 2^15`) in Q3.12: `shift_round32(c, frac - 12)` for
    /// `frac >= 12`, else `c << (12 - frac)`, as one rounding shift of `c * 2^15` by
    /// `frac + 3`: `floor((c * 2^15 + 2^(frac+2)) / 2^(frac+3))` is
    /// `floor((c + 2^(frac-13)) / 2^(frac-12))` for `frac >= 13` (numerator and denominator
    /// divided by `2^15`), `c + floor(1/2) = c` for `frac = 12`, and
    /// `c * 2^(12-frac) + floor(1/2)` below. One shift amount and one rounding term instead
    /// of two shifts and a term: a register fewer in the gate loop (test
    /// `cell_q12_matches_the_two_shifts`). `|c * 2^15| <= 2^30` and the term is at most
    /// `2^17`: no overflow.
    #[inline]
    fn q12(&self, c: i32) -> i32 {
        ((c << 15) + self.half) >> self.shift
    }
}

/// The LSTM update of a block of units from the pre-activations `gates` (i, f, c, o; Q3.12),
/// with the recurrent activation `ra` and the activation `a` (Q3.12 in, Q0.15 out): `c` (cell
/// state codes in `cell`'s format) and `h` (output codes, as `codes` maps a Q0.15 value)
/// updated in place, over the units every slice holds:
///
/// * `input = round(i * g >> (30 - frac))`, `c = sat16(round(f * c >> 15) + input)`;
/// * `h = codes(round(o * a(sat16(c in Q3.12)) >> 15))`.
///
/// `SPECIALIZE` for the usual activations, whose loop gets a copy for the common codes. The
/// cells run it for activation pairs other than sigmoid/tanh; for that pair it is the generic
/// table's [`lstm_units_i8`], the reference every table's gate kernel is held to.
// Out of line with `small`: its registers then spill into its own frame, not into the cell's,
// which holds the gate block while the projections run (less peak stack).
#[cfg_attr(not(feature = "small"), inline)]
#[cfg_attr(feature = "small", inline(never))]
pub(crate) fn lstm_units<const SPECIALIZE: bool>(
    gates: LstmGates<'_>,
    c: &mut [i32],
    h: &mut [i32],
    cell: CellFormat,
    codes: &ToCodes,
    ra: impl Fn(i32) -> i32,
    a: impl Fn(i32) -> i32,
) {
    let [gi, gf, gc, go] = gates;
    // The second pass must stop where the first did.
    let units = [h.len(), c.len(), gi.len(), gf.len(), gc.len(), go.len()]
        .into_iter()
        .min()
        .unwrap_or(0);
    let Some(h) = h.get_mut(..units) else {
        return;
    };
    for (((((hv, cv), &pi), &pf), &pc), &po) in h
        .iter_mut()
        .zip(c.iter_mut())
        .zip(gi)
        .zip(gf)
        .zip(gc)
        .zip(go)
    {
        // Gate values are Q0.15 (|v| <= 2^15), so every product below is at most 2^30 and
        // the rounding shifts are exact in 32 bits (64-bit products are library calls on
        // Cortex-M0); only a cell value outside i16, which no step writes, takes 64 bits.
        let (i, f, g, o) = (ra(pi), ra(pf), a(pc), ra(po));
        let input = shift_round32(i * g, 30 - cell.frac);
        // `c` fits i16 when saturating leaves it unchanged: one `ssat` and a compare on
        // Cortex-M4, no 0xFFFF0000 constant to build.
        let c = *cv;
        let c_new = if i32::from(sat_i16_32(c)) == c {
            (shift_round32(f * c, 15) + input).clamp(-32768, 32767)
        } else {
            wide_cell(f, c, input)
        };
        *cv = c_new;
        let t = a(cell.q12(c_new).clamp(-32768, 32767));
        // o * t is Q0.30; output_requant maps Q0.15, so drop 15 bits first. |o * t| <= 2^30,
        // so the Q0.15 value is in [-2^15, 2^15], where `ToCodes` never leaves 32 bits.
        *hv = shift_round32(o * t, 15);
    }
    // The output codes in a second pass: the gate loop keeps fewer constants in registers,
    // and (for the usual activations) under the test the compiler drops the per-unit test
    // of the fast path and clamps int8 codes with one `ssat` (about 60 bytes of code for 12
    // instructions per unit on a Cortex-M4).
    #[allow(clippy::if_same_then_else)]
    if SPECIALIZE && codes.is_fast() && codes.bounds() == (-128, 127) {
        to_codes(h, codes);
    } else {
        to_codes(h, codes);
    }
}

/// `v = codes.code(v)` over `values`. Inlined into each caller, so a caller's tests
/// specialize it.
#[inline(always)]
fn to_codes(values: &mut [i32], codes: &ToCodes) {
    // A local copy, whose address nothing takes: its fields stay in registers. The caller's
    // (built out of line) is in memory the stores to `values` might alias for all LLVM
    // knows, so it reloaded two of them for every value.
    let codes = *codes;
    for v in values.iter_mut() {
        *v = codes.code(*v);
    }
}

/// `sat16(round(f * c >> 15) + input)` for a cell value outside i16 (a caller-written state;
/// no step writes one), in 64 bits. Out of line: the gate loop never takes it.
#[cold]
#[inline(never)]
fn wide_cell(f: i32, c: i32, input: i32) -> i32 {
    let forget = shift_round(i64::from(f) * i64::from(c), 15);
    i32::from(sat_i16(forget + i64::from(input)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The branch-free conversion to Q3.12 against the two-branch rule, exhaustively.
    #[test]
    fn cell_q12_matches_the_two_shifts() {
        for frac in 0..=20u8 {
            let cell = CellFormat::new(frac);
            let f = u32::from(frac.min(15));
            for c in -32768..=32767 {
                let want = if f >= 12 {
                    shift_round32(c, f - 12)
                } else {
                    c << (12 - f)
                };
                assert_eq!(cell.q12(c), want, "{frac} {c}");
            }
        }
    }
}
