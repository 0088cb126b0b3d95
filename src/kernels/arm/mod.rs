//! 32-bit Arm kernels, chosen at compile time:
//!
//! * `dsp`: the Cortex-M4/M7/M33 DSP extension (SMLAD, SXTB16), selected by the build script's
//!   `edgernn_arm_dsp` cfg for ARMv7E-M and ARMv8-M Mainline targets;
//! * `v6m`: every other Thumb target (Cortex-M0/M0+ first, also M3 and ARMv8-M Baseline),
//!   selected by the build script's `edgernn_arm_v6m` cfg: only ARMv6-M instructions
//!   (`ldrsb`, `muls`, `sxtb`/`uxth`), no 64-bit multiply. Other Arm targets (A32 code,
//!   pre-v6 cores) run the generic kernels.
//!
//! [`reference_rows`] counts the rows either took by its scalar reference path, so firmware
//! can check on every core that the fast path ran.

#[cfg(edgernn_arm_dsp)]
pub mod dsp;

#[cfg(edgernn_arm_v6m)]
pub mod v6m;

use core::sync::atomic::{AtomicUsize, Ordering};

/// Rows the Arm projection kernels computed by their scalar reference path instead of the
/// fast one (ragged widths, unaligned views, blocks whose fast path would saturate), for the
/// conformance firmware, which checks that the fast path ran. Counted only on that rare path.
static REFERENCE_ROWS: AtomicUsize = AtomicUsize::new(0);

/// Rows computed by the reference path since boot (see [`REFERENCE_ROWS`]).
pub fn reference_rows() -> usize {
    REFERENCE_ROWS.load(Ordering::Relaxed)
}

/// Adds `rows` to [`REFERENCE_ROWS`] (a load and a store: Cortex-M0 has no atomic add, and
/// the kernels run on one core).
#[cfg(any(edgernn_arm_dsp, edgernn_arm_v6m))]
fn count_reference_rows(rows: usize) {
    let before = REFERENCE_ROWS.load(Ordering::Relaxed);
    REFERENCE_ROWS.store(before.wrapping_add(rows), Ordering::Relaxed);
}

/// Rows of split projections (the GRU candidate's two sides) the DSP kernel left to two
/// separate projections (a saturation, rows past the last whole block, views it cannot take),
/// for the conformance firmware, which checks that the one-pass path ran.
static SPLIT_ROWS: AtomicUsize = AtomicUsize::new(0);

/// Rows of split projections computed by two separate projections since boot (see
/// [`SPLIT_ROWS`]).
pub fn split_rows() -> usize {
    SPLIT_ROWS.load(Ordering::Relaxed)
}

/// Adds `rows` to [`SPLIT_ROWS`].
#[cfg(edgernn_arm_dsp)]
fn count_split_rows(rows: usize) {
    let before = SPLIT_ROWS.load(Ordering::Relaxed);
    SPLIT_ROWS.store(before.wrapping_add(rows), Ordering::Relaxed);
}

/// Calls of the DSP GRU kernel whose `h` codes are not all on the int8 blend loop's fast path
/// (so the general loop ran): the rare path, counted for the conformance firmware, which
/// checks that both loops ran.
static GRU_GENERAL_BLENDS: AtomicUsize = AtomicUsize::new(0);

/// Calls of the DSP GRU kernel by its general blend loop since boot (see
/// [`GRU_GENERAL_BLENDS`]).
pub fn gru_general_blends() -> usize {
    GRU_GENERAL_BLENDS.load(Ordering::Relaxed)
}

/// Adds one to [`GRU_GENERAL_BLENDS`].
#[cfg(edgernn_arm_dsp)]
fn count_gru_general_blend() {
    let before = GRU_GENERAL_BLENDS.load(Ordering::Relaxed);
    GRU_GENERAL_BLENDS.store(before.wrapping_add(1), Ordering::Relaxed);
}

/// LSTM units the ARMv6-M gate kernel left to the generic loop (output codes that are not
/// int8 or not on the 32-bit fast rule, cell values outside i16), for the conformance
/// firmware (0 on other cores). Counted only on that path.
static REFERENCE_UNITS: AtomicUsize = AtomicUsize::new(0);

/// LSTM units computed by the generic loop instead of the ARMv6-M gate kernel since boot (see
/// [`REFERENCE_UNITS`]).
pub fn reference_units() -> usize {
    REFERENCE_UNITS.load(Ordering::Relaxed)
}

/// Adds `units` to [`REFERENCE_UNITS`].
#[cfg(edgernn_arm_v6m)]
fn count_reference_units(units: usize) {
    let before = REFERENCE_UNITS.load(Ordering::Relaxed);
    REFERENCE_UNITS.store(before.wrapping_add(units), Ordering::Relaxed);
}
