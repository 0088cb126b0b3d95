//! Streams the bundled sensor windows through the model one sample at a time (f32, then the
//! same model quantized to int8), prints every output, checks it against the host's output for
//! the same blob and input; then runs the anomaly detector with an int8 LSTM forecaster over
//! 4,500 readings of a real machine-temperature sensor (NAB), prints its alarms and checks every
//! score against the host's bit for bit. Exits 0 when everything matched (1 otherwise). Runs
//! under QEMU (`cargo run --release`) or on a board with probe-rs.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use panic_semihosting as _;

#[path = "../../models/lstm_classifier_f32.rs"]
mod model;
#[path = "../../models/lstm_classifier_int8.rs"]
mod model_int8;

/// f32 results must match the host within `|d| / max(1, |expected|)`; they are usually
/// bit-identical (same code, no fused multiply-add).
const TOLERANCE: f32 = 1e-5;

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
    // The same model quantized to int8 must match the host bit for bit on this core too.
    let ok = ok
        && firmware_common::run_vectors::<model_int8::Word, { model_int8::LAYERS }>(
            &model_int8::MODEL.0,
            &model_int8::VECTOR_INPUT,
            &model_int8::VECTOR_EXPECTED,
            model_int8::VECTOR_WINDOWS,
            model_int8::VECTOR_STEPS,
            0.0,
            &mut [model_int8::Word::default(); model_int8::STATE_LEN],
            &mut [model_int8::Word::default(); model_int8::STEP_SCRATCH_LEN],
            &mut [0.0; model_int8::OUTPUT_WIDTH],
        );
    // The anomaly detector on the device: int8 model, f32 statistics, bit-exact with the host.
    let ok = ok && firmware_common::run_machine_temperature_detector();
    firmware_common::finish(ok)
}
