//! Derivative rules of dot_general and the matrix primitives (the standard
//! matrix identities; batch dimensions lead).

use super::{add_tangents, nonlinear, single, transform_error, JvpOut, LinIn, Tangent};
use arrayjit_ir::prim::{DotDims, Elementwise as E, Linalg, ShapeOp};
use arrayjit_ir::{DType, Shape};
use arrayjit_trace::lax::{self, apply, apply1, binary, dot_general, mul, neg, scalar, select};
use arrayjit_trace::{Array, Result};

/// Batched matrix product over the last two axes.
fn bmm(a: &Array, b: &Array) -> Result<Array> {
    let r = a.ndim();
    let batch: Vec<usize> = (0..r - 2).collect();
    dot_general(
        a,
        b,
        DotDims { lhs_contract: vec![r - 1], rhs_contract: vec![r - 2], lhs_batch: batch.clone(), rhs_batch: batch },
    )
}

/// Swaps the last two axes.
fn mt(x: &Array) -> Result<Array> {
    let r = x.ndim();
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    lax::transpose(x, &perm)
}

/// `[.., n, n]` bool mask of `col - row` compared with `k` by `cmp` (e.g. `Le, 0`: lower triangle).
fn band(shape: &[usize], cmp: E, k: i32) -> Result<Array> {
    let r = shape.len();
    let rows = apply1(ShapeOp::Iota { dtype: DType::I32, shape: Shape::from(shape), axis: r - 2 }.into(), &[])?;
    let cols = apply1(ShapeOp::Iota { dtype: DType::I32, shape: Shape::from(shape), axis: r - 1 }.into(), &[])?;
    let d = lax::sub(&cols, &rows)?;
    binary(cmp, &d, &Array::scalar(k))
}

fn keep(x: &Array, mask: &Array) -> Result<Array> {
    let zero = lax::zeros_like(&x.aval())?;
    select(mask, x, &zero)
}

fn tri(a: &Array, b: &Array, left_side: bool, lower: bool, transpose_a: bool, unit_diagonal: bool) -> Result<Array> {
    apply1(Linalg::TriangularSolve { left_side, lower, transpose_a, unit_diagonal }.into(), &[a, b])
}

/// Cotangent of a `dot_general` operand: contract the output cotangent with the
/// other operand over the other operand's free axes, then restore this operand's axis order.
fn dot_transpose(ct: &Array, other: &Array, d: &DotDims, for_lhs: bool, rank: usize) -> Result<Array> {
    let nb = d.lhs_batch.len();
    let (my_batch, my_contract, ot_batch, ot_contract) = if for_lhs {
        (&d.lhs_batch, &d.lhs_contract, &d.rhs_batch, &d.rhs_contract)
    } else {
        (&d.rhs_batch, &d.rhs_contract, &d.lhs_batch, &d.lhs_contract)
    };
    let lhs_free = d.lhs_free(if for_lhs { rank } else { other.ndim() });
    let rhs_free = d.rhs_free(if for_lhs { other.ndim() } else { rank });
    let (my_free, ot_free) = if for_lhs { (&lhs_free, &rhs_free) } else { (&rhs_free, &lhs_free) };
    // Positions of the other operand's free axes within the output (and so within ct).
    let ot_free_pos: Vec<usize> = if for_lhs {
        (nb + lhs_free.len()..nb + lhs_free.len() + rhs_free.len()).collect()
    } else {
        (nb..nb + lhs_free.len()).collect()
    };
    let dims = DotDims {
        lhs_contract: ot_free_pos,
        rhs_contract: ot_free.clone(),
        lhs_batch: (0..nb).collect(),
        rhs_batch: ot_batch.clone(),
    };
    let prod = dot_general(ct, other, dims)?;
    // prod's axes: batch, my free axes, then the other's remaining (contracted) axes
    // in increasing order, each matching one of my contracted axes.
    let mut order: Vec<usize> = my_batch.clone();
    order.extend(my_free.iter().copied());
    let mut rest: Vec<(usize, usize)> = ot_contract.iter().zip(my_contract).map(|(&o, &m)| (o, m)).collect();
    rest.sort_unstable();
    order.extend(rest.iter().map(|&(_, m)| m));
    let mut perm = vec![0; rank];
    for (pos, &axis) in order.iter().enumerate() {
        perm[axis] = pos;
    }
    lax::transpose(&prod, &perm)
}

pub(crate) fn jvp(op: &Linalg, xs: &[Array], ts: &[Tangent]) -> Result<JvpOut> {
    let refs: Vec<&Array> = xs.iter().collect();
    match op {
        Linalg::DotGeneral(d) => {
            let z = apply1(op.clone().into(), &refs)?;
            let ta = ts[0].as_ref().map(|t| dot_general(t, &xs[1], d.clone())).transpose()?;
            let tb = ts[1].as_ref().map(|t| dot_general(&xs[0], t, d.clone())).transpose()?;
            Ok((vec![z], vec![add_tangents(ta, tb)?]))
        }
        Linalg::Cholesky => {
            let l = apply1(op.clone().into(), &refs)?;
            let Some(da) = &ts[0] else { return Ok((vec![l], vec![None])) };
            let shape = l.shape().to_vec();
            // As in JAX, the input is taken to be symmetric: the tangent is
            // symmetrised, (dA + dAᵀ)/2, so ∇ logdet(A) = A⁻¹ rather than its lower triangle.
            let strict = band(&shape, E::Lt, 0)?;
            let sym = mul(&lax::add(da, &mt(da)?)?, &scalar(0.5, da.dtype()))?;
            let left = tri(&l, &sym, true, true, false, false)?;
            let x = tri(&l, &left, false, true, true, false)?;
            let diag = band(&shape, E::Eq, 0)?;
            let half = mul(&keep(&x, &diag)?, &scalar(0.5, x.dtype()))?;
            let phi = lax::add(&keep(&x, &strict)?, &half)?;
            Ok((vec![l.clone()], vec![Some(bmm(&l, &phi)?)]))
        }
        Linalg::CholeskyInverse => {
            let inv = apply1(op.clone().into(), &refs)?;
            let Some(dl) = &ts[0] else { return Ok((vec![inv], vec![None])) };
            // Only the lower triangles of the factor and its tangent count.
            let lower = band(inv.shape(), E::Le, 0)?;
            let (l, dl) = (keep(&xs[0], &lower)?, keep(dl, &lower)?);
            // d(L Lᵀ)⁻¹ = -Ω (dL Lᵀ + L dLᵀ) Ω = -(S + Sᵀ) with S = Ω dL Lᵀ Ω, Ω being symmetric.
            let s = bmm(&bmm(&bmm(&inv, &dl)?, &mt(&l)?)?, &inv)?;
            let t = neg(&lax::add(&s, &mt(&s)?)?)?;
            Ok((vec![inv], vec![Some(t)]))
        }
        Linalg::TriangularSolve { left_side, lower, transpose_a, unit_diagonal } => {
            let (a, _) = (&xs[0], &xs[1]);
            let x = apply1(op.clone().into(), &refs)?;
            let mut rhs: Tangent = ts[1].clone();
            if let Some(da) = &ts[0] {
                let shape = a.shape().to_vec();
                let cmp = match (*lower, *unit_diagonal) {
                    (true, false) => E::Le,
                    (true, true) => E::Lt,
                    (false, false) => E::Ge,
                    (false, true) => E::Gt,
                };
                let da = keep(da, &band(&shape, cmp, 0)?)?;
                let op_da = if *transpose_a { mt(&da)? } else { da };
                let prod = if *left_side { bmm(&op_da, &x)? } else { bmm(&x, &op_da)? };
                rhs = add_tangents(rhs, Some(neg(&prod)?))?;
            }
            let t = rhs.map(|r| tri(a, &r, *left_side, *lower, *transpose_a, *unit_diagonal)).transpose()?;
            Ok((vec![x], vec![t]))
        }
        Linalg::Lu => {
            let outs = apply(op.clone().into(), &refs)?;
            let Some(da) = &ts[0] else { return Ok((outs, vec![None, None, None])) };
            let a = &xs[0];
            let r = a.ndim();
            if a.shape()[r - 1] != a.shape()[r - 2] {
                return Err(transform_error(
                    "lu",
                    format!("can only be differentiated for square matrices, got {}", a.aval()),
                ));
            }
            let (lu, perm) = (&outs[0], &outs[2]);
            let shape = lu.shape().to_vec();
            let dt = lu.dtype();
            // P·dA, with P the one-hot permutation matrix of `perm`.
            let pb = lax::broadcast_in_dim(perm, &shape, &(0..r - 1).collect::<Vec<_>>())?;
            let cols = apply1(
                ShapeOp::Iota { dtype: DType::I32, shape: Shape::from(shape.clone()), axis: r - 1 }.into(),
                &[],
            )?;
            let p = lax::convert(&binary(E::Eq, &pb, &cols)?, dt)?;
            let pda = bmm(&p, da)?;
            let strict = band(&shape, E::Lt, 0)?;
            let upper = band(&shape, E::Ge, 0)?;
            let eye = lax::convert(&band(&shape, E::Eq, 0)?, dt)?;
            let l = lax::add(&keep(lu, &strict)?, &eye)?;
            let u = keep(lu, &upper)?;
            let la = tri(&l, &pda, true, true, false, true)?;
            let lau = tri(&u, &la, false, false, false, false)?;
            let l_dot = bmm(&l, &keep(&lau, &strict)?)?;
            let u_dot = bmm(&keep(&lau, &upper)?, &u)?;
            Ok((outs, vec![Some(lax::add(&l_dot, &u_dot)?), None, None]))
        }
    }
}

pub(crate) fn transpose(op: &Linalg, cts: &[Tangent], ins: &[LinIn]) -> Result<Vec<Tangent>> {
    let Some(ct) = single(cts) else { return Ok(vec![None; ins.len()]) };
    match op {
        Linalg::DotGeneral(d) => match (&ins[0], &ins[1]) {
            (LinIn::Linear(a), LinIn::Known(b)) => Ok(vec![Some(dot_transpose(ct, b, d, true, a.rank())?), None]),
            (LinIn::Known(a), LinIn::Linear(b)) => Ok(vec![None, Some(dot_transpose(ct, a, d, false, b.rank())?)]),
            _ => Err(nonlinear("dot_general")),
        },
        Linalg::TriangularSolve { left_side, lower, transpose_a, unit_diagonal } => {
            let a = ins[0].known("triangular_solve")?;
            if !ins[1].is_linear() {
                return Err(nonlinear("triangular_solve"));
            }
            Ok(vec![None, Some(tri(a, ct, *left_side, *lower, !*transpose_a, *unit_diagonal)?)])
        }
        Linalg::Cholesky | Linalg::CholeskyInverse | Linalg::Lu => Err(nonlinear(op.name())),
    }
}
