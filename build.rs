//! Selects kernels by target where `cfg(target_feature)` cannot: the Cortex-M4/M7 DSP
//! instructions (SMLAD, SXTB16) exist on every ARMv7E-M and ARMv8-M Mainline core with the DSP
//! extension, but rustc exposes no stable target feature for them.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(edgernn_arm_dsp)");
    println!("cargo:rerun-if-env-changed=TARGET");
    println!("cargo:rerun-if-env-changed=EDGERNN_NO_DSP");
    let target = std::env::var("TARGET").unwrap_or_default();
    if std::env::var_os("EDGERNN_NO_DSP").is_none() && target.starts_with("thumbv7em")
        || target.starts_with("thumbv8m.main")
    {
        println!("cargo:rustc-cfg=edgernn_arm_dsp");
    }
}
