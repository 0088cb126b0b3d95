//! The smallest useful edgernn firmware: an int8 LSTM(32) + Dense forecaster of a machine's
//! temperature (trained by `edgernn train`, quantized to int8), built with only the integer
//! and LSTM parts of the runtime, size first (`small`). Runs the model loaded at build time
//! (`edgernn export --plan`: no loader in flash, no `Model` value in RAM), streams the bundled
//! window one reading at a time, checks every output bit for bit against the host's, and
//! reports the RAM it used. Exits 0 when everything matched (1 otherwise).
//!
//! Its own reporting avoids `core::fmt` (no `hprintln!`, no panic message) so that the flash
//! it takes is edgernn's, the model's and the vectors', plus about 3 KB of vector table,
//! start-up, semihosting and the checks.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};

#[path = "../../common/src/stack.rs"]
mod stack;

#[path = "../../models/machine_temperature_lstm32_int8.rs"]
mod model;

/// Writes `text` to the host's stdout (semihosting); output is best effort.
fn say(text: &str) {
    say_bytes(text.as_bytes());
}

fn say_bytes(bytes: &[u8]) {
    if let Ok(mut out) = hio::hstdout() {
        let _ = out.write_all(bytes);
    }
}

/// `n` in decimal, without `core::fmt`.
fn say_number(n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    say_bytes(digits.get(at..).unwrap_or(&[]));
}

/// One report line: `label`, `n`, `unit`.
fn report(label: &str, n: usize, unit: &str) {
    say(label);
    say_number(n);
    say(unit);
}

/// Streams the test window through the model and counts outputs that differ from the host's
/// bit for bit (`None` if a step failed).
///
/// The model is `model::PLAN`, loaded when `edgernn export --plan` wrote the file: a `static`
/// in flash, so the firmware links no loader and keeps no `Model` value in RAM.
fn run(state: &mut [model::Word], scratch: &mut [model::Word]) -> Option<usize> {
    let model = &model::PLAN;
    let mut out = [0.0f32; model::OUTPUT_WIDTH];
    let mut differ = 0;
    let windows = model::VECTOR_INPUT.chunks_exact(model::VECTOR_STEPS * model::INPUT_FEATURES);
    let expected = model::VECTOR_EXPECTED.chunks_exact(model::VECTOR_STEPS * model::OUTPUT_WIDTH);
    for (w, (window, expected)) in windows.zip(expected).enumerate() {
        model.reset_state(state);
        let steps = window.chunks_exact(model::INPUT_FEATURES);
        for (x, want) in steps.zip(expected.chunks_exact(model::OUTPUT_WIDTH)) {
            if w == 0 {
                stack::bench_start();
            }
            let stepped = model.step(x, state, scratch, &mut out);
            if w == 0 {
                stack::bench_stop();
            }
            stepped.ok()?;
            differ += out
                .iter()
                .zip(want)
                .filter(|(got, want)| got.to_bits() != want.to_bits())
                .count();
        }
    }
    Some(differ)
}

#[entry]
fn main() -> ! {
    // `static mut` in an `#[entry]` function becomes a safe `&'static mut` (cortex-m-rt): the
    // buffers live in .bss, sized by the exported constants, so the stack holds only the
    // calls.
    static mut STATE: [model::Word; model::STATE_LEN] = [0; model::STATE_LEN];
    static mut SCRATCH: [model::Word; model::STEP_SCRATCH_LEN] = [0; model::STEP_SCRATCH_LEN];
    stack::paint_stack();
    let result = run(STATE, SCRATCH);
    let stack = stack::stack_high_water();
    report("model value: ", 0, " bytes of RAM (");
    report(
        "",
        core::mem::size_of_val(&model::PLAN),
        " bytes in flash)\n",
    );
    report("state: ", core::mem::size_of_val(STATE), " bytes; ");
    report(
        "step scratch: ",
        core::mem::size_of_val(SCRATCH),
        " bytes\n",
    );
    report("stack high-water: ", stack, " bytes\n");
    let ok = match result {
        Some(differ) => {
            let checked = model::VECTOR_WINDOWS * model::VECTOR_STEPS * model::OUTPUT_WIDTH;
            report("", checked, " outputs checked against the host: ");
            report("", differ, " differ, ");
            say(if differ == 0 { "MATCH\n" } else { "MISMATCH\n" });
            differ == 0
        }
        None => {
            say("a step failed\n");
            false
        }
    };
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

/// Exits with failure, without formatting the message (no `core::fmt`). edgernn itself has no
/// reachable panic (`tests/no-std-check`); this only catches the example's own mistakes.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
