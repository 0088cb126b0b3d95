//! The exact int8 products with the DSP extension: two 8x16-bit multiply-accumulates per
//! `smlad`, weights sign-extended two at a time by `sxtb16`.
//!
//! Per 4 columns the weights are one 32-bit load, `w = [w0 w1 w2 w3]`; `sxtb16 w` gives the
//! halfword pair `[w0, w2]` and `sxtb16 w, ror #8` gives `[w1, w3]`. The codes are packed once
//! per call into matching pairs `[x0, x2]`, `[x1, x3]` (they fit i16 in the integer modes; the
//! generic kernel runs otherwise), so each 4 columns cost one load, two extends and two
//! `smlad`. A pair sum is at most `2 * 2^7 * 2^15 = 2^23` and a chunk of `PACK` (128) columns
//! adds 64 of them, below `2^30`, in a 32-bit accumulator that is widened to i64 per chunk:
//! the exact sum, the same bits as the generic kernel.

use crate::kernels::{generic, project_rows_with, Kernels, RowsI8, GENERIC};

/// Columns packed per chunk: 256 bytes of stack for the code pairs.
const PACK: usize = 128;

/// The generic table with the int8 products overridden.
pub static TABLE: Kernels = Kernels {
    name: "arm-dsp",
    dot_rows_i8: dsp_dot_rows_i8,
    pack_i16: dsp_pack_i16,
    project_i8: dsp_project_i8,
    ..GENERIC
};

#[inline(always)]
fn sxtb16(w: u32) -> u32 {
    let out: u32;
    // SAFETY: a register-only DSP instruction, present on every target this module is built
    // for (see the build script); no memory or flags are touched.
    unsafe {
        core::arch::asm!("sxtb16 {o}, {w}", o = lateout(reg) out, w = in(reg) w,
            options(pure, nomem, nostack, preserves_flags));
    }
    out
}

#[inline(always)]
fn sxtb16_ror8(w: u32) -> u32 {
    let out: u32;
    // SAFETY: as in `sxtb16`.
    unsafe {
        core::arch::asm!("sxtb16 {o}, {w}, ror #8", o = lateout(reg) out, w = in(reg) w,
            options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// `acc + a.lo * b.lo + a.hi * b.hi` on signed halfwords. The result never overflows here (see
/// the module docs), so the Q flag it could set is never read.
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let out: i32;
    // SAFETY: a register-only DSP instruction (it may set the sticky Q flag, which nothing reads).
    unsafe {
        core::arch::asm!("smlad {o}, {a}, {b}, {c}", o = lateout(reg) out, a = in(reg) a,
            b = in(reg) b, c = in(reg) acc, options(pure, nomem, nostack));
    }
    out
}

fn pair(lo: i16, hi: i16) -> u32 {
    u32::from(lo as u16) | (u32::from(hi as u16) << 16)
}

fn dsp_dot_rows_i8(weights: &[u8], x: &[i32], out: &mut [i64]) {
    let cols = x.len();
    if cols == 0 {
        out.fill(0);
        return;
    }
    // `[x0, x2], [x1, x3]` per 4 columns of the chunk.
    let mut pairs = [0u32; PACK / 2];
    let mut start = 0;
    while start < cols {
        let end = cols.min(start + PACK);
        let codes = &x[start..end];
        let quads = codes.chunks_exact(4);
        let tail = quads.remainder();
        // The codes are checked while they are packed (one pass): a chunk that does not fit
        // i16 hands the whole product to the generic kernel, which rewrites every output.
        let mut fits = tail.iter().all(|&v| i32::from(v as i16) == v);
        for (q, slot) in quads.zip(pairs.chunks_exact_mut(2)) {
            let (a, b, c, d) = (q[0] as i16, q[1] as i16, q[2] as i16, q[3] as i16);
            fits &= (i32::from(a), i32::from(b), i32::from(c), i32::from(d))
                == (q[0], q[1], q[2], q[3]);
            slot[0] = pair(a, c);
            slot[1] = pair(b, d);
        }
        if !fits {
            generic::dot_rows_i8(weights, x, out);
            return;
        }
        for (o, row) in out.iter_mut().zip(weights.chunks_exact(cols)) {
            let chunk = row.get(start..end).unwrap_or(&[]);
            let words = chunk.chunks_exact(4);
            let tail_weights = words.remainder();
            let mut acc = 0i32;
            for (w4, xs) in words.zip(pairs.chunks_exact(2)) {
                let w = u32::from_le_bytes([w4[0], w4[1], w4[2], w4[3]]);
                acc = smlad(sxtb16(w), xs[0], acc);
                acc = smlad(sxtb16_ror8(w), xs[1], acc);
            }
            for (&w, &xv) in tail_weights.iter().zip(tail) {
                acc += i32::from(w as i8) * xv;
            }
            let sum = i64::from(acc);
            *o = if start == 0 { sum } else { *o + sum };
        }
        start = end;
    }
}

/// A code saturated to i16 (what every table's packing does).
#[inline]
fn sat16(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// Packs codes for [`dsp_project_i8`]: per 4 columns the words `[x0, x2]`, `[x1, x3]`
/// (low half first), the order `sxtb16` / `sxtb16 ror #8` extend weights in; the last
/// `cols % 4` codes in natural order (`[x0, x1]`, `[x2, 0]`). Every code saturated to i16.
fn dsp_pack_i16(codes: &[i32], packed: &mut [i32]) {
    let quads = codes.chunks_exact(4);
    let tail = quads.remainder();
    let mut words = packed.iter_mut();
    for q in quads {
        let (a, b, c, d) = (sat16(q[0]), sat16(q[1]), sat16(q[2]), sat16(q[3]));
        if let Some(w) = words.next() {
            *w = pair(a, c) as i32;
        }
        if let Some(w) = words.next() {
            *w = pair(b, d) as i32;
        }
    }
    for (w, two) in words.zip(tail.chunks(2)) {
        let (lo, hi) = match *two {
            [lo, hi] => (sat16(lo), sat16(hi)),
            [lo] => (sat16(lo), 0),
            _ => (0, 0),
        };
        *w = pair(lo, hi) as i32;
    }
}

/// `sum_c w[c] * x[c]` over codes in [`dsp_pack_i16`]'s order, exact, in scalar code: the
/// reference path of [`dsp_project_i8`] (ragged widths, unaligned views, and blocks whose
/// fast path saturated).
fn dot_dsp_order(row: &[u8], packed: &[i32]) -> i64 {
    let quads = row.chunks_exact(4);
    let tail = quads.remainder();
    let mut words = packed.iter();
    let mut sum = 0i64;
    let w = |b: u8| i64::from(b as i8);
    let lo = |v: i32| i64::from(v as i16);
    for q in quads {
        let (Some(&x02), Some(&x13)) = (words.next(), words.next()) else {
            return sum;
        };
        sum += w(q[0]) * lo(x02) + w(q[2]) * i64::from(x02 >> 16);
        sum += w(q[1]) * lo(x13) + w(q[3]) * i64::from(x13 >> 16);
    }
    for (two, &x) in tail.chunks(2).zip(words) {
        sum += match *two {
            [a, b] => w(a) * lo(x) + w(b) * i64::from(x >> 16),
            [a] => w(a) * lo(x),
            _ => 0,
        };
    }
    sum
}

/// What the assembly kernel reads: four rows at a time (`quads` of them) starting at
/// `weights`, with `cols` (a multiple of 4) columns each.
#[repr(C)]
struct Job {
    weights: *const u8,
    cols: usize,
    packed: *const i32,
    /// 4-byte aligned, `4 * quads` values, or null for no bias.
    bias: *const i32,
    /// 4-byte aligned, `4 * quads` values.
    requant: *const i32,
    out: *mut i32,
    quads: usize,
    accumulate: usize,
}

/// The DSP projection: [`generic::project_i8`]'s bits, four rows per pass over the codes.
///
/// Per 4 columns one `ldrd` loads the code pairs and each of the four rows costs a weight
/// load, two `sxtb16` and two `smlad` (23 instructions per 16 MACs). Per row the bias is added
/// with `qadd`, the requantizer `(m, s)` applied as `t = smmul(acc, m) >> (s - 2)`,
/// `v = t - (t >> 1)`: `smmul` is the product's high word, so this is
/// [`crate::quant::fixed`]'s high-word rounding (`(t + 1) >> 1 == t - (t >> 1)`), valid for
/// `n = 31 + s >= 33`; for `s - 2 >= 30` both give 0 (the product is below `2^62`), and `asr`
/// by a register shifts in sign bits for amounts of 32 and more.
///
/// Exactness is checked, not assumed: every step that could leave the exact 32-bit fast path
/// saturates and sets the sticky Q flag: an `smlad` whose sum overflows i32, a bias addition
/// outside i32 (the reference then takes its 128-bit path), a shift outside `2..=65` (`usat`),
/// and an accumulation that saturates. The flag is read before a block's four results are
/// stored; a block that set it is redone by the scalar reference path (same bits), so the
/// result never depends on the widths or values. Real models never take it.
fn dsp_project_i8(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    if cols == 0 {
        return;
    }
    let n = out.len().min(rows.weights.len() / cols);
    let bias = rows.bias.as_bytes();
    let requant = rows.requant.values().as_bytes();
    let aligned = |b: &[u8]| (b.as_ptr() as usize).is_multiple_of(4) && b.len() >= 4 * n;
    // No bias tensor (a Keras LSTM's recurrent side) reads as zeros: a null pointer.
    let fast = if cols.is_multiple_of(4)
        && packed.len() >= cols / 2
        && (bias.is_empty() || aligned(bias))
        && aligned(requant)
    {
        n / 4
    } else {
        0
    };
    let mut done = 0;
    while done < fast {
        let at = 4 * done;
        let (Some(weights), Some(requant), Some(rest)) = (
            rows.weights.get(at * cols..),
            requant.get(4 * at..),
            out.get_mut(at..),
        ) else {
            break;
        };
        let job = Job {
            weights: weights.as_ptr(),
            cols,
            packed: packed.as_ptr(),
            bias: bias
                .get(4 * at..)
                .filter(|b| !b.is_empty())
                .map_or(core::ptr::null(), |b| b.as_ptr().cast()),
            requant: requant.as_ptr().cast(),
            out: rest.as_mut_ptr(),
            quads: fast - done,
            accumulate: usize::from(accumulate),
        };
        // SAFETY: `job` describes `4 * quads` rows inside `rows.weights` (`n <= len / cols`),
        // `cols / 2 <= packed.len()` packed words, and `4 * quads` aligned bias, requantizer
        // and output values (checked above); the kernel reads and writes nothing else.
        done += unsafe { dsp_project_quads(&job) };
        if done < fast {
            // The block saturated somewhere: the scalar reference path, same bits.
            reference_rows(rows, packed, cols, out, accumulate, 4 * done, 4 * done + 4);
            done += 1;
        }
    }
    let done = 4 * done.min(fast);
    if done < n {
        reference_rows(rows, packed, cols, out, accumulate, done, n);
    }
}

/// Rows `from..to` by the scalar reference path over [`dsp_pack_i16`]'s order.
fn reference_rows(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
    from: usize,
    to: usize,
) {
    super::count_reference_rows(to.saturating_sub(from));
    let (Some(weights), Some(out)) = (rows.weights.get(from * cols..), out.get_mut(from..to))
    else {
        return;
    };
    let sub = RowsI8 {
        weights,
        bias: rows.bias.skip(from),
        requant: rows.requant.skip(from),
    };
    project_rows_with(&sub, cols, out, accumulate, |row| {
        dot_dsp_order(row, packed)
    });
}

/// One row's requantization in [`dsp_project_quads`]: `acc` (a register holding the biased
/// sum) becomes `t - (t >> 1)`, `t = smmul(acc, m) >> (s - 2)`, for shifts `s >= 2`; smaller
/// shifts branch to [`requant_small_shift!`]'s stub `label` and come back to `label` + `0`.
/// Uses `r7`.
macro_rules! requant_row {
    ($acc:literal, $q:literal, $label:literal) => {
        concat!(
            "sxtb r7, ",
            $q,
            "\n",
            "bic ",
            $q,
            ", ",
            $q,
            ", #255\n",
            "subs r7, r7, #2\n",
            "bmi ",
            $label,
            "1f\n",
            "smmul ",
            $acc,
            ", ",
            $acc,
            ", ",
            $q,
            "\n",
            "asr ",
            $acc,
            ", ",
            $acc,
            ", r7\n",
            "sub ",
            $acc,
            ", ",
            $acc,
            ", ",
            $acc,
            ", asr #1\n",
            $label,
            "0:"
        )
    };
}

/// The requantization of shifts `s < 2` (`n = 31 + s <= 32`): `(acc * m + 2^(n-1)) >> n` is
/// `smmulr(acc << (32 - n), m)` when the shift loses no bits of `acc` (`r7` holds `s - 2`, so
/// `32 - n == !r7`); when it would, `ssat` of the multiplier (at least `2^30`) sets the Q
/// flag and the block goes to the reference path. Uses `r5`, `r7` and `r12`.
macro_rules! requant_small_shift {
    ($acc:literal, $q:literal, $label:literal) => {
        concat!(
            $label,
            "1:\n",
            "mvn r7, r7\n",
            "lsl r5, ",
            $acc,
            ", r7\n",
            "asr r12, r5, r7\n",
            "cmp r12, ",
            $acc,
            "\n",
            "it ne\n",
            "ssatne r12, #1, ",
            $q,
            "\n",
            "smmulr ",
            $acc,
            ", r5, ",
            $q,
            "\n",
            "b ",
            $label,
            "0b"
        )
    };
}

/// Computes `job.quads` blocks of four rows (see [`dsp_project_i8`]) and returns how many it
/// stored: all of them, or the index of the first block that set the Q flag (not stored).
///
/// Registers in the column loop: `r0..r3` the four sums, `r4` / `r5` rows 0 and 2 (rows 1 and
/// 3 at `+ cols`, `r6`), `r7` the codes and `r8` their end, `r9` / `r10` a code pair, `r11` /
/// `r12` weights, `lr` blocks done; the job pointer stays on the stack.
///
/// # Safety
///
/// `job` must describe memory as [`Job`] documents, with `cols` a positive multiple of 4 and
/// `quads > 0`.
#[unsafe(naked)]
unsafe extern "C" fn dsp_project_quads(job: *const Job) -> usize {
    core::arch::naked_asm!(
        "push {{r0, r4-r11, lr}}",
        "movs r7, #0",
        "msr APSR_nzcvq, r7",
        "ldr r4, [r0, #0]",
        "ldr r6, [r0, #4]",
        "mov lr, #0",
        // One block of four rows.
        "2:",
        "ldr r12, [sp]",
        "ldr r7, [r12, #8]",
        "add r8, r7, r6, lsl #1",
        "add r5, r4, r6, lsl #1",
        "movs r0, #0",
        "movs r1, #0",
        "movs r2, #0",
        "movs r3, #0",
        // Four columns of the four rows.
        "3:",
        "ldrd r9, r10, [r7], #8",
        "ldr r11, [r4, r6]",
        "sxtb16 r12, r11",
        "smlad r1, r12, r9, r1",
        "sxtb16 r11, r11, ror #8",
        "smlad r1, r11, r10, r1",
        "ldr r11, [r4], #4",
        "sxtb16 r12, r11",
        "smlad r0, r12, r9, r0",
        "sxtb16 r11, r11, ror #8",
        "smlad r0, r11, r10, r0",
        "ldr r11, [r5, r6]",
        "sxtb16 r12, r11",
        "smlad r3, r12, r9, r3",
        "sxtb16 r11, r11, ror #8",
        "smlad r3, r11, r10, r3",
        "ldr r11, [r5], #4",
        "sxtb16 r12, r11",
        "smlad r2, r12, r9, r2",
        "sxtb16 r11, r11, ror #8",
        "smlad r2, r11, r10, r2",
        "cmp r7, r8",
        "bne 3b",
        // r5 is at row 3: the next block starts a row later.
        "add r4, r5, r6",
        "ldr r12, [sp]",
        // Biases, if there are any.
        "ldr r7, [r12, #12]",
        "cbz r7, 5f",
        "add r7, r7, lr, lsl #4",
        "ldm r7, {{r8-r11}}",
        "qadd r0, r0, r8",
        "qadd r1, r1, r9",
        "qadd r2, r2, r10",
        "qadd r3, r3, r11",
        "5:",
        // Requantizers: multiplier in the top 24 bits, shift s in the low byte.
        "ldr r7, [r12, #16]",
        "add r7, r7, lr, lsl #4",
        "ldm r7, {{r8-r11}}",
        requant_row!("r0", "r8", "6"),
        requant_row!("r1", "r9", "7"),
        requant_row!("r2", "r10", "8"),
        requant_row!("r3", "r11", "1"),
        "ldr r12, [sp]",
        // Accumulation, then the Q check before anything is stored.
        "ldr r7, [r12, #20]",
        "add r7, r7, lr, lsl #4",
        "ldr r5, [r12, #28]",
        "cbz r5, 4f",
        "ldm r7, {{r8-r11}}",
        "qadd r0, r8, r0",
        "qadd r1, r9, r1",
        "qadd r2, r10, r2",
        "qadd r3, r11, r3",
        "4:",
        "mrs r8, apsr",
        "tst r8, #0x08000000",
        "bne 9f",
        "stm r7, {{r0-r3}}",
        "add lr, lr, #1",
        "ldr r8, [r12, #24]",
        "cmp lr, r8",
        "bne 2b",
        "9:",
        "mov r0, lr",
        "pop {{r1, r4-r11, pc}}",
        requant_small_shift!("r0", "r8", "6"),
        requant_small_shift!("r1", "r9", "7"),
        requant_small_shift!("r2", "r10", "8"),
        requant_small_shift!("r3", "r11", "1"),
    )
}
