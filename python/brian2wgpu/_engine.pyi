"""Typed stub of the Rust extension module ``brian2wgpu._engine``."""

from typing import Any, final

import numpy as np

__all__ = ["compile", "list_adapters", "create_pipeline", "set_adapter", "set_dump_shaders",
           "set_gpu_timeout", "current_adapter", "download_resident", "connect_generator",
           "copy_counting", "CompiledKernel", "CreatedPairs", "Engine", "Function", "KernelSpec",
           "Op", "QueueLayout", "Variable", "__version__", "wgpu_version"]

__version__: str
wgpu_version: str

@final
class CompiledKernel:
    """A code object lowered for both backends."""

    @property
    def wgsl(self) -> str:
        """The WGSL module (validated by naga)."""
    @property
    def lower_seconds(self) -> float:
        """Seconds spent in parse → IR → WGSL → naga validation."""
    @property
    def program_text(self) -> str:
        """The interpreter's program (prologue, body, epilogue), one instruction a line."""
    @property
    def variables(self) -> list[str]: ...
    def run_cpu(self, arrays: dict[str, np.ndarray], n: int, seed: int = 0, step: int = 0,
                list: np.ndarray | None = None) -> None:
        """Run on the interpreter over ``n`` elements (or the indices ``list``), updating
        ``arrays`` in place."""
    def run_gpu(self, arrays: dict[str, np.ndarray], n: int, seed: int = 0,
                step: int = 0) -> None:
        """Run once on the shared GPU context (upload, dispatch, read back)."""

@final
class Variable:
    """One kernel variable: an array indexed by ``index`` ("_idx": the element, "0": a
    scalar, or an index variable's name) or a constant (``value``); writes guarded by the
    boolean ``conditional_write`` where given."""
    def __new__(cls, name: str, dtype: str, index: str = "_idx",
                value: bool | int | float | None = None,
                conditional_write: str | None = None) -> Variable: ...
    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def index(self) -> str: ...
    @property
    def value(self) -> bool | int | float | None: ...
    @property
    def conditional_write(self) -> str | None: ...
    def guarded_by(self, flag: str | None = None) -> Variable:
        """This variable with its writes guarded by ``flag`` (None: unguarded)."""

@final
class Function:
    """A function a kernel calls beyond the builtins."""
    @staticmethod
    def binomial(name: str, n: int, p: float, exact: bool = False) -> Function: ...
    @staticmethod
    def timed_array(name: str, values: str, dt: float, k: int, rows: int,
                    cols: int) -> Function:
        """A TimedArray whose table is the kernel variable ``values``."""
    @staticmethod
    def user(name: str, args: list[str], ret: str, wgsl: str | None = None) -> Function: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...

@final
class KernelSpec:
    """One Brian2 code object as the engine compiles it (immutable)."""
    def __new__(cls, name: str, variables: list[Variable], vector_code: str = "",
                scalar_code: str = "", template: str = "", float: str = "float64",
                functions: list[Function] = ...) -> KernelSpec: ...
    @property
    def name(self) -> str: ...
    @property
    def template(self) -> str: ...
    @property
    def float(self) -> str: ...
    @property
    def variables(self) -> list[Variable]: ...
    @property
    def scalar_code(self) -> str: ...
    @property
    def vector_code(self) -> str: ...
    @property
    def functions(self) -> list[Function]: ...

@final
class Op:
    """One scheduled operation, built by the constructor of its template family."""
    @staticmethod
    def elementwise(kernel: int, n: int) -> Op: ...
    @staticmethod
    def threshold(kernel: int, n: int, cond: int, eventspace: int) -> Op: ...
    @staticmethod
    def reset(kernel: int, eventspace: int) -> Op: ...
    @staticmethod
    def spikemonitor(kernel: int, eventspace: int, source_n: int, start: int, stop: int,
                     count: int, total: int, records: list[int]) -> Op: ...
    @staticmethod
    def statemonitor(kernel: int, indices: int, n_indices: int, t: int, t_record: int,
                     records: list[int], total: int) -> Op: ...
    @staticmethod
    def ratemonitor(eventspace: int, source_n: int, start: int, stop: int, t: int, dt: float,
                    t_record: int, rate_record: int, total: int) -> Op: ...
    @staticmethod
    def push_spikes(queue: int, eventspace: int) -> Op: ...
    @staticmethod
    def synapses(kernel: int, queue: int) -> Op: ...
    @staticmethod
    def summed_variable(kernel: int, n: int, values: int, index: int, target: int,
                        start: int, stop: int) -> Op: ...
    @staticmethod
    def spikegenerator(eventspace: int, neuron_index: int, timebins: int, lastindex: int,
                       period: int) -> Op: ...
    @staticmethod
    def cable(kernel: int, n: int, dt: float, arrays: dict[str, int]) -> Op: ...
    @staticmethod
    def integrate(kernel: int, n: int, dt: float, method: str, adaptive: bool,
                  max_steps: int, scale: list[float], state: list[int], names: list[str],
                  stage: list[int], deriv: list[int], time: int, t: int, owner: str,
                  pre: int | None = None, last_timestep: int | None = None,
                  failed_steps: int | None = None, step_count: int | None = None) -> Op: ...
    @staticmethod
    def python(index: int) -> Op: ...
    @property
    def kind(self) -> str: ...

def compile(spec: KernelSpec, wgsl: bool = True) -> CompiledKernel:
    """Lower a kernel spec (see ``brian2wgpu.codeobject.kernel_spec``) for the interpreter
    and, unless ``wgsl=False``, to naga-validated WGSL."""

def connect_generator(
    plan: dict[str, Any],
    rows: CompiledKernel,
    element: CompiledKernel | None,
    candidate: CompiledKernel | None,
    roles: dict[str, str],
    arrays: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Create synapses (Brian2's ``synapses_create_generator``; see
    ``brian2wgpu.connect``): returns ``count``, ``outer_counts``/``result_counts``
    (synapses per index) and ``pairs`` (a `CreatedPairs`: the index pairs, offsets
    included, Brian2's order). Raises IndexError for indices out of range without
    ``skip_if_invalid``."""

@final
class CreatedPairs:
    """Synapses made by `connect_generator`, held until written into Brian2's arrays."""

    def __len__(self) -> int: ...
    def write(self, outer: np.ndarray, result: np.ndarray) -> None:
        """Copy the (outer, result) index pairs into two contiguous int32 arrays of
        ``len(self)`` elements."""

def copy_counting(indices: np.ndarray, out: np.ndarray, offset: int,
                  size: int) -> np.ndarray | None:
    """``out[:] = indices + offset`` for contiguous int32 arrays of one length, and how
    often each value in ``0..size`` occurs in ``indices``, in one parallel pass; None when
    one lies outside (``out`` is then partly written)."""

def list_adapters() -> list[dict[str, Any]]:
    """Every adapter wgpu sees, best first."""

def create_pipeline(kernel: CompiledKernel) -> float:
    """Create the kernel's compute pipeline on the default adapter; returns seconds taken."""

def set_adapter(name: str | None = None) -> None:
    """Choose the adapter: an index into ``list_adapters()`` or part of a name (None: the
    best); the shared GPU context follows the choice."""

def set_gpu_timeout(seconds: float) -> None: ...
def set_dump_shaders(dir: str | None = None) -> None:
    """Write the WGSL of every GPU pipeline to ``dir/<kernel>.wgsl`` (None or '' stops)."""

def current_adapter() -> str:
    """Name of the adapter the engine runs on."""

def download_resident(array: np.ndarray) -> bool:
    """Bring back the values a gpu run left on the GPU for ``array`` (a host array of
    that run, unchanged since); whether anything was downloaded."""

@final
class QueueLayout:
    """A pathway's synapses grouped by source with delays in steps (built once, shared by
    the runs that follow while nothing it is built from changes)."""
    def __new__(cls, source_start: int, source_stop: int, sources: np.ndarray,
                delays: np.ndarray, dt: float) -> QueueLayout: ...
    @staticmethod
    def fingerprint(source_start: int, source_stop: int, sources: np.ndarray,
                    delays: np.ndarray, dt: float) -> int: ...

@final
class Engine:
    """A network's kernels, schedule and monitor records, run without Python per step."""

    seed: int
    gpu_step_seconds: float
    """The most seconds per step the network's gpu runs took (waits' deadlines follow it)."""
    def __new__(cls) -> Engine: ...
    def add_kernel(self, spec: KernelSpec, bindings: list[tuple[str, int]]) -> int: ...
    @staticmethod
    def kernel_variables(spec: KernelSpec) -> list[str]: ...
    def add_record(self, dtype: str) -> int: ...
    def add_queue(self, layout: QueueLayout, slots: list[list[int]], offset: int) -> int: ...
    def set_schedule(self, items: list[tuple[int, Op]]) -> None:
        """(clock index, operation) in Brian2's order."""
    def take_record(self, id: int) -> np.ndarray: ...
    def queue_state(self, id: int) -> tuple[int, list[list[int]]]:
        """A spike queue after the run: (offset, synapses per future step)."""
    def set_step_base(self, base: list[int]) -> None:
        """Per clock, the timestep the random streams count from."""
    def set_profiling(self, on: bool) -> None: ...
    def profiling(self) -> list[float]:
        """Seconds per schedule item of the last run (with profiling on)."""
    def set_array_names(self, names: list[str]) -> None: ...
    def gpu_monitor_bytes(self) -> int: ...
    def gpu_uploaded_bytes(self) -> int: ...
    def gpu_compute_passes(self) -> tuple[int, int]:
        """Batches the last gpu run submitted, and compute passes recorded in them."""
    def gpu_left_on_gpu(self) -> list[int]:
        """Ids of the arrays the last gpu run wrote and left on the GPU."""
    def set_checked_arrays(self, ids: list[int]) -> None:
        """Arrays Brian2 checks for invalid values after a run (integrated variables)."""
    def gpu_invalid_arrays(self) -> list[int]:
        """Of the checked arrays the last gpu run left on the GPU, those holding NaN,
        infinities or magnitudes above 1e50."""
    def gpu_dispatches(self) -> list[list[tuple[str, tuple[int, int, int] | None]]]: ...
    def run(self, arrays: list[np.ndarray], clocks: list[tuple[float, int, int, int | None, int | None]],
            should_stop: Any, check_every: int, backend: str = "cpu",
            steps_hint: int = 1000,
            versions: list[int] | None = None) -> tuple[str, int, list[int]]: ...
