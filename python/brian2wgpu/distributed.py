"""Parameter sweeps over many processes or machines, with Dask's ``distributed`` (optional:
``pip install brian2wgpu[distributed]``) or locally.

Brian2 simulates one network per process and keeps global state (the device, the magic
network, preferences), so a sweep runs one simulation per task, each in a fresh device
state, one at a time per process. Write the simulation as a function that builds, runs and
returns numpy results, decorate it with :func:`simulation`, and hand it to :func:`sweep`::

    from brian2wgpu.distributed import register, simulation, sweep

    @simulation
    def run_one(rate_hz, seed_value):
        ...  # build and run a Brian2 network; return numpy arrays or numbers

    results = sweep(run_one, [(r, 1) for r in rates])           # local processes
    client = distributed.Client(cluster); register(client)
    results = sweep(run_one, [(r, 1) for r in rates])           # the same, on the cluster

:func:`sweep` dispatches with ``joblib.Parallel``: on the Dask cluster of the current
``distributed.Client`` when there is one (``joblib.parallel_config(backend='dask')``), else
in local worker processes. :func:`register` prepares every worker of a client: the worker
plugin imports Brian2 and the device in the worker's main thread as the worker starts (Dask
runs tasks in other threads, where ``import brian2`` would fail on its SIGINT handler if
``brian2wgpu`` did not import it without one there), and can give each worker its own GPU
adapter.
"""

import functools
import os
import threading

# One simulation at a time per process: Brian2's state is global.
_LOCK = threading.Lock()
_PLUGIN_NAME = "brian2wgpu"


def prepare_worker(adapter=None):
    """Import Brian2 and the device in this thread (call it in a process's main thread
    before simulations run in other threads); ``adapter`` (an index or a name, as
    ``prefs.devices.wgpu.adapter`` takes it) selects this process's GPU."""
    if adapter is not None and str(adapter) != "":
        os.environ["BRIAN2WGPU_ADAPTER"] = str(adapter)
    import brian2  # noqa: F401  (installs its SIGINT handler: main thread only)

    from . import device  # noqa: F401  (registers the 'wgpu' device and its preferences)


class Simulation:
    """A sweep task (see :func:`simulation`): picklable, so that Dask and joblib can send
    it to workers (the function itself travels by reference, or by value when it lives in
    a script)."""

    def __init__(self, fn, backend=None):
        self.fn = fn
        self.backend = backend
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        from brian2 import get_device, prefs, set_device, start_scope
        from brian2.devices.device import all_devices
        with _LOCK:
            prefs._backup()
            previous = get_device()
            try:
                # Nothing from an earlier task on this process (arrays, cached layouts).
                all_devices["wgpu"].reinit()
                set_device("wgpu")
                if self.backend is not None:
                    prefs.devices.wgpu.backend = self.backend
                start_scope()
                return self.fn(*args, **kwargs)
            finally:
                prefs._restore()
                set_device(previous)


def simulation(fn=None, *, backend=None):
    """Make ``fn`` a sweep task: each call runs alone in its process, on the ``wgpu``
    device in a fresh state (``start_scope()``, a reinitialised device, preferences
    restored afterwards). ``backend``: 'cpu', 'gpu' or 'auto' (default: the preference)."""
    if fn is None:
        return functools.partial(simulation, backend=backend)
    return Simulation(fn, backend)


def _worker_plugin_class():
    from distributed.diagnostics.plugin import WorkerPlugin

    class BrianWorkerPlugin(WorkerPlugin):
        """Runs :func:`prepare_worker` as each worker starts (in its main thread)."""
        name = _PLUGIN_NAME

        def __init__(self, adapters=None):
            self.adapters = list(adapters) if adapters else None

        def setup(self, worker):
            adapter = None
            if self.adapters:
                # LocalCluster names its workers 0, 1, ...; other names hash to a slot.
                try:
                    k = int(worker.name)
                except (TypeError, ValueError):
                    k = sum(str(worker.name).encode())
                adapter = self.adapters[k % len(self.adapters)]
            prepare_worker(adapter)

    return BrianWorkerPlugin


def register(client, adapters=None):
    """Prepare every worker of the Dask ``client`` (present and future) for simulations.
    ``adapters``: GPU adapters to spread over the workers (indices or names, as
    ``python -m brian2wgpu`` lists them), worker k taking ``adapters[k % len(adapters)]``:
    with one worker per GPU, each simulates on its own."""
    plugin = _worker_plugin_class()(adapters)
    client.register_plugin(plugin, name=_PLUGIN_NAME)
    return plugin


def _current_client():
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def sweep(fn, params, n_jobs=None):
    """``[fn(*p) for p in params]`` (``fn(p)`` for non-tuples), in parallel: on the
    current Dask client's cluster if there is one, else in ``n_jobs`` local processes
    (default: one per core). Results come back in the order of ``params``."""
    import joblib

    calls = [joblib.delayed(fn)(*p) if isinstance(p, tuple) else joblib.delayed(fn)(p)
             for p in params]
    client = _current_client()
    if client is not None:
        # One simulation per task: each is long, and batching them unevenly leaves workers
        # idle at the end (2 workers: 1.93x serial with single tasks, 1.79x batched).
        with joblib.parallel_config(backend="dask"):
            return joblib.Parallel(n_jobs=-1 if n_jobs is None else n_jobs,
                                   batch_size=1)(calls)
    return joblib.Parallel(n_jobs=n_jobs or os.cpu_count() or 1)(calls)
