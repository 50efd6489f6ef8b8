//! A synaptic pathway's kernel on the GPU (Brian2's `synapses` template): by bundles (one
//! workgroup per due source or (source, delay) group) where the kernel needs no serial
//! order, else over the due list in Brian2's queue order.

use super::*;

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
                        &section_of(SYNAPSES_WGSL, "queue_plan"),
                        "main",
                        &[
                            (0, &q.params),
                            (1, &q.ring),
                            (2, &q.tables),
                            (3, &self.rng_steps[cx.clock]),
                            (4, &q.slots),
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
            let deliver = self.support(
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
            let mut expand = self.support(
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
            match ir_parallel(cx.eng, *kernel) {
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
}
