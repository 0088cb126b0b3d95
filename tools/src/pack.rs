//! Weights pre-packed for the kernels, at export: a blob's recurrent int8 matrices rewritten
//! in a kernel layout (format version 3, see `edgernn::format`, "Pre-packed weights"), so
//! firmware reads them from flash in order and repacks nothing at boot.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context, Result};
use edgernn::format::{Blob, Layer, TensorRef, FLAG_INTERLEAVED4, WEIGHT_ALIGN};
use edgernn::kernels::{generic::interleave4, WeightLayout};

use crate::blob_file::AlignedBlob;
use crate::builder::write_blob_flags;

/// A weight layout the tools can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pack {
    /// Row-major (the format's default; the blob is written unchanged).
    RowMajor,
    /// [`WeightLayout::Interleaved4`].
    Interleaved4,
}

impl Pack {
    /// Parses an option value (`row-major` or `interleaved4`); `option` names the option in
    /// the error.
    ///
    /// # Errors
    /// An unknown value, naming the option and the values it takes.
    pub fn parse(option: &str, value: &str) -> Result<Self> {
        match value {
            "row-major" => Ok(Self::RowMajor),
            "interleaved4" => Ok(Self::Interleaved4),
            _ => bail!("{option} {value}: expected row-major or interleaved4"),
        }
    }

    /// The blob with this layout: `blob` unchanged for row-major (there is no unpacking: a
    /// packed blob stays packed), else [`pack_interleaved4`].
    ///
    /// # Errors
    /// As [`pack_interleaved4`].
    pub fn apply(self, blob: &[u8]) -> Result<Vec<u8>> {
        match self {
            Self::RowMajor => Ok(blob.to_vec()),
            Self::Interleaved4 => pack_interleaved4(blob),
        }
    }
}

/// The name `edgernn inspect` shows for a layout.
pub fn layout_name(layout: WeightLayout) -> &'static str {
    match layout {
        WeightLayout::RowMajor => "row-major",
        WeightLayout::Interleaved4 => "interleaved4",
        _ => "unknown",
    }
}

/// Rewrites a row-major integer blob with its recurrent layers' int8 kernel and recurrent
/// kernel matrices in [`WeightLayout::Interleaved4`]: every other tensor keeps its bytes, the
/// weight section is laid out again in the same order (each tensor at a 16-byte offset), and
/// the blob is written as format version 3 with [`FLAG_INTERLEAVED4`]. The result loads and
/// runs to the same bits as `blob`.
///
/// # Errors
/// A blob that does not load, is not in an integer mode, is packed already, or has a
/// recurrent layer whose units are not a multiple of 4 (named).
pub fn pack_interleaved4(blob: &[u8]) -> Result<Vec<u8>> {
    let aligned = AlignedBlob::from_bytes(blob);
    let checked = Blob::new_checked(aligned.bytes()).context("reading the blob")?;
    let info = checked.info();
    ensure!(
        info.mode.is_integer(),
        "--pack interleaved4: the blob is in {:?} mode; only the integer modes (int8, int16) have packed weights",
        info.mode
    );
    ensure!(
        info.layout == WeightLayout::RowMajor,
        "--pack interleaved4: the blob is packed already"
    );
    let mut header = checked.decode_header().context("decoding the header")?;
    let weights = checked.weights();
    // Each tensor's old bytes run from its offset to the next tensor's (or the end).
    let mut starts: Vec<u32> = Vec::new();
    let mut refs: Vec<(&mut TensorRef, Option<(usize, usize)>)> = Vec::new();
    for (index, layer) in header.layers.iter_mut().enumerate() {
        match layer {
            Layer::Recurrent(r) => {
                let units = r.units as usize;
                ensure!(
                    units.is_multiple_of(4),
                    "--pack interleaved4: layer {index} has {units} units; packed weights need a multiple of 4"
                );
                let rows = r.cell.gates() * units;
                for d in core::iter::once(&mut r.forward).chain(r.backward.as_mut()) {
                    let input_width = d.kernel.len as usize / rows.max(1);
                    refs.push((&mut d.kernel, Some((rows, input_width))));
                    refs.push((&mut d.recurrent_kernel, Some((rows, units))));
                    for t in [
                        &mut d.bias,
                        &mut d.recurrent_bias,
                        &mut d.kernel_scale,
                        &mut d.recurrent_scale,
                        &mut d.reset_scale,
                    ]
                    .into_iter()
                    .flatten()
                    {
                        refs.push((t, None));
                    }
                }
            }
            Layer::Dense(d) => {
                refs.push((&mut d.kernel, None));
                for t in [&mut d.bias, &mut d.kernel_scale].into_iter().flatten() {
                    refs.push((t, None));
                }
            }
            Layer::Normalization(n) => {
                refs.push((&mut n.mean, None));
                refs.push((&mut n.std, None));
            }
            Layer::Embedding(e) => refs.push((&mut e.table, None)),
            Layer::RepeatVector(_) => {}
        }
    }
    starts.extend(refs.iter().map(|(t, _)| t.offset));
    starts.sort_unstable();
    starts.dedup();
    let end_of = |offset: u32| -> usize {
        starts
            .iter()
            .find(|&&s| s > offset)
            .map_or(weights.len(), |&s| s as usize)
    };
    // New bytes per old offset, laid out in the old order.
    let mut by_offset: BTreeMap<u32, (Vec<u8>, Option<u32>)> = BTreeMap::new();
    for (t, matrix) in &refs {
        let start = t.offset as usize;
        let old = weights
            .get(start..end_of(t.offset))
            .context("a tensor outside the weight section")?;
        let (bytes, len) = match *matrix {
            Some((rows, cols)) => {
                ensure!(
                    rows * cols == t.len as usize,
                    "a {rows} x {cols} matrix with {} values",
                    t.len
                );
                let row_bytes = WeightLayout::Interleaved4.row_bytes(cols);
                let mut packed = vec![0u8; rows * row_bytes];
                let row_major = old.get(..rows * cols).context("a short matrix")?;
                ensure!(
                    interleave4(row_major, rows, cols, &mut packed),
                    "a {rows} x {cols} matrix that does not pack"
                );
                let len = u32::try_from(packed.len()).context("matrix too large")?;
                (packed, Some(len))
            }
            None => (old.to_vec(), None),
        };
        by_offset.entry(t.offset).or_insert((bytes, len));
    }
    let mut section = Vec::new();
    let mut moved = BTreeMap::new();
    for (old, (bytes, _)) in &by_offset {
        moved.insert(
            *old,
            u32::try_from(section.len()).context("blob too large")?,
        );
        section.extend_from_slice(bytes);
        section.resize(section.len().div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN, 0);
    }
    for (t, _) in refs {
        let (_, len) = &by_offset[&t.offset];
        if let Some(len) = len {
            t.len = *len;
        }
        t.offset = moved[&t.offset];
    }
    write_blob_flags(&header, &checked.extensions(), &section, FLAG_INTERLEAVED4)
}
