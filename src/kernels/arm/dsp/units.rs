//! The integer cells' per-unit updates in assembly: the LSTM's ([`dsp_lstm_units_i8`]) and the
//! GRU's ([`dsp_gru_units_i8`]), the same bits as the generic kernel and the cells' scalar
//! step.
//!
//! Every sigmoid and tanh is six instructions: `ssat` to i16, `asr` for the table index, one
//! `ldr` of the unit's [`crate::quant::lut`] slope word `T[k] << 16 | T[k + 1] - T[k]`, `uxtab`
//! for the weights `256 << 16 | frac`, one `smlad` with 128 and `asr #8` (the lookup table's
//! interpolation sum, see `lut::slope_words`). The rounding shifts by a per-model amount are
//! one `smmulr` by a power of two: `round(v >> s)` is `smmulr(v, 2^(32 - s))` for `s` in
//! `1..=31` (numerator and denominator of `(v + 2^(s-1)) / 2^s` times `2^(32-s)`), exact in
//! the 64-bit product.
//!
//! The loops keep every constant in a register; where a unit needs more than the 14 a
//! Cortex-M4 has, the update runs in passes over memory the caller owns (the LSTM's cell state,
//! then `h`), each pass's registers its own.

use crate::kernels::{generic, CodeParams, GruGates, LstmGates, LstmParams};
use crate::quant::fixed::{SmallRequant, ToCodes};
use crate::quant::lut::{SIGMOID_SLOPES, TANH_SLOPES};

/// The middle of a slope table: the word of index `x >> 8` (`-128..=127`) is at `4 * (x >> 8)`
/// from here.
#[inline(always)]
fn middle(table: &'static [u32; 256]) -> *const u32 {
    table.as_ptr().wrapping_add(128)
}

/// One sigmoid or tanh of the pre-activation in `$x` (clobbered) into `$y`, over the slope
/// table `$t`; `r6` holds `256 << 16`, `r7` 128.
macro_rules! act {
    ($t:literal, $x:literal, $y:literal) => {
        concat!(
            "ssat ",
            $x,
            ", #16, ",
            $x,
            "\n",
            "asr ",
            $y,
            ", ",
            $x,
            ", #8\n",
            "ldr ",
            $y,
            ", [",
            $t,
            ", ",
            $y,
            ", lsl #2]\n",
            "uxtab ",
            $x,
            ", r6, ",
            $x,
            "\n",
            "smlad ",
            $y,
            ", ",
            $y,
            ", ",
            $x,
            ", r7\n",
            "asr ",
            $y,
            ", ",
            $y,
            ", #8\n",
        )
    };
}

/// What [`lstm_cells`] reads, in its register order.
#[repr(C)]
struct CellJob {
    /// The input gate's pre-activations; the forget and cell gates' at `+ stride` and
    /// `+ 2 * stride` bytes.
    gates: *const i32,
    stride: usize,
    /// The cell state, updated in place, and its end.
    c: *mut i32,
    c_end: *mut i32,
    sigmoid: *const u32,
    tanh: *const u32,
    /// `2^(2 + frac)`: `round(i * g >> (30 - frac))` as one `smmulr`.
    input_m: i32,
}

/// The new cell state of each unit: `c = sat16(round(f * c >> 15) + round(i * g >> (30 -
/// frac)))` with `i`, `f` sigmoids and `g` a tanh of the unit's pre-activations. A cell value
/// outside i16 (a caller-written state) takes the 64-bit product, as the generic kernel's
/// `wide_cell` does.
///
/// # Safety
///
/// `job` as [`CellJob`] documents, with `c < c_end`: for each of the `(c_end - c) / 4` units
/// three gate values readable, and the slope tables' middles.
#[unsafe(naked)]
unsafe extern "C" fn lstm_cells(job: *const CellJob) {
    core::arch::naked_asm!(
        "push {{r4-r11, lr}}",
        "mov r12, r0",
        "ldm r12, {{r0-r5, r8}}",
        "mov r6, #0x01000000",
        "mov r7, #128",
        "mov r9, #16384",
        "1:",
        "ldr r10, [r0, r1]",
        act!("r4", "r10", "r11"),
        "ldr r12, [r2]",
        "ssat r10, #16, r12",
        "cmp r10, r12",
        "bne 3f",
        // f * c + 2^14: `>> 15` below.
        "smlabb r11, r11, r12, r9",
        "ldr r10, [r0, r1, lsl #1]",
        act!("r5", "r10", "r12"),
        "ldr r10, [r0], #4",
        act!("r4", "r10", "lr"),
        "smulbb lr, lr, r12",
        "smmulr lr, lr, r8",
        "add lr, lr, r11, asr #15",
        "ssat lr, #16, lr",
        "str lr, [r2], #4",
        "cmp r2, r3",
        "bne 1b",
        "pop {{r4-r11, pc}}",
        // A cell value outside i16: `round(f * c >> 15)` from the 64-bit product (it fits
        // i32: |f| < 2^15), the sum saturated to i32 first (same i16 as the exact sum).
        "3:",
        "smull r10, r12, r11, r12",
        "adds r10, r10, #16384",
        "adc r12, r12, #0",
        "lsr r10, r10, #15",
        "orr r11, r10, r12, lsl #17",
        "ldr r10, [r0, r1, lsl #1]",
        act!("r5", "r10", "r12"),
        "ldr r10, [r0], #4",
        act!("r4", "r10", "lr"),
        "smulbb lr, lr, r12",
        "smmulr lr, lr, r8",
        "qadd lr, lr, r11",
        "ssat lr, #16, lr",
        "str lr, [r2], #4",
        "cmp r2, r3",
        "bne 1b",
        "pop {{r4-r11, pc}}",
    )
}

/// What [`lstm_outputs`] reads, in its register order.
#[repr(C)]
struct OutputJob {
    /// The output gate's pre-activations.
    gates: *const i32,
    /// The new cell state.
    c: *const i32,
    /// The Q0.15 outputs, and their end.
    h: *mut i32,
    h_end: *mut i32,
    sigmoid: *const u32,
    tanh: *const u32,
    /// `2^(29 - frac)`: a cell value in Q3.12 is `smmulr(c << 15, q12_m)`.
    q12_m: i32,
}

/// Each unit's output in Q0.15, `round(o * tanh(sat16(c in Q3.12)) >> 15)`, `o` the sigmoid of
/// its output gate: the cell value `c` (`|c| <= 2^15`) in Q3.12 is
/// `((c << 15) + 2^(frac+2)) >> (frac + 3)` (the generic kernel's `CellFormat::q12`), which is
/// `smmulr(c << 15, 2^(29 - frac))`.
///
/// # Safety
///
/// `job` as [`OutputJob`] documents, with `h < h_end`: as many gate and cell values readable
/// as outputs, every cell value in i16.
#[unsafe(naked)]
unsafe extern "C" fn lstm_outputs(job: *const OutputJob) {
    core::arch::naked_asm!(
        "push {{r4-r11, lr}}",
        "mov r12, r0",
        "ldm r12, {{r0-r5, r8}}",
        "mov r6, #0x01000000",
        "mov r7, #128",
        "mov r9, #16384",
        "1:",
        "ldr r10, [r0], #4",
        act!("r4", "r10", "r11"),
        "ldr r10, [r1], #4",
        "lsl r10, r10, #15",
        "smmulr r10, r10, r8",
        act!("r5", "r10", "r12"),
        "smlabb r12, r11, r12, r9",
        "asr r12, r12, #15",
        "str r12, [r2], #4",
        "cmp r2, r3",
        "bne 1b",
        "pop {{r4-r11, pc}}",
    )
}

/// What [`int8_codes`] reads, in its register order.
#[repr(C)]
struct CodesJob {
    /// The values, coded in place, and their end (an even count from `values`).
    values: *mut i32,
    pairs_end: *mut i32,
    multiplier: i32,
    bias: i32,
    shift: u32,
}

/// `v = clamp((mul_high(v, m) + bias) >> shift, -128, 127)`, [`ToCodes::code`]'s fast path
/// for int8 codes, two values per pass (`smmla`, `asr`, `ssat`).
///
/// # Safety
///
/// `job` as [`CodesJob`] documents, `values < pairs_end`, 4-byte aligned.
#[unsafe(naked)]
unsafe extern "C" fn int8_codes(job: *const CodesJob) {
    core::arch::naked_asm!(
        "push {{r4-r6, lr}}",
        "mov r12, r0",
        "ldm r12, {{r0-r3, r12}}",
        "1:",
        "ldm r0, {{r4, r5}}",
        "smmla r4, r4, r2, r3",
        "smmla r5, r5, r2, r3",
        "asr r4, r4, r12",
        "asr r5, r5, r12",
        "ssat r4, #8, r4",
        "ssat r5, #8, r5",
        "stm r0!, {{r4, r5}}",
        "cmp r0, r1",
        "bne 1b",
        "pop {{r4-r6, pc}}",
    )
}

/// [`crate::kernels::Kernels::lstm_units_i8`] in three passes over the units (the cell state,
/// the Q0.15 outputs, their codes), each loop with its constants in registers; the generic
/// kernel for gate blocks that are not evenly spaced in memory (the cells' always are).
pub(super) fn dsp_lstm_units_i8(
    gates: LstmGates<'_>,
    c: &mut [i32],
    h: &mut [i32],
    params: &LstmParams,
) {
    let [gi, gf, gc, go] = gates;
    let units = [h.len(), c.len(), gi.len(), gf.len(), gc.len(), go.len()]
        .into_iter()
        .min()
        .unwrap_or(0);
    // The cell pass reads the forget and cell gates `stride` and `2 * stride` bytes after the
    // input gate's values (any distance, wrapping).
    let stride = (gf.as_ptr() as usize).wrapping_sub(gi.as_ptr() as usize);
    let spaced = (gc.as_ptr() as usize).wrapping_sub(gi.as_ptr() as usize) == stride << 1;
    if !spaced {
        generic::lstm::lstm_units_i8(gates, c, h, params);
        return;
    }
    let (Some(c), Some(h)) = (c.get_mut(..units), h.get_mut(..units)) else {
        return;
    };
    if units == 0 {
        return;
    }
    let frac = u32::from(params.cell_frac.min(15));
    let cells = CellJob {
        gates: gi.as_ptr(),
        stride,
        c: c.as_mut_ptr(),
        c_end: c.as_mut_ptr().wrapping_add(units),
        sigmoid: middle(&SIGMOID_SLOPES),
        tanh: middle(&TANH_SLOPES),
        input_m: 1 << (2 + frac),
    };
    // SAFETY: `units > 0` values of `c` (4-byte aligned), and of `gi`, `gf` and `gc`, which
    // lie `stride` and `2 * stride` bytes after `gi`'s (checked above); the tables' middles.
    unsafe { lstm_cells(&cells) };
    let outputs = OutputJob {
        gates: go.as_ptr(),
        c: c.as_ptr(),
        h: h.as_mut_ptr(),
        h_end: h.as_mut_ptr().wrapping_add(units),
        sigmoid: cells.sigmoid,
        tanh: cells.tanh,
        q12_m: 1 << (29 - frac),
    };
    // SAFETY: `units > 0` values of `go`, `c` and `h` (each at least that long); the cell pass
    // saturated every cell value to i16.
    unsafe { lstm_outputs(&outputs) };
    let p = &params.codes;
    let codes = ToCodes::new(p.requant, p.zero, p.lo, p.hi);
    to_codes(h, &codes);
}

/// `v = codes.code(v)` over `values`: int8 codes two at a time in assembly, any others (and an
/// odd last value) by [`ToCodes::code`].
#[inline(always)]
fn to_codes(values: &mut [i32], codes: &ToCodes) {
    let pairs = values.len() & !1;
    let rest = match codes.high_parts() {
        Some((multiplier, bias, shift)) if codes.bounds() == (-128, 127) && pairs > 0 => {
            let job = CodesJob {
                values: values.as_mut_ptr(),
                pairs_end: values.as_mut_ptr().wrapping_add(pairs),
                multiplier,
                bias,
                shift,
            };
            // SAFETY: `pairs > 0` (even) values of `values`, 4-byte aligned.
            unsafe { int8_codes(&job) };
            values.get_mut(pairs..).unwrap_or(&mut [])
        }
        _ => values,
    };
    let codes = *codes;
    for v in rest {
        *v = codes.code(*v);
    }
}

/// Units per pass of the GRU kernel: the gate words of a chunk wait on the stack.
const GRU_CHUNK: usize = 32;

/// What [`gru_gates`] reads, in its register order.
#[repr(C)]
struct GateJob {
    /// The update gate's pre-activations; the reset gate's and the candidate's input-side
    /// parts at `+ stride` and `+ 2 * stride` bytes.
    z: *const i32,
    stride: usize,
    /// The candidate's recurrent parts.
    cand_h: *const i32,
    /// The gate values (`cand, z` per unit), and their end.
    words: *mut i32,
    sigmoid: *const u32,
    tanh: *const u32,
    words_end: *mut i32,
}

/// Each unit's gate values `cand, z` (two words): `z` and `r` the
/// sigmoids of the gates, `cand = tanh(sat16(cand_x + round(r * cand_h >> 15)))`, the rounded
/// product as the cell's `reset_candidate_gate` takes it for `r` in `[0, 2^15)`: one `smmulr`
/// by `r` rotated left by 17 (`r * 2^17 - (r >> 14) * 2^32`) and `(r >> 14) * cand_h` added
/// back, exact for any `cand_h`.
///
/// # Safety
///
/// `job` as [`GateJob`] documents, `words < words_end`: as many values of each gate part
/// readable as words.
#[unsafe(naked)]
unsafe extern "C" fn gru_gates(job: *const GateJob) {
    core::arch::naked_asm!(
        "push {{r4-r11, lr}}",
        "mov r12, r0",
        "ldm r12, {{r0-r5, r8}}",
        "mov r6, #0x01000000",
        "mov r7, #128",
        // Two units per pass (one loop test for both), entered at the second for an odd count.
        "sub r10, r8, r3",
        "tst r10, #8",
        "bne 2f",
        "1:",
        gate_unit!(),
        "2:",
        gate_unit!(),
        "cmp r3, r8",
        "bne 1b",
        "pop {{r4-r11, pc}}",
    )
}

/// One unit of [`gru_gates`]: its two words stored, every pointer moved on.
macro_rules! gate_unit {
    () => {
        concat!(
            "ldr r10, [r0, r1]\n",
            act!("r4", "r10", "r11"),
            "ldr r12, [r2], #4\n",
            "lsr r10, r11, #14\n",
            "ror r11, r11, #15\n",
            "smmulr r11, r11, r12\n",
            "mla r11, r10, r12, r11\n",
            "ldr r10, [r0, r1, lsl #1]\n",
            "qadd r10, r10, r11\n",
            act!("r5", "r10", "r12"),
            "ldr r10, [r0], #4\n",
            act!("r4", "r10", "lr"),
            "strd r12, lr, [r3], #8\n",
        )
    };
}
use gate_unit;

/// What [`gru_blend`] reads, in its register order; it moves `words` and `h` on to the first
/// unit it did not update.
#[repr(C)]
struct BlendJob {
    words: *const i32,
    h: *mut i32,
    h_end: *mut i32,
    /// The `h` codes' zero point, and `h_to_q15`'s left shift and multiplier.
    zero: i32,
    q15_shift: u32,
    q15_m: i32,
    /// The output codes' [`ToCodes::high_parts`].
    code_m: i32,
    code_bias: i32,
    code_shift: u32,
}

/// The new `h` codes: per unit `codes(cand + round(z * (q15(h) - cand) >> 15))` from its gate
/// values (the cell's `blend` for `z >= 0`), `q15(h) = clamp(smmulr(sat(h - zero) << shift, m),
/// -2^15, 2^15)` (the cell's `HToQ15::q15_fast`). Stops at the first code whose difference
/// leaves `[-2^14, 2^14)` (the caller takes that unit).
///
/// # Safety
///
/// `job` as [`BlendJob`] documents, `h < h_end`, two words for every code.
#[unsafe(naked)]
unsafe extern "C" fn gru_blend(job: *mut BlendJob) {
    core::arch::naked_asm!(
        "push {{r4-r11, lr}}",
        "str r0, [sp, #-8]!",
        "mov r12, r0",
        "ldm r12, {{r0-r6, r8, r9}}",
        "mov r7, #16384",
        "1:",
        "ldr r11, [r1]",
        "qsub r11, r11, r3",
        "ssat r12, #15, r11",
        "cmp r12, r11",
        "bne 9f",
        "lsl r11, r11, r4",
        "smmulr r11, r11, r5",
        "ssat r12, #16, r11",
        "cmp r11, r12",
        "it gt",
        "addgt r12, r12, #1",
        "ldrd r11, r10, [r0], #8",
        "sub r12, r12, r11",
        "mla r12, r10, r12, r7",
        "add r12, r11, r12, asr #15",
        "smmla r12, r12, r6, r8",
        "asr r12, r12, r9",
        "ssat r12, #8, r12",
        "str r12, [r1], #4",
        "cmp r1, r2",
        "bne 1b",
        "9:",
        "ldr r12, [sp], #8",
        "stm r12, {{r0, r1}}",
        "pop {{r4-r11, pc}}",
    )
}

/// [`gru_blend`] when every int8 code is on its fast path without the clamp (checked once per
/// call by [`SmallRequant::int8_codes_unclamped`]): per unit only the test that the code is
/// int8 (`ssat`; the codes a step writes always are, and it stops at any other, as
/// [`gru_blend`] does), then `q15 = smmulr((h - zero) << shift, m)`: 15 instructions per unit
/// where [`gru_blend`] takes 19. Two units per pass (one loop test for both), entered at the
/// second for an odd count.
///
/// # Safety
///
/// As for [`gru_blend`].
#[unsafe(naked)]
unsafe extern "C" fn gru_blend_int8(job: *mut BlendJob) {
    core::arch::naked_asm!(
        "push {{r4-r11, lr}}",
        "str r0, [sp, #-8]!",
        "mov r12, r0",
        "ldm r12, {{r0-r6, r8, r9}}",
        "mov r7, #16384",
        "sub r12, r2, r1",
        "tst r12, #4",
        "bne 2f",
        "1:",
        blend_int8_unit!(),
        "2:",
        blend_int8_unit!(),
        "cmp r1, r2",
        "bne 1b",
        "9:",
        "ldr r12, [sp], #8",
        "stm r12, {{r0, r1}}",
        "pop {{r4-r11, pc}}",
    )
}

/// One unit of [`gru_blend_int8`]: branches to `9f` for a code outside int8.
macro_rules! blend_int8_unit {
    () => {
        concat!(
            "ldr r11, [r1]\n",
            "ssat r12, #8, r11\n",
            "cmp r12, r11\n",
            "bne 9f\n",
            "sub r11, r11, r3\n",
            "lsl r11, r11, r4\n",
            "smmulr r12, r11, r5\n",
            "ldrd r11, r10, [r0], #8\n",
            "sub r12, r12, r11\n",
            "mla r12, r10, r12, r7\n",
            "add r12, r11, r12, asr #15\n",
            "smmla r12, r12, r6, r8\n",
            "asr r12, r12, r9\n",
            "ssat r12, #8, r12\n",
            "str r12, [r1], #4\n",
        )
    };
}
use blend_int8_unit;

/// The new code of one unit whose `h` code the blend pass does not take, by the 64-bit
/// formula. Out of line and cold: the codes a step writes never come here, and inlined its
/// preparation was hoisted ahead of every call's loop.
#[cold]
#[inline(never)]
fn blend_wide(
    code: i32,
    cand: i32,
    z: i32,
    h_to_q15: crate::quant::Requant,
    zero: i32,
    to_codes: &ToCodes,
) -> i32 {
    let centered = i64::from(code) - i64::from(zero);
    let q15 = h_to_q15.apply(centered).clamp(-32768, 32768) as i32;
    let step = z.wrapping_mul(q15.wrapping_sub(cand));
    to_codes.code(cand.wrapping_add(step.wrapping_add(1 << 14) >> 15))
}

/// [`crate::kernels::Kernels::gru_units_i8`] in two passes per chunk of [`GRU_CHUNK`] units
/// (the gate words onto the stack, then the new codes), each loop with its constants in
/// registers. Declines (`false`, nothing written) unless the output codes are int8 with
/// [`ToCodes`]' fast path, `h_to_q15` has [`SmallRequant::apply_high`]'s and the gate parts
/// are evenly spaced (the cell's always are); an `h` code outside that path's range is
/// updated here by the 64-bit formula.
pub(super) fn dsp_gru_units_i8(
    gates: &GruGates<'_>,
    h: &mut [i32],
    h_to_q15: crate::quant::Requant,
    codes: &CodeParams,
) -> bool {
    let g = gates;
    let units = h
        .len()
        .min(g.z.len())
        .min(g.r.len())
        .min(g.cand_x.len())
        .min(g.cand_h.len());
    let stride = (g.r.as_ptr() as usize).wrapping_sub(g.z.as_ptr() as usize);
    let spaced = (g.cand_x.as_ptr() as usize).wrapping_sub(g.z.as_ptr() as usize) == stride << 1;
    let to_codes = ToCodes::new(codes.requant, codes.zero, codes.lo, codes.hi);
    let scale = SmallRequant::new(h_to_q15);
    let (Some((code_m, code_bias, code_shift)), Some(q15_shift), true, (-128, 127)) = (
        to_codes.high_parts(),
        scale.high_shift(),
        spaced,
        to_codes.bounds(),
    ) else {
        return false;
    };
    let Some(h) = h.get_mut(..units) else {
        return false;
    };
    // Checked once per call: a step's int8 codes then take the short loop.
    let blend_pass = if scale.int8_codes_unclamped(codes.zero) {
        gru_blend_int8
    } else {
        super::super::count_gru_general_blend();
        gru_blend
    };
    // Written by the gate pass before the blend pass reads them: no need to clear them first
    // (about 70 instructions per step).
    let mut buffer = [core::mem::MaybeUninit::<[i32; 2]>::uninit(); GRU_CHUNK];
    for (chunk, hs) in h.chunks_mut(GRU_CHUNK).enumerate() {
        let first = chunk * GRU_CHUNK;
        let n = hs.len();
        let Some(slots) = buffer.get_mut(..n) else {
            return true;
        };
        let start = slots.as_mut_ptr().cast::<i32>();
        let job = GateJob {
            z: g.z.as_ptr().wrapping_add(first),
            stride,
            cand_h: g.cand_h.as_ptr().wrapping_add(first),
            words: start,
            sigmoid: middle(&SIGMOID_SLOPES),
            tanh: middle(&TANH_SLOPES),
            words_end: start.wrapping_add(2 * n),
        };
        // SAFETY: units `first..first + n` of every gate part (`first + n <= units`; `r` and
        // `cand_x` lie `stride` and `2 * stride` bytes after `z`, checked above), `n > 0`
        // pairs of words on the stack (8-byte aligned for `strd`: an i32 array's 4 suffice
        // on ARMv7-M); the tables' middles.
        unsafe { gru_gates(&job) };
        // SAFETY: the gate pass wrote the first `n` pairs.
        let words: &[[i32; 2]] =
            unsafe { &*(core::ptr::from_ref(&buffer[..n]) as *const [[i32; 2]]) };
        let mut done = 0;
        while done < n {
            let mut blend = BlendJob {
                words: words.as_ptr().cast::<i32>().wrapping_add(2 * done),
                h: hs.as_mut_ptr().wrapping_add(done),
                h_end: hs.as_mut_ptr().wrapping_add(n),
                zero: codes.zero,
                q15_shift,
                q15_m: h_to_q15.multiplier,
                code_m,
                code_bias,
                code_shift,
            };
            // SAFETY: codes `done..n` of `hs` (`done < n`) and their words.
            unsafe { blend_pass(&mut blend) };
            done = (blend.h as usize - hs.as_ptr() as usize) / 4;
            // The unit it stopped at (if any), by the 64-bit formula.
            if let (Some(hv), Some(&[cand, z])) = (hs.get_mut(done), words.get(done)) {
                *hv = blend_wide(*hv, cand, z, h_to_q15, codes.zero, &to_codes);
                done += 1;
            }
        }
    }
    true
}
