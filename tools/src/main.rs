//! `edgernn`: inspect and run edgernn model blobs.
//!
//! Every failure prints `error: <file>: <what went wrong>` and exits 2 for bad input, 1 for an
//! internal failure; outputs are written atomically.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edgernn_tools::cli::{self, Failure};

#[derive(Parser)]
#[command(
    name = "edgernn",
    version,
    about = "Run recurrent neural networks from edgernn model blobs"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a model's layers, shapes, parameters and memory needs.
    Inspect {
        /// The model blob (.ern).
        model: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Convert a Keras (.keras, .h5) or ONNX (.onnx) model to an edgernn blob.
    Import {
        /// The model file.
        model: PathBuf,
        /// The blob to write (.ern).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run a model and compare with the expected output (e.g. the framework's own); exits 1
    /// when any value is outside the tolerance.
    Verify {
        /// The model blob (.ern).
        model: PathBuf,
        /// Input .npy (or .csv), [batch, time, features].
        #[arg(long)]
        input: PathBuf,
        /// Expected output .npy, in the model's output shape.
        #[arg(long)]
        expected: PathBuf,
        /// |got - expected| / max(1, |expected|) must stay below this.
        #[arg(long, default_value_t = 1e-5)]
        tol: f32,
        /// Input and expected output are [time, batch, ...] (PyTorch batch_first=False).
        #[arg(long)]
        time_major: bool,
    },
    /// Quantize an f32 blob, calibrated on data, and report its error against f32.
    Quantize {
        /// The f32 model blob (.ern).
        model: PathBuf,
        /// Calibration windows: .npy [batch, time, features] or [time, features], or a CSV.
        #[arg(long)]
        calibration: PathBuf,
        /// int8 (integer only), int16 (integer only, int16 activations) or int8-weights.
        #[arg(long)]
        mode: String,
        /// The quantized blob to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Clip activation ranges to this percentile (e.g. 99.99) instead of min/max.
        #[arg(long)]
        percentile: Option<f64>,
        /// Weight layout of the recurrent layers: row-major (default) or interleaved4
        /// (pre-packed for the kernels, format version 3; units a multiple of 4).
        #[arg(long)]
        pack: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a blob as a Rust or C source file for firmware (aligned static bytes and typed
    /// size constants), optionally with host-computed test vectors.
    Export {
        /// The model blob (.ern).
        model: PathBuf,
        /// Rust output file.
        #[arg(long)]
        rust: Option<PathBuf>,
        /// C header output file.
        #[arg(long)]
        c: Option<PathBuf>,
        /// Embed this input (.npy/.csv) and the host's per-step outputs for it.
        #[arg(long)]
        vectors: Option<PathBuf>,
        /// Embed this series (CSV with timestamp,value) and the host's anomaly scores for it
        /// (models with detector parameters).
        #[arg(long)]
        detect: Option<PathBuf>,
        /// Only the first N rows of --detect.
        #[arg(long)]
        detect_rows: Option<usize>,
        /// Write the blob with this weight layout: row-major (as it is) or interleaved4
        /// (pre-packed for the kernels, format version 3; integer blobs, units a multiple of 4).
        #[arg(long)]
        pack: Option<String>,
        /// Also write `PLAN`, the model loaded now, as a `static` (with --rust): firmware that
        /// runs it links no loader and keeps no `Model` value in RAM.
        #[arg(long)]
        plan: bool,
    },
    /// Run a model on an input file and print or save its output.
    Run {
        /// The model blob (.ern).
        model: PathBuf,
        /// Input: .npy float32 [batch, time, features] or [time, features], or a CSV with one
        /// sequence (rows = time steps, columns = features, header optional).
        #[arg(long)]
        input: PathBuf,
        /// Output file (.npy or .csv); printed as CSV on stdout when absent.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Feed the input one time step at a time through the streaming API (same numbers as
        /// the sequence call, bit for bit).
        #[arg(long)]
        stream: bool,
        /// Stream and output the model's output after every time step, [batch, time, width].
        #[arg(long)]
        per_step: bool,
        /// Compare the output with this .npy (e.g. what Keras computed) and fail unless every
        /// value is within the tolerance.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Tolerance for --expect: |got - expected| / max(1, |expected|) must stay below it.
        #[arg(long, default_value_t = 1e-5)]
        tolerance: f32,
    },
    /// Time a model on this machine (single thread): ns per step and effective GFLOP/s.
    Bench {
        /// The model blob (.ern).
        model: PathBuf,
        /// stream: one step() per sample, state carried; seq: one sequence call per window;
        /// batch: one step_batch() per sample for all --streams. Default: batch with
        /// --streams above 1, else seq.
        #[arg(long)]
        mode: Option<String>,
        /// Steps per timed sample (the window length in seq mode).
        #[arg(long, default_value_t = 100)]
        steps: usize,
        /// Independent streams advanced one sample each: together (batch), or round robin
        /// (stream, seq).
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// Least time spent timing, in seconds (after a warm-up; at least 11 samples).
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Score a directory of detector results (`<category>/<name>.csv` with an anomaly_score
    /// column) with the Numenta Anomaly Benchmark's windows, for NAB's three profiles.
    Evaluate {
        /// The results directory.
        #[arg(long)]
        results: PathBuf,
        /// NAB's labels/combined_windows.json.
        #[arg(long)]
        labels: PathBuf,
        /// Score at this fixed threshold instead of NAB's best one per profile.
        #[arg(long)]
        threshold: Option<f64>,
        /// Print one JSON object (with per-file raw scores) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Train a SimpleRNN/LSTM/GRU model on a CSV time series and write its blob.
    #[cfg(feature = "train")]
    Train(Box<cli::train::TrainArgs>),
    /// Stream a CSV series through a model's anomaly detector: one score and flag per row.
    Detect {
        /// A forecasting model blob with detector parameters (.ern).
        model: PathBuf,
        /// CSV with a `timestamp` column and the value column.
        #[arg(long)]
        data: PathBuf,
        /// The value column.
        #[arg(long, default_value = "value")]
        column: String,
        /// Scores CSV to write: timestamp,value,anomaly_score,flag.
        #[arg(short, long)]
        output: PathBuf,
        /// Also draw the series, the score and the alarms as a PNG.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// NAB combined_windows.json: shade this file's labelled windows in the plot.
        #[arg(long)]
        labels: Option<PathBuf>,
    },
    /// Run the Numenta Anomaly Benchmark protocol on a NAB-style data directory.
    #[cfg(feature = "train")]
    Nab(Box<cli::nab::NabArgs>),
    /// Generate text (or values) with a model whose output is fed back as its next input.
    Generate(Box<cli::generate::GenerateArgs>),
}

fn main() -> ExitCode {
    cli::install_panic_hook();
    let args = Args::parse();
    let result = match args.command {
        Command::Inspect { model, json } => cli::inspect::run(&model, json),
        Command::Import { model, output } => cli::import::run(&model, &output),
        Command::Export {
            model,
            rust,
            c,
            vectors,
            detect,
            detect_rows,
            pack,
            plan,
        } => cli::export::run(&cli::export::ExportOptions {
            model,
            rust,
            c,
            vectors,
            detect,
            detect_rows,
            pack,
            plan,
        }),
        Command::Quantize {
            model,
            calibration,
            mode,
            output,
            percentile,
            pack,
            json,
        } => cli::quantize::run(&cli::quantize::QuantizeOptions {
            model,
            calibration,
            mode,
            output,
            percentile,
            pack,
            json,
        }),
        Command::Verify {
            model,
            input,
            expected,
            tol,
            time_major,
        } => cli::verify::run(&cli::verify::VerifyOptions {
            model,
            input,
            expected,
            tolerance: tol,
            time_major,
        }),
        Command::Run {
            model,
            input,
            output,
            stream,
            per_step,
            expect,
            tolerance,
        } => cli::run::run(&cli::run::RunOptions {
            model,
            input,
            output,
            stream,
            per_step,
            expect,
            tolerance,
        }),
        Command::Bench {
            model,
            mode,
            steps,
            streams,
            seconds,
            json,
        } => cli::bench::run(&cli::bench::BenchOptions {
            model,
            mode: mode.unwrap_or_else(|| if streams > 1 { "batch" } else { "seq" }.into()),
            steps,
            streams,
            seconds,
            json,
        }),
        Command::Evaluate {
            results,
            labels,
            threshold,
            json,
        } => cli::evaluate::run(&cli::evaluate::EvaluateOptions {
            results,
            labels,
            threshold,
            json,
        }),
        #[cfg(feature = "train")]
        Command::Train(args) => cli::train::run(&args),
        Command::Detect {
            model,
            data,
            column,
            output,
            plot,
            labels,
        } => cli::detect::run(&cli::detect::DetectOptions {
            model,
            data,
            column,
            output,
            plot,
            labels,
        }),
        #[cfg(feature = "train")]
        Command::Nab(args) => cli::nab::run(&args),
        Command::Generate(args) => cli::generate::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Mismatch(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Internal(message)) => {
            eprintln!("error: internal: {message}");
            ExitCode::from(1)
        }
    }
}
