//! Dense: `y = act(x W + b)` on the last axis (Keras `Dense`).

use crate::format::Activation;
use crate::kernels::{init_bias, matvec_acc, F32View, Matrix};
use crate::math;

/// Computes one Dense output vector `y` (its length is the layer's units) from `x`.
pub fn forward(
    kernel: &Matrix<'_>,
    bias: Option<F32View<'_>>,
    activation: Activation,
    x: &[f32],
    y: &mut [f32],
) {
    init_bias(bias, y);
    matvec_acc(kernel, x, y);
    math::apply_slice(activation, y);
}
