//! Streaming anomaly detection around a one-step forecasting model, one raw sample at a time.
//!
//! The model (any streamable model with one input feature and one output, such as the
//! forecasters `edgernn train` writes) reads the last [`DetectorParams::window`] raw samples
//! and forecasts the next one. The detector turns the forecast errors into an anomaly score:
//!
//! 1. `e = |x - forecast|` (the forecast is the model's output, or the last sample plus it
//!    when the model forecasts changes), averaged over the last `short_window` errors into `a`.
//! 2. The long-term mean and variance of `a` are tracked with exponential forgetting over
//!    `long_window` samples (exact running averages until that many have been seen), so the
//!    detector keeps adapting on the device after training, as a sensor drifts.
//! 3. The likelihood that `a` is this large under that distribution is the Gaussian tail
//!    `q = P(Z >= (a - mean) / std)`; the score is `ln(q) / ln(1e-10)` clamped to `[0, 1]`, so
//!    0.5 means a one-in-100,000 short-term error and 1 means one in 10^10 or rarer. Rarity,
//!    not raw error size, is what is compared, so one threshold serves every sensor.
//! 4. A score at or above `flag_on` raises an alarm, and for `refractory` samples after it the
//!    reported score is 0, so one event raises one alarm (and the reported score reaches
//!    `flag_on` exactly at alarms). The flag is the state an operator sees: up at `flag_on`,
//!    down once the score falls below `flag_off` (hysteresis).
//!
//! Everything lives in the fixed-size [`Detector`] (plain data: it can be saved across a deep
//! sleep like model state); the model's state and scratch are the caller's, as for
//! [`Model::run_sequence`]. A step costs one model run over the window and a few dozen flops.

use core::fmt;

use crate::format::DetectorParams;
use crate::model::{Model, Word};
use crate::{LoadError, RunError};

/// Most errors a short-term average can cover ([`DetectorParams::short_window`]).
pub const MAX_SHORT_WINDOW: usize = 64;

/// The smallest long-term standard deviation, relative to the long-term mean error plus the
/// signal's own spread, so a perfectly predicted signal does not alarm on tiny errors.
const STD_FLOOR: f32 = 1e-3;
/// The smallest error that counts, relative to the signal's level: below it a change is
/// sensor or f32 resolution, not behaviour (a flat signal would otherwise alarm on one ulp).
const LEVEL_RESOLUTION: f32 = 1e-5;
/// `ln(1e-10)`: the score's scale, the rarity at which it saturates to 1.
const LN_SATURATION: f32 = -10.0 * core::f32::consts::LN_10;

/// Why the detector did not take a sample.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DetectError {
    /// The blob carries no detector parameters.
    NoParams,
    /// The model is not a streamable forecaster of one value from one feature.
    ModelShape,
    /// The parameters' window is larger than this detector's capacity `N`.
    WindowTooLarge { window: u32, capacity: u32 },
    /// The sample is NaN or infinite (it was not taken; the detector is unchanged).
    NonFinite,
    /// The model run failed (wrong buffer sizes or type).
    Run(RunError),
}

impl fmt::Display for DetectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoParams => f.write_str("the model has no anomaly detector parameters"),
            Self::ModelShape => f.write_str(
                "the detector needs a streamable model with 1 input feature and 1 output value",
            ),
            Self::WindowTooLarge { window, capacity } => write!(
                f,
                "detector window of {window} samples exceeds this build's capacity of {capacity}"
            ),
            Self::NonFinite => f.write_str("sample is NaN or infinite"),
            Self::Run(e) => write!(f, "model run failed: {e}"),
        }
    }
}

impl core::error::Error for DetectError {}

impl From<RunError> for DetectError {
    fn from(e: RunError) -> Self {
        Self::Run(e)
    }
}

/// Checks parameters read from a blob (the loader calls this, so a loaded blob's parameters
/// are always in range).
///
/// # Errors
/// [`LoadError::BadExtension`] for a zero or oversized window, a short window outside
/// `1..=MAX_SHORT_WINDOW`, a zero long window, or flag thresholds that are not
/// `0 <= flag_off <= flag_on <= 1`.
pub fn check_params(p: &DetectorParams) -> Result<(), LoadError> {
    let short_ok = (1..=MAX_SHORT_WINDOW as u32).contains(&p.short_window);
    let flags_ok = (0.0..=1.0).contains(&p.flag_on) && (0.0..=p.flag_on).contains(&p.flag_off);
    if p.window == 0 || p.window as usize > crate::MAX_WIDTH * 16 || !short_ok {
        return Err(LoadError::BadExtension);
    }
    if p.long_window == 0 || !flags_ok {
        return Err(LoadError::BadExtension);
    }
    Ok(())
}

/// What the detector says about one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Detection {
    /// The reported anomaly score in `[0, 1]` (0 while warming up and during the refractory
    /// period after an alarm).
    pub score: f32,
    /// The score before the refractory rule.
    pub raw_score: f32,
    /// The flag after this sample (hysteresis between `flag_off` and `flag_on`).
    pub flag: bool,
    /// A new alarm: the score reached `flag_on` outside the refractory period of an earlier one.
    pub alarm: bool,
    /// The forecast this sample was compared with (`None` until the window first fills).
    pub forecast: Option<f32>,
}

/// Running mean and variance with exponential forgetting after `memory` samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Moments {
    count: u32,
    mean: f32,
    var: f32,
}

impl Moments {
    fn push(&mut self, v: f32, memory: u32) {
        self.count = self.count.saturating_add(1).min(memory.max(1));
        let alpha = 1.0 / self.count as f32;
        let delta = v - self.mean;
        self.mean += alpha * delta;
        // West's weighted update: exact for alpha = 1/n, exponential forgetting afterwards.
        self.var = (1.0 - alpha) * (self.var + alpha * delta * delta);
    }

    fn std(&self) -> f32 {
        libm::sqrtf(self.var.max(0.0))
    }
}

/// The streaming detector with room for a window of up to `N` samples.
///
/// Memory is `size_of::<Detector<N>>()` (about `4 N + 300` bytes) plus the model's state and
/// step scratch, which the caller passes to [`Detector::update`].
#[derive(Debug, Clone, PartialEq)]
pub struct Detector<const N: usize = 64> {
    params: DetectorParams,
    /// The last `filled` samples, oldest first.
    history: [f32; N],
    filled: usize,
    /// The last `short_window` errors, as a ring.
    errors: [f32; MAX_SHORT_WINDOW],
    errors_seen: u32,
    /// The short-term average error's long-term statistics.
    error_stats: Moments,
    /// The signal's own long-term statistics (a scale for the variance floor).
    signal_stats: Moments,
    /// Forecasts compared so far (saturating).
    scored: u32,
    forecast: Option<f32>,
    flag: bool,
    refractory_left: u32,
}

impl<const N: usize> Detector<N> {
    /// A fresh detector for `params`.
    ///
    /// # Errors
    /// [`DetectError::WindowTooLarge`] when `params.window > N`.
    pub fn new(params: DetectorParams) -> Result<Self, DetectError> {
        let window = params.window as usize;
        if window > N || window == 0 {
            return Err(DetectError::WindowTooLarge {
                window: params.window,
                capacity: crate::error::sat_u32(N),
            });
        }
        Ok(Self {
            params,
            history: [0.0; N],
            filled: 0,
            errors: [0.0; MAX_SHORT_WINDOW],
            errors_seen: 0,
            error_stats: Moments::default(),
            signal_stats: Moments::default(),
            scored: 0,
            forecast: None,
            flag: false,
            refractory_left: 0,
        })
    }

    /// A fresh detector with the parameters stored in `model`'s blob, checked against the model.
    ///
    /// # Errors
    /// [`DetectError::NoParams`], [`DetectError::ModelShape`] or
    /// [`DetectError::WindowTooLarge`].
    pub fn for_model<const L: usize>(model: &Model<'_, L>) -> Result<Self, DetectError> {
        let params = model.detector_params().ok_or(DetectError::NoParams)?;
        Self::check_model(model)?;
        Self::new(params)
    }

    /// Whether `model` can drive a detector: streamable, one input feature, one output value.
    ///
    /// # Errors
    /// [`DetectError::ModelShape`] otherwise.
    pub fn check_model<const L: usize>(model: &Model<'_, L>) -> Result<(), DetectError> {
        let shape_ok = model.is_streamable()
            && model.input_features() == 1
            && model.output_width() == 1
            && !model.output_is_sequence()
            && !model.reads_tokens();
        if shape_ok {
            Ok(())
        } else {
            Err(DetectError::ModelShape)
        }
    }

    /// The parameters.
    pub fn params(&self) -> DetectorParams {
        self.params
    }

    /// Takes one raw sample: scores it against the forecast made from the samples before it,
    /// then forecasts the next one. `state` and `scratch` are the model's
    /// ([`Model::state_len`], [`Model::step_scratch_len`]); their contents between calls do not
    /// matter (each forecast starts from a reset state, as in training).
    ///
    /// # Errors
    /// [`DetectError::NonFinite`] for a NaN or infinite sample, [`DetectError::ModelShape`] for
    /// a model that cannot drive a detector, [`DetectError::Run`] for wrong buffers. On error
    /// the detector is unchanged.
    ///
    /// # Panics
    /// Never.
    pub fn update<W: Word, const L: usize>(
        &mut self,
        model: &Model<'_, L>,
        sample: f32,
        state: &mut [W],
        scratch: &mut [W],
    ) -> Result<Detection, DetectError> {
        if !sample.is_finite() {
            return Err(DetectError::NonFinite);
        }
        Self::check_model(model)?;
        let window = (self.params.window as usize).min(N);
        // The window moves in place; if the model run then fails, the move is undone (the
        // dropped oldest sample is all it takes), so the detector is left as it was without
        // copying the whole history on every sample.
        let full = self.filled == window;
        let dropped = self.history.first().copied().unwrap_or(0.0);
        if full {
            self.history.copy_within(1..window, 0);
            self.filled -= 1;
        }
        let at = self.filled;
        let overwritten = self.history.get(at).copied().unwrap_or(0.0);
        if let Some(slot) = self.history.get_mut(at) {
            *slot = sample;
        }
        self.filled += 1;
        let next_forecast = if self.filled == window {
            let mut out = [0.0f32];
            model.reset_state(state);
            let xs = self.history.get(..window).unwrap_or(&[]);
            if let Err(e) = model.run_sequence(xs, state, scratch, &mut out) {
                if let Some(slot) = self.history.get_mut(at) {
                    *slot = overwritten;
                }
                self.filled -= 1;
                if full {
                    self.history.copy_within(0..window - 1, 1);
                    if let Some(first) = self.history.first_mut() {
                        *first = dropped;
                    }
                    self.filled += 1;
                }
                return Err(e.into());
            }
            Some(if self.params.forecasts_change {
                sample + out[0]
            } else {
                out[0]
            })
        } else {
            None
        };

        let compared = self.forecast;
        let raw_score = match compared {
            Some(f) => self.score_error(libm::fabsf(sample - f)),
            None => 0.0,
        };
        self.signal_stats.push(sample, self.params.long_window);
        self.forecast = next_forecast;

        let high = raw_score >= self.params.flag_on && raw_score > 0.0;
        if high {
            self.flag = true;
        } else if self.flag && raw_score < self.params.flag_off {
            self.flag = false;
        }
        // A high score inside the refractory period belongs to the alarm that started it; so
        // the reported score reaches `flag_on` exactly at alarms.
        let alarm = high && self.refractory_left == 0;
        let score = if alarm {
            self.refractory_left = self.params.refractory;
            raw_score
        } else if self.refractory_left > 0 {
            self.refractory_left -= 1;
            0.0
        } else {
            raw_score
        };
        Ok(Detection {
            score,
            raw_score,
            flag: self.flag,
            alarm,
            forecast: compared,
        })
    }

    /// Adds one forecast error and returns the score of the new short-term average (0 while
    /// warming up). The statistics are updated after scoring, so a sample is judged against
    /// the past only.
    fn score_error(&mut self, error: f32) -> f32 {
        let short = (self.params.short_window as usize).clamp(1, MAX_SHORT_WINDOW);
        if let Some(slot) = self.errors.get_mut(self.errors_seen as usize % short) {
            *slot = error;
        }
        self.errors_seen = self.errors_seen.saturating_add(1);
        let n = (self.errors_seen as usize).min(short);
        let average = self.errors.iter().take(n).sum::<f32>() / n as f32;

        let stats = self.error_stats;
        let signal = self.signal_stats;
        let floor = STD_FLOOR * (stats.mean + signal.std())
            + LEVEL_RESOLUTION * libm::fabsf(signal.mean)
            + f32::MIN_POSITIVE;
        let score = if self.scored > self.params.warmup && stats.count >= 2 {
            let z = (average - stats.mean) / stats.std().max(floor);
            let tail = 0.5 * libm::erfcf(z * core::f32::consts::FRAC_1_SQRT_2);
            (libm::logf(tail + 1e-10) / LN_SATURATION).clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.error_stats.push(average, self.params.long_window);
        self.scored = self.scored.saturating_add(1);
        score
    }
}

#[cfg(test)]
mod tests;
