//! `cholesky_inverse`: the inverse of a symmetric positive-definite matrix
//! from its Cholesky factor, `(L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹`, in the order LAPACK's
//! `potri` uses: `W = L⁻¹`, then `Wᵀ W`. Each is a triangular product of
//! n³/6 multiply-adds; two general triangular solves against the identity
//! would do three times that work, most of it on zeros.
//!
//! Both passes run as register blocks ([`super::blocks`]) on `W` in a
//! scratch matrix padded with zeros to whole blocks.

use super::blocks::{block, cols, madd, padded, ROWS};
use super::{check_len, Float, LinalgError, MatDims, MemStack, StackReq};

/// The scratch stack [`cholesky_inverse`] needs for `n x n` factors.
pub fn cholesky_inverse_scratch<T: Float>(n: usize) -> StackReq {
    let (rows, stride) = padded::<T>(n);
    StackReq::new::<T>(rows * stride + ROWS * n)
}

/// `(L Lᵀ)⁻¹` for each factor of `l` (`dims.batch` row-major `n x n` lower
/// factors; only the lower triangle is read) into `out`, which comes out
/// exactly symmetric. A zero pivot divides by zero: the result then holds
/// infinities or NaNs, though not in the same elements as the reference
/// interpreter's (which solves against the identity's zeros too).
/// `stack` holds at least [`cholesky_inverse_scratch`]`(n)`.
///
/// ```
/// use arrayjit_cpu::linalg::{cholesky_inverse, cholesky_inverse_scratch, MatDims, MemBuffer, MemStack};
///
/// // L = [[2, 0], [1, 1]] (the 99 is never read): L Lᵀ = [[4, 2], [2, 2]].
/// let mut inv = [0.0; 4];
/// let mut buf = MemBuffer::new(cholesky_inverse_scratch::<f64>(2));
/// let dims = MatDims { batch: 1, rows: 2, cols: 2 };
/// cholesky_inverse(&[2.0, 99.0, 1.0, 1.0], &mut inv, dims, MemStack::new(&mut buf))?;
/// assert_eq!(inv, [0.5, -0.5, -0.5, 1.0]);
/// # Ok::<(), arrayjit_cpu::linalg::LinalgError>(())
/// ```
pub fn cholesky_inverse<T: Float>(
    l: &[T],
    out: &mut [T],
    dims: MatDims,
    stack: &mut MemStack,
) -> Result<(), LinalgError> {
    const OP: &str = "cholesky_inverse";
    let n = dims.rows;
    if dims.cols != n {
        return Err(LinalgError::Unsupported { op: OP, avals: format!("{dims} (not square)") });
    }
    check_len(OP, "factor", l.len(), dims.len(), || dims.to_string())?;
    check_len(OP, "output", out.len(), dims.len(), || dims.to_string())?;
    let req = cholesky_inverse_scratch::<T>(n);
    if !stack.can_hold(req) {
        let (got, want) = (stack.len_bytes(), req.size_bytes());
        return Err(LinalgError::Scratch { op: OP, shapes: dims.to_string(), got, want });
    }
    if n == 0 {
        return Ok(());
    }
    let (rows, stride) = padded::<T>(n);
    let (mut scratch, _) = stack.make_with(rows * stride + ROWS * n, |_| T::ZERO);
    let (w, l_block) = scratch.split_at_mut(rows * stride);
    let shape = Shape { n, stride };
    #[cfg(target_arch = "x86_64")]
    let fma = super::blocks::fma_available();
    for (m, (lk, ok)) in l.chunks_exact(n * n).zip(out.chunks_exact_mut(n * n)).enumerate() {
        // `W` must start at zero; `make_with` zeroed it for the first matrix.
        if m > 0 {
            w.fill(T::ZERO);
        }
        #[cfg(target_arch = "x86_64")]
        if fma {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            unsafe { invert_fma(lk, w, l_block, ok, shape) };
            continue;
        }
        if cols::<T>() == 16 {
            invert::<T, false, 16>(lk, w, l_block, ok, shape);
        } else {
            invert::<T, false, 8>(lk, w, l_block, ok, shape);
        }
    }
    Ok(())
}

/// The factor's order and the row stride of the padded `W`.
#[derive(Clone, Copy)]
struct Shape {
    n: usize,
    stride: usize,
}

/// [`invert`] compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn invert_fma<T: Float>(l: &[T], w: &mut [T], l_block: &mut [T], out: &mut [T], shape: Shape) {
    if cols::<T>() == 16 {
        invert::<T, true, 16>(l, w, l_block, out, shape)
    } else {
        invert::<T, true, 8>(l, w, l_block, out, shape)
    }
}

/// `W = L⁻¹` into the padded `w`, which holds zeros, then `out = Wᵀ W`, by
/// blocks `C` (= [`cols`]) columns wide. `l_block` (`ROWS · n` elements) is
/// scratch: each block of the factor's rows is packed there, transposed.
#[inline(always)]
fn invert<T: Float, const FMA: bool, const C: usize>(
    l: &[T],
    w: &mut [T],
    l_block: &mut [T],
    out: &mut [T],
    shape: Shape,
) {
    let Shape { n, stride } = shape;
    let c = C;
    // W = L⁻¹ by blocks of rows: row i is -(Σ_{k<i} L[i,k] W[k,..]) / L[i,i],
    // with 1 / L[i,i] on the diagonal. The sums over the rows of earlier
    // blocks run as blocks; those over the block's own rows, one by one.
    for i0 in (0..n).step_by(ROWS) {
        // L[i0 + r, k] at k · ROWS + r, zero for the rows past n.
        for (k, lk) in l_block.chunks_exact_mut(ROWS).take(i0).enumerate() {
            for (r, x) in lk.iter_mut().enumerate() {
                *x = if i0 + r < n { l[(i0 + r) * n + k] } else { T::ZERO };
            }
        }
        for j0 in (0..i0).step_by(c) {
            // W[k, j] = 0 for k < j: the rows before j0 add nothing.
            let acc = block::<T, FMA, C>(j0..i0, l_block, ROWS, w, stride, j0);
            for (r, sums) in acc.iter().enumerate() {
                w[(i0 + r) * stride + j0..][..c].copy_from_slice(sums);
            }
        }
        for i in i0..(i0 + ROWS).min(n) {
            let (done, rest) = w.split_at_mut(i * stride);
            let row = &mut rest[..=i];
            for k in i0..i {
                let lik = l[i * n + k];
                for (a, &x) in row[..=k].iter_mut().zip(&done[k * stride..]) {
                    *a = madd::<T, FMA>(lik, x, *a);
                }
            }
            let d = T::ONE / l[i * n + i];
            for a in row[..i].iter_mut() {
                *a = -(*a * d);
            }
            row[i] = d;
        }
    }
    // out = Wᵀ W by blocks: out[i, j] = Σ_k W[k,i] W[k,j], where the rows
    // k < i0 of a block of rows i0.. add nothing (W[k, i] = 0 for k < i). A
    // block writes the lower triangle's rows and, from the same sums, the
    // upper triangle's columns, so the result is exactly symmetric; where a
    // block crosses the diagonal its two halves are the same sums.
    let w = &*w;
    for i0 in (0..n).step_by(ROWS) {
        let block_rows = ROWS.min(n - i0);
        let end = (i0 + ROWS).min(n);
        for j0 in (0..end).step_by(c) {
            let acc = block::<T, FMA, C>(i0..n, &w[i0..], stride, w, stride, j0);
            let width = c.min(end - j0);
            for (r, sums) in acc.iter().enumerate().take(block_rows) {
                out[(i0 + r) * n + j0..][..width].copy_from_slice(&sums[..width]);
            }
            for (dc, j) in (j0..(j0 + c).min(i0)).enumerate() {
                for (r, sums) in acc.iter().enumerate().take(block_rows) {
                    out[j * n + i0 + r] = sums[dc];
                }
            }
        }
    }
}

/// The portable path of [`cholesky_inverse`] for one factor, whatever the
/// machine has, for tests.
#[cfg(test)]
pub(super) fn invert_portable<T: Float, const C: usize>(l: &[T], out: &mut [T], n: usize) {
    let (rows, stride) = padded::<T>(n);
    let (mut w, mut l_block) = (vec![T::ZERO; rows * stride], vec![T::ZERO; ROWS * n]);
    invert::<T, false, C>(l, &mut w, &mut l_block, out, Shape { n, stride })
}
