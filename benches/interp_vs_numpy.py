"""COBAHH state update over 1,000,000 neurons: the interpreter vs Brian2's numpy target.

Both run the same code object (Brian2's exponential-Euler statements for COBAHH) on the
same arrays; we report medians over repeats and their ratio. Rerun with
``.venv/bin/python benches/interp_vs_numpy.py [N] [repeats]``.
"""

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from models import cobahh_group, stateupdate_codeobject  # noqa: E402

import brian2wgpu  # noqa: E402
from brian2wgpu.codeobject import kernel_spec  # noqa: E402


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), times


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    G = cobahh_group(n)
    runner, co = stateupdate_codeobject(G)
    spec = kernel_spec("cobahh_stateupdate", co.template_name, runner.abstract_code,
                       co.variables, co.variable_indices)
    kernel = brian2wgpu.compile(spec, wgsl=False)
    arrays = {name: np.array(co.variables[name].get_value(), copy=True)
              for name in kernel.variables if not hasattr(co.variables[name], "value")}
    t_numpy, _ = median_time(co, repeats)
    t_interp, _ = median_time(lambda: kernel.run_cpu(arrays, n), repeats)
    result = {
        "neurons": n,
        "repeats": repeats,
        "cores": os.cpu_count(),
        "numpy_median_s": t_numpy,
        "interpreter_median_s": t_interp,
        "speedup_vs_numpy": t_numpy / t_interp,
    }
    print(f"COBAHH state update, {n} neurons, median of {repeats}:")
    print(f"  numpy target : {t_numpy * 1e3:8.1f} ms")
    print(f"  interpreter  : {t_interp * 1e3:8.1f} ms   ({result['speedup_vs_numpy']:.2f}x numpy)")
    os.makedirs(os.path.join(os.path.dirname(__file__), "out"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "out", "interp_vs_numpy.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
