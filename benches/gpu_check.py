"""The project's GPU check: one command, one JSON file, ready for the day a GPU is lent.

    python benches/gpu_check.py [--quick] [--out PATH] [--budget SECONDS]

On whatever adapter wgpu finds (a real GPU, or lavapipe here) it runs, in this order:

1. ``adapter``: the adapter's name, type, driver, features and limits;
2. ``differential``: a slice of the differential test (tests/data/diff_cases.jsonl):
   each case compiled once and run on the GPU and on the interpreter, every output
   element checked against numpy's value within the case's error bound (NaN and inf
   exactly); cases whose GPU result differs are listed;
3. ``floor``: the per-step cost of an (almost) empty network on each backend (one neuron
   group of 1 neuron with a trivial state update, many steps): the engine's per-step
   overhead;
4. ``models``: CUBA, COBAHH (80 synapses per neuron), uncoupled Hodgkin-Huxley and
   Brunel-Hakim (sparse random network, heterogeneous delays) at growing sizes (10^3 to
   10^6 neurons; ``--quick``: 10^3 and 10^4), on the gpu backend and the interpreter in
   the same process: simulation time per step, spikes, set-up time, dispatches per step,
   GPU monitor memory. Each size runs on both backends before the next size starts;
   once the budget is spent the remaining sizes are skipped (and say so).

The JSON goes to ``--out`` (default ``benches/out/gpu_check.json``) and is rewritten after
every measurement, so a run cut short still leaves its figures. ``--quick`` is the CI-size
mode (about a minute on lavapipe); the full mode aims at 8 minutes on any adapter
(``--budget``, default 420 s for the models).

On a lent GPU machine: install the wheel of this package and Brian2 there (see the README),
then ``python benches/gpu_check.py --out $OUT/gpu_check.json``.
"""

import argparse
import json
import os
import platform
import struct
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

DTYPES = {"float64": np.float64, "float32": np.float32, "int32": np.int32, "int64": np.int64,
          "bool": np.bool_}


def _values(dtype, raw):
    if dtype == "float64":
        return np.array([struct.unpack("<d", bytes.fromhex(v)[::-1])[0] for v in raw])
    if dtype == "float32":
        return np.array([struct.unpack("<f", bytes.fromhex(v)[::-1])[0] for v in raw],
                        dtype=np.float32)
    return np.array(raw, dtype=DTYPES[dtype])


def _agrees(got, want, tol):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    both_nan = np.isnan(got) & np.isnan(want)
    same = got == want
    close = np.abs(got - want) <= tol
    return bool(np.all(both_nan | same | close))


def differential(cases_path, limit):
    """Run `limit` cases spread over the file on both backends; count agreements."""
    import brian2wgpu
    from brian2wgpu import _engine
    with open(cases_path) as f:
        lines = f.readlines()
    step = max(1, len(lines) // max(1, limit))
    result = {"cases": 0, "gpu_agree": 0, "cpu_agree": 0, "gpu_mismatches": [], "errors": []}
    t0 = time.perf_counter()
    for line in lines[::step][:limit]:
        case = json.loads(line)
        n = case["n"]
        try:
            spec = _engine.KernelSpec(
                f"diff_{case['id']}",
                [_engine.Variable(v["name"], v["dtype"], index="0" if v["scalar"] else "_idx")
                 for v in case["inputs"]],
                vector_code=case["code"], template="stateupdate",
                float="float32" if case["float"] == "f32" else "float64")
            k = brian2wgpu.compile(spec)
        except Exception as e:  # a case the compiler refuses is reported, not fatal
            result["errors"].append(f"{case['id']}: {e}"[:300])
            continue
        result["cases"] += 1
        for backend in ("gpu", "cpu"):
            arrays = {v["name"]: _values(v["dtype"], v["values"]) for v in case["inputs"]}
            try:
                (k.run_gpu if backend == "gpu" else k.run_cpu)(arrays, n)
            except Exception as e:
                result["errors"].append(f"{case['id']} {backend}: {e}"[:300])
                continue
            ok = all(_agrees(arrays[o["name"]], _values(o["dtype"], o["values"]),
                             _values("float64", o["tol"]))
                     for o in case["outputs"])
            result[f"{backend}_agree"] += ok
            if backend == "gpu" and not ok:
                result["gpu_mismatches"].append({"id": case["id"], "code": case["code"]})
    result["seconds"] = time.perf_counter() - t0
    return result


# ----------------------------------------------------------------------------- models

def _model(name, n):
    """Build model `name` with n neurons in a fresh scope; returns (objects, group)."""
    from brian2 import (NeuronGroup, Synapses, ms, mV, start_scope)
    from models import cuba_network, cobahh_network, cobahh_group
    start_scope()
    if name == "cuba":
        P, pathways = cuba_network(n)
        return [P, *pathways], P
    if name == "cobahh":
        P, pathways = cobahh_network(n)
        return [P, *pathways], P
    if name == "hh_uncoupled":
        P = cobahh_group(n)
        return [P], P
    if name == "brunel_hakim":
        # Brunel & Hakim (1999) as in Brian2's examples, sparse (K = 100 here so that the
        # larger sizes fit), delays drawn per synapse (heterogeneous).
        K = min(100, n - 1)
        eqs = "dv/dt = (-v + muext + sigmaext * sqrt(tau) * xi)/tau : volt"
        ns = dict(tau=20 * ms, muext=25 * mV, sigmaext=1 * mV, Vr=10 * mV, theta=20 * mV,
                  J=-0.1 * mV)
        G = NeuronGroup(n, eqs, threshold="v > theta", reset="v = Vr", refractory=2 * ms,
                        method="euler", namespace=ns)
        G.v = "Vr + rand()*(theta - Vr)"
        S = Synapses(G, G, on_pre="v += J", namespace=ns)
        S.connect(p=K / n)
        S.delay = "1*ms + rand()*1*ms"
        return [G, S], G
    raise ValueError(name)


def run_model(name, size, backend, duration_ms):
    from brian2 import (Network, SpikeMonitor, set_device, prefs, seed, ms, get_device)
    import brian2wgpu  # noqa: F401
    set_device("wgpu")
    prefs.devices.wgpu.backend = backend
    seed(2026)
    t0 = time.perf_counter()
    objs, group = _model(name, size)
    mon = SpikeMonitor(group)
    net = Network(*objs, mon)
    t_build = time.perf_counter() - t0
    net.run(1 * ms)  # compile and warm up (not timed as simulation)
    dev = get_device()
    t1 = time.perf_counter()
    net.run(duration_ms * ms)
    wall = time.perf_counter() - t1
    sim = float(dev._last_run_time)
    steps = int(round(duration_ms / 0.1))
    info = dev.last_run_info
    out = {"model": name, "n": size, "backend": backend, "duration_ms": duration_ms,
           "build_s": t_build, "run_s": wall, "sim_s": sim, "ms_per_step": sim / steps * 1e3,
           "spikes": int(mon.num_spikes)}
    if backend == "gpu":
        out["dispatches_per_step"] = info.get("gpu_dispatches_per_step")
        out["gpu_monitor_bytes"] = info.get("gpu_monitor_bytes")
    set_device("runtime")
    return out


def floor(backend, steps):
    from brian2 import (NeuronGroup, Network, set_device, prefs, ms, get_device, start_scope,
                        defaultclock)
    import brian2wgpu  # noqa: F401
    set_device("wgpu")
    prefs.devices.wgpu.backend = backend
    start_scope()
    G = NeuronGroup(1, "dv/dt = -v/(10*ms) : 1")
    net = Network(G)
    net.run(1 * ms)
    net.run(steps * defaultclock.dt)
    sim = float(get_device()._last_run_time)
    set_device("runtime")
    return {"backend": backend, "steps": steps, "us_per_step": sim / steps * 1e6}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI-size mode")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "gpu_check.json"))
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for the model section (default 420; --quick 60)")
    args = ap.parse_args()
    import brian2
    import brian2wgpu

    budget = args.budget or (60.0 if args.quick else 420.0)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    adapters = brian2wgpu.list_adapters()
    report = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(),
              "brian2": brian2.__version__, "brian2wgpu": brian2wgpu.__version__,
              "quick": args.quick, "adapter": adapters[0] if adapters else None,
              "differential": None, "floor": [], "models": [], "skipped": []}

    def save():
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1, default=str)

    if not adapters:
        report["error"] = "no wgpu adapter"
        save()
        print("gpu_check: no wgpu adapter found", file=sys.stderr)
        return 1
    print(f"gpu_check on {adapters[0]['summary'].splitlines()[0]}", flush=True)

    cases = os.path.join(ROOT, "tests", "data", "diff_cases.jsonl")
    report["differential"] = differential(cases, 40 if args.quick else 400)
    d = report["differential"]
    print(f"differential: {d['cases']} cases, gpu agrees on {d['gpu_agree']}, "
          f"interpreter on {d['cpu_agree']} ({d['seconds']:.1f} s)", flush=True)
    save()

    for backend in ("gpu", "cpu"):
        report["floor"].append(floor(backend, 200 if args.quick else 2000))
        print(f"floor {backend}: {report['floor'][-1]['us_per_step']:.1f} us/step", flush=True)
        save()

    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    models = ["cuba", "cobahh", "hh_uncoupled", "brunel_hakim"]
    t_start = time.perf_counter()
    for n in sizes:
        for name in models:
            if time.perf_counter() - t_start > budget:
                report["skipped"].append(f"{name} n={n}: budget spent")
                continue
            # Fewer steps for the larger sizes: the per-step figure is what counts.
            duration = 20.0 if n <= 10_000 else (10.0 if n <= 100_000 else 5.0)
            for backend in ("gpu", "cpu"):
                try:
                    r = run_model(name, n, backend, duration)
                except Exception as e:  # recorded; the check goes on
                    r = {"model": name, "n": n, "backend": backend,
                         "error": f"{type(e).__name__}: {e}"[:500]}
                report["models"].append(r)
                save()
                if "error" in r:
                    print(f"{name:13s} n={n:>8d} {backend}: {r['error'][:120]}", flush=True)
                else:
                    print(f"{name:13s} n={n:>8d} {backend}: {r['ms_per_step']:8.3f} ms/step, "
                          f"{r['spikes']} spikes", flush=True)
    save()
    print(f"wrote {args.out}")
    # Mismatches are figures (lavapipe folds some compile-time zeros: see
    # tests/data/gpu_diff_known.json); a model that failed to run is a failure.
    return 1 if any("error" in m for m in report["models"]) or d["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
