"""Brian2's own generated code (state updaters of real models) through our compiler:
the interpreter and WGSL on the GPU must match Brian2's numpy target."""

import numpy as np
import pytest
from brian2 import (NeuronGroup, Network, ms, mV, nS, second, Hz, prefs, start_scope)

import brian2wgpu
from brian2wgpu import _engine
from brian2wgpu.codeobject import kernel_spec
from models import cobahh_group


def prepared(group):
    prefs.codegen.target = "numpy"
    net = Network(group)
    net.run(0 * ms, namespace={})
    runner = group.state_updater
    return runner, runner.codeobj


def state_arrays(kernel, co):
    return {name: np.array(co.variables[name].get_value(), copy=True)
            for name in kernel.variables if not hasattr(co.variables[name], "value")}


def compare_one_step(group, backends, rtol=1e-12, steps=3):
    runner, co = prepared(group)
    spec = kernel_spec(group.name + "_su", co.template_name, runner.abstract_code,
                       co.variables, co.variable_indices)
    kernel = brian2wgpu.compile(spec)
    written = [v for v in group.variables if not v.startswith("_")
               and v in kernel.variables and v not in ("t", "dt", "N")]
    runs = {b: state_arrays(kernel, co) for b in backends}
    for _ in range(steps):
        co()
        for b, arrays in runs.items():
            getattr(kernel, f"run_{b}")(arrays, len(group))
    for name in written:
        ref = np.asarray(group.variables[name].get_value())
        for b, arrays in runs.items():
            np.testing.assert_allclose(arrays[name], ref, rtol=rtol, atol=0,
                                       err_msg=f"{name} on {b}")
    return kernel


def test_cobahh_exponential_euler_cpu_matches_numpy_to_the_ulp():
    """Bit-exact where numpy uses its scalar-equivalent loops; on CPUs where numpy picks
    AVX-512 loops for exp/log, those differ from libm (ours) by up to an ulp."""
    start_scope()
    G = cobahh_group(500)
    runner, co = prepared(G)
    spec = kernel_spec("cobahh", co.template_name, runner.abstract_code, co.variables,
                       co.variable_indices)
    kernel = brian2wgpu.compile(spec, wgsl=False)
    arrays = state_arrays(kernel, co)
    kernel.run_cpu(arrays, len(G))
    co()
    for name in ["v", "m", "n", "h", "ge", "gi"]:
        np.testing.assert_array_max_ulp(arrays[name], G.variables[name].get_value(), maxulp=2)


def test_cobahh_gpu(gpu):
    start_scope()
    compare_one_step(cobahh_group(500), ["cpu", "gpu"], rtol=1e-11)


@pytest.mark.parametrize("method", ["exact", "euler", "rk2", "rk4", "heun", "exponential_euler"])
def test_lif_with_refractoriness(method, gpu):
    start_scope()
    G = NeuronGroup(200, """dv/dt = (I - v)/(10*ms) : 1 (unless refractory)
                            I : 1""", threshold="v > 1", reset="v = 0",
                    refractory=2 * ms, method=method)
    G.v = np.linspace(0, 1.2, 200)
    G.I = np.linspace(0.5, 2, 200)
    G.lastspike = np.where(np.arange(200) % 3 == 0, 0.0, -1e4) * second  # some refractory
    compare_one_step(G, ["cpu", "gpu"])


def test_izhikevich_euler(gpu):
    start_scope()
    G = NeuronGroup(100, """dv/dt = (0.04*v**2 + 5*v + 140 - u + I)/ms : 1
                            du/dt = a*(b*v - u)/ms : 1
                            a : 1
                            b : 1
                            I : 1""", method="euler")
    G.v = -65 + np.arange(100) * 0.3
    G.u = -13
    G.a, G.b, G.I = 0.02, 0.2, 10
    compare_one_step(G, ["cpu", "gpu"], rtol=1e-12)


def test_float32_model(gpu):
    start_scope()
    prefs.core.default_float_dtype = np.float32
    try:
        G = NeuronGroup(100, "dv/dt = (2 - v)/(10*ms) + sin(v)/ms : 1", method="rk4")
        G.v = np.linspace(-1, 1, 100)
        compare_one_step(G, ["cpu", "gpu"], rtol=2e-5)
        assert G.v[:].dtype == np.float32
    finally:
        prefs.core.default_float_dtype = np.float64


def test_noise_statistics_match():
    """SDE with xi: different random streams, same statistics."""
    start_scope()
    n = 20000
    G = NeuronGroup(n, "dv/dt = -v/(10*ms) + 0.5*xi/sqrt(ms) : 1", method="euler")
    runner, co = prepared(G)
    spec = kernel_spec("ou", co.template_name, runner.abstract_code, co.variables,
                       co.variable_indices)
    kernel = brian2wgpu.compile(spec, wgsl=False)
    arrays = state_arrays(kernel, co)
    for step in range(20):
        kernel.run_cpu(arrays, n, seed=7, step=step)
        co()
    ours, ref = arrays["v"], G.v[:]
    # Same variance of an OU process within sampling error (std error ~ sqrt(2/n)).
    assert abs(ours.var() / ref.var() - 1) < 5 * np.sqrt(2 / n) * 1.5
    assert abs(ours.mean() - ref.mean()) < 5 * ref.std() / np.sqrt(n)


def test_errors_are_clear():
    def spec(code):
        return _engine.KernelSpec("bad", [_engine.Variable("v", "float64")], vector_code=code)
    with pytest.raises(ValueError, match=r"column 9"):
        brian2wgpu.compile(spec("v = v + * 2"))
    with pytest.raises(ValueError, match="unknown function 'foo'"):
        brian2wgpu.compile(spec("v = foo(v)"))
    with pytest.raises(ValueError, match="boolean operands"):
        brian2wgpu.compile(spec("v = v and True"))


def test_cpu_rejects_wrong_arrays():
    spec = _engine.KernelSpec("k", [_engine.Variable("v", "float64")], vector_code="v = v * 2")
    k = brian2wgpu.compile(spec, wgsl=False)
    with pytest.raises(ValueError, match="float64"):
        k.run_cpu({"v": np.zeros(10, dtype=np.float32)}, 10)
    with pytest.raises(ValueError, match="needs 10"):
        k.run_cpu({"v": np.zeros(5)}, 10)


def _without_runtime_dir():
    import os
    return {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}


def test_adapter_listing_cli():
    """Versions, adapters, and 'auto''s choice with its reason; not a word of "error" on a
    machine without XDG_RUNTIME_DIR (the Vulkan stack's complaint on headless machines)."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "brian2wgpu"], capture_output=True, text=True,
                         check=True, env=_without_runtime_dir())
    assert "backend 'auto' picks:" in out.stdout
    import brian2
    assert f"brian2wgpu {brian2wgpu.__version__} (wgpu {brian2wgpu.wgpu_version})" in out.stdout
    assert f"Brian2 {brian2.__version__}" in out.stdout
    assert brian2wgpu.wgpu_version[0].isdigit()
    assert "error" not in (out.stdout + out.stderr).lower(), out.stdout + out.stderr
    adapters = brian2wgpu.list_adapters()
    reason = brian2wgpu.auto_choice(adapters)
    if not any(a["device_type"] != "Cpu" for a in adapters):
        assert reason.startswith("cpu (the interpreter): ")


def test_auto_takes_the_interpreter_where_the_gpu_lacks_float64():
    """'auto' takes a hardware GPU only where it has float64 and int64 (Brian2's default
    models are float64, every model's time steps int64; Apple GPUs have no float64), and
    says why it does not, and what runs there."""
    def adapter(name, kind, f64=True, int64=True):
        return {"name": name, "device_type": kind, "backend": "Metal", "f64": f64,
                "int64": int64}
    apple = adapter("Apple M2", "IntegratedGpu", f64=False)
    lavapipe = adapter("llvmpipe", "Cpu")
    assert brian2wgpu.auto_backend([apple, lavapipe]) == ("cpu", None)
    reason = brian2wgpu.auto_choice([apple, lavapipe])
    assert reason.startswith("cpu (the interpreter): ") and "'Apple M2' has no float64" in reason
    assert "64-bit integers" not in reason and "runs float32 models there" in reason
    no_int64 = adapter("Old GPU", "DiscreteGpu", int64=False)
    assert "has no 64-bit integers" in brian2wgpu.auto_choice([no_int64])
    both = adapter("Full GPU", "DiscreteGpu")
    assert brian2wgpu.auto_backend([apple, both]) == ("gpu", both)
    assert brian2wgpu.auto_choice([apple, both]).startswith("gpu on 'Full GPU'")


def test_a_network_runs_quietly_without_runtime_dir(gpu):
    """No stray driver or loader lines on stderr from import to the end of a run, on both
    backends, where XDG_RUNTIME_DIR is unset (as on CI machines and in containers)."""
    import subprocess
    import sys
    script = """
import sys
from brian2 import NeuronGroup, SpikeMonitor, run, ms, set_device, prefs
import brian2wgpu
set_device('wgpu')
prefs.devices.wgpu.backend = sys.argv[1]
G = NeuronGroup(10, 'dv/dt = (2 - v)/(10*ms) : 1', threshold='v > 1', reset='v = 0',
                method='exact')
M = SpikeMonitor(G)
run(20*ms)
print(M.num_spikes)
"""
    for backend in ("auto", "cpu", "gpu"):
        out = subprocess.run([sys.executable, "-c", script, backend], capture_output=True,
                             text=True, env=_without_runtime_dir())
        assert out.returncode == 0, out.stderr
        assert int(out.stdout.split()[-1]) > 0
        assert "error" not in (out.stdout + out.stderr).lower(), (backend, out.stderr)


def test_shared_subexpressions_follow_reassignments():
    """The interpreter shares `exp(x)` across statements only while `x` is unchanged."""
    spec = _engine.KernelSpec(
        "cse", [_engine.Variable(n, "float64") for n in "xyz"],
        vector_code="y = exp(x) + 1\nx = x + 1\nz = exp(x) + 1\ny = y + exp(x) + 1")
    k = brian2wgpu.compile(spec, wgsl=False)
    x = np.linspace(-1, 1, 7)
    arrays = {"x": x.copy(), "y": np.zeros(7), "z": np.zeros(7)}
    k.run_cpu(arrays, 7)
    # (within rounding: numpy's SIMD exp and libm's may differ in the last bit)
    assert np.allclose(arrays["z"], np.exp(x + 1) + 1, rtol=1e-14, atol=0)
    assert np.allclose(arrays["y"], (np.exp(x) + 1) + np.exp(x + 1) + 1, rtol=1e-14, atol=0)


def test_boolean_select():
    """`_wgpu_where` (Brian2's per-boolean simplification) picks per element."""
    spec = _engine.KernelSpec("sel", [_engine.Variable("b", "bool"),
                                       _engine.Variable("v", "float64")],
                              vector_code="v = _wgpu_where(b, v * 2, v - 1)")
    k = brian2wgpu.compile(spec, wgsl=False)
    arrays = {"b": np.array([True, False, True]), "v": np.array([1.0, 2.0, 3.0])}
    k.run_cpu(arrays, 3)
    assert np.array_equal(arrays["v"], [2.0, 1.0, 6.0])


@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_engine_checks_ids_and_dtypes_before_running(backend, request):
    """Ids and dtypes that cross into the engine are checked when a run starts: a clear
    error, never a panic or a reinterpretation of the wrong bytes."""
    if backend == "gpu":
        request.getfixturevalue("gpu")
    spec = _engine.KernelSpec("double", [_engine.Variable("v", "float64")],
                              vector_code="v = v * 2")
    clocks = [(1e-4, 0, 3, None, None, None)]

    def engine(binding=("array", 0), schedule=None):
        eng = _engine.Engine()
        eng.add_kernel(spec, [binding])
        eng.set_schedule(schedule or [(0, _engine.Op.elementwise(0, 4))])
        return eng
    v = np.ones(4)
    engine().run([v], clocks, lambda ts: False, 0, backend)
    np.testing.assert_array_equal(v, 8.0)
    cases = [
        (engine(), [np.ones(4, dtype=np.float32)], "float64 but its data is float32"),
        (engine(binding=("array", 3)), [v], "is array 3, but the run has 1 arrays"),
        (engine(schedule=[(0, _engine.Op.elementwise(7, 4))]), [v],
         "runs kernel 7, which is missing"),
        (engine(schedule=[(2, _engine.Op.elementwise(0, 4))]), [v],
         "runs on clock 2, but the run has 1 clocks"),
        (engine(schedule=[(0, _engine.Op.synapses(0, 0))]), [v],
         "spike queue 0, which is missing"),
    ]
    for eng, arrays, message in cases:
        with pytest.raises(RuntimeError, match=message):
            eng.run(arrays, clocks, lambda ts: False, 0, backend)
    with pytest.raises(ValueError, match="no record 5"):
        engine().take_record(5)


def test_specs_and_ops_are_typed_and_checked_when_built():
    """Kernel specs and schedule entries cross into Rust as typed, immutable objects: a
    wrong dtype, constant, stepper or array set is refused where it is built."""
    v = _engine.Variable("v", "float64", conditional_write="not_refractory")
    assert (v.name, v.dtype, v.index, v.value, v.conditional_write) == (
        "v", "float64", "_idx", None, "not_refractory")
    assert v.guarded_by(None).conditional_write is None
    assert _engine.Variable("N", "int32", value=7).value == 7
    with pytest.raises(ValueError, match="unsupported dtype 'complex128'"):
        _engine.Variable("z", "complex128")
    with pytest.raises(ValueError, match="constant 'N' is not a int32"):
        _engine.Variable("N", "int32", value="seven")
    spec = _engine.KernelSpec("k", [v], vector_code="v = 2 * v")
    assert [x.name for x in spec.variables] == ["v"] and spec.float == "float64"
    with pytest.raises(AttributeError):
        spec.vector_code = "v = 3 * v"
    with pytest.raises(ValueError, match="float32 or float64"):
        _engine.KernelSpec("k", [v], float="int32")
    with pytest.raises(TypeError):
        _engine.KernelSpec("k", [{"name": "v", "dtype": "float64"}])
    with pytest.raises(ValueError, match="need n >= 0 and 0 <= p <= 1"):
        _engine.Function.binomial("_binomial", 10, 1.5)
    assert _engine.Function.user("f", ["float64"], "float64").kind == "user"
    assert _engine.Op.threshold(0, 10, 1, 2).kind == "threshold"
    with pytest.raises(ValueError, match="no array for 'Cm'"):
        _engine.Op.cable(0, 3, 1e-4, {"v": 0})
    with pytest.raises(ValueError, match="source range 5..3"):
        _engine.Op.spikemonitor(0, 1, 10, 5, 3, 2, 3, [])
    with pytest.raises(ValueError, match="unknown GSL stepper 'rk9'"):
        _engine.Op.integrate(0, 1, 1e-4, "rk9", True, 0, [1.0], [0], ["v"], [1], [2], 3, 4,
                             "group")
    with pytest.raises(TypeError):
        _engine.Engine().set_schedule([{"op": "elementwise", "kernel": 0, "n": 4, "clock": 0}])
