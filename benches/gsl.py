"""GSL state updaters (``method='gsl_rkf45'``) on every backend that has them, in one
invocation.

Brian2's Hodgkin-Huxley model of its GSL tests (``HH_eqs``), N neurons with currents
spread so that some spike and some rest, adaptive steps (absolute error 1e-6 per
variable), dt = 0.1 ms. Backends, each in a fresh process: wgpu on the interpreter and on
the GPU adapter (the engine's GSL driver, no GSL library), Brian2's cython target (its
code linked to the GSL library: needs libgsl-dev) and cpp_standalone (the same). numpy has
no GSL support. Reported: total time to result, simulation time
(``device._last_run_time`` or the standalone run), spikes, mean steps per dt, and the
largest difference of the recorded voltages from cython's. (steps/dt: the mean over the
neurons of the last time step's steps.)

Rerun: ``.venv/bin/python benches/gsl.py [--neurons N] [--duration MS]
[--targets a,b,...] [--repeat R]``. Writes ``benches/out/gsl.json``.
"""

import argparse
import json
import os

from models import compare_targets

HERE = os.path.dirname(os.path.abspath(__file__))

WORKER = r"""
import json, sys, time
t_start = time.perf_counter()
backend, n, duration_ms, outdir, vfile = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
import numpy as np
from brian2 import *
from models import use_backend
use_backend(backend, outdir)
defaultclock.dt = 0.1*ms
area = 20000*umetre**2
namespace = dict(Cm=1*ufarad*cm**-2 * area, gl=5e-5*siemens*cm**-2 * area, El=-65*mV,
                 EK=-90*mV, ENa=50*mV, g_na=100*msiemens*cm**-2 * area,
                 g_kd=30*msiemens*cm**-2 * area, VT=-63*mV)
eqs = '''
dv/dt = (gl*(El-v) - g_na*(m*m*m)*h*(v-ENa) - g_kd*(n*n*n*n)*(v-EK) + I)/Cm : volt
dm/dt = 0.32*(mV**-1)*(13.*mV-v+VT)/
    (exp((13.*mV-v+VT)/(4.*mV))-1.)/ms*(1-m)-0.28*(mV**-1)*(v-VT-40.*mV)/
    (exp((v-VT-40.*mV)/(5.*mV))-1.)/ms*m : 1
dn/dt = 0.032*(mV**-1)*(15.*mV-v+VT)/
    (exp((15.*mV-v+VT)/(5.*mV))-1.)/ms*(1.-n)-.5*exp((10.*mV-v+VT)/(40.*mV))/ms*n : 1
dh/dt = 0.128*exp((17.*mV-v+VT)/(18.*mV))/ms*(1.-h)-4./(1+exp((40.*mV-v+VT)/(5.*mV)))/ms*h : 1
I : amp
'''
G = NeuronGroup(n, eqs, threshold='v > -20*mV', refractory='v > -20*mV', method='gsl_rkf45',
                method_options={'absolute_error': 1e-6, 'save_step_count': True},
                namespace=namespace)
G.v = -65*mV
G.I = '(0.3 + 0.5*i/N) * nA'
S = StateMonitor(G, 'v', record=[0, n // 2, n - 1])
M = SpikeMonitor(G)
run(duration_ms*ms)
v = np.asarray(S.v_[:])
t_end = time.perf_counter()
np.save(vfile, v)
sim = getattr(device, '_last_run_time', None)
print(json.dumps({"total_s": t_end - t_start, "sim_s": float(sim) if sim is not None else None,
                  "spikes": int(M.num_spikes), "neurons": n,
                  "steps_per_dt": float(np.mean(G._step_count_[:]))}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--neurons", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=100.0, help="ms")
    ap.add_argument("--targets", default="wgpu-cpu,wgpu-gpu,cython,cpp_standalone")
    ap.add_argument("--repeat", type=int, default=1, help="runs per target (medians reported)")
    args = ap.parse_args()
    results = compare_targets(WORKER, args.targets.split(","), args.neurons, args.duration,
                              args.repeat, "cython", 10)
    print(f"\nGSL rkf45, HH, {args.neurons} neurons, {args.duration} ms, {os.cpu_count()} "
          f"cores; medians of {args.repeat}")
    print(f"{'target':16s} {'total [s]':>10s} {'sim [s]':>9s} {'spikes':>7s} {'steps/dt':>9s} "
          f"{'max |dv| vs cython [mV]':>25s}")
    for target, r in results.items():
        if "error" in r:
            print(f"{target:16s} failed: {r['error']}")
            continue
        sim = "" if r["sim_s"] is None else f"{r['sim_s']:9.3f}"
        dv = r.get("max_dv_from_cython_mV")
        print(f"{target:16s} {r['total_s']:10.2f} {sim:>9s} {r['spikes']:7d} "
              f"{r['steps_per_dt']:9.2f} {'' if dv is None else f'{dv:25.2e}'}")
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "gsl.json"), "w") as f:
        json.dump({"neurons": args.neurons, "duration_ms": args.duration,
                   "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
