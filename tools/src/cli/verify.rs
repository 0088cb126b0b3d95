//! `edgernn verify`: run a model and compare with what the training framework computed.

use std::path::{Path, PathBuf};

use super::run::read_input;
use super::{load_model, read_blob, Failure};
use crate::io::{self, Array};
use crate::runner::{run_window, Feed};

/// Options of `edgernn verify`.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub model: PathBuf,
    pub input: PathBuf,
    pub expected: PathBuf,
    pub tolerance: f32,
    /// The files are `[time, batch, ...]` (PyTorch's `batch_first=False`).
    pub time_major: bool,
}

/// Error statistics of one output column.
#[derive(Debug, Clone, Copy, Default)]
pub struct ColumnError {
    pub max_abs: f32,
    /// `max |got - expected| / max(1, |expected|)`, the golden files' rule.
    pub max_scaled: f32,
}

/// Errors per output column (the last axis).
#[derive(Debug, Clone)]
pub struct Comparison {
    pub columns: Vec<ColumnError>,
}

impl Comparison {
    /// The worst column.
    pub fn overall(&self) -> ColumnError {
        self.columns
            .iter()
            .fold(ColumnError::default(), |a, c| ColumnError {
                max_abs: a.max_abs.max(c.max_abs),
                max_scaled: a.max_scaled.max(c.max_scaled),
            })
    }

    /// Prints one line per column and an overall line to stderr.
    pub fn print(&self, path: &Path, label: &str, tolerance: f32) {
        for (j, c) in self.columns.iter().enumerate() {
            eprintln!(
                "  {label} y{j}: max abs error {:.3e}, max scaled error {:.3e}",
                c.max_abs, c.max_scaled
            );
        }
        let o = self.overall();
        let verdict = if o.max_scaled < tolerance {
            "ok"
        } else {
            "MISMATCH"
        };
        eprintln!(
            "compared {label} with {}: max abs error {:.3e}, max scaled error {:.3e} (tolerance {tolerance:e}): {verdict}",
            path.display(),
            o.max_abs,
            o.max_scaled
        );
    }

    /// `Ok` within tolerance, a mismatch failure (exit 1) otherwise.
    ///
    /// # Errors
    /// [`Failure::Mismatch`] when any value is outside the tolerance.
    pub fn verdict(&self, path: &Path, tolerance: f32) -> Result<(), Failure> {
        if self.overall().max_scaled < tolerance {
            Ok(())
        } else {
            Err(Failure::Mismatch(format!(
                "{}: output differs from the expected values beyond the tolerance {tolerance:e}",
                path.display()
            )))
        }
    }
}

/// Compares `got` with `expected` (same number of values; the last axis of `got` names the
/// columns). NaN on either side counts as an infinite error.
///
/// # Errors
/// A bad-input failure naming `path` when the sizes differ.
pub fn compare(path: &Path, expected: &Array, got: &Array) -> Result<Comparison, Failure> {
    if expected.data.len() != got.data.len() {
        return Err(Failure::input(
            path,
            format!(
                "shape {:?} does not match the model's output shape {:?}",
                expected.shape, got.shape
            ),
        ));
    }
    let width = got.shape.last().copied().unwrap_or(1).max(1);
    let mut columns = vec![ColumnError::default(); width];
    for (i, (&g, &e)) in got.data.iter().zip(&expected.data).enumerate() {
        let abs = (g - e).abs();
        let (abs, scaled) = if abs.is_nan() {
            (f32::INFINITY, f32::INFINITY)
        } else {
            (abs, abs / e.abs().max(1.0))
        };
        let c = &mut columns[i % width];
        c.max_abs = c.max_abs.max(abs);
        c.max_scaled = c.max_scaled.max(scaled);
    }
    Ok(Comparison { columns })
}

/// `[a, b, rest...]` -> `[b, a, rest...]`.
fn swap_leading_axes(array: &Array) -> Result<Array, Failure> {
    let shape = &array.shape;
    if shape.len() < 2 {
        return Ok(array.clone());
    }
    let (a, b) = (shape[0], shape[1]);
    let inner: usize = shape[2..].iter().product();
    let mut data = vec![0.0; array.data.len()];
    for i in 0..a {
        for j in 0..b {
            let src = (i * b + j) * inner;
            let dst = (j * a + i) * inner;
            data[dst..dst + inner].copy_from_slice(&array.data[src..src + inner]);
        }
    }
    let mut new_shape = shape.clone();
    new_shape.swap(0, 1);
    Ok(Array::new(new_shape, data)?)
}

/// Runs `edgernn verify`.
///
/// # Errors
/// Bad files (exit 2) or a mismatch beyond the tolerance (exit 1).
pub fn run(opts: &VerifyOptions) -> Result<(), Failure> {
    let blob = read_blob(&opts.model)?;
    let model = load_model(&opts.model, &blob)?;
    let (mut input, batched) = read_input(&opts.input)?;
    let mut expected = io::npy::read_npy(&opts.expected)?;
    if opts.time_major {
        if !batched {
            return Err(Failure::input(
                &opts.input,
                "--time-major needs a 3-D input [time, batch, features]",
            ));
        }
        input = swap_leading_axes(&input)?;
        if model.output_is_sequence() {
            expected = swap_leading_axes(&expected)?;
        }
    }
    let (batch, steps, features) = (input.shape[0], input.shape[1], input.shape[2]);
    if features != model.input_features() || steps == 0 {
        return Err(Failure::input(
            &opts.input,
            format!(
                "input shape {:?} does not fit the model ({} features per step)",
                input.shape,
                model.input_features()
            ),
        ));
    }
    let width = model.output_width();
    let mut feeds = vec![(Feed::Sequence, "sequence")];
    if model.is_streamable() {
        feeds.push((Feed::Stream, "stream"));
    }
    let mut worst: Result<(), Failure> = Ok(());
    for (feed, label) in feeds {
        let mut data = Vec::new();
        for (b, xs) in input.data.chunks_exact(steps * features).enumerate() {
            let out = run_window(&model, xs, feed)
                .map_err(|e| Failure::input(&opts.input, format!("batch item {b}: {e}")))?;
            data.extend_from_slice(&out);
        }
        let shape = if model.output_is_sequence() {
            vec![batch, steps, width]
        } else {
            vec![batch, width]
        };
        let got = Array::new(shape, data)?;
        let report = compare(&opts.expected, &expected, &got)?;
        report.print(&opts.expected, label, opts.tolerance);
        if worst.is_ok() {
            worst = report.verdict(&opts.expected, opts.tolerance);
        }
    }
    worst
}
