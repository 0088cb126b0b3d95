//! Loads a blob and runs it, with no std, no allocator and no runtime crate: if any dependency
//! needed std, this would not link.
//!
//! With the `prove-no-panic` feature the panic handler calls a function that exists nowhere,
//! so the link fails if any panic path is reachable from loading a blob (any bytes: the blob
//! goes through `black_box`), `step()` or the sequence call, in the float and integer
//! arithmetics.

#![no_std]
#![no_main]

use core::hint::black_box;

use edgernn::model::Word;
use edgernn::Model;

static MODEL: &[u8] = edgernn::include_blob!("../../../tools/demo/lstm_classifier.ern");

/// Steps once and runs a three-step window with buffers of word type `W`.
fn exercise<W: Word>(model: &Model<'_>) -> u32 {
    let mut state = [W::default(); 64];
    let mut scratch = [W::default(); 512];
    let mut out = [0f32; 16];
    let input = black_box([0.5f32, -0.25, 1.0, 0.0, 2.0, -1.0, 0.25, 0.5, 0.75]);
    let state_len = model.state_len().min(state.len());
    let state = &mut state[..state_len];
    model.reset_state(state);
    let features = model.input_features().min(input.len());
    let stepped = model.step(&input[..features], state, &mut scratch, &mut out);
    let window = model.run_sequence(&input, state, &mut scratch, &mut out);
    black_box(out);
    u32::from(stepped.is_ok()) + u32::from(window.is_ok())
}

/// The entry point the linker looks for; there is no C runtime in between.
#[no_mangle]
pub extern "C" fn _start() -> ! {
    let code = match Model::from_bytes(black_box(MODEL)) {
        Ok(model) => exercise::<f32>(&model) + exercise::<i32>(&model),
        Err(_) => 100,
    };
    black_box(code);
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(not(feature = "prove-no-panic"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(feature = "prove-no-panic")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    extern "C" {
        /// Defined nowhere: referencing it makes the link fail.
        fn edgernn_reached_a_panic_path() -> !;
    }
    // SAFETY: never runs; the build only links when no panic path references this handler.
    unsafe { edgernn_reached_a_panic_path() }
}
