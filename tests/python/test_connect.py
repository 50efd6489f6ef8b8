"""Synapse creation in the engine (``Synapses.connect`` with strings) against Brian2's
numpy code: deterministic forms give numpy's synapses in numpy's order (with N_incoming,
N_outgoing and the multisynaptic index), random forms have the right distribution and
are reproducible under ``seed()``."""

import numpy as np
import pytest
from brian2 import NeuronGroup, Synapses, prefs, seed, set_device, start_scope

from brian2.core.base import BrianObjectException

import brian2wgpu  # noqa: F401  (registers the device)


def connect(mode, kwargs, n_pre=300, n_post=None, subgroups=False):
    start_scope()
    set_device("wgpu")
    before = prefs.devices.wgpu.synapse_creation
    prefs.devices.wgpu.synapse_creation = mode
    try:
        n_post = n_post or n_pre
        extra = 10 if subgroups else 0  # neurons outside the subgroups
        G = NeuronGroup(n_pre + extra, "x : 1")
        H = NeuronGroup(n_post + extra, "y : 1")
        G.x = "i*0.1"
        H.y = "i*0.2 + 3*sin(i)"
        src, tgt = (G[5:5 + n_pre], H[3:3 + n_post]) if subgroups else (G, H)
        S = Synapses(src, tgt, "w : 1", multisynaptic_index="syn")
        seed(7)
        S.connect(**kwargs)
        return {k: np.array(getattr(S, k)[:]) for k in
                ("i", "j", "N_incoming", "N_outgoing", "syn")} | {
            "pre": np.array(S._synaptic_pre[:]), "post": np.array(S._synaptic_post[:])}
    finally:
        prefs.devices.wgpu.synapse_creation = before
        set_device("runtime")


DETERMINISTIC = [
    dict(),
    dict(condition="i != j"),
    # Long rows: bounds skip most candidates (the result must not change).
    dict(condition="abs(i - j) < 5 and i != j"),
    dict(condition="(i - j) % 7 == 0 and j // 3 != 5"),
    dict(condition="j > 2*i - 40 and j < 2*i + 3"),
    dict(j="i"),
    dict(j="k for k in range(i - 3, i + 4) if k != i", skip_if_invalid=True),
    dict(j="k for k in range(0, N_post, 3) if x_pre > y_post * 0.4"),
    dict(j="2*k + 1 for k in range(N_post) if 2*k + 1 < N_post and abs(2*k + 1 - i) < 9"),
    dict(condition="i < 10", n=2),
    dict(condition="i < 20 and j < 50", n="1 + j % 3"),
    dict(i="k for k in range(0, N_pre, 7) if k <= j"),
    dict(j="k for k in range(N_post - 1, -1, -5)"),
    dict(condition="x_pre > 5"),
    dict(condition="False"),
    # Bounds of target values over ranges of targets (y_post ascends with j).
    dict(condition="sqrt((x_pre - y_post*0.5)**2 + 0.25) < 2 and i != j"),
    dict(condition="(y_post - 2*x_pre)**2 < 9"),
]


@pytest.mark.parametrize("subgroups", [False, True])
@pytest.mark.parametrize("kwargs", DETERMINISTIC, ids=str)
def test_deterministic_forms_match_numpy(kwargs, subgroups):
    ref = connect("numpy", kwargs, subgroups=subgroups)
    got = connect("engine", kwargs, subgroups=subgroups)
    for k in ref:
        assert np.array_equal(ref[k], got[k]), k


def test_rectangular_and_repeated_connect():
    for mode in ("numpy", "engine"):
        start_scope()
        set_device("wgpu")
        prefs.devices.wgpu.synapse_creation = mode
        G, H = NeuronGroup(50, "x : 1"), NeuronGroup(170, "y : 1")
        S = Synapses(G, H, "w : 1")
        S.connect(condition="j % 50 == i")
        S.connect(j="k for k in range(i, N_post, 40)", n=2)
        S.w = "i + 0.001*j"
        if mode == "numpy":
            ref = (S.i[:].copy(), S.j[:].copy(), S.w[:].copy(), S.N_incoming[:].copy())
        else:
            got = (S.i[:].copy(), S.j[:].copy(), S.w[:].copy(), S.N_incoming[:].copy())
    prefs.devices.wgpu.synapse_creation = "engine"
    set_device("runtime")
    for a, b in zip(ref, got):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("kwargs", [
    dict(j="k for k in range(i - 3, i + 4)"),  # out of range without skip_if_invalid
    dict(j="k for k in sample(N_post, size=N_post + 1)"),
    dict(j="k for k in sample(N_post, size=i - 150)"),  # negative sizes
], ids=str)
def test_invalid_indices_raise_like_numpy(kwargs):
    for mode in ("numpy", "engine"):
        with pytest.raises(BrianObjectException) as exc:
            connect(mode, kwargs)
        assert isinstance(exc.value.__cause__, IndexError), mode


def test_random_p_is_binomial_and_seeded():
    n, p = 2000, 0.01
    a = connect("engine", dict(p=p), n_pre=n)
    b = connect("engine", dict(p=p), n_pre=n)
    assert np.array_equal(a["j"], b["j"])  # reproducible under seed()
    total = len(a["i"])
    mean, sd = n * n * p, np.sqrt(n * n * p * (1 - p))
    assert abs(total - mean) < 4 * sd
    per_row = np.bincount(a["i"], minlength=n)
    assert abs(per_row.var() - n * p * (1 - p)) < 0.25 * n * p  # binomial variance
    per_col = np.bincount(a["j"], minlength=n)
    assert abs(per_col.mean() - n * p) < 4 * np.sqrt(n * p / n)
    # Within a row, targets ascend (Brian2's order) and are distinct.
    for i in range(0, n, 97):
        js = a["j"][a["i"] == i]
        assert np.all(np.diff(js) > 0)


@pytest.mark.parametrize("p", [0.3, 0.9])
def test_dense_p_and_condition_with_rand(p):
    n = 400
    a = connect("engine", dict(condition="i != j", p=p), n_pre=n)
    assert not np.any(a["i"] == a["j"])
    mean, sd = n * (n - 1) * p, np.sqrt(n * (n - 1) * p * (1 - p))
    assert abs(len(a["i"]) - mean) < 4 * sd
    # A probability that depends on j goes through rand() in the condition.
    b = connect("engine", dict(condition="i != j", p="0.5*(j % 2)"), n_pre=n)
    assert np.all(b["j"] % 2 == 1)
    mean, sd = n * (n // 2) * 0.5, np.sqrt(n * (n // 2) * 0.25)
    assert abs(len(b["i"]) - mean) < 4 * sd


def test_sample_size_is_exact_and_uniform():
    n = 1000
    a = connect("engine", dict(j="k for k in sample(N_post, size=30)"), n_pre=n)
    assert np.all(np.bincount(a["i"], minlength=n) == 30)
    counts = np.bincount(a["j"], minlength=n)
    mean = n * 30 / n
    assert abs(counts.mean() - mean) < 1e-9
    assert counts.var() < 2 * mean  # close to binomial, no target favoured
    for i in range(0, n, 101):
        js = a["j"][a["i"] == i]
        assert len(np.unique(js)) == 30 and np.all(np.diff(js) > 0)
    # Dense subsets take the other algorithm.
    b = connect("engine", dict(j="k for k in sample(N_post, size=700)"), n_pre=50, n_post=n)
    assert np.all(np.bincount(b["i"], minlength=50) == 700)


def test_seed_changes_random_connections():
    a = connect("engine", dict(p=0.05), n_pre=400)
    start_scope()
    set_device("wgpu")
    G = NeuronGroup(400, "x : 1")
    S = Synapses(G, G)
    seed(8)
    S.connect(p=0.05)
    set_device("runtime")
    assert not np.array_equal(a["j"][:100], np.array(S.j[:100]))


@pytest.mark.parametrize("subgroups", [False, True])
def test_index_arrays_match_numpy(subgroups):
    rng = np.random.default_rng(3)
    i = rng.integers(0, 300, size=2000)
    j = rng.integers(0, 300, size=2000)
    for kwargs in (dict(i=i, j=j), dict(i=5, j=j[:10]), dict(i=i[:50], j=j[:50], n=2)):
        ref = connect("numpy", kwargs, subgroups=subgroups)
        got = connect("engine", kwargs, subgroups=subgroups)
        for k in ref:
            assert np.array_equal(ref[k], got[k]), (k, kwargs)


def test_index_arrays_out_of_range_raise_like_numpy():
    for mode in ("numpy", "engine"):
        with pytest.raises(IndexError) as exc:
            connect(mode, dict(i=[0, 400], j=[1, 2]))
        assert "outside" in str(exc.value.__cause__)
        with pytest.raises(IndexError):
            connect(mode, dict(i=[0, 1], j=[-1, 2]))
    # Wider than int32: must not wrap into range (2**32 + 1 would become 1; Brian2 2.11's
    # numpy code does wrap it and makes a synapse to 1).
    for i, j in (([0, 2**32 + 1], [1, 2]),
                 (np.arange(3, dtype=np.int64), np.array([0, 1, 2**33]))):
        with pytest.raises(IndexError):
            connect("engine", dict(i=np.asarray(i), j=np.asarray(j)))
        with pytest.raises(TypeError):
            connect(mode, dict(i=[0.5, 1.0], j=[1, 2]))


@pytest.mark.parametrize("p_expr, p_of", [
    ("0.05*exp(-abs(i-j)/20.0)", lambda d, j: 0.05 * np.exp(-np.abs(d) / 20.0)),
    ("0.004*(1 + j % 2)", lambda d, j: 0.004 * (1 + j % 2)),
    ("0.003", lambda d, j: 0.003 + 0 * d),
])
def test_probability_depending_on_j_is_thinned_exactly(p_expr, p_of):
    """`p` depending on j becomes `rand() < p` in the condition; the engine draws
    candidates with a bound of p per range (thinning): counts and the distribution over
    distances must still be those of independent draws with probability p."""
    n = 3000
    a = connect("engine", dict(condition="i != j", p=p_expr), n_pre=n)
    assert not np.any(a["i"] == a["j"])
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    p = p_of(i - j, j) * (i != j)
    mean, sd = p.sum(), np.sqrt((p * (1 - p)).sum())
    assert abs(len(a["i"]) - mean) < 4 * sd
    # Distances: the expected share of synapses within 10 of the source.
    near = (np.abs(i - j) <= 10) & (i != j)
    share = p[near].sum() / p.sum()
    got = np.mean(np.abs(a["i"] - a["j"]) <= 10)
    assert abs(got - share) < 4 * np.sqrt(share * (1 - share) / len(a["i"])) + 1e-9
    # Targets ascend within each row, and a seed replays the same synapses.
    for row in range(0, n, 211):
        assert np.all(np.diff(a["j"][a["i"] == row]) > 0)
    b = connect("engine", dict(condition="i != j", p=p_expr), n_pre=n)
    assert np.array_equal(a["j"], b["j"])
