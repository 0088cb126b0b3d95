//! The integer kernels' benchmark on microcontrollers: three int8 models on 8 features (LSTM(32),
//! LSTM(64), GRU(64), each Normalization -> recurrent -> Dense(1), from `edgernn train`), each
//! streamed over one 16-step window from flash with every output checked bit for bit against
//! the host's. Each step is bracketed by `bench_start`/`bench_stop`, so the QEMU instruction
//! counter gives instructions per step per model, in this order, then on the Cortex-M4 the same
//! three with pre-packed weights (`count.sh` prints the table).
//! Exits 0 when every output matched (1 otherwise).

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use panic_semihosting as _;

#[path = "../../models/bench_lstm32_int8.rs"]
mod lstm32;
#[path = "../../models/bench_lstm64_int8.rs"]
mod lstm64;
#[path = "../../models/bench_gru64_int8.rs"]
mod gru64;
// The same models with pre-packed weights (`edgernn export --pack interleaved4`): run on the
// Cortex-M4 only, after the row-major ones (the Cortex-M0 has no kernel for that layout and
// would run the generic one).
#[path = "../../models/bench_lstm32_int8_packed.rs"]
mod lstm32_packed;
#[path = "../../models/bench_lstm64_int8_packed.rs"]
mod lstm64_packed;
#[path = "../../models/bench_gru64_int8_packed.rs"]
mod gru64_packed;

/// Runs one generated model's vectors with buffers sized by its constants.
macro_rules! check {
    ($m:ident) => {{
        cortex_m_semihosting::hprintln!("model {}", stringify!($m));
        firmware_common::run_vectors::<$m::Word, { $m::LAYERS }>(
            &$m::MODEL.0,
            &$m::VECTOR_INPUT,
            &$m::VECTOR_EXPECTED,
            $m::VECTOR_WINDOWS,
            $m::VECTOR_STEPS,
            0.0,
            &mut [$m::Word::default(); $m::STATE_LEN],
            &mut [$m::Word::default(); $m::STEP_SCRATCH_LEN],
            &mut [0.0; $m::OUTPUT_WIDTH],
        )
    }};
}

#[entry]
fn main() -> ! {
    firmware_common::paint_stack();
    // Every model runs even after a mismatch, so one run reports them all.
    let results = [check!(lstm32), check!(lstm64), check!(gru64)];
    let mut ok = results.iter().all(|&ok| ok);
    if cfg!(bench_packed) {
        let packed = [
            check!(lstm32_packed),
            check!(lstm64_packed),
            check!(gru64_packed),
        ];
        ok &= packed.iter().all(|&ok| ok);
    }
    firmware_common::finish(ok)
}
