//! Loads the demo blob and runs one step, with no std, no allocator and no runtime crate.
//! If any dependency needed std, this would not link.

#![no_std]
#![no_main]

use core::hint::black_box;

static MODEL: &[u8] = edgernn::include_blob!("../../../tools/demo/lstm_classifier.ern");

/// The entry point the linker looks for; there is no C runtime in between.
#[no_mangle]
pub extern "C" fn _start() -> ! {
    let mut state = [0f32; 64];
    let mut scratch = [0f32; 256];
    let mut out = [0f32; 8];
    let code = match edgernn::Model::from_bytes(black_box(MODEL)) {
        Ok(model) => {
            let state_len = model.state_len().min(state.len());
            let input = black_box([0.5f32, -0.25, 1.0]);
            match model.step(&input, &mut state[..state_len], &mut scratch, &mut out) {
                Ok(()) => 0,
                Err(_) => 2,
            }
        }
        Err(_) => 1,
    };
    black_box((code, out));
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
