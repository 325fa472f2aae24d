//! Automatic differentiation for arrayjit, as program transformations.
//!
//! Design: JAX's route, not hand-written VJPs. Every primitive has one JVP
//! rule (and every primitive that can be linear in an operand, a transpose
//! rule); forward mode evaluates a program on (primal, tangent) pairs;
//! reverse mode is JVP, then partial evaluation (known primals, unknown
//! tangents) into a primal program that also returns residuals and a linear
//! program, then transposition of the linear program. We chose it because one
//! rule per primitive serves both modes and higher orders (a JVP of a
//! gradient program needs nothing new), the linear program is exactly the
//! "backward pass" that later optimisation and fusion see, and control flow
//! (`scan`) gets reverse mode from its JVP and transpose as in JAX.
//!
//! Rules are written with `lax` operations on arrays and run under a trace, so
//! every derivative is itself a [`Program`](arrayjit_ir::Program):
//! `make_jaxpr(grad(f), x)` prints the backward program. Zero tangents and
//! cotangents are symbolic (`None`), and the results are dead-code eliminated.
//!
//! ```
//! use arrayjit_ad::grad;
//! use arrayjit_trace::Array;
//! let f = |x: Array| (&x * &x).sum(..);
//! let g = grad(f)(Array::from_vec(vec![1.0f64, 2.0], [2])).unwrap();
//! assert_eq!(g.to_vec::<f64>(), vec![2.0, 4.0]);
//! ```

pub mod api;
pub mod argnums;
pub mod jvp;
pub mod linearize;
pub mod partial_eval;
mod rules;
mod split_control;
pub mod transpose;

pub use api::{
    grad, grad_argnums, grad_aux, hvp, jacfwd, jacrev, jvp, value_and_grad, value_and_grad_argnums,
    value_and_grad_argnums_aux, value_and_grad_aux, vjp, Pullback,
};
pub use argnums::{Arg, Argnums};
pub use jvp::jvp_program;
pub use linearize::{linearize, Linearized};
pub use partial_eval::{partial_eval, Split};
pub use transpose::transpose_program;
