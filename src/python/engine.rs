//! The engine as a Python class: kernels, schedule, records, and `run`.

use numpy::{PyArray1, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use super::schedule::PyOp;
use super::spec::PyKernelSpec;
use crate::arrays::RawArray;
use crate::gpu::GpuContext;
use crate::ir::{self, Type};
use crate::runtime::{self, Binding, Clock, Clocks, Engine, Item, RunStatus};

fn engine_err(e: runtime::EngineError) -> PyErr {
    match e {
        runtime::EngineError::Gpu(
            e @ (crate::gpu::GpuError::TooLarge { .. } | crate::gpu::GpuError::OutOfMemory { .. }),
        ) => pyo3::exceptions::PyMemoryError::new_err(format!("wgpu device: {e}")),
        runtime::EngineError::Gpu(e @ crate::gpu::GpuError::Timeout { .. }) => {
            pyo3::exceptions::PyTimeoutError::new_err(format!("wgpu device: {e}"))
        }
        runtime::EngineError::Cpu(crate::cpu::CpuError::Unsupported(m))
        | runtime::EngineError::Unsupported(m) => {
            pyo3::exceptions::PyNotImplementedError::new_err(m)
        }
        e => PyRuntimeError::new_err(e.to_string()),
    }
}

fn dtype_of(a: &Bound<'_, PyUntypedArray>) -> PyResult<Type> {
    let dt = a.dtype();
    let s = dt.str()?.to_string();
    Type::from_name(&s).ok_or_else(|| PyValueError::new_err(format!("unsupported array dtype {s}")))
}

/// Bring back the values a GPU run left on the GPU for `array` (a host array of that run,
/// unchanged since). Returns whether anything was downloaded.
#[pyfunction]
pub(super) fn download_resident(
    py: Python<'_>,
    array: Bound<'_, PyUntypedArray>,
) -> PyResult<bool> {
    if !array.is_c_contiguous() || array.ndim() > 1 {
        return Err(PyValueError::new_err(
            "download_resident: a contiguous 1-D array",
        ));
    }
    let raw = RawArray {
        ptr: unsafe { (*array.as_array_ptr()).fields.data as *mut u8 },
        len: array.len(),
        ty: dtype_of(&array)?,
    };
    py.detach(move || runtime::download_resident(raw))
        .map_err(engine_err)
}

/// What the last GPU run reports (the `gpu_*` methods).
#[derive(Default)]
struct LastGpuRun {
    /// Per schedule item, its dispatches.
    dispatches: Vec<Vec<runtime::Dispatch>>,
    /// GPU memory the monitors held at the end, and array bytes uploaded at the start.
    monitor_bytes: u64,
    uploaded_bytes: u64,
    /// Arrays the run wrote and left on the GPU.
    left_on_gpu: Vec<usize>,
    /// Of the checked arrays, those it found invalid.
    invalid: Vec<usize>,
    /// Batches submitted and compute passes recorded.
    batches: u64,
    compute_passes: u64,
}

/// A network's kernels and schedule, run without Python per step.
#[pyclass(module = "brian2wgpu._engine", name = "Engine")]
pub struct PyEngine {
    engine: Engine,
    /// A GPU run in progress (kept across Python callbacks).
    gpu_run: Option<runtime::GpuRun>,
    /// What the last GPU run reports.
    last: LastGpuRun,
}

#[pymethods]
impl PyEngine {
    #[new]
    fn new() -> Self {
        Self {
            engine: Engine::new(),
            gpu_run: None,
            last: LastGpuRun::default(),
        }
    }

    /// Compile a kernel; `bindings[i]` is ("array", id), ("record", id) or ("none", 0) for
    /// the kernel variable `i` (in the order of `kernel_variables`).
    fn add_kernel(
        &mut self,
        spec: PyRef<'_, PyKernelSpec>,
        bindings: Vec<(String, usize)>,
    ) -> PyResult<usize> {
        let spec = &spec.0;
        let kernel = std::panic::catch_unwind(|| ir::lower(spec))
            .map_err(|p| engine_err(runtime::EngineError::panic(&spec.name, p)))?
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let names: Vec<&str> = kernel.vars.iter().map(|v| v.name.as_str()).collect();
        if names.len() != bindings.len() {
            return Err(PyValueError::new_err(format!(
                "kernel '{}' has variables {names:?}, got {} bindings",
                spec.name,
                bindings.len()
            )));
        }
        let bindings = bindings
            .into_iter()
            .map(|(k, id)| match k.as_str() {
                "array" => Ok(Binding::Array(id)),
                "record" => Ok(Binding::Record(id)),
                "none" => Ok(Binding::None),
                o => Err(PyValueError::new_err(format!("unknown binding kind '{o}'"))),
            })
            .collect::<PyResult<_>>()?;
        let name = kernel.name.clone();
        let engine = &mut self.engine;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.add_kernel(kernel, bindings)
        }))
        .unwrap_or_else(|payload| Err(runtime::EngineError::panic(&name, payload)))
        .map_err(engine_err)
    }

    /// Variable names of a spec in the order the engine binds them (after lowering).
    #[staticmethod]
    fn kernel_variables(spec: PyRef<'_, PyKernelSpec>) -> PyResult<Vec<String>> {
        let kernel = ir::lower(&spec.0).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(kernel
            .vars
            .iter()
            .map(|v| {
                if matches!(v.kind, ir::VarKind::Array) && (v.read || v.written) {
                    v.name.clone()
                } else {
                    String::new()
                }
            })
            .collect())
    }

    fn add_record(&mut self, dtype: &str) -> PyResult<usize> {
        let ty = Type::from_name(dtype)
            .ok_or_else(|| PyValueError::new_err(format!("dtype {dtype}")))?;
        Ok(self.engine.add_record(ty))
    }

    /// A spike queue over `layout` (shared, see [`QueueLayout`]) holding `slots` from
    /// earlier runs (Brian2's `_full_state`); returns its id.
    fn add_queue(
        &mut self,
        layout: &QueueLayoutPy,
        slots: Vec<Vec<i32>>,
        offset: usize,
    ) -> PyResult<usize> {
        let q = runtime::SpikeQueue::with_layout(layout.0.clone(), slots, offset);
        self.engine.queues.push(q);
        Ok(self.engine.queues.len() - 1)
    }

    /// A queue's state after a run: (offset, slots), for Brian2's `_restore_from_full_state`.
    fn queue_state(&self, id: usize) -> PyResult<(usize, Vec<Vec<i32>>)> {
        let q = self
            .engine
            .queues
            .get(id)
            .ok_or_else(|| PyValueError::new_err(format!("no queue {id}")))?;
        Ok((q.offset, q.slots.clone()))
    }

    /// Per clock, the timestep from which the random streams count steps (the network
    /// run's first step): a restored random state then replays the same numbers.
    fn set_step_base(&mut self, base: Vec<i64>) {
        self.engine.step_base = base;
    }

    /// Time every schedule item from now on (Brian2's `profile=True`), or stop timing.
    fn set_profiling(&mut self, on: bool) {
        self.engine.profile = on.then(|| vec![0.0; self.engine.items.len()]);
    }

    /// Seconds spent in each schedule item since `set_profiling(True)`.
    /// Per schedule item, the GPU dispatches it records each time it runs, as
    /// (kernel, workgroup grid or None where the GPU sizes it), for the last gpu run.
    fn gpu_dispatches(&self) -> Vec<Vec<runtime::Dispatch>> {
        self.last.dispatches.clone()
    }

    /// Bytes of GPU memory the last GPU run's monitors held.
    fn gpu_monitor_bytes(&self) -> u64 {
        self.last.monitor_bytes
    }

    /// Bytes of array data the last GPU run uploaded when it started (arrays whose
    /// buffers were kept from the run before are not uploaded again).
    fn gpu_uploaded_bytes(&self) -> u64 {
        self.last.uploaded_bytes
    }

    /// Ids of the arrays the last GPU run wrote and left on the GPU, newer than their
    /// host copies: `download_resident` brings one back (Python's device does so before
    /// any access to it).
    fn gpu_left_on_gpu(&self) -> Vec<usize> {
        self.last.left_on_gpu.clone()
    }

    /// Batches the last GPU run submitted and compute passes it recorded in them (one
    /// per batch, except when profiling).
    fn gpu_compute_passes(&self) -> (u64, u64) {
        (self.last.batches, self.last.compute_passes)
    }

    /// The arrays Brian2 checks for invalid values after a run (integrated variables): a
    /// gpu run checks those it leaves on the GPU there.
    fn set_checked_arrays(&mut self, ids: Vec<usize>) {
        self.engine.checked_arrays = ids;
    }

    /// Of the checked arrays the last gpu run left on the GPU, those holding NaN,
    /// infinities or magnitudes above 1e50.
    fn gpu_invalid_arrays(&self) -> Vec<usize> {
        self.last.invalid.clone()
    }

    fn profiling(&self) -> Vec<f64> {
        self.engine.profile.clone().unwrap_or_default()
    }

    /// The schedule: (clock index, operation) in Brian2's order.
    fn set_schedule(&mut self, items: Vec<(usize, PyRef<'_, PyOp>)>) {
        self.engine.items = items
            .into_iter()
            .map(|(clock, op)| Item {
                clock,
                op: op.0.clone(),
            })
            .collect();
    }

    /// What each array of the next run is, for error messages (by array id).
    fn set_array_names(&mut self, names: Vec<String>) {
        self.engine.array_names = names;
    }

    #[setter]
    fn set_seed(&mut self, seed: u64) {
        self.engine.seed = seed;
    }

    #[getter]
    fn get_seed(&self) -> u64 {
        self.engine.seed
    }

    /// The most seconds per step this network's gpu runs have taken (carried from run to
    /// run by the device): the waits' deadlines follow it.
    #[setter]
    fn set_gpu_step_seconds(&mut self, seconds: f64) {
        self.engine.gpu_step_seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
    }

    #[getter]
    fn get_gpu_step_seconds(&self) -> f64 {
        self.engine.gpu_step_seconds
    }

    /// Take a record's data as a numpy array (the record is emptied).
    fn take_record<'py>(&mut self, py: Python<'py>, id: usize) -> PyResult<Bound<'py, PyAny>> {
        if id >= self.engine.records.len() {
            return Err(PyValueError::new_err(format!(
                "no record {id} (the engine has {})",
                self.engine.records.len()
            )));
        }
        let rec = self.engine.take_record(id);
        Ok(match rec.ty {
            Type::F64 => PyArray1::from_vec(py, bytemuck::pod_collect_to_vec::<u8, f64>(&rec.data))
                .into_any(),
            Type::F32 => PyArray1::from_vec(py, bytemuck::pod_collect_to_vec::<u8, f32>(&rec.data))
                .into_any(),
            Type::I32 => PyArray1::from_vec(py, bytemuck::pod_collect_to_vec::<u8, i32>(&rec.data))
                .into_any(),
            Type::I64 => PyArray1::from_vec(py, bytemuck::pod_collect_to_vec::<u8, i64>(&rec.data))
                .into_any(),
            Type::Bool => {
                PyArray1::from_vec(py, rec.data.iter().map(|b| *b != 0).collect::<Vec<bool>>())
                    .into_any()
            }
        })
    }

    /// Run on the CPU. `arrays`: contiguous 1-D numpy arrays by id; `clocks`: list of
    /// (dt, timestep, i_end, t_array_id | None, timestep_array_id | None, EventClock times
    /// | None). `should_stop`
    /// is called with the leading clock's timestep every `check_every` steps and returns
    /// True to stop. Returns (status, callback index or -1, [timestep per clock]).
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    /// `versions` (gpu): per array, the version of its host copy; an array whose buffer
    /// from the previous gpu run has the same version is not uploaded again (0: always
    /// upload).
    #[pyo3(signature = (arrays, clocks, should_stop, check_every, backend="cpu", steps_hint=1000, versions=None))]
    fn run(
        &mut self,
        py: Python<'_>,
        arrays: Vec<Bound<'_, PyUntypedArray>>,
        clocks: Vec<(
            f64,
            i64,
            i64,
            Option<usize>,
            Option<usize>,
            Option<Vec<f64>>,
        )>,
        should_stop: Bound<'_, PyAny>,
        check_every: usize,
        backend: &str,
        steps_hint: usize,
        versions: Option<Vec<u64>>,
    ) -> PyResult<(String, i64, Vec<i64>)> {
        let versions = versions.unwrap_or_default();
        if !versions.is_empty() && versions.len() != arrays.len() {
            return Err(PyValueError::new_err(format!(
                "{} versions for {} arrays",
                versions.len(),
                arrays.len()
            )));
        }
        let mut raws = Vec::with_capacity(arrays.len());
        for a in &arrays {
            if !a.is_c_contiguous() || a.ndim() > 1 {
                return Err(PyValueError::new_err(
                    "engine arrays must be contiguous 1-D arrays",
                ));
            }
            let ty = dtype_of(a)?;
            let ptr = unsafe { (*a.as_array_ptr()).fields.data as *mut u8 };
            raws.push(RawArray {
                ptr,
                len: a.len(),
                ty,
            });
        }
        self.engine
            .check_run(&raws, clocks.len())
            .map_err(engine_err)?;
        let mut cl = Clocks {
            clocks: clocks
                .into_iter()
                .map(
                    |(dt, timestep, i_end, t_array, timestep_array, times)| Clock {
                        dt,
                        timestep,
                        i_end,
                        t_array,
                        timestep_array,
                        times,
                    },
                )
                .collect(),
        };
        let engine = &mut self.engine;
        // The run's arrays, alive until it returns: kept buffers ahead of them are
        // downloaded if the run fails.
        let alive = raws.clone();
        let versions = &versions;
        let should_stop: Py<PyAny> = should_stop.unbind();
        // The interpreter runs without the GIL; the stop check briefly takes it back.
        let status = {
            let mut stop_err: Option<PyErr> = None;
            let mut should_stop_fn = |c: &Clocks| -> bool {
                Python::attach(|py| {
                    if let Err(e) = py.check_signals() {
                        stop_err = Some(e);
                        return true;
                    }
                    let ts = c.clocks.iter().map(|c| c.timestep).max().unwrap_or(0);
                    match should_stop
                        .bind(py)
                        .call1((ts,))
                        .and_then(|r| r.is_truthy())
                    {
                        Ok(b) => b,
                        Err(e) => {
                            stop_err = Some(e);
                            true
                        }
                    }
                })
            };
            let cl = &mut cl;
            let gpu_run = &mut self.gpu_run;
            let last = &mut self.last;
            last.left_on_gpu.clear();
            last.invalid.clear();
            let gpu = backend == "gpu";
            let r = py.detach(move || -> Result<RunStatus, runtime::EngineError> {
                // Kernels name themselves in a caught panic (runtime::cpu); this catches
                // the rest of the loop, on either backend.
                let loop_name = if gpu { "gpu run loop" } else { "cpu run loop" };
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_backend(
                        engine,
                        gpu_run,
                        last,
                        raws,
                        cl,
                        &mut should_stop_fn,
                        gpu,
                        check_every,
                        steps_hint,
                        versions,
                    )
                }))
                .unwrap_or_else(|payload| {
                    *gpu_run = None;
                    Err(runtime::EngineError::panic(loop_name, payload))
                })
            });
            if r.is_err() || stop_err.is_some() {
                // GPU buffers may be ahead of the host arrays: never reuse them (those that
                // hold a step boundary's state come back first).
                runtime::salvage_resident(&alive, versions);
                self.last.left_on_gpu.clear();
            }
            if let Some(e) = stop_err {
                return Err(e);
            }
            r.map_err(engine_err)?
        };
        let timesteps = cl.clocks.iter().map(|c| c.timestep).collect();
        Ok(match status {
            RunStatus::Finished => ("finished".into(), -1, timesteps),
            RunStatus::Stopped => ("stopped".into(), -1, timesteps),
            RunStatus::Callback { index } => ("callback".into(), index as i64, timesteps),
        })
    }
}

/// One run (or the part of it up to a Python callback) on the chosen backend.
#[allow(clippy::too_many_arguments)]
fn run_backend(
    engine: &mut Engine,
    gpu_run: &mut Option<runtime::GpuRun>,
    last: &mut LastGpuRun,
    raws: Vec<RawArray>,
    cl: &mut Clocks,
    should_stop_fn: &mut dyn FnMut(&Clocks) -> bool,
    gpu: bool,
    check_every: usize,
    steps_hint: usize,
    versions: &[u64],
) -> Result<RunStatus, runtime::EngineError> {
    if !gpu {
        // The interpreter writes host arrays: buffers kept from a gpu run go stale (those
        // ahead of the host come back first).
        runtime::salvage_resident(&raws, versions);
        return unsafe { engine.run_cpu(&raws, cl, should_stop_fn, check_every) };
    }
    let ctx = GpuContext::shared()?;
    match gpu_run {
        // Resuming after a Python callback, which may have changed arrays.
        Some(run) => run.upload_all()?,
        None => {
            let run =
                runtime::GpuRun::new(ctx, engine, raws, cl, steps_hint, check_every, versions)?;
            last.dispatches = run.dispatches();
            last.monitor_bytes = run.monitor_bytes();
            last.uploaded_bytes = run.uploaded;
            *gpu_run = Some(run);
        }
    }
    let run = gpu_run.as_mut().unwrap();
    let status = run.run(engine, cl, should_stop_fn);
    // Records grow during a run: report what they reached.
    last.monitor_bytes = run.monitor_bytes();
    last.batches = run.batches;
    last.compute_passes = run.compute_passes;
    if !matches!(status, Ok(RunStatus::Callback { .. })) {
        if status.is_ok() {
            last.left_on_gpu = std::mem::take(&mut run.left_on_gpu);
            last.invalid = std::mem::take(&mut run.invalid);
        }
        *gpu_run = None;
    }
    status
}

/// A pathway's synapses grouped by source, with delays in steps: built once, shared by
/// every run while the synapses, delays and dt stay as they were (the device keeps it
/// with the [`runtime::queue_fingerprint`] it was built from).
#[pyclass(module = "brian2wgpu._engine", name = "QueueLayout", frozen)]
pub(super) struct QueueLayoutPy(std::sync::Arc<runtime::QueueLayout>);

#[pymethods]
impl QueueLayoutPy {
    /// `sources`: absolute presynaptic index per synapse; `delays`: seconds, one per
    /// synapse or a single one; rounded to steps of `dt` as Brian2 rounds them.
    #[new]
    fn new(
        py: Python<'_>,
        source_start: usize,
        source_stop: usize,
        sources: numpy::PyReadonlyArray1<'_, i32>,
        delays: numpy::PyReadonlyArray1<'_, f64>,
        dt: f64,
    ) -> PyResult<Self> {
        let (sources, delays) = (sources.as_slice()?, delays.as_slice()?);
        let layout = py
            .detach(|| {
                runtime::QueueLayout::from_seconds(source_start, source_stop, sources, delays, dt)
            })
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(QueueLayoutPy(std::sync::Arc::new(layout)))
    }

    /// The hash of what a layout is built from (see `QueueLayout`).
    #[staticmethod]
    fn fingerprint(
        py: Python<'_>,
        source_start: usize,
        source_stop: usize,
        sources: numpy::PyReadonlyArray1<'_, i32>,
        delays: numpy::PyReadonlyArray1<'_, f64>,
        dt: f64,
    ) -> PyResult<u64> {
        let (sources, delays) = (sources.as_slice()?, delays.as_slice()?);
        Ok(
            py.detach(|| {
                runtime::queue_fingerprint(source_start, source_stop, sources, delays, dt)
            }),
        )
    }
}
