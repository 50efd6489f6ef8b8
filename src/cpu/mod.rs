//! The CPU backend: an interpreter of the kernel IR over blocks of elements, on rayon's
//! thread pool. No JIT: it starts instantly and runs anywhere.

mod exec;
#[cfg(test)]
mod fold_props;
pub mod math;
mod math_consts;
mod optimise;
#[cfg(test)]
mod optimise_props;
mod program;

pub use exec::BLOCK;

use crate::arrays::{ArrayMut, RawArray, RunArgs};
pub use program::Program;

use thiserror::Error;

use crate::ir::{Expr, Kernel, Local, Stmt, Type, Value};

#[derive(Debug, Error)]
pub enum CpuError {
    #[error("cpu backend: {0}")]
    Unsupported(String),
    #[error("index {index} out of range for '{var}' (length {len})")]
    Index { var: String, index: i64, len: usize },
    #[error("array for '{var}' has {got}, the kernel needs {want}")]
    Array {
        var: String,
        got: String,
        want: String,
    },
}

impl Program {
    /// Compile a kernel for the interpreter.
    pub fn new(kernel: &Kernel) -> Result<Program, CpuError> {
        program::compile(kernel)
    }

    /// Run over `args.n` elements; `arrays[i]` belongs to the kernel's variable `i`.
    pub fn run(&self, arrays: &mut [ArrayMut], args: &RunArgs) -> Result<(), CpuError> {
        let raws = self.check_arrays(arrays, args.n)?;
        let ctx = exec::RunCtx {
            prog: self,
            arrays: &raws,
            list: args.list,
            pos_base: args.pos_base,
            seed: args.seed,
            kernel_id: args.kernel_id,
            step: args.step,
        };
        exec::run(&ctx, args.n)?;
        Ok(())
    }

    /// Run on raw engine arrays (the caller guarantees they live and do not alias).
    ///
    /// # Safety
    /// Every pointer must be valid for its length and type for the duration of the call.
    pub unsafe fn run_raw(&self, arrays: &[RawArray], args: &RunArgs) -> Result<(), CpuError> {
        let prog = match &self.accumulating {
            Some(acc) if !acc.accumulated_array_aliased(arrays) => acc,
            _ => self,
        };
        let ctx = exec::RunCtx {
            prog,
            arrays,
            list: args.list,
            pos_base: args.pos_base,
            seed: args.seed,
            kernel_id: args.kernel_id,
            step: args.step,
        };
        exec::run(&ctx, args.n)?;
        Ok(())
    }

    /// Whether an accumulated array is also reached through another variable (then the
    /// serial order of reads and adds matters: the chunked program runs instead).
    fn accumulated_array_aliased(&self, arrays: &[RawArray]) -> bool {
        self.accumulated.iter().any(|&v| {
            arrays.iter().enumerate().any(|(u, a)| {
                u != v && self.var_is_array[u] && !a.ptr.is_null() && a.ptr == arrays[v].ptr
            })
        })
    }

    fn check_arrays(&self, arrays: &mut [ArrayMut], n: usize) -> Result<Vec<RawArray>, CpuError> {
        if arrays.len() != self.var_types.len() {
            return Err(CpuError::Array {
                var: self.name.clone(),
                got: format!("{} arrays", arrays.len()),
                want: format!("{}", self.var_types.len()),
            });
        }
        let mut raws = Vec::new();
        for (i, a) in arrays.iter_mut().enumerate() {
            let raw = a.raw();
            if self.var_is_array[i] {
                if raw.ptr.is_null() || raw.ty != self.var_types[i] {
                    return Err(CpuError::Array {
                        var: format!("variable #{i}"),
                        got: format!("{}", raw.ty),
                        want: format!("{}", self.var_types[i]),
                    });
                }
                let _ = n;
            }
            raws.push(raw);
        }
        Ok(raws)
    }
}

/// Evaluate an expression without arrays on the interpreter's scalar path (which gives
/// literals exactly the semantics of arrays); `fold_props` checks that the IR's constant
/// folding (`ir::fold`) agrees with it.
pub fn eval_scalar(e: &Expr, _locals: &[Value]) -> Result<Value, CpuError> {
    let k = Kernel {
        name: "fold".into(),
        template: String::new(),
        float: Type::F64,
        vars: vec![],
        locals: vec![Local {
            name: "_value".into(),
            ty: e.ty,
            var: None,
            scalar: true,
        }],
        scalar: vec![Stmt::Assign {
            local: 0,
            value: e.clone(),
            cond: None,
        }],
        vector: vec![],
        user_functions: vec![],
        rng_sites: 0,
    };
    let prog = program::compile(&k)?;
    let ctx = exec::RunCtx {
        prog: &prog,
        arrays: &[],
        list: None,
        pos_base: 0,
        seed: 0,
        kernel_id: 0,
        step: 0,
    };
    let uni = exec::run(&ctx, 0)?;
    Ok(uni[0].value(0))
}
