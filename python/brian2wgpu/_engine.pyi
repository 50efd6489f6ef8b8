"""Typed stub of the Rust extension module ``brian2wgpu._engine``."""

from typing import Any

import numpy as np

__version__: str

class CompiledKernel:
    """A code object lowered for both backends."""

    wgsl: str
    """The WGSL module (validated by naga)."""
    lower_seconds: float
    """Seconds spent in parse → IR → WGSL → naga validation."""
    @property
    def variables(self) -> list[str]: ...
    def run_cpu(self, arrays: dict[str, np.ndarray], n: int, seed: int = 0, step: int = 0) -> None:
        """Run on the interpreter over ``n`` elements, updating ``arrays`` in place."""

def compile(spec: dict[str, Any], wgsl: bool = True) -> CompiledKernel:
    """Lower a kernel spec (see ``brian2wgpu.codeobject.kernel_spec``) for the interpreter
    and, unless ``wgsl=False``, to naga-validated WGSL."""

def list_adapters() -> list[dict[str, Any]]:
    """Every adapter wgpu sees, best first."""

def create_pipeline(kernel: CompiledKernel) -> float:
    """Create the kernel's compute pipeline on the default adapter; returns seconds taken."""
