//! Generation (vec2seq): a model's output fed back as its next input, one step at a time.
//!
//! A [`Generator`] drives a streamable model with caller-owned state, scratch and output
//! buffers (sizes from the model: [`Model::state_len`], [`Model::step_scratch_len`],
//! [`Generator::output_buffer_len`]); it allocates nothing and never panics.
//!
//! * **Token models** (an Embedding first, an output per vocabulary entry, such as the
//!   character models `edgernn train --task next-token` writes): [`Generator::prime`] feeds a
//!   prompt's token ids through [`Model::step`]; each [`Generator::next_token`] picks a token
//!   from the latest output, by argmax ([`Sampling::Greedy`]) or by sampling at a temperature
//!   ([`Sampling::Temperature`]) from a seeded [`Rng`], feeds it back and returns it.
//! * **Value models** (as many outputs as input features, e.g. a one-step forecaster):
//!   [`Generator::prime_values`] feeds observed rows; each [`Generator::next_values`] returns
//!   the model's forecast and feeds it back as the next input (an autoregressive forecast).
//!
//! After priming with `p` and generating `n` tokens, the state is exactly what stepping the
//! `p + n` tokens through [`Model::step`] from the same start gives: generation is the
//! streaming API plus a choice, so the state can be saved and generation resumed.
//!
//! ```
//! # fn demo(blob: &[u8]) -> Result<(), Box<dyn core::error::Error>> {
//! use edgernn::generate::{char_token, token_char, Generator, Sampling};
//! use edgernn::Model;
//!
//! let model = Model::from_bytes(blob)?; // an int8 text model (i32 buffers)
//! let vocabulary = model.vocabulary().ok_or("not a text model")?;
//! let (mut state, mut scratch, mut out) = ([0i32; 512], [0i32; 2048], [0f32; 128]);
//! let state = &mut state[..model.state_len()];
//! model.reset_state(state);
//! let sampling = Sampling::with_temperature(0.7)?;
//! let mut g = Generator::new(&model, state, &mut scratch, &mut out, sampling, 1)?;
//! let prompt: Vec<u32> = "The ".chars().filter_map(|c| char_token(vocabulary, c)).collect();
//! g.prime(&prompt)?;
//! for _ in 0..100 {
//!     let token = g.next_token()?;
//!     print!("{}", token_char(vocabulary, token).unwrap_or('?'));
//! }
//! # Ok(()) }
//! ```
//!
//! No call panics: `tests/no-std-check` links generation (values and tokens, sampling, the
//! state hand-over) with a panic handler that does not exist.
//!
//! # Reproducibility
//!
//! The same model, seed, temperature and prompt give the same tokens on every run. In the
//! integer modes they are the same on every target, bit for bit: the model's outputs are exact
//! integers dequantized by one f32 multiplication, and the choice uses only IEEE-754 f32
//! additions, multiplications, divisions and comparisons in a fixed order (Rust never fuses
//! them into FMA) plus `libm`'s `powf`/`expf`, which are themselves written in such operations.
//! The random numbers are integers ([`Rng`], SplitMix64) turned into f32 exactly (24 bits).
//! The float modes are reproducible on one machine; across targets their outputs may differ
//! by rounding (see [`crate::kernels`]), and so may a sampled token where two cumulative
//! probabilities are within that rounding of the random number.
//!
//! # Encoder-decoder (seq2vec2seq)
//!
//! Two ways to start a decoder from an encoder, as Keras' seq2seq examples do:
//!
//! * **State hand-over** ([`start_decoder`]): the encoder runs over the input sequence; its
//!   last recurrent layer's final `h` (and `c` for LSTM) becomes the decoder's first
//!   recurrent layer's initial state (Keras: `decoder_lstm(x, initial_state=[state_h,
//!   state_c])`). Then the decoder generates from a start token with a [`Generator`], which
//!   uses the state it is given.
//! * **Context input**: the encoder's output vector is the decoder's input at every step
//!   (`RepeatVector` between the two). Inside one blob, a `RepeatVector` layer does this (run
//!   it with [`Model::run_sequence`]); with two blobs, call the decoder's [`Model::step`] with
//!   the encoder's output as `x` once per output step.

use core::fmt;

use crate::cell::quantized::IntCell;
use crate::format::Activation;
use crate::model::{LayerKind, LayerPlan, RecurrentPlan, Word, DEFAULT_LAYERS};
use crate::quant::fixed::{sat_i16, shift_round};
use crate::{Model, RunError};

#[cfg(test)]
mod tests;

/// SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA
/// 2014): 64 bits of state, integer-only, the same sequence on every target. Its state is
/// plain data ([`Rng::state`]) and can be saved with the model state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rng {
    state: u64,
}

/// SplitMix64's increment, the golden ratio in 64-bit fixed point.
const SPLITMIX_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
/// SplitMix64's output mixing constants (Stafford's "Mix13" variant).
const SPLITMIX_MIX1: u64 = 0xBF58_476D_1CE4_E5B9;
const SPLITMIX_MIX2: u64 = 0x94D0_49BB_1331_11EB;
/// `2^-24`: 24 random bits scaled into `[0, 1)` are exact in f32 (its significand has 24 bits).
const UNIT_F32: f32 = 1.0 / 16_777_216.0;

impl Rng {
    /// A generator whose sequence is fixed by `seed` (any value, 0 included).
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(SPLITMIX_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(SPLITMIX_MIX1);
        z = (z ^ (z >> 27)).wrapping_mul(SPLITMIX_MIX2);
        z ^ (z >> 31)
    }

    /// A uniform value in `[0, 1)`: the top 24 bits of [`Rng::next_u64`] times `2^-24`, exact.
    pub fn next_unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * UNIT_F32
    }

    /// The internal state; `Rng::from_state(rng.state())` continues the same sequence.
    pub const fn state(&self) -> u64 {
        self.state
    }

    /// A generator continuing from a saved [`Rng::state`].
    pub const fn from_state(state: u64) -> Self {
        Self { state }
    }
}

/// How the next token is chosen from the model's output.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Sampling {
    /// The highest-scoring token (the lowest id among equals); uses no random numbers.
    Greedy,
    /// A random token with probability proportional to `p^(1/T)` (probability outputs) or
    /// `exp(logit / T)` (other outputs): `T = 1` samples the model's distribution, lower is
    /// more conservative, higher more varied. Build it with [`Sampling::with_temperature`].
    Temperature(f32),
}

impl Sampling {
    /// Temperature sampling at `t`, or [`Sampling::Greedy`] for `t = 0` (its limit).
    ///
    /// # Errors
    /// [`GenerateError::BadTemperature`] when `t` is negative, NaN or infinite.
    pub fn with_temperature(t: f32) -> Result<Self, GenerateError> {
        if t == 0.0 {
            Ok(Self::Greedy)
        } else if t > 0.0 && t.is_finite() {
            Ok(Self::Temperature(t))
        } else {
            Err(GenerateError::BadTemperature)
        }
    }
}

/// What a model's output values are, which decides how a temperature applies to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Scores {
    /// Probabilities (the last layer is a softmax Dense): weights `(p / p_max)^(1/T)`.
    Probabilities,
    /// Unnormalised log-probabilities: weights `exp((l - l_max) / T)`, a softmax at `T`.
    Logits,
}

impl Scores {
    /// What `model` outputs: probabilities when its last layer is a softmax Dense.
    pub fn of<const L: usize>(model: &Model<'_, L>) -> Self {
        let last = model
            .layer_count()
            .checked_sub(1)
            .and_then(|i| model.layer_summary(i));
        match last {
            Some(s) if s.kind == LayerKind::Dense && s.activation == Activation::Softmax => {
                Self::Probabilities
            }
            _ => Self::Logits,
        }
    }
}

/// Why generation did not proceed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GenerateError {
    /// The model step failed (buffer sizes or type, a token id outside the vocabulary, or a
    /// model that needs the whole window).
    Run(RunError),
    /// The model cannot feed its output back: a token model needs one output per vocabulary
    /// entry, a value model as many outputs as input features.
    NoFeedback,
    /// The call does not fit the model's kind: tokens for a value model or values for a token
    /// model, or a temperature for a value model (values are fed back as they are).
    WrongKind,
    /// A temperature that is negative, NaN or infinite.
    BadTemperature,
    /// A `next_*` call before any step: prime with at least one token or row first.
    NotPrimed,
    /// Every output value is NaN (or, for probabilities, none is positive): nothing to choose.
    NoCandidate,
    /// The encoder's last recurrent layer and the decoder's first one differ in cell, width,
    /// direction count or arithmetic, so the state cannot be handed over.
    StateMismatch,
}

impl fmt::Display for GenerateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Run(e) => write!(f, "{e}"),
            Self::NoFeedback => f.write_str(
                "the model cannot feed its output back: it needs one output per token \
                 (Embedding models) or as many outputs as input features",
            ),
            Self::WrongKind => {
                f.write_str("tokens and temperatures are for token models, values for value models")
            }
            Self::BadTemperature => {
                f.write_str("the temperature must be a finite number >= 0 (0: greedy)")
            }
            Self::NotPrimed => f.write_str("prime the generator with at least one step first"),
            Self::NoCandidate => f.write_str("the model's output has no valid candidate"),
            Self::StateMismatch => f.write_str(
                "the encoder's last and the decoder's first recurrent layer do not match \
                 (cell, units, directions or arithmetic)",
            ),
        }
    }
}

impl core::error::Error for GenerateError {}

impl From<RunError> for GenerateError {
    fn from(e: RunError) -> Self {
        Self::Run(e)
    }
}

/// The highest finite-or-infinite (non-NaN) value's index; the first among equals.
fn argmax(scores: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in scores.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        match best {
            Some((_, b)) if v <= b => {}
            _ => best = Some((i, v)),
        }
    }
    best.map(|(i, _)| i)
}

/// The sampling weight of one score, given the largest score and `1 / T`. Written once and
/// used for both passes of [`choose`], so the sum and the walk see the same bits.
fn weight(scores: Scores, v: f32, max: f32, temperature: f32, inverse: f32) -> f32 {
    match scores {
        Scores::Probabilities => {
            if v.is_nan() || v <= 0.0 {
                // Zero (or NaN) probability: never drawn, at any temperature.
                0.0
            } else if temperature == 1.0 {
                v
            } else {
                libm::powf(v / max, inverse)
            }
        }
        Scores::Logits => {
            if v.is_nan() {
                0.0
            } else {
                libm::expf((v - max) / temperature)
            }
        }
    }
}

/// Picks an index of `scores` as `sampling` says, drawing one random number for temperature
/// sampling (none for greedy).
///
/// Temperature sampling computes every weight ([`Scores`]), their sum `s` in index order,
/// draws `u` in `[0, 1)` and returns the first index whose running sum exceeds `u * s` (the
/// last index with a positive weight if rounding leaves none).
///
/// # Errors
/// [`GenerateError::NoCandidate`] when no value can be chosen (all NaN; no positive
/// probability); [`GenerateError::BadTemperature`] for a temperature that
/// [`Sampling::with_temperature`] would refuse.
///
/// # Panics
/// Never.
pub fn choose(
    scores: &[f32],
    kind: Scores,
    sampling: Sampling,
    rng: &mut Rng,
) -> Result<usize, GenerateError> {
    let w = match plan(scores, kind, sampling)? {
        Plan::Done(i) => return Ok(i),
        Plan::Sample(w) => w,
    };
    let total = scores
        .iter()
        .fold(0.0f32, |acc, &v| acc + w.weight(kind, v));
    walk(
        scores.iter().map(|&v| w.weight(kind, v)),
        total,
        w.best,
        rng,
    )
}

/// As [`choose`], with the same result bit for bit, but computing each weight once, into
/// `scores` (which it overwrites): the generator's path, where the next step overwrites the
/// output anyway and a weight costs a `powf`/`expf`.
///
/// # Errors
/// As [`choose`].
///
/// # Panics
/// Never.
pub fn choose_in_place(
    scores: &mut [f32],
    kind: Scores,
    sampling: Sampling,
    rng: &mut Rng,
) -> Result<usize, GenerateError> {
    let w = match plan(scores, kind, sampling)? {
        Plan::Done(i) => return Ok(i),
        Plan::Sample(w) => w,
    };
    // The same additions in the same order as `choose`'s fold.
    let mut total = 0.0f32;
    for v in scores.iter_mut() {
        *v = w.weight(kind, *v);
        total += *v;
    }
    walk(scores.iter().copied(), total, w.best, rng)
}

/// What temperature sampling needs besides the scores.
#[derive(Debug, Clone, Copy)]
struct Weigher {
    best: usize,
    max: f32,
    temperature: f32,
    inverse: f32,
}

impl Weigher {
    fn weight(&self, kind: Scores, v: f32) -> f32 {
        weight(kind, v, self.max, self.temperature, self.inverse)
    }
}

enum Plan {
    /// Decided without random numbers (greedy, or an infinite score).
    Done(usize),
    Sample(Weigher),
}

fn plan(scores: &[f32], kind: Scores, sampling: Sampling) -> Result<Plan, GenerateError> {
    let best = argmax(scores).ok_or(GenerateError::NoCandidate)?;
    let temperature = match sampling {
        Sampling::Greedy => return Ok(Plan::Done(best)),
        Sampling::Temperature(t) if t > 0.0 && t.is_finite() => t,
        Sampling::Temperature(_) => return Err(GenerateError::BadTemperature),
    };
    let max = scores.get(best).copied().unwrap_or(0.0);
    if kind == Scores::Probabilities && (max.is_nan() || max <= 0.0) {
        return Err(GenerateError::NoCandidate);
    }
    if max.is_infinite() {
        // An infinite logit or probability takes all the mass.
        return Ok(Plan::Done(best));
    }
    Ok(Plan::Sample(Weigher {
        best,
        max,
        temperature,
        inverse: 1.0 / temperature,
    }))
}

/// Draws `u` and returns the first index whose running sum of `weights` exceeds `u * total`
/// (the last positive weight's index if rounding leaves none).
fn walk(
    weights: impl Iterator<Item = f32>,
    total: f32,
    best: usize,
    rng: &mut Rng,
) -> Result<usize, GenerateError> {
    let target = rng.next_unit_f32() * total;
    let mut acc = 0.0f32;
    let mut last_positive = best;
    for (i, w) in weights.enumerate() {
        if w > 0.0 {
            last_positive = i;
        }
        acc += w;
        if target < acc {
            return Ok(i);
        }
    }
    Ok(last_positive)
}

/// The character of token `id` in a vocabulary string (token `i` is its `i`-th `char`, as
/// [`crate::format::Extensions::vocabulary`] stores it), or `None` past its end.
pub fn token_char(vocabulary: &str, id: u32) -> Option<char> {
    vocabulary.chars().nth(usize::try_from(id).ok()?)
}

/// The token id of `c` in a vocabulary string, or `None` when it has no such character.
pub fn char_token(vocabulary: &str, c: char) -> Option<u32> {
    vocabulary
        .chars()
        .position(|v| v == c)
        .and_then(|i| u32::try_from(i).ok())
}

/// How a model's output becomes its next input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feedback {
    /// The chosen index is the next token id (`vocab` outputs).
    Token,
    /// The output row is the next input row (`width` values).
    Values,
}

/// Drives a model whose output is fed back as its next input, over buffers the caller owns.
///
/// `W` is the state and scratch element type of the model's mode ([`Word`]).
#[derive(Debug)]
pub struct Generator<'g, 'm, W: Word, const L: usize = DEFAULT_LAYERS> {
    model: &'g Model<'m, L>,
    state: &'g mut [W],
    scratch: &'g mut [W],
    /// Token models: the latest output. Value models: two rows, the latest output in row
    /// `current` and room for the next one in the other.
    out: &'g mut [f32],
    feedback: Feedback,
    scores: Scores,
    sampling: Sampling,
    rng: Rng,
    width: usize,
    current: usize,
    primed: bool,
}

impl<'g, 'm, W: Word, const L: usize> Generator<'g, 'm, W, L> {
    /// Output buffer values a generator for `model` needs: the output width for token models,
    /// twice it for value models (the latest output and the next one).
    pub fn output_buffer_len(model: &Model<'_, L>) -> usize {
        if model.reads_tokens() {
            model.output_width()
        } else {
            2 * model.output_width()
        }
    }

    /// A generator over `model` with the caller's buffers. The state is used as it is: reset
    /// it first ([`Model::reset_state`]) or start it from an encoder ([`start_decoder`]).
    /// `seed` fixes the random numbers of [`Sampling::Temperature`].
    ///
    /// # Errors
    /// [`GenerateError::NoFeedback`] when the output cannot be fed back;
    /// [`GenerateError::WrongKind`] for temperature sampling on a value model;
    /// [`GenerateError::BadTemperature`]; [`GenerateError::Run`] for a model that needs the
    /// whole window ([`RunError::NotStreamable`]), buffers of the wrong type
    /// ([`RunError::BufferType`]) or size.
    ///
    /// # Panics
    /// Never.
    pub fn new(
        model: &'g Model<'m, L>,
        state: &'g mut [W],
        scratch: &'g mut [W],
        out: &'g mut [f32],
        sampling: Sampling,
        seed: u64,
    ) -> Result<Self, GenerateError> {
        if !model.is_streamable() {
            return Err(RunError::NotStreamable.into());
        }
        let width = model.output_width();
        let feedback = if model.reads_tokens() {
            let vocab = match model.layer_summary(0).map(|s| s.kind) {
                Some(LayerKind::Embedding { vocab }) => vocab,
                _ => 0,
            };
            if vocab != width {
                return Err(GenerateError::NoFeedback);
            }
            Feedback::Token
        } else {
            if width != model.input_features() {
                return Err(GenerateError::NoFeedback);
            }
            Feedback::Values
        };
        match (feedback, sampling) {
            (Feedback::Values, Sampling::Temperature(_)) => return Err(GenerateError::WrongKind),
            (_, Sampling::Temperature(t)) if !(t > 0.0 && t.is_finite()) => {
                return Err(GenerateError::BadTemperature)
            }
            _ => {}
        }
        let integer = W::as_i32(&mut *state).is_some();
        if integer != model.uses_integer_buffers() {
            return Err(RunError::BufferType.into());
        }
        if state.len() != model.state_len() {
            return Err(RunError::StateLength {
                expected: sat_u32(model.state_len()),
                found: sat_u32(state.len()),
            }
            .into());
        }
        if scratch.len() < model.step_scratch_len() {
            return Err(RunError::ScratchTooSmall {
                needed: sat_u32(model.step_scratch_len()),
                found: sat_u32(scratch.len()),
            }
            .into());
        }
        let needed = Self::output_buffer_len(model);
        if out.len() < needed {
            return Err(RunError::OutputTooSmall {
                needed: sat_u32(needed),
                found: sat_u32(out.len()),
            }
            .into());
        }
        Ok(Self {
            model,
            state,
            scratch,
            out,
            feedback,
            scores: Scores::of(model),
            sampling,
            rng: Rng::new(seed),
            width,
            current: 0,
            primed: false,
        })
    }

    /// Resets the state to the model's initial state (the random numbers continue).
    pub fn reset(&mut self) {
        self.model.reset_state(self.state);
        self.primed = false;
    }

    /// Feeds the prompt's token ids, one [`Model::step`] each. May be called again to extend
    /// the prompt (a user's turn, say).
    ///
    /// # Errors
    /// [`GenerateError::WrongKind`] for a value model; [`RunError::InvalidToken`] (with the
    /// prompt index) for an id outside the vocabulary, before any step is taken.
    pub fn prime(&mut self, tokens: &[u32]) -> Result<(), GenerateError> {
        if self.feedback != Feedback::Token {
            return Err(GenerateError::WrongKind);
        }
        if let Some(index) = tokens.iter().position(|&t| (t as usize) >= self.width) {
            return Err(RunError::InvalidToken {
                index: sat_u32(index),
            }
            .into());
        }
        for &t in tokens {
            self.step_token(t)?;
        }
        Ok(())
    }

    /// Feeds observed rows (`input_features` values each, row-major), one step each.
    ///
    /// # Errors
    /// [`GenerateError::WrongKind`] for a token model; [`RunError::InputLength`] when `rows`
    /// is not a whole number of rows (nothing is fed then).
    pub fn prime_values(&mut self, rows: &[f32]) -> Result<(), GenerateError> {
        if self.feedback != Feedback::Values {
            return Err(GenerateError::WrongKind);
        }
        let width = self.width;
        if width == 0 || !rows.len().is_multiple_of(width) {
            return Err(RunError::InputLength {
                expected: sat_u32(rows.len().div_ceil(width.max(1)) * width),
                found: sat_u32(rows.len()),
            }
            .into());
        }
        for row in rows.chunks_exact(width) {
            let (a, b) = self.out.split_at_mut_checked(width).unwrap_or_default();
            let next = if self.current == 0 { b } else { a };
            self.model.step(row, self.state, self.scratch, next)?;
            self.current ^= 1;
            self.primed = true;
        }
        Ok(())
    }

    fn step_token(&mut self, token: u32) -> Result<(), GenerateError> {
        // Token ids below 2^24 are exact in f32 (the loader caps vocabularies there).
        let x = [token as f32];
        let out = self.out.get_mut(..self.width).unwrap_or_default();
        self.model.step(&x, self.state, self.scratch, out)?;
        self.primed = true;
        Ok(())
    }

    /// Chooses the next token from the latest output, feeds it back (one step) and returns it.
    ///
    /// # Errors
    /// [`GenerateError::NotPrimed`] before any step; [`GenerateError::WrongKind`] for a value
    /// model; [`GenerateError::NoCandidate`] when the output is all NaN. The state is
    /// unchanged on error (after a failed step the generator needs priming again).
    pub fn next_token(&mut self) -> Result<u32, GenerateError> {
        if self.feedback != Feedback::Token {
            return Err(GenerateError::WrongKind);
        }
        if !self.primed {
            return Err(GenerateError::NotPrimed);
        }
        // The output is overwritten by the next step anyway: weigh it in place.
        let scores = self.out.get_mut(..self.width).unwrap_or(&mut []);
        let id = choose_in_place(scores, self.scores, self.sampling, &mut self.rng)?;
        let id = u32::try_from(id).map_err(|_| GenerateError::NoCandidate)?;
        if let Err(e) = self.step_token(id) {
            // The output now holds weights, not scores: it must be refreshed by a step.
            self.primed = false;
            return Err(e);
        }
        Ok(id)
    }

    /// Returns the model's latest output (the forecast of the next row) after feeding it
    /// back as the next input (one step).
    ///
    /// # Errors
    /// [`GenerateError::NotPrimed`] before any step; [`GenerateError::WrongKind`] for a token
    /// model. The state is unchanged on error.
    pub fn next_values(&mut self) -> Result<&[f32], GenerateError> {
        if self.feedback != Feedback::Values {
            return Err(GenerateError::WrongKind);
        }
        if !self.primed {
            return Err(GenerateError::NotPrimed);
        }
        let width = self.width;
        let (a, b) = self.out.split_at_mut_checked(width).unwrap_or_default();
        let (latest, next) = if self.current == 0 { (a, b) } else { (b, a) };
        let next = next.get_mut(..width).unwrap_or_default();
        self.model.step(latest, self.state, self.scratch, next)?;
        self.current ^= 1;
        let previous = if self.current == 0 { 1 } else { 0 };
        Ok(self
            .out
            .get(previous * width..(previous + 1) * width)
            .unwrap_or(&[]))
    }

    /// The latest output: the scores the next token is chosen from, or the next forecast.
    pub fn latest_output(&self) -> &[f32] {
        let at = if self.feedback == Feedback::Values {
            self.current * self.width
        } else {
            0
        };
        self.out.get(at..at + self.width).unwrap_or(&[])
    }

    /// The model state (save it with [`Generator::rng`] to resume later).
    pub fn state(&self) -> &[W] {
        self.state
    }

    /// The random number generator's current position.
    pub fn rng(&self) -> Rng {
        self.rng
    }

    /// Continues with a saved random number generator.
    pub fn set_rng(&mut self, rng: Rng) {
        self.rng = rng;
    }
}

fn sat_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The recurrent layers of `model` in order.
fn recurrent_layers<'p, 'm, const L: usize>(
    model: &'p Model<'m, L>,
) -> impl DoubleEndedIterator<Item = &'p RecurrentPlan<'m>> {
    model.plans().iter().filter_map(|l| match l {
        LayerPlan::Recurrent(r) => Some(r),
        _ => None,
    })
}

/// Converts one `h` code between two integer layers' output quantizations (through the real
/// value: one dequantizing multiplication, one quantizing division, both exact IEEE f32).
fn requantize_h(code: i32, from: &IntCell, to: &IntCell) -> i32 {
    let real = crate::quant::dequantize(code, from.quant.output);
    crate::quant::quantize(real, to.quant.output, to.lo, to.hi)
}

/// Converts an integer LSTM `c` from `from` to `to` fractional bits (rounding half up when
/// bits are dropped, saturating when they are added).
fn rescale_c(c: i32, from: u8, to: u8) -> i32 {
    let (from, to) = (u32::from(from.min(15)), u32::from(to.min(15)));
    let v = if to >= from {
        i64::from(c) << (to - from)
    } else {
        shift_round(i64::from(c), from - to)
    };
    i32::from(sat_i16(v))
}

/// Starts a decoder from an encoder (seq2vec2seq): resets `decoder_state`, then sets the
/// decoder's first recurrent layer's `h` (and `c` for LSTM) to the encoder's last recurrent
/// layer's final ones, read from `encoder_state` after the encoder has consumed its input.
/// This is Keras' `decoder(x, initial_state=encoder_states)`.
///
/// In the integer modes the two layers may have different quantizations: `h` is converted
/// through its real value (one f32 multiplication and division, exact IEEE operations) and
/// the LSTM `c` by a rounding shift between fractional bit counts, so the result is the same
/// on every target. A value outside the decoder's calibrated range saturates to it: calibrate
/// the decoder on runs started from encoder states, so its ranges cover them.
///
/// # Errors
/// [`GenerateError::StateMismatch`] when the two layers differ in cell type, units or
/// direction count, when either model has no recurrent layer, or when one model is integer
/// and the other float; [`RunError::StateLength`] for state slices of the wrong length;
/// [`RunError::BufferType`] when `W` does not fit the models' mode. `decoder_state` is
/// unchanged on error.
///
/// # Panics
/// Never.
pub fn start_decoder<W: Word, const LE: usize, const LD: usize>(
    encoder: &Model<'_, LE>,
    encoder_state: &mut [W],
    decoder: &Model<'_, LD>,
    decoder_state: &mut [W],
) -> Result<(), GenerateError> {
    for (model_len, len) in [
        (encoder.state_len(), encoder_state.len()),
        (decoder.state_len(), decoder_state.len()),
    ] {
        if model_len != len {
            return Err(RunError::StateLength {
                expected: sat_u32(model_len),
                found: sat_u32(len),
            }
            .into());
        }
    }
    if encoder.uses_integer_buffers() != decoder.uses_integer_buffers() {
        return Err(GenerateError::StateMismatch);
    }
    if W::as_i32(&mut *decoder_state).is_some() != decoder.uses_integer_buffers() {
        return Err(RunError::BufferType.into());
    }
    let (Some(from), Some(to)) = (
        recurrent_layers(encoder).next_back(),
        recurrent_layers(decoder).next(),
    ) else {
        return Err(GenerateError::StateMismatch);
    };
    // GRU variants share the meaning of `h`, so a reset_after encoder may start either.
    if core::mem::discriminant(&from.spec.cell) != core::mem::discriminant(&to.spec.cell)
        || from.spec.units != to.spec.units
        || from.directions() != to.directions()
    {
        return Err(GenerateError::StateMismatch);
    }
    let units = from.spec.units;
    let len = from.spec.state_len() * from.directions();
    let src_range = from.state_offset..from.state_offset + len;
    let dst_range = to.state_offset..to.state_offset + len;
    if encoder_state.get(src_range.clone()).is_none()
        || decoder_state.get(dst_range.clone()).is_none()
    {
        return Err(GenerateError::StateMismatch);
    }
    if let (Some(src), Some(dst)) = (
        W::as_f32(&mut *encoder_state),
        W::as_f32(&mut *decoder_state),
    ) {
        decoder.reset_state(&mut *dst);
        if let (Some(s), Some(d)) = (src.get(src_range), dst.get_mut(dst_range)) {
            d.copy_from_slice(s);
        }
        return Ok(());
    }
    let (Some(src), Some(dst)) = (
        W::as_i32(&mut *encoder_state),
        W::as_i32(&mut *decoder_state),
    ) else {
        return Err(RunError::BufferType.into());
    };
    let (Some(fi), Some(ti)) = (&from.int, &to.int) else {
        return Err(GenerateError::StateMismatch);
    };
    decoder.reset_state(&mut *dst);
    let per_dir = from.spec.state_len();
    if per_dir == 0 {
        return Err(GenerateError::StateMismatch);
    }
    let (Some(s), Some(d)) = (src.get(src_range), dst.get_mut(dst_range)) else {
        return Ok(());
    };
    // Each direction holds `h` (units values) then, for LSTM, `c`.
    for (k, (sv, dv)) in s.iter().zip(d.iter_mut()).enumerate() {
        *dv = if k % per_dir < units {
            requantize_h(*sv, fi, ti)
        } else {
            rescale_c(*sv, fi.quant.cell_frac_bits, ti.quant.cell_frac_bits)
        };
    }
    Ok(())
}
