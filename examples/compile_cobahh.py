"""The compiler core on a real Brian2 model: COBAHH's state update (Brette et al. 2007).

Brian2 generates the abstract code (exponential Euler); brian2wgpu lowers it to WGSL and to
the interpreter, runs 200 steps on each, and compares with Brian2's numpy target.
Run with ``make demo`` (or ``.venv/bin/python examples/compile_cobahh.py [N] [steps]``).
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benches"))
from models import cobahh_group, stateupdate_codeobject  # noqa: E402

import brian2wgpu  # noqa: E402
from brian2wgpu.codeobject import kernel_spec  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    G = cobahh_group(n)
    runner, co = stateupdate_codeobject(G)
    spec = kernel_spec("cobahh_stateupdate", co.template_name, runner.abstract_code,
                       co.variables, co.variable_indices)
    kernel = brian2wgpu.compile(spec)
    backend, adapter = brian2wgpu.auto_backend()
    print(f"brian2wgpu {brian2wgpu.__version__}: backend 'auto' = {backend}"
          + (f" on {adapter['name']}" if adapter else ""))
    print(f"COBAHH state update, {n} neurons: {len(spec.vector_code.splitlines())} vector and "
          f"{len(spec.scalar_code.splitlines())} scalar statements -> {len(kernel.wgsl)} chars of WGSL")
    print(f"  compile (parse, IR, WGSL, naga): {kernel.lower_seconds * 1e3:.2f} ms")
    if adapter:
        print(f"  pipeline creation on the device: {brian2wgpu.create_pipeline(kernel) * 1e3:.1f} ms")

    start = {name: np.array(co.variables[name].get_value(), copy=True)
             for name in kernel.variables if not hasattr(co.variables[name], "value")}
    results, timings = {}, {}
    t0 = time.perf_counter()
    for _ in range(steps):
        co()
    timings["numpy"] = time.perf_counter() - t0
    results["numpy"] = {v: np.asarray(G.variables[v].get_value()).copy() for v in "vmnh"}
    for b in (["cpu", "gpu"] if adapter else ["cpu"]):
        arrays = {k: v.copy() for k, v in start.items()}
        run = getattr(kernel, f"run_{b}")
        t0 = time.perf_counter()
        for step in range(steps):
            run(arrays, n, step=step)
        timings[b] = time.perf_counter() - t0
        results[b] = arrays
    print(f"  {steps} steps:")
    for b, t in timings.items():
        line = f"    {b:6s}: {t * 1e3:8.1f} ms"
        if b != "numpy":
            err = max(np.max(np.abs(results[b][v] - results["numpy"][v])
                             / np.maximum(np.abs(results["numpy"][v]), 1e-300)) for v in "vmnh")
            line += f"   max relative difference to numpy: {err:.1e}"
            if b == "gpu":
                line += "  (one upload/readback per step: the device runs whole networks without)"
        print(line)
    v = results["numpy"]["v"]
    print(f"  membrane potential after {steps * 0.1:.0f} ms: mean {v.mean() * 1e3:.2f} mV, "
          f"{np.sum(v > -0.02)} neurons above threshold")


if __name__ == "__main__":
    main()
