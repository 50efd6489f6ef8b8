//! The f64 math library (`shaders/f64_math.wgsl`) on the GPU against Rust's std, which
//! calls the platform libm (glibc on Linux, as numpy does).
//!
//! Each function runs once over a few thousand inputs: random bit patterns over every
//! exponent, plus dense samples near its special points (0, +-1, overflow and underflow
//! thresholds, multiples of pi/2, ...). The stated bound (the header of the WGSL file) is
//! 2 ulp for every function and exact for fmod; special values must match exactly (NaN-
//! ness, the sign of infinities and of zeros). A naga pass checks that the library never
//! applies a WGSL builtin transcendental to an f64.

mod common;

use naga::valid::{Capabilities, ValidationFlags, Validator};

const LIB: &str = include_str!("../shaders/f64_math.wgsl");
/// `b2_fmod_f32` lives with the other float32 helpers (it needs no f64).
const F32_LIB: &str = include_str!("../shaders/f32_math.wgsl");

/// The bound stated at the top of `shaders/f64_math.wgsl`.
const BOUND_ULP: u64 = 2;

// ---------------------------------------------------------------------------------------
// The naga check (self-contained so that it can move into the crate).

/// WGSL builtins that GLSL.std.450 (and so Vulkan) defines for 16/32-bit floats only.
fn is_transcendental(f: naga::MathFunction) -> bool {
    use naga::MathFunction as M;
    matches!(
        f,
        M::Exp
            | M::Exp2
            | M::Log
            | M::Log2
            | M::Pow
            | M::Sin
            | M::Cos
            | M::Tan
            | M::Sinh
            | M::Cosh
            | M::Tanh
            | M::Asin
            | M::Acos
            | M::Atan
            | M::Atan2
            | M::Asinh
            | M::Acosh
            | M::Atanh
    )
}

/// Panics if `module_src` applies a builtin transcendental to an f64 (scalar or vector)
/// anywhere; the same builtins on f32 are fine. Types come from naga's validator.
pub fn assert_no_f64_transcendentals(module_src: &str) {
    let module = naga::front::wgsl::parse_str(module_src)
        .unwrap_or_else(|e| panic!("WGSL parse error:\n{}", e.emit_to_string(module_src)));
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("WGSL validation error:\n{}", e.emit_to_string(module_src)));
    let check = |name: &str, fun: &naga::Function, finfo: &naga::valid::FunctionInfo| {
        for (_, expr) in fun.expressions.iter() {
            if let naga::Expression::Math { fun: mf, arg, .. } = *expr {
                let arg_ty = finfo[arg].ty.inner_with(&module.types);
                if is_transcendental(mf) && arg_ty.scalar() == Some(naga::Scalar::F64) {
                    panic!("function '{name}' applies the builtin {mf:?} to an f64");
                }
            }
        }
    };
    for (handle, fun) in module.functions.iter() {
        check(fun.name.as_deref().unwrap_or("?"), fun, &info[handle]);
    }
    for (i, ep) in module.entry_points.iter().enumerate() {
        check(&ep.name, &ep.function, info.get_entry_point(i));
    }
}

#[test]
fn library_has_no_f64_transcendentals() {
    assert_no_f64_transcendentals(LIB);
    // The library needs nothing beyond FLOAT64, and stays off ldexp/frexp/fma, which
    // HLSL lacks for doubles or Vulkan may evaluate unfused.
    let module = naga::front::wgsl::parse_str(LIB).unwrap();
    Validator::new(ValidationFlags::all(), Capabilities::FLOAT64)
        .validate(&module)
        .expect("f64_math.wgsl needs only the FLOAT64 capability");
    for (_, fun) in module.functions.iter() {
        for (_, expr) in fun.expressions.iter() {
            if let naga::Expression::Math { fun: mf, .. } = *expr {
                use naga::MathFunction as M;
                assert!(
                    !matches!(mf, M::Ldexp | M::Frexp | M::Fma | M::Modf),
                    "{:?} uses {mf:?}",
                    fun.name
                );
            }
        }
    }
}

#[test]
fn checker_catches_f64_builtins() {
    let bad = "fn f(x: f64) -> f64 { return exp(x) + 1.0lf; }";
    assert!(std::panic::catch_unwind(|| assert_no_f64_transcendentals(bad)).is_err());
    let bad_vec = "fn f(x: vec2<f64>) -> vec2<f64> { return sin(x); }";
    assert!(std::panic::catch_unwind(|| assert_no_f64_transcendentals(bad_vec)).is_err());
    let bad_pow = "fn f(x: f64) -> f64 { return pow(x, 2.0lf); }";
    assert!(std::panic::catch_unwind(|| assert_no_f64_transcendentals(bad_pow)).is_err());
    // f32 builtins are fine.
    assert_no_f64_transcendentals("fn g(x: f32) -> f32 { return exp(x) * sin(x); }");
}

// ---------------------------------------------------------------------------------------
// Inputs

use common::{Rng, exprel_ref};

/// 2^e exactly, subnormals included (-1074 <= e <= 1023).
fn pow2(e: i32) -> f64 {
    assert!((-1074..=1023).contains(&e));
    if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (e + 1074))
    }
}

/// `B2_F64_MATH_SCALE=k` multiplies the random sample counts (default 1) for a longer
/// search of the worst case.
fn scale(n: usize) -> usize {
    let k = std::env::var("B2_F64_MATH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    n * k
}

/// A random mantissa times 2^e, e uniform in [lo, hi]; optionally of random sign.
fn log_uniform(rng: &mut Rng, n: usize, lo: i32, hi: i32, signed: bool) -> Vec<f64> {
    (0..scale(n))
        .map(|_| {
            let e = lo + rng.below((hi - lo + 1) as u64) as i32;
            let v = (1.0 + rng.unit()) * pow2(e.max(-1074));
            if signed { rng.sign() * v } else { v }
        })
        .collect()
}

fn uniform(rng: &mut Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..scale(n)).map(|_| rng.uniform(lo, hi)).collect()
}

fn random_bits(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..scale(n))
        .map(|_| f64::from_bits(rng.next_u64()))
        .collect()
}

/// Each point and its neighbours up to `k` ulps away on both sides.
fn around(points: &[f64], k: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for &p in points {
        out.push(p);
        let (mut up, mut down) = (p, p);
        for _ in 0..k {
            up = up.next_up();
            down = down.next_down();
            out.push(up);
            out.push(down);
        }
    }
    out
}

/// Values every function sees: zeros, infinities, NaN, extremes, subnormals.
fn specials() -> Vec<f64> {
    let mut v = vec![
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        f64::MAX,
        -f64::MAX,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        pow2(-1074),
        -pow2(-1074),
        pow2(-1060),
        1.0,
        -1.0,
        0.5,
        -0.5,
        2.0,
        1e-300,
        1e300,
    ];
    v.extend(around(&[1.0, -1.0], 3));
    v
}

// ---------------------------------------------------------------------------------------
// Running and comparing

/// Maps doubles onto integers so that neighbours differ by 1 (-0 and +0 both map to 0).
fn ordered(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    if b < 0 { i64::MIN - b } else { b }
}

/// ulps between `got` and `want`; u64::MAX when they differ in NaN-ness, in the sign of
/// a zero, or when one is infinite and the other not.
fn ulp_diff(got: f64, want: f64) -> u64 {
    if got.is_nan() || want.is_nan() {
        return if got.is_nan() && want.is_nan() {
            0
        } else {
            u64::MAX
        };
    }
    if got == want {
        return if got.is_sign_negative() == want.is_sign_negative() {
            0
        } else {
            u64::MAX
        };
    }
    if got.is_infinite() || want.is_infinite() {
        return u64::MAX;
    }
    ordered(got).abs_diff(ordered(want))
}

fn gpu_f64() -> Option<&'static brian2wgpu::gpu::GpuContext> {
    let ctx = common::gpu()?;
    if !ctx.supports_f64() {
        eprintln!("skipping: adapter '{}' lacks SHADER_F64", ctx.info.name);
        return None;
    }
    Some(ctx)
}

fn to_bytes<T: bytemuck::Pod>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

/// Runs `call` (a WGSL expression of `x` and `y`) over the inputs in one dispatch.
fn run<T: bytemuck::Pod>(name: &str, ty: &str, call: &str, xs: &[T], ys: &[T]) -> Vec<T> {
    let ctx = gpu_f64().expect("checked by the caller");
    let src = format!(
        "{LIB}
{F32_LIB}
@group(0) @binding(0) var<storage, read_write> b2t_x: array<{ty}>;
@group(0) @binding(1) var<storage, read_write> b2t_y: array<{ty}>;
@group(0) @binding(2) var<storage, read_write> b2t_out: array<{ty}>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {{
    let i = id.x;
    if (i < arrayLength(&b2t_out)) {{
        let x = b2t_x[i];
        let y = b2t_y[i];
        b2t_out[i] = {call};
    }}
}}
"
    );
    let n = xs.len();
    let zero = vec![T::zeroed(); n];
    let mut bufs = vec![to_bytes(xs), to_bytes(ys), to_bytes(&zero)];
    ctx.run_compute(name, &src, "main", &mut bufs, n.div_ceil(64) as u32)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    bytemuck::cast_slice(&bufs[2]).to_vec()
}

/// Worst case of a sweep.
struct Worst {
    ulps: u64,
    x: f64,
    y: f64,
    got: f64,
    want: f64,
}

fn compare(
    name: &str,
    xs: &[f64],
    ys: &[f64],
    got: &[f64],
    want: impl Fn(f64, f64) -> f64,
) -> Worst {
    let mut w = Worst {
        ulps: 0,
        x: 0.0,
        y: 0.0,
        got: 0.0,
        want: 0.0,
    };
    let mut differ = 0usize;
    for i in 0..xs.len() {
        let r = want(xs[i], ys[i]);
        let d = ulp_diff(got[i], r);
        differ += (d != 0) as usize;
        if d > w.ulps || i == 0 {
            w = Worst {
                ulps: d,
                x: xs[i],
                y: ys[i],
                got: got[i],
                want: r,
            };
        }
    }
    println!(
        "{name:<8} {:>6} inputs  {differ} differ  max {} ulp  (at x = {:e}, y = {:e}: got {:e}, want {:e})",
        xs.len(),
        w.ulps,
        w.x,
        w.y,
        w.got,
        w.want
    );
    w
}

fn assert_within(name: &str, w: &Worst, bound: u64) {
    assert!(
        w.ulps <= bound,
        "{name}: {} ulp from Rust std exceeds the stated bound of {bound} ulp \
         (shaders/f64_math.wgsl header) at x = {:e} ({:#018x}), y = {:e}: got {:e} \
         ({:#018x}), want {:e} ({:#018x})",
        if w.ulps == u64::MAX {
            "special-value mismatch, infinite".to_string()
        } else {
            w.ulps.to_string()
        },
        w.x,
        w.x.to_bits(),
        w.y,
        w.got,
        w.got.to_bits(),
        w.want,
        w.want.to_bits()
    );
}

/// One dispatch of `b2_{name}_f64` over `xs`, checked against `want` to `bound` ulps.
fn sweep1(name: &str, mut xs: Vec<f64>, want: fn(f64) -> f64, bound: u64) {
    if gpu_f64().is_none() {
        return;
    }
    xs.extend(specials());
    let ys = vec![0.0; xs.len()];
    let got = run(name, "f64", &format!("b2_{name}_f64(x)"), &xs, &ys);
    let w = compare(name, &xs, &ys, &got, |x, _| want(x));
    assert_within(name, &w, bound);
}

fn sweep2(name: &str, xs: Vec<f64>, ys: Vec<f64>, want: fn(f64, f64) -> f64, bound: u64) {
    if gpu_f64().is_none() {
        return;
    }
    let got = run(name, "f64", &format!("b2_{name}_f64(x, y)"), &xs, &ys);
    let w = compare(name, &xs, &ys, &got, want);
    assert_within(name, &w, bound);
}

/// Exact expectations: (input, expected), compared with `ulp_diff == 0`.
fn exact1(name: &str, cases: &[(f64, f64)]) {
    if gpu_f64().is_none() {
        return;
    }
    let xs: Vec<f64> = cases.iter().map(|c| c.0).collect();
    let got = run(
        name,
        "f64",
        &format!("b2_{name}_f64(x)"),
        &xs,
        &vec![0.0; xs.len()],
    );
    for (&(x, want), &g) in cases.iter().zip(&got) {
        assert_eq!(
            ulp_diff(g, want),
            0,
            "{name}({x:e}) = {g:e}, want exactly {want:e}"
        );
    }
}

fn exact2(name: &str, cases: &[(f64, f64, f64)]) {
    if gpu_f64().is_none() {
        return;
    }
    let xs: Vec<f64> = cases.iter().map(|c| c.0).collect();
    let ys: Vec<f64> = cases.iter().map(|c| c.1).collect();
    let got = run(name, "f64", &format!("b2_{name}_f64(x, y)"), &xs, &ys);
    for (&(x, y, want), &g) in cases.iter().zip(&got) {
        assert_eq!(
            ulp_diff(g, want),
            0,
            "{name}({x:e}, {y:e}) = {g:e}, want exactly {want:e}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The adapter's f64 behaviour, printed for reference (the library needs only floor).

#[test]
fn device_f64_behaviour() {
    let Some(ctx) = gpu_f64() else { return };
    let xs = [
        f64::MIN_POSITIVE,
        pow2(-1074),
        1.0 + pow2(-30),
        -(1.0 + pow2(-29)),
        f64::NAN,
        pow2(40) + 0.5,
        1.0,
        pow2(-60),
    ];
    let src = "@group(0) @binding(0) var<storage, read_write> a: array<f64>;
@group(0) @binding(1) var<storage, read_write> o: array<f64>;
@compute @workgroup_size(1) fn main() {
    o[0] = a[0] * 0.5lf;            // subnormal result
    o[1] = a[1] * 2.0lf;            // subnormal input
    o[2] = a[2] * a[2] + a[3];      // 2^-60 if contracted to fma, else 0
    o[3] = fma(a[2], a[2], a[3]);   // 2^-60 if fused
    o[4] = select(0.0lf, 1.0lf, a[4] != a[4]);
    o[5] = select(0.0lf, 1.0lf, !(a[4] == a[4]));
    o[6] = round(a[5]);
    o[7] = trunc(a[5]);
    o[8] = floor(a[5]);
    o[9] = (a[6] + a[7]) - a[6];    // 0 as written, 2^-60 if reassociated
}";
    let mut bufs = vec![to_bytes(&xs), to_bytes(&[0.0f64; 10])];
    ctx.run_compute("f64_probe", src, "main", &mut bufs, 1)
        .unwrap();
    let o: &[f64] = bytemuck::cast_slice(&bufs[1]);
    println!("adapter: {} ({:?})", ctx.info.name, ctx.info.driver_info);
    println!("  f64 subnormal results kept:     {}", o[0] == pow2(-1023));
    println!("  f64 subnormal inputs kept:      {}", o[1] == pow2(-1073));
    println!("  a * b + c contracted to fma:    {}", o[2] != 0.0);
    println!("  fma() fused:                    {}", o[3] != 0.0);
    println!("  NaN != NaN is true:             {}", o[4] == 1.0);
    println!("  !(NaN == NaN) is true:          {}", o[5] == 1.0);
    println!("  round(2^40 + 0.5) = {:e} (want 2^40)", o[6]);
    println!("  trunc(2^40 + 0.5) = {:e} (want 2^40)", o[7]);
    println!("  floor(2^40 + 0.5) = {:e} (want 2^40)", o[8]);
    println!("  (1 + 2^-60) - 1 reassociated:   {}", o[9] != 0.0);
    // The library relies on floor (it avoids round and trunc).
    assert_eq!(o[8], pow2(40));
}

// ---------------------------------------------------------------------------------------
// Sweeps

fn exp_inputs(rng: &mut Rng) -> Vec<f64> {
    let mut xs = random_bits(rng, 1000);
    xs.extend(uniform(rng, 3000, -750.0, 712.0));
    xs.extend(uniform(rng, 1000, -1.0, 1.0));
    xs.extend(log_uniform(rng, 1000, -80, 3, true));
    // Overflow, the subnormal boundary, and underflow to 0.
    xs.extend(around(
        &[
            709.782712893384,
            709.0,
            -708.3964185322641,
            -708.4,
            -745.1332191019411,
            -744.4400719213812,
            -745.0,
        ],
        20,
    ));
    xs.extend(uniform(rng, 500, -745.2, -708.0));
    xs
}

#[test]
fn exp() {
    let mut rng = Rng::new(1);
    sweep1("exp", exp_inputs(&mut rng), f64::exp, BOUND_ULP);
}

#[test]
fn expm1() {
    let mut rng = Rng::new(2);
    let mut xs = exp_inputs(&mut rng);
    xs.extend(log_uniform(&mut rng, 2000, -1074, 0, true));
    xs.extend(uniform(&mut rng, 1000, -45.0, 50.0));
    xs.extend(around(
        &[
            -40.0,
            45.0,
            0.34657359027997264,
            -0.34657359027997264,
            1.0397207708399179,
        ],
        10,
    ));
    sweep1("expm1", xs, f64::exp_m1, BOUND_ULP);
}

#[test]
fn exprel() {
    let mut rng = Rng::new(3);
    let mut xs = exp_inputs(&mut rng);
    xs.extend(log_uniform(&mut rng, 2000, -60, 0, true));
    xs.extend(uniform(&mut rng, 1000, -45.0, 50.0));
    xs.extend(around(&[1e-16, -1e-16, 717.0, -40.0, 45.0], 5));
    sweep1("exprel", xs, exprel_ref, BOUND_ULP);
}

fn log_inputs(rng: &mut Rng) -> Vec<f64> {
    let mut xs = random_bits(rng, 1000);
    xs.extend(log_uniform(rng, 3000, -1074, 1023, false));
    xs.extend(uniform(rng, 1000, 0.5, 2.0));
    xs.extend(uniform(rng, 1000, 1.0 - 1e-6, 1.0 + 1e-6));
    xs.extend(around(
        &[
            1.0,
            std::f64::consts::SQRT_2,
            std::f64::consts::FRAC_1_SQRT_2,
            std::f64::consts::E,
            2.0,
            0.5,
        ],
        50,
    ));
    xs.extend((-20..=22).map(|k| 10f64.powi(k)));
    xs
}

#[test]
fn log() {
    let mut rng = Rng::new(4);
    sweep1("log", log_inputs(&mut rng), f64::ln, BOUND_ULP);
}

#[test]
fn log10() {
    let mut rng = Rng::new(5);
    sweep1("log10", log_inputs(&mut rng), f64::log10, BOUND_ULP);
}

#[test]
fn log1p() {
    let mut rng = Rng::new(6);
    let mut xs = random_bits(&mut rng, 1000);
    xs.extend(log_uniform(&mut rng, 2000, -1074, 1023, false));
    xs.extend(log_uniform(&mut rng, 2000, -60, -1, true));
    xs.extend(uniform(&mut rng, 1000, -1.0, 1.0));
    xs.extend(around(
        &[-1.0, -0.5, 0.41421356237309503, -0.2928932188134524, 1.0],
        30,
    ));
    sweep1("log1p", xs, f64::ln_1p, BOUND_ULP);
}

fn trig_inputs(rng: &mut Rng) -> Vec<f64> {
    let mut xs = random_bits(rng, 1000);
    xs.extend(uniform(rng, 2000, -10.0, 10.0));
    xs.extend(log_uniform(rng, 2000, -40, 1023, true));
    xs.extend(log_uniform(rng, 1000, 20, 30, true));
    // Near multiples of pi/2 (the reduced argument cancels), up to 1e5 and beyond the
    // Cody-Waite limit of 2^26.
    let mut near = Vec::new();
    for _ in 0..300 {
        let n = rng.below(100_000) as f64;
        near.push(n * std::f64::consts::FRAC_PI_2);
    }
    for n in [
        1.0,
        2.0,
        3.0,
        4.0,
        1e3,
        67_108_863.0,
        67_108_864.0,
        1e9,
        1e12,
    ] {
        near.push(n * std::f64::consts::FRAC_PI_2);
    }
    xs.extend(around(&near, 2));
    // Doubles famously close to multiples of pi/2 (Muller, "Elementary Functions"),
    // and round numbers around the Cody-Waite / Payne-Hanek switch.
    // (5.319372648326541e255 = 6381956970095103 2^797, the double closest to a multiple
    // of pi/2, is in `trig_hard_cases`: glibc itself is 8 and 14 ulp off there.)
    xs.extend([
        1e22,
        2f64.powi(1023),
        1.0e15,
        8.0e18,
        355.0,
        103_993.0,
        8_248_512_509_970_855.0,
        67_108_864.0,
        67_108_863.999_999_99,
    ]);
    xs
}

#[test]
fn sin() {
    let mut rng = Rng::new(7);
    sweep1("sin", trig_inputs(&mut rng), f64::sin, BOUND_ULP);
}

#[test]
fn cos() {
    let mut rng = Rng::new(8);
    sweep1("cos", trig_inputs(&mut rng), f64::cos, BOUND_ULP);
}

#[test]
fn tan() {
    let mut rng = Rng::new(9);
    sweep1("tan", trig_inputs(&mut rng), f64::tan, BOUND_ULP);
}

fn hyperbolic_inputs(rng: &mut Rng) -> Vec<f64> {
    let mut xs = random_bits(rng, 1000);
    xs.extend(uniform(rng, 2000, -25.0, 25.0));
    xs.extend(uniform(rng, 1000, -715.0, 715.0));
    xs.extend(log_uniform(rng, 2000, -1074, 5, true));
    xs.extend(around(
        &[
            22.0,
            -22.0,
            710.4758600739439,
            -710.4758600739439,
            709.782712893384,
            0.5,
            1.0,
        ],
        10,
    ));
    xs
}

#[test]
fn sinh() {
    let mut rng = Rng::new(10);
    sweep1("sinh", hyperbolic_inputs(&mut rng), f64::sinh, BOUND_ULP);
}

#[test]
fn cosh() {
    let mut rng = Rng::new(11);
    sweep1("cosh", hyperbolic_inputs(&mut rng), f64::cosh, BOUND_ULP);
}

#[test]
fn tanh() {
    let mut rng = Rng::new(12);
    let mut xs = hyperbolic_inputs(&mut rng);
    xs.extend(uniform(&mut rng, 1000, -1.0, 1.0));
    xs.extend(around(&[19.0, 20.0, -19.1], 10));
    sweep1("tanh", xs, f64::tanh, BOUND_ULP);
}

fn unit_interval_inputs(rng: &mut Rng) -> Vec<f64> {
    let mut xs = random_bits(rng, 500);
    xs.extend(uniform(rng, 3000, -1.0, 1.0));
    xs.extend(log_uniform(rng, 2000, -1074, -1, true));
    // 1 - tiny: the square root of 1 - x^2 carries everything.
    xs.extend(
        log_uniform(rng, 1000, -53, -1, false)
            .iter()
            .map(|d| 1.0 - d),
    );
    xs.extend(
        log_uniform(rng, 1000, -53, -1, false)
            .iter()
            .map(|d| d - 1.0),
    );
    xs.extend(around(
        &[1.0, -1.0, 0.5, -0.5, 0.0, std::f64::consts::FRAC_1_SQRT_2],
        20,
    ));
    xs
}

#[test]
fn asin() {
    let mut rng = Rng::new(13);
    sweep1("asin", unit_interval_inputs(&mut rng), f64::asin, BOUND_ULP);
}

#[test]
fn acos() {
    let mut rng = Rng::new(14);
    sweep1("acos", unit_interval_inputs(&mut rng), f64::acos, BOUND_ULP);
}

#[test]
fn atan() {
    let mut rng = Rng::new(15);
    let mut xs = random_bits(&mut rng, 1000);
    xs.extend(log_uniform(&mut rng, 3000, -1074, 1023, true));
    xs.extend(uniform(&mut rng, 2000, -20.0, 20.0));
    // The anchor switch points tan((2j+1) pi/32), and the shortcuts at 2^-27 and 2^60.
    let switch: Vec<f64> = (0..8)
        .map(|j| ((2 * j + 1) as f64 * std::f64::consts::PI / 32.0).tan())
        .collect();
    xs.extend(around(&switch, 5));
    xs.extend(around(&[pow2(-27), pow2(60), 1.0], 5));
    sweep1("atan", xs, f64::atan, BOUND_ULP);
}

/// `b2_powi_f64` (the generated code's x ** 2.0 ... x ** 8.0): the interpreter's
/// double-double product bit for bit where both multiply (results in [2^-120, 2^120]),
/// and within 1 ulp of Rust's `powf` everywhere, special values and range ends included.
#[test]
fn powi() {
    if gpu_f64().is_none() {
        return;
    }
    let mut rng = Rng::new(17);
    let mut xs = log_uniform(&mut rng, scale(4000), -40, 40, true);
    xs.extend(log_uniform(&mut rng, scale(500), -1074, 1023, true));
    xs.extend(specials());
    for n in 2..=brian2wgpu::cpu::math::POWI_MAX {
        let ys = vec![n as f64; xs.len()];
        let got = run("powi", "f64", &format!("b2_powi_f64(x, {n}i)"), &xs, &ys);
        let mut cpu = vec![0.0; xs.len()];
        brian2wgpu::cpu::math::powi_block(&mut cpu, &xs, n);
        for (k, (&g, &c)) in got.iter().zip(&cpu).enumerate() {
            let both_multiply = (2f64.powi(-120)..=2f64.powi(120)).contains(&c.abs());
            assert!(
                !both_multiply || g.to_bits() == c.to_bits() || (g.is_nan() && c.is_nan()),
                "powi({:e}, {n}): GPU {g:e} ({:#018x}), interpreter {c:e} ({:#018x})",
                xs[k],
                g.to_bits(),
                c.to_bits()
            );
        }
        let w = compare("powi", &xs, &ys, &got, f64::powf);
        assert_within("powi", &w, 1);
    }
}

#[test]
fn pow() {
    let mut rng = Rng::new(16);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let mut push = |x: f64, y: f64| {
        xs.push(x);
        ys.push(y);
    };
    // Random bit patterns for both.
    for _ in 0..scale(1000) {
        push(
            f64::from_bits(rng.next_u64()),
            f64::from_bits(rng.next_u64()),
        );
    }
    // Positive bases over all exponents with moderate y.
    for _ in 0..scale(3000) {
        let x = log_uniform(&mut rng, 1, -1074, 1023, false)[0];
        push(x, rng.uniform(-3.0, 3.0));
    }
    // Results over the whole range, overflow and underflow included: y = t / ln x.
    for _ in 0..scale(3000) {
        let x = log_uniform(&mut rng, 1, -60, 60, false)[0];
        if x == 1.0 {
            continue;
        }
        let t = rng.uniform(-760.0, 720.0);
        push(x, t / x.ln());
    }
    // Bases near 1 with large exponents (needs ln x to ~70 bits).
    for _ in 0..scale(1000) {
        let x = 1.0 + rng.sign() * rng.unit() * pow2(-20 - rng.below(33) as i32);
        push(x, rng.sign() * rng.uniform(1.0, 700.0) / (x - 1.0).abs());
    }
    // Negative bases with integer exponents, and non-integer ones (NaN).
    for _ in 0..scale(1000) {
        let x = -log_uniform(&mut rng, 1, -20, 20, false)[0];
        let y = (rng.uniform(-60.0, 60.0)).round();
        push(x, y);
        push(x, y + 0.5);
    }
    // Exact powers.
    for k in -40..=40 {
        push(2.0, k as f64);
        push(10.0, k as f64 / 2.0);
        push(3.0, k as f64);
        push(-2.0, k as f64);
        push(0.5, k as f64 * 27.0);
        push(2.0, -1074.0 + k as f64);
    }
    // Special combinations (C99 F.9.4.4), every pair.
    let sx = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        2.0,
        -2.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        pow2(-1074),
        f64::MAX,
    ];
    let sy = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        2.0,
        -2.0,
        3.0,
        -3.0,
        0.5,
        -0.5,
        1e300,
        -1e300,
        2f64.powi(53) + 2.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];
    for &x in &sx {
        for &y in &sy {
            push(x, y);
        }
    }
    sweep2("pow", xs, ys, f64::powf, BOUND_ULP);
}

#[test]
fn fmod() {
    let mut rng = Rng::new(17);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..scale(2000) {
        xs.push(f64::from_bits(rng.next_u64()));
        ys.push(f64::from_bits(rng.next_u64()));
    }
    for _ in 0..scale(2000) {
        // Quotients up to 2^2098 (subnormal divisors of huge dividends).
        xs.push(log_uniform(&mut rng, 1, -1074, 1023, true)[0]);
        ys.push(log_uniform(&mut rng, 1, -1074, 1023, true)[0]);
    }
    for _ in 0..scale(2000) {
        let b = rng.sign() * rng.uniform(0.1, 10.0);
        let q = rng.uniform(0.0, 1e6).floor();
        xs.push(q * b + rng.uniform(-1.0, 1.0) * b);
        ys.push(b);
    }
    for _ in 0..500 {
        // Exact multiples (result +-0) and a dividend one ulp off a multiple.
        let b = rng.uniform(1.0, 2.0);
        let a = b * rng.below(1 << 20) as f64;
        xs.extend([a, -a, a.next_up(), a.next_down()]);
        ys.extend([b, b, b, -b]);
    }
    let s = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        1.5,
        pow2(-1074),
        f64::MAX,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];
    for &a in &s {
        for &b in &s {
            xs.push(a);
            ys.push(b);
        }
    }
    sweep2("fmod", xs, ys, |a, b| a % b, 0);
}

#[test]
fn fmod_f32() {
    if gpu_f64().is_none() {
        return;
    }
    let mut rng = Rng::new(18);
    let (mut xs, mut ys) = (Vec::<f32>::new(), Vec::<f32>::new());
    for _ in 0..scale(4000) {
        xs.push(f32::from_bits(rng.next_u64() as u32));
        ys.push(f32::from_bits(rng.next_u64() as u32));
    }
    for _ in 0..scale(2000) {
        let b = (rng.sign() * rng.uniform(0.1, 10.0)) as f32;
        let q = rng.uniform(0.0, 1e5).floor() as f32;
        xs.push(q * b + (rng.uniform(-1.0, 1.0) as f32) * b);
        ys.push(b);
    }
    let s = [
        0.0f32,
        -0.0,
        1.0,
        -1.0,
        1.5,
        f32::from_bits(1),
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    for &a in &s {
        for &b in &s {
            xs.push(a);
            ys.push(b);
        }
    }
    let got = run("fmod_f32", "f32", "b2_fmod_f32(x, y)", &xs, &ys);
    let mut bad = 0;
    for i in 0..xs.len() {
        let want = xs[i] % ys[i];
        let ok = if want.is_nan() {
            got[i].is_nan()
        } else {
            got[i].to_bits() == want.to_bits()
        };
        if !ok {
            if bad < 10 {
                eprintln!(
                    "fmod_f32({:e}, {:e}) = {:e}, want {:e}",
                    xs[i], ys[i], got[i], want
                );
            }
            bad += 1;
        }
    }
    println!("fmod_f32 {:>6} inputs  {bad} inexact", xs.len());
    assert_eq!(
        bad, 0,
        "b2_fmod_f32 must be exact (stated in shaders/f64_math.wgsl; it lives in f32_math.wgsl)"
    );
}

// ---------------------------------------------------------------------------------------
// Special values, exactly as C99 Annex F / glibc / numpy.

#[test]
#[rustfmt::skip]
fn special_values() {
    let inf = f64::INFINITY;
    let nan = f64::NAN;
    let tiny = pow2(-1074);
    let pio2 = std::f64::consts::FRAC_PI_2;
    exact1("exp", &[(nan, nan), (inf, inf), (-inf, 0.0), (0.0, 1.0), (-0.0, 1.0), (710.0, inf), (-746.0, 0.0), (-745.0, 5e-324)]);
    exact1("expm1", &[(nan, nan), (inf, inf), (-inf, -1.0), (0.0, 0.0), (-0.0, -0.0), (tiny, tiny), (-tiny, -tiny), (710.0, inf)]);
    exact1("exprel", &[(nan, nan), (inf, inf), (-inf, 0.0), (0.0, 1.0), (-0.0, 1.0), (1e-17, 1.0), (709.9, inf), (718.0, inf), (-50.0, 0.02)]);
    exact1("log", &[(nan, nan), (inf, inf), (-inf, nan), (0.0, -inf), (-0.0, -inf), (-1.0, nan), (1.0, 0.0), (tiny, -744.4400719213812)]);
    exact1("log10", &[(nan, nan), (inf, inf), (0.0, -inf), (-0.0, -inf), (-tiny, nan), (1.0, 0.0), (1000.0, 3.0), (1e-300, -300.0), (1e22, 22.0)]);
    exact1("log1p", &[(nan, nan), (inf, inf), (-inf, nan), (-1.0, -inf), (-2.0, nan), (0.0, 0.0), (-0.0, -0.0), (tiny, tiny), (-tiny, -tiny)]);
    for f in ["sin", "tan"] {
        exact1(f, &[(nan, nan), (inf, nan), (-inf, nan), (0.0, 0.0), (-0.0, -0.0), (tiny, tiny), (-tiny, -tiny)]);
    }
    exact1("cos", &[(nan, nan), (inf, nan), (-inf, nan), (0.0, 1.0), (-0.0, 1.0), (tiny, 1.0)]);
    exact1("sinh", &[(nan, nan), (inf, inf), (-inf, -inf), (0.0, 0.0), (-0.0, -0.0), (-tiny, -tiny), (711.0, inf), (-711.0, -inf)]);
    exact1("cosh", &[(nan, nan), (inf, inf), (-inf, inf), (0.0, 1.0), (-0.0, 1.0), (711.0, inf), (-711.0, inf)]);
    exact1("tanh", &[(nan, nan), (inf, 1.0), (-inf, -1.0), (0.0, 0.0), (-0.0, -0.0), (-tiny, -tiny), (30.0, 1.0), (-30.0, -1.0), (1e300, 1.0)]);
    exact1("asin", &[(nan, nan), (inf, nan), (1.0 + f64::EPSILON, nan), (-2.0, nan), (0.0, 0.0), (-0.0, -0.0), (-tiny, -tiny), (1.0, pio2), (-1.0, -pio2)]);
    exact1("acos", &[(nan, nan), (-inf, nan), (1.0 + f64::EPSILON, nan), (-2.0, nan), (0.0, pio2), (-0.0, pio2), (1.0, 0.0), (-1.0, std::f64::consts::PI)]);
    exact1("atan", &[(nan, nan), (inf, pio2), (-inf, -pio2), (0.0, 0.0), (-0.0, -0.0), (-tiny, -tiny), (1e300, pio2), (1.0, std::f64::consts::FRAC_PI_4)]);
    exact2(
        "pow",
        &[
            (nan, 0.0, 1.0),
            (nan, -0.0, 1.0),
            (1.0, nan, 1.0),
            (1.0, inf, 1.0),
            (-1.0, inf, 1.0),
            (-1.0, -inf, 1.0),
            (nan, 1.0, nan),
            (2.0, nan, nan),
            (-8.0, 1.0 / 3.0, nan),
            (-2.0, 3.0, -8.0),
            (-2.0, -3.0, -0.125),
            (-2.0, 2.0, 4.0),
            (0.0, -1.0, inf),
            (-0.0, -1.0, -inf),
            (-0.0, -2.0, inf),
            (-0.0, -0.5, inf),
            (-0.0, 3.0, -0.0),
            (-0.0, 2.0, 0.0),
            (-0.0, 0.5, 0.0),
            (0.0, -inf, inf),
            (0.5, inf, 0.0),
            (0.5, -inf, inf),
            (2.0, inf, inf),
            (2.0, -inf, 0.0),
            (-inf, 3.0, -inf),
            (-inf, 2.0, inf),
            (-inf, -3.0, -0.0),
            (-inf, -2.0, 0.0),
            (inf, -1.0, 0.0),
            (inf, 0.5, inf),
            (2.0, 1024.0, inf),
            (-2.0, 1025.0, -inf),
            (2.0, -1075.0, 0.0),
            (-2.0, -1075.0, -0.0),
            (2.0, -1074.0, tiny),
            (10.0, 2.0, 100.0),
            (10.0, 22.0, 1e22),
            (2.0, 0.5, std::f64::consts::SQRT_2),
        ],
    );
    exact2(
        "fmod",
        &[
            (nan, 1.0, nan),
            (1.0, nan, nan),
            (inf, 1.0, nan),
            (1.0, 0.0, nan),
            (1.0, -0.0, nan),
            (0.0, 0.0, nan),
            (3.5, inf, 3.5),
            (-3.5, -inf, -3.5),
            (0.0, 2.0, 0.0),
            (-0.0, 2.0, -0.0),
            (-4.0, 2.0, -0.0),
            (5.5, 2.0, 1.5),
            (-5.5, 2.0, -1.5),
            (5.5, -2.0, 1.5),
            (1e308, tiny, 0.0),
            (f64::MAX, 3.0, f64::MAX % 3.0),
            (0.3, 0.1, 0.3 % 0.1),
        ],
    );
}

/// Arguments that are hard to reduce, against correctly rounded values from mpmath
/// (4000-bit arithmetic), since glibc 2.36 misses some of them by several ulp.
#[test]
#[rustfmt::skip]
fn trig_hard_cases() {
    if gpu_f64().is_none() {
        return;
    }
    // (x, sin x, cos x, tan x) as bits.
    let cases: [(f64, u64, u64, u64); 8] = [
        (6381956970095103.0 * 2f64.powi(797), 0x3ff0000000000000, 0xbc214ae72e6ba22f, 0xc3bd9ba9a7975636),
        (1e22, 0xbfeb453ab76bf397, 0x3fe0be2cef01c8f4, 0xbffa0f79c1b6b257),
        (2f64.powi(1023), 0x3fe205248cbdb760, 0xbfea719f26c232bf, 0xbfe5ce6b4c0d02a3),
        (8248512509970855.0, 0x3fed7032aeba51a6, 0x3fd91743e5906c02, 0x4002c5b273d80659),
        (1.0e15, 0x3feb76f88136ceba, 0xbfe06c154609d33f, 0xbffac23600a95be4),
        (103993.0, 0xbef40efdf1eb8de7, 0x3fefffffffe6da77, 0xbef40efdf1fb5124),
        (67108863.5, 0x3fe9bbc8ffdc13f7, 0xbfe305495657bcbf, 0xbff5a595ec62e93d),
        (-7.0e9, 0x3fe911e81b6b3eac, 0xbfe3e31a933d3c6f, 0xbff42b778307fd0c),
    ];
    let xs: Vec<f64> = cases.iter().map(|c| c.0).collect();
    let ys = vec![0.0; xs.len()];
    for (k, name) in ["sin", "cos", "tan"].into_iter().enumerate() {
        let got = run(name, "f64", &format!("b2_{name}_f64(x)"), &xs, &ys);
        for (c, g) in cases.iter().zip(got) {
            let want = f64::from_bits([c.1, c.2, c.3][k]);
            let d = ulp_diff(g, want);
            assert!(d <= 1, "{name}({:e}) = {g:e}, correctly rounded {want:e}: {d} ulp", c.0);
        }
    }
}
