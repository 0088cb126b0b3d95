//! 32-bit Arm kernels. `dsp`: the Cortex-M4/M7/M33 DSP extension (SMLAD, SXTB16), selected at
//! compile time by the build script's `edgernn_arm_dsp` cfg for ARMv7E-M and ARMv8-M Mainline
//! targets.

pub mod dsp;
