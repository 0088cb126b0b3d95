//! `edgernn quantize`: an f32 blob and calibration data to a quantized blob, with the error
//! report.

use std::path::{Path, PathBuf};

use edgernn::format::QuantMode;

use super::run::read_input;
use super::{read_blob, Failure};
use crate::io;
use crate::quantize::{quantize, Options};

/// Options of `edgernn quantize`.
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    pub model: PathBuf,
    pub calibration: PathBuf,
    pub mode: String,
    pub output: PathBuf,
    pub percentile: Option<f64>,
    /// `--pack`: the weight layout to write (`None`: row-major).
    pub pack: Option<String>,
    pub json: bool,
}

fn parse_mode(mode: &str) -> Option<QuantMode> {
    match mode {
        "int8" => Some(QuantMode::Int8),
        "int16" => Some(QuantMode::Int16),
        "int8-weights" => Some(QuantMode::Int8Weights),
        _ => None,
    }
}

/// Parses the `--quantize MODE` option of the commands that quantize what they train.
///
/// # Errors
/// Bad input naming the option for an unknown mode.
pub fn quantize_option(value: Option<&str>) -> Result<Option<QuantMode>, Failure> {
    value
        .map(|mode| {
            parse_mode(mode).ok_or_else(|| {
                Failure::BadInput(format!(
                    "--quantize {mode}: expected int8, int16 or int8-weights"
                ))
            })
        })
        .transpose()
}

/// Runs `edgernn quantize`.
///
/// # Errors
/// Bad files or options (exit 2), naming the file.
pub fn run(opts: &QuantizeOptions) -> Result<(), Failure> {
    io::atomic::ensure_not_same_file(&opts.model, &opts.output)?;
    io::atomic::ensure_not_same_file(&opts.calibration, &opts.output)?;
    let mode = parse_mode(&opts.mode).ok_or_else(|| {
        Failure::BadInput(format!(
            "--mode {}: expected int8, int16 or int8-weights",
            opts.mode
        ))
    })?;
    if let Some(p) = opts.percentile {
        if !(50.0..=100.0).contains(&p) {
            return Err(Failure::BadInput(format!(
                "--percentile {p}: expected a value between 50 and 100 (e.g. 99.99)"
            )));
        }
    }
    let pack = opts
        .pack
        .as_deref()
        .map(|v| crate::pack::Pack::parse("--pack", v))
        .transpose()
        .map_err(|e| Failure::BadInput(format!("{e:#}")))?
        .unwrap_or(crate::pack::Pack::RowMajor);
    let blob = read_blob(&opts.model)?;
    let (input, _) = read_input(&opts.calibration)?;
    let (steps, features) = (input.shape[1], input.shape[2]);
    if steps == 0 {
        return Err(Failure::input(&opts.calibration, "no time steps"));
    }
    let windows: Vec<Vec<f32>> = input
        .data
        .chunks_exact(steps * features)
        .map(<[f32]>::to_vec)
        .collect();
    let (quantized, report) = quantize(
        blob.bytes(),
        &windows,
        Options {
            mode,
            percentile: opts.percentile,
        },
    )
    .map_err(|e| Failure::input(&opts.model, format!("{e:#}")))?;
    let quantized = pack
        .apply(&quantized)
        .map_err(|e| Failure::input(&opts.model, format!("{e:#}")))?;
    io::atomic::write_atomic(&opts.output, &quantized)?;
    if opts.json {
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| Failure::Internal(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    print_report(&opts.model, &opts.output, &opts.mode, &report);
    Ok(())
}

fn print_report(input: &Path, output: &Path, mode: &str, r: &crate::quantize::Report) {
    println!("{} -> {} ({mode})", input.display(), output.display());
    println!(
        "{:>5}  {:>12} {:>12} {:>14}",
        "after", "max abs", "rmse", "max / range"
    );
    for l in &r.layers {
        println!(
            "{:>5}  {:>12.4e} {:>12.4e} {:>13.3}%",
            format!("L{}", l.index),
            l.stats.max_abs,
            l.stats.rmse,
            100.0 * l.stats.max_rel_range
        );
    }
    println!(
        "output: max abs {:.4e}, rmse {:.4e}, max relative to the f32 output range {:.3}% (range {:.4})",
        r.output.max_abs,
        r.output.rmse,
        100.0 * r.output.max_rel_range,
        r.output.range
    );
    println!(
        "blob: {} B -> {} B ({:.1}%)",
        r.f32_bytes,
        r.quantized_bytes,
        100.0 * r.quantized_bytes as f64 / r.f32_bytes as f64
    );
}
