//! Where a device's time goes, step by step. With `ARRAYJIT_CUDA_PROFILE=1`
//! the executor waits for the device before and after each step it queues
//! and adds the step's wall time (queueing and running) to a table keyed by
//! the step's label; [`report`] prints the table. Waiting serialises host and
//! device, so the figures are each step's cost alone, not the overlapped
//! whole: use them to find the expensive steps, and time the whole run
//! without the variable.

use crate::error::CudaError;
use crate::runtime::Runtime;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Whether steps are being timed (`ARRAYJIT_CUDA_PROFILE=1`).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("ARRAYJIT_CUDA_PROFILE").is_ok_and(|v| v == "1"))
}

#[derive(Default, Clone, Copy)]
struct Entry {
    count: u64,
    total: Duration,
}

fn table() -> &'static Mutex<HashMap<String, Entry>> {
    static TABLE: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
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
    let took = start.elapsed();
    if let Ok(mut t) = table().lock() {
        let e = t.entry(label()).or_default();
        e.count += 1;
        e.total += took;
    }
    Ok(out)
}

/// The table so far, most expensive first: total milliseconds, calls,
/// microseconds per call, label. Empty when nothing was timed.
pub fn report() -> String {
    let Ok(t) = table().lock() else { return String::new() };
    let mut rows: Vec<(&String, &Entry)> = t.iter().collect();
    rows.sort_by(|a, b| b.1.total.cmp(&a.1.total).then(a.0.cmp(b.0)));
    let mut s = String::new();
    if !rows.is_empty() {
        s.push_str("   total ms      calls    µs/call  step\n");
    }
    for (label, e) in rows {
        let per = e.total.as_secs_f64() * 1e6 / e.count.max(1) as f64;
        s.push_str(&format!("{:>11.3} {:>10} {:>10.1}  {label}\n", e.total.as_secs_f64() * 1e3, e.count, per));
    }
    s
}

/// Forgets what was timed.
pub fn reset() {
    if let Ok(mut t) = table().lock() {
        t.clear();
    }
}
