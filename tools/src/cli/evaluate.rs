//! `edgernn evaluate`: the NAB score of a directory of detector results.
//!
//! The directory is laid out like NAB's `results/<detector>/`: `<category>/<name>.csv` files
//! with columns `timestamp,value,anomaly_score` (other columns are ignored), one row per
//! reading of the data file of the same name. Each file is matched to its entry
//! `"<category>/<name>.csv"` in NAB's `combined_windows.json` and the lot is scored with
//! [`crate::nab::score`] for NAB's three profiles.
//!
//! A results file the labels do not know is an error: scoring it against no windows would
//! count all its detections as false positives. Labelled files without results are only a
//! warning, so a subset of the corpus can be scored; the output says how many files were.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Failure;
use crate::nab::labels::{self, Windows};
use crate::nab::score::{self, FileInput, ProfileScore};

/// The options of `edgernn evaluate`.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// The results directory (`<category>/<name>.csv` files).
    pub results: PathBuf,
    /// NAB's `combined_windows.json`.
    pub labels: PathBuf,
    /// Score at this threshold, in `[0, 1]`, instead of the best one per profile.
    pub threshold: Option<f64>,
    /// Print one JSON object instead of the table.
    pub json: bool,
}

/// Missing labelled files named in the warning before it says "and N more".
const MISSING_NAMED: usize = 5;

/// One results file, read and checked.
struct Results {
    key: String,
    scores: Vec<f64>,
    windows: Vec<(usize, usize)>,
}

/// What `--json` prints.
#[derive(Serialize)]
struct Report<'a> {
    results: String,
    labels: String,
    files_scored: usize,
    files_labelled: usize,
    /// Labelled files without results (not scored).
    files_missing: Vec<&'a str>,
    profiles: &'a [ProfileScore],
}

/// Runs `edgernn evaluate`.
///
/// # Errors
/// Bad input (exit 2), naming the file: the labels cannot be read or parsed; the results
/// directory cannot be read or holds no `<category>/<name>.csv` file; a results file is not
/// in the labels, has no `timestamp` or `anomaly_score` column, or has a score that is not a
/// number in `[0, 1]` (the line is named); `--threshold` is not in `[0, 1]`.
pub fn run(options: &EvaluateOptions) -> Result<(), Failure> {
    if let Some(t) = options.threshold.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(Failure::BadInput(format!(
            "--threshold {t}: expected a number in [0, 1]"
        )));
    }
    let windows = labels::read_windows(&options.labels).map_err(Failure::BadInput)?;
    let files = results_files(&options.results)?;
    let mut results = Vec::with_capacity(files.len());
    for (key, path) in &files {
        results.push(read_results(key, path, &windows, &options.labels)?);
    }
    let missing: Vec<&str> = windows
        .keys()
        .filter(|key| !files.iter().any(|(k, _)| k == *key))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let mut names = missing[..missing.len().min(MISSING_NAMED)].join(", ");
        if missing.len() > MISSING_NAMED {
            names.push_str(&format!(" and {} more", missing.len() - MISSING_NAMED));
        }
        eprintln!(
            "warning: {} of {} labelled files have no results in {} and are not scored: {names}",
            missing.len(),
            windows.len(),
            options.results.display()
        );
    }

    let inputs: Vec<FileInput<'_>> = results
        .iter()
        .map(|r| FileInput {
            name: &r.key,
            scores: &r.scores,
            windows: &r.windows,
        })
        .collect();
    // Scores and windows were checked above, so a failure here is a bug.
    let profiles = match options.threshold {
        None => score::score_all_profiles(&inputs),
        Some(t) => score::score_all_profiles_at(&inputs, Some(t)),
    }
    .map_err(Failure::Internal)?;

    if options.json {
        let report = Report {
            results: options.results.display().to_string(),
            labels: options.labels.display().to_string(),
            files_scored: results.len(),
            files_labelled: windows.len(),
            files_missing: missing,
            profiles: &profiles,
        };
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| Failure::Internal(e.to_string()))?;
        println!("{text}");
    } else {
        let scored_windows = profiles.first().map_or(0, |p| p.windows);
        println!(
            "scored {} of {} labelled files ({scored_windows} windows)",
            results.len(),
            windows.len()
        );
        print_profiles(&profiles);
    }
    Ok(())
}

/// Prints one line per profile: normalised score, threshold, windows detected (TP) and
/// missed (FN), and false-positive detections (FP). A threshold of `never` means firing
/// nowhere scored best; a score of `n/a` means there was no window to normalise by.
/// Also used by `edgernn nab --labels`.
pub fn print_profiles(profiles: &[ProfileScore]) {
    println!(
        "{:<20} {:>8} {:>10} {:>5} {:>5} {:>7}",
        "profile", "score", "threshold", "TP", "FN", "FP"
    );
    for p in profiles {
        let score = p.score.map_or("n/a".to_owned(), |s| format!("{s:.2}"));
        let threshold = p
            .threshold
            .map_or("never".to_owned(), |t| format!("{t:.6}"));
        println!(
            "{:<20} {score:>8} {threshold:>10} {:>5} {:>5} {:>7}",
            p.profile, p.true_positives, p.false_negatives, p.false_positives
        );
    }
}

/// The `<category>/<name>.csv` files under `dir`, as (labels key, path), sorted by key.
/// Hidden entries (a leading `.`) and anything else are skipped, like NAB's corpus reader
/// skips hidden files; other files next to the categories (a summary, plots) are left alone.
fn results_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, Failure> {
    let list = |dir: &Path| -> Result<Vec<(String, PathBuf)>, Failure> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Failure::input(dir, format!("cannot read the directory: {e}")))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry
                .map_err(|e| Failure::input(dir, format!("cannot read the directory: {e}")))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(Failure::input(&path, "the name is not UTF-8"));
            };
            if !name.starts_with('.') {
                out.push((name, path));
            }
        }
        out.sort();
        Ok(out)
    };
    let mut files = Vec::new();
    for (category, category_path) in list(dir)? {
        if !category_path.is_dir() {
            continue;
        }
        for (name, path) in list(&category_path)? {
            if name.ends_with(".csv") && path.is_file() {
                files.push((format!("{category}/{name}"), path));
            }
        }
    }
    if files.is_empty() {
        return Err(Failure::input(
            dir,
            "no results files: expected <category>/<name>.csv files inside",
        ));
    }
    Ok(files)
}

/// Reads one results file, checks its scores and places its labelled windows on its rows.
fn read_results(
    key: &str,
    path: &Path,
    windows: &Windows,
    labels_path: &Path,
) -> Result<Results, Failure> {
    let Some(labelled) = windows.get(key) else {
        return Err(Failure::input(
            path,
            format!(
                "{key} is not in the labels file {} (results must be named like NAB's data \
                 files)",
                labels_path.display()
            ),
        ));
    };
    let series = labels::read_columns(path, &["anomaly_score"]).map_err(Failure::BadInput)?;
    let scores = series.columns.into_iter().next().unwrap_or_default();
    if let Some((score, line)) = scores
        .iter()
        .zip(&series.lines)
        .find(|(s, _)| !(0.0..=1.0).contains(*s))
    {
        return Err(Failure::input(
            path,
            format!("line {line}: anomaly_score {score} is not a number in [0, 1]"),
        ));
    }
    let rows = labels::window_rows(&series.timestamps, labelled);
    if rows.len() < labelled.len() {
        eprintln!(
            "warning: {}: {} of {} labelled windows cover no row and are not scored (are \
             the results for the same data as the labels?)",
            path.display(),
            labelled.len() - rows.len(),
            labelled.len()
        );
    }
    Ok(Results {
        key: key.to_owned(),
        scores,
        windows: rows,
    })
}
