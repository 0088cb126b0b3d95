//! NumPy `.npy` files: reading versions 1.0, 2.0 and 3.0 of numeric dtypes into f32 arrays,
//! and writing little-endian f32 arrays as NumPy itself does.
//!
//! The format: the magic `\x93NUMPY`, two version bytes, a little-endian header length (2
//! bytes in version 1.0, 4 bytes later), a header holding a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces and a
//! `'\n'`, then the raw elements. The header is parsed by hand rather than evaluated, and
//! every size it declares is checked against the bytes actually present before anything is
//! allocated, so a corrupt or hostile file yields an error, never a panic or a huge
//! allocation.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::atomic::write_atomic_with;
use super::{element_count, shape_tuple, Array, IoError, IoErrorKind};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Nesting allowed in the header literal; the real header nests two levels, and the limit
/// keeps a hostile `((((...` from exhausting the stack.
const MAX_DEPTH: usize = 16;

/// Reads a `.npy` file into an f32 array in C order.
///
/// Accepted: format versions 1.0, 2.0 and 3.0; dtypes float16/32/64, int8/16/32/64,
/// uint8/16/32/64 and bool, in either byte order (`<` little, `>` big; `=`, `|` or no prefix
/// mean this machine's order); C or Fortran order (Fortran data is transposed to C order).
/// Values are converted to f32: float64 rounds to nearest, and integers beyond ±2^24 (far
/// above any vocabulary size) round to a nearby representable value. NaN and infinities are
/// kept (see the [module docs](super)).
///
/// # Errors
/// [`IoErrorKind::Open`] when the file cannot be read; otherwise as [`read_npy_bytes`].
pub fn read_npy(path: &Path) -> Result<Array, IoError> {
    let bytes = fs::read(path).map_err(|e| IoError::new(path, IoErrorKind::Open(e)))?;
    read_npy_bytes(&bytes, path)
}

/// Parses the bytes of a `.npy` file; see [`read_npy`] for what is accepted.
/// `path_for_errors` only labels the errors.
///
/// # Errors
/// - [`IoErrorKind::NpyMagic`]: not a `.npy` file.
/// - [`IoErrorKind::NpyVersion`]: a format version other than 1.0, 2.0, 3.0.
/// - [`IoErrorKind::NpyHeader`]: truncated header, or not the expected dict literal (missing,
///   unknown or duplicate keys, wrong value types, syntax errors).
/// - [`IoErrorKind::NpyDtype`]: a dtype that is not a plain number or bool (strings,
///   complex, structured, datetime, ...).
/// - [`IoErrorKind::NpyShape`]: a 0-d array, or a dimension that is negative or too large.
/// - [`IoErrorKind::NpyTooLarge`]: the element or byte count overflows `usize`.
/// - [`IoErrorKind::NpyTruncated`] / [`IoErrorKind::NpyTrailingData`]: the data section is
///   shorter / longer than the shape and dtype declare.
pub fn read_npy_bytes(bytes: &[u8], path_for_errors: &Path) -> Result<Array, IoError> {
    parse_npy(bytes).map_err(|kind| IoError::new(path_for_errors, kind))
}

/// Writes `array` to `path` as a `.npy` file (see [`npy_bytes`] for the layout), replacing
/// any existing file atomically.
///
/// # Errors
/// [`IoErrorKind::ShapeMismatch`] or [`IoErrorKind::ShapeOverflow`] when `array.data` does
/// not hold exactly the elements of `array.shape` (the fields are public, so this is checked
/// again here rather than writing a file NumPy would reject), and [`IoErrorKind::Write`] when
/// the file cannot be written.
pub fn write_npy(path: &Path, array: &Array) -> Result<(), IoError> {
    match element_count(&array.shape) {
        None => {
            return Err(IoError::new(
                path,
                IoErrorKind::ShapeOverflow {
                    shape: array.shape.clone(),
                },
            ))
        }
        Some(count) if count != array.data.len() => {
            return Err(IoError::new(
                path,
                IoErrorKind::ShapeMismatch {
                    shape: array.shape.clone(),
                    data_len: array.data.len(),
                },
            ))
        }
        Some(_) => {}
    }
    let header = header_bytes(&array.shape);
    write_atomic_with(path, |out: &mut dyn Write| {
        out.write_all(&header)?;
        for value in &array.data {
            out.write_all(&value.to_le_bytes())?;
        }
        Ok::<(), io::Error>(())
    })
}

/// The bytes of a `.npy` file holding `array`: format version 1.0 (2.0 only if the header
/// outgrows 64 KiB, as NumPy does), dtype `<f4`, C order, the header padded with spaces and
/// ended by `'\n'` so that the data starts at a multiple of 64 bytes.
///
/// The header records `array.shape` and the data section holds `array.data` as they are; a
/// caller that built the array by hand rather than with [`Array::new`] must keep them
/// consistent ([`write_npy`] checks).
pub fn npy_bytes(array: &Array) -> Vec<u8> {
    let header = header_bytes(&array.shape);
    let mut bytes = Vec::with_capacity(header.len().saturating_add(array.data.len() * 4));
    bytes.extend_from_slice(&header);
    for value in &array.data {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes
}

/// Magic, version, header length and padded header for a C-order `<f4` array.
fn header_bytes(shape: &[usize]) -> Vec<u8> {
    const ALIGN: usize = 64;
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}",
        shape_tuple(shape)
    );
    // Version 1.0 has a 10-byte preamble and a u16 length; 2.0 a 12-byte one and a u32.
    let padded_len = |preamble: usize| (preamble + dict.len() + 1).div_ceil(ALIGN) * ALIGN;
    let v1_header_len = padded_len(10) - 10;
    let (version, preamble, header_len) = if u16::try_from(v1_header_len).is_ok() {
        (1u8, 10, v1_header_len)
    } else {
        (2u8, 12, padded_len(12) - 12)
    };

    let mut bytes = Vec::with_capacity(preamble + header_len);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[version, 0]);
    if version == 1 {
        bytes.extend_from_slice(&u16::try_from(header_len).unwrap_or(u16::MAX).to_le_bytes());
    } else {
        // A shape whose tuple text passes 4 GiB cannot exist in memory, so this cannot clip.
        bytes.extend_from_slice(&u32::try_from(header_len).unwrap_or(u32::MAX).to_le_bytes());
    }
    bytes.extend_from_slice(dict.as_bytes());
    bytes.resize(preamble + header_len - 1, b' ');
    bytes.push(b'\n');
    bytes
}

fn header_error(what: impl Into<String>) -> IoErrorKind {
    IoErrorKind::NpyHeader(what.into())
}

fn parse_npy(bytes: &[u8]) -> Result<Array, IoErrorKind> {
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return Err(if MAGIC.starts_with(bytes) && !bytes.is_empty() {
            header_error("the file ends inside the magic string")
        } else {
            IoErrorKind::NpyMagic
        });
    };
    let Some((&[major, minor], rest)) = rest.split_first_chunk::<2>() else {
        return Err(header_error("the file ends before the version bytes"));
    };
    let (header_len, rest) = match (major, minor) {
        (1, 0) => {
            let Some((len, rest)) = rest.split_first_chunk::<2>() else {
                return Err(header_error("the file ends inside the header length"));
            };
            (u64::from(u16::from_le_bytes(*len)), rest)
        }
        (2 | 3, 0) => {
            let Some((len, rest)) = rest.split_first_chunk::<4>() else {
                return Err(header_error("the file ends inside the header length"));
            };
            (u64::from(u32::from_le_bytes(*len)), rest)
        }
        _ => return Err(IoErrorKind::NpyVersion { major, minor }),
    };
    let split = usize::try_from(header_len)
        .ok()
        .and_then(|len| Some((rest.get(..len)?, rest.get(len..)?)));
    let Some((header, data)) = split else {
        return Err(header_error(format!(
            "the header length is {header_len} bytes but only {} bytes follow it",
            rest.len()
        )));
    };
    // Version 3.0 only differs in allowing UTF-8 in the header (1.0 and 2.0 are Latin-1);
    // the keys and values accepted here are ASCII either way.
    if major == 3 && std::str::from_utf8(header).is_err() {
        return Err(header_error("version 3.0 header is not valid UTF-8"));
    }

    let fields = HeaderParser::new(header).parse()?;
    let dtype = Dtype::parse(&fields.descr)?;
    let shape = fields.shape;
    if shape.is_empty() {
        return Err(IoErrorKind::NpyShape(
            "0-d (scalar) arrays are not supported; save a 1-d array of one element".into(),
        ));
    }
    let too_large = || IoErrorKind::NpyTooLarge {
        shape: shape.clone(),
        item_size: dtype.size(),
    };
    let count = element_count(&shape).ok_or_else(too_large)?;
    let expected = count.checked_mul(dtype.size()).ok_or_else(too_large)?;
    // Comparing with the bytes present before allocating is what keeps a 100-byte file that
    // declares a terabyte of data from allocating one.
    let (expected_bytes, found_bytes) = (expected as u64, data.len() as u64);
    if data.len() < expected {
        return Err(IoErrorKind::NpyTruncated {
            expected_bytes,
            found_bytes,
        });
    }
    if data.len() > expected {
        return Err(IoErrorKind::NpyTrailingData {
            expected_bytes,
            found_bytes,
        });
    }

    let values = dtype.decode(data, count);
    let values = if fields.fortran_order && shape.len() > 1 {
        fortran_to_c(&shape, &values)
    } else {
        values
    };
    Ok(Array {
        shape,
        data: values,
    })
}

/// Reorders column-major (Fortran) data into row-major (C) order.
fn fortran_to_c(shape: &[usize], src: &[f32]) -> Vec<f32> {
    // In Fortran order the first axis varies fastest.
    let mut strides = Vec::with_capacity(shape.len());
    let mut stride = 1usize;
    for &dim in shape {
        strides.push(stride);
        stride = stride.saturating_mul(dim);
    }
    let mut out = Vec::with_capacity(src.len());
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0usize;
    for _ in 0..src.len() {
        // `offset` stays below `src.len()` because `index` stays within `shape`.
        out.push(src.get(offset).copied().unwrap_or(f32::NAN));
        // Advance the C-order odometer (last axis fastest), tracking the Fortran offset.
        for ((i, &dim), &step) in index.iter_mut().zip(shape).zip(&strides).rev() {
            *i += 1;
            offset += step;
            if *i < dim {
                break;
            }
            offset -= step * dim;
            *i = 0;
        }
    }
    out
}

/// The element types that convert to f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    F2,
    F4,
    F8,
    I1,
    I2,
    I4,
    I8,
    U1,
    U2,
    U4,
    U8,
    B1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dtype {
    kind: Kind,
    little_endian: bool,
}

impl Dtype {
    fn parse(descr: &str) -> Result<Self, IoErrorKind> {
        let (order, code) = match descr.as_bytes().split_first() {
            Some((&c @ (b'<' | b'>' | b'=' | b'|'), code)) => (c, code),
            _ => (b'=', descr.as_bytes()),
        };
        let kind = match code {
            b"f2" => Kind::F2,
            b"f4" => Kind::F4,
            b"f8" => Kind::F8,
            b"i1" => Kind::I1,
            b"i2" => Kind::I2,
            b"i4" => Kind::I4,
            b"i8" => Kind::I8,
            b"u1" => Kind::U1,
            b"u2" => Kind::U2,
            b"u4" => Kind::U4,
            b"u8" => Kind::U8,
            b"b1" => Kind::B1,
            _ => return Err(IoErrorKind::NpyDtype(descr.to_owned())),
        };
        let little_endian = match order {
            b'<' => true,
            b'>' => false,
            // '=' is native order and '|' "not applicable"; NumPy reads both as native.
            _ => cfg!(target_endian = "little"),
        };
        Ok(Self {
            kind,
            little_endian,
        })
    }

    fn size(self) -> usize {
        match self.kind {
            Kind::I1 | Kind::U1 | Kind::B1 => 1,
            Kind::F2 | Kind::I2 | Kind::U2 => 2,
            Kind::F4 | Kind::I4 | Kind::U4 => 4,
            Kind::F8 | Kind::I8 | Kind::U8 => 8,
        }
    }

    /// Converts `data`, which the caller has checked holds `count` elements, to f32.
    /// Integers beyond 2^24 round (documented on `read_npy`).
    fn decode(self, data: &[u8], count: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(count);
        let le = self.little_endian;
        match self.kind {
            Kind::F2 => convert(data, le, &mut out, |b| f16_to_f32(u16::from_le_bytes(b))),
            Kind::F4 => convert(data, le, &mut out, f32::from_le_bytes),
            Kind::F8 => convert(data, le, &mut out, |b| f64::from_le_bytes(b) as f32),
            Kind::I1 => convert(data, le, &mut out, |b| f32::from(i8::from_le_bytes(b))),
            Kind::I2 => convert(data, le, &mut out, |b| f32::from(i16::from_le_bytes(b))),
            Kind::I4 => convert(data, le, &mut out, |b| i32::from_le_bytes(b) as f32),
            Kind::I8 => convert(data, le, &mut out, |b| i64::from_le_bytes(b) as f32),
            Kind::U1 => convert(data, le, &mut out, |b| f32::from(u8::from_le_bytes(b))),
            Kind::U2 => convert(data, le, &mut out, |b| f32::from(u16::from_le_bytes(b))),
            Kind::U4 => convert(data, le, &mut out, |b| u32::from_le_bytes(b) as f32),
            Kind::U8 => convert(data, le, &mut out, |b| u64::from_le_bytes(b) as f32),
            Kind::B1 => convert(
                data,
                le,
                &mut out,
                |b: [u8; 1]| {
                    if b == [0] {
                        0.0
                    } else {
                        1.0
                    }
                },
            ),
        }
        out
    }
}

/// Appends one converted value per `N`-byte element of `data`, handing `f` the bytes in
/// little-endian order whatever the file's order was.
fn convert<const N: usize>(
    data: &[u8],
    little_endian: bool,
    out: &mut Vec<f32>,
    f: impl Fn([u8; N]) -> f32,
) {
    let (chunks, _) = data.as_chunks::<N>();
    out.extend(chunks.iter().map(|&chunk| {
        let mut bytes = chunk;
        if !little_endian {
            bytes.reverse();
        }
        f(bytes)
    }));
}

/// IEEE 754 half precision to single precision (exact: every half is a float).
fn f16_to_f32(half: u16) -> f32 {
    let sign = u32::from(half >> 15) << 31;
    let exponent = u32::from((half >> 10) & 0x1f);
    let mantissa = u32::from(half & 0x3ff);
    let bits = match exponent {
        0 => {
            // Zero or subnormal: mantissa * 2^-24, exact in f32.
            let magnitude = f32::from(half & 0x3ff) * f32::from_bits(0x3380_0000);
            return f32::from_bits(magnitude.to_bits() | sign);
        }
        0x1f => sign | 0x7f80_0000 | (mantissa << 13),
        _ => sign | ((exponent + 127 - 15) << 23) | (mantissa << 13),
    };
    f32::from_bits(bits)
}

/// The three header fields, validated for type but not yet for meaning.
#[derive(Debug)]
struct HeaderFields {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value of the Python literal subset that `.npy` headers use.
#[derive(Debug)]
enum Value {
    Str(String),
    Bool(bool),
    None,
    /// Decimal text with its sign, converted only where a size is expected.
    Int(String),
    Tuple(Vec<Value>),
    /// A list, whose items matter only for syntax: it can only be a structured dtype.
    List,
}

/// A recursive-descent parser for the header's dict literal.
struct HeaderParser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> HeaderParser<'a> {
    fn new(text: &'a [u8]) -> Self {
        Self { text, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn error(&self, what: &str) -> IoErrorKind {
        header_error(format!("{what} at byte {} of the header", self.pos))
    }

    fn expect(&mut self, byte: u8) -> Result<(), IoErrorKind> {
        self.skip_space();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", char::from(byte))))
        }
    }

    fn parse(mut self) -> Result<HeaderFields, IoErrorKind> {
        let mut descr = None;
        let mut fortran_order = None;
        let mut shape = None;

        self.expect(b'{')?;
        loop {
            self.skip_space();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                break;
            }
            let key = match self.value(0)? {
                Value::Str(key) => key,
                _ => return Err(self.error("expected a string key")),
            };
            self.expect(b':')?;
            self.skip_space();
            let start = self.pos;
            let value = self.value(0)?;
            let raw = String::from_utf8_lossy(self.text.get(start..self.pos).unwrap_or_default());
            let slot_taken = match key.as_str() {
                "descr" => descr.replace(descr_text(value, &raw)?).is_some(),
                "fortran_order" => match value {
                    Value::Bool(b) => fortran_order.replace(b).is_some(),
                    _ => {
                        return Err(header_error(format!(
                            "'fortran_order' is {raw}, not a bool"
                        )))
                    }
                },
                "shape" => shape.replace(shape_dims(value, &raw)?).is_some(),
                _ => return Err(header_error(format!("unexpected key {key:?}"))),
            };
            if slot_taken {
                return Err(header_error(format!("duplicate key {key:?}")));
            }
            self.skip_space();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
        self.skip_space();
        if self.pos != self.text.len() {
            return Err(self.error("unexpected text after the dict"));
        }
        let missing = |key: &str| header_error(format!("missing key '{key}'"));
        Ok(HeaderFields {
            descr: descr.ok_or_else(|| missing("descr"))?,
            fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
            shape: shape.ok_or_else(|| missing("shape"))?,
        })
    }

    fn value(&mut self, depth: usize) -> Result<Value, IoErrorKind> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.skip_space();
        match self.peek() {
            Some(quote @ (b'\'' | b'"')) => self.string(quote),
            Some(b'(') => self.sequence(b')', depth).map(|(items, is_tuple)| {
                if is_tuple {
                    Value::Tuple(items)
                } else {
                    // `(x)` without a comma is just `x` in parentheses, as in Python.
                    items.into_iter().next().unwrap_or(Value::None)
                }
            }),
            Some(b'[') => self.sequence(b']', depth).map(|_| Value::List),
            Some(b'-' | b'+' | b'0'..=b'9') => self.int(),
            Some(c) if c.is_ascii_alphabetic() => self.word(),
            Some(_) => Err(self.error("unexpected character")),
            None => Err(self.error("unexpected end")),
        }
    }

    fn string(&mut self, quote: u8) -> Result<Value, IoErrorKind> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                Some(c) if c == quote => break,
                // NumPy never writes escapes in the fields read here.
                Some(b'\\') => return Err(self.error("escape sequences are not supported")),
                Some(b'\n') | None => return Err(self.error("unterminated string")),
                Some(_) => self.pos += 1,
            }
        }
        let text = String::from_utf8_lossy(self.text.get(start..self.pos).unwrap_or_default());
        self.pos += 1;
        Ok(Value::Str(text.into_owned()))
    }

    /// Parses the items of a tuple or list up to `close`, and whether a comma was seen
    /// (which is what makes parentheses a tuple).
    fn sequence(&mut self, close: u8, depth: usize) -> Result<(Vec<Value>, bool), IoErrorKind> {
        self.pos += 1;
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            self.skip_space();
            if self.peek() == Some(close) {
                self.pos += 1;
                // `()` is the empty tuple.
                let is_tuple = comma || items.is_empty();
                return Ok((items, is_tuple));
            }
            items.push(self.value(depth + 1)?);
            self.skip_space();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    comma = true;
                }
                Some(c) if c == close => {}
                _ => return Err(self.error(&format!("expected ',' or '{}'", char::from(close)))),
            }
        }
    }

    fn int(&mut self) -> Result<Value, IoErrorKind> {
        let start = self.pos;
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.pos += 1;
        }
        let digits_start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        if self.pos == digits_start {
            return Err(self.error("expected digits"));
        }
        let text = String::from_utf8_lossy(self.text.get(start..self.pos).unwrap_or_default())
            .into_owned();
        // Python 2 era NumPy wrote long integers with an `L` suffix.
        if matches!(self.peek(), Some(b'L' | b'l')) {
            self.pos += 1;
        }
        Ok(Value::Int(text))
    }

    fn word(&mut self) -> Result<Value, IoErrorKind> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.pos += 1;
        }
        match self.text.get(start..self.pos).unwrap_or_default() {
            b"True" => Ok(Value::Bool(true)),
            b"False" => Ok(Value::Bool(false)),
            b"None" => Ok(Value::None),
            _ => {
                self.pos = start;
                Err(self.error("unexpected name"))
            }
        }
    }
}

fn descr_text(value: Value, raw: &str) -> Result<String, IoErrorKind> {
    match value {
        Value::Str(descr) => Ok(descr),
        // A list descr is a structured (record) dtype; there is no single f32 per element.
        Value::List => Err(IoErrorKind::NpyDtype(raw.to_owned())),
        _ => Err(header_error(format!("'descr' is {raw}, not a string"))),
    }
}

fn shape_dims(value: Value, raw: &str) -> Result<Vec<usize>, IoErrorKind> {
    let Value::Tuple(items) = value else {
        return Err(IoErrorKind::NpyShape(format!("{raw} is not a tuple")));
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Int(text) => {
                let digits = text.strip_prefix('+').unwrap_or(&text);
                if digits.starts_with('-') {
                    return Err(IoErrorKind::NpyShape(format!(
                        "negative dimension {text} in {raw}"
                    )));
                }
                digits.parse::<usize>().map_err(|_| {
                    IoErrorKind::NpyShape(format!("dimension {text} in {raw} is too large"))
                })
            }
            _ => Err(IoErrorKind::NpyShape(format!(
                "{raw} holds something other than integers"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn path() -> PathBuf {
        PathBuf::from("test.npy")
    }

    /// A `.npy` file with the given version, header text (padded like NumPy) and data.
    fn npy_file(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
        let preamble = if major == 1 { 10 } else { 12 };
        let mut header = dict.as_bytes().to_vec();
        while !(preamble + header.len() + 1).is_multiple_of(64) {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[major, 0]);
        if major == 1 {
            bytes.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
        } else {
            bytes.extend_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
        }
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(data);
        bytes
    }

    fn dict(descr: &str, fortran: bool, shape: &str) -> String {
        let fortran = if fortran { "True" } else { "False" };
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
    }

    fn f32_le(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn read(bytes: &[u8]) -> Result<Array, IoError> {
        read_npy_bytes(bytes, &path())
    }

    fn read_kind(bytes: &[u8]) -> IoErrorKind {
        read(bytes).unwrap_err().kind
    }

    #[test]
    fn round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let shapes: [&[usize]; 4] = [&[3], &[2, 3], &[2, 4, 3], &[0, 3]];
        for shape in shapes {
            let count: usize = shape.iter().product();
            let data: Vec<f32> = (0..count).map(|i| i as f32 * 0.5 - 3.25).collect();
            let array = Array::new(shape.to_vec(), data).unwrap();
            let file = dir.path().join("a.npy");
            write_npy(&file, &array).unwrap();
            assert_eq!(read_npy(&file).unwrap(), array);
        }
    }

    #[test]
    fn written_header_matches_numpy_layout() {
        let array = Array::new(vec![2, 3], vec![0.0; 6]).unwrap();
        let bytes = npy_bytes(&array);
        assert_eq!(bytes.get(..8).unwrap(), b"\x93NUMPY\x01\x00");
        let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with(" \n"));
        assert_eq!(bytes.len(), 10 + header_len + 24);
        let one_d = npy_bytes(&Array::new(vec![3], vec![0.0; 3]).unwrap());
        assert!(String::from_utf8_lossy(&one_d).contains("'shape': (3,), }"));
    }

    #[test]
    fn huge_header_falls_back_to_version_2() {
        let array = Array::new(vec![1; 30_000], vec![2.5]).unwrap();
        let bytes = npy_bytes(&array);
        assert_eq!(bytes.get(6..8).unwrap(), [2, 0]);
        let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!((12 + header_len) % 64, 0);
        assert_eq!(read(&bytes).unwrap(), array);
    }

    #[test]
    fn non_finite_values_survive() {
        let array = Array::new(vec![3], vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY]).unwrap();
        let back = read(&npy_bytes(&array)).unwrap();
        assert!(back.data[0].is_nan());
        assert_eq!(&back.data[1..], &[f32::INFINITY, f32::NEG_INFINITY]);
    }

    #[test]
    fn write_npy_rejects_inconsistent_array() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.npy");
        let array = Array {
            shape: vec![2, 2],
            data: vec![1.0],
        };
        let err = write_npy(&file, &array).unwrap_err();
        assert!(matches!(err.kind, IoErrorKind::ShapeMismatch { .. }));
        assert!(!file.exists());
    }

    #[test]
    fn reads_versions_1_2_3() {
        let data = f32_le(&[1.0, 2.0, 3.0]);
        for major in [1, 2, 3] {
            let bytes = npy_file(major, &dict("<f4", false, "(3,)"), &data);
            let array = read(&bytes).unwrap();
            assert_eq!(array.shape, [3]);
            assert_eq!(array.data, [1.0, 2.0, 3.0]);
        }
        // Version 3.0 allows UTF-8, 1.0 Latin-1; neither matters for the fields we read.
        let bytes = npy_file(
            3,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
            &data[..4],
        );
        assert_eq!(read(&bytes).unwrap().data, [1.0]);
    }

    #[test]
    fn header_variations_are_tolerated() {
        let data = f32_le(&[1.0, 2.0]);
        for header in [
            "{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}",
            "{ 'descr' : \"<f4\" ,'fortran_order':False,'shape':( 2 , ) }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }",
            "{'descr': '<f4',\n 'fortran_order': False,\n 'shape': (2,)}\n",
            "{'descr': 'f4', 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '=f4', 'fortran_order': False, 'shape': (1, 2)}",
        ] {
            let array =
                read(&npy_file(1, header, &data)).unwrap_or_else(|e| panic!("{header}: {e}"));
            assert_eq!(array.data, [1.0, 2.0], "{header}");
        }
    }

    #[test]
    fn converts_other_dtypes() {
        let f8: Vec<u8> = [1.5f64, -2.25, 1e300]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = read(&npy_file(1, &dict("<f8", false, "(3,)"), &f8)).unwrap();
        assert_eq!(a.data, [1.5, -2.25, f32::INFINITY]);

        let i4: Vec<u8> = [7i32, -3, 100_000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = read(&npy_file(1, &dict("<i4", false, "(3,)"), &i4)).unwrap();
        assert_eq!(a.data, [7.0, -3.0, 100_000.0]);

        let i8: Vec<u8> = [5i64, -9].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            read(&npy_file(1, &dict("<i8", false, "(2,)"), &i8))
                .unwrap()
                .data,
            [5.0, -9.0]
        );

        let i2: Vec<u8> = [-300i16, 42].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            read(&npy_file(1, &dict("<i2", false, "(2,)"), &i2))
                .unwrap()
                .data,
            [-300.0, 42.0]
        );

        let i1 = [0xffu8, 0x7f];
        assert_eq!(
            read(&npy_file(1, &dict("|i1", false, "(2,)"), &i1))
                .unwrap()
                .data,
            [-1.0, 127.0]
        );
        assert_eq!(
            read(&npy_file(1, &dict("|u1", false, "(2,)"), &i1))
                .unwrap()
                .data,
            [255.0, 127.0]
        );
        assert_eq!(
            read(&npy_file(1, &dict("|b1", false, "(2,)"), &[0, 1]))
                .unwrap()
                .data,
            [0.0, 1.0]
        );

        // float16: 1.0, -2.0, the smallest subnormal, +inf.
        let f2: Vec<u8> = [0x3c00u16, 0xc000, 0x0001, 0x7c00]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = read(&npy_file(1, &dict("<f2", false, "(4,)"), &f2)).unwrap();
        assert_eq!(a.data, [1.0, -2.0, 2f32.powi(-24), f32::INFINITY]);
    }

    #[test]
    fn reads_big_endian() {
        let f4: Vec<u8> = [1.0f32, -0.5]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(
            read(&npy_file(1, &dict(">f4", false, "(2,)"), &f4))
                .unwrap()
                .data,
            [1.0, -0.5]
        );
        let f8: Vec<u8> = [3.0f64, 0.25]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(
            read(&npy_file(1, &dict(">f8", false, "(2,)"), &f8))
                .unwrap()
                .data,
            [3.0, 0.25]
        );
        let i4: Vec<u8> = [-2i32, 65536]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(
            read(&npy_file(1, &dict(">i4", false, "(2,)"), &i4))
                .unwrap()
                .data,
            [-2.0, 65536.0]
        );
    }

    #[test]
    fn fortran_order_is_transposed() {
        // [[1, 2, 3], [4, 5, 6]] stored column by column.
        let data = f32_le(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        let a = read(&npy_file(1, &dict("<f4", true, "(2, 3)"), &data)).unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.data, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn fortran_order_3d_and_1d() {
        // Element (i, j, k) of a (2, 3, 4) array holds its C-order offset; Fortran order
        // stores it at i + 2j + 6k.
        let mut stored = vec![0.0f32; 24];
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    let value = (i * 12 + j * 4 + k) as f32;
                    stored[i + 2 * j + 6 * k] = value;
                }
            }
        }
        let a = read(&npy_file(
            1,
            &dict("<f4", true, "(2, 3, 4)"),
            &f32_le(&stored),
        ))
        .unwrap();
        let expected: Vec<f32> = (0..24).map(|v| v as f32).collect();
        assert_eq!(a.data, expected);

        let a = read(&npy_file(
            1,
            &dict("<f4", true, "(2,)"),
            &f32_le(&[1.0, 2.0]),
        ))
        .unwrap();
        assert_eq!(a.data, [1.0, 2.0]);
        let a = read(&npy_file(1, &dict("<f4", true, "(0, 3)"), &[])).unwrap();
        assert_eq!((a.shape, a.data), (vec![0, 3], vec![]));
    }

    #[test]
    fn malformed_files_are_errors() {
        let good = npy_file(1, &dict("<f4", false, "(3,)"), &f32_le(&[1.0, 2.0, 3.0]));
        assert!(read(&good).is_ok());

        assert!(matches!(read_kind(b""), IoErrorKind::NpyMagic));
        assert!(matches!(
            read_kind(b"PK\x03\x04 zip file"),
            IoErrorKind::NpyMagic
        ));
        assert!(matches!(read_kind(b"\x93NUM"), IoErrorKind::NpyHeader(_)));
        assert!(matches!(read_kind(b"\x93NUMPY"), IoErrorKind::NpyHeader(_)));
        assert!(matches!(
            read_kind(b"\x93NUMPY\x01\x00\x10"),
            IoErrorKind::NpyHeader(_)
        ));
        let mut v4 = good.clone();
        v4[6] = 4;
        assert!(matches!(
            read_kind(&v4),
            IoErrorKind::NpyVersion { major: 4, minor: 0 }
        ));
        let mut v11 = good.clone();
        v11[7] = 1;
        assert!(matches!(
            read_kind(&v11),
            IoErrorKind::NpyVersion { major: 1, minor: 1 }
        ));
        // Header cut short.
        assert!(matches!(read_kind(&good[..40]), IoErrorKind::NpyHeader(_)));
        // Data cut short, and data too long.
        assert!(matches!(
            read_kind(&good[..good.len() - 1]),
            IoErrorKind::NpyTruncated {
                expected_bytes: 12,
                found_bytes: 11
            }
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            read_kind(&long),
            IoErrorKind::NpyTrailingData { .. }
        ));
    }

    #[test]
    fn malformed_headers_are_errors() {
        let data = f32_le(&[1.0, 2.0]);
        let cases: &[&str] = &[
            "",
            "{",
            "}",
            "[]",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'shape': (2,)}",
            "{'fortran_order': False, 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': false, 'shape': (2,)}",
            "{'descr': 4, 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '<\\f4', 'fortran_order': False, 'shape': (2,)}",
            "{descr: '<f4', 'fortran_order': False, 'shape': (2,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} trailing",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': ((((((((((((((((((((2,),),),),),),),),),),),),),),),),),),),)}",
        ];
        for header in cases {
            let err = read(&npy_file(1, header, &data)).unwrap_err();
            assert!(
                matches!(
                    err.kind,
                    IoErrorKind::NpyHeader(_) | IoErrorKind::NpyShape(_)
                ),
                "{header}: {err}"
            );
        }
    }

    #[test]
    fn bad_dtypes_and_shapes_are_errors() {
        let data = f32_le(&[1.0, 2.0]);
        for descr in [
            "<c8", "<U3", "|S4", "<M8[ns]", "O", "<f16", "f", "float32", "",
        ] {
            let err = read(&npy_file(1, &dict(descr, false, "(2,)"), &data)).unwrap_err();
            assert!(
                matches!(&err.kind, IoErrorKind::NpyDtype(d) if d == descr),
                "{descr}"
            );
            assert!(err.to_string().contains("unsupported .npy dtype"));
        }
        let structured = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}";
        assert!(matches!(
            read_kind(&npy_file(1, structured, &data)),
            IoErrorKind::NpyDtype(_)
        ));

        for shape in [
            "()",
            "(2)",
            "[2]",
            "(-2,)",
            "('2',)",
            "(None,)",
            "(99999999999999999999999,)",
        ] {
            let err = read(&npy_file(1, &dict("<f4", false, shape), &data)).unwrap_err();
            assert!(
                matches!(err.kind, IoErrorKind::NpyShape(_)),
                "{shape}: {err}"
            );
        }
    }

    #[test]
    fn huge_declared_sizes_fail_without_allocating() {
        let file = npy_file(1, &dict("<f4", false, "(1000000000000,)"), &[0; 100]);
        assert!(matches!(
            read_kind(&file),
            IoErrorKind::NpyTruncated {
                expected_bytes: 4_000_000_000_000,
                found_bytes: 100
            }
        ));
        let overflow = npy_file(
            1,
            &dict("<f4", false, "(1099511627776, 1099511627776)"),
            &[0; 100],
        );
        assert!(matches!(
            read_kind(&overflow),
            IoErrorKind::NpyTooLarge { .. }
        ));
        // Elements fit in usize but bytes do not.
        let bytes_overflow = npy_file(
            1,
            &dict("<f8", false, &format!("({},)", usize::MAX / 4)),
            &[],
        );
        assert!(matches!(
            read_kind(&bytes_overflow),
            IoErrorKind::NpyTooLarge { item_size: 8, .. }
        ));
        // A header length pointing past the end of a version 2.0 file.
        let mut v2 = npy_file(2, &dict("<f4", false, "(2,)"), &[0; 8]);
        v2[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read_kind(&v2), IoErrorKind::NpyHeader(_)));
    }

    #[test]
    fn zero_axis_with_huge_others_is_empty() {
        let file = npy_file(
            1,
            &dict("<f4", false, "(0, 1099511627776, 1099511627776)"),
            &[],
        );
        let a = read(&file).unwrap();
        assert!(a.data.is_empty());
    }

    #[test]
    fn read_npy_reports_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.npy");
        let err = read_npy(&missing).unwrap_err();
        assert!(matches!(err.kind, IoErrorKind::Open(_)));
        assert!(err.to_string().starts_with(&missing.display().to_string()));
    }

    #[test]
    fn error_messages_name_the_file_and_sizes() {
        let file = npy_file(1, &dict("<f4", false, "(4,)"), &[0; 6]);
        let err = read_npy_bytes(&file, Path::new("dir/w.npy")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dir/w.npy: truncated .npy file: the header declares 16 data bytes but only 6 follow it"
        );
    }

    fn valid_file() -> impl Strategy<Value = Vec<u8>> {
        (prop::collection::vec(0usize..4, 1..4), 0usize..3).prop_map(|(shape, dtype)| {
            let count: usize = shape.iter().product();
            let (descr, size) = [("<f4", 4), ("<f8", 8), ("|u1", 1)][dtype];
            let header = dict(descr, count % 2 == 1, &shape_tuple(&shape));
            let data: Vec<u8> = (0..count * size).map(|i| i as u8).collect();
            npy_file(1 + (count % 3) as u8, &header, &data)
        })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = read(&bytes);
            let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = read(&with_magic);
        }

        #[test]
        fn random_headers_never_panic(
            header in "[{}()\\[\\],:'\" <>|=fiub0-9LTrueFalsNondscrpthao_\n+-]{0,80}",
            data in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            for major in [1, 2, 3] {
                if let Ok(array) = read(&npy_file(major, &header, &data)) {
                    prop_assert_eq!(Some(array.data.len()), element_count(&array.shape));
                }
            }
        }

        #[test]
        fn damaged_files_never_panic(
            file in valid_file(),
            cut in any::<prop::sample::Index>(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4),
            replace in prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
        ) {
            prop_assert!(read(&file).is_ok());
            let _ = read(&file[..cut.index(file.len() + 1)]);
            let mut damaged = file.clone();
            for (at, bit) in flips {
                let i = at.index(damaged.len());
                damaged[i] ^= 1 << bit;
            }
            if let Some((at, byte)) = replace {
                let i = at.index(damaged.len());
                damaged[i] = byte;
            }
            if let Ok(array) = read(&damaged) {
                prop_assert_eq!(Some(array.data.len()), element_count(&array.shape));
            }
        }

        #[test]
        fn round_trip_preserves_bits(
            shape in prop::collection::vec(0usize..5, 1..4),
            seed in prop::collection::vec(any::<u32>(), 64),
        ) {
            let count: usize = shape.iter().product();
            let data: Vec<f32> = (0..count).map(|i| f32::from_bits(seed[i % seed.len()])).collect();
            let array = Array::new(shape, data).unwrap();
            let back = read(&npy_bytes(&array)).unwrap();
            prop_assert_eq!(&back.shape, &array.shape);
            let bits = |a: &Array| a.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&back), bits(&array));
        }
    }
}
