//! The integer scheme: quantization parameters, requantization and integer activations.
//!
//! # Modes
//!
//! | mode | weights | activations and state | arithmetic |
//! |---|---|---|---|
//! | `F32` | f32 | f32 | f32 |
//! | `Int8Weights` | i8, symmetric, one f32 scale per output row | f32 | f32 (`y = b + s_row * sum(w_q * x)`) |
//! | `Int8` | i8 per-row symmetric | i8 codes, asymmetric (`real = (q - z) * s`) | integer |
//! | `Int16` | i8 per-row symmetric | i16 codes, asymmetric | integer |
//!
//! In the integer modes the raw f32 input is quantized once on entry
//! (`q = clamp(round_half_even(x / s) + z)`) and the output dequantized once on exit;
//! everything in between is integer and identical on every target.
//!
//! # One time step in integer arithmetic
//!
//! * **Projections.** For each gate row `r`: `acc_x = bias_x[r] + sum_c W[r,c] * x_q[c]` and
//!   `acc_h = bias_h[r] + sum_c U[r,c] * h_q[c]` in 64-bit integers (no overflow for any width
//!   the loader accepts). The zero points of `x` and `h` are folded into `bias_x` and `bias_h`
//!   by the quantizer (`- z * rowsum(W_q)`), so the inner loop is a plain dot product.
//! * **Requantization** ([`fixed::Requant`]): each accumulator is scaled by its row's
//!   multiplier/shift into gate pre-activations in Q3.12 and the two parts are added, then
//!   saturated to `i16`. Rounding is half toward positive infinity.
//! * **Gates** ([`lut`]): sigmoid and tanh by a 257-entry table with linear interpolation,
//!   hard sigmoid exactly, all giving Q0.15 (measured max errors in [`lut`]).
//! * **LSTM cell**: `c` is `i16` with a power-of-two scale (`cell_frac_bits` F, chosen by
//!   calibration): `c' = sat16(round(f*c >> 15) + round(i*g >> (30 - F)))`, then `tanh(c')`
//!   after shifting `c'` to Q3.12, and `h = o * tanh(c')` in Q0.30 requantized to `h` codes.
//! * **GRU**: `h' = (z * h + (1 - z) * hh)` in Q0.15 with `h` converted from its codes by
//!   `h_to_q15`; `reset_after = false` quantizes `r * h` to full-scale codes (`1 / 127` or
//!   `1 / 32767`) before its product with `U_h`, requantized per row by `reset_scale`.
//! * **SimpleRNN and Dense** with linear or relu: the per-row requantizers target the output
//!   codes directly (relu is `max(q, z)`); with sigmoid, tanh, hard sigmoid or softmax they
//!   target Q3.12 and `output_requant` maps the Q0.15 result to the output codes.
//! * **Bidirectional** `sum`/`ave`/`mul` merge the two directions' `h - z` exactly in integers
//!   and requantize with the layer's `merged` parameters.
//!
//! Integer modes support LSTM and GRU with sigmoid, tanh or hard sigmoid activations (the cell
//! values stay in `[-1, 1]`); a quantizer asked for anything else refuses.

pub mod fixed;
pub mod lut;
pub mod tables;

pub use fixed::Requant;

use crate::format::QParams;

/// Quantizes a real value to codes in `[lo, hi]` (round half to even, as NumPy and TFLite do).
#[inline]
pub fn quantize(x: f32, p: QParams, lo: i32, hi: i32) -> i32 {
    let v = libm::rintf(x / p.scale);
    // NaN and infinities saturate instead of panicking: NaN becomes the zero point.
    if v.is_nan() {
        return fixed::clamp_to(i64::from(p.zero_point), i64::from(lo), i64::from(hi)) as i32;
    }
    // Through i32 (1e9 fits): one instruction on an FPU, where `as i64` is a library call.
    let v = i64::from(v.clamp(-1.0e9, 1.0e9) as i32) + i64::from(p.zero_point);
    fixed::clamp_to(v, i64::from(lo), i64::from(hi)) as i32
}

/// The real value of a code.
#[inline]
pub fn dequantize(q: i32, p: QParams) -> f32 {
    q.saturating_sub(p.zero_point) as f32 * p.scale
}
