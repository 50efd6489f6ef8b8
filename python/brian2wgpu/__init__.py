"""brian2wgpu: Brian2 simulations as WebGPU compute shaders, with a CPU interpreter fallback.

This release provides the compiler core: Brian2 abstract code → typed IR → WGSL (validated
by naga, run through wgpu) and a multi-threaded interpreter. The ``wgpu`` device that runs
whole networks builds on it.
"""

from ._engine import CompiledKernel, __version__, compile, create_pipeline, list_adapters
from .device import WgpuDevice, wgpu_device

__all__ = ["CompiledKernel", "WgpuDevice", "__version__", "auto_backend", "compile",
           "create_pipeline", "list_adapters", "wgpu_device"]


def auto_backend(adapters=None):
    """What backend 'auto' takes: ('gpu', adapter dict) or ('cpu', None).

    Only a hardware adapter (discrete, integrated or virtual GPU): a software rasteriser
    such as lavapipe runs the same shaders on the CPU cores, slower than the interpreter
    on every model measured (benches/hh_uncoupled.py, Brette 2004: 9.2 s vs 0.62 s).
    Backend 'gpu' still uses one on request."""
    adapters = list_adapters() if adapters is None else adapters
    hardware = [a for a in adapters if a["device_type"] != "Cpu"]
    if hardware:
        return "gpu", hardware[0]
    return "cpu", None
