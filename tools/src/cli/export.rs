//! `edgernn export`: a blob as a Rust or C source file for firmware builds, with its sizes as
//! typed constants so buffers are statically sized and the weights stay in flash.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use edgernn::Model;

use super::run::read_input;
use super::{load_model, read_blob, Failure};
use crate::io;
use crate::runner::{run_window, Feed};

/// Options of `edgernn export`.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub model: PathBuf,
    pub rust: Option<PathBuf>,
    pub c: Option<PathBuf>,
    /// Also embed this input and the host's per-step outputs for it, so firmware can check
    /// itself against the host.
    pub vectors: Option<PathBuf>,
    /// Also embed this series (a CSV with `timestamp` and `value` columns) and the host's
    /// anomaly detector scores for it, so firmware can check its detector against the host.
    pub detect: Option<PathBuf>,
    /// Only the first this many rows of `detect`.
    pub detect_rows: Option<usize>,
    /// `--pack`: the weight layout of the exported blob (`None`: the file's).
    pub pack: Option<String>,
    /// `--plan`: also write `PLAN`, the model loaded at export time, into the Rust file.
    pub plan: bool,
}

/// A series and the host detector's output for it.
struct DetectVectors {
    window: u32,
    samples: Vec<f32>,
    scores: Vec<f32>,
    alarms: usize,
}

fn detect_vectors(
    model: &Model<'_>,
    path: &Path,
    rows: Option<usize>,
) -> Result<DetectVectors, Failure> {
    let params = model.detector_params().ok_or_else(|| {
        Failure::BadInput("--detect: the model has no detector parameters".into())
    })?;
    let mut series = super::detect::read_series(path, "value")?;
    if let Some(rows) = rows {
        series.values.truncate(rows);
    }
    let detections =
        crate::detect::stream(model, &series.values).map_err(|e| Failure::input(path, e))?;
    Ok(DetectVectors {
        window: params.window,
        scores: detections.iter().map(|d| d.score).collect(),
        alarms: detections.iter().filter(|d| d.alarm).count(),
        samples: series.values,
    })
}

/// Test vectors computed on the host.
struct Vectors {
    windows: usize,
    steps: usize,
    input: Vec<f32>,
    expected: Vec<f32>,
}

fn vectors(model: &Model<'_>, path: &Path) -> Result<Vectors, Failure> {
    let (input, _) = read_input(path)?;
    let (windows, steps, features) = (input.shape[0], input.shape[1], input.shape[2]);
    if features != model.input_features() || steps == 0 {
        return Err(Failure::input(
            path,
            format!(
                "shape {:?} does not fit the model ({} features per step)",
                input.shape,
                model.input_features()
            ),
        ));
    }
    if !model.is_streamable() {
        return Err(Failure::input(
            path,
            "per-step vectors need a streamable model (no Bidirectional or go_backwards layer)",
        ));
    }
    let mut expected = Vec::new();
    for xs in input.data.chunks_exact(steps * features) {
        let out = run_window(model, xs, Feed::PerStep).map_err(|e| Failure::input(path, e))?;
        expected.extend(out);
    }
    Ok(Vectors {
        windows,
        steps,
        input: input.data,
        expected,
    })
}

/// `items` as source lines of `per_line` comma-terminated values, indented by four spaces.
fn value_lines<T>(items: &[T], per_line: usize, item: impl Fn(&T) -> String) -> String {
    let mut s = String::new();
    for chunk in items.chunks(per_line) {
        let cells: Vec<String> = chunk.iter().map(|v| format!("{},", item(v))).collect();
        let _ = writeln!(s, "    {}", cells.join(" "));
    }
    s
}

fn rust_f32_array(name: &str, doc: &str, values: &[f32]) -> String {
    format!(
        "/// {doc}\n#[rustfmt::skip]\npub static {name}: [f32; {}] = [\n{}];\n",
        values.len(),
        // Bits, so the firmware gets exactly the host's values.
        value_lines(values, 8, |v| format!(
            "f32::from_bits(0x{:08x})",
            v.to_bits()
        ))
    )
}

fn c_f32_array(name: &str, values: &[f32]) -> String {
    format!(
        "static const uint32_t {name}_BITS[{}] = {{\n{}}};\n",
        values.len(),
        value_lines(values, 8, |v| format!("0x{:08x}u", v.to_bits()))
    )
}

fn bytes_lines(bytes: &[u8]) -> String {
    value_lines(bytes, 16, |b| format!("0x{b:02x}"))
}

/// `PLAN`: `model`, loaded from `bytes`, as a `static` built from the file's `MODEL`.
fn rust_plan(bytes: &[u8], model: &Model<'_>) -> Result<String, Failure> {
    let mut plan = String::new();
    edgernn::model::prebuilt::write_plan(model, bytes, "&MODEL.0", &mut plan).map_err(|_| {
        Failure::Internal("export --plan: a weight view lies outside the blob".into())
    })?;
    Ok(format!(
        "\n/// The model, loaded when this file was written (the loader's checks ran then): firmware\n\
         /// that runs `PLAN` links no loader and keeps no `Model` value in RAM. Built by the\n\
         /// compiler from `MODEL` (see `edgernn::model::prebuilt`).\n\
         #[rustfmt::skip]\n\
         #[allow(clippy::needless_update)]\n\
         pub static PLAN: edgernn::Model<'static, LAYERS> = {plan};\n"
    ))
}

fn rust_source(
    source: &Path,
    bytes: &[u8],
    model: &Model<'_>,
    plan: Option<&str>,
    v: Option<&Vectors>,
    d: Option<&DetectVectors>,
) -> String {
    let word = if model.uses_integer_buffers() {
        "i32"
    } else {
        "f32"
    };
    let mut s = format!(
        "//! Generated by `edgernn export` from `{}`: do not edit; regenerate instead.\n\
         //!\n\
         //! The blob is a `static` (so it stays in flash) aligned to 16 bytes, and the sizes are\n\
         //! constants so state and scratch buffers can be statically sized.\n\n\
         #![allow(dead_code)]\n\n\
         /// Bytes of the blob.\n\
         pub const MODEL_LEN: usize = {};\n\
         /// Layers: the capacity to load it with (`Model::<'_, LAYERS>::from_bytes_with_capacity`).\n\
         pub const LAYERS: usize = {};\n\
         /// Features per time step.\n\
         pub const INPUT_FEATURES: usize = {};\n\
         /// Output values per step.\n\
         pub const OUTPUT_WIDTH: usize = {};\n\
         /// State words ([`Word`]).\n\
         pub const STATE_LEN: usize = {};\n\
         /// Scratch words for `Model::step`.\n\
         pub const STEP_SCRATCH_LEN: usize = {};\n\
         /// The element type of state and scratch for this model's mode ({:?}).\n\
         pub type Word = {word};\n\n\
         /// The model blob.\n\
         pub static MODEL: edgernn::format::Aligned<[u8; MODEL_LEN]> = edgernn::format::Aligned([\n",
        source.display(),
        bytes.len(),
        model.layer_count(),
        model.input_features(),
        model.output_width(),
        model.state_len(),
        model.step_scratch_len(),
        model.mode(),
    );
    s.push_str(&bytes_lines(bytes));
    s.push_str("]);\n");
    if let Some(plan) = plan {
        s.push_str(plan);
    }
    if let Some(v) = v {
        let _ = write!(
            s,
            "\n/// Windows in the test vectors.\npub const VECTOR_WINDOWS: usize = {};\n\
             /// Time steps per window.\npub const VECTOR_STEPS: usize = {};\n",
            v.windows, v.steps
        );
        s.push_str(&rust_f32_array(
            "VECTOR_INPUT",
            "Input, `[window, step, feature]`.",
            &v.input,
        ));
        s.push_str(&rust_f32_array(
            "VECTOR_EXPECTED",
            "The host's output after every step, `[window, step, output]`, from a reset state per window.",
            &v.expected,
        ));
    }
    if let Some(d) = d {
        let _ = write!(
            s,
            "\n/// The detector's window (its capacity: `Detector::<DETECT_WINDOW>`).\n\
             pub const DETECT_WINDOW: usize = {};\n\
             /// Alarms the host's detector raised on `DETECT_SAMPLES`.\n\
             pub const DETECT_ALARMS: usize = {};\n",
            d.window, d.alarms
        );
        s.push_str(&rust_f32_array(
            "DETECT_SAMPLES",
            "A series for the anomaly detector, one raw sample per step.",
            &d.samples,
        ));
        s.push_str(&rust_f32_array(
            "DETECT_SCORES",
            "The host detector's anomaly score for every sample, from a fresh detector.",
            &d.scores,
        ));
    }
    s
}

fn c_source(
    source: &Path,
    bytes: &[u8],
    model: &Model<'_>,
    v: Option<&Vectors>,
    d: Option<&DetectVectors>,
) -> String {
    let mut s = format!(
        "/* Generated by `edgernn export` from `{}`: do not edit; regenerate instead. */\n\
         #ifndef EDGERNN_MODEL_H\n#define EDGERNN_MODEL_H\n#include <stdint.h>\n\n\
         #define EDGERNN_MODEL_LEN {}u\n#define EDGERNN_LAYERS {}u\n#define EDGERNN_INPUT_FEATURES {}u\n\
         #define EDGERNN_OUTPUT_WIDTH {}u\n#define EDGERNN_STATE_LEN {}u\n\
         #define EDGERNN_STEP_SCRATCH_LEN {}u\n#define EDGERNN_WORD_IS_INT32 {}\n\
         #define EDGERNN_ALIGN 16\n\n\
         static const uint8_t EDGERNN_MODEL[EDGERNN_MODEL_LEN] __attribute__((aligned(EDGERNN_ALIGN))) = {{\n",
        source.display(),
        bytes.len(),
        model.layer_count(),
        model.input_features(),
        model.output_width(),
        model.state_len(),
        model.step_scratch_len(),
        u8::from(model.uses_integer_buffers()),
    );
    s.push_str(&bytes_lines(bytes));
    s.push_str("};\n");
    if let Some(v) = v {
        let _ = write!(
            s,
            "\n#define EDGERNN_VECTOR_WINDOWS {}u\n#define EDGERNN_VECTOR_STEPS {}u\n",
            v.windows, v.steps
        );
        s.push_str(&c_f32_array("EDGERNN_VECTOR_INPUT", &v.input));
        s.push_str(&c_f32_array("EDGERNN_VECTOR_EXPECTED", &v.expected));
    }
    if let Some(d) = d {
        let _ = write!(
            s,
            "\n#define EDGERNN_DETECT_WINDOW {}u\n#define EDGERNN_DETECT_LEN {}u\n\
             #define EDGERNN_DETECT_ALARMS {}u\n",
            d.window,
            d.samples.len(),
            d.alarms
        );
        s.push_str(&c_f32_array("EDGERNN_DETECT_SAMPLES", &d.samples));
        s.push_str(&c_f32_array("EDGERNN_DETECT_SCORES", &d.scores));
    }
    s.push_str("\n#endif /* EDGERNN_MODEL_H */\n");
    s
}

/// Runs `edgernn export`.
///
/// # Errors
/// Bad files (exit 2), or neither `--rust` nor `--c` given.
pub fn run(opts: &ExportOptions) -> Result<(), Failure> {
    if opts.rust.is_none() && opts.c.is_none() {
        return Err(Failure::BadInput(
            "export: give --rust OUT.rs and/or --c OUT.h".to_string(),
        ));
    }
    if opts.plan && opts.rust.is_none() {
        return Err(Failure::BadInput(
            "export: --plan writes Rust; give --rust OUT.rs".to_string(),
        ));
    }
    for out in opts.rust.iter().chain(&opts.c) {
        io::atomic::ensure_not_same_file(&opts.model, out)?;
    }
    let pack = opts
        .pack
        .as_deref()
        .map(|v| crate::pack::Pack::parse("--pack", v))
        .transpose()
        .map_err(|e| Failure::BadInput(format!("{e:#}")))?;
    let mut blob = read_blob(&opts.model)?;
    if let Some(pack) = pack {
        let packed = pack
            .apply(blob.bytes())
            .map_err(|e| Failure::input(&opts.model, format!("{e:#}")))?;
        blob = crate::blob_file::AlignedBlob::from_bytes(&packed);
    }
    let model = load_model(&opts.model, &blob)?;
    let v = match &opts.vectors {
        Some(p) => Some(vectors(&model, p)?),
        None => None,
    };
    let d = match &opts.detect {
        Some(p) => Some(detect_vectors(&model, p, opts.detect_rows)?),
        None => None,
    };
    if let Some(path) = &opts.rust {
        let plan = if opts.plan {
            Some(rust_plan(blob.bytes(), &model)?)
        } else {
            None
        };
        let text = rust_source(
            &opts.model,
            blob.bytes(),
            &model,
            plan.as_deref(),
            v.as_ref(),
            d.as_ref(),
        );
        io::atomic::write_atomic(path, text.as_bytes())?;
    }
    if let Some(path) = &opts.c {
        let text = c_source(&opts.model, blob.bytes(), &model, v.as_ref(), d.as_ref());
        io::atomic::write_atomic(path, text.as_bytes())?;
    }
    Ok(())
}
