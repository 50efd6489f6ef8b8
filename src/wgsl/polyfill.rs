//! Helper functions a kernel may call: numpy's floored `//` and `%`, conversions with
//! x86's out-of-range results, NaN-propagating clip, and the hand-written libraries in
//! `shaders/` (f64 math, f32 math, Philox).

use std::collections::BTreeSet;

use crate::ir::Type;

pub const F64_MATH: &str = include_str!("../../shaders/f64_math.wgsl");
pub const F32_MATH: &str = include_str!("../../shaders/f32_math.wgsl");
pub const SOFT_F64: &str = include_str!("../../shaders/soft_f64.wgsl");

/// One helper, instantiated for a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Helper {
    FloorDivInt(Type),
    ModInt(Type),
    PowInt(Type),
    FloorDivFloat(Type),
    ModFloat(Type),
    Clip(Type),
    Sign(Type),
    ToI32(Type),
    ToI64(Type),
    Timestep,
    Inf(Type),
    Nan(Type),
    IsNan(Type),
    F64Math,
    F32Math,
    /// float64 from u32 arithmetic (adapters without SHADER_F64).
    SoftF64,
    /// Philox and the f32 distributions (no f64 needed).
    Philox,
    /// The f64 distributions.
    PhiloxF64,
}

pub fn wgsl_type(t: Type) -> &'static str {
    match t {
        Type::Bool => "bool",
        Type::I32 => "i32",
        Type::I64 => "i64",
        Type::F32 => "f32",
        Type::F64 => "f64",
    }
}

fn suffix(t: Type) -> &'static str {
    match t {
        Type::I32 => "i",
        Type::I64 => "li",
        Type::F32 => "f",
        Type::F64 => "lf",
        Type::Bool => "",
    }
}

/// Helpers a helper itself calls.
pub fn dependencies(h: Helper) -> Vec<Helper> {
    use Helper::*;
    match h {
        FloorDivFloat(t) | ModFloat(t) => {
            vec![
                if t == Type::F64 { F64Math } else { F32Math },
                IsNan(t),
                Nan(t),
            ]
        }
        Clip(t) | Sign(t) | ToI32(t) | ToI64(t) if t.is_float() => vec![IsNan(t), Nan(t)],
        Timestep => vec![ToI64(Type::F64), IsNan(Type::F64), Nan(Type::F64)],
        Inf(t) | Nan(t) if t == Type::F64 => vec![],
        PhiloxF64 => vec![Philox, F64Math],
        // Its 64-bit products use Philox's `b2_mul_hilo` (the shaker keeps only that).
        SoftF64 => vec![Philox],
        _ => vec![],
    }
}

/// WGSL source of one helper.
pub fn source(h: Helper) -> String {
    use Helper::*;
    match h {
        F64Math => F64_MATH.to_string(),
        F32Math => F32_MATH.to_string(),
        SoftF64 => format!("{SOFT_F64}\n{}", super::soft_programs::wgsl()),
        Philox => crate::rng::wgsl_source(false).to_string(),
        PhiloxF64 => crate::rng::wgsl_source(true)[crate::rng::wgsl_source(false).len()..].to_string(),
        FloorDivInt(t) => {
            let (ty, s) = (wgsl_type(t), suffix(t));
            format!(
                "fn b2_floordiv_{ty}(a: {ty}, b: {ty}) -> {ty} {{
    if (b == 0{s}) {{ return 0{s}; }}
    let q = a / b;
    if ((a % b != 0{s}) && ((a < 0{s}) != (b < 0{s}))) {{ return q - 1{s}; }}
    return q;
}}\n"
            )
        }
        ModInt(t) => {
            let (ty, s) = (wgsl_type(t), suffix(t));
            format!(
                "fn b2_mod_{ty}(a: {ty}, b: {ty}) -> {ty} {{
    if (b == 0{s}) {{ return 0{s}; }}
    let r = a % b;
    if (r != 0{s} && ((r < 0{s}) != (b < 0{s}))) {{ return r + b; }}
    return r;
}}\n"
            )
        }
        PowInt(t) => {
            let (ty, s) = (wgsl_type(t), suffix(t));
            format!(
                "fn b2_pow_{ty}(base: {ty}, exp: {ty}) -> {ty} {{
    if (exp < 0{s}) {{
        if (base == 1{s}) {{ return 1{s}; }}
        if (base == -1{s}) {{ return select(-1{s}, 1{s}, (exp & 1{s}) == 0{s}); }}
        return 0{s};
    }}
    var b = base;
    var e = exp;
    var acc = 1{s};
    while (e > 0{s}) {{
        if ((e & 1{s}) == 1{s}) {{ acc = acc * b; }}
        b = b * b;
        e = e >> 1u;
    }}
    return acc;
}}\n"
            )
        }
        FloorDivFloat(t) => {
            let (ty, s) = (wgsl_type(t), suffix(t));
            // numpy's npy_divmod, on an exact fmod.
            format!(
                "fn b2_floordiv_{ty}(a: {ty}, b: {ty}) -> {ty} {{
    // NaN first, and no float `!=` below: naga emits it as an ordered comparison.
    if (b2_isnan_{ty}(a) || b2_isnan_{ty}(b)) {{ return b2_nan_{ty}(); }}
    if (b == 0.0{s}) {{ return a / b; }}
    let m = b2_fmod_{ty}(a, b);
    if (b2_isnan_{ty}(m)) {{ return m; }}
    var div = (a - m) / b;
    if (!(m == 0.0{s}) && ((b < 0.0{s}) != (m < 0.0{s}))) {{ div = div - 1.0{s}; }}
    if (!(div == 0.0{s})) {{
        var fd = floor(div);
        if (div - fd > 0.5{s}) {{ fd = fd + 1.0{s}; }}
        return fd;
    }}
    let q = a / b;
    return select(0.0{s}, -0.0{s}, q < 0.0{s} || (q == 0.0{s} && 1.0{s} / q < 0.0{s}));
}}\n"
            )
        }
        ModFloat(t) => {
            let (ty, s) = (wgsl_type(t), suffix(t));
            format!(
                "fn b2_mod_{ty}(a: {ty}, b: {ty}) -> {ty} {{
    if (b2_isnan_{ty}(a) || b2_isnan_{ty}(b)) {{ return b2_nan_{ty}(); }}
    let m = b2_fmod_{ty}(a, b);
    if (b == 0.0{s} || b2_isnan_{ty}(m)) {{ return m; }}
    if (!(m == 0.0{s})) {{
        if ((b < 0.0{s}) != (m < 0.0{s})) {{ return m + b; }}
        return m;
    }}
    return select(0.0{s}, -0.0{s}, b < 0.0{s});
}}\n"
            )
        }
        Clip(t) if t.is_float() => {
            let ty = wgsl_type(t);
            format!(
                "fn b2_clip_{ty}(x: {ty}, lo: {ty}, hi: {ty}) -> {ty} {{
    if (b2_isnan_{ty}(x) || b2_isnan_{ty}(lo) || b2_isnan_{ty}(hi)) {{ return b2_nan_{ty}(); }}
    // numpy's clip with scalar bounds: keeps x (and its -0.0) unless out of range.
    let m = select(x, lo, x < lo);
    return select(m, hi, m > hi);
}}\n"
            )
        }
        Clip(t) => {
            let ty = wgsl_type(t);
            format!(
                "fn b2_clip_{ty}(x: {ty}, lo: {ty}, hi: {ty}) -> {ty} {{ let m = select(x, lo, x < lo); return select(m, hi, m > hi); }}\n"
            )
        }
        Sign(t) => {
            let (ty, s) = (wgsl_type(t), suffix(t));
            if t.is_float() {
                format!(
                    "fn b2_sign_{ty}(x: {ty}) -> {ty} {{
    if (b2_isnan_{ty}(x)) {{ return x; }}
    if (x > 0.0{s}) {{ return 1.0{s}; }}
    if (x < 0.0{s}) {{ return -1.0{s}; }}
    // +0 for -0 too, as numpy; `abs` keeps Mesa from turning the branches into fsign,
    // which returns -0.
    return abs(x);
}}\n"
                )
            } else {
                format!(
                    "fn b2_sign_{ty}(x: {ty}) -> {ty} {{ return select(select(0{s}, -1{s}, x < 0{s}), 1{s}, x > 0{s}); }}\n"
                )
            }
        }
        ToI32(t) => {
            let (ty, s) = (wgsl_type(t), suffix(t));
            // x86's cvttsd2si: NaN and out-of-range values give i32::MIN.
            format!(
                "fn b2_to_i32_{ty}(x: {ty}) -> i32 {{
    if (b2_isnan_{ty}(x) || x >= 2147483648.0{s} || x < -2147483648.0{s}) {{ return bitcast<i32>(0x80000000u); }}
    return i32(x);
}}\n"
            )
        }
        ToI64(t) => {
            let (ty, s) = (wgsl_type(t), suffix(t));
            format!(
                "fn b2_to_i64_{ty}(x: {ty}) -> i64 {{
    if (b2_isnan_{ty}(x) || x >= 9223372036854775807.0{s} || x < -9223372036854775808.0{s}) {{ return i64(bitcast<i32>(0x80000000u)) * 4294967296li; }}
    return i64(x);
}}\n"
            )
        }
        Timestep => "fn b2_timestep(t: f64, dt: f64) -> i64 {\n    return b2_to_i64_f64((t + 1e-3lf * dt) / dt);\n}\n".into(),
        Inf(Type::F64) => "fn b2_inf_f64() -> f64 { return f64(bitcast<f32>(0x7f800000u)); }\n".into(),
        Nan(Type::F64) => "fn b2_nan_f64() -> f64 { return f64(bitcast<f32>(0x7fc00000u)); }\n".into(),
        Inf(_) => "fn b2_inf_f32() -> f32 { return bitcast<f32>(0x7f800000u); }\n".into(),
        Nan(_) => "fn b2_nan_f32() -> f32 { return bitcast<f32>(0x7fc00000u); }\n".into(),
        IsNan(Type::F32) => String::new(), // in f32_math.wgsl
        // Drivers may fold `x == x` to true (no NaN-preserving float controls), so test the
        // bits of the f32 conversion, which keeps NaN-ness.
        IsNan(_) => "fn b2_isnan_f64(x: f64) -> bool { return (bitcast<u32>(f32(x)) & 0x7fffffffu) > 0x7f800000u; }\n".into(),
    }
}

/// Top-level items (`fn`, `const` and `var<private>`) of a WGSL library, with their names.
fn items(lib: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in lib.lines() {
        let name = ["fn ", "const ", "var<private> "].iter().find_map(|kw| {
            line.strip_prefix(kw).map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
        });
        if let Some(name) = name {
            if let Some(item) = current.take() {
                out.push(item);
            }
            current = Some((name, String::new()));
        }
        if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out.extend(current);
    out
}

fn identifiers(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// The items of `libs` that `roots` (kernel and helper code) reach, in library order:
/// naga and the driver then see only what the kernel calls, not the whole f64 library.
fn shake(libs: &[&str], roots: &str) -> String {
    use std::collections::{HashMap, HashSet};
    let all: Vec<(String, String)> = libs.iter().flat_map(|l| items(l)).collect();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, (name, _)) in all.iter().enumerate() {
        index.entry(name.as_str()).or_insert(i);
    }
    let mut keep = HashSet::new();
    let mut stack: Vec<usize> = identifiers(roots)
        .filter_map(|w| index.get(w).copied())
        .collect();
    while let Some(i) = stack.pop() {
        if keep.insert(i) {
            let body = &all[i].1;
            stack.extend(identifiers(body).filter_map(|w| index.get(w).copied()));
        }
    }
    let mut order: Vec<usize> = keep.into_iter().collect();
    order.sort_unstable();
    order.into_iter().map(|i| all[i].1.as_str()).collect()
}

/// All helpers needed (with dependencies), as one source text. The hand-written
/// libraries are reduced to what `code` (the kernels) and the other helpers reach.
pub fn collect_for(used: &BTreeSet<Helper>, code: &str) -> String {
    let mut all = BTreeSet::new();
    let mut stack: Vec<Helper> = used.iter().copied().collect();
    while let Some(h) = stack.pop() {
        if all.insert(h) {
            stack.extend(dependencies(h));
            if let Helper::IsNan(Type::F32) | Helper::Nan(Type::F32) = h {
                stack.push(Helper::F32Math);
            }
        }
    }
    let mut small = String::new();
    let mut libs: Vec<String> = Vec::new();
    for h in all {
        match h {
            Helper::F64Math
            | Helper::F32Math
            | Helper::SoftF64
            | Helper::Philox
            | Helper::PhiloxF64 => libs.push(source(h)),
            h => {
                small.push_str(&source(h));
                small.push('\n');
            }
        }
    }
    let lib_refs: Vec<&str> = libs.iter().map(String::as_str).collect();
    let roots = format!("{small}\n{code}");
    format!("{}\n{small}", shake(&lib_refs, &roots))
}
