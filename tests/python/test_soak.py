"""Long interactive sessions (issue 15): a thousand short run() calls with reads and
writes of state and monitors between them give exactly the result of one long run, and
the process's memory stays flat (the gpu backend keeps array buffers from run to run)."""

import numpy as np
import pytest
from brian2 import (Network, NeuronGroup, SpikeMonitor, Synapses, defaultclock, ms,
                    network_operation, prefs, seed, set_device, start_scope)

import brian2wgpu  # noqa: F401
from test_device import quiet_logs

RUNS = 1000
STEP = 0.1 * ms


def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _network():
    start_scope()
    defaultclock.dt = STEP
    seed(3)
    G = NeuronGroup(200, """dv/dt = (1.1 - v + ge)/(10*ms) : 1
                            dge/dt = -ge/(5*ms) : 1""",
                    threshold="v > 1", reset="v = 0", method="exact")
    G.v = "rand()"
    S = Synapses(G, G, "w : 1", on_pre="ge += w", delay=0.3 * ms)
    S.connect(p=0.1)
    S.w = "rand()*0.05"
    M = SpikeMonitor(G)
    return G, M, Network(G, S, M)


def _sessions():
    """One long run, then the same as RUNS short runs: (long run's spikes and v, the
    short runs' group and monitor, resident memory growth after the first 100 runs)."""
    # The long run makes, at the end of every 100th step, the write that the short runs
    # make between runs.
    G, M, net = _network()

    @network_operation(dt=100 * STEP, when="end")
    def silence():
        G.v[:20] = 0
    net.add(silence)
    net.run(RUNS * STEP)
    long_run = M.i[:].copy(), M.t[:].copy(), G.v[:].copy()

    G, M, net = _network()
    rss = None
    for k in range(RUNS):
        net.run(STEP)
        G.v[:] = G.v[:]  # a read and a write of the same values
        if k % 100 == 0:
            G.v[:20] = 0
        assert M.num_spikes == len(M.t[:])
        if k == 99:
            rss = _rss_mib()
    return long_run, (G, M), _rss_mib() - rss


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_thousand_short_runs_equal_one_long_run(backend, request):
    if backend == "gpu":
        request.getfixturevalue("gpu")
    set_device("wgpu")
    prefs.devices.wgpu.backend = backend
    try:
        with quiet_logs():
            long_run, (G, M), growth = _sessions()
        assert len(long_run[0]) > 100
        np.testing.assert_array_equal(M.i[:], long_run[0])
        np.testing.assert_array_equal(M.t[:], long_run[1])
        np.testing.assert_array_equal(G.v[:], long_run[2])
    finally:
        set_device("runtime")
    # Buffers or records kept per run would grow by ~50 kB per run (45 MiB here).
    assert growth < 16, f"resident memory grew by {growth:.1f} MiB over {RUNS - 100} runs"
