//! `connect()` in the engine: Brian2's `synapses_create_generator` template
//! ([`crate::runtime::connect`]) with the model's arrays borrowed from numpy.

use std::collections::HashMap;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadwriteArray1};
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::CompiledKernel;
use crate::arrays::RawArray;
use crate::ir::{self, Type};
use crate::runtime::connect::{
    self, Binding, ConnectError, Created, Generator, Iteration, Role, Stage,
};

fn connect_err(e: ConnectError) -> PyErr {
    match e {
        ConnectError::Index(m) => PyIndexError::new_err(m),
        ConnectError::Value(m) => PyValueError::new_err(m),
        e => PyRuntimeError::new_err(format!("wgpu device: connect: {e}")),
    }
}

/// A model array borrowed read-only (one array may stand for several variables, e.g.
/// `x_pre` and `x_post` when a group connects to itself). Held, never read: it keeps
/// numpy's borrow flag while the engine reads the memory.
#[allow(dead_code)]
enum ReadOnly<'py> {
    F64(PyReadonlyArray1<'py, f64>),
    F32(PyReadonlyArray1<'py, f32>),
    I32(PyReadonlyArray1<'py, i32>),
    I64(PyReadonlyArray1<'py, i64>),
    Bool(PyReadonlyArray1<'py, bool>),
}

/// Borrow `array` as the kernel variable `var` expects it; the raw view is only read.
fn borrow<'py>(var: &ir::Variable, a: &Bound<'py, PyAny>) -> PyResult<(ReadOnly<'py>, RawArray)> {
    let wrong = || {
        PyValueError::new_err(format!(
            "array for '{}' must be a contiguous 1-D {} numpy array",
            var.name, var.ty
        ))
    };
    fn raw<T>(s: &[T], ty: Type) -> RawArray {
        RawArray {
            ptr: s.as_ptr() as *mut u8,
            len: s.len(),
            ty,
        }
    }
    macro_rules! view {
        ($t:ty, $variant:ident) => {{
            let r = a
                .cast::<PyArray1<$t>>()
                .map_err(|_| wrong())?
                .try_readonly()?;
            let view = raw(r.as_slice().map_err(|_| wrong())?, var.ty);
            (ReadOnly::$variant(r), view)
        }};
    }
    Ok(match var.ty {
        Type::F64 => view!(f64, F64),
        Type::F32 => view!(f32, F32),
        Type::I32 => view!(i32, I32),
        Type::I64 => view!(i64, I64),
        Type::Bool => view!(bool, Bool),
    })
}

/// Create synapses with the engine. `stages` are the compiled `rows`, `element` and
/// `candidate` kernels (`element` and `candidate` may be None); `roles` maps the template's
/// own variables to their [`Role`] names; `arrays` holds the model arrays by name.
/// Returns a dict: `outer`, `result` (indices with offsets, in Brian2's order) and
/// `outer_counts`, `result_counts` (synapses per index, without offsets).
fn get<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<T> {
    d.get_item(key)?
        .ok_or_else(|| PyValueError::new_err(format!("connect plan lacks '{key}'")))?
        .extract::<T>()
        .map_err(Into::into)
}

fn opt<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<T>> {
    match d.get_item(key)? {
        Some(v) if !v.is_none() => Ok(Some(v.extract::<T>().map_err(Into::into)?)),
        _ => Ok(None),
    }
}

#[pyfunction]
pub(super) fn connect_generator<'py>(
    py: Python<'py>,
    plan: &Bound<'py, PyDict>,
    rows: PyRef<'py, CompiledKernel>,
    element: Option<PyRef<'py, CompiledKernel>>,
    candidate: Option<PyRef<'py, CompiledKernel>>,
    roles: HashMap<String, String>,
    arrays: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyDict>> {
    let roles: HashMap<String, Role> = roles
        .into_iter()
        .map(|(name, r)| {
            Role::from_name(&r)
                .map(|role| (name, role))
                .ok_or_else(|| PyValueError::new_err(format!("unknown connect role '{r}'")))
        })
        .collect::<PyResult<_>>()?;
    // Each model array is borrowed once, whichever stages read it.
    let mut holders: HashMap<String, ReadOnly<'py>> = HashMap::new();
    let mut raws: HashMap<String, RawArray> = HashMap::new();
    let kernels: Vec<&CompiledKernel> = [Some(&*rows), element.as_deref(), candidate.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    for k in &kernels {
        if k.program.is_none() {
            return Err(pyo3::exceptions::PyNotImplementedError::new_err(
                k.cpu_error.clone().unwrap_or_default(),
            ));
        }
        for v in &k.kernel.vars {
            if roles.contains_key(&v.name)
                || matches!(v.kind, ir::VarKind::Constant(_))
                || !(v.read || v.written)
                || holders.contains_key(&v.name)
            {
                continue;
            }
            let a = arrays.get_item(&v.name)?.ok_or_else(|| {
                PyValueError::new_err(format!("connect: no array for variable '{}'", v.name))
            })?;
            let (h, raw) = borrow(v, &a)?;
            raws.insert(v.name.clone(), raw);
            holders.insert(v.name.clone(), h);
        }
    }
    let stage = |k| stage(k, &roles, &raws);
    let iteration = match get::<String>(plan, "iteration")?.as_str() {
        "range" => Iteration::Range,
        "sample_p" => Iteration::SampleP,
        "sample_size" => Iteration::SampleSize,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown iteration '{other}'"
            )));
        }
    };
    let result_name: String = get(plan, "result_name")?;
    let generator = Generator {
        rows: stage(&rows)?,
        element: element.as_deref().map(stage).transpose()?,
        candidate: candidate.as_deref().map(stage).transpose()?,
        iteration,
        outer_size: get(plan, "outer_size")?,
        result_size: get(plan, "result_size")?,
        outer_offset: get(plan, "outer_offset")?,
        result_offset: get(plan, "result_offset")?,
        row_condition: get(plan, "row_condition")?,
        candidate_condition: get(plan, "candidate_condition")?,
        candidate_n: get(plan, "candidate_n")?,
        n: opt(plan, "n")?.unwrap_or(1),
        result_index_used: get(plan, "result_index_used")?,
        skip_if_invalid: get(plan, "skip_if_invalid")?,
        result_name: &result_name,
        seed: get(plan, "seed")?,
    };
    let created = py
        .detach(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| generator.run()))
                .map_err(|p| {
                    ConnectError::Value(format!(
                        "internal error in connect: {}. This is a bug in brian2wgpu: please \
                     report it with the model",
                        crate::runtime::panic_message(p.as_ref())
                    ))
                })
                .and_then(|r| r)
        })
        .map_err(connect_err)?;
    drop(holders);
    let out = PyDict::new(py);
    out.set_item("count", created.len())?;
    out.set_item(
        "outer_counts",
        PyArray1::from_slice(py, &created.outer_counts),
    )?;
    out.set_item(
        "result_counts",
        PyArray1::from_slice(py, &created.result_counts),
    )?;
    out.set_item("pairs", CreatedPairs { created })?;
    Ok(out)
}

/// The synapses `connect_generator` made, not yet copied anywhere: `write` puts them into
/// Brian2's synapse arrays once they have been resized.
#[pyclass(module = "brian2wgpu._engine", frozen)]
pub(super) struct CreatedPairs {
    created: Created,
}

#[pymethods]
impl CreatedPairs {
    fn __len__(&self) -> usize {
        self.created.len()
    }

    /// Write the (outer, result) index pairs, with offsets and in Brian2's order, into
    /// `outer` and `result` (int32 arrays of `len(self)` elements).
    fn write(
        &self,
        py: Python<'_>,
        mut outer: PyReadwriteArray1<'_, i32>,
        mut result: PyReadwriteArray1<'_, i32>,
    ) -> PyResult<()> {
        let n = self.created.len();
        let (o, r) = (
            outer.as_slice_mut().map_err(contiguous)?,
            result.as_slice_mut().map_err(contiguous)?,
        );
        if o.len() != n || r.len() != n {
            return Err(PyValueError::new_err(format!(
                "write: both arrays must hold {n} elements, not {} and {}",
                o.len(),
                r.len()
            )));
        }
        py.detach(|| self.created.write_into(o, r));
        Ok(())
    }
}

fn contiguous(_: numpy::AsSliceError) -> PyErr {
    PyValueError::new_err("the array must be contiguous")
}

/// `out[:] = indices + offset` for int32 arrays, and how often each value in `0..size`
/// occurs in `indices`, in one parallel pass (`out` is usually fresh memory, whose first
/// touch costs more than the copy); None when a value lies outside that range (`out` is
/// then partly written).
#[pyfunction]
pub(super) fn copy_counting<'py>(
    py: Python<'py>,
    indices: PyReadonlyArray1<'py, i32>,
    mut out: PyReadwriteArray1<'py, i32>,
    offset: i32,
    size: usize,
) -> PyResult<Option<Bound<'py, PyArray1<i32>>>> {
    let src = indices.as_slice().map_err(contiguous)?;
    let dst = out.as_slice_mut().map_err(contiguous)?;
    if dst.len() != src.len() {
        return Err(PyValueError::new_err(format!(
            "copy_counting: out holds {} elements, indices {}",
            dst.len(),
            src.len()
        )));
    }
    let counted = py.detach(|| connect::copy_counting(src, dst, offset, size));
    Ok(counted.ok().map(|c| PyArray1::from_vec(py, c)))
}

/// Bind kernel `k`'s variables: template values by role, model arrays by name.
fn stage<'k>(
    k: &'k CompiledKernel,
    roles: &HashMap<String, Role>,
    raws: &HashMap<String, RawArray>,
) -> PyResult<Stage<'k>> {
    let mut bindings = Vec::new();
    for v in &k.kernel.vars {
        bindings.push(if let Some(&role) = roles.get(&v.name) {
            if !matches!(role, Role::IterP | Role::Cond | Role::N) && v.ty != Type::I32 {
                return Err(PyValueError::new_err(format!(
                    "connect: '{}' must be int32, not {}",
                    v.name, v.ty
                )));
            }
            Binding::Aux(role)
        } else if let Some(&raw) = raws.get(&v.name) {
            Binding::Model(raw)
        } else {
            Binding::None
        });
    }
    Ok(Stage {
        program: k.program.as_ref().expect("checked by connect_generator"),
        kernel: &k.kernel,
        bindings,
        types: k.kernel.vars.iter().map(|v| v.ty).collect(),
    })
}
