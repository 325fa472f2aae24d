//! Running a kernel over blocks of its outermost axis, on several threads.
//!
//! The partition into blocks depends only on the kernel's size, never on the
//! number of threads, and a reduction over the outermost axis is combined
//! from per-block partial results in block order: results are bit-for-bit
//! the same whatever `ARRAYJIT_THREADS` says.

use crate::codegen::KernelFn;
use arrayjit_ir::DType;
use arrayjit_lower::ReduceOp;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Kernels with less work (domain points × operations per point) run as one block.
const MIN_WORK: usize = 1 << 18;
/// Work per block, roughly.
const BLOCK_WORK: usize = 1 << 18;
/// Domain points per block, at least.
const MIN_BLOCK_POINTS: usize = 64;
/// Blocks at most.
const MAX_BLOCKS: usize = 32;

/// A thread count set by [`set_threads`] (0: none).
static OVERRIDE: AtomicUsize = AtomicUsize::new(0);

/// Threads used for blocks: [`set_threads`]'s count if set, else
/// `ARRAYJIT_THREADS`, else the machine's parallelism.
pub fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    match OVERRIDE.load(Ordering::Relaxed) {
        0 => *THREADS.get_or_init(|| {
            std::env::var("ARRAYJIT_THREADS")
                .ok()
                .and_then(|s| s.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
        }),
        n => n,
    }
}

/// Sets the number of threads kernels and products run on, for the whole
/// process (0 returns to `ARRAYJIT_THREADS` or the machine's parallelism).
/// Results do not depend on it.
pub fn set_threads(n: usize) {
    OVERRIDE.store(n, Ordering::Relaxed);
}

/// The work of one domain point of `k`: a unit per load and store, more for
/// operations that take longer (polynomial functions, divisions). Heavy
/// kernels split into blocks at fewer points than light ones.
pub fn point_cost(k: &arrayjit_lower::Kernel) -> usize {
    use arrayjit_ir::prim::Elementwise as E;
    use arrayjit_lower::Node;
    let nodes: usize = k
        .nodes
        .iter()
        .map(|n| match &n.node {
            Node::Load { .. } | Node::Gather { .. } => 1,
            Node::Const(_) | Node::Index(_) => 0,
            Node::Op { op, .. } => match op {
                E::Exp | E::Log | E::Log1p | E::Expm1 | E::Tanh | E::Logistic | E::Sin | E::Cos | E::Pow => 8,
                E::Div | E::Sqrt | E::Rsqrt | E::Rem => 3,
                _ => 1,
            },
        })
        .sum();
    nodes + k.outputs.len()
}

/// The ranges of the outermost axis (of size `outer`) a kernel of `points`
/// domain points, `cost` work each (see [`point_cost`]), runs as.
pub fn blocks(outer: usize, points: usize, cost: usize) -> Vec<(usize, usize)> {
    let work = points.saturating_mul(cost.max(1));
    // A power of two of blocks divides evenly among the usual thread counts.
    let n = if work < MIN_WORK {
        1
    } else {
        work.div_ceil(BLOCK_WORK)
            .next_power_of_two()
            .clamp(1, MAX_BLOCKS)
            .min(outer.max(1))
            .min((points / MIN_BLOCK_POINTS).max(1))
    };
    // Boundaries on multiples of 64 rows (when there are that many) keep
    // vector loops aligned within long rank-1 domains. Kernels rely on it:
    // a rank-1 kernel whose size is a multiple of its vector width has no
    // scalar tail. A rank-1 domain always has that many rows here, since
    // `outer == points >= 64 * n` (blocks hold at least 64 points).
    let align = if outer >= 64 * n { 64 } else { 1 };
    let cut = |i: usize| if i == n { outer } else { outer * i / n / align * align };
    (0..n).map(|i| (cut(i), cut(i + 1))).filter(|(lo, hi)| lo < hi || n == 1).collect()
}

/// A table of buffer pointers for one block's call.
pub(crate) struct Table(pub Vec<*mut u8>);

impl Table {
    /// Pointer `i` (a method, so closures capture the whole table, which is `Sync`).
    pub(crate) fn at(&self, i: usize) -> *mut u8 {
        self.0[i]
    }
}

// SAFETY: the tables of one step address disjoint output regions (or
// per-block partial buffers) and shared read-only inputs; the kernels that
// use them only write through their own block's output pointers.
unsafe impl Send for Table {}
// SAFETY: as above; a table is only read while the kernels run.
unsafe impl Sync for Table {}

/// Runs `f` once per block, `tables[i]` with `ranges[i]`, on up to
/// [`threads`] threads.
///
/// # Safety
/// Each table must be valid for `f` over its range, and the blocks' writes
/// must not overlap (see [`Table`]).
pub(crate) unsafe fn run_blocks(f: KernelFn, tables: &[Table], ranges: &[(usize, usize)]) {
    let call = |i: usize| {
        let (lo, hi) = ranges[i];
        // SAFETY: guaranteed by the caller.
        unsafe { f.call(tables[i].0.as_ptr(), lo, hi) };
    };
    let workers = threads().min(ranges.len());
    if workers <= 1 {
        (0..ranges.len()).for_each(call);
        return;
    }
    let next = AtomicUsize::new(0);
    let work = |_: usize| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= ranges.len() {
            break;
        }
        call(i);
    };
    crate::pool::run(workers, &work);
}

/// Calls `f(worker, i)` for every `i < count` on `workers` threads; each
/// worker has its own index in `0..workers` (for per-worker buffers).
pub(crate) fn for_each_by_worker(count: usize, workers: usize, f: impl Fn(usize, usize) + Sync) {
    if workers <= 1 || count <= 1 {
        (0..count).for_each(|i| f(0, i));
        return;
    }
    let next = AtomicUsize::new(0);
    let work = |w: usize| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            break;
        }
        f(w, i);
    };
    crate::pool::run(workers, &work);
}

/// Calls `f(i, &mut items[i])` for every item, on up to [`threads`] threads.
pub(crate) fn for_each_mut<T: Send, F: Fn(usize, &mut T) + Sync>(items: &mut [T], f: F) {
    let workers = threads().min(items.len());
    if workers <= 1 {
        items.iter_mut().enumerate().for_each(|(i, it)| f(i, it));
        return;
    }
    let cells: Vec<std::sync::Mutex<&mut T>> = items.iter_mut().map(std::sync::Mutex::new).collect();
    let next = AtomicUsize::new(0);
    let work = |_: usize| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(cell) = cells.get(i) else { break };
        // Each item is taken by exactly one worker, so the lock never waits.
        let mut item = match cell.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(i, &mut item);
    };
    crate::pool::run(workers, &work);
}

/// `dst[i] = dst[i] ⊕ src[i]` for `n` elements of `dtype`, with the
/// reduction's semantics (NaN-propagating max and min, wrapping integers).
///
/// # Safety
/// `dst` and `src` must each address `n` elements of `dtype`, not overlapping.
pub(crate) unsafe fn combine(op: ReduceOp, dtype: DType, dst: *mut u8, src: *const u8, n: usize) {
    fn go<T: Copy>(dst: *mut u8, src: *const u8, n: usize, f: impl Fn(T, T) -> T) {
        // SAFETY: guaranteed by `combine`'s caller.
        let (d, s) = unsafe {
            (std::slice::from_raw_parts_mut(dst as *mut T, n), std::slice::from_raw_parts(src as *const T, n))
        };
        for (a, &b) in d.iter_mut().zip(s) {
            *a = f(*a, b);
        }
    }
    fn fmax<T: PartialOrd + Copy + std::ops::Add<Output = T>>(a: T, b: T, nan: impl Fn(T) -> bool) -> T {
        if nan(a) || nan(b) {
            a + b
        } else if a > b {
            a
        } else {
            b
        }
    }
    fn fmin<T: PartialOrd + Copy + std::ops::Add<Output = T>>(a: T, b: T, nan: impl Fn(T) -> bool) -> T {
        if nan(a) || nan(b) {
            a + b
        } else if a < b {
            a
        } else {
            b
        }
    }
    match (dtype, op) {
        (DType::F32, ReduceOp::Sum) => go::<f32>(dst, src, n, |a, b| a + b),
        (DType::F32, ReduceOp::Prod) => go::<f32>(dst, src, n, |a, b| a * b),
        (DType::F32, ReduceOp::Max) => go::<f32>(dst, src, n, |a, b| fmax(a, b, f32::is_nan)),
        (DType::F32, ReduceOp::Min) => go::<f32>(dst, src, n, |a, b| fmin(a, b, f32::is_nan)),
        (DType::F64, ReduceOp::Sum) => go::<f64>(dst, src, n, |a, b| a + b),
        (DType::F64, ReduceOp::Prod) => go::<f64>(dst, src, n, |a, b| a * b),
        (DType::F64, ReduceOp::Max) => go::<f64>(dst, src, n, |a, b| fmax(a, b, f64::is_nan)),
        (DType::F64, ReduceOp::Min) => go::<f64>(dst, src, n, |a, b| fmin(a, b, f64::is_nan)),
        (DType::I32, ReduceOp::Sum) => go::<i32>(dst, src, n, i32::wrapping_add),
        (DType::I32, ReduceOp::Prod) => go::<i32>(dst, src, n, i32::wrapping_mul),
        (DType::I32, ReduceOp::Max) => go::<i32>(dst, src, n, i32::max),
        (DType::I32, ReduceOp::Min) => go::<i32>(dst, src, n, i32::min),
        // Reductions are numeric; a boolean one cannot be built.
        (DType::Bool, _) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_axis_in_order() {
        assert_eq!(blocks(10, 100, 4), vec![(0, 10)]);
        assert_eq!(blocks(0, 0, 4), vec![(0, 0)]);
        // A heavy kernel splits at fewer points than a light one.
        assert_eq!(blocks(116, 116 * 114, 4).len(), 1);
        assert!(blocks(116, 116 * 114, 40).len() > 1);
        for (outer, points, cost) in
            [(11600, 11600 * 114, 4), (1 << 20, 1 << 20, 4), (5, 5 << 17, 4), (3000, 3000 * 100, 4), (9000, 9000, 100)]
        {
            let b = blocks(outer, points, cost);
            assert!(b.len() > 1, "{outer} {points}");
            assert_eq!(b[0].0, 0);
            assert_eq!(b[b.len() - 1].1, outer);
            assert!(b.windows(2).all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1));
            if outer == points {
                // A rank-1 kernel with no scalar tail relies on this.
                assert!(b.iter().all(|&(lo, _)| lo % 64 == 0), "{b:?}");
            }
        }
    }
}
