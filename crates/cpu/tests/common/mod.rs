//! Helpers shared by the integration tests of this crate: deterministic
//! pseudo-random data, and runs on several thread counts.

// Each test file uses some of these.
#![allow(dead_code)]

use arrayjit_ir::{Data, HostArray};
use std::sync::Mutex;

/// `n` values in [-1, 1) from `seed` (a linear congruential sequence), as f64
/// or rounded to f32.
pub fn data(n: usize, seed: u64, f64s: bool) -> Data {
    let mut s = seed;
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    if f64s {
        Data::F64(v)
    } else {
        Data::F32(v.into_iter().map(|x| x as f32).collect())
    }
}

/// The thread count is set for the whole process, and the tests of a file
/// run side by side: whoever sets it holds this lock meanwhile.
static THREADS: Mutex<()> = Mutex::new(());

/// Calls `run` with 1, 2 and 3 threads; the results must be the same bits.
/// Returns the first.
pub fn same_on_1_2_3_threads(mut run: impl FnMut(usize) -> Vec<HostArray>) -> Vec<HostArray> {
    let _alone = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let mut runs = Vec::new();
    for threads in [1, 2, 3] {
        arrayjit_cpu::parallel::set_threads(threads);
        runs.push(run(threads));
    }
    arrayjit_cpu::parallel::set_threads(0);
    assert_eq!(runs[0], runs[1], "results differ between 1 and 2 threads");
    assert_eq!(runs[0], runs[2], "results differ between 1 and 3 threads");
    runs.swap_remove(0)
}

/// The same avals and bits, NaN matching any NaN.
pub fn same_bits(got: &[HostArray], want: &[HostArray], what: &str) {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.aval(), w.aval());
        for i in 0..g.numel() {
            let (x, y) = (g.data().get(i).as_f64(), w.data().get(i).as_f64());
            assert!(
                x.to_bits() == y.to_bits() || x.is_nan() && y.is_nan(),
                "{what}: output {k} element {i}: {x} vs {y}"
            );
        }
    }
}
