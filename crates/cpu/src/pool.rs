//! The worker threads that parallel kernels and products run on: started
//! once and kept, so that a parallel step costs a wake-up (spinning briefly
//! first, then sleeping) rather than a thread spawn per step, which made
//! splitting anything but the largest kernels a loss.
//!
//! One job runs at a time. A call made while the workers are busy (from
//! another thread, or from inside a job) runs its work on the calling thread
//! alone, so nothing waits on itself.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

/// A job: called once per worker index.
type Job = dyn Fn(usize) + Sync;

struct Pool {
    /// The current job, lifetime erased: `run` waits for every worker to
    /// finish with it before returning, so the borrow it came from outlives it.
    job: Mutex<Option<(&'static Job, usize)>>,
    /// Bumped for each job; workers watch it.
    generation: AtomicU64,
    /// Workers still running the current job.
    running: AtomicUsize,
    busy: AtomicBool,
    panicked: AtomicBool,
    wake: Condvar,
    done_lock: Mutex<()>,
    done: Condvar,
    /// Threads serving jobs, the caller included (those that did start).
    workers: AtomicUsize,
}

thread_local! {
    static IS_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// How many spins a waiting thread makes before it sleeps: about 0.6 ms on
/// an x86 core (`pause` takes some 30 ns), long enough to stay awake across
/// the single-threaded steps between two parallel kernels of a loop body.
/// A wake-up from sleep costs more than those steps (sleeping at once
/// before each factorization made a small PLN step 40% slower; see
/// BENCHMARKS.md), and libgomp spins longer still by default.
const SPINS: u32 = 20_000;

fn pool(workers: usize) -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let p: &'static Pool = Box::leak(Box::new(Pool {
            job: Mutex::new(None),
            generation: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            wake: Condvar::new(),
            done_lock: Mutex::new(()),
            done: Condvar::new(),
            workers: AtomicUsize::new(1),
        }));
        for w in 1..workers {
            let spawned = std::thread::Builder::new().name(format!("arrayjit-worker-{w}")).spawn(move || p.serve(w));
            if spawned.is_err() {
                // Fewer workers than hoped: jobs wait only for those that started.
                break;
            }
            p.workers.store(w + 1, Ordering::Release);
        }
        p
    })
}

impl Pool {
    fn serve(&self, w: usize) {
        IS_WORKER.with(|c| c.set(true));
        let mut seen = 0u64;
        loop {
            // Spin for a new generation, then sleep on the condition variable.
            let mut spins = 0;
            while self.generation.load(Ordering::Acquire) == seen && spins < SPINS {
                std::hint::spin_loop();
                spins += 1;
            }
            let job = {
                let mut guard = match self.job.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                while self.generation.load(Ordering::Acquire) == seen {
                    guard = match self.wake.wait(guard) {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                }
                seen = self.generation.load(Ordering::Acquire);
                *guard
            };
            if let Some((job, count)) = job {
                if w < count && catch_unwind(AssertUnwindSafe(|| job(w))).is_err() {
                    self.panicked.store(true, Ordering::Release);
                }
            }
            if self.running.fetch_sub(1, Ordering::AcqRel) == 1 {
                let _guard = self.done_lock.lock();
                self.done.notify_all();
            }
        }
    }

    /// Runs `job(w)` for every `w < count` (worker 0 is the caller); returns when all are done.
    fn run(&'static self, count: usize, job: &(dyn Fn(usize) + Sync)) {
        // SAFETY: the reference is only used by workers until `running`
        // reaches zero, which this function waits for before returning.
        let erased: &'static Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Job>(job) };
        let helpers = self.workers.load(Ordering::Acquire) - 1;
        self.running.store(helpers, Ordering::Release);
        {
            let mut guard = match self.job.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            *guard = Some((erased, count));
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        let mut spins = 0;
        while self.running.load(Ordering::Acquire) != 0 {
            if spins < SPINS {
                std::hint::spin_loop();
                spins += 1;
                continue;
            }
            let guard = match self.done_lock.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if self.running.load(Ordering::Acquire) != 0 {
                let _ = self.done.wait_timeout(guard, std::time::Duration::from_millis(1));
            }
        }
        if let Ok(mut guard) = self.job.lock() {
            *guard = None;
        }
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if self.panicked.swap(false, Ordering::AcqRel) {
            panic!("a worker thread panicked while running a kernel");
        }
    }
}

/// Runs `job(w)` for `w` in `0..workers` at once (worker 0 on the calling
/// thread), or `job(0)` alone on the calling thread when there is one
/// worker, when the pool is busy, or when called from inside a job. Jobs
/// take their items from a shared counter, so any number of workers
/// completes them.
pub(crate) fn run(workers: usize, job: &(dyn Fn(usize) + Sync)) {
    // Every job takes its items from a shared counter, so worker 0 alone
    // does all of the work when it runs alone.
    let nested = IS_WORKER.with(|c| c.get());
    if workers <= 1 || nested {
        job(0);
        return;
    }
    let p = pool(crate::parallel::threads().max(workers));
    let available = p.workers.load(Ordering::Acquire);
    if available <= 1 || p.busy.swap(true, Ordering::AcqRel) {
        job(0);
        return;
    }
    IS_WORKER.with(|c| c.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| p.run(workers.min(available), job)));
    IS_WORKER.with(|c| c.set(false));
    p.busy.store(false, Ordering::Release);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum_on(workers: usize, n: usize) -> usize {
        let next = AtomicUsize::new(0);
        let total = AtomicUsize::new(0);
        run(workers, &|_| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            total.fetch_add(i, Ordering::Relaxed);
        });
        total.into_inner()
    }

    #[test]
    fn jobs_complete_nested_and_after_a_panic() {
        assert_eq!(sum_on(2, 1000), 999 * 1000 / 2);
        // A job that runs another job: the inner one runs on its own thread.
        let inner = AtomicUsize::new(0);
        run(2, &|_| {
            inner.fetch_add(sum_on(2, 10), Ordering::Relaxed);
        });
        assert!(inner.into_inner() >= 45);
        // A panic in a job reaches the caller, and the pool still works after.
        let r = catch_unwind(|| run(2, &|w| assert!(w != 0, "worker 0 fails")));
        assert!(r.is_err());
        assert_eq!(sum_on(2, 100), 99 * 100 / 2);
    }
}
