//! `--task autoencode`: a sequence autoencoder over windows of the features, and its report.
//!
//! # The architecture, and why
//!
//! ```text
//! Normalization -> encoder: --layers recurrent layers, the last returning one vector
//!               -> RepeatVector(--window)
//!               -> decoder: --layers recurrent layers, return_sequences
//!               -> --dense hidden layers (relu), then Dense(features), per step
//! ```
//!
//! The encoder-`RepeatVector`-decoder shape (Srivastava et al. 2015, "Unsupervised learning
//! of video representations using LSTMs"; Malhotra et al. 2016, "LSTM-based encoder-decoder
//! for multi-sensor anomaly detection") is chosen over the simpler recurrent
//! `return_sequences` stack with a Dense layer per step, because the simpler model is not an
//! autoencoder: its output at step `t` sees the input at step `t` directly, so with
//! `--units` at least the number of features it can learn (close to) the identity, and its
//! reconstruction error then says little about whether a window is normal. Here the whole
//! window has to pass through one vector of `--units` values (twice that with
//! `--bidirectional`), so only what the training windows have in common is reconstructed
//! well, and an unusual window shows up as a large error, which is what makes the error an
//! anomaly score. The cost: the model needs the whole window (a `RepeatVector` model is not
//! streamable), which is fine for scoring windows.
//!
//! The loss is the MSE on normalised values (every feature counts alike); the blob outputs
//! raw units (the de-normalisation is folded into the output Dense layer, see
//! [`super::export`]): `[window, features]` per window.
//!
//! # The report
//!
//! Validation MAE and RMSE in raw units over every value of every validation window, beside
//! two baselines that need no training: each value reconstructed by its feature's training
//! mean, and each window by its own per-feature mean (what a model that only remembers the
//! level would do). Per-window errors (the mean absolute error of a window, raw units) as
//! quantiles, on the validation windows and on up to [`ERROR_SAMPLE`] training windows: a
//! high training quantile is a natural first anomaly threshold.

use serde::Serialize;

use super::Prepared;

/// Most training windows whose reconstruction errors are reported (evenly spaced).
pub const ERROR_SAMPLE: usize = 4096;

/// The quantiles reported of the per-window errors.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// Quantiles of per-window reconstruction errors (mean absolute error of a window, raw units).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowErrors {
    pub windows: usize,
    pub mean: f64,
    /// `(q, value)` for each of [`QUANTILES`] (nearest rank).
    pub quantiles: Vec<(f64, f64)>,
    pub max: f64,
}

/// An autoencoder's validation metrics in raw units.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reconstruction {
    pub mae: f64,
    pub rmse: f64,
    /// Every value reconstructed by its feature's training mean.
    pub baseline_mae: f64,
    pub baseline_rmse: f64,
    /// Every window reconstructed by its own per-feature mean.
    pub window_mean_mae: f64,
    pub window_mean_rmse: f64,
    /// Per-window errors on the validation windows.
    pub val_window_errors: WindowErrors,
    /// Per-window errors on evenly spaced training windows.
    pub train_window_errors: WindowErrors,
}

/// The training windows (their end rows) whose errors are reported: at most
/// [`ERROR_SAMPLE`], evenly spaced.
pub fn error_sample(train: &[usize]) -> Vec<usize> {
    let step = train.len().div_ceil(ERROR_SAMPLE).max(1);
    train.iter().step_by(step).copied().collect()
}

fn window_errors(p: &Prepared, ends: &[usize], outputs: &[Vec<f32>]) -> WindowErrors {
    let mut errors: Vec<f64> = ends
        .iter()
        .zip(outputs)
        .map(|(&t, o)| {
            let raw = p.raw_window(t);
            let sum: f64 = o
                .iter()
                .zip(&raw)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs())
                .sum();
            sum / raw.len().max(1) as f64
        })
        .collect();
    errors.sort_by(f64::total_cmp);
    let n = errors.len();
    let at = |q: f64| -> f64 {
        if n == 0 {
            return 0.0;
        }
        // Nearest rank: the smallest value with at least q of the windows at or below it.
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        errors[rank - 1]
    };
    WindowErrors {
        windows: n,
        mean: errors.iter().sum::<f64>() / n.max(1) as f64,
        quantiles: QUANTILES.iter().map(|&q| (q, at(q))).collect(),
        max: errors.last().copied().unwrap_or(0.0),
    }
}

/// The report for reconstructions `val` of the validation windows ending at `ends` and
/// `train` of the training windows ending at `sample`, all `[window, features]` raw units.
pub(super) fn report(
    p: &Prepared,
    ends: &[usize],
    val: &[Vec<f32>],
    sample: &[usize],
    train: &[Vec<f32>],
) -> Reconstruction {
    let f = p.width();
    let mean = &p.norm.mean;
    let (mut ae, mut se, mut bae, mut bse, mut wae, mut wse, mut n) =
        (0f64, 0f64, 0f64, 0f64, 0f64, 0f64, 0usize);
    for (&t, o) in ends.iter().zip(val) {
        let raw = p.raw_window(t);
        let steps = (raw.len() / f.max(1)).max(1);
        let own_mean: Vec<f64> = (0..f)
            .map(|j| {
                raw.iter()
                    .skip(j)
                    .step_by(f)
                    .map(|&v| f64::from(v))
                    .sum::<f64>()
                    / steps as f64
            })
            .collect();
        for (k, (&got, &x)) in o.iter().zip(&raw).enumerate() {
            let x = f64::from(x);
            let d = f64::from(got) - x;
            let b = f64::from(mean[k % f]) - x;
            let w = own_mean[k % f] - x;
            ae += d.abs();
            se += d * d;
            bae += b.abs();
            bse += b * b;
            wae += w.abs();
            wse += w * w;
            n += 1;
        }
    }
    let n = n.max(1) as f64;
    Reconstruction {
        mae: ae / n,
        rmse: (se / n).sqrt(),
        baseline_mae: bae / n,
        baseline_rmse: (bse / n).sqrt(),
        window_mean_mae: wae / n,
        window_mean_rmse: (wse / n).sqrt(),
        val_window_errors: window_errors(p, ends, val),
        train_window_errors: window_errors(p, sample, train),
    }
}
