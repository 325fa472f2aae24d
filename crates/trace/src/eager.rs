//! The one place eager operations are executed. Each primitive applied to
//! concrete arrays outside any trace goes through the registered [`Executor`].
//! With the `compiled` feature (which the `arrayjit` crate turns on) the
//! default is the CPU backend's cached single-operation kernels, as in JAX;
//! without it, the reference interpreter.

use crate::error::{Error, Result};
use arrayjit_ir::{HostArray, Loc, Prim, Program};
use std::sync::{Arc, RwLock};

/// Runs primitives and whole programs on concrete host arrays.
pub trait Executor: Send + Sync {
    /// A short name for messages and benchmarks.
    fn name(&self) -> &'static str;
    fn execute(&self, prim: &Prim, args: &[&HostArray]) -> std::result::Result<Vec<HostArray>, String>;
    fn execute_program(&self, p: &Program, args: &[&HostArray]) -> std::result::Result<Vec<HostArray>, String>;
}

/// Executes with the reference interpreter.
pub struct Interpreter;

impl Executor for Interpreter {
    fn name(&self) -> &'static str {
        "interpreter"
    }
    fn execute(&self, prim: &Prim, args: &[&HostArray]) -> std::result::Result<Vec<HostArray>, String> {
        arrayjit_interp::eval_prim(prim, &owned(args)).map_err(|e| e.to_string())
    }
    fn execute_program(&self, p: &Program, args: &[&HostArray]) -> std::result::Result<Vec<HostArray>, String> {
        arrayjit_interp::eval_program(p, &owned(args)).map_err(|e| e.to_string())
    }
}

/// Executes with the CPU backend: one compiled kernel per primitive and
/// operand types, cached.
#[cfg(feature = "compiled")]
pub struct CompiledCpu;

#[cfg(feature = "compiled")]
impl Executor for CompiledCpu {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn execute(&self, prim: &Prim, args: &[&HostArray]) -> std::result::Result<Vec<HostArray>, String> {
        arrayjit_cpu::eager::execute_prim(prim, args).map_err(|e| e.to_string())
    }
    fn execute_program(&self, p: &Program, args: &[&HostArray]) -> std::result::Result<Vec<HostArray>, String> {
        arrayjit_cpu::eager::execute_program(p, args).map_err(|e| e.to_string())
    }
}

fn default_executor() -> Arc<dyn Executor> {
    static DEFAULT: std::sync::OnceLock<Arc<dyn Executor>> = std::sync::OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            #[cfg(feature = "compiled")]
            return Arc::new(CompiledCpu);
            #[cfg(not(feature = "compiled"))]
            return Arc::new(Interpreter);
        })
        .clone()
}

// The interpreter takes owned arrays; copying is acceptable for the oracle.
fn owned(args: &[&HostArray]) -> Vec<HostArray> {
    args.iter().map(|a| (*a).clone()).collect()
}

static EXECUTOR: RwLock<Option<Arc<dyn Executor>>> = RwLock::new(None);

/// Makes `e` run every eager operation from now on (all threads).
pub fn set_executor(e: Arc<dyn Executor>) {
    match EXECUTOR.write() {
        Ok(mut g) => *g = Some(e),
        Err(poisoned) => *poisoned.into_inner() = Some(e),
    }
}

/// The executor in use.
pub fn executor() -> Arc<dyn Executor> {
    let g = match EXECUTOR.read() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    g.clone().unwrap_or_else(default_executor)
}

pub(crate) fn execute(prim: &Prim, args: &[&HostArray], loc: Loc) -> Result<Vec<HostArray>> {
    executor().execute(prim, args).map_err(|message| Error::Eval { message, loc })
}

pub(crate) fn execute_program(p: &Program, args: &[&HostArray], loc: Loc) -> Result<Vec<HostArray>> {
    executor().execute_program(p, args).map_err(|message| Error::Eval { message, loc })
}
