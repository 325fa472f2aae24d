//! The worker threads that parallel kernels and products run on: started
//! once and kept, so that a parallel step costs a wake-up (spinning briefly
//! first, then sleeping) rather than a thread spawn per step, which made
//! splitting anything but the largest kernels a loss.
//!
//! One job runs at a time. A call made while the workers are busy (from
//! another thread, or from inside a job) runs its work on the calling thread
//! alone, so nothing waits on itself.
//!
//! A worker takes part in a job only if it joins while the job is open; the
//! caller closes the job once its own share is done and then waits only for
//! the workers that joined. Jobs take their items from a shared counter, so
//! when a worker is slow to wake (its core busy with another process) the
//! caller does the work and goes on, instead of waiting a time slice for a
//! thread that would find nothing left to do.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

/// A job: called once per worker index.
type Job = dyn Fn(usize) + Sync;

/// The pool's state word: the job's generation in the high 32 bits, whether
/// it is open in bit 31, and how many workers have joined it below.
#[derive(Clone, Copy, PartialEq, Eq)]
struct State(u64);

impl State {
    const OPEN: u64 = 1 << 31;
    const JOINED: u64 = Self::OPEN - 1;

    fn opened(generation: u32) -> State {
        State(((generation as u64) << 32) | Self::OPEN)
    }
    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
    fn open(self) -> bool {
        self.0 & Self::OPEN != 0
    }
    fn joined(self) -> u64 {
        self.0 & Self::JOINED
    }
}

struct Pool {
    /// The current job, lifetime erased: `run` waits for every worker that
    /// joined it to leave before returning, so the borrow it came from
    /// outlives every use.
    job: Mutex<Option<(&'static Job, usize)>>,
    /// A [`State`]; changed under `job`'s lock when a job starts, so that a
    /// sleeping worker cannot miss it.
    state: AtomicU64,
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

/// One spin of a waiting thread. Every so often it yields the core: when
/// another process holds the other cores, a spinning worker would otherwise
/// take half of the one left to the thread it waits for.
fn spin(count: u32) {
    if count % YIELD_EVERY == YIELD_EVERY - 1 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Spins between two yields (a few microseconds).
const YIELD_EVERY: u32 = 64;

fn pool(workers: usize) -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let p: &'static Pool = Box::leak(Box::new(Pool {
            job: Mutex::new(None),
            state: AtomicU64::new(State(0).0),
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
                // Fewer workers than hoped: the caller does their share.
                break;
            }
            p.workers.store(w + 1, Ordering::Release);
        }
        p
    })
}

impl Pool {
    fn load(&self) -> State {
        State(self.state.load(Ordering::Acquire))
    }

    fn serve(&self, w: usize) {
        IS_WORKER.with(|c| c.set(true));
        let mut seen = 0u32;
        loop {
            // Spin for a new generation, then sleep on the condition variable.
            let mut spins = 0;
            while self.load().generation() == seen && spins < SPINS {
                spin(spins);
                spins += 1;
            }
            if self.load().generation() == seen {
                let mut guard = match self.job.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                while self.load().generation() == seen {
                    guard = match self.wake.wait(guard) {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                }
            }
            seen = self.load().generation();
            if !self.join(seen) {
                continue;
            }
            // Joined: the job stays in place until this worker leaves.
            let job = match self.job.lock() {
                Ok(g) => *g,
                Err(p) => *p.into_inner(),
            };
            if let Some((job, count)) = job {
                if w < count && catch_unwind(AssertUnwindSafe(|| job(w))).is_err() {
                    self.panicked.store(true, Ordering::Release);
                }
            }
            let left = State(self.state.fetch_sub(1, Ordering::AcqRel));
            if !left.open() && left.joined() == 1 {
                let _guard = self.done_lock.lock();
                self.done.notify_all();
            }
        }
    }

    /// Joins job `generation` if it is still open.
    fn join(&self, generation: u32) -> bool {
        let mut s = self.load();
        while s.generation() == generation && s.open() {
            match self.state.compare_exchange_weak(s.0, s.0 + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => s = State(now),
            }
        }
        false
    }

    /// Runs `job(w)` for every `w < count` that joins in time (worker 0 is
    /// the caller, and always runs); returns when all that joined are done.
    fn run(&'static self, count: usize, job: &(dyn Fn(usize) + Sync)) {
        // SAFETY: the reference is only used by workers that joined the job,
        // and this function waits for every one of them to leave before
        // returning; a worker that did not join never reads it.
        let erased: &'static Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Job>(job) };
        {
            let mut guard = match self.job.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            *guard = Some((erased, count));
            let next = self.load().generation().wrapping_add(1);
            self.state.store(State::opened(next).0, Ordering::Release);
            self.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        // Close the job: a worker that has not joined by now stays out.
        self.state.fetch_and(!State::OPEN, Ordering::AcqRel);
        let mut spins = 0;
        while self.load().joined() != 0 {
            if spins < SPINS {
                spin(spins);
                spins += 1;
                continue;
            }
            let guard = match self.done_lock.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if self.load().joined() != 0 {
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

    #[test]
    fn many_short_jobs_from_several_threads_each_complete() {
        // Jobs this short end before a worker wakes as often as not, so
        // workers join late, find jobs closed, and join the next ones; two
        // callers contend for the pool (the loser runs alone).
        let callers: Vec<_> = (0..2)
            .map(|t| {
                std::thread::spawn(move || {
                    for k in 0..3000 {
                        let n = (k * 7 + t) % 40;
                        assert_eq!(sum_on(2, n), n * n.saturating_sub(1) / 2, "job {k} of caller {t}");
                    }
                })
            })
            .collect();
        for c in callers {
            assert!(c.join().is_ok());
        }
    }
}
