//! Stack painting and the instruction counter's markers: no formatting, no edgernn, so the
//! minimal example (which leaves out `core::fmt`) includes this file by `#[path]` instead of
//! depending on this crate.

/// The word painted over the free stack at boot.
const PAINT: u32 = 0xDEAD_BEEF;
/// Bytes below the current stack pointer left unpainted: room for the painting loop's own
/// calls in an unoptimised build (below the stack pointer nothing is live). They count as used,
/// so the margin is kept small: it is the error of the measurement.
const PAINT_MARGIN: usize = 64;

extern "C" {
    /// End of `.bss`/`.uninit`: the lowest address the stack may grow down to (cortex-m-rt).
    static mut __sheap: u32;
    /// Top of the stack (cortex-m-rt).
    static _stack_start: u32;
}

fn stack_bounds() -> (*mut u32, *const u32) {
    // Only the addresses of the linker symbols are taken; nothing is read through them here.
    (&raw mut __sheap, &raw const _stack_start)
}

/// Fills the unused stack with [`PAINT`] so [`stack_high_water`] can find how deep it went.
pub fn paint_stack() {
    let (bottom, _) = stack_bounds();
    let sp = cortex_m::register::msp::read() as usize - PAINT_MARGIN;
    let mut p = bottom;
    while (p as usize) < sp {
        // SAFETY: [__sheap, sp - margin) is RAM that nothing uses yet: below the live stack
        // frames and above all statics.
        unsafe { p.write_volatile(PAINT) };
        // SAFETY: stays within the same RAM region (checked by the loop condition).
        p = unsafe { p.add(1) };
    }
}

/// The deepest the stack has reached since [`paint_stack`], in bytes.
pub fn stack_high_water() -> usize {
    let (bottom, top) = stack_bounds();
    let mut p = bottom as *const u32;
    // SAFETY: reads words of the painted region, which lies in RAM below the stack top.
    while (p as usize) < top as usize && unsafe { p.read_volatile() } == PAINT {
        // SAFETY: as above.
        p = unsafe { p.add(1) };
    }
    top as usize - p as usize
}

/// The QEMU instruction counter counts from here... (never inlined, never merged).
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_start() {
    cortex_m::asm::nop();
}

/// ...to here.
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_stop() {
    cortex_m::asm::nop();
    cortex_m::asm::nop();
}
