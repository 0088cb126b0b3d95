//! Generation and text training end to end: `edgernn generate` reproducible and with clean
//! failures, next-token and text-classification training on tiny data (seconds in debug),
//! and the integer encoder-to-decoder state hand-over.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgernn::format::{Blob, Layer, QuantMode};
use edgernn::generate::{start_decoder, Generator, Sampling};
use edgernn::quant::dequantize;
use edgernn::Model;
use edgernn_tools::blob_file::AlignedBlob;
use edgernn_tools::builder::{KerasWeights, ModelBuilder, RecurrentSpec};
use edgernn_tools::runner::{run_window, Feed};
use edgernn_tools::train::{self, Task, TrainConfig};

#[path = "../firmware-examples/models/devils_dictionary_int8_generation.rs"]
mod generation;

/// The golden files' rule: `|got - expected| / max(1, |expected|)` below this.
const TOLERANCE: f32 = 1e-5;

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

fn repo(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(file)
        .display()
        .to_string()
}

fn text_model() -> String {
    repo("tools/demo/text/devils-dictionary.int8.ern")
}

/// Asserts a bad-input failure (exit 2) whose message contains every one of `needles`.
fn assert_bad_input(o: &Output, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
    let e = stderr(o);
    assert!(e.starts_with("error: "), "{e}");
    for n in needles {
        assert!(e.contains(n), "{n:?} not in {e:?}");
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn the_cli_generates_the_firmware_examples_text_every_time() {
    let temperature = generation::TEMPERATURE.to_string();
    let seed = generation::SEED.to_string();
    let args = [
        "generate",
        &text_model(),
        "--prime",
        generation::PROMPT,
        "--steps",
        "240",
        "--temperature",
        &temperature,
        "--seed",
        &seed,
    ];
    let a = edgernn(&args);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(stdout(&a), format!("{}\n", generation::EXPECTED_TEXT));
    assert_eq!(stdout(&edgernn(&args)), stdout(&a), "same seed, same text");
    let mut other = args;
    other[9] = "2";
    assert_ne!(stdout(&edgernn(&other)), stdout(&a), "another seed");

    let o = edgernn(&[
        "generate",
        &text_model(),
        "--prime",
        "CAT",
        "--steps",
        "20",
        "--temperature",
        "0",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["tokens"].as_array().unwrap().len(), 20);
    assert_eq!(v["text"].as_str().unwrap().chars().count(), 20);
    assert_eq!(v["temperature"], 0.0);
    assert!(v["per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn generate_failures_are_clear() {
    // A character outside the vocabulary, named with its position.
    let o = edgernn(&["generate", &text_model(), "--prime", "Café"]);
    assert_bad_input(&o, &["'é'", "U+00E9", "position 4", "vocabulary"]);
    for t in ["-1", "nan", "inf", "warm"] {
        let o = edgernn(&[
            "generate",
            &text_model(),
            "--prime",
            "A",
            "--temperature",
            t,
        ]);
        assert_eq!(o.status.code(), Some(2), "{t}: {}", stderr(&o));
        assert!(stderr(&o).contains("temperature"), "{t}: {}", stderr(&o));
    }
    let o = edgernn(&["generate", &text_model(), "--prime", ""]);
    assert_bad_input(&o, &["--prime is empty"]);

    // A value model (3 features in, 3 out) has no vocabulary: text is refused, as is a
    // temperature.
    let demo = repo("tools/demo/lstm_classifier.ern");
    let o = edgernn(&["generate", &demo, "--prime", "hello"]);
    assert_bad_input(&o, &["\"hello\"", "no vocabulary"]);
    let o = edgernn(&["generate", &demo, "--prime", "1,2", "--steps", "2"]);
    assert_bad_input(&o, &["not whole steps of 3"]);
    let o = edgernn(&["generate", &demo, "--prime", "1,2,3", "--temperature", "1"]);
    assert_bad_input(&o, &["--temperature", "token models"]);
    let o = edgernn(&["generate", &demo, "--prime", "0.1,0.2,0.3", "--steps", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2, "two rows of three values");

    // A token model whose outputs are not its vocabulary cannot feed back.
    let golden = repo("tests/golden/embedding_lstm_softmax4_v20.keras");
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("embedding.ern");
    let o = edgernn(&["import", &golden, "-o", blob.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = edgernn(&["generate", blob.to_str().unwrap(), "--prime", "1,2"]);
    assert_bad_input(&o, &["cannot feed its output back"]);
}

/// `Embedding(4, 4)` one-hot, `SimpleRNN(4, linear)` identity, `Dense(4, softmax)` that
/// predicts `id + 1 mod 4` with near certainty; no vocabulary stored.
fn counter_blob() -> Vec<u8> {
    let n = 4;
    let eye: Vec<f32> = (0..n * n)
        .map(|i| f32::from(u8::from(i / n == i % n)))
        .collect();
    let mut b = ModelBuilder::new(1);
    b.embedding(n, n, &eye).unwrap();
    b.recurrent(
        RecurrentSpec {
            cell: edgernn::format::Cell::SimpleRnn,
            units: n,
            activation: edgernn::format::Activation::Linear,
            recurrent_activation: edgernn::format::Activation::Sigmoid,
            return_sequences: false,
            go_backwards: false,
            bidirectional: None,
        },
        &KerasWeights {
            kernel: eye.clone(),
            recurrent_kernel: vec![0.0; n * n],
            bias: None,
        },
        None,
    )
    .unwrap();
    // Keras layout [in, out]: input i feeds output (i + 1) % n.
    let mut kernel = vec![0f32; n * n];
    for i in 0..n {
        kernel[i * n + (i + 1) % n] = 20.0;
    }
    b.dense(n, edgernn::format::Activation::Softmax, &kernel, None)
        .unwrap();
    b.build().unwrap()
}

#[test]
fn token_models_without_a_vocabulary_take_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "counter.ern", &counter_blob());
    let p = path.to_str().unwrap();
    let o = edgernn(&["generate", p, "--prime", "0, 1", "--steps", "6"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "2,3,0,1,2,3\n");
    let o = edgernn(&["generate", p, "--prime", "abc"]);
    assert_bad_input(&o, &["entry 1", "token ids"]);
    let o = edgernn(&["generate", p, "--prime", "1,4"]);
    assert_bad_input(&o, &["entry 2", "not a token id"]);
}

/// A small text with structure a tiny model picks up in a few epochs.
fn tiny_text() -> String {
    let mut text = String::new();
    for i in 0..60 {
        text.push_str(["the cat sat. ", "a dog ran. ", "the sun set. "][i % 3]);
        if i % 5 == 4 {
            text.push('\n');
        }
    }
    text
}

fn tiny_text_config(data: PathBuf, task: Task) -> TrainConfig {
    let mut c = TrainConfig::new(data, task);
    c.window = 12;
    c.units = 12;
    c.embedding = 6;
    c.epochs = 20;
    c.batch_size = 16;
    c.learning_rate = 2e-2;
    c.progress = false;
    c
}

/// The worst scaled difference between the blob, run as the outcome's windows say, and
/// candle's outputs.
fn parity(outcome: &train::Outcome, feed: Feed) -> f32 {
    let blob = AlignedBlob::from_bytes(&outcome.blob);
    let model = Model::from_bytes(blob.bytes()).unwrap();
    let mut worst = 0f32;
    assert!(!outcome.val_windows.is_empty());
    for (w, expected) in outcome.val_windows.iter().zip(&outcome.val_outputs) {
        let got = run_window(&model, w, feed).unwrap();
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(expected) {
            worst = worst.max((g - e).abs() / e.abs().max(1.0));
        }
    }
    worst
}

#[test]
fn next_token_training_stores_the_vocabulary_and_matches_candle() {
    let dir = tempfile::tempdir().unwrap();
    let text = tiny_text();
    let data = write(dir.path(), "tiny.txt", text.as_bytes());
    let mut cfg = tiny_text_config(data.clone(), Task::NextToken);
    cfg.quantize = Some(QuantMode::Int8);
    let out = train::train(&cfg).unwrap();
    let again = train::train(&cfg).unwrap();
    assert_eq!(out.blob, again.blob, "same seed, same blob");

    let mut chars: Vec<char> = text.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    let vocabulary: String = chars.iter().collect();
    let r = &out.report;
    let t = r.text.as_ref().expect("a text report");
    assert_eq!(t.vocabulary, vocabulary);
    assert!(t.bits_per_char.is_some_and(f64::is_finite));
    assert_eq!(t.sample.as_ref().map(|s| s.chars().count()), Some(160));
    let p = parity(&out, Feed::PerStep);
    assert!(p < TOLERANCE, "parity {p}");
    assert!(r.parity_max_scaled_error < f64::from(TOLERANCE));
    let c = r.classification.as_ref().unwrap();
    assert!(c.accuracy > c.baseline_accuracy, "{c:?}");

    // Both blobs carry the vocabulary and generate from text.
    let q = out.quantized.as_ref().expect("int8 blob");
    for (name, bytes) in [("f32.ern", &out.blob), ("int8.ern", q)] {
        let path = write(dir.path(), name, bytes);
        let aligned = AlignedBlob::from_bytes(bytes);
        let model = Model::from_bytes(aligned.bytes()).unwrap();
        assert_eq!(model.vocabulary(), Some(vocabulary.as_str()));
        let o = edgernn(&[
            "generate",
            path.to_str().unwrap(),
            "--prime",
            "the ",
            "--steps",
            "30",
            "--seed",
            "3",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o).trim_end_matches('\n').chars().count(), 30);
    }
}

#[test]
fn text_classification_trains_on_padded_character_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("label,text\n");
    for i in 0..80 {
        // Class 1 texts mention a dog somewhere; lengths vary around the window.
        let (label, body) = if i % 2 == 0 {
            (0, "the cat sat")
        } else {
            (1, "a dog ran off")
        };
        let pad = "x".repeat(i % 7);
        csv.push_str(&format!("{label},\"{pad}{body}, yes\"\n"));
    }
    let data = write(dir.path(), "texts.csv", csv.as_bytes());
    let mut cfg = tiny_text_config(data, Task::Classify);
    cfg.text = Some("text".into());
    let out = train::train(&cfg).unwrap();
    let t = out.report.text.as_ref().unwrap();
    assert!(t.vocabulary.starts_with('\0'), "id 0 pads");
    let p = parity(&out, Feed::Sequence);
    assert!(p < TOLERANCE, "parity {p}");
    let c = out.report.classification.as_ref().unwrap();
    assert_eq!(c.confusion.len(), 2);
    assert_eq!(out.report.val_windows, 16);

    // Bad inputs name the file or option.
    let mut missing = cfg.clone();
    missing.text = Some("body".into());
    let e = train::train(&missing).err().unwrap().to_string();
    assert!(e.contains("--text body: no such column"), "{e}");
}

#[test]
fn train_cli_refuses_text_options_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "tiny.txt", tiny_text().as_bytes());
    let out = dir.path().join("m.ern");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let r = edgernn(&[
        "train",
        "--task",
        "next-token",
        "--data",
        d,
        "-o",
        o,
        "--text",
        "t",
    ]);
    assert_bad_input(&r, &["--text is for --task classify"]);
    let r = edgernn(&["train", "--task", "next-word", "--data", d, "-o", o]);
    assert_bad_input(&r, &["next-token"]);
    let r = edgernn(&[
        "train",
        "--task",
        "next-token",
        "--data",
        d,
        "-o",
        o,
        "--window",
        "4000",
    ]);
    assert_bad_input(&r, &["too few for windows of 4000"]);
    let r = edgernn(&[
        "train",
        "--task",
        "next-token",
        "--data",
        d,
        "-o",
        o,
        "--bidirectional",
    ]);
    assert_bad_input(&r, &["--bidirectional"]);
}

fn lstm(units: usize, input: usize, seed: f32) -> KerasWeights {
    let rows = 4 * units;
    KerasWeights {
        kernel: (0..input * rows)
            .map(|i| ((i as f32 * 0.37 + seed).sin()) * 0.5)
            .collect(),
        recurrent_kernel: (0..units * rows)
            .map(|i| ((i as f32 * 0.11 + seed).cos()) * 0.3)
            .collect(),
        bias: Some(vec![0.1; rows]),
    }
}

fn lstm_spec(units: usize) -> RecurrentSpec {
    RecurrentSpec {
        cell: edgernn::format::Cell::Lstm,
        units,
        activation: edgernn::format::Activation::Tanh,
        recurrent_activation: edgernn::format::Activation::Sigmoid,
        return_sequences: false,
        go_backwards: false,
        bidirectional: None,
    }
}

#[test]
fn an_int8_encoder_starts_an_int8_decoder() {
    let units = 8;
    // Encoder: LSTM(8) over one feature. Decoder: Embedding(5, 4) -> LSTM(8) -> Dense(5).
    let mut e = ModelBuilder::new(1);
    e.recurrent(lstm_spec(units), &lstm(units, 1, 0.3), None)
        .unwrap();
    let encoder_f32 = e.build().unwrap();
    let mut d = ModelBuilder::new(1);
    let table: Vec<f32> = (0..20).map(|i| (i as f32 * 0.7).sin()).collect();
    d.embedding(5, 4, &table).unwrap();
    d.recurrent(lstm_spec(units), &lstm(units, 4, 1.1), None)
        .unwrap();
    let head: Vec<f32> = (0..units * 5).map(|i| (i as f32 * 0.29).cos()).collect();
    d.dense(5, edgernn::format::Activation::Softmax, &head, None)
        .unwrap();
    let decoder_f32 = d.build().unwrap();

    let series: Vec<Vec<f32>> = (0..16)
        .map(|k| {
            (0..12)
                .map(|t| ((t + k) as f32 * 0.4).sin() * 2.0)
                .collect()
        })
        .collect();
    let tokens: Vec<Vec<f32>> = (0..16)
        .map(|k| (0..12).map(|t| ((t * 3 + k) % 5) as f32).collect())
        .collect();
    let opts = |mode| edgernn_tools::quantize::Options {
        mode,
        percentile: None,
    };
    let (encoder_q, _) =
        edgernn_tools::quantize::quantize(&encoder_f32, &series, opts(QuantMode::Int8)).unwrap();
    let (decoder_q, _) =
        edgernn_tools::quantize::quantize(&decoder_f32, &tokens, opts(QuantMode::Int8)).unwrap();
    let (ea, da) = (
        AlignedBlob::from_bytes(&encoder_q),
        AlignedBlob::from_bytes(&decoder_q),
    );
    let encoder = Model::from_bytes(ea.bytes()).unwrap();
    let decoder = Model::from_bytes(da.bytes()).unwrap();

    let mut enc_state = vec![0i32; encoder.state_len()];
    let mut scratch = vec![0i32; encoder.step_scratch_len().max(decoder.step_scratch_len())];
    encoder.reset_state(&mut enc_state);
    let mut y = vec![0f32; encoder.output_width()];
    encoder
        .run_sequence(&series[3], &mut enc_state, &mut scratch, &mut y)
        .unwrap();
    let mut dec_state = vec![0i32; decoder.state_len()];
    start_decoder(&encoder, &mut enc_state, &decoder, &mut dec_state).unwrap();
    // h arrives as the same real value within the decoder's quantization step, or saturated
    // to the decoder's calibrated range (its own runs started from zero reached less far);
    // c exactly here (both layers chose the same fixed-point format).
    let header = Blob::new_checked(da.bytes())
        .unwrap()
        .decode_header()
        .unwrap();
    let Layer::Recurrent(r) = &header.layers[1] else {
        panic!("the decoder's LSTM")
    };
    let h = r.quant.unwrap().output;
    let (lo, hi) = (dequantize(-128, h), dequantize(127, h));
    for k in 0..2 * units {
        let (a, b) = (
            encoder.state_value(&mut enc_state, k).unwrap(),
            decoder.state_value(&mut dec_state, k).unwrap(),
        );
        let saturated = k < units && (b == lo || b == hi) && !(lo..=hi).contains(&a);
        let step = if k < units { h.scale } else { 0.0 };
        assert!(
            saturated || (a - b).abs() <= step,
            "state {k}: encoder {a}, decoder {b}"
        );
    }
    let mut out = vec![0f32; 5];
    let mut g = Generator::new(
        &decoder,
        &mut dec_state,
        &mut scratch,
        &mut out,
        Sampling::Greedy,
        0,
    )
    .unwrap();
    g.prime(&[0]).unwrap();
    let generated: Vec<u32> = (0..5).map(|_| g.next_token().unwrap()).collect();
    assert!(generated.iter().all(|&t| t < 5));
}
