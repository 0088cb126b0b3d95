//! A small symbolic interpreter over the live nodes of the graph.
//!
//! Every value is one of: a constant (float tensor, or integer scalar/vector whose elements
//! may be run-time sizes such as the batch size), a float tensor of run-time shape filled with
//! one value (`ConstantOfShape`/`Expand`, used for zero initial states), or **the** activation
//! tensor: the one value on the path from the graph input to the graph output, described by
//! the meaning of its axes (batch, time, directions, features, size-1). Recurrent nodes,
//! `MatMul`/`Gemm` (+`Add`), activations, an Embedding `Gather` of a table by the input's token
//! ids, `Sub`/`Div` by per-feature constants (Normalization) and `Tile`/`Expand` of a vector
//! (RepeatVector, whose new axis is time from then on) append layers; the glue between them (`Transpose`,
//! `Reshape`, `Squeeze`, `Slice`, `Gather`, ...) only changes how the activation axes are laid
//! out, and is checked to be exactly what a Keras model computes. Anything else is refused,
//! naming the node. Per-step values of unrolled recurrences (no RNN node) live in [`unrolled`].

use std::collections::HashMap;
use std::rc::Rc;

use edgernn::format::{Activation, Cell, Merge};

use super::graph::{node_location, Graph};
use super::proto::NodeProto;
use super::recurrent::{self, Direction};
use super::tensor::{
    attr_float, attr_int, attr_ints, attr_tensor, decode, element_count, transpose, Constant, Dim,
    Floats, Ints,
};
use super::{MAX_COMPUTED_ELEMENTS, MAX_INT_VECTOR, MAX_RANK, MAX_TENSOR_ELEMENTS};
use crate::builder::{KerasWeights, RecurrentSpec};

mod unrolled;

use unrolled::{Step, StepKind, Unrolled};

/// The message for `Loop`/`Scan` recurrences (Keras' `model.export`, jax2onnx).
pub(super) const LOOP_REFUSAL: &str = "a Loop-based recurrence (Keras model.export) is not supported: import the .keras file or export with native RNN/LSTM/GRU operators";

/// Slice bounds at or beyond this magnitude mean "to the end" on a run-time sized axis
/// (exporters write `INT64_MAX`/`INT64_MIN`; no sequence here is 2^31 steps long).
const OPEN_BOUND: i64 = i32::MAX as i64;

/// What an axis of the activation tensor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    /// Axis `0` or `1` of the graph input: batch or time (decided by the first recurrent
    /// node, which says which axis it reads as time).
    In(u8),
    /// The `num_directions` axis of recurrent layer `layer`'s output.
    Dir { n: usize, layer: usize },
    /// The features (one row of a layer's output).
    Feat(usize),
    /// An axis of size 1 added by `Unsqueeze` or `keepdims`.
    One,
}

impl Axis {
    /// Size-1 axes that can be dropped or added without changing the data.
    fn is_unit(self) -> bool {
        matches!(self, Axis::One | Axis::Dir { n: 1, .. })
    }
}

/// The activation tensor.
#[derive(Debug, Clone, PartialEq)]
struct Act {
    axes: Vec<Axis>,
    /// How many layers existed when this value was computed: a layer may only be appended
    /// to the output of the newest one, which keeps the model one chain.
    origin: usize,
    /// `Some(s)`: input axis `s` (the time axis) runs backwards relative to Keras' order.
    reversed: Option<u8>,
    /// The recurrent layer whose per-step outputs the time axis holds.
    seq_of: Option<usize>,
    /// The recurrent layer whose last output (time axis removed) this is: that layer has
    /// `return_sequences=False` once this value is used.
    last_of: Option<usize>,
    /// The Dense layer whose output this is, while its bias and activation can be folded in.
    dense: Option<usize>,
    /// A size-1 feature axis was squeezed away (`fc(x).squeeze(-1)`).
    features_squeezed: bool,
}

/// A value of the graph.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Floats(Floats),
    Ints(Ints),
    /// A float tensor filled with one value, with its shape when known (dimensions may be
    /// run-time sizes).
    Splat(f32, Option<Vec<Dim>>),
    /// A per-time-step value of an unrolled recurrence (see [`Step`]).
    Step(Step),
    Act(Act),
    /// `Concat` of several layers' final states along their direction axis `axis`: PyTorch's
    /// `h_n` of a multi-layer module, from which `h_n[-1]` picks the last layer's.
    Stack {
        axis: usize,
        parts: Vec<Act>,
    },
    /// A value the importer cannot represent; using it is an error with this message.
    Refused(String),
}

const TILE_REFUSAL: &str = "repeats a tensor (Tile) other than a layer's single output vector; supported is Keras' RepeatVector: Unsqueeze to [batch, 1, features] then Tile([1, n, 1]) or Expand([batch, n, features]) of a layer's last output";

const STACK_USE: &str = "uses the stacked final states of several layers (h_n) other than by picking one entry (h_n[-1]), which is the only supported use";

/// A layer in Keras terms, with the node that produced it.
#[derive(Debug, Clone)]
pub(super) enum Layer {
    Recurrent {
        location: String,
        spec: RecurrentSpec,
        directions: Vec<KerasWeights>,
    },
    Dense {
        location: String,
        units: usize,
        activation: Activation,
        kernel: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    /// `Gather(table, token_ids, axis=0)` on the graph input: Keras `Embedding`.
    Embedding {
        location: String,
        vocab: usize,
        dim: usize,
        table: Vec<f32>,
    },
    /// `Sub(x, mean)` then `Div(., std)`: Keras `Normalization`. `None` means no `Div` (yet).
    Normalization {
        location: String,
        mean: Vec<f32>,
        std: Option<Vec<f32>>,
    },
    /// `Unsqueeze` + `Tile`/`Expand` of a vector: Keras `RepeatVector`.
    RepeatVector { location: String, times: usize },
}

/// What the interpreter found.
pub(super) struct Outcome {
    pub layers: Vec<Layer>,
    pub input_features: usize,
    pub time_major_input: bool,
    pub notes: Vec<String>,
}

/// Which graph input axis is time and which is batch.
#[derive(Debug, Clone, Copy)]
struct Roles {
    time: u8,
    batch: u8,
}

/// An error at a node (`Some(index)`) or about the graph (`None`).
pub(super) type InterpError = (Option<String>, String);

type R<T> = Result<T, String>;

struct Interp<'g> {
    graph: &'g Graph<'g>,
    opset: i64,
    values: HashMap<&'g str, Rc<Value>>,
    layers: Vec<Layer>,
    roles: Option<Roles>,
    /// Sizes of input axes 0 and 1 when the graph input declares them.
    static_sizes: [Option<u64>; 2],
    notes: Vec<String>,
    /// The location of the node being evaluated, for the layers it creates.
    location: String,
    /// Float values computed from constants so far (see [`MAX_COMPUTED_ELEMENTS`]).
    computed: usize,
    /// Unrolled recurrences seen, by the layer index of their input projection.
    unrolled: HashMap<usize, Unrolled>,
    /// The graph input holds integer token ids `[batch, time]`.
    token_ids: bool,
}

/// Runs the live nodes and checks the graph output.
///
/// # Errors
/// The first node (or graph-level fact) the runtime cannot represent exactly.
pub(super) fn run(graph: &Graph<'_>, opset: i64) -> Result<Outcome, InterpError> {
    let input = graph.input;
    let input_loc = || Some(format!("graph input '{}'", input.name()));
    let tensor_type = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(super::proto::type_proto::Value::TensorType(t)) => t,
        _ => return Err((input_loc(), "is not a tensor".into())),
    };
    let dims: Vec<Option<i64>> = tensor_type
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(super::proto::tensor_shape_proto::dimension::Value::DimValue(v)) => {
                        Some(v)
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    // Keras' own export (jax2onnx) runs the recurrence in a Loop: say so before anything
    // else in the graph trips on the glue around it.
    if let Some(&k) = graph
        .order
        .iter()
        .find(|&&k| matches!(graph.nodes[k].op_type(), "Loop" | "Scan"))
    {
        return Err((Some(node_location(k, &graph.nodes[k])), LOOP_REFUSAL.into()));
    }
    let elem_type = tensor_type.elem_type.unwrap_or(0);
    // TensorProto.DataType: FLOAT 1; integer types 2-7 and 12-13 (token ids).
    let token_ids = matches!(elem_type, 2..=7 | 12 | 13);
    let axes = match (dims.len(), token_ids) {
        // Token ids [batch, time]: only an Embedding (a Gather of a table) can read them.
        (2, true) => vec![Axis::In(0), Axis::In(1)],
        (3, _) => match dims[2] {
            Some(f) if f > 0 && usize::try_from(f).is_ok_and(|f| f <= MAX_TENSOR_ELEMENTS) => {
                vec![
                    Axis::In(0),
                    Axis::In(1),
                    Axis::Feat(usize::try_from(f).unwrap_or_default()),
                ]
            }
            other => {
                return Err((
                    input_loc(),
                    format!(
                        "has feature size {other:?} (last axis); a fixed positive size is needed"
                    ),
                ))
            }
        },
        (rank, _) => {
            return Err((
                input_loc(),
                format!(
                    "has rank {rank} ({dims:?}); the importer needs [batch, time, features] (or [time, batch, features]) with a declared feature size"
                ),
            ))
        }
    };
    let features = match axes.last() {
        Some(Axis::Feat(f)) => *f,
        _ => 0,
    };
    let static_size = |d: Option<i64>| d.and_then(|v| u64::try_from(v).ok()).filter(|&v| v > 0);
    let mut interp = Interp {
        graph,
        opset,
        values: HashMap::new(),
        layers: Vec::new(),
        roles: None,
        static_sizes: [static_size(dims[0]), static_size(dims[1])],
        notes: Vec::new(),
        location: String::new(),
        computed: 0,
        unrolled: HashMap::new(),
        token_ids,
    };
    interp.values.insert(
        input.name(),
        Rc::new(Value::Act(Act {
            axes,
            origin: 0,
            reversed: None,
            seq_of: None,
            last_of: None,
            dense: None,
            features_squeezed: false,
        })),
    );
    for &k in &graph.order {
        let node = &graph.nodes[k];
        interp.location = node_location(k, node);
        let outputs = interp
            .eval(node)
            .map_err(|msg| (Some(node_location(k, node)), msg))?;
        // Constants computed by the graph (folded transposes, concatenations, ...) count
        // against one budget, so a long chain of copies cannot exhaust memory.
        for value in &outputs {
            let reused = node
                .input
                .iter()
                .filter_map(|i| interp.values.get(i.as_str()))
                .any(|v| Rc::ptr_eq(v, value));
            if let (Value::Floats(f), false) = (&**value, reused) {
                interp.computed = interp.computed.saturating_add(f.data.len());
                if interp.computed > MAX_COMPUTED_ELEMENTS {
                    return Err((
                        Some(node_location(k, node)),
                        format!("computes constants beyond the limit of {MAX_COMPUTED_ELEMENTS} values for the whole graph"),
                    ));
                }
            }
        }
        // Outputs a node does not compute (more names than results) stay unset: reading one
        // is an error ("has no value"); none of the supported ops leaves one out.
        for (name, value) in node.output.iter().zip(outputs) {
            if !name.is_empty() {
                interp.values.insert(name.as_str(), value);
            }
        }
    }
    let output = graph.output.name();
    let out_loc = || Some(format!("graph output '{output}'"));
    let value = match interp.values.get(output) {
        Some(v) => v.clone(),
        None => return Err((out_loc(), "has no value".into())),
    };
    let embedded = matches!(interp.layers.first(), Some(Layer::Embedding { .. }));
    if elem_type != 1 && !(token_ids && embedded) {
        return Err((
            input_loc(),
            format!(
                "has element type {}; the runtime reads float32 sequences",
                super::proto::tensor_proto::DataType::try_from(elem_type)
                    .map_or_else(|_| elem_type.to_string(), |d| d.as_str_name().to_string())
            ),
        ));
    }
    let time_major_input = interp.finish(&value).map_err(|msg| (out_loc(), msg))?;
    Ok(Outcome {
        layers: interp.layers,
        input_features: if embedded { 1 } else { features },
        time_major_input,
        notes: interp.notes,
    })
}

fn one(v: Value) -> R<Vec<Rc<Value>>> {
    Ok(vec![Rc::new(v)])
}

/// Normalises a possibly negative axis for a tensor of `rank` axes.
fn norm_axis(axis: i64, rank: usize) -> R<usize> {
    let r = i64::try_from(rank).map_err(|_| "rank too large".to_string())?;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(usize::try_from(a).unwrap_or_default())
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

/// ONNX `Slice` on an axis of known length `len`: the first kept index and how many are
/// kept, computed without listing them (a declared length can be huge). Clamping follows the
/// operator spec: starts to `[0, len]` (`[0, len-1]` for negative steps), ends to `[0, len]`
/// (`[-1, len-1]`).
fn slice_span(len: u64, start: i64, end: i64, step: i64) -> R<(i64, u64)> {
    if step == 0 {
        return Err("has a slice step of 0".into());
    }
    let n = i64::try_from(len).map_err(|_| "length too large".to_string())?;
    if n == 0 {
        return Ok((0, 0));
    }
    let fix = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    let (s, e) = (fix(start), fix(end));
    let (s, distance) = if step > 0 {
        let s = s.clamp(0, n);
        (s, e.clamp(0, n) - s)
    } else {
        let s = s.clamp(0, n - 1);
        (s, s - e.clamp(-1, n - 1))
    };
    let stride = step.unsigned_abs();
    let count = if distance <= 0 {
        0
    } else {
        distance.unsigned_abs().div_ceil(stride)
    };
    Ok((s, count))
}

/// The indices a `Slice` keeps of a short vector.
fn slice_indices(len: usize, start: i64, end: i64, step: i64) -> R<Vec<usize>> {
    let (first, count) = slice_span(len as u64, start, end, step)?;
    Ok((0..count)
        .map(|i| {
            let i = i64::try_from(i).unwrap_or_default();
            usize::try_from(first + i * step).unwrap_or_default()
        })
        .collect())
}

/// A run-time size as `k * in0^e[0] * in1^e[1]`, for matching `Reshape` targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size {
    k: u64,
    e: [u8; 2],
}

impl Size {
    const ONE: Size = Size { k: 1, e: [0, 0] };

    fn of(axis: Axis) -> Size {
        match axis {
            Axis::In(s) => {
                let mut e = [0, 0];
                e[usize::from(s)] = 1;
                Size { k: 1, e }
            }
            Axis::Dir { n, .. } | Axis::Feat(n) => Size {
                k: n as u64,
                e: [0, 0],
            },
            Axis::One => Size::ONE,
        }
    }

    fn mul(self, o: Size) -> R<Size> {
        Ok(Size {
            k: self
                .k
                .checked_mul(o.k)
                .ok_or_else(|| "a size overflows".to_string())?,
            e: [
                self.e[0].saturating_add(o.e[0]),
                self.e[1].saturating_add(o.e[1]),
            ],
        })
    }

    fn div(self, o: Size) -> Option<Size> {
        if o.k == 0 || !self.k.is_multiple_of(o.k) || self.e[0] < o.e[0] || self.e[1] < o.e[1] {
            return None;
        }
        Some(Size {
            k: self.k / o.k,
            e: [self.e[0] - o.e[0], self.e[1] - o.e[1]],
        })
    }

    fn eval(self, statics: [Option<u64>; 2]) -> Option<u64> {
        let mut v = self.k;
        for (s, &e) in self.e.iter().enumerate() {
            for _ in 0..e {
                v = v.checked_mul(statics[s]?)?;
            }
        }
        Some(v)
    }
}

impl<'g> Interp<'g> {
    fn describe_axis(&self, a: Axis) -> String {
        match a {
            Axis::In(s) => match self.roles {
                Some(r) if r.time == s => "time".into(),
                Some(_) => "batch".into(),
                None => format!("input axis {s}"),
            },
            Axis::Dir { n, .. } => format!("directions={n}"),
            Axis::Feat(n) => format!("features={n}"),
            Axis::One => "1".into(),
        }
    }

    fn describe_act(&self, act: &Act) -> String {
        let axes: Vec<String> = act.axes.iter().map(|&a| self.describe_axis(a)).collect();
        format!("the activations [{}]", axes.join(", "))
    }

    fn describe(&self, v: &Value) -> String {
        match v {
            Value::Floats(f) => format!("a constant float tensor of shape {:?}", f.shape),
            Value::Ints(i) if i.scalar => "an integer scalar".into(),
            Value::Ints(i) => format!("an integer vector of length {}", i.v.len()),
            Value::Splat(x, _) => format!("a run-time sized tensor filled with {x}"),
            Value::Step(st) => match &st.kind {
                StepKind::Input { k, .. } => format!("time step {k} of a projected sequence"),
                StepKind::State { k, .. } => format!("the state after {k} unrolled steps"),
                StepKind::Pre(p) => format!("a partial sum of unrolled step {}", p.k),
            },
            Value::Act(a) => self.describe_act(a),
            Value::Stack { parts, .. } => {
                format!("the final states of {} layers stacked (h_n)", parts.len())
            }
            Value::Refused(_) => "an unsupported value".into(),
        }
    }

    /// Input `k` of `node`, `None` when absent (optional inputs are empty names).
    fn get(&mut self, node: &NodeProto, k: usize) -> R<Option<Rc<Value>>> {
        let Some(name) = node.input.get(k).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let value = if let Some(v) = self.values.get(name.as_str()) {
            v.clone()
        } else if let Some((&key, t)) = self.graph.initializers.get_key_value(name.as_str()) {
            let v = Rc::new(
                match decode(t).map_err(|e| format!("initializer '{name}' {e}"))? {
                    Constant::Floats(f) => Value::Floats(f),
                    Constant::Ints(i) => Value::Ints(i),
                },
            );
            self.values.insert(key, v.clone());
            v
        } else {
            return Err(format!("reads '{name}', which has no value"));
        };
        if let Value::Refused(msg) = &*value {
            return Err(format!("reads '{name}': {msg}"));
        }
        Ok(Some(value))
    }

    fn need(&mut self, node: &NodeProto, k: usize, what: &str) -> R<Rc<Value>> {
        self.get(node, k)?
            .ok_or_else(|| format!("has no {what} (input {k})"))
    }

    fn known_ints(&mut self, node: &NodeProto, k: usize, what: &str) -> R<Option<Vec<i64>>> {
        match self.get(node, k)? {
            None => Ok(None),
            Some(v) => match &*v {
                Value::Ints(i) => i.all_known().map(Some).ok_or_else(|| {
                    format!("needs constant {what}, but they depend on run-time sizes")
                }),
                other => Err(format!(
                    "needs constant integer {what}, but input {k} is {}",
                    self.describe(other)
                )),
            },
        }
    }

    /// Integer `axes`/`starts`/... from input `k` (newer opsets) or attribute `name`.
    fn ints_input_or_attr(
        &mut self,
        node: &NodeProto,
        k: usize,
        name: &str,
    ) -> R<Option<Vec<i64>>> {
        match self.known_ints(node, k, name)? {
            Some(v) => Ok(Some(v)),
            None => attr_ints(node, name),
        }
    }

    fn eval(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let domain = node.domain();
        if !(domain.is_empty() || domain == "ai.onnx") {
            return Err(format!(
                "is in operator domain '{domain}'; only standard ONNX operators are supported"
            ));
        }
        match node.op_type() {
            "Identity" => Ok(vec![self.need(node, 0, "input")?]),
            "Dropout" => self.dropout(node),
            "Cast" => self.cast(node),
            "Constant" => self.constant(node),
            "Shape" => self.shape(node),
            "Gather" => self.gather(node),
            "Unsqueeze" => self.unsqueeze(node),
            "Squeeze" => self.squeeze(node),
            "Concat" => self.concat(node),
            "Slice" => self.slice(node),
            "Reshape" => self.reshape(node),
            "Transpose" => self.transpose(node),
            "Expand" => self.expand(node),
            "ConstantOfShape" => self.constant_of_shape(node),
            "Add" | "Sub" | "Mul" | "Div" => self.arith(node),
            "MatMul" => self.matmul(node),
            "Gemm" => self.gemm(node),
            "Relu" | "Tanh" | "Sigmoid" | "Softmax" | "HardSigmoid" => self.activation(node),
            "ReduceSum" | "ReduceMean" | "ReduceProd" => self.reduce(node),
            "RNN" | "LSTM" | "GRU" => self.recurrent(node),
            "Loop" | "Scan" => Err(LOOP_REFUSAL.into()),
            "Tile" => self.tile(node),
            other => Err(format!(
                "op {other} is not supported; supported are RNN, LSTM, GRU, MatMul/Gemm (+ Add bias), Relu, Tanh, Sigmoid, HardSigmoid, Softmax, ReduceSum/ReduceMean/ReduceProd (direction merges), Gather of a table (Embedding), Sub/Div by constants (Normalization), Tile (RepeatVector) and the layout glue Transpose, Reshape, Squeeze, Unsqueeze, Slice, Gather, Concat, Shape, Constant, ConstantOfShape, Expand, Identity, Cast, Dropout"
            )),
        }
    }

    fn dropout(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let x = self.need(node, 0, "input")?;
        // Opset 12+: `training_mode` input; Dropout is the identity unless it is true.
        if let Some(training) = self.known_ints(node, 2, "training_mode")? {
            if training.iter().any(|&t| t != 0) {
                return Err("runs in training mode (training_mode=true); only inference graphs are supported".into());
            }
        }
        if matches!(&*x, Value::Act(_)) {
            self.note("Dropout is the identity at inference and was dropped");
        }
        Ok(vec![
            x,
            Rc::new(Value::Refused(
                "the Dropout mask output is not supported".into(),
            )),
        ])
    }

    fn note(&mut self, note: &str) {
        if !self.notes.iter().any(|n| n == note) {
            self.notes.push(note.to_string());
        }
    }

    fn cast(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let x = self.need(node, 0, "input")?;
        let to = attr_int(node, "to")?.ok_or("has no 'to' attribute")?;
        // TensorProto.DataType: FLOAT 1, DOUBLE 11, FLOAT16 10, BFLOAT16 16; integers and BOOL.
        let to_float = matches!(to, 1 | 10 | 11 | 16);
        let to_int = matches!(to, 2..=7 | 9 | 12 | 13);
        if !to_float && !to_int {
            return Err(format!(
                "casts to element type {to}, which is not a number type the importer tracks"
            ));
        }
        match &*x {
            Value::Act(_) if to == 1 => Ok(vec![x]),
            // Token ids change integer width before the Embedding's Gather.
            Value::Act(a) if to_int && self.is_token_ids(a) => Ok(vec![x]),
            Value::Act(a) => Err(format!(
                "casts {} to element type {to}; the runtime computes in float32",
                self.describe_act(a)
            )),
            Value::Splat(..) | Value::Step(_) => Ok(vec![x]),
            Value::Floats(_) if to_float => Ok(vec![x]),
            Value::Floats(f) => {
                if f.shape.len() > 1 {
                    return Err(format!(
                        "casts a float tensor of shape {:?} to integers",
                        f.shape
                    ));
                }
                #[allow(clippy::cast_possible_truncation)] // ONNX Cast truncates toward zero
                let v = f.data.iter().map(|&x| x as i64).collect();
                one(Value::Ints(Ints::known(v, f.shape.is_empty())))
            }
            Value::Ints(i) if to_int => {
                if to == 9 {
                    let v = i.v.iter().map(|d| match d {
                        Dim::Known(v) => Dim::Known(i64::from(*v != 0)),
                        s => *s,
                    });
                    return one(Value::Ints(Ints {
                        scalar: i.scalar,
                        v: v.collect(),
                    }));
                }
                Ok(vec![x])
            }
            Value::Ints(i) => {
                let v = i.all_known().ok_or("casts run-time sizes to float")?;
                #[allow(clippy::cast_precision_loss)] // shape values are small
                let data = v.iter().map(|&x| x as f32).collect();
                one(Value::Floats(Floats {
                    shape: if i.scalar { vec![] } else { vec![v.len()] },
                    data,
                }))
            }
            Value::Stack { .. } => Err(STACK_USE.into()),
            Value::Refused(m) => Err(m.clone()),
        }
    }

    fn constant(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        if let Some(t) = attr_tensor(node, "value")? {
            return one(match decode(t).map_err(|e| format!("value {e}"))? {
                Constant::Floats(f) => Value::Floats(f),
                Constant::Ints(i) => Value::Ints(i),
            });
        }
        if let Some(f) = attr_float(node, "value_float")? {
            return one(Value::Floats(Floats {
                shape: vec![],
                data: vec![f],
            }));
        }
        if let Some(f) = super::tensor::attr_floats(node, "value_floats")? {
            return one(Value::Floats(Floats {
                shape: vec![f.len()],
                data: f,
            }));
        }
        if let Some(i) = attr_int(node, "value_int")? {
            return one(Value::Ints(Ints::known(vec![i], true)));
        }
        if let Some(i) = attr_ints(node, "value_ints")? {
            return one(Value::Ints(Ints::known(i, false)));
        }
        Err("has no value, value_float(s) or value_int(s) attribute (sparse and string constants are not supported)".into())
    }

    fn shape(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let x = self.need(node, 0, "input")?;
        let dims: Vec<Dim> = match &*x {
            Value::Act(a) => a
                .axes
                .iter()
                .map(|&ax| match ax {
                    Axis::In(s) => Dim::Sym(s),
                    Axis::Dir { n, .. } | Axis::Feat(n) => Dim::Known(n as i64),
                    Axis::One => Dim::Known(1),
                })
                .collect(),
            Value::Floats(f) => f.shape.iter().map(|&d| Dim::Known(d as i64)).collect(),
            Value::Ints(i) if i.scalar => vec![],
            Value::Ints(i) => vec![Dim::Known(i.v.len() as i64)],
            other => {
                return Err(format!(
                    "takes the shape of {}, which the importer does not track",
                    self.describe(other)
                ))
            }
        };
        // Opset 15: optional `start`/`end` select a range of axes, clamped to the rank.
        let rank = dims.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank);
        let start = clamp(attr_int(node, "start")?.unwrap_or(0));
        let end = clamp(attr_int(node, "end")?.unwrap_or(rank));
        let picked = if start < end {
            dims[usize::try_from(start).unwrap_or_default()
                ..usize::try_from(end).unwrap_or_default()]
                .to_vec()
        } else {
            vec![]
        };
        one(Value::Ints(Ints {
            scalar: false,
            v: picked,
        }))
    }

    fn gather(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let data = self.need(node, 0, "data")?;
        let indices = self.need(node, 1, "indices")?;
        let axis = attr_int(node, "axis")?.unwrap_or(0);
        match (&*data, &*indices) {
            (Value::Floats(table), Value::Act(a)) => {
                let (table, a) = (table.clone(), a.clone());
                one(Value::Act(self.embedding(table, a, axis)?))
            }
            (Value::Ints(d), Value::Ints(ix)) => {
                if d.scalar || norm_axis(axis, 1)? != 0 {
                    return Err("gathers from an integer scalar".into());
                }
                let ix = ix_known(ix)?;
                let len = d.v.len() as i64;
                let picked = ix
                    .0
                    .iter()
                    .map(|&i| {
                        let j = if i < 0 { i + len } else { i };
                        usize::try_from(j)
                            .ok()
                            .and_then(|j| d.v.get(j).copied())
                            .ok_or_else(|| format!("index {i} is out of range for length {len}"))
                    })
                    .collect::<R<Vec<Dim>>>()?;
                one(Value::Ints(Ints { scalar: ix.1, v: picked }))
            }
            (Value::Act(a), Value::Ints(ix)) => {
                let (ix, scalar) = ix_known(ix)?;
                let [index] = ix.as_slice() else {
                    return Err(format!("gathers {} entries of {}; only one index is supported", ix.len(), self.describe_act(a)));
                };
                let axis = norm_axis(axis, a.axes.len())?;
                let a = a.clone();
                one(Value::Act(self.pick(a, axis, *index, !scalar)?))
            }
            (Value::Splat(v, _), Value::Ints(_)) => one(Value::Splat(*v, None)),
            (Value::Stack { axis: stacked, parts }, Value::Ints(ix)) => {
                let (ix, scalar) = ix_known(ix)?;
                let rank = parts.first().map_or(0, |p| p.axes.len());
                match ix.as_slice() {
                    [index] if norm_axis(axis, rank)? == *stacked => {
                        let (part, inner) = stack_entry(parts, *stacked, *index)?;
                        let part = part.clone();
                        one(Value::Act(self.pick(part, *stacked, inner, !scalar)?))
                    }
                    _ => Err(STACK_USE.into()),
                }
            }
            (d, i) => Err(format!(
                "gathers from {} at {}; supported: the last time step of a layer's output, or entries of a shape",
                self.describe(d),
                self.describe(i)
            )),
        }
    }

    /// Picks element `index` of `axis` (Gather, or a one-element Slice with `keep`).
    fn pick(&mut self, mut act: Act, axis: usize, index: i64, keep: bool) -> R<Act> {
        let desc = self.describe_act(&act);
        match act.axes[axis] {
            Axis::One | Axis::Dir { n: 1, .. } => {
                if index != 0 && index != -1 {
                    return Err(format!("selects index {index} of a size-1 axis of {desc}"));
                }
            }
            Axis::Dir { n, layer } => {
                return Err(format!(
                    "selects direction {index} of {n} of the bidirectional layer from {}; the runtime merges both directions (concat via Transpose+Reshape, or ReduceSum/ReduceMean/ReduceProd)",
                    self.layer_location(layer)
                ))
            }
            Axis::Feat(_) => {
                return Err(format!("selects feature {index} of {desc}, which the runtime cannot do"))
            }
            Axis::In(s) => {
                let Some(roles) = self.roles else {
                    return Err(format!("selects entry {index} of input axis {s} before any recurrent node; the importer cannot tell batch from time there"));
                };
                if s == roles.batch {
                    return Err(format!("selects batch item {index} of {desc}; the runtime keeps the whole batch"));
                }
                let Some(k) = act.seq_of else {
                    return Err(format!("selects time step {index} of the graph input; the runtime reads whole sequences"));
                };
                if self.directions(k) != 1 {
                    return Err(format!(
                        "selects time step {index} of the output of the bidirectional layer from {}: y[:, {index}] holds the backward direction after one step, which is not Keras' return_sequences=False output; use the final states Y_h (h_n) instead",
                        self.layer_location(k)
                    ));
                }
                let last = if act.reversed.is_some() { 0 } else { -1 };
                let static_last = self.static_sizes[usize::from(s)]
                    .and_then(|t| i64::try_from(t).ok())
                    .map(|t| if last == 0 { 0 } else { t - 1 });
                if index != last && Some(index) != static_last {
                    return Err(format!(
                        "selects time step {index} of the output of {}; only its last step (index {last}: the layer's final output, Keras return_sequences=False) is supported",
                        self.layer_location(k)
                    ));
                }
                act.seq_of = None;
                act.reversed = None;
                act.last_of = Some(k);
                if keep {
                    act.axes[axis] = Axis::One;
                } else {
                    act.axes.remove(axis);
                }
                return Ok(act);
            }
        }
        if !keep {
            act.axes.remove(axis);
        }
        Ok(act)
    }

    /// `Concat` of final states (`Y_h` of successive layers) along their direction axis.
    fn stack(&self, parts: &[Rc<Value>], axis: i64) -> Option<Value> {
        let acts: Vec<Act> = parts
            .iter()
            .map(|p| match &**p {
                Value::Act(a) => Some(a.clone()),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let rank = acts.first()?.axes.len();
        let axis = norm_axis(axis, rank).ok()?;
        let fits = acts.iter().all(|a| {
            a.last_of.is_some()
                && a.axes.len() == rank
                && matches!(a.axes[axis], Axis::Dir { .. })
                && (0..rank).all(|k| k == axis || a.axes[k] == acts[0].axes[k] || matches!((a.axes[k], acts[0].axes[k]), (Axis::Feat(x), Axis::Feat(y)) if x == y))
        });
        fits.then_some(Value::Stack { axis, parts: acts })
    }

    fn layer_location(&self, k: usize) -> String {
        match self.layers.get(k) {
            Some(
                Layer::Recurrent { location, .. }
                | Layer::Dense { location, .. }
                | Layer::Embedding { location, .. }
                | Layer::Normalization { location, .. }
                | Layer::RepeatVector { location, .. },
            ) => location.clone(),
            None => format!("layer {k}"),
        }
    }

    fn directions(&self, k: usize) -> usize {
        match self.layers.get(k) {
            Some(Layer::Recurrent { directions, .. }) => directions.len(),
            _ => 1,
        }
    }

    fn unsqueeze(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let x = self.need(node, 0, "data")?;
        let axes = self
            .ints_input_or_attr(node, 1, "axes")?
            .ok_or("has no axes")?;
        match &*x {
            Value::Ints(i) if i.scalar && (axes == [0] || axes == [-1]) => one(Value::Ints(Ints {
                scalar: false,
                v: i.v.clone(),
            })),
            Value::Ints(_) => Err("unsqueezes an integer vector to rank 2".into()),
            Value::Splat(v, shape) => {
                let shape = match shape {
                    Some(d) if d.len() + axes.len() <= MAX_RANK => {
                        let mut d = d.clone();
                        for p in sorted_axes(&axes, d.len() + axes.len())? {
                            d.insert(p, Dim::Known(1));
                        }
                        Some(d)
                    }
                    _ => None,
                };
                one(Value::Splat(*v, shape))
            }
            Value::Step(st) => {
                let mut st = st.clone();
                let rank = st.axes.len() + axes.len();
                if rank > MAX_RANK {
                    return Err(format!("makes a tensor of rank {rank}"));
                }
                for p in sorted_axes(&axes, rank)? {
                    st.axes.insert(p, Axis::One);
                }
                one(Value::Step(st))
            }
            Value::Floats(f) => {
                let rank = f.shape.len() + axes.len();
                if rank > MAX_RANK {
                    return Err(format!("makes a tensor of rank {rank}"));
                }
                let mut shape = f.shape.clone();
                for p in sorted_axes(&axes, rank)? {
                    shape.insert(p, 1);
                }
                one(Value::Floats(Floats {
                    shape,
                    data: f.data.clone(),
                }))
            }
            Value::Act(a) => {
                let mut a = a.clone();
                let rank = a.axes.len() + axes.len();
                if rank > MAX_RANK {
                    return Err(format!("makes a tensor of rank {rank}"));
                }
                for p in sorted_axes(&axes, rank)? {
                    a.axes.insert(p, Axis::One);
                }
                one(Value::Act(a))
            }
            Value::Stack { .. } => Err(STACK_USE.into()),
            Value::Refused(m) => Err(m.clone()),
        }
    }

    fn squeeze(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let x = self.need(node, 0, "data")?;
        let axes = self.ints_input_or_attr(node, 1, "axes")?;
        match &*x {
            Value::Ints(i) if !i.scalar && i.v.len() == 1 => one(Value::Ints(Ints {
                scalar: true,
                v: i.v.clone(),
            })),
            Value::Ints(i) if i.scalar => Ok(vec![x.clone()]),
            Value::Ints(_) => Err("squeezes an integer vector longer than 1".into()),
            Value::Splat(v, shape) => {
                let shape = shape.as_ref().and_then(|d| {
                    let drop: Vec<usize> = match &axes {
                        Some(ax) => sorted_axes(ax, d.len()).ok()?,
                        None => (0..d.len()).filter(|&i| d[i] == Dim::Known(1)).collect(),
                    };
                    drop.iter().all(|&i| d[i] == Dim::Known(1)).then(|| {
                        (0..d.len())
                            .filter(|i| !drop.contains(i))
                            .map(|i| d[i])
                            .collect()
                    })
                });
                one(Value::Splat(*v, shape))
            }
            Value::Step(st) => {
                let mut st = st.clone();
                let drop = match &axes {
                    Some(ax) => sorted_axes(ax, st.axes.len())?,
                    None => (0..st.axes.len())
                        .filter(|&i| st.axes[i].is_unit())
                        .collect(),
                };
                if drop.iter().any(|&i| !st.axes[i].is_unit()) {
                    return Err("squeezes an axis of an unrolled step that is not of size 1".into());
                }
                let mut k = 0;
                st.axes.retain(|_| {
                    let keep = !drop.contains(&k);
                    k += 1;
                    keep
                });
                one(Value::Step(st))
            }
            Value::Floats(f) => {
                let rank = f.shape.len();
                let drop: Vec<usize> = match &axes {
                    Some(ax) => sorted_axes(ax, rank)?,
                    None => (0..rank).filter(|&i| f.shape[i] == 1).collect(),
                };
                if drop.iter().any(|&i| f.shape[i] != 1) {
                    return Err(format!(
                        "squeezes an axis of size > 1 from shape {:?}",
                        f.shape
                    ));
                }
                let shape = (0..rank)
                    .filter(|i| !drop.contains(i))
                    .map(|i| f.shape[i])
                    .collect();
                one(Value::Floats(Floats {
                    shape,
                    data: f.data.clone(),
                }))
            }
            Value::Act(a) => {
                let mut a = a.clone();
                let rank = a.axes.len();
                let drop: Vec<usize> = match &axes {
                    Some(ax) => sorted_axes(ax, rank)?,
                    None => (0..rank)
                        .filter(|&i| a.axes[i].is_unit() || a.axes[i] == Axis::Feat(1))
                        .collect(),
                };
                for &i in &drop {
                    match a.axes[i] {
                        ax if ax.is_unit() => {}
                        Axis::Feat(1) => a.features_squeezed = true,
                        Axis::In(_) => {
                            return Err(format!(
                                "squeezes axis {i} ({}) of {}, whose size is only known at run time; the model must work for any batch size and sequence length",
                                self.describe_axis(a.axes[i]),
                                self.describe_act(&a)
                            ))
                        }
                        other => {
                            return Err(format!(
                                "squeezes axis {i} ({}) of {}, which is not of size 1",
                                self.describe_axis(other),
                                self.describe_act(&a)
                            ))
                        }
                    }
                }
                let mut k = 0;
                a.axes.retain(|_| {
                    let keep = !drop.contains(&k);
                    k += 1;
                    keep
                });
                one(Value::Act(a))
            }
            Value::Stack { .. } => Err(STACK_USE.into()),
            Value::Refused(m) => Err(m.clone()),
        }
    }

    fn concat(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let axis = attr_int(node, "axis")?.ok_or("has no axis attribute")?;
        let mut parts = Vec::new();
        for k in 0..node.input.len() {
            if let Some(v) = self.get(node, k)? {
                parts.push(v);
            }
        }
        if let Some(sequence) = self.step_concat(&parts, axis)? {
            return one(Value::Act(sequence));
        }
        if let [only] = parts.as_slice() {
            return Ok(vec![only.clone()]);
        }
        if parts.iter().all(|p| matches!(&**p, Value::Ints(_))) {
            let mut v = Vec::new();
            for p in &parts {
                if let Value::Ints(i) = &**p {
                    if i.scalar {
                        return Err("concatenates integer scalars".into());
                    }
                    v.extend_from_slice(&i.v);
                }
                if v.len() > MAX_INT_VECTOR {
                    return Err(format!(
                        "builds an integer vector of more than {MAX_INT_VECTOR} elements"
                    ));
                }
            }
            norm_axis(axis, 1)?;
            return one(Value::Ints(Ints { scalar: false, v }));
        }
        if parts.iter().all(|p| matches!(&**p, Value::Floats(_))) {
            let floats: Vec<&Floats> = parts
                .iter()
                .filter_map(|p| match &**p {
                    Value::Floats(f) => Some(f),
                    _ => None,
                })
                .collect();
            return one(Value::Floats(concat_floats(&floats, axis)?));
        }
        if let Some(stack) = self.stack(&parts, axis) {
            return one(stack);
        }
        if parts.iter().any(|p| matches!(&**p, Value::Act(_))) {
            return Err("joins the activations with another tensor: a branching graph or a merge of two outputs, which the runtime does not support (supported: one chain of layers from the input to the output)".into());
        }
        Err("concatenates tensors of run-time shape".into())
    }

    fn slice(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let x = self.need(node, 0, "data")?;
        // Opset 10+ takes starts/ends/axes/steps as inputs; opset 1-9 as attributes.
        let (starts, ends, axes, steps) = if self.opset >= 10 {
            (
                self.known_ints(node, 1, "starts")?.ok_or("has no starts")?,
                self.known_ints(node, 2, "ends")?.ok_or("has no ends")?,
                self.known_ints(node, 3, "axes")?,
                self.known_ints(node, 4, "steps")?,
            )
        } else {
            (
                attr_ints(node, "starts")?.ok_or("has no starts")?,
                attr_ints(node, "ends")?.ok_or("has no ends")?,
                attr_ints(node, "axes")?,
                None,
            )
        };
        let n = starts.len();
        let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; n]);
        if ends.len() != n || axes.len() != n || steps.len() != n {
            return Err("has starts, ends, axes and steps of different lengths".into());
        }
        match &*x {
            Value::Splat(v, shape) => {
                // Track the shape through whole-axis slices and slices of known sizes.
                let mut shape = shape.clone();
                for k in 0..n {
                    shape = shape.and_then(|mut d| {
                        let axis = norm_axis(axes[k], d.len()).ok()?;
                        d[axis] = match d[axis] {
                            Dim::Known(len) => {
                                let (_, count) = slice_span(
                                    u64::try_from(len).ok()?,
                                    starts[k],
                                    ends[k],
                                    steps[k],
                                )
                                .ok()?;
                                Dim::Known(i64::try_from(count).ok()?)
                            }
                            sym => {
                                let whole = steps[k] == 1
                                    && (starts[k] == 0 || starts[k] <= -OPEN_BOUND)
                                    && ends[k] >= OPEN_BOUND;
                                if !whole {
                                    return None;
                                }
                                sym
                            }
                        };
                        Some(d)
                    });
                }
                one(Value::Splat(*v, shape))
            }
            Value::Act(a) if n == 1 => {
                let axis = norm_axis(axes[0], a.axes.len())?;
                match self.step_input(a, axis, starts[0], ends[0], steps[0])? {
                    Some(step) => one(Value::Step(step)),
                    None => {
                        let a = a.clone();
                        one(Value::Act(
                            self.slice_act(a, axis, starts[0], ends[0], steps[0])?,
                        ))
                    }
                }
            }
            Value::Ints(i) if !i.scalar => {
                let mut v = i.v.clone();
                for k in 0..n {
                    norm_axis(axes[k], 1)?;
                    let idx = slice_indices(v.len(), starts[k], ends[k], steps[k])?;
                    v = idx.into_iter().map(|j| v[j]).collect();
                }
                one(Value::Ints(Ints { scalar: false, v }))
            }
            Value::Act(a) => {
                let mut a = a.clone();
                for k in 0..n {
                    let axis = norm_axis(axes[k], a.axes.len())?;
                    a = self.slice_act(a, axis, starts[k], ends[k], steps[k])?;
                }
                one(Value::Act(a))
            }
            other => Err(format!(
                "slices {}, which is not supported",
                self.describe(other)
            )),
        }
    }

    fn slice_act(&mut self, mut act: Act, axis: usize, start: i64, end: i64, step: i64) -> R<Act> {
        let ax = act.axes[axis];
        let known_len = match ax {
            Axis::In(s) => self.static_sizes[usize::from(s)],
            Axis::Dir { n, .. } | Axis::Feat(n) => Some(n as u64),
            Axis::One => Some(1),
        };
        #[derive(PartialEq)]
        enum Kind {
            All,
            Reversed,
            Last,
            Other,
        }
        let kind = match known_len {
            Some(len) => {
                let last = i64::try_from(len).unwrap_or(i64::MAX) - 1;
                match slice_span(len, start, end, step)? {
                    (0, c) if c == len && step == 1 => Kind::All,
                    (f, c) if c == len && step == -1 && f == last => Kind::Reversed,
                    (f, 1) if f == last => Kind::Last,
                    _ => Kind::Other,
                }
            }
            None => {
                let from_first = start == 0 || start <= -OPEN_BOUND;
                let to_end = end >= OPEN_BOUND;
                let from_last = start == -1 || start >= OPEN_BOUND;
                let to_first = end <= -OPEN_BOUND;
                if step == 1 && from_first && to_end {
                    Kind::All
                } else if step == -1 && from_last && to_first {
                    Kind::Reversed
                } else if (step > 0 && start == -1 && to_end)
                    || (step < 0 && from_last && end == -2)
                {
                    Kind::Last
                } else {
                    Kind::Other
                }
            }
        };
        match (ax, kind) {
            (_, Kind::All) => Ok(act),
            // One element of a size-1 axis, in either direction: nothing changes.
            (Axis::One | Axis::Dir { n: 1, .. } | Axis::Feat(1), Kind::Reversed | Kind::Last) => {
                Ok(act)
            }
            (Axis::In(s), Kind::Reversed) => {
                if let Some(r) = self.roles {
                    if r.batch == s {
                        return Err("reverses the batch axis".into());
                    }
                }
                // Reversing time twice restores it: `x[::-1]` before a forward layer is Keras'
                // go_backwards.
                act.reversed = match act.reversed {
                    Some(_) => None,
                    None => Some(s),
                };
                Ok(act)
            }
            (Axis::In(_), Kind::Last) => {
                let index = if act.reversed.is_some() { 0 } else { -1 };
                if act.reversed.is_some() {
                    return Err("takes the last step of a time-reversed sequence".into());
                }
                self.pick(act, axis, index, true)
            }
            (Axis::In(_), _) => Err(format!(
                "takes steps {start}..{end} (step {step}) of {}; only the whole axis, its reversal x[::-1] (go_backwards), the last step, and single steps [k, k+1) of a Dense projection of the sequence (an unrolled recurrence as PyTorch's dynamo exporter writes nn.RNN) are supported",
                self.describe_act(&act)
            )),
            (other, _) => Err(format!(
                "takes part of axis {axis} ({}) of {}; only whole axes are supported there",
                self.describe_axis(other),
                self.describe_act(&act)
            )),
        }
    }

    fn reshape(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let x = self.need(node, 0, "data")?;
        let target = match self.get(node, 1)? {
            Some(v) => match &*v {
                Value::Ints(i) if !i.scalar => i.clone(),
                other => {
                    return Err(format!(
                        "has a target shape that is {}",
                        self.describe(other)
                    ))
                }
            },
            // Opset 1-4: the shape attribute.
            None => Ints::known(
                attr_ints(node, "shape")?.ok_or("has no target shape")?,
                false,
            ),
        };
        let allowzero = attr_int(node, "allowzero")?.unwrap_or(0) != 0;
        if target.v.len() > MAX_RANK {
            return Err(format!(
                "reshapes to rank {}, above the supported {MAX_RANK}",
                target.v.len()
            ));
        }
        match &*x {
            Value::Splat(v, _) => {
                let fixed = target
                    .v
                    .iter()
                    .all(|d| !matches!(d, Dim::Known(i) if *i <= 0));
                one(Value::Splat(*v, fixed.then(|| target.v.clone())))
            }
            Value::Ints(i) => {
                let t = target
                    .all_known()
                    .ok_or("reshapes a shape to a run-time shape")?;
                match t.as_slice() {
                    [] if i.v.len() == 1 => one(Value::Ints(Ints {
                        scalar: true,
                        v: i.v.clone(),
                    })),
                    [-1] => one(Value::Ints(Ints {
                        scalar: false,
                        v: i.v.clone(),
                    })),
                    [n] if usize::try_from(*n).ok() == Some(i.v.len()) => one(Value::Ints(Ints {
                        scalar: false,
                        v: i.v.clone(),
                    })),
                    _ => Err(format!("reshapes an integer vector to {t:?}")),
                }
            }
            Value::Floats(f) => {
                let t = target
                    .all_known()
                    .ok_or("reshapes a constant to a run-time shape")?;
                one(Value::Floats(reshape_floats(f, &t, allowzero)?))
            }
            Value::Act(a) => {
                let a = a.clone();
                one(Value::Act(self.reshape_act(a, &target, allowzero)?))
            }
            Value::Step(_) => match self.state_to_act(&x)? {
                Some(a) => one(Value::Act(self.reshape_act(a, &target, allowzero)?)),
                None => Err("reshapes one step of an unrolled recurrence".into()),
            },
            Value::Stack { .. } => Err(STACK_USE.into()),
            Value::Refused(m) => Err(m.clone()),
        }
    }

    /// Matches a `Reshape` of the activations to a regrouping of whole axes: dropping or
    /// adding size-1 axes, and merging a direction axis with the features that follow it
    /// (`[.., 2, H] -> [.., 2H]`, Keras' concat merge). Anything that mixes batch, time and
    /// features is refused.
    fn reshape_act(&mut self, mut act: Act, target: &Ints, allowzero: bool) -> R<Act> {
        let desc = self.describe_act(&act);
        let sizes: Vec<Size> = act.axes.iter().map(|&a| Size::of(a)).collect();
        let mut total = Size::ONE;
        for s in &sizes {
            total = total.mul(*s)?;
        }
        let mut out: Vec<Option<Size>> = Vec::with_capacity(target.v.len());
        for (j, d) in target.v.iter().enumerate() {
            out.push(match *d {
                Dim::Known(0) if !allowzero => Some(*sizes.get(j).ok_or_else(|| {
                    format!("copies axis {j} (0 in the target shape), which {desc} does not have")
                })?),
                Dim::Known(-1) => None,
                Dim::Known(v) if v > 0 => Some(Size {
                    k: v as u64,
                    e: [0, 0],
                }),
                Dim::Known(v) => return Err(format!("has target dimension {v}")),
                Dim::Sym(s) => Some(Size::of(Axis::In(s))),
            });
        }
        if out.iter().filter(|s| s.is_none()).count() > 1 {
            return Err("has more than one -1 in the target shape".into());
        }
        let mut known = Size::ONE;
        for s in out.iter().flatten() {
            known = known.mul(*s)?;
        }
        let statics = self.static_sizes;
        let same = |a: Size, b: Size| {
            a == b || (a.eval(statics).is_some() && a.eval(statics) == b.eval(statics))
        };
        let out: Vec<Size> = match out.iter().position(Option::is_none) {
            Some(p) => {
                let inferred = total.div(known).ok_or_else(|| {
                    format!(
                        "reshapes {desc} to {:?}, which does not divide its size",
                        target.v
                    )
                })?;
                out.iter()
                    .enumerate()
                    .map(|(j, s)| {
                        if j == p {
                            inferred
                        } else {
                            s.unwrap_or(Size::ONE)
                        }
                    })
                    .collect()
            }
            None => out.into_iter().flatten().collect(),
        };
        let mut product = Size::ONE;
        for s in &out {
            product = product.mul(*s)?;
        }
        if !same(product, total) {
            return Err(format!(
                "reshapes {desc} to {:?}, a different number of elements",
                target.v
            ));
        }
        // Group input axes per output dimension, left to right.
        let mut groups: Vec<Vec<usize>> = Vec::with_capacity(out.len());
        let mut i = 0;
        for &t in &out {
            if same(t, Size::ONE) {
                if i < sizes.len() && same(sizes[i], Size::ONE) {
                    groups.push(vec![i]);
                    i += 1;
                } else {
                    groups.push(vec![]);
                }
                continue;
            }
            let mut g = Vec::new();
            let mut acc = Size::ONE;
            while i < sizes.len() {
                acc = acc.mul(sizes[i])?;
                g.push(i);
                i += 1;
                if same(acc, t) {
                    break;
                }
            }
            if !same(acc, t) {
                return Err(format!(
                    "reshapes {desc} to {:?}, which splits an axis",
                    target.v
                ));
            }
            groups.push(g);
        }
        let mut squeezed = false;
        for &a in &act.axes[i..] {
            match a {
                a if a.is_unit() => {}
                Axis::Feat(1) => squeezed = true,
                _ => {
                    return Err(format!(
                        "reshapes {desc} to {:?}, which drops an axis",
                        target.v
                    ))
                }
            }
        }
        let mut axes = Vec::with_capacity(groups.len());
        for g in groups {
            let mut members: Vec<Axis> = g
                .iter()
                .map(|&k| act.axes[k])
                .filter(|a| !a.is_unit())
                .collect();
            if members.len() > 1 && members.contains(&Axis::Feat(1)) {
                members.retain(|&a| a != Axis::Feat(1));
                squeezed = true;
            }
            axes.push(match members.as_slice() {
                [] => Axis::One,
                [a] => *a,
                [Axis::Dir { n: 2, layer }, Axis::Feat(h)] => {
                    self.set_merge(*layer, Merge::Concat)?;
                    Axis::Feat(2 * h)
                }
                [Axis::Feat(_), Axis::Dir { .. }] => {
                    return Err(format!(
                        "reshapes {desc} to {:?}, interleaving the two directions feature by feature; Keras' concat puts all forward features first ([.., directions, features] -> [.., 2*features])",
                        target.v
                    ))
                }
                many => {
                    let names: Vec<String> = many.iter().map(|&a| self.describe_axis(a)).collect();
                    return Err(format!(
                        "reshapes {desc} to {:?}, merging the axes ({}) into one, which the runtime cannot represent",
                        target.v,
                        names.join(", ")
                    ));
                }
            });
        }
        act.axes = axes;
        act.features_squeezed |= squeezed;
        Ok(act)
    }

    fn set_merge(&mut self, layer: usize, merge: Merge) -> R<()> {
        match self.layers.get_mut(layer) {
            Some(Layer::Recurrent {
                spec, directions, ..
            }) if directions.len() == 2 => {
                if spec.bidirectional.is_some_and(|m| m != merge) {
                    return Err("merges the two directions a second, different way".into());
                }
                spec.bidirectional = Some(merge);
                Ok(())
            }
            _ => Err("merges directions of a layer that has one".into()),
        }
    }

    fn transpose(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let x = self.need(node, 0, "data")?;
        let rank = match &*x {
            Value::Act(a) => a.axes.len(),
            Value::Floats(f) => f.shape.len(),
            Value::Splat(_, Some(d)) => d.len(),
            Value::Splat(_, None) | Value::Ints(_) => return Ok(vec![x]),
            Value::Step(_) => return Err("transposes one step of an unrolled recurrence".into()),
            Value::Stack { .. } => return Err(STACK_USE.into()),
            Value::Refused(m) => return Err(m.clone()),
        };
        // Default perm reverses the axes (operator spec).
        let perm = match attr_ints(node, "perm")? {
            Some(p) => p,
            None => (0..rank as i64).rev().collect(),
        };
        let mut seen = vec![false; rank];
        let mut p = Vec::with_capacity(rank);
        for &v in &perm {
            let u = usize::try_from(v).ok().filter(|&u| u < rank && !seen[u]);
            let u =
                u.ok_or_else(|| format!("has perm {perm:?}, not a permutation of {rank} axes"))?;
            seen[u] = true;
            p.push(u);
        }
        if p.len() != rank {
            return Err(format!(
                "has perm {perm:?}, not a permutation of {rank} axes"
            ));
        }
        match &*x {
            Value::Act(a) => {
                let mut a = a.clone();
                a.axes = p.iter().map(|&k| a.axes[k]).collect();
                one(Value::Act(a))
            }
            Value::Floats(f) => one(Value::Floats(transpose(f, &p))),
            Value::Splat(v, Some(d)) => {
                one(Value::Splat(*v, Some(p.iter().map(|&k| d[k]).collect())))
            }
            _ => Ok(vec![x]),
        }
    }

    fn expand(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let x = self.need(node, 0, "input")?;
        let shape = match &*self.need(node, 1, "shape")? {
            Value::Ints(i) if !i.scalar => Some(i.v.clone()),
            _ => None,
        };
        match &*x {
            // Broadcasting a single value gives the target shape (operator spec: the output
            // shape is the broadcast of both); a larger fill's shape is not tracked.
            Value::Splat(v, s) => {
                let single = s.as_ref().is_some_and(|d| d.iter().all(|&e| e == Dim::Known(1)));
                one(Value::Splat(*v, if single { shape } else { None }))
            }
            Value::Floats(f) if !f.data.is_empty() && f.data.iter().all(|&v| v.to_bits() == f.data[0].to_bits()) => {
                let single = f.data.len() == 1 && shape.as_ref().is_some_and(|d| d.len() >= f.shape.len());
                one(Value::Splat(f.data[0], if single { shape } else { None }))
            }
            Value::Act(a) => {
                let shape = shape.ok_or("has a target shape that is not an integer vector")?;
                let a = a.clone();
                if shape.len() != a.axes.len() {
                    return Err(format!(
                        "expands {} to a shape of rank {}; supported is RepeatVector's [batch, 1, features] -> [batch, n, features]",
                        self.describe_act(&a),
                        shape.len()
                    ));
                }
                let mut reps = Vec::with_capacity(shape.len());
                for (&ax, &d) in a.axes.iter().zip(&shape) {
                    reps.push(match (ax, d) {
                        (_, Dim::Known(1)) => 1,
                        (Axis::In(s), Dim::Sym(t)) if s == t => 1,
                        (Axis::Dir { n, .. } | Axis::Feat(n), Dim::Known(k))
                            if i64::try_from(n).is_ok_and(|n| n == k) =>
                        {
                            1
                        }
                        (Axis::One, Dim::Known(k)) if k > 1 => {
                            u64::try_from(k).map_err(|_| "has a huge target shape".to_string())?
                        }
                        _ => {
                            return Err(format!(
                                "expands {} to {shape:?}; supported is RepeatVector's [batch, 1, features] -> [batch, n, features] with a constant n",
                                self.describe_act(&a)
                            ))
                        }
                    });
                }
                one(Value::Act(self.repeat(a, &reps)?))
            }
            other => Err(format!(
                "broadcasts {} (Expand), which is supported only for constant fills such as zero initial states",
                self.describe(other)
            )),
        }
    }

    fn constant_of_shape(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let shape = match &*self.need(node, 0, "shape")? {
            Value::Ints(i) if !i.scalar => Some(i.v.clone()),
            _ => None,
        };
        // Default value: a float32 zero (operator spec).
        let value = match attr_tensor(node, "value")? {
            None => 0.0,
            Some(t) => match decode(t).map_err(|e| format!("value {e}"))? {
                Constant::Floats(f) if f.data.len() == 1 => f.data[0],
                #[allow(clippy::cast_precision_loss)] // compared with zero only
                Constant::Ints(i) if i.v.len() == 1 => i.v[0].known().unwrap_or(1) as f32,
                _ => return Err("has a value attribute that is not one element".into()),
            },
        };
        one(Value::Splat(value, shape))
    }

    fn arith(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let op = node.op_type();
        let a = self.need(node, 0, "A")?;
        let b = self.need(node, 1, "B")?;
        if matches!(&*a, Value::Step(_)) || matches!(&*b, Value::Step(_)) {
            if op != "Add" {
                return Err(format!(
                    "applies {op} inside an unrolled recurrence; a SimpleRNN step only adds"
                ));
            }
            return one(Value::Step(self.step_add(&a, &b)?));
        }
        match (&*a, &*b) {
            (Value::Ints(x), Value::Ints(y)) => one(Value::Ints(int_arith(op, x, y)?)),
            (Value::Floats(x), Value::Floats(y)) => one(Value::Floats(float_arith(op, x, y)?)),
            (Value::Act(act), Value::Floats(c)) | (Value::Floats(c), Value::Act(act))
                if op == "Add" =>
            {
                let act = act.clone();
                one(Value::Act(self.bias(act, c)?))
            }
            (Value::Act(act), Value::Floats(c)) if op == "Sub" || op == "Div" => {
                let act = act.clone();
                one(Value::Act(self.normalization(act, c, op == "Sub")?))
            }
            (Value::Act(_), Value::Floats(_)) | (Value::Floats(_), Value::Act(_)) => {
                let what = match op {
                    "Sub" => "subtracts the activations from a constant",
                    "Div" => "divides a constant by the activations",
                    _ => "multiplies the activations by a constant",
                };
                Err(format!(
                    "{what}, which the runtime does not do; supported: Sub then Div of per-feature constants ((x - mean) / std, a Keras Normalization), and Add as the bias of a Dense layer after MatMul"
                ))
            }
            (Value::Act(_), Value::Act(_)) => Err(format!(
                "combines two activation tensors with {op} (a residual or merge of two branches); the runtime supports one chain of layers"
            )),
            (x, y) => Err(format!(
                "applies {op} to {} and {}, which is not supported",
                self.describe(x),
                self.describe(y)
            )),
        }
    }

    /// Takes `act` as the input of a new layer: it must be the newest layer's output, and
    /// a final-step value fixes that recurrent layer's `return_sequences=False`.
    fn take(&mut self, act: &Act) -> R<()> {
        if act.origin != self.layers.len() {
            return Err(format!(
                "reads the output of {} although {} already follows it: the graph branches, and the runtime supports one chain of layers",
                if act.origin == 0 {
                    "the graph input".to_string()
                } else {
                    self.layer_location(act.origin - 1)
                },
                self.layer_location(act.origin)
            ));
        }
        if let Some(k) = act.last_of {
            if let Some(Layer::Recurrent { spec, .. }) = self.layers.get_mut(k) {
                spec.return_sequences = false;
            }
        }
        Ok(())
    }

    /// Fails when `act` still has the two directions of a bidirectional layer apart.
    fn check_merged(&self, act: &Act, what: &str) -> R<()> {
        if let Some(Axis::Dir { layer, .. }) = act
            .axes
            .iter()
            .find(|a| matches!(a, Axis::Dir { n: 2, .. }))
        {
            return Err(format!(
                "{what} {} that still has the two directions of {} on separate axes; merge them first (Transpose+Reshape for concat, ReduceSum/ReduceMean/ReduceProd)",
                self.describe_act(act),
                self.layer_location(*layer)
            ));
        }
        Ok(())
    }

    /// Checks that `act` can feed a layer and returns its feature count.
    fn check_plain(&self, act: &Act, what: &str) -> R<usize> {
        self.check_merged(act, what)?;
        if act.features_squeezed {
            return Err(format!(
                "{what} activations whose feature axis was squeezed away"
            ));
        }
        match act.axes.last() {
            Some(Axis::Feat(n)) => Ok(*n),
            _ => Err(format!(
                "{what} {}, whose last axis is not the features",
                self.describe_act(act)
            )),
        }
    }

    /// Whether `act` is the graph input's token ids, before any layer.
    fn is_token_ids(&self, act: &Act) -> bool {
        self.token_ids
            && act.origin == 0
            && self.layers.is_empty()
            && act.axes.len() == 2
            && act.axes.contains(&Axis::In(0))
            && act.axes.contains(&Axis::In(1))
    }

    /// `Gather(table, token_ids, axis=0)`: a Keras Embedding, which must read the graph input.
    fn embedding(&mut self, table: Floats, act: Act, axis: i64) -> R<Act> {
        let [vocab, dim] = table.shape.as_slice() else {
            return Err(format!(
                "looks up entries of a constant of shape {:?} at positions taken from {}; an Embedding table is [vocab, dim]",
                table.shape,
                self.describe_act(&act)
            ));
        };
        let (vocab, dim) = (*vocab, *dim);
        if norm_axis(axis, 2)? != 0 {
            return Err(format!(
                "gathers along axis {axis} of the constant table [{vocab}, {dim}]; an Embedding looks up rows (axis 0)"
            ));
        }
        if !self.is_token_ids(&act) {
            return Err(format!(
                "looks up rows of the constant table [{vocab}, {dim}] at positions taken from {}: an Embedding is supported only as the first layer, reading the graph's integer token ids [batch, time]",
                self.describe_act(&act)
            ));
        }
        self.take(&act)?;
        self.layers.push(Layer::Embedding {
            location: self.location.clone(),
            vocab,
            dim,
            table: table.data,
        });
        self.note("the model reads integer token ids [batch, time]; the blob reads them as float32 values [batch, time, 1]");
        let mut out = act;
        out.axes.push(Axis::Feat(dim));
        out.origin = self.layers.len();
        Ok(out)
    }

    /// `x - mean` (`sub`) or `x / std` by per-feature constants: a Keras Normalization. A `Div`
    /// right after the `Sub` sets that layer's divisor.
    fn normalization(&mut self, act: Act, c: &Floats, sub: bool) -> R<Act> {
        let (op, what) = if sub {
            ("Sub", "subtracts")
        } else {
            ("Div", "divides by")
        };
        let width = self.check_plain(&act, &format!("applies {op} to"))?;
        let values = broadcast_bias(c, width).ok_or_else(|| {
            format!(
                "{what} a constant of shape {:?}, which is not one value per feature of the {width} features",
                c.shape
            )
        })?;
        let fresh = act.origin == self.layers.len();
        if !sub && fresh {
            if let Some(Layer::Normalization {
                std: std @ None, ..
            }) = self.layers.last_mut()
            {
                *std = Some(values);
                return Ok(act);
            }
        }
        self.take(&act)?;
        let (mean, std) = if sub {
            (values, None)
        } else {
            (vec![0.0; width], Some(values))
        };
        self.layers.push(Layer::Normalization {
            location: self.location.clone(),
            mean,
            std,
        });
        let mut out = act;
        out.origin = self.layers.len();
        out.last_of = None;
        out.dense = None;
        Ok(out)
    }

    fn tile(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let x = self.need(node, 0, "input")?;
        match &*x {
            Value::Splat(v, _) => one(Value::Splat(*v, None)),
            Value::Act(a) => {
                let repeats = self
                    .known_ints(node, 1, "repeats")?
                    .ok_or("has no repeats")?;
                if repeats.len() != a.axes.len() {
                    return Err(format!(
                        "has {} repeats for {}",
                        repeats.len(),
                        self.describe_act(a)
                    ));
                }
                let reps = repeats
                    .iter()
                    .map(|&r| u64::try_from(r).map_err(|_| format!("has repeats {repeats:?}")))
                    .collect::<R<Vec<u64>>>()?;
                let a = a.clone();
                one(Value::Act(self.repeat(a, &reps)?))
            }
            _ => Err(TILE_REFUSAL.into()),
        }
    }

    /// Repeats a size-1 axis of a layer's single output vector `reps[k]` times: a Keras
    /// RepeatVector, whose new axis is the time axis from here on.
    fn repeat(&mut self, mut act: Act, reps: &[u64]) -> R<Act> {
        let repeated: Vec<usize> = (0..reps.len()).filter(|&k| reps[k] != 1).collect();
        let [k] = repeated.as_slice() else {
            if repeated.is_empty() {
                return Ok(act);
            }
            return Err(format!(
                "repeats several axes of {}; {TILE_REFUSAL}",
                self.describe_act(&act)
            ));
        };
        let k = *k;
        let times = usize::try_from(reps[k])
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| format!("repeats an axis {} times", reps[k]))?;
        self.check_plain(&act, "repeats")?;
        let Some(roles) = self.roles else {
            return Err(format!(
                "repeats {} before any recurrent node; {TILE_REFUSAL}",
                self.describe_act(&act)
            ));
        };
        let vector = act.axes[k] == Axis::One
            && act.axes.contains(&Axis::In(roles.batch))
            && !act.axes.contains(&Axis::In(roles.time))
            && act.reversed.is_none();
        if !vector {
            return Err(format!(
                "repeats axis {k} of {}; {TILE_REFUSAL}",
                self.describe_act(&act)
            ));
        }
        self.take(&act)?;
        self.layers.push(Layer::RepeatVector {
            location: self.location.clone(),
            times,
        });
        // From here on the time axis has `times` steps, whatever the input's length.
        self.static_sizes[usize::from(roles.time)] = Some(times as u64);
        act.axes[k] = Axis::In(roles.time);
        act.origin = self.layers.len();
        act.seq_of = None;
        act.last_of = None;
        act.dense = None;
        Ok(act)
    }

    fn dense(
        &mut self,
        act: &Act,
        kernel: Vec<f32>,
        units: usize,
        bias: Option<Vec<f32>>,
    ) -> R<Act> {
        self.take(act)?;
        let k = self.layers.len();
        self.layers.push(Layer::Dense {
            location: self.location.clone(),
            units,
            activation: Activation::Linear,
            kernel,
            bias,
        });
        let mut out = act.clone();
        if let Some(last) = out.axes.last_mut() {
            *last = Axis::Feat(units);
        }
        out.origin = self.layers.len();
        out.last_of = None;
        out.dense = Some(k);
        Ok(out)
    }

    fn matmul(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let a = self.need(node, 0, "A")?;
        let b = self.need(node, 1, "B")?;
        // Inside an unrolled recurrence: the zero initial state or a state before the last
        // step, times the recurrent matrix.
        if let Value::Floats(w) = &*b {
            let recurrent = match &*a {
                Value::Splat(..) => true,
                Value::Step(Step {
                    kind: StepKind::State { k, .. },
                    ..
                }) => self.static_time() != Some(*k as u64),
                _ => false,
            };
            if recurrent {
                return one(Value::Step(self.step_matmul(&a, w)?));
            }
        }
        let a = match self.state_to_act(&a)? {
            Some(act) => Rc::new(Value::Act(act)),
            None => a,
        };
        let (Value::Act(act), Value::Floats(w)) = (&*a, &*b) else {
            return Err(format!(
                "multiplies {} by {}; supported is the activations times a constant [in, out] matrix (a Dense layer)",
                self.describe(&a),
                self.describe(&b)
            ));
        };
        let width = self.check_plain(act, "multiplies")?;
        let [rows, units] = w.shape.as_slice() else {
            return Err(format!(
                "multiplies by a constant of shape {:?}; a Dense kernel is [in, out]",
                w.shape
            ));
        };
        if *rows != width {
            return Err(format!(
                "multiplies {width} features by a kernel of shape {:?}",
                w.shape
            ));
        }
        let act = act.clone();
        one(Value::Act(self.dense(
            &act,
            w.data.clone(),
            *units,
            None,
        )?))
    }

    fn gemm(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let a = self.need(node, 0, "A")?;
        let b = self.need(node, 1, "B")?;
        let c = self.get(node, 2)?;
        let alpha = attr_float(node, "alpha")?.unwrap_or(1.0);
        let beta = attr_float(node, "beta")?.unwrap_or(1.0);
        if attr_int(node, "transA")?.unwrap_or(0) != 0 {
            return Err("sets transA=1 (transposes the activations); supported is transA=0".into());
        }
        let trans_b = attr_int(node, "transB")?.unwrap_or(0) != 0;
        let a = match self.state_to_act(&a)? {
            Some(act) => Rc::new(Value::Act(act)),
            None => a,
        };
        let (Value::Act(act), Value::Floats(w)) = (&*a, &*b) else {
            return Err(format!(
                "computes Gemm of {} and {}; supported is the activations times a constant matrix",
                self.describe(&a),
                self.describe(&b)
            ));
        };
        let width = self.check_plain(act, "multiplies")?;
        if act.axes.len() != 2 {
            return Err(format!(
                "applies Gemm to {}, which is not 2-D",
                self.describe_act(act)
            ));
        }
        let [r, c2] = w.shape.as_slice() else {
            return Err(format!("has B of shape {:?}; expected a matrix", w.shape));
        };
        // Gemm: Y = alpha * A @ op(B) + beta * C (operator spec). Keras' kernel is [in, out].
        let (kernel, units) = if trans_b {
            (transpose(w, &[1, 0]), *r)
        } else {
            (w.clone(), *c2)
        };
        if kernel.shape[0] != width {
            return Err(format!(
                "multiplies {width} features by B of shape {:?} (transB={})",
                w.shape,
                u8::from(trans_b)
            ));
        }
        let mut kernel = kernel.data;
        if alpha != 1.0 {
            kernel.iter_mut().for_each(|v| *v *= alpha);
            self.note("Gemm alpha was folded into the Dense kernel");
        }
        let bias = match c.as_deref() {
            None => None,
            Some(Value::Floats(cf)) => {
                let mut bias = broadcast_bias(cf, units).ok_or_else(|| {
                    format!(
                        "has C of shape {:?}; a bias broadcast to [{units}] is supported",
                        cf.shape
                    )
                })?;
                if beta != 1.0 {
                    bias.iter_mut().for_each(|v| *v *= beta);
                    self.note("Gemm beta was folded into the Dense bias");
                }
                Some(bias)
            }
            Some(other) => {
                return Err(format!(
                    "has C that is {}; a constant bias is supported",
                    self.describe(other)
                ))
            }
        };
        let act = act.clone();
        one(Value::Act(self.dense(&act, kernel, units, bias)?))
    }

    /// The newest Dense layer, when `act` is its output and `what` can still be folded in.
    fn fresh_dense(&mut self, act: &Act) -> Option<&mut Layer> {
        let k = act.dense?;
        if act.origin != self.layers.len() || k + 1 != self.layers.len() {
            return None;
        }
        self.layers.get_mut(k)
    }

    fn bias(&mut self, act: Act, c: &Floats) -> R<Act> {
        let units = self.check_plain(&act, "adds a constant to")?;
        let bias = broadcast_bias(c, units).ok_or_else(|| {
            format!(
                "adds a constant of shape {:?}, which is not a bias over the {units} features",
                c.shape
            )
        })?;
        match self.fresh_dense(&act) {
            Some(Layer::Dense { bias: b @ None, activation: Activation::Linear, .. }) => {
                *b = Some(bias);
                Ok(act)
            }
            _ => Err(format!(
                "adds a constant to {}; Add is supported only as the bias right after MatMul (a Dense layer)",
                self.describe_act(&act)
            )),
        }
    }

    fn activation(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let op = node.op_type();
        let x = self.need(node, 0, "input")?;
        if let Value::Step(Step {
            axes,
            kind: StepKind::Pre(pre),
        }) = &*x
        {
            let activation = match op {
                "Relu" => Activation::Relu,
                "Tanh" => Activation::Tanh,
                "Sigmoid" => Activation::Sigmoid,
                "HardSigmoid" => recurrent::hard_sigmoid(
                    attr_float(node, "alpha")?.unwrap_or(0.2),
                    attr_float(node, "beta")?.unwrap_or(0.5),
                )?,
                _ => return Err(format!("applies {op} to an unrolled recurrence step")),
            };
            return one(Value::Step(self.step_activation(axes, pre, activation)?));
        }
        let x = match self.state_to_act(&x)? {
            Some(act) => Rc::new(Value::Act(act)),
            None => x,
        };
        let Value::Act(act) = &*x else {
            return Err(format!("applies {op} to {}", self.describe(&x)));
        };
        let act = act.clone();
        self.check_plain(&act, &format!("applies {op} to"))?;
        let activation = match op {
            "Relu" => Activation::Relu,
            "Tanh" => Activation::Tanh,
            "Sigmoid" => Activation::Sigmoid,
            "HardSigmoid" => recurrent::hard_sigmoid(
                attr_float(node, "alpha")?.unwrap_or(0.2),
                attr_float(node, "beta")?.unwrap_or(0.5),
            )?,
            _ => {
                // Softmax: opset 13+ normalises over `axis` (default -1); before 13 over the
                // flattened axes from `axis` on (default 1). Either way it must be the features.
                let rank = act.axes.len();
                let default = if self.opset >= 13 { -1 } else { 1 };
                let axis = norm_axis(attr_int(node, "axis")?.unwrap_or(default), rank)?;
                let ok = matches!(act.axes[axis], Axis::Feat(_))
                    && act.axes[axis + 1..].iter().all(|a| a.is_unit());
                if !ok {
                    return Err(format!(
                        "applies Softmax over axis {axis} of {}; the runtime applies it over the features",
                        self.describe_act(&act)
                    ));
                }
                Activation::Softmax
            }
        };
        let desc = self.describe_act(&act);
        match self.fresh_dense(&act) {
            Some(Layer::Dense { activation: a @ Activation::Linear, .. }) => {
                *a = activation;
                one(Value::Act(act))
            }
            _ => Err(format!(
                "applies {op} to {desc}, which is not the output of a Dense layer (MatMul or Gemm, optional Add); the runtime applies activations only inside recurrent and Dense layers"
            )),
        }
    }

    fn reduce(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let op = node.op_type();
        let x = self.need(node, 0, "data")?;
        let Value::Act(act) = &*x else {
            return Err(format!("reduces {}", self.describe(&x)));
        };
        let mut act = act.clone();
        // Axes: an input since opset 13 (ReduceSum) / 18 (ReduceMean, ReduceProd), an
        // attribute before. Empty axes reduce everything unless noop_with_empty_axes.
        let axes = self
            .ints_input_or_attr(node, 1, "axes")?
            .unwrap_or_default();
        if axes.is_empty() {
            if attr_int(node, "noop_with_empty_axes")?.unwrap_or(0) != 0 {
                return one(Value::Act(act));
            }
            return Err(format!(
                "reduces over all axes of {}",
                self.describe_act(&act)
            ));
        }
        let keep = attr_int(node, "keepdims")?.unwrap_or(1) != 0;
        let mut drop = Vec::new();
        for a in sorted_axes(&axes, act.axes.len())? {
            match act.axes[a] {
                ax if ax.is_unit() => {}
                Axis::Dir { n: 2, layer } => {
                    let merge = match op {
                        "ReduceSum" => Merge::Sum,
                        "ReduceMean" => Merge::Ave,
                        _ => Merge::Mul,
                    };
                    self.set_merge(layer, merge)?;
                }
                other => {
                    return Err(format!(
                        "reduces over axis {a} ({}) of {}; only the direction axis of a bidirectional layer can be reduced (Keras merge_mode sum/ave/mul)",
                        self.describe_axis(other),
                        self.describe_act(&act)
                    ))
                }
            }
            drop.push(a);
        }
        for &a in drop.iter().rev() {
            if keep {
                act.axes[a] = Axis::One;
            } else {
                act.axes.remove(a);
            }
        }
        one(Value::Act(act))
    }

    /// True when `v` is a zero initial state: absent, a zero fill, or an all-zero constant.
    fn is_zero(v: Option<&Value>) -> bool {
        match v {
            None => true,
            Some(Value::Splat(x, _)) => *x == 0.0,
            Some(Value::Floats(f)) => f.data.iter().all(|&x| x == 0.0),
            _ => false,
        }
    }

    fn recurrent(&mut self, node: &NodeProto) -> R<Vec<Rc<Value>>> {
        let op = node.op_type();
        let attrs = recurrent::attributes(node)?;
        let x = self.need(node, 0, "input X")?;
        let Value::Act(act) = &*x else {
            return Err(format!(
                "reads X that is {}, not the model input",
                self.describe(&x)
            ));
        };
        let act = act.clone();
        if self.get(node, 4)?.is_some() {
            return Err("has sequence_lens (per-item lengths, i.e. masking); the runtime processes whole sequences: export without sequence lengths".into());
        }
        for (k, name) in [(5, "initial_h"), (6, "initial_c")] {
            if k == 6 && op != "LSTM" {
                continue;
            }
            let v = self.get(node, k)?;
            if !Self::is_zero(v.as_deref()) {
                let what = v.as_deref().map(|v| self.describe(v)).unwrap_or_default();
                return Err(format!(
                    "has a non-zero {name} ({what}); the runtime starts every sequence from zero states (it streams state itself: pass it with step() instead)"
                ));
            }
        }
        if op == "LSTM" {
            if let Some(p) = self.get(node, 7)? {
                if !Self::is_zero(Some(&p)) {
                    return Err(format!(
                        "has peephole weights P ({}); peephole LSTMs are not supported by the runtime (Keras and PyTorch LSTMs have none)",
                        self.describe(&p)
                    ));
                }
            }
        }
        let w = self.need(node, 1, "W")?;
        let r = self.need(node, 2, "R")?;
        let b = self.get(node, 3)?;
        let (Value::Floats(w), Value::Floats(r)) = (&*w, &*r) else {
            return Err(
                "has W or R that is not a constant; trained weights must be initializers".into(),
            );
        };
        let b = match b.as_deref() {
            None => None,
            Some(Value::Floats(b)) => Some(b),
            Some(other) => {
                return Err(format!(
                    "has B that is {}, not a constant",
                    self.describe(other)
                ))
            }
        };

        // X: [time, batch, features] (layout 0) or [batch, time, features] (layout 1).
        let (t_pos, b_pos) = if attrs.batch_first { (1, 0) } else { (0, 1) };
        let width = self.check_plain(&act, "reads")?;
        let (Some(&Axis::In(t)), Some(&Axis::In(bs)), 3) =
            (act.axes.get(t_pos), act.axes.get(b_pos), act.axes.len())
        else {
            return Err(format!(
                "reads {} as X, but X must be [{}] (layout={})",
                self.describe_act(&act),
                if attrs.batch_first {
                    "batch, time, features"
                } else {
                    "time, batch, features"
                },
                u8::from(attrs.batch_first)
            ));
        };
        if t == bs {
            return Err("reads the same input axis as batch and time".into());
        }
        match self.roles {
            None => {
                self.roles = Some(Roles { time: t, batch: bs });
            }
            Some(r) if r.time == t => {}
            Some(_) => {
                return Err(format!(
                    "reads {} with batch and time swapped relative to the earlier layers",
                    self.describe_act(&act)
                ))
            }
        }
        let reversed_in = match act.reversed {
            None => false,
            Some(s) if s == t => true,
            Some(_) => return Err("reads input whose batch axis is reversed".into()),
        };
        self.take(&act)?;
        let conv = recurrent::convert_weights(&attrs, width, w, r, b)?;
        let dirs = attrs.directions();
        if dirs == 2 && reversed_in {
            return Err("reads a time-reversed sequence (x[::-1]) with a bidirectional node: a Bidirectional around a go_backwards layer, which the runtime does not support".into());
        }
        // A forward node on reversed input, or a reverse node on plain input, is Keras'
        // go_backwards; ONNX aligns Y with the node's input, Keras returns processing order.
        let reverse_node = attrs.direction == Direction::Reverse;
        let go_backwards = dirs == 1 && (reverse_node != reversed_in);
        let out_reversed = dirs == 1 && reverse_node;
        if conv.folded_recurrent_bias {
            self.note("the ONNX biases Wb and Rb were added into one Keras bias (exact up to float rounding)");
        }
        if attrs.cell == (Cell::Gru { reset_after: false }) {
            self.note("GRU linear_before_reset=0 was imported as Keras reset_after=False");
        }
        let layer = self.layers.len();
        self.layers.push(Layer::Recurrent {
            location: self.location.clone(),
            spec: RecurrentSpec {
                cell: attrs.cell,
                units: conv.hidden,
                activation: attrs.activation,
                recurrent_activation: attrs.recurrent_activation,
                return_sequences: true,
                go_backwards,
                bidirectional: None,
            },
            directions: conv.directions,
        });
        let dir = Axis::Dir { n: dirs, layer };
        let feat = Axis::Feat(conv.hidden);
        let base = Act {
            axes: vec![],
            origin: self.layers.len(),
            reversed: None,
            seq_of: None,
            last_of: None,
            dense: None,
            features_squeezed: false,
        };
        let y = Act {
            axes: if attrs.batch_first {
                vec![Axis::In(bs), Axis::In(t), dir, feat]
            } else {
                vec![Axis::In(t), dir, Axis::In(bs), feat]
            },
            reversed: out_reversed.then_some(t),
            seq_of: Some(layer),
            ..base.clone()
        };
        let y_h = Act {
            axes: if attrs.batch_first {
                vec![Axis::In(bs), dir, feat]
            } else {
                vec![dir, Axis::In(bs), feat]
            },
            last_of: Some(layer),
            ..base
        };
        Ok(vec![
            Rc::new(Value::Act(y)),
            Rc::new(Value::Act(y_h)),
            Rc::new(Value::Refused(
                "Y_c (the LSTM's final cell state) is used; supported outputs are Y and Y_h".into(),
            )),
        ])
    }

    /// Checks the graph output and returns whether the model reads time-major input.
    fn finish(&mut self, value: &Value) -> R<bool> {
        let converted = self.state_to_act(value)?.map(Value::Act);
        let value = converted.as_ref().unwrap_or(value);
        let Value::Act(act) = value else {
            return Err(format!(
                "is {}, not computed from the input",
                self.describe(value)
            ));
        };
        let Some(roles) = self.roles else {
            return Err("has no recurrent node (RNN, LSTM or GRU) on the path from the input; the importer converts recurrent stacks".into());
        };
        self.take(act)?;
        if act.reversed.is_some() {
            return Err(format!("is {} with time reversed relative to Keras' order, which the runtime cannot output", self.describe_act(act)));
        }
        self.check_merged(act, "is")?;
        let mut axes: Vec<Axis> = act.axes.iter().copied().filter(|a| !a.is_unit()).collect();
        let unit_axes = act.axes.len() - axes.len();
        let features_last = matches!(axes.last(), Some(Axis::Feat(_)));
        if features_last {
            axes.pop();
        }
        let (b, t) = (Axis::In(roles.batch), Axis::In(roles.time));
        let time_major_output = match axes.as_slice() {
            _ if !features_last && !act.features_squeezed => None,
            [x, y] if (*x, *y) == (b, t) => Some(false),
            [x, y] if (*x, *y) == (t, b) => Some(true),
            [x] if *x == b => Some(false),
            _ => None,
        };
        let Some(time_major_output) = time_major_output else {
            return Err(format!(
                "is {}; supported outputs are [batch, time, features], [time, batch, features] and [batch, features]",
                self.describe_act(act)
            ));
        };
        let sequence = axes.len() == 2;
        for layer in &self.layers {
            if let Layer::Recurrent {
                location,
                spec,
                directions,
            } = layer
            {
                if directions.len() == 2 && spec.bidirectional.is_none() {
                    return Err(format!("never merges the two directions of {location}"));
                }
            }
        }
        let time_major_input = roles.time == 0;
        if time_major_input {
            self.note("the model reads [time, batch, features] (no Transpose before the first recurrent node): the blob reads [batch, time, features], so transpose the data");
        }
        if time_major_output && !time_major_input {
            self.note(
                "the model writes [time, batch, features]: the blob writes [batch, time, features]",
            );
        } else if !time_major_output && time_major_input && sequence {
            self.note(
                "the model writes [batch, time, features] although it reads time-major input",
            );
        }
        if unit_axes > 0 {
            self.note("size-1 axes of the model's output are dropped: the blob writes [batch, time, features] or [batch, features]");
        }
        if act.features_squeezed {
            self.note("the model squeezes its single output feature away; the blob keeps it (output width 1)");
        }
        Ok(time_major_input)
    }
}

/// The part of a stack holding entry `index` of the stacked axis, and the index within it.
fn stack_entry(parts: &[Act], axis: usize, index: i64) -> R<(&Act, i64)> {
    let sizes: Vec<i64> = parts
        .iter()
        .map(|p| match p.axes[axis] {
            Axis::Dir { n, .. } => n as i64,
            _ => 1,
        })
        .collect();
    let total: i64 = sizes.iter().sum();
    let mut i = if index < 0 { index + total } else { index };
    if !(0..total).contains(&i) {
        return Err(format!(
            "index {index} is out of range for {total} stacked states"
        ));
    }
    for (part, &n) in parts.iter().zip(&sizes) {
        if i < n {
            return Ok((part, i));
        }
        i -= n;
    }
    Err(format!(
        "index {index} is out of range for {total} stacked states"
    ))
}

/// Known indices and whether they were a scalar.
fn ix_known(ix: &Ints) -> R<(Vec<i64>, bool)> {
    ix.all_known()
        .map(|v| (v, ix.scalar))
        .ok_or_else(|| "gathers at run-time indices".to_string())
}

/// Normalised, sorted, distinct axes for a tensor of `rank` axes.
fn sorted_axes(axes: &[i64], rank: usize) -> R<Vec<usize>> {
    let mut out = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<R<Vec<usize>>>()?;
    out.sort_unstable();
    if out.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("repeats an axis in {axes:?}"));
    }
    Ok(out)
}

/// A bias for `units` outputs from a constant broadcast over the last axis.
fn broadcast_bias(c: &Floats, units: usize) -> Option<Vec<f32>> {
    let last = c.shape.last().copied().unwrap_or(1);
    if c.shape.iter().rev().skip(1).any(|&d| d != 1) {
        return None;
    }
    match (last, c.data.as_slice()) {
        (n, data) if n == units && data.len() == units => Some(data.to_vec()),
        (1, [v]) => Some(vec![*v; units]),
        _ => None,
    }
}

fn int_arith(op: &str, x: &Ints, y: &Ints) -> R<Ints> {
    let n = x.v.len().max(y.v.len());
    let at = |i: &Ints, k: usize| if i.v.len() == 1 { i.v[0] } else { i.v[k] };
    if !(x.v.len() == n || x.v.len() == 1) || !(y.v.len() == n || y.v.len() == 1) {
        return Err(format!(
            "applies {op} to integer vectors of lengths {} and {}",
            x.v.len(),
            y.v.len()
        ));
    }
    let mut v = Vec::with_capacity(n);
    for k in 0..n {
        let (a, b) = (at(x, k), at(y, k));
        v.push(match (op, a, b) {
            (_, Dim::Known(a), Dim::Known(b)) => Dim::Known(
                match op {
                    "Add" => a.checked_add(b),
                    "Sub" => a.checked_sub(b),
                    "Mul" => a.checked_mul(b),
                    _ => a.checked_div(b),
                }
                .ok_or_else(|| format!("overflows or divides by zero computing {a} {op} {b}"))?,
            ),
            ("Mul", Dim::Known(1), s)
            | ("Mul" | "Div", s, Dim::Known(1))
            | ("Add", Dim::Known(0), s)
            | ("Add" | "Sub", s, Dim::Known(0)) => s,
            _ => {
                return Err(format!(
                    "computes {op} on run-time sizes, which the importer does not track"
                ))
            }
        });
    }
    Ok(Ints {
        scalar: x.scalar && y.scalar,
        v,
    })
}

fn float_arith(op: &str, x: &Floats, y: &Floats) -> R<Floats> {
    let f = |a: f32, b: f32| match op {
        "Add" => a + b,
        "Sub" => a - b,
        "Mul" => a * b,
        _ => a / b,
    };
    if x.shape == y.shape {
        return Ok(Floats {
            shape: x.shape.clone(),
            data: x.data.iter().zip(&y.data).map(|(&a, &b)| f(a, b)).collect(),
        });
    }
    match (x.data.as_slice(), y.data.as_slice()) {
        (_, [b]) => Ok(Floats {
            shape: x.shape.clone(),
            data: x.data.iter().map(|&a| f(a, *b)).collect(),
        }),
        ([a], _) => Ok(Floats {
            shape: y.shape.clone(),
            data: y.data.iter().map(|&b| f(*a, b)).collect(),
        }),
        _ => Err(format!(
            "applies {op} to constants of shapes {:?} and {:?}",
            x.shape, y.shape
        )),
    }
}

fn concat_floats(parts: &[&Floats], axis: i64) -> R<Floats> {
    let rank = parts[0].shape.len();
    let axis = norm_axis(axis, rank)?;
    for p in parts {
        let same = p.shape.len() == rank
            && (0..rank).all(|k| k == axis || p.shape[k] == parts[0].shape[k]);
        if !same {
            return Err("concatenates constants of mismatched shapes".into());
        }
    }
    let outer: usize = parts[0].shape[..axis].iter().product();
    let mut shape = parts[0].shape.clone();
    shape[axis] = parts.iter().map(|p| p.shape[axis]).sum();
    element_count(&shape)?;
    let mut data = Vec::new();
    for o in 0..outer {
        for p in parts {
            let chunk: usize = p.shape[axis..].iter().product();
            data.extend_from_slice(&p.data[o * chunk..(o + 1) * chunk]);
        }
    }
    Ok(Floats { shape, data })
}

fn reshape_floats(f: &Floats, target: &[i64], allowzero: bool) -> R<Floats> {
    let mut shape = Vec::with_capacity(target.len());
    let mut infer = None;
    for (j, &d) in target.iter().enumerate() {
        shape.push(match d {
            0 if !allowzero => *f.shape.get(j).ok_or("copies a missing axis")?,
            -1 if infer.is_none() => {
                infer = Some(j);
                1
            }
            d if d >= 0 => usize::try_from(d).map_err(|_| "dimension too large")?,
            _ => return Err(format!("has target shape {target:?}")),
        });
    }
    if let Some(j) = infer {
        let rest = element_count(&shape)?;
        if rest == 0 || !f.data.len().is_multiple_of(rest) {
            return Err(format!("reshapes {:?} to {target:?}", f.shape));
        }
        shape[j] = f.data.len() / rest;
    }
    if element_count(&shape)? != f.data.len() {
        return Err(format!("reshapes {:?} to {target:?}", f.shape));
    }
    Ok(Floats {
        shape,
        data: f.data.clone(),
    })
}
