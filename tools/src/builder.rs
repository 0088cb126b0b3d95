//! Writing model blobs: the only writer of the format the core reads.
//!
//! Weights are given in Keras layout (importers from ONNX and PyTorch convert to it first), so
//! there is one place where transposes and gate orders are decided: here.

use anyhow::{bail, ensure, Context, Result};
use edgernn::format::{
    blob_crc, Activation, Cell, DenseLayer, DirectionWeights, EmbeddingLayer, Extensions, Header,
    Layer, Merge, NormalizationLayer, Preamble, QuantMode, RecurrentLayer, RepeatLayer, TensorRef,
    CRC_OFFSET, FORMAT_VERSION_EXTENSIONS, FORMAT_VERSION_FLAGS, FORMAT_VERSION_PLAIN,
    PREAMBLE_LEN, WEIGHT_ALIGN,
};

/// Options of a recurrent layer, as in Keras.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrentSpec {
    pub cell: Cell,
    pub units: usize,
    pub activation: Activation,
    pub recurrent_activation: Activation,
    pub return_sequences: bool,
    pub go_backwards: bool,
    /// `Some(merge)` wraps the layer in Bidirectional.
    pub bidirectional: Option<Merge>,
}

/// One direction's weights in Keras layout, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct KerasWeights {
    /// `kernel`: `[input_width, gates * units]`.
    pub kernel: Vec<f32>,
    /// `recurrent_kernel`: `[units, gates * units]`.
    pub recurrent_kernel: Vec<f32>,
    /// `bias`: `[gates * units]`, or `[2, gates * units]` (input bias, recurrent bias) for a
    /// GRU with `reset_after`; `None` when `use_bias = false`.
    pub bias: Option<Vec<f32>>,
}

/// Builds a blob layer by layer, checking shapes as it goes.
#[derive(Debug, Clone)]
pub struct ModelBuilder {
    input_features: usize,
    width: usize,
    returns_sequence: bool,
    layers: Vec<Layer>,
    weights: Vec<u8>,
}

/// `[rows, cols]` row-major to `[cols, rows]` row-major.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

impl ModelBuilder {
    /// A model reading `input_features` values per time step.
    pub fn new(input_features: usize) -> Self {
        Self {
            input_features,
            width: input_features,
            returns_sequence: true,
            layers: Vec::new(),
            weights: Vec::new(),
        }
    }

    /// Appends a tensor to the weight section at a 16-byte aligned offset.
    fn push_tensor(&mut self, values: &[f32]) -> Result<TensorRef> {
        while !self.weights.len().is_multiple_of(WEIGHT_ALIGN) {
            self.weights.push(0);
        }
        let offset = u32::try_from(self.weights.len()).context("weight section above 4 GiB")?;
        let len = u32::try_from(values.len()).context("tensor above 4 G values")?;
        for v in values {
            self.weights.extend_from_slice(&v.to_le_bytes());
        }
        Ok(TensorRef { offset, len })
    }

    fn direction(
        &mut self,
        layer: usize,
        cell: Cell,
        units: usize,
        w: &KerasWeights,
    ) -> Result<DirectionWeights> {
        let rows = cell.gates() * units;
        let input = self.width;
        ensure!(
            w.kernel.len() == input * rows,
            "layer {layer}: kernel has {} values, expected [{input}, {rows}]",
            w.kernel.len()
        );
        ensure!(
            w.recurrent_kernel.len() == units * rows,
            "layer {layer}: recurrent kernel has {} values, expected [{units}, {rows}]",
            w.recurrent_kernel.len()
        );
        let kernel = self.push_tensor(&transpose(&w.kernel, input, rows))?;
        let recurrent_kernel = self.push_tensor(&transpose(&w.recurrent_kernel, units, rows))?;
        let (bias, recurrent_bias) = match (&w.bias, cell) {
            (None, _) => (None, None),
            (Some(b), Cell::Gru { reset_after: true }) => {
                ensure!(
                    b.len() == 2 * rows,
                    "layer {layer}: GRU reset_after bias has {} values, expected [2, {rows}]",
                    b.len()
                );
                let (input_bias, rec_bias) = b.split_at(rows);
                (
                    Some(self.push_tensor(input_bias)?),
                    Some(self.push_tensor(rec_bias)?),
                )
            }
            (Some(b), _) => {
                ensure!(
                    b.len() == rows,
                    "layer {layer}: bias has {} values, expected {rows}",
                    b.len()
                );
                (Some(self.push_tensor(b)?), None)
            }
        };
        Ok(DirectionWeights {
            kernel,
            recurrent_kernel,
            bias,
            recurrent_bias,
            kernel_scale: None,
            recurrent_scale: None,
            reset_scale: None,
        })
    }

    /// Appends a recurrent layer; `backward` is required exactly when `spec.bidirectional` is
    /// set (Keras' `backward_layer` weights).
    ///
    /// # Errors
    /// Shapes that do not fit the current width, a recurrent layer after a vector output, or
    /// a missing/extra backward direction.
    pub fn recurrent(
        &mut self,
        spec: RecurrentSpec,
        forward: &KerasWeights,
        backward: Option<&KerasWeights>,
    ) -> Result<&mut Self> {
        let layer = self.layers.len();
        ensure!(
            self.returns_sequence,
            "layer {layer}: a recurrent layer needs a sequence, but the previous layer returns one vector"
        );
        ensure!(spec.units > 0, "layer {layer}: units must be positive");
        ensure!(
            spec.bidirectional.is_some() == backward.is_some(),
            "layer {layer}: backward weights must be given exactly for Bidirectional layers"
        );
        let units = u32::try_from(spec.units).context("units too large")?;
        let fwd = self.direction(layer, spec.cell, spec.units, forward)?;
        let bwd = match backward {
            Some(b) => Some(self.direction(layer, spec.cell, spec.units, b)?),
            None => None,
        };
        self.layers.push(Layer::Recurrent(RecurrentLayer {
            cell: spec.cell,
            units,
            activation: spec.activation,
            recurrent_activation: spec.recurrent_activation,
            return_sequences: spec.return_sequences,
            go_backwards: spec.go_backwards,
            bidirectional: spec.bidirectional,
            forward: fwd,
            backward: bwd,
            quant: None,
        }));
        self.width = match spec.bidirectional {
            Some(Merge::Concat) => 2 * spec.units,
            _ => spec.units,
        };
        self.returns_sequence = spec.return_sequences;
        Ok(self)
    }

    /// Appends a Dense layer with Keras `kernel` `[input_width, units]` and `bias` `[units]`.
    ///
    /// # Errors
    /// Shapes that do not fit the current width.
    pub fn dense(
        &mut self,
        units: usize,
        activation: Activation,
        kernel: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<&mut Self> {
        let layer = self.layers.len();
        let input = self.width;
        ensure!(units > 0, "layer {layer}: units must be positive");
        ensure!(
            kernel.len() == input * units,
            "layer {layer}: Dense kernel has {} values, expected [{input}, {units}]",
            kernel.len()
        );
        let kernel = self.push_tensor(&transpose(kernel, input, units))?;
        let bias = match bias {
            Some(b) => {
                ensure!(
                    b.len() == units,
                    "layer {layer}: Dense bias has {} values, expected {units}",
                    b.len()
                );
                Some(self.push_tensor(b)?)
            }
            None => None,
        };
        self.layers.push(Layer::Dense(DenseLayer {
            units: u32::try_from(units).context("units too large")?,
            activation,
            kernel,
            bias,
            kernel_scale: None,
            quant: None,
        }));
        self.width = units;
        Ok(self)
    }

    /// Appends a Keras `Normalization` layer: `y = (x - mean) / max(sqrt(variance), 1e-7)` per
    /// feature, the divisor computed in f32 as Keras does.
    ///
    /// # Errors
    /// Lengths that do not match the current width, or negative/non-finite variances.
    pub fn normalization(&mut self, mean: &[f32], variance: &[f32]) -> Result<&mut Self> {
        let layer = self.layers.len();
        let width = self.width;
        ensure!(
            mean.len() == width && variance.len() == width,
            "layer {layer}: Normalization has {} means and {} variances, expected {width} each",
            mean.len(),
            variance.len()
        );
        ensure!(
            variance.iter().all(|v| v.is_finite() && *v >= 0.0)
                && mean.iter().all(|m| m.is_finite()),
            "layer {layer}: Normalization mean and variance must be finite, variances >= 0"
        );
        /// Keras' `Normalization` epsilon.
        const EPSILON: f32 = 1e-7;
        let std: Vec<f32> = variance.iter().map(|v| v.sqrt().max(EPSILON)).collect();
        self.normalization_with_std(mean, &std)
    }

    /// Appends a standardisation `y = (x - mean) / std` with the divisor given directly (as an
    /// ONNX `Sub` + `Div` graph holds it).
    ///
    /// # Errors
    /// Lengths that do not match the current width, or divisors that are not finite and
    /// positive.
    pub fn normalization_with_std(&mut self, mean: &[f32], std: &[f32]) -> Result<&mut Self> {
        let layer = self.layers.len();
        let width = self.width;
        ensure!(
            mean.len() == width && std.len() == width,
            "layer {layer}: Normalization has {} means and {} divisors, expected {width} each",
            mean.len(),
            std.len()
        );
        ensure!(
            std.iter().all(|s| s.is_finite() && *s > 0.0) && mean.iter().all(|m| m.is_finite()),
            "layer {layer}: Normalization needs finite means and finite positive divisors"
        );
        let mean = self.push_tensor(mean)?;
        let std = self.push_tensor(std)?;
        self.layers
            .push(Layer::Normalization(NormalizationLayer { mean, std }));
        Ok(self)
    }

    /// Appends a Keras `Embedding(vocab, dim)` layer with `table` `[vocab, dim]`; it must be the
    /// first layer of a model built with `ModelBuilder::new(1)` (one token id per step).
    ///
    /// # Errors
    /// Not first, or a table of the wrong size.
    pub fn embedding(&mut self, vocab: usize, dim: usize, table: &[f32]) -> Result<&mut Self> {
        ensure!(
            self.layers.is_empty() && self.input_features == 1,
            "Embedding must be the first layer of a model reading one token id per step"
        );
        ensure!(
            vocab > 0 && dim > 0 && table.len() == vocab * dim,
            "Embedding table has {} values, expected [{vocab}, {dim}]",
            table.len()
        );
        let t = self.push_tensor(table)?;
        self.layers.push(Layer::Embedding(EmbeddingLayer {
            vocab: u32::try_from(vocab).context("vocabulary too large")?,
            dim: u32::try_from(dim).context("embedding too wide")?,
            table: t,
            quant: None,
        }));
        self.width = dim;
        Ok(self)
    }

    /// Appends a Keras `RepeatVector(times)` after a layer that returns a single vector.
    ///
    /// # Errors
    /// When the previous layer returns a sequence.
    pub fn repeat_vector(&mut self, times: usize) -> Result<&mut Self> {
        let layer = self.layers.len();
        ensure!(
            !self.returns_sequence,
            "layer {layer}: RepeatVector needs a single vector, but the previous layer returns a sequence"
        );
        ensure!(
            times > 0,
            "layer {layer}: RepeatVector count must be positive"
        );
        self.layers.push(Layer::RepeatVector(RepeatLayer {
            times: u32::try_from(times).context("repeat count too large")?,
        }));
        self.returns_sequence = true;
        Ok(self)
    }

    /// Serialises the blob and checks that the core loads it.
    ///
    /// # Errors
    /// When the model is empty, too large for the format, or refused by the core's loader.
    pub fn build(&self) -> Result<Vec<u8>> {
        let layers = heapless::Vec::from_slice(&self.layers).map_err(|_| {
            anyhow::anyhow!(
                "{} layers; at most {} are supported",
                self.layers.len(),
                edgernn::MAX_LAYERS
            )
        })?;
        let header = Header {
            mode: QuantMode::F32,
            input_features: u32::try_from(self.input_features).context("too many features")?,
            input_quant: None,
            layers,
        };
        write_blob(&header, &self.weights)
    }
}

/// Serialises a header and its weight section into a blob and checks that the core loads it.
///
/// # Errors
/// When the blob is too large for the format or refused by the core's loader.
pub fn write_blob(header: &Header, weights: &[u8]) -> Result<Vec<u8>> {
    write_blob_with(header, &Extensions::default(), weights)
}

/// [`write_blob`] with format version 2 records; the blob is version 1 when `extensions` is
/// empty, so firmware built before version 2 keeps loading models that do not need it.
///
/// # Errors
/// As [`write_blob`].
pub fn write_blob_with(
    header: &Header,
    extensions: &Extensions<'_>,
    weights: &[u8],
) -> Result<Vec<u8>> {
    write_blob_flags(header, extensions, weights, 0)
}

/// [`write_blob_with`] with preamble `flags` (e.g. [`edgernn::format::FLAG_INTERLEAVED4`]
/// for weights [`crate::pack`] packed): the oldest version that can express the blob, 1 or 2
/// without flags, 3 with them (which always carries the extensions record).
///
/// # Errors
/// As [`write_blob`].
pub fn write_blob_flags(
    header: &Header,
    extensions: &Extensions<'_>,
    weights: &[u8],
    flags: u16,
) -> Result<Vec<u8>> {
    let mut header_bytes = postcard::to_allocvec(header).context("encoding the header")?;
    let version = if flags == 0 && extensions.is_empty() {
        FORMAT_VERSION_PLAIN
    } else {
        header_bytes.extend(postcard::to_allocvec(extensions).context("encoding the extensions")?);
        if flags == 0 {
            FORMAT_VERSION_EXTENSIONS
        } else {
            FORMAT_VERSION_FLAGS
        }
    };
    let header_end = PREAMBLE_LEN + header_bytes.len();
    let weight_offset = header_end.div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN;
    let total = weight_offset + weights.len();
    let too_big = || anyhow::anyhow!("blob of {total} bytes exceeds the 4 GiB format limit");
    let preamble = Preamble {
        version,
        flags,
        total_len: u32::try_from(total).map_err(|_| too_big())?,
        header_len: u32::try_from(header_bytes.len()).map_err(|_| too_big())?,
        weight_offset: u32::try_from(weight_offset).map_err(|_| too_big())?,
        weight_len: u32::try_from(weights.len()).map_err(|_| too_big())?,
        crc: 0,
        reserved: 0,
    };
    let mut blob = Vec::with_capacity(total);
    blob.extend_from_slice(&preamble.to_bytes());
    blob.extend_from_slice(&header_bytes);
    blob.resize(weight_offset, 0);
    blob.extend_from_slice(weights);
    let crc = blob_crc(&blob);
    blob[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    let aligned = crate::blob_file::AlignedBlob::from_bytes(&blob);
    if let Err(e) = edgernn::Model::from_bytes(aligned.bytes()) {
        bail!("the built blob does not load: {e}");
    }
    Ok(blob)
}
