// SpatialNeuron's cable equation (src/runtime/gpu/cable.rs; the host version and the
// algorithm's description are in src/runtime/cable.rs). `Value` (the model's float type)
// is a type alias the host declares in front of this file.
//
// The run's constant coefficients and the morphology come packed in two buffers (Brian2
// computes them on the host before each run); the solutions and the coupling system live
// in two scratch buffers of the run. Sizes: n compartments, s sections, children rows of
// `row` entries.
@group(0) @binding(0) var<storage, read> params: array<u32>;          // [n, s, row]
// ab_star0, ab_star1, ab_star2, b_plus, b_minus, Cm (n each), invr0, invrn (s each), dt
@group(0) @binding(1) var<storage, read> coef: array<Value>;
// starts, ends, parent, idxchild (s each), children_num (s + 1), children ((s + 1) row),
// each compartment's section (n; -1: none)
@group(0) @binding(2) var<storage, read> morph: array<i32>;
// v_star, u_plus, u_minus, c (n each)
@group(0) @binding(3) var<storage, read_write> sol: array<Value>;
// P_diag, B (s + 1 each), P_parent (s), P_children ((s + 1) row)
@group(0) @binding(4) var<storage, read_write> tree: array<Value>;
@group(0) @binding(5) var<storage, read_write> v: array<Value>;
@group(0) @binding(6) var<storage, read> gtot: array<Value>;
@group(0) @binding(7) var<storage, read> i0: array<Value>;
@group(0) @binding(8) var<storage, read> v_previous: array<Value>;
@group(0) @binding(9) var<storage, read_write> ic: array<Value>;

// Loops run in blocks: lavapipe ends a loop after 65,535 iterations per invocation.
const BLOCK: u32 = 16384u;

fn dt() -> Value {
    let n = params[0];
    let s = params[1];
    return coef[6u * n + 2u * s];
}

// One invocation per section: the Thomas algorithm for v*, u+ and u- (the first
// compartment of a section has no axial conductance towards the one before it).
@compute @workgroup_size(64)
fn cable_sections(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    let n = params[0];
    let s = params[1];
    if (i >= s) { return; }
    let start = u32(morph[i]);
    let end = u32(morph[s + i]);
    let step = dt();
    var c_prev = Value(0);
    var vs_prev = Value(0);
    var up_prev = Value(0);
    var um_prev = Value(0);
    for (var blk = start; blk < end; blk += BLOCK) {
        let hi = min(blk + BLOCK, end);
        for (var j = blk; j < hi; j++) {
            var vs = -(coef[5u * n + j] / step * v[j]) - i0[j];
            var up = coef[3u * n + j];
            var um = coef[4u * n + j];
            let bi = coef[n + j] - gtot[j];
            var c = Value(0);
            if (j + 1u < n) { c = coef[j + 1u]; }
            if (j > start) {
                let ai = coef[2u * n + j - 1u];
                let m = Value(1) / (bi - ai * c_prev);
                c = c * m;
                vs = (vs - ai * vs_prev) * m;
                up = (up - ai * up_prev) * m;
                um = (um - ai * um_prev) * m;
            } else {
                c = c / bi;
                vs = vs / bi;
                up = up / bi;
                um = um / bi;
            }
            sol[j] = vs;
            sol[n + j] = up;
            sol[2u * n + j] = um;
            sol[3u * n + j] = c;
            c_prev = c;
            vs_prev = vs;
            up_prev = up;
            um_prev = um;
        }
    }
    // Back substitution from the second-to-last compartment down to the first.
    let len = end - start;
    for (var blk = 1u; blk < len; blk += BLOCK) {
        let hi = min(blk + BLOCK, len);
        for (var k = blk; k < hi; k++) {
            let j = end - 1u - k;
            let c = sol[3u * n + j];
            vs_prev = sol[j] - c * vs_prev;
            up_prev = sol[n + j] - c * up_prev;
            um_prev = sol[2u * n + j] - c * um_prev;
            sol[j] = vs_prev;
            sol[n + j] = up_prev;
            sol[2u * n + j] = um_prev;
        }
    }
}

// One invocation: the coupling system over the section tree (row 0 the root, row i + 1
// the end of section i), eliminated from the leaves up and substituted back down.
@compute @workgroup_size(1)
fn cable_couple() {
    let n = params[0];
    let s = params[1];
    let row = params[2];
    let diag = 0u;
    let rhs = s + 1u;
    let low = 2u * (s + 1u);
    let up = low + s;
    for (var blk = 0u; blk < s; blk += BLOCK) {
        for (var i = blk; i < min(blk + BLOCK, s); i++) {
            let parent = u32(morph[2u * s + i]);
            let first = u32(morph[i]);
            let last = u32(morph[s + i]) - 1u;
            let invr0 = coef[6u * n + i];
            let invrn = coef[6u * n + s + i];
            if (i == 0u) {
                // The first section's start is a sealed end.
                tree[diag] = sol[2u * n + first] - Value(1);
                tree[up] = sol[n + first];
                tree[rhs] = -sol[first];
            } else {
                tree[diag + parent] += (Value(1) - sol[2u * n + first]) * invr0;
                tree[up + parent * row + u32(morph[3u * s + i])] = -sol[n + first] * invr0;
                tree[rhs + parent] += sol[first] * invr0;
            }
            tree[diag + i + 1u] = (Value(1) - sol[n + last]) * invrn;
            tree[low + i] = -sol[2u * n + last] * invrn;
            tree[rhs + i + 1u] = sol[last] * invrn;
        }
    }
    let kids = 4u * s;
    let table = kids + s + 1u;
    for (var blk = 0u; blk <= s; blk += BLOCK) {
        for (var r = blk; r < min(blk + BLOCK, s + 1u); r++) {
            let i = s - r;
            let count = u32(morph[kids + i]);
            for (var k = 0u; k < count; k++) {
                let j = u32(morph[table + i * row + k]);
                let subfac = tree[up + i * row + k] / tree[diag + j];
                tree[diag + i] = tree[diag + i] - subfac * tree[low + j - 1u];
                tree[rhs + i] = tree[rhs + i] - subfac * tree[rhs + j];
            }
        }
    }
    tree[rhs] = tree[rhs] / tree[diag];
    for (var blk = 1u; blk <= s; blk += BLOCK) {
        for (var i = blk; i < min(blk + BLOCK, s + 1u); i++) {
            let j = u32(morph[2u * s + i - 1u]);
            tree[rhs + i] = tree[rhs + i] - tree[low + i - 1u] * tree[rhs + j];
            tree[rhs + i] = tree[rhs + i] / tree[diag + i];
        }
    }
}

// One invocation per compartment: v from its section's three solutions and the voltages
// at the section's ends, then the capacitive current.
@compute @workgroup_size(64)
fn cable_combine(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = gid.x + gid.y * nwg.x * 64u;
    let n = params[0];
    let s = params[1];
    let row = params[2];
    if (j >= n) { return; }
    let sec = morph[5u * s + 1u + (s + 1u) * row + j];
    var vj = v[j];
    if (sec >= 0) {
        let rhs = s + 1u;
        let b_parent = tree[rhs + u32(morph[2u * s + u32(sec)])];
        let b_here = tree[rhs + u32(sec) + 1u];
        vj = sol[j] + b_parent * sol[2u * n + j] + b_here * sol[n + j];
        v[j] = vj;
    }
    ic[j] = coef[5u * n + j] * (vj - v_previous[j]) / dt();
}
