//! x86_64 kernels. `avx2/`: AVX2 + FMA (Haswell and later, Zen).
//!
//! Selection: compiled-in when the build enables both target features (`-C target-cpu=native`
//! or `-C target-feature=+avx2,+fma`); otherwise, with the `std` feature (or in this crate's
//! tests), detected at run time once and cached.

pub mod avx2;

use super::Kernels;

/// The best x86_64 table this CPU can run, or `None` for the generic one.
#[inline]
pub(crate) fn best() -> Option<&'static Kernels> {
    avx2::kernels()
}

/// The first `cols` codes of words [`crate::kernels::generic::pack_i16`] packed (natural
/// order), as the i16 slice they are on this little-endian architecture.
pub(crate) fn packed_as_i16(packed: &[i32], cols: usize) -> &[i16] {
    let len = cols.min(packed.len() * 2);
    // SAFETY: `len` i16 values fit in `packed`'s bytes, and i32 alignment satisfies i16's.
    unsafe { core::slice::from_raw_parts(packed.as_ptr().cast::<i16>(), len) }
}

/// Runtime detection, cached: 0 = not yet asked, 1 = absent, 2 = present.
#[cfg(any(test, feature = "std"))]
pub(crate) mod detect {
    use core::sync::atomic::{AtomicU8, Ordering};

    static AVX2_FMA: AtomicU8 = AtomicU8::new(0);

    /// Whether the CPU has AVX2 and FMA (asked once; later calls read the cached answer).
    #[inline]
    pub(crate) fn avx2_fma() -> bool {
        match AVX2_FMA.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => {
                let yes =
                    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
                AVX2_FMA.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes
            }
        }
    }
}
