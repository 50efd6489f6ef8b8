//! The schedule as Python objects: one `Op` per scheduled Brian2 code object, built by a
//! constructor named after its template family (typed arguments, no dicts).

use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::runtime::{self, ArrayId, Op, RecordId};

/// One scheduled operation (see `runtime::Op`); immutable once built.
#[pyclass(module = "brian2wgpu._engine", name = "Op", frozen)]
pub(super) struct PyOp(pub(super) Op);

fn cable_arrays(arrays: &HashMap<String, ArrayId>) -> PyResult<runtime::CableArrays> {
    let id = |name: &str| -> PyResult<ArrayId> {
        arrays
            .get(name)
            .copied()
            .ok_or_else(|| PyValueError::new_err(format!("Op.cable: no array for '{name}'")))
    };
    Ok(runtime::CableArrays {
        v: id("v")?,
        cm: id("Cm")?,
        ic: id("Ic")?,
        v_previous: id("_v_previous")?,
        gtot_all: id("_gtot_all")?,
        i0_all: id("_I0_all")?,
        ab_star0: id("_ab_star0")?,
        ab_star1: id("_ab_star1")?,
        ab_star2: id("_ab_star2")?,
        b_plus: id("_b_plus")?,
        b_minus: id("_b_minus")?,
        v_star: id("_v_star")?,
        u_plus: id("_u_plus")?,
        u_minus: id("_u_minus")?,
        c: id("_c")?,
        starts: id("_starts")?,
        ends: id("_ends")?,
        morph_parent_i: id("_morph_parent_i")?,
        morph_idxchild: id("_morph_idxchild")?,
        invr0: id("_invr0")?,
        invrn: id("_invrn")?,
        p_parent: id("_P_parent")?,
        p_diag: id("_P_diag")?,
        b: id("_B")?,
        morph_children_num: id("_morph_children_num")?,
        morph_children: id("_morph_children")?,
        p_children: id("_P_children")?,
    })
}

#[pymethods]
impl PyOp {
    /// `stateupdate` and other per-element templates: `kernel` over `0..n`.
    #[staticmethod]
    fn elementwise(kernel: usize, n: usize) -> Self {
        Self(Op::Elementwise { kernel, n })
    }

    /// `threshold`: `kernel` writes the flags `cond`; the events go to `eventspace`.
    #[staticmethod]
    fn threshold(kernel: usize, n: usize, cond: ArrayId, eventspace: ArrayId) -> Self {
        Self(Op::Threshold {
            kernel,
            n,
            cond,
            eventspace,
        })
    }

    /// `reset` (and `run_on_event`): `kernel` over this step's events.
    #[staticmethod]
    fn reset(kernel: usize, eventspace: ArrayId) -> Self {
        Self(Op::Reset { kernel, eventspace })
    }

    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    fn spikemonitor(
        kernel: usize,
        eventspace: ArrayId,
        source_n: usize,
        start: usize,
        stop: usize,
        count: ArrayId,
        total: ArrayId,
        records: Vec<RecordId>,
    ) -> PyResult<Self> {
        if start > stop || stop > source_n {
            return Err(PyValueError::new_err(format!(
                "Op.spikemonitor: source range {start}..{stop} outside 0..{source_n}"
            )));
        }
        Ok(Self(Op::SpikeMonitor {
            kernel,
            eventspace,
            source_n,
            start,
            stop,
            count,
            total,
            records,
        }))
    }

    #[staticmethod]
    fn statemonitor(
        kernel: usize,
        indices: ArrayId,
        n_indices: usize,
        t: ArrayId,
        t_record: RecordId,
        records: Vec<RecordId>,
        total: ArrayId,
    ) -> Self {
        Self(Op::StateMonitor {
            kernel,
            indices,
            n_indices,
            t,
            t_record,
            records,
            total,
        })
    }

    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    fn ratemonitor(
        eventspace: ArrayId,
        source_n: usize,
        start: usize,
        stop: usize,
        t: ArrayId,
        dt: f64,
        t_record: RecordId,
        rate_record: RecordId,
        total: ArrayId,
    ) -> PyResult<Self> {
        if start > stop || stop > source_n {
            return Err(PyValueError::new_err(format!(
                "Op.ratemonitor: source range {start}..{stop} outside 0..{source_n}"
            )));
        }
        Ok(Self(Op::RateMonitor {
            eventspace,
            source_n,
            start,
            stop,
            t,
            dt,
            t_record,
            rate_record,
            total,
        }))
    }

    /// `synapses_push_spikes`: the events of `eventspace` into spike queue `queue`.
    #[staticmethod]
    fn push_spikes(queue: usize, eventspace: ArrayId) -> Self {
        Self(Op::PushSpikes { queue, eventspace })
    }

    /// `synapses` (a pathway): `kernel` over the synapses `queue` holds for this step.
    #[staticmethod]
    fn synapses(kernel: usize, queue: usize) -> Self {
        Self(Op::Synapses { kernel, queue })
    }

    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    fn summed_variable(
        kernel: usize,
        n: usize,
        values: ArrayId,
        index: ArrayId,
        target: ArrayId,
        start: usize,
        stop: usize,
    ) -> PyResult<Self> {
        if start > stop {
            return Err(PyValueError::new_err(format!(
                "Op.summed_variable: target range {start}..{stop} is empty"
            )));
        }
        Ok(Self(Op::SummedVariable {
            kernel,
            n,
            values,
            index,
            target,
            start,
            stop,
        }))
    }

    #[staticmethod]
    fn spikegenerator(
        eventspace: ArrayId,
        neuron_index: ArrayId,
        timebins: ArrayId,
        lastindex: ArrayId,
        period: i64,
    ) -> Self {
        Self(Op::SpikeGenerator {
            eventspace,
            neuron_index,
            timebins,
            lastindex,
            period,
        })
    }

    /// `spatialstateupdate`: `arrays` maps each of Brian2's cable variables to its array.
    #[staticmethod]
    fn cable(kernel: usize, n: usize, dt: f64, arrays: HashMap<String, ArrayId>) -> PyResult<Self> {
        Ok(Self(Op::Cable {
            kernel,
            n,
            dt,
            arrays: Box::new(cable_arrays(&arrays)?),
        }))
    }

    /// `stateupdate` with a GSL method (see `runtime::gsl::GslSpec` for each argument).
    #[staticmethod]
    #[pyo3(signature = (kernel, n, dt, method, adaptive, max_steps, scale, state, names,
                        stage, deriv, time, t, owner, pre=None, last_timestep=None,
                        failed_steps=None, step_count=None))]
    #[allow(clippy::too_many_arguments)]
    fn integrate(
        kernel: usize,
        n: usize,
        dt: f64,
        method: &str,
        adaptive: bool,
        max_steps: u64,
        scale: Vec<f64>,
        state: Vec<ArrayId>,
        names: Vec<String>,
        stage: Vec<ArrayId>,
        deriv: Vec<ArrayId>,
        time: ArrayId,
        t: ArrayId,
        owner: String,
        pre: Option<usize>,
        last_timestep: Option<ArrayId>,
        failed_steps: Option<ArrayId>,
        step_count: Option<ArrayId>,
    ) -> PyResult<Self> {
        let stepper = runtime::gsl::Stepper::from_name(method)
            .ok_or_else(|| PyValueError::new_err(format!("unknown GSL stepper '{method}'")))?;
        let k = state.len();
        if [scale.len(), names.len(), stage.len(), deriv.len()] != [k; 4] {
            return Err(PyValueError::new_err(format!(
                "Op.integrate of '{owner}': {k} state arrays but {} scales, {} names, {} \
                 stage and {} derivative arrays",
                scale.len(),
                names.len(),
                stage.len(),
                deriv.len()
            )));
        }
        Ok(Self(Op::Integrate {
            pre,
            kernel,
            n,
            dt,
            spec: Box::new(runtime::gsl::GslSpec {
                stepper,
                adaptive,
                max_steps,
                scale,
                state,
                names,
                stage,
                deriv,
                time,
                t,
                last_timestep,
                failed_steps,
                step_count,
                owner,
            }),
        }))
    }

    /// Hand control back to Python: callback `index` of the device's list.
    #[staticmethod]
    fn python(index: usize) -> Self {
        Self(Op::Python { index })
    }

    /// The template family, as the constructor that built it is named.
    #[getter]
    fn kind(&self) -> &'static str {
        match &self.0 {
            Op::Elementwise { .. } => "elementwise",
            Op::Threshold { .. } => "threshold",
            Op::Reset { .. } => "reset",
            Op::SpikeMonitor { .. } => "spikemonitor",
            Op::StateMonitor { .. } => "statemonitor",
            Op::RateMonitor { .. } => "ratemonitor",
            Op::PushSpikes { .. } => "push_spikes",
            Op::Synapses { .. } => "synapses",
            Op::SummedVariable { .. } => "summed_variable",
            Op::SpikeGenerator { .. } => "spikegenerator",
            Op::Cable { .. } => "cable",
            Op::Integrate { .. } => "integrate",
            Op::Python { .. } => "python",
        }
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}
