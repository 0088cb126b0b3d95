//! The loss curve as a small PNG: training loss (blue) and validation loss (orange) per epoch
//! on a log scale, the kept (best) epoch as a grey vertical line; the y axis is labelled with
//! the highest and lowest loss, the x axis with the first and last epoch (a 3x5 pixel digit
//! font). The exact numbers are in the report. Written with a minimal PNG encoder (8-bit RGB, zlib via flate2, which the tools
//! already build for the importers) instead of a plotting crate.

use std::io::Write;

use super::Epoch;

const WIDTH: usize = 640;
const HEIGHT: usize = 400;
const MARGIN: usize = 24;
/// Left margin, wide enough for a label like `1.23e-4`.
const LEFT: usize = 72;
/// Pixels per font pixel.
const FONT_SCALE: i64 = 2;
const TRAIN: [u8; 3] = [31, 119, 180];
const VAL: [u8; 3] = [255, 127, 14];
const GREY: [u8; 3] = [170, 170, 170];
const AXIS: [u8; 3] = [0, 0, 0];

struct Canvas {
    pixels: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        Self {
            pixels: vec![255; WIDTH * HEIGHT * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..WIDTH as i64).contains(&x) && (0..HEIGHT as i64).contains(&y) {
            let i = (y as usize * WIDTH + x as usize) * 3;
            self.pixels[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Text in the 3x5 font, top-left corner at `(x, y)`; unknown characters are blank.
    fn text(&mut self, x: i64, y: i64, text: &str, c: [u8; 3]) {
        for (k, ch) in text.chars().enumerate() {
            let rows = glyph(ch);
            let x0 = x + k as i64 * 4 * FONT_SCALE;
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..3 {
                    if bits & (0b100 >> col) != 0 {
                        for dy in 0..FONT_SCALE {
                            for dx in 0..FONT_SCALE {
                                self.set(
                                    x0 + col * FONT_SCALE + dx,
                                    y + r as i64 * FONT_SCALE + dy,
                                    c,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// A 2-pixel-wide line (Bresenham).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            self.set(x, y + 1, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }
}

/// Rows of a 3x5 glyph, 3 bits each (most significant bit on the left).
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        'e' => [0b000, 0b111, 0b111, 0b100, 0b111],
        _ => [0; 5],
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & 0u32.wrapping_sub(crc & 1));
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn encode_png(pixels: &[u8], width: usize, height: usize) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::with_capacity((width * 3 + 1) * height);
    for row in pixels.chunks_exact(width * 3) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw)?;
    let idat = z.finish()?;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", &[]);
    Ok(png)
}

/// The loss-curve PNG's bytes.
///
/// # Errors
/// Compression errors (none expected writing to memory).
pub fn loss_curve_png(history: &[Epoch], best_epoch: usize) -> std::io::Result<Vec<u8>> {
    let mut c = Canvas::new();
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
        return encode_png(&c.pixels, WIDTH, HEIGHT);
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
    encode_png(&c.pixels, WIDTH, HEIGHT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc_of_iend_is_the_known_value() {
        assert_eq!(super::crc32(b"IEND"), 0xAE42_6082);
    }
}
