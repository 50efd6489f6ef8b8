//! The schedule on a wgpu device. Arrays are uploaded once per run and stay resident;
//! each time step is one command submission whose dispatches read event counts and record
//! lengths from GPU buffers, so no step waits for the host. Monitor records have capacity
//! for the worst case of the next step before it is recorded; when a record could
//! overflow, it is drained to the host first (so nothing is ever dropped).

use std::sync::Arc;

mod cable;
mod gsl;
mod monitors;
mod neurons;
mod queue;
mod spikegen;
mod summed;
mod synapses;

use super::{Binding, Clocks, Engine, EngineError, Op, RunStatus, elem_size};
use crate::arrays::RawArray;
use crate::cpu::Program;
use crate::gpu::{GpuContext, GpuError, check_features, grid};
use crate::ir::{Invariance, Parallel, Type, VarKind};
use crate::wgsl::{self, Options};
use monitors::MonitorRecords;
use queue::{Bundles, GpuQueue, SERIAL_CHUNK};

// The hand-written support kernels: one WGSL module per template family, each with one
// binding table for its entry points (a pipeline binds what its entry point uses).
const NEURONS_WGSL: &str = include_str!("../../../shaders/neurons.wgsl");
const QUEUE_WGSL: &str = include_str!("../../../shaders/queue.wgsl");
const SYNAPSES_WGSL: &str = include_str!("../../../shaders/synapses.wgsl");

/// How a generated kernel iterates.
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// Over `0..n`.
    Elements,
    /// Over `0..n`, counting the elements where variable `.0` (the threshold's flag) holds
    /// into the compaction's tile counters `.1` (shaders/neurons.wgsl).
    CountingEvents(usize, &'a wgpu::Buffer),
    /// Over `list[range[0]..range[1]]`, one invocation per entry; `atomic`: variables
    /// accumulated atomically.
    List(&'a wgpu::Buffer, &'a wgpu::Buffer, &'a [usize]),
    /// Over the same list in order, in one invocation: `SERIAL_CHUNK` entries from `start`.
    Serial(&'a wgpu::Buffer, &'a wgpu::Buffer, usize),
    /// Over the same list, one invocation per distinct target, each over its own entries
    /// in order (`Options::by_target`): the grouping state, and the number of targets.
    ByTarget(&'a wgpu::Buffer, &'a wgpu::Buffer, &'a wgpu::Buffer, usize),
    /// Over `0..n`, GSL's driver per element around the derivative kernel
    /// ([`wgsl::Options::gsl`]): its shape, its driver buffers (status, step sizes if
    /// kept, failed attempts, steps) and the arrays of the integrated variables.
    Integrate(&'a wgsl::GslShape, &'a [&'a wgpu::Buffer], &'a [usize]),
    /// One workgroup per event of a list (events, range records), over the event's
    /// synapses (bundle table, synapse order); `atomic` as in `List`
    /// ([`crate::wgsl::Options::bundles`]).
    Bundles {
        bundling: wgsl::Bundling,
        list: &'a wgpu::Buffer,
        range: &'a wgpu::Buffer,
        table: &'a wgpu::Buffer,
        perm: &'a wgpu::Buffer,
        atomic: &'a [usize],
        /// One invocation per bundle (small bundles) instead of one workgroup.
        per_invocation: bool,
    },
}

/// One dispatch: a pipeline, its bindings, the grid, and (for generated kernels) the
/// parameter buffer to refresh each step.
struct Pass {
    /// The pipeline's label: the Brian2 code object, or the support kernel's name.
    label: String,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind: wgpu::BindGroup,
    /// The buffers of `bind` by binding number (a monitor's records are replaced when
    /// they grow, [`GpuRun::grow_records`]).
    entries: Vec<(u32, wgpu::Buffer)>,
    grid: [u32; 3],
    /// Kept alive with the bind group.
    #[allow(dead_code)]
    params: Option<wgpu::Buffer>,
    /// Dispatch size read from this buffer at this byte offset (sizes the GPU computed).
    indirect: Option<(wgpu::Buffer, u64)>,
    /// The kernel's run-invariant scalar values, computed on the host.
    scalars: Option<HoistedScalars>,
    /// The indirect sizes are those of the ring slot (slots, delay, bytes per slot)
    /// `delay` steps back from the clock's step in this run.
    ring: Option<(u64, u64, u64)>,
    /// Dispatched only at this step of the clock in this run (queue state of earlier runs).
    at_step: Option<i64>,
    /// Where the pass binds a clock's values (t, timestep, step record): one bind group
    /// per row of the batch, each binding that row of the clock's tables.
    steps: Option<StepBinds>,
}

/// The bind groups of a pass that reads a clock's per-step values: the step's row of the
/// clock tables is bound in place of the clock buffers, so that a batch records no copies
/// between steps and runs as one compute pass.
struct StepBinds {
    /// (binding, the clock table bound there, bytes per row used).
    slices: Vec<(u32, wgpu::Buffer, u64)>,
    groups: Vec<wgpu::BindGroup>,
}

/// A generated kernel's scalar statements that do not change during a run, or change
/// only with the clock ([`crate::ir::hoist_scalars`]): evaluated by the interpreter, once
/// per run or once per planned step, and read by every invocation from small tables,
/// instead of being recomputed per element.
struct HoistedScalars {
    eval: Program,
    /// Bindings of the evaluation's inputs (the kernel's own variables).
    inputs: Vec<Binding>,
    /// Per output, in order: its type and whether it is computed per step (each type's
    /// values fill their table in that order).
    outputs: Vec<(Type, bool)>,
    /// Run tables, one per type.
    bufs: Vec<(Type, wgpu::Buffer)>,
    /// Per-step tables, one per type: one row of values per step of a batch.
    step_bufs: Vec<(Type, wgpu::Buffer)>,
    /// Inputs that are clock arrays: (input position, clock, `t` rather than timestep).
    clock_inputs: Vec<(usize, usize, bool)>,
}

/// Host-computed values as the GPU stores them (booleans as u32), one table per type in
/// the order the types first appear.
type Tables = Vec<(Type, Vec<u8>)>;

impl HoistedScalars {
    /// The run tables and one row of the per-step tables. `clock`: every clock's (t,
    /// timestep) at that step; `None` reads the clock arrays as they are.
    fn values(
        &self,
        arrays: &[RawArray],
        clock: Option<&[(f64, i64)]>,
    ) -> Result<(Tables, Tables), EngineError> {
        let mut out: Vec<Vec<u64>> = self.outputs.iter().map(|_| vec![0u64]).collect();
        let mut cells: Vec<[u64; 1]> = vec![[0]; self.clock_inputs.len()];
        let mut raws: Vec<RawArray> = self
            .inputs
            .iter()
            .map(|b| match *b {
                Binding::Array(id) => arrays[id],
                _ => RawArray {
                    ptr: std::ptr::null_mut(),
                    len: 0,
                    ty: Type::Bool,
                },
            })
            .collect();
        if let Some(values) = clock {
            for (cell, &(input, c, is_t)) in cells.iter_mut().zip(&self.clock_inputs) {
                let (t, ts) = values[c];
                cell[0] = if is_t { t.to_bits() } else { ts as u64 };
                raws[input].ptr = cell.as_mut_ptr() as *mut u8;
                raws[input].len = 1;
            }
        }
        for ((ty, _), o) in self.outputs.iter().zip(out.iter_mut()) {
            raws.push(RawArray {
                ptr: o.as_mut_ptr() as *mut u8,
                len: 1,
                ty: *ty,
            });
        }
        let args = crate::arrays::RunArgs {
            n: 1,
            ..Default::default()
        };
        unsafe { self.eval.run_raw(&raws, &args)? };
        let (mut run, mut step): (Tables, Tables) = (Vec::new(), Vec::new());
        for ((ty, per_step), raw) in self.outputs.iter().zip(&raws[self.inputs.len()..]) {
            let bytes = host_to_gpu(raw);
            let tables = if *per_step { &mut step } else { &mut run };
            match tables.iter_mut().find(|(t, _)| t == ty) {
                Some((_, table)) => table.extend(bytes),
                None => tables.push((*ty, bytes)),
            }
        }
        Ok((run, step))
    }

    /// Fill the per-step tables' rows for the steps of a batch.
    fn write_steps(
        &self,
        ctx: &GpuContext,
        arrays: &[RawArray],
        plan: &[PlannedStep],
    ) -> Result<(), EngineError> {
        if self.step_bufs.is_empty() {
            return Ok(());
        }
        let mut rows: Tables = Vec::new();
        for (_, values) in plan {
            for (ty, bytes) in self.values(arrays, Some(values))?.1 {
                match rows.iter_mut().find(|(t, _)| *t == ty) {
                    Some((_, all)) => all.extend(bytes),
                    None => rows.push((ty, bytes)),
                }
            }
        }
        for ((_, buf), (_, bytes)) in self.step_bufs.iter().zip(&rows) {
            ctx.queue.write_buffer(buf, 0, bytes);
        }
        Ok(())
    }
}

/// A dispatch as `profile` reports it: the kernel, and its workgroup grid (`None` where
/// the GPU computes it: indirect dispatch).
pub type Dispatch = (String, Option<[u32; 3]>);

/// Bytes of a clock's step record (`b2_step` in the shaders): the random streams' step
/// (timestep minus the run's first, i64 as two u32), the step's row in its batch, padding.
const STEP_BYTES: u64 = 16;

/// Workgroup size of kernels with one invocation per element (neurons, synapses, the
/// state monitor's variables): 256, WebGPU's default limit. Fewer, larger workgroups cost
/// less where a workgroup has a fixed cost (lavapipe: about 0.35 us each, so 64-wide
/// workgroups cost 5 ns per element more than 256-wide ones).
fn element_wg(ctx: &GpuContext) -> u32 {
    256.min(ctx.limits.max_compute_invocations_per_workgroup)
        .min(ctx.limits.max_compute_workgroup_size_x)
        .max(1)
}

/// Workgroup size of the per-event kernels (generated list-mode kernels, count_events).
const EVENT_WG: u32 = 64;
/// Byte offsets of the indirect dispatch sizes in a range buffer: one invocation per
/// event, and the same with at least one workgroup.
const RANGE_INDIRECT: u64 = 16;
const RANGE_INDIRECT_NONEMPTY: u64 = 32;
/// ... and one workgroup per event (a pathway's kernel over each event's synapses).
const RANGE_BUNDLES: u64 = 48;
const RANGE_RECORD_BYTES: u64 = 64;

/// An event range computed once per step and shared by the operations that need it:
/// the eventspace, its length, the subgroup, and the clock of the operations.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RangeKey {
    space: usize,
    n: usize,
    start: usize,
    stop: usize,
    clock: usize,
}

/// What preparing one run's schedule shares between operations (see [`GpuRun::new`]).
struct Prep<'e> {
    eng: &'e Engine,
    clocks: &'e Clocks,
    /// Steps of the run (monitor records are sized for a batch of them).
    steps: usize,
    /// Bound where an entry point needs a buffer it does not use.
    dummy: wgpu::Buffer,
    /// Event ranges computed earlier in the step, valid until the eventspace is written.
    ranges: Vec<(RangeKey, wgpu::Buffer)>,
    /// A threshold the state update before it already runs (fused): its position in the
    /// schedule and its compaction counters.
    fused_threshold: Option<(usize, wgpu::Buffer)>,
    /// The operation being prepared: its position in the schedule, and its clock.
    pos: usize,
    clock: usize,
}

impl Prep<'_> {
    fn key(&self, space: usize, n: usize, start: usize, stop: usize) -> RangeKey {
        RangeKey {
            space,
            n,
            start,
            stop,
            clock: self.clock,
        }
    }
}

/// The batches submitted and not yet waited for, timed so that a wait's deadline follows
/// the work in flight ([`GpuContext::expect_work`]): a batch that is slow because the
/// network is large is not taken for a hung device.
#[derive(Default)]
struct BatchTimes {
    /// Per batch in flight, oldest first: when it was submitted, and its steps.
    flight: std::collections::VecDeque<(std::time::Instant, usize)>,
    /// When the last batch waited for was seen to have finished.
    last_done: Option<std::time::Instant>,
}

impl BatchTimes {
    fn expect(&self, ctx: &GpuContext, step_seconds: f64) {
        let steps: usize = self.flight.iter().map(|f| f.1).sum();
        ctx.expect_work(step_seconds * steps as f64);
    }

    fn submitted(&mut self, ctx: &GpuContext, steps: usize, step_seconds: f64) {
        self.flight.push_back((std::time::Instant::now(), steps));
        self.expect(ctx, step_seconds);
    }

    /// The oldest batch has finished (its wait returned): its seconds per step, from
    /// when the GPU could start it (its submission, or the end of the one before).
    fn oldest_finished(&mut self, ctx: &GpuContext, step_seconds: &mut f64) {
        let now = std::time::Instant::now();
        if let Some((at, steps)) = self.flight.pop_front() {
            self.timed(at, steps, now, step_seconds);
        }
        self.last_done = Some(now);
        self.expect(ctx, *step_seconds);
    }

    /// Batches submitted at `at` with `steps` steps ended by `now`: keep the most seconds
    /// per step (from when the GPU could start them).
    fn timed(
        &self,
        at: std::time::Instant,
        steps: usize,
        now: std::time::Instant,
        step_seconds: &mut f64,
    ) {
        let start = self.last_done.map_or(at, |d| d.max(at));
        let per_step = now.duration_since(start).as_secs_f64() / steps.max(1) as f64;
        *step_seconds = step_seconds.max(per_step);
    }

    /// The run has waited for everything it submitted: the batches still listed took
    /// until now (read-backs included, so the estimate errs long).
    fn all_finished(&mut self, ctx: &GpuContext, step_seconds: &mut f64) {
        if let Some(&(at, _)) = self.flight.front() {
            let steps: usize = self.flight.iter().map(|f| f.1).sum();
            self.timed(at, steps, std::time::Instant::now(), step_seconds);
        }
        self.flight.clear();
        self.last_done = None;
        ctx.expect_work(0.0);
    }
}

/// One step of a batch: which clocks tick, and every clock's (t, timestep).
type PlannedStep = (Vec<bool>, Vec<(f64, i64)>);

enum Prepared {
    Passes(Vec<Pass>, Option<usize>), // passes, monitor index
    Python(usize),
}

pub struct GpuRun {
    ctx: &'static GpuContext,
    /// The host arrays (kept alive by the caller for the whole run).
    arrays: Vec<RawArray>,
    bufs: Vec<wgpu::Buffer>,
    prepared: Vec<Prepared>,
    monitors: Vec<MonitorRecords>,
    /// The spike queue of each engine queue that a pathway of this run uses.
    queues: Vec<Option<GpuQueue>>,
    /// Tables the passes read (kept alive for the run).
    keep: Vec<wgpu::Buffer>,
    /// Per GSL state updater: its status block (shaders written by `wgsl::gsl_driver`),
    /// its spec and its clock's dt, read when the run ends.
    integrations: Vec<(wgpu::Buffer, Box<super::gsl::GslSpec>, f64)>,
    /// Per clock, its step record ([`STEP_BYTES`]: the random streams' step, the step's
    /// row in its batch).
    rng_steps: Vec<wgpu::Buffer>,
    /// Per clock, the batch's (t, timestep, step record) tables, one row per step of a
    /// batch, reused from batch to batch (queue writes land after the previous batch's
    /// reads, in queue order).
    tables: Vec<(wgpu::Buffer, wgpu::Buffer, wgpu::Buffer)>,
    /// The batch the GPU may still be running while the next one is recorded.
    in_flight: Option<wgpu::SubmissionIndex>,
    /// When the batches not yet waited for were submitted, and their steps.
    batch_times: BatchTimes,
    resume_at: Option<usize>,
    /// Per array: nothing writes it while the engine runs (scalar code reading only such
    /// arrays is evaluated once, on the host).
    invariant: Vec<bool>,
    /// The clocks' arrays: (array, clock, `t` rather than timestep). Scalar code reading
    /// them (and invariant arrays) is evaluated on the host once per step.
    clock_arrays: Vec<(usize, usize, bool)>,
    /// Steps per batch at most (rows of the clock tables and of the per-step tables).
    batch: usize,
    /// Bytes of array data uploaded when the run started.
    pub uploaded: u64,
    /// Per array, the version of its host copy ([`Resident`]; 0: none).
    versions: Vec<u64>,
    /// Whether this run's written buffers have been marked as changing ([`Resident`]).
    tainted: bool,
    /// Arrays the run wrote and left on the GPU, ahead of their host copies (downloaded
    /// on demand: [`download_resident`]).
    pub left_on_gpu: Vec<usize>,
    /// Of the engine's `checked_arrays` left on the GPU, those holding NaN, infinities or
    /// magnitudes above 1e50 at the end of the run (checked there, `b2_check_invalid`).
    pub invalid: Vec<usize>,
    /// Batches submitted and compute passes recorded in them (one per batch unless
    /// profiling).
    pub batches: u64,
    pub compute_passes: u64,
}

/// Per array, whether no scheduled operation or clock writes it during a run (Python
/// callbacks may; [`GpuRun::upload_all`] then refreshes what depends on it).
fn invariant_arrays(eng: &Engine, clocks: &Clocks, n: usize) -> Vec<bool> {
    let mut inv = vec![true; n];
    let mut mark = |id: usize| {
        if let Some(x) = inv.get_mut(id) {
            *x = false
        }
    };
    for c in &clocks.clocks {
        c.t_array
            .into_iter()
            .chain(c.timestep_array)
            .for_each(&mut mark);
    }
    for item in &eng.items {
        let kernel = match &item.op {
            Op::Elementwise { kernel, .. } | Op::Synapses { kernel, .. } => Some(*kernel),
            Op::Threshold {
                kernel,
                cond,
                eventspace,
                ..
            } => {
                mark(*cond);
                mark(*eventspace);
                Some(*kernel)
            }
            Op::Reset { kernel, eventspace } => {
                mark(*eventspace);
                Some(*kernel)
            }
            Op::SpikeMonitor {
                kernel,
                eventspace,
                count,
                total,
                ..
            } => {
                [*eventspace, *count, *total]
                    .into_iter()
                    .for_each(&mut mark);
                Some(*kernel)
            }
            Op::StateMonitor {
                kernel, t, total, ..
            } => {
                mark(*t);
                mark(*total);
                Some(*kernel)
            }
            Op::RateMonitor {
                eventspace,
                t,
                total,
                ..
            } => {
                [*eventspace, *t, *total].into_iter().for_each(&mut mark);
                None
            }
            Op::PushSpikes { eventspace, .. } => {
                mark(*eventspace);
                None
            }
            Op::SummedVariable {
                kernel,
                values,
                target,
                ..
            } => {
                mark(*values);
                mark(*target);
                Some(*kernel)
            }
            Op::SpikeGenerator {
                eventspace,
                lastindex,
                ..
            } => {
                mark(*eventspace);
                mark(*lastindex);
                None
            }
            Op::Cable {
                kernel, arrays: a, ..
            } => {
                // The passes keep their solutions in buffers of their own: of Brian2's
                // arrays they write v and Ic (and what the kernel writes).
                mark(a.v);
                mark(a.ic);
                Some(*kernel)
            }
            Op::Integrate { pre, spec, .. } => {
                for &id in &spec.state {
                    mark(id);
                }
                for id in [spec.last_timestep, spec.failed_steps, spec.step_count]
                    .into_iter()
                    .flatten()
                {
                    mark(id);
                }
                *pre
            }
            Op::Python { .. } => None,
        };
        if let Some(k) = kernel {
            let ek = &eng.kernels[k];
            for (var, b) in ek.kernel.vars.iter().zip(&ek.bindings) {
                if let (true, Binding::Array(id)) = (var.written, *b) {
                    mark(id)
                }
            }
        }
    }
    inv
}

/// The last gpu run's array buffers, kept for the next run (DESIGN.md §3: transfers that
/// follow use). An entry is reused only for the same host array (address, length, type)
/// whose host copy has the same version, a number the Python device changes whenever the
/// host copy may have changed (it is set, read out, resized, or host code ran on it);
/// version 0 is never reused. A run does not download what it wrote: such an entry is
/// `stale` (the GPU's copy is newer) until Python reads the array, which downloads it
/// first ([`download_resident`]); the next run reuses it as it is.
struct Resident {
    /// The context the buffer belongs to (a lost device's buffers are never reused).
    ctx: usize,
    ptr: usize,
    len: usize,
    ty: Type,
    version: u64,
    buf: wgpu::Buffer,
    /// The GPU's copy is newer than the host's.
    stale: bool,
    /// A run in progress writes the buffer: it holds no state of a step boundary until
    /// that run ends.
    tainted: bool,
}

impl Resident {
    /// Whether this entry is the buffer of host array `a` at host version `version`, on
    /// context `ctx` (version 0 never matches).
    fn holds(&self, ctx: &GpuContext, a: &RawArray, version: u64) -> bool {
        version != 0
            && self.ctx == ctx as *const GpuContext as usize
            && self.version == version
            && self.ptr == a.ptr as usize
            && self.len == a.len
            && self.ty == a.ty
    }
}

static RESIDENT: std::sync::Mutex<Vec<Resident>> = std::sync::Mutex::new(Vec::new());

/// Download a kept buffer that is ahead of its host array (`arr`: that array, alive and
/// unchanged since the run; Python's device calls this before any access to it).
/// Returns whether there was anything to download.
pub fn download_resident(arr: RawArray) -> Result<bool, EngineError> {
    let mut kept = RESIDENT.lock().unwrap_or_else(|e| e.into_inner());
    let Some(r) = kept
        .iter_mut()
        .find(|r| r.stale && r.ptr == arr.ptr as usize && r.len == arr.len && r.ty == arr.ty)
    else {
        return Ok(false);
    };
    let ctx = GpuContext::shared()?;
    if r.ctx != ctx as *const GpuContext as usize {
        return Err(EngineError::Gpu(GpuError::Device {
            label: "download".into(),
            message: "the GPU device that held this array's latest values was lost".into(),
        }));
    }
    let data = ctx.read_buffer(&r.buf, arr.len * gpu_elem_size(arr.ty))?;
    gpu_to_host(&arr, &data);
    r.stale = false;
    Ok(true)
}

/// Forget the kept buffers (after a failed run, or before a run on the CPU, which writes
/// the host arrays without versions), downloading first those that are ahead of their
/// host arrays, are among `arrays` (alive: the run's own, with their `versions`) and hold
/// the state of a step boundary (no failed run was writing them). Best effort: a lost
/// device keeps its data.
pub fn salvage_resident(arrays: &[RawArray], versions: &[u64]) {
    let kept = std::mem::take(&mut *RESIDENT.lock().unwrap_or_else(|e| e.into_inner()));
    // Most calls (every run on the interpreter) find nothing ahead: no GPU context then.
    if !kept.iter().any(|r| r.stale && !r.tainted) {
        return;
    }
    let Ok(ctx) = GpuContext::shared() else {
        return;
    };
    for r in kept.iter().filter(|r| r.stale && !r.tainted) {
        let live = arrays
            .iter()
            .zip(versions)
            .find(|(a, v)| r.holds(ctx, a, **v));
        if let Some((a, _)) = live
            && let Ok(data) = ctx.read_buffer(&r.buf, a.len * gpu_elem_size(a.ty))
        {
            gpu_to_host(a, &data);
        }
    }
}

/// Apply `f` to the kept entry of each array of this run (array id, entry).
fn with_resident(run: &GpuRun, mut f: impl FnMut(usize, &mut Resident)) {
    let mut kept = RESIDENT.lock().unwrap_or_else(|e| e.into_inner());
    for (id, (a, &v)) in run.arrays.iter().zip(&run.versions).enumerate() {
        if let Some(r) = kept.iter_mut().find(|r| r.holds(run.ctx, a, v)) {
            f(id, r);
        }
    }
}

/// Size of one element in GPU storage (booleans are u32 there).
fn gpu_elem_size(t: Type) -> usize {
    if t == Type::Bool { 4 } else { elem_size(t) }
}

fn storage(ctx: &GpuContext, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer, EngineError> {
    Ok(ctx.storage_buffer(label, bytes)?)
}

fn host_to_gpu(a: &RawArray) -> Vec<u8> {
    if a.ptr.is_null() {
        return vec![0; 4];
    }
    let bytes = unsafe { std::slice::from_raw_parts(a.ptr, a.len * elem_size(a.ty)) };
    match a.ty {
        Type::Bool => bytes
            .iter()
            .flat_map(|b| (*b as u32).to_le_bytes())
            .collect(),
        _ => bytes.to_vec(),
    }
}

fn gpu_to_host(a: &RawArray, data: &[u8]) {
    if a.ptr.is_null() {
        return;
    }
    let n = a.len * elem_size(a.ty);
    let out = unsafe { std::slice::from_raw_parts_mut(a.ptr, n) };
    match a.ty {
        Type::Bool => {
            for (o, w) in out.iter_mut().zip(data.chunks_exact(4)) {
                *o = (w[0] | w[1] | w[2] | w[3] != 0) as u8;
            }
        }
        _ => out.copy_from_slice(&data[..n]),
    }
}

impl GpuRun {
    fn bind(
        &self,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(u32, &wgpu::Buffer)],
    ) -> Result<wgpu::BindGroup, EngineError> {
        bind_group(self.ctx, label, pipeline, entries)
    }

    fn support(
        &self,
        name: &str,
        wgsl: &str,
        entry: &str,
        entries: &[(u32, &wgpu::Buffer)],
        grid: [u32; 3],
    ) -> Result<Pass, EngineError> {
        let pipeline = self.ctx.pipeline(name, wgsl, entry)?;
        let bind = self.bind(name, &pipeline, entries)?;
        Ok(Pass {
            label: name.to_string(),
            pipeline,
            bind,
            entries: owned(entries),
            grid,
            params: None,
            indirect: None,
            scalars: None,
            ring: None,
            at_step: None,
            steps: None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    /// A generated kernel's pass. `list`: (list buffer, range buffer) for list mode;
    /// `counter`: the record counter for `Index::Pos` variables.
    fn kernel_pass(
        &self,
        eng: &Engine,
        records: &[(usize, wgpu::Buffer, usize)],
        k: usize,
        n_max: usize,
        mode: Mode,
        counter: Option<&wgpu::Buffer>,
        step: Option<&wgpu::Buffer>,
    ) -> Result<Pass, EngineError> {
        let ek = &eng.kernels[k];
        self.kernel_pass_of(eng.seed, ek, records, n_max, mode, counter, step)
    }

    #[allow(clippy::too_many_arguments)]
    /// [`Self::kernel_pass`] of a kernel that need not be the engine's (a fused one).
    fn kernel_pass_of(
        &self,
        seed: u64,
        ek: &super::EngineKernel,
        records: &[(usize, wgpu::Buffer, usize)],
        n_max: usize,
        mode: Mode,
        counter: Option<&wgpu::Buffer>,
        step: Option<&wgpu::Buffer>,
    ) -> Result<Pass, EngineError> {
        let hoisted = crate::ir::hoist_scalars(&ek.kernel, |v| match ek.bindings[v] {
            Binding::Array(id) if self.invariant[id] => Invariance::Run,
            Binding::Array(id) if self.clock_arrays.iter().any(|c| c.0 == id) => Invariance::Step,
            _ => Invariance::Varying,
        });
        let kernel =
            crate::ir::share_subexpressions(hoisted.as_ref().map_or(&ek.kernel, |h| &h.kernel));
        let kernel = &kernel;
        check_features(self.ctx, kernel)?;
        let (list, atomic, serial, bundles) = match mode {
            Mode::Elements | Mode::CountingEvents(..) | Mode::Integrate(..) => {
                (None, &[][..], None, None)
            }
            Mode::List(l, r, atomic) => (Some((l, r)), atomic, None, None),
            Mode::Serial(l, r, start) => (Some((l, r)), &[][..], Some(start), None),
            Mode::ByTarget(l, r, ..) => (Some((l, r)), &[][..], None, None),
            Mode::Bundles {
                bundling,
                list,
                range,
                table,
                perm,
                atomic,
                per_invocation,
            } => (
                Some((list, range)),
                atomic,
                None,
                Some((bundling, table, perm, per_invocation)),
            ),
        };
        let mut alias = alias_of(ek);
        alias.extend(alias.len()..kernel.vars.len());
        let opts = Options {
            alias,
            list: list.is_some(),
            step_binding: true,
            f64: self.ctx.supports_f64(),
            atomic: atomic.to_vec(),
            float_atomics: self.ctx.supports_f32_atomics(),
            count_tiles: match mode {
                Mode::CountingEvents(v, _) => Some(v),
                _ => None,
            },
            serial: serial.is_some(),
            by_target: matches!(mode, Mode::ByTarget(..)),
            bundles: bundles.map(|b| b.0),
            bundle_per_invocation: bundles.is_some_and(|b| b.3),
            elements: match mode {
                Mode::Elements | Mode::CountingEvents(..) | Mode::Integrate(..) => {
                    u32::try_from(n_max).ok()
                }
                _ => None,
            },
            workgroup_size: match mode {
                _ if serial.is_some() => 1,
                Mode::Elements | Mode::CountingEvents(..) => element_wg(self.ctx),
                // GSL: each invocation loops over its own steps, and small groups keep
                // lanes busy.
                _ => EVENT_WG,
            },
            gsl: match mode {
                Mode::Integrate(g, ..) => Some(g.clone()),
                _ => None,
            },
        };
        let compiled = wgsl::compile(kernel, &opts).map_err(|e| match e {
            // A model feature this adapter cannot run: refused before the first step.
            e @ wgsl::Error::NeedsF64 { .. } => {
                EngineError::Unsupported(format!("{e} (adapter '{}')", self.ctx.info.name))
            }
            e => EngineError::Invalid(e.to_string()),
        })?;
        let pipeline = self
            .ctx
            .pipeline(&ek.kernel.name, &compiled.source, &compiled.entry)?;
        let scalars = match &hoisted {
            None => None,
            Some(h) => {
                let eval = Program::new(&h.eval)?;
                let outputs = h.kernel.vars[h.first..]
                    .iter()
                    .map(|v| {
                        (
                            v.ty,
                            matches!(v.kind, VarKind::Hoisted { per_step: true, .. }),
                        )
                    })
                    .collect();
                let clock_inputs = ek
                    .bindings
                    .iter()
                    .enumerate()
                    .filter_map(|(i, b)| match *b {
                        Binding::Array(id) => self
                            .clock_arrays
                            .iter()
                            .find(|c| c.0 == id)
                            .map(|&(_, c, is_t)| (i, c, is_t)),
                        _ => None,
                    })
                    .collect();
                let mut hs = HoistedScalars {
                    eval,
                    inputs: ek.bindings.clone(),
                    outputs,
                    bufs: Vec::new(),
                    step_bufs: Vec::new(),
                    clock_inputs,
                };
                let label = format!("{} scalars", ek.kernel.name);
                let (run, step) = hs.values(&self.arrays, None)?;
                for (ty, bytes) in run {
                    hs.bufs.push((ty, self.ctx.table_buffer(&label, &bytes)?));
                }
                let label = format!("{} scalars per step", ek.kernel.name);
                for (ty, row) in step {
                    let zeros = vec![0u8; row.len() * self.batch];
                    hs.step_bufs.push((ty, storage(self.ctx, &label, &zeros)?));
                }
                Some(hs)
            }
        };
        // Static parameters: the step comes from the clock's timestep array (`b2_step`).
        let words = [
            n_max as u32,
            serial.unwrap_or(0) as u32,
            SERIAL_CHUNK as u32,
            seed as u32,
            (seed >> 32) as u32,
            ek.rng_id,
            match mode {
                Mode::ByTarget(.., targets) => targets as u32,
                _ => 0,
            },
            0,
        ];
        let params = storage(self.ctx, "params", bytemuck::cast_slice(&words))?;
        let mut entries: Vec<(u32, &wgpu::Buffer)> = vec![(0, &params)];
        for b in &compiled.bindings {
            if b.var >= ek.bindings.len() {
                let hs = scalars.as_ref().expect("only hoisting adds variables");
                let var = &kernel.vars[b.var];
                let tables = match var.kind {
                    VarKind::Hoisted { per_step: true, .. } => &hs.step_bufs,
                    _ => &hs.bufs,
                };
                let table = tables
                    .iter()
                    .find(|(t, _)| *t == var.ty)
                    .expect("a table per type");
                entries.push((b.binding, &table.1));
                continue;
            }
            let state = match mode {
                Mode::Integrate(g, _, ids) => {
                    g.states.iter().position(|&v| v == b.var).map(|d| ids[d])
                }
                _ => None,
            };
            let buf = match ek.bindings[b.var] {
                // The GSL driver integrates the variables' own arrays (the interpreter's
                // derivative kernel reads them from stage scratch instead).
                _ if state.is_some() => &self.bufs[state.unwrap_or(0)],
                Binding::Array(id) => &self.bufs[id],
                Binding::Record(r) => {
                    &records
                        .iter()
                        .find(|(id, _, _)| *id == r)
                        .ok_or_else(|| {
                            EngineError::Invalid(format!(
                                "record {r} of kernel '{}' not prepared",
                                ek.kernel.name
                            ))
                        })?
                        .1
                }
                Binding::None => {
                    return Err(EngineError::Invalid(format!(
                        "kernel '{}' uses variable '{}' without data",
                        ek.kernel.name, ek.kernel.vars[b.var].name
                    )));
                }
            };
            entries.push((b.binding, buf));
        }
        if let (Some(lb), Some((l, r))) = (compiled.list_binding, list) {
            entries.push((lb, l));
            entries.push((lb + 1, r));
        }
        if let (Some(bb), Some((_, table, perm, _))) = (compiled.bundle_binding, bundles) {
            entries.push((bb, table));
            entries.push((bb + 1, perm));
        }
        if let Some(sb) = compiled.step_binding {
            entries.push((
                sb,
                step.ok_or_else(|| {
                    EngineError::Invalid(
                        "kernel draws random numbers but its clock has no timestep array".into(),
                    )
                })?,
            ));
        }
        if let Some(pb) = compiled.pos_binding {
            entries.push((
                pb,
                counter.ok_or_else(|| EngineError::Invalid("record counter missing".into()))?,
            ));
        }
        if let (Some(tb), Mode::CountingEvents(_, tiles)) = (compiled.tiles_binding, mode) {
            entries.push((tb, tiles));
        }
        if let (Some(tb), Mode::ByTarget(_, _, state, _)) = (compiled.targets_binding, mode) {
            entries.push((tb, state));
        }
        if let (Some(gb), Mode::Integrate(_, bufs, _)) = (compiled.gsl_binding, mode) {
            for (i, b) in bufs.iter().enumerate() {
                entries.push((gb + i as u32, b));
            }
        }
        let bind = self.bind(&ek.kernel.name, &pipeline, &entries)?;
        Ok(Pass {
            label: ek.kernel.name.clone(),
            pipeline,
            bind,
            entries: owned(&entries),
            grid: grid(self.ctx, n_max.max(1), compiled.workgroup_size),
            params: Some(params),
            indirect: None,
            scalars,
            ring: None,
            at_step: None,
            steps: None,
        })
    }

    /// Upload the arrays and prepare every scheduled operation.
    /// `versions`: per array, the version of its host copy ([`Resident`]; empty: upload
    /// everything).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &'static GpuContext,
        eng: &Engine,
        arrays: Vec<RawArray>,
        clocks: &Clocks,
        steps: usize,
        batch: usize,
        versions: &[u64],
    ) -> Result<Self, EngineError> {
        let n_arrays = arrays.len();
        let mut bufs = Vec::with_capacity(arrays.len());
        let mut kept = std::mem::take(&mut *RESIDENT.lock().unwrap_or_else(|e| e.into_inner()));
        let mut resident = Vec::new();
        let mut uploaded = 0u64;
        for (i, a) in arrays.iter().enumerate() {
            let version = versions.get(i).copied().unwrap_or(0);
            let (buf, stale) = match kept.iter().position(|r| r.holds(ctx, a, version)) {
                Some(k) => {
                    let r = kept.swap_remove(k);
                    (r.buf, r.stale)
                }
                None => {
                    let label = match eng.array_names.get(i) {
                        Some(name) => format!("{name} ({} elements of {})", a.len, a.ty),
                        None => format!("array {i}"),
                    };
                    let bytes = host_to_gpu(a);
                    uploaded += bytes.len() as u64;
                    (storage(ctx, &label, &bytes)?, false)
                }
            };
            if version != 0 {
                resident.push(Resident {
                    ctx: ctx as *const GpuContext as usize,
                    ptr: a.ptr as usize,
                    len: a.len,
                    ty: a.ty,
                    version,
                    buf: buf.clone(),
                    stale,
                    tainted: false,
                });
            }
            bufs.push(buf);
        }
        // Buffers this run does not use are released here; this run's are kept for the
        // next (a failed run forgets them).
        drop(kept);
        *RESIDENT.lock().unwrap_or_else(|e| e.into_inner()) = resident;
        let batch = batch.max(1);
        let rows = vec![0u8; batch * row_stride(ctx) as usize];
        let tables = (0..clocks.clocks.len())
            .map(|_| {
                Ok((
                    storage(ctx, "t table", &rows)?,
                    storage(ctx, "timestep table", &rows)?,
                    storage(ctx, "step record table", &rows)?,
                ))
            })
            .collect::<Result<_, EngineError>>()?;
        let mut run = GpuRun {
            ctx,
            arrays,
            bufs,
            prepared: Vec::new(),
            monitors: Vec::new(),
            queues: (0..eng.queues.len()).map(|_| None).collect(),
            keep: Vec::new(),
            integrations: Vec::new(),
            rng_steps: (0..clocks.clocks.len())
                .map(|_| storage(ctx, "rng step", &[0u8; STEP_BYTES as usize]))
                .collect::<Result<_, _>>()?,
            resume_at: None,
            invariant: invariant_arrays(eng, clocks, n_arrays),
            clock_arrays: clocks
                .clocks
                .iter()
                .enumerate()
                .flat_map(|(c, clock)| {
                    let t = clock.t_array.map(|a| (a, c, true));
                    t.into_iter()
                        .chain(clock.timestep_array.map(|a| (a, c, false)))
                })
                .collect(),
            batch,
            uploaded,
            tables,
            in_flight: None,
            batch_times: BatchTimes::default(),
            versions: versions.to_vec(),
            tainted: false,
            left_on_gpu: Vec::new(),
            invalid: Vec::new(),
            batches: 0,
            compute_passes: 0,
        };
        // Spike queues, each sized for its pathway's kernel (serial or parallel).
        for item in &eng.items {
            if let Op::PushSpikes { queue, eventspace } = &item.op {
                let serial = eng.items.iter().any(|it| {
                    matches!(&it.op, Op::Synapses { kernel, queue: q } if q == queue
                        && ir_parallel(eng, *kernel) == Parallel::Serial)
                });
                let n_space = run.arrays[*eventspace].len.saturating_sub(1);
                run.queues[*queue] = Some(GpuQueue::new(
                    ctx,
                    &eng.queues[*queue],
                    n_space,
                    64,
                    serial,
                )?);
            }
        }
        let mut cx = Prep {
            eng,
            clocks,
            steps,
            dummy: storage(ctx, "dummy", &[0u8; 8])?,
            ranges: Vec::new(),
            fused_threshold: None,
            pos: 0,
            clock: 0,
        };
        for (pos, item) in eng.items.iter().enumerate() {
            if let Op::Threshold { eventspace, .. } | Op::SpikeGenerator { eventspace, .. } =
                &item.op
            {
                cx.ranges.retain(|(k, _)| k.space != *eventspace);
            }
            cx.pos = pos;
            cx.clock = item.clock;
            let prepared = match &item.op {
                Op::Python { index } => Prepared::Python(*index),
                Op::Cable { .. } => run.cable(&mut cx, &item.op)?,
                Op::Integrate { .. } => run.integrate(&mut cx, &item.op)?,
                Op::PushSpikes { .. } => run.push_spikes(&mut cx, &item.op)?,
                Op::Synapses { .. } => run.pathway(&mut cx, &item.op)?,
                Op::SummedVariable { .. } => run.summed_variable(&mut cx, &item.op)?,
                Op::SpikeGenerator { .. } => run.spike_generator(&mut cx, &item.op)?,
                Op::Elementwise { .. } => run.elementwise(&mut cx, &item.op)?,
                Op::Threshold { .. } => run.threshold(&mut cx, &item.op)?,
                Op::Reset { .. } => run.reset(&mut cx, &item.op)?,
                Op::SpikeMonitor { .. } => run.spike_monitor(&mut cx, &item.op)?,
                Op::StateMonitor { .. } => run.state_monitor(&mut cx, &item.op)?,
                Op::RateMonitor { .. } => run.rate_monitor(&mut cx, &item.op)?,
            };
            run.prepared.push(prepared);
        }
        run.bind_steps()?;
        Ok(run)
    }

    /// Per pass that binds a clock's buffers (its t, its timestep, its step record): one
    /// bind group per batch row with that row of the clock's tables in their place.
    fn bind_steps(&mut self) -> Result<(), EngineError> {
        let mut clock_bufs: Vec<(wgpu::Buffer, wgpu::Buffer, u64)> = Vec::new();
        for &(id, c, is_t) in &self.clock_arrays {
            let table = if is_t {
                &self.tables[c].0
            } else {
                &self.tables[c].1
            };
            clock_bufs.push((self.bufs[id].clone(), table.clone(), 8));
        }
        for (c, buf) in self.rng_steps.iter().enumerate() {
            clock_bufs.push((buf.clone(), self.tables[c].2.clone(), STEP_BYTES));
        }
        let rows = self.batch;
        for prep in &mut self.prepared {
            let Prepared::Passes(passes, _) = prep else {
                continue;
            };
            for p in passes {
                let slices: Vec<(u32, wgpu::Buffer, u64)> = p
                    .entries
                    .iter()
                    .filter_map(|(n, b)| {
                        clock_bufs
                            .iter()
                            .find(|(cb, ..)| cb == b)
                            .map(|(_, table, bytes)| (*n, table.clone(), *bytes))
                    })
                    .collect();
                if !slices.is_empty() {
                    p.steps = Some(StepBinds {
                        slices,
                        groups: Vec::new(),
                    });
                    p.bind_rows(self.ctx, rows)?;
                }
            }
        }
        Ok(())
    }

    /// The [lo, hi) positions of the events within [start, stop) of an eventspace (at this
    /// operation's clock), and the indirect dispatch sizes of per-event kernels (a range
    /// record): a buffer and the pass that fills it, or no pass where an earlier operation
    /// of this step already has the same range (`Prep::ranges`).
    fn event_range(
        &self,
        cx: &mut Prep,
        space: usize,
        n: usize,
        start: usize,
        stop: usize,
    ) -> Result<(wgpu::Buffer, Option<Pass>), EngineError> {
        let key = cx.key(space, n, start, stop);
        if let Some((_, buf)) = cx.ranges.iter().find(|(k, _)| *k == key) {
            return Ok((buf.clone(), None));
        }
        let range = self.range_buffer()?;
        let max_groups = self.ctx.limits.max_compute_workgroups_per_dimension;
        let p = storage(
            self.ctx,
            "range params",
            bytemuck::cast_slice(&[
                n as u32,
                start as u32,
                stop as u32,
                max_groups,
                EVENT_WG,
                0,
                0,
                0,
            ]),
        )?;
        let pass = self.support(
            "b2_event_range",
            NEURONS_WGSL,
            "b2_event_range",
            &[
                (0, &p),
                (1, &cx.dummy),
                (2, &self.bufs[space]),
                (3, &range),
                (4, &cx.dummy),
                (5, &self.rng_steps[key.clock]),
            ],
            [1, 1, 1],
        )?;
        cx.ranges.push((key, range.clone()));
        Ok((range, Some(pass)))
    }

    /// A range record (shaders/neurons.wgsl, `b2_spk_write_range`): positions, then
    /// indirect dispatch sizes at [`RANGE_INDIRECT`], [`RANGE_INDIRECT_NONEMPTY`] and
    /// [`RANGE_BUNDLES`].
    fn range_buffer(&self) -> Result<wgpu::Buffer, EngineError> {
        Ok(self
            .ctx
            .indirect_buffer("range", &[0u8; RANGE_RECORD_BYTES as usize])?)
    }

    /// Run the schedule (same contract as the CPU loop), many steps per submission: at
    /// most the `batch` given to [`Self::new`], between checks of `should_stop`.
    pub fn run(
        &mut self,
        eng: &mut Engine,
        clocks: &mut Clocks,
        should_stop: &mut dyn FnMut(&Clocks) -> bool,
    ) -> Result<RunStatus, EngineError> {
        let batch = self.batch;
        let status = loop {
            let first = self.resume_at.take().unwrap_or(0);
            // Plan the batch on a copy of the clocks: which clocks tick at each step, their
            // t and timestep, and where a Python item interrupts.
            let mut sim = clocks.clone();
            let mut plan: Vec<PlannedStep> = Vec::new();
            let mut callback = None;
            while plan.len() < batch {
                let Some((_, cur)) = sim.next() else { break };
                let values = sim.clocks.iter().map(|c| (c.t(), c.timestep)).collect();
                let start = if plan.is_empty() { first } else { 0 };
                callback = eng
                    .items
                    .iter()
                    .zip(&self.prepared)
                    .enumerate()
                    .skip(start)
                    .find(|(_, (it, p))| cur[it.clock] && matches!(p, Prepared::Python(_)))
                    .map(|(pos, (_, p))| match p {
                        Prepared::Python(i) => (pos, *i),
                        _ => unreachable!(),
                    });
                plan.push((cur.clone(), values));
                if callback.is_some() {
                    break;
                }
                sim.advance(&cur);
            }
            if plan.is_empty() {
                break RunStatus::Finished;
            }
            // Record capacity for the whole batch (monitors record at most `worst` per tick).
            let mut keep = plan.len();
            for m in 0..self.monitors.len() {
                let ticks = |n: usize| plan[..n].len(); // every monitor ticks at most once per step
                let fits = |mon: &MonitorRecords, n: usize| {
                    if let Some(b) = &mon.bits {
                        return b.row_t.len() + ticks(n) <= b.rows_cap;
                    }
                    mon.records
                        .iter()
                        .enumerate()
                        .all(|(i, (_, _, cap))| mon.bound[i] + mon.worst[i] * ticks(n) <= *cap)
                };
                if !fits(&self.monitors[m], keep) {
                    let fill = self.drain(eng, m)?;
                    if fill >= 0.5 && !fits(&self.monitors[m], keep) {
                        // The data itself fills the records: larger buffers, fewer drains.
                        self.grow_records(eng, m, ticks(keep))?;
                    }
                    while keep > 1 && !fits(&self.monitors[m], keep) {
                        keep /= 2;
                    }
                }
            }
            if keep < plan.len() {
                plan.truncate(keep);
                callback = None;
            }
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            for (c, (tt, tst, rngt)) in self.tables.iter().enumerate() {
                let t: Vec<f64> = plan.iter().map(|(_, v)| v[c].0).collect();
                let ts: Vec<i64> = plan.iter().map(|(_, v)| v[c].1).collect();
                let base = eng.step_base.get(c).copied().unwrap_or(0);
                // Per step: the random streams' step (i64), then the step's row in the
                // batch (per-step tables).
                let rng: Vec<[u32; 4]> = ts
                    .iter()
                    .enumerate()
                    .map(|(row, s)| {
                        let r = (s - base) as u64;
                        [r as u32, (r >> 32) as u32, row as u32, 0]
                    })
                    .collect();
                let stride = row_stride(self.ctx) as usize;
                let rows = |values: Vec<&[u8]>| {
                    let mut bytes = vec![0u8; values.len() * stride];
                    for (row, v) in values.iter().enumerate() {
                        bytes[row * stride..row * stride + v.len()].copy_from_slice(v);
                    }
                    bytes
                };
                let t_rows = rows(t.iter().map(bytemuck::bytes_of).collect());
                let ts_rows = rows(ts.iter().map(bytemuck::bytes_of).collect());
                let rng_rows = rows(rng.iter().map(|r| bytemuck::cast_slice(r)).collect());
                self.ctx.queue.write_buffer(tt, 0, &t_rows);
                self.ctx.queue.write_buffer(tst, 0, &ts_rows);
                self.ctx.queue.write_buffer(rngt, 0, &rng_rows);
            }
            for p in &self.prepared {
                if let Prepared::Passes(passes, _) = p {
                    for hs in passes.iter().filter_map(|p| p.scalars.as_ref()) {
                        hs.write_steps(self.ctx, &self.arrays, &plan)?;
                    }
                }
            }
            let n_steps = plan.len();
            // One compute pass for the batch: each step's passes bind its row of the clock
            // tables (`Pass::steps`), so nothing is copied between steps.
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.batches += 1;
            self.compute_passes += 1;
            for (s, (cur, _)) in plan.iter().enumerate() {
                let start = if s == 0 { first } else { 0 };
                let end = match callback {
                    Some((pos, _)) if s + 1 == n_steps => pos,
                    _ => eng.items.len(),
                };
                for (pos, (item, prep)) in eng.items[start..end]
                    .iter()
                    .zip(&self.prepared[start..end])
                    .enumerate()
                {
                    if !cur[item.clock] {
                        continue;
                    }
                    // The clock's step in this run (ring slots, first steps' passes).
                    let r = plan[s].1[item.clock].1
                        - eng.step_base.get(item.clock).copied().unwrap_or(0);
                    if let Prepared::Passes(passes, mon) = prep {
                        // Before the dispatch: a bit record's parameters are written for its
                        // first row, and the write must reach the GPU in the submission that
                        // runs the kernel (profiling submits each item on its own).
                        if let Some(m) = mon {
                            let mon = &mut self.monitors[*m];
                            for i in 0..mon.bound.len() {
                                mon.bound[i] += mon.worst[i];
                            }
                            if let Some(b) = &mut mon.bits {
                                // This tick's row: its t, and row 0's timestep for the kernel
                                // (written before this batch runs).
                                let (t, ts) = plan[s].1[item.clock];
                                if b.row_t.is_empty() {
                                    let words = [b.start as u32, b.words as u32, ts as u32, 0];
                                    self.ctx.queue.write_buffer(
                                        &b.params,
                                        0,
                                        bytemuck::cast_slice(&words),
                                    );
                                }
                                b.row_t.push(t);
                            }
                            if let Some(h) = &mut mon.host_time {
                                h.row_t.push(plan[s].1[item.clock].0);
                            }
                        }
                        if eng.profile.is_some() {
                            // Profiling: this item's work alone, timed to completion.
                            drop(pass);
                            self.ctx.submit("profile", enc.finish())?;
                            self.ctx.wait("profile")?;
                            let t0 = std::time::Instant::now();
                            enc = self.ctx.device.create_command_encoder(&Default::default());
                            pass = enc.begin_compute_pass(&Default::default());
                            self.compute_passes += 1;
                            for p in passes {
                                dispatch(&mut pass, p, r, s);
                            }
                            drop(pass);
                            self.ctx.submit("profile", enc.finish())?;
                            self.ctx.wait("profile")?;
                            if let Some(prof) = eng.profile.as_mut() {
                                prof[start + pos] += t0.elapsed().as_secs_f64();
                            }
                            enc = self.ctx.device.create_command_encoder(&Default::default());
                            pass = enc.begin_compute_pass(&Default::default());
                            self.compute_passes += 1;
                        } else {
                            for p in passes {
                                dispatch(&mut pass, p, r, s);
                            }
                        }
                    }
                }
            }
            drop(pass);
            if !self.tainted {
                self.tainted = true;
                let invariant = &self.invariant;
                with_resident(self, |id, r| r.tainted |= !invariant[id]);
            }
            let submitted = self.ctx.submit("batch", enc.finish())?;
            self.batch_times
                .submitted(self.ctx, n_steps, eng.gpu_step_seconds);
            // The real clocks follow the plan (the last step stays open for a callback).
            for (s, (cur, _)) in plan.iter().enumerate() {
                if callback.is_some() && s + 1 == n_steps {
                    break;
                }
                clocks.advance(cur);
            }
            if let Some((pos, index)) = callback {
                // Python needs the current state: bring arrays and records back first,
                // and the clocks at the open step.
                self.sync_to_host(eng)?;
                self.in_flight = None;
                self.batch_times
                    .all_finished(self.ctx, &mut eng.gpu_step_seconds);
                unsafe { clocks.write_host(&self.arrays) };
                self.resume_at = Some(pos + 1);
                return Ok(RunStatus::Callback { index });
            }
            // One batch in flight: wait for the previous one while this one runs, so that
            // the host plans and records the next batch while the GPU works.
            if let Some(prev) = self.in_flight.replace(submitted) {
                self.ctx.wait_for("batch", prev)?;
                self.batch_times
                    .oldest_finished(self.ctx, &mut eng.gpu_step_seconds);
            }
            if should_stop(clocks) {
                break RunStatus::Stopped;
            }
        };
        self.finish(eng)?;
        self.batch_times
            .all_finished(self.ctx, &mut eng.gpu_step_seconds);
        unsafe { clocks.write_host(&self.arrays) };
        self.check_integrations()?;
        Ok(status)
    }

    /// The end of a run: monitors and queues come back; the arrays the run wrote stay on
    /// the GPU, ahead of their host copies, until Python reads them
    /// ([`download_resident`]). Arrays without a version (tables made for this run) are
    /// downloaded now; the clocks' arrays are the host's to write.
    fn finish(&mut self, eng: &mut Engine) -> Result<(), EngineError> {
        self.drain_records(eng)?;
        let clock = |id: usize| self.clock_arrays.iter().any(|c| c.0 == id);
        let mut kept = vec![false; self.arrays.len()];
        with_resident(self, |id, r| {
            r.tainted = false;
            if !self.invariant[id] && !clock(id) {
                r.stale = true;
                kept[id] = true;
            }
        });
        self.download(|id| !self.invariant[id] && !kept[id] && !clock(id))?;
        self.left_on_gpu = (0..kept.len()).filter(|&id| kept[id]).collect();
        self.invalid = self.check_invalid(eng)?;
        Ok(())
    }

    /// Every monitor's records and every spike queue's state to the engine's host copies.
    fn drain_records(&mut self, eng: &mut Engine) -> Result<(), EngineError> {
        for m in 0..self.monitors.len() {
            self.drain(eng, m)?;
        }
        for (q, gq) in self.queues.iter().enumerate() {
            if let Some(gq) = gq {
                gq.download(self.ctx, &mut eng.queues[q])?;
            }
        }
        Ok(())
    }

    /// Copy the arrays `which` selects from their buffers into the host arrays.
    fn download(&self, which: impl Fn(usize) -> bool) -> Result<(), EngineError> {
        for (id, (a, buf)) in self.arrays.iter().zip(&self.bufs).enumerate() {
            if !which(id) || a.ptr.is_null() || a.len == 0 {
                continue;
            }
            let data = self.ctx.read_buffer(buf, a.len * gpu_elem_size(a.ty))?;
            gpu_to_host(a, &data);
        }
        Ok(())
    }

    /// Brian2's check of integrated variables for invalid values, on the GPU for those
    /// whose newest values are there (the others are on the host, where Python checks
    /// them): the ids of the arrays that hold NaN, an infinity or a magnitude above 1e50.
    fn check_invalid(&self, eng: &Engine) -> Result<Vec<usize>, EngineError> {
        let mut on_gpu = vec![false; self.arrays.len()];
        with_resident(self, |id, r| on_gpu[id] = r.stale);
        let ids: Vec<usize> = eng
            .checked_arrays
            .iter()
            .copied()
            .filter(|&id| {
                on_gpu.get(id).copied().unwrap_or(false)
                    && matches!(self.arrays[id].ty, Type::F64 | Type::F32)
                    && self.arrays[id].len > 0
            })
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let flags = storage(self.ctx, "invalid-value flags", &vec![0u8; 4 * ids.len()])?;
        let mut passes = Vec::new();
        for (k, &id) in ids.iter().enumerate() {
            let a = self.arrays[id];
            let params = storage(
                self.ctx,
                "invalid-value check",
                bytemuck::cast_slice(&[a.len as u32, (a.ty == Type::F64) as u32, k as u32]),
            )?;
            let mut p = self.support(
                "b2_check_invalid",
                NEURONS_WGSL,
                "b2_check_invalid",
                &[(6, &params), (7, &self.bufs[id]), (8, &flags)],
                grid(self.ctx, a.len, 64),
            )?;
            p.params = Some(params);
            passes.push(p);
        }
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for p in &passes {
                dispatch(&mut pass, p, 0, 0);
            }
        }
        self.ctx.submit("invalid-value check", enc.finish())?;
        let data = self.ctx.read_buffer(&flags, 4 * ids.len())?;
        let words: &[u32] = bytemuck::cast_slice(&data[..4 * ids.len()]);
        Ok(ids
            .iter()
            .zip(words)
            .filter(|(_, w)| **w != 0)
            .map(|(id, _)| *id)
            .collect())
    }

    /// Download every array and drain every monitor (before a Python callback, which
    /// reads and writes host arrays).
    pub fn sync_to_host(&mut self, eng: &mut Engine) -> Result<(), EngineError> {
        // Arrays a previous run left on the GPU: Python may read any of them, and the
        // upload after the callback writes every host copy back.
        let mut ahead = vec![false; self.arrays.len()];
        with_resident(self, |id, r| ahead[id] = r.stale);
        self.drain_records(eng)?;
        // What no operation writes is on the host already, unless a run left it ahead.
        // The clocks' arrays are the host's (kernels read the clock tables).
        let clock = |id: usize| self.clock_arrays.iter().any(|c| c.0 == id);
        self.download(|id| (!self.invariant[id] || ahead[id]) && !clock(id))?;
        with_resident(self, |_, r| r.stale = false);
        Ok(())
    }

    /// Per schedule item, its dispatches when it runs: (label, workgroup grid), the grid
    /// `None` where the GPU computes it (indirect dispatch).
    pub fn dispatches(&self) -> Vec<Vec<Dispatch>> {
        self.prepared
            .iter()
            .map(|p| match p {
                // Passes of one step only (queue state of earlier runs) are left out.
                Prepared::Passes(passes, _) => passes
                    .iter()
                    .filter(|p| p.at_step.is_none())
                    .map(|p| (p.label.clone(), p.indirect.is_none().then_some(p.grid)))
                    .collect(),
                Prepared::Python(_) => Vec::new(),
            })
            .collect()
    }

    /// Bytes of GPU memory the run's monitors hold (records, bit rows, counters).
    pub fn monitor_bytes(&self) -> u64 {
        self.monitors
            .iter()
            .map(|m| {
                m.counter.size()
                    + m.records.iter().map(|(_, b, _)| b.size()).sum::<u64>()
                    + m.bits
                        .as_ref()
                        .map_or(0, |b| b.bits.size() + b.params.size())
            })
            .sum()
    }

    /// After a Python callback changed host arrays: upload them again (the callback saw
    /// every array of the run on the host, [`Self::sync_to_host`]).
    pub fn upload_all(&self) -> Result<(), EngineError> {
        for (a, buf) in self.arrays.iter().zip(&self.bufs) {
            if a.ptr.is_null() || a.len == 0 {
                continue;
            }
            self.ctx.queue.write_buffer(buf, 0, &host_to_gpu(a));
        }
        // Python may have changed what the hoisted scalar values depend on.
        for p in &self.prepared {
            let Prepared::Passes(passes, _) = p else {
                continue;
            };
            for hs in passes.iter().filter_map(|p| p.scalars.as_ref()) {
                let (run, _) = hs.values(&self.arrays, None)?;
                for ((_, buf), (_, bytes)) in hs.bufs.iter().zip(run) {
                    self.ctx.queue.write_buffer(buf, 0, &bytes);
                }
            }
        }
        Ok(())
    }
}

fn ir_parallel(eng: &Engine, kernel: usize) -> Parallel {
    let ek = &eng.kernels[kernel];
    crate::ir::parallel(&ek.kernel, &alias_of(ek))
}

/// Per kernel variable, the first variable bound to the same buffer.
fn alias_of(ek: &super::EngineKernel) -> Vec<usize> {
    let b = &ek.bindings;
    (0..b.len())
        .map(|v| match b[v] {
            Binding::None => v,
            other => b.iter().position(|&x| x == other).unwrap_or(v),
        })
        .collect()
}

fn bind_group(
    ctx: &GpuContext,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    entries: &[(u32, &wgpu::Buffer)],
) -> Result<wgpu::BindGroup, EngineError> {
    let whole: Vec<_> = entries
        .iter()
        .map(|(b, buf)| (*b, buf.as_entire_buffer_binding()))
        .collect();
    bind_ranges(ctx, label, pipeline, &whole)
}

/// [`bind_group`] with parts of buffers.
fn bind_ranges(
    ctx: &GpuContext,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    entries: &[(u32, wgpu::BufferBinding<'_>)],
) -> Result<wgpu::BindGroup, EngineError> {
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let entries: Vec<_> = entries
        .iter()
        .map(|(b, range)| wgpu::BindGroupEntry {
            binding: *b,
            resource: wgpu::BindingResource::Buffer(range.clone()),
        })
        .collect();
    let group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(EngineError::Gpu(GpuError::Device {
            label: label.into(),
            message: format!("internal error binding buffers: {e}"),
        }));
    }
    Ok(group)
}

impl Pass {
    /// Bind `new` wherever this pass binds `old`.
    fn rebind(
        &mut self,
        ctx: &GpuContext,
        old: &wgpu::Buffer,
        new: &wgpu::Buffer,
    ) -> Result<(), EngineError> {
        if !self.entries.iter().any(|(_, b)| b == old) {
            return Ok(());
        }
        for (_, b) in self.entries.iter_mut().filter(|(_, b)| b == old) {
            *b = new.clone();
        }
        let entries: Vec<(u32, &wgpu::Buffer)> =
            self.entries.iter().map(|(n, b)| (*n, b)).collect();
        self.bind = bind_group(ctx, &self.label, &self.pipeline, &entries)?;
        let rows = self.steps.as_ref().map_or(0, |s| s.groups.len());
        self.bind_rows(ctx, rows)
    }

    /// The per-row bind groups of [`StepBinds`] (none without clock bindings).
    fn bind_rows(&mut self, ctx: &GpuContext, rows: usize) -> Result<(), EngineError> {
        let Some(steps) = &self.steps else {
            return Ok(());
        };
        let stride = row_stride(ctx);
        let mut groups = Vec::with_capacity(rows);
        for row in 0..rows as u64 {
            let entries: Vec<(u32, wgpu::BufferBinding<'_>)> = self
                .entries
                .iter()
                .map(|(n, b)| match steps.slices.iter().find(|s| s.0 == *n) {
                    Some((_, table, bytes)) => (
                        *n,
                        wgpu::BufferBinding {
                            buffer: table,
                            offset: row * stride,
                            size: std::num::NonZeroU64::new(*bytes),
                        },
                    ),
                    None => (*n, b.as_entire_buffer_binding()),
                })
                .collect();
            groups.push(bind_ranges(ctx, &self.label, &self.pipeline, &entries)?);
        }
        if let Some(steps) = &mut self.steps {
            steps.groups = groups;
        }
        Ok(())
    }
}

/// Bytes per row of the clock tables: one step's values, at an offset a bind group may
/// start from.
fn row_stride(ctx: &GpuContext) -> u64 {
    (ctx.limits.min_storage_buffer_offset_alignment as u64).max(STEP_BYTES)
}

fn owned(entries: &[(u32, &wgpu::Buffer)]) -> Vec<(u32, wgpu::Buffer)> {
    entries
        .iter()
        .map(|(b, buf)| (*b, (*buf).clone()))
        .collect()
}

fn queue_of(queues: &[Option<GpuQueue>], q: usize) -> Result<&GpuQueue, EngineError> {
    queues
        .get(q)
        .and_then(|q| q.as_ref())
        .ok_or_else(|| EngineError::Invalid(format!("spike queue {q} has no push operation")))
}

/// Record `p` at step `r` of its clock in this run.
/// Record pass `p` at the clock's step `r` in this run, row `row` of the batch.
fn dispatch(pass: &mut wgpu::ComputePass<'_>, p: &Pass, r: i64, row: usize) {
    if p.at_step.is_some_and(|at| at != r) {
        return;
    }
    pass.set_pipeline(&p.pipeline);
    let bind = match &p.steps {
        Some(steps) => &steps.groups[row],
        None => &p.bind,
    };
    pass.set_bind_group(0, bind, &[]);
    match (&p.indirect, p.ring) {
        (Some((buf, offset)), Some((slots, delay, stride))) => {
            let slot = (r as u64 % slots + slots - delay) % slots;
            pass.dispatch_workgroups_indirect(buf, offset + slot * stride)
        }
        (Some((buf, offset)), None) => pass.dispatch_workgroups_indirect(buf, *offset),
        (None, _) => pass.dispatch_workgroups(p.grid[0], p.grid[1], p.grid[2]),
    }
}

#[cfg(test)]
mod tests {
    /// Every hand-written support module parses and validates as a whole (naga), and those
    /// used by every model need no f64 (adapters without SHADER_F64 create them too).
    #[test]
    fn support_modules_validate_as_whole_modules() {
        use crate::ir::Type;
        use naga::valid::{Capabilities, ValidationFlags, Validator};
        let summed = super::summed::summed_source;
        let without_f64 = Capabilities::all() - Capabilities::FLOAT64;
        let modules = [
            ("neurons", super::NEURONS_WGSL.to_string(), without_f64),
            ("queue", super::QUEUE_WGSL.to_string(), without_f64),
            ("synapses", super::SYNAPSES_WGSL.to_string(), without_f64),
            (
                "spikegen",
                super::spikegen::SPIKEGEN_WGSL.to_string(),
                without_f64,
            ),
            (
                "monitors",
                super::monitors::MONITORS_WGSL.to_string(),
                without_f64,
            ),
            (
                "monitors_f64",
                super::monitors::MONITORS_F64_WGSL.to_string(),
                Capabilities::all(),
            ),
            (
                "summed f32, emulated f64",
                summed(Type::F32, false),
                without_f64,
            ),
            ("summed i32", summed(Type::I32, false), without_f64),
            (
                "cable f32",
                format!("alias Value = f32;\n{}", super::cable::CABLE_WGSL),
                without_f64,
            ),
            (
                "cable f64",
                format!("alias Value = f64;\n{}", super::cable::CABLE_WGSL),
                Capabilities::all(),
            ),
            ("summed f64", summed(Type::F64, true), Capabilities::all()),
            (
                "summed f32 in f64",
                summed(Type::F32, true),
                Capabilities::all(),
            ),
        ];
        for (name, src, caps) in modules {
            let module = naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
            Validator::new(ValidationFlags::all(), caps)
                .validate(&module)
                .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
            assert!(!module.entry_points.is_empty(), "{name}: no entry point");
        }
    }
}
