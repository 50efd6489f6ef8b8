"""``Synapses.connect`` in the engine: Brian2's ``synapses_create_generator`` template.

Brian2 turns every string form of ``connect`` (``condition=``, ``p=``, ``n=``, the generator
syntax ``j='k for k in range(...)/sample(...) if ...'`` and its ``i=`` mirror) into four
blocks of abstract code; Brian2's numpy code object is built as usual (it checks the
model and serves as the fallback), and its ``run`` is replaced by the engine's
(``src/runtime/connect.rs``): the blocks compiled as interpreter kernels, rows in parallel,
synapses in Brian2's order. Random draws come from the engine's Philox streams keyed by a
seed drawn from numpy's generator, so ``seed()`` makes connections reproducible.
"""

import numpy as np
from brian2.core.base import BrianObjectException
from brian2.core.preferences import prefs
from brian2.core.variables import ArrayVariable, AuxiliaryVariable

from . import _engine
from .codeobject import _dtype_name, kernel_spec, scalar_int

__all__ = ["engine_generator", "connect_arrays", "append_synapses"]


def _roles(kw):
    """The template's own variables (Brian2 declares them as auxiliary) by role."""
    over_pre = kw["outer_index"] == "i"
    outer, result = ("_i", "_j") if over_pre else ("_j", "_i")
    outer_raw, result_raw = (("_raw_pre_idx", "_raw_post_idx") if over_pre
                             else ("_raw_post_idx", "_raw_pre_idx"))
    return {outer: "outer", result: "result", outer_raw: "outer_raw",
            result_raw: "result_raw", kw["inner_variable"]: "inner",
            "_iter_low": "iter_low", "_iter_high": "iter_high", "_iter_step": "iter_step",
            "_iter_p": "iter_p", "_iter_size": "iter_size", "_cond": "cond", "_n": "n",
            "_pre_idx": "scratch", "_post_idx": "scratch"}


def _spec(codeobj, part, code, roles):
    variables = codeobj.variables
    extra = [_engine.Variable(name, _dtype_name(variables[name].dtype)) for name in roles
             if isinstance(variables.get(name), AuxiliaryVariable)]
    return kernel_spec(f"{codeobj.name}_{part}", "synapses_create_generator", code,
                       variables, codeobj.variable_indices,
                       float_dtype=prefs.core.default_float_dtype,
                       owner_name=codeobj.owner.name, optimise=False, extra_variables=extra)


def _literal_int(code):
    """The value of ``_n = <int>``, or None when ``n`` is an expression."""
    for line in code.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "_n":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def engine_generator(device, codeobj):
    """A replacement for the numpy code object's ``run``: creates the synapses with the
    engine. Raises NotImplementedError when the engine cannot (the caller keeps numpy)."""
    blocks = codeobj.wgpu_abstract_code
    kw = codeobj.wgpu_template_kwds
    if not isinstance(blocks, dict) or kw.get("iterator_func") not in ("range", "sample"):
        raise NotImplementedError("an unknown connect form")
    blocks = {k: (v or "") for k, v in blocks.items()}
    roles = _roles(kw)
    row_condition = bool(blocks["create_cond"].strip()) and not kw["result_index_condition"]
    candidate_condition = bool(blocks["create_cond"].strip()) and kw["result_index_condition"]
    n_literal = _literal_int(blocks["update"])
    rows_code = blocks["setup_iterator"] + ("\n" + blocks["create_cond"] if row_condition else "")
    cand_code = (blocks["create_cond"] + "\n" if candidate_condition else "") + blocks["update"]
    rows = _engine.compile(_spec(codeobj, "rows", rows_code, roles), wgsl=False)
    element = None
    if kw["element"].strip() != kw["inner_variable"]:
        element = _engine.compile(_spec(codeobj, "element", blocks["generator_expr"], roles),
                                  wgsl=False)
    candidate = None
    if candidate_condition or n_literal is None:
        candidate = _engine.compile(_spec(codeobj, "candidate", cand_code, roles), wgsl=False)
    for k in (rows, element, candidate):
        if k is not None and k.program_text == "":
            raise NotImplementedError("a connect statement the interpreter cannot run")
    over_pre = kw["outer_index"] == "i"
    V = codeobj.variables
    if kw["iterator_func"] == "range":
        iteration = "range"
    else:
        iteration = "sample_size" if kw["iterator_kwds"]["sample_size"] == "fixed" else "sample_p"

    def run():
        names = set()
        for k in (rows, element, candidate):
            if k is not None:
                names.update(k.variables)
        arrays = {}
        for name in names - set(roles):
            var = V.get(name)
            if isinstance(var, ArrayVariable):
                arrays[name] = np.ascontiguousarray(device.get_value(var, access_data=True))
        n_pre = scalar_int(V["N_pre"].get_value())
        n_post = scalar_int(V["N_post"].get_value())
        # Brian2 2.11 passes the offsets as template keywords; 2.10 only as variables.
        src_off = int(kw.get("source_offset_val", scalar_int(V["_source_offset"].get_value())))
        tgt_off = int(kw.get("target_offset_val", scalar_int(V["_target_offset"].get_value())))
        seed = device._seed()
        plan = {
            "iteration": iteration,
            "outer_size": n_pre if over_pre else n_post,
            "result_size": n_post if over_pre else n_pre,
            "outer_offset": src_off if over_pre else tgt_off,
            "result_offset": tgt_off if over_pre else src_off,
            "row_condition": row_condition,
            "candidate_condition": candidate_condition,
            "candidate_n": n_literal is None,
            "n": 1 if n_literal is None else n_literal,
            "result_index_used": bool(kw["result_index_used"]),
            "skip_if_invalid": bool(kw["skip_if_invalid"]),
            "result_name": "_" + kw["result_index"],  # as numpy names it
            "seed": seed,
        }
        try:
            made = _engine.connect_generator(plan, rows, element, candidate, roles, arrays)
        except (IndexError, ValueError) as exc:
            # As Brian2's runtime code objects report errors of their code.
            raise BrianObjectException(
                f"An exception occured during the execution of the 'run' block of code "
                f"object {codeobj.name} (the engine's synapse creation): {exc}",
                codeobj.owner) from exc
        pairs = made["pairs"]
        if over_pre:
            append_synapses(codeobj.owner, made["count"], pairs.write,
                            made["outer_counts"], made["result_counts"])
        else:
            append_synapses(codeobj.owner, made["count"],
                            lambda pre, post: pairs.write(post, pre),
                            made["result_counts"], made["outer_counts"])

    return run


def append_synapses(synapses, count, fill, pre_counts, post_counts):
    """Append `count` synapses to Brian2's synapse arrays with one resize each:
    ``fill(pre, post)`` writes their absolute indices into the two new int32 ranges;
    ``*_counts`` are the synapses per source and per target (without offsets). Then update
    what Brian2 derives from them (N, N_incoming, N_outgoing, the multisynaptic index) as
    its own templates do."""
    old, pre, post = grow_indices(synapses, count)
    fill(pre, post)
    finish_append(synapses, old + count, pre_counts, post_counts)


def grow_indices(synapses, count):
    """Resize ``_synaptic_pre``/``_synaptic_post`` by `count`: the old size and views of
    the two new ranges."""
    V = synapses.variables
    old = scalar_int(V["N"].get_value())
    for name in ("_synaptic_pre", "_synaptic_post"):
        V[name].resize(old + count)
    return old, V["_synaptic_pre"].get_value()[old:], V["_synaptic_post"].get_value()[old:]


def finish_append(synapses, new, pre_counts, post_counts):
    """After the indices grew to `new` synapses: the other synaptic variables, the counts
    per source and target, the multisynaptic index."""
    from brian2.synapses.synapses import calc_repeats

    V = synapses.variables
    synapses._resize(new)
    src_off = scalar_int(V["_source_offset"].get_value())
    tgt_off = scalar_int(V["_target_offset"].get_value())
    for name, off, counts in (("N_outgoing", src_off, pre_counts),
                              ("N_incoming", tgt_off, post_counts)):
        V[name].resize(off + len(counts))
        total = V[name].get_value()
        total[off:off + len(counts)] += counts.astype(total.dtype, copy=False)
    if synapses.multisynaptic_index is not None:
        numbers = V[synapses.multisynaptic_index].get_value()
        numbers[:] = calc_repeats(V["_synaptic_pre"].get_value()
                                  + V["_synaptic_post"].get_value() * 1j)


def connect_arrays(synapses, i, j):
    """``connect(i=array, j=array)`` (with ``n=1``, ``p=1``): Brian2's checks and errors,
    then one append (no per-call code object; Brian2's ``repeat`` and count updates were
    most of its time). Each index array is read once: copied into the grown synapse
    arrays while it is counted and range-checked; a bad index shrinks them back."""
    i, j, _ = synapses._verify_connect_array_arguments(i, j, 1)
    V = synapses.variables
    sides = []
    for indices, which, group, offset_name in (
            (i, "source", synapses.source, "_source_offset"),
            (j, "target", synapses.target, "_target_offset")):
        indices = np.atleast_1d(indices)
        size = len(group)
        # A wider type is range-checked before it is narrowed to int32, which could wrap
        # an index into range; int32 indices are checked where they are counted.
        if (indices.dtype != np.int32 and len(indices)
                and (indices.max() >= size or indices.min() < 0)):
            raise_out_of_range(which, size, group)
        indices = np.ascontiguousarray(indices, dtype=np.int32)
        sides.append((indices, which, group, scalar_int(V[offset_name].get_value())))
    count = len(sides[0][0])
    old, pre, post = grow_indices(synapses, count)
    counts = []
    for (indices, which, group, offset), dst in zip(sides, (pre, post)):
        counted = _engine.copy_counting(indices, dst, offset, len(group))
        if counted is None:
            for name in ("_synaptic_pre", "_synaptic_post"):
                V[name].resize(old)
            raise_out_of_range(which, len(group), group)
        counts.append(counted)
    synapses._connect_called = True
    finish_append(synapses, old + count, *counts)
    # As Brian2's connect does after its code object.
    for var in synapses._registered_variables:
        var.size = len(var.get_value())
    for name in ("N_incoming", "N_outgoing"):
        V[name].size = len(V[name].get_value())


def raise_out_of_range(which, size, group):
    cause = IndexError(
        f"The given {which} indices contain values outside of the range "
        f"[0, {size - 1}] allowed for the {which} group \"{group.name}\"")
    raise IndexError("Tried to create synapse indices outside valid range.") from cause
