//! Stack painting and the instruction counter's markers: no formatting, no edgernn, so the
//! minimal example (which leaves out `core::fmt`) and the RISC-V example (which has no
//! `cortex-m`) include this file by `#[path]` instead of depending on this crate. Builds on
//! Cortex-M (cortex-m-rt) and on riscv32 (riscv-rt).

/// The word painted over the free stack at boot.
const PAINT: u32 = 0xDEAD_BEEF;
/// Bytes below the current stack pointer left unpainted: room for the painting loop's own
/// calls in an unoptimised build (below the stack pointer nothing is live). They count as used,
/// so the margin is kept small: it is the error of the measurement.
const PAINT_MARGIN: usize = 64;

extern "C" {
    /// The lowest address the stack may grow down to: the end of `.bss`/`.uninit` in
    /// cortex-m-rt, the end of the (empty) heap in riscv-rt.
    #[cfg_attr(target_arch = "arm", link_name = "__sheap")]
    #[cfg_attr(target_arch = "riscv32", link_name = "__estack")]
    static mut STACK_BOTTOM: u32;
    /// Top of the stack (the same name in both runtimes).
    #[link_name = "_stack_start"]
    static STACK_TOP: u32;
}

fn stack_bounds() -> (*mut u32, *const u32) {
    // Only the addresses of the linker symbols are taken; nothing is read through them here.
    (&raw mut STACK_BOTTOM, &raw const STACK_TOP)
}

#[cfg(target_arch = "arm")]
fn stack_pointer() -> usize {
    cortex_m::register::msp::read() as usize
}

#[cfg(target_arch = "riscv32")]
fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: copies `sp` into a register; touches no memory and no other register.
    unsafe { core::arch::asm!("mv {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

#[cfg(target_arch = "arm")]
use cortex_m::asm::nop;
#[cfg(target_arch = "riscv32")]
use riscv::asm::nop;

/// Fills the unused stack with [`PAINT`] so [`stack_high_water`] can find how deep it went.
pub fn paint_stack() {
    let (bottom, _) = stack_bounds();
    let sp = stack_pointer() - PAINT_MARGIN;
    let mut p = bottom;
    while (p as usize) < sp {
        // SAFETY: [STACK_BOTTOM, sp - margin) is RAM that nothing uses yet: below the live stack
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
    nop();
}

/// ...to here.
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_stop() {
    nop();
    nop();
}
