//! SpatialNeuron's cable equation (Brian2's `spatialstateupdate` template) on the host:
//! per section, a tridiagonal solve for the particular solution and the two homogeneous
//! ones; then the small system that couples the sections at their branch points; then
//! the voltage as their combination. The same algorithm as Brian2's Cython template
//! (Hines-style elimination over the section tree), sections in parallel.

use rayon::prelude::*;

use super::ArrayId;

/// The engine arrays of a `spatialstateupdate` op, named after Brian2's variables.
#[derive(Debug, Clone)]
pub struct CableArrays {
    pub v: ArrayId,
    pub cm: ArrayId,
    pub ic: ArrayId,
    pub v_previous: ArrayId,
    pub gtot_all: ArrayId,
    pub i0_all: ArrayId,
    pub ab_star0: ArrayId,
    pub ab_star1: ArrayId,
    pub ab_star2: ArrayId,
    pub b_plus: ArrayId,
    pub b_minus: ArrayId,
    pub v_star: ArrayId,
    pub u_plus: ArrayId,
    pub u_minus: ArrayId,
    pub c: ArrayId,
    pub starts: ArrayId,
    pub ends: ArrayId,
    pub morph_parent_i: ArrayId,
    pub morph_idxchild: ArrayId,
    pub invr0: ArrayId,
    pub invrn: ArrayId,
    pub p_parent: ArrayId,
    pub p_diag: ArrayId,
    pub b: ArrayId,
    pub morph_children_num: ArrayId,
    pub morph_children: ArrayId,
    pub p_children: ArrayId,
}

impl CableArrays {
    /// The integer arrays (int32); every other one has the model's float type.
    pub fn int_ids(&self) -> [ArrayId; 6] {
        [
            self.starts,
            self.ends,
            self.morph_parent_i,
            self.morph_idxchild,
            self.morph_children_num,
            self.morph_children,
        ]
    }

    pub fn float_ids(&self) -> [ArrayId; 21] {
        [
            self.v,
            self.cm,
            self.ic,
            self.v_previous,
            self.gtot_all,
            self.i0_all,
            self.ab_star0,
            self.ab_star1,
            self.ab_star2,
            self.b_plus,
            self.b_minus,
            self.v_star,
            self.u_plus,
            self.u_minus,
            self.c,
            self.invr0,
            self.invrn,
            self.p_parent,
            self.p_diag,
            self.b,
            self.p_children,
        ]
    }
}

/// The arrays one step reads and writes, as Brian2's flat morphology lays them out
/// (per compartment, per section, per section plus the root, and the children table).
pub struct Cable<'a, T> {
    pub dt: T,
    // Per compartment.
    pub v: &'a mut [T],
    pub cm: &'a [T],
    pub ic: &'a mut [T],
    pub v_previous: &'a [T],
    pub gtot: &'a [T],
    pub i0: &'a [T],
    pub ab_star0: &'a [T],
    pub ab_star1: &'a [T],
    pub ab_star2: &'a [T],
    pub b_plus: &'a [T],
    pub b_minus: &'a [T],
    pub v_star: &'a mut [T],
    pub u_plus: &'a mut [T],
    pub u_minus: &'a mut [T],
    pub c: &'a mut [T],
    // Per section.
    pub starts: &'a [i32],
    pub ends: &'a [i32],
    pub parent: &'a [i32],
    pub idxchild: &'a [i32],
    pub invr0: &'a [T],
    pub invrn: &'a [T],
    pub p_parent: &'a mut [T],
    // Per section plus the root (row 0).
    pub p_diag: &'a mut [T],
    pub b: &'a mut [T],
    pub children_num: &'a [i32],
    // Rows of `children_num.len()` entries each.
    pub children: &'a [i32],
    pub p_children: &'a mut [T],
}

/// The section tree of Brian2's flat morphology (int32 arrays).
pub struct Morphology<'a> {
    pub starts: &'a [i32],
    pub ends: &'a [i32],
    pub parent: &'a [i32],
    pub idxchild: &'a [i32],
    pub children_num: &'a [i32],
    pub children: &'a [i32],
}

impl Morphology<'_> {
    /// Each section's compartments `[start, end)`, after checking every index a step
    /// follows: in range, and sections that do not overlap (as Brian2 lays them out).
    pub fn sections(&self, n: usize) -> Result<Vec<(usize, usize)>, String> {
        let s = self.starts.len();
        let per_section = [self.ends.len(), self.parent.len(), self.idxchild.len()];
        if s == 0 || per_section.iter().any(|&l| l != s) {
            return Err(format!(
                "per-section arrays differ in length from _starts ({s})"
            ));
        }
        if self.children_num.len() != s + 1 {
            return Err(format!("_morph_children_num needs {} entries", s + 1));
        }
        let row = self.row();
        if row * (s + 1) != self.children.len() {
            return Err("the children table is not (sections + 1) rows".into());
        }
        for i in 0..s {
            let parent = self.parent[i];
            let slot = self.idxchild[i];
            if parent < 0 || parent as usize > s || slot < 0 || slot as usize >= row.max(1) {
                return Err(format!(
                    "section {i} has parent {parent}, child slot {slot}"
                ));
            }
        }
        for (i, &k) in self.children_num.iter().enumerate() {
            if k < 0 || k as usize > row {
                return Err(format!("row {i} has {k} children"));
            }
            let kids = &self.children[i * row..i * row + k as usize];
            if kids.iter().any(|&j| j < 1 || j as usize > s) {
                return Err(format!("row {i} names a child outside 1..={s}"));
            }
        }
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(s);
        for i in 0..s {
            let (a, b) = (self.starts[i], self.ends[i]);
            if a < 0 || b <= a || b as usize > n {
                return Err(format!("section {i} spans [{a}, {b}) of {n} compartments"));
            }
            ranges.push((a as usize, b as usize));
        }
        let mut sorted = ranges.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0].1 > w[1].0) {
            return Err("sections overlap".into());
        }
        Ok(ranges)
    }

    /// Entries per row of the children tables.
    pub fn row(&self) -> usize {
        self.children.len() / self.children_num.len().max(1)
    }
}

/// The float types the solver runs in (the model's).
pub trait Real:
    Copy
    + Send
    + Sync
    + PartialEq
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// Below this many compartments one thread solves every section.
const PARALLEL_MIN: usize = 1 << 13;

/// One section's compartments in the per-compartment arrays it writes.
struct SectionRows<'a, T> {
    start: usize,
    v_star: &'a mut [T],
    u_plus: &'a mut [T],
    u_minus: &'a mut [T],
    c: &'a mut [T],
}

impl<T: Real> Cable<'_, T> {
    /// Check the morphology's arrays: every index the step follows must be in range, and
    /// the sections must tile the compartments (as Brian2 lays them out).
    fn sections(&self) -> Result<Vec<(usize, usize)>, String> {
        let n = self.v.len();
        let s = self.starts.len();
        let per_comp = [
            self.cm.len(),
            self.ic.len(),
            self.v_previous.len(),
            self.gtot.len(),
            self.i0.len(),
            self.ab_star0.len(),
            self.ab_star1.len(),
            self.ab_star2.len(),
            self.b_plus.len(),
            self.b_minus.len(),
            self.v_star.len(),
            self.u_plus.len(),
            self.u_minus.len(),
            self.c.len(),
        ];
        if per_comp.iter().any(|&l| l != n) {
            return Err(format!(
                "per-compartment arrays differ in length from v ({n})"
            ));
        }
        if self.invr0.len() != s || self.invrn.len() != s || self.p_parent.len() != s {
            return Err(format!(
                "per-section arrays differ in length from _starts ({s})"
            ));
        }
        if self.p_diag.len() != s + 1 || self.b.len() != s + 1 {
            return Err(format!("_P_diag and _B need {} entries", s + 1));
        }
        if self.p_children.len() != self.children.len() {
            return Err("_P_children and _morph_children differ in length".into());
        }
        Morphology {
            starts: self.starts,
            ends: self.ends,
            parent: self.parent,
            idxchild: self.idxchild,
            children_num: self.children_num,
            children: self.children,
        }
        .sections(n)
    }

    /// One step: `v` from `v_previous`'s values (already copied), the currents `gtot`,
    /// `i0` of this step, and the morphology's constant coefficients; then `ic`.
    pub fn step(&mut self) -> Result<(), String> {
        let ranges = self.sections()?;
        self.solve_sections(&ranges);
        self.couple();
        self.combine(&ranges);
        Ok(())
    }

    /// Step 2: in each section, the tridiagonal systems for v*, u+ and u- (Thomas
    /// algorithm; the sections are independent: their first compartment has no axial
    /// conductance towards the one before it).
    fn solve_sections(&mut self, ranges: &[(usize, usize)]) {
        let mut order: Vec<(usize, usize)> = ranges.to_vec();
        order.sort_unstable();
        let mut rows = Vec::with_capacity(order.len());
        let (mut vs, mut up, mut um, mut c) = (
            &mut self.v_star[..],
            &mut self.u_plus[..],
            &mut self.u_minus[..],
            &mut self.c[..],
        );
        let mut at = 0;
        for &(start, end) in &order {
            let skip = start - at;
            let len = end - start;
            let (a, rest) = std::mem::take(&mut vs)[skip..].split_at_mut(len);
            vs = rest;
            let (b, rest) = std::mem::take(&mut up)[skip..].split_at_mut(len);
            up = rest;
            let (d, rest) = std::mem::take(&mut um)[skip..].split_at_mut(len);
            um = rest;
            let (e, rest) = std::mem::take(&mut c)[skip..].split_at_mut(len);
            c = rest;
            rows.push(SectionRows {
                start,
                v_star: a,
                u_plus: b,
                u_minus: d,
                c: e,
            });
            at = end;
        }
        let shared = Coefficients {
            dt: self.dt,
            v: &*self.v,
            cm: self.cm,
            gtot: self.gtot,
            i0: self.i0,
            ab_star0: self.ab_star0,
            ab_star1: self.ab_star1,
            ab_star2: self.ab_star2,
            b_plus: self.b_plus,
            b_minus: self.b_minus,
        };
        if self.v.len() >= PARALLEL_MIN && rows.len() > 1 {
            rows.par_iter_mut().for_each(|r| shared.thomas(r));
        } else {
            rows.iter_mut().for_each(|r| shared.thomas(r));
        }
    }

    /// Step 3: the coupling system over the section tree (one unknown per branch point:
    /// row 0 the root, row i + 1 the end of section i), eliminated from the leaves up and
    /// substituted back down.
    fn couple(&mut self) {
        let s = self.starts.len();
        let row = self.children.len() / (s + 1);
        for i in 0..s {
            let parent = self.parent[i] as usize;
            let first = self.starts[i] as usize;
            let last = self.ends[i] as usize - 1;
            let (invr0, invrn) = (self.invr0[i], self.invrn[i]);
            if i == 0 {
                // The first section's start is a sealed end.
                self.p_diag[0] = self.u_minus[first] - T::ONE;
                self.p_children[0] = self.u_plus[first];
                self.b[0] = -self.v_star[first];
            } else {
                self.p_diag[parent] = self.p_diag[parent] + (T::ONE - self.u_minus[first]) * invr0;
                self.p_children[parent * row + self.idxchild[i] as usize] =
                    -self.u_plus[first] * invr0;
                self.b[parent] = self.b[parent] + self.v_star[first] * invr0;
            }
            self.p_diag[i + 1] = (T::ONE - self.u_plus[last]) * invrn;
            self.p_parent[i] = -self.u_minus[last] * invrn;
            self.b[i + 1] = self.v_star[last] * invrn;
        }
        for i in (0..=s).rev() {
            for k in 0..self.children_num[i] as usize {
                let j = self.children[i * row + k] as usize;
                let subfac = self.p_children[i * row + k] / self.p_diag[j];
                self.p_diag[i] = self.p_diag[i] - subfac * self.p_parent[j - 1];
                self.b[i] = self.b[i] - subfac * self.b[j];
            }
        }
        self.b[0] = self.b[0] / self.p_diag[0];
        for i in 1..=s {
            let j = self.parent[i - 1] as usize;
            self.b[i] = self.b[i] - self.p_parent[i - 1] * self.b[j];
            self.b[i] = self.b[i] / self.p_diag[i];
        }
    }

    /// Step 4: v in each section from its three solutions and the voltages at its two
    /// ends, then the capacitive current.
    fn combine(&mut self, ranges: &[(usize, usize)]) {
        let (vs, up, um, b) = (&*self.v_star, &*self.u_plus, &*self.u_minus, &*self.b);
        let v = &mut *self.v;
        for (i, &(start, end)) in ranges.iter().enumerate() {
            let (b_parent, b_here) = (b[self.parent[i] as usize], b[i + 1]);
            for j in start..end {
                v[j] = vs[j] + b_parent * um[j] + b_here * up[j];
            }
        }
        let (cm, vp, dt) = (self.cm, self.v_previous, self.dt);
        let current = |(k, ic): (usize, &mut T)| *ic = cm[k] * (v[k] - vp[k]) / dt;
        if v.len() >= PARALLEL_MIN {
            self.ic.par_iter_mut().enumerate().for_each(current);
        } else {
            self.ic.iter_mut().enumerate().for_each(current);
        }
    }
}

/// What every section's solve reads.
struct Coefficients<'a, T> {
    dt: T,
    v: &'a [T],
    cm: &'a [T],
    gtot: &'a [T],
    i0: &'a [T],
    ab_star0: &'a [T],
    ab_star1: &'a [T],
    ab_star2: &'a [T],
    b_plus: &'a [T],
    b_minus: &'a [T],
}

impl<T: Real> Coefficients<'_, T> {
    fn thomas(&self, r: &mut SectionRows<'_, T>) {
        let len = r.v_star.len();
        let (start, end) = (r.start, r.start + len);
        // The section's slices (bounds checked once), and the values of the compartment
        // before carried in registers: the elimination is one dependent chain.
        let (cm, v, i0, gtot) = (
            &self.cm[start..end],
            &self.v[start..end],
            &self.i0[start..end],
            &self.gtot[start..end],
        );
        let (bp, bm, ab1) = (
            &self.b_plus[start..end],
            &self.b_minus[start..end],
            &self.ab_star1[start..end],
        );
        // The superdiagonal of row k is ab_star0[k + 1] (zero past the last compartment),
        // the subdiagonal ab_star2[k - 1].
        let upper = &self.ab_star0[start + 1..(end + 1).min(self.ab_star0.len())];
        let lower = &self.ab_star2[start..end];
        let (mut c_prev, mut vs_prev, mut up_prev, mut um_prev) =
            (T::ZERO, T::ZERO, T::ZERO, T::ZERO);
        for k in 0..len {
            let mut vs = -(cm[k] / self.dt * v[k]) - i0[k];
            let mut up = bp[k];
            let mut um = bm[k];
            let bi = ab1[k] - gtot[k];
            let mut c = upper.get(k).copied().unwrap_or(T::ZERO);
            if k > 0 {
                let ai = lower[k - 1];
                let m = T::ONE / (bi - ai * c_prev);
                c = c * m;
                vs = (vs - ai * vs_prev) * m;
                up = (up - ai * up_prev) * m;
                um = (um - ai * um_prev) * m;
            } else {
                c = c / bi;
                vs = vs / bi;
                up = up / bi;
                um = um / bi;
            }
            r.c[k] = c;
            r.v_star[k] = vs;
            r.u_plus[k] = up;
            r.u_minus[k] = um;
            (c_prev, vs_prev, up_prev, um_prev) = (c, vs, up, um);
        }
        for k in (0..len.saturating_sub(1)).rev() {
            let c = r.c[k];
            vs_prev = r.v_star[k] - c * vs_prev;
            up_prev = r.u_plus[k] - c * up_prev;
            um_prev = r.u_minus[k] - c * um_prev;
            r.v_star[k] = vs_prev;
            r.u_plus[k] = up_prev;
            r.u_minus[k] = um_prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One section of `n` compartments hanging from the root (Brian2's layout for a
    /// single cylinder), with the morphology's index arrays given.
    fn step_with(parent: i32, children: [i32; 2], ends: i32) -> Result<Vec<f64>, String> {
        let n = 4;
        let mut v = vec![-0.07; n];
        let mut ic = vec![0.0; n];
        let (mut vs, mut up, mut um, mut c) =
            (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let (mut p_parent, mut p_diag, mut b) = (vec![0.0; 1], vec![0.0; 2], vec![0.0; 2]);
        let mut p_children = vec![0.0; 2];
        let ones = vec![1.0; n];
        let off = vec![0.5; n];
        let diag = vec![-3.0; n];
        let zeros = vec![0.0; n];
        let vp = v.clone();
        let mut cable = Cable {
            dt: 1e-4,
            v: &mut v,
            cm: &ones,
            ic: &mut ic,
            v_previous: &vp,
            gtot: &zeros,
            i0: &zeros,
            ab_star0: &off,
            ab_star1: &diag,
            ab_star2: &off,
            b_plus: &zeros,
            b_minus: &zeros,
            v_star: &mut vs,
            u_plus: &mut up,
            u_minus: &mut um,
            c: &mut c,
            starts: &[0],
            ends: &[ends],
            parent: &[parent],
            idxchild: &[0],
            invr0: &[1.0],
            invrn: &[1.0],
            p_parent: &mut p_parent,
            p_diag: &mut p_diag,
            b: &mut b,
            children_num: &[1, 0],
            children: &children,
            p_children: &mut p_children,
        };
        cable.step()?;
        Ok(v)
    }

    #[test]
    fn bad_morphology_indices_are_errors_not_panics() {
        let v = step_with(0, [1, 0], 4).expect("a valid single section");
        assert!(v.iter().all(|x| x.is_finite()));
        assert!(step_with(5, [1, 0], 4).unwrap_err().contains("parent"));
        assert!(step_with(0, [7, 0], 4).unwrap_err().contains("child"));
        assert!(step_with(0, [1, 0], 9).unwrap_err().contains("spans"));
    }
}
