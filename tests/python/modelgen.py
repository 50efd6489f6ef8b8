"""Random Brian2 models from a small grammar (issue 15: fuzzing the Python boundary).

Each model is a dict of the strings a Brian2 user would write: equations, threshold,
reset, refractoriness, integration method, an optional recurrent pathway, and now and then
a mistake (a unit error, an unknown name, a feature the device does not run). ``build``
turns one into Brian2 objects in the current scope."""

import random

DRIVES = [
    "I0 - v",
    "I0 - v + w",
    "I0*sin(3*v) + 0.5 - v",
    "I0 - v**2",
    "exp(-v)*I0 - v",
    "I0 - abs(v)*v",
    "clip(I0 - v, -1, 1)",
    "I0 - v*w",
    "I0*(1 + 0.3*cos(2*pi*20*Hz*t)) - v",
    "int(v > 0.5)*0.3 + I0 - v",
]
THRESHOLDS = ["v > 1", "v > 1 + 0.1*w", "v > 0.8 and w < 1", "v >= 0.95"]
RESETS = ["v = 0", "v = 0; w += a", "v = -0.2*w", "v = 0.1*(i % 3)"]
REFRACTORY = [None, "2*ms", "v > 0.5"]
METHODS = ["euler", "rk2", "rk4", "exponential_euler", "heun", "exact"]
ON_PRE = ["v_post += ws", "w_post += 0.1*ws", "v_post = v_post*0.9 + ws",
          "ws *= 0.95\nv_post += ws"]
CONNECT = ["j='(i + 1) % N_post'", "condition='abs(i - j) < 3 and i != j'",
           "i=[0, 1, 2, 3], j=[4, 4, 5, 6]"]
# Mistakes and oddities (see build): a unit error in the equations, an unknown name in the
# threshold or the reset, a Python function without a 'wgpu' implementation in the
# equations (numpy calls it; so does the device, on the host).
MISTAKES = ["unit", "unknown_threshold", "unknown_reset", "python_function"]


def generate(rng):
    """One model description."""
    m = {
        "n": rng.choice([5, 20, 37]),
        "drive": rng.choice(DRIVES),
        "adapt": rng.random() < 0.6,
        "threshold": rng.choice(THRESHOLDS),
        "reset": rng.choice(RESETS),
        "refractory": rng.choice(REFRACTORY),
        "method": rng.choice(METHODS),
        "tau_ms": rng.choice([5, 10, 20]),
        "I0": rng.choice([0.9, 1.2, 1.8]),
        "synapses": None,
        "mistake": None,
    }
    needs_w = "w" in m["drive"] or "w" in m["threshold"] or "w" in m["reset"]
    m["adapt"] = m["adapt"] or needs_w
    if rng.random() < 0.5:
        m["synapses"] = {
            "on_pre": rng.choice(ON_PRE),
            "connect": rng.choice(CONNECT),
            "delay": rng.choice([None, "1*ms", "'(i % 3)*0.2*ms'"]),
        }
        if "w_post" in m["synapses"]["on_pre"]:
            m["adapt"] = True
    if rng.random() < 0.15:
        m["mistake"] = rng.choice(MISTAKES)
    return m


def generate_all(seed, count):
    rng = random.Random(seed)
    return [generate(rng) for _ in range(count)]


def describe(m):
    return " | ".join(f"{k}={v}" for k, v in m.items() if v is not None)


def build(m):
    """Brian2 objects for ``m`` (in the caller's scope), as (network, monitors dict)."""
    import numpy as np
    from brian2 import (Function, Network, NeuronGroup, SpikeMonitor, StateMonitor,
                        Synapses, ms)

    unless = " (unless refractory)" if m["refractory"] else ""
    drive = m["drive"]
    namespace = {"tau": m["tau_ms"] * ms, "I0": m["I0"], "a": 0.1}
    if m["mistake"] == "python_function":
        namespace["pyfun"] = Function(lambda x: np.tanh(x), arg_units=[1], return_unit=1)
        drive = drive + " + 0.1*pyfun(v)"
    eqs = f"dv/dt = ({drive})/tau : 1{unless}\n"
    if m["mistake"] == "unit":
        eqs = f"dv/dt = ({drive})/tau : volt{unless}\n"
    if m["adapt"]:
        eqs += "dw/dt = (a*v - w)/(2*tau) : 1\n"
    threshold = m["threshold"]
    reset = m["reset"]
    if m["mistake"] == "unknown_threshold":
        threshold = "v > v_unknown"
    if m["mistake"] == "unknown_reset":
        reset = reset + "; q_unknown += 1"
    kw = {}
    if m["refractory"]:
        kw["refractory"] = (eval(m["refractory"], {"ms": ms}) if "ms" in m["refractory"]
                            else m["refractory"])
    G = NeuronGroup(m["n"], eqs, threshold=threshold, reset=reset, method=m["method"],
                    namespace=namespace, **kw)
    G.v = "0.5 + 0.6*i/N"
    objects = [G]
    M = SpikeMonitor(G)
    S = StateMonitor(G, "v", record=[0, m["n"] - 1])
    objects += [M, S]
    if m["synapses"]:
        syn = m["synapses"]
        Syn = Synapses(G, G, "ws : 1", on_pre=syn["on_pre"], namespace=namespace)
        eval(f"Syn.connect({syn['connect']})", {"Syn": Syn})
        Syn.ws = "0.05 + 0.01*(i % 4)"
        if syn["delay"]:
            Syn.delay = eval(syn["delay"], {"ms": ms})
        objects.append(Syn)
    net = Network(*objects)
    return net, {"spikes": M, "state": S}
