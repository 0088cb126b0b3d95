//! `edgernn run`: a model over an input file, by the sequence call or by streaming.

use std::path::{Path, PathBuf};

use super::{load_model, read_blob, Failure};
use crate::io::{self, Array};
use crate::runner::run_window;
pub(crate) use crate::runner::Feed;

/// Options of `edgernn run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub model: PathBuf,
    pub input: PathBuf,
    pub output: Option<PathBuf>,
    pub stream: bool,
    pub per_step: bool,
    pub expect: Option<PathBuf>,
    pub tolerance: f32,
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The input as `[batch, time, features]`, and whether the file had a batch axis.
pub(crate) fn read_input(path: &Path) -> Result<(Array, bool), Failure> {
    let array = match extension(path).as_str() {
        "npy" => io::npy::read_npy(path)?,
        "csv" => io::csv_table::read_csv_matrix(path)?.1,
        other => {
            return Err(Failure::input(
                path,
                format!("unknown input type '.{other}': use .npy or .csv"),
            ))
        }
    };
    match array.shape.as_slice() {
        &[b, t, f] => Ok((Array::new(vec![b, t, f], array.data)?, true)),
        &[t, f] => Ok((Array::new(vec![1, t, f], array.data)?, false)),
        shape => Err(Failure::input(
            path,
            format!(
                "input has shape {shape:?}; expected [batch, time, features] or [time, features]"
            ),
        )),
    }
}

impl Feed {
    fn of(opts: &RunOptions) -> Self {
        if opts.per_step {
            Self::PerStep
        } else if opts.stream {
            Self::Stream
        } else {
            Self::Sequence
        }
    }
}

/// Runs `edgernn run`.
///
/// # Errors
/// Unreadable or invalid files, shape mismatches, or a streaming request on a model that needs
/// the whole window.
pub fn run(opts: &RunOptions) -> Result<(), Failure> {
    if let Some(output) = &opts.output {
        io::atomic::ensure_not_same_file(&opts.input, output)?;
        io::atomic::ensure_not_same_file(&opts.model, output)?;
    }
    let blob = read_blob(&opts.model)?;
    let model = load_model(&opts.model, &blob)?;
    if (opts.stream || opts.per_step) && !model.is_streamable() {
        return Err(Failure::input(
            &opts.model,
            "the model has a Bidirectional or go_backwards layer and needs the whole window; run without --stream/--per-step",
        ));
    }
    let (input, batched) = read_input(&opts.input)?;
    let (batch, steps, features) = (input.shape[0], input.shape[1], input.shape[2]);
    if features != model.input_features() {
        return Err(Failure::input(
            &opts.input,
            format!(
                "{features} features per time step, but the model {} expects {}",
                opts.model.display(),
                model.input_features()
            ),
        ));
    }
    if steps == 0 {
        return Err(Failure::input(
            &opts.input,
            "the sequence has no time steps",
        ));
    }
    let width = model.output_width();
    let mut data = Vec::new();
    for (b, xs) in input.data.chunks_exact(steps * features).enumerate() {
        let out = run_window(&model, xs, Feed::of(opts))
            .map_err(|e| Failure::input(&opts.input, format!("batch item {b}: {e}")))?;
        data.extend_from_slice(&out);
    }
    let sequence = opts.per_step || model.output_is_sequence();
    let mut shape = if sequence {
        vec![batch, steps, width]
    } else {
        vec![batch, width]
    };
    if !batched {
        shape.remove(0);
    }
    let result = Array::new(shape, data)?;
    write_output(opts.output.as_deref(), &result)?;
    match &opts.expect {
        Some(path) => {
            let expected = io::npy::read_npy(path)?;
            let report = super::verify::compare(path, &expected, &result)?;
            report.print(path, "output", opts.tolerance);
            report.verdict(path, opts.tolerance)
        }
        None => Ok(()),
    }
}

fn write_output(path: Option<&Path>, result: &Array) -> Result<(), Failure> {
    let width = result.shape.last().copied().unwrap_or(1);
    let rows = result.data.len().checked_div(width).unwrap_or(0);
    let header: Vec<String> = (0..width).map(|i| format!("y{i}")).collect();
    match path {
        None => {
            let stdout = std::io::stdout();
            io::csv_table::write_csv_matrix(stdout.lock(), Some(&header), rows, width, &result.data)
                .map_err(|e| Failure::Internal(format!("writing to stdout: {e}")))
        }
        Some(path) => match extension(path).as_str() {
            "npy" => Ok(io::npy::write_npy(path, result)?),
            "csv" => Ok(io::csv_table::write_csv_file(
                path,
                Some(&header),
                rows,
                width,
                &result.data,
            )?),
            other => Err(Failure::input(
                path,
                format!("unknown output type '.{other}': use .npy or .csv"),
            )),
        },
    }
}
