// float64 math for brian2wgpu, built from f64 arithmetic only.
//
// Vulkan's GLSL.std.450 defines exp/log/sin/pow/... for 16- and 32-bit floats only, so
// no WGSL builtin transcendental is ever applied to an f64 here (tests/f64_math.rs checks
// this on the parsed module). Used: + - * /, sqrt, abs, floor, min/max, select, compare,
// f64 <-> f32/i32/u32 conversions, bitcast<f32>/<u32> between u32 and f32. Not used: fma
// (Vulkan may evaluate it unfused; lavapipe does), ldexp/frexp (HLSL lacks f64 ones),
// round/trunc (wrong on lavapipe, below), i64/u64 and f64 bitcasts (SHADER_INT64).
// Needs only the FLOAT64 capability; naga takes `f64` without an `enable` directive.
//
// ACCURACY. Stated bound: at most 2 ulp from Rust's std (the platform libm, = numpy)
// for exp, expm1, exprel, log, log10, log1p, sin, cos, tan, sinh, cosh, tanh, asin,
// acos, atan and pow, over the whole f64 range: subnormal inputs and results included,
// and trig at any magnitude (Cody-Waite below 2^26, Payne-Hanek above). fmod (f64 and
// f32) is exact. Measured on lavapipe over ~600k inputs per function (tests/f64_math.rs
// with B2_F64_MATH_SCALE=100): 1 ulp for exp, expm1, log, log1p, sin, cos, tan, asin,
// acos, atan, pow; 2 ulp for log10, sinh, cosh, tanh, exprel, where glibc itself is up
// to ~2 ulp off (mpmath spot checks put these results within 0.51 ulp of the true
// value); fmod 0. Against the true value: about 0.5 ulp, up to 1 ulp for subnormal
// results (rounded twice).
// exp alone skips double-double (see b2_exp_f64): still within 1 ulp, but about 6% of
// its results are 1 ulp from glibc's where the double-double path misses ~0.2%.
//
// Special values follow C99 Annex F / glibc (= numpy): NaN in -> NaN out; exp overflow
// -> inf, underflow -> 0 through the subnormals; log(0) = -inf, log(<0) = NaN; trig of
// +-inf = NaN; asin/acos outside [-1, 1] = NaN; tanh saturates to +-1; -0.0 is kept by
// sin, tan, sinh, tanh, asin, atan, expm1, log1p; pow follows C99 F.9.4.4.
//
// DEVICE ASSUMPTIONS. IEEE round-to-nearest f64 + - * and exact floor; / and sqrt may be
// an ulp off (double-double steps correct them). Robust to fma contraction of a * b + c,
// and to Mesa's inexact NIR algebra (naga marks nothing exact, so Mesa may rewrite
// (a + b) - a to b and fold x == x to true; see b2m_opaque and b2m_isnan). Subnormal
// results need f64 subnormals (lavapipe keeps them). Mesa 22.3 lavapipe's f64 round()
// and trunc() return x unchanged for |x| >= 2^23, hence floor(x + 0.5).
//
// Internal helpers are prefixed b2m_; double-double values are vec2<f64>(hi, lo) with
// |lo| <= ulp(hi) / 2.

// ---- Constants (hex literals are exact; computed with mpmath at 1600 bits)

const B2M_MIN_NORMAL: f64 = 0x1p-1022lf;
const B2M_SQRT2: f64 = 0x1.6a09e667f3bcdp+0lf;

// ln 2 = LN2_HI + LN2_LO; LN2_HI has 40 bits, so k * LN2_HI is exact for |k| < 2^13.
const B2M_LN2_HI: f64 = 0x1.62e42fefa2000p-1lf;
const B2M_LN2_LO: f64 = 0x1.9ef35793c7673p-41lf;
const B2M_INV_LN2: f64 = 0x1.71547652b82fep+0lf;
// exp(x) overflows above ln(DBL_MAX); sinh/cosh overflow above ln(2 DBL_MAX).
const B2M_EXP_OVERFLOW: f64 = 0x1.62e42fefa39efp+9lf;
const B2M_COSH_OVERFLOW: f64 = 0x1.633ce8fb9f87dp+9lf;
// exp(x) rounds to 0 below about -745.1332 (half the smallest subnormal).
const B2M_EXP_UNDERFLOW: f64 = -745.2lf;

// 1 / ln 10 as a double-double.
const B2M_IVLN10_HI: f64 = 0x1.bcb7b1526e50ep-2lf;
const B2M_IVLN10_LO: f64 = 0x1.95355baaafad3p-57lf;

// pi/2 and pi as double-doubles.
const B2M_PIO2_HI: f64 = 0x1.921fb54442d18p+0lf;
const B2M_PIO2_LO: f64 = 0x1.1a62633145c07p-54lf;
const B2M_PI_HI: f64 = 0x1.921fb54442d18p+1lf;
const B2M_PI_LO: f64 = 0x1.1a62633145c07p-53lf;
const B2M_TWO_OVER_PI: f64 = 0x1.45f306dc9c883p-1lf;
// pi/2 in four 26-bit pieces and a 53-bit tail (157 bits in all): n * PIO2_k is exact
// for |n| < 2^27, which covers Cody-Waite reduction of |x| < 2^26.
const B2M_PIO2_1: f64 = 0x1.921fb50000000p+0lf;
const B2M_PIO2_2: f64 = 0x1.110b460000000p-26lf;
const B2M_PIO2_3: f64 = 0x1.1a62620000000p-54lf;
const B2M_PIO2_4: f64 = 0x1.3145c00000000p-78lf;
const B2M_PIO2_5: f64 = 0x1.b839a252049c1p-104lf;
const B2M_CODY_WAITE_LIMIT: f64 = 0x1p26lf;
// 2/pi = sum_j DIGITS[j] 2^(-24 (j + 1)): 1248 bits, enough for Payne-Hanek reduction
// of any double (the exponent 1023 needs digits up to index 49).
const B2M_TWO_OVER_PI_DIGITS = array<u32, 52>(
    0xa2f983u, 0x6e4e44u, 0x1529fcu, 0x2757d1u, 0xf534ddu, 0xc0db62u, 0x95993cu, 0x439041u,
    0xfe5163u, 0xabdebbu, 0xc561b7u, 0x246e3au, 0x424dd2u, 0xe00649u, 0x2eea09u, 0xd1921cu,
    0xfe1debu, 0x1cb129u, 0xa73ee8u, 0x8235f5u, 0x2ebb44u, 0x84e99cu, 0x7026b4u, 0x5f7e41u,
    0x3991d6u, 0x398353u, 0x39f49cu, 0x845f8bu, 0xbdf928u, 0x3b1ff8u, 0x97ffdeu, 0x05980fu,
    0xef2f11u, 0x8b5a0au, 0x6d1f6du, 0x367ecfu, 0x27cb09u, 0xb74f46u, 0x3f669eu, 0x5fea2du,
    0x7527bau, 0xc7ebe5u, 0xf17b3du, 0x0739f7u, 0x8a5292u, 0xea6bfbu, 0x5fb11fu, 0x8d5d08u,
    0x560330u, 0x46fc7bu, 0x6babf0u, 0xcfbc20u);

// 1/3 and 1/5 as double-doubles (leading terms of the atanh series in log).
const B2M_THIRD_HI: f64 = 0x1.5555555555555p-2lf;
const B2M_THIRD_LO: f64 = 0x1.5555555555555p-56lf;
const B2M_FIFTH_HI: f64 = 0x1.999999999999ap-3lf;
const B2M_FIFTH_LO: f64 = -0x1.999999999999ap-57lf;

// atan reduction: atan(t) = atan(c_j) + atan((t - c_j) / (1 + t c_j)) with
// c_j ~ tan(j pi/16); anchor j serves tan((2j-1) pi/32) < t <= tan((2j+1) pi/32),
// so the remaining argument is below tan(pi/32) = 0.0985 in magnitude.
const B2M_ATAN_T0: f64 = 0x1.936bb8c5b2da2p-4lf;
const B2M_ATAN_T1: f64 = 0x1.36a08355c63dcp-2lf;
const B2M_ATAN_T2: f64 = 0x1.11ab7190834ecp-1lf;
const B2M_ATAN_T3: f64 = 0x1.a43002ae42850p-1lf;
const B2M_ATAN_T4: f64 = 0x1.37efd8d87607ep+0lf;
const B2M_ATAN_T5: f64 = 0x1.def13b73c1406p+0lf;
const B2M_ATAN_T6: f64 = 0x1.a5f59e90600ddp+1lf;
const B2M_ATAN_T7: f64 = 0x1.44e6c595afdccp+3lf;

// ---- Building blocks (bit tricks on f32 only; f64 is never bitcast)

// NaN test on the bits of the f32 conversion (NaN stays NaN, everything else becomes a
// number or +-inf). Not `x != x` (naga emits an ordered not-equal, false for NaN) nor
// `!(x == x)` (Mesa folds it to false: SPIR-V without float controls lets it assume
// that NaNs do not occur).
fn b2m_isnan(x: f64) -> bool {
    return (bitcast<u32>(f32(x)) & 0x7fffffffu) > 0x7f800000u;
}

// A comparison with DBL_MAX, not a test of scaled bits: Mesa reassociates a caller's
// product into a scaling ((2 * z) * 2^-1000 -> z * 2^-999) and an overflowed argument
// then reads as finite, while the comparison stays true under that algebra.
fn b2m_isinf(x: f64) -> bool {
    return abs(x) > 0x1.fffffffffffffp+1023lf;
}

fn b2m_inf() -> f64 {
    return f64(bitcast<f32>(0x7f800000u));
}

fn b2m_nan() -> f64 {
    return f64(bitcast<f32>(0x7fc00000u));
}

// 2^j, exact, for -126 <= j <= 127 (an f32 normal built from its bits).
fn b2m_exp2i_small(j: i32) -> f64 {
    return f64(bitcast<f32>(u32(j + 127) << 23u));
}

// 2^j, exact, for -1008 <= j <= 1008: (2^a)^16 * 2^b with j = 16 a + b.
fn b2m_exp2i(j: i32) -> f64 {
    var t = b2m_exp2i_small(j >> 4u);
    t = t * t;
    t = t * t;
    t = t * t;
    t = t * t;
    return t * b2m_exp2i_small(j & 15);
}

// v * 2^k for |k| <= 2016, in two steps so that no factor overflows; when v is near 1
// the first product stays normal and only the second one rounds.
fn b2m_ldexp(v: f64, k: i32) -> f64 {
    let k1 = k / 2;
    return v * b2m_exp2i(k1) * b2m_exp2i(k - k1);
}

// (m, e) with x = m 2^e and 1 <= m < 2, for finite x > 0 (subnormals included).
fn b2m_frexp(x: f64) -> vec2<f64> {
    var v = x;
    var e = 0;
    if (v < B2M_MIN_NORMAL) {
        v = v * 0x1p54lf;
        e = -54;
    }
    // Bring v into [2^-64, 2^64), where f32(v) is a normal f32 with v's exponent (or
    // the next one up when the conversion rounds up to a power of two).
    if (v >= 0x1p512lf) { v = v * 0x1p-512lf; e = e + 512; }
    if (v >= 0x1p256lf) { v = v * 0x1p-256lf; e = e + 256; }
    if (v >= 0x1p128lf) { v = v * 0x1p-128lf; e = e + 128; }
    if (v >= 0x1p64lf) { v = v * 0x1p-64lf; e = e + 64; }
    if (v < 0x1p-512lf) { v = v * 0x1p512lf; e = e - 512; }
    if (v < 0x1p-256lf) { v = v * 0x1p256lf; e = e - 256; }
    if (v < 0x1p-128lf) { v = v * 0x1p128lf; e = e - 128; }
    if (v < 0x1p-64lf) { v = v * 0x1p64lf; e = e - 64; }
    let eb = i32((bitcast<u32>(f32(v)) >> 23u) & 0xffu) - 127;
    var m = v * b2m_exp2i_small(-eb);
    e = e + eb;
    if (m < 1.0lf) {
        m = m * 2.0lf;
        e = e - 1;
    }
    return vec2<f64>(m, f64(e));
}

// ---- Double-double arithmetic (error-free transforms without fma)

// Optimisation barrier. naga marks no SPIR-V operation exact, so Mesa's NIR may apply
// its inexact algebra, e.g. -a + (a + b) -> b, which turns the error term of a two-sum
// into 0. Passing a sum through here hides it: the condition is never true for the
// values it sees (finite sums never convert to that NaN pattern), but no compiler can
// prove it, so (a + b) - a is computed as written.
fn b2m_opaque(x: f64) -> f64 {
    return select(x, 0.0lf, bitcast<u32>(f32(x)) == 0x7fc0babeu);
}

// a + b = s + e exactly.
fn b2m_two_sum(a: f64, b: f64) -> vec2<f64> {
    let s = b2m_opaque(a + b);
    let bb = b2m_opaque(s - a);
    return vec2<f64>(s, (a - (s - bb)) + (b - bb));
}

// a + b = s + e exactly, given |a| >= |b| (or a == 0).
fn b2m_fast_two_sum(a: f64, b: f64) -> vec2<f64> {
    let s = b2m_opaque(a + b);
    return vec2<f64>(s, b - (s - a));
}

// a = hi + lo with hi the 24-bit f32 rounding of a and lo exact (29 bits). Needs
// |a| < 2^127 (an f32 subnormal or flushed hi only costs exactness, not validity).
// Unlike Veltkamp's split (c a - (c a - a)), no contraction or reassociation can
// change it.
fn b2m_split(a: f64) -> vec2<f64> {
    let h = b2m_opaque(f64(f32(a)));
    return vec2<f64>(h, a - h);
}

// a * b = p + e with |error of e| <= 2^-100 |a b| (exact when either factor has at most
// 24 significant bits). Needs |a|, |b| < 2^127 and no underflow. The middle sums are
// exact, so fma contraction can only make it more exact.
fn b2m_two_prod(a: f64, b: f64) -> vec2<f64> {
    let p = b2m_opaque(a * b);
    let sa = b2m_split(a);
    let sb = b2m_split(b);
    let e = ((sa.x * sb.x - p) + (sa.x * sb.y + sa.y * sb.x)) + sa.y * sb.y;
    return vec2<f64>(p, b2m_opaque(e));
}

fn b2m_dd_add(a: vec2<f64>, b: vec2<f64>) -> vec2<f64> {
    let s = b2m_two_sum(a.x, b.x);
    let t = b2m_two_sum(a.y, b.y);
    let u = b2m_fast_two_sum(s.x, s.y + t.x);
    return b2m_fast_two_sum(u.x, u.y + t.y);
}

fn b2m_dd_add_d(a: vec2<f64>, b: f64) -> vec2<f64> {
    let s = b2m_two_sum(a.x, b);
    return b2m_fast_two_sum(s.x, s.y + a.y);
}

fn b2m_dd_mul(a: vec2<f64>, b: vec2<f64>) -> vec2<f64> {
    let p = b2m_two_prod(a.x, b.x);
    return b2m_fast_two_sum(p.x, p.y + (a.x * b.y + a.y * b.x));
}

fn b2m_dd_mul_d(a: vec2<f64>, b: f64) -> vec2<f64> {
    let p = b2m_two_prod(a.x, b);
    return b2m_fast_two_sum(p.x, p.y + a.y * b);
}

fn b2m_dd_div(a: vec2<f64>, b: vec2<f64>) -> vec2<f64> {
    let q = a.x / b.x;
    let p = b2m_two_prod(q, b.x);
    let r = ((((a.x - p.x) - p.y) + a.y) - q * b.y) / b.x;
    return b2m_fast_two_sum(q, r);
}

// sqrt of a double-double with a.x > 0; one Newton step also absorbs a sqrt that is
// only accurate to a few ulp.
fn b2m_dd_sqrt(a: vec2<f64>) -> vec2<f64> {
    let s = sqrt(a.x);
    let p = b2m_two_prod(s, s);
    let c = (((a.x - p.x) - p.y) + a.y) / (2.0lf * s);
    return b2m_fast_two_sum(s, c);
}

// ---- exp family

// z = zh + zl = k ln2 + (rh + rl) with k = round(zh / ln2), |rh| <= ~0.347.
// Returns (rh, rl, k). Needs |zh| < ~5000.
fn b2m_exp_reduce(zh: f64, zl: f64) -> vec3<f64> {
    let k = floor(zh * B2M_INV_LN2 + 0.5lf);
    // Exact: k has at most 13 bits, LN2_HI 40, and zh is within a factor 2 of k LN2_HI.
    let r1 = zh - k * B2M_LN2_HI;
    let r = b2m_two_sum(r1, zl - k * B2M_LN2_LO);
    return vec3<f64>(r.x, r.y, k);
}

// e^(rh + rl) - 1 as a double-double with relative error ~2^-57, for |rh| <= 0.35.
fn b2m_expm1_core(rh: f64, rl: f64) -> vec2<f64> {
    let sq = b2m_two_prod(rh, rh);
    let z = sq.x;
    // Taylor: r^3 (1/3! + r/4! + ... + r^11/14!); the first omitted term is < 2^-63 r.
    var p = 0x1.93974a8c07c9dp-37lf;            // 1/14!
    p = 0x1.6124613a86d09p-33lf + rh * p;       // 1/13!
    p = 0x1.1eed8eff8d898p-29lf + rh * p;       // 1/12!
    p = 0x1.ae64567f544e4p-26lf + rh * p;       // 1/11!
    p = 0x1.27e4fb7789f5cp-22lf + rh * p;       // 1/10!
    p = 0x1.71de3a556c734p-19lf + rh * p;       // 1/9!
    p = 0x1.a01a01a01a01ap-16lf + rh * p;       // 1/8!
    p = 0x1.a01a01a01a01ap-13lf + rh * p;       // 1/7!
    p = 0x1.6c16c16c16c17p-10lf + rh * p;       // 1/6!
    p = 0x1.1111111111111p-7lf + rh * p;        // 1/5!
    p = 0x1.5555555555555p-5lf + rh * p;        // 1/4!
    p = 0x1.5555555555555p-3lf + rh * p;        // 1/3!
    let cubic = rh * z * p;
    // rh + rh^2/2 exactly as a double-double, then the small terms.
    let s = b2m_two_sum(rh, 0.5lf * sq.x);
    let tail = ((s.y + 0.5lf * sq.y) + cubic) + rl * (1.0lf + rh + 0.5lf * z);
    return b2m_fast_two_sum(s.x, tail);
}

// e^(zh + zl) = (uh + ul) 2^k; returns (uh, ul, k) with uh in [0.7, 1.42].
fn b2m_exp_parts(zh: f64, zl: f64) -> vec3<f64> {
    let red = b2m_exp_reduce(zh, zl);
    let m = b2m_expm1_core(red.x, red.y);
    let u = b2m_fast_two_sum(1.0lf, m.x);
    let uu = b2m_fast_two_sum(u.x, u.y + m.y);
    return vec3<f64>(uu.x, uu.y, red.z);
}

// e^x - 1 as a double-double with full relative accuracy, for -40 <= x <= 45.
fn b2m_expm1_dd(x: f64) -> vec2<f64> {
    let red = b2m_exp_reduce(x, 0.0lf);
    let m = b2m_expm1_core(red.x, red.y);
    let k = i32(red.z);
    if (k == 0) {
        return m;
    }
    // 2^k (1 + m) - 1: 2^k uh is exact and so is its sum with -1 as a double-double.
    let u = b2m_fast_two_sum(1.0lf, m.x);
    let s = b2m_exp2i(k);
    let t = b2m_two_sum(u.x * s, -1.0lf);
    return b2m_fast_two_sum(t.x, t.y + (u.y + m.y) * s);
}

// exp alone needs no double-double: with x = k ln2 + hi - lo and r = hi - lo, write
// e^r = 1 + r + r c / (2 - c), where c = r - r^2 g(r^2) and r coth(r/2) = 2 + r^2 g(r^2);
// then 1 + hi is the only large sum and it comes last, so the result is off by little
// more than its final rounding. About a quarter of the double-double path's operations:
// neuron models call exp several times per element per step.
fn b2_exp_f64(x: f64) -> f64 {
    if (b2m_isnan(x)) { return x; }
    if (x > B2M_EXP_OVERFLOW) { return b2m_inf(); }
    if (x < B2M_EXP_UNDERFLOW) { return 0.0lf; }
    let k = floor(x * B2M_INV_LN2 + 0.5lf);
    let hi = x - k * B2M_LN2_HI;  // exact, as in b2m_exp_reduce
    let lo = k * B2M_LN2_LO;
    let r = hi - lo;
    let s = r * r;
    // g on [0, 0.1203] (|r| <= ln2 / 2): Chebyshev fit, absolute error 5.2e-17 (mpmath).
    var g = 0x1.63f172b27f204p-25lf;
    g = -0x1.bbd53071582fap-20lf + s * g;
    g = 0x1.1566ab5ba4dbep-14lf + s * g;
    g = -0x1.6c16c16c0aadbp-9lf + s * g;
    g = 0x1.5555555555553p-3lf + s * g;
    let c = r - s * g;
    let y = 1.0lf - ((lo - (r * c) / (2.0lf - c)) - hi);
    return b2m_ldexp(y, i32(k));
}

fn b2_expm1_f64(x: f64) -> f64 {
    if (b2m_isnan(x)) { return x; }
    if (x > B2M_EXP_OVERFLOW) { return b2m_inf(); }
    // Below -40, e^x < 2^-57 vanishes next to -1.
    if (x < -40.0lf) { return -1.0lf; }
    // Keeps -0 and subnormals; the x^2/2 term is below half an ulp.
    if (abs(x) < 0x1p-54lf) { return x; }
    if (x > 45.0lf) {
        // 2^k (u - 2^-k): the -1 only matters in the last bits here.
        let p = b2m_exp_parts(x, 0.0lf);
        let k = i32(p.z);
        return b2m_ldexp(p.x + (p.y - b2m_exp2i(max(-k, -1000))), k);
    }
    let r = b2m_expm1_dd(x);
    return r.x + r.y;
}

// Brian2's exprel: (e^x - 1) / x with exprel(0) = 1, as in its numpy and C++ code
// (|x| < 1e-16 gives 1, x > 717 gives inf, NaN stays NaN, exprel(-inf) = 0). Between
// ln(DBL_MAX) and 717 numpy's expm1(x) is already inf, and so is this.
fn b2_exprel_f64(x: f64) -> f64 {
    if (b2m_isnan(x)) { return x; }
    if (abs(x) < 1e-16lf) { return 1.0lf; }
    if (x > B2M_EXP_OVERFLOW) { return b2m_inf(); }
    if (x < -40.0lf) { return -1.0lf / x; }
    if (x > 45.0lf) {
        // e^x / x = (u / x) 2^k; the -1 of expm1 is below 2^-64 relative here.
        let p = b2m_exp_parts(x, 0.0lf);
        let q = b2m_dd_div(p.xy, vec2<f64>(x, 0.0lf));
        return b2m_ldexp(q.x + q.y, i32(p.z));
    }
    let q = b2m_dd_div(b2m_expm1_dd(x), vec2<f64>(x, 0.0lf));
    return q.x + q.y;
}

// ---- log family

// ln(x) as a double-double (relative error ~2^-100 + 2^-70 series), x finite > 0.
fn b2m_log_dd(x: f64) -> vec2<f64> {
    let fe = b2m_frexp(x);
    var m = fe.x;
    var e = fe.y;
    if (m > B2M_SQRT2) {
        m = 0.5lf * m;
        e = e + 1.0lf;
    }
    // ln(m) = 2 atanh(s) with s = f / (2 + f), f = m - 1 (exact), |s| <= 0.1716.
    let f = m - 1.0lf;
    let s = b2m_dd_div(vec2<f64>(f, 0.0lf), b2m_fast_two_sum(2.0lf, f));
    let z = b2m_dd_mul(s, s);
    let zh = z.x;
    // 2 atanh(s) = 2 s (1 + z/3 + z^2/5 + z^3 (1/7 + z/9 + ... + z^9/25)); the first
    // omitted term is < 2^-70. The three leading terms are summed in double-double.
    var t = 0x1.47ae147ae147bp-5lf;             // 1/25
    t = 0x1.642c8590b2164p-5lf + zh * t;        // 1/23
    t = 0x1.8618618618618p-5lf + zh * t;        // 1/21
    t = 0x1.af286bca1af28p-5lf + zh * t;        // 1/19
    t = 0x1.e1e1e1e1e1e1ep-5lf + zh * t;        // 1/17
    t = 0x1.1111111111111p-4lf + zh * t;        // 1/15
    t = 0x1.3b13b13b13b14p-4lf + zh * t;        // 1/13
    t = 0x1.745d1745d1746p-4lf + zh * t;        // 1/11
    t = 0x1.c71c71c71c71cp-4lf + zh * t;        // 1/9
    t = 0x1.2492492492492p-3lf + zh * t;        // 1/7
    var acc = b2m_dd_add(vec2<f64>(B2M_FIFTH_HI, B2M_FIFTH_LO), b2m_dd_mul_d(z, t));
    acc = b2m_dd_add(vec2<f64>(B2M_THIRD_HI, B2M_THIRD_LO), b2m_dd_mul(z, acc));
    acc = b2m_dd_add_d(b2m_dd_mul(z, acc), 1.0lf);
    let logm = b2m_dd_mul(2.0lf * s, acc);
    // e ln2: e LN2_HI is exact.
    let eln2 = b2m_fast_two_sum(e * B2M_LN2_HI, e * B2M_LN2_LO);
    return b2m_dd_add(eln2, logm);
}

fn b2_log_f64(x: f64) -> f64 {
    if (b2m_isnan(x)) { return x; }
    if (x < 0.0lf) { return b2m_nan(); }
    if (x == 0.0lf) { return -b2m_inf(); }
    if (b2m_isinf(x)) { return x; }
    let l = b2m_log_dd(x);
    return l.x + l.y;
}

fn b2_log10_f64(x: f64) -> f64 {
    if (b2m_isnan(x)) { return x; }
    if (x < 0.0lf) { return b2m_nan(); }
    if (x == 0.0lf) { return -b2m_inf(); }
    if (b2m_isinf(x)) { return x; }
    let l = b2m_dd_mul(b2m_log_dd(x), vec2<f64>(B2M_IVLN10_HI, B2M_IVLN10_LO));
    return l.x + l.y;
}

fn b2_log1p_f64(x: f64) -> f64 {
    if (b2m_isnan(x)) { return x; }
    if (x < -1.0lf) { return b2m_nan(); }
    if (x == -1.0lf) { return -b2m_inf(); }
    if (b2m_isinf(x)) { return x; }
    // Keeps -0 and subnormals; the x^2/2 term is below half an ulp.
    if (abs(x) < 0x1p-54lf) { return x; }
    // 1 + x = u.x + u.y exactly; ln(u.x + u.y) = ln(u.x) + u.y / u.x to 2^-106.
    let u = b2m_two_sum(1.0lf, x);
    let l = b2m_dd_add_d(b2m_log_dd(u.x), u.y / u.x);
    return l.x + l.y;
}

// ---- pow

// C99 pow: pow(x, +-0) = 1 and pow(1, y) = 1 even for NaN, negative bases need integer
// exponents, zeros and infinities as in C99 F.9.4.4.
// x^n for an integer 2 <= n <= 8 (the generated code's x ** 2.0 ... x ** 8.0): the
// correctly rounded power except within ~2^-100 of a tie, as the interpreter computes it.
// x = a 2^e with 1 <= |a| < 2, and a^n is carried in double-double (b2m_split needs the
// partial products within f32's normal range, which holds for powers of a), then scaled
// by 2^(n e): exact wherever the result is normal, one extra rounding where it is
// subnormal. Straight-line code: lavapipe runs both sides of a per-element branch, so a
// fallback to b2_pow_f64 would cost every element a whole pow.
fn b2_powi_f64(x: f64, n: i32) -> f64 {
    let ax = abs(x);
    // Zeros, infinities and NaN: the plain product has pow's value and sign.
    let special = ax == 0.0lf || b2m_isinf(ax) || b2m_isnan(x);
    let fr = b2m_frexp(select(ax, 1.0lf, special));
    let a = select(fr.x, -fr.x, x < 0.0lf);
    var p = vec2<f64>(a, 0.0lf);
    var plain = x;
    for (var k = 1i; k < n; k++) {
        p = b2m_dd_mul_d(p, a);
        plain = plain * x;
    }
    let scaled = b2m_ldexp(p.x + p.y, clamp(n * i32(fr.y), -2016, 2016));
    return select(scaled, plain, special);
}

fn b2_pow_f64(x: f64, y: f64) -> f64 {
    if (y == 0.0lf || x == 1.0lf) { return 1.0lf; }
    if (b2m_isnan(x) || b2m_isnan(y)) { return x + y; }
    let inf = b2m_inf();
    let ax = abs(x);
    if (b2m_isinf(y)) {
        if (ax == 1.0lf) { return 1.0lf; }
        return select(0.0lf, inf, (ax > 1.0lf) == (y > 0.0lf));
    }
    let y_int = floor(y) == y;
    // Every double of magnitude >= 2^53 is an even integer.
    let y_odd = y_int && abs(y) < 0x1p53lf && floor(0.5lf * y) != 0.5lf * y;
    if (x == 0.0lf) {
        // pow(+-0, y): the sign of x survives only for odd integer y.
        if (y < 0.0lf) { return select(inf, 1.0lf / x, y_odd); }
        return select(0.0lf, x, y_odd);
    }
    if (b2m_isinf(x)) {
        let neg = x < 0.0lf && y_odd;
        if (y < 0.0lf) { return select(0.0lf, -0.0lf, neg); }
        return select(inf, -inf, neg);
    }
    if (x < 0.0lf && !y_int) { return b2m_nan(); }
    // pow(-1, integer y) = +-1 (the ln-based path below would see |y ln 1| = 0).
    if (ax == 1.0lf) { return select(1.0lf, -1.0lf, y_odd); }
    // Exact cases (x and x*x are correctly rounded, as libm's pow is).
    if (y == 1.0lf) { return x; }
    if (y == 2.0lf) { return x * x; }
    let negative = x < 0.0lf && y_odd;
    // |ln ax| >= 2^-53 for ax != 1, so |y| > 2^64 over- or underflows for sure, and for
    // |y| < 2^-80 the result rounds to 1 (x < 0 cannot get here with such a y).
    if (abs(y) > 0x1p64lf) { return select(0.0lf, inf, (ax > 1.0lf) == (y > 0.0lf)); }
    if (abs(y) < 0x1p-80lf) { return 1.0lf; }
    // z = y ln(ax) to ~2^-70 relative, then e^z.
    let z = b2m_dd_mul_d(b2m_log_dd(ax), y);
    var r: f64;
    if (z.x > B2M_EXP_OVERFLOW + 0.01lf) {
        r = inf;
    } else if (z.x < B2M_EXP_UNDERFLOW) {
        r = 0.0lf;
    } else {
        let p = b2m_exp_parts(z.x, z.y);
        r = b2m_ldexp(p.x + p.y, i32(p.z));
    }
    // A select, not sign * r: Mesa may fold x * 0 to +0.
    return select(r, -r, negative);
}

// ---- hyperbolic functions

fn b2_sinh_f64(x: f64) -> f64 {
    if (b2m_isnan(x)) { return x; }
    let a = abs(x);
    // sinh x = x (1 + x^2/6): the correction is below half an ulp; keeps -0.
    if (a < 0x1p-28lf) { return x; }
    if (a > B2M_COSH_OVERFLOW) { return select(b2m_inf(), -b2m_inf(), x < 0.0lf); }
    var r: f64;
    if (a > 22.0lf) {
        // e^-a < 2^-63 e^a: sinh = e^a / 2, scaled in two steps to reach ln(2 DBL_MAX).
        let p = b2m_exp_parts(a, 0.0lf);
        r = b2m_ldexp(p.x + p.y, i32(p.z) - 1);
    } else {
        // sinh a = (E + E / (E + 1)) / 2 with E = e^a - 1 >= 0: no cancellation.
        let e = b2m_expm1_dd(a);
        let s = b2m_dd_add(e, b2m_dd_div(e, b2m_dd_add_d(e, 1.0lf)));
        r = 0.5lf * (s.x + s.y);
    }
    return select(r, -r, x < 0.0lf);
}

fn b2_cosh_f64(x: f64) -> f64 {
    if (b2m_isnan(x)) { return x; }
    let a = abs(x);
    if (a < 0x1p-27lf) { return 1.0lf; }
    if (a > B2M_COSH_OVERFLOW) { return b2m_inf(); }
    if (a > 22.0lf) {
        let p = b2m_exp_parts(a, 0.0lf);
        return b2m_ldexp(p.x + p.y, i32(p.z) - 1);
    }
    // cosh a = 1 + E^2 / (2 (E + 1)) with E = e^a - 1.
    let e = b2m_expm1_dd(a);
    let q = b2m_dd_div(b2m_dd_mul(e, e), 2.0lf * b2m_dd_add_d(e, 1.0lf));
    let r = b2m_dd_add_d(q, 1.0lf);
    return r.x + r.y;
}

fn b2_tanh_f64(x: f64) -> f64 {
    if (b2m_isnan(x)) { return x; }
    let a = abs(x);
    // tanh x = x (1 - x^2/3): the correction is below half an ulp; keeps -0.
    if (a < 0x1p-28lf) { return x; }
    // 1 - tanh(22) < 2^-62: rounds to 1.
    if (a > 22.0lf) { return select(1.0lf, -1.0lf, x < 0.0lf); }
    // tanh a = E / (E + 2) with E = e^(2a) - 1.
    let e = b2m_expm1_dd(2.0lf * a);
    let q = b2m_dd_div(e, b2m_dd_add_d(e, 2.0lf));
    let r = q.x + q.y;
    return select(r, -r, x < 0.0lf);
}

// ---- trigonometric functions

// x = q pi/2 + (rh + rl) with |rh| <= ~pi/4; returns (rh, rl, q) for finite x.
fn b2m_trig_reduce(x: f64) -> vec3<f64> {
    if (abs(x) < B2M_CODY_WAITE_LIMIT) {
        // Cody-Waite: |n| < 2^26, so every n * PIO2_k is exact; x - n PIO2_1 is exact
        // (Sterbenz) and the rest is summed in double-double, which keeps the ~2^-60
        // residues of near-multiples of pi/2 to full relative precision.
        let n = floor(x * B2M_TWO_OVER_PI + 0.5lf);
        var r = vec2<f64>(x - n * B2M_PIO2_1, 0.0lf);
        r = b2m_dd_add_d(r, -(n * B2M_PIO2_2));
        r = b2m_dd_add_d(r, -(n * B2M_PIO2_3));
        r = b2m_dd_add_d(r, -(n * B2M_PIO2_4));
        r = b2m_fast_two_sum(r.x, r.y - n * B2M_PIO2_5);
        return vec3<f64>(r.x, r.y, n);
    }
    return b2m_payne_hanek(x);
}

fn b2m_two_over_pi_digit(j: i32) -> f64 {
    if (j < 0) { return 0.0lf; }
    return f64(B2M_TWO_OVER_PI_DIGITS[j]);
}

// Payne-Hanek reduction for |x| >= 2^26, with exact integer arithmetic in doubles.
// |x| = M 2^(ex - 52) with the 53-bit integer M = b0 2^48 + b1 2^24 + b2, and
// 2/pi = sum_j g_j 2^(-24 (j + 1)), so x 2/pi = sum_L S_L 2^(ex - 28 - 24 L) with
// S_L = b0 g_L + b1 g_(L-1) + b2 g_(L-2) < 3 2^48 (exact). Levels below L0 are
// multiples of 4 (whole turns) and are skipped; eight levels reach 2^-140.
fn b2m_payne_hanek(x: f64) -> vec3<f64> {
    let fe = b2m_frexp(abs(x));
    let ex = i32(fe.y);
    let mant = fe.x * 0x1p52lf;
    let b0 = floor(mant * 0x1p-48lf);
    let rest = mant - b0 * 0x1p48lf;
    let b1 = floor(rest * 0x1p-24lf);
    let b2 = rest - b1 * 0x1p24lf;
    let l0 = (ex - 6) / 24;
    let sh = ex - 28 - 24 * l0; // in [-22, 1]
    var d: array<f64, 8>;
    for (var k = 0; k < 8; k = k + 1) {
        let l = l0 + k;
        d[k] = b0 * b2m_two_over_pi_digit(l) + b1 * b2m_two_over_pi_digit(l - 1)
            + b2 * b2m_two_over_pi_digit(l - 2);
    }
    // Carry so that d[1..7] are base-2^24 digits.
    for (var k = 7; k > 0; k = k - 1) {
        let c = floor(d[k] * 0x1p-24lf);
        d[k] = d[k] - c * 0x1p24lf;
        d[k - 1] = d[k - 1] + c;
    }
    // Leading part, mod 4, with its integer part n removed (all exact: at most 49 bits).
    let t0 = d[0] * b2m_exp2i_small(sh);
    let lsb = b2m_exp2i_small(sh - 24);
    let a = (t0 - 4.0lf * floor(0.25lf * t0)) + d[1] * lsb;
    let n = floor(a + 0.5lf);
    let a1 = a - n;
    // The rest is R = 2^(sh-48) (d2 + d3 2^-24 + ... + d7 2^-120) in [0, lsb). When
    // a1 < 0, f = (a1 + lsb) - (lsb - R) with lsb - R from complemented digits, so a
    // fraction close to 0 never comes from cancelling two larger terms.
    var f: vec2<f64>;
    if (a1 >= 0.0lf) {
        var h = vec2<f64>(d[7], 0.0lf);
        for (var k = 6; k >= 2; k = k - 1) {
            h = b2m_dd_add_d(h * 0x1p-24lf, d[k]);
        }
        f = b2m_dd_add_d(h * b2m_exp2i_small(sh - 48), a1);
    } else {
        var h = vec2<f64>(0x1p24lf - d[7], 0.0lf);
        for (var k = 6; k >= 2; k = k - 1) {
            h = b2m_dd_add_d(h * 0x1p-24lf, (0x1p24lf - 1.0lf) - d[k]);
        }
        f = b2m_dd_add_d(-h * b2m_exp2i_small(sh - 48), a1 + lsb);
    }
    let r = b2m_dd_mul(f, vec2<f64>(B2M_PIO2_HI, B2M_PIO2_LO));
    if (x < 0.0lf) {
        return vec3<f64>(-r.x, -r.y, -n);
    }
    return vec3<f64>(r.x, r.y, n);
}

// sin(rh + rl) as a double-double, |rh| <= ~0.8.
fn b2m_sin_dd(r: vec2<f64>) -> vec2<f64> {
    let x = r.x;
    let z = x * x;
    // Taylor: sin x = x + x^3 (-1/3! + z/5! - ... - z^8/19!); next term < 2^-72 x.
    var p = -0x1.2f49b46814157p-57lf;           // -1/19!
    p = 0x1.952c77030ad4ap-49lf + z * p;        // 1/17!
    p = -0x1.ae7f3e733b81fp-41lf + z * p;       // -1/15!
    p = 0x1.6124613a86d09p-33lf + z * p;        // 1/13!
    p = -0x1.ae64567f544e4p-26lf + z * p;       // -1/11!
    p = 0x1.71de3a556c734p-19lf + z * p;        // 1/9!
    p = -0x1.a01a01a01a01ap-13lf + z * p;       // -1/7!
    p = 0x1.1111111111111p-7lf + z * p;         // 1/5!
    p = -0x1.5555555555555p-3lf + z * p;        // -1/3!
    let tail = x * z * p + r.y * (1.0lf - 0.5lf * z);
    return b2m_fast_two_sum(x, tail);
}

// cos(rh + rl) as a double-double, |rh| <= ~0.8.
fn b2m_cos_dd(r: vec2<f64>) -> vec2<f64> {
    let x = r.x;
    let sq = b2m_two_prod(x, x);
    let z = sq.x;
    // Taylor: cos x = 1 - z/2 + z^2 (1/4! - z/6! + ... + z^8/20!); next term < 2^-70.
    var p = 0x1.e542ba4020225p-62lf;            // 1/20!
    p = -0x1.6827863b97d97p-53lf + z * p;       // -1/18!
    p = 0x1.ae7f3e733b81fp-45lf + z * p;        // 1/16!
    p = -0x1.93974a8c07c9dp-37lf + z * p;       // -1/14!
    p = 0x1.1eed8eff8d898p-29lf + z * p;        // 1/12!
    p = -0x1.27e4fb7789f5cp-22lf + z * p;       // -1/10!
    p = 0x1.a01a01a01a01ap-16lf + z * p;        // 1/8!
    p = -0x1.6c16c16c16c17p-10lf + z * p;       // -1/6!
    p = 0x1.5555555555555p-5lf + z * p;         // 1/4!
    let hz = 0.5lf * z;
    let w = b2m_opaque(1.0lf - hz);
    // (1 - w) - hz is the exact rounding error of w.
    let tail = ((1.0lf - w) - hz) + ((z * z * p - 0.5lf * sq.y) - x * r.y);
    return b2m_fast_two_sum(w, tail);
}

fn b2_sin_f64(x: f64) -> f64 {
    if (b2m_isnan(x) || b2m_isinf(x)) { return b2m_nan(); }
    if (abs(x) < 0x1p-27lf) { return x; }
    let red = b2m_trig_reduce(x);
    let q = i32(red.z) & 3;
    let r = red.xy;
    var v: vec2<f64>;
    if ((q & 1) == 0) { v = b2m_sin_dd(r); } else { v = b2m_cos_dd(r); }
    let s = v.x + v.y;
    return select(s, -s, (q & 2) != 0);
}

fn b2_cos_f64(x: f64) -> f64 {
    if (b2m_isnan(x) || b2m_isinf(x)) { return b2m_nan(); }
    if (abs(x) < 0x1p-27lf) { return 1.0lf; }
    let red = b2m_trig_reduce(x);
    let q = i32(red.z) & 3;
    let r = red.xy;
    var v: vec2<f64>;
    if ((q & 1) == 0) { v = b2m_cos_dd(r); } else { v = b2m_sin_dd(r); }
    let c = v.x + v.y;
    return select(c, -c, q == 1 || q == 2);
}

fn b2_tan_f64(x: f64) -> f64 {
    if (b2m_isnan(x) || b2m_isinf(x)) { return b2m_nan(); }
    if (abs(x) < 0x1p-27lf) { return x; }
    let red = b2m_trig_reduce(x);
    let q = i32(red.z) & 3;
    let s = b2m_sin_dd(red.xy);
    let c = b2m_cos_dd(red.xy);
    var t: vec2<f64>;
    if ((q & 1) == 0) { t = b2m_dd_div(s, c); } else { t = b2m_dd_div(-c, s); }
    return t.x + t.y;
}

// ---- inverse trigonometric functions

// Anchor j (1..7): (c_j, atan(c_j) hi, atan(c_j) lo).
fn b2m_atan_anchor(j: i32) -> vec3<f64> {
    switch j {
        case 1: { return vec3<f64>(0x1.975f5e0553158p-3lf, 0x1.921fb54442d18p-3lf, 0x1.f93470dfef04ap-58lf); }
        case 2: { return vec3<f64>(0x1.a827999fcef32p-2lf, 0x1.921fb54442d18p-2lf, 0x1.c398861b78b55p-59lf); }
        case 3: { return vec3<f64>(0x1.561b82ab7f990p-1lf, 0x1.2d97c7f3321d2p-1lf, -0x1.8f57cafebcf16p-58lf); }
        case 4: { return vec3<f64>(1.0lf, 0x1.921fb54442d18p-1lf, 0x1.1a62633145c07p-55lf); }
        case 5: { return vec3<f64>(0x1.7f218e25a7461p+0lf, 0x1.f6a7a2955385ep-1lf, 0x1.34dfa5661a3cbp-56lf); }
        case 6: { return vec3<f64>(0x1.3504f333f9de6p+1lf, 0x1.2d97c7f3321d2p+0lf, 0x1.fc774dbe287a0p-56lf); }
        default: { return vec3<f64>(0x1.41bfee2424771p+2lf, 0x1.5fdbbe9bba775p+0lf, 0x1.e3cdb040ef2b3p-55lf); }
    }
}

// atan(v) as a double-double for a double-double 0 <= v.x <= 2^60.
fn b2m_atan_dd(v: vec2<f64>) -> vec2<f64> {
    let t = v.x;
    let j = i32(t > B2M_ATAN_T0) + i32(t > B2M_ATAN_T1) + i32(t > B2M_ATAN_T2)
        + i32(t > B2M_ATAN_T3) + i32(t > B2M_ATAN_T4) + i32(t > B2M_ATAN_T5)
        + i32(t > B2M_ATAN_T6) + i32(t > B2M_ATAN_T7);
    var u = v;
    var base = vec2<f64>(0.0lf, 0.0lf);
    if (j == 8) {
        // atan t = pi/2 + atan(-1/t)
        u = b2m_dd_div(vec2<f64>(-1.0lf, 0.0lf), v);
        base = vec2<f64>(B2M_PIO2_HI, B2M_PIO2_LO);
    } else if (j > 0) {
        let a = b2m_atan_anchor(j);
        let num = b2m_dd_add_d(v, -a.x);
        let den = b2m_dd_add_d(b2m_dd_mul_d(v, a.x), 1.0lf);
        u = b2m_dd_div(num, den);
        base = a.yz;
    }
    // |u| <= 0.0985: atan u = u + u^3 (-1/3 + z/5 - ... - z^8/19); next term < 2^-66 u.
    let x = u.x;
    let z = x * x;
    var p = -0x1.af286bca1af28p-5lf;            // -1/19
    p = 0x1.e1e1e1e1e1e1ep-5lf + z * p;         // 1/17
    p = -0x1.1111111111111p-4lf + z * p;        // -1/15
    p = 0x1.3b13b13b13b14p-4lf + z * p;         // 1/13
    p = -0x1.745d1745d1746p-4lf + z * p;        // -1/11
    p = 0x1.c71c71c71c71cp-4lf + z * p;         // 1/9
    p = -0x1.2492492492492p-3lf + z * p;        // -1/7
    p = 0x1.999999999999ap-3lf + z * p;         // 1/5
    p = -0x1.5555555555555p-2lf + z * p;        // -1/3
    let tail = x * z * p + u.y / (1.0lf + z);
    let s = b2m_two_sum(base.x, x);
    return b2m_fast_two_sum(s.x, (s.y + base.y) + tail);
}

fn b2_atan_f64(x: f64) -> f64 {
    if (b2m_isnan(x)) { return x; }
    let a = abs(x);
    // atan x = x (1 - x^2/3): the correction is below half an ulp; keeps -0.
    if (a < 0x1p-27lf) { return x; }
    // pi/2 - atan(1/a) rounds to pi/2.
    if (a > 0x1p60lf) { return select(B2M_PIO2_HI, -B2M_PIO2_HI, x < 0.0lf); }
    let r = b2m_atan_dd(vec2<f64>(a, 0.0lf));
    let s = r.x + r.y;
    return select(s, -s, x < 0.0lf);
}

// sqrt(1 - a^2) as a double-double for 0 <= a < 1, via (1 - a)(1 + a) so that a near 1
// loses nothing.
fn b2m_sqrt_one_minus_sq(a: f64) -> vec2<f64> {
    let d = b2m_dd_mul(b2m_two_sum(1.0lf, -a), b2m_fast_two_sum(1.0lf, a));
    return b2m_dd_sqrt(d);
}

fn b2_asin_f64(x: f64) -> f64 {
    if (b2m_isnan(x)) { return x; }
    let a = abs(x);
    if (a > 1.0lf) { return b2m_nan(); }
    // asin x = x (1 + x^2/6): the correction is below half an ulp; keeps -0.
    if (a < 0x1p-26lf) { return x; }
    if (a == 1.0lf) { return select(B2M_PIO2_HI, -B2M_PIO2_HI, x < 0.0lf); }
    // asin a = atan(a / sqrt(1 - a^2))
    let v = b2m_dd_div(vec2<f64>(a, 0.0lf), b2m_sqrt_one_minus_sq(a));
    let r = b2m_atan_dd(v);
    let s = r.x + r.y;
    return select(s, -s, x < 0.0lf);
}

fn b2_acos_f64(x: f64) -> f64 {
    if (b2m_isnan(x)) { return x; }
    let a = abs(x);
    if (a > 1.0lf) { return b2m_nan(); }
    if (x == 1.0lf) { return 0.0lf; }
    if (x == -1.0lf) { return B2M_PI_HI; }
    // pi/2 - x rounds to pi/2.
    if (a < 0x1p-55lf) { return B2M_PIO2_HI; }
    // acos a = atan(sqrt(1 - a^2) / a); acos(-a) = pi - acos a.
    let v = b2m_dd_div(b2m_sqrt_one_minus_sq(a), vec2<f64>(a, 0.0lf));
    var r = b2m_atan_dd(v);
    if (x < 0.0lf) {
        r = b2m_dd_add(vec2<f64>(B2M_PI_HI, B2M_PI_LO), -r);
    }
    return r.x + r.y;
}

// ---- exact remainders

// C fmod: a - n b with n = trunc(a / b), exact (the result is always representable).
// Long division on the mantissas, 22 quotient bits per step: |a| = ma 2^ea and
// |b| = mb 2^eb with ma, mb in [1, 2); r <- (r 2^s) mod mb keeps r < mb < 2 a multiple
// of 2^-52, and q mb is computed exactly as a double-double (q < 2^23, so two_prod is
// exact). At most ~100 steps (ea - eb <= 2097).
fn b2_fmod_f64(a: f64, b: f64) -> f64 {
    if (b2m_isnan(a) || b2m_isnan(b) || b2m_isinf(a) || b == 0.0lf) { return b2m_nan(); }
    let x = abs(a);
    let y = abs(b);
    if (x < y) { return a; }
    let fx = b2m_frexp(x);
    let fy = b2m_frexp(y);
    let my = fy.x;
    var r = fx.x;
    if (r >= my) { r = r - my; }
    var d = i32(fx.y) - i32(fy.y);
    while (d > 0) {
        let s = min(d, 22);
        d = d - s;
        let t = r * f64(1u << u32(s));
        // q is the true quotient, or one off when t / my lands within rounding of an
        // integer (the remainder is then near 0 or my, and still exact).
        let q = floor(t / my);
        let p = b2m_two_prod(q, my);
        var rem = (t - p.x) - p.y;
        if (rem < 0.0lf) { rem = b2m_opaque(rem + my); }
        if (rem >= my) { rem = rem - my; }
        r = rem;
    }
    let res = b2m_ldexp(r, i32(fy.y));
    return select(res, -res, a < 0.0lf);
}

