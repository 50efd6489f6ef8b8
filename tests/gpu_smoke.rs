//! The GPU harness runs a trivial kernel on whatever adapter is present (lavapipe in CI).

mod common;

#[test]
fn doubles_a_buffer() {
    let Some(ctx) = common::gpu() else { return };
    let data: Vec<f32> = (0..256).map(|i| i as f32).collect();
    let mut bufs = vec![bytemuck::cast_slice(&data).to_vec()];
    let src = "@group(0) @binding(0) var<storage, read_write> a: array<f32>;\n\
               @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {\n\
               if (id.x < arrayLength(&a)) { a[id.x] = a[id.x] * 2.0; } }";
    ctx.run_compute("double", src, "main", &mut bufs, 4)
        .unwrap();
    let out: &[f32] = bytemuck::cast_slice(&bufs[0]);
    for (i, v) in out.iter().enumerate() {
        assert_eq!(*v, 2.0 * i as f32);
    }
}

/// NaN, infinities and signed zeros survive the driver's compiler (the pipelines are
/// IEEE-exact on Vulkan: see `gpu::spirv`), where WGSL alone lets Mesa fold `v - v` to 0
/// and `v / v` to 1. (Mesa 22.3 still folds `v + 0.0` to v, wrong for -0, and products
/// and quotients with a zero known at compile time.)
#[test]
fn special_values_survive_algebraic_simplification() {
    let Some(ctx) = common::gpu() else { return };
    let x: Vec<f32> = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 1.5];
    let mut bufs = vec![
        bytemuck::cast_slice(&x).to_vec(),
        vec![0u8; x.len() * 4 * 4],
    ];
    let src = "@group(0) @binding(0) var<storage, read> x: array<f32>;\n\
               @group(0) @binding(1) var<storage, read_write> o: array<f32>;\n\
               @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {\n\
               let n = arrayLength(&x); let i = id.x; if (i >= n) { return; }\n\
               let v = x[i];\n\
               o[i] = (v - v) * 2.0; o[n + i] = v - v; o[2u * n + i] = v * 0.5; o[3u * n + i] = v / v; }";
    ctx.run_compute("special", src, "main", &mut bufs, 1)
        .unwrap();
    let out: &[f32] = bytemuck::cast_slice(&bufs[1]);
    let n = x.len();
    for (i, &v) in x.iter().enumerate() {
        let want = [(v - v) * 2.0, v - v, v * 0.5, v / v];
        for (k, w) in want.iter().enumerate() {
            let got = out[k * n + i];
            assert!(
                got.to_bits() == w.to_bits() || (got.is_nan() && w.is_nan()),
                "op {k} on {v}: got {got}, want {w}"
            );
        }
    }
}
