//! Criterion benches of the hot-path kernels, the table this CPU runs against the generic
//! reference, on the shapes of an LSTM with 8 input features: the recurrent product
//! `[4H x H]` in f32, with int8 weights, and the integer projection (products, bias,
//! requantization), for H = 32..256. `cargo bench -p edgernn-tools --bench kernels`.
//!
//! The model-level figures (ns per step, GFLOP/s against ONNX Runtime) come from `edgernn bench`;
//! these isolate the kernels, so a kernel change can be judged on its own.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgernn::kernels::{
    active, packed_len, F32View, I32View, Kernels, RequantView, RowsI8, GENERIC,
};
use edgernn::quant::Requant;

const UNITS: [usize; 4] = [32, 64, 128, 256];

/// Deterministic pseudo-random bytes (xorshift), so every run times the same data.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The tables to compare: this CPU's best and the generic reference (once if they are the same).
fn tables() -> Vec<&'static Kernels> {
    let best = active();
    if best.name == GENERIC.name {
        vec![&GENERIC]
    } else {
        vec![best, &GENERIC]
    }
}

fn matvec(c: &mut Criterion) {
    let mut group = c.benchmark_group("recurrent product f32 [4H x H]");
    for units in UNITS {
        let (rows, cols) = (4 * units, units);
        let weights: Vec<u8> = (0..rows * cols)
            .flat_map(|i| (((i * 37) % 101) as f32 / 101.0 - 0.5).to_le_bytes())
            .collect();
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut y = vec![0.0f32; rows];
        group.throughput(Throughput::Elements((rows * cols) as u64));
        for table in tables() {
            group.bench_function(BenchmarkId::new(table.name, units), |b| {
                b.iter(|| {
                    (table.matvec_f32)(F32View::new(black_box(&weights)), black_box(&x), &mut y)
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("recurrent product int8 weights [4H x H]");
    for units in UNITS {
        let (rows, cols) = (4 * units, units);
        let weights = bytes(rows * cols, 7);
        let scales: Vec<u8> = (0..rows).flat_map(|_| 0.01f32.to_le_bytes()).collect();
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut y = vec![0.0f32; rows];
        group.throughput(Throughput::Elements((rows * cols) as u64));
        for table in tables() {
            group.bench_function(BenchmarkId::new(table.name, units), |b| {
                b.iter(|| {
                    (table.matvec_i8w)(
                        black_box(&weights),
                        F32View::new(&scales),
                        black_box(&x),
                        &mut y,
                    )
                })
            });
        }
    }
    group.finish();
}

fn projection(c: &mut Criterion) {
    let mut group = c.benchmark_group("integer projection [4H x H]");
    for units in UNITS {
        let (rows, cols) = (4 * units, units);
        let weights = bytes(rows * cols, 11);
        let bias: Vec<u8> = (0..rows as i32)
            .flat_map(|r| (r * 97 - 5000).to_le_bytes())
            .collect();
        // A realistic factor (int8 codes into Q3.12 gate pre-activations).
        let factor = Requant::from_f64(3.1e-4)
            .and_then(|r| r.pack())
            .unwrap_or(0);
        let requant: Vec<u8> = (0..rows).flat_map(|_| factor.to_le_bytes()).collect();
        let codes: Vec<i32> = bytes(cols, 13)
            .iter()
            .map(|&b| i32::from(b as i8))
            .collect();
        let mut out = vec![0i32; rows];
        group.throughput(Throughput::Elements((rows * cols) as u64));
        for table in tables() {
            let mut packed = vec![0i32; packed_len(cols)];
            (table.pack_i16)(&codes, &mut packed);
            let view = RowsI8 {
                weights: &weights,
                bias: I32View::new(&bias),
                requant: RequantView::new(I32View::new(&requant)),
            };
            group.bench_function(BenchmarkId::new(table.name, units), |b| {
                b.iter(|| {
                    (table.project_i8)(black_box(&view), black_box(&packed), cols, &mut out, false)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, matvec, projection);
criterion_main!(benches);
