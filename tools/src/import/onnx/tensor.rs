//! Constant tensors and node attributes: `TensorProto` decoding with every declared size
//! checked against the bytes present (never allocating from a declared dimension), and typed
//! attribute access.
//!
//! Errors are plain strings; the interpreter attaches the node or initializer they concern.

use super::proto::{attribute_proto::AttributeType, tensor_proto::DataType, AttributeProto};
use super::proto::{NodeProto, TensorProto};
use super::{MAX_INT_VECTOR, MAX_RANK, MAX_TENSOR_ELEMENTS};

/// One element of an integer tensor: a known value, or the runtime size of axis `s` of the
/// graph input (`Shape` of an activation tensor), which the importer tracks symbolically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dim {
    Known(i64),
    Sym(u8),
}

impl Dim {
    pub(super) fn known(self) -> Option<i64> {
        match self {
            Dim::Known(v) => Some(v),
            Dim::Sym(_) => None,
        }
    }
}

/// A constant float tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Floats {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// An integer tensor of rank 0 (`scalar`, one element) or 1: shapes, indices, axes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Ints {
    pub scalar: bool,
    pub v: Vec<Dim>,
}

impl Ints {
    pub(super) fn known(values: Vec<i64>, scalar: bool) -> Self {
        Self {
            scalar,
            v: values.into_iter().map(Dim::Known).collect(),
        }
    }

    /// The values when all are known.
    pub(super) fn all_known(&self) -> Option<Vec<i64>> {
        self.v.iter().map(|d| d.known()).collect()
    }
}

/// A decoded constant.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Constant {
    Floats(Floats),
    Ints(Ints),
}

/// `product(dims)` as a checked element count within [`MAX_TENSOR_ELEMENTS`].
pub(super) fn element_count(dims: &[usize]) -> Result<usize, String> {
    let mut count = 1usize;
    for &d in dims {
        count = count
            .checked_mul(d)
            .filter(|&c| c <= MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| {
                format!(
                    "declares shape {dims:?}, above the limit of {MAX_TENSOR_ELEMENTS} elements"
                )
            })?;
    }
    Ok(count)
}

fn data_type_name(t: i32) -> String {
    DataType::try_from(t).map_or_else(|_| format!("type {t}"), |d| d.as_str_name().to_string())
}

/// Little-endian fixed-size elements from `raw_data`, after checking its length.
fn raw_elements<const N: usize, T>(
    raw: &[u8],
    count: usize,
    convert: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>, String> {
    let expected = count.saturating_mul(N);
    if raw.len() != expected {
        return Err(format!(
            "has {} bytes of raw data, but its shape needs {count} elements of {N} bytes ({expected} bytes)",
            raw.len()
        ));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            convert(b)
        })
        .collect())
}

fn typed_len_check(len: usize, count: usize, field: &str) -> Result<(), String> {
    if len == count {
        Ok(())
    } else {
        Err(format!(
            "has {len} values in {field}, but its shape needs {count}"
        ))
    }
}

/// Decodes a constant tensor (initializer or `Constant` value).
///
/// Floats (`FLOAT`, `DOUBLE` rounded to f32) of any rank up to [`MAX_RANK`]; integers and bools
/// of rank 0 or 1. Tensors in external files are refused: the importer reads one file.
pub(super) fn decode(t: &TensorProto) -> Result<Constant, String> {
    // ONNX IR: `data_location = EXTERNAL` (1) or `external_data` entries mean the values live
    // in another file, which this importer does not open.
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        let file = t
            .external_data
            .iter()
            .find(|e| e.key() == "location")
            .map_or("another file", |e| e.value());
        return Err(format!(
            "stores its values in external data ({file}); only self-contained .onnx files are supported: re-save the model with all tensors inside it (onnx.save_model(..., save_as_external_data=False))"
        ));
    }
    if t.segment.is_some() {
        return Err("is a segment of a larger tensor; segmented tensors are not supported".into());
    }
    if t.dims.len() > MAX_RANK {
        return Err(format!(
            "has rank {}, above the supported {MAX_RANK}",
            t.dims.len()
        ));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("has a negative dimension in {:?}", t.dims))
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let count = element_count(&dims)?;
    let raw = t.raw_data.as_deref();
    let dt = t.data_type.unwrap_or(0);
    let ints = |values: Vec<i64>| -> Result<Constant, String> {
        if dims.len() > 1 || values.len() > MAX_INT_VECTOR {
            return Err(format!(
                "is an integer tensor of shape {dims:?}; only integer scalars and vectors of up to {MAX_INT_VECTOR} elements (shapes, axes, indices) are supported"
            ));
        }
        Ok(Constant::Ints(Ints::known(values, dims.is_empty())))
    };
    match DataType::try_from(dt) {
        Ok(DataType::Float) => {
            let data = match raw {
                Some(raw) => raw_elements::<4, f32>(raw, count, f32::from_le_bytes)?,
                None => {
                    typed_len_check(t.float_data.len(), count, "float_data")?;
                    t.float_data.clone()
                }
            };
            Ok(Constant::Floats(Floats { shape: dims, data }))
        }
        Ok(DataType::Double) => {
            let data = match raw {
                Some(raw) => raw_elements::<8, f64>(raw, count, f64::from_le_bytes)?,
                None => {
                    typed_len_check(t.double_data.len(), count, "double_data")?;
                    t.double_data.clone()
                }
            };
            #[allow(clippy::cast_possible_truncation)] // rounding to f32 is the point
            let data = data.into_iter().map(|v| v as f32).collect();
            Ok(Constant::Floats(Floats { shape: dims, data }))
        }
        Ok(DataType::Int64) => ints(match raw {
            Some(raw) => raw_elements::<8, i64>(raw, count, i64::from_le_bytes)?,
            None => {
                typed_len_check(t.int64_data.len(), count, "int64_data")?;
                t.int64_data.clone()
            }
        }),
        Ok(DataType::Uint64 | DataType::Uint32) => {
            let values = match (raw, DataType::try_from(dt)) {
                (Some(raw), Ok(DataType::Uint32)) => {
                    raw_elements::<4, u64>(raw, count, |b| u64::from(u32::from_le_bytes(b)))?
                }
                (Some(raw), _) => raw_elements::<8, u64>(raw, count, u64::from_le_bytes)?,
                (None, _) => {
                    typed_len_check(t.uint64_data.len(), count, "uint64_data")?;
                    t.uint64_data.clone()
                }
            };
            ints(
                values
                    .into_iter()
                    .map(|v| i64::try_from(v).map_err(|_| format!("holds {v}, above i64")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Ok(
            d @ (DataType::Int32
            | DataType::Int16
            | DataType::Int8
            | DataType::Uint16
            | DataType::Uint8
            | DataType::Bool),
        ) => {
            // Small integer types are stored widened in `int32_data`, or packed in raw_data.
            let values = match raw {
                Some(raw) => match d {
                    DataType::Int32 => {
                        raw_elements::<4, i64>(raw, count, |b| i64::from(i32::from_le_bytes(b)))?
                    }
                    DataType::Int16 => {
                        raw_elements::<2, i64>(raw, count, |b| i64::from(i16::from_le_bytes(b)))?
                    }
                    DataType::Uint16 => {
                        raw_elements::<2, i64>(raw, count, |b| i64::from(u16::from_le_bytes(b)))?
                    }
                    DataType::Int8 => {
                        raw_elements::<1, i64>(raw, count, |b| i64::from(i8::from_le_bytes(b)))?
                    }
                    _ => raw_elements::<1, i64>(raw, count, |b| i64::from(b[0]))?,
                },
                None => {
                    typed_len_check(t.int32_data.len(), count, "int32_data")?;
                    t.int32_data.iter().map(|&v| i64::from(v)).collect()
                }
            };
            ints(values)
        }
        _ => Err(format!(
            "has element type {}; supported are float32, float64 (rounded to float32) and integer scalars/vectors",
            data_type_name(dt)
        )),
    }
}

/// The attribute `name` of `node`, if present.
pub(super) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

fn kind_error(a: &AttributeProto, want: &str) -> String {
    let have = AttributeType::try_from(a.r#type.unwrap_or(0)).map_or_else(
        |_| "an unknown type".to_string(),
        |t| t.as_str_name().to_string(),
    );
    format!("attribute '{}' should be {want}, but is {have}", a.name())
}

fn check_kind(a: &AttributeProto, kind: AttributeType, want: &str) -> Result<(), String> {
    if a.ref_attr_name.is_some() {
        return Err(format!(
            "attribute '{}' refers to a function attribute, which is invalid in a main graph",
            a.name()
        ));
    }
    match a.r#type {
        None => Ok(()),
        Some(t) if t == kind as i32 => Ok(()),
        Some(_) => Err(kind_error(a, want)),
    }
}

/// An `INT` attribute.
pub(super) fn attr_int(node: &NodeProto, name: &str) -> Result<Option<i64>, String> {
    let Some(a) = attr(node, name) else {
        return Ok(None);
    };
    check_kind(a, AttributeType::Int, "an int")?;
    a.i.map(Some).ok_or_else(|| kind_error(a, "an int"))
}

/// A `FLOAT` attribute.
pub(super) fn attr_float(node: &NodeProto, name: &str) -> Result<Option<f32>, String> {
    let Some(a) = attr(node, name) else {
        return Ok(None);
    };
    check_kind(a, AttributeType::Float, "a float")?;
    a.f.map(Some).ok_or_else(|| kind_error(a, "a float"))
}

/// A `STRING` attribute (UTF-8, lossy).
pub(super) fn attr_string(node: &NodeProto, name: &str) -> Result<Option<String>, String> {
    let Some(a) = attr(node, name) else {
        return Ok(None);
    };
    check_kind(a, AttributeType::String, "a string")?;
    a.s.as_deref()
        .map(|s| Some(String::from_utf8_lossy(s).into_owned()))
        .ok_or_else(|| kind_error(a, "a string"))
}

/// An `INTS` attribute.
pub(super) fn attr_ints(node: &NodeProto, name: &str) -> Result<Option<Vec<i64>>, String> {
    let Some(a) = attr(node, name) else {
        return Ok(None);
    };
    check_kind(a, AttributeType::Ints, "a list of ints")?;
    Ok(Some(a.ints.clone()))
}

/// A `FLOATS` attribute.
pub(super) fn attr_floats(node: &NodeProto, name: &str) -> Result<Option<Vec<f32>>, String> {
    let Some(a) = attr(node, name) else {
        return Ok(None);
    };
    check_kind(a, AttributeType::Floats, "a list of floats")?;
    Ok(Some(a.floats.clone()))
}

/// A `STRINGS` attribute (UTF-8, lossy).
pub(super) fn attr_strings(node: &NodeProto, name: &str) -> Result<Option<Vec<String>>, String> {
    let Some(a) = attr(node, name) else {
        return Ok(None);
    };
    check_kind(a, AttributeType::Strings, "a list of strings")?;
    Ok(Some(
        a.strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    ))
}

/// A `TENSOR` attribute.
pub(super) fn attr_tensor<'a>(
    node: &'a NodeProto,
    name: &str,
) -> Result<Option<&'a TensorProto>, String> {
    let Some(a) = attr(node, name) else {
        return Ok(None);
    };
    check_kind(a, AttributeType::Tensor, "a tensor")?;
    a.t.as_ref()
        .map(Some)
        .ok_or_else(|| kind_error(a, "a tensor"))
}

/// Row-major transpose of an arbitrary-rank tensor by `perm` (a checked permutation).
pub(super) fn transpose(t: &Floats, perm: &[usize]) -> Floats {
    let rank = t.shape.len();
    let shape: Vec<usize> = perm.iter().map(|&p| t.shape[p]).collect();
    let mut in_strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * t.shape[i + 1];
    }
    let mut data = Vec::with_capacity(t.data.len());
    let mut index = vec![0usize; rank];
    for _ in 0..t.data.len() {
        let src: usize = (0..rank).map(|k| index[k] * in_strides[perm[k]]).sum();
        data.push(t.data[src]);
        // Increment the output multi-index, last axis fastest.
        for k in (0..rank).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    Floats { shape, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_matches_by_hand() {
        let t = Floats {
            shape: vec![2, 3],
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        let r = transpose(&t, &[1, 0]);
        assert_eq!(r.shape, vec![3, 2]);
        assert_eq!(r.data, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn declared_sizes_are_checked_before_allocation() {
        let t = TensorProto {
            dims: vec![1 << 40, 1 << 40],
            data_type: Some(DataType::Float as i32),
            ..Default::default()
        };
        assert!(decode(&t).unwrap_err().contains("above the limit"));
        let t = TensorProto {
            dims: vec![3],
            data_type: Some(DataType::Float as i32),
            raw_data: Some(vec![0; 8]),
            ..Default::default()
        };
        assert!(decode(&t).unwrap_err().contains("8 bytes of raw data"));
    }
}
