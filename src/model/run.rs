//! Running a loaded model: one step, or a whole window, in float or integer arithmetic.
//!
//! One generic driver walks the layers for both arithmetics ([`Arith`]); the float and
//! integer cells differ only in what a layer step computes.

use super::{
    runs_float, runs_integer, DenseWeights, DirWeights, EmbeddingPlan, LayerPlan, Model,
    NormalizationPlan, RecurrentPlan, Table, Word,
};
use crate::cell::dense;
use crate::error::{sat_u32, RunError};
use crate::format::{Merge, QParams, QuantMode};
use crate::quant;

pub(super) fn check_len(expected: usize, found: usize) -> Result<(), RunError> {
    if expected == found {
        Ok(())
    } else {
        Err(RunError::InputLength {
            expected: sat_u32(expected),
            found: sat_u32(found),
        })
    }
}

pub(super) fn need<V>(buf: &mut [V], needed: usize) -> Result<&mut [V], RunError> {
    let found = buf.len();
    buf.get_mut(..needed).ok_or(RunError::ScratchTooSmall {
        needed: sat_u32(needed),
        found: sat_u32(found),
    })
}

/// Splits `len` values off the front of `buf` (the caller has checked the total length).
pub(super) fn take<'s, V>(buf: &mut &'s mut [V], len: usize) -> &'s mut [V] {
    let whole = core::mem::take(buf);
    let (head, tail) = whole.split_at_mut(len.min(whole.len()));
    *buf = tail;
    head
}

fn row<V>(buf: &[V], index: usize, width: usize) -> &[V] {
    let start = index.saturating_mul(width);
    buf.get(start..start.saturating_add(width)).unwrap_or(&[])
}

fn row_mut<V>(buf: &mut [V], index: usize, width: usize) -> &mut [V] {
    let start = index.saturating_mul(width);
    buf.get_mut(start..start.saturating_add(width))
        .unwrap_or(&mut [])
}

fn copy_into<V: Copy>(dst: &mut [V], src: &[V]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s;
    }
}

/// What a layer step computes, per arithmetic.
trait Arith {
    type V: Copy + Default;
    /// Whether [`Arith::load_input`] applies a leading Normalization itself (which is then
    /// the identity on this arithmetic's values).
    const NORMALIZED_ON_ENTRY: bool;
    /// Steps one direction: reads `input`, updates `state` (`h` first).
    fn recurrent(
        r: &RecurrentPlan<'_>,
        weights: &DirWeights<'_>,
        input: &[Self::V],
        state: &mut [Self::V],
        cell: &mut [Self::V],
    );
    fn dense(d: &super::DensePlan<'_>, x: &[Self::V], y: &mut [Self::V]);
    /// Merges a Bidirectional layer's forward and backward outputs (sum, ave, mul).
    fn merge(r: &RecurrentPlan<'_>, merge: Merge, forward: Self::V, backward: Self::V) -> Self::V;
    /// Writes the raw input in this arithmetic's values (a copy, or quantized codes).
    fn load_input(front: &Front<'_>, raw: &[f32], values: &mut [Self::V]);
    /// Normalization (integer models did it on entry: a copy here).
    fn normalize(n: &NormalizationPlan<'_>, x: &[Self::V], y: &mut [Self::V]);
    /// Embedding row of the (validated) token id `x[0]`.
    fn embed(e: &EmbeddingPlan<'_>, x: &[Self::V], y: &mut [Self::V]);
}

/// How the raw f32 input enters the arithmetic.
pub(crate) struct Front<'a> {
    quant: Option<QParams>,
    mode: QuantMode,
    /// Integer models with a leading Normalization apply it before quantizing.
    normalization: Option<NormalizationPlan<'a>>,
    /// Token ids pass through as integers.
    tokens: bool,
}

/// `(x - mean) / std` per feature.
fn normalize_f32(n: &NormalizationPlan<'_>, x: &[f32], y: &mut [f32]) {
    for (((out, &v), m), s) in y.iter_mut().zip(x).zip(n.mean.iter()).zip(n.std.iter()) {
        *out = (v - m) / s;
    }
}

/// The table row of token `id` (validated against the vocabulary before running).
pub(super) fn embedding_row<'t>(e: &EmbeddingPlan<'t>, id: usize) -> Table<'t> {
    let start = id.saturating_mul(e.dim);
    match e.table {
        Table::F32(t) => Table::F32(t.slice(start, e.dim).unwrap_or_default()),
        Table::I16(bytes) => Table::I16(
            bytes
                .get(start.saturating_mul(2)..(start + e.dim).saturating_mul(2))
                .unwrap_or(&[]),
        ),
    }
}

struct Float;
struct Int;

impl Arith for Float {
    type V = f32;
    const NORMALIZED_ON_ENTRY: bool = false;

    fn recurrent(
        r: &RecurrentPlan<'_>,
        weights: &DirWeights<'_>,
        input: &[f32],
        state: &mut [f32],
        cell: &mut [f32],
    ) {
        if let DirWeights::Float(w) = weights {
            r.spec.step(w, input, state, cell);
        }
    }

    fn dense(d: &super::DensePlan<'_>, x: &[f32], y: &mut [f32]) {
        if let DenseWeights::Float { kernel, bias } = &d.weights {
            dense::forward(kernel, *bias, d.activation, x, y);
        }
    }

    fn merge(_: &RecurrentPlan<'_>, merge: Merge, f: f32, b: f32) -> f32 {
        match merge {
            Merge::Sum => f + b,
            Merge::Mul => f * b,
            Merge::Ave => (f + b) / 2.0,
            Merge::Concat => f,
        }
    }

    fn load_input(_: &Front<'_>, raw: &[f32], values: &mut [f32]) {
        copy_into(values, raw);
    }

    fn normalize(n: &NormalizationPlan<'_>, x: &[f32], y: &mut [f32]) {
        normalize_f32(n, x, y);
    }

    fn embed(e: &EmbeddingPlan<'_>, x: &[f32], y: &mut [f32]) {
        let id = x.first().map_or(0, |&v| v as usize);
        if let Table::F32(row) = embedding_row(e, id) {
            for (o, v) in y.iter_mut().zip(row.iter()) {
                *o = v;
            }
        }
    }
}

impl Arith for Int {
    type V = i32;
    const NORMALIZED_ON_ENTRY: bool = true;

    fn recurrent(
        r: &RecurrentPlan<'_>,
        weights: &DirWeights<'_>,
        input: &[i32],
        state: &mut [i32],
        cell: &mut [i32],
    ) {
        if let (DirWeights::Int(w), Some(int)) = (weights, &r.int) {
            int.step(w, input, state, cell);
        }
    }

    fn dense(d: &super::DensePlan<'_>, x: &[i32], y: &mut [i32]) {
        if let DenseWeights::Int(int) = &d.weights {
            int.forward(x, y);
        }
    }

    fn merge(r: &RecurrentPlan<'_>, merge: Merge, f: i32, b: i32) -> i32 {
        let Some(int) = &r.int else { return f };
        let Some((out, requant)) = int.quant.merged() else {
            return f;
        };
        let z = i64::from(int.quant.output.zero_point);
        let (f, b) = (i64::from(f) - z, i64::from(b) - z);
        // Exact integer merge; `ave`'s halving is part of its requantizer.
        let v = match merge {
            Merge::Mul => f * b,
            _ => f + b,
        };
        let code = i64::from(out.zero_point) + requant.apply(v);
        crate::quant::fixed::clamp_to(code, i64::from(int.lo), i64::from(int.hi)) as i32
    }

    fn load_input(front: &Front<'_>, raw: &[f32], values: &mut [i32]) {
        if front.tokens && cfg!(feature = "embedding") {
            for (q, &v) in values.iter_mut().zip(raw) {
                *q = v as i32;
            }
        } else {
            quantize_codes(front, raw, values);
        }
    }

    fn normalize(_: &NormalizationPlan<'_>, x: &[i32], y: &mut [i32]) {
        copy_into(y, x);
    }

    fn embed(e: &EmbeddingPlan<'_>, x: &[i32], y: &mut [i32]) {
        let id = x.first().map_or(0, |&v| v.max(0) as usize);
        if let Table::I16(row) = embedding_row(e, id) {
            for (o, c) in y.iter_mut().zip(row.as_chunks::<2>().0) {
                *o = i32::from(i16::from_le_bytes(*c));
            }
        }
    }
}

/// Quantizes raw inputs (normalised first when the model starts with Normalization) into
/// codes of the mode's range.
fn quantize_codes(front: &Front<'_>, raw: &[f32], codes: &mut [i32]) {
    let (lo, hi) = front.mode.activation_range();
    let Some(p) = front.quant else { return };
    // The usual Normalization (one mean and one std per feature, as the loader checks): the
    // values a time step at a time against both views' iterators, which read the blob's bytes
    // inline (two out-of-line `get` calls per value cost about 50 instructions on a
    // Cortex-M0), the steps split off without a division (`chunks` divides to size its zip).
    // The same values and order as the loop below (which alone serves `small` builds: one
    // copy of `quantize`).
    #[cfg(not(feature = "small"))]
    if let Some(n) = &front.normalization {
        let features = n.mean.len();
        if features != 0 && n.std.len() == features {
            let (mut codes, mut raw) = (codes, raw);
            while !codes.is_empty() && !raw.is_empty() {
                let (step_codes, rest_codes) = codes.split_at_mut(features.min(codes.len()));
                let (step, rest) = raw.split_at(features.min(raw.len()));
                let stats = n.mean.iter().zip(n.std.iter());
                for ((q, &v), (m, s)) in step_codes.iter_mut().zip(step).zip(stats) {
                    *q = quant::quantize((v - m) / s, p, lo, hi);
                }
                (codes, raw) = (rest_codes, rest);
            }
            return;
        }
    }
    // One loop for both cases, so `quantize` is compiled once. `raw` is `[time, features]`
    // and `feature` the index within the time step (the loader checked that `mean` and `std`
    // have one value per feature).
    let mut feature = 0;
    for (q, &v) in codes.iter_mut().zip(raw) {
        let v = match &front.normalization {
            Some(n) => {
                let (Some(m), Some(s)) = (n.mean.get(feature), n.std.get(feature)) else {
                    continue;
                };
                feature += 1;
                if feature == n.mean.len() {
                    feature = 0;
                }
                (v - m) / s
            }
            None => v,
        };
        *q = quant::quantize(v, p, lo, hi);
    }
}

impl<const L: usize> Model<'_, L> {
    fn check_state(&self, state_len: usize) -> Result<(), RunError> {
        if state_len == self.state_len {
            Ok(())
        } else {
            Err(RunError::StateLength {
                expected: sat_u32(self.state_len),
                found: sat_u32(state_len),
            })
        }
    }

    pub(super) fn check_output(&self, out: &[f32], needed: usize) -> Result<(), RunError> {
        if out.len() >= needed {
            Ok(())
        } else {
            Err(RunError::OutputTooSmall {
                needed: sat_u32(needed),
                found: sat_u32(out.len()),
            })
        }
    }

    fn front(&self) -> Front<'_> {
        Front {
            quant: self.input_quant,
            mode: self.mode,
            normalization: match self.layers.first() {
                Some(LayerPlan::Normalization(n, _)) if self.mode.is_integer() => Some(*n),
                _ => None,
            },
            tokens: self.reads_tokens,
        }
    }

    fn quantize_into(&self, x: &[f32], codes: &mut [i32]) {
        Int::load_input(&self.front(), x, codes);
    }

    /// Token models: every input value must be an integer id in `[0, vocab)`.
    pub(super) fn check_tokens(&self, xs: &[f32]) -> Result<(), RunError> {
        let Some(LayerPlan::Embedding(e)) = self.layers.first() else {
            return Ok(());
        };
        if !cfg!(feature = "embedding") {
            return Ok(());
        }
        match xs
            .iter()
            .position(|&v| !(v >= 0.0 && v < e.vocab as f32 && v == libm::truncf(v)))
        {
            Some(index) => Err(RunError::InvalidToken {
                index: sat_u32(index),
            }),
            None => Ok(()),
        }
    }

    fn dequantize_into(&self, codes: &[i32], out: &mut [f32]) {
        if let Some(p) = self.output_quant {
            for (o, &q) in out.iter_mut().zip(codes) {
                *o = quant::dequantize(q, p);
            }
        }
    }

    /// Consumes one time step `x` (`input_features` values), advances `state` in place and
    /// writes the model's output for this step (`output_width` values) to `out`.
    ///
    /// For a model whose last recurrent layer has `return_sequences = false`, the output is
    /// what the sequence call would return for a window ending at this step. After `T` steps
    /// from a reset state, outputs equal [`Model::run_sequence`]'s bit for bit.
    ///
    /// # Errors
    /// [`RunError::NotStreamable`] for Bidirectional or `go_backwards` models;
    /// [`RunError::BufferType`] when `W` does not fit the mode; a length error when a slice
    /// does not fit ([`Model::state_len`], [`Model::step_scratch_len`]). On error the state is
    /// unchanged.
    ///
    /// # Panics
    /// Never.
    pub fn step<W: Word>(
        &self,
        x: &[f32],
        state: &mut [W],
        scratch: &mut [W],
        out: &mut [f32],
    ) -> Result<(), RunError> {
        if !self.streamable {
            return Err(RunError::NotStreamable);
        }
        check_len(self.input_features, x.len())?;
        self.check_tokens(x)?;
        self.check_state(state.len())?;
        self.check_output(out, self.output_width)?;
        let scratch = need(scratch, self.step_scratch_len())?;
        let all = self.layers.len();
        if let (Some(state), Some(scratch)) = (W::as_f32(state), W::as_f32(&mut *scratch)) {
            if runs_float(self.mode) {
                let y = self.step_layers::<Float>(x, state, scratch, all);
                copy_into(out, y);
                return Ok(());
            }
        }
        let (Some(state), Some(mut scratch)) = (W::as_i32(state), W::as_i32(scratch)) else {
            return Err(RunError::BufferType);
        };
        if !runs_integer(self.mode) {
            return Err(RunError::BufferType);
        }
        let codes = take(&mut scratch, self.input_features);
        self.quantize_into(x, codes);
        let y = self.step_layers::<Int>(codes, state, scratch, all);
        self.dequantize_into(y, out);
        Ok(())
    }

    /// Runs layers `..upto` on one time step and returns the last one's output (a view into
    /// `x`, `state` or `scratch`).
    ///
    /// A recurrent layer's output is its new `h`, read by the next layer where it lies in
    /// `state` rather than copied out: that spares a copy per layer and step (and the
    /// `memcpy` it compiles to). A layer's state lies after every earlier layer's
    /// ([`RecurrentPlan::state_offset`] grows with the index), so splitting `state` at it
    /// lends the earlier `h` for reading and this layer's state for writing at once.
    fn step_layers<'s, A: Arith>(
        &self,
        x: &'s [A::V],
        state: &'s mut [A::V],
        scratch: &'s mut [A::V],
        upto: usize,
    ) -> &'s [A::V] {
        let mut rest: &mut [A::V] = scratch;
        let mut src = take(&mut rest, self.step_width);
        let mut dst = take(&mut rest, self.step_width);
        let cell = rest;
        let mut width = self.input_features;
        let mut at = Output::Input;
        for layer in self.layers.iter().take(upto) {
            // The integer arithmetic normalised its input on entry: the layer is the identity
            // here, and passing its input through spares a copy.
            if A::NORMALIZED_ON_ENTRY && matches!(layer, LayerPlan::Normalization(..)) {
                continue;
            }
            let split = match layer {
                LayerPlan::Recurrent(r) => r.state_offset.min(state.len()),
                _ => state.len(),
            };
            let (before, after) = state.split_at_mut(split);
            let input: &[A::V] = match at {
                Output::Input => x,
                Output::Scratch => src.get(..width).unwrap_or(&[]),
                Output::State(h) => before.get(h..h + width).unwrap_or(&[]),
            };
            match layer {
                LayerPlan::Recurrent(r) => {
                    // Streamable layers have one direction (`advance` with direction 0).
                    if let Some(st) = after.get_mut(..r.spec.state_len()) {
                        A::recurrent(r, &r.forward, input, st, cell);
                    }
                    at = Output::State(r.state_offset);
                    width = r.spec.units;
                    continue;
                }
                LayerPlan::Dense(d) => {
                    A::dense(d, input, dst.get_mut(..d.units).unwrap_or(&mut []));
                }
                LayerPlan::Normalization(n, w) if !A::NORMALIZED_ON_ENTRY => {
                    A::normalize(n, input, dst.get_mut(..*w).unwrap_or(&mut []));
                }
                LayerPlan::Embedding(e) if cfg!(feature = "embedding") => {
                    A::embed(e, input, dst.get_mut(..e.dim).unwrap_or(&mut []));
                }
                // Models with a RepeatVector are not streamable; a step never gets here.
                LayerPlan::Repeat(_, w) if cfg!(feature = "whole-window") => {
                    copy_into(dst, input.get(..*w).unwrap_or(&[]));
                }
                // Skipped above; Embeddings and RepeatVectors without their features were
                // refused at load.
                LayerPlan::Normalization(..) | LayerPlan::Embedding(_) | LayerPlan::Repeat(..) => {}
            }
            width = layer.output_width();
            at = Output::Scratch;
            core::mem::swap(&mut src, &mut dst);
        }
        match at {
            Output::Input => x,
            Output::Scratch => src.get(..width).unwrap_or(&[]),
            Output::State(h) => state.get(h..h + width).unwrap_or(&[]),
        }
    }

    /// Runs a whole window of `xs.len() / input_features` time steps (row-major
    /// `[time, features]`), starting from `state` and leaving the final state in it. Writes
    /// [`Model::output_len`] values to `out` (`[time, width]` or `[width]`) and returns that count.
    ///
    /// # Errors
    /// [`RunError::EmptySequence`] for zero steps; [`RunError::BufferType`] when `W` does not
    /// fit the mode; a length error when a slice does not fit ([`Model::state_len`],
    /// [`Model::sequence_scratch_len`], [`Model::output_len`]). On error the state is
    /// unchanged.
    ///
    /// # Panics
    /// Never.
    pub fn run_sequence<W: Word>(
        &self,
        xs: &[f32],
        state: &mut [W],
        scratch: &mut [W],
        out: &mut [f32],
    ) -> Result<usize, RunError> {
        // Without `whole-window` every loaded model is streamable (the loader refused the
        // rest), and the constant condition drops the layer-by-layer path.
        if self.streamable || !cfg!(feature = "whole-window") {
            self.run_time_major(xs, state, scratch, out)
        } else {
            self.run_layerwise(xs, state, scratch, out)
        }
    }

    fn check_sequence(&self, xs: &[f32], state_len: usize) -> Result<(usize, usize), RunError> {
        let features = self.input_features;
        let steps = xs.len().checked_div(features).unwrap_or(0);
        check_len(steps * features, xs.len())?;
        if steps == 0 {
            return Err(RunError::EmptySequence);
        }
        self.check_tokens(xs)?;
        self.check_state(state_len)?;
        let out_len = self.output_len(steps).ok_or(RunError::TooLarge)?;
        Ok((steps, out_len))
    }

    /// The streaming path over a window: the same step arithmetic, one step at a time through
    /// the whole stack, so it needs no sequence buffers.
    fn run_time_major<W: Word>(
        &self,
        xs: &[f32],
        state: &mut [W],
        scratch: &mut [W],
        out: &mut [f32],
    ) -> Result<usize, RunError> {
        let (steps, out_len) = self.check_sequence(xs, state.len())?;
        self.check_output(out, out_len)?;
        let scratch = need(scratch, self.step_scratch_len())?;
        let scratch_len = scratch.len();
        let width = self.output_width;
        let integer = runs_integer(self.mode);
        if let (Some(state), true) = (W::as_f32(state), runs_float(self.mode)) {
            let Some(scratch) = W::as_f32(scratch) else {
                return Err(RunError::BufferType);
            };
            for (t, x) in xs.chunks_exact(self.input_features.max(1)).enumerate() {
                let upto = self.upto(t + 1 == steps);
                let y = self.step_layers::<Float>(x, state, scratch, upto);
                if upto == self.layers.len() {
                    let target = if self.output_is_sequence {
                        row_mut(out, t, width)
                    } else {
                        &mut *out
                    };
                    copy_into(target, y);
                }
            }
            return Ok(out_len);
        }
        let (Some(state), Some(scratch), true) = (W::as_i32(state), W::as_i32(scratch), integer)
        else {
            return Err(RunError::BufferType);
        };
        let Some((codes, rest)) = scratch.split_at_mut_checked(self.input_features) else {
            return Err(RunError::ScratchTooSmall {
                needed: sat_u32(self.step_scratch_len()),
                found: sat_u32(scratch_len),
            });
        };
        for (t, x) in xs.chunks_exact(self.input_features.max(1)).enumerate() {
            self.quantize_into(x, codes);
            let upto = self.upto(t + 1 == steps);
            let y = self.step_layers::<Int>(codes, state, rest, upto);
            if upto == self.layers.len() {
                let target = if self.output_is_sequence {
                    row_mut(out, t, width)
                } else {
                    &mut *out
                };
                self.dequantize_into(y, target);
            }
        }
        Ok(out_len)
    }

    /// How many layers a time-major step runs: the head after the last sequence layer only
    /// matters for the final step of a vector-output window.
    fn upto(&self, last: bool) -> usize {
        if self.output_is_sequence || last {
            self.layers.len()
        } else {
            self.head_start
        }
    }

    /// The whole-window path: layer by layer over full intermediate sequences, as Bidirectional
    /// and `go_backwards` layers need. Public for tests that compare it with the streaming path.
    #[doc(hidden)]
    pub fn run_layerwise<W: Word>(
        &self,
        xs: &[f32],
        state: &mut [W],
        scratch: &mut [W],
        out: &mut [f32],
    ) -> Result<usize, RunError> {
        let (steps, out_len) = self.check_sequence(xs, state.len())?;
        self.check_output(out, out_len)?;
        let needed = self
            .layerwise_scratch_len(steps)
            .ok_or(RunError::TooLarge)?;
        let scratch = need(scratch, needed)?;
        if runs_float(self.mode) {
            let (Some(state), Some(scratch)) = (W::as_f32(state), W::as_f32(scratch)) else {
                return Err(RunError::BufferType);
            };
            let y = self.layerwise::<Float>(xs, steps, state, scratch);
            copy_into(out, y.get(..out_len).unwrap_or(&[]));
            return Ok(out_len);
        }
        let (Some(state), Some(scratch), true) = (
            W::as_i32(state),
            W::as_i32(scratch),
            runs_integer(self.mode),
        ) else {
            return Err(RunError::BufferType);
        };
        let y = self.layerwise::<Int>(xs, steps, state, scratch);
        let y = y.get(..out_len).unwrap_or(&[]);
        self.dequantize_into(y, out);
        Ok(out_len)
    }

    /// Runs every layer over the window (loaded into the first sequence buffer in the
    /// arithmetic's values) and returns the final layer's output rows.
    fn layerwise<'s, A: Arith>(
        &self,
        xs: &[f32],
        steps: usize,
        state: &mut [A::V],
        mut scratch: &'s mut [A::V],
    ) -> &'s [A::V] {
        let max_rows = self.max_rows(steps);
        let seq_len = max_rows * self.max_width;
        let mut src = take(&mut scratch, seq_len);
        let mut dst = take(&mut scratch, seq_len);
        let backward_rows = take(&mut scratch, max_rows * self.max_units);
        let cell = scratch;
        A::load_input(&self.front(), xs, src);

        let mut width = self.input_features;
        let mut rows = steps;
        for layer in &self.layers {
            let input: &[A::V] = src;
            match layer {
                LayerPlan::Recurrent(r) => {
                    rows = recurrent_window::<A>(r, input, rows, state, dst, backward_rows, cell);
                }
                LayerPlan::Dense(d) => {
                    for t in 0..rows {
                        A::dense(d, row(input, t, width), row_mut(dst, t, d.units));
                    }
                }
                LayerPlan::Normalization(n, w) => {
                    for t in 0..rows {
                        A::normalize(n, row(input, t, width), row_mut(dst, t, *w));
                    }
                }
                LayerPlan::Embedding(e) => {
                    for t in 0..rows {
                        A::embed(e, row(input, t, width), row_mut(dst, t, e.dim));
                    }
                }
                LayerPlan::Repeat(times, w) => {
                    for t in 0..*times {
                        copy_into(row_mut(dst, t, *w), row(input, 0, width));
                    }
                    rows = *times;
                }
            }
            width = layer.output_width();
            core::mem::swap(&mut src, &mut dst);
        }
        src
    }
}

/// Where the last layer run by [`Model::step_layers`] left its output.
#[derive(Clone, Copy)]
enum Output {
    /// No layer wrote one yet: the step's input.
    Input,
    /// The front of the scratch buffer `src`.
    Scratch,
    /// A recurrent layer's `h`, at this offset in the state.
    State(usize),
}

/// Steps one direction of a recurrent layer and returns its new `h`.
fn advance<'s, A: Arith>(
    r: &RecurrentPlan<'_>,
    direction: usize,
    input: &[A::V],
    state: &'s mut [A::V],
    cell: &mut [A::V],
) -> &'s [A::V] {
    let len = r.spec.state_len();
    let start = r.state_offset + direction * len;
    let Some(st) = state.get_mut(start..start + len) else {
        return &[];
    };
    let weights = match direction {
        #[cfg(feature = "whole-window")]
        1 => &r.backward,
        _ => &r.forward,
    };
    A::recurrent(r, weights, input, st, cell);
    st.get(..r.spec.units).unwrap_or(&[])
}

/// Runs a recurrent layer over a whole window, writing `[rows, output_width]` to `dst`, and
/// returns `rows` (the window length, or 1 without `return_sequences`).
fn recurrent_window<A: Arith>(
    r: &RecurrentPlan<'_>,
    input: &[A::V],
    steps: usize,
    state: &mut [A::V],
    dst: &mut [A::V],
    backward_rows: &mut [A::V],
    cell: &mut [A::V],
) -> usize {
    let units = r.spec.units;
    let in_width = r.input_width;
    let out_width = r.output_width();
    let rows = if r.return_sequences { steps } else { 1 };

    // Forward direction (or the only one). With go_backwards, Keras returns outputs in
    // processing order, so output row k is the k-th step processed either way.
    for k in 0..steps {
        let t = if r.go_backwards { steps - 1 - k } else { k };
        let h = advance::<A>(r, 0, row(input, t, in_width), state, cell);
        if r.return_sequences || k + 1 == steps {
            let out_row = if r.return_sequences { k } else { 0 };
            copy_into(row_mut(dst, out_row, out_width), h);
        }
    }

    let Some(merge) = r.merge else {
        return rows;
    };
    // Backward direction: processes x[T-1]..x[0]; its outputs are re-aligned to input time.
    for t in (0..steps).rev() {
        let h = advance::<A>(r, 1, row(input, t, in_width), state, cell);
        if r.return_sequences || t == 0 {
            let out_row = if r.return_sequences { t } else { 0 };
            match merge {
                Merge::Concat => {
                    let target = row_mut(dst, out_row, out_width);
                    copy_into(target.get_mut(units..).unwrap_or(&mut []), h);
                }
                _ => copy_into(row_mut(backward_rows, out_row, units), h),
            }
        }
    }
    if merge != Merge::Concat {
        for t in 0..rows {
            let b = row(backward_rows, t, units);
            for (f, &b) in row_mut(dst, t, units).iter_mut().zip(b) {
                *f = A::merge(r, merge, *f, b);
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::F32View;
    use std::vec::Vec;

    /// `quantize_codes` with a Normalization (its per-step loop) against the per-value rule:
    /// value `k` normalised by feature `k % features`, for every input length through several
    /// steps and partial ones, shorter and longer code buffers, and the float edge values.
    #[test]
    fn normalised_codes_match_the_per_value_rule() {
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1.0e-40,
            3.4e38,
            -2.5,
            0.5,
        ];
        for features in 1..=4usize {
            let mean: Vec<f32> = (0..features).map(|f| f as f32 * 0.75 - 1.0).collect();
            let std: Vec<f32> = (0..features).map(|f| 0.3 + f as f32 * 1.7).collect();
            let (mean_bytes, std_bytes) = (bytes(&mean), bytes(&std));
            let front = Front {
                quant: Some(QParams {
                    scale: 0.037,
                    zero_point: -3,
                }),
                mode: QuantMode::Int8,
                normalization: Some(NormalizationPlan {
                    mean: F32View::new(&mean_bytes),
                    std: F32View::new(&std_bytes),
                }),
                tokens: false,
            };
            let (lo, hi) = QuantMode::Int8.activation_range();
            let p = front.quant.unwrap_or(QParams {
                scale: 1.0,
                zero_point: 0,
            });
            for len in 0..=3 * features + 2 {
                let raw: Vec<f32> = (0..len)
                    .map(|k| match k % 3 {
                        0 => specials[k % specials.len()],
                        _ => k as f32 * 0.41 - 2.0,
                    })
                    .collect();
                for codes_len in [len.saturating_sub(1), len, len + 2] {
                    let mut got = std::vec![i32::MIN; codes_len];
                    quantize_codes(&front, &raw, &mut got);
                    let want: Vec<i32> = (0..codes_len)
                        .map(|k| match raw.get(k) {
                            Some(&v) => {
                                let f = k % features;
                                quant::quantize((v - mean[f]) / std[f], p, lo, hi)
                            }
                            None => i32::MIN,
                        })
                        .collect();
                    assert_eq!(got, want, "features {features} len {len} codes {codes_len}");
                }
            }
        }
    }
}
