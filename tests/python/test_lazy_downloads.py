"""Transfers that follow use: a gpu run leaves what it wrote on the GPU, and the device
downloads an array only when Python reads it (or before anything else may need the host
copy). Every way a Brian2 script reaches its arrays between runs must see the newest
values: compared with numpy's runtime target on the same scripts."""

import numpy as np
import pytest
from brian2 import (NeuronGroup, Network, Synapses, SpikeMonitor, NetworkOperation, ms, prefs,
                    get_device)

import brian2wgpu

from test_device import run_with, compare


def _group(n=200):
    G = NeuronGroup(n, """dv/dt = (1.5 + 0.002*i - v)/(10*ms) : 1
                          x : 1""", threshold="v > 1", reset="v = 0; x += 1", method="euler")
    G.v = "0.5 * i / 200.0"
    return G


def reads_between_runs():
    G = _group()
    S = Synapses(G, G, "w : 1", on_pre="w += 0.25; v_post += 0.001*w")
    S.connect(j="(i + 7) % 200")
    M = SpikeMonitor(G)
    net = Network(G, S, M)
    out = {}
    net.run(5 * ms)
    out["v1"] = G.v[:].copy()            # read after a run
    G.v[:10] = 0.0                        # partial write: the rest must stay the GPU's
    net.run(5 * ms)
    G.x = "x * 2 + v"                     # string expression reading GPU-written arrays
    net.run(5 * ms)
    net.store()
    net.run(5 * ms)
    out["w_mid"] = S.w[:].copy()
    net.restore()                         # full overwrites of arrays left on the GPU
    net.run(5 * ms)
    out.update(v=G.v[:].copy(), x=G.x[:].copy(), w=S.w[:].copy(), i=M.i[:].copy(),
               t=M.t[:].copy())
    return out


def two_networks():
    # Net A's arrays are left on the GPU when net B (without them) runs, then A again.
    A, B = _group(), _group(50)
    MA = SpikeMonitor(A)
    netA, netB = Network(A, MA), Network(B)
    netA.run(4 * ms)
    netB.run(4 * ms)
    netA.run(4 * ms)
    return dict(va=A.v[:].copy(), vb=B.v[:].copy(), xa=A.x[:].copy(), i=MA.i[:].copy())


def operation_between():
    # A network_operation reads and writes state in the middle of runs.
    G = _group()

    def kick():
        G.v[::3] += 0.05

    net = Network(G, NetworkOperation(kick, dt=1 * ms))
    net.run(3 * ms)
    net.run(3 * ms)
    return dict(v=G.v[:].copy(), x=G.x[:].copy())


@pytest.mark.parametrize("script", [reads_between_runs, two_networks, operation_between])
def test_arrays_left_on_the_gpu_are_read_correctly(gpu, script):
    ref = run_with("numpy", script)
    got = run_with("wgpu", script, "gpu")
    compare(ref, got, exact=("i", "t"), rtol=1e-12)


def test_backend_switch_after_a_gpu_run(gpu):
    def script():
        G = _group()
        net = Network(G)
        net.run(3 * ms)
        if isinstance(get_device(), brian2wgpu.WgpuDevice):
            prefs.devices.wgpu.backend = "cpu"  # the interpreter continues from the GPU's state
        net.run(3 * ms)
        return dict(v=G.v[:].copy(), x=G.x[:].copy())

    ref = run_with("numpy", script)
    try:
        got = run_with("wgpu", script, "gpu")
    finally:
        prefs.devices.wgpu.backend = "auto"
    compare(ref, got, rtol=1e-12)


def test_a_run_downloads_only_what_python_reads(gpu):
    def script():
        G = _group(1000)
        H = _group(1000)
        net = Network(G, H)
        dev = get_device()
        seen = []
        for _ in range(3):
            net.run(1 * ms)
            _ = G.x[:]  # read one variable of one group
            seen.append(({v.name for v in dev._on_gpu.keys() if v.owner.name == G.name},
                         {v.name for v in dev._on_gpu.keys() if v.owner.name == H.name}))
        return seen, G.x[:].copy(), H.x[:].copy()

    seen, gx, hx = run_with("wgpu", script, "gpu")
    # After each run, G.x came back because it was read; H.x and both v (written by the
    # run, never read; Brian2's check of invalid values runs on the GPU) stayed there.
    for g, h in seen:
        assert "x" not in g and "x" in h, (g, h)
        assert "v" in g and "v" in h, (g, h)
    ref = run_with("numpy", _xs)
    assert np.array_equal(gx, ref[0]) and np.array_equal(hx, ref[1])


def _xs():
    G, H = _group(1000), _group(1000)
    net = Network(G, H)
    for _ in range(3):
        net.run(1 * ms)
    return G.x[:].copy(), H.x[:].copy()


def invalid_values(tag):
    from brian2.utils.logger import catch_logs

    healthy = NeuronGroup(5, "dv/dt = -v/(10*ms) : 1", method="euler", name=f"healthy_{tag}")
    healthy.v = 1
    # Doubles every step (euler, dt = tau): above 1e50 after 167 steps; the other after
    # about 660.
    blowup = NeuronGroup(5, "dv/dt = v/(0.1*ms) : 1", method="euler", name=f"blowup_{tag}")
    blowup.v = "1 + i"
    blowup32 = NeuronGroup(3, "dv/dt = v/(0.1*ms) : 1", method="euler", name=f"late_{tag}")
    blowup32.v = 1e-150
    net = Network(healthy, blowup, blowup32)
    warned = []
    for duration in (10 * ms, 10 * ms, 60 * ms):
        with catch_logs() as logs:
            net.run(duration)
        # Brian2 warns once per group and variable.
        warned.append(sorted(msg.split("_")[0] for _, _, msg in logs if "NaN" in msg))
    return warned, blowup.v[:].copy()


def test_invalid_values_are_found_where_the_arrays_are(gpu):
    ref_warned, ref_v = run_with("numpy", lambda: invalid_values("numpy"))
    got_warned, got_v = run_with("wgpu", lambda: invalid_values("wgpu"), "gpu")
    assert ref_warned == [[], ["blowup"], ["late"]], ref_warned
    assert got_warned == ref_warned
    np.testing.assert_array_equal(got_v, ref_v)
