//! Brian2's GSL state updaters without the GSL library: the adaptive Runge-Kutta driver of
//! GSL's `odeiv2` (its steppers' coefficients, its scaled error control, `max_steps`, fixed
//! steps), per element and time step, around a kernel that evaluates the derivatives.
//!
//! The interpreter integrates every element of a group at once: each round, every element
//! still integrating makes one attempt (all stages, one derivative kernel run per stage
//! over those elements), then each accepts or rejects its attempt on its own, so elements
//! take as many steps as their own error asks for. The GPU runs the same driver in one
//! invocation per element (`runtime/gpu/gsl.rs`, `wgsl::writer::gsl_driver`). The steppers'
//! coefficients and the step control are `crate::odeiv2`'s, shared by both.

use super::{ArrayId, EngineError};
use crate::arrays::RawArray;
use crate::ir::Type;
pub use crate::odeiv2::{Adjust, Failure, Stepper, Tableau, adjust};

/// What the driver of one group does each step (Brian2's `method_options`).
#[derive(Debug, Clone)]
pub struct GslSpec {
    pub stepper: Stepper,
    /// `adaptable_timestep`: GSL's `driver_apply` from t to t + dt; otherwise
    /// `driver_apply_fixed_step` (one step of dt, an error when it is too large).
    pub adaptive: bool,
    /// `max_steps` (0: no limit).
    pub max_steps: u64,
    /// The absolute error allowed per variable.
    pub scale: Vec<f64>,
    /// The integrated variables' arrays (float64).
    pub state: Vec<ArrayId>,
    /// Their names in the derivative kernel (where they read a stage's values).
    pub names: Vec<String>,
    /// Scratch bound to those variables in the derivative kernel (the interpreter writes
    /// each stage's values there).
    pub stage: Vec<ArrayId>,
    /// Scratch the derivative kernel writes the derivatives to (`_gsl_k_<name>`).
    pub deriv: Vec<ArrayId>,
    /// Scratch holding each element's stage time (`_gsl_t` in the kernel).
    pub time: ArrayId,
    /// The clock's `t`.
    pub t: ArrayId,
    /// `use_last_timestep`: each element starts from the step size it ended with (kept in
    /// Brian2's `_last_timestep`); otherwise from dt.
    pub last_timestep: Option<ArrayId>,
    /// `save_failed_steps`, `save_step_count`: Brian2's `_failed_steps`, `_step_count`.
    pub failed_steps: Option<ArrayId>,
    pub step_count: Option<ArrayId>,
    /// The group, for error messages.
    pub owner: String,
}

/// The error a failed step raises in Python (a `RuntimeError`).
pub fn failure_error(why: Failure, spec: &GslSpec, element: usize, t: f64) -> EngineError {
    let why = match why {
        Failure::Tolerance => {
            "the error control asked for a step too small to advance the time; use a \
             larger absolute_error"
                .to_string()
        }
        Failure::MaxSteps => format!(
            "the desired error cannot be achieved within max_steps = {} steps per time \
             step; use a larger absolute_error or a larger max_steps",
            spec.max_steps
        ),
        Failure::FixedStep => "the error of a step of dt exceeds absolute_error \
             (adaptable_timestep is off); use a smaller dt, a larger absolute_error or \
             adaptable_timestep = True"
            .to_string(),
    };
    EngineError::Integration(format!(
        "GSL integrator ({:?}) failed to integrate the equations of '{}' (element \
         {element}, at t = {t} s): {why}. The group's state is that before the step.",
        spec.stepper, spec.owner
    ))
}

/// One element's driver between rounds.
#[derive(Debug, Clone, Copy)]
pub struct Element {
    /// Time reached.
    pub t: f64,
    /// The driver's step size (GSL's `d->h`): where the next evolve step starts.
    pub h: f64,
    /// The step being attempted (GSL's `h0` inside one evolve step).
    pub try_h: f64,
    /// Steps taken (GSL's `d->n`), failed attempts (`e->failed_steps`).
    pub n: u64,
    pub failed: u64,
    pub done: bool,
}

/// The size of the attempt an element makes now, and whether it is the step that ends at
/// `t1` (GSL shortens the last step to land on it).
pub fn attempt(el: &mut Element, t1: f64, adaptive: bool) -> (f64, bool) {
    if !adaptive {
        return (el.try_h, false);
    }
    let rest = t1 - el.t;
    if el.try_h > rest {
        el.try_h = rest;
        (rest, true)
    } else {
        (el.try_h, false)
    }
}

/// What happens to an element after its attempt of size `h0` with error ratio `rmax`:
/// `Ok(true)`: accepted (its state becomes the attempt's), `Ok(false)`: rejected, retry.
pub fn conclude(
    el: &mut Element,
    spec: &GslSpec,
    rmax: f64,
    h0: f64,
    last: bool,
    t1: f64,
    hmax: f64,
) -> Result<bool, Failure> {
    let order = spec.stepper.tableau().order;
    if !spec.adaptive {
        // driver_apply_fixed_step: one step, refused if the control would shrink it.
        if let Adjust::Decrease(_) = adjust(rmax, h0, order) {
            el.failed += 1;
            return Err(Failure::FixedStep);
        }
        el.t += h0;
        el.n += 1;
        el.done = true;
        return Ok(true);
    }
    let t_new = if last { t1 } else { el.t + h0 };
    match adjust(rmax, h0, order) {
        Adjust::Decrease(h) => {
            // Retry only if the smaller step still moves t (GSL's one-ulp check).
            if h < h0 && t_new + h != t_new {
                el.failed += 1;
                el.try_h = h;
                return Ok(false);
            }
            return Err(Failure::Tolerance);
        }
        Adjust::Keep(h) => {
            if !last {
                el.h = h;
            }
        }
    }
    el.t = t_new;
    // driver_apply: the step limit (checked before counting this step: the call fails
    // at step max_steps + 2), then the largest step (dt), then the count.
    if spec.max_steps > 0 && el.n > spec.max_steps {
        return Err(Failure::MaxSteps);
    }
    if el.h.abs() > hmax {
        el.h = hmax;
    }
    el.n += 1;
    el.try_h = el.h;
    el.done = t1 - el.t <= 0.0;
    Ok(true)
}

/// One step of dt of a GSL state updater on the interpreter: `pre` (the statements that
/// are not derivatives, at t), then every element from t to t + dt.
///
/// # Safety
/// The arrays must be valid for the call; the spec's ids index `arrays`.
pub(super) unsafe fn step_cpu(
    eng: &mut super::Engine,
    op: &super::Op,
    arrays: &[RawArray],
    rng_step: i64,
) -> Result<(), EngineError> {
    let super::Op::Integrate {
        pre,
        kernel,
        n,
        dt,
        spec,
    } = op
    else {
        unreachable!("step_cpu of another operation")
    };
    let (pre, kernel, n, dt) = (*pre, *kernel, *n, *dt);
    use super::cpu::{check, run_kernel, slice};
    if let Some(pre) = pre {
        unsafe { run_kernel(eng, pre, arrays, n, None, 0, rng_step)? };
    }
    if n == 0 {
        return Ok(());
    }
    let f64_array = |id: ArrayId, what: &str| -> Result<&mut [f64], EngineError> {
        check(&arrays[id], Type::F64, what)?;
        let a: &mut [f64] = unsafe { slice(&arrays[id]) };
        if a.len() < n {
            return Err(EngineError::Invalid(format!(
                "{what} has {} elements, not {n}",
                a.len()
            )));
        }
        Ok(a)
    };
    let tab = spec.stepper.tableau();
    let (dim, stages) = (spec.state.len(), tab.stages());
    check(&arrays[spec.t], Type::F64, "the clock's t")?;
    let t0 = unsafe { slice::<f64>(&arrays[spec.t]) }
        .first()
        .copied()
        .ok_or_else(|| EngineError::Invalid("the clock's t is empty".into()))?;
    let t1 = t0 + dt;
    let hmax = dt;
    // Per variable: the state (element-major copies), and per stage the derivatives.
    let mut y: Vec<Vec<f64>> = Vec::with_capacity(dim);
    for (d, &id) in spec.state.iter().enumerate() {
        y.push(f64_array(id, &format!("GSL variable '{}'", spec.names[d]))?[..n].to_vec());
    }
    let mut k = vec![vec![vec![0.0; n]; dim]; stages];
    let h_start: Vec<f64> = match spec.last_timestep {
        Some(id) => f64_array(id, "_last_timestep")?[..n].to_vec(),
        None => vec![dt; n],
    };
    let mut els: Vec<Element> = h_start
        .iter()
        .map(|&h| Element {
            t: t0,
            h,
            try_h: if spec.adaptive { h } else { dt },
            n: 0,
            failed: 0,
            done: false,
        })
        .collect();
    let mut active: Vec<i32> = (0..n as i32).collect();
    let mut h0 = vec![0.0; n];
    let mut last = vec![false; n];
    let mut failure: Option<(usize, Failure)> = None;
    while !active.is_empty() {
        for &e in &active {
            let e = e as usize;
            (h0[e], last[e]) = attempt(&mut els[e], t1, spec.adaptive);
        }
        for s in 0..stages {
            {
                let ts = f64_array(spec.time, "GSL stage times")?;
                for &e in &active {
                    let e = e as usize;
                    ts[e] = els[e].t + tab.c[s] * h0[e];
                }
            }
            for d in 0..dim {
                let ys = f64_array(spec.stage[d], "GSL stage values")?;
                for &e in &active {
                    let e = e as usize;
                    let mut acc = 0.0;
                    for (j, a) in tab.a[s].iter().enumerate() {
                        acc += a * k[j][d][e];
                    }
                    ys[e] = y[d][e] + h0[e] * acc;
                }
            }
            unsafe {
                run_kernel(
                    eng,
                    kernel,
                    arrays,
                    active.len(),
                    Some(&active),
                    0,
                    rng_step,
                )?
            };
            for (&id, ks) in spec.deriv.iter().zip(k[s].iter_mut()) {
                let out = f64_array(id, "GSL derivatives")?;
                for &e in &active {
                    ks[e as usize] = out[e as usize];
                }
            }
        }
        let mut still = Vec::with_capacity(active.len());
        let mut next = vec![0.0f64; dim];
        for &e in &active {
            let e = e as usize;
            let mut rmax = f64::MIN_POSITIVE;
            for d in 0..dim {
                let (mut sol, mut err) = (0.0, 0.0);
                for ((ks, b), ek) in k.iter().zip(&tab.b).zip(&tab.e) {
                    sol += b * ks[d][e];
                    err += ek * ks[d][e];
                }
                next[d] = y[d][e] + h0[e] * sol;
                rmax = rmax.max((h0[e] * err).abs() / spec.scale[d]);
            }
            match conclude(&mut els[e], spec, rmax, h0[e], last[e], t1, hmax) {
                Ok(accepted) => {
                    if accepted {
                        for d in 0..dim {
                            y[d][e] = next[d];
                        }
                    }
                    if !els[e].done {
                        still.push(e as i32);
                    }
                }
                Err(why) => {
                    if failure.is_none_or(|(f, _)| e < f) {
                        failure = Some((e, why));
                    }
                }
            }
        }
        active = still;
    }
    if let Some((e, why)) = failure {
        return Err(failure_error(why, spec, e, t0));
    }
    for (d, &id) in spec.state.iter().enumerate() {
        f64_array(id, "GSL variable")?[..n].copy_from_slice(&y[d]);
    }
    if let Some(id) = spec.last_timestep {
        for (dst, el) in f64_array(id, "_last_timestep")?.iter_mut().zip(&els) {
            *dst = el.h;
        }
    }
    for (id, what) in [(spec.failed_steps, 0), (spec.step_count, 1)] {
        let Some(id) = id else { continue };
        check(&arrays[id], Type::I32, "_failed_steps/_step_count")?;
        let a: &mut [i32] = unsafe { slice(&arrays[id]) };
        for (dst, el) in a.iter_mut().zip(&els) {
            let v = if what == 0 { el.failed } else { el.n };
            *dst = v.min(i32::MAX as u64) as i32;
        }
    }
    Ok(())
}
