//! NAB's inputs: the labelled anomaly windows (`combined_windows.json`) and the data and
//! results CSV files (`timestamp,value[,anomaly_score,...]`).
//!
//! Timestamps become [`Timestamp`]s, microseconds since 1970-01-01 00:00:00 in the file's own
//! (unstated) time zone: NAB only compares timestamps of one file with each other, so a
//! monotonic key is all that is needed, and a tiny civil-date conversion avoids a date crate.

use std::collections::BTreeMap;
use std::path::Path;

/// Microseconds since 1970-01-01 00:00:00 (no time zone, no leap seconds).
pub type Timestamp = i64;

/// The labelled windows of every file: the labels key (`"<category>/<name>.csv"`) to its
/// windows, each `(start, end)` inclusive, sorted and not overlapping.
pub type Windows = BTreeMap<String, Vec<(Timestamp, Timestamp)>>;

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Parses `YYYY-MM-DD HH:MM:SS` with optional fractional seconds (`.f` up to nine digits;
/// digits past the microsecond are dropped). A `T` may replace the space (ISO 8601).
///
/// # Errors
/// A message saying what is wrong when the text is not such a timestamp or names a date or
/// time that does not exist (month 13, February 30, hour 24).
pub fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    let bad = |why: &str| {
        Err(format!(
            "{text:?} is not a YYYY-MM-DD HH:MM:SS timestamp: {why}"
        ))
    };
    let b = text.as_bytes();
    if b.len() < 19 {
        return bad("too short");
    }
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b[i] != c) || !matches!(b[10], b' ' | b'T') {
        return bad("misplaced separator");
    }
    let field = |from: usize, to: usize| -> Option<i64> {
        let digits = &b[from..to];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')),
        )
    };
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        field(0, 4),
        field(5, 7),
        field(8, 10),
        field(11, 13),
        field(14, 16),
        field(17, 19),
    ) else {
        return bad("non-digit in a number");
    };
    let mut micros = 0i64;
    match &b[19..] {
        [] => {}
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            if !fraction.iter().all(u8::is_ascii_digit) {
                return bad("non-digit in the fraction");
            }
            // Pad or cut to exactly six digits: microseconds.
            for k in 0..6 {
                let digit = fraction.get(k).map_or(0, |d| i64::from(d - b'0'));
                micros = micros * 10 + digit;
            }
        }
        _ => return bad("unexpected text after the seconds"),
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return bad("no such date");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return bad("no such time");
    }
    let days = days_from_civil(year, month, day);
    Ok((days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second) * MICROS_PER_SECOND + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar: Howard Hinnant's
/// `days_from_civil` (<https://howardhinnant.github.io/date_algorithms.html>), which counts
/// whole 400-year eras of 146097 days from a March-based year so leap days fall at year end.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Parses the text of a `combined_windows.json`: an object mapping each labels key to a list
/// of `[start, end]` timestamp pairs. `path` only names the file in errors.
///
/// Windows must be in time order and must not overlap: NAB's windows never do, and the
/// scoring gives each row to at most one window, so overlapping labels are refused rather
/// than silently merged.
///
/// # Errors
/// A message naming the file (and the key, where there is one) for JSON that does not parse,
/// a value of the wrong shape, a bad timestamp, a window ending before it starts, or windows
/// out of order or overlapping.
pub fn parse_windows(json: &str, path: &Path) -> Result<Windows, String> {
    let file = path.display();
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("{file}: not valid JSON: {e}"))?;
    let serde_json::Value::Object(object) = value else {
        return Err(format!(
            "{file}: expected a JSON object mapping \"<category>/<name>.csv\" to windows"
        ));
    };
    let mut windows = Windows::new();
    for (key, list) in object {
        let fail = |what: String| format!("{file}: {key:?}: {what}");
        let serde_json::Value::Array(list) = list else {
            return Err(fail("expected a list of [start, end] windows".into()));
        };
        let mut parsed: Vec<(Timestamp, Timestamp)> = Vec::with_capacity(list.len());
        for (n, pair) in list.iter().enumerate() {
            let window = n + 1;
            let pair = match pair.as_array().map(Vec::as_slice) {
                Some([serde_json::Value::String(start), serde_json::Value::String(end)]) => {
                    (start, end)
                }
                _ => {
                    return Err(fail(format!(
                        "window {window}: expected [\"start\", \"end\"] timestamp strings"
                    )))
                }
            };
            let start =
                parse_timestamp(pair.0).map_err(|e| fail(format!("window {window}: {e}")))?;
            let end = parse_timestamp(pair.1).map_err(|e| fail(format!("window {window}: {e}")))?;
            if start > end {
                return Err(fail(format!(
                    "window {window}: starts ({}) after it ends ({})",
                    pair.0, pair.1
                )));
            }
            if let Some(&(_, previous_end)) = parsed.last() {
                if start <= previous_end {
                    return Err(fail(format!(
                        "window {window} starts before window {n} ends (windows must be in \
                         time order and not overlap)"
                    )));
                }
            }
            parsed.push((start, end));
        }
        windows.insert(key, parsed);
    }
    Ok(windows)
}

/// Reads and parses a `combined_windows.json` file (see [`parse_windows`]).
///
/// # Errors
/// As [`parse_windows`], and when the file cannot be read.
pub fn read_windows(path: &Path) -> Result<Windows, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    parse_windows(&text, path)
}

/// Row index ranges `(first, last)`, inclusive, of each window over the rows' `timestamps`,
/// found as NAB's sweeper finds them, scanning the rows in file order: a window opens at the
/// first row at or after its start and closes at the first row at its end (or just before the
/// first row past it). NAB's window edges are row timestamps; this also places windows whose
/// edges fall between rows, and copes with the repeated and out-of-order timestamps some NAB
/// files have (a window is always a contiguous run of rows, and the next window is looked for
/// after it, so the ranges come out in order and disjoint).
///
/// Windows that cover no row (past the series, or between two rows) cannot be detected or
/// missed, so they are left out, as NAB's sweeper leaves out windows without scorable rows;
/// compare the lengths to notice them.
pub fn window_rows(
    timestamps: &[Timestamp],
    windows: &[(Timestamp, Timestamp)],
) -> Vec<(usize, usize)> {
    let rows = timestamps.len();
    let mut out = Vec::with_capacity(windows.len());
    let mut from = 0;
    for &(start, end) in windows {
        let Some(first) = (from..rows).find(|&i| timestamps[i] >= start) else {
            break;
        };
        if timestamps[first] > end {
            // Between two rows; the row found may open the next window.
            from = first;
            continue;
        }
        let last = match (first..rows).find(|&i| timestamps[i] >= end) {
            Some(i) if timestamps[i] == end => i,
            // `first` is at or before the end, so a row past it is after `first`.
            Some(i) => i - 1,
            None => rows - 1,
        };
        out.push((first, last));
        from = last + 1;
    }
    out
}

/// A CSV time series: its timestamps and the requested numeric columns, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// One per row, in file order (not necessarily increasing: see [`read_columns`]).
    pub timestamps: Vec<Timestamp>,
    /// One vector per requested column, in the order asked for, each as long as `timestamps`.
    pub columns: Vec<Vec<f64>>,
    /// The 1-based line of each row in the file, for error messages about a value.
    pub lines: Vec<u64>,
}

/// Reads a NAB data or results CSV: a header row naming a `timestamp` column and the
/// `columns` asked for (other columns are ignored), then one row per reading.
///
/// Numbers use Rust's float syntax (`NaN` and `inf` included: range checks are the caller's,
/// who knows what the column means). Timestamps are not required to increase: NAB's own
/// files repeat a few (`exchange-2_cpc_results.csv` line 1306, `occupancy_t4013.csv`) and
/// once go back an hour (`machine_temperature_system_failure.csv` line 10151), and NAB
/// scores them as they are, row by row.
///
/// # Errors
/// A message naming the file, and the line where there is one: the file cannot be read, a
/// column is missing from the header, a row has too few fields, a timestamp or number does
/// not parse, or there are no rows.
pub fn read_columns(path: &Path, columns: &[&str]) -> Result<Series, String> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| format!("{file}: cannot read: {e}"))?;
    let header = reader
        .headers()
        .map_err(|e| format!("{file}: cannot read the header: {e}"))?
        .clone();
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{file}: line 1: no {name:?} column in the header"))
    };
    let time_index = find("timestamp")?;
    let indices = columns
        .iter()
        .map(|c| find(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut series = Series {
        timestamps: Vec::new(),
        columns: vec![Vec::new(); columns.len()],
        lines: Vec::new(),
    };
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e
                    .position()
                    .map_or(String::new(), |p| format!("line {}: ", p.line()));
                return Err(format!("{file}: {line}{e}"));
            }
        }
        let line = record.position().map_or(0, csv::Position::line);
        let get = |index: usize, name: &str| {
            record.get(index).ok_or_else(|| {
                format!(
                    "{file}: line {line}: {} fields, no {name:?} field",
                    record.len()
                )
            })
        };
        let timestamp = parse_timestamp(get(time_index, "timestamp")?)
            .map_err(|e| format!("{file}: line {line}: {e}"))?;
        for ((&index, name), column) in indices.iter().zip(columns).zip(&mut series.columns) {
            let text = get(index, name)?;
            let value: f64 = text
                .parse()
                .map_err(|_| format!("{file}: line {line}: {name} {text:?} is not a number"))?;
            column.push(value);
        }
        series.timestamps.push(timestamp);
        series.lines.push(line);
    }
    if series.timestamps.is_empty() {
        return Err(format!("{file}: no data rows"));
    }
    Ok(series)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = SECONDS_PER_DAY * MICROS_PER_SECOND;

    #[test]
    fn timestamps_match_known_epoch_values() {
        // Values from `date -u -d ... +%s`.
        let cases = [
            ("1970-01-01 00:00:00", 0),
            ("2014-02-19 10:50:00", 1_392_807_000),
            ("2000-02-29 23:59:59", 951_868_799),
            ("1969-12-31 23:59:59", -1),
            ("2100-03-01 00:00:00", 4_107_542_400),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                parse_timestamp(text),
                Ok(seconds * MICROS_PER_SECOND),
                "{text}"
            );
        }
        assert_eq!(
            parse_timestamp("2014-02-19 10:50:00.000000"),
            parse_timestamp("2014-02-19T10:50:00")
        );
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5"), Ok(1_500_000));
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:00.123456789"),
            Ok(123_456)
        );
    }

    #[test]
    fn days_are_consecutive_across_month_and_year_ends() {
        let mut previous = parse_timestamp("1899-12-31 00:00:00").unwrap();
        for year in 1900..2101 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    let text = format!("{year:04}-{month:02}-{day:02} 00:00:00");
                    let t = parse_timestamp(&text).unwrap();
                    assert_eq!(t - previous, DAY, "{text}");
                    previous = t;
                }
            }
        }
    }

    #[test]
    fn bad_timestamps_are_errors() {
        for text in [
            "",
            "2014-02-19",
            "2014-02-19 10:50",
            "2014/02/19 10:50:00",
            "2014-13-01 00:00:00",
            "2014-02-29 00:00:00",
            "2014-00-10 00:00:00",
            "2014-01-00 00:00:00",
            "2014-01-01 24:00:00",
            "2014-01-01 00:60:00",
            "2014-01-01 00:00:60",
            "2014-01-01 00:00:00.",
            "2014-01-01 00:00:00.1234567890",
            "2014-01-01 00:00:00.1x",
            "2014-01-01 00:00:00Z",
            "+014-01-01 00:00:00",
            "2014-01-01 00:00:0\u{e9}",
        ] {
            assert!(parse_timestamp(text).is_err(), "{text:?}");
        }
    }

    fn parse(json: &str) -> Result<Windows, String> {
        parse_windows(json, Path::new("w.json"))
    }

    #[test]
    fn parses_windows() {
        let w = parse(
            r#"{"a/x.csv": [["2014-01-01 00:00:00.000000", "2014-01-01 00:10:00.000000"],
                            ["2014-01-02 00:00:00", "2014-01-02 00:00:00"]],
                "b/y.csv": []}"#,
        )
        .unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w["b/y.csv"], []);
        let t0 = parse_timestamp("2014-01-01 00:00:00").unwrap();
        assert_eq!(w["a/x.csv"][0], (t0, t0 + 600 * MICROS_PER_SECOND));
        assert_eq!(w["a/x.csv"][1].0, t0 + DAY);
    }

    #[test]
    fn window_errors_name_file_and_key() {
        let cases = [
            ("{", "not valid JSON"),
            ("[]", "expected a JSON object"),
            (r#"{"a/x.csv": 3}"#, "\"a/x.csv\": expected a list"),
            (
                r#"{"a/x.csv": [["2014-01-01 00:00:00"]]}"#,
                "\"a/x.csv\": window 1: expected",
            ),
            (r#"{"a/x.csv": [[1, 2]]}"#, "window 1: expected"),
            (
                r#"{"a/x.csv": [["2014-01-01 00:00:00", "soon"]]}"#,
                "\"soon\" is not",
            ),
            (
                r#"{"a/x.csv": [["2014-01-02 00:00:00", "2014-01-01 00:00:00"]]}"#,
                "window 1: starts (2014-01-02 00:00:00) after it ends",
            ),
            (
                r#"{"a/x.csv": [["2014-01-01 00:00:00", "2014-01-03 00:00:00"],
                                ["2014-01-02 00:00:00", "2014-01-04 00:00:00"]]}"#,
                "\"a/x.csv\": window 2 starts before window 1 ends",
            ),
        ];
        for (json, expected) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.starts_with("w.json: "), "{err}");
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    #[test]
    fn windows_map_to_rows_by_timestamp() {
        let t = [10, 20, 30, 40, 50];
        assert_eq!(window_rows(&t, &[(20, 40)]), [(1, 3)]);
        // Edges between rows move inwards; windows covering no row are left out.
        assert_eq!(window_rows(&t, &[(15, 45)]), [(1, 3)]);
        assert_eq!(window_rows(&t, &[(0, 10), (50, 99)]), [(0, 0), (4, 4)]);
        assert_eq!(window_rows(&t, &[(0, 5), (21, 29), (51, 60)]), []);
        assert_eq!(window_rows(&[], &[(0, 5)]), []);
        // A window between rows does not hide the next one starting at the row after it.
        assert_eq!(window_rows(&t, &[(21, 29), (30, 30)]), [(2, 2)]);
    }

    #[test]
    fn windows_over_repeated_and_out_of_order_timestamps() {
        // Repeated timestamps: the window opens and closes at the first row with the edge
        // timestamp, as NAB's sweeper does.
        let t = [10, 20, 20, 30, 30, 40];
        assert_eq!(window_rows(&t, &[(20, 30)]), [(1, 3)]);
        assert_eq!(window_rows(&t, &[(20, 20), (30, 40)]), [(1, 1), (3, 5)]);
        // Going back in time inside a window keeps it one contiguous run of rows.
        let t = [10, 20, 30, 25, 35, 40, 50];
        assert_eq!(window_rows(&t, &[(20, 35)]), [(1, 4)]);
        assert_eq!(window_rows(&t, &[(20, 30), (32, 45)]), [(1, 2), (4, 5)]);
    }

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_named_columns() {
        let (_dir, path) = write(
            "timestamp,value,anomaly_score,label\n\
             2014-01-01 00:00:00,1.5,0.25,0\n\
             2014-01-01 00:05:00,-2,1,1\n",
        );
        let s = read_columns(&path, &["anomaly_score", "value"]).unwrap();
        let t0 = parse_timestamp("2014-01-01 00:00:00").unwrap();
        assert_eq!(s.timestamps, [t0, t0 + 300 * MICROS_PER_SECOND]);
        assert_eq!(s.columns, [vec![0.25, 1.0], vec![1.5, -2.0]]);
        assert_eq!(s.lines, [2, 3]);
    }

    #[test]
    fn csv_errors_name_file_and_line() {
        let cases = [
            ("timestamp,value\n", "no data rows"),
            ("", "no \"timestamp\" column"),
            (
                "time,value\n2014-01-01 00:00:00,1\n",
                "line 1: no \"timestamp\" column",
            ),
            (
                "timestamp,score\n2014-01-01 00:00:00,1\n",
                "line 1: no \"value\" column",
            ),
            (
                "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00\n",
                "line 3: 1 fields, no \"value\" field",
            ),
            (
                "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,x\n",
                "line 3: value \"x\" is not a number",
            ),
            (
                "timestamp,value\nyesterday,1\n",
                "line 2: \"yesterday\" is not",
            ),
            (
                "timestamp,value\n2014-01-01 00:00:00,\u{0}\u{ff}\n",
                "line 2",
            ),
        ];
        for (text, expected) in cases {
            let (_dir, path) = write(text);
            let err = read_columns(&path, &["value"]).unwrap_err();
            assert!(err.starts_with(&path.display().to_string()), "{err}");
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let err = read_columns(Path::new("/nonexistent/x.csv"), &[]).unwrap_err();
        assert!(err.starts_with("/nonexistent/x.csv: cannot read"), "{err}");
    }
}
