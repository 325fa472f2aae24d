//! Where a schedule's time goes, step by step: a table of wall times keyed
//! by a step's label, which a backend fills while its executor runs with its
//! profiling variable set (`ARRAYJIT_PROFILE=1` on the CPU,
//! `ARRAYJIT_CUDA_PROFILE=1` on a GPU).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

#[derive(Default, Clone, Copy)]
struct Entry {
    count: u64,
    total: Duration,
}

/// One backend's table; made in a `static`.
pub struct StepTimes {
    var: &'static str,
    on: OnceLock<bool>,
    table: Mutex<BTreeMap<String, Entry>>,
}

impl StepTimes {
    /// A table that is filled when the environment variable `var` is `1`.
    pub const fn new(var: &'static str) -> StepTimes {
        StepTimes { var, on: OnceLock::new(), table: Mutex::new(BTreeMap::new()) }
    }

    /// Whether steps are being timed.
    pub fn enabled(&self) -> bool {
        *self.on.get_or_init(|| std::env::var(self.var).is_ok_and(|v| v == "1"))
    }

    /// Adds one run of the step `label` that took `took`.
    pub fn record(&self, label: String, took: Duration) {
        let mut t = match self.table.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        let e = t.entry(label).or_default();
        e.count += 1;
        e.total += took;
    }

    /// The table so far, most expensive first: total milliseconds, calls,
    /// microseconds per call, label. Empty when nothing was timed.
    pub fn report(&self) -> String {
        let t = match self.table.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
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
    pub fn reset(&self) {
        match self.table.lock() {
            Ok(mut t) => t.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_lists_steps_most_expensive_first() {
        let t = StepTimes::new("ARRAYJIT_TEST_STEP_TIMES_UNSET");
        assert!(!t.enabled());
        assert_eq!(t.report(), "");
        t.record("cheap".into(), Duration::from_micros(5));
        t.record("dear".into(), Duration::from_micros(300));
        t.record("cheap".into(), Duration::from_micros(7));
        let r = t.report();
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines.len(), 3, "{r}");
        assert!(lines[1].ends_with("dear") && lines[1].contains("300.0"), "{r}");
        assert!(lines[2].ends_with("cheap") && lines[2].contains(" 2 ") && lines[2].contains("6.0"), "{r}");
        t.reset();
        assert_eq!(t.report(), "");
    }
}
