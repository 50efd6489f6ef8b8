"""A long interactive session (issue 15): many short run() calls with state read and
written and the SpikeMonitor read between them, on both wgpu backends. Reports the time
per run() and the growth of the process's resident memory after the first 100 runs
(buffers, records or Python objects kept per run would show there).

    python benches/soak.py [--runs 10000] [--n 200] [--backends cpu,gpu]
"""

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import json, sys, time
import logging
backend, runs, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from brian2 import *
import brian2wgpu
logging.getLogger("brian2").setLevel(logging.WARNING)
set_device('wgpu'); prefs.devices.wgpu.backend = backend

def rss_mib():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * 4096 / 2**20

seed(3)
G = NeuronGroup(n, '''dv/dt = (1.1 - v + ge)/(10*ms) : 1
                      dge/dt = -ge/(5*ms) : 1''', threshold='v > 1', reset='v = 0',
                method='exact')
G.v = 'rand()'
S = Synapses(G, G, 'w : 1', on_pre='ge += w', delay=0.3*ms)
S.connect(p=min(1.0, 20.0 / n))
S.w = 'rand()*0.05'
M = SpikeMonitor(G)
net = Network(G, S, M)
net.run(0.1*ms)
times, rss_100 = [], None
for k in range(runs):
    t0 = time.perf_counter()
    net.run(0.1*ms)
    G.v[:] = G.v[:]
    M.num_spikes, M.t[:]
    times.append(time.perf_counter() - t0)
    if k == 99:
        rss_100 = rss_mib()
times.sort()
print(json.dumps({"backend": backend, "runs": runs, "n": n, "synapses": len(S),
                  "median_run_ms": 1e3 * times[len(times) // 2],
                  "p99_run_ms": 1e3 * times[int(0.99 * len(times))],
                  "rss_growth_mib": rss_mib() - rss_100, "spikes": int(M.num_spikes)}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--backends", default="cpu,gpu")
    args = ap.parse_args()
    results = []
    for backend in args.backends.split(","):
        out = subprocess.run([sys.executable, "-c", WORKER, backend, str(args.runs),
                              str(args.n)], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            continue
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]))
    os.makedirs(os.path.join(os.path.dirname(__file__), "out"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "out", "soak.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
