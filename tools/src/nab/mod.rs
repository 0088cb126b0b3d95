//! The Numenta Anomaly Benchmark (NAB): reading its labels and series, scoring a detector's
//! anomaly scores the way NAB v1.1 does, and plotting detections.
//!
//! - [`labels`]: `combined_windows.json`, timestamps, and `timestamp,value,...` CSV files.
//! - [`score`]: the scoring (probationary period, scaled-sigmoid window weights, one
//!   threshold per profile swept over the whole corpus, normalisation to 0..100).
//! - [`plot`]: a PNG of a series, its anomaly scores, detections and labelled windows.
//!
//! `edgernn evaluate` (in `cli::evaluate`) puts them together for a directory of results.

pub mod labels;
pub mod plot;
pub mod score;
