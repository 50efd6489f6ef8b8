"""Brian2's CUBA example (Vogels & Abbott 2005 benchmark: 4,000 current-based LIF
neurons, 2% random excitatory and inhibitory connectivity) on the wgpu device. The only
device-specific lines are the two marked.

Run with ``make demo`` (or ``.venv/bin/python examples/cuba.py [N] [duration_ms]``);
writes ``output/cuba_raster.png``.
"""

import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from brian2 import (NeuronGroup, Synapses, SpikeMonitor, run, seed, set_device, device,  # noqa: E402
                    mV, ms, second)

import brian2wgpu  # noqa: E402,F401   <- device-specific
set_device("wgpu")  # <- device-specific

n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
duration = (float(sys.argv[2]) if len(sys.argv) > 2 else 1000.0) * ms
seed(2005)

t0 = time.perf_counter()
taum, taue, taui = 20 * ms, 5 * ms, 10 * ms
Vt, Vr, El = -50 * mV, -60 * mV, -49 * mV
eqs = """
dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
dge/dt = -ge/taue : volt
dgi/dt = -gi/taui : volt
"""
P = NeuronGroup(n, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms, method="exact")
P.v = "Vr + rand() * (Vt - Vr)"
P.ge = P.gi = 0 * mV
we = (60 * 0.27 / 10) * mV  # excitatory synaptic weight (voltage)
wi = (-20 * 4.5 / 10) * mV  # inhibitory synaptic weight
Ce = Synapses(P, P, on_pre="ge += we")
Ci = Synapses(P, P, on_pre="gi += wi")
Ce.connect("i<0.8*N_pre", p=0.02)
Ci.connect("i>=0.8*N_pre", p=0.02)
s_mon = SpikeMonitor(P)
run(duration)
total = time.perf_counter() - t0

info = device.last_run_info
print(f"backend: {info['backend']}")
print(f"CUBA, {n} neurons, {len(Ce) + len(Ci)} synapses, {duration / ms:.0f} ms: "
      f"compile {info['compile_time']:.2f} s (Brian2's code generation included), "
      f"run {info['run_time']:.2f} s, total {total:.2f} s, {s_mon.num_spikes} spikes "
      f"({s_mon.num_spikes / n / float(duration / second):.1f} Hz)")
os.makedirs("output", exist_ok=True)
plt.figure(figsize=(8, 4))
plt.plot(s_mon.t / ms, s_mon.i, ",k")
plt.xlabel("Time (ms)")
plt.ylabel("Neuron index")
plt.title(f"CUBA on the wgpu device ({info['backend']})")
plt.savefig("output/cuba_raster.png", dpi=100)
print("wrote output/cuba_raster.png")
