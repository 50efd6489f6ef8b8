"""A disk cache for Brian2's state-updater code (the abstract code of a NeuronGroup's or
Synapses' integration step).

Brian2 derives that code with sympy every time a script runs: for the `exact` integrator of
CUBA's three coupled linear equations that is seconds (a Jordan form with numeric zero
tests), more than the whole simulation. The result depends only on the equations, the
integration method and its options, and the cache identity of the variables involved
(Brian2's own in-memory cache, `brian2.utils.caching`, keys on the same things), so it is
stored on disk under a hash of those, Brian2's and sympy's versions included.

Only active while the `wgpu` device is the current device (which also refuses state
updaters that return a code-object factory instead of code, such as GSL, with a
NotImplementedError); only for methods named by string
whose registered state updater is one of Brian2's own classes; only for plain-string
results (GSL returns a code-object factory). Anything without a stable description (an
object whose repr is an address, for instance) is simply not cached.

Preference ``devices.wgpu.integrator_cache``: the directory ('' turns the cache off). The
environment variable ``BRIAN2WGPU_INTEGRATOR_CACHE`` overrides it.
"""

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping

import brian2
import sympy
from brian2.core.functions import DEFAULT_FUNCTIONS
from brian2.core.preferences import prefs
from brian2.devices.device import get_device
from brian2.stateupdaters.base import StateUpdateMethod, UnsupportedEquationsException
from brian2.utils.logger import get_logger

from ._engine import __version__

logger = get_logger("brian2.devices.wgpu.integrator_cache")

# Bumped when the stored format or the key changes.
_FORMAT = 1
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")


class _NoStableKey(Exception):
    pass


def cache_home(name):
    """The default directory of the device's disk cache `name` (under XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "brian2wgpu", name)


def configured_directory(env_var, preference):
    """A disk cache's directory in force: the environment variable, else the preference;
    None when the cache is off ('')."""
    env = os.environ.get(env_var)
    where = env if env is not None else prefs[preference]
    if where is None or where == "":
        return None
    return os.path.expanduser(where)


def default_directory():
    return cache_home("integrators")


def directory():
    """The cache directory in force, or None when the cache is off."""
    return configured_directory("BRIAN2WGPU_INTEGRATOR_CACHE", "devices.wgpu.integrator_cache")


def _canonical(obj):
    """A deterministic, process-independent description of `obj` for hashing (sets and
    dicts sorted, objects through Brian2's cache identity `_state_tuple`)."""
    if hasattr(obj, "_state_tuple"):
        return [type(obj).__module__ + "." + type(obj).__qualname__,
                _canonical(obj._state_tuple)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return repr(obj)
    if isinstance(obj, Mapping):
        items = [[_canonical(k), _canonical(v)] for k, v in obj.items()]
        return ["dict", sorted(items, key=json.dumps)]
    if isinstance(obj, (set, frozenset)):
        return ["set", sorted((_canonical(e) for e in obj), key=json.dumps)]
    if isinstance(obj, (list, tuple)):
        return [type(obj).__name__, [_canonical(e) for e in obj]]
    for name, builtin in DEFAULT_FUNCTIONS.items():
        if obj is builtin:
            return ["builtin", name]
    if hasattr(obj, "dim") and getattr(obj, "shape", None) == ():
        return ["quantity", repr(float(obj)), repr(obj.dim)]
    text = type(obj).__module__ + "." + type(obj).__qualname__ + ":" + repr(obj)
    if _ADDRESS.search(text) or type(obj).__repr__ is object.__repr__:
        raise _NoStableKey(text)
    return text


def _key(equations, variables, method, method_options):
    updater = StateUpdateMethod.stateupdaters.get(method)
    cls = type(updater)
    if updater is None or not cls.__module__.startswith("brian2.stateupdaters"):
        raise _NoStableKey(f"state updater {method!r}")
    described = _canonical([_FORMAT, brian2.__version__, sympy.__version__, __version__,
                            cls.__module__ + "." + cls.__qualname__, method,
                            equations, variables, method_options])
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()


def _load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _store(path, entry):
    # Written to a temporary file and renamed: concurrent runs never read half an entry.
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entry, f)
        os.replace(tmp, path)
    except OSError as exc:
        logger.debug(f"could not write the integrator cache entry {path}: {exc}")


_original = StateUpdateMethod.apply_stateupdater


def _apply_stateupdater(equations, variables, method, method_options=None, group_name=None):
    from .device import WgpuDevice

    if not isinstance(get_device(), WgpuDevice):
        return _original(equations, variables, method, method_options=method_options,
                         group_name=group_name)
    code = _cached(equations, variables, method, method_options, group_name)
    if not isinstance(code, str):
        # GSL: a factory that hands the state updater a code-object class for the GSL
        # library; the engine integrates instead (src/runtime/gsl.rs).
        return GslOnDevice(code)
    return code


class GslOnDevice:
    """What Brian2's ``GSLContainer`` does to a state updater (the integrator, its
    options and the variables the derivatives need), without choosing a code-object class:
    Brian2 only offers one for Cython and C++ standalone, the engine integrates itself."""

    def __init__(self, container):
        self.container = container

    def __call__(self, updater):
        c = self.container
        updater._gsl_variable_flags = c.variable_flags
        updater.method_options = c.method_options
        updater.integrator = c.integrator
        updater.needed_variables = ["t", "dt"] + list(c.needed_variables)
        updater.wgpu_gsl = True
        return c.abstract_code


def _cached(equations, variables, method, method_options, group_name):
    where = directory()
    if where is None or not isinstance(method, str):
        # Lists of methods come back here one name at a time.
        return _original(equations, variables, method, method_options=method_options,
                         group_name=group_name)
    try:
        key = _key(equations, variables, method.lower(), method_options)
    except _NoStableKey as why:
        logger.diagnostic(f"state updater not cached ({why})")
        return _original(equations, variables, method, method_options=method_options,
                         group_name=group_name)
    path = os.path.join(where, key[:2], key + ".json")
    entry = _load(path)
    if entry is not None and "code" in entry:
        return entry["code"]
    if entry is not None and "unsupported" in entry:
        raise UnsupportedEquationsException(entry["unsupported"])
    try:
        code = _original(equations, variables, method, method_options=method_options,
                         group_name=group_name)
    except UnsupportedEquationsException as exc:
        _store(path, {"unsupported": str(exc)})
        raise
    if isinstance(code, str):
        _store(path, {"code": code})
    return code


def install():
    """Route Brian2's state-updater calls through the cache (idempotent)."""
    StateUpdateMethod.apply_stateupdater = staticmethod(_apply_stateupdater)
