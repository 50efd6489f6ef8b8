"""A parameter sweep on the wgpu device: the firing rate of a sparse recurrent network of
leaky integrate-and-fire neurons (Brunel 2000 style, excitatory drive from Poisson inputs)
as a function of the input rate, one simulation per input rate.

The same code runs on a laptop (local worker processes) and on a Dask cluster:

    python examples/sweep_dask.py                        # local processes
    python examples/sweep_dask.py --local-cluster 2      # a Dask LocalCluster, 2 workers
    python examples/sweep_dask.py --scheduler tcp://host:8786   # an existing cluster

and writes ``sweep_dask.png`` (rate against input rate) and prints the table. On a cluster
of multi-GPU nodes, ``--adapters 0,1`` gives worker k the adapter k % 2 (with
``--backend gpu``). Needs ``pip install brian2wgpu[distributed]`` for the Dask modes.
"""

import argparse
import time

from brian2wgpu.distributed import register, simulation, sweep


@simulation
def population_rate(input_rate_hz, seed_value=1, n=1000, duration_ms=300.0):
    """Mean firing rate (Hz) of the network for one input rate."""
    from brian2 import (Hz, NeuronGroup, PoissonInput, SpikeMonitor, Synapses, mV, ms,
                        run, seed)
    seed(seed_value)
    tau, v_t, v_r = 20 * ms, 20 * mV, 10 * mV
    G = NeuronGroup(n, "dv/dt = -v/tau : volt (unless refractory)", threshold="v > v_t",
                    reset="v = v_r", refractory=2 * ms, method="exact")
    G.v = "rand() * v_t"
    P = PoissonInput(G, "v", 100, input_rate_hz * Hz, weight=0.1 * mV)
    S = Synapses(G, G, on_pre="v_post += -0.5*mV", delay=1.5 * ms)
    S.connect(p=0.1)
    M = SpikeMonitor(G)
    run(duration_ms * ms, namespace={"tau": tau, "v_t": v_t, "v_r": v_r})
    return M.num_spikes / (n * duration_ms * 1e-3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--local-cluster", type=int, default=0, metavar="WORKERS")
    ap.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    ap.add_argument("--adapters", default="", help="GPU adapters to spread over the workers")
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--plot", default="sweep_dask.png")
    args = ap.parse_args()
    rates = [50.0 + 50.0 * k for k in range(args.points)]
    client = None
    if args.local_cluster or args.scheduler:
        from distributed import Client, LocalCluster
        if args.scheduler:
            client = Client(args.scheduler)
        else:
            client = Client(LocalCluster(n_workers=args.local_cluster, threads_per_worker=1))
        register(client, adapters=[a for a in args.adapters.split(",") if a] or None)
    t0 = time.perf_counter()
    results = sweep(population_rate, [(r, 1) for r in rates])
    wall = time.perf_counter() - t0
    print(f"{len(rates)} simulations in {wall:.1f} s "
          f"({'Dask: ' + str(client) if client else 'local processes'})")
    for r, out in zip(rates, results):
        print(f"input {r:7.1f} Hz -> {out:6.2f} Hz")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot(rates, results, "o-")
        ax.set(xlabel="input rate per synapse (Hz)", ylabel="network rate (Hz)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")
    if client is not None:
        client.close()


if __name__ == "__main__":
    main()
