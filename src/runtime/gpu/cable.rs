//! SpatialNeuron on the GPU (`spatialstateupdate`): the template's kernel, then the cable
//! equation's three passes of `shaders/cable.wgsl` (per section, the coupling system,
//! per compartment). No host round trip per step.

use super::*;
use crate::runtime::cable::Morphology;

pub(super) const CABLE_WGSL: &str = include_str!("../../../shaders/cable.wgsl");

/// Host values of an engine array as the bytes the GPU reads (`ty` checked).
fn host_bytes<'a>(a: &'a RawArray, ty: Type, what: &str) -> Result<&'a [u8], EngineError> {
    if a.ty != ty || a.ptr.is_null() {
        return Err(EngineError::Invalid(format!(
            "SpatialNeuron: {what} must be a {ty} array, got {}",
            a.ty
        )));
    }
    Ok(unsafe { std::slice::from_raw_parts(a.ptr, a.len * elem_size(ty)) })
}

impl GpuRun {
    pub(super) fn cable(&mut self, cx: &mut Prep, op: &Op) -> Result<Prepared, EngineError> {
        let Op::Cable {
            kernel,
            n,
            dt,
            arrays: ids,
        } = op
        else {
            unreachable!("cable of another operation")
        };
        let a = &self.arrays;
        let float = a[ids.v].ty;
        let ints = |id: usize, what: &str| -> Result<&[i32], EngineError> {
            Ok(bytemuck::cast_slice(host_bytes(&a[id], Type::I32, what)?))
        };
        let morph = Morphology {
            starts: ints(ids.starts, "_starts")?,
            ends: ints(ids.ends, "_ends")?,
            parent: ints(ids.morph_parent_i, "_morph_parent_i")?,
            idxchild: ints(ids.morph_idxchild, "_morph_idxchild")?,
            children_num: ints(ids.morph_children_num, "_morph_children_num")?,
            children: ints(ids.morph_children, "_morph_children")?,
        };
        let comps = a[ids.v].len;
        let ranges = morph
            .sections(comps)
            .map_err(|e| EngineError::Invalid(format!("SpatialNeuron: {e}")))?;
        let s = ranges.len();
        let row = morph.row();
        // Constant during the run: Brian2 computes them on the host before it.
        let mut coef: Vec<u8> = Vec::new();
        for (id, len, what) in [
            (ids.ab_star0, comps, "_ab_star0"),
            (ids.ab_star1, comps, "_ab_star1"),
            (ids.ab_star2, comps, "_ab_star2"),
            (ids.b_plus, comps, "_b_plus"),
            (ids.b_minus, comps, "_b_minus"),
            (ids.cm, comps, "Cm"),
            (ids.invr0, s, "_invr0"),
            (ids.invrn, s, "_invrn"),
        ] {
            if a[id].len != len {
                return Err(EngineError::Invalid(format!(
                    "SpatialNeuron: {what} has {} entries, not {len}",
                    a[id].len
                )));
            }
            coef.extend_from_slice(host_bytes(&a[id], float, what)?);
        }
        match float {
            Type::F64 => coef.extend_from_slice(&dt.to_le_bytes()),
            Type::F32 => coef.extend_from_slice(&(*dt as f32).to_le_bytes()),
            t => {
                return Err(EngineError::Invalid(format!(
                    "SpatialNeuron: v is {t}, not a float"
                )));
            }
        }
        for (id, what) in [
            (ids.ic, "Ic"),
            (ids.v_previous, "_v_previous"),
            (ids.gtot_all, "_gtot_all"),
            (ids.i0_all, "_I0_all"),
        ] {
            if a[id].len != comps || a[id].ty != float {
                return Err(EngineError::Invalid(format!(
                    "SpatialNeuron: {what} must be {comps} values of {float}"
                )));
            }
        }
        let mut section_of = vec![-1i32; comps];
        for (i, &(start, end)) in ranges.iter().enumerate() {
            section_of[start..end].fill(i as i32);
        }
        let mut packed: Vec<i32> = Vec::new();
        for part in [
            morph.starts,
            morph.ends,
            morph.parent,
            morph.idxchild,
            morph.children_num,
            morph.children,
            &section_of,
        ] {
            packed.extend_from_slice(part);
        }
        let size = elem_size(float);
        let params = storage(
            self.ctx,
            "cable params",
            bytemuck::cast_slice(&[comps as u32, s as u32, row as u32]),
        )?;
        let coef = storage(self.ctx, "cable coefficients", &coef)?;
        let morph_buf = storage(self.ctx, "cable morphology", bytemuck::cast_slice(&packed))?;
        let sol = storage(self.ctx, "cable solutions", &vec![0u8; 4 * comps * size])?;
        let tree_len = 2 * (s + 1) + s + (s + 1) * row.max(1);
        let tree = storage(self.ctx, "cable coupling", &vec![0u8; tree_len * size])?;
        let ty = crate::wgsl::polyfill::wgsl_type(float);
        let src = format!("alias Value = {ty};\n{CABLE_WGSL}");
        let step_buf = Some(&self.rng_steps[cx.clock]);
        let k = self.kernel_pass(cx.eng, &[], *kernel, *n, Mode::Elements, None, step_buf)?;
        let b = &self.bufs;
        let sections = self.support(
            "cable_sections",
            &src,
            "cable_sections",
            &[
                (0, &params),
                (1, &coef),
                (2, &morph_buf),
                (3, &sol),
                (5, &b[ids.v]),
                (6, &b[ids.gtot_all]),
                (7, &b[ids.i0_all]),
            ],
            grid(self.ctx, s, 64),
        )?;
        let couple = self.support(
            "cable_couple",
            &src,
            "cable_couple",
            &[
                (0, &params),
                (1, &coef),
                (2, &morph_buf),
                (3, &sol),
                (4, &tree),
            ],
            [1, 1, 1],
        )?;
        let combine = self.support(
            "cable_combine",
            &src,
            "cable_combine",
            &[
                (0, &params),
                (1, &coef),
                (2, &morph_buf),
                (3, &sol),
                (4, &tree),
                (5, &b[ids.v]),
                (8, &b[ids.v_previous]),
                (9, &b[ids.ic]),
            ],
            grid(self.ctx, comps, 64),
        )?;
        self.keep.extend([params, coef, morph_buf, sol, tree]);
        Ok(Prepared::Passes(vec![k, sections, couple, combine], None))
    }
}
