//! Linear algebra methods: matmul/dot (NumPy semantics), Cholesky, triangular
//! solves, and inverse, determinant, log-determinant and solve. Symmetric
//! positive-definite matrices go through Cholesky (`inv_spd`, `logdet`,
//! `solve_spd`); general ones through LU with partial pivoting (`inv`, `det`,
//! `slogdet`, `solve`). All accept leading batch dimensions. `det` carries a
//! derivative rule of its own, through the adjugate.

use crate::array::{caller, Array};
use crate::bind::{bind, bind1};
use crate::custom::custom_jvp;
use crate::error::{Error, OrRaise, Result};
use crate::ops::elementwise::{binary, select};
use crate::ops::operand::{broadcast_to, convert};
use crate::ops::shape::diag_part;
use arrayjit_ir::prim::{DotDims, Elementwise as E, Linalg, Reduction, ShapeOp};
use arrayjit_ir::{broadcast_shapes, DType, Loc, Shape, TypeError};

fn type_err(op: &str, msg: String, loc: Loc) -> Error {
    Error::Type { source: TypeError::new(op, msg), loc }
}

/// NumPy's `matmul`: vectors are promoted to matrices and back, leading batch
/// dimensions broadcast. Errors name `op`, the method the user called.
pub(crate) fn matmul(op: &str, a: &Array, b: &Array, loc: Loc) -> Result<Array> {
    // Shapes are checked before anything is converted or reshaped, so that the
    // error names the operands as given.
    let (ra, rb) = (a.ndim(), b.ndim());
    if ra == 0 || rb == 0 {
        return Err(type_err(op, format!("needs arrays of rank ≥ 1, got {} and {}", a.aval(), b.aval()), loc));
    }
    // `a`'s last axis meets `b`'s second-to-last (a vector's only one).
    let (ka, kb) = (a.shape()[ra - 1], b.shape()[rb.max(2) - 2]);
    if ka != kb {
        return Err(type_err(
            op,
            format!("cannot multiply {} by {}: the inner sizes {ka} and {kb} differ", a.aval(), b.aval()),
            loc,
        ));
    }
    let batch_of = |x: &Array| x.shape()[..x.ndim().max(2) - 2].to_vec();
    let batch = broadcast_shapes(&batch_of(a), &batch_of(b)).ok_or_else(|| {
        type_err(op, format!("cannot broadcast the batch dimensions of {} and {}", a.aval(), b.aval()), loc)
    })?;
    let dt = DType::promote(a.dtype(), b.dtype());
    let a = convert(a, dt, loc)?;
    let b = convert(b, dt, loc)?;
    if ra == 1 && rb == 1 {
        let dims = DotDims { lhs_contract: vec![0], rhs_contract: vec![0], ..DotDims::default() };
        return bind1(Linalg::DotGeneral(dims).into(), &[&a, &b], loc);
    }
    let a2 = if ra == 1 { bind1(ShapeOp::ExpandDims { axes: vec![0] }.into(), &[&a], loc)? } else { a.clone() };
    let b2 = if rb == 1 { bind1(ShapeOp::ExpandDims { axes: vec![1] }.into(), &[&b], loc)? } else { b.clone() };
    let (ra2, rb2) = (a2.ndim(), b2.ndim());
    let nb = batch.rank();
    let full = |x: &Array, r: usize| -> Result<Array> {
        let mut s = batch.0.clone();
        s.extend_from_slice(&x.shape()[r - 2..]);
        broadcast_to(x, &s, op, loc)
    };
    let a3 = full(&a2, ra2)?;
    let b3 = full(&b2, rb2)?;
    let dims = DotDims {
        lhs_contract: vec![nb + 1],
        rhs_contract: vec![nb],
        lhs_batch: (0..nb).collect(),
        rhs_batch: (0..nb).collect(),
    };
    let out = bind1(Linalg::DotGeneral(dims).into(), &[&a3, &b3], loc)?;
    let r = out.ndim();
    match (ra, rb) {
        (1, _) => bind1(ShapeOp::Squeeze { axes: vec![r - 2] }.into(), &[&out], loc),
        (_, 1) => bind1(ShapeOp::Squeeze { axes: vec![r - 1] }.into(), &[&out], loc),
        _ => Ok(out),
    }
}

/// Options of [`triangular_solve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TriangularSolve {
    /// Solve `op(A) X = B` (true) or `X op(A) = B` (false).
    pub left_side: bool,
    /// Read the lower (true) or upper triangle of `A`.
    pub lower: bool,
    /// `op(A) = Aᵀ` (true) or `A`.
    pub transpose_a: bool,
    /// Assume ones on the diagonal of `A`.
    pub unit_diagonal: bool,
}

impl Default for TriangularSolve {
    fn default() -> TriangularSolve {
        TriangularSolve { left_side: true, lower: true, transpose_a: false, unit_diagonal: false }
    }
}

fn tri(a: &Array, b: &Array, o: TriangularSolve, loc: Loc) -> Result<Array> {
    let prim = Linalg::TriangularSolve {
        left_side: o.left_side,
        lower: o.lower,
        transpose_a: o.transpose_a,
        unit_diagonal: o.unit_diagonal,
    };
    bind1(prim.into(), &[a, b], loc)
}

/// Solves a triangular system; see [`TriangularSolve`].
#[track_caller]
pub fn triangular_solve(a: &Array, b: &Array, options: TriangularSolve) -> Array {
    try_triangular_solve(a, b, options).or_raise()
}

/// [`triangular_solve`], returning errors.
#[track_caller]
pub fn try_triangular_solve(a: &Array, b: &Array, options: TriangularSolve) -> Result<Array> {
    tri(a, b, options, caller())
}

fn last_axis(x: &Array) -> usize {
    x.ndim().saturating_sub(1)
}

/// `[.., n]` i32 → `[.., n, n]` permutation matrix of dtype `dt` with `P[i, j] = (perm[i] == j)`.
fn permutation_matrix(perm: &Array, dt: DType, loc: Loc) -> Result<Array> {
    let n = *perm.shape().last().unwrap_or(&0);
    let mut shape = perm.shape().to_vec();
    shape.push(n);
    let r = shape.len();
    let p = bind1(
        ShapeOp::BroadcastInDim { shape: Shape(shape.clone()), dims: (0..r - 1).collect() }.into(),
        &[perm],
        loc,
    )?;
    let cols = bind1(ShapeOp::Iota { dtype: DType::I32, shape: Shape(shape), axis: r - 1 }.into(), &[], loc)?;
    let eq = bind1(E::Eq.into(), &[&p, &cols], loc)?;
    convert(&eq, dt, loc)
}

struct Lu {
    lu: Array,
    pivots: Array,
    perm: Array,
}

fn lu(a: &Array, loc: Loc) -> Result<Lu> {
    let mut outs = bind(Linalg::Lu.into(), &[a], loc)?.into_iter();
    match (outs.next(), outs.next(), outs.next()) {
        (Some(lu), Some(pivots), Some(perm)) => Ok(Lu { lu, pivots, perm }),
        _ => Err(type_err("lu", "expected three outputs".into(), loc)),
    }
}

fn float_matrix(op: &str, a: &Array, loc: Loc) -> Result<Array> {
    let r = a.ndim();
    if r < 2 || a.shape()[r - 1] != a.shape()[r - 2] {
        return Err(type_err(op, format!("expects a square matrix (or a batch of them), got {}", a.aval()), loc));
    }
    if a.dtype().is_float() {
        Ok(a.clone())
    } else {
        convert(a, DType::F32, loc)
    }
}

/// The right-hand side `b` of `a · X = b` (`a` square, checked by the caller)
/// as `[..batch, n, k]` of `dtype`, its batch dimensions broadcast to `a`'s.
fn rhs(op: &str, a: &Array, b: &Array, dtype: DType, loc: Loc) -> Result<Array> {
    let (r, rb) = (a.ndim(), b.ndim());
    let n = a.shape()[r - 1];
    let batch = &a.shape()[..r - 2];
    let fits = rb >= 2
        && b.shape()[rb - 2] == n
        && broadcast_shapes(batch, &b.shape()[..rb - 2]).is_some_and(|s| s.dims() == batch);
    if !fits {
        let want: Vec<String> = batch.iter().map(usize::to_string).chain([n.to_string(), "k".into()]).collect();
        let message = format!(
            "cannot solve {} · X = {}: the right-hand side must have shape [{}] (batch dimensions that broadcast \
             to the matrix's, {n} rows, any number k of columns)",
            a.aval(),
            b.aval(),
            want.join(", ")
        );
        return Err(type_err(op, message, loc));
    }
    let b = convert(b, dtype, loc)?;
    let mut shape = batch.to_vec();
    shape.extend_from_slice(&b.shape()[rb - 2..]);
    broadcast_to(&b, &shape, op, loc)
}

/// `solve(b)` for `b` of rank 2 or more, and for a vector `b` the solution
/// for it as one column, that column's vector (`a` is square, checked).
fn as_columns(op: &str, a: &Array, b: &Array, loc: Loc, solve: impl FnOnce(&Array) -> Result<Array>) -> Result<Array> {
    if b.ndim() != 1 {
        return solve(b);
    }
    let n = a.shape()[a.ndim() - 1];
    if b.shape()[0] != n {
        let message =
            format!("cannot solve {} · x = {}: a vector right-hand side must have {n} elements", a.aval(), b.aval());
        return Err(type_err(op, message, loc));
    }
    let column = bind1(ShapeOp::ExpandDims { axes: vec![1] }.into(), &[b], loc)?;
    let x = solve(&column)?;
    let r = x.ndim();
    bind1(ShapeOp::Squeeze { axes: vec![r - 1] }.into(), &[&x], loc)
}

/// Solves `a · X = b` through LU; `a` is a float square matrix and `b` fits it.
fn solve_lu(a: &Array, b: &Array, loc: Loc) -> Result<Array> {
    let f = lu(a, loc)?;
    let p = permutation_matrix(&f.perm, a.dtype(), loc)?;
    let pb = matmul("solve", &p, b, loc)?;
    let y = tri(&f.lu, &pb, TriangularSolve { unit_diagonal: true, ..TriangularSolve::default() }, loc)?;
    tri(&f.lu, &y, TriangularSolve { lower: false, ..TriangularSolve::default() }, loc)
}

fn eye_like(a: &Array, loc: Loc) -> Result<Array> {
    let n = a.shape()[a.ndim() - 1];
    let e = eye(n, a.dtype(), loc)?;
    broadcast_to(&e, a.shape(), "eye", loc)
}

/// (+1 or −1) per matrix: the sign of the row permutation recorded by `pivots`.
fn pivot_sign(pivots: &Array, dt: DType, loc: Loc) -> Result<Array> {
    let k = pivots.ndim();
    let idx = bind1(
        ShapeOp::Iota { dtype: DType::I32, shape: Shape(pivots.shape().to_vec()), axis: k - 1 }.into(),
        &[],
        loc,
    )?;
    let swapped = bind1(E::Ne.into(), &[pivots, &idx], loc)?;
    let swaps = convert(&swapped, DType::I32, loc)?;
    let count = bind1(Reduction::Sum { axes: vec![k - 1] }.into(), &[&swaps], loc)?;
    let two = Array::scalar(2i32);
    let parity = bind1(E::Rem.into(), &[&count, &two], loc)?;
    let parity = convert(&parity, dt, loc)?;
    let m2 = Array::from_scalar(arrayjit_ir::Scalar::from_f64(-2.0, dt));
    let one = Array::from_scalar(arrayjit_ir::Scalar::from_f64(1.0, dt));
    let t = bind1(E::Mul.into(), &[&parity, &m2], loc)?;
    bind1(E::Add.into(), &[&t, &one], loc)
}

impl Array {
    /// Matrix product with NumPy's `matmul` semantics.
    #[track_caller]
    pub fn matmul(&self, other: &Array) -> Array {
        self.try_matmul(other).or_raise()
    }

    /// [`Array::matmul`], returning errors.
    #[track_caller]
    pub fn try_matmul(&self, other: &Array) -> Result<Array> {
        matmul("matmul", self, other, caller())
    }

    /// Same as [`Array::matmul`] (vectors give their inner product).
    #[track_caller]
    pub fn dot(&self, other: &Array) -> Array {
        self.try_dot(other).or_raise()
    }

    /// [`Array::dot`], returning errors.
    #[track_caller]
    pub fn try_dot(&self, other: &Array) -> Result<Array> {
        matmul("dot", self, other, caller())
    }

    /// General contraction (the `dot_general` primitive).
    #[track_caller]
    pub fn dot_general(&self, other: &Array, dims: DotDims) -> Array {
        self.try_dot_general(other, dims).or_raise()
    }

    /// [`Array::dot_general`], returning errors.
    #[track_caller]
    pub fn try_dot_general(&self, other: &Array, dims: DotDims) -> Result<Array> {
        bind1(Linalg::DotGeneral(dims).into(), &[self, other], caller())
    }

    /// Lower Cholesky factor of a symmetric positive-definite matrix (NaNs if it is not).
    ///
    /// Only the lower triangle is read; derivatives treat the matrix as
    /// symmetric (a tangent counts as its symmetric part, and a gradient comes
    /// back symmetric), as JAX's do. For a matrix that is not symmetric, the
    /// value is that of its lower triangle mirrored, while JAX would factor
    /// (A + Aᵀ)/2.
    #[track_caller]
    pub fn cholesky(&self) -> Array {
        self.try_cholesky().or_raise()
    }

    /// [`Array::cholesky`], returning errors.
    #[track_caller]
    pub fn try_cholesky(&self) -> Result<Array> {
        let loc = caller();
        let a = float_matrix("cholesky", self, loc)?;
        bind1(Linalg::Cholesky.into(), &[&a], loc)
    }

    /// Inverse through LU with partial pivoting.
    #[track_caller]
    pub fn inv(&self) -> Array {
        self.try_inv().or_raise()
    }

    /// [`Array::inv`], returning errors.
    #[track_caller]
    pub fn try_inv(&self) -> Result<Array> {
        let loc = caller();
        let a = float_matrix("inv", self, loc)?;
        let e = eye_like(&a, loc)?;
        solve_lu(&a, &e, loc)
    }

    /// Inverse of a symmetric positive-definite matrix through Cholesky.
    #[track_caller]
    pub fn inv_spd(&self) -> Array {
        self.try_inv_spd().or_raise()
    }

    /// [`Array::inv_spd`], returning errors.
    #[track_caller]
    pub fn try_inv_spd(&self) -> Result<Array> {
        let loc = caller();
        let a = float_matrix("inv_spd", self, loc)?;
        let l = bind1(Linalg::Cholesky.into(), &[&a], loc)?;
        bind1(Linalg::CholeskyInverse.into(), &[&l], loc)
    }

    /// `(L Lᵀ)⁻¹` from a lower Cholesky factor `L` (this array; only its
    /// lower triangle is read): the inverse of the matrix it factors, so that
    /// `a.cholesky().cholesky_inverse()` is `a.inv_spd()`. Exactly symmetric
    /// on the CPU. A zero on the diagonal divides by zero.
    #[track_caller]
    pub fn cholesky_inverse(&self) -> Array {
        self.try_cholesky_inverse().or_raise()
    }

    /// [`Array::cholesky_inverse`], returning errors.
    #[track_caller]
    pub fn try_cholesky_inverse(&self) -> Result<Array> {
        let loc = caller();
        let l = float_matrix("cholesky_inverse", self, loc)?;
        bind1(Linalg::CholeskyInverse.into(), &[&l], loc)
    }

    /// Solves `self · X = b` through LU. `b` is `[.., n, k]`, its batch
    /// dimensions broadcasting to those of `self`, or a vector `[n]` (the
    /// solution is then `[.., n]`, as NumPy's).
    #[track_caller]
    pub fn solve(&self, b: &Array) -> Array {
        self.try_solve(b).or_raise()
    }

    /// [`Array::solve`], returning errors.
    #[track_caller]
    pub fn try_solve(&self, b: &Array) -> Result<Array> {
        let loc = caller();
        let a = float_matrix("solve", self, loc)?;
        as_columns("solve", &a, b, loc, |b| solve_lu(&a, &rhs("solve", self, b, a.dtype(), loc)?, loc))
    }

    /// Solves `self · X = b` for symmetric positive-definite `self` through
    /// Cholesky. `b` is as for [`Array::solve`].
    #[track_caller]
    pub fn solve_spd(&self, b: &Array) -> Array {
        self.try_solve_spd(b).or_raise()
    }

    /// [`Array::solve_spd`], returning errors.
    #[track_caller]
    pub fn try_solve_spd(&self, b: &Array) -> Result<Array> {
        let loc = caller();
        let a = float_matrix("solve_spd", self, loc)?;
        as_columns("solve_spd", &a, b, loc, |b| solve_spd(&a, &rhs("solve_spd", self, b, a.dtype(), loc)?, loc))
    }

    /// log det of a symmetric positive-definite matrix, as 2·Σ log diag(L) of
    /// its Cholesky factor (no overflow where `det` would overflow).
    #[track_caller]
    pub fn logdet(&self) -> Array {
        self.try_logdet().or_raise()
    }

    /// [`Array::logdet`], returning errors.
    #[track_caller]
    pub fn try_logdet(&self) -> Result<Array> {
        let loc = caller();
        let a = float_matrix("logdet", self, loc)?;
        let l = bind1(Linalg::Cholesky.into(), &[&a], loc)?;
        let d = diag_part("logdet", &l, loc)?;
        let logs = bind1(E::Log.into(), &[&d], loc)?;
        let s = bind1(Reduction::Sum { axes: vec![last_axis(&logs)] }.into(), &[&logs], loc)?;
        let two = Array::from_scalar(arrayjit_ir::Scalar::from_f64(2.0, a.dtype()));
        bind1(E::Mul.into(), &[&s, &two], loc)
    }

    /// (sign, log|det|) through LU, for any square matrix.
    #[track_caller]
    pub fn slogdet(&self) -> (Array, Array) {
        self.try_slogdet().or_raise()
    }

    /// [`Array::slogdet`], returning errors.
    #[track_caller]
    pub fn try_slogdet(&self) -> Result<(Array, Array)> {
        let loc = caller();
        let a = float_matrix("slogdet", self, loc)?;
        let f = lu(&a, loc)?;
        let d = diag_part("slogdet", &f.lu, loc)?;
        let ax = vec![last_axis(&d)];
        let absd = bind1(E::Abs.into(), &[&d], loc)?;
        let logs = bind1(E::Log.into(), &[&absd], loc)?;
        let logabs = bind1(Reduction::Sum { axes: ax.clone() }.into(), &[&logs], loc)?;
        let signs = bind1(E::Sign.into(), &[&d], loc)?;
        let sprod = bind1(Reduction::Prod { axes: ax }.into(), &[&signs], loc)?;
        let ps = pivot_sign(&f.pivots, a.dtype(), loc)?;
        let sign = bind1(E::Mul.into(), &[&sprod, &ps], loc)?;
        Ok((sign, logabs))
    }

    /// Determinant through LU. Its gradient is the transposed adjugate, as
    /// JAX's, finite at singular matrices too. One gap, JAX's as well: a
    /// matrix of rank n − 1 whose LU factor has two or more zero pivots
    /// (partial pivoting meets a zero column first, as in `[[0, 1], [0, 0]]`)
    /// gets a zero gradient where the adjugate is not zero. Second
    /// derivatives at singular matrices are NaN.
    #[track_caller]
    pub fn det(&self) -> Array {
        self.try_det().or_raise()
    }

    /// [`Array::det`], returning errors.
    #[track_caller]
    pub fn try_det(&self) -> Result<Array> {
        let loc = caller();
        let a = float_matrix("det", self, loc)?;
        // Its derivative is tr(adj(A)·Ȧ), finite at singular matrices too
        // (through the LU factors, A⁻¹ is infinite there and the derivative NaN).
        custom_jvp(
            move |a: Array| det_from(&lu(&a, loc)?, a.dtype(), loc),
            move |a: Array, t: Array| -> Result<(Array, Array)> {
                let f = lu(&a, loc)?;
                let r = a.ndim();
                let mut swap: Vec<usize> = (0..r).collect();
                swap.swap(r - 2, r - 1);
                let t_swapped = bind1(ShapeOp::Transpose { perm: swap }.into(), &[&t], loc)?;
                let terms = bind1(E::Mul.into(), &[&adjugate(&f, a.dtype(), loc)?, &t_swapped], loc)?;
                let dt = bind1(Reduction::Sum { axes: vec![r - 2, r - 1] }.into(), &[&terms], loc)?;
                Ok((det_from(&f, a.dtype(), loc)?, dt))
            },
            a,
        )
    }
}

/// The determinant from the LU factors: the product of `U`'s diagonal, signed by the pivots.
fn det_from(f: &Lu, dt: DType, loc: Loc) -> Result<Array> {
    let d = diag_part("det", &f.lu, loc)?;
    let p = bind1(Reduction::Prod { axes: vec![last_axis(&d)] }.into(), &[&d], loc)?;
    let ps = pivot_sign(&f.pivots, dt, loc)?;
    bind1(E::Mul.into(), &[&p, &ps], loc)
}

/// The adjugate `adj(A)` of each matrix (`A·adj(A) = det(A)·I`), from its
/// LU factors `P·A = L·U`: `adj(A) = ±adj(U)·L⁻¹·P`. With no zero pivot,
/// `adj(U) = det(U)·U⁻¹`. With one, at `k`, `U` has rank n − 1 and
/// `adj(U) = D·(U'⁻¹e_k)(e_kᵀU'⁻¹)`, where `U'` is `U` with that pivot set
/// to 1 and `D` is the product of the other pivots (`U'⁻¹e_k` and
/// `e_kᵀU'⁻¹` are `U`'s null vectors, scaled so that the `(k, k)` cofactor
/// is `D`). With more, this gives 0: right when `U` has rank n − 2 or less,
/// wrong for the rank n − 1 factors that partial pivoting can leave with
/// several zero pivots (a zero column met first), which would need a
/// rank-revealing factorization.
fn adjugate(f: &Lu, dt: DType, loc: Loc) -> Result<Array> {
    let r = f.lu.ndim();
    let n = f.lu.shape()[r - 1];
    let d = diag_part("det", &f.lu, loc)?;
    let zero_pivot = binary(E::Eq, (&d).into(), 0.0.into(), loc)?;
    let pivots = select((&zero_pivot).into(), 1.0.into(), (&d).into(), loc)?;
    // U': the pivots that are zero set to 1 (the solves read the upper triangle only).
    let on_diagonal = broadcast_to(&eye(n, DType::Bool, loc)?, f.lu.shape(), "det", loc)?;
    let pivot_rows = bind1(ShapeOp::ExpandDims { axes: vec![r - 2] }.into(), &[&pivots], loc)?;
    let u1 = select((&on_diagonal).into(), (&pivot_rows).into(), (&f.lu).into(), loc)?;
    let upper = TriangularSolve { lower: false, ..TriangularSolve::default() };
    let p = permutation_matrix(&f.perm, dt, loc)?;
    let lp = tri(&f.lu, &p, TriangularSolve { unit_diagonal: true, ..TriangularSolve::default() }, loc)?;
    let full = tri(&u1, &lp, upper, loc)?;
    // One zero pivot at k: row k of U'⁻¹L⁻¹P, then U'⁻¹ of it.
    let row_k = bind1(ShapeOp::ExpandDims { axes: vec![r - 1] }.into(), &[&zero_pivot], loc)?;
    let masked = select((&row_k).into(), (&full).into(), 0.0.into(), loc)?;
    let rank_one = tri(&u1, &masked, upper, loc)?;
    let zeros = convert(&zero_pivot, DType::I32, loc)?;
    let count = bind1(Reduction::Sum { axes: vec![r - 2] }.into(), &[&zeros], loc)?;
    let count = bind1(ShapeOp::ExpandDims { axes: vec![r - 2, r - 1] }.into(), &[&count], loc)?;
    let none = bind1(E::Eq.into(), &[&count, &Array::scalar(0i32)], loc)?;
    let one = bind1(E::Eq.into(), &[&count, &Array::scalar(1i32)], loc)?;
    let picked = select((&one).into(), (&rank_one).into(), 0.0.into(), loc)?;
    let picked = select((&none).into(), (&full).into(), (&picked).into(), loc)?;
    // ± the product of the pivots other than a zero one.
    let product = bind1(Reduction::Prod { axes: vec![r - 2] }.into(), &[&pivots], loc)?;
    let scale = bind1(E::Mul.into(), &[&product, &pivot_sign(&f.pivots, dt, loc)?], loc)?;
    let scale = bind1(ShapeOp::ExpandDims { axes: vec![r - 2, r - 1] }.into(), &[&scale], loc)?;
    bind1(E::Mul.into(), &[&picked, &broadcast_to(&scale, picked.shape(), "det", loc)?], loc)
}

fn solve_spd(a: &Array, b: &Array, loc: Loc) -> Result<Array> {
    let l = bind1(Linalg::Cholesky.into(), &[a], loc)?;
    let y = tri(&l, b, TriangularSolve::default(), loc)?;
    tri(&l, &y, TriangularSolve { transpose_a: true, ..TriangularSolve::default() }, loc)
}

pub(crate) fn eye(n: usize, dtype: DType, loc: Loc) -> Result<Array> {
    let rows = bind1(ShapeOp::Iota { dtype: DType::I32, shape: Shape::from([n, n]), axis: 0 }.into(), &[], loc)?;
    let cols = bind1(ShapeOp::Iota { dtype: DType::I32, shape: Shape::from([n, n]), axis: 1 }.into(), &[], loc)?;
    let m = bind1(E::Eq.into(), &[&rows, &cols], loc)?;
    convert(&m, dtype, loc)
}
