//! `edgernn train`: fit a SimpleRNN, LSTM or GRU network on a CSV time series with candle and
//! write a blob the core runs with the same numbers.
//!
//! - [`data`]: columns, windows, the chronological split (no leakage) and normalisation.
//! - [`model`]: the network in candle ops, the runtime's equations exactly, seeded init.
//! - [`fused`]: one recurrent direction over a whole sequence as one candle op (hand-written
//!   backward pass): where training spends its time.
//! - [`export`]: the blob (Normalization first, target de-normalisation folded in).
//! - [`plot`]: the loss-curve PNG.
//! - [`autoencode`]: the sequence autoencoder's architecture and its reconstruction report.
//! - [`text`]: text tasks (next character, text classification): vocabularies, token windows,
//!   the Embedding network, with their own data and report parts.
//!
//! Every run checks itself: the exported blob is run by the core on the validation windows
//! and its largest difference from candle's outputs is reported (`parity_max_scaled_error`).

pub mod autoencode;
pub mod data;
pub mod export;
pub mod fused;
pub mod model;
pub mod plot;
pub mod text;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use edgernn::format::{Activation, Cell, QuantMode};
use serde::Serialize;

use crate::blob_file::AlignedBlob;
use crate::runner::{run_window, Feed};
use data::{Columns, Norm, Series, Split};
use model::{Net, NetSpec, Rng};

/// What the network learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// The target `horizon` rows after the window's last row (MSE on normalised values).
    Forecast,
    /// The class id of the target at the window's last row plus `horizon` (cross-entropy);
    /// with [`TrainConfig::text`], the class of a row's text ([`text`]).
    Classify,
    /// The next character of a text file ([`text`]).
    #[serde(rename = "next-token")]
    NextToken,
    /// Reconstruct the window itself, every feature at every step (MSE on normalised values):
    /// a sequence autoencoder whose reconstruction error scores anomalies ([`autoencode`]).
    Autoencode,
}

/// The optimizer (both candle's `AdamW`; Adam is AdamW without weight decay).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    AdamW,
}

/// Everything a training run needs.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub data: PathBuf,
    /// Use only the first this many data rows (a probationary period, say); `None`: all.
    pub max_rows: Option<usize>,
    /// Forecast the change of the target from the window's last row instead of its value
    /// (horizon 1 only): what the anomaly detector's `forecasts_change` models need.
    pub target_change: bool,
    pub task: Task,
    pub columns: Columns,
    pub window: usize,
    pub horizon: usize,
    /// The last fraction of rows used for validation.
    pub val_split: f64,
    pub cell: Cell,
    pub units: usize,
    pub layers: usize,
    pub bidirectional: bool,
    pub dense: Vec<usize>,
    pub activation: Activation,
    pub optimizer: OptimizerKind,
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay (ignored for Adam).
    pub weight_decay: f64,
    pub batch_size: usize,
    pub epochs: usize,
    /// Stop after this many epochs without a better validation loss (0 = never).
    pub patience: usize,
    /// Rescale gradients whose global L2 norm exceeds this.
    pub clip_norm: Option<f64>,
    pub seed: u64,
    pub quantize: Option<QuantMode>,
    /// Print a progress line per epoch on stderr.
    pub progress: bool,
    /// Text classification: the CSV column holding each row's text ([`text`]).
    pub text: Option<String>,
    /// Text models: the Embedding's output width.
    pub embedding: usize,
}

impl TrainConfig {
    /// Defaults for `data`: an LSTM(32) forecaster over windows of 32 rows.
    pub fn new(data: PathBuf, task: Task) -> Self {
        Self {
            data,
            max_rows: None,
            target_change: false,
            task,
            columns: Columns {
                classify: task == Task::Classify,
                no_target: task == Task::Autoencode,
                ..Columns::default()
            },
            window: 32,
            horizon: if task == Task::Forecast { 1 } else { 0 },
            val_split: 0.2,
            cell: Cell::Lstm,
            units: 32,
            layers: 1,
            bidirectional: false,
            dense: Vec::new(),
            activation: Activation::Tanh,
            optimizer: OptimizerKind::Adam,
            learning_rate: 1e-3,
            weight_decay: 0.01,
            batch_size: 64,
            epochs: 50,
            patience: 10,
            clip_norm: Some(1.0),
            seed: 0,
            quantize: None,
            progress: true,
            text: None,
            embedding: 16,
        }
    }
}

/// Why a run failed.
#[derive(Debug)]
pub enum TrainError {
    /// The data or the options are wrong (the message names the file or the option).
    Input(String),
    /// Something else failed.
    Internal(String),
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Input(m) | Self::Internal(m) => f.write_str(m),
        }
    }
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        Self::Internal(format!("candle: {e}"))
    }
}

impl From<anyhow::Error> for TrainError {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(format!("{e:#}"))
    }
}

/// One epoch's numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Epoch {
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (normalised units / nats).
    pub loss: f64,
    pub val_loss: f64,
    pub windows_per_second: f64,
    pub seconds: f64,
}

/// Forecast metrics in the target's raw units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Forecast {
    pub mae: f64,
    pub rmse: f64,
    /// The naive forecast: the target's value at the window's last row.
    pub baseline_mae: f64,
    pub baseline_rmse: f64,
}

/// Classification metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub accuracy: f64,
    /// Predicting the training part's most frequent class.
    pub baseline_accuracy: f64,
    /// `confusion[actual][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// A quantized blob's results on the validation windows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantizedReport {
    pub mode: String,
    pub blob_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Forecast>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconstruction: Option<autoencode::Reconstruction>,
}

/// The final report (`--json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub task: Task,
    pub data: String,
    pub features: Vec<String>,
    /// The target column (an autoencoder's: its features, comma-separated).
    pub target: String,
    pub rows: usize,
    pub window: usize,
    pub horizon: usize,
    pub train_windows: usize,
    pub val_windows: usize,
    /// The CSV line of the last row any training window reads or predicts.
    pub last_train_line: u64,
    /// The CSV line of the first row any validation window reads.
    pub first_val_line: u64,
    pub cell: String,
    pub units: usize,
    pub layers: usize,
    pub bidirectional: bool,
    pub parameters: usize,
    pub seed: u64,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub best_val_loss: f64,
    pub history: Vec<Epoch>,
    pub train_seconds: f64,
    pub windows_per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Forecast>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconstruction: Option<autoencode::Reconstruction>,
    /// `max |blob - candle| / max(1, |candle|)` over the validation windows' outputs.
    pub parity_max_scaled_error: f64,
    pub blob_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantized: Option<QuantizedReport>,
    /// Text models: vocabulary, bits per character, a generated sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<text::TextReport>,
}

/// A finished run.
pub struct Outcome {
    pub blob: Vec<u8>,
    pub quantized: Option<Vec<u8>>,
    pub report: Report,
    /// The validation windows in raw units, `[window, features]` row-major each.
    pub val_windows: Vec<Vec<f32>>,
    /// Candle's outputs for them: forecasts or reconstructions (`[window, features]`
    /// row-major) in raw units, or class probabilities.
    pub val_outputs: Vec<Vec<f32>>,
}

/// The prepared data: normalised inputs and targets, and the split.
struct Prepared {
    series: Series,
    /// The targets are changes from the previous row (`TrainConfig::target_change`).
    change: bool,
    split: Split,
    norm: Norm,
    target_norm: Option<Norm>,
    classes: usize,
    /// `[rows, features]` normalised.
    x: Vec<f32>,
    /// Normalised forecast targets, or class ids.
    y: Vec<f32>,
}

fn prepare(cfg: &TrainConfig) -> Result<Prepared, TrainError> {
    let mut series = data::load_csv(&cfg.data, &cfg.columns).map_err(TrainError::Input)?;
    if let Some(rows) = cfg.max_rows {
        series.truncate(rows);
    }
    if cfg.target_change {
        if cfg.task != Task::Forecast || cfg.horizon != 1 {
            return Err(TrainError::Input(
                "forecasting the change needs --task forecast and --horizon 1".into(),
            ));
        }
        // Row t's target becomes its change from row t - 1: the window ending at t - 1
        // then predicts exactly `value[t] - value[t - 1]`.
        for t in (1..series.rows).rev() {
            series.target[t] -= series.target[t - 1];
        }
        if let Some(first) = series.target.first_mut() {
            *first = 0.0;
        }
    }
    let split = data::split(series.rows, cfg.window, cfg.horizon, cfg.val_split)
        .map_err(|e| TrainError::Input(format!("{}: {e}", cfg.data.display())))?;
    let norm = Norm::fit(&series.features, series.width(), split.boundary);
    let x = norm.apply(&series.features);
    let (target_norm, classes, y) = match cfg.task {
        // The outputs are the inputs: their normalisation, no separate targets.
        Task::Autoencode => (Some(norm.clone()), series.width(), Vec::new()),
        Task::Forecast => {
            let t = Norm::fit(&series.target, 1, split.boundary);
            let y = t.apply(&series.target);
            (Some(t), 1, y)
        }
        Task::Classify | Task::NextToken => {
            let classes = data::class_count(&series).map_err(TrainError::Input)?;
            (None, classes, series.target.clone())
        }
    };
    Ok(Prepared {
        change: cfg.target_change,
        series,
        split,
        norm,
        target_norm,
        classes,
        x,
        y,
    })
}

impl Prepared {
    fn width(&self) -> usize {
        self.series.width()
    }

    /// Normalised input windows ending at `ends`, as one time-major `[window, n, features]`
    /// tensor.
    fn batch(&self, ends: &[usize]) -> candle_core::Result<Tensor> {
        let (w, f) = (self.split.window, self.width());
        let mut data = Vec::with_capacity(ends.len() * w * f);
        for step in 0..w {
            for &t in ends {
                let row = self.split.start(t) + step;
                data.extend_from_slice(&self.x[row * f..(row + 1) * f]);
            }
        }
        Tensor::from_vec(data, (w, ends.len(), f), &Device::Cpu)
    }

    fn raw_window(&self, t: usize) -> Vec<f32> {
        let f = self.width();
        self.series.features[self.split.start(t) * f..(t + 1) * f].to_vec()
    }

    /// The normalised window ending at `t`, `[window, features]` row-major.
    fn window(&self, t: usize) -> &[f32] {
        let f = self.width();
        &self.x[self.split.start(t) * f..(t + 1) * f]
    }

    /// What the network's output for [`Prepared::batch`]`(ends)` is compared with.
    fn targets(&self, ends: &[usize], task: Task) -> candle_core::Result<Tensor> {
        let h = self.split.horizon;
        match task {
            // The batch itself, in the rows `Net::reconstruct` gives.
            Task::Autoencode => {
                let x = self.batch(ends)?;
                x.reshape((self.split.window * ends.len(), self.width()))
            }
            Task::Forecast => {
                let v: Vec<f32> = ends.iter().map(|&t| self.y[t + h]).collect();
                Tensor::from_vec(v, (ends.len(), 1), &Device::Cpu)
            }
            Task::Classify | Task::NextToken => {
                let v: Vec<u32> = ends.iter().map(|&t| self.y[t + h] as u32).collect();
                Tensor::from_vec(v, ends.len(), &Device::Cpu)
            }
        }
    }
}

/// The network's output for a training batch, comparable with [`Prepared::targets`].
fn outputs(net: &Net, x: &Tensor, task: Task, track: bool) -> candle_core::Result<Tensor> {
    match task {
        Task::Autoencode => net.reconstruct(x, track),
        _ => net.forward(x, track),
    }
}

/// Network outputs (normalised forecasts, logits, or normalised reconstructions
/// `[window, features]` row-major) for the windows ending at `ends`.
fn predict(
    net: &Net,
    p: &Prepared,
    ends: &[usize],
    task: Task,
) -> candle_core::Result<Vec<Vec<f32>>> {
    /// Windows per inference batch (memory only; results do not depend on it).
    const EVAL_BATCH: usize = 256;
    let mut out = Vec::with_capacity(ends.len());
    for chunk in ends.chunks(EVAL_BATCH) {
        let y = outputs(net, &p.batch(chunk)?, task, false)?;
        if task == Task::Autoencode {
            // Time-major rows `[step * n + window]` to one `[window, features]` per window.
            let rows = y.to_vec2::<f32>()?;
            out.extend((0..chunk.len()).map(|w| {
                (0..p.split.window)
                    .flat_map(|step| rows[step * chunk.len() + w].iter().copied())
                    .collect::<Vec<f32>>()
            }));
        } else {
            out.extend(y.to_vec2::<f32>()?);
        }
    }
    Ok(out)
}

/// The task's loss on outputs from [`predict`], in f64.
fn loss_of(task: Task, p: &Prepared, ends: &[usize], outputs: &[Vec<f32>]) -> f64 {
    let h = p.split.horizon;
    let total: f64 = ends
        .iter()
        .zip(outputs)
        .map(|(&t, o)| match task {
            Task::Autoencode => {
                let x = p.window(t);
                let se: f64 = o
                    .iter()
                    .zip(x)
                    .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                    .sum();
                se / x.len().max(1) as f64
            }
            Task::Forecast => (f64::from(o[0]) - f64::from(p.y[t + h])).powi(2),
            Task::Classify | Task::NextToken => {
                let max = o.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let lse = o
                    .iter()
                    .map(|&v| f64::from(v - max).exp())
                    .sum::<f64>()
                    .ln()
                    + f64::from(max);
                lse - f64::from(o[p.y[t + h] as usize])
            }
        })
        .sum();
    total / ends.len().max(1) as f64
}

fn forecast_metrics(p: &Prepared, ends: &[usize], raw: &[Vec<f32>]) -> Forecast {
    let h = p.split.horizon;
    let (mut ae, mut se, mut bae, mut bse) = (0f64, 0f64, 0f64, 0f64);
    for (&t, o) in ends.iter().zip(raw) {
        let actual = f64::from(p.series.target[t + h]);
        let d = f64::from(o[0]) - actual;
        // The last-value baseline: no change, or the window's last value.
        let last = if p.change { 0.0 } else { p.series.target[t] };
        let b = f64::from(last) - actual;
        ae += d.abs();
        se += d * d;
        bae += b.abs();
        bse += b * b;
    }
    let n = ends.len().max(1) as f64;
    Forecast {
        mae: ae / n,
        rmse: (se / n).sqrt(),
        baseline_mae: bae / n,
        baseline_rmse: (bse / n).sqrt(),
    }
}

pub(crate) fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

fn classification_metrics(p: &Prepared, ends: &[usize], probs: &[Vec<f32>]) -> Classification {
    let h = p.split.horizon;
    let mut counts = vec![0usize; p.classes];
    for &t in &p.split.train {
        counts[p.y[t + h] as usize] += 1;
    }
    let majority = argmax(&counts.iter().map(|&c| c as f32).collect::<Vec<_>>());
    let mut confusion = vec![vec![0usize; p.classes]; p.classes];
    let (mut right, mut base) = (0usize, 0usize);
    for (&t, o) in ends.iter().zip(probs) {
        let actual = p.y[t + h] as usize;
        let predicted = argmax(o);
        confusion[actual][predicted] += 1;
        right += usize::from(actual == predicted);
        base += usize::from(actual == majority);
    }
    let n = ends.len().max(1) as f64;
    Classification {
        accuracy: right as f64 / n,
        baseline_accuracy: base as f64 / n,
        confusion,
    }
}

pub(crate) fn mode_name(mode: QuantMode) -> &'static str {
    match mode {
        QuantMode::Int8 => "int8",
        QuantMode::Int16 => "int16",
        QuantMode::Int8Weights => "int8-weights",
        _ => "f32",
    }
}

/// Runs a blob on raw windows with the core.
fn run_blob(blob: &[u8], windows: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, TrainError> {
    let aligned = AlignedBlob::from_bytes(blob);
    let model = edgernn::Model::from_bytes(aligned.bytes())
        .map_err(|e| TrainError::Internal(format!("the exported blob does not load: {e}")))?;
    windows
        .iter()
        .map(|w| {
            run_window(&model, w, Feed::Sequence)
                .map_err(|e| TrainError::Internal(format!("running the exported blob: {e}")))
        })
        .collect()
}

pub(crate) fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// What [`fit`] leaves: the network holds the best epoch's weights.
pub(crate) struct Fit {
    pub(crate) history: Vec<Epoch>,
    pub(crate) best_epoch: usize,
    pub(crate) best_val_loss: f64,
    /// Time in training batches (validation excluded).
    pub(crate) train_seconds: f64,
}

/// Rescales the gradients when their global L2 norm exceeds `max_norm` (Keras' and
/// PyTorch's `clipnorm` over all variables).
pub(crate) fn clip_gradients(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[candle_core::Var],
    max_norm: f64,
) -> candle_core::Result<()> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    let norm = sq.sqrt();
    if norm > max_norm {
        let scale = max_norm / norm;
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), g.affine(scale, 0.0)?);
            }
        }
    }
    Ok(())
}

/// The training loop: epochs of shuffled batches, validation after each, early stopping;
/// restores the best epoch's weights.
fn fit(cfg: &TrainConfig, p: &Prepared, net: &Net, rng: &mut Rng) -> Result<Fit, TrainError> {
    fit_epochs(
        cfg,
        &net.vars(),
        rng,
        &p.split.train,
        |chunk| {
            let x = p.batch(chunk)?;
            let target = p.targets(chunk, cfg.task)?;
            let out = outputs(net, &x, cfg.task, true)?;
            Ok(match cfg.task {
                Task::Forecast | Task::Autoencode => candle_nn::loss::mse(&out, &target)?,
                Task::Classify | Task::NextToken => candle_nn::loss::cross_entropy(&out, &target)?,
            })
        },
        || {
            let val_out = predict(net, p, &p.split.val, cfg.task)?;
            Ok(loss_of(cfg.task, p, &p.split.val, &val_out))
        },
    )
}

/// The epoch loop every task shares: Adam(W) over `vars`, the `train` items shuffled into
/// mini-batches whose loss `batch_loss` computes, gradient clipping, the validation loss after
/// every epoch, early stopping, progress lines, and the best epoch's weights restored.
pub(crate) fn fit_epochs(
    cfg: &TrainConfig,
    vars: &[Var],
    rng: &mut Rng,
    train: &[usize],
    mut batch_loss: impl FnMut(&[usize]) -> Result<Tensor, TrainError>,
    mut validation_loss: impl FnMut() -> Result<f64, TrainError>,
) -> Result<Fit, TrainError> {
    let mut opt = AdamW::new(
        vars.to_vec(),
        ParamsAdamW {
            lr: cfg.learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            // Keras' Adam epsilon.
            eps: 1e-7,
            weight_decay: match cfg.optimizer {
                OptimizerKind::Adam => 0.0,
                OptimizerKind::AdamW => cfg.weight_decay,
            },
        },
    )?;
    let snapshot = || -> candle_core::Result<Vec<Tensor>> {
        vars.iter().map(|v| v.as_tensor().copy()).collect()
    };
    let mut order = train.to_vec();
    let mut history: Vec<Epoch> = Vec::new();
    let mut best = (f64::INFINITY, 0usize, snapshot()?);
    let started = Instant::now();
    let mut train_time = 0f64;
    for epoch in 1..=cfg.epochs {
        let epoch_start = Instant::now();
        rng.shuffle(&mut order);
        let mut loss_sum = 0f64;
        for chunk in order.chunks(cfg.batch_size) {
            let loss = batch_loss(chunk)?;
            let loss_value = loss.to_scalar::<f32>()?;
            if !loss_value.is_finite() {
                return Err(TrainError::Input(format!(
                    "{}: the training loss became {loss_value} in epoch {epoch}; try a lower \
                     --learning-rate or --clip-norm",
                    cfg.data.display()
                )));
            }
            loss_sum += f64::from(loss_value) * chunk.len() as f64;
            let mut grads = loss.backward()?;
            if let Some(max_norm) = cfg.clip_norm {
                clip_gradients(&mut grads, vars, max_norm)?;
            }
            opt.step(&grads)?;
        }
        let seconds = epoch_start.elapsed().as_secs_f64();
        train_time += seconds;
        let val_loss = validation_loss()?;
        let improved = val_loss < best.0;
        if improved {
            best = (val_loss, epoch, snapshot()?);
        }
        let e = Epoch {
            epoch,
            loss: loss_sum / order.len().max(1) as f64,
            val_loss,
            windows_per_second: order.len() as f64 / seconds.max(1e-9),
            seconds,
        };
        let stop = cfg.patience > 0 && epoch - best.1 >= cfg.patience;
        if cfg.progress {
            let per_epoch = started.elapsed().as_secs_f64() / epoch as f64;
            eprintln!(
                "epoch {epoch:>4}/{}  loss {:.6}  val {:.6}{}  {:.0} windows/s  ETA {}",
                cfg.epochs,
                e.loss,
                e.val_loss,
                if improved { " *" } else { "  " },
                e.windows_per_second,
                format_duration(if stop {
                    0.0
                } else {
                    per_epoch * (cfg.epochs - epoch) as f64
                })
            );
        }
        history.push(e);
        if stop {
            if cfg.progress {
                eprintln!(
                    "early stop: no better validation loss for {} epochs; keeping epoch {}",
                    cfg.patience, best.1
                );
            }
            break;
        }
    }
    for (v, t) in vars.iter().zip(&best.2) {
        v.set(t)?;
    }
    Ok(Fit {
        history,
        best_epoch: best.1,
        best_val_loss: best.0,
        train_seconds: train_time,
    })
}

/// Trains a network as `cfg` says, exports it and measures it.
///
/// # Errors
/// [`TrainError::Input`] for unreadable data or options that do not fit it (naming the file
/// or option); [`TrainError::Internal`] otherwise.
pub fn train(cfg: &TrainConfig) -> Result<Outcome, TrainError> {
    let opt_err = |m: String| Err(TrainError::Input(m));
    if cfg.units == 0 || cfg.layers == 0 || cfg.batch_size == 0 || cfg.epochs == 0 {
        return opt_err("--units, --layers, --batch-size and --epochs must be at least 1".into());
    }
    // Normalization, the recurrent layers (an autoencoder's encoder and decoder, and its
    // RepeatVector), the Dense layers: at most what `Model::from_bytes` loads (the builder,
    // the runner and firmware using the default capacity).
    let (recurrent, extra) = match cfg.task {
        Task::Autoencode => (2 * cfg.layers, 1),
        _ => (cfg.layers, 0),
    };
    let limit = edgernn::model::DEFAULT_LAYERS.min(edgernn::MAX_LAYERS);
    if recurrent + extra + cfg.dense.len() + 2 > limit {
        return opt_err(format!(
            "--layers {} and --dense give {} layers in all (Normalization, recurrent{}, Dense); \
             at most {limit} are supported",
            cfg.layers,
            recurrent + extra + cfg.dense.len() + 2,
            if extra > 0 {
                " twice: encoder and decoder, RepeatVector"
            } else {
                ""
            }
        ));
    }
    if cfg.task == Task::Autoencode {
        if cfg.columns.target.is_some() {
            return opt_err(
                "--target: --task autoencode reconstructs the --features and has no target".into(),
            );
        }
        if cfg.horizon != 0 {
            return opt_err("--horizon: --task autoencode reconstructs the window itself".into());
        }
    }
    if cfg.dense.contains(&0) {
        return opt_err("--dense widths must be at least 1".into());
    }
    if !(cfg.learning_rate > 0.0 && cfg.learning_rate.is_finite()) {
        return opt_err(format!(
            "--learning-rate {}: expected a positive number",
            cfg.learning_rate
        ));
    }
    if cfg.activation == Activation::Softmax {
        return opt_err("--activation softmax is not a cell activation".into());
    }
    if matches!(cfg.quantize, Some(QuantMode::Int8 | QuantMode::Int16))
        && cfg.cell != Cell::SimpleRnn
        && matches!(cfg.activation, Activation::Relu | Activation::Linear)
    {
        // Checked before training, not after: the integer LSTM/GRU needs bounded activations.
        return opt_err(format!(
            "--quantize {}: integer LSTM/GRU need a bounded --activation (tanh, sigmoid, \
             hard_sigmoid); use int8-weights",
            mode_name(cfg.quantize.unwrap_or(QuantMode::Int8))
        ));
    }
    if cfg.task == Task::NextToken || cfg.text.is_some() {
        return text::train(cfg);
    }
    let p = prepare(cfg)?;
    if cfg.task == Task::Classify
        && cfg.horizon == 0
        && p.series.feature_names.contains(&p.series.target_name)
    {
        return Err(TrainError::Input(format!(
            "{}: the target '{}' is also a feature: with --horizon 0 the label would be an input",
            cfg.data.display(),
            p.series.target_name
        )));
    }
    let spec = NetSpec {
        inputs: p.width(),
        cell: cfg.cell,
        units: cfg.units,
        layers: recurrent,
        bidirectional: cfg.bidirectional,
        activation: cfg.activation,
        dense: cfg.dense.clone(),
        outputs: p.classes,
        softmax: cfg.task == Task::Classify,
        repeat: (cfg.task == Task::Autoencode).then_some(model::Repeat {
            after: cfg.layers,
            times: cfg.window,
        }),
    };
    let mut rng = Rng::new(cfg.seed);
    let net = Net::new(spec, &mut rng)?;
    let parameters = net.vars().iter().map(|v| v.elem_count()).sum();
    let Fit {
        history,
        best_epoch,
        best_val_loss,
        train_seconds,
    } = fit(cfg, &p, &net, &mut rng)?;

    // Candle's outputs on the validation windows, in the units the blob gives.
    let ends = &p.split.val;
    let val_out = predict(&net, &p, ends, cfg.task)?;
    let val_outputs: Vec<Vec<f32>> = match (&p.target_norm, cfg.task) {
        (Some(t), Task::Forecast | Task::Autoencode) => {
            val_out.iter().map(|o| t.invert(o)).collect()
        }
        _ => {
            let logits =
                Tensor::from_vec(val_out.concat(), (val_out.len(), p.classes), &Device::Cpu)?;
            model::probabilities(&logits)?.to_vec2::<f32>()?
        }
    };
    let val_windows: Vec<Vec<f32>> = ends.iter().map(|&t| p.raw_window(t)).collect();
    let blob = export::build_blob(&net, &p.norm, p.target_norm.as_ref())?;
    let blob_out = run_blob(&blob, &val_windows)?;
    if let Some((got, expected)) = blob_out
        .iter()
        .zip(&val_outputs)
        .find(|(g, e)| g.len() != e.len())
    {
        return Err(TrainError::Internal(format!(
            "the exported blob gives {} values per window, candle {}",
            got.len(),
            expected.len()
        )));
    }
    let parity = parity_error(&blob_out, &val_outputs);
    let (forecast, classification) = match cfg.task {
        Task::Forecast => (Some(forecast_metrics(&p, ends, &val_outputs)), None),
        Task::Classify | Task::NextToken => {
            (None, Some(classification_metrics(&p, ends, &val_outputs)))
        }
        Task::Autoencode => (None, None),
    };
    // An autoencoder's per-window errors on (a sample of) the training windows: where an
    // anomaly threshold comes from.
    let error_sample = autoencode::error_sample(&p.split.train);
    let reconstruction = match cfg.task {
        Task::Autoencode => {
            let norm = &p.norm;
            let train_out: Vec<Vec<f32>> = predict(&net, &p, &error_sample, cfg.task)?
                .iter()
                .map(|o| norm.invert(o))
                .collect();
            Some(autoencode::report(
                &p,
                ends,
                &val_outputs,
                &error_sample,
                &train_out,
            ))
        }
        _ => None,
    };

    let (quantized, quantized_report) = match cfg.quantize {
        None => (None, None),
        Some(mode) => {
            /// Calibration windows taken evenly from the training part.
            const CALIBRATION_WINDOWS: usize = 256;
            let train = &p.split.train;
            let step = train.len().div_ceil(CALIBRATION_WINDOWS).max(1);
            let windows: Vec<Vec<f32>> = train
                .iter()
                .step_by(step)
                .map(|&t| p.raw_window(t))
                .collect();
            let (q, _) = crate::quantize::quantize(
                &blob,
                &windows,
                crate::quantize::Options {
                    mode,
                    percentile: None,
                },
            )
            .map_err(|e| TrainError::Input(format!("--quantize {}: {e:#}", mode_name(mode))))?;
            let q_out = run_blob(&q, &val_windows)?;
            let reconstruction = match cfg.task {
                Task::Autoencode => {
                    let raw: Vec<Vec<f32>> =
                        error_sample.iter().map(|&t| p.raw_window(t)).collect();
                    let train_out = run_blob(&q, &raw)?;
                    Some(autoencode::report(
                        &p,
                        ends,
                        &q_out,
                        &error_sample,
                        &train_out,
                    ))
                }
                _ => None,
            };
            let report = QuantizedReport {
                mode: mode_name(mode).into(),
                blob_bytes: q.len(),
                forecast: (cfg.task == Task::Forecast).then(|| forecast_metrics(&p, ends, &q_out)),
                classification: (cfg.task == Task::Classify)
                    .then(|| classification_metrics(&p, ends, &q_out)),
                reconstruction,
            };
            (Some(q), Some(report))
        }
    };

    let s = &p.split;
    let last_train = s.train.iter().map(|t| t + s.horizon).max().unwrap_or(0);
    let first_val = s.val.iter().map(|&t| s.start(t)).min().unwrap_or(0);
    let trained: usize = history.len() * s.train.len();
    let report = Report {
        task: cfg.task,
        data: cfg.data.display().to_string(),
        features: p.series.feature_names.clone(),
        // An autoencoder's targets are its features.
        target: match cfg.task {
            Task::Autoencode => p.series.feature_names.join(","),
            _ => p.series.target_name.clone(),
        },
        rows: p.series.rows,
        window: s.window,
        horizon: s.horizon,
        train_windows: s.train.len(),
        val_windows: s.val.len(),
        last_train_line: p.series.lines[last_train],
        first_val_line: p.series.lines[first_val],
        cell: cell_name(cfg.cell).into(),
        units: cfg.units,
        layers: cfg.layers,
        bidirectional: cfg.bidirectional,
        parameters,
        seed: cfg.seed,
        epochs_run: history.len(),
        best_epoch,
        best_val_loss,
        history,
        train_seconds,
        windows_per_second: trained as f64 / train_seconds.max(1e-9),
        forecast,
        classification,
        reconstruction,
        parity_max_scaled_error: parity,
        blob_bytes: blob.len(),
        quantized: quantized_report,
        text: None,
    };
    Ok(Outcome {
        blob,
        quantized,
        report,
        val_windows,
        val_outputs,
    })
}

/// `max |blob - candle| / max(1, |candle|)` over outputs, infinite when any is NaN: the
/// parity every training run reports.
pub(crate) fn parity_error(blob_out: &[Vec<f32>], candle_out: &[Vec<f32>]) -> f64 {
    blob_out
        .iter()
        .flatten()
        .zip(candle_out.iter().flatten())
        .map(|(&g, &e)| f64::from((g - e).abs() / e.abs().max(1.0)))
        .fold(
            0f64,
            |m, v| if v.is_nan() { f64::INFINITY } else { m.max(v) },
        )
}

/// The cell's name as the CLI spells it.
pub fn cell_name(cell: Cell) -> &'static str {
    match cell {
        Cell::SimpleRnn => "rnn",
        Cell::Lstm => "lstm",
        Cell::Gru { reset_after: true } => "gru",
        Cell::Gru { reset_after: false } => "gru (reset_after=false)",
    }
}
