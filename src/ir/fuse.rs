//! Two elementwise kernels over the same elements as one kernel (the GPU runs a group's
//! state update and threshold in one dispatch: one pass over the group's memory instead
//! of two, one dispatch fewer per step).
//!
//! Running `a` then `b` for each element in turn equals running `a` over all elements and
//! then `b` when no element's work reads what another element's work writes: every
//! array written by either kernel and touched by both is indexed by the element itself
//! in both, `a` writes only per-element values, and `b`'s scalar statements (which move
//! in front of `a`'s vector statements) read nothing `a` writes.

use super::{Expr, ExprKind, Index, Kernel, LocalId, Stmt, VarId, VarKind};

/// `a` and `b` as one kernel; `b_vars[v]` is the fused variable of `b`'s variable `v`
/// (`a`'s variables keep their ids).
#[derive(Debug, Clone)]
pub struct Fused {
    pub kernel: Kernel,
    pub b_vars: Vec<VarId>,
}

/// Fuse `b` after `a`, where `same(va, vb)` says that `a`'s variable `va` and `b`'s
/// variable `vb` are the same array. `None` where the order of the two passes could
/// matter (see the module's documentation), or `b` draws random numbers (its streams are
/// keyed by its own kernel).
pub fn fuse_elementwise(
    a: &Kernel,
    b: &Kernel,
    same: impl Fn(VarId, VarId) -> bool,
) -> Option<Fused> {
    if b.rng_sites > 0 || a.float != b.float {
        return None;
    }
    let array = |k: &Kernel, v: VarId| matches!(k.vars[v].kind, VarKind::Array);
    // `a` writes only the element's own values.
    if a.vars
        .iter()
        .any(|v| v.written && (v.kind != VarKind::Array || v.index != Index::Elem))
    {
        return None;
    }
    let mut b_vars = Vec::with_capacity(b.vars.len());
    let mut vars = a.vars.clone();
    for (vb, var) in b.vars.iter().enumerate() {
        let shared: Vec<VarId> = (0..a.vars.len())
            .filter(|&va| array(a, va) && array(b, vb) && same(va, vb))
            .collect();
        let conflict = shared.iter().any(|&va| {
            let writes = a.vars[va].written || var.written;
            writes && (a.vars[va].index != Index::Elem || var.index != Index::Elem)
        });
        if conflict {
            return None;
        }
        match shared
            .iter()
            .find(|&&va| a.vars[va].index == var.index && a.vars[va].ty == var.ty)
        {
            Some(&va) if var.index == Index::Elem || !var.written => {
                vars[va].read |= var.read;
                vars[va].written |= var.written;
                b_vars.push(va);
            }
            _ => {
                b_vars.push(vars.len());
                vars.push(var.clone()); // local and index remapped below
            }
        }
    }
    // Locals: b's locals that mirror a merged variable become a's local.
    let mut locals = a.locals.clone();
    let mut b_locals: Vec<LocalId> = Vec::with_capacity(b.locals.len());
    for l in &b.locals {
        match l.var.map(|vb| b_vars[vb]) {
            Some(v) if v < a.vars.len() => b_locals.push(a.vars[v].local),
            mapped => {
                b_locals.push(locals.len());
                let mut l = l.clone();
                l.var = mapped;
                locals.push(l);
            }
        }
    }
    for (vb, var) in b.vars.iter().enumerate() {
        let v = b_vars[vb];
        if v >= a.vars.len() {
            vars[v].local = b_locals[var.local];
            if let Index::Var(iv) = var.index {
                vars[v].index = Index::Var(b_vars[iv]);
            }
        }
    }
    // b's scalar statements run before a's vector statements: they must not read what a
    // writes.
    let written_by_a: Vec<LocalId> = a
        .vars
        .iter()
        .filter(|v| v.written)
        .map(|v| v.local)
        .chain(a.vector.iter().map(|Stmt::Assign { local, .. }| *local))
        .collect();
    let remap = |s: &Stmt| -> Stmt {
        let Stmt::Assign { local, value, cond } = s;
        Stmt::Assign {
            local: b_locals[*local],
            value: remap_expr(value, &b_locals, &b_vars),
            cond: cond.as_ref().map(|c| remap_expr(c, &b_locals, &b_vars)),
        }
    };
    let b_scalar: Vec<Stmt> = b.scalar.iter().map(remap).collect();
    let touches_a = b_scalar.iter().any(|Stmt::Assign { local, value, cond }| {
        written_by_a.contains(local)
            || reads_any(value, &written_by_a)
            || cond.as_ref().is_some_and(|c| reads_any(c, &written_by_a))
    });
    if touches_a {
        return None;
    }
    let mut user_functions = a.user_functions.clone();
    for u in &b.user_functions {
        match user_functions.iter().find(|x| x.name == u.name) {
            Some(x) if x != u => return None,
            Some(_) => {}
            None => user_functions.push(u.clone()),
        }
    }
    let kernel = Kernel {
        name: format!("{} + {}", a.name, b.name),
        template: format!("{} + {}", a.template, b.template),
        float: a.float,
        vars,
        locals,
        scalar: a.scalar.iter().cloned().chain(b_scalar).collect(),
        vector: a
            .vector
            .iter()
            .cloned()
            .chain(b.vector.iter().map(remap))
            .collect(),
        user_functions,
        rng_sites: a.rng_sites,
    };
    Some(Fused { kernel, b_vars })
}

fn remap_expr(e: &Expr, locals: &[LocalId], vars: &[VarId]) -> Expr {
    let r = |x: &Expr| Box::new(remap_expr(x, locals, vars));
    let kind = match &e.kind {
        ExprKind::Local(l) => ExprKind::Local(locals[*l]),
        ExprKind::Lit(v) => ExprKind::Lit(*v),
        ExprKind::ElemIndex => ExprKind::ElemIndex,
        ExprKind::Unary(op, x) => ExprKind::Unary(*op, r(x)),
        ExprKind::Binary(op, x, y) => ExprKind::Binary(*op, r(x), r(y)),
        ExprKind::Call(f, args) => ExprKind::Call(
            *f,
            args.iter().map(|x| remap_expr(x, locals, vars)).collect(),
        ),
        ExprKind::Cast(x) => ExprKind::Cast(r(x)),
        ExprKind::Gather(v, x) => ExprKind::Gather(vars[*v], r(x)),
    };
    Expr { ty: e.ty, kind }
}

fn reads_any(e: &Expr, locals: &[LocalId]) -> bool {
    match &e.kind {
        ExprKind::Local(l) => locals.contains(l),
        ExprKind::Unary(_, x) | ExprKind::Cast(x) | ExprKind::Gather(_, x) => reads_any(x, locals),
        ExprKind::Binary(_, x, y) => reads_any(x, locals) || reads_any(y, locals),
        ExprKind::Call(_, args) => args.iter().any(|x| reads_any(x, locals)),
        ExprKind::Lit(_) | ExprKind::ElemIndex => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{KernelSpec, Type, VariableSpec, lower, validate};

    fn kernel(template: &str, vars: &[(&str, Type)], vector: &str) -> Kernel {
        let variables = vars
            .iter()
            .map(|(n, t)| VariableSpec::array(n, *t))
            .collect();
        lower(&KernelSpec::vector(template, variables, vector)).unwrap()
    }

    /// Both kernels' `v` (the same array): merged; the threshold reads the updated value.
    #[test]
    fn state_update_then_threshold_share_the_written_variable() {
        let su = kernel(
            "stateupdate",
            &[("v", Type::F64), ("I", Type::F64)],
            "v = v + I",
        );
        let th = kernel(
            "threshold",
            &[("v", Type::F64), ("_cond", Type::Bool)],
            "_cond = v > 1.0",
        );
        let same = |va: usize, vb: usize| su.vars[va].name == th.vars[vb].name;
        let f = fuse_elementwise(&su, &th, same).expect("fusable");
        validate(&f.kernel).unwrap();
        let v = su.vars.iter().position(|x| x.name == "v").unwrap();
        assert_eq!(
            f.b_vars[th.vars.iter().position(|x| x.name == "v").unwrap()],
            v
        );
        assert!(f.kernel.vars[v].read && f.kernel.vars[v].written);
        assert_eq!(f.kernel.vars.len(), 3, "v, I, _cond");
        // The threshold's statement reads the state update's local of v.
        let Stmt::Assign { value, .. } = f.kernel.vector.last().unwrap();
        assert!(reads_any(value, &[f.kernel.vars[v].local]));
    }

    /// A kernel that draws random numbers, or a scalar statement reading what the first
    /// kernel writes, is not fused.
    #[test]
    fn refuses_what_could_change_results() {
        let su = kernel("stateupdate", &[("v", Type::F64)], "v = v * 0.5");
        let rand = kernel(
            "threshold",
            &[("v", Type::F64), ("_cond", Type::Bool)],
            "_cond = v > rand()",
        );
        assert!(fuse_elementwise(&su, &rand, |_, _| true).is_none());
        let variables = vec![
            VariableSpec {
                index: "0".into(),
                ..VariableSpec::array("v", Type::F64)
            },
            VariableSpec::array("_cond", Type::Bool),
        ];
        let th = lower(&KernelSpec::vector(
            "threshold",
            variables,
            "_cond = v > 1.0",
        ))
        .unwrap();
        let same = |va: usize, vb: usize| su.vars[va].name == th.vars[vb].name;
        assert!(
            fuse_elementwise(&su, &th, same).is_none(),
            "v written per element, read as a scalar"
        );
    }
}
