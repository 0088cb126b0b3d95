//! Recurrences the exporter unrolled into per-step nodes. PyTorch's dynamo exporter writes
//! `nn.RNN` without an `RNN` node: a projection `x W_ih^T + b_ih` of the whole sequence
//! (`MatMul + Add`), then per time step `Slice + Squeeze` of it, `MatMul(h, W_hh^T) + b_hh`,
//! `Add` of the two and `Tanh`/`Relu`, and a `Concat` of the states, with the time axis fixed
//! to the example's length. The per-step values are tracked here until the steps are stacked
//! back into a sequence (or the final state is used), which is then one SimpleRNN layer
//! (`h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`, PyTorch's `nn.RNN` equations,
//! Keras' SimpleRNN with `kernel = W_ih^T`, `recurrent_kernel = W_hh^T`, `bias = b_ih + b_hh`).
//! Every step must share the recurrent matrix, bias and activation, start from a zero state,
//! and all steps of the fixed-length sequence must be used.

use std::rc::Rc;

use edgernn::format::{Activation, Cell};

use super::{broadcast_bias, norm_axis, Act, Axis, Interp, Layer, Roles, Value, R};
use crate::builder::{KerasWeights, RecurrentSpec};
use crate::import::onnx::tensor::{Dim, Floats};

/// One time step of a recurrence that the exporter unrolled into per-step nodes (PyTorch's
/// dynamo exporter writes `nn.RNN` as `MatMul + Add + Add + Tanh|Relu` per step): the
/// per-step values are tracked until the steps are stacked back into a sequence, which is
/// then one SimpleRNN layer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Step {
    /// Axes of this step's tensor (batch, features and size-1 axes).
    pub(super) axes: Vec<Axis>,
    pub(super) kind: StepKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum StepKind {
    /// Time step `k` of the input projection `x W + b`: the output of Dense layer `layer`,
    /// which becomes the recurrent layer.
    Input { layer: usize, k: usize },
    /// The state of layer `layer` after `k` steps.
    State { layer: usize, k: usize },
    /// A sum of terms of one step, before its activation.
    Pre(Pre),
}

/// `h_k R + x_k + b`, term by term as the graph adds them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pre {
    /// Steps done before: the state multiplied by `rec` is `h_k`, the input is `x_k`.
    pub(super) k: usize,
    layer: Option<usize>,
    /// The recurrent matrix `[H, H]` (right-multiplied, Keras' `recurrent_kernel` layout).
    rec: Option<Rc<Floats>>,
    input: bool,
    bias: Option<Vec<f32>>,
}

/// What every step of an unrolled layer must share.
#[derive(Debug, Clone)]
pub(super) struct Unrolled {
    rec: Rc<Floats>,
    bias: Option<Vec<f32>>,
    activation: Activation,
}

impl Interp<'_> {
    /// `Slice [k, k+1)` on the time axis of a Dense projection of the sequence: one step of
    /// an unrolled recurrence, when the graph goes on like one (otherwise the steps are never
    /// stacked back and the import fails there). Binds the time axis when no recurrent node
    /// has.
    pub(super) fn step_input(
        &mut self,
        act: &Act,
        axis: usize,
        start: i64,
        end: i64,
        step: i64,
    ) -> R<Option<Step>> {
        let Axis::In(s) = act.axes[axis] else {
            return Ok(None);
        };
        let Some(layer) = act.dense else {
            return Ok(None);
        };
        let projection = matches!(
            self.layers.get(layer),
            Some(Layer::Dense {
                activation: Activation::Linear,
                ..
            })
        );
        if step != 1
            || start < 0
            || end != start.saturating_add(1)
            || !projection
            || act.origin != self.layers.len()
            || layer + 1 != self.layers.len()
            || act.reversed.is_some()
            || act.features_squeezed
            || !matches!(act.axes.last(), Some(Axis::Feat(_)))
            || act.axes.iter().any(|a| matches!(a, Axis::Dir { n: 2, .. }))
        {
            return Ok(None);
        }
        let Some(batch) = act.axes.iter().find_map(|a| match a {
            Axis::In(o) if *o != s => Some(*o),
            _ => None,
        }) else {
            return Ok(None);
        };
        if self.static_sizes[usize::from(s)]
            .is_some_and(|t| u64::try_from(start).is_ok_and(|k| k >= t))
        {
            return Ok(None);
        }
        match self.roles {
            None => self.roles = Some(Roles { time: s, batch }),
            Some(r) if r.time == s => {}
            Some(_) => return Ok(None),
        }
        let mut axes = act.axes.clone();
        axes[axis] = Axis::One;
        Ok(Some(Step {
            axes,
            kind: StepKind::Input {
                layer,
                k: usize::try_from(start).unwrap_or_default(),
            },
        }))
    }

    /// Static length of the time axis, when the graph input declares it.
    pub(super) fn static_time(&self) -> Option<u64> {
        self.roles
            .and_then(|r| self.static_sizes[usize::from(r.time)])
    }

    /// `h R`: the recurrent product of an unrolled step, from the zero initial state or the
    /// state after `k` steps.
    pub(super) fn step_matmul(&mut self, x: &Value, r: &Floats) -> R<Step> {
        let (axes, k, layer) = match x {
            Value::Splat(v, shape) => {
                if *v != 0.0 {
                    return Err(format!(
                        "multiplies a state filled with {v} by a matrix: an unrolled recurrence from a non-zero initial state; the runtime starts from zero states"
                    ));
                }
                let Some(shape) = shape else {
                    return Err("multiplies a zero tensor of unknown shape by a matrix".into());
                };
                let rank = shape.len();
                let axes = shape
                    .iter()
                    .enumerate()
                    .map(|(i, d)| match *d {
                        Dim::Known(1) if i + 1 < rank => Ok(Axis::One),
                        Dim::Sym(s) if i + 1 < rank => Ok(Axis::In(s)),
                        Dim::Known(n) if i + 1 == rank && n > 0 => Ok(Axis::Feat(usize::try_from(n).unwrap_or_default())),
                        _ => Err(format!("multiplies a zero tensor of shape {shape:?} by a matrix; an unrolled recurrence's state is [batch, hidden] (plus size-1 axes)")),
                    })
                    .collect::<R<Vec<Axis>>>()?;
                (axes, 0, None)
            }
            Value::Step(Step {
                axes,
                kind: StepKind::State { layer, k },
            }) => (axes.clone(), *k, Some(*layer)),
            other => {
                return Err(format!(
                    "multiplies {} by a matrix inside an unrolled recurrence",
                    self.describe(other)
                ))
            }
        };
        let h = match axes.last() {
            Some(Axis::Feat(h)) => *h,
            _ => return Err("multiplies a state whose last axis is not the features".into()),
        };
        if r.shape != [h, h] {
            return Err(format!(
                "multiplies an unrolled recurrence's state of {h} features by a matrix of shape {:?}; the recurrent matrix is [{h}, {h}]",
                r.shape
            ));
        }
        Ok(Step {
            axes,
            kind: StepKind::Pre(Pre {
                k,
                layer,
                rec: Some(Rc::new(r.clone())),
                input: false,
                bias: None,
            }),
        })
    }

    /// `Add` inside an unrolled step: terms `h R`, `x_k` and a bias, in any order.
    pub(super) fn step_add(&mut self, a: &Value, b: &Value) -> R<Step> {
        let terms = |v: &Value| -> Option<(Vec<Axis>, Pre)> {
            match v {
                Value::Step(Step {
                    axes,
                    kind: StepKind::Input { layer, k },
                }) => Some((
                    axes.clone(),
                    Pre {
                        k: *k,
                        layer: Some(*layer),
                        rec: None,
                        input: true,
                        bias: None,
                    },
                )),
                Value::Step(Step {
                    axes,
                    kind: StepKind::Pre(p),
                }) => Some((axes.clone(), p.clone())),
                _ => None,
            }
        };
        let mismatch = || "adds terms of different unrolled steps or layers".to_string();
        let (axes, pre) = match (terms(a), terms(b), a, b) {
            (Some((xa, x)), Some((ya, y)), _, _) => {
                let plain = |v: &[Axis]| {
                    v.iter()
                        .copied()
                        .filter(|a| !a.is_unit())
                        .collect::<Vec<_>>()
                };
                if plain(&xa) != plain(&ya)
                    || x.k != y.k
                    || (x.layer.is_some() && y.layer.is_some() && x.layer != y.layer)
                    || (x.rec.is_some() && y.rec.is_some())
                    || (x.input && y.input)
                    || (x.bias.is_some() && y.bias.is_some())
                {
                    return Err(mismatch());
                }
                let axes = if xa.len() >= ya.len() { xa } else { ya };
                (
                    axes,
                    Pre {
                        k: x.k,
                        layer: x.layer.or(y.layer),
                        rec: x.rec.or(y.rec),
                        input: x.input || y.input,
                        bias: x.bias.or(y.bias),
                    },
                )
            }
            (Some((axes, mut p)), None, _, Value::Floats(c))
            | (None, Some((axes, mut p)), Value::Floats(c), _) => {
                let h = match axes.last() {
                    Some(Axis::Feat(h)) => *h,
                    _ => {
                        return Err(
                            "adds a bias to a step whose last axis is not the features".into()
                        )
                    }
                };
                if p.bias.is_some() {
                    return Err("adds a second bias inside an unrolled step".into());
                }
                p.bias = Some(broadcast_bias(c, h).ok_or_else(|| {
                    format!("adds a constant of shape {:?} inside an unrolled step; a bias over {h} features is supported", c.shape)
                })?);
                (axes, p)
            }
            _ => {
                return Err(format!(
                    "adds {} and {} inside an unrolled recurrence",
                    self.describe(a),
                    self.describe(b)
                ))
            }
        };
        Ok(Step {
            axes,
            kind: StepKind::Pre(pre),
        })
    }

    /// The activation that closes an unrolled step: every step must share it, the
    /// recurrent matrix and the recurrent bias.
    pub(super) fn step_activation(
        &mut self,
        axes: &[Axis],
        pre: &Pre,
        activation: Activation,
    ) -> R<Step> {
        let (Some(layer), Some(rec), true) = (pre.layer, pre.rec.clone(), pre.input) else {
            return Err(format!(
                "applies an activation to unrolled step {} before it has both the recurrent product h R and the input x W; a SimpleRNN step is act(x W + b + h R + b')",
                pre.k
            ));
        };
        let step = Unrolled {
            rec,
            bias: pre.bias.clone(),
            activation,
        };
        match self.unrolled.get(&layer) {
            None => {
                self.unrolled.insert(layer, step);
            }
            Some(u) => {
                if *u.rec != *step.rec || u.bias != step.bias || u.activation != step.activation {
                    return Err(format!(
                        "unrolled step {} uses a different recurrent matrix, bias or activation than the earlier steps; an RNN shares them across time",
                        pre.k
                    ));
                }
            }
        }
        Ok(Step {
            axes: axes.to_vec(),
            kind: StepKind::State {
                layer,
                k: pre.k + 1,
            },
        })
    }

    /// Turns the Dense projection `layer` into the SimpleRNN its unrolled steps compute,
    /// once the graph has used `steps` steps: all of them, as the time axis is fixed.
    fn finish_unrolled(&mut self, layer: usize, steps: usize) -> R<()> {
        let Some(u) = self.unrolled.get(&layer).cloned() else {
            return Err("uses unrolled steps whose recurrence was never seen".into());
        };
        let t = self.static_time();
        if t != Some(steps as u64) {
            return Err(format!(
                "uses {steps} unrolled steps, but the graph's time axis is {}: an unrolled recurrence must cover the whole, fixed-length sequence",
                t.map_or("not fixed".to_string(), |t| format!("{t} long"))
            ));
        }
        let layer_ref = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| "refers to a missing layer".to_string())?;
        let Layer::Dense {
            location,
            units,
            activation: Activation::Linear,
            kernel,
            bias,
        } = layer_ref
        else {
            // Already converted: the sequence and the final state are both used.
            return if matches!(layer_ref, Layer::Recurrent { .. }) {
                Ok(())
            } else {
                Err("unrolled recurrence over a Dense layer with an activation".into())
            };
        };
        let bias = match (bias.take(), u.bias) {
            (Some(a), Some(b)) => Some(a.iter().zip(&b).map(|(x, y)| x + y).collect()),
            (a, b) => a.or(b),
        };
        *layer_ref = Layer::Recurrent {
            location: location.clone(),
            spec: RecurrentSpec {
                cell: Cell::SimpleRnn,
                units: *units,
                activation: u.activation,
                recurrent_activation: Activation::Sigmoid,
                return_sequences: true,
                go_backwards: false,
                bidirectional: None,
            },
            directions: vec![KerasWeights {
                kernel: std::mem::take(kernel),
                recurrent_kernel: u.rec.data.clone(),
                bias,
            }],
        };
        self.note(&format!(
            "a recurrence unrolled over {steps} time steps (PyTorch's dynamo export of nn.RNN) was imported as one SimpleRNN layer, which runs sequences of any length"
        ));
        Ok(())
    }

    /// `Concat` of the states after steps 1..=T along a size-1 axis: the layer's sequence.
    pub(super) fn step_concat(&mut self, parts: &[Rc<Value>], axis: i64) -> R<Option<Act>> {
        let mut states = Vec::with_capacity(parts.len());
        for p in parts {
            match &**p {
                Value::Step(Step {
                    axes,
                    kind: StepKind::State { layer, k },
                }) => states.push((axes, *layer, *k)),
                _ => return Ok(None),
            }
        }
        let Some(&(axes, layer, _)) = states.first() else {
            return Ok(None);
        };
        let axis = norm_axis(axis, axes.len())?;
        let in_order = states
            .iter()
            .enumerate()
            .all(|(i, (a, l, k))| *a == axes && *l == layer && *k == i + 1);
        if !in_order || !axes[axis].is_unit() {
            return Err("stacks unrolled states that are not steps 1, 2, ... of one layer along a size-1 axis".into());
        }
        let roles = self
            .roles
            .ok_or("stacks unrolled states before the time axis is known")?;
        self.finish_unrolled(layer, states.len())?;
        let mut axes = axes.clone();
        axes[axis] = Axis::In(roles.time);
        Ok(Some(Act {
            axes,
            origin: self.layers.len(),
            reversed: None,
            seq_of: Some(layer),
            last_of: None,
            dense: None,
            features_squeezed: false,
        }))
    }

    /// The final state of an unrolled layer used as a value (`h_n`, `y[:, -1]`).
    pub(super) fn state_to_act(&mut self, value: &Value) -> R<Option<Act>> {
        let Value::Step(Step {
            axes,
            kind: StepKind::State { layer, k },
        }) = value
        else {
            return Ok(None);
        };
        if self.static_time() != Some(*k as u64) {
            return Err(format!(
                "uses the state after {k} unrolled steps as a result; only the state after the whole sequence is a layer output"
            ));
        }
        self.finish_unrolled(*layer, *k)?;
        Ok(Some(Act {
            axes: axes.clone(),
            origin: self.layers.len(),
            reversed: None,
            seq_of: None,
            last_of: Some(*layer),
            dense: None,
            features_squeezed: false,
        }))
    }
}
