//! 32-bit Arm kernels. `dsp`: the Cortex-M4/M7/M33 DSP extension (SMLAD, SXTB16), selected at
//! compile time by the build script's `edgernn_arm_dsp` cfg for ARMv7E-M and ARMv8-M Mainline
//! targets. Other Arm cores (Cortex-M0/M0+/M3) run the generic table; this module then only
//! reports [`reference_rows`] (always 0), so firmware can ask on every core.

#[cfg(edgernn_arm_dsp)]
pub mod dsp;

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
#[cfg(edgernn_arm_dsp)]
fn count_reference_rows(rows: usize) {
    let before = REFERENCE_ROWS.load(Ordering::Relaxed);
    REFERENCE_ROWS.store(before.wrapping_add(rows), Ordering::Relaxed);
}
