//! What the x86_64 LSTM gate kernels (`avx2/lstm.rs`, `avx512/lstm.rs`) share: the vector
//! output rule's constants ([`Output`]), and the sigmoid and tanh tables of
//! [`crate::quant::lut`] in the form they gather from: entry `k` (`0..256`) holds sample `k` in its low half and the step to sample
//! `k + 1` in its high half, so one aligned 32-bit gather gives both ends of an interpolation.
//!
//! The samples are `lut`'s 257-sample tables, unfolded from the stored left halves by
//! `lut::sample`'s rule (`T[k] = min(mirror - T[256 - k], 32767)` right of the middle). The
//! conformance suite checks the kernels that read them against the scalar kernel for every
//! `i16` pre-activation, so a table that drifted from `lut` would fail there.

use crate::kernels::LstmParams;
use crate::quant::fixed::{MAX_SHIFT, MIN_SHIFT};
use crate::quant::tables::{SIGMOID_Q15, TANH_Q15};

/// Sample `k` (`0..=256`) of the table whose left half is `left`.
const fn sample(left: &[i16; 129], mirror: i32, k: usize) -> i32 {
    if k < 129 {
        left[k] as i32
    } else {
        let v = mirror - left[256 - k] as i32;
        if v > 32767 {
            32767
        } else {
            v
        }
    }
}

/// The pairs (sample, step to the next) of the table whose left half is `left`. Neighbouring
/// samples of both functions differ by far less than 2^15 (a compile-time check).
const fn pairs(left: &[i16; 129], mirror: i32) -> [i32; 256] {
    let mut out = [0i32; 256];
    let mut k = 0;
    while k < 256 {
        let (a, b) = (sample(left, mirror, k), sample(left, mirror, k + 1));
        let step = b - a;
        assert!(step >= i16::MIN as i32 && step <= i16::MAX as i32);
        out[k] = (a & 0xFFFF) | (step << 16);
        k += 1;
    }
    out
}

/// Sigmoid pairs (see the module docs).
pub(crate) static SIGMOID_PAIRS: [i32; 256] = pairs(&SIGMOID_Q15, 32768);
/// Tanh pairs (see the module docs).
pub(crate) static TANH_PAIRS: [i32; 256] = pairs(&TANH_Q15, 0);

/// The constants of the vector output rule, `((mul_high(v, m) >> (n - 33)) + 1) >> 1` (see
/// `avx512/lstm.rs`), when it applies: a multiplier `m >= 0`, `n = 31 + shift >= 33` and
/// `|zero| <= 2^30`.
#[derive(Clone, Copy)]
pub(crate) struct Output {
    /// The multiplier's high and low 16 bits.
    pub(crate) high: i32,
    pub(crate) low: i32,
    /// `min(n - 33, 31)`.
    pub(crate) shift: i32,
}

impl Output {
    pub(crate) fn new(params: &LstmParams) -> Option<Self> {
        let m = params.codes.requant.multiplier;
        let n = 31 + i32::from(params.codes.requant.shift.clamp(MIN_SHIFT, MAX_SHIFT));
        let zero_fits = (-(1 << 30)..=1 << 30).contains(&params.codes.zero);
        (m >= 0 && n >= 33 && zero_fits).then_some(Self {
            high: m >> 16,
            low: m & 0xFFFF,
            shift: (n - 33).min(31),
        })
    }
}
