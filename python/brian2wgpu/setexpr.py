"""Variables set by string expression (``S.w = 'rand() * w_max'``, Brian2's
``group_variable_set`` template) in the engine's interpreter, for arrays large enough that
it pays (a kernel compiles in milliseconds; numpy's own code is as fast below that size).

Brian2's numpy code object is built as usual (its checks, and the fallback for anything
the engine does not run); its ``run`` is replaced. Random numbers come from the engine's
Philox streams keyed by a seed drawn from numpy's generator: reproducible under
``seed()``, other numbers than numpy's.
"""

import numpy as np
from brian2.core.preferences import prefs
from brian2.core.variables import ArrayVariable

from . import _engine
from .codeobject import kernel_spec, scalar_int

__all__ = ["engine_variable_set", "MIN_ELEMENTS"]

# Below this many elements numpy's code is about as fast as compiling a kernel.
MIN_ELEMENTS = 50_000


def _kernel(codeobj, part, code, extra=()):
    spec = kernel_spec(f"{codeobj.name}_{part}", codeobj.template_name, code,
                       codeobj.variables, codeobj.variable_indices,
                       float_dtype=prefs.core.default_float_dtype,
                       owner_name=codeobj.owner.name, optimise=False, extra_variables=extra)
    if spec.functions:
        raise NotImplementedError("functions in the expression")
    kernel = _engine.compile(spec, wgsl=False)
    if kernel.program_text == "":
        raise NotImplementedError("an expression the interpreter cannot run")
    return kernel


def engine_variable_set(device, codeobj):
    """A replacement for the numpy code object's ``run`` (templates
    ``group_variable_set`` and ``group_variable_set_conditional``); raises
    NotImplementedError where the engine should not or cannot run it (the caller keeps
    numpy's)."""
    V = codeobj.variables
    code = codeobj.wgpu_abstract_code
    fallback = codeobj.run
    if codeobj.template_name == "group_variable_set" and isinstance(code, str):
        indices = np.ascontiguousarray(V["_group_idx"].get_value(), dtype=np.int32)
        size, condition, statement = len(indices), None, code
    elif (isinstance(code, dict) and isinstance(code.get("condition"), str)
          and isinstance(code.get("statement"), str)):
        indices = None
        size = scalar_int(V["N"].get_value())
        cond = code["condition"].partition("=")[2].strip()
        statement = code["statement"]
        condition = None if cond == "True" else code["condition"]
    else:
        raise NotImplementedError("an unusual variable set")
    target = V.get(statement.partition("=")[0].strip())
    if size < MIN_ELEMENTS:
        raise NotImplementedError(f"{size} elements: numpy is as fast")
    if not isinstance(target, ArrayVariable) or target.scalar:
        raise NotImplementedError("a scalar target")
    write = _kernel(codeobj, "statement", statement)
    test = None
    if condition is not None:
        test = _kernel(codeobj, "condition", condition,
                       extra=[_engine.Variable("_cond", "bool")])

    def arrays_of(kernel, out):
        for name in kernel.variables:
            var = V.get(name)
            if name in out or not isinstance(var, ArrayVariable):
                continue
            value = device.get_value(var, access_data=True)
            if not isinstance(value, np.ndarray) or not value.flags.c_contiguous:
                return None
            where = value.__array_interface__["data"][0]
            if any(a.__array_interface__["data"][0] == where for a in out.values()):
                # One array under two names (x_pre and x_post of a group connected to
                # itself): numpy's code handles the aliasing.
                return None
            out[name] = value
        return out

    def run():
        rows = indices
        if test is not None:
            flags = np.zeros(size, dtype=bool)
            arrays = arrays_of(test, {"_cond": flags})
            if arrays is None:
                return fallback()
            test.run_cpu(arrays, size, seed=device._seed())
            rows = np.flatnonzero(flags).astype(np.int32)
        arrays = arrays_of(write, {})
        if arrays is None:
            return fallback()
        if rows is None:
            write.run_cpu(arrays, size, seed=device._seed())
        else:
            write.run_cpu(arrays, len(rows), seed=device._seed(), list=rows)

    return run
