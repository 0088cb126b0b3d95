//! The kernel conformance suite: one set of tests, instantiated by macro for every kernel table
//! this build has (generic included), each compared with a naive oracle.
//!
//! * Integer kernels: bit-exact with the oracle (exact i64 sums).
//! * Float kernels: `|got - exact| <= F32_TOL * (|y0| + sum_c |W[r,c] x[c]|)` per row, where
//!   `exact` is the f64 sum and `y0` the value `y` held before: a sum of `n <= 67` f32 products
//!   in any order is off by at most about `n * 2^-24` of that magnitude, so `F32_TOL = 2^-17`
//!   leaves room without hiding a wrong lane.
//!
//! * Activations: sigmoid and tanh within [`ACTIVATION_TOL`] (absolute) of `libm`, NaN kept;
//!   the others bit-exact.
//!
//! Sweeps: columns 0..67 (every SIMD tail), rows around the row-block sizes, weights starting
//! 0..3 bytes past an aligned address, outputs holding garbage, and saturating values.
//!
//! A table missing on this CPU is skipped with a message; set `EDGERNN_REQUIRE_KERNELS` to a
//! comma-separated list of table names (CI does) to make a missing table fail instead.

mod batch;

use std::vec::Vec;

use super::{F32View, Kernels, WeightLayout};

/// Relative bound of the float kernels against the exact sum (see the module docs).
const F32_TOL: f64 = 1.0 / 131_072.0;
const MAX_COLS: usize = 67;
const ROW_COUNTS: [usize; 9] = [0, 1, 3, 4, 5, 7, 8, 9, 17];

/// A fixed-seed xorshift generator: the same cases on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.next() % 20_001) as f32 / 10_000.0 - 1.0
    }
    fn i8(&mut self) -> i8 {
        self.next() as i8
    }
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next() % (i64::from(hi) - i64::from(lo) + 1) as u64) as i32
    }
}

/// `bytes` placed `offset` bytes past a 16-byte aligned address, and that slice's start.
fn misaligned(bytes: &[u8], offset: usize) -> (Vec<u8>, usize) {
    let mut buf = std::vec![0xAAu8; bytes.len() + 32];
    let start = buf.as_ptr().align_offset(16) + offset;
    buf[start..start + bytes.len()].copy_from_slice(bytes);
    (buf, start)
}

/// Whether a table missing on this CPU must fail the run (`EDGERNN_REQUIRE_KERNELS`).
pub(super) fn required(name: &str) -> bool {
    std::env::var("EDGERNN_REQUIRE_KERNELS")
        .map(|v| v.split(',').any(|n| n.trim() == name))
        .unwrap_or(false)
}

/// The table, or `None` after printing why its tests are skipped (panics when required).
pub(super) fn table_or_skip(
    name: &str,
    table: Option<&'static Kernels>,
) -> Option<&'static Kernels> {
    if table.is_none() {
        assert!(
            !required(name),
            "kernel table `{name}` is required (EDGERNN_REQUIRE_KERNELS) but this CPU cannot run it"
        );
        std::eprintln!("SKIPPED: kernel table `{name}` is not available on this CPU");
    }
    table
}

fn check_f32(name: &str, what: &str, got: f32, exact: f64, magnitude: f64) {
    let err = (f64::from(got) - exact).abs();
    assert!(
        err <= F32_TOL * magnitude + 1e-30,
        "{name} {what}: got {got}, exact {exact}, error {err} > {F32_TOL} * {magnitude}"
    );
}

pub(super) fn matvec_f32(name: &str, k: &Kernels) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for cols in 0..=MAX_COLS {
        for rows in ROW_COUNTS {
            for offset in 0..4 {
                let w: Vec<f32> = (0..rows * cols).map(|_| rng.f32()).collect();
                let x: Vec<f32> = (0..cols).map(|_| rng.f32()).collect();
                let y0: Vec<f32> = (0..rows + 3).map(|_| rng.f32() * 100.0).collect();
                let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
                let (buf, start) = misaligned(&bytes, offset);
                let mut y = y0.clone();
                (k.matvec_f32)(
                    F32View::new(&buf[start..start + bytes.len()]),
                    &x,
                    &mut y[..rows],
                );
                for r in 0..rows {
                    let row = &w[r * cols..(r + 1) * cols];
                    let exact: f64 = f64::from(y0[r])
                        + row
                            .iter()
                            .zip(&x)
                            .map(|(&a, &b)| f64::from(a) * f64::from(b))
                            .sum::<f64>();
                    let mag: f64 = f64::from(y0[r].abs())
                        + row
                            .iter()
                            .zip(&x)
                            .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
                            .sum::<f64>();
                    let what = std::format!("{rows}x{cols} offset {offset} row {r}");
                    check_f32(name, &what, y[r], exact, mag);
                }
                assert_eq!(y[rows..], y0[rows..], "{name}: wrote past the rows");
            }
        }
    }
}

pub(super) fn matvec_f32_specials(name: &str, k: &Kernels) {
    // NaN and infinities propagate; huge values overflow to infinity as in scalar code.
    for cols in [1usize, 7, 8, 9, 17, 33] {
        for bad in [f32::NAN, f32::INFINITY] {
            let w = std::vec![1.0f32; 9 * cols];
            let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let mut x = std::vec![0.5f32; cols];
            x[cols - 1] = bad;
            let mut y = std::vec![0.0f32; 9];
            (k.matvec_f32)(F32View::new(&bytes), &x, &mut y);
            for v in &y {
                assert!(
                    if bad.is_nan() {
                        v.is_nan()
                    } else {
                        *v == f32::INFINITY
                    },
                    "{name} {cols} cols: {bad} gave {v}"
                );
            }
        }
        let w = std::vec![f32::MAX; 9 * cols];
        let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut y = std::vec![0.0f32; 9];
        (k.matvec_f32)(F32View::new(&bytes), &std::vec![2.0f32; cols], &mut y);
        assert!(
            y.iter().all(|v| *v == f32::INFINITY),
            "{name} {cols}: {y:?}"
        );
    }
}

pub(super) fn matvec_i8w(name: &str, k: &Kernels) {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for cols in 0..=MAX_COLS {
        for rows in ROW_COUNTS {
            for offset in 0..4 {
                let w: Vec<i8> = (0..rows * cols).map(|_| rng.i8()).collect();
                let scales: Vec<f32> = (0..rows).map(|_| rng.f32() / 64.0).collect();
                let x: Vec<f32> = (0..cols).map(|_| rng.f32()).collect();
                let y0: Vec<f32> = (0..rows + 3).map(|_| rng.f32() * 10.0).collect();
                let bytes: Vec<u8> = w.iter().map(|&v| v as u8).collect();
                let (wbuf, wstart) = misaligned(&bytes, offset);
                let sbytes: Vec<u8> = scales.iter().flat_map(|v| v.to_le_bytes()).collect();
                let (sbuf, sstart) = misaligned(&sbytes, (offset + 1) % 4);
                let mut y = y0.clone();
                (k.matvec_i8w)(
                    &wbuf[wstart..wstart + bytes.len()],
                    F32View::new(&sbuf[sstart..sstart + sbytes.len()]),
                    &x,
                    &mut y[..rows],
                );
                for r in 0..rows {
                    let row = &w[r * cols..(r + 1) * cols];
                    let s = f64::from(scales[r]);
                    let dot: f64 = row
                        .iter()
                        .zip(&x)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    let mag: f64 = f64::from(y0[r].abs())
                        + s.abs()
                            * row
                                .iter()
                                .zip(&x)
                                .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
                                .sum::<f64>();
                    let what = std::format!("{rows}x{cols} offset {offset} row {r}");
                    check_f32(name, &what, y[r], f64::from(y0[r]) + s * dot, mag);
                }
                assert_eq!(y[rows..], y0[rows..], "{name}: wrote past the rows");
            }
        }
    }
}

fn oracle_dot(w: &[i8], x: &[i32]) -> i64 {
    w.iter()
        .zip(x)
        .map(|(&a, &b)| i64::from(a) * i64::from(b))
        .sum()
}

fn check_dot_rows(name: &str, k: &Kernels, w: &[i8], x: &[i32], rows: usize, offset: usize) {
    let cols = x.len();
    let bytes: Vec<u8> = w.iter().map(|&v| v as u8).collect();
    let (buf, start) = misaligned(&bytes, offset);
    // Dirty output: every entry must be overwritten; the extra one must not be touched.
    let mut out = std::vec![0x5A5A_5A5A_5A5A_5A5Ai64; rows + 1];
    (k.dot_rows_i8)(&buf[start..start + bytes.len()], x, &mut out[..rows]);
    for r in 0..rows {
        let expected = oracle_dot(&w[r * cols..(r + 1) * cols], x);
        assert_eq!(
            out[r], expected,
            "{name} {rows}x{cols} offset {offset} row {r}"
        );
    }
    assert_eq!(
        out[rows], 0x5A5A_5A5A_5A5A_5A5A,
        "{name}: wrote past the rows"
    );
}

pub(super) fn dot_rows_i8(name: &str, k: &Kernels) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    // int8 codes, int16 codes, and codes outside i16 (the kernels must stay exact there too).
    let ranges = [(-128, 127), (-32768, 32767), (-100_000, 100_000)];
    for cols in 0..=MAX_COLS {
        for rows in ROW_COUNTS {
            for (offset, &(lo, hi)) in (0..4).zip(ranges.iter().cycle()) {
                let w: Vec<i8> = (0..rows * cols).map(|_| rng.i8()).collect();
                let x: Vec<i32> = (0..cols).map(|_| rng.range(lo, hi)).collect();
                check_dot_rows(name, k, &w, &x, rows, offset);
            }
        }
    }
}

pub(super) fn dot_rows_i8_saturating(name: &str, k: &Kernels) {
    // The extremes at the widest input the loader accepts: every product is 2^22, the row sum
    // 2^34, far past i32; chunked 32-bit partial sums must not wrap.
    let cols = crate::MAX_WIDTH;
    for (wv, xv) in [
        (-128i8, -32768i32),
        (-128, 32767),
        (127, -32768),
        (127, 32767),
    ] {
        for rows in [1usize, 4, 5] {
            let w = std::vec![wv; rows * cols];
            let x = std::vec![xv; cols];
            check_dot_rows(name, k, &w, &x, rows, 1);
        }
    }
    // Widths around the chunk boundary, mixed signs.
    let mut rng = Rng(7);
    for cols in [2047usize, 2048, 2049, 2063, 4095] {
        let w: Vec<i8> = (0..5 * cols)
            .map(|_| {
                if rng.next().is_multiple_of(2) {
                    -128
                } else {
                    127
                }
            })
            .collect();
        let x: Vec<i32> = (0..cols)
            .map(|_| {
                if rng.next().is_multiple_of(3) {
                    32767
                } else {
                    -32768
                }
            })
            .collect();
        check_dot_rows(name, k, &w, &x, 5, 3);
    }
}

/// The projection oracle: codes saturated to i16, exact i64 sums, the crate's requantization,
/// accumulation and saturation to i32.
#[allow(clippy::too_many_arguments)]
fn oracle_project(
    w: &[i8],
    bias: &[i32],
    requant: &[i32],
    x: &[i32],
    rows: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    let x16: Vec<i32> = x.iter().map(|&v| v.clamp(-32768, 32767)).collect();
    let cols = x.len();
    if cols == 0 {
        return;
    }
    for r in 0..rows {
        let acc = i64::from(bias[r]) + oracle_dot(&w[r * cols..(r + 1) * cols], &x16);
        let v = crate::quant::Requant::unpack(requant[r]).apply(acc);
        let v = if accumulate { i64::from(out[r]) + v } else { v };
        out[r] = v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    }
}

/// `rows x cols` row-major weights as a blob stores them in `layout` (padded to whole
/// blocks of 4 rows when interleaved, as the oracle reads only the real rows).
fn stored(w: &[i8], rows: usize, cols: usize, layout: WeightLayout) -> Vec<u8> {
    let bytes: Vec<u8> = w.iter().map(|&v| v as u8).collect();
    match layout {
        WeightLayout::Interleaved4 => {
            let padded_rows = rows.div_ceil(4) * 4;
            let mut full = bytes;
            full.resize(padded_rows * cols, 0);
            let mut out = std::vec![0u8; padded_rows * layout.row_bytes(cols)];
            assert!(super::generic::interleave4(
                &full,
                padded_rows,
                cols,
                &mut out
            ));
            out
        }
        _ => bytes,
    }
}

/// [`check_project_in`] of row-major weights.
#[allow(clippy::too_many_arguments)]
fn check_project(
    name: &str,
    k: &Kernels,
    w: &[i8],
    bias: &[i32],
    requant: &[i32],
    x: &[i32],
    rows: usize,
    offset: usize,
    accumulate: bool,
    initial: i32,
) {
    let layout = WeightLayout::RowMajor;
    check_project_in(
        name, k, layout, w, bias, requant, x, rows, offset, accumulate, initial,
    );
}

/// One projection case through `k`'s own packing, the weights stored in `layout`, compared
/// with the (row-major) oracle bit for bit.
#[allow(clippy::too_many_arguments)]
fn check_project_in(
    name: &str,
    k: &Kernels,
    layout: WeightLayout,
    w: &[i8],
    bias: &[i32],
    requant: &[i32],
    x: &[i32],
    rows: usize,
    offset: usize,
    accumulate: bool,
    initial: i32,
) {
    let cols = x.len();
    let le = |v: &[i32]| -> Vec<u8> { v.iter().flat_map(|v| v.to_le_bytes()).collect() };
    let bytes = stored(w, rows, cols, layout);
    let (buf, start) = misaligned(&bytes, offset);
    let (bias_bytes, requant_bytes) = (le(bias), le(requant));
    let rows_view = super::RowsI8 {
        weights: &buf[start..start + bytes.len()],
        bias: super::I32View::new(&bias_bytes),
        requant: super::RequantView::new(super::I32View::new(&requant_bytes)),
    };
    // The packed buffer starts dirty: packing must write every word the kernel reads.
    let mut packed = std::vec![0x3C3C_3C3Ci32; super::packed_len(cols)];
    (k.pack_i16)(x, &mut packed);
    let mut got = std::vec![initial; rows + 1];
    let project = match layout {
        WeightLayout::Interleaved4 => k.project_i8_interleaved4,
        _ => k.project_i8,
    };
    project(&rows_view, &packed, cols, &mut got[..rows], accumulate);
    let mut expected = std::vec![initial; rows + 1];
    oracle_project(w, bias, requant, x, rows, &mut expected[..rows], accumulate);
    assert_eq!(
        got, expected,
        "{name} project {rows}x{cols} {layout:?} offset {offset} accumulate {accumulate}"
    );
}

/// Random per-row requantizers as the blob stores them (packed), factors from `2^lowest` to
/// 2^6. Down to 2^-30 every factor keeps `n = 31 + shift <= 62`, the range of real models
/// (and of the SIMD kernels' vector requantization); smaller ones take the 128-bit path.
fn random_requants(rng: &mut Rng, rows: usize, lowest: i32) -> Vec<i32> {
    (0..rows)
        .map(|_| {
            let exponent = rng.range(lowest, 6);
            let factor = (1.0 + f64::from(rng.range(0, 1_000_000)) / 1e6) * 2f64.powi(exponent);
            crate::quant::Requant::from_f64(factor)
                .and_then(|r| r.pack())
                .unwrap_or(0)
        })
        .collect()
}

pub(super) fn project_i8(name: &str, k: &Kernels) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // int8 codes, int16 codes, and codes past i16 (saturated by every table's packing).
    let ranges = [(-128, 127), (-32768, 32767), (-100_000, 100_000)];
    let widths = (0..=MAX_COLS).chain([255, 256, 257, 511, 512, 513, 1023, 1100]);
    for cols in widths {
        for rows in ROW_COUNTS.into_iter().chain([31, 32, 33, 64, 65, 131]) {
            for (offset, &(lo, hi)) in (0..4).zip(ranges.iter().cycle()) {
                let w: Vec<i8> = (0..rows * cols).map(|_| rng.i8()).collect();
                let x: Vec<i32> = (0..cols).map(|_| rng.range(lo, hi)).collect();
                let bias: Vec<i32> = (0..rows).map(|_| rng.range(-1 << 24, 1 << 24)).collect();
                let requant = random_requants(&mut rng, rows, if offset < 2 { -30 } else { -40 });
                let accumulate = offset % 2 == 1;
                let initial = rng.range(-1 << 20, 1 << 20);
                check_project(
                    name, k, &w, &bias, &requant, &x, rows, offset, accumulate, initial,
                );
            }
        }
    }
    // Accumulators just past i32 with int8 codes (the i8 product paths), both signs.
    for (wv, xv, bias) in [(127i8, 127i32, i32::MAX - 100), (-128, 127, i32::MIN + 100)] {
        for cols in [8usize, 16, 40, 1000] {
            let rows = 37;
            let w = std::vec![wv; rows * cols];
            let x = std::vec![xv; cols];
            let bias: Vec<i32> = (0..rows)
                .map(|r| if r % 3 == 0 { bias } else { 0 })
                .collect();
            let requant = random_requants(&mut rng, rows, -30);
            for accumulate in [false, true] {
                let initial = if accumulate { i32::MAX - 5 } else { 0 };
                check_project(
                    name, k, &w, &bias, &requant, &x, rows, 2, accumulate, initial,
                );
            }
        }
    }
    // Extremes: full-scale weights and codes at the widest input, and sums that saturate i32.
    for (wv, xv) in [(-128i8, -32768i32), (127, -32768), (127, 32767)] {
        let cols = crate::MAX_WIDTH;
        let rows = 5;
        let w = std::vec![wv; rows * cols];
        let x = std::vec![xv; cols];
        let bias = std::vec![i32::MAX; rows];
        let big = crate::quant::Requant::from_f64(40.0)
            .and_then(|r| r.pack())
            .unwrap_or(0);
        for requant in [std::vec![big; rows], random_requants(&mut rng, rows, -40)] {
            check_project(
                name,
                k,
                &w,
                &bias,
                &requant,
                &x,
                rows,
                1,
                true,
                i32::MAX - 5,
            );
        }
    }
}

/// The ARMv6-M kernel's inline requantization (`row!` in `arm/v6m.rs`), instruction for
/// instruction and on any host: `None` where the kernel calls its general subroutine (the
/// arithmetic of [`crate::quant::fixed::requant_i32`]) instead. Checked arithmetic: the bounds
/// the kernel's comments claim must hold, or the test panics.
fn v6m_inline_requant(acc: i32, packed: i32) -> Option<i32> {
    // adds (of 2^19), lsrs, bne: acc in [-2^19, 2^19).
    if (acc.wrapping_add(1 << 19) as u32) >> 20 != 0 {
        return None;
    }
    // sxtb, adds, bpl: shifts from -10 on.
    let by = i32::from(packed as u8 as i8) + 10;
    if by < 0 {
        return None;
    }
    // lsls, lsrs, muls, asrs: the 12 bits under the top 12 of the multiplier.
    let ml = (((packed as u32) << 12) >> 20) as i32;
    let low = acc.checked_mul(ml).expect("acc * ml fits i32") >> 12;
    // asrs, muls, adds: the top 12 bits, signed.
    let h = acc
        .checked_mul(packed >> 20)
        .and_then(|p| p.checked_add(low))
        .expect("h fits i32");
    // asrs by a register: 32 and more fill with the sign; adds, asrs.
    let q = h >> by.min(31);
    Some(q.checked_add(1).expect("no overflow") >> 1)
}

/// The v6m kernel's inline requantization gives [`crate::quant::Requant::apply`]'s bits, and
/// takes every biased sum in `[-2^19, 2^19)` with a shift from -10 on, for every packed value
/// (any multiplier, valid or not, every shift byte).
#[test]
fn v6m_inline_requant_matches_apply() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut multipliers = std::vec![
        0,
        1 << 30,
        0x7FFF_FF00,
        0x4000_0100,
        0x5555_5500,
        i32::MIN,
        -256,
        -0x4000_0000,
    ];
    multipliers.extend((0..24).map(|_| (rng.next() as i32) & !0xFF));
    let edge = 1 << 19;
    let mut accs = std::vec![
        -edge - 1,
        -edge,
        -edge + 1,
        -(1 << 15) - 1,
        -1,
        0,
        1,
        1 << 15,
        edge - 1,
        edge,
        i32::MIN,
        i32::MAX,
    ];
    accs.extend((0..64).map(|_| rng.range(-edge, edge - 1)));
    for &m in &multipliers {
        for shift in 0..=255u8 {
            let packed = m | i32::from(shift);
            let requant = crate::quant::Requant::unpack(packed);
            for &acc in &accs {
                let got = v6m_inline_requant(acc, packed);
                let inline = (-edge..edge).contains(&acc) && shift as i8 >= -10;
                assert_eq!(got.is_some(), inline, "acc {acc} packed {packed:#x}");
                if let Some(v) = got {
                    assert_eq!(
                        i64::from(v),
                        requant.apply(i64::from(acc)),
                        "acc {acc} packed {packed:#x}"
                    );
                }
            }
        }
    }
}

/// The v6m kernel starts each row's sum at its bias and lets it wrap: a row sum of int8 codes
/// is within `2^30` (at most 2^16 columns of products within 2^14), and then a wrapped biased
/// sum is never in the inline range `[-2^19, 2^19)`, so only the subroutine needs to check.
#[test]
fn v6m_wrapped_sums_leave_the_inline_range() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let sums = [-(1 << 30), -(1 << 30) + 1, -1, 0, 1, (1 << 30) - 1, 1 << 30];
    let biases = [
        i32::MIN,
        i32::MIN + 1,
        -(1 << 30),
        0,
        1 << 30,
        i32::MAX - 1,
        i32::MAX,
    ];
    let mut pairs: Vec<(i32, i32)> = sums
        .iter()
        .flat_map(|&s| biases.iter().map(move |&b| (s, b)))
        .collect();
    pairs.extend((0..100_000).map(|_| {
        // Biases that bring the wrapped sum near the inline range.
        let sum = rng.range(-(1 << 30), 1 << 30);
        let target = rng.range(-(1 << 20), 1 << 20);
        (sum, target.wrapping_sub(sum))
    }));
    for (sum, bias) in pairs {
        let wrapped = sum.wrapping_add(bias);
        if (-(1 << 19)..1 << 19).contains(&wrapped) {
            assert_eq!(
                sum.checked_add(bias),
                Some(wrapped),
                "sum {sum} bias {bias}"
            );
        }
    }
}

/// One side of a paired projection case: weights, biases (empty: none), packed requantizers
/// and codes.
struct Side {
    w: Vec<i8>,
    bias: Vec<i32>,
    requant: Vec<i32>,
    x: Vec<i32>,
    /// How the weights are stored (the oracle reads `w` row-major).
    layout: WeightLayout,
}

impl Side {
    fn random(rng: &mut Rng, rows: usize, cols: usize, codes: (i32, i32), lowest: i32) -> Self {
        Self {
            w: (0..rows * cols).map(|_| rng.i8()).collect(),
            bias: (0..rows).map(|_| rng.range(-1 << 24, 1 << 24)).collect(),
            requant: random_requants(rng, rows, lowest),
            x: (0..cols).map(|_| rng.range(codes.0, codes.1)).collect(),
            layout: WeightLayout::RowMajor,
        }
    }

    /// The oracle's projection of this side's rows `first..` into `out`.
    fn oracle(&self, first: usize, out: &mut [i32], accumulate: bool) {
        let rows = out.len();
        let cols = self.x.len();
        let bias = if self.bias.is_empty() {
            std::vec![0; first + rows]
        } else {
            self.bias.clone()
        };
        oracle_project(
            &self.w[first * cols..],
            &bias[first..],
            &self.requant[first..],
            &self.x,
            rows,
            out,
            accumulate,
        );
    }
}

/// Byte buffers of one side, the weights `offset` bytes off alignment, and its packed codes.
struct SideBytes {
    weights: (Vec<u8>, usize, usize),
    bias: Vec<u8>,
    requant: Vec<u8>,
    packed: Vec<i32>,
}

impl SideBytes {
    fn new(k: &Kernels, side: &Side, offset: usize) -> Self {
        let le = |v: &[i32]| -> Vec<u8> { v.iter().flat_map(|v| v.to_le_bytes()).collect() };
        let rows = side.requant.len();
        let bytes = stored(&side.w, rows, side.x.len(), side.layout);
        let (buf, start) = misaligned(&bytes, offset);
        // The packed buffer starts dirty: packing must write every word the kernel reads.
        let mut packed = std::vec![0x3C3C_3C3Ci32; super::packed_len(side.x.len())];
        (k.pack_i16)(&side.x, &mut packed);
        Self {
            weights: (buf, start, bytes.len()),
            bias: le(&side.bias),
            requant: le(&side.requant),
            packed,
        }
    }

    fn view(&self, cols: usize) -> super::ProjectionI8<'_> {
        let (buf, start, len) = &self.weights;
        super::ProjectionI8 {
            rows: super::RowsI8 {
                weights: &buf[*start..start + len],
                bias: super::I32View::new(&self.bias),
                requant: super::RequantView::new(super::I32View::new(&self.requant)),
            },
            packed: &self.packed,
            cols,
        }
    }
}

/// One paired case through `k` (its own packing): rows `first..first + rows` of both sides
/// compared with the oracle's `x` side then accumulated `h` side, bit for bit; the output
/// past `rows` must stay untouched.
fn check_project_pair(
    name: &str,
    k: &Kernels,
    (x, h): (&Side, &Side),
    first: usize,
    rows: usize,
    offset: usize,
) {
    let (bx, bh) = (
        SideBytes::new(k, x, offset),
        SideBytes::new(k, h, 3 - offset),
    );
    let (vx, vh) = (bx.view(x.x.len()), bh.view(h.x.len()));
    let mut got = std::vec![0x5EED_1234; rows + 1];
    match x.layout {
        WeightLayout::Interleaved4 => {
            super::project_pair_interleaved4_with(k, &vx, &vh, first, &mut got[..rows]);
        }
        _ => super::project_pair_with(k, &vx, &vh, first, &mut got[..rows]),
    }
    let mut expected = std::vec![0x5EED_1234; rows + 1];
    x.oracle(first, &mut expected[..rows], false);
    h.oracle(first, &mut expected[..rows], true);
    assert_eq!(
        got,
        expected,
        "{name} project_pair rows {first}..+{rows}, {}+{} columns, offset {offset}",
        x.x.len(),
        h.x.len()
    );
}

pub(super) fn project_pair_i8(name: &str, k: &Kernels) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let ranges = [(-128, 127), (-32768, 32767), (-100_000, 100_000)];
    // Widths of the input side (ragged ones included: that side then leaves the fast path)
    // and of the recurrent side.
    let x_widths = [0usize, 1, 3, 4, 8, 12, 13, 16, 36, 64, 260];
    let h_widths = [4usize, 5, 8, 16, 20, 32, 64, 128];
    for (i, &cx) in x_widths.iter().enumerate() {
        for (j, &ch) in h_widths.iter().enumerate() {
            for rows in ROW_COUNTS.into_iter().chain([12, 16, 32, 33]) {
                let offset = (i + j + rows) % 4;
                // Rows from the start, or from further in (any row, not only whole blocks).
                let first = [0, 0, 1, 4, 6][(i + 2 * j + rows) % 5];
                let codes = ranges[(i + rows) % 3];
                let lowest = if offset < 3 { -30 } else { -40 };
                let x = Side::random(&mut rng, first + rows, cx, codes, lowest);
                let mut h = Side::random(&mut rng, first + rows, ch, ranges[j % 3], lowest);
                // A Keras LSTM's recurrent side has no bias.
                if (i + j) % 2 == 0 {
                    h.bias.clear();
                }
                check_project_pair(name, k, (&x, &h), first, rows, offset);
            }
        }
    }
    // Saturation: sums past i32 on either side (the fast path must give up on those blocks
    // and only those), biases at the limits, factors large enough to saturate the sum.
    let big = crate::quant::Requant::from_f64(40.0)
        .and_then(|r| r.pack())
        .unwrap_or(0);
    for case in 0..8usize {
        let rows = 12;
        let (cx, ch) = (8, 1024);
        let mut x = Side::random(&mut rng, rows, cx, (-128, 127), -12);
        let mut h = Side::random(&mut rng, rows, ch, (-32768, 32767), -12);
        // Rows 4..8 saturate somewhere; the blocks around them must not notice.
        for r in 4..8 {
            let full = |w: &mut [i8]| w.fill(if case % 2 == 0 { 127 } else { -128 });
            match case / 2 {
                0 => full(&mut h.w[r * ch..(r + 1) * ch]),
                1 => x.bias[r] = if r % 2 == 0 { i32::MAX } else { i32::MIN },
                2 => {
                    x.requant[r] = big;
                    h.requant[r] = big;
                }
                _ => {
                    full(&mut h.w[r * ch..(r + 1) * ch]);
                    x.requant[r] = big;
                }
            }
        }
        if case / 2 == 0 {
            h.x.fill(if case % 4 == 0 { 32767 } else { -32768 });
        }
        check_project_pair(name, k, (&x, &h), 0, rows, case % 4);
    }
}

/// One split case through `k` (its own packing): rows `first..first + rows` of each side into
/// its own output (the GRU candidate's `W x` and `U h`), each compared with the oracle bit
/// for bit; the outputs past `rows` must stay untouched.
fn check_project_split(
    name: &str,
    k: &Kernels,
    (x, h): (&Side, &Side),
    first: usize,
    rows: usize,
    offset: usize,
) {
    let (bx, bh) = (
        SideBytes::new(k, x, offset),
        SideBytes::new(k, h, 3 - offset),
    );
    let (vx, vh) = (bx.view(x.x.len()), bh.view(h.x.len()));
    let mut got_x = std::vec![0x5EED_1234; rows + 1];
    let mut got_h = std::vec![0x1234_5EED; rows + 1];
    let (out_x, out_h) = (&mut got_x[..rows], &mut got_h[..rows]);
    match x.layout {
        WeightLayout::Interleaved4 => {
            super::project_split_interleaved4_with(k, &vx, &vh, first, out_x, out_h);
        }
        _ => super::project_split_with(k, &vx, &vh, first, out_x, out_h),
    }
    let mut want_x = std::vec![0x5EED_1234; rows + 1];
    let mut want_h = std::vec![0x1234_5EED; rows + 1];
    x.oracle(first, &mut want_x[..rows], false);
    h.oracle(first, &mut want_h[..rows], false);
    assert_eq!(
        (got_x, got_h),
        (want_x, want_h),
        "{name} project_split rows {first}..+{rows}, {}+{} columns, offset {offset}",
        x.x.len(),
        h.x.len()
    );
}

/// [`Kernels::project_split_i8`] (the definition where a table has none): the paired cases'
/// shapes, and sums that saturate on either side.
pub(super) fn project_split_i8(name: &str, k: &Kernels) {
    let mut rng = Rng(0x6A09_E667_F3BC_C908);
    let ranges = [(-128, 127), (-32768, 32767), (-100_000, 100_000)];
    let x_widths = [0usize, 1, 3, 4, 8, 12, 13, 16, 36, 64];
    let h_widths = [4usize, 5, 8, 16, 32, 64, 128];
    for (i, &cx) in x_widths.iter().enumerate() {
        for (j, &ch) in h_widths.iter().enumerate() {
            for rows in ROW_COUNTS.into_iter().chain([12, 16, 64, 65]) {
                let offset = (i + j + rows) % 4;
                let first = [0, 0, 1, 4, 128][(i + 2 * j + rows) % 5];
                let codes = ranges[(i + rows) % 3];
                let lowest = if offset < 3 { -30 } else { -40 };
                let x = Side::random(&mut rng, first + rows, cx, codes, lowest);
                let mut h = Side::random(&mut rng, first + rows, ch, ranges[j % 3], lowest);
                if (i + j) % 2 == 0 {
                    h.bias.clear();
                }
                check_project_split(name, k, (&x, &h), first, rows, offset);
            }
        }
    }
    for case in 0..4usize {
        let (rows, cx, ch) = (12, 8, 1024);
        let mut x = Side::random(&mut rng, rows, cx, (-128, 127), -12);
        let mut h = Side::random(&mut rng, rows, ch, (-32768, 32767), -12);
        for r in 4..8 {
            if case % 2 == 0 {
                h.w[r * ch..(r + 1) * ch].fill(127);
            } else {
                x.bias[r] = i32::MAX;
            }
        }
        h.x.fill(if case < 2 { 32767 } else { -32768 });
        check_project_split(name, k, (&x, &h), 0, rows, case);
    }
}

/// [`Kernels::project_split_i8_interleaved4`] (the definition where a table has none), as the
/// GRU calls it: from block starts, input widths ragged or not, recurrent widths of real
/// cells, with and without a recurrent bias, unaligned views, int8 to out-of-range codes;
/// then sums that saturate on either side in the middle block (biases at the i32 limit,
/// full-scale products, large factors).
#[cfg(feature = "interleaved4")]
pub(super) fn project_split_i8_interleaved(name: &str, k: &Kernels) {
    let layout = WeightLayout::Interleaved4;
    let mut rng = Rng(0xBB67_AE85_84CA_A73B);
    let ranges = [(-128, 127), (-32768, 32767), (-100_000, 100_000)];
    let x_widths = [0usize, 1, 3, 4, 8, 12, 13, 16, 36, 64, 67];
    let h_widths = [4usize, 5, 8, 16, 20, 32, 64, 128];
    for (i, &cx) in x_widths.iter().enumerate() {
        for (j, &ch) in h_widths.iter().enumerate() {
            for rows in [1usize, 3, 4, 5, 8, 12, 16, 64, 65] {
                let offset = (i + j + rows) % 4;
                let first = [0, 4, 8, 128][(i + 2 * j + rows) % 4];
                let total = (first + rows).div_ceil(4) * 4;
                let lowest = if offset < 3 { -30 } else { -40 };
                let mut x = Side::random(&mut rng, total, cx, ranges[(i + rows) % 3], lowest);
                let mut h = Side::random(&mut rng, total, ch, ranges[j % 3], lowest);
                x.layout = layout;
                h.layout = layout;
                if (i + j) % 2 == 0 {
                    h.bias.clear();
                }
                check_project_split(name, k, (&x, &h), first, rows, offset);
            }
        }
    }
    let big = crate::quant::Requant::from_f64(40.0)
        .and_then(|r| r.pack())
        .unwrap_or(0);
    for case in 0..8usize {
        let (rows, cx, ch) = (12, 8, 1024);
        let mut x = Side::random(&mut rng, rows, cx, (-128, 127), -12);
        let mut h = Side::random(&mut rng, rows, ch, (-32768, 32767), -12);
        x.layout = layout;
        h.layout = layout;
        // Rows 4..8 saturate somewhere; the blocks around them must not notice.
        for r in 4..8 {
            let full = |w: &mut [i8]| w.fill(if case % 2 == 0 { 127 } else { -128 });
            match case / 2 {
                0 => full(&mut h.w[r * ch..(r + 1) * ch]),
                1 => x.bias[r] = if r % 2 == 0 { i32::MAX } else { i32::MIN },
                2 => {
                    x.requant[r] = big;
                    h.requant[r] = big;
                }
                _ => {
                    full(&mut h.w[r * ch..(r + 1) * ch]);
                    x.requant[r] = big;
                }
            }
        }
        if case / 2 == 0 {
            h.x.fill(if case % 4 == 0 { 32767 } else { -32768 });
        }
        check_project_split(name, k, (&x, &h), 0, rows, case % 4);
    }
}

/// [`project_i8`] and [`project_pair_i8`] over weights stored [`WeightLayout::Interleaved4`]:
/// every width 0..=MAX_COLS and past the chunk sizes, rows in whole blocks of 4 and ragged
/// (the last block's rows past the output stay unread), unaligned views, with and without
/// biases, int8, int16 and out-of-range codes, saturating sums; pairs from block starts.
#[cfg(feature = "interleaved4")]
pub(super) fn project_i8_interleaved(name: &str, k: &Kernels) {
    let layout = WeightLayout::Interleaved4;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let ranges = [(-128, 127), (-32768, 32767), (-100_000, 100_000)];
    for cols in (0..=MAX_COLS).chain([255, 256, 257, 513]) {
        for rows in [1usize, 3, 4, 5, 8, 12, 17, 32, 64, 68] {
            for (offset, &(lo, hi)) in (0..4).zip(ranges.iter().cycle()) {
                let w: Vec<i8> = (0..rows * cols).map(|_| rng.i8()).collect();
                let x: Vec<i32> = (0..cols).map(|_| rng.range(lo, hi)).collect();
                let bias: Vec<i32> = if offset == 3 {
                    Vec::new()
                } else {
                    (0..rows).map(|_| rng.range(-1 << 24, 1 << 24)).collect()
                };
                let oracle_bias = if bias.is_empty() {
                    std::vec![0; rows]
                } else {
                    bias.clone()
                };
                let requant = random_requants(&mut rng, rows, if offset < 2 { -30 } else { -40 });
                let accumulate = offset % 2 == 1;
                let initial = rng.range(-1 << 20, 1 << 20);
                check_project_in(
                    name,
                    k,
                    layout,
                    &w,
                    &oracle_bias,
                    &requant,
                    &x,
                    rows,
                    offset,
                    accumulate,
                    initial,
                );
            }
        }
    }
    // Saturating: full-scale weights and codes, biases at the limits, large factors.
    let big = crate::quant::Requant::from_f64(40.0)
        .and_then(|r| r.pack())
        .unwrap_or(0);
    for (wv, xv) in [(-128i8, -32768i32), (127, -32768), (127, 32767)] {
        for cols in [7usize, 64, crate::MAX_WIDTH] {
            let rows = 8;
            let w = std::vec![wv; rows * cols];
            let x = std::vec![xv; cols];
            let bias = std::vec![i32::MAX; rows];
            for requant in [std::vec![big; rows], random_requants(&mut rng, rows, -40)] {
                check_project_in(
                    name,
                    k,
                    layout,
                    &w,
                    &bias,
                    &requant,
                    &x,
                    rows,
                    1,
                    true,
                    i32::MAX - 5,
                );
            }
        }
    }
    // Pairs, as the cells call them: from block starts, any rows.
    for (i, cx) in [0usize, 1, 3, 4, 8, 13, 16, 36, 67].into_iter().enumerate() {
        for (j, ch) in [4usize, 8, 16, 20, 64].into_iter().enumerate() {
            for rows in [4usize, 8, 12, 16, 32, 5] {
                let first = [0, 4, 8][(i + j + rows) % 3];
                let offset = (i + j + rows) % 4;
                let total = (first + rows).div_ceil(4) * 4;
                let mut x = Side::random(&mut rng, total, cx, ranges[(i + rows) % 3], -30);
                let mut h = Side::random(&mut rng, total, ch, ranges[j % 3], -30);
                x.layout = layout;
                h.layout = layout;
                if (i + j) % 2 == 0 {
                    h.bias.clear();
                }
                check_project_pair(name, k, (&x, &h), first, rows, offset);
            }
        }
    }
}

/// The LSTM gate oracle: the formulas of `generic::lstm::lstm_units_i8` in 64 bits, over the
/// units every slice holds.
fn oracle_lstm(gates: [&[i32]; 4], c: &mut [i32], h: &mut [i32], p: &super::LstmParams) {
    use crate::quant::fixed::{sat_i16, shift_round};
    use crate::quant::lut::{sigmoid_q15, tanh_q15};
    let sat = |v: i64| i16::try_from(v.clamp(-32768, 32767)).unwrap_or(0);
    let sigmoid = |v: i32| i64::from(sigmoid_q15(sat(i64::from(v))));
    let tanh = |v: i64| i64::from(tanh_q15(sat(v)));
    let frac = u32::from(p.cell_frac.min(15));
    let units = gates
        .iter()
        .map(|g| g.len())
        .fold(c.len().min(h.len()), usize::min);
    for u in 0..units {
        let (i, f, o) = (
            sigmoid(gates[0][u]),
            sigmoid(gates[1][u]),
            sigmoid(gates[3][u]),
        );
        let g = tanh(i64::from(gates[2][u]));
        let input = shift_round(i * g, 30 - frac);
        let cell = i64::from(sat_i16(shift_round(f * i64::from(c[u]), 15) + input));
        c[u] = cell as i32;
        let q12 = if frac >= 12 {
            shift_round(cell, frac - 12)
        } else {
            cell << (12 - frac)
        };
        let v = shift_round(o * tanh(q12), 15);
        let code = i64::from(p.codes.zero) + p.codes.requant.apply(v);
        h[u] = code.min(i64::from(p.codes.hi)).max(i64::from(p.codes.lo)) as i32;
    }
}

/// One LSTM gate case through `k`, compared with the oracle: `c` and `h` bit for bit, values
/// past the units untouched.
fn check_lstm(name: &str, k: &Kernels, gates: [&[i32]; 4], c: &[i32], p: &super::LstmParams) {
    let units = c.len();
    let mut c_got: Vec<i32> = c.iter().copied().chain([0x5A5A]).collect();
    let mut h_got: Vec<i32> = std::vec![-0x5A5A; units + 1];
    let (mut c_want, mut h_want) = (c_got.clone(), h_got.clone());
    (k.lstm_units_i8)(gates, &mut c_got[..units], &mut h_got[..units], p);
    oracle_lstm(gates, &mut c_want[..units], &mut h_want[..units], p);
    for u in 0..=units {
        assert_eq!(
            (c_got[u], h_got[u]),
            (c_want[u], h_want[u]),
            "{name} lstm unit {u} of {units}: gates {:?} c {:?} {p:?}",
            gates.map(|g| g.get(u).copied()),
            c.get(u),
        );
    }
}

/// Output requantizers: int8 codes (the fast rule), int16 codes, the ends of the shift range,
/// and invalid ones (negative multiplier, huge zero point, crossed bounds).
fn lstm_params(rng: &mut Rng) -> Vec<super::LstmParams> {
    use crate::quant::Requant;
    let mut out = Vec::new();
    let factors = [
        127.5 / 32768.0,
        1.0 / 256.0,
        0.2,
        0.26,
        1.0,
        65535.0 / 65536.0,
        3.0e-10,
    ];
    for (n, &factor) in factors.iter().enumerate() {
        let requant = Requant::from_f64(factor).unwrap_or_default();
        let (lo, hi) = if n % 3 == 2 {
            (-32768, 32767)
        } else {
            (-128, 127)
        };
        out.push(super::LstmParams {
            cell_frac: (n * 3) as u8,
            codes: super::CodeParams {
                requant,
                zero: rng.range(-128, 127),
                lo,
                hi,
            },
        });
    }
    for shift in [-30i8, 1, 2, 3, 31, 32, 33, 60, 64, 100] {
        out.push(super::LstmParams {
            cell_frac: rng.range(0, 20) as u8,
            codes: super::CodeParams {
                requant: Requant {
                    multiplier: (1 << 30) | (rng.next() as i32 & 0x3FFF_FF00),
                    shift,
                },
                zero: rng.range(-300, 300),
                lo: -128,
                hi: 127,
            },
        });
    }
    let int8 = Requant::from_f64(1.0 / 256.0).unwrap_or_default();
    for (multiplier, zero, lo, hi) in [
        (i32::MIN, 3, -128, 127),
        (-(1 << 30), 0, -128, 127),
        (int8.multiplier, i32::MAX, -128, 127),
        (int8.multiplier, i32::MIN, i32::MIN, i32::MAX),
        (int8.multiplier, 1 << 30, i32::MIN, i32::MAX),
        (int8.multiplier, -(1 << 30) - 1, i32::MIN, i32::MAX),
        (int8.multiplier, 0, 5, -5),
        (0, 7, -128, 127),
    ] {
        out.push(super::LstmParams {
            cell_frac: 15,
            codes: super::CodeParams {
                requant: Requant {
                    multiplier,
                    shift: int8.shift,
                },
                zero,
                lo,
                hi,
            },
        });
    }
    out
}

pub(super) fn lstm_units_i8(name: &str, k: &Kernels) {
    let mut rng = Rng(0x94D0_49BB_1331_11EB);
    let extremes = [
        i32::MIN,
        -32769,
        -32768,
        -32767,
        -1,
        0,
        1,
        32767,
        32768,
        i32::MAX,
    ];
    let pre = |rng: &mut Rng| match rng.next() % 8 {
        0 => extremes[(rng.next() % extremes.len() as u64) as usize],
        1 => rng.next() as i32,
        2 => rng.range(-32768, 32767),
        _ => rng.range(-9000, 9000),
    };
    for p in lstm_params(&mut rng) {
        // Every length through the vector tails, random values with the edges mixed in.
        for units in 0..=MAX_COLS {
            let gates: [Vec<i32>; 4] =
                core::array::from_fn(|_| (0..units).map(|_| pre(&mut rng)).collect());
            let c: Vec<i32> = (0..units).map(|_| rng.range(-32768, 32767)).collect();
            check_lstm(name, k, gates.each_ref().map(Vec::as_slice), &c, &p);
        }
        // Each gate over every i16 pre-activation (and past it), and every i16 cell value.
        let all: Vec<i32> = (-32768..=32767).chain(extremes).collect();
        for gate in 0..4 {
            let gates: [Vec<i32>; 4] = core::array::from_fn(|g| {
                if g == gate {
                    all.clone()
                } else {
                    all.iter().map(|_| pre(&mut rng)).collect()
                }
            });
            let c: Vec<i32> = all.iter().map(|&v| v.clamp(-32768, 32767)).rev().collect();
            check_lstm(name, k, gates.each_ref().map(Vec::as_slice), &c, &p);
        }
        // Cell values outside i16 in some units (a caller-written state), and slices of
        // different lengths (the units all of them hold).
        let gates: [Vec<i32>; 4] =
            core::array::from_fn(|g| (0..40 + g).map(|_| pre(&mut rng)).collect());
        let c: Vec<i32> = (0..45)
            .map(|u| {
                if u % 7 == 3 {
                    extremes[u % extremes.len()]
                } else {
                    rng.range(-32768, 32767)
                }
            })
            .collect();
        check_lstm(name, k, gates.each_ref().map(Vec::as_slice), &c, &p);
    }
}

/// `clamp(zero + requant(v), lo, hi)` in 64 bits and more (`lo` wins if the bounds cross).
fn oracle_code(v: i64, p: &super::CodeParams) -> i32 {
    let code = i64::from(p.zero) + p.requant.apply(v);
    code.min(i64::from(p.hi)).max(i64::from(p.lo)) as i32
}

/// The GRU oracle (`reset_after = true`, sigmoid and tanh): the integer cell's formulas in 64
/// bits, over the units every slice holds:
///
/// * `z = sigmoid(sat16(z))`, `r = sigmoid(sat16(r))`;
/// * `cand = tanh(sat16(cand_x + round(r * cand_h >> 15)))`;
/// * `h = codes(round((z * q15(h) + (32768 - z) * cand) >> 15))` with
///   `q15(h) = clamp(h_to_q15(h - zero), -32768, 32768)`.
fn oracle_gru(
    g: &super::GruGates<'_>,
    h: &mut [i32],
    h_to_q15: crate::quant::Requant,
    p: &super::CodeParams,
) {
    use crate::quant::fixed::shift_round;
    use crate::quant::lut::{sigmoid_q15, tanh_q15};
    let sat = |v: i64| i16::try_from(v.clamp(-32768, 32767)).unwrap_or(0);
    let sigmoid = |v: i32| i64::from(sigmoid_q15(sat(i64::from(v))));
    let tanh = |v: i64| i64::from(tanh_q15(sat(v)));
    let units = [g.z, g.r, g.cand_x, g.cand_h]
        .iter()
        .map(|s| s.len())
        .fold(h.len(), usize::min);
    for (u, hv) in h.iter_mut().enumerate().take(units) {
        let (z, r) = (sigmoid(g.z[u]), sigmoid(g.r[u]));
        let cand = tanh(i64::from(g.cand_x[u]) + shift_round(r * i64::from(g.cand_h[u]), 15));
        let old = h_to_q15
            .apply(i64::from(*hv) - i64::from(p.zero))
            .clamp(-32768, 32768);
        let v = shift_round(z * old + (32768 - z) * cand, 15);
        *hv = oracle_code(v, p);
    }
}

/// One GRU case through `kernel`: when it computes the step, `h` bit for bit the oracle's;
/// when it declines, `h` untouched; values past the units untouched either way. It must not
/// decline a real model's step: zero point in int8 range, `h` codes and `cand_h` in i16.
fn check_gru(
    name: &str,
    kernel: super::GruUnitsI8,
    g: &super::GruGates<'_>,
    h: &[i32],
    h_to_q15: crate::quant::Requant,
    p: &super::CodeParams,
) {
    let units = h.len();
    let mut got: Vec<i32> = h.iter().copied().chain([0x5A5A]).collect();
    let mut want = got.clone();
    let done = kernel(g, &mut got[..units], h_to_q15, p);
    if done {
        oracle_gru(g, &mut want[..units], h_to_q15, p);
    }
    let i16s = |s: &[i32]| s.iter().all(|&v| (-32768..=32767).contains(&v));
    let real = (-128..=127).contains(&p.zero) && i16s(h) && i16s(g.cand_h);
    assert!(
        done || !real,
        "{name} gru declined a real step: {p:?} {h_to_q15:?}"
    );
    for u in 0..=units {
        let at = |s: &[i32]| s.get(u).copied();
        assert_eq!(
            got[u],
            want[u],
            "{name} gru unit {u} of {units} (done {done}): z {:?} r {:?} cx {:?} ch {:?} h {:?} \
             {h_to_q15:?} {p:?}",
            at(g.z),
            at(g.r),
            at(g.cand_x),
            at(g.cand_h),
            at(h),
        );
    }
}

/// `h` to Q0.15 requantizers: int8 (about 256) and int16 (about 1) codes, tiny, and the ends
/// of the shift range, negative and zero multipliers.
fn h_to_q15_params(rng: &mut Rng) -> Vec<crate::quant::Requant> {
    use crate::quant::Requant;
    let mut out: Vec<Requant> = [
        256.0,
        257.3,
        1.0,
        0.999,
        2.0,
        1.0 / 65536.0,
        3.0e-10,
        40000.0,
    ]
    .iter()
    .map(|&f| Requant::from_f64(f).unwrap_or_default())
    .collect();
    for shift in [-30i8, -1, 0, 1, 15, 31, 32, 33, 64] {
        out.push(Requant {
            multiplier: (1 << 30) | (rng.next() as i32 & 0x3FFF_FF00),
            shift,
        });
    }
    for (multiplier, shift) in [(i32::MIN, -8), (-(1 << 30), 0), (0, 5), (i32::MAX, -23)] {
        out.push(Requant { multiplier, shift });
    }
    out
}

pub(super) fn gru_units_i8(name: &str, k: &Kernels) {
    let Some(kernel) = k.gru_units_i8 else {
        return;
    };
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let extremes = [
        i32::MIN,
        -65537,
        -65536,
        -32769,
        -32768,
        -32767,
        -1,
        0,
        1,
        32767,
        32768,
        65536,
        65537,
        i32::MAX,
    ];
    let pre = |rng: &mut Rng| match rng.next() % 8 {
        0 => extremes[(rng.next() % extremes.len() as u64) as usize],
        1 => rng.next() as i32,
        2 => rng.range(-32768, 32767),
        _ => rng.range(-9000, 9000),
    };
    let outputs: Vec<super::CodeParams> = lstm_params(&mut rng).iter().map(|p| p.codes).collect();
    let h_params = h_to_q15_params(&mut rng);
    for (case, p) in outputs.iter().enumerate() {
        for (hcase, &to_q15) in h_params.iter().enumerate() {
            // Every length through the vector tails, for some pairs of requantizers.
            if (case + hcase) % 4 == 0 {
                for units in 0..=MAX_COLS {
                    let v: [Vec<i32>; 4] =
                        core::array::from_fn(|_| (0..units).map(|_| pre(&mut rng)).collect());
                    let hh: Vec<i32> = (0..units)
                        .map(|u| {
                            if u % 5 == 4 {
                                pre(&mut rng)
                            } else {
                                rng.range(-32768, 32767)
                            }
                        })
                        .collect();
                    let h: Vec<i32> = (0..units)
                        .map(|u| match (u + units) % 9 {
                            0 => rng.range(-32768, 32767),
                            1 if units % 3 == 0 => extremes[u % extremes.len()],
                            _ => rng.range(-128, 127),
                        })
                        .collect();
                    let g = super::GruGates {
                        z: &v[0],
                        r: &v[1],
                        cand_x: &v[2],
                        cand_h: &hh,
                    };
                    check_gru(name, kernel, &g, &h, to_q15, p);
                }
            }
            // Each input over every i16 value (and past it), the others random.
            let all: Vec<i32> = (-32768..=32767).chain(extremes).collect();
            let input = (case * h_params.len() + hcase) % 5;
            let mut v: [Vec<i32>; 5] =
                core::array::from_fn(|_| all.iter().map(|_| pre(&mut rng)).collect());
            v[input] = all.clone();
            v[3].iter_mut().for_each(|x| *x = (*x).clamp(-65536, 65536));
            if input != 4 {
                v[4].iter_mut().for_each(|x| *x = (*x).clamp(-32768, 32767));
            }
            let g = super::GruGates {
                z: &v[0],
                r: &v[1],
                cand_x: &v[2],
                cand_h: &v[3],
            };
            check_gru(name, kernel, &g, &v[4], to_q15, p);
            // Slices of different lengths: the units all of them hold.
            let v: [Vec<i32>; 4] =
                core::array::from_fn(|i| (0..40 + i).map(|_| pre(&mut rng)).collect());
            let h: Vec<i32> = (0..45).map(|_| rng.range(-128, 127)).collect();
            let g = super::GruGates {
                z: &v[0],
                r: &v[1],
                cand_x: &v[2],
                cand_h: &v[3],
            };
            check_gru(name, kernel, &g, &h, to_q15, p);
        }
    }
}

/// SimpleRNN's output codes: for sigmoid and tanh `codes(activation(sat16(pre)))` bit for bit,
/// values past the units untouched; any other activation declined with nothing written.
pub(super) fn activate_codes_i8(name: &str, k: &Kernels) {
    use crate::format::Activation;
    use crate::quant::lut::{sigmoid_q15, tanh_q15};
    let Some(kernel) = k.activate_codes_i8 else {
        return;
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let extremes = [i32::MIN, -32769, -32768, -1, 0, 1, 32767, 32768, i32::MAX];
    let all: Vec<i32> = (-32768..=32767).chain(extremes).collect();
    let sat = |v: i32| v.clamp(-32768, 32767) as i16;
    for p in lstm_params(&mut rng) {
        let p = p.codes;
        let mut cases: Vec<Vec<i32>> = (0..=MAX_COLS)
            .map(|len| {
                (0..len)
                    .map(|_| rng.next() as i32 >> (rng.next() % 32))
                    .collect()
            })
            .collect();
        cases.push(all.clone());
        for pre in &cases {
            let units = pre.len();
            for a in [
                Activation::Sigmoid,
                Activation::Tanh,
                Activation::HardSigmoid,
                Activation::Relu,
                Activation::Linear,
            ] {
                let mut got: Vec<i32> = std::vec![-0x5A5A; units + 1];
                let mut want = got.clone();
                let done = kernel(a, pre, &mut got[..units], &p);
                let f: fn(i16) -> i16 = match a {
                    Activation::Sigmoid => sigmoid_q15,
                    Activation::Tanh => tanh_q15,
                    _ => {
                        assert!(!done, "{name} activate_codes_i8 took {a:?}");
                        assert_eq!(got, want, "{name} activate_codes_i8 wrote for {a:?}");
                        continue;
                    }
                };
                assert!(done, "{name} activate_codes_i8 declined {a:?}");
                for (w, &v) in want.iter_mut().zip(pre) {
                    *w = oracle_code(i64::from(f(sat(v))), &p);
                }
                for u in 0..=units {
                    assert_eq!(
                        got[u],
                        want[u],
                        "{name} {a:?} codes unit {u} of {units}: pre {:?} {p:?}",
                        pre.get(u)
                    );
                }
            }
        }
    }
}

/// Largest absolute difference of a SIMD sigmoid or tanh from `libm`'s (the generic kernel).
const ACTIVATION_TOL: f32 = 1e-6;

pub(super) fn activate(name: &str, k: &Kernels) {
    use crate::format::Activation;
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    let specials = [
        0.0f32,
        -0.0,
        1e-8,
        -1e-8,
        0.5,
        -3.0,
        8.9,
        9.5,
        -20.0,
        87.0,
        -88.0,
        89.0,
        -104.0,
        1e30,
        -1e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    for len in 0..=MAX_COLS {
        let mut values: Vec<f32> = (0..len).map(|_| rng.f32() * 12.0).collect();
        for (v, &s) in values.iter_mut().zip(specials.iter().cycle().skip(len)) {
            if rng.next().is_multiple_of(3) {
                *v = s;
            }
        }
        for a in [
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::HardSigmoid,
            Activation::Relu,
            Activation::Linear,
        ] {
            let mut got = values.clone();
            (k.activate)(a, &mut got);
            let mut want = values.clone();
            super::generic::activate(a, &mut want);
            for ((&g, &w), &x) in got.iter().zip(&want).zip(&values) {
                let ok = if w.is_nan() {
                    g.is_nan()
                } else if matches!(a, Activation::Sigmoid | Activation::Tanh) {
                    (g - w).abs() <= ACTIVATION_TOL
                } else {
                    g.to_bits() == w.to_bits()
                };
                assert!(ok, "{name} {a:?}({x}) = {g}, generic {w} (length {len})");
            }
        }
    }
}

/// Instantiates the whole suite for one kernel table.
macro_rules! conformance {
    ($module:ident, $name:literal, $table:expr) => {
        mod $module {
            use super::*;

            fn table() -> Option<&'static Kernels> {
                table_or_skip($name, $table)
            }

            #[test]
            fn matvec_f32_matches_oracle() {
                if let Some(k) = table() {
                    assert_eq!(k.name, $name);
                    matvec_f32($name, k);
                }
            }

            #[test]
            fn matvec_f32_propagates_non_finite() {
                if let Some(k) = table() {
                    matvec_f32_specials($name, k);
                }
            }

            #[test]
            fn matvec_i8w_matches_oracle() {
                if let Some(k) = table() {
                    matvec_i8w($name, k);
                }
            }

            #[test]
            fn activations_match_libm() {
                if let Some(k) = table() {
                    activate($name, k);
                }
            }

            #[test]
            fn dot_rows_i8_is_exact() {
                if let Some(k) = table() {
                    dot_rows_i8($name, k);
                }
            }

            #[test]
            fn project_i8_is_exact() {
                if let Some(k) = table() {
                    project_i8($name, k);
                }
            }

            #[test]
            fn project_pair_i8_is_exact() {
                if let Some(k) = table() {
                    project_pair_i8($name, k);
                }
            }

            #[test]
            fn project_split_i8_is_exact() {
                if let Some(k) = table() {
                    project_split_i8($name, k);
                }
            }

            #[test]
            #[cfg(feature = "interleaved4")]
            fn project_i8_interleaved_is_exact() {
                if let Some(k) = table() {
                    project_i8_interleaved($name, k);
                }
            }

            #[test]
            #[cfg(feature = "interleaved4")]
            fn project_split_i8_interleaved_is_exact() {
                if let Some(k) = table() {
                    project_split_i8_interleaved($name, k);
                }
            }

            #[test]
            fn lstm_units_i8_is_exact() {
                if let Some(k) = table() {
                    lstm_units_i8($name, k);
                }
            }

            #[test]
            fn gru_units_i8_is_exact() {
                if let Some(k) = table() {
                    gru_units_i8($name, k);
                }
            }

            #[test]
            fn activate_codes_i8_is_exact() {
                if let Some(k) = table() {
                    activate_codes_i8($name, k);
                }
            }

            #[test]
            fn dot_rows_i8_is_exact_at_the_extremes() {
                if let Some(k) = table() {
                    dot_rows_i8_saturating($name, k);
                }
            }
        }
    };
}

conformance!(generic, "generic", Some(&crate::kernels::GENERIC));
#[cfg(target_arch = "x86_64")]
conformance!(avx2, "avx2", crate::kernels::x86_64::avx2::kernels());
#[cfg(target_arch = "x86_64")]
conformance!(avx512, "avx512", crate::kernels::x86_64::avx512::kernels());
#[cfg(target_arch = "x86_64")]
conformance!(
    avx512vnni,
    "avx512vnni",
    crate::kernels::x86_64::avx512::kernels_vnni()
);
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
conformance!(neon, "neon", Some(&crate::kernels::aarch64::neon::TABLE));

/// The x86_64 tables read packed words as the i16 codes in natural order
/// (`x86_64::packed_as_i16`), so their `pack_i16` must give the generic packing's words:
/// every length through the vector tails, codes past i16, dirty and short buffers.
#[cfg(target_arch = "x86_64")]
#[test]
fn x86_pack_i16_is_the_natural_order() {
    use crate::kernels::x86_64::avx512;
    let mut rng = Rng(0x5851_F42D_4C95_7F2D);
    for (name, table) in [
        ("avx2", crate::kernels::x86_64::avx2::kernels()),
        ("avx512", avx512::kernels()),
        ("avx512vnni", avx512::kernels_vnni()),
    ] {
        let Some(k) = table_or_skip(name, table) else {
            continue;
        };
        for len in 0..=MAX_COLS {
            let codes: Vec<i32> = (0..len)
                .map(|_| match rng.next() % 4 {
                    0 => rng.next() as i32,
                    1 => rng.range(-40_000, 40_000),
                    _ => rng.range(-128, 127),
                })
                .collect();
            let words = super::packed_len(len);
            for short in [0, 1, 2] {
                let words = (words + 1).saturating_sub(short);
                let mut got = std::vec![0x3C3C_3C3Ci32; words];
                let mut want = got.clone();
                (k.pack_i16)(&codes, &mut got);
                super::generic::pack_i16(&codes, &mut want);
                assert_eq!(
                    got, want,
                    "{name} pack_i16 of {len} codes into {words} words"
                );
            }
        }
    }
}

/// Calls the kernels through the entry points the cells use and asserts that table `name` is
/// the one in use and that its call counter moved.
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
))]
/// `own_calls` is how many of the calls below reach kernels the table defines itself (the
/// AVX-512 tables take their float kernels from the AVX2 table, whose counter those move).
fn assert_entry_points_run(name: &str, calls: &core::sync::atomic::AtomicUsize, own_calls: usize) {
    use core::sync::atomic::Ordering;
    assert_eq!(super::kernel_name(), name);
    let before = calls.load(Ordering::Relaxed);
    let w: Vec<u8> = [1.0f32; 16].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut y = [0.0f32; 2];
    super::matvec_acc(&super::Matrix::F32(F32View::new(&w)), &[1.0; 8], &mut y);
    assert_eq!(y, [8.0, 8.0]);
    let mut dots = [0i64; 2];
    super::dot_rows_i8(&[1u8; 16], &[3; 8], &mut dots);
    assert_eq!(dots, [24, 24]);
    let one = crate::quant::Requant::from_f64(1.0)
        .and_then(|r| r.pack())
        .unwrap_or(0);
    let requant: Vec<u8> = [one; 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let rows = super::RowsI8 {
        weights: &[1u8; 16],
        bias: super::I32View::default(),
        requant: super::RequantView::new(super::I32View::new(&requant)),
    };
    let mut packed = [0i32; 4];
    super::pack_i16(&[3; 8], &mut packed);
    let mut projected = [0i32; 2];
    super::project_i8(&rows, &packed, 8, &mut projected, false);
    assert_eq!(projected, [24, 24]);
    let after = calls.load(Ordering::Relaxed);
    assert!(
        after >= before + own_calls,
        "{name} kernels were not called ({before} -> {after})"
    );
}

/// On aarch64 the dispatcher hands out the NEON table, and the model's entry points call it.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
#[test]
fn neon_path_runs_on_aarch64() {
    assert_entry_points_run("neon", &super::aarch64::neon::CALLS, 3);
}

/// The dispatcher must hand out the best x86_64 table the CPU has (`avx512vnni`, `avx512`,
/// `avx2`, else the generic one), and the model's entry points must then actually run it (the
/// SIMD kernels count their calls in test builds).
#[cfg(target_arch = "x86_64")]
#[test]
fn best_x86_path_runs_when_the_cpu_has_it() {
    use std::is_x86_feature_detected as has;
    let avx2 = has!("avx2") && has!("fma");
    let avx512 = avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl");
    let vnni = avx512 && has!("avx512vnni");
    for (name, present) in [("avx2", avx2), ("avx512", avx512), ("avx512vnni", vnni)] {
        if !present {
            assert!(
                !required(name),
                "EDGERNN_REQUIRE_KERNELS names {name} but this CPU lacks its features"
            );
            std::eprintln!("SKIPPED: this CPU lacks the features of `{name}`; it cannot run");
        }
    }
    if vnni {
        assert_entry_points_run("avx512vnni", &super::x86_64::avx512::CALLS, 2);
    } else if avx512 {
        assert_entry_points_run("avx512", &super::x86_64::avx512::CALLS, 2);
    } else if avx2 {
        assert_entry_points_run("avx2", &super::x86_64::avx2::CALLS, 3);
    } else {
        assert_eq!(super::kernel_name(), "generic");
    }
}
