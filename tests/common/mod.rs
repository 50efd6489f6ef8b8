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
