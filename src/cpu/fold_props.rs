//! Property test: the IR's constant folding (`ir::fold`, which lowering uses for
//! literals) and the interpreter give the same value for the same literal expression.
//! f64 exp, log and cos are left out: the interpreter computes them with its own
//! vectorised code (within 1 ulp of libm), the fold with libm, as numpy does.

use crate::ir::{BinaryOp, CmpOp, Expr, ExprKind, Func, Type, UnaryOp, Value, fold};

use super::optimise_props::Rng;

const TYPES: [Type; 5] = [Type::Bool, Type::I32, Type::I64, Type::F32, Type::F64];
const FLOATS: [f64; 12] = [
    0.0,
    -0.0,
    1.0,
    -2.5,
    0.1,
    3.0,
    1e-3,
    7.25,
    1e300,
    -1e-310,
    f64::INFINITY,
    f64::NAN,
];
const INTS: [i64; 9] = [0, 1, -1, 2, 3, -7, 13, 2_147_483_647, -9_000_000_000];

fn e(ty: Type, kind: ExprKind) -> Expr {
    Expr { ty, kind }
}

fn lit(r: &mut Rng, ty: Type) -> Expr {
    let f = FLOATS[r.below(FLOATS.len())];
    let i = INTS[r.below(INTS.len())];
    let v = match ty {
        Type::Bool => Value::Bool(r.below(2) == 1),
        Type::I32 => Value::I32(i as i32),
        Type::I64 => Value::I64(i),
        Type::F32 => Value::F32(f as f32),
        Type::F64 => Value::F64(f),
    };
    e(ty, ExprKind::Lit(v))
}

fn expr(r: &mut Rng, ty: Type, depth: u32) -> Expr {
    if depth == 0 || r.below(4) == 0 {
        return lit(r, ty);
    }
    let d = depth - 1;
    let b = |r: &mut Rng, op, t| {
        e(
            ty,
            ExprKind::Binary(op, Box::new(expr(r, t, d)), Box::new(expr(r, t, d))),
        )
    };
    match (ty, r.below(6)) {
        (Type::Bool, 0 | 1) => {
            let t = TYPES[r.below(5)];
            let c = [
                CmpOp::Lt,
                CmpOp::Le,
                CmpOp::Gt,
                CmpOp::Ge,
                CmpOp::Eq,
                CmpOp::Ne,
            ][r.below(6)];
            b(r, BinaryOp::Cmp(c), t)
        }
        (Type::Bool, 2) => {
            let op = [BinaryOp::And, BinaryOp::Or][r.below(2)];
            b(r, op, ty)
        }
        (Type::Bool, 3) => e(ty, ExprKind::Unary(UnaryOp::Not, Box::new(expr(r, ty, d)))),
        (_, 4) => {
            let t = TYPES[r.below(5)];
            e(ty, ExprKind::Cast(Box::new(expr(r, t, d))))
        }
        (Type::Bool, _) => lit(r, ty),
        (Type::I32 | Type::I64, 0..=2) => {
            let ops = [
                BinaryOp::Add,
                BinaryOp::Sub,
                BinaryOp::Mul,
                BinaryOp::FloorDiv,
                BinaryOp::Mod,
            ];
            let op = ops[r.below(ops.len())];
            b(r, op, ty)
        }
        (Type::I32, 3) if r.below(2) == 0 => {
            let t = TYPES[1 + r.below(4)];
            e(ty, ExprKind::Call(Func::Int, vec![expr(r, t, d)]))
        }
        (_, 3) => {
            let c = expr(r, Type::Bool, d);
            e(
                ty,
                ExprKind::Call(Func::Where, vec![c, expr(r, ty, d), expr(r, ty, d)]),
            )
        }
        (_, 5) => e(
            ty,
            ExprKind::Call(
                Func::Clip,
                vec![expr(r, ty, d), expr(r, ty, d), expr(r, ty, d)],
            ),
        ),
        (Type::I32 | Type::I64, _) => {
            let f = [Func::Abs, Func::Sign][r.below(2)];
            e(ty, ExprKind::Call(f, vec![expr(r, ty, d)]))
        }
        (_, 0..=1) => {
            let ops = [
                BinaryOp::Add,
                BinaryOp::Sub,
                BinaryOp::Mul,
                BinaryOp::Div,
                BinaryOp::FloorDiv,
                BinaryOp::Mod,
                BinaryOp::Pow,
            ];
            let op = ops[r.below(ops.len())];
            b(r, op, ty)
        }
        (_, _) => {
            let mut funcs = vec![
                Func::Sin,
                Func::Tan,
                Func::Tanh,
                Func::Sqrt,
                Func::Abs,
                Func::Sign,
                Func::Floor,
                Func::Ceil,
                Func::Exprel,
                Func::Expm1,
                Func::Log1p,
                Func::Arctan,
                Func::Log10,
            ];
            if ty == Type::F32 {
                funcs.extend([Func::Exp, Func::Log, Func::Cos]);
            }
            let f = funcs[r.below(funcs.len())];
            e(ty, ExprKind::Call(f, vec![expr(r, ty, d)]))
        }
    }
}

fn same(a: Value, b: Value) -> bool {
    match (a, b) {
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (a, b) => a == b,
    }
}

#[test]
fn folding_agrees_with_the_interpreter() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for case in 0..20_000 {
        let ty = TYPES[r.below(5)];
        let x = expr(&mut r, ty, 4);
        let folded = fold::eval(&x);
        let interpreted = super::eval_scalar(&x, &[]).ok();
        match (folded, interpreted) {
            (Some(a), Some(b)) => {
                assert!(
                    same(a, b),
                    "case {case}: fold {a:?}, interpreter {b:?} for {x:?}"
                );
                checked += 1;
            }
            (a, b) => panic!("case {case}: fold {a:?}, interpreter {b:?} for {x:?}"),
        }
    }
    assert_eq!(checked, 20_000);
}
