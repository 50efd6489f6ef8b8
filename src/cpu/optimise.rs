//! Passes over a compiled body: every instruction is a pass over a block of elements, so
//! each one removed saves a stream through memory. The body is straight-line code and every
//! per-element register is written before it is read within a block (loads come first), so
//! plain forward/backward scans suffice.

use super::program::{Instr, Place, Program, Reg};

/// Visit every register an instruction reads as an operand, mutably. A conditional
/// copy's read of its own destination is not an operand: see [`reads`].
fn operands_mut(i: &mut Instr, mut f: impl FnMut(&mut Reg)) {
    let at = |p: &mut Place, f: &mut dyn FnMut(&mut Reg)| {
        if let Place::At(r) = p {
            f(r)
        }
    };
    match i {
        Instr::Const { .. } | Instr::Index { .. } => {}
        Instr::Load { at: p, .. } => at(p, &mut f),
        Instr::Store { src, at: p, .. } => {
            f(src);
            at(p, &mut f)
        }
        Instr::StoreIf {
            src, cond, at: p, ..
        } => {
            f(src);
            f(cond);
            at(p, &mut f)
        }
        Instr::Accumulate {
            src, index, cond, ..
        } => {
            f(src);
            f(index);
            if let Some(c) = cond {
                f(c)
            }
        }
        Instr::Copy { src, .. } => f(src),
        Instr::CondCopy { src, cond, .. } => {
            f(src);
            f(cond)
        }
        Instr::Unary { a, .. } | Instr::Cast { a, .. } => f(a),
        Instr::Binary { a, b, .. } => {
            f(a);
            f(b)
        }
        Instr::Call { args, .. } => args.iter_mut().for_each(f),
    }
}

/// Registers an instruction reads (a conditional copy reads its destination too).
pub(crate) fn reads(i: &Instr) -> Vec<Reg> {
    let mut out = Vec::new();
    operands_mut(&mut i.clone(), |r| out.push(*r));
    if let Instr::CondCopy { dst, .. } = i {
        out.push(*dst);
    }
    out
}

/// The register an instruction writes.
fn dst_mut(i: &mut Instr) -> Option<&mut Reg> {
    match i {
        Instr::Const { dst, .. }
        | Instr::Index { dst }
        | Instr::Load { dst, .. }
        | Instr::Copy { dst, .. }
        | Instr::CondCopy { dst, .. }
        | Instr::Unary { dst, .. }
        | Instr::Binary { dst, .. }
        | Instr::Call { dst, .. }
        | Instr::Cast { dst, .. } => Some(dst),
        Instr::Store { .. } | Instr::StoreIf { .. } | Instr::Accumulate { .. } => None,
    }
}

pub(crate) fn dst(i: &Instr) -> Option<Reg> {
    dst_mut(&mut i.clone()).copied()
}

/// Run the passes on the body of `p`.
pub(crate) fn optimise(p: &mut Program) {
    let local = |r: Reg| !p.regs[r as usize].uniform;
    let body = std::mem::take(&mut p.body);
    let body = remove_dead(propagate_copies(body, &local));
    let body = remove_dead(masked_stores(body));
    p.body = reuse_registers(body, p);
}

/// After `Copy { dst: r, src: s }`, read `s` for `r` until either is written again; the
/// copy then often dies (`ge = _ge` before `ge`'s store).
fn propagate_copies(mut body: Vec<Instr>, local: &impl Fn(Reg) -> bool) -> Vec<Instr> {
    // (r, s): r currently equals s.
    let mut same: Vec<(Reg, Reg)> = Vec::new();
    for i in body.iter_mut() {
        // `r = c ? s : r` where s is a copy of r is a no-op (dropped below).
        if let Instr::CondCopy { dst, src, .. } = *i
            && same.contains(&(src, dst))
        {
            *i = Instr::Copy { dst, src: dst };
        }
        // An instruction's destination must not be one of its operands (the executor
        // takes the destination out of the register file while it reads the operands),
        // so a copy is not propagated into the instruction that overwrites its source.
        let d = dst(i);
        operands_mut(i, |x| {
            if let Some(&(_, s)) = same.iter().find(|(r, _)| r == x)
                && Some(s) != d
            {
                *x = s
            }
        });
        if let Some(d) = dst(i) {
            same.retain(|&(r, s)| r != d && s != d);
        }
        if let Instr::Copy { dst, src } = *i
            && dst != src
            && local(dst)
        {
            same.push((dst, src));
        }
    }
    body.retain(|i| !matches!(*i, Instr::CondCopy { dst, src, .. } | Instr::Copy { dst, src } if dst == src));
    body
}

/// Drop instructions whose result no later instruction reads (stores and scatter-adds
/// always stay).
fn remove_dead(body: Vec<Instr>) -> Vec<Instr> {
    let mut live = std::collections::HashSet::new();
    let mut keep = vec![true; body.len()];
    for (k, i) in body.iter().enumerate().rev() {
        match dst(i) {
            Some(d) if !live.contains(&d) => keep[k] = false,
            Some(d) => {
                live.remove(&d);
                live.extend(reads(i));
            }
            None => live.extend(reads(i)),
        }
    }
    body.into_iter()
        .zip(keep)
        .filter_map(|(i, k)| k.then_some(i))
        .collect()
}

/// `r = load v; ...; r = cond ? s : r; ...; store v <- r`, where nothing reads `r` after
/// the conditional copy but the store, becomes a store of `s` where `cond` holds: no full
/// pass to merge and write back unchanged values (the threshold's `lastspike = t`).
fn masked_stores(mut body: Vec<Instr>) -> Vec<Instr> {
    let mut k = 0;
    while k < body.len() {
        let Instr::Store {
            var,
            src: r,
            at: Place::Elem,
        } = body[k]
        else {
            k += 1;
            continue;
        };
        let defs: Vec<usize> = (0..k).filter(|&j| dst(&body[j]) == Some(r)).collect();
        let [l, c] = defs[..] else {
            k += 1;
            continue;
        };
        let loaded =
            matches!(body[l], Instr::Load { dst, var: v, at: Place::Elem } if dst == r && v == var);
        let Instr::CondCopy { src, cond, .. } = body[c] else {
            k += 1;
            continue;
        };
        let between_ok = body[c + 1..k]
            .iter()
            .all(|i| !reads(i).contains(&r) && dst(i) != Some(src) && dst(i) != Some(cond))
            && !body[k + 1..].iter().any(|i| reads(i).contains(&r));
        if loaded && between_ok && src != r && cond != r {
            body[k] = Instr::StoreIf {
                var,
                src,
                cond,
                at: Place::Elem,
            };
            body.remove(c);
            continue;
        }
        k += 1;
    }
    body
}

/// Give each value a register that an earlier, finished value of the same type held, so
/// that a block's working set stays small enough for the L1 cache (every register is a
/// block-long buffer). Registers read before the body writes them keep their identity.
fn reuse_registers(mut body: Vec<Instr>, p: &Program) -> Vec<Instr> {
    let n = p.regs.len();
    let mut first_def = vec![usize::MAX; n];
    let mut last_use = vec![0usize; n];
    let mut live_in = vec![false; n];
    let mut defs = vec![0usize; n];
    for (k, i) in body.iter().enumerate() {
        for r in reads(i) {
            let r = r as usize;
            if first_def[r] == usize::MAX {
                live_in[r] = true;
            }
            last_use[r] = k;
        }
        if let Some(d) = dst(i) {
            let d = d as usize;
            defs[d] += 1;
            if first_def[d] == usize::MAX {
                first_def[d] = k;
            }
            last_use[d] = last_use[d].max(k);
        }
    }
    // Only registers written once, and not before the body reads them, move.
    let movable = |r: usize| !p.regs[r].uniform && !live_in[r] && defs[r] == 1;
    let mut map: Vec<Reg> = (0..n as Reg).collect();
    // Physical registers free for reuse, and those held with the last position they are read.
    let mut free: Vec<Reg> = Vec::new();
    let mut busy: Vec<(Reg, usize)> = Vec::new();
    for (k, i) in body.iter_mut().enumerate() {
        operands_mut(i, |r| *r = map[*r as usize]);
        // A register read here is still busy: an instruction's destination must differ
        // from its operands.
        busy.retain(|&(phys, until)| {
            let done = until < k;
            if done {
                free.push(phys);
            }
            !done
        });
        let Some(d) = dst(i).map(|d| d as usize) else {
            continue;
        };
        if !movable(d) {
            continue;
        }
        let ty = p.regs[d].ty;
        if let Some(pos) = free.iter().position(|&f| p.regs[f as usize].ty == ty) {
            map[d] = free.swap_remove(pos);
        }
        busy.push((map[d], last_use[d]));
        *dst_mut(i).unwrap() = map[d];
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrays::{ArrayMut, RunArgs};
    use crate::cpu::program::compile_with;
    use crate::ir::{KernelSpec, Type, VariableSpec, lower};

    fn kernel(vars: Vec<VariableSpec>, code: &str) -> crate::ir::Kernel {
        lower(&KernelSpec::vector("stateupdate", vars, code)).unwrap()
    }

    /// Deterministic pseudo-random values in [-1, 1).
    fn values(n: usize, salt: u64) -> Vec<f64> {
        (0..n as u64)
            .map(|i| {
                let x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5);
                (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .collect()
    }

    /// Run `p` over `n` elements on fresh copies of the inputs; return every array.
    fn run(
        p: &Program,
        f64s: &[Vec<f64>],
        bools: &[Vec<u8>],
        n: usize,
    ) -> (Vec<Vec<f64>>, Vec<Vec<u8>>) {
        let (mut f, mut b) = (f64s.to_vec(), bools.to_vec());
        {
            let mut arrays: Vec<ArrayMut> = f.iter_mut().map(|v| ArrayMut::F64(v)).collect();
            arrays.extend(b.iter_mut().map(|v| ArrayMut::Bool(v)));
            p.run(
                &mut arrays,
                &RunArgs {
                    n,
                    ..Default::default()
                },
            )
            .unwrap();
        }
        (f, b)
    }

    /// f64 arrays first, then bool arrays, in `vars` order.
    fn same_results(vars: Vec<VariableSpec>, code: &str) -> Program {
        let k = kernel(vars.clone(), code);
        let plain = compile_with(&k, &[]).unwrap();
        let mut opt = plain.clone();
        optimise(&mut opt);
        let n = 3 * crate::cpu::BLOCK + 77;
        let f64s: Vec<Vec<f64>> = vars
            .iter()
            .filter(|v| v.ty == Type::F64)
            .enumerate()
            .map(|(i, _)| values(n, i as u64))
            .collect();
        let bools: Vec<Vec<u8>> = vars
            .iter()
            .filter(|v| v.ty == Type::Bool)
            .enumerate()
            .map(|(i, _)| {
                values(n, 100 + i as u64)
                    .iter()
                    .map(|&x| (x > 0.3) as u8)
                    .collect()
            })
            .collect();
        assert_eq!(
            run(&plain, &f64s, &bools, n),
            run(&opt, &f64s, &bools, n),
            "{code}"
        );
        assert!(opt.body.len() <= plain.body.len());
        opt
    }

    fn f(name: &str) -> VariableSpec {
        VariableSpec::array(name, Type::F64)
    }
    fn b(name: &str) -> VariableSpec {
        VariableSpec::array(name, Type::Bool)
    }
    fn guarded(mut v: VariableSpec, by: &str) -> VariableSpec {
        v.conditional_write = Some(by.into());
        v
    }

    #[test]
    fn threshold_bookkeeping_becomes_masked_stores() {
        let p = same_results(
            vec![
                f("v"),
                guarded(f("lastspike"), "_cond"),
                b("_cond"),
                guarded(b("not_refractory"), "_cond"),
            ],
            "_cond = (v > 0.2) and not_refractory\nnot_refractory = False\nlastspike = v*2",
        );
        let masked = p
            .body
            .iter()
            .filter(|i| matches!(i, Instr::StoreIf { .. }))
            .count();
        assert_eq!(masked, 2, "{:#?}", p.body);
        // lastspike is never loaded: its unchanged elements are not rewritten.
        assert!(
            !p.body
                .iter()
                .any(|i| matches!(i, Instr::Load { var: 1, .. }))
        );
    }

    #[test]
    fn copies_and_temporaries_fold_away() {
        let p = same_results(
            vec![f("v"), f("ge"), f("gi"), guarded(f("x"), "on"), b("on")],
            "_ge = ge*0.9\n_gi = gi*0.8\n_v = _wgpu_where(on, v + ge + gi, v)\nge = _ge\ngi = _gi\nv = _v\nx = v*v\non = v > 0",
        );
        assert!(
            !p.body.iter().any(|i| matches!(i, Instr::Copy { .. })),
            "{:#?}",
            p.body
        );
    }

    #[test]
    fn registers_are_reused_and_never_alias_operands() {
        let code = "a = x*1.5\nb = a*x + 2\nc = b*b - a\nd = c/(1 + b*b)\ny = (a + b + c + d)*x";
        let p = same_results(vec![f("x"), f("y")], code);
        let values = p.body.iter().filter_map(dst).count();
        let mut used: Vec<Reg> = p.body.iter().filter_map(dst).collect();
        used.sort();
        used.dedup();
        // Twelve values, at most six alive at once (x, a, b, c and two temporaries).
        assert_eq!(values, 12, "{:#?}", p.body);
        assert!(used.len() <= 6, "{used:?} in {:#?}", p.body);
        for i in &p.body {
            if let Some(d) = dst(i)
                && !matches!(i, Instr::CondCopy { .. })
            {
                assert!(!reads(i).contains(&d), "{i:?}");
            }
        }
    }

    #[test]
    fn guarded_writes_of_unread_variables_skip_the_load() {
        let p = same_results(
            vec![guarded(f("x"), "on"), f("y"), b("on")],
            "x = 2*y\ny = y + 1",
        );
        assert!(
            !p.body
                .iter()
                .any(|i| matches!(i, Instr::Load { var: 0, .. })),
            "{:#?}",
            p.body
        );
    }
}
