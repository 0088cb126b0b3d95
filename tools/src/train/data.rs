//! Training data: a CSV table with a header row, the columns a run uses, windows over time,
//! a chronological train/validation split and the normalisation fitted on the training part.
//!
//! # No leakage
//!
//! The rows are cut once, at `boundary`: normalisation statistics come from rows before it
//! only; a training window and the row it predicts lie entirely before it; a validation
//! window starts at or after it. Windows that straddle the boundary are dropped, so no
//! validation value is ever an input or a target during training.

use std::path::{Path, PathBuf};

/// Keras' `Normalization` epsilon: the smallest standard deviation divided by.
pub const NORM_EPSILON: f32 = 1e-7;

/// Which columns to read.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    /// Input features; `None` picks every numeric column except the timestamp (and, for
    /// classification, the target).
    pub features: Option<Vec<String>>,
    /// The target; `None` is allowed when exactly one numeric column exists (forecasting).
    pub target: Option<String>,
    /// A timestamp column, never used as a feature (checked for being present only).
    pub timestamp: Option<String>,
    /// The target holds class ids (classification): it is not a default feature.
    pub classify: bool,
    /// The run has no target (an autoencoder reconstructs its features): `target` must be
    /// `None`, and [`Series::target`] holds the first feature.
    pub no_target: bool,
}

/// The columns a run uses, parsed to f32.
#[derive(Debug, Clone)]
pub struct Series {
    pub path: PathBuf,
    pub feature_names: Vec<String>,
    pub target_name: String,
    pub rows: usize,
    /// `[rows, features]` row-major.
    pub features: Vec<f32>,
    /// `[rows]`.
    pub target: Vec<f32>,
    /// The 1-based line each data row came from (for error messages).
    pub lines: Vec<u64>,
}

impl Series {
    /// Number of input features.
    pub fn width(&self) -> usize {
        self.feature_names.len()
    }

    /// Keeps the first `rows` rows only.
    pub fn truncate(&mut self, rows: usize) {
        let rows = rows.min(self.rows);
        self.rows = rows;
        self.features.truncate(rows * self.width());
        self.target.truncate(rows);
        self.lines.truncate(rows);
    }
}

fn bad(path: &Path, what: impl std::fmt::Display) -> String {
    format!("{}: {what}", path.display())
}

/// Counts lines up to byte offsets, as a text editor shows them (records come in order).
struct Lines<'a> {
    text: &'a [u8],
    byte: usize,
    line: u64,
}

impl Lines<'_> {
    fn line_of(&mut self, pos: Option<&csv::Position>) -> u64 {
        let Some(pos) = pos else { return self.line };
        let mut start = usize::try_from(pos.byte())
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        // csv reports a record from where it started looking: skip the line breaks first.
        while matches!(self.text.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        if start < self.byte {
            (self.byte, self.line) = (0, 1);
        }
        let text = self.text;
        self.line += text[self.byte..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        self.byte = start;
        self.line
    }
}

/// Finds a column by exact name, else case-insensitively, else as a 1-based number.
fn find_column(path: &Path, header: &[String], name: &str, option: &str) -> Result<usize, String> {
    if let Some(i) = header.iter().position(|h| h == name) {
        return Ok(i);
    }
    if let Some(i) = header.iter().position(|h| h.eq_ignore_ascii_case(name)) {
        return Ok(i);
    }
    if let Ok(n) = name.parse::<usize>() {
        if (1..=header.len()).contains(&n) {
            return Ok(n - 1);
        }
    }
    Err(bad(
        path,
        format!(
            "{option} {name}: no such column; the header has {}",
            header
                .iter()
                .map(|h| format!("'{h}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

fn parse_value(text: &str) -> Option<f32> {
    text.trim().parse::<f32>().ok().filter(|v| v.is_finite())
}

/// Reads the columns a run uses from a CSV file with a header row. Columns not used may hold
/// anything (dates, labels, text).
///
/// # Errors
/// A message starting with the file's path: unreadable file, no header or no data rows,
/// unknown column names (listing the header), ragged rows and values that are not finite
/// numbers (naming the line, the 1-based column and its name).
pub fn load_csv(path: &Path, columns: &Columns) -> Result<Series, String> {
    let text = std::fs::read(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_slice());
    let mut lines = Lines {
        text: &text,
        byte: 0,
        line: 1,
    };
    let mut records = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(bad(path, format!("not a valid CSV file: {e}"))),
        }
        if record.len() == 1 && record.get(0) == Some("") {
            continue;
        }
        let line = lines.line_of(record.position());
        records.push((line, record.clone()));
    }
    let Some((_, header)) = records.first() else {
        return Err(bad(
            path,
            "the file is empty; expected a header row and data",
        ));
    };
    let header: Vec<String> = header.iter().map(str::to_owned).collect();
    if header
        .iter()
        .all(|h| h.is_empty() || h.parse::<f64>().is_ok())
    {
        return Err(bad(
            path,
            "line 1: expected a header row of column names, found numbers",
        ));
    }
    let data = &records[1..];
    let Some((_, first)) = data.first() else {
        return Err(bad(path, "no data rows after the header"));
    };
    for (line, r) in data {
        if r.len() != header.len() {
            return Err(bad(
                path,
                format!(
                    "line {line}: {} fields, but the header has {}",
                    r.len(),
                    header.len()
                ),
            ));
        }
    }
    let timestamp = match &columns.timestamp {
        Some(name) => Some(find_column(path, &header, name, "--timestamp")?),
        None => None,
    };
    let numeric: Vec<usize> = (0..header.len())
        .filter(|&i| Some(i) != timestamp && first.get(i).and_then(parse_value).is_some())
        .collect();
    let target = match &columns.target {
        Some(name) => Some(find_column(path, &header, name, "--target")?),
        None if columns.no_target => None,
        None if columns.classify => {
            return Err(bad(path, "--target is required for classification"));
        }
        None if numeric.len() == 1 => Some(numeric[0]),
        None => {
            return Err(bad(
                path,
                format!(
                    "--target is required: {} numeric columns ({})",
                    numeric.len(),
                    numeric
                        .iter()
                        .map(|&i| header[i].as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
    };
    if target.is_some() && target == timestamp {
        return Err(bad(path, "--target and --timestamp name the same column"));
    }
    let features: Vec<usize> = match &columns.features {
        Some(names) => names
            .iter()
            .map(|n| find_column(path, &header, n, "--features"))
            .collect::<Result<_, _>>()?,
        None => numeric
            .iter()
            .copied()
            .filter(|&i| !(columns.classify && Some(i) == target))
            .collect(),
    };
    if features.is_empty() {
        return Err(bad(
            path,
            "no numeric feature columns; name them with --features",
        ));
    }
    if let Some(t) = timestamp {
        if features.contains(&t) {
            return Err(bad(path, "the timestamp column cannot be a feature"));
        }
    }
    let target = target.unwrap_or(features[0]);
    let mut out = Series {
        path: path.to_owned(),
        feature_names: features.iter().map(|&i| header[i].clone()).collect(),
        target_name: header[target].clone(),
        rows: data.len(),
        features: Vec::with_capacity(data.len() * features.len()),
        target: Vec::with_capacity(data.len()),
        lines: Vec::with_capacity(data.len()),
    };
    let value = |line: u64, r: &csv::StringRecord, col: usize| -> Result<f32, String> {
        let text = r.get(col).unwrap_or("");
        parse_value(text).ok_or_else(|| {
            bad(
                path,
                format!(
                    "line {line}, column {} ('{}'): '{text}' is not a finite number",
                    col + 1,
                    header[col]
                ),
            )
        })
    };
    for (line, r) in data {
        for &c in &features {
            out.features.push(value(*line, r, c)?);
        }
        out.target.push(value(*line, r, target)?);
        out.lines.push(*line);
    }
    Ok(out)
}

/// Class ids of a classification target: non-negative integers. Returns the class count.
///
/// # Errors
/// The first value that is not a class id, naming its line; fewer than two classes.
pub fn class_count(series: &Series) -> Result<usize, String> {
    /// More classes than this is almost surely a regression target given by mistake.
    const MAX_CLASSES: f32 = 1000.0;
    let mut max = 0usize;
    for (v, line) in series.target.iter().zip(&series.lines) {
        if *v < 0.0 || v.fract() != 0.0 || *v >= MAX_CLASSES {
            return Err(bad(
                &series.path,
                format!(
                    "line {line}: target '{}' = {v} is not a class id (an integer 0..{MAX_CLASSES})",
                    series.target_name
                ),
            ));
        }
        max = max.max(*v as usize);
    }
    if max == 0 {
        return Err(bad(
            &series.path,
            format!(
                "target '{}' has a single class; classification needs at least two",
                series.target_name
            ),
        ));
    }
    Ok(max + 1)
}

/// Windows over the rows: window `t` covers rows `t + 1 - window ..= t` and predicts row
/// `t + horizon`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The first validation row; normalisation uses rows before it.
    pub boundary: usize,
    pub window: usize,
    pub horizon: usize,
    /// End rows of the training windows (`t + horizon < boundary`).
    pub train: Vec<usize>,
    /// End rows of the validation windows (`t + 1 - window >= boundary`).
    pub val: Vec<usize>,
}

impl Split {
    /// The first row of the window ending at `t`.
    pub fn start(&self, t: usize) -> usize {
        t + 1 - self.window
    }
}

/// Splits `rows` chronologically, the last `val_fraction` of rows for validation.
///
/// # Errors
/// A message (without a path) when the options leave no training or no validation window.
pub fn split(
    rows: usize,
    window: usize,
    horizon: usize,
    val_fraction: f64,
) -> Result<Split, String> {
    if window == 0 {
        return Err("--window must be at least 1".into());
    }
    if !(val_fraction > 0.0 && val_fraction < 1.0) {
        return Err(format!(
            "--val-split {val_fraction}: expected a fraction between 0 and 1"
        ));
    }
    let boundary = ((rows as f64) * (1.0 - val_fraction)).round() as usize;
    let train: Vec<usize> = (window - 1..boundary.saturating_sub(horizon)).collect();
    let val: Vec<usize> = (boundary + window - 1..rows.saturating_sub(horizon)).collect();
    if train.is_empty() || val.is_empty() {
        return Err(format!(
            "{rows} rows give {} training and {} validation windows with --window {window}, \
             --horizon {horizon} and --val-split {val_fraction}; need at least one of each",
            train.len(),
            val.len()
        ));
    }
    Ok(Split {
        boundary,
        window,
        horizon,
        train,
        val,
    })
}

/// Per-column mean and variance (population, as Keras' `Normalization.adapt`), and the
/// divisor the runtime uses, `max(sqrt(variance), 1e-7)` computed in f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Norm {
    pub mean: Vec<f32>,
    pub variance: Vec<f32>,
    pub std: Vec<f32>,
}

impl Norm {
    /// Fits on the first `rows` rows of the row-major `values` with `width` columns.
    pub fn fit(values: &[f32], width: usize, rows: usize) -> Self {
        let mut mean = vec![0f64; width];
        let mut m2 = vec![0f64; width];
        for (n, row) in values.chunks_exact(width).take(rows).enumerate() {
            // Welford's update: stable for large offsets (prices, temperatures).
            for ((m, s), &v) in mean.iter_mut().zip(m2.iter_mut()).zip(row) {
                let v = f64::from(v);
                let d = v - *m;
                *m += d / (n + 1) as f64;
                *s += d * (v - *m);
            }
        }
        let n = rows.max(1) as f64;
        let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let variance: Vec<f32> = m2.iter().map(|&s| (s / n) as f32).collect();
        let std = variance
            .iter()
            .map(|v| v.sqrt().max(NORM_EPSILON))
            .collect();
        Self {
            mean,
            variance,
            std,
        }
    }

    /// `(x - mean) / std` per column, in f32 exactly as the runtime's Normalization layer.
    pub fn apply(&self, values: &[f32]) -> Vec<f32> {
        let width = self.mean.len();
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (v - self.mean[i % width]) / self.std[i % width])
            .collect()
    }

    /// `x * std + mean` per column: normalised values back to raw units, in f32 as the
    /// exported output layer computes them (up to its rounding).
    pub fn invert(&self, values: &[f32]) -> Vec<f32> {
        let width = self.mean.len();
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| v * self.std[i % width] + self.mean[i % width])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_never_leaks() {
        for (rows, window, horizon) in [(100, 8, 1), (50, 1, 0), (37, 5, 3), (1000, 64, 7)] {
            let s = split(rows, window, horizon, 0.25).unwrap();
            let last_train_row = s.train.iter().map(|t| t + horizon).max().unwrap();
            let first_val_row = s.val.iter().map(|&t| s.start(t)).min().unwrap();
            assert!(last_train_row < s.boundary && s.boundary <= first_val_row);
            assert!(s.val.iter().all(|t| t + horizon < rows));
        }
        assert!(split(10, 8, 1, 0.2).is_err());
    }

    #[test]
    fn norm_matches_two_pass() {
        let v = [1.0f32, 10.0, 2.0, 20.0, 3.0, 30.0, 100.0, 100.0];
        let n = Norm::fit(&v, 2, 3);
        assert_eq!(n.mean, vec![2.0, 20.0]);
        assert!((n.variance[0] - 2.0 / 3.0).abs() < 1e-6);
        assert!((n.variance[1] - 200.0 / 3.0).abs() < 1e-4);
        let c = Norm::fit(&[5.0, 5.0], 1, 2);
        assert_eq!(c.std, vec![NORM_EPSILON]);
    }
}
