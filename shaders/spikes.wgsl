// Event compaction for Brian2's spikespace / eventspace.
//
// Layout of an eventspace for a group of N neurons: an i32 array of length N + 1.
//   space[0 .. count)  the indices of the neurons that had an event this step, ascending
//   space[count .. N)  left as they were (stale entries; nobody reads them)
//   space[N]           count
//
// The threshold kernel writes one flag per neuron (nonzero = event); `b2_compact` turns
// the flags into the ordered list. Brian2's semantics (and deterministic results) need
// the ascending order, so this is a prefix-sum compaction, not an atomic append.
// `b2_event_range` then finds the slice of that list that falls into a subgroup's
// [start, stop) index range, for monitors and resets of subgroups.
//
// Both entry points share the four bindings below. Names carry the `b2_spk_` prefix
// because these entry points are concatenated into modules with other bindings.
//
// The pipeline layout is derived from each entry point, and callers bind all four
// buffers to both entry points (unused ones may be small dummies), so each entry point
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
// the indirect dispatch arguments of a kernel with one invocation per event.
@group(0) @binding(3) var<storage, read_write> b2_spk_range: array<u32>;

const B2_SPK_WG: u32 = 256u;

// Per-thread event counts, scanned in place into inclusive prefix sums.
var<workgroup> b2_spk_scan: array<u32, 256>;

// Make the entry point statically use all four bindings without reading or writing any
// element (arrayLength only queries the buffer size), so that a bind group with all four
// buffers matches the derived layout even where a buffer is a tiny dummy.
fn b2_spk_touch() -> u32 {
    return arrayLength(&b2_spk_params) + arrayLength(&b2_spk_flags)
        + arrayLength(&b2_spk_space) + arrayLength(&b2_spk_range);
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

// Ordered compaction. Dispatch exactly ONE workgroup. Thread t owns the contiguous chunk
// [t * chunk, (t + 1) * chunk) of the flags (clipped to N), so the concatenation of the
// threads' outputs in thread order is ascending. Work per thread grows with N (a loop
// over the chunk), so any N that fits a storage binding works.
//
// The chunk loops take 8 flags per iteration. Besides the usual benefit, this matters on
// lavapipe (llvmpipe), which silently ends every loop once a shader invocation has made
// 65535 loop iterations in all (LP_MAX_TGSI_LOOP_ITERATIONS, shared by all its loops).
// With 8 per iteration a thread makes about chunk / 4 + 22 iterations, which stays below
// that for N up to ~67 million, twice what lavapipe's 128 MiB binding limit allows.
@compute @workgroup_size(256)
fn b2_compact(@builtin(local_invocation_index) t: u32) {
    _ = b2_spk_touch();
    let n = b2_spk_params[0];
    let chunk = (n + B2_SPK_WG - 1u) / B2_SPK_WG;
    let begin = min(t * chunk, n);
    let end = min(begin + chunk, n);

    // 1. Count this thread's events.
    var mine = 0u;
    var i = begin;
    for (; i + 8u <= end; i += 8u) {
        mine += b2_spk_event(i) + b2_spk_event(i + 1u) + b2_spk_event(i + 2u)
            + b2_spk_event(i + 3u) + b2_spk_event(i + 4u) + b2_spk_event(i + 5u)
            + b2_spk_event(i + 6u) + b2_spk_event(i + 7u);
    }
    for (; i < end; i++) {
        mine += b2_spk_event(i);
    }
    b2_spk_scan[t] = mine;
    workgroupBarrier();

    // 2. Inclusive prefix sum over the 256 counts (Hillis-Steele: log2(256) = 8 rounds).
    //    Each round reads, waits for every thread to have read, then writes and waits
    //    again, so no thread reads a value another thread has already overwritten.
    for (var d = 1u; d < B2_SPK_WG; d <<= 1u) {
        var add = 0u;
        if (t >= d) {
            add = b2_spk_scan[t - d];
        }
        workgroupBarrier();
        b2_spk_scan[t] += add;
        workgroupBarrier();
    }

    // 3. Write this chunk's event indices from its exclusive offset on. Stop scanning as
    //    soon as all of the chunk's events are written (sparse chunks end early).
    let last = b2_spk_scan[t];
    var pos = last - mine;
    i = begin;
    for (; i + 8u <= end && pos < last; i += 8u) {
        b2_spk_emit(i, &pos);
        b2_spk_emit(i + 1u, &pos);
        b2_spk_emit(i + 2u, &pos);
        b2_spk_emit(i + 3u, &pos);
        b2_spk_emit(i + 4u, &pos);
        b2_spk_emit(i + 5u, &pos);
        b2_spk_emit(i + 6u, &pos);
        b2_spk_emit(i + 7u, &pos);
    }
    for (; i < end && pos < last; i++) {
        b2_spk_emit(i, &pos);
    }

    // The total; position N is never an event position (there are at most N events).
    if (t == B2_SPK_WG - 1u) {
        b2_spk_space[n] = i32(last);
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
}
