//! Register blocks of multiply-adds for the small triangular kernels
//! ([`super::inverse`]): sums `Σ_k a[k][r] · b[k][j]` over 4 values `r` of
//! one row of `a` and 64 bytes of columns `j` of `b`, kept in registers
//! while `k` runs, and the choice of a copy of a kernel compiled for AVX2
//! and FMA.
//!
//! The kernels are generic over the column count `C` (16 for `f32`, 8 for
//! `f64`: [`cols`]) and over `FMA`, which fuses each multiply-add. Their
//! operands are scratch matrices padded with zeros to whole blocks, or
//! packed copies, so a block never reaches past a row's end; [`block`]
//! checks the lengths once, outside its loop.

use super::Float;

/// Rows of a block.
pub(crate) const ROWS: usize = 4;

/// Columns of a block: 64 bytes of `T`.
pub(crate) const fn cols<T>() -> usize {
    64 / std::mem::size_of::<T>()
}

/// `n` rounded up to whole blocks of rows, and the row stride of a padded
/// matrix: `n` rounded up to whole blocks of columns of `T`, an odd number
/// of them, so that a column's elements spread over the cache's sets (a
/// stride of a power of two bytes maps them onto a few).
pub(crate) fn padded<T>(n: usize) -> (usize, usize) {
    (n.div_ceil(ROWS) * ROWS, (n.div_ceil(cols::<T>()) | 1) * cols::<T>())
}

/// Whether this CPU runs the kernels' AVX2 and FMA copies.
#[cfg(target_arch = "x86_64")]
pub(crate) fn fma_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `c · x + a`, fused when `FMA` (only where the target has the
/// instruction: elsewhere `mul_add` is a library call per element).
#[inline(always)]
pub(crate) fn madd<T: Float, const FMA: bool>(c: T, x: T, a: T) -> T {
    if FMA {
        c.fused_mul_add(x, a)
    } else {
        a + c * x
    }
}

/// `Σ_k a[k · a_stride + r] · b[k · b_stride + j0 ..][..C]` for `k` in `ks`
/// and each of the [`ROWS`] rows `r`, in the order of `ks`: the `ROWS`
/// values of `a` that a step multiplies lie side by side.
#[inline(always)]
pub(crate) fn block<T: Float, const FMA: bool, const C: usize>(
    ks: std::ops::Range<usize>,
    a: &[T],
    a_stride: usize,
    b: &[T],
    b_stride: usize,
    j0: usize,
) -> [[T; C]; ROWS] {
    let mut acc = [[T::ZERO; C]; ROWS];
    let steps = ks.len();
    if steps == 0 {
        return acc;
    }
    // All steps but the last walk whole rows of both operands, so that the
    // loop's length checks do not depend on the step (the compiler takes
    // them out of the loop); the last row may stop short of a stride.
    let (a, b) = (&a[ks.start * a_stride..], &b[ks.start * b_stride + j0..]);
    let body = steps - 1;
    let a_rows = a[..body * a_stride].chunks_exact(a_stride.max(1));
    let b_rows = b[..body * b_stride].chunks_exact(b_stride.max(1));
    for (a_row, b_row) in a_rows.zip(b_rows) {
        step::<T, FMA, C>(&mut acc, a_row, b_row);
    }
    step::<T, FMA, C>(&mut acc, &a[body * a_stride..], &b[body * b_stride..]);
    acc
}

/// One step of [`block`]: the sums of each row `r` plus `a_row[r] · b_row[..C]`.
///
/// A function, not a closure: a closure is compiled with the features of the
/// function that defines it, so one the optimizer chose not to inline into
/// the AVX2 and FMA copy of its caller would make every fused multiply-add a
/// library call (this happened, and made the inverse thirty times slower).
#[inline(always)]
fn step<T: Float, const FMA: bool, const C: usize>(acc: &mut [[T; C]; ROWS], a_row: &[T], b_row: &[T]) {
    let ak: &[T; ROWS] = a_row.first_chunk().expect("a block lies inside its matrix");
    let bk: &[T; C] = b_row.first_chunk().expect("a block lies inside its matrix");
    for (sums, &x) in acc.iter_mut().zip(ak) {
        for (s, &y) in sums.iter_mut().zip(bk) {
            *s = madd::<T, FMA>(x, y, *s);
        }
    }
}
