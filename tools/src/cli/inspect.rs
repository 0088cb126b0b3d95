//! `edgernn inspect`: what a blob holds and what it needs to run.

use std::path::Path;

use edgernn::format::{Activation, Cell, Merge, QuantMode};
use edgernn::{LayerKind, Model};
use serde::Serialize;

use super::{load_model, read_blob, Failure};

#[derive(Serialize)]
struct LayerReport {
    index: usize,
    kind: &'static str,
    cell: Option<&'static str>,
    bidirectional: Option<&'static str>,
    go_backwards: bool,
    units: usize,
    input_width: usize,
    output_width: usize,
    returns_sequence: bool,
    activation: &'static str,
    recurrent_activation: Option<&'static str>,
    parameters: usize,
    state_bytes: usize,
}

/// Memory needs: fixed bytes plus bytes per time step of the window.
#[derive(Serialize)]
struct PerWindow {
    fixed: usize,
    per_step: usize,
}

#[derive(Serialize)]
struct Report {
    file: String,
    format_version: u16,
    /// How the recurrent layers' int8 matrices are stored (`row-major`, `interleaved4`).
    weight_layout: &'static str,
    blob_bytes: usize,
    weight_bytes: usize,
    mode: &'static str,
    input_features: usize,
    output_width: usize,
    output_is_sequence: bool,
    streamable: bool,
    parameters: usize,
    state_bytes: usize,
    step_scratch_bytes: usize,
    sequence_scratch_bytes: PerWindow,
    layers: Vec<LayerReport>,
    /// The streaming anomaly detector's parameters (format version 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    detector: Option<edgernn::format::DetectorParams>,
    /// Characters in a text model's vocabulary (format version 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    vocabulary_size: Option<usize>,
}

/// Keras' names for activations.
pub fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Linear => "linear",
        Activation::Relu => "relu",
        Activation::Tanh => "tanh",
        Activation::Sigmoid => "sigmoid",
        Activation::HardSigmoid => "hard_sigmoid",
        Activation::Softmax => "softmax",
    }
}

/// The CLI's names for quantization modes (as `edgernn quantize --mode` takes them).
pub fn mode_name(mode: QuantMode) -> &'static str {
    match mode {
        QuantMode::F32 => "f32",
        QuantMode::Int8Weights => "int8-weights",
        QuantMode::Int8 => "int8",
        QuantMode::Int16 => "int16",
        _ => "unknown",
    }
}

fn cell_name(c: Cell) -> &'static str {
    match c {
        Cell::SimpleRnn => "SimpleRNN",
        Cell::Lstm => "LSTM",
        Cell::Gru { reset_after: true } => "GRU(reset_after=true)",
        Cell::Gru { reset_after: false } => "GRU(reset_after=false)",
    }
}

fn merge_name(m: Merge) -> &'static str {
    match m {
        Merge::Concat => "concat",
        Merge::Sum => "sum",
        Merge::Mul => "mul",
        Merge::Ave => "ave",
    }
}

fn report(
    path: &Path,
    model: &Model<'_>,
    weight_bytes: usize,
    format_version: u16,
    layout: edgernn::kernels::WeightLayout,
) -> Result<Report, Failure> {
    let mut layers = Vec::new();
    for index in 0..model.layer_count() {
        let s = model
            .layer_summary(index)
            .ok_or_else(|| Failure::Internal(format!("layer {index} vanished")))?;
        let (kind, cell, bidirectional, go_backwards) = match s.kind {
            LayerKind::Recurrent {
                cell,
                bidirectional,
                go_backwards,
            } => (
                "recurrent",
                Some(cell_name(cell)),
                bidirectional.map(merge_name),
                go_backwards,
            ),
            LayerKind::Dense => ("dense", None, None, false),
            LayerKind::Normalization => ("normalization", None, None, false),
            LayerKind::Embedding { .. } => ("embedding", None, None, false),
            LayerKind::RepeatVector { .. } => ("repeat_vector", None, None, false),
        };
        layers.push(LayerReport {
            index,
            kind,
            cell,
            bidirectional,
            go_backwards,
            units: s.units,
            input_width: s.input_width,
            output_width: s.output_width,
            returns_sequence: s.returns_sequence,
            activation: activation_name(s.activation),
            recurrent_activation: s.recurrent_activation.map(activation_name),
            parameters: s.parameters,
            state_bytes: s.state_len * 4,
        });
    }
    let scratch = |t| model.sequence_scratch_len(t).unwrap_or(usize::MAX) * 4;
    let fixed = scratch(0);
    Ok(Report {
        file: path.display().to_string(),
        format_version,
        weight_layout: crate::pack::layout_name(layout),
        blob_bytes: model.blob_len(),
        weight_bytes,
        mode: mode_name(model.mode()),
        input_features: model.input_features(),
        output_width: model.output_width(),
        output_is_sequence: model.output_is_sequence(),
        streamable: model.is_streamable(),
        parameters: model.parameters(),
        state_bytes: model.state_bytes(),
        step_scratch_bytes: model.step_scratch_len() * 4,
        sequence_scratch_bytes: PerWindow {
            fixed,
            per_step: scratch(1) - fixed,
        },
        layers,
        detector: model.detector_params(),
        vocabulary_size: model.vocabulary().map(|v| v.chars().count()),
    })
}

/// Runs `edgernn inspect`.
///
/// # Errors
/// When the file cannot be read or is not a valid blob.
pub fn run(path: &Path, json: bool) -> Result<(), Failure> {
    let blob = read_blob(path)?;
    let model = load_model(path, &blob)?;
    let checked =
        edgernn::format::Blob::new_checked(blob.bytes()).map_err(|e| Failure::input(path, e))?;
    let version = edgernn::format::Preamble::parse(blob.bytes())
        .map_err(|e| Failure::input(path, e))?
        .version;
    let layout = checked.info().layout;
    let r = report(path, &model, checked.weights().len(), version, layout)?;
    if json {
        let text =
            serde_json::to_string_pretty(&r).map_err(|e| Failure::Internal(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "{}: edgernn blob v{}, {} bytes, {}, {} weights",
        r.file, r.format_version, r.blob_bytes, r.mode, r.weight_layout
    );
    println!(
        "input: {} features per step; output: {} values {}",
        r.input_features,
        r.output_width,
        if r.output_is_sequence {
            "per step (sequence)"
        } else {
            "per window (vector)"
        }
    );
    println!(
        "{:>3}  {:<28} {:>6} {:>6} {:>6}  {:<22} {:>10} {:>8}",
        "#", "layer", "units", "in", "out", "activation", "params", "state B"
    );
    for l in &r.layers {
        let mut name = match (l.cell, l.bidirectional) {
            (Some(c), Some(m)) => format!("Bidirectional({c}, {m})"),
            (Some(c), None) => c.to_string(),
            _ => match l.kind {
                "normalization" => "Normalization".to_string(),
                "embedding" => format!("Embedding({} tokens)", l.parameters / l.units.max(1)),
                "repeat_vector" => "RepeatVector".to_string(),
                _ => "Dense".to_string(),
            },
        };
        if l.go_backwards {
            name.push_str(" backwards");
        }
        if l.kind == "recurrent" && !l.returns_sequence {
            name.push_str(" last");
        }
        let act = match l.recurrent_activation {
            Some(ra) => format!("{}/{}", l.activation, ra),
            None => l.activation.to_string(),
        };
        println!(
            "{:>3}  {:<28} {:>6} {:>6} {:>6}  {:<22} {:>10} {:>8}",
            l.index, name, l.units, l.input_width, l.output_width, act, l.parameters, l.state_bytes
        );
    }
    println!(
        "parameters: {} ({} weight bytes)",
        r.parameters, r.weight_bytes
    );
    println!(
        "memory: state {} B, step scratch {} B, sequence scratch {} B + {} B per step ({} words)",
        r.state_bytes,
        r.step_scratch_bytes,
        r.sequence_scratch_bytes.fixed,
        r.sequence_scratch_bytes.per_step,
        if r.mode == "int8" || r.mode == "int16" {
            "i32"
        } else {
            "f32"
        }
    );
    println!(
        "streaming: {}",
        if r.streamable {
            "yes (step() one sample at a time)"
        } else {
            "no (Bidirectional or go_backwards layer: needs the whole window)"
        }
    );
    if let Some(d) = r.detector {
        println!(
            "detector: window {}, short-term {} errors, long-term memory {}, warm-up {}, \
             flag on {} / off {}, refractory {} samples",
            d.window, d.short_window, d.long_window, d.warmup, d.flag_on, d.flag_off, d.refractory
        );
    }
    if let Some(n) = r.vocabulary_size {
        println!("vocabulary: {n} characters");
    }
    Ok(())
}
