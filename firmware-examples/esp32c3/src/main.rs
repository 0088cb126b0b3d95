//! Streams the bundled sensor windows through an int8 (integer-only) model one sample at a
//! time on a RISC-V core without FPU (the ESP32-C3's ISA), checks every output bit for bit
//! against the host's, and exits 0 on a match (1 otherwise). Prints the peak stack (painted at
//! boot) and marks each step of the first window for the QEMU instruction counter.

#![no_std]
#![no_main]

use edgernn::Model;
use riscv_rt::entry;
use riscv_semihosting::{debug, hprintln};

#[path = "../../models/lstm_classifier_int8.rs"]
mod model;

#[path = "../../common/src/stack.rs"]
mod stack;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    park()
}

#[entry]
fn main() -> ! {
    stack::paint_stack();
    let ok = run();
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    park()
}

/// Waits for ever when the semihosting host did not end the run (no debugger attached).
fn park() -> ! {
    loop {
        riscv::asm::wfi();
    }
}

fn run() -> bool {
    let model = match Model::<'_, { model::LAYERS }>::from_bytes_with_capacity(&model::MODEL.0) {
        Ok(m) => m,
        Err(e) => {
            hprintln!("load failed: {}", e);
            return false;
        }
    };
    let mut state = [model::Word::default(); model::STATE_LEN];
    let mut scratch = [model::Word::default(); model::STEP_SCRATCH_LEN];
    let mut out = [0.0f32; model::OUTPUT_WIDTH];
    let (features, width) = (model::INPUT_FEATURES, model::OUTPUT_WIDTH);
    let mut mismatches = 0usize;
    for w in 0..model::VECTOR_WINDOWS {
        model.reset_state(&mut state);
        for t in 0..model::VECTOR_STEPS {
            let at = (w * model::VECTOR_STEPS + t) * features;
            if w == 0 {
                stack::bench_start();
            }
            let result = model.step(
                &model::VECTOR_INPUT[at..at + features],
                &mut state,
                &mut scratch,
                &mut out,
            );
            if w == 0 {
                stack::bench_stop();
            }
            if let Err(e) = result {
                hprintln!("step failed: {}", e);
                return false;
            }
            let want = &model::VECTOR_EXPECTED[(w * model::VECTOR_STEPS + t) * width..][..width];
            mismatches += out
                .iter()
                .zip(want)
                .filter(|(g, e)| g.to_bits() != e.to_bits())
                .count();
        }
    }
    // Read before the summary, so a run still ends with its MATCH line.
    hprintln!("stack high-water: {} bytes", stack::stack_high_water());
    hprintln!(
        "{} outputs checked against the host bit for bit: {} mismatches, {}",
        model::VECTOR_WINDOWS * model::VECTOR_STEPS * width,
        mismatches,
        if mismatches == 0 { "MATCH" } else { "MISMATCH" }
    );
    mismatches == 0
}
