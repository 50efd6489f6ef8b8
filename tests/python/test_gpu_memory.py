"""GPU memory that follows the data: SpikeMonitors record bit rows (a few MB whatever the
group's size), arrays too large for one storage binding are refused before step 1 with a
MemoryError naming the Brian2 variable, and what the gpu backend dispatches per step is
reported."""

import numpy as np
import pytest
from brian2 import (NeuronGroup, Network, SpikeMonitor, StateMonitor, ms, prefs, defaultclock,
                    get_device)

import brian2wgpu  # noqa: F401

from test_device import run_with, compare


def sparse_million():
    # One neuron in a million fires (every 0.5 ms from 1 ms on).
    G = NeuronGroup(1_000_000, "", threshold="i == 123457 and t >= 1*ms and t % (0.5*ms) < 0.05*ms")
    M = SpikeMonitor(G)
    net = Network(G, M)
    net.run(3 * ms)
    dev = get_device()
    info = dict(dev.last_run_info) if isinstance(dev, brian2wgpu.WgpuDevice) else {}
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), count=M.count[:].copy(),
                n=np.array([M.num_spikes])), info


def test_spikemonitor_on_a_million_neurons_needs_a_few_megabytes(gpu):
    ref, _ = run_with("numpy", sparse_million)
    got, info = run_with("wgpu", sparse_million, "gpu")
    compare(ref, got, exact=("i", "t", "count", "n"))
    assert len(ref["i"]) >= 4
    assert info["gpu_monitor_bytes"] < 6 * 2**20, info["gpu_monitor_bytes"]


def subgroup_monitor_runs():
    G = NeuronGroup(3000, "dv/dt = (1.2 + 0.001*i - v)/(10*ms) : 1", threshold="v > 1",
                    reset="v = 0", method="exact")
    M = SpikeMonitor(G[1000:2500])
    M_all = SpikeMonitor(G)
    net = Network(G, M, M_all)
    for _ in range(3):
        net.run(7 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), count=M.count[:].copy(),
                ai=M_all.i[:].copy(), at=M_all.t[:].copy()), None


@pytest.mark.parametrize("steps_per_batch", [0, 3])
def test_bit_row_monitors_match_numpy_across_runs_and_drains(gpu, steps_per_batch):
    prefs.devices.wgpu.steps_per_batch = steps_per_batch
    try:
        ref, _ = run_with("numpy", subgroup_monitor_runs)
        got, _ = run_with("wgpu", subgroup_monitor_runs, "gpu")
    finally:
        prefs.devices.wgpu.steps_per_batch = 0
    assert len(ref["i"]) > 100
    compare(ref, got, exact=("i", "t", "count", "ai", "at"))


def compaction_patterns():
    # 70,000 neurons: 274 tiles of the event compaction in 5 super-tiles. Each step fires
    # a different deterministic pattern, from none to every neuron, so that tiles and
    # super-tiles are empty, sparse and full, and events of a step must come out in
    # ascending order across all of them. The reset and a subgroup's monitor read them.
    n = 70_000
    G = NeuronGroup(n, "k : integer",
                    threshold="(i * 7919 + 104729 * (k + int(t / dt + 0.5))) % 1000"
                              " < 130 * ((k + int(t / dt + 0.5)) % 8)",
                    reset="k += 1")
    G.k = "i % 3"
    M = SpikeMonitor(G)
    M_sub = SpikeMonitor(G[16_000:50_001])
    net = Network(G, M, M_sub)
    net.run(12 * defaultclock.dt)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), si=M_sub.i[:].copy(), st=M_sub.t[:].copy(),
                k=G.k[:].copy()), None


def test_event_compaction_keeps_order_across_tiles_and_super_tiles(gpu):
    ref, _ = run_with("numpy", compaction_patterns)
    got, _ = run_with("wgpu", compaction_patterns, "gpu")
    assert len(ref["i"]) > 100_000 and len(ref["si"]) > 10_000
    compare(ref, got, exact=("i", "t", "si", "st", "k"))


def oversized():
    # 20 million float64 values: 160 MB, above lavapipe's 128 MiB per binding.
    G = NeuronGroup(20_000_000, "dv/dt = -v/(10*ms) : 1")
    net = Network(G)
    net.run(defaultclock.dt)


def test_an_array_above_the_binding_limit_is_refused_naming_the_variable(gpu):
    limit = brian2wgpu.list_adapters()[0]["max_storage_buffer_binding_size"]
    if limit > 160_000_000:
        pytest.skip(f"the adapter binds {limit} bytes: 20M float64 fit")
    with pytest.raises(MemoryError, match=r"variable 'v' of 'neurongroup.*' \(20000000 elements of float64\) "
                                          r"needs 160000000 bytes"
                                          r".* at most \d+ bytes per storage binding"):
        run_with("wgpu", oversized, "gpu")


def test_dispatches_per_step_are_reported(gpu):
    def model():
        G = NeuronGroup(100, "dv/dt = (2 - v)/(10*ms) : 1", threshold="v > 1", reset="v = 0")
        M = SpikeMonitor(G)
        net = Network(G, M)
        net.run(2 * ms)
        return dict(get_device().last_run_info)

    info = run_with("wgpu", model, "gpu")
    kernels = [d["kernel"] for d in info["gpu_dispatches"]]
    # state update and threshold in one kernel (counting events per tile); the scatter
    # (which also writes the group's event range); reset; the monitor's bit rows: 4, none
    # of them sized by the group when nothing spikes.
    assert info["gpu_dispatches_per_step"] == {"defaultclock": 4}, kernels
    assert "b2_compact_scatter" in kernels and "record_event_bits" in kernels
    assert any("stateupdater" in k and "thresholder" in k for k in kernels), kernels
    per_event = [d for d in info["gpu_dispatches"]
                 if d["kernel"] in ("record_event_bits",) or "resetter" in d["kernel"]]
    assert per_event and all(d["workgroups"] == "indirect" for d in per_event)


def cuba(delay, profile=True, runs=1):
    from brian2 import Synapses, seed, mV
    seed(11)
    n = 4000
    eqs = """dv/dt  = (ge+gi-(v-(-49*mV)))/(20*ms) : volt (unless refractory)
             dge/dt = -ge/(5*ms) : volt
             dgi/dt = -gi/(10*ms) : volt"""
    P = NeuronGroup(n, eqs, threshold="v>-50*mV", reset="v = -60*mV", refractory=5 * ms,
                    method="exact")
    P.v = "-60*mV + rand() * 10*mV"
    Ce = Synapses(P, P, on_pre="ge += 1.62*mV", delay=delay)
    Ci = Synapses(P, P, on_pre="gi += -9*mV", delay=delay)
    Ce.connect("i<0.8*N_pre", p=0.02)
    Ci.connect("i>=0.8*N_pre", p=0.02)
    M = SpikeMonitor(P)
    net = Network(P, Ce, Ci, M)
    for _ in range(runs):
        net.run(20 * ms / runs, profile=profile)
    dev = get_device()
    info = dict(dev.last_run_info) if isinstance(dev, brian2wgpu.WgpuDevice) else {}
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), v=P.v[:].copy()), info


@pytest.mark.parametrize("delay", [0 * ms, 1 * ms])
def test_cuba_dispatches_at_most_eight_per_step(gpu, delay):
    # The target: CUBA (two pathways, one SpikeMonitor) in at most 8 dispatches per
    # step, none a single workgroup (every fixed grid here is sized by the 4,000 neurons).
    ref = run_with("numpy", lambda: cuba(delay)[0])
    got, info = run_with("wgpu", lambda: cuba(delay), "gpu")
    compare(ref, got, exact=("i", "t"))
    kernels = [(d["kernel"], d["workgroups"]) for d in info["gpu_dispatches"]]
    limit = 6 if delay == 0 * ms else 8  # without delay the pathways need no push
    assert info["gpu_dispatches_per_step"]["defaultclock"] <= limit, kernels
    # The compaction's scatter has one invocation per tile of 256 flags (64 per workgroup):
    # one workgroup at 4,000 neurons, a grid that grows with the network.
    scatter = [w for k, w in kernels if k == "b2_compact_scatter"]
    assert scatter == [(-(-n_tiles(4000) // 64), 1, 1)], kernels
    assert all(w == "indirect" or w[0] * w[1] * w[2] > 1
               for k, w in kernels if k != "b2_compact_scatter"), kernels


def test_profiled_runs_record_every_spike(gpu):
    # Profiling submits each operation on its own: a SpikeMonitor's bit rows must still
    # get their parameters before the kernel that writes them, in every run() (the second
    # run once lost its first step's spikes this way).
    ref = run_with("numpy", lambda: cuba(0 * ms, runs=3)[0])
    got, _ = run_with("wgpu", lambda: cuba(0 * ms, runs=3), "gpu")
    compare(ref, got, exact=("i", "t"))


def n_tiles(n):
    return -(-n // 256)


def test_one_compute_pass_per_batch(gpu):
    # A batch's steps read their clock values from rows of the batch's tables, so nothing
    # is copied between steps and each batch is one compute pass; profiling splits it.
    from brian2 import prefs
    old = prefs.devices.wgpu.steps_per_batch
    prefs.devices.wgpu.steps_per_batch = 50
    try:
        ref = run_with("numpy", lambda: cuba(1 * ms)[0])
        got, info = run_with("wgpu", lambda: cuba(1 * ms, profile=False), "gpu")
    finally:
        prefs.devices.wgpu.steps_per_batch = old
    compare(ref, got, exact=("i", "t"))
    # 20 ms of 0.1 ms steps in batches of at most 50 steps.
    assert info["gpu_batches"] >= 4, info
    assert info["gpu_compute_passes"] == info["gpu_batches"], info
    _, profiled = run_with("wgpu", lambda: cuba(1 * ms), "gpu")
    assert profiled["gpu_compute_passes"] > profiled["gpu_batches"], profiled


def sparse_million_with_values():
    # A SpikeMonitor that records a variable keeps records, not bit rows: their buffers
    # start small and grow with the recording pace, not with the group's worst case.
    G = NeuronGroup(1_000_000, "x : 1", threshold="i == 4321 and t >= 1*ms")
    G.x = "i * 0.5"
    M = SpikeMonitor(G, variables="x")
    net = Network(G, M)
    net.run(3 * ms)
    dev = get_device()
    info = dict(dev.last_run_info) if isinstance(dev, brian2wgpu.WgpuDevice) else {}
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), x=M.x[:].copy()), info


def test_spikemonitor_with_variables_on_a_million_neurons_holds_one_step(gpu):
    ref, _ = run_with("numpy", sparse_million_with_values)
    got, info = run_with("wgpu", sparse_million_with_values, "gpu")
    compare(ref, got, exact=("i", "t", "x"))
    assert len(ref["i"]) == 20
    # One step's worst case (a million i, t and x values: 20 MB), not 30 steps of it.
    assert info["gpu_monitor_bytes"] < 24 * 2**20, info["gpu_monitor_bytes"]


def growing_records():
    G = NeuronGroup(2500, "dv/dt = (1.1 + 0.0004*i - v)/(10*ms) : 1", threshold="v > 1",
                    reset="v = 0", method="exact")
    S = StateMonitor(G, "v", record=True)
    M = SpikeMonitor(G, variables="v")
    net = Network(G, S, M)
    net.run(12 * ms)
    net.run(30 * ms)
    dev = get_device()
    info = dict(dev.last_run_info) if isinstance(dev, brian2wgpu.WgpuDevice) else {}
    return dict(v=S.v[:].copy(), st=S.t[:].copy(), i=M.i[:].copy(), t=M.t[:].copy(),
                mv=M.v[:].copy()), info


def test_monitor_records_grow_with_the_recording(gpu):
    ref, _ = run_with("numpy", growing_records)
    assert len(ref["i"]) > 1000
    monitor_bytes = {}
    for steps_per_batch in (0, 250):
        prefs.devices.wgpu.steps_per_batch = steps_per_batch
        try:
            got, info = run_with("wgpu", growing_records, "gpu")
        finally:
            prefs.devices.wgpu.steps_per_batch = 0
        compare(ref, got, exact=("st", "i", "t"), rtol=1e-12)
        monitor_bytes[steps_per_batch] = info["gpu_monitor_bytes"]
    # Records start at 4 MiB at most; batches of 250 steps need more (2,500 values per
    # step), batches of 100 do not.
    assert monitor_bytes[0] <= 4 * 4 * 2**20 + 2**20, monitor_bytes
    assert monitor_bytes[250] > monitor_bytes[0], monitor_bytes
