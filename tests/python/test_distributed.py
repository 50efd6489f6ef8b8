"""Sweeps over processes (issue 17): Brian2's multiprocessing pattern with the device after
the parent has simulated (fork and spawn), and a Dask LocalCluster of two worker processes
running the sweep of examples/sweep_dask.py, each equal to the same simulations run
serially."""

import logging
import multiprocessing
import os

import numpy as np
import pytest

from sweep import example as load_example  # benches/sweep.py: the example as a module
from test_device import quiet_logs


def decay(args):
    """One simulation, as Brian2's examples/multiprocessing/01_using_cython.py writes it."""
    tau_ms, backend = args
    from brian2 import NeuronGroup, Network, StateMonitor, ms, prefs, set_device, start_scope
    import brian2wgpu  # noqa: F401
    set_device("wgpu")
    prefs.devices.wgpu.backend = backend
    start_scope()
    # Large enough that the interpreter uses its thread pool.
    G = NeuronGroup(100_000, "dv/dt = (1 + 0.001*i - v)/tau : 1",
                    namespace={"tau": tau_ms * ms}, method="exact")
    M = StateMonitor(G, "v", record=[0, 99_999])
    Network(G, M).run(2 * ms)
    return M.v[:].copy()


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("backend", ["cpu", "gpu"])
def test_process_pool_after_the_parent_ran(method, backend, request):
    if backend == "gpu":
        request.getfixturevalue("gpu")
    params = [(tau, backend) for tau in (1.0, 2.0, 5.0, 10.0)]
    with quiet_logs():
        serial = [decay(p) for p in params]  # the parent's thread pool and GPU context exist
    with multiprocessing.get_context(method).Pool(2) as pool:
        # A child of fork inherits neither the threads nor a usable GPU device: before
        # the engine kept both per process, this waited forever.
        results = pool.map_async(decay, params).get(timeout=240)
    for a, b in zip(serial, results):
        np.testing.assert_array_equal(a, b)


def test_dask_sweep_equals_serial():
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    from brian2wgpu.distributed import register, sweep
    example = load_example()
    # The workers cannot import the example: its function travels by value.
    cloudpickle.register_pickle_by_value(example)
    params = [(50.0 + 50.0 * k, 1 + k % 3, 400, 100.0) for k in range(8)]
    with quiet_logs():
        serial = [example.population_rate(*p) for p in params]
    assert len(set(serial)) > 4  # the sweep is not flat
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as client:
        register(client)
        results = sweep(example.population_rate, params)
        # Both workers took part.
        assert len(client.run(lambda: os.getpid())) == 2
    assert results == serial


def test_import_and_run_outside_the_main_thread():
    # What a Dask task does without register(): before, `import brian2` failed there
    # ("signal only works in main thread of the main interpreter").
    import subprocess
    import sys
    code = """
import threading
out = []
def task():
    import brian2wgpu
    from brian2 import NeuronGroup, Network, ms, prefs, set_device
    set_device("wgpu")
    prefs.devices.wgpu.backend = "cpu"
    G = NeuronGroup(3, "dv/dt = 1/ms : 1")
    Network(G).run(0.2 * ms)
    out.append(list(G.v[:]))
t = threading.Thread(target=task)
t.start()
t.join()
print(out)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert "[[0.2, 0.2, 0.2]]" in res.stdout.replace("np.float64(", "").replace(")", ""), \
        res.stdout + res.stderr
