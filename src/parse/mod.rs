//! Brian2 abstract-code text → AST.
//!
//! Brian2 hands code generators Python-like statements (`v = v + dt*(-v/tau)`,
//! `_spikes := v > vt`, `w += 1.0`) and expressions in Python's precedence. This front
//! end needs no Python: it reads the same text Brian2 prints, and every error names the
//! text and the column.

mod ast;
mod lexer;
mod parser;

pub use ast::{AssignOp, BinOp, CmpOp, Expr, Literal, Statement, UnOp};
pub use parser::{parse_expr, parse_statements};

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
#[error("cannot parse `{text}` at column {column}: {message}")]
pub struct ParseError {
    pub text: String,
    /// 1-based column in `text`.
    pub column: usize,
    pub message: String,
}
