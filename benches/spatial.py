"""SpatialNeuron (Brian2's cable equation) on every backend in one invocation.

A Hodgkin-Huxley neuron with a soma, an axon and a binary dendritic tree (the coupling
system has many branch points), ~1,000 compartments by default, 50 ms. Backends, each in
a fresh process: wgpu on the interpreter and on the GPU adapter (the cable step in the
engine), the same with the cable equation through Brian2's numpy code on the host every
step (``-host``: the path before the engine had it, ``brian2wgpu.device.CABLE_IN_ENGINE =
False``), and Brian2's numpy, cython and cpp_standalone targets.
Reported: total time to result, simulation time (``device._last_run_time``), spikes, and
the largest difference of the recorded voltages from numpy's.

Rerun: ``.venv/bin/python benches/spatial.py [--compartments N] [--duration MS]
[--targets a,b,...] [--repeat R]``. Writes ``benches/out/spatial.json``.
"""

import argparse
import json
import os

from models import compare_targets

HERE = os.path.dirname(os.path.abspath(__file__))

WORKER = r"""
import json, sys, time
t_start = time.perf_counter()
backend, ncomp, duration_ms, outdir, vfile = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
import numpy as np
from brian2 import *
from models import use_backend
if backend.endswith("-host"):
    import brian2wgpu.device
    brian2wgpu.device.CABLE_IN_ENGINE = False
    backend = backend[:-len("-host")]
use_backend(backend, outdir)
defaultclock.dt = 0.025*ms
morpho = Soma(30*um)
axon = ncomp // 2
morpho.axon = Cylinder(diameter=1*um, length=500*um, n=axon)
# A binary dendritic tree of 31 sections holding the other half of the compartments.
per = max(1, (ncomp - axon - 1) // 31)
def grow(parent, depth):
    if depth == 5:
        return
    for name in ("L", "R"):
        child = Cylinder(diameter=(2.0 - 0.3*depth)*um, length=60*um, n=per)
        parent[name] = child
        grow(child, depth + 1)
morpho.dend = Cylinder(diameter=2*um, length=60*um, n=per)
grow(morpho.dend, 1)
eqs = '''
Im = gL*(EL - v) + gNa*m**3*h*(ENa - v) + gK*n**4*(EK - v) : amp/meter**2
I : amp (point current)
gNa : siemens/meter**2
dm/dt = 0.1/mV*10*mV/exprel((-v+25*mV)/(10*mV))/ms*(1-m) - 4*exp(-v/(18*mV))/ms*m : 1
dh/dt = 0.07*exp(-v/(20*mV))/ms*(1-h) - 1/(exp((-v+30*mV)/(10*mV))+1)/ms*h : 1
dn/dt = 0.01/mV*10*mV/exprel((-v+10*mV)/(10*mV))/ms*(1-n) - 0.125*exp(-v/(80*mV))/ms*n : 1
'''
neuron = SpatialNeuron(morphology=morpho, model=eqs, Cm=1*uF/cm**2, Ri=100*ohm*cm,
                       namespace=dict(gL=1e-4*siemens/cm**2, EL=10.6*mV, ENa=115*mV,
                                      EK=-12*mV, gK=36*msiemens/cm**2),
                       threshold='v > 50*mV', threshold_location=0, refractory='v > 50*mV',
                       method='exponential_euler')
neuron.v = 0*mV
neuron.h = 1; neuron.m = 0; neuron.n = .5
neuron.gNa = 120*msiemens/cm**2
neuron.I[0] = 1*nA
n = neuron.N
record = [0, n // 4, n // 2, n - 1]
S = StateMonitor(neuron, 'v', record=record)
M = SpikeMonitor(neuron)
run(duration_ms*ms)
v = np.asarray(S.v[:])
t_end = time.perf_counter()
np.save(vfile, v)
print(json.dumps({"total_s": t_end - t_start, "sim_s": float(device._last_run_time),
                  "spikes": int(M.num_spikes), "compartments": int(n),
                  "sections": int(neuron.flat_morphology.sections)}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--compartments", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=50.0, help="ms")
    ap.add_argument("--targets", default="wgpu-cpu,wgpu-cpu-host,wgpu-gpu,wgpu-gpu-host,numpy,"
                    "cython,cpp_standalone")
    ap.add_argument("--repeat", type=int, default=1, help="runs per target (medians reported)")
    args = ap.parse_args()
    targets = args.targets.split(",")
    results = compare_targets(WORKER, targets, args.compartments, args.duration,
                              args.repeat, "numpy", 100)
    first = next((r for r in results.values() if "compartments" in r), {})
    print(f"\nSpatialNeuron, {first.get('compartments')} compartments in {first.get('sections')} "
          f"sections, {args.duration} ms, {os.cpu_count()} cores; medians of {args.repeat}")
    print(f"{'target':16s} {'total [s]':>10s} {'sim [s]':>9s} {'spikes':>7s} "
          f"{'host sim/sim':>12s} {'max |dv| vs numpy [mV]':>24s}")
    for target, r in results.items():
        if "error" in r:
            print(f"{target:16s} failed: {r['error']}")
            continue
        # Against the host path of the same backend.
        host = results.get(target.removesuffix("-host") + "-host", {}).get("sim_s")
        speed = f"{host / r['sim_s']:12.2f}" if host and target.startswith("wgpu") else f"{'':12s}"
        dv = r.get("max_dv_from_numpy_mV")
        print(f"{target:16s} {r['total_s']:10.2f} {r['sim_s']:9.3f} {r['spikes']:7d} {speed} "
              f"{'' if dv is None else f'{dv:24.2e}'}")
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "spatial.json"), "w") as f:
        json.dump({"compartments": args.compartments, "duration_ms": args.duration,
                   "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
