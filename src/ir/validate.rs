//! Checks that stand between the lowering and the backends: every operand has the type
//! its operator expects, so a backend never has to guess a conversion.

use thiserror::Error;

use super::{BinaryOp, Expr, ExprKind, Func, Kernel, Stmt, Type, UnaryOp};

#[derive(Debug, Error)]
#[error("{0}")]
pub struct ValidateError(String);

fn check(k: &Kernel, e: &Expr) -> Result<(), ValidateError> {
    let bad = |m: String| Err(ValidateError(format!("{m} in {e:?}")));
    match &e.kind {
        ExprKind::Lit(v) if v.ty() != e.ty => bad("literal type mismatch".into()),
        ExprKind::Local(id) => match k.locals.get(*id) {
            Some(l) if l.ty == e.ty => Ok(()),
            _ => bad(format!("bad local {id}")),
        },
        ExprKind::ElemIndex if e.ty != Type::I32 => bad("index must be i32".into()),
        ExprKind::Unary(op, a) => {
            check(k, a)?;
            match op {
                UnaryOp::Not if a.ty != Type::Bool || e.ty != Type::Bool => {
                    bad("not on non-bool".into())
                }
                UnaryOp::Neg if a.ty != e.ty || a.ty == Type::Bool => bad("bad negation".into()),
                _ => Ok(()),
            }
        }
        ExprKind::Binary(op, a, b) => {
            check(k, a)?;
            check(k, b)?;
            if a.ty != b.ty {
                return bad(format!("operands {} and {}", a.ty, b.ty));
            }
            match op {
                BinaryOp::Cmp(_) if e.ty != Type::Bool => bad("comparison must be bool".into()),
                BinaryOp::And | BinaryOp::Or if a.ty != Type::Bool || e.ty != Type::Bool => {
                    bad("logic on non-bool".into())
                }
                BinaryOp::Div if !e.ty.is_float() => bad("division must be float".into()),
                BinaryOp::Cmp(_) => Ok(()),
                _ if a.ty != e.ty => bad("result type differs from operands".into()),
                _ => Ok(()),
            }
        }
        ExprKind::Call(f, args) => {
            for a in args {
                check(k, a)?;
            }
            match f {
                Func::User(i) => {
                    let Some(u) = k.user_functions.get(*i as usize) else {
                        return bad("unknown user function".into());
                    };
                    if u.args.len() != args.len()
                        || u.args.iter().zip(args).any(|(t, a)| *t != a.ty)
                        || u.ret != e.ty
                    {
                        return bad(format!("call of '{}' has wrong types", u.name));
                    }
                    Ok(())
                }
                f if f.is_transcendental() || *f == Func::Sqrt => {
                    if args.len() != 1 || args[0].ty != e.ty || !e.ty.is_float() {
                        return bad(format!("{} needs one float argument of its type", f.name()));
                    }
                    Ok(())
                }
                _ => Ok(()),
            }
        }
        ExprKind::Cast(a) => check(k, a),
        _ => Ok(()),
    }
}

/// Validate a lowered kernel.
pub fn validate(k: &Kernel) -> Result<(), ValidateError> {
    for s in k.scalar.iter().chain(&k.vector) {
        let Stmt::Assign { local, value, cond } = s;
        let Some(l) = k.locals.get(*local) else {
            return Err(ValidateError(format!(
                "assignment to unknown local {local}"
            )));
        };
        if l.ty != value.ty {
            return Err(ValidateError(format!(
                "assignment of {} to '{}' of type {}",
                value.ty, l.name, l.ty
            )));
        }
        check(k, value)?;
        if let Some(c) = cond {
            check(k, c)?;
            if c.ty != Type::Bool {
                return Err(ValidateError("condition must be bool".into()));
            }
        }
    }
    Ok(())
}
