//! Text for `edgernn train`: character vocabularies, next-token windows, text classification
//! sequences, and the token network `Embedding -> recurrent stack -> Dense softmax`.
//!
//! # Next token (`--task next-token`, a UTF-8 text file)
//!
//! The vocabulary is the sorted distinct characters of the whole file; it is stored in the
//! blob (format version 2), so `edgernn generate` and firmware turn ids into text without a
//! side file. The first `1 - --val-split` of the characters train, the rest validate (no
//! window crosses the cut). Training windows of `--window` characters start every
//! `--window / 2` characters; validation windows every `--window`. Every position of a window
//! predicts the character after it and the loss averages over all of them (the last
//! position's prediction is the window's "next character"; the others teach the same
//! streaming model from shorter contexts at no extra cost). The exported model returns one
//! vector, so it is stepped one character at a time, as generation does.
//!
//! # Text classification (`--task classify --text COLUMN`, a CSV)
//!
//! A header row, a text column (`--text`) and a label column (`--target`, default `label`,
//! class ids `0..N-1`); each row is one sequence. The vocabulary is the distinct characters
//! of all rows (only the alphabet: no label information), after the padding character
//! U+0000 (id 0). A text longer than `--window` keeps its last `--window` characters; a
//! shorter one is left-padded with id 0 (Keras' `pad_sequences` defaults), which is also how
//! to feed the model at inference. The last `--val-split` of the rows validate.
//!
//! `--rows N` keeps the first `N` lines of a next-token text, or the first `N` data rows of a
//! classification CSV.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use edgernn::format::{Blob, Extensions};
use serde::Serialize;

use super::model::{Net, NetSpec, Rng};
use super::{
    argmax, cell_name, fit_epochs, mode_name, parity_error, Classification, Fit, Outcome,
    QuantizedReport, Report, Task, TrainConfig, TrainError,
};
use crate::blob_file::AlignedBlob;
use crate::builder::{write_blob_with, ModelBuilder};
use crate::runner::{run_window, Feed};

/// Token id 0 of text classifiers: left padding of short texts.
pub const PAD: char = '\0';
/// Keras' `Embedding` initialiser: `RandomUniform(-0.05, 0.05)`.
const EMBEDDING_INIT_LIMIT: f64 = 0.05;
/// Characters of validation text the report's sample is primed with.
const SAMPLE_PROMPT_CHARS: usize = 40;
/// Characters the report's sample generates.
const SAMPLE_CHARS: usize = 160;
/// Windows per inference batch (memory only; results do not depend on it).
const EVAL_BATCH: usize = 256;
/// Calibration windows for `--quantize`, taken evenly from the training windows.
const CALIBRATION_WINDOWS: usize = 256;

/// A character vocabulary: token `i` is the `i`-th character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    chars: Vec<char>,
    ids: HashMap<char, u32>,
}

impl Vocabulary {
    /// The sorted distinct characters of `texts`, after `first` if given (the padding token).
    pub fn of_texts<'t>(texts: impl IntoIterator<Item = &'t str>, first: Option<char>) -> Self {
        let mut chars: Vec<char> = texts.into_iter().flat_map(str::chars).collect();
        chars.sort_unstable();
        chars.dedup();
        if let Some(f) = first {
            chars.retain(|&c| c != f);
            chars.insert(0, f);
        }
        let ids = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        Self { chars, ids }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether it has no token.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The token ids of `text`, or the first character (and its 0-based index) not in it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, (char, usize)> {
        text.chars()
            .enumerate()
            .map(|(i, c)| self.ids.get(&c).copied().ok_or((c, i)))
            .collect()
    }

    /// The characters in id order, as the blob stores them.
    pub fn as_string(&self) -> String {
        self.chars.iter().collect()
    }
}

/// What the report says about a text model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextReport {
    /// The characters in token-id order (stored in the blob).
    pub vocabulary: String,
    pub vocabulary_size: usize,
    pub embedding_dim: usize,
    /// Next token: the validation loss in bits per character (`val_loss / ln 2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits_per_char: Option<f64>,
    /// Next token: the prompt of the sample (validation text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_prompt: Option<String>,
    /// Next token: text the f32 blob generates after the prompt (temperature 1, `--seed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
}

/// Windows of token ids with their targets.
struct Windows {
    /// `[n][window]` token ids.
    inputs: Vec<Vec<u32>>,
    /// Next token: `[n][window]` (the token after each position); classify: `[n][1]`.
    targets: Vec<Vec<u32>>,
    train: Vec<usize>,
    val: Vec<usize>,
    /// Next-token windows are scored at every position, classification at the last.
    every_step: bool,
    classes: usize,
    window: usize,
}

/// The data of one text run, with what the report needs about it.
struct TextData {
    vocab: Vocabulary,
    windows: Windows,
    /// Units of the data (characters or rows) and the 1-based lines of the split.
    rows: usize,
    last_train_line: u64,
    first_val_line: u64,
    feature: String,
    target: String,
    /// Next token: the text after the training cut (for the report's sample).
    val_text: Option<String>,
    /// Next token: the most frequent training token (the baseline's guess).
    majority: u32,
}

fn input_error(path: &Path, what: impl std::fmt::Display) -> TrainError {
    TrainError::Input(format!("{}: {what}", path.display()))
}

fn read_text(path: &Path) -> Result<String, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| input_error(path, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        input_error(
            path,
            format!(
                "not UTF-8 text (byte {}): give a text file",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Next-token windows over a text file.
fn next_token_data(cfg: &TrainConfig) -> Result<TextData, TrainError> {
    let path = &cfg.data;
    let mut text = read_text(path)?;
    if let Some(lines) = cfg.max_rows {
        // `--rows`: the first lines of the file.
        let end: usize = text.split_inclusive('\n').take(lines).map(str::len).sum();
        text.truncate(end);
    }
    let vocab = Vocabulary::of_texts([text.as_str()], None);
    let ids = vocab.encode(&text).map_err(|_| {
        TrainError::Internal("a character is missing from its own vocabulary".into())
    })?;
    if vocab.len() < 2 {
        return Err(input_error(
            path,
            "the text needs at least two distinct characters",
        ));
    }
    let w = cfg.window;
    let n = ids.len();
    let boundary = ((n as f64) * (1.0 - cfg.val_split)).round() as usize;
    if w == 0 || !(0.0..1.0).contains(&cfg.val_split) || boundary < w + 1 || n - boundary < w + 1 {
        return Err(input_error(
            path,
            format!(
                "{n} characters are too few for windows of {w} on both sides of the \
                 validation split {} (each side needs at least --window + 1 characters)",
                cfg.val_split
            ),
        ));
    }
    let stride = (w / 2).max(1);
    let mut windows = Windows {
        inputs: Vec::new(),
        targets: Vec::new(),
        train: Vec::new(),
        val: Vec::new(),
        every_step: true,
        classes: vocab.len(),
        window: w,
    };
    let mut push = |start: usize, train: bool| {
        let index = windows.inputs.len();
        windows.inputs.push(ids[start..start + w].to_vec());
        windows.targets.push(ids[start + 1..start + w + 1].to_vec());
        if train {
            windows.train.push(index);
        } else {
            windows.val.push(index);
        }
    };
    // A training window and its targets end before the cut; validation starts at it.
    for start in (0..boundary - w).step_by(stride) {
        push(start, true);
    }
    for start in (boundary..n - w).step_by(w) {
        push(start, false);
    }
    let mut counts = vec![0usize; vocab.len()];
    for &id in &ids[..boundary] {
        counts[id as usize] += 1;
    }
    let majority = argmax(&counts.iter().map(|&c| c as f32).collect::<Vec<_>>()) as u32;
    let line_of = |chars: usize| 1 + text.chars().take(chars).filter(|&c| c == '\n').count() as u64;
    Ok(TextData {
        windows,
        rows: n,
        last_train_line: line_of(boundary.saturating_sub(1)),
        first_val_line: line_of(boundary),
        feature: "char".into(),
        target: "next char".into(),
        val_text: Some(text.chars().skip(boundary).collect()),
        majority,
        vocab,
    })
}

/// Finds a CSV column by exact name, else case-insensitively.
fn column(
    path: &Path,
    header: &csv::StringRecord,
    name: &str,
    option: &str,
) -> Result<usize, TrainError> {
    header
        .iter()
        .position(|h| h == name)
        .or_else(|| header.iter().position(|h| h.eq_ignore_ascii_case(name)))
        .ok_or_else(|| {
            let names: Vec<String> = header.iter().map(|h| format!("'{h}'")).collect();
            input_error(
                path,
                format!(
                    "{option} {name}: no such column; the header has {}",
                    names.join(", ")
                ),
            )
        })
}

/// Text classification sequences from a CSV.
fn classify_data(cfg: &TrainConfig, text_column: &str) -> Result<TextData, TrainError> {
    /// More classes than this is almost surely a mistake (a text in the label column).
    const MAX_CLASSES: usize = 1000;
    let path = &cfg.data;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| input_error(path, format!("cannot read: {e}")))?;
    let header = reader
        .headers()
        .map_err(|e| input_error(path, format!("no header row: {e}")))?
        .clone();
    let text_index = column(path, &header, text_column, "--text")?;
    let target_name = cfg.columns.target.clone().unwrap_or_else(|| "label".into());
    let label_index = column(path, &header, &target_name, "--target")?;
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        if cfg.max_rows.is_some_and(|m| texts.len() >= m) {
            break;
        }
        let record = record.map_err(|e| input_error(path, e))?;
        let line = record.position().map_or(0, csv::Position::line);
        let label = record.get(label_index).unwrap_or("").trim();
        let class = label.parse::<usize>().ok().filter(|&c| c < MAX_CLASSES).ok_or_else(|| {
            input_error(
                path,
                format!("line {line}: label {label:?} is not a class id (an integer 0..{MAX_CLASSES})"),
            )
        })?;
        texts.push(record.get(text_index).unwrap_or("").to_string());
        labels.push(class as u32);
        lines.push(line);
    }
    let rows = texts.len();
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    if classes < 2 {
        return Err(input_error(
            path,
            "the labels have a single class; classification needs at least two",
        ));
    }
    let boundary = ((rows as f64) * (1.0 - cfg.val_split)).round() as usize;
    if boundary == 0 || boundary >= rows || cfg.window == 0 {
        return Err(input_error(
            path,
            format!(
                "{rows} rows leave no training or no validation rows at --val-split {}",
                cfg.val_split
            ),
        ));
    }
    let vocab = Vocabulary::of_texts(texts.iter().map(String::as_str), Some(PAD));
    let w = cfg.window;
    let mut windows = Windows {
        inputs: Vec::with_capacity(rows),
        targets: Vec::with_capacity(rows),
        train: (0..boundary).collect(),
        val: (boundary..rows).collect(),
        every_step: false,
        classes,
        window: w,
    };
    for (text, &label) in texts.iter().zip(&labels) {
        let ids = vocab.encode(text).map_err(|_| {
            TrainError::Internal("a character is missing from its own vocabulary".into())
        })?;
        // Keep the last `w` tokens; left-pad shorter texts with id 0.
        let kept = &ids[ids.len().saturating_sub(w)..];
        let mut input = vec![0u32; w - kept.len()];
        input.extend_from_slice(kept);
        windows.inputs.push(input);
        windows.targets.push(vec![label]);
    }
    let mut counts = vec![0usize; classes];
    for &l in &labels[..boundary] {
        counts[l as usize] += 1;
    }
    let majority = argmax(&counts.iter().map(|&c| c as f32).collect::<Vec<_>>()) as u32;
    Ok(TextData {
        windows,
        rows,
        last_train_line: lines[boundary - 1],
        first_val_line: lines[boundary],
        feature: header.get(text_index).unwrap_or(text_column).to_string(),
        target: header.get(label_index).unwrap_or(&target_name).to_string(),
        val_text: None,
        majority,
        vocab,
    })
}

/// The token network: an embedding table in front of [`Net`].
struct TextNet {
    /// `[vocab, dim]`.
    embedding: Var,
    net: Net,
}

impl TextNet {
    fn new(vocab: usize, dim: usize, spec: NetSpec, rng: &mut Rng) -> candle_core::Result<Self> {
        let table: Vec<f32> = (0..vocab * dim)
            .map(|_| ((2.0 * rng.uniform() - 1.0) * EMBEDDING_INIT_LIMIT) as f32)
            .collect();
        let embedding = Var::from_vec(table, (vocab, dim), &Device::Cpu)?;
        Ok(Self {
            embedding,
            net: Net::new(spec, rng)?,
        })
    }

    fn vars(&self) -> Vec<Var> {
        let mut v = vec![self.embedding.clone()];
        v.extend(self.net.vars());
        v
    }

    /// Logits for windows `[time, batch]` of ids: `[time * batch, classes]` (time-major rows)
    /// for next-token models, `[batch, classes]` for classifiers.
    fn logits(&self, ids: &Tensor, every_step: bool, track: bool) -> candle_core::Result<Tensor> {
        let (steps, batch) = ids.dims2()?;
        let table = if track {
            self.embedding.as_tensor().clone()
        } else {
            self.embedding.as_tensor().detach()
        };
        let dim = table.dim(1)?;
        let x = table
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((steps, batch, dim))?;
        if every_step {
            self.net.forward_every_step(&x, track)
        } else {
            self.net.forward(&x, track)
        }
    }
}

impl Windows {
    /// Time-major `[window, batch]` ids of windows `idx`.
    fn ids(&self, idx: &[usize]) -> candle_core::Result<Tensor> {
        let mut data = Vec::with_capacity(idx.len() * self.window);
        for t in 0..self.window {
            data.extend(idx.iter().map(|&i| self.inputs[i][t]));
        }
        Tensor::from_vec(data, (self.window, idx.len()), &Device::Cpu)
    }

    /// Targets in the row order of [`TextNet::logits`].
    fn targets(&self, idx: &[usize]) -> Vec<u32> {
        if self.every_step {
            (0..self.window)
                .flat_map(|t| idx.iter().map(move |&i| self.targets[i][t]))
                .collect()
        } else {
            idx.iter().map(|&i| self.targets[i][0]).collect()
        }
    }

    fn targets_tensor(&self, idx: &[usize]) -> candle_core::Result<Tensor> {
        let t = self.targets(idx);
        let n = t.len();
        Tensor::from_vec(t, n, &Device::Cpu)
    }

    /// Window `i` as the blob reads it (one token id per step, as f32).
    fn raw(&self, i: usize) -> Vec<f32> {
        self.inputs[i].iter().map(|&id| id as f32).collect()
    }
}

/// Class probabilities for windows `idx`, one row per scored position, in window order
/// (for next-token windows: each window's positions in time order).
fn probabilities(net: &TextNet, w: &Windows, idx: &[usize]) -> candle_core::Result<Vec<Vec<f32>>> {
    let mut out = Vec::new();
    for chunk in idx.chunks(EVAL_BATCH) {
        let logits = net.logits(&w.ids(chunk)?, w.every_step, false)?;
        let p = candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?;
        if w.every_step {
            // Time-major rows to window-major.
            for b in 0..chunk.len() {
                out.extend((0..w.window).map(|t| p[t * chunk.len() + b].clone()));
            }
        } else {
            out.extend(p);
        }
    }
    Ok(out)
}

/// Targets of windows `idx` in the row order of [`probabilities`].
fn window_major_targets(w: &Windows, idx: &[usize]) -> Vec<u32> {
    idx.iter()
        .flat_map(|&i| w.targets[i].iter().copied())
        .collect()
}

/// Mean cross-entropy (nats) of probability rows against targets.
fn cross_entropy(probs: &[Vec<f32>], targets: &[u32]) -> f64 {
    /// The smallest probability a log is taken of (a zero would make the loss infinite).
    const MIN_PROBABILITY: f64 = 1e-12;
    let total: f64 = probs
        .iter()
        .zip(targets)
        .map(|(p, &t)| -f64::from(p[t as usize]).max(MIN_PROBABILITY).ln())
        .sum();
    total / probs.len().max(1) as f64
}

/// Accuracy, majority baseline and (for classifiers) the confusion matrix.
fn metrics(
    probs: &[Vec<f32>],
    targets: &[u32],
    classes: usize,
    majority: u32,
    confusion: bool,
) -> Classification {
    let mut matrix = if confusion {
        vec![vec![0usize; classes]; classes]
    } else {
        Vec::new()
    };
    let (mut right, mut base) = (0usize, 0usize);
    for (p, &t) in probs.iter().zip(targets) {
        let predicted = argmax(p);
        if confusion {
            matrix[t as usize][predicted] += 1;
        }
        right += usize::from(predicted == t as usize);
        base += usize::from(t == majority);
    }
    let n = probs.len().max(1) as f64;
    Classification {
        accuracy: right as f64 / n,
        baseline_accuracy: base as f64 / n,
        confusion: matrix,
    }
}

/// Epochs of shuffled batches with cross-entropy, validation after each, early stopping; the
/// network keeps the best epoch's weights (the same loop as the numeric tasks).
fn fit(cfg: &TrainConfig, d: &TextData, net: &TextNet, rng: &mut Rng) -> Result<Fit, TrainError> {
    let w = &d.windows;
    let val_targets = window_major_targets(w, &w.val);
    fit_epochs(
        cfg,
        &net.vars(),
        rng,
        &w.train,
        |chunk| {
            let logits = net.logits(&w.ids(chunk)?, w.every_step, true)?;
            Ok(candle_nn::loss::cross_entropy(
                &logits,
                &w.targets_tensor(chunk)?,
            )?)
        },
        || Ok(cross_entropy(&probabilities(net, w, &w.val)?, &val_targets)),
    )
}

/// `blob` with `vocabulary` stored in its header (weights and layers unchanged).
///
/// # Errors
/// When `blob` is not a valid blob.
pub fn with_vocabulary(blob: &[u8], vocabulary: &str) -> anyhow::Result<Vec<u8>> {
    let aligned = AlignedBlob::from_bytes(blob);
    let checked = Blob::new_checked(aligned.bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let header = checked
        .decode_header()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let extensions = Extensions {
        vocabulary: Some(vocabulary),
        ..checked.extensions()
    };
    write_blob_with(&header, &extensions, checked.weights())
}

fn build_blob(net: &TextNet, vocab: &Vocabulary) -> anyhow::Result<Vec<u8>> {
    let table = net.embedding.as_tensor().flatten_all()?.to_vec1::<f32>()?;
    let dim = net.embedding.as_tensor().dim(1)?;
    let mut b = ModelBuilder::new(1);
    b.embedding(vocab.len(), dim, &table)?;
    super::export::push_network(&mut b, &net.net, None)?;
    with_vocabulary(&b.build()?, &vocab.as_string())
}

/// The blob's outputs for windows `idx` in the row order of [`probabilities`]: after every
/// step for next-token windows (the model is stepped, as generation does).
fn run_blob(blob: &[u8], w: &Windows, idx: &[usize]) -> Result<Vec<Vec<f32>>, TrainError> {
    let aligned = AlignedBlob::from_bytes(blob);
    let model = edgernn::Model::from_bytes(aligned.bytes())
        .map_err(|e| TrainError::Internal(format!("the exported blob does not load: {e}")))?;
    let feed = if w.every_step {
        Feed::PerStep
    } else {
        Feed::Sequence
    };
    let width = model.output_width();
    let mut rows = Vec::new();
    for &i in idx {
        let out = run_window(&model, &w.raw(i), feed)
            .map_err(|e| TrainError::Internal(format!("running the exported blob: {e}")))?;
        rows.extend(out.chunks(width).map(<[f32]>::to_vec));
    }
    Ok(rows)
}

/// A sample of what the f32 blob writes after the start of the validation text.
fn sample(blob: &[u8], vocab: &Vocabulary, val_text: &str, seed: u64) -> Option<(String, String)> {
    use crate::cli::generate::{generate, Prompt};
    let prompt: String = val_text.chars().take(SAMPLE_PROMPT_CHARS).collect();
    let ids = vocab.encode(&prompt).ok()?;
    let aligned = AlignedBlob::from_bytes(blob);
    let model = edgernn::Model::from_bytes(aligned.bytes()).ok()?;
    let sampling = edgernn::generate::Sampling::Temperature(1.0);
    let g = generate(&model, &Prompt::Tokens(ids), SAMPLE_CHARS, sampling, seed).ok()?;
    Some((prompt, g.text?))
}

/// Trains a text model (`--task next-token`, or `--task classify` with `--text`), exports it
/// with its vocabulary and measures it.
///
/// # Errors
/// [`TrainError::Input`] for unreadable data or options that do not fit it (naming the file
/// or option); [`TrainError::Internal`] otherwise.
pub fn train(cfg: &TrainConfig) -> Result<Outcome, TrainError> {
    if cfg.bidirectional {
        return Err(TrainError::Input(
            "--bidirectional: text models are stepped one token at a time; use a \
             unidirectional stack"
                .into(),
        ));
    }
    if cfg.embedding == 0 {
        return Err(TrainError::Input("--embedding must be at least 1".into()));
    }
    let d = match (cfg.task, &cfg.text) {
        (Task::NextToken, _) => next_token_data(cfg)?,
        (Task::Classify, Some(column)) => classify_data(cfg, column)?,
        _ => {
            return Err(TrainError::Input(
                "text training is --task next-token, or --task classify with --text".into(),
            ))
        }
    };
    let w = &d.windows;
    let spec = NetSpec {
        inputs: cfg.embedding,
        cell: cfg.cell,
        units: cfg.units,
        layers: cfg.layers,
        bidirectional: false,
        activation: cfg.activation,
        dense: cfg.dense.clone(),
        outputs: w.classes,
        softmax: true,
        repeat: None,
    };
    let mut rng = Rng::new(cfg.seed);
    let net = TextNet::new(d.vocab.len(), cfg.embedding, spec, &mut rng)?;
    let parameters = net.vars().iter().map(|v| v.elem_count()).sum();
    let Fit {
        history,
        best_epoch,
        best_val_loss,
        train_seconds,
    } = fit(cfg, &d, &net, &mut rng)?;

    let val_probs = probabilities(&net, w, &w.val)?;
    let val_targets = window_major_targets(w, &w.val);
    let classification = metrics(
        &val_probs,
        &val_targets,
        w.classes,
        d.majority,
        !w.every_step,
    );
    let blob = build_blob(&net, &d.vocab)?;
    let blob_out = run_blob(&blob, w, &w.val)?;
    let parity = parity_error(&blob_out, &val_probs);

    let (quantized, quantized_report) = match cfg.quantize {
        None => (None, None),
        Some(mode) => {
            let step = w.train.len().div_ceil(CALIBRATION_WINDOWS).max(1);
            let windows: Vec<Vec<f32>> = w.train.iter().step_by(step).map(|&i| w.raw(i)).collect();
            let (q, _) = crate::quantize::quantize(
                &blob,
                &windows,
                crate::quantize::Options {
                    mode,
                    percentile: None,
                },
            )
            .map_err(|e| TrainError::Input(format!("--quantize {}: {e:#}", mode_name(mode))))?;
            let q_out = run_blob(&q, w, &w.val)?;
            let report = QuantizedReport {
                mode: mode_name(mode).into(),
                blob_bytes: q.len(),
                forecast: None,
                classification: Some(metrics(
                    &q_out,
                    &val_targets,
                    w.classes,
                    d.majority,
                    !w.every_step,
                )),
                reconstruction: None,
            };
            (Some(q), Some(report))
        }
    };

    let (sample_prompt, sample) = match (&d.val_text, w.every_step) {
        (Some(text), true) => match sample(&blob, &d.vocab, text, cfg.seed) {
            Some((p, s)) => (Some(p), Some(s)),
            None => (None, None),
        },
        _ => (None, None),
    };
    let trained = history.len() * w.train.len();
    // One row per window, as `run_window` returns it: every step's probabilities for
    // next-token windows (`Feed::PerStep`), the class probabilities for classifiers.
    let per_window = if w.every_step { w.window } else { 1 };
    let val_outputs: Vec<Vec<f32>> = val_probs
        .chunks(per_window)
        .map(|rows| rows.concat())
        .collect();
    let val_windows: Vec<Vec<f32>> = w.val.iter().map(|&i| w.raw(i)).collect();
    let report = Report {
        task: cfg.task,
        data: cfg.data.display().to_string(),
        features: vec![d.feature.clone()],
        target: d.target.clone(),
        rows: d.rows,
        window: w.window,
        horizon: usize::from(w.every_step),
        train_windows: w.train.len(),
        val_windows: w.val.len(),
        last_train_line: d.last_train_line,
        first_val_line: d.first_val_line,
        cell: cell_name(cfg.cell).into(),
        units: cfg.units,
        layers: cfg.layers,
        bidirectional: false,
        parameters,
        seed: cfg.seed,
        epochs_run: history.len(),
        best_epoch,
        best_val_loss,
        history,
        train_seconds,
        windows_per_second: trained as f64 / train_seconds.max(1e-9),
        forecast: None,
        classification: Some(classification),
        reconstruction: None,
        parity_max_scaled_error: parity,
        blob_bytes: blob.len(),
        quantized: quantized_report,
        text: Some(TextReport {
            vocabulary: d.vocab.as_string(),
            vocabulary_size: d.vocab.len(),
            embedding_dim: cfg.embedding,
            bits_per_char: w.every_step.then(|| best_val_loss / std::f64::consts::LN_2),
            sample_prompt,
            sample,
        }),
    };
    Ok(Outcome {
        blob,
        quantized,
        report,
        val_windows,
        val_outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_sorted_distinct_characters() {
        let v = Vocabulary::of_texts(["hello", "world"], None);
        assert_eq!(v.as_string(), "dehlorw");
        assert_eq!(v.encode("low"), Ok(vec![3, 4, 6]));
        assert_eq!(v.encode("lox"), Err(('x', 2)));
        let p = Vocabulary::of_texts(["ba"], Some(PAD));
        assert_eq!(p.as_string(), "\0ab");
        assert_eq!(p.len(), 3);
    }
}
