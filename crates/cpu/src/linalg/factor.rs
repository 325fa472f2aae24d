//! Matrix factorizations with the IR's semantics: Cholesky (lower factor, NaN
//! for a matrix that is not positive definite) and LU with partial pivoting
//! (packed factors, LAPACK-style pivots and the row permutation).

use super::{check_len, Float, LinalgError, MatDims};
use faer::dyn_stack::{MemStack, StackReq};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::lu::partial_pivoting::factor::{lu_in_place, lu_in_place_scratch};
use faer::{MatMut, MatRef, Par};

/// Checks that a faer scratch stack can hold `req`.
fn check_stack(op: &'static str, stack: &MemStack, req: StackReq, dims: MatDims) -> Result<(), LinalgError> {
    if stack.can_hold(req) {
        Ok(())
    } else {
        Err(LinalgError::Scratch { op, shapes: dims.to_string(), got: stack.len_bytes(), want: req.size_bytes() })
    }
}

/// The scratch stack [`cholesky`] needs for `n x n` matrices.
pub fn cholesky_scratch<T: Float>(n: usize) -> StackReq {
    StackReq::all_of(&[StackReq::new::<T>(n * n), cholesky_in_place_scratch::<T>(n, Par::Seq, Default::default())])
}

/// The lower Cholesky factor `L` (`A = L Lᵀ`) of each matrix of `a`
/// (`dims.batch` row-major `n x n` matrices) into `out`. Only the lower
/// triangle of `a` is read and the upper triangle of `out` is zero; a matrix
/// that is not positive definite (a pivot that is not positive, or NaN) gives
/// a factor of NaNs. `stack` holds at least [`cholesky_scratch`]`(n)`.
///
/// ```
/// use arrayjit_cpu::linalg::{cholesky, cholesky_scratch, MatDims, MemBuffer, MemStack};
///
/// let dims = MatDims { batch: 2, rows: 2, cols: 2 };
/// let a = [4.0, f64::NAN, 2.0, 5.0, /* not positive definite: */ 1.0, 0.0, 2.0, 1.0];
/// let mut l = [0.0; 8];
/// let mut buf = MemBuffer::new(cholesky_scratch::<f64>(2));
/// cholesky(&a, &mut l, dims, MemStack::new(&mut buf))?;
/// assert_eq!(&l[..4], &[2.0, 0.0, 1.0, 2.0]);
/// assert!(l[4..].iter().all(|x| x.is_nan()));
/// # Ok::<(), arrayjit_cpu::linalg::LinalgError>(())
/// ```
pub fn cholesky<T: Float>(a: &[T], out: &mut [T], dims: MatDims, stack: &mut MemStack) -> Result<(), LinalgError> {
    const OP: &str = "cholesky";
    let n = dims.rows;
    if dims.cols != n {
        return Err(LinalgError::Unsupported { op: OP, avals: format!("{dims} (not square)") });
    }
    check_len(OP, "input", a.len(), dims.len(), || dims.to_string())?;
    check_len(OP, "output", out.len(), dims.len(), || dims.to_string())?;
    check_stack(OP, stack, cholesky_scratch::<T>(n), dims)?;
    if n == 0 {
        return Ok(());
    }
    let (mut work, stack) = stack.make_with(n * n, |_| T::ZERO);
    for (ak, lk) in a.chunks_exact(n * n).zip(out.chunks_exact_mut(n * n)) {
        // faer's Cholesky is several times faster on a column-major matrix:
        // factor a column-major copy of A's lower triangle, and copy the
        // factor back. faer's triangle copies between the two layouts took
        // 4 µs each at n = 114, where element-by-element loops took 10–15.
        let mut w = MatMut::from_column_major_slice_mut(&mut work, n, n);
        w.copy_from_triangular_lower(MatRef::from_row_major_slice(ak, n, n));
        let factored = cholesky_in_place(w.as_mut(), Default::default(), Par::Seq, stack, Default::default());
        if factored.is_ok() {
            MatMut::from_row_major_slice_mut(lk, n, n).copy_from_triangular_lower(w.as_ref());
            for (i, row) in lk.chunks_exact_mut(n).enumerate() {
                row[i + 1..].fill(T::ZERO);
            }
        } else {
            lk.fill(T::NAN);
        }
    }
    Ok(())
}

/// The outputs of [`lu`] for `dims.batch` matrices of `m x n`.
#[derive(Debug)]
pub struct LuOut<'a, T> {
    /// `batch * m * n`: unit-lower `L` (below the diagonal) and `U` (on and above it), packed.
    pub lu: &'a mut [T],
    /// `batch * min(m, n)`: row `i` was swapped with row `pivots[i]` (≥ `i`), in order.
    pub pivots: &'a mut [i32],
    /// `batch * m`: `P A = L U` with `(P A)[i] = A[perm[i]]`.
    pub perm: &'a mut [i32],
}

/// The scratch stack [`lu`] needs for matrices of `dims`.
pub fn lu_scratch<T: Float>(dims: MatDims) -> StackReq {
    let m = dims.rows;
    StackReq::all_of(&[
        StackReq::new::<T>(m * dims.cols),
        StackReq::new::<usize>(m),
        StackReq::new::<usize>(m),
        lu_in_place_scratch::<usize, T>(m, dims.cols, Par::Seq, Default::default()),
    ])
}

/// LU factorization with partial pivoting of each `m x n` matrix of `a`, as
/// the IR's `lu` (LAPACK's `getrf`): the pivot of column `j` is the first row
/// at or below `j` of largest magnitude. faer computes it; a matrix whose
/// factors come out non-finite (a zero pivot column, infinities or NaNs in the
/// input) is redone with the unblocked algorithm, which skips the division by
/// a zero pivot as the IR specifies. `stack` holds at least [`lu_scratch`]`(dims)`.
pub fn lu<T: Float>(a: &[T], dims: MatDims, out: LuOut<'_, T>, stack: &mut MemStack) -> Result<(), LinalgError> {
    const OP: &str = "lu";
    let MatDims { batch, rows: m, cols: n } = dims;
    let k = m.min(n);
    check_len(OP, "input", a.len(), dims.len(), || dims.to_string())?;
    check_len(OP, "lu", out.lu.len(), dims.len(), || dims.to_string())?;
    check_len(OP, "pivots", out.pivots.len(), batch * k, || dims.to_string())?;
    check_len(OP, "permutation", out.perm.len(), batch * m, || dims.to_string())?;
    if i32::try_from(m).is_err() {
        return Err(LinalgError::IndexOverflow { op: OP, shapes: dims.to_string() });
    }
    check_stack(OP, stack, lu_scratch::<T>(dims), dims)?;
    for b in 0..batch {
        let a_b = &a[b * m * n..(b + 1) * m * n];
        let lu_b = &mut out.lu[b * m * n..(b + 1) * m * n];
        let piv_b = &mut out.pivots[b * k..(b + 1) * k];
        let perm_b = &mut out.perm[b * m..(b + 1) * m];
        let done = m * n != 0 && a_b.iter().all(|x| x.finite()) && faer_lu(a_b, lu_b, m, n, piv_b, perm_b, stack);
        if !done {
            lu_b.copy_from_slice(a_b);
            unblocked_lu(lu_b, m, n, piv_b, perm_b);
        }
    }
    Ok(())
}

/// faer's blocked LU of one nonempty matrix (`m ≤ i32::MAX`), in a
/// column-major copy (several times faster than on the row-major buffer).
/// Returns `false`, leaving the outputs unspecified, if the factors are not
/// all finite.
fn faer_lu<T: Float>(
    a: &[T],
    lu: &mut [T],
    m: usize,
    n: usize,
    pivots: &mut [i32],
    perm: &mut [i32],
    stack: &mut MemStack,
) -> bool {
    let (mut col_major, stack) = stack.make_with(m * n, |_| T::ZERO);
    MatMut::from_column_major_slice_mut(&mut col_major, m, n).copy_from(MatRef::from_row_major_slice(a, m, n));
    let (mut rows, stack) = stack.make_with(m, |i| i);
    let (mut pos, stack) = stack.make_with(m, |i| i);
    let matrix = MatMut::from_column_major_slice_mut(&mut col_major, m, n);
    lu_in_place(matrix, &mut rows, &mut pos, Par::Seq, stack, Default::default());
    if !col_major.iter().all(|x| x.finite()) {
        return false;
    }
    MatMut::from_row_major_slice_mut(lu, m, n).copy_from(MatRef::from_column_major_slice(&col_major, m, n));
    for (p, &r) in perm.iter_mut().zip(rows.iter()) {
        *p = r as i32;
    }
    // faer keeps its row swaps to itself: replay them from the permutation.
    // `rows[i]` is the original row at position i, `pos` its inverse; step j
    // brings `perm[j]` to position j, from the position it holds then.
    for (i, (r, p)) in rows.iter_mut().zip(pos.iter_mut()).enumerate() {
        (*r, *p) = (i, i);
    }
    for (j, pivot) in pivots.iter_mut().enumerate() {
        let want = perm[j] as usize;
        let from = pos[want];
        *pivot = from as i32;
        let displaced = rows[j];
        rows[j] = want;
        rows[from] = displaced;
        pos[displaced] = from;
        pos[want] = j;
    }
    true
}

/// The unblocked right-looking LU of one matrix, in place: for each column,
/// the first row of largest magnitude is the pivot (a NaN never wins), the
/// rows are swapped whole, the column below a nonzero pivot is divided by it
/// (a zero pivot skips the division), and the trailing block gets the rank-1 update.
fn unblocked_lu<T: Float>(a: &mut [T], m: usize, n: usize, pivots: &mut [i32], perm: &mut [i32]) {
    for (i, p) in perm.iter_mut().enumerate() {
        *p = i as i32;
    }
    for j in 0..m.min(n) {
        let mut p = j;
        for i in j + 1..m {
            if a[i * n + j].magnitude() > a[p * n + j].magnitude() {
                p = i;
            }
        }
        pivots[j] = p as i32;
        if p != j {
            for c in 0..n {
                a.swap(j * n + c, p * n + c);
            }
            perm.swap(j, p);
        }
        let pivot = a[j * n + j];
        if pivot != T::ZERO {
            for i in j + 1..m {
                a[i * n + j] /= pivot;
            }
        }
        for i in j + 1..m {
            let l = a[i * n + j];
            for c in j + 1..n {
                let u = a[j * n + c];
                a[i * n + c] -= l * u;
            }
        }
    }
}
