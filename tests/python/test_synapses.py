"""Synapses on the wgpu device against Brian2's numpy target (same model, same seed):
spike queues with heterogeneous delays, on_pre/on_post pathways, event-driven STDP
traces, summed variables, SpikeGeneratorGroup, queued spikes across runs and
store/restore. Deterministic models must agree exactly in spikes."""

import numpy as np
import pytest
from brian2 import (NeuronGroup, Network, SpikeMonitor, StateMonitor, SpikeGeneratorGroup,
                    Synapses, PoissonGroup, PopulationRateMonitor, ms, mV, Hz, second, seed)

from test_device import run_with, compare

BACKENDS = ["cpu", "gpu"]


def delays_and_summed():
    inp = SpikeGeneratorGroup(5, [0, 1, 2, 3, 4, 0, 2], [1, 2, 3, 4, 5, 7, 7.5] * ms)
    G = NeuronGroup(10, """dv/dt = (-v + Igap)/(10*ms) : 1
                           Igap : 1""", threshold="v > 0.5", reset="v = 0", method="euler")
    S = Synapses(inp, G, "w : 1", on_pre="v_post += w")
    S.connect(p=0.6)
    S.w = "rand()*0.5 + 0.1"
    S.delay = "j*0.3*ms"  # heterogeneous, including 0
    gap = Synapses(G, G, """w2 : 1
                            Igap_post = w2*(v_pre - v_post) : 1 (summed)""",
                   on_pre="v_post += 0.1*w2")
    gap.connect(condition="i != j")
    gap.w2 = "0.02 + 0.01*i"
    M = SpikeMonitor(G)
    V = StateMonitor(G, ["v", "Igap"], record=True)
    Network(inp, G, S, gap, M, V).run(20 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), v=V.v[:].copy(), igap=V.Igap[:].copy())


def stdp():
    # Deterministic pre and post trains; event-driven traces on both pathways.
    pre = SpikeGeneratorGroup(20, np.arange(20), np.arange(20) * 2 * ms + 1 * ms, period=45 * ms)
    post = NeuronGroup(3, "dv/dt = -v/(5*ms) : 1", threshold="v > 1", reset="v = 0",
                       method="exact")
    S = Synapses(pre, post, """w : 1
                               dapre/dt = -apre/(20*ms) : 1 (event-driven)
                               dapost/dt = -apost/(20*ms) : 1 (event-driven)""",
                 on_pre="""v_post += w
                           apre += 0.01
                           w = clip(w + apost, 0, 1)""",
                 on_post="""apost -= 0.012
                            w = clip(w + apre, 0, 1)""")
    S.connect()
    S.w = "0.3 + 0.02*i"
    S.delay = "0.5*ms*j"
    M = SpikeMonitor(post)
    Network(pre, post, S, M).run(100 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), w=S.w[:].copy(), apre=S.apre[:].copy(),
                apost=S.apost[:].copy(), lastupdate=S.lastupdate[:].copy())


def repeated_targets():
    # Several synapses onto the same neuron with a statement that is not an accumulation:
    # the serial order of the queue decides the result.
    inp = SpikeGeneratorGroup(4, [0, 1, 2, 3, 0, 1], [1, 1, 1, 1, 2, 2] * ms)
    G = NeuronGroup(3, "v : 1")
    S = Synapses(inp, G, "w : 1", on_pre="v_post = v_post*0.5 + w",
                 multisynaptic_index="synapse_number")
    S.connect(n=2)  # multisynaptic
    S.w = "i + 0.1*j + 0.01*synapse_number"
    Network(inp, G, S).run(5 * ms)
    return dict(v=G.v[:].copy())


def ring_with_delays():
    # A chain where each spike travels with a 1.5 ms delay: spikes in flight at every
    # run boundary.
    G = NeuronGroup(20, "dv/dt = -v/(20*ms) : 1", threshold="v > 0.9", reset="v = 0",
                    method="exact")
    S = Synapses(G, G, on_pre="v_post += 1", delay=1.5 * ms)
    S.connect(j="(i + 1) % 20")
    G.v[0] = 1.2
    M = SpikeMonitor(G)
    net = Network(G, S, M)
    for _ in range(4):
        net.run(2.3 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy())


def mixed_delays_across_runs():
    # Delays of 0 to 3.2 ms (several per source, heterogeneous) and a subgroup source,
    # with spikes in flight at every run boundary: the queue state carries over.
    G = NeuronGroup(30, "dv/dt = (1.1 - v)/(7*ms) : 1", threshold="v > 1", reset="v = 0",
                    method="exact")
    G.v = "i / 30.0"
    H = NeuronGroup(10, "v : 1")
    S = Synapses(G[5:25], H, "w : 1", on_pre="v_post += w")
    S.connect(p=0.5)
    S.w = "0.1 + 0.01*i"
    S.delay = "(i + 3*j) % 17 * 0.2*ms"
    net = Network(G, H, S)
    for _ in range(5):
        net.run(1.7 * ms)
    return dict(v=H.v[:].copy())


def subgroup_sources_without_delay():
    # Pathways from subgroups without delay read the spikespace directly (bundles): events
    # outside the subgroup's range must not reach them; a second pathway with a delay of
    # one step reads the ring.
    G = NeuronGroup(40, "dv/dt = (1.2 - v)/(5*ms) : 1", threshold="v > 1", reset="v = 0",
                    method="exact")
    G.v = "i / 40.0"
    H = NeuronGroup(12, "v : 1\nu : 1")
    S = Synapses(G[10:30], H, "w : 1", on_pre="v_post += w")
    S.connect(p=0.4)
    S.w = "0.5 + 0.01*i + 0.001*j"
    T = Synapses(G[25:], H, on_pre="u_post += 1", delay=0.1 * ms)
    T.connect(j="i % 12")
    net = Network(G, H, S, T)
    net.run(6 * ms)
    net.run(3.05 * ms)
    return dict(v=H.v[:].copy(), u=H.u[:].copy())


def traces_on_neurons():
    # Pre- and postsynaptic traces stored in one neuron group reached from both pathways
    # through subgroups: `A_pre += 1` and a read of `A_post` are the same array.
    G = NeuronGroup(6, """dv/dt = rate : 1
                          ge : 1
                          rate : Hz
                          dA/dt = -A/(1*ms) : 1""", threshold="v>1", reset="v=0",
                    method="euler")
    S = Synapses(G[:3], G[3:], "w_dep : 1\nw_fac : 1",
                 on_pre="""ge_post += w_dep - w_fac
                           A_pre += 1
                           w_dep = clip(w_dep + A_post, 0, 10)""",
                 on_post="""A_post += 1
                            w_fac = clip(w_fac + A_pre, 0, 10)""")
    S.connect()
    G.rate = 1000 * Hz
    G.v = "abs(3-i)*0.1 + 0.7"
    M = SpikeMonitor(G)
    Network(G, S, M).run(2 * ms)
    return dict(i=M.i[:].copy(), t=M.t[:].copy(), w_dep=S.w_dep[:].copy(),
                w_fac=S.w_fac[:].copy(), A=G.A[:].copy(), ge=G.ge[:].copy())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", [delays_and_summed, stdp, repeated_targets, ring_with_delays,
                                   traces_on_neurons, mixed_delays_across_runs,
                                   subgroup_sources_without_delay])
def test_matches_numpy(model, backend):
    seed(5)
    ref = run_with("numpy", model)
    seed(5)
    got = run_with("wgpu", model, backend)
    if "i" in ref:
        assert len(ref["i"]) > 3
    compare(ref, got, exact=("i", "t"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_restore_keeps_queued_spikes(backend):
    def build():
        inp = SpikeGeneratorGroup(1, [0], [1] * ms)
        G = NeuronGroup(1, "v : 1", threshold="v > 0.5", reset="v = 0")
        S = Synapses(inp, G, on_pre="v_post += 1", delay=3 * ms)
        S.connect()
        M = SpikeMonitor(G)
        net = Network(inp, G, S, M)
        net.run(2 * ms)      # the spike is queued, due at 4 ms
        net.store()
        net.run(5 * ms)
        first = M.t[:].copy()
        net.restore()
        net.run(5 * ms)
        return dict(first=first, again=M.t[:].copy())
    ref = run_with("numpy", build)
    got = run_with("wgpu", build, backend)
    # Delivered at 4 ms, seen by the threshold one step later.
    assert len(got["first"]) == 1 and float(got["first"][0]) == pytest.approx(0.0041)
    assert np.array_equal(got["first"], got["again"])
    compare(ref, got, exact=("first", "again"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dt_change_between_runs_rebins_queue(backend):
    from brian2 import defaultclock

    def build():
        inp = SpikeGeneratorGroup(2, [0, 1], [1, 1.2] * ms)
        G = NeuronGroup(2, "v : 1", threshold="v > 0.5", reset="v = 0")
        S = Synapses(inp, G, on_pre="v_post += 1", delay=2 * ms)
        S.connect(j="i")
        M = SpikeMonitor(G)
        net = Network(inp, G, S, M)
        net.run(1.5 * ms)
        defaultclock.dt = 0.05 * ms
        net.run(3 * ms)
        return dict(i=M.i[:].copy(), t=M.t[:].copy())
    ref = run_with("numpy", build)
    got = run_with("wgpu", build, backend)
    assert len(ref["i"]) == 2
    compare(ref, got, exact=("i", "t"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_queue_layout_reused_until_synapses_or_delays_change(backend):
    """The engine builds a pathway's queue layout once and reuses it in later runs; a
    change of delays, of the synapses or of dt is detected (and the result stays
    numpy's)."""
    from brian2 import defaultclock, get_device

    layouts = []

    def build():
        inp = SpikeGeneratorGroup(3, [0, 1, 2] * 6, np.repeat(np.arange(6) * 3 + 1, 3) * ms)
        G = NeuronGroup(5, "v : 1")
        S = Synapses(inp, G, "w : 1", on_pre="v_post += w")
        S.connect(i=[0, 1, 2], j=[0, 1, 2])
        S.w = "1 + i"
        S.delay = "(1 + j)*ms"
        V = StateMonitor(G, "v", record=True)
        net = Network(inp, G, S, V)

        def run():
            net.run(3 * ms)
            cache = getattr(get_device(), "_queue_layouts", None)
            if cache is not None:
                layouts.append(cache[S.pre][1])  # kept alive: identities stay distinct
        run()
        run()                       # nothing changed
        S.delay[0] = 2.5 * ms       # one delay
        run()
        run()
        S.connect(i=2, j=4)         # one more synapse
        run()
        defaultclock.dt = 0.05 * ms  # dt: delays in other steps
        run()
        return dict(v=V.v[:].copy(), t=V.t[:].copy())
    ref = run_with("numpy", build)
    got = run_with("wgpu", build, backend)
    compare(ref, got, exact=("v", "t"))
    a, b, c, d, e, f = layouts
    assert a is b and c is d, "unchanged synapses and delays must reuse the layout"
    assert len({id(x) for x in (a, c, e, f)}) == 4, "every change must rebuild it"


def network_rate(build, n=4000, duration=1 * second):
    P, pathways = build(n)
    M = SpikeMonitor(P)
    Network(P, pathways, M).run(duration)
    return dict(rate=np.array([M.num_spikes / n / float(duration)]))


def cuba():
    # Brian2's examples/CUBA.py (benches/models.py)
    from models import cuba_network
    return network_rate(cuba_network)


def cobahh():
    # Brian2's examples/COBAHH.py (Brette et al. 2007; benches/models.py)
    from models import cobahh_network
    return network_rate(cobahh_network)


_numpy_rates = {}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", [cuba, cobahh])
def test_network_rate_matches_numpy(model, backend):
    """4,000 neurons, 80 synapses each, 1 s: the mean rate within 10% of numpy's."""
    if model not in _numpy_rates:
        seed(3)
        _numpy_rates[model] = run_with("numpy", model)["rate"][0]
    seed(3)
    got = run_with("wgpu", model, backend)["rate"][0]
    ref = _numpy_rates[model]
    assert ref > 5
    assert abs(got - ref) <= 0.1 * ref


@pytest.mark.parametrize("backend", BACKENDS)
def test_poisson_input_counts(backend):
    """PoissonInput draws binomial counts: 100 inputs at 20 Hz for 200 ms give each neuron
    Binomial(100 * 2000, 20 Hz * dt) increments (mean 400, sd 20)."""
    from brian2 import PoissonInput

    def build():
        G = NeuronGroup(200, "v : 1")
        P = PoissonInput(G, "v", N=100, rate=20 * Hz, weight=1)
        Network(G, P).run(200 * ms)
        return G.v[:].copy()
    seed(11)
    v = run_with("wgpu", build, backend)
    assert np.all(v == np.round(v))
    assert abs(v.mean() - 400) < 5 * 20 / np.sqrt(200)
    assert 12 < v.std() < 30


def serial_onto_many_targets():
    # A statement that is not an accumulation (u reads the v just written), many sources
    # per target, several delays and spikes in flight across runs: on the gpu the due
    # synapses are grouped by target, each target's in queue order, also with 2,500
    # synapses onto one neuron. U writes through both indices: its due synapses all share
    # K's one neuron, so they form one set, walked in order.
    G = NeuronGroup(2500, """dv/dt = (1.1 - v)/(3*ms) : 1
                             c : 1""", threshold="v > 1", reset="v = 0", method="exact")
    G.v = "1 - i/2500.0"
    H = NeuronGroup(25, "v : 1\nu : 1")
    S = Synapses(G[:300], H, "w : 1", on_pre="""v_post = v_post*0.9 + w
                                                u_post = u_post + v_post*w""")
    S.connect(j="k for k in range(i % 7, 25, 3)")
    S.w = "0.01 + 0.001*((7*i + 3*j) % 11)"
    S.delay = "(i % 4)*0.1*ms"
    K = NeuronGroup(1, "x : 1")
    T = Synapses(G, K, on_pre="x_post = x_post*0.99 + 0.001*i")
    T.connect()
    U = Synapses(G[:400], K, on_pre="""x_post = x_post*0.98 + 0.01
                                       c_pre = c_pre*0.5 + x_post""")
    U.connect()
    net = Network(G, H, S, K, T, U)
    net.run(3 * ms)
    net.run(2.35 * ms)
    return dict(v=H.v[:].copy(), u=H.u[:].copy(), x=K.x[:].copy(), c=G.c[:].copy())


def serial_through_both_indices():
    # Kernels that write through both indices: the due synapses split into sets that
    # share no pre or post neuron, each run in queue order. S: sources 2k and 2k+1 share
    # target k (a thousand small sets; ~20 sources fire together, with three delays); R:
    # a recurrent pathway where pre and post name the same neurons (d_pre read, d_post
    # written); Z: 40,000 synapses, more than lavapipe's loops allow in one set, so there
    # it stays one ordered walk.
    G = NeuronGroup(2000, """dv/dt = (1.1 - v)/(2*ms) : 1
                             c : 1
                             d : 1
                             y : 1""", threshold="v > 1", reset="v = 0", method="exact")
    G.v = "(i % 97) / 97.0"
    H = NeuronGroup(1000, "v : 1")
    K = NeuronGroup(40, "x : 1")
    S = Synapses(G, H, "w : 1", on_pre="""v_post = v_post*0.9 + w
                                        c_pre = c_pre*0.5 + v_post""")
    S.connect(j="i // 2")
    S.w = "0.01 + 0.001*(i % 11)"
    S.delay = "(i % 3)*0.1*ms"
    R = Synapses(G, G, on_pre="d_post = d_post*0.7 + d_pre + 0.001*(i % 5)")
    R.connect(j="(7*i + 3) % 2000")
    R.connect(j="(11*i + 5) % 2000")
    Z = Synapses(G, K, on_pre="""x_post = x_post*0.9 + 0.001*(i % 7)
                                 y_pre = y_pre*0.5 + x_post""")
    Z.connect(j="k for k in range(i % 2, 40, 2)")
    net = Network(G, H, K, S, R, Z)
    net.run(2.5 * ms)
    net.run(2.5 * ms)
    return dict(v=H.v[:].copy(), c=G.c[:].copy(), d=G.d[:].copy(), x=K.x[:].copy(),
                y=G.y[:].copy())


def serial_with_delays(n, distinct, runs):
    # An ordered pathway from n sources onto 30 targets with `distinct` delays, spikes in
    # flight across runs.
    G = NeuronGroup(n, "dv/dt = (1.2 - v)/(2*ms) : 1", threshold="v > 1", reset="v = 0",
                    method="exact")
    G.v = "(i % 97) / 97.0"
    H = NeuronGroup(30, "v : 1\nu : 1")
    S = Synapses(G, H, "w : 1", on_pre="""v_post = v_post*0.95 + w
                                          u_post = u_post*0.5 + v_post""")
    S.connect(j="k for k in range(i % 10, 30, 10)")
    S.w = "0.001*((13*i + j) % 17)"
    S.delay = f"((7*i + j) % {distinct})*0.1*ms"
    net = Network(G, H, S)
    for duration in runs:
        net.run(duration)
    return dict(v=H.v[:].copy(), u=H.u[:].copy())


def serial_many_delays():
    # 40 distinct delays and thousands of (delay, event) pairs due per step: the ordered
    # delivery spans many tiles.
    return serial_with_delays(3000, 40, [2.05 * ms, 3 * ms])


def serial_hundreds_of_delays():
    # 600 distinct delays: the ordered delivery's plan spans three blocks of delays.
    return serial_with_delays(1000, 600, [35 * ms, 30 * ms])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", [serial_many_delays, serial_hundreds_of_delays])
def test_serial_pathway_many_delays(backend, model):
    ref = run_with("numpy", model)
    got = run_with("wgpu", model, backend)
    assert np.all(ref["u"] != 0)
    compare(ref, got, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_serial_pathways_through_both_indices(backend):
    ref = run_with("numpy", serial_through_both_indices)
    got = run_with("wgpu", serial_through_both_indices, backend)
    assert np.count_nonzero(ref["c"]) > 200 and np.count_nonzero(ref["d"]) > 200
    compare(ref, got, rtol=1e-12)


def test_serial_pathways_through_both_indices_run_by_sets(gpu):
    from brian2.devices.device import all_devices
    run_with("wgpu", serial_through_both_indices, "gpu")
    kernels = {}
    for d in all_devices["wgpu"].last_run_info["gpu_dispatches"]:
        kernels.setdefault(d["object"], []).append(d["kernel"])
    by_sets = [o for o, k in kernels.items() if "b2_uf_union" in k]
    walked = [o for o, k in kernels.items() if "queue_deliver" in k and "b2_tgt_count" not in k]
    from brian2wgpu import _engine
    loops_limited = _engine.list_adapters()[0]["device_type"] == "Cpu"
    assert len(by_sets) == (2 if loops_limited else 3), kernels
    assert len(walked) == (1 if loops_limited else 0), kernels


@pytest.mark.parametrize("backend", BACKENDS)
def test_serial_pathways_by_target(backend):
    ref = run_with("numpy", serial_onto_many_targets)
    got = run_with("wgpu", serial_onto_many_targets, backend)
    assert np.all(ref["u"] != 0)
    compare(ref, got, rtol=1e-12)


def test_serial_pathway_dispatches(gpu):
    from brian2.devices.device import all_devices
    run_with("wgpu", serial_onto_many_targets, "gpu")
    kernels = {}
    for d in all_devices["wgpu"].last_run_info["gpu_dispatches"]:
        kernels.setdefault(d["object"], []).append(d["kernel"])
    by_target = [o for o, k in kernels.items() if "b2_tgt_count" in k and "b2_uf_union" not in k]
    by_sets = [o for o, k in kernels.items() if "b2_uf_union" in k]
    walked = [o for o, k in kernels.items() if "queue_deliver" in k and "b2_tgt_count" not in k]
    assert len(by_target) == 2 and len(by_sets) == 1 and not walked, kernels
