"""brian2wgpu: Brian2 simulations as WebGPU compute shaders, with a CPU interpreter fallback.

This release provides the compiler core: Brian2 abstract code → typed IR → WGSL (validated
by naga, run through wgpu) and a multi-threaded interpreter. The ``wgpu`` device that runs
whole networks builds on it.
"""

import atexit
import os
import shutil
import tempfile


def _private_runtime_dir():
    """On a headless machine (server, container, CI) the Vulkan stack prints "error:
    XDG_RUNTIME_DIR is invalid or not set in the environment." while it enumerates
    adapters (Mesa's window-system code asks libwayland for a display), which users read as
    a failure. Where the variable is unset or names no directory, give this process (and
    its children) a private empty one, removed at exit. Real errors still surface as
    exceptions and in Brian2's log."""
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and os.path.isdir(current):
        return
    path = tempfile.mkdtemp(prefix="brian2wgpu-runtime-")  # mode 0700, as the spec wants
    os.environ["XDG_RUNTIME_DIR"] = path
    atexit.register(shutil.rmtree, path, ignore_errors=True)


_private_runtime_dir()


def _import_brian2_in_any_thread():
    """``import brian2`` installs a SIGINT handler, which Python allows only in a process's
    main thread; a Dask worker runs tasks in other threads, where the import then fails.
    There, import Brian2 without the handler (Ctrl-C goes to the main thread anyway)."""
    import sys
    import threading

    if "brian2" in sys.modules or threading.current_thread() is threading.main_thread():
        return
    import signal
    original = signal.signal

    def main_thread_only(signum, handler):
        if threading.current_thread() is threading.main_thread():
            return original(signum, handler)
        return signal.getsignal(signum)
    signal.signal = main_thread_only
    try:
        import brian2  # noqa: F401
    finally:
        signal.signal = original


_import_brian2_in_any_thread()

from ._engine import (CompiledKernel, __version__, compile, create_pipeline,  # noqa: E402
                      list_adapters, wgpu_version)
from .device import WgpuDevice, wgpu_device  # noqa: E402

__all__ = ["CompiledKernel", "WgpuDevice", "__version__", "auto_backend", "auto_choice",
           "compile", "create_pipeline", "list_adapters", "wgpu_device", "wgpu_version"]


def auto_backend(adapters=None):
    """What backend 'auto' takes: ('gpu', adapter dict) or ('cpu', None).

    Only a hardware adapter (discrete, integrated or virtual GPU): a software rasteriser
    such as lavapipe runs the same shaders on the CPU cores, slower than the interpreter
    on every model measured (benches/hh_uncoupled.py, Brette 2004: 9.2 s vs 0.62 s).
    Backend 'gpu' still uses one on request. And only one with float64 and 64-bit
    integers: Brian2's time steps are int64 in every model, and its models are float64
    by default. On a GPU without float64 (Apple's, Intel Arc, most mobile ones) backend
    'gpu' runs float32 models, emulating the float64 that Brian2's t, dt and lastspike
    bring into them; 'auto', which does not know the model, does not pick one."""
    adapters = list_adapters() if adapters is None else adapters
    hardware = [a for a in _hardware(adapters) if a.get("f64") and a.get("int64")]
    if hardware:
        return "gpu", hardware[0]
    return "cpu", None


def _hardware(adapters):
    return [a for a in adapters if a["device_type"] != "Cpu"]


def auto_choice(adapters=None):
    """One sentence: what backend 'auto' takes and why."""
    adapters = list_adapters() if adapters is None else adapters
    backend, adapter = auto_backend(adapters)
    if backend == "gpu":
        others = len(adapters) - 1
        return (f"gpu on '{adapter['name']}' ({adapter['device_type']} GPU, "
                f"{adapter['backend']}, {'float64' if adapter['f64'] else 'float32 only'})"
                + (f"; {others} other adapter(s) with prefs.devices.wgpu.adapter" if others
                   else ""))
    lacking = _hardware(adapters)
    if lacking:
        a = lacking[0]
        if not a.get("int64"):
            return (f"cpu (the interpreter): the hardware adapter '{a['name']}' has no "
                    "64-bit integers, which the GPU code of every Brian2 model needs (its "
                    "time steps are int64); backend 'gpu' would stop each run with that "
                    "error")
        return (f"cpu (the interpreter): the hardware adapter '{a['name']}' has no "
                "float64, which float64 models (Brian2's default) need; backend 'gpu' runs "
                "float32 models there (prefs.core.default_float_dtype = float32), "
                "emulating the float64 of t, dt and lastspike")
    software = [a for a in adapters if a["device_type"] == "Cpu"]
    if software:
        return (f"cpu (the interpreter): no hardware adapter; the software one "
                f"('{software[0]['name']}') runs the same shaders on the CPU cores, slower "
                f"than the interpreter, and is used with backend 'gpu'")
    return ("cpu (the interpreter): wgpu finds no adapter (for GPU code without a GPU, "
            "install a Vulkan driver such as mesa-vulkan-drivers)")
