//! Executes a [`Program`] over blocks of elements. Each instruction is one tight loop over
//! the block (like numpy, without its full-size temporaries); blocks run on rayon's pool.

use rayon::prelude::*;

use super::CpuError;
use super::math;
use super::program::{Instr, Place, Program, Reg};
use crate::arrays::RawArray;
use crate::ir::{BinaryOp, CmpOp, Func, Index, Type, UnaryOp, Value};
use crate::rng::{self, Stream};

/// Elements per block: large enough to amortise dispatch, small enough for L1/L2.
pub const BLOCK: usize = 1024;

/// Element-instructions below which a kernel runs on the calling thread.
const PARALLEL_WORK: usize = 1 << 18;

/// One register's storage.
#[derive(Debug, Clone, Default)]
pub enum Buf {
    #[default]
    Empty,
    B(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Buf {
    fn new(ty: Type, n: usize) -> Buf {
        match ty {
            Type::Bool => Buf::B(vec![false; n]),
            Type::I32 => Buf::I32(vec![0; n]),
            Type::I64 => Buf::I64(vec![0; n]),
            Type::F32 => Buf::F32(vec![0.0; n]),
            Type::F64 => Buf::F64(vec![0.0; n]),
        }
    }
    pub fn value(&self, i: usize) -> Value {
        match self {
            Buf::B(v) => Value::Bool(v[i]),
            Buf::I32(v) => Value::I32(v[i]),
            Buf::I64(v) => Value::I64(v[i]),
            Buf::F32(v) => Value::F32(v[i]),
            Buf::F64(v) => Value::F64(v[i]),
            Buf::Empty => unreachable!("empty register"),
        }
    }
}

pub trait Elem: Copy + Default + Send + Sync + 'static {
    fn get(b: &Buf) -> &Vec<Self>;
}

macro_rules! elem {
    ($t:ty, $v:ident) => {
        impl Elem for $t {
            #[inline]
            fn get(b: &Buf) -> &Vec<Self> {
                match b {
                    Buf::$v(v) => v,
                    other => unreachable!("register holds {:?}", std::mem::discriminant(other)),
                }
            }
        }
    };
}
elem!(bool, B);
elem!(i32, I32);
elem!(i64, I64);
elem!(f32, F32);
elem!(f64, F64);

/// An operand: one shared value or one value per element.
#[derive(Clone, Copy)]
enum Src<'a, T> {
    S(T),
    V(&'a [T]),
}

/// The registers an instruction sees.
struct Regs<'a> {
    prog: &'a Program,
    /// Per-element registers (in the prologue: the uniform file itself).
    loc: &'a [Buf],
    /// Uniform registers, read-only in the body.
    uni: &'a [Buf],
    /// In the prologue every register lives in `loc` with length 1.
    prologue: bool,
    n: usize,
}

impl<'a> Regs<'a> {
    #[inline]
    fn src<T: Elem>(&self, r: Reg) -> Src<'a, T> {
        let r = r as usize;
        if !self.prologue && self.prog.regs[r].uniform {
            Src::S(T::get(&self.uni[r])[0])
        } else {
            Src::V(&T::get(&self.loc[r])[..self.n])
        }
    }
}

#[inline(always)]
fn map1<T: Copy, U: Copy>(d: &mut [U], a: Src<T>, f: impl Fn(T) -> U) {
    match a {
        Src::V(a) => {
            for (o, x) in d.iter_mut().zip(a) {
                *o = f(*x);
            }
        }
        Src::S(a) => {
            let v = f(a);
            for o in d.iter_mut() {
                *o = v;
            }
        }
    }
}

#[inline(always)]
fn map2<T: Copy, U: Copy>(d: &mut [U], a: Src<T>, b: Src<T>, f: impl Fn(T, T) -> U) {
    match (a, b) {
        (Src::V(a), Src::V(b)) => {
            for ((o, x), y) in d.iter_mut().zip(a).zip(b) {
                *o = f(*x, *y);
            }
        }
        (Src::V(a), Src::S(y)) => {
            for (o, x) in d.iter_mut().zip(a) {
                *o = f(*x, y);
            }
        }
        (Src::S(x), Src::V(b)) => {
            for (o, y) in d.iter_mut().zip(b) {
                *o = f(x, *y);
            }
        }
        (Src::S(x), Src::S(y)) => {
            let v = f(x, y);
            d.fill(v);
        }
    }
}

#[inline(always)]
fn get<T: Copy>(s: &Src<T>, i: usize) -> T {
    match s {
        Src::S(v) => *v,
        Src::V(v) => v[i],
    }
}

/// A select on bit masks: `c ? a : b` without a branch or a pointer select, so that
/// block loops over a `bool` condition vectorise (LLVM turns `if c { a } else { b }` on
/// loaded values into a per-element branch or address select, which stays scalar).
pub trait Blend: Copy {
    fn blend(c: bool, a: Self, b: Self) -> Self;
}

macro_rules! blend_bits {
    ($t:ty, $bits:ty, $to:expr, $from:expr) => {
        impl Blend for $t {
            #[inline(always)]
            fn blend(c: bool, a: Self, b: Self) -> Self {
                let m = (c as $bits).wrapping_neg();
                $from(($to(a) & m) | ($to(b) & !m))
            }
        }
    };
}
blend_bits!(f64, u64, f64::to_bits, f64::from_bits);
blend_bits!(f32, u32, f32::to_bits, f32::from_bits);
blend_bits!(i64, i64, |x| x, |x| x);
blend_bits!(i32, i32, |x| x, |x| x);
blend_bits!(u8, u8, |x| x, |x| x);

impl Blend for bool {
    #[inline(always)]
    fn blend(c: bool, a: Self, b: Self) -> Self {
        (c & a) | (!c & b)
    }
}

/// `d[k] = c[k] ? a[k] : b[k]`, branch-free so that the vector cases compile to blends.
#[inline(always)]
fn select<T: Blend>(d: &mut [T], c: Src<bool>, a: Src<T>, b: Src<T>) {
    match (c, a, b) {
        (Src::S(c), a, b) => map1(d, if c { a } else { b }, |x| x),
        (Src::V(c), Src::V(a), Src::V(b)) => {
            for (((o, &c), &x), &y) in d.iter_mut().zip(c).zip(a).zip(b) {
                *o = T::blend(c, x, y);
            }
        }
        (Src::V(c), Src::V(a), Src::S(y)) => {
            for ((o, &c), &x) in d.iter_mut().zip(c).zip(a) {
                *o = T::blend(c, x, y);
            }
        }
        (Src::V(c), Src::S(x), Src::V(b)) => {
            for ((o, &c), &y) in d.iter_mut().zip(c).zip(b) {
                *o = T::blend(c, x, y);
            }
        }
        (Src::V(c), Src::S(x), Src::S(y)) => {
            for (o, &c) in d.iter_mut().zip(c) {
                *o = T::blend(c, x, y);
            }
        }
    }
}

/// `d[k] = c[k] ? s[k] : d[k]`
#[inline(always)]
fn merge<T: Blend>(d: &mut [T], c: Src<bool>, s: Src<T>) {
    match (c, s) {
        (Src::S(false), _) => {}
        (Src::S(true), s) => map1(d, s, |x| x),
        (Src::V(c), Src::V(s)) => {
            for ((o, &c), &x) in d.iter_mut().zip(c).zip(s) {
                *o = T::blend(c, x, *o);
            }
        }
        (Src::V(c), Src::S(x)) => {
            for (o, &c) in d.iter_mut().zip(c) {
                *o = T::blend(c, x, *o);
            }
        }
    }
}

/// Whether any of `c` is set, eight flags per load.
#[inline(always)]
fn any_set(c: &[bool]) -> bool {
    // SAFETY: a bool is one byte holding 0 or 1.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(c.as_ptr().cast(), c.len()) };
    let mut words = bytes.chunks_exact(8);
    let hit = words
        .by_ref()
        .any(|w| u64::from_ne_bytes(w.try_into().unwrap()) != 0);
    hit || words.remainder().iter().any(|&b| b != 0)
}

/// Float semantics shared by f32 and f64.
pub trait FloatOps: Elem + PartialOrd + std::ops::Add<Output = Self> {
    fn binop(op: BinaryOp) -> fn(Self, Self) -> Self;
    fn func(f: Func) -> Option<fn(Self) -> Self>;
    fn clip(x: Self, lo: Self, hi: Self) -> Self;
    /// `y` as an exponent that [`FloatOps::powi_block`] takes.
    fn small_int(y: Self) -> Option<i32>;
    fn powi_block(d: &mut [Self], x: &[Self], k: i32);
}

macro_rules! float_ops {
    ($t:ty, $floordiv:path, $mod:path, $clip:path, $powi:path) => {
        impl FloatOps for $t {
            #[inline(always)]
            fn binop(op: BinaryOp) -> fn($t, $t) -> $t {
                match op {
                    BinaryOp::Add => |a, b| a + b,
                    BinaryOp::Sub => |a, b| a - b,
                    BinaryOp::Mul => |a, b| a * b,
                    BinaryOp::Div => |a, b| a / b,
                    BinaryOp::FloorDiv => $floordiv,
                    BinaryOp::Mod => $mod,
                    BinaryOp::Pow => |a, b| a.powf(b),
                    _ => unreachable!("not a float arithmetic op"),
                }
            }
            fn func(f: Func) -> Option<fn($t) -> $t> {
                <$t as math::FloatFunc>::of(f)
            }
            #[inline(always)]
            fn clip(x: $t, lo: $t, hi: $t) -> $t {
                $clip(x, lo, hi)
            }
            fn small_int(y: $t) -> Option<i32> {
                let ok = y.fract() == 0.0 && (2.0..=math::POWI_MAX as $t).contains(&y);
                ok.then_some(y as i32)
            }
            fn powi_block(d: &mut [$t], x: &[$t], k: i32) {
                $powi(d, x, k)
            }
        }
    };
}
float_ops!(
    f64,
    math::floordiv_f64,
    math::mod_f64,
    math::clip_f64,
    math::powi_block
);
float_ops!(
    f32,
    math::floordiv_f32,
    math::mod_f32,
    math::clip_f32,
    math::powi_block_f32
);

pub trait IntOps: Elem + Ord {
    fn binop(op: BinaryOp) -> fn(Self, Self) -> Self;
    fn func(f: Func) -> Option<fn(Self) -> Self>;
}

macro_rules! int_ops {
    ($t:ty, $floordiv:path, $mod:path, $pow:path) => {
        impl IntOps for $t {
            #[inline(always)]
            fn binop(op: BinaryOp) -> fn($t, $t) -> $t {
                match op {
                    BinaryOp::Add => |a, b| a.wrapping_add(b),
                    BinaryOp::Sub => |a, b| a.wrapping_sub(b),
                    BinaryOp::Mul => |a, b| a.wrapping_mul(b),
                    BinaryOp::FloorDiv => $floordiv,
                    BinaryOp::Mod => $mod,
                    BinaryOp::Pow => $pow,
                    _ => unreachable!("not an integer arithmetic op"),
                }
            }
            fn func(f: Func) -> Option<fn($t) -> $t> {
                Some(match f {
                    Func::Abs => |a: $t| a.wrapping_abs(),
                    Func::Sign => |a: $t| a.signum(),
                    Func::Ceil | Func::Floor => |a| a,
                    _ => return None,
                })
            }
        }
    };
}
int_ops!(i32, math::floordiv_i32, math::mod_i32, math::pow_i32);
int_ops!(i64, math::floordiv_i64, math::mod_i64, math::pow_i64);

/// Shared context of one kernel invocation.
pub struct RunCtx<'a> {
    pub prog: &'a Program,
    pub arrays: &'a [RawArray],
    /// Iterate over these element indices instead of 0..n (events, recorded indices).
    pub list: Option<&'a [i32]>,
    /// Offset of position 0 in `Index::Pos` (record) arrays.
    pub pos_base: usize,
    pub seed: u64,
    pub kernel_id: u32,
    pub step: i64,
}

fn load(arr: &RawArray, d: &mut Buf, idx: &[usize]) {
    // SAFETY: indices are bounds-checked by the caller; the array outlives the run.
    unsafe {
        match (arr.ty, d) {
            (Type::Bool, Buf::B(d)) => {
                let s = arr.slice::<u8>();
                for (o, &i) in d.iter_mut().zip(idx) {
                    *o = s[i] != 0;
                }
            }
            (Type::I32, Buf::I32(d)) => {
                let s = arr.slice::<i32>();
                for (o, &i) in d.iter_mut().zip(idx) {
                    *o = s[i];
                }
            }
            (Type::I64, Buf::I64(d)) => {
                let s = arr.slice::<i64>();
                for (o, &i) in d.iter_mut().zip(idx) {
                    *o = s[i];
                }
            }
            (Type::F32, Buf::F32(d)) => {
                let s = arr.slice::<f32>();
                for (o, &i) in d.iter_mut().zip(idx) {
                    *o = s[i];
                }
            }
            (Type::F64, Buf::F64(d)) => {
                let s = arr.slice::<f64>();
                for (o, &i) in d.iter_mut().zip(idx) {
                    *o = s[i];
                }
            }
            _ => unreachable!("array and register types differ"),
        }
    }
}

#[inline(always)]
fn load_range(arr: &RawArray, d: &mut Buf, start: usize, n: usize) {
    unsafe {
        match (arr.ty, d) {
            (Type::Bool, Buf::B(d)) => {
                for (o, x) in d[..n].iter_mut().zip(&arr.slice::<u8>()[start..start + n]) {
                    *o = *x != 0;
                }
            }
            (Type::I32, Buf::I32(d)) => {
                d[..n].copy_from_slice(&arr.slice::<i32>()[start..start + n])
            }
            (Type::I64, Buf::I64(d)) => {
                d[..n].copy_from_slice(&arr.slice::<i64>()[start..start + n])
            }
            (Type::F32, Buf::F32(d)) => {
                d[..n].copy_from_slice(&arr.slice::<f32>()[start..start + n])
            }
            (Type::F64, Buf::F64(d)) => {
                d[..n].copy_from_slice(&arr.slice::<f64>()[start..start + n])
            }
            _ => unreachable!("array and register types differ"),
        }
    }
}

/// Store `n` values of `src` (per element, or a uniform one broadcast) at `b..b + n`.
#[inline(always)]
fn store_range(arr: &RawArray, src: &Buf, uniform: bool, b: usize, n: usize) {
    macro_rules! put {
        ($t:ty, $s:expr, $conv:expr) => {{
            let d = &mut arr.slice::<$t>()[b..b + n];
            if uniform {
                d.fill($conv($s[0]));
            } else {
                for (o, &x) in d.iter_mut().zip(&$s[..n]) {
                    *o = $conv(x);
                }
            }
        }};
    }
    unsafe {
        match (arr.ty, src) {
            (Type::Bool, Buf::B(s)) => put!(u8, s, |x: bool| x as u8),
            (Type::I32, Buf::I32(s)) => put!(i32, s, |x| x),
            (Type::I64, Buf::I64(s)) => put!(i64, s, |x| x),
            (Type::F32, Buf::F32(s)) => put!(f32, s, |x| x),
            (Type::F64, Buf::F64(s)) => put!(f64, s, |x| x),
            _ => unreachable!("array and register types differ"),
        }
    }
}

/// Store `n` values of `src` (a per-element register, or a uniform one broadcast).
fn store(arr: &RawArray, src: &Buf, uniform: bool, idx: &[usize]) {
    let pick = |i: usize| if uniform { 0 } else { i };
    unsafe {
        match (arr.ty, src) {
            (Type::Bool, Buf::B(s)) => {
                let d = arr.slice::<u8>();
                for (k, &i) in idx.iter().enumerate() {
                    d[i] = s[pick(k)] as u8;
                }
            }
            (Type::I32, Buf::I32(s)) => {
                let d = arr.slice::<i32>();
                for (k, &i) in idx.iter().enumerate() {
                    d[i] = s[pick(k)];
                }
            }
            (Type::I64, Buf::I64(s)) => {
                let d = arr.slice::<i64>();
                for (k, &i) in idx.iter().enumerate() {
                    d[i] = s[pick(k)];
                }
            }
            (Type::F32, Buf::F32(s)) => {
                let d = arr.slice::<f32>();
                for (k, &i) in idx.iter().enumerate() {
                    d[i] = s[pick(k)];
                }
            }
            (Type::F64, Buf::F64(s)) => {
                let d = arr.slice::<f64>();
                for (k, &i) in idx.iter().enumerate() {
                    d[i] = s[pick(k)];
                }
            }
            _ => unreachable!("array and register types differ"),
        }
    }
}

/// The element indices of positions `start..start+n`, checked against `len`.
fn elem_indices(
    ctx: &RunCtx,
    start: usize,
    n: usize,
    len: usize,
    var: usize,
) -> Result<Vec<usize>, CpuError> {
    match ctx.list {
        None => {
            if start + n > len {
                return Err(CpuError::Index {
                    var: format!("#{var}"),
                    index: (start + n - 1) as i64,
                    len,
                });
            }
            Ok((start..start + n).collect())
        }
        Some(list) => list[start..start + n]
            .iter()
            .map(|&i| {
                if i < 0 || i as usize >= len {
                    Err(CpuError::Index {
                        var: format!("#{var}"),
                        index: i as i64,
                        len,
                    })
                } else {
                    Ok(i as usize)
                }
            })
            .collect(),
    }
}

fn index_values(regs: &Regs, r: Reg, arr_len: usize, var: &str) -> Result<Vec<usize>, CpuError> {
    let ty = regs.prog.regs[r as usize].ty;
    let bad = |v: i64| CpuError::Index {
        var: var.to_string(),
        index: v,
        len: arr_len,
    };
    let mut out = Vec::with_capacity(regs.n);
    macro_rules! collect {
        ($t:ty) => {{
            let s = regs.src::<$t>(r);
            for i in 0..regs.n {
                let v = get(&s, i) as i64;
                if v < 0 || v as usize >= arr_len {
                    return Err(bad(v));
                }
                out.push(v as usize);
            }
        }};
    }
    match ty {
        Type::I32 => collect!(i32),
        Type::I64 => collect!(i64),
        _ => unreachable!("index register is not an integer"),
    }
    Ok(out)
}

#[inline(always)]
fn cast_buf(d: &mut Buf, from: Type, regs: &Regs, a: Reg) {
    macro_rules! conv {
        ($src:ty, $f:expr) => {{
            let s = regs.src::<$src>(a);
            match d {
                Buf::B(d) => map1(d, s, |x| $f(Value::from_elem(x)).cast(Type::Bool).as_bool()),
                Buf::I32(d) => map1(d, s, |x| {
                    $f(Value::from_elem(x)).cast(Type::I32).as_i64() as i32
                }),
                Buf::I64(d) => map1(d, s, |x| $f(Value::from_elem(x)).cast(Type::I64).as_i64()),
                Buf::F32(d) => map1(d, s, |x| $f(Value::from_elem(x)).as_f64() as f32),
                Buf::F64(d) => map1(d, s, |x| $f(Value::from_elem(x)).as_f64()),
                Buf::Empty => unreachable!(),
            }
        }};
    }
    // Fast paths for the common conversions; the rest go through `Value::cast`.
    match (from, &mut *d) {
        (Type::F64, Buf::F64(d)) => map1(d, regs.src::<f64>(a), |x| x),
        (Type::F32, Buf::F32(d)) => map1(d, regs.src::<f32>(a), |x| x),
        (Type::F32, Buf::F64(d)) => map1(d, regs.src::<f32>(a), |x| x as f64),
        (Type::F64, Buf::F32(d)) => map1(d, regs.src::<f64>(a), |x| x as f32),
        (Type::I32, Buf::F64(d)) => map1(d, regs.src::<i32>(a), |x| x as f64),
        (Type::I32, Buf::F32(d)) => map1(d, regs.src::<i32>(a), |x| x as f32),
        (Type::F64, Buf::I32(d)) => map1(d, regs.src::<f64>(a), math::int_f64),
        (Type::F32, Buf::I32(d)) => map1(d, regs.src::<f32>(a), math::int_f32),
        (Type::Bool, _) => conv!(bool, |v| v),
        (Type::I32, _) => conv!(i32, |v| v),
        (Type::I64, _) => conv!(i64, |v| v),
        (Type::F32, _) => conv!(f32, |v: Value| match v {
            Value::F32(x) if !x.is_finite() || x.abs() >= 9.2e18 => Value::I64(i64::MIN),
            v => v,
        }),
        (Type::F64, _) => conv!(f64, |v: Value| match v {
            Value::F64(x) if !x.is_finite() || x.abs() >= 9.2e18 => Value::I64(i64::MIN),
            v => v,
        }),
    }
}

trait FromElem<T> {
    fn from_elem(x: T) -> Value;
}
impl FromElem<bool> for Value {
    fn from_elem(x: bool) -> Value {
        Value::Bool(x)
    }
}
impl FromElem<i32> for Value {
    fn from_elem(x: i32) -> Value {
        Value::I32(x)
    }
}
impl FromElem<i64> for Value {
    fn from_elem(x: i64) -> Value {
        Value::I64(x)
    }
}
impl FromElem<f32> for Value {
    fn from_elem(x: f32) -> Value {
        Value::F32(x)
    }
}
impl FromElem<f64> for Value {
    fn from_elem(x: f64) -> Value {
        Value::F64(x)
    }
}

impl Value {
    fn as_bool(self) -> bool {
        matches!(self, Value::Bool(true))
    }
}

#[inline(always)]
fn cmp<T: Elem + PartialOrd>(op: CmpOp, d: &mut [bool], a: Src<T>, b: Src<T>) {
    match op {
        CmpOp::Lt => map2(d, a, b, |x, y| x < y),
        CmpOp::Le => map2(d, a, b, |x, y| x <= y),
        CmpOp::Gt => map2(d, a, b, |x, y| x > y),
        CmpOp::Ge => map2(d, a, b, |x, y| x >= y),
        CmpOp::Eq => map2(d, a, b, |x, y| x == y),
        CmpOp::Ne => map2(d, a, b, |x, y| x != y),
    }
}

#[inline(always)]
fn run_instr(
    i: &Instr,
    loc: &mut [Buf],
    uni: &[Buf],
    prologue: bool,
    ctx: &RunCtx,
    start: usize,
    n: usize,
) -> Result<(), CpuError> {
    let prog = ctx.prog;
    // The register view of the current file (the destination, if any, taken out).
    macro_rules! regs {
        () => {
            Regs {
                prog,
                loc: &*loc,
                uni,
                prologue,
                n,
            }
        };
    }
    macro_rules! with_dst {
        ($dst:expr, |$d:ident, $regs:ident| $body:expr) => {{
            let dst = $dst as usize;
            let mut $d = std::mem::take(&mut loc[dst]);
            let res = {
                let $regs = regs!();
                $body
            };
            loc[dst] = $d;
            res
        }};
    }
    match i {
        Instr::Const { dst, v } => {
            let d = &mut loc[*dst as usize];
            match (d, *v) {
                (Buf::B(d), Value::Bool(x)) => d.fill(x),
                (Buf::I32(d), Value::I32(x)) => d.fill(x),
                (Buf::I64(d), Value::I64(x)) => d.fill(x),
                (Buf::F32(d), Value::F32(x)) => d.fill(x),
                (Buf::F64(d), Value::F64(x)) => d.fill(x),
                _ => unreachable!("constant type mismatch"),
            }
            Ok(())
        }
        Instr::Index { dst } => {
            let Buf::I32(d) = &mut loc[*dst as usize] else {
                unreachable!()
            };
            for (k, o) in d[..n].iter_mut().enumerate() {
                *o = (start + k) as i32;
            }
            Ok(())
        }
        Instr::Load { dst, var, at } => {
            let arr = &ctx.arrays[*var];
            with_dst!(*dst, |d, regs| {
                match at {
                    Place::Elem if ctx.list.is_none() && start + n <= arr.len => {
                        load_range(arr, &mut d, start, n);
                        Ok(())
                    }
                    Place::Elem => {
                        let idx = elem_indices(ctx, start, n, arr.len, *var)?;
                        load(arr, &mut d, &idx);
                        Ok(())
                    }
                    Place::Pos => {
                        let b = ctx.pos_base + start;
                        if b + n > arr.len {
                            return Err(CpuError::Index {
                                var: format!("#{var}"),
                                index: (b + n) as i64 - 1,
                                len: arr.len,
                            });
                        }
                        load_range(arr, &mut d, b, n);
                        Ok(())
                    }
                    Place::Zero => {
                        if arr.len == 0 {
                            return Err(CpuError::Index {
                                var: format!("#{var}"),
                                index: 0,
                                len: 0,
                            });
                        }
                        load(arr, &mut d, &vec![0; n]);
                        Ok(())
                    }
                    Place::At(r) => {
                        let idx = index_values(&regs, *r, arr.len, &format!("#{var}"))?;
                        load(arr, &mut d, &idx);
                        Ok(())
                    }
                }
            })
        }
        Instr::Accumulate {
            var,
            src,
            index,
            cond,
        } => {
            let arr = &ctx.arrays[*var];
            let regs = regs!();
            let idx = index_values(&regs, *index, arr.len, &format!("#{var}"))?;
            let c = cond.map(|c| regs.src::<bool>(c));
            let on = |k: usize| c.as_ref().is_none_or(|c| get(c, k));
            macro_rules! acc {
                ($t:ty, $add:expr) => {{
                    let s = regs.src::<$t>(*src);
                    let d = unsafe { arr.slice::<$t>() };
                    for (k, &i) in idx.iter().enumerate() {
                        if on(k) {
                            d[i] = $add(d[i], get(&s, k));
                        }
                    }
                }};
            }
            match arr.ty {
                Type::F64 => acc!(f64, |a: f64, b: f64| a + b),
                Type::F32 => acc!(f32, |a: f32, b: f32| a + b),
                Type::I32 => acc!(i32, |a: i32, b: i32| a.wrapping_add(b)),
                Type::I64 => acc!(i64, |a: i64, b: i64| a.wrapping_add(b)),
                t => {
                    return Err(CpuError::Unsupported(format!("accumulation into {t}")));
                }
            }
            Ok(())
        }
        Instr::Store { var, src, at } => {
            let arr = &ctx.arrays[*var];
            let regs = regs!();
            let uniform = !prologue && prog.regs[*src as usize].uniform;
            let buf = if uniform {
                &uni[*src as usize]
            } else {
                &loc[*src as usize]
            };
            // Contiguous stores (the common case) copy a slice.
            let range = match at {
                Place::Elem if ctx.list.is_none() && start + n <= arr.len => Some(start),
                Place::Pos if ctx.pos_base + start + n <= arr.len => Some(ctx.pos_base + start),
                _ => None,
            };
            if let Some(b) = range {
                store_range(arr, buf, uniform, b, n);
                return Ok(());
            }
            let idx: Vec<usize> = match at {
                Place::Elem => elem_indices(ctx, start, n, arr.len, *var)?,
                Place::Pos => {
                    let b = ctx.pos_base + start;
                    if b + n > arr.len {
                        return Err(CpuError::Index {
                            var: format!("#{var}"),
                            index: (b + n) as i64 - 1,
                            len: arr.len,
                        });
                    }
                    (b..b + n).collect()
                }
                Place::Zero => vec![0],
                Place::At(r) => index_values(&regs, *r, arr.len, &format!("#{var}"))?,
            };
            store(arr, buf, uniform, &idx);
            Ok(())
        }
        Instr::StoreIf { var, src, cond, at } => {
            let arr = &ctx.arrays[*var];
            let regs = regs!();
            let c = regs.src::<bool>(*cond);
            // Where each position stores: contiguous from a base, or listed.
            let (base, idx) = match at {
                Place::Elem if ctx.list.is_none() && start + n <= arr.len => (start, None),
                Place::Elem => (0, Some(elem_indices(ctx, start, n, arr.len, *var)?)),
                _ => unreachable!("masked stores are formed for element stores only"),
            };
            macro_rules! put {
                ($t:ty, $s:ty, $conv:expr) => {{
                    let s = regs.src::<$s>(*src);
                    let d = unsafe { arr.slice::<$t>() };
                    match (&idx, &c) {
                        // Contiguous: runs of 16 with no element selected are skipped,
                        // the others blended (branch-free whether few or most are set).
                        (None, Src::V(cv)) => {
                            let d = &mut d[base..base + n];
                            let cv = &cv[..n];
                            match s {
                                Src::V(sv) => {
                                    let sv = &sv[..n];
                                    for ((dc, cc), sc) in
                                        d.chunks_mut(32).zip(cv.chunks(32)).zip(sv.chunks(32))
                                    {
                                        if !any_set(cc) {
                                            continue;
                                        }
                                        for ((o, &on), &x) in dc.iter_mut().zip(cc).zip(sc) {
                                            *o = Blend::blend(on, $conv(x), *o);
                                        }
                                    }
                                }
                                Src::S(x) => {
                                    let x = $conv(x);
                                    for (dc, cc) in d.chunks_mut(32).zip(cv.chunks(32)) {
                                        if !any_set(cc) {
                                            continue;
                                        }
                                        for (o, &on) in dc.iter_mut().zip(cc) {
                                            *o = Blend::blend(on, x, *o);
                                        }
                                    }
                                }
                            }
                        }
                        _ => {
                            for k in 0..n {
                                if get(&c, k) {
                                    let i = idx.as_ref().map_or(base + k, |idx| idx[k]);
                                    d[i] = $conv(get(&s, k));
                                }
                            }
                        }
                    }
                }};
            }
            match arr.ty {
                Type::Bool => put!(u8, bool, |x: bool| x as u8),
                Type::I32 => put!(i32, i32, |x| x),
                Type::I64 => put!(i64, i64, |x| x),
                Type::F32 => put!(f32, f32, |x| x),
                Type::F64 => put!(f64, f64, |x| x),
            }
            Ok(())
        }
        Instr::Copy { dst, src } => {
            if dst == src {
                return Ok(());
            }
            let ty = prog.regs[*dst as usize].ty;
            with_dst!(*dst, |d, regs| {
                copy_generic(&mut d, &regs, *src, ty);
                Ok(())
            })
        }
        Instr::CondCopy { dst, src, cond } => {
            if dst == src {
                return Ok(());
            }
            let ty = prog.regs[*dst as usize].ty;
            with_dst!(*dst, |d, regs| {
                let c = regs.src::<bool>(*cond);
                match (ty, &mut d) {
                    (Type::Bool, Buf::B(v)) => merge(&mut v[..n], c, regs.src::<bool>(*src)),
                    (Type::I32, Buf::I32(v)) => merge(&mut v[..n], c, regs.src::<i32>(*src)),
                    (Type::I64, Buf::I64(v)) => merge(&mut v[..n], c, regs.src::<i64>(*src)),
                    (Type::F32, Buf::F32(v)) => merge(&mut v[..n], c, regs.src::<f32>(*src)),
                    (Type::F64, Buf::F64(v)) => merge(&mut v[..n], c, regs.src::<f64>(*src)),
                    _ => unreachable!("conditional copy type mismatch"),
                }
                Ok(())
            })
        }
        Instr::Unary { op, dst, a } => {
            let ty = prog.regs[*a as usize].ty;
            with_dst!(*dst, |d, regs| {
                match (op, &mut d) {
                    (UnaryOp::Not, Buf::B(v)) => map1(&mut v[..n], regs.src::<bool>(*a), |x| !x),
                    (UnaryOp::Neg, Buf::I32(v)) => {
                        map1(&mut v[..n], regs.src::<i32>(*a), |x| x.wrapping_neg())
                    }
                    (UnaryOp::Neg, Buf::I64(v)) => {
                        map1(&mut v[..n], regs.src::<i64>(*a), |x| x.wrapping_neg())
                    }
                    (UnaryOp::Neg, Buf::F32(v)) => map1(&mut v[..n], regs.src::<f32>(*a), |x| -x),
                    (UnaryOp::Neg, Buf::F64(v)) => map1(&mut v[..n], regs.src::<f64>(*a), |x| -x),
                    _ => unreachable!("unary {op:?} on {ty}"),
                }
                Ok(())
            })
        }
        Instr::Binary { op, dst, a, b } => {
            let ty = prog.regs[*a as usize].ty;
            with_dst!(*dst, |d, regs| {
                binary(*op, ty, &mut d, &regs, *a, *b);
                Ok(())
            })
        }
        Instr::Cast { dst, a } => {
            let from = prog.regs[*a as usize].ty;
            with_dst!(*dst, |d, regs| {
                cast_buf(&mut d, from, &regs, *a);
                Ok(())
            })
        }
        Instr::Call { f, dst, args } => {
            with_dst!(*dst, |d, regs| call(*f, &mut d, &regs, args, ctx, start))
        }
    }
}

#[inline(always)]
fn copy_generic(d: &mut Buf, regs: &Regs, src: Reg, ty: Type) {
    match (ty, d) {
        (Type::Bool, Buf::B(d)) => map1(&mut d[..regs.n], regs.src::<bool>(src), |x| x),
        (Type::I32, Buf::I32(d)) => map1(&mut d[..regs.n], regs.src::<i32>(src), |x| x),
        (Type::I64, Buf::I64(d)) => map1(&mut d[..regs.n], regs.src::<i64>(src), |x| x),
        (Type::F32, Buf::F32(d)) => map1(&mut d[..regs.n], regs.src::<f32>(src), |x| x),
        (Type::F64, Buf::F64(d)) => map1(&mut d[..regs.n], regs.src::<f64>(src), |x| x),
        _ => unreachable!("copy type mismatch"),
    }
}

/// `x ** k` with a per-element base and a uniform integer exponent `2..=POWI_MAX`
/// (`m**3`, `n**4` in Hodgkin-Huxley models): the bases and the exponent, if so.
fn small_power<'a, T: FloatOps>(a: &Src<'a, T>, b: &Src<T>) -> Option<(&'a [T], i32)> {
    match (a, b) {
        (Src::V(x), Src::S(y)) => T::small_int(*y).map(|k| (*x, k)),
        _ => None,
    }
}

#[inline(always)]
fn binary(op: BinaryOp, ty: Type, d: &mut Buf, regs: &Regs, a: Reg, b: Reg) {
    let n = regs.n;
    macro_rules! float_op {
        ($t:ty) => {{
            let (sa, sb) = (regs.src::<$t>(a), regs.src::<$t>(b));
            if matches!(op, BinaryOp::Pow)
                && let Some((x, k)) = small_power(&sa, &sb)
            {
                return <$t as FloatOps>::powi_block(&mut <$t>::take_mut(d)[..n], x, k);
            }
            match (op, d) {
                (BinaryOp::Cmp(c), Buf::B(d)) => cmp(c, &mut d[..n], sa, sb),
                (BinaryOp::Add, d) => map2(&mut <$t>::take_mut(d)[..n], sa, sb, |x, y| x + y),
                (BinaryOp::Sub, d) => map2(&mut <$t>::take_mut(d)[..n], sa, sb, |x, y| x - y),
                (BinaryOp::Mul, d) => map2(&mut <$t>::take_mut(d)[..n], sa, sb, |x, y| x * y),
                (BinaryOp::Div, d) => map2(&mut <$t>::take_mut(d)[..n], sa, sb, |x, y| x / y),
                (op, d) => map2(
                    &mut <$t>::take_mut(d)[..n],
                    sa,
                    sb,
                    <$t as FloatOps>::binop(op),
                ),
            }
        }};
    }
    // Each operation as its own closure, so that the element loop inlines it (a function
    // pointer chosen at run time stays an indirect call per element).
    macro_rules! int_op {
        ($t:ty, $floordiv:path, $mod:path, $pow:path) => {{
            let (sa, sb) = (regs.src::<$t>(a), regs.src::<$t>(b));
            match (op, d) {
                (BinaryOp::Cmp(c), Buf::B(d)) => cmp(c, &mut d[..n], sa, sb),
                (BinaryOp::Add, d) => map2(&mut <$t>::take_mut(d)[..n], sa, sb, |x, y| {
                    x.wrapping_add(y)
                }),
                (BinaryOp::Sub, d) => map2(&mut <$t>::take_mut(d)[..n], sa, sb, |x, y| {
                    x.wrapping_sub(y)
                }),
                (BinaryOp::Mul, d) => map2(&mut <$t>::take_mut(d)[..n], sa, sb, |x, y| {
                    x.wrapping_mul(y)
                }),
                (BinaryOp::FloorDiv, d) => {
                    map2(&mut <$t>::take_mut(d)[..n], sa, sb, |x, y| $floordiv(x, y))
                }
                (BinaryOp::Mod, d) => map2(&mut <$t>::take_mut(d)[..n], sa, sb, |x, y| $mod(x, y)),
                // `x**2` (squared distances): the power's own loop gives the same product.
                (BinaryOp::Pow, d) if matches!(sb, Src::S(2)) => {
                    map1(&mut <$t>::take_mut(d)[..n], sa, |x| x.wrapping_mul(x))
                }
                (BinaryOp::Pow, d) => map2(&mut <$t>::take_mut(d)[..n], sa, sb, |x, y| $pow(x, y)),
                (op, d) => map2(
                    &mut <$t>::take_mut(d)[..n],
                    sa,
                    sb,
                    <$t as IntOps>::binop(op),
                ),
            }
        }};
    }
    match ty {
        Type::F64 => float_op!(f64),
        Type::F32 => float_op!(f32),
        Type::I32 => int_op!(i32, math::floordiv_i32, math::mod_i32, math::pow_i32),
        Type::I64 => int_op!(i64, math::floordiv_i64, math::mod_i64, math::pow_i64),
        Type::Bool => {
            let (sa, sb) = (regs.src::<bool>(a), regs.src::<bool>(b));
            let Buf::B(d) = d else { unreachable!() };
            let d = &mut d[..n];
            match op {
                BinaryOp::And => map2(d, sa, sb, |x, y| x & y),
                BinaryOp::Or => map2(d, sa, sb, |x, y| x | y),
                BinaryOp::Cmp(c) => cmp(c, d, sa, sb),
                _ => unreachable!("{op:?} on booleans"),
            }
        }
    }
}

/// Mutable access to a register's vector of a known element type.
trait TakeMut: Elem {
    fn take_mut(b: &mut Buf) -> &mut Vec<Self>;
}
macro_rules! take_mut {
    ($t:ty, $v:ident) => {
        impl TakeMut for $t {
            #[inline]
            fn take_mut(b: &mut Buf) -> &mut Vec<Self> {
                match b {
                    Buf::$v(v) => v,
                    _ => unreachable!("register type mismatch"),
                }
            }
        }
    };
}
take_mut!(bool, B);
take_mut!(i32, I32);
take_mut!(i64, I64);
take_mut!(f32, F32);
take_mut!(f64, F64);

#[inline(always)]
fn call(
    f: Func,
    d: &mut Buf,
    regs: &Regs,
    args: &[Reg],
    ctx: &RunCtx,
    start: usize,
) -> Result<(), CpuError> {
    let n = regs.n;
    let stream = |site: u32, k: usize| Stream {
        seed: ctx.seed,
        kernel: ctx.kernel_id,
        site,
        step: ctx.step,
        // In the prologue (scalar code) every draw belongs to element 0.
        element: if regs.prologue {
            0
        } else {
            match ctx.list {
                Some(l) => l[start + k] as u32,
                None => (start + k) as u32,
            }
        },
    };
    // The elements of this block and the stream they share, for the block-wise generators.
    let elements = || -> Vec<u32> { (0..n).map(|k| stream(0, k).element).collect() };
    let base = |site: u32| Stream {
        seed: ctx.seed,
        kernel: ctx.kernel_id,
        site,
        step: ctx.step,
        element: 0,
    };
    match f {
        Func::Rand { site } => match d {
            Buf::F64(v) => rng::uniform_f64_block(&mut v[..n], &base(site), &elements()),
            Buf::F32(v) => rng::uniform_f32_block(&mut v[..n], &base(site), &elements()),
            _ => unreachable!(),
        },
        Func::Randn { site } => match d {
            Buf::F64(v) => rng::normal_f64_block(&mut v[..n], &base(site), &elements()),
            Buf::F32(v) => rng::normal_f32_block(&mut v[..n], &base(site), &elements()),
            _ => unreachable!(),
        },
        Func::Poisson { site } => {
            let Buf::I32(v) = d else { unreachable!() };
            let lam: Vec<f64> = match regs.prog.regs[args[0] as usize].ty {
                Type::F32 => (0..n)
                    .map(|k| get(&regs.src::<f32>(args[0]), k) as f64)
                    .collect(),
                _ => (0..n).map(|k| get(&regs.src::<f64>(args[0]), k)).collect(),
            };
            v[..n]
                .iter_mut()
                .enumerate()
                .for_each(|(k, o)| *o = stream(site, k).poisson(lam[k]));
        }
        // Typed as the kernel's float, like Brian2 (its normal approximation is not
        // rounded); float32 kernels draw the rounded f32 variant, as the GPU does.
        Func::Binomial {
            site,
            n: bn,
            p,
            exact: true,
        } => match d {
            Buf::F64(v) => v[..n]
                .iter_mut()
                .enumerate()
                .for_each(|(k, o)| *o = stream(site, k).binomial_exact(bn, p) as f64),
            Buf::F32(v) => v[..n]
                .iter_mut()
                .enumerate()
                .for_each(|(k, o)| *o = stream(site, k).binomial_exact_f32(bn, p as f32) as f32),
            _ => unreachable!("binomial is typed as the kernel's float"),
        },
        Func::Binomial { site, n: bn, p, .. } => match d {
            Buf::F64(v) => v[..n]
                .iter_mut()
                .enumerate()
                .for_each(|(k, o)| *o = stream(site, k).binomial_value(bn, p)),
            Buf::F32(v) => v[..n]
                .iter_mut()
                .enumerate()
                .for_each(|(k, o)| *o = stream(site, k).binomial_f32(bn, p as f32) as f32),
            _ => unreachable!("binomial is typed as the kernel's float"),
        },
        Func::Timestep => {
            let Buf::I64(v) = d else { unreachable!() };
            match (regs.src::<f64>(args[0]), regs.src::<f64>(args[1])) {
                (Src::V(t), Src::S(dt)) => math::timestep_block(&mut v[..n], t, Some(dt), &[]),
                (Src::V(t), Src::V(dt)) => math::timestep_block(&mut v[..n], t, None, dt),
                (t, dt) => map2(&mut v[..n], t, dt, math::timestep),
            }
        }
        Func::Int => {
            let Buf::I32(v) = d else { unreachable!() };
            match regs.prog.regs[args[0] as usize].ty {
                Type::F64 => map1(&mut v[..n], regs.src::<f64>(args[0]), math::int_f64),
                Type::F32 => map1(&mut v[..n], regs.src::<f32>(args[0]), math::int_f32),
                Type::I32 => map1(&mut v[..n], regs.src::<i32>(args[0]), |x| x),
                Type::I64 => map1(&mut v[..n], regs.src::<i64>(args[0]), |x| x as i32),
                Type::Bool => map1(&mut v[..n], regs.src::<bool>(args[0]), |x| x as i32),
            }
        }
        Func::Clip => {
            macro_rules! clip {
                ($t:ty, $f:expr) => {{
                    let (x, lo, hi) = (
                        regs.src::<$t>(args[0]),
                        regs.src::<$t>(args[1]),
                        regs.src::<$t>(args[2]),
                    );
                    let v = <$t>::take_mut(d);
                    for (k, o) in v[..n].iter_mut().enumerate() {
                        *o = $f(get(&x, k), get(&lo, k), get(&hi, k));
                    }
                }};
            }
            match d {
                Buf::F64(_) => clip!(f64, <f64 as FloatOps>::clip),
                Buf::F32(_) => clip!(f32, <f32 as FloatOps>::clip),
                Buf::I32(_) => clip!(i32, |x: i32, lo: i32, hi: i32| {
                    let m = if x < lo { lo } else { x };
                    if m > hi { hi } else { m }
                }),
                Buf::I64(_) => clip!(i64, |x: i64, lo: i64, hi: i64| {
                    let m = if x < lo { lo } else { x };
                    if m > hi { hi } else { m }
                }),
                _ => unreachable!(),
            }
        }
        Func::Where => {
            let c = regs.src::<bool>(args[0]);
            macro_rules! pick {
                ($t:ty) => {{
                    let (a, b) = (regs.src::<$t>(args[1]), regs.src::<$t>(args[2]));
                    select(&mut <$t>::take_mut(d)[..n], c, a, b);
                }};
            }
            match d {
                Buf::F64(_) => pick!(f64),
                Buf::F32(_) => pick!(f32),
                Buf::I32(_) => pick!(i32),
                Buf::I64(_) => pick!(i64),
                Buf::B(_) => pick!(bool),
                Buf::Empty => unreachable!(),
            }
        }
        Func::User(_) => unreachable!("rejected at compile time"),
        // Vectorised exp, log and cos (libm's are a call per element; see math.rs).
        Func::Exp | Func::Log | Func::Cos if matches!(d, Buf::F64(_)) => {
            let Buf::F64(v) = d else { unreachable!() };
            let block = match f {
                Func::Exp => math::exp_block,
                Func::Log => math::ln_block,
                _ => math::cos_block,
            };
            match regs.src::<f64>(args[0]) {
                Src::V(x) => block(&mut v[..n], x),
                Src::S(x) => {
                    let mut one = [0.0];
                    block(&mut one, &[x]);
                    v[..n].fill(one[0]);
                }
            }
        }
        f => match d {
            Buf::F64(v) => map1(
                &mut v[..n],
                regs.src::<f64>(args[0]),
                <f64 as FloatOps>::func(f).expect("float function"),
            ),
            Buf::F32(v) => map1(
                &mut v[..n],
                regs.src::<f32>(args[0]),
                <f32 as FloatOps>::func(f).expect("float function"),
            ),
            Buf::I32(v) => map1(
                &mut v[..n],
                regs.src::<i32>(args[0]),
                <i32 as IntOps>::func(f).expect("int function"),
            ),
            Buf::I64(v) => map1(
                &mut v[..n],
                regs.src::<i64>(args[0]),
                <i64 as IntOps>::func(f).expect("int function"),
            ),
            Buf::B(v) => map1(&mut v[..n], regs.src::<bool>(args[0]), |x| x), // abs(bool)
            Buf::Empty => unreachable!(),
        },
    }
    Ok(())
}

/// One prologue or epilogue instruction (length 1): one out-of-line copy of
/// [`run_instr`] for both, besides the two of the body.
#[inline(never)]
fn run_uniform(i: &Instr, uni: &mut [Buf], ctx: &RunCtx) -> Result<(), CpuError> {
    run_instr(i, uni, &[], true, ctx, 0, 1)
}

/// The body over positions `start..start + len`: every instruction once over the block.
#[inline(always)]
fn run_body_portable(
    ctx: &RunCtx,
    loc: &mut [Buf],
    uni: &[Buf],
    start: usize,
    len: usize,
) -> Result<(), CpuError> {
    for i in &ctx.prog.body {
        run_instr(i, loc, uni, false, ctx, start, len)?;
    }
    Ok(())
}

/// [`run_body_portable`] compiled a second time for AVX2 (256-bit vectors, byte-to-lane
/// widening for the blends), picked at run time. Same IEEE operations, so the same bits:
/// AVX2 does not enable fma, and Rust never contracts `a * b + c`.
fn run_body(
    ctx: &RunCtx,
    loc: &mut [Buf],
    uni: &[Buf],
    start: usize,
    len: usize,
) -> Result<(), CpuError> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn wide(
            ctx: &RunCtx,
            loc: &mut [Buf],
            uni: &[Buf],
            start: usize,
            len: usize,
        ) -> Result<(), CpuError> {
            run_body_portable(ctx, loc, uni, start, len)
        }
        if crate::simd::avx2() {
            // SAFETY: avx2() checked that the CPU has AVX2.
            return unsafe { wide(ctx, loc, uni, start, len) };
        }
    }
    run_body_portable(ctx, loc, uni, start, len)
}

/// Run the program over `n` elements.
pub fn run(ctx: &RunCtx, n: usize) -> Result<Vec<Buf>, CpuError> {
    let prog = ctx.prog;
    // Uniform registers: computed once.
    let mut uni: Vec<Buf> = prog
        .regs
        .iter()
        .map(|r| {
            if r.uniform {
                Buf::new(r.ty, 1)
            } else {
                Buf::Empty
            }
        })
        .collect();
    for i in &prog.prologue {
        run_uniform(i, &mut uni, ctx)?;
    }
    let new_file = || -> Vec<Buf> {
        prog.regs
            .iter()
            .map(|r| {
                if r.uniform {
                    Buf::Empty
                } else {
                    Buf::new(r.ty, BLOCK)
                }
            })
            .collect()
    };
    let run_block = |loc: &mut Vec<Buf>, start: usize| -> Result<(), CpuError> {
        run_body(ctx, loc, &uni, start, BLOCK.min(n - start))
    };
    // A per-element register file from an earlier call, if any (returned below).
    let pooled = || {
        prog.files
            .0
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .map(|(_, loc)| loc)
            .filter(|loc: &Vec<Buf>| loc.len() == prog.regs.len())
            .unwrap_or_else(new_file)
    };
    let give_back = |loc: Vec<Buf>| {
        if let Ok(mut p) = prog.files.0.lock() {
            p.push((Vec::new(), loc));
        }
    };
    if !prog.access.is_empty() {
        // Stores through index variables: blocks of elements that touch distinct slots,
        // in order, give the serial loop's result.
        let mut loc = pooled();
        for (start, len) in ordered_chunks(ctx, n)? {
            run_body(ctx, &mut loc, &uni, start, len)?;
        }
        give_back(loc);
    } else {
        let blocks: Vec<usize> = (0..n).step_by(BLOCK).collect();
        // Handing blocks to rayon's pool costs a cross-thread wake-up per call (tens of
        // microseconds on a loaded VM): only worth it for enough work.
        let work = n.saturating_mul(prog.body.len());
        if prog.parallel_safe && blocks.len() > 1 && work >= PARALLEL_WORK {
            // One contiguous run of blocks per thread, each with a pooled register file
            // (rayon's per-split init would allocate a file for nearly every block).
            crate::threads::install(|| {
                let parts = rayon::current_num_threads().clamp(1, blocks.len());
                let per = blocks.len().div_ceil(parts);
                blocks.par_chunks(per).try_for_each(|run| {
                    let mut loc = pooled();
                    for &start in run {
                        run_block(&mut loc, start)?;
                    }
                    give_back(loc);
                    Ok::<(), CpuError>(())
                })
            })?;
        } else {
            let mut loc = pooled();
            for &start in &blocks {
                run_block(&mut loc, start)?;
            }
            give_back(loc);
        }
    }
    for i in &prog.epilogue {
        run_uniform(i, &mut uni, ctx)?;
    }
    Ok(uni)
}

/// Split positions `0..n` into consecutive chunks (at most [`BLOCK`] long) in which no two
/// elements touch the same slot of an array that the kernel stores to through an index
/// variable. Within a chunk every element loads before any stores, so running chunks in
/// order equals the serial loop (Brian2's semantics for `v_post += w` with repeated
/// targets), while chunks still amortise dispatch like blocks.
fn ordered_chunks(ctx: &RunCtx, n: usize) -> Result<Vec<(usize, usize)>, CpuError> {
    let prog = ctx.prog;
    let scattered: Vec<*mut u8> = prog
        .access
        .iter()
        .filter(|(_, ix, written)| *written && matches!(ix, Index::Var(_)))
        .map(|(v, _, _)| ctx.arrays[*v].ptr)
        .collect();
    // Every access to those arrays, whatever the variable's name (v_pre and v_post may
    // be the same array).
    let touches: Vec<(usize, &Index)> = prog
        .access
        .iter()
        .filter(|(v, _, _)| scattered.contains(&ctx.arrays[*v].ptr))
        .map(|(v, ix, _)| (*v, ix))
        .collect();
    let element = |pos: usize| -> usize {
        match ctx.list {
            Some(l) => l[pos] as usize,
            None => pos,
        }
    };
    let index_of = |iv: usize, e: usize| -> Result<i64, CpuError> {
        let a = &ctx.arrays[iv];
        if e >= a.len {
            return Err(CpuError::Index {
                var: format!("#{iv}"),
                index: e as i64,
                len: a.len,
            });
        }
        Ok(match a.ty {
            Type::I32 => unsafe { a.slice::<i32>()[e] as i64 },
            Type::I64 => unsafe { a.slice::<i64>()[e] },
            t => {
                return Err(CpuError::Unsupported(format!(
                    "index variable #{iv} has type {t}"
                )));
            }
        })
    };
    // Per touched array, the chunk that last touched each slot (chunk ids start at 1, so
    // a new chunk needs no clearing).
    let mut stamps: Vec<Vec<u32>> = touches
        .iter()
        .map(|&(v, _)| vec![0u32; ctx.arrays[v].len.max(1)])
        .collect();
    let mut chunks = Vec::new();
    let mut chunk = 1u32;
    let mut mine: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for pos in 0..n {
        let e = element(pos);
        mine.clear();
        let mut clash = false;
        for (t, &(v, ix)) in touches.iter().enumerate() {
            let slot = match ix {
                Index::Elem => e as i64,
                Index::Zero => 0,
                Index::Var(iv) => index_of(*iv, e)?,
                Index::Pos => continue,
            };
            let len = ctx.arrays[v].len;
            if slot < 0 || slot as usize >= len.max(1) {
                return Err(CpuError::Index {
                    var: format!("#{v}"),
                    index: slot,
                    len,
                });
            }
            // Arrays reached through several variables share their stamps.
            let owner = touches
                .iter()
                .position(|&(u, _)| ctx.arrays[u].ptr == ctx.arrays[v].ptr)
                .unwrap_or(t);
            clash |= stamps[owner][slot as usize] == chunk;
            mine.push((owner, slot as usize));
        }
        if pos - start == BLOCK || clash {
            chunks.push((start, pos - start));
            start = pos;
            chunk += 1;
        }
        for &(owner, slot) in &mine {
            stamps[owner][slot] = chunk;
        }
    }
    if n > start {
        chunks.push((start, n - start));
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blends_pick_like_a_branch() {
        let c: Vec<bool> = (0..37).map(|k| k % 3 == 0 || k == 36).collect();
        let a: Vec<f64> = (0..37).map(|k| k as f64 * -1.5).collect();
        let b: Vec<f64> = (0..37)
            .map(|k| if k == 4 { f64::NAN } else { k as f64 })
            .collect();
        let want: Vec<u64> = (0..37)
            .map(|k| if c[k] { a[k] } else { b[k] }.to_bits())
            .collect();
        let mut d = vec![0.0f64; 37];
        select(&mut d, Src::V(&c), Src::V(&a), Src::V(&b));
        assert_eq!(d.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
        let mut m = b.clone();
        merge(&mut m, Src::V(&c), Src::V(&a));
        assert_eq!(m.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
        let (ci, ai): (Vec<bool>, Vec<i32>) = (c.clone(), (0..37).map(|k| -k).collect());
        let mut di = vec![0i32; 37];
        select(&mut di, Src::V(&ci), Src::V(&ai), Src::S(7));
        for k in 0..37 {
            assert_eq!(di[k], if ci[k] { ai[k] } else { 7 });
        }
        let mut db = vec![false; 37];
        select(&mut db, Src::V(&c), Src::S(true), Src::V(&c));
        assert_eq!(db, c);
    }

    #[test]
    fn any_set_sees_every_position() {
        for len in [0, 1, 7, 8, 9, 16, 31, 32, 33] {
            assert!(!any_set(&vec![false; len]));
            for k in 0..len {
                let mut v = vec![false; len];
                v[k] = true;
                assert!(any_set(&v), "len {len}, set at {k}");
            }
        }
    }
}
