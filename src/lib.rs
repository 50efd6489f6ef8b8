//! brian2wgpu: Brian2 abstract code compiled to WebGPU compute shaders and a CPU interpreter.
//!
//! Data flow: [`parse`] (text → AST) → [`ir`] (typed kernel IR) → [`wgsl`] / [`cpu`]
//! backends; [`gpu`] owns wgpu devices; [`rng`] is the shared Philox generator.

pub mod gpu;
pub mod parse;
