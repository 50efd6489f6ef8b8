//! A synaptic pathway's kernel on the GPU (Brian2's `synapses` template): by bundles (one
//! workgroup per due source or (source, delay) group) where the kernel needs no serial
//! order, else over the due list in Brian2's queue order.

use super::*;

/// Most due synapses one invocation of a grouped pathway takes on lavapipe: it sorts them
/// (heapsort: 1.5 n iterations of its outer loop) and walks them (n), within lavapipe's
/// 65,535 iterations per loop.
const MOST_PER_GROUP: usize = 32_768;

/// A pathway grouped by target: the grouping state, the kernel's indirect sizes, the
/// support kernels' parameters, the array of targets per synapse, the number of targets.
type ByTarget = (wgpu::Buffer, wgpu::Buffer, wgpu::Buffer, usize, usize);

impl GpuRun {
    /// `synapses`: a pathway's kernel over the synapses due this step, by bundles where the
    /// kernel needs no serial order, else in Brian2's queue order.
    pub(super) fn pathway(&mut self, cx: &mut Prep, op: &Op) -> Result<Prepared, EngineError> {
        let Op::Synapses { queue, .. } = op else {
            unreachable!("pathway of another operation")
        };
        if queue_of(&self.queues, *queue)?.bundles.is_some() {
            self.pathway_by_bundles(cx, op)
        } else {
            self.pathway_in_order(cx, op)
        }
    }

    /// One workgroup per due bundle (`queue::Bundles`).
    pub(super) fn pathway_by_bundles(
        &mut self,
        cx: &mut Prep,
        op: &Op,
    ) -> Result<Prepared, EngineError> {
        let Op::Synapses { kernel, queue } = op else {
            unreachable!("pathway_by_bundles of another operation")
        };
        let step_buf = Some(&self.rng_steps[cx.clock]);
        Ok({
            let q = queue_of(&self.queues, *queue)?;
            let atomic = match ir_parallel(cx.eng, *kernel) {
                Parallel::Atomic(v) => v,
                _ => Vec::new(),
            };
            let mut passes = Vec::new();
            // Queue state of earlier runs: over those synapses, at their step.
            for (j, rec) in &q.extra_ranges {
                let mode = Mode::List(&q.perm_buf, rec, &atomic);
                let n_max = (q.perm_buf.size() / 4) as usize;
                let mut p = self.kernel_pass(cx.eng, &[], *kernel, n_max, mode, None, step_buf)?;
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
                    passes.push(self.support(
                        "queue_plan",
                        QUEUE_WGSL,
                        "queue_plan",
                        &[
                            (0, &q.params),
                            (3, &q.ring),
                            (7, &q.tables),
                            (5, &self.rng_steps[cx.clock]),
                            (8, &q.slots),
                        ],
                        grid(self.ctx, q.distinct_delays().max(1), 64),
                    )?);
                    (&q.ring, q.slots.clone(), Some((2, 0, 16)))
                }
                _ => {
                    let Some(eventspace) = cx.eng.items.iter().find_map(|it| match &it.op {
                        Op::PushSpikes {
                            queue: pq,
                            eventspace,
                        } if pq == queue => Some(*eventspace),
                        _ => None,
                    }) else {
                        return Err(EngineError::Invalid(format!(
                            "pathway '{}' has no spike push",
                            cx.eng.kernels[*kernel].kernel.name
                        )));
                    };
                    let sq = &cx.eng.queues[*queue];
                    let n_space = self.arrays[eventspace].len.saturating_sub(1);
                    let (range, rp) =
                        self.event_range(cx, eventspace, n_space, sq.source_start, sq.source_stop)?;
                    passes.extend(rp);
                    (&self.bufs[eventspace], range, None)
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
                per_invocation: q.bundle_per_invocation,
            };
            let mut p = self.kernel_pass(cx.eng, &[], *kernel, 1, mode, None, step_buf)?;
            // Range records and `queue_plan` hold sizes for both ways of walking bundles.
            p.indirect = Some(match (bundling, q.bundle_per_invocation) {
                (wgsl::Bundling::Sources, false) => (range.clone(), RANGE_BUNDLES),
                (wgsl::Bundling::Sources, true) => (range.clone(), RANGE_INDIRECT),
                (wgsl::Bundling::SourceDelays, false) => (range.clone(), 0),
                (wgsl::Bundling::SourceDelays, true) => (range.clone(), 32),
            });
            p.ring = ring;
            passes.push(p);
            Prepared::Passes(passes, None)
        })
    }

    /// The ordered delivery (`queue_deliver`, `queue_expand`), then the kernel over the due
    /// list: in parallel, or in one invocation where the serial order matters.
    pub(super) fn pathway_in_order(
        &mut self,
        cx: &mut Prep,
        op: &Op,
    ) -> Result<Prepared, EngineError> {
        let Op::Synapses { kernel, queue } = op else {
            unreachable!("pathway_in_order of another operation")
        };
        Ok({
            let step_buf = Some(&self.rng_steps[cx.clock]);
            let q = queue_of(&self.queues, *queue)?;
            // The ordered delivery: a plan over blocks of distinct delays (their sums, then
            // the prefix), then a count and a write over tiles of (delay, event) pairs.
            let shared = [
                (0, &q.params),
                (2, &q.state),
                (3, &q.ring),
                (7, &q.tables),
                (9, &q.entries),
                (10, &q.range),
                (11, &q.indirect),
                (12, &q.tiles),
            ];
            let mut with_args = shared.to_vec();
            with_args.push((13, &q.tile_args));
            let blocks = super::queue::delay_blocks(q.distinct_delays()) as u32;
            let sums = self.support(
                "queue_deliver_sums",
                QUEUE_WGSL,
                "queue_deliver_sums",
                &[(0, &q.params), (2, &q.state), (3, &q.ring), (7, &q.tables)],
                [blocks, 1, 1],
            )?;
            let plan = self.support(
                "queue_deliver",
                QUEUE_WGSL,
                "queue_deliver",
                &with_args,
                [blocks, 1, 1],
            )?;
            let mut deliver = vec![sums, plan];
            for entry in ["queue_deliver_count", "queue_deliver_write"] {
                let mut p = self.support(entry, QUEUE_WGSL, entry, &shared, [1, 1, 1])?;
                p.indirect = Some((q.tile_args.clone(), 0));
                deliver.push(p);
            }
            let mut expand = self.support(
                "queue_expand",
                QUEUE_WGSL,
                "queue_expand",
                &[
                    (2, &q.state),
                    (9, &q.entries),
                    (14, &q.perm_buf),
                    (15, &q.due),
                ],
                [1, 1, 1],
            )?;
            expand.indirect = Some((q.indirect.clone(), 0));
            let mut passes = deliver;
            passes.push(expand);
            let n_max = (q.due.size() / 4) as usize;
            let parallel = ir_parallel(cx.eng, *kernel);
            let by_target = match parallel {
                Parallel::Serial => self.by_target(cx.eng, *kernel, q)?,
                _ => None,
            };
            let by_sets = match parallel {
                Parallel::Serial if by_target.is_none() => self.by_sets(cx.eng, *kernel, q)?,
                _ => None,
            };
            match parallel {
                Parallel::Serial if by_target.is_some() || by_sets.is_some() => {
                    let (state, args, params, keys, targets) = match (by_target, &by_sets) {
                        (Some((state, args, params, post, targets)), _) => {
                            (state, args, params, &self.bufs[post], targets)
                        }
                        (None, Some(sets)) => (
                            sets.state.clone(),
                            sets.args.clone(),
                            sets.params.clone(),
                            &sets.comp,
                            sets.keys,
                        ),
                        (None, None) => unreachable!("checked"),
                    };
                    if let Some(sets) = &by_sets {
                        // Each due synapse's set (its root key) into `comp`, per synapse.
                        let mut uf_entries = vec![
                            (0, &params),
                            (1, &q.range),
                            (2, &q.due),
                            (3, &self.bufs[sets.index_arrays[1]]),
                            (6, &self.bufs[sets.index_arrays[0]]),
                            (7, &sets.uf),
                        ];
                        for entry in ["b2_uf_init", "b2_uf_union", "b2_uf_find"] {
                            if entry == "b2_uf_find" {
                                uf_entries.push((8, &sets.comp));
                            }
                            let mut p =
                                self.support(entry, SYNAPSES_WGSL, entry, &uf_entries, [1, 1, 1])?;
                            p.indirect = Some((q.indirect.clone(), 12));
                            passes.push(p);
                        }
                    }
                    // The grouping by target, or by set with the sets' roots as targets.
                    let entries = [
                        (0, &params),
                        (1, &q.range),
                        (2, &q.due),
                        (3, keys),
                        (4, &state),
                        (5, &args),
                    ];
                    passes.push(self.support(
                        "b2_tgt_reset",
                        SYNAPSES_WGSL,
                        "b2_tgt_reset",
                        &entries,
                        [1, 1, 1],
                    )?);
                    for entry in ["b2_tgt_count", "b2_tgt_offsets", "b2_tgt_scatter"] {
                        let mut p =
                            self.support(entry, SYNAPSES_WGSL, entry, &entries, [1, 1, 1])?;
                        p.indirect = Some((q.indirect.clone(), 12));
                        passes.push(p);
                    }
                    let mode = Mode::ByTarget(&q.due, &q.range, &state, targets);
                    let mut p =
                        self.kernel_pass(cx.eng, &[], *kernel, n_max, mode, None, step_buf)?;
                    p.indirect = Some((args, 0));
                    passes.push(p);
                }
                Parallel::Serial => {
                    for c in 0..q.serial_chunks {
                        let mode = Mode::Serial(&q.due, &q.range, c * SERIAL_CHUNK);
                        let mut p =
                            self.kernel_pass(cx.eng, &[], *kernel, 1, mode, None, step_buf)?;
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
                        self.kernel_pass(cx.eng, &[], *kernel, n_max, mode, None, step_buf)?;
                    p.indirect = Some((q.indirect.clone(), 12));
                    passes.push(p);
                }
            }
            Prepared::Passes(passes, None)
        })
    }

    /// For a serial-order pathway whose conflicts are only among one target's synapses
    /// ([`crate::ir::serial_index`]): the grouping state of shaders/synapses.wgsl, its
    /// parameters, the array of targets per synapse and the number of possible targets.
    /// `None` (one invocation walks the whole due list instead) where the kernel writes
    /// through other indices, or on lavapipe where one target has so many synapses that
    /// its invocation's loops would outgrow lavapipe's limit.
    fn by_target(
        &self,
        eng: &Engine,
        kernel: usize,
        q: &GpuQueue,
    ) -> Result<Option<ByTarget>, EngineError> {
        let ek = &eng.kernels[kernel];
        let Some(iv) = crate::ir::serial_index(&ek.kernel, &alias_of(ek)) else {
            return Ok(None);
        };
        let Binding::Array(post) = ek.bindings[iv] else {
            return Ok(None);
        };
        let targets = self.indexed_len(ek, iv);
        let a = self.arrays[post];
        if a.ty != Type::I32 || a.ptr.is_null() || targets == 0 {
            return Ok(None);
        }
        // Synapses per target, from the host copy of the targets.
        let ids = unsafe { std::slice::from_raw_parts(a.ptr as *const i32, a.len) };
        let mut per_target = vec![0usize; targets];
        for &t in ids {
            match per_target.get_mut(t as usize) {
                Some(c) if t >= 0 => *c += 1,
                _ => return Ok(None),
            }
        }
        if self.loops_limited() && per_target.iter().any(|&c| c > MOST_PER_GROUP) {
            return Ok(None);
        }
        Ok(self
            .grouping("target", targets, q, 0)?
            .map(|(state, args, params)| (state, args, params, post, targets)))
    }

    /// The grouping state of shaders/synapses.wgsl for `keys` possible groups (targets or
    /// sets), the kernel's indirect sizes and the support kernels' parameters; `None`
    /// where the state would exceed the adapter's binding limit.
    fn grouping(
        &self,
        what: &str,
        keys: usize,
        q: &GpuQueue,
        second_from: usize,
    ) -> Result<Option<(wgpu::Buffer, wgpu::Buffer, wgpu::Buffer)>, EngineError> {
        let due_cap = (q.due.size() / 4) as usize;
        let words = 8 + 4 * keys + due_cap;
        if keys == 0
            || keys > u32::MAX as usize / 8
            || (words * 4) as u64 > self.ctx.limits.max_storage_buffer_binding_size
        {
            return Ok(None);
        }
        let state = storage(
            self.ctx,
            &format!("due synapses by {what}"),
            bytemuck::cast_slice(&vec![0u32; words]),
        )?;
        let args = self.ctx.indirect_buffer(
            &format!("by-{what} dispatch sizes"),
            bytemuck::cast_slice(&[0u32, 1, 1, 0]),
        )?;
        let max_x = self.ctx.limits.max_compute_workgroups_per_dimension;
        let params = storage(
            self.ctx,
            &format!("by-{what} params"),
            bytemuck::cast_slice(&[keys as u32, max_x, second_from as u32, 0]),
        )?;
        Ok(Some((state, args, params)))
    }

    /// The length of the longest array the kernel reaches through index variable `iv`:
    /// the number of values the index can take.
    fn indexed_len(&self, ek: &crate::runtime::EngineKernel, iv: usize) -> usize {
        ek.kernel
            .vars
            .iter()
            .zip(&ek.bindings)
            .filter(|(v, _)| v.index == crate::ir::Index::Var(iv))
            .filter_map(|(_, b)| match *b {
                Binding::Array(id) => Some(self.arrays[id].len),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether the adapter ends long shader loops: lavapipe (a CPU-type adapter) stops a
    /// loop after 65,535 iterations; GPUs run them to the end.
    fn loops_limited(&self) -> bool {
        self.ctx.info.device_type == wgpu::DeviceType::Cpu
    }

    /// For a serial-order pathway that writes through both indices
    /// ([`crate::ir::conflict_indices`]): the union-find and grouping state of
    /// shaders/synapses.wgsl. `None` (one invocation walks the whole due list instead)
    /// where the conflicts are not of that form, or on lavapipe where one set could
    /// outgrow its loops.
    fn by_sets(
        &self,
        eng: &Engine,
        kernel: usize,
        q: &GpuQueue,
    ) -> Result<Option<BySets>, EngineError> {
        let ek = &eng.kernels[kernel];
        let Some(ci) = crate::ir::conflict_indices(&ek.kernel, &alias_of(ek)) else {
            return Ok(None);
        };
        let due_cap = (q.due.size() / 4) as usize;
        if self.loops_limited() && due_cap > MOST_PER_GROUP {
            return Ok(None);
        }
        let mut index_arrays = [0usize; 2];
        let mut spans = [0usize; 2];
        for (k, &iv) in ci.indices.iter().enumerate() {
            let Binding::Array(id) = ek.bindings[iv] else {
                return Ok(None);
            };
            if self.arrays[id].ty != Type::I32 {
                return Ok(None);
            }
            index_arrays[k] = id;
            spans[k] = self.indexed_len(ek, iv);
        }
        let (second_from, keys) = if ci.same_elements {
            (0, spans[0].max(spans[1]))
        } else {
            (spans[0], spans[0] + spans[1])
        };
        let Some((state, args, params)) = self.grouping("set", keys, q, second_from)? else {
            return Ok(None);
        };
        let uf = storage(
            self.ctx,
            "union-find of due synapses",
            bytemuck::cast_slice(&vec![0u32; keys]),
        )?;
        let synapses = self.arrays[index_arrays[0]].len;
        let comp = storage(
            self.ctx,
            "set of each due synapse",
            bytemuck::cast_slice(&vec![-1i32; synapses.max(1)]),
        )?;
        Ok(Some(BySets {
            state,
            args,
            params,
            uf,
            comp,
            index_arrays,
            keys,
        }))
    }
}

/// A pathway grouped into independent sets of due synapses (see [`GpuRun::by_sets`]).
struct BySets {
    /// The grouping state, as for [`ByTarget`], with sets for targets.
    state: wgpu::Buffer,
    /// The kernel's indirect sizes.
    args: wgpu::Buffer,
    /// [keys, max workgroups per dimension, first key of the second index, 0].
    params: wgpu::Buffer,
    /// Parent per key.
    uf: wgpu::Buffer,
    /// The set (root key) of each synapse due this step.
    comp: wgpu::Buffer,
    /// The arrays of the two index variables (pre, post).
    index_arrays: [usize; 2],
    /// The number of keys.
    keys: usize,
}
