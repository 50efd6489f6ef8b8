//! GSL state updaters on the GPU: the non-derivative statements (refractoriness) as an
//! element kernel, then one invocation per element running GSL's driver around the
//! derivative kernel (`wgsl::Options::gsl`; the interpreter's version is `runtime::gsl`).

use super::*;
use crate::runtime::gsl::{Failure, failure_error};

impl GpuRun {
    pub(super) fn integrate(&mut self, cx: &mut Prep, op: &Op) -> Result<Prepared, EngineError> {
        let Op::Integrate {
            pre,
            kernel,
            n,
            dt,
            spec,
        } = op
        else {
            unreachable!("integrate of another operation")
        };
        let step_buf = Some(&self.rng_steps[cx.clock]);
        let mut passes = Vec::new();
        if let Some(p) = pre {
            passes.push(self.kernel_pass(cx.eng, &[], *p, *n, Mode::Elements, None, step_buf)?);
        }
        let ek = &cx.eng.kernels[*kernel];
        let var = |name: &str| -> Result<usize, EngineError> {
            ek.kernel
                .vars
                .iter()
                .position(|v| v.name == name)
                .ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "GSL derivative kernel of '{}' lacks the variable '{name}'",
                        spec.owner
                    ))
                })
        };
        let shape = wgsl::GslShape {
            states: spec
                .names
                .iter()
                .map(|n| var(n))
                .collect::<Result<_, _>>()?,
            derivs: spec
                .names
                .iter()
                .map(|n| var(&format!("_gsl_k_{n}")))
                .collect::<Result<_, _>>()?,
            time: var("_gsl_t")?,
            stepper: spec.stepper,
            scale: spec.scale.clone(),
            dt: *dt,
            adaptive: spec.adaptive,
            max_steps: spec.max_steps,
            last_timestep: spec.last_timestep.is_some(),
            failed_steps: spec.failed_steps.is_some(),
            step_count: spec.step_count.is_some(),
        };
        for &id in &spec.state {
            if self.arrays[id].ty != Type::F64 {
                return Err(EngineError::Unsupported(format!(
                    "wgpu device: GSL integration of a {} variable of '{}' (float64 only)",
                    self.arrays[id].ty, spec.owner
                )));
            }
        }
        let status = storage(self.ctx, "GSL status", &[0u8; 20])?;
        // In the order of `WgslKernel::gsl_binding`: only what the user asked for.
        let bufs: Vec<&wgpu::Buffer> = std::iter::once(&status)
            .chain(
                [spec.last_timestep, spec.failed_steps, spec.step_count]
                    .into_iter()
                    .flatten()
                    .map(|id| &self.bufs[id]),
            )
            .collect();
        let mode = Mode::Integrate(&shape, &bufs, &spec.state);
        passes.push(self.kernel_pass_of(cx.eng.seed, ek, &[], *n, mode, None, step_buf)?);
        drop(bufs);
        self.integrations.push((status, spec.clone(), *dt));
        Ok(Prepared::Passes(passes, None))
    }

    /// After the run: the first failed integration of each GSL state updater (Brian2's
    /// `IntegrationError`) as an error.
    pub(super) fn check_integrations(&self) -> Result<(), EngineError> {
        for (status, spec, dt) in &self.integrations {
            let words: Vec<u32> = bytemuck::pod_collect_to_vec(&self.ctx.read_buffer(status, 20)?);
            let Some(why) = Failure::from_code(words[0]) else {
                continue;
            };
            let step = words[2] as u64 | (words[3] as u64) << 32;
            let base = failure_error(why, spec, words[1] as usize, step as f64 * dt).to_string();
            return Err(EngineError::Integration(format!(
                "{} On the gpu backend the group stopped integrating at that step (its \
                 elements that had finished the step kept it); the rest of the network ran \
                 to the end of the run.",
                base.trim_end_matches(" The group's state is that before the step.")
            )));
        }
        Ok(())
    }
}
