//! The `edgernn` binary end to end: output shapes, streaming equality, and clean failures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn edgernn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edgernn"))
        .args(args)
        .output()
        .expect("run edgernn")
}

fn demo(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("demo")
        .join(file)
        .display()
        .to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn inspect_json_reports_sizes() {
    let o = edgernn(&["inspect", &demo("lstm_classifier.ern"), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["input_features"], 3);
    assert_eq!(v["output_width"], 3);
    assert_eq!(v["blob_bytes"], 5404);
    assert_eq!(v["state_bytes"], 128);
    assert_eq!(v["parameters"], 1331);
    assert_eq!(v["layers"].as_array().unwrap().len(), 2);
    assert_eq!(v["layers"][0]["cell"], "LSTM");
    assert_eq!(v["streamable"], true);
}

#[test]
fn stream_and_sequence_print_the_same_and_match_keras() {
    let seq = edgernn(&[
        "run",
        &demo("lstm_classifier.ern"),
        "--input",
        &demo("lstm_classifier.input.npy"),
    ]);
    let stream = edgernn(&[
        "run",
        &demo("lstm_classifier.ern"),
        "--input",
        &demo("lstm_classifier.input.npy"),
        "--stream",
        "--expect",
        &demo("lstm_classifier.keras-expected.npy"),
    ]);
    assert!(
        seq.status.success() && stream.status.success(),
        "{}",
        stderr(&stream)
    );
    assert_eq!(stdout(&seq), stdout(&stream));
    assert_eq!(stdout(&seq).lines().count(), 4, "header + 3 rows");
    assert!(stderr(&stream).contains(": ok"));
}

#[test]
fn csv_input_and_outputs_have_keras_shapes() {
    let dir = tmp();
    let csv = dir.path().join("x.csv");
    // One sequence of 4 steps x 3 features, with a header.
    std::fs::write(&csv, "a,b,c\n0.1,0.2,0.3\n0.4,0.5,0.6\n-1,0,1\n2,2,2\n").unwrap();
    let out = dir.path().join("y.npy");
    let o = edgernn(&[
        "run",
        &demo("lstm_classifier.ern"),
        "--input",
        path_str(&csv),
        "--output",
        path_str(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let y = edgernn_tools::io::npy::read_npy(&out).unwrap();
    assert_eq!(y.shape, vec![3], "no batch axis in, none out");
    assert!((y.data.iter().sum::<f32>() - 1.0).abs() < 1e-5, "softmax");

    let per_step = dir.path().join("steps.npy");
    let o = edgernn(&[
        "run",
        &demo("lstm_classifier.ern"),
        "--input",
        path_str(&csv),
        "--per-step",
        "--output",
        path_str(&per_step),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let steps = edgernn_tools::io::npy::read_npy(&per_step).unwrap();
    assert_eq!(steps.shape, vec![4, 3]);
    assert_eq!(&steps.data[9..], &y.data[..], "last step = window output");
}

#[test]
fn bad_blob_fails_cleanly_with_exit_2() {
    let dir = tmp();
    let bad = dir.path().join("bad.ern");
    let mut bytes = std::fs::read(demo("lstm_classifier.ern")).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&bad, &bytes).unwrap();
    let out = dir.path().join("y.npy");
    let o = edgernn(&[
        "run",
        path_str(&bad),
        "--input",
        &demo("lstm_classifier.input.npy"),
        "--output",
        path_str(&out),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("error: {}: checksum mismatch", bad.display())),
        "{err}"
    );
    assert!(!out.exists(), "no output file after a failure");
    assert!(!err.contains("panicked"));

    let o = edgernn(&["inspect", path_str(&dir.path().join("missing.ern"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("missing.ern: cannot read"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn wrong_inputs_name_the_file_and_the_problem() {
    let dir = tmp();
    let csv = dir.path().join("x.csv");
    std::fs::write(&csv, "1,2\n3,4\n").unwrap();
    let o = edgernn(&[
        "run",
        &demo("lstm_classifier.ern"),
        "--input",
        path_str(&csv),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("2 features per time step"),
        "{}",
        stderr(&o)
    );

    std::fs::write(&csv, "1,2,3\n3,x,4\n").unwrap();
    let o = edgernn(&[
        "run",
        &demo("lstm_classifier.ern"),
        "--input",
        path_str(&csv),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("x.csv") && err.contains("line 2"), "{err}");

    let o = edgernn(&[
        "run",
        &demo("lstm_classifier.ern"),
        "--input",
        &demo("lstm_classifier.input.npy"),
        "--output",
        &demo("lstm_classifier.input.npy"),
    ]);
    assert_eq!(o.status.code(), Some(2), "refuses to overwrite its input");
}

#[test]
fn expect_mismatch_exits_1() {
    let dir = tmp();
    let wrong = dir.path().join("wrong.npy");
    let arr = edgernn_tools::io::Array::new(vec![3, 3], vec![0.5; 9]).unwrap();
    edgernn_tools::io::npy::write_npy(&wrong, &arr).unwrap();
    let o = edgernn(&[
        "run",
        &demo("lstm_classifier.ern"),
        "--input",
        &demo("lstm_classifier.input.npy"),
        "--expect",
        path_str(&wrong),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("MISMATCH"));
}

#[test]
fn window_models_refuse_to_stream() {
    let dir = tmp();
    let case = {
        #[path = "common/mod.rs"]
        mod common;
        common::keras_case(&common::golden_dir().join("bilstm_concat_u8_f3_seq.json"))
    };
    let blob: PathBuf = dir.path().join("bi.ern");
    std::fs::write(&blob, &case.blob).unwrap();
    let o = edgernn(&[
        "run",
        path_str(&blob),
        "--input",
        &demo("lstm_classifier.input.npy"),
        "--stream",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("needs the whole window"),
        "{}",
        stderr(&o)
    );
    let o = edgernn(&[
        "run",
        path_str(&blob),
        "--input",
        &demo("lstm_classifier.input.npy"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bench_json_reports_mode_speed_and_kernel() {
    for mode in ["seq", "stream", "batch"] {
        let o = edgernn(&[
            "bench",
            &demo("lstm_classifier.ern"),
            "--mode",
            mode,
            "--steps",
            "10",
            "--seconds",
            "0",
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["mode"], mode);
        assert_eq!(v["kernel"], edgernn::kernels::kernel_name());
        assert!(v["ns_per_step"].as_f64().unwrap() > 0.0);
        assert!(v["gflops"].as_f64().unwrap() > 0.0);
        assert!(v["samples"].as_u64().unwrap() >= 11);
    }
    let o = edgernn(&["bench", &demo("lstm_classifier.ern"), "--mode", "fast"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A reader that stops early (`edgernn inspect m.ern | head -1`) is not an internal error:
/// the tool stops quietly with success.
#[test]
fn a_closed_stdout_stops_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgernn"))
        .args(["inspect", &demo("lstm_classifier.ern")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run edgernn");
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("internal"), "{}", stderr(&o));
}
