//! Triangular solves `op(A) X = B` and `X op(A) = B` in place through faer,
//! reading only the named triangle of `A` (and not its diagonal when unit).

use super::{check_len, Float, LinalgError, MatDims};
use faer::linalg::triangular_solve as ts;
use faer::{MatMut, MatRef, Par};

/// The flags of the IR's `triangular_solve`: solve `op(A) X = B`
/// (`left_side`) or `X op(A) = B`, with `op(A) = Aᵀ` when `transpose_a`,
/// reading `A`'s `lower` (else upper) triangle, and taking its diagonal as
/// ones without reading it when `unit_diagonal`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TriangularSolve {
    pub left_side: bool,
    pub lower: bool,
    pub transpose_a: bool,
    pub unit_diagonal: bool,
}

/// Solves, for each batch element, the triangular system `flags` names with
/// `A` from `a` (row-major `n x n`) and `B` from `b` (row-major, `dims`),
/// writing `X` (same shape as `B`) to `out`. `n` is `dims.rows` when
/// `left_side`, else `dims.cols`. A zero on the used diagonal divides by
/// zero (IEEE infinities and NaNs).
///
/// ```
/// use arrayjit_cpu::linalg::{triangular_solve, MatDims, TriangularSolve};
///
/// // A = [[2, 0], [1, 1]] (the 99 is above the diagonal and never read): A x = [2, 3].
/// let flags = TriangularSolve { left_side: true, lower: true, ..Default::default() };
/// let mut x = [0.0; 2];
/// triangular_solve(&[2.0, 99.0, 1.0, 1.0], &[2.0, 3.0], &mut x, MatDims { batch: 1, rows: 2, cols: 1 }, flags)?;
/// assert_eq!(x, [1.0, 2.0]);
/// # Ok::<(), arrayjit_cpu::linalg::LinalgError>(())
/// ```
pub fn triangular_solve<T: Float>(
    a: &[T],
    b: &[T],
    out: &mut [T],
    dims: MatDims,
    flags: TriangularSolve,
) -> Result<(), LinalgError> {
    const OP: &str = "triangular_solve";
    let MatDims { batch, rows, cols } = dims;
    let n = if flags.left_side { rows } else { cols };
    let shapes = || format!("{batch} matrices of {n}x{n} and right-hand sides of {rows}x{cols}");
    check_len(OP, "matrix", a.len(), batch * n * n, shapes)?;
    check_len(OP, "right-hand side", b.len(), dims.len(), shapes)?;
    check_len(OP, "output", out.len(), dims.len(), shapes)?;
    out.copy_from_slice(b);
    if dims.is_empty() {
        return Ok(());
    }
    // The matrix actually solved with, M = op(A), is lower triangular exactly when `lower != transpose_a`.
    let m_lower = flags.lower != flags.transpose_a;
    for (ak, xk) in a.chunks_exact(n * n).zip(out.chunks_exact_mut(rows * cols)) {
        let a_view = MatRef::from_row_major_slice(ak, n, n);
        let m = if flags.transpose_a { a_view.transpose() } else { a_view };
        let x = MatMut::from_row_major_slice_mut(xk, rows, cols);
        if flags.left_side {
            solve_left(m, m_lower, flags.unit_diagonal, x);
        } else {
            // X M = B  is  Mᵀ Xᵀ = Bᵀ; the transposes are views with swapped strides.
            solve_left(m.transpose(), !m_lower, flags.unit_diagonal, x.transpose_mut());
        }
    }
    Ok(())
}

/// `M X = B` in place in `x`, reading only `M`'s lower (or upper) triangle.
fn solve_left<T: Float>(m: MatRef<'_, T>, lower: bool, unit: bool, x: MatMut<'_, T>) {
    match (lower, unit) {
        (true, false) => ts::solve_lower_triangular_in_place(m, x, Par::Seq),
        (true, true) => ts::solve_unit_lower_triangular_in_place(m, x, Par::Seq),
        (false, false) => ts::solve_upper_triangular_in_place(m, x, Par::Seq),
        (false, true) => ts::solve_unit_upper_triangular_in_place(m, x, Par::Seq),
    }
}
