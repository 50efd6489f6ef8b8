"""The disk cache for compiled Brian2 templates (python/brian2wgpu/template_cache.py):
written and read while the wgpu device is current, not otherwise, off with ''."""

import glob
import os

import jinja2
import pytest
from brian2 import NeuronGroup, ms, run, set_device, start_scope
from brian2.codegen.runtime.numpy_rt import NumpyCodeObject

import brian2wgpu  # noqa: F401
from brian2wgpu import template_cache


def fresh_templates():
    """Forget the templates this process compiled (so the next use loads again)."""
    loader = NumpyCodeObject.templater.templates
    loader._templates.clear()
    NumpyCodeObject.templater.env.cache.clear()


def model():
    start_scope()
    G = NeuronGroup(5, "dv/dt = -v/(10*ms) : 1", threshold="v>1", reset="v=0")
    G.v = "i*0.5"
    run(1 * ms)
    return G.v[:]


def files(where):
    return glob.glob(os.path.join(where, "**", "*.bc"), recursive=True)


@pytest.fixture
def where(tmp_path, monkeypatch):
    monkeypatch.setenv("BRIAN2WGPU_TEMPLATE_CACHE", str(tmp_path))
    yield str(tmp_path)
    set_device("runtime")


def test_written_and_used_on_the_wgpu_device(where, monkeypatch):
    set_device("wgpu")
    fresh_templates()
    first = model()
    written = files(where)
    assert written, "no template bytecode written"
    assert all(f"jinja2-{jinja2.__version__}" in f for f in written)
    loaded = []
    original = jinja2.bccache.Bucket.load_bytecode

    def spy(bucket, f):
        original(bucket, f)
        loaded.append(bucket.code is not None)

    monkeypatch.setattr(jinja2.bccache.Bucket, "load_bytecode", spy)
    fresh_templates()
    assert (model() == first).all()
    assert loaded and all(loaded)


def test_not_used_on_other_devices_or_when_off(where, monkeypatch):
    set_device("runtime")
    fresh_templates()
    model()
    assert files(where) == []
    set_device("wgpu")
    monkeypatch.setenv("BRIAN2WGPU_TEMPLATE_CACHE", "")
    assert template_cache.directory() is None
    fresh_templates()
    model()
    assert files(where) == []
