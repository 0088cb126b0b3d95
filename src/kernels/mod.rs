//! Hot-path kernels: matrix-vector products over weights read in place from the blob.
//!
//! # Dispatch
//!
//! A [`Kernels`] table names one implementation of every kernel. [`GENERIC`] is complete and
//! always compiles (`generic/`, the reference every other kernel is tested against);
//! per-architecture modules (`<arch>/<isa>/`, e.g. `x86_64/avx2/`, `x86_64/avx512/`,
//! `aarch64/neon/`) build a table that starts from it (or from a lesser ISA's table) and
//! overrides entries. [`active`] picks the best table the CPU can run (on x86_64: `avx512vnni`,
//! `avx512`, `avx2`, in that order):
//!
//! * with the `std` feature (host tools), by runtime detection (`is_x86_feature_detected!`),
//!   done once and cached in an atomic;
//! * without it (MCUs, `no_std` binaries), at compile time from `cfg!(target_feature = ...)`:
//!   build with `-C target-feature=+avx2,+fma` (or `-C target-cpu=native`) to get AVX2, and
//!   `+avx512f,+avx512bw,+avx512vl` (`+avx512vnni`) on top for the AVX-512 tables.
//!
//! A table for an ISA is only ever handed out after that check, so a kernel value exists only
//! on a CPU that can run it. The arch modules are the only place `unsafe` is allowed.
//!
//! # Numerics
//!
//! Integer kernels are exact (64-bit sums, or 32-bit partial sums bounded so they cannot
//! overflow), so every kernel gives the same bits. Float kernels may sum in a different order
//! than the generic one (SIMD lanes, then a fixed reduction tree); their results differ from the
//! generic kernel's by rounding only (the conformance suite states the bound). One process
//! always runs one table, so [`crate::Model::step`] and the sequence call still agree bit for
//! bit.

pub mod generic;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub mod x86_64;

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
#[allow(unsafe_code)]
pub mod aarch64;

#[cfg(target_arch = "arm")]
#[allow(unsafe_code)]
pub mod arm;

#[cfg(test)]
mod tests;

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
            .as_chunks::<4>()
            .0
            .iter()
            .map(|c| f32::from_le_bytes(*c))
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

/// A read-only view of little-endian i32 values inside a blob.
#[derive(Debug, Clone, Copy, Default)]
pub struct I32View<'a> {
    bytes: &'a [u8],
}

impl<'a> I32View<'a> {
    /// A view over `bytes`; a trailing partial value is ignored.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Number of values.
    pub const fn len(&self) -> usize {
        self.bytes.len() / 4
    }

    /// True when the view holds no values.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = i32> + 'a {
        self.bytes
            .as_chunks::<4>()
            .0
            .iter()
            .map(|c| i32::from_le_bytes(*c))
    }

    /// The raw little-endian bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The view without its first `count` values (empty past the end).
    pub fn skip(&self, count: usize) -> Self {
        let from = count.saturating_mul(4).min(self.bytes.len());
        Self::new(self.bytes.get(from..).unwrap_or(&[]))
    }

    /// The value at `index`, or 0 past the end (the loader checks every length). Inlined
    /// unless size comes first: the generic projection reads a bias and a requantizer per row
    /// through it, and a call per read was a sixth of a RISC-V step (esp32c3).
    #[cfg_attr(not(feature = "small"), inline(always))]
    pub fn get_or_zero(&self, index: usize) -> i32 {
        let at = index.saturating_mul(4);
        match self.bytes.get(at..at.saturating_add(4)) {
            Some(&[a, b, c, d]) => i32::from_le_bytes([a, b, c, d]),
            _ => 0,
        }
    }
}

/// Per-row requantizers, one packed `i32` each ([`crate::quant::Requant::pack`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequantView<'a> {
    values: I32View<'a>,
}

impl<'a> RequantView<'a> {
    /// A view over `rows` packed i32 values.
    pub const fn new(values: I32View<'a>) -> Self {
        Self { values }
    }

    /// Number of rows.
    pub const fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the view holds no rows.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The view without its first `count` rows.
    pub fn skip(&self, count: usize) -> Self {
        Self::new(self.values.skip(count))
    }

    /// The packed values.
    pub const fn values(&self) -> I32View<'a> {
        self.values
    }

    /// The requantizer of `row` (zero factor past the end).
    pub fn get(&self, row: usize) -> crate::quant::Requant {
        crate::quant::Requant::unpack(self.values.get_or_zero(row))
    }

    /// The requantizers in row order.
    pub fn iter(&self) -> impl Iterator<Item = crate::quant::Requant> + 'a {
        let values = self.values;
        (0..self.len()).map(move |r| Self { values }.get(r))
    }
}

/// How the rows of an int8 weight matrix of the integer projections are stored (see the
/// format docs, "Pre-packed weights").
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WeightLayout {
    /// One row after another, `cols` bytes each.
    #[default]
    RowMajor,
    /// Blocks of 4 rows, each block's rows interleaved 4 bytes (columns) at a time over
    /// `cols` rounded up to a multiple of 4 (zero padding): a block's four words of a column
    /// group are consecutive, one `ldm` on a Cortex-M4.
    Interleaved4,
}

impl WeightLayout {
    /// [`WeightLayout::Interleaved4`] when `I4`, else row-major: for code generic over the
    /// layout, so each instance has its layout as a constant.
    #[inline(always)]
    pub(crate) const fn of<const I4: bool>() -> Self {
        if I4 {
            Self::Interleaved4
        } else {
            Self::RowMajor
        }
    }

    /// Bytes per row of a matrix with `cols` columns (a block of 4 interleaved rows takes 4
    /// times this): where row `r` (a multiple of 4 when interleaved) starts is `r` times it.
    #[inline]
    pub const fn row_bytes(self, cols: usize) -> usize {
        match self {
            Self::RowMajor => cols,
            Self::Interleaved4 => cols.div_ceil(4) * 4,
        }
    }

    /// Rows a view may start at: any row-major one, block starts when interleaved.
    #[inline]
    pub const fn can_start_at(self, row: usize) -> bool {
        match self {
            Self::RowMajor => true,
            Self::Interleaved4 => row.is_multiple_of(4),
        }
    }
}

/// Consecutive rows of an integer projection: int8 weights (`cols` per row, row-major for
/// [`Kernels::project_i8`], [`WeightLayout::Interleaved4`] from a block start for
/// [`Kernels::project_i8_interleaved4`]) with each row's i32 bias and requantizer, all
/// starting at the same row. (The layout is the entry's, not a field: the row-major kernels
/// then test nothing per call, and their views stay as small.)
#[derive(Debug, Clone, Copy, Default)]
pub struct RowsI8<'a> {
    /// The `i8` weights, from the first row's on.
    pub weights: &'a [u8],
    /// One bias per row (0 past the end).
    pub bias: I32View<'a>,
    /// One requantizer per row (zero factor past the end).
    pub requant: RequantView<'a>,
}

/// One side of a paired projection ([`Kernels::project_pair_i8`]): the rows, and `cols` codes
/// packed by the same table's [`Kernels::pack_i16`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ProjectionI8<'a> {
    /// The rows, starting at the first output's.
    pub rows: RowsI8<'a>,
    /// The packed codes.
    pub packed: &'a [i32],
    /// Columns (codes) per row.
    pub cols: usize,
}

impl<'a> ProjectionI8<'a> {
    /// The projection without its first `rows` rows (no rows past the end), row-major.
    #[inline]
    pub fn skip(&self, rows: usize) -> Self {
        Self {
            rows: self.rows_from(rows),
            ..*self
        }
    }

    /// The rows from row `first` on (none past the end), row-major.
    #[inline]
    pub(crate) fn rows_from(&self, first: usize) -> RowsI8<'a> {
        self.rows_from_in(WeightLayout::RowMajor, first)
    }

    /// The rows from row `first` on of weights stored in `layout` (none past the end, or,
    /// interleaved, for a `first` that does not start a block: the loader makes every row a
    /// cell starts at one).
    #[inline(always)]
    pub(crate) fn rows_from_in(&self, layout: WeightLayout, first: usize) -> RowsI8<'a> {
        let row_bytes = layout.row_bytes(self.cols);
        // Factors below 2^16 cannot overflow (a cell's always are): a checked multiply would
        // cost a 64-bit product, a library call on Cortex-M0, per call.
        let small = (first | row_bytes) >> (usize::BITS / 2) == 0;
        let at = if !layout.can_start_at(first) {
            None
        } else if small {
            Some(first * row_bytes)
        } else {
            first.checked_mul(row_bytes)
        };
        RowsI8 {
            weights: at.and_then(|at| self.rows.weights.get(at..)).unwrap_or(&[]),
            bias: self.rows.bias.skip(first),
            requant: self.rows.requant.skip(first),
        }
    }
}

/// Words [`Kernels::pack_i16`] fills for `cols` codes: two i16 codes per `i32` word.
pub const fn packed_len(cols: usize) -> usize {
    cols.div_ceil(2)
}

/// The pre-activations (Q3.12, any i32) of the four gates of a block of LSTM units, in the
/// order i, f, c, o.
pub type LstmGates<'a> = [&'a [i32]; 4];

/// What [`Kernels::lstm_units_i8`] needs besides the values: the cell state's format and the
/// map from a Q0.15 output to its `h` code, `clamp(zero + requant(v), lo, hi)`.
#[derive(Debug, Clone, Copy)]
pub struct LstmParams {
    /// Fractional bits of the cell state codes (more than 15 act as 15).
    pub cell_frac: u8,
    /// From a Q0.15 value to its `h` code.
    pub codes: CodeParams,
}

/// The map from a Q0.15 value to an output code, `clamp(zero + requant(v), lo, hi)` (`lo`
/// wins if the bounds cross): what the integer cells' output codes are.
#[derive(Debug, Clone, Copy)]
pub struct CodeParams {
    /// From Q0.15 to codes.
    pub requant: crate::quant::Requant,
    /// Zero point of the codes.
    pub zero: i32,
    /// Code range.
    pub lo: i32,
    pub hi: i32,
}

/// The pre-activation parts of a block of GRU units (`reset_after = true`), each any `i32`:
/// the update gate `z`, the reset gate `r` (both `W x + U h`), and the candidate's input
/// side `cand_x` and recurrent side `cand_h` (`r` scales the latter).
#[derive(Debug, Clone, Copy)]
pub struct GruGates<'a> {
    pub z: &'a [i32],
    pub r: &'a [i32],
    pub cand_x: &'a [i32],
    pub cand_h: &'a [i32],
}

/// A table's [`Kernels::gru_units_i8`]: `(gates, h, h_to_q15, codes)`.
pub type GruUnitsI8 = fn(&GruGates<'_>, &mut [i32], crate::quant::Requant, &CodeParams) -> bool;

/// A table's [`Kernels::activate_codes_i8`]: `(activation, pre, h, codes)`.
pub type ActivateCodesI8 = fn(crate::format::Activation, &[i32], &mut [i32], &CodeParams) -> bool;

/// A weight matrix of the float paths: f32, or int8 with one f32 scale per row.
#[derive(Debug, Clone, Copy)]
pub enum Matrix<'a> {
    /// Row-major f32.
    F32(F32View<'a>),
    /// Row-major int8 (`weights` bytes are `i8`) with `scales[row]`.
    I8 {
        weights: &'a [u8],
        scales: F32View<'a>,
    },
}

impl Default for Matrix<'_> {
    fn default() -> Self {
        Self::F32(F32View::default())
    }
}

impl<'a> Matrix<'a> {
    /// Rows `start..start + rows` of a matrix with `cols` columns, or `None` out of range.
    pub fn rows(&self, start: usize, rows: usize, cols: usize) -> Option<Self> {
        match *self {
            Self::F32(w) => w
                .slice(start.checked_mul(cols)?, rows.checked_mul(cols)?)
                .map(Self::F32),
            Self::I8 { weights, scales } => {
                let from = start.checked_mul(cols)?;
                let to = from.checked_add(rows.checked_mul(cols)?)?;
                Some(Self::I8 {
                    weights: weights.get(from..to)?,
                    scales: scales.slice(start, rows)?,
                })
            }
        }
    }

    /// Number of weight values.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(w) => w.len(),
            Self::I8 { weights, .. } => weights.len(),
        }
    }

    /// True when the matrix holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A table's [`Kernels::project_pair_i8`]: `(x, h, first_row, out)`.
pub type ProjectPairI8 = fn(&ProjectionI8<'_>, &ProjectionI8<'_>, usize, &mut [i32]);

/// A table's [`Kernels::project_split_i8`]: `(x, h, first_row, out_x, out_h)`.
pub type ProjectSplitI8 = fn(&ProjectionI8<'_>, &ProjectionI8<'_>, usize, &mut [i32], &mut [i32]);

/// One implementation of every kernel: [`GENERIC`], or an ISA's table that overrides some of
/// its entries. Obtain the one to run with [`active`].
#[derive(Clone, Copy)]
pub struct Kernels {
    /// Short name for reports and tests (`"generic"`, `"avx2"`, ...).
    pub name: &'static str,
    /// `y[r] += sum_c W[r, c] * x[c]` for `y.len()` rows of `x.len()` columns of little-endian
    /// f32 (see [`generic::matvec_acc_f32`]).
    pub matvec_f32: fn(F32View<'_>, &[f32], &mut [f32]),
    /// `y[r] += scale[r] * sum_c W[r, c] * x[c]` with int8 `W` (see [`generic::matvec_acc_i8w`]).
    pub matvec_i8w: fn(&[u8], F32View<'_>, &[f32], &mut [f32]),
    /// `out[r] = sum_c W[r, c] * x[c]`, int8 `W` and integer codes, exact (see
    /// [`generic::dot_rows_i8`]).
    pub dot_rows_i8: fn(&[u8], &[i32], &mut [i64]),
    /// An element-wise activation in place (never softmax; see [`generic::activate`]).
    pub activate: fn(crate::format::Activation, &mut [f32]),
    /// Packs integer codes for [`Kernels::project_i8`] of the same table: each saturated to
    /// i16, two per word, in an order the table chooses ([`generic::pack_i16`]: natural).
    /// `packed` needs [`packed_len`] words.
    pub pack_i16: fn(&[i32], &mut [i32]),
    /// The integer cells' projection: `out[k] (+)= requant[k](bias[k] + W[k] . x)`, saturated
    /// to i32, over `cols` columns of codes packed by this table's `pack_i16`, exact (see
    /// [`generic::project_i8`]).
    pub project_i8: fn(&RowsI8<'_>, &[i32], usize, &mut [i32], bool),
    /// Two projections into the same outputs, the recurrent cells' `W x + U h`: `out[k]` from
    /// rows `first_row + k` of both sides, exactly what [`project_pair_with`] defines (the
    /// table's `project_i8` of the `x` side, then, accumulated, of the `h` side). `None` (the
    /// generic table's) makes those two calls, so a table that only overrides `project_i8`
    /// keeps its speed; a table sets it to do both sides of a block of rows in one pass. The
    /// row offset lets a cell build both views once per step. (An `Option` rather than a
    /// default that takes the table: passing a table's address at run time would keep all of
    /// it, float kernels included, in every firmware.)
    pub project_pair_i8: Option<ProjectPairI8>,
    /// Two projections of the same rows into separate outputs, the GRU candidate's `W x` and
    /// `U h` (the reset gate scales the latter alone): exactly what [`project_split_with`]
    /// defines (the table's `project_i8` of rows `first_row..` of the `x` side into `out_x`,
    /// then of the `h` side into `out_h`). `None` makes those two calls; a table sets it to
    /// compute both sides of a block of rows in one pass, one call's overhead per step.
    pub project_split_i8: Option<ProjectSplitI8>,
    /// [`Kernels::project_i8`] of rows stored [`WeightLayout::Interleaved4`] (the view starts
    /// at a block of 4 rows), the same bits as `project_i8` of their row-major twin, over codes
    /// packed by this table's `pack_i16` (see [`generic::project_i8_interleaved4`]). The paired
    /// call of that layout is two of these ([`project_pair_interleaved4_with`]).
    pub project_i8_interleaved4: fn(&RowsI8<'_>, &[i32], usize, &mut [i32], bool),
    /// [`Kernels::project_pair_i8`] of rows stored [`WeightLayout::Interleaved4`] (`first_row`
    /// a block start): exactly its `project_i8_interleaved4` of the `x` side, then, accumulated,
    /// of the `h` side, which `None` makes ([`project_pair_interleaved4_with`]).
    pub project_pair_i8_interleaved4: Option<ProjectPairI8>,
    /// [`Kernels::project_split_i8`] of rows stored [`WeightLayout::Interleaved4`]
    /// (`first_row` a block start): exactly its `project_i8_interleaved4` of the `x` side into
    /// `out_x`, then of the `h` side into `out_h`, which `None` makes
    /// ([`project_split_interleaved4_with`]; the cells then make those two calls themselves).
    pub project_split_i8_interleaved4: Option<ProjectSplitI8>,
    /// `y[r * s + j] += sum_c W[r, c] * x[c * s + j]`: f32 `W` times a tile of `s` streams
    /// stored stream-minor, each stream's sum in the order of this table's `matvec_f32`, so
    /// every stream gets the same bits (see [`generic::batch::matmul_acc_f32`]).
    pub matmul_f32: fn(F32View<'_>, &[f32], &mut [f32], usize),
    /// The integer LSTM update of a block of units with sigmoid gates and tanh, from the four
    /// gates' pre-activations (i, f, c, o), `c` and `h` in place, exact (see
    /// [`generic::lstm::lstm_units_i8`]).
    pub lstm_units_i8: fn(LstmGates<'_>, &mut [i32], &mut [i32], &LstmParams),
    /// The integer GRU update (`reset_after = true`, sigmoid gates and tanh) of the units all
    /// slices hold, `h` codes in place: with `sigmoid` and `tanh` the `lut` functions of a
    /// pre-activation saturated to i16, and `q15(code) = clamp(h_to_q15(code - zero), -2^15,
    /// 2^15)`, per unit `z = sigmoid(z)`, `r = sigmoid(r)`,
    /// `cand = tanh(sat16(cand_x + round(r * cand_h >> 15)))` and
    /// `h = codes(round((z * q15(h) + (2^15 - z) * cand) >> 15))`, exactly the integer cell's
    /// scalar step. Returns `false`, having written nothing, for inputs it does not cover
    /// (the cell then runs its scalar step). `None`: the cell's scalar step.
    pub gru_units_i8: Option<GruUnitsI8>,
    /// SimpleRNN's output codes, `h = codes(activation(sat16(pre)))` in Q0.15 for the units
    /// both slices hold, exactly the integer cell's scalar loop. Returns `false`, having
    /// written nothing, for an activation it does not cover. `None`: the cell's scalar loop.
    pub activate_codes_i8: Option<ActivateCodesI8>,
    /// `dst[c * dst_stride + r] = src[r * src_stride + c]` for `r < rows`, `c < cols`
    /// (`src, src_stride, dst, dst_stride, rows, cols`): the batched step's moves between
    /// stream-major states and stream-minor tiles (see [`generic::batch::transpose_f32`]).
    pub transpose_f32: fn(&[f32], usize, &mut [f32], usize, usize, usize),
    /// The f32 LSTM cell's element-wise step `(a, ra, z, c, h)`: activations, `c` and `h`
    /// from the four gate blocks of `z`, bit for bit what
    /// [`generic::batch::lstm_gates_f32_with`] gives with this table's `activate` (which
    /// [`lstm_gates_f32`] runs for `None`). A table sets it to do the whole update in one pass
    /// over memory instead of six.
    pub lstm_gates_f32: Option<LstmGatesF32>,
    /// A tile's first affine map `y = b + W x` (`b` zeros for `None`): exactly
    /// [`generic::batch::init_bias_tile`] followed by this table's `matmul_f32`, which
    /// [`matmul_bias_f32`] runs for `None`. A table sets it to start the sums at the bias
    /// instead of filling the tile first.
    pub matmul_bias_f32: Option<MatmulBiasF32>,
}

/// A table's [`Kernels::matmul_bias_f32`]: `(bias, w, x, y, streams)`.
pub type MatmulBiasF32 = fn(Option<F32View<'_>>, F32View<'_>, &[f32], &mut [f32], usize);

/// A table's [`Kernels::lstm_gates_f32`]: `(activation, recurrent_activation, z, c, h)`.
pub type LstmGatesF32 =
    fn(crate::format::Activation, crate::format::Activation, &mut [f32], &mut [f32], &mut [f32]);

impl core::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kernels").field("name", &self.name).finish()
    }
}

/// The generic `project_i8_interleaved4`: the layout's reference kernel, or, without the
/// `interleaved4` feature, a function that writes nothing and is never called (the loader
/// refuses packed blobs there), so none of the layout's code is linked.
#[cfg(feature = "interleaved4")]
pub(crate) const GENERIC_INTERLEAVED4: fn(&RowsI8<'_>, &[i32], usize, &mut [i32], bool) =
    generic::project_i8_interleaved4;
#[cfg(not(feature = "interleaved4"))]
pub(crate) const GENERIC_INTERLEAVED4: fn(&RowsI8<'_>, &[i32], usize, &mut [i32], bool) =
    interleaved4_left_out;

/// [`GENERIC_INTERLEAVED4`] without the `interleaved4` feature.
#[cfg(not(feature = "interleaved4"))]
fn interleaved4_left_out(_: &RowsI8<'_>, _: &[i32], _: usize, _: &mut [i32], _: bool) {}

/// The portable scalar table: the reference, complete, available everywhere.
pub const GENERIC: Kernels = Kernels {
    name: "generic",
    matvec_f32: generic::matvec_acc_f32,
    matvec_i8w: generic::matvec_acc_i8w,
    dot_rows_i8: generic::dot_rows_i8,
    activate: generic::activate,
    pack_i16: generic::pack_i16,
    project_i8: generic::project_i8,
    project_pair_i8: None,
    project_split_i8: None,
    project_i8_interleaved4: GENERIC_INTERLEAVED4,
    project_pair_i8_interleaved4: None,
    project_split_i8_interleaved4: None,
    matmul_f32: generic::batch::matmul_acc_f32,
    lstm_units_i8: generic::lstm::lstm_units_i8,
    gru_units_i8: None,
    activate_codes_i8: None,
    transpose_f32: generic::batch::transpose_f32,
    lstm_gates_f32: None,
    matmul_bias_f32: None,
};

/// The best kernel table this CPU can run (see the module docs for how it is chosen).
#[inline]
pub fn active() -> &'static Kernels {
    #[cfg(target_arch = "x86_64")]
    if let Some(k) = x86_64::best() {
        return k;
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    return &aarch64::neon::TABLE;
    #[cfg(all(target_arch = "arm", edgernn_arm_dsp))]
    return &arm::dsp::TABLE;
    #[cfg(all(target_arch = "arm", edgernn_arm_v6m))]
    return &arm::v6m::TABLE;
    #[allow(unreachable_code)]
    &GENERIC
}

/// The name of the kernel table in use, for reports (`edgernn bench`) and tests.
pub fn kernel_name() -> &'static str {
    active().name
}

/// `y += W x` for `W` with `y.len()` rows and `x.len()` columns, row-major.
///
/// Rows beyond the view are left untouched; the loader guarantees the view holds exactly
/// `rows * cols` values, so this never happens for a loaded model.
#[inline]
pub fn matvec_acc_f32(w: F32View<'_>, x: &[f32], y: &mut [f32]) {
    (active().matvec_f32)(w, x, y);
}

/// `y += W x` for either float-path matrix.
#[inline]
pub fn matvec_acc(w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
    match *w {
        Matrix::F32(w) => (active().matvec_f32)(w, x, y),
        Matrix::I8 { weights, scales } => (active().matvec_i8w)(weights, scales, x, y),
    }
}

/// `sum_c w[c] * x[c]` of an int8 weight row and integer codes, exact in 64 bits.
#[inline]
pub fn dot_i8(row: &[u8], x: &[i32]) -> i64 {
    generic::dot_i8(row, x)
}

/// `out[r] = sum_c W[r, c] * x[c]` for the rows of an int8 matrix with `x.len()` columns,
/// exact in 64 bits (the same bits from every kernel).
#[inline]
pub fn dot_rows_i8(weights: &[u8], x: &[i32], out: &mut [i64]) {
    (active().dot_rows_i8)(weights, x, out);
}

/// Packs integer codes for [`project_i8`] (see [`Kernels::pack_i16`]); `packed` needs
/// [`packed_len`]`(codes.len())` words.
#[inline]
pub fn pack_i16(codes: &[i32], packed: &mut [i32]) {
    (active().pack_i16)(codes, packed);
}

/// `out[k] (+)= requant[k](bias[k] + W[k] . x)` over the rows of `out` (rows the weights do
/// not hold are left untouched), with `x` packed by [`pack_i16`] (see [`Kernels::project_i8`]).
#[inline]
pub fn project_i8(
    rows: &RowsI8<'_>,
    packed: &[i32],
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
) {
    (active().project_i8)(rows, packed, cols, out, accumulate);
}

/// `out = x-side + h-side` of two projections by the active table (see
/// [`Kernels::project_pair_i8`]).
#[inline]
pub fn project_pair_i8(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out: &mut [i32],
) {
    project_pair_with(active(), x, h, first_row, out);
}

/// The active table's paired projection for weights stored in `layout`: its
/// [`Kernels::project_pair_i8`] (or that entry's definition) or
/// [`project_pair_interleaved4_with`]. The cells take it once per step and call it per block
/// of rows, so the row-major path pays for the layout once a step, not once a call.
#[inline(always)]
pub fn pair_for(layout: WeightLayout) -> ProjectPairI8 {
    match layout {
        WeightLayout::RowMajor => match active().project_pair_i8 {
            Some(pair) => pair,
            None => project_pair_by_two_active,
        },
        WeightLayout::Interleaved4 => match active().project_pair_i8_interleaved4 {
            Some(pair) => pair,
            None => project_pair_interleaved4,
        },
    }
}

impl Kernels {
    /// This table's single projection of weights stored in `layout`.
    #[inline(always)]
    fn project_for(
        &self,
        layout: WeightLayout,
    ) -> fn(&RowsI8<'_>, &[i32], usize, &mut [i32], bool) {
        match layout {
            WeightLayout::RowMajor => self.project_i8,
            WeightLayout::Interleaved4 => self.project_i8_interleaved4,
        }
    }
}

/// [`pair_by_two`] of row-major weights by the active table.
fn project_pair_by_two_active(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out: &mut [i32],
) {
    pair_by_two::<false>(active(), x, h, first_row, out);
}

/// [`pair_by_two`] of interleaved weights by the active table.
fn project_pair_interleaved4(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out: &mut [i32],
) {
    pair_by_two::<true>(active(), x, h, first_row, out);
}

/// The paired projection of weights stored [`WeightLayout::Interleaved4`] by table `k`
/// ([`Kernels::project_pair_i8_interleaved4`]), and its definition when the table has none:
/// `k`'s `project_i8_interleaved4` of rows `first_row..` (a block start) of the `x` side, then,
/// accumulated, of the `h` side.
#[inline]
pub fn project_pair_interleaved4_with(
    k: &Kernels,
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out: &mut [i32],
) {
    match k.project_pair_i8_interleaved4 {
        Some(pair) => pair(x, h, first_row, out),
        None => pair_by_two::<true>(k, x, h, first_row, out),
    }
}

/// [`Kernels::project_pair_i8`] of table `k`, and its definition when the table has none:
/// `k`'s `project_i8` of rows `first_row..` of the `x` side, then, accumulated, of the `h`
/// side.
#[inline]
pub fn project_pair_with(
    k: &Kernels,
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out: &mut [i32],
) {
    match k.project_pair_i8 {
        Some(pair) => pair(x, h, first_row, out),
        None => pair_by_two::<false>(k, x, h, first_row, out),
    }
}

/// The definition of [`Kernels::project_pair_i8`] (and of its interleaved twin): two calls of
/// the table's projection for the layout (`I4`: interleaved), the `x` side's rows from `first_row` on, then the `h`
/// side's accumulated. Out of line, so the cells' loops around it keep their registers (on
/// Cortex-M0 this is cheaper than inlined).
#[inline(never)]
fn pair_by_two<const I4: bool>(
    k: &Kernels,
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out: &mut [i32],
) {
    let layout = WeightLayout::of::<I4>();
    let project = k.project_for(layout);
    project(
        &x.rows_from_in(layout, first_row),
        x.packed,
        x.cols,
        out,
        false,
    );
    project(
        &h.rows_from_in(layout, first_row),
        h.packed,
        h.cols,
        out,
        true,
    );
}

/// The definition of [`Kernels::project_split_i8`] (and of its interleaved twin): the table's
/// projection for the layout (`I4`: interleaved) of the `x` side's rows from `first_row` on into `out_x`, then of
/// the `h` side's into `out_h`.
fn split_by_two<const I4: bool>(
    k: &Kernels,
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out_x: &mut [i32],
    out_h: &mut [i32],
) {
    let layout = WeightLayout::of::<I4>();
    let project = k.project_for(layout);
    project(
        &x.rows_from_in(layout, first_row),
        x.packed,
        x.cols,
        out_x,
        false,
    );
    project(
        &h.rows_from_in(layout, first_row),
        h.packed,
        h.cols,
        out_h,
        false,
    );
}

/// `out_x = x-side` and `out_h = h-side` of two projections of the same rows by the active
/// table (see [`Kernels::project_split_i8`]).
#[inline]
pub fn project_split_i8(
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out_x: &mut [i32],
    out_h: &mut [i32],
) {
    project_split_with(active(), x, h, first_row, out_x, out_h);
}

/// [`Kernels::project_split_i8`] of table `k`, and its definition when the table has none:
/// `k`'s `project_i8` of rows `first_row..` of the `x` side into `out_x`, then of the `h`
/// side into `out_h`.
#[inline]
pub fn project_split_with(
    k: &Kernels,
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out_x: &mut [i32],
    out_h: &mut [i32],
) {
    match k.project_split_i8 {
        Some(split) => split(x, h, first_row, out_x, out_h),
        None => split_by_two::<false>(k, x, h, first_row, out_x, out_h),
    }
}

/// [`Kernels::project_split_i8_interleaved4`] of table `k`, and its definition when the table
/// has none: `k`'s `project_i8_interleaved4` of rows `first_row..` (a block start) of the `x`
/// side into `out_x`, then of the `h` side into `out_h`.
#[inline]
pub fn project_split_interleaved4_with(
    k: &Kernels,
    x: &ProjectionI8<'_>,
    h: &ProjectionI8<'_>,
    first_row: usize,
    out_x: &mut [i32],
    out_h: &mut [i32],
) {
    match k.project_split_i8_interleaved4 {
        Some(split) => split(x, h, first_row, out_x, out_h),
        None => split_by_two::<true>(k, x, h, first_row, out_x, out_h),
    }
}

/// The bias, requantization and accumulation of [`Kernels::project_i8`] around exact row sums
/// `dot(row, k)` (row `k`'s weights), shared by every table whose product kernel works a row
/// at a time.
#[inline]
pub(crate) fn project_rows_with(
    rows: &RowsI8<'_>,
    cols: usize,
    out: &mut [i32],
    accumulate: bool,
    mut dot: impl FnMut(&[u8]) -> i64,
) {
    if cols == 0 {
        return;
    }
    for (k, (o, row)) in out
        .iter_mut()
        .zip(rows.weights.chunks_exact(cols))
        .enumerate()
    {
        finish_row(rows, k, dot(row), o, accumulate);
    }
}

/// `out (+)= requant[k](bias[k] + dot)`, saturated to i32: the end of every row of
/// [`Kernels::project_i8`]. Always inlined: it is the body of every row loop.
#[inline(always)]
pub(crate) fn finish_row(rows: &RowsI8<'_>, k: usize, dot: i64, o: &mut i32, accumulate: bool) {
    let acc = i64::from(rows.bias.get_or_zero(k)) + dot;
    let v = rows.requant.get(k).apply(acc);
    let v = if accumulate { i64::from(*o) + v } else { v };
    *o = crate::quant::fixed::clamp_to(v, i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
}

/// The integer LSTM update of the units every slice holds, by the active kernel table (see
/// [`Kernels::lstm_units_i8`]).
#[inline]
pub fn lstm_units_i8(gates: LstmGates<'_>, c: &mut [i32], h: &mut [i32], params: &LstmParams) {
    (active().lstm_units_i8)(gates, c, h, params);
}

/// An element-wise activation of `values` in place, by the active kernel table.
#[inline]
pub fn activate(activation: crate::format::Activation, values: &mut [f32]) {
    (active().activate)(activation, values);
}

/// The f32 LSTM element-wise step by table `k` (see [`Kernels::lstm_gates_f32`]): `z` holds
/// the gate pre-activations i, f, c, o in four blocks of `h.len()` values and is left as
/// scratch; `c` and `h` are updated in place.
#[inline]
pub fn lstm_gates_f32(
    k: &Kernels,
    a: crate::format::Activation,
    ra: crate::format::Activation,
    z: &mut [f32],
    c: &mut [f32],
    h: &mut [f32],
) {
    match k.lstm_gates_f32 {
        Some(gates) => gates(a, ra, z, c, h),
        None => generic::batch::lstm_gates_f32_with(k.activate, a, ra, z, c, h),
    }
}

/// `y = b + W x` over a tile of `streams` streams by table `k` (see
/// [`Kernels::matmul_bias_f32`]).
#[inline]
pub fn matmul_bias_f32(
    k: &Kernels,
    bias: Option<F32View<'_>>,
    w: F32View<'_>,
    x: &[f32],
    y: &mut [f32],
    streams: usize,
) {
    match k.matmul_bias_f32 {
        Some(f) => f(bias, w, x, y, streams),
        None => {
            generic::batch::init_bias_tile(bias, y, streams);
            (k.matmul_f32)(w, x, y, streams);
        }
    }
}

/// Columns of integer codes a SIMD product kernel packs to i16 at a time (at most 1 KB of
/// stack).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) const PACK_I16: usize = 512;

/// The driver of the SIMD int8 products that read the codes as i16: packs `x` on the stack
/// `PACK_I16` columns at a time and hands each chunk to `chunk(weights, cols, start, codes,
/// out, first)`, which must assign `out[r]` on the first chunk and add to it after; runs the
/// generic kernel instead when a code does not fit i16 (the integer modes never produce one).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn dot_rows_i8_by_i16_chunks(
    weights: &[u8],
    x: &[i32],
    out: &mut [i64],
    chunk: impl FnMut(&[u8], usize, usize, &[i16], &mut [i64], bool),
) {
    // The buffer is cleared on every call (the cells call once per block of rows), so short
    // inputs get a short buffer.
    match x.len() {
        0..=64 => by_i16_chunks::<64>(weights, x, out, chunk),
        65..=256 => by_i16_chunks::<256>(weights, x, out, chunk),
        _ => by_i16_chunks::<PACK_I16>(weights, x, out, chunk),
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn by_i16_chunks<const PACK: usize>(
    weights: &[u8],
    x: &[i32],
    out: &mut [i64],
    mut chunk: impl FnMut(&[u8], usize, usize, &[i16], &mut [i64], bool),
) {
    let cols = x.len();
    if cols == 0 {
        out.fill(0);
        return;
    }
    let rows = out.len().min(weights.len() / cols);
    let mut packed = [0i16; PACK];
    let mut start = 0;
    while start < cols {
        let end = cols.min(start + PACK);
        let codes = &x[start..end];
        let lanes = &mut packed[..codes.len()];
        let mut fits = true;
        for (p, &v) in lanes.iter_mut().zip(codes) {
            *p = v as i16;
            fits &= i32::from(*p) == v;
        }
        if !fits {
            generic::dot_rows_i8(weights, x, out);
            return;
        }
        chunk(weights, cols, start, lanes, &mut out[..rows], start == 0);
        start = end;
    }
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
