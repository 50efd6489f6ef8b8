//! Shared helpers for the Rust integration tests.
#![allow(dead_code)]

use brian2wgpu::gpu::GpuContext;

/// The shared GPU context. Without an adapter, a test fails under `CI=true` and is
/// skipped (with a message) elsewhere, so a laptop without Vulkan can still run the suite.
pub fn gpu() -> Option<&'static GpuContext> {
    match GpuContext::shared() {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("CI requires a GPU adapter: {e}");
            }
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// splitmix64: deterministic and good enough to sample bit patterns.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn sign(&mut self) -> f64 {
        if self.next_u64() & 1 == 0 { 1.0 } else { -1.0 }
    }
}

/// Brian2's exprel as its numpy target computes it (brian2/units/unitsafefunctions.py;
/// its C++ and Cython versions agree): 1 for |x| < 1e-16, inf above 717.
pub fn exprel_ref(x: f64) -> f64 {
    if x.abs() < 1e-16 {
        1.0
    } else if x > 717.0 {
        f64::INFINITY
    } else {
        x.exp_m1() / x
    }
}
