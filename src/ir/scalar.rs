//! The scalar semantics of the IR's operators and functions (Brian2's, as numpy computes
//! them): the interpreter runs these definitions, the WGSL polyfills reproduce them, and
//! constant folding ([`super::fold`]) evaluates with them.

/// Floored integer division; numpy gives 0 for a zero divisor.
#[inline]
pub fn floordiv_i32(a: i32, b: i32) -> i32 {
    if b == 0 {
        return 0;
    }
    let q = a.wrapping_div(b);
    if (a.wrapping_rem(b) != 0) && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }
}

#[inline]
pub fn mod_i32(a: i32, b: i32) -> i32 {
    if b == 0 {
        return 0;
    }
    let r = a.wrapping_rem(b);
    if r != 0 && ((r < 0) != (b < 0)) {
        r + b
    } else {
        r
    }
}

#[inline]
pub fn floordiv_i64(a: i64, b: i64) -> i64 {
    if b == 0 {
        return 0;
    }
    let q = a.wrapping_div(b);
    if (a.wrapping_rem(b) != 0) && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }
}

#[inline]
pub fn mod_i64(a: i64, b: i64) -> i64 {
    if b == 0 {
        return 0;
    }
    let r = a.wrapping_rem(b);
    if r != 0 && ((r < 0) != (b < 0)) {
        r + b
    } else {
        r
    }
}

/// Integer power by squaring with wrap-around; numpy refuses negative exponents, which
/// the lowering rejects for literals; a negative runtime exponent gives 0.
#[inline]
pub fn pow_i64(mut base: i64, mut exp: i64) -> i64 {
    if exp < 0 {
        return match base {
            1 => 1,
            -1 => {
                if exp % 2 == 0 {
                    1
                } else {
                    -1
                }
            }
            _ => 0,
        };
    }
    let mut acc: i64 = 1;
    while exp > 0 {
        if exp & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        exp >>= 1;
    }
    acc
}

#[inline]
pub fn pow_i32(base: i32, exp: i32) -> i32 {
    if exp < 0 {
        return pow_i64(base as i64, exp as i64) as i32;
    }
    let (mut b, mut e, mut acc) = (base, exp, 1i32);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    acc
}

macro_rules! float_semantics {
    ($t:ty, $floordiv:ident, $fmod_floor:ident, $sign:ident, $exprel:ident, $clip:ident, $to_i32:ident) => {
        /// numpy's floor_divide (npy_divmod): exact `fmod`, then corrected.
        #[inline]
        pub fn $floordiv(a: $t, b: $t) -> $t {
            let m = a % b; // Rust's float % is C's exact fmod
            if b == 0.0 {
                return a / b;
            }
            let mut div = (a - m) / b;
            if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
                div -= 1.0;
            }
            if div != 0.0 {
                let mut fd = div.floor();
                if div - fd > 0.5 {
                    fd += 1.0;
                }
                fd
            } else {
                (0.0 as $t).copysign(a / b)
            }
        }

        /// numpy's remainder: the result has the sign of the divisor.
        #[inline]
        pub fn $fmod_floor(a: $t, b: $t) -> $t {
            let m = a % b;
            if b == 0.0 {
                return m;
            }
            if m != 0.0 {
                if (b < 0.0) != (m < 0.0) { m + b } else { m }
            } else {
                (0.0 as $t).copysign(b)
            }
        }

        /// numpy's sign: NaN stays NaN, ±0 gives 0.
        #[inline]
        pub fn $sign(x: $t) -> $t {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else if x == 0.0 {
                0.0
            } else {
                x
            }
        }

        /// Brian2's exprel: 1 for |x| < 1e-16, inf above 717, expm1(x)/x otherwise.
        #[inline]
        pub fn $exprel(x: $t) -> $t {
            if x.abs() < (1e-16 as $t) {
                1.0
            } else if x > 717.0 {
                <$t>::INFINITY
            } else {
                x.exp_m1() / x
            }
        }

        /// numpy's clip with scalar bounds: x itself unless below `lo` or above `hi`
        /// (so -0.0 stays -0.0), `hi` when `lo > hi`, NaN if any operand is NaN.
        #[inline]
        pub fn $clip(x: $t, lo: $t, hi: $t) -> $t {
            if x.is_nan() || lo.is_nan() || hi.is_nan() {
                return <$t>::NAN;
            }
            let m = if x < lo { lo } else { x };
            if m > hi { hi } else { m }
        }

        /// `int(x)`: truncation toward zero; NaN and out-of-range give i32::MIN as on x86.
        #[inline]
        pub fn $to_i32(x: $t) -> i32 {
            if x.is_nan() || !(-2147483648.0..2147483648.0).contains(&x) {
                i32::MIN
            } else {
                x as i32
            }
        }
    };
}

float_semantics!(
    f64,
    floordiv_f64,
    mod_f64,
    sign_f64,
    exprel_f64,
    clip_f64,
    int_f64
);
float_semantics!(
    f32,
    floordiv_f32,
    mod_f32,
    sign_f32,
    exprel_f32,
    clip_f32,
    int_f32
);

/// Brian2's `timestep(t, dt)`: `int64((t + 1e-3*dt)/dt)`.
#[inline]
pub fn timestep(t: f64, dt: f64) -> i64 {
    let x = (t + 1e-3 * dt) / dt;
    // Branch-free so that block loops stay tight; NaN fails the comparison.
    let inside = x.abs() < 9.223_372_036_854_776e18;
    if inside { x as i64 } else { i64::MIN }
}

/// The IR's float functions of one argument (libm's where numpy calls libm).
pub trait FloatFunc: Sized {
    fn of(f: crate::ir::Func) -> Option<fn(Self) -> Self>;
}

macro_rules! float_funcs {
    ($t:ty, $sign:ident, $exprel:ident) => {
        impl FloatFunc for $t {
            fn of(f: crate::ir::Func) -> Option<fn($t) -> $t> {
                use crate::ir::Func;
                Some(match f {
                    Func::Cos => <$t>::cos,
                    Func::Sin => <$t>::sin,
                    Func::Tan => <$t>::tan,
                    Func::Cosh => <$t>::cosh,
                    Func::Sinh => <$t>::sinh,
                    Func::Tanh => <$t>::tanh,
                    Func::Exp => <$t>::exp,
                    Func::Log => <$t>::ln,
                    Func::Log10 => <$t>::log10,
                    Func::Expm1 => <$t>::exp_m1,
                    Func::Exprel => $exprel,
                    Func::Log1p => <$t>::ln_1p,
                    Func::Sqrt => <$t>::sqrt,
                    Func::Arccos => <$t>::acos,
                    Func::Arcsin => <$t>::asin,
                    Func::Arctan => <$t>::atan,
                    Func::Ceil => <$t>::ceil,
                    Func::Floor => <$t>::floor,
                    Func::Abs => <$t>::abs,
                    Func::Sign => $sign,
                    _ => return None,
                })
            }
        }
    };
}
float_funcs!(f64, sign_f64, exprel_f64);
float_funcs!(f32, sign_f32, exprel_f32);
