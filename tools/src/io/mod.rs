//! Reading and writing users' files: NumPy `.npy` arrays, CSV tables of numbers, and atomic
//! replacement of output files.
//!
//! # Non-finite values
//!
//! NaN and ±infinity stored in an input file are accepted as data: the runtime propagates
//! them like any other value, and refusing them here would hide the very input a user is
//! trying to debug. Callers that need finite data (weights, for instance) can ask for it with
//! [`Array::ensure_finite`]. The CSV reader still rejects text that is not a number; the
//! spellings Rust and NumPy write for non-finite values (`NaN`, `nan`, `inf`, `-inf`,
//! `infinity`, in any letter case) count as numbers.
//!
//! # Errors
//!
//! Every function returns [`IoError`], which names the file and, where one applies, the line
//! and field (CSV) or the byte counts (`.npy`) of the problem. Its `Display` text is
//! complete on its own, including the message of the underlying [`std::io::Error`] or
//! [`csv::Error`] when there is one, because callers show it with `to_string()`; that error
//! is also returned by [`source`](std::error::Error::source) for code that inspects it, so
//! printing the whole chain repeats its message.

pub mod atomic;
pub mod csv_table;
pub mod npy;

use std::fmt;
use std::path::{Path, PathBuf};

/// A dense row-major (C order) array of f32.
///
/// The fields are public for convenience; [`Array::new`] is the constructor that checks that
/// `data.len()` is the product of `shape`.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Size of each axis, outermost first. An empty shape is a 0-d array holding one value.
    pub shape: Vec<usize>,
    /// The elements in row-major order.
    pub data: Vec<f32>,
}

impl Array {
    /// Creates an array after checking that `data` holds exactly one value per element of
    /// `shape`.
    ///
    /// # Errors
    /// [`IoErrorKind::ShapeOverflow`] when the product of `shape` does not fit in `usize`, and
    /// [`IoErrorKind::ShapeMismatch`] when it differs from `data.len()`. The error carries an
    /// empty path; attach one with [`IoError::with_path`].
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, IoError> {
        match element_count(&shape) {
            None => Err(IoError::new(
                PathBuf::new(),
                IoErrorKind::ShapeOverflow { shape },
            )),
            Some(count) if count != data.len() => Err(IoError::new(
                PathBuf::new(),
                IoErrorKind::ShapeMismatch {
                    shape,
                    data_len: data.len(),
                },
            )),
            Some(_) => Ok(Self { shape, data }),
        }
    }

    /// Checks that every element is finite.
    ///
    /// # Errors
    /// [`IoErrorKind::NonFinite`] naming the first NaN or infinity, with `path` as the file
    /// it came from.
    pub fn ensure_finite(&self, path: &Path) -> Result<(), IoError> {
        match self.data.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            Some(flat) => Err(IoError::new(
                path,
                IoErrorKind::NonFinite {
                    index: unravel(flat, &self.shape),
                    value: self.data.get(flat).copied().unwrap_or(f32::NAN),
                },
            )),
        }
    }
}

/// The number of elements of an array of `shape`, or `None` when it overflows `usize`.
///
/// A zero-sized axis makes the array empty whatever the other axes say, as in NumPy, so it is
/// checked before multiplying.
pub(crate) fn element_count(shape: &[usize]) -> Option<usize> {
    if shape.contains(&0) {
        return Some(0);
    }
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Turns a flat row-major offset into a multi-index for `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &dim) in index.iter_mut().zip(shape).rev() {
        if dim > 0 {
            *slot = flat % dim;
            flat /= dim;
        }
    }
    index
}

/// An error reading or writing a user's file.
///
/// `Display` is `"<path>: <what went wrong>"` (just the second part when the path is empty),
/// naming the line, field or byte counts where one applies.
#[derive(Debug)]
pub struct IoError {
    /// The file being read or written.
    pub path: PathBuf,
    /// What went wrong.
    pub kind: IoErrorKind,
}

impl IoError {
    /// Creates an error about `path`.
    pub fn new(path: impl Into<PathBuf>, kind: IoErrorKind) -> Self {
        Self {
            path: path.into(),
            kind,
        }
    }

    /// Replaces the path the error is about, for errors such as [`Array::new`]'s that are
    /// raised before any file is known.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = path.into();
        self
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.as_os_str().is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.path.display(), self.kind)
        }
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

/// What went wrong reading or writing a file.
#[derive(Debug)]
#[non_exhaustive]
pub enum IoErrorKind {
    /// The file could not be opened or read.
    Open(std::io::Error),
    /// The file (or its temporary sibling) could not be created, written, synced or renamed
    /// into place.
    Write(std::io::Error),
    /// The output path names the same file as the input, so writing would destroy the input.
    OutputIsInput {
        /// The input path as the user gave it.
        input: PathBuf,
    },
    /// The product of an array's shape does not fit in `usize`.
    ShapeOverflow {
        /// The offending shape.
        shape: Vec<usize>,
    },
    /// An array's data length differs from the product of its shape.
    ShapeMismatch {
        /// The declared shape.
        shape: Vec<usize>,
        /// The number of values actually present.
        data_len: usize,
    },
    /// A NaN or infinity where finite data is required (see [`Array::ensure_finite`]).
    NonFinite {
        /// Multi-index of the first non-finite element.
        index: Vec<usize>,
        /// The value found there.
        value: f32,
    },
    /// The file does not start with the `.npy` magic string `\x93NUMPY`.
    NpyMagic,
    /// A `.npy` format version other than 1.0, 2.0 or 3.0.
    NpyVersion {
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// The `.npy` header is missing, truncated or not the expected dictionary literal.
    NpyHeader(String),
    /// A `.npy` dtype this reader does not convert to f32; holds the `descr` as written.
    NpyDtype(String),
    /// The `.npy` shape is not usable (0-d, negative or non-integer dimensions, ...).
    NpyShape(String),
    /// The `.npy` data section is shorter than the header's shape and dtype require.
    NpyTruncated {
        /// Bytes the header declares.
        expected_bytes: u64,
        /// Bytes actually present after the header.
        found_bytes: u64,
    },
    /// The `.npy` data section is longer than the header's shape and dtype declare, which
    /// means the header or the file is corrupt.
    NpyTrailingData {
        /// Bytes the header declares.
        expected_bytes: u64,
        /// Bytes actually present after the header.
        found_bytes: u64,
    },
    /// The `.npy` declared size (elements or bytes) does not fit in `usize`.
    NpyTooLarge {
        /// The declared shape.
        shape: Vec<usize>,
        /// Bytes per element of the declared dtype.
        item_size: usize,
    },
    /// A CSV field that is not a number.
    CsvParse {
        /// 1-based line of the record, as a text editor counts.
        line: u64,
        /// 1-based column.
        field: usize,
        /// The field's text after trimming.
        text: String,
    },
    /// A CSV record with a different number of fields than the first one.
    CsvRagged {
        /// 1-based line of the record.
        line: u64,
        /// Fields in the first record (the header, if any).
        expected: usize,
        /// Fields in this record.
        found: usize,
    },
    /// A CSV field that is not valid UTF-8.
    CsvUtf8 {
        /// 1-based line of the record, when known.
        line: Option<u64>,
        /// 1-based column.
        field: usize,
    },
    /// Any other CSV syntax or reading error.
    Csv(csv::Error),
    /// A CSV file with no data rows (it may still have a header).
    CsvEmpty,
}

impl IoErrorKind {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Open(e) | Self::Write(e) => Some(e),
            Self::Csv(e) => Some(e),
            _ => None,
        }
    }
}

/// Formats a shape the way NumPy prints it: `(3,)`, `(2, 3)`, `()`.
pub(crate) fn shape_tuple(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

/// Cuts user text quoted in a message so that a runaway field cannot flood the terminal.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    if text.chars().count() <= MAX_CHARS {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head:?}...")
    }
}

impl fmt::Display for IoErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open(e) => write!(f, "cannot read file: {e}"),
            Self::Write(e) => write!(f, "cannot write file: {e}"),
            Self::OutputIsInput { input } => write!(
                f,
                "refusing to overwrite the input file {}; choose another output path",
                input.display()
            ),
            Self::ShapeOverflow { shape } => write!(
                f,
                "shape {} has more elements than fit in memory",
                shape_tuple(shape)
            ),
            Self::ShapeMismatch { shape, data_len } => write!(
                f,
                "shape {} does not match the {data_len} values given",
                shape_tuple(shape)
            ),
            Self::NonFinite { index, value } => {
                write!(f, "non-finite value {value} at index {index:?}")
            }
            Self::NpyMagic => write!(f, "not a .npy file (missing the \\x93NUMPY magic)"),
            Self::NpyVersion { major, minor } => write!(
                f,
                ".npy format version {major}.{minor} is not supported (only 1.0, 2.0, 3.0)"
            ),
            Self::NpyHeader(what) => write!(f, "bad .npy header: {what}"),
            Self::NpyDtype(descr) => write!(
                f,
                "unsupported .npy dtype {descr:?} (supported: float16/32/64, \
                 int8/16/32/64, uint8/16/32/64, bool)"
            ),
            Self::NpyShape(what) => write!(f, "bad .npy shape: {what}"),
            Self::NpyTruncated {
                expected_bytes,
                found_bytes,
            } => write!(
                f,
                "truncated .npy file: the header declares {expected_bytes} data bytes \
                 but only {found_bytes} follow it"
            ),
            Self::NpyTrailingData {
                expected_bytes,
                found_bytes,
            } => write!(
                f,
                "corrupt .npy file: the header declares {expected_bytes} data bytes \
                 but {found_bytes} follow it"
            ),
            Self::NpyTooLarge { shape, item_size } => write!(
                f,
                ".npy shape {} of {item_size}-byte elements is too large to address",
                shape_tuple(shape)
            ),
            Self::CsvParse { line, field, text } => write!(
                f,
                "line {line}, field {field}: {} is not a number",
                excerpt(text)
            ),
            Self::CsvRagged {
                line,
                expected,
                found,
            } => write!(
                f,
                "line {line}: found {found} fields, expected {expected} like the first row"
            ),
            Self::CsvUtf8 {
                line: Some(line),
                field,
            } => write!(f, "line {line}, field {field}: not valid UTF-8"),
            Self::CsvUtf8 { line: None, field } => {
                write!(f, "field {field}: not valid UTF-8")
            }
            Self::Csv(e) => write!(f, "cannot parse CSV: {e}"),
            Self::CsvEmpty => write!(f, "no data rows in CSV file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn array_new_checks_length() {
        assert!(Array::new(vec![2, 3], vec![0.0; 6]).is_ok());
        let err = Array::new(vec![2, 3], vec![0.0; 5]).unwrap_err();
        assert!(matches!(
            err.kind,
            IoErrorKind::ShapeMismatch { data_len: 5, .. }
        ));
        assert_eq!(
            err.to_string(),
            "shape (2, 3) does not match the 5 values given"
        );
        assert!(Array::new(vec![], vec![1.0]).is_ok());
        assert!(Array::new(vec![0, 3], vec![]).is_ok());
    }

    #[test]
    fn array_new_checks_overflow() {
        let err = Array::new(vec![1 << 40, 1 << 40, 1 << 40], vec![]).unwrap_err();
        assert!(matches!(err.kind, IoErrorKind::ShapeOverflow { .. }));
        // A zero axis makes the product zero even when the others would overflow.
        assert!(Array::new(vec![usize::MAX, usize::MAX, 0], vec![]).is_ok());
    }

    #[test]
    fn ensure_finite_names_the_index() {
        let a = Array::new(vec![2, 3], vec![0.0, 1.0, 2.0, 3.0, f32::NAN, 5.0]).unwrap();
        let err = a.ensure_finite(Path::new("w.npy")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "w.npy: non-finite value NaN at index [1, 1]"
        );
        let b = Array::new(vec![2], vec![1.0, 2.0]).unwrap();
        assert!(b.ensure_finite(Path::new("w.npy")).is_ok());
    }

    #[test]
    fn display_and_source() {
        let err = IoError::new(
            "in.csv",
            IoErrorKind::Open(std::io::Error::from(std::io::ErrorKind::NotFound)),
        );
        assert_eq!(
            err.to_string(),
            "in.csv: cannot read file: entity not found"
        );
        assert!(err.source().is_some());
        let err = IoError::new(
            "in.csv",
            IoErrorKind::CsvParse {
                line: 3,
                field: 2,
                text: "abc".into(),
            },
        );
        assert_eq!(
            err.to_string(),
            "in.csv: line 3, field 2: \"abc\" is not a number"
        );
        assert!(err.source().is_none());
    }

    #[test]
    fn shape_tuple_matches_numpy() {
        assert_eq!(shape_tuple(&[]), "()");
        assert_eq!(shape_tuple(&[3]), "(3,)");
        assert_eq!(shape_tuple(&[2, 3]), "(2, 3)");
    }
}
