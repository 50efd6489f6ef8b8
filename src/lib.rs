//! brian2wgpu: Brian2 abstract code compiled to WebGPU compute shaders and a CPU interpreter.
//!
//! Data flow: [`parse`] (text → AST) → [`ir`] (typed kernel IR) → [`wgsl`] / [`cpu`]
//! backends; [`gpu`] owns wgpu devices; [`rng`] is the Philox generator both share.

pub mod arrays;
pub mod cpu;
pub mod gpu;
pub mod ir;
pub mod odeiv2;
pub mod parse;
pub mod rng;
pub mod runtime;
pub mod simd;
pub mod threads;
pub mod wgsl;

#[cfg(feature = "python")]
mod python;
