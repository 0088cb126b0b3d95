//! The anomaly detector end to end through the CLI: `train --detector`, `detect`, `nab` and
//! `evaluate` on synthetic series with known anomalies, and clean failures on bad input.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn edgernn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgernn"))
        .args(args)
        .output()
        .expect("run edgernn")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A daily-cycle series every 5 minutes with noise, and a spike and a level shift at the
/// given rows.
fn series(rows: usize, spike: usize, shift: usize, seed: u32) -> Vec<f32> {
    let mut state = seed;
    (0..rows)
        .map(|t| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            let day = (t as f32 * std::f32::consts::TAU / 288.0).sin();
            let mut v = 50.0 + 10.0 * day + 1.5 * noise;
            if t == spike {
                v += 40.0;
            }
            if t >= shift {
                v += 15.0;
            }
            v
        })
        .collect()
}

fn timestamp(row: usize) -> String {
    let minutes = row * 5;
    let (day, hour, minute) = (1 + minutes / 1440, minutes / 60 % 24, minutes % 60);
    format!("2014-03-{day:02} {hour:02}:{minute:02}:00")
}

fn write_csv(path: &Path, values: &[f32]) {
    let mut out = String::from("timestamp,value\n");
    for (t, v) in values.iter().enumerate() {
        writeln!(out, "{},{v}", timestamp(t)).unwrap();
    }
    std::fs::write(path, out).unwrap();
}

const ROWS: usize = 2400;
const SPIKE: usize = 1200;
const SHIFT: usize = 1900;

fn train_detector(dir: &Path, data: &Path, extra: &[&str]) -> PathBuf {
    let model = dir.join("model.ern");
    let mut args = vec![
        "train",
        "--data",
        p(data),
        "--features",
        "value",
        "--target",
        "value",
        "--timestamp",
        "timestamp",
        "--rows",
        "360",
        "--window",
        "16",
        "--units",
        "8",
        "--epochs",
        "40",
        "--learning-rate",
        "3e-3",
        "--batch-size",
        "32",
        "--detector",
        "--quiet",
        "-o",
        p(&model),
    ];
    args.extend_from_slice(extra);
    let o = edgernn(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    model
}

fn read_scores(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

#[test]
fn detect_flags_the_spike_and_the_shift_and_nothing_on_plain_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("machine.csv");
    write_csv(&data, &series(ROWS, SPIKE, SHIFT, 7));
    let model = train_detector(dir.path(), &data, &["--quantize", "int8"]);
    for blob in [model.clone(), dir.path().join("model.int8.ern")] {
        let scores = dir.path().join("scores.csv");
        let plot = dir.path().join("scores.png");
        let o = edgernn(&[
            "detect",
            p(&blob),
            "--data",
            p(&data),
            "-o",
            p(&scores),
            "--plot",
            p(&plot),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let rows = read_scores(&scores);
        assert_eq!(rows.len(), ROWS);
        assert_eq!(rows[0][0], timestamp(0));
        assert!(rows.iter().all(|r| r.len() == 4));
        let alarms: Vec<usize> = (0..ROWS)
            .filter(|&t| rows[t][3] == "1" && (t == 0 || rows[t - 1][3] == "0"))
            .collect();
        let near = |t: usize, at: usize| (at..at + 12).contains(&t);
        assert!(alarms.iter().any(|&t| near(t, SPIKE)), "{alarms:?}");
        assert!(alarms.iter().any(|&t| near(t, SHIFT)), "{alarms:?}");
        let stray = alarms
            .iter()
            .filter(|&&t| !near(t, SPIKE) && !near(t, SHIFT))
            .count();
        assert!(
            stray <= 2,
            "{stray} alarms away from the anomalies: {alarms:?}"
        );
        let png = std::fs::read(&plot).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(text(&o.stdout).contains("alarm at"));
    }
}

#[test]
fn detect_refuses_bad_input_naming_the_file_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("series.csv");
    write_csv(&data, &series(600, 400, 500, 3));
    let model = train_detector(dir.path(), &data, &[]);
    let scores = dir.path().join("scores.csv");

    let plain = dir.path().join("plain.ern");
    let o = edgernn(&[
        "train",
        "--data",
        p(&data),
        "--features",
        "value",
        "--target",
        "value",
        "--timestamp",
        "timestamp",
        "--window",
        "8",
        "--units",
        "4",
        "--epochs",
        "1",
        "--quiet",
        "-o",
        p(&plain),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = edgernn(&["detect", p(&plain), "--data", p(&data), "-o", p(&scores)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("plain.ern") && text(&o.stderr).contains("detector"));

    let bad = dir.path().join("bad.csv");
    let mut body = std::fs::read_to_string(&data).unwrap();
    body = body.replacen(",50", ",NaN", 1);
    std::fs::write(&bad, &body).unwrap();
    let o = edgernn(&["detect", p(&model), "--data", p(&bad), "-o", p(&scores)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("bad.csv") && text(&o.stderr).contains("line"));

    let o = edgernn(&[
        "detect",
        p(&model),
        "--data",
        p(&data),
        "--column",
        "nope",
        "-o",
        p(&scores),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("nope"));
    assert!(!scores.exists(), "no output after a failure");
}

#[test]
fn nab_protocol_scores_its_results_like_evaluate_and_reuses_models() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut labels = String::from("{");
    for (i, (name, spike, shift)) in [("one", 1200, 1900), ("two", 900, 2000)].iter().enumerate() {
        let folder = data.join("synthetic");
        std::fs::create_dir_all(&folder).unwrap();
        write_csv(
            &folder.join(format!("{name}.csv")),
            &series(ROWS, *spike, *shift, 11 + i as u32),
        );
        let window =
            |at: usize| format!("[\"{}\", \"{}\"]", timestamp(at - 20), timestamp(at + 20));
        if i > 0 {
            labels.push(',');
        }
        write!(
            labels,
            "\"synthetic/{name}.csv\": [{}, {}]",
            window(*spike),
            window(*shift)
        )
        .unwrap();
    }
    labels.push('}');
    let labels_path = dir.path().join("windows.json");
    std::fs::write(&labels_path, labels).unwrap();
    let out = dir.path().join("results");
    let models = dir.path().join("models");
    let args = [
        "nab",
        "--data",
        p(&data),
        "-o",
        p(&out),
        "--models",
        p(&models),
        "--labels",
        p(&labels_path),
        "--units",
        "8",
        "--window",
        "16",
    ];
    let first = edgernn(&args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(models.join("synthetic/one.ern").is_file());
    let rows = read_scores(&out.join("synthetic/two.csv"));
    assert_eq!(rows.len(), ROWS);
    assert!(rows.iter().all(|r| r.len() == 3));

    let again = edgernn(&args);
    assert!(again.status.success());
    assert!(text(&again.stderr).contains("cached model"));
    assert_eq!(
        text(&first.stdout).lines().last(),
        text(&again.stdout).lines().last()
    );

    let o = edgernn(&[
        "evaluate",
        "--results",
        p(&out),
        "--labels",
        p(&labels_path),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let standard = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("standard"))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert_eq!(standard(&text(&first.stdout)), standard(&text(&o.stdout)));
    let score: f64 = standard(&text(&o.stdout))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(score > 50.0, "{}", text(&o.stdout));
}

#[test]
fn nab_refuses_out_of_range_options_and_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = edgernn(&["nab", "--data", p(dir.path()), "-o", p(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains(p(dir.path())));
    let o = edgernn(&[
        "nab",
        "--data",
        p(dir.path()),
        "-o",
        p(&out),
        "--flag-on",
        "1.5",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--flag-on"));
}
