"""Brian2's GSL state updaters (``method='gsl'``, ``'gsl_rkf45'``, ``'gsl_rk2'``,
``'gsl_rk4'``, ``'gsl_rkck'``, ``'gsl_rk8pd'``) on the device, without the GSL library.

Brian2's ``GSLStateUpdater`` turns each differential equation ``dx/dt = f`` into the
abstract statement ``_gsl_x_f<k> = f`` and leaves the integration to GSL's ``odeiv2``
driver, which only its Cython and C++ standalone code objects call. Here the engine
integrates (``src/runtime/gsl.rs``): per element and step it runs the same adaptive
Runge-Kutta driver (GSL's steppers, its scaled error control, ``max_steps``,
``use_last_timestep``, fixed steps when ``adaptable_timestep`` is off), evaluating the
derivatives with a kernel compiled from those statements. What a code object of GSL's would
check (the error options, their units) is checked when the code object is made, so a bad
option fails at ``run()`` before the first step, as it does under Cython.
"""

import re

import numpy as np
from brian2.core.variables import ArrayVariable, AuxiliaryVariable
from brian2.units.fundamentalunits import fail_for_dimension_mismatch
from brian2.utils.stringtools import word_substitute

from . import _engine
from .codeobject import scalar_int

_DERIVATIVE = re.compile(r"^\s*_gsl_(\w+)_f(\d+)\s*=(.*)$")
METHODS = ("rk2", "rk4", "rkf45", "rkck", "rk8pd")


def _code_text(abstract):
    if isinstance(abstract, dict):
        return abstract.get(None, "") or ""
    return abstract or ""


def split(code):
    """The derivatives ``[(variable, expression)]`` in GSL's order, and the other
    statements (refractoriness: computed once per step at ``t``)."""
    derivatives, others = {}, []
    for line in code.splitlines():
        if not line.strip():
            continue
        m = _DERIVATIVE.match(line)
        if m:
            derivatives[int(m.group(2))] = (m.group(1), m.group(3).strip())
        else:
            others.append(line)
    return [derivatives[k] for k in sorted(derivatives)], others


def error_scale(options, names, variables):
    """The absolute error per integrated variable (GSL's ``scale_abs``), with the checks
    and errors of Brian2's GSL code generator."""
    default = options["absolute_error"]
    per_variable = options["absolute_error_per_variable"]
    if not isinstance(default, float):
        raise TypeError("The absolute_error key in method_options should be a float, "
                        f"not {type(default).__name__}")
    if per_variable is None:
        return [float(default)] * len(names)
    if not isinstance(per_variable, dict):
        raise TypeError("The absolute_error_per_variable key in method_options should be "
                        "None or a dictionary of the error for each integrated variable, "
                        f"not {type(per_variable).__name__}")
    for name, error in per_variable.items():
        if name not in names:
            if name not in variables:
                raise KeyError(f"absolute_error specified for variable '{name}', which "
                               "does not exist")
            raise KeyError(f"absolute_error specified for variable '{name}', which is not "
                           "integrated by this state updater")
        fail_for_dimension_mismatch(error, variables[name],
                                    f"The unit of absolute_error_per_variable for '{name}' "
                                    "does not match the unit of the variable")
    return [float(per_variable.get(name, default)) for name in names]


class _Listing(str):
    """A GSL code object's ``code``: as text, what the engine runs for it (in the terms of
    the GSL calls it replaces); its blocks stay Brian2's numpy code."""

    def __new__(cls, text, code):
        obj = str.__new__(cls, text)
        obj._code = code
        return obj

    def __getattr__(self, name):
        return getattr(self._code, name)


def _listing(integrator, options, names, scale, code):
    start = "_last_timestep[_idx]" if options["use_last_timestep"] else "dt"
    if options["adaptable_timestep"]:
        call = "gsl_odeiv2_driver_apply(_GSL_driver, &t, t + dt, _GSL_y)"
        limit = f"at most {options['max_steps']} steps"
    else:
        call = "gsl_odeiv2_driver_apply_fixed_step(_GSL_driver, &t, dt, 1, _GSL_y)"
        limit = "one step of dt"
    return "\n".join([
        "# brian2wgpu: integrated in the engine (src/runtime/gsl.rs) with the semantics",
        f"# of GSL's odeiv2 driver: stepper gsl_odeiv2_step_{integrator}, scaled absolute",
        f"# error control {dict(zip(names, scale))}, {limit} per element and time step.",
        f"_GSL_y = [{', '.join(names)}]",
        f"_GSL_driver.h = {start}",
        f"if ({call} != GSL_SUCCESS):",
        "    raise IntegrationError",
        "# derivatives (_gsl_<variable>_f<k>), evaluated at each stage:",
        code,
    ])


def prepare(codeobj, updater):
    """When the state updater's code object is made: check the options as Brian2's GSL
    generator does, add the arrays its options ask for (``_last_timestep``,
    ``_failed_steps``, ``_step_count``) to the group, and describe the integration."""
    owner = codeobj.owner
    options = updater.method_options
    code = _code_text(codeobj.wgpu_abstract_code)
    derivatives, _ = split(code)
    names = [name for name, _ in derivatives]
    scale = error_scale(options, names, codeobj.variables)
    n = scalar_int(codeobj.variables["N"].get_value())
    dt = float(owner.clock.dt_)
    for name, wanted, dtype, value in (("_last_timestep", options["use_last_timestep"],
                                        np.float64, dt),
                                       ("_failed_steps", options["save_failed_steps"],
                                        np.int32, 0),
                                       ("_step_count", options["save_step_count"],
                                        np.int32, 0)):
        if wanted and name not in owner.variables:
            owner.variables.add_array(name, size=n, dtype=dtype,
                                      values=np.full(n, value, dtype=dtype))
    codeobj.code = _Listing(_listing(updater.integrator, options, names, scale, code),
                            codeobj.code)


def lower(device, engine, state, updater, codeobj):
    """The engine op of a GSL state updater's code object: a kernel for the statements
    that are not derivatives (once per step, at ``t``), a kernel for the derivatives (per
    stage: the integrated variables read the stage's values, ``t`` the stage's time), and
    the driver's settings."""
    V = codeobj.variables
    owner = codeobj.owner
    options = updater.method_options
    if updater.integrator not in METHODS:
        raise NotImplementedError(f"wgpu device: GSL stepper '{updater.integrator}' of "
                                  f"'{owner.name}'; the device has {', '.join(METHODS)}")
    code = _code_text(codeobj.wgpu_abstract_code)
    derivatives, others = split(code)
    names = [name for name, _ in derivatives]
    for name in names:
        if np.dtype(V[name].dtype) != np.float64:
            raise NotImplementedError(
                f"wgpu device: GSL integration of the {np.dtype(V[name].dtype)} variable "
                f"'{name}' of '{owner.name}': the GSL methods integrate in float64; use "
                "prefs.core.default_float_dtype = float64 or another method")
    n = scalar_int(V["N"].get_value())
    dt = float(np.asarray(V["dt"].get_value()).reshape(-1)[0])
    state.extra = {}
    pre = device._kernel(engine, state, codeobj, code="\n".join(others)) if others else None
    # The derivative kernel, from the derivatives alone: after Brian2's loop-invariant
    # optimisation (as its GSL generator does it), the vector statements see the stage's
    # time and state; loop-invariant values (of t, too) stay those of the step, and what
    # the other statements computed (refractoriness) that of the step's start.
    renamed = {"t": "_gsl_t"}
    variables = dict(V)
    for k, name in enumerate(names):
        # Never loop-invariant, even when constant (as in Brian2's GSL generator).
        variables[f"_gsl_{name}_f{k}"] = AuxiliaryVariable(f"_gsl_{name}_f{k}",
                                                          dtype=np.float64, scalar=False)
        renamed[f"_gsl_{name}_f{k}"] = f"_gsl_k_{name}"
    extra = {}
    for name in ["_gsl_t"] + [f"_gsl_k_{x}" for x in names]:
        variables[name] = ArrayVariable(name, owner=None, size=n, device=device,
                                        dtype=np.float64)
        extra[name] = state.scratch(np.zeros(n), f"GSL scratch '{name}' of '{owner.name}'")
    # On the interpreter the integrated variables read each stage's values from these
    # arrays; the GPU keeps a stage's values in registers and binds the variables.
    stage = []
    for name in names:
        extra[name] = state.scratch(np.zeros(n), f"GSL stage values of '{name}' of "
                                                 f"'{owner.name}'")
        stage.append(extra[name])
    state.extra = extra
    derivative_code = "\n".join(f"_gsl_{name}_f{k} = {expr}"
                                for k, (name, expr) in enumerate(derivatives))
    # The integrated variables and the stage's time stay in the kernel even where the
    # derivatives do not read them: the GPU's driver loads and stores through them.
    kernel = device._kernel(engine, state, codeobj, code=derivative_code, variables=variables,
                            vector_renames=renamed, extra_read=names + ["_gsl_t"])
    state.extra = {}

    def optional(name, wanted):
        return state.array(owner.variables[name], name) if wanted else None

    return _engine.Op.integrate(
        kernel, n, dt, updater.integrator, bool(options["adaptable_timestep"]),
        int(options["max_steps"]), error_scale(options, names, V),
        [state.array(V[name], name) for name in names], names, stage,
        [extra[f"_gsl_k_{x}"] for x in names], extra["_gsl_t"], state.array(V["t"], "t"),
        owner.name, pre=pre,
        last_timestep=optional("_last_timestep", options["use_last_timestep"]),
        failed_steps=optional("_failed_steps", options["save_failed_steps"]),
        step_count=optional("_step_count", options["save_step_count"]))
