//! Conformance of the batched product `matmul_f32`, run against every kernel table.
//!
//! * Bit for bit: each stream's column of the tile equals the same table's `matvec_f32` on that
//!   stream alone (the contract that makes `Model::step_batch` give exactly what `Model::step`
//!   gives). NaN compares as NaN.
//! * Against the exact (f64) sum, within the suite's float bound `F32_TOL` (see the parent
//!   module): generic and SIMD tables agree with each other to that tolerance.
//!
//! Sweeps: columns 0..=MAX_COLS (every 8-lane tail), streams 0..=64 (AVX2: blocks of 16, of 8,
//! a masked tail of 1..7; AVX-512: blocks of 32, a masked tail of 1..31), rows around the row
//! blocks (pairs and a single row), weights 0..3 bytes past an aligned address,
//! outputs starting with garbage, zeros of both signs and non-finite values.

use std::vec::Vec;

use super::{check_f32, misaligned, table_or_skip, Rng, MAX_COLS};
use crate::kernels::{F32View, Kernels};

const STREAMS: [usize; 16] = [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 41, 48, 63, 64];
const ROWS: [usize; 5] = [0, 1, 2, 5, 9];

fn same_bits(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// One case: the tile product against the per-stream matrix-vector product and the oracle.
fn check_case(name: &str, k: &Kernels, rows: usize, cols: usize, streams: usize, rng: &mut Rng) {
    let offset = (rows + cols + streams) % 4;
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.f32()).collect();
    let mut x: Vec<f32> = (0..cols * streams).map(|_| rng.f32()).collect();
    // Zeros of both signs: the sign of a zero sum depends on the exact operation order.
    for (i, v) in x.iter_mut().enumerate() {
        if i % 11 == 3 {
            *v = -0.0;
        } else if i % 13 == 5 {
            *v = 0.0;
        }
    }
    let y0: Vec<f32> = (0..rows * streams + 5)
        .map(|i| if i % 7 == 2 { -0.0 } else { rng.f32() * 50.0 })
        .collect();
    let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    let (buf, start) = misaligned(&bytes, offset);
    let view = F32View::new(&buf[start..start + bytes.len()]);
    let mut y = y0.clone();
    (k.matmul_f32)(view, &x, &mut y[..rows * streams], streams);
    assert_eq!(
        y[rows * streams..],
        y0[rows * streams..],
        "{name}: wrote past the tile"
    );
    for j in 0..streams {
        let xj: Vec<f32> = (0..cols).map(|c| x[c * streams + j]).collect();
        let mut yj: Vec<f32> = (0..rows).map(|r| y0[r * streams + j]).collect();
        (k.matvec_f32)(view, &xj, &mut yj);
        for r in 0..rows {
            let got = y[r * streams + j];
            let what = std::format!("{rows}x{cols}, {streams} streams, row {r} stream {j}");
            assert!(
                same_bits(got, yj[r]),
                "{name} {what}: tile {got:e}, matvec {:e}",
                yj[r]
            );
            let products = w[r * cols..(r + 1) * cols]
                .iter()
                .zip(&xj)
                .map(|(&a, &b)| f64::from(a) * f64::from(b));
            let exact = f64::from(y0[r * streams + j]) + products.clone().sum::<f64>();
            let magnitude =
                f64::from(y0[r * streams + j].abs()) + products.map(f64::abs).sum::<f64>();
            check_f32(name, &what, got, exact, magnitude);
        }
    }
}

pub(super) fn matmul_f32(name: &str, k: &Kernels) {
    let mut rng = Rng(0x5851_F42D_4C95_7F2D);
    for cols in 0..=MAX_COLS {
        for streams in STREAMS {
            for rows in ROWS {
                check_case(name, k, rows, cols, streams, &mut rng);
            }
        }
    }
}

pub(super) fn matmul_f32_specials(name: &str, k: &Kernels) {
    for cols in [1usize, 7, 8, 9, 17, 33] {
        for streams in [1usize, 8, 13, 40] {
            let w = std::vec![1.0f32; 3 * cols];
            let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let mut x = std::vec![0.5f32; cols * streams];
            // Stream 0 sees NaN, the last stream infinity, in the last column.
            x[cols * streams - 1] = f32::INFINITY;
            x[(cols - 1) * streams] = f32::NAN;
            let mut y = std::vec![0.0f32; 3 * streams];
            (k.matmul_f32)(F32View::new(&bytes), &x, &mut y, streams);
            for r in 0..3 {
                assert!(y[r * streams].is_nan(), "{name} {cols}x{streams}: NaN lost");
                if streams > 1 {
                    assert_eq!(y[r * streams + streams - 1], f32::INFINITY, "{name}");
                }
            }
        }
    }
}

/// `transpose_f32` against the naive copy: shapes around the 8 x 8 blocks, strides wider
/// than the rows, destinations holding garbage that must stay where nothing is written, and
/// slices too short for the shape (the values past them skipped, nothing else).
pub(super) fn transpose_f32(name: &str, k: &Kernels) {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for rows in 0..=19usize {
        for cols in 0..=19usize {
            for (src_pad, dst_pad) in [(0usize, 0usize), (3, 5)] {
                let (ss, ds) = (cols + src_pad, rows + dst_pad);
                let src: Vec<f32> = (0..rows * ss).map(|_| rng.f32()).collect();
                let garbage: Vec<f32> = (0..cols * ds + 3).map(|i| i as f32 + 0.5).collect();
                let mut want = garbage.clone();
                for r in 0..rows {
                    for c in 0..cols {
                        want[c * ds + r] = src[r * ss + c];
                    }
                }
                let mut got = garbage.clone();
                (k.transpose_f32)(&src, ss, &mut got, ds, rows, cols);
                assert_eq!(got, want, "{name}: {rows}x{cols}, strides {ss}, {ds}");
                // One value short on each side: everything else still moves.
                if rows * cols > 0 {
                    let short_src = &src[..(rows - 1) * ss + cols - 1];
                    let mut got = garbage.clone();
                    let dst_len = (cols - 1) * ds + rows - 1;
                    (k.transpose_f32)(short_src, ss, &mut got[..dst_len], ds, rows, cols);
                    let mut want = garbage.clone();
                    for r in 0..rows {
                        for c in 0..cols {
                            let (from, to) = (r * ss + c, c * ds + r);
                            if from < short_src.len() && to < dst_len {
                                want[to] = src[from];
                            }
                        }
                    }
                    assert_eq!(got, want, "{name}: {rows}x{cols} short");
                }
            }
        }
    }
}

/// `lstm_gates_f32` of the table against the definition with the table's own `activate`, bit
/// for bit (NaN as NaN): lengths 0..=70 and a whole tile, every pairing of activations
/// (the SIMD paths take sigmoid and tanh, the rest fall back), pre-activations spanning the
/// clamps of `exp` and the tanh, infinities, NaN and zeros of both signs.
pub(super) fn lstm_gates_f32(name: &str, k: &Kernels) {
    use crate::format::Activation::{HardSigmoid, Linear, Relu, Sigmoid, Tanh};
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let specials = [
        0.0,
        -0.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        88.0,
        -88.0,
        9.5,
        -9.5,
        1e-30,
        -1e-30,
    ];
    let pairs = [
        (Tanh, Sigmoid),
        (Sigmoid, Sigmoid),
        (Tanh, Tanh),
        (Sigmoid, Tanh),
        (Tanh, HardSigmoid),
        (Relu, Sigmoid),
        (Linear, Linear),
    ];
    let lengths = (0..=70usize).chain([2048 + 7, 64 * 32]);
    for n in lengths {
        for (a, ra) in pairs {
            let value = |i: usize, rng: &mut Rng| {
                if i % 17 == 3 {
                    specials[i / 17 % specials.len()]
                } else {
                    rng.f32() * [1.0, 6.0, 40.0][i % 3]
                }
            };
            let z: Vec<f32> = (0..4 * n).map(|i| value(i, &mut rng)).collect();
            let c: Vec<f32> = (0..n).map(|i| value(i + 5, &mut rng)).collect();
            let h0: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let (mut zw, mut cw, mut hw) = (z.clone(), c.clone(), h0.clone());
            crate::kernels::generic::batch::lstm_gates_f32_with(
                k.activate, a, ra, &mut zw, &mut cw, &mut hw,
            );
            let (mut zg, mut cg, mut hg) = (z.clone(), c.clone(), h0.clone());
            crate::kernels::lstm_gates_f32(k, a, ra, &mut zg, &mut cg, &mut hg);
            for j in 0..n {
                let what = std::format!("{a:?}/{ra:?}, n {n}, unit {j}");
                assert!(
                    same_bits(cg[j], cw[j]),
                    "{name} {what}: c {:e} != {:e}",
                    cg[j],
                    cw[j]
                );
                assert!(
                    same_bits(hg[j], hw[j]),
                    "{name} {what}: h {:e} != {:e}",
                    hg[j],
                    hw[j]
                );
            }
        }
    }
}

/// `matmul_bias_f32` of the table against its definition (the bias fill, then the table's
/// `matmul_f32`), bit for bit: with and without a bias (zeros of both signs in it), over the
/// shapes of the product sweep, outputs starting with garbage, and a bias or weights shorter
/// than the tile (the kernels' fallback).
pub(super) fn matmul_bias_f32(name: &str, k: &Kernels) {
    use crate::kernels::generic::batch::init_bias_tile;
    let mut rng = Rng(0x1405_7B7E_F767_814F);
    for cols in (0..=MAX_COLS).step_by(3).chain([8, 32, 40]) {
        for streams in STREAMS {
            for rows in ROWS {
                for (with_bias, short) in [(true, false), (false, false), (true, true)] {
                    let w: Vec<f32> = (0..rows * cols).map(|_| rng.f32()).collect();
                    let x: Vec<f32> = (0..cols * streams).map(|_| rng.f32()).collect();
                    let b: Vec<f32> = (0..rows)
                        .map(|r| match r % 5 {
                            1 => -0.0,
                            2 => 0.0,
                            _ => rng.f32() * 3.0,
                        })
                        .take(if short { rows.saturating_sub(1) } else { rows })
                        .collect();
                    let wb: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
                    let bb: Vec<u8> = b.iter().flat_map(|v| v.to_le_bytes()).collect();
                    let (wbuf, ws) = misaligned(&wb, (rows + cols) % 4);
                    let (bbuf, bs) = misaligned(&bb, 1 + streams % 3);
                    let wv = F32View::new(&wbuf[ws..ws + wb.len()]);
                    let bias = with_bias.then(|| F32View::new(&bbuf[bs..bs + bb.len()]));
                    let y0: Vec<f32> = (0..rows * streams + 3).map(|_| rng.f32() * 9.0).collect();
                    let n = rows * streams;
                    let mut want = y0.clone();
                    init_bias_tile(bias, &mut want[..n], streams);
                    (k.matmul_f32)(wv, &x, &mut want[..n], streams);
                    let mut got = y0.clone();
                    crate::kernels::matmul_bias_f32(k, bias, wv, &x, &mut got[..n], streams);
                    for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            same_bits(*g, *e),
                            "{name} {rows}x{cols}, {streams} streams, bias {with_bias} short \
                             {short}, value {i}: {g:e} != {e:e}"
                        );
                    }
                }
            }
        }
    }
}

macro_rules! batch_conformance {
    ($module:ident, $name:literal, $table:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn matmul_f32_matches_matvec_bit_for_bit() {
                if let Some(k) = table_or_skip($name, $table) {
                    matmul_f32($name, k);
                }
            }

            #[test]
            fn matmul_bias_f32_matches_fill_then_product_bit_for_bit() {
                if let Some(k) = table_or_skip($name, $table) {
                    matmul_bias_f32($name, k);
                }
            }

            #[test]
            fn transpose_f32_matches_the_copy() {
                if let Some(k) = table_or_skip($name, $table) {
                    transpose_f32($name, k);
                }
            }

            #[test]
            fn lstm_gates_f32_matches_the_definition_bit_for_bit() {
                if let Some(k) = table_or_skip($name, $table) {
                    lstm_gates_f32($name, k);
                }
            }

            #[test]
            fn matmul_f32_propagates_non_finite() {
                if let Some(k) = table_or_skip($name, $table) {
                    matmul_f32_specials($name, k);
                }
            }
        }
    };
}

batch_conformance!(generic, "generic", Some(&crate::kernels::GENERIC));
#[cfg(target_arch = "x86_64")]
batch_conformance!(avx2, "avx2", crate::kernels::x86_64::avx2::kernels());
#[cfg(target_arch = "x86_64")]
batch_conformance!(avx512, "avx512", crate::kernels::x86_64::avx512::kernels());
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
batch_conformance!(neon, "neon", Some(&crate::kernels::aarch64::neon::TABLE));

/// The AVX2 tile kernel must actually run where the CPU has it (its calls are counted).
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_matmul_runs_when_the_cpu_has_it() {
    use core::sync::atomic::Ordering;
    let Some(k) = table_or_skip("avx2", crate::kernels::x86_64::avx2::kernels()) else {
        return;
    };
    let calls = &crate::kernels::x86_64::avx2::CALLS;
    let before = calls.load(Ordering::Relaxed);
    let w: Vec<u8> = [1.0f32; 8].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut y = [0.0f32; 2];
    (k.matmul_f32)(F32View::new(&w), &[1.0; 16], &mut y, 2);
    assert_eq!(y, [8.0, 8.0]);
    assert!(calls.load(Ordering::Relaxed) > before);
}

/// The AVX-512 tile kernel must actually run where the CPU has it (its calls are counted).
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_matmul_runs_when_the_cpu_has_it() {
    use core::sync::atomic::Ordering;
    let Some(k) = table_or_skip("avx512", crate::kernels::x86_64::avx512::kernels()) else {
        return;
    };
    let calls = &crate::kernels::x86_64::avx512::CALLS;
    let before = calls.load(Ordering::Relaxed);
    let w: Vec<u8> = [1.0f32; 8].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut y = [0.0f32; 2];
    (k.matmul_f32)(F32View::new(&w), &[1.0; 16], &mut y, 2);
    assert_eq!(y, [8.0, 8.0]);
    assert!(calls.load(Ordering::Relaxed) > before);
}

/// The x86 gate, transpose and biased product kernels must actually run where the CPU has
/// them.
#[cfg(target_arch = "x86_64")]
#[test]
fn x86_gate_and_transpose_kernels_run_when_the_cpu_has_them() {
    use crate::format::Activation::{Sigmoid, Tanh};
    use crate::kernels::x86_64::{avx2, avx512};
    use core::sync::atomic::Ordering;
    let cases = [
        ("avx2", avx2::kernels(), &avx2::CALLS),
        ("avx512", avx512::kernels(), &avx512::CALLS),
    ];
    for (name, table, calls) in cases {
        let Some(k) = table_or_skip(name, table) else {
            continue;
        };
        let before = calls.load(Ordering::Relaxed);
        let (mut z, mut c, mut h) = ([0.0f32; 8], [0.0f32; 2], [0.0f32; 2]);
        crate::kernels::lstm_gates_f32(k, Tanh, Sigmoid, &mut z, &mut c, &mut h);
        assert_eq!(h, [0.0; 2], "{name}");
        assert!(
            calls.load(Ordering::Relaxed) > before,
            "{name}: gate kernel did not run"
        );
    }
    if let Some(k) = table_or_skip("avx512", avx512::kernels()) {
        assert!(
            k.matmul_bias_f32.is_some(),
            "avx512: no biased tile product"
        );
        let before = avx512::CALLS.load(Ordering::Relaxed);
        let w: Vec<u8> = [1.0f32; 8].iter().flat_map(|v| v.to_le_bytes()).collect();
        let b = 0.5f32.to_le_bytes();
        let mut y = [7.0f32; 2];
        let bias = Some(F32View::new(&b));
        crate::kernels::matmul_bias_f32(k, bias, F32View::new(&w), &[1.0; 16], &mut y, 2);
        assert_eq!(y, [8.5, 8.5]);
        assert!(avx512::CALLS.load(Ordering::Relaxed) > before);
    }
    if let Some(k) = table_or_skip("avx2", avx2::kernels()) {
        let before = avx2::CALLS.load(Ordering::Relaxed);
        let mut dst = [0.0f32; 64];
        (k.transpose_f32)(&[1.0; 64], 8, &mut dst, 8, 8, 8);
        assert_eq!(dst, [1.0; 64]);
        assert!(avx2::CALLS.load(Ordering::Relaxed) > before);
    }
}
