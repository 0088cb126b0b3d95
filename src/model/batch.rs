//! Many independent streams of one model, one time step each: [`Model::step_batch`].
//!
//! An edge gateway that watches thousands of sensors with one model would otherwise read every
//! weight once per sensor per step. The batched step advances the streams in tiles of up to
//! [`BATCH_TILE`] streams: the tile's inputs, states and gate pre-activations are laid out
//! stream-minor (`[row][stream]`, tens of KB that stay in cache), and each weight matrix is applied
//! to the whole tile by the kernel table's `matmul_f32`, which reads every weight once per
//! tile instead of once per stream. The tiles are filled from and emptied into the
//! stream-major buffers by the table's `transpose_f32`, and an LSTM's activations and state
//! update run over the whole tile in the table's `lstm_gates_f32` (the same kernel `step`
//! calls on one stream).
//!
//! # Same results as `step`
//!
//! Per stream, the batched step performs the operations of [`Model::step`] in the same order:
//! the products sum every row in the order of the table's matrix-vector kernel (that is the
//! contract of `matmul_f32`), and biases, gate arithmetic and activations are element-wise
//! and written once, in the cells and the kernels both paths call (`lstm_gates_f32` is the
//! same function for one stream and for a tile). So in every mode each stream's state and
//! output are bit for bit what `step` gives it, and a stream can move between `step` and
//! `step_batch` at any time. (One process always runs one kernel table; across tables float results differ by
//! rounding, as the kernels module describes.)
//!
//! What is batched: `F32` models run the tiled path above. `Int8Weights` models run it too,
//! but their products go through the matrix-vector kernel one stream at a time (no int8-weight
//! tile kernel yet), so only the element-wise work is shared. The integer modes (`Int8`,
//! `Int16`) call [`Model::step`] on each stream in turn: exact, and no faster than a loop.

use super::run::{check_len, embedding_row, need, take};
use super::{
    runs_float, runs_integer, DensePlan, DirWeights, EmbeddingPlan, LayerPlan, Model,
    NormalizationPlan, RecurrentPlan, Table, Word,
};
use crate::cell::Lanes;
use crate::error::{sat_u32, RunError};
use crate::format::Activation;
use crate::kernels::{self, F32View, Kernels, Matrix};
use crate::math;

/// Streams advanced together in one tile by [`Model::step_batch`]. Its scratch grows with the
/// tile, not with the number of streams: 64 streams of an LSTM(32) keep their gates (32 KB),
/// `h`, `c` and inputs in L1/L2 while the weights stream past once per tile (64 measured
/// slightly faster than 32 for LSTM(32) at 1,000 streams on the bench machine).
pub const BATCH_TILE: usize = 64;

/// Column buffers for the products that run stream by stream (int8 weights) and softmax.
struct Columns<'s> {
    x: &'s mut [f32],
    y: &'s mut [f32],
}

impl<const L: usize> Model<'_, L> {
    /// Scratch words ([`Word`]) [`Model::step_batch`] needs for `streams` streams (0 for none).
    /// It stops growing at [`BATCH_TILE`] streams; the integer modes need
    /// [`Model::step_scratch_len`].
    pub fn batch_scratch_len(&self, streams: usize) -> usize {
        if streams == 0 {
            0
        } else if runs_float(self.mode) {
            let per_stream = 2 * self.max_width + self.max_units + self.max_cell_scratch;
            streams
                .min(BATCH_TILE)
                .saturating_mul(per_stream)
                .saturating_add(self.column_words())
        } else {
            self.step_scratch_len()
        }
    }

    fn column_words(&self) -> usize {
        self.max_width + self.max_width.max(self.max_cell_scratch)
    }

    /// Advances `streams` independent streams of this model by one time step each.
    ///
    /// Every buffer is stream-major: `inputs` holds `streams` rows of
    /// [`Model::input_features`] values, `states` `streams` states of [`Model::state_len`]
    /// words each, laid out exactly as [`Model::step`] lays out one, and `outputs` receives
    /// `streams` rows of [`Model::output_width`] values. Each stream's new state and output are
    /// bit for bit what `step` gives it (see the module docs), so a stream can move between
    /// the two calls at any time.
    ///
    /// # Errors
    /// As [`Model::step`]: [`RunError::NotStreamable`] for Bidirectional or `go_backwards`
    /// models; [`RunError::BufferType`] when `W` does not fit the mode; a length error when a
    /// slice does not fit `streams` ([`Model::batch_scratch_len`] for the scratch);
    /// [`RunError::TooLarge`] when a buffer length overflows `usize`;
    /// [`RunError::InvalidToken`] (indexing `inputs`) for a bad token id. On error every state
    /// is unchanged.
    ///
    /// # Panics
    /// Never.
    pub fn step_batch<W: Word>(
        &self,
        streams: usize,
        inputs: &[f32],
        states: &mut [W],
        scratch: &mut [W],
        outputs: &mut [f32],
    ) -> Result<(), RunError> {
        if !self.streamable {
            return Err(RunError::NotStreamable);
        }
        let times = |width: usize| streams.checked_mul(width).ok_or(RunError::TooLarge);
        check_len(times(self.input_features)?, inputs.len())?;
        self.check_tokens(inputs)?;
        let state_words = times(self.state_len)?;
        if states.len() != state_words {
            return Err(RunError::StateLength {
                expected: sat_u32(state_words),
                found: sat_u32(states.len()),
            });
        }
        self.check_output(outputs, times(self.output_width)?)?;
        let scratch = need(scratch, self.batch_scratch_len(streams))?;
        if runs_float(self.mode) {
            let (Some(states), Some(scratch)) = (W::as_f32(states), W::as_f32(scratch)) else {
                return Err(RunError::BufferType);
            };
            self.tiles_f32(streams, inputs, states, scratch, outputs);
            return Ok(());
        }
        if !runs_integer(self.mode) || W::as_i32(&mut []).is_none() {
            return Err(RunError::BufferType);
        }
        let (features, words, width) = (self.input_features, self.state_len, self.output_width);
        for s in 0..streams {
            let x = inputs.get(s * features..(s + 1) * features).unwrap_or(&[]);
            let state = states
                .get_mut(s * words..(s + 1) * words)
                .unwrap_or(&mut []);
            let out = outputs
                .get_mut(s * width..(s + 1) * width)
                .unwrap_or(&mut []);
            self.step(x, state, scratch, out)?;
        }
        Ok(())
    }

    /// The float modes, tile by tile (every length checked by the caller).
    fn tiles_f32(&self, streams: usize, x: &[f32], st: &mut [f32], sc: &mut [f32], y: &mut [f32]) {
        let k = kernels::active();
        let (features, words, width) = (self.input_features, self.state_len, self.output_width);
        let mut first = 0;
        while first < streams {
            let t = (streams - first).min(BATCH_TILE);
            let end = first + t;
            self.tile_f32(
                k,
                t,
                x.get(first * features..end * features).unwrap_or(&[]),
                st.get_mut(first * words..end * words).unwrap_or(&mut []),
                sc,
                y.get_mut(first * width..end * width).unwrap_or(&mut []),
            );
            first = end;
        }
    }

    /// One step of `t` streams: the layers of [`Model::step`] over stream-minor buffers.
    fn tile_f32(
        &self,
        k: &Kernels,
        t: usize,
        x: &[f32],
        states: &mut [f32],
        scratch: &mut [f32],
        out: &mut [f32],
    ) {
        let mut rest = scratch;
        let mut src = take(&mut rest, self.max_width * t);
        let mut dst = take(&mut rest, self.max_width * t);
        let c = take(&mut rest, self.max_units * t);
        let mut columns = Columns {
            x: take(&mut rest, self.max_width),
            y: take(&mut rest, self.max_width.max(self.max_cell_scratch)),
        };
        let cell = rest;
        gather(k, x, self.input_features, 0, self.input_features, t, src);
        let mut width = self.input_features;
        for layer in &self.layers {
            let input = src.get(..width * t).unwrap_or(&[]);
            match layer {
                LayerPlan::Recurrent(r) => {
                    let tile = StateTile {
                        k,
                        states,
                        words: self.state_len,
                        t,
                    };
                    recurrent(k, r, input, tile, dst, c, cell, &mut columns);
                }
                LayerPlan::Dense(d) => dense(k, d, input, t, dst, &mut columns),
                LayerPlan::Normalization(n, w) => normalize(n, input, t, dst, *w),
                LayerPlan::Embedding(e) if cfg!(feature = "embedding") => embed(e, input, t, dst),
                // Models with a RepeatVector are not streamable; a step never gets here.
                LayerPlan::Repeat(_, w) => {
                    let n = (*w * t).min(input.len());
                    if let (Some(d), Some(s)) = (dst.get_mut(..n), input.get(..n)) {
                        d.copy_from_slice(s);
                    }
                }
                // Embeddings without their feature were refused at load.
                LayerPlan::Embedding(_) => {}
            }
            width = layer.output_width();
            core::mem::swap(&mut src, &mut dst);
        }
        scatter(k, src, t, out, width, 0, width);
    }
}

/// `tile[f * t + s] = rows[s * stride + offset + f]` for `f < width`: `t` stream-major rows
/// into a stream-minor tile, by the table's transpose.
fn gather(
    k: &Kernels,
    rows: &[f32],
    stride: usize,
    offset: usize,
    width: usize,
    t: usize,
    tile: &mut [f32],
) {
    let src = rows.get(offset..).unwrap_or(&[]);
    (k.transpose_f32)(src, stride, tile, t, t, width);
}

/// The inverse of [`gather`].
fn scatter(
    k: &Kernels,
    tile: &[f32],
    t: usize,
    rows: &mut [f32],
    stride: usize,
    offset: usize,
    width: usize,
) {
    let dst = rows.get_mut(offset..).unwrap_or(&mut []);
    (k.transpose_f32)(tile, t, dst, stride, width, t);
}

/// Every stream's state words of a tile, and how to find one layer's part.
struct StateTile<'s> {
    k: &'s Kernels,
    states: &'s mut [f32],
    /// Words per stream ([`Model::state_len`]).
    words: usize,
    t: usize,
}

impl StateTile<'_> {
    /// Words `offset..offset + n` of every stream's state into `tile` (stream-minor).
    fn load(&self, offset: usize, n: usize, tile: &mut [f32]) {
        gather(self.k, self.states, self.words, offset, n, self.t, tile);
    }

    /// The inverse of [`StateTile::load`].
    fn store(&mut self, offset: usize, n: usize, tile: &[f32]) {
        scatter(self.k, tile, self.t, self.states, self.words, offset, n);
    }
}

/// `y = W x` added to `y` for a tile: the table's tile kernel for f32 weights; for int8
/// weights the table's matrix-vector kernel on each stream's column, so the bits stay those of
/// `step`.
fn product(k: &Kernels, m: &Matrix<'_>, x: &[f32], y: &mut [f32], t: usize, cols: &mut Columns) {
    match *m {
        Matrix::F32(w) => (k.matmul_f32)(w, x, y, t),
        Matrix::I8 { weights, scales } => {
            let (Some(n_in), Some(n_out)) = (x.len().checked_div(t), y.len().checked_div(t)) else {
                return;
            };
            let (Some(xc), Some(yc)) = (cols.x.get_mut(..n_in), cols.y.get_mut(..n_out)) else {
                return;
            };
            for s in 0..t {
                for (d, &v) in xc.iter_mut().zip(x.iter().skip(s).step_by(t)) {
                    *d = v;
                }
                for (d, &v) in yc.iter_mut().zip(y.iter().skip(s).step_by(t)) {
                    *d = v;
                }
                (k.matvec_i8w)(weights, scales, xc, yc);
                for (d, &v) in y.iter_mut().skip(s).step_by(t).zip(yc.iter()) {
                    *d = v;
                }
            }
        }
    }
}

/// Row `r` of the tile `y` = `bias[r]` for every stream (zeros without a bias), as
/// [`kernels::init_bias`] starts each stream's affine map.
fn init_bias(bias: Option<F32View<'_>>, y: &mut [f32], t: usize) {
    kernels::generic::batch::init_bias_tile(bias, y, t);
}

/// One recurrent layer (forward direction only: batched models are streamable) over the
/// tile: its state in from `states`, the step, `h` (the layer's output) left in `h_out` and
/// the state written back.
#[allow(clippy::too_many_arguments)]
fn recurrent(
    k: &Kernels,
    r: &RecurrentPlan<'_>,
    x: &[f32],
    mut states: StateTile<'_>,
    h_out: &mut [f32],
    c: &mut [f32],
    cell: &mut [f32],
    cols: &mut Columns,
) {
    let DirWeights::Float(w) = &r.forward else {
        return;
    };
    let spec = &r.spec;
    let units = spec.units;
    let n = units * states.t;
    let (Some(h), Some(c)) = (h_out.get_mut(..n), c.get_mut(..n)) else {
        return;
    };
    let has_c = spec.cell.has_cell_state();
    states.load(r.state_offset, units, h);
    if has_c {
        states.load(r.state_offset + units, units, c);
    }
    let mut tile = Tile {
        k,
        t: states.t,
        cols,
    };
    spec.step_with(&mut tile, w, x, h, c, cell);
    states.store(r.state_offset, units, h);
    if has_c {
        states.store(r.state_offset + units, units, c);
    }
}

/// A tile of `t` streams as the cells' [`Lanes`]: products by [`product`], biases by
/// [`init_bias`], activations by the table's element-wise kernel over whole tile rows.
struct Tile<'c, 's> {
    k: &'c Kernels,
    t: usize,
    cols: &'c mut Columns<'s>,
}

impl Lanes for Tile<'_, '_> {
    #[inline]
    fn init_bias(&mut self, bias: Option<F32View<'_>>, y: &mut [f32]) {
        init_bias(bias, y, self.t);
    }

    #[inline]
    fn product(&mut self, w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
        product(self.k, w, x, y, self.t, self.cols);
    }

    #[inline]
    fn affine(&mut self, bias: Option<F32View<'_>>, w: &Matrix<'_>, x: &[f32], y: &mut [f32]) {
        match *w {
            Matrix::F32(w) => kernels::matmul_bias_f32(self.k, bias, w, x, y, self.t),
            _ => {
                init_bias(bias, y, self.t);
                product(self.k, w, x, y, self.t, self.cols);
            }
        }
    }

    #[inline]
    fn activate(&mut self, activation: Activation, values: &mut [f32]) {
        (self.k.activate)(activation, values);
    }

    #[inline]
    fn lstm_gates(
        &mut self,
        a: Activation,
        ra: Activation,
        z: &mut [f32],
        c: &mut [f32],
        h: &mut [f32],
    ) {
        kernels::lstm_gates_f32(self.k, a, ra, z, c, h);
    }
}

/// `crate::cell::dense::forward` over a tile; softmax, which is not element-wise, stream by
/// stream.
fn dense(k: &Kernels, d: &DensePlan<'_>, x: &[f32], t: usize, y: &mut [f32], cols: &mut Columns) {
    let super::DenseWeights::Float { kernel, bias } = &d.weights else {
        return;
    };
    let Some(y) = y.get_mut(..d.units * t) else {
        return;
    };
    init_bias(*bias, y, t);
    product(k, kernel, x, y, t, cols);
    if d.activation != Activation::Softmax {
        math::apply_slice(d.activation, y);
        return;
    }
    let Some(column) = cols.y.get_mut(..d.units) else {
        return;
    };
    for s in 0..t {
        for (c, &v) in column.iter_mut().zip(y.iter().skip(s).step_by(t)) {
            *c = v;
        }
        math::apply_slice(d.activation, column);
        for (v, &c) in y.iter_mut().skip(s).step_by(t).zip(column.iter()) {
            *v = c;
        }
    }
}

/// `(x - mean) / std` per feature (row of the tile), as the step's float path computes it.
fn normalize(n: &NormalizationPlan<'_>, x: &[f32], t: usize, y: &mut [f32], width: usize) {
    let rows = x.chunks_exact(t.max(1)).zip(y.chunks_exact_mut(t.max(1)));
    for ((x_row, y_row), (m, s)) in rows.take(width).zip(n.mean.iter().zip(n.std.iter())) {
        for (out, &v) in y_row.iter_mut().zip(x_row) {
            *out = (v - m) / s;
        }
    }
}

/// Each stream's table row for its (validated) token id in row 0 of the tile.
fn embed(e: &EmbeddingPlan<'_>, x: &[f32], t: usize, y: &mut [f32]) {
    for (s, &id) in x.iter().take(t).enumerate() {
        if let Table::F32(row) = embedding_row(e, id as usize) {
            for (o, v) in y.iter_mut().skip(s).step_by(t.max(1)).zip(row.iter()) {
                *o = v;
            }
        }
    }
}
