//! Integer cells: one time step of SimpleRNN, LSTM, GRU and Dense on integer codes.
//!
//! The scheme (formats, rounding, folding of zero points) is written down in [`crate::quant`];
//! these functions implement it. Values live in `i32` slices: activation codes (int8 or int16
//! range), Q3.12 gate pre-activations and Q0.15 gate outputs.

use super::CellSpec;
use crate::format::{Activation, Cell, DenseQuant, RecurrentQuant};
use crate::kernels::generic::lstm;
use crate::kernels::{
    dot_rows_i8, pack_i16, packed_len, pair_for, project_rows_with, project_split_i8, I32View,
    ProjectionI8, RequantView, RowsI8, WeightLayout,
};
use crate::quant::fixed::{
    clamp_to, sat_i16, sat_i16_32, shift_round, shift_round32, SmallRequant, ToCodes,
};
use crate::quant::lut;

/// One direction's integer weights, as views into the blob.
#[derive(Debug, Clone, Copy, Default)]
pub struct IntDirectionViews<'a> {
    /// `[gates * units, input_width]` i8.
    pub kernel: &'a [u8],
    /// `[gates * units, units]` i8.
    pub recurrent_kernel: &'a [u8],
    /// `[gates * units]`: input-side bias with the input zero point folded in.
    pub bias_x: I32View<'a>,
    /// `[gates * units]`: recurrent-side bias with the `h` zero point folded in.
    pub bias_h: I32View<'a>,
    /// Per-row requantizers of the input projection.
    pub requant_x: RequantView<'a>,
    /// Per-row requantizers of the recurrent projection.
    pub requant_h: RequantView<'a>,
    /// GRU `reset_after = false`: per-row requantizers of `U_h (r * h)`.
    pub requant_reset: RequantView<'a>,
    /// How `kernel` and `recurrent_kernel` store their rows.
    pub layout: WeightLayout,
}

impl<'a> IntDirectionViews<'a> {
    /// The input kernel with its layout.
    fn kernel(&self) -> (&'a [u8], WeightLayout) {
        (self.kernel, self.layout)
    }

    /// The recurrent kernel with its layout.
    fn recurrent(&self) -> (&'a [u8], WeightLayout) {
        (self.recurrent_kernel, self.layout)
    }
}

/// The integer-mode facts a cell step needs besides its weights.
#[derive(Debug, Clone, Copy)]
pub struct IntCell {
    pub spec: CellSpec,
    pub quant: CellQuant,
    /// Activation code range of the mode.
    pub lo: i32,
    pub hi: i32,
}

/// A recurrent layer's integer parameters as the plan keeps them: [`RecurrentQuant`] itself
/// with `whole-window`, and without it (no Bidirectional layers, refused at load) the same
/// parameters less the merge's, 20 bytes less in every layer plan of the `Model` value on a
/// 32-bit MCU.
#[cfg(feature = "whole-window")]
pub type CellQuant = RecurrentQuant;

/// A recurrent layer's integer parameters as the plan keeps them: [`RecurrentQuant`] without
/// the Bidirectional merge's parameters, which builds without `whole-window` cannot run (they
/// refuse Bidirectional layers at load): 20 bytes less in every layer plan of the `Model`
/// value on a 32-bit MCU.
#[cfg(not(feature = "whole-window"))]
#[derive(Debug, Clone, Copy)]
pub struct CellQuant {
    /// Codes of `h`.
    pub output: crate::format::QParams,
    /// From the Q0.15 cell output to `output` codes.
    pub output_requant: crate::quant::Requant,
    /// From `h` codes minus zero point to Q0.15.
    pub h_to_q15: crate::quant::Requant,
    /// LSTM cell state fractional bits.
    pub cell_frac_bits: u8,
}

#[cfg(not(feature = "whole-window"))]
impl CellQuant {
    /// The merge parameters: always `None` (no Bidirectional layers in this build).
    pub fn merged(&self) -> Option<(crate::format::QParams, crate::quant::Requant)> {
        None
    }
}

#[cfg(feature = "whole-window")]
impl RecurrentQuant {
    /// The merge parameters, as builds without `whole-window` also spell them.
    pub fn merged(&self) -> Option<(crate::format::QParams, crate::quant::Requant)> {
        self.merged
    }
}

/// The plan's copy of a layer's integer parameters (checked by the loader).
pub const fn cell_quant(q: &RecurrentQuant) -> CellQuant {
    #[cfg(feature = "whole-window")]
    return *q;
    #[cfg(not(feature = "whole-window"))]
    CellQuant {
        output: q.output,
        output_requant: q.output_requant,
        h_to_q15: q.h_to_q15,
        cell_frac_bits: q.cell_frac_bits,
    }
}

/// Rows per call of the integer dot-product kernel, whose i64 results live on the stack, and
/// units per block of the integer LSTM (whose four gate blocks also live there, so a step makes
/// `4 * ceil(units / ROW_BLOCK)` paired projection calls, or one when a block holds every
/// unit). The AVX2 kernel packs its input once per call, so hosts take many rows at a time.
/// On microcontrollers each call costs about 130 instructions before its first product
/// (checks, the job, the kernel's prologue), and each block rebuilds the output map: every
/// Arm core with the DSP extension takes 32 (768 bytes of stack; other targets 16). Against 16
/// (384 bytes) that is 5% fewer instructions per int8 LSTM(32) and LSTM(64) step on a
/// Cortex-M4F. The Cortex-M0, whose calls and blocks cost more, takes 64 (1.5 KB, 768 bytes
/// more): one block then holds every unit of an LSTM(64), 2.1% fewer instructions per step
/// than 32 (0.6% more at LSTM(32), which zeroes the larger gate block). With `small`, 8: the
/// gate block takes 128 bytes of stack (the cell frame is the deepest of a step) for more,
/// cheaper calls.
const ROW_BLOCK: usize = if cfg!(feature = "small") {
    8
} else if cfg!(target_arch = "x86_64") {
    128
} else if cfg!(edgernn_arm_v6m) {
    64
} else if cfg!(target_arch = "arm") {
    32
} else {
    16
};

// Blocks of units start on blocks of 4 rows (pre-packed weights, units a multiple of 4).
const _: () = assert!(ROW_BLOCK.is_multiple_of(4));

/// `out[k] (+)= requant[k + requant_first](bias[r] + W[r] . x)` for `r = first_row + k` over the
/// rows of `out` (rows the weights do not hold are left untouched), with `x` the `cols` codes
/// [`pack_i16`] packed: the cells pack `x` and `h` once per step, however many blocks of rows
/// read them.
#[allow(clippy::too_many_arguments)]
fn project(
    (weights, layout): (&[u8], WeightLayout),
    bias: I32View<'_>,
    requant: RequantView<'_>,
    first_row: usize,
    requant_first: usize,
    x: Packed<'_>,
    out: &mut [i32],
    accumulate: bool,
) {
    // Rows and columns are below 4 * MAX_WIDTH (checked at load), so the product fits; a
    // checked multiply would cost a 64-bit product (a library call on Cortex-M0) per call.
    if first_row > 4 * crate::MAX_WIDTH || x.cols > crate::MAX_WIDTH {
        return;
    }
    // The entry and row size of the layout, in one test. Interleaved rows start where a block
    // does (every row a cell starts at: checked at load).
    let k = crate::kernels::active();
    let (kernel, row_bytes) = match layout {
        WeightLayout::RowMajor => (k.project_i8, x.cols),
        _ if !layout.can_start_at(first_row) => return,
        _ => (k.project_i8_interleaved4, layout.row_bytes(x.cols)),
    };
    let Some(weights) = weights.get(first_row * row_bytes..) else {
        return;
    };
    let rows = RowsI8 {
        weights,
        bias: bias.skip(first_row),
        requant: requant.skip(requant_first),
    };
    kernel(&rows, x.words, x.cols, out, accumulate);
}

/// One side of a paired projection ([`pair_for`]): `weights` with their biases and
/// requantizers, over the codes `p` (the layout is the call's).
fn side<'a>(
    (weights, _): (&'a [u8], WeightLayout),
    bias: I32View<'a>,
    requant: RequantView<'a>,
    p: Packed<'a>,
) -> ProjectionI8<'a> {
    ProjectionI8 {
        rows: RowsI8 {
            weights,
            bias,
            requant,
        },
        packed: p.words,
        cols: p.cols,
    }
}

/// Codes packed by [`pack_i16`] and how many there are.
#[derive(Clone, Copy)]
struct Packed<'a> {
    words: &'a [i32],
    cols: usize,
}

/// Packs `codes` into the front of `buffer` (which [`IntCell::scratch_len`] sized).
fn pack<'a>(codes: &[i32], buffer: &'a mut [i32]) -> Packed<'a> {
    let words = buffer.get_mut(..packed_len(codes.len())).unwrap_or(&mut []);
    pack_i16(codes, words);
    Packed {
        words,
        cols: codes.len(),
    }
}

/// `out[k] = requant[k](bias[k] + W[k] . x)` on unpacked codes, for Dense layers (which have no
/// scratch to pack into): the products by [`dot_rows_i8`], a block of rows at a time, the rest
/// by the kernels' shared requantization loop.
fn project_codes(
    weights: &[u8],
    bias: I32View<'_>,
    requant: RequantView<'_>,
    x: &[i32],
    out: &mut [i32],
) {
    let cols = x.len();
    // Heads of a few outputs (a regression's or a classifier's) zero a few products, not a
    // whole block's (about 110 instructions per step on a Cortex-M4 for a Dense(1) head).
    let mut few = [0i64; 4];
    let mut whole;
    let dots: &mut [i64] = if out.len() <= few.len() {
        &mut few
    } else {
        whole = [0i64; ROW_BLOCK];
        &mut whole
    };
    for (block, (outs, block_weights)) in out
        .chunks_mut(ROW_BLOCK)
        .zip(weights.chunks(ROW_BLOCK.saturating_mul(cols).max(1)))
        .enumerate()
    {
        let first = block * ROW_BLOCK;
        let Some(dots) = dots.get_mut(..outs.len()) else {
            return;
        };
        dot_rows_i8(block_weights, x, dots);
        let rows = RowsI8 {
            weights: block_weights,
            bias: bias.skip(first),
            requant: requant.skip(first),
        };
        let mut sums = dots.iter();
        project_rows_with(&rows, cols, outs, false, |_| {
            sums.next().copied().unwrap_or(0)
        });
    }
}

/// A gate activation of a Q3.12 pre-activation, in Q0.15. Linear and relu are clipped to
/// `[-1, 1]`; the loader only lets bounded activations reach LSTM and GRU cells.
// With `small`, one out-of-line copy for every cell and activation (see `IntCell::lstm`).
#[cfg_attr(not(feature = "small"), inline)]
#[cfg_attr(feature = "small", inline(never))]
pub fn activate_q15(activation: Activation, pre: i32) -> i32 {
    let x = sat_i16_32(pre);
    i32::from(match activation {
        Activation::Sigmoid => lut::sigmoid_q15(x),
        Activation::Tanh => lut::tanh_q15(x),
        Activation::HardSigmoid => lut::hard_sigmoid_q15(x),
        Activation::Linear | Activation::Softmax => sat_i16(i64::from(x) << 3),
        Activation::Relu => sat_i16(i64::from(x.max(0)) << 3),
    })
}

/// Whether an activation has a bounded output that the integer cells compute in Q0.15.
pub const fn is_bounded(activation: Activation) -> bool {
    matches!(
        activation,
        Activation::Sigmoid | Activation::Tanh | Activation::HardSigmoid
    )
}

impl IntCell {
    /// `clamp(zero + output_requant(q15), lo, hi)`, the output code of a Q0.15 value, prepared
    /// once per step ([`ToCodes`] keeps the per-unit work in 32 bits).
    fn output_codes(&self) -> ToCodes {
        let p = self.code_params();
        ToCodes::new(p.requant, p.zero, p.lo, p.hi)
    }

    /// What a kernel needs for [`IntCell::output_codes`].
    fn code_params(&self) -> crate::kernels::CodeParams {
        crate::kernels::CodeParams {
            requant: self.quant.output_requant,
            zero: self.quant.output.zero_point,
            lo: self.lo,
            hi: self.hi,
        }
    }

    /// `h` codes to Q0.15, prepared once per step.
    fn h_to_q15(&self) -> HToQ15 {
        HToQ15 {
            scale: SmallRequant::new(self.quant.h_to_q15),
            zero: self.quant.output.zero_point,
        }
    }

    /// Scratch values one step on `input_width` codes needs: the packed codes of `x` and `h`
    /// (and of `r * h` for a GRU with `reset_after = false`) after the gate values, which are
    /// [`IntCell::gate_scratch_len`].
    pub const fn scratch_len(&self, input_width: usize) -> usize {
        let units = self.spec.units;
        let gates = self.gate_scratch_len();
        let reset = match self.spec.cell {
            Cell::Gru { reset_after: false } => packed_len(units),
            _ => 0,
        };
        gates + packed_len(input_width) + packed_len(units) + reset
    }

    /// Gate values one step keeps in scratch: [`CellSpec::scratch_len`], except for the LSTM,
    /// which computes its gates a block of units at a time on the stack and writes the new `h`
    /// in place (the old one is read from its packed copy): none.
    pub const fn gate_scratch_len(&self) -> usize {
        match self.spec.cell {
            Cell::Lstm => 0,
            _ => self.spec.scratch_len(),
        }
    }

    /// Advances one direction by one step on codes `x`; `state` holds `h` codes, then `c`
    /// for LSTM. `scratch` needs [`IntCell::scratch_len`]`(x.len())` values.
    pub fn step(
        &self,
        w: &IntDirectionViews<'_>,
        x: &[i32],
        state: &mut [i32],
        scratch: &mut [i32],
    ) {
        let units = self.spec.units;
        if units == 0 || state.len() < self.spec.state_len() {
            return;
        }
        let Some(scratch) = scratch.get_mut(..self.scratch_len(x.len())) else {
            return;
        };
        let Some((h, c)) = state.split_at_mut_checked(units) else {
            return;
        };
        let gate_len = self.gate_scratch_len();
        let (gates, packed) = scratch.split_at_mut(gate_len.min(scratch.len()));
        let (packed_x, packed) = packed.split_at_mut(packed_len(x.len()).min(packed.len()));
        let (packed_h, packed_reset) = packed.split_at_mut(packed_len(units).min(packed.len()));
        let px = pack(x, packed_x);
        let ph = pack(h, packed_h);
        // One `cfg!` per cell: a constant false guard drops that cell's code; the loader
        // refuses blobs with a cell whose feature is off, so the last arm is never taken.
        match self.spec.cell {
            Cell::SimpleRnn if cfg!(feature = "simple-rnn") => self.simple_rnn(w, px, ph, h, gates),
            Cell::Lstm if cfg!(feature = "lstm") => self.lstm(w, px, ph, h, c),
            Cell::Gru { reset_after } if cfg!(feature = "gru") => {
                self.gru(w, reset_after, px, ph, h, gates, packed_reset);
            }
            _ => {}
        }
    }

    fn simple_rnn(
        &self,
        w: &IntDirectionViews<'_>,
        x: Packed<'_>,
        old_h: Packed<'_>,
        h: &mut [i32],
        pre: &mut [i32],
    ) {
        let Some(pre) = pre.get_mut(..h.len()) else {
            return;
        };
        project(w.kernel(), w.bias_x, w.requant_x, 0, 0, x, pre, false);
        let (u, bias, requant) = (w.recurrent(), w.bias_h, w.requant_h);
        project(u, bias, requant, 0, 0, old_h, pre, true);
        if let Some(kernel) = crate::kernels::active().activate_codes_i8 {
            if kernel(self.spec.activation, pre, h, &self.code_params()) {
                return;
            }
        }
        let activation = self.spec.activation;
        let zero = self.quant.output.zero_point;
        let codes = self.output_codes();
        for (hv, &p) in h.iter_mut().zip(pre.iter()) {
            *hv = if is_bounded(activation) {
                codes.code(activate_q15(activation, p))
            } else {
                // Linear and relu: the requantizers already target the output codes.
                let mut v = i64::from(zero) + i64::from(p);
                if activation == Activation::Relu {
                    v = v.max(i64::from(zero));
                }
                clamp_to(v, i64::from(self.lo), i64::from(self.hi)) as i32
            };
        }
    }

    fn lstm(
        &self,
        w: &IntDirectionViews<'_>,
        x: Packed<'_>,
        old_h: Packed<'_>,
        h: &mut [i32],
        c: &mut [i32],
    ) {
        let units = h.len();
        let (a, ra) = (self.spec.activation, self.spec.recurrent_activation);
        let cell = lstm::CellFormat::new(self.quant.cell_frac_bits);
        // Both projections of every gate row, `W x + U h`, each block of rows in one call.
        let wx = side(w.kernel(), w.bias_x, w.requant_x, x);
        let uh = side(w.recurrent(), w.bias_h, w.requant_h, old_h);
        let params = crate::kernels::LstmParams {
            cell_frac: self.quant.cell_frac_bits,
            codes: self.code_params(),
        };
        let pair = pair_for(w.layout);
        // Pre-activations of the four gates (i, f, c, o) of one block of units.
        let mut gates = [0i32; 4 * ROW_BLOCK];
        for (block, (hs, cs)) in h
            .chunks_mut(ROW_BLOCK)
            .zip(c.chunks_mut(ROW_BLOCK))
            .enumerate()
        {
            let first = block * ROW_BLOCK;
            // The gates of the block's `len` units, `ROW_BLOCK` apart, or one after another when
            // one block holds every unit: then the four gates' rows are consecutive in the
            // weights too, so one call computes them all (each row alone, same bits).
            // Never 0 (`chunks_mut` gives no empty chunk); saying so helps the compiler.
            let len = hs.len().max(1);
            let stride = if len == units {
                let Some(pre) = gates.get_mut(..4 * len) else {
                    return;
                };
                pair(&wx, &uh, 0, pre);
                len
            } else {
                for (gate, pre) in gates.chunks_exact_mut(ROW_BLOCK).enumerate() {
                    let Some(pre) = pre.get_mut(..len) else {
                        return;
                    };
                    pair(&wx, &uh, gate * units + first, pre);
                }
                ROW_BLOCK
            };
            let gate = |g: usize| gates.get(g * stride..g * stride + len);
            let (Some(gi), Some(gf), Some(gc), Some(go)) = (gate(0), gate(1), gate(2), gate(3))
            else {
                return;
            };
            let (gates, c, h) = ([gi, gf, gc, go], cs, hs);
            // The activations are chosen once per block, not per value: the usual pair runs
            // the kernel table's gate kernel (vector table lookups on hosts; every table is
            // held to the generic loop's formulas bit for bit), any other pair that loop with
            // the general activations.
            match (ra, a) {
                // With `small`, the usual pair too takes the general loop (the same bits: test
                // `cell_activations_match`), so only one copy of it is linked.
                (Activation::Sigmoid, Activation::Tanh) if !cfg!(feature = "small") => {
                    crate::kernels::lstm_units_i8(gates, c, h, &params);
                }
                // The output codes prepared here, per block: the usual pair's kernel prepares
                // its own, so that pair's steps do not pay for them.
                _ => lstm::lstm_units::<false>(
                    gates,
                    c,
                    h,
                    cell,
                    &self.output_codes(),
                    |p| activate_q15(ra, p),
                    |p| activate_q15(a, p),
                ),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn gru(
        &self,
        w: &IntDirectionViews<'_>,
        reset_after: bool,
        x: Packed<'_>,
        old_h: Packed<'_>,
        h: &mut [i32],
        scratch: &mut [i32],
        packed_reset: &mut [i32],
    ) {
        let (a, ra) = (self.spec.activation, self.spec.recurrent_activation);
        let io = GruIo {
            reset_after,
            x,
            old_h,
            h,
            scratch,
            packed_reset,
        };
        // As for the LSTM: the usual pair with both tables inlined, any other the general one.
        match (ra, a) {
            // The sigmoid's values are never negative (test `cell_activations_match`).
            (Activation::Sigmoid, Activation::Tanh) => {
                self.gru_with::<true>(w, io, lut::sigmoid_q15_sat, lut::tanh_q15_sat)
            }
            _ => self.gru_with::<false>(w, io, |p| activate_q15(ra, p), |p| activate_q15(a, p)),
        }
    }

    /// The GRU step with the recurrent activation `ra` and the activation `a`;
    /// `NON_NEGATIVE_Z` when `ra` never returns a negative value.
    #[inline(never)]
    fn gru_with<const NON_NEGATIVE_Z: bool>(
        &self,
        w: &IntDirectionViews<'_>,
        io: GruIo<'_, '_>,
        ra: impl Fn(i32) -> i32,
        a: impl Fn(i32) -> i32,
    ) {
        let GruIo {
            reset_after,
            x,
            old_h,
            h,
            scratch,
            packed_reset,
        } = io;
        let units = h.len();
        let Some((zr, rest)) = scratch.split_at_mut_checked(2 * units) else {
            return;
        };
        let Some((cand_x, rest)) = rest.split_at_mut_checked(units) else {
            return;
        };
        let Some(cand_h) = rest.get_mut(..units) else {
            return;
        };
        let (u, bias, requant) = (w.recurrent(), w.bias_h, w.requant_h);
        // The update and reset gates need only `W x + U h` of their rows: one paired call for
        // both (the same saturating sum of the two requantized sides as two calls). The
        // candidate's parts stay apart: `r` multiplies the recurrent one (both in one split
        // call: always on row-major weights, on interleaved ones where the table has that
        // entry), or (without `reset_after`) the recurrent kernel reads `r * h`.
        let wx = side(w.kernel(), w.bias_x, w.requant_x, x);
        let uh = side(u, bias, requant, old_h);
        pair_for(w.layout)(&wx, &uh, 0, zr);
        // The interleaved split, if any: tested after the row-major case, which pays nothing.
        let split_i4 = || match w.layout {
            WeightLayout::Interleaved4 => crate::kernels::active().project_split_i8_interleaved4,
            _ => None,
        };
        if reset_after && w.layout == WeightLayout::RowMajor {
            project_split_i8(&wx, &uh, 2 * units, cand_x, cand_h);
        } else if let Some(split) = reset_after.then(split_i4).flatten() {
            split(&wx, &uh, 2 * units, cand_x, cand_h);
        } else {
            project(
                w.kernel(),
                w.bias_x,
                w.requant_x,
                2 * units,
                2 * units,
                x,
                cand_x,
                false,
            );
            if reset_after {
                project(u, bias, requant, 2 * units, 2 * units, old_h, cand_h, false);
            }
        }
        let Some((z_pre, r_pre)) = zr.split_at_mut_checked(units) else {
            return;
        };
        if reset_after {
            let usual = (self.spec.recurrent_activation, self.spec.activation)
                == (Activation::Sigmoid, Activation::Tanh);
            if let (true, Some(kernel)) = (usual, crate::kernels::active().gru_units_i8) {
                let gates = crate::kernels::GruGates {
                    z: z_pre,
                    r: r_pre,
                    cand_x,
                    cand_h,
                };
                if kernel(&gates, h, self.quant.h_to_q15, &self.code_params()) {
                    return;
                }
            }
            // The output codes and `h_to_q15` prepared here: a kernel that takes the update
            // prepares its own.
            let codes = self.output_codes();
            let to_q15 = self.h_to_q15();
            // Every input of a unit is ready. Two passes, each with few enough streams and
            // constants for the registers of a Cortex-M4: the gates, then the new `h`. The
            // gate values are i16 (activation outputs), so `z` and the candidate of a unit
            // travel as one word, written over the candidate's input-side part.
            gru_gates::<NON_NEGATIVE_Z>(cand_x, z_pre, r_pre, cand_h, &ra, &a);
            gru_update::<NON_NEGATIVE_Z>(h, cand_x, &codes, &to_q15);
        } else {
            let codes = self.output_codes();
            let to_q15 = self.h_to_q15();
            let qmax = i64::from(self.hi);
            let lanes = z_pre.iter_mut().zip(r_pre.iter());
            for (((zp, &rp), &hv), rh) in lanes.zip(h.iter()).zip(cand_h.iter_mut()) {
                let z = ra(*zp);
                let r = i64::from(ra(rp));
                *zp = z;
                // r * h in full-scale symmetric codes (scale 1 / qmax).
                let product = shift_round(r * i64::from(to_q15.q15(hv)) * qmax, 30);
                *rh = clamp_to(product, -qmax, qmax) as i32;
            }
            let reset_codes = pack(cand_h, packed_reset);
            // `U_h (r * h)` of the candidate rows, over the reset gate's pre-activations
            // (read above, not needed again).
            project(
                u,
                bias,
                w.requant_reset,
                2 * units,
                0,
                reset_codes,
                r_pre,
                false,
            );
            let lanes = cand_x.iter().zip(r_pre.iter()).zip(z_pre.iter());
            for (((&cand, &rec), &z), hv) in lanes.zip(h.iter_mut()) {
                // A saturating i32 sum clamps to the same i16 as the exact one.
                let candidate = a(cand.saturating_add(rec));
                *hv = codes.code(blend(z, to_q15.q15(*hv), candidate));
            }
        }
    }
}

/// The GRU's gate values with `reset_after`, over the candidate's input-side parts `cand`:
/// each becomes the unit's [`gate_word`] of `z = ra(z_pre)` and the candidate
/// `a(cand + r * hh)` (`r = ra(r_pre)`, `hh` the recurrent part). Out of line, so that the
/// loop gets the registers to itself whatever the rest of the step holds.
#[inline(never)]
fn gru_gates<const NON_NEGATIVE_Z: bool>(
    cand: &mut [i32],
    z_pre: &[i32],
    r_pre: &[i32],
    cand_h: &[i32],
    ra: &impl Fn(i32) -> i32,
    a: &impl Fn(i32) -> i32,
) {
    let lanes = cand.iter_mut().zip(z_pre.iter()).zip(r_pre.iter());
    for (((cand, &zp), &rp), &hh) in lanes.zip(cand_h.iter()) {
        let z = ra(zp);
        let r = ra(rp);
        let candidate = if NON_NEGATIVE_Z {
            a(reset_candidate_gate(*cand, r, hh))
        } else {
            a(reset_candidate(*cand, r, hh))
        };
        *cand = gate_word(z, candidate);
    }
}

/// The GRU's new `h` codes from the old ones and each unit's update gate value `z` and
/// candidate value, packed as `z << 16 | candidate & 0xFFFF` (both i16). With
/// `NON_NEGATIVE_Z`, `z` is unpacked by a logical shift, the same value for `z >= 0`, which
/// tells the compiler that [`blend`] takes its 32-bit formula. Inlined into each caller, so
/// a caller's tests specialize it.
///
/// Out of line, so that its loop gets the registers to itself: inlined into the step, it
/// reloaded four values from the stack for every unit on a Cortex-M4 (one now).
#[inline(never)]
fn gru_update<const NON_NEGATIVE_Z: bool>(
    h: &mut [i32],
    gates: &[i32],
    codes: &ToCodes,
    to_q15: &HToQ15,
) {
    // The same loop twice for the usual activations: under the test, the compiler drops the
    // per-unit tests of the fast paths and clamps int8 codes with one `ssat`. Not on cores
    // without the DSP extension (no `ssat`), where the copy costs more flash than it saves.
    #[allow(clippy::if_same_then_else)]
    let done = if NON_NEGATIVE_Z
        && (cfg!(edgernn_arm_dsp) || !cfg!(target_arch = "arm"))
        && codes.is_fast()
        && to_q15.scale.is_fast()
        && codes.bounds() == (-128, 127)
    {
        gru_update_fast::<NON_NEGATIVE_Z>(h, gates, codes, to_q15)
    } else {
        gru_update_fast::<NON_NEGATIVE_Z>(h, gates, codes, to_q15)
    };
    if done < h.len().min(gates.len()) {
        gru_update_rest(h, gates, codes, to_q15, done);
    }
}

/// [`gru_update`] over the units up to the first `h` code outside [`HToQ15::q15_fast`]'s
/// range (never, for the codes a step writes); returns how many it updated. It calls
/// nothing, so its constants can stay in the registers a call would clobber.
#[inline(always)]
fn gru_update_fast<const NON_NEGATIVE_Z: bool>(
    h: &mut [i32],
    gates: &[i32],
    codes: &ToCodes,
    to_q15: &HToQ15,
) -> usize {
    // Local copies, whose addresses nothing takes: their fields stay in registers.
    let (codes, to_q15) = (*codes, *to_q15);
    let units = h.len().min(gates.len());
    for (k, (&word, hv)) in gates.iter().zip(h.iter_mut()).enumerate() {
        let Some(q15) = to_q15.q15_fast(*hv) else {
            return k;
        };
        let (z, candidate) = gate_values::<NON_NEGATIVE_Z>(word);
        *hv = codes.code(blend(z, q15, candidate));
    }
    units
}

/// [`gru_update`] from unit `first` on, any `h` code: the units from the first the fast loop
/// could not take. Out of line, so that the fast loop's registers stay its own. One copy for
/// both kinds of update gate: the arithmetic shift unpacks `z` for either (the logical one
/// only tells the compiler more).
#[cold]
#[inline(never)]
fn gru_update_rest(h: &mut [i32], gates: &[i32], codes: &ToCodes, to_q15: &HToQ15, first: usize) {
    for (&word, hv) in gates.iter().zip(h.iter_mut()).skip(first) {
        let (z, candidate) = gate_values::<false>(word);
        *hv = codes.code(blend(z, to_q15.q15(*hv), candidate));
    }
}

/// Two i16 gate values `z` and `candidate` as one word, `z` in the high half.
#[inline]
fn gate_word(z: i32, candidate: i32) -> i32 {
    (z << 16) | (candidate & 0xFFFF)
}

/// The values [`gate_word`] packed (`z` by a logical shift with `NON_NEGATIVE_Z`, the same
/// value for `z >= 0`).
#[inline]
fn gate_values<const NON_NEGATIVE_Z: bool>(word: i32) -> (i32, i32) {
    let z = if NON_NEGATIVE_Z {
        ((word as u32) >> 16) as i32
    } else {
        word >> 16
    };
    (z, (word << 16) >> 16)
}

/// What one GRU step reads and writes besides its weights.
struct GruIo<'a, 'p> {
    reset_after: bool,
    x: Packed<'p>,
    old_h: Packed<'p>,
    h: &'a mut [i32],
    scratch: &'a mut [i32],
    packed_reset: &'a mut [i32],
}

/// `clamp(h_to_q15(code - zero), -32768, 32768)`: an `h` code in Q0.15.
#[derive(Clone, Copy)]
struct HToQ15 {
    scale: SmallRequant,
    zero: i32,
}

impl HToQ15 {
    /// The Q0.15 value of `code`: 32-bit work for the codes of real models (see
    /// [`SmallRequant::apply_small`]), the 64-bit formula otherwise. A saturated difference
    /// is out of the fast range, so it takes the 64-bit formula like an overflowing one.
    #[inline]
    fn q15(&self, code: i32) -> i32 {
        match self.q15_fast(code) {
            Some(v) => v,
            None => q15_wide(self.scale.requant(), self.zero, code),
        }
    }

    /// [`HToQ15::q15`]'s 32-bit path (`None` where it takes the 64-bit formula).
    #[inline]
    fn q15_fast(&self, code: i32) -> Option<i32> {
        let v = self.scale.apply_small(code.saturating_sub(self.zero))?;
        // `clamp(v, -32768, 32768)` as a saturation to i16 and a conditional increment: no
        // 0xFFFF8000 constant to build.
        Some(i32::from(sat_i16_32(v)) + i32::from(v > 32767))
    }
}

/// [`HToQ15::q15`]'s 64-bit formula (`SmallRequant::apply` gives `requant.apply`'s bits). Its
/// inputs by value: a reference to the prepared `HToQ15` would keep it in memory, where the
/// loops that can call this reload its fields for every unit.
#[cold]
#[inline(never)]
fn q15_wide(requant: crate::quant::Requant, zero: i32, code: i32) -> i32 {
    let centered = i64::from(code) - i64::from(zero);
    requant.apply(centered).clamp(-32768, 32768) as i32
}

/// The GRU candidate pre-activation with `reset_after`: `cand + round(r * hh >> 15)`,
/// saturated to i16 (`r` a Q0.15 gate value, `hh` the candidate rows' recurrent part).
///
/// When `hh` fits i16, `|r * hh| <= 2^15 * 2^15 = 2^30`, so the product and its rounding shift
/// are exact in 32 bits, and a saturating i32 sum clamps to the same i16 value as the exact
/// sum. Otherwise (never for a real model: `hh` is a Q3.12 pre-activation part) the 64-bit
/// formula.
#[inline]
fn reset_candidate(cand: i32, r: i32, hh: i32) -> i32 {
    // `hh` fits i16 when saturating leaves it unchanged (an `ssat` and a compare).
    if i32::from(sat_i16_32(hh)) == hh {
        i32::from(sat_i16_32(cand.saturating_add(shift_round32(r * hh, 15))))
    } else {
        reset_candidate_wide(cand, r, hh)
    }
}

/// [`reset_candidate`] for a gate value `r` in `[0, 2^15)` (a sigmoid's): where the core
/// multiplies into 64 bits, `r * hh` is exact there for any `hh`, and its rounding shift
/// `gated = floor((r * hh + 2^14) / 2^15)` is within `(-2^31, 2^31)` (`|r * hh| < 2^15 * 2^31`),
/// so it fits i32 and the saturating sum clamps to the same i16 as the exact one: no test of
/// `hh`. Elsewhere (a library call on Cortex-M0), [`reset_candidate`].
///
/// `gated` is one rounding high-word product and a correction: `a = r << 17` (for `r < 2^15`
/// the rotation by 17, one instruction that needs no mask constant) wraps to
/// `r * 2^17 - b * 2^32` with `b = r >> 14` (0 or 1), so
/// `floor((a * hh + 2^31) / 2^32) = gated - b * hh`, and adding `b * hh` back in wrapping
/// i32 arithmetic gives `gated`, which fits i32. On a Cortex-M4: `ror`, `lsr`, `mul` and one
/// `smmlar`, no 64-bit accumulator to set up and narrow (test
/// `reset_candidate_matches_64_bits`, every `r`).
#[inline]
fn reset_candidate_gate(cand: i32, r: i32, hh: i32) -> i32 {
    if crate::quant::fixed::WIDE_MULTIPLY {
        let a = (r as u32).rotate_left(17) as i32;
        let high = ((i64::from(a) * i64::from(hh) + (1 << 31)) >> 32) as i32;
        let gated = high.wrapping_add((r >> 14).wrapping_mul(hh));
        i32::from(sat_i16_32(cand.saturating_add(gated)))
    } else {
        reset_candidate(cand, r, hh)
    }
}

#[cold]
#[inline(never)]
fn reset_candidate_wide(cand: i32, r: i32, hh: i32) -> i32 {
    let pre = i64::from(cand) + shift_round(i64::from(r) * i64::from(hh), 15);
    i32::from(sat_i16(pre))
}

/// The GRU update `round((z * h + (32768 - z) * hh) >> 15)` in Q0.15, for `z` and `hh` gate
/// values (`[-2^15, 2^15)`) and `h` in `[-2^15, 2^15]`.
///
/// The numerator is `2^15 * hh + z * (h - hh)`, a multiple of `2^15` plus one product, so the
/// result is `hh + round(z * (h - hh) >> 15)`: one multiply fewer. For `z >= 0` (sigmoid and
/// hard sigmoid gates always) `|h - hh| <= 2^16` and `z < 2^15`, so
/// `|z * (h - hh)| <= 2^31 - 2^16` and, with the rounding term, it is exact in 32 bits.
/// A negative `z` (a tanh gate) weighs `hh` by up to
/// `2^16`: 64 bits, whose result (at most `3 * 2^15` in magnitude) fits i32. The test is
/// `z >= 0` alone (gate values are below `2^15`), which the compiler drops after a sigmoid
/// whose result it knows is not negative ([`lut::sigmoid_q15_sat`]); the wrapping operations
/// never wrap in the domain and keep a value outside it from panicking.
#[inline]
fn blend(z: i32, h: i32, hh: i32) -> i32 {
    if z >= 0 {
        let step = z.wrapping_mul(h.wrapping_sub(hh));
        hh.wrapping_add(step.wrapping_add(1 << 14) >> 15)
    } else {
        blend_wide(z, h, hh)
    }
}

#[cold]
#[inline(never)]
fn blend_wide(z: i32, h: i32, hh: i32) -> i32 {
    let z = i64::from(z);
    shift_round(z * i64::from(h) + (32768 - z) * i64::from(hh), 15) as i32
}

/// Integer Dense weights and parameters.
#[derive(Debug, Clone, Copy)]
pub struct IntDense<'a> {
    pub kernel: &'a [u8],
    pub bias: I32View<'a>,
    pub requant: RequantView<'a>,
    pub quant: DenseQuant,
    pub activation: Activation,
    pub lo: i32,
    pub hi: i32,
}

impl IntDense<'_> {
    /// Computes the output codes `y` from input codes `x`.
    pub fn forward(&self, x: &[i32], y: &mut [i32]) {
        project_codes(self.kernel, self.bias, self.requant, x, y);
        let zero = i64::from(self.quant.output.zero_point);
        let clamp = |v: i64| clamp_to(v, i64::from(self.lo), i64::from(self.hi)) as i32;
        match self.activation {
            Activation::Linear => y.iter_mut().for_each(|v| *v = clamp(zero + i64::from(*v))),
            Activation::Relu => y
                .iter_mut()
                .for_each(|v| *v = clamp((zero + i64::from(*v)).max(zero))),
            // Refused at load without its feature; the constant guard drops the exp table.
            Activation::Softmax if cfg!(feature = "softmax") => {
                lut::softmax_q15(y);
                for v in y.iter_mut() {
                    *v = clamp(zero + self.quant.output_requant.apply(i64::from(*v)));
                }
            }
            a => y.iter_mut().for_each(|v| {
                let q15 = activate_q15(a, *v);
                *v = clamp(zero + self.quant.output_requant.apply(i64::from(q15)));
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points across a range with both ends and the values around 0 and the ends.
    fn spread(lo: i32, hi: i32, step: usize) -> impl Iterator<Item = i32> {
        (lo..=hi)
            .step_by(step)
            .chain([lo, lo + 1, -1, 0, 1, hi - 1, hi])
    }

    /// The 32-bit `reset_after` candidate against the 64-bit formula: every gate value `r`
    /// against spread `cand` and `hh` (the whole i32 range, i16 values densely).
    #[test]
    fn reset_candidate_matches_64_bits() {
        let hhs: std::vec::Vec<i32> = spread(-32768, 32767, 503)
            .chain([i32::MIN, -32769, 32768, i32::MAX])
            .collect();
        let cands = [
            i32::MIN,
            -70_000,
            -32768,
            -20_000,
            -1,
            0,
            1,
            20_000,
            32767,
            i32::MAX,
        ];
        for r in -32768..=32767 {
            for &hh in &hhs {
                for &cand in &cands {
                    let pre = i64::from(cand) + shift_round(i64::from(r) * i64::from(hh), 15);
                    let want = i32::from(sat_i16(pre));
                    assert_eq!(reset_candidate(cand, r, hh), want, "{cand} {r} {hh}");
                    if r >= 0 {
                        assert_eq!(reset_candidate_gate(cand, r, hh), want, "{cand} {r} {hh}");
                    }
                }
            }
        }
    }

    /// The GRU blend against the 64-bit formula over its whole domain (`z` and `hh` gate
    /// values, `h` in `[-2^15, 2^15]`), dense in `z` and spread in the others.
    #[test]
    fn blend_matches_64_bits() {
        let hs: std::vec::Vec<i32> = spread(-32768, 32768, 1021).collect();
        let hhs: std::vec::Vec<i32> = spread(-32768, 32767, 499).collect();
        for z in -32768..=32767 {
            for &h in &hs {
                for &hh in hhs.iter().step_by(7) {
                    let zz = i64::from(z);
                    let want = shift_round(zz * i64::from(h) + (32768 - zz) * i64::from(hh), 15);
                    assert_eq!(i64::from(blend(z, h, hh)), want, "{z} {h} {hh}");
                }
            }
        }
    }

    /// The GRU's gate words give back both i16 values: every `z` (the non-negative ones by
    /// the logical shift too) against spread candidates.
    #[test]
    fn gate_words_round_trip() {
        for z in -32768..=32767 {
            for candidate in spread(-32768, 32767, 257) {
                let word = gate_word(z, candidate);
                assert_eq!(
                    gate_values::<false>(word),
                    (z, candidate),
                    "{z} {candidate}"
                );
                if z >= 0 {
                    assert_eq!(gate_values::<true>(word), (z, candidate), "{z} {candidate}");
                }
            }
        }
    }

    /// `h` codes to Q0.15 against `h_to_q15.apply` for every code of both modes' ranges.
    #[test]
    fn h_to_q15_matches_apply() {
        for (scale, zero) in [
            (2.0 / 255.0, -1),
            (1.0 / 127.0, 5),
            (2.0 / 65535.0, 0),
            (0.3, 7),
            // Factors at both ends of the one-product range (n = 16 and 32) and past them,
            // and zero points whose difference with a code saturates.
            (20_000.0 / 32768.0, 3),
            (0.3 / 32768.0, -2),
            (0.2 / 32768.0, 0),
            (40_000.0 / 32768.0, 1),
            (1.0 / 127.0, i32::MAX),
            (1.0 / 127.0, i32::MIN),
        ] {
            let requant = crate::quant::Requant::from_f64(scale * 32768.0).unwrap();
            let to = HToQ15 {
                scale: SmallRequant::new(requant),
                zero,
            };
            for code in spread(-70_000, 70_000, 1).chain([i32::MIN, i32::MAX]) {
                let centered = i64::from(code) - i64::from(zero);
                let want = requant.apply(centered).clamp(-32768, 32768) as i32;
                assert_eq!(to.q15(code), want, "{scale} {zero} {code}");
            }
        }
    }
}
