//! SimpleRNN: `h = a(x W + h U + b)` (Keras `SimpleRNNCell`, Elman 1990).

use super::{DirectionViews, Lanes};
use crate::format::Activation;

#[inline]
pub(crate) fn step(
    lanes: &mut impl Lanes,
    activation: Activation,
    w: &DirectionViews<'_>,
    x: &[f32],
    h: &mut [f32],
    scratch: &mut [f32],
) {
    let Some(pre) = scratch.get_mut(..h.len()) else {
        return;
    };
    lanes.init_bias(w.bias, pre);
    lanes.product(&w.kernel, x, pre);
    lanes.product(&w.recurrent_kernel, h, pre);
    lanes.activate(activation, pre);
    h.copy_from_slice(pre);
}
