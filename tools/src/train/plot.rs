//! The loss curve as a small PNG: training loss (blue) and validation loss (orange) per epoch
//! on a log scale, the kept (best) epoch as a grey vertical line; the y axis is labelled with
//! the highest and lowest loss, the x axis with the first and last epoch (a 3x5 pixel digit
//! font). The exact numbers are in the report. Drawn with the tools' minimal PNG canvas
//! (`plot_png`) instead of a plotting crate.

use super::Epoch;
use crate::plot_png::{Canvas, FONT_SCALE};

const WIDTH: usize = 640;
const HEIGHT: usize = 400;
const MARGIN: usize = 24;
/// Left margin, wide enough for a label like `1.23e-4`.
const LEFT: usize = 72;
const TRAIN: [u8; 3] = [31, 119, 180];
const VAL: [u8; 3] = [255, 127, 14];
const GREY: [u8; 3] = [170, 170, 170];
const AXIS: [u8; 3] = [0, 0, 0];

/// The loss-curve PNG's bytes.
///
/// # Errors
/// Compression errors (none expected writing to memory).
pub fn loss_curve_png(history: &[Epoch], best_epoch: usize) -> std::io::Result<Vec<u8>> {
    let mut c = Canvas::new(WIDTH, HEIGHT);
    let (x0, x1) = (LEFT as i64, (WIDTH - MARGIN) as i64);
    let (y0, y1) = ((HEIGHT - MARGIN) as i64, MARGIN as i64);
    c.line((x0, y0), (x1, y0), AXIS);
    c.line((x0, y0), (x0, y1), AXIS);
    let logs: Vec<f64> = history
        .iter()
        .flat_map(|e| [e.loss, e.val_loss])
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(f64::log10)
        .collect();
    let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if history.is_empty() || !lo.is_finite() {
        return c.png();
    }
    let span = (hi - lo).max(1e-9);
    let n = history.len().max(2) - 1;
    let px = |epoch: usize| x0 + ((epoch - 1) as f64 / n as f64 * (x1 - x0) as f64) as i64;
    let py = |v: f64| {
        let t = (v.max(1e-300).log10() - lo) / span;
        y0 - (t.clamp(0.0, 1.0) * (y0 - y1) as f64) as i64
    };
    let label = |v: f64| format!("{v:.2e}");
    c.text(4, y1, &label(10f64.powf(hi)), AXIS);
    c.text(4, y0 - 5 * FONT_SCALE, &label(10f64.powf(lo)), AXIS);
    c.text(x0, y0 + 6, "1", AXIS);
    let last = history.len().to_string();
    c.text(x1 - last.len() as i64 * 4 * FONT_SCALE, y0 + 6, &last, AXIS);
    if best_epoch >= 1 {
        c.line((px(best_epoch), y0), (px(best_epoch), y1), GREY);
    }
    for pair in history.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        c.line((px(a.epoch), py(a.loss)), (px(b.epoch), py(b.loss)), TRAIN);
        c.line(
            (px(a.epoch), py(a.val_loss)),
            (px(b.epoch), py(b.val_loss)),
            VAL,
        );
    }
    c.png()
}
