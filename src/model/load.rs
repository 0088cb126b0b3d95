//! Building the layer plan: every shape, width, activation, quantization parameter and
//! weight bound is checked here, once, so that running never has to.

use super::{
    runs_integer, DensePlan, DenseWeights, DirWeights, EmbeddingPlan, LayerPlan, Model,
    NormalizationPlan, RecurrentPlan, Table,
};
use crate::cell::quantized::{cell_quant, is_bounded, IntCell, IntDense, IntDirectionViews};
use crate::cell::{CellSpec, DirectionViews};
use crate::error::{sat_u32, Feature, LoadError};
use crate::format::{
    Activation, Blob, Cell, DenseLayer, DirectionWeights, EmbeddingLayer, Layer, Merge, QParams,
    QuantMode, RecurrentLayer, RepeatLayer, TensorRef,
};
use crate::kernels::{F32View, I32View, Matrix, RequantView, WeightLayout};
use crate::{MAX_LAYERS, MAX_WIDTH};

struct Ctx<'a> {
    weights: &'a [u8],
    layer: u8,
    mode: QuantMode,
    /// The recurrent layers' int8 matrices' layout (the blob's flags).
    layout: WeightLayout,
}

impl<'a> Ctx<'a> {
    fn shape(&self) -> LoadError {
        LoadError::WeightShape { layer: self.layer }
    }

    fn bytes(&self, t: TensorRef, expected_len: usize, elem: usize) -> Result<&'a [u8], LoadError> {
        self.tensor_bytes(t, expected_len, elem)
            .ok_or(if t.len as usize != expected_len {
                self.shape()
            } else {
                LoadError::WeightBounds { layer: self.layer }
            })
    }

    /// The bytes of `t`, `expected_len` elements of `elem` bytes, if it has that length and
    /// lies aligned in the weight section. Out of line with a result in two registers: every
    /// tensor of every layer goes through it ([`Ctx::bytes`] names the failed check).
    #[inline(never)]
    fn tensor_bytes(&self, t: TensorRef, expected_len: usize, elem: usize) -> Option<&'a [u8]> {
        if t.len as usize != expected_len || !t.offset.is_multiple_of(elem.min(4) as u32) {
            return None;
        }
        let start = t.offset as usize;
        let end = expected_len.checked_mul(elem)?.checked_add(start)?;
        self.weights.get(start..end)
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
        let mut out = DirWeights::default();
        self.direction_into(d, cell, units, input_width, &mut out)?;
        Ok(out)
    }

    /// Checks one direction's weights and writes their views to `out` (unspecified on error).
    fn direction_into(
        &self,
        d: &DirectionWeights,
        cell: Cell,
        units: usize,
        input_width: usize,
        out: &mut DirWeights<'a>,
    ) -> Result<(), LoadError> {
        let rows = cell.gates() * units;
        if runs_integer(self.mode) {
            *out = DirWeights::Int(IntDirectionViews::default());
            return match out {
                DirWeights::Int(views) => self.int_direction(d, cell, units, input_width, views),
                DirWeights::Float(_) => Err(self.shape()),
            };
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
        *out = DirWeights::Float(DirectionViews {
            kernel: self.matrix(d.kernel, d.kernel_scale, rows, input_width)?,
            recurrent_kernel: self.matrix(d.recurrent_kernel, d.recurrent_scale, rows, units)?,
            bias: d.bias.map(|t| self.f32s(t, rows)).transpose()?,
            recurrent_bias,
        });
        Ok(())
    }

    /// Checks one direction's integer weights and writes their views to `out` field by field.
    fn int_direction(
        &self,
        d: &DirectionWeights,
        cell: Cell,
        units: usize,
        input_width: usize,
        out: &mut IntDirectionViews<'a>,
    ) -> Result<(), LoadError> {
        let rows = cell.gates() * units;
        let shape = self.shape();
        // Interleaved, every gate's rows and every block of units a cell projects start on a
        // block of 4 rows when the units are a multiple of 4 (the cells' blocks of units are).
        let layout = self.layout;
        if !layout.can_start_at(units) {
            return Err(LoadError::PackedShape { layer: self.layer });
        }
        out.layout = layout;
        let kernel_len = rows
            .checked_mul(layout.row_bytes(input_width))
            .ok_or(shape)?;
        let recurrent_len = rows.checked_mul(layout.row_bytes(units)).ok_or(shape)?;
        let reset_before = matches!(cell, Cell::Gru { reset_after: false });
        if reset_before {
            out.requant_reset = self.requants(d.reset_scale, units)?;
        } else if d.reset_scale.is_some() {
            return Err(shape);
        }
        out.kernel = self.bytes(d.kernel, kernel_len, 1)?;
        out.recurrent_kernel = self.bytes(d.recurrent_kernel, recurrent_len, 1)?;
        out.bias_x = self.i32s(d.bias.ok_or(shape)?, rows)?;
        if let Some(t) = d.recurrent_bias {
            out.bias_h = self.i32s(t, rows)?;
        }
        out.requant_x = self.requants(d.kernel_scale, rows)?;
        out.requant_h = self.requants(d.recurrent_scale, rows)?;
        Ok(())
    }

    /// Whether `p` is usable in this mode; out of line, as five places check parameters.
    #[inline(never)]
    fn qparams_ok(&self, p: QParams) -> bool {
        let (lo, hi) = self.mode.activation_range();
        p.scale.is_finite() && p.scale > 0.0 && (lo..=hi).contains(&p.zero_point)
    }

    fn qparams(&self, p: QParams) -> Result<QParams, LoadError> {
        if self.qparams_ok(p) {
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

    /// As [`Model::from_bytes_with_capacity`], but builds the model in `slot` (`Some` after
    /// success, `None` after an error) instead of returning it, and returns a reference to it.
    ///
    /// For firmware that counts its stack: the returned-value form builds the plans on the
    /// loader's stack and then moves them to the caller (the value is a few hundred bytes),
    /// so while it runs the stack holds the model twice; this form builds it once, in place.
    ///
    /// # Errors
    /// As [`Model::from_bytes_with_capacity`].
    ///
    /// # Panics
    /// Never, whatever the bytes.
    pub fn load_into<'s>(
        slot: &'s mut Option<Self>,
        bytes: &'a [u8],
    ) -> Result<&'s mut Self, LoadError> {
        *slot = None;
        // One layer description for the blob's checks and the plans (see `Blob::check_with`).
        let mut layer = Layer::RepeatVector(RepeatLayer { times: 0 });
        let blob = Blob::check_with(bytes, &mut layer)?;
        Self::build_into(slot, &blob, &mut layer)
    }

    /// Builds the model over an already checked [`Blob`].
    ///
    /// # Errors
    /// As [`Model::from_bytes`], for the per-layer checks.
    pub fn from_blob(blob: &Blob<'a>) -> Result<Self, LoadError> {
        let mut slot = None;
        Self::build_into(
            &mut slot,
            blob,
            &mut Layer::RepeatVector(RepeatLayer { times: 0 }),
        )?;
        // `build_into` leaves the model in the slot whenever it succeeds.
        slot.ok_or(LoadError::HeaderDecode)
    }

    /// Checks the model-wide facts, writes a model without layers to `slot`, then checks each
    /// layer against the ones before it and appends its plan, in place. Leaves `None` on error.
    fn build_into<'s>(
        slot: &'s mut Option<Self>,
        blob: &Blob<'a>,
        decoded: &mut Layer,
    ) -> Result<&'s mut Self, LoadError> {
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
        let input_features = Ctx {
            weights: &[],
            layer: 0,
            mode,
            layout: WeightLayout::RowMajor,
        }
        .width(info.input_features)?;
        let model = slot.insert(Self {
            mode,
            input_quant: None,
            output_quant: None,
            layers: heapless::Vec::new(),
            blob_len: blob.len(),
            input_features,
            output_width: input_features,
            output_is_sequence: true,
            state_len: 0,
            max_width: input_features,
            step_width: 0,
            max_units: 0,
            max_cell_scratch: 0,
            streamable: true,
            head_start: count,
            repeated_steps: None,
            reads_tokens: false,
            vocabulary: blob.extensions().vocabulary,
            #[cfg(feature = "detect")]
            detector: blob.extensions().detector,
        });
        if let Err(e) = model.push_layers(blob, decoded) {
            *slot = None;
            return Err(e);
        }
        // Written just above; `None` is unreachable and never panics.
        slot.as_mut().ok_or(LoadError::HeaderDecode)
    }

    /// Checks every layer of `blob` in order against the ones before it and appends its plan.
    /// Each layer is decoded into `decoded`, overwriting the previous one.
    fn push_layers(&mut self, blob: &Blob<'a>, decoded: &mut Layer) -> Result<(), LoadError> {
        let mode = self.mode;
        let mut layers = blob.layers();
        let mut index = 0;
        while let Some(result) = layers.next_into(decoded) {
            result?;
            let layer = &*decoded;
            let ctx = Ctx {
                weights: blob.weights(),
                layer: index as u8,
                mode,
                layout: blob.info().layout,
            };
            if index == 0 {
                self.reads_tokens = matches!(layer, Layer::Embedding(_));
                // Token ids are not quantized; every other integer model quantizes its input.
                self.input_quant = match (
                    mode.is_integer() && !self.reads_tokens,
                    blob.info().input_quant,
                ) {
                    (true, Some(p)) => Some(ctx.qparams(p)?),
                    (false, None) => None,
                    _ => return Err(LoadError::BadQuantization { layer: 0 }),
                };
                self.output_quant = self.input_quant;
            }
            let width = self.output_width;
            // The plan is written straight into its place in the list: no plan-sized
            // temporary on the stack. Capacity was checked against the layer count before the
            // first layer.
            let full = LoadError::LayerCount {
                found: sat_u32(blob.info().layer_count),
            };
            self.layers
                .push(LayerPlan::Repeat(0, 0))
                .map_err(|_| full)?;
            let slot = self.layers.last_mut().ok_or(full)?;
            match layer {
                Layer::Recurrent(r) => {
                    if !self.output_is_sequence {
                        return Err(LoadError::RecurrentAfterVector { layer: ctx.layer });
                    }
                    recurrent_plan(&ctx, r, width, self.state_len, slot)?;
                }
                Layer::Dense(d) => dense_plan(&ctx, d, width, slot)?,
                Layer::Normalization(n) => {
                    // Integer models normalise the f32 input on entry, before quantizing it.
                    if mode.is_integer() && index != 0 {
                        return Err(LoadError::BadPlacement { layer: ctx.layer });
                    }
                    *slot = LayerPlan::Normalization(
                        NormalizationPlan {
                            mean: ctx.f32s(n.mean, width)?,
                            std: ctx.f32s(n.std, width)?,
                        },
                        width,
                    );
                }
                Layer::Embedding(e) => {
                    Feature::Embedding.require(Some(ctx.layer))?;
                    if index != 0 || self.input_features != 1 {
                        return Err(LoadError::BadPlacement { layer: ctx.layer });
                    }
                    *slot = LayerPlan::Embedding(embedding_plan(&ctx, e)?);
                    if let Some(p) = e.quant {
                        self.output_quant = Some(p);
                    }
                }
                Layer::RepeatVector(r) => {
                    Feature::WholeWindow.require(Some(ctx.layer))?;
                    if self.output_is_sequence {
                        return Err(LoadError::BadPlacement { layer: ctx.layer });
                    }
                    let times = r.times as usize;
                    if times == 0 || times > MAX_REPEAT {
                        return Err(LoadError::BadWidth { layer: ctx.layer });
                    }
                    self.output_is_sequence = true;
                    self.streamable = false;
                    self.repeated_steps = Some(times);
                    *slot = LayerPlan::Repeat(times, width);
                }
            }
            let plan = &*slot;
            match plan {
                LayerPlan::Recurrent(plan) => {
                    let spec = plan.spec;
                    self.state_len += spec.state_len() * plan.directions();
                    self.max_units = self.max_units.max(spec.units);
                    // Float plans only exist in builds with `float`.
                    let cell_scratch = match &plan.int {
                        Some(int) => int.scratch_len(width),
                        None if cfg!(feature = "float") => spec.scratch_len(),
                        None => 0,
                    };
                    self.max_cell_scratch = self.max_cell_scratch.max(cell_scratch);
                    self.streamable &= plan.merge.is_none() && !plan.go_backwards;
                    if !plan.return_sequences {
                        self.output_is_sequence = false;
                        self.head_start = self.head_start.min(index + 1);
                    }
                    if let Some(int) = &plan.int {
                        self.output_quant = Some(match int.quant.merged() {
                            Some((p, _)) => p,
                            None => int.quant.output,
                        });
                    }
                }
                LayerPlan::Dense(DensePlan {
                    weights: DenseWeights::Int(i),
                    ..
                }) => self.output_quant = Some(i.quant.output),
                _ => {}
            }
            let width = plan.output_width();
            if width > MAX_WIDTH {
                return Err(LoadError::BadWidth { layer: ctx.layer });
            }
            self.output_width = width;
            self.max_width = self.max_width.max(width);
            // What `Model::step_layers` writes to its scratch rows (integer models normalised
            // their input on entry: their Normalization writes nothing).
            let writes_scratch = match plan {
                LayerPlan::Recurrent(_) => false,
                LayerPlan::Normalization(..) => !mode.is_integer(),
                _ => true,
            };
            if writes_scratch {
                self.step_width = self.step_width.max(width);
            }
            index += 1;
        }
        if !mode.is_integer() {
            self.output_quant = None;
        }
        Ok(())
    }
}

fn recurrent_plan<'a>(
    ctx: &Ctx<'a>,
    r: &RecurrentLayer,
    input_width: usize,
    state_offset: usize,
    slot: &mut LayerPlan<'a>,
) -> Result<(), LoadError> {
    let layer = Some(ctx.layer);
    Feature::for_cell(r.cell).require(layer)?;
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
    let spec = CellSpec {
        cell: r.cell,
        units,
        activation: r.activation,
        recurrent_activation: r.recurrent_activation,
    };
    // Written as the list entry it becomes, then completed in place: the forward weights and
    // the integer parameters go straight into it, with no plan-sized copy on the way.
    *slot = LayerPlan::Recurrent(RecurrentPlan {
        spec,
        input_width,
        return_sequences: r.return_sequences,
        go_backwards: r.go_backwards,
        merge: r.bidirectional,
        forward: DirWeights::default(),
        #[cfg(feature = "whole-window")]
        backward,
        state_offset,
        int: None,
    });
    let LayerPlan::Recurrent(plan) = slot else {
        // Written just above.
        return Err(ctx.shape());
    };
    ctx.direction_into(&r.forward, r.cell, units, input_width, &mut plan.forward)?;
    if let (Some(_), DirWeights::Float(f), DirWeights::Float(b)) =
        (r.bidirectional, &plan.forward, &backward)
    {
        if f.bias.is_some() != b.bias.is_some() {
            return Err(ctx.shape());
        }
    }
    match (ctx.mode.is_integer(), &r.quant) {
        (false, None) => {}
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
            plan.int = Some(IntCell {
                spec,
                quant: cell_quant(q),
                lo,
                hi,
            });
        }
        _ => return Err(LoadError::BadQuantization { layer: ctx.layer }),
    }
    Ok(())
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
    slot: &mut LayerPlan<'a>,
) -> Result<(), LoadError> {
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
    // Written as the list entry it becomes (see `recurrent_plan`).
    *slot = LayerPlan::Dense(DensePlan {
        units,
        activation: d.activation,
        weights,
    });
    Ok(())
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

    /// Loading in place gives the model the returned-value form gives, and leaves `None`
    /// after a refusal (even when the slot held a model before).
    #[test]
    fn loading_in_place_matches_loading_by_value() {
        let (buf, len) = simple_rnn_blob();
        let bytes = &buf.0[..len];
        let mut broken = std::vec::Vec::from(bytes);
        broken[0] ^= 0xFF;
        let by_value = Model::<'_, 2>::from_bytes_with_capacity(bytes);
        let mut slot = None;
        let in_place = Model::<'_, 2>::load_into(&mut slot, bytes).map(|m| m.layer_summary(0));
        assert_eq!(
            in_place,
            by_value
                .as_ref()
                .map(|m| m.layer_summary(0))
                .map_err(|e| *e)
        );
        match by_value {
            Ok(model) => {
                let loaded = slot.as_ref().expect("loaded in place");
                assert_eq!(loaded.state_len(), model.state_len());
                assert_eq!(loaded.step_scratch_len(), model.step_scratch_len());
                assert_eq!(loaded.output_width(), model.output_width());
                assert_eq!(loaded.blob_len(), model.blob_len());
            }
            Err(_) => assert!(slot.is_none()),
        }
        // A refused blob (bad magic) clears a slot that held a model.
        let refused = Model::<'_, 2>::load_into(&mut slot, &broken).map(|_| ());
        assert_eq!(refused, Err(LoadError::BadMagic));
        assert!(slot.is_none());
    }

    /// A recurrent layer's output stays in the state, so a model of recurrent layers only
    /// needs no scratch rows for outputs: the step's scratch is the cell's alone, and stepping
    /// with exactly that much gives the sequence call's outputs.
    #[cfg(all(feature = "float", feature = "simple-rnn"))]
    #[test]
    fn step_scratch_holds_only_what_a_step_writes() {
        let (buf, len) = simple_rnn_blob();
        let model = Model::from_bytes(&buf.0[..len]).expect("loads");
        // SimpleRNN(1): one pre-activation, no output rows.
        assert_eq!(model.step_scratch_len(), 1);
        let xs = [0.5f32, -1.0, 0.25, 2.0, -0.75, 1.5];
        let (mut state, mut scratch) = ([0f32; 1], [0f32; 1]);
        let mut stepped = std::vec::Vec::new();
        for x in xs.chunks(2) {
            let mut out = [0f32; 1];
            model
                .step(x, &mut state, &mut scratch, &mut out)
                .expect("steps");
            stepped.push(out[0].to_bits());
        }
        let mut state = [0f32; 1];
        let mut scratch = std::vec![0f32; model.sequence_scratch_len(3).expect("fits")];
        let mut out = [0f32; 3];
        model
            .run_sequence(&xs, &mut state, &mut scratch, &mut out)
            .expect("runs");
        let whole: std::vec::Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
        assert_eq!(stepped, whole);
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
