//! The user-facing error type, and how an error leaves a trace.
//!
//! Under tracing, an operator such as `a + b` cannot return a `Result`; a shape
//! error there aborts the trace by unwinding with a private payload (no panic
//! hook runs, nothing is printed) and the entry point (`make_jaxpr`, `jit`,
//! `grad`, ...) turns it back into an `Err`. In eager code the same error is an
//! ordinary panic carrying the same message; the `try_*` forms return it instead.

use arrayjit_ir::{AVal, Loc, TypeError};
use std::panic::{self, AssertUnwindSafe};

/// Everything that can go wrong when building or running an array program.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// A primitive rejected its operands' shapes or dtypes.
    #[error("{source} (at {loc})")]
    Type { source: TypeError, loc: Loc },
    /// A traced value's contents were asked for while tracing.
    #[error(
        "cannot read the value of {what} (at {loc}): while tracing, arrays are abstract {aval} values whose \
         contents are only known when the program runs. Use `where_`/`select` (or `cond`) instead of a Rust \
         `if` on array values, or make the argument static so it is known at trace time"
    )]
    Concretization { what: String, aval: AVal, loc: Loc },
    /// A tracer was used after the trace that made it had finished.
    #[error(
        "a traced value {aval} (from {origin}) escaped the function that was being traced and was used at {loc}; \
         return it from the traced function instead of storing it"
    )]
    LeakedTracer { aval: AVal, origin: String, loc: Loc },
    /// A tree did not have the structure its type expects (or that a
    /// compiled function was given).
    #[error("tree structure mismatch: {message} (at {loc})")]
    Tree { message: String, loc: Loc },
    /// Bad arguments to an API function (e.g. data that does not fit a shape).
    #[error("{message} (at {loc})")]
    Invalid { message: String, loc: Loc },
    /// A transformation cannot handle an operation (e.g. no derivative rule).
    #[error("{op}: {message} (at {loc})")]
    Transform { op: String, message: String, loc: Loc },
    /// Evaluation of a program failed.
    #[error("{message} (at {loc})")]
    Eval { message: String, loc: Loc },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A tree rebuilt from leaves that do not fit its definition. The caller's
/// line is unknown here; entry points that know it fill it in.
impl From<crate::tree::TreeError> for Error {
    fn from(e: crate::tree::TreeError) -> Error {
        Error::Tree { message: e.to_string(), loc: Loc::default() }
    }
}

/// The unwinding payload that carries an error out of a trace.
struct TraceAbort(Error);

/// Reports an error from an operator that cannot return `Result`: aborts the
/// current trace, or panics in eager code.
#[track_caller]
pub(crate) fn raise(err: Error) -> ! {
    if crate::frame::is_tracing() {
        panic::resume_unwind(Box::new(TraceAbort(err)))
    }
    panic!("{err}")
}

/// Unwraps an operator's result, raising its error.
pub(crate) trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T> {
    #[track_caller]
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise(e),
        }
    }
}

/// Runs `f`, turning a trace abort raised inside it into `Err`. Other panics pass through.
pub(crate) fn catch_abort<T>(f: impl FnOnce() -> T) -> Result<T> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Ok(v),
        Err(payload) => match payload.downcast::<TraceAbort>() {
            Ok(abort) => Err(abort.0),
            Err(other) => panic::resume_unwind(other),
        },
    }
}
