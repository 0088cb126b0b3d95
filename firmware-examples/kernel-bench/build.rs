//! Puts the memory map of the board this build targets where cortex-m-rt's link.x finds it:
//! `memory-m0.x` (micro:bit) for thumbv6m, `memory-m4.x` (mps2-an386) otherwise.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target = env::var("TARGET").unwrap_or_default();
    let map = if target.starts_with("thumbv6m") {
        "memory-m0.x"
    } else {
        "memory-m4.x"
    };
    fs::copy(map, out.join("memory.x")).expect("memory map");
    // The pre-packed models run on the Cortex-M4 only (see src/main.rs).
    println!("cargo:rustc-check-cfg=cfg(bench_packed)");
    if !target.starts_with("thumbv6m") {
        println!("cargo:rustc-cfg=bench_packed");
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={map}");
}
