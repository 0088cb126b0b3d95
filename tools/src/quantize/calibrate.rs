//! Activation ranges of an f32 model on calibration windows, layer by layer.

use anyhow::{Context, Result};
use edgernn::format::{Header, Layer, Merge, QuantMode, RecurrentLayer};
use edgernn::Model;

use crate::blob_file::AlignedBlob;
use crate::builder::write_blob;
use crate::runner::{run_window, states_per_step, Feed};

/// A closed range of real values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub lo: f32,
    pub hi: f32,
}

/// What calibration learned about one layer.
#[derive(Debug, Clone, Copy)]
pub struct LayerStats {
    /// Recurrent layers: `h` over every step of both directions.
    pub h: Range,
    /// The layer's output (the merged output for Bidirectional sum/ave/mul).
    pub output: Range,
    /// LSTM: the largest `|c|` seen.
    pub cell_max_abs: f32,
}

/// Ranges of the model input and of every layer.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub input: Range,
    pub layers: Vec<LayerStats>,
}

/// The range of `values`: min/max, or the `[100 - p, p]` percentiles.
fn range_of<'a>(values: impl Iterator<Item = &'a f32>, percentile: Option<f64>) -> Range {
    let mut v: Vec<f32> = values.copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return Range { lo: 0.0, hi: 0.0 };
    }
    match percentile {
        None => Range {
            lo: v.iter().copied().fold(f32::INFINITY, f32::min),
            hi: v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        },
        Some(p) => {
            v.sort_by(f32::total_cmp);
            let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
            let p = (p / 100.0).clamp(0.5, 1.0);
            Range {
                lo: at(1.0 - p),
                hi: at(p),
            }
        }
    }
}

/// A one-layer f32 model reading `width` features, over the original weight section.
fn single(layer: Layer, width: usize, weights: &[u8]) -> Result<AlignedBlob> {
    let mut layers = heapless::Vec::new();
    layers
        .push(layer)
        .map_err(|_| anyhow::anyhow!("layer capacity"))?;
    let header = Header {
        mode: QuantMode::F32,
        input_features: width as u32,
        input_quant: None,
        layers,
    };
    Ok(AlignedBlob::from_bytes(&write_blob(&header, weights)?))
}

fn run_all(blob: &AlignedBlob, windows: &[Vec<f32>], feed: Feed) -> Result<Vec<Vec<f32>>> {
    let model = Model::from_bytes(blob.bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    windows
        .iter()
        .map(|w| run_window(&model, w, feed).map_err(|e| anyhow::anyhow!("{e}")))
        .collect()
}

fn reversed_rows(xs: &[f32], width: usize) -> Vec<f32> {
    xs.chunks_exact(width).rev().flatten().copied().collect()
}

impl Calibration {
    /// Runs the model layer by layer on `windows` and records the ranges.
    ///
    /// # Errors
    /// When a probe model cannot be built or run.
    pub fn collect(
        header: &Header,
        weights: &[u8],
        windows: &[Vec<f32>],
        percentile: Option<f64>,
    ) -> Result<Self> {
        let mut seqs: Vec<Vec<f32>> = windows.to_vec();
        let mut width = header.input_features as usize;
        let input = range_of(seqs.iter().flatten(), percentile);
        let mut layers = Vec::new();
        for (index, layer) in header.layers.iter().enumerate() {
            let at = || format!("calibrating layer {index}");
            let outs = match layer {
                // A RepeatVector cannot stand alone (it needs a vector before it): repeat here.
                Layer::RepeatVector(r) => seqs
                    .iter()
                    .map(|s| {
                        let row = &s[s.len().saturating_sub(width)..];
                        row.repeat(r.times as usize)
                    })
                    .collect(),
                _ => run_all(&single(*layer, width, weights)?, &seqs, Feed::Sequence)
                    .with_context(at)?,
            };
            let output = range_of(outs.iter().flatten(), percentile);
            let mut stats = LayerStats {
                h: output,
                output,
                cell_max_abs: 0.0,
            };
            if let Layer::Recurrent(r) = layer {
                // Every step's h of both directions, not just what the layer returns.
                let probe = RecurrentLayer {
                    return_sequences: true,
                    bidirectional: r.bidirectional.map(|_| Merge::Concat),
                    ..*r
                };
                let hs = run_all(
                    &single(Layer::Recurrent(probe), width, weights)?,
                    &seqs,
                    Feed::Sequence,
                )
                .with_context(at)?;
                stats.h = range_of(hs.iter().flatten(), percentile);
                if r.cell.has_cell_state() {
                    let units = r.units as usize;
                    let directions = [
                        Some((r.forward, r.go_backwards)),
                        r.backward.map(|b| (b, true)),
                    ];
                    for (weights_of_dir, reverse) in directions.into_iter().flatten() {
                        let one_way = RecurrentLayer {
                            return_sequences: true,
                            go_backwards: false,
                            bidirectional: None,
                            forward: weights_of_dir,
                            backward: None,
                            quant: None,
                            ..*r
                        };
                        let blob = single(Layer::Recurrent(one_way), width, weights)?;
                        let model =
                            Model::from_bytes(blob.bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
                        for seq in &seqs {
                            let xs = if reverse {
                                reversed_rows(seq, width)
                            } else {
                                seq.clone()
                            };
                            let states =
                                states_per_step(&model, &xs).map_err(|e| anyhow::anyhow!("{e}"))?;
                            for s in states {
                                for c in s.get(units..2 * units).unwrap_or(&[]) {
                                    stats.cell_max_abs = stats.cell_max_abs.max(c.abs());
                                }
                            }
                        }
                    }
                }
                width = match r.bidirectional {
                    Some(Merge::Concat) => 2 * r.units as usize,
                    _ => r.units as usize,
                };
            } else if let Layer::Dense(d) = layer {
                width = d.units as usize;
            } else if let Layer::Embedding(e) = layer {
                width = e.dim as usize;
            }
            layers.push(stats);
            seqs = outs;
        }
        Ok(Self { input, layers })
    }
}
