//! IR → a flat register program. Registers are either per-element (one value per element
//! of the current block) or uniform (one value for the whole kernel invocation).

use super::CpuError;
use crate::ir::{
    BinaryOp, Expr, ExprKind, Func, Index, Kernel, LocalId, Stmt, Type, UnaryOp, Value, VarKind,
};

pub type Reg = u32;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegInfo {
    pub ty: Type,
    /// A uniform register holds one value that every element shares.
    pub uniform: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Place {
    Elem,
    Pos,
    Zero,
    At(Reg),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Instr {
    Const {
        dst: Reg,
        v: Value,
    },
    Index {
        dst: Reg,
    },
    Load {
        dst: Reg,
        var: usize,
        at: Place,
    },
    Store {
        var: usize,
        src: Reg,
        at: Place,
    },
    /// `var[at] = src` where `cond` holds (other elements keep their value).
    StoreIf {
        var: usize,
        src: Reg,
        cond: Reg,
        at: Place,
    },
    /// `var[index] += src` for each element in order (where `cond` holds): a pure
    /// accumulation onto repeated targets, numpy's `add.at` and the serial loop alike.
    Accumulate {
        var: usize,
        src: Reg,
        index: Reg,
        cond: Option<Reg>,
    },
    Copy {
        dst: Reg,
        src: Reg,
    },
    /// `dst = cond ? src : dst`
    CondCopy {
        dst: Reg,
        src: Reg,
        cond: Reg,
    },
    Unary {
        op: UnaryOp,
        dst: Reg,
        a: Reg,
    },
    Binary {
        op: BinaryOp,
        dst: Reg,
        a: Reg,
        b: Reg,
    },
    Call {
        f: Func,
        dst: Reg,
        args: Vec<Reg>,
    },
    Cast {
        dst: Reg,
        a: Reg,
    },
}

#[derive(Debug, Clone)]
pub struct Program {
    pub name: String,
    pub regs: Vec<RegInfo>,
    /// Run once per invocation, on uniform registers only.
    pub prologue: Vec<Instr>,
    /// Run per block of elements; reads uniform registers, writes per-element ones.
    pub body: Vec<Instr>,
    /// Run once after every block: stores of shared (scalar) variables.
    pub epilogue: Vec<Instr>,
    /// Variable types, for checking the arrays handed to `run`.
    pub var_types: Vec<Type>,
    pub var_is_array: Vec<bool>,
    /// Every store goes to the element's own index, so blocks may run in parallel.
    pub parallel_safe: bool,
    /// Array variables, their index and whether they are written, for kernels that store
    /// through an index variable (`v_post += w`): elements that touch the same slot must
    /// not share a block, so that blocks give the serial loop's result (see
    /// `exec::ordered_chunks`). Empty for `parallel_safe` kernels.
    pub access: Vec<(usize, Index, bool)>,
    pub rng_sites: u32,
    /// Register files of earlier runs, reused: allocating one per call cost microseconds
    /// per kernel and step.
    pub(crate) files: RegisterPool,
    /// Variables this program accumulates with [`Instr::Accumulate`] (see `accumulating`).
    pub accumulated: Vec<usize>,
    /// The same kernel with its pure accumulations onto repeated targets (`v_post += w`)
    /// as ordered scatter-adds: no conflict-free chunking needed. Valid unless an
    /// accumulated array is also reached through another variable (checked per run).
    pub accumulating: Option<Box<Program>>,
}

/// Reusable register files (uniform, per-element); a clone starts empty.
#[derive(Debug, Default)]
pub struct RegisterPool(
    pub(crate) std::sync::Mutex<Vec<(Vec<super::exec::Buf>, Vec<super::exec::Buf>)>>,
);

impl Clone for RegisterPool {
    fn clone(&self) -> Self {
        Self::default()
    }
}

struct Builder<'k> {
    k: &'k Kernel,
    regs: Vec<RegInfo>,
    prologue: Vec<Instr>,
    body: Vec<Instr>,
    epilogue: Vec<Instr>,
    local_regs: Vec<Reg>,
    /// Lowering the scalar block: everything there is uniform, random draws included.
    in_scalar: bool,
    /// Common subexpressions (Brian2's integrators repeat e.g. the same `exprel(...)` in
    /// `_BA_m` and `_m`): structural key → (register, locals it reads). An assignment to
    /// a local drops the entries that read it.
    memo: std::collections::HashMap<String, (Reg, Vec<LocalId>)>,
}

fn locals_read(e: &Expr, out: &mut Vec<LocalId>) {
    match &e.kind {
        ExprKind::Local(l) => out.push(*l),
        ExprKind::Lit(_) | ExprKind::ElemIndex => {}
        ExprKind::Unary(_, a) | ExprKind::Cast(a) | ExprKind::Gather(_, a) => locals_read(a, out),
        ExprKind::Binary(_, a, b) => {
            locals_read(a, out);
            locals_read(b, out);
        }
        ExprKind::Call(_, args) => args.iter().for_each(|a| locals_read(a, out)),
    }
}

/// Whether an expression draws random numbers (such calls are never shared).
fn draws(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Lit(_) | ExprKind::Local(_) | ExprKind::ElemIndex => false,
        ExprKind::Unary(_, a) | ExprKind::Cast(a) => draws(a),
        ExprKind::Binary(_, a, b) => draws(a) || draws(b),
        ExprKind::Call(f, args) => f.uses_rng() || args.iter().any(draws),
        ExprKind::Gather(_, i) => draws(i),
    }
}

impl Builder<'_> {
    fn reg(&mut self, ty: Type, uniform: bool) -> Reg {
        self.regs.push(RegInfo { ty, uniform });
        (self.regs.len() - 1) as Reg
    }

    fn emit(&mut self, uniform: bool, i: Instr) {
        if uniform {
            self.prologue.push(i)
        } else {
            self.body.push(i)
        }
    }

    fn expr(&mut self, e: &Expr) -> Result<Reg, CpuError> {
        let shareable = matches!(
            e.kind,
            ExprKind::Unary(..) | ExprKind::Binary(..) | ExprKind::Cast(_) | ExprKind::Call(..)
        ) && !draws(e);
        if !shareable {
            return self.expr_uncached(e);
        }
        let key = format!("{:?}|{:?}", e.kind, e.ty);
        if let Some(&(r, _)) = self.memo.get(&key) {
            return Ok(r);
        }
        let r = self.expr_uncached(e)?;
        let mut reads = Vec::new();
        locals_read(e, &mut reads);
        self.memo.insert(key, (r, reads));
        Ok(r)
    }

    fn expr_uncached(&mut self, e: &Expr) -> Result<Reg, CpuError> {
        Ok(match &e.kind {
            ExprKind::Lit(v) => {
                let dst = self.reg(e.ty, true);
                self.emit(true, Instr::Const { dst, v: *v });
                dst
            }
            ExprKind::Local(id) => self.local_regs[*id],
            ExprKind::ElemIndex => {
                let dst = self.reg(Type::I32, false);
                self.emit(false, Instr::Index { dst });
                dst
            }
            ExprKind::Unary(op, a) => {
                let a = self.expr(a)?;
                let u = self.regs[a as usize].uniform;
                let dst = self.reg(e.ty, u);
                self.emit(u, Instr::Unary { op: *op, dst, a });
                dst
            }
            ExprKind::Binary(op, a, b) => {
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                let u = self.regs[a as usize].uniform && self.regs[b as usize].uniform;
                let dst = self.reg(e.ty, u);
                self.emit(u, Instr::Binary { op: *op, dst, a, b });
                dst
            }
            ExprKind::Gather(var, index) => {
                let at = self.expr(index)?;
                let u = self.regs[at as usize].uniform;
                let dst = self.reg(e.ty, u);
                self.emit(
                    u,
                    Instr::Load {
                        dst,
                        var: *var,
                        at: Place::At(at),
                    },
                );
                dst
            }
            ExprKind::Cast(a) => {
                let a = self.expr(a)?;
                let u = self.regs[a as usize].uniform;
                let dst = self.reg(e.ty, u);
                self.emit(u, Instr::Cast { dst, a });
                dst
            }
            ExprKind::Call(f, args) => {
                if let Func::User(i) = f {
                    let name = &self.k.user_functions[*i as usize].name;
                    return Err(CpuError::Unsupported(format!(
                        "user function '{name}' in kernel '{}' has no implementation for the CPU backend; use backend 'gpu' or implement it in Brian2 expressions",
                        self.k.name
                    )));
                }
                let regs = args
                    .iter()
                    .map(|a| self.expr(a))
                    .collect::<Result<Vec<_>, _>>()?;
                // Random draws are keyed by element: uniform only in scalar code.
                let u = if f.uses_rng() {
                    self.in_scalar
                } else {
                    regs.iter().all(|r| self.regs[*r as usize].uniform)
                };
                let dst = self.reg(e.ty, u);
                self.emit(
                    u,
                    Instr::Call {
                        f: *f,
                        dst,
                        args: regs,
                    },
                );
                dst
            }
        })
    }
}

/// Compile a kernel for the interpreter, with its accumulating variant where it has one.
pub fn compile(k: &Kernel) -> Result<Program, CpuError> {
    let mut p = compile_with(k, &[])?;
    super::optimise::optimise(&mut p);
    if let crate::ir::Parallel::Atomic(vars) = crate::ir::parallel(k, &[])
        && vars
            .iter()
            .all(|&v| matches!(k.vars[v].index, Index::Var(_)))
    {
        let mut acc = compile_with(k, &vars)?;
        super::optimise::optimise(&mut acc);
        p.accumulating = Some(Box::new(acc));
    }
    Ok(p)
}

/// `accumulate`: variables whose statements (all `x = x ± e`) become ordered scatter-adds.
/// The program as lowered, before `optimise`.
pub(crate) fn compile_with(k: &Kernel, accumulate: &[usize]) -> Result<Program, CpuError> {
    let mut b = Builder {
        k,
        regs: Vec::new(),
        prologue: Vec::new(),
        body: Vec::new(),
        epilogue: Vec::new(),
        local_regs: Vec::new(),
        in_scalar: false,
        memo: Default::default(),
    };
    let assigned_in_vector: Vec<bool> = (0..k.locals.len())
        .map(|id| {
            k.vector
                .iter()
                .any(|s| matches!(s, Stmt::Assign { local, .. } if *local == id))
        })
        .collect();
    // One register per local; uniform if it is the same for every element.
    for (id, l) in k.locals.iter().enumerate() {
        let uniform = !assigned_in_vector[id]
            && match l.var {
                Some(v) => {
                    matches!(k.vars[v].index, Index::Zero)
                        || matches!(k.vars[v].kind, VarKind::Constant(_))
                }
                None => l.scalar,
            };
        let r = b.reg(l.ty, uniform);
        b.local_regs.push(r);
    }
    // Load what is read (in the order of the variables; index variables first).
    let mut order: Vec<usize> = (0..k.vars.len()).collect();
    order.sort_by_key(|&v| !matches!(k.vars[v].index, Index::Elem | Index::Zero | Index::Pos));
    for v in order {
        let var = &k.vars[v];
        let dst = b.local_regs[var.local];
        let uniform = b.regs[dst as usize].uniform;
        if let VarKind::Constant(c) = var.kind {
            b.emit(uniform, Instr::Const { dst, v: c });
            continue;
        }
        if (!var.read && !var.written) || accumulate.contains(&v) {
            continue;
        }
        let at = match var.index {
            Index::Elem => Place::Elem,
            Index::Pos => Place::Pos,
            Index::Zero => Place::Zero,
            Index::Var(iv) => Place::At(b.local_regs[k.vars[iv].local]),
        };
        // A written variable that is not read still needs its old value where a
        // conditional write leaves it unchanged.
        b.emit(uniform, Instr::Load { dst, var: v, at });
    }
    for (stmts, in_scalar) in [(&k.scalar, true), (&k.vector, false)] {
        b.in_scalar = in_scalar;
        for s in stmts.iter() {
            let Stmt::Assign { local, value, cond } = s;
            if let Some(&v) = accumulate.iter().find(|&&v| k.vars[v].local == *local) {
                let (op, inc) = crate::ir::accumulation(value, *local)
                    .expect("accumulated variables are written by accumulation only");
                let mut src = b.expr(inc)?;
                if op == BinaryOp::Sub {
                    // x - e == x + (-e) exactly, in floats and in wrapping integers.
                    let neg = b.reg(inc.ty, false);
                    b.emit(
                        false,
                        Instr::Unary {
                            op: UnaryOp::Neg,
                            dst: neg,
                            a: src,
                        },
                    );
                    src = neg;
                }
                let Index::Var(iv) = k.vars[v].index else {
                    unreachable!("accumulation through an index variable")
                };
                let index = b.local_regs[k.vars[iv].local];
                let cond = cond.as_ref().map(|c| b.expr(c)).transpose()?;
                b.emit(
                    false,
                    Instr::Accumulate {
                        var: v,
                        src,
                        index,
                        cond,
                    },
                );
                continue;
            }
            let src = b.expr(value)?;
            let dst = b.local_regs[*local];
            let emit_uniform = in_scalar && b.regs[dst as usize].uniform;
            match cond {
                None => b.emit(emit_uniform, Instr::Copy { dst, src }),
                Some(c) => {
                    let cond = b.expr(c)?;
                    let u = emit_uniform && b.regs[cond as usize].uniform;
                    b.emit(u, Instr::CondCopy { dst, src, cond })
                }
            }
            // The local's register changes here: results that read it are stale, and so
            // is any result held in that very register.
            b.memo
                .retain(|_, (r, reads)| *r != dst && !reads.contains(local));
        }
    }
    // Scatter-adds are ordered: blocks must not run in parallel.
    let mut parallel_safe = accumulate.is_empty();
    let mut scatters = false;
    for (v, var) in k.vars.iter().enumerate() {
        if !var.written || accumulate.contains(&v) {
            continue;
        }
        let src = b.local_regs[var.local];
        let at = match var.index {
            Index::Elem => Place::Elem,
            Index::Pos => Place::Pos,
            Index::Zero => {
                if !b.regs[src as usize].uniform {
                    return Err(CpuError::Unsupported(format!(
                        "kernel '{}' writes the shared variable '{}' per element",
                        k.name, var.name
                    )));
                }
                Place::Zero
            }
            Index::Var(iv) => {
                parallel_safe = false;
                scatters = true;
                Place::At(b.local_regs[k.vars[iv].local])
            }
        };
        let store = Instr::Store { var: v, src, at };
        if matches!(at, Place::Zero) {
            b.epilogue.push(store);
        } else {
            b.body.push(store);
        }
    }
    Ok(Program {
        files: RegisterPool::default(),
        name: k.name.clone(),
        regs: b.regs,
        prologue: b.prologue,
        body: b.body,
        epilogue: b.epilogue,
        var_types: k.vars.iter().map(|v| v.ty).collect(),
        var_is_array: k
            .vars
            .iter()
            .map(|v| matches!(v.kind, VarKind::Array) && (v.read || v.written))
            .collect(),
        parallel_safe,
        access: if !scatters {
            Vec::new()
        } else {
            k.vars
                .iter()
                .enumerate()
                .filter(|(i, v)| {
                    matches!(v.kind, VarKind::Array)
                        && (v.read || v.written)
                        && !accumulate.contains(i)
                })
                .map(|(i, v)| (i, v.index, v.written))
                .collect()
        },
        rng_sites: k.rng_sites,
        accumulated: accumulate.to_vec(),
        accumulating: None,
    })
}
