"""Variables under `(unless refractory)`: guarded writes in state updates, synaptic
pathways and PoissonInput, on both backends against Brian2's numpy target.

A zero derivative under `(unless refractory)` (`_x := x` then a guarded `x = _x`) once made
the interpreter's optimiser build an instruction that read its own destination, which
panicked (issue 12); these models reach that path and its neighbours.
"""

import numpy as np
import pytest
from brian2 import (NeuronGroup, PoissonInput, Synapses, StateMonitor, SpikeMonitor, Network,
                    defaultclock, ms, Hz, second)

from test_device import run_with, compare

BACKENDS = ["cpu", "gpu"]


def zero_derivative_unless_refractory():
    G = NeuronGroup(3, """dv/dt = (2-v)/(1*ms) : 1 (unless refractory)
                         dx/dt = 0/(1*ms) : 1 (unless refractory)
                         dy/dt = 0/(1*ms) : 1""",
                    threshold="v>1", reset="v = 0\nx -= 0.05\ny -= 0.05", refractory=1 * ms)
    G.v = "i*0.4"
    H = NeuronGroup(1, "", threshold="True")
    Sx = Synapses(H, G, on_pre="x += dt*100*Hz")
    Sx.connect()
    Sy = Synapses(H, G, on_pre="y += dt*100*Hz")
    Sy.connect()
    M = StateMonitor(G, ["v", "x", "y", "not_refractory"], record=True)
    S = SpikeMonitor(G)
    net = Network(G, H, Sx, Sy, M, S)
    net.run(5 * ms)
    return dict(v=M.v[:].copy(), x=M.x[:].copy(), y=M.y[:].copy(), nr=M.not_refractory[:].copy(),
                i=S.i[:].copy(), t=S.t[:].copy())


def refractory_synaptic_targets():
    source = NeuronGroup(10, "", threshold="True")
    target = NeuronGroup(10, """dv/dt = 0/second : 1 (unless refractory)
                               dw/dt = 0/second : 1""",
                         threshold="i>=5", refractory=2 * defaultclock.dt)
    S = Synapses(source, target, on_pre="v += 1\nw += 1")
    S.connect(j="i")
    M = StateMonitor(target, ["v", "w"], record=True)
    net = Network(source, target, S, M)
    net.run(6 * defaultclock.dt)
    return dict(v=M.v[:].copy(), w=M.w[:].copy())


def poisson_input_refractory():
    G = NeuronGroup(10, "dv/dt = 0/second : 1 (unless refractory)", reset="v=0",
                    threshold="v>4.5", refractory=5 * defaultclock.dt)
    P = PoissonInput(G, "v", 1, 1 / defaultclock.dt, weight=1.0)
    M = StateMonitor(G, "v", record=True)
    net = Network(G, P, M)
    net.run(12 * defaultclock.dt)
    return dict(v=M.v[:].copy())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", [zero_derivative_unless_refractory, refractory_synaptic_targets,
                                   poisson_input_refractory])
def test_refractory_guarded_writes_match_numpy(model, backend):
    ref = run_with("numpy", model)
    got = run_with("wgpu", model, backend)
    compare(ref, got, exact=("i", "t", "nr", "v", "w", "x", "y"))
