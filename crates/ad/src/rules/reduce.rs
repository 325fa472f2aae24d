//! Derivative rules of the reductions.

use super::{nonlinear, single, JvpOut, LinIn, Tangent};
use arrayjit_ir::prim::{Elementwise as E, Reduction as R};
use arrayjit_ir::DType;
use arrayjit_trace::lax::{self, apply1, binary, broadcast_in_dim, mul, scalar, select};
use arrayjit_trace::{Array, Result};

/// Broadcasts a reduced array back over the reduced axes of `shape`.
fn unreduce(r: &Array, shape: &[usize], axes: &[usize]) -> Result<Array> {
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    broadcast_in_dim(r, shape, &kept)
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
            // d prod = Σᵢ tᵢ · Πⱼ≠ᵢ xⱼ, computed without dividing by zero:
            // with no zero, Πⱼ≠ᵢ = prod/xᵢ; with one zero, only its own term survives.
            let dt = x.dtype();
            let is0 = binary(E::Eq, x, &scalar(0.0, dt))?;
            let zeros = sum(&lax::convert(&is0, dt)?)?;
            let ones = lax::full(x.shape(), 1.0, dt)?;
            let nonzero = select(&is0, &ones, x)?;
            let pnz = apply1(op.clone().into(), &[&nonzero])?;
            let zeros_b = unreduce(&zeros, x.shape(), &axes)?;
            let pnz_b = unreduce(&pnz, x.shape(), &axes)?;
            let no_zero = binary(E::Eq, &zeros_b, &scalar(0.0, dt))?;
            let one_zero = binary(E::Eq, &zeros_b, &scalar(1.0, dt))?;
            let zero_arr = lax::full(x.shape(), 0.0, dt)?;
            let at_zero = select(&one_zero, &pnz_b, &zero_arr)?;
            let elsewhere = select(&no_zero, &lax::div(&pnz_b, &nonzero)?, &zero_arr)?;
            let others = select(&is0, &at_zero, &elsewhere)?;
            Some(sum(&mul(t, &others)?)?)
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
