"""Adapters without SHADER_F64 (Apple GPUs, many mobile ones): lavapipe stands in for one
with the feature masked (BRIAN2WGPU_FEATURES_OFF=f64, read when the process creates its
device, hence a subprocess). Monitors store Brian2's float64 time and rates from the host
there; a float32 model whose kernels need no float64 runs and gives numpy's records."""

import os
import subprocess
import sys

import numpy as np

MODEL = r'''
import sys
import numpy as np
from brian2 import *
target = sys.argv[1]
prefs.core.default_float_dtype = float32
if target == "numpy":
    prefs.codegen.target = "numpy"
else:
    import brian2wgpu
    set_device("wgpu")
    prefs.devices.wgpu.backend = "gpu"
G = NeuronGroup(300, """x : integer
                        k : integer (constant)""", threshold="x % k == 0", reset="x += 2")
G.k = "i % 7 + 2"
G.run_regularly("x += 1", dt=0.1*ms)
S = SpikeMonitor(G)
M = StateMonitor(G, "x", record=[0, 5, 299])
R = PopulationRateMonitor(G)
run(3*ms)
run(2*ms)
np.savez(sys.argv[2], st=np.asarray(S.t[:]), si=np.asarray(S.i[:]), mt=np.asarray(M.t[:]),
         mx=np.asarray(M.x[:]), rt=np.asarray(R.t[:]), rr=np.asarray(R.rate[:]))
'''


def run_model(target, out, env=None):
    subprocess.run([sys.executable, "-c", MODEL, target, str(out)], check=True,
                   env=dict(os.environ, **(env or {})), capture_output=True, text=True)
    return np.load(out)


def test_monitors_without_f64(gpu, tmp_path):
    ref = run_model("numpy", tmp_path / "numpy.npz")
    got = run_model("gpu", tmp_path / "gpu.npz", {"BRIAN2WGPU_FEATURES_OFF": "f64"})
    assert len(ref["st"]) > 1000 and len(ref["mt"]) == 50
    for key in ref.files:
        assert got[key].dtype == ref[key].dtype, key
        assert np.array_equal(got[key], ref[key]), key


def test_float64_kernel_without_f64_says_so(gpu, tmp_path):
    """A kernel that computes in float64 is refused before the first step, with what to
    do instead."""
    code = MODEL.replace('"x % k == 0"', '"x % k == 0 and t > 1*ms"')
    proc = subprocess.run([sys.executable, "-c", code, "gpu", str(tmp_path / "x.npz")],
                          env=dict(os.environ, BRIAN2WGPU_FEATURES_OFF="f64"),
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "needs float64 (SHADER_F64)" in proc.stderr and "uses t or dt" in proc.stderr
