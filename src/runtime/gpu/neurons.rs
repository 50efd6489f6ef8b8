//! Neuron groups on the GPU: `stateupdate` (fused with the group's `threshold` where that
//! is exact), `threshold` with the ordered event compaction of `shaders/neurons.wgsl`, and
//! `reset`.

use super::*;

impl GpuRun {
    /// `stateupdate` and other per-element templates: one kernel over the group, which also
    /// runs the group's threshold when that comes next (see [`fuse_threshold`]).
    pub(super) fn elementwise(&mut self, cx: &mut Prep, op: &Op) -> Result<Prepared, EngineError> {
        let Op::Elementwise { kernel, n } = op else {
            unreachable!("elementwise of another operation")
        };
        Ok({
            let step_buf = Some(&self.rng_steps[cx.clock]);
            // A state update right before its group's threshold (same clock, same
            // elements) runs the threshold too, counting events for the compaction.
            let fused = match cx.eng.items.get(cx.pos + 1) {
                Some(next) if next.clock == cx.clock => match &next.op {
                    Op::Threshold {
                        kernel: tk,
                        n: tn,
                        cond,
                        ..
                    } if tn == n => fuse_threshold(cx.eng, *kernel, *tk, *cond),
                    _ => None,
                },
                _ => None,
            };
            match fused {
                Some((ek, flag)) => {
                    let tiles = compaction_counters(self.ctx, *n)?;
                    let mode = Mode::CountingEvents(flag, &tiles);
                    let p = self.kernel_pass_of(cx.eng.seed, &ek, &[], *n, mode, None, step_buf)?;
                    cx.fused_threshold = Some((cx.pos + 1, tiles));
                    Prepared::Passes(vec![p], None)
                }
                None => Prepared::Passes(
                    vec![self.kernel_pass(
                        cx.eng,
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
        })
    }

    /// `threshold`: the kernel (unless fused into the state update) writes the flags and
    /// counts them per tile; the scatter writes the ascending eventspace and the group's
    /// range record (shaders/neurons.wgsl).
    pub(super) fn threshold(&mut self, cx: &mut Prep, op: &Op) -> Result<Prepared, EngineError> {
        let Op::Threshold {
            kernel,
            n,
            cond,
            eventspace,
            ..
        } = op
        else {
            unreachable!("threshold of another operation")
        };
        Ok({
            let step_buf = Some(&self.rng_steps[cx.clock]);
            // Ordered compaction over tiles (shaders/neurons.wgsl): the threshold
            // kernel counts its events per tile, then a scatter that also writes
            // the whole group's range record. Two halves of counters (step parity).
            let (done, tiles) = match cx.fused_threshold.take() {
                Some((at, tiles)) if at == cx.pos => (true, tiles),
                _ => (false, compaction_counters(self.ctx, *n)?),
            };
            let range = self.range_buffer()?;
            let rng_step = &self.rng_steps[cx.clock];
            let flag = cx.eng.kernels[*kernel]
                .bindings
                .iter()
                .position(|b| *b == Binding::Array(*cond))
                .filter(|&v| cx.eng.kernels[*kernel].kernel.vars[v].ty == Type::Bool);
            let p = storage(
                self.ctx,
                "compact params",
                bytemuck::cast_slice(&[
                    *n as u32,
                    0,
                    *n as u32,
                    self.ctx.limits.max_compute_workgroups_per_dimension,
                    EVENT_WG,
                    0,
                    0,
                    0,
                ]),
            )?;
            let entries = [
                (0, &p),
                (1, &self.bufs[*cond]),
                (2, &self.bufs[*eventspace]),
                (3, &range),
                (4, &tiles),
                (5, rng_step),
            ];
            let mut passes = Vec::new();
            match flag {
                _ if done => {}
                Some(v) => passes.push(self.kernel_pass(
                    cx.eng,
                    &[],
                    *kernel,
                    *n,
                    Mode::CountingEvents(v, &tiles),
                    None,
                    step_buf,
                )?),
                None => {
                    // The flags come from elsewhere: count them separately.
                    passes.push(self.kernel_pass(
                        cx.eng,
                        &[],
                        *kernel,
                        *n,
                        Mode::Elements,
                        None,
                        step_buf,
                    )?);
                    passes.push(self.support(
                        "b2_compact_count",
                        NEURONS_WGSL,
                        "b2_compact_count",
                        &entries,
                        grid(self.ctx, (*n).max(1), 64),
                    )?);
                }
            }
            passes.push(self.support(
                "b2_compact_scatter",
                NEURONS_WGSL,
                "b2_compact_scatter",
                &entries,
                grid(
                    self.ctx,
                    (*n).div_ceil(wgsl::COMPACT_TILE as usize).max(1),
                    64,
                ),
            )?);
            self.keep.push(tiles);
            // Consumers of the whole group's events read the scatter's record.
            cx.ranges.push((cx.key(*eventspace, *n, 0, *n), range));
            Prepared::Passes(passes, None)
        })
    }

    /// `reset`: one invocation per event.
    pub(super) fn reset(&mut self, cx: &mut Prep, op: &Op) -> Result<Prepared, EngineError> {
        let Op::Reset { kernel, eventspace } = op else {
            unreachable!("reset of another operation")
        };
        Ok({
            let step_buf = Some(&self.rng_steps[cx.clock]);
            let n = self.arrays[*eventspace].len - 1;
            let (range, rp) = self.event_range(cx, *eventspace, n, 0, n)?;
            let mut k = self.kernel_pass(
                cx.eng,
                &[],
                *kernel,
                n,
                Mode::List(&self.bufs[*eventspace], &range, &[]),
                None,
                step_buf,
            )?;
            k.indirect = Some((range.clone(), RANGE_INDIRECT));
            Prepared::Passes(rp.into_iter().chain([k]).collect(), None)
        })
    }
}

/// The counters of an event compaction over `n` flags (two halves, shaders/neurons.wgsl).
fn compaction_counters(ctx: &GpuContext, n: usize) -> Result<wgpu::Buffer, EngineError> {
    storage(
        ctx,
        "compact tiles",
        &vec![0u8; wgsl::compact_counters(n) * 4],
    )
}

/// State update `a` and threshold `b` as one kernel ([`crate::ir::fuse_elementwise`]),
/// and the fused kernel's event flag (the threshold's `cond` array), where that is exact.
fn fuse_threshold(
    eng: &Engine,
    a: usize,
    b: usize,
    cond: usize,
) -> Option<(crate::runtime::EngineKernel, usize)> {
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
        crate::runtime::EngineKernel {
            kernel: f.kernel,
            program: Err("fused for the GPU only".into()),
            bindings,
            rng_id: ka.rng_id,
        },
        f.b_vars[flag],
    ))
}
