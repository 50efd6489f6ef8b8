"""Run Brian2's own example scripts on the wgpu device and on the numpy target, and
compare their spike counts.

    python scripts/brian2_examples.py [--backend cpu|gpu|auto] [--only PATTERN]
                                      [--timeout SECONDS] [--json OUT]

Downloads Brian2's source distribution (the examples are not in the wheel) into
``~/.cache/brian2wgpu`` once. Each example runs unchanged in a subprocess with a headless
matplotlib backend; a small preamble sets the device (``wgpu`` or ``runtime`` with
``codegen.target='numpy'``) and, at exit, prints the total number of spikes recorded by
every SpikeMonitor. Simulated durations are scaled by ``--scale`` (default 1: unchanged)
for both targets alike. Examples for the standalone device (``examples/standalone``,
``multiprocessing``) are listed as not applicable.

The numpy target's results do not depend on this project's code, so they are kept in
``~/.cache/brian2wgpu/numpy_results_<brian2>_<numpy>.json``, keyed by the example's text,
seed and scale (``--numpy-cache FILE`` elsewhere, ``--no-numpy-cache`` to rerun them): a
second yardstick, e.g. on the other backend, runs only the device side. A cached timeout
is reused only for a timeout no longer than the one it ran with. ``--cached-only`` runs only
the examples whose numpy result is cached (the other backend's yardstick beside one that is
still filling the cache; ``--numpy-ok-only``: only those numpy ran to the end, the ones
the match rate counts); ``--resume`` keeps the results already in the ``--json`` file,
which is written after every example, and runs the rest.

An example *matches* when it runs on both targets and the wgpu spike count is within 10%
of numpy's (or both record no spikes). With ``--seeds N`` (N > 1), an example that differs
at the first seed runs again on both targets with seeds 1 .. N-1 more: a stochastic
example's single realisation says little, so it *matches over seeds* when each target's
median count lies within the other target's range over the N seeds (numpy's own spread).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

VERSION = "2.11.0"
CACHE = Path(os.environ.get("BRIAN2WGPU_CACHE", Path.home() / ".cache" / "brian2wgpu"))
NOT_APPLICABLE = ("standalone/", "multiprocessing/")

PREAMBLE = r'''
import atexit, json, os, sys, gc
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as _plt
_plt.show = lambda *a, **k: None
import brian2
from brian2 import set_device, prefs
_target = os.environ["B2EX_TARGET"]
if _target == "wgpu":
    import brian2wgpu
    set_device("wgpu")
    prefs.devices.wgpu.backend = os.environ.get("B2EX_BACKEND", "auto")
else:
    set_device("runtime")
    prefs.codegen.target = "numpy"
# Examples must not switch the device or target themselves.
brian2.set_device = lambda *a, **k: None
import brian2.devices.device as _dd
_dd.set_device = lambda *a, **k: None
_scale = float(os.environ.get("B2EX_SCALE", "1"))
if _scale != 1:
    from brian2.core.network import Network
    _orig_run = Network.run
    def _run(self, duration, *a, **k):
        return _orig_run(self, duration * _scale, *a, **k)
    Network.run = _run
# The same host-side random initialisation on both targets.
brian2.seed(int(os.environ.get("B2EX_SEED", "2011")))
_monitors = []
_orig_init = brian2.SpikeMonitor.__init__
def _init(self, *a, **k):
    _orig_init(self, *a, **k)
    _monitors.append(self)
brian2.SpikeMonitor.__init__ = _init
def _report():
    total = 0
    for m in _monitors:
        try:
            total += int(m.num_spikes)
        except Exception:
            pass
    print("B2EX_SPIKES " + json.dumps(total), flush=True)
atexit.register(_report)
sys.argv = [os.environ["B2EX_FILE"]]
# runpy makes the example the real __main__ module, so multiprocessing can pickle its
# functions.
import runpy
runpy.run_path(os.environ["B2EX_FILE"], run_name="__main__")
'''


def examples_dir():
    root = CACHE / f"brian2-{VERSION}"
    if not (root / "examples").is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--no-binary", "brian2", f"brian2=={VERSION}", "-d", str(CACHE)],
                       check=True)
        with tarfile.open(CACHE / f"brian2-{VERSION}.tar.gz") as tar:
            tar.extractall(CACHE, filter="data")
    return root / "examples"


def run_one(path, target, backend, timeout, scale, seed=2011):
    env = dict(os.environ, B2EX_TARGET=target, B2EX_BACKEND=backend, B2EX_FILE=str(path),
               B2EX_SCALE=str(scale), MPLBACKEND="Agg", B2EX_SEED=str(seed))
    t0 = time.time()
    try:
        p = subprocess.run([sys.executable, "-c", PREAMBLE], cwd=path.parent, env=env,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "seconds": timeout}
    out = {"seconds": round(time.time() - t0, 2)}
    spikes = [line for line in p.stdout.splitlines() if line.startswith("B2EX_SPIKES ")]
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        out.update(status="error", error=lines[-1][:300] if lines else f"exit {p.returncode}")
    else:
        out["status"] = "ok"
    if spikes:
        out["spikes"] = json.loads(spikes[-1].split(" ", 1)[1])
    return out


class NumpyCache:
    """numpy-target results on disk, written after every run so an interrupted yardstick
    keeps what it measured."""

    def __init__(self, path):
        self.path = path
        self.entries = {}
        if path is not None and path.exists():
            try:
                self.entries = json.loads(path.read_text())
            except ValueError:
                print(f"ignoring unreadable numpy cache {path}", file=sys.stderr)

    @staticmethod
    def key(path, seed, scale):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return f"{path.parent.name}/{path.name}:{digest}:seed={seed}:scale={scale:g}"

    def has(self, path, scale, seed=2011):
        return self.key(path, seed, scale) in self.entries

    def finished(self, path, scale, seed=2011):
        hit = self.entries.get(self.key(path, seed, scale))
        return hit is not None and hit["status"] == "ok"

    def run(self, path, timeout, scale, seed=2011):
        key = self.key(path, seed, scale)
        hit = self.entries.get(key)
        if hit is not None and (hit["status"] != "timeout" or hit["seconds"] >= timeout):
            return dict(hit, cached=True)
        result = run_one(path, "numpy", "", timeout, scale, seed)
        if self.path is not None:
            self.entries[key] = result
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
            tmp.replace(self.path)
        return result


def default_numpy_cache():
    import numpy

    return CACHE / f"numpy_results_{VERSION}_{numpy.__version__}.json"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--only", default="")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--json", default="")
    ap.add_argument("--seeds", type=int, default=1,
                    help="seeds for examples that differ at the first (default 1: no rerun)")
    ap.add_argument("--summary", default="", help="only summarize an earlier --json file")
    ap.add_argument("--numpy-cache", default="",
                    help="file of cached numpy-target results (default: in the cache folder)")
    ap.add_argument("--no-numpy-cache", action="store_true",
                    help="run the numpy target every time and keep nothing")
    ap.add_argument("--cached-only", action="store_true",
                    help="only the examples whose numpy result is cached (the device side of a "
                    "yardstick beside another one that is still filling the cache)")
    ap.add_argument("--numpy-ok-only", action="store_true",
                    help="only the examples whose cached numpy result ran to the end (the "
                    "examples the match rate counts; with --cached-only)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the results already in the --json file and run only the other "
                    "examples (the file is written after every example)")
    args = ap.parse_args()
    if args.summary:
        summarize(json.loads(Path(args.summary).read_text()))
        return
    root = examples_dir()
    numpy_cache = NumpyCache(None if args.no_numpy_cache
                             else Path(args.numpy_cache) if args.numpy_cache
                             else default_numpy_cache())
    args.numpy_run = numpy_cache.run
    paths = sorted(p for p in root.rglob("*.py") if args.only in str(p.relative_to(root)))
    results = {}
    if args.resume:
        if not args.json:
            ap.error("--resume needs --json FILE")
        if Path(args.json).exists():
            results = json.loads(Path(args.json).read_text())
    for path in paths:
        rel = str(path.relative_to(root))
        if rel in results:
            continue
        if args.cached_only and not numpy_cache.has(path, args.scale):
            continue
        if args.numpy_ok_only and not numpy_cache.finished(path, args.scale):
            continue
        if rel.startswith(NOT_APPLICABLE):
            results[rel] = {"verdict": "n/a (standalone device)"}
            print(f"{rel:60s} n/a", flush=True)
            continue
        ours = run_one(path, "wgpu", args.backend, args.timeout, args.scale)
        ref = numpy_cache.run(path, args.timeout, args.scale)
        if ours["status"] != "ok":
            verdict = f"wgpu {ours['status']}: {ours.get('error', '')}"
        elif ref["status"] != "ok":
            verdict = f"numpy {ref['status']}"
        else:
            a, b = ours.get("spikes", 0), ref.get("spikes", 0)
            ok = (a == b == 0) or (b > 0 and abs(a - b) <= 0.1 * b)
            verdict = "match" if ok else f"differs: {a} vs numpy {b} spikes"
            if not ok and args.seeds > 1:
                verdict, spread = over_seeds(path, args, a, b)
                ours["spread"], ref["spread"] = spread
        results[rel] = {"verdict": verdict, "wgpu": ours, "numpy": ref}
        cached = " cached" if ref.get("cached") else ""
        print(f"{rel:60s} {verdict} (wgpu {ours.get('seconds')} s, numpy "
              f"{ref.get('seconds')} s{cached})", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    summarize(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def over_seeds(path, args, first_ours, first_ref):
    """The verdict over ``args.seeds`` seeds (2011, 2012, ...), and both targets' counts."""
    ours, ref = [first_ours], [first_ref]
    for seed in range(2012, 2011 + args.seeds):
        o = run_one(path, "wgpu", args.backend, args.timeout, args.scale, seed)
        r = args.numpy_run(path, args.timeout, args.scale, seed)
        if o["status"] != "ok" or r["status"] != "ok":
            return f"differs: seed {seed} did not run on both targets", (ours, ref)
        ours.append(o.get("spikes", 0))
        ref.append(r.get("spikes", 0))

    def median(xs):
        xs = sorted(xs)
        return (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2

    ok = (min(ref) <= median(ours) <= max(ref)) and (min(ours) <= median(ref) <= max(ours))
    word = "match over seeds" if ok else "differs over seeds"
    return (f"{word}: wgpu {min(ours)}-{max(ours)} (median {median(ours):g}), numpy "
            f"{min(ref)}-{max(ref)} (median {median(ref):g}) over {len(ours)} seeds",
            (ours, ref))


def summarize(results):
    """Counts over the applicable examples; those whose numpy reference fails too (a
    missing optional module, an example broken with current numpy) are listed apart."""
    applicable = [r for r in results.values() if not r["verdict"].startswith("n/a")]
    ran = [r for r in applicable if r.get("wgpu", {}).get("status") == "ok"]
    match = [r for r in applicable if r["verdict"].startswith("match")]
    ref_ok = [r for r in applicable if r.get("numpy", {}).get("status") == "ok"]
    match_ref_ok = [r for r in ref_ok if r["verdict"].startswith("match")]
    seeds = [r for r in match if r["verdict"].startswith("match over seeds")]
    print(f"\n{len(applicable)} examples: {len(ran)} run on wgpu, {len(match)} match numpy's "
          f"spike count within 10% ({100 * len(match) / max(1, len(applicable)):.0f}%)")
    print(f"{len(ref_ok)} of them run on numpy: {len(match_ref_ok)} match "
          f"({100 * len(match_ref_ok) / max(1, len(ref_ok)):.0f}%)")
    if seeds:
        print(f"({len(seeds)} of the matches are over several seeds: stochastic examples whose "
              "counts spread alike on both targets)")


if __name__ == "__main__":
    main()
