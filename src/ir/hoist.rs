//! Scalar code out of GPU kernels. Brian2 puts loop invariants in a kernel's scalar block
//! (CUBA's `_lio_*` integration constants: `exp`s of `dt` over time constants; a drive
//! `sin(2*pi*f*t)`); the WGSL backend would evaluate them in every invocation, the
//! interpreter once per call. Scalar statements whose inputs are constants, shared
//! variables that nothing writes while the engine runs, clock values (`t`, timesteps) and
//! other such statements are split off here. The host evaluates them with the
//! interpreter, once per run, or, where they read a clock, once per step for a whole batch
//! of steps ahead (the clock's values are planned); the GPU kernel reads each result from
//! a small table ([`VarKind::Hoisted`]: one table per type, so a kernel with dozens of
//! constants still needs few bindings).

use std::collections::{HashMap, HashSet};

use super::{Expr, ExprKind, Index, Kernel, Local, LocalId, Stmt, VarId, VarKind, Variable};

/// A kernel with its run-invariant scalar statements split off.
#[derive(Debug, Clone)]
pub struct Hoisted {
    /// The kernel without those statements. Each hoisted local is read through a new
    /// variable of kind [`VarKind::Hoisted`]; these are `kernel.vars[first..]`, their
    /// slots numbered per type in that order.
    pub kernel: Kernel,
    pub first: VarId,
    /// Computes the hoisted locals on the host: the original kernel's variables (read
    /// only), then one written shared output variable per hoisted local, in the order of
    /// `kernel.vars[first..]`.
    pub eval: Kernel,
}

/// Variables read through table lookups (TimedArray) in `e`.
fn tables(e: &Expr, out: &mut HashSet<VarId>) {
    e.any(&mut |x| {
        if let ExprKind::Gather(v, _) = x.kind {
            out.insert(v);
        }
        false
    });
}

/// Whether `e` may be computed on the host: no random numbers, no user functions (they
/// exist in WGSL only), no table lookups, no element index.
fn pure(e: &Expr) -> bool {
    !e.any(&mut |x| match &x.kind {
        ExprKind::ElemIndex | ExprKind::Gather(..) => true,
        ExprKind::Call(f, _) => f.uses_rng() || matches!(f, super::Func::User(_)),
        _ => false,
    })
}

/// How a shared variable changes while the engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invariance {
    /// Nothing writes it during the run.
    Run,
    /// Only the clock writes it, once per step, with values known in advance.
    Step,
    /// Anything else.
    Varying,
}

/// Split off the scalar statements of `k` that depend only on constants and on shared
/// variables that `class` calls [`Invariance::Run`] or [`Invariance::Step`].
/// `None` when there is nothing to hoist.
pub fn hoist_scalars(k: &Kernel, class: impl Fn(VarId) -> Invariance) -> Option<Hoisted> {
    let mut assigned = vec![0usize; k.locals.len()];
    for Stmt::Assign { local, .. } in k.scalar.iter().chain(&k.vector) {
        assigned[*local] += 1;
    }
    // Locals whose value is fixed for the run (false) or for the step (true).
    let mut known: HashMap<LocalId, bool> = k
        .vars
        .iter()
        .enumerate()
        .filter(|(_, var)| !var.written)
        .filter_map(|(v, var)| match var.kind {
            VarKind::Constant(_) => Some((var.local, false)),
            VarKind::Array if var.index == Index::Zero => match class(v) {
                Invariance::Run => Some((var.local, false)),
                Invariance::Step => Some((var.local, true)),
                Invariance::Varying => None,
            },
            _ => None,
        })
        .collect();
    let mut hoisted = Vec::new();
    let mut kept = Vec::new();
    for s in &k.scalar {
        let Stmt::Assign { local, value, cond } = s;
        let mut used = Vec::new();
        value.read_locals(&mut used);
        let ok = cond.is_none()
            && k.locals[*local].var.is_none()
            && assigned[*local] == 1
            && pure(value)
            && used.iter().all(|l| known.contains_key(l));
        if ok {
            known.insert(*local, used.iter().any(|l| known[l]));
            hoisted.push(s.clone());
        } else {
            kept.push(s.clone());
        }
    }
    // Only what the remaining code reads needs to reach the GPU.
    let mut used = Vec::new();
    let mut gathered = HashSet::new();
    for Stmt::Assign { value, cond, .. } in kept.iter().chain(&k.vector) {
        for e in std::iter::once(value).chain(cond) {
            e.read_locals(&mut used);
            tables(e, &mut gathered);
        }
    }
    let used: HashSet<LocalId> = used.into_iter().collect();
    let results: Vec<LocalId> = hoisted
        .iter()
        .map(|Stmt::Assign { local, .. }| *local)
        .filter(|l| used.contains(l))
        .collect();
    if hoisted.is_empty() {
        return None;
    }

    let mut kernel = k.clone();
    kernel.scalar = kept;
    // Variables read only by hoisted statements are no longer loaded.
    let mut hoisted_reads = Vec::new();
    for Stmt::Assign { value, .. } in &hoisted {
        value.read_locals(&mut hoisted_reads);
    }
    // Index variables (`_postsynaptic_idx`) and tables are read without their locals.
    let indices: HashSet<VarId> = k
        .vars
        .iter()
        .filter_map(|var| match var.index {
            Index::Var(i) => Some(i),
            _ => None,
        })
        .collect();
    for (v, var) in kernel.vars.iter_mut().enumerate() {
        if var.read
            && !var.written
            && hoisted_reads.contains(&var.local)
            && !used.contains(&var.local)
            && !gathered.contains(&v)
            && !indices.contains(&v)
        {
            var.read = false;
        }
    }
    let mut slots = HashMap::new();
    let first = kernel.vars.len();
    for &l in &results {
        let id = kernel.vars.len();
        kernel.vars.push(Variable {
            name: format!("_hoisted{}", k.locals[l].name),
            ty: k.locals[l].ty,
            kind: VarKind::Hoisted {
                slot: {
                    let n = slots.entry((k.locals[l].ty, known[&l])).or_insert(0u32);
                    *n += 1;
                    *n - 1
                },
                per_step: known[&l],
            },
            index: Index::Zero,
            read: true,
            written: false,
            local: l,
        });
        kernel.locals[l].var = Some(id);
        kernel.locals[l].scalar = true;
    }

    let mut eval = k.clone();
    eval.name = format!("{}_hoisted_scalars", k.name);
    eval.vector.clear();
    eval.scalar = hoisted;
    eval.rng_sites = 0;
    for &l in &results {
        let out_local = eval.locals.len();
        let out_var = eval.vars.len();
        eval.locals.push(Local {
            name: format!("_out{}", k.locals[l].name),
            ty: k.locals[l].ty,
            var: Some(out_var),
            scalar: true,
        });
        eval.vars.push(Variable {
            name: format!("_out{}", k.locals[l].name),
            ty: k.locals[l].ty,
            kind: VarKind::Array,
            index: Index::Zero,
            read: false,
            written: true,
            local: out_local,
        });
        eval.scalar.push(Stmt::Assign {
            local: out_local,
            value: Expr {
                ty: k.locals[l].ty,
                kind: ExprKind::Local(l),
            },
            cond: None,
        });
    }
    // The evaluation reads the original variables its statements use (constants and
    // shared arrays, by construction) and writes none of them.
    let mut inputs = Vec::new();
    for Stmt::Assign { value, .. } in &eval.scalar {
        value.read_locals(&mut inputs);
    }
    for var in eval.vars.iter_mut().take(k.vars.len()) {
        var.written = false;
        var.read = inputs.contains(&var.local);
    }
    Some(Hoisted {
        kernel,
        first,
        eval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{KernelSpec, Type, Value, VariableSpec, lower};

    fn cuba_like() -> Kernel {
        let mut dt = VariableSpec::array("dt", Type::F64);
        dt.index = "0".into();
        let mut t = VariableSpec::array("t", Type::F64);
        t.index = "0".into();
        let mut tau = VariableSpec::array("taum", Type::F64);
        tau.constant = Some(Value::F64(0.02));
        let mut spec = KernelSpec::vector(
            "stateupdate",
            vec![VariableSpec::array("v", Type::F64), dt, t, tau],
            "v = v*_lio_1 + _lio_2 + _lio_3",
        );
        spec.scalar_code = "_lio_1 := exp(-dt/taum)\n_lio_2 := _lio_1*2\n_lio_3 := t*rand()".into();
        lower(&spec).unwrap()
    }

    /// `v` is invariant for the run, everything else varies.
    fn only(v: VarId) -> impl Fn(VarId) -> Invariance {
        move |x| {
            if x == v {
                Invariance::Run
            } else {
                Invariance::Varying
            }
        }
    }

    /// A drive `sin(t)` (t written by the clock) moves to a per-step table, and so does
    /// what derives from it; statements that draw random numbers stay.
    #[test]
    fn clock_dependent_scalars_move_per_step() {
        let mut dt = VariableSpec::array("dt", Type::F64);
        dt.index = "0".into();
        let mut t = VariableSpec::array("t", Type::F64);
        t.index = "0".into();
        let mut spec = KernelSpec::vector(
            "stateupdate",
            vec![VariableSpec::array("v", Type::F64), dt, t],
            "v = v*_lio_1 + _lio_3 + _lio_4",
        );
        spec.scalar_code =
            "_lio_1 := exp(-dt)\n_lio_2 := sin(t)\n_lio_3 := _lio_1*_lio_2\n_lio_4 := t*rand()"
                .into();
        let k = lower(&spec).unwrap();
        let dt = k.vars.iter().position(|v| v.name == "dt").unwrap();
        let t = k.vars.iter().position(|v| v.name == "t").unwrap();
        let h = hoist_scalars(&k, |v| match v {
            _ if v == dt => Invariance::Run,
            _ if v == t => Invariance::Step,
            _ => Invariance::Varying,
        })
        .unwrap();
        let kinds: Vec<(&str, &VarKind)> = h.kernel.vars[h.first..]
            .iter()
            .map(|v| (v.name.as_str(), &v.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    "_hoisted_lio_1",
                    &VarKind::Hoisted {
                        slot: 0,
                        per_step: false
                    }
                ),
                (
                    "_hoisted_lio_3",
                    &VarKind::Hoisted {
                        slot: 0,
                        per_step: true
                    }
                ),
            ]
        );
        // Only the random draw is left, and it still reads t.
        assert_eq!(h.kernel.scalar.len(), 1);
        assert!(h.kernel.vars[t].read);
    }

    #[test]
    fn invariant_scalars_move_to_the_host() {
        let k = cuba_like();
        let dt = k.vars.iter().position(|v| v.name == "dt").unwrap();
        let h = hoist_scalars(&k, only(dt)).unwrap();
        // `_lio_3` reads `t` (written by the clock) and draws: it stays.
        assert_eq!(h.kernel.scalar.len(), 1);
        let names: Vec<&str> = h.kernel.vars[h.first..]
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["_hoisted_lio_1", "_hoisted_lio_2"]);
        // dt is no longer read by the GPU kernel.
        assert!(!h.kernel.vars[dt].read);
        assert_eq!(h.eval.scalar.len(), 4);
        assert_eq!(h.eval.vars.len(), k.vars.len() + 2);
        // With dt not invariant nothing moves.
        assert!(hoist_scalars(&k, |_| Invariance::Varying).is_none());
    }

    /// A pathway's `x_post += dt*100*Hz`: the scalar moves, and the index variable that
    /// only the indexed variable reads stays loaded.
    #[test]
    fn index_variables_stay_loaded() {
        let mut dt = VariableSpec::array("dt", Type::F64);
        dt.index = "0".into();
        let mut x = VariableSpec::array("x", Type::F64);
        x.index = "_postsynaptic_idx".into();
        let mut spec = KernelSpec::vector(
            "synapses",
            vec![x, VariableSpec::array("_postsynaptic_idx", Type::I32), dt],
            "x += _lio_1",
        );
        spec.scalar_code = "_lio_1 := dt*100".into();
        let k = lower(&spec).unwrap();
        let dt = k.vars.iter().position(|v| v.name == "dt").unwrap();
        let post = k.var("_postsynaptic_idx").unwrap().clone();
        let h = hoist_scalars(&k, only(dt)).unwrap();
        assert!(h.kernel.scalar.is_empty());
        assert!(!h.kernel.vars[dt].read);
        assert_eq!(h.kernel.var("_postsynaptic_idx"), Some(&post));
    }

    #[test]
    fn hoisted_values_match_the_interpreter() {
        let k = cuba_like();
        let dt = k.vars.iter().position(|v| v.name == "dt").unwrap();
        let h = hoist_scalars(&k, only(dt)).unwrap();
        let prog = crate::cpu::Program::new(&h.eval).unwrap();
        let mut v = vec![0.0f64; 1];
        let mut dtv = vec![1e-4f64];
        let mut tv = vec![0.0f64];
        let (mut o1, mut o2) = (vec![0.0f64], vec![0.0f64]);
        use crate::arrays::ArrayMut;
        let mut arrays = vec![
            ArrayMut::F64(&mut v),
            ArrayMut::F64(&mut dtv),
            ArrayMut::F64(&mut tv),
            ArrayMut::None,
            ArrayMut::F64(&mut o1),
            ArrayMut::F64(&mut o2),
        ];
        prog.run(
            &mut arrays,
            &crate::arrays::RunArgs {
                n: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let want = (-1e-4f64 / 0.02).exp();
        assert_eq!(o1[0], want);
        assert_eq!(o2[0], want * 2.0);
    }
}
