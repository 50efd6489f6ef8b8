"""A parameter sweep (examples/sweep_dask.py: 8 input rates) run serially in one process,
in 2 local processes (joblib without Dask: what the machine's cores give), and on a Dask
LocalCluster of 1 and of 2 worker processes (one thread each, and one interpreter thread
each: RAYON_NUM_THREADS=1, so that 2 workers are 2 cores), one invocation: wall times and
speedups against serial, results checked equal.

    .venv/bin/python benches/sweep.py [--points 8] [--n 1000] [--ms 1000] [--repeat 3]
                                      [--json PATH]

Each figure is the median of --repeat sweeps (this machine is noisy).
"""

import argparse
import importlib.util
import json
import logging
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The workers' statistical profiler samples every thread's stack every 10 ms, taking the
# GIL from the simulations; a sweep has no use for it.
DASK_CONFIG = {"distributed.worker.profile.enabled": False}


def example():
    path = os.path.join(HERE, "..", "examples", "sweep_dask.py")
    spec = importlib.util.spec_from_file_location("sweep_dask_example", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--ms", type=float, default=1000.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=os.path.join(HERE, "out", "sweep.json"))
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = "1"  # before the engine's pool starts, here and in workers
    import cloudpickle
    import dask
    import distributed
    from brian2 import BrianLogger
    from brian2wgpu.distributed import register, sweep

    BrianLogger.log_level_error()
    mod = example()
    cloudpickle.register_pickle_by_value(mod)
    params = [(50.0 + 50.0 * k, 1, args.n, args.ms) for k in range(args.points)]
    mod.population_rate(*params[0])  # imports and the integrator cache, outside the timing
    def timed(run):
        """(median seconds, result) of --repeat calls."""
        seconds, result = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = run()
            seconds.append(time.perf_counter() - t0)
        return statistics.median(seconds), result

    times = {}
    times["serial"], serial = timed(lambda: [mod.population_rate(*p) for p in params])
    # The same sweep in 2 local processes (joblib, no Dask): what this machine's cores give.
    sweep(mod.population_rate, params[:2], n_jobs=2)
    times["local_2"], results = timed(lambda: sweep(mod.population_rate, params, n_jobs=2))
    assert results == serial
    for workers in (1, 2):
        with dask.config.set(DASK_CONFIG):
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                               dashboard_address=None,
                                               silence_logs=logging.ERROR,
                                               env={"RAYON_NUM_THREADS": "1"})
        with cluster, distributed.Client(cluster) as client:
            register(client)
            # Every worker's first simulation (imports, code generation) outside the timing,
            # as the serial run's.
            client.run(mod.population_rate, *params[0])
            times[f"dask_{workers}"], results = timed(
                lambda: sweep(mod.population_rate, params))
        assert results == serial, (results, serial)
    out = {"points": args.points, "n": args.n, "ms": args.ms, "repeat": args.repeat,
           "seconds": times,
           "speedup": {k: times["serial"] / v for k, v in times.items()},
           "cores": os.cpu_count()}
    print(f"{args.points} simulations ({args.n} neurons, {args.ms:g} ms), wall time:")
    for k, v in times.items():
        print(f"  {k:8s} {v:6.2f} s   speedup {times['serial'] / v:4.2f}x")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
