# Two entry points (see README): `make test` and `make demo`. Both set everything up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Brian2 2.11 needs Python >= 3.13; pyenv's 3.13 is on every machine of this kind. Its real
# binary first: pyenv's shim fails when 3.13 is not the selected version.
PY313 := $(shell ls -d $(HOME)/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | head -1)
ifeq ($(PY313),)
PY313 := $(shell for p in python3.13 python3; do c=$$(command -v $$p) && $$c -c 'import sys; assert sys.version_info >= (3, 13)' 2>/dev/null && echo $$c && break; done)
endif
# scipy: Brian2 solves SpatialNeuron cable equations with it (numpy target and our host path);
# dask[distributed] and joblib: the optional sweeps extra (brian2wgpu.distributed), tested;
# mypy: its stubtest checks _engine.pyi against the compiled module.
PYDEPS := "brian2==2.11.0" "maturin>=1.5,<2" pytest pytest-timeout matplotlib cython scipy \
	"dask[distributed]" joblib mypy

.PHONY: test demo vulkan gsl venv develop lint rust-test py-test bench clean brian2-suite brian2-suite-cpu \
	brian2-suite-float32 brian2-suite-2.10 \
	wheel wheel-check

# Lavapipe (Mesa's software Vulkan) when the machine has no Vulkan driver at all.
vulkan:
	@if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then \
		echo "no Vulkan driver found: installing mesa-vulkan-drivers (lavapipe)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers; \
	fi

# GSL's headers and library: Brian2's own GSL code (Cython) is the reference of
# tests/python/test_gsl.py.
gsl:
	@if [ ! -f /usr/include/gsl/gsl_odeiv2.h ]; then \
		echo "GSL not found: installing libgsl-dev (the reference of the GSL tests)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgsl-dev; \
	fi

$(PY):
	@test -n "$(PY313)" || (echo "Python 3.13 not found (needed by Brian2 2.11)"; exit 1)
	$(PY313) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PYDEPS)

venv: $(PY)

develop: venv
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/maturin develop --release -q

lint:
	cargo fmt --check
	cargo clippy --features python --tests -- -D warnings

rust-test: vulkan
	cargo test --release

py-test: develop gsl
	$(PY) -m pytest -q

# Brian2's runtime suite on the interpreter (6-11 minutes here): fails on any failure not in
# tests/brian2_expected_failures.json and on any listed test that passes.
brian2-suite-cpu: vulkan develop
	$(PY) scripts/brian2_suite.py --backend cpu
	$(PY) scripts/brian2_suite.py --backend cpu --gsl

# The suite runs before pytest: its summary counts the expected failures, and pytest's
# line closes the log.
test: vulkan lint rust-test brian2-suite-cpu py-test

demo: vulkan develop
	$(PY) examples/cuba.py

bench: vulkan develop
	cargo bench
	$(PY) benches/interp_vs_numpy.py

clean:
	rm -rf $(VENV) target dist

# The abi3 wheel (one for every CPython >= 3.13), manylinux-tagged by maturin, in dist/.
wheel: venv
	rm -rf dist
	$(VENV)/bin/maturin build --release -q -o dist

# A user's install: the wheel into a fresh virtualenv outside the checkout (Brian2 and numpy
# from PyPI; matplotlib for the example's plot), then the CUBA example (100 ms) run from
# there, not from the source tree, with no "error" on its output (issue 18).
wheel-check: vulkan wheel
	@set -e; where=$$(mktemp -d); \
	$(PY313) -m venv $$where/env; \
	$$where/env/bin/pip install -q dist/*.whl matplotlib; \
	cp examples/cuba.py $$where/; \
	cd $$where; \
	env -u XDG_RUNTIME_DIR env/bin/python -m brian2wgpu; \
	env -u XDG_RUNTIME_DIR env/bin/python cuba.py 4000 100 > out.txt 2>&1 || (cat out.txt; exit 1); \
	cat out.txt; \
	if grep -qi error out.txt; then echo "wheel-check: 'error' in the output"; exit 1; fi; \
	test -s output/cuba_raster.png; \
	cd / && rm -rf $$where

# Brian2's own test suite on the wgpu device (runtime selection, both backends).
brian2-suite: brian2-suite-cpu
	$(PY) scripts/brian2_suite.py --backend gpu
	$(PY) scripts/brian2_suite.py --backend gpu --gsl

# Brian2 2.10.x (pyproject says brian2>=2.10): its own suite on both backends, in a venv
# of its own with this checkout's package (built by `develop`) on PYTHONPATH.
VENV210 := .venv-brian2-2.10
$(VENV210)/bin/python:
	$(PY313) -m venv $(VENV210)
	$(VENV210)/bin/python -m pip install -q "brian2==2.10.1" pytest pytest-timeout scipy cython

brian2-suite-2.10: vulkan develop $(VENV210)/bin/python
	PYTHONPATH=python $(VENV210)/bin/python scripts/brian2_suite.py --backend cpu \
		--json output/brian2_suite_2.10_cpu.json
	PYTHONPATH=python $(VENV210)/bin/python scripts/brian2_suite.py --backend gpu \
		--json output/brian2_suite_2.10_gpu.json

# Brian2's float32 run (as brian2.test(float_dtype=float32)) on both backends.
brian2-suite-float32: vulkan develop
	$(PY) scripts/brian2_suite.py --backend cpu --float32
	$(PY) scripts/brian2_suite.py --backend gpu --float32
