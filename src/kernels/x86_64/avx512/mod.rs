//! AVX-512 kernels: table `avx512` (AVX-512 F + BW + VL, with AVX2 + FMA) and `avx512vnni`
//! (the same plus AVX-512 VNNI). They override the integer kernels: `avx512_dot_rows_i8`, the
//! packing and the integer projection (`project.rs`: exact, the generic kernel's bits; that
//! file states the bounds that make its i32 sums exact and the vector requantization), and the
//! integer LSTM gate kernel (`lstm.rs`: 16 units per step, table lookups by gathers, exact),
//! the f32 tile product and the f32 LSTM element-wise step (`batch.rs`: the AVX2 activations'
//! operations on 16 lanes, so the same bits); every other entry is the AVX2 table's.
//!
//! Float kernels stay AVX2's on purpose. A 512-bit f32 matvec that keeps their bits (two rows'
//! 8-lane accumulators side by side in one register, the same reduction tree) measured 2-6%
//! slower than the AVX2 kernel at H = 32..256 on a Zen 4 host, whose 512-bit operations run as
//! two 256-bit halves; and 16-lane sums would change the float bits, which the batched product
//! (`matmul_f32`, promising its table's `matvec_f32` bits) and the golden runs rely on. The
//! f32 paths at H >= 64 are bound by reading the weights from L2 anyway.

mod batch;
mod gru;
mod lstm;
mod project;

use crate::kernels::Kernels;

/// The AVX-512 F/BW/VL table; entries it does not override are the AVX2 table's (this CPU
/// has AVX2 and FMA too: [`kernels`] checks).
static TABLE: Kernels = Kernels {
    name: "avx512",
    dot_rows_i8: project::avx512_dot_rows_i8,
    pack_i16: project::avx512_pack_i16,
    project_i8: project::avx512_project_i8,
    matmul_f32: batch::avx512_matmul_f32,
    lstm_units_i8: lstm::avx512_lstm_units_i8,
    gru_units_i8: Some(gru::avx512_gru_units_i8),
    activate_codes_i8: Some(gru::avx512_activate_codes_i8),
    lstm_gates_f32: Some(batch::avx512_lstm_gates_f32),
    matmul_bias_f32: Some(batch::avx512_matmul_bias_f32),
    ..super::avx2::TABLE
};

/// [`TABLE`] with the VNNI projection.
static TABLE_VNNI: Kernels = Kernels {
    name: "avx512vnni",
    project_i8: project::avx512vnni_project_i8,
    ..TABLE
};

/// Whether the build itself enables everything [`TABLE`] uses.
const COMPILED: bool = cfg!(all(
    target_feature = "avx512f",
    target_feature = "avx512bw",
    target_feature = "avx512vl",
    target_feature = "avx2",
    target_feature = "fma"
));

/// The AVX-512 table, only when this CPU can run it: decided at compile time when the build
/// enables its features, else at run time (with `std`, cached), else never.
#[inline]
pub fn kernels() -> Option<&'static Kernels> {
    if COMPILED {
        return Some(&TABLE);
    }
    #[cfg(any(test, feature = "std"))]
    if super::detect::avx512() {
        return Some(&TABLE);
    }
    None
}

/// The AVX-512 VNNI table, only when this CPU can run it (as for [`kernels`]).
#[inline]
pub fn kernels_vnni() -> Option<&'static Kernels> {
    if COMPILED && cfg!(target_feature = "avx512vnni") {
        return Some(&TABLE_VNNI);
    }
    #[cfg(any(test, feature = "std"))]
    if super::detect::avx512_vnni() {
        return Some(&TABLE_VNNI);
    }
    None
}

/// Calls of the AVX-512 kernels, so tests can prove this path ran.
#[cfg(test)]
pub(crate) static CALLS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

#[inline(always)]
fn count() {
    #[cfg(test)]
    CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
}
