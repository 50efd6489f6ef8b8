// float32 helpers where WGSL's builtins differ from numpy's float32 semantics.
// Builtins exp/log/sin/... are fine on f32; these add accuracy near 0 (Kahan's
// expm1/log1p tricks) and C99 special cases for pow with negative bases.

fn b2_expm1_f32(x: f32) -> f32 {
    let u = exp(x);
    if (u == 1.0f) { return x; }
    let um1 = u - 1.0f;
    if (um1 == -1.0f) { return -1.0f; }
    if (abs(x) > 0.5f) { return um1; }
    // (u - 1) * x / log(u) cancels most of exp's rounding error for small x.
    return um1 * x / log(u);
}

fn b2_log1p_f32(x: f32) -> f32 {
    let u = 1.0f + x;
    if (u == 1.0f) { return x; }
    if (abs(x) > 0.5f) { return log(u); }
    return log(u) * x / (u - 1.0f);
}

fn b2_log10_f32(x: f32) -> f32 {
    return log2(x) * 0.30102999566398120f;
}

fn b2_exprel_f32(x: f32) -> f32 {
    if (abs(x) < 1e-16f) { return 1.0f; }
    if (x > 717.0f) { return bitcast<f32>(0x7f800000u); }
    return b2_expm1_f32(x) / x;
}

fn b2_isnan_f32(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn b2_isinf_f32(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}

fn b2_is_odd_int_f32(y: f32) -> bool {
    // Every f32 of magnitude >= 2^24 is even.
    return abs(y) < 16777216.0f && trunc(y) == y && (i32(y) & 1) == 1;
}

// C99 pow: pow(x, 0) = 1, pow(1, y) = 1, negative bases need integer exponents.
fn b2_pow_f32(x: f32, y: f32) -> f32 {
    if (y == 0.0f || x == 1.0f) { return 1.0f; }
    if (b2_isnan_f32(x) || b2_isnan_f32(y)) { return x + y; }
    let inf = bitcast<f32>(0x7f800000u);
    let ax = abs(x);
    if (b2_isinf_f32(y)) {
        if (ax == 1.0f) { return 1.0f; }
        if ((ax > 1.0f) == (y > 0.0f)) { return inf; }
        return 0.0f;
    }
    let y_int = trunc(y) == y;
    let odd = b2_is_odd_int_f32(y);
    if (x == 0.0f) {
        let signed_zero = odd && (bitcast<u32>(x) >> 31u) == 1u;
        if (y < 0.0f) { return select(inf, -inf, signed_zero); }
        return select(0.0f, -0.0f, signed_zero);
    }
    if (b2_isinf_f32(x)) {
        let neg = x < 0.0f && odd;
        if (y < 0.0f) { return select(0.0f, -0.0f, neg); }
        return select(inf, -inf, neg);
    }
    if (x < 0.0f && !y_int) { return bitcast<f32>(0x7fc00000u); }
    var r = exp2(y * log2(ax));
    if (x < 0.0f && odd) { r = -r; }
    return r;
}

// f32 fmod, exact, on the integer mantissas (independent of f64 and of how the device
// rounds or flushes f32 subnormals: the result's bits are assembled directly).
fn b2_fmod_f32(a: f32, b: f32) -> f32 {
    let ua = bitcast<u32>(a) & 0x7fffffffu;
    let ub = bitcast<u32>(b) & 0x7fffffffu;
    let sign = bitcast<u32>(a) & 0x80000000u;
    if (ua >= 0x7f800000u || ub > 0x7f800000u || ub == 0u) {
        return bitcast<f32>(0x7fc00000u);
    }
    if (ua < ub) { return a; }
    // Mantissas as integers (with the implicit bit for normals) and biased exponents
    // (subnormals count as exponent 1 without the implicit bit).
    let ea = max(i32(ua >> 23u), 1);
    let eb = max(i32(ub >> 23u), 1);
    let ma = (ua & 0x7fffffu) | select(0u, 0x800000u, (ua >> 23u) != 0u);
    let mb = (ub & 0x7fffffu) | select(0u, 0x800000u, (ub >> 23u) != 0u);
    var r = ma % mb;
    var d = ea - eb;
    while (d > 0 && r != 0u) {
        // r < mb < 2^24, so 8 bits at a time fit in 32.
        let s = min(d, 8);
        r = (r << u32(s)) % mb;
        d = d - s;
    }
    if (r == 0u) { return bitcast<f32>(sign); }
    // Normalise r 2^(eb - 150) back into an f32 (or a subnormal when eb runs out).
    let shift = min(i32(countLeadingZeros(r)) - 8, eb - 1);
    r = r << u32(shift);
    let e = eb - shift;
    var bits = r;
    if ((r & 0x800000u) != 0u) {
        bits = (u32(e) << 23u) | (r & 0x7fffffu);
    }
    return bitcast<f32>(sign | bits);
}
