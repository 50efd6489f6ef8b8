// Event compaction for Brian2's spikespace / eventspace.
//
// Layout of an eventspace for a group of N neurons: an i32 array of length N + 1.
//   space[0 .. count)  the indices of the neurons that had an event this step, ascending
//   space[count .. N)  left as they were (stale entries; nobody reads them)
//   space[N]           count
//
// The threshold kernel writes one flag per neuron (nonzero = event); the compaction below
// turns the flags into the ordered list. Brian2's semantics (and deterministic results)
// need the ascending order, so this is a prefix-sum compaction, not an atomic append.
// `b2_event_range` then finds the slice of that list that falls into a subgroup's
// [start, stop) index range, for monitors and resets of subgroups.
//
// Compaction runs over tiles of B2_SPK_TILE flags in three steps, none of which waits on
// another workgroup (WebGPU promises no forward progress between workgroups):
//   1. count: every flagged element adds 1 to its tile's counter (the threshold kernel
//      does this itself as it writes the flags; `b2_compact_count` does it for flags
//      written elsewhere);
//   2. `b2_compact_scan`: one workgroup turns the counters into each tile's first output
//      position and writes the total to space[N];
//   3. `b2_compact_scatter`: one workgroup per tile writes its events, in order, from that
//      position on, and zeroes its counter for the next step.
// Work per invocation is constant in steps 1 and 3 (16 flags, at most 64 partial sums);
// in step 2 each of the 64 invocations sums N / (64 * B2_SPK_TILE) counters.
//
// All entry points share the five bindings below. Names carry the `b2_spk_` prefix
// because these entry points are concatenated into modules with other bindings.
//
// The pipeline layout is derived from each entry point, and callers bind all five
// buffers to every entry point (unused ones may be small dummies), so each entry point
// statically uses every binding; see `b2_spk_touch`.

// [0] = N, [1] = start, [2] = stop (the subgroup range for `b2_event_range`), [3] = the
// device's maximum workgroups per grid dimension, [4] = the workgroup size of the kernels
// that `b2_event_range` sizes.
@group(0) @binding(0) var<storage, read> b2_spk_params: array<u32>;
// N flags, nonzero = event (only read here).
@group(0) @binding(1) var<storage, read_write> b2_spk_flags: array<u32>;
// The eventspace, N + 1 entries.
@group(0) @binding(2) var<storage, read_write> b2_spk_space: array<i32>;
// Output of `b2_event_range`: [lo, hi) positions in the eventspace, then (from word 4)
// the indirect dispatch arguments of a kernel with one invocation per event, and (from
// word 8) the same with at least one workgroup.
@group(0) @binding(3) var<storage, read_write> b2_spk_range: array<u32>;
// One counter per tile (ceil(N / B2_SPK_TILE) entries), zero between steps.
@group(0) @binding(4) var<storage, read_write> b2_spk_tiles: array<atomic<u32>>;

// Flags per tile: 64 invocations of `b2_compact_scatter` times 16 flags each. The
// threshold kernel's writer uses the same number (src/wgsl: COMPACT_TILE).
const B2_SPK_TILE: u32 = 1024u;
const B2_SPK_PER_THREAD: u32 = 16u;

var<workgroup> b2_spk_part: array<u32, 64>;

// Make the entry point statically use all five bindings without reading or writing any
// element (arrayLength only queries the buffer size), so that a bind group with all five
// buffers matches the derived layout even where a buffer is a tiny dummy.
fn b2_spk_touch() -> u32 {
    return arrayLength(&b2_spk_params) + arrayLength(&b2_spk_flags)
        + arrayLength(&b2_spk_space) + arrayLength(&b2_spk_range)
        + arrayLength(&b2_spk_tiles);
}

// 1 if neuron i has an event, else 0.
fn b2_spk_event(i: u32) -> u32 {
    return select(0u, 1u, b2_spk_flags[i] != 0u);
}

// Append neuron i at *pos if it has an event.
fn b2_spk_emit(i: u32, pos: ptr<function, u32>) {
    if (b2_spk_flags[i] != 0u) {
        b2_spk_space[*pos] = i32(i);
        *pos += 1u;
    }
}

// Step 1 for flags that no threshold kernel counted: one invocation per flag.
@compute @workgroup_size(64)
fn b2_compact_count(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    _ = b2_spk_touch();
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i < b2_spk_params[0] && b2_spk_flags[i] != 0u) {
        atomicAdd(&b2_spk_tiles[i / B2_SPK_TILE], 1u);
    }
}

// Step 2: exclusive prefix sums of the tile counters, in place. Dispatch ONE workgroup.
@compute @workgroup_size(64)
fn b2_compact_scan(@builtin(local_invocation_index) t: u32) {
    _ = b2_spk_touch();
    let n = b2_spk_params[0];
    let tiles = (n + B2_SPK_TILE - 1u) / B2_SPK_TILE;
    let chunk = (tiles + 63u) / 64u;
    let begin = min(t * chunk, tiles);
    let end = min(begin + chunk, tiles);
    var sum = 0u;
    for (var b = begin; b < end; b++) {
        sum += atomicLoad(&b2_spk_tiles[b]);
    }
    b2_spk_part[t] = sum;
    workgroupBarrier();
    var base = 0u;
    for (var u = 0u; u < t; u++) {
        base += b2_spk_part[u];
    }
    for (var b = begin; b < end; b++) {
        let c = atomicLoad(&b2_spk_tiles[b]);
        atomicStore(&b2_spk_tiles[b], base);
        base += c;
    }
    // The last invocation's chunk ends the list (or is empty): base is the total.
    // Position N is never an event position (there are at most N events).
    if (t == 63u) {
        b2_spk_space[n] = i32(base);
    }
}

// Step 3: one workgroup per tile (a 2-D grid where the tiles exceed one dimension).
@compute @workgroup_size(64)
fn b2_compact_scatter(@builtin(local_invocation_index) t: u32,
                      @builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    _ = b2_spk_touch();
    let n = b2_spk_params[0];
    let w = wid.x + wid.y * nwg.x;
    if (w * B2_SPK_TILE >= n) {
        return;
    }
    let begin = min(w * B2_SPK_TILE + t * B2_SPK_PER_THREAD, n);
    let end = min(begin + B2_SPK_PER_THREAD, n);
    var mine = 0u;
    for (var i = begin; i < end; i++) {
        mine += b2_spk_event(i);
    }
    b2_spk_part[t] = mine;
    workgroupBarrier();
    var pos = atomicLoad(&b2_spk_tiles[w]);
    for (var u = 0u; u < t; u++) {
        pos += b2_spk_part[u];
    }
    let last = pos + mine;
    for (var i = begin; i < end && pos < last; i++) {
        b2_spk_emit(i, &pos);
    }
    // Every invocation has read the tile's position: reset the counter for the next step.
    workgroupBarrier();
    if (t == 0u) {
        atomicStore(&b2_spk_tiles[w], 0u);
    }
}

// First position k in [0, count) with space[k] >= x (count if there is none), where
// space[0 .. count) is ascending.
fn b2_spk_lower_bound(count: u32, x: u32) -> u32 {
    var lo = 0u;
    var hi = count;
    while (lo < hi) {
        let mid = lo + (hi - lo) / 2u;
        if (b2_spk_space[mid] < i32(x)) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// The positions [lo, hi) of the events with index in [start, stop). One thread.
@compute @workgroup_size(1)
fn b2_event_range() {
    _ = b2_spk_touch();
    let n = b2_spk_params[0];
    // Every event index is below N, so clamping start/stop to N changes no answer and
    // keeps them representable as i32 for the comparisons.
    let start = min(b2_spk_params[1], n);
    let stop = min(b2_spk_params[2], n);
    // Clamp the count so that a not-yet-written eventspace cannot send the search out of
    // range.
    let count = u32(clamp(b2_spk_space[n], 0, i32(n)));
    let lo = b2_spk_lower_bound(count, start);
    let hi = b2_spk_lower_bound(count, stop);
    b2_spk_range[0] = lo;
    b2_spk_range[1] = max(lo, hi); // an empty or inverted [start, stop) gives lo == hi
    // Per-event kernels (reset, monitor records) are dispatched with these sizes: as many
    // workgroups as the events need, none when there are none. x is clamped to the
    // device's limit; y covers the rest (kernels index by gid.x + gid.y * nwg.x * wg).
    let wg = max(b2_spk_params[4], 1u);
    let groups = (max(lo, hi) - lo + wg - 1u) / wg;
    let x = min(groups, b2_spk_params[3]);
    b2_spk_range[4] = x;
    b2_spk_range[5] = select(1u, (groups + x - 1u) / max(x, 1u), x > 0u);
    b2_spk_range[6] = 1u;
    // The same with at least one workgroup (from word 8), for kernels that also write
    // something when there are no events (the spike queue's push writes the count).
    let groups1 = max(groups, 1u);
    let x1 = max(min(groups1, b2_spk_params[3]), 1u);
    b2_spk_range[8] = x1;
    b2_spk_range[9] = (groups1 + x1 - 1u) / x1;
    b2_spk_range[10] = 1u;
}
