//! x86_64 kernels. `avx2/`: AVX2 + FMA (Haswell and later, Zen). `avx512/`: AVX-512 F + BW +
//! VL (Skylake-SP and later, Zen 4), and with VNNI (Cascade Lake, Ice Lake, Zen 4).
//!
//! Selection, best first: `avx512vnni`, `avx512`, `avx2`. Each is compiled-in when the build
//! enables its target features (`-C target-cpu=native`, or `-C target-feature=...`);
//! otherwise, with the `std` feature (or in this crate's tests), detected at run time once and
//! cached.

pub mod avx2;
pub mod avx512;
mod lstm;

use super::Kernels;

/// The best x86_64 table this CPU can run, or `None` for the generic one.
#[inline]
pub(crate) fn best() -> Option<&'static Kernels> {
    avx512::kernels_vnni()
        .or_else(avx512::kernels)
        .or_else(avx2::kernels)
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
    static AVX512: AtomicU8 = AtomicU8::new(0);
    static AVX512_VNNI: AtomicU8 = AtomicU8::new(0);

    /// `detect()` asked once, its answer cached in `cell`.
    #[inline]
    fn cached(cell: &AtomicU8, detect: impl FnOnce() -> bool) -> bool {
        match cell.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => {
                let yes = detect();
                cell.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes
            }
        }
    }

    /// Whether the CPU has what the `avx512` table uses: AVX-512 F, BW and VL, and AVX2 + FMA
    /// (for the entries it takes from the AVX2 table).
    #[inline]
    pub(crate) fn avx512() -> bool {
        cached(&AVX512, || {
            avx2_fma()
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
        })
    }

    /// Whether the CPU has what the `avx512vnni` table uses: [`avx512`] and AVX-512 VNNI.
    #[inline]
    pub(crate) fn avx512_vnni() -> bool {
        cached(&AVX512_VNNI, || {
            avx512() && std::is_x86_feature_detected!("avx512vnni")
        })
    }

    /// Whether the CPU has AVX2 and FMA (asked once; later calls read the cached answer).
    #[inline]
    pub(crate) fn avx2_fma() -> bool {
        cached(&AVX2_FMA, || {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        })
    }
}
