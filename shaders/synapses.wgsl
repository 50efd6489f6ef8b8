// Support kernels of synaptic pathways (src/runtime/gpu/synapses.rs) beyond the spike
// queue (queue.wgsl).
//
// Pathways whose kernel needs the serial order only among one target's synapses
// (`v_post = v_post*0.5 + w`): the due list (`due[range[0]..range[1]]`, in queue order)
// is grouped by target, and the kernel runs one invocation per distinct target over its
// due positions in order (the generated kernel's `by_target` mode). The state `tgt`
// (u32): [0] distinct targets, [1] positions allocated, then per possible target
// (T = params[0]) its count (8 + t), its first position (8 + T + t) and a fill counter
// (8 + 2T + t), the distinct targets (8 + 3T + k) and the due positions grouped by target
// (8 + 4T + ...). Counts are zero between steps (the kernel clears each target's). `args`
// holds the kernel's indirect dispatch sizes (a buffer of its own: a dispatch cannot read
// its sizes from a buffer it binds for writing). Dispatched per due position:
// `b2_tgt_count`, `b2_tgt_offsets` (over the first `tgt[0]` of them), `b2_tgt_scatter`;
// `b2_tgt_reset` first (one invocation).
@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> range: array<u32>;
@group(0) @binding(2) var<storage, read> due: array<i32>;
@group(0) @binding(3) var<storage, read> post: array<i32>;
@group(0) @binding(4) var<storage, read_write> tgt: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> args: array<atomic<u32>>;

// The due position of this invocation and its target, or false past the end.
fn due_target(gid: vec3<u32>, nwg: vec3<u32>, j: ptr<function, u32>, t: ptr<function, u32>) -> bool {
    *j = gid.x + gid.y * nwg.x * 64u;
    let lo = range[0];
    if (*j >= range[1] - lo) { return false; }
    *t = u32(post[u32(due[lo + *j])]);
    return *t < params[0];
}

@compute @workgroup_size(1)
fn b2_tgt_reset() {
    _ = params[0];
    _ = range[0];
    _ = due[0];
    _ = post[0];
    atomicStore(&tgt[0], 0u);
    atomicStore(&tgt[1], 0u);
    atomicStore(&args[0], 0u);
    atomicStore(&args[1], 1u);
    atomicStore(&args[2], 1u);
}

@compute @workgroup_size(64)
fn b2_tgt_count(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    var j = 0u;
    var t = 0u;
    if (!due_target(gid, nwg, &j, &t)) { return; }
    let nt = params[0];
    if (atomicAdd(&tgt[8u + t], 1u) == 0u) {
        let k = atomicAdd(&tgt[0], 1u);
        atomicStore(&tgt[8u + 3u * nt + k], t);
        // The kernel's grid: 64 targets per workgroup, rows past the x limit.
        let groups = k / 64u + 1u;
        let max_x = params[1];
        atomicMax(&args[0], min(groups, max_x));
        atomicMax(&args[1], (groups + max_x - 1u) / max_x);
    }
}

@compute @workgroup_size(64)
fn b2_tgt_offsets(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    _ = atomicLoad(&args[0]);
    _ = range[0];
    _ = due[0];
    _ = post[0];
    let k = gid.x + gid.y * nwg.x * 64u;
    if (k >= atomicLoad(&tgt[0])) { return; }
    let nt = params[0];
    let t = atomicLoad(&tgt[8u + 3u * nt + k]);
    let c = atomicLoad(&tgt[8u + t]);
    atomicStore(&tgt[8u + nt + t], atomicAdd(&tgt[1], c));
    atomicStore(&tgt[8u + 2u * nt + t], 0u);
}

@compute @workgroup_size(64)
fn b2_tgt_scatter(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    var j = 0u;
    var t = 0u;
    _ = atomicLoad(&args[0]);
    if (!due_target(gid, nwg, &j, &t)) { return; }
    let nt = params[0];
    let slot = atomicLoad(&tgt[8u + nt + t]) + atomicAdd(&tgt[8u + 2u * nt + t], 1u);
    atomicStore(&tgt[8u + 4u * nt + slot], j);
}


// Pathways whose kernel writes through both indices (`c_pre = c_pre*0.5 + v_post` beside
// `v_post = v_post*0.9 + w`, or a recurrent `v_post = v_post + v_pre`): two due synapses
// interact only through a shared pre or post value, so the due list splits into
// independent sets, the connected components of "shares a key". Keys: the first index's
// values, then the second's from params[2] (0 when both name the same neurons), T =
// params[0] in all. A union-find over the keys touched this step (`uf`: parent per key;
// roots hooked under smaller roots, so no cycle forms) gives each due synapse its set's
// root (`comp`, per synapse), and the grouping above then runs with `comp` bound in place
// of `post`: one invocation per set, over its synapses in queue order. Dispatched per due
// position: `b2_uf_init`, `b2_uf_union`, `b2_uf_find`.
@group(0) @binding(6) var<storage, read> pre: array<i32>;
@group(0) @binding(7) var<storage, read_write> uf: array<atomic<u32>>;
@group(0) @binding(8) var<storage, read_write> comp: array<i32>;

// This invocation's due synapse and its two keys, or false past the end.
fn due_keys(gid: vec3<u32>, nwg: vec3<u32>, s: ptr<function, u32>, a: ptr<function, u32>, b: ptr<function, u32>) -> bool {
    let j = gid.x + gid.y * nwg.x * 64u;
    let lo = range[0];
    if (j >= range[1] - lo) { return false; }
    *s = u32(due[lo + j]);
    *a = u32(pre[*s]);
    *b = u32(post[*s]) + params[2];
    return true;
}

fn keys_valid(a: u32, b: u32) -> bool {
    return a < params[0] && b < params[0];
}

// The root of key x's set, halving the path on the way (every parent is an ancestor,
// so the concurrent stores of other invocations keep the forest valid).
fn uf_root(x0: u32) -> u32 {
    var x = x0;
    loop {
        let p = atomicLoad(&uf[x]);
        if (p == x) { break; }
        let g = atomicLoad(&uf[p]);
        if (g == p) {
            x = p;
            break;
        }
        atomicStore(&uf[x], g);
        x = g;
    }
    return x;
}

@compute @workgroup_size(64)
fn b2_uf_init(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    var s = 0u;
    var a = 0u;
    var b = 0u;
    if (!due_keys(gid, nwg, &s, &a, &b) || !keys_valid(a, b)) { return; }
    atomicStore(&uf[a], a);
    atomicStore(&uf[b], b);
}

@compute @workgroup_size(64)
fn b2_uf_union(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    var s = 0u;
    var a = 0u;
    var b = 0u;
    if (!due_keys(gid, nwg, &s, &a, &b) || !keys_valid(a, b)) { return; }
    var ra = uf_root(a);
    var rb = uf_root(b);
    loop {
        if (ra == rb) { break; }
        let hi = max(ra, rb);
        let lo = min(ra, rb);
        // Fails where hi stopped being a root meanwhile (or spuriously): look again.
        if (atomicCompareExchangeWeak(&uf[hi], hi, lo).exchanged) { break; }
        ra = uf_root(hi);
        rb = uf_root(lo);
    }
}

@compute @workgroup_size(64)
fn b2_uf_find(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    var s = 0u;
    var a = 0u;
    var b = 0u;
    if (!due_keys(gid, nwg, &s, &a, &b)) { return; }
    // An invalid index keeps the synapse out of every set, as the grouping by target does.
    var root = -1;
    if (keys_valid(a, b)) { root = i32(uf_root(a)); }
    comp[s] = root;
}
