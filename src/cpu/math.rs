//! The interpreter's math: block versions of the IR's scalar semantics (defined in
//! `ir::scalar`, re-exported here) and vectorisable f64 exp/ln/cos.

pub use crate::ir::scalar::*;

/// [`timestep`] over a block: the divisions in one vectorised pass (their quotients held
/// as bits in `d`), the conversions in a second, so the division is not serialised with
/// the scalar float-to-integer conversion. Same values as [`timestep`] element by element.
pub fn timestep_block(d: &mut [i64], t: &[f64], dt: Option<f64>, dts: &[f64]) {
    match dt {
        Some(dt) => {
            let (off, inv) = (1e-3 * dt, dt);
            for (o, &x) in d.iter_mut().zip(t) {
                *o = ((x + off) / inv).to_bits() as i64;
            }
        }
        None => {
            for ((o, &x), &dt) in d.iter_mut().zip(t).zip(dts) {
                *o = ((x + 1e-3 * dt) / dt).to_bits() as i64;
            }
        }
    }
    for o in d.iter_mut() {
        let x = f64::from_bits(*o as u64);
        let inside = x.abs() < 9.223_372_036_854_776e18;
        let y = if inside { x } else { 0.0 };
        // SAFETY: `y` is finite and |y| < 2^63, so it truncates to a representable i64.
        let v: i64 = unsafe { y.to_int_unchecked() };
        *o = if inside { v } else { i64::MIN };
    }
}

/// f32 integer powers stay with `powf`: rounding an f64 power to f32 could round twice.
pub fn powi_block_f32(d: &mut [f32], x: &[f32], n: i32) {
    for (o, &b) in d.iter_mut().zip(x) {
        *o = b.powf(n as f32);
    }
}

/// Largest exponent [`powi_block`] takes; above it `powf` is as fast.
pub const POWI_MAX: i32 = 8;

/// `d[k] = x[k]^n` for an integer `2 <= n <= POWI_MAX`, as `powf` gives it, but without a
/// libm call per element: the product is carried in double-double (Dekker's exact products,
/// no fma needed), so `hi + lo` is the correctly rounded power except within ~2^-100 of a
/// tie, where glibc's pow (0.52 ulp) may itself be off by one ulp. Results outside
/// [1e-290, 1e290] (zeros, overflow, subnormal range, NaN) are redone with `powf`.
pub fn powi_block(d: &mut [f64], x: &[f64], n: i32) {
    debug_assert!((2..=POWI_MAX).contains(&n));
    #[inline(always)]
    fn split(a: f64) -> (f64, f64) {
        let c = 134_217_729.0 * a; // 2^27 + 1
        let hi = c - (c - a);
        (hi, a - hi)
    }
    #[inline(always)]
    fn mul_dd_d(h: f64, l: f64, b: f64, bh: f64, bl: f64) -> (f64, f64) {
        let p = h * b;
        let (hh, hl) = split(h);
        let e = ((hh * bh - p) + hh * bl + hl * bh) + hl * bl;
        let e = e + l * b;
        let s = p + e;
        (s, e - (s - p))
    }
    // A constant trip count, so that the element loop vectorises.
    #[inline(always)]
    fn run<const N: i32>(d: &mut [f64], x: &[f64]) {
        for (o, &b) in d.iter_mut().zip(x) {
            let (bh, bl) = split(b);
            let (mut h, mut l) = (b, 0.0);
            for _ in 1..N {
                (h, l) = mul_dd_d(h, l, b, bh, bl);
            }
            *o = h + l;
        }
    }
    match n {
        2 => run::<2>(d, x),
        3 => run::<3>(d, x),
        4 => run::<4>(d, x),
        5 => run::<5>(d, x),
        6 => run::<6>(d, x),
        7 => run::<7>(d, x),
        _ => run::<8>(d, x),
    }
    for (o, &b) in d.iter_mut().zip(x) {
        let m = o.abs();
        if !(1e-290..=1e290).contains(&m) {
            *o = b.powf(n as f64);
        }
    }
}

/// `e^x` in f64, written without branches or calls so that block loops over it vectorise
/// (glibc's `exp` is a call per element). Table-driven: x = (64 m + j) ln2/64 + r with
/// |r| <= ln2/128, e^x = 2^m (T_j + T_j p(r)) with T_j = 2^(j/64) in double-double and a
/// degree-6 polynomial. About 0.51 ulp: within 1 ulp of glibc everywhere, and the same
/// double in all but about 1% of arguments (both are within 0.502-0.51 ulp of the exact
/// value and may round a near-tie differently). Results in the subnormal range (x < -708)
/// can round twice. inf, -inf, NaN, overflow and underflow behave as in IEEE `exp`.
#[inline(always)]
pub fn exp_f64(x: f64) -> f64 {
    use super::math_consts::{C_HI, C_LO, INV_C, TABLE};
    const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: adding it rounds to an integer
    // NaN passes both clamps (the comparisons are false) and stays NaN below.
    let xc = if x > 710.0 { 710.0 } else { x };
    let xc = if xc < -746.0 { -746.0 } else { xc };
    let t = xc * INV_C + SHIFT;
    let kf = t - SHIFT;
    let k = t.to_bits() as i64 - SHIFT.to_bits() as i64;
    // Exact: k * C_HI has at most 53 bits and x is within a factor 2 of it.
    let r = (xc - kf * C_HI) - kf * C_LO;
    let (th, tl) = TABLE[(k & 63) as usize];
    let p = r + r
        * r
        * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0)))));
    let y = th + (th * p + tl);
    // 2^m in two factors, each a normal double for every m reached (-1077..=1024); the
    // first product is exact, the second rounds once (into the subnormals if it must).
    let m = k >> 6;
    let m1 = m >> 1;
    let s1 = f64::from_bits(((m1 + 1023) as u64) << 52);
    let s2 = f64::from_bits(((m - m1 + 1023) as u64) << 52);
    y * s1 * s2
}

/// Natural logarithm of a positive normal finite double, without branches or calls
/// (other arguments: see [`ln_block`]). x = 2^e f with f in [sqrt(2)/2, sqrt(2)); with
/// s = (f-1)/(f+1), ln f = (f-1) - (f-1)²/2 + s ((f-1)²/2 + R(s²)) where R is the series
/// of 2 atanh(s) / s - 2 past its first term (to s^20), and e ln 2 in two parts. Within
/// 1 ulp of glibc's log, and the same double for about 96% of arguments.
#[inline(always)]
pub fn ln_normal_f64(x: f64) -> f64 {
    use super::math_consts::{LN2_HI, LN2_LO};
    let b = x.to_bits();
    let f = f64::from_bits((b & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = f > std::f64::consts::SQRT_2;
    let f = if big { f * 0.5 } else { f };
    let e = ((b >> 52) as i64 - 1023 + big as i64) as f64;
    let f1 = f - 1.0; // exact (Sterbenz)
    let s = f1 / (2.0 + f1);
    let z = s * s;
    let r = z
        * (2.0 / 3.0
            + z * (2.0 / 5.0
                + z * (2.0 / 7.0
                    + z * (2.0 / 9.0
                        + z * (2.0 / 11.0
                            + z * (2.0 / 13.0
                                + z * (2.0 / 15.0
                                    + z * (2.0 / 17.0 + z * (2.0 / 19.0 + z * (2.0 / 21.0))))))))));
    let hfsq = 0.5 * f1 * f1;
    e * LN2_HI - ((hfsq - (s * (hfsq + r) + e * LN2_LO)) - f1)
}

/// cos(x) for |x| <= 2^19 (other arguments: see [`cos_block`]), without branches or
/// calls: x = q pi/2 + r with pi/2 in three parts (exact products for these q), |r| <=
/// pi/4, then the Taylor series of sin r or cos r (to r^17 and r^16) by quadrant. Within
/// 1 ulp of glibc's cos (absolute 1 ulp of 1 near its zeros).
#[inline(always)]
pub fn cos_reduced_f64(x: f64) -> f64 {
    use super::math_consts::{PIO2_1, PIO2_2, PIO2_3};
    const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    let t = x * std::f64::consts::FRAC_2_PI + SHIFT;
    let q = t - SHIFT;
    let quadrant = t.to_bits() & 3;
    // r = x - q pi/2 as r + rr (double-double): x - q PIO2_1 is exact (Sterbenz), and the
    // rounding error of subtracting q PIO2_2 is recovered exactly.
    let y = x - q * PIO2_1;
    let r1 = y - q * PIO2_2;
    let tail = ((y - r1) - q * PIO2_2) - q * PIO2_3;
    let r = r1 + tail;
    let rr = tail - (r - r1);
    let z = r * r;
    let hz = 0.5 * z;
    // sin(r + rr) ~ sin r + rr (1 - r²/2) and cos(r + rr) ~ cos r - r rr.
    let ps = -1.0 / 6.0
        + z * (1.0 / 120.0
            + z * (-1.0 / 5040.0
                + z * (1.0 / 362_880.0
                    + z * (-1.0 / 39_916_800.0
                        + z * (1.0 / 6_227_020_800.0
                            + z * (-1.0 / 1_307_674_368_000.0
                                + z * (1.0 / 355_687_428_096_000.0)))))));
    let sin_r = r + (rr * (1.0 - hz) + r * z * ps);
    let pc = 1.0 / 24.0
        + z * (-1.0 / 720.0
            + z * (1.0 / 40_320.0
                + z * (-1.0 / 3_628_800.0
                    + z * (1.0 / 479_001_600.0
                        + z * (-1.0 / 87_178_291_200.0 + z * (1.0 / 20_922_789_888_000.0))))));
    let w = 1.0 - hz;
    let cos_r = w + (((1.0 - w) - hz) + (z * z * pc - r * rr));
    let v = if quadrant & 1 == 0 { cos_r } else { sin_r };
    if quadrant == 1 || quadrant == 2 {
        -v
    } else {
        v
    }
}

crate::simd::multiversion! {
    /// `d[k] = ln(x[k])`: [`ln_normal_f64`] where it applies, then glibc's `ln` for zeros,
    /// negatives, subnormals, inf and NaN.
    pub fn ln_block / ln_block_portable(d: &mut [f64], x: &[f64]) {
        for (o, &v) in d.iter_mut().zip(x) {
            *o = ln_normal_f64(v);
        }
        for (o, &v) in d.iter_mut().zip(x) {
            if !(f64::MIN_POSITIVE..=f64::MAX).contains(&v) {
                *o = v.ln();
            }
        }
    }
}

crate::simd::multiversion! {
    /// `d[k] = cos(x[k])`: [`cos_reduced_f64`] for |x| <= 2^19, glibc's `cos` beyond.
    pub fn cos_block / cos_block_portable(d: &mut [f64], x: &[f64]) {
        for (o, &v) in d.iter_mut().zip(x) {
            *o = cos_reduced_f64(v);
        }
        for (o, &v) in d.iter_mut().zip(x) {
            if v.abs() > 524_288.0 || v.is_nan() {
                *o = v.cos();
            }
        }
    }
}

crate::simd::multiversion! {
    /// `d[k] = exp(x[k])` with [`exp_f64`].
    pub fn exp_block / exp_block_portable(d: &mut [f64], x: &[f64]) {
        for (o, &v) in d.iter_mut().zip(x) {
            *o = exp_f64(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestep_block_matches_timestep() {
        let mut ts: Vec<f64> = vec![
            0.0,
            -0.0,
            1e-4,
            -1e-4,
            0.05,
            4.99e-3,
            5e-3,
            1e300,
            -1e300,
            9.3e14,
            -9.3e14,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            1e-320,
        ];
        ts.extend((0..1000).map(|k| (k as f64 - 500.0) * 1.37e-5));
        for dt in [1e-4, 0.1e-3, 3e-5, 1.0, 1e-300, f64::NAN] {
            let mut got = vec![0i64; ts.len()];
            timestep_block(&mut got, &ts, Some(dt), &[]);
            let want: Vec<i64> = ts.iter().map(|&t| timestep(t, dt)).collect();
            assert_eq!(got, want, "dt = {dt}");
            let dts = vec![dt; ts.len()];
            timestep_block(&mut got, &ts, None, &dts);
            assert_eq!(got, want, "per-element dt = {dt}");
        }
    }

    #[test]
    fn integer_powers_match_libm() {
        let mut xs: Vec<f64> = (0..20_000)
            .map(|i| {
                let u = ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64
                    / (1u64 << 53) as f64;
                (u - 0.5) * 10f64.powi((i % 40) - 20)
            })
            .collect();
        xs.extend([
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e300,
            -1e-300,
            1e-160,
            2.5e-40,
            1.0,
            -1.0,
        ]);
        let mut d = vec![0.0; xs.len()];
        for n in 2..=POWI_MAX {
            powi_block(&mut d, &xs, n);
            let mut off_by_one = 0;
            for (&x, &got) in xs.iter().zip(&d) {
                let want = x.powf(n as f64);
                if want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()) {
                    continue;
                }
                let ulps = (want.to_bits() as i64 - got.to_bits() as i64).abs();
                assert!(
                    ulps <= 1 && want.is_finite() && want != 0.0,
                    "{x:e}^{n}: {got:e} vs {want:e}"
                );
                off_by_one += 1;
            }
            // glibc's pow is within 0.52 ulp, so it may round the other way: rare (0.1%
            // at n = 6 here; checked with mpmath, the double-double result was the closer
            // one in every such case).
            assert!(off_by_one * 100 < xs.len(), "n = {n}: {off_by_one} differ");
        }
    }

    #[test]
    fn exp_within_one_ulp_of_libm() {
        // A spread of magnitudes over the whole domain, ties of the table, the ends of
        // the normal and subnormal ranges, and the special values.
        let mut xs: Vec<f64> = (0..400_000u64)
            .map(|i| {
                let u = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
                match i % 4 {
                    0 => (u - 0.5) * 1460.0,
                    1 => (u - 0.5) * 2.0,
                    2 => (u - 0.5) * 1e-6,
                    _ => (u - 0.5) * 60.0,
                }
            })
            .collect();
        for j in -2000..2000 {
            xs.push(j as f64 * std::f64::consts::LN_2 / 64.0);
        }
        xs.extend([
            0.0,
            -0.0,
            1.0,
            -1.0,
            709.78,
            709.782712893384,
            709.7827128933841,
            710.0,
            800.0,
            -708.3,
            -708.4,
            -720.0,
            -740.0,
            -744.4,
            -745.13,
            -745.14,
            -746.0,
            -1000.0,
            1e-300,
            -1e-300,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ]);
        let mut d = vec![0.0; xs.len()];
        exp_block(&mut d, &xs);
        // The AVX2 copy (where the CPU has it) and the baseline copy agree bit for bit.
        let mut portable = vec![0.0; xs.len()];
        exp_block_portable(&mut portable, &xs);
        for ((&x, a), b) in xs.iter().zip(&d).zip(&portable) {
            assert!(
                a.to_bits() == b.to_bits(),
                "exp({x:e}): {a:e} vs baseline {b:e}"
            );
        }
        let mut differ = 0;
        for (&x, &got) in xs.iter().zip(&d) {
            let want = x.exp();
            if want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()) {
                continue;
            }
            let ulps = (want.to_bits() as i64 - got.to_bits() as i64).abs();
            assert!(
                ulps <= 1 && want.is_finite(),
                "exp({x:e}) = {got:e}, libm {want:e}"
            );
            differ += 1;
        }
        assert!(
            differ * 50 < xs.len(),
            "{differ} of {} differ from libm",
            xs.len()
        );
        println!("exp: {differ} of {} differ from libm by one ulp", xs.len());
    }

    #[test]
    fn ln_and_cos_within_one_ulp_of_libm() {
        let us: Vec<f64> = (0..300_000u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64)
            .collect();
        // ln: uniforms (Box-Muller's domain), a spread of magnitudes, ends and specials.
        let mut xs: Vec<f64> = us.iter().map(|&u| u + 1.0 / (1u64 << 53) as f64).collect();
        xs.extend(
            us.iter()
                .enumerate()
                .map(|(i, &u)| (u + 0.5) * 10f64.powi((i % 600) as i32 - 300)),
        );
        xs.extend([
            1.0,
            2.0,
            0.5,
            std::f64::consts::SQRT_2,
            1.0 + f64::EPSILON,
            1.0 - f64::EPSILON / 2.0,
            f64::MIN_POSITIVE,
            1e-310,
            5e-324,
            f64::MAX,
            0.0,
            -0.0,
            -1.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ]);
        let mut d = vec![0.0; xs.len()];
        let mut portable = vec![0.0; xs.len()];
        ln_block(&mut d, &xs);
        ln_block_portable(&mut portable, &xs);
        let mut differ = 0;
        for ((&x, &got), &p) in xs.iter().zip(&d).zip(&portable) {
            assert_eq!(
                got.to_bits(),
                p.to_bits(),
                "ln({x:e}) differs from the baseline copy"
            );
            let want = x.ln();
            if want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()) {
                continue;
            }
            let ulps = (want.to_bits() as i64 - got.to_bits() as i64).abs();
            assert!(ulps <= 1, "ln({x:e}) = {got:e}, libm {want:e}");
            differ += 1;
        }
        // glibc's log is nearly correctly rounded; this one within ~0.8 ulp (3.7% here).
        assert!(
            differ * 10 < xs.len(),
            "ln: {differ} of {} differ from libm",
            xs.len()
        );
        println!("ln: {differ} of {} differ from libm by one ulp", xs.len());
        // cos: Box-Muller's 2 pi u, wider arguments, quadrant ends and specials.
        let mut xs: Vec<f64> = us.iter().map(|&u| std::f64::consts::TAU * u).collect();
        xs.extend(us.iter().map(|&u| (u - 0.5) * 2000.0));
        xs.extend((-40..40).map(|k| k as f64 * std::f64::consts::FRAC_PI_2));
        xs.extend([
            0.0,
            -0.0,
            1e-300,
            524_288.0,
            1e6,
            1e300,
            f64::INFINITY,
            f64::NAN,
        ]);
        let mut d = vec![0.0; xs.len()];
        let mut portable = vec![0.0; xs.len()];
        cos_block(&mut d, &xs);
        cos_block_portable(&mut portable, &xs);
        let mut differ = 0;
        for ((&x, &got), &p) in xs.iter().zip(&d).zip(&portable) {
            assert_eq!(
                got.to_bits(),
                p.to_bits(),
                "cos({x:e}) differs from the baseline copy"
            );
            let want = x.cos();
            if want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()) {
                continue;
            }
            // Relative 1 ulp, or absolute 1 ulp of 1 where cos is near a zero.
            let ulps = (want.to_bits() as i64 - got.to_bits() as i64).abs();
            assert!(
                ulps <= 1 || (got - want).abs() <= f64::EPSILON / 2.0,
                "cos({x:e}) = {got:e}, libm {want:e}"
            );
            differ += 1;
        }
        assert!(
            differ * 20 < xs.len(),
            "cos: {differ} of {} differ from libm",
            xs.len()
        );
        println!("cos: {differ} of {} differ from libm", xs.len());
    }

    #[test]
    fn floored_like_python() {
        assert_eq!(floordiv_i32(-7, 2), -4);
        assert_eq!(mod_i32(-7, 2), 1);
        assert_eq!(mod_i32(7, -2), -1);
        assert_eq!(floordiv_i32(7, 0), 0);
        assert_eq!(mod_i32(7, 0), 0);
        assert_eq!(floordiv_f64(-7.0, 2.0), -4.0);
        assert_eq!(mod_f64(-7.0, 2.0), 1.0);
        assert_eq!(mod_f64(7.0, -2.0), -1.0);
        assert_eq!(floordiv_f64(1.0, 0.0), f64::INFINITY);
        assert!(mod_f64(1.0, 0.0).is_nan());
        assert_eq!(mod_f64(-1.0, f64::INFINITY), f64::INFINITY);
        assert_eq!(pow_i32(3, 4), 81);
        assert_eq!(sign_f64(-0.0), 0.0);
        assert_eq!(exprel_f64(0.0), 1.0);
        assert_eq!(clip_f64(5.0, 0.0, 1.0), 1.0);
        assert_eq!(timestep(0.3e-3, 0.1e-3), 3);
    }
}
