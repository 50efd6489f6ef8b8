//! Property tests of the optimiser: for many kernels the optimised and the unoptimised
//! interpreter programs must give bit-identical arrays, and no optimised instruction may
//! read the register it writes (the executor takes the destination out of the register
//! file while it reads the operands; a conditional copy reads its destination by design).
//!
//! Kernels come from two sources: a generator of the statement shapes Brian2 hands us
//! (temporaries copied from variables, `_wgpu_where` boolean selects, guarded writes
//! through `conditional_write`, boolean flags written and read back, in-place updates),
//! and the differential test's 10,000 statement sequences (tests/data/diff_cases.jsonl),
//! each run plain and with its written variables guarded by a boolean.

use super::BLOCK;
use super::optimise::{dst, optimise, reads};
use super::program::{Instr, Program, compile_with};
use crate::arrays::{ArrayMut, RunArgs};
use crate::ir::{KernelSpec, Type, Value, VariableSpec, lower};

/// Small deterministic generator (xorshift64*), shared with `fold_props`.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<'a>(&mut self, xs: &'a [String]) -> &'a str {
        &xs[self.below(xs.len())]
    }
}

#[derive(Clone)]
enum Data {
    B(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    None,
}

impl Data {
    fn bits(&self) -> Vec<u64> {
        match self {
            Data::B(v) => v.iter().map(|&x| x as u64).collect(),
            Data::I32(v) => v.iter().map(|&x| x as u32 as u64).collect(),
            Data::I64(v) => v.iter().map(|&x| x as u64).collect(),
            Data::F32(v) => v.iter().map(|&x| x.to_bits() as u64).collect(),
            Data::F64(v) => v.iter().map(|&x| x.to_bits()).collect(),
            Data::None => vec![],
        }
    }
    fn as_mut(&mut self) -> ArrayMut<'_> {
        match self {
            Data::B(v) => ArrayMut::Bool(v),
            Data::I32(v) => ArrayMut::I32(v),
            Data::I64(v) => ArrayMut::I64(v),
            Data::F32(v) => ArrayMut::F32(v),
            Data::F64(v) => ArrayMut::F64(v),
            Data::None => ArrayMut::None,
        }
    }
}

/// Run `p` over `n` elements on a copy of `inputs`; every array afterwards.
fn run(p: &Program, inputs: &[Data], n: usize) -> Vec<Vec<u64>> {
    let mut data = inputs.to_vec();
    let mut arrays: Vec<ArrayMut> = data.iter_mut().map(Data::as_mut).collect();
    p.run(
        &mut arrays,
        &RunArgs {
            n,
            step: 7,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", p.name));
    drop(arrays);
    data.iter().map(Data::bits).collect()
}

/// Compile `spec` with and without the optimiser, run both, compare. Returns false when
/// the spec does not lower (the generator may produce ill-typed code; skipped).
fn check(spec: &KernelSpec, inputs: &[Data], n: usize) -> bool {
    let Ok(k) = lower(spec) else { return false };
    let Ok(plain) = compile_with(&k, &[]) else {
        return false;
    };
    let mut opt = plain.clone();
    optimise(&mut opt);
    for i in &opt.body {
        if let Some(d) = dst(i)
            && !matches!(i, Instr::CondCopy { .. })
        {
            assert!(
                !reads(i).contains(&d),
                "{i:?} reads its destination\n{}\n{:#?}",
                spec.vector_code,
                opt.body
            );
        }
        if let Instr::CondCopy { dst, src, cond } = i {
            assert!(
                dst != src && dst != cond,
                "{i:?}: no-op or self-guarded conditional copy\n{}",
                spec.vector_code
            );
        }
    }
    let results = |p: &Program| {
        std::panic::catch_unwind(|| run(p, inputs, n)).unwrap_or_else(|_| {
            panic!(
                "panicked running\n{}\n{}\n{:#?}",
                spec.scalar_code, spec.vector_code, p.body
            )
        })
    };
    assert_eq!(
        results(&plain),
        results(&opt),
        "optimised program differs\n{}\n{}\nplain {:#?}\noptimised {:#?}",
        spec.scalar_code,
        spec.vector_code,
        plain.body,
        opt.body
    );
    true
}

fn values(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| (rng.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
        .collect()
}

/// One random kernel in the shapes Brian2's templates produce.
fn generated(rng: &mut Rng, n: usize) -> (KernelSpec, Vec<Data>) {
    let floats: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let flags: Vec<String> = ["g", "h"].map(String::from).to_vec();
    let mut vars = Vec::new();
    let mut inputs = Vec::new();
    for name in &floats {
        let mut v = VariableSpec::array(name, Type::F64);
        if rng.chance(0.6) {
            v.conditional_write = Some(rng.pick(&flags).to_string());
        }
        vars.push(v);
        inputs.push(Data::F64(values(rng, n)));
    }
    for (i, name) in flags.iter().enumerate() {
        let mut v = VariableSpec::array(name, Type::Bool);
        // A flag guarded by the other one, as the threshold's not_refractory by _cond.
        if i == 1 && rng.chance(0.3) {
            v.conditional_write = Some(flags[0].clone());
        }
        vars.push(v);
        let p = 0.2 + 0.6 * (rng.below(100) as f64 / 100.0);
        inputs.push(Data::B(
            (0..n).map(|_| rng.chance(p) as u8).collect::<Vec<u8>>(),
        ));
    }
    let mut s = VariableSpec::array("s", Type::F64);
    s.index = "0".into();
    vars.push(s);
    inputs.push(Data::F64(values(rng, 1)));
    let mut k = VariableSpec::array("k", Type::F64);
    k.constant = Some(Value::F64(0.25));
    vars.push(k);
    inputs.push(Data::None);

    let mut ftemps: Vec<String> = Vec::new();
    let mut btemps: Vec<String> = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..2 + rng.below(9) {
        let fexpr =
            |rng: &mut Rng, ft: &[String], bt: &[String]| fexpr(rng, &floats, ft, &flags, bt, 2);
        let line = match rng.below(9) {
            0 | 1 => {
                let t = format!("_f{}", ftemps.len());
                // A plain copy of a variable half the time (`_x := x` before `x = _x`).
                let e = if rng.chance(0.5) {
                    rng.pick(&floats).to_string()
                } else {
                    fexpr(rng, &ftemps, &btemps)
                };
                ftemps.push(t.clone());
                format!("{t} := {e}")
            }
            2 => {
                let t = format!("_b{}", btemps.len());
                let e = bexpr(rng, &floats, &ftemps, &flags, &btemps, 1);
                btemps.push(t.clone());
                format!("{t} := {e}")
            }
            3 => {
                let v = rng.pick(&floats);
                let src = if !ftemps.is_empty() && rng.chance(0.7) {
                    rng.pick(&ftemps).to_string()
                } else {
                    rng.pick(&floats).to_string()
                };
                format!("{v} = {src}")
            }
            4 => {
                let v = rng.pick(&floats);
                let c = bexpr(rng, &floats, &ftemps, &flags, &btemps, 1);
                let (x, y) = (fexpr(rng, &ftemps, &btemps), fexpr(rng, &ftemps, &btemps));
                format!("{v} = _wgpu_where({c}, {x}, {y})")
            }
            5 => {
                let v = rng.pick(&floats);
                format!("{v} += {}", fexpr(rng, &ftemps, &btemps))
            }
            6 => {
                let g = rng.pick(&flags);
                let e = if rng.chance(0.3) {
                    "False".to_string()
                } else {
                    bexpr(rng, &floats, &ftemps, &flags, &btemps, 1)
                };
                format!("{g} = {e}")
            }
            _ => {
                let v = rng.pick(&floats);
                format!("{v} = {}", fexpr(rng, &ftemps, &btemps))
            }
        };
        lines.push(line);
    }
    let mut spec = KernelSpec::vector("stateupdate", vars, &lines.join("\n"));
    if rng.chance(0.5) {
        spec.scalar_code = "_lio_1 := s * k\n_lio_2 := exp(s)".into();
        spec.vector_code = spec.vector_code.replace("k)", "_lio_1)");
    }
    (spec, inputs)
}

fn fexpr(
    rng: &mut Rng,
    floats: &[String],
    ftemps: &[String],
    flags: &[String],
    btemps: &[String],
    depth: u32,
) -> String {
    let leaf = depth == 0 || rng.chance(0.35);
    if leaf {
        return match rng.below(5) {
            0 if !ftemps.is_empty() => rng.pick(ftemps).to_string(),
            1 => ["s", "k", "0.5", "-1.25"][rng.below(4)].to_string(),
            _ => rng.pick(floats).to_string(),
        };
    }
    let sub = |rng: &mut Rng| fexpr(rng, floats, ftemps, flags, btemps, depth - 1);
    match rng.below(6) {
        0 => format!("({} + {})", sub(rng), sub(rng)),
        1 => format!("({} - {})", sub(rng), sub(rng)),
        2 => format!("({} * {})", sub(rng), sub(rng)),
        3 => format!("(-{})", sub(rng)),
        4 => format!("exp({})", sub(rng)),
        _ => {
            let c = bexpr(rng, floats, ftemps, flags, btemps, depth - 1);
            format!("_wgpu_where({c}, {}, {})", sub(rng), sub(rng))
        }
    }
}

fn bexpr(
    rng: &mut Rng,
    floats: &[String],
    ftemps: &[String],
    flags: &[String],
    btemps: &[String],
    depth: u32,
) -> String {
    let f = |rng: &mut Rng| fexpr(rng, floats, ftemps, flags, btemps, 0);
    match rng.below(5) {
        0 if !btemps.is_empty() => rng.pick(btemps).to_string(),
        1 => rng.pick(flags).to_string(),
        2 if depth > 0 => format!(
            "({} and {})",
            bexpr(rng, floats, ftemps, flags, btemps, depth - 1),
            bexpr(rng, floats, ftemps, flags, btemps, depth - 1)
        ),
        3 if depth > 0 => format!(
            "(not {})",
            bexpr(rng, floats, ftemps, flags, btemps, depth - 1)
        ),
        _ => format!("({} > {})", f(rng), f(rng)),
    }
}

#[test]
fn generated_kernels_agree_optimised_and_not() {
    let mut rng = Rng(0x005E_ED0F_B21A_u64);
    let n = 2 * BLOCK + 77;
    let mut checked = 0;
    for _ in 0..3000 {
        let (spec, inputs) = generated(&mut rng, n);
        checked += check(&spec, &inputs, n) as usize;
    }
    // Nearly all generated kernels lower; a generator that stopped producing valid
    // code would otherwise pass vacuously.
    assert!(
        checked > 2500,
        "only {checked} of 3000 generated kernels lowered"
    );
}

/// The kernel that panicked the interpreter in issue 12: a zero derivative under
/// `(unless refractory)` (`_x := x` then a guarded `x = _x`).
#[test]
fn guarded_write_of_an_unchanged_copy() {
    let guarded = |n: &str| {
        let mut v = VariableSpec::array(n, Type::F64);
        v.conditional_write = Some("not_refractory".into());
        v
    };
    let vars = vec![
        guarded("x"),
        guarded("v"),
        VariableSpec::array("not_refractory", Type::Bool),
    ];
    let spec = KernelSpec::vector(
        "stateupdate",
        vars,
        "_v := _wgpu_where(not_refractory, 0.1*(2.0 - v) + v, v)\n_x := x\nv = _v\nx = _x",
    );
    let n = BLOCK + 3;
    let mut rng = Rng(3);
    let inputs = vec![
        Data::F64(values(&mut rng, n)),
        Data::F64(values(&mut rng, n)),
        Data::B((0..n).map(|i| (i % 3 != 0) as u8).collect()),
    ];
    assert!(check(&spec, &inputs, n));
}

#[test]
fn differential_cases_agree_optimised_and_not_with_and_without_guards() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/diff_cases.jsonl"
    ))
    .unwrap();
    let mut checked = 0;
    let mut rng = Rng(17);
    for line in text.lines() {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let n = case["n"].as_u64().unwrap() as usize;
        let float = if case["float"] == "f32" {
            Type::F32
        } else {
            Type::F64
        };
        let mut vars = Vec::new();
        let mut inputs = Vec::new();
        for inp in case["inputs"].as_array().unwrap() {
            let name = inp["name"].as_str().unwrap();
            let vals = inp["values"].as_array().unwrap();
            let hex = |v: &serde_json::Value| u64::from_str_radix(v.as_str().unwrap(), 16).unwrap();
            let (ty, data) = match inp["dtype"].as_str().unwrap() {
                "bool" => (
                    Type::Bool,
                    Data::B(vals.iter().map(|v| v.as_i64().unwrap() as u8).collect()),
                ),
                "int32" => (
                    Type::I32,
                    Data::I32(vals.iter().map(|v| v.as_i64().unwrap() as i32).collect()),
                ),
                "int64" => (
                    Type::I64,
                    Data::I64(vals.iter().map(|v| v.as_i64().unwrap()).collect()),
                ),
                "float32" => (
                    Type::F32,
                    Data::F32(vals.iter().map(|v| f32::from_bits(hex(v) as u32)).collect()),
                ),
                _ => (
                    Type::F64,
                    Data::F64(vals.iter().map(|v| f64::from_bits(hex(v))).collect()),
                ),
            };
            let mut v = VariableSpec::array(name, ty);
            if inp["scalar"].as_bool() == Some(true) {
                v.index = "0".into();
            }
            vars.push(v);
            inputs.push(data);
        }
        // The guard: a boolean array of its own.
        let guard = "_guard";
        let mut guarded_vars = vars.clone();
        for v in guarded_vars.iter_mut().filter(|v| v.index == "_idx") {
            if rng.chance(0.7) {
                v.conditional_write = Some(guard.into());
            }
        }
        guarded_vars.push(VariableSpec::array(guard, Type::Bool));
        let mut guarded_inputs = inputs.clone();
        guarded_inputs.push(Data::B((0..n).map(|_| rng.chance(0.5) as u8).collect()));
        let code = case["code"].as_str().unwrap();
        for (vars, inputs) in [(vars, inputs), (guarded_vars, guarded_inputs)] {
            let mut spec = KernelSpec::vector("stateupdate", vars, code);
            spec.float = float;
            checked += check(&spec, &inputs, n) as usize;
        }
    }
    assert!(checked >= 19_000, "only {checked} kernels checked");
}
