//! Counter-based random numbers shared by the CPU interpreter and the WGSL kernels.
//!
//! The generator is Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
//! 1, 2, 3", SC 2011). Every random number is a pure function of
//! (seed, kernel, call site, timestep, element, draw), so the two backends draw the same
//! streams in any order. `shaders/philox.wgsl` implements the same functions; keep them
//! in step (the tests in `tests/rng.rs` compare the two).
//!
//! # Keying
//!
//! * key = the 64-bit seed as `[lo, hi]`;
//! * counter = `[element, step_lo, (step_hi << 16) | draw, (kernel << 8) | site]`, where
//!   `step` is the timestep (its low 48 bits), `draw` a 16-bit index for rejection loops
//!   (0 for the first draw of a call), `kernel` a 24-bit kernel number and `site` the
//!   8-bit index of the `rand()`/`randn()`/... call within the kernel.
//!
//! # Distributions
//!
//! * uniform: 53 bits from words 0 and 1 (f64) or 24 bits from word 0 (f32), in [0, 1);
//!   the f32 value is the f64 value truncated to 24 bits.
//! * normal: Box–Muller on draw 0: `sqrt(-2 ln u1) cos(2π u2)` with u1 from words 0, 1
//!   in (0, 1] and u2 from words 2, 3 in [0, 1). The f64 ln and cos are the
//!   interpreter's own (`cpu::math`, within 1 ulp of glibc's), the GPU's those of
//!   `f64_math.wgsl`: the two backends agree to a few ulp, not bit for bit.
//! * poisson: λ < 10 by inversion (sequential search of the CDF from 0) with the uniform
//!   of draw 0; λ ≥ 10 by Hörmann's PTRS transformed rejection, iteration i using draw i
//!   (i = 1, 2, ...; U from words 0, 1 and V from words 2, 3). The same split as
//!   Brian2's C++ `poisson` (which uses the multiplication method below 10).
//! * binomial: Brian2's `BinomialFunction(n, p, approximate=True)`: when `n p > 5` and
//!   `n (1 - p) > 5`, the normal approximation `n p + sqrt(n p (1 - p)) randn()`;
//!   otherwise numpy's `rk_binomial_inversion` (search from 0 on min(p, 1 - p), restart
//!   with a fresh uniform past the bound `min(n, n P + 10 sqrt(n P q + 1))`), restart r
//!   drawing from draw r. Brian2's normal approximation is a real number;
//!   [`Stream::binomial_value`] returns it as is, [`Stream::binomial`] (the integer the
//!   IR uses) rounds it to the nearest integer and clamps it to [0, n].
//!
//! The `_f32` variants mirror the WGSL functions of the same name for adapters without
//! f64: the same algorithms in f32 arithmetic on the 24-bit uniforms, so they return the
//! same integers as the f64 ones for nearly all streams.

use crate::simd::multiversion;

/// The WGSL library (`shaders/philox.wgsl`).
pub const WGSL: &str = include_str!("../shaders/philox.wgsl");
/// The line in [`WGSL`] after which every function needs f64 (and `f64_math.wgsl`).
pub const WGSL_F64_MARKER: &str = "// ---- B2_PHILOX_F64";

/// The WGSL library split for a kernel: without `f64`, only the u32/f32 part
/// (self-contained); with it, everything (which then needs `b2_log_f64`, `b2_log1p_f64`,
/// `b2_exp_f64` and `b2_cos_f64` from `f64_math.wgsl`).
pub fn wgsl_source(f64: bool) -> &'static str {
    if f64 {
        WGSL
    } else {
        &WGSL[..WGSL
            .find(WGSL_F64_MARKER)
            .expect("philox.wgsl lacks its f64 marker")]
    }
}

/// Philox4x32 multipliers and Weyl key increments (Random123).
pub const PHILOX_M0: u32 = 0xD251_1F53;
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
pub const PHILOX_W0: u32 = 0x9E37_79B9;
pub const PHILOX_W1: u32 = 0xBB67_AE85;

/// 2^-53 and 2^-24.
const TWO_M53: f64 = 1.0 / 9_007_199_254_740_992.0;
const TWO_M24: f32 = 1.0 / 16_777_216.0;

/// Poisson means below this use inversion, from here on PTRS (as Brian2's C++ code).
pub const POISSON_INVERSION_MAX: f64 = 10.0;
/// Iterations of PTRS (draws 1..=this) before giving up and returning round(λ); each
/// iteration accepts with probability around 0.9, so this is never reached in practice.
pub const PTRS_MAX_ITERS: u32 = 64;
/// Cap on the CDF search steps of Poisson inversion (λ < 10 needs far fewer).
pub const POISSON_INVERSION_MAX_STEPS: i32 = 256;
/// Uniforms binomial inversion may use (draws 0..this) before returning 0 successes.
pub const BINOMIAL_MAX_DRAWS: u32 = 16;
/// Exact binomial: inversion below this mean `n min(p, 1 - p)`, BTRD from here on (the
/// algorithm's own lower limit).
pub const BINOMIAL_BTRD_MIN_MEAN: f64 = 10.0;
/// Iterations of BTRD (draws 0..this) before giving up and returning the mode; each
/// accepts with probability above 0.8, so this is never reached in practice.
pub const BTRD_MAX_ITERS: u32 = 64;

/// `ln k! - ((k + 1/2) ln(k + 1) - (k + 1) + ln(2 pi) / 2)`, the tail of Stirling's series
/// BTRD needs: a table below 10, the series' first three terms from there on.
const STIRLING_TAIL: [f64; 10] = [
    0.081_061_466_795_327_33,
    0.041_340_695_955_409_46,
    0.027_677_925_684_997_717,
    0.020_790_672_103_765_84,
    0.016_644_691_189_820_815,
    0.013_876_128_823_072_431,
    0.011_896_709_945_892_87,
    0.010_411_265_261_973_224,
    0.009_255_462_182_709_007,
    0.008_330_563_433_359_028,
];

fn stirling_tail_f64(k: f64) -> f64 {
    if k < 10.0 {
        return STIRLING_TAIL[k as usize];
    }
    let k1 = k + 1.0;
    let k2 = k1 * k1;
    (1.0 / 12.0 - (1.0 / 360.0 - 1.0 / 1260.0 / k2) / k2) / k1
}

fn stirling_tail_f32(k: f32) -> f32 {
    if k < 10.0 {
        return STIRLING_TAIL[k as usize] as f32;
    }
    let k1 = k + 1.0;
    let k2 = k1 * k1;
    (1.0f32 / 12.0 - (1.0f32 / 360.0 - 1.0f32 / 1260.0 / k2) / k2) / k1
}

/// The exact binomial in one float type: the edge cases, then inversion or BTRD on
/// `min(p, 1 - p)`.
macro_rules! binomial_exact {
    ($(#[$doc:meta])* $name:ident, $t:ty, $inversion:ident, $btrd:ident) => {
        $(#[$doc])*
        pub fn $name(&self, n: i32, p: $t) -> i32 {
            if n <= 0 || p.is_nan() || p <= 0.0 {
                return 0;
            }
            if p >= 1.0 {
                return n;
            }
            let reverse = p > 0.5;
            let pp = if reverse { 1.0 - p } else { p };
            if (n as $t) * pp < BINOMIAL_BTRD_MIN_MEAN as $t {
                return self.$inversion(n, p);
            }
            let k = self.$btrd(n, pp);
            if reverse { n - k } else { k }
        }
    };
}

/// Hörmann's BTRD for `n p >= 10`, `p <= 1/2` (W. Hörmann, "The generation of binomial
/// random variates", J. Statist. Comput. Simul. 46, 1993), in one float type; the WGSL
/// versions in `shaders/philox.wgsl` follow it step by step.
macro_rules! btrd {
    ($name:ident, $t:ty, $uniforms:ident, $tail:ident) => {
        fn $name(&self, n: i32, p: $t) -> i32 {
            let nf = n as $t;
            let q = 1.0 - p;
            let npq = nf * p * q;
            let spq = npq.sqrt();
            let b = 1.15 + 2.53 * spq;
            let a = -0.0873 + 0.0248 * b + 0.01 * p;
            let c = nf * p + 0.5;
            let alpha = (2.83 + 5.1 / b) * spq;
            let vr = 0.92 - 4.2 / b;
            let urvr = 0.86 * vr;
            let m = ((nf + 1.0) * p).floor();
            let r = p / q;
            let nr = (nf + 1.0) * r;
            for draw in 0..BTRD_MAX_ITERS {
                let (mut v, w) = self.$uniforms(draw);
                // The triangle under the hat's centre: accepted at once.
                if v <= urvr {
                    let u = v / vr - 0.43;
                    return ((2.0 * a / (0.5 - u.abs()) + b) * u + c).floor() as i32;
                }
                let u = if v >= vr {
                    w - 0.5
                } else {
                    let u = v / vr - 0.93;
                    v = w * vr;
                    (if u >= 0.0 { 0.5 } else { -0.5 }) - u
                };
                let us = 0.5 - u.abs();
                let k = ((2.0 * a / us + b) * u + c).floor();
                if !(k >= 0.0 && k <= nf) {
                    continue;
                }
                v = v * alpha / (a / (us * us) + b);
                let km = (k - m).abs();
                if km <= 15.0 {
                    // f(k) / f(m) by the pmf's recursion.
                    let mut f = 1.0;
                    let mut i = m.min(k) + 1.0;
                    while i <= m.max(k) {
                        let ratio = nr / i - r;
                        if m < k {
                            f *= ratio;
                        } else {
                            v *= ratio;
                        }
                        i += 1.0;
                    }
                    if v <= f {
                        return k as i32;
                    }
                    continue;
                }
                // Squeeze on ln v, then the full log-likelihood ratio.
                let lv = v.ln();
                let rho = (km / npq) * (((km / 3.0 + 0.625) * km + 1.0 / 6.0) / npq + 0.5);
                let t = -km * km / (2.0 * npq);
                if lv < t - rho {
                    return k as i32;
                }
                if lv > t + rho {
                    continue;
                }
                let nm = nf - m + 1.0;
                let h = (m + 0.5) * ((m + 1.0) / (r * nm)).ln() + $tail(m) + $tail(nf - m);
                let nk = nf - k + 1.0;
                let bound = h + (nf + 1.0) * (nm / nk).ln() + (k + 0.5) * (nk * r / (k + 1.0)).ln()
                    - $tail(k)
                    - $tail(nf - k);
                if lv <= bound {
                    return k as i32;
                }
            }
            m as i32
        }
    };
}

/// Philox4x32 with 10 rounds: the block `ctr` under `key`. Inlined, so that loops over
/// many counters (the `*_block` functions) run several lanes per vector instruction.
#[inline(always)]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut x = ctr;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(PHILOX_W0);
            k[1] = k[1].wrapping_add(PHILOX_W1);
        }
        let p0 = PHILOX_M0 as u64 * x[0] as u64;
        let p1 = PHILOX_M1 as u64 * x[2] as u64;
        x = [
            (p1 >> 32) as u32 ^ x[1] ^ k[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ x[3] ^ k[1],
            p0 as u32,
        ];
    }
    x
}

/// The Philox key of a seed: `[lo, hi]`.
#[inline]
pub fn key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The Philox counter of one draw (see the module documentation).
#[inline]
pub fn counter(element: u32, step: i64, draw: u32, kernel: u32, site: u32) -> [u32; 4] {
    let s = step as u64;
    [
        element,
        s as u32,
        (((s >> 32) as u32) << 16) | (draw & 0xffff),
        (kernel << 8) | (site & 0xff),
    ]
}

// The four block generators below repeat their Philox loop on purpose: factored into a
// shared iterator, the closure is not inlined into the AVX2 copies and the uniform block
// ran 3x slower (measured 2026-12-01).
multiversion! {
    /// `out[k]` = [`Stream::uniform_f64`] of `base` at element `elements[k]`, a block at a
    /// time: the Philox rounds of neighbouring elements share vector instructions.
    pub fn uniform_f64_block / uniform_f64_block_portable(
        out: &mut [f64],
        base: &Stream,
        elements: &[u32],
    ) {
        let key = key(base.seed);
        for (o, &e) in out.iter_mut().zip(elements) {
            let w = philox4x32_10(counter(e, base.step, 0, base.kernel, base.site), key);
            *o = u01_f64(w[0], w[1]);
        }
    }
}

multiversion! {
    /// `out[k]` = [`Stream::uniform_f32`] of `base` at element `elements[k]`.
    pub fn uniform_f32_block / uniform_f32_block_portable(
        out: &mut [f32],
        base: &Stream,
        elements: &[u32],
    ) {
        let key = key(base.seed);
        for (o, &e) in out.iter_mut().zip(elements) {
            let w = philox4x32_10(counter(e, base.step, 0, base.kernel, base.site), key);
            *o = u01_f32(w[0]);
        }
    }
}

multiversion! {
    /// The uniforms `(u1, u2)` of [`Stream::normal_f64`] at elements `elements[k]`.
    fn box_muller_uniforms_f64 / box_muller_uniforms_f64_portable(
        u1: &mut [f64],
        u2: &mut [f64],
        base: &Stream,
        elements: &[u32],
    ) {
        let key = key(base.seed);
        for ((a, b), &e) in u1.iter_mut().zip(u2.iter_mut()).zip(elements) {
            let w = philox4x32_10(counter(e, base.step, 0, base.kernel, base.site), key);
            *a = u01_open0_f64(w[0], w[1]);
            *b = u01_f64(w[2], w[3]);
        }
    }
}

multiversion! {
    /// The uniforms `(u1, u2)` of [`Stream::normal_f32`] at elements `elements[k]`.
    fn box_muller_uniforms_f32 / box_muller_uniforms_f32_portable(
        u1: &mut [f32],
        u2: &mut [f32],
        base: &Stream,
        elements: &[u32],
    ) {
        let key = key(base.seed);
        for ((a, b), &e) in u1.iter_mut().zip(u2.iter_mut()).zip(elements) {
            let w = philox4x32_10(counter(e, base.step, 0, base.kernel, base.site), key);
            *a = u01_open0_f32(w[0]);
            *b = u01_f32(w[2]);
        }
    }
}

multiversion! {
    /// `out[k] = box_muller_f64(out[k], u2[k])`.
    fn box_muller_block_f64 / box_muller_block_f64_portable(out: &mut [f64], u2: &[f64]) {
        for (o, &v) in out.iter_mut().zip(u2) {
            *o = box_muller_f64(*o, v);
        }
    }
}

/// `out[k]` = [`Stream::normal_f64`] of `base` at element `elements[k]`: the uniforms in
/// one vectorised pass, then Box-Muller in another.
pub fn normal_f64_block(out: &mut [f64], base: &Stream, elements: &[u32]) {
    let mut u2 = vec![0.0f64; out.len()];
    box_muller_uniforms_f64(out, &mut u2, base, elements);
    box_muller_block_f64(out, &u2);
}

/// `out[k]` = [`Stream::normal_f32`] of `base` at element `elements[k]`.
pub fn normal_f32_block(out: &mut [f32], base: &Stream, elements: &[u32]) {
    let mut u2 = vec![0.0f32; out.len()];
    box_muller_uniforms_f32(out, &mut u2, base, elements);
    for (o, &v) in out.iter_mut().zip(&u2) {
        *o = box_muller_f32(*o, v);
    }
}

/// `sqrt(-2 ln u1) cos(2 pi u2)` for u1 in [2^-53, 1] and u2 in [0, 1), with the
/// interpreter's branch-free ln and cos (within 1 ulp of glibc's), so that blocks of it
/// vectorise.
#[inline(always)]
fn box_muller_f64(u1: f64, u2: f64) -> f64 {
    use crate::cpu::math::{cos_reduced_f64, ln_normal_f64};
    (-2.0 * ln_normal_f64(u1)).sqrt() * cos_reduced_f64(std::f64::consts::TAU * u2)
}

#[inline]
fn box_muller_f32(u1: f32, u2: f32) -> f32 {
    (-2.0f32 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// A uniform in [0, 1) from 53 bits: 27 of `hi` and 26 of `lo`.
#[inline]
pub fn u01_f64(hi: u32, lo: u32) -> f64 {
    ((hi >> 5) as f64 * 67_108_864.0 + (lo >> 6) as f64) * TWO_M53
}

/// The same 53 bits mapped to (0, 1] (adds one unit), so its logarithm is finite.
#[inline]
pub fn u01_open0_f64(hi: u32, lo: u32) -> f64 {
    ((hi >> 5) as f64 * 67_108_864.0 + (lo >> 6) as f64 + 1.0) * TWO_M53
}

/// A uniform in [0, 1) from the top 24 bits of `w`.
#[inline]
pub fn u01_f32(w: u32) -> f32 {
    (w >> 8) as f32 * TWO_M24
}

/// The same 24 bits mapped to (0, 1].
#[inline]
pub fn u01_open0_f32(w: u32) -> f32 {
    ((w >> 8) + 1) as f32 * TWO_M24
}

/// log1p(x) - x in f32 without cancellation: for |x| <= 0.5 from the series of
/// 2 atanh(s), s = x / (2 + x), i.e. -x²/(2 + x) + 2 s³ (1/3 + s²/5 + ... + s¹⁶/19);
/// `ln(1 + x) - x` elsewhere. Mirrors `b2_log1pmx_f32`: GPU f32 `log` is only good to
/// about 2^-21 absolute near 1, so the f32 paths avoid it where it would cancel.
#[inline]
fn log1pmx_f32(x: f32) -> f32 {
    if x.abs() > 0.5 {
        return (1.0f32 + x).ln() - x;
    }
    let s = x / (2.0f32 + x);
    let s2 = s * s;
    let series = 0.33333334f32
        + s2 * (0.2f32
            + s2 * (0.14285715f32
                + s2 * (0.11111111f32
                    + s2 * (0.09090909f32
                        + s2 * (0.07692308f32
                            + s2 * (0.06666667f32 + s2 * (0.05882353f32 + s2 * 0.05263158f32)))))));
    -(x * x) / (2.0f32 + x) + 2.0f32 * s * s2 * series
}

/// One random stream position: a call site of a kernel at a timestep for an element.
#[derive(Clone, Copy, Debug)]
pub struct Stream {
    pub seed: u64,
    pub kernel: u32,
    pub site: u32,
    pub step: i64,
    pub element: u32,
}

impl Stream {
    /// The Philox counter of draw `draw`.
    #[inline]
    pub fn counter(&self, draw: u32) -> [u32; 4] {
        counter(self.element, self.step, draw, self.kernel, self.site)
    }

    /// The four random words of draw `draw`.
    #[inline]
    pub fn bits(&self, draw: u32) -> [u32; 4] {
        philox4x32_10(self.counter(draw), key(self.seed))
    }

    /// Uniform in [0, 1) with 53 random bits (draw 0, words 0 and 1).
    #[inline]
    pub fn uniform_f64(&self) -> f64 {
        let w = self.bits(0);
        u01_f64(w[0], w[1])
    }

    /// Uniform in [0, 1) with 24 random bits (draw 0, word 0).
    #[inline]
    pub fn uniform_f32(&self) -> f32 {
        u01_f32(self.bits(0)[0])
    }

    /// Standard normal by Box–Muller on draw 0.
    #[inline]
    pub fn normal_f64(&self) -> f64 {
        let w = self.bits(0);
        box_muller_f64(u01_open0_f64(w[0], w[1]), u01_f64(w[2], w[3]))
    }

    /// Standard normal by Box–Muller on draw 0 in f32 (24-bit uniforms from words 0, 2).
    #[inline]
    pub fn normal_f32(&self) -> f32 {
        let w = self.bits(0);
        box_muller_f32(u01_open0_f32(w[0]), u01_f32(w[2]))
    }

    /// Poisson-distributed count with mean `lam` (0 for `lam <= 0` or NaN).
    pub fn poisson(&self, lam: f64) -> i32 {
        if lam.is_nan() || lam <= 0.0 {
            return 0;
        }
        if lam < POISSON_INVERSION_MAX {
            return poisson_inversion_f64(self.uniform_f64(), lam);
        }
        if lam > f64::MAX {
            return i32::MAX;
        }
        self.poisson_ptrs_f64(lam)
    }

    /// [`Self::poisson`] in f32 arithmetic, as `b2_poisson_f32` computes it.
    pub fn poisson_f32(&self, lam: f32) -> i32 {
        if lam.is_nan() || lam <= 0.0 {
            return 0;
        }
        if lam < POISSON_INVERSION_MAX as f32 {
            return poisson_inversion_f32(self.uniform_f32(), lam);
        }
        if lam > f32::MAX {
            return i32::MAX;
        }
        self.poisson_ptrs_f32(lam)
    }

    /// Hörmann's PTRS (1993) for λ ≥ 10; iteration i uses draw i.
    fn poisson_ptrs_f64(&self, lam: f64) -> i32 {
        let slam = lam.sqrt();
        let loglam = lam.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let log_inv_alpha = (1.1239 + 1.1328 / (b - 3.4)).ln();
        let vr = 0.9277 - 3.6224 / (b - 2.0);
        // λ = li + lf with lf in [0, 1) exactly, so the large part is added without rounding.
        let li = lam.floor();
        let lf = lam - li;
        for draw in 1..=PTRS_MAX_ITERS {
            let w = self.bits(draw);
            let u = u01_f64(w[0], w[1]) - 0.5;
            let v = u01_open0_f64(w[2], w[3]);
            let us = 0.5 - u.abs();
            let kf = li + ((2.0 * a / us + b) * u + lf + 0.43).floor();
            if us >= 0.07 && v <= vr {
                return to_i32_f64(kf);
            }
            if kf < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            let lhs = v.ln() + log_inv_alpha - (a / (us * us) + b).ln();
            if lhs <= log_poisson_pmf_f64(kf, lam, loglam) {
                return to_i32_f64(kf);
            }
        }
        to_i32_f64((lam + 0.5).floor())
    }

    fn poisson_ptrs_f32(&self, lam: f32) -> i32 {
        let slam = lam.sqrt();
        let loglam = lam.ln();
        let b = 0.931f32 + 2.53f32 * slam;
        let a = -0.059f32 + 0.02483f32 * b;
        let log_inv_alpha = (1.1239f32 + 1.1328f32 / (b - 3.4f32)).ln();
        let vr = 0.9277f32 - 3.6224f32 / (b - 2.0f32);
        let li = lam.floor();
        let lf = lam - li;
        for draw in 1..=PTRS_MAX_ITERS {
            let w = self.bits(draw);
            let u = u01_f32(w[0]) - 0.5f32;
            let v = u01_open0_f32(w[2]);
            let us = 0.5f32 - u.abs();
            let kf = li + ((2.0f32 * a / us + b) * u + lf + 0.43f32).floor();
            if us >= 0.07f32 && v <= vr {
                return to_i32_f32(kf);
            }
            if kf < 0.0 || (us < 0.013f32 && v > us) {
                continue;
            }
            let lhs = v.ln() + log_inv_alpha - (a / (us * us) + b).ln();
            if lhs <= log_poisson_pmf_f32(kf, lam, loglam) {
                return to_i32_f32(kf);
            }
        }
        to_i32_f32((lam + 0.5f32).floor())
    }

    /// Brian2's `BinomialFunction(n, p)` value: the normal approximation (not rounded)
    /// when `n p > 5` and `n (1 - p) > 5`, else an exact binomial variate.
    pub fn binomial_value(&self, n: i32, p: f64) -> f64 {
        if n <= 0 || p.is_nan() || p <= 0.0 {
            return 0.0;
        }
        if p >= 1.0 {
            return n as f64;
        }
        let nf = n as f64;
        if nf * p > 5.0 && nf * (1.0 - p) > 5.0 {
            return nf * p + (nf * p * (1.0 - p)).sqrt() * self.normal_f64();
        }
        self.binomial_inversion_f64(n, p) as f64
    }

    /// Binomial count: [`Self::binomial_value`] rounded to the nearest integer and clamped
    /// to [0, n] in the normal regime (rounding keeps the mean n p, adds 1/12 variance).
    pub fn binomial(&self, n: i32, p: f64) -> i32 {
        let x = self.binomial_value(n, p);
        (x + 0.5).floor().clamp(0.0, n.max(0) as f64) as i32
    }

    /// [`Self::binomial`] in f32 arithmetic, as `b2_binomial_f32` computes it.
    pub fn binomial_f32(&self, n: i32, p: f32) -> i32 {
        if n <= 0 || p.is_nan() || p <= 0.0 {
            return 0;
        }
        if p >= 1.0 {
            return n;
        }
        let nf = n as f32;
        if nf * p > 5.0 && nf * (1.0 - p) > 5.0 {
            let x = nf * p + (nf * p * (1.0f32 - p)).sqrt() * self.normal_f32();
            return (x + 0.5f32).floor().clamp(0.0, nf) as i32;
        }
        self.binomial_inversion_f32(n, p)
    }

    /// numpy's binomial inversion (as Brian2 inlines it); restart r uses draw r.
    fn binomial_inversion_f64(&self, n: i32, p: f64) -> i32 {
        let reverse = p > 0.5;
        let pp = if reverse { 1.0 - p } else { p };
        let q = 1.0 - pp;
        let nf = n as f64;
        let qn = (nf * (-pp).ln_1p()).exp();
        let bound = nf.min(nf * pp + 10.0 * (nf * pp * q + 1.0).sqrt());
        let mut x = 0i32;
        let mut px = qn;
        let mut draw = 0u32;
        let mut u = self.uniform_at_f64(0);
        while u > px {
            x += 1;
            if x as f64 > bound {
                draw += 1;
                x = 0;
                if draw >= BINOMIAL_MAX_DRAWS {
                    break;
                }
                px = qn;
                u = self.uniform_at_f64(draw);
            } else {
                u -= px;
                px = ((nf - x as f64 + 1.0) * pp * px) / (x as f64 * q);
            }
        }
        if reverse { n - x } else { x }
    }

    fn binomial_inversion_f32(&self, n: i32, p: f32) -> i32 {
        let reverse = p > 0.5;
        let pp = if reverse { 1.0f32 - p } else { p };
        let q = 1.0f32 - pp;
        let nf = n as f32;
        let qn = (nf * (log1pmx_f32(-pp) - pp)).exp();
        let bound = nf.min(nf * pp + 10.0f32 * (nf * pp * q + 1.0f32).sqrt());
        let mut x = 0i32;
        let mut px = qn;
        let mut draw = 0u32;
        let mut u = u01_f32(self.bits(0)[0]);
        while u > px {
            x += 1;
            if x as f32 > bound {
                draw += 1;
                x = 0;
                if draw >= BINOMIAL_MAX_DRAWS {
                    break;
                }
                px = qn;
                u = u01_f32(self.bits(draw)[0]);
            } else {
                u -= px;
                px = ((nf - x as f32 + 1.0f32) * pp * px) / (x as f32 * q);
            }
        }
        if reverse { n - x } else { x }
    }

    binomial_exact!(
        /// Brian2's `BinomialFunction(n, p, approximate=False)`: an exact binomial count.
        /// Inversion (as in [`Self::binomial_value`]) while `n min(p, 1 - p)` is below
        /// [`BINOMIAL_BTRD_MIN_MEAN`], where `(1 - p)^n` stays far from underflow; from there
        /// on Hörmann's BTRD (transformed rejection with decomposition, 1993), iteration i
        /// using draw i.
        binomial_exact, f64, binomial_inversion_f64, btrd_f64
    );
    binomial_exact!(
        /// [`Self::binomial_exact`] in f32 arithmetic, as `b2_binomial_exact_f32` computes it.
        binomial_exact_f32, f32, binomial_inversion_f32, btrd_f32
    );

    /// The two uniforms of draw `draw` (words 0, 1 and 2, 3).
    #[inline]
    fn uniforms_at_f64(&self, draw: u32) -> (f64, f64) {
        let w = self.bits(draw);
        (u01_f64(w[0], w[1]), u01_f64(w[2], w[3]))
    }

    #[inline]
    fn uniforms_at_f32(&self, draw: u32) -> (f32, f32) {
        let w = self.bits(draw);
        (u01_f32(w[0]), u01_f32(w[2]))
    }

    btrd!(btrd_f64, f64, uniforms_at_f64, stirling_tail_f64);
    btrd!(btrd_f32, f32, uniforms_at_f32, stirling_tail_f32);

    #[inline]
    fn uniform_at_f64(&self, draw: u32) -> f64 {
        let w = self.bits(draw);
        u01_f64(w[0], w[1])
    }
}

/// Poisson by inversion: the smallest k with u < P(X <= k), summing the pmf from 0.
/// Stops where the running sum no longer grows (u within rounding of 1).
fn poisson_inversion_f64(u: f64, lam: f64) -> i32 {
    let mut k = 0i32;
    let mut p = (-lam).exp();
    let mut cdf = p;
    while u >= cdf && k < POISSON_INVERSION_MAX_STEPS {
        k += 1;
        p = p * lam / k as f64;
        let next = cdf + p;
        if next == cdf {
            break;
        }
        cdf = next;
    }
    k
}

fn poisson_inversion_f32(u: f32, lam: f32) -> i32 {
    let mut k = 0i32;
    let mut p = (-lam).exp();
    let mut cdf = p;
    while u >= cdf && k < POISSON_INVERSION_MAX_STEPS {
        k += 1;
        p = p * lam / k as f32;
        let next = cdf + p;
        if next == cdf {
            break;
        }
        cdf = next;
    }
    k
}

/// ln P(X = k) for X ~ Poisson(λ), k ≥ 0 integral. Below 10 from ln k! directly; from
/// 10 on by Stirling's series arranged as k (log1p(t) - t) with t = (λ - k)/k, which
/// avoids the cancellation of k ln λ - λ - ln k! for large λ.
fn log_poisson_pmf_f64(k: f64, lam: f64, loglam: f64) -> f64 {
    if k < 10.0 {
        let mut fact = 1.0f64;
        let mut j = 2.0f64;
        while j <= k {
            fact *= j;
            j += 1.0;
        }
        return k * loglam - lam - fact.ln();
    }
    let t = (lam - k) / k;
    let r = 1.0 / k;
    let r2 = r * r;
    // ln k! - (k ln k - k + ln(2πk)/2) = 1/(12k) - 1/(360k³) + 1/(1260k⁵) - 1/(1680k⁷) + 1/(1188k⁹)
    let corr = r
        * (0.08333333333333333
            - r2 * (0.002777777777777778
                - r2 * (0.0007936507936507937
                    - r2 * (0.0005952380952380953 - r2 * 0.0008417508417508417))));
    k * ((t).ln_1p() - t) - 0.5 * (std::f64::consts::TAU * k).ln() - corr
}

fn log_poisson_pmf_f32(k: f32, lam: f32, loglam: f32) -> f32 {
    if k < 10.0 {
        let mut fact = 1.0f32;
        let mut j = 2.0f32;
        while j <= k {
            fact *= j;
            j += 1.0;
        }
        return k * loglam - lam - fact.ln();
    }
    let t = (lam - k) / k;
    let r = 1.0f32 / k;
    let r2 = r * r;
    let corr = r
        * (0.083333336f32
            - r2 * (0.0027777778f32
                - r2 * (0.0007936508f32 - r2 * (0.0005952381f32 - r2 * 0.0008417508f32))));
    k * log1pmx_f32(t) - 0.5f32 * (std::f32::consts::TAU * k).ln() - corr
}

/// f64 → i32 saturating at the i32 range (the WGSL code clamps the same way).
#[inline]
fn to_i32_f64(x: f64) -> i32 {
    x.clamp(-2_147_483_648.0, 2_147_483_647.0) as i32
}

/// f32 → i32, clamped to the largest f32 below 2^31 as the WGSL code does.
#[inline]
fn to_i32_f32(x: f32) -> i32 {
    x.clamp(-2_147_483_648.0, 2_147_483_520.0) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAT: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0; 4],
            [0; 2],
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
        ),
        (
            [0xffffffff; 4],
            [0xffffffff; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];

    #[test]
    fn philox_known_answers() {
        for (ctr, key, want) in KAT {
            assert_eq!(
                philox4x32_10(ctr, key),
                want,
                "ctr {ctr:08x?} key {key:08x?}"
            );
        }
    }

    #[test]
    fn block_generators_match_streams() {
        let elements: Vec<u32> = (0..3000u32).map(|k| k * 7 + (k >> 3)).collect();
        let base = Stream {
            seed: 0x1234_5678_9abc,
            kernel: 3,
            site: 2,
            step: 1 << 40,
            element: 0,
        };
        let at = |e: u32| Stream { element: e, ..base };
        let n = elements.len();
        let (mut a, mut b) = (vec![0.0f64; n], vec![0.0f64; n]);
        let (mut af, mut bf) = (vec![0.0f32; n], vec![0.0f32; n]);
        uniform_f64_block(&mut a, &base, &elements);
        uniform_f64_block_portable(&mut b, &base, &elements);
        uniform_f32_block(&mut af, &base, &elements);
        uniform_f32_block_portable(&mut bf, &base, &elements);
        for (k, &e) in elements.iter().enumerate() {
            assert_eq!(a[k].to_bits(), at(e).uniform_f64().to_bits());
            assert_eq!(b[k].to_bits(), a[k].to_bits());
            assert_eq!(af[k].to_bits(), at(e).uniform_f32().to_bits());
            assert_eq!(bf[k].to_bits(), af[k].to_bits());
        }
        normal_f64_block(&mut a, &base, &elements);
        normal_f32_block(&mut af, &base, &elements);
        let (mut u1, mut u2) = (vec![0.0f64; n], vec![0.0f64; n]);
        box_muller_uniforms_f64_portable(&mut u1, &mut u2, &base, &elements);
        for (k, &e) in elements.iter().enumerate() {
            assert_eq!(a[k].to_bits(), at(e).normal_f64().to_bits());
            assert_eq!(a[k].to_bits(), box_muller_f64(u1[k], u2[k]).to_bits());
            assert_eq!(af[k].to_bits(), at(e).normal_f32().to_bits());
        }
    }

    #[test]
    fn counter_layout() {
        let s = Stream {
            seed: 0x0123_4567_89ab_cdef,
            kernel: 0xabcdef,
            site: 7,
            step: 0x1234_5678_9abc,
            element: 42,
        };
        assert_eq!(key(s.seed), [0x89ab_cdef, 0x0123_4567]);
        assert_eq!(s.counter(3), [42, 0x5678_9abc, 0x1234_0003, 0xabcd_ef07]);
        // Only the low 48 bits of the step and the low 24 bits of the kernel count.
        let t = Stream {
            step: s.step | (0x7fff << 48),
            kernel: s.kernel | 0xff00_0000,
            ..s
        };
        assert_eq!(t.counter(3), s.counter(3));
        assert_eq!(s.bits(3), philox4x32_10(s.counter(3), key(s.seed)));
    }

    #[test]
    fn uniform_construction() {
        assert_eq!(u01_f64(0, 0), 0.0);
        assert_eq!(u01_f64(u32::MAX, u32::MAX), 1.0 - TWO_M53);
        assert_eq!(u01_open0_f64(0, 0), TWO_M53);
        assert_eq!(u01_open0_f64(u32::MAX, u32::MAX), 1.0);
        assert_eq!(u01_f32(u32::MAX), 1.0 - TWO_M24);
        assert_eq!(u01_open0_f32(u32::MAX), 1.0);
        // The f32 uniform is the f64 one truncated to 24 bits.
        for e in 0..1000 {
            let s = Stream {
                seed: 5,
                kernel: 1,
                site: 0,
                step: 9,
                element: e,
            };
            let (a, b) = (s.uniform_f64(), s.uniform_f32() as f64);
            assert!(b <= a && a - b < 2f64.powi(-24));
        }
    }

    fn stream(i: u32) -> Stream {
        Stream {
            seed: 0x5eed_1234_abcd,
            kernel: 3,
            site: 1,
            step: (i / 1000) as i64,
            element: i % 1000,
        }
    }

    /// Mean and variance with 5-sigma tolerances from the sample's own moments.
    fn check_moments(name: &str, xs: &[f64], mean: f64, var: f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let m2 = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
        let m4 = xs.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n;
        let se_mean = (var / n).sqrt();
        let se_var = ((m4 - m2 * m2) / n).sqrt();
        eprintln!(
            "{name}: mean {m:.6} (want {mean:.6}, {:.2} se), var {m2:.6} (want {var:.6}, {:.2} se)",
            (m - mean) / se_mean,
            (m2 - var) / se_var
        );
        assert!(
            (m - mean).abs() < 5.0 * se_mean,
            "{name}: mean {m} vs {mean}"
        );
        assert!((m2 - var).abs() < 5.0 * se_var, "{name}: var {m2} vs {var}");
    }

    /// Pearson chi-square of integer samples against a pmf, pooling cells with < 20 expected.
    fn chi_square(name: &str, xs: &[i32], pmf: impl Fn(i32) -> f64, lo: i32, hi: i32) {
        let n = xs.len() as f64;
        let mut counts = vec![0f64; (hi - lo + 1) as usize];
        for &x in xs {
            assert!(
                x >= lo && x <= hi,
                "{name}: sample {x} outside [{lo}, {hi}]"
            );
            counts[(x - lo) as usize] += 1.0;
        }
        let (mut chi2, mut df) = (0.0, -1i32);
        let (mut obs, mut exp) = (0.0, 0.0);
        for k in lo..=hi {
            obs += counts[(k - lo) as usize];
            exp += n * pmf(k);
            if exp >= 20.0 || k == hi {
                chi2 += (obs - exp) * (obs - exp) / exp.max(1e-300);
                df += 1;
                obs = 0.0;
                exp = 0.0;
            }
        }
        let df = df.max(1) as f64;
        // The chi-square's mean is df and its sd sqrt(2 df); allow 6 sd.
        eprintln!("{name}: chi2 {chi2:.1} on {df} df");
        assert!(
            chi2 < df + 6.0 * (2.0 * df).sqrt(),
            "{name}: chi2 {chi2} on {df} df"
        );
    }

    /// ln k! by compensated summation (a reference independent of the Stirling code).
    fn ln_fact(k: i32) -> f64 {
        let (mut s, mut c) = (0.0f64, 0.0f64);
        for j in 2..=k {
            let y = (j as f64).ln() - c;
            let t = s + y;
            c = (t - s) - y;
            s = t;
        }
        s
    }

    const N: u32 = 1_000_000;

    #[test]
    fn uniform_moments() {
        let xs: Vec<f64> = (0..N).map(|i| stream(i).uniform_f64()).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        check_moments("uniform_f64", &xs, 0.5, 1.0 / 12.0);
        let xs: Vec<f64> = (0..N).map(|i| stream(i).uniform_f32() as f64).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        check_moments("uniform_f32", &xs, 0.5, 1.0 / 12.0);
        // Neighbouring sites and elements are uncorrelated.
        let c: f64 = (0..N)
            .map(|i| {
                let s = stream(i);
                (s.uniform_f64() - 0.5) * (Stream { site: 2, ..s }.uniform_f64() - 0.5)
            })
            .sum::<f64>()
            / N as f64
            * 12.0;
        eprintln!("site correlation {c:.5}");
        assert!(c.abs() < 5.0 / (N as f64).sqrt());
    }

    #[test]
    fn normal_moments() {
        for f32_ in [false, true] {
            let xs: Vec<f64> = (0..N)
                .map(|i| {
                    if f32_ {
                        stream(i).normal_f32() as f64
                    } else {
                        stream(i).normal_f64()
                    }
                })
                .collect();
            let name = if f32_ { "normal_f32" } else { "normal_f64" };
            assert!(xs.iter().all(|x| x.is_finite()));
            check_moments(name, &xs, 0.0, 1.0);
            // Tails: P(|z| > 3) = 0.0026998, P(|z| > 4) = 6.334e-5.
            for (z, p) in [(2.0, 0.0455003), (3.0, 0.0026998), (4.0, 6.334e-5)] {
                let count = xs.iter().filter(|x| x.abs() > z).count() as f64;
                let want = p * N as f64;
                eprintln!("{name}: |z| > {z}: {count} (want {want:.1})");
                assert!((count - want).abs() < 5.0 * want.sqrt() + 1.0);
            }
        }
    }

    #[test]
    fn poisson_moments_and_shape() {
        for lam in [0.5, 3.0, 9.9, 10.0, 50.0, 1000.0] {
            for f32_ in [false, true] {
                let ks: Vec<i32> = (0..N)
                    .map(|i| {
                        if f32_ {
                            stream(i).poisson_f32(lam as f32)
                        } else {
                            stream(i).poisson(lam)
                        }
                    })
                    .collect();
                let xs: Vec<f64> = ks.iter().map(|&k| k as f64).collect();
                let name = format!("poisson{}({lam})", if f32_ { "_f32" } else { "" });
                check_moments(&name, &xs, lam, lam);
                let pmf = |k: i32| (k as f64 * lam.ln() - lam - ln_fact(k)).exp();
                let hi = (lam + 12.0 * lam.sqrt() + 30.0) as i32;
                chi_square(&name, &ks, pmf, 0, hi);
            }
        }
        let s = stream(1);
        assert_eq!(s.poisson(0.0), 0);
        assert_eq!(s.poisson(-3.0), 0);
        assert_eq!(s.poisson(f64::NAN), 0);
        assert_eq!(s.poisson(f64::INFINITY), i32::MAX);
        assert!(s.poisson(1e12) > 0);
    }

    #[test]
    fn log1pmx_f32_is_accurate() {
        for i in -1000..=1000 {
            let x = i as f64 * 0.0005 + 1e-7;
            let want = x.ln_1p() - x;
            let got = log1pmx_f32(x as f32) as f64;
            let want32 = (x as f32 as f64).ln_1p() - x as f32 as f64;
            assert!(
                (got - want32).abs() <= 4e-7 * want.abs(),
                "x {x}: {got} vs {want32}"
            );
        }
    }

    #[test]
    fn ptrs_log_pmf_matches_direct_formula() {
        for lam in [10.0f64, 37.5, 1000.0, 1e6] {
            for k in [
                0.0f64,
                3.0,
                9.0,
                10.0,
                11.0,
                25.0,
                lam.floor(),
                (lam + 50.5).floor(),
                (3.0 * lam).floor(),
            ] {
                let direct = k * lam.ln() - lam - ln_fact(k as i32);
                let got = log_poisson_pmf_f64(k, lam, lam.ln());
                assert!(
                    (got - direct).abs() < 1e-9 * direct.abs().max(1.0),
                    "lam {lam} k {k}: {got} vs {direct}"
                );
                let got32 = log_poisson_pmf_f32(k as f32, lam as f32, (lam as f32).ln()) as f64;
                assert!(
                    (got32 - direct).abs() < 2e-3 * direct.abs().max(1.0) + 1e-3,
                    "f32 lam {lam} k {k}: {got32} vs {direct}"
                );
            }
        }
    }

    #[test]
    fn binomial_exact_moments_and_shape() {
        // Inversion (n min(p, 1 - p) < 10, both branches) and BTRD (both branches, from the
        // boundary on, far from the mode, large n); every pmf checked by chi-square.
        for (n, p) in [
            (20, 0.35),
            (20, 0.6),
            (50, 0.2),
            (100, 0.3),
            (1000, 0.5),
            (2000, 0.993),
            (100_000, 0.97),
            (30, 0.001),
        ] {
            let (n, p): (i32, f64) = (n, p);
            let nf = n as f64;
            let mut ln_fact = vec![0.0f64; n as usize + 1];
            for k in 1..=n as usize {
                ln_fact[k] = ln_fact[k - 1] + (k as f64).ln();
            }
            let pmf = |k: i32| {
                let k = k as usize;
                (ln_fact[n as usize] - ln_fact[k] - ln_fact[n as usize - k]
                    + k as f64 * p.ln()
                    + (nf - k as f64) * (1.0 - p).ln())
                .exp()
            };
            for f32_ in [false, true] {
                let ks: Vec<i32> = (0..N)
                    .map(|i| {
                        if f32_ {
                            stream(i).binomial_exact_f32(n, p as f32)
                        } else {
                            stream(i).binomial_exact(n, p)
                        }
                    })
                    .collect();
                let name = format!("binomial_exact{}({n}, {p})", if f32_ { "_f32" } else { "" });
                let xs: Vec<f64> = ks.iter().map(|&k| k as f64).collect();
                check_moments(&name, &xs, nf * p, nf * p * (1.0 - p));
                chi_square(&name, &ks, pmf, 0, n);
            }
        }
        let s = stream(3);
        assert_eq!(s.binomial_exact(10, 0.0), 0);
        assert_eq!(s.binomial_exact(10, 1.0), 10);
        assert_eq!(s.binomial_exact(0, 0.5), 0);
        assert_eq!(s.binomial_exact(10, f64::NAN), 0);
        assert_eq!(s.binomial_exact_f32(100, 1.0), 100);
    }

    #[test]
    fn binomial_moments_and_shape() {
        // (n, p): inversion (n p <= 5 or n (1-p) <= 5, incl. the reversed branch) and normal.
        for (n, p) in [
            (10, 0.2),
            (1000, 0.003),
            (20, 0.9),
            (7, 0.5),
            (100, 0.3),
            (100_000, 0.6),
        ] {
            for f32_ in [false, true] {
                let ks: Vec<i32> = (0..N)
                    .map(|i| {
                        if f32_ {
                            stream(i).binomial_f32(n, p as f32)
                        } else {
                            stream(i).binomial(n, p)
                        }
                    })
                    .collect();
                assert!(ks.iter().all(|&k| (0..=n).contains(&k)));
                let xs: Vec<f64> = ks.iter().map(|&k| k as f64).collect();
                let nf = n as f64;
                let normal = nf * p > 5.0 && nf * (1.0 - p) > 5.0;
                let var = nf * p * (1.0 - p) + if normal { 1.0 / 12.0 } else { 0.0 };
                let name = format!("binomial{}({n}, {p})", if f32_ { "_f32" } else { "" });
                check_moments(&name, &xs, nf * p, var);
                if !normal {
                    let pmf = |k: i32| {
                        (ln_fact(n) - ln_fact(k) - ln_fact(n - k)
                            + k as f64 * p.ln()
                            + (nf - k as f64) * (1.0 - p).ln())
                        .exp()
                    };
                    chi_square(&name, &ks, pmf, 0, n);
                }
            }
        }
        let s = stream(2);
        assert_eq!(s.binomial(10, 0.0), 0);
        assert_eq!(s.binomial(10, 1.0), 10);
        assert_eq!(s.binomial(0, 0.5), 0);
        assert_eq!(s.binomial(10, f64::NAN), 0);
        assert_eq!(s.binomial_f32(10, 1.0), 10);
    }

    #[test]
    fn f32_variants_track_f64() {
        // The f32 paths use the same words, so they mostly give the same integers.
        let n = 200_000u32;
        for lam in [3.0, 50.0] {
            let same = (0..n)
                .filter(|&i| stream(i).poisson(lam) == stream(i).poisson_f32(lam as f32))
                .count();
            eprintln!("poisson({lam}) f32 == f64 for {same}/{n}");
            assert!(same as f64 > 0.999 * n as f64);
        }
        for (bn, p) in [(10, 0.2), (100, 0.3)] {
            let same = (0..n)
                .filter(|&i| stream(i).binomial(bn, p) == stream(i).binomial_f32(bn, p as f32))
                .count();
            eprintln!("binomial({bn}, {p}) f32 == f64 for {same}/{n}");
            assert!(same as f64 > 0.999 * n as f64);
        }
    }
}
