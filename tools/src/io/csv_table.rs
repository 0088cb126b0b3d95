//! CSV files holding one table of numbers: one row per time step, one column per feature,
//! with an optional header row of column names.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use super::atomic::write_atomic_with;
use super::{Array, IoError, IoErrorKind};

/// Reads a CSV table of numbers into an array of shape `[rows, columns]`, with the header's
/// column names if there is one.
///
/// - The first record is a header if any of its fields is non-empty and not a number (so a
///   header made only of numbers is read as data, and a typo in the first data row turns
///   it into a header; the second surfaces as [`IoErrorKind::CsvEmpty`] or a ragged row).
/// - Fields are trimmed of surrounding whitespace; blank or whitespace-only lines are
///   skipped; quoting follows RFC 4180; a UTF-8 byte-order mark is ignored.
/// - Numbers use Rust's f32 syntax (`1`, `-2.5`, `.5`, `1e-3`); `NaN`, `inf`, `-inf` and
///   `infinity`, in any letter case, are accepted as the non-finite values they name, and
///   values beyond the f32 range become ±infinity, as a cast to float32 does in NumPy.
///
/// # Errors
/// - [`IoErrorKind::Open`]: the file cannot be opened or read.
/// - [`IoErrorKind::CsvParse`]: a data field that is not a number (line and field 1-based).
/// - [`IoErrorKind::CsvRagged`]: a record whose field count differs from the first record's.
/// - [`IoErrorKind::CsvUtf8`]: a field that is not UTF-8.
/// - [`IoErrorKind::CsvEmpty`]: no data rows.
/// - [`IoErrorKind::Csv`]: any other CSV reading error.
pub fn read_csv_matrix(path: &Path) -> Result<(Option<Vec<String>>, Array), IoError> {
    let file = File::open(path).map_err(|e| IoError::new(path, IoErrorKind::Open(e)))?;
    read_csv_matrix_from(file, path)
}

/// [`read_csv_matrix`] on any reader (standard input, a buffer); `path_for_errors` only
/// labels the errors.
///
/// # Errors
/// As [`read_csv_matrix`], with [`IoErrorKind::Open`] for read errors.
pub fn read_csv_matrix_from<R: Read>(
    input: R,
    path_for_errors: &Path,
) -> Result<(Option<Vec<String>>, Array), IoError> {
    let fail = |kind| IoError::new(path_for_errors, kind);
    // The whole text is kept so that line numbers can be computed from byte offsets (see
    // `LineCounter`); a table of numbers the runtime will hold in memory anyway fits.
    let mut text = Vec::new();
    let mut input = input;
    input
        .read_to_end(&mut text)
        .map_err(|e| fail(IoErrorKind::Open(e)))?;
    let mut lines = LineCounter::new(&text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        // Field counts are checked below so that the error can name the line.
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_slice());

    let mut record = csv::StringRecord::new();
    let mut header: Option<Vec<String>> = None;
    let mut width: Option<usize> = None;
    let mut rows = 0usize;
    let mut data = Vec::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(fail(csv_error_kind(e, &mut lines))),
        }
        // The csv crate skips empty lines itself; a line of only spaces reaches us as a
        // single empty field.
        if record.len() == 1 && record.get(0) == Some("") {
            continue;
        }
        let line = lines.line_of(record.position());
        let Some(expected) = width else {
            width = Some(record.len());
            if record
                .iter()
                .any(|field| !field.is_empty() && parse_number(field).is_none())
            {
                header = Some(record.iter().map(str::to_owned).collect());
                continue;
            }
            push_row(&record, line, &mut data).map_err(fail)?;
            rows += 1;
            continue;
        };
        if record.len() != expected {
            return Err(fail(IoErrorKind::CsvRagged {
                line,
                expected,
                found: record.len(),
            }));
        }
        push_row(&record, line, &mut data).map_err(fail)?;
        rows += 1;
    }

    let cols = width.unwrap_or(0);
    if rows == 0 {
        return Err(fail(IoErrorKind::CsvEmpty));
    }
    let array = Array::new(vec![rows, cols], data).map_err(|e| e.with_path(path_for_errors))?;
    Ok((header, array))
}

/// Turns the byte offset of a record into the 1-based line a text editor shows it on.
///
/// The csv crate's own `Position::line` is taken where it starts looking for a record, so
/// it counts blank lines skipped before a record (and the `\n` of a `\r\n` ending the
/// previous one) as part of the previous line. The record really starts after those line
/// breaks; lines end at `\n`, `\r\n` or a lone `\r`, as for the csv parser.
struct LineCounter<'a> {
    text: &'a [u8],
    /// A byte offset already counted up to, and the line it is on.
    byte: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a [u8]) -> Self {
        Self {
            text,
            byte: 0,
            line: 1,
        }
    }

    fn line_of(&mut self, position: Option<&csv::Position>) -> u64 {
        let Some(position) = position else {
            return self.line;
        };
        let mut start = usize::try_from(position.byte())
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        while matches!(self.text.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        // Records come in order, so counting resumes where the last one left off.
        if start < self.byte {
            self.byte = 0;
            self.line = 1;
        }
        for i in self.byte..start {
            let is_break = match self.text.get(i) {
                Some(b'\n') => true,
                Some(b'\r') => self.text.get(i + 1) != Some(&b'\n'),
                _ => false,
            };
            if is_break {
                self.line += 1;
            }
        }
        self.byte = start;
        self.line
    }
}

fn push_row(record: &csv::StringRecord, line: u64, data: &mut Vec<f32>) -> Result<(), IoErrorKind> {
    for (index, field) in record.iter().enumerate() {
        let value = parse_number(field).ok_or_else(|| IoErrorKind::CsvParse {
            line,
            field: index + 1,
            text: field.to_owned(),
        })?;
        data.push(value);
    }
    Ok(())
}

fn parse_number(text: &str) -> Option<f32> {
    text.parse().ok()
}

fn csv_error_kind(err: csv::Error, lines: &mut LineCounter<'_>) -> IoErrorKind {
    if !matches!(
        err.kind(),
        csv::ErrorKind::Io(_) | csv::ErrorKind::Utf8 { .. }
    ) {
        return IoErrorKind::Csv(err);
    }
    match err.into_kind() {
        csv::ErrorKind::Utf8 { pos, err } => IoErrorKind::CsvUtf8 {
            line: pos.as_ref().map(|pos| lines.line_of(Some(pos))),
            field: err.field() + 1,
        },
        csv::ErrorKind::Io(e) => IoErrorKind::Open(e),
        // Excluded by the check above.
        _ => IoErrorKind::Open(io::Error::other("unexpected CSV error")),
    }
}

/// Writes `rows` rows of `cols` values from the row-major `data`, after an optional header
/// row. Values use Rust's `{}` formatting for f32, the shortest text that reads back to the
/// same value (`NaN`, `inf` and `-inf` for non-finite values, which [`read_csv_matrix`]
/// accepts). Header names are quoted where CSV requires it.
///
/// # Errors
/// [`io::ErrorKind::InvalidInput`] when `data.len()` is not `rows * cols`, when `rows > 0`
/// but `cols == 0` (such rows cannot be told from blank lines; zero rows of zero columns
/// write nothing), when the header does not
/// have `cols` names, or when no header name is a non-empty non-number (the header would
/// be read back as data); otherwise any error from `out`.
pub fn write_csv_matrix<W: Write>(
    out: W,
    header: Option<&[String]>,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> io::Result<()> {
    let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    if rows.checked_mul(cols) != Some(data.len()) {
        return invalid(format!(
            "{} values cannot fill {rows} rows of {cols} columns",
            data.len()
        ));
    }
    if cols == 0 {
        // Rows of no fields cannot be told from blank lines, and an empty table is an
        // empty file.
        return match (rows, header) {
            (0, None) => Ok(()),
            (0, Some([])) => Ok(()),
            (0, Some(names)) => invalid(format!("header has {} names for 0 columns", names.len())),
            _ => invalid(format!("cannot write {rows} rows of zero columns")),
        };
    }
    if let Some(names) = header {
        if names.len() != cols {
            return invalid(format!(
                "header has {} names for {cols} columns",
                names.len()
            ));
        }
        let detectable = names.iter().any(|name| {
            let name = name.trim();
            !name.is_empty() && parse_number(name).is_none()
        });
        if !detectable {
            return invalid(
                "header would be read back as data: no column name is a non-empty non-number"
                    .to_owned(),
            );
        }
    }

    let mut writer = csv::WriterBuilder::new().from_writer(out);
    if let Some(names) = header {
        writer.write_record(names)?;
    }
    for row in data.chunks_exact(cols) {
        writer.write_record(row.iter().map(f32::to_string))?;
    }
    writer.flush()
}

/// [`write_csv_matrix`] to `path`, replacing any existing file atomically.
///
/// # Errors
/// [`IoErrorKind::Write`] when the arguments are inconsistent (see [`write_csv_matrix`]) or
/// the file cannot be written; `path` is then left as it was.
pub fn write_csv_file(
    path: &Path,
    header: Option<&[String]>,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> Result<(), IoError> {
    write_atomic_with(path, |out| write_csv_matrix(out, header, rows, cols, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(text: &str) -> Result<(Option<Vec<String>>, Array), IoError> {
        read_csv_matrix_from(text.as_bytes(), Path::new("in.csv"))
    }

    fn read_kind(text: &str) -> IoErrorKind {
        read(text).unwrap_err().kind
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn with_header() {
        let (header, array) = read("time,x\n0,1.5\n1,-2e3\n").unwrap();
        assert_eq!(header, Some(names(&["time", "x"])));
        assert_eq!(array.shape, [2, 2]);
        assert_eq!(array.data, [0.0, 1.5, 1.0, -2000.0]);
    }

    #[test]
    fn without_header() {
        let (header, array) = read("1,2,3\n4,5,6\n").unwrap();
        assert_eq!(header, None);
        assert_eq!(array.shape, [2, 3]);
        assert_eq!(array.data, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // No trailing newline, one column.
        let (_, array) = read("7\n8").unwrap();
        assert_eq!((array.shape, array.data), (vec![2, 1], vec![7.0, 8.0]));
    }

    #[test]
    fn header_with_some_numeric_names() {
        let (header, array) = read("t,1,2\n0,1,2\n").unwrap();
        assert_eq!(header, Some(names(&["t", "1", "2"])));
        assert_eq!(array.shape, [1, 3]);
    }

    #[test]
    fn whitespace_blank_lines_crlf_bom_quotes() {
        // Quotes must open the field (RFC 4180); whitespace after them is trimmed.
        let text = "\u{feff} a ,\"b,c\" \r\n\r\n  1 ,\t2\r\n   \r\n\n3,  4  \r\n\n";
        let (header, array) = read(text).unwrap();
        assert_eq!(header, Some(names(&["a", "b,c"])));
        assert_eq!(array.shape, [2, 2]);
        assert_eq!(array.data, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn non_finite_spellings_are_numbers() {
        let (header, array) = read("nan,inf,-inf\nNaN,Infinity,-INF\n").unwrap();
        assert_eq!(header, None);
        assert!(array.data[0].is_nan() && array.data[3].is_nan());
        assert_eq!(array.data[1], f32::INFINITY);
        assert_eq!(array.data[2], f32::NEG_INFINITY);
        assert_eq!(array.data[4], f32::INFINITY);
        assert_eq!(array.data[5], f32::NEG_INFINITY);
    }

    #[test]
    fn ragged_row_names_its_line() {
        let err = read("a,b\n1,2\n\n3\n4,5\n").unwrap_err();
        assert!(matches!(
            err.kind,
            IoErrorKind::CsvRagged {
                line: 4,
                expected: 2,
                found: 1
            }
        ));
        assert_eq!(
            err.to_string(),
            "in.csv: line 4: found 1 fields, expected 2 like the first row"
        );
        // A longer row, and a header shorter than the data.
        assert!(matches!(
            read_kind("1,2\n3,4,5\n"),
            IoErrorKind::CsvRagged {
                line: 2,
                expected: 2,
                found: 3
            }
        ));
        assert!(matches!(
            read_kind("a\n1,2\n"),
            IoErrorKind::CsvRagged {
                line: 2,
                expected: 1,
                found: 2
            }
        ));
    }

    #[test]
    fn line_numbers_count_quoted_newlines_like_an_editor() {
        // The header spans lines 1-2, so the bad row is on line 4.
        let err = read("\"multi\nline\",b\n1,2\n3,oops\n").unwrap_err();
        assert!(matches!(
            err.kind,
            IoErrorKind::CsvParse {
                line: 4,
                field: 2,
                ..
            }
        ));
    }

    #[test]
    fn line_numbers_with_crlf_lone_cr_and_blank_lines() {
        let cases = [
            ("a,b\r\n\r\n1,2\r\n\r\n\r\n3,x\r\n", 6),
            ("1,2\r3,x\r", 2),
            ("1,2\n   \n\t\n3,x\n", 4),
            ("\n\n1,2\n3,x\n", 4),
            ("\r\n1,2\r\n3,4\r\n\r\n5,x", 5),
        ];
        for (text, expected) in cases {
            match read_kind(text) {
                IoErrorKind::CsvParse { line, field: 2, .. } => {
                    assert_eq!(line, expected, "{text:?}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_number_names_line_and_field() {
        let err = read("x,y,z\n1,2,3\n\n4,5,6x\n").unwrap_err();
        match &err.kind {
            IoErrorKind::CsvParse { line, field, text } => {
                assert_eq!((*line, *field, text.as_str()), (4, 3, "6x"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "in.csv: line 4, field 3: \"6x\" is not a number"
        );
        // An empty field is not a number either, and does not make the first row a header.
        assert!(matches!(
            read_kind("1,,3\n"),
            IoErrorKind::CsvParse {
                line: 1,
                field: 2,
                ..
            }
        ));
        assert!(matches!(
            read_kind("1,2\n3,\n"),
            IoErrorKind::CsvParse {
                line: 2,
                field: 2,
                ..
            }
        ));
    }

    #[test]
    fn empty_inputs() {
        for text in ["", "\n\n", "   \n", "a,b\n", "a,b\n\n  \n"] {
            assert!(matches!(read_kind(text), IoErrorKind::CsvEmpty), "{text:?}");
        }
        assert_eq!(
            read("").unwrap_err().to_string(),
            "in.csv: no data rows in CSV file"
        );
    }

    #[test]
    fn invalid_utf8_names_line_and_field() {
        let err = read_csv_matrix_from(&b"1,2\n3,\xff\n"[..], Path::new("in.csv")).unwrap_err();
        assert!(matches!(
            err.kind,
            IoErrorKind::CsvUtf8 {
                line: Some(2),
                field: 2
            }
        ));
    }

    #[test]
    fn read_from_file_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "a\n1\n2\n").unwrap();
        let (header, array) = read_csv_matrix(&path).unwrap();
        assert_eq!(header, Some(names(&["a"])));
        assert_eq!(array.shape, [2, 1]);
        let err = read_csv_matrix(&dir.path().join("missing.csv")).unwrap_err();
        assert!(matches!(err.kind, IoErrorKind::Open(_)));
    }

    #[test]
    fn writes_header_and_shortest_floats() {
        let mut out = Vec::new();
        let header = names(&["a", "b, quoted"]);
        let data = [0.1, -2.0, 1e-7, f32::NAN, f32::INFINITY, 3.0];
        write_csv_matrix(&mut out, Some(&header), 3, 2, &data).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "a,\"b, quoted\"\n0.1,-2\n0.0000001,NaN\ninf,3\n");
        let (back_header, back) = read(&text).unwrap();
        assert_eq!(back_header, Some(header));
        assert_eq!(back.shape, [3, 2]);
        assert!(back.data[3].is_nan());
        assert_eq!(back.data[..3], data[..3]);
        assert_eq!(back.data[4..], data[4..]);
    }

    #[test]
    fn write_rejects_inconsistent_arguments() {
        let bad = |header: Option<&[String]>, rows, cols, data: &[f32]| {
            let err = write_csv_matrix(Vec::new(), header, rows, cols, data).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        };
        bad(None, 2, 2, &[1.0, 2.0, 3.0]);
        bad(None, 2, 0, &[]);
        bad(Some(&names(&["a"])), 1, 2, &[1.0, 2.0]);
        bad(Some(&names(&["1", "2"])), 1, 2, &[1.0, 2.0]);
        bad(Some(&names(&["", " "])), 1, 2, &[1.0, 2.0]);
        bad(None, usize::MAX, 2, &[]);
        bad(Some(&names(&["a"])), 0, 0, &[]);
        // Zero rows is fine (though not readable back: CsvEmpty), even of zero columns.
        write_csv_matrix(Vec::new(), None, 0, 3, &[]).unwrap();
        let mut out = Vec::new();
        write_csv_matrix(&mut out, Some(&[]), 0, 0, &[]).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn write_csv_file_is_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        write_csv_file(&path, None, 1, 2, &[1.0, 2.5]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1,2.5\n");
        let err = write_csv_file(&path, None, 2, 2, &[1.0]).unwrap_err();
        assert!(matches!(err.kind, IoErrorKind::Write(_)));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1,2.5\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    proptest! {
        #[test]
        fn round_trip(
            rows in 1usize..6,
            cols in 1usize..5,
            bits in prop::collection::vec(any::<u32>(), 30),
            with_header in any::<bool>(),
        ) {
            let data: Vec<f32> =
                (0..rows * cols).map(|i| f32::from_bits(bits[i % bits.len()])).collect();
            let header: Vec<String> = (0..cols).map(|c| format!("col {c}")).collect();
            let header = with_header.then_some(header.as_slice());
            let mut out = Vec::new();
            write_csv_matrix(&mut out, header, rows, cols, &data).unwrap();
            let (back_header, back) =
                read_csv_matrix_from(out.as_slice(), Path::new("p.csv")).unwrap();
            prop_assert_eq!(back_header.as_deref(), header);
            prop_assert_eq!(&back.shape, &vec![rows, cols]);
            for (a, b) in back.data.iter().zip(&data) {
                prop_assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "[0-9a-z,.\\-+ \"\t\r\n]{0,60}") {
            if let Ok((_, array)) = read(&text) {
                prop_assert_eq!(array.data.len(), array.shape.iter().product::<usize>());
            }
        }
    }
}
