"""brian2wgpu: Brian2 simulations as WebGPU compute shaders, with a CPU interpreter fallback.

This release provides the compiler core: Brian2 abstract code → typed IR → WGSL (validated
by naga, run through wgpu) and a multi-threaded interpreter. The ``wgpu`` device that runs
whole networks builds on it.
"""

from ._engine import CompiledKernel, __version__, compile, create_pipeline, list_adapters
from .device import WgpuDevice, wgpu_device

__all__ = ["CompiledKernel", "WgpuDevice", "__version__", "auto_backend", "compile",
           "create_pipeline", "list_adapters", "wgpu_device"]


def auto_backend():
    """What backend 'auto' takes: ('gpu', adapter dict) or ('cpu', None)."""
    adapters = list_adapters()
    if adapters:
        return "gpu", adapters[0]
    return "cpu", None
