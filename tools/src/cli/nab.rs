//! `edgernn nab`: the Numenta Anomaly Benchmark protocol on a directory laid out like NAB's
//! `data/`: per file, train a forecaster on the probationary rows only, stream the whole file
//! through the on-device detector, and write NAB's results files. One global configuration for
//! every file; no labels are read unless `--labels` asks for the score at the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use edgernn::format::{Cell, DetectorParams};

use super::detect::{labels_key, read_series, write_scores};
use super::{load_model, Failure};
use crate::blob_file::AlignedBlob;
use crate::detect;
use crate::io::atomic::write_atomic;
use crate::nab::{labels, score};
use crate::train::{self, Task, TrainConfig};

/// The options of `edgernn nab`.
#[derive(Debug, Clone, clap::Args)]
pub struct NabArgs {
    /// A directory of `<category>/<name>.csv` files with columns `timestamp,value`.
    #[arg(long)]
    pub data: PathBuf,
    /// Where the results go: `<category>/<name>.csv` with `timestamp,value,anomaly_score`.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Score the results with NAB's `combined_windows.json` at the end (as `edgernn evaluate`).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Keep each file's model (with its detector parameters) here as `<category>/<name>.ern`;
    /// a model already there is reused instead of trained (delete it to retrain).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// rnn, lstm or gru.
    #[arg(long, default_value = "lstm")]
    pub cell: String,
    #[arg(long, default_value_t = 16)]
    pub units: usize,
    /// Past samples per forecast.
    #[arg(long, default_value_t = 24)]
    pub window: usize,
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    #[arg(long, default_value_t = 3e-3)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run the detector on a quantized model (int8, int16 or int8-weights), calibrated on the
    /// probationary rows, as a microcontroller would.
    #[arg(long)]
    pub quantize: Option<String>,
    /// Train the models to forecast the change from the last sample rather than the value.
    #[arg(long)]
    pub change: bool,
    /// Files processed at once (each trains on one thread).
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Forecast errors in the short-term average.
    #[arg(long, default_value_t = detect::SHORT_WINDOW)]
    pub short_window: u32,
    /// Memory of the long-term error statistics, in samples.
    #[arg(long, default_value_t = detect::LONG_WINDOW)]
    pub long_window: u32,
    /// Score at which the detector's flag rises.
    #[arg(long, default_value_t = detect::FLAG_ON)]
    pub flag_on: f32,
    /// Samples after an alarm with the score held at 0, as a fraction of the probationary
    /// period (the only length a device knows about a stream before it runs).
    #[arg(long, default_value_t = detect::REFRACTORY_FRACTION)]
    pub refractory: f64,
    /// Forecasts scored 0 at the start, as a fraction of the probationary period.
    #[arg(long, default_value_t = detect::WARMUP_FRACTION)]
    pub warmup: f64,
}

/// One file's outcome.
struct FileResult {
    key: String,
    rows: usize,
    probation: usize,
    alarms: usize,
    trained_seconds: Option<f64>,
    ram: usize,
    timestamps: Vec<labels::Timestamp>,
    scores: Vec<f64>,
}

fn find_files(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let read = |d: &Path| {
        std::fs::read_dir(d).map_err(|e| Failure::input(d, format!("cannot read directory: {e}")))
    };
    let mut files = Vec::new();
    for category in read(dir)? {
        let category = category.map_err(|e| Failure::input(dir, e))?.path();
        if !category.is_dir() {
            continue;
        }
        for file in read(&category)? {
            let file = file.map_err(|e| Failure::input(&category, e))?.path();
            if file.extension().is_some_and(|e| e == "csv") {
                files.push(file);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Failure::input(
            dir,
            "no <category>/<name>.csv files (expected NAB's data/ layout)",
        ));
    }
    Ok(files)
}

fn detector_params(a: &NabArgs, probation: usize) -> DetectorParams {
    let defaults = detect::default_params(a.window as u32, probation);
    DetectorParams {
        short_window: a.short_window,
        long_window: a.long_window,
        flag_on: a.flag_on,
        flag_off: defaults.flag_off.min(a.flag_on),
        refractory: detect::refractory_for(a.refractory, probation),
        warmup: detect::refractory_for(a.warmup, probation),
        forecasts_change: a.change,
        ..defaults
    }
}

fn train_config(a: &NabArgs, data: &Path, rows: usize) -> Result<TrainConfig, Failure> {
    let mut c = TrainConfig::new(data.to_path_buf(), Task::Forecast);
    c.max_rows = Some(rows);
    c.target_change = a.change;
    c.columns.features = Some(vec!["value".into()]);
    c.columns.target = Some("value".into());
    c.columns.timestamp = Some("timestamp".into());
    c.window = a.window;
    c.cell = match a.cell.as_str() {
        "rnn" | "simplernn" => Cell::SimpleRnn,
        "lstm" => Cell::Lstm,
        "gru" => Cell::Gru { reset_after: true },
        other => {
            return Err(Failure::BadInput(format!(
                "--cell {other}: expected rnn, lstm or gru"
            )))
        }
    };
    c.units = a.units;
    c.epochs = a.epochs;
    c.patience = 8;
    c.batch_size = 32;
    c.learning_rate = a.learning_rate;
    c.seed = a.seed;
    c.progress = false;
    c.quantize = super::quantize::quantize_option(a.quantize.as_deref())?;
    Ok(c)
}

fn process(a: &NabArgs, data: &Path) -> Result<FileResult, Failure> {
    let key = labels_key(data);
    let series = read_series(data, "value")?;
    let rows = series.values.len();
    let probation = score::probation_rows(rows);
    let params = detector_params(a, probation);
    let cached = a
        .models
        .as_ref()
        .map(|m| m.join(&key).with_extension("ern"));
    let started = Instant::now();
    let (blob, trained_seconds) = match cached.as_ref().filter(|p| p.is_file()) {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| Failure::input(path, format!("cannot read: {e}")))?;
            (bytes, None)
        }
        None => {
            let outcome =
                train::train(&train_config(a, data, probation)?).map_err(|e| match e {
                    train::TrainError::Input(m) => Failure::BadInput(m),
                    train::TrainError::Internal(m) => Failure::Internal(m),
                })?;
            let blob = outcome.quantized.unwrap_or(outcome.blob);
            (blob, Some(started.elapsed().as_secs_f64()))
        }
    };
    let blob = detect::with_detector(&blob, params)
        .map_err(|e| Failure::Internal(format!("{key}: {e:#}")))?;
    if let Some(path) = &cached {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Failure::input(dir, format!("cannot create: {e}")))?;
        }
        write_atomic(path, &blob)?;
    }
    let aligned = AlignedBlob::from_bytes(&blob);
    let model = load_model(Path::new(&key), &aligned)?;
    let detections = detect::stream(&model, &series.values)
        .map_err(|e| Failure::Internal(format!("{key}: {e}")))?;
    let out = a.output.join(&key);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::input(dir, format!("cannot create: {e}")))?;
    }
    write_scores(&out, &series, &detections, false)?;
    Ok(FileResult {
        key,
        rows,
        probation,
        alarms: detections
            .iter()
            .skip(probation)
            .filter(|d| d.alarm)
            .count(),
        trained_seconds,
        ram: detect::device_ram_bytes(&model, &params),
        timestamps: series.timestamps,
        scores: detections.iter().map(|d| f64::from(d.score)).collect(),
    })
}

/// Runs `edgernn nab`.
///
/// # Errors
/// Bad input naming the file (exit 2); training failures (exit 1).
pub fn run(a: &NabArgs) -> Result<(), Failure> {
    if a.jobs == 0 || a.window == 0 {
        return Err(Failure::BadInput(
            "--jobs and --window must be at least 1".into(),
        ));
    }
    let probe = detector_params(a, score::PROBATION_CAP_ROWS);
    if edgernn::detect::check_params(&probe).is_err()
        || !(a.refractory >= 0.0 && a.refractory.is_finite())
        || !(a.warmup >= 0.0 && a.warmup.is_finite())
        || a.window > detect::WINDOW_CAPACITY
    {
        return Err(Failure::BadInput(format!(
            "detector options out of range: --window 1..={}, --short-window 1..={}, \
             --long-window >= 1, --flag-on 0..=1, --refractory and --warmup >= 0",
            detect::WINDOW_CAPACITY,
            edgernn::detect::MAX_SHORT_WINDOW
        )));
    }
    // Option errors before any work (the configuration does not depend on the file).
    train_config(a, &a.data, 0)?;
    let files = find_files(&a.data)?;
    // Recurrent models this small train fastest on one thread; files run side by side instead.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<FileResult, Failure>>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..a.jobs.min(files.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(file) = files.get(i) else { break };
                let result = process(a, file);
                if let Ok(r) = &result {
                    eprintln!(
                        "{}: {} rows, trained on {}{}, {} alarms after probation",
                        r.key,
                        r.rows,
                        r.probation,
                        r.trained_seconds
                            .map_or(" (cached model)".to_string(), |s| format!(" in {s:.1} s")),
                        r.alarms
                    );
                }
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(result);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| Failure::Internal("a worker thread panicked".into()))?;
    let mut ram = 0;
    let mut done = Vec::new();
    for r in results {
        let r = r.ok_or_else(|| Failure::Internal("a file was not processed".into()))??;
        ram = ram.max(r.ram);
        done.push(r);
    }
    println!(
        "{} files in {:.1} s; results in {}; largest detector RAM {} B",
        files.len(),
        started.elapsed().as_secs_f64(),
        a.output.display(),
        ram
    );
    if let Some(labels_path) = &a.labels {
        let all = labels::read_windows(labels_path).map_err(Failure::BadInput)?;
        let mut windows = Vec::new();
        for r in &done {
            let w = all
                .get(&r.key)
                .ok_or_else(|| Failure::input(labels_path, format!("no entry for {}", r.key)))?;
            windows.push(labels::window_rows(&r.timestamps, w));
        }
        let inputs: Vec<score::FileInput<'_>> = done
            .iter()
            .zip(&windows)
            .map(|(r, w)| score::FileInput {
                name: &r.key,
                scores: &r.scores,
                windows: w,
            })
            .collect();
        let profiles = score::score_all_profiles(&inputs).map_err(Failure::Internal)?;
        super::evaluate::print_profiles(&profiles);
    }
    Ok(())
}
