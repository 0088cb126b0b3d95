//! The trained network as an edgernn blob: a Normalization layer (so firmware feeds raw
//! values), the recurrent stack and Dense layers with the weights copied as they are (they
//! are kept in Keras layout), and for forecasting the target's de-normalisation folded into
//! the output layer, `y = (x W + b) * std + mean = x (W * std) + (b * std + mean)` per output
//! column, so the model outputs raw units (a forecast's target; an autoencoder's every
//! feature, with the input normalisation's statistics). An autoencoder gets its
//! `RepeatVector` between the encoder and the decoder.

use anyhow::Result;
use candle_core::Var;
use edgernn::format::{Activation, Merge};

use super::data::Norm;
use super::model::{Direction, Net, RECURRENT_ACTIVATION};
use crate::builder::{KerasWeights, ModelBuilder, RecurrentSpec};

fn values(v: &Var) -> Result<Vec<f32>> {
    Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?)
}

fn keras(d: &Direction) -> Result<KerasWeights> {
    let mut bias = values(&d.bias)?;
    if let Some(rb) = &d.recurrent_bias {
        // GRU reset_after: Keras' bias is [2, 3 * units] = [input bias; recurrent bias].
        bias.extend(values(rb)?);
    }
    Ok(KerasWeights {
        kernel: values(&d.kernel)?,
        recurrent_kernel: values(&d.recurrent)?,
        bias: Some(bias),
    })
}

/// Builds the f32 blob. `target` is the normalisation of the outputs (a forecast's one
/// column, an autoencoder's features), `None` for classification.
///
/// # Errors
/// The builder's shape checks (a bug if they fire) and candle's errors.
pub fn build_blob(net: &Net, inputs: &Norm, target: Option<&Norm>) -> Result<Vec<u8>> {
    let mut b = ModelBuilder::new(net.spec.inputs);
    b.normalization(&inputs.mean, &inputs.variance)?;
    push_network(&mut b, net, target)?;
    b.build()
}

/// Appends the recurrent stack and the Dense layers of `net` to `b` (after whatever input
/// layer the caller put first: Normalization, or Embedding for text models).
///
/// # Errors
/// As [`build_blob`].
pub fn push_network(b: &mut ModelBuilder, net: &Net, target: Option<&Norm>) -> Result<()> {
    let spec = &net.spec;
    let last = net.recurrent.len().saturating_sub(1);
    for (i, layer) in net.recurrent.iter().enumerate() {
        if let Some(r) = spec.repeat.filter(|r| r.after == i) {
            b.repeat_vector(r.times)?;
        }
        let backward = match &layer.backward {
            Some(d) => Some(keras(d)?),
            None => None,
        };
        b.recurrent(
            RecurrentSpec {
                cell: spec.cell,
                units: spec.units,
                activation: spec.activation,
                recurrent_activation: RECURRENT_ACTIVATION,
                return_sequences: match spec.repeat {
                    // The encoder's last layer gives the vector RepeatVector repeats; the
                    // decoder returns sequences, its last layer too.
                    Some(r) => i + 1 != r.after,
                    None => i < last,
                },
                go_backwards: false,
                bidirectional: backward.as_ref().map(|_| Merge::Concat),
            },
            &keras(&layer.forward)?,
            backward.as_ref(),
        )?;
    }
    let output = net.dense.len().saturating_sub(1);
    for (i, d) in net.dense.iter().enumerate() {
        let mut kernel = values(&d.kernel)?;
        let mut bias = values(&d.bias)?;
        let activation = if i < output {
            Activation::Relu
        } else if spec.softmax {
            Activation::Softmax
        } else {
            Activation::Linear
        };
        if let (true, Some(t)) = (i == output, target) {
            // Column j of the `[input, units]` kernel is output j's.
            let units = d.units;
            kernel
                .iter_mut()
                .enumerate()
                .for_each(|(k, w)| *w *= t.std[k % units]);
            bias.iter_mut()
                .zip(t.std.iter().zip(&t.mean))
                .for_each(|(v, (&scale, &offset))| *v = *v * scale + offset);
        }
        b.dense(d.units, activation, &kernel, Some(&bias))?;
    }
    Ok(())
}
