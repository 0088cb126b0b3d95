//! aarch64 kernels. `neon/`: Advanced SIMD, part of every AArch64 CPU (the Raspberry Pi class
//! of edge gateways), so it is chosen at compile time whenever the target enables `neon`
//! (every `aarch64-*` target does by default).

pub mod neon;
