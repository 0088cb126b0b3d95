//! Activation functions with Keras 3 definitions, on f32.
//!
//! Non-finite values propagate: NaN in gives NaN out (relu and hard_sigmoid included), so a
//! faulty sensor shows up in the output instead of being silently clamped.

use crate::format::Activation;

/// The logistic sigmoid `1 / (1 + exp(-x))`, as Keras 3 and PyTorch define `sigmoid`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// Keras 3 `hard_sigmoid`: `clip(x / 6 + 0.5, 0, 1)` (= `relu6(x + 3) / 6`).
#[inline]
pub fn hard_sigmoid(x: f32) -> f32 {
    // `clamp` keeps NaN as NaN.
    (x / 6.0 + 0.5).clamp(0.0, 1.0)
}

/// `max(x, 0)`, written so that NaN propagates.
#[inline]
pub fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

/// Applies an element-wise activation. `Softmax` is not element-wise: see [`softmax_in_place`];
/// here it is treated as linear, and the loader never lets it reach a cell.
#[inline]
pub fn apply(activation: Activation, x: f32) -> f32 {
    match activation {
        Activation::Linear | Activation::Softmax => x,
        Activation::Relu => relu(x),
        Activation::Tanh => libm::tanhf(x),
        Activation::Sigmoid => sigmoid(x),
        Activation::HardSigmoid => hard_sigmoid(x),
    }
}

/// Applies an activation to a whole vector (softmax included).
pub fn apply_slice(activation: Activation, values: &mut [f32]) {
    match activation {
        Activation::Linear => {}
        // Refused at load without its feature (then treated as linear here, never reached).
        Activation::Softmax if cfg!(feature = "softmax") => softmax_in_place(values),
        _ => {
            for v in values.iter_mut() {
                *v = apply(activation, *v);
            }
        }
    }
}

/// Numerically stable softmax (subtract the max before `exp`, as Keras does).
pub fn softmax_in_place(values: &mut [f32]) {
    let max = values
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    for v in values.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_sigmoid_is_keras3() {
        assert_eq!(hard_sigmoid(-3.0), 0.0);
        assert_eq!(hard_sigmoid(3.0), 1.0);
        assert_eq!(hard_sigmoid(0.0), 0.5);
        assert!((hard_sigmoid(1.5) - 0.75).abs() < 1e-7);
        assert!(hard_sigmoid(f32::NAN).is_nan());
    }

    #[test]
    fn nan_propagates() {
        for a in [
            Activation::Linear,
            Activation::Relu,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::HardSigmoid,
        ] {
            assert!(apply(a, f32::NAN).is_nan(), "{a:?}");
        }
        let mut v = [1.0, f32::NAN, 0.5];
        softmax_in_place(&mut v);
        assert!(v.iter().all(|x| x.is_nan()));
    }

    #[test]
    fn softmax_sums_to_one_and_is_stable() {
        let mut v = [1000.0, 1001.0, 999.0];
        softmax_in_place(&mut v);
        let s: f32 = v.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert!(v[1] > v[0] && v[0] > v[2]);
    }

    #[test]
    fn sigmoid_saturates_without_nan() {
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(sigmoid(200.0), 1.0);
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
    }
}
