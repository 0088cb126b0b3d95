//! Running a loaded model: one step, or a whole window.

use super::{LayerPlan, Model, RecurrentPlan};
use crate::cell::dense;
use crate::error::{sat_u32, RunError};
use crate::format::Merge;

fn check_len(expected: usize, found: usize) -> Result<(), RunError> {
    if expected == found {
        Ok(())
    } else {
        Err(RunError::InputLength {
            expected: sat_u32(expected),
            found: sat_u32(found),
        })
    }
}

fn need(buf: &mut [f32], needed: usize) -> Result<&mut [f32], RunError> {
    let found = buf.len();
    buf.get_mut(..needed).ok_or(RunError::ScratchTooSmall {
        needed: sat_u32(needed),
        found: sat_u32(found),
    })
}

/// Splits `len` values off the front of `buf` (the caller has checked the total length).
fn take<'s>(buf: &mut &'s mut [f32], len: usize) -> &'s mut [f32] {
    let whole = core::mem::take(buf);
    let (head, tail) = whole.split_at_mut(len.min(whole.len()));
    *buf = tail;
    head
}

fn row(buf: &[f32], index: usize, width: usize) -> &[f32] {
    let start = index.saturating_mul(width);
    buf.get(start..start.saturating_add(width)).unwrap_or(&[])
}

fn row_mut(buf: &mut [f32], index: usize, width: usize) -> &mut [f32] {
    let start = index.saturating_mul(width);
    buf.get_mut(start..start.saturating_add(width))
        .unwrap_or(&mut [])
}

fn copy_into(dst: &mut [f32], src: &[f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s;
    }
}

impl Model<'_> {
    fn check_state(&self, state: &[f32]) -> Result<(), RunError> {
        if state.len() == self.state_len {
            Ok(())
        } else {
            Err(RunError::StateLength {
                expected: sat_u32(self.state_len),
                found: sat_u32(state.len()),
            })
        }
    }

    fn check_output(&self, out: &[f32], needed: usize) -> Result<(), RunError> {
        if out.len() >= needed {
            Ok(())
        } else {
            Err(RunError::OutputTooSmall {
                needed: sat_u32(needed),
                found: sat_u32(out.len()),
            })
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
    /// [`RunError::NotStreamable`] for Bidirectional or `go_backwards` models; a length error
    /// when a slice does not fit ([`Model::state_len`], [`Model::step_scratch_len`]). On error
    /// the state is unchanged.
    ///
    /// # Panics
    /// Never.
    pub fn step(
        &self,
        x: &[f32],
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
    ) -> Result<(), RunError> {
        if !self.streamable {
            return Err(RunError::NotStreamable);
        }
        check_len(self.input_features, x.len())?;
        self.check_state(state)?;
        self.check_output(out, self.output_width)?;
        let scratch = need(scratch, self.step_scratch_len())?;
        self.step_layers(x, state, scratch, out, self.layers.len());
        Ok(())
    }

    /// Runs layers `..upto` on one time step; writes `out` only when every layer ran.
    fn step_layers(
        &self,
        x: &[f32],
        state: &mut [f32],
        mut scratch: &mut [f32],
        out: &mut [f32],
        upto: usize,
    ) {
        let mut src = take(&mut scratch, self.max_width);
        let mut dst = take(&mut scratch, self.max_width);
        let cell_scratch = scratch;
        let mut width = self.input_features;
        for (index, layer) in self.layers.iter().take(upto).enumerate() {
            let input: &[f32] = if index == 0 {
                x
            } else {
                src.get(..width).unwrap_or(&[])
            };
            match layer {
                LayerPlan::Recurrent(r) => {
                    let h = self.advance(r, &r.forward, 0, input, state, cell_scratch);
                    copy_into(dst, h);
                }
                LayerPlan::Dense(d) => {
                    let y = dst.get_mut(..d.units).unwrap_or(&mut []);
                    dense::forward(d.kernel, d.bias, d.activation, input, y);
                }
            }
            width = layer.output_width();
            core::mem::swap(&mut src, &mut dst);
        }
        if upto == self.layers.len() {
            copy_into(out, src.get(..width).unwrap_or(&[]));
        }
    }

    /// Steps one direction of a recurrent layer and returns its new `h`.
    fn advance<'s>(
        &self,
        r: &RecurrentPlan<'_>,
        weights: &crate::cell::DirectionViews<'_>,
        direction: usize,
        input: &[f32],
        state: &'s mut [f32],
        cell_scratch: &mut [f32],
    ) -> &'s [f32] {
        let len = r.spec.state_len();
        let start = r.state_offset + direction * len;
        let Some(st) = state.get_mut(start..start + len) else {
            return &[];
        };
        r.spec.step(weights, input, st, cell_scratch);
        st.get(..r.spec.units).unwrap_or(&[])
    }

    /// Runs a whole window of `xs.len() / input_features` time steps (row-major
    /// `[time, features]`), starting from `state` and leaving the final state in it. Writes
    /// [`Model::output_len`] values to `out` (`[time, width]` or `[width]`) and returns that count.
    ///
    /// # Errors
    /// [`RunError::EmptySequence`] for zero steps; a length error when a slice does not fit
    /// ([`Model::state_len`], [`Model::sequence_scratch_len`], [`Model::output_len`]). On error
    /// the state is unchanged.
    ///
    /// # Panics
    /// Never.
    pub fn run_sequence(
        &self,
        xs: &[f32],
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
    ) -> Result<usize, RunError> {
        if self.streamable {
            self.run_time_major(xs, state, scratch, out)
        } else {
            self.run_layerwise(xs, state, scratch, out)
        }
    }

    fn check_sequence(&self, xs: &[f32], state: &[f32]) -> Result<(usize, usize), RunError> {
        let features = self.input_features;
        let steps = xs.len() / features;
        check_len(steps * features, xs.len())?;
        if steps == 0 {
            return Err(RunError::EmptySequence);
        }
        self.check_state(state)?;
        let out_len = self.output_len(steps).ok_or(RunError::TooLarge)?;
        Ok((steps, out_len))
    }

    /// The streaming path over a window: the same [`Model::step`] arithmetic, one step at a
    /// time through the whole stack, so it needs no sequence buffers.
    fn run_time_major(
        &self,
        xs: &[f32],
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
    ) -> Result<usize, RunError> {
        let (steps, out_len) = self.check_sequence(xs, state)?;
        self.check_output(out, out_len)?;
        let scratch = need(scratch, self.step_scratch_len())?;
        let width = self.output_width;
        for (t, x) in xs.chunks_exact(self.input_features).enumerate() {
            let last = t + 1 == steps;
            if self.output_is_sequence {
                let y = row_mut(out, t, width);
                self.step_layers(x, state, scratch, y, self.layers.len());
            } else {
                // The head after the last sequence layer only matters for the final step.
                let upto = if last {
                    self.layers.len()
                } else {
                    self.head_start
                };
                self.step_layers(x, state, scratch, out, upto);
            }
        }
        Ok(out_len)
    }

    /// The whole-window path: layer by layer over full intermediate sequences, as Bidirectional
    /// and `go_backwards` layers need. Public for tests that compare it with the streaming path.
    #[doc(hidden)]
    pub fn run_layerwise(
        &self,
        xs: &[f32],
        state: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
    ) -> Result<usize, RunError> {
        let (steps, out_len) = self.check_sequence(xs, state)?;
        self.check_output(out, out_len)?;
        let needed = self
            .layerwise_scratch_len(steps)
            .ok_or(RunError::TooLarge)?;
        let mut scratch = need(scratch, needed)?;
        let seq_len = steps * self.max_width;
        let mut src = take(&mut scratch, seq_len);
        let mut dst = take(&mut scratch, seq_len);
        let backward_rows = take(&mut scratch, steps * self.max_units);
        let cell_scratch = scratch;

        let mut width = self.input_features;
        let mut rows = steps;
        for (index, layer) in self.layers.iter().enumerate() {
            let input: &[f32] = if index == 0 { xs } else { &*src };
            match layer {
                LayerPlan::Recurrent(r) => {
                    rows = self.recurrent_window(
                        r,
                        input,
                        steps,
                        state,
                        dst,
                        backward_rows,
                        cell_scratch,
                    );
                }
                LayerPlan::Dense(d) => {
                    for t in 0..rows {
                        let x = row(input, t, width);
                        let y = row_mut(dst, t, d.units);
                        dense::forward(d.kernel, d.bias, d.activation, x, y);
                    }
                }
            }
            width = layer.output_width();
            core::mem::swap(&mut src, &mut dst);
        }
        copy_into(out, src.get(..out_len).unwrap_or(&[]));
        Ok(out_len)
    }

    /// Runs a recurrent layer over a whole window, writing `[rows, output_width]` to `dst`, and
    /// returns `rows` (the window length, or 1 without `return_sequences`).
    #[allow(clippy::too_many_arguments)]
    fn recurrent_window(
        &self,
        r: &RecurrentPlan<'_>,
        input: &[f32],
        steps: usize,
        state: &mut [f32],
        dst: &mut [f32],
        backward_rows: &mut [f32],
        cell_scratch: &mut [f32],
    ) -> usize {
        let units = r.spec.units;
        let in_width = r.input_width;
        let out_width = r.output_width();
        let rows = if r.return_sequences { steps } else { 1 };

        // Forward direction (or the only one). With go_backwards, Keras returns outputs in
        // processing order, so output row k is the k-th step processed either way.
        for k in 0..steps {
            let t = if r.go_backwards { steps - 1 - k } else { k };
            let h = self.advance(
                r,
                &r.forward,
                0,
                row(input, t, in_width),
                state,
                cell_scratch,
            );
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
            let h = self.advance(
                r,
                &r.backward,
                1,
                row(input, t, in_width),
                state,
                cell_scratch,
            );
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
                    *f = match merge {
                        Merge::Sum => *f + b,
                        Merge::Mul => *f * b,
                        Merge::Ave => (*f + b) / 2.0,
                        Merge::Concat => *f,
                    };
                }
            }
        }
        rows
    }
}
