//! Scalar types, constant values and numpy's promotion rules, which Brian2's numpy
//! target follows and which both backends must reproduce.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    Bool,
    I32,
    I64,
    F32,
    F64,
}

impl Type {
    pub fn is_float(self) -> bool {
        matches!(self, Type::F32 | Type::F64)
    }
    pub fn is_int(self) -> bool {
        matches!(self, Type::I32 | Type::I64)
    }
    /// Parse numpy's dtype names and this crate's short names.
    pub fn from_name(name: &str) -> Option<Type> {
        Some(match name {
            "bool" | "boolean" | "b" => Type::Bool,
            "int32" | "i32" | "integer" => Type::I32,
            "int64" | "i64" | "timestep" => Type::I64,
            "float32" | "f32" | "single" => Type::F32,
            "float64" | "f64" | "double" | "float" => Type::F64,
            _ => return None,
        })
    }
    pub fn size(self) -> usize {
        match self {
            Type::Bool | Type::I32 | Type::F32 => 4,
            Type::I64 | Type::F64 => 8,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Bool => "bool",
            Type::I32 => "int32",
            Type::I64 => "int64",
            Type::F32 => "float32",
            Type::F64 => "float64",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Bool(bool),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
}

impl Value {
    pub fn ty(self) -> Type {
        match self {
            Value::Bool(_) => Type::Bool,
            Value::I32(_) => Type::I32,
            Value::I64(_) => Type::I64,
            Value::F32(_) => Type::F32,
            Value::F64(_) => Type::F64,
        }
    }
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Bool(b) => b as i32 as f64,
            Value::I32(v) => v as f64,
            Value::I64(v) => v as f64,
            Value::F32(v) => v as f64,
            Value::F64(v) => v,
        }
    }
    pub fn as_i64(self) -> i64 {
        match self {
            Value::Bool(b) => b as i64,
            Value::I32(v) => v as i64,
            Value::I64(v) => v,
            Value::F32(v) => v as i64,
            Value::F64(v) => v as i64,
        }
    }
    /// Convert as numpy's `astype` does for in-range values (floats truncate toward zero,
    /// integers wrap).
    pub fn cast(self, ty: Type) -> Value {
        match ty {
            Type::Bool => Value::Bool(match self {
                Value::F32(v) => v != 0.0,
                Value::F64(v) => v != 0.0,
                v => v.as_i64() != 0,
            }),
            Type::I32 => Value::I32(match self {
                Value::F32(v) => v as i32,
                Value::F64(v) => v as i32,
                v => v.as_i64() as i32,
            }),
            Type::I64 => Value::I64(self.as_i64()),
            Type::F32 => Value::F32(match self {
                Value::F64(v) => v as f32,
                v => v.as_f64() as f32,
            }),
            Type::F64 => Value::F64(self.as_f64()),
        }
    }
}

/// An expression's type plus whether it is "weak": built from Python literals only, so
/// that (as in numpy's NEP 50) it adopts the type of the array it meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeInfo {
    pub ty: Type,
    pub weak: bool,
}

/// The common type of two operands of an arithmetic operator or comparison, in a kernel
/// whose float type is `float`.
///
/// numpy's rules (NEP 50), except that integers meeting floats become the model's float
/// type rather than always float64: Brian2's C++/Cython targets (and every GPU backend)
/// compute `int * float32` in float32, and a float32 model must not turn into float64
/// arithmetic behind the user's back. In float64 models this is exactly numpy.
pub fn promote(a: TypeInfo, b: TypeInfo, float: Type) -> TypeInfo {
    use Type::*;
    match (a.weak, b.weak) {
        (true, true) => TypeInfo {
            ty: match (a.ty, b.ty) {
                (x, y) if x.is_float() || y.is_float() => F64,
                _ => I64, // Python's unbounded int, stored as i64
            },
            weak: true,
        },
        (true, false) | (false, true) => {
            let (w, s) = if a.weak { (a.ty, b.ty) } else { (b.ty, a.ty) };
            let ty = match (w, s) {
                (F64, Bool | I32 | I64) => float,
                (Bool | I32 | I64, Bool) => I32,
                (_, s) => s,
            };
            TypeInfo { ty, weak: false }
        }
        (false, false) => TypeInfo {
            ty: strong_promote(a.ty, b.ty, float),
            weak: false,
        },
    }
}

fn strong_promote(a: Type, b: Type, float: Type) -> Type {
    use Type::*;
    if a == b {
        return a;
    }
    match (a.min(b), a.max(b)) {
        (Bool, x) => x,
        (I32, I64) => I64,
        (I32 | I64, F32) => float,
        (_, F64) => F64,
        (x, y) => unreachable!("promotion of {x} and {y}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn s(ty: Type) -> TypeInfo {
        TypeInfo { ty, weak: false }
    }
    fn w(ty: Type) -> TypeInfo {
        TypeInfo { ty, weak: true }
    }

    #[test]
    fn numpy_rules() {
        use Type::*;
        assert_eq!(promote(s(F32), w(F64), Type::F64).ty, F32);
        assert_eq!(promote(s(I32), w(F64), Type::F64).ty, F64);
        assert_eq!(promote(s(I32), w(I64), Type::F64).ty, I32);
        assert_eq!(promote(s(I32), s(F32), Type::F64).ty, F64);
        assert_eq!(promote(s(I32), s(F32), Type::F32).ty, F32);
        assert_eq!(promote(s(I32), w(F64), Type::F32).ty, F32);
        assert_eq!(promote(s(Bool), s(I32), Type::F64).ty, I32);
        assert_eq!(promote(s(F32), s(F64), Type::F64).ty, F64);
        assert_eq!(promote(w(I64), w(F64), Type::F64), w(F64));
    }
}
