//! The trained network, whose forward pass is the runtime's: the same equations as
//! `edgernn::cell` (Keras 3 semantics, gate orders LSTM i, f, c, o and GRU z, r, h, both GRU
//! reset variants), with parameters kept in Keras layout so that export is a copy. Each
//! direction of each recurrent layer is one [`fused`] op over the whole window (hand-written
//! backward pass); the same cells written from candle ops, differentiated by candle, remain
//! as the reference the op is tested against (`Net::reference_steps`, tests only). The
//! Dense layers, `RepeatVector` and the losses are candle ops.
//!
//! Initialisation follows Keras' defaults (Glorot-uniform kernels, orthogonal recurrent
//! kernels, zero biases, LSTM forget-gate bias 1) from a seeded generator of our own, so a
//! seed fixes every weight and the batch order: candle's random generator is not used.

use candle_core::{Device, IndexOp, Result, Tensor, Var};

use super::fused;
use edgernn::format::{Activation, Cell};

/// SplitMix64 (Steele, Lea & Flood 2014): small, seedable, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A uniform index below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// The architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct NetSpec {
    pub inputs: usize,
    pub cell: Cell,
    pub units: usize,
    pub layers: usize,
    pub bidirectional: bool,
    /// The cell activation (`activation` in Keras); the recurrent activation is sigmoid.
    pub activation: Activation,
    /// Hidden Dense widths (relu) after the recurrent stack.
    pub dense: Vec<usize>,
    /// Output width: 1 for forecasting, the class count for classification.
    pub outputs: usize,
    /// Softmax on the output (classification); linear otherwise.
    pub softmax: bool,
    /// Sequence autoencoder: where the `RepeatVector` goes ([`Net::reconstruct`]).
    pub repeat: Option<Repeat>,
}

/// A Keras `RepeatVector(times)` after `after` recurrent layers (the encoder, whose last layer
/// returns one vector); the remaining recurrent layers (the decoder) return sequences and the
/// Dense layers apply per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    pub after: usize,
    pub times: usize,
}

/// The recurrent activation of LSTM and GRU: Keras' default.
pub const RECURRENT_ACTIVATION: Activation = Activation::Sigmoid;

/// One direction's parameters in Keras layout.
pub struct Direction {
    /// `[input, gates * units]`.
    pub kernel: Var,
    /// `[units, gates * units]`.
    pub recurrent: Var,
    /// `[gates * units]` (the input bias for GRU `reset_after`).
    pub bias: Var,
    /// GRU `reset_after` only: `[3 * units]`.
    pub recurrent_bias: Option<Var>,
}

/// One recurrent layer.
pub struct Recurrent {
    pub forward: Direction,
    pub backward: Option<Direction>,
}

/// One Dense layer: `kernel [in, units]`, `bias [units]`.
pub struct Dense {
    pub kernel: Var,
    pub bias: Var,
    pub units: usize,
}

/// The network: a recurrent stack, hidden Dense layers, an output Dense layer.
pub struct Net {
    pub spec: NetSpec,
    pub recurrent: Vec<Recurrent>,
    /// Hidden layers, then the output layer.
    pub dense: Vec<Dense>,
}

fn var(values: Vec<f32>, shape: &[usize]) -> Result<Var> {
    Var::from_vec(values, shape, &Device::Cpu)
}

/// Keras `glorot_uniform` for a `[fan_in, fan_out]` kernel.
fn glorot(rng: &mut Rng, fan_in: usize, fan_out: usize) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    (0..fan_in * fan_out)
        .map(|_| ((2.0 * rng.uniform() - 1.0) * limit) as f32)
        .collect()
}

/// Keras `orthogonal` for `[rows, cols]` with `rows <= cols`: orthonormal rows (Gram-Schmidt
/// on Gaussian rows, in f64).
fn orthogonal(rng: &mut Rng, rows: usize, cols: usize) -> Vec<f32> {
    let mut m: Vec<Vec<f64>> = Vec::with_capacity(rows);
    while m.len() < rows {
        let mut v: Vec<f64> = (0..cols).map(|_| rng.normal()).collect();
        for _ in 0..2 {
            // Twice: re-orthogonalisation keeps the rows orthonormal to f64 precision.
            for u in &m {
                let d: f64 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(x, a)| *x -= d * a);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-6 {
            m.push(v.iter().map(|x| x / norm).collect());
        }
    }
    m.iter().flatten().map(|&x| x as f32).collect()
}

impl Net {
    /// A freshly initialised network; the same seed gives the same weights.
    ///
    /// # Errors
    /// candle's errors (none expected on the CPU).
    pub fn new(spec: NetSpec, rng: &mut Rng) -> Result<Self> {
        let gates = spec.cell.gates();
        let h = spec.units;
        let mut recurrent = Vec::with_capacity(spec.layers);
        let mut width = spec.inputs;
        for _ in 0..spec.layers {
            let direction = |rng: &mut Rng| -> Result<Direction> {
                let mut bias = vec![0f32; gates * h];
                if spec.cell == Cell::Lstm {
                    // `unit_forget_bias=True`: the forget gate starts open.
                    bias[h..2 * h].fill(1.0);
                }
                Ok(Direction {
                    kernel: var(glorot(rng, width, gates * h), &[width, gates * h])?,
                    recurrent: var(orthogonal(rng, h, gates * h), &[h, gates * h])?,
                    bias: var(bias, &[gates * h])?,
                    recurrent_bias: match spec.cell {
                        Cell::Gru { reset_after: true } => Some(var(vec![0.0; 3 * h], &[3 * h])?),
                        _ => None,
                    },
                })
            };
            let forward = direction(rng)?;
            let backward = if spec.bidirectional {
                Some(direction(rng)?)
            } else {
                None
            };
            recurrent.push(Recurrent { forward, backward });
            width = if spec.bidirectional { 2 * h } else { h };
        }
        let mut dense = Vec::new();
        for &units in spec.dense.iter().chain([&spec.outputs]) {
            dense.push(Dense {
                kernel: var(glorot(rng, width, units), &[width, units])?,
                bias: var(vec![0.0; units], &[units])?,
                units,
            });
            width = units;
        }
        Ok(Self {
            spec,
            recurrent,
            dense,
        })
    }

    /// Every trainable variable, in a fixed order.
    pub fn vars(&self) -> Vec<Var> {
        let mut out = Vec::new();
        let push_dir = |d: &Direction, out: &mut Vec<Var>| {
            out.extend([d.kernel.clone(), d.recurrent.clone(), d.bias.clone()]);
            out.extend(d.recurrent_bias.clone());
        };
        for l in &self.recurrent {
            push_dir(&l.forward, &mut out);
            if let Some(b) = &l.backward {
                push_dir(b, &mut out);
            }
        }
        for d in &self.dense {
            out.extend([d.kernel.clone(), d.bias.clone()]);
        }
        out
    }

    /// The network's output for `x` `[time, batch, inputs]` (time-major, normalised inputs):
    /// forecast values `[batch, 1]` (normalised), or class logits `[batch, classes]` (softmax
    /// is left to the loss, and to [`probabilities`]). `track` builds the autodiff graph.
    ///
    ///
    /// # Errors
    /// candle's shape errors.
    pub fn forward(&self, x: &Tensor, track: bool) -> Result<Tensor> {
        let seq = self.recurrent_steps(x, track)?;
        let y = self.last_vector(&seq)?;
        self.head(y, track)
    }

    /// What a layer with `return_sequences=False` returns, from its per-step outputs `seq`:
    /// the forward direction's last step and, for Bidirectional, the backward direction's
    /// final state, which is its output at step 0.
    fn last_vector(&self, seq: &Tensor) -> Result<Tensor> {
        let steps = seq.dim(0)?;
        if steps == 0 {
            candle_core::bail!("an empty sequence has no last vector")
        }
        let last = seq.i(steps - 1)?;
        if !self.spec.bidirectional {
            return Ok(last);
        }
        let h = self.spec.units;
        Tensor::cat(&[&last.narrow(1, 0, h)?, &seq.i(0)?.narrow(1, h, h)?], 1)
    }

    /// The sequence autoencoder's reconstruction of `x` `[time, batch, inputs]`:
    /// `[time * batch, outputs]` (time-major rows): the encoder's vector repeated over the
    /// `RepeatVector`'s count, decoded, and the Dense layers applied per step. Needs
    /// [`NetSpec::repeat`].
    ///
    /// # Errors
    /// candle's shape errors.
    pub fn reconstruct(&self, x: &Tensor, track: bool) -> Result<Tensor> {
        if self.spec.repeat.is_none() {
            candle_core::bail!("reconstruct needs an autoencoder (NetSpec::repeat)");
        }
        self.forward_every_step(x, track)
    }

    /// The head's output after every time step, `[time * batch, outputs]` (time-major rows):
    /// what the exported blob outputs after each step of a stream. For next-token training,
    /// where every position of a window predicts the token after it. Unidirectional stacks
    /// only (a backward direction's output at a step depends on later steps).
    ///
    /// # Errors
    /// candle's shape errors.
    pub fn forward_every_step(&self, x: &Tensor, track: bool) -> Result<Tensor> {
        let seq = self.recurrent_steps(x, track)?;
        let (steps, batch, width) = seq.dims3()?;
        self.head(seq.reshape((steps * batch, width))?, track)
    }

    fn param(v: &Var, track: bool) -> Tensor {
        if track {
            v.as_tensor().clone()
        } else {
            v.as_tensor().detach()
        }
    }

    /// The Dense layers on `y` `[rows, width]`: relu hidden layers, a linear output.
    fn head(&self, mut y: Tensor, track: bool) -> Result<Tensor> {
        let p = |v: &Var| Self::param(v, track);
        let hidden = self.dense.len().saturating_sub(1);
        for (i, d) in self.dense.iter().enumerate() {
            y = y.matmul(&p(&d.kernel))?.broadcast_add(&p(&d.bias))?;
            if i < hidden {
                y = y.relu()?;
            }
        }
        Ok(y)
    }

    /// The recurrent stack's output at every step, `[time, batch, width]`: each direction
    /// of each layer one [`fused`] op.
    fn recurrent_steps(&self, x: &Tensor, track: bool) -> Result<Tensor> {
        let p = |v: &Var| Self::param(v, track);
        let mut seq = x.clone();
        for (i, layer) in self.recurrent.iter().enumerate() {
            if let Some(r) = self.spec.repeat.filter(|r| r.after == i) {
                // RepeatVector: the encoder's vector at every step.
                let v = self.last_vector(&seq)?;
                let (batch, width) = v.dims2()?;
                seq = v.unsqueeze(0)?.broadcast_as((r.times, batch, width))?;
            }
            let run = |d: &Direction, reverse: bool| -> Result<Tensor> {
                let params = fused::pack(
                    &p(&d.kernel),
                    &p(&d.recurrent),
                    &p(&d.bias),
                    d.recurrent_bias.as_ref().map(&p).as_ref(),
                )?;
                fused::run(
                    self.spec.cell,
                    self.spec.activation,
                    RECURRENT_ACTIVATION,
                    self.spec.units,
                    reverse,
                    &seq,
                    &params,
                )
            };
            let fwd = run(&layer.forward, false)?;
            seq = match &layer.backward {
                // Keras Bidirectional, merge_mode="concat": [forward, backward] per step.
                Some(b) => Tensor::cat(&[&fwd, &run(b, true)?], 2)?,
                None => fwd,
            };
        }
        Ok(seq)
    }

    /// [`Net::recurrent_steps`] written from candle ops, one step at a time, differentiated
    /// by candle: the reference the fused op's forward and backward passes are tested
    /// against.
    #[cfg(test)]
    fn reference_steps(&self, x: &Tensor, track: bool) -> Result<Tensor> {
        let p = |v: &Var| Self::param(v, track);
        let steps = x.dim(0)?;
        let mut seq: Vec<Tensor> = (0..steps).map(|t| x.i(t)).collect::<Result<_>>()?;
        for (i, layer) in self.recurrent.iter().enumerate() {
            if let Some(r) = self.spec.repeat.filter(|r| r.after == i) {
                let v = self.last_vector(&Tensor::stack(&seq, 0)?)?;
                seq = vec![v; r.times];
            }
            let fwd = self.direction(&layer.forward, &seq, false, &p)?;
            seq = match &layer.backward {
                // Keras Bidirectional, merge_mode="concat": [forward, backward] per step.
                Some(b) => {
                    let bwd = self.direction(b, &seq, true, &p)?;
                    fwd.iter()
                        .zip(&bwd)
                        .map(|(f, b)| Tensor::cat(&[f, b], 1))
                        .collect::<Result<_>>()?
                }
                None => fwd,
            };
        }
        Tensor::stack(&seq, 0)
    }

    /// Runs one direction of a recurrent layer over the steps `xs` (each `[batch, input]`);
    /// returns every step's `h` in time order (a backward direction's outputs re-reversed,
    /// as Keras' Bidirectional does).
    #[cfg(test)]
    fn direction(
        &self,
        d: &Direction,
        xs: &[Tensor],
        reverse: bool,
        p: &impl Fn(&Var) -> Tensor,
    ) -> Result<Vec<Tensor>> {
        let Some(first) = xs.first() else {
            return Ok(Vec::new());
        };
        let batch = first.dim(0)?;
        let h_units = self.spec.units;
        let (a, ra) = (self.spec.activation, RECURRENT_ACTIVATION);
        let (w, b, u) = (p(&d.kernel), p(&d.bias), p(&d.recurrent));
        let mut h = Tensor::zeros((batch, h_units), candle_core::DType::F32, &Device::Cpu)?;
        let mut c = h.clone();
        let mut outputs = Vec::with_capacity(xs.len());
        let gru_split = match self.spec.cell {
            Cell::Gru { reset_after: false } => Some((
                u.narrow(1, 0, 2 * h_units)?,
                u.narrow(1, 2 * h_units, h_units)?,
            )),
            _ => None,
        };
        let rec_bias = d.recurrent_bias.as_ref().map(p);
        for s in 0..xs.len() {
            let t = if reverse { xs.len() - 1 - s } else { s };
            // x W + b
            let xt = xs[t].matmul(&w)?.broadcast_add(&b)?;
            h = match self.spec.cell {
                // h = a(x W + h U + b)
                Cell::SimpleRnn => activate(a, &(xt + h.matmul(&u)?)?)?,
                // i, f, c, o (edgernn::cell::lstm)
                Cell::Lstm => {
                    let z = (xt + h.matmul(&u)?)?;
                    let gates_if = activate(ra, &z.narrow(1, 0, 2 * h_units)?)?;
                    let i = gates_if.narrow(1, 0, h_units)?;
                    let f = gates_if.narrow(1, h_units, h_units)?;
                    let g = activate(a, &z.narrow(1, 2 * h_units, h_units)?)?;
                    let o = activate(ra, &z.narrow(1, 3 * h_units, h_units)?)?;
                    c = ((f * &c)? + (i * g)?)?;
                    (o * activate(a, &c)?)?
                }
                // z, r, h (edgernn::cell::gru)
                Cell::Gru { reset_after: true } => {
                    let mut zh = h.matmul(&u)?;
                    if let Some(b) = &rec_bias {
                        zh = zh.broadcast_add(b)?;
                    }
                    let zr = activate(
                        ra,
                        &(xt.narrow(1, 0, 2 * h_units)? + zh.narrow(1, 0, 2 * h_units)?)?,
                    )?;
                    let z = zr.narrow(1, 0, h_units)?;
                    let r = zr.narrow(1, h_units, h_units)?;
                    let cand = activate(
                        a,
                        &(xt.narrow(1, 2 * h_units, h_units)?
                            + (r * zh.narrow(1, 2 * h_units, h_units)?)?)?,
                    )?;
                    gru_update(&z, &h, &cand)?
                }
                Cell::Gru { reset_after: false } => {
                    let Some((u_zr, u_h)) = &gru_split else {
                        unreachable!("split above for reset_after = false")
                    };
                    let zr = activate(ra, &(xt.narrow(1, 0, 2 * h_units)? + h.matmul(u_zr)?)?)?;
                    let z = zr.narrow(1, 0, h_units)?;
                    let r = zr.narrow(1, h_units, h_units)?;
                    let cand = activate(
                        a,
                        &(xt.narrow(1, 2 * h_units, h_units)? + (r * &h)?.matmul(u_h)?)?,
                    )?;
                    gru_update(&z, &h, &cand)?
                }
            };
            outputs.push(h.clone());
        }
        if reverse {
            outputs.reverse();
        }
        Ok(outputs)
    }

    /// Copies every variable's current value (for keeping the best epoch).
    ///
    /// # Errors
    /// candle's errors.
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        self.vars().iter().map(|v| v.as_tensor().copy()).collect()
    }

    /// Restores values taken by [`Net::snapshot`].
    ///
    /// # Errors
    /// candle's errors (shape mismatch: a snapshot of another network).
    pub fn restore(&self, snapshot: &[Tensor]) -> Result<()> {
        for (v, t) in self.vars().iter().zip(snapshot) {
            v.set(t)?;
        }
        Ok(())
    }
}

/// `h' = z * h + (1 - z) * hh`, written as the runtime computes it.
#[cfg(test)]
fn gru_update(z: &Tensor, h: &Tensor, cand: &Tensor) -> Result<Tensor> {
    (z * h)? + (z.affine(-1.0, 1.0)? * cand)?
}

/// The Keras 3 activations, as `edgernn::math` computes them.
///
/// # Errors
/// candle's errors.
pub fn activate(a: Activation, x: &Tensor) -> Result<Tensor> {
    match a {
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => candle_nn::ops::sigmoid(x),
        Activation::Relu => x.relu(),
        // clip(x / 6 + 0.5, 0, 1)
        Activation::HardSigmoid => x.affine(1.0 / 6.0, 0.5)?.clamp(0f32, 1f32),
        Activation::Linear => Ok(x.clone()),
        Activation::Softmax => candle_nn::ops::softmax_last_dim(x),
    }
}

/// Class probabilities from logits.
///
/// # Errors
/// candle's errors.
pub fn probabilities(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax_last_dim(logits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / x.abs().max(1.0))
            .fold(0f32, f32::max)
    }

    /// The fused op's outputs and every gradient (parameters and inputs) against candle's
    /// autodiff of the same equations written from candle ops.
    #[test]
    fn fused_op_matches_candle_autodiff_for_every_cell() {
        /// f32 sums in another order: a few ulp of the gradients' magnitudes.
        const TOLERANCE: f32 = 2e-5;
        let cells = [
            (Cell::SimpleRnn, Activation::Tanh),
            (Cell::SimpleRnn, Activation::Relu),
            (Cell::Lstm, Activation::Tanh),
            (Cell::Lstm, Activation::HardSigmoid),
            (Cell::Gru { reset_after: true }, Activation::Tanh),
            (Cell::Gru { reset_after: false }, Activation::Tanh),
            (Cell::Gru { reset_after: false }, Activation::Sigmoid),
        ];
        let mut rng = Rng::new(7);
        for (cell, activation) in cells {
            for (layers, bidirectional, repeat) in
                [(1, false, false), (2, true, false), (2, false, true)]
            {
                let (steps, batch, inputs) = (5, 3, 2);
                let spec = NetSpec {
                    inputs,
                    cell,
                    units: 4,
                    layers,
                    bidirectional,
                    activation,
                    dense: Vec::new(),
                    outputs: 1,
                    softmax: false,
                    repeat: repeat.then_some(Repeat {
                        after: 1,
                        times: steps,
                    }),
                };
                let net = Net::new(spec, &mut rng).unwrap();
                // Non-zero biases so that every bias gradient path is exercised.
                for v in net.vars() {
                    let n = v.elem_count();
                    let noise: Vec<f32> = (0..n).map(|_| (rng.normal() * 0.5) as f32).collect();
                    let t = Tensor::from_vec(noise, v.shape(), &Device::Cpu).unwrap();
                    v.set(&(v.as_tensor() + t).unwrap()).unwrap();
                }
                let xv: Vec<f32> = (0..steps * batch * inputs)
                    .map(|_| (rng.normal() * 1.5) as f32)
                    .collect();
                let x = Var::from_vec(xv, (steps, batch, inputs), &Device::Cpu).unwrap();
                let fused = net.recurrent_steps(x.as_tensor(), true).unwrap();
                let reference = net.reference_steps(x.as_tensor(), true).unwrap();
                let name =
                    format!("{cell:?} {activation:?} x{layers} bi={bidirectional} repeat={repeat}");
                let d = max_diff(&fused, &reference);
                assert!(d < 1e-6, "{name}: outputs differ by {d}");
                let w: Vec<f32> = (0..fused.elem_count())
                    .map(|_| rng.normal() as f32)
                    .collect();
                let w = Tensor::from_vec(w, fused.shape(), &Device::Cpu).unwrap();
                let gf = (&fused * &w)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let gr = (&reference * &w)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let mut all = net.vars();
                all.push(x);
                for (k, v) in all.iter().enumerate() {
                    // The Dense layers are not part of the recurrent stack.
                    let Some(b) = gr.get(v.as_tensor()) else {
                        continue;
                    };
                    let a = gf.get(v.as_tensor()).expect("fused gradient");
                    let d = max_diff(a, b);
                    assert!(
                        d < TOLERANCE,
                        "{name}: gradient of variable {k} differs by {d}"
                    );
                }
            }
        }
    }
}
