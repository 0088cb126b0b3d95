//! Host side of the streaming anomaly detector: attach its parameters to a forecasting blob and
//! stream a series through the core's [`Detector`] exactly as firmware does.

use anyhow::{anyhow, Context, Result};
use edgernn::detect::{DetectError, Detection, Detector};
use edgernn::format::{Blob, DetectorParams, Extensions};
use edgernn::Model;

use crate::blob_file::AlignedBlob;
use crate::builder::write_blob_with;

/// The longest window the tools stream (firmware picks its own capacity).
pub const WINDOW_CAPACITY: usize = 1024;

/// Short-term errors averaged: about an hour of 5-minute readings, long enough that one
/// noisy reading does not alarm, short enough to catch a spike.
pub const SHORT_WINDOW: u32 = 10;
/// Memory of the long-term error statistics: about a week of 5-minute readings.
pub const LONG_WINDOW: u32 = 2000;
/// The flag rises when the short-term error is a one-in-100,000 event (score 0.5).
pub const FLAG_ON: f32 = 0.5;
/// ... and falls when it is back to about one in a thousand.
pub const FLAG_OFF: f32 = 0.3;
/// After an alarm the score is held at 0 for this fraction of the training period: the
/// training period is the only length a device knows about its stream before it runs, and
/// one alarm per event is what an operator wants (NAB counts every further alarm of the same
/// event as a false positive).
pub const REFRACTORY_FRACTION: f64 = 0.2;

/// Forecasts scored 0 at the start, as a fraction of the training period: forecast errors on
/// the training stretch are in-sample and smaller than later ones, and the long-term
/// statistics need that long to settle anyway.
pub const WARMUP_FRACTION: f64 = 1.0;

/// The detector settings `edgernn nab`, `edgernn train --detector` and the demo use for every
/// series: one global set, chosen for the problem (sensor streams sampled every few
/// minutes), never per file. `training_rows` is the length of the stretch the model was
/// trained on (NAB's probationary period).
pub fn default_params(window: u32, training_rows: usize) -> DetectorParams {
    DetectorParams {
        window,
        forecasts_change: false,
        short_window: SHORT_WINDOW,
        long_window: LONG_WINDOW,
        warmup: refractory_for(WARMUP_FRACTION, training_rows),
        flag_on: FLAG_ON,
        flag_off: FLAG_OFF,
        refractory: refractory_for(REFRACTORY_FRACTION, training_rows),
    }
}

/// A number of samples: a fraction of the training rows.
pub fn refractory_for(fraction: f64, training_rows: usize) -> u32 {
    (fraction * training_rows as f64)
        .round()
        .clamp(0.0, f64::from(u32::MAX)) as u32
}

/// `blob` with its detector parameters replaced by `params` (weights and layers unchanged).
///
/// # Errors
/// When `blob` is not a valid blob, or `params` do not fit it.
pub fn with_detector(blob: &[u8], params: DetectorParams) -> Result<Vec<u8>> {
    let aligned = AlignedBlob::from_bytes(blob);
    let checked = Blob::new_checked(aligned.bytes()).map_err(|e| anyhow!("{e}"))?;
    let header = checked.decode_header().map_err(|e| anyhow!("{e}"))?;
    let extensions = Extensions {
        detector: Some(params),
        ..checked.extensions()
    };
    let out = write_blob_with(&header, &extensions, checked.weights())
        .context("writing the blob with detector parameters")?;
    let aligned = AlignedBlob::from_bytes(&out);
    let model = Model::from_bytes(aligned.bytes())
        .map_err(|e| anyhow!("the blob with detector parameters does not load: {e}"))?;
    Detector::<WINDOW_CAPACITY>::for_model(&model).map_err(|e| anyhow!("{e}"))?;
    Ok(out)
}

/// Why a series could not be streamed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StreamError {
    /// The model or its parameters cannot drive a detector.
    Model(DetectError),
    /// The sample at this 0-based index was refused (non-finite).
    Sample { index: usize, error: DetectError },
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Model(e) => write!(f, "{e}"),
            Self::Sample { index, error } => write!(f, "sample {index}: {error}"),
        }
    }
}

/// Streams `values` one at a time through a fresh detector on `model`, with the parameters
/// stored in its blob.
///
/// # Errors
/// [`StreamError::Model`] when the model has no (usable) detector parameters;
/// [`StreamError::Sample`] for the first non-finite value.
pub fn stream(model: &Model<'_>, values: &[f32]) -> Result<Vec<Detection>, StreamError> {
    let mut detector = Detector::<WINDOW_CAPACITY>::for_model(model).map_err(StreamError::Model)?;
    let integer = model.uses_integer_buffers();
    let (mut state_f, mut scratch_f) = (
        vec![0f32; model.state_len()],
        vec![0f32; model.step_scratch_len()],
    );
    let (mut state_i, mut scratch_i) = (
        vec![0i32; model.state_len()],
        vec![0i32; model.step_scratch_len()],
    );
    values
        .iter()
        .enumerate()
        .map(|(index, &x)| {
            let result = if integer {
                detector.update(model, x, &mut state_i, &mut scratch_i)
            } else {
                detector.update(model, x, &mut state_f, &mut scratch_f)
            };
            result.map_err(|error| StreamError::Sample { index, error })
        })
        .collect()
}

/// Bytes of RAM the detector needs on a device: the detector itself with room for exactly
/// its window, plus the model's state and step scratch (4-byte words).
pub fn device_ram_bytes(model: &Model<'_>, params: &DetectorParams) -> usize {
    let fixed = std::mem::size_of::<Detector<0>>();
    fixed + 4 * params.window as usize + 4 * (model.state_len() + model.step_scratch_len())
}
