//! `edgernn evaluate` end to end: NAB scores of synthetic results directories with known
//! answers (perfect 100, silent 0, firing everywhere below 0 at a fixed threshold), clean
//! failures on bad input, and a perfect detector on real NAB files scoring 100.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn edgernn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgernn"))
        .args(args)
        .output()
        .expect("run edgernn")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Row `i`'s timestamp in the synthetic series: every 5 minutes from 2014-01-01 00:00.
fn timestamp(i: usize) -> String {
    let minutes = i * 5;
    format!(
        "2014-01-{:02} {:02}:{:02}:00",
        1 + minutes / 1440,
        minutes % 1440 / 60,
        minutes % 60
    )
}

/// A labels key, its number of rows, and its windows as inclusive row ranges.
type SyntheticFile = (&'static str, usize, &'static [(usize, usize)]);

/// A synthetic corpus; the probationary periods are 30 rows (200-row files) and 45 rows.
const CORPUS: [SyntheticFile; 3] = [
    ("synthetic/a.csv", 200, &[(80, 99), (150, 160)]),
    ("synthetic/b.csv", 300, &[(100, 139)]),
    ("other/quiet.csv", 200, &[]),
];

/// Writes the labels file (windows as NAB writes them, with microseconds) into `dir`.
fn write_labels(dir: &Path) -> PathBuf {
    let mut json = String::from("{");
    for (k, (key, _, windows)) in CORPUS.iter().enumerate() {
        let list: Vec<String> = windows
            .iter()
            .map(|&(a, b)| format!("[\"{}.000000\", \"{}.000000\"]", timestamp(a), timestamp(b)))
            .collect();
        let comma = if k + 1 < CORPUS.len() { "," } else { "" };
        write!(json, "\n  \"{key}\": [{}]{comma}", list.join(", ")).unwrap();
    }
    json.push_str("\n}\n");
    let path = dir.join("combined_windows.json");
    std::fs::write(&path, json).unwrap();
    path
}

/// Writes a results directory with the anomaly score `score(key, row)` for every row.
fn write_results(dir: &Path, score: impl Fn(&str, usize) -> f64) -> PathBuf {
    let results = dir.join("results");
    for (key, rows, _) in CORPUS {
        let path = results.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut text = String::from("timestamp,value,anomaly_score,label\n");
        for i in 0..rows {
            writeln!(text, "{},{},{},0", timestamp(i), i % 7, score(key, i)).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }
    results
}

fn windows_of(key: &str) -> &'static [(usize, usize)] {
    CORPUS.iter().find(|(k, _, _)| *k == key).unwrap().2
}

fn evaluate_json(results: &Path, labels: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "evaluate",
        "--results",
        path_str(results),
        "--labels",
        path_str(labels),
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = edgernn(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn profile_scores(report: &serde_json::Value) -> Vec<f64> {
    let profiles = report["profiles"].as_array().unwrap();
    let names: Vec<&str> = profiles
        .iter()
        .map(|p| p["profile"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]
    );
    profiles
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .collect()
}

#[test]
fn perfect_detector_scores_100_on_every_profile() {
    let dir = tempfile::tempdir().unwrap();
    let labels = write_labels(dir.path());
    let results = write_results(dir.path(), |key, row| {
        let starts = windows_of(key).iter().any(|&(a, _)| a == row);
        if starts {
            0.9
        } else {
            0.1
        }
    });
    let report = evaluate_json(&results, &labels, &[]);
    assert_eq!(profile_scores(&report), [100.0, 100.0, 100.0]);
    assert_eq!(report["files_scored"], 3);
    for p in report["profiles"].as_array().unwrap() {
        assert_eq!(p["threshold"], 0.9);
        assert_eq!(
            (&p["tp"], &p["fn"], &p["fp"]),
            (&3.into(), &0.into(), &0.into())
        );
        assert_eq!(p["windows"], 3);
        assert_eq!(p["files"].as_array().unwrap().len(), 3);
    }
    assert_eq!(report["profiles"][0]["files"][0]["file"], "other/quiet.csv");
    assert_eq!(report["profiles"][0]["files"][1]["raw"], 2.0);

    // The table says the same.
    let o = edgernn(&[
        "evaluate",
        "--results",
        path_str(&results),
        "--labels",
        path_str(&labels),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("scored 3 of 3 labelled files (3 windows)"),
        "{text}"
    );
    let standard = text.lines().find(|l| l.starts_with("standard")).unwrap();
    let fields: Vec<&str> = standard.split_whitespace().collect();
    assert_eq!(fields, ["standard", "100.00", "0.900000", "3", "0", "0"]);
}

#[test]
fn never_firing_detector_scores_0() {
    let dir = tempfile::tempdir().unwrap();
    let labels = write_labels(dir.path());
    let results = write_results(dir.path(), |_, _| 0.0);
    let report = evaluate_json(&results, &labels, &[]);
    assert_eq!(profile_scores(&report), [0.0, 0.0, 0.0]);
    for p in report["profiles"].as_array().unwrap() {
        // Firing nowhere scores best: no threshold.
        assert!(p["threshold"].is_null());
        assert_eq!((&p["tp"], &p["fn"]), (&0.into(), &3.into()));
    }
}

#[test]
fn detector_firing_everywhere_scores_below_0_at_its_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let labels = write_labels(dir.path());
    let results = write_results(dir.path(), |_, _| 1.0);
    let fixed = evaluate_json(&results, &labels, &["--threshold", "0.5"]);
    let scores = profile_scores(&fixed);
    assert!(scores[0] < 0.0, "{scores:?}");
    assert!(
        scores[1] < scores[0],
        "false positives cost more: {scores:?}"
    );
    assert_eq!(fixed["profiles"][0]["tp"], 3);
    // The rows after each file's probationary period, outside its windows.
    assert_eq!(
        fixed["profiles"][0]["fp"],
        (200 - 30 - 31) + (300 - 45 - 40) + (200 - 30)
    );
    // With NAB's optimised threshold, firing nowhere is better, so the score is 0.
    let optimised = evaluate_json(&results, &labels, &[]);
    assert_eq!(profile_scores(&optimised), [0.0, 0.0, 0.0]);
}

#[test]
fn missing_results_are_a_warning_and_only_present_files_are_scored() {
    let dir = tempfile::tempdir().unwrap();
    let labels = write_labels(dir.path());
    let results = write_results(dir.path(), |key, row| {
        f64::from(u8::from(windows_of(key).iter().any(|&(a, _)| a == row)))
    });
    std::fs::remove_file(results.join("synthetic/b.csv")).unwrap();
    // Hidden files and files outside category folders are not results.
    std::fs::write(results.join("summary.csv"), "not,a,result\n").unwrap();
    std::fs::write(results.join("synthetic/.hidden.csv"), "junk").unwrap();
    std::fs::write(results.join("synthetic/a.png"), "junk").unwrap();
    let o = edgernn(&[
        "evaluate",
        "--results",
        path_str(&results),
        "--labels",
        path_str(&labels),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let warning = format!(
        "warning: 1 of 3 labelled files have no results in {} and are not scored: \
         synthetic/b.csv",
        results.display()
    );
    assert!(stderr(&o).contains(&warning), "{}", stderr(&o));
    assert!(stdout(&o).contains("scored 2 of 3 labelled files (2 windows)"));
    let report = evaluate_json(&results, &labels, &[]);
    assert_eq!(
        report["files_missing"],
        serde_json::json!(["synthetic/b.csv"])
    );
    assert_eq!(profile_scores(&report), [100.0, 100.0, 100.0]);
}

/// Runs evaluate and checks it fails with exit code 2 and `error: <file>: ...<expected>`.
fn assert_bad_input(results: &Path, labels: &Path, extra: &[&str], file: &Path, expected: &str) {
    let mut args = vec![
        "evaluate",
        "--results",
        path_str(results),
        "--labels",
        path_str(labels),
    ];
    args.extend_from_slice(extra);
    let o = edgernn(&args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(&format!("error: {}: ", file.display())),
        "{err}"
    );
    assert!(err.contains(expected), "expected {expected:?} in {err}");
    assert!(!err.contains("panic"), "{err}");
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let labels = write_labels(dir.path());
    let results = write_results(dir.path(), |_, _| 0.5);

    let missing = dir.path().join("missing.json");
    assert_bad_input(&results, &missing, &[], &missing, "cannot read");
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"synthetic/a.csv\": [[\"2014-01-01 00:00:00\"").unwrap();
    assert_bad_input(&results, &broken, &[], &broken, "not valid JSON");
    let bad_time = dir.path().join("bad_time.json");
    std::fs::write(
        &bad_time,
        r#"{"synthetic/a.csv": [["2014-01-01", "2014-01-02"]]}"#,
    )
    .unwrap();
    assert_bad_input(
        &results,
        &bad_time,
        &[],
        &bad_time,
        "\"synthetic/a.csv\": window 1",
    );

    let nowhere = dir.path().join("nowhere");
    assert_bad_input(
        &nowhere,
        &labels,
        &[],
        &nowhere,
        "cannot read the directory",
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_bad_input(&empty, &labels, &[], &empty, "no results files");

    let stray = results.join("synthetic/unlabelled.csv");
    std::fs::copy(results.join("synthetic/a.csv"), &stray).unwrap();
    assert_bad_input(
        &results,
        &labels,
        &[],
        &stray,
        "synthetic/unlabelled.csv is not in the labels",
    );
    std::fs::remove_file(&stray).unwrap();

    let a = results.join("synthetic/a.csv");
    let good = std::fs::read_to_string(&a).unwrap();
    let cases = [
        (
            good.replacen(",0.5,", ",1.5,", 1),
            "line 2: anomaly_score 1.5 is not a number in [0, 1]",
        ),
        (
            good.replacen(",0.5,", ",NaN,", 3),
            "line 2: anomaly_score NaN",
        ),
        (
            good.replacen(",0.5,", ",-0.1,", 1),
            "line 2: anomaly_score -0.1",
        ),
        (
            good.replacen(",0.5,", ",high,", 1),
            "line 2: anomaly_score \"high\" is not a number",
        ),
        (
            good.replace("anomaly_score", "score"),
            "no \"anomaly_score\" column",
        ),
        ("timestamp,value,anomaly_score\n".to_owned(), "no data rows"),
    ];
    for (text, expected) in cases {
        std::fs::write(&a, text).unwrap();
        assert_bad_input(&results, &labels, &[], &a, expected);
    }
    std::fs::write(&a, good).unwrap();

    let o = edgernn(&[
        "evaluate",
        "--results",
        path_str(&results),
        "--labels",
        path_str(&labels),
        "--threshold",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--threshold 2: expected a number in [0, 1]"));
}

/// NAB's data, kept next to the repository (see ../shared/data/README.md).
fn nab_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/nab")
}

#[test]
fn perfect_detector_on_real_nab_files_scores_100() {
    let nab = nab_data();
    let labels = nab.join("labels/combined_windows.json");
    assert!(
        labels.is_file(),
        "the NAB data set is missing: expected {}",
        labels.display()
    );
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&labels).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    // One window, two windows, and timestamps with seconds.
    let keys = [
        "artificialWithAnomaly/art_daily_jumpsup.csv",
        "realKnownCause/rogue_agent_key_hold.csv",
        "realAdExchange/exchange-2_cpc_results.csv",
    ];
    let mut windows = 0;
    for key in keys {
        // NAB's window edges are row timestamps, written with microseconds.
        let starts: Vec<String> = all[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                w[0].as_str()
                    .unwrap()
                    .trim_end_matches(".000000")
                    .to_owned()
            })
            .collect();
        windows += starts.len();
        let data = std::fs::read_to_string(nab.join("data").join(key)).unwrap();
        let mut text = String::from("timestamp,value,anomaly_score\n");
        let mut found = 0;
        for line in data.lines().skip(1) {
            let timestamp = line.split(',').next().unwrap();
            let hit = starts.iter().any(|s| s == timestamp);
            found += usize::from(hit);
            writeln!(text, "{line},{}", u8::from(hit)).unwrap();
        }
        assert_eq!(found, starts.len(), "{key}: every window starts on a row");
        let path = results.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let report = evaluate_json(&results, &labels, &[]);
    assert_eq!(profile_scores(&report), [100.0, 100.0, 100.0]);
    assert_eq!(report["files_scored"], keys.len());
    assert_eq!(report["profiles"][0]["windows"], windows);
    assert_eq!(report["profiles"][0]["fp"], 0);
}
