"""Run Brian2's own test suite (the installed ``brian2.tests``) on the ``wgpu`` device.

    python scripts/brian2_suite.py [--backend cpu|gpu|auto] [--standalone-compatible]
                                   [-k EXPR] [--max N] [--timeout SECONDS]
                                   [--json PATH] [--expected PATH] [--update-expected]
                                   [--not-implemented-skips] [--collect-only]
                                   [TEST ...] [-- PYTEST_ARGS ...]
    python scripts/brian2_suite.py --from-json RESULT.json [--update-expected]

Selection (as ``brian2.test()`` builds it):

* default: the per-target "runtime" tests, marker expression
  ``not codegen_independent and not standalone_only and not long and not gsl``
  (what ``brian2.test()`` runs once per codegen target);
* ``--standalone-compatible``: ``standalone_compatible and not long and not gsl``
  (the tests ``brian2.test(test_standalone=...)`` runs on a standalone device; a subset
  of the runtime tests);
* ``--gsl``: the runtime tests marked ``gsl`` (what ``brian2.test(test_GSL=True)`` adds),
  with ``codegen.target = 'auto'``: under 'numpy' they skip themselves.

``-k EXPR`` narrows by name, ``--max N`` keeps only the first N selected tests, and
``TEST`` arguments pick files or node ids relative to ``brian2/tests`` (for example
``test_neurongroup.py`` or ``test_neurongroup.py::test_creation``).

How the device is set: Brian2's ``conftest.py`` (``brian2/conftest.py``, loaded because
the run passes ``--confcutdir`` at the brian2 package, exactly as ``brian2.test()`` does)
has an autouse fixture, ``setup_and_teardown``, that before *every* test copies
``config.brian_prefs`` into ``brian2.prefs`` and calls
``set_device(config.device, **config.device_options)``. Those config values come from
``brian2.tests.PreferencePlugin``; ``brian2.test()`` always sets its ``device`` to
``'runtime'`` for the per-target runs, so this script builds its own PreferencePlugin
with ``device = 'wgpu'`` and preferences ``devices.wgpu.backend = BACKEND``,
``codegen.target = 'numpy'`` (the device runs host-side code through numpy code objects,
and numpy-only checks in the tests key off this preference). After each test the
conftest calls ``reinit_and_delete()`` (all devices' ``reinit``, then the current one is
re-activated). A second, small plugin records the outcome of every test, the root
cause of each failure (the error under Brian2's BrianObjectException wrapper), counts the
runs each test hands to the engine, and checks that each test started with the wgpu
device active. Per-test timeouts (pytest-timeout, ``--timeout``, default 300 s) cover the
test function only, so a hang fails one test, not the run. (Some tests spend minutes in
sympy on a slow machine: Brian2's own ``test_check_for_invalid_values_linear_integrator``
took 105 s under plain numpy on a 2-core machine where it had taken far less before.)

The ``fake_randn_randn_fixture`` of Brian2's conftest swaps ``DEFAULT_FUNCTIONS['randn']``
for a Python function returning 0.5: the device treats it as the user function it is (not
its own generator), so the code objects calling it run through numpy on the host.

Output: ``N passed, N failed, N errors, N skipped`` on stdout and a JSON file (default
``output/brian2_suite_<backend>.json``, rewritten after every test so a crashed or
interrupted run leaves partial results) with the failing node ids and a one-line
message each.

Expected failures: ``tests/brian2_expected_failures.json`` maps, per backend
(``{"cpu": {...}, "gpu": {...}, "auto": {...}}``), node id -> one-line reason. The script
exits 1 if a test that ran failed but is not listed, or a listed test ran and passed
(take it off the list). Listed tests that did not run (subsets) are ignored; listed
tests that were skipped are reported but do not fail the run. ``--update-expected``
rewrites the backend's list from this run: failures that are already listed keep their
reason, new ones get the root cause's first line, passed/skipped ones are removed;
entries for tests outside the run are kept. ``--from-json`` does the same check (or
update) against an earlier result file without running anything.
"""

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_EXPECTED = REPO / "tests" / "brian2_expected_failures.json"
RUNTIME_MARKERS = "not codegen_independent and not standalone_only and not long"
STANDALONE_MARKERS = "standalone_compatible and not long"


def _first_line(text, limit=300):
    """First non-empty line; a line ending in ':' (numpy's assert messages) takes the
    next one along."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    if not lines:
        return ""
    line = lines[0]
    if line.endswith(":") and len(lines) > 1:
        line = f"{line} {lines[1]}"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _root_cause(exc):
    """The error under Brian2's BrianObjectException wrappers (Brian2 re-raises errors
    from preparing or running an object as BrianObjectException ``from`` the original)."""
    from brian2.core.base import BrianObjectException

    seen = set()
    while (isinstance(exc, BrianObjectException) and exc.__cause__ is not None
           and id(exc) not in seen):
        seen.add(id(exc))
        exc = exc.__cause__
    return exc


def _describe(exc):
    return _first_line(f"{type(exc).__name__}: {exc}")


class ResultPlugin:
    """Collects per-test outcomes; writes the JSON after every test."""

    def __init__(self, max_tests, writer):
        self.max_tests = max_tests
        self.writer = writer
        self.tests = {}  # nodeid -> dict(status, message, root, seconds)
        self.order = []
        self.not_on_wgpu = []
        self.runs = {}  # nodeid -> number of wgpu network runs during the test
        self.current_runs = 0
        self.collected = 0
        self.deselected_by_max = 0

    # -- selection ---------------------------------------------------------------------
    # trylast: after pytest's own -m/-k deselection (also a pytest_collection_modifyitems)
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        if self.max_tests is not None and len(items) > self.max_tests:
            dropped = items[self.max_tests:]
            del items[self.max_tests:]
            config.hook.pytest_deselected(items=dropped)
            self.deselected_by_max = len(dropped)
        self.collected = len(items)

    # -- device check ------------------------------------------------------------------
    def pytest_sessionstart(self, session):
        # Count the runs each test hands to the wgpu engine (tests that never call run()
        # only exercise Brian2's host-side code). WgpuDevice.network_run itself must not
        # be wrapped: it finds the caller's namespace by counting stack frames. backend()
        # is called once per run, after that lookup.
        from brian2wgpu.device import WgpuDevice

        original = WgpuDevice.backend
        plugin = self

        def backend(device):
            plugin.current_runs += 1
            return original(device)

        WgpuDevice.backend = backend
        self._restore = (WgpuDevice, original)

    def pytest_sessionfinish(self, session):
        cls, original = self._restore
        cls.backend = original

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item):
        from brian2.devices.device import all_devices, get_device

        if get_device() is not all_devices["wgpu"]:
            self.not_on_wgpu.append(f"{item.nodeid} ({type(get_device()).__name__})")
        self.current_runs = 0
        yield
        self.runs[item.nodeid] = self.current_runs

    # -- outcomes ----------------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        rep = outcome.get_result()
        if call.excinfo is not None and rep.failed:
            exc = call.excinfo.value
            root = _root_cause(exc)
            rep.b2w_root = _describe(root)

    def pytest_runtest_logreport(self, report):
        nodeid = report.nodeid
        entry = self.tests.get(nodeid)
        if entry is None:
            entry = self.tests[nodeid] = {"status": "passed", "seconds": 0.0}
            self.order.append(nodeid)
        entry["seconds"] = round(entry["seconds"] + report.duration, 3)
        if report.failed:
            status = "failed" if report.when == "call" else "error"
            if entry["status"] not in ("failed", "error"):
                entry["status"] = status
                entry["message"] = self._message(report)
                entry["root"] = getattr(report, "b2w_root", entry["message"])
                if report.when != "call":
                    entry["phase"] = report.when
        elif report.skipped and entry["status"] == "passed":
            entry["status"] = "skipped"
            entry["message"] = self._message(report)
        if report.when == "teardown":
            self.writer(self, complete=False)

    @staticmethod
    def _message(report):
        lr = report.longrepr
        if lr is None:
            return ""
        if isinstance(lr, tuple) and len(lr) == 3:  # skip: (path, lineno, message)
            return _first_line(lr[2])
        crash = getattr(lr, "reprcrash", None)
        if crash is not None:
            return _first_line(crash.message)
        return _first_line(str(lr))

    def counts(self):
        c = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        for t in self.tests.values():
            c[t["status"]] += 1
        c["ran_on_engine"] = sum(1 for n in self.runs if self.runs[n])
        return c


def load_expected(path, backend):
    if not path.exists():
        return {}, {}
    data = json.loads(path.read_text())
    return data, dict(data.get(backend, {}))


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after '--' go to pytest unchanged.")
    ap.add_argument("--backend", choices=("cpu", "gpu", "auto"), default="gpu")
    ap.add_argument("--standalone-compatible", action="store_true",
                    help="run the standalone-compatible subset instead of the runtime tests")
    ap.add_argument("--long", action="store_true", help="include tests marked 'long'")
    ap.add_argument("--gsl", action="store_true",
                    help="run Brian2's GSL tests (marked 'gsl') instead of the others")
    ap.add_argument("--float32", action="store_true",
                    help="core.default_float_dtype = float32, as brian2.test(float_dtype="
                         "float32) runs it; expected failures under '<backend>-float32'")
    ap.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    ap.add_argument("--max", type=int, default=None, help="run only the first N selected tests")
    ap.add_argument("--timeout", type=float, default=300,
                    help="per-test timeout in seconds (pytest-timeout), default 300")
    ap.add_argument("--json", default=None,
                    help="result file (default output/brian2_suite_<backend>.json)")
    ap.add_argument("--expected", default=str(DEFAULT_EXPECTED),
                    help=f"expected-failure list (default {DEFAULT_EXPECTED.relative_to(REPO)})")
    ap.add_argument("--update-expected", action="store_true",
                    help="rewrite the backend's expected-failure list from this run")
    ap.add_argument("--from-json", metavar="PATH",
                    help="run nothing: check (or, with --update-expected, update) the "
                         "expected-failure list against an earlier result file")
    ap.add_argument("--not-implemented-skips", action="store_true",
                    help="count tests raising NotImplementedError as skipped (Brian2's "
                         "fail_for_not_implemented=False); default: they fail")
    ap.add_argument("--collect-only", action="store_true",
                    help="only list the selected tests")
    ap.add_argument("--tb", default="short", help="pytest traceback style (default short)")
    ap.add_argument("tests", nargs="*",
                    help="test files or node ids relative to brian2/tests")
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    args = ap.parse_args(argv)

    key = args.backend + ("-float32" if args.float32 else "")
    stem = key + ("-gsl" if args.gsl else "")
    json_path = Path(args.json) if args.json else REPO / "output" / f"brian2_suite_{stem}.json"
    expected_path = Path(args.expected)
    if args.from_json:
        return from_json(args, expected_path)

    # Setting the environment variable too: it overrides the preference in the device,
    # so a stray BRIAN2WGPU_BACKEND in the caller's environment cannot change the backend.
    os.environ["BRIAN2WGPU_BACKEND"] = args.backend

    import brian2
    import brian2.tests as b2tests
    import brian2.units.fundamentalunits as fundamentalunits
    from brian2 import prefs
    from brian2.utils.logger import LOG_LEVELS, BrianLogger

    import brian2wgpu  # noqa: F401  registers the 'wgpu' device and its preferences

    b2dir = Path(brian2.__file__).resolve().parent
    tests_dir = b2dir / "tests"
    markers = STANDALONE_MARKERS if args.standalone_compatible else RUNTIME_MARKERS
    if args.long:
        markers = markers.replace(" and not long", "")
    if args.gsl:
        # Brian2's GSL tests (brian2.test(test_GSL=True) adds them to the runtime tests);
        # they skip themselves under the numpy target (numpy has no GSL support), so they
        # run with the user's default target, 'auto'.
        markers = "gsl and " + markers
    else:
        markers += " and not gsl"

    # The same preparation as brian2.tests.run(): default preferences, a fresh unit
    # registry, warnings only on the console, no unused-object warnings.
    prefs.reset_to_defaults()
    fundamentalunits.user_unit_register = fundamentalunits.UnitRegistry()
    BrianLogger.console_handler.setLevel(LOG_LEVELS["WARNING"])
    prefs["logging.warn_for_unused_objects"] = False
    prefs["codegen.target"] = "auto" if args.gsl else "numpy"
    prefs["codegen.string_expression_target"] = "numpy"
    prefs["devices.wgpu.backend"] = args.backend
    if args.float32:
        prefs["core.default_float_dtype"] = np.float32

    pref_plugin = b2tests.PreferencePlugin(prefs, not args.not_implemented_skips)
    pref_plugin.device = "wgpu"
    pref_plugin.device_options = {}

    meta = {
        "backend": key,
        "brian2": brian2.__version__,
        "brian2wgpu": brian2wgpu.__version__,
        "markers": markers,
        "k": args.keyword,
        "max": args.max,
        "tests": args.tests,
        "timeout_s": args.timeout,
        "not_implemented_skips": args.not_implemented_skips,
    }
    t_start = time.time()

    def write(plugin, complete):
        failures = {n: {"status": t["status"], "message": t.get("message", ""),
                        "root": t.get("root", "")}
                    for n, t in ((n, plugin.tests[n]) for n in plugin.order)
                    if t["status"] in ("failed", "error")}
        skipped = {n: plugin.tests[n].get("message", "") for n in plugin.order
                   if plugin.tests[n]["status"] == "skipped"}
        out = dict(meta, complete=complete, seconds=round(time.time() - t_start, 1),
                   selected=plugin.collected, counts=plugin.counts(), failures=failures,
                   skipped=skipped, not_on_wgpu_device=plugin.not_on_wgpu,
                   durations={n: plugin.tests[n]["seconds"] for n in plugin.order},
                   wgpu_runs={n: plugin.runs.get(n, 0) for n in plugin.order})
        out.update(extra_out)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = json_path.with_suffix(json_path.suffix + ".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        os.replace(tmp, json_path)

    extra_out = {}
    result = ResultPlugin(args.max, write)

    paths = [str(tests_dir / t) for t in args.tests] or [str(tests_dir)]
    pytest_args = paths + [
        "-c", str(tests_dir / "pytest.ini"),
        "--rootdir", str(b2dir.parent),
        "--confcutdir", str(b2dir),
        "-m", markers,
        "--quiet",
        f"--tb={args.tb}",
        # Brian2 logs at DEBUG level; replaying captured logs for every failure drowns
        # the output (pass "-- --show-capture=all" to get them back).
        "--show-capture=no",
        "-p", "no:cacheprovider",
        f"--timeout={args.timeout:g}",
        # Time the test function only: a timeout that fires inside Brian2's conftest
        # hooks (reinit_and_delete after setup) is an INTERNALERROR that ends the run.
        "-o", "timeout_func_only=true",
    ]
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.collect_only:
        pytest_args += ["--collect-only"]
    pytest_args += extra

    print(f"Brian2 {brian2.__version__} tests from {tests_dir}")
    print(f"device 'wgpu', backend {args.backend!r}, markers: {markers}"
          + (f", -k {args.keyword!r}" if args.keyword else "")
          + (f", first {args.max}" if args.max is not None else ""), flush=True)
    old_registry = copy.copy(fundamentalunits.user_unit_register)
    try:
        rc = pytest.main(pytest_args, plugins=[pref_plugin, result])
    finally:
        fundamentalunits.user_unit_register = old_registry
    if args.collect_only:
        print(f"{result.collected} tests selected")
        return int(rc)
    if rc not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED,
                  pytest.ExitCode.NO_TESTS_COLLECTED):
        print(f"pytest ended with exit code {int(rc)} ({rc!r})", file=sys.stderr)

    # -- expected failures -------------------------------------------------------------
    data, expected = load_expected(expected_path, key)
    ran = result.tests
    verdict = compare(ran, expected)
    extra_out.update({k: v for k, v in verdict.items() if k != "failed"},
                     pytest_exit_code=int(rc))
    write(result, complete=rc != pytest.ExitCode.INTERRUPTED)

    c = result.counts()
    print()
    print(f"{c['passed']} passed, {c['failed']} failed, {c['error']} errors, "
          f"{c['skipped']} skipped ({result.collected} selected, "
          f"{time.time() - t_start:.0f} s) -- backend {args.backend}; "
          f"{c['ran_on_engine']} tests called run() on the wgpu device")
    if result.not_on_wgpu:
        print(f"WARNING: {len(result.not_on_wgpu)} tests did not start on the wgpu device: "
              + ", ".join(result.not_on_wgpu[:5]))
    print(f"results: {json_path}")
    healthy = rc in (0, 1, 5) and not result.not_on_wgpu
    if args.update_expected:
        update_expected(expected_path, data, expected, key, ran, verdict["failed"])
        return 0 if healthy else 1
    return 0 if report(verdict, expected, expected_path, key) and healthy else 1


def compare(ran, expected):
    """ran: node id -> {"status", "root", "message"}; expected: node id -> reason."""
    failed = {n: t for n, t in ran.items() if t["status"] in ("failed", "error")}
    return {
        "failed": failed,
        "unexpected_failures": sorted(n for n in failed if n not in expected),
        "unexpected_passes": sorted(n for n, t in ran.items()
                                    if t["status"] == "passed" and n in expected),
        "expected_but_skipped": sorted(n for n, t in ran.items()
                                       if t["status"] == "skipped" and n in expected),
    }


def report(verdict, expected, expected_path, backend):
    failed = verdict["failed"]
    ok = True
    if verdict["unexpected_failures"]:
        ok = False
        print(f"\n{len(verdict['unexpected_failures'])} failures not in {expected_path.name} "
              f"[{backend}]:")
        for n in verdict["unexpected_failures"]:
            print(f"  {n}: {failed[n].get('root') or failed[n].get('message')}")
    if verdict["unexpected_passes"]:
        ok = False
        print(f"\n{len(verdict['unexpected_passes'])} tests in {expected_path.name} [{backend}] "
              "now pass -- remove them from the list:")
        for n in verdict["unexpected_passes"]:
            print(f"  {n}")
    if verdict["expected_but_skipped"]:
        print(f"\nnote: {len(verdict['expected_but_skipped'])} listed tests were skipped: "
              + ", ".join(verdict["expected_but_skipped"][:5]))
    n_expected = sum(1 for n in failed if n in expected)
    print(f"\n{'OK' if ok else 'FAIL'}: {len(failed)} failing tests, {n_expected} of them "
          f"expected; {len(verdict['unexpected_failures'])} unexpected failures, "
          f"{len(verdict['unexpected_passes'])} unexpected passes")
    return ok


def update_expected(expected_path, data, expected, backend, ran, failed):
    """Entries for tests outside this run stay; failures keep a listed reason or get the
    root cause's first line; tests that passed or were skipped leave the list."""
    new = {n: r for n, r in expected.items() if n not in ran}
    for n in sorted(failed):
        new[n] = expected.get(n) or failed[n].get("root") or failed[n].get("message", "")
    data = dict(data)
    data.setdefault("_comment",
                    "Brian2 tests (node ids as scripts/brian2_suite.py reports them) known "
                    "to fail on the wgpu device, per backend: id -> one-line reason.")
    data[backend] = dict(sorted(new.items()))
    expected_path.parent.mkdir(parents=True, exist_ok=True)
    expected_path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"expected failures for backend {backend!r}: {len(expected)} -> {len(new)} "
          f"entries ({expected_path})")


def from_json(args, expected_path):
    """--from-json: check (or --update-expected from) a result file without running."""
    res = json.loads(Path(args.from_json).read_text())
    backend = res["backend"]
    ran = {n: {"status": "passed"} for n in res["durations"]}
    for n, msg in res.get("skipped", {}).items():
        ran[n] = {"status": "skipped", "message": msg}
    for n, f in res.get("failures", {}).items():
        ran[n] = dict(f)
    c = res["counts"]
    print(f"{args.from_json}: {c['passed']} passed, {c['failed']} failed, {c['error']} errors, "
          f"{c['skipped']} skipped -- backend {backend}"
          + ("" if res.get("complete") else " (INCOMPLETE run)"))
    data, expected = load_expected(expected_path, backend)
    verdict = compare(ran, expected)
    if args.update_expected:
        update_expected(expected_path, data, expected, backend, ran, verdict["failed"])
        return 0
    return 0 if report(verdict, expected, expected_path, backend) else 1


if __name__ == "__main__":
    sys.exit(main())
