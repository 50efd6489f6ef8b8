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
