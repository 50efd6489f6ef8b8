//! Bounds of a kernel's values when its inputs are only known to lie in ranges: interval
//! arithmetic over the IR, conservative everywhere (an unknown operation gives
//! [`Bound::Any`]). Synapse creation uses it to skip ranges of candidate targets whose
//! condition is false for every member (`abs(i - j) < 50` over `range(N_post)`).

use super::{BinaryOp, CmpOp, Expr, ExprKind, Func, Kernel, Stmt, Type, UnaryOp, Value, Variable};

/// What is known of a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// A number in `[lo, hi]` (integers exactly, as f64).
    Num {
        lo: f64,
        hi: f64,
    },
    /// A boolean that may be false (`f`) and/or true (`t`).
    Bool {
        f: bool,
        t: bool,
    },
    Any,
}

impl Bound {
    pub fn point(v: Value) -> Bound {
        match v {
            Value::Bool(b) => Bound::Bool { f: !b, t: b },
            v => Bound::num(v.as_f64(), v.as_f64()),
        }
    }

    pub fn num(lo: f64, hi: f64) -> Bound {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            Bound::Any
        } else {
            Bound::Num { lo, hi }
        }
    }

    /// False for every value in the bound.
    pub fn surely_false(self) -> bool {
        matches!(self, Bound::Bool { t: false, .. })
    }

    fn as_bool(self) -> (bool, bool) {
        match self {
            Bound::Bool { f, t } => (f, t),
            Bound::Num { lo, hi } => (lo <= 0.0 && hi >= 0.0, !(lo == 0.0 && hi == 0.0)),
            Bound::Any => (true, true),
        }
    }

    fn union(self, other: Bound) -> Bound {
        match (self, other) {
            (Bound::Num { lo: a, hi: b }, Bound::Num { lo: c, hi: d }) => {
                Bound::num(a.min(c), b.max(d))
            }
            (Bound::Bool { f: a, t: b }, Bound::Bool { f: c, t: d }) => Bound::Bool {
                f: a || c,
                t: b || d,
            },
            _ => Bound::Any,
        }
    }
}

/// Keep a bound only where the type stores it exactly: i32 arithmetic wraps, i64 and
/// floats round (f32 beyond 2^24), so a bound leaving the exact range is unknown.
fn fit(ty: Type, b: Bound) -> Bound {
    let limit = match ty {
        Type::I32 => 2_147_483_647.0,
        Type::I64 | Type::F64 => 9_007_199_254_740_992.0,
        Type::F32 => 16_777_216.0,
        Type::Bool => return b,
    };
    match b {
        Bound::Num { lo, hi } if lo >= -limit && hi <= limit => b,
        Bound::Num { .. } => Bound::Any,
        b => b,
    }
}

fn nums(a: Bound, b: Bound) -> Option<(f64, f64, f64, f64)> {
    match (a, b) {
        (Bound::Num { lo: a, hi: b }, Bound::Num { lo: c, hi: d }) => Some((a, b, c, d)),
        _ => None,
    }
}

fn monotone(b: Bound, f: impl Fn(f64) -> f64) -> Bound {
    match b {
        Bound::Num { lo, hi } => Bound::num(f(lo), f(hi)),
        _ => Bound::Any,
    }
}

fn compare(op: CmpOp, a: Bound, b: Bound) -> Bound {
    let Some((a0, a1, b0, b1)) = nums(a, b) else {
        return Bound::Bool { f: true, t: true };
    };
    let overlap = a0 <= b1 && b0 <= a1;
    let same_point = a0 == a1 && b0 == b1 && a0 == b0;
    let (t, f) = match op {
        CmpOp::Lt => (a0 < b1, a1 >= b0),
        CmpOp::Le => (a0 <= b1, a1 > b0),
        CmpOp::Gt => (a1 > b0, a0 <= b1),
        CmpOp::Ge => (a1 >= b0, a0 < b1),
        CmpOp::Eq => (overlap, !same_point),
        CmpOp::Ne => (!same_point, overlap),
    };
    Bound::Bool { f, t }
}

fn binary(op: BinaryOp, ty: Type, a: Bound, b: Bound) -> Bound {
    match op {
        BinaryOp::And | BinaryOp::Or => {
            let ((af, at), (bf, bt)) = (a.as_bool(), b.as_bool());
            return if op == BinaryOp::And {
                Bound::Bool {
                    f: af || bf,
                    t: at && bt,
                }
            } else {
                Bound::Bool {
                    f: af && bf,
                    t: at || bt,
                }
            };
        }
        BinaryOp::Cmp(c) => return compare(c, a, b),
        _ => {}
    }
    let Some((a0, a1, b0, b1)) = nums(a, b) else {
        return Bound::Any;
    };
    let corners = |f: fn(f64, f64) -> f64| {
        let v = [f(a0, b0), f(a0, b1), f(a1, b0), f(a1, b1)];
        Bound::num(
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    let r = match op {
        BinaryOp::Add => Bound::num(a0 + b0, a1 + b1),
        BinaryOp::Sub => Bound::num(a0 - b1, a1 - b0),
        BinaryOp::Mul => corners(|x, y| x * y),
        BinaryOp::Div if b0 > 0.0 || b1 < 0.0 => corners(|x, y| x / y),
        // Floored division and modulo by a positive constant.
        BinaryOp::FloorDiv if b0 == b1 && b0 > 0.0 => {
            Bound::num((a0 / b0).floor(), (a1 / b0).floor())
        }
        // Integer powers (Brian2's `x**2`): monotone in |x| for even ones, in x for odd.
        BinaryOp::Pow if b0 == b1 && b0.fract() == 0.0 && (0.0..=64.0).contains(&b0) => {
            let n = b0 as i32;
            if n % 2 == 1 || a0 >= 0.0 {
                Bound::num(a0.powi(n), a1.powi(n))
            } else if a1 <= 0.0 {
                Bound::num(a1.powi(n), a0.powi(n))
            } else {
                Bound::num(0.0, a0.abs().max(a1.abs()).powi(n))
            }
        }
        BinaryOp::Mod if b0 == b1 && b0 > 0.0 => {
            // Within one period the modulo is a shift.
            let period = (a0 / b0).floor();
            if period == (a1 / b0).floor() && period.is_finite() {
                Bound::num(a0 - period * b0, a1 - period * b0)
            } else if ty.is_int() {
                Bound::num(0.0, b0 - 1.0)
            } else {
                Bound::num(0.0, b0)
            }
        }
        _ => Bound::Any,
    };
    fit(ty, r)
}

fn call(func: &Func, ty: Type, args: &[Bound]) -> Bound {
    let arg = |k: usize| args.get(k).copied().unwrap_or(Bound::Any);
    let r = match func {
        Func::Abs => match arg(0) {
            Bound::Num { lo, hi } if lo >= 0.0 => Bound::num(lo, hi),
            Bound::Num { lo, hi } if hi <= 0.0 => Bound::num(-hi, -lo),
            Bound::Num { lo, hi } => Bound::num(0.0, (-lo).max(hi)),
            _ => Bound::Any,
        },
        // min(max(x, a), b) does not decrease in any argument.
        Func::Clip => match (arg(0), arg(1), arg(2)) {
            (
                Bound::Num { lo: x0, hi: x1 },
                Bound::Num { lo: a0, hi: a1 },
                Bound::Num { lo: b0, hi: b1 },
            ) => Bound::num(x0.max(a0).min(b0), x1.max(a1).min(b1)),
            _ => Bound::Any,
        },
        Func::Where => match arg(0).as_bool() {
            (false, true) => arg(1),
            (true, false) => arg(2),
            _ => arg(1).union(arg(2)),
        },
        Func::Floor => monotone(arg(0), f64::floor),
        Func::Ceil => monotone(arg(0), f64::ceil),
        Func::Int => monotone(arg(0), f64::trunc),
        Func::Sign => monotone(arg(0), |x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        Func::Exp => monotone(arg(0), f64::exp),
        Func::Sqrt => match arg(0) {
            Bound::Num { lo, .. } if lo >= 0.0 => monotone(arg(0), f64::sqrt),
            _ => Bound::Any,
        },
        Func::Rand { .. } => Bound::num(0.0, 1.0),
        _ => Bound::Any,
    };
    fit(ty, r)
}

fn cast(ty: Type, b: Bound) -> Bound {
    match (ty, b) {
        (Type::Bool, b) => {
            let (f, t) = b.as_bool();
            Bound::Bool { f, t }
        }
        (_, Bound::Bool { f, t }) => {
            Bound::num(if f { 0.0 } else { 1.0 }, if t { 1.0 } else { 0.0 })
        }
        (t, b) if t.is_int() => fit(t, monotone(b, f64::trunc)),
        (t, b) => fit(t, b),
    }
}

/// The bound of `e` given the bounds of the locals it reads.
pub fn eval(e: &Expr, locals: &[Bound]) -> Bound {
    match &e.kind {
        ExprKind::Lit(v) => Bound::point(*v),
        ExprKind::Local(l) => locals[*l],
        ExprKind::Unary(UnaryOp::Neg, a) => match eval(a, locals) {
            Bound::Num { lo, hi } => fit(e.ty, Bound::num(-hi, -lo)),
            _ => Bound::Any,
        },
        ExprKind::Unary(UnaryOp::Not, a) => {
            let (f, t) = eval(a, locals).as_bool();
            Bound::Bool { f: t, t: f }
        }
        // `x*x` (how `x**2` is lowered) is a square, not a product of two independent
        // values: never negative.
        ExprKind::Binary(BinaryOp::Mul, a, b) if a == b => {
            let two = Bound::point(Value::I32(2));
            binary(BinaryOp::Pow, e.ty, eval(a, locals), two)
        }
        ExprKind::Binary(op, a, b) => binary(*op, e.ty, eval(a, locals), eval(b, locals)),
        ExprKind::Call(f, args) => {
            // Brian2's functions take at most three arguments; no allocation per call.
            let mut bs = [Bound::Any; 4];
            for (b, a) in bs.iter_mut().zip(args) {
                *b = eval(a, locals);
            }
            call(f, e.ty, &bs[..args.len().min(4)])
        }
        ExprKind::Cast(a) => cast(e.ty, eval(a, locals)),
        ExprKind::ElemIndex | ExprKind::Gather(..) => Bound::Any,
    }
}

/// Bounds of every local after the kernel's statements, given the bounds of the values
/// its variables hold on entry (`input`, asked only for variables the kernel reads;
/// constants are taken from the kernel). `locals` is reused between calls.
pub fn bounds(
    kernel: &Kernel,
    input: &mut dyn FnMut(usize, &Variable) -> Bound,
    locals: &mut Vec<Bound>,
) {
    locals.clear();
    locals.resize(kernel.locals.len(), Bound::Any);
    for (i, v) in kernel.vars.iter().enumerate() {
        locals[v.local] = match &v.kind {
            super::VarKind::Constant(c) => Bound::point(*c),
            _ if v.read => input(i, v),
            _ => Bound::Any,
        };
    }
    for Stmt::Assign { local, value, cond } in kernel.scalar.iter().chain(&kernel.vector) {
        let v = eval(value, locals);
        locals[*local] = match cond.as_ref().map(|c| eval(c, locals).as_bool()) {
            None | Some((false, true)) => v,
            Some((true, false)) => locals[*local],
            Some(_) => locals[*local].union(v),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{KernelSpec, VariableSpec, lower};

    fn cond_bound(code: &str, j: (f64, f64)) -> Bound {
        let spec = KernelSpec::vector(
            "test",
            vec![
                VariableSpec::array("_i", Type::I32),
                VariableSpec::array("_j", Type::I32),
                VariableSpec::array("x", Type::F64),
                VariableSpec::array("_cond", Type::Bool),
            ],
            code,
        );
        let k = lower(&spec).unwrap();
        let mut locals = Vec::new();
        bounds(
            &k,
            &mut |_, v| match v.name.as_str() {
                "_i" => Bound::num(100.0, 100.0),
                "_j" => Bound::num(j.0, j.1),
                _ => Bound::Any,
            },
            &mut locals,
        );
        locals[k.var("_cond").unwrap().local]
    }

    #[test]
    fn distance_conditions_prune() {
        let c = "_cond = abs(_i - _j) < 50 and _i != _j";
        assert!(cond_bound(c, (200.0, 300.0)).surely_false());
        assert!(cond_bound(c, (0.0, 40.0)).surely_false());
        assert!(!cond_bound(c, (0.0, 60.0)).surely_false());
        assert!(cond_bound(c, (100.0, 100.0)).surely_false());
        // Unknown values and random numbers never prune.
        assert!(!cond_bound("_cond = x > 0.5", (200.0, 300.0)).surely_false());
        assert!(!cond_bound("_cond = rand() < 0.1", (200.0, 300.0)).surely_false());
        assert!(cond_bound("_cond = _j < 10 and rand() < 0.1", (20.0, 30.0)).surely_false());
        // Squares (sqrt of a sum of squares: distances on a grid).
        assert!(
            cond_bound("_cond = sqrt((_j - 250.0)**2 + 1.0) < 20.0", (0.0, 200.0)).surely_false()
        );
        assert!(!cond_bound("_cond = sqrt((_j - 250.0)**2) < 20.0", (0.0, 240.0)).surely_false());
        assert!(cond_bound("_cond = (_j - 5)**3 > 1000", (0.0, 14.0)).surely_false());
        assert!(
            cond_bound(
                "_cond = sqrt((_i - 90.0)**2 + (_j - 250.0)**2) < 20.0",
                (0.0, 200.0)
            )
            .surely_false()
        );
        // Modulo and floored division.
        assert!(cond_bound("_cond = _j // 10 == 3", (40.0, 99.0)).surely_false());
        assert!(!cond_bound("_cond = _j % 10 == 3", (40.0, 99.0)).surely_false());
        assert!(cond_bound("_cond = _j % 10 == 3", (44.0, 49.0)).surely_false());
        assert!(!cond_bound("_cond = _j % 10 == 3", (41.0, 49.0)).surely_false());
    }

    #[test]
    fn int32_overflow_is_unknown() {
        // 100 * 10^8 wraps in int32: no bound may be claimed.
        assert!(!cond_bound("_cond = _i * _j < 0", (1e8, 1e8 + 10.0)).surely_false());
    }
}
