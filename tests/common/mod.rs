//! Golden cases from `tests/golden` (copied from the Keras 3 / PyTorch reference generator),
//! converted to blobs through the tools' builder. Conversion from PyTorch layout lives here only
//! for the tests; the importers own it for users.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use edgernn::format::{Activation, Cell, Merge};
use edgernn_tools::builder::{KerasWeights, ModelBuilder, RecurrentSpec};
use serde_json::Value;

/// The tolerance the golden files state: `|got - expected| / max(1, |expected|) < 1e-5`.
pub const TOLERANCE: f32 = 1e-5;

pub struct GoldenCase {
    pub name: String,
    pub blob: Vec<u8>,
    pub batch: usize,
    pub steps: usize,
    pub features: usize,
    /// `[batch, steps, features]`.
    pub input: Vec<f32>,
    /// `[batch, ...]` in Keras' output layout.
    pub expected: Vec<f32>,
    /// The expected final state per batch item in the model's state layout, when given.
    pub final_state: Option<Vec<Vec<f32>>>,
}

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden")
}

pub fn flatten(v: &Value, out: &mut Vec<f32>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        Value::Number(n) => out.push(n.as_f64().expect("number") as f32),
        other => panic!("not a number: {other}"),
    }
}

pub fn floats(v: &Value) -> Vec<f32> {
    let mut out = Vec::new();
    flatten(v, &mut out);
    out
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect()
}

pub fn activation(name: &str) -> Activation {
    match name {
        "tanh" => Activation::Tanh,
        "relu" => Activation::Relu,
        "sigmoid" => Activation::Sigmoid,
        "hard_sigmoid" => Activation::HardSigmoid,
        "linear" => Activation::Linear,
        "softmax" => Activation::Softmax,
        other => panic!("activation {other}"),
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).expect("json")
}

fn keras_weights(weights: &[&Value]) -> KerasWeights {
    let get = |name: &str| {
        weights
            .iter()
            .find(|w| w["name"] == name)
            .map(|w| floats(&w["values"]))
    };
    KerasWeights {
        kernel: get("kernel").expect("kernel"),
        recurrent_kernel: get("recurrent_kernel").expect("recurrent_kernel"),
        bias: get("bias"),
    }
}

fn keras_spec(config: &Value, bidirectional: Option<Merge>) -> RecurrentSpec {
    let class = config["class_name"].as_str().expect("class");
    let cell = match class {
        "SimpleRNN" => Cell::SimpleRnn,
        "LSTM" => Cell::Lstm,
        "GRU" => Cell::Gru {
            reset_after: config["reset_after"].as_bool().unwrap_or(true),
        },
        other => panic!("cell {other}"),
    };
    RecurrentSpec {
        cell,
        units: config["units"].as_u64().expect("units") as usize,
        activation: activation(config["activation"].as_str().unwrap_or("tanh")),
        recurrent_activation: activation(
            config["recurrent_activation"].as_str().unwrap_or("sigmoid"),
        ),
        return_sequences: config["return_sequences"].as_bool().unwrap_or(false),
        go_backwards: config["go_backwards"].as_bool().unwrap_or(false),
        bidirectional,
    }
}

fn merge(name: &str) -> Merge {
    match name {
        "concat" => Merge::Concat,
        "sum" => Merge::Sum,
        "mul" => Merge::Mul,
        "ave" => Merge::Ave,
        other => panic!("merge {other}"),
    }
}

/// A Keras case (`rnn-golden/1`).
pub fn keras_case(path: &Path) -> GoldenCase {
    let json = read_json(path);
    let shape = dims(&json["input_shape"]);
    // Token-id inputs are [batch, time]: one id per step.
    let (batch, steps, features) = (shape[0], shape[1], shape.get(2).copied().unwrap_or(1));
    let mut builder = ModelBuilder::new(features);
    for layer in json["layers"].as_array().expect("layers") {
        let config = &layer["config"];
        let weights: Vec<&Value> = layer["weights"]
            .as_array()
            .expect("weights")
            .iter()
            .collect();
        match layer["class_name"].as_str().expect("class") {
            "SimpleRNN" | "LSTM" | "GRU" => {
                builder
                    .recurrent(keras_spec(config, None), &keras_weights(&weights), None)
                    .expect("recurrent");
            }
            "Bidirectional" => {
                let is = |w: &&Value, dir: &str| {
                    w["path"]
                        .as_str()
                        .expect("path")
                        .contains(&format!("/{dir}_"))
                };
                let fwd: Vec<&Value> = weights
                    .iter()
                    .copied()
                    .filter(|w| is(w, "forward"))
                    .collect();
                let bwd: Vec<&Value> = weights
                    .iter()
                    .copied()
                    .filter(|w| is(w, "backward"))
                    .collect();
                let m = merge(config["merge_mode"].as_str().expect("merge_mode"));
                builder
                    .recurrent(
                        keras_spec(&config["layer"], Some(m)),
                        &keras_weights(&fwd),
                        Some(&keras_weights(&bwd)),
                    )
                    .expect("bidirectional");
            }
            // TimeDistributed(Dense) is the Dense on every time step, as a plain Dense is.
            class @ ("Dense" | "TimeDistributed") => {
                let dense = if class == "Dense" {
                    config
                } else {
                    &layer["keras_config"]["layer"]["config"]
                };
                let get = |name: &str| {
                    weights
                        .iter()
                        .find(|w| w["name"] == name)
                        .map(|w| floats(&w["values"]))
                };
                builder
                    .dense(
                        dense["units"].as_u64().expect("units") as usize,
                        activation(dense["activation"].as_str().unwrap_or("linear")),
                        &get("kernel").expect("kernel"),
                        get("bias").as_deref(),
                    )
                    .expect("dense");
            }
            // Identity at inference.
            "Dropout" => {}
            "Normalization" => {
                // Given to the constructor, mean and variance live in the config; after
                // `adapt()`, in the weights `mean` and `variance`.
                let stat = |name: &str| match &config[name] {
                    Value::Null => {
                        floats(&weights.iter().find(|w| w["name"] == name).expect(name)["values"])
                    }
                    v => floats(v),
                };
                let mean = stat("mean");
                let variance = stat("variance");
                builder
                    .normalization(&mean, &variance)
                    .expect("normalization");
            }
            "Embedding" => {
                let table = weights
                    .iter()
                    .find(|w| w["name"] == "embeddings")
                    .expect("embeddings");
                let vocab = config["input_dim"].as_u64().expect("input_dim") as usize;
                let dim = config["output_dim"].as_u64().expect("output_dim") as usize;
                builder
                    .embedding(vocab, dim, &floats(&table["values"]))
                    .expect("embedding");
            }
            "RepeatVector" => {
                builder
                    .repeat_vector(config["n"].as_u64().expect("n") as usize)
                    .expect("repeat");
            }
            other => panic!("layer {other} is not part of this test"),
        }
    }
    let final_state = json.get("expected_final_states").and_then(|s| {
        let h = s.get("h")?;
        let h: Vec<Vec<f32>> = h.as_array()?.iter().map(floats).collect();
        let c: Option<Vec<Vec<f32>>> = s
            .get("c")
            .and_then(|c| c.as_array())
            .map(|c| c.iter().map(floats).collect());
        Some(
            (0..batch)
                .map(|b| {
                    let mut state = h[b].clone();
                    if let Some(c) = &c {
                        state.extend_from_slice(&c[b]);
                    }
                    state
                })
                .collect(),
        )
    });
    GoldenCase {
        name: json["case"].as_str().expect("case").to_string(),
        blob: builder.build().expect("build"),
        batch,
        steps,
        features,
        input: floats(&json["input"]),
        expected: floats(&json["expected_output"]),
        final_state,
    }
}

/// Reorders gate blocks of a `[gates * hidden, cols]` PyTorch matrix (or a bias, `cols = 1`).
fn reorder_gates(values: &[f32], hidden: usize, cols: usize, order: &[usize]) -> Vec<f32> {
    let block = hidden * cols;
    order
        .iter()
        .flat_map(|&g| values[g * block..(g + 1) * block].iter().copied())
        .collect()
}

fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// A PyTorch case (`torch-rnn-golden/1`): `nn.RNN/LSTM/GRU` (+ `Linear` on `y[:, -1]`).
pub fn torch_case(path: &Path) -> GoldenCase {
    let json = read_json(path);
    let rnn = &json["module"]["rnn"];
    let class = rnn["class_name"].as_str().expect("class");
    let hidden = rnn["hidden_size"].as_u64().expect("hidden") as usize;
    let layers = rnn["num_layers"].as_u64().expect("layers") as usize;
    let input_size = rnn["input_size"].as_u64().expect("input") as usize;
    assert!(
        !rnn["bidirectional"].as_bool().unwrap_or(false),
        "not in these cases"
    );
    assert!(
        rnn["batch_first"].as_bool().unwrap_or(false),
        "not in these cases"
    );
    let head = &json["module"]["head"];
    let weight = |name: &str| {
        json["weights"]
            .as_array()
            .expect("weights")
            .iter()
            .find(|w| w["name"] == name)
            .map(|w| floats(&w["values"]))
    };
    // PyTorch gate blocks -> Keras gate blocks.
    let (cell, order): (Cell, &[usize]) = match class {
        "LSTM" => (Cell::Lstm, &[0, 1, 2, 3]),
        "GRU" => (Cell::Gru { reset_after: true }, &[1, 0, 2]),
        "RNN" => (Cell::SimpleRnn, &[0]),
        other => panic!("module {other}"),
    };
    let act = match rnn["nonlinearity"].as_str() {
        Some("relu") => Activation::Relu,
        _ => Activation::Tanh,
    };
    let mut builder = ModelBuilder::new(input_size);
    let mut width = input_size;
    for k in 0..layers {
        let w_ih = weight(&format!("rnn.weight_ih_l{k}")).expect("w_ih");
        let w_hh = weight(&format!("rnn.weight_hh_l{k}")).expect("w_hh");
        let gates = order.len();
        let kernel = transpose(
            &reorder_gates(&w_ih, hidden, width, order),
            gates * hidden,
            width,
        );
        let recurrent = transpose(
            &reorder_gates(&w_hh, hidden, hidden, order),
            gates * hidden,
            hidden,
        );
        let b_ih =
            weight(&format!("rnn.bias_ih_l{k}")).map(|b| reorder_gates(&b, hidden, 1, order));
        let b_hh =
            weight(&format!("rnn.bias_hh_l{k}")).map(|b| reorder_gates(&b, hidden, 1, order));
        let bias = match (b_ih, b_hh, cell) {
            (Some(i), Some(h), Cell::Gru { .. }) => Some([i, h].concat()),
            (Some(i), Some(h), _) => Some(i.iter().zip(&h).map(|(a, b)| a + b).collect()),
            _ => None,
        };
        let last = k + 1 == layers;
        let spec = RecurrentSpec {
            cell,
            units: hidden,
            activation: act,
            recurrent_activation: Activation::Sigmoid,
            return_sequences: !last || head.is_null(),
            go_backwards: false,
            bidirectional: None,
        };
        builder
            .recurrent(
                spec,
                &KerasWeights {
                    kernel,
                    recurrent_kernel: recurrent,
                    bias,
                },
                None,
            )
            .expect("recurrent");
        width = hidden;
    }
    if !head.is_null() {
        let out = head["linear"]["out_features"].as_u64().expect("out") as usize;
        let softmax = head["softmax"].as_bool().unwrap_or(false);
        let w = weight("fc.weight").expect("fc.weight");
        builder
            .dense(
                out,
                if softmax {
                    Activation::Softmax
                } else {
                    Activation::Linear
                },
                &transpose(&w, out, hidden),
                weight("fc.bias").as_deref(),
            )
            .expect("dense");
    }
    let shape = dims(&json["input_shape"]);
    let (batch, steps, features) = (shape[0], shape[1], shape[2]);
    let states = &json["expected_final_states"];
    let h_n: Vec<Vec<Vec<f32>>> = states["h_n"]
        .as_array()
        .expect("h_n")
        .iter()
        .map(|l| l.as_array().expect("batch").iter().map(floats).collect())
        .collect();
    let c_n: Option<Vec<Vec<Vec<f32>>>> = states.get("c_n").map(|c| {
        c.as_array()
            .expect("c_n")
            .iter()
            .map(|l| l.as_array().expect("batch").iter().map(floats).collect())
            .collect()
    });
    let final_state = (0..batch)
        .map(|b| {
            (0..layers)
                .flat_map(|l| {
                    let mut s = h_n[l][b].clone();
                    if let Some(c) = &c_n {
                        s.extend_from_slice(&c[l][b]);
                    }
                    s
                })
                .collect()
        })
        .collect();
    GoldenCase {
        name: json["case"].as_str().expect("case").to_string(),
        blob: builder.build().expect("build"),
        batch,
        steps,
        features,
        input: floats(&json["input"]),
        expected: floats(&json["expected_output"]),
        final_state: Some(final_state),
    }
}

pub fn all_cases() -> Vec<GoldenCase> {
    let dir = golden_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut cases: Vec<GoldenCase> = paths.iter().map(|p| keras_case(p)).collect();
    let mut torch: Vec<PathBuf> = std::fs::read_dir(dir.join("torch"))
        .expect("tests/golden/torch")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    torch.sort();
    cases.extend(torch.iter().map(|p| torch_case(p)));
    cases
}

/// Largest `|got - expected| / max(1, |expected|)` over two equal-length slices.
pub fn scaled_error(got: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(got.len(), expected.len(), "length");
    got.iter()
        .zip(expected)
        .map(|(g, e)| (g - e).abs() / e.abs().max(1.0))
        .fold(0.0, f32::max)
}

/// Copies a blob into 16-byte aligned memory, as firmware and the CLI do.
pub fn aligned(blob: &[u8]) -> edgernn_tools::blob_file::AlignedBlob {
    edgernn_tools::blob_file::AlignedBlob::from_bytes(blob)
}
