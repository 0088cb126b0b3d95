//! SimpleRNN: `h = a(x W + h U + b)` (Keras `SimpleRNNCell`, Elman 1990).

use super::DirectionViews;
use crate::format::Activation;
use crate::kernels::{activate, init_bias, matvec_acc};

pub(crate) fn step(
    activation: Activation,
    w: &DirectionViews<'_>,
    x: &[f32],
    h: &mut [f32],
    scratch: &mut [f32],
) {
    let units = h.len();
    let Some(pre) = scratch.get_mut(..units) else {
        return;
    };
    init_bias(w.bias, pre);
    matvec_acc(&w.kernel, x, pre);
    matvec_acc(&w.recurrent_kernel, h, pre);
    activate(activation, pre);
    h.copy_from_slice(pre);
}
