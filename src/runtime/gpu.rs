//! The schedule on a wgpu device. Arrays are uploaded once per run and stay resident;
//! each time step is one command submission whose dispatches read event counts and record
//! lengths from GPU buffers, so no step waits for the host. Monitor records have capacity
//! for the worst case of the next step before it is recorded; when a record could
//! overflow, it is drained to the host first (so nothing is ever dropped).

use std::sync::Arc;

use super::gpu_queue::{Bundles, GpuQueue, SERIAL_CHUNK};
use super::{Binding, Clocks, Engine, EngineError, Op, RunStatus, elem_size};
use crate::cpu::{Program, RawArray};
use crate::gpu::{GpuContext, GpuError, check_features, grid};
use crate::ir::{Parallel, Type};
use crate::wgsl::{self, Options};

const ENGINE_WGSL: &str = include_str!("../../shaders/engine.wgsl");
const SPIKES_WGSL: &str = include_str!("../../shaders/spikes.wgsl");
const SYNAPSES_WGSL: &str = include_str!("../../shaders/synapses.wgsl");

/// One section (from a line `//! section {name}` to the next) of a support shader file.
fn section_of(file: &str, name: &str) -> String {
    let marker = format!("//! section {name}\n");
    let start = file.find(&marker).expect("shader section") + marker.len();
    let rest = &file[start..];
    let end = rest.find("//! section ").unwrap_or(rest.len());
    rest[..end].to_string()
}

fn section(name: &str) -> String {
    section_of(ENGINE_WGSL, name)
}

/// How a generated kernel iterates.
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// Over `0..n`.
    Elements,
    /// Over `0..n`, counting the elements where variable `.0` (the threshold's flag) holds
    /// into the compaction's tile counters `.1` (shaders/spikes.wgsl).
    CountingEvents(usize, &'a wgpu::Buffer),
    /// Over `list[range[0]..range[1]]`, one invocation per entry; `atomic`: variables
    /// accumulated atomically.
    List(&'a wgpu::Buffer, &'a wgpu::Buffer, &'a [usize]),
    /// Over the same list in order, in one invocation: `SERIAL_CHUNK` entries from `start`.
    Serial(&'a wgpu::Buffer, &'a wgpu::Buffer, usize),
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
    },
}

/// One dispatch: a pipeline, its bindings, the grid, and (for generated kernels) the
/// parameter buffer to refresh each step.
struct Pass {
    /// The pipeline's label: the Brian2 code object, or the support kernel's name.
    label: String,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind: wgpu::BindGroup,
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
}

/// A generated kernel's scalar statements that do not change during a run
/// ([`crate::ir::hoist_scalars`]): evaluated once by the interpreter, read by every
/// invocation from one small buffer each, instead of being recomputed per element.
struct HoistedScalars {
    eval: Program,
    /// Bindings of the evaluation's inputs (the kernel's own variables).
    inputs: Vec<Binding>,
    /// Types of the outputs, in order (each type's values fill its table in that order).
    types: Vec<Type>,
    /// One table per type.
    bufs: Vec<(Type, wgpu::Buffer)>,
}

impl HoistedScalars {
    /// The values, one table per type as the GPU stores them (booleans as u32), in the
    /// order the types first appear.
    fn values(&self, arrays: &[RawArray]) -> Result<Vec<(Type, Vec<u8>)>, EngineError> {
        let mut out: Vec<Vec<u64>> = self.types.iter().map(|_| vec![0u64]).collect();
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
        for (ty, o) in self.types.iter().zip(out.iter_mut()) {
            raws.push(RawArray {
                ptr: o.as_mut_ptr() as *mut u8,
                len: 1,
                ty: *ty,
            });
        }
        let args = crate::cpu::RunArgs {
            n: 1,
            ..Default::default()
        };
        unsafe { self.eval.run_raw(&raws, &args)? };
        let mut tables: Vec<(Type, Vec<u8>)> = Vec::new();
        for (ty, raw) in self.types.iter().zip(&raws[self.inputs.len()..]) {
            let bytes = host_to_gpu(raw);
            match tables.iter_mut().find(|(t, _)| t == ty) {
                Some((_, table)) => table.extend(bytes),
                None => tables.push((*ty, bytes)),
            }
        }
        Ok(tables)
    }
}

/// A SpikeMonitor that records only `i` and `t`, as bit rows (`record_event_bits` in
/// shaders/engine.wgsl): memory follows the recorded steps, not the worst-case spike count.
struct EventBits {
    bits: wgpu::Buffer,
    params: wgpu::Buffer,
    /// First neuron of the monitored range, and u32 words per row (one bit per neuron).
    start: usize,
    words: usize,
    rows_cap: usize,
    /// t of each row recorded since the last drain (the kernel gets row 0's timestep when
    /// the first row is recorded).
    row_t: Vec<f64>,
    /// The source's `i` values (indexed by neuron), and the records they go to.
    i_values: usize,
    i_record: usize,
    t_record: usize,
}

/// Host memory for a monitor's bit rows: a few MB whatever the group's size (at least
/// one row, at most 4,096).
const EVENT_BITS_BUDGET: usize = 4 << 20;

/// A monitor's GPU-side records and counter.
struct MonitorRecords {
    /// Bit rows instead of `records` (see [`EventBits`]).
    bits: Option<EventBits>,
    counter: wgpu::Buffer,
    records: Vec<(usize, wgpu::Buffer, usize)>, // (record id, buffer, capacity in elements)
    /// Elements each record may gain in one step (per record).
    worst: Vec<usize>,
    /// Upper bound of the current lengths (host-side, no sync needed).
    bound: Vec<usize>,
    /// Which counter word gives each record's length: 0 (values) or 1 (rows).
    len_word: Vec<usize>,
}

/// A dispatch as `profile` reports it: the kernel, and its workgroup grid (`None` where
/// the GPU computes it: indirect dispatch).
pub type Dispatch = (String, Option<[u32; 3]>);

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
    /// Per clock, the random streams' step (timestep minus the run's first; 2 u32 words).
    rng_steps: Vec<wgpu::Buffer>,
    /// Per clock, the batch's (t, timestep, random-stream step) tables, reused from batch
    /// to batch (queue writes land after the previous batch's reads, in queue order).
    tables: Vec<(wgpu::Buffer, wgpu::Buffer, wgpu::Buffer)>,
    /// Steps the tables hold.
    table_steps: usize,
    /// The batch the GPU may still be running while the next one is recorded.
    in_flight: Option<wgpu::SubmissionIndex>,
    resume_at: Option<usize>,
    /// Per array: nothing writes it while the engine runs (scalar code reading only such
    /// arrays is evaluated once, on the host).
    invariant: Vec<bool>,
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
        let scope = self
            .ctx
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        let entries: Vec<_> = entries
            .iter()
            .map(|(b, buf)| wgpu::BindGroupEntry {
                binding: *b,
                resource: buf.as_entire_binding(),
            })
            .collect();
        let group = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
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
            grid,
            params: None,
            indirect: None,
            scalars: None,
            ring: None,
            at_step: None,
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
        let hoisted = crate::ir::hoist_scalars(
            &ek.kernel,
            |v| matches!(ek.bindings[v], Binding::Array(id) if self.invariant[id]),
        );
        let kernel =
            crate::ir::share_subexpressions(hoisted.as_ref().map_or(&ek.kernel, |h| &h.kernel));
        let kernel = &kernel;
        check_features(self.ctx, kernel)?;
        let (list, atomic, serial, bundles) = match mode {
            Mode::Elements | Mode::CountingEvents(..) => (None, &[][..], None, None),
            Mode::List(l, r, atomic) => (Some((l, r)), atomic, None, None),
            Mode::Serial(l, r, start) => (Some((l, r)), &[][..], Some(start), None),
            Mode::Bundles {
                bundling,
                list,
                range,
                table,
                perm,
                atomic,
            } => (
                Some((list, range)),
                atomic,
                None,
                Some((bundling, table, perm)),
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
            bundles: bundles.map(|b| b.0),
            workgroup_size: if serial.is_some() { 1 } else { 64 },
        };
        let compiled =
            wgsl::compile(kernel, &opts).map_err(|e| EngineError::Invalid(e.to_string()))?;
        let pipeline = self
            .ctx
            .pipeline(&ek.kernel.name, &compiled.source, &compiled.entry)?;
        let scalars = match &hoisted {
            None => None,
            Some(h) => {
                let eval = Program::new(&h.eval)?;
                let mut hs = HoistedScalars {
                    eval,
                    inputs: ek.bindings.clone(),
                    types: h.kernel.vars[h.first..].iter().map(|v| v.ty).collect(),
                    bufs: Vec::new(),
                };
                let label = format!("{} scalars", ek.kernel.name);
                for (ty, bytes) in hs.values(&self.arrays)? {
                    hs.bufs.push((ty, storage(self.ctx, &label, &bytes)?));
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
            0,
            0,
        ];
        let params = storage(self.ctx, "params", bytemuck::cast_slice(&words))?;
        let mut entries: Vec<(u32, &wgpu::Buffer)> = vec![(0, &params)];
        for b in &compiled.bindings {
            if b.var >= ek.bindings.len() {
                let hs = scalars.as_ref().expect("only hoisting adds variables");
                let ty = kernel.vars[b.var].ty;
                let table = hs
                    .bufs
                    .iter()
                    .find(|(t, _)| *t == ty)
                    .expect("a table per type");
                entries.push((b.binding, &table.1));
                continue;
            }
            let buf = match ek.bindings[b.var] {
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
        if let (Some(bb), Some((_, table, perm))) = (compiled.bundle_binding, bundles) {
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
        let bind = self.bind(&ek.kernel.name, &pipeline, &entries)?;
        Ok(Pass {
            label: ek.kernel.name.clone(),
            pipeline,
            bind,
            grid: grid(self.ctx, n_max.max(1), compiled.workgroup_size),
            params: Some(params),
            indirect: None,
            scalars,
            ring: None,
            at_step: None,
        })
    }

    fn records_for(
        &self,
        eng: &Engine,
        ids: &[usize],
        worst: &[usize],
        len_word: &[usize],
        steps: usize,
    ) -> Result<MonitorRecords, EngineError> {
        let limit = self.ctx.limits.max_storage_buffer_binding_size as usize;
        let mut records = Vec::new();
        for (i, &r) in ids.iter().enumerate() {
            let size = gpu_elem_size(eng.records[r].ty);
            let want = worst[i].saturating_mul(steps.clamp(1, 4096)).max(1024);
            let cap = want.min(limit / size);
            if cap < worst[i] {
                return Err(EngineError::Gpu(GpuError::TooLarge {
                    label: format!("record {r} (one step)"),
                    size: (worst[i] * size) as u64,
                    limit: limit as u64,
                }));
            }
            let buf = self.ctx.create_buffer(&wgpu::BufferDescriptor {
                label: Some("monitor records"),
                size: (cap * size).div_ceil(4) as u64 * 4,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })?;
            records.push((r, buf, cap));
        }
        Ok(MonitorRecords {
            bits: None,
            counter: storage(self.ctx, "counter", &[0u8; 8])?,
            records,
            worst: worst.to_vec(),
            bound: vec![0; ids.len()],
            len_word: len_word.to_vec(),
        })
    }

    /// Upload the arrays and prepare every scheduled operation.
    pub fn new(
        ctx: &'static GpuContext,
        eng: &Engine,
        arrays: Vec<RawArray>,
        clocks: &Clocks,
        steps: usize,
    ) -> Result<Self, EngineError> {
        let n_arrays = arrays.len();
        let mut bufs = Vec::with_capacity(arrays.len());
        for (i, a) in arrays.iter().enumerate() {
            let label = match eng.array_names.get(i) {
                Some(name) => format!("{name} ({} elements of {})", a.len, a.ty),
                None => format!("array {i}"),
            };
            bufs.push(storage(ctx, &label, &host_to_gpu(a))?);
        }
        let mut run = GpuRun {
            ctx,
            arrays,
            bufs,
            prepared: Vec::new(),
            monitors: Vec::new(),
            queues: (0..eng.queues.len()).map(|_| None).collect(),
            keep: Vec::new(),
            rng_steps: (0..clocks.clocks.len())
                .map(|_| storage(ctx, "rng step", &[0u8; 8]))
                .collect::<Result<_, _>>()?,
            resume_at: None,
            invariant: invariant_arrays(eng, clocks, n_arrays),
            tables: Vec::new(),
            table_steps: 0,
            in_flight: None,
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
        let dummy = storage(ctx, "dummy", &[0u8; 8])?;
        // Event ranges computed earlier in the step, valid until the eventspace is written.
        let mut ranges: Vec<(RangeKey, wgpu::Buffer)> = Vec::new();
        // A threshold already run by the state update before it (fused), and its counters.
        let mut fused_threshold: Option<(usize, wgpu::Buffer)> = None;
        for (pos, item) in eng.items.iter().enumerate() {
            if let Op::Threshold { eventspace, .. } | Op::SpikeGenerator { eventspace, .. } =
                &item.op
            {
                ranges.retain(|(k, _)| k.space != *eventspace);
            }
            let key = |space: usize, n: usize, start: usize, stop: usize| RangeKey {
                space,
                n,
                start,
                stop,
                clock: item.clock,
            };
            let ts = clocks.clocks[item.clock].timestep_array;
            let clock_step = ts.map(|a| &run.bufs[a]);
            let step_buf = Some(&run.rng_steps[item.clock]);
            let prepared = match &item.op {
                Op::Python { index } => Prepared::Python(*index),
                Op::PushSpikes { queue, .. }
                    if queue_of(&run.queues, *queue)?.bundles == Some(Bundles::Direct) =>
                {
                    // The pathway's kernel reads this step's events itself.
                    Prepared::Passes(Vec::new(), None)
                }
                Op::PushSpikes { queue, eventspace } => {
                    let n_space = run.arrays[*eventspace].len.saturating_sub(1);
                    let sq = &eng.queues[*queue];
                    let (range, rp) = run.event_range(
                        &mut ranges,
                        key(*eventspace, n_space, sq.source_start, sq.source_stop),
                        &dummy,
                    )?;
                    let q = queue_of(&run.queues, *queue)?;
                    if let Some(Bundles::Ring { .. } | Bundles::Groups) = q.bundles {
                        let mut p = run.support(
                            "queue_push",
                            &section_of(SYNAPSES_WGSL, "queue_push_bundles"),
                            "main",
                            &[
                                (0, &q.params),
                                (1, &run.bufs[*eventspace]),
                                (2, &q.state),
                                (3, &q.ring),
                                (4, &range),
                                (5, &run.rng_steps[item.clock]),
                                (6, &q.slots),
                            ],
                            [1, 1, 1],
                        )?;
                        p.indirect = Some((range.clone(), RANGE_INDIRECT_NONEMPTY));
                        run.prepared
                            .push(Prepared::Passes(rp.into_iter().chain([p]).collect(), None));
                        continue;
                    }
                    let mut p = run.support(
                        "queue_push",
                        &section_of(SYNAPSES_WGSL, "queue_push"),
                        "main",
                        &[
                            (0, &q.params),
                            (1, &run.bufs[*eventspace]),
                            (2, &q.state),
                            (3, &q.ring),
                            (4, &range),
                        ],
                        [1, 1, 1],
                    )?;
                    p.indirect = Some((range.clone(), RANGE_INDIRECT_NONEMPTY));
                    Prepared::Passes(rp.into_iter().chain([p]).collect(), None)
                }
                Op::Synapses { kernel, queue }
                    if queue_of(&run.queues, *queue)?.bundles.is_some() =>
                {
                    let q = queue_of(&run.queues, *queue)?;
                    let atomic = match ir_parallel(eng, *kernel) {
                        Parallel::Atomic(v) => v,
                        _ => Vec::new(),
                    };
                    let mut passes = Vec::new();
                    // Queue state of earlier runs: over those synapses, at their step.
                    for (j, rec) in &q.extra_ranges {
                        let mode = Mode::List(&q.perm_buf, rec, &atomic);
                        let n_max = (q.perm_buf.size() / 4) as usize;
                        let mut p =
                            run.kernel_pass(eng, &[], *kernel, n_max, mode, None, step_buf)?;
                        p.indirect = Some((rec.clone(), RANGE_INDIRECT));
                        p.at_step = Some(*j as i64);
                        passes.push(p);
                    }
                    let (list, range, ring) = match q.bundles {
                        Some(Bundles::Ring { delay }) => (
                            &q.ring,
                            q.slots.clone(),
                            Some((q.slots_count(), delay as u64, RANGE_RECORD_BYTES)),
                        ),
                        Some(Bundles::Groups) => {
                            // The grid: a row per delay, a column per due event.
                            passes.push(run.support(
                                "queue_plan",
                                &section_of(SYNAPSES_WGSL, "queue_plan"),
                                "main",
                                &[
                                    (0, &q.params),
                                    (1, &q.ring),
                                    (2, &q.tables),
                                    (3, &run.rng_steps[item.clock]),
                                    (4, &q.slots),
                                ],
                                grid(ctx, q.distinct_delays().max(1), 64),
                            )?);
                            (&q.ring, q.slots.clone(), Some((2, 0, 16)))
                        }
                        _ => {
                            let Some(eventspace) = eng.items.iter().find_map(|it| match &it.op {
                                Op::PushSpikes {
                                    queue: pq,
                                    eventspace,
                                } if pq == queue => Some(*eventspace),
                                _ => None,
                            }) else {
                                return Err(EngineError::Invalid(format!(
                                    "pathway '{}' has no spike push",
                                    eng.kernels[*kernel].kernel.name
                                )));
                            };
                            let sq = &eng.queues[*queue];
                            let n_space = run.arrays[eventspace].len.saturating_sub(1);
                            let (range, rp) = run.event_range(
                                &mut ranges,
                                key(eventspace, n_space, sq.source_start, sq.source_stop),
                                &dummy,
                            )?;
                            passes.extend(rp);
                            (&run.bufs[eventspace], range, None)
                        }
                    };
                    let bundling = match q.bundles {
                        Some(Bundles::Groups) => wgsl::Bundling::SourceDelays,
                        _ => wgsl::Bundling::Sources,
                    };
                    let mode = Mode::Bundles {
                        bundling,
                        list,
                        range: &range,
                        table: &q.bundle_table,
                        perm: &q.perm_buf,
                        atomic: &atomic,
                    };
                    let mut p = run.kernel_pass(eng, &[], *kernel, 1, mode, None, step_buf)?;
                    p.indirect = Some(match bundling {
                        wgsl::Bundling::Sources => (range.clone(), RANGE_BUNDLES),
                        wgsl::Bundling::SourceDelays => (range.clone(), 0),
                    });
                    p.ring = ring;
                    passes.push(p);
                    Prepared::Passes(passes, None)
                }
                Op::Synapses { kernel, queue } => {
                    let q = queue_of(&run.queues, *queue)?;
                    let deliver = run.support(
                        "queue_deliver",
                        &section_of(SYNAPSES_WGSL, "queue_deliver"),
                        "main",
                        &[
                            (0, &q.params),
                            (1, &q.state),
                            (2, &q.ring),
                            (3, &q.tables),
                            (4, &q.entries),
                            (5, &q.range),
                            (6, &q.indirect),
                        ],
                        [1, 1, 1],
                    )?;
                    let mut expand = run.support(
                        "queue_expand",
                        &section_of(SYNAPSES_WGSL, "queue_expand"),
                        "main",
                        &[
                            (0, &q.state),
                            (1, &q.entries),
                            (2, &q.perm_buf),
                            (3, &q.due),
                        ],
                        [1, 1, 1],
                    )?;
                    expand.indirect = Some((q.indirect.clone(), 0));
                    let mut passes = vec![deliver, expand];
                    let n_max = (q.due.size() / 4) as usize;
                    match ir_parallel(eng, *kernel) {
                        Parallel::Serial => {
                            for c in 0..q.serial_chunks {
                                let mode = Mode::Serial(&q.due, &q.range, c * SERIAL_CHUNK);
                                let mut p =
                                    run.kernel_pass(eng, &[], *kernel, 1, mode, None, step_buf)?;
                                p.indirect = Some((q.indirect.clone(), (24 + 12 * c) as u64));
                                passes.push(p);
                            }
                        }
                        par => {
                            let atomic = match &par {
                                Parallel::Atomic(v) => v.clone(),
                                _ => Vec::new(),
                            };
                            let mode = Mode::List(&q.due, &q.range, &atomic);
                            let mut p =
                                run.kernel_pass(eng, &[], *kernel, n_max, mode, None, step_buf)?;
                            p.indirect = Some((q.indirect.clone(), 12));
                            passes.push(p);
                        }
                    }
                    Prepared::Passes(passes, None)
                }
                Op::SummedVariable {
                    kernel,
                    n,
                    values,
                    index,
                    target,
                    start,
                    stop,
                } => {
                    let k =
                        run.kernel_pass(eng, &[], *kernel, *n, Mode::Elements, None, step_buf)?;
                    let (s, csr) = run.summed_pass(*n, *values, *index, *target, *start, *stop)?;
                    run.keep.push(csr);
                    Prepared::Passes(vec![k, s], None)
                }
                Op::SpikeGenerator {
                    eventspace,
                    neuron_index,
                    timebins,
                    lastindex,
                    period,
                } => {
                    let step = clock_step.ok_or_else(|| {
                        EngineError::Invalid("spike generator: clock has no timestep".into())
                    })?;
                    let n = run.arrays[*eventspace].len.saturating_sub(1);
                    let bins = run.arrays[*timebins].len;
                    if run.arrays[*neuron_index].len < bins || *period > i32::MAX as i64 {
                        return Err(EngineError::Invalid(
                            "spike generator: inconsistent arrays".into(),
                        ));
                    }
                    let max_x = ctx
                        .limits
                        .max_compute_workgroups_per_dimension
                        .min(i32::MAX as u32);
                    let params = storage(
                        ctx,
                        "spikegen params",
                        bytemuck::cast_slice(&[
                            *period as i32,
                            n as i32,
                            bins as i32,
                            max_x as i32,
                        ]),
                    )?;
                    let plan = ctx.indirect_buffer("spikegen plan", &[0u8; 32])?;
                    let mut p = run.support(
                        "spikegen_plan",
                        &section_of(SYNAPSES_WGSL, "spikegen_plan"),
                        "main",
                        &[
                            (0, &params),
                            (1, step),
                            (2, &run.bufs[*timebins]),
                            (3, &run.bufs[*lastindex]),
                            (4, &run.bufs[*eventspace]),
                            (5, &plan),
                        ],
                        [1, 1, 1],
                    )?;
                    p.params = Some(params);
                    let mut copy = run.support(
                        "spikegen_copy",
                        &section_of(SYNAPSES_WGSL, "spikegen_copy"),
                        "main",
                        &[
                            (0, &plan),
                            (1, &run.bufs[*neuron_index]),
                            (2, &run.bufs[*eventspace]),
                        ],
                        [1, 1, 1],
                    )?;
                    copy.indirect = Some((plan, 16));
                    Prepared::Passes(vec![p, copy], None)
                }
                Op::Elementwise { kernel, n } => {
                    // A state update right before its group's threshold (same clock, same
                    // elements) runs the threshold too, counting events for the compaction.
                    let fused = match eng.items.get(pos + 1) {
                        Some(next) if next.clock == item.clock => match &next.op {
                            Op::Threshold {
                                kernel: tk,
                                n: tn,
                                cond,
                                ..
                            } if tn == n => fuse_threshold(eng, *kernel, *tk, *cond),
                            _ => None,
                        },
                        _ => None,
                    };
                    match fused {
                        Some((ek, flag)) => {
                            let tiles = compaction_counters(ctx, *n)?;
                            let mode = Mode::CountingEvents(flag, &tiles);
                            let p =
                                run.kernel_pass_of(eng.seed, &ek, &[], *n, mode, None, step_buf)?;
                            fused_threshold = Some((pos + 1, tiles));
                            Prepared::Passes(vec![p], None)
                        }
                        None => Prepared::Passes(
                            vec![run.kernel_pass(
                                eng,
                                &[],
                                *kernel,
                                *n,
                                Mode::Elements,
                                None,
                                step_buf,
                            )?],
                            None,
                        ),
                    }
                }
                Op::Threshold {
                    kernel,
                    n,
                    cond,
                    eventspace,
                    ..
                } => {
                    // Ordered compaction over tiles (shaders/spikes.wgsl): the threshold
                    // kernel counts its events per tile, then a scatter that also writes
                    // the whole group's range record. Two halves of counters (step parity).
                    let (done, tiles) = match fused_threshold.take() {
                        Some((at, tiles)) if at == pos => (true, tiles),
                        _ => (false, compaction_counters(ctx, *n)?),
                    };
                    let range = run.range_buffer()?;
                    let rng_step = &run.rng_steps[item.clock];
                    let flag = eng.kernels[*kernel]
                        .bindings
                        .iter()
                        .position(|b| *b == Binding::Array(*cond))
                        .filter(|&v| eng.kernels[*kernel].kernel.vars[v].ty == Type::Bool);
                    let p = storage(
                        ctx,
                        "compact params",
                        bytemuck::cast_slice(&[
                            *n as u32,
                            0,
                            *n as u32,
                            ctx.limits.max_compute_workgroups_per_dimension,
                            EVENT_WG,
                            0,
                            0,
                            0,
                        ]),
                    )?;
                    let entries = [
                        (0, &p),
                        (1, &run.bufs[*cond]),
                        (2, &run.bufs[*eventspace]),
                        (3, &range),
                        (4, &tiles),
                        (5, rng_step),
                    ];
                    let mut passes = Vec::new();
                    match flag {
                        _ if done => {}
                        Some(v) => passes.push(run.kernel_pass(
                            eng,
                            &[],
                            *kernel,
                            *n,
                            Mode::CountingEvents(v, &tiles),
                            None,
                            step_buf,
                        )?),
                        None => {
                            // The flags come from elsewhere: count them separately.
                            passes.push(run.kernel_pass(
                                eng,
                                &[],
                                *kernel,
                                *n,
                                Mode::Elements,
                                None,
                                step_buf,
                            )?);
                            passes.push(run.support(
                                "b2_compact_count",
                                SPIKES_WGSL,
                                "b2_compact_count",
                                &entries,
                                grid(ctx, (*n).max(1), 64),
                            )?);
                        }
                    }
                    passes.push(run.support(
                        "b2_compact_scatter",
                        SPIKES_WGSL,
                        "b2_compact_scatter",
                        &entries,
                        grid(ctx, (*n).max(1), wgsl::COMPACT_TILE),
                    )?);
                    run.keep.push(tiles);
                    // Consumers of the whole group's events read the scatter's record.
                    ranges.push((key(*eventspace, *n, 0, *n), range));
                    Prepared::Passes(passes, None)
                }
                Op::Reset { kernel, eventspace } => {
                    let n = run.arrays[*eventspace].len - 1;
                    let (range, rp) =
                        run.event_range(&mut ranges, key(*eventspace, n, 0, n), &dummy)?;
                    let mut k = run.kernel_pass(
                        eng,
                        &[],
                        *kernel,
                        n,
                        Mode::List(&run.bufs[*eventspace], &range, &[]),
                        None,
                        step_buf,
                    )?;
                    k.indirect = Some((range.clone(), RANGE_INDIRECT));
                    Prepared::Passes(rp.into_iter().chain([k]).collect(), None)
                }
                Op::SpikeMonitor {
                    kernel,
                    eventspace,
                    source_n,
                    start,
                    stop,
                    count,
                    total,
                    records,
                } => {
                    let width = stop - start;
                    let (range, rp) = run.event_range(
                        &mut ranges,
                        key(*eventspace, *source_n, *start, *stop),
                        &dummy,
                    )?;
                    let t_array = clocks.clocks[item.clock].t_array;
                    if let (Some((i_values, i_record, t_record)), Some(ts)) = (
                        plain_spike_records(eng, *kernel, t_array),
                        clock_step.filter(|_| width > 0),
                    ) {
                        // Bit rows: a few MB whatever the group's size.
                        let words = width.div_ceil(32);
                        let limit = ctx.limits.max_storage_buffer_binding_size as usize;
                        let rows_cap = (EVENT_BITS_BUDGET.min(limit) / (words * 4)).clamp(1, 4096);
                        if rows_cap * words * 4 > limit {
                            return Err(EngineError::Gpu(GpuError::TooLarge {
                                label: format!("SpikeMonitor bits of {width} neurons (one step)"),
                                size: (words * 4) as u64,
                                limit: limit as u64,
                            }));
                        }
                        let bits = storage(ctx, "spike bits", &vec![0u8; rows_cap * words * 4])?;
                        let params = storage(
                            ctx,
                            "spike bits params",
                            bytemuck::cast_slice(&[*start as u32, words as u32, 0, 0]),
                        )?;
                        let mut c = run.support(
                            "record_event_bits",
                            &section("record_event_bits"),
                            "main",
                            &[
                                (0, &params),
                                (1, &run.bufs[*eventspace]),
                                (2, &range),
                                (3, &run.bufs[*count]),
                                (4, &run.bufs[*total]),
                                (5, ts),
                                (6, &bits),
                            ],
                            grid(ctx, width, EVENT_WG),
                        )?;
                        c.indirect = Some((range.clone(), RANGE_INDIRECT));
                        let mut mon = run.records_for(eng, &[], &[], &[], steps)?;
                        mon.bits = Some(EventBits {
                            bits,
                            params,
                            start: *start,
                            words,
                            rows_cap,
                            row_t: Vec::new(),
                            i_values,
                            i_record,
                            t_record,
                        });
                        run.monitors.push(mon);
                        run.prepared.push(Prepared::Passes(
                            rp.into_iter().chain([c]).collect(),
                            Some(run.monitors.len() - 1),
                        ));
                        continue;
                    }
                    let mon = run.records_for(
                        eng,
                        records,
                        &vec![width; records.len()],
                        &vec![0; records.len()],
                        steps,
                    )?;
                    let mut k = run.kernel_pass(
                        eng,
                        &mon.records,
                        *kernel,
                        width,
                        Mode::List(&run.bufs[*eventspace], &range, &[]),
                        Some(&mon.counter),
                        step_buf,
                    )?;
                    k.indirect = Some((range.clone(), RANGE_INDIRECT));
                    let sp = storage(ctx, "start", bytemuck::cast_slice(&[*start as u32, 0]))?;
                    let mut c = run.support(
                        "count_events",
                        &section("count_events"),
                        "main",
                        &[
                            (0, &sp),
                            (1, &run.bufs[*eventspace]),
                            (2, &range),
                            (3, &run.bufs[*count]),
                            (4, &mon.counter),
                            (5, &run.bufs[*total]),
                        ],
                        grid(ctx, width.max(1), EVENT_WG),
                    )?;
                    c.indirect = Some((range.clone(), RANGE_INDIRECT));
                    c.params = Some(sp);
                    run.monitors.push(mon);
                    Prepared::Passes(
                        rp.into_iter().chain([k, c]).collect(),
                        Some(run.monitors.len() - 1),
                    )
                }
                Op::StateMonitor {
                    kernel,
                    indices,
                    n_indices,
                    t,
                    t_record,
                    records,
                    total,
                } => {
                    let mut ids = records.clone();
                    ids.push(*t_record);
                    let mut worst = vec![*n_indices; records.len()];
                    worst.push(1);
                    let mut len_word = vec![0; records.len()];
                    len_word.push(1);
                    let mon = run.records_for(eng, &ids, &worst, &len_word, steps)?;
                    let range = storage(
                        ctx,
                        "range",
                        bytemuck::cast_slice(&[0u32, *n_indices as u32]),
                    )?;
                    let mut passes = Vec::new();
                    if *n_indices > 0 {
                        passes.push(run.kernel_pass(
                            eng,
                            &mon.records,
                            *kernel,
                            *n_indices,
                            Mode::List(&run.bufs[*indices], &range, &[]),
                            Some(&mon.counter),
                            step_buf,
                        )?);
                    }
                    let np = storage(ctx, "row", bytemuck::cast_slice(&[*n_indices as u32, 0]))?;
                    let trec = &mon.records.last().unwrap().1;
                    passes.push(run.support(
                        "record_t",
                        &section("record_t"),
                        "main",
                        &[
                            (0, &np),
                            (1, &run.bufs[*t]),
                            (2, trec),
                            (3, &mon.counter),
                            (4, &run.bufs[*total]),
                        ],
                        [1, 1, 1],
                    )?);
                    run.monitors.push(mon);
                    Prepared::Passes(passes, Some(run.monitors.len() - 1))
                }
                Op::RateMonitor {
                    eventspace,
                    source_n,
                    start,
                    stop,
                    t,
                    dt,
                    t_record,
                    rate_record,
                    total,
                } => {
                    let mon =
                        run.records_for(eng, &[*t_record, *rate_record], &[1, 1], &[1, 1], steps)?;
                    let (range, rp) = run.event_range(
                        &mut ranges,
                        key(*eventspace, *source_n, *start, *stop),
                        &dummy,
                    )?;
                    let fp = storage(
                        ctx,
                        "rate params",
                        bytemuck::cast_slice(&[*dt, (*stop - *start) as f64]),
                    )?;
                    let r = run.support(
                        "record_rate",
                        &section("record_rate"),
                        "main",
                        &[
                            (0, &fp),
                            (1, &range),
                            (2, &run.bufs[*t]),
                            (3, &mon.records[0].1),
                            (4, &mon.records[1].1),
                            (5, &mon.counter),
                            (6, &run.bufs[*total]),
                        ],
                        [1, 1, 1],
                    )?;
                    run.monitors.push(mon);
                    Prepared::Passes(
                        rp.into_iter().chain([r]).collect(),
                        Some(run.monitors.len() - 1),
                    )
                }
            };
            run.prepared.push(prepared);
        }
        Ok(run)
    }

    /// The [lo, hi) positions of the events within [start, stop) of an eventspace, and the
    /// indirect dispatch sizes (words 4..7) of a per-event kernel of `EVENT_WG` invocations
    /// per workgroup: a buffer and the pass that fills it, or no pass where an earlier
    /// operation of this step already computed the same range (`ranges`, see `new`).
    fn event_range(
        &self,
        ranges: &mut Vec<(RangeKey, wgpu::Buffer)>,
        key: RangeKey,
        dummy: &wgpu::Buffer,
    ) -> Result<(wgpu::Buffer, Option<Pass>), EngineError> {
        if let Some((_, buf)) = ranges.iter().find(|(k, _)| *k == key) {
            return Ok((buf.clone(), None));
        }
        let RangeKey {
            space,
            n,
            start,
            stop,
            ..
        } = key;
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
            SPIKES_WGSL,
            "b2_event_range",
            &[
                (0, &p),
                (1, dummy),
                (2, &self.bufs[space]),
                (3, &range),
                (4, dummy),
                (5, &self.rng_steps[key.clock]),
            ],
            [1, 1, 1],
        )?;
        ranges.push((key, range.clone()));
        Ok((range, Some(pass)))
    }

    /// A range record (shaders/spikes.wgsl, `b2_spk_write_range`): positions, then
    /// indirect dispatch sizes at [`RANGE_INDIRECT`], [`RANGE_INDIRECT_NONEMPTY`] and
    /// [`RANGE_BUNDLES`].
    fn range_buffer(&self) -> Result<wgpu::Buffer, EngineError> {
        Ok(self
            .ctx
            .indirect_buffer("range", &[0u8; RANGE_RECORD_BYTES as usize])?)
    }

    /// Copy a monitor's records to the engine's host records and reset its counter.
    fn drain(&mut self, eng: &mut Engine, m: usize) -> Result<(), EngineError> {
        if self.monitors[m].bits.is_some() {
            return self.drain_bits(eng, m);
        }
        let counter = self.ctx.read_buffer(&self.monitors[m].counter, 8)?;
        let words: [u32; 2] = [
            u32::from_le_bytes(counter[0..4].try_into().unwrap()),
            u32::from_le_bytes(counter[4..8].try_into().unwrap()),
        ];
        let mon = &mut self.monitors[m];
        for (i, (r, buf, _)) in mon.records.iter().enumerate() {
            let len = words[mon.len_word[i]] as usize;
            if len == 0 {
                continue;
            }
            let ty = eng.records[*r].ty;
            let data = self.ctx.read_buffer(buf, len * gpu_elem_size(ty))?;
            if ty == Type::Bool {
                // Stored as u32 on the GPU, one byte on the host (numpy's bool).
                let bytes = data
                    .chunks_exact(4)
                    .map(|w| (w.iter().any(|&b| b != 0)) as u8);
                eng.records[*r].data.extend(bytes);
            } else {
                eng.records[*r].data.extend_from_slice(&data);
            }
        }
        self.ctx.queue.write_buffer(&mon.counter, 0, &[0u8; 8]);
        mon.bound.iter_mut().for_each(|b| *b = 0);
        Ok(())
    }

    /// A bit-row SpikeMonitor's rows since the last drain as Brian2's records: per row in
    /// order, the ascending neurons with their `i` value and the row's `t`.
    fn drain_bits(&mut self, eng: &mut Engine, m: usize) -> Result<(), EngineError> {
        let b = self.monitors[m].bits.as_mut().expect("a bit-row monitor");
        let rows = b.row_t.len();
        if rows == 0 {
            return Ok(());
        }
        let bytes = rows * b.words * 4;
        let data = self.ctx.read_buffer(&b.bits, bytes)?;
        let words: &[u32] = bytemuck::cast_slice(&data[..bytes]);
        let i_values = self.arrays[b.i_values];
        let (mut is, mut ts) = (Vec::new(), Vec::new());
        for (row, &t) in b.row_t.iter().enumerate() {
            for (w, &word) in words[row * b.words..(row + 1) * b.words].iter().enumerate() {
                let mut word = word;
                while word != 0 {
                    let j = b.start + w * 32 + word.trailing_zeros() as usize;
                    word &= word - 1;
                    if j >= i_values.len {
                        return Err(EngineError::Invalid(format!(
                            "SpikeMonitor: event {j} outside the source's {} neurons",
                            i_values.len
                        )));
                    }
                    is.push(unsafe { *(i_values.ptr as *const i32).add(j) });
                    ts.push(t);
                }
            }
        }
        eng.records[b.i_record]
            .data
            .extend_from_slice(bytemuck::cast_slice(&is));
        let t_rec = &mut eng.records[b.t_record];
        if t_rec.ty == Type::F32 {
            let t32: Vec<f32> = ts.iter().map(|&t| t as f32).collect();
            t_rec.data.extend_from_slice(bytemuck::cast_slice(&t32));
        } else {
            t_rec.data.extend_from_slice(bytemuck::cast_slice(&ts));
        }
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        enc.clear_buffer(&b.bits, 0, Some(bytes.div_ceil(4) as u64 * 4));
        self.ctx.queue.submit([enc.finish()]);
        b.row_t.clear();
        Ok(())
    }

    /// Run the schedule (same contract as the CPU loop), many steps per submission.
    pub fn run(
        &mut self,
        eng: &mut Engine,
        clocks: &mut Clocks,
        should_stop: &mut dyn FnMut(&Clocks) -> bool,
        check_every: usize,
    ) -> Result<RunStatus, EngineError> {
        let batch = check_every.max(1);
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
                    self.drain(eng, m)?;
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
            if self.table_steps < plan.len() {
                let bytes = vec![0u8; plan.len().max(batch) * 8];
                self.table_steps = plan.len().max(batch);
                self.tables = (0..clocks.clocks.len())
                    .map(|_| {
                        Ok((
                            storage(self.ctx, "t table", &bytes)?,
                            storage(self.ctx, "timestep table", &bytes)?,
                            storage(self.ctx, "rng step table", &bytes)?,
                        ))
                    })
                    .collect::<Result<_, EngineError>>()?;
            }
            for (c, (tt, tst, rngt)) in self.tables.iter().enumerate() {
                let t: Vec<f64> = plan.iter().map(|(_, v)| v[c].0).collect();
                let ts: Vec<i64> = plan.iter().map(|(_, v)| v[c].1).collect();
                let base = eng.step_base.get(c).copied().unwrap_or(0);
                let rng: Vec<i64> = ts.iter().map(|s| s - base).collect();
                self.ctx.queue.write_buffer(tt, 0, bytemuck::cast_slice(&t));
                self.ctx
                    .queue
                    .write_buffer(tst, 0, bytemuck::cast_slice(&ts));
                self.ctx
                    .queue
                    .write_buffer(rngt, 0, bytemuck::cast_slice(&rng));
            }
            let tables = &self.tables;
            let n_steps = plan.len();
            for (s, (cur, _)) in plan.iter().enumerate() {
                // Brian2's clock arrays for this step, from the tables.
                for (c, clock) in clocks.clocks.iter().enumerate() {
                    if let Some(a) = clock.t_array {
                        enc.copy_buffer_to_buffer(
                            &tables[c].0,
                            (s * 8) as u64,
                            &self.bufs[a],
                            0,
                            8,
                        );
                    }
                    if let Some(a) = clock.timestep_array {
                        enc.copy_buffer_to_buffer(
                            &tables[c].1,
                            (s * 8) as u64,
                            &self.bufs[a],
                            0,
                            8,
                        );
                    }
                    enc.copy_buffer_to_buffer(
                        &tables[c].2,
                        (s * 8) as u64,
                        &self.rng_steps[c],
                        0,
                        8,
                    );
                }
                let start = if s == 0 { first } else { 0 };
                let end = match callback {
                    Some((pos, _)) if s + 1 == n_steps => pos,
                    _ => eng.items.len(),
                };
                let mut pass = enc.begin_compute_pass(&Default::default());
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
                        if eng.profile.is_some() {
                            // Profiling: this item's work alone, timed to completion.
                            drop(pass);
                            self.ctx.queue.submit([enc.finish()]);
                            self.ctx.wait("profile")?;
                            let t0 = std::time::Instant::now();
                            enc = self.ctx.device.create_command_encoder(&Default::default());
                            pass = enc.begin_compute_pass(&Default::default());
                            for p in passes {
                                dispatch(&mut pass, p, r);
                            }
                            drop(pass);
                            self.ctx.queue.submit([enc.finish()]);
                            self.ctx.wait("profile")?;
                            if let Some(prof) = eng.profile.as_mut() {
                                prof[start + pos] += t0.elapsed().as_secs_f64();
                            }
                            enc = self.ctx.device.create_command_encoder(&Default::default());
                            pass = enc.begin_compute_pass(&Default::default());
                        } else {
                            for p in passes {
                                dispatch(&mut pass, p, r);
                            }
                        }
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
                        }
                    }
                }
            }
            let submitted = self.ctx.queue.submit([enc.finish()]);
            // The real clocks follow the plan (the last step stays open for a callback).
            for (s, (cur, _)) in plan.iter().enumerate() {
                if callback.is_some() && s + 1 == n_steps {
                    break;
                }
                clocks.advance(cur);
            }
            if let Some((pos, index)) = callback {
                // Python needs the current state: bring arrays and records back first.
                self.sync_to_host(eng)?;
                self.resume_at = Some(pos + 1);
                return Ok(RunStatus::Callback { index });
            }
            // One batch in flight: wait for the previous one while this one runs, so that
            // the host plans and records the next batch while the GPU works.
            if let Some(prev) = self.in_flight.replace(submitted) {
                self.ctx.wait_for("batch", prev)?;
            }
            if should_stop(clocks) {
                break RunStatus::Stopped;
            }
        };
        self.sync_to_host(eng)?;
        unsafe { clocks.write_host(&self.arrays) };
        Ok(status)
    }

    /// Download every array and drain every monitor.
    pub fn sync_to_host(&mut self, eng: &mut Engine) -> Result<(), EngineError> {
        for m in 0..self.monitors.len() {
            self.drain(eng, m)?;
        }
        for (q, gq) in self.queues.iter().enumerate() {
            if let Some(gq) = gq {
                gq.download(self.ctx, &mut eng.queues[q])?;
            }
        }
        for (a, buf) in self.arrays.iter().zip(&self.bufs) {
            if a.ptr.is_null() || a.len == 0 {
                continue;
            }
            let n = a.len
                * if a.ty == Type::Bool {
                    4
                } else {
                    elem_size(a.ty)
                };
            let data = self.ctx.read_buffer(buf, n)?;
            gpu_to_host(a, &data);
        }
        Ok(())
    }

    /// After a Python callback changed host arrays: upload them again.
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
                for ((_, buf), (_, bytes)) in hs.bufs.iter().zip(hs.values(&self.arrays)?) {
                    self.ctx.queue.write_buffer(buf, 0, &bytes);
                }
            }
        }
        Ok(())
    }
}

/// A SpikeMonitor kernel that records exactly `i` and `t` (`_to_record_i = _source_i`,
/// `_to_record_t = _source_t`, t being the clock's `t` array): the array of `i` values,
/// and the `i` and `t` records. Such a monitor records bit rows ([`EventBits`]).
fn plain_spike_records(
    eng: &Engine,
    kernel: usize,
    t_array: Option<usize>,
) -> Option<(usize, usize, usize)> {
    use crate::ir::{ExprKind, Index, Stmt};
    let ek = &eng.kernels[kernel];
    let k = &ek.kernel;
    if !k.scalar.is_empty() || k.vector.len() != 2 {
        return None;
    }
    let var = |name: &str| k.vars.iter().position(|v| v.name == name);
    let (src_i, src_t) = (var("_source_i")?, var("_source_t")?);
    let (rec_i, rec_t) = (var("_to_record_i")?, var("_to_record_t")?);
    let copies = |rec: usize, src: usize| {
        k.vector.iter().any(|Stmt::Assign { local, value, cond }| {
            *local == k.vars[rec].local
                && cond.is_none()
                && value.kind == ExprKind::Local(k.vars[src].local)
        })
    };
    let recorded = ek
        .bindings
        .iter()
        .filter(|b| matches!(b, Binding::Record(_)))
        .count();
    let (Binding::Array(i_values), Binding::Array(t_values)) =
        (ek.bindings[src_i], ek.bindings[src_t])
    else {
        return None;
    };
    let (Binding::Record(i_record), Binding::Record(t_record)) =
        (ek.bindings[rec_i], ek.bindings[rec_t])
    else {
        return None;
    };
    let ok = recorded == 2
        && copies(rec_i, src_i)
        && copies(rec_t, src_t)
        && k.vars[src_i].index == Index::Elem
        && k.vars[src_i].ty == Type::I32
        && eng.records[i_record].ty == Type::I32
        && matches!(eng.records[t_record].ty, Type::F64 | Type::F32)
        && t_array == Some(t_values);
    ok.then_some((i_values, i_record, t_record))
}

fn ir_parallel(eng: &Engine, kernel: usize) -> Parallel {
    let ek = &eng.kernels[kernel];
    crate::ir::parallel(&ek.kernel, &alias_of(ek))
}

/// Per kernel variable, the first variable bound to the same buffer.
/// The counters of an event compaction over `n` flags (two halves, shaders/spikes.wgsl).
fn compaction_counters(ctx: &GpuContext, n: usize) -> Result<wgpu::Buffer, EngineError> {
    let tiles = n.div_ceil(wgsl::COMPACT_TILE as usize).max(1);
    storage(ctx, "compact tiles", &vec![0u8; tiles * 8])
}

/// State update `a` and threshold `b` as one kernel ([`crate::ir::fuse_elementwise`]),
/// and the fused kernel's event flag (the threshold's `cond` array), where that is exact.
fn fuse_threshold(
    eng: &Engine,
    a: usize,
    b: usize,
    cond: usize,
) -> Option<(super::EngineKernel, usize)> {
    let (ka, kb) = (&eng.kernels[a], &eng.kernels[b]);
    let same = |va: usize, vb: usize| matches!(ka.bindings[va], Binding::Array(x) if kb.bindings[vb] == Binding::Array(x));
    let f = crate::ir::fuse_elementwise(&ka.kernel, &kb.kernel, same)?;
    crate::ir::validate(&f.kernel).ok()?;
    let flag = kb
        .bindings
        .iter()
        .position(|x| *x == Binding::Array(cond))
        .filter(|&v| kb.kernel.vars[v].ty == Type::Bool)?;
    let mut bindings = ka.bindings.clone();
    for (vb, &v) in f.b_vars.iter().enumerate() {
        if v >= bindings.len() {
            debug_assert_eq!(v, bindings.len());
            bindings.push(kb.bindings[vb]);
        }
    }
    Some((
        super::EngineKernel {
            kernel: f.kernel,
            program: Err("fused for the GPU only".into()),
            bindings,
            rng_id: ka.rng_id,
        },
        f.b_vars[flag],
    ))
}

fn alias_of(ek: &super::EngineKernel) -> Vec<usize> {
    let b = &ek.bindings;
    (0..b.len())
        .map(|v| match b[v] {
            Binding::None => v,
            other => b.iter().position(|&x| x == other).unwrap_or(v),
        })
        .collect()
}

fn queue_of(queues: &[Option<GpuQueue>], q: usize) -> Result<&GpuQueue, EngineError> {
    queues
        .get(q)
        .and_then(|q| q.as_ref())
        .ok_or_else(|| EngineError::Invalid(format!("spike queue {q} has no push operation")))
}

impl GpuRun {
    /// `summed_variable`'s sum: per target, the values of its synapses in ascending
    /// synapse order (numpy's bincount), accumulated in float64 where the device has it.
    fn summed_pass(
        &self,
        n: usize,
        values: usize,
        index: usize,
        target: usize,
        start: usize,
        stop: usize,
    ) -> Result<(Pass, wgpu::Buffer), EngineError> {
        let (vals, idx) = (&self.arrays[values], &self.arrays[index]);
        if idx.ty != Type::I32 || idx.len < n || vals.len < n || stop > self.arrays[target].len {
            return Err(EngineError::Invalid(
                "summed variable: arrays shorter than the synapses".into(),
            ));
        }
        let value_ty = match vals.ty {
            t @ (Type::F32 | Type::F64 | Type::I32) if t == self.arrays[target].ty => t,
            t => {
                return Err(EngineError::Unsupported(format!(
                    "wgpu gpu backend: summed variable of type {t:?}; use backend 'cpu'"
                )));
            }
        };
        let idx: &[i32] = if n == 0 {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(idx.ptr as *const i32, n) }
        };
        let width = stop - start;
        let mut csr = vec![0u32; width + 1 + n];
        for &i in idx {
            let j = (i as usize)
                .checked_sub(start)
                .filter(|&j| j < width)
                .ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "summed variable: target index {i} outside [{start}, {stop})"
                    ))
                })?;
            csr[j + 1] += 1;
        }
        for j in 0..width {
            csr[j + 1] += csr[j];
        }
        let mut fill: Vec<u32> = csr[..width].to_vec();
        for (s, &i) in idx.iter().enumerate() {
            let j = i as usize - start;
            csr[width + 1 + fill[j] as usize] = s as u32;
            fill[j] += 1;
        }
        let ty = crate::wgsl::polyfill::wgsl_type(value_ty);
        let acc = if self.ctx.supports_f64() { "f64" } else { ty };
        let src = section_of(SYNAPSES_WGSL, "summed")
            .replace("VALUE", ty)
            .replace("ACC", acc);
        let params = storage(
            self.ctx,
            "summed params",
            bytemuck::cast_slice(&[start as u32, width as u32]),
        )?;
        let csr = storage(self.ctx, "summed csr", bytemuck::cast_slice(&csr))?;
        let mut p = self.support(
            "summed",
            &src,
            "main",
            &[
                (0, &params),
                (1, &csr),
                (2, &self.bufs[values]),
                (3, &self.bufs[target]),
            ],
            grid(self.ctx, width.max(1), 64),
        )?;
        p.params = Some(params);
        Ok((p, csr))
    }
}

/// Record `p` at step `r` of its clock in this run.
fn dispatch(pass: &mut wgpu::ComputePass<'_>, p: &Pass, r: i64) {
    if p.at_step.is_some_and(|at| at != r) {
        return;
    }
    pass.set_pipeline(&p.pipeline);
    pass.set_bind_group(0, &p.bind, &[]);
    match (&p.indirect, p.ring) {
        (Some((buf, offset)), Some((slots, delay, stride))) => {
            let slot = (r as u64 % slots + slots - delay) % slots;
            pass.dispatch_workgroups_indirect(buf, offset + slot * stride)
        }
        (Some((buf, offset)), None) => pass.dispatch_workgroups_indirect(buf, *offset),
        (None, _) => pass.dispatch_workgroups(p.grid[0], p.grid[1], p.grid[2]),
    }
}
