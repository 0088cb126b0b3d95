//! The detection plot: one PNG per series showing what a detector saw and said.
//!
//! Top panel: the series (blue), min-max scaled. Bottom panel: the anomaly score in `[0, 1]`
//! (orange). Between them, a red tick at every flagged row. Labelled windows are shaded light
//! red across both panels, so a glance tells early, late, missed and false detections apart.
//! The x axis is the row index (first and last labelled), the series panel carries its
//! highest and lowest value.
//!
//! Long series have more rows than the plot has pixel columns; each column then draws a
//! vertical bar from the lowest to the highest value of its rows (and joins the previous
//! column's last value), so a one-row spike stays visible however long the series, where
//! plotting every n-th row would drop it.

use std::io;

use crate::plot_png::{Canvas, Rgb, CHAR_ADVANCE, FONT_SCALE};

/// Image size in pixels.
pub const WIDTH: usize = 1000;
/// Image size in pixels.
pub const HEIGHT: usize = 420;
/// Left margin, wide enough for a label like `-1.23e-4`.
const LEFT: i64 = 80;
const RIGHT: i64 = WIDTH as i64 - 16;
const TITLE_Y: i64 = 6;
const SERIES_TOP: i64 = 28;
const SERIES_BOTTOM: i64 = 262;
const TICKS_TOP: i64 = 268;
const TICKS_BOTTOM: i64 = 278;
const SCORE_TOP: i64 = 284;
const SCORE_BOTTOM: i64 = 392;
const AXIS_LABEL_Y: i64 = 400;

const SERIES: Rgb = [31, 119, 180];
const SCORE: Rgb = [255, 127, 14];
const FLAG: Rgb = [214, 39, 40];
const WINDOW: Rgb = [255, 222, 222];
const AXIS: Rgb = [0, 0, 0];
const GRID: Rgb = [215, 215, 215];

/// The detection plot's PNG bytes (`WIDTH` x `HEIGHT`, RGB): the series `values`, the
/// anomaly `scores`, the rows `flags` marks as detections, the labelled `windows` (inclusive
/// row ranges) and a `title` (drawn in capitals; characters outside the small font are blank).
///
/// Non-finite values and scores leave gaps; scores are clipped to `[0, 1]`; windows reaching
/// past the last row are clipped.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] when `scores` or `flags` is not as long as `values`;
/// compression errors (none expected writing to memory).
///
/// # Panics
/// Never.
pub fn detection_png(
    values: &[f32],
    scores: &[f32],
    flags: &[bool],
    windows: &[(usize, usize)],
    title: &str,
) -> io::Result<Vec<u8>> {
    if scores.len() != values.len() || flags.len() != values.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} values, {} scores and {} flags: one of each per row is needed",
                values.len(),
                scores.len(),
                flags.len()
            ),
        ));
    }
    let mut c = Canvas::new(WIDTH, HEIGHT);
    let rows = values.len();
    let x_of = |row: usize| x_of_row(row, rows);

    for &(first, last) in windows {
        if first > last || first >= rows {
            continue;
        }
        let last = last.min(rows - 1);
        c.fill(
            (x_of(first), SERIES_TOP),
            (x_of(last), SCORE_BOTTOM),
            WINDOW,
        );
    }
    for y in [SCORE_TOP, (SCORE_TOP + SCORE_BOTTOM) / 2] {
        c.fill((LEFT, y), (RIGHT, y), GRID);
    }

    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo <= hi {
        let span = f64::from(hi) - f64::from(lo);
        let scaled: Vec<f64> = values
            .iter()
            .map(|&v| {
                if !v.is_finite() {
                    f64::NAN
                } else if span > 0.0 {
                    (f64::from(v) - f64::from(lo)) / span
                } else {
                    0.5
                }
            })
            .collect();
        trace(&mut c, &scaled, (SERIES_TOP, SERIES_BOTTOM), SERIES);
        let label = |v: f32| format!("{v:.2e}");
        c.text(4, SERIES_TOP, &label(hi), AXIS);
        c.text(4, SERIES_BOTTOM - 5 * FONT_SCALE, &label(lo), AXIS);
    }
    let scores: Vec<f64> = scores
        .iter()
        .map(|&s| {
            if s.is_nan() {
                f64::NAN
            } else {
                f64::from(s.clamp(0.0, 1.0))
            }
        })
        .collect();
    trace(&mut c, &scores, (SCORE_TOP, SCORE_BOTTOM), SCORE);
    for (row, _) in flags.iter().enumerate().filter(|(_, &f)| f) {
        let x = x_of(row);
        // Two pixels wide: one-pixel ticks disappear when the image is scaled down.
        c.fill((x, TICKS_TOP), (x + 1, TICKS_BOTTOM), FLAG);
    }

    c.line((LEFT, SERIES_BOTTOM), (RIGHT, SERIES_BOTTOM), AXIS);
    c.line((LEFT, SCORE_BOTTOM), (RIGHT, SCORE_BOTTOM), AXIS);
    c.line((LEFT, SERIES_TOP), (LEFT, SERIES_BOTTOM), AXIS);
    c.line((LEFT, SCORE_TOP), (LEFT, SCORE_BOTTOM), AXIS);
    c.text(LEFT - 3 * CHAR_ADVANCE, SCORE_TOP, "1", AXIS);
    c.text(
        LEFT - 3 * CHAR_ADVANCE,
        SCORE_BOTTOM - 5 * FONT_SCALE,
        "0",
        AXIS,
    );
    c.text(
        LEFT - 8 * CHAR_ADVANCE,
        (SCORE_TOP + SCORE_BOTTOM) / 2 - 10,
        "SCORE",
        AXIS,
    );
    c.text(LEFT, AXIS_LABEL_Y, "0", AXIS);
    if rows > 1 {
        let last = (rows - 1).to_string();
        c.text(
            RIGHT - last.len() as i64 * CHAR_ADVANCE,
            AXIS_LABEL_Y,
            &last,
            AXIS,
        );
    }
    c.text(LEFT, TITLE_Y, &title.to_uppercase(), AXIS);
    c.png()
}

/// The pixel column of `row` of `rows`: rows spread evenly over the plot's width.
fn x_of_row(row: usize, rows: usize) -> i64 {
    let width = (RIGHT - LEFT) as f64;
    if rows <= 1 {
        return LEFT;
    }
    LEFT + (row as f64 / (rows - 1) as f64 * width).round() as i64
}

/// Draws `values` (each in `[0, 1]`, NaN for a gap) between the pixel rows `top` (1) and
/// `bottom` (0): a line through the points when there are fewer rows than pixel columns, else
/// one bar per column from its lowest to its highest value, joined to the previous column.
fn trace(c: &mut Canvas, values: &[f64], (top, bottom): (i64, i64), colour: Rgb) {
    let y_of = |v: f64| bottom - (v * (bottom - top) as f64).round() as i64;
    let rows = values.len();
    let columns = (RIGHT - LEFT + 1) as usize;
    if rows <= columns {
        let mut previous: Option<(i64, i64)> = None;
        for (row, &v) in values.iter().enumerate() {
            if v.is_nan() {
                previous = None;
                continue;
            }
            let point = (x_of_row(row, rows), y_of(v));
            c.line(previous.unwrap_or(point), point, colour);
            previous = Some(point);
        }
        return;
    }
    // Each column takes the rows whose x rounds to it; the column's bar also spans the
    // previous row's value so that consecutive columns join up.
    let mut row = 0;
    let mut previous: Option<f64> = None;
    for x in LEFT..=RIGHT {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        if let Some(p) = previous {
            (lo, hi) = (p, p);
        }
        let mut any = false;
        while row < rows && x_of_row(row, rows) == x {
            let v = values[row];
            if v.is_nan() {
                // A gap: the next value starts afresh.
                (lo, hi, previous) = (f64::INFINITY, f64::NEG_INFINITY, None);
            } else {
                (lo, hi, previous, any) = (lo.min(v), hi.max(v), Some(v), true);
            }
            row += 1;
        }
        if any {
            c.line((x, y_of(hi)), (x, y_of(lo)), colour);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ihdr_size(png: &[u8]) -> (u32, u32) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        (
            u32::from_be_bytes(png[16..20].try_into().unwrap()),
            u32::from_be_bytes(png[20..24].try_into().unwrap()),
        )
    }

    #[test]
    fn png_has_signature_and_size() {
        let n = 5000;
        let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).sin()).collect();
        let scores: Vec<f32> = (0..n).map(|i| (i % 97) as f32 / 96.0).collect();
        let flags: Vec<bool> = scores.iter().map(|&s| s > 0.99).collect();
        let png = detection_png(
            &values,
            &scores,
            &flags,
            &[(100, 400), (4900, 6000)],
            "a/b.csv",
        )
        .unwrap();
        assert_eq!(ihdr_size(&png), (WIDTH as u32, HEIGHT as u32));
    }

    #[test]
    fn odd_inputs_still_plot() {
        let cases: [(&[f32], &[f32], &[bool]); 4] = [
            (&[], &[], &[]),
            (&[1.0], &[0.5], &[true]),
            (&[2.0, 2.0, 2.0], &[0.0, 1.0, 0.0], &[false, true, false]),
            (
                &[f32::NAN, 1.0, f32::INFINITY, -3.0],
                &[f32::NAN, 2.0, -1.0, 0.5],
                &[false; 4],
            ),
        ];
        for (values, scores, flags) in cases {
            let png = detection_png(values, scores, flags, &[(0, 9), (5, 1)], "x").unwrap();
            assert_eq!(ihdr_size(&png), (WIDTH as u32, HEIGHT as u32));
        }
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let err = detection_png(&[1.0, 2.0], &[0.0], &[false, false], &[], "").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(detection_png(&[1.0], &[0.0], &[], &[], "").is_err());
    }

    #[test]
    fn a_single_spike_survives_downsampling() {
        // 20 000 rows on ~900 columns: the spike's column must reach the top of the panel.
        let mut values = vec![0.0f32; 20_000];
        values[12_345] = 1.0;
        let n = values.len();
        let mut c = Canvas::new(WIDTH, HEIGHT);
        let scaled: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        trace(&mut c, &scaled, (SERIES_TOP, SERIES_BOTTOM), SERIES);
        let x = x_of_row(12_345, n);
        assert_eq!(c.get(x, SERIES_TOP), Some(SERIES));
        assert_eq!(c.get(x + 3, SERIES_TOP), Some([255; 3]));
    }
}
