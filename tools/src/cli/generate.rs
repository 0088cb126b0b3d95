//! `edgernn generate`: a model's output fed back as its next input, from a prompt.
//!
//! Text models (an Embedding first and a vocabulary in the blob) read the prompt as
//! characters and print the generated characters; value models (as many outputs as input
//! features, e.g. a one-step forecaster) read comma-separated numbers and print forecasts fed
//! back one after another. The core's [`edgernn::generate::Generator`] does the work, with the
//! same numbers as firmware.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use edgernn::generate::{char_token, token_char, GenerateError, Generator, Sampling};
use edgernn::model::Word;
use edgernn::Model;
use serde::Serialize;

use super::{load_model, read_blob, Failure};
use crate::io;

/// The options of `edgernn generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// The model blob (.ern).
    pub model: PathBuf,
    /// The prompt: text for a model with a vocabulary (every character must be in it), else
    /// comma-separated numbers (token ids for a token model without a vocabulary, values for
    /// a value model: `input_features` per step, row after row).
    #[arg(long, allow_hyphen_values = true)]
    pub prime: String,
    /// Tokens (or value rows) to generate after the prompt.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Token models: sample from `p^(1/T)`; 1 samples the model's distribution, 0 is greedy
    /// (always the most likely token). Not for value models.
    #[arg(long, allow_hyphen_values = true)]
    pub temperature: Option<f32>,
    /// Seed of the sampling's random numbers: same seed, same text (bit-exact across targets
    /// for int8/int16 blobs).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object (prompt, generated tokens or values, timing).
    #[arg(long)]
    pub json: bool,
    /// Also write the prompt, settings and generated tokens as a Rust source for firmware to
    /// check its own generation against (`firmware-examples/regenerate.sh`).
    #[arg(long)]
    pub rust: Option<PathBuf>,
}

/// Temperature when `--temperature` is not given: the model's own distribution.
pub const DEFAULT_TEMPERATURE: f32 = 1.0;

/// What a generation run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generated {
    /// Token ids, or value rows flattened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<u32>>,
    /// The generated characters (models with a vocabulary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f32>>,
    /// Time in the generation loop (priming excluded).
    pub seconds: f64,
    /// Generated tokens (or rows) per second.
    pub per_second: f64,
}

/// How the prompt was read.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Tokens(Vec<u32>),
    Values(Vec<f32>),
}

/// Reads `--prime` for `model`.
///
/// # Errors
/// A bad-input failure naming the first character not in the vocabulary (with its 1-based
/// position), or the first entry that is not a number.
pub fn parse_prompt(model: &Model<'_>, prime: &str) -> Result<Prompt, Failure> {
    if prime.is_empty() {
        return Err(Failure::BadInput(
            "--prime is empty: give at least one character or value".into(),
        ));
    }
    if model.reads_tokens() {
        if let Some(vocabulary) = model.vocabulary() {
            let mut ids = Vec::with_capacity(prime.len());
            for (i, c) in prime.chars().enumerate() {
                let id = char_token(vocabulary, c).ok_or_else(|| {
                    Failure::BadInput(format!(
                        "--prime: character {c:?} (U+{:04X}) at position {} is not in the \
                         model's vocabulary {vocabulary:?}",
                        u32::from(c),
                        i + 1
                    ))
                })?;
                ids.push(id);
            }
            return Ok(Prompt::Tokens(ids));
        }
        let ids = numbers(prime, "token ids", |s| s.parse::<u32>().ok())?;
        return Ok(Prompt::Tokens(ids));
    }
    let values = numbers(prime, "numbers", |s| {
        s.parse::<f32>().ok().filter(|v| v.is_finite())
    })
    .map_err(|e| match e {
        Failure::BadInput(m) => Failure::BadInput(format!(
            "{m} (this model reads values and stores no vocabulary, so the prompt cannot be text)"
        )),
        other => other,
    })?;
    let width = model.input_features().max(1);
    if !values.len().is_multiple_of(width) {
        return Err(Failure::BadInput(format!(
            "--prime: {} values are not whole steps of {width} input features",
            values.len()
        )));
    }
    Ok(Prompt::Values(values))
}

fn numbers<T>(
    text: &str,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, Failure> {
    text.split(',')
        .enumerate()
        .map(|(i, s)| {
            parse(s.trim()).ok_or_else(|| {
                Failure::BadInput(format!(
                    "--prime: entry {} ({:?}) is not valid; expected comma-separated {what}",
                    i + 1,
                    s.trim()
                ))
            })
        })
        .collect()
}

/// The sampling `--temperature` asks for, checked against the model kind.
///
/// # Errors
/// A bad-input failure for a negative, NaN or infinite temperature, or any temperature on a
/// value model.
pub fn sampling(model: &Model<'_>, temperature: Option<f32>) -> Result<Sampling, Failure> {
    if !model.reads_tokens() {
        return match temperature {
            None => Ok(Sampling::Greedy),
            Some(t) => Err(Failure::BadInput(format!(
                "--temperature {t}: this model generates values, which are fed back as they \
                 are; temperatures are for token models"
            ))),
        };
    }
    let t = temperature.unwrap_or(DEFAULT_TEMPERATURE);
    Sampling::with_temperature(t).map_err(|_| {
        Failure::BadInput(format!(
            "--temperature {t}: expected a number >= 0 (0: greedy)"
        ))
    })
}

/// Runs the generation with buffers of the model's word type.
///
/// # Errors
/// The core's [`GenerateError`].
pub fn generate(
    model: &Model<'_>,
    prompt: &Prompt,
    steps: usize,
    sampling: Sampling,
    seed: u64,
) -> Result<Generated, GenerateError> {
    if model.uses_integer_buffers() {
        generate_with::<i32>(model, prompt, steps, sampling, seed)
    } else {
        generate_with::<f32>(model, prompt, steps, sampling, seed)
    }
}

fn generate_with<W: Word>(
    model: &Model<'_>,
    prompt: &Prompt,
    steps: usize,
    sampling: Sampling,
    seed: u64,
) -> Result<Generated, GenerateError> {
    let mut state = vec![W::default(); model.state_len()];
    let mut scratch = vec![W::default(); model.step_scratch_len()];
    let mut out = vec![0f32; Generator::<W>::output_buffer_len(model)];
    model.reset_state(&mut state);
    let mut g = Generator::new(model, &mut state, &mut scratch, &mut out, sampling, seed)?;
    let mut result = Generated {
        prompt_tokens: None,
        tokens: None,
        text: None,
        values: None,
        seconds: 0.0,
        per_second: 0.0,
    };
    let started;
    match prompt {
        Prompt::Tokens(ids) => {
            g.prime(ids)?;
            started = Instant::now();
            let tokens = (0..steps)
                .map(|_| g.next_token())
                .collect::<Result<Vec<u32>, _>>()?;
            result.text = model.vocabulary().map(|v| {
                tokens
                    .iter()
                    .map(|&t| token_char(v, t).unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect()
            });
            result.prompt_tokens = Some(ids.clone());
            result.tokens = Some(tokens);
        }
        Prompt::Values(rows) => {
            g.prime_values(rows)?;
            started = Instant::now();
            let mut values = Vec::with_capacity(steps * model.output_width());
            for _ in 0..steps {
                values.extend_from_slice(g.next_values()?);
            }
            result.values = Some(values);
        }
    }
    result.seconds = started.elapsed().as_secs_f64();
    result.per_second = steps as f64 / result.seconds.max(1e-9);
    Ok(result)
}

/// The firmware check: prompt, settings and the host's tokens as Rust constants.
fn rust_source(args: &GenerateArgs, sampling: Sampling, prompt: &[u32], g: &Generated) -> String {
    let tokens = g.tokens.as_deref().unwrap_or(&[]);
    let temperature = match sampling {
        Sampling::Temperature(t) => t,
        _ => 0.0,
    };
    let list = |ids: &[u32]| {
        let mut s = String::new();
        for chunk in ids.chunks(16) {
            let cells: Vec<String> = chunk.iter().map(|v| format!("{v},")).collect();
            let _ = writeln!(s, "    {}", cells.join(" "));
        }
        s
    };
    let mut s = format!(
        "//! Generated by `edgernn generate` from `{}` (--steps {} --temperature {} --seed {}):\n\
         //! do not edit; regenerate instead. The host's tokens for this prompt and seed, for\n\
         //! firmware to check its own generation against, token for token.\n\n\
         #![allow(dead_code)]\n\n\
         /// Seed of the sampling's random numbers.\npub const SEED: u64 = {};\n\
         /// Sampling temperature (0: greedy), {temperature}.\n\
         pub const TEMPERATURE: f32 = f32::from_bits(0x{:08x});\n\
         /// Tokens to generate.\npub const STEPS: usize = {};\n",
        args.model.display(),
        args.steps,
        temperature,
        args.seed,
        args.seed,
        temperature.to_bits(),
        args.steps,
    );
    if let Some(text) = &g.text {
        let _ = write!(
            s,
            "/// The prompt.\npub const PROMPT: &str = {:?};\n/// The host's generated text.\n\
             pub const EXPECTED_TEXT: &str = {text:?};\n",
            args.prime
        );
    }
    let _ = write!(
        s,
        "/// The prompt's token ids.\n#[rustfmt::skip]\npub static PROMPT_TOKENS: [u32; {}] = [\n{}];\n\
         /// The host's generated token ids.\n#[rustfmt::skip]\npub static EXPECTED_TOKENS: [u32; {}] = [\n{}];\n",
        prompt.len(),
        list(prompt),
        tokens.len(),
        list(tokens)
    );
    s
}

/// Runs `edgernn generate`.
///
/// # Errors
/// Bad files, prompts or options (exit 2); internal failures (exit 1).
pub fn run(args: &GenerateArgs) -> Result<(), Failure> {
    if let Some(path) = &args.rust {
        io::atomic::ensure_not_same_file(&args.model, path)?;
    }
    let blob = read_blob(&args.model)?;
    let model = load_model(&args.model, &blob)?;
    let sampling = sampling(&model, args.temperature)?;
    let prompt = parse_prompt(&model, &args.prime)?;
    let g = generate(&model, &prompt, args.steps, sampling, args.seed)
        .map_err(|e| generate_failure(&args.model, e))?;
    if let Some(path) = &args.rust {
        let Prompt::Tokens(ids) = &prompt else {
            return Err(Failure::BadInput(
                "--rust: firmware vectors are written for token models".into(),
            ));
        };
        io::atomic::write_atomic(path, rust_source(args, sampling, ids, &g).as_bytes())?;
    }
    if args.json {
        #[derive(Serialize)]
        struct Report<'a> {
            model: String,
            prompt: &'a str,
            steps: usize,
            seed: u64,
            temperature: Option<f32>,
            #[serde(flatten)]
            generated: &'a Generated,
        }
        let report = Report {
            model: args.model.display().to_string(),
            prompt: &args.prime,
            steps: args.steps,
            seed: args.seed,
            temperature: match sampling {
                Sampling::Temperature(t) => Some(t),
                _ if model.reads_tokens() => Some(0.0),
                _ => None,
            },
            generated: &g,
        };
        let text =
            serde_json::to_string_pretty(&report).map_err(|e| Failure::Internal(e.to_string()))?;
        println!("{text}");
        return Ok(());
    }
    match (&g.text, &g.tokens, &g.values) {
        (Some(text), _, _) => println!("{text}"),
        (None, Some(tokens), _) => {
            let ids: Vec<String> = tokens.iter().map(u32::to_string).collect();
            println!("{}", ids.join(","));
        }
        (_, _, Some(values)) => {
            for row in values.chunks(model.output_width().max(1)) {
                let cells: Vec<String> = row.iter().map(f32::to_string).collect();
                println!("{}", cells.join(","));
            }
        }
        _ => {}
    }
    Ok(())
}

fn generate_failure(model: &Path, e: GenerateError) -> Failure {
    match e {
        GenerateError::Run(edgernn::RunError::InvalidToken { index }) => {
            Failure::BadInput(format!(
            "--prime: entry {} is not a token id of the model (ids are below its vocabulary size)",
            index + 1
        ))
        }
        GenerateError::NoCandidate => Failure::Internal(format!(
            "{}: the model's output has no valid candidate (NaN)",
            model.display()
        )),
        other => Failure::input(model, other),
    }
}
