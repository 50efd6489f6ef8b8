"""The device's one-dimensional dynamic arrays (python/brian2wgpu/dynamic_array.py) behave
as Brian2's C++ ones: growth keeps the contents and zero-fills, entries removed by a
smaller resize read as zero when the array grows again, shrink keeps a prefix."""

import numpy as np
import pytest
from brian2 import NeuronGroup, SpikeMonitor, Synapses, ms, run, set_device, start_scope
from brian2.memory.dynamicarray import DynamicArray1D as BrianDynamicArray1D

import brian2wgpu  # noqa: F401
from brian2wgpu.dynamic_array import DynamicArray1D


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.int64, np.bool_])
def test_same_contents_as_brians_array_through_resizes(dtype):
    ours, brians = DynamicArray1D(3, dtype=dtype), BrianDynamicArray1D(3, dtype=dtype)
    rng = np.random.default_rng(0)
    for size in (3, 10, 4, 4, 40, 2, 2000, 0, 7, 300):
        ours.resize(size)
        brians.resize(size)
        assert len(ours) == len(brians) == size == ours.shape[0]
        assert ours.data.dtype == brians.data.dtype
        assert np.array_equal(ours.data, brians.data)
        values = rng.integers(0, 2, size=size).astype(dtype)
        ours[:] = values
        brians[:] = values
        assert np.array_equal(ours[:], brians[:])
    ours.shrink(100)
    brians.shrink(100)
    assert np.array_equal(ours.data, brians.data)
    ours.resize(150)
    brians.resize(150)
    assert np.array_equal(ours.data, brians.data)
    with pytest.raises(ValueError):
        ours.resize(-1)


def build_and_run(device):
    start_scope()
    set_device(device)
    try:
        G = NeuronGroup(20, "dv/dt = (1 + 0.1*i)/(5*ms) : 1", threshold="v>1", reset="v=0",
                        method="euler")
        S = Synapses(G, G, "w : 1")
        S.connect(j="i")
        S.connect(i=[0, 1], j=[5, 6])
        M = SpikeMonitor(G)
        run(20 * ms)
        from brian2 import get_device

        arrays = {name: get_device().arrays[var] for name, var in
                  (("w", S.variables["w"]), ("pre", S.variables["_synaptic_pre"]),
                   ("i", M.variables["i"]))}
        # Copies: views of Brian2's C++ arrays dangle once their object is freed.
        return arrays, tuple(np.array(v) for v in (S.i[:], S.j[:], S.w[:], M.i[:], M.t[:]))
    finally:
        set_device("runtime")


def test_device_uses_them_for_synapses_and_monitors():
    arrays, got = build_and_run("wgpu")
    assert all(isinstance(a, DynamicArray1D) for a in arrays.values())
    _, want = build_and_run("runtime")
    for g, w in zip(got, want):
        assert np.array_equal(np.asarray(g), np.asarray(w))
    assert np.array_equal(got[0], list(range(20)) + [0, 1])
    assert len(got[3]) > 20
