// Support kernels of monitors (src/runtime/gpu/monitors.rs): the bookkeeping Brian2's
// SpikeMonitor template does around the generated record kernel. One module, one binding
// table for its entry points (each pipeline binds what its entry point uses). The kernels
// that store Brian2's float64 time are in monitors_f64.wgsl: adapters without SHADER_F64
// cannot create a module that mentions f64.
//
// A "range" buffer holds [lo, hi) positions into an event list (written by
// `b2_event_range` in neurons.wgsl); a "counter" buffer holds [record length, rows].
@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> list: array<i32>;
@group(0) @binding(2) var<storage, read> range: array<u32>;
@group(0) @binding(3) var<storage, read_write> count: array<i32>;
@group(0) @binding(4) var<storage, read_write> counter: array<u32>;
@group(0) @binding(5) var<storage, read_write> total: array<i32>;
@group(0) @binding(6) var<storage, read> timestep: array<u32>;   // the clock's int64 timestep
@group(0) @binding(7) var<storage, read_write> bits: array<atomic<u32>>;
// A PopulationRateMonitor's rate record, 8 bytes per row (record_count).
@group(0) @binding(8) var<storage, read_write> rate_counts: array<u32>;

// SpikeMonitor, after the record kernel: count[event - start] += 1 for this step's events
// (events are unique within a step, so no two invocations touch the same counter), and
// invocation 0 advances the record length and Brian2's `N`. params: [start]. Dispatched
// with the sizes `b2_event_range` wrote (no workgroup at all without events, when there
// is nothing to advance either).
@compute @workgroup_size(64)
fn count_events(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.y * nwg.x * 64u;
    let lo = range[0];
    if (k == 0u) {
        let n = range[1] - lo;
        counter[0] = counter[0] + n;
        total[0] = total[0] + i32(n);
    }
    if (lo + k >= range[1]) { return; }
    let i = u32(list[lo + k]) - params[0];
    count[i] = count[i] + 1;
}

// SpikeMonitor recording only `i` and `t` (the usual one): instead of an (i, t) pair per
// event in buffers sized for every neuron spiking every step, one bit per neuron of the
// monitored range per recorded step (rows since the last drain); the host turns the bits
// into Brian2's ascending (i, t) records when it drains them. Also counts as
// `count_events` does. params: [start, words per row, timestep of row 0 (low word)].
// Dispatched with the sizes `b2_event_range` wrote.
@compute @workgroup_size(64)
fn record_event_bits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.y * nwg.x * 64u;
    let lo = range[0];
    if (k == 0u) {
        total[0] = total[0] + i32(range[1] - lo);
    }
    if (lo + k >= range[1]) { return; }
    let j = u32(list[lo + k]) - params[0];
    count[j] = count[j] + 1;
    // Rows are consecutive ticks of the monitor's clock: the low words' difference.
    let row = timestep[0] - params[2];
    atomicOr(&bits[row * params[1] + j / 32u], 1u << (j % 32u));
}

// On adapters without SHADER_F64 (monitors_f64.wgsl cannot be created there) the host
// writes the float64 records: these keep the rows' bookkeeping.
// StateMonitor, after the record kernel: record_t without the time (the host keeps each
// row's t). params: [values per row].
@compute @workgroup_size(1)
fn record_row() {
    counter[0] = counter[0] + params[0];
    counter[1] = counter[1] + 1u;
    total[0] = total[0] + 1;
}

// PopulationRateMonitor: the row's event count in its 8-byte slot of the rate record
// (the host computes the rate and keeps t).
@compute @workgroup_size(1)
fn record_count() {
    let row = counter[1];
    rate_counts[2u * row] = range[1] - range[0];
    rate_counts[2u * row + 1u] = 0u;
    counter[0] = counter[0] + 1u;
    counter[1] = row + 1u;
    total[0] = total[0] + 1;
}
