// SpikeGeneratorGroup (Brian2's spikegenerator template, src/runtime/gpu/spikegen.rs), in
// two entry points with one binding table.
@group(0) @binding(0) var<storage, read> params: array<i32>;   // [period bins, N, spikes, max workgroups]
@group(0) @binding(1) var<storage, read> clock_step: array<u32>;     // the clock's int64 timestep
@group(0) @binding(2) var<storage, read> bins: array<i32>;
@group(0) @binding(3) var<storage, read_write> lastidx: array<i32>;
@group(0) @binding(4) var<storage, read_write> space: array<i32>;
// [first, count, -, -, x, y, z]: the events, and step 2's dispatch size (64 per group).
@group(0) @binding(5) var<storage, read_write> plan: array<u32>;
// The same buffer, read by step 2, which takes its dispatch size from it (a dispatch may
// not bind for writing the buffer it takes its sizes from).
@group(0) @binding(6) var<storage, read> planned: array<u32>;
@group(0) @binding(7) var<storage, read> neuron: array<i32>;

// Step 1 of 2: the events of this time bin are neuron[first .. first + count); one
// invocation finds them (a binary search), writes the count and the indirect dispatch
// size of step 2, and advances the last index.
@compute @workgroup_size(1)
fn spikegen_plan() {
    let n = u32(params[1]);
    let nb = u32(params[2]);
    let period = params[0];
    // Runs stay below 2^31 steps (the host checks), so the low word is the step.
    var bin = bitcast<i32>(clock_step[0]);
    var first = min(u32(lastidx[0]), nb);
    if (period > 0) {
        bin = bin % period;
        if (first > 0u && bins[first - 1u] >= bin) { first = 0u; }
    }
    var lo = first;
    var hi = nb;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (bins[mid] <= bin) { lo = mid + 1u; } else { hi = mid; }
    }
    let count = min(lo - first, n);
    space[n] = i32(count);
    lastidx[0] = i32(first + count);
    plan[0] = first;
    plan[1] = count;
    let groups = (count + 63u) / 64u;
    let x = min(groups, u32(params[3]));
    plan[4] = x;
    plan[5] = select(1u, (groups + x - 1u) / max(x, 1u), x > 0u);
    plan[6] = 1u;
}

// Step 2: one invocation per event of this bin.
@compute @workgroup_size(64)
fn spikegen_copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.y * nwg.x * 64u;
    if (k < planned[1]) {
        space[k] = neuron[planned[0] + k];
    }
}
