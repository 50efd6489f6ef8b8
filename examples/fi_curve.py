"""f-I curve of 10,000 Hodgkin-Huxley neurons on the wgpu device (after Brian2's
examples/IF_curve_Hodgkin_Huxley.py). The only device-specific lines are the two marked.

Run with ``make demo`` (or ``.venv/bin/python examples/fi_curve.py [N] [duration_ms]``);
writes ``output/fi_curve.png``.
"""

import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from brian2 import (NeuronGroup, SpikeMonitor, run, set_device, device, umetre, ufarad,  # noqa: E402
                    cm, siemens, msiemens, mV, ms, nA, second)

import brian2wgpu  # noqa: E402,F401   <- device-specific
set_device("wgpu")  # <- device-specific

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
duration = (float(sys.argv[2]) if len(sys.argv) > 2 else 300.0) * ms

area = 20000 * umetre**2
Cm = 1 * ufarad * cm**-2 * area
gl = 5e-5 * siemens * cm**-2 * area
El, EK, ENa = -65 * mV, -90 * mV, 50 * mV
g_na = 100 * msiemens * cm**-2 * area
g_kd = 30 * msiemens * cm**-2 * area
VT = -63 * mV
eqs = """
dv/dt = (gl*(El-v) - g_na*(m*m*m)*h*(v-ENa) - g_kd*(n*n*n*n)*(v-EK) + I)/Cm : volt
dm/dt = 0.32*(mV**-1)*4*mV/exprel((13.*mV-v+VT)/(4*mV))/ms*(1-m)-0.28*(mV**-1)*5*mV/exprel((v-VT-40.*mV)/(5*mV))/ms*m : 1
dn/dt = 0.032*(mV**-1)*5*mV/exprel((15.*mV-v+VT)/(5*mV))/ms*(1.-n)-.5*exp((10.*mV-v+VT)/(40.*mV))/ms*n : 1
dh/dt = 0.128*exp((17.*mV-v+VT)/(18.*mV))/ms*(1.-h)-4./(1+exp((40.*mV-v+VT)/(5.*mV)))/ms*h : 1
I : amp
"""
t0 = time.perf_counter()
group = NeuronGroup(n, eqs, threshold="v > -40*mV", refractory="v > -40*mV",
                    method="exponential_euler")
group.v = El
group.I = "0.7*nA * i / N"
monitor = SpikeMonitor(group)
run(duration)
total = time.perf_counter() - t0

info = device.last_run_info
print(f"backend: {info['backend']}" + (f" ({brian2wgpu.list_adapters()[0]['name']})"
                                       if info["backend"] == "gpu" else ""))
print(f"{n} HH neurons, {duration / ms:.0f} ms: compile {info['compile_time'] * 1e3:.0f} ms, "
      f"run {info['run_time']:.2f} s, total {total:.2f} s, {monitor.num_spikes} spikes")
os.makedirs("output", exist_ok=True)
plt.plot(group.I / nA, monitor.count / duration)
plt.xlabel("I (nA)")
plt.ylabel("Firing rate (sp/s)")
plt.title(f"f-I curve, {n} Hodgkin-Huxley neurons on the wgpu device ({info['backend']})")
plt.savefig("output/fi_curve.png", dpi=100)
print("wrote output/fi_curve.png")
