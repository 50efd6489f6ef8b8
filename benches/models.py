"""Brian2 models shared by the benchmarks, examples and tests (plain Brian2 code)."""

import numpy as np
from brian2 import (NeuronGroup, Network, Equations, umetre, ufarad, cm, siemens, msiemens,
                    mV, ms, nS, defaultclock)

COBAHH_NAMESPACE = dict(
    area=20000 * umetre**2,
    El=-60 * mV, EK=-90 * mV, ENa=50 * mV, VT=-63 * mV,
    taue=5 * ms, taui=10 * ms, Ee=0 * mV, Ei=-80 * mV, we=6 * nS, wi=67 * nS,
)
COBAHH_NAMESPACE.update(
    Cm=(1 * ufarad * cm**-2) * COBAHH_NAMESPACE["area"],
    gl=(5e-5 * siemens * cm**-2) * COBAHH_NAMESPACE["area"],
    g_na=(100 * msiemens * cm**-2) * COBAHH_NAMESPACE["area"],
    g_kd=(30 * msiemens * cm**-2) * COBAHH_NAMESPACE["area"],
)

# The COBAHH benchmark (Brette et al. 2007), as in Brian2's examples/COBAHH.py.
COBAHH_EQS = Equations("""
dv/dt = (gl*(El-v)+ge*(Ee-v)+gi*(Ei-v)-
         g_na*(m*m*m)*h*(v-ENa)-
         g_kd*(n*n*n*n)*(v-EK))/Cm : volt
dm/dt = alpha_m*(1-m)-beta_m*m : 1
dn/dt = alpha_n*(1-n)-beta_n*n : 1
dh/dt = alpha_h*(1-h)-beta_h*h : 1
dge/dt = -ge*(1./taue) : siemens
dgi/dt = -gi*(1./taui) : siemens
alpha_m = 0.32*(mV**-1)*4*mV/exprel((13*mV-v+VT)/(4*mV))/ms : Hz
beta_m = 0.28*(mV**-1)*5*mV/exprel((v-VT-40*mV)/(5*mV))/ms : Hz
alpha_h = 0.128*exp((17*mV-v+VT)/(18*mV))/ms : Hz
beta_h = 4./(1+exp((40*mV-v+VT)/(5*mV)))/ms : Hz
alpha_n = 0.032*(mV**-1)*5*mV/exprel((15*mV-v+VT)/(5*mV))/ms : Hz
beta_n = .5*exp((10*mV-v+VT)/(40*mV))/ms : Hz
""")


def cobahh_group(n):
    """COBAHH neurons with randomised initial state (no synapses)."""
    G = NeuronGroup(n, model=COBAHH_EQS, threshold="v>-20*mV", refractory=3 * ms,
                    method="exponential_euler", namespace=dict(COBAHH_NAMESPACE))
    rng = np.random.default_rng(42)
    G.v = (-65 + 10 * rng.standard_normal(n)) * mV
    G.m = rng.uniform(0, 0.2, n)
    G.n = rng.uniform(0, 0.5, n)
    G.h = rng.uniform(0.4, 0.9, n)
    G.ge = rng.uniform(0, 10, n) * nS
    G.gi = rng.uniform(0, 50, n) * nS
    return G


def stateupdate_codeobject(group):
    """Prepare `group` with Brian2's numpy target and return its state-update code object
    and abstract code (what a device's ``code_object`` receives)."""
    from brian2 import prefs
    prefs.codegen.target = "numpy"
    net = Network(group)
    net.run(0 * ms, namespace={})
    runner = group.state_updater
    return runner, runner.codeobj


def cuba_network(n):
    """Brian2's examples/CUBA.py with n neurons (80% excitatory), 80 synapses per neuron."""
    from brian2 import Synapses
    ns = dict(taum=20 * ms, taue=5 * ms, taui=10 * ms, Vt=-50 * mV, Vr=-60 * mV, El=-49 * mV,
              we=(60 * 0.27 / 10) * mV, wi=(-20 * 4.5 / 10) * mV)
    P = NeuronGroup(n, """dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
                          dge/dt = -ge/taue : volt
                          dgi/dt = -gi/taui : volt""",
                    threshold="v>Vt", reset="v = Vr", refractory=5 * ms, method="exact",
                    namespace=ns)
    P.v = "Vr + rand() * (Vt - Vr)"
    P.ge = P.gi = 0 * mV
    return P, _random_pathways(P, n, "ge += we", "gi += wi", ns)


def cobahh_population(n):
    """The neurons of Brian2's examples/COBAHH.py (its initial values drawn by Brian2's
    generator), without synapses."""
    P = NeuronGroup(n, model=COBAHH_EQS, threshold="v>-20*mV", refractory=3 * ms,
                    method="exponential_euler", namespace=dict(COBAHH_NAMESPACE))
    P.v = "El + (randn() * 5 - 5)*mV"
    P.ge = "(randn() * 1.5 + 4) * 10.*nS"
    P.gi = "(randn() * 12 + 20) * 10.*nS"
    return P


def cobahh_network(n):
    """Brian2's examples/COBAHH.py with n neurons (80% excitatory), 80 synapses per neuron."""
    P = cobahh_population(n)
    return P, _random_pathways(P, n, "ge+=we", "gi+=wi", dict(COBAHH_NAMESPACE))


def run_worker(worker, *args):
    """Run a benchmark's `worker` script (argv: `args`) in a fresh Python process with these
    modules importable; its last output line is JSON. A failure comes back as
    {"error": its last line of stderr}."""
    import json
    import os
    import subprocess
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", worker, *map(str, args)], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=here))
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare_targets(worker, targets, size, duration_ms, repeat, reference, warm_size):
    """Run `worker` (argv: target, size, duration_ms, outdir, voltage file) `repeat` times
    per target, each in a fresh process (`run_worker`); cython first runs once at
    `warm_size` so that its compile cache is warm. Returns per target the last run's JSON
    with medians of ``total_s`` and ``sim_s`` (their runs in ``*_runs``) and, where the
    `reference` target ran, ``max_dv_from_<reference>_mV``: the largest difference of the
    voltages the worker saved from the reference's."""
    import os
    import statistics
    import tempfile
    results, volts = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            if target == "cython":
                with tempfile.TemporaryDirectory() as outdir:
                    run_worker(worker, target, warm_size, 1.0, outdir,
                               os.path.join(tmp, "warm.npy"))
            runs = []
            for _ in range(repeat):
                vfile = os.path.join(tmp, f"{target}.npy")
                with tempfile.TemporaryDirectory() as outdir:
                    r = run_worker(worker, target, size, duration_ms, outdir, vfile)
                runs.append(r)
                if "error" in r:
                    break
                volts[target] = np.load(vfile)
            r = dict(runs[-1])
            if "error" not in r:
                for key in ("total_s", "sim_s"):
                    values = [x[key] for x in runs if x.get(key) is not None]
                    r[key + "_runs"] = values
                    r[key] = statistics.median(values) if values else None
            results[target] = r
            print(target, __import__("json").dumps(r), flush=True)
    if reference in volts:
        for target, v in volts.items():
            results[target][f"max_dv_from_{reference}_mV"] = float(
                np.abs(v - volts[reference]).max() * 1e3)
    return results


def _random_pathways(P, n, on_exc, on_inh, ns):
    from brian2 import Synapses
    ne, p = int(0.8 * n), 80.0 / n
    Ce = Synapses(P, P, on_pre=on_exc, namespace=ns)
    Ci = Synapses(P, P, on_pre=on_inh, namespace=ns)
    Ce.connect(f"i<{ne}", p=p)
    Ci.connect(f"i>={ne}", p=p)
    return [Ce, Ci]


def use_backend(backend, outdir, cache_dir=None):
    """In a fresh benchmark worker: select 'wgpu-gpu' / 'wgpu-cpu', 'cpp_standalone', or a
    runtime target ('numpy', 'cython', 'cython-fresh' / 'cython-cached' with `cache_dir`).
    wgpu backends keep their state-updater cache in `cache_dir` ('wgpu-cpu' and
    'wgpu-cpu-cached' share one, 'wgpu-gpu' has its own)."""
    import os
    from brian2 import set_device, prefs
    if backend.startswith("wgpu"):
        import brian2wgpu  # noqa: F401  (registers the device)
        set_device("wgpu")
        kind = backend.split("-")[1]
        prefs.devices.wgpu.backend = kind
        if cache_dir:
            os.environ.pop("BRIAN2WGPU_INTEGRATOR_CACHE", None)
            prefs.devices.wgpu.integrator_cache = os.path.join(cache_dir, "wgpu-" + kind)
    elif backend == "cpp_standalone":
        set_device("cpp_standalone", directory=outdir, build_on_run=True)
    else:
        prefs.codegen.target = backend.split("-")[0]
        if cache_dir:
            prefs.codegen.runtime.cython.cache_dir = cache_dir
