"""Synapse creation (``Synapses.connect``) side by side: the wgpu device's engine, Brian2's
numpy code (what the device used before, and runtime mode's numpy target) and
cpp_standalone, one fresh process per (form, target), repeated ``--repeat`` times.

    python benches/connect.py [--n 40000] [--repeat 3] [--targets engine,numpy,cpp_standalone]
                              [--json benches/out/connect.json]

Targets: ``engine`` (the wgpu device), ``numpy`` (Brian2's runtime device with its numpy
target, brian2wgpu not imported), ``cpp_standalone``.
Timed: the ``connect()`` call (Brian2's code generation included) on the engine and numpy;
for cpp_standalone the compiled binary's whole run (connect plus loading and saving its
arrays; compilation excluded, reported apart). Medians and the ratio numpy / engine.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import run_worker  # noqa: E402

# name -> (connect keywords, as a Python literal), at n neurons
FORMS = {
    "p": "dict(condition='i<int(0.8*N_pre)', p=80.0/N)",
    "sample_p": "dict(j='k for k in sample(N_post, p=%r)' % (80.0 / N))",
    "sample_size": "dict(j='k for k in sample(N_post, size=80)')",
    "distance": "dict(condition='abs(i-j) < 50 and i != j')",
    "range_gen": "dict(j='k for k in range(i-40, i+40) if k != i', skip_if_invalid=True)",
    "condition_pre_post": "dict(condition='x_pre > x_post', p=0.002)",
    "n_multi": "dict(j='k for k in range(i, i+40)', n=2, skip_if_invalid=True)",
    "p_of_j": "dict(condition='i != j', p='0.3*exp(-abs(i-j)/30.0)')",
    "grid_distance": "dict(condition='sqrt((i%200 - j%200)**2 + (i//200 - j//200)**2) < 4.5')",
    "arrays": "'arrays'",
}

WORKER = r"""
import builtins, json, sys, time, tempfile
import numpy as np
N, target, form = int(sys.argv[1]), sys.argv[2], sys.argv[3]
from brian2 import *
BrianLogger.log_level_error()
if target == "cpp_standalone":
    set_device("cpp_standalone", directory=tempfile.mkdtemp(), build_on_run=False)
elif target == "numpy":
    # Brian2's own runtime device and numpy target, without brian2wgpu imported.
    prefs.codegen.target = "numpy"
else:
    import brian2wgpu
    set_device("wgpu")
    prefs.devices.wgpu.backend = "cpu"
seed(11)
G = NeuronGroup(N, "x : 1")
G.x = "rand()"
S = Synapses(G, G, "w : 1")
kw = eval(form)
t0 = time.perf_counter()
if kw == "arrays":
    rng = np.random.default_rng(1)
    i = np.repeat(np.arange(N, dtype=np.int32), 80)
    j = rng.integers(0, N, size=len(i)).astype(np.int32)
    t0 = time.perf_counter()
    S.connect(i=i, j=j)
else:
    S.connect(**kw)
t1 = time.perf_counter()
if target == "cpp_standalone":
    net = Network(G, S)
    net.run(0 * ms)
    device.build(run=True)
    out = {"seconds": device.timers["run_binary"],
           "compile": builtins.sum(v or 0 for v in device.timers["compile"].values()),
           "synapses": int(len(S))}
else:
    out = {"seconds": t1 - t0, "synapses": int(len(S))}
print(json.dumps(out))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--targets", default="engine,numpy,cpp_standalone")
    ap.add_argument("--forms", default=",".join(FORMS))
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "out",
                                                    "connect.json"))
    args = ap.parse_args()
    targets = args.targets.split(",")
    results = {}
    for name in args.forms.split(","):
        results[name] = {}
        for target in targets:
            runs = [run_worker(WORKER, args.n, target, FORMS[name])
                    for _ in range(args.repeat)]
            ok = [r for r in runs if "error" not in r]
            if not ok:
                results[name][target] = {"error": runs[0]["error"]}
                print(f"{name:20s} {target:15s} error: {runs[0]['error']}", flush=True)
                continue
            med = statistics.median(r["seconds"] for r in ok)
            results[name][target] = {"median_s": med, "runs": ok}
            print(f"{name:20s} {target:15s} {med:8.3f} s  {ok[0]['synapses']:>10d} synapses",
                  flush=True)
        row = results[name]
        if "median_s" in row.get("engine", {}) and "median_s" in row.get("numpy", {}):
            row["numpy_over_engine"] = row["numpy"]["median_s"] / row["engine"]["median_s"]
            print(f"{'':20s} numpy / engine = {row['numpy_over_engine']:.1f}", flush=True)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"n": args.n, "results": results}, f, indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
