//! Running a model on whole windows from the host, with the buffer type its mode needs.

use edgernn::model::Word;
use edgernn::{Model, RunError};

/// How to feed a window to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// One sequence call.
    Sequence,
    /// One `step()` per time step; output as the sequence call shapes it.
    Stream,
    /// One `step()` per time step; the output after every step.
    PerStep,
}

/// Runs one window (`[time, features]` row-major) from the initial state and returns the
/// output rows flattened.
///
/// # Errors
/// The core's [`RunError`] (e.g. streaming a model that needs the whole window).
pub fn run_window(model: &Model<'_>, xs: &[f32], feed: Feed) -> Result<Vec<f32>, RunError> {
    if model.uses_integer_buffers() {
        run_with::<i32>(model, xs, feed)
    } else {
        run_with::<f32>(model, xs, feed)
    }
}

fn run_with<W: Word>(model: &Model<'_>, xs: &[f32], feed: Feed) -> Result<Vec<f32>, RunError> {
    let steps = xs.len() / model.input_features().max(1);
    let mut state = vec![W::default(); model.state_len()];
    model.reset_state(&mut state);
    if feed == Feed::Sequence {
        let scratch_len = model
            .sequence_scratch_len(steps)
            .ok_or(RunError::TooLarge)?;
        let out_len = model.output_len(steps).ok_or(RunError::TooLarge)?;
        let mut scratch = vec![W::default(); scratch_len];
        let mut out = vec![0.0; out_len];
        model.run_sequence(xs, &mut state, &mut scratch, &mut out)?;
        return Ok(out);
    }
    let width = model.output_width();
    let mut scratch = vec![W::default(); model.step_scratch_len()];
    let mut y = vec![0.0; width];
    let mut out = Vec::with_capacity(steps * width);
    for (t, x) in xs.chunks_exact(model.input_features()).enumerate() {
        model.step(x, &mut state, &mut scratch, &mut y)?;
        if feed == Feed::PerStep || model.output_is_sequence() || t + 1 == steps {
            out.extend_from_slice(&y);
        }
    }
    Ok(out)
}

/// Steps a streamable model through a window and returns the real state after every step
/// (dequantized in the integer modes).
///
/// # Errors
/// The core's [`RunError`].
pub fn states_per_step(model: &Model<'_>, xs: &[f32]) -> Result<Vec<Vec<f32>>, RunError> {
    if model.uses_integer_buffers() {
        states_with::<i32>(model, xs)
    } else {
        states_with::<f32>(model, xs)
    }
}

fn states_with<W: Word>(model: &Model<'_>, xs: &[f32]) -> Result<Vec<Vec<f32>>, RunError> {
    let mut state = vec![W::default(); model.state_len()];
    model.reset_state(&mut state);
    let mut scratch = vec![W::default(); model.step_scratch_len()];
    let mut y = vec![0.0; model.output_width()];
    let mut states = Vec::new();
    for x in xs.chunks_exact(model.input_features()) {
        model.step(x, &mut state, &mut scratch, &mut y)?;
        states.push(
            (0..state.len())
                .map(|i| model.state_value(&mut state, i).unwrap_or(f32::NAN))
                .collect(),
        );
    }
    Ok(states)
}
