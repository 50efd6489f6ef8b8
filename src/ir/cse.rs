//! Repeated costly subexpressions of a kernel's vector code computed once (for the GPU:
//! Brian2's integrators repeat `exp(...)` of the same argument many times, e.g. six times
//! per gating variable in exponential Euler, and a shader compiler cannot merge calls to
//! branchy library code such as `shaders/f64_math.wgsl`).
//!
//! A function call (other than random numbers) or power that occurs twice or more, with no
//! statement in between assigning a local it reads, is assigned once to a new local in front
//! of its first use. The value is the same double as before: only where it is computed
//! moves, and possibly out of a conditional statement, which a pure function allows.

use super::{BinaryOp, Expr, ExprKind, Func, Kernel, Local, LocalId, Stmt};

/// Calls and powers worth a local of their own.
fn costly(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Call(f, _) => !matches!(
            f,
            Func::Rand { .. }
                | Func::Randn { .. }
                | Func::Poisson { .. }
                | Func::Binomial { .. }
                | Func::User(_)
        ),
        ExprKind::Binary(BinaryOp::Pow, _, _) => true,
        _ => false,
    }
}

/// Costly subexpressions of `e`, innermost first.
fn collect<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match &e.kind {
        ExprKind::Unary(_, a) | ExprKind::Cast(a) | ExprKind::Gather(_, a) => collect(a, out),
        ExprKind::Binary(_, a, b) => {
            collect(a, out);
            collect(b, out);
        }
        ExprKind::Call(_, args) => args.iter().for_each(|a| collect(a, out)),
        ExprKind::Lit(_) | ExprKind::Local(_) | ExprKind::ElemIndex => {}
    }
    if costly(e) {
        out.push(e);
    }
}

fn reads(e: &Expr, out: &mut Vec<LocalId>) {
    match &e.kind {
        ExprKind::Local(l) => out.push(*l),
        ExprKind::Unary(_, a) | ExprKind::Cast(a) | ExprKind::Gather(_, a) => reads(a, out),
        ExprKind::Binary(_, a, b) => {
            reads(a, out);
            reads(b, out);
        }
        ExprKind::Call(_, args) => args.iter().for_each(|a| reads(a, out)),
        ExprKind::Lit(_) | ExprKind::ElemIndex => {}
    }
}

fn replace(e: &mut Expr, what: &Expr, with: LocalId) {
    if e == what {
        e.kind = ExprKind::Local(with);
        return;
    }
    match &mut e.kind {
        ExprKind::Unary(_, a) | ExprKind::Cast(a) | ExprKind::Gather(_, a) => {
            replace(a, what, with)
        }
        ExprKind::Binary(_, a, b) => {
            replace(a, what, with);
            replace(b, what, with);
        }
        ExprKind::Call(_, args) => args.iter_mut().for_each(|a| replace(a, what, with)),
        ExprKind::Lit(_) | ExprKind::Local(_) | ExprKind::ElemIndex => {}
    }
}

fn exprs(s: &Stmt) -> impl Iterator<Item = &Expr> {
    let Stmt::Assign { value, cond, .. } = s;
    cond.iter().chain(std::iter::once(value))
}

/// One shared expression: (its first statement, its last, the expression).
fn find_shared(vector: &[Stmt]) -> Option<(usize, usize, Expr)> {
    let mut seen: Vec<&Expr> = Vec::new();
    for (i, s) in vector.iter().enumerate() {
        let mut found = Vec::new();
        exprs(s).for_each(|e| collect(e, &mut found));
        for e in found {
            if seen.contains(&e) {
                continue;
            }
            seen.push(e);
            let mut read = Vec::new();
            reads(e, &mut read);
            // Occurrences from statement i on, until a statement assigns what e reads.
            let mut count = 0;
            let mut last = i;
            for (j, t) in vector.iter().enumerate().skip(i) {
                let mut here = Vec::new();
                exprs(t).for_each(|x| collect(x, &mut here));
                let n = here.iter().filter(|&&x| x == e).count();
                if n > 0 {
                    count += n;
                    last = j;
                }
                let Stmt::Assign { local, .. } = t;
                if read.contains(local) {
                    break;
                }
            }
            if count >= 2 {
                return Some((i, last, e.clone()));
            }
        }
    }
    None
}

/// `k` with each repeated costly subexpression of its vector code computed once.
pub fn share_subexpressions(k: &Kernel) -> Kernel {
    let mut k = k.clone();
    // Each round shares one expression; enough for any real kernel, bounded regardless.
    for _ in 0..256 {
        let Some((first, last, e)) = find_shared(&k.vector) else {
            break;
        };
        let t = k.locals.len();
        k.locals.push(Local {
            name: format!("_shared{t}"),
            ty: e.ty,
            var: None,
            scalar: false,
        });
        for s in &mut k.vector[first..=last] {
            let Stmt::Assign { value, cond, .. } = s;
            replace(value, &e, t);
            if let Some(c) = cond {
                replace(c, &e, t);
            }
        }
        k.vector.insert(
            first,
            Stmt::Assign {
                local: t,
                value: e,
                cond: None,
            },
        );
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{KernelSpec, Type, VariableSpec, lower, validate};

    fn kernel(code: &str) -> Kernel {
        let vars = ["v", "m", "a", "b"]
            .iter()
            .map(|n| VariableSpec::array(n, Type::F64))
            .collect();
        lower(&KernelSpec::vector("stateupdate", vars, code)).unwrap()
    }

    fn calls(k: &Kernel, f: Func) -> usize {
        let mut n = 0;
        for s in &k.vector {
            let mut found = Vec::new();
            exprs(s).for_each(|e| collect(e, &mut found));
            n += found
                .iter()
                .filter(|e| matches!(e.kind, ExprKind::Call(g, _) if g == f))
                .count();
        }
        n
    }

    #[test]
    fn repeated_calls_are_computed_once() {
        let k = kernel("a = exp(2*v) + exp(2*v)*m\nb = exp(2*v)/(1 + exp(3*v))\nm = exp(3*v)");
        let s = share_subexpressions(&k);
        validate(&s).unwrap();
        assert_eq!(calls(&s, Func::Exp), 2, "{:#?}", s.vector);
    }

    /// A call after an assignment to what it reads is a different value.
    #[test]
    fn assignments_end_sharing() {
        let k = kernel("a = exp(v)\nv = v + 1\nb = exp(v)");
        let s = share_subexpressions(&k);
        assert_eq!(calls(&s, Func::Exp), 2);
        // Nested: the inner call is shared first, then the outer one.
        let k = kernel("a = exp(exp(v))\nb = exp(exp(v)) + exp(v)");
        let s = share_subexpressions(&k);
        assert_eq!(calls(&s, Func::Exp), 2, "{:#?}", s.vector);
    }

    /// Random numbers are draws, not values: never shared.
    #[test]
    fn random_calls_stay() {
        let k = kernel("a = rand() + rand()");
        let s = share_subexpressions(&k);
        assert_eq!(s.vector, k.vector);
    }
}
