//! The Keras importers (`.keras`, legacy `.h5`): every golden case in both forms, end to end
//! and weight for weight; models built differently (Functional, nested, Keras 2 style); and
//! damaged, foreign or unsupported files, which must give a clear error and never a panic.
//!
//! Crafted files are golden files with their config rewritten (and, where the layout must
//! change, their weights rewritten with the HDF5 writer), so no Keras is needed here.

mod common;

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use common::{aligned, golden_dir, keras_case, scaled_error, TOLERANCE};
use edgernn::Model;
use edgernn_tools::import::keras::{import_h5, import_keras_zip};
use edgernn_tools::import::{import_file, ImportError, Imported};
use edgernn_tools::io::npy::read_npy;
use edgernn_tools::io::Array;
use hdf5_pure::{AttrValue, FileBuilder, GroupBuilder};
use serde_json::{json, Value};

/// The file forms of a Keras case.
const FORMS: [&str; 2] = ["keras", "h5"];

/// The message `guarded` gives when a reader library panicked.
const PANIC_MESSAGE: &str = "caught internal panic";

/// Stems of the Keras golden cases (`tests/golden/<case>.json`).
fn keras_cases() -> Vec<String> {
    let mut stems: Vec<String> = std::fs::read_dir(golden_dir())
        .expect("tests/golden")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    stems.sort();
    stems
}

fn golden(case: &str, ext: &str) -> PathBuf {
    golden_dir().join(format!("{case}.{ext}"))
}

/// Token-id inputs `[batch, time]` (Embedding cases) as the blob reads them: `[batch, time, 1]`.
fn model_input(mut input: Array) -> Array {
    if input.shape.len() == 2 {
        input.shape.push(1);
    }
    input
}

fn expect_err(result: Result<Imported, ImportError>) -> String {
    match result {
        Ok(_) => panic!("the import succeeded, but it must fail"),
        Err(e) => e.to_string(),
    }
}

/// Runs a model on `[batch, time, features]` with `run_sequence` and, when it streams, with
/// `step`, checking both against Keras' output. Returns the largest errors (sequence, stream).
fn run_and_compare(
    name: &str,
    model: &Model,
    input: &Array,
    expected: &Array,
) -> (f32, Option<f32>) {
    let (batch, steps, features) = (input.shape[0], input.shape[1], input.shape[2]);
    assert_eq!(features, model.input_features(), "{name}: input features");
    let out_len = model.output_len(steps).unwrap();
    assert_eq!(expected.data.len(), batch * out_len, "{name}: output size");
    let width = model.output_width();
    let mut seq_err = 0.0f32;
    let mut stream_err = model.is_streamable().then_some(0.0f32);
    for b in 0..batch {
        let x = &input.data[b * steps * features..(b + 1) * steps * features];
        let want = &expected.data[b * out_len..(b + 1) * out_len];
        let mut state = vec![0.0; model.state_len()];
        let mut scratch = vec![0.0; model.sequence_scratch_len(steps).unwrap()];
        let mut out = vec![0.0; out_len];
        model
            .run_sequence(x, &mut state, &mut scratch, &mut out)
            .unwrap();
        let err = scaled_error(&out, want);
        assert!(err < TOLERANCE, "{name} batch {b}: sequence error {err}");
        seq_err = seq_err.max(err);
        let Some(stream_err) = stream_err.as_mut() else {
            continue;
        };
        let mut state = vec![0.0; model.state_len()];
        let mut scratch = vec![0.0; model.step_scratch_len()];
        let mut y = vec![0.0; width];
        for (t, xt) in x.chunks(features).enumerate() {
            model.step(xt, &mut state, &mut scratch, &mut y).unwrap();
            let row = if model.output_is_sequence() {
                Some(&want[t * width..(t + 1) * width])
            } else if t + 1 == steps {
                Some(want)
            } else {
                None
            };
            if let Some(row) = row {
                let err = scaled_error(&y, row);
                assert!(err < TOLERANCE, "{name} batch {b} step {t}: error {err}");
                *stream_err = stream_err.max(err);
            }
        }
    }
    (seq_err, stream_err)
}

#[test]
fn every_golden_case_imports_exactly_in_both_forms() {
    println!("| case | form | source | seq max err | stream max err | notes |");
    println!("|---|---|---|---:|---:|---|");
    let mut imported_count = 0;
    for case in keras_cases() {
        let reference = keras_case(&golden(&case, "json"));
        let input = model_input(read_npy(&golden(&case, "input.npy")).unwrap());
        let expected = read_npy(&golden(&case, "expected.npy")).unwrap();
        for form in FORMS {
            let path = golden(&case, form);
            let imported = import_file(&path).unwrap_or_else(|e| panic!("{e}"));
            // Byte equality with the blob built from the JSON's weights proves that every
            // weight landed where the JSON (Keras' own get_weights) puts it.
            assert!(
                imported.blob == reference.blob,
                "{case}.{form}: the imported blob differs from the one built from {case}.json"
            );
            assert!(!imported.time_major_input);
            let blob = aligned(&imported.blob);
            let model = Model::from_bytes(blob.bytes()).unwrap();
            let (seq, stream) =
                run_and_compare(&format!("{case}.{form}"), &model, &input, &expected);
            let stream = stream.map_or_else(
                || "n/a (not streamable)".to_string(),
                |e| format!("{e:.2e}"),
            );
            println!(
                "| {case} | .{form} | {} | {seq:.2e} | {stream} | {} |",
                imported.source,
                imported.notes.join("; ")
            );
            imported_count += 1;
        }
    }
    assert_eq!(imported_count, 28, "14 Keras cases x 2 forms");
}

#[test]
fn sources_name_the_format_and_version() {
    let keras = import_file(&golden("lstm_u8_f3_last", "keras")).unwrap();
    assert_eq!(keras.source, "Keras 3 .keras (keras 3.15.1)");
    let h5 = import_file(&golden("lstm_u8_f3_last", "h5")).unwrap();
    assert_eq!(h5.source, "legacy Keras .h5 (keras 3.15.1, backend jax)");
    let dropout = import_file(&golden("simplernn_dropout_simplernn_sigmoid", "keras")).unwrap();
    assert_eq!(
        dropout.notes,
        ["layer 1 'dropout_0' (Dropout): skipped (the identity at inference)"]
    );
}

#[test]
fn sequence_layers_import_with_notes() {
    let embedding = import_file(&golden("embedding_lstm_softmax4_v20", "keras")).unwrap();
    assert_eq!(
        embedding.notes,
        [
            "layer 0 'embedding_0' (Embedding): the model reads token ids [batch, time]; the blob \
          reads them as float32 values [batch, time, 1], each an integer id from 0 to 19"
        ]
    );
    let blob = aligned(&embedding.blob);
    let model = Model::from_bytes(blob.bytes()).unwrap();
    assert!(model.reads_tokens());
    assert_eq!(model.input_features(), 1);
    let seq2seq = import_file(&golden("seq2vec2seq_lstm_u16_rep5", "h5")).unwrap();
    let blob = aligned(&seq2seq.blob);
    let model = Model::from_bytes(blob.bytes()).unwrap();
    // RepeatVector(5): five output steps whatever the input length.
    assert_eq!(model.output_len(10).unwrap(), 5 * 2);
    assert_eq!(model.output_len(3).unwrap(), 5 * 2);
}

#[test]
fn unsupported_forms_of_the_sequence_layers_are_refused() {
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: [(&str, &str, Edit, &str); 8] = [
        (
            "embedding_lstm_softmax4_v20",
            "mask_zero.keras",
            Box::new(|c| layers_of(c)[1]["config"]["mask_zero"] = json!(true)),
            "mask_zero.keras: layer 0 'embedding_0' (Embedding): mask_zero=True makes the layers \
             after it skip the time steps of token 0 (padding); the runtime processes every time \
             step: use mask_zero=False",
        ),
        (
            "normalization_gru_dense1_f3",
            "invert.keras",
            Box::new(|c| layers_of(c)[1]["config"]["invert"] = json!(true)),
            "invert.keras: layer 0 'normalization_0' (Normalization): invert=True (the inverse, \
             x * sqrt(variance) + mean) is not supported; the runtime standardises \
             (x - mean) / sqrt(variance)",
        ),
        (
            "normalization_gru_dense1_f3",
            "norm_axis.keras",
            Box::new(|c| layers_of(c)[1]["config"]["axis"] = json!([1])),
            "norm_axis.keras: layer 0 'normalization_0' (Normalization): axis=[1]: only the last \
             axis (axis=-1, a mean and variance per feature) or axis=None (one mean and variance) \
             is supported",
        ),
        (
            "normalization_gru_dense1_f3",
            "norm_mean_only.keras",
            Box::new(|c| layers_of(c)[1]["config"]["variance"] = Value::Null),
            "layer 0 'normalization_0' (Normalization): the config gives only one of mean and \
             variance; Keras needs both or neither",
        ),
        (
            "normalization_gru_dense1_f3",
            "norm_width.keras",
            Box::new(|c| layers_of(c)[1]["config"]["mean"] = json!([1.0, 2.0])),
            "layer 0 'normalization_0' (Normalization): the mean has 2 values; expected 3 (one \
             per feature of the 3 features, or one)",
        ),
        (
            "seq2vec2seq_lstm_u16_rep5",
            "td_lstm.keras",
            Box::new(|c| {
                let inner = &mut layers_of(c)[4]["config"]["layer"];
                inner["class_name"] = json!("LSTM");
            }),
            "td_lstm.keras: layer 3 'timedistributed_0' (TimeDistributed): TimeDistributed around \
             a LSTM layer is not supported; supported: TimeDistributed(Dense)",
        ),
        (
            "seq2vec2seq_lstm_u16_rep5",
            "repeat_after_sequence.keras",
            Box::new(|c| layers_of(c)[1]["config"]["return_sequences"] = json!(true)),
            "layer 1 'repeatvector_0' (RepeatVector): layer 1: RepeatVector needs a single \
             vector, but the previous layer returns a sequence",
        ),
        (
            "embedding_lstm_softmax4_v20",
            "embedding_second.keras",
            Box::new(|c| {
                let layers = layers_of(c);
                layers.swap(1, 2);
            }),
            "layer 1 'embedding_0' (Embedding): an Embedding is supported only as the first \
             layer (it reads the model's token ids), but it follows layer 0 'lstm_0' (LSTM)",
        ),
    ];
    for (case, name, edit, want) in cases {
        let message = crafted_error(case, name, edit);
        assert!(message.contains(want), "{message}");
    }
}

/// `normalization_gru_dense1_f3` as after `adapt()`: no statistics in the config, the layer's
/// weights `mean`, `variance` and `count` in `model.weights.h5`.
#[test]
fn adapted_normalization_reads_its_weights() {
    let case = "normalization_gru_dense1_f3";
    let mut zip = read_keras(case);
    let layer = &mut layers_of(&mut zip.config)[1]["config"];
    let mean = layer["mean"].take();
    let variance = layer["variance"].take();
    let floats = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let mut tree = Tree::default();
    for (path, shape, values) in all_datasets(&zip.weights) {
        tree.dataset(&path, shape, Data::F32(values));
    }
    let vars = "layers/normalization/vars";
    tree.dataset(&format!("{vars}/0"), vec![3], Data::F32(floats(&mean)));
    tree.dataset(&format!("{vars}/1"), vec![3], Data::F32(floats(&variance)));
    tree.dataset(&format!("{vars}/2"), vec![], Data::F32(vec![100.0]));
    let adapted = tree.bytes();
    zip.weights = adapted.clone();
    let imported = import_crafted("adapted.keras", &zip.bytes()).unwrap();
    assert!(imported.blob == golden_blob(case));
    // Without the count (or with other variables) the weights do not match the layer.
    let mut tree = Tree::default();
    for (path, shape, values) in all_datasets(&adapted) {
        if path != format!("{vars}/2") {
            tree.dataset(&path, shape, Data::F32(values));
        }
    }
    zip.weights = tree.bytes();
    let message = expect_err(import_crafted("adapted_no_count.keras", &zip.bytes()));
    assert!(
        message.contains(
            "layer 0 'normalization_0' (Normalization): 'layers/normalization/vars' holds \
             variables [0, 1], expected 3 (mean, variance, count) from the layer config"
        ),
        "{message}"
    );
    // Statistics in the config and weights in the file disagree.
    let mut zip = read_keras(case);
    zip.weights = adapted;
    let message = expect_err(import_crafted("stats_twice.keras", &zip.bytes()));
    assert!(
        message.contains(
            "'layers/normalization/vars' holds variables [0, 1, 2], expected none (the layer \
             config gives the layer no weights)"
        ),
        "{message}"
    );
}

/// The same as a legacy `.h5` file: weights `mean`, `variance`, `count` listed in the layer's
/// `weight_names`.
#[test]
fn adapted_normalization_reads_its_weights_from_legacy_h5() {
    let case = "normalization_gru_dense1_f3";
    let zip = read_keras(case);
    let mut config = zip.config.clone();
    let layer = &mut layers_of(&mut config)[1]["config"];
    let stats: Vec<Vec<f32>> = ["mean", "variance"]
        .iter()
        .map(|k| {
            layer[*k]
                .take()
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    let original = std::fs::read(golden(case, "h5")).unwrap();
    let ascii = |s: &str| AttrValue::AsciiString(s.into());
    let names = |v: &[&str]| AttrValue::AsciiStringArray(v.iter().map(|s| (*s).into()).collect());
    let mut tree = Tree {
        attrs: vec![
            ("model_config".into(), ascii(&config.to_string())),
            ("keras_version".into(), ascii("3.15.1")),
            ("backend".into(), ascii("jax")),
        ],
        ..Tree::default()
    };
    tree.group("model_weights").attrs = vec![(
        "layer_names".into(),
        names(&["normalization_0", "gru_0", "dense_0"]),
    )];
    for (path, shape, values) in all_datasets(&original) {
        tree.dataset(&path, shape, Data::F32(values));
    }
    let prefix = format!("{case}/normalization_0");
    for (role, shape, values) in [
        ("mean", vec![3], stats[0].clone()),
        ("variance", vec![3], stats[1].clone()),
        ("count", vec![], vec![64.0]),
    ] {
        let path = format!("model_weights/normalization_0/{prefix}/{role}");
        tree.dataset(&path, shape, Data::F32(values));
    }
    tree.group("model_weights/normalization_0").attrs = vec![(
        "weight_names".into(),
        names(&[
            &format!("{prefix}/mean"),
            &format!("{prefix}/variance"),
            &format!("{prefix}/count"),
        ]),
    )];
    for layer in ["gru_0", "dense_0"] {
        let file = hdf5_pure::File::from_bytes(original.clone()).unwrap();
        let attrs = file
            .group(&format!("model_weights/{layer}"))
            .unwrap()
            .attrs()
            .unwrap();
        let listed: Vec<String> = attrs["weight_names"].as_strings().unwrap().to_vec();
        tree.group(&format!("model_weights/{layer}")).attrs =
            vec![("weight_names".into(), AttrValue::AsciiStringArray(listed))];
    }
    let imported = import_crafted("adapted.h5", &tree.bytes()).unwrap();
    assert!(imported.blob == golden_blob(case));
}

// ---------------------------------------------------------------------------------------------
// Crafting files.

/// The members of a `.keras` zip.
struct KerasZip {
    config: Value,
    metadata: Vec<u8>,
    weights: Vec<u8>,
}

fn read_keras(case: &str) -> KerasZip {
    let bytes = std::fs::read(golden(case, "keras")).unwrap();
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut member = |name: &str| {
        let mut data = Vec::new();
        archive
            .by_name(name)
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        data
    };
    KerasZip {
        config: serde_json::from_slice(&member("config.json")).unwrap(),
        metadata: member("metadata.json"),
        weights: member("model.weights.h5"),
    }
}

/// A zip of the given members, deflated (Keras stores them; both must read).
fn zip_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in members {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

impl KerasZip {
    fn bytes(&self) -> Vec<u8> {
        let config = serde_json::to_vec(&self.config).unwrap();
        zip_bytes(&[
            ("metadata.json", &self.metadata),
            ("config.json", &config),
            ("model.weights.h5", &self.weights),
        ])
    }
}

/// Writes `bytes` as `name` in a fresh temporary directory and imports it by content.
fn import_crafted(name: &str, bytes: &[u8]) -> Result<Imported, ImportError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    import_file(&path)
}

/// The layer list of a Sequential config.
fn layers_of(config: &mut Value) -> &mut Vec<Value> {
    config["config"]["layers"].as_array_mut().unwrap()
}

/// An HDF5 tree to write: datasets (f32 or f64) and attributes per group.
#[derive(Default)]
struct Tree {
    attrs: Vec<(String, AttrValue)>,
    datasets: Vec<(String, Vec<u64>, Data)>,
    groups: BTreeMap<String, Tree>,
}

#[derive(Clone)]
enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Tree {
    fn group(&mut self, path: &str) -> &mut Tree {
        path.split('/')
            .filter(|p| !p.is_empty())
            .fold(self, |t, part| {
                t.groups.entry(part.to_string()).or_default()
            })
    }

    fn dataset(&mut self, path: &str, shape: Vec<u64>, data: Data) {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        self.group(dir)
            .datasets
            .push((name.to_string(), shape, data));
    }

    fn fill(&self, group: &mut GroupBuilder) {
        for (name, value) in &self.attrs {
            group.set_attr(name, value.clone());
        }
        for (name, shape, data) in &self.datasets {
            let ds = group.create_dataset(name);
            match data {
                Data::F32(v) => ds.with_f32_data(v),
                Data::F64(v) => ds.with_f64_data(v),
            }
            .with_shape(shape);
        }
        for (name, sub) in &self.groups {
            let mut g = group.create_group(name);
            sub.fill(&mut g);
            group.add_group(g.finish());
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut builder = FileBuilder::new();
        for (name, value) in &self.attrs {
            builder.set_attr(name, value.clone());
        }
        assert!(self.datasets.is_empty(), "no root datasets in these files");
        for (name, sub) in &self.groups {
            let mut g = builder.create_group(name);
            sub.fill(&mut g);
            builder.add_group(g.finish());
        }
        builder.finish().unwrap()
    }
}

/// Every dataset of an HDF5 file as `(path, shape, values)`.
fn all_datasets(bytes: &[u8]) -> Vec<(String, Vec<u64>, Vec<f32>)> {
    fn walk(g: &hdf5_pure::Group, prefix: &str, out: &mut Vec<(String, Vec<u64>, Vec<f32>)>) {
        for name in g.datasets().unwrap() {
            let ds = g.dataset(&name).unwrap();
            out.push((
                format!("{prefix}{name}"),
                ds.shape().unwrap(),
                ds.read_f32().unwrap(),
            ));
        }
        for name in g.groups().unwrap() {
            walk(&g.group(&name).unwrap(), &format!("{prefix}{name}/"), out);
        }
    }
    let file = hdf5_pure::File::from_bytes(bytes.to_vec()).unwrap();
    let mut out = Vec::new();
    walk(&file.root(), "", &mut out);
    out
}

fn golden_blob(case: &str) -> Vec<u8> {
    keras_case(&golden(case, "json")).blob
}

// ---------------------------------------------------------------------------------------------
// Models built differently from the golden ones.

/// A Keras 3 tensor reference in a Functional config.
fn keras_tensor(layer: &str) -> Value {
    json!({"class_name": "__keras_tensor__", "config": {"shape": [null, null, 3], "dtype": "float32", "keras_history": [layer, 0, 0]}})
}

/// `lstm_dense_softmax3_u16_f3` as a Functional model (`keras.Input` -> LSTM -> Dense), with
/// the layers listed in an order other than execution order.
fn functional_config(zip: &KerasZip) -> Value {
    let mut layers = zip.config["config"]["layers"].as_array().unwrap().clone();
    let name = |l: &Value| l["config"]["name"].as_str().unwrap().to_string();
    for i in 0..layers.len() {
        let inbound = if i == 0 {
            json!([])
        } else {
            json!([{"args": [keras_tensor(&name(&layers[i - 1]))], "kwargs": {"training": false, "mask": null}}])
        };
        let n = name(&layers[i]);
        layers[i]["name"] = json!(n);
        layers[i]["inbound_nodes"] = inbound;
    }
    json!({
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": "functional_lstm",
            "trainable": true,
            "layers": layers,
            "input_layers": [[name(&layers[0]), 0, 0]],
            "output_layers": [[name(&layers[2]), 0, 0]],
        },
        "registered_name": "Functional",
    })
}

#[test]
fn functional_models_import_like_sequential_ones() {
    let case = "lstm_dense_softmax3_u16_f3";
    let mut zip = read_keras(case);
    // Keras 3 names a Functional model's weight groups the same way (`lstm`, `dense`).
    zip.config = functional_config(&zip);
    let imported = import_crafted("functional.keras", &zip.bytes()).unwrap();
    assert!(imported.blob == golden_blob(case));
    // The graph decides the order, not the list.
    let layers = layers_of(&mut zip.config);
    layers.swap(1, 2);
    let imported = import_crafted("functional_shuffled.keras", &zip.bytes()).unwrap();
    assert!(imported.blob == golden_blob(case));
}

#[test]
fn nested_models_are_flattened() {
    let case = "lstm_dense_softmax3_u16_f3";
    let mut zip = read_keras(case);
    // Sequential[Input, Sequential[Input, LSTM], Dense]: Keras 3 puts the inner LSTM at
    // layers/sequential/layers/lstm.
    let outer = layers_of(&mut zip.config).clone();
    let inner = json!({
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "encoder", "layers": [outer[0].clone(), outer[1].clone()]},
        "registered_name": null,
    });
    *layers_of(&mut zip.config) = vec![outer[0].clone(), inner, outer[2].clone()];
    let mut tree = Tree::default();
    for (path, shape, values) in all_datasets(&zip.weights) {
        let path = path.replace("layers/lstm/", "layers/sequential/layers/lstm/");
        tree.dataset(&path, shape, Data::F32(values));
    }
    tree.group("layers/sequential/vars")
        .attrs
        .push(("name".into(), AttrValue::VarLenString("encoder".into())));
    tree.group("layers/sequential/layers/lstm/vars")
        .attrs
        .push(("name".into(), AttrValue::VarLenString("lstm_0".into())));
    zip.weights = tree.bytes();
    let imported = import_crafted("nested.keras", &zip.bytes()).unwrap();
    assert!(imported.blob == golden_blob(case));

    // The stored layer name must match: the same file with the inner layer renamed is refused.
    zip.config["config"]["layers"][1]["config"]["layers"][1]["config"]["name"] = json!("lstm_9");
    let message = expect_err(import_crafted("renamed.keras", &zip.bytes()));
    assert!(
        message.contains(
            "layer 0 'encoder' (Sequential) > layer 0 'lstm_9' (LSTM): model.weights.h5 keeps \
             the weights of layer 'lstm_0' at 'layers/sequential/layers/lstm'"
        ),
        "{message}"
    );
}

#[test]
fn an_activation_layer_after_a_linear_dense_is_folded() {
    let case = "lstm_dense_softmax3_u16_f3";
    let mut zip = read_keras(case);
    let activation = json!({"module": "keras.layers", "class_name": "Activation",
        "config": {"name": "softmax_out", "activation": "softmax"}, "registered_name": null});
    let noise = json!({"module": "keras.layers", "class_name": "GaussianNoise",
        "config": {"name": "noise", "stddev": 0.1}, "registered_name": null});
    let layers = layers_of(&mut zip.config);
    layers[2]["config"]["activation"] = json!("linear");
    layers.insert(3, noise);
    layers.insert(4, activation.clone());
    let imported = import_crafted("folded.keras", &zip.bytes()).unwrap();
    assert!(imported.blob == golden_blob(case));
    assert_eq!(
        imported.notes,
        [
            "layer 2 'noise' (GaussianNoise): skipped (the identity at inference)",
            "layer 3 'softmax_out' (Activation): folded into layer 1 'dense_0' (Dense) as its \
             activation"
        ]
    );
    // Right after a recurrent layer there is nothing to fold into.
    let message = crafted_error("lstm_u8_f3_seq", "activation.keras", |c| {
        layers_of(c).push(activation);
    });
    assert!(
        message.contains(
            "layer 1 'softmax_out' (Activation): an Activation layer is supported only right \
             after a Dense with a linear activation"
        ),
        "{message}"
    );
}

/// A legacy `.h5` in the Keras 2 style: `batch_input_shape` on the first layer (no
/// InputLayer), plain `"dtype": "float32"`, weight names with `:0`, `layer_names` split into
/// chunks, and an inner Sequential whose weights share one group.
#[test]
fn keras2_style_legacy_h5_with_a_nested_model() {
    let case = "lstm_dense_softmax3_u16_f3";
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(golden(case, "json")).unwrap()).unwrap();
    let weights = |layer: usize, name: &str| -> (Vec<u64>, Vec<f32>) {
        let w = json["layers"][layer]["weights"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .unwrap();
        let shape = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        (shape, common::floats(&w["values"]))
    };
    let lstm = json!({"class_name": "LSTM", "config": {
        "name": "lstm", "trainable": true, "batch_input_shape": [null, null, 3], "dtype": "float32",
        "return_sequences": false, "return_state": false, "go_backwards": false, "stateful": false,
        "unroll": false, "time_major": false, "units": 16, "activation": "tanh",
        "recurrent_activation": "sigmoid", "use_bias": true, "dropout": 0.0,
        "recurrent_dropout": 0.0, "implementation": 2}});
    let dense = json!({"class_name": "Dense", "config": {
        "name": "dense", "trainable": true, "dtype": "float32", "units": 3,
        "activation": "softmax", "use_bias": true}});
    let config = json!({"class_name": "Sequential", "config": {"name": "outer", "layers": [
        {"class_name": "Sequential", "config": {"name": "encoder", "layers": [lstm]}},
        dense]}});
    let mut tree = Tree {
        attrs: vec![
            (
                "model_config".into(),
                AttrValue::AsciiString(config.to_string()),
            ),
            (
                "keras_version".into(),
                AttrValue::AsciiString("2.13.1".into()),
            ),
            (
                "backend".into(),
                AttrValue::AsciiString("tensorflow".into()),
            ),
        ],
        ..Tree::default()
    };
    let mw = tree.group("model_weights");
    mw.attrs = vec![
        (
            "layer_names0".into(),
            AttrValue::AsciiStringArray(vec!["encoder".into()]),
        ),
        (
            "layer_names1".into(),
            AttrValue::AsciiStringArray(vec!["dense".into()]),
        ),
    ];
    let encoder_names =
        ["kernel", "recurrent_kernel", "bias"].map(|w| format!("lstm/lstm_cell/{w}:0"));
    let encoder = mw.group("encoder");
    encoder.attrs = vec![(
        "weight_names".into(),
        AttrValue::AsciiStringArray(encoder_names.to_vec()),
    )];
    for (w, name) in ["kernel", "recurrent_kernel", "bias"]
        .iter()
        .zip(&encoder_names)
    {
        let (shape, values) = weights(0, w);
        encoder.dataset(name, shape, Data::F32(values));
    }
    // Listed bias first: legacy weights are matched by name, not position.
    let dense_names = vec!["dense/bias:0".to_string(), "dense/kernel:0".to_string()];
    let dense_group = mw.group("dense");
    dense_group.attrs = vec![(
        "weight_names".into(),
        AttrValue::AsciiStringArray(dense_names.clone()),
    )];
    for (w, name) in ["bias", "kernel"].iter().zip(&dense_names) {
        let (shape, values) = weights(1, w);
        dense_group.dataset(name, shape, Data::F32(values));
    }
    let imported = import_crafted("keras2.h5", &tree.bytes()).unwrap();
    assert!(imported.blob == golden_blob(case));
    assert_eq!(
        imported.source,
        "legacy Keras .h5 (keras 2.13.1, backend tensorflow)"
    );

    // Keras 2's hard_sigmoid is another function: refused, not silently changed.
    let mut config2 = config.clone();
    config2["config"]["layers"][0]["config"]["layers"][0]["config"]["recurrent_activation"] =
        json!("hard_sigmoid");
    tree.attrs[0].1 = AttrValue::AsciiString(config2.to_string());
    let message = expect_err(import_crafted("keras2_hard_sigmoid.h5", &tree.bytes()));
    assert!(
        message.contains(
            "layer 0 'encoder' (Sequential) > layer 0 'lstm' (LSTM): recurrent_activation \
             'hard_sigmoid' from a Keras 2 file means clip(0.2 x + 0.5, 0, 1)"
        ),
        "{message}"
    );

    // A weight the config does not account for.
    tree.attrs[0].1 = AttrValue::AsciiString(config.to_string());
    let mut extra = encoder_names.to_vec();
    extra.push("lstm/lstm_cell/peephole:0".into());
    tree.group("model_weights/encoder").attrs[0].1 = AttrValue::AsciiStringArray(extra);
    let message = expect_err(import_crafted("extra_weight.h5", &tree.bytes()));
    assert!(
        message
            .contains("unexpected weight 'lstm/lstm_cell/peephole:0' in 'model_weights/encoder'"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Errors.

#[test]
fn truncated_keras_file_is_an_error() {
    let bytes = std::fs::read(golden("lstm_u8_f3_seq", "keras")).unwrap();
    let message = expect_err(import_crafted("truncated.keras", &bytes[..bytes.len() / 2]));
    println!("{message}");
    assert!(
        message.contains(
            "truncated.keras: not a readable .keras file: the zip archive is truncated or damaged"
        ),
        "{message}"
    );
}

#[test]
fn truncated_h5_file_is_an_error() {
    let bytes = std::fs::read(golden("lstm_u8_f3_seq", "h5")).unwrap();
    let message = expect_err(import_crafted("truncated.h5", &bytes[..bytes.len() / 2]));
    println!("{message}");
    assert!(
        message.contains(
            "truncated.h5: not a readable HDF5 file: truncated (it declares 14752 bytes and has \
             7376)"
        ),
        "{message}"
    );
}

#[test]
fn a_file_of_another_type_is_an_error() {
    let npy = std::fs::read(golden("lstm_u8_f3_seq", "input.npy")).unwrap();
    let message = expect_err(import_crafted("model.keras", &npy));
    println!("{message}");
    assert!(
        message.contains("model.keras: not a model file this tool reads"),
        "{message}"
    );
    // Called directly, each importer names what it expected.
    let message = expect_err(import_keras_zip(Path::new("x.keras"), &npy));
    assert!(message.contains("not a readable .keras file"), "{message}");
    let message = expect_err(import_h5(Path::new("x.h5"), &npy));
    assert!(message.contains("not a readable HDF5 file"), "{message}");
    // A Keras weights file is HDF5 but has no model.
    let weights = read_keras("lstm_u8_f3_seq").weights;
    let message = expect_err(import_crafted("model.weights.h5", &weights));
    assert!(
        message.contains("has no model_config attribute"),
        "{message}"
    );
}

#[test]
fn missing_or_broken_members_are_errors() {
    let zip = read_keras("lstm_u8_f3_seq");
    let config = serde_json::to_vec(&zip.config).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "no_config.keras",
            zip_bytes(&[("model.weights.h5", &zip.weights)]),
            "the zip archive has no config.json: not a Keras 3 .keras file",
        ),
        (
            "bad_json.keras",
            zip_bytes(&[
                ("config.json", b"{\"class_name\": "),
                ("model.weights.h5", &zip.weights),
            ]),
            "config.json is not valid JSON: EOF while parsing",
        ),
        (
            "no_weights.keras",
            zip_bytes(&[("config.json", &config)]),
            "the .keras archive has no model.weights.h5",
        ),
        (
            "bad_weights.keras",
            zip_bytes(&[
                ("config.json", &config),
                ("model.weights.h5", b"\x89HDF\r\n\x1a\n"),
            ]),
            "model.weights.h5 is not a readable HDF5 file",
        ),
    ];
    for (name, bytes, want) in cases {
        let message = expect_err(import_crafted(name, &bytes));
        println!("{message}");
        assert!(message.contains(want), "{name}: {message}");
    }
}

#[test]
fn a_member_above_its_size_limit_is_refused_before_reading() {
    let zip = read_keras("lstm_u8_f3_seq");
    let config = serde_json::to_vec(&zip.config).unwrap();
    let mut bytes = zip_bytes(&[("config.json", &config), ("model.weights.h5", &zip.weights)]);
    // Declare 4 GiB - 16 bytes uncompressed in config.json's central directory entry.
    let central = bytes
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("central directory");
    assert_eq!(&bytes[central + 46..central + 46 + 11], b"config.json");
    bytes[central + 24..central + 28].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let message = expect_err(import_crafted("bomb.keras", &bytes));
    println!("{message}");
    assert!(
        message.contains(
            "config.json in the .keras archive holds 4294967280 bytes; the limit is 67108864 bytes"
        ),
        "{message}"
    );
}

/// Rewrites the config of a golden `.keras` file and returns the import error.
fn crafted_error(case: &str, name: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut zip = read_keras(case);
    edit(&mut zip.config);
    let message = expect_err(import_crafted(name, &zip.bytes()));
    println!("{name}: {message}");
    message
}

#[test]
fn an_unsupported_layer_is_an_error() {
    let message = crafted_error("lstm_u8_f3_seq", "masking.keras", |c| {
        let masking = json!({"module": "keras.layers", "class_name": "Masking",
            "config": {"name": "masking", "mask_value": 0.0}, "registered_name": null});
        layers_of(c).insert(1, masking);
    });
    assert!(
        message.contains(
            "masking.keras: layer 0 'masking' (Masking): Masking layers are not supported (the \
             runtime always processes every time step); supported: InputLayer, SimpleRNN"
        ),
        "{message}"
    );
    let message = crafted_error("lstm_u8_f3_seq", "custom.keras", |c| {
        layers_of(c)[1]["registered_name"] = json!("my_package>LSTM");
    });
    assert!(
        message.contains(
            "layer 0 'lstm_0' (LSTM): custom layer class 'my_package>LSTM' is not supported"
        ),
        "{message}"
    );
}

#[test]
fn an_unsupported_activation_is_an_error() {
    let message = crafted_error("lstm_u8_f3_seq", "elu.keras", |c| {
        layers_of(c)[1]["config"]["activation"] = json!("elu");
    });
    assert!(
        message.contains(
            "elu.keras: layer 0 'lstm_0' (LSTM): activation 'elu' is not supported; supported: \
             tanh, sigmoid, hard_sigmoid, relu, linear"
        ),
        "{message}"
    );
    let message = crafted_error("lstm_dense_softmax3_u16_f3", "gelu.keras", |c| {
        layers_of(c)[2]["config"]["activation"] = json!("gelu");
    });
    assert!(
        message.contains(
            "layer 1 'dense_0' (Dense): activation 'gelu' is not supported; supported: linear, \
             relu, tanh, sigmoid, hard_sigmoid, softmax"
        ),
        "{message}"
    );
    // softmax is a Dense activation only.
    let message = crafted_error("gru_reset_after_u8_f3_seq", "softmax_gru.keras", |c| {
        layers_of(c)[1]["config"]["recurrent_activation"] = json!("softmax");
    });
    assert!(
        message.contains("recurrent_activation 'softmax' is not supported"),
        "{message}"
    );
}

#[test]
fn a_weight_shape_mismatch_is_an_error() {
    let message = crafted_error("lstm_dense_softmax3_u16_f3", "units.keras", |c| {
        layers_of(c)[1]["config"]["units"] = json!(12);
    });
    assert!(
        message.contains(
            "units.keras: layer 0 'lstm_0' (LSTM): weight 'kernel' ('layers/lstm/cell/vars/0') \
             has shape [3, 64], expected [3, 48] (3 input features, 4 gate(s) x 12 units)"
        ),
        "{message}"
    );
    let message = crafted_error("lstm_u8_f3_seq", "features.keras", |c| {
        layers_of(c)[0]["config"]["batch_shape"] = json!([null, null, 5]);
    });
    assert!(
        message.contains("has shape [3, 32], expected [5, 32]"),
        "{message}"
    );
    let message = crafted_error("lstm_u8_f3_seq", "no_bias.keras", |c| {
        layers_of(c)[1]["config"]["use_bias"] = json!(false);
    });
    assert!(
        message.contains("'layers/lstm/cell/vars' holds variables [0, 1, 2], expected 2 (kernel, recurrent_kernel)"),
        "{message}"
    );
    let message = crafted_error("gru_reset_after_u8_f3_seq", "reset_before.keras", |c| {
        layers_of(c)[1]["config"]["reset_after"] = json!(false);
    });
    assert!(
        message
            .contains("weight 'bias' ('layers/gru/cell/vars/2') has shape [2, 24], expected [24]"),
        "{message}"
    );
}

#[test]
fn options_with_several_outputs_or_other_semantics_are_errors() {
    let message = crafted_error("lstm_u8_f3_seq", "state.keras", |c| {
        layers_of(c)[1]["config"]["return_state"] = json!(true);
    });
    assert!(
        message.contains("layer 0 'lstm_0' (LSTM): return_state=True gives several outputs"),
        "{message}"
    );
    let message = crafted_error("bilstm_concat_u8_f3_seq", "merge_none.keras", |c| {
        layers_of(c)[1]["config"]["merge_mode"] = Value::Null;
    });
    assert!(
        message.contains("layer 0 'bidirectional_0' (Bidirectional): merge_mode=None returns the two directions as separate outputs"),
        "{message}"
    );
    let message = crafted_error("bilstm_concat_u8_f3_seq", "bi_backwards.keras", |c| {
        let layer = &mut layers_of(c)[1]["config"];
        layer["layer"]["config"]["go_backwards"] = json!(true);
        layer["backward_layer"]["config"]["go_backwards"] = json!(false);
    });
    assert!(
        message.contains("Bidirectional around a go_backwards=True layer is not supported"),
        "{message}"
    );
    let message = crafted_error("bilstm_concat_u8_f3_seq", "bi_mismatch.keras", |c| {
        layers_of(c)[1]["config"]["backward_layer"]["config"]["activation"] = json!("relu");
    });
    assert!(
        message.contains("the backward layer's configuration"),
        "{message}"
    );
    let message = crafted_error("lstm_u8_f3_seq", "float16.keras", |c| {
        layers_of(c)[1]["config"]["dtype"]["config"]["name"] = json!("mixed_float16");
    });
    assert!(
        message.contains("layer 0 'lstm_0' (LSTM): dtype policy 'mixed_float16': only float32 layers are supported"),
        "{message}"
    );
    let message = crafted_error("simplernn_relu_textbook", "input_rank.keras", |c| {
        layers_of(c)[0]["config"]["batch_shape"] = json!([null, 2]);
    });
    assert!(
        message.contains("input 'input' (InputLayer): the model input has shape (None, 2)"),
        "{message}"
    );
}

#[test]
fn non_float32_weights_are_an_error() {
    let mut zip = read_keras("lstm_u8_f3_seq");
    let mut tree = Tree::default();
    for (path, shape, values) in all_datasets(&zip.weights) {
        let data = if path.ends_with("cell/vars/1") {
            Data::F64(values.iter().map(|&v| f64::from(v)).collect())
        } else {
            Data::F32(values)
        };
        tree.dataset(&path, shape, data);
    }
    zip.weights = tree.bytes();
    let message = expect_err(import_crafted("f64.keras", &zip.bytes()));
    println!("{message}");
    assert!(
        message.contains(
            "layer 0 'lstm_0' (LSTM): weight 'recurrent_kernel' ('layers/lstm/cell/vars/1') is \
             stored as f64; only float32 weights are supported"
        ),
        "{message}"
    );
}

#[test]
fn branching_functional_graphs_are_errors() {
    let mut zip = read_keras("lstm_dense_softmax3_u16_f3");
    let mut config = functional_config(&zip);
    // The Dense reads the input as well as the LSTM: the input feeds two layers.
    config["config"]["layers"][2]["inbound_nodes"] =
        json!([{"args": [keras_tensor("input")], "kwargs": {}}]);
    zip.config = config.clone();
    let message = expect_err(import_crafted("branch.keras", &zip.bytes()));
    println!("{message}");
    assert!(
        message.contains(
            "layer 0 'input' (InputLayer): the output feeds 2 layers ('lstm_0', 'dense_0'): the \
             graph branches; only linear chains of layers are supported"
        ),
        "{message}"
    );
    // Two outputs.
    config["config"]["output_layers"] = json!([["lstm_0", 0, 0], ["dense_0", 0, 0]]);
    zip.config = config;
    let message = expect_err(import_crafted("two_outputs.keras", &zip.bytes()));
    assert!(message.contains("the model has 2 outputs"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Damaged files never panic.

/// A fixed-seed xorshift generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Truncates or flips 1 to 8 bytes.
    fn damage(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut b = bytes.to_vec();
        if self.next().is_multiple_of(3) {
            b.truncate(self.below(b.len()));
        } else {
            for _ in 0..1 + self.below(8) {
                let i = self.below(b.len());
                b[i] ^= 1 << self.below(8);
            }
        }
        b
    }
}

fn assert_clean(result: Result<Imported, ImportError>, what: &str) {
    if let Err(e) = result {
        assert!(
            !e.message.contains(PANIC_MESSAGE),
            "{what}: a reader panicked: {e}"
        );
    }
}

#[test]
fn damaged_files_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for case in [
        "bilstm_concat_u8_f3_seq",
        "lstm_dense_softmax3_u16_f3",
        "gru_reset_before_u8_f3_seq",
    ] {
        let keras = std::fs::read(golden(case, "keras")).unwrap();
        let h5 = std::fs::read(golden(case, "h5")).unwrap();
        let zip = read_keras(case);
        let config = serde_json::to_vec(&zip.config).unwrap();
        for i in 0..300 {
            let what = format!("{case} mutation {i}");
            assert_clean(
                import_keras_zip(Path::new("x.keras"), &rng.damage(&keras)),
                &what,
            );
            assert_clean(import_h5(Path::new("x.h5"), &rng.damage(&h5)), &what);
            // Inside an intact zip, so that the HDF5 reader and the config parser get the damage.
            let weights = rng.damage(&zip.weights);
            let bytes = zip_bytes(&[("config.json", &config), ("model.weights.h5", &weights)]);
            assert_clean(import_keras_zip(Path::new("x.keras"), &bytes), &what);
            let bad_config = rng.damage(&config);
            let bytes = zip_bytes(&[
                ("config.json", &bad_config),
                ("model.weights.h5", &zip.weights),
            ]);
            assert_clean(import_keras_zip(Path::new("x.keras"), &bytes), &what);
        }
    }
}
