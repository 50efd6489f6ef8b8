//! The engine: a network's kernels, its schedule over several clocks, monitor records, and
//! the run loop (no Python per step). Backends execute the schedule's operations.

mod cable;
mod clocks;
pub mod connect;
mod cpu;
mod gpu;
pub mod gsl;
mod queue;

pub use cable::CableArrays;
pub use clocks::{Clock, Clocks};
pub use gpu::{Dispatch, GpuRun, download_resident, salvage_resident};
pub use queue::{QueueLayout, SpikeQueue, fingerprint as queue_fingerprint};

use thiserror::Error;

use crate::arrays::RawArray;
use crate::cpu::{CpuError, Program};
use crate::ir::{Kernel, Type};

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Cpu(#[from] CpuError),
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
    #[error("engine: {0}")]
    Invalid(String),
    /// A GSL state updater could not reach its error bound (Brian2's `IntegrationError`).
    #[error("{0}")]
    Integration(String),
    /// A model feature this backend does not run (yet).
    #[error("{0}")]
    Unsupported(String),
    /// A panic caught while running `kernel`: a bug of brian2wgpu, not of the model.
    #[error(
        "internal error in kernel '{kernel}': {message}. This is a bug in brian2wgpu: please \
         report it with the model; prefs.devices.wgpu.backend = 'gpu' or 'cpu' may avoid it"
    )]
    Panic { kernel: String, message: String },
}

impl EngineError {
    /// The error for a panic caught while running `kernel`.
    pub fn panic(kernel: &str, payload: Box<dyn std::any::Any + Send>) -> Self {
        EngineError::Panic {
            kernel: kernel.to_string(),
            message: panic_message(payload.as_ref()),
        }
    }
}

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic without a message".into()
    }
}

pub type ArrayId = usize;
pub type RecordId = usize;

/// Where a kernel variable's data lives during a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Binding {
    /// A constant or unused variable: no data.
    None,
    /// One of the arrays handed to [`Engine::run`].
    Array(ArrayId),
    /// An engine-owned record buffer (monitor output), written at its current end.
    Record(RecordId),
}

/// A compiled kernel with its data bindings.
pub struct EngineKernel {
    pub kernel: Kernel,
    /// The interpreter's program; `Err` (why not) for kernels only the GPU runs (user
    /// functions with WGSL code), reported when a CPU run starts.
    pub program: Result<Program, String>,
    pub bindings: Vec<Binding>,
    /// Distinct per kernel: part of the random stream's key.
    pub rng_id: u32,
}

/// One entry of the schedule, named after the Brian2 template it implements.
#[derive(Debug, Clone)]
pub enum Op {
    /// `stateupdate` and other per-element templates: the kernel over 0..n.
    Elementwise { kernel: usize, n: usize },
    /// `threshold`: the kernel writes `cond` (bool per element) and, where it holds, marks
    /// the neuron refractory; the engine compacts the events into `eventspace` (ascending,
    /// count last).
    Threshold {
        kernel: usize,
        n: usize,
        cond: ArrayId,
        eventspace: ArrayId,
    },
    /// `reset` (and `run_on_event`): the kernel over this step's events.
    Reset { kernel: usize, eventspace: ArrayId },
    /// `spikemonitor`: the kernel computes the recorded values of the events in
    /// `[start, stop)` into records; `count` (per source neuron) and `total` (N) update.
    SpikeMonitor {
        kernel: usize,
        eventspace: ArrayId,
        source_n: usize,
        start: usize,
        stop: usize,
        count: ArrayId,
        total: ArrayId,
        /// Records written by the kernel, one entry per event.
        records: Vec<RecordId>,
    },
    /// `statemonitor`: the kernel over the recorded indices, a row per tick, plus `t`.
    StateMonitor {
        kernel: usize,
        indices: ArrayId,
        n_indices: usize,
        t: ArrayId,
        t_record: RecordId,
        records: Vec<RecordId>,
        total: ArrayId,
    },
    /// `ratemonitor`: the fraction of `[start, stop)` that spiked, per second.
    RateMonitor {
        eventspace: ArrayId,
        source_n: usize,
        start: usize,
        stop: usize,
        t: ArrayId,
        dt: f64,
        t_record: RecordId,
        rate_record: RecordId,
        total: ArrayId,
    },
    /// `synapses_push_spikes`: queue the synapses of this step's events.
    PushSpikes { queue: usize, eventspace: ArrayId },
    /// `synapses` (a pathway's `on_pre`/`on_post`): the kernel over the synapses due now,
    /// in queue order with the serial loop's semantics for repeated targets; then the
    /// queue advances.
    Synapses { kernel: usize, queue: usize },
    /// `summed_variable`: the kernel writes each synapse's term into `values`; then
    /// `target[start..stop]` becomes the per-target sum over `index` (Brian2's bincount,
    /// summed in synapse order).
    SummedVariable {
        kernel: usize,
        n: usize,
        values: ArrayId,
        index: ArrayId,
        target: ArrayId,
        start: usize,
        stop: usize,
    },
    /// `spikegenerator`: the events whose time bin is this step (`period` bins > 0
    /// repeats them).
    SpikeGenerator {
        eventspace: ArrayId,
        neuron_index: ArrayId,
        timebins: ArrayId,
        lastindex: ArrayId,
        period: i64,
    },
    /// `spatialstateupdate` (SpatialNeuron): the kernel writes each compartment's total
    /// conductance, current and previous v (`_gtot_all`, `_I0_all`, `_v_previous`); then
    /// the cable equation's implicit step updates `v` and `Ic`.
    Cable {
        kernel: usize,
        n: usize,
        dt: f64,
        arrays: Box<CableArrays>,
    },
    /// `stateupdate` with a GSL method: `pre` (statements other than derivatives, at t),
    /// then the adaptive Runge-Kutta driver of `spec` over elements `0..n` from t to t + dt,
    /// evaluating the derivatives with `kernel` (see `runtime::gsl`).
    Integrate {
        pre: Option<usize>,
        kernel: usize,
        n: usize,
        dt: f64,
        spec: Box<gsl::GslSpec>,
    },
    /// Hand control back to Python (network_operation and anything else we do not run):
    /// the run stops here and resumes after the callback.
    Python { index: usize },
}

/// A scheduled operation and the clock that drives it.
#[derive(Debug, Clone)]
pub struct Item {
    pub clock: usize,
    pub op: Op,
}

/// A monitor's growing output.
#[derive(Debug, Clone)]
pub struct Record {
    pub ty: Type,
    pub data: Vec<u8>,
}

impl Record {
    pub fn len(&self) -> usize {
        self.data.len() / elem_size(self.ty)
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Host storage size of one element (numpy's: bool is one byte).
pub fn elem_size(t: Type) -> usize {
    match t {
        Type::Bool => 1,
        t => t.size(),
    }
}

/// Why a run returned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RunStatus {
    /// Every clock reached its end.
    Finished,
    /// A `Python` item is due: call it, then run again to continue this step.
    Callback { index: usize },
    /// The report/stop callback asked to stop.
    Stopped,
}

pub struct Engine {
    pub kernels: Vec<EngineKernel>,
    pub items: Vec<Item>,
    pub records: Vec<Record>,
    pub queues: Vec<SpikeQueue>,
    pub seed: u64,
    /// Per clock, the timestep at which the random streams' step counter starts (the
    /// network run's first step); missing clocks count from 0.
    pub step_base: Vec<i64>,
    /// Seconds spent in each schedule item (Brian2's `profile=True`), when enabled.
    pub profile: Option<Vec<f64>>,
    /// What each array of a run is (`'v' of 'neurongroup'`), for error messages.
    pub array_names: Vec<String>,
    /// Arrays Brian2 checks for invalid values after a run (integrated variables): a gpu
    /// run checks those it leaves on the GPU there ([`GpuRun::invalid`]).
    pub checked_arrays: Vec<usize>,
    /// The most seconds per step a gpu run of this network has taken (batches timed at
    /// their waits): the waits' deadlines scale with it ([`crate::gpu::GpuContext::expect_work`]).
    pub gpu_step_seconds: f64,
    /// Resume point inside a step after a Python callback.
    resume_at: Option<usize>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    pub fn new() -> Self {
        Self {
            kernels: Vec::new(),
            items: Vec::new(),
            records: Vec::new(),
            queues: Vec::new(),
            seed: 0,
            step_base: Vec::new(),
            profile: None,
            array_names: Vec::new(),
            checked_arrays: Vec::new(),
            gpu_step_seconds: 0.0,
            resume_at: None,
        }
    }

    pub fn add_kernel(
        &mut self,
        kernel: Kernel,
        bindings: Vec<Binding>,
    ) -> Result<usize, EngineError> {
        if bindings.len() != kernel.vars.len() {
            return Err(EngineError::Invalid(format!(
                "kernel '{}' has {} variables but {} bindings",
                kernel.name,
                kernel.vars.len(),
                bindings.len()
            )));
        }
        let program = match Program::new(&kernel) {
            Ok(p) => Ok(p),
            Err(CpuError::Unsupported(why)) if !kernel.user_functions.is_empty() => Err(why),
            Err(e) => return Err(e.into()),
        };
        let rng_id = self.kernels.len() as u32;
        self.kernels.push(EngineKernel {
            kernel,
            program,
            bindings,
            rng_id,
        });
        Ok(self.kernels.len() - 1)
    }

    /// Check, before a run, every id the schedule holds (kernels, queues, arrays, records,
    /// clocks) and that each array a kernel binds has the variable's type: the backends
    /// index and reinterpret these without further checks.
    pub fn check_run(&self, arrays: &[RawArray], n_clocks: usize) -> Result<(), EngineError> {
        let bad = |what: String| Err(EngineError::Invalid(what));
        let array = |id: ArrayId, what: &str| -> Result<(), EngineError> {
            if id >= arrays.len() {
                return bad(format!(
                    "{what} is array {id}, but the run has {} arrays",
                    arrays.len()
                ));
            }
            Ok(())
        };
        let record = |id: RecordId, what: &str| -> Result<(), EngineError> {
            if id >= self.records.len() {
                return bad(format!(
                    "{what} is record {id}, but the engine has {} records",
                    self.records.len()
                ));
            }
            Ok(())
        };
        for ek in &self.kernels {
            for (var, b) in ek.kernel.vars.iter().zip(&ek.bindings) {
                let what = format!("variable '{}' of kernel '{}'", var.name, ek.kernel.name);
                let ty = match *b {
                    Binding::None => continue,
                    Binding::Array(id) => {
                        array(id, &what)?;
                        arrays[id].ty
                    }
                    Binding::Record(id) => {
                        record(id, &what)?;
                        self.records[id].ty
                    }
                };
                if ty != var.ty {
                    return bad(format!("{what} is {} but its data is {ty}", var.ty));
                }
            }
        }
        for (pos, it) in self.items.iter().enumerate() {
            let what = format!("schedule item {pos}");
            if it.clock >= n_clocks {
                return bad(format!(
                    "{what} runs on clock {}, but the run has {n_clocks} clocks",
                    it.clock
                ));
            }
            let kernel = match &it.op {
                Op::Elementwise { kernel, .. }
                | Op::Threshold { kernel, .. }
                | Op::Reset { kernel, .. }
                | Op::SpikeMonitor { kernel, .. }
                | Op::StateMonitor { kernel, .. }
                | Op::SummedVariable { kernel, .. }
                | Op::Cable { kernel, .. } => Some(*kernel),
                Op::Integrate { pre, kernel, .. } => {
                    if let Some(p) = pre
                        && *p >= self.kernels.len()
                    {
                        return bad(format!("{what} runs kernel {p}, which is missing"));
                    }
                    Some(*kernel)
                }
                Op::Synapses { kernel, queue } => {
                    if *queue >= self.queues.len() {
                        return bad(format!("{what} uses spike queue {queue}, which is missing"));
                    }
                    Some(*kernel)
                }
                Op::PushSpikes { queue, eventspace } => {
                    if *queue >= self.queues.len() {
                        return bad(format!("{what} uses spike queue {queue}, which is missing"));
                    }
                    array(*eventspace, &what)?;
                    None
                }
                _ => None,
            };
            if let Some(k) = kernel
                && k >= self.kernels.len()
            {
                return bad(format!("{what} runs kernel {k}, which is missing"));
            }
            let (ids, recs): (Vec<ArrayId>, Vec<RecordId>) = match &it.op {
                Op::Threshold {
                    cond, eventspace, ..
                } => (vec![*cond, *eventspace], vec![]),
                Op::Reset { eventspace, .. } => (vec![*eventspace], vec![]),
                Op::SpikeMonitor {
                    eventspace,
                    count,
                    total,
                    records,
                    ..
                } => (vec![*eventspace, *count, *total], records.clone()),
                Op::StateMonitor {
                    indices,
                    t,
                    t_record,
                    records,
                    total,
                    ..
                } => {
                    let mut r = records.clone();
                    r.push(*t_record);
                    (vec![*indices, *t, *total], r)
                }
                Op::RateMonitor {
                    eventspace,
                    t,
                    t_record,
                    rate_record,
                    total,
                    ..
                } => (vec![*eventspace, *t, *total], vec![*t_record, *rate_record]),
                Op::SummedVariable {
                    values,
                    index,
                    target,
                    ..
                } => (vec![*values, *index, *target], vec![]),
                Op::SpikeGenerator {
                    eventspace,
                    neuron_index,
                    timebins,
                    lastindex,
                    ..
                } => (
                    vec![*eventspace, *neuron_index, *timebins, *lastindex],
                    vec![],
                ),
                Op::Integrate { spec, .. } => {
                    let g = spec.as_ref();
                    let dim = g.state.len();
                    if g.stage.len() != dim
                        || g.deriv.len() != dim
                        || g.scale.len() != dim
                        || g.names.len() != dim
                    {
                        return bad(format!("{what}: GSL spec with mismatched variable lists"));
                    }
                    let ids: Vec<ArrayId> = [&g.state, &g.stage, &g.deriv]
                        .into_iter()
                        .flatten()
                        .copied()
                        .chain([g.time, g.t])
                        .chain(g.last_timestep)
                        .chain(g.failed_steps)
                        .chain(g.step_count)
                        .collect();
                    let mut sorted = ids.clone();
                    sorted.sort_unstable();
                    if sorted.windows(2).any(|w| w[0] == w[1]) {
                        return bad(format!("{what}: one array bound to two GSL roles"));
                    }
                    (ids, vec![])
                }
                Op::Cable { arrays: a, .. } => {
                    let mut ids = a.int_ids().to_vec();
                    ids.extend(a.float_ids());
                    let mut sorted = ids.clone();
                    sorted.sort_unstable();
                    if sorted.windows(2).any(|w| w[0] == w[1]) {
                        return bad(format!(
                            "{what}: one array bound to two of SpatialNeuron's cable variables"
                        ));
                    }
                    (ids, vec![])
                }
                _ => (vec![], vec![]),
            };
            for id in ids {
                array(id, &what)?;
            }
            for id in recs {
                record(id, &what)?;
            }
        }
        Ok(())
    }

    pub fn add_record(&mut self, ty: Type) -> RecordId {
        self.records.push(Record {
            ty,
            data: Vec::new(),
        });
        self.records.len() - 1
    }

    /// Take a record's contents (the Python side appends them to Brian2's arrays).
    pub fn take_record(&mut self, id: RecordId) -> Record {
        let ty = self.records[id].ty;
        std::mem::replace(
            &mut self.records[id],
            Record {
                ty,
                data: Vec::new(),
            },
        )
    }

    /// Run the schedule on the CPU until the clocks end, a Python item is due, or
    /// `should_stop` (called between steps, at most every `check_every` steps) says so.
    ///
    /// # Safety
    /// `arrays` must be valid for the duration of the call, with the lengths given.
    pub unsafe fn run_cpu(
        &mut self,
        arrays: &[RawArray],
        clocks: &mut Clocks,
        should_stop: &mut dyn FnMut(&Clocks) -> bool,
        check_every: usize,
    ) -> Result<RunStatus, EngineError> {
        unsafe { cpu::run(self, arrays, clocks, should_stop, check_every) }
    }
}
