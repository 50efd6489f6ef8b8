//! The schedule on the host: kernels through the interpreter, templates' bookkeeping
//! (event compaction, monitor appends) in plain Rust over the engine's arrays.

use super::{Binding, Clocks, Engine, EngineError, Item, Op, Record, RunStatus, elem_size};
use crate::arrays::{RawArray, RunArgs};
use crate::ir::Type;

/// Typed view of an engine array (valid during the run).
pub(super) unsafe fn slice<'a, T>(a: &RawArray) -> &'a mut [T] {
    unsafe { std::slice::from_raw_parts_mut(a.ptr as *mut T, a.len) }
}

pub(super) fn check(a: &RawArray, ty: Type, what: &str) -> Result<(), EngineError> {
    if a.ty != ty || a.ptr.is_null() {
        return Err(EngineError::Invalid(format!(
            "{what} must be a {ty} array, got {}",
            a.ty
        )));
    }
    Ok(())
}

/// Grow a record by `n` elements; return a raw view of the whole buffer and the old length.
fn grow(rec: &mut Record, n: usize) -> (RawArray, usize) {
    let size = elem_size(rec.ty);
    let old = rec.len();
    rec.data.resize((old + n) * size, 0);
    (
        RawArray {
            ptr: rec.data.as_mut_ptr(),
            len: old + n,
            ty: rec.ty,
        },
        old,
    )
}

/// Run kernel `k` over `n` elements (or `list`), with records grown by `grow_by`.
pub(super) unsafe fn run_kernel(
    eng: &mut Engine,
    k: usize,
    arrays: &[RawArray],
    n: usize,
    list: Option<&[i32]>,
    grow_by: usize,
    step: i64,
) -> Result<(), EngineError> {
    let seed = eng.seed;
    let (kernels, records) = (&eng.kernels, &mut eng.records);
    let ek = &kernels[k];
    let mut raws = Vec::with_capacity(ek.bindings.len());
    let mut pos_base = 0;
    let mut grown = vec![false; records.len()];
    for b in &ek.bindings {
        raws.push(match *b {
            Binding::None => RawArray {
                ptr: std::ptr::null_mut(),
                len: 0,
                ty: Type::Bool,
            },
            Binding::Array(id) => arrays[id],
            Binding::Record(r) => {
                // Several variables may share a record only if they are the same buffer.
                let (raw, old) = if grown[r] {
                    let rec = &mut records[r];
                    (
                        RawArray {
                            ptr: rec.data.as_mut_ptr(),
                            len: rec.len(),
                            ty: rec.ty,
                        },
                        rec.len() - grow_by,
                    )
                } else {
                    grown[r] = true;
                    grow(&mut records[r], grow_by)
                };
                pos_base = old;
                raw
            }
        });
    }
    let prog = ek
        .program
        .as_ref()
        .map_err(|why| EngineError::Unsupported(why.clone()))?;
    let args = RunArgs {
        n,
        seed,
        kernel_id: ek.rng_id,
        step,
        list,
        pos_base,
    };
    // A panic is a bug of ours; it reaches the user as an error naming the kernel (a
    // PanicException is a BaseException that `except Exception` would miss).
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        prog.run_raw(&raws, &args)
    }))
    .map_err(|payload| EngineError::panic(&ek.kernel.name, payload))??;
    Ok(())
}

/// Events of this step within `[start, stop)` (ascending).
unsafe fn events<'a>(
    space: &RawArray,
    source_n: usize,
    start: usize,
    stop: usize,
) -> Result<&'a [i32], EngineError> {
    check(space, Type::I32, "eventspace")?;
    let s: &[i32] = unsafe { slice(space) };
    if s.len() != source_n + 1 {
        return Err(EngineError::Invalid(format!(
            "eventspace has length {}, expected {}",
            s.len(),
            source_n + 1
        )));
    }
    let count = s[source_n].clamp(0, source_n as i32) as usize;
    let ev = &s[..count];
    let lo = ev.partition_point(|&i| (i as usize) < start);
    let hi = ev.partition_point(|&i| (i as usize) < stop);
    Ok(&ev[lo..hi])
}

/// The indices of the set flags, ascending, written to the front of `out`; returns their
/// count. Eight flags are tested per load, so a step where few neurons spike costs a
/// fraction of a pass over the flags.
fn compact(flags: &[u8], out: &mut [i32]) -> usize {
    let mut count = 0;
    let mut words = flags.chunks_exact(8);
    for (w, word) in words.by_ref().enumerate() {
        if u64::from_ne_bytes(word.try_into().unwrap()) == 0 {
            continue;
        }
        for (k, &f) in word.iter().enumerate() {
            if f != 0 {
                out[count] = (8 * w + k) as i32;
                count += 1;
            }
        }
    }
    let base = flags.len() - words.remainder().len();
    for (k, &f) in words.remainder().iter().enumerate() {
        if f != 0 {
            out[count] = (base + k) as i32;
            count += 1;
        }
    }
    count
}

fn push<T: bytemuck::Pod>(rec: &mut Record, v: T) {
    rec.data.extend_from_slice(bytemuck::bytes_of(&v));
}

/// `step`: the clock's timestep; `rng_step`: the step counted from the run's start (the
/// random streams' counter, so that a restored random state replays the same numbers).
unsafe fn execute(
    eng: &mut Engine,
    op: &Op,
    arrays: &[RawArray],
    step: i64,
    rng_step: i64,
) -> Result<(), EngineError> {
    match op {
        Op::Elementwise { kernel, n } => unsafe {
            run_kernel(eng, *kernel, arrays, *n, None, 0, rng_step)
        },
        Op::Threshold {
            kernel,
            n,
            cond,
            eventspace,
        } => {
            unsafe { run_kernel(eng, *kernel, arrays, *n, None, 0, rng_step)? };
            let (c, space) = (&arrays[*cond], &arrays[*eventspace]);
            check(c, Type::Bool, "threshold condition")?;
            check(space, Type::I32, "eventspace")?;
            let flags: &[u8] = unsafe { slice(c) };
            let out: &mut [i32] = unsafe { slice(space) };
            let count = compact(&flags[..*n], out);
            out[*n] = count as i32;
            Ok(())
        }
        Op::Reset { kernel, eventspace } => {
            let space = &arrays[*eventspace];
            let source_n = space.len - 1;
            let ev = unsafe { events(space, source_n, 0, source_n)? };
            if ev.is_empty() {
                return Ok(());
            }
            unsafe { run_kernel(eng, *kernel, arrays, ev.len(), Some(ev), 0, rng_step) }
        }
        Op::SpikeMonitor {
            kernel,
            eventspace,
            source_n,
            start,
            stop,
            count,
            total,
            records: _,
        } => {
            let ev = unsafe { events(&arrays[*eventspace], *source_n, *start, *stop)? };
            if ev.is_empty() {
                return Ok(());
            }
            unsafe { run_kernel(eng, *kernel, arrays, ev.len(), Some(ev), ev.len(), rng_step)? };
            let cnt: &mut [i32] = unsafe { slice(&arrays[*count]) };
            for &i in ev {
                cnt[i as usize - start] += 1;
            }
            let tot: &mut [i32] = unsafe { slice(&arrays[*total]) };
            tot[0] += ev.len() as i32;
            Ok(())
        }
        Op::StateMonitor {
            kernel,
            indices,
            n_indices,
            t,
            t_record,
            records: _,
            total,
        } => {
            let idx: &[i32] = unsafe { slice(&arrays[*indices]) };
            let idx = &idx[..*n_indices];
            let tv: &[f64] = unsafe { slice(&arrays[*t]) };
            push(&mut eng.records[*t_record], tv[0]);
            if !idx.is_empty() {
                unsafe {
                    run_kernel(
                        eng,
                        *kernel,
                        arrays,
                        idx.len(),
                        Some(idx),
                        idx.len(),
                        rng_step,
                    )?
                };
            }
            let tot: &mut [i32] = unsafe { slice(&arrays[*total]) };
            tot[0] += 1;
            Ok(())
        }
        Op::RateMonitor {
            eventspace,
            source_n,
            start,
            stop,
            t,
            dt,
            t_record,
            rate_record,
            total,
        } => {
            let ev = unsafe { events(&arrays[*eventspace], *source_n, *start, *stop)? };
            let tv: &[f64] = unsafe { slice(&arrays[*t]) };
            push(&mut eng.records[*t_record], tv[0]);
            let rate = ev.len() as f64 / dt / (*stop - *start) as f64;
            push(&mut eng.records[*rate_record], rate);
            let tot: &mut [i32] = unsafe { slice(&arrays[*total]) };
            tot[0] += 1;
            Ok(())
        }
        Op::PushSpikes { queue, eventspace } => {
            let space = &arrays[*eventspace];
            let ev = unsafe { events(space, space.len - 1, 0, space.len - 1)? };
            eng.queues[*queue].push(ev);
            Ok(())
        }
        Op::Synapses { kernel, queue } => {
            let q = &mut eng.queues[*queue];
            let due = std::mem::take(&mut q.slots[q.offset]);
            let res = if due.is_empty() {
                Ok(())
            } else {
                unsafe { run_kernel(eng, *kernel, arrays, due.len(), Some(&due), 0, rng_step) }
            };
            let q = &mut eng.queues[*queue];
            q.slots[q.offset] = due;
            q.advance();
            res
        }
        Op::SummedVariable {
            kernel,
            n,
            values,
            index,
            target,
            start,
            stop,
        } => {
            unsafe { run_kernel(eng, *kernel, arrays, *n, None, 0, rng_step)? };
            let (vals, idx, tgt) = (&arrays[*values], &arrays[*index], &arrays[*target]);
            check(idx, Type::I32, "summed variable index")?;
            check(vals, tgt.ty, "summed variable values")?;
            let idx: &[i32] = unsafe { slice(idx) };
            if idx.len() < *n || vals.len < *n || *stop > tgt.len {
                return Err(EngineError::Invalid(
                    "summed variable: arrays shorter than the synapses".into(),
                ));
            }
            // numpy's bincount sums in float64 (in synapse order); the assignment to the
            // target then rounds (float32) or truncates (integers).
            let mut acc = vec![0f64; *stop - *start];
            macro_rules! sum {
                ($t:ty) => {{
                    let v: &[$t] = unsafe { slice(vals) };
                    for (&i, &x) in idx[..*n].iter().zip(&v[..*n]) {
                        let i = i as usize;
                        if i < *start || i >= *stop {
                            return Err(EngineError::Invalid(format!(
                                "summed variable: target index {i} outside [{start}, {stop})"
                            )));
                        }
                        acc[i - *start] += x as f64;
                    }
                    let out: &mut [$t] = unsafe { slice(tgt) };
                    for (o, a) in out[*start..*stop].iter_mut().zip(acc) {
                        *o = a as $t;
                    }
                }};
            }
            match tgt.ty {
                Type::F64 => sum!(f64),
                Type::F32 => sum!(f32),
                Type::I32 => sum!(i32),
                Type::I64 => sum!(i64),
                t => {
                    return Err(EngineError::Invalid(format!(
                        "summed variable of type {t} cannot be summed"
                    )));
                }
            }
            Ok(())
        }
        Op::SpikeGenerator {
            eventspace,
            neuron_index,
            timebins,
            lastindex,
            period,
        } => {
            let space = &arrays[*eventspace];
            check(space, Type::I32, "eventspace")?;
            check(&arrays[*neuron_index], Type::I32, "spike generator indices")?;
            check(&arrays[*timebins], Type::I32, "spike generator time bins")?;
            check(&arrays[*lastindex], Type::I32, "spike generator _lastindex")?;
            let out: &mut [i32] = unsafe { slice(space) };
            let idx: &[i32] = unsafe { slice(&arrays[*neuron_index]) };
            let bins: &[i32] = unsafe { slice(&arrays[*timebins]) };
            let last: &mut [i32] = unsafe { slice(&arrays[*lastindex]) };
            let (from, count) = spikegenerator_step(bins, last[0] as usize, step, *period);
            let n = out.len() - 1;
            if count > n {
                return Err(EngineError::Invalid(format!(
                    "spike generator: {count} spikes in one step for {n} neurons"
                )));
            }
            out[..count].copy_from_slice(&idx[from..from + count]);
            out[n] = count as i32;
            last[0] = (from + count) as i32;
            Ok(())
        }
        Op::Cable {
            kernel,
            n,
            dt,
            arrays: ids,
        } => {
            unsafe { run_kernel(eng, *kernel, arrays, *n, None, 0, rng_step)? };
            let float = arrays[ids.v].ty;
            for id in ids.int_ids() {
                check(&arrays[id], Type::I32, "SpatialNeuron's morphology index")?;
            }
            for id in ids.float_ids() {
                check(&arrays[id], float, "SpatialNeuron's cable arrays")?;
            }
            match float {
                Type::F64 => unsafe { cable_step::<f64>(ids, arrays, *dt) },
                Type::F32 => unsafe { cable_step::<f32>(ids, arrays, *dt as f32) },
                t => Err(format!("v is {t}, not a float")),
            }
            .map_err(|e| EngineError::Invalid(format!("SpatialNeuron: {e}")))
        }
        Op::Integrate { .. } => unsafe { super::gsl::step_cpu(eng, op, arrays, rng_step) },
        Op::Python { .. } => unreachable!("handled by the run loop"),
    }
}

/// One implicit step of the cable equation over the engine's arrays.
///
/// # Safety
/// The arrays must be valid for the call and of the types checked by the caller.
unsafe fn cable_step<T: super::cable::Real>(
    ids: &super::CableArrays,
    arrays: &[RawArray],
    dt: T,
) -> Result<(), String> {
    // Distinct arrays (checked by `Engine::check_run`), so the mutable views do not alias.
    let f = |id: usize| -> &mut [T] { unsafe { slice(&arrays[id]) } };
    let i = |id: usize| -> &[i32] { unsafe { slice(&arrays[id]) } };
    let mut cable = super::cable::Cable {
        dt,
        v: f(ids.v),
        cm: f(ids.cm),
        ic: f(ids.ic),
        v_previous: f(ids.v_previous),
        gtot: f(ids.gtot_all),
        i0: f(ids.i0_all),
        ab_star0: f(ids.ab_star0),
        ab_star1: f(ids.ab_star1),
        ab_star2: f(ids.ab_star2),
        b_plus: f(ids.b_plus),
        b_minus: f(ids.b_minus),
        v_star: f(ids.v_star),
        u_plus: f(ids.u_plus),
        u_minus: f(ids.u_minus),
        c: f(ids.c),
        starts: i(ids.starts),
        ends: i(ids.ends),
        parent: i(ids.morph_parent_i),
        idxchild: i(ids.morph_idxchild),
        invr0: f(ids.invr0),
        invrn: f(ids.invrn),
        p_parent: f(ids.p_parent),
        p_diag: f(ids.p_diag),
        b: f(ids.b),
        children_num: i(ids.morph_children_num),
        children: i(ids.morph_children),
        p_children: f(ids.p_children),
    };
    cable.step()
}

pub unsafe fn run(
    eng: &mut Engine,
    arrays: &[RawArray],
    clocks: &mut Clocks,
    should_stop: &mut dyn FnMut(&Clocks) -> bool,
    check_every: usize,
) -> Result<RunStatus, EngineError> {
    for c in &clocks.clocks {
        for a in [c.t_array, c.timestep_array].into_iter().flatten() {
            let want = if Some(a) == c.t_array {
                Type::F64
            } else {
                Type::I64
            };
            check(&arrays[a], want, "clock array")?;
        }
    }
    // Kernels the interpreter cannot run fail the run before its first step.
    if let Some(Err(why)) = eng
        .kernels
        .iter()
        .map(|k| k.program.as_ref())
        .find(|p| p.is_err())
    {
        return Err(EngineError::Unsupported(why.clone()));
    }
    let items = eng.items.clone();
    let per_check = if check_every > 0 {
        check_every
    } else {
        usize::MAX
    };
    loop {
        // The steps run inside the engine's thread pool, `check_every` at a time: a
        // kernel's parallel blocks then start from a pool thread, which runs its own share
        // at once instead of handing all of it over and sleeping until the others wake
        // (a cross-thread wake-up per kernel and step, tens of microseconds on a VM).
        // `should_stop` stays on this thread, where Python's signal handlers run.
        let done = crate::threads::install(|| unsafe {
            run_steps(eng, &items, arrays, clocks, per_check)
        })?;
        if let Some(status) = done {
            unsafe { clocks.write_host(arrays) };
            return Ok(status);
        }
        if should_stop(clocks) {
            unsafe { clocks.write_host(arrays) };
            return Ok(RunStatus::Stopped);
        }
    }
}

/// At most `max_steps` steps of the schedule; `None` when that many ran and the clocks
/// have more, else how the run ended (finished, or at a Python callback).
unsafe fn run_steps(
    eng: &mut Engine,
    items: &[Item],
    arrays: &[RawArray],
    clocks: &mut Clocks,
    max_steps: usize,
) -> Result<Option<RunStatus>, EngineError> {
    for _ in 0..max_steps {
        let Some((_, cur)) = clocks.next() else {
            return Ok(Some(RunStatus::Finished));
        };
        unsafe { clocks.write_host(arrays) };
        let first = eng.resume_at.take().unwrap_or(0);
        for (pos, item) in items.iter().enumerate().skip(first) {
            if !cur[item.clock] {
                continue;
            }
            if let Op::Python { index } = item.op {
                eng.resume_at = Some(pos + 1);
                return Ok(Some(RunStatus::Callback { index }));
            }
            let t0 = eng.profile.is_some().then(std::time::Instant::now);
            let step = clocks.clocks[item.clock].timestep;
            let rng_step = step - eng.step_base.get(item.clock).copied().unwrap_or(0);
            unsafe { execute(eng, &item.op, arrays, step, rng_step)? };
            if let (Some(t0), Some(p)) = (t0, eng.profile.as_mut()) {
                p[pos] += t0.elapsed().as_secs_f64();
            }
        }
        clocks.advance(&cur);
    }
    Ok(clocks.next().is_none().then_some(RunStatus::Finished))
}

/// Brian2's `spikegenerator` template: with `last` spikes already emitted, the spikes of
/// time bin `step` (modulo `period` bins when > 0) are `from..from + count`.
pub fn spikegenerator_step(bins: &[i32], last: usize, step: i64, period: i64) -> (usize, usize) {
    let mut bin = step;
    let mut from = last.min(bins.len());
    if period > 0 {
        bin = step.rem_euclid(period);
        if from > 0 && bins[from - 1] as i64 >= bin {
            from = 0;
        }
    }
    let count = bins[from..].partition_point(|&b| b as i64 <= bin);
    (from, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{KernelSpec, VariableSpec, lower};

    /// A panic inside a kernel (here provoked by corrupting the compiled program's register
    /// types) comes back as an error that names the kernel, not as an unwinding panic.
    #[test]
    fn compaction_lists_the_set_flags_in_order() {
        for n in [0usize, 1, 7, 8, 9, 64, 77] {
            for stride in [1usize, 3, 8, 13] {
                let flags: Vec<u8> = (0..n).map(|i| (i % stride == stride - 1) as u8).collect();
                let want: Vec<i32> = (0..n as i32).filter(|&i| flags[i as usize] != 0).collect();
                let mut out = vec![-1; n + 1];
                let count = super::compact(&flags, &mut out);
                assert_eq!(&out[..count], &want[..], "n {n}, stride {stride}");
            }
        }
    }

    #[test]
    fn a_panicking_kernel_is_an_error_naming_it() {
        let mut spec = KernelSpec::vector(
            "stateupdate",
            vec![VariableSpec::array("v", Type::F64)],
            "v = v + 1",
        );
        spec.name = "neurongroup_stateupdater_codeobject".into();
        let mut eng = Engine::new();
        let k = eng
            .add_kernel(lower(&spec).unwrap(), vec![Binding::Array(0)])
            .unwrap();
        let mut v = vec![0.0f64; 10];
        let arrays = [RawArray {
            ptr: v.as_mut_ptr() as *mut u8,
            len: v.len(),
            ty: Type::F64,
        }];
        let ok = unsafe { run_kernel(&mut eng, k, &arrays, v.len(), None, 0, 0) };
        assert!(ok.is_ok(), "{ok:?}");
        let prog = eng.kernels[k].program.as_mut().unwrap();
        for r in prog.regs.iter_mut() {
            r.ty = Type::Bool;
        }
        let err = unsafe { run_kernel(&mut eng, k, &arrays, v.len(), None, 0, 0) }.unwrap_err();
        assert!(matches!(err, EngineError::Panic { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("internal error in kernel 'neurongroup_stateupdater_codeobject'"),
            "{text}"
        );
        assert_eq!(v, vec![1.0; 10]);
    }
}
