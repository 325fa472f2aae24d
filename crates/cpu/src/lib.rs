//! The CPU backend of arrayjit: fused loop kernels compiled to native code with
//! Cranelift (128-bit SIMD, inline polynomial transcendentals) or, for kernels
//! over rows on CPUs with AVX-512, by our own code generator
//! (`codegen::wide`), and dense linear algebra through faer.

pub mod codegen;
mod control;
pub mod eager;
pub mod exec;
pub mod linalg;
pub(crate) mod math;
pub mod parallel;
mod pool;
pub mod profile;
mod raw;
mod rows;
mod steps;
mod width;

pub use exec::{Arg, CompileOptions, CpuError, Executable};

/// Whether this CPU runs kernels' `exp`, `log`, `tanh`, `logistic`, `log1p`,
/// `expm1`, `sin` and `cos` in native row functions (see
/// [`CompileOptions::row_functions`]): x86-64 with AVX2 or AVX-512, and FMA.
pub fn row_functions_available() -> bool {
    math::bulk::row_fn(math::bulk::RowOp::Exp, arrayjit_ir::DType::F32).is_some()
}

/// Whether this CPU runs the kernels [`CompileOptions::wide_vectors`] compiles
/// to AVX-512 machine code (x86-64 with AVX-512F, on a Unix calling convention).
pub fn wide_vectors_available() -> bool {
    codegen::wide_vectors_available()
}
