//! AST → typed IR with Brian2's (numpy target's) type rules.
//!
//! Expressions built only from Python literals are "weak" (NEP 50): they are folded here
//! in Python's precision (i64/f64) and take the type of the array they meet.

use std::collections::HashMap;

use thiserror::Error;

use super::func::{Func, float_result};
use super::types::{Type, TypeInfo, Value, promote};
use super::{
    BinaryOp, Expr, ExprKind, Index, Kernel, Local, LocalId, Stmt, UnaryOp, UserFunction, VarKind,
    Variable,
};
use crate::parse::{self, AssignOp, BinOp, Literal, ParseError, UnOp};

#[derive(Debug, Error)]
pub enum LowerError {
    #[error("kernel '{kernel}': {source}")]
    Parse {
        kernel: String,
        #[source]
        source: ParseError,
    },
    #[error("kernel '{kernel}', in `{stmt}`: {message}")]
    Type {
        kernel: String,
        stmt: String,
        message: String,
    },
    #[error("kernel '{kernel}': {message}")]
    Spec { kernel: String, message: String },
}

/// One variable as the Python side describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct VariableSpec {
    pub name: String,
    pub ty: Type,
    /// `"_idx"`, `"0"` or the name of an index variable.
    pub index: String,
    /// `Some` for Brian2 constants: their value is part of the kernel.
    pub constant: Option<Value>,
    /// Name of the boolean variable guarding writes (Brian2's `conditional_write`).
    pub conditional_write: Option<String>,
}

impl VariableSpec {
    pub fn array(name: &str, ty: Type) -> Self {
        Self {
            name: name.into(),
            ty,
            index: "_idx".into(),
            constant: None,
            conditional_write: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FunctionSpec {
    /// A Brian2 `BinomialFunction` under its generated name (`exact`: `approximate=False`).
    Binomial {
        name: String,
        n: i32,
        p: f64,
        exact: bool,
    },
    /// A Brian2 `TimedArray`: `values` (a kernel variable holding the table, `rows` ×
    /// `cols`, row-major) sampled at `t` with Brian2's rule: row
    /// `clip(int(round(t / (dt / k)) / k), 0, rows - 1)`, column `i` for 2-D tables.
    TimedArray {
        name: String,
        values: String,
        dt: f64,
        k: i64,
        rows: i32,
        cols: i32,
    },
    /// A user `Function` with (optionally) a `'wgpu'` WGSL implementation.
    User {
        name: String,
        args: Vec<Type>,
        ret: Type,
        wgsl: Option<String>,
    },
}

/// What the Python side (or a test) hands over for one code object.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSpec {
    pub name: String,
    pub template: String,
    pub float: Type,
    pub variables: Vec<VariableSpec>,
    pub scalar_code: String,
    pub vector_code: String,
    pub functions: Vec<FunctionSpec>,
}

impl KernelSpec {
    /// A float64 kernel named "k" with vector code only (for tests).
    pub fn vector(template: &str, variables: Vec<VariableSpec>, code: &str) -> Self {
        Self {
            name: "k".into(),
            template: template.into(),
            float: Type::F64,
            variables,
            scalar_code: String::new(),
            vector_code: code.into(),
            functions: vec![],
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Typed {
    info: TypeInfo,
}

struct Lowerer<'a> {
    spec: &'a KernelSpec,
    kernel: Kernel,
    names: HashMap<String, LocalId>,
    /// Temporaries assigned exactly once from a literal-only expression: folded away.
    weak_consts: HashMap<String, Value>,
    assign_counts: HashMap<String, usize>,
    stmt_text: String,
    in_scalar: bool,
}

fn weak(v: Value) -> (Expr, Typed) {
    (
        Expr {
            ty: v.ty(),
            kind: ExprKind::Lit(v),
        },
        Typed {
            info: TypeInfo {
                ty: v.ty(),
                weak: true,
            },
        },
    )
}

fn strong(e: Expr) -> (Expr, Typed) {
    let ty = e.ty;
    (
        e,
        Typed {
            info: TypeInfo { ty, weak: false },
        },
    )
}

/// Convert `e` to `ty`, folding literals.
fn cast(e: Expr, ty: Type) -> Expr {
    if e.ty == ty {
        return e;
    }
    if let ExprKind::Lit(v) = e.kind {
        return Expr {
            ty,
            kind: ExprKind::Lit(v.cast(ty)),
        };
    }
    Expr {
        ty,
        kind: ExprKind::Cast(Box::new(e)),
    }
}

fn lit_of(e: &Expr) -> Option<Value> {
    match e.kind {
        ExprKind::Lit(v) => Some(v),
        _ => None,
    }
}

impl<'a> Lowerer<'a> {
    fn err(&self, message: impl Into<String>) -> LowerError {
        LowerError::Type {
            kernel: self.spec.name.clone(),
            stmt: self.stmt_text.clone(),
            message: message.into(),
        }
    }

    fn add_local(&mut self, name: &str, ty: Type, var: Option<usize>) -> LocalId {
        let id = self.kernel.locals.len();
        self.kernel.locals.push(Local {
            name: name.into(),
            ty,
            var,
            scalar: self.in_scalar,
        });
        self.names.insert(name.into(), id);
        id
    }

    fn setup_vars(&mut self) -> Result<(), LowerError> {
        let spec = self.spec;
        for (i, v) in spec.variables.iter().enumerate() {
            if self.names.contains_key(&v.name) {
                return Err(LowerError::Spec {
                    kernel: spec.name.clone(),
                    message: format!("variable '{}' is declared twice", v.name),
                });
            }
            let local = self.add_local(&v.name, v.ty, Some(i));
            self.kernel.vars.push(Variable {
                name: v.name.clone(),
                ty: v.ty,
                kind: match v.constant {
                    Some(c) => VarKind::Constant(c.cast(v.ty)),
                    None => VarKind::Array,
                },
                index: super::Index::Elem,
                read: false,
                written: false,
                local,
            });
        }
        // Indices refer to other variables, so resolve them once all exist.
        for (i, v) in spec.variables.iter().enumerate() {
            let index = match v.index.as_str() {
                "_idx" | "_vectorisation_idx" | "" => Index::Elem,
                "0" => Index::Zero,
                "_pos" => Index::Pos,
                other => {
                    let j = spec
                        .variables
                        .iter()
                        .position(|w| w.name == other)
                        .ok_or_else(|| LowerError::Spec {
                            kernel: spec.name.clone(),
                            message: format!(
                                "variable '{}' is indexed by '{other}', which is not among the kernel's variables",
                                v.name
                            ),
                        })?;
                    if !spec.variables[j].ty.is_int() {
                        return Err(LowerError::Spec {
                            kernel: spec.name.clone(),
                            message: format!("index variable '{other}' must be an integer"),
                        });
                    }
                    self.kernel.vars[j].read = true;
                    Index::Var(j)
                }
            };
            self.kernel.vars[i].index = index;
        }
        for f in &spec.functions {
            if let FunctionSpec::User {
                name,
                args,
                ret,
                wgsl,
            } = f
            {
                self.kernel.user_functions.push(UserFunction {
                    name: name.clone(),
                    args: args.clone(),
                    ret: *ret,
                    wgsl: wgsl.clone(),
                });
            }
        }
        Ok(())
    }

    fn name(&mut self, n: &str) -> Result<(Expr, Typed), LowerError> {
        if let Some(v) = self.weak_consts.get(n) {
            return Ok(weak(*v));
        }
        if let Some(&id) = self.names.get(n) {
            let local = &self.kernel.locals[id];
            if let Some(var) = local.var {
                let v = &mut self.kernel.vars[var];
                if let VarKind::Constant(c) = v.kind {
                    // Brian2 constants are numpy scalars or Python numbers; both are
                    // strong for our purposes (their dtype is given).
                    return Ok(strong(Expr {
                        ty: c.ty(),
                        kind: ExprKind::Lit(c),
                    }));
                }
                v.read = true;
                if self.in_scalar && v.index != Index::Zero {
                    return Err(self.err(format!(
                        "scalar code reads '{n}', which is not a scalar variable"
                    )));
                }
            }
            let ty = self.kernel.locals[id].ty;
            return Ok(strong(Expr {
                ty,
                kind: ExprKind::Local(id),
            }));
        }
        match n {
            "_idx" | "_vectorisation_idx" => Ok(strong(Expr {
                ty: Type::I32,
                kind: ExprKind::ElemIndex,
            })),
            "inf" => Ok(weak(Value::F64(f64::INFINITY))),
            "pi" => Ok(weak(Value::F64(std::f64::consts::PI))),
            "e" => Ok(weak(Value::F64(std::f64::consts::E))),
            _ => Err(self.err(format!(
                "unknown name '{n}' (not a variable of this kernel, nor a constant)"
            ))),
        }
    }

    fn expr(&mut self, e: &parse::Expr) -> Result<(Expr, Typed), LowerError> {
        match e {
            parse::Expr::Lit(Literal::Int(v)) => Ok(weak(Value::I64(*v))),
            parse::Expr::Lit(Literal::Float(v)) => Ok(weak(Value::F64(*v))),
            parse::Expr::Lit(Literal::Bool(v)) => Ok(weak(Value::Bool(*v))),
            parse::Expr::Name(n) => self.name(n),
            parse::Expr::Unary(op, a) => {
                let (a, ta) = self.expr(a)?;
                self.unary(*op, a, ta)
            }
            parse::Expr::Binary(op, a, b) => {
                let (a, ta) = self.expr(a)?;
                let (b, tb) = self.expr(b)?;
                self.binary(*op, a, ta, b, tb)
            }
            parse::Expr::Compare(op, a, b) => {
                let (a, ta) = self.expr(a)?;
                let (b, tb) = self.expr(b)?;
                let t = promote(ta.info, tb.info, self.kernel.float);
                let (a, b) = (cast(a, t.ty), cast(b, t.ty));
                let out = Expr {
                    ty: Type::Bool,
                    kind: ExprKind::Binary(BinaryOp::Cmp(*op), Box::new(a), Box::new(b)),
                };
                if t.weak {
                    let v = fold(&out).ok_or_else(|| self.err("cannot fold comparison"))?;
                    return Ok(weak(v));
                }
                Ok(strong(out))
            }
            parse::Expr::Call(name, args) => self.call(name, args),
        }
    }

    fn unary(&mut self, op: UnOp, a: Expr, ta: Typed) -> Result<(Expr, Typed), LowerError> {
        match op {
            UnOp::Pos => Ok((a, ta)),
            UnOp::Neg => {
                if a.ty == Type::Bool {
                    return Err(self.err("cannot negate a boolean (use `not`)"));
                }
                let out = Expr {
                    ty: a.ty,
                    kind: ExprKind::Unary(UnaryOp::Neg, Box::new(a)),
                };
                self.maybe_fold(out, ta.info.weak)
            }
            UnOp::Not => {
                if a.ty != Type::Bool {
                    return Err(self.err(format!(
                        "`not` needs a boolean operand, got {} (compare it first, e.g. `x != 0`)",
                        a.ty
                    )));
                }
                let out = Expr {
                    ty: Type::Bool,
                    kind: ExprKind::Unary(UnaryOp::Not, Box::new(a)),
                };
                self.maybe_fold(out, ta.info.weak)
            }
        }
    }

    fn maybe_fold(&self, e: Expr, is_weak: bool) -> Result<(Expr, Typed), LowerError> {
        if is_weak {
            let v = fold(&e).ok_or_else(|| self.err("cannot evaluate this literal expression"))?;
            return Ok(weak(v));
        }
        // Operations on strong literals (Brian2 constants such as `second`) fold to strong
        // literals with numpy's semantics; WGSL's constant evaluator rejects some of them
        // (e.g. `sqrt` of an f64 literal).
        let literal = |x: &Expr| matches!(x.kind, ExprKind::Lit(_));
        let all_lit = match &e.kind {
            ExprKind::Unary(_, a) | ExprKind::Cast(a) => literal(a),
            ExprKind::Binary(_, a, b) => literal(a) && literal(b),
            ExprKind::Call(f, args) => {
                !f.uses_rng() && !matches!(f, Func::User(_)) && args.iter().all(literal)
            }
            _ => false,
        };
        if all_lit && let Some(v) = fold(&e) {
            return Ok(strong(Expr {
                ty: e.ty,
                kind: ExprKind::Lit(v.cast(e.ty)),
            }));
        }
        Ok(strong(e))
    }

    fn binary(
        &mut self,
        op: BinOp,
        a: Expr,
        ta: Typed,
        b: Expr,
        tb: Typed,
    ) -> Result<(Expr, Typed), LowerError> {
        let both_weak = ta.info.weak && tb.info.weak;
        let mk = |op, ty, a: Expr, b: Expr| Expr {
            ty,
            kind: ExprKind::Binary(op, Box::new(cast(a, ty)), Box::new(cast(b, ty))),
        };
        let out = match op {
            BinOp::And | BinOp::Or => {
                if a.ty != Type::Bool || b.ty != Type::Bool {
                    return Err(self.err(format!(
                        "`{}` needs boolean operands, got {} and {}",
                        if op == BinOp::And { "and" } else { "or" },
                        a.ty,
                        b.ty
                    )));
                }
                let bop = if op == BinOp::And {
                    BinaryOp::And
                } else {
                    BinaryOp::Or
                };
                mk(bop, Type::Bool, a, b)
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul => {
                let t = promote(ta.info, tb.info, self.kernel.float);
                let ty = if both_weak && a.ty == Type::Bool && b.ty == Type::Bool {
                    Type::I64 // Python: True + True == 2
                } else {
                    t.ty
                };
                if ty == Type::Bool {
                    // numpy: bool + bool is `or`, bool * bool is `and`, bool - bool an error.
                    match op {
                        BinOp::Add => mk(BinaryOp::Or, ty, a, b),
                        BinOp::Mul => mk(BinaryOp::And, ty, a, b),
                        _ => return Err(self.err("cannot subtract booleans")),
                    }
                } else {
                    let bop = match op {
                        BinOp::Add => BinaryOp::Add,
                        BinOp::Sub => BinaryOp::Sub,
                        _ => BinaryOp::Mul,
                    };
                    mk(bop, ty, a, b)
                }
            }
            BinOp::Div => {
                let t = promote(ta.info, tb.info, self.kernel.float);
                // Brian2 uses true division; integers divide in the model's float type.
                let ty = if t.ty.is_float() {
                    t.ty
                } else if both_weak {
                    Type::F64
                } else {
                    self.kernel.float
                };
                mk(BinaryOp::Div, ty, a, b)
            }
            BinOp::FloorDiv | BinOp::Mod => {
                let t = promote(ta.info, tb.info, self.kernel.float);
                let ty = if t.ty == Type::Bool { Type::I32 } else { t.ty };
                let bop = if op == BinOp::Mod {
                    BinaryOp::Mod
                } else {
                    BinaryOp::FloorDiv
                };
                mk(bop, ty, a, b)
            }
            BinOp::Pow => {
                let t = promote(ta.info, tb.info, self.kernel.float);
                let mut ty = if t.ty == Type::Bool { Type::I32 } else { t.ty };
                if ty.is_int()
                    && let Some(v) = lit_of(&b)
                    && v.as_i64() < 0
                {
                    if both_weak {
                        ty = Type::F64; // Python: 2 ** -1 == 0.5
                    } else {
                        return Err(self.err(
                                "integers to negative integer powers are not allowed (write the base as a float, e.g. 2.0)",
                            ));
                    }
                }
                if ty.is_float()
                    && !both_weak
                    && let Some(p) = lit_of(&b)
                {
                    // numpy's fast paths for scalar exponents (exact, and what numpy
                    // actually computes): x**2 = x*x, x**0.5 = sqrt, x**-1 = 1/x, x**1 = x.
                    let a = cast(a, ty);
                    let one = cast(weak(Value::F64(1.0)).0, ty);
                    let out = match p.as_f64() {
                        2.0 => Some(mk(BinaryOp::Mul, ty, a.clone(), a.clone())),
                        0.5 => Some(Expr {
                            ty,
                            kind: ExprKind::Call(Func::Sqrt, vec![a.clone()]),
                        }),
                        -1.0 => Some(mk(BinaryOp::Div, ty, one, a.clone())),
                        1.0 => Some(a.clone()),
                        0.0 => Some(one),
                        _ => None,
                    };
                    let out = out.unwrap_or_else(|| mk(BinaryOp::Pow, ty, a, b));
                    return self.maybe_fold(out, false);
                }
                mk(BinaryOp::Pow, ty, a, b)
            }
        };
        self.maybe_fold(out, both_weak)
    }

    fn call(&mut self, name: &str, args: &[parse::Expr]) -> Result<(Expr, Typed), LowerError> {
        // Brian2 functions generated for this code object (binomial, user functions).
        let spec_fn = self.spec.functions.iter().find(|f| match f {
            FunctionSpec::Binomial { name: n, .. }
            | FunctionSpec::User { name: n, .. }
            | FunctionSpec::TimedArray { name: n, .. } => n == name,
        });
        if let Some(f) = spec_fn {
            return match f {
                FunctionSpec::TimedArray {
                    values,
                    dt,
                    k,
                    rows,
                    cols,
                    ..
                } => self.timed_array(name, args, values, *dt, *k, *rows, *cols),
                FunctionSpec::Binomial { n, p, exact, .. } => {
                    // Brian2 types it as float: the normal approximation is not rounded.
                    let site = self.next_site();
                    let f = Func::Binomial {
                        site,
                        n: *n,
                        p: *p,
                        exact: *exact,
                    };
                    Ok(strong(Expr {
                        ty: self.kernel.float,
                        kind: ExprKind::Call(f, vec![]),
                    }))
                }
                FunctionSpec::User {
                    args: arg_types,
                    ret,
                    ..
                } => {
                    if arg_types.len() != args.len() {
                        return Err(self.err(format!(
                            "function '{name}' takes {} arguments, got {}",
                            arg_types.len(),
                            args.len()
                        )));
                    }
                    let idx = self
                        .kernel
                        .user_functions
                        .iter()
                        .position(|u| u.name == name)
                        .unwrap() as u32;
                    let mut lowered = Vec::new();
                    for (a, ty) in args.iter().zip(arg_types.clone()) {
                        let (e, _) = self.expr(a)?;
                        lowered.push(cast(e, ty));
                    }
                    Ok(strong(Expr {
                        ty: *ret,
                        kind: ExprKind::Call(Func::User(idx), lowered),
                    }))
                }
            };
        }
        let Some(func) = Func::builtin(name) else {
            return Err(self.err(format!(
                "unknown function '{name}': user functions need an implementation for the wgpu device"
            )));
        };
        let mut lowered = Vec::new();
        for a in args {
            lowered.push(self.expr(a)?);
        }
        let arity = func.arity().unwrap_or(lowered.len());
        // rand(_vectorisation_idx) and friends: Brian2 may pass the index; it is implicit here.
        if func.uses_rng() && lowered.len() == arity + 1 {
            lowered.pop();
        }
        if lowered.len() != arity {
            return Err(self.err(format!(
                "{name}() takes {arity} argument(s), got {}",
                lowered.len()
            )));
        }
        let all_weak = lowered.iter().all(|(_, t)| t.info.weak);
        let call = |func, ty, args: Vec<Expr>| Expr {
            ty,
            kind: ExprKind::Call(func, args),
        };
        let out = match func {
            Func::Rand { .. } | Func::Randn { .. } => {
                let site = self.next_site();
                let f = if matches!(func, Func::Rand { .. }) {
                    Func::Rand { site }
                } else {
                    Func::Randn { site }
                };
                return Ok(strong(call(f, self.kernel.float, vec![])));
            }
            Func::Poisson { .. } => {
                let site = self.next_site();
                let (a, t) = lowered.pop().unwrap();
                let fty = float_result(t.info, self.kernel.float);
                return Ok(strong(call(
                    Func::Poisson { site },
                    Type::I32,
                    vec![cast(a, fty)],
                )));
            }
            Func::Timestep => {
                let mut it = lowered.into_iter();
                let (t, _) = it.next().unwrap();
                let (dt, _) = it.next().unwrap();
                return Ok(strong(call(
                    func,
                    Type::I64,
                    vec![cast(t, Type::F64), cast(dt, Type::F64)],
                )));
            }
            Func::Int => {
                let (a, _) = lowered.pop().unwrap();
                call(func, Type::I32, vec![a])
            }
            Func::Clip => {
                let f = self.kernel.float;
                let t = promote(
                    promote(lowered[0].1.info, lowered[1].1.info, f),
                    lowered[2].1.info,
                    f,
                );
                let ty = if t.ty == Type::Bool { Type::I32 } else { t.ty };
                let args = lowered.into_iter().map(|(e, _)| cast(e, ty)).collect();
                call(func, ty, args)
            }
            Func::Where => {
                let f = self.kernel.float;
                let ty = promote(lowered[1].1.info, lowered[2].1.info, f).ty;
                let mut it = lowered.into_iter().map(|(e, _)| e);
                let c = cast(it.next().unwrap(), Type::Bool);
                let (a, b) = (it.next().unwrap(), it.next().unwrap());
                call(func, ty, vec![c, cast(a, ty), cast(b, ty)])
            }
            // floor/ceil return floats, as Brian2 declares them and its C++/Cython targets
            // compute them (its numpy target alone casts to int32).
            Func::Ceil | Func::Floor => {
                let (a, t) = lowered.pop().unwrap();
                let ty = float_result(t.info, self.kernel.float);
                call(func, ty, vec![cast(a, ty)])
            }
            Func::Abs | Func::Sign => {
                let (a, t) = lowered.pop().unwrap();
                let ty = match (func, t.info.ty) {
                    (Func::Abs, Type::Bool) => Type::Bool,
                    (_, Type::Bool) => Type::I32,
                    (_, ty) => ty,
                };
                call(func, ty, vec![cast(a, ty)])
            }
            _ => {
                let (a, t) = lowered.pop().unwrap();
                let ty = float_result(t.info, self.kernel.float);
                call(func, ty, vec![cast(a, ty)])
            }
        };
        if all_weak {
            // numpy functions of Python scalars return numpy scalars: strong.
            let v = fold(&out).ok_or_else(|| self.err("cannot evaluate this literal call"))?;
            let is_float_fn = !matches!(func, Func::Abs | Func::Sign | Func::Clip | Func::Where);
            let (e, t) = weak(v);
            return Ok(if is_float_fn { strong(e) } else { (e, t) });
        }
        self.maybe_fold(out, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn timed_array(
        &mut self,
        name: &str,
        args: &[parse::Expr],
        values: &str,
        dt: f64,
        k: i64,
        rows: i32,
        cols: i32,
    ) -> Result<(Expr, Typed), LowerError> {
        let want = if cols > 1 { 2 } else { 1 };
        if args.len() != want {
            return Err(self.err(format!(
                "TimedArray '{name}' takes {want} argument(s), got {}",
                args.len()
            )));
        }
        let var = self
            .spec
            .variables
            .iter()
            .position(|v| v.name == values)
            .ok_or_else(|| self.err(format!("table '{values}' of '{name}' is missing")))?;
        self.kernel.vars[var].read = true;
        let f64_ = |v: f64| Expr {
            ty: Type::F64,
            kind: ExprKind::Lit(Value::F64(v)),
        };
        let i32_ = |v: i32| Expr {
            ty: Type::I32,
            kind: ExprKind::Lit(Value::I32(v)),
        };
        let bin = |op: BinaryOp, ty: Type, a: Expr, b: Expr| Expr {
            ty,
            kind: ExprKind::Binary(op, Box::new(a), Box::new(b)),
        };
        let call = |f: Func, ty: Type, args: Vec<Expr>| Expr {
            ty,
            kind: ExprKind::Call(f, args),
        };
        // In f64 whatever the model's float type: time must not lose steps.
        let (t, _) = self.expr(&args[0])?;
        let steps = bin(
            BinaryOp::Div,
            Type::F64,
            cast(t, Type::F64),
            f64_(dt / k as f64),
        );
        let rounded = call(
            Func::Floor,
            Type::F64,
            vec![bin(BinaryOp::Add, Type::F64, steps, f64_(0.5))],
        );
        let row = call(
            Func::Int,
            Type::I32,
            vec![bin(BinaryOp::Div, Type::F64, rounded, f64_(k as f64))],
        );
        let mut index = call(Func::Clip, Type::I32, vec![row, i32_(0), i32_(rows - 1)]);
        if cols > 1 {
            let (i, _) = self.expr(&args[1])?;
            let col = cast(i, Type::I32);
            index = bin(
                BinaryOp::Add,
                Type::I32,
                bin(BinaryOp::Mul, Type::I32, index, i32_(cols)),
                col,
            );
        }
        let ty = self.spec.variables[var].ty;
        Ok(strong(Expr {
            ty,
            kind: ExprKind::Gather(var, Box::new(index)),
        }))
    }

    fn next_site(&mut self) -> u32 {
        self.kernel.rng_sites += 1;
        self.kernel.rng_sites - 1
    }

    fn statement(&mut self, s: &parse::Statement) -> Result<(), LowerError> {
        self.stmt_text = s.text.clone();
        let (value, tv) = self.expr(&s.expr)?;
        let existing = self.names.get(&s.target).copied();
        let aug = match s.op {
            AssignOp::Add => Some(BinOp::Add),
            AssignOp::Sub => Some(BinOp::Sub),
            AssignOp::Mul => Some(BinOp::Mul),
            AssignOp::Div => Some(BinOp::Div),
            AssignOp::Set | AssignOp::Declare => None,
        };
        let Some(local) = existing else {
            if aug.is_some() {
                return Err(self.err(format!("'{}' is updated before it is assigned", s.target)));
            }
            if self.weak_consts.contains_key(&s.target) {
                return Err(self.err(format!("'{}' is assigned twice", s.target)));
            }
            // A new temporary.
            if tv.info.weak && self.assign_counts.get(&s.target) == Some(&1) {
                let v = lit_of(&value).expect("weak expressions are folded");
                self.weak_consts.insert(s.target.clone(), v);
                return Ok(());
            }
            let ty = if tv.info.weak {
                match value.ty {
                    Type::F64 => self.kernel.float,
                    Type::I64 => Type::I32,
                    t => t,
                }
            } else {
                value.ty
            };
            let id = self.add_local(&s.target, ty, None);
            self.push(id, cast(value, ty), None);
            return Ok(());
        };
        // `:=` on a name the template binds to an array (monitors' `_to_record_*`
        // outputs) writes that array.
        let ty = self.kernel.locals[local].ty;
        let value = match aug {
            Some(op) => {
                let (cur, tc) = self.name(&s.target)?;
                self.binary(op, cur, tc, value, tv)?.0
            }
            None => value,
        };
        let mut cond = None;
        if let Some(var) = self.kernel.locals[local].var {
            let vspec = &self.spec.variables[var];
            if vspec.constant.is_some() {
                return Err(self.err(format!("cannot write to the constant '{}'", s.target)));
            }
            if self.in_scalar && self.kernel.vars[var].index != Index::Zero {
                return Err(self.err(format!(
                    "scalar code writes '{}', which is not a scalar variable",
                    s.target
                )));
            }
            if let Some(c) = vspec.conditional_write.clone() {
                let (ce, _) = self.name(&c)?;
                if ce.ty != Type::Bool {
                    return Err(self.err(format!("conditional write flag '{c}' is not boolean")));
                }
                cond = Some(ce);
            }
            self.kernel.vars[var].written = true;
        }
        self.push(local, cast(value, ty), cond);
        Ok(())
    }

    fn push(&mut self, local: LocalId, value: Expr, cond: Option<Expr>) {
        let s = Stmt::Assign { local, value, cond };
        if self.in_scalar {
            self.kernel.scalar.push(s);
        } else {
            self.kernel.vector.push(s);
        }
    }
}

/// Lower a code object's statements into a [`Kernel`].
pub fn lower(spec: &KernelSpec) -> Result<Kernel, LowerError> {
    if !spec.float.is_float() {
        return Err(LowerError::Spec {
            kernel: spec.name.clone(),
            message: format!("float type must be float32 or float64, not {}", spec.float),
        });
    }
    let parse = |code: &str| {
        parse::parse_statements(code).map_err(|source| LowerError::Parse {
            kernel: spec.name.clone(),
            source,
        })
    };
    let scalar = parse(&spec.scalar_code)?;
    let vector = parse(&spec.vector_code)?;
    let mut assign_counts = HashMap::new();
    for s in scalar.iter().chain(&vector) {
        *assign_counts.entry(s.target.clone()).or_insert(0) += 1;
    }
    let mut l = Lowerer {
        spec,
        kernel: Kernel {
            name: spec.name.clone(),
            template: spec.template.clone(),
            float: spec.float,
            vars: Vec::new(),
            locals: Vec::new(),
            scalar: Vec::new(),
            vector: Vec::new(),
            user_functions: Vec::new(),
            rng_sites: 0,
        },
        names: HashMap::new(),
        weak_consts: HashMap::new(),
        assign_counts,
        stmt_text: String::new(),
        in_scalar: true,
    };
    l.setup_vars()?;
    // Brian2's loop-invariant hoisting puts `x := <scalar expression>` into scalar code
    // when it does not know `x` is a per-element array (a monitor's record, a summed
    // variable's term): such a write belongs at the start of the vector code.
    let per_element = |s: &parse::Statement| {
        spec.variables
            .iter()
            .any(|v| v.name == s.target && v.constant.is_none() && v.index != "0")
    };
    let (hoisted, scalar): (Vec<_>, Vec<_>) = scalar.into_iter().partition(per_element);
    for s in &scalar {
        l.statement(s)?;
    }
    l.in_scalar = false;
    for s in hoisted.iter().chain(&vector) {
        l.statement(s)?;
    }
    let kernel = l.kernel;
    super::validate(&kernel).map_err(|e| LowerError::Spec {
        kernel: spec.name.clone(),
        message: format!("internal error, IR failed validation: {e}"),
    })?;
    Ok(kernel)
}

/// Evaluate a literal-only expression (Python semantics for weak operands).
fn fold(e: &Expr) -> Option<Value> {
    super::fold::eval(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(vars: Vec<VariableSpec>, scalar: &str, vector: &str) -> KernelSpec {
        KernelSpec {
            scalar_code: scalar.into(),
            ..KernelSpec::vector("statemonitor", vars, vector)
        }
    }

    #[test]
    fn scalar_writes_to_per_element_arrays_move_to_vector_code() {
        let shared = VariableSpec {
            index: "0".into(),
            ..VariableSpec::array("x", Type::F64)
        };
        let record = VariableSpec {
            index: "_pos".into(),
            ..VariableSpec::array("_to_record_x", Type::F64)
        };
        let k = lower(&spec(vec![shared, record], "_to_record_x := x", "")).unwrap();
        assert!(k.scalar.is_empty());
        assert_eq!(k.vector.len(), 1);
        assert!(k.vars[1].written);
    }

    #[test]
    fn functions_of_strong_literals_fold() {
        let second = VariableSpec {
            constant: Some(Value::F64(1.0)),
            ..VariableSpec::array("second", Type::F64)
        };
        let k = lower(&spec(
            vec![second, VariableSpec::array("y", Type::F64)],
            "",
            "y = sqrt(second) * second ** 0.5 * y",
        ))
        .unwrap();
        let mut calls = 0;
        k.any_expr(&mut |e| {
            calls += matches!(e.kind, ExprKind::Call(..)) as usize;
            false
        });
        assert_eq!(calls, 0, "{:?}", k.vector);
    }
}
