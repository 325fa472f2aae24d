//! Linear algebra: dot_general, cholesky, cholesky_inverse, triangular_solve
//! and lu, as the textbook loops.
//!
//! `dot_general` works in the operands' type, with `f32` products summed in
//! `f64` and rounded once and `i32` wrapping. The matrix factorizations and the
//! triangular solve widen `f32` to `f64` exactly, compute in `f64` and round
//! each result once. Operands `[..., m, n]` are batches of row-major matrices,
//! processed one after another.

use crate::index::{indices, ravel};
use crate::typed::{array, from_f64s, to_f64s, typed, with_num, Elem, Num};
use crate::EvalError;
use arrayjit_ir::prim::{DotDims, Linalg};
use arrayjit_ir::{AVal, Data, HostArray};

/// Evaluates a linear-algebra primitive; `outs` are the rule's output types.
pub(crate) fn eval(op: &Linalg, args: &[&HostArray], outs: &[AVal]) -> Result<Vec<HostArray>, EvalError> {
    let name = op.name();
    let out =
        outs.first().ok_or_else(|| EvalError::Internal { op: name, message: "the rule gave no outputs".into() })?;
    match op {
        Linalg::DotGeneral(d) => {
            let (a, b) = (args[0], args[1]);
            let internal = || EvalError::Internal { op: name, message: format!("cannot multiply {}", a.aval()) };
            let data = with_num!(a.dtype(), T => T::wrap(dot_general::<T>(name, a, b, d, &out.shape)?),
                bool => return Err(internal()));
            Ok(vec![array(name, &out.shape, data)?])
        }
        Linalg::Cholesky => {
            let a = to_f64s(name, args[0])?;
            let (batch, n, _) = matrix_dims(args[0]);
            let l: Vec<f64> = (0..batch).flat_map(|k| cholesky(&a[k * n * n..(k + 1) * n * n], n)).collect();
            Ok(vec![array(name, &out.shape, from_f64s(name, out.dtype, l)?)?])
        }
        Linalg::CholeskyInverse => {
            let a = to_f64s(name, args[0])?;
            let (batch, n, _) = matrix_dims(args[0]);
            let x: Vec<f64> = (0..batch).flat_map(|k| cholesky_inverse(&a[k * n * n..(k + 1) * n * n], n)).collect();
            Ok(vec![array(name, &out.shape, from_f64s(name, out.dtype, x)?)?])
        }
        Linalg::TriangularSolve { left_side, lower, transpose_a, unit_diagonal } => {
            let (a, b) = (to_f64s(name, args[0])?, to_f64s(name, args[1])?);
            let (batch, n, _) = matrix_dims(args[0]);
            let (_, rows, cols) = matrix_dims(args[1]);
            let m = effective_matrix(*lower, *transpose_a, *unit_diagonal);
            let x: Vec<f64> = (0..batch)
                .flat_map(|k| {
                    let ak = &a[k * n * n..(k + 1) * n * n];
                    let bk = &b[k * rows * cols..(k + 1) * rows * cols];
                    if *left_side {
                        solve_left(&m(ak, n), n, *lower != *transpose_a, bk, cols)
                    } else {
                        // X M = B  is  Mᵀ Xᵀ = Bᵀ: solve on the transposes.
                        let mt = transpose(&m(ak, n), n, n);
                        let xt = solve_left(&mt, n, *lower == *transpose_a, &transpose(bk, rows, cols), rows);
                        transpose(&xt, cols, rows)
                    }
                })
                .collect();
            Ok(vec![array(name, &out.shape, from_f64s(name, out.dtype, x)?)?])
        }
        Linalg::Lu => {
            let a = to_f64s(name, args[0])?;
            let (batch, m, n) = matrix_dims(args[0]);
            let (mut lu_all, mut piv_all, mut perm_all) = (Vec::new(), Vec::new(), Vec::new());
            for k in 0..batch {
                let (lu_k, piv, perm) = lu(&a[k * m * n..(k + 1) * m * n], m, n);
                lu_all.extend(lu_k);
                piv_all.extend(piv.into_iter().map(|p| to_i32(name, p)).collect::<Result<Vec<_>, _>>()?);
                perm_all.extend(perm.into_iter().map(|p| to_i32(name, p)).collect::<Result<Vec<_>, _>>()?);
            }
            let shape = |i: usize| outs.get(i).map(|a| a.shape.dims()).unwrap_or(&[]);
            Ok(vec![
                array(name, shape(0), from_f64s(name, out.dtype, lu_all)?)?,
                array(name, shape(1), Data::I32(piv_all))?,
                array(name, shape(2), Data::I32(perm_all))?,
            ])
        }
    }
}

/// `(batch count, rows, columns)` of a `[..., rows, columns]` array (rank ≥ 2,
/// as the rules require; lower ranks read as one matrix).
fn matrix_dims(a: &HostArray) -> (usize, usize, usize) {
    match a.shape().dims() {
        [batch @ .., r, c] => (batch.iter().product(), *r, *c),
        [c] => (1, 1, *c),
        [] => (1, 1, 1),
    }
}

fn to_i32(name: &'static str, v: usize) -> Result<i32, EvalError> {
    i32::try_from(v).map_err(|_| EvalError::Internal { op: name, message: format!("index {v} does not fit in i32") })
}

/// `dot_general`: output element `(batch, lhs free, rhs free)` is the sum, over
/// every contracting multi-index `c`, of `lhs[batch, lhs free, c] * rhs[batch, rhs free, c]`
/// (each operand's dimensions in their own positions).
fn dot_general<T: Num>(
    name: &'static str,
    a: &HostArray,
    b: &HostArray,
    d: &DotDims,
    out_dims: &[usize],
) -> Result<Vec<T>, EvalError> {
    let (xa, xb) = (typed::<T>(name, a)?, typed::<T>(name, b)?);
    let (ad, bd) = (a.shape().dims(), b.shape().dims());
    let (lhs_free, rhs_free) = (d.lhs_free(ad.len()), d.rhs_free(bd.len()));
    let nb = d.lhs_batch.len();
    let contract_sizes: Vec<usize> = d.lhs_contract.iter().map(|&k| ad[k]).collect();
    let mut result = Vec::with_capacity(out_dims.iter().product());
    for o in indices(out_dims) {
        let (mut ia, mut ib) = (vec![0; ad.len()], vec![0; bd.len()]);
        for (k, (&l, &r)) in d.lhs_batch.iter().zip(&d.rhs_batch).enumerate() {
            ia[l] = o[k];
            ib[r] = o[k];
        }
        for (k, &l) in lhs_free.iter().enumerate() {
            ia[l] = o[nb + k];
        }
        for (k, &r) in rhs_free.iter().enumerate() {
            ib[r] = o[nb + lhs_free.len() + k];
        }
        let mut acc = T::ZERO;
        for c in indices(&contract_sizes) {
            for (k, (&l, &r)) in d.lhs_contract.iter().zip(&d.rhs_contract).enumerate() {
                ia[l] = c[k];
                ib[r] = c[k];
            }
            acc = T::add(acc, T::mul(xa[ravel(&ia, ad)].widen(), xb[ravel(&ib, bd)].widen()));
        }
        result.push(T::narrow(acc));
    }
    Ok(result)
}

/// The lower Cholesky factor of one `n x n` matrix, reading only its lower
/// triangle. If a pivot `a[j][j] - Σ L[j][k]²` is not positive (or is NaN) the
/// matrix is not positive definite and the whole factor is NaN.
fn cholesky(a: &[f64], n: usize) -> Vec<f64> {
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let s = a[j * n + j] - (0..j).map(|k| l[j * n + k] * l[j * n + k]).sum::<f64>();
        // Written so that a NaN pivot fails too (`s <= 0` would let it through).
        if s.is_nan() || s <= 0.0 {
            return vec![f64::NAN; n * n];
        }
        let d = s.sqrt();
        l[j * n + j] = d;
        for i in j + 1..n {
            let t = a[i * n + j] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            l[i * n + j] = t / d;
        }
    }
    l
}

/// `(L Lᵀ)⁻¹` for one `n x n` factor `L` (its lower triangle): the
/// solution of `L Y = I` by forward substitution, then of `Lᵀ X = Y` by
/// backward substitution.
fn cholesky_inverse(a: &[f64], n: usize) -> Vec<f64> {
    let l = effective_matrix(true, false, false)(a, n);
    let mut eye = vec![0.0; n * n];
    for i in 0..n {
        eye[i * n + i] = 1.0;
    }
    let y = solve_left(&l, n, true, &eye, n);
    solve_left(&transpose(&l, n, n), n, false, &y, n)
}

/// Builds, from `A`, the matrix `M = op(A)` that a triangular solve actually
/// uses: only the named triangle of `A` is read (the other is taken as 0), the
/// diagonal is 1 when `unit_diagonal`, and `op` transposes when `transpose_a`.
/// `M` is lower triangular exactly when `lower != transpose_a`.
fn effective_matrix(lower: bool, transpose_a: bool, unit_diagonal: bool) -> impl Fn(&[f64], usize) -> Vec<f64> {
    move |a, n| {
        let read = |r: usize, c: usize| {
            if r == c {
                if unit_diagonal {
                    1.0
                } else {
                    a[r * n + c]
                }
            } else if (lower && r > c) || (!lower && r < c) {
                a[r * n + c]
            } else {
                0.0
            }
        };
        let mut m = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                m[i * n + j] = if transpose_a { read(j, i) } else { read(i, j) };
            }
        }
        m
    }
}

/// Solves `M X = B` for triangular `n x n` `M` and `n x k` `B`: forward
/// substitution when `M` is lower triangular, backward otherwise. A zero on the
/// diagonal divides by zero (IEEE: infinities and NaNs), as the backends do.
fn solve_left(m: &[f64], n: usize, m_lower: bool, b: &[f64], k: usize) -> Vec<f64> {
    let mut x = vec![0.0; n * k];
    let order: Vec<usize> = if m_lower { (0..n).collect() } else { (0..n).rev().collect() };
    for col in 0..k {
        for &i in &order {
            // The already solved rows: those before i (lower) or after it (upper).
            let solved = if m_lower { 0..i } else { i + 1..n };
            let s: f64 = solved.map(|j| m[i * n + j] * x[j * k + col]).sum();
            x[i * k + col] = (b[i * k + col] - s) / m[i * n + i];
        }
    }
    x
}

/// The transpose of a row-major `rows x cols` matrix.
fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}

/// LU factorization with partial pivoting of one `m x n` matrix, as LAPACK's
/// `getf2`: for each column `j < min(m, n)`, the pivot is the first row `p ≥ j`
/// of largest `|a[p][j]|`; rows `j` and `p` are swapped whole; if the pivot is
/// nonzero the column below it is divided by it (a zero pivot skips the
/// division, leaving a zero column); then the trailing submatrix gets the
/// rank-1 update. Returns the packed factors (unit-lower `L` below the
/// diagonal, `U` on and above it), the pivots and the row permutation with
/// `(P A)[i] = A[perm[i]]`.
fn lu(a: &[f64], m: usize, n: usize) -> (Vec<f64>, Vec<usize>, Vec<usize>) {
    let mut a = a.to_vec();
    let mut pivots = Vec::with_capacity(m.min(n));
    let mut perm: Vec<usize> = (0..m).collect();
    for j in 0..m.min(n) {
        // Strict `>` keeps the first of equal magnitudes (and never picks a NaN
        // over the current candidate, as the reference BLAS `idamax`).
        let mut p = j;
        for i in j + 1..m {
            if a[i * n + j].abs() > a[p * n + j].abs() {
                p = i;
            }
        }
        pivots.push(p);
        if p != j {
            for c in 0..n {
                a.swap(j * n + c, p * n + c);
            }
            perm.swap(j, p);
        }
        let pivot = a[j * n + j];
        if pivot != 0.0 {
            for i in j + 1..m {
                a[i * n + j] /= pivot;
            }
        }
        for i in j + 1..m {
            for c in j + 1..n {
                a[i * n + c] -= a[i * n + j] * a[j * n + c];
            }
        }
    }
    (a, pivots, perm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval_prim;
    use crate::test_util::*;
    use arrayjit_ir::DType;

    const FLOATS: [DType; 2] = [DType::F32, DType::F64];

    fn tol(d: DType) -> f64 {
        if d == DType::F32 {
            1e-5
        } else {
            1e-12
        }
    }

    /// `a (m x k) * b (k x n)`, the plain triple loop.
    fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    fn dot(d: DotDims) -> Linalg {
        Linalg::DotGeneral(d)
    }

    fn dims(lc: &[usize], rc: &[usize], lb: &[usize], rb: &[usize]) -> DotDims {
        DotDims { lhs_contract: lc.to_vec(), rhs_contract: rc.to_vec(), lhs_batch: lb.to_vec(), rhs_batch: rb.to_vec() }
    }

    #[test]
    fn dot_general_small_cases() {
        for d in [DType::I32, DType::F32, DType::F64] {
            let a = fl(d, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
            let b = fl(d, &[3, 2], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
            assert_eq!(
                eval1(dot(DotDims::matmul()), [a.clone(), b.clone()]),
                fl(d, &[2, 2], &[58.0, 64.0, 139.0, 154.0])
            );
            // Contract a's dim 0 with b's dim 1: aᵀ bᵀ = (b a)ᵀ, of shape [3, 3].
            let r = eval1(dot(dims(&[0], &[1], &[], &[])), [a.clone(), b.clone()]);
            let want = matmul(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0], &[7.0, 9.0, 11.0, 8.0, 10.0, 12.0], 3, 2, 3);
            assert_eq!(r, fl(d, &[3, 3], &want));
            let v = fl(d, &[3], &[1.0, -1.0, 2.0]);
            assert_eq!(eval1(dot(dims(&[0], &[0], &[], &[])), [v.clone(), v.clone()]), fl(d, &[], &[6.0]));
            let outer = eval1(dot(DotDims::default()), [fl(d, &[2], &[1.0, 2.0]), v.clone()]);
            assert_eq!(outer, fl(d, &[2, 3], &[1.0, -1.0, 2.0, 2.0, -2.0, 4.0]));
            // Contraction over two dimensions at once: the full inner product.
            assert_eq!(
                eval1(dot(dims(&[0, 1], &[1, 0], &[], &[])), [a.clone(), b]),
                fl(d, &[], &[1.0 * 7.0 + 2.0 * 9.0 + 3.0 * 11.0 + 4.0 * 8.0 + 5.0 * 10.0 + 6.0 * 12.0])
            );
            // Empty contraction gives zeros; empty free dims give empty outputs.
            let z = eval1(dot(DotDims::matmul()), [fl(d, &[2, 0], &[]), fl(d, &[0, 3], &[])]);
            assert_eq!(z, fl(d, &[2, 3], &[0.0; 6]));
            assert_eq!(eval1(dot(DotDims::matmul()), [fl(d, &[0, 3], &[]), v.clone()]), fl(d, &[0], &[]));
            assert_eq!(eval1(dot(DotDims::default()), [fl(d, &[], &[3.0]), v]), fl(d, &[3], &[3.0, -3.0, 6.0]));
        }
    }

    #[test]
    fn dot_general_batch_dimensions_anywhere() {
        // lhs [k=2, b=3, m=2] and rhs [n=2, k=2, b=3], batch on lhs dim 1 / rhs dim 2.
        let mut rng = Lcg(7);
        let (av, bv) = (rng.vec(12), rng.vec(12));
        let d = dims(&[0], &[1], &[1], &[2]);
        let r = eval1(dot(d), [f64s(&[2, 3, 2], &av), f64s(&[2, 2, 3], &bv)]);
        assert_eq!(r.shape().dims(), &[3, 2, 2]);
        let mut want = vec![0.0; 12];
        for b in 0..3 {
            for m in 0..2 {
                for n in 0..2 {
                    want[b * 4 + m * 2 + n] = (0..2).map(|k| av[k * 6 + b * 2 + m] * bv[n * 6 + k * 3 + b]).sum();
                }
            }
        }
        assert_close(&vals(&r), &want, 1e-15);
        // The batched matmul layout, in i32.
        let a = i32s(&[2, 1, 2], &[1, 2, 3, 4]);
        let b = i32s(&[2, 2, 1], &[5, 6, 7, 8]);
        let r = eval1(dot(dims(&[2], &[1], &[0], &[0])), [a, b]);
        assert_eq!(r, i32s(&[2, 1, 1], &[17, 53]));
    }

    #[test]
    fn dot_general_accumulation() {
        let r = eval1(dot(dims(&[0], &[0], &[], &[])), [i32s(&[2], &[i32::MAX, 1]), i32s(&[2], &[2, 2])]);
        assert_eq!(r, i32s(&[], &[0]));
        let mut a = vec![1.0e8f32];
        a.extend([1.0f32; 16]);
        let r = eval1(dot(dims(&[0], &[0], &[], &[])), [f32s(&[17], &a), f32s(&[17], &[1.0; 17])]);
        assert_eq!(r, f32s(&[], &[100_000_016.0]));
        let e = eval_prim(&dot(DotDims::matmul()).into(), &[f32s(&[2, 3], &[0.0; 6]), f32s(&[2, 3], &[0.0; 6])]);
        assert!(e.unwrap_err().to_string().contains("cannot contract dimension 1 of f32[2,3]"));
    }

    #[test]
    fn cholesky_exact_cases() {
        for d in FLOATS {
            let a = fl(d, &[3, 3], &[4.0, 12.0, -16.0, 12.0, 37.0, -43.0, -16.0, -43.0, 98.0]);
            let l = [2.0, 0.0, 0.0, 6.0, 1.0, 0.0, -8.0, 5.0, 3.0];
            assert_close(&vals(&eval1(Linalg::Cholesky, [a])), &l, tol(d));
            // The upper triangle is never read.
            let a = fl(d, &[2, 2], &[4.0, f64::NAN, 2.0, 5.0]);
            assert_eq!(eval1(Linalg::Cholesky, [a]), fl(d, &[2, 2], &[2.0, 0.0, 1.0, 2.0]));
            // Not positive definite (or NaN on the diagonal): all NaN, per matrix.
            let a = fl(d, &[3, 2, 2], &[1.0, 2.0, 2.0, 1.0, 9.0, 0.0, 0.0, 4.0, f64::NAN, 0.0, 0.0, 1.0]);
            let r = vals(&eval1(Linalg::Cholesky, [a]));
            assert!(r[..4].iter().all(|v| v.is_nan()), "{r:?}");
            assert_eq!(&r[4..8], &[3.0, 0.0, 0.0, 2.0]);
            assert!(r[8..].iter().all(|v| v.is_nan()), "{r:?}");
            assert!(vals(&eval1(Linalg::Cholesky, [fl(d, &[1, 1], &[0.0])]))[0].is_nan());
            assert_eq!(eval1(Linalg::Cholesky, [fl(d, &[1, 1], &[9.0])]), fl(d, &[1, 1], &[3.0]));
            assert_eq!(eval1(Linalg::Cholesky, [fl(d, &[2, 0, 0], &[])]), fl(d, &[2, 0, 0], &[]));
        }
        assert!(eval_prim(&Linalg::Cholesky.into(), &[i32s(&[1, 1], &[1])]).is_err());
    }

    /// A random symmetric positive-definite `n x n` matrix: `B Bᵀ + n I`.
    fn spd(rng: &mut Lcg, n: usize) -> Vec<f64> {
        let b = rng.vec(n * n);
        let mut a = matmul(&b, &transpose(&b, n, n), n, n, n);
        for i in 0..n {
            a[i * n + i] += n as f64;
        }
        a
    }

    #[test]
    fn cholesky_inverse_cases() {
        for d in FLOATS {
            // L = [[2, 0], [1, 1]] (the NaN above the diagonal is never read): L Lᵀ = [[4, 2], [2, 2]].
            let l = fl(d, &[2, 2], &[2.0, f64::NAN, 1.0, 1.0]);
            assert_eq!(eval1(Linalg::CholeskyInverse, [l]), fl(d, &[2, 2], &[0.5, -0.5, -0.5, 1.0]));
            assert_eq!(eval1(Linalg::CholeskyInverse, [fl(d, &[1, 1], &[4.0])]), fl(d, &[1, 1], &[0.0625]));
            assert_eq!(eval1(Linalg::CholeskyInverse, [fl(d, &[3, 0, 0], &[])]), fl(d, &[3, 0, 0], &[]));
            // A zero pivot divides by zero.
            let r = vals(&eval1(Linalg::CholeskyInverse, [fl(d, &[1, 1], &[0.0])]));
            assert!(r[0].is_infinite(), "{r:?}");
        }
        // Batched: the inverse of each factor's A = L Lᵀ, A · A⁻¹ = I.
        let mut rng = Lcg(7);
        let n = 4;
        let (a0, a1) = (spd(&mut rng, n), spd(&mut rng, n));
        let l = vals(&eval1(Linalg::Cholesky, [fl(DType::F64, &[2, n, n], &[a0.clone(), a1.clone()].concat())]));
        let inv = vals(&eval1(Linalg::CholeskyInverse, [fl(DType::F64, &[2, n, n], &l)]));
        for (k, a) in [a0, a1].iter().enumerate() {
            let prod = matmul(a, &inv[k * n * n..(k + 1) * n * n], n, n, n);
            let eye: Vec<f64> = (0..n * n).map(|i| if i % (n + 1) == 0 { 1.0 } else { 0.0 }).collect();
            assert_close(&prod, &eye, 1e-12);
        }
        assert!(eval_prim(&Linalg::CholeskyInverse.into(), &[i32s(&[1, 1], &[1])]).is_err());
    }

    #[test]
    fn cholesky_reconstructs_random_spd_matrices() {
        let mut rng = Lcg(42);
        for d in FLOATS {
            let n = 5;
            let (a0, a1) = (spd(&mut rng, n), spd(&mut rng, n));
            let x = fl(d, &[2, n, n], &[a0.clone(), a1.clone()].concat());
            let l = vals(&eval1(Linalg::Cholesky, [x.clone()]));
            for (k, a) in [a0, a1].iter().enumerate() {
                let lk = &l[k * n * n..(k + 1) * n * n];
                for i in 0..n {
                    for j in i + 1..n {
                        assert_eq!(lk[i * n + j], 0.0, "upper triangle of the factor");
                    }
                }
                let llt = matmul(lk, &transpose(lk, n, n), n, n, n);
                // Compare with the matrix as the dtype holds it.
                let held = &vals(&x)[k * n * n..(k + 1) * n * n];
                assert_close(&llt, held, 10.0 * tol(d));
                assert_close(held, a, tol(d));
            }
        }
    }

    #[test]
    fn triangular_solve_exact_case() {
        let ts = |left_side, lower, transpose_a| Linalg::TriangularSolve {
            left_side,
            lower,
            transpose_a,
            unit_diagonal: false,
        };
        for d in FLOATS {
            // A = [[2, 0], [1, 1]]: A x = [2, 3] gives x = [1, 2]; Aᵀ x = [4, 1] gives x = [1.5, 1].
            let a = fl(d, &[2, 2], &[2.0, 99.0, 1.0, 1.0]);
            let r = eval1(ts(true, true, false), [a.clone(), fl(d, &[2, 1], &[2.0, 3.0])]);
            assert_eq!(r, fl(d, &[2, 1], &[1.0, 2.0]));
            let r = eval1(ts(true, true, true), [a.clone(), fl(d, &[2, 1], &[4.0, 1.0])]);
            assert_eq!(r, fl(d, &[2, 1], &[1.5, 1.0]));
            // x A = [4, 1]: x = [1.5, 1]; x Aᵀ = [2, 3]: x = [1, 2].
            let r = eval1(ts(false, true, false), [a.clone(), fl(d, &[1, 2], &[4.0, 1.0])]);
            assert_eq!(r, fl(d, &[1, 2], &[1.5, 1.0]));
            let r = eval1(ts(false, true, true), [a.clone(), fl(d, &[1, 2], &[2.0, 3.0])]);
            assert_eq!(r, fl(d, &[1, 2], &[1.0, 2.0]));
            let r = eval1(ts(true, false, false), [a.clone(), fl(d, &[2, 0], &[])]);
            assert_eq!(r, fl(d, &[2, 0], &[]));
            // A zero on the diagonal divides by zero.
            let r = eval1(ts(true, true, false), [fl(d, &[1, 1], &[0.0]), fl(d, &[1, 1], &[1.0])]);
            assert_eq!(vals(&r), vec![f64::INFINITY]);
        }
    }

    #[test]
    fn triangular_solve_every_flag_combination() {
        let mut rng = Lcg(3);
        let (n, k, batch) = (4, 3, 2);
        for d in FLOATS {
            for flags in 0..16 {
                let (left_side, lower, transpose_a, unit_diagonal) =
                    (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0, flags & 8 != 0);
                let op = Linalg::TriangularSolve { left_side, lower, transpose_a, unit_diagonal };
                // A has a strong diagonal; the triangle that must not be read
                // (and the diagonal, when unit) holds NaN, so reading it shows.
                let mut a = Vec::new();
                let mut used = Vec::new();
                for _ in 0..batch {
                    let mut m = vec![0.0; n * n];
                    for i in 0..n {
                        for j in 0..n {
                            let v = if i == j { 3.0 + rng.next() } else { rng.next() };
                            let named = if lower { i > j } else { i < j };
                            let read = named || (i == j && !unit_diagonal);
                            a.push(if read { v } else { f64::NAN });
                            m[i * n + j] = if read {
                                v
                            } else if i == j {
                                1.0
                            } else {
                                0.0
                            };
                        }
                    }
                    used.push(if transpose_a { transpose(&m, n, n) } else { m });
                }
                let (rows, cols) = if left_side { (n, k) } else { (k, n) };
                let b = rng.vec(batch * rows * cols);
                let x = eval1(op, [fl(d, &[batch, n, n], &a), fl(d, &[batch, rows, cols], &b)]);
                assert_eq!(x.shape().dims(), &[batch, rows, cols]);
                let xv = vals(&x);
                let bv = vals(&fl(d, &[b.len()], &b));
                for (s, m) in used.iter().enumerate() {
                    let xs = &xv[s * rows * cols..(s + 1) * rows * cols];
                    let got = if left_side { matmul(m, xs, n, n, k) } else { matmul(xs, m, k, n, n) };
                    // A·X = B (or X·A = B) up to rounding of the dtype.
                    assert_close(&got, &bv[s * rows * cols..(s + 1) * rows * cols], 50.0 * tol(d));
                }
            }
        }
    }

    /// Checks `P A = L U` for packed `lu` output and `perm`.
    fn check_plu(a: &[f64], lu: &[f64], perm: &[i32], m: usize, n: usize, tol: f64) {
        let k = m.min(n);
        let mut l = vec![0.0; m * k];
        let mut u = vec![0.0; k * n];
        for i in 0..m {
            for j in 0..n {
                let v = lu[i * n + j];
                if i > j && j < k {
                    l[i * k + j] = v;
                } else if i <= j && i < k {
                    u[i * n + j] = v;
                }
                if i == j {
                    l[i * k + j] = 1.0;
                }
            }
        }
        let pa: Vec<f64> = perm.iter().flat_map(|&p| a[p as usize * n..(p as usize + 1) * n].to_vec()).collect();
        assert_close(&matmul(&l, &u, m, k, n), &pa, tol);
        // Partial pivoting keeps every multiplier within 1 in magnitude.
        assert!(l.iter().all(|v| v.abs() <= 1.0 + 1e-12), "{l:?}");
    }

    fn lu_parts(x: &HostArray) -> (Vec<f64>, Vec<i32>, Vec<i32>) {
        let r = eval_prim(&Linalg::Lu.into(), std::slice::from_ref(x)).unwrap();
        let ints = |a: &HostArray| match a.data() {
            Data::I32(v) => v.clone(),
            other => panic!("{other:?}"),
        };
        (vals(&r[0]), ints(&r[1]), ints(&r[2]))
    }

    #[test]
    fn lu_exact_cases() {
        for d in FLOATS {
            let (lu, piv, perm) = lu_parts(&fl(d, &[2, 2], &[1.0, 2.0, 3.0, 4.0]));
            assert_close(&lu, &[3.0, 4.0, 1.0 / 3.0, 2.0 / 3.0], tol(d));
            assert_eq!((piv, perm), (vec![1, 1], vec![1, 0]));
            // Ties in magnitude keep the first row.
            let (lu, piv, perm) = lu_parts(&fl(d, &[2, 2], &[1.0, 0.0, -1.0, 1.0]));
            assert_eq!((lu, piv, perm), (vec![1.0, 0.0, -1.0, 1.0], vec![0, 1], vec![0, 1]));
            // A zero column: no division by the zero pivot, no NaN.
            let (lu, piv, perm) = lu_parts(&fl(d, &[2, 2], &[0.0, 1.0, 0.0, 2.0]));
            assert_eq!((lu, piv, perm), (vec![0.0, 1.0, 0.0, 2.0], vec![0, 1], vec![0, 1]));
            // Three rows, pivots that swap twice: perm composes the swaps.
            // [[1, 5], [2, 0], [4, 0]]: row 2 first, then (after the update) the
            // former row 0, now at position 2.
            let (lu, piv, perm) = lu_parts(&fl(d, &[3, 2], &[1.0, 5.0, 2.0, 0.0, 4.0, 0.0]));
            assert_eq!((piv, perm), (vec![2, 2], vec![2, 0, 1]));
            assert_eq!(lu, vec![4.0, 0.0, 0.25, 5.0, 0.5, 0.0]);
            // Empty and 1x1 matrices.
            assert_eq!(lu_parts(&fl(d, &[0, 3], &[])), (vec![], vec![], vec![]));
            assert_eq!(lu_parts(&fl(d, &[2, 0], &[])), (vec![], vec![], vec![0, 1]));
            assert_eq!(lu_parts(&fl(d, &[1, 1], &[-5.0])), (vec![-5.0], vec![0], vec![0]));
        }
        let r = eval_prim(&Linalg::Lu.into(), &[f32s(&[2, 4, 3], &[0.0; 24])]).unwrap();
        let shapes: Vec<_> = r.iter().map(|a| a.aval().to_string()).collect();
        assert_eq!(shapes, ["f32[2,4,3]", "i32[2,3]", "i32[2,4]"]);
    }

    #[test]
    fn lu_reconstructs_square_rectangular_and_batched() {
        let mut rng = Lcg(11);
        for d in FLOATS {
            for (batch, m, n) in [(1, 4, 4), (1, 5, 3), (1, 3, 5), (3, 3, 3), (2, 4, 2), (1, 1, 4)] {
                let a = rng.vec(batch * m * n);
                let x = fl(d, &[batch, m, n], &a);
                let held = vals(&x);
                let (lu, piv, perm) = lu_parts(&x);
                let k = m.min(n);
                for s in 0..batch {
                    let at = |v: &[f64]| v[s * m * n..(s + 1) * m * n].to_vec();
                    let perm_s = &perm[s * m..(s + 1) * m];
                    check_plu(&at(&held), &at(&lu), perm_s, m, n, 20.0 * tol(d));
                    // The permutation is the pivots' swaps applied in order.
                    let mut p: Vec<i32> = (0..m as i32).collect();
                    for (j, &q) in piv[s * k..(s + 1) * k].iter().enumerate() {
                        assert!(q as usize >= j && (q as usize) < m);
                        p.swap(j, q as usize);
                    }
                    assert_eq!(p, perm_s);
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn lu_reconstructs_any_shape(m in 0usize..6, n in 0usize..6, seed in proptest::num::u64::ANY) {
            let a = Lcg(seed).vec(m * n);
            let (lu, piv, perm) = lu_parts(&f64s(&[m, n], &a));
            proptest::prop_assert_eq!(piv.len(), m.min(n));
            let mut sorted = perm.clone();
            sorted.sort();
            proptest::prop_assert_eq!(sorted, (0..m as i32).collect::<Vec<_>>());
            check_plu(&a, &lu, &perm, m, n, 1e-10);
        }
    }
}
