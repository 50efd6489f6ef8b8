//! GSL state updaters on the GPU: not yet (the interpreter runs them, `runtime::gsl`).
//! Refused while the run is prepared, before its first step.

use super::*;

impl GpuRun {
    pub(super) fn integrate(&mut self, _cx: &mut Prep, op: &Op) -> Result<Prepared, EngineError> {
        let Op::Integrate { spec, .. } = op else {
            unreachable!("integrate of another operation")
        };
        Err(EngineError::Unsupported(format!(
            "wgpu device: GSL integration (method 'gsl_*') of '{}' is not supported on the \
             gpu backend yet; use prefs.devices.wgpu.backend = 'cpu' (or 'auto', which runs \
             such networks on the interpreter)",
            spec.owner
        )))
    }
}
