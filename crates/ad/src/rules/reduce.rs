//! Derivative rules of the reductions.

use super::{nonlinear, single, JvpOut, LinIn, Tangent};
use arrayjit_ir::prim::{Elementwise as E, Reduction as R, ShapeOp as S};
use arrayjit_ir::DType;
use arrayjit_trace::lax::{self, apply1, binary, broadcast_in_dim, mul, reshape, scalar};
use arrayjit_trace::{Array, Result};

/// Broadcasts a reduced array back over the reduced axes of `shape`.
fn unreduce(r: &Array, shape: &[usize], axes: &[usize]) -> Result<Array> {
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    broadcast_in_dim(r, shape, &kept)
}

/// `x` as a `[kept, reduced]` matrix: the kept axes (in order) flattened into
/// the rows, the reduced axes into the columns.
fn as_rows(x: &Array, axes: &[usize]) -> Result<Array> {
    let shape = x.shape();
    let mut perm: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    let rows: usize = perm.iter().map(|&a| shape[a]).product();
    perm.extend_from_slice(axes);
    let cols: usize = axes.iter().map(|&a| shape[a]).product();
    reshape(&lax::transpose(x, &perm)?, &[rows, cols])
}

/// For each row of a `[k, n]` array, the products of all elements but one:
/// `out[r, i] = Πⱼ≠ᵢ x[r, j]`. Built from a product tree: going up, adjacent
/// pairs are multiplied; coming down, a child's complement is its parent's
/// complement times its sibling. Only multiplications are involved, so the
/// result is exact when elements are zero, and so are its own derivatives (a
/// rule that divides by `x`, or switches to constants where zeros appear,
/// gets the second derivatives at zeros wrong). O(n) work.
fn all_but_one(x: &Array) -> Result<Array> {
    let (k, n) = (x.shape()[0], x.shape()[1]);
    let dt = x.dtype();
    if n <= 1 {
        return lax::full(&[k, n], 1.0, dt);
    }
    // An odd row gets a trailing 1, which changes no product.
    let even = if n % 2 == 1 {
        apply1(S::Pad { low: vec![0, 0], high: vec![0, 1], interior: vec![0, 0] }.into(), &[x, &scalar(1.0, dt)])?
    } else {
        x.clone()
    };
    let h = n.div_ceil(2);
    let pairs = reshape(&even, &[k, h, 2])?;
    let half = |j: usize| -> Result<Array> {
        let s = apply1(
            S::Slice { start: vec![0, 0, j], limit: vec![k, h, j + 1], strides: vec![1, 1, 1] }.into(),
            &[&pairs],
        )?;
        reshape(&s, &[k, h])
    };
    let (left, right) = (half(0)?, half(1)?);
    let above = all_but_one(&mul(&left, &right)?)?;
    let for_left = reshape(&mul(&above, &right)?, &[k, h, 1])?;
    let for_right = reshape(&mul(&above, &left)?, &[k, h, 1])?;
    let both = apply1(S::Concatenate { axis: 2 }.into(), &[&for_left, &for_right])?;
    let out = reshape(&both, &[k, 2 * h])?;
    if n % 2 == 1 {
        // The padding 1's complement is not wanted.
        apply1(S::Slice { start: vec![0, 0], limit: vec![k, n], strides: vec![1, 1] }.into(), &[&out])
    } else {
        Ok(out)
    }
}

pub(crate) fn jvp(op: &R, xs: &[Array], ts: &[Tangent]) -> Result<JvpOut> {
    let x = &xs[0];
    let z = apply1(op.clone().into(), &[x])?;
    let Some(t) = &ts[0] else { return Ok((vec![z], vec![None])) };
    let axes = op.axes();
    let sum = |v: &Array| lax::reduce_sum(v, &axes);
    let tz = match op {
        R::Sum { .. } => Some(sum(t)?),
        R::Max { .. } | R::Min { .. } => {
            // The mean of the tangents at the positions of the extremum.
            let zb = unreduce(&z, x.shape(), &axes)?;
            let hit = lax::convert(&binary(E::Eq, x, &zb)?, x.dtype())?;
            let num = sum(&mul(t, &hit)?)?;
            let den = sum(&hit)?;
            Some(lax::div(&num, &den)?)
        }
        R::Prod { .. } => {
            // d prod = Σᵢ tᵢ · Πⱼ≠ᵢ xⱼ.
            let xr = as_rows(x, &axes)?;
            if xr.shape()[1] == 0 {
                // The empty product is the constant 1.
                None
            } else {
                let others = all_but_one(&xr)?;
                let dz = lax::reduce_sum(&mul(&as_rows(t, &axes)?, &others)?, &[1])?;
                Some(reshape(&dz, z.shape())?)
            }
        }
        R::ArgMax { .. } | R::ArgMin { .. } => None,
    };
    Ok((vec![z], vec![tz]))
}

pub(crate) fn transpose(op: &R, cts: &[Tangent], ins: &[LinIn]) -> Result<Vec<Tangent>> {
    let Some(ct) = single(cts) else { return Ok(vec![None]) };
    match op {
        R::Sum { axes } => {
            let x = ins[0].aval();
            let ct =
                if ct.dtype() != x.dtype && x.dtype != DType::Bool { lax::convert(ct, x.dtype)? } else { ct.clone() };
            Ok(vec![Some(unreduce(&ct, &x.shape, axes)?)])
        }
        _ => Err(nonlinear(op.name())),
    }
}
