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
//!
//! The projections of the integer cells ([`dsp_project_i8`], [`dsp_project_pair_i8`] for
//! the LSTM's `W x + U h`, both sides of a block of rows in one pass, and
//! [`dsp_project_split_i8`] for the GRU candidate's `W x` and `U h`, both in one pass into
//! separate outputs) run one assembly kernel, [`dsp_project_quads`], four rows at a time,
//! with a scalar reference path for what it cannot take.
//!
//! Blobs with pre-packed weights ([`WeightLayout::Interleaved4`]) run
//! [`dsp_project_quads_i4`], the same kernel with one `ldm` for the four rows' words of 4
//! columns (18 instructions per 16 MACs instead of 21; see `kernel-bench/count.sh`), in the
//! same modes: single, paired and split ([`dsp_project_split_i8_interleaved4`], the packed
//! GRU candidate).

use crate::kernels::{
    generic, project_rows_with, Kernels, ProjectionI8, RowsI8, WeightLayout, GENERIC,
};

mod units;

/// Columns packed per chunk: 256 bytes of stack for the code pairs.
const PACK: usize = 128;

/// Rows from which [`dsp_dot_rows_i8`] packs the codes for `smlad`.
const SMLAD_ROWS: usize = 4;

/// The generic table with the int8 products overridden.
pub static TABLE: Kernels = Kernels {
    name: "arm-dsp",
    dot_rows_i8: dsp_dot_rows_i8,
    pack_i16: dsp_pack_i16,
    project_i8: dsp_project_i8,
    project_pair_i8: Some(dsp_project_pair_i8),
    project_split_i8: Some(dsp_project_split_i8),
    lstm_units_i8: units::dsp_lstm_units_i8,
    gru_units_i8: Some(units::dsp_gru_units_i8),
    #[cfg(feature = "interleaved4")]
    project_i8_interleaved4: dsp_project_i8_interleaved4,
    #[cfg(feature = "interleaved4")]
    project_pair_i8_interleaved4: Some(dsp_project_pair_i8_interleaved4),
    #[cfg(feature = "interleaved4")]
    project_split_i8_interleaved4: Some(dsp_project_split_i8_interleaved4),
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
    // Packing costs about as much per column as `SMLAD_ROWS` rows of plain products
    // (`ldrsb`, `ldr`, `mla`): fewer rows (a Dense head) take those, same bits.
    if out.len() < SMLAD_ROWS {
        dot_few_rows(weights, x, out);
        return;
    }
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

/// [`generic::dot_rows_i8`] for the few rows that do not pay for packing (a Dense head): its
/// blocks of [`generic::I32_BLOCK`] products summed in wrapping i32, then in i64, so the same
/// bits (a wrapping sum does not depend on its order); four products per pass, so the loop's
/// count and index cost a quarter as much.
fn dot_few_rows(weights: &[u8], x: &[i32], out: &mut [i64]) {
    let cols = x.len();
    if cols == 0 {
        out.fill(0);
        return;
    }
    let w = |b: u8| i32::from(b as i8);
    for (o, row) in out.iter_mut().zip(weights.chunks_exact(cols)) {
        let mut sum = 0i64;
        for (ws, xs) in row
            .chunks(generic::I32_BLOCK)
            .zip(x.chunks(generic::I32_BLOCK))
        {
            let (w4, w_tail) = ws.as_chunks::<4>();
            let (x4, x_tail) = xs.as_chunks::<4>();
            let mut acc = 0i32;
            for (a, b) in w4.iter().zip(x4) {
                acc = acc
                    .wrapping_add(w(a[0]).wrapping_mul(b[0]))
                    .wrapping_add(w(a[1]).wrapping_mul(b[1]))
                    .wrapping_add(w(a[2]).wrapping_mul(b[2]))
                    .wrapping_add(w(a[3]).wrapping_mul(b[3]));
            }
            for (&a, &b) in w_tail.iter().zip(x_tail) {
                acc = acc.wrapping_add(w(a).wrapping_mul(b));
            }
            sum = sum.wrapping_add(i64::from(acc));
        }
        *o = sum;
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
    // Whole arrays per 4 codes: no per-word bounds checks, `ssat` and `pkhbt` per pair.
    let (quads, tail) = codes.as_chunks::<4>();
    let (words, _) = packed.as_chunks_mut::<2>();
    for (&[a, b, c, d], w) in quads.iter().zip(words.iter_mut()) {
        *w = [
            pair(sat16(a), sat16(c)) as i32,
            pair(sat16(b), sat16(d)) as i32,
        ];
    }
    let rest = packed.get_mut(2 * quads.len()..).unwrap_or(&mut []);
    for (w, two) in rest.iter_mut().zip(tail.chunks(2)) {
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

/// Code `c` of the `cols` codes [`dsp_pack_i16`] packed (0 past the end).
fn dsp_code(packed: &[i32], cols: usize, c: usize) -> i32 {
    let quads = cols / 4 * 4;
    let (word, high) = if c < quads {
        (c / 4 * 2 + c % 2, c % 4 >= 2)
    } else {
        (quads / 2 + (c - quads) / 2, (c - quads) % 2 == 1)
    };
    let word = packed.get(word).copied().unwrap_or(0);
    if high {
        word >> 16
    } else {
        i32::from(word as i16)
    }
}

/// The reference path of [`dsp_project_i8_interleaved4`]: the generic one of that layout over
/// this table's packing.
fn dsp_project_interleaved4_reference(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    generic::project_interleaved_with(rows, cols, out, accumulate, |c| dsp_code(packed, cols, c));
}

/// One projection as the assembly kernel reads it, at its current block of four rows (the
/// kernel moves `weights`, `bias` and `requant` on by a block as it goes).
#[repr(C)]
#[derive(Clone, Copy)]
struct Phase {
    /// 4-byte aligned, `4 * blocks` values, or null for no bias.
    bias: *const i32,
    /// `4 * blocks` rows of `cols` bytes.
    weights: *const u8,
    /// 4-byte aligned, `4 * blocks` values.
    requant: *const i32,
    /// A positive multiple of 4.
    cols: usize,
    /// `cols / 2` words, 4-byte aligned.
    packed: *const i32,
    /// `packed + cols / 2`, the end of the codes.
    packed_end: *const i32,
}

impl Phase {
    /// The unused second phase of a single projection.
    const NONE: Self = Self {
        bias: core::ptr::null(),
        weights: core::ptr::null(),
        requant: core::ptr::null(),
        cols: 0,
        packed: core::ptr::null(),
        packed_end: core::ptr::null(),
    };
}

/// `out` is stored as computed, [`Job::mode`].
const STORE: usize = 0;
/// `out` is added to, saturating.
const ACCUMULATE: usize = 1;
/// The sum of both phases is stored.
const PAIR: usize = 2;
/// Each phase is stored: the first at [`SplitJob::split`], the second at `out`.
const SPLIT: usize = 3;

/// What [`dsp_project_quads`] reads (at the offsets its assembly names, from `first`: the
/// second phase sits before it, so one `ldmdb` loads it).
#[repr(C)]
struct Job {
    /// Used in [`PAIR`] mode only.
    second: Phase,
    first: Phase,
    /// The next block's four outputs (4-byte aligned); moved on as each block is stored.
    out: *mut i32,
    /// One past the last block's outputs.
    end: *mut i32,
    /// [`STORE`], [`ACCUMULATE`], [`PAIR`] or [`SPLIT`]; the kernel overwrites it, at the end with the
    /// APSR, whose Q bit ([`Q_FLAG`]) says whether a block saturated.
    mode: usize,
}

/// A [`SPLIT`] mode job: the first phase's results go to `split`, moved on as each block is
/// stored (the kernel reads it only in that mode, so the other modes' jobs end before it).
#[repr(C)]
struct SplitJob {
    job: Job,
    split: *mut i32,
}

/// The APSR's sticky saturation flag.
const Q_FLAG: usize = 1 << 27;

/// Fills `phase` with rows `first..first + rows` of `p` as the assembly kernel reads them, if
/// it may take them: whole quads of columns, and aligned bias and requantizer views that hold
/// those rows (no bias tensor, a Keras LSTM's recurrent side, reads as zeros: a null pointer).
///
/// With `I4` the weights are [`WeightLayout::Interleaved4`]: with whole quads of columns a row
/// takes `cols` bytes there too, so a block starting at row `first` (a multiple of 4) starts
/// at the same offset.
#[inline(always)]
fn load<const I4: bool>(
    p: &ProjectionI8<'_>,
    first: usize,
    rows: usize,
    phase: &mut Phase,
) -> bool {
    let bias = p.rows.bias.as_bytes();
    let requant = p.rows.requant.values().as_bytes();
    let Some(end) = first.checked_add(rows) else {
        return false;
    };
    // A product rather than a division (`udiv` takes up to 12 cycles, every call).
    let Some(need) = end.checked_mul(p.cols) else {
        return false;
    };
    let aligned = |b: &[u8]| (b.as_ptr() as usize).is_multiple_of(4) && b.len() / 4 >= end;
    let fits = rows > 0
        // `ldm` needs word-aligned addresses (blobs keep every tensor so).
        && (!I4 || (first.is_multiple_of(4) && (p.rows.weights.as_ptr() as usize).is_multiple_of(4)))
        && p.cols.is_multiple_of(4)
        && p.cols > 0
        && p.packed.len() >= p.cols / 2
        && p.rows.weights.len() >= need
        && aligned(requant)
        && (bias.is_empty() || aligned(bias));
    if fits {
        // In bounds: the views hold `end` rows.
        *phase = Phase {
            bias: if bias.is_empty() {
                core::ptr::null()
            } else {
                bias.as_ptr().cast::<i32>().wrapping_add(first)
            },
            weights: p.rows.weights.as_ptr().wrapping_add(first * p.cols),
            requant: requant.as_ptr().cast::<i32>().wrapping_add(first),
            cols: p.cols,
            packed: p.packed.as_ptr(),
            packed_end: p.packed.as_ptr().wrapping_add(p.cols / 2),
        };
    }
    fits
}

/// The assembly kernel over the whole blocks of four rows of `out`, from rows `first..` of `x`
/// (and of `h` in [`PAIR`] mode): how many rows it stored exactly (all of those blocks, or
/// none of them if one saturated in [`STORE`] or [`PAIR`] mode, which do not check each block,
/// or in [`ACCUMULATE`] mode, which must not overwrite its summands, the blocks before the one
/// that saturated), or `None` if a view does not suit it.
#[inline(always)]
fn attempt<const I4: bool>(
    x: &ProjectionI8<'_>,
    h: Option<&ProjectionI8<'_>>,
    first: usize,
    mode: usize,
    out: &mut [i32],
) -> Option<usize> {
    let n = out.len() & !3;
    let start = out.as_mut_ptr();
    let mut job = Job {
        second: Phase::NONE,
        first: Phase::NONE,
        out: start,
        end: start.wrapping_add(n),
        mode,
    };
    if !load::<I4>(x, first, n, &mut job.first) {
        return None;
    }
    if let Some(h) = h {
        if !load::<I4>(h, first, n, &mut job.second) {
            return None;
        }
    }
    // SAFETY: `load` checked that each phase holds `n` rows of weights, its packed codes, and
    // as many aligned bias and requantizer values; `out..end` is the first `n` values of `out`
    // (aligned: an i32 slice; `n` a positive multiple of 4); the kernel reads and writes
    // nothing else; with `I4` the rows are interleaved, as `dsp_project_quads_i4` reads them.
    unsafe {
        if I4 {
            dsp_project_quads_i4(&mut job);
        } else {
            dsp_project_quads(&mut job);
        }
    }
    let stored = (job.out as usize).wrapping_sub(start as usize) / 4;
    Some(if job.mode & Q_FLAG != 0 && mode != ACCUMULATE {
        0
    } else {
        stored
    })
}

/// `p`'s projection into `out` by the scalar reference path (of the interleaved layout with
/// `I4`).
fn reference<const I4: bool>(p: &ProjectionI8<'_>, out: &mut [i32], accumulate: bool) {
    if I4 {
        super::count_reference_rows(out.len());
        dsp_project_interleaved4_reference(&p.rows, p.packed, p.cols, out, accumulate);
    } else {
        reference_rows(&p.rows, p.packed, p.cols, out, accumulate, 0, out.len());
    }
}

/// `p` without its first `rows` rows (a multiple of 4 with `I4`).
#[inline(always)]
fn skip<'a, const I4: bool>(p: &ProjectionI8<'a>, rows: usize) -> ProjectionI8<'a> {
    ProjectionI8 {
        rows: p.rows_from_in(WeightLayout::of::<I4>(), rows),
        ..*p
    }
}

/// The rare rest of [`dsp_project_i8`] (`second` none) and [`dsp_project_pair_i8`]: rows
/// `from..` of `out`, when the kernel stored the rows before `from` exactly: a block at a
/// time, each by the kernel, or if it saturated there by the reference path (same bits); the
/// last rows, fewer than a block, by the reference path too.
#[cold]
#[inline(never)]
fn finish<const I4: bool>(
    first: &ProjectionI8<'_>,
    second: Option<&ProjectionI8<'_>>,
    accumulate: bool,
    out: &mut [i32],
    mut from: usize,
) {
    let mode = match (second, accumulate) {
        (Some(_), _) => PAIR,
        (None, true) => ACCUMULATE,
        (None, false) => STORE,
    };
    while let Some(rest) = out.get_mut(from..).filter(|rest| !rest.is_empty()) {
        let x = skip::<I4>(first, from);
        let h = second.map(|h| skip::<I4>(h, from));
        let block = if rest.len() < 4 {
            rest
        } else {
            rest.get_mut(..4).unwrap_or(&mut [])
        };
        // A block the kernel did not store exactly (a saturation, or too few rows) was left
        // as it was in ACCUMULATE mode and is output only in the others.
        if attempt::<I4>(&x, h.as_ref(), 0, mode, block) != Some(block.len()) {
            reference::<I4>(&x, block, accumulate);
            if let Some(h) = &h {
                reference::<I4>(h, block, true);
            }
        }
        from += 4;
    }
}

/// The DSP projection: [`generic::project_i8`]'s bits, four rows per pass over the codes.
///
/// Per 8 columns two `ldrd` load the code pairs and each of the four rows costs two weight
/// loads, four `sxtb16` and four `smlad` (22 instructions per 16 MACs with the loop's two,
/// 23 when the loop ran 4 columns a pass; widths that are 4 more than a multiple of 8 enter
/// the loop half way; the paired call's recurrent side runs 16 columns a pass). The sums
/// start from the biases; per row the requantizer `(m, s)` is applied as
/// `t = smmul(acc, m) >> (s - 2)`, `v = t - (t >> 1)`: `smmul` is the product's high word, so
/// this is [`crate::quant::fixed`]'s high-word rounding (`(t + 1) >> 1 == t - (t >> 1)`), valid
/// for `n = 31 + s >= 33`; for `s - 2 >= 30` both give 0 (the product is below `2^62`), and
/// `asr` by a register shifts in sign bits for amounts of 32 and more.
///
/// Exactness is checked, not assumed: every step that could leave the exact 32-bit fast path
/// saturates and sets the sticky Q flag: an `smlad` whose sum (bias included) leaves i32 (the
/// reference then takes its 128-bit path or sums in i64), a shift below 2 whose pre-shift of
/// the sum would lose bits (`ssat`, see [`requant_small_shift!`]), and an accumulation that
/// saturates. The flag is read once per call (per block when accumulating, before the block's
/// four results are stored, as the outputs are summands); a call that set it is redone a block
/// at a time, and a block that sets it by the scalar reference path (same bits), so the
/// result never depends on the widths or values. Real models never take it.
fn dsp_project_i8(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    project::<false>(rows, packed, cols, out, accumulate);
}

/// [`dsp_project_i8`], of interleaved rows with `I4` (by [`dsp_project_quads_i4`]).
#[inline(always)]
fn project<const I4: bool>(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    let p = ProjectionI8 {
        rows: *rows,
        packed,
        cols,
    };
    let mode = if accumulate { ACCUMULATE } else { STORE };
    match attempt::<I4>(&p, None, 0, mode, out) {
        Some(stored) if stored == out.len() => {}
        Some(stored) => finish::<I4>(&p, None, accumulate, out, stored),
        // Ragged widths, unaligned views, fewer than four rows.
        None => reference::<I4>(&p, out, accumulate),
    }
}

/// [`Kernels::project_pair_i8`] with both sides of a block of four rows in one kernel pass:
/// the `x` side's four results wait on the stack while the `h` side's are computed, then the
/// two are added (`qadd`, the saturating sum the second `project_i8` call makes) and stored
/// once. Same bits as the two calls: each side is [`dsp_project_i8`]'s arithmetic, a block
/// that saturates anywhere is redone by the reference path (`x`, then `h` accumulated), and
/// rows past the last whole block (or all rows, when a side does not suit the kernel) are
/// handed to the two calls.
fn dsp_project_pair_i8(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out: &mut [i32],
) {
    project_pair::<false>(x, h, first_row, out);
}

/// [`dsp_project_pair_i8`], of interleaved rows with `I4` (`first_row` a block start).
#[inline(always)]
fn project_pair<const I4: bool>(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out: &mut [i32],
) {
    match attempt::<I4>(x, Some(h), first_row, PAIR, out) {
        Some(stored) if stored == out.len() => {}
        Some(stored) => pair_rest::<I4>(x, h, first_row, out, stored),
        // A side the kernel cannot take (an input of 1 or 3 features): the two calls.
        None => {
            project_from::<I4>(x, first_row, out, false);
            project_from::<I4>(h, first_row, out, true);
        }
    }
}

/// [`Kernels::project_split_i8`] with both sides of a block of four rows in one kernel pass
/// ([`SPLIT`] mode: the `x` side's four results stored at `out_x`, then the `h` side's at
/// `out_h`), each side [`dsp_project_i8`]'s arithmetic. A call that saturated anywhere, the
/// rows past the last whole block, and sides the kernel cannot take go to the definition's
/// two calls, which are exact on their own.
fn dsp_project_split_i8(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out_x: &mut [i32],
    out_h: &mut [i32],
) {
    split::<false>(x, h, first_row, out_x, out_h);
}

/// The table's `project_split_i8_interleaved4`: [`dsp_project_split_i8`] over interleaved
/// rows (`first_row` a block start), by [`dsp_project_quads_i4`]'s [`SPLIT`] mode; the same
/// checks and fallbacks (two [`dsp_project_i8_interleaved4`] calls).
#[cfg(feature = "interleaved4")]
fn dsp_project_split_i8_interleaved4(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out_x: &mut [i32],
    out_h: &mut [i32],
) {
    split::<true>(x, h, first_row, out_x, out_h);
}

/// [`dsp_project_split_i8`], of interleaved rows with `I4`.
#[inline(always)]
fn split<const I4: bool>(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out_x: &mut [i32],
    out_h: &mut [i32],
) {
    let n = out_h.len().min(out_x.len()) & !3;
    // Each phase built only once it is known to suit the kernel: no `Phase::NONE` to clear
    // first (a 48-byte `memclr`).
    let phase = |p: &ProjectionI8<'_>| {
        let mut phase = Phase::NONE;
        load::<I4>(p, first_row, n, &mut phase).then_some(phase)
    };
    let stored = match (phase(x), phase(h)) {
        (Some(first), Some(second)) => {
            let start = out_h.as_mut_ptr();
            let mut job = SplitJob {
                job: Job {
                    second,
                    first,
                    out: start,
                    end: start.wrapping_add(n),
                    mode: SPLIT,
                },
                split: out_x.as_mut_ptr(),
            };
            let job_ptr = core::ptr::from_mut(&mut job).cast::<Job>();
            // SAFETY: `load` checked that each phase holds `n` rows (a positive multiple of
            // 4) of weights, its packed codes, and as many aligned bias and requantizer
            // values; `out..end` and `split..split + n` are the first `n` values of `out_h`
            // and `out_x` (i32 slices, so aligned); the kernel reads and writes nothing else;
            // with `I4` the rows are interleaved (and `load` checked that `first_row` starts
            // a block), as `dsp_project_quads_i4` reads them.
            unsafe {
                if I4 {
                    dsp_project_quads_i4(job_ptr);
                } else {
                    dsp_project_quads(job_ptr);
                }
            }
            if job.job.mode & Q_FLAG != 0 {
                0
            } else {
                n
            }
        }
        _ => 0,
    };
    if stored < out_h.len().max(out_x.len()) {
        split_rest::<I4>(x, h, first_row.saturating_add(stored), out_x, out_h, stored);
    }
}

/// The rest of [`dsp_project_split_i8`] (of interleaved rows with `I4`) from row `stored` of
/// its outputs: its definition's two calls. Out of line: real models with whole blocks never
/// take it.
#[cold]
#[inline(never)]
fn split_rest<const I4: bool>(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out_x: &mut [i32],
    out_h: &mut [i32],
    stored: usize,
) {
    super::count_split_rows(out_h.len().saturating_sub(stored));
    let out_x = out_x.get_mut(stored..).unwrap_or(&mut []);
    let out_h = out_h.get_mut(stored..).unwrap_or(&mut []);
    // With `I4`, `stored` is 0 or whole blocks, so `first_row` starts a block if the caller's
    // did (if not, the views are empty and the outputs untouched, as in the definition).
    project_from::<I4>(x, first_row, out_x, false);
    project_from::<I4>(h, first_row, out_h, false);
}

/// The table's `project_i8_interleaved4`: [`dsp_project_i8`] over interleaved rows, by
/// [`dsp_project_quads_i4`] (one `ldm` loads a block's four words of 4 columns: 18
/// instructions per 16 MACs instead of 21), with the same saturation checks and fallbacks
/// (the reference of that layout over this table's packing).
#[cfg(feature = "interleaved4")]
fn dsp_project_i8_interleaved4(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    project::<true>(rows, packed, cols, out, accumulate);
}

/// The table's `project_pair_i8_interleaved4`: [`dsp_project_pair_i8`] over interleaved
/// rows (`first_row` a block start).
#[cfg(feature = "interleaved4")]
fn dsp_project_pair_i8_interleaved4(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out: &mut [i32],
) {
    project_pair::<true>(x, h, first_row, out);
}

/// [`dsp_project_i8`] of `p`'s rows from `first_row` on: [`dsp_project_pair_i8`]'s two calls
/// when a side does not suit the kernel. Out of line (not cold: such models take it every
/// step), so the view is only built here, not ahead of the kernel on every paired call.
#[inline(never)]
fn project_from<const I4: bool>(
    p: &ProjectionI8<'_>,
    first_row: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    let p = skip::<I4>(p, first_row);
    project::<I4>(&p.rows, p.packed, p.cols, out, accumulate);
}

/// The rare rest of [`dsp_project_pair_i8`]: the rows from `stored` on (a saturation, or
/// rows past the last whole block); out of line, so the views of the rows from `first_row`
/// on are only built when needed.
#[cold]
#[inline(never)]
fn pair_rest<const I4: bool>(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out: &mut [i32],
    stored: usize,
) {
    let (x, h) = (skip::<I4>(x, first_row), skip::<I4>(h, first_row));
    finish::<I4>(&x, Some(&h), false, out, stored);
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
/// shifts branch to [`requant_small_shift!`]'s stub `l label 1` and come back to `l label 0`.
/// Uses `r7`.
macro_rules! requant_row {
    ($acc:literal, $q:literal, $l:literal, $label:literal) => {
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
            $l,
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
            $l,
            $label,
            "0:"
        )
    };
}

/// [`requant_row!`] for a shift `s >= 2` whose `s - 2` is in the low byte of `$shift`:
/// `t = smmul(acc, m) >> (s - 2)`, `acc = t - (t >> 1)`.
macro_rules! requant_fast {
    ($acc:literal, $q:literal, $shift:literal) => {
        concat!(
            "bic ",
            $q,
            ", ",
            $q,
            ", #255\n",
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
            ", ",
            $shift,
            "\n",
            "sub ",
            $acc,
            ", ",
            $acc,
            ", ",
            $acc,
            ", asr #1\n",
        )
    };
}

/// The requantization of shifts `s < 2` (`n = 31 + s <= 32`): `(acc * m + 2^(n-1)) >> n` is
/// `smmulr(acc << (32 - n), m)` when the shift loses no bits of `acc` (`r7` holds `s - 2`, so
/// `32 - n == !r7`); when it would, `ssat` of the multiplier (at least `2^30`) sets the Q
/// flag and the block goes to the reference path. Uses `r5`, `r7` and `r12`.
macro_rules! requant_small_shift {
    ($acc:literal, $q:literal, $l:literal, $label:literal) => {
        concat!(
            $l,
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
            $l,
            $label,
            "0b"
        )
    };
}

/// Four columns of the four rows: `r10` / `r11` hold the code pairs, `r5` / `r4` point at
/// rows 0 and 2 (rows 1 and 3 at `+ r7`), `r0..r3` are the sums; `r12` and `r6` are scratch.
macro_rules! four_columns {
    () => {
        concat!(
            "ldr r12, [r5, r7]\n",
            "sxtb16 r6, r12\n",
            "smlad r1, r6, r10, r1\n",
            "sxtb16 r12, r12, ror #8\n",
            "smlad r1, r12, r11, r1\n",
            "ldr r12, [r5], #4\n",
            "sxtb16 r6, r12\n",
            "smlad r0, r6, r10, r0\n",
            "sxtb16 r12, r12, ror #8\n",
            "smlad r0, r12, r11, r0\n",
            "ldr r12, [r4, r7]\n",
            "sxtb16 r6, r12\n",
            "smlad r3, r6, r10, r3\n",
            "sxtb16 r12, r12, ror #8\n",
            "smlad r3, r12, r11, r3\n",
            "ldr r12, [r4], #4\n",
            "sxtb16 r6, r12\n",
            "smlad r2, r6, r10, r2\n",
            "sxtb16 r12, r12, ror #8\n",
            "smlad r2, r12, r11, r2\n",
        )
    };
}

/// [`four_columns!`] over interleaved rows: `r5` points at the block's 16 bytes of these
/// columns, row `j`'s word at `4 j`, loaded by one `ldm` into `r4`, `r6`, `r7`, `r12`; `lr`
/// is the scratch register (the job's address waits on the stack).
macro_rules! four_columns_i4 {
    () => {
        concat!(
            "ldm r5!, {{r4, r6, r7, r12}}\n",
            "sxtb16 lr, r4\n",
            "smlad r0, lr, r10, r0\n",
            "sxtb16 r4, r4, ror #8\n",
            "smlad r0, r4, r11, r0\n",
            "sxtb16 lr, r6\n",
            "smlad r1, lr, r10, r1\n",
            "sxtb16 r6, r6, ror #8\n",
            "smlad r1, r6, r11, r1\n",
            "sxtb16 lr, r7\n",
            "smlad r2, lr, r10, r2\n",
            "sxtb16 r7, r7, ror #8\n",
            "smlad r2, r7, r11, r2\n",
            "sxtb16 lr, r12\n",
            "smlad r3, lr, r10, r3\n",
            "sxtb16 r12, r12, ror #8\n",
            "smlad r3, r12, r11, r3\n",
        )
    };
}

/// The start of one [`Phase`] of a block: `$load` loads the phase into `r4` (bias), `r5`
/// (weights), `r6` (requantizers), `r7` (cols), `r8` (codes) and `r9` (their end); the sums
/// `r0..r3` start from the biases, whose moved-on pointer goes back to offset `$bias` from
/// `lr` (`smlad` sets the Q flag if a biased partial sum leaves i32, as a separate `qadd`
/// would); no bias (`r4` is 0) gives zeros, two per `umull`. `$l` is a label prefix unique to
/// the instance; a column loop ([`loop8!`] or [`loop16!`]) and [`phase_tail!`] follow.
macro_rules! phase_head {
    ($load:literal, $bias:literal, $l:literal) => {
        phase_head!($load, $bias, $l, "add r4, r5, r7, lsl #1\n")
    };
    // `$rows`: the row pointers the column loop needs (none for interleaved rows).
    ($load:literal, $bias:literal, $l:literal, $rows:literal) => {
        concat!(
            $load,
            "\n",
            "cbz r4, ",
            $l,
            "1f\n",
            "ldm r4!, {{r0-r3}}\n",
            "str r4, [lr, #",
            $bias,
            "]\n",
            "b ",
            $l,
            "2f\n",
            $l,
            "1:\n",
            "umull r0, r1, r4, r4\n",
            "umull r2, r3, r4, r4\n",
            $l,
            "2:\n",
            $rows,
        )
    };
}

/// The column loop, 8 columns per pass, entered half way when `cols % 8 == 4` (the narrow
/// `x` side: one pass for 8 inputs).
macro_rules! loop8 {
    ($l:literal) => {
        loop8!($l, four_columns)
    };
    // `$four`: the macro of four columns of the four rows.
    ($l:literal, $four:ident) => {
        concat!(
            "tst r7, #4\n",
            "bne ",
            $l,
            "4f\n",
            $l,
            "3:\n",
            "ldrd r10, r11, [r8], #8\n",
            $four!(),
            $l,
            "4:\n",
            "ldrd r10, r11, [r8], #8\n",
            $four!(),
            "cmp r8, r9\n",
            "bne ",
            $l,
            "3b\n",
        )
    };
}

/// The column loop, 16 columns per pass (the recurrent side, as wide as the layer): entered
/// at the quarter `cols % 16` calls for, from the flags of `cols << 29` (N: bit 2, C: bit 3);
/// the entries for odd quarters are [`loop16_entry!`]'s.
macro_rules! loop16 {
    ($l:literal) => {
        loop16!($l, four_columns)
    };
    ($l:literal, $four:ident) => {
        concat!(
            "lsls r6, r7, #29\n",
            "bmi ",
            $l,
            "7f\n",
            "bcs ",
            $l,
            "5f\n",
            $l,
            "3:\n",
            "ldrd r10, r11, [r8], #8\n",
            $four!(),
            $l,
            "6:\n",
            "ldrd r10, r11, [r8], #8\n",
            $four!(),
            $l,
            "5:\n",
            "ldrd r10, r11, [r8], #8\n",
            $four!(),
            $l,
            "4:\n",
            "ldrd r10, r11, [r8], #8\n",
            $four!(),
            "cmp r8, r9\n",
            "bne ",
            $l,
            "3b\n",
        )
    };
}

/// [`loop16!`]'s entries for `cols % 16` of 12 (C set) and 4 (label 7: the instance's other
/// labels are 0 to 6, 9 and the requantization stubs' three digits).
macro_rules! loop16_entry {
    ($l:literal) => {
        concat!("\n", $l, "7:\n", "bcs ", $l, "6b\n", "b ", $l, "4b\n")
    };
}

/// The end of one [`Phase`] of a block: its four requantized results in `r0..r3`. `$weights`
/// is the offset from `lr` of the field the moved-on weights pointer is written back to, and
/// of the requantizers' right after it.
macro_rules! phase_tail {
    ($weights:literal, $requant:literal, $l:literal) => {
        // r4 is at row 3: the next block starts a row later.
        phase_tail!($weights, $requant, $l, "add r5, r4, r7\n")
    };
    // `$next`: leaves the next block's weights in `r5` and the job in `lr`.
    ($weights:literal, $requant:literal, $l:literal, $next:literal) => {
        concat!(
            $next,
            // Requantizers: multiplier in the top 24 bits, shift s in the low byte.
            "ldr r6, [lr, #",
            $requant,
            "]\n",
            "ldm r6!, {{r8-r11}}\n",
            "strd r5, r6, [lr, #",
            $weights,
            "]\n",
            // Every shift in 2..=65 (`s - 2` in the low byte, which is all `asr` reads, in
            // 0..=63): the four rows without a branch each; else the per-row path.
            "sub r4, r8, #2\n",
            "sub r5, r9, #2\n",
            "sub r6, r10, #2\n",
            "sub r7, r11, #2\n",
            "orr r12, r4, r5\n",
            "orr r12, r12, r6\n",
            "orr r12, r12, r7\n",
            "tst r12, #0xC0\n",
            "bne ",
            $l,
            "9f\n",
            requant_fast!("r0", "r8", "r4"),
            requant_fast!("r1", "r9", "r5"),
            requant_fast!("r2", "r10", "r6"),
            requant_fast!("r3", "r11", "r7"),
            $l,
            "0:",
        )
    };
}

/// The out-of-line requantization of [`phase_tail!`] instance `$l` for blocks with a shift outside
/// `2..=65`: row by row, with the small-shift stubs.
macro_rules! phase_stubs {
    ($l:literal) => {
        concat!(
            $l,
            "9:\n",
            requant_row!("r0", "r8", $l, "5"),
            "\n",
            requant_row!("r1", "r9", $l, "6"),
            "\n",
            requant_row!("r2", "r10", $l, "7"),
            "\n",
            requant_row!("r3", "r11", $l, "8"),
            "\n",
            "b ",
            $l,
            "0b\n",
            requant_small_shift!("r0", "r8", $l, "5"),
            "\n",
            requant_small_shift!("r1", "r9", $l, "6"),
            "\n",
            requant_small_shift!("r2", "r10", $l, "7"),
            "\n",
            requant_small_shift!("r3", "r11", $l, "8"),
        )
    };
}

/// Computes the blocks of four rows `job.out..job.end` (see [`dsp_project_i8`],
/// [`dsp_project_pair_i8`] and [`dsp_project_split_i8`]) and stores them, moving `job.out` on
/// (and in [`SPLIT`] mode [`SplitJob::split`], where the first phase's results go), and
/// leaves the APSR in `job.mode`: its Q flag is set if a block saturated. Every block is
/// stored in [`STORE`], [`PAIR`] and [`SPLIT`] mode (their outputs are outputs only);
/// [`ACCUMULATE`] mode stops before storing the first block that saturated (its outputs are
/// summands).
///
/// Registers in the column loop: `r0..r3` the four sums, `r5` / `r4` rows 0 and 2 (rows 1 and
/// 3 at `+ cols`, `r7`), `r8` the codes and `r9` their end, `r10` / `r11` a code pair, `r12` /
/// `r6` weights, `lr` the job's first phase (the second phase below it). In [`PAIR`] mode the
/// first phase's results wait on the stack.
///
/// # Safety
///
/// `job` must describe memory as [`Job`] and [`Phase`] document, with `out < end`; in
/// [`SPLIT`] mode it must be a [`SplitJob`]'s, whose `split` has room for as many values.
#[unsafe(naked)]
unsafe extern "C" fn dsp_project_quads(job: *mut Job) {
    core::arch::naked_asm!(
        "push {{r4-r11, lr}}",
        "movs r7, #0",
        "msr APSR_nzcvq, r7",
        "add lr, r0, #24",
        // Where each block goes after its first phase, by mode, once per call (a Thumb
        // address: bit 0 set for `ldr pc`).
        "ldr r7, [lr, #32]",
        "adr r8, 40f",
        "cmp r7, #2",
        "beq 31f",
        "adr r8, 44f",
        "cmp r7, #1",
        "beq 31f",
        "adr r8, 46f",
        "cmp r7, #3",
        "beq 31f",
        "adr r8, 45f",
        "31:",
        "orr r8, r8, #1",
        "str r8, [lr, #32]",
        // One block of four rows.
        "30:",
        phase_head!("ldm lr, {{r4-r9}}", "0", "1"),
        loop8!("1"),
        phase_tail!("4", "8", "1"),
        "ldr pc, [lr, #32]",
        // PAIR: the first phase's results wait on the stack.
        "40:",
        "push {{r0-r3}}",
        phase_head!("ldmdb lr, {{r4-r9}}", "-24", "2"),
        loop16!("2"),
        phase_tail!("-20", "-16", "2"),
        "pop {{r8-r11}}",
        "43:",
        "qadd r0, r8, r0",
        "qadd r1, r9, r1",
        "qadd r2, r10, r2",
        "qadd r3, r11, r3",
        // STORE starts here.
        "45:",
        "ldrd r7, r8, [lr, #24]",
        "stm r7!, {{r0-r3}}",
        "str r7, [lr, #24]",
        "cmp r7, r8",
        "bne 30b",
        "49:",
        "mrs r8, apsr",
        "str r8, [lr, #32]",
        "pop {{r4-r11, pc}}",
        // ACCUMULATE: the outputs are the other summands, and are only overwritten exactly.
        "44:",
        "ldr r7, [lr, #24]",
        "ldm r7, {{r8-r11}}",
        "qadd r0, r8, r0",
        "qadd r1, r9, r1",
        "qadd r2, r10, r2",
        "qadd r3, r11, r3",
        "mrs r8, apsr",
        "tst r8, #0x08000000",
        "bne 49b",
        "b 45b",
        // SPLIT: the first phase's results go to `split`, the second phase is PAIR's in a
        // copy that stores its own results (PAIR's adds the first phase's after its tail).
        "46:",
        "ldr r7, [lr, #36]",
        "stm r7!, {{r0-r3}}",
        "str r7, [lr, #36]",
        phase_head!("ldmdb lr, {{r4-r9}}", "-24", "5"),
        loop16!("5"),
        phase_tail!("-20", "-16", "5"),
        "b 45b",
        phase_stubs!("1"),
        phase_stubs!("2"),
        loop16_entry!("2"),
        phase_stubs!("5"),
        loop16_entry!("5"),
    )
}

/// [`dsp_project_quads`] over interleaved rows ([`crate::kernels::WeightLayout::Interleaved4`],
/// each phase's weights pointer at its first block): the same job, modes, sums, requantization
/// and Q-flag rules, with [`four_columns_i4!`]'s one `ldm` per 4 columns of the four rows. The
/// column loops use `lr` as scratch, so the job's address (`lr`'s value) is kept on the stack,
/// below the first phase's results in [`PAIR`] mode (on top in the others: [`SPLIT`] stores
/// its first phase's results before its second phase), and reloaded after each loop; after a
/// block's columns `r5` is the next block's start.
///
/// # Safety
///
/// As [`dsp_project_quads`], with each phase's `4 * blocks` rows stored interleaved.
#[unsafe(naked)]
unsafe extern "C" fn dsp_project_quads_i4(job: *mut Job) {
    core::arch::naked_asm!(
        "push {{r4-r11, lr}}",
        "movs r7, #0",
        "msr APSR_nzcvq, r7",
        "add lr, r0, #24",
        "push {{lr}}",
        "ldr r7, [lr, #32]",
        "adr r8, 40f",
        "cmp r7, #2",
        "beq 31f",
        "adr r8, 44f",
        "cmp r7, #1",
        "beq 31f",
        "adr r8, 46f",
        "cmp r7, #3",
        "beq 31f",
        "adr r8, 45f",
        "31:",
        "orr r8, r8, #1",
        "str r8, [lr, #32]",
        "30:",
        phase_head!("ldm lr, {{r4-r9}}", "0", "1", ""),
        loop8!("1", four_columns_i4),
        phase_tail!("4", "8", "1", "ldr lr, [sp]\n"),
        "ldr pc, [lr, #32]",
        "40:",
        "push {{r0-r3}}",
        phase_head!("ldmdb lr, {{r4-r9}}", "-24", "2", ""),
        loop16!("2", four_columns_i4),
        phase_tail!("-20", "-16", "2", "ldr lr, [sp, #16]\n"),
        "pop {{r8-r11}}",
        "qadd r0, r8, r0",
        "qadd r1, r9, r1",
        "qadd r2, r10, r2",
        "qadd r3, r11, r3",
        "45:",
        "ldrd r7, r8, [lr, #24]",
        "stm r7!, {{r0-r3}}",
        "str r7, [lr, #24]",
        "cmp r7, r8",
        "bne 30b",
        "49:",
        "mrs r8, apsr",
        "str r8, [lr, #32]",
        "add sp, sp, #4",
        "pop {{r4-r11, pc}}",
        "44:",
        "ldr r7, [lr, #24]",
        "ldm r7, {{r8-r11}}",
        "qadd r0, r8, r0",
        "qadd r1, r9, r1",
        "qadd r2, r10, r2",
        "qadd r3, r11, r3",
        "mrs r8, apsr",
        "tst r8, #0x08000000",
        "bne 49b",
        "b 45b",
        // SPLIT: the first phase's results go to `split`, then PAIR's second phase in a copy
        // that stores its own results (nothing on the stack above the job's address).
        "46:",
        "ldr r7, [lr, #36]",
        "stm r7!, {{r0-r3}}",
        "str r7, [lr, #36]",
        phase_head!("ldmdb lr, {{r4-r9}}", "-24", "5", ""),
        loop16!("5", four_columns_i4),
        phase_tail!("-20", "-16", "5", "ldr lr, [sp]\n"),
        "b 45b",
        phase_stubs!("1"),
        phase_stubs!("2"),
        loop16_entry!("2"),
        phase_stubs!("5"),
        loop16_entry!("5"),
    )
}
