"""benches/gpu_check.py, the check a lent GPU runs, keeps working: its CI-size mode runs on
the adapter here and writes every section of its JSON."""

import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_gpu_check_quick_writes_its_json(gpu, tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benches", "gpu_check.py"),
                           "--quick", "--out", str(out)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["adapter"]["name"]
    d = report["differential"]
    assert d["cases"] >= 30 and d["cpu_agree"] == d["cases"], d
    assert {f["backend"] for f in report["floor"]} == {"gpu", "cpu"}
    runs = [m for m in report["models"] if "error" not in m]
    assert len(runs) == 16 and not report["skipped"], report["skipped"]
    # Both backends simulate the same network: identical spike counts.
    by_key = {}
    for m in runs:
        by_key.setdefault((m["model"], m["n"]), {})[m["backend"]] = m["spikes"]
    for key, spikes in by_key.items():
        assert spikes["gpu"] == spikes["cpu"] > 0, (key, spikes)
