//! # edgernn: recurrent neural networks on microcontrollers, exactly
//!
//! edgernn runs fixed-size SimpleRNN, LSTM and GRU models (stacked, bidirectional, with Dense
//! heads) from a checked model blob, one sensor sample at a time or a whole window at once.
//!
//! ## Promises
//!
//! * **No heap.** The crate is `#![no_std]` without `alloc`. Weights are read in place from the
//!   blob (in flash on an MCU); state and scratch are slices the caller owns (`f32`, or `i32`
//!   in the integer modes), with sizes the model reports ([`Model::state_len`],
//!   [`Model::step_scratch_len`], [`Model::sequence_scratch_len`]).
//! * **No panics on untrusted bytes or numbers.** A blob goes through one checked view
//!   ([`format::Blob::new_checked`], used by [`Model::from_bytes`]) that validates magic,
//!   version, checksum, every shape, offset and size; afterwards no call panics. Bad slices
//!   passed to a run call return a [`RunError`] and leave the state untouched. In the float
//!   modes non-finite inputs propagate (NaN in gives NaN out); in the integer modes they are
//!   quantized like any value (infinities saturate, NaN reads as the input's zero point).
//! * **Exact state streaming.** [`Model::step`] advances caller-owned state by one time step;
//!   stepping a window gives bit-identical results to [`Model::run_sequence`] on it. The state
//!   is plain `f32` data that can be saved and restored (across a deep sleep, say).
//! * **Keras semantics.** Results match Keras 3 within `|got - expected| / max(1, |expected|)
//!   < 1e-5` on the golden vectors in `tests/golden`.
//!
//! ## Supported
//!
//! | layer | options |
//! |---|---|
//! | SimpleRNN | activation tanh, relu, sigmoid, hard_sigmoid, linear; `use_bias`; `return_sequences`; `go_backwards` |
//! | LSTM | `activation` and `recurrent_activation` each tanh, sigmoid, hard_sigmoid, relu, linear; as above |
//! | GRU | `reset_after` true (Keras 3, PyTorch, ONNX `linear_before_reset=1`) and false; as above |
//! | Bidirectional | around any of the above; merge concat, sum, mul, ave (needs the whole window) |
//! | Dense | linear, relu, tanh, sigmoid, hard_sigmoid, softmax; applied per step on sequences (= `TimeDistributed(Dense)`) |
//! | Normalization | per-feature `(x - mean) / max(sqrt(variance), 1e-7)`, so firmware feeds raw values |
//! | Embedding | first layer; one token id per step (an integer-valued f32), validated against the vocabulary |
//! | RepeatVector | after a single vector (encoder-decoder); the output window has its own length; needs the whole window |
//!
//! | mode | weights | activations, state | arithmetic | buffers |
//! |---|---|---|---|---|
//! | `F32` | f32 | f32 | f32 | `f32` |
//! | `Int8Weights` | int8, per-row f32 scale | f32 | f32 | `f32` |
//! | `Int8` | int8, per row | int8 codes; LSTM `c` int16 | integer only | `i32` |
//! | `Int16` | int8, per row | int16 codes; LSTM `c` int16 | integer only | `i32` |
//!
//! Integer modes run every layer type (SimpleRNN, LSTM, GRU both variants, Bidirectional,
//! Dense), LSTM and GRU with sigmoid, tanh or hard sigmoid activations. Their results are
//! bit-exact on every target; the scheme is specified in [`quant`].
//!
//! ## Not supported
//!
//! Masking, variable-length batches (each call runs one sequence; loop for batches), attention,
//! peephole LSTMs, `unroll` (irrelevant at inference), stateful training, and a Bidirectional
//! wrapper around a `go_backwards` layer. Stepping a model with a Bidirectional or
//! `go_backwards` layer is an error ([`RunError::NotStreamable`]), never a wrong answer.
//!
//! ## Layers of the crate
//!
//! ### [`format`]: the blob and its checked view
//! The byte layout, version rule and CRC, written as a spec in the module docs.
//!
//! ### [`model`]: layer plans, state, the step and sequence calls
//! [`Model`] validates a [`format::Header`] against the weight section once and then runs.
//! [`model::prebuilt`] builds the same value at compile time from a file `edgernn export
//! --plan` wrote (the loader ran on the host): firmware that uses it links no loader and keeps
//! the `Model` in flash.
//!
//! ### [`generate`]: outputs fed back as inputs (vec2seq, encoder-decoder)
//! A token-by-token (or value-by-value) generation loop over [`Model::step`] with greedy or
//! temperature sampling from a seeded, integer-only RNG (bit-exact across targets in the
//! integer modes), and the hand-over of an encoder's final state to a decoder.
//!
//! ### [`detect`]: streaming anomaly detection
//! A fixed-size detector around a one-step forecaster: forecast errors become a likelihood
//! score in `[0, 1]`, alarms with a refractory period and a hysteresis flag; its parameters
//! live in the blob.
//!
//! ### [`cell`]: the math of one step
//! SimpleRNN, LSTM, GRU (both reset variants) and Dense, with equations cited from Keras.
//!
//! ### [`quant`]: the integer scheme
//! Quantization parameters, fixed-point requantization (one rounding rule), and integer
//! sigmoid/tanh by table with their measured errors.
//!
//! ### [`kernels`]: matrix-vector products and gate activations
//! A complete generic table (the scalar reference, always compiled) that per-architecture
//! tables override: NEON on aarch64 (always there), AVX2 + FMA on x86_64 (picked at run time
//! with `std`, or at compile time from the target features). Integer kernels give the same
//! bits everywhere; float kernels may round differently from the reference, but one process
//! always runs one table.
//!
//! ### [`math`]: activations
//! Keras 3 definitions on `f32`, via `libm`.
//!
//! ## Example
//!
//! ```
//! # fn demo(blob: &[u8]) -> Result<(), Box<dyn core::error::Error>> {
//! use edgernn::Model;
//!
//! let model = Model::from_bytes(blob)?;
//! let mut state = [0f32; 64];
//! let mut scratch = [0f32; 256];
//! let mut out = [0f32; 8];
//! let state = &mut state[..model.state_len()];
//! model.reset_state(state);
//! for sample in [[0.1f32, 0.2, 0.3], [0.4, 0.5, 0.6]] {
//!     model.step(&sample, state, &mut scratch, &mut out)?;
//! }
//! # Ok(()) }
//! ```
//!
//! ## Crate features
//!
//! * `defmt`: `defmt::Format` for errors and public enums, for logging on MCUs. Adds the `defmt`
//!   crate; costs nothing unless something is logged.
//! * `small`: size first, for firmware that counts bytes. On microcontrollers (Thumb targets)
//!   the generic scalar kernels instead of the DSP or ARMv6-M assembly, the half activation
//!   tables instead of the unfolded ones, smaller blocks of gate rows on the stack, and one
//!   out-of-line copy of requantization and of the activations. The same bits as without it
//!   (it never changes a result), less flash and stack, more instructions per step.
//! * `codegen`: [`model::prebuilt::write_plan`], a loaded model's plan as Rust source (for the
//!   tools' `export --plan`; firmware that builds such a file does not need it).
//! * `std`: links `std` to detect SIMD support (AVX2 + FMA) at run time, once, cached; for
//!   hosts and gateways. Without it SIMD kernels are chosen at compile time
//!   (`-C target-feature=+avx2,+fma`). No other cost.
//!
//! The rest are on by default and only exist so that firmware can leave out what its models
//! do not use (`default-features = false, features = ["integer", "lstm"]` for an int8 LSTM +
//! Dense model: see the README's Firmware section for what that saves). A blob that needs a
//! part the build left out is refused by the loader with [`LoadError::FeatureDisabled`]
//! naming the [`Feature`], never run with a wrong answer. Dense and Normalization layers are
//! always in.
//!
//! * `float`: the `F32` and `Int8Weights` modes (f32 arithmetic, `libm`'s `expf`/`tanhf`).
//! * `integer`: the `Int8` and `Int16` modes (the activation tables, requantization).
//! * `simple-rnn`, `lstm`, `gru`: the recurrent cells.
//! * `whole-window`: Bidirectional, `go_backwards` and RepeatVector layers and the
//!   layer-by-layer sequence call they need (without it the `Model` value is smaller too).
//! * `embedding`: Embedding layers (token models).
//! * `softmax`: softmax Dense layers (classifiers, token models): f32 softmax and the integer
//!   one with its 514-byte exp table.
//! * `detect`: the anomaly detector (`detect`); without it the loader drops a blob's detector
//!   parameters and [`Model::detector_params`] answers `None`.
//! * `generate`: generation with outputs fed back (`generate`).

#![no_std]
#![deny(unsafe_code)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod cell;
#[cfg(feature = "detect")]
pub mod detect;
mod error;
pub mod format;
#[cfg(feature = "generate")]
pub mod generate;
pub mod kernels;
pub mod math;
pub mod model;
pub mod quant;

pub use error::{Feature, LoadError, RunError};
pub use model::{LayerKind, LayerSummary, Model};

/// Most layers a model may have.
pub const MAX_LAYERS: usize = 16;
/// Largest width (input features, units, or a concatenated Bidirectional output) of any layer.
pub const MAX_WIDTH: usize = 4096;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
