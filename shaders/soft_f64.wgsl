// float64 from 32-bit integer arithmetic, for adapters without SHADER_F64 (Apple GPUs,
// Intel Arc, many mobile ones).
//
// A value is its IEEE binary64 bit pattern, vec2<u32>(low word, high word): the layout of
// an f64 in a storage buffer, so arrays, uniform tables and literals keep their bytes, and
// a copy (`lastspike = t`) is a copy of bits. Every arithmetic operation and conversion
// here rounds exactly as IEEE round-to-nearest-even does (subnormals, infinities and signed
// zeros included), so a kernel computes what the host's float64 computes, bit for bit
// (exp and log aside): numpy's float32 models
// meet float64 wherever a value meets Brian2's `t`, `dt` or a float64 constant, and a
// float32 pair emulation would round differently. NaN results are the quiet NaN
// 0x7ff8000000000000 (no payloads). Of the elementary functions only exp and log are here
// (within 1 ulp, below); the writer refuses the others on float64 values.
//
// The algorithms are the textbook ones (SoftFloat's structure: unpack, align with a
// "sticky" bit for everything shifted out, round and pack once): 64-bit words are
// vec2<u32> (x = low, y = high), a 64x64-bit product is built from the 32x32-bit products
// of `b2_mul_hilo` (shaders/philox.wgsl, which the writer includes with this file), and
// division is restoring long division (one quotient bit per iteration).
//
// Names carry the `b2s_` prefix; the tree shaker of src/wgsl/polyfill.rs keeps only what
// a kernel reaches.

// ---- 64-bit unsigned words

fn b2s_u64_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

fn b2s_u64_sub(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

fn b2s_u64_lt(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

fn b2s_u64_is_zero(a: vec2<u32>) -> bool {
    return (a.x | a.y) == 0u;
}

// a << n for n in [0, 64).
fn b2s_u64_shl(a: vec2<u32>, n: u32) -> vec2<u32> {
    if (n == 0u) { return a; }
    if (n >= 32u) { return vec2<u32>(0u, a.x << (n - 32u)); }
    return vec2<u32>(a.x << n, (a.y << n) | (a.x >> (32u - n)));
}

// a >> n (n >= 0), with every bit shifted out ORed into bit 0 (the sticky bit).
fn b2s_u64_shr_jam(a: vec2<u32>, n: u32) -> vec2<u32> {
    if (n == 0u) { return a; }
    if (n >= 64u) { return vec2<u32>(select(0u, 1u, !b2s_u64_is_zero(a)), 0u); }
    var r: vec2<u32>;
    var lost: u32;
    if (n >= 32u) {
        let m = n - 32u;
        if (m == 0u) {
            r = vec2<u32>(a.y, 0u);
            lost = a.x;
        } else {
            r = vec2<u32>(a.y >> m, 0u);
            lost = a.x | (a.y << (32u - m));
        }
    } else {
        r = vec2<u32>((a.x >> n) | (a.y << (32u - n)), a.y >> n);
        lost = a.x << (32u - n);
    }
    r.x = r.x | select(0u, 1u, lost != 0u);
    return r;
}

fn b2s_u64_clz(a: vec2<u32>) -> u32 {
    if (a.y != 0u) { return countLeadingZeros(a.y); }
    return 32u + countLeadingZeros(a.x);
}

// ---- Fields of a value

fn b2s_sign(a: vec2<u32>) -> u32 { return a.y >> 31u; }
fn b2s_ebits(a: vec2<u32>) -> u32 { return (a.y >> 20u) & 0x7ffu; }
fn b2s_frac(a: vec2<u32>) -> vec2<u32> { return vec2<u32>(a.x, a.y & 0xfffffu); }

// sign, biased exponent and 52-bit fraction added (not ORed) into place, so that a
// significand carrying into bit 52 raises the exponent (rounding up to a power of two).
fn b2s_pack(sign: u32, e: u32, sig: vec2<u32>) -> vec2<u32> {
    return b2s_u64_add(vec2<u32>(0u, (sign << 31u) + (e << 20u)), sig);
}

fn b2s_nan() -> vec2<u32> { return vec2<u32>(0u, 0x7ff80000u); }
fn b2s_inf(sign: u32) -> vec2<u32> { return vec2<u32>(0u, (sign << 31u) | 0x7ff00000u); }
fn b2s_zero(sign: u32) -> vec2<u32> { return vec2<u32>(0u, sign << 31u); }

fn b2s_isnan(a: vec2<u32>) -> bool {
    let h = a.y & 0x7fffffffu;
    return h > 0x7ff00000u || (h == 0x7ff00000u && a.x != 0u);
}

fn b2s_isinf(a: vec2<u32>) -> bool {
    return (a.y & 0x7fffffffu) == 0x7ff00000u && a.x == 0u;
}

fn b2s_is_zero(a: vec2<u32>) -> bool {
    return ((a.y & 0x7fffffffu) | a.x) == 0u;
}

fn b2s_neg(a: vec2<u32>) -> vec2<u32> { return vec2<u32>(a.x, a.y ^ 0x80000000u); }
fn b2s_abs(a: vec2<u32>) -> vec2<u32> { return vec2<u32>(a.x, a.y & 0x7fffffffu); }

// ---- Rounding

// Round and pack a value sig * 2^(e - 1084) whose significand has its leading one at
// bit 62 (or lower, for subnormal results, with e = 0) and 10 bits below the result's
// last place. e may be negative (the result is subnormal) or too large (infinity).
fn b2s_round_pack(sign: u32, e: i32, sig_in: vec2<u32>) -> vec2<u32> {
    var sig = sig_in;
    var ex = e;
    if (ex >= 0x7fd || ex < 0) {
        if (ex < 0) {
            sig = b2s_u64_shr_jam(sig, u32(-ex));
            ex = 0;
        } else {
            // 0x7fd with a significand that rounds up to 2^63 also overflows.
            let up = b2s_u64_add(sig, vec2<u32>(0x200u, 0u));
            if (ex > 0x7fd || (up.y & 0x80000000u) != 0u) {
                return b2s_inf(sign);
            }
        }
    }
    let round_bits = sig.x & 0x3ffu;
    sig = b2s_u64_add(sig, vec2<u32>(0x200u, 0u));
    // sig >> 10
    sig = vec2<u32>((sig.x >> 10u) | (sig.y << 22u), sig.y >> 10u);
    if (round_bits == 0x200u) {
        sig.x = sig.x & 0xfffffffeu; // a tie: to even
    }
    if (b2s_u64_is_zero(sig)) {
        ex = 0;
    }
    return b2s_pack(sign, u32(ex), sig);
}

// As b2s_round_pack, for a significand whose leading one may be anywhere (not zero).
fn b2s_norm_round_pack(sign: u32, e: i32, sig: vec2<u32>) -> vec2<u32> {
    let shift = i32(b2s_u64_clz(sig)) - 1;
    let ex = e - shift;
    if (shift >= 10 && ex >= 0 && ex < 0x7fd) {
        // Exact: no bits below the last place.
        let s = b2s_u64_shl(sig, u32(shift - 10));
        return b2s_pack(sign, select(0u, u32(ex), !b2s_u64_is_zero(s)), s);
    }
    return b2s_round_pack(sign, ex, b2s_u64_shl(sig, u32(shift)));
}

// ---- Addition and subtraction

// |a| + |b| with the result's sign `sign`.
fn b2s_add_mags(a: vec2<u32>, b: vec2<u32>, sign: u32) -> vec2<u32> {
    let ea = i32(b2s_ebits(a));
    let eb = i32(b2s_ebits(b));
    var sa = b2s_frac(a);
    var sb = b2s_frac(b);
    let d = ea - eb;
    if (d == 0) {
        if (ea == 0) {
            // Both subnormal or zero: the fractions add (a carry makes the result normal).
            return b2s_pack(sign, 0u, b2s_u64_add(sa, sb));
        }
        if (ea == 0x7ff) {
            if (!b2s_u64_is_zero(sa) || !b2s_u64_is_zero(sb)) { return b2s_nan(); }
            return b2s_inf(sign);
        }
        // 2^53 + fa + fb (both hidden bits), leading one at bit 53 -> 62.
        let s = b2s_u64_add(b2s_u64_add(vec2<u32>(0u, 0x00200000u), sa), sb);
        return b2s_round_pack(sign, ea, b2s_u64_shl(s, 9u));
    }
    sa = b2s_u64_shl(sa, 9u);
    sb = b2s_u64_shl(sb, 9u);
    var ez: i32;
    if (d < 0) {
        if (eb == 0x7ff) {
            if (!b2s_u64_is_zero(sb)) { return b2s_nan(); }
            return b2s_inf(sign);
        }
        ez = eb;
        if (ea != 0) { sa = b2s_u64_add(sa, vec2<u32>(0u, 0x20000000u)); } else { sa = b2s_u64_shl(sa, 1u); }
        sa = b2s_u64_shr_jam(sa, u32(-d));
    } else {
        if (ea == 0x7ff) {
            if (!b2s_u64_is_zero(sa)) { return b2s_nan(); }
            return b2s_inf(sign);
        }
        ez = ea;
        if (eb != 0) { sb = b2s_u64_add(sb, vec2<u32>(0u, 0x20000000u)); } else { sb = b2s_u64_shl(sb, 1u); }
        sb = b2s_u64_shr_jam(sb, u32(d));
    }
    var s = b2s_u64_add(b2s_u64_add(vec2<u32>(0u, 0x20000000u), sa), sb);
    if (s.y < 0x40000000u) {
        ez = ez - 1;
        s = b2s_u64_shl(s, 1u);
    }
    return b2s_round_pack(sign, ez, s);
}

// |a| - |b|, with `sign` the sign of a.
fn b2s_sub_mags(a: vec2<u32>, b: vec2<u32>, sign: u32) -> vec2<u32> {
    var ea = i32(b2s_ebits(a));
    let eb = i32(b2s_ebits(b));
    var sa = b2s_frac(a);
    var sb = b2s_frac(b);
    let d = ea - eb;
    var sz = sign;
    if (d == 0) {
        if (ea == 0x7ff) {
            return b2s_nan(); // inf - inf, or a NaN operand
        }
        if (b2s_u64_lt(sa, sb)) {
            sz = sz ^ 1u;
            let t = sa;
            sa = sb;
            sb = t;
        }
        let diff = b2s_u64_sub(sa, sb);
        if (b2s_u64_is_zero(diff)) {
            return b2s_zero(0u); // x - x = +0 in round-to-nearest
        }
        if (ea != 0) { ea = ea - 1; }
        var shift = i32(b2s_u64_clz(diff)) - 11;
        var ez = ea - shift;
        if (ez < 0) {
            shift = ea;
            ez = 0;
        }
        return b2s_pack(sz, u32(ez), b2s_u64_shl(diff, u32(shift)));
    }
    sa = b2s_u64_shl(sa, 10u);
    sb = b2s_u64_shl(sb, 10u);
    var ez: i32;
    var s: vec2<u32>;
    if (d < 0) {
        sz = sz ^ 1u;
        if (eb == 0x7ff) {
            if (!b2s_u64_is_zero(b2s_frac(b))) { return b2s_nan(); }
            return b2s_inf(sz);
        }
        if (ea != 0) { sa = b2s_u64_add(sa, vec2<u32>(0u, 0x40000000u)); } else { sa = b2s_u64_add(sa, sa); }
        sa = b2s_u64_shr_jam(sa, u32(-d));
        sb = vec2<u32>(sb.x, sb.y | 0x40000000u);
        ez = eb;
        s = b2s_u64_sub(sb, sa);
    } else {
        if (ea == 0x7ff) {
            if (!b2s_u64_is_zero(b2s_frac(a))) { return b2s_nan(); }
            return a;
        }
        if (eb != 0) { sb = b2s_u64_add(sb, vec2<u32>(0u, 0x40000000u)); } else { sb = b2s_u64_add(sb, sb); }
        sb = b2s_u64_shr_jam(sb, u32(d));
        sa = vec2<u32>(sa.x, sa.y | 0x40000000u);
        ez = ea;
        s = b2s_u64_sub(sa, sb);
    }
    return b2s_norm_round_pack(sz, ez - 1, s);
}

fn b2s_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (b2s_isnan(a) || b2s_isnan(b)) { return b2s_nan(); }
    if (b2s_sign(a) == b2s_sign(b)) { return b2s_add_mags(a, b, b2s_sign(a)); }
    return b2s_sub_mags(a, b, b2s_sign(a));
}

fn b2s_sub(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return b2s_add(a, b2s_neg(b));
}

// ---- Multiplication and division

// A finite nonzero value as sig * 2^(e - 1075), its significand's leading one at bit 52
// (the hidden bit made explicit; a subnormal's fraction shifted up): (sig.x, sig.y, e),
// e as i32 bits.
fn b2s_sig_exp(a: vec2<u32>) -> vec3<u32> {
    let e = b2s_ebits(a);
    let f = b2s_frac(a);
    if (e != 0u) { return vec3<u32>(f.x, f.y | 0x00100000u, e); }
    let shift = b2s_u64_clz(f) - 11u;
    let s = b2s_u64_shl(f, shift);
    return vec3<u32>(s.x, s.y, bitcast<u32>(1 - i32(shift)));
}

fn b2s_mul(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (b2s_isnan(a) || b2s_isnan(b)) { return b2s_nan(); }
    let sign = b2s_sign(a) ^ b2s_sign(b);
    if (b2s_ebits(a) == 0x7ffu || b2s_ebits(b) == 0x7ffu) {
        // inf * 0 is invalid; inf * anything else is inf.
        if (b2s_is_zero(a) || b2s_is_zero(b)) { return b2s_nan(); }
        return b2s_inf(sign);
    }
    if (b2s_is_zero(a) || b2s_is_zero(b)) { return b2s_zero(sign); }
    let ua = b2s_sig_exp(a);
    let ub = b2s_sig_exp(b);
    var ez = bitcast<i32>(ua.z) + bitcast<i32>(ub.z) - 0x3ff;
    let sa = b2s_u64_shl(ua.xy, 10u);
    let sb = b2s_u64_shl(ub.xy, 11u);
    // 128-bit product; b2_mul_hilo (shaders/philox.wgsl) gives (high, low) words.
    let p00 = b2_mul_hilo(sa.x, sb.x).yx;
    let p01 = b2_mul_hilo(sa.x, sb.y).yx;
    let p10 = b2_mul_hilo(sa.y, sb.x).yx;
    let p11 = b2_mul_hilo(sa.y, sb.y).yx;
    // Middle: p01 + p10 + p00.y, as a 64-bit sum with a carry into the top word.
    let m1 = b2s_u64_add(p01, p10);
    let c1 = select(0u, 1u, b2s_u64_lt(m1, p01));
    let m = b2s_u64_add(m1, vec2<u32>(p00.y, 0u));
    let c2 = select(0u, 1u, b2s_u64_lt(m, m1));
    let hi = b2s_u64_add(p11, vec2<u32>(m.y, c1 + c2));
    // The low 64 bits (p00.x, m.x) only as the sticky bit.
    var s = vec2<u32>(hi.x | select(0u, 1u, (p00.x | m.x) != 0u), hi.y);
    if (s.y < 0x40000000u) {
        ez = ez - 1;
        s = b2s_u64_shl(s, 1u);
    }
    return b2s_round_pack(sign, ez, s);
}

fn b2s_div(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (b2s_isnan(a) || b2s_isnan(b)) { return b2s_nan(); }
    let sign = b2s_sign(a) ^ b2s_sign(b);
    if (b2s_isinf(a)) {
        if (b2s_isinf(b)) { return b2s_nan(); }
        return b2s_inf(sign);
    }
    if (b2s_isinf(b)) { return b2s_zero(sign); }
    if (b2s_is_zero(b)) {
        if (b2s_is_zero(a)) { return b2s_nan(); }
        return b2s_inf(sign);
    }
    if (b2s_is_zero(a)) { return b2s_zero(sign); }
    let ua = b2s_sig_exp(a);
    let ub = b2s_sig_exp(b);
    var ez = bitcast<i32>(ua.z) - bitcast<i32>(ub.z) + 0x3fe;
    var rem = ua.xy;
    let den = ub.xy;
    if (b2s_u64_lt(rem, den)) {
        ez = ez - 1;
        rem = b2s_u64_shl(rem, 1u);
    }
    // rem / den is in [1, 2): 63 quotient bits, the leading one at bit 62.
    var q = vec2<u32>(0u, 0u);
    for (var i = 0u; i < 63u; i++) {
        q = b2s_u64_shl(q, 1u);
        if (!b2s_u64_lt(rem, den)) {
            rem = b2s_u64_sub(rem, den);
            q.x = q.x | 1u;
        }
        rem = b2s_u64_shl(rem, 1u);
    }
    q.x = q.x | select(0u, 1u, !b2s_u64_is_zero(rem));
    return b2s_round_pack(sign, ez, q);
}

// ---- Comparisons (NaN compares false, except with !=; -0 == +0)

fn b2s_eq(a: vec2<u32>, b: vec2<u32>) -> bool {
    if (b2s_isnan(a) || b2s_isnan(b)) { return false; }
    return all(a == b) || (b2s_is_zero(a) && b2s_is_zero(b));
}

fn b2s_lt(a: vec2<u32>, b: vec2<u32>) -> bool {
    if (b2s_isnan(a) || b2s_isnan(b)) { return false; }
    if (b2s_is_zero(a) && b2s_is_zero(b)) { return false; }
    let sa = b2s_sign(a);
    if (sa != b2s_sign(b)) { return sa == 1u; }
    let ma = b2s_abs(a);
    let mb = b2s_abs(b);
    if (sa == 0u) { return b2s_u64_lt(ma, mb); }
    return b2s_u64_lt(mb, ma);
}

fn b2s_le(a: vec2<u32>, b: vec2<u32>) -> bool {
    return b2s_lt(a, b) || b2s_eq(a, b);
}

// ---- Conversions

fn b2s_from_f32(x: f32) -> vec2<u32> {
    let bits = bitcast<u32>(x);
    let sign = bits >> 31u;
    var e = i32((bits >> 23u) & 0xffu);
    var frac = bits & 0x7fffffu;
    if (e == 0xff) {
        if (frac != 0u) { return b2s_nan(); }
        return b2s_inf(sign);
    }
    if (e == 0) {
        if (frac == 0u) { return b2s_zero(sign); }
        let shift = countLeadingZeros(frac) - 8u;
        frac = frac << shift; // hidden bit at 23, added into the exponent by the pack
        e = -i32(shift);
    }
    // frac << 29 as a 64-bit word.
    return b2s_pack(sign, u32(e + 0x380), vec2<u32>(frac << 29u, frac >> 3u));
}

fn b2s_from_u32(sign: u32, mag: u32) -> vec2<u32> {
    if (mag == 0u) { return b2s_zero(0u); }
    let shift = countLeadingZeros(mag) + 21u;
    return b2s_pack(sign, 0x432u - shift, b2s_u64_shl(vec2<u32>(mag, 0u), shift));
}

fn b2s_from_i32(x: i32) -> vec2<u32> {
    let sign = select(0u, 1u, x < 0);
    // Two's complement magnitude, i32::MIN included.
    let mag = select(bitcast<u32>(x), 0u - bitcast<u32>(x), x < 0);
    return b2s_from_u32(sign, mag);
}

fn b2s_from_bool(x: bool) -> vec2<u32> {
    return select(vec2<u32>(0u, 0u), vec2<u32>(0u, 0x3ff00000u), x);
}

// Round to nearest float32 (ties to even), through the float32 subnormals.
fn b2s_to_f32(a: vec2<u32>) -> f32 {
    let sign = b2s_sign(a);
    let e = i32(b2s_ebits(a));
    let frac = b2s_frac(a);
    if (e == 0x7ff) {
        if (!b2s_u64_is_zero(frac)) { return bitcast<f32>(0x7fc00000u); }
        return bitcast<f32>((sign << 31u) | 0x7f800000u);
    }
    // 52 fraction bits -> 30, with a sticky bit.
    let f30 = b2s_u64_shr_jam(frac, 22u).x;
    if (e == 0 && f30 == 0u) { return bitcast<f32>(sign << 31u); }
    var sig = f30 | 0x40000000u;
    var ex = e - 0x381;
    if (ex >= 0xfd || ex < 0) {
        if (ex < 0) {
            let n = u32(-ex);
            if (n >= 31u) {
                sig = select(0u, 1u, sig != 0u);
            } else {
                sig = (sig >> n) | select(0u, 1u, (sig << (32u - n)) != 0u);
            }
            ex = 0;
        } else if (ex > 0xfd || sig + 0x40u >= 0x80000000u) {
            return bitcast<f32>((sign << 31u) | 0x7f800000u);
        }
    }
    let round_bits = sig & 0x7fu;
    sig = (sig + 0x40u) >> 7u;
    if (round_bits == 0x40u) { sig = sig & 0xfffffffeu; }
    if (sig == 0u) { ex = 0; }
    return bitcast<f32>((sign << 31u) + (u32(ex) << 23u) + sig);
}

// Truncation toward zero of |a| < 2^64 to a 64-bit magnitude (callers check the range).
fn b2s_trunc_mag(a: vec2<u32>) -> vec2<u32> {
    let e = i32(b2s_ebits(a));
    if (e < 0x3ff) { return vec2<u32>(0u, 0u); }
    let sig = vec2<u32>(a.x, (a.y & 0xfffffu) | 0x00100000u);
    let shift = e - 0x433;
    if (shift >= 0) { return b2s_u64_shl(sig, u32(shift)); }
    let n = u32(-shift);
    // A plain shift (no sticky bit): truncation.
    if (n >= 32u) { return vec2<u32>(sig.y >> (n - 32u), 0u); }
    return vec2<u32>((sig.x >> n) | (sig.y << (32u - n)), sig.y >> n);
}

// Brian2's int() of a float64, as x86's cvttsd2si: NaN and |a| >= 2^31 give i32::MIN.
fn b2s_to_i32(a: vec2<u32>) -> i32 {
    if (b2s_isnan(a) || b2s_ebits(a) >= 0x41eu) { return bitcast<i32>(0x80000000u); }
    let m = b2s_trunc_mag(a).x;
    return select(bitcast<i32>(m), bitcast<i32>(0u - m), b2s_sign(a) == 1u);
}

// The two's complement words of a's truncation, as cvttsd2si with a 64-bit result
// (NaN and |a| >= 2^63 give i64::MIN).
fn b2s_to_i64_words(a: vec2<u32>) -> vec2<u32> {
    if (b2s_isnan(a) || b2s_ebits(a) >= 0x43eu) { return vec2<u32>(0u, 0x80000000u); }
    let m = b2s_trunc_mag(a);
    if (b2s_sign(a) == 1u) { return b2s_u64_sub(vec2<u32>(0u, 0u), m); }
    return m;
}

// The value of the two's complement words `w` (an int64), rounded to nearest.
fn b2s_from_i64_words(w: vec2<u32>) -> vec2<u32> {
    let neg = (w.y >> 31u) == 1u;
    let mag = select(w, b2s_u64_sub(vec2<u32>(0u, 0u), w), neg);
    if (b2s_u64_is_zero(mag)) { return b2s_zero(0u); }
    // i64::MIN is its own negation: -2^63.
    if ((mag.y >> 31u) == 1u) { return vec2<u32>(0u, 0xc3e00000u); }
    return b2s_norm_round_pack(select(0u, 1u, neg), 0x43c, mag);
}

// ---- Functions

fn b2s_floor(a: vec2<u32>) -> vec2<u32> {
    let e = i32(b2s_ebits(a));
    if (e >= 0x433) { return a; } // integral, inf or NaN
    if (e < 0x3ff) {
        // |a| < 1
        if (b2s_is_zero(a) || b2s_sign(a) == 0u) { return b2s_zero(b2s_sign(a)); }
        return vec2<u32>(0u, 0xbff00000u); // -1
    }
    let n = u32(0x433 - e); // fraction bits to clear, 1..52
    let mask = b2s_u64_sub(b2s_u64_shl(vec2<u32>(1u, 0u), n), vec2<u32>(1u, 0u));
    if (((a.x & mask.x) | (a.y & mask.y)) == 0u) { return a; }
    let t = vec2<u32>(a.x & ~mask.x, a.y & ~mask.y);
    if (b2s_sign(a) == 1u) { return b2s_sub(t, vec2<u32>(0u, 0x3ff00000u)); }
    return t;
}

fn b2s_ceil(a: vec2<u32>) -> vec2<u32> {
    return b2s_neg(b2s_floor(b2s_neg(a)));
}

// numpy's clip with scalar bounds (NaN anywhere gives NaN; x keeps its -0.0).
fn b2s_clip(x: vec2<u32>, lo: vec2<u32>, hi: vec2<u32>) -> vec2<u32> {
    if (b2s_isnan(x) || b2s_isnan(lo) || b2s_isnan(hi)) { return b2s_nan(); }
    let m = select(x, lo, b2s_lt(x, lo));
    return select(m, hi, b2s_lt(hi, m));
}

// numpy's sign: NaN stays, -0 gives +0.
fn b2s_sign_of(x: vec2<u32>) -> vec2<u32> {
    if (b2s_isnan(x)) { return x; }
    if (b2s_is_zero(x)) { return b2s_zero(0u); }
    return vec2<u32>(0u, select(0x3ff00000u, 0xbff00000u, b2s_sign(x) == 1u));
}

// Brian2's timestep(t, dt): int64((t + 1e-3 dt) / dt), as two's complement words.
fn b2s_timestep_words(t: vec2<u32>, dt: vec2<u32>) -> vec2<u32> {
    // 1e-3 = 0x3f50624dd2f1a9fc
    let q = b2s_div(b2s_add(t, b2s_mul(vec2<u32>(0xd2f1a9fcu, 0x3f50624du), dt)), dt);
    return b2s_to_i64_words(q);
}

// The int64 forms (for kernels on adapters with SHADER_INT64; the tree shaker drops them
// from others).
fn b2s_to_i64(a: vec2<u32>) -> i64 {
    let w = b2s_to_i64_words(a);
    return (i64(w.y) << 32u) | i64(w.x);
}

fn b2s_from_i64(x: i64) -> vec2<u32> {
    return b2s_from_i64_words(vec2<u32>(u32(x & 0xffffffffli), u32((x >> 32u) & 0xffffffffli)));
}

fn b2s_timestep(t: vec2<u32>, dt: vec2<u32>) -> i64 {
    let w = b2s_timestep_words(t, dt);
    return (i64(w.y) << 32u) | i64(w.x);
}

// ---- Elementary functions
//
// Each is a program of the operations above (src/wgsl/soft_programs.rs assembles them
// into B2S_PROG, B2S_K and the B2S_PC_* entry points), run by b2s_run: drivers inline
// every call, and one loop holding one copy of each operation keeps a call site small,
// where straight-line code cost lavapipe seconds of compilation per call. Special values
// are sorted out here, before the program runs. Accuracy (tests/soft_f64.rs, against
// glibc = numpy): exp and log within 1 ulp (Tang's reductions with fdlibm's kernels).

// a * 2^k for an integral value k, rounded once (through the subnormals, to inf).
fn b2s_ldexp(a: vec2<u32>, kf: vec2<u32>) -> vec2<u32> {
    if (b2s_ebits(a) == 0x7ffu || b2s_is_zero(a)) { return a; }
    let k = clamp(b2s_to_i32(kf), -2200, 2200);
    let u = b2s_sig_exp(a);
    return b2s_round_pack(b2s_sign(a), bitcast<i32>(u.z) - 1 + k, b2s_u64_shl(u.xy, 10u));
}

// The interpreter's registers; its program and constants (B2S_PROG, B2S_K) are private
// variables too: drivers index those cheaply, where a `const` array indexed at run time
// may be rebuilt at every access (lavapipe then compiled each call site for seconds).
var<private> b2s_r: array<vec2<u32>, 16>;

// Operand i of an instruction: a register below 16, a constant above.
fn b2s_operand(i: u32) -> vec2<u32> {
    if (i < 16u) { return b2s_r[i]; }
    return B2S_K[i - 16u];
}

// Runs the program at `pc` with inputs x, y, z in registers 0, 1, 2; returns register 0.
fn b2s_run(pc_start: u32, x: vec2<u32>, y: vec2<u32>, z: vec2<u32>) -> vec2<u32> {
    b2s_r[0] = x;
    b2s_r[1] = y;
    b2s_r[2] = z;
    var pc = pc_start;
    loop {
        let ins = B2S_PROG[pc];
        pc = pc + 1u;
        let op = ins & 0xfu;
        if (op == 0u) { break; }
        let a = b2s_operand((ins >> 8u) & 0xffu);
        let b0 = b2s_operand((ins >> 16u) & 0xffu);
        if (op == 9u) {
            if (b2s_lt(a, b0)) { pc = u32(i32(pc) + (bitcast<i32>(ins) >> 24u)); }
            continue;
        }
        // Subtraction is addition of -b.
        let b = select(b0, b2s_neg(b0), op == 2u);
        var v: vec2<u32>;
        switch op {
            case 1u, 2u: { v = b2s_add(a, b); }
            case 3u: { v = b2s_mul(a, b); }
            case 4u: { v = b2s_div(a, b); }
            case 5u: { v = b2s_floor(a); }
            case 6u: { v = b2s_ldexp(a, b); }
            case 7u: { v = select(a, b, b2s_lt(b, a)); }
            default: { v = select(a, b, b2s_lt(a, b)); }
        }
        b2s_r[(ins >> 4u) & 0xfu] = v;
    }
    return b2s_r[0];
}

fn b2s_exp(x: vec2<u32>) -> vec2<u32> {
    return b2s_run(B2S_PC_EXP, x, x, x);
}

// x = 2^k m with m in [sqrt(2)/2, sqrt(2)), for finite x > 0: (m, k as a value).
fn b2s_log_split(x: vec2<u32>) -> array<vec2<u32>, 2> {
    var v = x;
    var k = 0;
    if (b2s_ebits(x) == 0u) {
        // Subnormal: x 2^54 is normal (exact).
        let u = b2s_sig_exp(x);
        v = b2s_pack(0u, bitcast<u32>(bitcast<i32>(u.z) + 53), u.xy);
        k = -54;
    }
    let hx = v.y & 0x000fffffu;
    let i = (hx + 0x95f64u) & 0x100000u;
    k = k + i32(v.y >> 20u) - 1023 + i32(i >> 20u);
    return array<vec2<u32>, 2>(vec2<u32>(v.x, hx | (i ^ 0x3ff00000u)), b2s_from_i32(k));
}

fn b2s_log(x: vec2<u32>) -> vec2<u32> {
    if (b2s_isnan(x)) { return b2s_nan(); }
    if (b2s_is_zero(x)) { return b2s_inf(1u); }
    if (b2s_sign(x) == 1u) { return b2s_nan(); }
    if (b2s_isinf(x)) { return x; }
    let mk = b2s_log_split(x);
    return b2s_run(B2S_PC_LOG, mk[0], mk[1], mk[1]);
}

// Brian2's exprel: (e^x - 1) / x, 1 for |x| < 1e-16, inf above ln(DBL_MAX) (as numpy's
// expm1(x) / x), 0 at -inf.
fn b2s_exprel(x: vec2<u32>) -> vec2<u32> {
    if (b2s_isnan(x)) { return b2s_nan(); }
    let ax = b2s_abs(x);
    if (b2s_lt(ax, vec2<u32>(0x97d889bcu, 0x3c9cd2b2u))) { return vec2<u32>(0u, 0x3ff00000u); }
    if (b2s_lt(vec2<u32>(0xfefa39efu, 0x40862e42u), x)) { return b2s_inf(0u); }
    let series = b2s_lt(ax, vec2<u32>(0u, 0x3ff00000u));
    return b2s_run(select(B2S_PC_EXPREL_EXP, B2S_PC_EXPREL_SERIES, series), x, x, x);
}

// Integral values (every double of magnitude >= 2^52 is one).
fn b2s_is_integral(a: vec2<u32>) -> bool {
    let e = i32(b2s_ebits(a)) - 1023; // the unit bit is fraction bit 52 - e
    if (e >= 52) { return e != 1024; }
    if (e < 0) { return b2s_is_zero(a); }
    // The fraction bits below the unit bit: 52 - e of them, from bit 0.
    let n = u32(52 - e);
    let f = b2s_frac(a);
    if (n >= 32u) {
        return f.x == 0u && (f.y & ((1u << (n - 32u)) - 1u)) == 0u;
    }
    return (f.x & ((1u << n) - 1u)) == 0u;
}

// For an integral value: whether it is odd.
fn b2s_is_odd(a: vec2<u32>) -> bool {
    let e = i32(b2s_ebits(a)) - 1023;
    if (e < 0 || e > 52) { return false; }
    if (e == 0) { return true; } // +-1: the hidden bit
    let n = u32(52 - e);
    let f = b2s_frac(a);
    if (n >= 32u) { return ((f.y >> (n - 32u)) & 1u) == 1u; }
    return ((f.x >> n) & 1u) == 1u;
}

// C99 pow (F.9.4.4): pow(x, +-0) = pow(1, y) = 1 even for NaN, negative bases need
// integral exponents. Integral exponents up to 64 in magnitude multiply in double-double
// (correctly rounded but within ~2^-100 of a tie, as the f64 library's powers); others
// are e^(y ln|x|), within about (2 |y ln x| + 2) ulp.
fn b2s_pow(x: vec2<u32>, y: vec2<u32>) -> vec2<u32> {
    let one = vec2<u32>(0u, 0x3ff00000u);
    if (b2s_is_zero(y) || all(x == one)) { return one; }
    if (b2s_isnan(x) || b2s_isnan(y)) { return b2s_nan(); }
    let ax = b2s_abs(x);
    let ay = b2s_abs(y);
    let y_neg = b2s_sign(y) == 1u;
    if (b2s_isinf(y)) {
        if (all(ax == one)) { return one; }
        return select(b2s_zero(0u), b2s_inf(0u), b2s_lt(one, ax) != y_neg);
    }
    let y_int = b2s_is_integral(y);
    let y_odd = y_int && b2s_is_odd(y);
    if (b2s_is_zero(x)) {
        // The sign of a zero base survives only for odd integral exponents.
        let s = select(0u, b2s_sign(x), y_odd);
        return select(b2s_zero(s), b2s_inf(s), y_neg);
    }
    if (b2s_isinf(x)) {
        let s = select(0u, 1u, b2s_sign(x) == 1u && y_odd);
        return select(b2s_inf(s), b2s_zero(s), y_neg);
    }
    if (b2s_sign(x) == 1u && !y_int) { return b2s_nan(); }
    if (all(ax == one)) { return select(one, b2s_neg(one), y_odd); }
    if (all(y == one)) { return x; }
    // |ln ax| >= 2^-53 for ax != 1: |y| > 2^64 over- or underflows, |y| < 2^-80 gives 1.
    if (b2s_lt(vec2<u32>(0u, 0x43f00000u), ay)) {
        return select(b2s_zero(0u), b2s_inf(0u), b2s_lt(one, ax) != y_neg);
    }
    if (b2s_lt(ay, vec2<u32>(0u, 0x3af00000u))) { return one; }
    var pc: u32;
    var in0: vec2<u32>;
    var in1: vec2<u32>;
    var in2 = y;
    var negate = false;
    if (y_int && b2s_lt(ay, vec2<u32>(0u, 0x40504000u))) {
        // |y| <= 64: x = a 2^e with 1 <= |a| < 2 (the sign stays in a).
        let n = b2s_to_i32(ay);
        let u = b2s_sig_exp(ax);
        let e = bitcast<i32>(u.z) - 1023;
        pc = select(B2S_PC_POWI, B2S_PC_POWI_RECIP, y_neg);
        in0 = b2s_pack(b2s_sign(x), 1022u, u.xy);
        in1 = b2s_from_i32(n);
        in2 = b2s_from_i32(select(n * e, -n * e, y_neg));
    } else {
        let mk = b2s_log_split(ax);
        pc = B2S_PC_POW;
        in0 = mk[0];
        in1 = mk[1];
        negate = b2s_sign(x) == 1u && y_odd;
    }
    let r = b2s_run(pc, in0, in1, in2);
    return select(r, b2s_neg(r), negate);
}

// Correctly rounded square root: one result bit per step from the radicand's bit pairs.
fn b2s_sqrt(a: vec2<u32>) -> vec2<u32> {
    if (b2s_isnan(a)) { return b2s_nan(); }
    if (b2s_is_zero(a)) { return a; } // sqrt(-0) = -0
    if (b2s_sign(a) == 1u) { return b2s_nan(); }
    if (b2s_isinf(a)) { return a; }
    let u = b2s_sig_exp(a);
    let ex = bitcast<i32>(u.z) - 1075; // a = sig 2^ex, sig < 2^53
    // The radicand sig 2^56 (ex even) or sig 2^57 (ex odd), 110 bits, top-aligned in src.
    let odd = (ex & 1) != 0;
    var src = b2s_u64_shl(u.xy, select(10u, 11u, odd));
    let e2 = ex - select(56, 57, odd);
    var q = vec2<u32>(0u, 0u);
    var rem = vec2<u32>(0u, 0u);
    for (var i = 0u; i < 55u; i++) {
        rem = b2s_u64_shl(rem, 2u);
        rem.x = rem.x | (src.y >> 30u);
        src = b2s_u64_shl(src, 2u);
        let t = b2s_u64_shl(q, 2u) | vec2<u32>(1u, 0u);
        q = b2s_u64_shl(q, 1u);
        if (!b2s_u64_lt(rem, t)) {
            rem = b2s_u64_sub(rem, t);
            q.x = q.x | 1u;
        }
    }
    // q < 2^55 with its leading one at bit 54: to bit 62, the remainder as sticky bit.
    let sig = b2s_u64_shl(q, 8u) | vec2<u32>(select(0u, 1u, !b2s_u64_is_zero(rem)), 0u);
    return b2s_round_pack(0u, (e2 >> 1u) + 1076, sig);
}

// ---- sin and cos

// 2/pi in 32-bit words, most significant first (1344 bits: enough for any double's
// reduction below).
var<private> B2S_TWO_OVER_PI: array<u32, 42> = array<u32, 42>(
    0xa2f9836eu, 0x4e441529u, 0xfc2757d1u, 0xf534ddc0u, 0xdb629599u, 0x3c439041u,
    0xfe5163abu, 0xdebbc561u, 0xb7246e3au, 0x424dd2e0u, 0x06492eeau, 0x09d1921cu,
    0xfe1deb1cu, 0xb129a73eu, 0xe88235f5u, 0x2ebb4484u, 0xe99c7026u, 0xb45f7e41u,
    0x3991d639u, 0x835339f4u, 0x9c845f8bu, 0xbdf9283bu, 0x1ff897ffu, 0xde05980fu,
    0xef2f118bu, 0x5a0a6d1fu, 0x6d367ecfu, 0x27cb09b7u, 0x4f463f66u, 0x9e5fea2du,
    0x7527bac7u, 0xebe5f17bu, 0x3d0739f7u, 0x8a5292eau, 0x6bfb5fb1u, 0x1f8d5d08u,
    0x56033046u, 0xfc7b6babu, 0xf0cfbc20u, 0x9af4361du, 0xa9e39161u, 0x5ee61b08u);

// v << n for a 128-bit v (x the least significant word), 0 <= n < 128.
fn b2s_u128_shl(v: vec4<u32>, n: u32) -> vec4<u32> {
    let ws = n >> 5u;
    let bs = n & 31u;
    var r = vec4<u32>(0u);
    for (var i = 3i; i >= i32(ws); i--) {
        let src = u32(i) - ws;
        var w = v[src] << bs;
        if (bs != 0u && src > 0u) { w = w | (v[src - 1u] >> (32u - bs)); }
        r[i] = w;
    }
    return r;
}

// m 2^e for an integer m < 2^53, exactly (a normal result), with the sign `sign`.
fn b2s_scaled_u53(sign: u32, m: vec2<u32>, e: i32) -> vec2<u32> {
    if (b2s_u64_is_zero(m)) { return b2s_zero(sign); }
    let shift = b2s_u64_clz(m) - 11u;
    // (m 2^shift) 2^(e - shift), leading one at bit 52: biased exponent 1075 + e - shift.
    return b2s_pack(sign, u32(1074 + e - i32(shift)), b2s_u64_shl(m, shift));
}

// Payne and Hanek's reduction of a finite |x| >= 2^20: x (2/pi) = 4k + q + f with q in
// 0..3 and f in [-1/2, 1/2), returned as (f_hi, f_lo, (q, 0)): f to 2^-128 absolute (x's
// 53 bits times the 224 bits of 2/pi that reach the fraction's first 128 bits), so to
// 2^-66 relative: no double lies closer to a multiple of pi/2 than about 2^-62.
fn b2s_rem_pio2_large(ax: vec2<u32>) -> array<vec2<u32>, 3> {
    let u = b2s_sig_exp(ax);
    let s = bitcast<i32>(u.z) - 1075; // ax = sig 2^s, s >= -32
    // Words before j0 contribute multiples of 4 to x (2/pi).
    let j0 = select(0, (s - 2) / 32, s >= 2);
    let t = s - 32 * j0;
    // p = sig * (words j0..j0+6 of 2/pi): 9 words, least significant first; the binary
    // point of x (2/pi) lies 224 - t bits up. Later words add below 2^-138.
    var p: array<u32, 9>;
    for (var i = 0u; i < 7u; i++) {
        let w = B2S_TWO_OVER_PI[u32(j0) + 6u - i];
        var c = 0u;
        for (var j = 0u; j < 2u; j++) {
            let prod = b2_mul_hilo(u[j], w); // (high, low)
            let s1 = p[i + j] + prod.y;
            let s2 = s1 + c;
            c = prod.x + select(0u, 1u, s1 < prod.y) + select(0u, 1u, s2 < c);
            p[i + j] = s2;
        }
        p[i + 2u] = c;
    }
    // The 2 integer bits and 128 fraction bits: p >> (96 - t), 96 - t in 63..128.
    let sh = u32(96 - t);
    let ws = sh >> 5u;
    let bs = sh & 31u;
    var v: array<u32, 5>;
    for (var k = 0u; k < 5u; k++) {
        var w = p[k + ws] >> bs;
        if (bs != 0u && k + ws + 1u < 9u) { w = w | (p[k + ws + 1u] << (32u - bs)); }
        v[k] = w;
    }
    var q = v[4] & 3u;
    var f = vec4<u32>(v[0], v[1], v[2], v[3]);
    var sign = 0u;
    if ((f.w & 0x80000000u) != 0u) {
        // f >= 1/2: f - 1 (two's complement negation of the 128 bits), one more quadrant.
        f = ~f;
        var k = 0u;
        loop {
            f[k] = f[k] + 1u;
            if (f[k] != 0u || k == 3u) { break; }
            k++;
        }
        sign = 1u;
        q = q + 1u;
    }
    var lz = 0u;
    for (var k = 3i; k >= 0; k--) {
        if (f[k] != 0u) { lz = lz + countLeadingZeros(f[k]); break; }
        lz = lz + 32u;
    }
    if (lz >= 128u) {
        return array<vec2<u32>, 3>(b2s_zero(0u), b2s_zero(0u), vec2<u32>(q & 3u, 0u));
    }
    let g = b2s_u128_shl(f, lz); // leading one at bit 127
    // hi: bits 127..75, lo: bits 74..22 (f = g 2^(-128 - lz)).
    let hi = vec2<u32>((g.z >> 11u) | (g.w << 21u), g.w >> 11u);
    let lo = vec2<u32>((g.x >> 22u) | (g.y << 10u), (g.y >> 22u) | ((g.z & 0x7ffu) << 10u));
    let e = -i32(lz) - 128;
    return array<vec2<u32>, 3>(b2s_scaled_u53(sign, hi, e + 75),
                               b2s_scaled_u53(sign, lo, e + 22), vec2<u32>(q & 3u, 0u));
}

// sin (cosine = false) or cos of x, within 1 ulp: x = n pi/2 + y with |y| <= pi/4 by
// Cody and Waite's reduction (pi/2 in three 33-bit pieces and a tail, fdlibm's) below
// 2^20 and Payne and Hanek's above, then polynomials of y.
fn b2s_trig(x: vec2<u32>, shift: u32) -> vec2<u32> {
    if (b2s_ebits(x) == 0x7ffu) { return b2s_nan(); }
    let ax = b2s_abs(x);
    var pc = B2S_PC_TRIG_CW;
    var input = array<vec2<u32>, 3>(ax, b2s_from_u32(0u, shift), ax);
    if (b2s_ebits(ax) >= 1043u) {
        input = b2s_rem_pio2_large(ax);
        input[2] = b2s_from_u32(0u, input[2].x + shift);
        pc = B2S_PC_TRIG_PH;
    }
    let r = b2s_run(pc, input[0], input[1], input[2]);
    // sin and tan are odd, cos even.
    return select(r, b2s_neg(r), shift != 1u && b2s_sign(x) == 1u);
}

// The quadrant shift: cos x = sin(x + pi/2); 8 (the same quadrant) asks for tan.
fn b2s_sin(x: vec2<u32>) -> vec2<u32> { return b2s_trig(x, 0u); }
fn b2s_cos(x: vec2<u32>) -> vec2<u32> { return b2s_trig(x, 1u); }
fn b2s_tan(x: vec2<u32>) -> vec2<u32> { return b2s_trig(x, 8u); }

// ---- expm1, log1p, log10, sinh, cosh, tanh (C99's special values, -0 kept where odd)

fn b2s_expm1(x: vec2<u32>) -> vec2<u32> {
    if (b2s_isnan(x)) { return b2s_nan(); }
    if (b2s_lt(vec2<u32>(0xfefa39efu, 0x40862e42u), x)) { return b2s_inf(0u); }
    // Below -40, e^x < 2^-57 vanishes next to -1; below 2^-54, x^2/2 is below half an ulp.
    if (b2s_lt(x, vec2<u32>(0u, 0xc0440000u))) { return vec2<u32>(0u, 0xbff00000u); }
    if (b2s_ebits(x) < 0x3c9u) { return x; }
    return b2s_run(B2S_PC_EXPM1, x, x, x);
}

// log (LOG1P, LOG10) of x > 0, with log's special values.
fn b2s_log_program(pc: u32, x: vec2<u32>, extra: vec2<u32>) -> vec2<u32> {
    if (b2s_isnan(x)) { return b2s_nan(); }
    if (b2s_is_zero(x)) { return b2s_inf(1u); }
    if (b2s_sign(x) == 1u) { return b2s_nan(); }
    if (b2s_isinf(x)) { return x; }
    let mk = b2s_log_split(x);
    return b2s_run(pc, mk[0], mk[1], extra);
}

fn b2s_log10(x: vec2<u32>) -> vec2<u32> {
    return b2s_log_program(B2S_PC_LOG10, x, x);
}

fn b2s_log1p(x: vec2<u32>) -> vec2<u32> {
    if (b2s_ebits(x) < 0x3c9u) { return x; } // |x| < 2^-54: x, -0 and subnormals kept
    // 1 + x: -1 gives -inf, below -1 NaN, NaN and inf pass through.
    return b2s_log_program(B2S_PC_LOG1P, b2s_add(vec2<u32>(0u, 0x3ff00000u), x), x);
}

// sinh (0), cosh (1), tanh (2) of x.
fn b2s_hyperbolic(x: vec2<u32>, which: u32) -> vec2<u32> {
    if (b2s_isnan(x)) { return b2s_nan(); }
    let a = b2s_abs(x);
    let odd = which != 1u;
    // Below 2^-28 the x^2 terms are below half an ulp: sinh x = tanh x = x, cosh x = 1.
    if (b2s_ebits(a) < 0x3e3u) { return select(vec2<u32>(0u, 0x3ff00000u), x, odd); }
    var r: vec2<u32>;
    if (which == 2u && b2s_lt(vec2<u32>(0u, 0x40360000u), a)) {
        r = vec2<u32>(0u, 0x3ff00000u); // tanh beyond 22 rounds to 1
    } else if (which != 2u && b2s_lt(vec2<u32>(0x8fb9f87du, 0x408633ceu), a)) {
        r = b2s_inf(0u); // beyond ln(2 DBL_MAX)
    } else {
        r = b2s_run(select(select(B2S_PC_SINH, B2S_PC_COSH, which == 1u), B2S_PC_TANH,
                           which == 2u), a, a, a);
    }
    return select(r, b2s_neg(r), odd && b2s_sign(x) == 1u);
}

fn b2s_sinh(x: vec2<u32>) -> vec2<u32> { return b2s_hyperbolic(x, 0u); }
fn b2s_cosh(x: vec2<u32>) -> vec2<u32> { return b2s_hyperbolic(x, 1u); }
fn b2s_tanh(x: vec2<u32>) -> vec2<u32> { return b2s_hyperbolic(x, 2u); }
