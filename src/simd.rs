//! Loops compiled twice: for the baseline target (x86-64: SSE2 only) and for AVX2, picked
//! at run time. Used for the element loops that are pure arithmetic without libm calls
//! (Philox, exp): with 256-bit vectors they do twice the lanes per instruction. Both copies
//! give identical bits: Rust never contracts `a * b + c` into an fma, and the operations
//! are the same IEEE ones.

/// Whether the AVX2 copies run: the CPU has AVX2 and `BRIAN2WGPU_CPU_SIMD` is not
/// `baseline` (a switch for comparing both).
pub fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVX2: OnceLock<bool> = OnceLock::new();
        *AVX2.get_or_init(|| {
            std::env::var("BRIAN2WGPU_CPU_SIMD").as_deref() != Ok("baseline")
                && std::is_x86_feature_detected!("avx2")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `fn $name(args) body` defined as `$portable` (the baseline copy, public for tests) and
/// `$name`, which runs an AVX2 copy of the same body where [`avx2`] allows.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident / $portable:ident ($($a:ident : $t:ty),* $(,)?) $body:block) => {
        #[inline(always)]
        $vis fn $portable($($a: $t),*) $body

        $(#[$m])*
        $vis fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn wide($($a: $t),*) {
                    $portable($($a),*)
                }
                if $crate::simd::avx2() {
                    // SAFETY: avx2() checked that the CPU has AVX2.
                    return unsafe { wide($($a),*) };
                }
            }
            $portable($($a),*)
        }
    };
}
pub(crate) use multiversion;
