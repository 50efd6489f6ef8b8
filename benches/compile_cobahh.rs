//! `cargo bench --bench compile_cobahh`: parse → IR → WGSL → naga validation of COBAHH's
//! state update (the spec Brian2 generates, saved by benches/compile_cobahh.py), and the
//! driver's pipeline creation beside it. Prints medians.

use std::time::Instant;

use brian2wgpu::gpu::GpuContext;
use brian2wgpu::ir::{self, KernelSpec, Type, Value, VariableSpec};
use brian2wgpu::wgsl;
use serde_json::Value as J;

fn spec_from_json(j: &J) -> KernelSpec {
    let ty = |s: &J| Type::from_name(s.as_str().unwrap()).unwrap();
    KernelSpec {
        name: j["name"].as_str().unwrap().into(),
        template: j["template"].as_str().unwrap_or("").into(),
        float: ty(&j["float"]),
        variables: j["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let t = ty(&v["dtype"]);
                VariableSpec {
                    name: v["name"].as_str().unwrap().into(),
                    ty: t,
                    index: v["index"].as_str().unwrap_or("_idx").into(),
                    constant: v.get("value").map(|c| match c {
                        J::Bool(b) => Value::Bool(*b),
                        c if c.is_i64() => Value::I64(c.as_i64().unwrap()).cast(t),
                        c => Value::F64(c.as_f64().unwrap()).cast(t),
                    }),
                    conditional_write: v["conditional_write"].as_str().map(Into::into),
                }
            })
            .collect(),
        scalar_code: j["scalar_code"].as_str().unwrap_or("").into(),
        vector_code: j["vector_code"].as_str().unwrap_or("").into(),
        functions: vec![],
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/data/cobahh_stateupdate.json"
    );
    let spec =
        spec_from_json(&serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap());
    let mut times = Vec::new();
    let mut source = String::new();
    for _ in 0..200 {
        let t0 = Instant::now();
        let kernel = ir::lower(&spec).unwrap();
        let k = wgsl::compile(&kernel, &Default::default()).unwrap();
        times.push(t0.elapsed().as_secs_f64());
        source = k.source;
    }
    println!(
        "COBAHH state update: parse+IR+WGSL+naga median {:.3} ms over {} runs ({} chars of WGSL)",
        median(times.clone()) * 1e3,
        times.len(),
        source.len()
    );
    match GpuContext::new(None) {
        Ok(ctx) => {
            let mut p = Vec::new();
            for i in 0..5 {
                // A distinct comment defeats the pipeline cache: each is a fresh compile.
                let src = format!("// run {i}\n{source}");
                let t0 = Instant::now();
                ctx.pipeline("cobahh", &src, "main").unwrap();
                p.push(t0.elapsed().as_secs_f64());
            }
            println!(
                "pipeline creation on '{}': median {:.1} ms over {} runs",
                ctx.info.name,
                median(p.clone()) * 1e3,
                p.len()
            );
        }
        Err(e) => println!("pipeline creation: no adapter ({e})"),
    }
}
