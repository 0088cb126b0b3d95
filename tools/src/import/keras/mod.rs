//! Keras importers: Keras 3 `.keras` files and legacy Keras `.h5` files.
//!
//! Both read the model config (layers and options) and the weights, walk the config's layers
//! in order and hand each layer's weights, already in Keras layout, to
//! [`ModelBuilder`].
//!
//! | | read from |
//! |---|---|
//! | `.keras` (Keras 3, also Keras 2.13+) | zip members `config.json` (the model), `model.weights.h5` (weights at paths Keras derives from class names and layer order, e.g. `layers/lstm_1/cell/vars/0`, not from layer names), `metadata.json` (the Keras version) |
//! | `.h5` (legacy `model.save("m.h5")`) | root attributes `model_config`, `keras_version`, `backend`; weights in `model_weights/<layer>` listed by `weight_names` |
//!
//! Supported: `Sequential` and `Functional` models (nested ones too) that are a linear chain
//! of `InputLayer`, `SimpleRNN`, `LSTM`, `GRU` (`reset_after` true or false), `Bidirectional`
//! (`merge_mode` concat, sum, mul, ave), `Dense`, `Embedding` (first layer only; the token ids
//! `[batch, time]` become a blob input `[batch, time, 1]`), `Normalization` (last axis or
//! `axis=None`; mean/variance from the config or, after `adapt()`, from the `mean`/`variance`
//! weights), `RepeatVector` and `TimeDistributed(Dense)` (a Dense on every step) layers, with
//! the inference no-ops `Dropout`, `SpatialDropout1D`, `GaussianNoise`, `GaussianDropout`,
//! `AlphaDropout` and `ActivityRegularization` skipped (with a note), and an `Activation` layer
//! folded into the linear `Dense` before it. Recurrent activations: tanh, sigmoid,
//! hard_sigmoid, relu, linear; Dense also softmax. `stateful` and `unroll` do not change
//! results (noted).
//!
//! Refused, with the layer named: every other layer (Masking, convolutions, attention, custom
//! classes, ...), `Embedding` with `mask_zero=True` or not first, `Normalization` with
//! `invert=True` or another axis, `TimeDistributed` around anything but a Dense, other
//! activations, `return_state=True`, `merge_mode=None`, a Bidirectional around a `go_backwards`
//! layer, branching or multi-input/output graphs, shared layers, non-float32 dtype policies or
//! weights, LoRA or quantized Dense/Embedding layers, `hard_sigmoid` from Keras 2 (a different
//! function), and weights that do not match the config.
//!
//! Robustness: the zip members are read through [`Read::take`] with the limits below, so a
//! zip bomb cannot exhaust memory; every weight's shape and type are checked against the config
//! before it is read. The HDF5 reader has not panicked on damaged files in our fuzzing, but it is
//! a large dependency, so all file reading runs under [`std::panic::catch_unwind`] as a last
//! line of defence: a panic there becomes an [`ImportError`].

mod config;
mod weights;

use std::io::{Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use edgernn::format::{Cell, Merge};
use hdf5_pure::File;
use serde_json::Value;
use zip::ZipArchive;

use self::config::{KerasVersion, Kind};
use self::weights::{Layout, Locator, TensorPaths};
use super::{ImportError, Imported};
use crate::builder::{KerasWeights, ModelBuilder};

/// Largest `config.json` read from a `.keras` file (uncompressed).
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// Largest `metadata.json` read from a `.keras` file (uncompressed).
pub const MAX_METADATA_BYTES: u64 = 1 << 20;
/// Largest `model.weights.h5` read from a `.keras` file (uncompressed).
pub const MAX_WEIGHTS_BYTES: u64 = 2 << 30;

/// Imports a Keras 3 `.keras` file (zip of `config.json`, `model.weights.h5` and
/// `metadata.json`).
///
/// # Errors
/// A truncated or damaged zip or HDF5 file, a missing member, a member above its size limit
/// ([`MAX_CONFIG_BYTES`], [`MAX_METADATA_BYTES`], [`MAX_WEIGHTS_BYTES`]), a config that is not
/// JSON, anything the runtime cannot represent exactly (named by layer, see the
/// [module docs](self)), and weights that do not match the config.
///
/// # Panics
/// Never: a panic inside the zip or HDF5 readers is caught and returned as an error.
pub fn import_keras_zip(path: &Path, bytes: &[u8]) -> Result<Imported, ImportError> {
    guarded(path, || {
        let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
            ImportError::file(
                path,
                format!(
                    "not a readable .keras file: the zip archive is truncated or damaged ({e})"
                ),
            )
        })?;
        let config =
            read_member(&mut archive, path, "config.json", MAX_CONFIG_BYTES)?.ok_or_else(|| {
                ImportError::file(
                    path,
                    "the zip archive has no config.json: not a Keras 3 .keras file",
                )
            })?;
        let metadata = read_member(&mut archive, path, "metadata.json", MAX_METADATA_BYTES)?;
        let weights = match read_member(&mut archive, path, "model.weights.h5", MAX_WEIGHTS_BYTES)?
        {
            Some(w) => w,
            None if archive.index_for_name("model.weights.npz").is_some() => {
                return Err(ImportError::file(
                    path,
                    "the weights are stored as model.weights.npz; only model.weights.h5 (Keras' \
                     default) can be read",
                ));
            }
            None => {
                return Err(ImportError::file(
                    path,
                    "the .keras archive has no model.weights.h5 (the model's weights)",
                ));
            }
        };
        let config: Value = serde_json::from_slice(&config)
            .map_err(|e| ImportError::file(path, format!("config.json is not valid JSON: {e}")))?;
        let version_text = metadata
            .and_then(|m| serde_json::from_slice::<Value>(&m).ok())
            .and_then(|m| m.get("keras_version")?.as_str().map(str::to_string));
        let version = KerasVersion::parse(version_text.as_deref());
        let source = match (&version_text, version.major) {
            (Some(v), Some(m)) if m >= 3 => format!("Keras 3 .keras (keras {v})"),
            (Some(v), _) => format!("Keras .keras (keras {v})"),
            (None, _) => "Keras 3 .keras (keras version not recorded)".to_string(),
        };
        let file = open_hdf5(weights)
            .map_err(|e| ImportError::file(path, format!("model.weights.h5 is {e}")))?;
        // Keras 2.13-2.15 wrote `_layer_checkpoint_dependencies` where Keras 3 writes `layers`.
        let container = if file.group("layers").is_err()
            && file.group("_layer_checkpoint_dependencies").is_ok()
        {
            "_layer_checkpoint_dependencies"
        } else {
            "layers"
        };
        build(
            path,
            &config,
            version,
            &file,
            Layout::Keras3 { container },
            source,
        )
    })
}

/// Imports a legacy Keras `.h5` file (`model.save("model.h5")`: the model config in the root
/// attribute `model_config`, weights under `model_weights`).
///
/// # Errors
/// A truncated or damaged HDF5 file, a file holding weights only (no `model_config`), a config
/// that is not JSON, anything the runtime cannot represent exactly (named by layer, see the
/// [module docs](self)), and weights that do not match the config.
///
/// # Panics
/// Never: a panic inside the HDF5 reader is caught and returned as an error.
pub fn import_h5(path: &Path, bytes: &[u8]) -> Result<Imported, ImportError> {
    guarded(path, || {
        let file = open_hdf5(bytes.to_vec()).map_err(|e| ImportError::file(path, e))?;
        let attrs = file.root().attrs().map_err(|e| {
            ImportError::file(
                path,
                format!("the HDF5 file's attributes cannot be read ({e})"),
            )
        })?;
        let text = |name: &str| attrs.get(name).and_then(|v| v.as_str().map(str::to_string));
        let config = text("model_config").ok_or_else(|| {
            ImportError::file(
                path,
                "the HDF5 file has no model_config attribute: it holds weights only (from \
                 save_weights) or is not a Keras model; save the whole model with \
                 model.save(\"model.keras\") or model.save(\"model.h5\")",
            )
        })?;
        let config: Value = serde_json::from_str(&config).map_err(|e| {
            ImportError::file(
                path,
                format!("the model_config attribute is not valid JSON: {e}"),
            )
        })?;
        if file.group("model_weights").is_err() {
            return Err(ImportError::file(
                path,
                "the HDF5 file has a model config but no model_weights group",
            ));
        }
        let version_text = text("keras_version");
        let version = KerasVersion::parse(version_text.as_deref());
        let source = format!(
            "legacy Keras .h5 (keras {}, backend {})",
            version_text.as_deref().unwrap_or("version not recorded"),
            text("backend").as_deref().unwrap_or("not recorded")
        );
        build(path, &config, version, &file, Layout::Legacy, source)
    })
}

/// Runs a reader, turning a panic in a dependency into an error.
fn guarded(
    path: &Path,
    read: impl FnOnce() -> Result<Imported, ImportError>,
) -> Result<Imported, ImportError> {
    catch_unwind(AssertUnwindSafe(read)).unwrap_or_else(|_| {
        Err(ImportError::file(
            path,
            "the file is damaged: a reader library failed on it (caught internal panic)",
        ))
    })
}

/// Opens an HDF5 image, refusing one shorter than its superblock says (a truncated file would
/// otherwise fail later, at whichever object happens to lie past the end).
fn open_hdf5(bytes: Vec<u8>) -> Result<File, String> {
    let len = bytes.len() as u64;
    let file = File::from_bytes(bytes)
        .map_err(|e| format!("not a readable HDF5 file: truncated or damaged ({e})"))?;
    let superblock = file.superblock();
    // All ones is HDF5's "undefined address" (a file not closed cleanly): nothing to compare.
    if superblock.eof_address != u64::MAX {
        let end = superblock
            .base_address
            .get()
            .saturating_add(superblock.eof_address);
        if end > len {
            return Err(format!(
                "not a readable HDF5 file: truncated (it declares {end} bytes and has {len})"
            ));
        }
    }
    Ok(file)
}

/// Reads one zip member, `None` when absent.
fn read_member(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    path: &Path,
    name: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, ImportError> {
    let Some(index) = archive.index_for_name(name) else {
        return Ok(None);
    };
    let too_big = |size: &dyn std::fmt::Display| {
        ImportError::file(
            path,
            format!("{name} in the .keras archive holds {size} bytes; the limit is {limit} bytes"),
        )
    };
    let mut member = archive.by_index(index).map_err(|e| {
        ImportError::file(
            path,
            format!("cannot read {name} from the .keras archive ({e})"),
        )
    })?;
    if member.size() > limit {
        return Err(too_big(&member.size()));
    }
    // The declared size can lie: read at most one byte past the limit.
    let mut data = Vec::new();
    member
        .by_ref()
        .take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| {
            ImportError::file(
                path,
                format!("cannot read {name}: the .keras archive is truncated or damaged ({e})"),
            )
        })?;
    if data.len() as u64 > limit {
        return Err(too_big(&format!("more than {limit}")));
    }
    Ok(Some(data))
}

/// Plans the model from its config, reads the weights the plan names and builds the blob.
fn build(
    path: &Path,
    config: &Value,
    version: KerasVersion,
    file: &File,
    layout: Layout,
    source: String,
) -> Result<Imported, ImportError> {
    let plan = config::plan(path, config, version)?;
    if plan.layers.is_empty() {
        return Err(ImportError::file(
            path,
            "the model has no SimpleRNN, LSTM, GRU, Bidirectional or Dense layer: nothing to run",
        ));
    }
    if plan.layers.len() > edgernn::MAX_LAYERS {
        return Err(ImportError::file(
            path,
            format!(
                "the model has {} layers (not counting skipped ones); the runtime runs at most {}",
                plan.layers.len(),
                edgernn::MAX_LAYERS
            ),
        ));
    }
    let mut locator = Locator::new(path, file, layout);
    let located = plan
        .layers
        .iter()
        .map(|layer| locator.locate(layer))
        .collect::<Result<Vec<_>, _>>()?;
    locator.finish()?;
    let features = match plan.input_features {
        Some(f) => f,
        None => {
            // The first kernel's rows, when only Normalization layers (which keep the width)
            // come before it.
            let first = plan
                .layers
                .iter()
                .position(|l| !matches!(l.kind, Kind::Normalization { .. }))
                .unwrap_or(0);
            located[first]
                .forward
                .get("kernel")
                .and_then(|k| locator.rows(k))
                .ok_or_else(|| {
                    ImportError::at(
                        path,
                        plan.layers[first].location.clone(),
                        "the config does not declare the input features and the kernel's shape \
                         cannot be read",
                    )
                })?
        }
    };
    if !(1..=edgernn::MAX_WIDTH).contains(&features) {
        return Err(ImportError::file(
            path,
            format!(
                "the model input has {features} features; the runtime supports 1 to {}",
                edgernn::MAX_WIDTH
            ),
        ));
    }
    let mut builder = ModelBuilder::new(features);
    let mut width = features;
    for (layer, weights) in plan.layers.iter().zip(&located) {
        let at = layer.location.as_str();
        let builder_error = |e: anyhow::Error| ImportError::at(path, at, format!("{e:#}"));
        match &layer.kind {
            Kind::Recurrent { spec, .. } => {
                let units = spec.units;
                let gates = spec.cell.gates();
                let rows = gates * units;
                let read_direction = |t: &TensorPaths,
                                      direction: &str|
                 -> Result<KerasWeights, ImportError> {
                    let what = |w: &str| format!("{direction}{w}");
                    let recurrent = t
                        .get("recurrent_kernel")
                        .ok_or_else(|| ImportError::at(path, at, "no recurrent_kernel weight"))?;
                    let kernel_path = t
                        .get("kernel")
                        .ok_or_else(|| ImportError::at(path, at, "no kernel weight"))?;
                    let kernel = locator.read(
                        at,
                        kernel_path,
                        &what("kernel"),
                        &[width, rows],
                        &format!("{width} input features, {gates} gate(s) x {units} units"),
                    )?;
                    let recurrent_kernel = locator.read(
                        at,
                        recurrent,
                        &what("recurrent_kernel"),
                        &[units, rows],
                        &format!("{units} units, {gates} gate(s) x {units} units"),
                    )?;
                    let bias = match t.get("bias") {
                        None => None,
                        Some(b) => {
                            let (shape, why) = if spec.cell == (Cell::Gru { reset_after: true }) {
                                (
                                    vec![2, rows],
                                    format!(
                                        "GRU reset_after=True: input and recurrent bias, 3 \
                                             gates x {units} units"
                                    ),
                                )
                            } else {
                                (vec![rows], format!("{gates} gate(s) x {units} units"))
                            };
                            Some(locator.read(at, b, &what("bias"), &shape, &why)?)
                        }
                    };
                    Ok(KerasWeights {
                        kernel,
                        recurrent_kernel,
                        bias,
                    })
                };
                let (forward, backward) = match &weights.backward {
                    None => (read_direction(&weights.forward, "")?, None),
                    Some(b) => (
                        read_direction(&weights.forward, "forward ")?,
                        Some(read_direction(b, "backward ")?),
                    ),
                };
                builder
                    .recurrent(*spec, &forward, backward.as_ref())
                    .map_err(builder_error)?;
                width = match spec.bidirectional {
                    Some(Merge::Concat) => 2 * units,
                    _ => units,
                };
            }
            Kind::Dense {
                units, activation, ..
            } => {
                let units = *units;
                let kernel_path = weights
                    .forward
                    .get("kernel")
                    .ok_or_else(|| ImportError::at(path, at, "no kernel weight"))?;
                let kernel = locator.read(
                    at,
                    kernel_path,
                    "kernel",
                    &[width, units],
                    &format!("{width} input features, {units} units"),
                )?;
                let bias = match weights.forward.get("bias") {
                    None => None,
                    Some(b) => {
                        Some(locator.read(at, b, "bias", &[units], &format!("{units} units"))?)
                    }
                };
                builder
                    .dense(units, *activation, &kernel, bias.as_deref())
                    .map_err(builder_error)?;
                width = units;
            }
            Kind::Embedding { vocab, dim } => {
                let (vocab, dim) = (*vocab, *dim);
                let table_path = weights
                    .forward
                    .get("embeddings")
                    .ok_or_else(|| ImportError::at(path, at, "no embeddings weight"))?;
                let table = locator.read(
                    at,
                    table_path,
                    "embeddings",
                    &[vocab, dim],
                    &format!("input_dim {vocab}, output_dim {dim}"),
                )?;
                builder
                    .embedding(vocab, dim, &table)
                    .map_err(builder_error)?;
                width = dim;
            }
            Kind::Normalization { stats, scalar } => {
                let (mean, variance) = match stats {
                    Some((m, v)) => (m.clone(), v.clone()),
                    None => {
                        let (shape, why) = if *scalar {
                            (vec![], "axis=None: one mean and variance".to_string())
                        } else {
                            (vec![width], format!("{width} features"))
                        };
                        let read = |role: &str| -> Result<Vec<f32>, ImportError> {
                            let p = weights.forward.get(role).ok_or_else(|| {
                                ImportError::at(path, at, format!("no {role} weight"))
                            })?;
                            locator.read(at, p, role, &shape, &why)
                        };
                        (read("mean")?, read("variance")?)
                    }
                };
                // One value (axis=None, or a scalar given to the constructor) applies to
                // every feature, as Keras broadcasts it.
                let spread = |v: Vec<f32>, what: &str| -> Result<Vec<f32>, ImportError> {
                    match v.len() {
                        1 => Ok(vec![v[0]; width]),
                        n if n == width && !*scalar => Ok(v),
                        n => Err(ImportError::at(
                            path,
                            at,
                            format!(
                                "the {what} has {n} values; expected {} ({})",
                                if *scalar { 1 } else { width },
                                if *scalar {
                                    "axis=None: one for all features".to_string()
                                } else {
                                    format!("one per feature of the {width} features, or one")
                                }
                            ),
                        )),
                    }
                };
                let mean = spread(mean, "mean")?;
                let variance = spread(variance, "variance")?;
                builder
                    .normalization(&mean, &variance)
                    .map_err(builder_error)?;
            }
            Kind::RepeatVector { times } => {
                builder.repeat_vector(*times).map_err(builder_error)?;
            }
        }
    }
    let blob = builder
        .build()
        .map_err(|e| ImportError::file(path, format!("{e:#}")))?;
    Ok(Imported {
        blob,
        source,
        time_major_input: false,
        notes: plan.notes,
    })
}
