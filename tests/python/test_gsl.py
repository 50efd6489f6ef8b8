"""GSL state updaters (``method='gsl_*'``) in the engine, against Brian2's own GSL code
(its Cython code objects linked to the GSL library) on the same model."""

import ctypes.util
import os

import brian2wgpu  # noqa: F401  registers the wgpu device
import numpy as np
import pytest
from brian2 import (
    Network,
    NeuronGroup,
    SpikeMonitor,
    StateMonitor,
    TimedArray,
    defaultclock,
    ms,
    mV,
    prefs,
    set_device,
    start_scope,
    volt,
)

METHODS = ["gsl_rk2", "gsl_rk4", "gsl_rkf45", "gsl_rkck", "gsl_rk8pd"]


def model(method, options=None):
    """Fast relaxation to a stepped input (a TimedArray, hoisted as loop-invariant: it
    uses the step's t) plus a per-neuron drive in t (evaluated at each stage's time),
    resets and a second variable: what makes GSL's adaptive driver work. (Not
    refractoriness: Brian2's GSL code re-evaluates it at each stage's time, the engine once
    per step, at t, as every other integrator; see README.)"""
    start_scope()
    defaultclock.dt = 1 * ms
    stimulus = TimedArray(np.array([0.2, 2.9, 1.1, 0.4, 2.2, 0.7, 1.6, 2.5]) * volt,
                          dt=5 * ms)
    G = NeuronGroup(4, """dv/dt = (stimulus(t) - v + w * sin(2*pi*freq*t) * volt)/(0.3*ms)
                                  : volt
                          dw/dt = (0.5 - w)/(2*ms) : 1
                          freq : Hz""",
                    threshold="v > 2*volt", reset="v = 0*volt",
                    method=method, namespace={"stimulus": stimulus},
                    method_options=dict({"save_step_count": True, "save_failed_steps": True,
                                         "absolute_error": 1e-5, "max_steps": 1000},
                                        **(options or {})))
    G.freq = "(50 + 40*i) * Hz"
    G.w = "0.1 * i"
    M = StateMonitor(G, ["v", "w"], record=True)
    S = SpikeMonitor(G)
    net = Network(G, M, S)
    net.run(40 * ms)
    return {"v": np.asarray(M.v_[:]).copy(), "w": np.asarray(M.w_[:]).copy(), "spikes": S.i[:].copy(),
            "steps": G._step_count[:].copy(), "failed": G._failed_steps[:].copy(),
            "h": G._last_timestep[:].copy()}


def on_wgpu(backend, build):
    set_device("wgpu")
    prefs.devices.wgpu.backend = backend
    try:
        return build()
    finally:
        set_device("runtime")


def on_cython_gsl(build):
    if ctypes.util.find_library("gsl") is None or not os.path.exists(
            "/usr/include/gsl/gsl_odeiv2.h"):
        if os.environ.get("CI") in ("true", "1"):
            pytest.fail("CI needs the GSL library for the reference (apt-get install "
                        "libgsl-dev; .ci/run does)")
        pytest.skip("no GSL library for Brian2's reference code")
    set_device("runtime")
    target = prefs.codegen.target
    prefs.codegen.target = "cython"
    try:
        return build()
    finally:
        prefs.codegen.target = target


@pytest.fixture(scope="module")
def reference():
    """Brian2's GSL (Cython) results of every method: one compile each, shared."""
    return {m: on_cython_gsl(lambda m=m: model(m)) for m in METHODS}


def close(ours, ref):
    # The same driver decisions give the same steps; the values then agree to rounding
    # (our coefficients are the doubles nearest GSL's rationals, summed in another order).
    np.testing.assert_array_equal(ours["spikes"], ref["spikes"])
    np.testing.assert_array_equal(ours["steps"], ref["steps"])
    np.testing.assert_array_equal(ours["failed"], ref["failed"])
    np.testing.assert_allclose(ours["h"], ref["h"], rtol=1e-6)
    np.testing.assert_allclose(ours["v"], ref["v"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours["w"], ref["w"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_gsl_matches_brian2s_gsl_on_the_interpreter(method, reference):
    ours = on_wgpu("cpu", lambda: model(method))
    assert ours["steps"].max() > 1, "the model should need more than one step per dt"
    close(ours, reference[method])


@pytest.mark.parametrize("method", METHODS)
def test_gsl_matches_brian2s_gsl_on_the_gpu(method, reference, gpu):
    close(on_wgpu("gpu", lambda: model(method)), reference[method])


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_fixed_step_that_is_too_large_fails_without_advancing_the_group(backend, request):
    if backend == "gpu":
        request.getfixturevalue("gpu")

    def build():
        start_scope()
        G = NeuronGroup(3, "dv/dt = -v/(0.01*ms) : volt", method="gsl",
                        method_options={"adaptable_timestep": False,
                                        "absolute_error": 1e-12}, dt=0.1 * ms)
        G.v = 1 * mV
        net = Network(G)
        with pytest.raises(RuntimeError, match="GSL integrator .* failed .* adaptable_timestep"):
            net.run(1 * ms)
        return np.asarray(G.v_[:])
    np.testing.assert_array_equal(on_wgpu(backend, build), 1e-3)


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_max_steps_is_enforced(backend, request):
    if backend == "gpu":
        request.getfixturevalue("gpu")

    def build():
        start_scope()
        G = NeuronGroup(1, "dv/dt = -v/(0.001*ms) : 1", method="gsl",
                        method_options={"max_steps": 3, "absolute_error": 1e-10})
        G.v = 1
        with pytest.raises(RuntimeError, match="max_steps = 3"):
            Network(G).run(0.1 * ms)
    on_wgpu(backend, build)
