//! A synaptic pathway's spike queue on the GPU (see `shaders/queue.wgsl` for the
//! layout): host-side tables built from the engine's [`SpikeQueue`] at the start of a run,
//! and the conversion back into Brian2's queue state (synapses per future step) after it.

use super::*;
use std::sync::Arc;

use crate::runtime::{QueueLayout, SpikeQueue};

/// Bundles with fewer synapses than this on average run one per invocation.
const SMALL_BUNDLE: usize = 32;
/// ... if none has more than this.
const LONGEST_BUNDLE_LOOP: usize = 2048;

/// Synapses one serial-mode dispatch walks (lavapipe ends a shader's loops after 65535
/// iterations in all, and a kernel body may loop too).
pub const SERIAL_CHUNK: usize = 8192;

/// (Delay, event) pairs each invocation of the ordered delivery walks (`queue_deliver`),
/// unless the tiles would exceed ...
const DELIVER_PAIRS_PER_INVOCATION: usize = 16;
/// ... this many (their table holds two words per tile).
const MAX_DELIVER_TILES: usize = 1 << 16;

/// How a pathway with one delay for all synapses (and a kernel that needs no serial order)
/// delivers: its kernel runs one workgroup per due event over that source's synapses
/// (`Options::bundles`), with no ordered delivery pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bundles {
    /// Delay 0 and nothing queued from earlier runs: the kernel reads this step's events
    /// straight from the eventspace (no push either).
    Direct,
    /// The push (`queue_push_bundles`) keeps the last D steps' events in the ring and a
    /// range record per slot; the kernel reads the slot of `delay` steps ago.
    Ring { delay: u32 },
    /// Several delays: the same push; `queue_plan` sizes the kernel's grid (one row per
    /// distinct delay, as many columns as the most events due for one delay), and the
    /// kernel takes the group (source, delay) of each due event.
    Groups,
}

pub struct GpuQueue {
    d: usize,
    width: usize,
    start: usize,
    /// The synapses grouped by (source, delay) ([`QueueLayout::grouping`]); group g is
    /// `perm[group_start[g]..group_start[g + 1]]`.
    layout: Arc<QueueLayout>,
    /// Synapses grouped by (source, delay), then the queue state of earlier runs.
    perm: Vec<i32>,
    /// Per future step j < d: the range of `perm` queued before this run.
    extra: Vec<(u32, u32)>,
    delays_desc: Vec<u32>,
    pub serial_chunks: usize,
    /// Set where the pathway delivers by bundles (the ordered delivery buffers below are
    /// then left empty).
    pub bundles: Option<Bundles>,
    /// For bundles: [source offset, D, delay, range record stride (16), width, then the
    /// first synapse position in `perm` of each relative source (width + 1)].
    pub bundle_table: wgpu::Buffer,
    /// Bundles are small (few synapses each, none large): one invocation per bundle
    /// rather than one workgroup, which would leave most of its invocations idle.
    pub bundle_per_invocation: bool,
    /// For `Bundles::Ring`: one range record (16 words) per ring slot. For
    /// `Bundles::Groups`: the kernel's indirect dispatch sizes, two sets (4 words each)
    /// used on alternate steps (see `queue_plan`).
    pub slots: wgpu::Buffer,
    /// For `Bundles::Ring`: the queue state of earlier runs, as (relative step, range
    /// record over `perm`) for the steps where some is due.
    pub extra_ranges: Vec<(usize, wgpu::Buffer)>,
    pub params: wgpu::Buffer,
    pub state: wgpu::Buffer,
    pub ring: wgpu::Buffer,
    pub tables: wgpu::Buffer,
    pub entries: wgpu::Buffer,
    pub range: wgpu::Buffer,
    pub indirect: wgpu::Buffer,
    /// Per tile of (delay, event) pairs of the ordered delivery: its due groups and
    /// synapses; and the tiles' dispatch sizes.
    pub tiles: wgpu::Buffer,
    pub tile_args: wgpu::Buffer,
    pub perm_buf: wgpu::Buffer,
    pub due: wgpu::Buffer,
}

/// Blocks of distinct delays the ordered delivery's plan takes per workgroup
/// (`queue_deliver_sums`, `queue_deliver`; PLAN_WG in shaders/queue.wgsl).
pub fn delay_blocks(distinct_delays: usize) -> usize {
    distinct_delays.div_ceil(256).max(1)
}

fn zeros(ctx: &GpuContext, label: &str, words: usize) -> Result<wgpu::Buffer, GpuError> {
    ctx.storage_buffer(label, &vec![0u8; words.max(1) * 4])
}

impl GpuQueue {
    /// `n_space`: N of the source's eventspace; `kernel_wg`: the pathway kernel's
    /// workgroup size; `serial`: the kernel walks the due list in one invocation.
    pub fn new(
        ctx: &GpuContext,
        q: &SpikeQueue,
        n_space: usize,
        kernel_wg: u32,
        serial: bool,
    ) -> Result<Self, EngineError> {
        let width = q.source_stop - q.source_start;
        let d = q.slots.len();
        let uniform_delay = match q.delays.split_first() {
            None => Some(0),
            Some((&first, rest)) => rest.iter().all(|&x| x == first).then_some(first),
        };
        let nothing_queued = q.slots.iter().all(|s| s.is_empty());
        let bundles = match uniform_delay {
            _ if serial => None,
            Some(0) if nothing_queued => Some(Bundles::Direct),
            Some(delay) => Some(Bundles::Ring { delay }),
            None => Some(Bundles::Groups),
        };
        // The grouping by (source, delay) is kept with the layout: later runs over the
        // same synapses and delays reuse it.
        let grouping = q.grouping();
        let (src_group, group_delay, group_start) = (
            &grouping.src_group,
            &grouping.group_delay,
            &grouping.group_start,
        );
        let n_groups = group_delay.len();
        let mut perm: Vec<i32> = Vec::with_capacity(grouping.perm.len() + q.slots.len());
        perm.extend_from_slice(&grouping.perm);
        let n_syn = perm.len();
        let mut extra = Vec::with_capacity(d);
        let mut longest_extra = 0;
        for j in 0..d {
            let slot = &q.slots[(q.offset + j) % d];
            extra.push((perm.len() as u32, (perm.len() + slot.len()) as u32));
            perm.extend_from_slice(slot);
            longest_extra = longest_extra.max(slot.len());
        }
        let mut delays_desc: Vec<u32> = group_delay.to_vec();
        delays_desc.sort_unstable_by(|a, b| b.cmp(a));
        delays_desc.dedup();
        if delays_desc.len() > 60_000 {
            return Err(EngineError::Unsupported(format!(
                "wgpu gpu backend: a synaptic pathway with {} distinct delays (at most 60000); \
                 use backend 'cpu'",
                delays_desc.len()
            )));
        }
        let nd = delays_desc.len();
        // tables: src_group | group_delay | group_start | extra | delays (descending)
        let mut tables: Vec<u32> = Vec::new();
        let off_sg = 0;
        tables.extend(src_group);
        let off_gd = tables.len();
        tables.extend(group_delay);
        let off_gs = tables.len();
        tables.extend(group_start);
        let off_ex = tables.len();
        tables.extend(extra.iter().flat_map(|&(a, b)| [a, b]));
        let off_dl = tables.len();
        tables.extend(&delays_desc);
        let due_cap = if bundles.is_some() {
            1
        } else {
            n_syn + longest_extra
        };
        let serial_chunks = if serial {
            due_cap.div_ceil(SERIAL_CHUNK).max(1)
        } else {
            0
        };
        // Ordered delivery walks (delay, event) pairs in tiles of 64 invocations: at most
        // every source's event for every delay per step. Each invocation takes enough pairs
        // that the tiles' table stays within MAX_DELIVER_TILES.
        let most_pairs = if bundles.is_some() {
            0
        } else {
            nd.saturating_mul(width)
        };
        let pairs_per_invocation = most_pairs
            .div_ceil(64 * MAX_DELIVER_TILES)
            .max(DELIVER_PAIRS_PER_INVOCATION);
        let n_tiles = most_pairs.div_ceil(64 * pairs_per_invocation).max(1);
        let params: [u32; 17] = [
            q.source_start as u32,
            q.source_stop as u32,
            d as u32,
            width as u32,
            nd as u32,
            d as u32,
            SERIAL_CHUNK as u32,
            serial_chunks as u32,
            n_space as u32,
            off_sg as u32,
            off_gd as u32,
            off_gs as u32,
            off_ex as u32,
            off_dl as u32,
            kernel_wg,
            ctx.limits.max_compute_workgroups_per_dimension,
            pairs_per_invocation as u32,
        ];
        let indirect_buffer = |label: &str, words: usize| {
            ctx.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: (words * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::INDIRECT
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        };
        let indirect = indirect_buffer("queue indirect", 6 + 3 * serial_chunks)?;
        let tile_args = indirect_buffer("queue tile sizes", 3)?;
        // Bundles: per relative source, its synapses' first position in `perm` (with one
        // delay, `perm` starts with the synapses by source, as `by_source` has them).
        let mut bundle_table: Vec<u32> = Vec::new();
        let mut slots_bytes = 4;
        let mut extra_ranges = Vec::new();
        if bundles == Some(Bundles::Groups) {
            // Header: D, width, distinct delays, then the offsets of the tables (from the
            // start of this buffer).
            let h = 8u32;
            let off_sg = h;
            let off_gd = off_sg + src_group.len() as u32;
            let off_gs = off_gd + group_delay.len() as u32;
            let off_dl = off_gs + group_start.len() as u32;
            bundle_table.extend([d as u32, width as u32, nd as u32, off_sg, off_gd, off_gs]);
            bundle_table.extend([off_dl, 0]);
            bundle_table.extend(src_group);
            bundle_table.extend(group_delay);
            bundle_table.extend(group_start);
            bundle_table.extend(&delays_desc);
            slots_bytes = 32;
        }
        if let Some(b @ (Bundles::Direct | Bundles::Ring { .. })) = bundles {
            // Direct: one range record (this step's events, absolute indices).
            let (offset, records, delay) = match b {
                Bundles::Direct => (q.source_start as u32, 1, 0),
                _ => (0, d as u32, uniform_delay.unwrap_or(0)),
            };
            bundle_table.extend([offset, records, delay, 16, width as u32]);
            bundle_table.extend(q.row_start.iter().map(|&x| x as u32));
            debug_assert_eq!(&perm[..n_syn], &q.by_source[..]);
            if let Bundles::Ring { .. } = b {
                slots_bytes = d * 64;
            }
        }
        if matches!(bundles, Some(Bundles::Ring { .. } | Bundles::Groups)) {
            let max_x = ctx.limits.max_compute_workgroups_per_dimension;
            for (j, &(lo, hi)) in extra.iter().enumerate().filter(|(_, r)| r.1 > r.0) {
                // A range record sized for 64 invocations per workgroup.
                let groups = (hi - lo).div_ceil(64);
                let x = groups.min(max_x);
                let mut rec = [0u32; 16];
                rec[..2].copy_from_slice(&[lo, hi]);
                rec[4..7].copy_from_slice(&[x, groups.div_ceil(x.max(1)), 1]);
                let buf = ctx.indirect_buffer("queued synapses", bytemuck::cast_slice(&rec))?;
                extra_ranges.push((j, buf));
            }
        }
        // One invocation walks a bundle's synapses in a loop: only where bundles are small
        // on average (a workgroup would idle) and none is long (lavapipe ends a shader's
        // loops after 65,535 iterations; long loops serialise).
        let sizes = group_start.windows(2).map(|w| (w[1] - w[0]) as usize);
        let (largest, bundles_n) = sizes.fold((0, 0), |(m, k), x| (m.max(x), k + 1));
        let bundle_per_invocation = bundles.is_some()
            && bundles_n > 0
            && n_syn < SMALL_BUNDLE * bundles_n
            && largest <= LONGEST_BUNDLE_LOOP;
        let ring_words = match bundles {
            Some(Bundles::Direct) => 1,
            _ => d * (width + 1),
        };
        let n_entries = if bundles.is_some() {
            1
        } else {
            3 * (n_groups + 1)
        };
        Ok(Self {
            bundles,
            bundle_per_invocation,
            bundle_table: ctx
                .storage_buffer("bundle table", bytemuck::cast_slice(&bundle_table))?,
            slots: if bundles == Some(Bundles::Groups) {
                // Two sets (alternate steps) for a workgroup per bundle, then two for an
                // invocation per bundle (`queue_plan` fills both).
                let y = nd as u32;
                let sizes = [0u32, y, 1, 0, 0, y, 1, 0, 0, y, 1, 0, 0, y, 1, 0];
                ctx.indirect_buffer("queue dispatch sizes", bytemuck::cast_slice(&sizes))?
            } else {
                ctx.indirect_buffer("queue slot ranges", &vec![0u8; slots_bytes])?
            },
            extra_ranges,
            d,
            width,
            start: q.source_start,
            params: ctx.storage_buffer("queue params", bytemuck::cast_slice(&params))?,
            state: zeros(ctx, "queue state", 9 + nd + delay_blocks(nd))?,
            tiles: zeros(ctx, "queue tiles", 2 * n_tiles)?,
            tile_args,
            ring: zeros(ctx, "queue ring", ring_words)?,
            tables: ctx.storage_buffer("queue tables", bytemuck::cast_slice(&tables))?,
            entries: zeros(ctx, "queue entries", n_entries)?,
            range: zeros(ctx, "queue range", 2)?,
            indirect,
            perm_buf: ctx.storage_buffer("queue synapses", bytemuck::cast_slice(&perm))?,
            due: zeros(ctx, "due synapses", due_cap)?,
            serial_chunks,
            layout: q.layout.clone(),
            perm,
            extra,
            delays_desc,
        })
    }

    /// Distinct delays of the pathway's synapses.
    pub fn distinct_delays(&self) -> usize {
        self.delays_desc.len()
    }

    /// Slots of the ring (D: the longest delay in steps, plus one).
    pub fn slots_count(&self) -> u64 {
        self.d as u64
    }

    fn group_of(&self, src: usize, d: u32) -> Option<usize> {
        let grouping = self.layout.grouping();
        let (lo, hi) = (
            grouping.src_group[src] as usize,
            grouping.src_group[src + 1] as usize,
        );
        let delays = &grouping.group_delay;
        let g = lo + delays[lo..hi].partition_point(|&x| x < d);
        (g < hi && delays[g] == d).then_some(g)
    }

    /// Write the queued synapses back into `q` (slot j due in j steps, offset 0), in the
    /// order the GPU would deliver them.
    pub fn download(&self, ctx: &GpuContext, q: &mut SpikeQueue) -> Result<(), EngineError> {
        if self.bundles == Some(Bundles::Direct) {
            // Delay 0: every step delivered what it pushed.
            q.slots = vec![Vec::new(); self.d];
            q.offset = 0;
            return Ok(());
        }
        let state = ctx.read_buffer(&self.state, 4)?;
        let r = u32::from_le_bytes(state[..4].try_into().unwrap()) as usize;
        let ring_bytes = ctx.read_buffer(&self.ring, self.d * (self.width + 1) * 4)?;
        let ring: &[i32] = bytemuck::cast_slice(&ring_bytes);
        let mut slots = vec![Vec::new(); self.d];
        for (j, slot) in slots.iter_mut().enumerate() {
            let u = r + j;
            if let Some(&(lo, hi)) = self.extra.get(u) {
                slot.extend_from_slice(&self.perm[lo as usize..hi as usize]);
            }
            for &dl in &self.delays_desc {
                let dl = dl as usize;
                // Pushed before now (step u - dl <= r - 1) and in this run.
                if dl <= j || dl > u {
                    continue;
                }
                let base = ((u - dl) % self.d) * (self.width + 1);
                let count = ring[base + self.width] as usize;
                for &src in &ring[base..base + count] {
                    if let Some(g) = self.group_of(src as usize, dl as u32) {
                        let starts = &self.layout.grouping().group_start;
                        let (a, b) = (starts[g], starts[g + 1]);
                        slot.extend_from_slice(&self.perm[a as usize..b as usize]);
                    }
                }
            }
        }
        debug_assert_eq!(q.source_start, self.start);
        q.slots = slots;
        q.offset = 0;
        Ok(())
    }
}

impl GpuRun {
    /// `synapses_push_spikes`: this step's events into the pathway's ring (none where the
    /// pathway reads the eventspace itself).
    pub(super) fn push_spikes(&mut self, cx: &mut Prep, op: &Op) -> Result<Prepared, EngineError> {
        let Op::PushSpikes { queue, eventspace } = op else {
            unreachable!("push_spikes of another operation")
        };
        if queue_of(&self.queues, *queue)?.bundles == Some(Bundles::Direct) {
            return Ok(Prepared::Passes(Vec::new(), None));
        }
        Ok({
            let n_space = self.arrays[*eventspace].len.saturating_sub(1);
            let sq = &cx.eng.queues[*queue];
            let (range, rp) =
                self.event_range(cx, *eventspace, n_space, sq.source_start, sq.source_stop)?;
            let q = queue_of(&self.queues, *queue)?;
            let mut entries = vec![
                (0, &q.params),
                (1, &self.bufs[*eventspace]),
                (2, &q.state),
                (3, &q.ring),
                (4, &range),
            ];
            // By bundles, the clock's step picks the ring slot (no ordered delivery
            // counts the steps), and the slot gets a range record.
            let section = if q.bundles.is_some() {
                // By (source, delay) group the kernel keeps no slot records: a stand-in too
                // small to hold one.
                let slots = match q.bundles {
                    Some(Bundles::Groups) => &cx.dummy,
                    _ => &q.slots,
                };
                entries.extend([(5, &self.rng_steps[cx.clock]), (6, slots)]);
                "queue_push_bundles"
            } else {
                "queue_push"
            };
            let mut p = self.support(section, QUEUE_WGSL, section, &entries, [1, 1, 1])?;
            p.indirect = Some((range.clone(), RANGE_INDIRECT_NONEMPTY));
            Prepared::Passes(rp.into_iter().chain([p]).collect(), None)
        })
    }
}
