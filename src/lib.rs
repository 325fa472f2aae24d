//! arrayjit: a staged tracing JIT compiler for array programs, for Rust.
//!
//! Write an ordinary Rust function over [`Array`]s. Called on concrete arrays it
//! runs eagerly; handed to a transformation it is traced once into a typed
//! [`Program`] (the jaxpr analogue), which can be printed, transformed,
//! compiled and run.
//!
//! ```
//! use arrayjit::{grad, jit, make_jaxpr, Array};
//!
//! let f = |(x, w): (Array, Array)| (x.matmul(&w).tanh() * 2.0).sum(..);
//! let x = Array::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]);
//! let w = Array::from_vec(vec![0.5f32, -0.5, 0.25, 0.0], [2, 2]);
//!
//! // Eager: runs now, one cached compiled kernel per operation.
//! let eager = f((x.clone(), w.clone()));
//! // Traced: a program, printable like a jaxpr.
//! let program = make_jaxpr(f, &(x.clone(), w.clone())).unwrap();
//! println!("{program}");
//! // Compiled: traced once per signature, fused and compiled to native code.
//! let fast = jit(f);
//! let compiled = fast.call((x.clone(), w.clone())).unwrap();
//! assert!((compiled.item::<f32>() - eager.item::<f32>()).abs() < 1e-5);
//! // Differentiated, and the gradient compiled too.
//! let (dx, dw) = jit(grad(f)).call((x, w)).unwrap();
//! assert_eq!(dw.shape(), [2, 2]);
//! # let _ = dx;
//! ```

pub use arrayjit_ad::{
    grad, grad_argnums, grad_aux, hvp, jacfwd, jacrev, jvp, value_and_grad, value_and_grad_argnums,
    value_and_grad_argnums_aux, value_and_grad_aux, vjp, Arg, Argnums, Pullback,
};
pub use arrayjit_derive::Tree;
pub use arrayjit_ir::{parse, typecheck, AVal, DType, Data, HostArray, Program, Scalar, Shape};
pub use arrayjit_jit::{jit, Compiled, CompiledOn, Jit, Lowered, Static, Timings};
pub use arrayjit_trace::{
    concatenate, is_tracing, make_jaxpr, stack, trace, tree_flatten, tree_leaves, tree_map, tree_unflatten,
    triangular_solve, try_concatenate, try_stack, try_triangular_solve, try_where, where_, Array, Axes, Element, Error,
    Loc, Operand, Result, StaticValue, Traced, Tree, TreeDef, TreeError, TriangularSolve, WeakScalar,
};
pub use arrayjit_trace::{cond, custom_jvp, custom_vjp, fori_loop, scan, scan_with, switch, while_loop, ScanOptions};
pub use arrayjit_trace::{Device, DeviceBuffer};

/// Differentiation as program transformations (jvp, linearize, transpose).
pub use arrayjit_ad as ad;
/// The CPU backend: executables, eager kernels, linear algebra.
pub use arrayjit_cpu as cpu;

/// The CUDA backend: devices, the GPU runtime, code generation.
pub use arrayjit_cuda as cuda;
/// The reference interpreter.
pub use arrayjit_interp as interp;
/// The IR: primitives, programs, typecheck, print and parse.
pub use arrayjit_ir as ir;
/// Optimisation passes, fusion and schedules.
pub use arrayjit_lower as lower;
/// Gradient transformations (optimizers), an optax analogue.
pub use arrayjit_optim as optim;

/// Paths used by `#[derive(Tree)]`'s generated code; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use arrayjit_trace as trace;
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
