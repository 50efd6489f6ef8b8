"""The typed boundary (issue 15, item 6): ``_engine.pyi`` describes the compiled module as
it is (mypy's stubtest: every name, class and signature), and the package ships
``py.typed`` so that type checkers use it."""

import os
import subprocess
import sys

import brian2wgpu


def test_engine_stub_matches_the_module(tmp_path):
    package = os.path.dirname(brian2wgpu.__file__)
    assert os.path.exists(os.path.join(package, "py.typed"))
    # PyO3 classes cannot be subclassed at all (the stub marks them @final), so the
    # "disjoint base" layout check says nothing more.
    out = subprocess.run([sys.executable, "-m", "mypy.stubtest", "brian2wgpu._engine",
                          "--ignore-disjoint-bases", "--concise"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
