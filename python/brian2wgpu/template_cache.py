"""A disk cache for the compiled form of Brian2's numpy code templates.

Every code object the device creates goes through Brian2's numpy templates (their checks,
the host fallback, the template's declared variables). jinja2 parses and compiles each
template to Python bytecode the first time a process uses it: ~10 ms per template, ~0.1 s
for CUBA's nine, paid by every script. jinja2's own bytecode-cache hook stores that
bytecode; its buckets already reject entries whose template source, jinja2 version or
Python version differ.

Only active while the `wgpu` device is the current device, so the numpy target in the same
process keeps Brian2's own behaviour. Directory: preference ``devices.wgpu.template_cache``
('' turns the cache off), overridden by the environment variable
``BRIAN2WGPU_TEMPLATE_CACHE``.
"""

import hashlib
import os
import tempfile

import jinja2
from brian2.codegen.runtime.numpy_rt import NumpyCodeObject
from brian2.devices.device import get_device
from brian2.utils.logger import get_logger

from .integrator_cache import cache_home, configured_directory

logger = get_logger("brian2.devices.wgpu.template_cache")

# The environment options that change what jinja2 compiles a template to.
_COMPILE_OPTIONS = ("block_start_string", "block_end_string", "variable_start_string",
                    "variable_end_string", "comment_start_string", "comment_end_string",
                    "line_statement_prefix", "line_comment_prefix", "trim_blocks",
                    "lstrip_blocks", "newline_sequence", "keep_trailing_newline",
                    "optimized", "autoescape", "extensions")


def default_directory():
    return cache_home("templates")


def directory():
    """The cache directory in force, or None when the cache is off."""
    return configured_directory("BRIAN2WGPU_TEMPLATE_CACHE", "devices.wgpu.template_cache")


class TemplateBytecodeCache(jinja2.BytecodeCache):
    """jinja2's bytecode hook, on disk, for the wgpu device only."""

    def __init__(self, environment):
        options = repr([getattr(environment, name, None) for name in _COMPILE_OPTIONS])
        self._options = hashlib.sha1(options.encode()).hexdigest()[:16]

    def _path(self, bucket):
        from .device import WgpuDevice

        where = directory()
        if where is None or not isinstance(get_device(), WgpuDevice):
            return None
        return os.path.join(where, f"jinja2-{jinja2.__version__}", self._options,
                            bucket.key + ".bc")

    def load_bytecode(self, bucket):
        path = self._path(bucket)
        if path is None:
            return
        try:
            with open(path, "rb") as f:
                bucket.load_bytecode(f)
        except OSError:
            pass

    def dump_bytecode(self, bucket):
        path = self._path(bucket)
        if path is None:
            return
        # Written to a temporary file and renamed: concurrent runs never read half an entry.
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                bucket.write_bytecode(f)
            os.replace(tmp, path)
        except OSError as exc:
            logger.debug(f"could not write the template cache entry {path}: {exc}")


def install():
    """Give the numpy templates' jinja2 environment the cache (idempotent)."""
    env = NumpyCodeObject.templater.env
    if not isinstance(env.bytecode_cache, TemplateBytecodeCache):
        env.bytecode_cache = TemplateBytecodeCache(env)
