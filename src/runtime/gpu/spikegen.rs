//! SpikeGeneratorGroup on the GPU (`spikegenerator`, `shaders/spikegen.wgsl`).

use super::*;

pub(super) const SPIKEGEN_WGSL: &str = include_str!("../../../shaders/spikegen.wgsl");

impl GpuRun {
    /// `spikegenerator`: a one-thread plan, then one invocation per event of the bin.
    pub(super) fn spike_generator(
        &mut self,
        cx: &mut Prep,
        op: &Op,
    ) -> Result<Prepared, EngineError> {
        let Op::SpikeGenerator {
            eventspace,
            neuron_index,
            timebins,
            lastindex,
            period,
        } = op
        else {
            unreachable!("spike_generator of another operation")
        };
        Ok({
            let ts = cx.clocks.clocks[cx.clock].timestep_array;
            let clock_step = ts.map(|a| &self.bufs[a]);
            let step = clock_step.ok_or_else(|| {
                EngineError::Invalid("spike generator: clock has no timestep".into())
            })?;
            let n = self.arrays[*eventspace].len.saturating_sub(1);
            let bins = self.arrays[*timebins].len;
            if self.arrays[*neuron_index].len < bins || *period > i32::MAX as i64 {
                return Err(EngineError::Invalid(
                    "spike generator: inconsistent arrays".into(),
                ));
            }
            let max_x = self
                .ctx
                .limits
                .max_compute_workgroups_per_dimension
                .min(i32::MAX as u32);
            let params = storage(
                self.ctx,
                "spikegen params",
                bytemuck::cast_slice(&[*period as i32, n as i32, bins as i32, max_x as i32]),
            )?;
            let plan = self.ctx.indirect_buffer("spikegen plan", &[0u8; 32])?;
            let mut p = self.support(
                "spikegen_plan",
                SPIKEGEN_WGSL,
                "spikegen_plan",
                &[
                    (0, &params),
                    (1, step),
                    (2, &self.bufs[*timebins]),
                    (3, &self.bufs[*lastindex]),
                    (4, &self.bufs[*eventspace]),
                    (5, &plan),
                ],
                [1, 1, 1],
            )?;
            p.params = Some(params);
            let mut copy = self.support(
                "spikegen_copy",
                SPIKEGEN_WGSL,
                "spikegen_copy",
                &[
                    (6, &plan),
                    (7, &self.bufs[*neuron_index]),
                    (4, &self.bufs[*eventspace]),
                ],
                [1, 1, 1],
            )?;
            copy.indirect = Some((plan, 16));
            Prepared::Passes(vec![p, copy], None)
        })
    }
}
