//! `edgernn train`: parity of the exported blob with candle for every cell type, repeatable
//! seeds, a split without leakage, and clean CLI failures. Tiny models: seconds in debug.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgernn::format::{Activation, Blob, Cell, Layer, QuantMode};
use edgernn_tools::blob_file::AlignedBlob;
use edgernn_tools::runner::{run_window, Feed};
use edgernn_tools::train::{self, data, Task, TrainConfig};

/// The golden files' rule: `|got - expected| / max(1, |expected|)` below this.
const TOLERANCE: f32 = 1e-5;

/// A small series: timestamp, two features (one with a large offset, as real sensors have),
/// a class label, 240 rows.
fn write_series(dir: &Path) -> PathBuf {
    let path = dir.join("series.csv");
    let mut text = String::from("timestamp,temp,load,state\n");
    for i in 0..240 {
        let t = i as f32;
        let temp = 70.0 + 3.0 * (t * 0.21).sin() + 0.5 * (t * 0.047).cos();
        let load = (t * 0.13).cos() * 2.0;
        let state = u8::from(temp > 70.0);
        text.push_str(&format!(
            "2024-01-01 {:02}:{:02}:00,{temp},{load},{state}\n",
            i / 60,
            i % 60
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn tiny(data: PathBuf, task: Task) -> TrainConfig {
    let mut c = TrainConfig::new(data, task);
    c.columns.timestamp = Some("timestamp".into());
    c.columns.features = Some(vec!["temp".into(), "load".into()]);
    // `load` has mean 0 and amplitude 2: the scaled error is an absolute error there, a
    // sharper test than on `temp`, where one f32 ulp of 70 is 7.6e-6.
    c.columns.target = match task {
        Task::Forecast => Some("load".into()),
        Task::Classify | Task::NextToken => Some("state".into()),
        Task::Autoencode => None,
    };
    c.window = 8;
    c.units = 6;
    c.epochs = 2;
    c.batch_size = 16;
    c.learning_rate = 1e-2;
    c.progress = false;
    c
}

/// Runs the blob with the core on the validation windows and returns the worst scaled
/// difference from candle's outputs.
fn parity(outcome: &train::Outcome) -> f32 {
    let blob = AlignedBlob::from_bytes(&outcome.blob);
    let model = edgernn::Model::from_bytes(blob.bytes()).unwrap();
    let mut worst = 0f32;
    assert!(!outcome.val_windows.is_empty());
    for (w, expected) in outcome.val_windows.iter().zip(&outcome.val_outputs) {
        let got = run_window(&model, w, Feed::Sequence).unwrap();
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(expected) {
            let d = (g - e).abs() / e.abs().max(1.0);
            assert!(d.is_finite(), "{g} vs {e}");
            worst = worst.max(d);
        }
    }
    worst
}

#[test]
fn exported_blob_matches_candle_for_every_cell() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_series(dir.path());
    type Tweak = Box<dyn Fn(&mut TrainConfig)>;
    let cases: Vec<(&str, Tweak)> = vec![
        ("rnn", Box::new(|c| c.cell = Cell::SimpleRnn)),
        (
            "rnn relu",
            Box::new(|c| {
                c.cell = Cell::SimpleRnn;
                c.activation = Activation::Relu;
            }),
        ),
        ("lstm", Box::new(|c| c.cell = Cell::Lstm)),
        (
            "lstm, temp target (raw units near 70)",
            Box::new(|c| c.columns.target = Some("temp".into())),
        ),
        (
            "gru reset_after",
            Box::new(|c| c.cell = Cell::Gru { reset_after: true }),
        ),
        (
            "gru reset_before",
            Box::new(|c| c.cell = Cell::Gru { reset_after: false }),
        ),
        (
            "lstm x2 + dense",
            Box::new(|c| {
                c.layers = 2;
                c.dense = vec![5];
            }),
        ),
        (
            "bidirectional gru hard_sigmoid",
            Box::new(|c| {
                c.cell = Cell::Gru { reset_after: false };
                c.bidirectional = true;
                c.activation = Activation::HardSigmoid;
            }),
        ),
    ];
    for (name, tweak) in cases {
        let mut cfg = tiny(data.clone(), Task::Forecast);
        tweak(&mut cfg);
        let out = train::train(&cfg).unwrap();
        let worst = parity(&out);
        eprintln!("{name}: max scaled difference {worst:.3e}");
        assert!(worst < TOLERANCE, "{name}: {worst}");
        assert!(out.report.parity_max_scaled_error < f64::from(TOLERANCE));
        // Raw units, not normalised values: forecasts near the target's level.
        let mean = out.val_outputs.iter().map(|o| o[0]).sum::<f32>() / out.val_outputs.len() as f32;
        let level = if name.contains("temp") { 70.0 } else { 0.0 };
        assert!((mean - level).abs() < 10.0, "{name}: mean forecast {mean}");
    }
    let out = train::train(&tiny(data, Task::Classify)).unwrap();
    let worst = parity(&out);
    eprintln!("lstm classifier (softmax): max scaled difference {worst:.3e}");
    assert!(worst < TOLERANCE, "classifier: {worst}");
    let c = out.report.classification.as_ref().unwrap();
    assert_eq!(c.confusion.len(), 2);
    let total: usize = c.confusion.iter().flatten().sum();
    assert_eq!(total, out.report.val_windows);
}

#[test]
fn exported_autoencoder_matches_candle_for_every_cell() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_series(dir.path());
    type Tweak = Box<dyn Fn(&mut TrainConfig)>;
    let cases: Vec<(&str, Tweak)> = vec![
        ("rnn", Box::new(|c| c.cell = Cell::SimpleRnn)),
        (
            "lstm, int8 too",
            Box::new(|c| {
                c.cell = Cell::Lstm;
                c.quantize = Some(QuantMode::Int8);
            }),
        ),
        (
            "gru reset_after",
            Box::new(|c| c.cell = Cell::Gru { reset_after: true }),
        ),
        (
            "gru reset_before",
            Box::new(|c| c.cell = Cell::Gru { reset_after: false }),
        ),
        (
            "lstm x2 + dense",
            Box::new(|c| {
                c.layers = 2;
                c.dense = vec![5];
            }),
        ),
        (
            "bidirectional gru",
            Box::new(|c| {
                c.cell = Cell::Gru { reset_after: true };
                c.bidirectional = true;
            }),
        ),
    ];
    for (name, tweak) in cases {
        let mut cfg = tiny(data.clone(), Task::Autoencode);
        tweak(&mut cfg);
        let out = train::train(&cfg).unwrap();
        let worst = parity(&out);
        eprintln!("autoencoder {name}: max scaled difference {worst:.3e}");
        assert!(worst < TOLERANCE, "{name}: {worst}");
        assert!(out.report.parity_max_scaled_error < f64::from(TOLERANCE));
        // One value per step and feature, in raw units (temp near 70, load near 0).
        let w = &out.val_outputs[0];
        assert_eq!(w.len(), cfg.window * 2, "{name}");
        assert!(
            (w[0] - 70.0).abs() < 10.0 && w[1].abs() < 5.0,
            "{name}: {w:?}"
        );
        let r = out.report.reconstruction.as_ref().unwrap();
        assert!(
            r.mae > 0.0 && r.baseline_mae > 0.0 && r.rmse >= r.mae,
            "{name}: {r:?}"
        );
        let e = &r.val_window_errors;
        assert_eq!(e.windows, out.report.val_windows);
        assert!(e.quantiles.windows(2).all(|q| q[0].1 <= q[1].1) && e.max >= e.mean);
        if let Some(q) = &out.report.quantized {
            let qr = q.reconstruction.as_ref().unwrap();
            // int8 of a barely trained model: near the float model, far from a broken one.
            assert!(
                (qr.mae - r.mae).abs() < 0.5 * r.mae,
                "{name}: {qr:?} vs {r:?}"
            );
            assert_eq!(qr.val_window_errors.windows, e.windows);
        }
    }
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_series(dir.path());
    let mut cfg = tiny(data, Task::Forecast);
    cfg.epochs = 3;
    cfg.seed = 42;
    let a = train::train(&cfg).unwrap();
    let b = train::train(&cfg).unwrap();
    let losses = |o: &train::Outcome| -> Vec<(f64, f64)> {
        o.report
            .history
            .iter()
            .map(|e| (e.loss, e.val_loss))
            .collect()
    };
    assert_eq!(losses(&a), losses(&b));
    assert_eq!(a.blob, b.blob);
    cfg.seed = 43;
    let c = train::train(&cfg).unwrap();
    assert_ne!(losses(&a), losses(&c));
}

#[test]
fn split_has_no_leakage_and_normalisation_sees_training_rows_only() {
    for (rows, window, horizon, val) in [(240, 8, 1, 0.2), (100, 1, 0, 0.5), (57, 5, 4, 0.3)] {
        let s = data::split(rows, window, horizon, val).unwrap();
        let last_train = s.train.iter().map(|t| t + horizon).max().unwrap();
        let first_val = s.val.iter().map(|&t| s.start(t)).min().unwrap();
        assert!(last_train < s.boundary && s.boundary <= first_val);
        assert!(s.val.iter().all(|t| t + horizon < rows));
    }

    // Validation rows are 1000x larger: if they leaked into the statistics, the stored mean
    // would show it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jump.csv");
    let mut text = String::from("t,v\n");
    for i in 0..100 {
        let v = if i < 80 {
            (i % 7) as f32
        } else {
            1000.0 + i as f32
        };
        text.push_str(&format!("{i}:00,{v}\n"));
    }
    std::fs::write(&path, text).unwrap();
    let mut cfg = TrainConfig::new(path, Task::Forecast);
    cfg.columns.timestamp = Some("t".into());
    (cfg.window, cfg.units, cfg.epochs, cfg.progress) = (4, 4, 1, false);
    let out = train::train(&cfg).unwrap();
    assert!(out.report.last_train_line < out.report.first_val_line);
    assert_eq!(out.report.first_val_line, 82, "row 80 is on line 82");
    let expected_mean = (0..80).map(|i| (i % 7) as f64).sum::<f64>() / 80.0;
    let blob = AlignedBlob::from_bytes(&out.blob);
    let view = Blob::new_checked(blob.bytes()).unwrap();
    let header = view.decode_header().unwrap();
    let Layer::Normalization(n) = &header.layers[0] else {
        panic!("the first layer is {:?}", header.layers[0]);
    };
    let at = n.mean.offset as usize;
    let mean = f32::from_le_bytes(view.weights()[at..at + 4].try_into().unwrap());
    assert!((f64::from(mean) - expected_mean).abs() < 1e-5, "{mean}");
}

fn edgernn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgernn"))
        .args(args)
        .output()
        .expect("run edgernn")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn cli_trains_writes_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_series(dir.path());
    let model = dir.path().join("m.ern");
    let plot = dir.path().join("loss.png");
    let o = edgernn(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--timestamp",
        "timestamp",
        "--target",
        "temp",
        "--window",
        "8",
        "--units",
        "4",
        "--epochs",
        "2",
        "--cell",
        "gru",
        "--quantize",
        "int8",
        "--plot",
        plot.to_str().unwrap(),
        "--json",
        "-o",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("epoch    2/2"), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["features"], serde_json::json!(["temp", "load", "state"]));
    assert_eq!(r["history"].as_array().unwrap().len(), 2);
    assert!(r["forecast"]["baseline_mae"].as_f64().unwrap() > 0.0);
    assert_eq!(r["quantized"]["mode"], "int8");
    let blob = std::fs::read(&model).unwrap();
    assert_eq!(blob.len() as u64, r["blob_bytes"].as_u64().unwrap());
    assert!(dir.path().join("m.int8.ern").exists());
    assert!(std::fs::read(&plot)
        .unwrap()
        .starts_with(b"\x89PNG\r\n\x1a\n"));
    let o = edgernn(&["inspect", model.to_str().unwrap(), "--json"]);
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["input_features"], 3);

    // The autoencoder: a RepeatVector model reporting reconstruction errors.
    let ae = dir.path().join("ae.ern");
    let o = edgernn(&[
        "train",
        "--task",
        "autoencode",
        "--data",
        data.to_str().unwrap(),
        "--timestamp",
        "timestamp",
        "--features",
        "temp,load",
        "--window",
        "8",
        "--units",
        "4",
        "--epochs",
        "1",
        "--quantize",
        "int8",
        "--quiet",
        "--json",
        "-o",
        ae.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["task"], "autoencode");
    let q = &r["reconstruction"]["train_window_errors"]["quantiles"];
    assert_eq!(q.as_array().unwrap().len(), 4, "{r}");
    assert!(r["quantized"]["reconstruction"]["mae"].as_f64().unwrap() > 0.0);
    let o = edgernn(&["inspect", ae.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("RepeatVector"));
}

#[test]
fn cli_bad_input_exits_2_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_series(dir.path());
    let d = data.to_str().unwrap();
    let model = dir.path().join("m.ern");
    let m = model.to_str().unwrap();
    let bad_value = dir.path().join("bad.csv");
    std::fs::write(&bad_value, "t,v\n1,2\n2,3\n3,oops\n").unwrap();
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "t,v\n1,2\n2\n").unwrap();
    let b = bad_value.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--data", d, "--target", "nope"],
            vec!["series.csv", "--target nope: no such column", "'timestamp'"],
        ),
        (
            vec!["--data", d],
            vec!["series.csv", "--target is required"],
        ),
        (
            vec!["--data", b, "--target", "v"],
            vec![
                "bad.csv",
                "line 4, column 2 ('v'): 'oops' is not a finite number",
            ],
        ),
        (
            vec!["--data", ragged.to_str().unwrap(), "--target", "v"],
            vec!["ragged.csv", "line 3: 1 fields, but the header has 2"],
        ),
        (
            vec![
                "--data",
                d,
                "--target",
                "temp",
                "--timestamp",
                "timestamp",
                "--window",
                "500",
            ],
            vec!["series.csv", "need at least one of each"],
        ),
        (
            vec!["--data", d, "--target", "temp", "--cell", "transformer"],
            vec!["--cell transformer: expected rnn, lstm or gru"],
        ),
        (
            vec![
                "--data",
                d,
                "--task",
                "classify",
                "--target",
                "temp",
                "--timestamp",
                "timestamp",
            ],
            vec!["series.csv", "line 2: target 'temp'", "is not a class id"],
        ),
        (
            vec![
                "--data",
                d,
                "--target",
                "temp",
                "--activation",
                "relu",
                "--quantize",
                "int8",
            ],
            vec!["--quantize int8: integer LSTM/GRU need a bounded --activation"],
        ),
        (
            vec![
                "--data",
                d,
                "--task",
                "classify",
                "--target",
                "state",
                "--features",
                "temp,state",
            ],
            vec!["series.csv", "the target 'state' is also a feature"],
        ),
        (
            vec!["--data", d, "--task", "autoencode", "--target", "temp"],
            vec!["--target: --task autoencode reconstructs the --features"],
        ),
        (
            vec!["--data", "/nonexistent/x.csv", "--target", "v"],
            vec!["/nonexistent/x.csv: cannot read"],
        ),
    ];
    for (args, needles) in cases {
        let mut all = vec!["train", "-o", m, "--epochs", "1", "--quiet"];
        all.extend(&args);
        let o = edgernn(&all);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: '{n}' not in: {err}");
        }
        assert!(!model.exists(), "no output on failure");
    }
}
