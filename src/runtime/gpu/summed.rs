//! Summed variables on the GPU (`summedvariableupdate`): per-synapse values, then one
//! invocation per target summing in ascending synapse order (`shaders/summed.wgsl`).

use super::*;

const SUMMED_WGSL: &str = include_str!("../../../shaders/summed.wgsl");

impl GpuRun {
    /// `summedvariableupdate`: the values per synapse, then one invocation per target.
    pub(super) fn summed_variable(
        &mut self,
        cx: &mut Prep,
        op: &Op,
    ) -> Result<Prepared, EngineError> {
        let Op::SummedVariable {
            kernel,
            n,
            values,
            index,
            target,
            start,
            stop,
        } = op
        else {
            unreachable!("summed_variable of another operation")
        };
        Ok({
            let step_buf = Some(&self.rng_steps[cx.clock]);
            let k = self.kernel_pass(cx.eng, &[], *kernel, *n, Mode::Elements, None, step_buf)?;
            let (s, csr) = self.summed_pass(*n, *values, *index, *target, *start, *stop)?;
            self.keep.push(csr);
            Prepared::Passes(vec![k, s], None)
        })
    }
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
        let src = summed_source(value_ty, self.ctx.supports_f64());
        let params = storage(
            self.ctx,
            "summed params",
            bytemuck::cast_slice(&[start as u32, width as u32]),
        )?;
        let csr = storage(self.ctx, "summed csr", bytemuck::cast_slice(&csr))?;
        let mut p = self.support(
            "summed",
            &src,
            "summed",
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

/// shaders/summed.wgsl with its accumulator declared in front: float64 (numpy's bincount
/// sums in float64), emulated for float32 values where the device has no f64; integers
/// and, without f64, float64 values themselves are summed in their own type.
pub(super) fn summed_source(value_ty: Type, f64: bool) -> String {
    use crate::wgsl::polyfill::{Helper, collect_for, wgsl_type};
    let ty = wgsl_type(value_ty);
    let acc = match (value_ty, f64) {
        (Type::F32, false) => {
            let acc = "alias Acc = vec2<u32>;
fn b2_acc_zero() -> Acc { return vec2<u32>(0u, 0u); }
fn b2_acc_add(a: Acc, v: Value) -> Acc { return b2s_add(a, b2s_from_f32(v)); }
fn b2_acc_value(a: Acc) -> Value { return b2s_to_f32(a); }";
            // The emulation's items these functions reach.
            format!("{}\n{acc}", collect_for(&[Helper::SoftF64].into(), acc))
        }
        (_, f64) => {
            let acc = if f64 { "f64" } else { ty };
            format!(
                "alias Acc = {acc};
fn b2_acc_zero() -> Acc {{ return Acc(0); }}
fn b2_acc_add(a: Acc, v: Value) -> Acc {{ return a + Acc(v); }}
fn b2_acc_value(a: Acc) -> Value {{ return Value(a); }}"
            )
        }
    };
    format!("alias Value = {ty};\n{acc}\n{SUMMED_WGSL}")
}
