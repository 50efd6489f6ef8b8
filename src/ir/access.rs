//! How a kernel over a list of elements (a pathway's due synapses) may run in parallel.
//! Brian2's semantics are those of a serial loop over the list. Several elements may
//! write the same element of a neuron variable (`v_post += w` with many synapses onto
//! one neuron): a pure accumulation is order-free up to rounding, so the GPU adds
//! atomically; anything else (`v_post = v_post * 0.5`, a read of the written value) needs
//! the serial order. Writes through the element's own index never conflict.

use super::{BinaryOp, Expr, ExprKind, Index, Kernel, LocalId, Stmt, Type, VarId, VarKind};

#[derive(Debug, Clone, PartialEq)]
pub enum Parallel {
    /// No two elements write the same place.
    Free,
    /// Only these variables are written by several elements, each by pure accumulation
    /// (`x = x + e` / `x = x - e`, `x` read nowhere else).
    Atomic(Vec<VarId>),
    /// The serial loop's order matters.
    Serial,
}

fn mentions(e: &Expr, l: LocalId) -> bool {
    match &e.kind {
        ExprKind::Local(x) => *x == l,
        ExprKind::Unary(_, a) | ExprKind::Cast(a) | ExprKind::Gather(_, a) => mentions(a, l),
        ExprKind::Binary(_, a, b) => mentions(a, l) || mentions(b, l),
        ExprKind::Call(_, args) => args.iter().any(|a| mentions(a, l)),
        ExprKind::Lit(_) | ExprKind::ElemIndex => false,
    }
}

/// The increment if `value` is `local + e` or `local - e` (with `e` free of `local`).
pub fn accumulation(value: &Expr, local: LocalId) -> Option<(BinaryOp, &Expr)> {
    match &value.kind {
        ExprKind::Binary(op @ (BinaryOp::Add | BinaryOp::Sub), a, b)
            if matches!(a.kind, ExprKind::Local(x) if x == local) && !mentions(b, local) =>
        {
            Some((*op, b))
        }
        _ => None,
    }
}

fn pure_accumulation(k: &Kernel, v: VarId) -> bool {
    let var = &k.vars[v];
    if !matches!(var.ty, Type::F32 | Type::F64 | Type::I32) {
        return false;
    }
    let l = var.local;
    let scalar_touch = k.scalar.iter().any(|Stmt::Assign { local, value, cond }| {
        *local == l || mentions(value, l) || cond.as_ref().is_some_and(|c| mentions(c, l))
    });
    if scalar_touch {
        return false;
    }
    k.vector.iter().all(|Stmt::Assign { local, value, cond }| {
        if cond.as_ref().is_some_and(|c| mentions(c, l)) {
            return false;
        }
        if *local == l {
            accumulation(value, l).is_some()
        } else {
            !mentions(value, l)
        }
    })
}

/// Classify a list kernel's writes. `alias[v]`: the first variable on the same array as
/// `v` (empty: all distinct). An accumulated array that is also reached through another
/// variable (`A_pre += 1` beside a read of `A_post`) needs the serial order.
pub fn parallel(k: &Kernel, alias: &[usize]) -> Parallel {
    let shared: Vec<VarId> = (0..k.vars.len())
        .filter(|&v| {
            let var = &k.vars[v];
            var.written
                && matches!(var.kind, VarKind::Array)
                && matches!(var.index, Index::Var(_) | Index::Zero)
        })
        .collect();
    let rep = |v: usize| alias.get(v).copied().unwrap_or(v);
    let aliased = |v: usize| {
        (0..k.vars.len())
            .any(|u| u != v && rep(u) == rep(v) && (k.vars[u].read || k.vars[u].written))
    };
    if shared.is_empty() {
        Parallel::Free
    } else if shared
        .iter()
        .all(|&v| pure_accumulation(k, v) && !aliased(v))
    {
        Parallel::Atomic(shared)
    } else {
        Parallel::Serial
    }
}

/// For a kernel that needs the serial order ([`Parallel::Serial`]): the index variable
/// (`_postsynaptic_idx`) through which it writes every array that several elements share,
/// where elements with different values of it touch disjoint data. Elements then only need
/// the serial order among those with the same index value (one target's synapses), and
/// different targets may run in parallel. `None` where some shared write goes through
/// another index (a pre-side variable), a shared scalar, or an array also reached through
/// a different index (pre and post on the same group's variable).
pub fn serial_index(k: &Kernel, alias: &[usize]) -> Option<VarId> {
    let rep = |v: usize| alias.get(v).copied().unwrap_or(v);
    let mut index = None;
    for var in &k.vars {
        if !(var.written && matches!(var.kind, VarKind::Array)) {
            continue;
        }
        match var.index {
            Index::Elem => continue,
            Index::Var(iv) if index.is_none() || index == Some(iv) => index = Some(iv),
            _ => return None,
        }
    }
    let iv = index?;
    if k.vars[iv].written {
        return None;
    }
    // Every variable on the array of a shared write must address it through `iv`.
    for (v, var) in k.vars.iter().enumerate() {
        if !(var.written && var.index == Index::Var(iv)) {
            continue;
        }
        let clash = (0..k.vars.len()).any(|u| {
            rep(u) == rep(v)
                && (k.vars[u].read || k.vars[u].written)
                && k.vars[u].index != Index::Var(iv)
        });
        if clash {
            return None;
        }
    }
    Some(iv)
}

/// A serial-order kernel whose shared writes go through two index variables
/// (`c_pre = c_pre*0.5 + v_post` beside `v_post = v_post*0.9 + w`, or a recurrent
/// `v_post = v_post + v_pre`): see [`conflict_indices`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConflictIndices {
    /// The two index variables (`_presynaptic_idx`, `_postsynaptic_idx`).
    pub indices: [VarId; 2],
    /// Some written array is reached through both, so their values name the same
    /// elements (one neuron group on both sides); otherwise they name different ones.
    pub same_elements: bool,
}

/// For a kernel that needs the serial order ([`Parallel::Serial`]) and writes shared arrays
/// through two index variables: those variables. Two elements can then only interact
/// when they share a value of one of them, so the elements split into independent sets
/// (the connected components of "shares a pre or a post value"), and only the order
/// within each set matters. `None` where a shared scalar is written (every element
/// interacts), a written array is reached both per element and through an index, or the
/// writes go through one index ([`serial_index`]) or more than two.
pub fn conflict_indices(k: &Kernel, alias: &[usize]) -> Option<ConflictIndices> {
    let rep = |v: usize| alias.get(v).copied().unwrap_or(v);
    let written: Vec<usize> = (0..k.vars.len())
        .filter(|&v| k.vars[v].written && matches!(k.vars[v].kind, VarKind::Array))
        .map(rep)
        .collect();
    let mut indices: Vec<VarId> = Vec::new();
    // Per written array: the index variables it is reached through, and whether it is
    // also reached per element.
    let mut reached: Vec<(usize, Vec<VarId>, bool)> = Vec::new();
    for (u, var) in k.vars.iter().enumerate() {
        if !(var.read || var.written) || !written.contains(&rep(u)) {
            continue;
        }
        let at = match reached.iter().position(|r| r.0 == rep(u)) {
            Some(at) => at,
            None => {
                reached.push((rep(u), Vec::new(), false));
                reached.len() - 1
            }
        };
        match var.index {
            Index::Elem => reached[at].2 = true,
            Index::Var(iv) => {
                if !reached[at].1.contains(&iv) {
                    reached[at].1.push(iv);
                }
                if !indices.contains(&iv) {
                    indices.push(iv);
                }
            }
            Index::Zero | Index::Pos => return None,
        }
    }
    if indices.len() != 2 || indices.iter().any(|&iv| k.vars[iv].written) {
        return None;
    }
    if reached.iter().any(|r| r.2 && !r.1.is_empty()) {
        return None;
    }
    Some(ConflictIndices {
        indices: [indices[0], indices[1]],
        same_elements: reached.iter().any(|r| r.1.len() > 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{KernelSpec, VariableSpec, lower};

    fn kernel(code: &str) -> Kernel {
        let post = |name: &str| VariableSpec {
            index: "_postsynaptic_idx".into(),
            ..VariableSpec::array(name, Type::F64)
        };
        let vars = vec![
            VariableSpec::array("_postsynaptic_idx", Type::I32),
            VariableSpec::array("w", Type::F64),
            post("v_post"),
            post("x_post"),
        ];
        lower(&KernelSpec::vector("synapses", vars, code)).unwrap()
    }

    #[test]
    fn pure_accumulations_are_atomic() {
        let k = kernel("v_post += w\nx_post -= 2*w\nw = w*0.5");
        let Parallel::Atomic(vars) = parallel(&k, &[]) else {
            panic!("{:?}", parallel(&k, &[]))
        };
        assert_eq!(vars.len(), 2);
    }

    #[test]
    fn order_dependent_writes_are_serial() {
        assert_eq!(
            parallel(&kernel("v_post = v_post*0.5 + w"), &[]),
            Parallel::Serial
        );
        assert_eq!(
            parallel(&kernel("v_post += w\nw = v_post"), &[]),
            Parallel::Serial
        );
        assert_eq!(parallel(&kernel("v_post += v_post"), &[]), Parallel::Serial);
        // x_post on the same array as v_post: the accumulation is read elsewhere.
        let k = kernel("v_post += w\nw = x_post");
        assert_eq!(parallel(&k, &[0, 1, 2, 2]), Parallel::Serial);
        assert!(matches!(parallel(&k, &[]), Parallel::Atomic(_)));
    }

    #[test]
    fn serial_writes_through_one_index_run_per_target() {
        let post = |k: &Kernel| k.vars.iter().position(|v| v.name == "_postsynaptic_idx");
        let k = kernel("v_post = v_post*0.5 + w\nx_post = v_post");
        assert_eq!(parallel(&k, &[]), Parallel::Serial);
        assert_eq!(serial_index(&k, &[]), post(&k));
        // w (per synapse) on the same array as v_post: the array is reached through two
        // indices.
        let k2 = kernel("v_post = v_post*0.5 + w");
        assert_eq!(serial_index(&k2, &[0, 1, 1, 3]), None);
        // Pure accumulations are not serial at all.
        assert!(matches!(
            parallel(&kernel("v_post += w"), &[]),
            Parallel::Atomic(_)
        ));
    }

    #[test]
    fn serial_writes_through_two_indices_split_into_components() {
        let vars = vec![
            VariableSpec::array("_presynaptic_idx", Type::I32),
            VariableSpec::array("_postsynaptic_idx", Type::I32),
            VariableSpec::array("w", Type::F64),
            VariableSpec {
                index: "_postsynaptic_idx".into(),
                ..VariableSpec::array("v_post", Type::F64)
            },
            VariableSpec {
                index: "_presynaptic_idx".into(),
                ..VariableSpec::array("c_pre", Type::F64)
            },
            VariableSpec {
                index: "_presynaptic_idx".into(),
                ..VariableSpec::array("v_pre", Type::F64)
            },
        ];
        let k = |code: &str| lower(&KernelSpec::vector("synapses", vars.clone(), code)).unwrap();
        let pos = |k: &Kernel, name: &str| k.vars.iter().position(|v| v.name == name).unwrap();
        let two = k("v_post = v_post*0.9 + w\nc_pre = c_pre*0.5 + v_post");
        assert_eq!(parallel(&two, &[]), Parallel::Serial);
        assert_eq!(serial_index(&two, &[]), None);
        let got = conflict_indices(&two, &[]).unwrap();
        let mut ivs = got.indices;
        ivs.sort();
        let mut want = [
            pos(&two, "_presynaptic_idx"),
            pos(&two, "_postsynaptic_idx"),
        ];
        want.sort();
        assert_eq!(ivs, want);
        assert!(!got.same_elements);
        // v_pre and v_post on one array (a recurrent pathway): the indices name the same
        // neurons.
        let rec = k("v_post = v_post*0.5 + v_pre");
        let alias: Vec<usize> = (0..rec.vars.len())
            .map(|v| {
                if v == pos(&rec, "v_pre") {
                    pos(&rec, "v_post")
                } else {
                    v
                }
            })
            .collect();
        assert_eq!(serial_index(&rec, &alias), None);
        assert!(conflict_indices(&rec, &alias).unwrap().same_elements);
        // Without the alias, v_pre is only read: one index, by target.
        assert_eq!(conflict_indices(&rec, &[]), None);
        assert!(serial_index(&rec, &[]).is_some());
    }

    #[test]
    fn synaptic_writes_are_free() {
        assert_eq!(parallel(&kernel("w = w + v_post"), &[]), Parallel::Free);
    }
}
