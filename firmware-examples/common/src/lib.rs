//! Shared by the firmware examples: run host-computed test vectors through `Model::step`,
//! measure the stack by painting it, and mark each step for the QEMU instruction counter.

#![no_std]

use cortex_m_semihosting::hprintln;
use edgernn::model::Word;
use edgernn::Model;

mod stack;
pub use stack::{bench_start, bench_stop, paint_stack, stack_high_water};

#[path = "../../models/machine_temperature_int8.rs"]
mod machine_temperature;

/// The detector check both Cortex-M examples run: the README demo's int8 forecaster over the
/// first 4,500 machine-temperature readings, every score compared with the host's bit for bit.
pub fn run_machine_temperature_detector() -> bool {
    use machine_temperature as m;
    run_detector::<m::Word, { m::LAYERS }, { m::DETECT_WINDOW }>(
        &m::MODEL.0,
        &m::DETECT_SAMPLES,
        &m::DETECT_SCORES,
        &mut [m::Word::default(); m::STATE_LEN],
        &mut [m::Word::default(); m::STEP_SCRATCH_LEN],
    )
}

/// Streams `windows` x `steps` samples through the model (state reset per window), prints each
/// output, and compares it with the host's `expected` output; returns whether all matched.
/// Steps of the first window are bracketed by [`bench_start`]/[`bench_stop`].
#[allow(clippy::too_many_arguments)]
pub fn run_vectors<W: Word, const L: usize>(
    blob: &[u8],
    input: &[f32],
    expected: &[f32],
    windows: usize,
    steps: usize,
    tolerance: f32,
    state: &mut [W],
    scratch: &mut [W],
    out: &mut [f32],
) -> bool {
    // Built in place: one `Model` value on the stack, no copy of it while loading.
    let mut slot = None;
    let model: &Model<'_, L> = match Model::load_into(&mut slot, blob) {
        Ok(m) => m,
        Err(e) => {
            hprintln!("load failed: {}", e);
            return false;
        }
    };
    hprintln!(
        "model value: {} bytes; stack after load: {} bytes",
        core::mem::size_of::<Model<'_, L>>(),
        stack_high_water()
    );
    let features = model.input_features();
    let width = model.output_width();
    let mut worst = 0.0f32;
    let mut identical = true;
    let mut ok = true;
    for w in 0..windows {
        model.reset_state(state);
        for t in 0..steps {
            let at = (w * steps + t) * features;
            let x = &input[at..at + features];
            if w == 0 {
                bench_start();
            }
            let result = model.step(x, state, scratch, out);
            if w == 0 {
                bench_stop();
            }
            if let Err(e) = result {
                hprintln!("step failed: {}", e);
                return false;
            }
            let want = &expected[(w * steps + t) * width..][..width];
            for (&got, &exp) in out[..width].iter().zip(want) {
                identical &= got.to_bits() == exp.to_bits();
                let err = (got - exp).abs() / exp.abs().max(1.0);
                if !(err <= tolerance) {
                    ok = false;
                }
                worst = if err > worst { err } else { worst };
            }
            hprintln!("window {} step {}: {:?}", w, t, &out[..width]);
        }
    }
    hprintln!(
        "{} outputs checked against the host: max scaled error {:e}, bit-identical: {}, {}",
        windows * steps * width,
        worst,
        identical,
        if ok { "MATCH" } else { "MISMATCH" }
    );
    ok
}

/// Streams `samples` one at a time through a fresh anomaly detector on the model in `blob`,
/// prints every alarm, and compares every score with the host's `expected` score bit for bit;
/// returns whether all matched. The detector's updates over the first `BENCH_UPDATES`
/// samples after its window fills are bracketed by [`bench_start`]/[`bench_stop`].
pub fn run_detector<W: Word, const L: usize, const N: usize>(
    blob: &[u8],
    samples: &[f32],
    expected: &[f32],
    state: &mut [W],
    scratch: &mut [W],
) -> bool {
    /// Updates timed by the instruction counter (one bench window per update).
    const BENCH_UPDATES: usize = 16;
    // Built in place: one `Model` value on the stack, no copy of it while loading.
    let mut slot = None;
    let model: &Model<'_, L> = match Model::load_into(&mut slot, blob) {
        Ok(m) => m,
        Err(e) => {
            hprintln!("load failed: {}", e);
            return false;
        }
    };
    let mut detector = match edgernn::detect::Detector::<N>::for_model(model) {
        Ok(d) => d,
        Err(e) => {
            hprintln!("detector refused the model: {}", e);
            return false;
        }
    };
    let window = detector.params().window as usize;
    hprintln!(
        "detector: {} bytes (window {}), model state {} B + scratch {} B",
        core::mem::size_of::<edgernn::detect::Detector<N>>(),
        window,
        core::mem::size_of_val(state),
        core::mem::size_of_val(scratch)
    );
    let mut mismatches = 0usize;
    let mut alarms = 0usize;
    for (t, (&x, &want)) in samples.iter().zip(expected).enumerate() {
        let timed = (window..window + BENCH_UPDATES).contains(&t);
        if timed {
            bench_start();
        }
        let result = detector.update(model, x, state, scratch);
        if timed {
            bench_stop();
        }
        let d = match result {
            Ok(d) => d,
            Err(e) => {
                hprintln!("sample {}: {}", t, e);
                return false;
            }
        };
        if d.score.to_bits() != want.to_bits() {
            mismatches += 1;
        }
        if d.alarm {
            alarms += 1;
            hprintln!("alarm at sample {}: value {}, score {}", t, x, d.score);
        }
    }
    hprintln!(
        "{} samples through the detector, {} alarms; scores bit-identical to the host: {} ({} differ), {}",
        samples.len(),
        alarms,
        mismatches == 0,
        mismatches,
        if mismatches == 0 { "MATCH" } else { "MISMATCH" }
    );
    mismatches == 0
}

/// Prints the peak stack, then ends the run with `ok`'s status (see [`exit`]).
pub fn finish(ok: bool) -> ! {
    hprintln!("stack high-water: {} bytes", stack_high_water());
    exit(ok)
}

/// Ends a QEMU run with exit status 0 when `ok`, 1 otherwise (semihosting), so a firmware run
/// is a CI test; on a board without a debugger attached, parks the core.
pub fn exit(ok: bool) -> ! {
    cortex_m_semihosting::debug::exit(if ok {
        cortex_m_semihosting::debug::EXIT_SUCCESS
    } else {
        cortex_m_semihosting::debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}
