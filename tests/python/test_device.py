"""Whole networks on the wgpu device against Brian2's numpy target (same model, same
seed): deterministic models must give identical spikes and matching traces."""

import contextlib
import logging

import numpy as np
import pytest
from brian2 import (NeuronGroup, Network, SpikeMonitor, StateMonitor, PopulationRateMonitor,
                    EventMonitor, network_operation, ms, mV, second, Hz, prefs, set_device,
                    start_scope, defaultclock, Clock, run, seed, stop, store, restore, device)

from brian2.devices.device import all_devices
import brian2wgpu  # noqa: F401  (registers the device)

BACKENDS = ["cpu", "gpu"]


@contextlib.contextmanager
def quiet_logs():
    """Brian2 logs several debug records per run, and pytest keeps every record it sees:
    tests with hundreds of runs raise Brian2's logger to WARNING while they run."""
    logger = logging.getLogger("brian2")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_with(device_name, build, backend="cpu", synapse_creation="numpy"):
    """Run ``build`` on numpy's runtime target or the wgpu device. These comparisons are
    of the simulation: synapses and string-set variables come from numpy's code on both
    (the engine's own ``connect`` and variable setting draw other random numbers;
    test_connect.py and test_setexpr.py test them)."""
    start_scope()
    defaultclock.dt = 0.1 * ms
    creation = prefs.devices.wgpu.synapse_creation
    expressions = prefs.devices.wgpu.string_expressions
    if device_name == "numpy":
        set_device("runtime")
        prefs.codegen.target = "numpy"
    else:
        set_device("wgpu")
        prefs.devices.wgpu.backend = backend
        prefs.devices.wgpu.synapse_creation = synapse_creation
        prefs.devices.wgpu.string_expressions = synapse_creation
    try:
        return build()
    finally:
        prefs.devices.wgpu.synapse_creation = creation
        prefs.devices.wgpu.string_expressions = expressions
        set_device("runtime")


def lif():
    G = NeuronGroup(100, """dv/dt = (I - v)/(10*ms) : 1 (unless refractory)
                           I : 1""", threshold="v > 1", reset="v = 0", refractory=3 * ms,
                    method="exact")
    G.I = "0.9 + 0.5*i/100.0"
    G.v = "i/100.0"
    M = SpikeMonitor(G)
    S = StateMonitor(G, ["v", "not_refractory"], record=[0, 50, 99])
    R = PopulationRateMonitor(G)
    net = Network(G, M, S, R)
    net.run(100 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), v=S.v[:].copy(), st=S.t[:].copy(),
                rate=R.rate[:].copy(), count=M.count[:].copy(),
                nr=S.not_refractory[:].copy())


def hh_fi_curve():
    # Hodgkin-Huxley f-I curve (after Brian2's examples/IF_curve_Hodgkin_Huxley.py)
    from brian2 import umetre, ufarad, cm, siemens, msiemens, nA, amp
    area = 20000 * umetre**2
    Cm = 1 * ufarad * cm**-2 * area
    gl = 5e-5 * siemens * cm**-2 * area
    El, EK, ENa = -65 * mV, -90 * mV, 50 * mV
    g_na = 100 * msiemens * cm**-2 * area
    g_kd = 30 * msiemens * cm**-2 * area
    VT = -63 * mV
    eqs = """
    dv/dt = (gl*(El-v) - g_na*(m*m*m)*h*(v-ENa) - g_kd*(n*n*n*n)*(v-EK) + I)/Cm : volt
    dm/dt = 0.32*(mV**-1)*4*mV/exprel((13.*mV-v+VT)/(4*mV))/ms*(1-m)-0.28*(mV**-1)*5*mV/exprel((v-VT-40.*mV)/(5*mV))/ms*m : 1
    dn/dt = 0.032*(mV**-1)*5*mV/exprel((15.*mV-v+VT)/(5*mV))/ms*(1.-n)-.5*exp((10.*mV-v+VT)/(40.*mV))/ms*n : 1
    dh/dt = 0.128*exp((17.*mV-v+VT)/(18.*mV))/ms*(1.-h)-4./(1+exp((40.*mV-v+VT)/(5.*mV)))/ms*h : 1
    I : amp
    """
    G = NeuronGroup(50, eqs, threshold="v > -40*mV", refractory="v > -40*mV",
                    method="exponential_euler")
    G.v = El
    G.I = "0.7*nA * i / 50"
    M = SpikeMonitor(G)
    Network(G, M).run(200 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), count=M.count[:].copy())


def adaptive_threshold():
    G = NeuronGroup(30, """dv/dt = (1.5 - v)/(10*ms) : 1
                           dvt/dt = (1 - vt)/(50*ms) : 1""",
                    threshold="v > vt", reset="v = 0; vt += 0.2", method="euler")
    G.v = "rand()"  # host-side initialisation, identical under the same seed
    G.vt = 1
    M = SpikeMonitor(G, variables=["vt"])
    Network(G, M).run(150 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), vt=M.vt[:].copy())


def custom_events_and_clocks():
    G = NeuronGroup(20, """dv/dt = (2 - v)/(10*ms) : 1
                           x : 1""", threshold="v > 1", reset="v = 0",
                    events={"half": "v > 0.5 and x < 3"}, method="euler")
    G.run_on_event("half", "x += 1")
    G.run_regularly("x = 0", dt=1 * ms)
    G.v = "i/20.0"
    slow = Clock(dt=0.3 * ms)
    S = StateMonitor(G, ["v", "x"], record=True, clock=slow)
    E = EventMonitor(G, "half", variables=["v"])
    M = SpikeMonitor(G)
    Network(G, S, E, M).run(20 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), ei=E.i[:].copy(), et=E.t[:].copy(),
                ev=E.v[:].copy(), v=S.v[:].copy(), x=S.x[:].copy(), st=S.t[:].copy())


def timed_array_input():
    # 1-D and 2-D TimedArrays in equations, a subexpression and run_regularly; a dt that
    # does not divide the table's (Brian2's K rule decides the rows).
    from brian2 import TimedArray
    ta = TimedArray(np.array([0, 1.5, 0.2, 3.0, 0.7]), dt=1.2 * ms)
    ta2 = TimedArray(np.arange(12).reshape(4, 3) * 0.1, dt=2 * ms)
    G = NeuronGroup(3, """dv/dt = (ta(t) + ta2(t, i) - v)/(5*ms) : 1
                          x = ta2(t, i) : 1""", threshold="v > 0.6", reset="v = 0",
                    method="euler")
    G.run_regularly("v += 0.01*ta(t)", dt=0.5 * ms)
    M = SpikeMonitor(G)
    S = StateMonitor(G, ["v", "x"], record=True)
    Network(G, M, S).run(12 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), v=S.v[:].copy(), x=S.x[:].copy())


def shared_variable_recorded():
    G = NeuronGroup(3, """dv/dt = -v/(10*ms) + 1/ms : 1
                          vc : 1 (shared)""", threshold="v > 1", reset="v = 0",
                    method="euler")
    G.run_regularly("vc = vc + 0.5", dt=1 * ms)
    S = StateMonitor(G, ["vc", "v"], record=[0, 2])
    M = SpikeMonitor(G)
    Network(G, S, M).run(3 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), vc=S.vc[:].copy(), v=S.v[:].copy())


def event_clock_inputs():
    # run_at (an EventClock) kicks the neurons at given times, between and on the steps of
    # the regular clock; a StateMonitor on its own EventClock samples irregularly.
    from brian2 import EventClock
    G = NeuronGroup(4, "dv/dt = -v/(10*ms) : 1", threshold="v > 1", reset="v = 0",
                    method="exact")
    G.run_at("v += 0.3 + 0.1*i", times=[1, 2.05, 3, 3.5, 7] * ms)
    S = StateMonitor(G, "v", record=True, clock=EventClock([0.5, 2, 2.05, 6.3] * ms))
    M = SpikeMonitor(G)
    Network(G, S, M).run(10 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), v=S.v[:].copy(), st=S.t[:].copy())


def time_varying_drive():
    # Scalar code that reads the clock (Brian2 lifts `sin(2*pi*f*t)` into the scalar
    # block): the gpu backend evaluates it on the host once per step, for whole batches
    # ahead; a short batch and two runs check the rows line up across batches and runs.
    f = 37 * Hz
    G = NeuronGroup(20, """dv/dt = (sin(2*pi*f*t) + cos(2*pi*f*t_in_timesteps*dt)*i/N
                                   - v)/(2*ms) : 1""",
                    threshold="v > 0.5", reset="v = 0", method="euler")
    M = SpikeMonitor(G)
    S = StateMonitor(G, "v", record=[0, 7, 19])
    net = Network(G, M, S)
    batch = prefs.devices.wgpu.steps_per_batch
    prefs.devices.wgpu.steps_per_batch = 7
    try:
        net.run(30 * ms)
        net.run(17 * ms)
    finally:
        prefs.devices.wgpu.steps_per_batch = batch
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), v=S.v[:].copy(), st=S.t[:].copy())


def compare(ref, got, exact=("i", "t", "ei", "et", "count", "st", "nr"), rtol=1e-9):
    for k in ref:
        if k in exact:
            assert np.array_equal(np.asarray(ref[k]), np.asarray(got[k])), k
        else:
            np.testing.assert_allclose(np.asarray(got[k]), np.asarray(ref[k]), rtol=rtol,
                                       atol=1e-12, err_msg=k)


def _slow_network():
    """50,000 neurons of costly rk4 updates: tens of ms of lavapipe work per step."""
    G = NeuronGroup(50000, """dv/dt = (exp(-v)*sin(3*v) + cos(v)**3 + 1.2 - v)/(10*ms) : 1
                              dw/dt = (exp(v - w)*tanh(w) - w)/(7*ms) : 1""",
                    threshold="v > 1", reset="v = 0", method="rk4")
    G.v = "i*1.0/N"
    M = SpikeMonitor(G)
    return Network(G, M), M


def test_gpu_wait_deadline_follows_the_work(gpu):
    """Once a network's batches have been timed, a wait may last ten times what the work in
    flight should take: a preference far below one batch's time raises nothing then."""
    build = _slow_network
    timeout = prefs.devices.wgpu.gpu_timeout
    set_device("wgpu")
    prefs.devices.wgpu.backend = "gpu"
    try:
        start_scope()
        net, M = build()
        net.run(2 * ms)  # times the network's steps
        prefs.devices.wgpu.gpu_timeout = 0.005  # test_gpu_wait_deadline: one batch is longer
        net.run(10 * ms)
        # Reads after the run (under the preference of their time) wait for nothing in
        # flight: back to the usual deadline.
        prefs.devices.wgpu.gpu_timeout = timeout
        got = M.count[:].copy()
    finally:
        prefs.devices.wgpu.gpu_timeout = timeout
        set_device("runtime")

    def reference():
        net, M = build()
        net.run(12 * ms)
        return dict(count=M.count[:].copy())
    ref = run_with("wgpu", reference, "cpu")
    assert np.array_equal(ref["count"], got)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", [lif, hh_fi_curve, adaptive_threshold, custom_events_and_clocks,
                                   event_clock_inputs,
                                   timed_array_input, shared_variable_recorded,
                                   time_varying_drive])
def test_matches_numpy(model, backend):
    seed(11)
    ref = run_with("numpy", model)
    seed(11)
    got = run_with("wgpu", model, backend)
    assert len(ref["i"]) > 0
    compare(ref, got)


@pytest.mark.parametrize("backend", BACKENDS)
def test_multiple_runs_and_set_between(backend):
    def build():
        G = NeuronGroup(10, "dv/dt = (2 - v)/(10*ms) : 1", threshold="v > 1", reset="v = 0",
                        method="exact")
        M = SpikeMonitor(G)
        net = Network(G, M)
        net.run(10 * ms)
        G.v = 0.5
        net.run(10 * ms)
        G.v[:5] = 0.9
        net.run(5 * ms)
        return dict(i=M.i[:].copy(), t=M.t[:].copy(), v=G.v[:].copy(),
                    tt=np.array([float(net.t)]))
    ref = run_with("numpy", build)
    got = run_with("wgpu", build, backend)
    compare(ref, got, exact=("i", "t", "tt"))


def interactive_session():
    """Runs with every way of changing arrays between them (and one during a run): the gpu
    backend keeps its buffers from run to run and must upload exactly what changed."""
    from brian2 import Synapses
    G = NeuronGroup(40, """dv/dt = (I - v)/(5*ms) : 1
                           I : 1""", threshold="v > 1", reset="v = 0", method="exact")
    G.I = "1.1 + 0.4*i/40"
    S = Synapses(G, G, "w : 1", on_pre="v_post += w", delay=1 * ms)
    S.connect(j="(i + 1) % N_post")
    S.w = 0.05
    M = SpikeMonitor(G)
    kicks = []

    @network_operation(dt=3 * ms)
    def kick(t):
        if 4 * ms < t < 8 * ms:
            G.I[3] = 2.5  # during a run: the callback's change must reach the GPU
            kicks.append(float(G.v[3]))
    net = Network(G, S, M, kick)
    out = {}
    net.run(10 * ms)
    out["v1"] = G.v[:].copy()
    G.v = "v * 0.5"             # host code on a state variable
    net.run(5 * ms)
    net.run(5 * ms)             # nothing changed in between
    G.v[:5] = 0.9               # assignment by index
    S.w["i < 10"] = 0.3         # synaptic, by condition
    net.store()
    net.run(5 * ms)
    out["v2"] = G.v[:].copy()
    net.restore()               # everything back, on the host
    S.delay = 2 * ms            # the queue layout changes
    net.run(5 * ms)
    S.connect(i=[0, 1], j=[10, 20])  # synapse arrays grow
    S.w["i < 2"] = 0.4
    net.run(5 * ms)
    out.update(i=M.i[:].copy(), t=M.t[:].copy(), v=G.v[:].copy(), w=S.w[:].copy(),
               kicks=np.array(kicks))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_arrays_changed_between_runs(backend):
    ref = run_with("numpy", interactive_session)
    got = run_with("wgpu", interactive_session, backend)
    assert len(ref["i"]) > 0
    compare(ref, got)


def test_unchanged_arrays_are_not_uploaded_again(gpu):
    """A second run with nothing changed uploads only the small per-run arrays; a
    synaptic weight set in between is uploaded again (and only then)."""
    from brian2 import Synapses

    def build():
        G = NeuronGroup(100, "dv/dt = (1.2 - v)/(10*ms) : 1", threshold="v > 1",
                        reset="v = 0", method="exact")
        S = Synapses(G, G, "w : 1", on_pre="v_post += w")
        S.connect(p=0.5)
        S.w = "0.01"
        net = Network(G, S, SpikeMonitor(G))
        uploads = []
        for change in (False, False, True):
            if change:
                S.w = 0.02
            net.run(1 * ms)
            uploads.append(device.last_run_info["gpu_uploaded_bytes"])
        return uploads, len(S) * 8
    first, second, after_set = run_with("wgpu", build, "gpu")[0]
    w_bytes = run_with("wgpu", build, "gpu")[1]
    assert first > w_bytes
    assert second < w_bytes / 4, (first, second)
    assert w_bytes <= after_set < first, (first, second, after_set)


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_restore(backend):
    def build():
        G = NeuronGroup(5, "dv/dt = (2 - v)/(10*ms) : 1", threshold="v > 1", reset="v = 0",
                        method="exact")
        M = SpikeMonitor(G)
        net = Network(G, M)
        net.store()
        net.run(10 * ms)
        first = M.i[:].copy(), M.t[:].copy()
        net.restore()
        net.run(10 * ms)
        return dict(i1=first[0], t1=first[1], i=M.i[:].copy(), t=M.t[:].copy())
    got = run_with("wgpu", build, backend)
    assert np.array_equal(got["i1"], got["i"]) and np.array_equal(got["t1"], got["t"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_network_operation_and_stop(backend):
    def build():
        G = NeuronGroup(3, "dv/dt = 1/(10*ms) : 1", method="euler")
        seen = []

        @network_operation(dt=1 * ms)
        def op(t):
            seen.append(float(G.v[0]))
            if t >= 5 * ms:
                stop()
        net = Network(G, op)
        net.run(20 * ms)
        return dict(seen=np.array(seen), t=np.array([float(net.t)]))
    ref = run_with("numpy", build)
    got = run_with("wgpu", build, backend)
    compare(ref, got, exact=("t",))


@pytest.mark.parametrize("backend", BACKENDS)
def test_stress_every_neuron_every_step(backend):
    """100,000 neurons firing every step for 200 steps: 2e7 spikes, none lost."""
    def build():
        G = NeuronGroup(100_000, "v : 1", threshold="True")
        M = SpikeMonitor(G)
        Network(G, M).run(200 * defaultclock.dt)
        return M
    M = run_with("wgpu", build, backend)
    assert M.num_spikes == 20_000_000
    i, t = M.i[:], M.t[:]
    assert np.array_equal(i[:100_000], np.arange(100_000))
    assert np.array_equal(i[-100_000:], np.arange(100_000))
    steps = np.round(np.asarray(t) / float(defaultclock.dt)).astype(np.int64)
    assert np.array_equal(np.bincount(steps), np.full(200, 100_000))
    assert np.array_equal(M.count[:], np.full(100_000, 200))


@pytest.mark.parametrize("backend", BACKENDS)
def test_unsupported_feature_is_clear(backend):
    from brian2 import Function, Synapses  # noqa: F401

    def build():
        # A function with C++ code only: neither the engine nor numpy can call it.
        f = Function(None, arg_units=[1], return_unit=1)
        f.implementations.add_implementation("cpp", code="double f(double x) { return x; }")
        G = NeuronGroup(2, "dv/dt = -f(v)/ms : 1", method="euler", namespace={"f": f})
        Network(G).run(1 * ms)
    with pytest.raises(NotImplementedError, match="wgpu device: user function 'f' in .* has "
                                                  "neither a 'wgpu' implementation nor a numpy"):
        run_with("wgpu", build, backend)


def test_scalar_code_runs_once_per_step(gpu, tmp_path):
    """No generated kernel evaluates Brian2's scalar code per element: run-invariant
    values (exact integration's exp(-dt/tau)) and clock-dependent ones (sin of t) come
    from host-computed tables; the dumped WGSL shows it."""
    prefs.devices.wgpu.dump_shaders = str(tmp_path)

    def build():
        G = NeuronGroup(10, """dv/dt = (sin(2*pi*40*Hz*t) - v)/(10*ms) : 1
                               dw/dt = -w/(20*ms) : 1""", threshold="v > 0.5",
                        reset="v = 0; w += exp(-t/(5*ms))", method="euler")
        Network(G).run(5 * ms)
        return dict(v=G.v[:].copy(), w=G.w[:].copy())
    try:
        got = run_with("wgpu", build, "gpu")
    finally:
        prefs.devices.wgpu.dump_shaders = ""
    compare(run_with("numpy", build), got)
    kernels = {p.name: p.read_text() for p in tmp_path.glob("*.wgsl")}
    generated = {n: src for n, src in kernels.items() if "codeobject" in n}
    assert generated, kernels.keys()
    for name, src in generated.items():
        start = src.index("fn b2_kernel")
        main = src[start:src.index("\n}\n", start)]
        for f in ("b2_sin_f64", "b2_exp_f64"):
            assert f + "(" not in main, f"{name} calls {f} per element"
    assert any("b2_hoisted_step_f64" in src for src in generated.values())


def _softclip():
    """A user function with a numpy and a 'wgpu' (WGSL) implementation (README example)."""
    from brian2 import Function
    f = Function(lambda x: 2 * np.tanh(x), arg_units=[1], return_unit=1)
    f.implementations.add_implementation("wgpu", code="""
fn softclip(x: f64) -> f64 {
    // 2 tanh(x) = 2 (1 - e^-2x) / (1 + e^-2x); f64 arithmetic only, no f64 builtin
    let e = b2_exp_f64(-2.0 * x);
    return 2.0 * (1.0 - e) / (1.0 + e);
}
""")
    return f


def test_user_function_with_wgsl_implementation(gpu):
    f = _softclip()

    def build():
        G = NeuronGroup(5, "dv/dt = (softclip(I) - v)/(10*ms) : 1\nI : 1", method="euler",
                        namespace={"softclip": f})
        G.I = "i*0.3"
        Network(G).run(10 * ms)
        return dict(v=G.v[:].copy())
    ref = run_with("numpy", build)
    got = run_with("wgpu", build, "gpu")
    compare(ref, got, rtol=1e-12)
    # The interpreter runs no WGSL: the numpy implementation, on the host.
    compare(ref, run_with("wgpu", build, "cpu"), rtol=0)


def python_functions_in_neurons():
    # Python functions (no 'wgpu' implementation) in a state update, threshold, reset,
    # run_regularly and monitors: numpy's semantics (whole arrays per call, every step).
    from brian2 import Function, PopulationRateMonitor, Synapses, check_units
    calls = []

    @check_units(x=1, result=1)
    def drive(x):
        calls.append(len(x))
        return 1.2 + 0.1 * np.sin(x)
    drive = Function(drive, arg_units=[1], return_unit=1, stateless=True)
    jitter = Function(lambda x: 0.05 * np.cos(3 * x), arg_units=[1], return_unit=1)
    G = NeuronGroup(20, """dv/dt = (drive(v + 0.1*i) - v)/(5*ms) : 1
                           y = jitter(v) : 1""",
                    threshold="v > 1 + jitter(i)", reset="v = jitter(v)", method="euler",
                    namespace={"drive": drive, "jitter": jitter})
    G.run_regularly("v = v + jitter(t/ms)", dt=1 * ms)
    H = NeuronGroup(20, "dv/dt = (1.1 - v)/(4*ms) : 1", threshold="v > 1", reset="v = 0",
                    method="exact")
    H.v = "i/20.0"
    S = Synapses(G, H, on_pre="v_post += 0.05")
    S.connect(j="i")
    M = SpikeMonitor(G, variables=["y"])
    V = StateMonitor(G, ["v", "y"], record=[0, 7, 19])
    R = PopulationRateMonitor(G)
    Network(G, H, S, M, V, R).run(12 * ms)
    assert calls and max(calls) == 20  # whole arrays, as numpy calls it
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), y=M.y[:].copy(), v=V.v[:].copy(),
                vy=V.y[:].copy(), rate=R.rate[:].copy(), hv=H.v[:].copy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_python_functions_run_on_the_host(backend):
    ref = run_with("numpy", python_functions_in_neurons)
    assert len(ref["i"]) > 5
    with quiet_logs():
        got = run_with("wgpu", python_functions_in_neurons, backend)
    compare(ref, got, exact=("i", "t"), rtol=1e-12)


def python_function_in_a_pathway():
    # on_pre calls a Python function (that pathway runs on the host: Brian2's push and
    # queue, then its numpy code), on_post does not (the engine runs it); delays with
    # spikes in flight across two runs, a non-accumulating statement.
    from brian2 import Function, Synapses
    half = Function(lambda x: 0.5 * np.tanh(x), arg_units=[1], return_unit=1)
    G = NeuronGroup(12, "dv/dt = (1.2 + 0.01*i - v)/(3*ms) : 1", threshold="v > 1",
                    reset="v = 0", method="exact")
    G.v = "i / 12.0"
    H = NeuronGroup(5, "dv/dt = (1.1 - v)/(4*ms) : 1", threshold="v > 1", reset="v = 0",
                    method="exact")
    S = Synapses(G, H, "w : 1", on_pre="v_post = v_post*0.9 + half(w)",
                 on_post="w = clip(w - 0.01, 0, 1)", namespace={"half": half})
    S.connect(j="i % 5")
    S.w = "0.2 + 0.05*i"
    S.pre.delay = "(i % 4)*0.3*ms"
    M = SpikeMonitor(H)
    net = Network(G, H, S, M)
    net.run(4.05 * ms)
    net.run(6 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), w=S.w[:].copy(), v=H.v[:].copy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_python_function_in_a_pathway(backend):
    ref = run_with("numpy", python_function_in_a_pathway)
    assert len(ref["i"]) > 5
    with quiet_logs():
        got = run_with("wgpu", python_function_in_a_pathway, backend)
    compare(ref, got, rtol=1e-12)


def cable():
    # A passive cylinder with a spiking soma condition: SpatialNeuron's cable equation
    # with engine kernels around it.
    from brian2 import Cylinder, SpatialNeuron, uF, cm, ohm, siemens, nA, um
    morpho = Cylinder(length=300 * um, diameter=1 * um, n=30)
    eqs = """Im = gL * (EL - v) : amp/meter**2
             I : amp (point current)"""
    neuron = SpatialNeuron(morphology=morpho, model=eqs, Cm=1 * uF / cm**2, Ri=100 * ohm * cm,
                           namespace=dict(gL=1e-4 * siemens / cm**2, EL=-70 * mV),
                           threshold="v > -60*mV", reset="v = -70*mV", refractory=2 * ms,
                           method="exponential_euler")
    neuron.v = -70 * mV
    neuron.I[0] = 0.02 * nA
    S = StateMonitor(neuron, "v", record=[0, 15, 29])
    M = SpikeMonitor(neuron)
    Network(neuron, S, M).run(20 * ms)
    return dict(v=S.v[:].copy(), i=M.i[:].copy(), t=M.t[:].copy())


def branched_hh_cable():
    # Hodgkin-Huxley channels on a soma with an axon and a dendrite that branches twice
    # (the coupling system has branch points with several children); two runs with v set
    # between them and a dt change that makes Brian2 recompute the coefficients.
    from brian2 import Soma, Cylinder, SpatialNeuron, uF, cm, ohm, msiemens, siemens, nA, um
    morpho = Soma(30 * um)
    morpho.axon = Cylinder(diameter=1 * um, length=300 * um, n=40)
    morpho.dend = Cylinder(diameter=2 * um, length=100 * um, n=10)
    morpho.dend.a = Cylinder(diameter=1 * um, length=80 * um, n=7)
    morpho.dend.b = Cylinder(diameter=1 * um, length=60 * um, n=1)
    morpho.dend.a.c = Cylinder(diameter=0.5 * um, length=50 * um, n=5)
    eqs = """Im = gL*(EL - v) + gNa*m**3*h*(ENa - v) + gK*n**4*(EK - v) : amp/meter**2
             I : amp (point current)
             gNa : siemens/meter**2
             dm/dt = 0.1/mV*10*mV/exprel((-v+25*mV)/(10*mV))/ms*(1-m) - 4*exp(-v/(18*mV))/ms*m : 1
             dh/dt = 0.07*exp(-v/(20*mV))/ms*(1-h) - 1/(exp((-v+30*mV)/(10*mV))+1)/ms*h : 1
             dn/dt = 0.01/mV*10*mV/exprel((-v+10*mV)/(10*mV))/ms*(1-n) - 0.125*exp(-v/(80*mV))/ms*n : 1"""
    neuron = SpatialNeuron(morphology=morpho, model=eqs, Cm=1 * uF / cm**2, Ri=100 * ohm * cm,
                           namespace=dict(gL=1e-4 * siemens / cm**2, EL=10.6 * mV, ENa=115 * mV,
                                          EK=-12 * mV, gK=36 * msiemens / cm**2),
                           threshold="v > 50*mV", threshold_location=0, refractory="v > 50*mV",
                           method="exponential_euler")
    neuron.v = 0 * mV
    neuron.h, neuron.m, neuron.n = 1, 0, 0.5
    neuron.gNa = 120 * msiemens / cm**2
    neuron.axon.gNa = 60 * msiemens / cm**2
    neuron.I[0] = 0.5 * nA
    S = StateMonitor(neuron, "v", record=[0, 20, 40, 45, 52, 58, 59, 63])
    M = SpikeMonitor(neuron)
    net = Network(neuron, S, M)
    net.run(15 * ms)
    neuron.dend.v = 20 * mV
    neuron.I[0] = 0.3 * nA
    net.run(10 * ms)
    defaultclock.dt = 0.05 * ms
    net.run(10 * ms)
    return dict(v=S.v[:].copy(), i=M.i[:].copy(), t=M.t[:].copy(), vend=neuron.v[:].copy(),
                ic=neuron.Ic[:].copy())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", [cable, branched_hh_cable])
def test_spatial_neuron_matches_numpy(model, backend):
    """SpatialNeuron's cable equation as an engine step on both backends (the template's
    tridiagonal solves per section, the coupling over the section tree; on the GPU three
    passes of shaders/cable.wgsl), not Brian2's numpy code on the host."""
    ref = run_with("numpy", model)
    with quiet_logs():
        got = run_with("wgpu", model, backend)
    assert len(ref["i"]) > 0
    compare(ref, got, exact=("i", "t"), rtol=1e-9)
    host = all_devices["wgpu"].last_run_info["host_code_objects"]
    assert not any("spatialstateupdater" in name for name in host), host


@pytest.mark.parametrize("backend", BACKENDS)
def test_spatial_neuron_float32(backend):
    """The cable step in the model's float32 (both backends): numpy's float32 voltages
    within float32 rounding, the same spikes."""
    import numpy as np
    old = prefs.core.default_float_dtype
    prefs.core.default_float_dtype = np.float32
    try:
        ref = run_with("numpy", cable)
        with quiet_logs():
            got = run_with("wgpu", cable, backend)
    finally:
        prefs.core.default_float_dtype = old
    v, v_ref = np.asarray(got["v"]), np.asarray(ref["v"])
    assert v.dtype == np.float32
    assert len(ref["i"]) > 0 and np.array_equal(ref["i"], got["i"])
    np.testing.assert_allclose(v, v_ref, rtol=1e-4, atol=1e-7)


def test_gpu_wait_deadline(gpu):
    """A wait for the GPU that misses prefs.devices.wgpu.gpu_timeout raises TimeoutError
    (not a hang), and the next run() works on a new device."""
    import time

    # Tens of ms of lavapipe work per step: one batch of 100 steps (lavapipe's submit
    # blocks while an earlier submission runs, so the wait that can time out here is the
    # one after the last batch) far outlasts 5 ms.
    build = _slow_network
    timeout = prefs.devices.wgpu.gpu_timeout
    set_device("wgpu")
    prefs.devices.wgpu.backend = "gpu"
    try:
        start_scope()
        net, _ = build()
        prefs.devices.wgpu.gpu_timeout = 0.005
        t0 = time.perf_counter()
        with pytest.raises(TimeoutError, match="gpu_timeout"):
            net.run(10 * ms)
        assert time.perf_counter() - t0 < 30  # pipelines compile first; no hang
        prefs.devices.wgpu.gpu_timeout = timeout
        start_scope()
        net, M = build()
        net.run(2 * ms)
        assert device.last_run_info["backend"] == "gpu"
        got = M.count[:].copy()
    finally:
        prefs.devices.wgpu.gpu_timeout = timeout
        set_device("runtime")

    def reference():
        net, M = build()
        net.run(2 * ms)
        return dict(count=M.count[:].copy())
    ref = run_with("wgpu", reference, "cpu")
    assert np.array_equal(ref["count"], got)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_binomial(backend):
    # BinomialFunction(approximate=False) in the normal regime draws exact integers (BTRD
    # from the engine's streams): binomial mean and variance (the normal approximation
    # would add none of its skew and give non-integers), reproducible under seed().
    from brian2 import BinomialFunction, StateMonitor
    from scipy import stats

    def build():
        seed(4)
        exact = BinomialFunction(400, 0.1, approximate=False)
        exact_hi = BinomialFunction(100000, 0.7, approximate=False)
        approx = BinomialFunction(400, 0.1)
        G = NeuronGroup(2000, "x : 1\ny : 1\nz : 1")
        G.run_regularly("x = exact()\ny = exact_hi()\nz = approx()")
        M = StateMonitor(G, ["x", "y"], record=[3])
        Network(G, M).run(0.5 * ms)
        return dict(x=G.x[:].copy(), y=G.y[:].copy(), z=G.z[:].copy(), mx=M.x[:].copy())

    got = run_with("wgpu", build, backend)
    again = run_with("wgpu", build, backend)
    np.testing.assert_array_equal(got["x"], again["x"])
    x, y = got["x"], got["y"]
    assert np.all(x == np.round(x)) and np.all(y == np.round(y))
    assert np.any(got["z"] != np.round(got["z"]))  # the approximation stays a real number
    assert len(np.unique(got["mx"])) > 1  # new draws every step
    for values, (n, p) in ((x, (400, 0.1)), (y, (100000, 0.7))):
        mean, var = n * p, n * p * (1 - p)
        assert abs(values.mean() - mean) < 4 * np.sqrt(var / len(values))
        assert abs(values.var() / var - 1) < 4 * np.sqrt(2 / len(values))
    # The whole distribution of the small one (merged tails) against the binomial pmf.
    ks = np.arange(20, 61)
    observed = np.array([np.sum(x <= 20)] + [np.sum(x == k) for k in ks[1:-1]]
                        + [np.sum(x >= 60)])
    pmf = stats.binom(400, 0.1)
    expected = len(x) * np.concatenate([[pmf.cdf(20)], pmf.pmf(ks[1:-1]), [pmf.sf(59)]])
    assert stats.chisquare(observed, expected).pvalue > 1e-4


def failing_operation():
    # A network_operation raises in the middle of a run: numpy's runtime target leaves the
    # network at that time step (objects before the operation have run) and a second
    # run() continues from there (and fails again at once here).
    from brian2 import network_operation
    G = NeuronGroup(3, "dv/dt = (1 + 0.1*i)/ms : 1", threshold="v > 0.35", reset="v = 0")
    M = SpikeMonitor(G)
    S = StateMonitor(G, "v", record=[0, 2])

    @network_operation(dt=0.1 * ms)
    def boom(t):
        if t >= 0.5 * ms:
            raise ValueError("boom")
    net = Network(G, M, S, boom)
    errors = []
    for _ in range(2):
        try:
            net.run(1 * ms)
        except ValueError as exc:
            errors.append(exc)
    assert len(errors) == 2
    return dict(net_t=float(net.t / second), clock_t=float(defaultclock.t / second), v=G.v[:].copy(),
                i=M.i[:].copy(), t=M.t[:].copy(), sv=S.v[:].copy(), st=S.t[:].copy(),
                notes=getattr(errors[0], "__notes__", []))


@pytest.mark.parametrize("backend", BACKENDS)
def test_failed_run_leaves_the_network_where_it_stopped(backend):
    ref = run_with("numpy", failing_operation)
    with quiet_logs():
        got = run_with("wgpu", failing_operation, backend)
    assert ref["net_t"] == pytest.approx(0.5e-3)
    assert any("stopped at t = 0.5" in n for n in got.pop("notes")), "the error says where"
    ref.pop("notes")
    compare(ref, got, exact=("i", "t", "st", "net_t", "clock_t"), rtol=0)


def test_adapter_choice_by_index_or_name(gpu, monkeypatch):
    from brian2wgpu import list_adapters
    from brian2wgpu.device import select_adapters
    adapters = list_adapters()
    assert select_adapters(adapters, "") == adapters
    assert select_adapters(adapters, "0") == adapters[:1]
    assert select_adapters(adapters, str(len(adapters))) == []
    name = adapters[0]["name"]
    assert select_adapters(adapters, name[:4].upper())[0]["name"] == name

    def build():
        G = NeuronGroup(3, "dv/dt = 1/ms : 1")
        Network(G).run(0.1 * ms)
        return G.v[:].copy()
    prefs.devices.wgpu.adapter = "0"
    try:
        assert np.allclose(run_with("wgpu", build, "gpu"), 0.1)
        monkeypatch.setenv("BRIAN2WGPU_ADAPTER", str(len(adapters)))  # overrides the pref
        with pytest.raises(RuntimeError, match="no adapter matches .*python -m brian2wgpu"):
            run_with("wgpu", build, "gpu")
    finally:
        prefs.devices.wgpu.adapter = ""


def test_adapters_enumerated_once(monkeypatch):
    """Listing adapters creates a wgpu instance (~20-40 ms): the device does it once, not
    in every run() (interactive scripts call run() hundreds of times)."""
    from brian2wgpu import _engine
    dev = all_devices["wgpu"]
    calls = []
    real = _engine.list_adapters
    monkeypatch.setattr(_engine, "list_adapters", lambda: calls.append(1) or real())
    monkeypatch.setattr(dev, "_adapters", None)
    set_device("wgpu")
    backend = prefs.devices.wgpu.backend
    prefs.devices.wgpu.backend = "auto"
    try:
        start_scope()
        G = NeuronGroup(3, "dv/dt = -v/(10*ms) : 1")
        net = Network(G)
        for _ in range(3):
            net.run(0.2 * ms)
    finally:
        prefs.devices.wgpu.backend = backend
        set_device("runtime")
    assert len(calls) == 1


def test_set_device_options(gpu, monkeypatch):
    """set_device('wgpu', backend=..., adapter=...) chooses for the device (Brian2's
    runtime devices would ignore the options silently); unknown options are an error."""
    monkeypatch.delenv("BRIAN2WGPU_BACKEND", raising=False)
    monkeypatch.delenv("BRIAN2WGPU_ADAPTER", raising=False)
    backend = prefs.devices.wgpu.backend
    prefs.devices.wgpu.backend = "auto"

    def ran_on(**options):
        set_device("wgpu", **options)
        try:
            start_scope()
            G = NeuronGroup(2, "dv/dt = -v/(10*ms) : 1")
            Network(G).run(0.3 * ms)
            return all_devices["wgpu"].last_run_info["backend"]
        finally:
            set_device("runtime")
    try:
        assert ran_on(backend="cpu") == "cpu"
        assert ran_on(backend="gpu", adapter="0") == "gpu"
        with pytest.raises(TypeError, match="backnd"):
            set_device("wgpu", backnd="gpu")
        with pytest.raises(ValueError, match="'cuda'"):
            set_device("wgpu", backend="cuda")
    finally:
        set_device("runtime")
        prefs.devices.wgpu.backend = backend
