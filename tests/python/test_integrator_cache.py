"""The disk cache for Brian2's state-updater code (python/brian2wgpu/integrator_cache.py):
a hit returns exactly the code Brian2 derives, the key tells apart what changes the code,
and what has no stable description is not cached."""

import glob
import json
import os

import numpy as np
import pytest
from brian2 import (NeuronGroup, Network, SpikeMonitor, Function, ms, mV, set_device,
                    start_scope, prefs, defaultclock)
from brian2.stateupdaters.base import StateUpdateMethod

import brian2wgpu  # noqa: F401
from brian2wgpu import integrator_cache

CUBA = """dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
          dge/dt = -ge/taue : volt
          dgi/dt = -gi/taui : volt"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BRIAN2WGPU_INTEGRATOR_CACHE", str(tmp_path))
    start_scope()
    defaultclock.dt = 0.1 * ms
    set_device("wgpu")
    prefs.devices.wgpu.backend = "cpu"
    yield tmp_path
    set_device("runtime")


def entries(where):
    return {p: json.load(open(p)) for p in glob.glob(os.path.join(where, "*", "*.json"))}


def cuba(taum=20 * ms, method="exact", n=50):
    start_scope()
    G = NeuronGroup(n, CUBA, threshold="v>-50*mV", reset="v=-60*mV", refractory=5 * ms,
                    method=method, namespace=dict(taum=taum, taue=5 * ms, taui=10 * ms,
                                                  El=-49 * mV))
    G.v = "-60*mV + 15*mV*i/n"
    G.ge = "2*mV*i/n"
    M = SpikeMonitor(G)
    Network(G, M).run(20 * ms)
    return G, M


def test_hit_returns_brians_code_and_same_spikes(cache):
    G, M = cuba()
    found = entries(cache)
    assert len(found) == 1
    [entry] = found.values()
    variables = G.state_updater.codeobj.variables
    # What Brian2 derives without the cache (its own in-memory cache cleared).
    direct = integrator_cache._original.__wrapped__(G.equations, variables, "exact")
    assert entry["code"] == direct
    first = (M.i[:].copy(), M.t[:].copy())
    assert len(first[0]) > 0
    # The file is what the second run reads: make it recognisably different.
    path = next(iter(found))
    json.dump({"code": entry["code"] + "\nv = v"}, open(path, "w"))
    G2, M2 = cuba()
    assert "v = v" in G2.state_updater.abstract_code
    np.testing.assert_array_equal(M2.i[:], first[0])
    np.testing.assert_array_equal(M2.t[:], first[1])


def test_key_tells_constants_and_methods_apart(cache):
    cuba(taum=20 * ms)
    cuba(taum=20 * ms)
    assert len(entries(cache)) == 1
    cuba(taum=10 * ms)
    assert len(entries(cache)) == 2
    cuba(method="euler")
    assert len(entries(cache)) == 3


def test_method_lists_remember_unsupported(cache):
    start_scope()
    G = NeuronGroup(5, "dv/dt = -v**3/(10*ms) : 1", method=("exact", "euler"))
    G.v = 1
    Network(G).run(1 * ms)
    kinds = sorted(next(iter(e)) for e in entries(cache).values())
    assert kinds == ["code", "unsupported"]
    v_first = G.v[:].copy()
    start_scope()
    G = NeuronGroup(5, "dv/dt = -v**3/(10*ms) : 1", method=("exact", "euler"))
    G.v = 1
    Network(G).run(1 * ms)
    np.testing.assert_array_equal(G.v[:], v_first)
    assert len(entries(cache)) == 2


def test_user_function_is_not_cached(cache):
    start_scope()
    f = Function(lambda x: x, arg_units=[1], return_unit=1)
    G = NeuronGroup(3, "dv/dt = -f(v)/(10*ms) : 1", method="euler")
    variables = dict(G.variables, f=f)
    with pytest.raises(integrator_cache._NoStableKey):
        integrator_cache._key(G.equations, variables, "euler", None)
    code = StateUpdateMethod.apply_stateupdater(G.equations, variables, "euler")
    assert "f(v)" in code
    assert entries(cache) == {}
    # The same call without the user function is cached.
    StateUpdateMethod.apply_stateupdater(G.equations, dict(G.variables), "euler")
    assert len(entries(cache)) == 1


def test_off(cache, monkeypatch):
    monkeypatch.setenv("BRIAN2WGPU_INTEGRATOR_CACHE", "")
    cuba()
    assert entries(cache) == {}
