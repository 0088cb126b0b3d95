//! Building the layer plan: every shape, width, activation and weight bound is checked here,
//! once, so that running never has to.

use super::{DensePlan, LayerPlan, Model, RecurrentPlan};
use crate::cell::{CellSpec, DirectionViews};
use crate::error::{sat_u32, LoadError};
use crate::format::{
    Activation, Blob, Cell, DType, DenseLayer, DirectionWeights, Layer, RecurrentLayer, TensorRef,
};
use crate::kernels::F32View;
use crate::{MAX_LAYERS, MAX_WIDTH};

struct Ctx<'a> {
    weights: &'a [u8],
    layer: u8,
}

impl<'a> Ctx<'a> {
    fn tensor(&self, t: TensorRef, expected_len: usize) -> Result<F32View<'a>, LoadError> {
        if t.len as usize != expected_len {
            return Err(LoadError::WeightShape { layer: self.layer });
        }
        let bounds = LoadError::WeightBounds { layer: self.layer };
        if !t.offset.is_multiple_of(4) {
            return Err(bounds);
        }
        let start = t.offset as usize;
        let end = expected_len
            .checked_mul(4)
            .and_then(|n| n.checked_add(start))
            .ok_or(bounds)?;
        self.weights.get(start..end).map(F32View::new).ok_or(bounds)
    }

    fn width(&self, w: u32) -> Result<usize, LoadError> {
        let w = w as usize;
        if w == 0 || w > MAX_WIDTH {
            return Err(LoadError::BadWidth { layer: self.layer });
        }
        Ok(w)
    }

    fn direction(
        &self,
        d: &DirectionWeights,
        cell: Cell,
        units: usize,
        input_width: usize,
    ) -> Result<DirectionViews<'a>, LoadError> {
        let shape = LoadError::WeightShape { layer: self.layer };
        let rows = cell.gates() * units;
        let kernel_len = rows.checked_mul(input_width).ok_or(shape)?;
        let recurrent_len = rows.checked_mul(units).ok_or(shape)?;
        let recurrent_bias = match (cell, d.recurrent_bias) {
            (_, None) => None,
            (Cell::Gru { reset_after: true }, Some(t)) => Some(self.tensor(t, rows)?),
            // A recurrent bias only exists in reset-after GRUs; elsewhere importers fold it
            // into `bias`, so a blob carrying one was written wrong.
            (_, Some(_)) => return Err(shape),
        };
        Ok(DirectionViews {
            kernel: self.tensor(d.kernel, kernel_len)?,
            recurrent_kernel: self.tensor(d.recurrent_kernel, recurrent_len)?,
            bias: d.bias.map(|t| self.tensor(t, rows)).transpose()?,
            recurrent_bias,
        })
    }
}

fn cell_activation_ok(a: Activation) -> bool {
    !matches!(a, Activation::Softmax)
}

impl<'a> Model<'a> {
    /// Checks a blob completely and builds the model over it, borrowing its weights in place.
    ///
    /// # Errors
    /// A [`LoadError`] naming the first failed check: preamble, checksum, header decoding, then
    /// per layer (0-based index) widths, activations, stacking rules and weight bounds.
    ///
    /// # Panics
    /// Never, whatever the bytes.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, LoadError> {
        let blob = Blob::new_checked(bytes)?;
        Self::from_blob(&blob)
    }

    /// Builds the model over an already checked [`Blob`].
    ///
    /// # Errors
    /// As [`Model::from_bytes`], for the per-layer checks.
    pub fn from_blob(blob: &Blob<'a>) -> Result<Self, LoadError> {
        let header = blob.header().clone();
        if header.dtype != DType::F32 {
            return Err(LoadError::UnsupportedDType);
        }
        let count = header.layers.len();
        if count == 0 || count > MAX_LAYERS {
            return Err(LoadError::LayerCount {
                found: sat_u32(count),
            });
        }
        let input_features = Ctx {
            weights: &[],
            layer: 0,
        }
        .width(header.input_features)?;

        let mut layers = heapless::Vec::new();
        let mut width = input_features;
        let mut max_width = input_features;
        let mut max_units = 0;
        let mut max_cell_scratch = 0;
        let mut state_len = 0usize;
        let mut is_sequence = true;
        let mut streamable = true;
        let mut head_start = count;

        for (index, layer) in header.layers.iter().enumerate() {
            let ctx = Ctx {
                weights: blob.weights(),
                layer: index as u8,
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
                    max_cell_scratch = max_cell_scratch.max(spec.scratch_len());
                    streamable &= plan.merge.is_none() && !plan.go_backwards;
                    if !plan.return_sequences {
                        is_sequence = false;
                        head_start = head_start.min(index + 1);
                    }
                    LayerPlan::Recurrent(plan)
                }
                Layer::Dense(d) => LayerPlan::Dense(dense_plan(&ctx, d, width)?),
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
            header,
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
        })
    }
}

fn recurrent_plan<'a>(
    ctx: &Ctx<'a>,
    r: &RecurrentLayer,
    input_width: usize,
    state_offset: usize,
) -> Result<RecurrentPlan<'a>, LoadError> {
    let units = ctx.width(r.units)?;
    if !cell_activation_ok(r.activation) || !cell_activation_ok(r.recurrent_activation) {
        return Err(LoadError::BadActivation { layer: ctx.layer });
    }
    let unsupported = LoadError::Unsupported { layer: ctx.layer };
    let backward = match (r.bidirectional, &r.backward) {
        (None, None) => DirectionViews::default(),
        // Keras allows a Bidirectional around a go_backwards layer (it then flips the backward
        // copy); no exporter we know writes one, so refuse rather than guess.
        (Some(_), Some(_)) if r.go_backwards => return Err(unsupported),
        (Some(_), Some(b)) => ctx.direction(b, r.cell, units, input_width)?,
        _ => return Err(LoadError::WeightShape { layer: ctx.layer }),
    };
    let forward = ctx.direction(&r.forward, r.cell, units, input_width)?;
    if r.bidirectional.is_some() && forward.bias.is_some() != backward.bias.is_some() {
        return Err(LoadError::WeightShape { layer: ctx.layer });
    }
    Ok(RecurrentPlan {
        spec: CellSpec {
            cell: r.cell,
            units,
            activation: r.activation,
            recurrent_activation: r.recurrent_activation,
        },
        input_width,
        return_sequences: r.return_sequences,
        go_backwards: r.go_backwards,
        merge: r.bidirectional,
        forward,
        backward,
        state_offset,
    })
}

fn dense_plan<'a>(
    ctx: &Ctx<'a>,
    d: &DenseLayer,
    input_width: usize,
) -> Result<DensePlan<'a>, LoadError> {
    let units = ctx.width(d.units)?;
    let kernel_len = units
        .checked_mul(input_width)
        .ok_or(LoadError::WeightShape { layer: ctx.layer })?;
    Ok(DensePlan {
        units,
        input_width,
        activation: d.activation,
        kernel: ctx.tensor(d.kernel, kernel_len)?,
        bias: d.bias.map(|t| ctx.tensor(t, units)).transpose()?,
    })
}
