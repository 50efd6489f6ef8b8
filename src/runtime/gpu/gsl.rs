//! GSL state updaters on the GPU.

use super::*;

impl GpuRun {
    pub(super) fn integrate(&mut self, _cx: &mut Prep, op: &Op) -> Result<Prepared, EngineError> {
        let Op::Integrate { spec, .. } = op else {
            unreachable!("integrate of another operation")
        };
        Err(EngineError::Unsupported(format!(
            "wgpu device: GSL integration ('{}') runs on the interpreter only so far; use \
             prefs.devices.wgpu.backend = 'cpu'",
            spec.owner
        )))
    }
}
