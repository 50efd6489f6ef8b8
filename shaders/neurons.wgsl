// Event compaction for Brian2's spikespace / eventspace.
//
// Layout of an eventspace for a group of N neurons: an i32 array of length N + 1.
//   space[0 .. count)  the indices of the neurons that had an event this step, ascending
//   space[count .. N)  left as they were (stale entries; nobody reads them)
//   space[N]           count
//
// The threshold kernel sets the flags of the neurons with an event (nonzero = event); the
// compaction below turns them into the ordered list and clears them. Brian2's semantics (and deterministic results)
// need the ascending order, so this is a prefix-sum compaction, not an atomic append.
// `b2_event_range` then finds the slice of that list that falls into a subgroup's
// [start, stop) index range, for monitors and resets of subgroups.
//
// Compaction runs over tiles of B2_SPK_TILE flags, grouped into super-tiles of
// B2_SPK_SUPER tiles, in two dispatches, none of which waits on another workgroup (WebGPU
// promises no forward progress between workgroups) and neither with a barrier:
//   1. count: every flagged element adds 1 to its tile's and its super-tile's counters
//      (the threshold kernel does this itself as it writes the flags;
//      `b2_compact_count` does it for flags written elsewhere);
//   2. `b2_compact_scatter`: one invocation per tile sums the counters of the super-tiles
//      before its own and of the tiles before it in its super-tile (its first output
//      position), then, if its tile has events, writes them in order from there. The
//      invocation of the last tile knows the total: it writes space[N] and the range
//      record of the whole group (see `b2_spk_write_range`), so that per-event kernels of
//      the whole group need no `b2_event_range` pass.
// Counters come in two halves, used on alternate steps of the clock (the step's parity,
// binding 5): step s counts into half s % 2 and its scatter zeroes the other half for
// step s + 1. No invocation can zero the half it reads, since later tiles still read it.
// Work per invocation is constant in step 1; in step 2 an invocation reads fewer than
// B2_SPK_SUPER tile counters, N / (B2_SPK_TILE * B2_SPK_SUPER) super-tile counters and,
// where its tile has events, B2_SPK_TILE flags. No barriers: lavapipe runs a shader with
// barriers as coroutines, at about 17 us per workgroup even when it does nothing else.
//
// All entry points share the six bindings below. Names carry the `b2_spk_` prefix
// because these entry points are concatenated into modules with other bindings.
//
// The pipeline layout is derived from each entry point, and callers bind all six
// buffers to every entry point (unused ones may be small dummies), so each entry point
// statically uses every binding; see `b2_spk_touch`.

// [0] = N, [1] = start, [2] = stop (the subgroup range for `b2_event_range`), [3] = the
// device's maximum workgroups per grid dimension, [4] = the workgroup size of the kernels
// that the range record sizes.
@group(0) @binding(0) var<storage, read> b2_spk_params: array<u32>;
// N flags, nonzero = event (cleared here once read).
@group(0) @binding(1) var<storage, read_write> b2_spk_flags: array<u32>;
// The eventspace, N + 1 entries.
@group(0) @binding(2) var<storage, read_write> b2_spk_space: array<i32>;
// A range record (16 words): [lo, hi) positions in the eventspace, then the indirect
// dispatch arguments (x, y, z) of a kernel with one invocation per event (from word 4),
// the same with at least one workgroup (word 8), and one workgroup per event (word 12).
@group(0) @binding(3) var<storage, read_write> b2_spk_range: array<u32>;
// Counters, zero between uses: two halves of one per tile (T = ceil(N / B2_SPK_TILE)
// each), then two halves of one per super-tile (ceil(T / B2_SPK_SUPER) each).
@group(0) @binding(4) var<storage, read_write> b2_spk_tiles: array<atomic<u32>>;
// The clock's step in this run (u32 words lo, hi): its parity selects the counter half.
@group(0) @binding(5) var<storage, read> b2_spk_step: array<u32>;

// Flags per tile and tiles per super-tile. The threshold kernel's writer uses the same
// numbers (src/wgsl: COMPACT_TILE, COMPACT_SUPER).
const B2_SPK_TILE: u32 = 256u;
const B2_SPK_SUPER: u32 = 64u;

// Make the entry point statically use all six bindings without reading or writing any
// element (arrayLength only queries the buffer size), so that a bind group with all six
// buffers matches the derived layout even where a buffer is a tiny dummy.
fn b2_spk_touch() -> u32 {
    return arrayLength(&b2_spk_params) + arrayLength(&b2_spk_flags)
        + arrayLength(&b2_spk_space) + arrayLength(&b2_spk_range)
        + arrayLength(&b2_spk_tiles) + arrayLength(&b2_spk_step);
}

// Tiles of N flags (one, empty, for N = 0: its invocation writes the count).
fn b2_spk_tiles_of(n: u32) -> u32 {
    return max((n + B2_SPK_TILE - 1u) / B2_SPK_TILE, 1u);
}

// Super-tiles of T tiles.
fn b2_spk_supers_of(tiles: u32) -> u32 {
    return (tiles + B2_SPK_SUPER - 1u) / B2_SPK_SUPER;
}

// Count an event of neuron i into this step's half of the counters.
fn b2_spk_count(n: u32, i: u32) {
    let tiles = b2_spk_tiles_of(n);
    let par = b2_spk_step[0] & 1u;
    atomicAdd(&b2_spk_tiles[par * tiles + i / B2_SPK_TILE], 1u);
    let supers = b2_spk_supers_of(tiles);
    atomicAdd(&b2_spk_tiles[2u * tiles + par * supers + i / (B2_SPK_TILE * B2_SPK_SUPER)], 1u);
}

// 1 if neuron i has an event, else 0.
fn b2_spk_event(i: u32) -> u32 {
    return select(0u, 1u, b2_spk_flags[i] != 0u);
}

// Append neuron i at *pos if it has an event, and clear its flag: a threshold kernel
// that counts its own events sets only the flags of this step's events.
fn b2_spk_emit(i: u32, pos: ptr<function, u32>) {
    if (b2_spk_flags[i] != 0u) {
        b2_spk_flags[i] = 0u;
        b2_spk_space[*pos] = i32(i);
        *pos += 1u;
    }
}

// Indirect dispatch arguments at word `at` for `groups` workgroups: x clamped to the
// device's limit, y covering the rest (kernels index by gid.x + gid.y * nwg.x * wg).
fn b2_spk_grid(at: u32, groups: u32) {
    let x = min(groups, b2_spk_params[3]);
    b2_spk_range[at] = x;
    b2_spk_range[at + 1u] = select(1u, (groups + x - 1u) / max(x, 1u), x > 0u);
    b2_spk_range[at + 2u] = 1u;
}

// The range record of the events at positions [lo, hi).
fn b2_spk_write_range(lo: u32, hi: u32) {
    b2_spk_range[0] = lo;
    b2_spk_range[1] = hi;
    // Per-event kernels (reset, monitor records) get as many workgroups as the events
    // need, none when there are none.
    let wg = max(b2_spk_params[4], 1u);
    let groups = (hi - lo + wg - 1u) / wg;
    b2_spk_grid(4u, groups);
    // At least one workgroup, for kernels that also write something when there are no
    // events (the spike queue's push writes the count).
    b2_spk_grid(8u, max(groups, 1u));
    // One workgroup per event (a pathway's kernel over each event's synapses).
    b2_spk_grid(12u, hi - lo);
}

// Step 1 for flags that no threshold kernel counted: one invocation per flag.
@compute @workgroup_size(64)
fn b2_compact_count(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    _ = b2_spk_touch();
    let i = gid.x + gid.y * nwg.x * 64u;
    let n = b2_spk_params[0];
    if (i < n && b2_spk_flags[i] != 0u) {
        b2_spk_count(n, i);
    }
}

// Step 2: one invocation per tile.
@compute @workgroup_size(64)
fn b2_compact_scatter(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    _ = b2_spk_touch();
    let n = b2_spk_params[0];
    let w = gid.x + gid.y * nwg.x * 64u;
    let tiles = b2_spk_tiles_of(n);
    if (w >= tiles) {
        return;
    }
    let supers = b2_spk_supers_of(tiles);
    let par = b2_spk_step[0] & 1u;
    let s = w / B2_SPK_SUPER;
    // This tile's first position: the events of the super-tiles and tiles before it.
    var pos = 0u;
    for (var u = 0u; u < s; u++) {
        pos += atomicLoad(&b2_spk_tiles[2u * tiles + par * supers + u]);
    }
    for (var u = s * B2_SPK_SUPER; u < w; u++) {
        pos += atomicLoad(&b2_spk_tiles[par * tiles + u]);
    }
    let mine = atomicLoad(&b2_spk_tiles[par * tiles + w]);
    // The other half, for the next step (nobody reads it in this one).
    atomicStore(&b2_spk_tiles[(1u - par) * tiles + w], 0u);
    if (w % B2_SPK_SUPER == 0u) {
        atomicStore(&b2_spk_tiles[2u * tiles + (1u - par) * supers + s], 0u);
    }
    let last = pos + mine;
    if (mine != 0u) {
        let end = min((w + 1u) * B2_SPK_TILE, n);
        for (var i = w * B2_SPK_TILE; i < end && pos < last; i++) {
            b2_spk_emit(i, &pos);
        }
    }
    if (w + 1u == tiles) {
        // `last` is the total. Position N is never an event position.
        b2_spk_space[n] = i32(last);
        b2_spk_write_range(0u, last);
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
    b2_spk_write_range(lo, max(lo, hi)); // an empty or inverted [start, stop): lo == hi
}

// Brian2's check after a run (its groups' `_check_for_invalid_states`): whether an
// integrated variable left on the GPU holds NaN, an infinity or a magnitude above 1e50,
// decided on the bits (positive IEEE values order like their bit patterns), so that no
// f64 arithmetic is needed and the array need not come back to the host.
// params: [n, 1 for f64 (0: f32), flag index].
@group(0) @binding(6) var<storage, read> b2_chk_params: array<u32>;
@group(0) @binding(7) var<storage, read> b2_chk_bits: array<u32>;
@group(0) @binding(8) var<storage, read_write> b2_chk_flags: array<atomic<u32>>;

@compute @workgroup_size(64)
fn b2_check_invalid(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.y * nwg.x * 64u;
    if (k >= b2_chk_params[0]) { return; }
    var bad = false;
    if (b2_chk_params[1] == 1u) {
        // 1e50 is 0x4A511B0E_C57E649A.
        let lo = b2_chk_bits[2u * k];
        let hi = b2_chk_bits[2u * k + 1u] & 0x7fffffffu;
        bad = hi > 0x4A511B0Eu || (hi == 0x4A511B0Eu && lo > 0xC57E649Au);
    } else {
        // float32 cannot exceed 1e50 but by an infinity.
        bad = (b2_chk_bits[k] & 0x7fffffffu) >= 0x7f800000u;
    }
    if (bad) {
        atomicOr(&b2_chk_flags[b2_chk_params[2]], 1u);
    }
}
