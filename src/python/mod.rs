//! PyO3 bindings: the `brian2wgpu._engine` extension module.

use std::time::Instant;

use numpy::{PyArray1, PyArrayMethods, PyReadwriteArray1};
use pyo3::exceptions::{PyNotImplementedError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays::{ArrayMut, RunArgs};
use crate::cpu::{CpuError, Program};
use crate::gpu::{self, GpuContext};
use crate::ir::{self, Kernel, Type};
use crate::wgsl;

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
    compiled: Option<wgsl::WgslKernel>,
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

    /// The interpreter's program, one instruction per line (for inspection and tuning).
    #[getter]
    fn program_text(&self) -> String {
        match &self.program {
            Some(p) => {
                let mut out = String::new();
                for (part, instrs) in [
                    ("prologue", &p.prologue),
                    ("body", &p.body),
                    ("epilogue", &p.epilogue),
                ] {
                    out.push_str(&format!("# {part}\n"));
                    for i in instrs.iter() {
                        out.push_str(&format!("{i:?}\n"));
                    }
                }
                out
            }
            None => String::new(),
        }
    }

    /// Run on the CPU interpreter over `n` elements, or over the element indices in `list`
    /// (then `n` is ignored); `arrays` maps variable names to 1-D numpy arrays of the
    /// declared dtypes (updated in place).
    #[pyo3(signature = (arrays, n, seed=0, step=0, list=None))]
    fn run_cpu(
        &self,
        py: Python<'_>,
        arrays: &Bound<'_, PyDict>,
        n: usize,
        seed: u64,
        step: i64,
        list: Option<numpy::PyReadonlyArray1<'_, i32>>,
    ) -> PyResult<()> {
        let prog = self.program.as_ref().ok_or_else(|| {
            PyNotImplementedError::new_err(self.cpu_error.clone().unwrap_or_default())
        })?;
        let list = list.as_ref().map(|l| l.as_slice()).transpose()?;
        let n = list.map_or(n, <[i32]>::len);
        let mut holders = borrow_arrays(&self.kernel, arrays, n)?;
        if let Some(list) = list {
            // The interpreter indexes element arrays by these without checks of its own.
            for (v, h) in self.kernel.vars.iter().zip(&mut holders) {
                if matches!(v.index, ir::Index::Elem) && !matches!(h, Holder::None) {
                    let len = h.view()?.raw().len;
                    if list.iter().any(|&i| i < 0 || i as usize >= len) {
                        return Err(PyValueError::new_err(format!(
                            "element index out of range for '{}' (length {len})",
                            v.name
                        )));
                    }
                }
            }
        }
        let mut views: Vec<ArrayMut> = holders
            .iter_mut()
            .map(Holder::view)
            .collect::<PyResult<_>>()?;
        let args = RunArgs {
            n,
            seed,
            kernel_id: 0,
            step,
            list,
            ..Default::default()
        };
        py.detach(|| prog.run(&mut views, &args)).map_err(cpu_err)
    }

    /// Run once on the GPU (the default adapter) over `n` elements, like `run_cpu`.
    #[pyo3(signature = (arrays, n, seed=0, step=0))]
    fn run_gpu(
        &self,
        py: Python<'_>,
        arrays: &Bound<'_, PyDict>,
        n: usize,
        seed: u64,
        step: i64,
    ) -> PyResult<()> {
        let compiled = self
            .compiled
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("kernel was compiled with wgsl=False"))?;
        let mut holders = borrow_arrays(&self.kernel, arrays, n)?;
        let mut views: Vec<ArrayMut> = holders
            .iter_mut()
            .map(Holder::view)
            .collect::<PyResult<_>>()?;
        let args = RunArgs {
            n,
            seed,
            kernel_id: 0,
            step,
            ..Default::default()
        };
        let kernel = &self.kernel;
        py.detach(|| {
            let ctx = GpuContext::shared()?;
            gpu::run_kernel(ctx, kernel, compiled, &mut views, &args)
        })
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }
}

/// A borrowed numpy array, kept alive while the engine uses its memory.
enum Holder<'py> {
    None,
    F64(PyReadwriteArray1<'py, f64>),
    F32(PyReadwriteArray1<'py, f32>),
    I32(PyReadwriteArray1<'py, i32>),
    I64(PyReadwriteArray1<'py, i64>),
    Bool(PyReadwriteArray1<'py, bool>),
}

impl Holder<'_> {
    fn view(&mut self) -> PyResult<ArrayMut<'_>> {
        let err = |e: numpy::AsSliceError| {
            PyValueError::new_err(format!("arrays must be contiguous: {e}"))
        };
        Ok(match self {
            Holder::None => ArrayMut::None,
            Holder::F64(a) => ArrayMut::F64(a.as_slice_mut().map_err(err)?),
            Holder::F32(a) => ArrayMut::F32(a.as_slice_mut().map_err(err)?),
            Holder::I32(a) => ArrayMut::I32(a.as_slice_mut().map_err(err)?),
            Holder::I64(a) => ArrayMut::I64(a.as_slice_mut().map_err(err)?),
            Holder::Bool(a) => {
                let s = a.as_slice_mut().map_err(err)?;
                // numpy booleans are one byte holding 0 or 1.
                ArrayMut::Bool(unsafe {
                    std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut u8, s.len())
                })
            }
        })
    }
}

fn borrow_arrays<'py>(
    kernel: &Kernel,
    arrays: &Bound<'py, PyDict>,
    n: usize,
) -> PyResult<Vec<Holder<'py>>> {
    let mut out = Vec::new();
    for v in &kernel.vars {
        if matches!(v.kind, ir::VarKind::Constant(_)) || !(v.read || v.written) {
            out.push(Holder::None);
            continue;
        }
        let a = arrays
            .get_item(&v.name)?
            .ok_or_else(|| PyValueError::new_err(format!("no array for variable '{}'", v.name)))?;
        let wrong = |_| {
            PyValueError::new_err(format!(
                "array for '{}' must be a 1-D {} numpy array",
                v.name, v.ty
            ))
        };
        let h = match v.ty {
            Type::F64 => Holder::F64(a.cast::<PyArray1<f64>>().map_err(wrong)?.try_readwrite()?),
            Type::F32 => Holder::F32(a.cast::<PyArray1<f32>>().map_err(wrong)?.try_readwrite()?),
            Type::I32 => Holder::I32(a.cast::<PyArray1<i32>>().map_err(wrong)?.try_readwrite()?),
            Type::I64 => Holder::I64(a.cast::<PyArray1<i64>>().map_err(wrong)?.try_readwrite()?),
            Type::Bool => Holder::Bool(a.cast::<PyArray1<bool>>().map_err(wrong)?.try_readwrite()?),
        };
        let len = a.len()?;
        let need = if matches!(v.index, ir::Index::Elem) {
            n
        } else {
            1
        };
        if len < need {
            return Err(PyValueError::new_err(format!(
                "array for '{}' has {len} elements, the kernel needs {need}",
                v.name
            )));
        }
        out.push(h);
    }
    Ok(out)
}

/// Lower a kernel spec for the interpreter and, with `wgsl=True`, to WGSL.
#[pyfunction]
#[pyo3(signature = (spec, wgsl=true))]
fn compile(spec: PyRef<'_, spec::PyKernelSpec>, wgsl: bool) -> PyResult<CompiledKernel> {
    let spec = &spec.0;
    let t0 = Instant::now();
    let kernel = ir::lower(spec).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let compiled = if wgsl {
        match wgsl::compile(&kernel, &Default::default()) {
            Ok(k) => Some(k),
            Err(e @ wgsl::Error::MissingImplementation { .. }) => {
                return Err(PyNotImplementedError::new_err(e.to_string()));
            }
            Err(e) => return Err(PyRuntimeError::new_err(e.to_string())),
        }
    } else {
        None
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
        wgsl: compiled
            .as_ref()
            .map(|c| c.source.clone())
            .unwrap_or_default(),
        compiled,
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

/// Name filter for the adapter of the shared GPU context (before its first use);
/// returns the name of the adapter in use once created.
#[pyfunction]
#[pyo3(signature = (name=None))]
fn set_adapter(name: Option<String>) {
    GpuContext::set_shared_filter(name.filter(|n| !n.is_empty()));
}

/// Write the WGSL of every GPU pipeline to `dir/<kernel>.wgsl` (None or '' stops).
#[pyfunction]
#[pyo3(signature = (dir=None))]
fn set_dump_shaders(dir: Option<String>) {
    crate::gpu::set_dump_dir(dir.filter(|d| !d.is_empty()).map(Into::into));
}

/// The deadline of every wait for the GPU, in seconds (a device that misses it is
/// abandoned; the next run starts a new one).
#[pyfunction]
fn set_gpu_timeout(seconds: f64) -> PyResult<()> {
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(PyValueError::new_err(format!(
            "the GPU timeout must be a positive number of seconds, not {seconds}"
        )));
    }
    crate::gpu::set_wait_timeout(seconds);
    Ok(())
}

/// Name of the adapter the engine runs on (creates the shared context).
#[pyfunction]
fn current_adapter(py: Python<'_>) -> PyResult<String> {
    py.detach(|| GpuContext::shared().map(|c| c.info.name.clone()))
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    m.add_function(wrap_pyfunction!(list_adapters, m)?)?;
    m.add_function(wrap_pyfunction!(create_pipeline, m)?)?;
    m.add_function(wrap_pyfunction!(set_adapter, m)?)?;
    m.add_function(wrap_pyfunction!(set_dump_shaders, m)?)?;
    m.add_function(wrap_pyfunction!(set_gpu_timeout, m)?)?;
    m.add_function(wrap_pyfunction!(current_adapter, m)?)?;
    m.add_function(wrap_pyfunction!(engine::download_resident, m)?)?;
    m.add_function(wrap_pyfunction!(connect::connect_generator, m)?)?;
    m.add_function(wrap_pyfunction!(connect::copy_counting, m)?)?;
    m.add_class::<connect::CreatedPairs>()?;
    m.add_class::<CompiledKernel>()?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<engine::QueueLayoutPy>()?;
    m.add_class::<schedule::PyOp>()?;
    m.add_class::<spec::PyKernelSpec>()?;
    m.add_class::<spec::PyVariable>()?;
    m.add_class::<spec::PyFunction>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("wgpu_version", env!("BRIAN2WGPU_WGPU_VERSION"))?;
    Ok(())
}

mod connect;
mod engine;
mod schedule;
mod spec;
