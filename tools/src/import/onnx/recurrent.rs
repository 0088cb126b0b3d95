//! `RNN`, `LSTM` and `GRU` nodes (ONNX operator spec, opsets 7 and 14; opset 22 only widens
//! the types): attributes to Keras options, weights to Keras layout.
//!
//! ONNX keeps per direction `W [gates*H, input]`, `R [gates*H, H]` and `B = [Wb, Rb]`
//! (`[2*gates*H]`), gates in the order **i, o, f, c** (LSTM) and **z, r, h** (GRU). Keras keeps
//! `kernel [input, gates*H]`, `recurrent_kernel [H, gates*H]`, one bias, gates **i, f, c, o** and
//! **z, r, h**. Everything the runtime cannot compute exactly (peepholes, clipping,
//! `input_forget`, sequence lengths, other activations) is refused here.

use edgernn::format::{Activation, Cell};

use super::proto::NodeProto;
use super::tensor::{attr_float, attr_floats, attr_int, attr_string, attr_strings, Floats};
use crate::builder::KerasWeights;

/// `direction` of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

/// A recurrent node's attributes, checked.
#[derive(Debug, Clone)]
pub(super) struct Attributes {
    pub cell: Cell,
    /// `hidden_size`, when given.
    pub hidden: Option<usize>,
    pub direction: Direction,
    /// `layout`: false = `[time, batch, features]` (0, the default), true = batch first (1).
    pub batch_first: bool,
    pub activation: Activation,
    pub recurrent_activation: Activation,
}

impl Attributes {
    pub(super) fn directions(&self) -> usize {
        if self.direction == Direction::Bidirectional {
            2
        } else {
            1
        }
    }
}

/// Keras 3's `hard_sigmoid` is `clip(x / 6 + 0.5, 0, 1)`; ONNX `HardSigmoid` is
/// `clip(alpha * x + beta, 0, 1)` with defaults 0.2 and 0.5 (Keras 2's curve), so only
/// alpha = 1/6, beta = 1/2 maps. The tolerance allows for the decimal round trip of 1/6.
pub(super) const KERAS_HARD_SIGMOID_ALPHA: f32 = 1.0 / 6.0;
/// See [`KERAS_HARD_SIGMOID_ALPHA`].
pub(super) const KERAS_HARD_SIGMOID_BETA: f32 = 0.5;
/// Relative distance accepted between a stored alpha/beta and the Keras value: a few f32 ulps.
const HARD_SIGMOID_REL_TOLERANCE: f32 = 4.0 * f32::EPSILON;

/// Maps ONNX `HardSigmoid(alpha, beta)` to the runtime's (Keras 3) hard sigmoid.
pub(super) fn hard_sigmoid(alpha: f32, beta: f32) -> Result<Activation, String> {
    let close = |v: f32, target: f32| (v - target).abs() <= HARD_SIGMOID_REL_TOLERANCE * target;
    if close(alpha, KERAS_HARD_SIGMOID_ALPHA) && close(beta, KERAS_HARD_SIGMOID_BETA) {
        Ok(Activation::HardSigmoid)
    } else {
        Err(format!(
            "HardSigmoid with alpha={alpha}, beta={beta}; the runtime's hard_sigmoid is Keras 3's x/6 + 0.5 (alpha=1/6, beta=0.5), and ONNX's default alpha=0.2 is Keras 2's curve, which it does not have"
        ))
    }
}

/// Default alpha/beta of the ONNX activation functions that take them (operator spec, "Default
/// values are the same as of corresponding ONNX operators").
fn default_alpha_beta(name: &str) -> Option<(f32, f32)> {
    match name {
        "HardSigmoid" => Some((0.2, 0.5)),
        "Affine" | "ScaledTanh" => Some((1.0, 0.0)),
        "LeakyRelu" => Some((0.01, 0.0)),
        "ThresholdedRelu" | "Elu" => Some((1.0, 0.0)),
        _ => None,
    }
}

/// One activation function of the recurrence, by ONNX name.
fn activation(name: &str, alpha: f32, beta: f32) -> Result<Activation, String> {
    let unsupported = || {
        Err(format!(
            "activation {name} (alpha={alpha}, beta={beta}) is not supported; supported are Sigmoid, Tanh, Relu, HardSigmoid(alpha=1/6, beta=0.5) and Affine(alpha=1, beta=0) (linear)"
        ))
    };
    Ok(match name {
        "Sigmoid" => Activation::Sigmoid,
        "Tanh" => Activation::Tanh,
        "Relu" => Activation::Relu,
        "HardSigmoid" => return hard_sigmoid(alpha, beta),
        // Exact identities of the parametrised functions.
        "Affine" if alpha == 1.0 && beta == 0.0 => Activation::Linear,
        "ScaledTanh" if alpha == 1.0 && beta == 1.0 => Activation::Tanh,
        "LeakyRelu" | "ThresholdedRelu" if alpha == 0.0 => Activation::Relu,
        _ => return unsupported(),
    })
}

/// Reads and checks the attributes of an `RNN`, `LSTM` or `GRU` node.
///
/// # Errors
/// Attributes or values the runtime cannot compute exactly, named with what is supported.
pub(super) fn attributes(node: &NodeProto) -> Result<Attributes, String> {
    let op = node.op_type();
    let known: &[&str] = match op {
        "LSTM" => &[
            "activation_alpha",
            "activation_beta",
            "activations",
            "clip",
            "direction",
            "hidden_size",
            "input_forget",
            "layout",
            "output_sequence",
        ],
        "GRU" => &[
            "activation_alpha",
            "activation_beta",
            "activations",
            "clip",
            "direction",
            "hidden_size",
            "layout",
            "linear_before_reset",
            "output_sequence",
        ],
        _ => &[
            "activation_alpha",
            "activation_beta",
            "activations",
            "clip",
            "direction",
            "hidden_size",
            "layout",
            "output_sequence",
        ],
    };
    if let Some(a) = node.attribute.iter().find(|a| !known.contains(&a.name())) {
        return Err(format!(
            "has attribute '{}', which {op} does not define (known: {})",
            a.name(),
            known.join(", ")
        ));
    }
    // `clip` bounds the pre-activations to [-clip, clip] (operator spec); the runtime has no
    // clipping, so any finite clip would change the numbers.
    if let Some(clip) = attr_float(node, "clip")? {
        if clip.is_finite() || clip.is_nan() {
            return Err(format!(
                "sets clip={clip}: cell clipping is not supported by the runtime (Keras and PyTorch layers have none); re-export without clip"
            ));
        }
    }
    if op == "LSTM" {
        let input_forget = attr_int(node, "input_forget")?.unwrap_or(0);
        if input_forget != 0 {
            return Err(format!(
                "sets input_forget={input_forget} (coupled input and forget gates), which the runtime does not have; supported is input_forget=0"
            ));
        }
    }
    let direction = match attr_string(node, "direction")?.as_deref() {
        None | Some("forward") => Direction::Forward,
        Some("reverse") => Direction::Reverse,
        Some("bidirectional") => Direction::Bidirectional,
        Some(other) => {
            return Err(format!(
                "has direction '{other}'; the ONNX values are forward, reverse and bidirectional"
            ))
        }
    };
    let batch_first = match attr_int(node, "layout")?.unwrap_or(0) {
        0 => false,
        1 => true,
        other => return Err(format!("has layout={other}; ONNX defines 0 and 1")),
    };
    let hidden = match attr_int(node, "hidden_size")? {
        None => None,
        Some(h) if h > 0 => {
            Some(usize::try_from(h).map_err(|_| format!("hidden_size={h} is too large"))?)
        }
        Some(h) => return Err(format!("has hidden_size={h}; it must be positive")),
    };
    let cell = match op {
        "LSTM" => Cell::Lstm,
        // linear_before_reset=1 applies the reset gate after the recurrent product (Keras
        // reset_after=True, PyTorch); 0 applies it before (Keras reset_after=False).
        "GRU" => match attr_int(node, "linear_before_reset")?.unwrap_or(0) {
            0 => Cell::Gru { reset_after: false },
            1 => Cell::Gru { reset_after: true },
            other => {
                return Err(format!(
                    "has linear_before_reset={other}; ONNX defines 0 and 1"
                ))
            }
        },
        _ => Cell::SimpleRnn,
    };
    let dirs = if direction == Direction::Bidirectional {
        2
    } else {
        1
    };
    // Default activations per direction (operator spec): RNN f=Tanh; LSTM f=Sigmoid, g=Tanh,
    // h=Tanh; GRU f=Sigmoid, g=Tanh.
    let defaults: &[&str] = match cell {
        Cell::SimpleRnn => &["Tanh"],
        Cell::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        Cell::Gru { .. } => &["Sigmoid", "Tanh"],
    };
    let per_dir = defaults.len();
    let names: Vec<String> = match attr_strings(node, "activations")? {
        None => defaults
            .iter()
            .cycle()
            .take(per_dir * dirs)
            .map(|s| (*s).to_string())
            .collect(),
        Some(list) if list.len() == per_dir * dirs => list,
        // A list for one direction of a bidirectional node: read as both (lenient).
        Some(list) if list.len() == per_dir => {
            list.iter().cycle().take(per_dir * dirs).cloned().collect()
        }
        Some(list) => {
            return Err(format!(
                "has {} activations {list:?}; {op} with direction {:?} takes {}",
                list.len(),
                direction,
                per_dir * dirs
            ))
        }
    };
    // activation_alpha/beta are "consumed in the order of activation functions" (operator
    // spec); as in onnxruntime, only the functions that take a parameter consume one.
    let alphas = attr_floats(node, "activation_alpha")?.unwrap_or_default();
    let betas = attr_floats(node, "activation_beta")?.unwrap_or_default();
    let (mut ai, mut bi) = (0, 0);
    let mut acts = Vec::with_capacity(names.len());
    for name in &names {
        let canonical = canonical_name(name);
        let (alpha, beta) = match default_alpha_beta(&canonical) {
            Some((da, db)) => {
                let a = alphas.get(ai).copied().unwrap_or(da);
                let b = betas.get(bi).copied().unwrap_or(db);
                ai += 1;
                bi += 1;
                (a, b)
            }
            None => (0.0, 0.0),
        };
        acts.push(activation(&canonical, alpha, beta)?);
    }
    if dirs == 2 && acts[..per_dir] != acts[per_dir..] {
        return Err(format!(
            "uses activations {names:?}: different activations per direction; the runtime uses one set for both directions"
        ));
    }
    let (activation, recurrent_activation) = match cell {
        Cell::SimpleRnn => (acts[0], Activation::Sigmoid),
        Cell::Lstm => {
            // f (gates), g (cell input), h (output): the runtime applies one activation to
            // both g and h, as Keras does with `activation`.
            if acts[1] != acts[2] {
                return Err(format!(
                    "uses activations {names:?}: the cell activation g ({}) differs from the output activation h ({}); the runtime (like Keras) uses one activation for both",
                    names[1], names[2]
                ));
            }
            (acts[1], acts[0])
        }
        Cell::Gru { .. } => (acts[1], acts[0]),
    };
    Ok(Attributes {
        cell,
        hidden,
        direction,
        batch_first,
        activation,
        recurrent_activation,
    })
}

/// ONNX names activation functions case-sensitively (`Sigmoid`), but onnxruntime also
/// accepts any letter case; normalise to the spec's spelling.
fn canonical_name(name: &str) -> String {
    const NAMES: [&str; 11] = [
        "Relu",
        "Tanh",
        "Sigmoid",
        "Affine",
        "LeakyRelu",
        "ThresholdedRelu",
        "ScaledTanh",
        "HardSigmoid",
        "Elu",
        "Softsign",
        "Softplus",
    ];
    NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_string(), |n| (*n).to_string())
}

/// ONNX gate block `ORDER[k]` holds Keras gate block `k`. LSTM: ONNX i,o,f,c -> Keras
/// i,f,c,o; GRU: z,r,h on both sides; RNN: one block.
pub(super) fn gate_order(cell: Cell) -> &'static [usize] {
    match cell {
        Cell::Lstm => &[0, 2, 3, 1],
        Cell::Gru { .. } => &[0, 1, 2],
        Cell::SimpleRnn => &[0],
    }
}

/// The weights of one node, per direction, in Keras layout.
pub(super) struct Converted {
    pub hidden: usize,
    pub directions: Vec<KerasWeights>,
    /// True when `Wb + Rb` was folded with a non-zero `Rb` (floats may differ in the last
    /// bit from ONNX's order of additions).
    pub folded_recurrent_bias: bool,
}

fn shape_error(what: &str, shape: &[usize], expected: &str) -> String {
    format!("{what} has shape {shape:?}; expected {expected}")
}

/// Converts `W`, `R` and `B` of a node reading `input` features per step.
///
/// # Errors
/// Shapes that do not match each other, `hidden_size`, the direction count or the input width.
pub(super) fn convert_weights(
    attrs: &Attributes,
    input: usize,
    w: &Floats,
    r: &Floats,
    b: Option<&Floats>,
) -> Result<Converted, String> {
    let dirs = attrs.directions();
    let gates = attrs.cell.gates();
    // hidden_size is optional in the spec; R [dirs, gates*H, H] also says it.
    let hidden = match (attrs.hidden, r.shape.as_slice()) {
        (Some(h), _) => h,
        (None, [_, _, h]) => *h,
        (None, s) => {
            return Err(shape_error(
                "R",
                s,
                "[num_directions, gates*hidden, hidden]",
            ))
        }
    };
    let rows = gates
        .checked_mul(hidden)
        .ok_or_else(|| format!("hidden_size={hidden} is too large"))?;
    if w.shape != [dirs, rows, input] {
        return Err(shape_error(
            "W",
            &w.shape,
            &format!("[{dirs}, {rows}, {input}] (directions, {gates} gates x hidden {hidden}, input features)"),
        ));
    }
    if r.shape != [dirs, rows, hidden] {
        return Err(shape_error(
            "R",
            &r.shape,
            &format!("[{dirs}, {rows}, {hidden}]"),
        ));
    }
    if let Some(b) = b {
        if b.shape != [dirs, 2 * rows] {
            return Err(shape_error(
                "B",
                &b.shape,
                &format!("[{dirs}, {}]", 2 * rows),
            ));
        }
    }
    let order = gate_order(attrs.cell);
    // ONNX [rows, cols] of direction d -> Keras [cols, rows] with gate blocks reordered.
    let to_keras = |t: &Floats, d: usize, cols: usize| -> Vec<f32> {
        let base = d * rows * cols;
        let mut out = vec![0.0; rows * cols];
        for (k, &src) in order.iter().enumerate() {
            for j in 0..hidden {
                let onnx_row = base + (src * hidden + j) * cols;
                for c in 0..cols {
                    out[c * rows + k * hidden + j] = t.data[onnx_row + c];
                }
            }
        }
        out
    };
    let reorder = |v: &[f32]| -> Vec<f32> {
        order
            .iter()
            .flat_map(|&src| v[src * hidden..(src + 1) * hidden].iter().copied())
            .collect()
    };
    let mut folded = false;
    let mut directions = Vec::with_capacity(dirs);
    for d in 0..dirs {
        let bias = b.map(|b| {
            let row = &b.data[d * 2 * rows..(d + 1) * 2 * rows];
            let (wb, rb) = row.split_at(rows);
            let (wb, rb) = (reorder(wb), reorder(rb));
            if attrs.cell == (Cell::Gru { reset_after: true }) {
                // linear_before_reset=1: Rbh sits inside r * (H R_h + Rbh), so both biases
                // are kept, as Keras' bias [2, 3H] = [input bias, recurrent bias].
                [wb, rb].concat()
            } else {
                // Every other gate adds Wb + Rb; with linear_before_reset=0 the spec adds
                // Rbh outside the reset product (ht = g(Xt Wh + (rt . Ht-1) Rh + Rbh + Wbh)),
                // so folding is exact there too.
                if rb.iter().any(|&v| v != 0.0) {
                    folded = true;
                }
                wb.iter().zip(&rb).map(|(a, c)| a + c).collect()
            }
        });
        directions.push(KerasWeights {
            kernel: to_keras(w, d, input),
            recurrent_kernel: to_keras(r, d, hidden),
            bias,
        });
    }
    Ok(Converted {
        hidden,
        directions,
        folded_recurrent_bias: folded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lstm_gate_blocks_move_to_keras_order() {
        // One input, hidden 1: W rows are the gates i, o, f, c with values 0, 1, 2, 3.
        let attrs = Attributes {
            cell: Cell::Lstm,
            hidden: Some(1),
            direction: Direction::Forward,
            batch_first: false,
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
        };
        let w = Floats {
            shape: vec![1, 4, 1],
            data: vec![0.0, 1.0, 2.0, 3.0],
        };
        let r = w.clone();
        let b = Floats {
            shape: vec![1, 8],
            data: vec![0.0, 1.0, 2.0, 3.0, 10.0, 10.0, 10.0, 10.0],
        };
        let c = convert_weights(&attrs, 1, &w, &r, Some(&b)).unwrap();
        // Keras i, f, c, o = ONNX blocks 0, 2, 3, 1.
        assert_eq!(c.directions[0].kernel, vec![0.0, 2.0, 3.0, 1.0]);
        assert_eq!(
            c.directions[0].bias.as_deref(),
            Some(&[10.0, 12.0, 13.0, 11.0][..])
        );
        assert!(c.folded_recurrent_bias);
    }

    #[test]
    fn hard_sigmoid_needs_keras_3_parameters() {
        assert_eq!(hard_sigmoid(1.0 / 6.0, 0.5), Ok(Activation::HardSigmoid));
        assert_eq!(hard_sigmoid(0.166_666_67, 0.5), Ok(Activation::HardSigmoid));
        assert!(hard_sigmoid(0.2, 0.5).is_err());
    }
}
