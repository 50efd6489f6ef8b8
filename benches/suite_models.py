"""The benchmark models of the Brian2CUDA paper (Alevi et al. 2022; model definitions as in
brian2cuda's `brian2cuda/tests/features/speed.py`), in plain Brian2 code, each scaled by
one size `n` the way the paper scales it:

- ``cobahh_uncoupled``: n COBAHH neurons (Brian2's examples/COBAHH.py equations), no
  synapses;
- ``cobahh_pseudocoupled``: the same with 1,000 synapses per neuron (p = 1000/n, 80%
  excitatory) whose weights are so small (rand() * 1e-9 nS) that activity stays that of the
  uncoupled network, while every spike is still delivered;
- ``brunel_hakim`` (``_homog`` / ``_heterog``): Brunel & Hakim (1999), n noise-driven LIF
  neurons with 1,000 inhibitory inputs each (p = 1000/n); delays 2 ms, or uniform in [0, 4)
  ms with the external drive retuned (27 mV, 0.33 mV) to keep the regime;
- ``stdp`` (``_homog`` / ``_heterog``): n Poisson inputs at 15 Hz onto n/1000 LIF neurons,
  1,000 plastic synapses each (pair-based STDP with event-driven traces, Song et al.
  2000); delay 2 ms or uniform in [0, 4) ms;
- ``mushroom_body``: the Brian2GeNN/Brian2CUDA insect olfaction model: 100 projection
  neurons (a SpikeGeneratorGroup replaying noisy odour patterns every 50 ms) onto n Kenyon
  cells (p = 0.15) onto 100 output neurons (plastic, at most ~10,000 inputs each, weights
  scaled so that activity does not depend on n), with lateral inhibition among the outputs.

Each function builds its network in the current Brian2 scope and returns
``(objects, group)``: what to put in a ``Network`` and the group whose spikes the benchmark
counts (one SpikeMonitor on it is the only monitor; the paper times runs without monitors).
"""

import numpy as np
from brian2 import (NeuronGroup, Synapses, PoissonGroup, SpikeGeneratorGroup, ms, mV, nS, uS,
                    nF, Hz)

from models import cobahh_population


def _p(k, n):
    return min(1.0, k / n)


def cobahh_uncoupled(n):
    P = cobahh_population(n)
    return [P], P


def cobahh_pseudocoupled(n):
    (P,), _ = cobahh_uncoupled(n)
    ne = int(0.8 * n)
    Ce = Synapses(P[:ne], P, "we : siemens (constant)", on_pre="ge += we")
    Ci = Synapses(P[ne:], P, "wi : siemens (constant)", on_pre="gi += wi")
    Ce.connect(p=_p(1000, n))
    Ci.connect(p=_p(1000, n))
    Ce.we = "rand() * 1e-9*nS"
    Ci.wi = "rand() * 1e-9*nS"
    return [P, Ce, Ci], P


def _brunel_hakim(n, heterogeneous):
    ns = dict(Vr=10 * mV, theta=20 * mV, tau=20 * ms, J=0.1 * mV,
              muext=(27 if heterogeneous else 25) * mV,
              sigmaext=(0.33 if heterogeneous else 1.0) * mV)
    G = NeuronGroup(n, "dV/dt = (-V + muext + sigmaext * sqrt(tau) * xi)/tau : volt",
                    threshold="V > theta", reset="V = Vr", refractory=2 * ms, method="euler",
                    namespace=ns)
    G.V = ns["Vr"]
    S = Synapses(G, G, on_pre="V += -J", namespace=ns,
                 delay=None if heterogeneous else 2 * ms)
    S.connect(p=_p(1000, n))
    if heterogeneous:
        S.delay = "4*ms * rand()"
    return [G, S], G


def brunel_hakim_homog(n):
    return _brunel_hakim(n, False)


def brunel_hakim_heterog(n):
    return _brunel_hakim(n, True)


def _stdp(n, heterogeneous):
    n = max(1000, n // 1000 * 1000)
    gmax = 0.01
    ns = dict(taum=10 * ms, taupre=20 * ms, taupost=20 * ms, Ee=0 * mV, vt=-54 * mV,
              vr=-60 * mV, El=-74 * mV, taue=5 * ms, gmax=gmax, dApre=0.01 * gmax,
              dApost=-0.01 * gmax * 1.05 * gmax)
    inp = PoissonGroup(n, rates=15 * Hz)
    post = NeuronGroup(n // 1000, """dv/dt = (ge * (Ee-vr) + El - v) / taum : volt
                                     dge/dt = -ge / taue : 1""",
                       threshold="v>vt", reset="v = vr", method="exact", namespace=ns)
    S = Synapses(inp, post, """w : 1
                               dApre/dt = -Apre / taupre : 1 (event-driven)
                               dApost/dt = -Apost / taupost : 1 (event-driven)""",
                 on_pre="""ge += w
                           Apre += dApre
                           w = clip(w + Apost, 0, gmax)""",
                 on_post="""Apost += dApost
                            w = clip(w + Apre, 0, gmax)""",
                 namespace=ns, delay=None if heterogeneous else 2 * ms)
    S.connect(p=1000 / n)
    S.w = "rand() * gmax"
    if heterogeneous:
        S.delay = "2 * 2*ms * rand()"
    return [inp, post, S], post


def stdp_homog(n):
    return _stdp(n, False)


def stdp_heterog(n):
    return _stdp(n, True)


_TRAUB_MILES = """
dV/dt = -(1./C)*(g_Na*m**3.*h*(V-E_Na) + g_K*n**4.*(V-E_K) + g_leak*(V-E_leak) + I_syn) : volt
dm/dt = alpha_m*(1-m)-beta_m*m : 1
dn/dt = alpha_n*(1-n)-beta_n*n : 1
dh/dt = alpha_h*(1-h)-beta_h*h : 1
alpha_m = 0.32*(mV**-1)*(13.*mV-V+VT)/(exp((13.*mV-V+VT)/(4.*mV))-1.)/ms : Hz
beta_m = 0.28*(mV**-1)*(V-VT-40.*mV)/(exp((V-VT-40.*mV)/(5.*mV))-1.)/ms : Hz
alpha_h = 0.128*exp((17.*mV-V+VT)/(18.*mV))/ms : Hz
beta_h = 4./(1.+exp((40.*mV-V+VT)/(5.*mV)))/ms : Hz
alpha_n = 0.032*(mV**-1)*(15.*mV-V+VT)/(exp((15.*mV-V+VT)/(5.*mV))-1.)/ms : Hz
beta_n = .5*exp((10.*mV-V+VT)/(40.*mV))/ms : Hz
"""


def _odour_input(duration_s, rng):
    """100 projection neurons: 10 odours of 20 neurons each, every copy with a Binomial(20,
    0.1) share of its neurons replaced at random; one presentation per 50 ms (shuffled,
    the last ten of each odour in order), each neuron spiking once at 1 ms + U(0, 2) ms."""
    patterns = [rng.choice(100, 20, replace=False) for _ in range(10)]
    repeats = max(1, int(round(duration_s * 10)))
    shows = []
    for p in patterns:
        for _ in range(repeats):
            q = p.copy()
            k = rng.binomial(20, 0.1)
            q[rng.choice(20, k, replace=False)] = rng.choice(100, k)
            shows.append(q)
    train = [shows[i] for i in rng.permutation(len(shows))]
    indices, times = [], []
    for s, q in enumerate(train):
        q = np.unique(q)
        indices.append(q)
        times.append(s * 50.0 + 1.0 + rng.uniform(0, 2, len(q)))
    return np.concatenate(indices), np.concatenate(times) * ms


def mushroom_body(n, duration_s=10.0):
    rng = np.random.default_rng(2022)
    g_scaling = max(1.0, min(n, 10000) / 2500)
    ns = dict(C=0.3 * nF, VT=-63 * mV, g_Na=7.15 * uS, E_Na=50 * mV, g_K=1.43 * uS,
              E_K=-95 * mV, g_leak=0.0267 * uS, E_leak=-63.56 * mV, E_e=0 * mV, E_i=-92 * mV,
              tau_PN_iKC=2 * ms, tau_iKC_eKC=10 * ms, tau_eKC_eKC=5 * ms, scale=0.675,
              w_eKC_eKC=75 * nS, tau_pre=10 * ms, tau_post=10 * ms,
              dApre=0.1 * nS / g_scaling, dApost=-0.1 * nS / g_scaling,
              g_max=3.75 * nS / g_scaling)
    idx, times = _odour_input(duration_s, rng)
    PN = SpikeGeneratorGroup(100, idx, times)
    iKC = NeuronGroup(n, _TRAUB_MILES + """I_syn = g_PN_iKC*(V - E_e) : amp
                                           dg_PN_iKC/dt = -g_PN_iKC/tau_PN_iKC : siemens""",
                      threshold="V>0*mV", refractory="V>0*mV", method="exponential_euler",
                      namespace=ns)
    eKC = NeuronGroup(100, _TRAUB_MILES + """I_syn = g_iKC_eKC*(V - E_e) + g_eKC_eKC*(V - E_i) : amp
                                             dg_iKC_eKC/dt = -g_iKC_eKC/tau_iKC_eKC : siemens
                                             dg_eKC_eKC/dt = -g_eKC_eKC/tau_eKC_eKC : siemens""",
                      threshold="V>0*mV", refractory="V>0*mV", method="exponential_euler",
                      namespace=ns)
    for G in (iKC, eKC):
        G.V = ns["E_leak"]
        G.h = 1
        G.m = 0
        G.n = 0.5
    PN_iKC = Synapses(PN, iKC, "weight : siemens", on_pre="g_PN_iKC += scale*weight",
                      namespace=ns)
    PN_iKC.connect(p=0.15)
    PN_iKC.weight = "10*nS + 1.25*nS*randn()"
    iKC_eKC = Synapses(iKC, eKC, """g_raw : siemens
                                    dApre/dt = -Apre / tau_pre : siemens (event-driven)
                                    dApost/dt = -Apost / tau_post : siemens (event-driven)""",
                       on_pre="""g_iKC_eKC += g_raw
                                 Apre += dApre
                                 g_raw = clip(g_raw + Apost, 0*siemens, g_max)""",
                       on_post="""Apost += dApost
                                  g_raw = clip(g_raw + Apre, 0*siemens, g_max)""",
                       namespace=ns, delay=0 * ms)
    iKC_eKC.connect(p=_p(10000, n))
    iKC_eKC.g_raw = "rand()*g_max/10"
    iKC_eKC.g_raw["rand() < 0.2"] = f"(2.5*nS + 0.5*nS*randn())/{g_scaling}"
    eKC_eKC = Synapses(eKC, eKC, on_pre="g_eKC_eKC += scale*w_eKC_eKC", namespace=ns,
                       delay=0 * ms)
    eKC_eKC.connect()
    return [PN, iKC, eKC, PN_iKC, iKC_eKC, eKC_eKC], iKC


MODELS = {
    "cobahh_uncoupled": cobahh_uncoupled,
    "cobahh_pseudocoupled": cobahh_pseudocoupled,
    "brunel_hakim_homog": brunel_hakim_homog,
    "brunel_hakim_heterog": brunel_hakim_heterog,
    "stdp_homog": stdp_homog,
    "stdp_heterog": stdp_heterog,
    "mushroom_body": mushroom_body,
}

# Sizes that fit this machine (2 cores, 24 GiB) on every backend in minutes; the paper
# goes to 10^6-10^8 on GPUs.
DEFAULT_SIZES = {
    "cobahh_uncoupled": [1000, 10000, 100000],
    "cobahh_pseudocoupled": [1000, 10000],
    "brunel_hakim_homog": [1000, 10000],
    "brunel_hakim_heterog": [1000, 10000],
    "stdp_homog": [10000, 100000],
    "stdp_heterog": [10000, 100000],
    "mushroom_body": [1000, 10000],
}
