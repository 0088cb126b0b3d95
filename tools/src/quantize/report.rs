//! Error of a quantized model against its f32 original, per layer and at the output.

use anyhow::Result;
use edgernn::format::{Blob, Header};
use edgernn::Model;

use crate::blob_file::AlignedBlob;
use crate::builder::write_blob;
use crate::runner::{run_window, Feed};

/// Error statistics of one tensor against its f32 reference.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ErrorStats {
    pub max_abs: f64,
    pub rmse: f64,
    /// `max_abs` divided by the f32 output's range (max - min).
    pub max_rel_range: f64,
    /// The f32 output's range.
    pub range: f64,
}

/// The error after one layer (running the model up to and including it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerError {
    pub index: usize,
    pub stats: ErrorStats,
}

/// The whole report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub layers: Vec<LayerError>,
    pub output: ErrorStats,
    pub f32_bytes: usize,
    pub quantized_bytes: usize,
}

fn stats(reference: &[f32], got: &[f32]) -> ErrorStats {
    let lo = reference.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = reference.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = f64::from(hi - lo).max(1e-12);
    let mut max_abs = 0.0f64;
    let mut sq = 0.0f64;
    for (&r, &g) in reference.iter().zip(got) {
        let d = f64::from(g) - f64::from(r);
        let d = if d.is_nan() { f64::INFINITY } else { d.abs() };
        max_abs = max_abs.max(d);
        sq += d * d;
    }
    let n = reference.len().max(1) as f64;
    ErrorStats {
        max_abs,
        rmse: (sq / n).sqrt(),
        max_rel_range: max_abs / range,
        range,
    }
}

/// The blob truncated after layer `upto` (inclusive), over the same weight section.
fn prefix(blob: &[u8], upto: usize) -> Result<AlignedBlob> {
    let aligned = AlignedBlob::from_bytes(blob);
    let checked = Blob::new_checked(aligned.bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let h = checked
        .decode_header()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut layers = heapless::Vec::new();
    for l in h.layers.iter().take(upto + 1) {
        layers
            .push(*l)
            .map_err(|_| anyhow::anyhow!("layer capacity"))?;
    }
    let header = Header { layers, ..h };
    Ok(AlignedBlob::from_bytes(&write_blob(
        &header,
        checked.weights(),
    )?))
}

fn outputs(blob: &AlignedBlob, windows: &[Vec<f32>]) -> Result<Vec<f32>> {
    let model = Model::from_bytes(blob.bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut all = Vec::new();
    for w in windows {
        all.extend(run_window(&model, w, Feed::Sequence).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    Ok(all)
}

impl Report {
    /// Runs both models (and their layer prefixes) on `windows` and compares.
    ///
    /// # Errors
    /// When a model cannot be run.
    pub fn measure(f32_blob: &[u8], quantized: &[u8], windows: &[Vec<f32>]) -> Result<Self> {
        let aligned = AlignedBlob::from_bytes(f32_blob);
        let count = Model::from_bytes(aligned.bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .layer_count();
        let mut layers = Vec::new();
        for i in 0..count {
            let reference = outputs(&prefix(f32_blob, i)?, windows)?;
            let got = outputs(&prefix(quantized, i)?, windows)?;
            layers.push(LayerError {
                index: i,
                stats: stats(&reference, &got),
            });
        }
        let output = layers.last().map(|l| l.stats).unwrap_or_default();
        Ok(Self {
            layers,
            output,
            f32_bytes: f32_blob.len(),
            quantized_bytes: quantized.len(),
        })
    }
}
