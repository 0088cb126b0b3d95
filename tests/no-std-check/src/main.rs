//! Loads a blob and runs it, with no std, no allocator and no runtime crate: if any dependency
//! needed std, this would not link.
//!
//! With the `prove-no-panic` feature the panic handler calls a function that exists nowhere,
//! so the link fails if any panic path is reachable from loading a blob (any bytes: the blob
//! goes through `black_box`), `step()` or the sequence call, in the float and integer
//! arithmetics, on a loaded model or on any value of a build-time plan (`edgernn export
//! --plan`'s `PLAN`, behind `black_box`: a hand-edited plan cannot reach a panic either), or
//! from generation (`edgernn::generate`: value and token feedback, sampling,
//! the encoder-to-decoder state hand-over).

#![no_std]
#![no_main]

use core::hint::black_box;

use edgernn::generate::{start_decoder, Generator, Sampling};
use edgernn::model::Word;
use edgernn::Model;

static MODEL: &[u8] = edgernn::include_blob!("../../../tools/demo/lstm_classifier.ern");
/// A model loaded at build time (its `PLAN`).
#[path = "../../../firmware-examples/models/machine_temperature_lstm32_int8.rs"]
#[allow(dead_code)]
mod planned;
/// A text model (Embedding, LSTM, softmax over its vocabulary) for the token path.
static TEXT_MODEL: &[u8] =
    edgernn::include_blob!("../../../tools/demo/text/devils-dictionary.int8.ern");

/// Steps once and runs a three-step window with buffers of word type `W`.
fn exercise<W: Word, const L: usize>(model: &Model<'_, L>) -> u32 {
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
    let handed_over = start_decoder(model, &mut [W::default(); 32], model, state);
    u32::from(stepped.is_ok()) + u32::from(window.is_ok()) + u32::from(handed_over.is_ok())
}

/// Generates a few steps: values fed back, or tokens sampled at a temperature.
fn generate<W: Word>(model: &Model<'_>) -> u32 {
    let mut state = [W::default(); 512];
    let mut scratch = [W::default(); 2048];
    let mut out = [0f32; 256];
    let state = &mut state[..model.state_len().min(512)];
    model.reset_state(state);
    let sampling = Sampling::with_temperature(black_box(0.7)).unwrap_or(Sampling::Greedy);
    let Ok(mut g) = Generator::new(model, state, &mut scratch, &mut out, sampling, black_box(7))
    else {
        return 0;
    };
    let primed = if model.reads_tokens() {
        g.prime(&black_box([1u32, 2, 3]))
    } else {
        g.prime_values(&black_box([0.5f32, -0.25, 1.0]))
    };
    let mut n = u32::from(primed.is_ok());
    for _ in 0..4 {
        n += u32::from(g.next_token().is_ok()) + u32::from(g.next_values().is_ok());
    }
    n
}

/// The entry point the linker looks for; there is no C runtime in between.
#[no_mangle]
pub extern "C" fn _start() -> ! {
    let mut code = match Model::from_bytes(black_box(MODEL)) {
        Ok(model) => {
            exercise::<f32, 8>(&model) + exercise::<i32, 8>(&model) + generate::<f32>(&model)
        }
        Err(_) => 100,
    };
    code += exercise::<i32, { planned::LAYERS }>(black_box(&planned::PLAN));
    // The in-place loader too (the text model's blob goes through it).
    let mut slot = None;
    if let Ok(model) = Model::load_into(&mut slot, black_box(TEXT_MODEL)) {
        code += generate::<i32>(model) + generate::<f32>(model);
    }
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
