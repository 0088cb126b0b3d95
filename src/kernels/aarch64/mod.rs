//! aarch64 kernels. `neon/`: Advanced SIMD, part of every AArch64 CPU (the Raspberry Pi class
//! of edge gateways), so it is chosen at compile time whenever the target enables `neon`
//! (every `aarch64-*` target does by default).

pub mod neon;

/// The first `cols` codes of words [`crate::kernels::generic::pack_i16`] packed (natural
/// order), as the i16 slice they are on little-endian aarch64.
#[cfg(target_endian = "little")]
pub(crate) fn packed_as_i16(packed: &[i32], cols: usize) -> &[i16] {
    let len = cols.min(packed.len() * 2);
    // SAFETY: `len` i16 values fit in `packed`'s bytes, and i32 alignment satisfies i16's.
    unsafe { core::slice::from_raw_parts(packed.as_ptr().cast::<i16>(), len) }
}
