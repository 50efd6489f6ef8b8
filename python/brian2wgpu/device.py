"""The ``wgpu`` Brian2 device: runtime mode's interactivity, with every ``run()`` executed
by the Rust engine (no Python per time step).

Host numpy arrays stay authoritative between runs (Brian2's own get/set, string
expressions, store/restore keep working). Code objects are created by Brian2's numpy
target as usual -- that code serves one-shot templates and anything Brian2 calls outside a
run -- and each per-step code object also keeps its abstract code, which ``network_run``
lowers to engine kernels.
"""

import functools
import os
import sys
import time
import weakref
from collections import defaultdict

import numpy as np
from brian2.codegen.runtime.numpy_rt import NumpyCodeObject
from brian2.core.base import BrianObject, BrianObjectException
from brian2.core.namespace import get_local_namespace
from brian2.core.preferences import BrianPreference, prefs
from brian2.core.variables import ArrayVariable, DynamicArrayVariable
from brian2.devices.device import RuntimeDevice, all_devices
from brian2.units import second
from brian2.utils.logger import get_logger

from . import _engine, connect, gsl, integrator_cache, setexpr, template_cache
from .codeobject import kernel_spec, python_functions, scalar_int
from .dynamic_array import DynamicArray1D

__all__ = ["WgpuDevice"]

logger = get_logger("brian2.devices.wgpu")

prefs.register_preferences(
    "devices.wgpu",
    "Preferences of the wgpu device (brian2wgpu)",
    backend=BrianPreference(
        default="auto",
        docs="'auto' (best wgpu adapter, else the CPU interpreter), 'gpu' or 'cpu'. "
        "set_device('wgpu', backend=...) sets it for the device; the environment "
        "variable BRIAN2WGPU_BACKEND overrides both.",
        validator=lambda v: v in ("auto", "gpu", "cpu"),
    ),
    adapter=BrianPreference(
        default="",
        docs="Which adapter the gpu backend uses: an index into the list `python -m "
        "brian2wgpu` prints (e.g. '1': one worker per GPU on a multi-GPU node), or text "
        "that the adapter's name contains (case-insensitive); '' takes the best. "
        "set_device('wgpu', adapter=...) sets it for the device; the environment variable "
        "BRIAN2WGPU_ADAPTER overrides both.",
    ),
    steps_per_batch=BrianPreference(
        default=0,
        docs="Time steps between checks for stop requests and reports (0: automatic).",
    ),
    dump_shaders=BrianPreference(
        default="",
        docs="Directory where the gpu backend writes the WGSL of every kernel it runs, one "
        "file per kernel named after its Brian2 code object ('' turns it off). The "
        "environment variable BRIAN2WGPU_DUMP_SHADERS overrides it.",
    ),
    gpu_timeout=BrianPreference(
        default=120.0,
        docs="Seconds the gpu backend waits for the GPU at most (one batch of steps, or one "
        "read-back) before it raises TimeoutError; the device is then abandoned and the "
        "next run() starts a new one. Once a network's batches have been timed, a wait may "
        "also last ten times what the work in flight should take. Raise it where the "
        "first batch of a network takes longer.",
    ),
    synapse_creation=BrianPreference(
        default="engine",
        docs="Where Synapses.connect with strings (conditions, p, n, generator syntax) "
        "creates synapses: 'engine' (in parallel, in Rust) or 'numpy' (Brian2's numpy "
        "code). Both give Brian2's synapse order; random forms draw different numbers.",
        validator=lambda v: v in ("engine", "numpy"),
    ),
    string_expressions=BrianPreference(
        default="engine",
        docs="Where variables set by string expression (S.w = 'rand()*w_max') are "
        "computed: 'engine' (the interpreter, for arrays of at least 50,000 elements) or "
        "'numpy' (Brian2's numpy code). Random numbers differ between the two.",
        validator=lambda v: v in ("engine", "numpy"),
    ),
    integrator_cache=BrianPreference(
        default=integrator_cache.default_directory(),
        docs="Directory of the disk cache for state-updater code that Brian2 derives with "
        "sympy (the 'exact' integrator takes seconds); '' turns it off. The environment "
        "variable BRIAN2WGPU_INTEGRATOR_CACHE overrides it.",
    ),
    template_cache=BrianPreference(
        default=template_cache.default_directory(),
        docs="Directory of the disk cache for the compiled form (jinja2 bytecode) of "
        "Brian2's code templates, ~10 ms per template on a script's first use; '' turns "
        "it off. The environment variable BRIAN2WGPU_TEMPLATE_CACHE overrides it.",
    ),
)
integrator_cache.install()
template_cache.install()

# Per-step templates that can run through Brian2's numpy code object on the host arrays
# (SpatialNeuron's cable equation, where CABLE_IN_ENGINE is off).
HOST_TEMPLATES = {"spatialstateupdate"}

# The engine runs SpatialNeuron's cable equation (interpreter and GPU); False sends it
# through Brian2's numpy code on the host as before (benches/spatial.py compares both).
CABLE_IN_ENGINE = True

# The arrays of Brian2's spatialstateupdate template that the engine's cable step reads
# and writes (src/runtime/cable.rs).
CABLE_ARRAYS = ("v", "Cm", "Ic", "_v_previous", "_gtot_all", "_I0_all", "_ab_star0",
                "_ab_star1", "_ab_star2", "_b_plus", "_b_minus", "_v_star", "_u_plus",
                "_u_minus", "_c", "_starts", "_ends", "_morph_parent_i", "_morph_idxchild",
                "_invr0", "_invrn", "_P_parent", "_P_diag", "_B", "_morph_children_num",
                "_morph_children", "_P_children")

# Per-step templates that may instead run through Brian2's numpy code object on the host
# when their code calls a Python function (one without a 'wgpu' implementation): their
# numpy templates touch only the host arrays, so the engine's other items see their
# results.
PYTHON_FUNCTION_TEMPLATES = {"stateupdate", "threshold", "reset", "spikemonitor",
                             "statemonitor", "ratemonitor", "summed_variable",
                             "synapses", "synapses_push_spikes"}
# What `_translate` returns for a code object that runs through Brian2's numpy code on
# the host (scheduled as an `Op.python` callback).
HOST = object()

# A synaptic pathway's code objects: on the host together or not at all (Brian2's numpy
# pathway code reads Brian2's own spike queue, which only its push fills).
PATHWAY_TEMPLATES = {"synapses", "synapses_push_spikes"}

# Templates the engine executes every time step.
PER_STEP_TEMPLATES = {"stateupdate", "threshold", "reset", "spikemonitor", "statemonitor",
                      "ratemonitor", "synapses_push_spikes", "synapses", "summed_variable",
                      "spikegenerator"}


class _SizingQueue:
    """Brian2's spike queue as `SynapticPathway.initialise_queue` sees it on this device:
    `prepare` gets the longest delay alone and no synapses, which sizes the queue and moves
    its queued spikes for a new dt as Brian2's does, but skips its per-source synapse
    lists (10^7 entries: 0.08 s), which the engine's queue layout replaces."""

    def __init__(self, queue):
        self.queue = queue

    def prepare(self, delays, dt, sources):
        delays = np.asarray(delays)
        longest = delays[np.argmax(delays)][None] if len(delays) else delays
        self.queue.prepare(np.ascontiguousarray(longest), dt, np.empty(0, dtype=np.int32))


def _dispatch_info(engine, items, names, clocks):
    """What the gpu backend records per time step: every dispatch of every schedule item
    with its kernel and workgroup grid ('indirect' where the GPU sizes it from counts)."""
    dispatches = []
    per_step = {}
    for (clock_index, _), name, passes in zip(items, names, engine.gpu_dispatches()):
        clock = clocks[clock_index].name
        per_step[clock] = per_step.get(clock, 0) + len(passes)
        for kernel, grid in passes:
            dispatches.append({"object": name, "clock": clock, "kernel": kernel,
                               "workgroups": "indirect" if grid is None else tuple(grid)})
    batches, passes = engine.gpu_compute_passes()
    return {"gpu_dispatches": dispatches, "gpu_dispatches_per_step": per_step,
            "gpu_monitor_bytes": engine.gpu_monitor_bytes(),
            "gpu_uploaded_bytes": engine.gpu_uploaded_bytes(),
            # One compute pass per batch (more only when profiling).
            "gpu_batches": batches,
            "gpu_compute_passes": passes}


def _log_dispatches(info):
    lines = [f"  {d['object']}: {d['kernel']} {d['workgroups']}" for d in info["gpu_dispatches"]]
    per_step = ", ".join(f"{n} on {c}" for c, n in info["gpu_dispatches_per_step"].items())
    logger.info(f"gpu backend: dispatches per time step: {per_step}\n" + "\n".join(lines),
                "dispatches")


def _clock_times(clock):
    """An EventClock's times (ending with inf) as floats; None for a regular Clock."""
    if "times" not in clock.variables:
        return None
    return [float(t) for t in np.asarray(clock.variables["times"].get_value(), dtype=float)]


def _clock_dt(clock):
    """A regular clock's dt in seconds (EventClocks have none: 0)."""
    return float(clock.dt_) if _clock_times(clock) is None else 0.0


def select_adapters(adapters, wanted):
    """The adapters (in ``list_adapters()`` order) an adapter choice allows: all for '',
    the one at that index for digits, else those whose name contains the text."""
    if not wanted:
        return list(adapters)
    if wanted.isdigit():
        index = int(wanted)
        return [adapters[index]] if index < len(adapters) else []
    return [a for a in adapters if wanted.lower() in a["name"].lower()]


def _unsupported(feature, obj):
    return NotImplementedError(f"wgpu device: {feature} in '{obj}' is not supported yet")


class _RunState:
    """Arrays and records of one run: numpy arrays by id, as the engine addresses them."""

    def __init__(self, device, backend):
        self.device = device
        self.backend = backend  # 'cpu' or 'gpu': where the engine runs
        self.arrays = []
        self.names = []  # per array, what it is (for error messages)
        self.ids = {}
        # Per array, its host copy's version (WgpuDevice._host_version; 0: none), and its
        # Brian2 variable (None: a table made for this run).
        self.versions = []
        self.vars = []
        self.extra = {}
        # Spike queue id per synaptic pathway (push_spikes creates it, synapses uses it).
        self.queues = {}

    def array(self, var, what=""):
        key = id(var)
        if key in self.ids:
            return self.ids[key]
        if not isinstance(var, ArrayVariable):
            raise _unsupported(f"variable {what} of kind {type(var).__name__}", what)
        # The host array itself: a run on the gpu backend may start while the GPU holds
        # newer values than it (WgpuDevice._on_gpu), which it then reuses.
        value = np.asarray(self.device._host_array(var))
        if value.ndim != 1 or not value.flags.c_contiguous or not value.flags.writeable:
            raise _unsupported(f"non-contiguous or multi-dimensional variable '{what}'", what)
        self.ids[key] = len(self.arrays)
        self.arrays.append(value)
        self.versions.append(self.device._host_version(var))
        self.vars.append(var)
        try:
            owner = var.owner.name
        except Exception:  # a dead weak reference or no owner
            owner = "?"
        self.names.append(f"variable '{var.name}' of '{owner}'")
        return self.ids[key]

    def table(self, values):
        """A read-only table (TimedArray values), shared by every kernel that reads it
        (each kernel's spec holds a new view of the same buffer)."""
        key = ("table", values.ctypes.data, values.size, values.dtype.str)
        if key not in self.ids:
            self.ids[key] = self.scratch(values)
        return self.ids[key]

    def scratch(self, array, what="an internal table"):
        self.arrays.append(array)
        self.versions.append(0)  # made for this run: always uploaded
        self.vars.append(None)
        self.names.append(what)
        return len(self.arrays) - 1


class WgpuDevice(RuntimeDevice):
    """Brian2 device running networks through brian2wgpu's engine."""

    def __init__(self):
        super().__init__()
        self._backend = None
        # The adapters wgpu reports, enumerated once: creating a wgpu instance to list
        # them took ~30 ms of every run() (brian2wgpu.list_adapters() stays fresh).
        self._adapters = None
        self.last_run_info = {}
        # Per synaptic pathway: (fingerprint, QueueLayout) of its last run, reused while
        # its synapses, delays and dt stay as they were (issue 14: set-up that does not
        # scale with the synapse count when nothing changed).
        self._queue_layouts = weakref.WeakKeyDictionary()
        # Per variable, the version of its host array. The gpu backend keeps each run's
        # buffers and does not upload an array again while its version is unchanged; any
        # access that may write the host array (get_value hands it out, set_value,
        # resize, host code run on it) forgets the version, so the next run uploads it.
        self._versions = weakref.WeakKeyDictionary()
        self._version_counter = 0
        # Variables whose newest values a gpu run left on the GPU (it downloads only what
        # Python then reads, DESIGN.md §3): any access to the host array downloads them
        # first (_sync); a full overwrite just forgets them (_discard).
        self._on_gpu = weakref.WeakKeyDictionary()
        # Per network, the most seconds per step its gpu runs took: the waits' deadlines
        # follow it (prefs.devices.wgpu.gpu_timeout).
        self._gpu_step_seconds = weakref.WeakKeyDictionary()
        # A forked child cannot reach the parent's GPU: bring everything back before.
        this = weakref.ref(self)

        def before_fork():
            device = this()
            if device is not None:
                device._sync_all()
        os.register_at_fork(before=before_fork)
        self._creating_code = False

    # -- host arrays and their versions ------------------------------------------------
    def _host_version(self, var):
        version = self._versions.get(var)
        if version is None:
            self._version_counter += 1
            version = self._versions[var] = self._version_counter
        return version

    def _touch(self, var):
        self._versions.pop(var, None)

    def _host_array(self, var):
        """The host array of ``var`` as it is (the GPU may hold newer values)."""
        return super().get_value(var, access_data=True)

    def _sync(self, var):
        """Bring back the values a gpu run left on the GPU for ``var``."""
        if self._on_gpu.pop(var, False):
            _engine.set_gpu_timeout(float(prefs["devices.wgpu.gpu_timeout"]))
            _engine.download_resident(np.asarray(self._host_array(var)))

    def _sync_all(self):
        for var in list(self._on_gpu.keys()):
            self._sync(var)

    def _discard(self, var):
        """``var`` is about to be overwritten as a whole: its values on the GPU are moot
        (its version changes too, so the GPU copy is never used again)."""
        self._on_gpu.pop(var, None)

    def peek_value(self, var):
        """The host array of ``var`` for reading only (does not mark it as changed)."""
        self._sync(var)
        return self._host_array(var)

    def add_array(self, var):
        if isinstance(var, DynamicArrayVariable) and var.ndim == 1:
            # Zeroed by the OS, not by a pass over memory (see dynamic_array.py).
            self.arrays[var] = DynamicArray1D(var.size, dtype=var.dtype)
        else:
            super().add_array(var)

    def get_value(self, var, access_data=True):
        # The caller may write into the array it gets (Brian2 does, e.g. when adding
        # synapses); code objects being built only keep a reference (their runs on the
        # host are tracked by _track_host_code, which also brings their arrays back
        # from the GPU first).
        if not self._creating_code:
            self._sync(var)
            self._touch(var)
        return super().get_value(var, access_data)

    def set_value(self, var, value):
        self._discard(var)
        self._touch(var)
        super().set_value(var, value)

    def fill_with_array(self, var, arr):
        self._discard(var)
        self._touch(var)
        super().fill_with_array(var, arr)

    def resize(self, var, new_size):
        self._sync(var)
        self._touch(var)
        super().resize(var, new_size)

    def resize_along_first(self, var, new_size):
        self._sync(var)
        self._touch(var)
        super().resize_along_first(var, new_size)

    def init_with_zeros(self, var, dtype):
        self._discard(var)
        self._touch(var)
        super().init_with_zeros(var, dtype)

    def init_with_arange(self, var, start, dtype):
        self._discard(var)
        self._touch(var)
        super().init_with_arange(var, start, dtype)

    def _track_host_code(self, codeobj):
        """Code run on the host (numpy) may write any array its block names: forget their
        versions whenever the block runs."""
        arrays = [v for v in codeobj.variables.values() if isinstance(v, ArrayVariable)]
        run_block = codeobj.run_block
        named = {}

        def tracked(block):
            if codeobj.compiled_code.get(block):
                if block not in named:
                    code = getattr(codeobj.code, block, "") or ""
                    named[block] = [var for var in arrays
                                    if self.get_array_name(var, True) in code
                                    or self.get_array_name(var, False) in code]
                for var in named[block]:
                    self._sync(var)
                    self._touch(var)
            return run_block(block)
        codeobj.run_block = tracked

    # -- code objects ---------------------------------------------------------------
    def code_object_class(self, codeobj_class=None, fallback_pref="codegen.target"):
        # Host-side code always runs through numpy: never cython (it compiles for tens of
        # seconds, the very thing this device avoids).
        return NumpyCodeObject

    def code_object(self, owner, name, abstract_code, variables, template_name,
                    variable_indices, codeobj_class=None, template_kwds=None,
                    override_conditional_write=None, compiler_kwds=None):
        self._creating_code = True
        try:
            codeobj = super().code_object(owner, name, abstract_code, variables,
                                          template_name, variable_indices,
                                          codeobj_class=NumpyCodeObject,
                                          template_kwds=template_kwds,
                                          override_conditional_write=override_conditional_write,
                                          compiler_kwds=compiler_kwds)
        finally:
            self._creating_code = False
        self._track_host_code(codeobj)
        codeobj.wgpu_abstract_code = abstract_code
        codeobj.wgpu_template_kwds = dict(template_kwds or {})
        codeobj.wgpu_override_conditional_write = set(override_conditional_write or ())
        if (template_name in ("group_variable_set", "group_variable_set_conditional")
                and prefs["devices.wgpu.string_expressions"] == "engine"):
            try:
                codeobj.run = setexpr.engine_variable_set(self, codeobj)
            except Exception as exc:  # anything the engine cannot take: Brian2's code runs
                logger.debug(f"wgpu device: '{name}' runs through numpy: {exc}", "setexpr")
        updater = getattr(owner, "state_updater", None)
        if template_name == "stateupdate" and getattr(updater, "wgpu_gsl", False):
            gsl.prepare(codeobj, updater)
        if template_name == "synapses_push_spikes":
            owner.initialise_queue = functools.partial(self._initialise_queue, owner)
        if (template_name == "synapses_create_generator"
                and prefs["devices.wgpu.synapse_creation"] == "engine"):
            try:
                codeobj.run = connect.engine_generator(self, codeobj)
            except Exception as exc:  # anything the engine cannot take: Brian2's code runs
                logger.debug(f"wgpu device: '{name}' creates synapses through numpy: {exc}",
                             "connect")
        return codeobj

    # -- synapse creation ---------------------------------------------------------------
    def synapses_connect(self, synapses, condition=None, i=None, j=None, p=1.0, n=1,
                         skip_if_invalid=False, namespace=None, level=0):
        """Brian2's ``Synapses.connect`` (its ``device_override``): index arrays with
        ``n=1``, ``p=1`` are appended directly; every other form runs Brian2's own
        ``connect`` (whose string forms then run in the engine, see ``code_object``)."""
        import numbers

        from brian2.synapses.synapses import Synapses

        if (condition is None and i is not None and j is not None
                and not isinstance(i, str) and not isinstance(j, str)
                and not skip_if_invalid
                and isinstance(p, numbers.Number) and p == 1
                and isinstance(n, numbers.Integral) and n == 1
                and prefs["devices.wgpu.synapse_creation"] == "engine"):
            synapses._verify_connect_argument_types(condition, i, j, n, p)
            return connect.connect_arrays(synapses, i, j)
        # One more frame between Brian2's connect and the user's namespace.
        return Synapses.connect.original_function(synapses, condition, i, j, p, n,
                                                  skip_if_invalid, namespace, level + 1)

    # -- backend --------------------------------------------------------------------
    # set_device('wgpu', **options): what the device takes, beside Brian2's build_on_run.
    OPTIONS = ("backend", "adapter", "profile")

    def activate(self, build_on_run=True, **kwargs):
        """``set_device('wgpu', backend=..., adapter=..., profile=...)``: the options of
        the preferences of the same names, for this device; unknown ones are an error
        (Brian2's runtime devices ignore them silently)."""
        unknown = sorted(set(kwargs) - set(self.OPTIONS))
        if unknown:
            raise TypeError(f"set_device('wgpu', ...) got unknown option(s) {unknown}; it "
                            "takes backend='auto'|'gpu'|'cpu', adapter=<index or name> and "
                            "profile=True|False")
        if kwargs.get("backend", "auto") not in ("auto", "gpu", "cpu"):
            raise ValueError(f"set_device('wgpu', backend=...) must be 'auto', 'gpu' or 'cpu', "
                             f"not {kwargs['backend']!r}")
        super().activate(build_on_run=build_on_run, **kwargs)

    def _option(self, name):
        """The environment variable BRIAN2WGPU_<NAME>, else set_device's option, else
        the preference devices.wgpu.<name>."""
        env = os.environ.get(f"BRIAN2WGPU_{name.upper()}")
        if env is not None:
            return env
        options = getattr(self, "build_options", None) or {}
        return options[name] if name in options else prefs[f"devices.wgpu.{name}"]

    def _backend_choice(self):
        choice = self._option("backend")
        if choice not in ("auto", "gpu", "cpu"):
            raise ValueError(f"BRIAN2WGPU_BACKEND must be auto, gpu or cpu, not {choice!r}")
        return choice

    def backend(self):
        """'gpu' or 'cpu', as chosen by preference/environment and the adapters present."""
        choice = self._backend_choice()
        if choice == "cpu":
            return "cpu"
        wanted = str(self._option("adapter"))
        wanted = wanted.strip()
        if self._adapters is None:
            self._adapters = _engine.list_adapters()
        adapters = select_adapters(self._adapters, wanted)
        _engine.set_adapter(wanted or None)
        if choice == "gpu" and not adapters:
            if wanted:
                raise RuntimeError(f"wgpu device: no adapter matches {wanted!r} (preference "
                                   "devices.wgpu.adapter or BRIAN2WGPU_ADAPTER); `python -m "
                                   "brian2wgpu` lists the adapters with their indices")
            raise RuntimeError("wgpu device: backend 'gpu' was requested but wgpu finds no "
                               "adapter; install a Vulkan driver (e.g. mesa-vulkan-drivers) "
                               "or use backend 'cpu'")
        from . import auto_backend

        picked = adapters[0] if choice == "gpu" else auto_backend(adapters)[1]
        if picked is not None:
            if self._backend != "gpu":
                a = picked
                logger.info(f"wgpu device: using {a['name']} ({a['device_type']}, {a['backend']})")
            self._backend = "gpu"
            return "gpu"
        if self._backend != "cpu":
            from . import auto_choice

            logger.info(f"wgpu device: backend 'auto' runs on {auto_choice(adapters)}")
        self._backend = "cpu"
        return "cpu"

    # -- the run ----------------------------------------------------------------------
    def network_run(self, net, duration, report=None, report_period=10 * second,
                    namespace=None, profile=None, level=0):
        from brian2.core.network import Network, TextReport
        from brian2.groups.group import Group
        from brian2.synapses.synapses import SynapticPathway

        duration = float(duration) * second
        all_objects = net.sorted_objects
        net._clocks = {obj.clock for obj in all_objects}
        t_start = net.t
        t_end = net.t + duration
        for clock in net._clocks:
            clock.set_interval(net.t, t_end)
        if namespace is None:
            namespace = get_local_namespace(level=level + 2)
        t0 = time.time()
        try:
            net.before_run(namespace)
        except BrianObjectException as exc:
            # Brian2 wraps errors from preparing an object; a feature this device lacks
            # stays a NotImplementedError for the user.
            cause = exc.__cause__
            if isinstance(cause, NotImplementedError) and str(cause).startswith("wgpu device"):
                raise NotImplementedError(str(cause)) from exc
            raise
        if len(all_objects) == 0:
            return
        backend = self.backend()
        _engine.set_gpu_timeout(float(prefs["devices.wgpu.gpu_timeout"]))
        _engine.set_dump_shaders(
            os.environ.get("BRIAN2WGPU_DUMP_SHADERS", prefs["devices.wgpu.dump_shaders"]) or None)
        state = _RunState(self, backend)
        engine = _engine.Engine()
        engine.seed = self._seed()
        engine.gpu_step_seconds = self._gpu_step_seconds.get(net, 0.0)
        clocks = sorted(net._clocks, key=lambda c: c.name)
        clock_index = {c: i for i, c in enumerate(clocks)}
        items, post, callbacks = [], [], []
        names = []  # per item, the code object (or object) it runs: profiling names
        host_code = []  # code objects that run through Brian2's numpy code on the host
        for obj in all_objects:
            if not obj.active:
                continue
            ci = clock_index[obj.clock]
            if type(obj).run is not BrianObject.run:
                items.append((ci, _engine.Op.python(len(callbacks))))
                names.append(obj.name)
                callbacks.append(obj.run)
                continue
            pathway_functions = sorted({
                f for co in obj._code_objects
                if co is not None and co.template_name == "synapses"
                for f in python_functions(co.variables, backend)})
            for codeobj in obj._code_objects:
                if codeobj is None:
                    continue
                pyfuncs = python_functions(codeobj.variables, backend)
                if codeobj.template_name in PATHWAY_TEMPLATES:
                    # A pathway runs on the host as a whole (Brian2's push into its own
                    # spike queue, then its numpy code) when its code calls one.
                    pyfuncs = pathway_functions
                if pyfuncs and codeobj.template_name in PYTHON_FUNCTION_TEMPLATES:
                    # numpy semantics: Brian2's numpy code object calls the function with
                    # whole arrays, every step.
                    logger.warn(f"wgpu device: '{codeobj.name}' calls the Python function(s) "
                                f"{', '.join(repr(f) for f in pyfuncs)} (no 'wgpu' "
                                "implementation, or the interpreter, which runs no WGSL): it "
                                "runs on the host through Brian2's numpy code every step "
                                "(slower; on the gpu backend every step copies the arrays both "
                                "ways)", "python_function", once=True)
                    op, finish = HOST, None
                    if codeobj.template_name == "synapses_push_spikes":
                        # Brian2's push reads its queue's per-source synapse lists.
                        SynapticPathway.initialise_queue(obj)
                else:
                    op, finish = self._translate(engine, state, obj, codeobj)
                if op is HOST:
                    # Brian2's own numpy code object, run on the host arrays each step.
                    if not pyfuncs:
                        logger.warn(f"wgpu device: the '{codeobj.template_name}' template of "
                                    f"'{obj.name}' has no engine kernel yet; it runs on the "
                                    "host through Brian2's numpy code every step (slow, and on "
                                    "the gpu backend every step copies the arrays both ways)",
                                    "host_template", once=True)
                    op = _engine.Op.python(len(callbacks))
                    callbacks.append(codeobj)
                    host_code.append(codeobj.name)
                items.append((ci, op))
                names.append(codeobj.name)
                if finish is not None:
                    post.append(finish)
        engine.set_schedule(items)
        if profile is None:
            profile = getattr(self, "build_options", {}).get("profile", False)
        engine.set_profiling(bool(profile))
        # Random streams count steps from this run's start, keyed by a seed drawn from
        # numpy's generator: get/set_random_state and seed() then replay runs exactly.
        engine.set_step_base([int(c.variables["timestep"].get_value()[0]) for c in clocks])
        clock_specs = [(_clock_dt(c), int(c.variables["timestep"].get_value()[0]), int(c._i_end),
                        state.array(c.variables["t"], "t"),
                        state.array(c.variables["timestep"], "timestep"), _clock_times(c))
                       for c in clocks]
        compile_time = time.time() - t0
        logger.debug(f"wgpu: prepared {len(items)} scheduled operations on backend '{backend}' "
                     f"in {compile_time * 1000:.1f} ms", "run")

        start_time = time.time()
        if report is not None:
            report_period = float(report_period)
            if report in ("text", "stdout"):
                report_callback = TextReport(sys.stdout)
            elif report == "stderr":
                report_callback = TextReport(sys.stderr)
            elif isinstance(report, str):
                raise ValueError(f'Do not know how to handle report argument "{report}".')
            elif callable(report):
                report_callback = report
            else:
                raise TypeError("Do not know how to handle report argument, it has to be one of "
                                "'text', 'stdout', 'stderr', or a callable function/object, but "
                                f"it is of type {type(report)}")
            report_callback(0 * second, 0.0, t_start, duration)
        next_report = [start_time + (report_period if report is not None else 0)]
        regular = [c for c in clocks if _clock_times(c) is None] or clocks
        lead = min(regular, key=_clock_dt)
        i_start = int(lead.variables["timestep"].get_value()[0])
        i_end = int(lead._i_end)

        def should_stop(timestep):
            now = time.time()
            if report is not None and now > next_report[0]:
                frac = (timestep - i_start) / max(1, i_end - i_start)
                report_callback((now - start_time) * second, frac, t_start, duration)
                next_report[0] = now + report_period
            if net._stopped or Network._globally_stopped:
                return True
            if self._maximum_run_time is not None and now - start_time > float(self._maximum_run_time):
                net._stopped = True
                return True
            return False

        check_every = int(prefs["devices.wgpu.steps_per_batch"]) or 100
        steps_hint = max(1, i_end - i_start)
        engine.set_array_names(state.names)
        # Brian2 checks the integrated variables after each run: the engine does it on the
        # GPU for those it leaves there.
        engine.set_checked_arrays(sorted(
            state.ids[id(var)] for obj in all_objects for _, var in _integrated(obj)
            if id(var) in state.ids))
        # A run reuses what earlier gpu runs left on the GPU for its own arrays (on the gpu
        # backend); everything else left there comes back now, before its buffer may go.
        for var in list(self._on_gpu.keys()):
            if backend != "gpu" or id(var) not in state.ids:
                self._sync(var)
        Network._globally_running = True
        completed = False
        try:
            while True:
                status, cb, timesteps = engine.run(state.arrays, clock_specs, should_stop,
                                                   check_every, backend, steps_hint,
                                                   state.versions)
                clock_specs = [(s[0], ts, *s[2:]) for s, ts in zip(clock_specs, timesteps)]
                if status == "callback":
                    # The engine brought every array of the run back for the callback.
                    self._forget_on_gpu(state)
                    callbacks[cb]()
                    if net._stopped or Network._globally_stopped:
                        # A network_operation called stop(): end after this step.
                        engine.run(state.arrays, [(s[0], s[1], s[1] + 1, *s[3:]) for s in clock_specs],
                                   lambda ts: False, 0, backend, 1, state.versions)
                        break
                    continue
                break
            completed = True
            for i in engine.gpu_left_on_gpu():
                var = state.vars[i]
                if var is None:
                    continue
                self._on_gpu[var] = True
                if self._versions.get(var) != state.versions[i]:
                    # A callback of this run reached the host copy: the kept buffer is
                    # filed under the version the run started with, so the next run
                    # would not reuse it. Bring it back now.
                    self._sync(var)
        except Exception as exc:
            # As under Brian2's runtime targets, the network stays where the run stopped:
            # its time follows the clocks (their arrays are the host state's), and the
            # next run() continues from there.
            net.t_ = min(float(np.asarray(self.peek_value(c.variables["t"])).reshape(-1)[0])
                         for c in clocks)
            exc.add_note(f"wgpu device: the run stopped at t = {net.t!r}; the network's "
                         "state and clocks are those of that time step (in it, the objects "
                         "scheduled before the failing one have run), and the next run() "
                         "continues from there")
            raise
        finally:
            Network._globally_running = False
            self._gpu_step_seconds[net] = engine.gpu_step_seconds
            if not completed:
                # The engine brought back what it could (the state of a step boundary).
                self._forget_on_gpu(state)
            for finish in post:
                if completed:
                    finish(engine)
                    continue
                # After a failed run the user must see the run's error, not a second one
                # from collecting its results.
                try:
                    finish(engine)
                except Exception as exc:
                    logger.warn(f"wgpu device: collecting results after the failed run also "
                                f"failed ({type(exc).__name__}: {exc}); the run's own error "
                                "follows", "finish")
        end_time = time.time()
        if net._stopped or Network._globally_stopped:
            net.t_ = min(c.t_ for c in clocks)
        else:
            net.t_ = float(t_end)
        if profile:
            # Brian2's runtime profile: seconds per code object (on the gpu backend each
            # item is then submitted and waited for alone).
            totals = {}
            for name, seconds in zip(names, engine.profiling()):
                totals[name] = totals.get(name, 0.0) + seconds
            net._profiling_info = [(name, seconds * second) for name, seconds in totals.items()]
        self._last_run_time = end_time - start_time
        self._last_run_completed_fraction = (
            float((net.t - t_start) / duration) if float(duration) > 0 else 1.0)
        self.last_run_info = {"backend": backend, "compile_time": compile_time,
                              "run_time": self._last_run_time, "host_code_objects": host_code}
        if backend == "gpu":
            self.last_run_info.update(_dispatch_info(engine, items, names, clocks))
            if profile:
                _log_dispatches(self.last_run_info)
        invalid = {id(state.vars[i]) for i in engine.gpu_invalid_arrays()}
        for obj in all_objects:
            if isinstance(obj, Group):
                self._check_for_invalid_states(obj, invalid)
        if report is not None:
            report_callback((end_time - start_time) * second,
                            self._last_run_completed_fraction, t_start, duration)
        net.after_run()

    def _forget_on_gpu(self, state):
        for var in state.vars:
            if var is not None:
                self._on_gpu.pop(var, None)

    def _check_for_invalid_states(self, group, invalid=()):
        """Brian2's check of the integrated variables (NaN or huge values), reading the
        arrays without marking them as changed (``Group._check_for_invalid_states`` goes
        through ``get_value``). Arrays a gpu run left on the GPU were checked there
        (``invalid``: the ids of the variables it found invalid) and stay there."""
        for name, var in _integrated(group):
            if var in self._on_gpu:
                values = np.array([np.nan]) if id(var) in invalid else np.zeros(0)
            else:
                values = self._host_array(var)
            group._check_for_invalid_values(name, values)

    def _seed(self):
        # Brian2's seed() seeds numpy's global generator; draw the engine key from it so
        # that seed(...) makes runs reproducible.
        return int(np.random.randint(0, 2**31 - 1)) << 32 | int(np.random.randint(0, 2**31 - 1))

    # -- per-template lowering ----------------------------------------------------------
    def _kernel(self, engine, state, codeobj, extra_vars=(), records=None, append_code="",
                guarded=None, code=None, variables=None, vector_renames=None,
                extra_read=()):
        """Compile the code object's abstract code as an engine kernel; returns its id.

        ``append_code`` is template work expressed as statements; ``guarded`` maps variable
        names to the boolean variable that guards their writes; ``code`` and ``variables``
        replace the code object's (a kernel derived from it, e.g. GSL's derivatives),
        ``vector_renames`` renames in its vector statements (see ``kernel_spec``)."""
        abstract = codeobj.wgpu_abstract_code if code is None else code
        V = codeobj.variables if variables is None else variables
        if isinstance(abstract, dict):
            blocks = {k: v for k, v in abstract.items() if v and v.strip()}
            if set(blocks) - {None}:
                raise _unsupported(f"code blocks {sorted(k for k in blocks if k)}", codeobj.name)
            code = blocks.get(None, "")
        else:
            code = abstract or ""
        if append_code:
            code = code + "\n" + append_code
        float_dtype = prefs.core.default_float_dtype
        tables = {}
        spec = kernel_spec(codeobj.name, codeobj.template_name, code, V,
                           codeobj.variable_indices, float_dtype=float_dtype,
                           owner_name=codeobj.owner.name,
                           override_conditional_write=codeobj.wgpu_override_conditional_write,
                           clock_dt=_clock_dt(codeobj.owner.clock),
                           vector_renames=vector_renames, extra_read=extra_read,
                           extra_variables=extra_vars, guarded=guarded, tables=tables)
        for tname, values in tables.items():
            state.extra[tname] = state.table(values)
        bindings = []
        for name in _engine.Engine.kernel_variables(spec):
            if not name:
                bindings.append(("none", 0))
            elif records is not None and name in records:
                bindings.append(("record", records[name]))
            elif name in state.extra:
                bindings.append(("array", state.extra[name]))
            else:
                bindings.append(("array", state.array(V[name], name)))
        return engine.add_kernel(spec, bindings)

    def _translate(self, engine, state, obj, codeobj):
        tmpl = codeobj.template_name
        kw = codeobj.wgpu_template_kwds
        state.extra = {}
        V = codeobj.variables
        if tmpl == "spatialstateupdate" and CABLE_IN_ENGINE:
            return self._cable(engine, state, codeobj), None
        if tmpl not in PER_STEP_TEMPLATES:
            if tmpl in HOST_TEMPLATES:
                return HOST, None
            raise _unsupported(f"the '{tmpl}' template", obj.name)
        if tmpl == "stateupdate" and getattr(obj, "wgpu_gsl", False):
            return gsl.lower(self, engine, state, obj, codeobj), None
        if tmpl == "stateupdate":
            n = scalar_int(V["N"].get_value())
            return _engine.Op.elementwise(self._kernel(engine, state, codeobj), n), None
        if tmpl == "threshold":
            n = scalar_int(V["N"].get_value())
            cond = np.zeros(n, dtype=bool)
            state.extra = {"_cond": state.scratch(cond, f"the threshold flags of '{obj.name}'")}
            # Brian2's threshold template marks spiking neurons refractory; as statements
            # guarded by the condition, both backends do it inside the kernel.
            refractory = kw.get("_uses_refractory", False)
            k = self._kernel(engine, state, codeobj,
                             extra_vars=[_engine.Variable("_cond", "bool")],
                             append_code="not_refractory = False\nlastspike = t" if refractory else "",
                             guarded={"not_refractory": "_cond", "lastspike": "_cond"} if refractory else None)
            space = state.array(kw["eventspace_variable"], "eventspace")
            return _engine.Op.threshold(k, n, state.extra["_cond"], space), None
        if tmpl == "reset":
            space = state.array(kw["eventspace_variable"], "eventspace")
            return _engine.Op.reset(self._kernel(engine, state, codeobj), space), None
        if tmpl == "synapses_push_spikes":
            return self._push_spikes(engine, state, obj, codeobj)
        if tmpl == "synapses":
            queue = state.queues.get(id(obj))
            if queue is None:
                raise _unsupported("a pathway without its push_spikes code object", obj.name)
            return _engine.Op.synapses(self._kernel(engine, state, codeobj), queue), None
        if tmpl == "summed_variable":
            return self._summed_variable(engine, state, obj, codeobj)
        if tmpl == "spikegenerator":
            return _engine.Op.spikegenerator(
                state.array(V["_spikespace"], "_spikespace"),
                state.array(V["neuron_index"], "neuron_index"),
                state.array(V["_timebins"], "_timebins"),
                state.array(V["_lastindex"], "_lastindex"),
                scalar_int(V["_period_bins"].get_value())), None
        if tmpl == "spikemonitor":
            return self._spikemonitor(engine, state, obj, codeobj)
        if tmpl == "statemonitor":
            return self._statemonitor(engine, state, obj, codeobj)
        if tmpl == "ratemonitor":
            return self._ratemonitor(engine, state, obj, codeobj)
        raise _unsupported(f"the '{tmpl}' template", obj.name)

    def _cable(self, engine, state, codeobj):
        """SpatialNeuron's step: the kernel computes each compartment's total conductance
        and current (the template's abstract code) and keeps v; the engine then solves the
        cable equation. Brian2's numpy code object prepared the morphology's coefficients
        in its before_run block, on the host arrays the engine reads."""
        V = codeobj.variables
        kernel = self._kernel(engine, state, codeobj,
                              append_code="_gtot_all = _gtot\n_I0_all = _I0\n_v_previous = v")
        arrays = {name: state.array(V[name], name) for name in CABLE_ARRAYS}
        return _engine.Op.cable(kernel, scalar_int(V["N"].get_value()),
                                float(np.asarray(V["dt"].get_value()).reshape(-1)[0]), arrays)

    def _queue_inputs(self, pathway):
        """What a pathway's queue layout is built from, as the engine takes it."""
        delays = np.ascontiguousarray(
            np.asarray(self.peek_value(pathway._delays), dtype=np.float64).reshape(-1))
        sources = np.ascontiguousarray(self.peek_value(pathway.synapse_sources),
                                       dtype=np.int32)
        return (int(pathway.source.start), int(pathway.source.stop), sources, delays,
                float(pathway.source.clock.dt_))

    def _cached_layout(self, pathway):
        """(fingerprint, inputs, layout): the layout kept from an earlier run where the
        pathway's synapses, delays and dt still give its fingerprint, else None."""
        inputs = self._queue_inputs(pathway)
        fingerprint = _engine.QueueLayout.fingerprint(*inputs)
        cached = self._queue_layouts.get(pathway)
        layout = cached[1] if cached is not None and cached[0] == fingerprint else None
        return fingerprint, inputs, layout

    def _initialise_queue(self, pathway):
        """Brian2's ``SynapticPathway.initialise_queue`` (called by the push code object
        before every run), skipped where the engine's layout of the last run still holds:
        Brian2's queue then holds what that run left in it, prepared for the same
        synapses, delays and dt (its ``prepare`` took 0.16 s per run at 10^8 synapses)."""
        from brian2.synapses.synapses import SynapticPathway

        # Looked up once per run: _push_spikes takes it from here.
        pathway._wgpu_cached_layout = self._cached_layout(pathway)
        if pathway._wgpu_cached_layout[2] is not None:
            pathway.eventspace = self.peek_value(
                pathway.source.variables[pathway.eventspace_name])
            return
        # Brian2's checks, and its queue sized and its queued spikes moved for a new dt,
        # without the per-source synapse lists that only its own push reads (network_run
        # builds them where the pathway runs on the host).
        queue = pathway.queue
        pathway.queue = _SizingQueue(queue)
        try:
            SynapticPathway.initialise_queue(pathway)
        finally:
            pathway.queue = queue

    def _push_spikes(self, engine, state, pathway, codeobj):
        """The pathway's spike queue moves into the engine for the run and back after it,
        so queued spikes survive between runs and in store()/restore()."""
        queue = pathway.queue
        offset, slots = queue._full_state()
        found = pathway.__dict__.pop("_wgpu_cached_layout", None) or self._cached_layout(pathway)
        fingerprint, inputs, layout = found
        if layout is None:
            try:
                layout = _engine.QueueLayout(*inputs)
            except ValueError as exc:
                raise ValueError(f"Synaptic pathway '{pathway.name}': {exc}") from None
            self._queue_layouts[pathway] = (fingerprint, layout)
        qid = engine.add_queue(layout, [np.asarray(s, dtype=np.int32).tolist() for s in slots],
                               int(offset))
        state.queues[id(pathway)] = qid

        def finish(engine):
            queue._restore_from_full_state(engine.queue_state(qid))
        space = state.array(codeobj.wgpu_template_kwds["eventspace_variable"], "eventspace")
        return _engine.Op.push_spikes(qid, space), finish

    def _summed_variable(self, engine, state, obj, codeobj):
        V, kw = codeobj.variables, codeobj.wgpu_template_kwds
        n = scalar_int(V["N"].get_value())
        target = kw["_target_var"]
        start, stop = int(kw["_target_start"]), int(kw["_target_stop"])
        if stop < 0:
            stop = scalar_int(V[kw["_target_size_name"]].get_value())
        dtype = np.dtype(target.dtype)
        values = np.zeros(n, dtype=dtype)
        state.extra = {"_synaptic_var": state.scratch(values, f"the summed values of '{obj.name}'")}
        k = self._kernel(engine, state, codeobj,
                         extra_vars=[_engine.Variable("_synaptic_var", _dtype_name(dtype))])
        return _engine.Op.summed_variable(
            k, n, state.extra["_synaptic_var"],
            state.array(kw["_index_var"], "summed variable index"),
            state.array(target, "summed variable target"), start, stop), None

    def _spikemonitor(self, engine, state, obj, codeobj):
        V, kw = codeobj.variables, codeobj.wgpu_template_kwds
        space_var = kw["eventspace_variable"]
        source_n = int(V["_source_N"].get_value())
        start, stop = int(V["_source_start"].get_value()), int(V["_source_stop"].get_value())
        records, extra = {}, []
        for name, var in kw["record_variables"].items():
            dtype = np.dtype(var.dtype)
            records[f"_to_record_{name}"] = engine.add_record(_dtype_name(dtype))
            extra.append(_engine.Variable(f"_to_record_{name}", _dtype_name(dtype), index="_pos"))
        k = self._kernel(engine, state, codeobj, extra_vars=extra, records=records)
        count = state.array(obj.variables["count"], "count")
        total = state.array(obj.variables["N"], "N")
        n_before = int(obj.variables["N"].get_value()[0]) if np.ndim(obj.variables["N"].get_value()) else int(obj.variables["N"].get_value())

        def finish(engine):
            new_total = int(np.asarray(self.get_value(obj.variables["N"])).reshape(-1)[0])
            data = {name: engine.take_record(rid) for name, rid in records.items()}
            obj.resize(new_total)
            for name in kw["record_variables"]:
                arr = self.get_value(kw["record_variables"][name], access_data=True)
                arr[n_before:new_total] = data[f"_to_record_{name}"]
        op = _engine.Op.spikemonitor(k, state.array(space_var, "eventspace"), source_n, start,
                                     stop, count, total, list(records.values()))
        return op, finish

    def _statemonitor(self, engine, state, obj, codeobj):
        V, kw = codeobj.variables, codeobj.wgpu_template_kwds
        records, extra = {}, []
        for name, var in kw["_recorded_variables"].items():
            dtype = np.dtype(var.dtype)
            records[f"_to_record_{name}"] = engine.add_record(_dtype_name(dtype))
            extra.append(_engine.Variable(f"_to_record_{name}", _dtype_name(dtype), index="_pos"))
        k = self._kernel(engine, state, codeobj, extra_vars=extra, records=records)
        indices = np.asarray(self.get_value(obj.variables["_indices"]))
        t_record = engine.add_record("float64")
        total = state.array(obj.variables["N"], "N")
        n_before = int(np.asarray(self.get_value(obj.variables["N"])).reshape(-1)[0])

        def finish(engine):
            new_total = int(np.asarray(self.get_value(obj.variables["N"])).reshape(-1)[0])
            t = engine.take_record(t_record)
            data = {name: engine.take_record(rid) for name, rid in records.items()}
            obj.resize(new_total)
            self.get_value(obj.variables["t"], access_data=True)[n_before:new_total] = t
            for name in kw["_recorded_variables"]:
                rec = data[f"_to_record_{name}"].reshape(new_total - n_before, len(indices))
                arr = self.get_value(kw["_recorded_variables"][name], access_data=True)
                arr[n_before:new_total, :] = rec
        op = _engine.Op.statemonitor(k, state.array(obj.variables["_indices"], "_indices"),
                                     int(len(indices)), state.array(obj.clock.variables["t"], "t"),
                                     t_record, list(records.values()), total)
        return op, finish

    def _ratemonitor(self, engine, state, obj, codeobj):
        V = codeobj.variables
        source = obj.source
        space_var = source.variables["_spikespace"]
        source_n = len(space_var.get_value()) - 1
        start, stop = int(V["_source_start"].get_value()), int(V["_source_stop"].get_value())
        t_record, rate_record = engine.add_record("float64"), engine.add_record("float64")
        total = state.array(obj.variables["N"], "N")
        n_before = int(np.asarray(self.get_value(obj.variables["N"])).reshape(-1)[0])

        def finish(engine):
            new_total = int(np.asarray(self.get_value(obj.variables["N"])).reshape(-1)[0])
            t, rate = engine.take_record(t_record), engine.take_record(rate_record)
            obj.resize(new_total)
            self.get_value(obj.variables["t"], access_data=True)[n_before:new_total] = t
            self.get_value(obj.variables["rate"], access_data=True)[n_before:new_total] = rate
        op = _engine.Op.ratemonitor(state.array(space_var, "_spikespace"), source_n, start, stop,
                                    state.array(obj.clock.variables["t"], "t"),
                                    float(obj.clock.dt_), t_record, rate_record, total)
        return op, finish


def _integrated(obj):
    """(name, variable) of the array variables of ``obj``'s differential equations (what
    Brian2 checks for invalid values after a run)."""
    from brian2.equations.equations import Equations

    equations = getattr(obj, "equations", None)
    if not isinstance(equations, Equations):
        return []
    return [(name, obj.variables[name]) for name in equations.diff_eq_names
            if isinstance(obj.variables[name], ArrayVariable)]


def _dtype_name(dtype):
    from .codeobject import _dtype_name as name
    return name(dtype)


wgpu_device = WgpuDevice()
all_devices["wgpu"] = wgpu_device
