//! The typed kernel IR shared by both backends.
//!
//! A [`Kernel`] follows Brian2's code-object model: every variable the code touches is
//! loaded into a local at the start of the element's work (from its array, at its index),
//! statements operate on locals, and written variables are stored back at the end.
//! Scalar statements run once per kernel invocation before the vector statements.

mod access;
mod cse;
pub mod fold;
mod func;
mod fuse;
mod hoist;
mod interval;
mod lower;
pub mod scalar;
mod types;
mod validate;

pub use access::{
    ConflictIndices, Parallel, accumulation, conflict_indices, parallel, serial_index,
};
pub use cse::share_subexpressions;
pub use func::{Func, float_result};
pub use fuse::{Fused, fuse_elementwise};
pub use hoist::{Hoisted, Invariance, hoist_scalars};
pub use interval::{Bound, bounds, eval as eval_bound};
pub use lower::{FunctionSpec, KernelSpec, LowerError, VariableSpec, lower};
pub use types::{Type, TypeInfo, Value, promote};
pub use validate::{ValidateError, validate};

pub use crate::parse::CmpOp;

pub type VarId = usize;
pub type LocalId = usize;

/// Where a variable's element for the current `_idx` lives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Index {
    /// `_idx` (and `_vectorisation_idx`): the element itself.
    Elem,
    /// `0`: a scalar variable (an array of length one).
    Zero,
    /// Another (integer) variable holds the index, e.g. `_presynaptic_idx`.
    Var(VarId),
    /// The position in the kernel's iteration (not the element): record buffers of
    /// monitors, written at `base + position`.
    Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VarKind {
    /// Stored in an array the engine owns.
    Array,
    /// A value fixed for the kernel's lifetime (Brian2 `Constant`s, namespace values).
    Constant(Value),
    /// A scalar statement's result computed on the host ([`hoist_scalars`]): element
    /// `slot` of the kernel's table of such values of this type (GPU kernels only).
    /// `per_step`: the value depends on a clock's `t` or timestep; the table then has one
    /// row per step of a batch, and the kernel reads the row of its step.
    Hoisted { slot: u32, per_step: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    pub ty: Type,
    pub kind: VarKind,
    pub index: Index,
    pub read: bool,
    pub written: bool,
    /// The local that mirrors this variable inside the kernel.
    pub local: LocalId,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Local {
    pub name: String,
    pub ty: Type,
    /// `Some` if the local mirrors a variable.
    pub var: Option<VarId>,
    /// Assigned in the scalar block (so it is the same for every element).
    pub scalar: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    /// True division on floats (integer operands are cast to float before).
    Div,
    /// Floored division (Python's `//`).
    FloorDiv,
    /// Floored modulo (Python's `%`).
    Mod,
    Pow,
    And,
    Or,
    Cmp(CmpOp),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub ty: Type,
    pub kind: ExprKind,
}

impl Expr {
    /// Does this expression or any of its subexpressions satisfy `pred`?
    pub fn any(&self, pred: &mut dyn FnMut(&Expr) -> bool) -> bool {
        if pred(self) {
            return true;
        }
        match &self.kind {
            ExprKind::Unary(_, a) | ExprKind::Cast(a) | ExprKind::Gather(_, a) => a.any(pred),
            ExprKind::Binary(_, a, b) => a.any(pred) || b.any(pred),
            ExprKind::Call(_, args) => args.iter().any(|a| a.any(pred)),
            ExprKind::Lit(_) | ExprKind::Local(_) | ExprKind::ElemIndex => false,
        }
    }

    /// Append the locals this expression reads to `out`.
    pub fn read_locals(&self, out: &mut Vec<LocalId>) {
        self.any(&mut |e| {
            if let ExprKind::Local(l) = e.kind {
                out.push(l);
            }
            false
        });
    }

    /// Whether the expression draws random numbers.
    pub fn uses_rng(&self) -> bool {
        self.any(&mut |e| matches!(&e.kind, ExprKind::Call(f, _) if f.uses_rng()))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Lit(Value),
    Local(LocalId),
    /// The element index `_idx` / `_vectorisation_idx` (i32).
    ElemIndex,
    Unary(UnaryOp, Box<Expr>),
    /// Operands have the same type; comparisons yield bool.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// Arguments already cast to what the function takes.
    Call(Func, Vec<Expr>),
    /// Convert the operand to `Expr::ty`.
    Cast(Box<Expr>),
    /// Element `index` (i32, in range by construction) of an array variable: a
    /// TimedArray's table.
    Gather(VarId, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    /// `local = value`, only where `cond` holds (Brian2's conditional writes, e.g.
    /// `not_refractory` guarding the state update).
    Assign {
        local: LocalId,
        value: Expr,
        cond: Option<Expr>,
    },
}

/// A user function implemented in WGSL (for the GPU); the CPU backend has no
/// implementation for it and reports so.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFunction {
    pub name: String,
    pub args: Vec<Type>,
    pub ret: Type,
    pub wgsl: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    pub name: String,
    /// The Brian2 template this kernel lowers (`stateupdate`, `threshold`, ...).
    pub template: String,
    /// The model's float type (Brian2's `default_float_dtype`).
    pub float: Type,
    pub vars: Vec<Variable>,
    pub locals: Vec<Local>,
    pub scalar: Vec<Stmt>,
    pub vector: Vec<Stmt>,
    pub user_functions: Vec<UserFunction>,
    /// Number of random-number call sites (each gets its own stream).
    pub rng_sites: u32,
}

impl Kernel {
    pub fn var(&self, name: &str) -> Option<&Variable> {
        self.vars.iter().find(|v| v.name == name)
    }

    /// Does any expression satisfy `pred`?
    pub fn any_expr(&self, pred: &mut dyn FnMut(&Expr) -> bool) -> bool {
        self.scalar.iter().chain(&self.vector).any(|s| match s {
            Stmt::Assign { value, cond, .. } => {
                value.any(pred) || cond.as_ref().is_some_and(|c| c.any(pred))
            }
        })
    }

    /// Types the kernel needs from the device (for feature checks).
    pub fn uses_type(&self, ty: Type) -> bool {
        self.locals.iter().any(|l| l.ty == ty) || self.any_expr(&mut |e| e.ty == ty)
    }

    pub fn uses_rng(&self) -> bool {
        self.rng_sites > 0
    }

    /// Whether the value variable `v` holds on entry can matter: false when the first
    /// statement that touches its local (in the order scalar, vector) assigns it without
    /// a condition and without reading it, so loading it would be wasted (Brian2's
    /// `not_refractory` in a refractory state update, a threshold's condition flags).
    /// A local used only as another variable's index counts as read.
    pub fn reads_initial(&self, v: VarId) -> bool {
        let var = &self.vars[v];
        if !var.read && !var.written {
            return false;
        }
        if self.vars.iter().any(|u| u.index == Index::Var(v)) {
            return true;
        }
        let local = var.local;
        let reads = |e: &Expr| e.any(&mut |x| matches!(x.kind, ExprKind::Local(l) if l == local));
        for s in self.scalar.iter().chain(&self.vector) {
            let Stmt::Assign {
                local: target,
                value,
                cond,
            } = s;
            if reads(value) || cond.as_ref().is_some_and(reads) {
                return true;
            }
            if *target == local {
                return cond.is_some();
            }
        }
        // Never assigned: read where it is read, or stored back unchanged.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A variable assigned before anything reads it needs no load; one read first, written
    /// under a condition first, or used as an index does.
    #[test]
    fn reads_initial_is_false_only_for_values_assigned_before_any_read() {
        let vars = ["v", "flag", "c", "w", "k"]
            .iter()
            .map(|n| VariableSpec::array(n, if *n == "k" { Type::I32 } else { Type::F64 }))
            .collect();
        let mut spec = KernelSpec::vector(
            "stateupdate",
            vars,
            "flag = v * 2\nv = v + flag\nc = 1.0\nc = c + v\nw = k * 1.0",
        );
        spec.variables[3].index = "k".into();
        let k = lower(&spec).unwrap();
        let id = |n: &str| k.vars.iter().position(|v| v.name == n).unwrap();
        assert!(k.reads_initial(id("v")), "read before written");
        assert!(!k.reads_initial(id("flag")), "assigned first");
        assert!(!k.reads_initial(id("c")), "assigned first, then read");
        assert!(!k.reads_initial(id("w")), "assigned first");
        assert!(k.reads_initial(id("k")), "an index");
    }
}
