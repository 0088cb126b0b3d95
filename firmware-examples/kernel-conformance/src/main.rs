//! The integer kernel conformance suite on the MCU: the kernel table this build selects
//! (`arm-dsp` on a Cortex-M4F, `arm-v6m` on a Cortex-M0) against the generic reference, bit for
//! bit, on random projections (widths 0..=67 and larger, row counts around the four-row blocks,
//! weights 0..3 bytes off alignment, int8, int16 and out-of-range codes, random biases,
//! requantizers of every shift, accumulation into values near the i32 limits) and on
//! full-scale extremes whose 32-bit partial sums would overflow. The host runs the same suite
//! (`src/kernels/tests.rs`) but cannot execute these kernels. Exits 0 when every case matches.

#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use edgernn::kernels::{
    self, I32View, Kernels, ProjectionI8, RequantView, RowsI8, WeightLayout, GENERIC,
};
use panic_semihosting as _;

/// Widest random case; the extremes go wider.
const MAX_COLS: usize = 260;
const MAX_ROWS: usize = 17;
/// Columns of the full-scale cases (the codes take 4 bytes each of the 16 KiB of RAM).
const EXTREME_COLS: usize = 1024;
const EXTREME_ROWS: usize = 4;

/// Fixed-seed xorshift: the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next() % (i64::from(hi) - i64::from(lo) + 1) as u64) as i32
    }
    /// A packed requantizer: multiplier in `[2^30, 2^31)` (or 0) in the top 24 bits, mostly
    /// the shifts of real gate rows (0..=12), sometimes any valid one.
    fn requant(&mut self) -> i32 {
        let m = (0x4000_0000 | (self.next() as i32 & 0x3FFF_FFFF)) & !0xFF;
        let shift = match self.next() % 8 {
            0 => self.range(-30, 64),
            1 => 0,
            _ => self.range(-2, 12),
        };
        let m = if self.next().is_multiple_of(50) { 0 } else { m };
        m | i32::from(shift as i8 as u8)
    }
}

/// Bytes of little-endian i32 values, `offset` bytes into `buffer`.
fn le_into<'a>(values: &[i32], buffer: &'a mut [u8], offset: usize) -> &'a [u8] {
    let bytes = &mut buffer[offset..offset + 4 * values.len()];
    for (chunk, v) in bytes.chunks_exact_mut(4).zip(values) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// One projection through `table` (its own packing) and through the generic table.
#[allow(clippy::too_many_arguments)]
fn check(
    table: &Kernels,
    weights: &[u8],
    bias: &[i32],
    requant: &[i32],
    codes: &[i32],
    rows: usize,
    view_offset: usize,
    accumulate: bool,
    initial: &[i32],
    layout: WeightLayout,
) -> bool {
    let cols = codes.len();
    let mut bias_bytes = [0u8; 4 * MAX_ROWS + 4];
    let mut requant_bytes = [0u8; 4 * MAX_ROWS + 4];
    let view = RowsI8 {
        weights,
        bias: I32View::new(le_into(&bias[..rows], &mut bias_bytes, view_offset)),
        requant: RequantView::new(I32View::new(le_into(
            &requant[..rows],
            &mut requant_bytes,
            view_offset,
        ))),
    };
    let mut packed = [0x3C3C_3C3Ci32; EXTREME_COLS / 2];
    let mut got = [0i32; MAX_ROWS + 1];
    got[..=rows].copy_from_slice(&initial[..=rows]);
    let mut want = got;
    (table.pack_i16)(codes, &mut packed[..kernels::packed_len(cols)]);
    // Each layout by its own entry.
    let project = |k: &Kernels| match layout {
        WeightLayout::Interleaved4 => k.project_i8_interleaved4,
        _ => k.project_i8,
    };
    project(table)(&view, &packed, cols, &mut got[..rows], accumulate);
    let mut packed = [0x5A5A_5A5Ai32; EXTREME_COLS / 2];
    (GENERIC.pack_i16)(codes, &mut packed[..kernels::packed_len(cols)]);
    project(&GENERIC)(&view, &packed, cols, &mut want[..rows], accumulate);
    if got != want {
        hprintln!(
            "MISMATCH {} project {}x{} {:?} view offset {} accumulate {}: got {:?} want {:?}",
            table.name,
            rows,
            cols,
            layout,
            view_offset,
            accumulate,
            &got[..=rows],
            &want[..=rows]
        );
        return false;
    }
    true
}

/// Widest side of a paired case.
const PAIR_COLS: usize = 128;

/// Most rows (from the first) of a paired case: past the 64 rows of one call without a bias,
/// as a cell whose one block holds every unit makes them (256 at LSTM(64)).
const PAIR_ROWS: usize = 72;

/// Paired projections taller than 64 rows (the sides with a bias go to the v6m kernel in one
/// call, those without in calls of 64), int8 codes, whole blocks of four: on the Cortex-M0
/// no row may take the reference path. Returns whether all matched and the cases run.
#[inline(never)]
fn check_tall_pairs(table: &Kernels, rng: &mut Rng) -> (bool, u32) {
    // Both sides 8 columns wide, sharing biases and requantizers: the micro:bit's 16 KiB of
    // RAM hold this next to `main`'s buffers.
    let (cx, ch) = (8usize, 8usize);
    let mut wx = [0u8; PAIR_ROWS * 8];
    let mut wh = [0u8; PAIR_ROWS * 8];
    let mut x_codes = [0i32; 8];
    let mut h_codes = [0i32; 8];
    let mut bias = [0i32; PAIR_ROWS];
    let mut requant = [0i32; PAIR_ROWS];
    let mut initial = [0i32; PAIR_ROWS + 1];
    let mut ok = true;
    let mut cases = 0;
    let before = edgernn::kernels::arm::reference_rows();
    for (first, rows) in [(0usize, 68usize), (0, 72), (4, 68)] {
        for with_bias in [(true, true), (true, false), (false, true)] {
            wx.iter_mut().for_each(|v| *v = rng.next() as u8);
            wh.iter_mut().for_each(|v| *v = rng.next() as u8);
            x_codes.iter_mut().for_each(|v| *v = rng.range(-128, 127));
            h_codes.iter_mut().for_each(|v| *v = rng.range(-128, 127));
            bias.iter_mut()
                .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
            requant.iter_mut().for_each(|v| *v = rng.requant());
            initial
                .iter_mut()
                .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
            let x = Side {
                weights: &wx[..(first + rows) * cx],
                bias: if with_bias.0 { &bias[..] } else { &[] },
                requant: &requant,
                codes: &x_codes[..cx],
                layout: WeightLayout::RowMajor,
            };
            let h = Side {
                weights: &wh[..(first + rows) * ch],
                bias: if with_bias.1 { &bias[..] } else { &[] },
                requant: &requant,
                codes: &h_codes[..ch],
                layout: WeightLayout::RowMajor,
            };
            ok &= check_pair(table, (&x, &h), first, rows, &initial);
            cases += 1;
        }
    }
    let reference = edgernn::kernels::arm::reference_rows() - before;
    hprintln!(
        "{} tall paired cases, {} rows by the reference path",
        cases,
        reference
    );
    if table.name == "arm-v6m" && reference != 0 {
        hprintln!("MISMATCH: the v6m kernel did not take the tall pairs");
        ok = false;
    }
    (ok, cases)
}

/// Paired projections over interleaved weights (the packed blobs' layout), as the cells
/// make them: from block starts, input sides of any width, int8 and int16 codes. Returns
/// whether all matched and the cases run.
#[inline(never)]
fn check_interleaved_pairs(table: &Kernels, rng: &mut Rng) -> (bool, u32) {
    // Sized for the micro:bit's 16 KiB of RAM next to `main`'s buffers.
    const ROWS: usize = 16;
    const COLS: usize = 40;
    let mut wx = [0u8; ROWS * COLS];
    let mut wh = [0u8; ROWS * 20];
    let mut x_codes = [0i32; COLS];
    let mut h_codes = [0i32; 20];
    let mut bias = [0i32; ROWS];
    let mut requant = [0i32; ROWS];
    let mut initial = [0i32; ROWS + 1];
    let (mut ok, mut cases) = (true, 0);
    let layout = WeightLayout::Interleaved4;
    for (i, cx) in [0usize, 1, 3, 4, 8, 13, 16, 36, 37].into_iter().enumerate() {
        for (j, ch) in [4usize, 8, 16, 20].into_iter().enumerate() {
            for rows in [4usize, 8, 12, 5] {
                let first = if rows > 8 {
                    0
                } else {
                    [0, 4, 8][(i + j + rows) % 3]
                };
                let total = (first + rows).div_ceil(4) * 4;
                let codes = if (i + j) % 2 == 0 { 127 } else { 32767 };
                let wx = &mut wx[..total * layout.row_bytes(cx)];
                let wh = &mut wh[..total * layout.row_bytes(ch)];
                wx.iter_mut().for_each(|v| *v = rng.next() as u8);
                wh.iter_mut().for_each(|v| *v = rng.next() as u8);
                x_codes
                    .iter_mut()
                    .for_each(|v| *v = rng.range(-codes - 1, codes));
                h_codes
                    .iter_mut()
                    .for_each(|v| *v = rng.range(-codes - 1, codes));
                bias.iter_mut()
                    .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
                requant.iter_mut().for_each(|v| *v = rng.requant());
                initial
                    .iter_mut()
                    .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
                let x = Side {
                    weights: wx,
                    bias: &bias[..total],
                    requant: &requant[..total],
                    codes: &x_codes[..cx],
                    layout,
                };
                let h = Side {
                    weights: wh,
                    bias: if j % 2 == 0 { &[] } else { &bias[..total] },
                    requant: &requant[..total],
                    codes: &h_codes[..ch],
                    layout,
                };
                ok &= check_pair(table, (&x, &h), first, rows, &initial);
                cases += 1;
            }
        }
    }
    hprintln!("{} interleaved paired cases", cases);
    (ok, cases)
}

/// One side of a paired projection: weights, biases (none when empty), requantizers, codes.
struct Side<'a> {
    weights: &'a [u8],
    bias: &'a [i32],
    requant: &'a [i32],
    codes: &'a [i32],
    layout: WeightLayout,
}

/// `side`'s view with its bias and requantizer bytes and packed codes.
fn view<'a>(
    side: &Side<'a>,
    bias: &'a [u8],
    requant: &'a [u8],
    packed: &'a [i32],
) -> ProjectionI8<'a> {
    ProjectionI8 {
        rows: RowsI8 {
            weights: side.weights,
            bias: I32View::new(bias),
            requant: RequantView::new(I32View::new(requant)),
        },
        packed,
        cols: side.codes.len(),
    }
}

/// One paired projection (`W x + U h` into the same rows, as the LSTM computes its gates)
/// through `table` and through the generic table's definition (two generic `project_i8`
/// calls), each with its own packing.
fn check_pair(
    table: &Kernels,
    (x, h): (&Side<'_>, &Side<'_>),
    first: usize,
    rows: usize,
    initial: &[i32],
) -> bool {
    let mut bytes = [[0u8; 4 * PAIR_ROWS]; 4];
    let [bx, rx, bh, rh] = &mut bytes;
    let rows_of = |side: &Side<'_>, b: &mut [u8], r: &mut [u8]| {
        (
            le_into(&side.bias[..side.bias.len().min(first + rows)], b, 0).len(),
            le_into(&side.requant[..first + rows], r, 0).len(),
        )
    };
    let (lbx, lrx) = rows_of(x, bx, rx);
    let (lbh, lrh) = rows_of(h, bh, rh);
    let mut got = [0i32; PAIR_ROWS + 1];
    got[..=rows].copy_from_slice(&initial[..=rows]);
    let mut want = got;
    for (k, out) in [(table, &mut got), (&GENERIC, &mut want)] {
        let mut px = [0x3C3C_3C3Ci32; PAIR_COLS / 2];
        let mut ph = [0x5A5A_5A5Ai32; PAIR_COLS / 2];
        let (cx, ch) = (x.codes.len(), h.codes.len());
        (k.pack_i16)(x.codes, &mut px[..kernels::packed_len(cx)]);
        (k.pack_i16)(h.codes, &mut ph[..kernels::packed_len(ch)]);
        let vx = view(x, &bx[..lbx], &rx[..lrx], &px[..kernels::packed_len(cx)]);
        let vh = view(h, &bh[..lbh], &rh[..lrh], &ph[..kernels::packed_len(ch)]);
        match x.layout {
            WeightLayout::Interleaved4 => {
                kernels::project_pair_interleaved4_with(k, &vx, &vh, first, &mut out[..rows]);
            }
            _ => kernels::project_pair_with(k, &vx, &vh, first, &mut out[..rows]),
        }
    }
    if got != want {
        hprintln!(
            "MISMATCH {} project_pair rows {}..+{}, {}+{} columns: got {:?} want {:?}",
            table.name,
            first,
            rows,
            x.codes.len(),
            h.codes.len(),
            &got[..=rows],
            &want[..=rows]
        );
        return false;
    }
    true
}

/// Split projection cases run, those the DSP kernel could take in one pass (whole blocks,
/// widths a multiple of 4, aligned views), and those of them it took (the rest saturated).
static SPLIT_CASES: AtomicU32 = AtomicU32::new(0);
static SPLIT_ELIGIBLE: AtomicU32 = AtomicU32::new(0);
static SPLIT_FAST: AtomicU32 = AtomicU32::new(0);

/// Adds one to a counter (a load and a store: the Cortex-M0 has no atomic add).
fn bump(counter: &AtomicU32) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Bias and requantizer bytes of a split case, 4-byte aligned so the DSP kernel's one-pass
/// path can take them.
#[repr(C, align(4))]
struct AlignedRows([u8; 4 * PAIR_ROWS]);

/// One split projection (`W x` and `U h` of the same rows into separate outputs, as the GRU
/// computes its candidate) through `table` and through the generic table's definition (two
/// generic `project_i8` calls); the outputs past `rows` must stay untouched. Counts whether
/// the one-pass kernel took the case: the rows it leaves to two calls
/// (`arm::split_rows`) must be the tail past the last whole block when it did, or every row.
/// Called from `main` only, after [`check_pair`] (not nested in it or in [`check_tall_pairs`]:
/// the frames would not fit the 16 KiB of RAM), and only for a table with a split kernel.
#[inline(never)]
fn check_split(
    table: &Kernels,
    (x, h): (&Side<'_>, &Side<'_>),
    first: usize,
    rows: usize,
    initial: &[i32],
) -> bool {
    let mut bytes = [
        AlignedRows([0; 4 * PAIR_ROWS]),
        AlignedRows([0; 4 * PAIR_ROWS]),
        AlignedRows([0; 4 * PAIR_ROWS]),
        AlignedRows([0; 4 * PAIR_ROWS]),
    ];
    let [bx, rx, bh, rh] = &mut bytes;
    let rows_of = |side: &Side<'_>, b: &mut [u8], r: &mut [u8]| {
        (
            le_into(&side.bias[..side.bias.len().min(first + rows)], b, 0).len(),
            le_into(&side.requant[..first + rows], r, 0).len(),
        )
    };
    let (lbx, lrx) = rows_of(x, &mut bx.0, &mut rx.0);
    let (lbh, lrh) = rows_of(h, &mut bh.0, &mut rh.0);
    let mut outs = [[0i32; PAIR_ROWS + 1]; 4];
    for (k, out) in outs.iter_mut().enumerate() {
        // Different initial values on each side: a side written into the other's output shows.
        for (o, &v) in out[..=rows].iter_mut().zip(&initial[..=rows]) {
            *o = if k % 2 == 0 { v } else { !v };
        }
    }
    let [got_x, got_h, want_x, want_h] = &mut outs;
    let before = edgernn::kernels::arm::split_rows();
    for (k, ox, oh) in [(table, got_x, got_h), (&GENERIC, want_x, want_h)] {
        let mut px = [0x3C3C_3C3Ci32; PAIR_COLS / 2];
        let mut ph = [0x5A5A_5A5Ai32; PAIR_COLS / 2];
        let (cx, ch) = (x.codes.len(), h.codes.len());
        (k.pack_i16)(x.codes, &mut px[..kernels::packed_len(cx)]);
        (k.pack_i16)(h.codes, &mut ph[..kernels::packed_len(ch)]);
        let vx = view(
            x,
            &bx.0[..lbx],
            &rx.0[..lrx],
            &px[..kernels::packed_len(cx)],
        );
        let vh = view(
            h,
            &bh.0[..lbh],
            &rh.0[..lrh],
            &ph[..kernels::packed_len(ch)],
        );
        let (ox, oh) = (&mut ox[..rows], &mut oh[..rows]);
        match x.layout {
            WeightLayout::Interleaved4 => {
                kernels::project_split_interleaved4_with(k, &vx, &vh, first, ox, oh);
            }
            _ => kernels::project_split_with(k, &vx, &vh, first, ox, oh),
        }
    }
    let apart = edgernn::kernels::arm::split_rows() - before;
    let [got_x, got_h, want_x, want_h] = &outs;
    let (cx, ch) = (x.codes.len(), h.codes.len());
    bump(&SPLIT_CASES);
    // Interleaved rows also need a block start and word-aligned weights (`ldm`).
    let aligned = |side: &Side<'_>| (side.weights.as_ptr() as usize).is_multiple_of(4);
    let ldm_ready =
        x.layout == WeightLayout::RowMajor || (first.is_multiple_of(4) && aligned(x) && aligned(h));
    let eligible = cx % 4 == 0 && cx > 0 && ch % 4 == 0 && rows >= 4 && ldm_ready;
    if eligible {
        bump(&SPLIT_ELIGIBLE);
        if apart == rows % 4 {
            bump(&SPLIT_FAST);
        }
    }
    let expected_apart = if eligible {
        [rows % 4, rows]
    } else {
        [rows, rows]
    };
    if (got_x, got_h) != (want_x, want_h) || !expected_apart.contains(&apart) {
        hprintln!(
            "MISMATCH {} project_split rows {}..+{}, {}+{} columns ({} rows apart): x {:?} want {:?}, h {:?} want {:?}",
            table.name,
            first,
            rows,
            cx,
            ch,
            apart,
            &got_x[..=rows],
            &want_x[..=rows],
            &got_h[..=rows],
            &want_h[..=rows]
        );
        return false;
    }
    true
}

/// Split projections over interleaved weights (the packed GRU candidate's `W x` and `U h`),
/// from block starts, widths ragged or not, aligned and (some cases) misaligned weights,
/// int8 and int16 codes; then cases whose middle block saturates on one side (a bias at the
/// i32 limit, a lossy small shift), which the DSP kernel must hand back whole to the two
/// calls. On the DSP table most eligible cases must have run in one pass. Called from `main`
/// only for a table with an interleaved split kernel. The weights, codes and the `x` side's
/// biases and requantizers are `main`'s buffers (`scratch`): this frame and
/// [`check_split`]'s must fit below `main`'s in the 16 KiB of RAM.
/// Returns whether all matched and the cases run.
#[inline(never)]
fn check_interleaved_splits(
    table: &Kernels,
    rng: &mut Rng,
    scratch: (
        &mut [u8],
        &mut [i32],
        &mut [i32; MAX_ROWS],
        &mut [i32; MAX_ROWS],
    ),
) -> (bool, u32) {
    const ROWS: usize = 16;
    const COLS_X: usize = 40;
    const COLS_H: usize = 32;
    let layout = WeightLayout::Interleaved4;
    let (weights, codes, x_bias, x_requant) = scratch;
    // Word-aligned weights, as blobs keep them (the DSP kernel's `ldm` needs it), and one
    // spare word each: a misaligned view starts a byte in.
    let aligned = weights.as_ptr().align_offset(4);
    let (wx, wh) = weights[aligned..].split_at_mut(ROWS * COLS_X + 4);
    let wh = &mut wh[..ROWS * COLS_H + 4];
    let (x_codes, h_codes) = codes.split_at_mut(COLS_X);
    let h_codes = &mut h_codes[..COLS_H];
    let (mut h_bias, mut h_requant) = ([0i32; ROWS], [0i32; ROWS]);
    let mut initial = [0i32; ROWS + 1];
    let (mut ok, mut cases) = (true, 0u32);
    let counts = || {
        (
            SPLIT_ELIGIBLE.load(Ordering::Relaxed),
            SPLIT_FAST.load(Ordering::Relaxed),
        )
    };
    let (eligible_before, fast_before) = counts();
    for (i, cx) in [0usize, 1, 3, 4, 8, 13, 16, 36, 40].into_iter().enumerate() {
        for (j, ch) in [4usize, 8, 16, 20, 32].into_iter().enumerate() {
            for rows in [4usize, 8, 12, 16, 5, 7] {
                let round = i + j + rows;
                let first = if rows > 8 { 0 } else { [0, 4, 8][round % 3] };
                let total = (first + rows).div_ceil(4) * 4;
                let offset = usize::from(round % 5 == 4);
                let codes = if round % 4 == 3 { 32767 } else { 127 };
                let wx = &mut wx[offset..offset + total * layout.row_bytes(cx)];
                let wh = &mut wh[offset..offset + total * layout.row_bytes(ch)];
                wx.iter_mut().for_each(|v| *v = rng.next() as u8);
                wh.iter_mut().for_each(|v| *v = rng.next() as u8);
                x_codes
                    .iter_mut()
                    .for_each(|v| *v = rng.range(-codes - 1, codes));
                h_codes
                    .iter_mut()
                    .for_each(|v| *v = rng.range(-codes - 1, codes));
                for b in [&mut x_bias[..ROWS], &mut h_bias[..]] {
                    b.iter_mut().for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
                }
                for r in [&mut x_requant[..ROWS], &mut h_requant[..]] {
                    r.iter_mut().for_each(|v| *v = rng.requant());
                }
                initial
                    .iter_mut()
                    .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
                let x = Side {
                    weights: wx,
                    bias: &x_bias[..total],
                    requant: &x_requant[..total],
                    codes: &x_codes[..cx],
                    layout,
                };
                let h = Side {
                    weights: wh,
                    // The GRU's recurrent bias is optional.
                    bias: if j % 2 == 0 { &[] } else { &h_bias[..total] },
                    requant: &h_requant[..total],
                    codes: &h_codes[..ch],
                    layout,
                };
                ok &= check_split(table, (&x, &h), first, rows, &initial);
                cases += 1;
            }
        }
    }
    let (eligible, fast) = (counts().0 - eligible_before, counts().1 - fast_before);
    hprintln!(
        "{} interleaved split cases, {} eligible for one pass, {} taken in one pass",
        cases,
        eligible,
        fast
    );
    if table.name == "arm-dsp" && (eligible == 0 || fast < eligible / 2) {
        hprintln!("MISMATCH: the DSP interleaved split kernel did not run");
        ok = false;
    }
    // Saturation in block 1 (rows 4..8) of one side: the kernel must give the whole call to
    // the two calls (every row apart), which match the reference bit for bit.
    let (rows, cx, ch) = (12usize, 8usize, 32usize);
    let in_range = |r: i32| (r & !0xFF) | 8;
    for case in 0..4usize {
        let wx = &mut wx[..rows * cx];
        let wh = &mut wh[..rows * ch];
        wx.iter_mut().for_each(|v| *v = rng.next() as u8);
        wh.iter_mut().for_each(|v| *v = rng.next() as u8);
        x_codes.iter_mut().for_each(|v| *v = rng.range(-128, 127));
        h_codes.iter_mut().for_each(|v| *v = rng.range(-128, 127));
        for b in [&mut x_bias[..ROWS], &mut h_bias[..]] {
            b.iter_mut().for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
        }
        // Shifts in the fast range everywhere else: only block 1 may leave the fast path.
        for r in [&mut x_requant[..ROWS], &mut h_requant[..]] {
            r.iter_mut().for_each(|v| *v = in_range(rng.requant()));
        }
        match case {
            // Biased sums past i32 (`smlad` saturates).
            0 => x_bias[4..8].fill(i32::MAX),
            1 => h_bias[4..8].fill(i32::MIN),
            // A small shift that would lose bits of a large sum (`ssat` of the multiplier).
            2 => {
                x_requant[4..8].fill(0x5000_0000 | 0xF8);
                x_bias[4..8].fill(1 << 28);
            }
            _ => {
                h_requant[4..8].fill(0x5000_0000 | 0xF8);
                h_bias[4..8].fill(-(1 << 28));
            }
        }
        if case == 0 {
            // Positive sums on top of the limit.
            wx[4 * cx..8 * cx].fill(127);
            x_codes.fill(127);
        }
        if case == 1 {
            wh[4 * ch..8 * ch].fill(127);
            h_codes.fill(-128);
        }
        initial
            .iter_mut()
            .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
        let x = Side {
            weights: wx,
            bias: &x_bias[..rows],
            requant: &x_requant[..rows],
            codes: &x_codes[..cx],
            layout,
        };
        let h = Side {
            weights: wh,
            bias: &h_bias[..rows],
            requant: &h_requant[..rows],
            codes: &h_codes[..ch],
            layout,
        };
        let before = edgernn::kernels::arm::split_rows();
        ok &= check_split(table, (&x, &h), 0, rows, &initial);
        let apart = edgernn::kernels::arm::split_rows() - before;
        if table.name == "arm-dsp" && apart != rows {
            hprintln!(
                "MISMATCH: saturating interleaved split case {}: {} rows apart, want {}",
                case,
                apart,
                rows
            );
            ok = false;
        }
        cases += 1;
    }
    (ok, cases)
}

/// Most LSTM units per case.
const MAX_LSTM_UNITS: usize = 70;

/// The LSTM gate kernel (`lstm_units_i8`) of `table` against the generic one: every length up
/// to [`MAX_LSTM_UNITS`] (odd tails included), gate pre-activations random, at the i16 edges and far
/// past them, cell states in i16 and (in some cases) outside it, cell formats 0..=20 and output
/// codes on the 32-bit int8 rule (many shifts, zero points, multipliers of either sign) or off
/// it (int16 codes, crossed bounds, shifts the rule does not take). On the Cortex-M0 every
/// unit of an int8 case with its cell value in i16 must have been done by the v6m kernel.
#[inline(never)]
fn check_lstm_units(table: &Kernels, rng: &mut Rng) -> bool {
    use edgernn::kernels::{CodeParams, LstmParams};
    use edgernn::quant::fixed::Requant;
    let extremes = [
        i32::MIN,
        -65536,
        -32769,
        -32768,
        -32767,
        -256,
        -1,
        0,
        1,
        255,
        32767,
        32768,
        i32::MAX,
    ];
    let mut ok = true;
    let (mut cases, mut units_checked, mut expected_reference) = (0u32, 0usize, 0usize);
    let before = edgernn::kernels::arm::reference_units();
    for case in 0..160u32 {
        // Output codes: mostly the fast int8 rule, some off it (`fast` false).
        let shift = match case % 8 {
            0 => 31,
            1 => rng.range(13, 30),
            _ => rng.range(2, 12),
        };
        let multiplier = match case % 5 {
            0 => i32::MIN,
            1 => -(rng.range(1 << 16, i32::MAX)),
            _ => rng.range(1 << 30, i32::MAX),
        };
        let zero = if shift > 12 { 0 } else { rng.range(-128, 127) };
        let (mut lo, mut hi, mut shift) = (-128, 127, shift);
        let fast = match case % 16 {
            3 => {
                (lo, hi) = (-32768, 32767);
                false
            }
            7 => {
                (lo, hi) = (5, -5);
                false
            }
            11 => {
                shift = rng.range(-30, 1);
                false
            }
            15 => {
                shift = rng.range(32, 64);
                false
            }
            _ => true,
        };
        let params = LstmParams {
            cell_frac: (case % 21) as u8,
            codes: CodeParams {
                requant: Requant {
                    multiplier,
                    shift: shift as i8,
                },
                zero,
                lo,
                hi,
            },
        };
        let units = (case as usize * 7) % (MAX_LSTM_UNITS + 1);
        // The gates in arrays of their own, some longer than `units` (the shortest rules).
        let mut gates = [[0i32; MAX_LSTM_UNITS + 3]; 4];
        let kind = case % 4;
        for (g, gate) in gates.iter_mut().enumerate() {
            for v in gate.iter_mut() {
                *v = match (rng.next() % 8, kind) {
                    (0, _) | (_, 3) => extremes[(rng.next() % extremes.len() as u64) as usize],
                    (1, _) => rng.next() as i32,
                    (2, _) => rng.range(-32768, 32767),
                    _ => rng.range(-9000, 9000) + g as i32,
                };
            }
        }
        let mut c = [0i32; MAX_LSTM_UNITS + 1];
        let mut wide = 0;
        for (u, v) in c.iter_mut().enumerate() {
            *v = if kind == 2 && u % 7 == 3 {
                extremes[u % extremes.len()]
            } else {
                rng.range(-32768, 32767)
            };
            if u < units && i32::from(*v as i16) != *v {
                wide += 1;
            }
        }
        let mut h = [0x5A5Ai32; MAX_LSTM_UNITS + 1];
        let (mut c_want, mut h_want) = (c, h);
        let lens = [units, units + 1, units + 3, units + 2];
        let view = |k: usize| &gates[k][..lens[k]];
        let gate_views = [view(0), view(1), view(2), view(3)];
        (table.lstm_units_i8)(gate_views, &mut c[..units], &mut h[..units], &params);
        (GENERIC.lstm_units_i8)(
            gate_views,
            &mut c_want[..units],
            &mut h_want[..units],
            &params,
        );
        if c != c_want || h != h_want {
            hprintln!(
                "MISMATCH {} lstm_units {} units, case {}: c {:?} want {:?}, h {:?} want {:?}",
                table.name,
                units,
                case,
                &c[..=units],
                &c_want[..=units],
                &h[..=units],
                &h_want[..=units]
            );
            ok = false;
        }
        expected_reference += if fast { wide } else { units };
        units_checked += units;
        cases += 1;
    }
    hprintln!(
        "{} lstm_units cases ({} units) against the generic kernel",
        cases,
        units_checked
    );
    // The v6m gate kernel declines only what it must: off-rule codes and wide cell values.
    if table.name == "arm-v6m" {
        let reference = edgernn::kernels::arm::reference_units() - before;
        hprintln!(
            "{} lstm units by the generic loop, {} expected",
            reference,
            expected_reference
        );
        if reference != expected_reference {
            hprintln!("MISMATCH: the v6m gate kernel did not run where it should");
            ok = false;
        }
    }
    ok
}

/// Units of the widest per-unit case.
const MAX_UNITS: usize = 67;

/// A gate pre-activation: mostly Q3.12 values of real gates, sometimes past i16 or the i32
/// limits.
fn pre(rng: &mut Rng) -> i32 {
    const EXTREMES: [i32; 8] = [
        i32::MIN,
        -65537,
        -32769,
        -32768,
        32767,
        32768,
        65536,
        i32::MAX,
    ];
    match rng.next() % 8 {
        0 => EXTREMES[(rng.next() % 8) as usize],
        1 => rng.next() as i32,
        2 => rng.range(-32768, 32767),
        _ => rng.range(-9000, 9000),
    }
}

/// Output codes: int8 mostly (the DSP kernels' fast path), int16 too; zero points in and out
/// of range; factors of real models (Q0.15 to codes, about 2^-8) and others.
fn code_params(rng: &mut Rng, case: usize) -> kernels::CodeParams {
    let factor = match case % 5 {
        0 => 127.0 / 32768.0,
        1 => 1.0 / 300.0,
        2 => 0.37,
        3 => 1.0 / 32768.0,
        _ => 3.0e-9,
    };
    let (lo, hi) = if case % 7 == 6 {
        (-32768, 32767)
    } else {
        (-128, 127)
    };
    kernels::CodeParams {
        requant: edgernn::quant::fixed::Requant::from_f64(factor).unwrap_or_default(),
        zero: if case % 11 == 10 {
            40_000
        } else {
            rng.range(-128, 127)
        },
        lo,
        hi,
    }
}

/// The GRU update's 64-bit statement (the `Kernels::gru_units_i8` docs).
fn oracle_gru(
    g: &kernels::GruGates<'_>,
    h: &mut [i32],
    to_q15: edgernn::quant::fixed::Requant,
    p: &kernels::CodeParams,
) {
    use edgernn::quant::lut::{sigmoid_q15_sat, tanh_q15_sat};
    let round15 = |v: i64| (v + (1 << 14)) >> 15;
    for (u, hv) in h.iter_mut().enumerate() {
        let z = i64::from(sigmoid_q15_sat(g.z[u]));
        let r = i64::from(sigmoid_q15_sat(g.r[u]));
        let pre =
            (i64::from(g.cand_x[u]) + round15(r * i64::from(g.cand_h[u]))).clamp(-32768, 32767);
        let cand = i64::from(tanh_q15_sat(pre as i32));
        let old = to_q15
            .apply(i64::from(*hv) - i64::from(p.zero))
            .clamp(-32768, 32768);
        let v = round15(z * old + (32768 - z) * cand);
        let code = i64::from(p.zero) + p.requant.apply(v);
        *hv = code.clamp(i64::from(p.lo), i64::from(p.hi)) as i32;
    }
}

/// The per-unit kernels against the references: `lstm_units_i8` against the generic table's
/// on gate blocks laid out as the cell lays them (the DSP kernel's fast path), `gru_units_i8`
/// (when the table has one) against [`oracle_gru`]; every length up to [`MAX_UNITS`] (odd
/// tails, chunks of 32), cell values and `h` codes past i16 too. Out of line: its buffers
/// must not add to `main`'s frame (16 KiB of RAM on the Cortex-M0).
#[inline(never)]
fn check_units(table: &Kernels, rng: &mut Rng) -> bool {
    let mut ok = true;
    let mut gates = [0i32; 4 * MAX_UNITS];
    let mut c0 = [0i32; MAX_UNITS + 1];
    let mut h0 = [0i32; MAX_UNITS + 1];
    let (mut lstm_cases, mut gru_cases, mut gru_fast) = (0u32, 0u32, 0u32);
    let general_before = edgernn::kernels::arm::gru_general_blends();
    for units in (0..=MAX_UNITS).chain([64, 32, 31, 33]) {
        for round in 0..6usize {
            gates[..4 * units].iter_mut().for_each(|v| *v = pre(rng));
            for (u, c) in c0[..=units].iter_mut().enumerate() {
                *c = match (u + round) % 13 {
                    0 if round % 2 == 1 => pre(rng),
                    1 => rng.range(-32768, 32767),
                    _ => rng.range(-20_000, 20_000),
                };
            }
            for (u, h) in h0[..=units].iter_mut().enumerate() {
                *h = match (u + round) % 17 {
                    0 if round % 3 == 2 => pre(rng),
                    1 => rng.range(-32768, 32767),
                    _ => rng.range(-128, 127),
                };
            }
            let case = units * 6 + round;
            let codes = code_params(rng, case);
            let params = kernels::LstmParams {
                cell_frac: (case % 18) as u8,
                codes,
            };
            let (gi, rest) = gates[..4 * units].split_at(units);
            let (gf, rest) = rest.split_at(units);
            let (gc, go) = rest.split_at(units);
            let (mut c_got, mut h_got) = (c0, h0);
            let (mut c_want, mut h_want) = (c0, h0);
            (table.lstm_units_i8)(
                [gi, gf, gc, go],
                &mut c_got[..units],
                &mut h_got[..units],
                &params,
            );
            (GENERIC.lstm_units_i8)(
                [gi, gf, gc, go],
                &mut c_want[..units],
                &mut h_want[..units],
                &params,
            );
            if (c_got, h_got) != (c_want, h_want) {
                hprintln!(
                    "MISMATCH {} lstm_units {} units (case {}): c {:?} want {:?}, h {:?} want {:?}",
                    table.name,
                    units,
                    case,
                    &c_got[..=units],
                    &c_want[..=units],
                    &h_got[..=units],
                    &h_want[..=units]
                );
                ok = false;
            }
            lstm_cases += 1;
            let Some(kernel) = table.gru_units_i8 else {
                continue;
            };
            // `h` codes to Q0.15: 128 puts every int8 code on the DSP blend loop's fast path
            // (any zero point of the range), 204.4 (a trained model's) most, 256 and 257.3
            // few (their codes near the ends need the clamp to 2^15).
            let factor = [256.0, 257.3, 1.0, 40_000.0, 3.0e-10, 128.0, 204.4][case % 7];
            let to_q15 = edgernn::quant::fixed::Requant::from_f64(factor).unwrap_or_default();
            let (z, rest) = gates[..3 * units].split_at(units);
            let (r, cand_x) = rest.split_at(units);
            let g = kernels::GruGates {
                z,
                r,
                cand_x,
                cand_h: &gates[3 * units..4 * units],
            };
            let mut got = h0;
            let mut want = h0;
            if kernel(&g, &mut got[..units], to_q15, &codes) {
                oracle_gru(&g, &mut want[..units], to_q15, &codes);
                gru_fast += 1;
            }
            if got != want {
                hprintln!(
                    "MISMATCH {} gru_units {} units (case {}): got {:?} want {:?}",
                    table.name,
                    units,
                    case,
                    &got[..=units],
                    &want[..=units]
                );
                ok = false;
            }
            gru_cases += 1;
        }
    }
    hprintln!(
        "{} lstm_units cases, {} gru_units cases ({} computed by the kernel)",
        lstm_cases,
        gru_cases,
        gru_fast
    );
    // The DSP table must have its own per-unit kernels, and its GRU kernel must have taken the
    // int8 cases with fast requantizers (about a third here) rather than declined them.
    if table.name == "arm-dsp"
        && (table.lstm_units_i8 as usize == GENERIC.lstm_units_i8 as usize
            || gru_fast < gru_cases / 4)
    {
        hprintln!("MISMATCH: the DSP per-unit kernels did not run");
        ok = false;
    }
    // Both blend loops (every int8 code on the fast path, or not) must have produced outputs
    // that were checked: some but not all calls on each.
    let general = edgernn::kernels::arm::gru_general_blends() - general_before;
    hprintln!(
        "gru_units: {} of {} calls by the general blend loop",
        general,
        gru_fast
    );
    if table.name == "arm-dsp" && (general == 0 || general >= gru_fast as usize) {
        hprintln!("MISMATCH: a GRU kernel path did not run");
        ok = false;
    }
    ok
}

#[entry]
fn main() -> ! {
    let table = kernels::active();
    hprintln!("kernel table: {}", table.name);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let lstm_ok = check_lstm_units(table, &mut rng);
    let (tall_ok, tall_cases) = check_tall_pairs(table, &mut rng);
    let mut weights = [0u8; MAX_ROWS * MAX_COLS + 4];
    let mut codes = [0i32; EXTREME_COLS];
    let mut bias = [0i32; MAX_ROWS];
    let mut requant = [0i32; MAX_ROWS];
    let mut initial = [0i32; MAX_ROWS + 1];
    let ranges = [(-128, 127), (-32768, 32767), (-100_000, 100_000)];
    let widths = (0..=67).chain([96, 128, 255, 256, 260]);
    let mut cases = 0u32;
    let mut rows_checked = 0usize;
    // Rows the DSP kernel takes by its fast path unless they would saturate: whole blocks of
    // four, widths a multiple of 4, aligned views.
    let mut fast_rows = 0usize;
    // Rows the v6m kernel always takes by its fast path: whole blocks of four, aligned views,
    // int8 codes (any width).
    let mut v6m_rows = 0usize;
    let mut ok = true;
    for cols in widths {
        for rows in [0usize, 1, 3, 4, 5, 7, 8, 9, 12, 16, 17] {
            for round in 0..6usize {
                let offset = round % 4;
                let (lo, hi) = ranges[round % 3];
                let w = &mut weights[offset..offset + rows * cols];
                w.iter_mut().for_each(|v| *v = rng.next() as u8);
                let x = &mut codes[..cols];
                x.iter_mut().for_each(|v| *v = rng.range(lo, hi));
                // Small biases in round 0 keep many int8 sums inside i16 (the v6m kernel's
                // two-product requantization), large ones elsewhere.
                let b = if round == 0 { 1 << 10 } else { 1 << 24 };
                bias.iter_mut().for_each(|v| *v = rng.range(-b, b));
                requant.iter_mut().for_each(|v| *v = rng.requant());
                let big = if round == 5 { 1 << 30 } else { 1 << 20 };
                initial.iter_mut().for_each(|v| *v = rng.range(-big, big));
                // Views 4-byte aligned except in one round (the unaligned path).
                let view_offset = if round == 4 { 1 } else { 0 };
                ok &= check(
                    table,
                    &weights[offset..offset + rows * cols],
                    &bias,
                    &requant,
                    &codes[..cols],
                    rows,
                    view_offset,
                    round % 2 == 1,
                    &initial,
                    WeightLayout::RowMajor,
                );
                cases += 1;
                rows_checked += rows;
                if cols > 0 && cols % 4 == 0 && view_offset == 0 {
                    fast_rows += rows / 4 * 4;
                }
                if cols > 0 && view_offset == 0 && (lo, hi) == (-128, 127) {
                    v6m_rows += rows / 4 * 4;
                }
            }
        }
    }
    // Full scale: every product 2^22, row sums far past i32 (the fast paths must notice), with
    // a bias at the i32 limit and factors large enough to saturate; then int8 codes at full
    // scale (products 2^14, the v6m kernel's exact i32 sums at their widest here).
    for (wv, xv) in [
        (-128i8, -32768i32),
        (127, -32768),
        (127, 32767),
        (-128, 32767),
        (-128, -128),
        (127, -128),
    ] {
        let cols = EXTREME_COLS;
        codes.iter_mut().for_each(|v| *v = xv);
        for (r, b) in bias.iter_mut().enumerate() {
            *b = if r % 2 == 0 { i32::MAX } else { -5 };
        }
        requant.iter_mut().for_each(|v| *v = rng.requant());
        initial.iter_mut().for_each(|v| *v = i32::MAX - 5);
        let all = &mut weights[..EXTREME_ROWS * EXTREME_COLS];
        all.fill(wv as u8);
        for accumulate in [false, true] {
            ok &= check(
                table,
                &weights[..EXTREME_ROWS * EXTREME_COLS],
                &bias,
                &requant,
                &codes[..cols],
                EXTREME_ROWS,
                0,
                accumulate,
                &initial,
                WeightLayout::RowMajor,
            );
            cases += 1;
            rows_checked += EXTREME_ROWS;
            if xv == -128 {
                v6m_rows += EXTREME_ROWS;
            }
        }
    }
    // The v6m kernel's inline requantization at its edges: zero weights make each biased sum
    // the bias itself, placed around the inline range `[-2^19, 2^19)` and the i16 range, with
    // any packed requantizer (negative multipliers too) and every kind of shift.
    let edges = [
        -(1 << 19) - 1,
        -(1 << 19),
        -(1 << 19) + 1,
        -(1 << 15) - 1,
        -1,
        0,
        1,
        1 << 15,
        (1 << 19) - 1,
        1 << 19,
        i32::MIN,
        i32::MAX,
    ];
    for round in 0..12usize {
        let (cols, rows) = (8, 16);
        weights[..rows * cols].fill(0);
        let x = &mut codes[..cols];
        x.iter_mut().for_each(|v| *v = rng.range(-128, 127));
        for (r, b) in bias.iter_mut().enumerate() {
            *b = edges[(r + round) % edges.len()];
        }
        for v in requant.iter_mut() {
            let shift = rng.range(-16, 40) as i8 as u8;
            *v = if round % 3 == 0 {
                (rng.next() as i32 & !0xFF) | i32::from(shift)
            } else {
                (rng.requant() & !0xFF) | i32::from(shift)
            };
        }
        initial
            .iter_mut()
            .for_each(|v| *v = rng.range(-(1 << 30), 1 << 30));
        ok &= check(
            table,
            &weights[..rows * cols],
            &bias,
            &requant,
            &codes[..cols],
            rows,
            0,
            round % 2 == 1,
            &initial,
            WeightLayout::RowMajor,
        );
        cases += 1;
        rows_checked += rows;
        v6m_rows += rows;
    }
    // Rows that leave 32 bits in the middle of a block (a bias that overflows, a factor of
    // 2^30 on a large sum), after rows the kernel has already stored: the v6m kernel stops
    // there and the rest of the block is redone by the 64-bit rule.
    for round in 0..4usize {
        let (cols, rows) = (16, 16);
        weights[..rows * cols].fill(127);
        codes[..cols].fill(127);
        let big = (1 << 30) | i32::from(-30i8 as u8);
        for r in 0..rows {
            let stop = (r + round) % 4;
            bias[r] = if stop == 3 {
                i32::MAX
            } else {
                rng.range(-1000, 1000)
            };
            requant[r] = if stop == 1 { big } else { rng.requant() };
        }
        initial.iter_mut().for_each(|v| *v = i32::MAX - 5);
        ok &= check(
            table,
            &weights[..rows * cols],
            &bias,
            &requant,
            &codes[..cols],
            rows,
            0,
            round % 2 == 1,
            &initial,
            WeightLayout::RowMajor,
        );
        cases += 1;
        rows_checked += rows;
        v6m_rows += rows;
    }
    // Paired projections (the LSTM's `W x + U h`): input widths ragged or not, recurrent
    // widths of real cells, with and without a recurrent bias, int8 codes mostly; then sums
    // that saturate on one side in the middle block only.
    let mut x_codes = [0i32; PAIR_COLS];
    let mut x_bias = [0i32; MAX_ROWS];
    let mut x_requant = [0i32; MAX_ROWS];
    for cx in [0usize, 3, 4, 8, 12, 16, 20] {
        for ch in [4usize, 8, 12, 32, 64, 128] {
            for rows in [1usize, 4, 7, 8, 12, 16, 17] {
                let round = cx + ch + rows;
                let (lo, hi) = ranges[if round % 5 == 0 { 1 } else { 0 }];
                // Rows from the start or further in (the LSTM's later gates).
                let first = if rows <= 12 { round % 3 * 2 } else { 0 };
                let (wx, wh) = weights.split_at_mut(MAX_ROWS * 20);
                let (wx, wh) = (
                    &mut wx[..(first + rows) * cx],
                    &mut wh[..(first + rows) * ch],
                );
                wx.iter_mut().for_each(|v| *v = rng.next() as u8);
                wh.iter_mut().for_each(|v| *v = rng.next() as u8);
                x_codes[..cx]
                    .iter_mut()
                    .for_each(|v| *v = rng.range(lo, hi));
                codes[..ch].iter_mut().for_each(|v| *v = rng.range(lo, hi));
                x_bias
                    .iter_mut()
                    .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
                bias.iter_mut()
                    .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
                x_requant.iter_mut().for_each(|v| *v = rng.requant());
                requant.iter_mut().for_each(|v| *v = rng.requant());
                initial
                    .iter_mut()
                    .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
                let x = Side {
                    weights: wx,
                    bias: &x_bias,
                    requant: &x_requant,
                    codes: &x_codes[..cx],
                    layout: WeightLayout::RowMajor,
                };
                let h = Side {
                    weights: wh,
                    bias: if round % 2 == 0 { &bias } else { &[] },
                    requant: &requant,
                    codes: &codes[..ch],
                    layout: WeightLayout::RowMajor,
                };
                ok &= check_pair(table, (&x, &h), first, rows, &initial);
                if table.project_split_i8.is_some() {
                    ok &= check_split(table, (&x, &h), first, rows, &initial);
                }
                cases += 1;
                // Two projections per row.
                rows_checked += 2 * rows;
                let quads = rows / 4 * 4;
                if cx % 4 == 0 && cx > 0 {
                    fast_rows += 2 * quads;
                }
                if (lo, hi) == (-128, 127) {
                    v6m_rows += quads * if cx > 0 { 2 } else { 1 };
                }
            }
        }
    }
    let before_saturating = edgernn::kernels::arm::reference_rows();
    for case in 0..4usize {
        let (rows, cx, ch) = (12usize, 8usize, 128usize);
        let (wx, wh) = weights.split_at_mut(MAX_ROWS * 20);
        let (wx, wh) = (&mut wx[..rows * cx], &mut wh[..rows * ch]);
        wx.iter_mut().for_each(|v| *v = rng.next() as u8);
        wh.iter_mut().for_each(|v| *v = rng.next() as u8);
        x_codes[..cx]
            .iter_mut()
            .for_each(|v| *v = rng.range(-128, 127));
        x_bias
            .iter_mut()
            .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
        bias.iter_mut()
            .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
        // Shifts in the fast path's range everywhere but block 1: a lossy small shift in
        // another block would also leave the fast path, and the count below would not
        // isolate block 1.
        let in_range = |r: i32| (r & !0xFF) | 8;
        x_requant
            .iter_mut()
            .for_each(|v| *v = in_range(rng.requant()));
        requant
            .iter_mut()
            .for_each(|v| *v = in_range(rng.requant()));
        initial
            .iter_mut()
            .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
        // Block 1 (rows 4..8) saturates: full-scale recurrent sums, an input bias at the i32
        // limit, or both sides' results near it (a big factor).
        codes[..ch].fill(if case % 2 == 0 { 32767 } else { -32768 });
        match case {
            0 | 1 => wh[4 * ch..8 * ch].fill(if case == 0 { 127 } else { 0x80 }),
            2 => x_bias[4..8].fill(i32::MAX),
            _ => {
                x_requant[4..8].fill(0x5000_0000 | 0xF8);
                requant[4..8].fill(0x5000_0000 | 0xF8);
            }
        }
        let x = Side {
            weights: wx,
            bias: &x_bias,
            requant: &x_requant,
            codes: &x_codes[..cx],
            layout: WeightLayout::RowMajor,
        };
        let h = Side {
            weights: wh,
            bias: &bias,
            requant: &requant,
            codes: &codes[..ch],
            layout: WeightLayout::RowMajor,
        };
        ok &= check_pair(table, (&x, &h), 0, rows, &initial);
        if table.project_split_i8.is_some() {
            ok &= check_split(table, (&x, &h), 0, rows, &initial);
        }
        cases += 1;
        rows_checked += 2 * rows;
    }
    // On the DSP table the saturating pairs leave the fast path in block 1 only (at most its
    // four rows of each side by the reference path, per case), and some of them must.
    let saturating = edgernn::kernels::arm::reference_rows() - before_saturating;
    hprintln!(
        "saturating pairs: {} rows by the reference path",
        saturating
    );
    if table.name == "arm-dsp" && !(1..=4 * 2 * 4).contains(&saturating) {
        hprintln!("MISMATCH: the DSP pair kernel's saturation fallback misfired");
        ok = false;
    }
    // The exact products without requantization (`dot_rows_i8`, the integer Dense layers'):
    // fewer than four rows (a Dense head) take the DSP table's own loop, more its packed
    // `smlad` kernel; codes past i16 and sums past i32 (blocks of 256 wrap alike) included.
    let mut dot_cases = 0u32;
    for cols in (0..=67).chain([255, 256, 257, 260, EXTREME_COLS]) {
        for rows in 0..=5usize {
            // The widest only up to four rows (the buffer's size).
            if rows * cols > weights.len() {
                continue;
            }
            // Each range of codes, then the extremes (every weight -128).
            for range in ranges.iter().map(Some).chain([None]) {
                let w = &mut weights[..rows * cols];
                let x = &mut codes[..cols];
                match range {
                    Some(&(lo, hi)) => {
                        w.iter_mut().for_each(|v| *v = rng.next() as u8);
                        x.iter_mut().for_each(|v| *v = rng.range(lo, hi));
                    }
                    None => {
                        w.fill(0x80);
                        x.fill(if cols % 2 == 0 { i32::MIN } else { -32768 });
                    }
                }
                let (mut got, mut want) = ([0x5A5A_5A5Ai64; 7], [0x3C3C_3C3Ci64; 7]);
                (table.dot_rows_i8)(&weights[..rows * cols], &codes[..cols], &mut got[..rows]);
                (GENERIC.dot_rows_i8)(&weights[..rows * cols], &codes[..cols], &mut want[..rows]);
                if got[..rows] != want[..rows] || got[rows] != 0x5A5A_5A5A {
                    hprintln!(
                        "MISMATCH {} dot_rows {}x{}: got {:?} want {:?}",
                        table.name,
                        rows,
                        cols,
                        &got[..=rows],
                        &want[..rows]
                    );
                    ok = false;
                }
                dot_cases += 1;
            }
        }
    }
    hprintln!("{} dot_rows cases", dot_cases);
    ok &= check_units(table, &mut rng);
    // A fast kernel that silently took its reference path everywhere would pass the
    // comparisons: the DSP table must have computed most rows itself.
    let reference = edgernn::kernels::arm::reference_rows();
    hprintln!(
        "{} rows checked, {} eligible for a fast path, {} by the reference path",
        rows_checked,
        fast_rows,
        reference
    );
    if table.name == "arm-dsp" && reference > rows_checked - fast_rows / 2 {
        hprintln!("MISMATCH: the DSP fast path did not run");
        ok = false;
    }
    // The v6m kernel has no saturation fallback: every eligible row must have run fast.
    if table.name == "arm-v6m" {
        hprintln!("{} rows eligible for the v6m fast path", v6m_rows);
        if reference > rows_checked - v6m_rows {
            hprintln!("MISMATCH: the v6m fast path did not run");
            ok = false;
        }
    }
    // The split kernel (the GRU candidate's two sides) must have taken at least half of the
    // eligible cases in one pass (random requantizers and int16 codes make the others saturate
    // or take a lossy small shift, which leave it, as they do the paired kernel; each case
    // was checked to be one or the other).
    let (split_cases, split_eligible, split_fast) = (
        SPLIT_CASES.load(Ordering::Relaxed),
        SPLIT_ELIGIBLE.load(Ordering::Relaxed),
        SPLIT_FAST.load(Ordering::Relaxed),
    );
    hprintln!(
        "{} split cases, {} eligible for one pass, {} taken in one pass",
        split_cases,
        split_eligible,
        split_fast
    );
    if table.name == "arm-dsp" && (split_eligible == 0 || split_fast < split_eligible / 2) {
        hprintln!("MISMATCH: the DSP split kernel did not run");
        ok = false;
    }
    // Interleaved weights (blobs packed with `--pack interleaved4`): every table against the
    // generic reference of that layout, with its own packing of the codes; every width to 67
    // and wider, rows in and past whole blocks, unaligned weights, then full scale.
    let interleaved = WeightLayout::Interleaved4;
    let mut interleaved_cases = 0u32;
    let before_interleaved = edgernn::kernels::arm::reference_rows();
    // Rows checked, and those the DSP table's `ldm` kernel takes unless they saturate: whole
    // blocks, widths a multiple of 4, word-aligned weights.
    let (mut i4_rows, mut i4_fast) = (0usize, 0usize);
    for cols in (0..=67).chain([128, 256]) {
        for rows in [0usize, 1, 3, 4, 5, 8, 12, 16] {
            for round in 0..4usize {
                let offset = round % 4;
                let (lo, hi) = ranges[round % 3];
                let len = rows.div_ceil(4) * 4 * interleaved.row_bytes(cols);
                let w = &mut weights[offset..offset + len];
                w.iter_mut().for_each(|v| *v = rng.next() as u8);
                codes[..cols]
                    .iter_mut()
                    .for_each(|v| *v = rng.range(lo, hi));
                bias.iter_mut()
                    .for_each(|v| *v = rng.range(-1 << 24, 1 << 24));
                requant.iter_mut().for_each(|v| *v = rng.requant());
                initial
                    .iter_mut()
                    .for_each(|v| *v = rng.range(-1 << 20, 1 << 20));
                ok &= check(
                    table,
                    &weights[offset..offset + len],
                    &bias,
                    &requant,
                    &codes[..cols],
                    rows,
                    0,
                    round % 2 == 1,
                    &initial,
                    interleaved,
                );
                interleaved_cases += 1;
                i4_rows += rows;
                if cols > 0 && cols % 4 == 0 && offset == 0 {
                    i4_fast += rows / 4 * 4;
                }
            }
        }
    }
    for (wv, xv) in [
        (-128i8, -32768i32),
        (127, -32768),
        (127, 32767),
        (-128, -128),
    ] {
        codes.iter_mut().for_each(|v| *v = xv);
        bias.iter_mut().for_each(|v| *v = i32::MAX);
        requant.iter_mut().for_each(|v| *v = rng.requant());
        initial.iter_mut().for_each(|v| *v = i32::MAX - 5);
        weights[..EXTREME_ROWS * EXTREME_COLS].fill(wv as u8);
        for accumulate in [false, true] {
            ok &= check(
                table,
                &weights[..EXTREME_ROWS * EXTREME_COLS],
                &bias,
                &requant,
                &codes[..EXTREME_COLS],
                EXTREME_ROWS,
                0,
                accumulate,
                &initial,
                interleaved,
            );
            interleaved_cases += 1;
            i4_rows += EXTREME_ROWS;
        }
    }
    // The interleaved fast path must have computed most eligible rows itself (the extremes
    // saturate, so they are not counted as eligible).
    let i4_reference = edgernn::kernels::arm::reference_rows() - before_interleaved;
    hprintln!(
        "{} interleaved projection cases: {} rows, {} eligible for the ldm path, {} by the reference path",
        interleaved_cases,
        i4_rows,
        i4_fast,
        i4_reference
    );
    if table.name == "arm-dsp" && i4_reference > i4_rows - i4_fast / 2 {
        hprintln!("MISMATCH: the DSP interleaved (ldm) path did not run");
        ok = false;
    }
    let (pairs_ok, pair_cases) = check_interleaved_pairs(table, &mut rng);
    ok &= pairs_ok;
    cases += interleaved_cases + pair_cases;
    if table.project_split_i8_interleaved4.is_some() {
        let scratch = (&mut weights[..], &mut codes[..], &mut bias, &mut requant);
        let (splits_ok, split_cases) = check_interleaved_splits(table, &mut rng, scratch);
        ok &= splits_ok;
        cases += split_cases;
    }
    ok &= lstm_ok && tall_ok;
    cases += tall_cases;
    hprintln!(
        "{} projection cases against the generic kernel: {}",
        cases,
        if ok { "all bit-identical" } else { "MISMATCH" }
    );
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::nop();
    }
}
