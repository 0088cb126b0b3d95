//! The smallest useful edgernn firmware: an int8 LSTM(32) + Dense forecaster of a machine's
//! temperature (trained by `edgernn train`, quantized to int8), built with only the integer
//! and LSTM parts of the runtime, size first (`small`). Loads the blob in place from flash,
//! streams the bundled window one reading at a time, checks every output bit for bit against
//! the host's, and reports the RAM it used. Exits 0 when everything matched (1 otherwise).
//!
//! Its own reporting avoids `core::fmt` (no `hprintln!`, no panic message) so that the flash
//! it takes is edgernn's, the model's and the vectors', plus about 3 KB of vector table,
//! start-up, semihosting and the checks.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use edgernn::Model;

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

/// Loads the model from the blob in flash into `slot`; whether it was accepted (this example
/// does not report why not, so the errors' details compile away). Never inlined, so the
/// loader's temporaries live in this call's frame, gone when it returns, not in `run`'s frame
/// while the model runs; the model itself is built in place, in `run`'s frame (not copied).
#[inline(never)]
fn load(slot: &mut Option<Model<'static, { model::LAYERS }>>) -> bool {
    Model::load_into(slot, &model::MODEL.0).is_ok()
}

/// Loads the model, streams the test window through it and counts outputs that differ from
/// the host's bit for bit (`None` if the model did not load or a step failed). Writes the stack
/// high-water marks of loading and of stepping to `marks`.
fn run(
    state: &mut [model::Word],
    scratch: &mut [model::Word],
    marks: &mut [usize; 2],
) -> Option<usize> {
    // One `Model` value on the stack, built in place.
    let mut slot = None;
    if !load(&mut slot) {
        return None;
    }
    let model = slot.as_ref()?;
    // The deepest the stack went while loading; then paint again (below this frame, which
    // holds the `Model` value and so still counts) for the steps' own mark.
    marks[0] = stack::stack_high_water();
    stack::paint_stack();
    report(
        "model value: ",
        core::mem::size_of::<Model<'_, { model::LAYERS }>>(),
        " bytes\n",
    );
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
    marks[1] = stack::stack_high_water();
    Some(differ)
}

#[entry]
fn main() -> ! {
    // `static mut` in an `#[entry]` function becomes a safe `&'static mut` (cortex-m-rt): the
    // buffers live in .bss, sized by the exported constants, so the stack holds only the
    // `Model` value and the calls.
    static mut STATE: [model::Word; model::STATE_LEN] = [0; model::STATE_LEN];
    static mut SCRATCH: [model::Word; model::STEP_SCRATCH_LEN] = [0; model::STEP_SCRATCH_LEN];
    stack::paint_stack();
    let mut marks = [0; 2];
    let result = run(STATE, SCRATCH, &mut marks);
    report("state: ", core::mem::size_of_val(STATE), " bytes; ");
    report("step scratch: ", core::mem::size_of_val(SCRATCH), " bytes\n");
    report("stack: loading ", marks[0], " bytes, ");
    report("stepping ", marks[1], " bytes (the Model value included)\n");
    report("stack high-water: ", marks[0].max(marks[1]), " bytes\n");
    let ok = match result {
        Some(differ) => {
            let checked = model::VECTOR_WINDOWS * model::VECTOR_STEPS * model::OUTPUT_WIDTH;
            report("", checked, " outputs checked against the host: ");
            report("", differ, " differ, ");
            say(if differ == 0 { "MATCH\n" } else { "MISMATCH\n" });
            differ == 0
        }
        None => {
            say("the model did not load or a step failed\n");
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
