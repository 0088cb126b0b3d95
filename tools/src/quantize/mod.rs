//! `edgernn quantize`: calibrate an f32 model on data and write an `int8-weights`, `int8` or
//! `int16` blob, with an error report against the f32 model.
//!
//! Calibration runs the f32 model layer by layer on the calibration windows and records the
//! ranges of every activation tensor (the model input, each layer's `h` and output, LSTM cell
//! states). The integer scheme itself is specified in the core's `quant` module docs.

mod calibrate;
mod report;
mod weights;

pub use report::{ErrorStats, LayerError, Report};

use anyhow::{bail, ensure, Context, Result};
use edgernn::format::{
    Activation, Blob, Cell, DenseLayer, DenseQuant, DirectionWeights, Header, Layer, Merge,
    QParams, QuantMode, RecurrentLayer, RecurrentQuant, Requant, TensorRef,
};

use crate::blob_file::AlignedBlob;
use crate::builder::write_blob_with;
use calibrate::{Calibration, Range};
use weights::WeightWriter;

/// Quantization options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `Int8Weights`, `Int8` or `Int16`.
    pub mode: QuantMode,
    /// Clip activation ranges to this percentile (e.g. 99.99) instead of min/max.
    pub percentile: Option<f64>,
}

/// Reads the f32 tensor `t` of the weight section.
fn f32s(weights: &[u8], t: TensorRef) -> Result<Vec<f32>> {
    let start = t.offset as usize;
    let bytes = weights
        .get(start..start + 4 * t.len as usize)
        .context("tensor outside the weight section")?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn requant(factor: f64, what: &str) -> Result<Requant> {
    Requant::from_f64(factor).with_context(|| {
        format!("{what}: scale factor {factor:e} is out of the representable range")
    })
}

fn packed(factor: f64, what: &str) -> Result<i32> {
    requant(factor, what)?
        .pack()
        .with_context(|| format!("{what}: scale factor {factor:e} cannot be packed"))
}

/// Per-row symmetric int8 quantization of a row-major matrix: `(codes, scales)`.
fn quantize_rows(values: &[f32], rows: usize, cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut codes = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(rows);
    for r in 0..rows {
        let row = &values[r * cols..(r + 1) * cols];
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        scales.push(scale);
        codes.extend(
            row.iter()
                .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
        );
    }
    (codes, scales)
}

fn row_sums(codes: &[i8], cols: usize) -> Vec<i64> {
    if cols == 0 {
        return Vec::new();
    }
    codes
        .chunks_exact(cols)
        .map(|r| r.iter().map(|&v| i64::from(v)).sum())
        .collect()
}

fn clamp_i32(v: f64) -> i32 {
    v.round()
        .clamp(f64::from(i32::MIN + 1), f64::from(i32::MAX)) as i32
}

/// The activation code range of an integer mode.
fn code_range(mode: QuantMode) -> (f64, f64) {
    let (lo, hi) = mode.activation_range();
    (f64::from(lo), f64::from(hi))
}

/// Affine parameters covering `range` (widened to include 0, as zero must be exact).
fn qparams(range: Range, mode: QuantMode) -> QParams {
    let (qmin, qmax) = code_range(mode);
    let lo = f64::from(range.lo.min(0.0));
    let mut hi = f64::from(range.hi.max(0.0));
    if hi - lo < 1e-9 {
        hi = lo + 1e-3;
    }
    let scale = (hi - lo) / (qmax - qmin);
    let zero = (qmin - lo / scale).round().clamp(qmin, qmax);
    QParams {
        scale: scale as f32,
        zero_point: zero as i32,
    }
}

/// Fractional bits for an LSTM cell state of magnitude up to `max_abs` (with 10% headroom).
fn cell_frac_bits(max_abs: f32) -> u8 {
    let mut int_bits = 0u8;
    while int_bits < 15 && f64::from(1u32 << int_bits) < f64::from(max_abs) * 1.1 {
        int_bits += 1;
    }
    15 - int_bits
}

/// Quantizes an f32 blob. `windows` are calibration sequences, each `[time, features]`
/// row-major.
///
/// # Errors
/// A blob that is not f32, an integer mode asked for an LSTM/GRU with unbounded activations,
/// empty calibration data, or scales out of range.
pub fn quantize(f32_blob: &[u8], windows: &[Vec<f32>], opts: Options) -> Result<(Vec<u8>, Report)> {
    let aligned = AlignedBlob::from_bytes(f32_blob);
    let blob = Blob::new_checked(aligned.bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let header = blob.decode_header().map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(
        header.mode == QuantMode::F32,
        "the model is already quantized; quantize its f32 blob"
    );
    ensure!(
        matches!(
            opts.mode,
            QuantMode::Int8Weights | QuantMode::Int8 | QuantMode::Int16
        ),
        "mode must be int8-weights, int8 or int16"
    );
    ensure!(!windows.is_empty(), "no calibration windows");
    let features = header.input_features as usize;
    for (i, w) in windows.iter().enumerate() {
        ensure!(
            !w.is_empty() && w.len() % features == 0,
            "calibration window {i} does not hold whole time steps of {features} features"
        );
    }
    if opts.mode.is_integer() {
        for (i, layer) in header.layers.iter().enumerate() {
            if let Layer::Recurrent(r) = layer {
                let bounded = |a| {
                    matches!(
                        a,
                        Activation::Sigmoid | Activation::Tanh | Activation::HardSigmoid
                    )
                };
                if r.cell != Cell::SimpleRnn
                    && !(bounded(r.activation) && bounded(r.recurrent_activation))
                {
                    bail!(
                        "layer {i}: integer modes support LSTM/GRU activations sigmoid, tanh and hard_sigmoid only (this layer has {:?}/{:?}); use --mode int8-weights",
                        r.activation,
                        r.recurrent_activation
                    );
                }
            }
        }
    }
    let cal = Calibration::collect(&header, blob.weights(), windows, opts.percentile)?;
    let (new_header, new_weights) = build(&header, blob.weights(), &cal, opts.mode)?;
    let quantized = write_blob_with(&new_header, &blob.extensions(), &new_weights)?;
    let report = Report::measure(f32_blob, &quantized, windows)?;
    Ok((quantized, report))
}

fn build(
    header: &Header,
    weights: &[u8],
    cal: &Calibration,
    mode: QuantMode,
) -> Result<(Header, Vec<u8>)> {
    let mut out = WeightWriter::default();
    let mut layers = heapless::Vec::new();
    let integer = mode.is_integer();
    // What the first layer reads: token ids are not quantized; a leading Normalization runs
    // on the f32 input before quantization, so the codes describe its output.
    let entry_q = match header.layers.first() {
        Some(Layer::Embedding(_)) => None,
        Some(Layer::Normalization(_)) => cal.layers.first().map(|l| qparams(l.output, mode)),
        _ => Some(qparams(cal.input, mode)),
    };
    let mut input_q = if integer { entry_q } else { None };
    let mut width = header.input_features as usize;
    for (index, layer) in header.layers.iter().enumerate() {
        let stats = &cal.layers[index];
        let new_layer = match layer {
            Layer::Recurrent(r) => {
                let units = r.units as usize;
                let h_q = qparams(stats.h, mode);
                let mut dir = |d: &DirectionWeights| -> Result<DirectionWeights> {
                    let ctx = DirCtx {
                        index,
                        cell: r.cell,
                        activation: r.activation,
                        units,
                        width,
                        mode,
                        x: input_q,
                        h: h_q,
                    };
                    ctx.direction(weights, d, &mut out)
                };
                let forward = dir(&r.forward)?;
                let backward = match &r.backward {
                    Some(b) => Some(dir(b)?),
                    None => None,
                };
                let quant = if integer {
                    let merged = match r.bidirectional {
                        Some(m @ (Merge::Sum | Merge::Ave | Merge::Mul)) => {
                            let p = qparams(stats.output, mode);
                            let s_h = f64::from(h_q.scale);
                            let s_m = f64::from(p.scale);
                            let factor = match m {
                                Merge::Sum => s_h / s_m,
                                Merge::Ave => s_h / (2.0 * s_m),
                                _ => s_h * s_h / s_m,
                            };
                            Some((p, requant(factor, &format!("layer {index} merge"))?))
                        }
                        _ => None,
                    };
                    Some(RecurrentQuant {
                        output: h_q,
                        output_requant: requant(
                            1.0 / (32768.0 * f64::from(h_q.scale)),
                            &format!("layer {index} output"),
                        )?,
                        h_to_q15: requant(
                            f64::from(h_q.scale) * 32768.0,
                            &format!("layer {index} h"),
                        )?,
                        cell_frac_bits: cell_frac_bits(stats.cell_max_abs),
                        merged,
                    })
                } else {
                    None
                };
                width = match r.bidirectional {
                    Some(Merge::Concat) => 2 * units,
                    _ => units,
                };
                if let Some(q) = &quant {
                    input_q = Some(q.merged.map_or(q.output, |(p, _)| p));
                }
                Layer::Recurrent(RecurrentLayer {
                    forward,
                    backward,
                    quant,
                    ..*r
                })
            }
            Layer::Normalization(n) => {
                ensure!(
                    !integer || index == 0,
                    "layer {index}: integer modes support Normalization only as the first layer"
                );
                Layer::Normalization(edgernn::format::NormalizationLayer {
                    mean: out.f32s(&f32s(weights, n.mean)?),
                    std: out.f32s(&f32s(weights, n.std)?),
                })
            }
            Layer::RepeatVector(r) => Layer::RepeatVector(*r),
            Layer::Embedding(e) => {
                let table = f32s(weights, e.table)?;
                width = e.dim as usize;
                if integer {
                    // Any token may come, so the codes cover the whole table.
                    let lo = table.iter().copied().fold(0.0f32, f32::min);
                    let hi = table.iter().copied().fold(0.0f32, f32::max);
                    let p = qparams(Range { lo, hi }, mode);
                    let (qmin, qmax) = code_range(mode);
                    let codes: Vec<i16> = table
                        .iter()
                        .map(|&v| {
                            (f64::from(v) / f64::from(p.scale) + f64::from(p.zero_point))
                                .round()
                                .clamp(qmin, qmax) as i16
                        })
                        .collect();
                    input_q = Some(p);
                    Layer::Embedding(edgernn::format::EmbeddingLayer {
                        table: out.i16s(&codes),
                        quant: Some(p),
                        ..*e
                    })
                } else {
                    // int8-weights keeps lookup tables in f32: a lookup costs no arithmetic.
                    Layer::Embedding(edgernn::format::EmbeddingLayer {
                        table: out.f32s(&table),
                        quant: None,
                        ..*e
                    })
                }
            }
            Layer::Dense(d) => {
                let units = d.units as usize;
                let kernel = f32s(weights, d.kernel)?;
                let (codes, scales) = quantize_rows(&kernel, units, width);
                let bias = d.bias.map(|b| f32s(weights, b)).transpose()?;
                let new = if integer {
                    let x = input_q.context("integer input parameters")?;
                    let y = qparams(stats.output, mode);
                    let bounded = !matches!(d.activation, Activation::Linear | Activation::Relu);
                    let sums = row_sums(&codes, width);
                    let mut biases = Vec::with_capacity(units);
                    let mut requants = Vec::with_capacity(units);
                    for r in 0..units {
                        let unit = f64::from(scales[r]) * f64::from(x.scale);
                        let b = bias.as_ref().map_or(0.0, |b| f64::from(b[r]));
                        biases.push(clamp_i32(
                            b / unit - f64::from(x.zero_point) * sums[r] as f64,
                        ));
                        let factor = if bounded {
                            unit * 4096.0
                        } else {
                            unit / f64::from(y.scale)
                        };
                        requants.push(packed(factor, &format!("layer {index} row {r}"))?);
                    }
                    let new = DenseLayer {
                        kernel: out.i8s(&codes),
                        bias: Some(out.i32s(&biases)),
                        kernel_scale: Some(out.i32s(&requants)),
                        quant: Some(DenseQuant {
                            output: y,
                            output_requant: requant(
                                1.0 / (32768.0 * f64::from(y.scale)),
                                &format!("layer {index} output"),
                            )?,
                        }),
                        ..*d
                    };
                    input_q = Some(y);
                    new
                } else {
                    DenseLayer {
                        kernel: out.i8s(&codes),
                        kernel_scale: Some(out.f32s(&scales)),
                        bias: bias.map(|b| out.f32s(&b)),
                        quant: None,
                        ..*d
                    }
                };
                width = units;
                Layer::Dense(new)
            }
        };
        layers
            .push(new_layer)
            .map_err(|_| anyhow::anyhow!("too many layers"))?;
    }
    Ok((
        Header {
            mode,
            input_features: header.input_features,
            input_quant: if integer { entry_q } else { None },
            layers,
        },
        out.finish(),
    ))
}

/// What quantizing one direction of a recurrent layer needs.
struct DirCtx {
    index: usize,
    cell: Cell,
    activation: Activation,
    units: usize,
    width: usize,
    mode: QuantMode,
    x: Option<QParams>,
    h: QParams,
}

impl DirCtx {
    fn direction(
        &self,
        weights: &[u8],
        d: &DirectionWeights,
        out: &mut WeightWriter,
    ) -> Result<DirectionWeights> {
        let rows = self.cell.gates() * self.units;
        let kernel = f32s(weights, d.kernel)?;
        let recurrent = f32s(weights, d.recurrent_kernel)?;
        let (wq, ws) = quantize_rows(&kernel, rows, self.width);
        let (uq, us) = quantize_rows(&recurrent, rows, self.units);
        let bias = d.bias.map(|b| f32s(weights, b)).transpose()?;
        let rec_bias = d.recurrent_bias.map(|b| f32s(weights, b)).transpose()?;
        if !self.mode.is_integer() {
            return Ok(DirectionWeights {
                kernel: out.i8s(&wq),
                recurrent_kernel: out.i8s(&uq),
                bias: bias.map(|b| out.f32s(&b)),
                recurrent_bias: rec_bias.map(|b| out.f32s(&b)),
                kernel_scale: Some(out.f32s(&ws)),
                recurrent_scale: Some(out.f32s(&us)),
                reset_scale: None,
            });
        }
        let x = self.x.context("integer input parameters")?;
        let h = self.h;
        let (s_x, z_x) = (f64::from(x.scale), f64::from(x.zero_point));
        let (s_h, z_h) = (f64::from(h.scale), f64::from(h.zero_point));
        let w_sums = row_sums(&wq, self.width);
        let u_sums = row_sums(&uq, self.units);
        let reset_after = matches!(self.cell, Cell::Gru { reset_after: true });
        let reset_before = matches!(self.cell, Cell::Gru { reset_after: false });
        // Unbounded SimpleRNN activations requantize straight to h codes, others to Q3.12.
        let direct = self.cell == Cell::SimpleRnn
            && matches!(self.activation, Activation::Linear | Activation::Relu);
        let target = |unit: f64| if direct { unit / s_h } else { unit * 4096.0 };
        let (qmax_code, _) = (code_range(self.mode).1, ());
        let mut bias_x = Vec::with_capacity(rows);
        let mut bias_h = Vec::with_capacity(rows);
        let mut req_x = Vec::with_capacity(rows);
        let mut req_h = Vec::with_capacity(rows);
        let mut req_reset = Vec::new();
        for r in 0..rows {
            let unit_x = f64::from(ws[r]) * s_x;
            let unit_h = f64::from(us[r]) * s_h;
            let b = bias.as_ref().map_or(0.0, |b| f64::from(b[r]));
            let rb = rec_bias.as_ref().map_or(0.0, |b| f64::from(b[r]));
            let candidate_row = r >= 2 * self.units;
            let x_part = b / unit_x - z_x * w_sums[r] as f64;
            // The h-side zero point correction (and recurrent bias): kept apart where the
            // reset gate multiplies it, folded into the x side elsewhere.
            let h_part_h_units = rb / unit_h - z_h * u_sums[r] as f64;
            if reset_after {
                bias_x.push(clamp_i32(x_part));
                bias_h.push(clamp_i32(h_part_h_units));
            } else if reset_before && candidate_row {
                // U_h reads symmetric r*h codes: no zero point to correct.
                bias_x.push(clamp_i32(x_part));
                bias_h.push(0);
            } else {
                bias_x.push(clamp_i32(x_part + h_part_h_units * unit_h / unit_x));
                bias_h.push(0);
            }
            let what = format!("layer {} row {r}", self.index);
            req_x.push(packed(target(unit_x), &what)?);
            req_h.push(packed(target(unit_h), &what)?);
            if reset_before && candidate_row {
                req_reset.push(packed(f64::from(us[r]) / qmax_code * 4096.0, &what)?);
            }
        }
        let needs_bias_h = bias_h.iter().any(|&b| b != 0);
        Ok(DirectionWeights {
            kernel: out.i8s(&wq),
            recurrent_kernel: out.i8s(&uq),
            bias: Some(out.i32s(&bias_x)),
            recurrent_bias: needs_bias_h.then(|| out.i32s(&bias_h)),
            kernel_scale: Some(out.i32s(&req_x)),
            recurrent_scale: Some(out.i32s(&req_h)),
            reset_scale: reset_before.then(|| out.i32s(&req_reset)),
        })
    }
}
