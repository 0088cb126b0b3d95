//! ONNX importer: graphs of the standard recurrent operators (`RNN`, `LSTM`, `GRU`) with the
//! glue PyTorch's exporters (classic `dynamo=False` and dynamo) and `onnx.helper`-built Keras
//! conversions write around them, converted to Keras layout and written with
//! [`ModelBuilder`].
//!
//! # What is read
//!
//! - The protobuf is decoded with the types in [`proto`] (generated from the vendored
//!   `onnx.proto`). Tensors in external data files are refused, and so are opsets below
//!   [`MIN_OPSET`].
//! - The graph must have one input (`[batch, time, features]` or `[time, batch, features]`,
//!   float32, fixed feature size; or integer token ids `[batch, time]` read by an Embedding
//!   `Gather`, which the blob reads as `[batch, time, 1]`) and one output, and reduce to one chain of layers between
//!   them. Which input axis is time is read from the first recurrent node (its `layout` and
//!   the `Transpose`s before it); a time-major model sets [`Imported::time_major_input`].
//!
//! | ONNX | imported as |
//! |---|---|
//! | `RNN`, `LSTM`, `GRU` `direction=forward` | SimpleRNN / LSTM / GRU |
//! | `direction=reverse`, or `Slice(step=-1)` on time before a forward node | `go_backwards` |
//! | `direction=bidirectional` + `Transpose`/`Reshape` to `[.., 2H]` | `Bidirectional(merge_mode="concat")` |
//! | ... + `ReduceSum` / `ReduceMean` / `ReduceProd` over the direction axis | `sum` / `ave` / `mul` |
//! | `Y` (all steps) / `Y_h`, `Gather(-1)` of `Y` on time, `h_n[-1]` of stacked `Y_h` | `return_sequences` true / false |
//! | GRU `linear_before_reset` 1 / 0 | `reset_after` true / false |
//! | `activations` Sigmoid, Tanh, Relu, HardSigmoid(1/6, 0.5), Affine(1, 0) | sigmoid, tanh, relu, hard_sigmoid, linear |
//! | `MatMul` [+ `Add`] or `Gemm` [+ `Relu`/`Tanh`/`Sigmoid`/`HardSigmoid`/`Softmax`] | Dense (on rank 3: TimeDistributed(Dense)) |
//! | `Gather(table, token_ids, axis=0)` on the graph input (optionally after an integer `Cast`) | Embedding (first layer) |
//! | `Sub` and/or `Div` by per-feature constants | Normalization (`(x - mean) / std`, divisor kept exact) |
//! | `Unsqueeze` + `Tile([1, n, 1])` or `Expand([.., n, ..])` of a layer's last output | RepeatVector(n) |
//! | per-step `MatMul + Add + Add + Tanh/Relu` stacked by `Concat` (dynamo's `nn.RNN`) | SimpleRNN |
//! | `Transpose`, `Reshape`, `Squeeze`, `Unsqueeze`, `Identity`, `Cast`, `Dropout`, shape arithmetic | layout only, checked |
//! | zero `initial_h`/`initial_c`/`P` (absent, zero constants, `ConstantOfShape`/`Expand` of 0) | zero initial state |
//!
//! Refused, naming the node: peepholes, `clip`, `input_forget`, `sequence_lens`, non-zero
//! initial states, other activations, LSTM output activation `h` different from `g`,
//! `y[:, -1]` of a bidirectional layer (the backward direction after one step), `Loop`/`Scan`
//! recurrences (Keras' own `model.export`), a `Gather` of a table that does not read the graph's
//! token ids (an Embedding that is not first), `Mul` scaling and `constant - x`, `Tile` of
//! anything but a single vector, branches and merges of several tensors, and every other
//! operator.
//!
//! # Limits
//!
//! Decoding is bounded by the file size: no buffer is sized from a declared dimension before
//! the data it describes has been checked, graphs are walked without recursion, and the
//! constants below cap what a file may declare.

mod graph;
mod interp;
pub mod proto;
mod recurrent;
mod tensor;

use std::path::Path;

use prost::Message;

use super::{ImportError, Imported};
use crate::builder::ModelBuilder;
use interp::Layer;

/// Most nodes a graph may have. Native-operator exports of recurrent stacks have tens of
/// nodes; an unrolled or generated graph beyond this is refused rather than walked.
pub const MAX_NODES: usize = 10_000;

/// Most elements in one constant tensor (initializer, `Constant`, or a tensor the importer
/// computes from constants): 2^26 f32 values, 256 MiB, far above the runtime's largest layer
/// (4096 x 4 x 4096 weights).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 26;

/// Most float values the importer may compute from constants over the whole graph (folded
/// transposes, concatenations, reshaped copies): bounds memory whatever the node count.
pub const MAX_COMPUTED_ELEMENTS: usize = 1 << 26;

/// Longest integer vector (shapes, axes, indices) a file may declare or build.
pub const MAX_INT_VECTOR: usize = 1 << 16;

/// Most axes a tensor may have.
pub const MAX_RANK: usize = 8;

/// Lowest default-domain opset read: opset 7 fixed the recurrent operators' current
/// inputs and attributes (`output_sequence` removed, `layout` added in 14).
pub const MIN_OPSET: i64 = 7;

/// Recognises files that are something else, for a clearer error than a protobuf failure.
fn other_format(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"PK\x03\x04") {
        Some("a zip archive (a Keras 3 .keras file?)")
    } else if bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
        Some("an HDF5 file (a legacy Keras .h5 file?)")
    } else if bytes.starts_with(b"\x93NUMPY") {
        Some("a NumPy .npy array")
    } else if bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{' || b == b'[')
    {
        Some("a JSON or text file")
    } else {
        None
    }
}

/// Imports an ONNX model (`.onnx` bytes; `path` only names the file in errors).
///
/// # Errors
/// A file that is not a readable self-contained ONNX model, or a graph the runtime cannot
/// compute exactly; the error names the node (index, name, op type), what it has and what is
/// supported.
///
/// # Panics
/// Never, whatever the bytes.
pub fn import_onnx(path: &Path, bytes: &[u8]) -> Result<Imported, ImportError> {
    if bytes.is_empty() {
        return Err(ImportError::file(
            path,
            "the file is empty, not an ONNX model",
        ));
    }
    if let Some(kind) = other_format(bytes) {
        return Err(ImportError::file(
            path,
            format!("this is {kind}, not an ONNX model"),
        ));
    }
    let model = proto::ModelProto::decode(bytes).map_err(|e| {
        ImportError::file(
            path,
            format!("not a readable ONNX model: the protobuf does not decode ({e}); the file is truncated, damaged or of another type"),
        )
    })?;
    let not_onnx = |what: &str| {
        ImportError::file(
            path,
            format!("not an ONNX model: {what}; the file is truncated, damaged or of another type"),
        )
    };
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| not_onnx("it has no graph"))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain(), "" | "ai.onnx"))
        .map(proto::OperatorSetIdProto::version)
        .ok_or_else(|| not_onnx("it imports no opset of the standard ONNX domain"))?;
    if opset < MIN_OPSET {
        return Err(ImportError::file(
            path,
            format!("the model uses ONNX opset {opset}; opsets {MIN_OPSET} and later are supported (re-export with a newer opset)"),
        ));
    }
    let producer = match (model.producer_name(), model.producer_version()) {
        ("", _) => "unknown".to_string(),
        (name, "") => name.to_string(),
        (name, version) => format!("{name} {version}"),
    };
    let source = format!(
        "ONNX opset {opset}, IR {}, producer {producer}",
        model.ir_version()
    );
    let located = |(location, message): (Option<String>, String)| match location {
        Some(at) => ImportError::at(path, at, message),
        None => ImportError::file(path, message),
    };
    let graph = graph::Graph::new(graph).map_err(located)?;
    let outcome = interp::run(&graph, opset).map_err(located)?;

    let mut builder = ModelBuilder::new(outcome.input_features);
    for layer in &outcome.layers {
        let result = match layer {
            Layer::Recurrent {
                location,
                spec,
                directions,
            } => builder
                .recurrent(*spec, &directions[0], directions.get(1))
                .map(|_| ())
                .map_err(|e| ImportError::at(path, location.clone(), format!("{e:#}"))),
            Layer::Dense {
                location,
                units,
                activation,
                kernel,
                bias,
            } => builder
                .dense(*units, *activation, kernel, bias.as_deref())
                .map(|_| ())
                .map_err(|e| ImportError::at(path, location.clone(), format!("{e:#}"))),
            Layer::Embedding {
                location,
                vocab,
                dim,
                table,
            } => builder
                .embedding(*vocab, *dim, table)
                .map(|_| ())
                .map_err(|e| ImportError::at(path, location.clone(), format!("{e:#}"))),
            Layer::Normalization {
                location,
                mean,
                std,
            } => {
                let ones;
                let std = match std {
                    Some(s) => s,
                    None => {
                        ones = vec![1.0; mean.len()];
                        &ones
                    }
                };
                builder
                    .normalization_with_std(mean, std)
                    .map(|_| ())
                    .map_err(|e| ImportError::at(path, location.clone(), format!("{e:#}")))
            }
            Layer::RepeatVector { location, times } => builder
                .repeat_vector(*times)
                .map(|_| ())
                .map_err(|e| ImportError::at(path, location.clone(), format!("{e:#}"))),
        };
        result?;
    }
    let blob = builder
        .build()
        .map_err(|e| ImportError::file(path, format!("{e:#}")))?;
    Ok(Imported {
        blob,
        source,
        time_major_input: outcome.time_major_input,
        notes: outcome.notes,
    })
}
