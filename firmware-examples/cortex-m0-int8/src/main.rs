//! Streams the bundled sensor windows through an int8 (integer-only) model one sample at a
//! time on a Cortex-M0 without FPU, prints every output, checks it bit for bit against the
//! host's output for the same blob and input; then runs the anomaly detector (int8 LSTM
//! forecaster, soft-float statistics) over 4,500 readings of a real machine-temperature sensor
//! and checks every score against the host's bit for bit. Exits 0 when everything matched (1
//! otherwise). Runs under QEMU (`cargo run --release`) or on a board with probe-rs.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
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
    let ok = ok && firmware_common::run_machine_temperature_detector();
    firmware_common::finish(ok)
}
