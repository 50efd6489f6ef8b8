//! Constant folding: the value of an expression built from literals only, with the IR's
//! scalar semantics ([`super::scalar`], numpy's) and the platform's libm for
//! transcendentals (as numpy). Lowering folds Python literals with it, so their types and
//! values are fixed before any backend sees the kernel.

use super::scalar as s;
use super::{BinaryOp, CmpOp, Expr, ExprKind, Func, Type, UnaryOp, Value};

/// The expression's value, if it is built from literals only and its operations fold
/// (random numbers, user functions and array reads do not).
pub fn eval(e: &Expr) -> Option<Value> {
    let v = match &e.kind {
        ExprKind::Lit(v) => *v,
        ExprKind::Unary(op, a) => unary(*op, eval(a)?)?,
        ExprKind::Binary(op, a, b) => binary(*op, eval(a)?, eval(b)?)?,
        ExprKind::Cast(a) => cast(eval(a)?, e.ty),
        ExprKind::Call(f, args) => {
            let args: Option<Vec<Value>> = args.iter().map(eval).collect();
            call(*f, &args?, e.ty)?
        }
        ExprKind::Local(_) | ExprKind::ElemIndex | ExprKind::Gather(..) => return None,
    };
    (v.ty() == e.ty).then_some(v)
}

fn unary(op: UnaryOp, a: Value) -> Option<Value> {
    Some(match (op, a) {
        (UnaryOp::Not, Value::Bool(x)) => Value::Bool(!x),
        (UnaryOp::Neg, Value::I32(x)) => Value::I32(x.wrapping_neg()),
        (UnaryOp::Neg, Value::I64(x)) => Value::I64(x.wrapping_neg()),
        (UnaryOp::Neg, Value::F32(x)) => Value::F32(-x),
        (UnaryOp::Neg, Value::F64(x)) => Value::F64(-x),
        _ => return None,
    })
}

fn compare<T: PartialOrd>(c: CmpOp, x: T, y: T) -> bool {
    match c {
        CmpOp::Lt => x < y,
        CmpOp::Le => x <= y,
        CmpOp::Gt => x > y,
        CmpOp::Ge => x >= y,
        CmpOp::Eq => x == y,
        CmpOp::Ne => x != y,
    }
}

fn binary(op: BinaryOp, a: Value, b: Value) -> Option<Value> {
    use BinaryOp::*;
    if let Cmp(c) = op {
        return Some(Value::Bool(match (a, b) {
            (Value::Bool(x), Value::Bool(y)) => compare(c, x, y),
            (Value::I32(x), Value::I32(y)) => compare(c, x, y),
            (Value::I64(x), Value::I64(y)) => compare(c, x, y),
            (Value::F32(x), Value::F32(y)) => compare(c, x, y),
            (Value::F64(x), Value::F64(y)) => compare(c, x, y),
            _ => return None,
        }));
    }
    macro_rules! float {
        ($x:expr, $y:expr, $floordiv:path, $mod:path) => {
            match op {
                Add => $x + $y,
                Sub => $x - $y,
                Mul => $x * $y,
                Div => $x / $y,
                FloorDiv => $floordiv($x, $y),
                Mod => $mod($x, $y),
                Pow => $x.powf($y),
                _ => return None,
            }
        };
    }
    macro_rules! int {
        ($x:expr, $y:expr, $floordiv:path, $mod:path, $pow:path) => {
            match op {
                Add => $x.wrapping_add($y),
                Sub => $x.wrapping_sub($y),
                Mul => $x.wrapping_mul($y),
                FloorDiv => $floordiv($x, $y),
                Mod => $mod($x, $y),
                Pow => $pow($x, $y),
                _ => return None,
            }
        };
    }
    Some(match (a, b) {
        (Value::F64(x), Value::F64(y)) => Value::F64(float!(x, y, s::floordiv_f64, s::mod_f64)),
        (Value::F32(x), Value::F32(y)) => Value::F32(float!(x, y, s::floordiv_f32, s::mod_f32)),
        (Value::I32(x), Value::I32(y)) => {
            Value::I32(int!(x, y, s::floordiv_i32, s::mod_i32, s::pow_i32))
        }
        (Value::I64(x), Value::I64(y)) => {
            Value::I64(int!(x, y, s::floordiv_i64, s::mod_i64, s::pow_i64))
        }
        (Value::Bool(x), Value::Bool(y)) => Value::Bool(match op {
            And => x & y,
            Or => x | y,
            _ => return None,
        }),
        _ => return None,
    })
}

/// Conversion to `ty` as the interpreter converts (numpy's `astype` with x86's results
/// for floats out of an integer type's range: its minimum).
fn cast(a: Value, ty: Type) -> Value {
    match (a, ty) {
        (Value::F64(x), Type::I32) => Value::I32(s::int_f64(x)),
        (Value::F32(x), Type::I32) => Value::I32(s::int_f32(x)),
        (Value::F64(x), Type::I64 | Type::Bool) if !x.is_finite() || x.abs() >= 9.2e18 => {
            Value::I64(i64::MIN).cast(ty)
        }
        (Value::F32(x), Type::I64 | Type::Bool) if !x.is_finite() || x.abs() >= 9.2e18 => {
            Value::I64(i64::MIN).cast(ty)
        }
        (a, ty) => a.cast(ty),
    }
}

fn call(f: Func, args: &[Value], ty: Type) -> Option<Value> {
    Some(match (f, args) {
        (Func::Where, [Value::Bool(c), a, b]) => {
            if *c {
                *a
            } else {
                *b
            }
        }
        (Func::Int, [a]) => Value::I32(match *a {
            Value::F64(x) => s::int_f64(x),
            Value::F32(x) => s::int_f32(x),
            Value::I32(x) => x,
            Value::I64(x) => x as i32,
            Value::Bool(x) => x as i32,
        }),
        (Func::Timestep, [Value::F64(t), Value::F64(dt)]) => Value::I64(s::timestep(*t, *dt)),
        (Func::Clip, [x, lo, hi]) => match (*x, *lo, *hi) {
            (Value::F64(x), Value::F64(lo), Value::F64(hi)) => Value::F64(s::clip_f64(x, lo, hi)),
            (Value::F32(x), Value::F32(lo), Value::F32(hi)) => Value::F32(s::clip_f32(x, lo, hi)),
            (Value::I32(x), Value::I32(lo), Value::I32(hi)) => Value::I32(x.max(lo).min(hi)),
            (Value::I64(x), Value::I64(lo), Value::I64(hi)) => Value::I64(x.max(lo).min(hi)),
            _ => return None,
        },
        (f, [Value::F64(x)]) => Value::F64(<f64 as s::FloatFunc>::of(f)?(*x)),
        (f, [Value::F32(x)]) => Value::F32(<f32 as s::FloatFunc>::of(f)?(*x)),
        (Func::Abs, [Value::I32(x)]) => Value::I32(x.wrapping_abs()),
        (Func::Abs, [Value::I64(x)]) => Value::I64(x.wrapping_abs()),
        (Func::Sign, [Value::I32(x)]) => Value::I32(x.signum()),
        (Func::Sign, [Value::I64(x)]) => Value::I64(x.signum()),
        (Func::Ceil | Func::Floor, [a @ (Value::I32(_) | Value::I64(_))]) => *a,
        (Func::Abs, [Value::Bool(x)]) => Value::Bool(*x),
        _ => return None,
    })
    .filter(|v| v.ty() == ty)
}
