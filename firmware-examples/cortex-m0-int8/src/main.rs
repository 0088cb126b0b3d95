//! Streams the bundled sensor windows through an int8 (integer-only) model one sample at a
//! time on a Cortex-M0 without FPU, prints every output, checks it bit for bit against the
//! host's output for the same blob and input, and exits 0 on a match (1 otherwise). Runs under
//! QEMU (`cargo run --release`) or on a board with probe-rs.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;

#[path = "../../models/lstm_classifier_int8.rs"]
mod model;

/// Integer models must reproduce the host's outputs bit for bit.
const TOLERANCE: f32 = 0.0;

#[entry]
fn main() -> ! {
    firmware_common::paint_stack();
    let ok = firmware_common::run_vectors::<model::Word, { model::LAYERS }>(
        &model::MODEL.0,
        &model::VECTOR_INPUT,
        &model::VECTOR_EXPECTED,
        model::VECTOR_WINDOWS,
        model::VECTOR_STEPS,
        TOLERANCE,
        &mut [model::Word::default(); model::STATE_LEN],
        &mut [model::Word::default(); model::STEP_SCRATCH_LEN],
        &mut [0.0; model::OUTPUT_WIDTH],
    );
    hprintln!(
        "stack high-water: {} bytes",
        firmware_common::stack_high_water()
    );
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}
