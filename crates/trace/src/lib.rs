//! Tracing for arrayjit: the [`Array`] handle shared by eager code and
//! tracers, the thread-local trace stack, the NumPy-like array API, pytrees
//! ([`Tree`]) and [`make_jaxpr`].
//!
//! Every transformation traces the user's function into a [`Program`]
//! (`arrayjit_ir`), transforms the program, and evaluates the result in the
//! current context ([`bind::apply_program`]): inlined into an enclosing trace,
//! or executed eagerly. Eager operations dispatch through [`eager::Executor`].

pub mod array;
pub mod bind;
pub mod control;
pub mod custom;
pub mod device;
pub mod eager;
pub mod element;
pub mod error;
pub mod frame;
pub mod lax;
pub mod ops;
pub mod transform;
pub mod tree;
mod view;

pub use array::Array;
pub use arrayjit_ir::{AVal, DType, HostArray, Loc, Program, Shape};
pub use control::{cond, fori_loop, scan, scan_with, switch, while_loop, ScanOptions};
pub use custom::{custom_jvp, custom_vjp};
pub use device::{Device, DeviceBuffer};
pub use element::Element;
pub use error::{Error, Result};
pub use frame::is_tracing;
pub use ops::elementwise::{try_where, where_};
pub use ops::linalg::{triangular_solve, try_triangular_solve, TriangularSolve};
pub use ops::operand::{Operand, WeakScalar};
pub use ops::reduce::Axes;
pub use ops::shape::{concatenate, stack, try_concatenate, try_stack};
pub use transform::{make_jaxpr, trace, trace_avals, TraceOutput, Traced};
pub use tree::{tree_flatten, tree_leaves, tree_map, tree_unflatten, StaticValue, Tree, TreeDef, TreeError};
