//! Writes text with an int8 character-level LSTM (trained on The Devil's Dictionary by
//! `tools/demo/text/run.sh`): primes it with the host's prompt, generates token by token with
//! the host's seed and temperature, prints the text over semihosting, checks every token
//! against the host's (`edgernn generate`), and exits 0 when all match (1 otherwise). Runs
//! under QEMU (`cargo run --release`) or on a board with probe-rs.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{hprint, hprintln};
use edgernn::generate::{token_char, Generator, Sampling};
use edgernn::Model;
use panic_semihosting as _;

#[path = "../../models/devils_dictionary_int8_generation.rs"]
mod generation;
#[path = "../../models/devils_dictionary_int8.rs"]
mod model;

/// Generates and compares; returns whether every token matched the host's.
fn run() -> bool {
    let model = match Model::<'_, { model::LAYERS }>::from_bytes_with_capacity(&model::MODEL.0) {
        Ok(m) => m,
        Err(e) => {
            hprintln!("load failed: {}", e);
            return false;
        }
    };
    // The vocabulary travels in the blob: no side file to keep in sync.
    let Some(vocabulary) = model.vocabulary() else {
        hprintln!("the blob has no vocabulary");
        return false;
    };
    let sampling = match Sampling::with_temperature(generation::TEMPERATURE) {
        Ok(s) => s,
        Err(e) => {
            hprintln!("{}", e);
            return false;
        }
    };
    let mut state = [model::Word::default(); model::STATE_LEN];
    let mut scratch = [model::Word::default(); model::STEP_SCRATCH_LEN];
    let mut out = [0f32; model::OUTPUT_WIDTH];
    model.reset_state(&mut state);
    let mut generator = match Generator::new(
        &model,
        &mut state,
        &mut scratch,
        &mut out,
        sampling,
        generation::SEED,
    ) {
        Ok(g) => g,
        Err(e) => {
            hprintln!("{}", e);
            return false;
        }
    };
    if let Err(e) = generator.prime(&generation::PROMPT_TOKENS) {
        hprintln!("prime failed: {}", e);
        return false;
    }
    hprintln!("prompt: {:?}", generation::PROMPT);
    hprintln!("---");
    let mut matched = 0;
    for (i, &expected) in generation::EXPECTED_TOKENS.iter().enumerate() {
        firmware_common::bench_start();
        let token = generator.next_token();
        firmware_common::bench_stop();
        let token = match token {
            Ok(t) => t,
            Err(e) => {
                hprintln!("\ntoken {} failed: {}", i, e);
                return false;
            }
        };
        hprint!("{}", token_char(vocabulary, token).unwrap_or('?'));
        if token != expected {
            hprintln!(
                "\ntoken {}: {} here, {} on the host: MISMATCH",
                i,
                token,
                expected
            );
            return false;
        }
        matched += 1;
    }
    hprintln!("\n---");
    hprintln!(
        "{} tokens (seed {}, temperature {}) identical to the host's: MATCH",
        matched,
        generation::SEED,
        generation::TEMPERATURE
    );
    true
}

#[entry]
fn main() -> ! {
    firmware_common::paint_stack();
    let ok = run();
    firmware_common::finish(ok)
}
