"""Adapters without SHADER_F64 (Apple GPUs, many mobile ones): lavapipe stands in for one
with the feature masked (BRIAN2WGPU_FEATURES_OFF=f64, read when the process creates its
device, hence a subprocess). Monitors store Brian2's float64 time and rates from the host
there; a float32 model whose kernels need no float64 runs and gives numpy's records."""

import os
import subprocess
import sys

import numpy as np

# A float32 model on numpy (argv[1] == 'numpy') or the gpu backend.
HEADER = r'''
import sys
import numpy as np
from brian2 import *
target = sys.argv[1]
prefs.core.default_float_dtype = float32
if target == "numpy":
    prefs.codegen.target = "numpy"
else:
    import brian2wgpu
    set_device("wgpu")
    prefs.devices.wgpu.backend = "gpu"
'''

MODEL = HEADER + r'''G = NeuronGroup(300, """x : integer
                        k : integer (constant)""", threshold="x % k == 0", reset="x += 2")
G.k = "i % 7 + 2"
G.run_regularly("x += 1", dt=0.1*ms)
S = SpikeMonitor(G)
M = StateMonitor(G, "x", record=[0, 5, 299])
R = PopulationRateMonitor(G)
run(3*ms)
run(2*ms)
np.savez(sys.argv[2], st=np.asarray(S.t[:]), si=np.asarray(S.i[:]), mt=np.asarray(M.t[:]),
         mx=np.asarray(M.x[:]), rt=np.asarray(R.t[:]), rr=np.asarray(R.rate[:]))
'''


# lavapipe standing in for an adapter without SHADER_F64.
NO_F64 = {"BRIAN2WGPU_FEATURES_OFF": "f64"}


def run_script(code, target, out, env=None):
    """`code` (a model script) in a fresh process: argv[1] = target, argv[2] = output."""
    return subprocess.run([sys.executable, "-c", code, target, str(out)],
                          env=dict(os.environ, **(env or {})), capture_output=True, text=True)


def run_model(target, out, env=None, code=MODEL):
    proc = run_script(code, target, out, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out)


def test_monitors_without_f64(gpu, tmp_path):
    ref = run_model("numpy", tmp_path / "numpy.npz")
    got = run_model("gpu", tmp_path / "gpu.npz", NO_F64)
    assert len(ref["st"]) > 1000 and len(ref["mt"]) == 50
    for key in ref.files:
        assert got[key].dtype == ref[key].dtype, key
        assert np.array_equal(got[key], ref[key]), key


def test_float64_function_without_f64_says_so(gpu, tmp_path):
    """What the float64 emulation does not compute (here arctan() of a float64 value, per
    neuron) is refused before the first step, naming the function and the kernel."""
    code = MODEL.replace('"x % k == 0"', '"x % k == 0 and arctan(x*t/ms) > 0"')
    proc = run_script(code, "gpu", tmp_path / "x.npz", NO_F64)
    assert proc.returncode != 0
    assert "NotImplementedError" in proc.stderr, proc.stderr[-2000:]
    assert "computes arctan() in float64" in proc.stderr and "thresholder" in proc.stderr
    assert "SHADER_F64" in proc.stderr
    assert "the run stopped at t = 0" in proc.stderr


def test_float64_model_without_f64_says_so(gpu, tmp_path):
    """A float64 model would run wholly on the emulation: refused, with what to do."""
    code = MODEL.replace("prefs.core.default_float_dtype = float32", "")
    code = code.replace('"x % k == 0"', '"x % k == 0 and t > 1*ms"')
    proc = run_script(code, "gpu", tmp_path / "x.npz", NO_F64)
    assert proc.returncode != 0
    assert "needs float64 (SHADER_F64)" in proc.stderr
    assert "default_float_dtype = float32" in proc.stderr


# A float32 model that meets float64 wherever numpy promotes: t in the equations,
# threshold, reset, refractoriness and a synaptic statement, dt, lastspike (float64)
# stored and recorded, int() and ceil() of float64 values, clip and abs, float64 constants,
# a summed variable (numpy's bincount sums float32 values in float64).
# Connectivity is deterministic (the engine's random connect() has its own stream).
F32_MODEL = HEADER + r"""tau = 10*ms
G = NeuronGroup(400, '''dv/dt = (I - v + clip(abs(w), 0, 0.5))/tau : 1 (unless refractory)
                        I = 1.2 + 0.3*(floor(t/(7*ms)) % 2) : 1
                        w : 1
                        since : second
                        k : integer''',
                threshold="v > 1 and t - lastspike > 3*ms",
                reset="v = -0.1*(int(t/ms) % 3); since = t - lastspike",
                refractory="(t - lastspike) < 2*ms + i*0.01*ms", method="euler")
G.v = "i / 400.0"
G.w = "(i % 13) / 6.0 - 1"
G.run_regularly("k = int((t - lastspike)/dt); w = w * (1 - ceil(t/ms)/1000)", dt=0.5*ms)
S = Synapses(G, G, "c : 1", on_pre="v_post += c * (t - lastspike_pre)/ms * 0.01")
S.connect(j="(i * 7 + k2) % N_post for k2 in range(3)")
S.c = "0.25 + (i % 5) * 0.1"
H = NeuronGroup(50, "tot : 1")
S2 = Synapses(G, H, "tot_post = v_pre * 0.37 : 1 (summed)")
S2.connect(j="i % 50")
sm = SpikeMonitor(G)
st = StateMonitor(G, ["v", "lastspike", "since"], record=[0, 7, 399])
run(30*ms)
run(12*ms)
np.savez(sys.argv[2], si=np.asarray(sm.i[:]), st=np.asarray(sm.t[:]), v=np.asarray(G.v[:]),
         ls=np.asarray(G.lastspike[:]), k=np.asarray(G.k[:]), w=np.asarray(G.w[:]),
         mv=np.asarray(st.v[:]), mls=np.asarray(st.lastspike[:]), ms=np.asarray(st.since[:]),
         tot=np.asarray(H.tot[:]))
"""


def test_float32_model_computes_float64_without_f64(gpu, tmp_path):
    """Where numpy computes a float32 model's values in float64, the emulation computes
    the same bits: spikes, state and records equal numpy's, and those of the same adapter
    with its float64."""
    ref = run_model("numpy", tmp_path / "numpy.npz", code=F32_MODEL)
    soft = run_model("gpu", tmp_path / "soft.npz", NO_F64, code=F32_MODEL)
    native = run_model("gpu", tmp_path / "native.npz", code=F32_MODEL)
    assert len(ref["si"]) > 500 and len(set(ref["k"])) > 10
    for key in ref.files:
        assert soft[key].dtype == ref[key].dtype, key
        assert np.array_equal(soft[key], ref[key]), key
        assert np.array_equal(soft[key], native[key]), key


# exp() per synapse (event-driven STDP traces) and log() per neuron, of float64 values.
EXP_LOG_MODEL = HEADER + r"""
taupre = taupost = 20*ms
Inp = SpikeGeneratorGroup(100, np.arange(100), (np.arange(100) * 0.37 % 20) * ms)
G = NeuronGroup(10, "dv/dt = -v/(10*ms) : 1", threshold="v > 0.5", reset="v = 0",
                method="exact")
S = Synapses(Inp, G, '''w : 1
                        dapre/dt = -apre/taupre : 1 (event-driven)
                        dapost/dt = -apost/taupost : 1 (event-driven)''',
             on_pre="v_post += w; apre += 0.01; w = clip(w + apost, 0, 0.3)",
             on_post="apost -= 0.0105; w = clip(w + apre, 0, 0.3)")
S.connect(j="i % 10")
S.w = "0.05 + (i % 7) * 0.03"
G2 = NeuronGroup(50, "dx/dt = -x/(5*ms) + log(1 + (i + 1)*t/ms)/ms : 1", method="euler")
M = StateMonitor(G2, "x", record=[0, 49])
run(40*ms)
np.savez(sys.argv[2], w=np.asarray(S.w[:]), apre=np.asarray(S.apre[:]),
         apost=np.asarray(S.apost[:]), v=np.asarray(G.v[:]), x=np.asarray(M.x[:]))
"""


def test_float64_exp_and_log_without_f64(gpu, tmp_path):
    """exp and log of float64 values are emulated too (within 1 ulp of float64 before
    the float32 rounding): numpy's values to float32 precision, and those of the same
    adapter with its float64."""
    ref = run_model("numpy", tmp_path / "numpy.npz", code=EXP_LOG_MODEL)
    soft = run_model("gpu", tmp_path / "soft.npz", NO_F64, code=EXP_LOG_MODEL)
    native = run_model("gpu", tmp_path / "native.npz", code=EXP_LOG_MODEL)
    assert np.ptp(ref["w"]) > 0.05 and np.ptp(ref["x"]) > 1
    for key in ref.files:
        assert soft[key].dtype == ref[key].dtype, key
        np.testing.assert_allclose(soft[key], ref[key], rtol=1e-6, atol=1e-9, err_msg=key)
        np.testing.assert_allclose(soft[key], native[key], rtol=1e-6, atol=1e-9, err_msg=key)


# exprel, sqrt and ** (integral and general exponents) of float64 values per neuron: the
# functions of Hodgkin-Huxley models; sin and cos of time (input currents), also of
# arguments beyond 2^20 (Payne-Hanek's reduction); tanh, log1p and tan.
FUNCTIONS_MODEL = HEADER + r"""
G = NeuronGroup(200, '''a : 1
                        b : 1
                        c : 1
                        d : 1
                        f : 1
                        g : 1
                        h : 1
                        k : 1''')
G.run_regularly('''a = exprel((i - 100)*0.05 + t/ms - 0.5)
                   b = sqrt(i*0.37 + t/ms)
                   c = (1 + i*0.01 + t/ms)**2.5
                   d = (0.5 + t/ms + i*0.001)**3 + (1 + t/ms)**-2
                   f = (i*0.01 + t/ms)**0.5
                   g = sin(2*pi*50*Hz*t + i*0.1) + cos(i + 3*t/ms)
                   h = sin((i + 1)*1e5*t/ms) + cos(1e12*i*t/ms)
                   k = tanh((i - 100)*0.03 + t/ms) + log1p(i*t/ms) + tan(i + t/ms)''',
                dt=defaultclock.dt)
M = StateMonitor(G, ["a", "b", "c", "d", "f", "g", "h", "k"], record=[0, 1, 99, 100, 101, 199])
run(2*ms)
np.savez(sys.argv[2], **{k: np.asarray(getattr(M, k)[:]) for k in "abcdfghk"})
"""


def test_float64_functions_without_f64(gpu, tmp_path):
    """exprel, sqrt, **, sin, cos, tan, tanh and log1p of float64 values run on the
    emulation: the bits the adapter's own float64 gives (its library and the emulation are
    each within an ulp or two of float64, which float32 rounding hides), and numpy's values
    to float32 rounding."""
    ref = run_model("numpy", tmp_path / "numpy.npz", code=FUNCTIONS_MODEL)
    soft = run_model("gpu", tmp_path / "soft.npz", NO_F64, code=FUNCTIONS_MODEL)
    native = run_model("gpu", tmp_path / "native.npz", code=FUNCTIONS_MODEL)
    assert np.ptp(ref["a"]) > 10 and np.ptp(ref["c"]) > 10 and np.ptp(ref["d"]) > 1
    assert np.ptp(ref["g"]) > 1 and np.ptp(ref["h"]) > 1
    for key in ref.files:
        assert soft[key].dtype == ref[key].dtype == np.float32, key
        assert np.array_equal(soft[key], native[key]), key
        # atol: i*0.1 is float32 in a float32 model here (as in Brian2's C++ targets),
        # float64 in numpy's (src/ir/types.rs, promote).
        np.testing.assert_allclose(soft[key], ref[key], rtol=5e-7, atol=1e-6, err_msg=key)


def test_float32_hodgkin_huxley_without_f64(gpu, tmp_path):
    """Brian2's COBAHH neurons in float32 (exprel, exp and ** of float64 values per step)
    run on the emulation: the same spikes as the adapter with float64 and as numpy, and
    voltages within float32 rounding of theirs."""
    benches = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benches")
    code = HEADER + f"sys.path.insert(0, {benches!r})\n" + r"""
from models import cobahh_group
G = cobahh_group(100)
S = SpikeMonitor(G)
M = StateMonitor(G, "v", record=[0, 20, 39, 99])
run(15*ms)
np.savez(sys.argv[2], si=np.asarray(S.i[:]), st=np.asarray(S.t[:]), mv=np.asarray(M.v[:]))
"""
    ref = run_model("numpy", tmp_path / "numpy.npz", code=code)
    soft = run_model("gpu", tmp_path / "soft.npz", NO_F64, code=code)
    native = run_model("gpu", tmp_path / "native.npz", code=code)
    assert len(ref["si"]) >= 10
    for other in (native, ref):
        assert np.array_equal(soft["si"], other["si"]) and np.array_equal(soft["st"], other["st"])
        np.testing.assert_allclose(soft["mv"], other["mv"], rtol=0, atol=1e-6)
