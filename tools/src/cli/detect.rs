//! `edgernn detect`: stream a CSV series through the on-device anomaly detector of a blob and
//! write one score per row, optionally with a plot.

use std::io::Write;
use std::path::{Path, PathBuf};

use edgernn::detect::Detection;

use super::{load_model, read_blob, Failure};
use crate::detect;
use crate::io::atomic::{ensure_not_same_file, write_atomic, write_atomic_with};
use crate::nab::labels::{self, Timestamp};

/// The options of `edgernn detect`.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    pub model: PathBuf,
    pub data: PathBuf,
    pub column: String,
    pub output: PathBuf,
    pub plot: Option<PathBuf>,
    /// NAB `combined_windows.json`, to shade the labelled windows in the plot.
    pub labels: Option<PathBuf>,
}

/// A series read from a CSV file with a `timestamp` column.
pub struct TimeSeries {
    pub timestamps: Vec<Timestamp>,
    pub values: Vec<f32>,
    /// The 1-based line of each row.
    pub lines: Vec<u64>,
}

/// Reads `column` of a CSV file with a `timestamp` column; every value must be a finite f32.
///
/// # Errors
/// Bad input naming the file and line.
pub fn read_series(path: &Path, column: &str) -> Result<TimeSeries, Failure> {
    let series = labels::read_columns(path, &[column]).map_err(Failure::BadInput)?;
    let raw = series.columns.into_iter().next().unwrap_or_default();
    let mut values = Vec::with_capacity(raw.len());
    for (v, line) in raw.iter().zip(&series.lines) {
        let x = *v as f32;
        if !x.is_finite() {
            return Err(Failure::input(
                path,
                format!("line {line}: {column} {v} is not a finite 32-bit number"),
            ));
        }
        values.push(x);
    }
    Ok(TimeSeries {
        timestamps: series.timestamps,
        values,
        lines: series.lines,
    })
}

/// `YYYY-MM-DD HH:MM:SS` (with `.ffffff` when there are microseconds), the inverse of
/// [`labels::parse_timestamp`].
pub fn format_timestamp(t: Timestamp) -> String {
    let micros = t.rem_euclid(1_000_000);
    let seconds = t.div_euclid(1_000_000);
    let (days, day_seconds) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days: the inverse of days_from_civil, on March-based years.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (day_seconds / 3600, day_seconds / 60 % 60, day_seconds % 60);
    let mut text = format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}");
    if micros != 0 {
        text.push_str(&format!(".{micros:06}"));
    }
    text
}

/// Writes `timestamp,value,anomaly_score[,flag]`, one row per sample, atomically.
///
/// # Errors
/// Bad input naming the output file when it cannot be written.
pub fn write_scores(
    path: &Path,
    series: &TimeSeries,
    detections: &[Detection],
    with_flag: bool,
) -> Result<(), Failure> {
    write_atomic_with(path, |out: &mut dyn Write| {
        writeln!(
            out,
            "timestamp,value,anomaly_score{}",
            if with_flag { ",flag" } else { "" }
        )?;
        for ((&t, &v), d) in series.timestamps.iter().zip(&series.values).zip(detections) {
            write!(out, "{},{v},{}", format_timestamp(t), d.score)?;
            if with_flag {
                write!(out, ",{}", u8::from(d.flag))?;
            }
            writeln!(out)?;
        }
        Ok(())
    })
    .map_err(Failure::from)
}

/// The NAB labels key of a data file: its parent folder and name (`<category>/<name>.csv`).
pub fn labels_key(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match path.parent().and_then(Path::file_name) {
        Some(category) => format!("{}/{name}", category.to_string_lossy()),
        None => name,
    }
}

/// Runs `edgernn detect`.
///
/// # Errors
/// Bad input (exit 2) naming the file: unreadable blob or data, a model without detector
/// parameters, a value that is not finite, labels that do not parse.
pub fn run(o: &DetectOptions) -> Result<(), Failure> {
    ensure_not_same_file(&o.data, &o.output)?;
    if let Some(plot) = &o.plot {
        ensure_not_same_file(&o.data, plot)?;
    }
    let blob = read_blob(&o.model)?;
    let model = load_model(&o.model, &blob)?;
    let params = model.detector_params().ok_or_else(|| {
        Failure::input(
            &o.model,
            "the model has no detector parameters (train one with `edgernn nab`, or see \
             `edgernn train --detector`)",
        )
    })?;
    let series = read_series(&o.data, &o.column)?;
    let windows = match &o.labels {
        None => Vec::new(),
        Some(path) => {
            let all = labels::read_windows(path).map_err(Failure::BadInput)?;
            let key = labels_key(&o.data);
            // A file copied out of NAB's tree keeps its name, not its category folder.
            let suffix = format!(
                "/{}",
                o.data.file_name().unwrap_or_default().to_string_lossy()
            );
            let mut by_name = all.iter().filter(|(k, _)| k.ends_with(&suffix));
            let fallback = match (by_name.next(), by_name.next()) {
                (Some((_, w)), None) => Some(w),
                _ => None,
            };
            match all.get(&key).or(fallback) {
                Some(w) => labels::window_rows(&series.timestamps, w),
                None => {
                    eprintln!(
                        "warning: {}: no windows for {key}; the plot shows none",
                        path.display()
                    );
                    Vec::new()
                }
            }
        }
    };
    let detections = detect::stream(&model, &series.values).map_err(|e| match e {
        detect::StreamError::Model(e) => Failure::input(&o.model, e),
        detect::StreamError::Sample { index, error } => Failure::input(
            &o.data,
            format!(
                "line {}: {error}",
                series.lines.get(index).copied().unwrap_or(0)
            ),
        ),
    })?;
    write_scores(&o.output, &series, &detections, true)?;
    if let Some(plot) = &o.plot {
        let scores: Vec<f32> = detections.iter().map(|d| d.score).collect();
        let flags: Vec<bool> = detections.iter().map(|d| d.flag).collect();
        let png = crate::nab::plot::detection_png(
            &series.values,
            &scores,
            &flags,
            &windows,
            &o.data.display().to_string(),
        )
        .map_err(|e| Failure::Internal(format!("drawing the plot: {e}")))?;
        write_atomic(plot, &png)?;
    }

    let alarms: Vec<usize> = (0..detections.len())
        .filter(|&i| detections[i].alarm)
        .collect();
    println!(
        "{}: {} samples, {} alarms (flag on at score >= {}, off below {}); detector RAM {} B \
         (model state + scratch + window of {})",
        o.data.display(),
        series.values.len(),
        alarms.len(),
        params.flag_on,
        params.flag_off,
        detect::device_ram_bytes(&model, &params),
        params.window
    );
    for &i in &alarms {
        let in_window = windows.iter().any(|&(a, b)| (a..=b).contains(&i));
        println!(
            "  alarm at {} (line {}): value {}, score {:.3}{}",
            format_timestamp(series.timestamps[i]),
            series.lines[i],
            series.values[i],
            detections[i].score,
            if windows.is_empty() {
                ""
            } else if in_window {
                "  [inside a labelled window]"
            } else {
                "  [outside the labelled windows]"
            }
        );
    }
    println!("wrote {}", o.output.display());
    if let Some(plot) = &o.plot {
        println!("wrote {}", plot.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_back_to_their_text() {
        for text in [
            "2014-02-19 10:50:00",
            "1970-01-01 00:00:00",
            "2000-02-29 23:59:59",
            "2013-12-31 00:05:00.250000",
            "1969-12-31 23:59:59",
        ] {
            let t = labels::parse_timestamp(text).expect("parses");
            assert_eq!(format_timestamp(t), text);
        }
    }

    #[test]
    fn labels_key_is_category_and_name() {
        assert_eq!(
            labels_key(Path::new("/x/data/realKnownCause/machine.csv")),
            "realKnownCause/machine.csv"
        );
    }
}
