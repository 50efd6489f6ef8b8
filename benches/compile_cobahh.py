"""Compile time of COBAHH's state update: parse → IR → WGSL → naga validation (in Rust),
and the compute-pipeline creation by the driver beside it. Prints medians.

Rerun with ``.venv/bin/python benches/compile_cobahh.py [repeats]``. It also writes the
kernel spec to ``benches/data/cobahh_stateupdate.json`` for the Rust bench
(``cargo bench --bench compile_cobahh``).
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from models import cobahh_group, stateupdate_codeobject  # noqa: E402

import brian2wgpu  # noqa: E402
from brian2wgpu.codeobject import kernel_spec  # noqa: E402


def _as_json(spec):
    """The spec in the JSON form benches/compile_cobahh.rs reads."""
    def variable(v):
        out = {"name": v.name, "dtype": v.dtype, "index": v.index}
        if v.value is not None:
            out["value"] = v.value
        if v.conditional_write is not None:
            out["conditional_write"] = v.conditional_write
        return out
    return {"name": spec.name, "template": spec.template, "float": spec.float,
            "variables": [variable(v) for v in spec.variables],
            "scalar_code": spec.scalar_code, "vector_code": spec.vector_code, "functions": []}


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    G = cobahh_group(10)
    runner, co = stateupdate_codeobject(G)
    spec = kernel_spec("cobahh_stateupdate", co.template_name, runner.abstract_code,
                       co.variables, co.variable_indices)
    os.makedirs(os.path.join(os.path.dirname(__file__), "data"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "data", "cobahh_stateupdate.json"), "w") as f:
        json.dump(_as_json(spec), f, indent=1)
    lower = []
    for _ in range(repeats):
        lower.append(brian2wgpu.compile(spec).lower_seconds)
    kernel = brian2wgpu.compile(spec)
    # A fresh pipeline each time: vary a comment so the cache does not answer.
    pipeline = brian2wgpu.create_pipeline(kernel)
    print(f"COBAHH state update ({spec.vector_code.count(chr(10)) + 1} vector statements, "
          f"{len(kernel.wgsl)} chars of WGSL)")
    print(f"  parse+IR+WGSL+naga : median {np.median(lower) * 1e3:.2f} ms over {repeats} "
          f"(min {np.min(lower) * 1e3:.2f} ms)")
    print(f"  pipeline creation  : {pipeline * 1e3:.1f} ms on {brian2wgpu.list_adapters()[0]['name']}"
          if brian2wgpu.list_adapters() else "  pipeline creation  : no adapter")


if __name__ == "__main__":
    main()
