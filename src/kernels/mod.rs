//! Hot-path kernels: matrix-vector products over weights read in place from the blob.
//!
//! `generic` is the reference and always compiles. Per-architecture kernels (later) live in
//! `kernels/<arch>/<isa>` and override entries of the dispatch below; they are the only place
//! `unsafe` is allowed.

pub mod generic;

/// A read-only view of little-endian f32 values inside a blob, never copied to RAM.
///
/// Reading through `from_le_bytes` keeps the core free of `unsafe` and correct on any
/// endianness; on little-endian targets it compiles to plain loads.
#[derive(Debug, Clone, Copy, Default)]
pub struct F32View<'a> {
    bytes: &'a [u8],
}

impl<'a> F32View<'a> {
    /// A view over `bytes`; a trailing partial value (length not a multiple of 4) is ignored.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Number of f32 values.
    pub const fn len(&self) -> usize {
        self.bytes.len() / 4
    }

    /// True when the view holds no values.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<f32> {
        let at = index.checked_mul(4)?;
        match self.bytes.get(at..at.checked_add(4)?) {
            Some(&[a, b, c, d]) => Some(f32::from_le_bytes([a, b, c, d])),
            _ => None,
        }
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = f32> + 'a {
        self.bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The sub-view of `len` values starting at value `start`, or `None` if out of range.
    pub fn slice(&self, start: usize, len: usize) -> Option<Self> {
        let from = start.checked_mul(4)?;
        let to = from.checked_add(len.checked_mul(4)?)?;
        Some(Self::new(self.bytes.get(from..to)?))
    }

    /// The raw little-endian bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// `y += W x` for `W` with `y.len()` rows and `x.len()` columns, row-major.
///
/// Rows beyond the view are left untouched; the loader guarantees the view holds exactly
/// `rows * cols` values, so this never happens for a loaded model.
#[inline]
pub fn matvec_acc_f32(w: F32View<'_>, x: &[f32], y: &mut [f32]) {
    generic::matvec_acc_f32(w, x, y);
}

/// `y = b` (or zeros without a bias), the start of every affine map.
#[inline]
pub fn init_bias(bias: Option<F32View<'_>>, y: &mut [f32]) {
    match bias {
        Some(b) => {
            for (dst, v) in y.iter_mut().zip(b.iter()) {
                *dst = v;
            }
        }
        None => y.fill(0.0),
    }
}
