//! Run one compiled kernel once over host arrays: upload, dispatch, read back. The
//! engine's batched run loop builds on the same binding layout.

use super::{GpuContext, GpuError};
use crate::arrays::{ArrayMut, RunArgs};
use crate::ir::{Kernel, Type};
use crate::wgsl::WgslKernel;

/// Check that the device can run `kernel`, naming the way out if not.
///
/// float32 models compute in float64 wherever their values meet Brian2's `t`, `dt` or a
/// float64 constant (numpy's promotion); without SHADER_F64 the WGSL writer emulates that
/// float64 exactly (`shaders/soft_f64.wgsl`) and names what it cannot emulate. A float64
/// model would run wholly on the emulation: it is refused.
pub fn check_features(ctx: &GpuContext, kernel: &Kernel) -> Result<(), GpuError> {
    if kernel.float == Type::F64 && kernel.uses_type(Type::F64) && !ctx.supports_f64() {
        return Err(GpuError::MissingFeature {
            feature: "float64 (SHADER_F64)",
            adapter: ctx.info.name.clone(),
            advice: "set prefs.core.default_float_dtype = float32, or use backend 'cpu'",
        });
    }
    if kernel.uses_type(Type::I64) && !ctx.supports_i64() {
        return Err(GpuError::MissingFeature {
            feature: "64-bit integers (SHADER_INT64)",
            adapter: ctx.info.name.clone(),
            advice: "use backend 'cpu'",
        });
    }
    Ok(())
}

fn to_gpu_bytes(a: &ArrayMut) -> Vec<u8> {
    match a {
        ArrayMut::Bool(s) => s.iter().flat_map(|b| (*b as u32).to_le_bytes()).collect(),
        ArrayMut::I32(s) => bytemuck::cast_slice(s).to_vec(),
        ArrayMut::I64(s) => bytemuck::cast_slice(s).to_vec(),
        ArrayMut::F32(s) => bytemuck::cast_slice(s).to_vec(),
        ArrayMut::F64(s) => bytemuck::cast_slice(s).to_vec(),
        ArrayMut::None => Vec::new(),
    }
}

fn from_gpu_bytes(a: &mut ArrayMut, bytes: &[u8]) {
    match a {
        ArrayMut::Bool(s) => {
            for (o, w) in s.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = (u32::from_le_bytes([w[0], w[1], w[2], w[3]]) != 0) as u8;
            }
        }
        ArrayMut::I32(s) => bytemuck::cast_slice_mut::<i32, u8>(s).copy_from_slice(bytes),
        ArrayMut::I64(s) => bytemuck::cast_slice_mut::<i64, u8>(s).copy_from_slice(bytes),
        ArrayMut::F32(s) => bytemuck::cast_slice_mut::<f32, u8>(s).copy_from_slice(bytes),
        ArrayMut::F64(s) => bytemuck::cast_slice_mut::<f64, u8>(s).copy_from_slice(bytes),
        ArrayMut::None => {}
    }
}

/// Workgroup grid covering `n` elements, 2-D beyond the per-dimension limit.
pub fn grid(ctx: &GpuContext, n: usize, workgroup_size: u32) -> [u32; 3] {
    let groups = (n as u64).div_ceil(workgroup_size as u64).max(1);
    let max = ctx.limits.max_compute_workgroups_per_dimension as u64;
    let x = groups.min(max);
    [x as u32, groups.div_ceil(x) as u32, 1]
}

/// Upload `arrays` (indexed like `kernel.vars`), run once over `args.n` elements, and
/// copy written arrays back.
pub fn run_kernel(
    ctx: &GpuContext,
    kernel: &Kernel,
    compiled: &WgslKernel,
    arrays: &mut [ArrayMut],
    args: &RunArgs,
) -> Result<(), GpuError> {
    check_features(ctx, kernel)?;
    let step = args.step as u64;
    let params: [u32; 8] = [
        args.n as u32,
        step as u32,
        (step >> 32) as u32,
        args.seed as u32,
        (args.seed >> 32) as u32,
        args.kernel_id,
        0,
        0,
    ];
    let mut buffers = vec![bytemuck::cast_slice(&params).to_vec()];
    for b in &compiled.bindings {
        buffers.push(to_gpu_bytes(&arrays[b.var]));
    }
    let label = format!("kernel '{}'", kernel.name);
    ctx.run_compute_grid(
        &label,
        &compiled.source,
        &compiled.entry,
        &mut buffers,
        grid(ctx, args.n, compiled.workgroup_size),
    )?;
    for (b, bytes) in compiled.bindings.iter().zip(&buffers[1..]) {
        if !b.read_only {
            from_gpu_bytes(&mut arrays[b.var], bytes);
        }
    }
    Ok(())
}
