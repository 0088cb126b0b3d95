//! The committed int8 text model generates exactly the host's tokens (those `edgernn generate`
//! wrote into the firmware example's source): checked by the core alone, so the same test runs
//! with the AVX2 kernels on x86_64 and with the scalar reference kernels on aarch64 under
//! qemu-user (CI), as the Cortex-M4F example does under QEMU: generation in the integer modes
//! is the same on every target, token for token.

use std::path::Path;

use edgernn::generate::{token_char, Generator, Sampling};
use edgernn::Model;

#[path = "../firmware-examples/models/devils_dictionary_int8_generation.rs"]
mod generation;

fn generate(model: &Model<'_>) -> Vec<u32> {
    let mut state = vec![0i32; model.state_len()];
    let mut scratch = vec![0i32; model.step_scratch_len()];
    let mut out = vec![0f32; Generator::<i32>::output_buffer_len(model)];
    model.reset_state(&mut state);
    let sampling = Sampling::with_temperature(generation::TEMPERATURE).expect("valid");
    let mut g = Generator::new(
        model,
        &mut state,
        &mut scratch,
        &mut out,
        sampling,
        generation::SEED,
    )
    .expect("a token model");
    g.prime(&generation::PROMPT_TOKENS).expect("valid prompt");
    (0..generation::STEPS)
        .map(|_| g.next_token().expect("generates"))
        .collect()
}

#[test]
fn int8_text_generation_matches_the_host_tokens_on_this_target() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/demo/text/devils-dictionary.int8.ern");
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    // A Vec<u8> promises no alignment: place the blob at a 16-byte boundary inside it.
    let mut buffer = vec![0u8; raw.len() + 15];
    let start = buffer.as_ptr().align_offset(16);
    buffer[start..start + raw.len()].copy_from_slice(&raw);
    let model = Model::from_bytes(&buffer[start..start + raw.len()]).expect("loads");
    println!("kernels: {}", edgernn::kernels::kernel_name());

    let tokens = generate(&model);
    assert_eq!(tokens, generation::EXPECTED_TOKENS, "token for token");
    assert_eq!(
        generate(&model),
        tokens,
        "the same seed gives the same tokens again"
    );
    let vocabulary = model.vocabulary().expect("a text model");
    let text: String = tokens
        .iter()
        .map(|&t| token_char(vocabulary, t).expect("in the vocabulary"))
        .collect();
    assert_eq!(text, generation::EXPECTED_TEXT);
}
