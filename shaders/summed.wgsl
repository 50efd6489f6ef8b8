// Summed variables (src/runtime/gpu/summed.rs). `Value` (the variable's type) and `Acc`
// (the accumulator's) are type aliases the host declares in front of this file, with
// `b2_acc_zero`, `b2_acc_add(Acc, Value)` and `b2_acc_value(Acc)`.
//
// target[start + j] = sum of values over the synapses of target j, in ascending synapse
// order, accumulated in float64 like numpy's bincount (emulated where the device has no
// f64: shaders/soft_f64.wgsl).
@group(0) @binding(0) var<storage, read> params: array<u32>;   // [start, width]
@group(0) @binding(1) var<storage, read> csr: array<u32>;      // offsets (width + 1), ids
@group(0) @binding(2) var<storage, read> values: array<Value>;
@group(0) @binding(3) var<storage, read_write> tgt: array<Value>;

@compute @workgroup_size(64)
fn summed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = gid.x + gid.y * nwg.x * 64u;
    let width = params[1];
    if (j >= width) { return; }
    let base = width + 1u;
    var acc = b2_acc_zero();
    let hi = csr[j + 1u];
    var s = csr[j];
    // Four per iteration: lavapipe ends loops after 65535 iterations per invocation.
    for (; s + 4u <= hi; s += 4u) {
        acc = b2_acc_add(acc, values[csr[base + s]]);
        acc = b2_acc_add(acc, values[csr[base + s + 1u]]);
        acc = b2_acc_add(acc, values[csr[base + s + 2u]]);
        acc = b2_acc_add(acc, values[csr[base + s + 3u]]);
    }
    for (; s < hi; s++) {
        acc = b2_acc_add(acc, values[csr[base + s]]);
    }
    tgt[params[0] + j] = b2_acc_value(acc);
}

