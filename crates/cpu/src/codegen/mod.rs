//! Code generation with Cranelift: the JIT module kernels live in, how each
//! elementwise primitive is spelled, and the loop nests of fused kernels; and
//! (`wide`) kernels over rows as AVX-512 machine code of our own, placed in
//! the same module.

mod compile;
pub mod jit;
pub mod kernel;
pub(crate) mod ops;
mod order;
mod wide;

pub use jit::{CompiledModule, KernelFn, KernelModule};
pub use kernel::{define_kernel, KernelCode, KernelOptions};
pub(crate) use wide::available as wide_vectors_available;

/// Cranelift rejected a kernel, or the kernel uses something the generator
/// cannot express. Carries the function's Cranelift IR when there is one.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}{}", clif.as_ref().map(|c| format!("\nthe generated function was:\n{c}")).unwrap_or_default())]
pub struct CodegenError {
    pub message: String,
    pub clif: Option<String>,
}
