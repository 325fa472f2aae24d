//! The typed array IR of arrayjit: dtypes, shapes, abstract values, primitives
//! with typed parameters and their shape/dtype rules, programs (our jaxpr), the
//! typechecker, and the text form (print and parse).
//!
//! ```
//! use arrayjit_ir::{AVal, DType, Loc, ProgramBuilder, typecheck, prim::Elementwise};
//! let mut b = ProgramBuilder::new();
//! let x = b.add_input(AVal::new(DType::F32, [3]));
//! let out = Elementwise::Exp.abstract_eval(&[b.aval(x).clone()]).unwrap();
//! let y = b.add_eqn(Elementwise::Exp.into(), vec![x.into()], out, Loc::default());
//! let p = b.finish(vec![y[0].into()]);
//! typecheck(&p).unwrap();
//! ```

pub mod dce;
pub mod dtype;
pub mod error;
pub mod fingerprint;
pub mod parse;
mod pool;
pub mod prim;
pub mod print;
pub mod program;
#[cfg(feature = "random")]
pub mod random;
pub mod shape;
pub mod typecheck;
pub mod value;

pub use dce::dce;
pub use dtype::{DType, WeakKind};
pub use error::TypeError;
pub use parse::{parse, ParseError};
pub use prim::Prim;
pub use program::{Atom, Eqn, Loc, Program, ProgramBuilder, Var};
pub use shape::{broadcast_shapes, AVal, Shape};
pub use typecheck::typecheck;
pub use value::{Data, HostArray, Scalar, ShapeDataMismatch};
