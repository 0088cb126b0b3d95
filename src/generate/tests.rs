//! Generation on hand-built models whose outputs are easy to reason about: a token model that
//! counts `0, 1, 2, 0, ...` with near certainty, a value model that halves its input, and an
//! LSTM encoder and decoder for the state hand-over.

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::format::test_blob::{Buf, Weights};
use crate::format::{
    Cell, DenseLayer, DirectionWeights, EmbeddingLayer, Extensions, Layer, RecurrentLayer,
};

/// A blob of `layers` (f32), with a vocabulary when given.
fn blob(
    input_features: u32,
    layers: &[Layer],
    weights: &Weights,
    vocabulary: Option<&str>,
) -> (Box<Buf>, usize) {
    let extensions = Extensions {
        detector: None,
        vocabulary,
    };
    crate::format::test_blob::blob(input_features, layers, weights, extensions)
}

fn direction(
    w: &mut Weights,
    kernel: &[f32],
    recurrent: &[f32],
    bias: Option<&[f32]>,
) -> DirectionWeights {
    DirectionWeights {
        kernel: w.push(kernel),
        recurrent_kernel: w.push(recurrent),
        bias: bias.map(|b| w.push(b)),
        recurrent_bias: None,
        kernel_scale: None,
        recurrent_scale: None,
        reset_scale: None,
    }
}

fn recurrent(
    cell: Cell,
    units: u32,
    activation: Activation,
    return_sequences: bool,
    forward: DirectionWeights,
) -> Layer {
    Layer::Recurrent(RecurrentLayer {
        cell,
        units,
        activation,
        recurrent_activation: Activation::Sigmoid,
        return_sequences,
        go_backwards: false,
        bidirectional: None,
        forward,
        backward: None,
        quant: None,
    })
}

fn dense(w: &mut Weights, units: u32, activation: Activation, kernel: &[f32]) -> Layer {
    Layer::Dense(DenseLayer {
        units,
        activation,
        kernel: w.push(kernel),
        bias: None,
        kernel_scale: None,
        quant: None,
    })
}

fn embedding(w: &mut Weights, vocab: u32, dim: u32, table: &[f32]) -> Layer {
    Layer::Embedding(EmbeddingLayer {
        vocab,
        dim,
        table: w.push(table),
        quant: None,
    })
}

const IDENTITY3: [f32; 9] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];

/// Embedding(3, 3) = one-hot, SimpleRNN(3, linear) = identity, Dense(3, softmax) with logits
/// `gain * onehot(id + 1 mod 3)`: token `t` is followed by `t + 1 mod 3` with probability
/// `e^gain / (e^gain + 2)`.
fn counter(gain: f32) -> (Box<Buf>, usize) {
    let mut w = Weights::default();
    // Dense rows are outputs: output (i + 1) % 3 reads input i.
    let mut shift = [0.0f32; 9];
    for i in 0..3 {
        shift[((i + 1) % 3) * 3 + i] = gain;
    }
    let layers = [
        embedding(&mut w, 3, 3, &IDENTITY3),
        recurrent(
            Cell::SimpleRnn,
            3,
            Activation::Linear,
            false,
            direction(&mut w, &IDENTITY3, &[0.0; 9], None),
        ),
        dense(&mut w, 3, Activation::Softmax, &shift),
    ];
    blob(1, &layers, &w, Some("abc"))
}

/// Generates `n` tokens after `prompt` on a fresh state.
fn generate(
    model: &Model<'_>,
    prompt: &[u32],
    n: usize,
    sampling: Sampling,
    seed: u64,
) -> Vec<u32> {
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.step_scratch_len()];
    let mut out = vec![0f32; Generator::<f32>::output_buffer_len(model)];
    model.reset_state(&mut state);
    let mut g = Generator::new(model, &mut state, &mut scratch, &mut out, sampling, seed)
        .expect("a token model");
    g.prime(prompt).expect("valid prompt");
    (0..n).map(|_| g.next_token().expect("generates")).collect()
}

#[test]
fn splitmix64_matches_the_reference_sequence() {
    // SplitMix64 seeded with 0 (Vigna's reference implementation, splitmix64.c).
    let mut rng = Rng::new(0);
    assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
    assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    let saved = rng.state();
    let a = rng.next_u64();
    assert_eq!(Rng::from_state(saved).next_u64(), a);
    for _ in 0..1000 {
        let u = rng.next_unit_f32();
        assert!((0.0..1.0).contains(&u));
    }
}

#[test]
fn greedy_counts_and_reads_the_vocabulary() {
    let (buf, len) = counter(10.0);
    let model = Model::from_bytes(&buf.0[..len]).expect("loads");
    assert_eq!(Scores::of(&model), Scores::Probabilities);
    let tokens = generate(&model, &[1], 7, Sampling::Greedy, 0);
    assert_eq!(tokens, [2, 0, 1, 2, 0, 1, 2]);
    let vocabulary = model.vocabulary().expect("stored");
    let text: std::string::String = tokens
        .iter()
        .map(|&t| token_char(vocabulary, t).expect("in vocabulary"))
        .collect();
    assert_eq!(text, "cabcabc");
    assert_eq!(char_token(vocabulary, 'b'), Some(1));
    assert_eq!(char_token(vocabulary, 'z'), None);
    assert_eq!(token_char(vocabulary, 3), None);
}

#[test]
fn same_seed_same_tokens_and_the_state_is_the_streamed_one() {
    // A low gain leaves real uncertainty: p(next) = e / (e + 2) = 0.58.
    let (buf, len) = counter(1.0);
    let model = Model::from_bytes(&buf.0[..len]).expect("loads");
    let sampling = Sampling::with_temperature(1.5).expect("valid");
    let a = generate(&model, &[0, 1], 200, sampling, 42);
    let b = generate(&model, &[0, 1], 200, sampling, 42);
    let c = generate(&model, &[0, 1], 200, sampling, 43);
    assert_eq!(a, b, "same seed, same tokens");
    assert_ne!(a, c, "another seed gives another sequence");
    let follows = a.windows(2).filter(|p| p[1] == (p[0] + 1) % 3).count();
    assert!(
        (80..180).contains(&follows),
        "sampling, not greedy: {follows} of 199 follow the count"
    );

    // The generator's state is exactly the state of stepping prompt + generated tokens.
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.step_scratch_len()];
    let mut out = vec![0f32; 3];
    model.reset_state(&mut state);
    let mut g =
        Generator::new(&model, &mut state, &mut scratch, &mut out, sampling, 42).expect("ok");
    g.prime(&[0, 1]).expect("ok");
    for &t in &a {
        assert_eq!(g.next_token(), Ok(t));
    }
    let generated_state: Vec<u32> = g.state().iter().map(|v| v.to_bits()).collect();
    let mut reference = vec![0f32; model.state_len()];
    model.reset_state(&mut reference);
    let mut y = [0f32; 3];
    for &t in [0u32, 1].iter().chain(&a) {
        model
            .step(&[t as f32], &mut reference, &mut scratch, &mut y)
            .expect("steps");
    }
    let reference: Vec<u32> = reference.iter().map(|v| v.to_bits()).collect();
    assert_eq!(generated_state, reference);
}

#[test]
fn choose_follows_the_rules() {
    let mut rng = Rng::new(7);
    let p = Scores::Probabilities;
    assert_eq!(
        choose(&[0.2, 0.5, 0.5], p, Sampling::Greedy, &mut rng),
        Ok(1)
    );
    assert_eq!(
        choose(&[f32::NAN, 0.1, 0.0], p, Sampling::Greedy, &mut rng),
        Ok(1)
    );
    assert_eq!(
        choose(&[f32::NAN, f32::NAN], p, Sampling::Greedy, &mut rng),
        Err(GenerateError::NoCandidate)
    );
    assert_eq!(
        choose(&[], p, Sampling::Greedy, &mut rng),
        Err(GenerateError::NoCandidate)
    );
    let t1 = Sampling::Temperature(1.0);
    assert_eq!(
        choose(&[0.0, 0.0], p, t1, &mut rng),
        Err(GenerateError::NoCandidate)
    );
    // A zero probability is never drawn, at any temperature.
    for t in [0.5, 1.0, 100.0] {
        for _ in 0..500 {
            let i = choose(&[0.0, 0.3, 0.0, 0.7], p, Sampling::Temperature(t), &mut rng);
            assert!(matches!(i, Ok(1 | 3)), "{i:?}");
        }
    }
    // T = 1 samples the distribution; a high T flattens it; logits at T = 1 are a softmax.
    let count = |scores: &[f32], kind, t: f32, rng: &mut Rng| {
        (0..10_000)
            .filter(|_| choose(scores, kind, Sampling::Temperature(t), rng) == Ok(0))
            .count()
    };
    let n = count(&[0.2, 0.8], p, 1.0, &mut rng);
    assert!((1800..2200).contains(&n), "{n}");
    let n = count(&[0.2, 0.8], p, 1000.0, &mut rng);
    assert!((4700..5300).contains(&n), "{n}");
    let n = count(&[0.2, 0.8], p, 0.1, &mut rng);
    assert!(n < 20, "{n}");
    let logit = libm::logf(0.25);
    let n = count(&[logit, 0.0], Scores::Logits, 1.0, &mut rng);
    assert!((1800..2200).contains(&n), "{n}");
    assert_eq!(
        choose(&[f32::INFINITY, 1.0], Scores::Logits, t1, &mut rng),
        Ok(0)
    );
    // Refused temperatures.
    for t in [-1.0, f32::NAN, f32::INFINITY] {
        assert_eq!(
            Sampling::with_temperature(t),
            Err(GenerateError::BadTemperature)
        );
        assert_eq!(
            choose(&[0.5, 0.5], p, Sampling::Temperature(t), &mut rng),
            Err(GenerateError::BadTemperature)
        );
    }
    assert_eq!(Sampling::with_temperature(0.0), Ok(Sampling::Greedy));
}

#[test]
fn bad_calls_are_errors_not_panics() {
    let (buf, len) = counter(10.0);
    let model = Model::from_bytes(&buf.0[..len]).expect("loads");
    let mut state = vec![0f32; model.state_len()];
    let mut scratch = vec![0f32; model.step_scratch_len()];
    let mut out = vec![0f32; 3];
    let mut small = [0f32; 2];
    assert_eq!(
        Generator::new(
            &model,
            &mut state,
            &mut scratch,
            &mut small,
            Sampling::Greedy,
            0
        )
        .err(),
        Some(GenerateError::Run(RunError::OutputTooSmall {
            needed: 3,
            found: 2
        }))
    );
    let mut int_state = vec![0i32; model.state_len()];
    let mut int_scratch = vec![0i32; model.step_scratch_len()];
    assert_eq!(
        Generator::new(
            &model,
            &mut int_state,
            &mut int_scratch,
            &mut out,
            Sampling::Greedy,
            0
        )
        .err(),
        Some(GenerateError::Run(RunError::BufferType))
    );
    let mut g = Generator::new(
        &model,
        &mut state,
        &mut scratch,
        &mut out,
        Sampling::Greedy,
        0,
    )
    .expect("ok");
    assert_eq!(g.next_token(), Err(GenerateError::NotPrimed));
    assert_eq!(
        g.prime(&[0, 3]),
        Err(GenerateError::Run(RunError::InvalidToken { index: 1 }))
    );
    assert_eq!(
        g.next_token(),
        Err(GenerateError::NotPrimed),
        "nothing was fed"
    );
    assert_eq!(g.prime_values(&[1.0]), Err(GenerateError::WrongKind));
    assert_eq!(g.next_values().err(), Some(GenerateError::WrongKind));
    g.prime(&[]).expect("an empty prompt is no step");
    g.prime(&[2]).expect("ok");
    assert_eq!(g.next_token(), Ok(0));
    g.reset();
    assert_eq!(g.next_token(), Err(GenerateError::NotPrimed));
}

#[test]
fn a_value_model_feeds_its_forecast_back() {
    // SimpleRNN(1, linear), kernel 0.5: the forecast is half the input.
    let mut w = Weights::default();
    let layers = [recurrent(
        Cell::SimpleRnn,
        1,
        Activation::Linear,
        false,
        direction(&mut w, &[0.5], &[0.0], None),
    )];
    let (buf, len) = blob(1, &layers, &w, None);
    let model = Model::from_bytes(&buf.0[..len]).expect("loads");
    assert_eq!(Scores::of(&model), Scores::Logits);
    let mut state = [0f32; 1];
    let mut scratch = vec![0f32; model.step_scratch_len()];
    let mut out = [0f32; 2];
    assert_eq!(
        Generator::new(
            &model,
            &mut state,
            &mut scratch,
            &mut out,
            Sampling::Temperature(1.0),
            0
        )
        .err(),
        Some(GenerateError::WrongKind)
    );
    let mut g = Generator::new(
        &model,
        &mut state,
        &mut scratch,
        &mut out,
        Sampling::Greedy,
        0,
    )
    .expect("a value model");
    assert_eq!(g.prime(&[1]), Err(GenerateError::WrongKind));
    g.prime_values(&[3.0, 16.0]).expect("two rows");
    assert_eq!(g.latest_output(), [8.0]);
    let forecasts: Vec<f32> = (0..4).map(|_| g.next_values().expect("runs")[0]).collect();
    assert_eq!(forecasts, [8.0, 4.0, 2.0, 1.0]);
    assert_eq!(g.latest_output(), [0.5]);
}

/// `Embedding(3, 3) -> LSTM(2) -> Dense(3, softmax)` or, without `tokens`, `LSTM(2)` on one
/// feature (the encoder). The LSTM's weights are the same small numbers in both.
fn lstm_model(tokens: bool, units: usize) -> (Box<Buf>, usize) {
    let mut w = Weights::default();
    let input = if tokens { 3 } else { 1 };
    let rows = 4 * units;
    let kernel: Vec<f32> = (0..rows * input)
        .map(|i| 0.1 * (i % 7) as f32 - 0.3)
        .collect();
    let recurrent_kernel: Vec<f32> = (0..rows * units).map(|i| 0.05 * (i % 5) as f32).collect();
    let bias = vec![0.1; rows];
    let mut layers = Vec::new();
    if tokens {
        layers.push(embedding(&mut w, 3, 3, &IDENTITY3));
    }
    layers.push(recurrent(
        Cell::Lstm,
        units as u32,
        Activation::Tanh,
        false,
        direction(&mut w, &kernel, &recurrent_kernel, Some(&bias)),
    ));
    if tokens {
        let head: Vec<f32> = (0..3 * units).map(|i| i as f32 - 2.0).collect();
        layers.push(dense(&mut w, 3, Activation::Softmax, &head));
    }
    blob(1, &layers, &w, None)
}

#[test]
fn an_encoder_state_starts_the_decoder() {
    let (eb, el) = lstm_model(false, 2);
    let (db, dl) = lstm_model(true, 2);
    let encoder = Model::from_bytes(&eb.0[..el]).expect("loads");
    let decoder = Model::from_bytes(&db.0[..dl]).expect("loads");
    let mut enc_state = [0f32; 4];
    let mut scratch = vec![0f32; encoder.step_scratch_len().max(decoder.step_scratch_len())];
    let mut y = [0f32; 2];
    encoder.reset_state(&mut enc_state);
    encoder
        .run_sequence(&[0.5, -1.0, 2.0], &mut enc_state, &mut scratch, &mut y)
        .expect("encodes");
    assert_eq!(y, enc_state[..2], "the encoder's output is its final h");

    let mut dec_state = [9f32; 4];
    start_decoder(&encoder, &mut enc_state, &decoder, &mut dec_state).expect("same cell and units");
    assert_eq!(dec_state, enc_state, "h and c handed over");

    // The decoder then generates from a start token, starting from that state.
    let mut out = [0f32; 3];
    let mut g = Generator::new(
        &decoder,
        &mut dec_state,
        &mut scratch,
        &mut out,
        Sampling::Greedy,
        0,
    )
    .expect("a token model");
    g.prime(&[0]).expect("start token");
    let from_encoder: Vec<u32> = (0..5).map(|_| g.next_token().expect("runs")).collect();
    let after = g.state().to_vec();

    // Reference: the decoder stepped by hand from the encoder's state.
    let mut reference = enc_state;
    let mut probs = [0f32; 3];
    let mut token = 0u32;
    let mut tokens = Vec::new();
    for _ in 0..=5 {
        decoder
            .step(&[token as f32], &mut reference, &mut scratch, &mut probs)
            .expect("steps");
        token = argmax(&probs).expect("finite") as u32;
        tokens.push(token);
    }
    tokens.pop();
    assert_eq!(from_encoder, tokens);
    assert_eq!(after, reference, "the state of stepping the same tokens");

    // Mismatched layers are refused and leave the decoder state alone.
    let (wb, wl) = lstm_model(true, 3);
    let wide = Model::from_bytes(&wb.0[..wl]).expect("loads");
    let mut wide_state = [1f32; 6];
    assert_eq!(
        start_decoder(&encoder, &mut enc_state, &wide, &mut wide_state),
        Err(GenerateError::StateMismatch)
    );
    assert_eq!(wide_state, [1.0; 6]);
    let mut short = [0f32; 3];
    assert_eq!(
        start_decoder(&encoder, &mut enc_state, &decoder, &mut short),
        Err(GenerateError::Run(RunError::StateLength {
            expected: 4,
            found: 3
        }))
    );
}

#[test]
fn choosing_in_place_gives_the_same_tokens_and_random_numbers() {
    let mut seed = Rng::new(99);
    for case in 0..200 {
        let n = 1 + case % 40;
        let mut scores: Vec<f32> = (0..n).map(|_| seed.next_unit_f32()).collect();
        if case % 3 == 0 {
            scores[0] = 0.0;
        }
        let kind = if case % 2 == 0 {
            Scores::Probabilities
        } else {
            Scores::Logits
        };
        let t = [0.3, 0.7, 1.0, 2.5][case % 4];
        let (mut a, mut b) = (Rng::new(case as u64), Rng::new(case as u64));
        let plain = choose(&scores, kind, Sampling::Temperature(t), &mut a);
        let mut weights = scores.clone();
        let in_place = choose_in_place(&mut weights, kind, Sampling::Temperature(t), &mut b);
        assert_eq!(plain, in_place, "case {case}");
        assert_eq!(a, b, "the same random numbers were drawn");
    }
}
