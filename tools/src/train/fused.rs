//! One direction of one recurrent layer over a whole sequence as a single candle op, with a
//! hand-written backward pass (backpropagation through time).
//!
//! # Why
//!
//! Written from candle ops, an LSTM step is some twenty small tensors (narrow, matmul, add,
//! sigmoid, tanh, mul...), each allocated and recorded for autodiff, and as many again
//! backward: for the small matrices of recurrent models the time goes into that overhead
//! and into scalar `tanhf`/`expf` calls, not into arithmetic. Here:
//!
//! - the input projection `x W + b` of every step (and gate) is one matrix product before the
//!   time loop, and `dW`, `dU`, `db` and `dx` are one product each after the backward loop
//!   (the sums over time and batch fold into the products); only `h U` (forward) and
//!   `dz U^T` (backward) remain per step, through candle's CPU matrix product on buffers
//!   this op owns, without copies;
//! - the gate math is plain loops over contiguous `f32` slices, the activations the core's
//!   own kernel (AVX2 on x86_64 CPUs that have it), where candle calls scalar `tanhf`/`expf`;
//! - the forward pass keeps the activated gates and states, so the backward pass computes
//!   no transcendental function at all (every derivative comes from the activation's output).
//!
//! The equations are the runtime's (`edgernn::cell`, Keras 3 gate orders: LSTM i, f, c, o;
//! GRU z, r, h, both reset variants), the activations its very functions. The backward pass
//! is checked against candle's autodiff of the same equations written from candle ops
//! (`model.rs` tests).
//!
//! # Parameters
//!
//! The op takes the sequence `x` `[time, batch, inputs]` and one packed parameter matrix,
//! `[inputs + units + biases, gates * units]`: the kernel `W`, the recurrent kernel `U`, the
//! bias row and (GRU `reset_after`) the recurrent bias row, as [`pack`] builds it from the
//! variables (so autodiff routes the gradients back to them). Its output is every step's `h`,
//! `[time, batch, units]`, in time order also for a backward direction.

use std::cell::RefCell;
use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use edgernn::format::{Activation, Cell};

thread_local! {
    /// Buffers of finished ops for the next ones: fresh multi-megabyte buffers every batch
    /// cost page faults and clearing (about a tenth of the LSTM benchmark's time, measured).
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A zeroed buffer of `len` values, from the pool when one is large enough.
fn zeroed(len: usize) -> Vec<f32> {
    let mut v = scratch(len);
    v.fill(0.0);
    v
}

/// A buffer of `len` values with unspecified contents (a finished op's), for buffers that
/// are written in full before they are read: no time spent clearing them.
fn scratch(len: usize) -> Vec<f32> {
    let reused = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        best.map(|i| pool.swap_remove(i))
    });
    match reused {
        Some(mut v) => {
            if v.len() > len {
                v.truncate(len);
            } else {
                v.resize(len, 0.0);
            }
            v
        }
        None => vec![0.0; len],
    }
}

/// Returns a buffer to the pool.
fn recycle(v: Vec<f32>) {
    /// Smaller buffers come cheaply from the allocator.
    const MIN_LEN: usize = 4096;
    /// Buffers kept at most (a few layers' worth).
    const MAX_BUFFERS: usize = 48;
    if v.capacity() >= MIN_LEN {
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < MAX_BUFFERS {
                pool.push(v);
            }
        });
    }
}

fn recycle_storage(s: &mut CpuStorage) {
    if let CpuStorage::F32(v) = s {
        recycle(std::mem::take(v));
    }
}

/// Applies `a` in place with the core's kernel (`edgernn::kernels::activate`: AVX2 where
/// the CPU has it, eight lanes from one `exp` polynomial; `libm` otherwise): the very
/// function the runtime's cells call, so training's forward pass is the runtime's.
fn activate_slice(a: Activation, v: &mut [f32]) {
    match a {
        Activation::Linear | Activation::Softmax => {}
        _ => edgernn::kernels::activate(a, v),
    }
}

/// The activation's derivative from its output `y = a(x)`.
#[inline]
fn derivative(a: Activation, y: f32) -> f32 {
    match a {
        Activation::Tanh => 1.0 - y * y,
        Activation::Sigmoid => y * (1.0 - y),
        Activation::Relu => {
            if y > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::HardSigmoid => {
            if y > 0.0 && y < 1.0 {
                1.0 / 6.0
            } else {
                0.0
            }
        }
        Activation::Linear | Activation::Softmax => 1.0,
    }
}

/// `dz[k] = dy[k] * a'(y[k])` over slices.
fn backprop_slice(a: Activation, dz: &mut [f32], dy: &[f32], y: &[f32]) {
    for ((d, &g), &v) in dz.iter_mut().zip(dy).zip(y) {
        *d = g * derivative(a, v);
    }
}

fn f32s(s: &CpuStorage) -> Result<&[f32]> {
    match s {
        CpuStorage::F32(v) => Ok(v),
        _ => bail!("fused recurrent op: f32 tensors only"),
    }
}

fn f32s_mut(s: &mut CpuStorage) -> Result<&mut [f32]> {
    match s {
        CpuStorage::F32(v) => Ok(v),
        _ => bail!("fused recurrent op: f32 tensors only"),
    }
}

/// A `[rows, cols]` matrix at `offset` in a buffer whose rows are `stride` apart.
fn view(offset: usize, rows: usize, cols: usize, stride: usize) -> Layout {
    Layout::new(Shape::from((rows, cols)), vec![stride, 1], offset)
}

/// `[rows, cols]` seen as its transpose `[cols, rows]`.
fn transposed(l: Layout) -> Result<Layout> {
    l.transpose(0, 1)
}

/// `a b` with candle's CPU matrix product (gemm), into a new `[m, n]` buffer.
fn matmul(a: &CpuStorage, al: &Layout, b: &CpuStorage, bl: &Layout) -> Result<Vec<f32>> {
    let (m, k) = (al.dims()[0], al.dims()[1]);
    let n = bl.dims()[1];
    match a.matmul(b, (1, m, n, k), al, bl)? {
        CpuStorage::F32(v) => Ok(v),
        _ => bail!("fused recurrent op: f32 tensors only"),
    }
}

/// What the forward pass keeps for the backward pass, all in processing order (step `s`
/// is time `T - 1 - s` for a backward direction).
struct Saved {
    /// `h` before each step and after the last: `[T + 1, B, H]`, `h[0] = 0`.
    hs: CpuStorage,
    /// Activated gates per step, `[T, B, gates * H]` (LSTM i, f, g, o; GRU z, r, hh;
    /// SimpleRNN the new `h`).
    gates: Vec<f32>,
    /// LSTM: `c` before each step and after the last, `[T + 1, B, H]`.
    cs: Vec<f32>,
    /// LSTM: `a(c)` after each step, `[T, B, H]`.
    tcs: Vec<f32>,
    /// GRU `reset_after`: the candidate's recurrent part `h U_h + b_rh` per step `[T, B, H]`;
    /// GRU `reset_before`: `r * h` per step, `[T, B, H]`.
    extra: CpuStorage,
}

impl Drop for Saved {
    fn drop(&mut self) {
        recycle_storage(&mut self.hs);
        recycle_storage(&mut self.extra);
        recycle(std::mem::take(&mut self.gates));
        recycle(std::mem::take(&mut self.cs));
        recycle(std::mem::take(&mut self.tcs));
    }
}

/// The op for one direction of one layer; see the module docs.
pub struct Sequence {
    cell: Cell,
    activation: Activation,
    recurrent_activation: Activation,
    units: usize,
    reverse: bool,
    /// What the forward pass left for the backward pass (dropped unused in inference, when
    /// candle records no graph and drops the op at once).
    saved: Mutex<Option<Saved>>,
}

/// Rows of bias below `W` and `U` in the packed parameters.
pub fn bias_rows(cell: Cell) -> usize {
    match cell {
        Cell::Gru { reset_after: true } => 2,
        _ => 1,
    }
}

/// The packed parameters `[W; U; b; b_r]` ([`Sequence`]); `recurrent_bias` is GRU
/// `reset_after`'s.
///
/// # Errors
/// candle's shape errors.
pub fn pack(
    kernel: &Tensor,
    recurrent: &Tensor,
    bias: &Tensor,
    recurrent_bias: Option<&Tensor>,
) -> Result<Tensor> {
    let mut parts = vec![kernel.clone(), recurrent.clone(), bias.unsqueeze(0)?];
    if let Some(rb) = recurrent_bias {
        parts.push(rb.unsqueeze(0)?);
    }
    Tensor::cat(&parts, 0)
}

/// Runs one direction over `x` `[time, batch, inputs]` with packed parameters `params`;
/// returns `[time, batch, units]`.
///
/// # Errors
/// candle's shape errors.
pub fn run(
    cell: Cell,
    activation: Activation,
    recurrent_activation: Activation,
    units: usize,
    reverse: bool,
    x: &Tensor,
    params: &Tensor,
) -> Result<Tensor> {
    let op = Sequence {
        cell,
        activation,
        recurrent_activation,
        units,
        reverse,
        saved: Mutex::new(None),
    };
    x.contiguous()?.apply_op2(&params.contiguous()?, op)
}

impl Sequence {
    fn gates(&self) -> usize {
        self.cell.gates()
    }

    /// The time index of processing step `s`.
    fn time(&self, s: usize, steps: usize) -> usize {
        if self.reverse {
            steps - 1 - s
        } else {
            s
        }
    }

    /// The forward pass over contiguous buffers; returns `[T, B, H]` in time order.
    fn forward(
        &self,
        x: &CpuStorage,
        x_offset: usize,
        (steps, batch, inputs): (usize, usize, usize),
        p: &CpuStorage,
        p_offset: usize,
    ) -> Result<(Vec<f32>, Saved)> {
        let (h, g) = (self.units, self.gates());
        let gh = g * h;
        let (a, ra) = (self.activation, self.recurrent_activation);
        let params = &f32s(p)?[p_offset..];
        let bias = &params[(inputs + h) * gh..(inputs + h + 1) * gh];
        let u_offset = p_offset + inputs * gh;
        // x W + b for every step at once: [T * B, G * H].
        let mut xw = matmul(
            x,
            &view(x_offset, steps * batch, inputs, inputs),
            p,
            &view(p_offset, inputs, gh, gh),
        )?;
        for row in xw.chunks_exact_mut(gh) {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
        let bh = batch * h;
        let mut hs = CpuStorage::F32(zeroed((steps + 1) * bh));
        // Each step's gates are computed where its `x W + b` is: in `xw` itself when steps
        // run in time order; for a backward direction, in a buffer in processing order that
        // each step first copies its `x W + b` into (written in full, like `tcs`, `extra`,
        // `dz` and `drec`: no clearing).
        let (mut gates, xw) = if self.reverse {
            (scratch(steps * batch * gh), Some(xw))
        } else {
            (xw, None)
        };
        let lstm = self.cell == Cell::Lstm;
        let mut cs = zeroed(if lstm { (steps + 1) * bh } else { 0 });
        let mut tcs = scratch(if lstm { steps * bh } else { 0 });
        let gru = matches!(self.cell, Cell::Gru { .. });
        let mut extra = CpuStorage::F32(scratch(if gru { steps * bh } else { 0 }));
        for s in 0..steps {
            let t = self.time(s, steps);
            let gs = &mut gates[s * batch * gh..(s + 1) * batch * gh];
            if let Some(xw) = &xw {
                gs.copy_from_slice(&xw[t * batch * gh..(t + 1) * batch * gh]);
            }
            match self.cell {
                Cell::SimpleRnn | Cell::Lstm | Cell::Gru { reset_after: true } => {
                    // h U: [B, G * H].
                    let hu = matmul(
                        &hs,
                        &view(s * bh, batch, h, h),
                        p,
                        &view(u_offset, h, gh, gh),
                    )?;
                    match self.cell {
                        Cell::SimpleRnn => {
                            add(gs, &hu);
                            activate_slice(a, gs);
                            f32s_mut(&mut hs)?[(s + 1) * bh..(s + 2) * bh].copy_from_slice(gs);
                        }
                        Cell::Lstm => {
                            add(gs, &hu);
                            for row in gs.chunks_exact_mut(gh) {
                                activate_slice(ra, &mut row[..2 * h]);
                                activate_slice(a, &mut row[2 * h..3 * h]);
                                activate_slice(ra, &mut row[3 * h..]);
                            }
                            let (c_prev, c_next) = cs[s * bh..(s + 2) * bh].split_at_mut(bh);
                            let tc = &mut tcs[s * bh..(s + 1) * bh];
                            let rows = gs
                                .chunks_exact(gh)
                                .zip(c_prev.chunks_exact(h))
                                .zip(c_next.chunks_exact_mut(h));
                            for ((row, c_prev), c_next) in rows {
                                let (i, rest) = row.split_at(h);
                                let (f, rest) = rest.split_at(h);
                                let g = &rest[..h];
                                for j in 0..h {
                                    c_next[j] = f[j] * c_prev[j] + i[j] * g[j];
                                }
                            }
                            // a(c) for the whole batch in one call.
                            tc.copy_from_slice(c_next);
                            activate_slice(a, tc);
                            let hs = f32s_mut(&mut hs)?;
                            let hn = &mut hs[(s + 1) * bh..(s + 2) * bh];
                            let rows = gs
                                .chunks_exact(gh)
                                .zip(tc.chunks_exact(h))
                                .zip(hn.chunks_exact_mut(h));
                            for ((row, tc), hn) in rows {
                                let o = &row[3 * h..];
                                hn.iter_mut()
                                    .zip(o.iter().zip(tc))
                                    .for_each(|(y, (o, c))| *y = o * c);
                            }
                        }
                        _ => {
                            // GRU reset_after: z, r from x + h U (+ b_r); the candidate
                            // a(x_h + r * (h U_h + b_rh)).
                            let rb = &params[(inputs + h + 1) * gh..(inputs + h + 2) * gh];
                            let ex = &mut f32s_mut(&mut extra)?[s * bh..(s + 1) * bh];
                            for (bi, (row, hu)) in
                                gs.chunks_exact_mut(gh).zip(hu.chunks_exact(gh)).enumerate()
                            {
                                for j in 0..2 * h {
                                    row[j] += hu[j] + rb[j];
                                }
                                activate_slice(ra, &mut row[..2 * h]);
                                let e = &mut ex[bi * h..(bi + 1) * h];
                                for j in 0..h {
                                    e[j] = hu[2 * h + j] + rb[2 * h + j];
                                }
                                let (zr, cand) = row.split_at_mut(2 * h);
                                for j in 0..h {
                                    cand[j] += zr[h + j] * e[j];
                                }
                                activate_slice(a, cand);
                            }
                            gru_update(&mut hs, s, bh, h, gs)?;
                        }
                    }
                }
                Cell::Gru { reset_after: false } => {
                    // z, r = ra(x + h U_zr); hh = a(x_h + (r * h) U_h).
                    let hu = matmul(
                        &hs,
                        &view(s * bh, batch, h, h),
                        p,
                        &view(u_offset, h, 2 * h, gh),
                    )?;
                    let hprev = &f32s(&hs)?[s * bh..(s + 1) * bh];
                    let ex = &mut f32s_mut(&mut extra)?[s * bh..(s + 1) * bh];
                    for (bi, (row, hu)) in gs
                        .chunks_exact_mut(gh)
                        .zip(hu.chunks_exact(2 * h))
                        .enumerate()
                    {
                        row[..2 * h].iter_mut().zip(hu).for_each(|(z, r)| *z += r);
                        activate_slice(ra, &mut row[..2 * h]);
                        for j in 0..h {
                            ex[bi * h + j] = row[h + j] * hprev[bi * h + j];
                        }
                    }
                    let rhu = matmul(
                        &extra,
                        &view(s * bh, batch, h, h),
                        p,
                        &view(u_offset + 2 * h, h, h, gh),
                    )?;
                    for (row, r) in gs.chunks_exact_mut(gh).zip(rhu.chunks_exact(h)) {
                        let cand = &mut row[2 * h..];
                        cand.iter_mut().zip(r).for_each(|(c, r)| *c += r);
                        activate_slice(a, cand);
                    }
                    gru_update(&mut hs, s, bh, h, gs)?;
                }
            }
        }
        if let Some(xw) = xw {
            recycle(xw);
        }
        let mut out = vec![0f32; steps * bh];
        let all = f32s(&hs)?;
        for s in 0..steps {
            let t = self.time(s, steps);
            out[t * bh..(t + 1) * bh].copy_from_slice(&all[(s + 1) * bh..(s + 2) * bh]);
        }
        Ok((
            out,
            Saved {
                hs,
                gates,
                cs,
                tcs,
                extra,
            },
        ))
    }

    /// The backward pass: `(dx, dparams)` for the output gradient `dy` `[T, B, H]` (time
    /// order).
    fn backward(
        &self,
        saved: &Saved,
        x: &CpuStorage,
        (steps, batch, inputs): (usize, usize, usize),
        p: &CpuStorage,
        dy: &[f32],
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (h, g) = (self.units, self.gates());
        let gh = g * h;
        let bh = batch * h;
        let (a, ra) = (self.activation, self.recurrent_activation);
        let u_offset = inputs * gh;
        // Gradients of the pre-activations x W + b, per step (processing order).
        let mut dz = CpuStorage::F32(scratch(steps * batch * gh));
        // GRU reset_after: the recurrent products' gradients differ in the candidate part.
        let mut drec =
            CpuStorage::F32(scratch(if self.cell == (Cell::Gru { reset_after: true }) {
                steps * batch * gh
            } else {
                0
            }));
        let mut dh_next = vec![0f32; bh];
        let mut dc_next = vec![0f32; if self.cell == Cell::Lstm { bh } else { 0 }];
        let mut dh = vec![0f32; bh];
        let hs = f32s(&saved.hs)?;
        for s in (0..steps).rev() {
            let t = self.time(s, steps);
            dh.iter_mut()
                .zip(&dy[t * bh..(t + 1) * bh])
                .zip(&dh_next)
                .for_each(|((d, &y), &n)| *d = y + n);
            let gs = &saved.gates[s * batch * gh..(s + 1) * batch * gh];
            let hprev = &hs[s * bh..(s + 1) * bh];
            let range = s * batch * gh..(s + 1) * batch * gh;
            match self.cell {
                Cell::SimpleRnn => {
                    let hnew = &hs[(s + 1) * bh..(s + 2) * bh];
                    backprop_slice(a, &mut f32s_mut(&mut dz)?[range.clone()], &dh, hnew);
                    dh_next = matmul(
                        &dz,
                        &view(range.start, batch, gh, gh),
                        p,
                        &transposed(view(u_offset, h, gh, gh))?,
                    )?;
                }
                Cell::Lstm => {
                    let dzs = &mut f32s_mut(&mut dz)?[range.clone()];
                    let c_prev = &saved.cs[s * bh..(s + 1) * bh];
                    let tc = &saved.tcs[s * bh..(s + 1) * bh];
                    let rows = LstmRows {
                        gates: gs,
                        dz: dzs,
                        dh: &dh,
                        tc,
                        c_prev,
                        dc: &mut dc_next,
                        units: h,
                    };
                    match (a, ra) {
                        // Keras' default, with the derivatives inlined so the loop vectorises.
                        (Activation::Tanh, Activation::Sigmoid) => {
                            rows.backward(|y| 1.0 - y * y, |y| y * (1.0 - y));
                        }
                        _ => rows.backward(|y| derivative(a, y), |y| derivative(ra, y)),
                    }
                    dh_next = matmul(
                        &dz,
                        &view(range.start, batch, gh, gh),
                        p,
                        &transposed(view(u_offset, h, gh, gh))?,
                    )?;
                }
                Cell::Gru { reset_after: true } => {
                    let ex = &f32s(&saved.extra)?[s * bh..(s + 1) * bh];
                    let dzs = &mut f32s_mut(&mut dz)?[range.clone()];
                    let drs = &mut f32s_mut(&mut drec)?[range.clone()];
                    for bi in 0..batch {
                        let (row, d, dr) = (
                            &gs[bi * gh..(bi + 1) * gh],
                            &mut dzs[bi * gh..(bi + 1) * gh],
                            &mut drs[bi * gh..(bi + 1) * gh],
                        );
                        let o0 = bi * h;
                        for j in 0..h {
                            let (z, r, hh) = (row[j], row[h + j], row[2 * h + j]);
                            let dhj = dh[o0 + j];
                            let dpre_h = dhj * (1.0 - z) * derivative(a, hh);
                            let dpre_z = dhj * (hprev[o0 + j] - hh) * derivative(ra, z);
                            let dpre_r = dpre_h * ex[o0 + j] * derivative(ra, r);
                            d[j] = dpre_z;
                            d[h + j] = dpre_r;
                            d[2 * h + j] = dpre_h;
                            dr[j] = dpre_z;
                            dr[h + j] = dpre_r;
                            dr[2 * h + j] = dpre_h * r;
                        }
                    }
                    dh_next = matmul(
                        &drec,
                        &view(range.start, batch, gh, gh),
                        p,
                        &transposed(view(u_offset, h, gh, gh))?,
                    )?;
                    for (bi, row) in gs.chunks_exact(gh).enumerate() {
                        for j in 0..h {
                            dh_next[bi * h + j] += dh[bi * h + j] * row[j];
                        }
                    }
                }
                Cell::Gru { reset_after: false } => {
                    {
                        let dzs = &mut f32s_mut(&mut dz)?[range.clone()];
                        for (bi, (row, d)) in gs
                            .chunks_exact(gh)
                            .zip(dzs.chunks_exact_mut(gh))
                            .enumerate()
                        {
                            for j in 0..h {
                                let (z, hh) = (row[j], row[2 * h + j]);
                                let dhj = dh[bi * h + j];
                                d[2 * h + j] = dhj * (1.0 - z) * derivative(a, hh);
                                d[j] = dhj * (hprev[bi * h + j] - hh) * derivative(ra, z);
                            }
                        }
                    }
                    // d(r * h) = dpre_h U_h^T.
                    let drh = matmul(
                        &dz,
                        &view(range.start + 2 * h, batch, h, gh),
                        p,
                        &transposed(view(u_offset + 2 * h, h, h, gh))?,
                    )?;
                    {
                        let dzs = &mut f32s_mut(&mut dz)?[range.clone()];
                        for (bi, (row, d)) in gs
                            .chunks_exact(gh)
                            .zip(dzs.chunks_exact_mut(gh))
                            .enumerate()
                        {
                            for j in 0..h {
                                let r = row[h + j];
                                d[h + j] = drh[bi * h + j] * hprev[bi * h + j] * derivative(ra, r);
                            }
                        }
                    }
                    dh_next = matmul(
                        &dz,
                        &view(range.start, batch, 2 * h, gh),
                        p,
                        &transposed(view(u_offset, h, 2 * h, gh))?,
                    )?;
                    for (bi, row) in gs.chunks_exact(gh).enumerate() {
                        for j in 0..h {
                            let k = bi * h + j;
                            dh_next[k] += dh[k] * row[j] + drh[k] * row[h + j];
                        }
                    }
                }
            }
        }
        // Sums over time and batch as single products.
        let rows = steps * batch;
        let mut dp = vec![0f32; (inputs + h + bias_rows(self.cell)) * gh];
        let h_prev = transposed(view(0, rows, h, h))?;
        match self.cell {
            Cell::Gru { reset_after: false } => {
                let du_zr = matmul(&saved.hs, &h_prev, &dz, &view(0, rows, 2 * h, gh))?;
                let du_h = matmul(
                    &saved.extra,
                    &transposed(view(0, rows, h, h))?,
                    &dz,
                    &view(2 * h, rows, h, gh),
                )?;
                for k in 0..h {
                    let row = &mut dp[(inputs + k) * gh..(inputs + k + 1) * gh];
                    row[..2 * h].copy_from_slice(&du_zr[k * 2 * h..(k + 1) * 2 * h]);
                    row[2 * h..].copy_from_slice(&du_h[k * h..(k + 1) * h]);
                }
            }
            Cell::Gru { reset_after: true } => {
                let du = matmul(&saved.hs, &h_prev, &drec, &view(0, rows, gh, gh))?;
                dp[inputs * gh..(inputs + h) * gh].copy_from_slice(&du);
                let rb = &mut dp[(inputs + h + 1) * gh..];
                for row in f32s(&drec)?.chunks_exact(gh) {
                    rb.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                }
            }
            _ => {
                let du = matmul(&saved.hs, &h_prev, &dz, &view(0, rows, gh, gh))?;
                dp[inputs * gh..(inputs + h) * gh].copy_from_slice(&du);
            }
        }
        // dz in time order for the input side.
        let mut dz = if self.reverse {
            let d = f32s(&dz)?;
            let step = batch * gh;
            let mut out = scratch(d.len());
            for s in 0..steps {
                let t = self.time(s, steps);
                out[t * step..(t + 1) * step].copy_from_slice(&d[s * step..(s + 1) * step]);
            }
            recycle_storage(&mut dz);
            CpuStorage::F32(out)
        } else {
            dz
        };
        {
            let b = &mut dp[(inputs + h) * gh..(inputs + h + 1) * gh];
            for row in f32s(&dz)?.chunks_exact(gh) {
                b.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
        }
        let dw = matmul(
            x,
            &transposed(view(0, rows, inputs, inputs))?,
            &dz,
            &view(0, rows, gh, gh),
        )?;
        dp[..inputs * gh].copy_from_slice(&dw);
        let dx = matmul(
            &dz,
            &view(0, rows, gh, gh),
            p,
            &transposed(view(0, inputs, gh, gh))?,
        )?;
        recycle_storage(&mut dz);
        recycle_storage(&mut drec);
        Ok((dx, dp))
    }

    fn dims(&self, l1: &Layout, l2: &Layout) -> Result<(usize, usize, usize)> {
        let &[steps, batch, inputs] = l1.dims() else {
            bail!("fused recurrent op: x must be [time, batch, inputs]")
        };
        let rows = inputs + self.units + bias_rows(self.cell);
        if l2.dims() != [rows, self.gates() * self.units] {
            bail!(
                "fused recurrent op: parameters {:?}, expected [{rows}, {}]",
                l2.dims(),
                self.gates() * self.units
            )
        }
        if !l1.is_contiguous() || !l2.is_contiguous() {
            bail!("fused recurrent op: contiguous inputs only")
        }
        Ok((steps, batch, inputs))
    }
}

/// `out += b` element-wise.
fn add(out: &mut [f32], b: &[f32]) {
    out.iter_mut().zip(b).for_each(|(o, b)| *o += b);
}

/// One LSTM step's backward pass over the batch rows, element-wise part.
struct LstmRows<'a> {
    /// Activated gates `[B, 4H]` (i, f, g, o).
    gates: &'a [f32],
    /// Out: pre-activation gradients `[B, 4H]`.
    dz: &'a mut [f32],
    /// The gradient reaching `h` `[B, H]`.
    dh: &'a [f32],
    /// `a(c)` `[B, H]`.
    tc: &'a [f32],
    /// `c` before the step `[B, H]`.
    c_prev: &'a [f32],
    /// In: the gradient reaching `c` from the next step; out: the one for the previous step.
    dc: &'a mut [f32],
    units: usize,
}

impl LstmRows<'_> {
    /// `da`, `dra`: the cell and recurrent activations' derivatives from their outputs.
    #[inline(always)]
    fn backward(self, da: impl Fn(f32) -> f32, dra: impl Fn(f32) -> f32) {
        let h = self.units;
        let rows = self
            .gates
            .chunks_exact(4 * h)
            .zip(self.dz.chunks_exact_mut(4 * h))
            .zip(self.dh.chunks_exact(h))
            .zip(self.tc.chunks_exact(h))
            .zip(self.c_prev.chunks_exact(h))
            .zip(self.dc.chunks_exact_mut(h));
        for (((((row, d), dh), tc), c_prev), dc) in rows {
            let (i, rest) = row.split_at(h);
            let (f, rest) = rest.split_at(h);
            let (g, o) = rest.split_at(h);
            let (di, rest) = d.split_at_mut(h);
            let (df, rest) = rest.split_at_mut(h);
            let (dg, d_o) = rest.split_at_mut(h);
            // Simple zipped passes of few streams each: these the compiler vectorises (one
            // pass over all ten slices it does not).
            for (((dc, &dh), &o), &tc) in dc.iter_mut().zip(dh).zip(o).zip(tc) {
                *dc += dh * o * da(tc);
            }
            for (((d, &dh), &tc), &o) in d_o.iter_mut().zip(dh).zip(tc).zip(o) {
                *d = dh * tc * dra(o);
            }
            for (((d, &dc), &g), &i) in di.iter_mut().zip(&*dc).zip(g).zip(i) {
                *d = dc * g * dra(i);
            }
            for (((d, &dc), &cp), &f) in df.iter_mut().zip(&*dc).zip(c_prev).zip(f) {
                *d = dc * cp * dra(f);
            }
            for (((d, &dc), &i), &g) in dg.iter_mut().zip(&*dc).zip(i).zip(g) {
                *d = dc * i * da(g);
            }
            for (dc, &f) in dc.iter_mut().zip(f) {
                *dc *= f;
            }
        }
    }
}

/// `h' = z * h + (1 - z) * hh` into `hs[s + 1]`, as the runtime computes it.
fn gru_update(hs: &mut CpuStorage, s: usize, bh: usize, h: usize, gates: &[f32]) -> Result<()> {
    let all = f32s_mut(hs)?;
    let (prev, next) = all[s * bh..(s + 2) * bh].split_at_mut(bh);
    for (bi, row) in gates.chunks_exact(3 * h).enumerate() {
        for j in 0..h {
            let (z, hh) = (row[j], row[2 * h + j]);
            let k = bi * h + j;
            next[k] = z * prev[k] + (1.0 - z) * hh;
        }
    }
    Ok(())
}

impl CustomOp2 for Sequence {
    fn name(&self) -> &'static str {
        "edgernn-recurrent-sequence"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = self.dims(l1, l2)?;
        let (out, saved) = self.forward(s1, l1.start_offset(), dims, s2, l2.start_offset())?;
        *self.saved.lock().map_err(|_| {
            candle_core::Error::Msg("fused recurrent op: saved state poisoned by a panic".into())
        })? = Some(saved);
        Ok((
            CpuStorage::F32(out),
            Shape::from((dims.0, dims.1, self.units)),
        ))
    }

    fn bwd(
        &self,
        arg1: &Tensor,
        arg2: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (steps, batch, inputs) = arg1.dims3()?;
        let x = CpuStorage::F32(arg1.flatten_all()?.to_vec1::<f32>()?);
        let p = CpuStorage::F32(arg2.flatten_all()?.to_vec1::<f32>()?);
        let dy = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let saved = self
            .saved
            .lock()
            .map_err(|_| {
                candle_core::Error::Msg(
                    "fused recurrent op: saved state poisoned by a panic".into(),
                )
            })?
            .take();
        let saved = match saved {
            Some(s) => s,
            None => self.forward(&x, 0, (steps, batch, inputs), &p, 0)?.1,
        };
        let (dx, dp) = self.backward(&saved, &x, (steps, batch, inputs), &p, &dy)?;
        recycle(dy);
        Ok((
            Some(Tensor::from_vec(dx, arg1.shape(), arg1.device())?),
            Some(Tensor::from_vec(dp, arg2.shape(), arg2.device())?),
        ))
    }
}
