//! Selects kernels by target where `cfg(target_feature)` cannot: rustc exposes no stable target
//! feature for the Cortex-M4/M7 DSP instructions (SMLAD, SXTB16, on every ARMv7E-M and ARMv8-M
//! Mainline core with the DSP extension), nor for "Thumb code on ARMv6-M or later", which the
//! Cortex-M0 kernel's assembly needs.
//!
//! * `edgernn_arm_dsp`: `thumbv7em*` and `thumbv8m.main*` targets, unless `EDGERNN_NO_DSP` is
//!   set (to measure the scalar kernel on those cores);
//! * `edgernn_arm_v6m`: every other `thumbv*` target (Cortex-M0/M0+, M3, ARMv8-M Baseline).
//!
//! With the `small` feature neither is set: Thumb targets then run the generic kernels. And
//! `edgernn_half_tables` is set on every target but x86-64 and AArch64: the activations read
//! the 129-sample half tables through their mirror (`quant::lut`), not unfolded 257-sample
//! ones, the least flash for the same bits.
//!
//! Other Arm targets (A32 code, pre-v6 cores) run the generic kernels.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(edgernn_arm_dsp)");
    println!("cargo:rustc-check-cfg=cfg(edgernn_arm_v6m)");
    println!("cargo:rustc-check-cfg=cfg(edgernn_half_tables)");
    println!("cargo:rerun-if-env-changed=TARGET");
    println!("cargo:rerun-if-env-changed=EDGERNN_NO_DSP");
    let target = std::env::var("TARGET").unwrap_or_default();
    // Cargo sets `CARGO_FEATURE_<NAME>` for the features a build script's package is built with.
    if std::env::var_os("CARGO_FEATURE_SMALL").is_some() {
        let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
        if arch != "x86_64" && arch != "aarch64" {
            println!("cargo:rustc-cfg=edgernn_half_tables");
        }
        return;
    }
    let has_dsp = target.starts_with("thumbv7em") || target.starts_with("thumbv8m.main");
    if has_dsp && std::env::var_os("EDGERNN_NO_DSP").is_none() {
        println!("cargo:rustc-cfg=edgernn_arm_dsp");
    } else if target.starts_with("thumbv") {
        println!("cargo:rustc-cfg=edgernn_arm_v6m");
    }
}
