"""Variables set by string expression in the engine (large arrays) against Brian2's numpy
code: deterministic expressions give numpy's values, conditional ones touch numpy's
elements, random ones have the right distribution and follow ``seed()``."""

import numpy as np
import pytest
from brian2 import NeuronGroup, Synapses, ms, prefs, seed, set_device, start_scope

import brian2wgpu  # noqa: F401  (registers the device)
from brian2wgpu.setexpr import MIN_ELEMENTS

N = MIN_ELEMENTS + 1234


def build(mode, seed_value=4):
    start_scope()
    set_device("wgpu")
    before = prefs.devices.wgpu.string_expressions
    prefs.devices.wgpu.string_expressions = mode
    try:
        seed(seed_value)
        G = NeuronGroup(N, "v : 1\nw : 1\nx : 1", threshold="v > 1e9")
        G.w = "i * 0.5"
        G.v["i % 3 == 0"] = "w * 2 + 1"
        G.x = "rand()"
        H = NeuronGroup(N, "y : 1")
        H.y = "sin(i * 0.01)"
        S = Synapses(G, H, "q : 1", on_pre="y_post += q")
        S.connect(j="k for k in range(i, i + 2)", skip_if_invalid=True)
        S.q = "w_pre - y_post + 0.5 * i"
        S.q["j > 1000 and i % 2 == 0"] = "exp(-w_pre / 1000.0) + 7"
        S.delay = "rand() * 4 * ms"
        sub = G[100:N - 100]
        sub.w = "i * 0.25 + 1"  # subgroup: the subgroup's own i
        return dict(v=G.v[:].copy(), w=G.w[:].copy(), x=G.x[:].copy(), y=H.y[:].copy(),
                    q=S.q[:].copy(), delay=np.asarray(S.delay[:]).copy())
    finally:
        prefs.devices.wgpu.string_expressions = before
        set_device("runtime")


def test_deterministic_expressions_match_numpy():
    ref, got = build("numpy"), build("engine")
    for k in ("v", "w"):
        assert np.array_equal(ref[k], got[k]), k
    # sin and exp: the interpreter's own vectorised exp is within 1 ulp of glibc's.
    for k in ("y", "q"):
        np.testing.assert_allclose(got[k], ref[k], rtol=3e-16, atol=0, err_msg=k)


def test_random_expressions_have_the_distribution_and_follow_seed():
    ref, got = build("numpy"), build("engine")
    assert not np.array_equal(ref["x"], got["x"])  # the engine drew these
    for k, scale in (("x", 1.0), ("delay", 4e-3)):
        u = got[k] / scale
        assert 0 <= u.min() and u.max() < 1
        n = len(u)
        assert abs(u.mean() - 0.5) < 4 * np.sqrt(1 / 12 / n)
        assert abs(u.var() - 1 / 12) < 0.01
    again = build("engine")
    assert np.array_equal(got["x"], again["x"])
    other = build("engine", seed_value=5)
    assert not np.array_equal(got["x"], other["x"])


def test_aliased_arrays_fall_back_to_numpy():
    # x_pre and x_post are one array when a group connects to itself.
    out = {}
    for mode in ("numpy", "engine"):
        start_scope()
        set_device("wgpu")
        prefs.devices.wgpu.string_expressions = mode
        G = NeuronGroup(N, "x : 1", threshold="False")
        G.x = "i * 0.001"
        S = Synapses(G, G, "q : 1", on_pre="x_post += q")
        S.connect(j="i")
        S.q = "x_pre * 2 - x_post"
        out[mode] = S.q[:].copy()
    prefs.devices.wgpu.string_expressions = "engine"
    set_device("runtime")
    assert np.array_equal(out["numpy"], out["engine"])
