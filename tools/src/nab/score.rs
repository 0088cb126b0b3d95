//! The NAB score of a detector's anomaly scores, as NAB v1.1 computes it.
//!
//! Sources: Lavin & Ahmad 2015, "Evaluating Real-time Anomaly Detection Algorithms - the
//! Numenta Anomaly Benchmark" (section 4), Ahmad et al. 2017, "Unsupervised real-time anomaly
//! detection for streaming data" (Neurocomputing, section 5), and NAB v1.1's `nab/sweeper.py`
//! and `nab/util.py::getProbationPeriod`, whose semantics this follows row for row:
//!
//! 1. The first `min(floor(0.15 * rows), 0.15 * 5000)` rows of a file are probationary: the
//!    detector may learn from them, they are not scored ([`probation_rows`]).
//! 2. Every row gets a weighted score ([`row_weights`]): inside a window `[l, r]` of width
//!    `w`, `tp * S(-(r - i + 1) / w) / S(-1)`, which is `tp` at the window's first row and
//!    falls towards 0 at its end, so earlier detections earn more; after a window
//!    (right end `r'`, width `w'`), `fp * S((i - r') / (w' - 1))`, a penalty that grows
//!    towards `fp` with the distance from the window (a detection just after a window is
//!    nearly forgiven, it probably saw the same anomaly late); before any window, `-fp`.
//!    `S` is [`scaled_sigmoid`].
//! 3. For a threshold, the detections are the scored rows whose anomaly score is at least the
//!    threshold. A file's raw score is the sum over its windows of the best (earliest)
//!    detection's weight, or `-fn` for a window without one, plus the weights of the
//!    detections outside windows.
//! 4. One threshold per profile for the whole corpus, the one with the highest total raw
//!    score: no per-file tuning ([`score_corpus`] sweeps every distinct anomaly score, and
//!    "nothing fires"). Since firing nowhere is among the choices, this optimised score is
//!    never below 0; [`score_corpus_at`] scores a threshold fixed beforehand instead.
//! 5. The total is normalised so that the detector that never fires scores 0 and the perfect
//!    one (a detection on each window's first row and nowhere else) scores 100:
//!    `100 * (raw - null) / (perfect - null)`, `null = -fn * windows`,
//!    `perfect = tp * windows`.
//!
//! Where NAB's code is silent or would fail, this module decides:
//! - Windows count only when at least one of their rows is scored (a window wholly inside the
//!   probationary period has no scorable row, and NAB's sweeper leaves it out too). A window
//!   that starts inside the probationary period counts, but its early rows cannot be
//!   detected, so such a corpus cannot reach 100.
//! - After a one-row window, `w' - 1` is 0 and NAB would divide by zero; the position is then
//!   taken as infinitely far, a full false positive.
//! - When several thresholds give the same total (within [`TIE_TOLERANCE`]), the highest is
//!   chosen: the fewest detections for the same score.

use serde::Serialize;

/// The weights of one NAB application profile (NAB's `config/profiles.json`). A window's
/// reward or cost is at most one weight; the false-positive weight is per detection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Profile {
    /// NAB's profile name.
    pub name: &'static str,
    /// Reward for detecting a window at its first row.
    pub tp_weight: f64,
    /// Cost of a window without any detection.
    pub fn_weight: f64,
    /// Cost of a detection far from (or before) any window.
    pub fp_weight: f64,
}

/// NAB's standard profile.
pub const STANDARD: Profile = Profile {
    name: "standard",
    tp_weight: 1.0,
    fn_weight: 1.0,
    fp_weight: 0.11,
};

/// NAB's profile for applications where false alarms are expensive.
pub const REWARD_LOW_FP_RATE: Profile = Profile {
    name: "reward_low_FP_rate",
    tp_weight: 1.0,
    fn_weight: 1.0,
    fp_weight: 0.22,
};

/// NAB's profile for applications where a missed anomaly is expensive.
pub const REWARD_LOW_FN_RATE: Profile = Profile {
    name: "reward_low_FN_rate",
    tp_weight: 1.0,
    fn_weight: 2.0,
    fp_weight: 0.11,
};

/// The three profiles NAB reports, in its order.
pub const PROFILES: [Profile; 3] = [STANDARD, REWARD_LOW_FP_RATE, REWARD_LOW_FN_RATE];

/// The fraction of a file's rows that is probationary (NAB's `probationaryPercent`).
pub const PROBATION_FRACTION: f64 = 0.15;

/// Files longer than this many rows still get only `PROBATION_FRACTION` of this many
/// probationary rows (NAB's `getProbationPeriod`): a detector should have learned by then.
pub const PROBATION_CAP_ROWS: usize = 5000;

/// Totals closer than this are equal when choosing the threshold. The sweep adds and
/// subtracts weights of order 1 a few hundred thousand times, which leaves rounding errors
/// near 1e-12; real differences between thresholds are at least a detection's weight.
pub const TIE_TOLERANCE: f64 = 1e-9;

/// The scaled sigmoid of a relative position: `2 / (1 + exp(5 x)) - 1`, from 0.987 at the
/// left edge of a window (`x = -1`) through 0 at its right edge to -0.987 a window width
/// past it; -1 from `x >= 3` on (as NAB's sweeper, which maps "before any window" to 3).
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// The number of probationary (unscored) rows at the start of a file of `rows` rows:
/// `min(floor(0.15 * rows), 0.15 * 5000)`, in the same floating-point operations as NAB.
pub fn probation_rows(rows: usize) -> usize {
    let floor = (PROBATION_FRACTION * rows as f64).floor();
    let cap = PROBATION_FRACTION * PROBATION_CAP_ROWS as f64;
    // Both are small non-negative integers (NAB compares the row index with the float).
    floor.min(cap).ceil() as usize
}

/// One row's part in the score, should it be detected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowWeight {
    /// The index (into the file's windows) of the window holding the row, if any.
    pub window: Option<usize>,
    /// What detecting this row is worth: positive inside a window, negative outside.
    pub weight: f64,
}

/// The weighted score of every row of a file of `rows` rows with `windows` (inclusive row
/// ranges), probationary rows included (they are dropped by the scoring, not here). See the
/// module docs, step 2.
///
/// # Errors
/// A message when a window is empty, ends past the last row, or starts before the previous
/// one ends.
pub fn row_weights(
    rows: usize,
    windows: &[(usize, usize)],
    profile: &Profile,
) -> Result<Vec<RowWeight>, String> {
    check_windows(rows, windows)?;
    let max_tp = scaled_sigmoid(-1.0);
    let mut out = Vec::with_capacity(rows);
    let mut next = 0;
    let mut current: Option<usize> = None;
    // The right end and width of the last window passed.
    let mut previous: Option<(usize, usize)> = None;
    for i in 0..rows {
        if current.is_none() && windows.get(next).is_some_and(|&(first, _)| first == i) {
            current = Some(next);
            next += 1;
        }
        let row = if let Some(k) = current {
            let (first, last) = windows[k];
            let width = (last - first + 1) as f64;
            let position = -((last + 1 - i) as f64) / width;
            // Dividing before multiplying makes the first row worth exactly `tp_weight`.
            RowWeight {
                window: Some(k),
                weight: profile.tp_weight * (scaled_sigmoid(position) / max_tp),
            }
        } else {
            let unweighted = match previous {
                None => -1.0,
                Some((_, 1)) => -1.0,
                Some((last, width)) => scaled_sigmoid((i - last) as f64 / (width - 1) as f64),
            };
            RowWeight {
                window: None,
                weight: unweighted * profile.fp_weight,
            }
        };
        out.push(row);
        if let Some(k) = current {
            let (first, last) = windows[k];
            if i == last {
                previous = Some((last, last - first + 1));
                current = None;
            }
        }
    }
    Ok(out)
}

fn check_windows(rows: usize, windows: &[(usize, usize)]) -> Result<(), String> {
    let mut end: Option<usize> = None;
    for (k, &(first, last)) in windows.iter().enumerate() {
        if first > last || last >= rows {
            return Err(format!(
                "window {} (rows {first}..={last}) is empty or past the last row {}",
                k + 1,
                rows.saturating_sub(1)
            ));
        }
        if end.is_some_and(|end| first <= end) {
            return Err(format!(
                "window {} starts before window {k} ends (windows must be in order and not \
                 overlap)",
                k + 1
            ));
        }
        end = Some(last);
    }
    Ok(())
}

/// One file of a corpus to score.
#[derive(Debug, Clone, Copy)]
pub struct FileInput<'a> {
    /// Names the file in results and errors (NAB's labels key, say).
    pub name: &'a str,
    /// The detector's anomaly score for every row, each in `[0, 1]`.
    pub scores: &'a [f64],
    /// The labelled windows as inclusive row ranges, in order, not overlapping
    /// ([`super::labels::window_rows`] makes them from timestamps).
    pub windows: &'a [(usize, usize)],
}

/// One file's result at a threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileScore {
    /// [`FileInput::name`].
    pub file: String,
    /// The file's raw (unnormalised) score.
    pub raw: f64,
    /// Windows with at least one scored row.
    pub windows: usize,
    /// Windows with a detection.
    #[serde(rename = "tp")]
    pub true_positives: usize,
    /// Windows without a detection.
    #[serde(rename = "fn")]
    pub false_negatives: usize,
    /// Detections (rows) outside every window.
    #[serde(rename = "fp")]
    pub false_positives: usize,
}

/// One profile's result over a corpus, at its best threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileScore {
    /// [`Profile::name`].
    pub profile: &'static str,
    /// The normalised score: 100 for the perfect detector, 0 for one that never fires,
    /// negative for worse. `None` when the corpus has no scorable window, where the
    /// normalisation divides by zero.
    pub score: Option<f64>,
    /// The anomaly-score threshold chosen, or given to [`score_corpus_at`] (rows scoring at
    /// least this are detections); `None` when firing nowhere scores best.
    pub threshold: Option<f64>,
    /// The sum of the files' raw scores.
    pub raw: f64,
    /// The raw score of the detector that never fires, `-fn_weight * windows`.
    pub null: f64,
    /// The raw score of the perfect detector, `tp_weight * windows`.
    pub perfect: f64,
    /// Scorable windows in all files.
    pub windows: usize,
    /// Windows with a detection.
    #[serde(rename = "tp")]
    pub true_positives: usize,
    /// Windows without a detection.
    #[serde(rename = "fn")]
    pub false_negatives: usize,
    /// Detections outside every window.
    #[serde(rename = "fp")]
    pub false_positives: usize,
    /// Each file's result at `threshold`, in input order.
    pub files: Vec<FileScore>,
}

fn check_scores(file: &FileInput<'_>) -> Result<(), String> {
    match file.scores.iter().position(|s| !(0.0..=1.0).contains(s)) {
        Some(row) => Err(format!(
            "{}: row {}: anomaly score {} is not in [0, 1]",
            file.name, row, file.scores[row]
        )),
        None => Ok(()),
    }
}

/// A file's result when the detections are the scored rows with an anomaly score of at least
/// `threshold` (`None`: no detections), computed directly rather than by a sweep.
///
/// # Errors
/// A message naming the file when its windows are invalid (see [`row_weights`]).
pub fn score_file(
    file: &FileInput<'_>,
    profile: &Profile,
    threshold: Option<f64>,
) -> Result<FileScore, String> {
    let weights = row_weights(file.scores.len(), file.windows, profile)
        .map_err(|e| format!("{}: {e}", file.name))?;
    let probation = probation_rows(file.scores.len());
    let counted = counted_windows(file.windows, probation);
    let mut best: Vec<Option<f64>> = vec![None; file.windows.len()];
    let (mut fp_sum, mut false_positives) = (0.0, 0);
    for (&score, weight) in file.scores.iter().zip(&weights).skip(probation) {
        if !threshold.is_some_and(|t| score >= t) {
            continue;
        }
        match weight.window {
            Some(k) => {
                best[k] = Some(best[k].map_or(weight.weight, |b: f64| b.max(weight.weight)));
            }
            None => {
                fp_sum += weight.weight;
                false_positives += 1;
            }
        }
    }
    let mut raw = 0.0;
    let mut true_positives = 0;
    for (k, best) in best.iter().enumerate() {
        if !counted[k] {
            continue;
        }
        match best {
            Some(weight) => {
                raw += weight;
                true_positives += 1;
            }
            None => raw -= profile.fn_weight,
        }
    }
    let windows = counted.iter().filter(|&&c| c).count();
    Ok(FileScore {
        file: file.name.to_owned(),
        raw: raw + fp_sum,
        windows,
        true_positives,
        false_negatives: windows - true_positives,
        false_positives,
    })
}

/// Whether each window has a scored row (ends at or after the probationary period).
fn counted_windows(windows: &[(usize, usize)], probation: usize) -> Vec<bool> {
    windows.iter().map(|&(_, last)| last >= probation).collect()
}

/// A scored row of the corpus, for the sweep.
struct Point {
    score: f64,
    weight: f64,
    /// Index into the corpus-wide window list, or `None` outside windows.
    window: Option<usize>,
}

/// Scores a corpus for one profile: chooses the threshold with the highest total raw score
/// and reports the normalised score, the counts and each file's raw score at it.
///
/// The sweep sorts every scored row of every file by anomaly score, highest first, and lowers
/// the threshold one distinct score at a time, keeping the best detection weight of each
/// window and the sum of false-positive weights up to date, so all thresholds cost one sort.
/// The result at the chosen threshold is then recomputed file by file with [`score_file`], so
/// reported numbers carry no accumulated rounding.
///
/// # Errors
/// A message naming the file when an anomaly score is not in `[0, 1]` (NaN included) or the
/// windows are invalid.
pub fn score_corpus(files: &[FileInput<'_>], profile: &Profile) -> Result<ProfileScore, String> {
    let mut points = Vec::new();
    let mut window_count = 0;
    for file in files {
        check_scores(file)?;
        let weights = row_weights(file.scores.len(), file.windows, profile)
            .map_err(|e| format!("{}: {e}", file.name))?;
        let probation = probation_rows(file.scores.len());
        // Corpus-wide indices of this file's windows that have a scored row.
        let mut global = Vec::with_capacity(file.windows.len());
        for counted in counted_windows(file.windows, probation) {
            global.push(counted.then_some(window_count));
            window_count += usize::from(counted);
        }
        for (&score, weight) in file.scores.iter().zip(&weights).skip(probation) {
            points.push(Point {
                score,
                weight: weight.weight,
                // A scored row in a window implies the window is counted.
                window: weight.window.and_then(|k| global[k]),
            });
        }
    }
    points.sort_by(|a, b| b.score.total_cmp(&a.score));

    // Start from no detections: every window missed.
    let mut best_in_window: Vec<Option<f64>> = vec![None; window_count];
    let mut total = -profile.fn_weight * window_count as f64;
    let (mut best_total, mut best_threshold) = (total, None);
    let mut i = 0;
    while i < points.len() {
        let threshold = points[i].score;
        while let Some(point) = points.get(i).filter(|p| p.score == threshold) {
            match point.window {
                Some(k) => {
                    let old = best_in_window[k].unwrap_or(-profile.fn_weight);
                    if best_in_window[k].is_none_or(|b| point.weight > b) {
                        best_in_window[k] = Some(point.weight);
                        total += point.weight - old;
                    }
                }
                None => total += point.weight,
            }
            i += 1;
        }
        if total > best_total + TIE_TOLERANCE {
            best_total = total;
            best_threshold = Some(threshold);
        }
    }

    score_corpus_at(files, profile, best_threshold)
}

/// Scores a corpus for one profile at a given `threshold` (`None`: no detections) instead of
/// the best one: NAB's scoring step with a threshold fixed beforehand, say the one a detector
/// was deployed with. Unlike [`score_corpus`], this can score below 0 (below the detector that
/// never fires).
///
/// # Errors
/// As [`score_corpus`].
pub fn score_corpus_at(
    files: &[FileInput<'_>],
    profile: &Profile,
    threshold: Option<f64>,
) -> Result<ProfileScore, String> {
    let file_scores = files
        .iter()
        .map(|file| {
            check_scores(file)?;
            score_file(file, profile, threshold)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let windows: usize = file_scores.iter().map(|f| f.windows).sum();
    let null = -profile.fn_weight * windows as f64;
    let perfect = profile.tp_weight * windows as f64;
    let raw: f64 = file_scores.iter().map(|f| f.raw).sum();
    let sum = |count: fn(&FileScore) -> usize| file_scores.iter().map(count).sum::<usize>();
    Ok(ProfileScore {
        profile: profile.name,
        score: (windows > 0).then(|| 100.0 * (raw - null) / (perfect - null)),
        threshold,
        raw,
        null,
        perfect,
        windows,
        true_positives: sum(|f| f.true_positives),
        false_negatives: sum(|f| f.false_negatives),
        false_positives: sum(|f| f.false_positives),
        files: file_scores,
    })
}

/// [`score_corpus`] for each of NAB's [`PROFILES`].
///
/// # Errors
/// As [`score_corpus`].
pub fn score_all_profiles(files: &[FileInput<'_>]) -> Result<Vec<ProfileScore>, String> {
    PROFILES.iter().map(|p| score_corpus(files, p)).collect()
}

/// [`score_corpus_at`] for each of NAB's [`PROFILES`].
///
/// # Errors
/// As [`score_corpus`].
pub fn score_all_profiles_at(
    files: &[FileInput<'_>],
    threshold: Option<f64>,
) -> Result<Vec<ProfileScore>, String> {
    PROFILES
        .iter()
        .map(|p| score_corpus_at(files, p, threshold))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows chosen so that the probationary period is 15 rows.
    const ROWS: usize = 100;

    fn file<'a>(scores: &'a [f64], windows: &'a [(usize, usize)]) -> FileInput<'a> {
        FileInput {
            name: "f",
            scores,
            windows,
        }
    }

    /// Scores that are 1 on `rows` and 0 elsewhere.
    fn fires_at(rows: &[usize]) -> Vec<f64> {
        let mut s = vec![0.0; ROWS];
        for &r in rows {
            s[r] = 1.0;
        }
        s
    }

    fn raw_at_1(scores: &[f64], windows: &[(usize, usize)], profile: &Profile) -> f64 {
        score_file(&file(scores, windows), profile, Some(1.0))
            .unwrap()
            .raw
    }

    #[test]
    fn probation_period_follows_nab() {
        assert_eq!(probation_rows(0), 0);
        assert_eq!(probation_rows(6), 0);
        assert_eq!(probation_rows(7), 1);
        assert_eq!(probation_rows(100), 15);
        // 0.15 * 4033 = 604.95: floored.
        assert_eq!(probation_rows(4033), 604);
        assert_eq!(probation_rows(5000), 750);
        assert_eq!(probation_rows(22_695), 750);
    }

    #[test]
    fn scaled_sigmoid_values() {
        // NAB's docstring: 0.98661 at -1, 0.84828 at -0.5, 0 at 0, -0.98661 at 1.
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(-0.5) - 0.84828).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!((scaled_sigmoid(1.0) + 0.98661).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(3.0), -1.0);
        assert_eq!(scaled_sigmoid(f64::INFINITY), -1.0);
    }

    #[test]
    fn detection_at_window_start_earns_exactly_tp() {
        for profile in PROFILES {
            assert_eq!(
                raw_at_1(&fires_at(&[40]), &[(40, 49)], &profile),
                profile.tp_weight
            );
        }
        // A one-row window too.
        assert_eq!(raw_at_1(&fires_at(&[40]), &[(40, 40)], &STANDARD), 1.0);
    }

    #[test]
    fn later_detections_earn_less_and_only_the_earliest_counts() {
        // Row 44 of the window 40..=49: position -(49 - 44 + 1) / 10 = -0.6.
        let middle = raw_at_1(&fires_at(&[44]), &[(40, 49)], &STANDARD);
        assert!((middle - 0.917_428_680_428_407_9).abs() < 1e-12, "{middle}");
        // Detections at 40, 44 and 49: still one true positive worth tp.
        let s = fires_at(&[40, 44, 49]);
        let f = score_file(&file(&s, &[(40, 49)]), &STANDARD, Some(1.0)).unwrap();
        assert_eq!((f.raw, f.true_positives, f.false_positives), (1.0, 1, 0));
        // The last row of a window is at position -1/10, not 0 (NAB's `+ 1`): worth
        // S(-0.1) / S(-1) = 0.24492 / 0.98661, still a detection.
        let last = raw_at_1(&fires_at(&[49]), &[(40, 49)], &STANDARD);
        assert!((last - 0.248_241_5).abs() < 1e-6, "{last}");
    }

    #[test]
    fn false_positives_cost_by_distance() {
        // Before any window: a full fp_weight.
        for profile in PROFILES {
            let raw = raw_at_1(&fires_at(&[20, 40]), &[(40, 49)], &profile);
            assert_eq!(raw, profile.tp_weight - profile.fp_weight);
        }
        // Just after a 5-row window 40..=44: position (45 - 44) / 4 = 0.25.
        let raw = raw_at_1(&fires_at(&[40, 45]), &[(40, 44)], &STANDARD);
        assert!(
            (raw - (1.0 - 0.061_005_969_458_432_06)).abs() < 1e-12,
            "{raw}"
        );
        // Far after it: nearly a full fp_weight.
        let raw = raw_at_1(&fires_at(&[40, 99]), &[(40, 44)], &STANDARD);
        assert_eq!(raw, 1.0 - 0.11);
        // After a one-row window (NAB would divide by zero): a full fp_weight.
        let raw = raw_at_1(&fires_at(&[40, 41]), &[(40, 40)], &STANDARD);
        assert_eq!(raw, 1.0 - 0.11);
    }

    #[test]
    fn missed_window_costs_fn() {
        for profile in PROFILES {
            let raw = raw_at_1(&fires_at(&[]), &[(40, 49), (60, 69)], &profile);
            assert_eq!(raw, -2.0 * profile.fn_weight);
        }
    }

    #[test]
    fn probationary_rows_are_not_scored() {
        // Rows 0..15 are probationary: a detection there is no false positive.
        let f = score_file(
            &file(&fires_at(&[3, 14, 40]), &[(40, 49)]),
            &STANDARD,
            Some(1.0),
        )
        .unwrap();
        assert_eq!((f.raw, f.false_positives), (1.0, 0));
        let f = score_file(
            &file(&fires_at(&[15, 40]), &[(40, 49)]),
            &STANDARD,
            Some(1.0),
        )
        .unwrap();
        assert_eq!((f.raw, f.false_positives), (1.0 - 0.11, 1));
        // A window wholly inside the probationary period does not count; one reaching past
        // it does, and only its scored rows can detect it.
        let f = score_file(&file(&fires_at(&[5]), &[(2, 8)]), &STANDARD, Some(1.0)).unwrap();
        assert_eq!((f.raw, f.windows), (0.0, 0));
        let f = score_file(&file(&fires_at(&[10]), &[(10, 19)]), &STANDARD, Some(1.0)).unwrap();
        assert_eq!((f.raw, f.windows, f.false_negatives), (-1.0, 1, 1));
        let f = score_file(&file(&fires_at(&[15]), &[(10, 19)]), &STANDARD, Some(1.0)).unwrap();
        assert_eq!((f.windows, f.true_positives), (1, 1));
        assert!(f.raw > 0.0 && f.raw < 1.0);
    }

    #[test]
    fn perfect_scores_100_and_silent_scores_0() {
        let windows = [(20, 29), (60, 79)];
        let other_windows = [(50, 50)];
        let perfect_a = fires_at(&[20, 60]);
        let perfect_b = fires_at(&[50]);
        let zeros = vec![0.0; ROWS];
        for profile in PROFILES {
            let perfect = [
                file(&perfect_a, &windows),
                FileInput {
                    name: "g",
                    ..file(&perfect_b, &other_windows)
                },
            ];
            let s = score_corpus(&perfect, &profile).unwrap();
            assert_eq!(s.score, Some(100.0), "{}", profile.name);
            assert_eq!(s.threshold, Some(1.0));
            assert_eq!(
                (
                    s.windows,
                    s.true_positives,
                    s.false_negatives,
                    s.false_positives
                ),
                (3, 3, 0, 0)
            );
            assert_eq!(s.files[1].file, "g");
            let silent = [file(&zeros, &windows), file(&zeros, &other_windows)];
            let s = score_corpus(&silent, &profile).unwrap();
            assert_eq!(s.score, Some(0.0));
            assert_eq!(s.threshold, None);
            assert_eq!(s.raw, -3.0 * profile.fn_weight);
            assert_eq!((s.null, s.perfect), (s.raw, 3.0));
            assert_eq!((s.true_positives, s.false_negatives), (0, 3));
        }
    }

    #[test]
    fn firing_everywhere_is_worse_than_silence() {
        let ones = vec![1.0; ROWS];
        let s = score_corpus(&[file(&ones, &[(40, 49)])], &STANDARD).unwrap();
        // The only threshold that fires at all fires everywhere.
        assert_eq!(s.threshold, None);
        assert_eq!(s.score, Some(0.0));
        let raw = score_file(&file(&ones, &[(40, 49)]), &STANDARD, Some(1.0)).unwrap();
        assert_eq!(raw.false_positives, ROWS - 15 - 10);
        assert!(raw.raw < -1.0);
    }

    #[test]
    fn a_fixed_threshold_can_score_below_zero() {
        let ones = vec![1.0; ROWS];
        let files = [file(&ones, &[(40, 49)])];
        let s = score_corpus_at(&files, &STANDARD, Some(0.5)).unwrap();
        let direct = score_file(&files[0], &STANDARD, Some(0.5)).unwrap();
        assert_eq!(
            (s.threshold, s.raw, s.files[0].raw),
            (Some(0.5), direct.raw, direct.raw)
        );
        assert!(s.score.unwrap() < 0.0);
        assert_eq!(
            score_all_profiles_at(&files, None).unwrap()[2].score,
            Some(0.0)
        );
    }

    #[test]
    fn sweep_picks_the_best_threshold() {
        // 0.9 at the window start, 0.5 on many rows outside: 0.9 is best, 0.5 is not.
        let mut s = vec![0.1; ROWS];
        s[40] = 0.9;
        for r in (16..36).step_by(2) {
            s[r] = 0.5;
        }
        let result = score_corpus(&[file(&s, &[(40, 49)])], &STANDARD).unwrap();
        assert_eq!(result.threshold, Some(0.9));
        assert_eq!(result.score, Some(100.0));
    }

    /// A small deterministic generator (Knuth's MMIX LCG), enough for test inputs.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
    }

    #[test]
    fn sweep_agrees_with_scoring_every_threshold_directly() {
        let mut rng = Lcg(7);
        for case in 0..200 {
            let nfiles = 1 + rng.next() as usize % 3;
            let mut data = Vec::new();
            for _ in 0..nfiles {
                let rows = 1 + rng.next() as usize % 60;
                // Few distinct levels so that ties between rows are common.
                let scores: Vec<f64> = (0..rows).map(|_| (rng.next() % 6) as f64 / 5.0).collect();
                let mut windows = Vec::new();
                let mut at = rng.next() as usize % rows;
                while at < rows && windows.len() < 3 {
                    let last = (at + rng.next() as usize % 8).min(rows - 1);
                    windows.push((at, last));
                    at = last + 1 + rng.next() as usize % 10;
                }
                data.push((scores, windows));
            }
            let files: Vec<FileInput<'_>> = data.iter().map(|(s, w)| file(s, w)).collect();
            for profile in PROFILES {
                let swept = score_corpus(&files, &profile).unwrap();
                let total = |t: Option<f64>| -> f64 {
                    files
                        .iter()
                        .map(|f| score_file(f, &profile, t).unwrap().raw)
                        .sum()
                };
                let best = (0..6)
                    .map(|k| Some(k as f64 / 5.0))
                    .chain([None])
                    .map(total)
                    .fold(f64::NEG_INFINITY, f64::max);
                assert!(
                    (swept.raw - best).abs() < 1e-9,
                    "case {case}: {} vs {best}",
                    swept.raw
                );
                assert!((total(swept.threshold) - swept.raw).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let s = fires_at(&[40]);
        let mut nan = s.clone();
        nan[3] = f64::NAN;
        let err = score_corpus(&[file(&nan, &[])], &STANDARD).unwrap_err();
        assert_eq!(err, "f: row 3: anomaly score NaN is not in [0, 1]");
        let mut big = s.clone();
        big[7] = 1.5;
        assert!(score_corpus(&[file(&big, &[])], &STANDARD).is_err());
        for windows in [
            &[(50, 40)][..],
            &[(90, 100)],
            &[(10, 20), (20, 30)],
            &[(30, 40), (10, 20)],
        ] {
            let err = score_corpus(&[file(&s, windows)], &STANDARD).unwrap_err();
            assert!(err.starts_with("f: window"), "{err}");
        }
        // No windows anywhere: raw scores, but no normalised score.
        let r = score_corpus(&[file(&s, &[])], &STANDARD).unwrap();
        assert_eq!((r.score, r.threshold, r.raw), (None, None, 0.0));
        let r = score_corpus(&[], &STANDARD).unwrap();
        assert_eq!((r.score, r.windows), (None, 0));
        // Empty files.
        let r = score_corpus(&[file(&[], &[])], &STANDARD).unwrap();
        assert_eq!(r.raw, 0.0);
    }
}
