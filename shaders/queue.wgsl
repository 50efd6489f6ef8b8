// Support kernels of a synaptic pathway's spike queue (src/runtime/gpu/queue.rs and the
// delivery in synapses.rs). One module with one binding table for all its entry points;
// each pipeline binds what its entry point uses.
//
// The spike queue keeps a ring of the pathway's last D event lists (D = longest delay in
// steps + 1) instead of per-slot synapse lists: memory is D * (sources + 1), whatever the
// rate, so no spike can be dropped. Synapses are grouped on the host by (source, delay),
// each group a contiguous range of `perm` in ascending synapse order. The synapses due at
// relative step r are then, in Brian2's queue order (oldest push first, then ascending
// source, then ascending synapse):
//   the queue state left by earlier runs for step r ("extra", one range), then
//   for each distinct delay d, largest first: for each event k pushed at step r - d, the
//   group (source k, delay d) if it exists.
// `queue_deliver` enumerates those groups into entries [lo, hi, out] (an ordered scan over
// tiles of (delay, event) pairs), `queue_expand` writes the synapse ids (one invocation
// per due synapse), and the pathway's kernel runs over them with indirect dispatch sizes.
//
// Queue params (u32): [0] source start, [1] source stop, [2] D, [3] width (stop - start),
// [4] number of distinct delays, [5] number of "extra" ranges, [6] serial chunk length,
// [7] serial chunks, [8] N of the eventspace, [9] tables offset of src_group,
// [10] of group_delay, [11] of group_start, [12] of extra, [13] of delays (descending),
// [14] kernel workgroup size, [15] max workgroups per dimension, [16] pairs per invocation
// of `queue_deliver`'s tiles (the queue state is described there).

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> space: array<i32>;          // the source's eventspace
@group(0) @binding(2) var<storage, read_write> qstate: array<u32>;   // queue state (see queue_deliver)
@group(0) @binding(3) var<storage, read_write> ring: array<i32>;     // D slots of width + 1
@group(0) @binding(4) var<storage, read> range: array<u32>;          // this step's events [lo, hi)
@group(0) @binding(5) var<storage, read> step: array<u32>;           // the clock's step in this run
@group(0) @binding(6) var<storage, read_write> slots: array<u32>;    // range record per ring slot
@group(0) @binding(7) var<storage, read> tables: array<u32>;         // the host's (source, delay) tables
@group(0) @binding(8) var<storage, read_write> sizes: array<atomic<u32>>;  // queue_plan's grid sizes
@group(0) @binding(9) var<storage, read_write> entries: array<u32>;  // due groups [lo, hi, out]
@group(0) @binding(10) var<storage, read_write> due_range: array<u32>;
@group(0) @binding(11) var<storage, read_write> indirect: array<u32>;
// Per tile: its due groups and synapses (written by `queue_deliver_count`).
@group(0) @binding(12) var<storage, read_write> tiles: array<u32>;
// The tiles' dispatch sizes (x, y, z), bound by `queue_deliver` only: a dispatch may not
// bind for writing the buffer it takes its sizes from.
@group(0) @binding(13) var<storage, read_write> tile_args: array<u32>;
@group(0) @binding(14) var<storage, read> perm: array<i32>;          // synapses by (source, delay)
@group(0) @binding(15) var<storage, read_write> due: array<i32>;     // the due synapses in order

// Copy this step's events within [start, stop) (relative indices) into ring slot `slot`:
// invocation k copies event k, invocation 0 also writes the count. The positions [lo, hi)
// and the dispatch sizes (at least one workgroup, since invocation 0 writes the count)
// come from `b2_event_range`. Returns the slot's first position in the ring.
fn push_events(k: u32, slot: u32) -> u32 {
    let lo = range[0];
    let hi = range[1];
    let width = params[3];
    let base = slot * (width + 1u);
    if (k == 0u) {
        ring[base + width] = i32(hi - lo);
    }
    if (lo + k < hi) {
        ring[base + k] = space[lo + k] - i32(params[0]);
    }
    return base;
}

// The push of a pathway with ordered delivery: into slot r % D, r the steps pushed so far.
@compute @workgroup_size(64)
fn queue_push(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    push_events(gid.x + gid.y * nwg.x * 64u, qstate[0] % params[2]);
}

// The push of a pathway that delivers by bundles (one delay for all synapses): the same
// ring, with the step taken from the clock's step in this run (binding 5), plus the slot's
// range record (16 words: [lo, hi) in the ring, the dispatch sizes of 64 events per
// workgroup at word 4 and of one workgroup per event at word 12) that the pathway's kernel
// reads `delay` steps later.
@compute @workgroup_size(64)
fn queue_push_bundles(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.y * nwg.x * 64u;
    let r = step[0];
    let slot = r % params[2];
    let base = push_events(k, slot);
    let rec = slot * 16u;
    // Pathways by (source, delay) group keep no slot records (their buffer is a stand-in
    // of two words).
    if (k == 0u && rec + 16u <= arrayLength(&slots)) {
        let count = range[1] - range[0];
        slots[rec] = base;
        slots[rec + 1u] = base + count;
        let per_event = grid_of(count, 1u);
        slots[rec + 12u] = per_event.x;
        slots[rec + 13u] = per_event.y;
        slots[rec + 14u] = per_event.z;
        // The same for 64 events per workgroup (an invocation per bundle).
        let per_64 = grid_of(count, 64u);
        slots[rec + 4u] = per_64.x;
        slots[rec + 5u] = per_64.y;
        slots[rec + 6u] = per_64.z;
    }
    if (k == 0u) {
        // Steps pushed (and, `delay` later, delivered): the host reads the queue back
        // from it after the run.
        qstate[0] = r + 1u;
    }
}

// Dispatch sizes of a pathway kernel that takes its synapses by (source, delay) group: one
// row per distinct delay, and as many columns as the most events due for one delay this
// step (at most the device's limit: the kernel's columns stride over the rest), or a
// 64th of that for a kernel with an invocation per group (words 8..15). One invocation
// per distinct delay; two sets of sizes used on alternate steps, as each step clears the
// other set for the next one.

@compute @workgroup_size(64)
fn queue_plan(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 64u;
    let r = step[0];
    let half = (r & 1u) * 4u;
    if (o == 0u) {
        atomicStore(&sizes[4u - half], 0u);
        atomicStore(&sizes[12u - half], 0u);
    }
    if (o >= params[4]) { return; }
    let d = tables[params[13] + o];
    if (d > r) { return; }
    let width = params[3];
    let count = u32(ring[((r - d) % params[2]) * (width + 1u) + width]);
    atomicMax(&sizes[half], min(count, params[15]));
    // An invocation per bundle: 64 per workgroup.
    atomicMax(&sizes[8u + half], min((count + 63u) / 64u, params[15]));
}

// The ordered delivery, in four entry points (no workgroup waits on another one):
//   `queue_deliver_sums` (one workgroup per block of 256 distinct delays): the events
//     due this step per block;
//   `queue_deliver` (one workgroup per block): the per-delay prefix of the events due
//     (the sums of the blocks before, then a workgroup scan), the range left by earlier
//     runs (entry 0), the number of pair tiles and their dispatch sizes;
//   `queue_deliver_count` (one workgroup per tile of pairs): the due groups and synapses
//     of the tile;
//   `queue_deliver_write` (one workgroup per tile): the tile's first entry and synapse
//     offset (the sums of the tiles before it, in parallel), then its entries in order;
//     the last tile's workgroup knows the totals and writes the dispatch sizes of
//     `queue_expand` and of the pathway's kernel.
// Queue state (u32): [0] steps delivered in this run, [1] due synapses M, [2] entries E,
// [3] this step (r), [4] entries and [5] synapses from earlier runs, [6] pairs,
// [7] tiles, [8..] per-delay prefix of pair counts (nd + 1), then the blocks' sums.

const PLAN_WG: u32 = 256u;
const TILE_WG: u32 = 64u;
const PREFIX: u32 = 8u;
var<workgroup> wg_scan: array<u32, 256>;
var<workgroup> wg_groups: array<u32, 64>;
var<workgroup> wg_syns: array<u32, 64>;
var<workgroup> wg_tiles: u32;

// Group of relative source `src` with delay `d` (ascending delays within a source), or
// 0xffffffff.
fn group_of(src: u32, d: u32) -> u32 {
    let sg = params[9];
    let gd = params[10];
    let end = tables[sg + src + 1u];
    var lo = tables[sg + src];
    var hi = end;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (tables[gd + mid] < d) { lo = mid + 1u; } else { hi = mid; }
    }
    if (lo < end && tables[gd + lo] == d) { return lo; }
    return 0xffffffffu;
}

fn slot_base(r: u32, d: u32) -> u32 {
    let dd = params[2];
    return ((r + dd - d) % dd) * (params[3] + 1u);
}

// Events due this step (relative step r) for delay position o.
fn due_events(r: u32, o: u32) -> u32 {
    let d = tables[params[13] + o];
    if (d > r) { return 0u; }
    return u32(ring[slot_base(r, d) + params[3]]);
}

// Pair x (counted over delays, largest first, then events): its delay position.
fn pair_delay(x: u32) -> u32 {
    var lo = 0u;
    var hi = params[4];
    // Largest o with prefix[o] <= x.
    while (hi - lo > 1u) {
        let mid = (lo + hi) / 2u;
        if (qstate[PREFIX + mid] <= x) { lo = mid; } else { hi = mid; }
    }
    return lo;
}

// Walk pairs [begin, end) of relative step r: count the due groups and their synapses and,
// with `write`, write their entries from entry `eg0` / synapse offset `es0` on.
// Returns (groups, synapses).
fn walk(begin: u32, end: u32, r: u32, write: bool, eg0: u32, es0: u32) -> vec2<u32> {
    var eg = eg0;
    var es = es0;
    if (begin < end) {
        var o = pair_delay(begin);
        for (var x = begin; x < end; x++) {
            while (qstate[PREFIX + o + 1u] <= x) { o++; }
            let d = tables[params[13] + o];
            let src = u32(ring[slot_base(r, d) + x - qstate[PREFIX + o]]);
            let g = group_of(src, d);
            if (g != 0xffffffffu) {
                let lo = tables[params[11] + g];
                let hi = tables[params[11] + g + 1u];
                if (write) {
                    entries[3u * eg] = lo;
                    entries[3u * eg + 1u] = hi;
                    entries[3u * eg + 2u] = es;
                }
                eg++;
                es += hi - lo;
            }
        }
    }
    return vec2<u32>(eg - eg0, es - es0);
}

// Dispatch sizes for `items` invocations, `wg` per workgroup.
fn grid_of(items: u32, wg: u32) -> vec3<u32> {
    let groups = (items + wg - 1u) / wg;
    let x = min(groups, params[15]);
    return vec3<u32>(x, select(1u, (groups + x - 1u) / max(x, 1u), x > 0u), 1u);
}

fn dispatch_args(at: u32, items: u32, wg: u32) {
    let g = grid_of(items, wg);
    indirect[at] = g.x;
    indirect[at + 1u] = g.y;
    indirect[at + 2u] = g.z;
}

// Pairs per tile: params[16] per invocation.
fn tile_pairs() -> u32 {
    return TILE_WG * params[16];
}

// Sum of wg_scan over the workgroup (wg_scan is overwritten).
fn wg_total(t: u32) -> u32 {
    workgroupBarrier();
    for (var stride = PLAN_WG / 2u; stride > 0u; stride /= 2u) {
        if (t < stride) { wg_scan[t] += wg_scan[t + stride]; }
        workgroupBarrier();
    }
    let total = wg_scan[0];
    workgroupBarrier();
    return total;
}

// The events due this step for this invocation's delay position (PLAN_WG per block).
fn block_events(r: u32, b: u32, t: u32) -> u32 {
    let o = b * PLAN_WG + t;
    if (o >= params[4]) { return 0u; }
    return due_events(r, o);
}

@compute @workgroup_size(256)
fn queue_deliver_sums(@builtin(local_invocation_index) t: u32,
                      @builtin(workgroup_id) wid: vec3<u32>) {
    let r = qstate[0];
    wg_scan[t] = block_events(r, wid.x, t);
    let total = wg_total(t);
    if (t == 0u) {
        qstate[PREFIX + params[4] + 1u + wid.x] = total;
        // The step, for this and the later passes (which do not read [0]: the plan
        // advances it).
        if (wid.x == 0u) { qstate[3] = r; }
    }
}

@compute @workgroup_size(256)
fn queue_deliver(@builtin(local_invocation_index) t: u32,
                 @builtin(workgroup_id) wid: vec3<u32>) {
    _ = arrayLength(&entries) + arrayLength(&due_range) + arrayLength(&indirect)
        + arrayLength(&tiles);
    let nd = params[4];
    let r = qstate[3];
    let b = wid.x;
    let blocks = max((nd + PLAN_WG - 1u) / PLAN_WG, 1u);
    // The pairs of the blocks before this one (their sums, in parallel).
    var before = 0u;
    for (var u = t; u < b; u += PLAN_WG) {
        before += qstate[PREFIX + nd + 1u + u];
    }
    wg_scan[t] = before;
    let offset = wg_total(t);
    // A scan of this block's delays.
    let mine = block_events(r, b, t);
    wg_scan[t] = mine;
    workgroupBarrier();
    for (var stride = 1u; stride < PLAN_WG; stride *= 2u) {
        var add = 0u;
        if (t >= stride) { add = wg_scan[t - stride]; }
        workgroupBarrier();
        wg_scan[t] += add;
        workgroupBarrier();
    }
    // wg_scan[t] is now inclusive.
    let o = b * PLAN_WG + t;
    if (o < nd) {
        qstate[PREFIX + o] = offset + wg_scan[t] - mine;
    }
    if (b + 1u == blocks && t == PLAN_WG - 1u) {
        let pairs = offset + wg_scan[t];
        qstate[PREFIX + nd] = pairs;
        qstate[6] = pairs;
        // At least one tile: its workgroup writes the totals when nothing is due.
        let n_tiles = max((pairs + tile_pairs() - 1u) / tile_pairs(), 1u);
        qstate[7] = n_tiles;
        let g = grid_of(n_tiles, 1u);
        tile_args[0] = g.x;
        tile_args[1] = g.y;
        tile_args[2] = g.z;
    }
    if (b == 0u && t == 0u) {
        // The state left by earlier runs comes first.
        var eg = 0u;
        var es = 0u;
        if (r < params[5]) {
            let lo = tables[params[12] + 2u * r];
            let hi = tables[params[12] + 2u * r + 1u];
            if (hi > lo) {
                entries[0] = lo;
                entries[1] = hi;
                entries[2] = 0u;
                eg = 1u;
                es = hi - lo;
            }
        }
        qstate[4] = eg;
        qstate[5] = es;
        qstate[0] = r + 1u;
    }
}

// This workgroup's tile (a 2-D grid where tiles exceed one dimension), or past the end.
fn tile_index(wid: vec3<u32>, nwg: vec3<u32>, t: u32) -> vec2<u32> {
    if (t == 0u) { wg_tiles = qstate[7]; }
    let n = workgroupUniformLoad(&wg_tiles);
    return vec2<u32>(wid.x + wid.y * nwg.x, n);
}

// Sum of wg_groups / wg_syns over the workgroup, left in element 0.
fn reduce_counts(t: u32) {
    for (var stride = TILE_WG / 2u; stride > 0u; stride /= 2u) {
        if (t < stride) {
            wg_groups[t] += wg_groups[t + stride];
            wg_syns[t] += wg_syns[t + stride];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(64)
fn queue_deliver_count(@builtin(local_invocation_index) t: u32,
                       @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    _ = arrayLength(&entries) + arrayLength(&due_range) + arrayLength(&indirect);
    let tw = tile_index(wid, nwg, t);
    let w = tw.x;
    if (w >= tw.y) { return; }
    let pairs = qstate[6];
    let begin = min(w * tile_pairs() + t * params[16], pairs);
    let end = min(begin + params[16], pairs);
    let mine = walk(begin, end, qstate[3], false, 0u, 0u);
    wg_groups[t] = mine.x;
    wg_syns[t] = mine.y;
    workgroupBarrier();
    reduce_counts(t);
    if (t == 0u) {
        tiles[2u * w] = wg_groups[0];
        tiles[2u * w + 1u] = wg_syns[0];
    }
}

@compute @workgroup_size(64)
fn queue_deliver_write(@builtin(local_invocation_index) t: u32,
                       @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let tw = tile_index(wid, nwg, t);
    let w = tw.x;
    let n_tiles = tw.y;
    if (w >= n_tiles) { return; }
    // The entries and synapses of the tiles before this one, summed in parallel.
    var g_before = 0u;
    var s_before = 0u;
    for (var u = t; u < w; u += TILE_WG) {
        g_before += tiles[2u * u];
        s_before += tiles[2u * u + 1u];
    }
    wg_groups[t] = g_before;
    wg_syns[t] = s_before;
    workgroupBarrier();
    reduce_counts(t);
    let eg0 = qstate[4] + wg_groups[0];
    let es0 = qstate[5] + wg_syns[0];
    workgroupBarrier();
    let pairs = qstate[6];
    let r = qstate[3];
    let begin = min(w * tile_pairs() + t * params[16], pairs);
    let end = min(begin + params[16], pairs);
    let mine = walk(begin, end, r, false, 0u, 0u);
    wg_groups[t] = mine.x;
    wg_syns[t] = mine.y;
    workgroupBarrier();
    var eg = eg0;
    var es = es0;
    for (var u = 0u; u < t; u++) {
        eg += wg_groups[u];
        es += wg_syns[u];
    }
    _ = walk(begin, end, r, true, eg, es);
    if (w + 1u == n_tiles && t == TILE_WG - 1u) {
        // The last invocation of the last tile: its end is the total.
        let e_total = eg + mine.x;
        let m_total = es + mine.y;
        qstate[1] = m_total;
        qstate[2] = e_total;
        due_range[0] = 0u;
        due_range[1] = m_total;
        dispatch_args(0u, m_total, 64u);
        dispatch_args(3u, m_total, params[14]);
        for (var c = 0u; c < params[7]; c++) {
            indirect[6u + 3u * c] = select(0u, 1u, m_total > c * params[6]);
            indirect[7u + 3u * c] = 1u;
            indirect[8u + 3u * c] = 1u;
        }
    }
}

// The due synapses in order: one invocation per due synapse, which finds its entry (the
// last one whose first output position is at or before it; entries are nonempty and in
// ascending output order).

@compute @workgroup_size(64)
fn queue_expand(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = gid.x + gid.y * nwg.x * 64u;
    if (j >= qstate[1]) { return; }
    var lo = 0u;
    var hi = qstate[2];
    while (hi - lo > 1u) {
        let mid = (lo + hi) / 2u;
        if (entries[3u * mid + 2u] <= j) { lo = mid; } else { hi = mid; }
    }
    due[j] = perm[entries[3u * lo] + j - entries[3u * lo + 2u]];
}
