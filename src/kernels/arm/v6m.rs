//! The integer projection for ARMv6-M (Cortex-M0/M0+; also valid Thumb on M3): no DSP, no
//! 32x32->64 multiply, only `muls` (32x32->32) and eight low registers for most instructions.
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
//! unrolled four columns deep.
//!
//! # Numerics
//!
//! A product of an int8 weight and an int8 code is at most `128 * 128 = 2^14` in magnitude;
//! the fast path runs only for `cols <= 2^16`, so a row sum is at most `2^30` and the i32
//! accumulators are exact. The same assembly then adds the bias with an overflow check and
//! requantizes with [`requant_i32`]'s arithmetic (its portable statement, tested against
//! [`crate::quant::Requant::apply`] on the host): the high word of the exact 64-bit product
//! from 16x16 `muls` (two when the sum fits i16, four otherwise), then the crate's one
//! rounding rule on it, no `__aeabi_lmul`. A block where either step would leave i32 is
//! handed back untouched and redone in Rust with the 64-bit rule (only sums and factors no
//! real model has get there); accumulation saturates like the generic kernel. So every row
//! gets [`project_i8`]'s bits. Codes outside int8 (the int16 modes), bias or requantizer views
//! that are not aligned little-endian words (the loader's always are; this module is only
//! built for little-endian targets) and the last `rows % 4` rows go through the scalar
//! reference path over the same layout (counted by [`super::reference_rows`]).
//!
//! # Cost
//!
//! 3.5 instructions per multiply-accumulate in the column loop and about 45 per row for the
//! bias, requantization and accumulation: an int8 LSTM(64) step on 8 features takes about
//! 127,000 instructions on a Cortex-M0 (423,000 with the generic table), about 94,000 of them
//! in the projections (`firmware-examples/kernel-bench/count.sh`).
//!
//! [`requant_i32`]: crate::quant::fixed::requant_i32
//! [`project_i8`]: crate::kernels::generic::project_i8

use crate::kernels::{packed_len, project_rows_with, Kernels, RowsI8, GENERIC};

/// The generic table with the integer projection overridden.
pub static TABLE: Kernels = Kernels {
    name: "arm-v6m",
    pack_i16: v6m_pack_i16,
    project_i8: v6m_project_i8,
    ..GENERIC
};

/// Widest input the i32 row sums stay exact for (see the module docs).
const MAX_FAST_COLS: usize = 1 << 16;

/// Rows per call of the assembly kernel (the length of [`ZEROS`], the bias of rows without
/// one).
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
/// words when it starts on one).
fn int8_codes(packed: &[i32], cols: usize) -> bool {
    if cols.is_multiple_of(4) {
        packed
            .get(cols / 4..cols / 2)
            .is_some_and(|w| w.iter().fold(0, |a, &v| a | v) == 0)
    } else {
        bytes(packed)
            .get(cols..2 * cols)
            .is_some_and(|b| b.iter().fold(0, |a, &v| a | v) == 0)
    }
}

/// What the assembly kernel reads and advances: `quads` blocks of four rows starting at
/// `weights`, `cols` columns each, the low code plane, and per row a bias, a packed
/// requantizer and an output, all 4-byte aligned. Each finished block advances `weights`,
/// `out`, `bias` and `requant` and counts `quads` down; a block the kernel cannot finish in 32
/// bits leaves them at its start (offsets are used by the assembly: keep the order).
#[repr(C)]
struct Job {
    weights: *const u8,
    cols: usize,
    codes: *const u8,
    out: *mut i32,
    quads: usize,
    bias: *const i32,
    requant: *const i32,
    /// The block's next `weights`, committed when it finishes.
    next: *const u8,
    /// Nonzero: `out += v` (saturating); zero: `out = v`.
    accumulate: usize,
}

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
    if !(cols <= MAX_FAST_COLS
        && packed.len() >= packed_len(cols)
        && (bias.is_empty() || aligned(bias))
        && aligned(requant)
        && int8_codes(packed, cols))
    {
        reference_rows(rows, packed, cols, out, accumulate, 0, n);
        return;
    }
    // Row `r`'s bias and requantizer; rows without a bias read [`ZEROS`] from `first` on.
    let bias_at = |r: usize, first: usize| {
        if bias.is_empty() {
            ZEROS.as_ptr().wrapping_add(r - first)
        } else {
            bias.as_ptr().cast::<i32>().wrapping_add(r)
        }
    };
    let requant_at = |r: usize| requant.as_ptr().cast::<i32>().wrapping_add(r);
    let fast = n - n % 4;
    let mut done = 0;
    while done < fast {
        let count = if bias.is_empty() {
            (fast - done).min(ROWS_PER_CALL)
        } else {
            fast - done
        };
        let (Some(weights), Some(outs)) = (
            rows.weights.get(done * cols..),
            out.get_mut(done..done + count),
        ) else {
            break;
        };
        let mut job = Job {
            weights: weights.as_ptr(),
            cols,
            codes: packed.as_ptr().cast(),
            out: outs.as_mut_ptr(),
            quads: count / 4,
            bias: bias_at(done, done),
            requant: requant_at(done),
            next: weights.as_ptr(),
            accumulate: usize::from(accumulate),
        };
        loop {
            // SAFETY: `job` describes `4 * quads` rows of `cols` bytes inside `rows.weights`
            // (`done + count <= n <= len / cols`), the `cols` bytes of the low code plane
            // (`packed` holds `packed_len(cols)` words) and `4 * quads` aligned bias (or
            // `ZEROS`, `count <= ROWS_PER_CALL`), requantizer and output values (`aligned`
            // and the slices above); `quads >= 1`, `cols >= 1`. It touches nothing else.
            unsafe { v6m_project_quads(&mut job) };
            if job.quads == 0 {
                break;
            }
            // The block at row `at` left 32 bits: redo it here (same sums, 64-bit rule), then
            // go on after it.
            let at = done + 4 * (count / 4 - job.quads);
            let lo = bytes(packed).get(..cols).unwrap_or(&[]);
            for (k, row) in weights
                .chunks_exact(cols)
                .skip(at - done)
                .take(4)
                .enumerate()
            {
                if let Some(o) = out.get_mut(at + k) {
                    let sum = row.iter().zip(lo).fold(0i64, |acc, (&w, &x)| {
                        acc + i64::from(w as i8) * i64::from(x as i8)
                    });
                    let b = rows.bias.get_or_zero(at + k);
                    let v = rows.requant.get(at + k).apply(i64::from(b) + sum);
                    let v = if accumulate { v + i64::from(*o) } else { v };
                    *o = v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
                }
            }
            job.quads -= 1;
            let Some(rest) = out.get_mut(at + 4..) else {
                break;
            };
            if job.quads == 0 {
                break;
            }
            job.weights = job.next;
            job.out = rest.as_mut_ptr();
            job.bias = bias_at(at + 4, done);
            job.requant = requant_at(at + 4);
        }
        done += count;
    }
    if done < n {
        reference_rows(rows, packed, cols, out, accumulate, done, n);
    }
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

/// The saturating `out[k] += v` of the kernel's last phase: `r6` the block's outputs, the
/// value in high register `$v`, `$at` the byte offset of the row. Uses `r0`, `r1`.
macro_rules! accumulate_row {
    ($v:literal, $at:literal) => {
        concat!(
            "ldr r0, [r6, #",
            $at,
            "]\n",
            "mov r1, ",
            $v,
            "\n",
            "adds r0, r0, r1\n",
            "bvc 8f\n",
            // Overflow: the wrapped sum has the wrong sign; saturate toward the right one.
            "asrs r0, r0, #31\n",
            "movs r1, #1\n",
            "lsls r1, r1, #31\n",
            "eors r0, r0, r1\n",
            "8:\n",
            "str r0, [r6, #",
            $at,
            "]\n",
        )
    };
}

/// Computes `job.quads` blocks of four rows (see [`Job`] and the module docs): the four row
/// sums, then per row `requant(bias + sum)` by the subroutine at `7:` (the arithmetic of
/// [`requant_i32`], returning to `9:` when the block leaves 32 bits), then the
/// store (or saturating accumulation) into `out`, only once all four rows succeeded.
///
/// Registers in the column loop: `r0..r3` the ends of the four rows, `r4` the end of the
/// codes, `r5` the column index running from `-cols` up to 0 (so its `adds` sets the loop's
/// flags), `r6` the code, `r7` a product, `r8..r11` the four sums, `r12` the job. The unrolled
/// loop is entered at the column that leaves a multiple of four to go. The subroutine takes
/// the biased sum in `r0`, the bias and requantizer pointers in `r4` / `r5` (advanced), and
/// uses `r1..r3`, `r6`, `r7`: for shifts `s >= 2`, `high` of `acc * m` (two 16x16 `muls` when
/// `acc` fits i16, else four) then `((high >> (s - 2)) + 1) >> 1` (`asrs` by 32 or more
/// fills with the sign, which is the capped shift's result); below, `high` of
/// `(acc << k) * m` plus the low word's top bit, `k = min(1 - s, 31)`, leaving when `acc << k`
/// does not fit.
///
/// [`requant_i32`]: crate::quant::fixed::requant_i32
///
/// # Safety
///
/// `job` must describe memory as [`Job`] documents, with `cols >= 1` and `quads >= 1`.
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
        // One block of four rows.
        "2:",
        "mov r7, r12",
        "ldr r6, [r7, #4]",
        "ldr r4, [r7, #8]",
        "ldr r0, [r7, #0]",
        "adds r4, r4, r6",
        "adds r0, r0, r6",
        "adds r1, r0, r6",
        "adds r2, r1, r6",
        "adds r3, r2, r6",
        "rsbs r5, r6, #0",
        "movs r7, #0",
        "mov r8, r7",
        "mov r9, r7",
        "mov r10, r7",
        "mov r11, r7",
        "movs r7, #3",
        "ands r6, r6, r7",
        "beq 3f",
        "cmp r6, #2",
        "beq 5f",
        "bhi 4f",
        "b 6f",
        "3:",
        column!(),
        "4:",
        column!(),
        "5:",
        column!(),
        "6:",
        column!(),
        "bne 3b",
        // r3 is the end of row 3: the next block's first row. Requantize the four rows in
        // place.
        "mov r7, r12",
        "str r3, [r7, #28]",
        "ldr r4, [r7, #20]",
        "ldr r5, [r7, #24]",
        "mov r0, r8",
        "bl 7f",
        "mov r8, r0",
        "mov r0, r9",
        "bl 7f",
        "mov r9, r0",
        "mov r0, r10",
        "bl 7f",
        "mov r10, r0",
        "mov r0, r11",
        "bl 7f",
        "mov r11, r0",
        // All four fit: accumulate (or not), store, advance.
        "mov r7, r12",
        "str r4, [r7, #20]",
        "str r5, [r7, #24]",
        "ldr r6, [r7, #12]",
        "ldr r0, [r7, #32]",
        "cmp r0, #0",
        "bne 15f",
        "mov r0, r8",
        "mov r1, r9",
        "mov r2, r10",
        "mov r3, r11",
        "stm r6!, {{r0-r3}}",
        "b 16f",
        "15:",
        accumulate_row!("r8", "0"),
        accumulate_row!("r9", "4"),
        accumulate_row!("r10", "8"),
        accumulate_row!("r11", "12"),
        "adds r6, #16",
        "16:",
        "str r6, [r7, #12]",
        "ldr r0, [r7, #28]",
        "str r0, [r7, #0]",
        "ldr r1, [r7, #16]",
        "subs r1, r1, #1",
        "str r1, [r7, #16]",
        "beq 9f",
        "b 2b",
        // The requantization subroutine (see above).
        "7:",
        "ldm r4!, {{r1}}",
        "adds r0, r0, r1",
        "bvs 9f",
        "ldm r5!, {{r1}}",
        "sxtb r7, r1",
        "lsrs r1, r1, #8",
        "lsls r1, r1, #8",
        "subs r7, r7, #2",
        "bmi 12f",
        // Shifts of 2 and more: the product's high word, two products when acc fits i16.
        "sxth r2, r0",
        "cmp r2, r0",
        "bne 14f",
        "uxth r3, r1",
        "muls r3, r0, r3",
        "asrs r3, r3, #16",
        "asrs r1, r1, #16",
        "muls r1, r0, r1",
        "adds r1, r1, r3",
        "asrs r0, r1, #16",
        "b 15f",
        "14:",
        high_word!(),
        "15:",
        "asrs r0, r0, r7",
        "adds r0, r0, #1",
        "asrs r0, r0, #1",
        "bx lr",
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
        "bne 9f",
        high_word!(),
        "lsls r2, r2, #16",
        "lsrs r2, r2, #31",
        "adds r0, r0, r2",
        "bx lr",
        // Done, or a block left 32 bits (from the subroutine: its return address is dropped).
        "9:",
        "pop {{r4-r7}}",
        "mov r8, r4",
        "mov r9, r5",
        "mov r10, r6",
        "mov r11, r7",
        "pop {{r4-r7, pc}}",
    )
}
