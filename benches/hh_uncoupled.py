"""100,000 uncoupled Hodgkin-Huxley neurons for 100 ms, on every backend in one invocation.

Each backend runs in its own fresh Python process (so compile caches and imports count
where a user would pay them): wgpu on the GPU adapter (lavapipe here), wgpu on the CPU
interpreter, Brian2's numpy target, Cython (with its cache warmed by a first run) and C++
standalone (code generation + compilation + run). Reported per backend: total time to
result (from building the network to having the spikes), simulation time (Brian2's
``device._last_run_time``), and spike counts; then ratios against cpp_standalone.

Rerun: ``.venv/bin/python benches/hh_uncoupled.py [N] [duration_ms] [backends...]``.
Writes ``benches/out/hh_uncoupled.json``.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

WORKER = r"""
import json, sys, time
t_start = time.perf_counter()
backend, n, duration_ms, outdir = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
from brian2 import *
from models import use_backend
use_backend(backend, outdir)
area = 20000*umetre**2
Cm = 1*ufarad*cm**-2 * area
gl = 5e-5*siemens*cm**-2 * area
El = -65*mV; EK = -90*mV; ENa = 50*mV
g_na = 100*msiemens*cm**-2 * area
g_kd = 30*msiemens*cm**-2 * area
VT = -63*mV
eqs = '''
dv/dt = (gl*(El-v) - g_na*(m*m*m)*h*(v-ENa) - g_kd*(n*n*n*n)*(v-EK) + I)/Cm : volt
dm/dt = 0.32*(mV**-1)*4*mV/exprel((13.*mV-v+VT)/(4*mV))/ms*(1-m)-0.28*(mV**-1)*5*mV/exprel((v-VT-40.*mV)/(5*mV))/ms*m : 1
dn/dt = 0.032*(mV**-1)*5*mV/exprel((15.*mV-v+VT)/(5*mV))/ms*(1.-n)-.5*exp((10.*mV-v+VT)/(40.*mV))/ms*n : 1
dh/dt = 0.128*exp((17.*mV-v+VT)/(18.*mV))/ms*(1.-h)-4./(1+exp((40.*mV-v+VT)/(5.*mV)))/ms*h : 1
I : amp
'''
G = NeuronGroup(n, eqs, threshold='v > -40*mV', refractory='v > -40*mV', method='exponential_euler')
G.v = El
G.I = '0.7*nA * i / N'
M = SpikeMonitor(G)
t_run = time.perf_counter()
run(duration_ms*ms)
spikes = int(M.num_spikes)
counts = M.count[:]
t_end = time.perf_counter()
print(json.dumps({"backend": backend, "total_s": t_end - t_start, "run_call_s": t_end - t_run,
                  "sim_s": float(device._last_run_time), "spikes": spikes,
                  "active_neurons": int((counts > 0).sum())}))
"""


def run_backend(backend, n, duration_ms):
    with tempfile.TemporaryDirectory() as outdir:
        env = dict(os.environ, PYTHONPATH=HERE)
        out = subprocess.run([sys.executable, "-c", WORKER, backend, str(n), str(duration_ms), outdir],
                             capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"backend": backend, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    duration_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 100.0
    backends = sys.argv[3:] or ["wgpu-gpu", "wgpu-cpu", "cpp_standalone", "cython", "numpy"]
    results = {}
    for b in backends:
        if b == "cython":
            run_backend(b, 100, 1.0)  # warm Cython's on-disk cache: the "cached" case
        t0 = time.perf_counter()
        results[b] = run_backend(b, n, duration_ms)
        results[b]["wall_s"] = time.perf_counter() - t0
        print(json.dumps(results[b]), flush=True)
    ref = results.get("cpp_standalone", {})
    print(f"\n{n} HH neurons, {duration_ms} ms ({int(duration_ms * 10)} steps), {os.cpu_count()} cores")
    print(f"{'backend':16s} {'total [s]':>10s} {'sim [s]':>9s} {'spikes':>9s} {'total/cpp':>10s} {'sim/cpp':>8s}")
    for b, r in results.items():
        if "error" in r:
            print(f"{b:16s} failed: {r['error']}")
            continue
        tot = r["total_s"] / ref["total_s"] if "total_s" in ref else float("nan")
        sim = r["sim_s"] / ref["sim_s"] if "sim_s" in ref else float("nan")
        print(f"{b:16s} {r['total_s']:10.2f} {r['sim_s']:9.2f} {r['spikes']:9d} {tot:10.2f} {sim:8.2f}")
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "hh_uncoupled.json"), "w") as f:
        json.dump({"neurons": n, "duration_ms": duration_ms, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
