"""The Brian2CUDA paper's benchmark suite (benches/suite_models.py) on every backend in one
invocation: wgpu on the GPU adapter (lavapipe here), wgpu on the CPU interpreter, Brian2's
numpy and Cython targets, and C++ standalone.

Each (model, size, backend) runs in its own fresh Python process, as networks.py does, so
imports, code generation and compilation count where a user pays them. Reported per run:
total time to result (from `from brian2 import *` to having the spike count), the time
spent before `run()` (building and connecting), Brian2's simulation time
(``device._last_run_time``), synapses, spikes and the mean rate of the counted group; then
per model and size the ratios of total and simulation time to cpp_standalone. Cython runs
once to warm its cache first (so "cython" is the cached case, the faster one).

Rerun: ``.venv/bin/python benches/brian2cuda_suite.py [--models a,b] [--sizes N,M]
[--duration 0.1] [--backends wgpu-gpu,wgpu-cpu,numpy,cython,cpp_standalone] [--plot]``.
Writes ``benches/out/brian2cuda_suite.json`` (and ``.png`` with ``--plot``). The paper
simulates 10 s; the default here is 0.1 s at the sizes in ``suite_models.DEFAULT_SIZES``.
"""

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from models import run_worker  # noqa: E402
BACKENDS = ["wgpu-gpu", "wgpu-cpu", "numpy", "cython", "cpp_standalone"]

WORKER = r"""
import builtins, json, sys, time
t_start = time.perf_counter()
model, n, duration, backend, outdir, cache = sys.argv[1:7]
n, duration = int(n), float(duration)
from brian2 import *
from models import use_backend
from suite_models import MODELS, mushroom_body
use_backend(backend, outdir, cache)
seed(2022)
objs, counted = mushroom_body(n, duration) if model == "mushroom_body" else MODELS[model](n)
M = SpikeMonitor(counted)
net = Network(objs, M)
t_run = time.perf_counter()
net.run(duration * second)
spikes = int(M.num_spikes)
t_end = time.perf_counter()
syn = builtins.sum(len(o) for o in objs if isinstance(o, Synapses))
print(json.dumps({"total_s": t_end - t_start, "build_s": t_run - t_start,
                  "sim_s": float(device._last_run_time), "synapses": syn, "spikes": spikes,
                  "rate_hz": spikes / len(counted) / duration}))
"""


def run_one(model, n, duration, backend, cache):
    with tempfile.TemporaryDirectory() as outdir:
        return run_worker(WORKER, model, n, duration, backend, outdir, cache)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(r["model"] for r in results))
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        rows = [r for r in results if r["model"] == model]
        for b in rows[0]["rows"]:
            pts = [(r["n"], r["rows"][b]["sim_s"]) for r in rows if "sim_s" in r["rows"][b]]
            if pts:
                ax.loglog(*zip(*pts), "o-", label=b)
        ax.set_title(model, fontsize=8)
        ax.set_xlabel("N")
    axes[0][0].set_ylabel("simulation time [s]")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    from suite_models import DEFAULT_SIZES
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(DEFAULT_SIZES))
    ap.add_argument("--sizes", default=None, help="sizes for every model (default: per model)")
    ap.add_argument("--duration", type=float, default=0.1, help="simulated seconds")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--plot", action="store_true")
    args = ap.parse_args()
    backends = args.backends.split(",")
    results = []
    for model in args.models.split(","):
        sizes = (list(map(int, args.sizes.split(","))) if args.sizes
                 else DEFAULT_SIZES[model])
        for n in sizes:
            with tempfile.TemporaryDirectory() as cache:
                rows = {}
                for b in backends:
                    if b == "cython":
                        run_one(model, n, 0.001, b, cache)  # warm the cache
                    rows[b] = run_one(model, n, args.duration, b, cache)
                    print(json.dumps({"model": model, "n": n, "backend": b, **rows[b]}),
                          flush=True)
            results.append({"model": model, "n": n, "rows": rows})
    print(f"\n{args.duration} s simulated, {os.cpu_count()} cores; ratios to cpp_standalone")
    print(f"{'model':21s} {'n':>7s} {'backend':15s} {'total':>7s} {'sim':>7s} {'rate':>7s} "
          f"{'tot/cpp':>7s} {'sim/cpp':>7s}")
    for res in results:
        ref = res["rows"].get("cpp_standalone", {})
        for b, r in res["rows"].items():
            if "error" in r:
                print(f"{res['model']:21s} {res['n']:7d} {b:15s} failed: {r['error']}")
                continue
            tot = r["total_s"] / ref["total_s"] if "total_s" in ref else float("nan")
            sim = r["sim_s"] / ref["sim_s"] if "sim_s" in ref else float("nan")
            print(f"{res['model']:21s} {res['n']:7d} {b:15s} {r['total_s']:7.2f} "
                  f"{r['sim_s']:7.2f} {r['rate_hz']:7.2f} {tot:7.2f} {sim:7.2f}")
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    out = os.path.join(HERE, "out", "brian2cuda_suite.json")
    with open(out, "w") as f:
        json.dump({"duration_s": args.duration, "results": results}, f, indent=2)
    if args.plot:
        plot(results, out.replace(".json", ".png"))


if __name__ == "__main__":
    main()
