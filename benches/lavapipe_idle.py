"""Where lavapipe's time goes between dispatches on a virtual machine: CUBA on the gpu
backend with and without "warm" cores, against the interpreter.

lavapipe (Mesa 22.3) runs each dispatch on a thread pool whose workers sleep on a
condition variable as soon as they run out of work; the queue thread sleeps while they
work. On a KVM guest without a cpuidle driver an idle vCPU halts, and waking a thread
there costs a trip through the hypervisor. A run with `warm` cores starts one
`SCHED_IDLE` spinner per core: it runs only where a core would otherwise halt and gives way
at once to any other thread, so it keeps the vCPUs awake without taking time from the
simulation. The difference between the two is what the pool's wake-ups cost: time the
workers spend neither computing nor able to (the machine's idle time during the run is
reported beside it). The interpreter (rayon, whose workers spin briefly before sleeping)
is measured the same two ways.

Each measurement runs in a fresh process: a 1 ms warm-up run (pipelines, buffers), then
the timed run. Rounds interleave the four configurations; medians are reported.

Rerun: ``.venv/bin/python benches/lavapipe_idle.py [--n 40000] [--duration-ms 100]
[--rounds 5]``. Writes ``benches/out/lavapipe_idle.json``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

WORKER = r"""
import glob, json, os, sys, time
sys.path.insert(0, sys.argv[4])
backend, n, duration_ms = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
from brian2 import Network, SpikeMonitor, ms, seed, set_device, prefs
import brian2wgpu  # noqa: F401
from models import cuba_network
set_device("wgpu")
prefs.devices.wgpu.backend = backend

def thread_seconds():
    out = {}
    for t in glob.glob(f"/proc/{os.getpid()}/task/*"):
        fields = open(t + "/stat").read().rsplit(")", 1)[1].split()
        out[t] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out

def idle_seconds():
    fields = open("/proc/stat").readline().split()[1:]
    return (int(fields[3]) + int(fields[4])) / os.sysconf("SC_CLK_TCK")

seed(1)
P, pathways = cuba_network(n)
S = SpikeMonitor(P)
net = Network(P, *pathways, S)
net.run(1 * ms)
before, idle0, t0 = thread_seconds(), idle_seconds(), time.perf_counter()
net.run(duration_ms * ms)
wall, idle1, after = time.perf_counter() - t0, idle_seconds(), thread_seconds()
busy = sorted((after[k] - before.get(k, 0.0) for k in after), reverse=True)
print(json.dumps({"wall_s": wall, "idle_s": idle1 - idle0, "spikes": int(S.num_spikes),
                  "thread_cpu_s": [round(b, 3) for b in busy if b > 0.01]}))
"""


def spinners(count):
    """One SCHED_IDLE busy loop per core (Linux): it runs only on a core nothing else
    wants."""
    code = ("import os\nos.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
            "while True:\n    pass\n")
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


def measure(backend, n, duration_ms, warm):
    procs = spinners(os.cpu_count() or 1) if warm else []
    try:
        out = subprocess.run([sys.executable, "-c", WORKER, backend, str(n), str(duration_ms),
                              HERE], capture_output=True, text=True, timeout=1800)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40000)
    ap.add_argument("--duration-ms", type=float, default=100.0)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    configs = [(b, w) for b in ("gpu", "cpu") for w in (False, True)]
    runs = {c: [] for c in configs}
    for r in range(args.rounds):
        for backend, warm in configs:
            res = measure(backend, args.n, args.duration_ms, warm)
            runs[(backend, warm)].append(res)
            print(f"round {r + 1}: {backend:3s} {'warm' if warm else 'plain':5s} "
                  f"wall {res['wall_s']:.2f} s, machine idle {res['idle_s']:.2f} s, "
                  f"threads {res['thread_cpu_s']}, spikes {res['spikes']}", flush=True)
    med = {c: statistics.median(x["wall_s"] for x in runs[c]) for c in configs}
    print(f"\nCUBA {args.n} neurons, {args.duration_ms:g} ms, {os.cpu_count()} cores, "
          f"medians of {args.rounds}:")
    for backend in ("gpu", "cpu"):
        print(f"  {backend}: plain {med[(backend, False)]:.2f} s, warm cores "
              f"{med[(backend, True)]:.2f} s")
    print(f"  lavapipe / interpreter: plain {med[('gpu', False)] / med[('cpu', False)]:.2f}, "
          f"warm cores {med[('gpu', True)] / med[('cpu', True)]:.2f}")
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "lavapipe_idle.json"), "w") as f:
        json.dump({"n": args.n, "duration_ms": args.duration_ms,
                   "runs": {f"{b}-{'warm' if w else 'plain'}": runs[(b, w)]
                            for b, w in configs},
                   "median_wall_s": {f"{b}-{'warm' if w else 'plain'}": med[(b, w)]
                                     for b, w in configs}}, f, indent=1)


if __name__ == "__main__":
    main()
