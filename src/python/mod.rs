//! PyO3 bindings: the `brian2wgpu._engine` extension module.

use std::time::Instant;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::{PyNotImplementedError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::cpu::{ArrayMut, CpuError, Program, RunArgs};
use crate::gpu::{self, GpuContext};
use crate::ir::{self, FunctionSpec, Kernel, KernelSpec, Type, Value, VariableSpec};
use crate::wgsl;

fn dtype(name: &str) -> PyResult<Type> {
    Type::from_name(name)
        .ok_or_else(|| PyValueError::new_err(format!("unsupported dtype '{name}'")))
}

fn get<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<T> {
    d.get_item(key)?
        .ok_or_else(|| PyValueError::new_err(format!("kernel spec lacks '{key}'")))?
        .extract::<T>()
        .map_err(Into::into)
}

fn opt<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<T>> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(v.extract::<T>().map_err(Into::into)?)),
        _ => Ok(None),
    }
}

fn value(ty: Type, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    Ok(match ty {
        Type::Bool => Value::Bool(v.extract()?),
        Type::I32 => Value::I32(v.extract()?),
        Type::I64 => Value::I64(v.extract()?),
        Type::F32 => Value::F32(v.extract()?),
        Type::F64 => Value::F64(v.extract()?),
    })
}

/// Build a [`KernelSpec`] from the dict the Python side produces.
fn spec_from_dict(d: &Bound<'_, PyDict>) -> PyResult<KernelSpec> {
    let mut variables = Vec::new();
    for v in get::<Bound<PyList>>(d, "variables")?.iter() {
        let v = v.cast_into::<PyDict>()?;
        let ty = dtype(&get::<String>(&v, "dtype")?)?;
        let constant = match v.get_item("value")? {
            Some(c) if !c.is_none() => Some(value(ty, &c)?),
            _ => None,
        };
        variables.push(VariableSpec {
            name: get(&v, "name")?,
            ty,
            index: opt(&v, "index")?.unwrap_or_else(|| "_idx".into()),
            constant,
            conditional_write: opt(&v, "conditional_write")?,
        });
    }
    let mut functions = Vec::new();
    if let Some(fs) = opt::<Bound<PyList>>(d, "functions")? {
        for f in fs.iter() {
            let f = f.cast_into::<PyDict>()?;
            let kind: String = get(&f, "kind")?;
            functions.push(match kind.as_str() {
                "binomial" => FunctionSpec::Binomial {
                    name: get(&f, "name")?,
                    n: get(&f, "n")?,
                    p: get(&f, "p")?,
                },
                "user" => FunctionSpec::User {
                    name: get(&f, "name")?,
                    args: get::<Vec<String>>(&f, "args")?
                        .iter()
                        .map(|a| dtype(a))
                        .collect::<PyResult<_>>()?,
                    ret: dtype(&get::<String>(&f, "ret")?)?,
                    wgsl: opt(&f, "wgsl")?,
                },
                other => {
                    return Err(PyValueError::new_err(format!(
                        "unknown function kind '{other}'"
                    )));
                }
            });
        }
    }
    Ok(KernelSpec {
        name: get(d, "name")?,
        template: opt(d, "template")?.unwrap_or_default(),
        float: dtype(&opt::<String>(d, "float")?.unwrap_or_else(|| "float64".into()))?,
        variables,
        scalar_code: opt(d, "scalar_code")?.unwrap_or_default(),
        vector_code: opt(d, "vector_code")?.unwrap_or_default(),
        functions,
    })
}

fn cpu_err(e: CpuError) -> PyErr {
    match e {
        CpuError::Unsupported(m) => PyNotImplementedError::new_err(m),
        e => PyRuntimeError::new_err(e.to_string()),
    }
}

/// A code object compiled for both backends.
#[pyclass(module = "brian2wgpu._engine", frozen)]
struct CompiledKernel {
    kernel: Kernel,
    program: Option<Program>,
    cpu_error: Option<String>,
    #[pyo3(get)]
    wgsl: String,
    /// Seconds spent in parse → IR → WGSL → naga validation.
    #[pyo3(get)]
    lower_seconds: f64,
}

#[pymethods]
impl CompiledKernel {
    /// Variable names in the order `run_cpu` expects them.
    #[getter]
    fn variables(&self) -> Vec<String> {
        self.kernel.vars.iter().map(|v| v.name.clone()).collect()
    }

    /// Run on the CPU interpreter over `n` elements; `arrays` maps variable names to 1-D
    /// numpy arrays of the declared dtypes (updated in place).
    #[pyo3(signature = (arrays, n, seed=0, step=0))]
    fn run_cpu(
        &self,
        py: Python<'_>,
        arrays: &Bound<'_, PyDict>,
        n: usize,
        seed: u64,
        step: i64,
    ) -> PyResult<()> {
        let prog = self.program.as_ref().ok_or_else(|| {
            PyNotImplementedError::new_err(self.cpu_error.clone().unwrap_or_default())
        })?;
        let mut holders = Vec::new();
        for v in &self.kernel.vars {
            if matches!(v.kind, ir::VarKind::Constant(_)) {
                holders.push(None);
                continue;
            }
            let a = arrays.get_item(&v.name)?.ok_or_else(|| {
                PyValueError::new_err(format!("no array for variable '{}'", v.name))
            })?;
            holders.push(Some(a));
        }
        let mut rw_f64 = Vec::new();
        let mut rw_f32 = Vec::new();
        let mut rw_i32 = Vec::new();
        let mut rw_i64 = Vec::new();
        let mut rw_b = Vec::new();
        let mut kinds = Vec::new();
        for (v, h) in self.kernel.vars.iter().zip(&holders) {
            let Some(a) = h else {
                kinds.push(None);
                continue;
            };
            let wrong = |_| {
                PyValueError::new_err(format!(
                    "array for '{}' must be a contiguous 1-D {} array",
                    v.name, v.ty
                ))
            };
            match v.ty {
                Type::F64 => {
                    rw_f64.push(a.cast::<PyArray1<f64>>().map_err(wrong)?.readwrite());
                    kinds.push(Some((v.ty, rw_f64.len() - 1)))
                }
                Type::F32 => {
                    rw_f32.push(a.cast::<PyArray1<f32>>().map_err(wrong)?.readwrite());
                    kinds.push(Some((v.ty, rw_f32.len() - 1)))
                }
                Type::I32 => {
                    rw_i32.push(a.cast::<PyArray1<i32>>().map_err(wrong)?.readwrite());
                    kinds.push(Some((v.ty, rw_i32.len() - 1)))
                }
                Type::I64 => {
                    rw_i64.push(a.cast::<PyArray1<i64>>().map_err(wrong)?.readwrite());
                    kinds.push(Some((v.ty, rw_i64.len() - 1)))
                }
                Type::Bool => {
                    rw_b.push(a.cast::<PyArray1<bool>>().map_err(wrong)?.readwrite());
                    kinds.push(Some((v.ty, rw_b.len() - 1)))
                }
            }
        }
        let mut f64s: Vec<&mut [f64]> = rw_f64
            .iter_mut()
            .map(|a| a.as_slice_mut())
            .collect::<Result<_, _>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut f32s: Vec<&mut [f32]> = rw_f32
            .iter_mut()
            .map(|a| a.as_slice_mut())
            .collect::<Result<_, _>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut i32s: Vec<&mut [i32]> = rw_i32
            .iter_mut()
            .map(|a| a.as_slice_mut())
            .collect::<Result<_, _>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut i64s: Vec<&mut [i64]> = rw_i64
            .iter_mut()
            .map(|a| a.as_slice_mut())
            .collect::<Result<_, _>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut bs: Vec<&mut [bool]> = rw_b
            .iter_mut()
            .map(|a| a.as_slice_mut())
            .collect::<Result<_, _>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut views: Vec<ArrayMut> = Vec::new();
        // Hand each slice out once, in variable order.
        let (mut it64, mut it32, mut iti32, mut iti64, mut itb) = (
            f64s.iter_mut(),
            f32s.iter_mut(),
            i32s.iter_mut(),
            i64s.iter_mut(),
            bs.iter_mut(),
        );
        for k in &kinds {
            views.push(match k {
                None => ArrayMut::None,
                Some((Type::F64, _)) => ArrayMut::F64(it64.next().unwrap()),
                Some((Type::F32, _)) => ArrayMut::F32(it32.next().unwrap()),
                Some((Type::I32, _)) => ArrayMut::I32(iti32.next().unwrap()),
                Some((Type::I64, _)) => ArrayMut::I64(iti64.next().unwrap()),
                // numpy booleans are one byte, 0 or 1.
                Some((Type::Bool, _)) => {
                    let s: &mut [bool] = itb.next().unwrap();
                    ArrayMut::Bool(unsafe {
                        std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut u8, s.len())
                    })
                }
            });
        }
        for (v, view) in self.kernel.vars.iter().zip(&views) {
            let len = match view {
                ArrayMut::F64(s) => s.len(),
                ArrayMut::F32(s) => s.len(),
                ArrayMut::I32(s) => s.len(),
                ArrayMut::I64(s) => s.len(),
                ArrayMut::Bool(s) => s.len(),
                ArrayMut::None => continue,
            };
            let need = if matches!(v.index, ir::Index::Elem) {
                n
            } else {
                1
            };
            if len < need {
                return Err(PyValueError::new_err(format!(
                    "array for '{}' has {len} elements, needs {need}",
                    v.name
                )));
            }
        }
        let args = RunArgs {
            n,
            seed,
            kernel_id: 0,
            step,
        };
        py.detach(|| prog.run(&mut views, &args)).map_err(cpu_err)
    }
}

/// Lower a kernel spec (a dict) for the interpreter and, with `wgsl=True`, to WGSL.
#[pyfunction]
#[pyo3(signature = (spec, wgsl=true))]
fn compile(spec: &Bound<'_, PyDict>, wgsl: bool) -> PyResult<CompiledKernel> {
    let spec = spec_from_dict(spec)?;
    let t0 = Instant::now();
    let kernel = ir::lower(&spec).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let source = if wgsl {
        match wgsl::compile(&kernel, &Default::default()) {
            Ok(k) => k.source,
            Err(e @ wgsl::Error::MissingImplementation { .. }) => {
                return Err(PyNotImplementedError::new_err(e.to_string()));
            }
            Err(e) => return Err(PyRuntimeError::new_err(e.to_string())),
        }
    } else {
        String::new()
    };
    let lower_seconds = t0.elapsed().as_secs_f64();
    let (program, cpu_error) = match Program::new(&kernel) {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(CompiledKernel {
        kernel,
        program,
        cpu_error,
        wgsl: source,
        lower_seconds,
    })
}

/// Every adapter wgpu sees, best first, as dicts.
#[pyfunction]
fn list_adapters(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    let reports = py.detach(gpu::list_adapters);
    reports
        .into_iter()
        .map(|r| {
            let d = PyDict::new(py);
            d.set_item("name", &r.name)?;
            d.set_item("backend", &r.backend)?;
            d.set_item("device_type", &r.device_type)?;
            d.set_item("driver", &r.driver)?;
            d.set_item("f64", r.f64)?;
            d.set_item("int64", r.i64)?;
            d.set_item("f32_atomics", r.f32_atomics)?;
            d.set_item(
                "max_storage_buffer_binding_size",
                r.max_storage_buffer_binding_size,
            )?;
            d.set_item("max_buffer_size", r.max_buffer_size)?;
            d.set_item(
                "max_storage_buffers_per_shader_stage",
                r.max_storage_buffers_per_shader_stage,
            )?;
            d.set_item(
                "max_compute_invocations_per_workgroup",
                r.max_compute_invocations_per_workgroup,
            )?;
            d.set_item(
                "max_compute_workgroups_per_dimension",
                r.max_compute_workgroups_per_dimension,
            )?;
            d.set_item("summary", r.to_string())?;
            Ok(d)
        })
        .collect()
}

/// Create (once) the GPU context and compile + time a kernel's pipeline on it.
/// Returns the seconds the driver took.
#[pyfunction]
fn create_pipeline(py: Python<'_>, kernel: &CompiledKernel) -> PyResult<f64> {
    let src = kernel.wgsl.clone();
    let name = kernel.kernel.name.clone();
    py.detach(move || {
        let ctx = GpuContext::shared().map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let t0 = Instant::now();
        ctx.pipeline(&name, &src, "main")
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(t0.elapsed().as_secs_f64())
    })
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    m.add_function(wrap_pyfunction!(list_adapters, m)?)?;
    m.add_function(wrap_pyfunction!(create_pipeline, m)?)?;
    m.add_class::<CompiledKernel>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
