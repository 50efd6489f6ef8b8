#!/usr/bin/env python3
"""Random Brian2 abstract-code cases with a numpy reference, for differential tests.

Usage:
    python tests/python/exprgen.py --seed 1 --cases 10000 --out tests/data/diff_cases.jsonl

Every line of the output is one JSON case:
    {"id", "float": "f64"|"f32", "n", "inputs": [...], "code", "outputs": [...]}
inputs:  {"name", "dtype", "scalar", "values"}
outputs: {"name", "dtype", "values", "tol"}
Floats are hex strings of their IEEE bits ("%016x" for float64, "%08x" for
float32); int32 values are JSON integers, bools 0/1.  "tol" holds one absolute
tolerance per element as hex float64 bits; a NaN tolerance marks a fragile
element that must not be compared.  Expected NaN means "must be NaN", expected
+-inf means "must be the same inf".  Int/bool tolerances are 0 or NaN.

Semantics of the reference (node by node, numpy with warnings suppressed):
* Types follow Brian2's type rules (brian2.parsing.bast): the result of an
  arithmetic operator is the "highest" operand type, `/` always gives float,
  comparisons and and/or/not give bool.  Every float node is computed in the
  case's kernel float type (float32 in "f32" cases; int and bool operands are
  converted to it first).  In f64 cases this is exactly numpy's behaviour; in
  f32 cases it differs from Brian2-numpy only where numpy would promote an
  int/float mix to float64.
* int32 arithmetic wraps; `//` and `%` are floored, `x // 0 == x % 0 == 0`.
  Float `//` and `%` are numpy's floor_divide and remainder.
* floor and ceil return floats (Brian2's declared type and its C++/Cython
  implementation; Brian2's numpy target casts them to int32 instead).
* int() truncates towards zero to int32; NaN, inf and out-of-range
  arguments are fragile.  sign(0) == 0, exprel as in Brian2, clip is np.clip.
* `array ** scalar` is numpy's operator (square/sqrt/reciprocal for 2, 0.5,
  -1), so (-inf) ** 0.5 (NaN there, inf for pow) is fragile.
* Error bounds: leaves are exact, every op adds u ulps of its result (1 for
  correctly rounded ops, 4 for transcendental functions and non-integer
  powers, 0 if the result is exactly representable) plus |derivative| times
  the argument errors.  Results that could jump (floor, int, //, %,
  comparisons, sign, finite <-> inf/NaN) within the argument errors are
  fragile, and so is everything computed from them.  float32 subnormals count
  as uncertain by their own size (a GPU may flush them to zero).
"""

import argparse
import ast
import json
import math
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from itertools import product
from pathlib import Path

import numpy as np

BOOL, INT, FLOAT = "bool", "int", "float"
F64_SHARE = 0.75
DEFAULT_N = 8

# ---------------------------------------------------------------------------
# Expression trees
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Name:
    id: str


@dataclass(frozen=True)
class Num:
    text: str  # literal exactly as written, e.g. "1e-3", ".5", "7"

    @property
    def is_int(self):
        return re.fullmatch(r"\d+", self.text) is not None


@dataclass(frozen=True)
class BoolLit:
    value: bool


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not"
    operand: object


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / // % **
    left: object
    right: object


@dataclass(frozen=True)
class Compare:
    op: str  # < <= > >= == !=
    left: object
    right: object


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" / "or"
    left: object
    right: object


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple


@dataclass(frozen=True)
class Statement:
    target: str
    op: str  # = += -= *= /=
    expr: object


CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf}

# Brian2 DEFAULT_FUNCTIONS covered here: name -> (arity, return type rule)
FUNCTIONS = {
    **{
        f: (1, FLOAT)
        for f in (
            "cos sin tan cosh sinh tanh exp log log10 expm1 exprel log1p sqrt "
            "arccos arcsin arctan floor ceil"
        ).split()
    },
    "abs": (1, "highest"),
    "sign": (1, "highest"),
    "clip": (3, "highest"),
    "int": (1, INT),
}
TRANSCENDENTAL = (
    "cos sin tan cosh sinh tanh exp log log10 expm1 exprel log1p sqrt arccos arcsin arctan"
).split()

_RANK = {BOOL: 0, INT: 1, FLOAT: 2}


def highest(*kinds):
    return max(kinds, key=_RANK.__getitem__)


def infer_kind(node, env, numpy_floor=False):
    """Brian2's type of an expression; env maps variable names to kinds.

    With numpy_floor, floor/ceil give int as in Brian2's numpy target.
    """
    if numpy_floor and isinstance(node, Call) and node.func in ("floor", "ceil"):
        return INT
    sub = lambda n: infer_kind(n, env, numpy_floor)  # noqa: E731
    if isinstance(node, Name):
        return env[node.id] if node.id in env else FLOAT
    if isinstance(node, Num):
        return INT if node.is_int else FLOAT
    if isinstance(node, BoolLit):
        return BOOL
    if isinstance(node, Unary):
        return BOOL if node.op == "not" else sub(node.operand)
    if isinstance(node, BinOp):
        if node.op == "/":
            return FLOAT
        return highest(sub(node.left), sub(node.right))
    if isinstance(node, (Compare, BoolOp)):
        return BOOL
    if isinstance(node, Call):
        ret = FUNCTIONS[node.func][1]
        if ret == "highest":
            return highest(*(sub(a) for a in node.args))
        return ret
    raise TypeError(node)


def children(node):
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, (BinOp, Compare, BoolOp)):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    return ()


def walk(node):
    yield node
    for c in children(node):
        yield from walk(c)


def has_var(node):
    return any(isinstance(n, Name) and n.id not in CONSTANTS for n in walk(node))


def is_literal(node):
    """A literal-only leaf: number, bool, named constant or its negation."""
    if isinstance(node, Unary) and node.op == "-":
        return is_literal(node.operand)
    return isinstance(node, (Num, BoolLit)) or (
        isinstance(node, Name) and node.id in CONSTANTS
    )


# ---------------------------------------------------------------------------
# Rendering (Python precedence, minimal parentheses) and parsing
# ---------------------------------------------------------------------------

_PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6,
         "//": 6, "%": 6, "neg": 7, "**": 8, "atom": 9}


def _prec(node):
    if isinstance(node, BoolOp):
        return _PREC[node.op]
    if isinstance(node, Unary):
        return _PREC["not"] if node.op == "not" else _PREC["neg"]
    if isinstance(node, Compare):
        return _PREC["cmp"]
    if isinstance(node, BinOp):
        return _PREC[node.op]
    return _PREC["atom"]


def render(node, rng=None, paren_prob=0.08):
    """Render an expression; with rng, redundant parentheses are sprinkled in."""

    def sub(child, needs_parens):
        text = render(child, rng, paren_prob)
        if _prec(child) < _PREC["atom"] and (
            needs_parens or (rng is not None and rng.random() < paren_prob)
        ):
            return f"({text})"
        return text

    if isinstance(node, Name):
        return node.id
    if isinstance(node, Num):
        return node.text
    if isinstance(node, BoolLit):
        return "True" if node.value else "False"
    if isinstance(node, Call):
        return f"{node.func}({', '.join(render(a, rng, paren_prob) for a in node.args)})"
    p = _prec(node)
    if isinstance(node, Unary):
        if node.op == "not":
            return f"not {sub(node.operand, _prec(node.operand) < p)}"
        # "-(-x)" rather than "--x"
        return f"-{sub(node.operand, _prec(node.operand) <= p)}"
    if isinstance(node, BinOp) and node.op == "**":  # right-associative
        left = sub(node.left, _prec(node.left) <= p)
        right = sub(node.right, _prec(node.right) < _PREC["neg"])
        return f"{left} ** {right}"
    if isinstance(node, Compare):  # comparisons must not chain
        return f"{sub(node.left, _prec(node.left) <= p)} {node.op} {sub(node.right, _prec(node.right) <= p)}"
    # left-associative binary operators and and/or
    return f"{sub(node.left, _prec(node.left) < p)} {node.op} {sub(node.right, _prec(node.right) <= p)}"


def render_statement(stmt, rng=None):
    text = render(stmt.expr, rng)
    if stmt.op != "=" and _prec(stmt.expr) <= _PREC["not"]:
        # Brian2's unit check rewrites "a += rhs" textually as "a + rhs"
        text = f"({text})"
    return f"{stmt.target} {stmt.op} {text}"


_AST_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/",
               ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}
_AST_CMPOPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
               ast.Eq: "==", ast.NotEq: "!="}


def parse_expr(text):
    """Parse expression text (Python syntax, as Brian2 does) into a tree."""

    def conv(n):
        if isinstance(n, ast.Name):
            return Name(n.id)
        if isinstance(n, ast.Constant):
            if isinstance(n.value, bool):
                return BoolLit(n.value)
            return Num(ast.get_source_segment(text, n))
        if isinstance(n, ast.UnaryOp):
            op = {ast.USub: "-", ast.Not: "not"}[type(n.op)]
            return Unary(op, conv(n.operand))
        if isinstance(n, ast.BinOp):
            return BinOp(_AST_BINOPS[type(n.op)], conv(n.left), conv(n.right))
        if isinstance(n, ast.Compare):
            if len(n.ops) != 1:
                raise SyntaxError("chained comparison")
            return Compare(_AST_CMPOPS[type(n.ops[0])], conv(n.left), conv(n.comparators[0]))
        if isinstance(n, ast.BoolOp):
            op = "and" if isinstance(n.op, ast.And) else "or"
            values = [conv(v) for v in n.values]
            node = values[0]
            for v in values[1:]:
                node = BoolOp(op, node, v)
            return node
        if isinstance(n, ast.Call):
            return Call(n.func.id, tuple(conv(a) for a in n.args))
        raise SyntaxError(f"unsupported syntax {type(n).__name__}")

    return conv(ast.parse(text.strip(), mode="eval").body)


_STATEMENT_RE = re.compile(r"^\s*([A-Za-z_]\w*)\s*(\+=|-=|\*=|/=|=)\s*(.+?)\s*$")


def parse_code(code):
    stmts = []
    for line in code.splitlines():
        if not line.strip():
            continue
        m = _STATEMENT_RE.match(line)
        if m is None:
            raise SyntaxError(f"cannot parse statement {line!r}")
        stmts.append(Statement(m.group(1), m.group(2), parse_expr(m.group(3))))
    return stmts


# ---------------------------------------------------------------------------
# Reference evaluation with a running error bound
# ---------------------------------------------------------------------------

F64 = np.float64


@dataclass
class Val:
    kind: str
    v: np.ndarray  # bool_, int32 or the kernel float dtype
    e: np.ndarray  # float64 absolute error bound; NaN = fragile (unknown)
    scalar: bool = False  # a Python/numpy scalar in Brian2's numpy code


def _cls(v):
    """0 finite, 1 +inf, 2 -inf, 3 NaN."""
    return np.select([np.isnan(v), np.isposinf(v), np.isneginf(v)], [3, 1, 2], 0)


def _exact_mask(fn, xs, v):
    """Elementwise: is the float result v exactly fn(*xs) in rational arithmetic?"""
    out = np.zeros(v.shape, bool)
    for i in range(v.size):
        args = [float(x[i]) for x in xs]
        vi = float(v[i])
        if not all(math.isfinite(a) for a in args + [vi]):
            continue
        try:
            r = fn(*map(Fraction, args))
        except (ZeroDivisionError, OverflowError, ValueError):
            continue
        out[i] = r is not None and r == Fraction(vi)
    return out


def _frac_pow(x, y):
    if y.denominator != 1 or abs(y) > 64 or (x == 0 and y < 0):
        return None
    return x ** int(y)


_FRAC_OPS = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
    "/": lambda x, y: x / y,
    "%": lambda x, y: x - y * math.floor(x / y),
    "**": _frac_pow,
}

_NP_BINOPS = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide,
              "//": np.floor_divide, "%": np.remainder, "**": np.power}
_NP_CMPOPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
              "==": np.equal, "!=": np.not_equal}


def _exprel(x):
    """Brian2's exprel for arrays: 1 for |x| < 1e-16, inf for x > 717."""
    x = np.asarray(x)
    out = np.empty_like(x)
    small = np.abs(x) < 1e-16
    big = x > 717
    mid = ~(small | big)
    out[small] = 1.0
    out[big] = np.inf
    out[mid] = np.expm1(x[mid]) / x[mid]
    return out


def _d_exprel(x):
    ex = np.exp(x)
    d = ((x - 1) * ex + 1) / (x * x)
    return np.where(np.abs(x) < 1e-3, 0.5 + x / 3 + x * x / 8, d)


# name -> (numpy function, |derivative| evaluated in float64, ulps, exact points)
_UNARY = {
    "cos": (np.cos, lambda x: np.abs(np.sin(x)), 4, {0.0: 1.0}),
    "sin": (np.sin, lambda x: np.abs(np.cos(x)), 4, {0.0: 0.0}),
    "tan": (np.tan, lambda x: 1 + np.tan(x) ** 2, 4, {0.0: 0.0}),
    "cosh": (np.cosh, lambda x: np.abs(np.sinh(x)), 4, {0.0: 1.0}),
    "sinh": (np.sinh, np.cosh, 4, {0.0: 0.0}),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2, 4, {0.0: 0.0}),
    "exp": (np.exp, np.exp, 4, {0.0: 1.0}),
    "log": (np.log, lambda x: 1 / np.abs(x), 4, {1.0: 0.0}),
    "log10": (np.log10, lambda x: 1 / (np.abs(x) * math.log(10)), 4, {1.0: 0.0}),
    "expm1": (np.expm1, np.exp, 4, {0.0: 0.0}),
    "exprel": (_exprel, _d_exprel, 4, {0.0: 1.0}),
    "log1p": (np.log1p, lambda x: 1 / np.abs(1 + x), 4, {0.0: 0.0}),
    "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(np.abs(x)), 1, {0.0: 0.0}),
    "arccos": (np.arccos, lambda x: 1 / np.sqrt(1 - x * x), 4, {1.0: 0.0}),
    "arcsin": (np.arcsin, lambda x: 1 / np.sqrt(1 - x * x), 4, {0.0: 0.0}),
    "arctan": (np.arctan, lambda x: 1 / (1 + x * x), 4, {0.0: 0.0}),
}


class Evaluator:
    """Evaluates statements node by node in a case's dtypes with error bounds."""

    def __init__(self, ftype, n):
        self.fdt = np.dtype(np.float32 if ftype == "f32" else np.float64)
        self.n = n
        self.finfo = np.finfo(self.fdt)
        self.mant = self.finfo.nmant  # floats >= 2**mant are all integers
        self.mixed = False  # an int/bool was converted to float32 (numpy would use float64)

    # -- helpers -----------------------------------------------------------
    def _zeros(self):
        return np.zeros(self.n, F64)

    def _leaf_float(self, v):
        v = np.asarray(v, self.fdt)
        e = self._zeros()
        if self.fdt == np.float32:  # a GPU may flush float32 subnormals to zero
            sub = (v != 0) & (np.abs(v) < self.finfo.tiny)
            e = np.where(sub, np.abs(v).astype(F64), e)
        return Val(FLOAT, v, e)

    @staticmethod
    def _fragile(*vals):
        m = np.zeros(len(vals[0].e), bool)
        for a in vals:
            m |= np.isnan(a.e)
        return m

    @staticmethod
    def _interval(v, e):
        """[lo, hi] around v (float64), widened outwards by one ulp when e > 0."""
        v = np.asarray(v, F64)
        e = np.nan_to_num(e, nan=0.0)
        pos = e > 0
        lo = np.where(pos, np.nextafter(v - e, -np.inf), v)
        hi = np.where(pos, np.nextafter(v + e, np.inf), v)
        return lo, hi

    def _corners(self, vals):
        """Yield argument tuples at the corners of the inputs' error boxes."""
        for signs in product((-1.0, 1.0), repeat=len(vals)):
            xs = []
            for s, a in zip(signs, vals):
                e = np.nan_to_num(a.e, nan=0.0)
                moved = (a.v.astype(F64) + s * e).astype(a.v.dtype)
                xs.append(np.where(e > 0, moved, a.v))
            yield xs

    def _class_changes(self, fn, vals, v):
        """Could input errors turn the result from finite into inf/NaN (or back)?"""
        if not any(np.any(np.nan_to_num(a.e) > 0) for a in vals):
            return np.zeros(self.n, bool)
        c = _cls(v)
        bad = np.zeros(self.n, bool)
        for xs in self._corners(vals):
            bad |= _cls(fn(*xs)) != c
        return bad

    def _finish(self, v, prop, ulps, exact, fragile):
        """Assemble a float node: own rounding + propagated error, fragility rules."""
        v = np.asarray(v, self.fdt)
        ulp = np.spacing(np.abs(v)).astype(F64)
        own = np.where(exact, 0.0, ulps * ulp)
        err = prop + own
        fin = np.isfinite(v)
        with np.errstate(all="ignore"):
            fragile = fragile | (fin & ~np.isfinite(err))
            fragile |= fin & (np.abs(v).astype(F64) + err > float(self.finfo.max))
        if self.fdt == np.float32:
            sub = fin & (v != 0) & (np.abs(v) < self.finfo.tiny)
            err = np.where(sub, np.maximum(err, np.abs(v).astype(F64)), err)
        err = np.where(fin, err, 0.0)
        return Val(FLOAT, v, np.where(fragile, np.nan, err))

    def to_float(self, a):
        if a.kind == FLOAT:
            return a
        if self.fdt == np.float32:
            self.mixed = True
        v = a.v.astype(self.fdt)
        conv = np.abs(v.astype(F64) - a.v.astype(F64))  # int32 -> float32 rounding
        return Val(FLOAT, v, a.e + conv, a.scalar)

    def to_int(self, a):
        return a if a.kind == INT else Val(INT, a.v.astype(np.int32), a.e.copy(), a.scalar)

    # -- expressions -------------------------------------------------------
    def eval(self, node, env):
        with np.errstate(all="ignore"):
            return self._eval(node, env)

    def _eval(self, node, env):
        if isinstance(node, Name) and node.id in env:
            return env[node.id]
        val = self._eval_node(node, env)
        scalar = self._is_scalar(node, env)
        return val if val.scalar == scalar else Val(val.kind, val.v, val.e, scalar)

    @staticmethod
    def _is_scalar(node, env):
        """Literals are Python scalars; operations on scalars only stay scalar."""
        if isinstance(node, Name) and node.id in env:
            return env[node.id].scalar
        return all(Evaluator._is_scalar(c, env) for c in children(node))

    def _eval_node(self, node, env):
        if isinstance(node, Name):
            return self._leaf_float(np.full(self.n, CONSTANTS[node.id]))
        if isinstance(node, Num):
            if node.is_int:
                return Val(INT, np.full(self.n, int(node.text), np.int32), self._zeros())
            return self._leaf_float(np.full(self.n, float(node.text)))
        if isinstance(node, BoolLit):
            return Val(BOOL, np.full(self.n, node.value), self._zeros())
        if isinstance(node, Unary):
            a = self._eval(node.operand, env)
            if node.op == "not":
                return Val(BOOL, ~a.v, a.e.copy())
            return Val(a.kind, -a.v, a.e.copy())
        if isinstance(node, BinOp):
            return self.binop(node.op, self._eval(node.left, env), self._eval(node.right, env))
        if isinstance(node, Compare):
            return self.compare(node.op, self._eval(node.left, env), self._eval(node.right, env))
        if isinstance(node, BoolOp):
            return self.boolop(node.op, self._eval(node.left, env), self._eval(node.right, env))
        if isinstance(node, Call):
            return self.call(node.func, [self._eval(a, env) for a in node.args])
        raise TypeError(node)

    def binop(self, op, a, b):
        kind = FLOAT if op == "/" else highest(a.kind, b.kind)
        if kind == FLOAT:
            return self.float_binop(op, self.to_float(a), self.to_float(b))
        a, b = self.to_int(a), self.to_int(b)
        x, y = a.v, b.v
        v = _NP_BINOPS[op](x, y).astype(np.int32)
        e = np.where(self._fragile(a, b), np.nan, 0.0)
        if op in ("//", "%"):  # INT_MIN // -1 overflows (undefined in C)
            e = np.where((x == np.iinfo(np.int32).min) & (y == -1), np.nan, e)
        return Val(INT, v, e)

    def float_binop(self, op, a, b):
        x, y = a.v, b.v
        X, Y = x.astype(F64), y.astype(F64)
        ex, ey = np.nan_to_num(a.e), np.nan_to_num(b.e)
        fn = _NP_BINOPS[op]
        if op == "**" and b.scalar and not a.scalar:
            # numpy's array ** scalar uses square/sqrt/reciprocal for 2, 0.5, -1
            fn = lambda base, expo: np.power(base, expo[0])  # noqa: E731
        v = fn(x, y)
        V = v.astype(F64)
        fragile = self._fragile(a, b) | self._class_changes(fn, [a, b], v)
        ulps = 1.0
        exact = np.zeros(self.n, bool)

        def term(d, e):  # derivative * error, 0 where the error is 0
            return np.where(e > 0, np.abs(d) * e, 0.0)

        if op in ("+", "-"):
            prop = ex + ey
            exact = _exact_mask(_FRAC_OPS[op], [x, y], v)
        elif op == "*":
            prop = term(np.abs(Y) + ey, ex) + term(X, ey)
            exact = _exact_mask(_FRAC_OPS[op], [x, y], v)
        elif op in ("/", "//", "%"):
            fragile |= (ey > 0) & (ey >= np.abs(Y))  # divisor may be 0
            denom = np.abs(Y) - ey
            prop = term(1 / denom, ex) + term(V / denom if op == "/" else X / Y / denom, ey)
            if op == "/":
                exact = _exact_mask(_FRAC_OPS["/"], [x, y], v)
            else:
                # quotient as a naive x/y would round it, with its error
                q = (x / y).astype(F64)
                q_exact = _exact_mask(_FRAC_OPS["/"], [x, y], (x / y))
                q_err = prop + np.where(q_exact, 0.0, np.spacing(np.abs((x / y))).astype(F64))
                lo, hi = self._interval(q, q_err)
                huge = np.abs(q) >= 2.0 ** self.mant
                fin = np.isfinite(q) & np.isfinite(V)
                fragile |= fin & ~huge & (np.floor(lo) != np.floor(hi))
                if op == "//":
                    prop = np.where(huge, q_err, 0.0)
                    exact = ~huge
                else:
                    fq = np.floor(q)
                    prop = ex + term(fq, ey)
                    exact = _exact_mask(_FRAC_OPS["%"], [x, y], v)
                    fragile |= fin & (prop > 0) & (prop >= np.abs(Y))
        elif op == "**":
            integral = np.isfinite(Y) & (Y == np.round(Y))
            fragile |= np.isneginf(X) & (Y == 0.5)  # sqrt gives NaN, pow gives inf
            ulps = np.where(integral, 2.0, 4.0)
            exact = _exact_mask(_FRAC_OPS["**"], [x, y], v) | (Y == 0) | (X == 1)
            dx = self._zeros()
            dy = self._zeros()
            for xs in self._corners([a, b]):
                cx, cy = xs[0].astype(F64), xs[1].astype(F64)
                p = np.power(cx, cy)
                dx = np.fmax(dx, np.nan_to_num(np.abs(cy * np.power(cx, cy - 1)), nan=np.inf))
                dy = np.fmax(dy, np.nan_to_num(np.abs(p * np.log(np.abs(cx))), nan=np.inf))
            prop = term(dx, ex) + term(dy, ey)
        else:
            raise ValueError(op)
        return self._finish(v, prop, ulps, exact, fragile)

    def compare(self, op, a, b):
        fn = _NP_CMPOPS[op]
        fragile = self._fragile(a, b)
        if a.kind == BOOL and b.kind == BOOL:
            return Val(BOOL, fn(a.v, b.v), np.where(fragile, np.nan, 0.0))
        if FLOAT in (a.kind, b.kind):
            a, b = self.to_float(a), self.to_float(b)
        else:
            a, b = self.to_int(a), self.to_int(b)
        r = fn(a.v, b.v)
        alo, ahi = self._interval(a.v, a.e)
        blo, bhi = self._interval(b.v, b.e)
        # could some values inside the error intervals give the other answer?
        if op in ("<", ">"):
            if op == ">":
                alo, ahi, blo, bhi = blo, bhi, alo, ahi
            flip = np.where(r, ahi >= blo, alo < bhi)
        elif op in ("<=", ">="):
            if op == ">=":
                alo, ahi, blo, bhi = blo, bhi, alo, ahi
            flip = np.where(r, ahi > blo, alo <= bhi)
        else:
            equal = (a.v == b.v) if op == "==" else ~r
            wide = (np.nan_to_num(a.e) > 0) | (np.nan_to_num(b.e) > 0)
            overlap = (alo <= bhi) & (blo <= ahi)
            flip = np.where(equal, wide, overlap)
        return Val(BOOL, r, np.where(fragile | flip, np.nan, 0.0))

    def boolop(self, op, a, b):
        fa, fb = np.isnan(a.e), np.isnan(b.e)
        if op == "and":
            v = a.v & b.v
            decided_a, decided_b = ~fa & ~a.v, ~fb & ~b.v  # a definite False decides
        else:
            v = a.v | b.v
            decided_a, decided_b = ~fa & a.v, ~fb & b.v
        fragile = (fa | fb) & ~decided_a & ~decided_b
        return Val(BOOL, v, np.where(fragile, np.nan, 0.0))

    def call(self, name, args):
        ret = FUNCTIONS[name][1]
        kind = highest(*(a.kind for a in args)) if ret == "highest" else ret
        if name == "int":
            return self._int(args[0])
        if name == "clip":
            return self._clip(kind, args)
        if kind == INT:  # abs / sign of an integer
            a = self.to_int(args[0])
            return Val(INT, (np.abs if name == "abs" else np.sign)(a.v).astype(np.int32), a.e.copy())
        a = self.to_float(args[0])
        if name == "abs":
            return Val(FLOAT, np.abs(a.v), a.e.copy())
        if name in ("sign", "floor", "ceil"):
            return self._step(name, a)
        fn, deriv, ulps, exact_points = _UNARY[name]
        if a.scalar and self.fdt == np.float32 and name in ("expm1", "exprel", "log1p"):
            self.mixed = True  # Brian2's wrappers return float64 for float32 scalars
        v = fn(a.v)
        fragile = self._fragile(a) | self._class_changes(fn, [a], v)
        X = a.v.astype(F64)
        e = np.nan_to_num(a.e)
        d = np.zeros(self.n, F64)
        for pt in (X, X - e, X + e):
            d = np.fmax(d, np.nan_to_num(np.abs(deriv(pt)), nan=np.inf))
        prop = np.where(e > 0, d * e, 0.0)
        if name in ("sin", "cos"):
            prop = np.minimum(prop, 2.0)
        elif name == "sqrt":
            prop = np.minimum(prop, np.sqrt(e))
        elif name == "tan":
            fragile |= e > 0.5
        exact = np.zeros(self.n, bool)
        for x0, v0 in exact_points.items():
            exact |= (X == x0) & (v.astype(F64) == v0)
        if name == "sqrt":  # perfect squares
            exact |= _exact_mask(lambda r: r * r, [v], a.v)
        if name == "exprel":
            exact |= np.abs(X) < 1e-16
        return self._finish(v, prop, ulps, exact, fragile)

    def _step(self, name, a):
        """sign / floor / ceil: piecewise constant, fragile across a jump."""
        fn = {"sign": np.sign, "floor": np.floor, "ceil": np.ceil}[name]
        v = fn(a.v)
        lo, hi = self._interval(a.v, a.e)
        fragile = self._fragile(a)
        prop = self._zeros()
        if name == "sign":
            fragile |= (np.nan_to_num(a.e) > 0) & (lo <= 0) & (hi >= 0)
        else:
            ints = (np.minimum(np.abs(lo), np.abs(hi)) >= 2.0 ** self.mant) & (np.sign(lo) == np.sign(hi))
            fragile |= ~ints & (fn(lo) != fn(hi))
            prop = np.where(ints, np.nan_to_num(a.e), 0.0)
        return self._finish(v, prop, 0.0, np.ones(self.n, bool), fragile)

    def _int(self, a):
        if a.kind != FLOAT:
            return self.to_int(a)
        v = a.v.astype(np.int32)  # numpy's cast (INT_MIN for NaN/inf/out of range)
        lo, hi = self._interval(a.v, a.e)
        tl, th = np.trunc(lo), np.trunc(hi)
        ok = np.isfinite(lo) & np.isfinite(hi) & (tl >= -(2.0 ** 31)) & (th <= 2.0 ** 31 - 1)
        fragile = self._fragile(a) | ~ok | (tl != th)
        return Val(INT, v, np.where(fragile, np.nan, 0.0))

    def _clip(self, kind, args):
        # scalar operands are passed as scalars, as in Brian2's numpy code
        # (np.clip's result for -0.0 depends on it)
        scalars = [a.scalar for a in args]

        def clip(*xs):
            xs = [x[0] if s else x for x, s in zip(xs, scalars)]
            return np.broadcast_to(np.clip(*xs), (self.n,)).copy()

        if kind == INT:
            args = [self.to_int(a) for a in args]
            v = clip(*(a.v for a in args)).astype(np.int32)
            return Val(INT, v, np.where(self._fragile(*args), np.nan, 0.0))
        args = [self.to_float(a) for a in args]
        v = clip(*(a.v for a in args))
        fragile = self._fragile(*args) | self._class_changes(clip, args, v)
        prop = np.maximum.reduce([np.nan_to_num(a.e) for a in args])
        return self._finish(v, prop, 0.0, np.ones(self.n, bool), fragile)

    # -- statements --------------------------------------------------------
    def assign(self, val, kind):
        if kind == FLOAT:
            return self.to_float(val)
        if kind == INT:
            return self.to_int(val)
        if val.kind != BOOL:
            raise TypeError("non-boolean value assigned to a boolean")
        return val

    def run(self, statements, arrays):
        """arrays: name -> (kind, values, scalar).  Returns name -> Val of written arrays."""
        env = {}
        for name, (kind, values, scalar) in arrays.items():
            values = np.broadcast_to(np.asarray(values), (self.n,))
            if kind == FLOAT:
                env[name] = self._leaf_float(values)
            else:
                dt = np.int32 if kind == INT else np.bool_
                env[name] = Val(kind, values.astype(dt), self._zeros())
            env[name].scalar = scalar
        written = {}
        for st in statements:
            rhs = self.eval(st.expr, env)
            if st.op != "=":
                with np.errstate(all="ignore"):
                    rhs = self.binop(st.op[0], env[st.target], rhs)
            if st.target in arrays:
                kind = arrays[st.target][0]
            else:  # a temporary keeps the type of its first definition
                kind = env[st.target].kind if st.target in env else rhs.kind
            env[st.target] = self.assign(rhs, kind)
            if st.target in arrays:
                written[st.target] = env[st.target]
        return written


# ---------------------------------------------------------------------------
# Random generation
# ---------------------------------------------------------------------------

# No zero literals: Brian2's optimiser folds 0*x, 0/x (wrong for inf/NaN) and
# fails on x % 0 and x / 0.0.  Zeros still come in through the input values.
FLOAT_LITS = ["0.5", "1.0", "2.0", "0.1", ".5", "3.", "1e-3", "1.5", "0.25", "10.0",
              "100.0", "2.5e10", "1e-05", "2.5e+20", "1E3", "0.333", "6.02e23",
              "3.14159", "1e-8", "7.5", "0.01"]
FLOAT_LITS_F64 = ["1e300", "1e-300"]
FLOAT_LITS_F32 = ["1e30", "1e-30", "3.4e38"]
INT_LITS_SMALL = ["1", "2", "3", "4", "5", "7", "10", "16", "100"]
INT_LITS_LARGE = ["1000", "65536", "1000000", "2147483647"]
POW_EXPONENTS = ["2", "3", "0.5", "-1", "-2", "1.5", "2.0", "-0.5", "4", "0.25", "10"]
BIG_LITERAL = 1e10  # at most one per statement: sympy would fold two into inf

FLOAT_NAMES = ["x", "y", "v", "w", "u", "z"]
INT_NAMES = ["k", "m", "cnt"]
BOOL_NAMES = ["b", "flag"]
OUTPUT_ONLY = {"out": FLOAT, "iout": INT, "bout": BOOL}

EDGE_F64 = [0.0, -0.0, 1.0, -1.0, 1e300, -1e300, 1e-300, -1e-300, 5e-324, -2.5e-320,
            1.7976931348623157e308, math.nan, math.inf, -math.inf, 709.5, 0.5,
            2.0 ** 31, -(2.0 ** 31) - 0.5, 1e16, 2.0 ** 53 + 2]
EDGE_F32 = [0.0, -0.0, 1.0, -1.0, 1e30, -1e30, 1e-30, 1e-40, -1e-42, 3.4028234663852886e38,
            math.nan, math.inf, -math.inf, 88.0, 0.5, 16777217.0, 2.0 ** 31, 1e10, -2.5e9]
EDGE_INT = [0, 1, -1, 2147483647, -2147483647, 2147483646, 1073741824, -1073741824,
            46341, -46341, 65536, 16777217]


class Retry(Exception):
    pass


def _weighted(rng, options):
    """options: list of (weight, value)."""
    total = sum(w for w, _ in options)
    r = rng.random() * total
    for w, val in options:
        r -= w
        if r < 0:
            return val
    return options[-1][1]


class ExprGen:
    """Random well-typed Brian2 expressions over the readable variables."""

    def __init__(self, rng, ftype, readable, usage):
        self.rng = rng
        self.ftype = ftype
        self.readable = readable  # name -> (kind, scalar)
        self.usage = usage  # Counter of generated operators/functions

    def vars_of(self, kind):
        return [n for n, (k, _) in self.readable.items() if k == kind]

    def env(self):
        return {n: k for n, (k, _) in self.readable.items()}

    # -- leaves ------------------------------------------------------------
    def float_lit(self):
        pool = FLOAT_LITS + (FLOAT_LITS_F32 if self.ftype == "f32" else FLOAT_LITS_F64)
        return Num(self.rng.choice(pool))

    def int_lit(self):
        pool = INT_LITS_SMALL if self.rng.random() < 0.8 else INT_LITS_LARGE
        return Num(self.rng.choice(pool))

    def maybe_neg(self, node):
        return Unary("-", node) if self.rng.random() < 0.2 else node

    def var_leaf(self, kind):
        names = self.vars_of(kind)
        if not names:
            raise Retry()
        return Name(self.rng.choice(names))

    def leaf(self, kind):
        rng = self.rng
        names = self.vars_of(kind)
        if kind == BOOL:
            if names and rng.random() < 0.8:
                return Name(rng.choice(names))
            return self.compare(0)
        if names and rng.random() < 0.68:
            return Name(rng.choice(names))
        if kind == INT:
            return self.maybe_neg(self.int_lit())
        if rng.random() < 0.1:
            return self.maybe_neg(Name(rng.choice(list(CONSTANTS))))
        return self.maybe_neg(self.float_lit())

    # -- composite nodes ---------------------------------------------------
    def any(self, kind, depth):
        if depth <= 0 or self.rng.random() < 0.3:
            return self.leaf(kind)
        return self.composite(kind, depth)

    def composite(self, kind, depth):
        for _ in range(20):
            try:
                node = {FLOAT: self.float_node, INT: self.int_node, BOOL: self.bool_node}[kind](depth)
            except Retry:
                continue
            if has_var(node):
                return node
        raise Retry()

    def _count(self, node):
        if isinstance(node, Call):
            key = node.func
        elif isinstance(node, Unary):
            key = "neg" if node.op == "-" else "not"
        else:
            key = node.op
        self.usage[key] += 1
        return node

    def float_node(self, d):
        rng = self.rng
        choice = _weighted(rng, [(40, "arith"), (4, "neg"), (25, "func"), (6, "round"),
                                 (5, "abs_sign"), (4, "clip"), (4, "intdiv")])
        sub = lambda k: self.any(k, d - 1)
        arg_kind = lambda: FLOAT if rng.random() < 0.85 else INT
        if choice == "arith":
            op = _weighted(rng, [(8, "+"), (6, "-"), (8, "*"), (6, "/"), (2, "//"), (2, "%"), (4, "**")])
            if op == "**":
                base = sub(arg_kind())
                if rng.random() < 0.65:
                    exp_text = rng.choice(POW_EXPONENTS)
                    if infer_kind(base, self.env()) == INT and re.fullmatch(r"-?\d+", exp_text):
                        exp_text += ".0"  # int ** int would be an int
                    expo = Num(exp_text.lstrip("-"))
                    expo = Unary("-", expo) if exp_text.startswith("-") else expo
                else:
                    expo = sub(FLOAT)
                return self._count(BinOp("**", base, expo))
            r = rng.random()
            if r < 0.6:
                kinds = (FLOAT, FLOAT)
            elif r < 0.75:
                kinds = (FLOAT, INT)
            elif r < 0.9:
                kinds = (INT, FLOAT)
            elif op in "+-*":
                kinds = rng.choice([(FLOAT, BOOL), (BOOL, FLOAT)])
            else:
                kinds = (FLOAT, FLOAT)
            return self._count(BinOp(op, sub(kinds[0]), sub(kinds[1])))
        if choice == "neg":
            return self._count(Unary("-", self.composite(FLOAT, d - 1) if d > 1 else self.var_leaf(FLOAT)))
        if choice == "func":
            f = rng.choice(TRANSCENDENTAL)
            return self._count(Call(f, (sub(arg_kind()),)))
        if choice == "round":
            return self._count(Call(rng.choice(["floor", "ceil"]), (sub(arg_kind()),)))
        if choice == "abs_sign":
            return self._count(Call(rng.choice(["abs", "sign"]), (sub(FLOAT),)))
        if choice == "clip":
            if rng.random() < 0.7:
                lo, hi = sorted(rng.sample([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 10.0], 2))
                lits = [Unary("-", Num(repr(-t))) if t < 0 else Num(repr(t)) for t in (lo, hi)]
                return self._count(Call("clip", (self._clip_operand(FLOAT, d), *lits)))
            return self._count(Call("clip", (self._clip_operand(FLOAT, d), sub(arg_kind()), sub(arg_kind()))))
        # int / int gives a float
        return self._count(BinOp("/", sub(INT), sub(INT)))

    def _clip_operand(self, kind, d):
        """np.clip turns a Python-literal first argument into float64/int64."""
        node = self.any(kind, d - 1)
        return node if not is_literal(node) else self.var_leaf(kind)

    def _int_operand(self, d):
        """An int operand that is not a bare literal (used next to a bool)."""
        node = self.any(INT, d)
        return node if not is_literal(node) else self.var_leaf(INT)

    def int_node(self, d):
        rng = self.rng
        choice = _weighted(rng, [(45, "arith"), (5, "neg"), (5, "abs"), (5, "sign"),
                                 (5, "clip"), (20, "int")])
        sub = lambda k: self.any(k, d - 1)
        if choice == "arith":
            op = _weighted(rng, [(8, "+"), (6, "-"), (6, "*"), (4, "//"), (4, "%"), (2, "**")])
            if op == "**":
                return self._count(BinOp("**", sub(INT), Num(rng.choice("123"))))
            if op in "+-*" and rng.random() < 0.1:
                pair = [self._int_operand(d - 1), sub(BOOL)]
                if rng.random() < 0.5:
                    pair.reverse()
                return self._count(BinOp(op, *pair))
            return self._count(BinOp(op, sub(INT), sub(INT)))
        if choice == "neg":
            return self._count(Unary("-", self.composite(INT, d - 1) if d > 1 else self.var_leaf(INT)))
        if choice in ("abs", "sign"):
            return self._count(Call(choice, (sub(INT),)))
        if choice == "clip":
            if rng.random() < 0.6:
                lo, hi = sorted(rng.sample([-100, -5, -1, 0, 1, 3, 10, 1000], 2))
                bounds = [Unary("-", Num(str(-t))) if t < 0 else Num(str(t)) for t in (lo, hi)]
                return self._count(Call("clip", (self._clip_operand(INT, d), *bounds)))
            return self._count(Call("clip", (self._clip_operand(INT, d), sub(INT), sub(INT))))
        arg = _weighted(rng, [(80, FLOAT), (10, BOOL), (10, INT)])
        return self._count(Call("int", (sub(arg),)))

    def compare(self, d):
        rng = self.rng
        kinds = _weighted(rng, [(50, (FLOAT, FLOAT)), (15, (FLOAT, INT)), (10, (INT, FLOAT)),
                                (25, (INT, INT))])
        ops = [(3, "<"), (3, "<="), (3, ">"), (3, ">=")]
        ops += [(1, "=="), (1, "!=")] if FLOAT in kinds else [(2, "=="), (2, "!=")]
        op = _weighted(rng, ops)
        left, right = self.any(kinds[0], d - 1), self.any(kinds[1], d - 1)
        if not (has_var(left) or has_var(right)):
            left = self.var_leaf(kinds[0])
        return self._count(Compare(op, left, right))

    def bool_node(self, d):
        rng = self.rng
        choice = _weighted(rng, [(60, "cmp"), (5, "bool_eq"), (25, "boolop"), (10, "not")])
        sub = lambda: self.any(BOOL, d - 1)
        if choice == "cmp":
            return self.compare(d)
        if choice == "bool_eq":
            return self._count(Compare(rng.choice(["==", "!="]), sub(), sub()))
        if choice == "boolop":
            left, right = sub(), sub()
            if rng.random() < 0.1:
                right = BoolLit(rng.random() < 0.5)
            return self._count(BoolOp(rng.choice(["and", "or"]), left, right))
        return self._count(Unary("not", sub()))

    def expression(self, kind, depth):
        """A composite expression of the given kind containing a vector variable."""
        for _ in range(50):
            try:
                node = self.composite(kind, depth)
            except Retry:
                continue
            if any(isinstance(n, Name) and n.id in self.readable and not self.readable[n.id][1]
                   for n in walk(node)):
                return node
        raise Retry()


def sympy_safe(expr, sympy_path):
    """Avoid what Brian2's sympy round trips reject.

    At most one big literal (sympy folds big*big into an undefined name inf).
    For "=" to an existing variable (which Brian2 converts to sympy): no
    comparison or and/or/not used directly as a number, and no operator with
    identical operands (sympy cancels x/x and then misses the identifier x).
    """
    big = 0
    for node in walk(expr):
        if isinstance(node, Num) and float(node.text) >= BIG_LITERAL:
            big += 1
    if big > 1:
        return False
    if not sympy_path:
        return True
    relational = (Compare, BoolOp, BoolLit)
    for node in walk(expr):
        if isinstance(node, BinOp) and _strip_neg(node.left) == _strip_neg(node.right):
            return False
        if isinstance(node, (BinOp, Call, Unary)) and not (
            isinstance(node, Call) and node.func == "int"
        ) and not (isinstance(node, Unary) and node.op == "not"):
            if any(isinstance(c, relational) or (isinstance(c, Unary) and c.op == "not")
                   for c in children(node)):
                return False
    return True


def _strip_neg(node):
    while isinstance(node, Unary) and node.op == "-":
        node = node.operand
    return node


def numpy_floor_safe(expr, env):
    """No int ** int created by Brian2-numpy's int32 floor/ceil (negative powers raise)."""
    for node in walk(expr):
        if (isinstance(node, BinOp) and node.op == "**" and infer_kind(node, env) == FLOAT
                and infer_kind(node.left, env, True) == INT == infer_kind(node.right, env, True)):
            return False
    return True


def _random_float(rng, ftype, edge_prob):
    if rng.random() < edge_prob:
        return rng.choice(EDGE_F32 if ftype == "f32" else EDGE_F64)
    r = rng.random()
    if r < 0.35:
        return rng.uniform(-10, 10)
    if r < 0.6:
        return rng.choice([-1, 1]) * 10 ** rng.uniform(-3, 3)
    if r < 0.75:
        return rng.randint(-5, 5) / rng.choice([1, 2, 4])
    if r < 0.9:
        return rng.uniform(-1.2, 1.2)
    return rng.choice([-1, 1]) * 10 ** rng.uniform(-8, 8)


def _random_int(rng, edge_prob):
    if rng.random() < edge_prob:
        return rng.choice(EDGE_INT)
    r = rng.random()
    if r < 0.5:
        return rng.randint(-20, 20)
    if r < 0.8:
        return rng.randint(-1000, 1000)
    return rng.randint(-10 ** 6, 10 ** 6)


def random_values(rng, kind, ftype, count, edge_prob=0.2):
    if kind == FLOAT:
        dt = np.float32 if ftype == "f32" else np.float64
        return np.array([_random_float(rng, ftype, edge_prob) for _ in range(count)], dt)
    if kind == INT:
        return np.array([_random_int(rng, edge_prob) for _ in range(count)], np.int32)
    return np.array([rng.random() < 0.5 for _ in range(count)], bool)


@dataclass
class Variable:
    name: str
    kind: str
    scalar: bool
    values: np.ndarray


@dataclass
class Case:
    id: int
    ftype: str
    n: int
    inputs: list  # of Variable (output-only ones hold zeros)
    code: str
    outputs: list  # of (Variable, err array)
    mixed: bool  # f32 case where numpy would have promoted an int/float mix
    usage: Counter


def _choose_variables(rng):
    specs = [(n, FLOAT, False) for n in rng.sample(FLOAT_NAMES, rng.randint(1, 3))]
    specs += [(n, INT, False) for n in rng.sample(INT_NAMES, rng.choice([0, 1, 1, 2]))]
    specs += [(n, BOOL, False) for n in rng.sample(BOOL_NAMES, rng.choice([0, 0, 1]))]
    if rng.random() < 0.35:
        specs.append((rng.choice(["c", "g"]), FLOAT, True))
    if rng.random() < 0.15:
        specs.append(("nk", INT, True))
    return specs


def _generate_statements(rng, ftype, specs, usage):
    readable = {name: (kind, scalar) for name, kind, scalar in specs}
    arrays = {name: kind for name, kind, scalar in specs if not scalar}
    arrays.update({n: k for n, k in OUTPUT_ONLY.items() if rng.random() < 0.5})
    gen = ExprGen(rng, ftype, readable, usage)
    n_stmts = rng.choice([1, 2, 2, 3, 3, 4])
    statements, temps = [], {}
    for i in range(n_stmts):
        depth = _weighted(rng, [(2, 1), (3, 2), (3, 3), (2, 4)])
        last = i == n_stmts - 1
        if not last and rng.random() < 0.45:
            aug_temps = [t for t, k in temps.items() if k != BOOL and t in readable]
            if aug_temps and rng.random() < 0.2:
                target = rng.choice(aug_temps)
                kind, op = temps[target], rng.choice(["+=", "-=", "*="])
                rhs_kind = kind
            else:
                target = f"tmp{len(temps) + 1}"
                kind = _weighted(rng, [(55, FLOAT), (20, INT), (25, BOOL)])
                op, rhs_kind = "=", kind
                temps[target] = kind
        else:
            target = rng.choice(sorted(arrays))
            kind = arrays[target]
            can_read = target in readable
            if kind == BOOL:
                op, rhs_kind = "=", BOOL
            elif kind == INT:
                op = _weighted(rng, [(50, "="), (20, "+="), (15, "-="), (15, "*=")]) if can_read else "="
                rhs_kind = BOOL if op in ("+=", "-=") and rng.random() < 0.1 else INT
            else:
                op = (_weighted(rng, [(50, "="), (15, "+="), (10, "-="), (15, "*="), (10, "/=")])
                      if can_read else "=")
                rhs_kind = _weighted(rng, [(85, FLOAT), (10, INT), (5, BOOL)])
        for _ in range(50):
            expr = gen.expression(rhs_kind, depth)
            if (sympy_safe(expr, sympy_path=op == "=" and target in arrays)
                    and numpy_floor_safe(expr, gen.env())):
                break
        else:
            raise Retry()
        statements.append(Statement(target, op, expr))
        if kind == FLOAT and op == "=" and infer_kind(expr, gen.env(), numpy_floor=True) != FLOAT:
            # Brian2-numpy keeps an int/bool local here (also for floor/ceil);
            # reading it again would follow int semantics, so do not
            readable.pop(target, None)
        else:
            readable[target] = (kind, False)
    return statements, arrays


def generate_case(seed, case_id, n=DEFAULT_N):
    for attempt in range(100):
        rng = random.Random(f"exprgen:{seed}:{case_id}:{attempt}")
        ftype = "f64" if rng.random() < F64_SHARE else "f32"
        usage = Counter()
        specs = _choose_variables(rng)
        try:
            statements, arrays = _generate_statements(rng, ftype, specs, usage)
        except Retry:
            continue
        code = "\n".join(render_statement(s, rng) for s in statements)
        parsed = parse_code(code)
        assert parsed == statements, (code, parsed, statements)
        written = [s.target for s in statements if s.target in arrays]
        inputs = []
        for name, kind, scalar in specs:
            edge = 0.1 if scalar else 0.2
            inputs.append(Variable(name, kind, scalar, random_values(rng, kind, ftype, 1 if scalar else n, edge)))
        for name, kind in OUTPUT_ONLY.items():
            if name in written:
                inputs.append(Variable(name, kind, False, np.zeros(n, _dtype(kind, ftype))))
        ev = Evaluator(ftype, n)
        results = ev.run(parsed, {v.name: (v.kind, v.values, v.scalar) for v in inputs})
        outputs = []
        for name in dict.fromkeys(written):
            val = results[name]
            outputs.append((Variable(name, arrays[name], False, val.v), val.e))
        return Case(case_id, ftype, n, inputs, code, outputs, ev.mixed, usage)
    raise RuntimeError(f"could not generate case {case_id}")


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------


def _dtype(kind, ftype):
    if kind == FLOAT:
        return np.dtype(np.float32 if ftype == "f32" else np.float64)
    return np.dtype(np.int32 if kind == INT else np.bool_)


def encode_values(values):
    values = np.asarray(values)
    if values.dtype == np.float64:
        return [f"{u:016x}" for u in values.view(np.uint64).tolist()]
    if values.dtype == np.float32:
        return [f"{u:08x}" for u in values.view(np.uint32).tolist()]
    return [int(x) for x in values.tolist()]


def decode_values(values, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return np.array([int(h, 16) for h in values], np.uint64).view(np.float64)
    if dtype == np.float32:
        return np.array([int(h, 16) for h in values], np.uint32).view(np.float32)
    return np.array(values, dtype)


def tolerances(values, err):
    """Per-element tolerance (float64): NaN = fragile, 0 for exact/NaN/inf results."""
    values = np.asarray(values)
    if values.dtype.kind != "f":
        return np.where(np.isnan(err), np.nan, 0.0)
    floor = 4 * float(np.finfo(values.dtype).tiny)
    tol = np.maximum(err, floor)
    tol = np.where(np.isfinite(values), tol, 0.0)
    return np.where(np.isnan(err), np.nan, tol)


def encode_case(case):
    return {
        "id": case.id,
        "float": case.ftype,
        "n": case.n,
        "inputs": [{"name": v.name, "dtype": v.values.dtype.name, "scalar": v.scalar,
                    "values": encode_values(v.values)} for v in case.inputs],
        "code": case.code,
        "outputs": [{"name": v.name, "dtype": v.values.dtype.name, "values": encode_values(v.values),
                     "tol": encode_values(tolerances(v.values, err))} for v, err in case.outputs],
    }


def case_line(case):
    return json.dumps(encode_case(case), separators=(",", ":"))


# ---------------------------------------------------------------------------
# Table generation and statistics
# ---------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.cases = Counter()
        self.elements = Counter()
        self.usage = Counter()
        self.statements = 0

    def add(self, case):
        self.cases[case.ftype] += 1
        self.cases["mixed_f32"] += case.mixed
        self.statements += len(case.code.splitlines())
        self.usage.update(case.usage)
        for var, err in case.outputs:
            vals = np.asarray(var.values)
            self.elements["total"] += vals.size
            self.elements[var.kind] += vals.size
            fragile = np.isnan(err)
            self.elements["fragile"] += int(fragile.sum())
            self.elements["fragile_" + var.kind] += int(fragile.sum())
            if vals.dtype.kind == "f":
                self.elements["nan"] += int((np.isnan(vals) & ~fragile).sum())
                self.elements["inf"] += int((np.isinf(vals) & ~fragile).sum())

    def report(self, out=sys.stderr):
        total = sum(self.cases[k] for k in ("f64", "f32"))
        el = self.elements
        pct = lambda k: 100.0 * el[k] / max(el["total"], 1)
        print(f"cases: {total} (f64 {self.cases['f64']}, f32 {self.cases['f32']}, "
              f"f32 with int->float mixing {self.cases['mixed_f32']}), statements: {self.statements}", file=out)
        print(f"output elements: {el['total']} (float {el[FLOAT]}, int {el[INT]}, bool {el[BOOL]})", file=out)
        print(f"fragile: {el['fragile']} ({pct('fragile'):.2f}%; "
              + ", ".join(f"{k} {100.0 * el['fragile_' + k] / max(el[k], 1):.1f}%" for k in (FLOAT, INT, BOOL))
              + f"), expected NaN: {pct('nan'):.2f}%, expected inf: {pct('inf'):.2f}%", file=out)
        print("operator/function uses: " + ", ".join(f"{k}:{v}" for k, v in sorted(self.usage.items())), file=out)


def generate_lines(seed, cases, n=DEFAULT_N, stats=None):
    for case_id in range(cases):
        case = generate_case(seed, case_id, n)
        if stats is not None:
            stats.add(case)
        yield case_line(case)


def write_table(path, seed, cases, n=DEFAULT_N, stats=None):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="\n") as f:
        for line in generate_lines(seed, cases, n, stats):
            f.write(line + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="elements per array")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "diff_cases.jsonl"))
    args = parser.parse_args(argv)
    stats = Stats()
    write_table(args.out, args.seed, args.cases, args.n, stats)
    stats.report()
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
