"""CUBA and COBAHH (Brette et al. 2007, as in Brian2's examples) at 4,000 and 40,000
neurons with 80 synapses per neuron, on every backend in one invocation.

Each (model, size, backend) runs in its own fresh Python process, so imports, code
generation and compilation count where a user pays them. Backends: wgpu on the GPU adapter
(lavapipe here), wgpu on the CPU interpreter, Brian2's numpy target, Cython with an empty
cache ("fresh") and with the cache the fresh run left ("cached"), and C++ standalone
(code generation + compilation + run). wgpu runs start with an empty state-updater cache
(Brian2's sympy derivation of the integration code, which the device keeps on disk);
"wgpu-cpu-cached" reuses the one the "wgpu-cpu" run left, as the second run of an unchanged
script does. Reported: total time to result (from
`from brian2 import *` to having the spike count), Brian2's simulation time
(``device._last_run_time``), the mean rate, and the ratios to cpp_standalone.

Rerun: ``.venv/bin/python benches/networks.py [--models cuba,cobahh] [--sizes 4000,40000]
[--duration 1.0] [--backends wgpu-gpu,wgpu-cpu,...]``. Writes ``benches/out/networks.json``.
"""

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from models import run_worker  # noqa: E402
BACKENDS = ["wgpu-gpu", "wgpu-cpu", "wgpu-cpu-cached", "numpy", "cython-fresh", "cython-cached",
            "cpp_standalone"]

WORKER = r"""
import json, sys, time
t_start = time.perf_counter()
model, n, duration, backend, outdir, cache = sys.argv[1:7]
n, duration = int(n), float(duration)
from brian2 import *
from models import cuba_network, cobahh_network, use_backend
use_backend(backend, outdir, cache)
seed(2007)
P, pathways = (cuba_network if model == "cuba" else cobahh_network)(n)
M = SpikeMonitor(P)
t_run = time.perf_counter()
Network(P, pathways, M).run(duration * second)
spikes = int(M.num_spikes)
t_end = time.perf_counter()
print(json.dumps({"total_s": t_end - t_start, "build_s": t_run - t_start,
                  "run_call_s": t_end - t_run, "sim_s": float(device._last_run_time),
                  "spikes": spikes, "rate_hz": spikes / n / duration}))
"""


def run_one(model, n, duration, backend, cache):
    with tempfile.TemporaryDirectory() as outdir:
        return run_worker(WORKER, model, n, duration, backend, outdir, cache)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="cuba,cobahh")
    ap.add_argument("--sizes", default="4000,40000")
    ap.add_argument("--duration", type=float, default=1.0, help="simulated seconds")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    args = ap.parse_args()
    backends = args.backends.split(",")
    results = []
    for model in args.models.split(","):
        for n in map(int, args.sizes.split(",")):
            with tempfile.TemporaryDirectory() as cache:
                rows = {}
                for b in backends:
                    if b == "cython-cached" and "cython-fresh" not in rows:
                        run_one(model, n, 0.001, "cython-fresh", cache)  # warm the cache
                    if b == "wgpu-cpu-cached" and "wgpu-cpu" not in rows:
                        run_one(model, n, 0.001, "wgpu-cpu", cache)
                    rows[b] = run_one(model, n, args.duration, b, cache)
                    print(json.dumps({"model": model, "n": n, "backend": b, **rows[b]}),
                          flush=True)
            results.append({"model": model, "n": n, "rows": rows})
    print(f"\n{args.duration} s simulated, {os.cpu_count()} cores; ratios to cpp_standalone")
    print(f"{'model':7s} {'n':>6s} {'backend':15s} {'total':>8s} {'sim':>8s} {'rate':>6s} "
          f"{'tot/cpp':>8s} {'sim/cpp':>8s}")
    for res in results:
        ref = res["rows"].get("cpp_standalone", {})
        for b, r in res["rows"].items():
            if "error" in r:
                print(f"{res['model']:7s} {res['n']:6d} {b:15s} failed: {r['error']}")
                continue
            tot = r["total_s"] / ref["total_s"] if "total_s" in ref else float("nan")
            sim = r["sim_s"] / ref["sim_s"] if "sim_s" in ref else float("nan")
            print(f"{res['model']:7s} {res['n']:6d} {b:15s} {r['total_s']:8.2f} "
                  f"{r['sim_s']:8.2f} {r['rate_hz']:6.2f} {tot:8.2f} {sim:8.2f}")
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "networks.json"), "w") as f:
        json.dump({"duration_s": args.duration, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
