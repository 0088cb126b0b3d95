//! The ONNX importer: every golden `.onnx` file (Keras cases written with `onnx.helper`,
//! PyTorch's classic and dynamo exports, Keras' own `Loop` exports) is imported, run in
//! sequence and streaming mode and compared with the framework's output; graph edits of those
//! files check layouts and directions; hand-built models check every refusal's message; and
//! damaged files must give errors, never panics.

mod common;

use std::path::{Path, PathBuf};

use common::{aligned, scaled_error, TOLERANCE};
use edgernn::Model;
use edgernn_tools::import::onnx::import_onnx;
use edgernn_tools::import::onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use edgernn_tools::import::{ImportError, Imported};
use edgernn_tools::io::npy::read_npy;
use prost::Message;

// ---------------------------------------------------------------------------------------
// Running blobs

/// Outputs of a blob on a `[batch, steps, features]` input.
struct Outputs {
    /// Sequence-call outputs, `[batch, ...]`.
    sequence: Vec<f32>,
    /// Largest error of the streamed outputs against `expected`, when the model streams.
    stream_error: Option<f32>,
}

/// Runs `blob` on every batch item with `run_sequence` and, when the model streams, with
/// `step`, checking that both give bit-identical outputs.
fn run(blob: &[u8], input: &[f32], batch: usize, expected: &[f32]) -> Outputs {
    let blob = aligned(blob);
    let model = Model::from_bytes(blob.bytes()).expect("blob loads");
    let features = model.input_features();
    let steps = input.len() / batch / features;
    assert_eq!(batch * steps * features, input.len(), "input size");
    let out_len = model.output_len(steps).expect("output_len");
    assert_eq!(expected.len(), batch * out_len, "expected output size");
    let mut sequence = Vec::with_capacity(batch * out_len);
    let mut stream_error = model.is_streamable().then_some(0.0f32);
    let in_len = steps * features;
    for b in 0..batch {
        let x = &input[b * in_len..(b + 1) * in_len];
        let mut state = vec![0.0; model.state_len()];
        let mut scratch = vec![0.0; model.sequence_scratch_len(steps).expect("scratch")];
        let mut out = vec![0.0; out_len];
        model
            .run_sequence(x, &mut state, &mut scratch, &mut out)
            .expect("run_sequence");
        if let Some(err) = stream_error.as_mut() {
            let w = model.output_width();
            let mut s = vec![0.0; model.state_len()];
            let mut step_scratch = vec![0.0; model.step_scratch_len()];
            let mut y = vec![0.0; w];
            for (k, xt) in x.chunks(features).enumerate() {
                model
                    .step(xt, &mut s, &mut step_scratch, &mut y)
                    .expect("step");
                let row = if model.output_is_sequence() {
                    Some(k * w..(k + 1) * w)
                } else if k + 1 == steps {
                    Some(0..w)
                } else {
                    None
                };
                if let Some(row) = row {
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&y), bits(&out[row.clone()]), "stream != sequence");
                    let exp = &expected[b * out_len..(b + 1) * out_len][row];
                    *err = err.max(scaled_error(&y, exp));
                }
            }
        }
        sequence.extend_from_slice(&out);
    }
    Outputs {
        sequence,
        stream_error,
    }
}

/// `[a, b, rest]` -> `[b, a, rest]`.
fn swap01(data: &[f32], a: usize, b: usize) -> Vec<f32> {
    let rest = data.len() / (a * b);
    let mut out = vec![0.0; data.len()];
    for i in 0..a {
        for j in 0..b {
            let src = (i * b + j) * rest;
            let dst = (j * a + i) * rest;
            out[dst..dst + rest].copy_from_slice(&data[src..src + rest]);
        }
    }
    out
}

/// Input and expected output of a golden case in the blob's `[batch, ...]` layout.
fn case_data(dir: &Path, case: &str, imported: &Imported) -> (Vec<f32>, usize, Vec<f32>) {
    let x = read_npy(&dir.join(format!("{case}.input.npy"))).expect("input.npy");
    let y = read_npy(&dir.join(format!("{case}.expected.npy"))).expect("expected.npy");
    if imported.time_major_input {
        let (t, b) = (x.shape[0], x.shape[1]);
        let y_data = if y.shape.len() == 3 {
            swap01(&y.data, y.shape[0], y.shape[1])
        } else {
            y.data
        };
        (swap01(&x.data, t, b), b, y_data)
    } else {
        (x.data, x.shape[0], y.data)
    }
}

fn import(path: &Path) -> Result<Imported, ImportError> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    import_onnx(path, &bytes)
}

// ---------------------------------------------------------------------------------------
// Golden files

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `<case>.onnx` next to a Keras case: `onnx.helper`, native operators.
    Keras,
    /// `<case>.keras.onnx`: Keras' own `model.export` (a `Loop`).
    KerasExport,
    TorchClassic,
    TorchDynamo,
}

fn golden_onnx_files() -> Vec<(PathBuf, String, Kind)> {
    let dir = common::golden_dir();
    let mut out = Vec::new();
    for (folder, torch) in [(dir.clone(), false), (dir.join("torch"), true)] {
        for entry in std::fs::read_dir(&folder).expect("golden folder") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some(stem) = name.strip_suffix(".onnx") else {
                continue;
            };
            let (case, kind) = if let Some(c) = stem.strip_suffix(".keras") {
                (c, Kind::KerasExport)
            } else if let Some(c) = stem.strip_suffix(".dynamo") {
                (c, Kind::TorchDynamo)
            } else if torch {
                (stem, Kind::TorchClassic)
            } else {
                (stem, Kind::Keras)
            };
            out.push((path.clone(), case.to_string(), kind));
        }
    }
    out.sort();
    out
}

/// What a refused golden file must say: the construct the runtime lacks.
fn expected_refusal(case: &str, kind: Kind) -> Option<&'static str> {
    match (case, kind) {
        (_, Kind::KerasExport) => {
            Some("Loop-based recurrence (Keras model.export) is not supported")
        }
        _ => None,
    }
}

#[test]
fn every_golden_onnx_file_imports_and_matches_or_is_refused_clearly() {
    let files = golden_onnx_files();
    assert!(files.len() >= 30, "golden .onnx files: {}", files.len());
    let mut imported_count = 0;
    println!("| file | result | seq max err | stream max err | same outputs as builder blob | byte-identical blob |");
    println!("|---|---|---:|---:|---|---|");
    for (path, case, kind) in &files {
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let result = import(path);
        if let Some(needle) = expected_refusal(case, *kind) {
            let err = result.expect_err(file);
            let text = err.to_string();
            assert!(
                text.contains(needle),
                "{file}: refusal should mention {needle:?}: {text}"
            );
            assert!(
                kind == &Kind::KerasExport || err.location.is_some(),
                "{file}: refusal names no node: {text}"
            );
            println!("| {file} | refused: {} | | | | |", err.message);
            continue;
        }
        let imported = result.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            imported.source.starts_with("ONNX opset "),
            "{}",
            imported.source
        );
        let dir = path.parent().expect("folder");
        let (x, batch, expected) = case_data(dir, case, &imported);
        let out = run(&imported.blob, &x, batch, &expected);
        let err = scaled_error(&out.sequence, &expected);
        assert!(err < TOLERANCE, "{file}: sequence error {err}");
        if let Some(e) = out.stream_error {
            assert!(e < TOLERANCE, "{file}: stream error {e}");
        }
        let (same, identical) = match kind {
            Kind::Keras => {
                // The blob the builder makes from the Keras weights must compute the same.
                let case = common::keras_case(&dir.join(format!("{case}.json")));
                let reference = run(&case.blob, &x, batch, &expected);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&out.sequence),
                    bits(&reference.sequence),
                    "{file}: imported blob differs from the builder's"
                );
                (
                    "yes",
                    if case.blob == imported.blob {
                        "yes"
                    } else {
                        "no"
                    },
                )
            }
            _ => ("n/a", "n/a"),
        };
        if matches!(kind, Kind::TorchClassic | Kind::TorchDynamo) {
            check_other_shape(dir, case, &imported, file);
        }
        let stream = out
            .stream_error
            .map_or("n/a (not streamable)".to_string(), |e| format!("{e:.2e}"));
        println!("| {file} | imported | {err:.2e} | {stream} | {same} | {identical} |");
        imported_count += 1;
    }
    assert!(imported_count >= 18, "imported {imported_count} files");
}

/// The torch JSON's second input (batch + 1, time - 3) through the same blob.
fn check_other_shape(dir: &Path, case: &str, imported: &Imported, file: &str) {
    let text = std::fs::read_to_string(dir.join(format!("{case}.json"))).expect("json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let other = &json["other_shape_input"];
    if other.is_null() {
        return;
    }
    let shape: Vec<usize> = other["input_shape"]
        .as_array()
        .expect("input_shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    let mut x = common::floats(&other["input"]);
    let mut y = common::floats(&other["expected_output"]);
    let mut batch = shape[0];
    if imported.time_major_input {
        batch = shape[1];
        x = swap01(&x, shape[0], shape[1]);
        let out_shape: Vec<usize> = other["expected_output_shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        if out_shape.len() == 3 {
            y = swap01(&y, out_shape[0], out_shape[1]);
        }
    }
    let out = run(&imported.blob, &x, batch, &y);
    let err = scaled_error(&out.sequence, &y);
    assert!(err < TOLERANCE, "{file}: other-shape input error {err}");
}

#[test]
fn keras_onnx_files_import_to_the_builders_blob_bytes_where_no_bias_is_folded() {
    // The helper-built Keras graphs carry Rb = 0, so folding Wb + Rb leaves every float as
    // it is: the blob must be byte-identical to the one built from the Keras weights.
    for (path, case, kind) in golden_onnx_files() {
        if kind != Kind::Keras || expected_refusal(&case, kind).is_some() {
            continue;
        }
        let imported = import(&path).expect("imports");
        let reference = common::keras_case(&common::golden_dir().join(format!("{case}.json")));
        assert!(
            imported.blob == reference.blob,
            "{case}: blob differs from the builder's"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Editing golden graphs: layouts and directions

fn load_model(path: &Path) -> ModelProto {
    ModelProto::decode(std::fs::read(path).expect("read").as_slice()).expect("decode")
}

fn golden(name: &str) -> PathBuf {
    common::golden_dir().join(name)
}

fn import_model(model: &ModelProto) -> Result<Imported, ImportError> {
    import_onnx(Path::new("edited.onnx"), &model.encode_to_vec())
}

fn graph_mut(model: &mut ModelProto) -> &mut GraphProto {
    model.graph.as_mut().expect("graph")
}

/// Drops node `index`, rewiring its readers to its input.
fn bypass(graph: &mut GraphProto, index: usize) {
    let node = graph.node.remove(index);
    let (from, to) = (node.input[0].clone(), node.output[0].clone());
    for n in &mut graph.node {
        for i in &mut n.input {
            if *i == to {
                i.clone_from(&from);
            }
        }
    }
}

fn set_int_attr(node: &mut NodeProto, name: &str, value: i64) {
    node.attribute.retain(|a| a.name() != name);
    node.attribute.push(attr_int(name, value));
}

#[test]
fn time_major_and_batch_first_layouts_give_the_same_blob() {
    let path = golden("lstm_u8_f3_seq.onnx");
    let original = import(&path).expect("original");
    assert!(!original.time_major_input);

    // Without the Transposes the node reads [time, batch, features] (layout 0).
    let mut tm = load_model(&path);
    let g = graph_mut(&mut tm);
    let transposes: Vec<usize> = (0..g.node.len())
        .filter(|&i| g.node[i].op_type() == "Transpose")
        .collect();
    assert_eq!(transposes.len(), 2);
    for &i in transposes.iter().rev() {
        bypass(g, i);
    }
    let imported = import_model(&tm).expect("time-major");
    assert!(imported.time_major_input);
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("[time, batch, features]")),
        "{:?}",
        imported.notes
    );
    assert!(imported.blob == original.blob);

    // layout=1: the node reads [batch, time, features] and writes Y [batch, time, dirs, H].
    let mut bf = load_model(&path);
    let g = graph_mut(&mut bf);
    for &i in transposes.iter().rev() {
        bypass(g, i);
    }
    let lstm = g
        .node
        .iter_mut()
        .find(|n| n.op_type() == "LSTM")
        .expect("LSTM");
    set_int_attr(lstm, "layout", 1);
    let y = lstm.output[0].clone();
    let squeeze = g
        .node
        .iter()
        .position(|n| n.op_type() == "Squeeze" && n.input[0] == y)
        .expect("Squeeze of Y");
    let axes_name = g.node[squeeze].input[1].clone();
    g.initializer.retain(|t| t.name() != axes_name);
    g.initializer.push(tensor_i64(&axes_name, &[1], &[2]));
    let imported = import_model(&bf).expect("layout=1");
    assert!(!imported.time_major_input);
    assert!(imported.blob == original.blob);
}

#[test]
fn reverse_node_with_reversed_output_is_go_backwards() {
    // Golden go_backwards: Slice(step -1) on time, then a forward node. The same layer as a
    // reverse-direction node reads time as it is and aligns Y with the input, so Y reversed
    // is Keras' processing-order output.
    let path = golden("lstm_go_backwards_u8_f3_seq.onnx");
    let original = import(&path).expect("original");
    let mut m = load_model(&path);
    let g = graph_mut(&mut m);
    let slice = g
        .node
        .iter()
        .position(|n| n.op_type() == "Slice")
        .expect("Slice");
    let slice_node = g.node[slice].clone();
    bypass(g, slice);
    let lstm = g
        .node
        .iter()
        .position(|n| n.op_type() == "LSTM")
        .expect("LSTM");
    g.node[lstm].attribute.retain(|a| a.name() != "direction");
    g.node[lstm]
        .attribute
        .push(attr_str("direction", "reverse"));
    // Reverse Y on its time axis (axis 0) right after the node.
    let y = g.node[lstm].output[0].clone();
    for n in &mut g.node[lstm + 1..] {
        for i in &mut n.input {
            if *i == y {
                *i = "y_reversed".into();
            }
        }
    }
    let mut reverse = slice_node;
    reverse.name = Some("reverse_y".into());
    reverse.input[0] = y;
    reverse.output = vec!["y_reversed".into()];
    g.node.insert(lstm + 1, reverse);
    let imported = import_model(&m).expect("reverse node");
    assert!(imported.blob == original.blob);
}

/// The blob the builder makes from a Keras case's JSON after `edit` (e.g. another
/// `return_sequences` or `merge_mode`).
fn keras_reference(case: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let path = common::golden_dir().join(format!("{case}.json"));
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("json")).expect("json");
    edit(&mut json);
    let dir = tempfile::tempdir().expect("tempdir");
    let edited = dir.path().join(format!("{case}.json"));
    std::fs::write(&edited, json.to_string()).expect("write");
    common::keras_case(&edited).blob
}

/// Replaces everything after the recurrent node with `tail` reading its `Y_h` output.
fn final_state_graph(path: &Path, tail: impl FnOnce(&mut GraphProto, &str)) -> ModelProto {
    let mut m = load_model(path);
    let g = graph_mut(&mut m);
    let rec = g
        .node
        .iter()
        .position(|n| matches!(n.op_type(), "LSTM" | "GRU" | "RNN"))
        .expect("recurrent node");
    g.node.truncate(rec + 1);
    let y_h = g.node[rec].output[1].clone();
    tail(g, &y_h);
    m
}

#[test]
fn final_states_of_bidirectional_layers_merge_like_keras() {
    // Y_h [2, batch, H] -> Transpose [batch, 2, H] -> Reshape [batch, 2H]: concat of the
    // final forward and backward outputs = Bidirectional(return_sequences=False, concat).
    let concat = final_state_graph(&golden("bilstm_concat_u8_f3_seq.onnx"), |g, y_h| {
        g.initializer.push(tensor_i64("flat", &[2], &[0, -1]));
        g.node.push(node(
            "Transpose",
            "batch_first",
            &[y_h],
            &["h_bf"],
            vec![attr_ints("perm", &[1, 0, 2])],
        ));
        g.node.push(node(
            "Reshape",
            "concat",
            &["h_bf", "flat"],
            &["output"],
            vec![],
        ));
    });
    let imported = import_model(&concat).expect("concat");
    let reference = keras_reference("bilstm_concat_u8_f3_seq", |j| {
        j["layers"][0]["config"]["layer"]["return_sequences"] = false.into();
    });
    assert!(imported.blob == reference);

    // ReduceMean over the direction axis (keepdims=0) = merge_mode "ave".
    let ave = final_state_graph(&golden("bigru_sum_u8_f3_seq.onnx"), |g, y_h| {
        g.initializer.push(tensor_i64("dir_axis", &[1], &[0]));
        g.node.push(node(
            "ReduceMean",
            "ave",
            &[y_h, "dir_axis"],
            &["output"],
            vec![attr_int("keepdims", 0)],
        ));
    });
    // ReduceMean takes its axes as an input from opset 18 (an attribute before).
    let mut ave18 = ave.clone();
    ave18.opset_import[0].version = Some(18);
    let imported = import_model(&ave18).expect("ave");
    let reference = keras_reference("bigru_sum_u8_f3_seq", |j| {
        j["layers"][0]["config"]["layer"]["return_sequences"] = false.into();
        j["layers"][0]["config"]["merge_mode"] = "ave".into();
    });
    assert!(imported.blob == reference);
}

#[test]
fn static_shapes_and_squeezed_outputs_import() {
    // Dynamo's generic Reshape after the node, with the batch and time fixed in the graph
    // input and the target shape a constant instead of computed from Shape.
    let path = golden("torch/torch_gru_i3_h8_seq.dynamo.onnx");
    let original = import(&path).expect("original");
    let mut m = load_model(&path);
    let g = graph_mut(&mut m);
    g.input[0] = value_info("input", &[D::Fixed(2), D::Fixed(10), D::Fixed(3)]);
    g.initializer
        .push(tensor_i64("static_shape", &[3], &[10, 2, 8]));
    let reshape = g
        .node
        .iter_mut()
        .rev()
        .find(|n| n.op_type() == "Reshape")
        .expect("Reshape");
    reshape.input[1] = "static_shape".into();
    let imported = import_model(&m).expect("static shapes");
    assert!(imported.blob == original.blob);

    // fc(y[:, -1]).squeeze(-1): the single output feature squeezed away.
    let path = golden("torch/torch_lstm_i3_h8_linear1_last.onnx");
    let original = import(&path).expect("original");
    let mut m = load_model(&path);
    let g = graph_mut(&mut m);
    let gemm = g.node.len() - 1;
    g.node[gemm].output[0] = "fc_out".into();
    g.initializer.push(tensor_i64("last_axis", &[1], &[-1]));
    g.node.push(node(
        "Squeeze",
        "squeeze_out",
        &["fc_out", "last_axis"],
        &["output"],
        vec![],
    ));
    let imported = import_model(&m).expect("squeezed");
    assert!(imported.blob == original.blob);
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("squeezes its single output feature")),
        "{:?}",
        imported.notes
    );
}

#[test]
fn last_layer_final_state_of_a_multi_layer_module_is_return_sequences_false() {
    // PyTorch's `fc(h_n[-1])` pattern: h_n = Concat of every layer's Y_h, then Gather(-1).
    let path = golden("torch/torch_lstm_i4_h16_l2_seq.onnx");
    let original = import(&path).expect("original");
    let mut m = load_model(&path);
    let g = graph_mut(&mut m);
    let y_h: Vec<String> = g
        .node
        .iter()
        .filter(|n| n.op_type() == "LSTM")
        .map(|n| n.output[1].clone())
        .collect();
    assert_eq!(y_h.len(), 2);
    let last = g.node.len() - 1;
    g.node[last].output[0] = "sequence_unused".into();
    g.initializer.push(tensor_i64("minus_one", &[], &[-1]));
    g.node.push(node(
        "Concat",
        "h_n",
        &[&y_h[0], &y_h[1]],
        &["h_n"],
        vec![attr_int("axis", 0)],
    ));
    g.node.push(node(
        "Gather",
        "h_n_last",
        &["h_n", "minus_one"],
        &["output"],
        vec![attr_int("axis", 0)],
    ));
    let imported = import_model(&m).expect("h_n[-1]");
    let model_blob = aligned(&imported.blob);
    let model = Model::from_bytes(model_blob.bytes()).expect("loads");
    assert!(!model.output_is_sequence());

    // Its output is the last step of the full-sequence model's output.
    let x = read_npy(&golden("torch/torch_lstm_i4_h16_l2_seq.input.npy")).expect("input");
    let y = read_npy(&golden("torch/torch_lstm_i4_h16_l2_seq.expected.npy")).expect("expected");
    let (batch, steps, width) = (y.shape[0], y.shape[1], y.shape[2]);
    let last_steps: Vec<f32> = (0..batch)
        .flat_map(|b| {
            let row = (b * steps + steps - 1) * width;
            y.data[row..row + width].to_vec()
        })
        .collect();
    let out = run(&imported.blob, &x.data, batch, &last_steps);
    let full = run(&original.blob, &x.data, batch, &y.data);
    let full_last: Vec<f32> = (0..batch)
        .flat_map(|b| {
            let row = (b * steps + steps - 1) * width;
            full.sequence[row..row + width].to_vec()
        })
        .collect();
    assert_eq!(out.sequence, full_last);
    assert!(scaled_error(&out.sequence, &last_steps) < TOLERANCE);

    // h_n[0] is the first layer's state: the second layer would be a dead branch.
    let mut m0 = m.clone();
    graph_mut(&mut m0)
        .initializer
        .push(tensor_i64("zero", &[], &[0]));
    graph_mut(&mut m0).node.last_mut().expect("Gather").input[1] = "zero".into();
    let err = import_model(&m0).expect_err("h_n[0]");
    assert!(err.to_string().contains("the graph branches"), "{err}");
}

#[test]
fn last_step_of_a_bidirectional_output_is_refused() {
    // y[:, -1] of a bidirectional layer is the backward direction after one step: not Keras.
    let path = golden("bilstm_concat_u8_f3_seq.onnx");
    let mut m = load_model(&path);
    let g = graph_mut(&mut m);
    let last = g.node.len() - 1; // Identity -> output
    g.initializer.push(tensor_i64("minus_one", &[], &[-1]));
    let src = g.node[last].input[0].clone();
    g.node[last].input[0] = "picked".into();
    g.node.insert(
        last,
        node(
            "Gather",
            "pick_last",
            &[&src, "minus_one"],
            &["picked"],
            vec![attr_int("axis", 1)],
        ),
    );
    let err = import_model(&m).expect_err("refused");
    assert!(
        err.to_string()
            .contains("not Keras' return_sequences=False output"),
        "{err}"
    );
    assert_eq!(err.location.as_deref(), Some("node 4 'pick_last' (Gather)"));
}

// ---------------------------------------------------------------------------------------
// Sequence layers: Embedding (Gather), Normalization (Sub + Div), RepeatVector (Tile/Expand)

/// Imports an edited golden graph, returning the error (with its node) as text.
fn edited_err(case: &str, edit: impl FnOnce(&mut GraphProto)) -> (ImportError, String) {
    let mut m = load_model(&golden(&format!("{case}.onnx")));
    edit(graph_mut(&mut m));
    let err = import_model(&m).expect_err("refused");
    let text = shown(case, &err);
    (err, text)
}

fn edited_blob(case: &str, edit: impl FnOnce(&mut GraphProto)) -> Vec<u8> {
    let mut m = load_model(&golden(&format!("{case}.onnx")));
    edit(graph_mut(&mut m));
    import_model(&m)
        .unwrap_or_else(|e| panic!("{case}: {e}"))
        .blob
}

#[test]
fn sequence_layer_graph_variants_import() {
    let blob = |case: &str| {
        import(&golden(&format!("{case}.onnx")))
            .expect("imports")
            .blob
    };
    // Token ids cast to int64 before the Gather (as converters write it).
    let emb = "embedding_lstm_softmax4_v20";
    let cast = edited_blob(emb, |g| {
        g.node.insert(
            0,
            node(
                "Cast",
                "cast_ids",
                &["input"],
                &["ids64"],
                vec![attr_int("to", 7)],
            ),
        );
        g.node[1].input[1] = "ids64".into();
    });
    assert!(cast == blob(emb), "Cast before Gather changes the blob");
    // RepeatVector as Unsqueeze + Expand([1, n, units]) instead of Tile([1, n, 1]).
    let rep = "seq2vec2seq_lstm_u16_rep5";
    let expand = edited_blob(rep, |g| {
        g.initializer
            .push(tensor_i64("expand_shape", &[3], &[1, 5, 16]));
        let tile = g
            .node
            .iter_mut()
            .find(|n| n.op_type() == "Tile")
            .expect("Tile");
        tile.op_type = Some("Expand".into());
        tile.input[1] = "expand_shape".into();
    });
    assert!(expand == blob(rep), "Expand differs from Tile");
    // Div alone is a Normalization with mean 0; Sub alone one with divisor 1.
    let norm = "normalization_gru_dense1_f3";
    for drop in [0, 1] {
        let edited = edited_blob(norm, |g| bypass(g, drop));
        let bytes = aligned(&edited);
        let model = Model::from_bytes(bytes.bytes()).expect("loads");
        assert_eq!(model.input_features(), 3);
    }
}

#[test]
fn unsupported_forms_of_the_sequence_layers_are_refused() {
    let emb = "embedding_lstm_softmax4_v20";
    let (err, text) = edited_err(emb, |g| set_int_attr(&mut g.node[0], "axis", 1));
    assert_eq!(err.location.as_deref(), Some("node 0 'Gather_3' (Gather)"));
    assert!(
        text.contains(
            "gathers along axis 1 of the constant table [20, 8]; an Embedding looks up rows (axis 0)"
        ),
        "{text}"
    );
    let norm = "normalization_gru_dense1_f3";
    // A table looked up with float activations: an Embedding that is not the first layer.
    let (err, text) = edited_err(norm, |g| {
        g.initializer
            .push(tensor_f32("table", &[20, 8], &[0.5; 160]));
        g.node.insert(
            2,
            node(
                "Gather",
                "late_gather",
                &["table", "div_5"],
                &["looked_up"],
                vec![],
            ),
        );
        g.node[3].input[0] = "looked_up".into();
    });
    assert_eq!(
        err.location.as_deref(),
        Some("node 2 'late_gather' (Gather)")
    );
    assert!(
        text.contains(
            "looks up rows of the constant table [20, 8] at positions taken from the activations \
             [input axis 0, input axis 1, features=3]: an Embedding is supported only as the first \
             layer, reading the graph's integer token ids [batch, time]"
        ),
        "{text}"
    );
    // Scaling by a multiplication (x * (1 / std)) is not the exact Keras division.
    let (err, text) = edited_err(norm, |g| g.node[1].op_type = Some("Mul".into()));
    assert_eq!(err.location.as_deref(), Some("node 1 'Div_6' (Mul)"));
    assert!(
        text.contains(
            "multiplies the activations by a constant, which the runtime does not do; supported: \
             Sub then Div of per-feature constants ((x - mean) / std, a Keras Normalization), and \
             Add as the bias of a Dense layer after MatMul"
        ),
        "{text}"
    );
    // mean - x is not a Normalization.
    let (_, text) = edited_err(norm, |g| g.node[0].input.swap(0, 1));
    assert!(
        text.contains("subtracts the activations from a constant, which the runtime does not do"),
        "{text}"
    );
    // A divisor per time step, not per feature.
    let (_, text) = edited_err(norm, |g| {
        g.initializer
            .push(tensor_f32("std_t", &[4, 1], &[1.0, 2.0, 3.0, 4.0]));
        g.node[1].input[1] = "std_t".into();
    });
    assert!(
        text.contains(
            "divides by a constant of shape [4, 1], which is not one value per feature of the 3 \
             features"
        ),
        "{text}"
    );
    let rep = "seq2vec2seq_lstm_u16_rep5";
    // Repeating the sequence instead of a vector.
    let (err, text) = edited_err(rep, |g| {
        g.initializer.push(tensor_i64("reps2", &[3], &[2, 5, 1]));
        let tile = g
            .node
            .iter_mut()
            .find(|n| n.op_type() == "Tile")
            .expect("Tile");
        tile.input[1] = "reps2".into();
    });
    assert_eq!(err.location.as_deref(), Some("node 4 'Tile_17' (Tile)"));
    assert!(
        text.contains("repeats several axes of the activations [batch, 1, features=16]"),
        "{text}"
    );
    let (_, text) = edited_err(rep, |g| {
        // Tile the time-major sequence of the first LSTM (its Y) instead of its last output.
        let tile = g
            .node
            .iter()
            .position(|n| n.op_type() == "Tile")
            .expect("Tile");
        g.node[tile].input[0] = "lstm_6".into();
        g.initializer.push(tensor_i64("reps4", &[4], &[1, 1, 5, 1]));
        g.node[tile].input[1] = "reps4".into();
    });
    assert!(
        text.contains("repeats axis 2 of the activations [time, directions=1, batch, features=16]"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// Hand-built models: refusals

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

fn attr_str(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_strs(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Strings as i32),
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| (*s).to_string()).collect(),
        output: outputs.iter().map(|s| (*s).to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: data.to_vec(),
        ..Default::default()
    }
}

fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

enum D {
    Fixed(i64),
    Named(&'static str),
}

fn value_info(name: &str, dims: &[D]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                D::Fixed(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                D::Named(s) => tensor_shape_proto::dimension::Value::DimParam((*s).into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Deterministic weights in [-0.5, 0.5).
fn weights(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 1000) as f32 / 1000.0 - 0.5
        })
        .collect()
}

const F: i64 = 3;
const H: i64 = 2;

/// `input [batch, time, 3] -> Transpose -> LSTM(2) -> Squeeze(Y_h) -> output [batch, 2]`,
/// with `edit` applied to the LSTM node and graph before encoding.
fn tiny_lstm(edit: impl FnOnce(&mut GraphProto)) -> Vec<u8> {
    let g4 = 4 * H;
    let mut graph = GraphProto {
        name: Some("tiny".into()),
        node: vec![
            node(
                "Transpose",
                "to_time_major",
                &["input"],
                &["x_tm"],
                vec![attr_ints("perm", &[1, 0, 2])],
            ),
            node(
                "LSTM",
                "lstm",
                &["x_tm", "W", "R", "B"],
                &["Y", "Y_h"],
                vec![attr_int("hidden_size", H), attr_str("direction", "forward")],
            ),
            node(
                "Squeeze",
                "drop_dirs",
                &["Y_h", "axes0"],
                &["output"],
                vec![],
            ),
        ],
        initializer: vec![
            tensor_f32("W", &[1, g4, F], &weights((g4 * F) as usize, 1)),
            tensor_f32("R", &[1, g4, H], &weights((g4 * H) as usize, 2)),
            tensor_f32("B", &[1, 2 * g4], &weights((2 * g4) as usize, 3)),
            tensor_i64("axes0", &[1], &[0]),
        ],
        input: vec![value_info(
            "input",
            &[D::Named("batch"), D::Named("time"), D::Fixed(F)],
        )],
        output: vec![value_info("output", &[D::Named("batch"), D::Fixed(H)])],
        ..Default::default()
    };
    edit(&mut graph);
    ModelProto {
        ir_version: Some(8),
        producer_name: Some("import_onnx test".into()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn lstm_node(g: &mut GraphProto) -> &mut NodeProto {
    g.node
        .iter_mut()
        .find(|n| n.op_type() == "LSTM")
        .expect("LSTM")
}

fn tiny_err(edit: impl FnOnce(&mut GraphProto)) -> ImportError {
    import_onnx(Path::new("tiny.onnx"), &tiny_lstm(edit)).expect_err("refused")
}

#[test]
fn the_tiny_model_imports() {
    let imported = import_onnx(Path::new("tiny.onnx"), &tiny_lstm(|_| {})).expect("imports");
    assert_eq!(
        imported.source,
        "ONNX opset 17, IR 8, producer import_onnx test"
    );
    let blob = aligned(&imported.blob);
    let model = Model::from_bytes(blob.bytes()).expect("loads");
    assert_eq!(model.output_width(), 2);
    assert!(!model.output_is_sequence());
}

/// Prints and returns an error's text for the report.
fn shown(case: &str, err: &ImportError) -> String {
    let text = err.to_string();
    println!("{case}: {text}");
    text
}

#[test]
fn peephole_lstm_is_refused() {
    let err = tiny_err(|g| {
        g.initializer
            .push(tensor_f32("P", &[1, 3 * H], &weights((3 * H) as usize, 9)));
        let n = lstm_node(g);
        n.input
            .extend(["".into(), "".into(), "".into(), "P".into()]);
    });
    let text = shown("peephole", &err);
    assert_eq!(err.location.as_deref(), Some("node 1 'lstm' (LSTM)"));
    assert!(text.contains("peephole weights P"), "{text}");
    assert!(text.contains("not supported"), "{text}");

    // All-zero peepholes change nothing and are accepted.
    let zero = tiny_lstm(|g| {
        g.initializer.push(tensor_f32("P", &[1, 3 * H], &[0.0; 6]));
        lstm_node(g)
            .input
            .extend(["".into(), "".into(), "".into(), "P".into()]);
    });
    import_onnx(Path::new("tiny.onnx"), &zero).expect("zero peepholes");
}

#[test]
fn clip_is_refused() {
    let err = tiny_err(|g| lstm_node(g).attribute.push(attr_float("clip", 3.0)));
    let text = shown("clip", &err);
    assert_eq!(err.location.as_deref(), Some("node 1 'lstm' (LSTM)"));
    assert!(
        text.contains("sets clip=3: cell clipping is not supported"),
        "{text}"
    );
}

#[test]
fn non_zero_initial_state_is_refused_and_zero_states_are_accepted() {
    let err = tiny_err(|g| {
        g.initializer
            .push(tensor_f32("h0", &[1, 1, H], &[0.5, 0.0]));
        lstm_node(g).input.extend(["".into(), "h0".into()]);
    });
    let text = shown("initial_h", &err);
    assert!(text.contains("non-zero initial_h"), "{text}");
    assert_eq!(err.location.as_deref(), Some("node 1 'lstm' (LSTM)"));

    // Zeros built at run time from the batch size, as PyTorch's classic exporter does.
    let ok = tiny_lstm(|g| {
        g.initializer.push(tensor_i64("zero_i", &[], &[0]));
        g.initializer.push(tensor_i64("dirs", &[1], &[1]));
        g.initializer.push(tensor_i64("hidden", &[1], &[H]));
        let zeros = vec![
            node("Shape", "shape", &["input"], &["shape"], vec![]),
            node(
                "Gather",
                "batch",
                &["shape", "zero_i"],
                &["b"],
                vec![attr_int("axis", 0)],
            ),
            node("Unsqueeze", "b1", &["b", "axes0"], &["b_vec"], vec![]),
            node(
                "Concat",
                "h_shape",
                &["dirs", "b_vec", "hidden"],
                &["hs"],
                vec![attr_int("axis", 0)],
            ),
            node("ConstantOfShape", "h0", &["hs"], &["h0"], vec![]),
        ];
        for (i, n) in zeros.into_iter().enumerate() {
            g.node.insert(i, n);
        }
        lstm_node(g)
            .input
            .extend(["".into(), "h0".into(), "h0".into()]);
    });
    import_onnx(Path::new("tiny.onnx"), &ok).expect("zero states");
}

#[test]
fn unsupported_op_in_the_chain_is_refused_by_name() {
    let err = tiny_err(|g| {
        g.node[2].output[0] = "squeezed".into();
        g.node
            .push(node("Erf", "erf_0", &["squeezed"], &["output"], vec![]));
    });
    let text = shown("unsupported op", &err);
    assert_eq!(err.location.as_deref(), Some("node 3 'erf_0' (Erf)"));
    assert!(
        text.contains("op Erf is not supported; supported are RNN, LSTM, GRU"),
        "{text}"
    );

    // An activation straight after a recurrent layer is not a Dense layer.
    let err = tiny_err(|g| {
        g.node[2].output[0] = "squeezed".into();
        g.node
            .push(node("Relu", "relu_0", &["squeezed"], &["output"], vec![]));
    });
    let text = shown("activation without Dense", &err);
    assert!(text.contains("not the output of a Dense layer"), "{text}");
}

#[test]
fn other_recurrent_options_are_refused_with_what_is_supported() {
    type Edit = Box<dyn FnOnce(&mut GraphProto)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "input_forget",
            Box::new(|g| lstm_node(g).attribute.push(attr_int("input_forget", 1))),
            "input_forget=1",
        ),
        (
            "g != h",
            Box::new(|g| {
                lstm_node(g)
                    .attribute
                    .push(attr_strs("activations", &["Sigmoid", "Tanh", "Relu"]))
            }),
            "the cell activation g (Tanh) differs from the output activation h (Relu)",
        ),
        (
            "HardSigmoid default",
            Box::new(|g| {
                lstm_node(g)
                    .attribute
                    .push(attr_strs("activations", &["HardSigmoid", "Tanh", "Tanh"]))
            }),
            "HardSigmoid with alpha=0.2, beta=0.5",
        ),
        (
            "sequence_lens",
            Box::new(|g| {
                g.initializer.push(tensor_i64("lens", &[1], &[3]));
                lstm_node(g).input.push("lens".into());
            }),
            "sequence_lens",
        ),
        (
            "Y_c",
            Box::new(|g| {
                lstm_node(g).output.push("Y_c".into());
                g.node[2].input[0] = "Y_c".into();
            }),
            "Y_c (the LSTM's final cell state)",
        ),
    ];
    for (name, edit, needle) in cases {
        let err = tiny_err(edit);
        let text = shown(name, &err);
        assert!(text.contains(needle), "{name}: {text}");
        assert!(err.location.is_some(), "{name}: {text}");
    }

    // Keras 3's hard_sigmoid (alpha = 1/6) maps.
    let ok = tiny_lstm(|g| {
        let n = lstm_node(g);
        n.attribute
            .push(attr_strs("activations", &["HardSigmoid", "Tanh", "Tanh"]));
        n.attribute.push(AttributeProto {
            name: Some("activation_alpha".into()),
            r#type: Some(AttributeType::Floats as i32),
            floats: vec![1.0 / 6.0],
            ..Default::default()
        });
    });
    import_onnx(Path::new("tiny.onnx"), &ok).expect("Keras hard_sigmoid");
}

#[test]
fn malformed_graphs_are_refused() {
    // A cycle: the first node also reads the last node's output.
    let err = tiny_err(|g| {
        g.node[0].input[0] = "mix".into();
        g.node
            .push(node("Add", "mix", &["input", "output"], &["mix"], vec![]));
    });
    let text = shown("cycle", &err);
    assert!(text.contains("cycle"), "{text}");

    // Too many nodes.
    let err = tiny_err(|g| {
        for i in 0..10_001 {
            g.node.push(node(
                "Identity",
                &format!("dead_{i}"),
                &["input"],
                &[&format!("d{i}")],
                vec![],
            ));
        }
    });
    let text = shown("too many nodes", &err);
    assert!(text.contains("above the limit of 10000"), "{text}");

    // Tensors in external data.
    let err = tiny_err(|g| {
        let w = g
            .initializer
            .iter_mut()
            .find(|t| t.name() == "W")
            .expect("W");
        w.float_data.clear();
        w.data_location = Some(1);
        w.external_data
            .push(edgernn_tools::import::onnx::proto::StringStringEntryProto {
                key: Some("location".into()),
                value: Some("weights.bin".into()),
            });
    });
    let text = shown("external data", &err);
    assert!(text.contains("external data (weights.bin)"), "{text}");

    // A huge declared shape with little data.
    let err = tiny_err(|g| {
        let w = g
            .initializer
            .iter_mut()
            .find(|t| t.name() == "W")
            .expect("W");
        w.dims = vec![1, 1 << 40, 1 << 20];
    });
    let text = shown("huge dims", &err);
    assert!(text.contains("above the limit"), "{text}");

    // Two graph outputs.
    let err = tiny_err(|g| g.output.push(value_info("Y", &[])));
    let text = shown("two outputs", &err);
    assert!(text.contains("exactly one is supported"), "{text}");
}

#[test]
fn truncated_and_foreign_files_are_refused() {
    let bytes = std::fs::read(golden("lstm_u8_f3_last.onnx")).expect("read");
    let err = import_onnx(Path::new("cut.onnx"), &bytes[..bytes.len() / 2]).expect_err("cut");
    let text = shown("truncated", &err);
    assert!(
        text.starts_with("cut.onnx: not a readable ONNX model"),
        "{text}"
    );
    assert!(err.location.is_none());

    let npy = std::fs::read(golden("lstm_u8_f3_last.input.npy")).expect("read");
    let text = shown(
        "npy",
        &import_onnx(Path::new("x.onnx"), &npy).expect_err("npy"),
    );
    assert!(
        text.contains("this is a NumPy .npy array, not an ONNX model"),
        "{text}"
    );

    let h5 = std::fs::read(golden("lstm_u8_f3_last.h5")).expect("read");
    let text = shown(
        "h5",
        &import_onnx(Path::new("x.onnx"), &h5).expect_err("h5"),
    );
    assert!(text.contains("HDF5"), "{text}");

    let text = shown(
        "empty",
        &import_onnx(Path::new("x.onnx"), b"").expect_err("empty"),
    );
    assert!(text.contains("empty"), "{text}");

    let text = shown(
        "text",
        &import_onnx(Path::new("x.onnx"), b"hello, this is not a model\n").expect_err("text"),
    );
    assert!(text.contains("not"), "{text}");
}

// ---------------------------------------------------------------------------------------
// Unrolled recurrences (PyTorch dynamo's nn.RNN)

/// A dynamo-style unrolled `nn.RNN(relu)`: per layer one input projection
/// `MatMul + Add`, then per step `Slice + Squeeze` of it, `MatMul(h, W_hh^T) + b_hh + x_k`,
/// `Relu`, and a `Concat` of the states; zero states from `Shape -> Concat -> Expand`.
/// Returns the model and the blob the builder makes from the same weights.
fn unrolled_rnn(layers: usize, steps: i64, last_only: bool) -> (Vec<u8>, Vec<u8>) {
    use edgernn::format::{Activation, Cell};
    use edgernn_tools::builder::{KerasWeights, ModelBuilder, RecurrentSpec};
    let (f, h) = (3usize, 4usize);
    let hi = h as i64;
    let mut nodes = vec![
        node(
            "Shape",
            "shape",
            &["input"],
            &["batch"],
            vec![attr_int("start", 0), attr_int("end", 1)],
        ),
        node(
            "Concat",
            "zeros_shape",
            &["n_layers", "batch", "hidden"],
            &["zs"],
            vec![attr_int("axis", 0)],
        ),
        node("Expand", "zeros", &["zero", "zs"], &["zeros"], vec![]),
        node(
            "Transpose",
            "tm",
            &["input"],
            &["x0"],
            vec![attr_ints("perm", &[1, 0, 2])],
        ),
    ];
    let mut inits = vec![
        tensor_f32("zero", &[], &[0.0]),
        tensor_i64("n_layers", &[1], &[layers as i64]),
        tensor_i64("hidden", &[1], &[hi]),
        tensor_i64("ax0", &[1], &[0]),
    ];
    for k in 0..=steps.max(layers as i64) {
        inits.push(tensor_i64(&format!("i{k}"), &[1], &[k]));
    }
    let mut builder = ModelBuilder::new(f);
    let mut x = "x0".to_string();
    let mut width = f;
    for l in 0..layers {
        let w_ih_t = weights(width * h, 10 + l as u32); // [in, H]: x @ W_ih^T
        let w_hh_t = weights(h * h, 20 + l as u32);
        let b_ih = weights(h, 30 + l as u32);
        let b_hh = weights(h, 40 + l as u32);
        let p = |s: &str| format!("l{l}_{s}");
        inits.push(tensor_f32(&p("wih"), &[width as i64, hi], &w_ih_t));
        inits.push(tensor_f32(&p("whh"), &[hi, hi], &w_hh_t));
        inits.push(tensor_f32(&p("bih"), &[hi], &b_ih));
        inits.push(tensor_f32(&p("bhh"), &[hi], &b_hh));
        nodes.push(node(
            "MatMul",
            &p("proj"),
            &[&x, &p("wih")],
            &[&p("proj")],
            vec![],
        ));
        nodes.push(node(
            "Add",
            &p("lin"),
            &[&p("proj"), &p("bih")],
            &[&p("lin")],
            vec![],
        ));
        let (li, lj) = (format!("i{l}"), format!("i{}", l + 1));
        nodes.push(node(
            "Slice",
            &p("h0s"),
            &["zeros", &li, &lj, "ax0"],
            &[&p("h0s")],
            vec![],
        ));
        nodes.push(node(
            "Squeeze",
            &p("h0q"),
            &[&p("h0s"), "ax0"],
            &[&p("h0q")],
            vec![],
        ));
        nodes.push(node(
            "Unsqueeze",
            &p("h0"),
            &[&p("h0q"), "ax0"],
            &[&p("s0")],
            vec![],
        ));
        let mut states = Vec::new();
        for k in 0..steps {
            let q = |s: &str| format!("l{l}_{s}{k}");
            let (ik, ik1) = (format!("i{k}"), format!("i{}", k + 1));
            nodes.push(node(
                "Slice",
                &q("xs"),
                &[&p("lin"), &ik, &ik1, "ax0"],
                &[&q("xs")],
                vec![],
            ));
            nodes.push(node(
                "Squeeze",
                &q("xq"),
                &[&q("xs"), "ax0"],
                &[&q("xq")],
                vec![],
            ));
            nodes.push(node(
                "MatMul",
                &q("rec"),
                &[&format!("l{l}_s{k}"), &p("whh")],
                &[&q("rec")],
                vec![],
            ));
            nodes.push(node(
                "Add",
                &q("rb"),
                &[&q("rec"), &p("bhh")],
                &[&q("rb")],
                vec![],
            ));
            nodes.push(node(
                "Add",
                &q("pre"),
                &[&q("rb"), &q("xq")],
                &[&q("pre")],
                vec![],
            ));
            let next = format!("l{l}_s{}", k + 1);
            nodes.push(node("Relu", &q("relu"), &[&q("pre")], &[&next], vec![]));
            states.push(next);
        }
        let last_layer = l + 1 == layers;
        let refs: Vec<&str> = states.iter().map(String::as_str).collect();
        if last_layer && last_only {
            nodes.push(node(
                "Squeeze",
                "final",
                &[refs[refs.len() - 1], "ax0"],
                &["output"],
                vec![],
            ));
        } else {
            nodes.push(node(
                "Concat",
                &p("seq"),
                &refs,
                &[&p("seq")],
                vec![attr_int("axis", 0)],
            ));
        }
        x = p("seq");
        let spec = RecurrentSpec {
            cell: Cell::SimpleRnn,
            units: h,
            activation: Activation::Relu,
            recurrent_activation: Activation::Sigmoid,
            return_sequences: !(last_layer && last_only),
            go_backwards: false,
            bidirectional: None,
        };
        let bias = b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect();
        builder
            .recurrent(
                spec,
                &KerasWeights {
                    kernel: w_ih_t,
                    recurrent_kernel: w_hh_t,
                    bias: Some(bias),
                },
                None,
            )
            .expect("reference layer");
        width = h;
    }
    if !last_only {
        nodes.push(node(
            "Transpose",
            "bf",
            &[&x],
            &["output"],
            vec![attr_ints("perm", &[1, 0, 2])],
        ));
    }
    let graph = GraphProto {
        name: Some("unrolled".into()),
        node: nodes,
        initializer: inits,
        input: vec![value_info(
            "input",
            &[D::Named("batch"), D::Fixed(steps), D::Fixed(f as i64)],
        )],
        output: vec![value_info("output", &[])],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: Some(10),
        producer_name: Some("pytorch".into()),
        producer_version: Some("2.15.0".into()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(20),
        }],
        graph: Some(graph),
        ..Default::default()
    };
    (
        model.encode_to_vec(),
        builder.build().expect("reference blob"),
    )
}

#[test]
fn unrolled_rnn_stacks_import_as_simple_rnn_layers() {
    for (layers, steps, last_only) in [(1, 1, false), (3, 12, false), (2, 5, true)] {
        let (bytes, reference) = unrolled_rnn(layers, steps, last_only);
        let imported = import_onnx(Path::new("unrolled.onnx"), &bytes)
            .unwrap_or_else(|e| panic!("{layers} layers, {steps} steps: {e}"));
        assert!(
            imported.blob == reference,
            "{layers} layers x {steps} steps (last only: {last_only}): blob differs from the builder's"
        );
        assert!(
            imported
                .notes
                .iter()
                .any(|n| n.contains(&format!("unrolled over {steps} time steps"))),
            "{:?}",
            imported.notes
        );
    }

    // A step that uses another recurrent matrix is not an RNN.
    let (bytes, _) = unrolled_rnn(1, 4, false);
    let mut m = ModelProto::decode(bytes.as_slice()).expect("decode");
    let g = graph_mut(&mut m);
    g.initializer
        .push(tensor_f32("other", &[4, 4], &weights(16, 99)));
    let rec = g
        .node
        .iter_mut()
        .find(|n| n.name() == "l0_rec2")
        .expect("step 2");
    rec.input[1] = "other".into();
    let err = import_model(&m).expect_err("different weights");
    let text = shown("unrolled mismatch", &err);
    assert!(text.contains("uses a different recurrent matrix"), "{text}");
    assert_eq!(err.location.as_deref(), Some("node 26 'l0_relu2' (Relu)"));

    // Steps missing from the stacked sequence.
    let (bytes, _) = unrolled_rnn(1, 4, false);
    let mut m = ModelProto::decode(bytes.as_slice()).expect("decode");
    let g = graph_mut(&mut m);
    let cat = g
        .node
        .iter_mut()
        .find(|n| n.op_type() == "Concat" && n.name() == "l0_seq")
        .expect("Concat");
    cat.input.truncate(3);
    let err = import_model(&m).expect_err("missing step");
    let text = shown("unrolled missing step", &err);
    assert!(
        text.contains("uses 3 unrolled steps, but the graph's time axis is 4 long"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// Damaged files never panic

/// xorshift64*: a fixed-seed generator for reproducible damage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Damage rounds per golden file; `EDGERNN_FUZZ_ROUNDS` raises it for a longer local run.
fn rounds(default: usize) -> usize {
    std::env::var("EDGERNN_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn damaged_golden_files_give_errors_not_panics() {
    let mut rng = Rng(0x5EED_0000_0000_0001);
    let mut outcomes = [0usize; 2];
    for (path, _, _) in golden_onnx_files() {
        let bytes = std::fs::read(&path).expect("read");
        for round in 0..rounds(150) {
            let mut b = bytes.clone();
            match round % 3 {
                0 => b.truncate(rng.below(b.len())),
                1 => {
                    for _ in 0..1 + rng.below(4) {
                        let i = rng.below(b.len());
                        b[i] ^= 1 << rng.below(8);
                    }
                }
                _ => {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
            }
            let result = std::panic::catch_unwind(|| import_onnx(Path::new("damaged.onnx"), &b));
            match result {
                Ok(Ok(_)) => outcomes[0] += 1,
                Ok(Err(e)) => {
                    assert!(!e.message.is_empty());
                    outcomes[1] += 1;
                }
                Err(_) => panic!(
                    "{}: import panicked on damage round {round}",
                    path.display()
                ),
            }
        }
    }
    println!(
        "damaged files: {} imported, {} refused",
        outcomes[0], outcomes[1]
    );
}

/// Ops the interpreter handles, to swap in for each other.
const OPS: [&str; 24] = [
    "Identity",
    "Transpose",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Slice",
    "Gather",
    "Concat",
    "Shape",
    "Expand",
    "ConstantOfShape",
    "Cast",
    "Add",
    "Mul",
    "Sub",
    "Div",
    "MatMul",
    "Gemm",
    "Softmax",
    "ReduceSum",
    "LSTM",
    "GRU",
    "RNN",
    "Dropout",
];

/// One random change to the structure of a model: names, attributes, shapes, op types.
fn mutate(model: &mut ModelProto, rng: &mut Rng) {
    let g = graph_mut(model);
    let names: Vec<String> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().cloned())
        .chain(g.initializer.iter().map(|t| t.name().to_string()))
        .chain(["input".to_string(), String::new()])
        .collect();
    let pick = |rng: &mut Rng, len: usize| rng.below(len);
    match rng.below(8) {
        0 if !g.node.is_empty() => {
            let n = pick(rng, g.node.len());
            let node = &mut g.node[n];
            if !node.input.is_empty() {
                let i = pick(rng, node.input.len());
                node.input[i] = names[pick(rng, names.len())].clone();
            }
        }
        1 if !g.node.is_empty() => {
            let n = pick(rng, g.node.len());
            g.node[n].op_type = Some(OPS[pick(rng, OPS.len())].into());
        }
        2 if !g.node.is_empty() => {
            let n = pick(rng, g.node.len());
            let node = &mut g.node[n];
            if !node.attribute.is_empty() {
                let a = pick(rng, node.attribute.len());
                let v = [-3, -1, 0, 1, 2, 3, 7, i64::MAX, i64::MIN][pick(rng, 9)];
                let attr = &mut node.attribute[a];
                attr.i = Some(v);
                if let Some(x) = attr.ints.first_mut() {
                    *x = v;
                }
                attr.f = Some(v as f32);
            }
        }
        3 if !g.initializer.is_empty() => {
            let t = pick(rng, g.initializer.len());
            let tensor = &mut g.initializer[t];
            if !tensor.dims.is_empty() {
                let d = pick(rng, tensor.dims.len());
                tensor.dims[d] = [-1, 0, 1, 2, 3, 1 << 40][pick(rng, 6)];
            }
            if let Some(x) = tensor.int64_data.first_mut() {
                *x = [-2, -1, 0, 1, 2, 9, i64::MIN, i64::MAX][pick(rng, 8)];
            }
        }
        4 if !g.node.is_empty() => {
            g.node.remove(pick(rng, g.node.len()));
        }
        5 if !g.node.is_empty() => {
            let n = pick(rng, g.node.len());
            let copy = g.node[n].clone();
            g.node.insert(pick(rng, g.node.len()), copy);
        }
        6 if !g.node.is_empty() => {
            let n = pick(rng, g.node.len());
            let node = &mut g.node[n];
            if !node.output.is_empty() {
                let o = pick(rng, node.output.len());
                node.output[o] = names[pick(rng, names.len())].clone();
            }
        }
        _ => {
            if let Some(dim) = g
                .input
                .first_mut()
                .and_then(|i| i.r#type.as_mut())
                .and_then(|t| match t.value.as_mut() {
                    Some(type_proto::Value::TensorType(tt)) => tt.shape.as_mut(),
                    _ => None,
                })
                .and_then(|s| s.dim.last_mut())
            {
                dim.value = Some(tensor_shape_proto::dimension::Value::DimValue(
                    [0, 1, 2, 3, 4, -1, 1 << 40][pick(rng, 7)],
                ));
            }
        }
    }
}

#[test]
fn structurally_damaged_models_give_errors_not_panics() {
    let mut rng = Rng(0x00DD_BA11_5EED);
    let mut outcomes = [0usize; 2];
    for (path, _, _) in golden_onnx_files() {
        let original = load_model(&path);
        for round in 0..rounds(120) {
            let mut m = original.clone();
            for _ in 0..1 + round % 3 {
                mutate(&mut m, &mut rng);
            }
            let bytes = m.encode_to_vec();
            let result =
                std::panic::catch_unwind(|| import_onnx(Path::new("mutated.onnx"), &bytes));
            match result {
                Ok(Ok(imported)) => {
                    // Whatever was accepted must load.
                    Model::from_bytes(aligned(&imported.blob).bytes())
                        .expect("accepted blob loads");
                    outcomes[0] += 1;
                }
                Ok(Err(_)) => outcomes[1] += 1,
                Err(_) => panic!(
                    "{}: import panicked on mutation round {round}",
                    path.display()
                ),
            }
        }
    }
    println!(
        "mutated models: {} imported, {} refused",
        outcomes[0], outcomes[1]
    );
}
