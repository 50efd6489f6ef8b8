//! Writes one kernel as a WGSL compute shader: one invocation per element, Brian2's
//! load → statements → store shape, explicit casts everywhere (WGSL converts nothing).

use std::collections::BTreeSet;
use std::fmt::Write;

use super::polyfill::{self, Helper, wgsl_type};
use super::{Binding, Error, Options, WgslKernel};
use crate::ir::{
    BinaryOp, CmpOp, Expr, ExprKind, Func, Index, Kernel, Stmt, Type, UnaryOp, Value, VarKind,
};

/// Largest integer exponent written as a product (`b2_powi_f64`); the interpreter's
/// `cpu::math::POWI_MAX`, so that both backends round such powers alike.
pub const POWI_MAX: i32 = 8;

struct Writer<'k> {
    k: &'k Kernel,
    /// Read the random stream's step from `b2_step` (the clock's timestep array).
    step_binding: bool,
    /// Compute float32 transcendentals with the f64 library (device has f64).
    f32_via_f64: bool,
    /// float64 values are their bits, computed by `shaders/soft_f64.wgsl` (the device
    /// has no f64, [`Options::f64`]).
    soft: bool,
    helpers: BTreeSet<Helper>,
    /// Batched layout: arrays live in typed arenas.
    arena: bool,
    /// Locals of atomically accumulated variables: (accumulate function, element index).
    atomic: Vec<(usize, String, String)>,
    /// The variable whose binding each variable uses (see [`Options::alias`]).
    alias: Vec<usize>,
    /// Locals of variables written only under conditions (Brian2's conditional writes,
    /// the threshold's `lastspike`): a flag per local records whether any write happened,
    /// and the store is skipped otherwise (no rewrite of unchanged values).
    masked: Vec<(usize, String)>,
}

/// Storage type of an array element: booleans are stored as u32.
fn storage_type(t: Type) -> &'static str {
    match t {
        Type::Bool => "u32",
        t => wgsl_type(t),
    }
}

/// The WGSL type of values of type `t`: float64 as its bits where it is emulated.
fn value_type(t: Type, soft: bool) -> &'static str {
    if soft && t == Type::F64 {
        "vec2<u32>"
    } else {
        wgsl_type(t)
    }
}

/// [`storage_type`] where float64 may be emulated (same bytes either way).
fn stored_type(t: Type, soft: bool) -> &'static str {
    match t {
        Type::Bool => "u32",
        t => value_type(t, soft),
    }
}

/// The bits of `x` as a `vec2<u32>` literal (low word first): exact for every value.
fn soft_lit(x: f64) -> String {
    let b = x.to_bits();
    format!("vec2<u32>({:#x}u, {:#x}u)", b as u32, (b >> 32) as u32)
}

fn local_name(k: &Kernel, id: usize) -> String {
    // Brian2 names may clash with WGSL keywords; a prefix avoids that.
    format!("l{}_{}", id, k.locals[id].name.trim_start_matches('_'))
}

fn array_name(k: &Kernel, v: usize) -> String {
    format!("a{}_{}", v, k.vars[v].name.trim_start_matches('_'))
}

/// The arena holding arrays of type `t` in batched (arena) mode.
pub fn arena_name(t: Type) -> String {
    format!("b2_arena_{}", storage_type(t))
}

/// `array[index]` in either layout; in arena mode the array's offset is in the params.
fn element(k: &Kernel, v: usize, index: &str, arena: bool) -> String {
    if arena {
        format!(
            "{}[b2_params[b2_pbase + {}u] + {index}]",
            arena_name(k.vars[v].ty),
            super::PARAM_HEADER as usize + v
        )
    } else {
        format!("{}[{index}]", array_name(k, v))
    }
}

impl Writer<'_> {
    /// What the float64 emulation cannot compute, named for the user.
    fn needs_f64(&self, what: impl Into<String>) -> Error {
        Error::NeedsF64 {
            kernel: self.k.name.clone(),
            what: what.into(),
        }
    }

    /// An emulated float64 operation: a call into shaders/soft_f64.wgsl.
    fn soft_call(&mut self, f: &str, args: &[&str]) -> String {
        self.helpers.insert(Helper::SoftF64);
        format!("{f}({})", args.join(", "))
    }

    fn lit(&mut self, v: Value) -> String {
        match v {
            Value::F64(x) if self.soft => soft_lit(x),
            Value::Bool(b) => b.to_string(),
            Value::I32(i) if i == i32::MIN => "bitcast<i32>(0x80000000u)".into(),
            Value::I32(i) => format!("({i}i)"),
            Value::I64(i) if i == i64::MIN => {
                "(i64(bitcast<i32>(0x80000000u)) * 4294967296li)".into()
            }
            Value::I64(i) => format!("({i}li)"),
            // Exact for every value, inf and NaN included (WGSL has no literals for those).
            Value::F32(x) => format!("bitcast<f32>({:#x}u)", x.to_bits()),
            Value::F64(x) => {
                if x.is_nan() {
                    self.helpers.insert(Helper::Nan(Type::F64));
                    "b2_nan_f64()".into()
                } else if x.is_infinite() {
                    self.helpers.insert(Helper::Inf(Type::F64));
                    if x > 0.0 {
                        "b2_inf_f64()".into()
                    } else {
                        "(-b2_inf_f64())".into()
                    }
                } else if x == 0.0 && x.is_sign_negative() {
                    "(-0.0lf)".into()
                } else {
                    // `{:e}` round-trips exactly; naga reads it as the nearest f64.
                    format!("({x:e}lf)")
                }
            }
        }
    }

    fn expr(&mut self, e: &Expr) -> Result<String, Error> {
        Ok(match &e.kind {
            ExprKind::Lit(v) => self.lit(*v),
            ExprKind::Local(id) => local_name(self.k, *id),
            ExprKind::ElemIndex => "i32(b2_i)".into(),
            ExprKind::Gather(v, index) => {
                let i = format!("u32({})", self.expr(index)?);
                load_expr(self.k, self.alias[*v], &i, self.arena)
            }
            ExprKind::Unary(UnaryOp::Neg, a) if self.soft && a.ty == Type::F64 => {
                let x = self.expr(a)?;
                self.soft_call("b2s_neg", &[&x])
            }
            ExprKind::Unary(UnaryOp::Neg, a) => format!("(-{})", self.expr(a)?),
            ExprKind::Unary(UnaryOp::Not, a) => format!("(!{})", self.expr(a)?),
            ExprKind::Cast(a) => self.cast(a, e.ty)?,
            ExprKind::Binary(op, a, b) if self.soft && a.ty == Type::F64 => {
                let (x, y) = (self.expr(a)?, self.expr(b)?);
                let (f, x, y) = match op {
                    BinaryOp::Add => ("b2s_add", &x, &y),
                    BinaryOp::Sub => ("b2s_sub", &x, &y),
                    BinaryOp::Mul => ("b2s_mul", &x, &y),
                    BinaryOp::Div => ("b2s_div", &x, &y),
                    BinaryOp::Cmp(CmpOp::Lt) => ("b2s_lt", &x, &y),
                    BinaryOp::Cmp(CmpOp::Le) => ("b2s_le", &x, &y),
                    BinaryOp::Cmp(CmpOp::Gt) => ("b2s_lt", &y, &x),
                    BinaryOp::Cmp(CmpOp::Ge) => ("b2s_le", &y, &x),
                    BinaryOp::Cmp(CmpOp::Eq) => ("b2s_eq", &x, &y),
                    BinaryOp::Cmp(CmpOp::Ne) => {
                        let eq = self.soft_call("b2s_eq", &[&x, &y]);
                        return Ok(format!("(!{eq})"));
                    }
                    BinaryOp::FloorDiv => return Err(self.needs_f64("floored division (//)")),
                    BinaryOp::Mod => return Err(self.needs_f64("the modulo (%)")),
                    BinaryOp::Pow => ("b2s_pow", &x, &y),
                    BinaryOp::And | BinaryOp::Or => {
                        unreachable!("logical operators take booleans")
                    }
                };
                self.soft_call(f, &[x, y])
            }
            ExprKind::Binary(op, a, b) => {
                let t = a.ty;
                let (x, y) = (self.expr(a)?, self.expr(b)?);
                let ty = wgsl_type(t);
                match op {
                    BinaryOp::Add => format!("({x} + {y})"),
                    BinaryOp::Sub => format!("({x} - {y})"),
                    BinaryOp::Mul => format!("({x} * {y})"),
                    BinaryOp::Div => format!("({x} / {y})"),
                    // Non-short-circuit forms: numpy evaluates both operands.
                    BinaryOp::And => format!("({x} & {y})"),
                    BinaryOp::Or => format!("({x} | {y})"),
                    BinaryOp::FloorDiv => {
                        self.helpers.insert(if t.is_float() {
                            Helper::FloorDivFloat(t)
                        } else {
                            Helper::FloorDivInt(t)
                        });
                        format!("b2_floordiv_{ty}({x}, {y})")
                    }
                    BinaryOp::Mod => {
                        self.helpers.insert(if t.is_float() {
                            Helper::ModFloat(t)
                        } else {
                            Helper::ModInt(t)
                        });
                        format!("b2_mod_{ty}({x}, {y})")
                    }
                    BinaryOp::Pow if t == Type::F32 && self.f32_via_f64 => {
                        self.helpers.insert(Helper::F64Math);
                        format!("f32(b2_pow_f64(f64({x}), f64({y})))")
                    }
                    // Small integer powers (Brian2 writes m*m*m as m**3) by a
                    // double-double product, as the interpreter computes them: pow's
                    // logarithm and exponential are the costliest f64 code there is.
                    BinaryOp::Pow
                        if t == Type::F64
                            && matches!(b.kind, ExprKind::Lit(Value::F64(k))
                                if k.fract() == 0.0 && (2.0..=POWI_MAX as f64).contains(&k)) =>
                    {
                        self.helpers.insert(Helper::F64Math);
                        let ExprKind::Lit(Value::F64(k)) = b.kind else {
                            unreachable!()
                        };
                        format!("b2_powi_f64({x}, {}i)", k as i32)
                    }
                    BinaryOp::Pow => {
                        self.helpers.insert(match t {
                            Type::F64 => Helper::F64Math,
                            Type::F32 => Helper::F32Math,
                            t => Helper::PowInt(t),
                        });
                        format!("b2_pow_{ty}({x}, {y})")
                    }
                    BinaryOp::Cmp(c) => {
                        let o = match c {
                            CmpOp::Lt => "<",
                            CmpOp::Le => "<=",
                            CmpOp::Gt => ">",
                            CmpOp::Ge => ">=",
                            CmpOp::Eq => "==",
                            CmpOp::Ne => "!=",
                        };
                        if *c == CmpOp::Ne && t.is_float() {
                            // Unordered: NaN != NaN is true, as in numpy.
                            format!("(!({x} == {y}))")
                        } else {
                            format!("({x} {o} {y})")
                        }
                    }
                }
            }
            ExprKind::Call(f, args) => self.call(*f, args, e.ty)?,
        })
    }

    fn cast(&mut self, a: &Expr, to: Type) -> Result<String, Error> {
        let from = a.ty;
        let x = self.expr(a)?;
        if self.soft && (from == Type::F64 || to == Type::F64) {
            let f = match (from, to) {
                (Type::F64, Type::F64) => return Ok(x),
                (Type::F64, Type::Bool) => {
                    let z = self.soft_call("b2s_is_zero", &[&x]);
                    return Ok(format!("(!{z})"));
                }
                (Type::F64, Type::I32) => "b2s_to_i32",
                (Type::F64, Type::I64) => "b2s_to_i64",
                (Type::F64, _) => "b2s_to_f32",
                (Type::Bool, _) => "b2s_from_bool",
                (Type::I32, _) => "b2s_from_i32",
                (Type::I64, _) => "b2s_from_i64",
                _ => "b2s_from_f32",
            };
            return Ok(self.soft_call(f, &[&x]));
        }
        Ok(match (from, to) {
            (_, Type::Bool) if from.is_float() => format!("(!({x} == 0.0{}))", fsuf(from)),
            (_, Type::Bool) => format!("({x} != {}(0))", wgsl_type(from)),
            (f, Type::I32) if f.is_float() => {
                self.helpers.insert(Helper::ToI32(f));
                self.helpers.insert(Helper::IsNan(f));
                format!("b2_to_i32_{}({x})", wgsl_type(f))
            }
            (f, Type::I64) if f.is_float() => {
                self.helpers.insert(Helper::ToI64(f));
                self.helpers.insert(Helper::IsNan(f));
                format!("b2_to_i64_{}({x})", wgsl_type(f))
            }
            (_, t) => format!("{}({x})", wgsl_type(t)),
        })
    }

    fn rng_counter(&self, site: u32) -> String {
        if self.step_binding {
            return format!(
                "b2_counter(b2_elem, b2_step[0], b2_step[1], 0u, b2_params[b2_pbase + 5u], {site}u), vec2<u32>(b2_params[b2_pbase + 3u], b2_params[b2_pbase + 4u])"
            );
        }
        format!(
            "b2_counter(b2_elem, b2_params[b2_pbase + 1u], b2_params[b2_pbase + 2u], 0u, b2_params[b2_pbase + 5u], {site}u), vec2<u32>(b2_params[b2_pbase + 3u], b2_params[b2_pbase + 4u])"
        )
    }

    /// A function of float64 values where float64 is emulated.
    fn soft_function(&mut self, f: Func, a: &[String], ty: Type) -> Result<String, Error> {
        let name = match f {
            Func::Timestep => "b2s_timestep",
            Func::Int => "b2s_to_i32",
            Func::Clip => "b2s_clip",
            Func::Sign => "b2s_sign_of",
            Func::Abs => "b2s_abs",
            Func::Floor => "b2s_floor",
            Func::Ceil => "b2s_ceil",
            Func::Exp => "b2s_exp",
            Func::Log => "b2s_log",
            Func::Exprel => "b2s_exprel",
            Func::Sqrt => "b2s_sqrt",
            Func::Sin => "b2s_sin",
            Func::Cos => "b2s_cos",
            Func::Tan => "b2s_tan",
            Func::Expm1 => "b2s_expm1",
            Func::Log1p => "b2s_log1p",
            Func::Log10 => "b2s_log10",
            Func::Sinh => "b2s_sinh",
            Func::Cosh => "b2s_cosh",
            Func::Tanh => "b2s_tanh",
            Func::Where => return Ok(format!("select({}, {}, {})", a[2], a[1], a[0])),
            // rand() and randn() are of the kernel's float type: float64 only in float64
            // kernels, which check_features refuses first.
            Func::Rand { .. } | Func::Randn { .. } if ty == Type::F64 => {
                return Err(self.needs_f64("random numbers (rand(), randn())"));
            }
            Func::User(i) => {
                let name = self.k.user_functions[i as usize].name.clone();
                return Err(self.needs_f64(format!("the user function {name}()")));
            }
            f => return Err(self.needs_f64(format!("{}()", f.name()))),
        };
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        Ok(self.soft_call(name, &refs))
    }

    fn call(&mut self, f: Func, args: &[Expr], ty: Type) -> Result<String, Error> {
        let a = args
            .iter()
            .map(|x| self.expr(x))
            .collect::<Result<Vec<_>, _>>()?;
        if self.soft && (ty == Type::F64 || args.iter().any(|x| x.ty == Type::F64)) {
            return self.soft_function(f, &a, ty);
        }
        let tn = wgsl_type(ty);
        let float_lib = |w: &mut Self, t: Type| {
            w.helpers.insert(if t == Type::F64 {
                Helper::F64Math
            } else {
                Helper::F32Math
            })
        };
        Ok(match f {
            Func::Rand { site } | Func::Randn { site } => {
                self.helpers.insert(if ty == Type::F64 {
                    Helper::PhiloxF64
                } else {
                    Helper::Philox
                });
                let which = if matches!(f, Func::Rand { .. }) {
                    "uniform"
                } else {
                    "normal"
                };
                format!("b2_{which}_{tn}({})", self.rng_counter(site))
            }
            Func::Poisson { site } => {
                let at = args[0].ty;
                if at == Type::F64 {
                    self.helpers.insert(Helper::PhiloxF64);
                    format!("b2_poisson({}, {})", self.rng_counter(site), a[0])
                } else {
                    self.helpers.insert(Helper::Philox);
                    format!("b2_poisson_f32({}, {})", self.rng_counter(site), a[0])
                }
            }
            Func::Binomial {
                site,
                n,
                p,
                exact: true,
            } => {
                self.helpers.insert(Helper::Philox);
                if self.k.float == Type::F64 {
                    self.helpers.insert(Helper::PhiloxF64);
                    format!(
                        "f64(b2_binomial_exact_f64({}, {n}i, {}))",
                        self.rng_counter(site),
                        self.lit(Value::F64(p))
                    )
                } else {
                    format!(
                        "f32(b2_binomial_exact_f32({}, {n}i, {}))",
                        self.rng_counter(site),
                        self.lit(Value::F32(p as f32))
                    )
                }
            }
            Func::Binomial { site, n, p, .. } => {
                self.helpers.insert(Helper::Philox);
                if self.k.float == Type::F64 {
                    // b2_binomial_value lives in the f64 part of the Philox library.
                    self.helpers.insert(Helper::PhiloxF64);
                    format!(
                        "b2_binomial_value({}, {n}i, {})",
                        self.rng_counter(site),
                        self.lit(Value::F64(p))
                    )
                } else {
                    format!(
                        "f32(b2_binomial_f32({}, {n}i, {}))",
                        self.rng_counter(site),
                        self.lit(Value::F32(p as f32))
                    )
                }
            }
            Func::User(i) => {
                let u = &self.k.user_functions[i as usize];
                if u.wgsl.is_none() {
                    return Err(Error::MissingImplementation {
                        kernel: self.k.name.clone(),
                        function: u.name.clone(),
                    });
                }
                // User WGSL may call our math libraries (b2_exp_f64, ...): offer them; the
                // tree shaker keeps only what the code reaches.
                self.helpers.insert(Helper::F64Math);
                self.helpers.insert(Helper::F32Math);
                format!("{}({})", u.name, a.join(", "))
            }
            Func::Timestep => {
                self.helpers.insert(Helper::Timestep);
                format!("b2_timestep({}, {})", a[0], a[1])
            }
            Func::Int => {
                let at = args[0].ty;
                if at.is_float() {
                    self.helpers.insert(Helper::ToI32(at));
                    self.helpers.insert(Helper::IsNan(at));
                    format!("b2_to_i32_{}({})", wgsl_type(at), a[0])
                } else {
                    format!("i32({})", a[0])
                }
            }
            Func::Clip => {
                self.helpers.insert(Helper::Clip(ty));
                if ty.is_float() {
                    self.helpers.insert(Helper::IsNan(ty));
                    self.helpers.insert(Helper::Nan(ty));
                }
                format!("b2_clip_{tn}({}, {}, {})", a[0], a[1], a[2])
            }
            Func::Where => format!("select({}, {}, {})", a[2], a[1], a[0]),
            Func::Sign => {
                self.helpers.insert(Helper::Sign(ty));
                format!("b2_sign_{tn}({})", a[0])
            }
            Func::Abs => {
                if ty == Type::Bool {
                    a[0].clone()
                } else {
                    format!("abs({})", a[0])
                }
            }
            Func::Ceil | Func::Floor if !ty.is_float() => a[0].clone(),
            Func::Ceil => format!("ceil({})", a[0]),
            Func::Floor => format!("floor({})", a[0]),
            Func::Sqrt => format!("sqrt({})", a[0]),
            f if ty == Type::F64 || self.f32_via_f64 => {
                // Never a builtin transcendental on f64 (Vulkan defines them for f32 only).
                // float32 goes through the f64 library too where the device has f64: the
                // drivers' f32 builtins are loose (Vulkan allows 2^-11 absolute for sin)
                // and wrong far from 0; rounding the f64 result is within 1 ulp of numpy.
                self.helpers.insert(Helper::F64Math);
                let name = match f {
                    Func::Arccos => "acos",
                    Func::Arcsin => "asin",
                    Func::Arctan => "atan",
                    f => f.name(),
                };
                if ty == Type::F32 {
                    format!("f32(b2_{name}_f64(f64({})))", a[0])
                } else {
                    format!("b2_{name}_f64({})", a[0])
                }
            }
            f => {
                let builtin = match f {
                    Func::Cos => "cos",
                    Func::Sin => "sin",
                    Func::Tan => "tan",
                    Func::Cosh => "cosh",
                    Func::Sinh => "sinh",
                    Func::Tanh => "tanh",
                    Func::Exp => "exp",
                    Func::Log => "log",
                    Func::Arccos => "acos",
                    Func::Arcsin => "asin",
                    Func::Arctan => "atan",
                    Func::Log10 | Func::Expm1 | Func::Exprel | Func::Log1p => {
                        float_lib(self, ty);
                        return Ok(format!("b2_{}_f32({})", f.name(), a[0]));
                    }
                    other => unreachable!("{other:?} handled above"),
                };
                format!("{builtin}({})", a[0])
            }
        })
    }

    fn stmt(&mut self, s: &Stmt, out: &mut String) -> Result<(), Error> {
        let Stmt::Assign { local, value, cond } = s;
        if let Some((_, func, index)) = self.atomic.iter().find(|(l, _, _)| l == local).cloned() {
            let (op, inc) = crate::ir::accumulation(value, *local)
                .expect("atomic variables are written by accumulation only");
            let inc = self.expr(inc)?;
            let inc = if op == BinaryOp::Sub {
                format!("(-{inc})")
            } else {
                inc
            };
            let call = format!("{func}({index}, {inc});");
            match cond {
                None => writeln!(out, "    {call}").unwrap(),
                Some(c) => {
                    let c = self.expr(c)?;
                    writeln!(out, "    if ({c}) {{ {call} }}").unwrap()
                }
            }
            return Ok(());
        }
        let v = self.expr(value)?;
        let name = local_name(self.k, *local);
        let flag = match self.masked.iter().find(|(l, _)| l == local) {
            Some((_, f)) => format!(" {f} = true;"),
            None => String::new(),
        };
        match cond {
            None => writeln!(out, "    {name} = {v};").unwrap(),
            Some(c) => {
                let c = self.expr(c)?;
                writeln!(out, "    if ({c}) {{ {name} = {v};{flag} }}").unwrap()
            }
        }
        Ok(())
    }
}

fn fsuf(t: Type) -> &'static str {
    if t == Type::F64 { "lf" } else { "f" }
}

/// `opts.alias`, or every variable its own binding (also in arena mode).
fn alias_map(k: &Kernel, opts: &Options, arena: bool) -> Vec<usize> {
    if arena || opts.alias.len() != k.vars.len() {
        (0..k.vars.len()).collect()
    } else {
        opts.alias.clone()
    }
}

/// The table of host-computed scalar values of type `t` ([`VarKind::Hoisted`]).
fn hoisted_table(t: Type, per_step: bool) -> String {
    let step = if per_step { "step_" } else { "" };
    format!("b2_hoisted_{step}{}", storage_type(t))
}

/// Host-computed values of type `t` per table row (per step, for `per_step` ones).
fn hoisted_count(k: &Kernel, t: Type, per_step: bool) -> Option<usize> {
    k.vars
        .iter()
        .filter_map(|v| match v.kind {
            VarKind::Hoisted { slot, per_step: p } if v.ty == t && p == per_step => {
                Some(slot as usize + 1)
            }
            _ => None,
        })
        .max()
}

/// Whether `k` reads values computed per step (their row comes from `b2_step`).
fn has_per_step_values(k: &Kernel) -> bool {
    k.vars
        .iter()
        .any(|v| matches!(v.kind, VarKind::Hoisted { per_step: true, .. }))
}

/// Hoisted tables up to this size are uniform buffers (every adapter allows 16 KiB):
/// lavapipe turns each storage load into a per-lane loop even at a constant index, while
/// a uniform load is one scalar read (27 loads per element: 1.1 ms against 0.1 ms per
/// 100,000 elements). Larger tables stay in storage.
const HOISTED_UNIFORM_BYTES: usize = 16384;

/// Values of type `t` per 16-byte row of a uniform hoisted table.
fn hoisted_per_row(t: Type) -> usize {
    16 / t.size()
}

/// Whether the run-invariant hoisted table of type `t` in `k` is a uniform buffer, and its
/// row count. (Per-step tables are larger and indexed by the step: storage.)
fn hoisted_uniform_rows(k: &Kernel, t: Type) -> Option<usize> {
    let count = hoisted_count(k, t, false)?;
    let rows = count.div_ceil(hoisted_per_row(t));
    (rows * 16 <= HOISTED_UNIFORM_BYTES).then_some(rows)
}

fn load_expr(k: &Kernel, v: usize, index: &str, arena: bool) -> String {
    let e = element(k, v, index, arena);
    if k.vars[v].ty == Type::Bool {
        format!("({e} != 0u)")
    } else {
        e
    }
}

/// The kernel's work for one element `b2_i` at iteration position `b2_k`, as
/// `fn {fname}(b2_i: u32, b2_k: u32, b2_pbase: u32)`, plus the
/// helpers it needs.
pub fn write_function(
    k: &Kernel,
    opts: &Options,
    fname: &str,
    arena: bool,
) -> Result<(String, BTreeSet<Helper>), Error> {
    let mut w = Writer {
        k,
        step_binding: opts.step_binding && !arena,
        f32_via_f64: opts.f64,
        soft: !opts.f64,
        helpers: BTreeSet::new(),
        arena,
        atomic: Vec::new(),
        alias: alias_map(k, opts, arena),
        masked: Vec::new(),
    };
    let atomic = |v: usize| !arena && opts.atomic.contains(&v);
    let mut body = String::new();
    // Declarations of every local, then loads of what is read.
    for (id, l) in k.locals.iter().enumerate() {
        writeln!(
            body,
            "    var {}: {};",
            local_name(k, id),
            value_type(l.ty, !opts.f64)
        )
        .unwrap();
    }
    for (v, var) in k.vars.iter().enumerate() {
        let mut writes = k
            .scalar
            .iter()
            .chain(&k.vector)
            .filter(|Stmt::Assign { local, .. }| *local == var.local);
        let guarded_only = writes.clone().next().is_some()
            && writes.all(|Stmt::Assign { cond, .. }| cond.is_some());
        if var.written && var.index != Index::Zero && guarded_only && !atomic(v) {
            let flag = format!("b2_wrote{v}");
            writeln!(body, "    var {flag} = false;").unwrap();
            w.masked.push((var.local, flag));
        }
    }
    let masked_locals: Vec<usize> = w.masked.iter().map(|(l, _)| *l).collect();
    let masked = |v: usize| masked_locals.contains(&k.vars[v].local);
    let index_of = |v: usize| -> String {
        match k.vars[v].index {
            Index::Elem => "b2_i".into(),
            Index::Zero => "0u".into(),
            Index::Pos if arena => "(b2_params[b2_pbase + 6u] + b2_k)".into(),
            Index::Pos => "(b2_posbase[0] + b2_k)".into(),
            Index::Var(iv) => format!("u32({})", local_name(k, k.vars[iv].local)),
        }
    };
    for &v in opts.atomic.iter().filter(|_| !arena) {
        w.atomic.push((
            k.vars[v].local,
            format!("b2_acc_{}", array_name(k, w.alias[v])),
            index_of(v),
        ));
    }
    let gsl = opts.gsl.as_ref().filter(|_| !arena);
    let gsl_state = |v: usize| gsl.and_then(|g| g.states.iter().position(|&s| s == v));
    let gsl_deriv = |v: usize| gsl.and_then(|g| g.derivs.iter().position(|&s| s == v));
    let mut order: Vec<usize> = (0..k.vars.len()).collect();
    order.sort_by_key(|&v| matches!(k.vars[v].index, Index::Var(_)));
    for &v in &order {
        let var = &k.vars[v];
        let local = local_name(k, var.local);
        match &var.kind {
            VarKind::Constant(c) => {
                let lit = w.lit(*c);
                writeln!(body, "    {local} = {lit};").unwrap();
            }
            VarKind::Hoisted { .. } if arena => {
                return Err(Error::Unsupported(format!(
                    "host-computed scalar '{}' in a batched module",
                    var.name
                )));
            }
            &VarKind::Hoisted { slot, per_step } => {
                let table = hoisted_table(var.ty, per_step);
                let e = if per_step {
                    // Row = the step's position in its batch (word 2 of the step buffer).
                    let count = hoisted_count(k, var.ty, true).unwrap_or(1);
                    format!("{table}[b2_step[2] * {count}u + {slot}u]")
                } else if hoisted_uniform_rows(k, var.ty).is_some() {
                    let per = hoisted_per_row(var.ty) as u32;
                    if w.soft && var.ty == Type::F64 {
                        // Rows of vec4<u32>: two doubles' bits each.
                        let half = if slot % per == 0 { "xy" } else { "zw" };
                        format!("{table}[{}u].{half}", slot / per)
                    } else {
                        format!("{table}[{}u][{}u]", slot / per, slot % per)
                    }
                } else {
                    format!("{table}[{slot}u]")
                };
                let e = if var.ty == Type::Bool {
                    format!("({e} != 0u)")
                } else {
                    e
                };
                writeln!(body, "    {local} = {e};").unwrap();
            }
            // GSL: the stage's state and time come from the driver, in private memory.
            VarKind::Array if gsl_state(v).is_some() => {
                let d = gsl_state(v).unwrap_or(0);
                writeln!(body, "    {local} = b2_gsl_y[{d}];").unwrap();
            }
            VarKind::Array if gsl.is_some_and(|g| g.time == v) => {
                writeln!(body, "    {local} = b2_gsl_ts;").unwrap();
            }
            VarKind::Array if gsl_deriv(v).is_some() => {}
            VarKind::Array if atomic(v) => {}
            // A variable written only under conditions and never read needs no load: its
            // store happens only where a write did. Nor does one assigned before any read.
            VarKind::Array if (var.read || (var.written && !masked(v))) && k.reads_initial(v) => {
                writeln!(
                    body,
                    "    {local} = {};",
                    load_expr(k, w.alias[v], &index_of(v), arena)
                )
                .unwrap();
            }
            VarKind::Array => {}
        }
    }
    for s in k.scalar.iter().chain(&k.vector) {
        w.stmt(s, &mut body)?;
    }
    for v in 0..k.vars.len() {
        let var = &k.vars[v];
        if !var.written || atomic(v) {
            continue;
        }
        let local = local_name(k, var.local);
        if let Some(d) = gsl_deriv(v) {
            writeln!(body, "    b2_gsl_k[{d}] = f64({local});").unwrap();
            continue;
        }
        let val = if var.ty == Type::Bool {
            format!("select(0u, 1u, {local})")
        } else {
            local
        };
        let store = format!("{} = {val};", element(k, w.alias[v], &index_of(v), arena));
        let flag = w
            .masked
            .iter()
            .find(|(l, _)| *l == var.local)
            .map(|(_, f)| f);
        match (var.index, flag) {
            // The event flag is stored only where it is set: the compaction clears every
            // flag it finds set, so the flags are all clear between steps, and a step
            // without events writes nothing.
            _ if opts.count_tiles == Some(v) && !arena => {
                writeln!(body, "    if ({}) {{ {store} }}", local_name(k, var.local)).unwrap()
            }
            // Every invocation computed the same value; one writes it.
            (Index::Zero, _) => writeln!(body, "    if (b2_i == 0u) {{ {store} }}").unwrap(),
            (_, Some(flag)) => writeln!(body, "    if ({flag}) {{ {store} }}").unwrap(),
            _ => writeln!(body, "    {store}").unwrap(),
        }
    }

    if let (Some(v), false) = (opts.count_tiles, arena) {
        // Step 1 of the event compaction (shaders/neurons.wgsl, `b2_spk_count`): count
        // this element's event into its tile and its super-tile, in the counters' half of
        // this step's parity.
        let (t, s) = (super::COMPACT_TILE, super::COMPACT_SUPER);
        let n = element_count(opts);
        writeln!(
            body,
            "    if ({}) {{
        let b2_nt = ({n} + {}u) / {t}u;
        let b2_ns = (b2_nt + {}u) / {s}u;
        let b2_par = b2_step[0] & 1u;
        atomicAdd(&b2_tiles[b2_par * b2_nt + b2_i / {t}u], 1u);
        atomicAdd(&b2_tiles[2u * b2_nt + b2_par * b2_ns + b2_i / {}u], 1u);
    }}",
            local_name(k, k.vars[v].local),
            t - 1,
            s - 1,
            t * s
        )
        .unwrap();
    }
    let mut f = String::new();
    writeln!(
        f,
        "{}{}' (template {})",
        super::KERNEL_NAME_COMMENT,
        k.name,
        k.template
    )
    .unwrap();
    writeln!(
        f,
        "fn {fname}(b2_i: u32, b2_k: u32, b2_pbase: u32) {{\n    let b2_elem = b2_i;\n{body}}}"
    )
    .unwrap();
    Ok((f, w.helpers))
}

/// The number of elements of an element-mode kernel: a constant where the options give
/// it ([`Options::elements`]), else the parameter (a load per invocation, which lavapipe
/// turns into a loop over the lanes).
fn element_count(opts: &Options) -> String {
    match opts.elements {
        Some(n) => format!("{n}u"),
        None => "b2_params[0]".into(),
    }
}

fn main_fn(wg: u32, dispatch: &str) -> String {
    format!(
        "@compute @workgroup_size({wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
{dispatch}}}\n"
    )
}

/// Write `kernel` as a WGSL module with one storage binding per array.
pub fn write(k: &Kernel, opts: &Options) -> Result<WgslKernel, Error> {
    let soft = !opts.f64;
    if soft && opts.gsl.is_some() {
        // The driver's error control and step sizes are float64 throughout.
        return Err(Error::NeedsF64 {
            kernel: k.name.clone(),
            what: "a GSL state update".into(),
        });
    }
    let (func, helpers) = write_function(k, opts, "b2_kernel", false)?;
    let mut src = String::new();
    let mut bindings = Vec::new();
    writeln!(
        src,
        "// params: n, step_lo, step_hi, seed_lo, seed_hi, kernel_id, record base\n@group(0) @binding(0) var<storage, read> b2_params: array<u32>;"
    )
    .unwrap();
    let mut binding = 1u32;
    let alias = alias_map(k, opts, false);
    for (v, var) in k.vars.iter().enumerate() {
        // One binding per array: variables sharing it (`A_pre`, `A_post`) use the first's.
        let group = || (0..k.vars.len()).filter(|&u| alias[u] == v);
        let gsl_state = opts.gsl.as_ref().is_some_and(|g| g.states.contains(&v));
        let gsl_private = opts
            .gsl
            .as_ref()
            .is_some_and(|g| g.time == v || g.derivs.contains(&v));
        let used = group().any(|u| k.vars[u].read || k.vars[u].written) || gsl_state;
        if alias[v] != v || !matches!(var.kind, VarKind::Array) || !used || gsl_private {
            continue;
        }
        // The GSL driver loads and stores the integrated variables.
        let written = group().any(|u| k.vars[u].written) || gsl_state;
        let access = if written { "read_write" } else { "read" };
        let name = array_name(k, v);
        if opts.atomic.contains(&v) {
            // Floats are added by compare-and-swap on their bits, unless the device adds
            // f32 natively (SHADER_FLOAT32_ATOMIC).
            let (cell, add) = match var.ty {
                Type::I32 => ("i32", None),
                Type::F32 if opts.float_atomics => ("f32", None),
                Type::F32 => ("u32", Some(("f32", "u32"))),
                Type::F64 if soft => {
                    return Err(Error::NeedsF64 {
                        kernel: k.name.clone(),
                        what: format!("an accumulation into '{}'", var.name),
                    });
                }
                Type::F64 => ("u64", Some(("f64", "u64"))),
                t => return Err(Error::Unsupported(format!("atomic accumulation of {t:?}"))),
            };
            writeln!(
                src,
                "@group(0) @binding({binding}) var<storage, read_write> {name}: array<atomic<{cell}>>;"
            )
            .unwrap();
            match add {
                None => writeln!(
                    src,
                    "fn b2_acc_{name}(i: u32, x: {cell}) {{ atomicAdd(&{name}[i], x); }}"
                ),
                Some((f, u)) => writeln!(
                    src,
                    "fn b2_acc_{name}(i: u32, x: {f}) {{
    var old = atomicLoad(&{name}[i]);
    loop {{
        let r = atomicCompareExchangeWeak(&{name}[i], old, bitcast<{u}>(bitcast<{f}>(old) + x));
        if (r.exchanged) {{ break; }}
        old = r.old_value;
    }}
}}"
                ),
            }
            .unwrap();
        } else {
            writeln!(
                src,
                "@group(0) @binding({binding}) var<storage, {access}> {name}: array<{}>;",
                stored_type(var.ty, soft)
            )
            .unwrap();
        }
        bindings.push(Binding {
            var: v,
            binding,
            read_only: !written,
        });
        binding += 1;
    }
    // Host-computed scalar values: one read-only table per type (and per kind: values of
    // the run, values per step), bound under the first variable of that type and kind.
    let mut hoisted_types = Vec::new();
    for (v, var) in k.vars.iter().enumerate() {
        let VarKind::Hoisted { per_step, .. } = var.kind else {
            continue;
        };
        if !hoisted_types.contains(&(var.ty, per_step)) {
            hoisted_types.push((var.ty, per_step));
            let uniform = if per_step {
                None
            } else {
                hoisted_uniform_rows(k, var.ty)
            };
            let (space, ty) = match uniform {
                // Two doubles' bits per 16-byte row.
                Some(rows) if soft && var.ty == Type::F64 => {
                    ("uniform", format!("array<vec4<u32>, {rows}>"))
                }
                Some(rows) => (
                    "uniform",
                    format!(
                        "array<vec{}<{}>, {rows}>",
                        hoisted_per_row(var.ty),
                        storage_type(var.ty)
                    ),
                ),
                None => (
                    "storage, read",
                    format!("array<{}>", stored_type(var.ty, soft)),
                ),
            };
            writeln!(
                src,
                "@group(0) @binding({binding}) var<{space}> {}: {ty};",
                hoisted_table(var.ty, per_step),
            )
            .unwrap();
            bindings.push(Binding {
                var: v,
                binding,
                read_only: true,
            });
            binding += 1;
        }
    }
    for u in &k.user_functions {
        if let Some(code) = &u.wgsl {
            src.push_str(code);
            src.push('\n');
        }
    }
    let user: String = k
        .user_functions
        .iter()
        .filter_map(|u| u.wgsl.clone())
        .collect();
    let driver = match &opts.gsl {
        Some(g) => Some(gsl_driver(k, g, &alias)?),
        None => None,
    };
    let mut helpers = helpers;
    if driver.is_some() {
        helpers.insert(Helper::F64Math);
    }
    let roots = format!("{user}\n{func}\n{}", driver.as_deref().unwrap_or(""));
    src.push_str(&polyfill::collect_for(&helpers, &roots));
    if let Some(g) = &opts.gsl {
        let dim = g.states.len();
        writeln!(
            src,
            "var<private> b2_gsl_y: array<f64, {dim}>;\nvar<private> b2_gsl_k: array<f64, {dim}>;\nvar<private> b2_gsl_ts: f64;"
        )
        .unwrap();
    }
    src.push_str(&func);
    // Iteration over a list (events, recorded indices) and record positions.
    let list_binding = opts.list.then(|| {
        writeln!(
            src,
            "@group(0) @binding({binding}) var<storage, read> b2_list: array<i32>;\n@group(0) @binding({}) var<storage, read> b2_range: array<u32>;",
            binding + 1
        )
        .unwrap();
        binding += 2;
        binding - 2
    });
    let bundle_binding = (opts.list && opts.bundles.is_some()).then(|| {
        writeln!(
            src,
            "@group(0) @binding({binding}) var<storage, read> b2_bundles: array<u32>;\n@group(0) @binding({}) var<storage, read> b2_perm: array<i32>;",
            binding + 1
        )
        .unwrap();
        binding += 2;
        binding - 2
    });
    let uses_pos = k
        .vars
        .iter()
        .any(|v| v.index == Index::Pos && (v.read || v.written));
    let pos_binding = uses_pos.then(|| {
        writeln!(
            src,
            "@group(0) @binding({binding}) var<storage, read> b2_posbase: array<u32>;"
        )
        .unwrap();
        binding += 1;
        binding - 1
    });
    // Counting events needs the step's parity (the counter half).
    let step_binding = (opts.step_binding
        && (k.uses_rng()
            || opts.gsl.is_some()
            || opts.count_tiles.is_some()
            || bundle_binding.is_some()
            || has_per_step_values(k)))
    .then(|| {
        writeln!(
            src,
            "@group(0) @binding({binding}) var<storage, read> b2_step: array<u32>;"
        )
        .unwrap();
        binding += 1;
        binding - 1
    });
    let targets_binding = (opts.list && opts.by_target).then(|| {
        writeln!(
            src,
            "@group(0) @binding({binding}) var<storage, read_write> b2_tgt: array<atomic<u32>>;"
        )
        .unwrap();
        binding += 1;
        binding - 1
    });
    let tiles_binding = opts.count_tiles.map(|_| {
        writeln!(
            src,
            "@group(0) @binding({binding}) var<storage, read_write> b2_tiles: array<atomic<u32>>;"
        )
        .unwrap();
        binding += 1;
        binding - 1
    });
    let gsl_binding = opts.gsl.as_ref().map(|g| {
        let first = binding;
        writeln!(
            src,
            "@group(0) @binding({binding}) var<storage, read_write> b2_gsl_status: array<atomic<u32>>;"
        )
        .unwrap();
        binding += 1;
        if g.last_timestep {
            writeln!(
                src,
                "@group(0) @binding({binding}) var<storage, read_write> b2_gsl_h: array<f64>;"
            )
            .unwrap();
            binding += 1;
        }
        let saved = [("b2_gsl_failed", g.failed_steps), ("b2_gsl_count", g.step_count)];
        for name in saved.iter().filter(|s| s.1).map(|s| s.0) {
            writeln!(
                src,
                "@group(0) @binding({binding}) var<storage, read_write> {name}: array<i32>;"
            )
            .unwrap();
            binding += 1;
        }
        first
    });
    if let Some(d) = &driver {
        src.push_str(d);
    }
    let wg = opts.workgroup_size;
    if bundle_binding.is_some() {
        if step_binding.is_none() {
            return Err(Error::Unsupported(
                "bundle mode without the step binding".into(),
            ));
        }
        let head = "@compute @workgroup_size({wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    _ = b2_params[0];
";
        src.push_str(&head.replace("{wg}", &wg.to_string()));
        // Which bundle this invocation (or workgroup) takes, and how it walks the
        // bundle's synapses `b2_first..b2_end`.
        let (event, stride, walk) = if opts.bundle_per_invocation {
            (
                format!("(wid.x + wid.y * nwg.x) * {wg}u + lid"),
                format!("nwg.x * {wg}u"),
                "for (var b2_s = b2_first; b2_s < b2_end; b2_s++)".to_string(),
            )
        } else {
            (
                "wid.x + wid.y * nwg.x".to_string(),
                "nwg.x".to_string(),
                format!("for (var b2_s = b2_first + lid; b2_s < b2_end; b2_s += {wg}u)"),
            )
        };
        let body = match opts.bundles {
            // This step's range record is the ring slot of `delay` steps ago.
            Some(super::Bundling::Sources) => write!(
                src,
                "    let b2_slots = b2_bundles[1];
    let b2_rec = (b2_step[0] % b2_slots + b2_slots - b2_bundles[2]) % b2_slots * b2_bundles[3];
    let b2_lo = b2_range[b2_rec];
    let b2_w = {event};
    if (b2_lo + b2_w >= b2_range[b2_rec + 1u]) {{ return; }}
    let b2_src = u32(b2_list[b2_lo + b2_w] - i32(b2_bundles[0]));
    if (b2_src >= b2_bundles[4]) {{ return; }}
    let b2_first = b2_bundles[5u + b2_src];
    let b2_end = b2_bundles[6u + b2_src];
    {walk} {{
        b2_kernel(u32(b2_perm[b2_s]), b2_s, 0u);
    }}
}}
"
            ),
            // Row y: the y-th distinct delay; its events were pushed d steps ago, each
            // with the group (source, d) if the source has synapses of that delay. In the
            // x direction the grid may be narrower than the events: stride over them.
            _ => write!(
                src,
                "    _ = b2_range[0];
    let b2_o = wid.y;
    if (b2_o >= b2_bundles[2]) {{ return; }}
    let b2_d = b2_bundles[b2_bundles[6] + b2_o];
    let b2_r = b2_step[0];
    if (b2_d > b2_r) {{ return; }}
    let b2_width = b2_bundles[1];
    let b2_base = ((b2_r - b2_d) % b2_bundles[0]) * (b2_width + 1u);
    let b2_count = u32(b2_list[b2_base + b2_width]);
    for (var b2_e = {event_x}; b2_e < b2_count; b2_e += {stride}) {{
        let b2_src = u32(b2_list[b2_base + b2_e]);
        let b2_sg = b2_bundles[3] + b2_src;
        var b2_lo = b2_bundles[b2_sg];
        var b2_hi = b2_bundles[b2_sg + 1u];
        let b2_last = b2_hi;
        while (b2_lo < b2_hi) {{
            let b2_mid = (b2_lo + b2_hi) / 2u;
            if (b2_bundles[b2_bundles[4] + b2_mid] < b2_d) {{ b2_lo = b2_mid + 1u; }} else {{ b2_hi = b2_mid; }}
        }}
        if (b2_lo < b2_last && b2_bundles[b2_bundles[4] + b2_lo] == b2_d) {{
            let b2_first = b2_bundles[b2_bundles[5] + b2_lo];
            let b2_end = b2_bundles[b2_bundles[5] + b2_lo + 1u];
            {walk} {{
                b2_kernel(u32(b2_perm[b2_s]), b2_s, 0u);
            }}
        }}
    }}
}}
",
                event_x = if opts.bundle_per_invocation {
                    format!("wid.x * {wg}u + lid")
                } else {
                    "wid.x".to_string()
                }
            ),
        };
        body.unwrap();
        return Ok(WgslKernel {
            source: src,
            entry: "main".into(),
            bindings,
            workgroup_size: wg,
            list_binding,
            bundle_binding,
            pos_binding,
            step_binding,
            tiles_binding,
            targets_binding,
            gsl_binding,
        });
    }
    let body = if opts.list && opts.by_target {
        // b2_tgt: [targets, allocated, 6 spare, then per possible target (T =
        // b2_params[6]) its count, its first position, a fill counter; then the distinct
        // targets (T); then the due positions grouped by target].
        format!(
            "    _ = b2_params[0];
    let b2_w = gid.x + gid.y * nwg.x * {wg}u;
    if (b2_w >= atomicLoad(&b2_tgt[0])) {{ return; }}
    let b2_nt = b2_params[6];
    let b2_t = atomicLoad(&b2_tgt[8u + 3u * b2_nt + b2_w]);
    let b2_c = atomicLoad(&b2_tgt[8u + b2_t]);
    let b2_o = 8u + 4u * b2_nt + atomicLoad(&b2_tgt[8u + b2_nt + b2_t]);
    // Heapsort of this target's due positions (they arrive in any order), then the
    // kernel over them in queue order.
    var b2_start = b2_c / 2u;
    var b2_end = b2_c;
    loop {{
        var b2_root = 0u;
        if (b2_start > 0u) {{
            b2_start -= 1u;
            b2_root = b2_start;
        }} else {{
            if (b2_end <= 1u) {{ break; }}
            b2_end -= 1u;
            let b2_top = atomicLoad(&b2_tgt[b2_o]);
            atomicStore(&b2_tgt[b2_o], atomicLoad(&b2_tgt[b2_o + b2_end]));
            atomicStore(&b2_tgt[b2_o + b2_end], b2_top);
        }}
        loop {{
            var b2_child = 2u * b2_root + 1u;
            if (b2_child >= b2_end) {{ break; }}
            if (b2_child + 1u < b2_end
                && atomicLoad(&b2_tgt[b2_o + b2_child]) < atomicLoad(&b2_tgt[b2_o + b2_child + 1u])) {{
                b2_child += 1u;
            }}
            let b2_x = atomicLoad(&b2_tgt[b2_o + b2_root]);
            let b2_y = atomicLoad(&b2_tgt[b2_o + b2_child]);
            if (b2_x >= b2_y) {{ break; }}
            atomicStore(&b2_tgt[b2_o + b2_root], b2_y);
            atomicStore(&b2_tgt[b2_o + b2_child], b2_x);
            b2_root = b2_child;
        }}
    }}
    for (var b2_q = 0u; b2_q < b2_c; b2_q++) {{
        let b2_kk = atomicLoad(&b2_tgt[b2_o + b2_q]);
        b2_kernel(u32(b2_list[b2_range[0] + b2_kk]), b2_kk, 0u);
    }}
    // Counts start from zero at the next step.
    atomicStore(&b2_tgt[8u + b2_t], 0u);
"
        )
    } else if opts.list && opts.serial {
        "    _ = b2_params[0];
    let b2_lo = b2_range[0] + b2_params[1];
    let b2_hi = min(b2_range[1], b2_lo + b2_params[2]);
    for (var b2_kk = b2_lo; b2_kk < b2_hi; b2_kk++) {
        b2_kernel(u32(b2_list[b2_kk]), b2_kk - b2_range[0], 0u);
    }
"
        .to_string()
    } else if opts.list {
        format!(
            "    let b2_kk = gid.x + gid.y * nwg.x * {wg}u;
    _ = b2_params[0]; // keeps binding 0 in the layout, as in element mode
    let b2_lo = b2_range[0];
    if (b2_lo + b2_kk >= b2_range[1]) {{ return; }}
    b2_kernel(u32(b2_list[b2_lo + b2_kk]), b2_kk, 0u);
"
        )
    } else {
        let n = element_count(opts);
        format!(
            "    // 2-D dispatch when there are more workgroups than one dimension allows.
    _ = arrayLength(&b2_params); // keeps binding 0 in the layout
    let b2_i = gid.x + gid.y * nwg.x * {wg}u;
    if (b2_i >= {n}) {{ return; }}
    {call}
",
            call = if opts.gsl.is_some() {
                "b2_gsl_drive(b2_i);"
            } else {
                "b2_kernel(b2_i, b2_i, 0u);"
            }
        )
    };
    src.push_str(&main_fn(wg, &body));
    Ok(WgslKernel {
        source: src,
        entry: "main".into(),
        bindings,
        workgroup_size: wg,
        list_binding,
        bundle_binding,
        pos_binding,
        step_binding,
        tiles_binding,
        targets_binding,
        gsl_binding,
    })
}

/// A GSL state updater's driver for element `b2_i` (see `runtime::gsl`, whose interpreter
/// version it mirrors step for step): stages unrolled with the stepper's coefficients, the
/// derivative kernel called per stage, GSL's scaled error control. A failure leaves the
/// element's state as it was, records itself in `b2_gsl_status` (first one wins: code,
/// element, step) and stops the group's integration for the rest of the run.
fn gsl_driver(k: &Kernel, g: &super::GslShape, alias: &[usize]) -> Result<String, Error> {
    use crate::odeiv2::{self, Failure};
    let tab = g.stepper.tableau();
    let dim = g.states.len();
    let stages = tab.stages();
    if dim == 0 || g.derivs.len() != dim || g.scale.len() != dim {
        return Err(Error::Unsupported("GSL shape with mismatched lists".into()));
    }
    for &v in &g.states {
        if k.vars[v].ty != Type::F64 {
            return Err(Error::Unsupported(format!(
                "GSL integration of the {} variable '{}'",
                k.vars[v].ty, k.vars[v].name
            )));
        }
    }
    let f = |x: f64| format!("({x:e}lf)");
    let sum = |coef: &[f64], s_of: &dyn Fn(usize) -> String| -> String {
        let terms: Vec<String> = coef
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 0.0)
            .map(|(j, c)| format!("{} * {}", f(*c), s_of(j)))
            .collect();
        if terms.is_empty() {
            "0.0lf".into()
        } else {
            terms.join(" + ")
        }
    };
    let state = |d: usize| element(k, alias[g.states[d]], "b2_i", false);
    let mut w = String::new();
    writeln!(w, "fn b2_gsl_drive(b2_i: u32) {{").unwrap();
    writeln!(
        w,
        "    if (atomicLoad(&b2_gsl_status[0]) != 0u) {{ return; }}"
    )
    .unwrap();
    writeln!(w, "    let b2_dt = {};", f(g.dt)).unwrap();
    writeln!(
        w,
        "    let b2_t0 = (f64(b2_step[0]) + f64(b2_step[1]) * 4294967296.0lf) * b2_dt;
    let b2_t1 = b2_t0 + b2_dt;
    var b2_y: array<f64, {dim}>;
    var b2_new: array<f64, {dim}>;"
    )
    .unwrap();
    for d in 0..dim {
        writeln!(w, "    b2_y[{d}] = {};", state(d)).unwrap();
    }
    for s in 0..stages {
        writeln!(w, "    var b2_k{s}: array<f64, {dim}>;").unwrap();
    }
    let h_start = if g.last_timestep {
        "b2_gsl_h[b2_i]"
    } else {
        "b2_dt"
    };
    writeln!(
        w,
        "    var b2_h = {h_start};
    var b2_try = {};
    var b2_t = b2_t0;
    var b2_n = 0u;
    var b2_failed = 0u;
    var b2_code = 0u;
    loop {{
        var b2_h0 = b2_try;
        var b2_last = false;",
        if g.adaptive { "b2_h" } else { "b2_dt" }
    )
    .unwrap();
    if g.adaptive {
        writeln!(
            w,
            "        if (b2_h0 > b2_t1 - b2_t) {{ b2_h0 = b2_t1 - b2_t; b2_try = b2_h0; b2_last = true; }}"
        )
        .unwrap();
    }
    for s in 0..stages {
        writeln!(w, "        b2_gsl_ts = b2_t + {} * b2_h0;", f(tab.c[s])).unwrap();
        for d in 0..dim {
            let acc = sum(&tab.a[s], &|j| format!("b2_k{j}[{d}]"));
            writeln!(w, "        b2_gsl_y[{d}] = b2_y[{d}] + b2_h0 * ({acc});").unwrap();
        }
        writeln!(
            w,
            "        b2_kernel(b2_i, b2_i, 0u);\n        b2_k{s} = b2_gsl_k;"
        )
        .unwrap();
    }
    writeln!(w, "        var b2_rmax = 2.2250738585072014e-308lf;").unwrap();
    for d in 0..dim {
        let sol = sum(&tab.b, &|j| format!("b2_k{j}[{d}]"));
        let err = sum(&tab.e, &|j| format!("b2_k{j}[{d}]"));
        writeln!(
            w,
            "        b2_new[{d}] = b2_y[{d}] + b2_h0 * ({sol});
        b2_rmax = max(b2_rmax, abs(b2_h0 * ({err})) / {});",
            f(g.scale[d])
        )
        .unwrap();
    }
    // odeiv2::adjust, the same constants.
    let ord = tab.order as f64;
    writeln!(
        w,
        "        var b2_hadj = b2_h0;
        var b2_dec = false;
        if (b2_rmax > {above}) {{
            b2_hadj = max({safety} / b2_pow_f64(b2_rmax, {}), {min_r}) * b2_h0;
            b2_dec = true;
        }} else if (b2_rmax < {below}) {{
            b2_hadj = clamp({safety} / b2_pow_f64(b2_rmax, {}), 1.0lf, {max_r}) * b2_h0;
        }}",
        f(1.0 / ord),
        f(1.0 / (ord + 1.0)),
        above = f(odeiv2::DECREASE_ABOVE),
        below = f(odeiv2::INCREASE_BELOW),
        safety = f(odeiv2::SAFETY),
        min_r = f(odeiv2::MAX_DECREASE),
        max_r = f(odeiv2::MAX_GROWTH),
    )
    .unwrap();
    let (tolerance, max_steps_code, fixed) = (
        Failure::Tolerance.code(),
        Failure::MaxSteps.code(),
        Failure::FixedStep.code(),
    );
    if g.adaptive {
        let max_steps = if g.max_steps > 0 {
            format!(
                "if (b2_n > {}u) {{ b2_code = {max_steps_code}u; break; }}",
                g.max_steps.min(u32::MAX as u64 - 1)
            )
        } else {
            String::new()
        };
        writeln!(
            w,
            "        let b2_tnew = select(b2_t + b2_h0, b2_t1, b2_last);
        if (b2_dec) {{
            if (b2_hadj < b2_h0 && b2_tnew + b2_hadj != b2_tnew) {{
                b2_failed += 1u;
                b2_try = b2_hadj;
                continue;
            }}
            b2_code = {tolerance}u;
            break;
        }}
        if (!b2_last) {{ b2_h = b2_hadj; }}
        b2_t = b2_tnew;
        b2_y = b2_new;
        {max_steps}
        if (abs(b2_h) > b2_dt) {{ b2_h = b2_dt; }}
        b2_n += 1u;
        b2_try = b2_h;
        if (b2_t1 - b2_t <= 0.0lf) {{ break; }}
    }}"
        )
        .unwrap();
    } else {
        writeln!(
            w,
            "        if (b2_dec) {{ b2_failed += 1u; b2_code = {fixed}u; break; }}
        b2_t = b2_t + b2_h0;
        b2_y = b2_new;
        b2_n = 1u;
        break;
    }}"
        )
        .unwrap();
    }
    if g.failed_steps {
        writeln!(
            w,
            "    b2_gsl_failed[b2_i] = i32(min(b2_failed, 2147483647u));"
        )
        .unwrap();
    }
    if g.step_count {
        writeln!(w, "    b2_gsl_count[b2_i] = i32(min(b2_n, 2147483647u));").unwrap();
    }
    writeln!(
        w,
        "    if (b2_code != 0u) {{
        if (atomicAdd(&b2_gsl_status[4], 1u) == 0u) {{
            atomicStore(&b2_gsl_status[1], b2_i);
            atomicStore(&b2_gsl_status[2], b2_step[0]);
            atomicStore(&b2_gsl_status[3], b2_step[1]);
            atomicStore(&b2_gsl_status[0], b2_code);
        }}
        return;
    }}"
    )
    .unwrap();
    for d in 0..dim {
        writeln!(w, "    {} = b2_y[{d}];", state(d)).unwrap();
    }
    if g.last_timestep {
        writeln!(w, "    b2_gsl_h[b2_i] = b2_h;").unwrap();
    }
    writeln!(w, "}}").unwrap();
    Ok(w)
}

/// Several kernels in one module over typed arenas (binding 0: params, then one arena per
/// storage type in [`super::ARENA_TYPES`] order). Workgroup row `gid.y` selects the kernel;
/// its parameter block starts at `gid.y * stride` and holds the header then one offset per
/// variable.
pub fn write_batch(kernels: &[Kernel], opts: &Options, stride: u32) -> Result<String, Error> {
    if !opts.f64 {
        return Err(Error::Unsupported(
            "batched modules with emulated float64".into(),
        ));
    }
    let mut helpers = BTreeSet::new();
    let mut funcs = String::new();
    let mut dispatch = String::from("    let b2_pbase = gid.y * ");
    write!(dispatch, "{stride}u;\n    let b2_i = gid.x;\n    if (b2_i >= b2_params[b2_pbase]) {{ return; }}\n    switch gid.y {{\n").unwrap();
    for (i, k) in kernels.iter().enumerate() {
        let (f, h) = write_function(k, opts, &format!("b2_kernel_{i}"), true)?;
        helpers.extend(h);
        funcs.push_str(&f);
        writeln!(
            dispatch,
            "        case {i}u: {{ b2_kernel_{i}(b2_i, b2_i, b2_pbase); }}"
        )
        .unwrap();
    }
    dispatch.push_str("        default: {}\n    }\n");
    // Every arena is bound whether or not this batch uses it, so keep each in the layout.
    for t in super::ARENA_TYPES {
        writeln!(dispatch, "    _ = arrayLength(&{});", arena_name(t)).unwrap();
    }
    let mut src = String::from("@group(0) @binding(0) var<storage, read> b2_params: array<u32>;\n");
    for (b, t) in super::ARENA_TYPES.iter().enumerate() {
        writeln!(
            src,
            "@group(0) @binding({}) var<storage, read_write> {}: array<{}>;",
            b + 1,
            arena_name(*t),
            storage_type(*t)
        )
        .unwrap();
    }
    src.push_str(&polyfill::collect_for(&helpers, &funcs));
    src.push_str(&funcs);
    src.push_str(&main_fn(opts.workgroup_size, &dispatch));
    Ok(src)
}
