"""Tests of the differential-test case generator (tests/python/exprgen.py).

Run with:  /tmp/venv313/bin/python -m pytest tests/python/test_exprgen.py
"""

import json
import os
import subprocess
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import exprgen  # noqa: E402

TABLE = HERE.parent / "data" / "diff_cases.jsonl"
DEFAULT_SEED, DEFAULT_CASES = 1, 10000
KIND_TO_BRIAN = {exprgen.BOOL: "boolean", exprgen.INT: "integer", exprgen.FLOAT: "float"}


@pytest.fixture(scope="module")
def table_lines():
    return TABLE.read_text().splitlines()


@pytest.fixture(scope="module")
def table(table_lines):
    return [json.loads(line) for line in table_lines]


def decode(entry, key="values"):
    dtype = "float64" if key == "tol" else entry["dtype"]
    return exprgen.decode_values(entry[key], dtype)


# ---------------------------------------------------------------------------
# (a) determinism
# ---------------------------------------------------------------------------


def test_same_seed_gives_same_cases():
    first = list(exprgen.generate_lines(5, 300))
    assert first == list(exprgen.generate_lines(5, 300))
    assert first != list(exprgen.generate_lines(6, 300))


def test_cli_output_independent_of_hash_seed(tmp_path):
    outputs = []
    for hash_seed in ("0", "12345"):
        out = tmp_path / f"cases_{hash_seed}.jsonl"
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        subprocess.run([sys.executable, str(HERE / "exprgen.py"), "--seed", "3", "--cases", "200",
                        "--out", str(out)], check=True, env=env, capture_output=True)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


# ---------------------------------------------------------------------------
# (b) the reference is Brian2's numpy semantics
# ---------------------------------------------------------------------------


def brian_numpy_namespace():
    """Names a Brian2 numpy code object provides for our code blocks."""
    from brian2.codegen.runtime.numpy_rt.numpy_rt import NumpyCodeObject
    from brian2.core.functions import DEFAULT_CONSTANTS, DEFAULT_FUNCTIONS

    ns = {"logical_not": np.logical_not, "_numpy": np}
    for name in exprgen.FUNCTIONS:
        impls = DEFAULT_FUNCTIONS[name].implementations
        try:
            impl = impls[NumpyCodeObject]
        except KeyError:  # as Brian2's code object creation does (e.g. exprel)
            impls.add_numpy_implementation(DEFAULT_FUNCTIONS[name].pyfunc)
            impl = impls[NumpyCodeObject]
        ns[name] = impl.get_code(None)
    for name in exprgen.CONSTANTS:
        ns[name] = DEFAULT_CONSTANTS[name].value
    # Deliberate deviation: Brian2's numpy target implements floor/ceil as
    # np.int32(np.floor(x)) although it types them as float (and C++/Cython
    # return doubles); the reference follows the declared float type.
    ns["floor"], ns["ceil"] = np.floor, np.ceil
    return ns


def run_brian_numpy(case, ns):
    """Execute a case the way Brian2's numpy target runs a code block."""
    from brian2.parsing.rendering import NumpyNodeRenderer
    from brian2.parsing.statements import parse_statement

    ns = dict(ns)
    for inp in case["inputs"]:
        array = decode(inp).copy()
        ns[f"_array_{inp['name']}"] = array
        ns[inp["name"]] = array[0] if inp["scalar"] else array.copy()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for line in case["code"].splitlines():
            var, op, expr, _ = parse_statement(line)
            exec(f"{var} {op} {NumpyNodeRenderer().render_expr(expr)}", ns)
        result = {}
        for out in case["outputs"]:
            array = ns[f"_array_{out['name']}"]
            array[:] = ns[out["name"]]  # the write-back of Brian2's numpy template
            result[out["name"]] = array
    return result


def mismatches(case, got, exact):
    """Non-fragile output elements where `got` disagrees with the table."""
    bad = []
    for out in case["outputs"]:
        want, tol, have = decode(out), decode(out, "tol"), got[out["name"]]
        assert have.dtype == want.dtype
        check = ~np.isnan(tol)
        if want.dtype.kind != "f":
            ok = have == want
        else:
            both_nan = np.isnan(want) & np.isnan(have)
            if exact:
                # Identical dtypes at every node; still, numpy's SIMD loops (AVX-512 on
                # some CPUs) and its scalar path differ in last bits of transcendentals,
                # which later operations may amplify: within the element's error bound.
                with np.errstate(all="ignore"):
                    ulp = (have == want) | (
                        np.abs(have - want) <= tol + np.spacing(np.abs(want)))
                signed_zero = (want == 0) & (np.signbit(have) != np.signbit(want))
                ok = both_nan | (ulp & ~signed_zero)
            else:
                # numpy rounds its float64 intermediates once more when storing
                w, h = want.astype(np.float64), have.astype(np.float64)
                with np.errstate(all="ignore"):
                    slack = np.spacing(np.abs(want)).astype(np.float64)
                    close = np.isfinite(w) & (np.abs(h - w) <= tol + slack)
                ok = both_nan | close | (np.isinf(w) & (h == w))
        for i in np.flatnonzero(check & ~ok):
            bad.append((case["id"], out["name"], i, want[i], have[i], tol[i]))
    return bad


def reevaluate(case):
    """Evaluate a table case from its text with exprgen (returns Evaluator, results)."""
    ev = exprgen.Evaluator(case["float"], case["n"])
    kinds = {"float64": exprgen.FLOAT, "float32": exprgen.FLOAT, "int32": exprgen.INT,
             "bool": exprgen.BOOL}
    arrays = {inp["name"]: (kinds[inp["dtype"]], decode(inp), inp["scalar"]) for inp in case["inputs"]}
    return ev, ev.run(exprgen.parse_code(case["code"]), arrays)


def test_reference_matches_brian_numpy(table):
    ns = brian_numpy_namespace()
    sample = table[::3]
    exact_bad, approx_bad, approx_checked = [], [], 0
    for case in sample:
        ev, _ = reevaluate(case)
        got = run_brian_numpy(case, ns)
        if case["float"] == "f64" or not ev.mixed:
            # identical dtypes in every node: bit-identical results
            exact_bad += mismatches(case, got, exact=True)
        else:
            # f32 with int/float mixing: numpy promotes to float64 where the
            # reference stays in float32, so compare within the tolerance
            approx_checked += 1
            approx_bad += mismatches(case, got, exact=False)
    assert not exact_bad, exact_bad[:10]
    n_elements = sum(case["n"] * len(case["outputs"]) for case in sample)
    assert approx_checked > 50
    # float64 intermediates may rarely overflow/underflow differently
    assert len(approx_bad) <= 1e-3 * n_elements, approx_bad[:10]


def test_brian_numpy_floor_returns_int32():
    """Documents the one deliberate deviation (see brian_numpy_namespace)."""
    from brian2.codegen.runtime.numpy_rt.numpy_rt import NumpyCodeObject
    from brian2.core.functions import DEFAULT_FUNCTIONS
    from brian2.parsing.bast import brian_ast

    floor = DEFAULT_FUNCTIONS["floor"].implementations[NumpyCodeObject].get_code(None)
    assert floor(np.array([1.5])).dtype == np.int32
    assert brian_ast("floor(x)", brian_variables({"x": np.float64})).dtype == "float"


class _Var:
    def __init__(self, dtype, scalar=False):
        self.dtype = np.dtype(dtype)
        self.scalar = scalar


def brian_variables(dtypes, scalars=()):
    from brian2.core.functions import DEFAULT_CONSTANTS, DEFAULT_FUNCTIONS

    variables = dict(DEFAULT_FUNCTIONS)
    variables.update({name: DEFAULT_CONSTANTS[name] for name in exprgen.CONSTANTS})
    variables.update({name: _Var(dt, name in scalars) for name, dt in dtypes.items()})
    return variables


def test_brian_parses_and_types_every_statement(table):
    """Brian2's statement parser and type checker accept all code with our types."""
    from brian2.parsing.bast import brian_ast
    from brian2.parsing.statements import parse_statement

    for case in table:
        fdt = np.float32 if case["float"] == "f32" else np.float64
        dtypes = {inp["name"]: inp["dtype"] for inp in case["inputs"]}
        scalars = {inp["name"] for inp in case["inputs"] if inp["scalar"]}
        env = {name: exprgen.FLOAT if np.dtype(dt).kind == "f" else
               exprgen.INT if np.dtype(dt).kind == "i" else exprgen.BOOL
               for name, dt in dtypes.items()}
        for line, stmt in zip(case["code"].splitlines(), exprgen.parse_code(case["code"])):
            var, op, expr, _ = parse_statement(line)
            assert (var, op) == (stmt.target, stmt.op)
            assert exprgen.parse_expr(expr) == stmt.expr
            node = brian_ast(expr, brian_variables(dtypes, scalars))
            kind = exprgen.infer_kind(stmt.expr, env)
            assert node.dtype == KIND_TO_BRIAN[kind], (case["id"], line)
            if var in dtypes:
                # no float into int arrays, only booleans into bool arrays
                assert not (env[var] == exprgen.INT and kind == exprgen.FLOAT), line
                assert env[var] != exprgen.BOOL or (kind == exprgen.BOOL and op == "="), line
            elif var not in env:  # a new temporary
                env[var] = kind
                dtypes[var] = {exprgen.FLOAT: fdt, exprgen.INT: np.int32, exprgen.BOOL: bool}[kind]


def test_brian_pipeline_accepts_sample(table):
    """Brian2's full numpy code generation (incl. sympy optimisation) runs the code."""
    from brian2 import NeuronGroup, Network, defaultclock, prefs
    from brian2.utils.logger import BrianLogger

    BrianLogger.log_level_error()
    prefs.codegen.target = "numpy"
    failures = []
    for case in table[::100]:
        prefs.core.default_float_dtype = np.float32 if case["float"] == "f32" else np.float64
        units = {"float64": "1", "float32": "1", "int32": "integer", "bool": "boolean"}
        eqs = "\n".join(f"{inp['name']} : {units[inp['dtype']]}" + (" (shared)" if inp["scalar"] else "")
                        for inp in case["inputs"])
        group = NeuronGroup(case["n"], eqs)
        for inp in case["inputs"]:
            group.variables[inp["name"]].set_value(decode(inp))
        group.run_regularly(case["code"], dt=defaultclock.dt)
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                Network(group).run(defaultclock.dt)
        except Exception as exc:  # noqa: BLE001 - collect and report all
            failures.append((case["id"], case["code"], repr(exc)[:200]))
    prefs.core.default_float_dtype = np.float64
    # sympy can still fold rare literal combinations into undefined names
    assert len(failures) <= 1, failures


def test_float32_literals_round_once():
    """numpy rounds literals via float64; check that equals direct decimal->float32."""
    for text in exprgen.FLOAT_LITS + exprgen.FLOAT_LITS_F32 + exprgen.POW_EXPONENTS:
        value = np.float32(float(text))
        exact = Fraction(text)
        neighbours = [np.nextafter(value, np.float32(-np.inf)), np.nextafter(value, np.float32(np.inf))]
        dist = abs(Fraction(float(value)) - exact)
        assert all(dist < abs(Fraction(float(nb)) - exact) for nb in neighbours), text


def test_render_parse_roundtrip():
    rng = __import__("random").Random(0)
    for case_id in range(300):
        case = exprgen.generate_case(9, case_id)
        for stmt in exprgen.parse_code(case.code):
            for _ in range(3):
                text = exprgen.render(stmt.expr, rng, paren_prob=0.5)
                assert exprgen.parse_expr(text) == stmt.expr, text


# ---------------------------------------------------------------------------
# (c) the committed table is what the generator produces
# ---------------------------------------------------------------------------


def equivalent_lines(old, new):
    """Same case up to libm last-bit differences covered by the tolerances."""
    a, b = json.loads(old), json.loads(new)
    if {k: v for k, v in a.items() if k != "outputs"} != {k: v for k, v in b.items() if k != "outputs"}:
        return False
    for oa, ob in zip(a["outputs"], b["outputs"], strict=True):
        if (oa["name"], oa["dtype"]) != (ob["name"], ob["dtype"]):
            return False
        ta, tb = decode(oa, "tol"), decode(ob, "tol")
        if np.count_nonzero(np.isnan(ta) != np.isnan(tb)) > 1:
            return False
        keep = ~np.isnan(ta) & ~np.isnan(tb)
        va, vb = decode(oa)[keep], decode(ob)[keep]
        if va.dtype.kind != "f":
            if not np.array_equal(va, vb):
                return False
            continue
        va, vb = va.astype(np.float64), vb.astype(np.float64)
        with np.errstate(all="ignore"):
            close = np.abs(va - vb) <= np.maximum(ta[keep], tb[keep])
        if not np.all(close | (va == vb) | (np.isnan(va) & np.isnan(vb))):
            return False
    return True


def test_committed_table_is_current(table_lines):
    fresh = list(exprgen.generate_lines(DEFAULT_SEED, DEFAULT_CASES))
    assert len(fresh) == len(table_lines) == DEFAULT_CASES
    if fresh == table_lines:
        return
    # A different libm/CPU may change last bits of transcendental results.
    differing = [i for i, (old, new) in enumerate(zip(table_lines, fresh)) if old != new]
    bad = [i for i in differing if not equivalent_lines(table_lines[i], fresh[i])]
    assert not bad, f"table out of date (regenerate with exprgen.py); cases {bad[:20]}"
    # (on an AVX-512 machine numpy's SIMD transcendentals change last bits in ~15% of cases)
    assert len(differing) <= 0.25 * DEFAULT_CASES, f"{len(differing)} cases differ in last bits"
