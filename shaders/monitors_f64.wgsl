// Support kernels of monitors that store Brian2's time (always float64): a module of its
// own, which needs SHADER_F64 (monitors.wgsl holds the others). One binding table for its
// entry points; a "counter" buffer holds [record length, rows].
@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> range: array<u32>;
@group(0) @binding(2) var<storage, read> t: array<f64>;
@group(0) @binding(3) var<storage, read_write> trec: array<f64>;
@group(0) @binding(4) var<storage, read_write> raterec: array<f64>;
@group(0) @binding(5) var<storage, read_write> counter: array<u32>;
@group(0) @binding(6) var<storage, read_write> total: array<i32>;
@group(0) @binding(7) var<storage, read> fparams: array<f64>;

// StateMonitor: after the record kernel, store t for the row and advance.
// params: [values per row].
@compute @workgroup_size(1)
fn record_t() {
    trec[counter[1]] = t[0];
    counter[0] = counter[0] + params[0];
    counter[1] = counter[1] + 1u;
    total[0] = total[0] + 1;
}

// PopulationRateMonitor: events in [lo, hi) per second per source neuron, as Brian2's
// template computes it: (n / dt) / n_source. fparams: [dt, n_source].
@compute @workgroup_size(1)
fn record_rate() {
    let row = counter[1];
    trec[row] = t[0];
    raterec[row] = (f64(range[1] - range[0]) / fparams[0]) / fparams[1];
    counter[0] = counter[0] + 1u;
    counter[1] = row + 1u;
    total[0] = total[0] + 1;
}
