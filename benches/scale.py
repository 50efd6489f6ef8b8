"""Scale: Brunel-Hakim with K = 1,000 synapses per neuron at N neurons (N = 100,000 gives
10^8 synapses) on the wgpu device: connect(), then two run() calls of 10 ms each (the second
shows the per-run set-up once connectivity is in place), with the process's peak memory.

    python benches/scale.py [--n 100000] [--backend cpu|gpu] [--heterogeneous]
                            [--json benches/out/scale.json]

On lavapipe (maxStorageBufferRange 128 MiB) 10^8 synapses exceed the binding limit: the
device must refuse before the first step with an error that names the limit.
"""

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--backend", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--heterogeneous", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    t0 = time.perf_counter()
    from brian2 import Network, NeuronGroup, SpikeMonitor, Synapses, ms, mV, prefs, seed
    from brian2 import set_device, BrianLogger
    from brian2.devices.device import get_device
    import brian2wgpu  # noqa: F401

    BrianLogger.log_level_warn()
    set_device("wgpu")
    prefs.devices.wgpu.backend = args.backend
    seed(1)
    n = args.n
    ns = dict(Vr=10 * mV, theta=20 * mV, tau=20 * ms, J=0.1 * mV, muext=25 * mV,
              sigmaext=1.0 * mV)
    G = NeuronGroup(n, "dV/dt = (-V + muext + sigmaext * sqrt(tau) * xi)/tau : volt",
                    threshold="V > theta", reset="V = Vr", refractory=2 * ms, method="euler",
                    namespace=ns)
    G.V = ns["Vr"]
    S = Synapses(G, G, on_pre="V += -J", namespace=ns,
                 delay=None if args.heterogeneous else 2 * ms)
    t1 = time.perf_counter()
    S.connect(p=1000.0 / n)
    t2 = time.perf_counter()
    if args.heterogeneous:
        S.delay = "4*ms * rand()"
    t3 = time.perf_counter()
    M = SpikeMonitor(G)
    net = Network(G, S, M)
    out = {"n": n, "synapses": int(len(S)), "backend": args.backend,
           "heterogeneous": args.heterogeneous, "setup_s": t1 - t0, "connect_s": t2 - t1,
           "set_delays_s": t3 - t2}
    try:
        for k in (1, 2):
            t = time.perf_counter()
            net.run(10 * ms)
            out[f"run{k}_s"] = time.perf_counter() - t
            out[f"run{k}_sim_s"] = float(get_device()._last_run_time)
        out["spikes"] = int(M.num_spikes)
    except Exception as exc:  # the gpu backend past the adapter's limits
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(out))
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
