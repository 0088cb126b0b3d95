//! Building the layer plan: every shape, width, activation, quantization parameter and
//! weight bound is checked here, once, so that running never has to.

use super::{
    runs_integer, DensePlan, DenseWeights, DirWeights, EmbeddingPlan, LayerPlan, Model,
    NormalizationPlan, RecurrentPlan, Table,
};
use crate::cell::quantized::{is_bounded, IntCell, IntDense, IntDirectionViews};
use crate::cell::{CellSpec, DirectionViews};
use crate::error::{sat_u32, Feature, LoadError};
use crate::format::{
    Activation, Blob, Cell, DenseLayer, DirectionWeights, EmbeddingLayer, Layer, Merge, QParams,
    QuantMode, RecurrentLayer, TensorRef,
};
use crate::kernels::{F32View, I32View, Matrix, RequantView};
use crate::{MAX_LAYERS, MAX_WIDTH};

struct Ctx<'a> {
    weights: &'a [u8],
    layer: u8,
    mode: QuantMode,
}

impl<'a> Ctx<'a> {
    fn shape(&self) -> LoadError {
        LoadError::WeightShape { layer: self.layer }
    }

    fn bytes(&self, t: TensorRef, expected_len: usize, elem: usize) -> Result<&'a [u8], LoadError> {
        if t.len as usize != expected_len {
            return Err(self.shape());
        }
        let bounds = LoadError::WeightBounds { layer: self.layer };
        if !t.offset.is_multiple_of(elem.min(4) as u32) {
            return Err(bounds);
        }
        let start = t.offset as usize;
        let end = expected_len
            .checked_mul(elem)
            .and_then(|n| n.checked_add(start))
            .ok_or(bounds)?;
        self.weights.get(start..end).ok_or(bounds)
    }

    fn f32s(&self, t: TensorRef, len: usize) -> Result<F32View<'a>, LoadError> {
        self.bytes(t, len, 4).map(F32View::new)
    }

    fn i32s(&self, t: TensorRef, len: usize) -> Result<I32View<'a>, LoadError> {
        self.bytes(t, len, 4).map(I32View::new)
    }

    fn requants(&self, t: Option<TensorRef>, rows: usize) -> Result<RequantView<'a>, LoadError> {
        let t = t.ok_or(self.shape())?;
        let view = RequantView::new(self.i32s(t, rows)?);
        if view.iter().all(|r| r.is_valid()) {
            Ok(view)
        } else {
            Err(LoadError::BadQuantization { layer: self.layer })
        }
    }

    fn width(&self, w: u32) -> Result<usize, LoadError> {
        let w = w as usize;
        if w == 0 || w > MAX_WIDTH {
            return Err(LoadError::BadWidth { layer: self.layer });
        }
        Ok(w)
    }

    /// A float-path matrix: f32, or int8 with per-row f32 scales.
    fn matrix(
        &self,
        t: TensorRef,
        scales: Option<TensorRef>,
        rows: usize,
        cols: usize,
    ) -> Result<Matrix<'a>, LoadError> {
        let len = rows.checked_mul(cols).ok_or(self.shape())?;
        match (self.mode, scales) {
            (QuantMode::F32, None) => Ok(Matrix::F32(self.f32s(t, len)?)),
            (QuantMode::Int8Weights, Some(s)) => {
                let scales = self.f32s(s, rows)?;
                if scales.iter().any(|v| !v.is_finite()) {
                    return Err(LoadError::BadQuantization { layer: self.layer });
                }
                Ok(Matrix::I8 {
                    weights: self.bytes(t, len, 1)?,
                    scales,
                })
            }
            _ => Err(self.shape()),
        }
    }

    fn direction(
        &self,
        d: &DirectionWeights,
        cell: Cell,
        units: usize,
        input_width: usize,
    ) -> Result<DirWeights<'a>, LoadError> {
        let rows = cell.gates() * units;
        if runs_integer(self.mode) {
            return self
                .int_direction(d, cell, units, input_width)
                .map(DirWeights::Int);
        }
        // Refused earlier without the feature; a constant error then, which drops the rest.
        Feature::Float.require(Some(self.layer))?;
        let recurrent_bias = match (cell, d.recurrent_bias) {
            (_, None) => None,
            (Cell::Gru { reset_after: true }, Some(t)) => Some(self.f32s(t, rows)?),
            // A recurrent bias only exists in reset-after GRUs; elsewhere importers fold it
            // into `bias`, so a blob carrying one was written wrong.
            (_, Some(_)) => return Err(self.shape()),
        };
        if d.reset_scale.is_some() {
            return Err(self.shape());
        }
        Ok(DirWeights::Float(DirectionViews {
            kernel: self.matrix(d.kernel, d.kernel_scale, rows, input_width)?,
            recurrent_kernel: self.matrix(d.recurrent_kernel, d.recurrent_scale, rows, units)?,
            bias: d.bias.map(|t| self.f32s(t, rows)).transpose()?,
            recurrent_bias,
        }))
    }

    fn int_direction(
        &self,
        d: &DirectionWeights,
        cell: Cell,
        units: usize,
        input_width: usize,
    ) -> Result<IntDirectionViews<'a>, LoadError> {
        let rows = cell.gates() * units;
        let shape = self.shape();
        let kernel_len = rows.checked_mul(input_width).ok_or(shape)?;
        let recurrent_len = rows.checked_mul(units).ok_or(shape)?;
        let reset_before = matches!(cell, Cell::Gru { reset_after: false });
        let requant_reset = if reset_before {
            self.requants(d.reset_scale, units)?
        } else if d.reset_scale.is_some() {
            return Err(shape);
        } else {
            RequantView::default()
        };
        Ok(IntDirectionViews {
            kernel: self.bytes(d.kernel, kernel_len, 1)?,
            recurrent_kernel: self.bytes(d.recurrent_kernel, recurrent_len, 1)?,
            bias_x: self.i32s(d.bias.ok_or(shape)?, rows)?,
            bias_h: d
                .recurrent_bias
                .map(|t| self.i32s(t, rows))
                .transpose()?
                .unwrap_or_default(),
            requant_x: self.requants(d.kernel_scale, rows)?,
            requant_h: self.requants(d.recurrent_scale, rows)?,
            requant_reset,
        })
    }

    fn qparams(&self, p: QParams) -> Result<QParams, LoadError> {
        let (lo, hi) = self.mode.activation_range();
        if p.scale.is_finite() && p.scale > 0.0 && (lo..=hi).contains(&p.zero_point) {
            Ok(p)
        } else {
            Err(LoadError::BadQuantization { layer: self.layer })
        }
    }
}

fn cell_activation_ok(a: Activation) -> bool {
    !matches!(a, Activation::Softmax)
}

impl<'a> Model<'a> {
    /// Checks a blob completely and builds the model over it, borrowing its weights in place,
    /// with room for [`super::DEFAULT_LAYERS`] layers.
    ///
    /// # Errors
    /// A [`LoadError`] naming the first failed check: preamble, checksum, header decoding, then
    /// per layer (0-based index) widths, activations, stacking rules, quantization parameters
    /// and weight bounds.
    ///
    /// # Panics
    /// Never, whatever the bytes.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, LoadError> {
        Self::from_bytes_with_capacity(bytes)
    }
}

impl<'a, const L: usize> Model<'a, L> {
    /// As [`Model::from_bytes`], with room for `L` layers.
    ///
    /// # Errors
    /// As [`Model::from_bytes`]; [`LoadError::LayerCount`] when the blob has more than `L`
    /// layers.
    pub fn from_bytes_with_capacity(bytes: &'a [u8]) -> Result<Self, LoadError> {
        let blob = Blob::new_checked(bytes)?;
        Self::from_blob(&blob)
    }

    /// Builds the model over an already checked [`Blob`].
    ///
    /// # Errors
    /// As [`Model::from_bytes`], for the per-layer checks.
    pub fn from_blob(blob: &Blob<'a>) -> Result<Self, LoadError> {
        let info = blob.info();
        let mode = info.mode;
        let arithmetic = if mode.is_integer() {
            Feature::Integer
        } else {
            Feature::Float
        };
        arithmetic.require(None)?;
        let count = info.layer_count;
        if count == 0 || count > MAX_LAYERS.min(L) {
            return Err(LoadError::LayerCount {
                found: sat_u32(count),
            });
        }
        let first = Ctx {
            weights: &[],
            layer: 0,
            mode,
        };
        let input_features = first.width(info.input_features)?;
        let reads_tokens = matches!(blob.layers().next(), Some(Ok(Layer::Embedding(_))));
        // Token ids are not quantized; every other integer model quantizes its input.
        let input_quant = match (mode.is_integer() && !reads_tokens, info.input_quant) {
            (true, Some(p)) => Some(first.qparams(p)?),
            (false, None) => None,
            _ => return Err(LoadError::BadQuantization { layer: 0 }),
        };

        let mut layers = heapless::Vec::new();
        let mut width = input_features;
        let mut max_width = input_features;
        let mut max_units = 0;
        let mut max_cell_scratch = 0;
        let mut state_len = 0usize;
        let mut is_sequence = true;
        let mut streamable = true;
        let mut head_start = count;
        let mut output_quant = input_quant;
        let mut repeated_steps = None;

        for (index, layer) in blob.layers().enumerate() {
            let layer = &layer?;
            let ctx = Ctx {
                weights: blob.weights(),
                layer: index as u8,
                mode,
            };
            let plan = match layer {
                Layer::Recurrent(r) => {
                    if !is_sequence {
                        return Err(LoadError::RecurrentAfterVector { layer: ctx.layer });
                    }
                    let plan = recurrent_plan(&ctx, r, width, state_len)?;
                    let spec = plan.spec;
                    state_len += spec.state_len() * plan.directions();
                    max_units = max_units.max(spec.units);
                    let cell_scratch = match &plan.int {
                        Some(int) => int.scratch_len(width),
                        None => spec.scratch_len(),
                    };
                    max_cell_scratch = max_cell_scratch.max(cell_scratch);
                    streamable &= plan.merge.is_none() && !plan.go_backwards;
                    if !plan.return_sequences {
                        is_sequence = false;
                        head_start = head_start.min(index + 1);
                    }
                    if let Some(int) = &plan.int {
                        output_quant = Some(match int.quant.merged {
                            Some((p, _)) => p,
                            None => int.quant.output,
                        });
                    }
                    LayerPlan::Recurrent(plan)
                }
                Layer::Dense(d) => {
                    let plan = dense_plan(&ctx, d, width)?;
                    if let DenseWeights::Int(i) = &plan.weights {
                        output_quant = Some(i.quant.output);
                    }
                    LayerPlan::Dense(plan)
                }
                Layer::Normalization(n) => {
                    // Integer models normalise the f32 input on entry, before quantizing it.
                    if mode.is_integer() && index != 0 {
                        return Err(LoadError::BadPlacement { layer: ctx.layer });
                    }
                    LayerPlan::Normalization(
                        NormalizationPlan {
                            mean: ctx.f32s(n.mean, width)?,
                            std: ctx.f32s(n.std, width)?,
                        },
                        width,
                    )
                }
                Layer::Embedding(e) => {
                    Feature::Embedding.require(Some(ctx.layer))?;
                    if index != 0 || input_features != 1 {
                        return Err(LoadError::BadPlacement { layer: ctx.layer });
                    }
                    let plan = embedding_plan(&ctx, e)?;
                    if let Some(p) = e.quant {
                        output_quant = Some(p);
                    }
                    LayerPlan::Embedding(plan)
                }
                Layer::RepeatVector(r) => {
                    Feature::WholeWindow.require(Some(ctx.layer))?;
                    if is_sequence {
                        return Err(LoadError::BadPlacement { layer: ctx.layer });
                    }
                    let times = r.times as usize;
                    if times == 0 || times > MAX_REPEAT {
                        return Err(LoadError::BadWidth { layer: ctx.layer });
                    }
                    is_sequence = true;
                    streamable = false;
                    repeated_steps = Some(times);
                    LayerPlan::Repeat(times, width)
                }
            };
            width = plan.output_width();
            if width > MAX_WIDTH {
                return Err(LoadError::BadWidth { layer: ctx.layer });
            }
            max_width = max_width.max(width);
            // Capacity was checked against MAX_LAYERS above.
            layers.push(plan).map_err(|_| LoadError::LayerCount {
                found: sat_u32(count),
            })?;
        }

        Ok(Self {
            mode,
            input_quant,
            output_quant: if mode.is_integer() {
                output_quant
            } else {
                None
            },
            layers,
            blob_len: blob.len(),
            input_features,
            output_width: width,
            output_is_sequence: is_sequence,
            state_len,
            max_width,
            max_units,
            max_cell_scratch,
            streamable,
            head_start,
            repeated_steps,
            reads_tokens,
            extensions: blob.extensions(),
        })
    }
}

fn recurrent_plan<'a>(
    ctx: &Ctx<'a>,
    r: &RecurrentLayer,
    input_width: usize,
    state_offset: usize,
) -> Result<RecurrentPlan<'a>, LoadError> {
    let layer = Some(ctx.layer);
    match r.cell {
        Cell::SimpleRnn => Feature::SimpleRnn,
        Cell::Lstm => Feature::Lstm,
        Cell::Gru { .. } => Feature::Gru,
    }
    .require(layer)?;
    if r.bidirectional.is_some() || r.go_backwards {
        Feature::WholeWindow.require(layer)?;
    }
    let units = ctx.width(r.units)?;
    if !cell_activation_ok(r.activation) || !cell_activation_ok(r.recurrent_activation) {
        return Err(LoadError::BadActivation { layer: ctx.layer });
    }
    let unsupported = LoadError::Unsupported { layer: ctx.layer };
    // Checked in every build; kept only with `whole-window` (Bidirectional was refused above
    // otherwise, so it is the empty default).
    #[cfg_attr(not(feature = "whole-window"), allow(unused_variables))]
    let backward = match (r.bidirectional, &r.backward) {
        (None, None) => DirWeights::default(),
        // Keras allows a Bidirectional around a go_backwards layer (it then flips the backward
        // copy); no exporter we know writes one, so refuse rather than guess.
        (Some(_), Some(_)) if r.go_backwards => return Err(unsupported),
        (Some(_), Some(b)) => ctx.direction(b, r.cell, units, input_width)?,
        _ => return Err(ctx.shape()),
    };
    let forward = ctx.direction(&r.forward, r.cell, units, input_width)?;
    if let (Some(_), DirWeights::Float(f), DirWeights::Float(b)) =
        (r.bidirectional, &forward, &backward)
    {
        if f.bias.is_some() != b.bias.is_some() {
            return Err(ctx.shape());
        }
    }
    let spec = CellSpec {
        cell: r.cell,
        units,
        activation: r.activation,
        recurrent_activation: r.recurrent_activation,
    };
    let int = match (ctx.mode.is_integer(), r.quant) {
        (false, None) => None,
        (true, Some(q)) => {
            let bad = LoadError::BadQuantization { layer: ctx.layer };
            ctx.qparams(q.output)?;
            let gated = !matches!(r.cell, Cell::SimpleRnn);
            // LSTM and GRU cells compute in Q0.15, so their activations must be bounded.
            if gated && !(is_bounded(r.activation) && is_bounded(r.recurrent_activation)) {
                return Err(LoadError::BadActivation { layer: ctx.layer });
            }
            let merged_ok = match (r.bidirectional, q.merged) {
                (Some(Merge::Concat) | None, None) => true,
                (Some(Merge::Sum | Merge::Ave | Merge::Mul), Some((p, m))) => {
                    ctx.qparams(p)?;
                    m.is_valid()
                }
                _ => false,
            };
            if !merged_ok
                || !q.output_requant.is_valid()
                || !q.h_to_q15.is_valid()
                || q.cell_frac_bits > 15
            {
                return Err(bad);
            }
            let (lo, hi) = ctx.mode.activation_range();
            Some(IntCell {
                spec,
                quant: q,
                lo,
                hi,
            })
        }
        _ => return Err(LoadError::BadQuantization { layer: ctx.layer }),
    };
    Ok(RecurrentPlan {
        spec,
        input_width,
        return_sequences: r.return_sequences,
        go_backwards: r.go_backwards,
        merge: r.bidirectional,
        forward,
        #[cfg(feature = "whole-window")]
        backward,
        state_offset,
        int,
    })
}

/// Largest vocabulary: token ids travel as f32, exact up to 2^24.
pub const MAX_VOCAB: usize = 1 << 24;
/// Largest RepeatVector count.
pub const MAX_REPEAT: usize = 1 << 16;

fn embedding_plan<'a>(ctx: &Ctx<'a>, e: &EmbeddingLayer) -> Result<EmbeddingPlan<'a>, LoadError> {
    let vocab = e.vocab as usize;
    if vocab == 0 || vocab > MAX_VOCAB {
        return Err(LoadError::BadWidth { layer: ctx.layer });
    }
    let dim = ctx.width(e.dim)?;
    let len = vocab.checked_mul(dim).ok_or(ctx.shape())?;
    let table = match (ctx.mode.is_integer(), e.quant) {
        (false, None) => Table::F32(ctx.f32s(e.table, len)?),
        (true, Some(p)) => {
            ctx.qparams(p)?;
            Table::I16(ctx.bytes(e.table, len, 2)?)
        }
        _ => return Err(LoadError::BadQuantization { layer: ctx.layer }),
    };
    Ok(EmbeddingPlan { vocab, dim, table })
}

fn dense_plan<'a>(
    ctx: &Ctx<'a>,
    d: &DenseLayer,
    input_width: usize,
) -> Result<DensePlan<'a>, LoadError> {
    let units = ctx.width(d.units)?;
    if d.activation == Activation::Softmax {
        Feature::Softmax.require(Some(ctx.layer))?;
    }
    let kernel_len = units.checked_mul(input_width).ok_or(ctx.shape())?;
    let weights = if runs_integer(ctx.mode) {
        let q = d
            .quant
            .ok_or(LoadError::BadQuantization { layer: ctx.layer })?;
        ctx.qparams(q.output)?;
        if !q.output_requant.is_valid() {
            return Err(LoadError::BadQuantization { layer: ctx.layer });
        }
        let (lo, hi) = ctx.mode.activation_range();
        DenseWeights::Int(IntDense {
            kernel: ctx.bytes(d.kernel, kernel_len, 1)?,
            bias: ctx.i32s(d.bias.ok_or(ctx.shape())?, units)?,
            requant: ctx.requants(d.kernel_scale, units)?,
            quant: q,
            activation: d.activation,
            lo,
            hi,
        })
    } else {
        Feature::Float.require(Some(ctx.layer))?;
        if d.quant.is_some() {
            return Err(LoadError::BadQuantization { layer: ctx.layer });
        }
        DenseWeights::Float {
            kernel: ctx.matrix(d.kernel, d.kernel_scale, units, input_width)?,
            bias: d.bias.map(|t| ctx.f32s(t, units)).transpose()?,
        }
    };
    Ok(DensePlan {
        units,
        activation: d.activation,
        weights,
    })
}

#[cfg(test)]
mod tests {
    use crate::format::test_blob::{blob, Weights};
    use crate::format::{
        Activation, Cell, DirectionWeights, Extensions, Layer, RecurrentLayer, TensorRef,
    };
    use crate::{Feature, LoadError, Model};

    /// The worked example of the format docs: an f32 SimpleRNN(1).
    fn simple_rnn_blob() -> (std::boxed::Box<crate::format::test_blob::Buf>, usize) {
        let mut w = Weights::default();
        let mut tensor = |values: &[f32]| -> TensorRef { w.push(values) };
        let forward = DirectionWeights {
            kernel: tensor(&[2.0, 3.0]),
            recurrent_kernel: tensor(&[-0.1]),
            bias: Some(tensor(&[0.0])),
            recurrent_bias: None,
            kernel_scale: None,
            recurrent_scale: None,
            reset_scale: None,
        };
        let layer = Layer::Recurrent(RecurrentLayer {
            cell: Cell::SimpleRnn,
            units: 1,
            activation: Activation::Relu,
            recurrent_activation: Activation::Sigmoid,
            return_sequences: true,
            go_backwards: false,
            bidirectional: None,
            forward,
            backward: None,
            quant: None,
        });
        blob(2, &[layer], &w, Extensions::default())
    }

    /// A build without a part the blob needs refuses it at load and names the feature (CI
    /// runs these tests with every feature and with only `integer` and `lstm`).
    #[test]
    fn left_out_features_are_refused_by_name() {
        let (buf, len) = simple_rnn_blob();
        let loaded = Model::from_bytes(&buf.0[..len]).map(|_| ());
        let expected = if !cfg!(feature = "float") {
            Err(LoadError::FeatureDisabled {
                feature: Feature::Float,
                layer: None,
            })
        } else if !cfg!(feature = "simple-rnn") {
            Err(LoadError::FeatureDisabled {
                feature: Feature::SimpleRnn,
                layer: Some(0),
            })
        } else {
            Ok(())
        };
        assert_eq!(loaded, expected);
        if let Err(e) = expected {
            let message = std::format!("{e}");
            assert!(message.contains("feature"), "{message}");
        }
    }
}
