//! `edgernn bench`: how fast a model runs on this machine, single-threaded.
//!
//! * `stream`: one [`Model::step`] per sample, state carried (a sensor stream);
//! * `seq`: one [`Model::run_sequence`] call over `--steps` samples.
//!
//! * `batch`: one [`Model::step_batch`] per sample advancing all `--streams` streams together
//!   (the default with `--streams` above 1).
//!
//! With `--streams N`, N independent streams of the model are advanced one sample each (each
//! with its own state): together in `batch` mode, round robin in the others; the figures are
//! per stream-step.
//!
//! Every timed sample runs `--steps` steps; after a warm-up, samples are taken for at least
//! `--seconds` (and at least [`MIN_SAMPLES`]), and the median is reported, with the fastest
//! sample and the 90th percentile to show the noise. Effective GFLOP/s = 2 x MACs per step / ns
//! per step, MACs per step summed over the layers: LSTM 4H(I+H), GRU 3H(I+H), SimpleRNN
//! H(I+H) (per direction), Dense units x inputs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgernn::format::Cell;
use edgernn::model::Word;
use edgernn::{LayerKind, Model};
use serde::Serialize;

use super::inspect::mode_name;
use super::{load_model, read_blob, Failure};

/// Fewest timed samples behind a median.
pub const MIN_SAMPLES: usize = 11;
/// Time spent running the model before timing starts.
const WARM_UP: Duration = Duration::from_millis(200);

/// How to feed the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One `step()` per sample.
    Stream,
    /// One sequence call per window.
    Seq,
    /// One `step_batch()` per sample for every stream.
    Batch,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Seq => "seq",
            Self::Batch => "batch",
        }
    }
}

/// What `edgernn bench` was asked to do.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub model: PathBuf,
    /// `stream` or `seq`.
    pub mode: String,
    /// Steps per timed sample (the window length in `seq` mode).
    pub steps: usize,
    /// Independent streams advanced together.
    pub streams: usize,
    /// Least time spent timing.
    pub seconds: f64,
    pub json: bool,
}

#[derive(Serialize)]
struct Report {
    model: String,
    mode: &'static str,
    quant_mode: &'static str,
    kernel: &'static str,
    steps: usize,
    streams: usize,
    samples: usize,
    macs_per_step: u64,
    ns_per_step: f64,
    ns_per_step_min: f64,
    ns_per_step_p90: f64,
    gflops: f64,
    stream_steps_per_second: f64,
}

/// Multiply-accumulates of one time step of the whole model (see the module docs).
pub fn macs_per_step(model: &Model<'_>) -> u64 {
    (0..model.layer_count())
        .filter_map(|i| model.layer_summary(i))
        .map(|s| {
            let (units, inputs) = (s.units as u64, s.input_width as u64);
            match s.kind {
                LayerKind::Recurrent {
                    cell,
                    bidirectional,
                    ..
                } => {
                    let gates = match cell {
                        Cell::SimpleRnn => 1,
                        Cell::Lstm => 4,
                        Cell::Gru { .. } => 3,
                    };
                    let directions = if bidirectional.is_some() { 2 } else { 1 };
                    directions * gates * units * (inputs + units)
                }
                LayerKind::Dense => units * inputs,
                // Lookups, copies and one subtract/divide per feature: no MACs.
                LayerKind::Normalization
                | LayerKind::Embedding { .. }
                | LayerKind::RepeatVector { .. } => 0,
            }
        })
        .sum()
}

/// Runs the benchmark and prints its report.
///
/// # Errors
/// Bad input (unreadable or invalid model, bad options, a model that cannot stream in `stream`
/// mode) or a run error.
pub fn run(options: &BenchOptions) -> Result<(), Failure> {
    let mode = match options.mode.as_str() {
        "stream" => Mode::Stream,
        "seq" => Mode::Seq,
        "batch" => Mode::Batch,
        other => {
            return Err(Failure::BadInput(format!(
                "--mode must be stream, seq or batch, not {other:?}"
            )))
        }
    };
    if options.steps == 0 || options.streams == 0 {
        return Err(Failure::BadInput(
            "--steps and --streams must be at least 1".into(),
        ));
    }
    if !(options.seconds.is_finite() && options.seconds >= 0.0) {
        return Err(Failure::BadInput("--seconds must be >= 0".into()));
    }
    let path = options.model.as_path();
    let blob = read_blob(path)?;
    let model = load_model(path, &blob)?;
    if mode != Mode::Seq && !model.is_streamable() {
        return Err(Failure::input(
            path,
            "the model needs whole windows (Bidirectional or go_backwards); use --mode seq",
        ));
    }
    let samples = if model.uses_integer_buffers() {
        time_with::<i32>(&model, path, mode, options)?
    } else {
        time_with::<f32>(&model, path, mode, options)?
    };
    let per_step = |ns: f64| ns / (options.steps * options.streams) as f64;
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    let median = per_step(percentile(&sorted, 0.5));
    let macs = macs_per_step(&model);
    let report = Report {
        model: path.display().to_string(),
        mode: mode.name(),
        quant_mode: mode_name(model.mode()),
        kernel: edgernn::kernels::kernel_name(),
        steps: options.steps,
        streams: options.streams,
        samples: sorted.len(),
        macs_per_step: macs,
        ns_per_step: median,
        ns_per_step_min: per_step(sorted[0]),
        ns_per_step_p90: per_step(percentile(&sorted, 0.9)),
        gflops: 2.0 * macs as f64 / median,
        stream_steps_per_second: 1e9 / median,
    };
    if options.json {
        let text = serde_json::to_string(&report).map_err(|e| Failure::Internal(e.to_string()))?;
        println!("{text}");
    } else {
        println!(
            "{}: {} mode, {}, kernel {}, {} steps x {} stream(s), {} samples",
            report.model,
            report.mode,
            report.quant_mode,
            report.kernel,
            report.steps,
            report.streams,
            report.samples
        );
        println!(
            "  {:.1} ns/step (median; fastest {:.1}, p90 {:.1}), {:.2} GFLOP/s effective ({} MACs/step)",
            report.ns_per_step,
            report.ns_per_step_min,
            report.ns_per_step_p90,
            report.gflops,
            report.macs_per_step
        );
        if report.streams > 1 {
            println!(
                "  {:.0} stream-steps/s ({:.1} ns per stream-step)",
                report.stream_steps_per_second, report.ns_per_step
            );
        }
    }
    Ok(())
}

/// The value at fraction `q` of sorted, non-empty `values` (nearest rank).
fn percentile(values: &[f64], q: f64) -> f64 {
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    values[i.min(values.len() - 1)]
}

/// A fixed pseudo-random input in [-1, 1): the same numbers every run.
fn inputs(len: usize) -> Vec<f32> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Times `steps`-step samples and returns each sample's nanoseconds.
fn time_with<W: Word>(
    model: &Model<'_>,
    path: &Path,
    mode: Mode,
    options: &BenchOptions,
) -> Result<Vec<f64>, Failure> {
    let fail = |e: edgernn::RunError| Failure::input(path, e);
    let features = model.input_features();
    let steps = options.steps;
    let streams = options.streams;
    let xs = inputs(steps * features);
    // Token models read ids: the same numbers spread over the vocabulary.
    let xs = match model.layer_summary(0).map(|s| s.kind) {
        Some(edgernn::LayerKind::Embedding { vocab }) => xs
            .iter()
            .map(|&v| ((((v + 1.0) * 0.5 * vocab as f32) as usize).min(vocab - 1)) as f32)
            .collect(),
        _ => xs,
    };
    let mut states: Vec<Vec<W>> = (0..streams)
        .map(|_| {
            let mut s = vec![W::default(); model.state_len()];
            model.reset_state(&mut s);
            s
        })
        .collect();
    let scratch_len = match mode {
        Mode::Stream => model.step_scratch_len(),
        Mode::Batch => model.batch_scratch_len(streams),
        Mode::Seq => model.sequence_scratch_len(steps).ok_or_else(|| {
            Failure::input(path, "the window is too large for this machine's memory")
        })?,
    };
    let out_len = match mode {
        Mode::Stream => model.output_width(),
        Mode::Batch => model.output_width() * streams,
        Mode::Seq => model.output_len(steps).unwrap_or(0),
    };
    let mut scratch = vec![W::default(); scratch_len];
    let mut out = vec![0.0f32; out_len];
    // Batch mode: every stream's state in one stream-major buffer, and every stream reads the
    // sample the round-robin modes give it (one row per stream).
    let mut batch_states: Vec<W> = states.concat();
    let batch_xs: Vec<f32> = xs
        .chunks_exact(features.max(1))
        .flat_map(|x| x.iter().copied().cycle().take(features * streams))
        .collect();
    let mut sample = |states: &mut [Vec<W>]| -> Result<(), Failure> {
        match mode {
            Mode::Batch => {
                for x in batch_xs.chunks_exact((features * streams).max(1)) {
                    model
                        .step_batch(streams, x, &mut batch_states, &mut scratch, &mut out)
                        .map_err(fail)?;
                }
            }
            Mode::Stream => {
                for x in xs.chunks_exact(features) {
                    for state in states.iter_mut() {
                        model.step(x, state, &mut scratch, &mut out).map_err(fail)?;
                    }
                }
            }
            Mode::Seq => {
                for state in states.iter_mut() {
                    model.reset_state(state);
                    model
                        .run_sequence(&xs, state, &mut scratch, &mut out)
                        .map_err(fail)?;
                }
            }
        }
        std::hint::black_box(&out);
        Ok(())
    };
    let start = Instant::now();
    while start.elapsed() < WARM_UP {
        sample(&mut states)?;
    }
    let budget = Duration::from_secs_f64(options.seconds);
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < MIN_SAMPLES || start.elapsed() < budget {
        let t = Instant::now();
        sample(&mut states)?;
        times.push(t.elapsed().as_nanos() as f64);
    }
    Ok(times)
}
