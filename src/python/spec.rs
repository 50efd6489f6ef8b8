//! The kernel spec as Python objects: what `brian2wgpu.codeobject.kernel_spec` builds for
//! one Brian2 code object (typed and immutable; dtypes and constants checked when built).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::ir::{FunctionSpec, KernelSpec, Type, Value, VariableSpec};

pub(super) fn dtype(name: &str) -> PyResult<Type> {
    Type::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unsupported dtype '{name}' (bool, int32, int64, float32 or float64)"
        ))
    })
}

fn value(name: &str, ty: Type, v: &Bound<'_, PyAny>) -> PyResult<Value> {
    let wrong = |e: PyErr| {
        PyValueError::new_err(format!("the value of constant '{name}' is not a {ty}: {e}"))
    };
    Ok(match ty {
        Type::Bool => Value::Bool(v.extract().map_err(wrong)?),
        Type::I32 => Value::I32(v.extract().map_err(wrong)?),
        Type::I64 => Value::I64(v.extract().map_err(wrong)?),
        Type::F32 => Value::F32(v.extract().map_err(wrong)?),
        Type::F64 => Value::F64(v.extract().map_err(wrong)?),
    })
}

/// One variable of a kernel: an array (indexed by `index`) or a constant (`value`).
#[pyclass(module = "brian2wgpu._engine", name = "Variable", frozen)]
#[derive(Clone)]
pub(super) struct PyVariable(pub(super) VariableSpec);

#[pymethods]
impl PyVariable {
    /// `index`: "_idx" (the element), "0" (a scalar) or the name of an index variable;
    /// `value`: a Brian2 constant's value; `conditional_write`: the boolean variable
    /// that guards writes (Brian2's `conditional_write`, e.g. `not_refractory`).
    #[new]
    #[pyo3(signature = (name, dtype, index="_idx", value=None, conditional_write=None))]
    fn new(
        name: String,
        dtype: &str,
        index: &str,
        value: Option<&Bound<'_, PyAny>>,
        conditional_write: Option<String>,
    ) -> PyResult<Self> {
        let ty = self::dtype(dtype)?;
        let constant = match value {
            Some(v) if !v.is_none() => Some(self::value(&name, ty, v)?),
            _ => None,
        };
        Ok(Self(VariableSpec {
            name,
            ty,
            index: index.to_string(),
            constant,
            conditional_write,
        }))
    }

    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }

    #[getter]
    fn dtype(&self) -> String {
        self.0.ty.to_string()
    }

    #[getter]
    fn index(&self) -> &str {
        &self.0.index
    }

    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match self.0.constant {
            None => None,
            Some(Value::Bool(b)) => Some(b.into_pyobject(py)?.to_owned().into_any()),
            Some(Value::I32(i)) => Some(i.into_pyobject(py)?.into_any()),
            Some(Value::I64(i)) => Some(i.into_pyobject(py)?.into_any()),
            Some(Value::F32(f)) => Some(f.into_pyobject(py)?.into_any()),
            Some(Value::F64(f)) => Some(f.into_pyobject(py)?.into_any()),
        })
    }

    #[getter]
    fn conditional_write(&self) -> Option<&str> {
        self.0.conditional_write.as_deref()
    }

    /// This variable with its writes guarded by `flag` (or unguarded with None).
    #[pyo3(signature = (flag=None))]
    fn guarded_by(&self, flag: Option<String>) -> Self {
        let mut v = self.0.clone();
        v.conditional_write = flag;
        Self(v)
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}

/// A function the kernel calls beyond the builtins (binomial draws, TimedArrays, user
/// functions with a WGSL implementation).
#[pyclass(module = "brian2wgpu._engine", name = "Function", frozen)]
#[derive(Clone)]
pub(super) struct PyFunction(pub(super) FunctionSpec);

#[pymethods]
impl PyFunction {
    /// A Brian2 `BinomialFunction` (`exact`: drawn exactly, `approximate=False`).
    #[staticmethod]
    #[pyo3(signature = (name, n, p, exact=false))]
    fn binomial(name: String, n: i32, p: f64, exact: bool) -> PyResult<Self> {
        if n < 0 || !(0.0..=1.0).contains(&p) {
            return Err(PyValueError::new_err(format!(
                "binomial '{name}': n = {n} and p = {p} (need n >= 0 and 0 <= p <= 1)"
            )));
        }
        Ok(Self(FunctionSpec::Binomial { name, n, p, exact }))
    }

    /// A Brian2 `TimedArray` whose `rows` x `cols` table (row-major) is the kernel
    /// variable `values`, sampled every `dt` seconds (`k`: Brian2's `_find_K`).
    #[staticmethod]
    fn timed_array(
        name: String,
        values: String,
        dt: f64,
        k: i64,
        rows: i32,
        cols: i32,
    ) -> PyResult<Self> {
        if rows < 1 || cols < 1 || k < 1 || dt.is_nan() || dt <= 0.0 {
            return Err(PyValueError::new_err(format!(
                "TimedArray '{name}': {rows} x {cols} values every {dt} s (K = {k}): need a \
                 non-empty table, dt > 0 and K >= 1"
            )));
        }
        Ok(Self(FunctionSpec::TimedArray {
            name,
            values,
            dt,
            k,
            rows,
            cols,
        }))
    }

    /// A user `Function` of argument dtypes `args` returning `ret`, with its WGSL
    /// implementation (None: the kernel cannot run on the GPU).
    #[staticmethod]
    #[pyo3(signature = (name, args, ret, wgsl=None))]
    fn user(name: String, args: Vec<String>, ret: &str, wgsl: Option<String>) -> PyResult<Self> {
        Ok(Self(FunctionSpec::User {
            name,
            args: args.iter().map(|a| dtype(a)).collect::<PyResult<_>>()?,
            ret: dtype(ret)?,
            wgsl,
        }))
    }

    #[getter]
    fn kind(&self) -> &'static str {
        match self.0 {
            FunctionSpec::Binomial { .. } => "binomial",
            FunctionSpec::TimedArray { .. } => "timed_array",
            FunctionSpec::User { .. } => "user",
        }
    }

    #[getter]
    fn name(&self) -> &str {
        match &self.0 {
            FunctionSpec::Binomial { name, .. }
            | FunctionSpec::TimedArray { name, .. }
            | FunctionSpec::User { name, .. } => name,
        }
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}

/// One Brian2 code object as the engine compiles it: its variables, Brian2's scalar
/// (once per step) and vector (per element) statements, and the functions they call.
#[pyclass(module = "brian2wgpu._engine", name = "KernelSpec", frozen)]
pub(super) struct PyKernelSpec(pub(super) KernelSpec);

#[pymethods]
impl PyKernelSpec {
    #[new]
    #[pyo3(signature = (name, variables, vector_code="", scalar_code="", template="",
                        float="float64", functions=Vec::new()))]
    fn new(
        name: String,
        variables: Vec<PyRef<'_, PyVariable>>,
        vector_code: &str,
        scalar_code: &str,
        template: &str,
        float: &str,
        functions: Vec<PyRef<'_, PyFunction>>,
    ) -> PyResult<Self> {
        let float = dtype(float)?;
        if !float.is_float() {
            return Err(PyValueError::new_err(format!(
                "kernel '{name}': the float dtype must be float32 or float64, not {float}"
            )));
        }
        Ok(Self(KernelSpec {
            name,
            template: template.to_string(),
            float,
            variables: variables.iter().map(|v| v.0.clone()).collect(),
            scalar_code: scalar_code.to_string(),
            vector_code: vector_code.to_string(),
            functions: functions.iter().map(|f| f.0.clone()).collect(),
        }))
    }

    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }

    #[getter]
    fn template(&self) -> &str {
        &self.0.template
    }

    #[getter]
    fn float(&self) -> String {
        self.0.float.to_string()
    }

    /// The variables (copies: a spec does not change once built).
    #[getter]
    fn variables(&self) -> Vec<PyVariable> {
        self.0.variables.iter().cloned().map(PyVariable).collect()
    }

    #[getter]
    fn scalar_code(&self) -> &str {
        &self.0.scalar_code
    }

    #[getter]
    fn vector_code(&self) -> &str {
        &self.0.vector_code
    }

    #[getter]
    fn functions(&self) -> Vec<PyFunction> {
        self.0.functions.iter().cloned().map(PyFunction).collect()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}
