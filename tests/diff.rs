//! Differential test: random Brian2 statement sequences (tests/data/diff_cases.jsonl,
//! generated with numpy references by tests/python/exprgen.py) run through the
//! interpreter and through WGSL on the GPU; both must agree with numpy.
//!
//! Tolerances: each case carries a per-element bound from a running first-order error
//! analysis (1 ulp per arithmetic operation, 4 ulp per transcendental, propagated through
//! the derivatives). f64 results must lie within that bound on both backends. f32 on the
//! GPU uses the driver's f32 builtins, whose accuracy Vulkan leaves loose, so f32 GPU
//! results get `F32_GPU_FACTOR` times the bound. NaN and infinite inputs and results are
//! checked like the rest on both backends: an expected NaN must be NaN, an expected inf
//! the same inf.

mod common;

use std::collections::HashMap;

use brian2wgpu::arrays::{ArrayMut, RunArgs};
use brian2wgpu::cpu::Program;
use brian2wgpu::ir::{self, Kernel, KernelSpec, Type, VariableSpec};
use brian2wgpu::wgsl::{self, ARENA_TYPES, PARAM_HEADER};
use serde_json::Value as J;

const F32_GPU_FACTOR: f64 = 8.0;
const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/diff_cases.jsonl");

#[derive(Debug, Clone)]
enum Data {
    B(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Data {
    fn parse(ty: Type, vals: &[J]) -> Data {
        let hex = |v: &J| u64::from_str_radix(v.as_str().expect("float as hex"), 16).unwrap();
        match ty {
            Type::Bool => Data::B(vals.iter().map(|v| v.as_i64().unwrap() as u8).collect()),
            Type::I32 => Data::I32(vals.iter().map(|v| v.as_i64().unwrap() as i32).collect()),
            Type::I64 => Data::I64(vals.iter().map(|v| v.as_i64().unwrap()).collect()),
            Type::F32 => Data::F32(vals.iter().map(|v| f32::from_bits(hex(v) as u32)).collect()),
            Type::F64 => Data::F64(vals.iter().map(|v| f64::from_bits(hex(v))).collect()),
        }
    }
    fn as_mut(&mut self) -> ArrayMut<'_> {
        match self {
            Data::B(v) => ArrayMut::Bool(v),
            Data::I32(v) => ArrayMut::I32(v),
            Data::I64(v) => ArrayMut::I64(v),
            Data::F32(v) => ArrayMut::F32(v),
            Data::F64(v) => ArrayMut::F64(v),
        }
    }
    fn get(&self, i: usize) -> f64 {
        match self {
            Data::B(v) => v[i] as f64,
            Data::I32(v) => v[i] as f64,
            Data::I64(v) => v[i] as f64,
            Data::F32(v) => v[i] as f64,
            Data::F64(v) => v[i],
        }
    }
    fn len(&self) -> usize {
        match self {
            Data::B(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
        }
    }
    /// Bytes as the GPU stores them (bool as u32).
    fn gpu_bytes(&self) -> Vec<u8> {
        match self {
            Data::B(v) => v.iter().flat_map(|b| (*b as u32).to_le_bytes()).collect(),
            Data::I32(v) => bytemuck::cast_slice(v).to_vec(),
            Data::I64(v) => bytemuck::cast_slice(v).to_vec(),
            Data::F32(v) => bytemuck::cast_slice(v).to_vec(),
            Data::F64(v) => bytemuck::cast_slice(v).to_vec(),
        }
    }
    fn from_gpu(ty: Type, bytes: &[u8]) -> Data {
        match ty {
            Type::Bool => Data::B(
                bytemuck::pod_collect_to_vec::<u8, u32>(bytes)
                    .iter()
                    .map(|x| *x as u8)
                    .collect(),
            ),
            Type::I32 => Data::I32(bytemuck::pod_collect_to_vec(bytes)),
            Type::I64 => Data::I64(bytemuck::pod_collect_to_vec(bytes)),
            Type::F32 => Data::F32(bytemuck::pod_collect_to_vec(bytes)),
            Type::F64 => Data::F64(bytemuck::pod_collect_to_vec(bytes)),
        }
    }
}

struct Output {
    name: String,
    ty: Type,
    expected: Data,
    tol: Vec<f64>,
}

struct Case {
    id: i64,
    /// An input or an expected output is NaN or infinite.
    special: bool,
    float: Type,
    n: usize,
    code: String,
    kernel: Kernel,
    inputs: Vec<Data>,
    outputs: Vec<Output>,
}

fn load_cases() -> (Vec<Case>, Vec<String>) {
    let text = std::fs::read_to_string(CASES)
        .expect("tests/data/diff_cases.jsonl (regenerate with tests/python/exprgen.py)");
    let mut cases = Vec::new();
    let mut lower_failures = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let c: J = serde_json::from_str(line).unwrap();
        let float = if c["float"] == "f32" {
            Type::F32
        } else {
            Type::F64
        };
        let n = c["n"].as_u64().unwrap() as usize;
        let code = c["code"].as_str().unwrap().to_string();
        let mut specs = Vec::new();
        let mut inputs = Vec::new();
        for inp in c["inputs"].as_array().unwrap() {
            let ty = Type::from_name(inp["dtype"].as_str().unwrap()).unwrap();
            let mut spec = VariableSpec::array(inp["name"].as_str().unwrap(), ty);
            if inp["scalar"].as_bool().unwrap_or(false) {
                spec.index = "0".into();
            }
            specs.push(spec);
            inputs.push(Data::parse(ty, inp["values"].as_array().unwrap()));
        }
        let outputs: Vec<Output> = c["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let ty = Type::from_name(o["dtype"].as_str().unwrap()).unwrap();
                Output {
                    name: o["name"].as_str().unwrap().into(),
                    ty,
                    expected: Data::parse(ty, o["values"].as_array().unwrap()),
                    tol: o["tol"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| {
                            f64::from_bits(u64::from_str_radix(t.as_str().unwrap(), 16).unwrap())
                        })
                        .collect(),
                }
            })
            .collect();
        let spec = KernelSpec {
            name: format!("case{}", c["id"]),
            template: "stateupdate".into(),
            float,
            variables: specs,
            scalar_code: String::new(),
            vector_code: code.clone(),
            functions: vec![],
        };
        let nonfinite = |d: &Data| -> bool { (0..d.len()).any(|i| !d.get(i).is_finite()) };
        let special =
            inputs.iter().any(nonfinite) || outputs.iter().any(|o: &Output| nonfinite(&o.expected));
        match ir::lower(&spec) {
            Ok(kernel) => cases.push(Case {
                special,
                id: c["id"].as_i64().unwrap(),
                float,
                n,
                code,
                kernel,
                inputs,
                outputs,
            }),
            Err(e) => lower_failures.push(format!("case {}: {e}\n{code}", c["id"])),
        }
    }
    (cases, lower_failures)
}

/// Compare one backend's results with numpy's; returns mismatch descriptions.
fn compare(
    case: &Case,
    results: &HashMap<String, Data>,
    factor: f64,
    backend: &str,
) -> Vec<String> {
    let mut bad = Vec::new();
    for o in &case.outputs {
        let got = &results[&o.name];
        for i in 0..case.n.min(o.expected.len()) {
            let (e, g, tol) = (o.expected.get(i), got.get(i), o.tol[i]);
            let ok = if tol.is_nan() {
                true
            } else if !o.ty.is_float() {
                e == g
            } else if e.is_nan() {
                g.is_nan()
            } else if e.is_infinite() {
                e == g
            } else {
                (g - e).abs() <= tol * factor
            };
            if !ok {
                bad.push(format!(
                    "[{backend}] case {} ({:?}) `{}` element {i} of {}: got {g:e}, numpy {e:e}, tol {tol:e}",
                    case.id,
                    case.float,
                    case.code.replace('\n', "; "),
                    o.name
                ));
            }
        }
    }
    bad
}

fn report(what: &str, checked: usize, bad: &[String]) {
    println!(
        "{what}: {checked} cases, {} mismatching elements",
        bad.len()
    );
    for b in bad.iter().take(25) {
        println!("  {b}");
    }
    assert!(
        bad.is_empty(),
        "{what}: {} mismatches (first shown above)",
        bad.len()
    );
}

#[test]
fn lowering_accepts_every_case() {
    let (cases, failures) = load_cases();
    println!("{} cases lowered, {} failed", cases.len(), failures.len());
    for f in failures.iter().take(20) {
        println!("{f}\n");
    }
    assert!(cases.len() >= 10_000, "expected at least 10,000 cases");
    assert!(failures.is_empty());
}

#[test]
fn interpreter_matches_numpy() {
    let (cases, _) = load_cases();
    let mut bad = Vec::new();
    for case in &cases {
        let prog = Program::new(&case.kernel).unwrap();
        let mut data = case.inputs.clone();
        let mut arrays: Vec<ArrayMut> = data.iter_mut().map(|d| d.as_mut()).collect();
        prog.run(
            &mut arrays,
            &RunArgs {
                n: case.n,
                ..Default::default()
            },
        )
        .unwrap();
        let results: HashMap<String, Data> = case
            .kernel
            .vars
            .iter()
            .zip(data)
            .map(|(v, d)| (v.name.clone(), d))
            .collect();
        bad.extend(compare(case, &results, 1.0, "cpu"));
    }
    report("interpreter", cases.len(), &bad);
}

#[test]
fn every_emitted_module_validates_without_f64_transcendentals() {
    let (cases, _) = load_cases();
    for case in &cases {
        let k = wgsl::compile(&case.kernel, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
        let (module, info) = wgsl::check::validate(&case.kernel.name, &k.source).unwrap();
        let found = wgsl::check::f64_transcendentals(&module, &info);
        assert!(
            found.is_empty(),
            "case {}: builtin transcendental on f64: {found:?}",
            case.id
        );
    }
}

#[test]
fn gpu_matches_numpy() {
    // lavapipe spends most of a pipeline's creation in LLVM's optimisation passes over the
    // inlined f64 library. They cannot change IEEE results (no fast-math flags), so this
    // test skips them (3-4x faster compiles); the driver reads this when it loads.
    if std::env::var_os("GALLIVM_PERF").is_none() {
        // SAFETY: set before any thread of this test binary touches the GPU driver.
        unsafe { std::env::set_var("GALLIVM_PERF", "nopt") };
    }
    let Some(ctx) = common::gpu() else { return };
    let (mut cases, _) = load_cases();
    // Every case runs by default; DIFF_GPU_STRIDE=k runs every k-th, DIFF_GPU_LIMIT cuts.
    let stride: usize = env_or("DIFF_GPU_STRIDE", 1);
    cases = cases.into_iter().step_by(stride.max(1)).collect();
    cases.truncate(env_or("DIFF_GPU_LIMIT", usize::MAX));
    // Small modules: the driver's compile time grows faster than linearly with size.
    let batch: usize = env_or("DIFF_GPU_BATCH", 8);
    // Pipelines compile on the calling thread: one worker per core.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t0 = std::time::Instant::now();
    let chunks: Vec<&[Case]> = cases.chunks(batch.max(1)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let bad = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(chunk) = chunks.get(i) else { break };
                    let m = run_batch(ctx, chunk);
                    bad.lock().unwrap().extend(m);
                }
            });
        }
    });
    let special = cases.iter().filter(|c| c.special).count();
    println!(
        "gpu: {:.1} s for {} cases ({special} with NaN or inf inputs or results) in modules of {batch}, {workers} threads",
        t0.elapsed().as_secs_f64(),
        cases.len()
    );
    let bad = bad.into_inner().unwrap();
    let mut ids: Vec<i64> = bad.iter().map(|(id, _)| *id).collect();
    ids.sort();
    ids.dedup();
    println!("gpu: mismatching cases {ids:?}");
    // Cases that hit a known driver fold (see the file), excused on that driver only.
    let known = known_gpu_mismatches(&ctx.info.name);
    let excused: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| known.contains(id))
        .collect();
    let fixed: Vec<i64> = known
        .iter()
        .copied()
        .filter(|id| !ids.contains(id) && cases.iter().any(|c| c.id == *id))
        .collect();
    println!(
        "gpu: {} known driver folds excused {excused:?}; listed but now agreeing: {fixed:?}",
        excused.len()
    );
    let bad: Vec<String> = bad
        .into_iter()
        .filter(|(id, _)| !known.contains(id))
        .map(|(_, m)| m)
        .collect();
    report("gpu", cases.len(), &bad);
}

/// Case ids of `tests/data/gpu_diff_known.json` when the adapter's name contains the
/// driver named there.
fn known_gpu_mismatches(adapter: &str) -> Vec<i64> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/gpu_diff_known.json"
    );
    let j: J = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let driver = j["adapter_contains"].as_str().unwrap();
    if !adapter.to_lowercase().contains(&driver.to_lowercase()) {
        return Vec::new();
    }
    j["cases"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse().unwrap())
        .collect()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Run a batch of cases as one module (a 2-D dispatch: y selects the case); returns the
/// mismatches.
fn run_batch(ctx: &brian2wgpu::gpu::GpuContext, chunk: &[Case]) -> Vec<(i64, String)> {
    let kernels: Vec<Kernel> = chunk.iter().map(|c| c.kernel.clone()).collect();
    let stride = PARAM_HEADER + 32;
    let src = wgsl::write_batch(&kernels, &Default::default(), stride).unwrap();
    let mut params = vec![0u32; stride as usize * chunk.len()];
    let mut arenas: Vec<Vec<u8>> = vec![Vec::new(); ARENA_TYPES.len()];
    let mut places = Vec::new();
    for (ci, case) in chunk.iter().enumerate() {
        let base = ci * stride as usize;
        params[base] = case.n as u32;
        let mut p = Vec::new();
        for (v, var) in case.kernel.vars.iter().enumerate() {
            let a = ARENA_TYPES.iter().position(|t| *t == var.ty).unwrap();
            let elem = if var.ty == Type::Bool {
                4
            } else {
                var.ty.size()
            };
            let offset = arenas[a].len() / elem;
            params[base + PARAM_HEADER as usize + v] = offset as u32;
            arenas[a].extend(case.inputs[v].gpu_bytes());
            p.push((a, offset * elem, case.inputs[v].len() * elem));
        }
        places.push(p);
    }
    let mut bufs = vec![bytemuck::cast_slice(&params).to_vec()];
    for a in arenas {
        bufs.push(if a.is_empty() { vec![0u8; 8] } else { a });
    }
    let maxn = chunk.iter().map(|c| c.n).max().unwrap() as u32;
    run_2d(ctx, &src, &mut bufs, maxn.div_ceil(64), chunk.len() as u32);
    let mut bad = Vec::new();
    for (ci, case) in chunk.iter().enumerate() {
        let results: HashMap<String, Data> = case
            .kernel
            .vars
            .iter()
            .zip(&places[ci])
            .map(|(var, (a, off, len))| {
                (
                    var.name.clone(),
                    Data::from_gpu(var.ty, &bufs[1 + a][*off..off + len]),
                )
            })
            .collect();
        let factor = if case.float == Type::F32 {
            F32_GPU_FACTOR
        } else {
            1.0
        };
        bad.extend(
            compare(case, &results, factor, "gpu")
                .into_iter()
                .map(|m| (case.id, m)),
        );
    }
    bad
}

/// `run_compute` with a 2-D grid: x covers elements, y selects the kernel.
fn run_2d(ctx: &brian2wgpu::gpu::GpuContext, src: &str, bufs: &mut [Vec<u8>], x: u32, y: u32) {
    ctx.run_compute_grid("diff-batch", src, "main", bufs, [x.max(1), y, 1])
        .unwrap_or_else(|e| panic!("{e}"));
}
