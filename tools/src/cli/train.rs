//! `edgernn train`: a CSV time series (or a text) to a trained, verified blob (and optionally a
//! quantized one), with a report.

use std::path::PathBuf;

use edgernn::format::{Activation, Cell};

use super::Failure;
use crate::io;
use crate::train::{self, OptimizerKind, Task, TrainConfig, TrainError};

/// The options of `edgernn train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// CSV file with a header row; rows are time steps in order. For --task next-token, a
    /// UTF-8 text file; for --task classify with --text, a CSV with one text per row.
    #[arg(long)]
    pub data: PathBuf,
    /// forecast (the target `--horizon` rows ahead), classify (class ids 0..N-1; with --text,
    /// of each row's text), or next-token (a character model of a text file: Embedding ->
    /// recurrent -> Dense softmax, vocabulary stored in the blob, for `edgernn generate`), or
    /// autoencode (reconstruct each window of the --features: encoder -> RepeatVector ->
    /// decoder -> Dense per step; the per-window error scores anomalies).
    #[arg(long, default_value = "forecast")]
    pub task: String,
    /// Classify text: the CSV column holding each row's text (the label column is --target,
    /// default `label`, class ids 0..N-1). Texts are read as characters, the last --window
    /// kept, shorter ones left-padded with token 0 (U+0000).
    #[arg(long)]
    pub text: Option<String>,
    /// Text models: the Embedding's output width.
    #[arg(long, default_value_t = 16)]
    pub embedding: usize,
    /// The blob to write (.ern).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Use only the first N data rows (a probationary period, say); later rows are never read.
    #[arg(long)]
    pub rows: Option<usize>,
    /// Input columns, comma-separated names (or 1-based numbers). Default: every numeric
    /// column except the timestamp (and the target when classifying).
    #[arg(long, value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// The target column. Optional when the file has a single numeric column.
    #[arg(long)]
    pub target: Option<String>,
    /// A timestamp column to leave out of the features.
    #[arg(long)]
    pub timestamp: Option<String>,
    /// Time steps per window.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Rows between a window's last row and the predicted one (default 1 for forecast, 0 for
    /// classify: the label of the window's last row).
    #[arg(long)]
    pub horizon: Option<usize>,
    /// The last fraction of rows held out for validation (chronological split).
    #[arg(long, default_value_t = 0.2)]
    pub val_split: f64,
    /// rnn, lstm or gru.
    #[arg(long, default_value = "lstm")]
    pub cell: String,
    /// Units per recurrent layer.
    #[arg(long, default_value_t = 32)]
    pub units: usize,
    /// Stacked recurrent layers.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Bidirectional recurrent layers (merge concat); the model then needs whole windows.
    #[arg(long)]
    pub bidirectional: bool,
    /// Hidden Dense layers (relu) before the output layer, comma-separated widths.
    #[arg(long, value_delimiter = ',')]
    pub dense: Vec<usize>,
    /// Cell activation: tanh, relu, sigmoid, hard_sigmoid or linear.
    #[arg(long, default_value = "tanh")]
    pub activation: String,
    /// GRU variant: true (Keras 3 default, PyTorch) or false (the original paper).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub reset_after: bool,
    /// adam or adamw.
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Most epochs to train.
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Stop after this many epochs without a better validation loss, keeping the best (0: never).
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    /// Rescale gradients whose global L2 norm exceeds this (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub clip_norm: f64,
    /// Seed for the initial weights and the batch order: same seed, same run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write a quantized blob (int8, int16 or int8-weights), calibrated on training
    /// windows, next to the output as `NAME.<mode>.ern`.
    #[arg(long)]
    pub quantize: Option<String>,
    /// Write the loss curve as a PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Attach the streaming anomaly detector's parameters (`edgernn detect`, firmware) to the
    /// blob; needs a one-feature forecaster with horizon 1.
    #[arg(long)]
    pub detector: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No per-epoch progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Threads for candle's matrix products. Recurrent models are sequences of small
    /// products, where threads cost more than they give: one is the fastest up to ~128
    /// units. `RAYON_NUM_THREADS`, when set, wins.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

fn option_error(option: &str, value: &str, expected: &str) -> Failure {
    Failure::BadInput(format!("{option} {value}: expected {expected}"))
}

fn parse_activation(name: &str) -> Option<Activation> {
    Some(match name {
        "tanh" => Activation::Tanh,
        "relu" => Activation::Relu,
        "sigmoid" => Activation::Sigmoid,
        "hard_sigmoid" => Activation::HardSigmoid,
        "linear" => Activation::Linear,
        _ => return None,
    })
}

/// Parses the command line into a training configuration.
///
/// # Errors
/// An option with a value outside its choices (exit 2).
pub fn config(a: &TrainArgs) -> Result<TrainConfig, Failure> {
    let task = match a.task.as_str() {
        "forecast" => Task::Forecast,
        "classify" => Task::Classify,
        "next-token" => Task::NextToken,
        "autoencode" => Task::Autoencode,
        other => {
            return Err(option_error(
                "--task",
                other,
                "forecast, classify, next-token or autoencode",
            ))
        }
    };
    if a.text.is_some() && task != Task::Classify {
        return Err(Failure::BadInput(
            "--text is for --task classify (next-token reads the whole file as text)".into(),
        ));
    }
    let mut c = TrainConfig::new(a.data.clone(), task);
    c.columns.features.clone_from(&a.features);
    c.columns.target.clone_from(&a.target);
    c.columns.timestamp.clone_from(&a.timestamp);
    c.window = a.window;
    c.max_rows = a.rows;
    if let Some(h) = a.horizon {
        c.horizon = h;
    }
    c.val_split = a.val_split;
    c.cell = match a.cell.as_str() {
        "rnn" | "simplernn" => Cell::SimpleRnn,
        "lstm" => Cell::Lstm,
        "gru" => Cell::Gru {
            reset_after: a.reset_after,
        },
        other => return Err(option_error("--cell", other, "rnn, lstm or gru")),
    };
    c.units = a.units;
    c.layers = a.layers;
    c.bidirectional = a.bidirectional;
    c.dense.clone_from(&a.dense);
    c.activation = parse_activation(&a.activation).ok_or_else(|| {
        option_error(
            "--activation",
            &a.activation,
            "tanh, relu, sigmoid, hard_sigmoid or linear",
        )
    })?;
    c.optimizer = match a.optimizer.as_str() {
        "adam" => OptimizerKind::Adam,
        "adamw" => OptimizerKind::AdamW,
        other => return Err(option_error("--optimizer", other, "adam or adamw")),
    };
    c.learning_rate = a.learning_rate;
    c.weight_decay = a.weight_decay;
    c.batch_size = a.batch_size;
    c.epochs = a.epochs;
    c.patience = a.patience;
    if !(a.clip_norm >= 0.0 && a.clip_norm.is_finite()) {
        return Err(option_error(
            "--clip-norm",
            &a.clip_norm.to_string(),
            "a number >= 0",
        ));
    }
    c.clip_norm = (a.clip_norm > 0.0).then_some(a.clip_norm);
    c.seed = a.seed;
    c.quantize = super::quantize::quantize_option(a.quantize.as_deref())?;
    c.progress = !a.quiet;
    c.text.clone_from(&a.text);
    c.embedding = a.embedding;
    Ok(c)
}

/// The quantized blob's path: `model.ern` -> `model.int8.ern`.
pub fn quantized_path(output: &std::path::Path, mode: &str) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    output.with_file_name(format!("{stem}.{mode}.ern"))
}

/// Runs `edgernn train`.
///
/// # Errors
/// Bad data or options (exit 2) naming the file or option; internal failures (exit 1).
pub fn run(a: &TrainArgs) -> Result<(), Failure> {
    let cfg = config(a)?;
    io::atomic::ensure_not_same_file(&a.data, &a.output)?;
    if std::env::var_os("RAYON_NUM_THREADS").is_none() && a.threads > 0 {
        // candle reads this variable at every matrix product (its `get_num_threads`); set
        // here, on the main thread, before anything has started another thread.
        std::env::set_var("RAYON_NUM_THREADS", a.threads.to_string());
    }
    if a.detector && (cfg.task != Task::Forecast || cfg.horizon != 1) {
        return Err(Failure::BadInput(
            "--detector needs --task forecast with --horizon 1 (it scores one-step forecasts)"
                .into(),
        ));
    }
    let mut outcome = train::train(&cfg).map_err(|e| match e {
        TrainError::Input(m) => Failure::BadInput(m),
        TrainError::Internal(m) => Failure::Internal(m),
    })?;
    if a.detector {
        let params = crate::detect::default_params(cfg.window as u32, outcome.report.rows);
        let attach = |blob: &[u8]| {
            crate::detect::with_detector(blob, params).map_err(|e| {
                Failure::input(
                    &a.data,
                    format!("--detector: {e:#} (use one feature column)"),
                )
            })
        };
        outcome.blob = attach(&outcome.blob)?;
        if let Some(q) = outcome.quantized.take() {
            outcome.quantized = Some(attach(&q)?);
        }
    }
    io::atomic::write_atomic(&a.output, &outcome.blob)?;
    let mut written = vec![a.output.clone()];
    if let (Some(q), Some(mode)) = (&outcome.quantized, &a.quantize) {
        let path = quantized_path(&a.output, mode);
        io::atomic::ensure_not_same_file(&a.data, &path)?;
        io::atomic::write_atomic(&path, q)?;
        written.push(path);
    }
    if let Some(plot) = &a.plot {
        io::atomic::ensure_not_same_file(&a.data, plot)?;
        let png = train::plot::loss_curve_png(&outcome.report.history, outcome.report.best_epoch)
            .map_err(|e| Failure::Internal(format!("encoding the plot: {e}")))?;
        io::atomic::write_atomic(plot, &png)?;
        written.push(plot.clone());
    }
    let r = &outcome.report;
    if a.json {
        let text = serde_json::to_string_pretty(r).map_err(|e| Failure::Internal(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    print_report(r, &written);
    Ok(())
}

fn print_report(r: &train::Report, written: &[PathBuf]) {
    println!(
        "{}: {} {} x{}{} on {} -> {}, window {}, horizon {}",
        r.data,
        r.cell,
        r.units,
        r.layers,
        if r.bidirectional {
            " bidirectional"
        } else {
            ""
        },
        r.features.join(","),
        r.target,
        r.window,
        r.horizon
    );
    println!(
        "windows: {} training (up to line {}), {} validation (from line {}); {} parameters",
        r.train_windows, r.last_train_line, r.val_windows, r.first_val_line, r.parameters
    );
    println!(
        "trained {} epochs in {:.1} s ({:.0} windows/s); kept epoch {} (val loss {:.6})",
        r.epochs_run, r.train_seconds, r.windows_per_second, r.best_epoch, r.best_val_loss
    );
    if let Some(f) = &r.forecast {
        println!(
            "validation: MAE {:.6}  RMSE {:.6}   last-value baseline: MAE {:.6}  RMSE {:.6}",
            f.mae, f.rmse, f.baseline_mae, f.baseline_rmse
        );
    }
    if let Some(a) = &r.reconstruction {
        print_reconstruction(a);
    }
    if let Some(c) = &r.classification {
        println!(
            "validation: accuracy {:.4}   majority-class baseline {:.4}",
            c.accuracy, c.baseline_accuracy
        );
        if !c.confusion.is_empty() {
            println!("confusion (rows: actual, columns: predicted):");
        }
        for (i, row) in c.confusion.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|n| format!("{n:>6}")).collect();
            println!("  {i:>3} {}", cells.join(""));
        }
    }
    if let Some(t) = &r.text {
        println!(
            "vocabulary: {} characters, embedding {}{}",
            t.vocabulary_size,
            t.embedding_dim,
            t.bits_per_char
                .map(|b| format!("; validation {b:.3} bits per character"))
                .unwrap_or_default()
        );
        if let (Some(prompt), Some(sample)) = (&t.sample_prompt, &t.sample) {
            println!(
                "sample (temperature 1, seed {}): {prompt:?} -> {sample:?}",
                r.seed
            );
        }
    }
    println!(
        "blob: {} B, core vs candle on validation: max scaled difference {:.2e}",
        r.blob_bytes, r.parity_max_scaled_error
    );
    if let Some(q) = &r.quantized {
        let metric = match (&q.forecast, &q.classification, &q.reconstruction) {
            (Some(f), _, _) => format!("MAE {:.6}  RMSE {:.6}", f.mae, f.rmse),
            (_, Some(c), _) => format!("accuracy {:.4}", c.accuracy),
            (_, _, Some(a)) => format!("MAE {:.6}  RMSE {:.6}", a.mae, a.rmse),
            _ => String::new(),
        };
        println!("{}: {} B, validation {metric}", q.mode, q.blob_bytes);
        if let Some(a) = &q.reconstruction {
            print_window_errors("  training windows", &a.train_window_errors);
            print_window_errors("  validation windows", &a.val_window_errors);
        }
    }
    for w in written {
        println!("wrote {}", w.display());
    }
}

fn print_window_errors(what: &str, e: &train::autoencode::WindowErrors) {
    let quantiles: Vec<String> = e
        .quantiles
        .iter()
        .map(|(q, v)| format!("q{} {v:.6}", q * 100.0))
        .collect();
    println!(
        "{what} ({}): per-window MAE mean {:.6}  {}  max {:.6}",
        e.windows,
        e.mean,
        quantiles.join("  "),
        e.max
    );
}

fn print_reconstruction(a: &train::autoencode::Reconstruction) {
    println!(
        "validation: reconstruction MAE {:.6}  RMSE {:.6}   training-mean baseline: MAE {:.6}  \
         RMSE {:.6}   window-mean baseline: MAE {:.6}  RMSE {:.6}",
        a.mae, a.rmse, a.baseline_mae, a.baseline_rmse, a.window_mean_mae, a.window_mean_rmse
    );
    print_window_errors("training windows", &a.train_window_errors);
    print_window_errors("validation windows", &a.val_window_errors);
}
