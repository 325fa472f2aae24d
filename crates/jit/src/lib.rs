//! `jit` for arrayjit: a function is traced once per abstract signature (tree
//! structure, shapes, dtypes, static values), optimised, fused into loop
//! kernels and compiled to native code; later calls with the same signature
//! run the cached executable.
//!
//! The ahead-of-time stages are exposed as in JAX: [`Jit::lower`] gives a
//! [`Lowered`] (the traced and optimised programs, the fused schedule), whose
//! [`Lowered::compile`] gives a [`Compiled`] executable (with its Cranelift
//! IR); each stage is timed. `ARRAYJIT_DUMP=dir` writes every stage to files,
//! and `ARRAYJIT_EXPLAIN_CACHE_MISSES=1` logs why each recompilation happened.
//!
//! ```
//! use arrayjit_jit::jit;
//! use arrayjit_trace::Array;
//!
//! let f = jit(|(x, y): (Array, Array)| (x.exp() * &y).sum(..));
//! let x = Array::from_vec(vec![0.0f32, 1.0, 2.0], [3]);
//! let y = Array::from_vec(vec![1.0f32, 1.0, 1.0], [3]);
//! let s = f.call((x, y))?;
//! assert!((s.item::<f32>() - (1.0 + 1f32.exp() + 2f32.exp())).abs() < 1e-5);
//! assert_eq!(f.cache_size(), 1);
//! # Ok::<(), arrayjit_trace::Error>(())
//! ```

mod device;
mod dump;
mod explain;
mod jit;
mod stages;
mod static_arg;

pub use device::CompiledOn;
pub use jit::{jit, Jit};
pub use stages::{Compiled, Lowered, Timings};
pub use static_arg::Static;
