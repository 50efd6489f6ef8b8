"""Brian2 code objects → kernel specs for the Rust compiler.

A kernel spec (``_engine.KernelSpec``, typed and immutable) holds the template name, the
model's float type, the variables the statements touch (``_engine.Variable``: dtype,
index, constant value, conditional write), the functions they call
(``_engine.Function``), and the scalar and vector statements as text, after Brian2's own
``make_statements`` (which resolves subexpressions and pulls loop invariants into scalar
code).
"""

import numpy as np
from brian2.codegen.translation import make_statements
from brian2.core.functions import Function
from brian2.core.variables import ArrayVariable, AuxiliaryVariable, Constant, Subexpression
from brian2.parsing.rendering import NodeRenderer
from brian2.utils.stringtools import get_identifiers, word_substitute

from . import _engine

__all__ = ["kernel_spec", "statements_text", "scalar_int"]

# Brian2's DEFAULT_FUNCTIONS that the Rust side implements itself.
BUILTIN_FUNCTIONS = {
    "cos", "sin", "tan", "cosh", "sinh", "tanh", "exp", "log", "log10", "expm1", "exprel",
    "log1p", "sqrt", "ceil", "floor", "arccos", "arcsin", "arctan", "abs", "sign", "clip",
    "int", "timestep", "rand", "randn", "poisson",
}


def _builtin_objects():
    from brian2.core.functions import DEFAULT_FUNCTIONS
    return {name: DEFAULT_FUNCTIONS[name] for name in BUILTIN_FUNCTIONS}


# Brian2's own Function objects, taken when this module is imported.
_BUILTIN_OBJECTS = _builtin_objects()


def _dtype_name(dtype):
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return "bool"
    if dtype.kind in "iu":
        return "int64" if dtype.itemsize == 8 else "int32"
    if dtype.kind == "f":
        return "float32" if dtype.itemsize == 4 else "float64"
    raise NotImplementedError(f"wgpu device: variables of dtype {dtype} are not supported yet")


def scalar_int(value):
    """A Brian2 scalar (a Python number or an array of one element) as an int."""
    return int(np.asarray(value).reshape(-1)[0])


def _render(expr):
    return NodeRenderer().render_expr(str(expr)) if not isinstance(expr, str) else expr


def _boolean_select(statement):
    """Brian2's optimiser simplifies an expression separately for each value of the
    boolean variables it uses (`int(not_refractory)` in exact integrators); its numpy and
    C++ generators then pick one per element (`where`, `if`). The same here, as nested
    `_wgpu_where` calls; None when the statement has no such simplification."""
    names = getattr(statement, "used_boolean_variables", None)
    simplified = getattr(statement, "boolean_simplified_expressions", None)
    if not names or not simplified:
        return None
    # Only where that saves work (evaluating both sides costs their sum).
    complexities = getattr(statement, "complexities", None) or {}
    std = getattr(statement, "complexity_std", None)
    if std is not None and complexities and std <= sum(complexities.values()):
        return None

    def pick(fixed):
        if len(fixed) == len(names):
            return f"({_render(simplified[tuple(fixed)])})"
        var = names[len(fixed)]
        yes, no = pick(fixed + [(var, True)]), pick(fixed + [(var, False)])
        return f"{WHERE}({var}, {yes}, {no})"
    return pick([])


def statements_text(statements):
    """Render Brian2 `Statement` objects as the lines our parser reads."""
    lines = []
    for st in statements:
        expr = _boolean_select(st) or _render(st.expr)
        lines.append(f"{st.var} {st.op} {expr}")
    return "\n".join(lines)


WHERE = "_wgpu_where"  # src/ir/func.rs: Func::Where


def _timed_array_spec(name, func, clock_dt):
    """A TimedArray becomes a table lookup in the kernel: its values travel as an array
    variable (returned with the function and the variable), sampled with Brian2's own
    rounding rule."""
    from brian2.input.timedarray import _find_K

    values = np.ascontiguousarray(np.asarray(func.values))
    if values.ndim not in (1, 2) or values.size == 0:
        raise NotImplementedError(
            f"wgpu device: TimedArray '{name}' with {values.ndim} dimensions is not supported yet")
    if values.dtype.kind not in "fiub":
        raise NotImplementedError(
            f"wgpu device: TimedArray '{name}' of dtype {values.dtype} is not supported yet")
    dt = float(func.dt)
    k = int(_find_K(float(clock_dt), dt))
    rows = values.shape[0]
    cols = values.shape[1] if values.ndim == 2 else 1
    table = f"_timedarray_{name}_values"
    spec = _engine.Function.timed_array(name, table, dt, k, int(rows), int(cols))
    var = _engine.Variable(table, _dtype_name(values.dtype), index="0")
    return spec, var, values.reshape(-1)


def _binomial_params(func):
    """(n, p, approximate) of a Brian2 BinomialFunction, which does not keep them: recorded
    by our constructor hook below, else recovered from its numpy sampler's closure."""
    if hasattr(func, "_wgpu_params"):
        return func._wgpu_params
    sampler = func.implementations["numpy"].get_code(None)
    cells = dict(zip(sampler.__code__.co_freevars,
                     (c.cell_contents for c in sampler.__closure__ or ())))
    if "n" in cells and "p" in cells:  # numpy draws exactly
        return int(cells["n"]), float(cells["p"]), False
    loc, scale = float(cells["loc"]), float(cells["scale"])  # normal approximation
    p = 1.0 - scale * scale / loc
    return int(round(loc / p)), p, True


def _record_binomial_params():
    from brian2.input.binomial import BinomialFunction

    original = BinomialFunction.__init__
    if getattr(original, "_wgpu_hook", False):
        return

    def __init__(self, n, p, approximate=True, name="_binomial*"):
        original(self, n, p, approximate=approximate, name=name)
        self._wgpu_params = (int(n), float(p), bool(approximate))
    __init__._wgpu_hook = True
    BinomialFunction.__init__ = __init__


_record_binomial_params()


def _is_user_function(name, func):
    """A Function that is not one of Brian2's builtins (one that only shares a builtin's
    name, a replaced randn say, is a user function)."""
    return name not in BUILTIN_FUNCTIONS or func is not _BUILTIN_OBJECTS.get(name)


def _numpy_callable(code):
    """Whether a numpy implementation can be called: Brian2's code generation gives every
    Function one, wrapping its ``pyfunc`` even where that is None (C++-only functions)."""
    if not callable(code):
        return False
    names = getattr(getattr(code, "__code__", None), "co_freevars", ())
    for name, cell in zip(names, getattr(code, "__closure__", None) or ()):
        if name == "orig_func":
            try:
                return cell.cell_contents is not None
            except ValueError:  # an empty cell
                return False
    return True


def python_functions(variables, backend="gpu"):
    """Names of the user functions in a code object's ``variables`` that the engine cannot
    compile but numpy can call: Python functions, as ``Function(pyfunc)`` or
    ``@implementation('numpy', ...)`` make them, without a 'wgpu' implementation (on the
    interpreter, which runs no WGSL, with one too)."""
    from brian2.input.binomial import BinomialFunction
    from brian2.input.timedarray import TimedArray

    found = []
    for name, var in variables.items():
        if (not isinstance(var, Function) or isinstance(var, (TimedArray, BinomialFunction))
                or not _is_user_function(name, var)):
            continue
        impls = var.implementations
        if "numpy" not in impls or ("wgpu" in impls and backend == "gpu"):
            continue
        if not _numpy_callable(impls["numpy"].get_code(None)):
            continue  # Function(None, ...) with other targets' code only
        found.append(name)
    return sorted(found)


def _function_spec(name, func, owner_name, float_dtype=np.float64):
    from brian2.input.binomial import BinomialFunction

    if isinstance(func, BinomialFunction):
        n, p, approximate = _binomial_params(func)
        # Brian2 approximates only where n p > 5 and n (1 - p) > 5; elsewhere both kinds
        # draw exactly (the engine by inversion, as Brian2's C++ code does).
        return _engine.Function.binomial(name, n, p, exact=not approximate)
    impl = None
    try:
        impl = func.implementations["wgpu"]
    except KeyError:
        pass
    if impl is None:
        raise NotImplementedError(
            f"wgpu device: user function '{name}' in '{owner_name}' has neither a 'wgpu' "
            "implementation nor a numpy one the device could call on the host; add a WGSL "
            f"implementation with {name}.implementations.add_implementation('wgpu', "
            "code=WGSL_SOURCE)"
        )
    code = impl.get_code(None)
    if isinstance(code, dict):
        code = code.get("support_code") or code.get("code")
    # Brian2 keeps the declared types privately; "any" and "float" take the model's float.
    fname = _dtype_name(float_dtype)
    types = getattr(func, "_arg_types", None) or ["float"] * len(func._arg_units)
    arg_types = [{"integer": "int32", "boolean": "bool"}.get(t, fname) for t in types]
    ret = {"integer": "int32", "boolean": "bool"}.get(getattr(func, "_return_type", "float"),
                                                      fname)
    return _engine.Function.user(impl.name or name, arg_types, ret, code)


def kernel_spec(name, template, code, variables, variable_indices, float_dtype=np.float64,
                owner_name=None, extra_read=(), override_conditional_write=(), clock_dt=None,
                optimise=True, vector_renames=None, extra_variables=(), guarded=None,
                tables=None):
    """Translate abstract ``code`` with Brian2 ``variables`` into an ``_engine.KernelSpec``.

    ``extra_variables`` (``_engine.Variable``) are kernel variables Brian2 does not hold
    (the template's own scratch and records); ``guarded`` maps variable names to the
    boolean variable that guards their writes; a TimedArray's values go into the dict
    ``tables`` under the name of the variable that binds them (without ``tables``, a
    TimedArray is a NotImplementedError).
    ``extra_read`` names variables the template itself reads or writes beyond the code;
    ``optimise`` runs Brian2's (sympy) loop-invariant optimisation, worth its milliseconds
    for per-step kernels, not for one-shot ones. ``vector_renames`` renames identifiers in
    the vector statements only, after that optimisation (GSL's derivatives: loop-invariant
    values use the step's ``t``, the rest the stage's time).
    """
    owner_name = owner_name or name
    scalar, vector = make_statements(code, variables, float_dtype, optimise=optimise)
    scalar_text = statements_text(scalar)
    vector_text = statements_text(vector)
    used = set(extra_read)
    if vector_renames:
        vector_text = word_substitute(vector_text, vector_renames)
        used |= set(get_identifiers(scalar_text)) | set(get_identifiers(vector_text))
    for st in scalar + ([] if vector_renames else vector):
        used.add(st.var)
        used |= set(get_identifiers(str(st.expr)))
    # Conditional-write flags and index variables are needed too.
    for v in list(used):
        var = variables.get(v)
        cw = getattr(var, "conditional_write", None)
        if cw is not None:
            cw_name = next((k for k, x in variables.items() if x is cw), None)
            if cw_name:
                used.add(cw_name)
    specs, functions = [], []
    pending = sorted(used)
    seen = set()
    while pending:
        v = pending.pop()
        if v in seen or v not in variables:
            continue
        seen.add(v)
        var = variables[v]
        if isinstance(var, Function):
            from brian2.input.timedarray import TimedArray

            if isinstance(var, TimedArray):
                if clock_dt is None or tables is None:
                    raise NotImplementedError(
                        f"wgpu device: TimedArray '{v}' in '{owner_name}' (here a table "
                        "lookup needs a clock's dt and an engine array)")
                fspec, tvar, values = _timed_array_spec(v, var, clock_dt)
                functions.append(fspec)
                specs.append(tvar)
                tables[tvar.name] = values
            elif _is_user_function(v, var):
                functions.append(_function_spec(v, var, owner_name, float_dtype))
            continue
        if isinstance(var, (AuxiliaryVariable, Subexpression)):
            continue
        dtype = _dtype_name(var.dtype)
        if isinstance(var, Constant):
            value = var.value.item() if hasattr(var.value, "item") else var.value
            specs.append(_engine.Variable(v, dtype, value=value))
        elif isinstance(var, ArrayVariable):
            idx = variable_indices.get(v, "_idx")
            if var.scalar:
                idx = "0"
            if idx not in ("_idx", "0", "_vectorisation_idx"):
                pending.append(idx)
            flag = None
            cw = getattr(var, "conditional_write", None)
            if cw is not None:
                cw_name = next(k for k, x in variables.items() if x is cw)
                # Templates such as reset write regardless of refractoriness.
                if cw_name not in override_conditional_write:
                    flag = cw_name
            specs.append(_engine.Variable(v, dtype, index=idx, conditional_write=flag))
        else:
            raise NotImplementedError(
                f"wgpu device: variable '{v}' of kind {type(var).__name__} in '{owner_name}' "
                f"is not supported yet"
            )
    specs.extend(extra_variables)
    if guarded:
        specs = [s.guarded_by(guarded[s.name]) if s.name in guarded else s for s in specs]
    return _engine.KernelSpec(name, specs, vector_code=vector_text, scalar_code=scalar_text,
                              template=template, float=_dtype_name(float_dtype),
                              functions=functions)
