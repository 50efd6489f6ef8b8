// Philox4x32-10 counter-based random numbers and Brian2's distributions.
// Mirrors src/rng.rs function by function (tests/rng.rs compares the two); see that
// module for the keying contract:
//   key     = seed as (lo, hi)
//   counter = (element, step_lo, (step_hi << 16) | draw, (kernel << 8) | site)
// The part above the "B2_PHILOX_F64" marker line uses only u32/i32/f32, needs no
// other library and compiles on adapters without f64; the part below it needs f64 and
// f64_math.wgsl (b2_log_f64, b2_log1p_f64, b2_exp_f64,
// b2_cos_f64), so a kernel without f64 may drop everything from the marker on.

const B2_PHILOX_M0: u32 = 0xD2511F53u;
const B2_PHILOX_M1: u32 = 0xCD9E8D57u;
const B2_PHILOX_W0: u32 = 0x9E3779B9u;
const B2_PHILOX_W1: u32 = 0xBB67AE85u;

// (high, low) words of the 64-bit product a * b, from 16-bit halves (no u64 needed).
fn b2_mul_hilo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    // Carries out of bits 16..31: at most 3 * 0xffff, no overflow.
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

// Philox4x32 with 10 rounds.
fn b2_philox(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var x = ctr;
    var k = key;
    for (var r = 0u; r < 10u; r = r + 1u) {
        if (r > 0u) {
            k = k + vec2<u32>(B2_PHILOX_W0, B2_PHILOX_W1);
        }
        let p0 = b2_mul_hilo(B2_PHILOX_M0, x.x);
        let p1 = b2_mul_hilo(B2_PHILOX_M1, x.z);
        x = vec4<u32>(p1.x ^ x.y ^ k.x, p1.y, p0.x ^ x.w ^ k.y, p0.y);
    }
    return x;
}

// The counter of one draw; step_hi is the high word of the i64 step (its low 16 bits count).
fn b2_counter(element: u32, step_lo: u32, step_hi: u32, draw: u32, kernel: u32, site: u32) -> vec4<u32> {
    return vec4<u32>(element, step_lo, (step_hi << 16u) | (draw & 0xffffu), (kernel << 8u) | (site & 0xffu));
}

// The same counter with another draw index.
fn b2_with_draw(ctr: vec4<u32>, draw: u32) -> vec4<u32> {
    return vec4<u32>(ctr.x, ctr.y, (ctr.z & 0xffff0000u) | (draw & 0xffffu), ctr.w);
}

// ---- f32 ----

// [0, 1) from the top 24 bits of w.
fn b2_u01_f32(w: u32) -> f32 {
    return f32(w >> 8u) * 5.9604645e-8f;
}

// The same bits mapped to (0, 1].
fn b2_u01_open0_f32(w: u32) -> f32 {
    return f32((w >> 8u) + 1u) * 5.9604645e-8f;
}

fn b2_uniform_f32(ctr: vec4<u32>, key: vec2<u32>) -> f32 {
    return b2_u01_f32(b2_philox(ctr, key).x);
}

// Box-Muller on draw 0: u1 from word 0 in (0, 1], u2 from word 2.
fn b2_normal_f32(ctr: vec4<u32>, key: vec2<u32>) -> f32 {
    let w = b2_philox(ctr, key);
    let u1 = b2_u01_open0_f32(w.x);
    let u2 = b2_u01_f32(w.z);
    return sqrt(-2.0f * log(u1)) * cos(6.2831855f * u2);
}

// log1p(x) - x without cancellation: for |x| <= 0.5 from the series of
// 2 atanh(s), s = x / (2 + x): -x^2 / (2 + x) + 2 s^3 (1/3 + s^2/5 + ... + s^16/19);
// builtin log elsewhere. (GPU f32 log is only good to ~2^-21 absolute near 1.)
fn b2_log1pmx_f32(x: f32) -> f32 {
    if (abs(x) > 0.5f) { return log(1.0f + x) - x; }
    let s = x / (2.0f + x);
    let s2 = s * s;
    let series = 0.33333334f + s2 * (0.2f + s2 * (0.14285715f + s2 * (0.11111111f + s2 * (0.09090909f
        + s2 * (0.07692308f + s2 * (0.06666667f + s2 * (0.05882353f + s2 * 0.05263158f)))))));
    return -(x * x) / (2.0f + x) + 2.0f * s * s2 * series;
}

fn b2_to_i32_clamped_f32(x: f32) -> i32 {
    return i32(clamp(x, -2147483648.0f, 2147483520.0f));
}

// Poisson by inversion (lam < 10): smallest k with u < P(X <= k).
fn b2_poisson_inv_f32(u: f32, lam: f32) -> i32 {
    var k: i32 = 0;
    var p = exp(-lam);
    var cdf = p;
    loop {
        if (!(u >= cdf) || k >= 256) { break; }
        k = k + 1;
        p = p * lam / f32(k);
        let next = cdf + p;
        if (next == cdf) { break; }
        cdf = next;
    }
    return k;
}

// ln P(X = k), X ~ Poisson(lam): directly below 10, else Stirling's series on
// k (log1p(t) - t), t = (lam - k) / k.
fn b2_log_poisson_pmf_f32(k: f32, lam: f32, loglam: f32) -> f32 {
    if (k < 10.0f) {
        var fact = 1.0f;
        var j = 2.0f;
        loop {
            if (!(j <= k)) { break; }
            fact = fact * j;
            j = j + 1.0f;
        }
        return k * loglam - lam - log(fact);
    }
    let t = (lam - k) / k;
    let r = 1.0f / k;
    let r2 = r * r;
    let corr = r * (0.083333336f - r2 * (0.0027777778f - r2 * (0.0007936508f - r2 * (0.0005952381f - r2 * 0.0008417508f))));
    return k * b2_log1pmx_f32(t) - 0.5f * log(6.2831855f * k) - corr;
}

// Hormann's PTRS for lam >= 10; iteration i uses draw i (U from word 0, V from word 2).
fn b2_poisson_ptrs_f32(ctr: vec4<u32>, key: vec2<u32>, lam: f32) -> i32 {
    let slam = sqrt(lam);
    let loglam = log(lam);
    let b = 0.931f + 2.53f * slam;
    let a = -0.059f + 0.02483f * b;
    let log_inv_alpha = log(1.1239f + 1.1328f / (b - 3.4f));
    let vr = 0.9277f - 3.6224f / (b - 2.0f);
    let li = floor(lam);
    let lf = lam - li;
    for (var draw = 1u; draw <= 64u; draw = draw + 1u) {
        let w = b2_philox(b2_with_draw(ctr, draw), key);
        let u = b2_u01_f32(w.x) - 0.5f;
        let v = b2_u01_open0_f32(w.z);
        let us = 0.5f - abs(u);
        let kf = li + floor((2.0f * a / us + b) * u + lf + 0.43f);
        if (us >= 0.07f && v <= vr) {
            return b2_to_i32_clamped_f32(kf);
        }
        if (kf < 0.0f || (us < 0.013f && v > us)) {
            continue;
        }
        let lhs = log(v) + log_inv_alpha - log(a / (us * us) + b);
        if (lhs <= b2_log_poisson_pmf_f32(kf, lam, loglam)) {
            return b2_to_i32_clamped_f32(kf);
        }
    }
    return b2_to_i32_clamped_f32(floor(lam + 0.5f));
}

fn b2_poisson_f32(ctr: vec4<u32>, key: vec2<u32>, lam: f32) -> i32 {
    if (!(lam > 0.0f)) { return 0; }
    if (lam < 10.0f) { return b2_poisson_inv_f32(b2_uniform_f32(ctr, key), lam); }
    if (lam > 3.4028235e38f) { return 2147483647; }
    return b2_poisson_ptrs_f32(ctr, key, lam);
}

// Brian2's BinomialFunction(n, p): normal approximation (rounded, clamped to [0, n])
// when n p > 5 and n (1 - p) > 5, else numpy's inversion; restart r uses draw r.
fn b2_binomial_f32(ctr: vec4<u32>, key: vec2<u32>, n: i32, p: f32) -> i32 {
    if (n <= 0 || !(p > 0.0f)) { return 0; }
    if (p >= 1.0f) { return n; }
    let nf = f32(n);
    if (nf * p > 5.0f && nf * (1.0f - p) > 5.0f) {
        let x = nf * p + sqrt(nf * p * (1.0f - p)) * b2_normal_f32(ctr, key);
        return i32(clamp(floor(x + 0.5f), 0.0f, nf));
    }
    return b2_binomial_inv_f32(ctr, key, n, p);
}

fn b2_binomial_inv_f32(ctr: vec4<u32>, key: vec2<u32>, n: i32, p: f32) -> i32 {
    let nf = f32(n);
    let reverse = p > 0.5f;
    let pp = select(p, 1.0f - p, reverse);
    let q = 1.0f - pp;
    let qn = exp(nf * (b2_log1pmx_f32(-pp) - pp));
    let bound = min(nf, nf * pp + 10.0f * sqrt(nf * pp * q + 1.0f));
    var x: i32 = 0;
    var px = qn;
    var draw = 0u;
    var u = b2_u01_f32(b2_philox(ctr, key).x);
    loop {
        if (!(u > px)) { break; }
        x = x + 1;
        if (f32(x) > bound) {
            draw = draw + 1u;
            x = 0;
            if (draw >= 16u) { break; }
            px = qn;
            u = b2_u01_f32(b2_philox(b2_with_draw(ctr, draw), key).x);
        } else {
            u = u - px;
            px = ((nf - f32(x) + 1.0f) * pp * px) / (f32(x) * q);
        }
    }
    return select(x, n - x, reverse);
}

// ln k! - ((k + 1/2) ln(k + 1) - (k + 1) + ln(2 pi) / 2) for BTRD (src/rng.rs:
// STIRLING_TAIL): a table below 10, three terms of Stirling's series from there on.
fn b2_stirling_tail_f32(k: f32) -> f32 {
    if (k < 10.0f) {
        var t = array<f32, 10>(0.08106146679532733f, 0.04134069595540946f,
            0.027677925684997717f, 0.02079067210376584f, 0.016644691189820815f,
            0.013876128823072431f, 0.01189670994589287f, 0.010411265261973224f,
            0.009255462182709007f, 0.008330563433359028f);
        return t[u32(k)];
    }
    let k1 = k + 1.0f;
    let k2 = k1 * k1;
    return (1.0f / 12.0f - (1.0f / 360.0f - 1.0f / 1260.0f / k2) / k2) / k1;
}

// Hörmann's BTRD for n p >= 10, p <= 1/2, step by step as src/rng.rs's btrd!;
// iteration i uses draw i (words 0 and 2).
fn b2_btrd_f32(ctr: vec4<u32>, key: vec2<u32>, n: i32, p: f32) -> i32 {
    let nf = f32(n);
    let q = 1.0f - p;
    let npq = nf * p * q;
    let spq = sqrt(npq);
    let b = 1.15f + 2.53f * spq;
    let a = -0.0873f + 0.0248f * b + 0.01f * p;
    let c = nf * p + 0.5f;
    let alpha = (2.83f + 5.1f / b) * spq;
    let vr = 0.92f - 4.2f / b;
    let urvr = 0.86f * vr;
    let m = floor((nf + 1.0f) * p);
    let r = p / q;
    let nr = (nf + 1.0f) * r;
    for (var draw = 0u; draw < 64u; draw++) {
        let w4 = b2_philox(b2_with_draw(ctr, draw), key);
        var v = b2_u01_f32(w4.x);
        let w = b2_u01_f32(w4.z);
        if (v <= urvr) {
            let u = v / vr - 0.43f;
            return i32(floor((2.0f * a / (0.5f - abs(u)) + b) * u + c));
        }
        var u: f32;
        if (v >= vr) {
            u = w - 0.5f;
        } else {
            let u0 = v / vr - 0.93f;
            v = w * vr;
            u = select(-0.5f, 0.5f, u0 >= 0.0f) - u0;
        }
        let us = 0.5f - abs(u);
        let k = floor((2.0f * a / us + b) * u + c);
        if (!(k >= 0.0f && k <= nf)) { continue; }
        v = v * alpha / (a / (us * us) + b);
        let km = abs(k - m);
        if (km <= 15.0f) {
            var f = 1.0f;
            var i = min(m, k) + 1.0f;
            loop {
                if (i > max(m, k)) { break; }
                let ratio = nr / i - r;
                if (m < k) { f = f * ratio; } else { v = v * ratio; }
                i = i + 1.0f;
            }
            if (v <= f) { return i32(k); }
            continue;
        }
        let lv = log(v);
        let rho = (km / npq) * (((km / 3.0f + 0.625f) * km + 1.0f / 6.0f) / npq + 0.5f);
        let t = -km * km / (2.0f * npq);
        if (lv < t - rho) { return i32(k); }
        if (lv > t + rho) { continue; }
        let nm = nf - m + 1.0f;
        let h = (m + 0.5f) * log((m + 1.0f) / (r * nm)) + b2_stirling_tail_f32(m)
            + b2_stirling_tail_f32(nf - m);
        let nk = nf - k + 1.0f;
        let bound = h + (nf + 1.0f) * log(nm / nk) + (k + 0.5f) * log(nk * r / (k + 1.0f))
            - b2_stirling_tail_f32(k) - b2_stirling_tail_f32(nf - k);
        if (lv <= bound) { return i32(k); }
    }
    return i32(m);
}

// Brian2's BinomialFunction(n, p, approximate=False): an exact count (inversion below
// n min(p, 1 - p) = 10, BTRD from there on).
fn b2_binomial_exact_f32(ctr: vec4<u32>, key: vec2<u32>, n: i32, p: f32) -> i32 {
    if (n <= 0 || !(p > 0.0f)) { return 0; }
    if (p >= 1.0f) { return n; }
    let reverse = p > 0.5f;
    let pp = select(p, 1.0f - p, reverse);
    if (f32(n) * pp < 10.0f) { return b2_binomial_inv_f32(ctr, key, n, p); }
    let k = b2_btrd_f32(ctr, key, n, pp);
    return select(k, n - k, reverse);
}

// ---- B2_PHILOX_F64: everything below needs f64 and f64_math.wgsl ----

// [0, 1) from 53 bits: 27 of hi, 26 of lo.
fn b2_u01_f64(hi: u32, lo: u32) -> f64 {
    return (f64(hi >> 5u) * 67108864.0lf + f64(lo >> 6u)) * 1.1102230246251565e-16lf;
}

// The same bits mapped to (0, 1].
fn b2_u01_open0_f64(hi: u32, lo: u32) -> f64 {
    return (f64(hi >> 5u) * 67108864.0lf + f64(lo >> 6u) + 1.0lf) * 1.1102230246251565e-16lf;
}

fn b2_uniform_f64(ctr: vec4<u32>, key: vec2<u32>) -> f64 {
    let w = b2_philox(ctr, key);
    return b2_u01_f64(w.x, w.y);
}

// Box-Muller on draw 0: u1 from words 0, 1 in (0, 1], u2 from words 2, 3.
fn b2_normal_f64(ctr: vec4<u32>, key: vec2<u32>) -> f64 {
    let w = b2_philox(ctr, key);
    let u1 = b2_u01_open0_f64(w.x, w.y);
    let u2 = b2_u01_f64(w.z, w.w);
    return sqrt(-2.0lf * b2_log_f64(u1)) * b2_cos_f64(6.283185307179586lf * u2);
}

fn b2_to_i32_clamped_f64(x: f64) -> i32 {
    return i32(clamp(x, -2147483648.0lf, 2147483647.0lf));
}

fn b2_poisson_inv_f64(u: f64, lam: f64) -> i32 {
    var k: i32 = 0;
    var p = b2_exp_f64(-lam);
    var cdf = p;
    loop {
        if (!(u >= cdf) || k >= 256) { break; }
        k = k + 1;
        p = p * lam / f64(k);
        let next = cdf + p;
        if (next == cdf) { break; }
        cdf = next;
    }
    return k;
}

fn b2_log_poisson_pmf_f64(k: f64, lam: f64, loglam: f64) -> f64 {
    if (k < 10.0lf) {
        var fact = 1.0lf;
        var j = 2.0lf;
        loop {
            if (!(j <= k)) { break; }
            fact = fact * j;
            j = j + 1.0lf;
        }
        return k * loglam - lam - b2_log_f64(fact);
    }
    let t = (lam - k) / k;
    let r = 1.0lf / k;
    let r2 = r * r;
    let corr = r * (0.08333333333333333lf - r2 * (0.002777777777777778lf - r2 * (0.0007936507936507937lf - r2 * (0.0005952380952380953lf - r2 * 0.0008417508417508417lf))));
    return k * (b2_log1p_f64(t) - t) - 0.5lf * b2_log_f64(6.283185307179586lf * k) - corr;
}

fn b2_poisson_ptrs_f64(ctr: vec4<u32>, key: vec2<u32>, lam: f64) -> i32 {
    let slam = sqrt(lam);
    let loglam = b2_log_f64(lam);
    let b = 0.931lf + 2.53lf * slam;
    let a = -0.059lf + 0.02483lf * b;
    let log_inv_alpha = b2_log_f64(1.1239lf + 1.1328lf / (b - 3.4lf));
    let vr = 0.9277lf - 3.6224lf / (b - 2.0lf);
    let li = floor(lam);
    let lf = lam - li;
    for (var draw = 1u; draw <= 64u; draw = draw + 1u) {
        let w = b2_philox(b2_with_draw(ctr, draw), key);
        let u = b2_u01_f64(w.x, w.y) - 0.5lf;
        let v = b2_u01_open0_f64(w.z, w.w);
        let us = 0.5lf - abs(u);
        let kf = li + floor((2.0lf * a / us + b) * u + lf + 0.43lf);
        if (us >= 0.07lf && v <= vr) {
            return b2_to_i32_clamped_f64(kf);
        }
        if (kf < 0.0lf || (us < 0.013lf && v > us)) {
            continue;
        }
        let lhs = b2_log_f64(v) + log_inv_alpha - b2_log_f64(a / (us * us) + b);
        if (lhs <= b2_log_poisson_pmf_f64(kf, lam, loglam)) {
            return b2_to_i32_clamped_f64(kf);
        }
    }
    return b2_to_i32_clamped_f64(floor(lam + 0.5lf));
}

// Poisson(lam): inversion below 10, PTRS from 10 on; 0 for lam <= 0 or NaN.
fn b2_poisson(ctr: vec4<u32>, key: vec2<u32>, lam: f64) -> i32 {
    if (!(lam > 0.0lf)) { return 0; }
    if (lam < 10.0lf) { return b2_poisson_inv_f64(b2_uniform_f64(ctr, key), lam); }
    if (lam > 1.7976931348623157e308lf) { return 2147483647; }
    return b2_poisson_ptrs_f64(ctr, key, lam);
}

fn b2_binomial_inv_f64(ctr: vec4<u32>, key: vec2<u32>, n: i32, p: f64) -> i32 {
    let reverse = p > 0.5lf;
    let pp = select(p, 1.0lf - p, reverse);
    let q = 1.0lf - pp;
    let nf = f64(n);
    let qn = b2_exp_f64(nf * b2_log1p_f64(-pp));
    let bound = min(nf, nf * pp + 10.0lf * sqrt(nf * pp * q + 1.0lf));
    var x: i32 = 0;
    var px = qn;
    var draw = 0u;
    var u = b2_uniform_f64(ctr, key);
    loop {
        if (!(u > px)) { break; }
        x = x + 1;
        if (f64(x) > bound) {
            draw = draw + 1u;
            x = 0;
            if (draw >= 16u) { break; }
            px = qn;
            u = b2_uniform_f64(b2_with_draw(ctr, draw), key);
        } else {
            u = u - px;
            px = ((nf - f64(x) + 1.0lf) * pp * px) / (f64(x) * q);
        }
    }
    return select(x, n - x, reverse);
}

// Brian2's BinomialFunction(n, p) value: the unrounded normal approximation when
// n p > 5 and n (1 - p) > 5, else an exact binomial count.
fn b2_binomial_value(ctr: vec4<u32>, key: vec2<u32>, n: i32, p: f64) -> f64 {
    if (n <= 0 || !(p > 0.0lf)) { return 0.0lf; }
    if (p >= 1.0lf) { return f64(n); }
    let nf = f64(n);
    if (nf * p > 5.0lf && nf * (1.0lf - p) > 5.0lf) {
        return nf * p + sqrt(nf * p * (1.0lf - p)) * b2_normal_f64(ctr, key);
    }
    return f64(b2_binomial_inv_f64(ctr, key, n, p));
}

// Binomial count: b2_binomial_value rounded to nearest and clamped to [0, n].
fn b2_binomial(ctr: vec4<u32>, key: vec2<u32>, n: i32, p: f64) -> i32 {
    let x = b2_binomial_value(ctr, key, n, p);
    return i32(clamp(floor(x + 0.5lf), 0.0lf, f64(max(n, 0))));
}

fn b2_stirling_tail_f64(k: f64) -> f64 {
    if (k < 10.0lf) {
        var t = array<f64, 10>(0.08106146679532733lf, 0.04134069595540946lf,
            0.027677925684997717lf, 0.02079067210376584lf, 0.016644691189820815lf,
            0.013876128823072431lf, 0.01189670994589287lf, 0.010411265261973224lf,
            0.009255462182709007lf, 0.008330563433359028lf);
        return t[u32(k)];
    }
    let k1 = k + 1.0lf;
    let k2 = k1 * k1;
    return (1.0lf / 12.0lf - (1.0lf / 360.0lf - 1.0lf / 1260.0lf / k2) / k2) / k1;
}

// b2_btrd_f32 in f64 (words 0, 1 and 2, 3 of draw i).
fn b2_btrd_f64(ctr: vec4<u32>, key: vec2<u32>, n: i32, p: f64) -> i32 {
    let nf = f64(n);
    let q = 1.0lf - p;
    let npq = nf * p * q;
    let spq = sqrt(npq);
    let b = 1.15lf + 2.53lf * spq;
    let a = -0.0873lf + 0.0248lf * b + 0.01lf * p;
    let c = nf * p + 0.5lf;
    let alpha = (2.83lf + 5.1lf / b) * spq;
    let vr = 0.92lf - 4.2lf / b;
    let urvr = 0.86lf * vr;
    let m = floor((nf + 1.0lf) * p);
    let r = p / q;
    let nr = (nf + 1.0lf) * r;
    for (var draw = 0u; draw < 64u; draw++) {
        let w4 = b2_philox(b2_with_draw(ctr, draw), key);
        var v = b2_u01_f64(w4.x, w4.y);
        let w = b2_u01_f64(w4.z, w4.w);
        if (v <= urvr) {
            let u = v / vr - 0.43lf;
            return i32(floor((2.0lf * a / (0.5lf - abs(u)) + b) * u + c));
        }
        var u: f64;
        if (v >= vr) {
            u = w - 0.5lf;
        } else {
            let u0 = v / vr - 0.93lf;
            v = w * vr;
            u = select(-0.5lf, 0.5lf, u0 >= 0.0lf) - u0;
        }
        let us = 0.5lf - abs(u);
        let k = floor((2.0lf * a / us + b) * u + c);
        if (!(k >= 0.0lf && k <= nf)) { continue; }
        v = v * alpha / (a / (us * us) + b);
        let km = abs(k - m);
        if (km <= 15.0lf) {
            var f = 1.0lf;
            var i = min(m, k) + 1.0lf;
            loop {
                if (i > max(m, k)) { break; }
                let ratio = nr / i - r;
                if (m < k) { f = f * ratio; } else { v = v * ratio; }
                i = i + 1.0lf;
            }
            if (v <= f) { return i32(k); }
            continue;
        }
        let lv = b2_log_f64(v);
        let rho = (km / npq) * (((km / 3.0lf + 0.625lf) * km + 1.0lf / 6.0lf) / npq + 0.5lf);
        let t = -km * km / (2.0lf * npq);
        if (lv < t - rho) { return i32(k); }
        if (lv > t + rho) { continue; }
        let nm = nf - m + 1.0lf;
        let h = (m + 0.5lf) * b2_log_f64((m + 1.0lf) / (r * nm)) + b2_stirling_tail_f64(m)
            + b2_stirling_tail_f64(nf - m);
        let nk = nf - k + 1.0lf;
        let bound = h + (nf + 1.0lf) * b2_log_f64(nm / nk)
            + (k + 0.5lf) * b2_log_f64(nk * r / (k + 1.0lf))
            - b2_stirling_tail_f64(k) - b2_stirling_tail_f64(nf - k);
        if (lv <= bound) { return i32(k); }
    }
    return i32(m);
}

// b2_binomial_exact_f32 in f64.
fn b2_binomial_exact_f64(ctr: vec4<u32>, key: vec2<u32>, n: i32, p: f64) -> i32 {
    if (n <= 0 || !(p > 0.0lf)) { return 0; }
    if (p >= 1.0lf) { return n; }
    let reverse = p > 0.5lf;
    let pp = select(p, 1.0lf - p, reverse);
    if (f64(n) * pp < 10.0lf) { return b2_binomial_inv_f64(ctr, key, n, p); }
    let k = b2_btrd_f64(ctr, key, n, pp);
    return select(k, n - k, reverse);
}
