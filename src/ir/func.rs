//! Brian2's DEFAULT_FUNCTIONS (plus binomial and user functions) and their result types.

use super::types::{Type, TypeInfo};

/// The name under which the device's statement text calls [`Func::Where`].
pub const WHERE: &str = "_wgpu_where";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func {
    Cos,
    Sin,
    Tan,
    Cosh,
    Sinh,
    Tanh,
    Exp,
    Log,
    Log10,
    Expm1,
    Exprel,
    Log1p,
    Sqrt,
    Arccos,
    Arcsin,
    Arctan,
    Ceil,
    Floor,
    Abs,
    Sign,
    Clip,
    /// `where(cond, a, b)`: `a` where `cond` holds, else `b` (both evaluated, as numpy's
    /// `where`). Not a Brian2 function: the device writes it for statements Brian2 has
    /// simplified per value of boolean variables (`int(not_refractory)` in exact
    /// integrators), as Brian2's numpy and C++ generators do.
    Where,
    /// `int(x)`: truncation toward zero to int32 (Brian2's numpy target uses `np.int32`).
    Int,
    /// `timestep(t, dt)`: the int64 step index of time `t`.
    Timestep,
    /// Uniform in [0, 1); `site` numbers the call within its kernel.
    Rand {
        site: u32,
    },
    Randn {
        site: u32,
    },
    /// `poisson(lam)`
    Poisson {
        site: u32,
    },
    /// A Brian2 `BinomialFunction(n, p)` instance (its parameters are fixed per function);
    /// `exact`: `approximate=False` (no normal approximation).
    Binomial {
        site: u32,
        n: i32,
        p: f64,
        exact: bool,
    },
    /// Index into `Kernel::user_functions`.
    User(u32),
}

impl Func {
    /// The function with this Brian2 name, if it is a built-in one.
    pub fn builtin(name: &str) -> Option<Func> {
        Some(match name {
            "cos" => Func::Cos,
            "sin" => Func::Sin,
            "tan" => Func::Tan,
            "cosh" => Func::Cosh,
            "sinh" => Func::Sinh,
            "tanh" => Func::Tanh,
            "exp" => Func::Exp,
            "log" => Func::Log,
            "log10" => Func::Log10,
            "expm1" => Func::Expm1,
            "exprel" => Func::Exprel,
            "log1p" => Func::Log1p,
            "sqrt" => Func::Sqrt,
            "arccos" => Func::Arccos,
            "arcsin" => Func::Arcsin,
            "arctan" => Func::Arctan,
            "ceil" => Func::Ceil,
            "floor" => Func::Floor,
            "abs" => Func::Abs,
            "sign" => Func::Sign,
            "clip" => Func::Clip,
            WHERE => Func::Where,
            "int" => Func::Int,
            "timestep" => Func::Timestep,
            "rand" => Func::Rand { site: 0 },
            "randn" => Func::Randn { site: 0 },
            "poisson" => Func::Poisson { site: 0 },
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Func::Cos => "cos",
            Func::Sin => "sin",
            Func::Tan => "tan",
            Func::Cosh => "cosh",
            Func::Sinh => "sinh",
            Func::Tanh => "tanh",
            Func::Exp => "exp",
            Func::Log => "log",
            Func::Log10 => "log10",
            Func::Expm1 => "expm1",
            Func::Exprel => "exprel",
            Func::Log1p => "log1p",
            Func::Sqrt => "sqrt",
            Func::Arccos => "arccos",
            Func::Arcsin => "arcsin",
            Func::Arctan => "arctan",
            Func::Ceil => "ceil",
            Func::Floor => "floor",
            Func::Abs => "abs",
            Func::Sign => "sign",
            Func::Clip => "clip",
            Func::Where => WHERE,
            Func::Int => "int",
            Func::Timestep => "timestep",
            Func::Rand { .. } => "rand",
            Func::Randn { .. } => "randn",
            Func::Poisson { .. } => "poisson",
            Func::Binomial { .. } => "binomial",
            Func::User(_) => "user function",
        }
    }

    /// Number of arguments Brian2's abstract code passes.
    pub fn arity(self) -> Option<usize> {
        Some(match self {
            Func::Clip | Func::Where => 3,
            Func::Timestep => 2,
            Func::Rand { .. } | Func::Randn { .. } | Func::Binomial { .. } => 0,
            Func::User(_) => return None,
            _ => 1,
        })
    }

    /// A transcendental that must never be a builtin on f64 in WGSL.
    pub fn is_transcendental(self) -> bool {
        matches!(
            self,
            Func::Cos
                | Func::Sin
                | Func::Tan
                | Func::Cosh
                | Func::Sinh
                | Func::Tanh
                | Func::Exp
                | Func::Log
                | Func::Log10
                | Func::Expm1
                | Func::Exprel
                | Func::Log1p
                | Func::Arccos
                | Func::Arcsin
                | Func::Arctan
        )
    }

    pub fn uses_rng(self) -> bool {
        matches!(
            self,
            Func::Rand { .. } | Func::Randn { .. } | Func::Poisson { .. } | Func::Binomial { .. }
        )
    }
}

/// The float type of a float function of `arg`: float arrays keep their type, integers
/// and booleans give the model's float type, Python literals float64 (numpy scalars).
pub fn float_result(arg: TypeInfo, float: Type) -> Type {
    match (arg.weak, arg.ty) {
        (false, Type::F32) => Type::F32,
        (false, Type::Bool | Type::I32 | Type::I64) => float,
        _ => Type::F64,
    }
}
