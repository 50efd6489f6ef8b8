//! The WGSL backend: kernel IR → WGSL source, validated by naga.
//!
//! Binding 0 of group 0 holds the invocation parameters (element count, timestep, seed,
//! kernel id); each array the kernel touches follows as its own storage binding.

pub mod check;
pub mod polyfill;
mod writer;

use thiserror::Error;

use crate::ir::{Kernel, Type};

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "kernel '{kernel}' calls '{function}', which has no 'wgpu' implementation; add one with Function.implementations.add_implementation('wgpu', code=WGSL_SOURCE)"
    )]
    MissingImplementation { kernel: String, function: String },
    #[error("{0} is not supported in WGSL kernels")]
    Unsupported(String),
    #[error(
        "internal error: WGSL for kernel '{kernel}' failed naga validation:\n{message}\n{excerpt}"
    )]
    Invalid {
        kernel: String,
        message: String,
        excerpt: String,
    },
}

#[derive(Debug, Clone)]
pub struct Options {
    pub workgroup_size: u32,
    /// Iterate over `b2_list[b2_range[0]..b2_range[1]]` (events, recorded indices)
    /// instead of `0..n`.
    pub list: bool,
    /// Read the timestep for random streams from a `b2_step` binding (two u32 words: the
    /// clock's int64 timestep array) instead of the parameters, so that one parameter
    /// block serves every step of a batch.
    pub step_binding: bool,
    /// The device has f64 (SHADER_F64): float32 transcendentals then use the f64
    /// library for accuracy.
    pub f64: bool,
    /// Variables written by several elements through pure accumulation
    /// ([`crate::ir::Parallel::Atomic`]): added atomically, never loaded or stored.
    pub atomic: Vec<usize>,
    /// The threshold kernel's event flag (a boolean variable): each element where it holds
    /// adds 1 to its tile's counter in a `b2_tiles` binding, the first step of the event
    /// compaction in shaders/spikes.wgsl.
    pub count_tiles: Option<usize>,
    /// The device has native f32 `atomicAdd` (SHADER_FLOAT32_ATOMIC); without it f32
    /// accumulations are compare-and-swap loops.
    pub float_atomics: bool,
    /// With `list`: one invocation walks `b2_list[lo + b2_params[1] ..][.. b2_params[2]]`
    /// in order (the serial loop's semantics), dispatched as one workgroup of one.
    pub serial: bool,
    /// Per variable, the variable whose binding it uses: variables on one array (`A_pre`
    /// and `A_post` of one group) must share a binding, as a dispatch may not bind a
    /// buffer twice when one binding writes. Empty: each its own.
    pub alias: Vec<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            workgroup_size: 64,
            list: false,
            step_binding: false,
            f64: true,
            atomic: Vec::new(),
            float_atomics: false,
            count_tiles: None,
            serial: false,
            alias: Vec::new(),
        }
    }
}

/// Which kernel variable sits at which binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub var: usize,
    pub binding: u32,
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub struct WgslKernel {
    pub source: String,
    pub entry: String,
    pub bindings: Vec<Binding>,
    pub workgroup_size: u32,
    /// Bindings of `b2_list` (then `b2_range` right after) in list mode.
    pub list_binding: Option<u32>,
    /// Binding of `b2_posbase` (the record length) when the kernel writes records.
    pub pos_binding: Option<u32>,
    /// Binding of `b2_step` (see [`Options::step_binding`]).
    pub step_binding: Option<u32>,
    /// Binding of `b2_tiles` (see [`Options::count_tiles`]).
    pub tiles_binding: Option<u32>,
}

/// Flags per tile of the event compaction (`B2_SPK_TILE` in shaders/spikes.wgsl).
pub const COMPACT_TILE: u32 = 1024;

/// How the comment naming a generated kernel starts. Pipeline caches leave that line out
/// of their key: Brian2 renames its code objects on every run().
pub const KERNEL_NAME_COMMENT: &str = "// kernel '";

/// Number of u32 words before the per-variable offsets in a parameter block:
/// n, step_lo, step_hi, seed_lo, seed_hi, kernel_id, and two spare words.
pub const PARAM_HEADER: u32 = 8;

/// Arena storage types in binding order (bindings 1..=5) for batched modules.
pub const ARENA_TYPES: [Type; 5] = [Type::F64, Type::F32, Type::I32, Type::Bool, Type::I64];

pub use writer::write_batch;

/// Write a kernel as WGSL (not yet validated: see [`validate`]).
pub fn write_kernel(kernel: &Kernel, opts: &Options) -> Result<WgslKernel, Error> {
    writer::write(kernel, opts)
}

/// Write and validate with naga; a failure is a bug of ours and reports the offending lines.
pub fn compile(kernel: &Kernel, opts: &Options) -> Result<WgslKernel, Error> {
    let k = write_kernel(kernel, opts)?;
    check::validate(&kernel.name, &k.source)?;
    Ok(k)
}
