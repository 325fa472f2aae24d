//! The Poisson log-normal (PLN) model, fitted by gradient steps on its
//! variational ELBO: arrayjit's flagship. The same model code runs at every
//! JIT level of the tutorial it reproduces (eager, jitted pieces, the whole
//! loop in one `scan`, with the state as a derived struct, and as a model
//! struct with methods); `examples/pln.rs` runs and times them.
//!
//! ```no_run
//! use arrayjit::DType;
//! use arrayjit_pln::{fit, Dataset};
//! let data = Dataset::oaks(1, DType::F32).unwrap();
//! let f = fit(2, &data, 100, &mut |_| {}).unwrap();
//! println!("final loss {}", f.losses.last().unwrap());
//! ```

pub mod data;
pub mod levels;
pub mod model;

pub use data::{simulate, DataError, Dataset};
pub use levels::{fit, fit_on, scan_fit, scan_start, Cpu, Fit, FitState, PlnModel, ScanState, Target};
pub use model::{init, neg_elbo, optimizer, sigma_closed_form, step, OptState, Params};
