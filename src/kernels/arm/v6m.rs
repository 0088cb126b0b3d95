//! The integer projection and the LSTM gate kernel for ARMv6-M (Cortex-M0/M0+; also valid
//! Thumb on M3): no DSP, no 32x32->64 multiply, only `muls` (32x32->32) and eight low
//! registers for most instructions. The gate kernel ([`v6m_lstm_units_i8`]) is described
//! there; the rest of these docs are the projection's.
//!
//! # Layout
//!
//! [`v6m_pack_i16`] stores the codes (saturated to i16, as every table does) in two byte
//! planes instead of i16 pairs: the low plane holds `lo[c] = x[c] as i8` in the first `cols`
//! bytes of the packed words, the high plane `hi[c] = (x[c] + 128) >> 8` (wrapped to i8) in the
//! next `cols`, so `x = lo + 256 * hi`; `hi` is 128 (stored as -128) only for the codes
//! `32640..=32767` whose low byte is negative, which is how [`code`] tells it from a real -128.
//! The int8 modes' codes all have `hi == 0`: the kernel then reads each code with one `ldrsb`
//! at the same running index as the weights.
//!
//! # Kernel
//!
//! [`v6m_project_quads`] computes four rows per pass: per column one `ldrsb` of the code and, per
//! row, `ldrsb` (register offset) + `muls` + `add` into an accumulator held in a high register
//! (r8..r11), then one `adds` of the shared index: 14 instructions per 4 multiply-accumulates,
//! unrolled eight columns deep and entered by a computed jump. The accumulators start at the
//! rows' biases, so the bias costs nothing per row.
//!
//! # Numerics
//!
//! A product of an int8 weight and an int8 code is at most `128 * 128 = 2^14` in magnitude;
//! the fast path runs only for `cols <= 2^16`, so a row sum is at most `2^30` and exact in i32
//! (bias plus sum may wrap, see below). Then per row, inline, the usual case: a biased sum in
//! `[-2^19, 2^19)` and a shift `s >= -10` (factors below `2^10`) is requantized from two
//! 32-bit products of the sum and the multiplier split at bit 12 (`row!`; its portable
//! statement is tested against [`crate::quant::Requant::apply`] on the host, for every shift
//! and multiplier). A wrapped biased sum cannot land in that range (the sum is within `2^30`),
//! so anything outside it goes to a subroutine that checks bias plus sum for overflow and
//! applies [`requant_i32`]'s arithmetic (the high word of the exact 64-bit product from four
//! 16x16 `muls`, then the crate's one rounding rule; no `__aeabi_lmul`). A row where either
//! would leave i32 stops the kernel; it and the rest of its block are redone in Rust with the
//! 64-bit rule (only sums and factors no real model has get there), and the kernel goes on
//! after them. Accumulation saturates like the generic kernel. So every row gets
//! [`project_i8`]'s bits. Codes outside int8 (the int16 modes), bias or requantizer views that
//! are not aligned little-endian words (the loader's always are; this module is only built for
//! little-endian targets) and the last `rows % 4` rows go through the scalar reference path
//! over the same layout (counted by [`super::reference_rows`]).
//!
//! # Cost
//!
//! 3.5 instructions per multiply-accumulate in the column loop, about 20 per row for the
//! requantization and store (22 to accumulate) and about 35 per block of four rows; about 150
//! per call (the checks, the int8 test of the high plane), about 120 per side of a paired call
//! ([`v6m_project_pair_i8`], the recurrent cells' `W x + U h`). An int8 LSTM(64) step on 8
//! features takes about 96,700 instructions on a Cortex-M0 (423,000 with the generic table),
//! about 80,000 of them in the projections and 8,000 in the gate kernel
//! (`firmware-examples/kernel-bench/count.sh`).
//!
//! [`requant_i32`]: crate::quant::fixed::requant_i32
//! [`project_i8`]: crate::kernels::generic::project_i8

use crate::kernels::{
    packed_len, project_rows_with, Kernels, LstmGates, LstmParams, ProjectionI8, RowsI8, GENERIC,
};
use crate::quant::{fixed::ToCodes, lut};

/// The generic table with the integer projection overridden.
pub static TABLE: Kernels = Kernels {
    name: "arm-v6m",
    pack_i16: v6m_pack_i16,
    project_i8: v6m_project_i8,
    project_pair_i8: Some(v6m_project_pair_i8),
    #[cfg(feature = "interleaved4")]
    project_i8_interleaved4: v6m_project_i8_interleaved4,
    lstm_units_i8: v6m_lstm_units_i8,
    ..GENERIC
};

/// Widest input the i32 row sums stay exact for (see the module docs).
const MAX_FAST_COLS: usize = 1 << 16;

/// Most rows per call of the assembly kernel without a bias (the length of [`ZEROS`], the bias
/// of rows without one), and of a call [`v6m_project_i8`] checks the short way.
const ROWS_PER_CALL: usize = 64;

/// The packed words as bytes, where the two planes live.
fn bytes_mut(packed: &mut [i32]) -> &mut [u8] {
    // SAFETY: the pointer and length cover exactly `packed`, which the returned slice borrows
    // mutably for its whole life; u8 has alignment 1 and every byte pattern is a valid i32.
    unsafe { core::slice::from_raw_parts_mut(packed.as_mut_ptr().cast::<u8>(), packed.len() * 4) }
}

/// The packed words as bytes (read side of [`bytes_mut`]).
fn bytes(packed: &[i32]) -> &[u8] {
    // SAFETY: as in `bytes_mut`, shared.
    unsafe { core::slice::from_raw_parts(packed.as_ptr().cast::<u8>(), packed.len() * 4) }
}

/// Packs codes into the two byte planes of the module docs (the words [`packed_len`] counts:
/// `cols` low bytes, `cols` high bytes, zeros after). Words beyond those are left untouched.
fn v6m_pack_i16(codes: &[i32], packed: &mut [i32]) {
    let cols = codes.len();
    let words = packed_len(cols).min(packed.len());
    let Some(packed) = packed.get_mut(..words) else {
        return;
    };
    let bytes = bytes_mut(packed);
    let (lo, rest) = bytes.split_at_mut(cols.min(bytes.len()));
    // The int8 modes' codes: the low plane and a test per code (8 instructions a code instead
    // of 11 on a Cortex-M0), then the high plane and the rest zeroed in one call; the same
    // bytes as the loop below, whose clamp leaves int8 codes alone and whose high byte of one
    // is 0.
    let mut wide = 0;
    for (l, &x) in lo.iter_mut().zip(codes) {
        *l = x as u8;
        wide |= x ^ i32::from(x as i8);
    }
    if wide == 0 {
        rest.fill(0);
        return;
    }
    let (hi, zeros) = rest.split_at_mut(cols.min(rest.len()));
    for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(codes) {
        let x = x.clamp(i32::from(i16::MIN), i32::from(i16::MAX));
        *l = x as u8;
        *h = ((x + 128) >> 8) as u8;
    }
    zeros.fill(0);
}

/// Code `c` from its plane bytes (see the module docs).
#[inline]
fn code(lo: u8, hi: u8) -> i32 {
    let (lo, hi) = (i32::from(lo as i8), i32::from(hi as i8));
    let hi = if hi == -128 && lo < 0 { 128 } else { hi };
    lo + 256 * hi
}

/// `sum_c w[c] * x[c]` over the planes, exact: the scalar reference path. Blocks of 256
/// products (each below `2^22`) are summed in i32, then widened.
fn dot_planes(row: &[u8], lo: &[u8], hi: &[u8]) -> i64 {
    row.chunks(256)
        .zip(lo.chunks(256).zip(hi.chunks(256)))
        .map(|(w, (l, h))| {
            let block = w
                .iter()
                .zip(l.iter().zip(h))
                .fold(0i32, |acc, (&w, (&l, &h))| {
                    acc.wrapping_add(i32::from(w as i8).wrapping_mul(code(l, h)))
                });
            i64::from(block)
        })
        .sum()
}

/// Whether every one of the `cols` codes fits int8: the high plane is all zeros (read as whole
/// words when it starts on one, as it does for the cells' widths).
#[inline]
fn int8_codes(packed: &[i32], cols: usize) -> bool {
    if cols.is_multiple_of(4) {
        packed.get(cols / 4..cols / 2).is_some_and(|w| {
            // SAFETY: the pointer and length cover exactly `w`, which is borrowed for the call.
            w.is_empty() || unsafe { v6m_or_words(w.as_ptr(), w.len()) } == 0
        })
    } else {
        int8_bytes(packed, cols)
    }
}

/// [`int8_codes`] for widths that are not a multiple of 4: byte by byte.
#[inline(never)]
fn int8_bytes(packed: &[i32], cols: usize) -> bool {
    bytes(packed)
        .get(cols..2 * cols)
        .is_some_and(|b| b.iter().fold(0, |a, &v| a | v) == 0)
}

/// The bitwise or of the `len` words at `words`, two per `ldm` (about 2.5 instructions a word:
/// this runs on every call, over the high plane of 16 words at LSTM(64)).
///
/// # Safety
///
/// `words` must point to `len >= 1` readable, aligned words.
#[unsafe(naked)]
unsafe extern "C" fn v6m_or_words(words: *const i32, len: usize) -> i32 {
    core::arch::naked_asm!(
        "push {{r4}}",
        "movs r4, #0",
        // An odd word first, then pairs.
        "lsrs r1, r1, #1",
        "bcc 1f",
        "ldm r0!, {{r4}}",
        "1:",
        "beq 3f",
        "2:",
        "ldm r0!, {{r2, r3}}",
        "orrs r4, r4, r2",
        "orrs r4, r4, r3",
        "subs r1, r1, #1",
        "bne 2b",
        "3:",
        "mov r0, r4",
        "pop {{r4}}",
        "bx lr",
    )
}

/// What the assembly kernel reads and advances: blocks of four rows starting at `weights`,
/// `cols` columns each, the low code plane ending at `codes_end`, and per row a bias, a packed
/// requantizer and an output, all 4-byte aligned, the outputs up to `end` (offsets are used by
/// the assembly: keep the order). Each finished block advances `weights`, `out`, `bias` and
/// `requant`, until `out` reaches `end`. A row the kernel cannot finish in 32 bits stops it
/// with `out` at that row (the block's earlier rows are done; the other pointers are then
/// meaningless).
#[repr(C)]
struct Job {
    weights: *const u8,
    cols: usize,
    codes_end: *const u8,
    out: *mut i32,
    /// The output after the last row: where `out` ends when every row is done.
    end: *mut i32,
    bias: *const i32,
    requant: *const i32,
    /// Nonzero: `out += v` (saturating); zero: `out = v`.
    accumulate: usize,
    /// Bytes of the unrolled column loop to skip on entry: [`COLUMN_BYTES`] per column,
    /// `(-cols) mod UNROLL` columns, so that the rest is a multiple of [`UNROLL`].
    skip: usize,
}

/// Columns per pass of the unrolled column loop.
const UNROLL: usize = 8;

/// Bytes of the code of one column ([`column!`]: fourteen 16-bit instructions).
const COLUMN_BYTES: usize = 28;

/// The bias of rows without one.
static ZEROS: [i32; ROWS_PER_CALL] = [0; ROWS_PER_CALL];

/// The ARMv6-M projection: [`project_i8`]'s bits (see the module docs). Kept out of
/// line: the cells call it from several places, and its setup is small next to the kernel.
///
/// [`project_i8`]: crate::kernels::generic::project_i8
#[inline(never)]
fn v6m_project_i8(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    let n = out.len();
    if usual(rows, packed, cols, n) {
        quads(rows, packed, cols, out, accumulate, 0, n);
    } else {
        any_rows(rows, packed, cols, out, accumulate);
    }
}

/// [`Kernels::project_pair_i8`]: the two [`v6m_project_i8`] calls its definition makes, with
/// the usual case checked on the sides' whole views (no sub-views built) and each side's
/// rows passed straight to the assembly kernel. The cells make this call 16 times per
/// LSTM(64) step, where the generic pair wrapper and the two calls cost about 450
/// instructions a call on a Cortex-M0.
#[inline(never)]
fn v6m_project_pair_i8(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out: &mut [i32],
) {
    pair_side(x, first_row, out, false);
    pair_side(h, first_row, out, true);
}

/// The table's `project_i8_interleaved4`: the generic reference over the planes.
#[cfg(feature = "interleaved4")]
fn v6m_project_i8_interleaved4(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    let bytes = bytes(packed);
    crate::kernels::generic::project_interleaved_with(rows, cols, out, accumulate, |c| {
        match (bytes.get(c), bytes.get(cols + c)) {
            (Some(&lo), Some(&hi)) => code(lo, hi),
            _ => 0,
        }
    });
}

/// One side of [`v6m_project_pair_i8`]: [`v6m_project_i8`] of `p`'s rows from `first`. Out
/// of line: one copy for both sides is 460 bytes of flash less for about 18 instructions more
/// per paired call.
#[inline(never)]
fn pair_side(p: &ProjectionI8<'_>, first: usize, out: &mut [i32], accumulate: bool) {
    match pair_job(p, first, out, accumulate) {
        Some(mut job) => {
            // SAFETY: `pair_job` checked that `job` describes the `out.len()` rows (a nonzero
            // multiple of 4) from `first` of `p` as `Job` documents: the weights, bias (or
            // `ZEROS`, then `out.len() <= ROWS_PER_CALL`) and requantizer views hold them, the
            // packed codes `cols >= 1` low-plane bytes, `skip` is below `UNROLL` columns.
            unsafe { v6m_project_quads(&mut job) };
            if job.out != job.end {
                pair_rest(p, first, out, accumulate, &job);
            }
        }
        None => v6m_project_i8(&p.rows_from(first), p.packed, p.cols, out, accumulate),
    }
}

/// The assembly kernel's job for rows `first..first + out.len()` of side `p` into `out`,
/// when that is the usual call ([`usual`]'s checks, on `p`'s whole views): else `None`.
#[inline(always)]
fn pair_job(p: &ProjectionI8<'_>, first: usize, out: &mut [i32], accumulate: bool) -> Option<Job> {
    let (n, cols) = (out.len(), p.cols);
    let bias = p.rows.bias.as_bytes();
    let requant = p.rows.requant.values().as_bytes();
    // Below 2^15 rows before the block, 2^15 in it and 2^16 columns, `(first + n) * cols`
    // cannot wrap. Rows with a bias may be any number (a cell whose one block holds every
    // unit: 256 rows at LSTM(64)); without one, the kernel reads `ZEROS`.
    let to = first + n;
    let words = |b: &[u8]| (b.as_ptr() as usize).is_multiple_of(4) && b.len() >= 4 * to;
    let rows_ok = if bias.is_empty() {
        n.wrapping_sub(1) < ROWS_PER_CALL
    } else {
        n.wrapping_sub(1) < 1 << 15
    };
    let usual = rows_ok
        && n.is_multiple_of(4)
        && first < 1 << 15
        && cols.wrapping_sub(1) < MAX_FAST_COLS
        && to * cols <= p.rows.weights.len()
        && p.packed.len() >= packed_len(cols)
        && (bias.is_empty() || words(bias))
        && words(requant)
        && int8_codes(p.packed, cols);
    if !usual {
        return None;
    }
    let bias = if bias.is_empty() {
        ZEROS.as_ptr()
    } else {
        bias.as_ptr().cast::<i32>().wrapping_add(first)
    };
    let out = out.as_mut_ptr_range();
    Some(Job {
        weights: p.rows.weights.as_ptr().wrapping_add(first * cols),
        cols,
        codes_end: p.packed.as_ptr().cast::<u8>().wrapping_add(cols),
        out: out.start,
        end: out.end,
        bias,
        requant: requant.as_ptr().cast::<i32>().wrapping_add(first),
        accumulate: usize::from(accumulate),
        skip: cols.wrapping_neg() % UNROLL * COLUMN_BYTES,
    })
}

/// A [`pair_job`] the kernel stopped at a row that leaves 32 bits: that row and the rest by
/// [`resume`] (never for the values real models have).
#[cold]
#[inline(never)]
fn pair_rest(p: &ProjectionI8<'_>, first: usize, out: &mut [i32], accumulate: bool, job: &Job) {
    let n = out.len();
    let at = (job.out as usize).wrapping_sub(out.as_ptr() as usize) / 4;
    let rows = p.rows_from(first);
    resume(
        &rows,
        p.packed,
        p.cols,
        out,
        accumulate,
        0,
        n,
        at.min(n - 1),
    );
}

/// Whether `n` rows of `rows` over `cols` packed codes are the cells' usual call, checked in
/// few instructions: 4 to [`ROWS_PER_CALL`] rows in whole blocks of four (so `n * cols` cannot
/// wrap), all held by the weights, aligned bias and requantizer views, int8 codes. Such a call
/// goes to [`quads`] in one piece.
#[inline(always)]
fn usual(rows: &RowsI8<'_>, packed: &[i32], cols: usize, n: usize) -> bool {
    let bias = rows.bias.as_bytes();
    let requant = rows.requant.values().as_bytes();
    let words = |b: &[u8]| (b.as_ptr() as usize).is_multiple_of(4) && b.len() >= 4 * n;
    n.wrapping_sub(1) < ROWS_PER_CALL
        && n.is_multiple_of(4)
        && cols.wrapping_sub(1) < MAX_FAST_COLS
        && n * cols <= rows.weights.len()
        && packed.len() >= packed_len(cols)
        && (bias.is_empty() || words(bias))
        && words(requant)
        && int8_codes(packed, cols)
}

/// [`v6m_project_i8`] for any call: the fast path for the whole blocks of four it can take
/// (in calls of at most [`ROWS_PER_CALL`] rows when there is no bias), the reference path for
/// the rest.
#[inline(never)]
fn any_rows(rows: &RowsI8<'_>, packed: &[i32], cols: usize, out: &mut [i32], accumulate: bool) {
    if cols == 0 {
        return;
    }
    // Rows the weights hold, without a division or an overflow-checked multiply (library
    // calls here) in the usual case: both factors below 2^16, so the product cannot wrap.
    let n = if out.len() <= 0xFFFF
        && cols <= 0xFFFF
        && out.len().wrapping_mul(cols) <= rows.weights.len()
    {
        out.len()
    } else {
        out.len().min(rows.weights.len() / cols)
    };
    let bias = rows.bias.as_bytes();
    let requant = rows.requant.values().as_bytes();
    // Every row's bias (if there are any) and requantizer, as aligned words. The loader's
    // views always are; anything else takes the reference path.
    let aligned = |b: &[u8]| (b.as_ptr() as usize).is_multiple_of(4) && b.len() / 4 >= n;
    let fast = if cols <= MAX_FAST_COLS
        && packed.len() >= packed_len(cols)
        && (bias.is_empty() || aligned(bias))
        && aligned(requant)
        && int8_codes(packed, cols)
    {
        n - n % 4
    } else {
        0
    };
    let mut done = 0;
    while done < fast {
        let count = if bias.is_empty() {
            (fast - done).min(ROWS_PER_CALL)
        } else {
            fast - done
        };
        quads(rows, packed, cols, out, accumulate, done, count);
        done += count;
    }
    if done < n {
        reference_rows(rows, packed, cols, out, accumulate, done, n);
    }
}

/// Rows `from..from + count` (`count` a nonzero multiple of 4, at most [`ROWS_PER_CALL`] when
/// there is no bias) by the assembly kernel, on views checked as [`any_rows`] checks them.
#[inline]
fn quads(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
    from: usize,
    count: usize,
) {
    let to = from + count;
    if let Some(at) = run(rows, packed, cols, out, accumulate, from, to) {
        resume(rows, packed, cols, out, accumulate, from, to, at);
    }
}

/// Row `at` of a [`quads`] call over `from..to` left 32 bits: it and the rest of its block by
/// the 64-bit rule, then the kernel again after it (and so on).
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn resume(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
    from: usize,
    to: usize,
    at: usize,
) {
    let (mut from, mut at) = (from, at);
    loop {
        let end = at - (at - from) % 4 + 4;
        plane_rows(rows, packed, cols, out, accumulate, at, end);
        from = end;
        if from >= to {
            return;
        }
        match run(rows, packed, cols, out, accumulate, from, to) {
            Some(next) => at = next,
            None => return,
        }
    }
}

/// One call of the assembly kernel over rows `from..to` (see [`quads`]): the row where it
/// stopped, if it did.
#[inline]
fn run(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
    from: usize,
    to: usize,
) -> Option<usize> {
    let (Some(weights), Some(outs)) = (rows.weights.get(from * cols..), out.get_mut(from..to))
    else {
        return None;
    };
    let bias = rows.bias.as_bytes();
    let bias = if bias.is_empty() {
        ZEROS.as_ptr()
    } else {
        bias.as_ptr().cast::<i32>().wrapping_add(from)
    };
    let mut job = Job {
        weights: weights.as_ptr(),
        cols,
        codes_end: packed.as_ptr().cast::<u8>().wrapping_add(cols),
        out: outs.as_mut_ptr(),
        end: outs.as_mut_ptr_range().end,
        bias,
        requant: rows
            .requant
            .values()
            .as_bytes()
            .as_ptr()
            .cast::<i32>()
            .wrapping_add(from),
        accumulate: usize::from(accumulate),
        skip: cols.wrapping_neg() % UNROLL * COLUMN_BYTES,
    };
    // SAFETY: `job` describes the `to - from` rows (a nonzero multiple of 4) of `cols` bytes
    // inside `rows.weights` (`to <= n <= len / cols`), the `cols` bytes of the low code plane
    // before `codes_end` (`packed` holds `packed_len(cols)` words) and as many aligned bias (or
    // `ZEROS`, `to - from <= ROWS_PER_CALL`), requantizer and output values (checked by the
    // caller, and `outs` above); `cols >= 1`, `skip` below `UNROLL` columns. It touches nothing
    // else.
    unsafe { v6m_project_quads(&mut job) };
    if job.out == job.end {
        return None;
    }
    let at = (job.out as usize).wrapping_sub(outs.as_ptr() as usize) / 4;
    Some(from + at.min(outs.len().saturating_sub(1)))
}

/// Rows `from..to` by the scalar reference path over the planes.
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
    plane_rows(rows, packed, cols, out, accumulate, from, to);
}

/// Rows `from..to` by the scalar path over the planes (exact sums, the 64-bit rule), uncounted:
/// also the rare rows of the fast path whose biased sum or requantization leaves 32 bits.
#[inline(never)]
fn plane_rows(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
    from: usize,
    to: usize,
) {
    let bytes = bytes(packed);
    let (lo, rest) = bytes.split_at(cols.min(bytes.len()));
    let hi = rest.get(..cols).unwrap_or(rest);
    let (Some(weights), Some(out)) = (
        from.checked_mul(cols).and_then(|at| rows.weights.get(at..)),
        out.get_mut(from..to),
    ) else {
        return;
    };
    let sub = RowsI8 {
        weights,
        bias: rows.bias.skip(from),
        requant: rows.requant.skip(from),
    };
    project_rows_with(&sub, cols, out, accumulate, |row| dot_planes(row, lo, hi));
}

/// One column of the four rows: the code at the running index `r5` into `r6`, each row's
/// weight into `r7`, times the code, added to its accumulator; then the index moves on.
macro_rules! column {
    () => {
        concat!(
            "ldrsb r6, [r4, r5]\n",
            "ldrsb r7, [r0, r5]\n",
            "muls r7, r6, r7\n",
            "add r8, r8, r7\n",
            "ldrsb r7, [r1, r5]\n",
            "muls r7, r6, r7\n",
            "add r9, r9, r7\n",
            "ldrsb r7, [r2, r5]\n",
            "muls r7, r6, r7\n",
            "add r10, r10, r7\n",
            "ldrsb r7, [r3, r5]\n",
            "muls r7, r6, r7\n",
            "add r11, r11, r7\n",
            "adds r5, r5, #1\n",
        )
    };
}

/// The words of `r0 * r1` from four 16x16 `muls` ([`mul_i32_wide`]): the high word in `r0`,
/// and `r2` holding `w1`, whose bit 15 is the low word's top bit. Uses `r1`, `r3`, `r6`.
///
/// [`mul_i32_wide`]: crate::quant::fixed::mul_i32_wide
macro_rules! high_word {
    () => {
        concat!(
            "uxth r2, r0\n",
            "asrs r0, r0, #16\n",
            "uxth r3, r1\n",
            "asrs r1, r1, #16\n",
            "mov r6, r2\n",
            "muls r6, r3, r6\n",
            "muls r3, r0, r3\n",
            "muls r2, r1, r2\n",
            "muls r0, r1, r0\n",
            "lsrs r1, r6, #16\n",
            "adds r3, r3, r1\n",
            "uxth r1, r3\n",
            "adds r2, r2, r1\n",
            "asrs r3, r3, #16\n",
            "adds r0, r0, r3\n",
            "asrs r3, r2, #16\n",
            "adds r0, r0, r3\n",
        )
    };
}

/// One row's requantization, then `$store` of the result (in `r0`): `$sum` the row's biased
/// sum (a high register; wrapped if it left i32), `$k` four times its row in the block, `r5`
/// its packed requantizer (advanced here), `r6` its output. The usual case inline: sums in
/// `[-2^19, 2^19)` (never a wrapped one: the exact sum is within `2^30`) and shifts `s >= -10`,
/// where the multiplier `m = (mh * 2^12 + ml) * 2^8` (`mh = packed >> 20`, `ml` its next 12
/// bits) gives `h = floor(acc * m / 2^20) = acc * mh + (acc * ml >> 12)` in two 32-bit products
/// (`|acc * ml| < 2^31`, `|h| < 2^30 + 2^19`), and the crate's rounding
/// `floor((p + 2^(n-1)) / 2^n)` of `p = acc * m`, `n = 31 + s`, is `((h >> (s + 10)) + 1) >> 1`
/// (an `asrs` by 32 or more fills with the sign, which is the floor there; shifts above the
/// crate's cap give 0 either way). Anything else calls the subroutine at `7:`. Uses `r1..r3`,
/// `r7`.
macro_rules! row {
    ($sum:literal, $k:literal, $store:expr) => {
        concat!(
            "mov r0, ",
            $sum,
            "\n",
            "ldm r5!, {{r1}}\n",
            "adds r2, r0, r4\n",
            "lsrs r2, r2, #20\n",
            "bne 31f\n",
            "sxtb r7, r1\n",
            "adds r7, r7, #10\n",
            "bpl 32f\n",
            "31:\n",
            "movs r2, #",
            $k,
            "\n",
            "bl 7f\n",
            "b 33f\n",
            "32:\n",
            "lsls r2, r1, #12\n",
            "lsrs r2, r2, #20\n",
            "muls r2, r0, r2\n",
            "asrs r2, r2, #12\n",
            "asrs r3, r1, #20\n",
            "muls r0, r3, r0\n",
            "adds r0, r0, r2\n",
            "asrs r0, r0, r7\n",
            "adds r0, r0, #1\n",
            "asrs r0, r0, #1\n",
            "33:\n",
            $store,
        )
    };
}

/// `out = v`: `r6` the row's output, advanced.
macro_rules! store {
    () => {
        "stm r6!, {{r0}}\n"
    };
}

/// The saturating `out += v`: `r6` the row's output, advanced. Uses `r1`.
macro_rules! accumulate {
    () => {
        concat!(
            "ldr r1, [r6]\n",
            "adds r0, r0, r1\n",
            "bvc 34f\n",
            // Overflow: the wrapped sum has the wrong sign; saturate toward the right one.
            "asrs r0, r0, #31\n",
            "movs r1, #1\n",
            "lsls r1, r1, #31\n",
            "eors r0, r0, r1\n",
            "34:\n",
            "stm r6!, {{r0}}\n",
        )
    };
}

/// Computes the blocks of four rows `job` describes (see [`Job`] and the module docs): the four row
/// sums, started at the rows' biases, then per row [`row!`]: requantization and the store (or
/// saturating accumulation) into `out`.
///
/// Registers in the column loop: `r0..r3` the ends of the four rows, `r4` the end of the
/// codes, `r5` the column index running from `-cols` up to 0 (so its `adds` sets the loop's
/// flags), `r6` the code, `r7` a product, `r8..r11` the four sums, `r12` the job. The loop,
/// unrolled [`UNROLL`] columns deep, is entered `job.skip` bytes in (an `add pc`), so that a
/// multiple of [`UNROLL`] columns is left. A sum may wrap there when its bias is large; the
/// exact sum without it is within `2^30`, so a wrapped one is never in the inline range of
/// [`row!`], and the subroutine at `7:` checks. It takes the biased sum in `r0`, the packed
/// requantizer in `r1` and four times the row in `r2`, and uses `r3`, `r7` (and saves `r6`):
/// it leaves when bias plus sum left i32, else runs [`requant_i32`]'s arithmetic, for shifts
/// `s >= 2` `high` of `acc * m` (four 16x16 `muls`) then `((high >> (s - 2)) + 1) >> 1`;
/// below, `high` of `(acc << k) * m` plus the low word's top bit, `k = min(1 - s, 31)`,
/// leaving when `acc << k` does not fit.
///
/// [`requant_i32`]: crate::quant::fixed::requant_i32
///
/// # Safety
///
/// `job` must describe memory as [`Job`] documents, with `cols >= 1`, at least one block
/// (`end - out` a nonzero multiple of four rows) and `skip` below [`UNROLL`] columns.
#[unsafe(naked)]
unsafe extern "C" fn v6m_project_quads(job: *mut Job) {
    core::arch::naked_asm!(
        "push {{r4-r7, lr}}",
        "mov r4, r8",
        "mov r5, r9",
        "mov r6, r10",
        "mov r7, r11",
        "push {{r4-r7}}",
        "mov r12, r0",
        "mov r7, r0",
        // One block of four rows (`r7` the job): the sums start at the biases.
        "2:",
        "ldr r4, [r7, #20]",
        "ldm r4!, {{r0-r3}}",
        "str r4, [r7, #20]",
        "mov r8, r0",
        "mov r9, r1",
        "mov r10, r2",
        "mov r11, r3",
        "ldr r6, [r7, #4]",
        "ldr r4, [r7, #8]",
        "ldr r0, [r7, #0]",
        "adds r0, r0, r6",
        "adds r1, r0, r6",
        "adds r2, r1, r6",
        "adds r3, r2, r6",
        "rsbs r5, r6, #0",
        "ldr r6, [r7, #32]",
        // The pc reads as this instruction + 4: the loop's start, after the filler.
        "add pc, r6",
        "nop",
        "3:",
        column!(),
        column!(),
        column!(),
        column!(),
        column!(),
        column!(),
        column!(),
        column!(),
        "bne 3b",
        // r3 is the end of row 3: the next block's first row.
        "mov r7, r12",
        "str r3, [r7, #0]",
        "ldr r5, [r7, #24]",
        "ldr r6, [r7, #12]",
        "movs r4, #1",
        "lsls r4, r4, #19",
        "ldr r0, [r7, #28]",
        "cmp r0, #0",
        "bne 20f",
        row!("r8", "0", store!()),
        row!("r9", "4", store!()),
        row!("r10", "8", store!()),
        row!("r11", "12", store!()),
        "b 21f",
        "20:",
        row!("r8", "0", accumulate!()),
        row!("r9", "4", accumulate!()),
        row!("r10", "8", accumulate!()),
        row!("r11", "12", accumulate!()),
        "21:",
        "mov r7, r12",
        "str r5, [r7, #24]",
        "str r6, [r7, #12]",
        "ldr r1, [r7, #16]",
        "cmp r6, r1",
        "beq 9f",
        "b 2b",
        // The general requantization subroutine (see above). The block's biases end at
        // `job.bias`: bias + sum must not have wrapped.
        "7:",
        "push {{r6, lr}}",
        "mov r3, r12",
        "ldr r3, [r3, #20]",
        "subs r3, r3, #16",
        "ldr r2, [r3, r2]",
        "subs r3, r0, r2",
        "adds r3, r3, r2",
        "bvs 19f",
        "sxtb r7, r1",
        "lsrs r1, r1, #8",
        "lsls r1, r1, #8",
        "subs r7, r7, #2",
        "bmi 12f",
        high_word!(),
        "asrs r0, r0, r7",
        "adds r0, r0, #1",
        "asrs r0, r0, #1",
        "pop {{r6, pc}}",
        // Shifts below 2: k = min(1 - s, 31) (`!(s - 2)` is `1 - s`); acc << k, leaving if it
        // does not fit; then the high word of the product plus the low word's top bit.
        "12:",
        "mvns r7, r7",
        "cmp r7, #31",
        "bls 13f",
        "movs r7, #31",
        "13:",
        "mov r2, r0",
        "lsls r0, r0, r7",
        "mov r3, r0",
        "asrs r3, r3, r7",
        "cmp r3, r2",
        "bne 19f",
        high_word!(),
        "lsls r2, r2, #16",
        "lsrs r2, r2, #31",
        "adds r0, r0, r2",
        "pop {{r6, pc}}",
        // Leaving from the subroutine: drop its frame (`r6` is unchanged) and stop with `out`
        // at the row.
        "19:",
        "add sp, sp, #8",
        "mov r7, r12",
        "str r6, [r7, #12]",
        // Done.
        "9:",
        "pop {{r4-r7}}",
        "mov r8, r4",
        "mov r9, r5",
        "mov r10, r6",
        "mov r11, r7",
        "pop {{r4-r7, pc}}",
    )
}

/// [`Kernels::lstm_units_i8`] on ARMv6-M: [`generic::lstm::lstm_units_i8`]'s bits, the units
/// by [`v6m_lstm_units`] (about 125 instructions a unit, where the compiled generic loop and
/// its output-code pass take about 200 on a Cortex-M0: register spills around five table
/// lookups; 4,800 fewer per int8 LSTM(64) step).
/// Output codes other than int8 on [`ToCodes`]'s 32-bit rule go to the generic loop whole; a
/// unit whose cell value is outside i16 (a caller-written state, which no step writes) stops
/// the kernel, goes to the generic loop alone, and the kernel goes on after it. Those units
/// are counted by [`super::reference_units`].
///
/// [`generic::lstm::lstm_units_i8`]: crate::kernels::generic::lstm::lstm_units_i8
fn v6m_lstm_units_i8(gates: LstmGates<'_>, c: &mut [i32], h: &mut [i32], params: &LstmParams) {
    let [gi, gf, gc, go] = gates;
    let units = [h.len(), c.len(), gi.len(), gf.len(), gc.len(), go.len()]
        .into_iter()
        .min()
        .unwrap_or(0);
    let p = &params.codes;
    let codes = ToCodes::new(p.requant, p.zero, p.lo, p.hi);
    let parts = codes
        .high_parts()
        .filter(|_| codes.bounds() == (i8::MIN.into(), i8::MAX.into()));
    let Some((multiplier, bias, shift)) = parts else {
        super::count_reference_units(units);
        generic_lstm(gates, c, h, params);
        return;
    };
    let frac = u32::from(params.cell_frac.min(15));
    let (sigmoid, tanh) = lut::v6m_tables();
    let base = gi.as_ptr();
    // Byte offsets from the input gate's values: the kernel reads and writes every array at
    // one running pointer plus its offset (wrapping: the slices are separate objects).
    let offset = |p: *const i32| (p as isize).wrapping_sub(base as isize);
    let mut job = LstmJob {
        gi: base,
        end: base.wrapping_add(units),
        f: offset(gf.as_ptr()),
        g: offset(gc.as_ptr()),
        o: offset(go.as_ptr()),
        c: offset(c.as_ptr()),
        h: offset(h.as_ptr()),
        // The middle samples (index 128): the kernel indexes by `pre >> 8`, signed.
        sigmoid: sigmoid.as_ptr().wrapping_add(128),
        tanh: tanh.as_ptr().wrapping_add(128),
        input_half: 1 << (29 - frac),
        input_shift: 30 - frac,
        q12_half: 1 << (frac + 2),
        q12_shift: frac + 3,
        low: multiplier & 0xFFFF,
        high: multiplier >> 16,
        bias,
        shift,
    };
    let mut done = 0;
    while done < units {
        job.gi = base.wrapping_add(done);
        // SAFETY: `job` describes units `done..units`, which every slice holds (`units` is the
        // shortest length): the gate values at `gi` plus the offsets, read; `c` and `h` at theirs,
        // written (exclusive borrows, apart from the shared gates); both tables' middle samples,
        // whose 257 samples cover every index the kernel forms from an i16 pre-activation. The
        // constants are `CellFormat`'s and `ToCodes`'s for these parameters (see
        // `v6m_lstm_units`).
        let stop = unsafe { v6m_lstm_units(&job) };
        done = ((stop as usize).wrapping_sub(base as usize) / 4).min(units);
        if done < units {
            // The cell value of unit `done` is outside i16: that unit alone by the generic loop.
            super::count_reference_units(1);
            let gates = [gi, gf, gc, go].map(|g| g.get(done..=done).unwrap_or(&[]));
            let (Some(c), Some(h)) = (c.get_mut(done..=done), h.get_mut(done..=done)) else {
                return;
            };
            generic_lstm(gates, c, h, params);
            done += 1;
        }
    }
}

/// What [`v6m_lstm_units`] reads: the units from `gi` to `end` (input gate values), the other
/// arrays as byte offsets from `gi`, the tables' middle samples, and the constants of the
/// cell format (`CellFormat`: `frac` its fractional bits) and the output codes
/// ([`ToCodes::high_parts`]). The assembly reads the fields by position: keep the order.
#[repr(C)]
struct LstmJob {
    gi: *const i32,
    end: *const i32,
    /// Offsets of the forget, candidate and output gates' values.
    f: isize,
    g: isize,
    o: isize,
    /// Offsets of the cell values and the `h` codes.
    c: isize,
    h: isize,
    sigmoid: *const i16,
    tanh: *const i16,
    /// `2^(29 - frac)` and `30 - frac`: the rounding shift of `i * g`.
    input_half: i32,
    input_shift: u32,
    /// `2^(frac + 2)` and `frac + 3`: the cell value in Q3.12 (`CellFormat::q12`).
    q12_half: i32,
    q12_shift: u32,
    /// The output multiplier's low 16 bits and its high half (signed): `mul_high_q15`.
    low: i32,
    high: i32,
    /// [`ToCodes::high_parts`]' rounding term with the zero point, and shift.
    bias: i32,
    shift: u32,
}

/// The generic table's gate loop (the definition this kernel keeps), out of line.
#[inline(never)]
fn generic_lstm(gates: LstmGates<'_>, c: &mut [i32], h: &mut [i32], params: &LstmParams) {
    crate::kernels::generic::lstm::lstm_units_i8(gates, c, h, params);
}

/// `lut::interpolate_sat` of the table whose middle sample `$tab` points at, for the
/// pre-activation in `r0` already in i16 (`u = pre + 2^15` then has index `(pre >> 8) + 128`
/// and fraction `pre & 0xFF`), into `r0`: `a + (((b - a) * frac + 128) >> 8)`. Uses `r1..r3`.
macro_rules! interpolate {
    ($tab:literal) => {
        concat!(
            "asrs r1, r0, #8\n",
            "lsls r1, r1, #1\n",
            "ldrsh r2, [",
            $tab,
            ", r1]\n",
            "adds r1, r1, #2\n",
            "ldrsh r3, [",
            $tab,
            ", r1]\n",
            "subs r3, r3, r2\n",
            "uxtb r0, r0\n",
            "muls r3, r0, r3\n",
            "adds r3, r3, #128\n",
            "asrs r3, r3, #8\n",
            "adds r0, r2, r3\n",
        )
    };
}

/// Whether `r0` fits i16 (`$fix` when it does not, which comes back to `$back`). Uses `r1`.
macro_rules! check_i16 {
    ($fix:literal, $back:literal) => {
        concat!(
            "sxth r1, r0\n",
            "cmp r1, r0\n",
            "bne ",
            $fix,
            "\n",
            $back,
            ":\n"
        )
    };
}

/// The out-of-line saturation of `r0` to i16 at label `$at`, then back to `$back`: `-1 ^ 0x7FFF`
/// is `-2^15`, `0 ^ 0x7FFF` is `2^15 - 1`. Uses `r1`.
macro_rules! saturate_i16 {
    ($at:literal, $back:literal) => {
        concat!(
            $at,
            ":\n",
            "asrs r0, r0, #31\n",
            "movs r1, #1\n",
            "lsls r1, r1, #15\n",
            "subs r1, r1, #1\n",
            "eors r0, r0, r1\n",
            "b ",
            $back,
            "\n",
        )
    };
}

/// Computes the LSTM units `job` describes (see [`LstmJob`]) as
/// [`generic::lstm::lstm_units_i8`] does, unit by unit, `c` and `h` written in place; returns
/// the input gate pointer of the first unit not done: `job.end`, or a unit whose cell value
/// is outside i16 (then nothing of it was written).
///
/// Per unit: `f = sigmoid(gf)`, `forget = round(f * c >> 15)` (as `((f * c >> 14) + 1) >> 1`),
/// `i = sigmoid(gi)`, `g = tanh(gc)`, `c = sat16(forget + round(i * g >> (30 - frac)))`,
/// `t = tanh(sat16(c in Q3.12))`, `o = sigmoid(go)`, `v = round(o * t >> 15)` (`|v| <= 2^15`),
/// and the code `sat8((mul_high_q15(v, m) + bias) >> shift)`. Every product is at most `2^30`
/// in magnitude and every sum stays in i32 (the bounds of the generic loop's comments and of
/// `ToCodes::code`). Gate pre-activations are saturated to i16 by out-of-line code. The
/// constants live in a copy of the job on the stack; in the unit loop `r7` is the input gate
/// pointer, `r4` and `r6` the sigmoid and tanh tables, `r8` the forget term, `r9..r11` the
/// three addends (`2^(29 - frac)`, `2^(frac + 2)`, the codes' bias: a high register is one
/// `add`, a stack slot a load and an `adds`) and `r12` the end. About 125 instructions a unit,
/// short enough for the loop's conditional branch back.
///
/// [`generic::lstm::lstm_units_i8`]: crate::kernels::generic::lstm::lstm_units_i8
///
/// # Safety
///
/// `job` must describe memory as [`LstmJob`] documents: for every unit from `gi` up to `end`
/// (word steps, `end` reachable from `gi`), the four gate values readable and the cell value
/// and code writable at their offsets, and both table pointers at the middle of 257 readable
/// samples.
#[unsafe(naked)]
unsafe extern "C" fn v6m_lstm_units(job: *const LstmJob) -> *const i32 {
    core::arch::naked_asm!(
        "push {{r4-r7, lr}}",
        "mov r4, r8",
        "mov r5, r9",
        "mov r6, r10",
        "mov r7, r11",
        "push {{r4-r7}}",
        // The job's 17 words onto the stack, last ones first: `[sp, #4k]` is word `k`.
        "adds r0, r0, #44",
        "ldm r0!, {{r1-r6}}",
        "push {{r1-r6}}",
        "subs r0, r0, #48",
        "ldm r0!, {{r1-r6}}",
        "push {{r1-r6}}",
        "subs r0, r0, #44",
        "ldm r0!, {{r1-r5}}",
        "push {{r1-r5}}",
        "ldr r7, [sp, #0]",
        "ldr r4, [sp, #28]",
        "ldr r6, [sp, #32]",
        // The addends in high registers (`add` takes them in one instruction), and the end.
        "ldr r0, [sp, #36]",
        "mov r9, r0",
        "ldr r0, [sp, #44]",
        "mov r10, r0",
        "ldr r0, [sp, #60]",
        "mov r11, r0",
        "ldr r0, [sp, #4]",
        "mov r12, r0",
        "cmp r7, r0",
        "bne 1f",
        "b 9f",
        // Saturations of the first half of the loop, within a short branch's reach of it.
        saturate_i16!("40", "41f"),
        saturate_i16!("42", "43f"),
        saturate_i16!("44", "45f"),
        saturate_i16!("46", "47f"),
        // A cell value outside i16: stop at this unit.
        "8:",
        "b 9f",
        // One unit.
        "1:",
        // f = sigmoid(gf); forget = round(f * c >> 15), c checked to be in i16.
        "ldr r1, [sp, #8]",
        "ldr r0, [r7, r1]",
        check_i16!("40b", "41"),
        interpolate!("r4"),
        "ldr r1, [sp, #20]",
        "ldr r1, [r7, r1]",
        "sxth r2, r1",
        "cmp r2, r1",
        "bne 8b",
        "muls r0, r1, r0",
        "asrs r0, r0, #14",
        "adds r0, r0, #1",
        "asrs r0, r0, #1",
        "mov r8, r0",
        // i = sigmoid(gi), kept in r5.
        "ldr r0, [r7, #0]",
        check_i16!("42b", "43"),
        interpolate!("r4"),
        "mov r5, r0",
        // g = tanh(gc); c = sat16(forget + round(i * g >> (30 - frac))), stored.
        "ldr r1, [sp, #12]",
        "ldr r0, [r7, r1]",
        check_i16!("44b", "45"),
        interpolate!("r6"),
        "muls r0, r5, r0",
        "add r0, r9",
        "ldr r1, [sp, #40]",
        "asrs r0, r0, r1",
        "add r0, r8",
        check_i16!("46b", "47"),
        "ldr r1, [sp, #20]",
        "str r0, [r7, r1]",
        // t = tanh(sat16(c in Q3.12)), kept in r5.
        "lsls r0, r0, #15",
        "add r0, r10",
        "ldr r1, [sp, #48]",
        "asrs r0, r0, r1",
        check_i16!("50f", "51"),
        interpolate!("r6"),
        "mov r5, r0",
        // o = sigmoid(go); v = round(o * t >> 15).
        "ldr r1, [sp, #16]",
        "ldr r0, [r7, r1]",
        check_i16!("52f", "53"),
        interpolate!("r4"),
        "muls r0, r5, r0",
        "asrs r0, r0, #14",
        "adds r0, r0, #1",
        "asrs r0, r0, #1",
        // The code: (v * high + (v * low >> 16)) >> 16 is the high word of v * m; then the
        // bias, the shift and the int8 bounds.
        "ldr r1, [sp, #52]",
        "muls r1, r0, r1",
        "asrs r1, r1, #16",
        "ldr r2, [sp, #56]",
        "muls r0, r2, r0",
        "adds r0, r0, r1",
        "asrs r0, r0, #16",
        "add r0, r11",
        "ldr r1, [sp, #64]",
        "asrs r0, r0, r1",
        "sxtb r1, r0",
        "cmp r1, r0",
        "bne 54f",
        "55:",
        "ldr r1, [sp, #24]",
        "str r0, [r7, r1]",
        "adds r7, r7, #4",
        "cmp r7, r12",
        "bne 1b",
        "9:",
        "mov r0, r7",
        "add sp, #68",
        "pop {{r4-r7}}",
        "mov r8, r4",
        "mov r9, r5",
        "mov r10, r6",
        "mov r11, r7",
        "pop {{r4-r7, pc}}",
        // Saturations of the second half.
        saturate_i16!("50", "51b"),
        saturate_i16!("52", "53b"),
        // The code to int8: `-1 ^ 127` is -128.
        "54:",
        "asrs r0, r0, #31",
        "movs r1, #127",
        "eors r0, r0, r1",
        "b 55b",
    )
}
