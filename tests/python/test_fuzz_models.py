"""Fuzzing the device's Python boundary (issue 15, item 7): random models from a small
grammar (tests/python/modelgen.py: nonlinear equations, thresholds, resets,
refractoriness, every integration method, recurrent pathways including serial-order
ones, and mistakes: unit errors, unknown names, a Python function) run on Brian2's numpy
target and on the device. The device must give numpy's spikes and traces, or raise the
same class of error as numpy. Nothing may crash the interpreter or raise anything else."""

import numpy as np
import pytest
from brian2 import ms

import brian2wgpu  # noqa: F401
import modelgen
from test_device import quiet_logs, run_with

SEED = 20261202
MODELS = modelgen.generate_all(SEED, 200)
DURATION = 5 * ms


def outcome(target, m):
    """('ok', results) or ('error', exception) of one model on one target (numpy, or a
    backend of the device with its own synapse creation and variable setting)."""
    def build():
        net, mon = modelgen.build(m)
        net.run(DURATION)
        return dict(i=mon["spikes"].i[:].copy(), t=mon["spikes"].t_[:].copy(),
                    v=mon["state"].v[:].copy())
    device = "numpy" if target == "numpy" else "wgpu"
    with quiet_logs():
        try:
            return "ok", run_with(device, build, target, synapse_creation="engine")
        except Exception as exc:  # noqa: BLE001 (the class is what is compared)
            return "error", exc


def _root(exc):
    """Brian2 wraps errors from preparing an object; compare what it wraps."""
    from brian2.core.base import BrianObjectException
    while isinstance(exc, BrianObjectException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def check(m, target):
    kind, ref = outcome("numpy", m)
    got_kind, got = outcome(target, m)
    what = modelgen.describe(m)
    if kind == "error":
        assert got_kind == "error", f"numpy raised {ref!r}, {target} ran: {what}"
        assert isinstance(_root(got), type(_root(ref))), \
            f"numpy raised {_root(ref)!r}, {target} raised {_root(got)!r}: {what}"
        return
    if got_kind == "error":
        raise AssertionError(f"{target} raised {got!r} where numpy ran: {what}") from got
    np.testing.assert_array_equal(got["i"], ref["i"], err_msg=what)
    np.testing.assert_array_equal(got["t"], ref["t"], err_msg=what)
    np.testing.assert_allclose(got["v"], ref["v"], rtol=1e-8, atol=1e-10, err_msg=what)


@pytest.mark.parametrize("k", range(len(MODELS)))
def test_model_on_the_interpreter(k):
    check(MODELS[k], "cpu")


@pytest.mark.parametrize("k", range(0, len(MODELS), 2))
def test_model_on_the_gpu(k, gpu):
    check(MODELS[k], "gpu")
