//! Finding and reading each layer's weights in an HDF5 file.
//!
//! Two layouts:
//!
//! - **Keras 3 `model.weights.h5`** (inside a `.keras` zip). Keras' `saving_lib` walks the
//!   model and names each layer of a model's layer list by its class in snake case, numbered
//!   per class in list order (`lstm`, `lstm_1`, `simple_rnn`, ...), not by the user's layer
//!   name. A layer's own variables are `<path>/vars/0, 1, ...` in creation order, and a
//!   sub-object's sit under the attribute holding it: `layers/lstm/cell/vars/{0,1,2}` (kernel,
//!   recurrent kernel, bias), `layers/bidirectional/forward_layer/cell/vars/...`,
//!   `layers/dense/vars/{0,1}`; a nested model adds `layers/<model>/layers/...`. Recent Keras
//!   versions also store the layer's name as the `name` attribute of `vars`, which is checked
//!   when present. Files written by Keras 2.13-2.15 use `_layer_checkpoint_dependencies`
//!   instead of `layers`.
//! - **Legacy `.h5`**: `model_weights/<layer name>` per top-level layer, whose `weight_names`
//!   attribute lists the dataset paths (relative to that group) in the layer's weight order,
//!   e.g. `lstm/lstm_cell/kernel:0` (Keras 2) or `model/lstm_0/lstm_cell/kernel` (Keras 3).
//!   Weights are matched by their last path component (`kernel`, `recurrent_kernel`, `bias`);
//!   inside a nested model, by the layer's name among the path components.
//!
//! Every dataset is checked against the shape the config implies and must be float32 before
//! it is read, so memory is bounded by the config (whose widths are bounded by
//! [`edgernn::MAX_WIDTH`]), not by what the file declares.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use hdf5_pure::{AttrValue, DType, File};

use super::super::ImportError;
use super::config::{Kind, PlannedLayer};

/// Largest chunk accepted when the dataset itself is smaller: chunk buffers are allocated from
/// the declared chunk shape, so a damaged file could otherwise ask for an absurd one.
const MAX_CHUNK_BYTES: u64 = 64 << 20;

/// Where a layout keeps its weights.
pub(super) enum Layout {
    /// Keras 3 `model.weights.h5`, with the container name of model layer lists.
    Keras3 { container: &'static str },
    /// Legacy `.h5` with `model_weights`.
    Legacy,
}

/// Dataset paths of one direction or layer by weight role (`kernel`, `recurrent_kernel`,
/// `bias`, `embeddings`, `mean`, `variance`, `count`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TensorPaths {
    pub paths: BTreeMap<&'static str, String>,
}

impl TensorPaths {
    pub fn get(&self, role: &str) -> Option<&str> {
        self.paths.get(role).map(String::as_str)
    }
}

/// Where one planned layer's weights are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Located {
    pub forward: TensorPaths,
    pub backward: Option<TensorPaths>,
}

/// Finds weights in one file, remembering which legacy weights were claimed so that leftovers
/// (a config that does not describe the weights) are caught.
pub(super) struct Locator<'a> {
    path: &'a Path,
    file: &'a File,
    layout: Layout,
    /// Legacy: `weight_names` per top-level group, and which of them were claimed.
    legacy: BTreeMap<String, (Vec<String>, Vec<bool>)>,
}

/// The last path component of a weight name without its `:0` suffix (Keras 2).
fn role(name: &str) -> &str {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split(':').next().unwrap_or(last)
}

/// Strings from a string attribute; an empty numeric array (what h5py writes for an empty
/// list) is an empty list.
fn strings(value: &AttrValue) -> Option<Vec<String>> {
    if let Some(s) = value.as_strings() {
        return Some(s.to_vec());
    }
    match value {
        AttrValue::F64Array(v) if v.is_empty() => Some(Vec::new()),
        AttrValue::F32Array(v) if v.is_empty() => Some(Vec::new()),
        AttrValue::I64Array(v) if v.is_empty() => Some(Vec::new()),
        _ => None,
    }
}

/// A list attribute, which Keras splits into `name0`, `name1`, ... when it does not fit in an
/// object header (`load_attributes_from_hdf5_group`).
fn list_attr(attrs: &HashMap<String, AttrValue>, name: &str) -> Option<Vec<String>> {
    if let Some(v) = attrs.get(name) {
        return strings(v);
    }
    let mut out = Vec::new();
    let mut found = false;
    for k in 0.. {
        match attrs.get(&format!("{name}{k}")) {
            Some(v) => {
                out.extend(strings(v)?);
                found = true;
            }
            None => break,
        }
    }
    found.then_some(out)
}

impl<'a> Locator<'a> {
    pub fn new(path: &'a Path, file: &'a File, layout: Layout) -> Self {
        Self {
            path,
            file,
            layout,
            legacy: BTreeMap::new(),
        }
    }

    fn err(&self, at: &str, message: impl Into<String>) -> ImportError {
        ImportError::at(self.path, at, message)
    }

    /// The dataset paths of a layer's weights.
    ///
    /// # Errors
    /// Missing or unexpected weights, and names that disagree with the config.
    pub fn locate(&mut self, layer: &PlannedLayer) -> Result<Located, ImportError> {
        match self.layout {
            Layout::Keras3 { container } => self.keras3(layer, container),
            Layout::Legacy => self.legacy(layer),
        }
    }

    fn keras3(&self, layer: &PlannedLayer, container: &str) -> Result<Located, ImportError> {
        let at = layer.location.as_str();
        let base = layer
            .generated_path
            .iter()
            .map(|name| format!("{container}/{name}"))
            .collect::<Vec<_>>()
            .join("/");
        let own_vars = format!("{base}/vars");
        // The stored name ties the generated path to this very layer. Keras writes it from
        // 3.x on; older files (and files without an empty `vars` group) go without the check.
        let stored = self
            .file
            .group(&own_vars)
            .and_then(|g| g.attrs())
            .ok()
            .and_then(|a| a.get("name").and_then(|v| v.as_str().map(str::to_string)));
        if let Some(stored) = stored {
            if stored != layer.name {
                return Err(self.err(
                    at,
                    format!(
                        "model.weights.h5 keeps the weights of layer '{stored}' at '{base}', \
                         where this layer's belong: the weights file does not match config.json"
                    ),
                ));
            }
        }
        let expect = |vars: &str, names: &[&'static str]| -> Result<TensorPaths, ImportError> {
            let group = self.file.group(vars).map_err(|e| {
                self.err(
                    at,
                    format!(
                        "model.weights.h5 has no group '{vars}' for this layer ({e}): the weights \
                         file does not match config.json"
                    ),
                )
            })?;
            let found: BTreeSet<String> = group
                .datasets()
                .map_err(|e| self.err(at, format!("cannot list '{vars}': {e}")))?
                .into_iter()
                .collect();
            let wanted: BTreeSet<String> = (0..names.len()).map(|i| i.to_string()).collect();
            if found != wanted {
                let found: Vec<&str> = found.iter().map(String::as_str).collect();
                let expected = if names.is_empty() {
                    "none (the layer config gives the layer no weights)".to_string()
                } else {
                    format!(
                        "{} ({}) from the layer config",
                        names.len(),
                        names.join(", ")
                    )
                };
                return Err(self.err(
                    at,
                    format!(
                        "'{vars}' holds variables [{}], expected {expected}",
                        found.join(", "),
                    ),
                ));
            }
            Ok(TensorPaths {
                paths: names
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| (n, format!("{vars}/{i}")))
                    .collect(),
            })
        };
        let single = |forward| {
            Ok(Located {
                forward,
                backward: None,
            })
        };
        match &layer.kind {
            Kind::Dense {
                use_bias,
                wrapped: false,
                ..
            } => single(expect(&own_vars, dense_roles(*use_bias))?),
            Kind::Dense {
                use_bias,
                wrapped: true,
                ..
            } => single(expect(
                &format!("{base}/layer/vars"),
                dense_roles(*use_bias),
            )?),
            Kind::Embedding { .. } => single(expect(&own_vars, &["embeddings"])?),
            kind @ (Kind::Normalization { .. } | Kind::RepeatVector { .. }) => {
                if kind.has_weights() {
                    return single(expect(&own_vars, &NORMALIZATION_ROLES)?);
                }
                // No variables: the group is absent or empty.
                if self.file.group(&own_vars).is_ok() {
                    expect(&own_vars, &[])?;
                }
                single(TensorPaths::default())
            }
            Kind::Recurrent {
                use_bias,
                inner_names: None,
                ..
            } => Ok(Located {
                forward: expect(&format!("{base}/cell/vars"), recurrent_roles(*use_bias))?,
                backward: None,
            }),
            Kind::Recurrent {
                use_bias,
                inner_names: Some(_),
                ..
            } => Ok(Located {
                forward: expect(
                    &format!("{base}/forward_layer/cell/vars"),
                    recurrent_roles(*use_bias),
                )?,
                backward: Some(expect(
                    &format!("{base}/backward_layer/cell/vars"),
                    recurrent_roles(*use_bias),
                )?),
            }),
        }
    }

    /// Loads `weight_names` of a legacy top-level group once.
    fn legacy_names(&mut self, group: &str, at: &str) -> Result<(), ImportError> {
        if self.legacy.contains_key(group) {
            return Ok(());
        }
        let full = format!("model_weights/{group}");
        let attrs = self
            .file
            .group(&full)
            .and_then(|g| g.attrs())
            .map_err(|e| self.err(at, format!("the file has no weights group '{full}' ({e})")))?;
        let names = list_attr(&attrs, "weight_names").ok_or_else(|| {
            self.err(
                at,
                format!("'{full}' has no readable 'weight_names' attribute"),
            )
        })?;
        let claimed = vec![false; names.len()];
        self.legacy.insert(group.to_string(), (names, claimed));
        Ok(())
    }

    fn legacy(&mut self, layer: &PlannedLayer) -> Result<Located, ImportError> {
        let at = layer.location.clone();
        if !layer.kind.has_weights() {
            return Ok(Located {
                forward: TensorPaths::default(),
                backward: None,
            });
        }
        self.legacy_names(&layer.legacy_group, &at)?;
        let (names, claimed) = &self.legacy[&layer.legacy_group];
        // Unclaimed weights of this layer: the whole group, or inside a nested model those
        // whose path names the layer.
        let mine: Vec<usize> = (0..names.len())
            .filter(|&i| !claimed[i])
            .filter(|&i| !layer.nested || names[i].split('/').any(|c| c == layer.name))
            .collect();
        let prefix = format!("model_weights/{}", layer.legacy_group);
        let single_roles: Option<&[&'static str]> = match &layer.kind {
            Kind::Dense { use_bias, .. } => Some(dense_roles(*use_bias)),
            Kind::Embedding { .. } => Some(&["embeddings"]),
            Kind::Normalization { .. } | Kind::RepeatVector { .. } => Some(&NORMALIZATION_ROLES),
            Kind::Recurrent { .. } => None,
        };
        let (located, used) = match &layer.kind {
            Kind::Dense { .. }
            | Kind::Embedding { .. }
            | Kind::Normalization { .. }
            | Kind::RepeatVector { .. } => {
                let roles = single_roles.unwrap_or_default();
                let t = self.by_role(&at, &prefix, names, &mine, roles)?;
                (
                    Located {
                        forward: t,
                        backward: None,
                    },
                    mine,
                )
            }
            Kind::Recurrent {
                use_bias,
                inner_names: None,
                ..
            } => {
                let t = self.by_role(&at, &prefix, names, &mine, recurrent_roles(*use_bias))?;
                (
                    Located {
                        forward: t,
                        backward: None,
                    },
                    mine,
                )
            }
            Kind::Recurrent {
                use_bias,
                inner_names: Some((forward_name, backward_name)),
                ..
            } => {
                let (fwd, bwd) = split_directions(names, &mine, forward_name, backward_name);
                let roles = recurrent_roles(*use_bias);
                let forward = self.by_role(&at, &prefix, names, &fwd, roles)?;
                let backward = self.by_role(&at, &prefix, names, &bwd, roles)?;
                (
                    Located {
                        forward,
                        backward: Some(backward),
                    },
                    mine,
                )
            }
        };
        let entry = self
            .legacy
            .get_mut(&layer.legacy_group)
            .expect("loaded above");
        for i in used {
            entry.1[i] = true;
        }
        Ok(located)
    }

    /// Assigns `indices` of `names` to the roles, each exactly once.
    fn by_role(
        &self,
        at: &str,
        prefix: &str,
        names: &[String],
        indices: &[usize],
        roles: &[&'static str],
    ) -> Result<TensorPaths, ImportError> {
        let mut found: HashMap<&str, &str> = HashMap::new();
        for &i in indices {
            let r = role(&names[i]);
            if !roles.contains(&r) {
                return Err(self.err(
                    at,
                    format!(
                        "unexpected weight '{}' in '{prefix}'; expected {} from the layer config",
                        names[i],
                        roles.join(", ")
                    ),
                ));
            }
            if found.insert(r, &names[i]).is_some() {
                return Err(self.err(
                    at,
                    format!("two weights named '{r}' in '{prefix}' for this layer"),
                ));
            }
        }
        let missing: Vec<&str> = roles
            .iter()
            .copied()
            .filter(|r| !found.contains_key(r))
            .collect();
        if !missing.is_empty() {
            return Err(self.err(
                at,
                format!(
                    "'{prefix}' has no {} weight for this layer (expected {} from the layer \
                     config)",
                    missing.join(", "),
                    roles.join(", ")
                ),
            ));
        }
        Ok(TensorPaths {
            paths: roles
                .iter()
                .filter_map(|&r| found.get(r).map(|n| (r, format!("{prefix}/{n}"))))
                .collect(),
        })
    }

    /// Legacy files: every weight listed for a layer must have been claimed by the config, and
    /// every layer group holding weights must belong to the config.
    ///
    /// # Errors
    /// Weights the config does not account for.
    pub fn finish(&self) -> Result<(), ImportError> {
        if !matches!(self.layout, Layout::Legacy) {
            return Ok(());
        }
        for (group, (names, claimed)) in &self.legacy {
            if let Some(i) = (0..names.len()).find(|&i| !claimed[i]) {
                return Err(ImportError::file(
                    self.path,
                    format!(
                        "weight '{}' in 'model_weights/{group}' belongs to no layer of the model \
                         config: the weights do not match the config",
                        names[i]
                    ),
                ));
            }
        }
        let listed = self
            .file
            .group("model_weights")
            .and_then(|g| g.attrs())
            .ok()
            .and_then(|a| list_attr(&a, "layer_names"))
            .unwrap_or_default();
        for group in listed {
            if self.legacy.contains_key(&group) {
                continue;
            }
            let has_weights = self
                .file
                .group(&format!("model_weights/{group}"))
                .and_then(|g| g.attrs())
                .ok()
                .and_then(|a| list_attr(&a, "weight_names"))
                .is_some_and(|w| !w.is_empty());
            if has_weights {
                return Err(ImportError::file(
                    self.path,
                    format!(
                        "the file holds weights for a layer '{group}' that the model config does \
                         not use: the weights do not match the config"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The first dimension of a dataset (a kernel's input width), to size the model's input
    /// when the config does not declare it.
    pub fn rows(&self, dataset: &str) -> Option<usize> {
        let shape = self.file.dataset(dataset).ok()?.shape().ok()?;
        usize::try_from(*shape.first()?).ok()
    }

    /// Reads a float32 dataset of exactly `expected` shape. `what` names the weight in
    /// messages (`kernel`, `backward recurrent_kernel`, ...), `why` explains the shape.
    ///
    /// # Errors
    /// A missing dataset, another shape or element type, or unreadable data.
    pub fn read(
        &self,
        at: &str,
        dataset: &str,
        what: &str,
        expected: &[usize],
        why: &str,
    ) -> Result<Vec<f32>, ImportError> {
        let ds = self.file.dataset(dataset).map_err(|e| {
            self.err(
                at,
                format!("weight '{what}' ('{dataset}') cannot be opened: {e}"),
            )
        })?;
        let shape = ds
            .shape()
            .map_err(|e| self.err(at, format!("weight '{what}' ('{dataset}'): {e}")))?;
        let fits = shape.len() == expected.len()
            && shape
                .iter()
                .zip(expected)
                .all(|(&s, &e)| u64::try_from(e).is_ok_and(|e| e == s));
        if !fits {
            return Err(self.err(
                at,
                format!(
                    "weight '{what}' ('{dataset}') has shape {shape:?}, expected {expected:?} \
                     ({why})"
                ),
            ));
        }
        let dtype = ds
            .dtype()
            .map_err(|e| self.err(at, format!("weight '{what}' ('{dataset}'): {e}")))?;
        if dtype != DType::F32 || ds.element_size().ok() != Some(4) {
            return Err(self.err(
                at,
                format!(
                    "weight '{what}' ('{dataset}') is stored as {dtype}; only float32 weights \
                     are supported"
                ),
            ));
        }
        let count: usize = expected.iter().product();
        if let Ok(Some(chunk)) = ds.chunk_shape() {
            let bytes = chunk
                .iter()
                .try_fold(4u64, |acc, &d| acc.checked_mul(d))
                .unwrap_or(u64::MAX);
            if bytes > MAX_CHUNK_BYTES.max(4 * count as u64) {
                return Err(self.err(
                    at,
                    format!(
                        "weight '{what}' ('{dataset}') declares chunks of {chunk:?}, far larger \
                         than the data: the file is damaged"
                    ),
                ));
            }
        }
        let values = ds
            .read_f32()
            .map_err(|e| self.err(at, format!("weight '{what}' ('{dataset}'): {e}")))?;
        if values.len() != count {
            return Err(self.err(
                at,
                format!(
                    "weight '{what}' ('{dataset}') holds {} values, expected {count}",
                    values.len()
                ),
            ));
        }
        Ok(values)
    }
}

/// The variables of an adapted `Normalization`, in creation order.
const NORMALIZATION_ROLES: [&str; 3] = ["mean", "variance", "count"];

fn dense_roles(use_bias: bool) -> &'static [&'static str] {
    if use_bias {
        &["kernel", "bias"]
    } else {
        &["kernel"]
    }
}

fn recurrent_roles(use_bias: bool) -> &'static [&'static str] {
    if use_bias {
        &["kernel", "recurrent_kernel", "bias"]
    } else {
        &["kernel", "recurrent_kernel"]
    }
}

/// Splits a legacy Bidirectional layer's weights into directions: by the inner layers' names
/// among the path components when they tell every weight apart (Keras 2 names the forward layer
/// `forward_<name>` while its config keeps `<name>`), else by position, forward first, which is
/// the order of the layer's weights.
fn split_directions(
    names: &[String],
    indices: &[usize],
    forward_name: &str,
    backward_name: &Option<String>,
) -> (Vec<usize>, Vec<usize>) {
    let base = forward_name
        .strip_prefix("forward_")
        .unwrap_or(forward_name);
    let forward_names = [forward_name.to_string(), format!("forward_{base}")];
    let backward_names = [
        backward_name
            .clone()
            .unwrap_or_else(|| format!("backward_{base}")),
        format!("backward_{base}"),
    ];
    let has = |i: usize, set: &[String]| names[i].split('/').any(|c| set.iter().any(|s| s == c));
    let fwd: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| has(i, &forward_names) && !has(i, &backward_names))
        .collect();
    let bwd: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| has(i, &backward_names) && !has(i, &forward_names))
        .collect();
    if fwd.len() + bwd.len() == indices.len() {
        (fwd, bwd)
    } else {
        let half = indices.len() / 2;
        (indices[..half].to_vec(), indices[half..].to_vec())
    }
}
