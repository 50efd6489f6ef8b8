"""Interpreter cost per element for the neuron kernels of CUBA or COBAHH (state update,
threshold with its refractory bookkeeping), at N elements: ns per element and per body
instruction.

Rerun: ``.venv/bin/python benches/interp_micro.py [N] [reps] [cuba|cobahh] [--program]``. A tuning aid for
``src/cpu``; the end-to-end comparison is ``benches/networks.py``.
"""
import sys
import time

import numpy as np
from brian2 import Network, ms

sys.path.insert(0, __import__("os").path.dirname(__file__))
from models import cuba_network, cobahh_network  # noqa: E402
from brian2wgpu import _engine  # noqa: E402


def kernels(model="cuba"):
    """CUBA's neuron kernels as the device compiles them (specs captured on the way)."""
    import brian2wgpu  # noqa: F401
    from brian2 import set_device, prefs
    from brian2wgpu import device as dev
    set_device("wgpu")
    prefs.devices.wgpu.backend = "cpu"
    specs = {}
    real = dev.kernel_spec

    def capture(name, *a, **kw):
        specs[name] = real(name, *a, **kw)
        return specs[name]
    dev.kernel_spec = capture
    P, pw = (cobahh_network if model == "cobahh" else cuba_network)(4000)
    Network(P, *pw).run(0.1 * ms)
    dev.kernel_spec = real
    return [(name, _engine.compile(spec, False)) for name, spec in specs.items()
            if "stateupdater" in name or "thresholder" in name]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if len(args) > 0 else 40000
    reps = int(args[1]) if len(args) > 1 else 500
    model = args[2] if len(args) > 2 else "cuba"
    rng = np.random.default_rng(1)
    for name, ck in kernels(model):
        if "--program" in sys.argv:
            print(f"# {name}\n{ck.program_text}")
        spec_arrays = {}
        body = ck.program_text.split("# body\n")[1].split("# epilogue")[0].strip().splitlines()
        for v in ck.variables:
            if v in ("not_refractory", "_cond"):
                spec_arrays[v] = np.ones(n, dtype=bool)
            elif v in ("t", "dt"):
                spec_arrays[v] = np.array([0.1 if v == "t" else 1e-4])
            elif v == "N":
                spec_arrays[v] = np.array([n], dtype=np.int32)
            else:
                spec_arrays[v] = rng.uniform(-0.07, -0.04, n)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                ck.run_cpu(spec_arrays, n)
            times.append((time.perf_counter() - t0) / reps)
        t = float(np.median(times))
        print(f"{name:45s} {t * 1e6:8.1f} us/call  {t / n * 1e9:6.2f} ns/elem  "
              f"{len(body):3d} body instrs  {t / n / len(body) * 1e9:5.3f} ns/elem/instr")


if __name__ == "__main__":
    main()
