//! Where a device's time goes, step by step. With `ARRAYJIT_CUDA_PROFILE=1`
//! the executor waits for the device before and after each step it queues
//! and adds the step's wall time (queueing and running) to a table keyed by
//! the step's label; [`report`] prints the table. Waiting serialises host and
//! device, so the figures are each step's cost alone, not the overlapped
//! whole: use them to find the expensive steps, and time the whole run
//! without the variable.

use crate::error::CudaError;
use crate::runtime::Runtime;
use arrayjit_lower::StepTimes;
use std::time::Instant;

static TIMES: StepTimes = StepTimes::new("ARRAYJIT_CUDA_PROFILE");

/// Whether steps are being timed (`ARRAYJIT_CUDA_PROFILE=1`).
pub fn enabled() -> bool {
    TIMES.enabled()
}

/// Runs `f`; when profiling, waits for the device around it and records its
/// wall time under `label()`.
pub(crate) fn timed<R: Runtime, T>(
    rt: &R,
    label: impl FnOnce() -> String,
    f: impl FnOnce() -> Result<T, CudaError>,
) -> Result<T, CudaError> {
    if !enabled() {
        return f();
    }
    rt.synchronize()?;
    let start = Instant::now();
    let out = f()?;
    rt.synchronize()?;
    TIMES.record(label(), start.elapsed());
    Ok(out)
}

/// The table so far, most expensive first: total milliseconds, calls,
/// microseconds per call, label. Empty when nothing was timed.
pub fn report() -> String {
    TIMES.report()
}

/// Forgets what was timed.
pub fn reset() {
    TIMES.reset()
}
