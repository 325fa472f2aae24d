//! A compiled scan allocates nothing per iteration: the allocations of a
//! call do not depend on the number of iterations. (Counted with a global
//! allocator; this file holds one test so that nothing else allocates
//! meanwhile.)

use arrayjit::{jit, Array, DType};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as the caller guarantees for `alloc`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as the caller guarantees for `dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as the caller guarantees for `realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_of<T>(f: impl FnOnce() -> T) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let r = f();
    let n = ALLOCATIONS.load(Ordering::Relaxed) - before;
    drop(r);
    n
}

#[test]
fn a_compiled_scan_allocates_nothing_per_iteration() {
    // Elementwise work, a reduction, a matrix product, a Cholesky
    // factorization, the inverse from it and triangular solves, a literal and a passed-through
    // carry, unrolled by 3 with a remainder.
    let w = Array::from_vec((0..16).map(|i| i as f64 / 16.0).collect(), [4, 4]);
    let f = jit(move |xs: Array| {
        arrayjit::scan_with(
            |(h, k): (Array, Array), x: Array| {
                let h = (w.matmul(&h.reshape([4, 1])).reshape([4]) * 0.5 + &x).tanh();
                let spd = h.reshape([4, 1]).matmul(&h.reshape([1, 4])) + Array::eye(4, DType::F64);
                let h = spd.inv_spd().matmul(&h.reshape([4, 1])).reshape([4]) + spd.solve_spd(&h);
                ((h.clone(), k), (h.sum(..), Array::scalar(1i32)))
            },
            (Array::zeros([4], DType::F64), Array::scalar(0.0f64)),
            xs,
            arrayjit::ScanOptions::default().unroll(3),
        )
    });
    let counts: Vec<usize> = [10usize, 1000]
        .iter()
        .map(|&n| {
            let xs = Array::from_vec((0..n * 4).map(|i| (i as f64).sin()).collect(), [n, 4]);
            f.call(xs.clone()).unwrap(); // compile, and size the loop's memory
            allocations_of(|| f.call(xs.clone()).unwrap())
        })
        .collect();
    assert_eq!(counts[0], counts[1], "allocations per call for 10 and 1000 iterations");
}
