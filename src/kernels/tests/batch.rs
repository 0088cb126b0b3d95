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
