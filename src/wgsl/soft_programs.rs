//! Programs for the float64 emulation's interpreter (`b2s_run` in shaders/soft_f64.wgsl).
//!
//! Drivers inline every WGSL function call, so an elementary function written as
//! straight-line calls of emulated operations puts dozens of copies of `b2s_add` and
//! `b2s_mul` into each kernel that calls it: lavapipe's LLVM then takes seconds per call
//! site. Instead each function is a short program of emulated operations, run by one loop
//! that holds a single copy of each operation; a call site costs one copy of that loop.
//!
//! A program is a list of `u32` instructions: op (bits 0..4), destination register
//! (4..8), operands a (8..16) and b (16..24), and for jumps a signed offset (24..32).
//! Operands below 16 are registers; 16 and above index the constant table. Registers
//! 0..3 hold the inputs and register 0 the result.

use std::fmt::Write;
use std::sync::LazyLock;

#[derive(Clone, Copy)]
enum Op {
    End = 0,
    Add = 1,
    Sub = 2,
    Mul = 3,
    Div = 4,
    Floor = 5,
    /// d = a * 2^b, b an integral value, rounded once.
    Ldexp = 6,
    /// d = b < a ? b : a (a NaN a stays).
    Min = 7,
    /// d = a < b ? b : a.
    Max = 8,
    /// Jump by the offset when a < b.
    Jlt = 9,
}

/// An operand: a register or a constant.
#[derive(Clone, Copy)]
enum O {
    R(u32),
    K(f64),
}
use O::{K, R};

#[derive(Default)]
struct Asm {
    prog: Vec<u32>,
    consts: Vec<u64>,
    /// (instruction index, label) of jumps to patch.
    fixups: Vec<(usize, &'static str)>,
    labels: Vec<(&'static str, usize)>,
    entries: Vec<(&'static str, usize)>,
}

impl Asm {
    fn operand(&mut self, o: O) -> u32 {
        match o {
            R(r) => {
                assert!(r < 16);
                r
            }
            K(x) => {
                let bits = x.to_bits();
                let i = match self.consts.iter().position(|&c| c == bits) {
                    Some(i) => i,
                    None => {
                        self.consts.push(bits);
                        self.consts.len() - 1
                    }
                };
                assert!(i < 240, "too many constants");
                16 + i as u32
            }
        }
    }

    fn op(&mut self, op: Op, d: u32, a: O, b: O) {
        assert!(d < 16);
        let (a, b) = (self.operand(a), self.operand(b));
        self.prog.push(op as u32 | (d << 4) | (a << 8) | (b << 16));
    }

    fn add(&mut self, d: u32, a: O, b: O) {
        self.op(Op::Add, d, a, b)
    }
    fn sub(&mut self, d: u32, a: O, b: O) {
        self.op(Op::Sub, d, a, b)
    }
    fn mul(&mut self, d: u32, a: O, b: O) {
        self.op(Op::Mul, d, a, b)
    }
    fn div(&mut self, d: u32, a: O, b: O) {
        self.op(Op::Div, d, a, b)
    }

    /// Jump to `label` when a < b (`K(0.0), K(1.0)`: always).
    fn jlt(&mut self, a: O, b: O, label: &'static str) {
        self.fixups.push((self.prog.len(), label));
        self.op(Op::Jlt, 0, a, b);
    }

    fn label(&mut self, name: &'static str) {
        self.labels.push((name, self.prog.len()));
    }

    fn entry(&mut self, name: &'static str) {
        self.entries.push((name, self.prog.len()));
    }

    /// d = a (a register or constant).
    fn mov(&mut self, d: u32, a: O) {
        self.op(Op::Min, d, a, a)
    }

    /// Ends a program: resolves its jumps (labels are local to the program up to here, so
    /// that a macro may be used in several programs).
    fn end(&mut self) {
        self.op(Op::End, 0, R(0), R(0));
        for (at, name) in std::mem::take(&mut self.fixups) {
            let to = self
                .labels
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("no label {name}"))
                .1;
            // The interpreter has already moved past the jump when it applies the offset.
            let off = to as i64 - (at as i64 + 1);
            assert!((-128..128).contains(&off));
            self.prog[at] |= ((off as i8) as u8 as u32) << 24;
        }
        self.labels.clear();
    }

    /// Dekker's split of register x into 26-bit halves: hi + lo = x exactly.
    fn split(&mut self, hi: u32, lo: u32, x: u32) {
        self.mul(hi, R(x), K(SPLIT));
        self.sub(lo, R(hi), R(x));
        self.sub(hi, R(hi), R(lo));
        self.sub(lo, R(x), R(hi));
    }

    /// d = the rounding error of th = x y (x = xh + xl, y = yh + yl split): Dekker's exact
    /// product, x y = th + d. Uses register t.
    fn product_error(&mut self, d: u32, th: u32, (xh, xl): (u32, u32), (yh, yl): (O, O), t: u32) {
        self.mul(d, R(xh), yh);
        self.sub(d, R(d), R(th));
        for (a, b) in [(R(xh), yl), (R(xl), yh), (R(xl), yl)] {
            self.mul(t, a, b);
            self.add(d, R(d), R(t));
        }
    }

    /// Horner's scheme: d = ((c[0] x + c[1]) x + ...) + c[n-1], x a register.
    fn horner(&mut self, d: u32, x: u32, c: &[f64]) {
        self.mul(d, R(x), K(c[0]));
        for &ci in &c[1..c.len() - 1] {
            self.add(d, R(d), K(ci));
            self.mul(d, R(x), R(d));
        }
        self.add(d, R(d), K(c[c.len() - 1]));
    }

    /// d = e^x for any x (NaN, infinities and out-of-range values included); uses
    /// registers 4..=8. Tang's reduction x = k ln2 + r and the kernel
    /// e^r = 1 + r + r c / (2 - c), c = r - r^2 P(r^2) (fdlibm's coefficients).
    fn exp(&mut self, d: u32, x: u32) {
        self.exp_scaled(d, x, 0.0);
    }

    /// d = e^x 2^scale, rounded once (sinh and cosh's e^x / 2 beyond e^x's overflow).
    fn exp_scaled(&mut self, d: u32, x: u32, scale: f64) {
        // e^711 overflows even halved, and e^-746 rounds to 0: clamping keeps k in range
        // and changes no result.
        self.op(Op::Min, 4, R(x), K(711.0));
        self.op(Op::Max, 4, R(4), K(-746.0));
        self.mul(5, R(4), K(f64::from_bits(0x3ff71547652b82fe))); // 1/ln2
        self.add(5, R(5), K(0.5));
        self.op(Op::Floor, 5, R(5), R(5)); // k
        self.mul(6, R(5), K(LN2_HI));
        self.sub(6, R(4), R(6)); // hi = x - k ln2_hi, exact
        self.mul(7, R(5), K(LN2_LO)); // lo
        self.sub(4, R(6), R(7)); // r = hi - lo
        self.mul(8, R(4), R(4)); // t = r^2
        self.horner(
            d,
            8,
            &[
                f64::from_bits(0x3e66376972bea4d0),
                f64::from_bits(0xbebbbd41c5d26bf1),
                f64::from_bits(0x3f11566aaf25de2c),
                f64::from_bits(0xbf66c16c16bebd93),
                f64::from_bits(0x3fc555555555553e),
            ],
        );
        self.mul(d, R(8), R(d));
        self.sub(d, R(4), R(d)); // c
        self.mul(8, R(4), R(d)); // r c
        self.sub(d, K(2.0), R(d));
        self.div(8, R(8), R(d)); // q
        self.sub(7, R(7), R(8));
        self.sub(7, R(7), R(6));
        self.sub(7, K(1.0), R(7)); // y = 1 - ((lo - q) - hi)
        if scale != 0.0 {
            self.add(5, R(5), K(scale));
        }
        self.op(Op::Ldexp, d, R(7), R(5));
    }

    /// d = e^x - 1 (register x, |x| <= 40; uses t and 4..=8): x exprel(x) by the series
    /// below |x| = 1, e^x - 1 above (cancelling at most a factor e/(e-1)).
    fn expm1(&mut self, d: u32, x: u32, t: u32) {
        self.sub(t, K(0.0), R(x));
        self.op(Op::Max, t, R(x), R(t));
        self.jlt(R(t), K(1.0), "expm1_series");
        self.exp(d, x);
        self.sub(d, R(d), K(1.0));
        self.jlt(K(0.0), K(1.0), "expm1_done");
        self.label("expm1_series");
        self.horner(d, x, &exprel_series());
        self.mul(d, R(x), R(d));
        self.label("expm1_done");
    }

    /// d = ln(m 2^k) for m in [sqrt(2)/2, sqrt(2)) in register m and k (an integral value)
    /// in register k; uses registers 4..=9 (fdlibm's log kernel).
    fn log(&mut self, d: u32, m: u32, k: u32) {
        self.sub(4, R(m), K(1.0)); // f
        self.add(5, K(2.0), R(4));
        self.div(5, R(4), R(5)); // s = f / (2 + f)
        self.mul(6, R(5), R(5)); // z
        self.mul(7, R(6), R(6)); // w
        let c = |b: u64| f64::from_bits(b);
        // t1 = w (Lg2 + w (Lg4 + w Lg6)), t2 = z (Lg1 + w (Lg3 + w (Lg5 + w Lg7))).
        self.horner(
            8,
            7,
            &[
                c(0x3fc39a09d078c69f),
                c(0x3fcc71c51d8e78af),
                c(0x3fd999999997fa04),
            ],
        );
        self.mul(8, R(7), R(8));
        self.horner(
            9,
            7,
            &[
                c(0x3fc2f112df3e5244),
                c(0x3fc7466496cb03de),
                c(0x3fd2492494229359),
                c(0x3fe5555555555593),
            ],
        );
        self.mul(9, R(6), R(9)); // t2
        self.add(8, R(9), R(8)); // R = t2 + t1
        self.mul(9, R(4), R(4));
        self.mul(9, K(0.5), R(9)); // hfsq
        self.add(8, R(9), R(8));
        self.mul(8, R(5), R(8)); // s (hfsq + R)
        self.mul(6, R(k), K(LN2_LO));
        self.add(8, R(8), R(6)); // inner
        self.sub(8, R(9), R(8));
        self.sub(8, R(8), R(4)); // (hfsq - inner) - f
        self.mul(6, R(k), K(LN2_HI));
        self.sub(d, R(6), R(8));
    }
    /// sin(y0 + y1) (q = 0), cos (1), -sin (2) or -cos (3) of the reduced argument
    /// y0 + y1 (|y0| <= pi/4, y1 its tail) in registers 11, 12, for q = the value in
    /// register 13 mod 4, or tan where register 10 is 1; the result in register 0 (uses
    /// 3, 4, 13..15). Taylor series to
    /// y^19 and y^20 (the next terms are below 2^-60 relative), the tail to first order.
    fn sin_cos_kernel(&mut self) {
        let fact = |n: u32| (1..=n).fold(1.0f64, |f, i| f * f64::from(i));
        self.mul(14, R(13), K(0.25));
        self.op(Op::Floor, 14, R(14), R(14));
        self.mul(14, R(14), K(4.0));
        self.sub(13, R(13), R(14)); // q mod 4
        self.mul(14, R(11), R(11)); // z = y0^2
        // sin = y0 + (y0 z Ps(z) + y1), Ps(z) = sum_k>=1 (-1)^k z^(k-1) / (2k+1)!
        let ps: Vec<f64> = (1..=9u32)
            .rev()
            .map(|k| if k % 2 == 1 { -1.0 } else { 1.0 } / fact(2 * k + 1))
            .collect();
        self.horner(15, 14, &ps);
        self.mul(15, R(14), R(15));
        self.mul(15, R(11), R(15));
        self.add(15, R(15), R(12));
        self.add(15, R(11), R(15));
        // cos = 1 - ((z/2 - z^2 Pc(z)) + y0 y1), Pc(z) = sum_k>=2 (-1)^k z^(k-2) / (2k)!
        let pc: Vec<f64> = (2..=10u32)
            .rev()
            .map(|k| if k % 2 == 0 { 1.0 } else { -1.0 } / fact(2 * k))
            .collect();
        self.horner(3, 14, &pc);
        self.mul(3, R(14), R(3));
        self.mul(3, R(14), R(3));
        self.mul(4, K(0.5), R(14));
        self.sub(4, R(4), R(3));
        self.mul(3, R(11), R(12));
        self.add(4, R(4), R(3));
        self.sub(4, K(1.0), R(4));
        // tan: sin/cos in even quadrants, -cos/sin in odd ones.
        self.jlt(R(10), K(0.5), "trig_sin_cos");
        self.jlt(R(13), K(0.5), "tan_even");
        self.jlt(R(13), K(1.5), "tan_odd");
        self.jlt(R(13), K(2.5), "tan_even");
        self.label("tan_odd");
        self.sub(3, K(0.0), R(4));
        self.div(0, R(3), R(15));
        self.jlt(K(0.0), K(1.0), "trig_done");
        self.label("tan_even");
        self.div(0, R(15), R(4));
        self.jlt(K(0.0), K(1.0), "trig_done");
        self.label("trig_sin_cos");
        self.jlt(R(13), K(0.5), "trig_q0");
        self.jlt(R(13), K(1.5), "trig_q1");
        self.jlt(R(13), K(2.5), "trig_q2");
        self.sub(0, K(0.0), R(4));
        self.jlt(K(0.0), K(1.0), "trig_done");
        self.label("trig_q0");
        self.mov(0, R(15));
        self.jlt(K(0.0), K(1.0), "trig_done");
        self.label("trig_q1");
        self.mov(0, R(4));
        self.jlt(K(0.0), K(1.0), "trig_done");
        self.label("trig_q2");
        self.sub(0, K(0.0), R(15));
        self.label("trig_done");
    }
}

const LN2_HI: f64 = f64::from_bits(0x3fe62e42fee00000);
const LN2_LO: f64 = f64::from_bits(0x3dea39ef35793c76);

/// exprel(x) = sum x^n / (n + 1)! for |x| < 1, highest power first: 18 terms leave less
/// than 2^-55.
fn exprel_series() -> Vec<f64> {
    let mut c = Vec::new();
    let mut f = 1.0f64;
    for n in 1..=18 {
        f *= f64::from(n);
        c.push(1.0 / f);
    }
    c.reverse();
    c
}

/// Dekker's splitting constant 2^27 + 1: x = hi + lo with 26-bit halves.
const SPLIT: f64 = 134217729.0;

fn assemble() -> Asm {
    let mut a = Asm::default();

    a.entry("EXP");
    a.exp(0, 0);
    a.end();

    // r0 = m, r1 = k (b2s_log_split).
    a.entry("LOG");
    a.log(0, 0, 1);
    a.end();

    a.entry("EXPREL_SERIES");
    a.horner(1, 0, &exprel_series());
    a.mov(0, R(1));
    a.end();

    // (e^x - 1) / x for |x| >= 1, where the subtraction cancels at most a factor e/(e-1).
    a.entry("EXPREL_EXP");
    a.exp(1, 0);
    a.sub(1, R(1), K(1.0));
    a.div(0, R(1), R(0));
    a.end();

    // e^(y ln x): r0 = m, r1 = k (b2s_log_split of x), r2 = y.
    a.entry("POW");
    a.log(0, 0, 1);
    a.mul(0, R(0), R(2));
    a.exp(0, 0);
    a.end();

    // a^n 2^s (POWI) or a^-n 2^s (POWI_RECIP) for r0 = a (1 <= |a| < 2), r1 = n >= 1,
    // r2 = s: a^n in double-double, (ph, pl) in r5, r6, by Dekker's exact products
    // (a^n < 2^64, so no split overflows), rounded once, then scaled.
    a.entry("POWI_RECIP");
    a.mov(15, K(1.0));
    a.jlt(K(0.0), K(1.0), "powi_start");
    a.entry("POWI");
    a.mov(15, K(0.0));
    a.label("powi_start");
    a.split(3, 4, 0); // (ah, al)
    a.mov(5, R(0));
    a.mov(6, K(0.0));
    a.mov(7, K(1.0)); // i
    a.label("powi_top");
    a.jlt(R(7), R(1), "powi_step");
    a.jlt(K(0.0), K(1.0), "powi_done");
    a.label("powi_step");
    a.mul(8, R(5), R(0)); // th = ph a
    a.split(10, 11, 5);
    a.product_error(9, 8, (10, 11), (R(3), R(4)), 12); // tl: ph a = th + tl exactly
    a.mul(12, R(6), R(0));
    a.add(9, R(9), R(12)); // + pl a
    a.add(5, R(8), R(9));
    a.sub(12, R(5), R(8));
    a.sub(6, R(9), R(12)); // (ph, pl) = fast two-sum (th, tl)
    a.add(7, R(7), K(1.0));
    a.jlt(K(0.0), K(1.0), "powi_top");
    a.label("powi_done");
    a.add(0, R(5), R(6));
    a.jlt(R(15), K(0.5), "powi_scale");
    a.div(0, K(1.0), R(0));
    a.label("powi_scale");
    a.op(Op::Ldexp, 0, R(0), R(2));
    a.end();

    // expm1 (|x| <= 40; b2s_expm1 sorts out the rest).
    a.entry("EXPM1");
    a.expm1(1, 0, 2);
    a.mov(0, R(1));
    a.end();

    // log1p(x) = ln u - ((u - 1) - x) / u with u = 1 + x rounded: r0, r1 = m, k of u,
    // r2 = x.
    a.entry("LOG1P");
    a.log(0, 0, 1);
    a.add(3, K(1.0), R(2));
    a.sub(10, R(3), K(1.0));
    a.sub(10, R(10), R(2));
    a.div(10, R(10), R(3));
    a.sub(0, R(0), R(10));
    a.end();

    // log10 = ln x / ln 10: r0, r1 = m, k.
    a.entry("LOG10");
    a.log(0, 0, 1);
    a.mul(0, R(0), K(std::f64::consts::LOG10_E));
    a.end();

    // sinh, cosh, tanh of a = |x| in r0 (2^-28 <= a; the callers sort out the ends):
    // sinh a = (E + E / (E + 1)) / 2 with E = e^a - 1 (no cancellation), cosh a =
    // (e^a + e^-a) / 2, tanh a = E / (E + 2) with E = e^(2a) - 1; e^a / 2 beyond 22.
    let half_sum_or_big = |a: &mut Asm, name: &'static str, sum: &dyn Fn(&mut Asm)| {
        a.entry(name);
        a.jlt(K(22.0), R(0), "big");
        sum(a); // into r2
        a.mul(0, R(2), K(0.5));
        a.jlt(K(0.0), K(1.0), "done");
        a.label("big");
        a.exp_scaled(0, 0, -1.0);
        a.label("done");
        a.end();
    };
    half_sum_or_big(&mut a, "SINH", &|a| {
        a.expm1(1, 0, 2);
        a.add(2, R(1), K(1.0));
        a.div(2, R(1), R(2));
        a.add(2, R(1), R(2));
    });
    half_sum_or_big(&mut a, "COSH", &|a| {
        a.exp(1, 0);
        a.div(2, K(1.0), R(1));
        a.add(2, R(1), R(2));
    });
    a.entry("TANH");
    a.mul(1, R(0), K(2.0));
    a.expm1(2, 1, 3);
    a.add(3, R(2), K(2.0));
    a.div(0, R(2), R(3));
    a.end();

    // sin/cos after Payne-Hanek (b2s_rem_pio2_large): r0 + r1 = f, the fraction of
    // x 2/pi, r2 = q: y = f pi/2 in double-double (Dekker's exact product with pi/2's
    // leading double, split here on the host).
    let pio2_hi = f64::from_bits(0x3ff921fb54442d18);
    let pio2_lo = f64::from_bits(0x3c91a62633145c07);
    let c = SPLIT * pio2_hi;
    let (ph, pl) = (c - (c - pio2_hi), pio2_hi - (c - (c - pio2_hi)));
    a.entry("TRIG_PH");
    a.mul(11, R(0), K(pio2_hi)); // h
    a.split(3, 4, 0);
    a.product_error(12, 11, (3, 4), (K(ph), K(pl)), 5); // e: f_hi pio2_hi = h + e exactly
    a.mul(5, R(0), K(pio2_lo));
    a.add(12, R(12), R(5));
    a.mul(5, R(1), K(pio2_hi));
    a.add(12, R(12), R(5));
    a.add(5, R(11), R(12)); // y0 = h + e
    a.sub(6, R(5), R(11));
    a.sub(12, R(12), R(6)); // y1 = e - (y0 - h)
    a.mov(11, R(5));
    a.mov(13, R(2));
    // r2 = q + 8 asks for tan (r10 = 1; sin and cos have q + 0, q + 1 <= 4).
    a.mov(10, K(0.0));
    a.jlt(R(2), K(7.5), "trig_kernel");
    a.mov(10, K(1.0));
    a.jlt(K(0.0), K(1.0), "trig_kernel");
    // sin/cos for 0 <= r0 < 2^20 (r1 = the quadrant shift, 1 for cos): x - n pi/2 with
    // pi/2 = p1 + p2 + p3 + p3t (fdlibm's pieces: 33 bits each, so that n * piece is exact
    // for n < 2^20), summed by error-free two-sums into y0 + y1.
    a.entry("TRIG_CW");
    let k = |b: u64| K(f64::from_bits(b));
    a.mul(10, R(0), k(0x3fe45f306dc9c883)); // 2/pi
    a.add(10, R(10), K(0.5));
    a.op(Op::Floor, 10, R(10), R(10)); // n
    a.mul(11, R(10), k(0x3ff921fb54400000));
    a.sub(11, R(0), R(11)); // s = x - n p1, exact
    a.mov(12, K(0.0)); // the error terms
    for piece in [0x3dd0b4611a600000, 0x3ba3198a2e000000] {
        a.mul(4, R(10), k(piece)); // w = n piece, exact
        a.sub(5, R(11), R(4)); // s' = s - w
        a.sub(6, R(5), R(11)); // bb = s' - s
        a.sub(7, R(5), R(6));
        a.sub(7, R(11), R(7)); // s - (s' - bb)
        a.add(8, R(4), R(6));
        a.sub(7, R(7), R(8)); // + (-w - bb): the rounding error of s'
        a.add(12, R(12), R(7));
        a.mov(11, R(5));
    }
    a.mul(4, R(10), k(0x397b839a252049c1));
    a.sub(12, R(12), R(4)); // - n p3t
    a.add(5, R(11), R(12)); // y0
    a.sub(6, R(5), R(11));
    a.sub(12, R(12), R(6)); // y1
    a.mov(11, R(5));
    a.add(13, R(10), R(1)); // q
    // r1 = 8 asks for tan (r10 = 1; q + 8 is q's quadrant).
    a.mov(10, K(0.0));
    a.jlt(R(1), K(7.5), "trig_kernel");
    a.mov(10, K(1.0));
    a.label("trig_kernel");
    a.sin_cos_kernel();
    a.end();

    a
}

/// The programs as WGSL: `B2S_PROG`, `B2S_K` (private variables: see b2s_run) and one
/// `B2S_PC_<NAME>` per entry point.
pub fn wgsl() -> &'static str {
    static SOURCE: LazyLock<String> = LazyLock::new(|| {
        let a = assemble();
        let mut s = String::new();
        for (name, pc) in &a.entries {
            writeln!(s, "const B2S_PC_{name}: u32 = {pc}u;").unwrap();
        }
        let words: Vec<String> = a.prog.iter().map(|w| format!("{w:#x}u")).collect();
        writeln!(
            s,
            "var<private> B2S_PROG: array<u32, {n}> = array<u32, {n}>({});",
            words.join(", "),
            n = words.len()
        )
        .unwrap();
        let ks: Vec<String> = a
            .consts
            .iter()
            .map(|b| format!("vec2<u32>({:#x}u, {:#x}u)", b & 0xffff_ffff, b >> 32))
            .collect();
        writeln!(
            s,
            "var<private> B2S_K: array<vec2<u32>, {n}> = array<vec2<u32>, {n}>({});",
            ks.join(", "),
            n = ks.len()
        )
        .unwrap();
        s
    });
    &SOURCE
}

#[cfg(test)]
mod tests {
    //! The programs run on the host by a copy of the interpreter over f64: the emulation's
    //! operations round as IEEE float64 does, so this is what the GPU computes (there,
    //! tests/soft_f64.rs checks the WGSL side), with no adapter needed.

    use super::*;

    fn ldexp(y: f64, k: i32) -> f64 {
        let k = k.clamp(-2200, 2200);
        let k1 = k / 2;
        y * 2f64.powi(k1) * 2f64.powi(k - k1)
    }

    fn run(a: &Asm, entry: &str, input: [f64; 3]) -> f64 {
        let mut pc = a.entries.iter().find(|(n, _)| *n == entry).unwrap().1;
        let mut r = [0.0f64; 16];
        r[..3].copy_from_slice(&input);
        let operand = |r: &[f64; 16], i: u32| {
            if i < 16 {
                r[i as usize]
            } else {
                f64::from_bits(a.consts[i as usize - 16])
            }
        };
        for _ in 0..100_000 {
            let ins = a.prog[pc];
            pc += 1;
            let (op, d) = (ins & 0xf, ((ins >> 4) & 0xf) as usize);
            let x = operand(&r, (ins >> 8) & 0xff);
            let y = operand(&r, (ins >> 16) & 0xff);
            r[d] = match op {
                0 => return r[0],
                1 => x + y,
                2 => x - y,
                3 => x * y,
                4 => x / y,
                5 => x.floor(),
                6 => ldexp(x, y as i32),
                7 => {
                    if y < x {
                        y
                    } else {
                        x
                    }
                }
                8 => {
                    if x < y {
                        y
                    } else {
                        x
                    }
                }
                9 => {
                    if x < y {
                        pc = (pc as i64 + i64::from((ins as i32) >> 24)) as usize;
                    }
                    continue;
                }
                _ => unreachable!(),
            };
        }
        panic!("{entry} did not end");
    }

    fn ulps(got: f64, want: f64) -> u64 {
        if got.is_nan() && want.is_nan() {
            return 0;
        }
        if got.is_infinite() || want.is_infinite() || (got < 0.0) != (want < 0.0) {
            return if got == want { 0 } else { u64::MAX };
        }
        got.to_bits().abs_diff(want.to_bits())
    }

    /// A deterministic spread of values in [lo, hi].
    fn spread(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f64> {
        (0..n).map(move |i| lo + (hi - lo) * ((i as f64 * 0.618_033_988_749_895) % 1.0))
    }

    #[test]
    fn programs_end_and_jumps_stay_inside() {
        let a = assemble();
        assert!(a.prog.len() < 1024 && a.consts.len() < 240);
        for &(name, start) in &a.entries {
            let end = start + a.prog[start..].iter().position(|&w| w & 0xf == 0).unwrap();
            for (at, &w) in a.prog.iter().enumerate().take(end).skip(start) {
                if w & 0xf == Op::Jlt as u32 {
                    let to = at as i64 + 1 + i64::from((w as i32) >> 24);
                    assert!(
                        to > at as i64 - 128 && to <= end as i64,
                        "{name}: jump at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn exp_and_log() {
        let a = assemble();
        for x in spread(-750.0, 715.0, 20_000).chain([0.0, -0.0, 1e-300, -1e-20]) {
            assert!(ulps(run(&a, "EXP", [x; 3]), x.exp()) <= 1, "exp({x})");
        }
        assert_eq!(run(&a, "EXP", [f64::INFINITY; 3]), f64::INFINITY);
        assert_eq!(run(&a, "EXP", [f64::NEG_INFINITY; 3]), 0.0);
        assert!(run(&a, "EXP", [f64::NAN; 3]).is_nan());
        for x in spread(
            std::f64::consts::FRAC_1_SQRT_2,
            std::f64::consts::SQRT_2,
            20_000,
        ) {
            for k in [-1074.0, -30.0, 0.0, 1.0, 1023.0] {
                let want = x.ln() + k * std::f64::consts::LN_2;
                assert!(
                    ulps(run(&a, "LOG", [x, k, 0.0]), want) <= 1,
                    "log({x} 2^{k})"
                );
            }
        }
    }

    #[test]
    fn sin_and_cos_below_2_20() {
        let a = assemble();
        for x in spread(0.0, 1048575.0, 20_000).chain(spread(0.0, 7.0, 20_000)) {
            assert!(
                ulps(run(&a, "TRIG_CW", [x, 0.0, x]), x.sin()) <= 1,
                "sin({x})"
            );
            let g = run(&a, "TRIG_CW", [x, 1.0, x]);
            assert!(
                ulps(g, x.cos()) <= 1,
                "cos({x}) = {g:e}, want {:e}",
                x.cos()
            );
        }
    }

    #[test]
    fn expm1_log_family_and_hyperbolic() {
        let a = assemble();
        for x in spread(-40.0, 40.0, 20_000).chain(spread(-1e-3, 1e-3, 5_000)) {
            if x != 0.0 {
                assert!(
                    ulps(run(&a, "EXPM1", [x; 3]), x.exp_m1()) <= 3,
                    "expm1({x})"
                );
            }
        }
        // u = m 2^k with m in [sqrt(2)/2, sqrt(2)) (normal u), as b2s_log_split.
        let log_split = |u: f64| {
            let k = ((u.to_bits() >> 52) & 0x7ff) as i32 - 1023;
            let m = f64::from_bits((u.to_bits() & !(0x7ff << 52)) | (1023 << 52));
            if m > std::f64::consts::SQRT_2 {
                (m / 2.0, f64::from(k + 1))
            } else {
                (m, f64::from(k))
            }
        };
        for x in spread(-0.999, 1e5, 20_000).chain(spread(-1e-6, 1e-6, 5_000)) {
            if x.abs() >= 2f64.powi(-54) {
                let (m, k) = log_split(1.0 + x);
                assert!(
                    ulps(run(&a, "LOG1P", [m, k, x]), x.ln_1p()) <= 2,
                    "log1p({x})"
                );
            }
            if x > 0.0 {
                let (m, k) = log_split(x);
                assert!(
                    ulps(run(&a, "LOG10", [m, k, x]), x.log10()) <= 2,
                    "log10({x})"
                );
            }
        }
        for x in spread(2f64.powi(-28), 710.0, 20_000).chain(spread(2f64.powi(-28), 2.0, 5_000)) {
            assert!(ulps(run(&a, "SINH", [x; 3]), x.sinh()) <= 3, "sinh({x})");
            assert!(ulps(run(&a, "COSH", [x; 3]), x.cosh()) <= 3, "cosh({x})");
            if x <= 22.0 {
                assert!(ulps(run(&a, "TANH", [x; 3]), x.tanh()) <= 3, "tanh({x})");
            }
        }
    }

    #[test]
    fn exprel_and_pow() {
        let a = assemble();
        for x in spread(-1.0, 1.0, 20_000) {
            if x != 0.0 {
                let got = run(&a, "EXPREL_SERIES", [x; 3]);
                assert!(ulps(got, x.exp_m1() / x) <= 2, "exprel({x})");
            }
        }
        for x in spread(1.0, 700.0, 10_000).chain(spread(-745.0, -1.0, 10_000)) {
            let got = run(&a, "EXPREL_EXP", [x; 3]);
            assert!(ulps(got, x.exp_m1() / x) <= 2, "exprel({x})");
        }
        // a^n 2^s and its reciprocal, as b2s_pow calls them (1 <= |a| < 2).
        for a0 in spread(1.0, 2.0, 5_000) {
            for n in [1, 2, 3, 4, 7, 64] {
                let want = a0.powf(f64::from(n)) * 2f64.powi(-3 * n);
                let got = run(&a, "POWI", [-a0, f64::from(n), f64::from(-3 * n)]);
                let sign = if n % 2 == 1 { -1.0 } else { 1.0 };
                assert!(ulps(got, sign * want) <= 1, "{a0}^{n}");
                let got = run(&a, "POWI_RECIP", [a0, f64::from(n), f64::from(3 * n)]);
                let want = a0.powf(-f64::from(n)) * 2f64.powi(3 * n);
                assert!(ulps(got, want) <= 1, "{a0}^-{n}");
            }
        }
    }
}
