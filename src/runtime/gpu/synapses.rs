//! A synaptic pathway's kernel on the GPU (Brian2's `synapses` template): by bundles (one
//! workgroup per due source or (source, delay) group) where the kernel needs no serial
//! order, else over the due list in Brian2's queue order.

use super::*;

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
            // The ordered delivery: plan (one workgroup, over the distinct delays), then a
            // count and a write over tiles of (delay, event) pairs.
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
            let plan = self.support(
                "queue_deliver",
                QUEUE_WGSL,
                "queue_deliver",
                &with_args,
                [1, 1, 1],
            )?;
            let mut deliver = vec![plan];
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
            match parallel {
                Parallel::Serial if by_target.is_some() => {
                    let (state, args, params, post, targets) = by_target.expect("checked");
                    let entries = [
                        (0, &params),
                        (1, &q.range),
                        (2, &q.due),
                        (3, &self.bufs[post]),
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
    /// through other indices, or where one target has so many synapses that its
    /// invocation's loops would be long (lavapipe ends a shader's loops after 65,535
    /// iterations).
    fn by_target(
        &self,
        eng: &Engine,
        kernel: usize,
        q: &GpuQueue,
    ) -> Result<Option<ByTarget>, EngineError> {
        // A target's invocation sorts its due positions (heapsort: 1.5 n iterations of
        // its outer loop) and walks them (n): within lavapipe's 65,535 per loop.
        const MOST_PER_TARGET: usize = 32_768;
        let ek = &eng.kernels[kernel];
        let Some(iv) = crate::ir::serial_index(&ek.kernel, &alias_of(ek)) else {
            return Ok(None);
        };
        let Binding::Array(post) = ek.bindings[iv] else {
            return Ok(None);
        };
        let targets = ek
            .kernel
            .vars
            .iter()
            .zip(&ek.bindings)
            .filter(|(v, _)| v.written && v.index == crate::ir::Index::Var(iv))
            .filter_map(|(_, b)| match *b {
                Binding::Array(id) => Some(self.arrays[id].len),
                _ => None,
            })
            .max()
            .unwrap_or(0);
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
        if per_target.iter().any(|&c| c > MOST_PER_TARGET) {
            return Ok(None);
        }
        let due_cap = (q.due.size() / 4) as usize;
        let words = 8 + 4 * targets + due_cap;
        if (words * 4) as u64 > self.ctx.limits.max_storage_buffer_binding_size {
            return Ok(None);
        }
        let state = storage(
            self.ctx,
            "due synapses by target",
            bytemuck::cast_slice(&vec![0u32; words]),
        )?;
        let args = self.ctx.indirect_buffer(
            "by-target dispatch sizes",
            bytemuck::cast_slice(&[0u32, 1, 1, 0]),
        )?;
        let max_x = self.ctx.limits.max_compute_workgroups_per_dimension;
        let params = storage(
            self.ctx,
            "by-target params",
            bytemuck::cast_slice(&[targets as u32, max_x, 0, 0]),
        )?;
        Ok(Some((state, args, params, post, targets)))
    }
}
