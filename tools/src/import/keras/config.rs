//! A Keras model config (`config.json` of a `.keras` file, the `model_config` attribute of a
//! legacy `.h5`) read into a flat chain of layers the runtime has.
//!
//! Nested `Sequential` / `Functional` models are flattened; a `Functional` graph must be a
//! linear chain (one input, one output, every layer called once on the previous layer's
//! output). Besides the execution order, every layer keeps what is needed to find its weights:
//! the names Keras 3 generates for the weights file (see [`super::weights`]) and, for legacy
//! `.h5` files, the top-level layer whose group holds them.

use std::collections::HashMap;
use std::path::Path;

use edgernn::format::{Activation, Cell, Merge};
use serde_json::{Map, Value};

use super::super::ImportError;
use crate::builder::RecurrentSpec;

/// The Keras version that wrote the file, as far as it changes what a config means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KerasVersion {
    /// `None` when the file does not record it.
    pub major: Option<u32>,
}

impl KerasVersion {
    /// Parses `"3.15.1"`, `"2.13.1"`, `"2.4.0-tf"`, ...
    pub fn parse(text: Option<&str>) -> Self {
        let major = text.and_then(|t| {
            let digits: String = t.trim().chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        });
        Self { major }
    }

    /// Keras 3 changed `hard_sigmoid` from `clip(0.2 x + 0.5)` to `clip(x / 6 + 0.5)` and made
    /// `reset_after=True` the GRU default; the runtime implements Keras 3.
    fn is_keras3(self) -> bool {
        self.major.is_some_and(|m| m >= 3)
    }
}

/// The model as the runtime will run it.
#[derive(Debug)]
pub(super) struct Plan {
    /// Layers with weights, in execution order.
    pub layers: Vec<PlannedLayer>,
    /// Conversions worth telling the user.
    pub notes: Vec<String>,
    /// Features per time step, when the config declares them.
    pub input_features: Option<usize>,
}

/// One layer of the chain.
#[derive(Debug)]
pub(super) struct PlannedLayer {
    /// For messages, e.g. `layer 1 'lstm_1' (LSTM)`.
    pub location: String,
    /// The layer's own name.
    pub name: String,
    pub kind: Kind,
    /// The names Keras 3 generates in `model.weights.h5` for this layer and the models around
    /// it, outermost first (e.g. `["sequential", "lstm_1"]`).
    pub generated_path: Vec<String>,
    /// The top-level layer whose `model_weights/<name>` group holds the weights in a legacy
    /// `.h5` file (the layer itself, or the nested model around it).
    pub legacy_group: String,
    /// True when the layer sits inside a nested model, so its legacy group is shared.
    pub nested: bool,
}

#[derive(Debug)]
pub(super) enum Kind {
    Recurrent {
        spec: RecurrentSpec,
        use_bias: bool,
        /// Bidirectional: the config names of the forward and (when given) backward layers.
        inner_names: Option<(String, Option<String>)>,
    },
    Dense {
        units: usize,
        activation: Activation,
        use_bias: bool,
        /// Wrapped in `TimeDistributed`: the weights are the inner Dense's.
        wrapped: bool,
    },
    /// `Embedding(vocab, dim)`, the first layer; the table is the weight `embeddings`.
    Embedding {
        vocab: usize,
        dim: usize,
    },
    /// `Normalization` on the last axis (or with one mean and variance for all features when
    /// `scalar`). `stats` holds `(mean, variance)` from the config; `None` means they are the
    /// layer's `mean` / `variance` weights (after `adapt()`).
    Normalization {
        stats: Option<(Vec<f32>, Vec<f32>)>,
        scalar: bool,
    },
    RepeatVector {
        times: usize,
    },
}

impl Kind {
    /// Whether the layer's weights are read from the file.
    pub fn has_weights(&self) -> bool {
        match self {
            Kind::Recurrent { .. } | Kind::Dense { .. } | Kind::Embedding { .. } => true,
            Kind::Normalization { stats, .. } => stats.is_none(),
            Kind::RepeatVector { .. } => false,
        }
    }
}

const RECURRENT: [&str; 3] = ["SimpleRNN", "LSTM", "GRU"];
/// Layers that are the identity at inference (`training=False`).
const INFERENCE_NO_OPS: [&str; 6] = [
    "Dropout",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
];
/// Layers without a recurrence that shape or encode the sequence.
const SEQUENCE_LAYERS: [&str; 4] = [
    "Embedding",
    "Normalization",
    "RepeatVector",
    "TimeDistributed",
];
const MODELS: [&str; 3] = ["Sequential", "Functional", "Model"];
const SUPPORTED: &str = "supported: InputLayer, SimpleRNN, LSTM, GRU, Bidirectional, Dense, \
     Embedding (first layer), Normalization, RepeatVector, TimeDistributed(Dense), Activation \
     right after a linear Dense, nested Sequential/Functional models, and the inference no-ops Dropout, SpatialDropout1D, GaussianNoise, GaussianDropout, AlphaDropout, \
     ActivityRegularization";
const RECURRENT_ACTIVATIONS: &str = "tanh, sigmoid, hard_sigmoid, relu, linear";
const DENSE_ACTIVATIONS: &str = "linear, relu, tanh, sigmoid, hard_sigmoid, softmax";

/// Reads the model config into a plan.
///
/// # Errors
/// Unsupported layers (all of them are named), options or graphs, and malformed configs.
pub(super) fn plan(path: &Path, model: &Value, version: KerasVersion) -> Result<Plan, ImportError> {
    let class = model
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| ImportError::file(path, "the model config has no 'class_name'"))?;
    if !MODELS.contains(&class) {
        return Err(ImportError::file(
            path,
            format!(
                "the model is a '{class}', not a Sequential or Functional model; a subclassed \
                 model cannot be rebuilt from its config"
            ),
        ));
    }
    let mut unsupported = Vec::new();
    scan_unsupported(path, model, "", &mut unsupported)?;
    if let Some((first_at, first)) = unsupported.first() {
        let mut message = first.clone();
        if unsupported.len() > 1 {
            let others: Vec<&str> = unsupported[1..].iter().map(|(at, _)| at.as_str()).collect();
            message.push_str(&format!(" (also not supported: {})", others.join(", ")));
        }
        return Err(ImportError::at(path, first_at.clone(), message));
    }
    let mut parser = Parser {
        path,
        version,
        notes: Vec::new(),
        layers: Vec::new(),
        input_shape: None,
        input_dtype: None,
    };
    parser.model(model, "", &[], None)?;
    if parser.input_shape.is_none() {
        parser.input_shape = fallback_input_shape(model);
    }
    let embedding = match parser.layers.first() {
        Some(PlannedLayer {
            kind: Kind::Embedding { vocab, .. },
            location,
            ..
        }) => Some((location.clone(), *vocab)),
        _ => None,
    };
    match (&embedding, parser.input_dtype.take()) {
        (Some((at, vocab)), _) => parser.notes.push(format!(
            "{at}: the model reads token ids [batch, time]; the blob reads them as float32 \
             values [batch, time, 1], each an integer id from 0 to {}",
            vocab - 1
        )),
        (None, Some((at, dtype))) if dtype != "float32" => parser.notes.push(format!(
            "{at}: the model input is declared {dtype}; the runtime reads float32 values"
        )),
        _ => {}
    }
    let input_features = match &parser.input_shape {
        None => embedding.as_ref().map(|_| 1),
        Some((at, dims)) if embedding.is_some() => {
            if dims.len() != 2 {
                return Err(ImportError::at(
                    path,
                    at.clone(),
                    format!(
                        "the model input has shape {}; a model starting with an Embedding \
                         reads token ids [batch, time]",
                        shape_text(dims)
                    ),
                ));
            }
            if let Some(steps) = dims[1] {
                parser.notes.push(format!(
                    "{at}: the model was built for {steps} time steps; the runtime runs any \
                     number of steps"
                ));
            }
            Some(1)
        }
        Some((at, dims)) => {
            if dims.len() != 3 {
                return Err(ImportError::at(
                    path,
                    at.clone(),
                    format!(
                        "the model input has shape {}; the runtime reads sequences \
                         [batch, time, features]",
                        shape_text(dims)
                    ),
                ));
            }
            if let Some(steps) = dims[1] {
                parser.notes.push(format!(
                    "{at}: the model was built for {steps} time steps; the runtime runs any \
                     number of steps"
                ));
            }
            dims[2]
        }
    };
    Ok(Plan {
        layers: parser.layers,
        notes: parser.notes,
        input_features,
    })
}

/// Numbers of a (possibly nested) JSON list, or one number; false when something else is in it.
fn flatten_numbers(v: &Value, out: &mut Vec<f32>) -> bool {
    match v {
        #[allow(clippy::cast_possible_truncation)] // Keras computes in float32
        Value::Number(n) => n.as_f64().map(|x| out.push(x as f32)).is_some(),
        Value::Array(items) => items.iter().all(|i| flatten_numbers(i, out)),
        _ => false,
    }
}

/// `(None, None, 3)`, as Keras prints shapes.
fn shape_text(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or_else(|| "None".to_string(), |d| d.to_string()))
        .collect();
    format!("({})", parts.join(", "))
}

/// Keras' `naming.to_snake_case`, which Keras 3 applies to class names to name the groups of
/// `model.weights.h5`: drop non-word characters, then `_` before `Xyz` runs and between a
/// lowercase and an uppercase letter (`SimpleRNN` -> `simple_rnn`).
pub(super) fn to_snake_case(name: &str) -> String {
    let chars: Vec<char> = name
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    // re.sub("(.)([A-Z][a-z]+)", r"\1_\2"): non-overlapping, left to right.
    let mut first = Vec::with_capacity(chars.len() + 4);
    let mut i = 0;
    while i < chars.len() {
        let upper_then_lower = i + 2 < chars.len()
            && chars[i + 1].is_ascii_uppercase()
            && chars[i + 2].is_ascii_lowercase();
        if upper_then_lower {
            let mut end = i + 2;
            while end < chars.len() && chars[end].is_ascii_lowercase() {
                end += 1;
            }
            first.push(chars[i]);
            first.push('_');
            first.extend_from_slice(&chars[i + 1..end]);
            i = end;
        } else {
            first.push(chars[i]);
            i += 1;
        }
    }
    // re.sub("([a-z])([A-Z])", r"\1_\2"), then lower().
    let mut out = String::with_capacity(first.len() + 4);
    let mut i = 0;
    while i < first.len() {
        if i + 1 < first.len() && first[i].is_ascii_lowercase() && first[i + 1].is_ascii_uppercase()
        {
            out.push(first[i]);
            out.push('_');
            out.push(first[i + 1]);
            i += 2;
        } else {
            out.push(first[i]);
            i += 1;
        }
    }
    out.to_lowercase()
}

fn class_of(entry: &Value) -> &str {
    entry
        .get("class_name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn config_of(entry: &Value) -> Option<&Map<String, Value>> {
    entry.get("config").and_then(Value::as_object)
}

fn name_of(entry: &Value) -> &str {
    config_of(entry)
        .and_then(|c| c.get("name"))
        .or_else(|| entry.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
}

/// A layer class registered by user code (`registered_name` like `"my_package>MyLSTM"`, or a
/// module outside Keras) is not the Keras layer, whatever its class name.
fn custom_class(entry: &Value) -> Option<String> {
    if let Some(registered) = entry.get("registered_name").and_then(Value::as_str) {
        if registered.contains('>') {
            return Some(registered.to_string());
        }
    }
    let module = entry.get("module").and_then(Value::as_str)?;
    // Keras 3 writes `keras.layers` / `keras.src...`; TensorFlow's Keras 2 package `tf_keras`.
    let keras = module.starts_with("keras") || module.starts_with("tf_keras");
    (!keras).then(|| format!("{module}.{}", class_of(entry)))
}

/// A model config's layer list.
struct LayerList<'a> {
    /// Each layer with its position as `model.layers` numbers it (a `Sequential` leaves its
    /// leading `InputLayer` out of `model.layers`).
    entries: Vec<(Option<usize>, &'a Value)>,
    sequential: bool,
}

fn entries<'a>(path: &Path, model: &'a Value, at: &str) -> Result<LayerList<'a>, ImportError> {
    let where_ = if at.is_empty() {
        "the model".to_string()
    } else {
        at.to_string()
    };
    let list = config_of(model)
        .and_then(|c| c.get("layers"))
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ImportError::file(
                path,
                format!("{where_}: the model config has no 'layers' list"),
            )
        })?;
    let sequential = class_of(model) == "Sequential";
    let skip_first = sequential && list.first().is_some_and(|e| class_of(e) == "InputLayer");
    let out = list
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let pos = if skip_first {
                i.checked_sub(1)
            } else {
                Some(i)
            };
            (pos, e)
        })
        .collect();
    Ok(LayerList {
        entries: out,
        sequential,
    })
}

fn location(prefix: &str, pos: Option<usize>, entry: &Value) -> String {
    let here = match pos {
        Some(p) => format!("layer {p} '{}' ({})", name_of(entry), class_of(entry)),
        None => format!("input '{}' ({})", name_of(entry), class_of(entry)),
    };
    if prefix.is_empty() {
        here
    } else {
        format!("{prefix} > {here}")
    }
}

/// Why a layer class cannot be imported, with a hint where one helps.
fn unsupported_message(class: &str) -> String {
    let hint = match class {
        "Masking" => " (the runtime always processes every time step)",
        _ => "",
    };
    format!("{class} layers are not supported{hint}; {SUPPORTED}")
}

/// Collects every layer the runtime does not have, at any nesting depth, so that one error
/// lists them all.
fn scan_unsupported(
    path: &Path,
    model: &Value,
    prefix: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), ImportError> {
    for (pos, entry) in entries(path, model, prefix)?.entries {
        let class = class_of(entry);
        let at = location(prefix, pos, entry);
        if let Some(custom) = custom_class(entry) {
            out.push((
                at,
                format!("custom layer class '{custom}' is not supported; {SUPPORTED}"),
            ));
            continue;
        }
        if MODELS.contains(&class) {
            scan_unsupported(path, entry, &at, out)?;
        } else if !(class == "InputLayer"
            || class == "Bidirectional"
            || class == "Dense"
            || class == "Activation"
            || SEQUENCE_LAYERS.contains(&class)
            || RECURRENT.contains(&class)
            || INFERENCE_NO_OPS.contains(&class))
        {
            out.push((at, unsupported_message(class)));
        }
    }
    Ok(())
}

/// Input shape declared outside an `InputLayer`: Keras 2 puts `batch_input_shape` on the first
/// layer, Keras 3 records `build_input_shape` on a built `Sequential`.
fn fallback_input_shape(model: &Value) -> Option<(String, Vec<Option<usize>>)> {
    let cfg = config_of(model)?;
    let first = cfg.get("layers")?.as_array()?.first();
    let candidates = [
        first
            .and_then(config_of)
            .and_then(|c| c.get("batch_input_shape")),
        cfg.get("build_input_shape"),
        first
            .and_then(|e| e.get("build_config"))
            .and_then(|b| b.get("input_shape")),
    ];
    let at = first.map_or_else(|| "the model".to_string(), |e| location("", Some(0), e));
    candidates
        .into_iter()
        .flatten()
        .find_map(parse_shape)
        .map(|dims| (at, dims))
}

fn parse_shape(v: &Value) -> Option<Vec<Option<usize>>> {
    v.as_array()?
        .iter()
        .map(|d| match d {
            Value::Null => Some(None),
            other => other
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some),
        })
        .collect()
}

/// A tensor reference `[layer name, node index, tensor index]`.
type TensorRef = (String, u64, u64);

fn tensor_ref(v: &Value) -> Option<TensorRef> {
    let a = v.as_array()?;
    Some((
        a.first()?.as_str()?.to_string(),
        a.get(1)?.as_u64()?,
        a.get(2)?.as_u64()?,
    ))
}

/// `input_layers` / `output_layers`: one reference, a list of them, or a dict of them.
fn tensor_refs(v: &Value) -> Option<Vec<TensorRef>> {
    if let Some(r) = tensor_ref(v) {
        return Some(vec![r]);
    }
    match v {
        Value::Array(items) => items.iter().map(tensor_ref).collect(),
        Value::Object(map) => map.values().map(tensor_ref).collect(),
        _ => None,
    }
}

/// Every `__keras_tensor__` (Keras 3 call arguments) inside a value.
fn keras_tensors(v: &Value, out: &mut Vec<Option<TensorRef>>) {
    match v {
        Value::Object(map) => {
            if map.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") {
                out.push(
                    map.get("config")
                        .and_then(|c| c.get("keras_history"))
                        .and_then(tensor_ref),
                );
            } else {
                map.values().for_each(|x| keras_tensors(x, out));
            }
        }
        Value::Array(items) => items.iter().for_each(|x| keras_tensors(x, out)),
        _ => {}
    }
}

/// The inputs of each call of a layer, from `inbound_nodes` in the Keras 3 form
/// (`{"args": [...], "kwargs": {...}}`) or the Keras 2 form (`[[name, node, tensor, kwargs]]`).
/// `None` marks an input that is not a plain tensor reference.
fn inbound_calls(entry: &Value) -> Vec<Vec<Option<TensorRef>>> {
    let Some(nodes) = entry.get("inbound_nodes").and_then(Value::as_array) else {
        return Vec::new();
    };
    nodes
        .iter()
        .map(|node| match node {
            Value::Object(_) => {
                let mut refs = Vec::new();
                keras_tensors(node, &mut refs);
                refs
            }
            Value::Array(items) => {
                let mut refs = Vec::new();
                for item in items {
                    refs.push(tensor_ref(item));
                    // Keras 2 keeps extra call arguments (initial_state=...) in kwargs.
                    if let Some(kwargs) = item.get(3).and_then(Value::as_object) {
                        for v in kwargs.values() {
                            if matches!(v, Value::Array(a) if !a.is_empty())
                                || matches!(v, Value::Object(o) if !o.is_empty())
                            {
                                refs.push(None);
                            }
                        }
                    }
                }
                refs
            }
            _ => vec![None],
        })
        .collect()
}

struct Parser<'a> {
    path: &'a Path,
    version: KerasVersion,
    notes: Vec<String>,
    layers: Vec<PlannedLayer>,
    /// Where the input shape was declared, and the shape.
    input_shape: Option<(String, Vec<Option<usize>>)>,
    /// Where the input dtype was declared, and the dtype.
    input_dtype: Option<(String, String)>,
}

impl Parser<'_> {
    fn err(&self, at: &str, message: impl Into<String>) -> ImportError {
        ImportError::at(self.path, at, message)
    }

    /// Appends the layers of one (possibly nested) model. `generated` holds the generated
    /// names of the models around it; `legacy_group` is the top-level layer around it.
    fn model(
        &mut self,
        model: &Value,
        prefix: &str,
        generated: &[String],
        legacy_group: Option<&str>,
    ) -> Result<(), ImportError> {
        let LayerList {
            entries: list,
            sequential,
        } = entries(self.path, model, prefix)?;
        // Keras 3 names a model's layers by class (`lstm`, `lstm_1`, ...) in list order.
        let mut used: HashMap<String, usize> = HashMap::new();
        let names: Vec<String> = list
            .iter()
            .map(|(_, e)| {
                let base = to_snake_case(class_of(e));
                let count = used.entry(base.clone()).or_insert(0);
                let name = if *count == 0 {
                    base.clone()
                } else {
                    format!("{base}_{count}")
                };
                *count += 1;
                name
            })
            .collect();
        let order: Vec<usize> = if sequential {
            (0..list.len()).collect()
        } else {
            self.chain_order(model, &list, prefix)?
        };
        for i in order {
            let (pos, entry) = &list[i];
            let at = location(prefix, *pos, entry);
            let mut path = generated.to_vec();
            path.push(names[i].clone());
            let group = legacy_group.unwrap_or_else(|| name_of(entry)).to_string();
            self.layer(entry, &at, path, group, legacy_group.is_some())?;
        }
        Ok(())
    }

    /// Execution order of a `Functional` model that is a linear chain.
    fn chain_order(
        &self,
        model: &Value,
        list: &[(Option<usize>, &Value)],
        prefix: &str,
    ) -> Result<Vec<usize>, ImportError> {
        let model_at = if prefix.is_empty() {
            "the model".to_string()
        } else {
            prefix.to_string()
        };
        let at = |i: usize| location(prefix, list[i].0, list[i].1);
        let cfg = config_of(model);
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, (_, entry)) in list.iter().enumerate() {
            if index.insert(name_of(entry), i).is_some() {
                return Err(self.err(&at(i), "two layers have this name"));
            }
        }
        let ends = |key: &str| -> Result<TensorRef, ImportError> {
            let refs = cfg
                .and_then(|c| c.get(key))
                .and_then(tensor_refs)
                .ok_or_else(|| self.err(&model_at, format!("the model config has no '{key}'")))?;
            match refs.as_slice() {
                [one] => Ok(one.clone()),
                _ => Err(self.err(
                    &model_at,
                    format!(
                        "the model has {} {}; only models with one input and one output (a \
                         linear chain of layers) are supported",
                        refs.len(),
                        if key == "input_layers" {
                            "inputs"
                        } else {
                            "outputs"
                        }
                    ),
                )),
            }
        };
        let (input_name, _, _) = ends("input_layers")?;
        let (output_name, _, output_tensor) = ends("output_layers")?;
        let find = |name: &str| {
            index.get(name).copied().ok_or_else(|| {
                self.err(
                    &model_at,
                    format!("the graph refers to a layer '{name}' the config does not have"),
                )
            })
        };
        let input = find(&input_name)?;
        let output = find(&output_name)?;
        if output_tensor != 0 {
            return Err(self.err(
                &at(output),
                format!(
                    "the model output is output {output_tensor} of this layer; only single-output \
                     layers are supported"
                ),
            ));
        }
        let mut successors: Vec<Vec<usize>> = vec![Vec::new(); list.len()];
        for (i, (_, entry)) in list.iter().enumerate() {
            if class_of(entry) == "InputLayer" {
                continue;
            }
            let calls = inbound_calls(entry);
            let call = match calls.as_slice() {
                [] => {
                    return Err(self.err(&at(i), "the layer is not connected to the graph"));
                }
                [one] => one,
                more => {
                    return Err(self.err(
                        &at(i),
                        format!(
                            "the layer is called {} times (a shared layer); only linear chains \
                             are supported",
                            more.len()
                        ),
                    ));
                }
            };
            let (from, node, tensor) = match call.as_slice() {
                [Some(r)] => r.clone(),
                _ => {
                    return Err(self.err(
                        &at(i),
                        format!(
                            "the layer takes {} inputs (several tensors or extra arguments such \
                             as initial_state); only linear chains with one input per layer are \
                             supported",
                            call.len()
                        ),
                    ));
                }
            };
            let from = find(&from)?;
            if node != 0 || tensor != 0 {
                return Err(self.err(
                    &at(i),
                    format!(
                        "the layer reads output {tensor} of call {node} of '{}'; only linear \
                         chains of single-output layers are supported",
                        name_of(list[from].1)
                    ),
                ));
            }
            successors[from].push(i);
        }
        let mut order = vec![input];
        let mut seen = vec![false; list.len()];
        seen[input] = true;
        let mut current = input;
        while current != output {
            let next = match successors[current].as_slice() {
                [next] => *next,
                [] => {
                    return Err(self.err(
                        &at(current),
                        format!(
                            "the chain from the input stops here, before the model output '{}'",
                            output_name
                        ),
                    ));
                }
                many => {
                    let names: Vec<String> = many
                        .iter()
                        .map(|&j| format!("'{}'", name_of(list[j].1)))
                        .collect();
                    return Err(self.err(
                        &at(current),
                        format!(
                            "the output feeds {} layers ({}): the graph branches; only linear \
                             chains of layers are supported",
                            many.len(),
                            names.join(", ")
                        ),
                    ));
                }
            };
            if seen[next] {
                return Err(self.err(&at(next), "the graph has a cycle"));
            }
            seen[next] = true;
            order.push(next);
            current = next;
        }
        if let Some(i) = (0..list.len()).find(|&i| !seen[i]) {
            return Err(self.err(
                &at(i),
                "the layer is not on the path from the model input to its output; only linear \
                 chains of layers are supported",
            ));
        }
        Ok(order)
    }

    fn layer(
        &mut self,
        entry: &Value,
        at: &str,
        generated_path: Vec<String>,
        legacy_group: String,
        nested: bool,
    ) -> Result<(), ImportError> {
        let class = class_of(entry);
        let empty = Map::new();
        let cfg = config_of(entry).unwrap_or(&empty);
        let kind = match class {
            "InputLayer" => {
                // Only an input before any weighted layer is the model's: a nested model's
                // InputLayer further down declares that model's own input.
                if self.input_shape.is_none() && self.layers.is_empty() {
                    let dims = cfg
                        .get("batch_shape")
                        .or_else(|| cfg.get("batch_input_shape"))
                        .and_then(parse_shape);
                    if let Some(dims) = dims {
                        self.input_shape = Some((at.to_string(), dims));
                    }
                }
                if let Some(dtype) = cfg.get("dtype").and_then(Value::as_str) {
                    if self.input_dtype.is_none() && self.layers.is_empty() {
                        self.input_dtype = Some((at.to_string(), dtype.to_string()));
                    }
                }
                return Ok(());
            }
            c if INFERENCE_NO_OPS.contains(&c) => {
                self.notes
                    .push(format!("{at}: skipped (the identity at inference)"));
                return Ok(());
            }
            c if MODELS.contains(&c) => {
                let group = if nested {
                    legacy_group
                } else {
                    name_of(entry).to_string()
                };
                return self.model(entry, at, &generated_path, Some(&group));
            }
            "Activation" => return self.fold_activation(cfg, at),
            c if RECURRENT.contains(&c) => {
                let (spec, use_bias) = self.recurrent(class, cfg, at, None)?;
                Kind::Recurrent {
                    spec,
                    use_bias,
                    inner_names: None,
                }
            }
            "Bidirectional" => self.bidirectional(cfg, at)?,
            "Dense" => self.dense(cfg, at, false)?,
            "TimeDistributed" => self.time_distributed(cfg, at)?,
            "Embedding" => self.embedding(cfg, at)?,
            "Normalization" => self.normalization(entry, cfg, at)?,
            "RepeatVector" => self.repeat_vector(cfg, at)?,
            // scan_unsupported has refused everything else.
            other => return Err(self.err(at, unsupported_message(other))),
        };
        self.layers.push(PlannedLayer {
            location: at.to_string(),
            name: name_of(entry).to_string(),
            kind,
            generated_path,
            legacy_group,
            nested,
        });
        Ok(())
    }

    fn check_dtype(&self, cfg: &Map<String, Value>, at: &str) -> Result<(), ImportError> {
        let name = match cfg.get("dtype") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(s)) => Some(s.as_str()),
            // Keras 3 `DTypePolicy` / Keras 2 `Policy`: {"class_name": ..., "config": {"name": ...}}.
            Some(Value::Object(policy)) => policy
                .get("config")
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str),
            Some(_) => None,
        };
        match name {
            Some("float32") => Ok(()),
            Some(other) => Err(self.err(
                at,
                format!(
                    "dtype policy '{other}': only float32 layers are supported (the runtime \
                     stores float32 weights and computes in float32)"
                ),
            )),
            None => Err(self.err(at, "the layer's dtype policy cannot be read")),
        }
    }

    fn flag(
        &self,
        cfg: &Map<String, Value>,
        key: &str,
        default: bool,
        at: &str,
    ) -> Result<bool, ImportError> {
        match cfg.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.err(at, format!("option {key}={other} is not a boolean"))),
        }
    }

    fn units(&self, cfg: &Map<String, Value>, at: &str) -> Result<usize, ImportError> {
        let units = cfg
            .get("units")
            .and_then(Value::as_u64)
            .ok_or_else(|| self.err(at, "the config has no positive integer 'units'"))?;
        match usize::try_from(units) {
            Ok(u) if (1..=edgernn::MAX_WIDTH).contains(&u) => Ok(u),
            _ => Err(self.err(
                at,
                format!(
                    "units={units}: the runtime supports 1 to {} units",
                    edgernn::MAX_WIDTH
                ),
            )),
        }
    }

    /// An activation option. `what` names the option in messages.
    fn activation(
        &self,
        value: Option<&Value>,
        default: Activation,
        for_dense: bool,
        what: &str,
        at: &str,
    ) -> Result<Activation, ImportError> {
        let name = match value {
            None => return Ok(default),
            // `activation=None` means linear in Keras.
            Some(Value::Null) => "linear",
            Some(Value::String(s)) => s.as_str(),
            // A serialized function: {"class_name": "function", "config": "tanh", ...}.
            Some(Value::Object(o)) => o.get("config").and_then(Value::as_str).unwrap_or(""),
            Some(_) => "",
        };
        let supported = if for_dense {
            DENSE_ACTIVATIONS
        } else {
            RECURRENT_ACTIVATIONS
        };
        let activation = match name {
            "linear" => Activation::Linear,
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "hard_sigmoid" => Activation::HardSigmoid,
            "softmax" if for_dense => Activation::Softmax,
            _ => {
                let shown = value.map_or_else(String::new, |v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                return Err(self.err(
                    at,
                    format!("{what} '{shown}' is not supported; supported: {supported}"),
                ));
            }
        };
        if activation == Activation::HardSigmoid && !self.version.is_keras3() {
            return Err(self.err(
                at,
                format!(
                    "{what} 'hard_sigmoid' from a Keras {} file means clip(0.2 x + 0.5, 0, 1); \
                     the runtime implements Keras 3's clip(x / 6 + 0.5, 0, 1)",
                    self.version
                        .major
                        .map_or_else(|| "version-unknown".to_string(), |m| format!("{m}"))
                ),
            ));
        }
        Ok(activation)
    }

    /// A SimpleRNN, LSTM or GRU config. `merge` wraps it in Bidirectional.
    fn recurrent(
        &mut self,
        class: &str,
        cfg: &Map<String, Value>,
        at: &str,
        merge: Option<Merge>,
    ) -> Result<(RecurrentSpec, bool), ImportError> {
        self.check_dtype(cfg, at)?;
        let units = self.units(cfg, at)?;
        let cell = match class {
            "SimpleRNN" => Cell::SimpleRnn,
            "LSTM" => Cell::Lstm,
            "GRU" => Cell::Gru {
                // Keras 3 made reset_after=True the default; before, it was False.
                reset_after: self.flag(cfg, "reset_after", self.version.is_keras3(), at)?,
            },
            other => {
                return Err(self.err(
                    at,
                    format!(
                        "Bidirectional around a {other} layer is not supported; supported: \
                         SimpleRNN, LSTM, GRU"
                    ),
                ));
            }
        };
        let activation = self.activation(
            cfg.get("activation"),
            Activation::Tanh,
            false,
            "activation",
            at,
        )?;
        // SimpleRNN has no recurrent activation; the builder ignores the value.
        let recurrent_activation = if cell == Cell::SimpleRnn {
            Activation::Sigmoid
        } else {
            self.activation(
                cfg.get("recurrent_activation"),
                Activation::Sigmoid,
                false,
                "recurrent_activation",
                at,
            )?
        };
        if self.flag(cfg, "return_state", false, at)? {
            return Err(self.err(
                at,
                "return_state=True gives several outputs; the runtime has one output (use \
                 return_state=False; the state is available through Model::step's state slice)",
            ));
        }
        if self.flag(cfg, "time_major", false, at)? {
            return Err(self.err(
                at,
                "time_major=True is not supported: the runtime reads [batch, time, features]",
            ));
        }
        if self.flag(cfg, "stateful", false, at)? {
            self.notes.push(format!(
                "{at}: stateful=True does not change the computation; the state carried between \
                 calls is the state slice you pass to the runtime"
            ));
        }
        if self.flag(cfg, "unroll", false, at)? {
            self.notes.push(format!(
                "{at}: unroll=True only changes how Keras builds the loop; results are the same"
            ));
        }
        let spec = RecurrentSpec {
            cell,
            units,
            activation,
            recurrent_activation,
            return_sequences: self.flag(cfg, "return_sequences", false, at)?,
            go_backwards: self.flag(cfg, "go_backwards", false, at)?,
            bidirectional: merge,
        };
        Ok((spec, self.flag(cfg, "use_bias", true, at)?))
    }

    fn bidirectional(&mut self, cfg: &Map<String, Value>, at: &str) -> Result<Kind, ImportError> {
        self.check_dtype(cfg, at)?;
        let merge = match cfg.get("merge_mode") {
            // Keras' default.
            None => Merge::Concat,
            Some(Value::String(m)) if m == "concat" => Merge::Concat,
            Some(Value::String(m)) if m == "sum" => Merge::Sum,
            Some(Value::String(m)) if m == "mul" => Merge::Mul,
            Some(Value::String(m)) if m == "ave" => Merge::Ave,
            Some(Value::Null) => {
                return Err(self.err(
                    at,
                    "merge_mode=None returns the two directions as separate outputs; the runtime \
                     has one output: use merge_mode concat, sum, mul or ave",
                ));
            }
            Some(other) => {
                return Err(self.err(
                    at,
                    format!(
                        "merge_mode {other} is not supported; supported: concat, sum, mul, ave"
                    ),
                ));
            }
        };
        let inner = |key: &str| cfg.get(key).filter(|v| !v.is_null());
        let forward = inner("layer")
            .ok_or_else(|| self.err(at, "the Bidirectional config has no 'layer'"))?;
        if let Some(custom) = custom_class(forward) {
            return Err(self.err(
                at,
                format!("Bidirectional around custom layer class '{custom}' is not supported"),
            ));
        }
        let empty = Map::new();
        let forward_cfg = config_of(forward).unwrap_or(&empty);
        let forward_class = class_of(forward);
        let (spec, use_bias) = self.recurrent(forward_class, forward_cfg, at, Some(merge))?;
        if spec.go_backwards {
            return Err(self.err(
                at,
                "Bidirectional around a go_backwards=True layer is not supported (its 'forward' \
                 direction runs backwards)",
            ));
        }
        let backward_name = match inner("backward_layer") {
            None => None,
            Some(backward) => {
                let backward_cfg = config_of(backward).unwrap_or(&empty);
                let backward_class = class_of(backward);
                if backward_class != forward_class || custom_class(backward).is_some() {
                    return Err(self.err(
                        at,
                        format!(
                            "the backward layer is a {backward_class} and the forward layer a \
                             {forward_class}; the runtime runs both directions with one \
                             configuration"
                        ),
                    ));
                }
                let (back, back_bias) =
                    self.recurrent(backward_class, backward_cfg, at, Some(merge))?;
                if !back.go_backwards {
                    return Err(self.err(at, "the backward layer does not have go_backwards=True"));
                }
                let same = RecurrentSpec {
                    go_backwards: false,
                    ..back
                } == spec
                    && back_bias == use_bias;
                if !same {
                    return Err(self.err(
                        at,
                        "the backward layer's configuration (units, activations, use_bias, \
                         reset_after, return_sequences) differs from the forward layer's; the \
                         runtime runs both directions with one configuration",
                    ));
                }
                Some(name_of(backward).to_string())
            }
        };
        Ok(Kind::Recurrent {
            spec,
            use_bias,
            inner_names: Some((name_of(forward).to_string(), backward_name)),
        })
    }

    fn dense(
        &mut self,
        cfg: &Map<String, Value>,
        at: &str,
        wrapped: bool,
    ) -> Result<Kind, ImportError> {
        self.check_dtype(cfg, at)?;
        let units = self.units(cfg, at)?;
        let activation = self.activation(
            cfg.get("activation"),
            Activation::Linear,
            true,
            "activation",
            at,
        )?;
        if cfg.get("lora_rank").is_some_and(|r| !r.is_null()) {
            return Err(self.err(
                at,
                "LoRA is enabled (lora_rank is set); merge the LoRA weights into the kernel \
                 (layer.disable_lora()) before saving",
            ));
        }
        if cfg.get("quantization_config").is_some_and(|q| !q.is_null()) {
            return Err(self.err(
                at,
                "the layer is quantized; only float32 layers are supported",
            ));
        }
        Ok(Kind::Dense {
            units,
            activation,
            use_bias: self.flag(cfg, "use_bias", true, at)?,
            wrapped,
        })
    }

    /// `TimeDistributed(Dense)`: a Dense applies to the last axis, so on a sequence it already
    /// runs on every time step.
    fn time_distributed(
        &mut self,
        cfg: &Map<String, Value>,
        at: &str,
    ) -> Result<Kind, ImportError> {
        self.check_dtype(cfg, at)?;
        let inner = cfg
            .get("layer")
            .filter(|v| !v.is_null())
            .ok_or_else(|| self.err(at, "the TimeDistributed config has no 'layer'"))?;
        if let Some(custom) = custom_class(inner) {
            return Err(self.err(
                at,
                format!("TimeDistributed around custom layer class '{custom}' is not supported"),
            ));
        }
        let class = class_of(inner);
        if class != "Dense" {
            return Err(self.err(
                at,
                format!(
                    "TimeDistributed around a {class} layer is not supported; supported: \
                     TimeDistributed(Dense)"
                ),
            ));
        }
        let empty = Map::new();
        self.dense(config_of(inner).unwrap_or(&empty), at, true)
    }

    fn embedding(&mut self, cfg: &Map<String, Value>, at: &str) -> Result<Kind, ImportError> {
        self.check_dtype(cfg, at)?;
        if let Some(first) = self.layers.first() {
            return Err(self.err(
                at,
                format!(
                    "an Embedding is supported only as the first layer (it reads the model's \
                     token ids), but it follows {}",
                    first.location
                ),
            ));
        }
        let size = |key: &str| -> Result<usize, ImportError> {
            cfg.get(key)
                .and_then(Value::as_u64)
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v > 0)
                .ok_or_else(|| self.err(at, format!("the config has no positive integer '{key}'")))
        };
        let vocab = size("input_dim")?;
        let dim = size("output_dim")?;
        if dim > edgernn::MAX_WIDTH {
            return Err(self.err(
                at,
                format!(
                    "output_dim={dim}: the runtime supports 1 to {} features",
                    edgernn::MAX_WIDTH
                ),
            ));
        }
        if self.flag(cfg, "mask_zero", false, at)? {
            return Err(self.err(
                at,
                "mask_zero=True makes the layers after it skip the time steps of token 0 \
                 (padding); the runtime processes every time step: use mask_zero=False",
            ));
        }
        if cfg.get("lora_rank").is_some_and(|r| !r.is_null()) {
            return Err(self.err(
                at,
                "LoRA is enabled (lora_rank is set); merge the LoRA weights into the table \
                 (layer.disable_lora()) before saving",
            ));
        }
        if cfg.get("quantization_config").is_some_and(|q| !q.is_null()) {
            return Err(self.err(
                at,
                "the layer is quantized; only float32 layers are supported",
            ));
        }
        Ok(Kind::Embedding { vocab, dim })
    }

    fn normalization(
        &mut self,
        entry: &Value,
        cfg: &Map<String, Value>,
        at: &str,
    ) -> Result<Kind, ImportError> {
        self.check_dtype(cfg, at)?;
        if self.flag(cfg, "invert", false, at)? {
            return Err(self.err(
                at,
                "invert=True (the inverse, x * sqrt(variance) + mean) is not supported; the \
                 runtime standardises (x - mean) / sqrt(variance)",
            ));
        }
        // Keras keeps `axis` as a tuple: `None` is `()`, one mean and variance for everything.
        let axes: Option<Vec<i64>> = match cfg.get("axis") {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(Value::Number(n)) => n.as_i64().map(|a| vec![a]),
            Some(Value::Array(items)) => items.iter().map(Value::as_i64).collect(),
            Some(_) => None,
        };
        // The rank of the layer's input, when the file records it.
        let rank = entry
            .get("build_config")
            .and_then(|b| b.get("input_shape"))
            .and_then(Value::as_array)
            .and_then(|s| i64::try_from(s.len()).ok());
        let scalar = match axes.as_deref() {
            Some([]) => true,
            Some([-1]) => false,
            Some([a]) if rank.is_some_and(|r| *a == r - 1) => false,
            _ => {
                let shown = cfg.get("axis").map_or_else(String::new, Value::to_string);
                return Err(self.err(
                    at,
                    format!(
                        "axis={shown}: only the last axis (axis=-1, a mean and variance per \
                         feature) or axis=None (one mean and variance) is supported"
                    ),
                ));
            }
        };
        let stat = |key: &str| -> Result<Option<Vec<f32>>, ImportError> {
            match cfg.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => {
                    let mut out = Vec::new();
                    if flatten_numbers(v, &mut out) && !out.is_empty() {
                        Ok(Some(out))
                    } else {
                        Err(self.err(
                            at,
                            format!("'{key}' in the config is not a list of numbers"),
                        ))
                    }
                }
            }
        };
        let stats =
            match (stat("mean")?, stat("variance")?) {
                (Some(m), Some(v)) => Some((m, v)),
                (None, None) => None,
                _ => return Err(self.err(
                    at,
                    "the config gives only one of mean and variance; Keras needs both or neither",
                )),
            };
        Ok(Kind::Normalization { stats, scalar })
    }

    fn repeat_vector(&mut self, cfg: &Map<String, Value>, at: &str) -> Result<Kind, ImportError> {
        let times = cfg
            .get("n")
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| self.err(at, "the config has no positive integer 'n'"))?;
        Ok(Kind::RepeatVector { times })
    }

    /// An `Activation` layer is exact when it follows a linear Dense: it becomes that Dense's
    /// activation.
    fn fold_activation(&mut self, cfg: &Map<String, Value>, at: &str) -> Result<(), ImportError> {
        let activation = self.activation(
            cfg.get("activation"),
            Activation::Linear,
            true,
            "activation",
            at,
        )?;
        if activation == Activation::Linear {
            self.notes.push(format!(
                "{at}: skipped (a linear activation is the identity)"
            ));
            return Ok(());
        }
        match self.layers.last_mut() {
            Some(PlannedLayer {
                kind:
                    Kind::Dense {
                        activation: previous @ Activation::Linear,
                        ..
                    },
                location,
                ..
            }) => {
                *previous = activation;
                let note = format!("{at}: folded into {location} as its activation");
                self.notes.push(note);
                Ok(())
            }
            _ => Err(self.err(
                at,
                "an Activation layer is supported only right after a Dense with a linear \
                 activation (it is folded into that Dense); the runtime has no standalone \
                 activation layer",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_matches_keras_naming() {
        for (class, name) in [
            ("SimpleRNN", "simple_rnn"),
            ("LSTM", "lstm"),
            ("GRU", "gru"),
            ("Bidirectional", "bidirectional"),
            ("Dense", "dense"),
            ("InputLayer", "input_layer"),
            ("TimeDistributed", "time_distributed"),
            ("RepeatVector", "repeat_vector"),
            ("SpatialDropout1D", "spatial_dropout1d"),
            ("Functional", "functional"),
            ("ABcDe", "a_bc_de"),
        ] {
            assert_eq!(to_snake_case(class), name, "{class}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(KerasVersion::parse(Some("3.15.1")).major, Some(3));
        assert_eq!(KerasVersion::parse(Some("2.4.0-tf")).major, Some(2));
        assert_eq!(KerasVersion::parse(Some("x")).major, None);
        assert_eq!(KerasVersion::parse(None).major, None);
    }
}
