//! Where an executable's time goes, step by step. With `ARRAYJIT_PROFILE=1`
//! the executor times each step it runs (a fused kernel, a product, a
//! factorization, a whole loop) and adds its wall time to a table keyed by
//! the step's label, `x<executable>.s<step> <what> -> <first output>`;
//! [`report`] prints the table. A loop's steps are timed inside it as well
//! as the loop as a whole. Timing costs a clock read per step: time the
//! whole run without the variable.

use arrayjit_lower::StepTimes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static TIMES: StepTimes = StepTimes::new("ARRAYJIT_PROFILE");

/// Whether steps are being timed (`ARRAYJIT_PROFILE=1`).
pub fn enabled() -> bool {
    TIMES.enabled()
}

/// Adds one run of a step.
pub(crate) fn record(label: impl FnOnce() -> String, took: Duration) {
    TIMES.record(label(), took);
}

/// A number for a new executable, for its steps' labels.
pub(crate) fn next_id() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
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
