//! Derivative rules of the shape primitives. All are linear in their array
//! operands, so the JVP re-applies the primitive to the tangents and the
//! transpose moves cotangents back (sum over broadcast axes, pad a slice, ...).

use super::{instantiate, nonlinear, single, JvpOut, LinIn, Tangent};
use arrayjit_ir::prim::ShapeOp as S;
use arrayjit_trace::lax::{self, apply1};
use arrayjit_trace::{Array, Result};

pub(crate) fn jvp(op: &S, xs: &[Array], ts: &[Tangent]) -> Result<JvpOut> {
    let refs: Vec<&Array> = xs.iter().collect();
    let z = apply1(op.clone().into(), &refs)?;
    let t = match op {
        S::BroadcastInDim { .. }
        | S::Reshape { .. }
        | S::Transpose { .. }
        | S::Squeeze { .. }
        | S::ExpandDims { .. }
        | S::Slice { .. } => ts[0].as_ref().map(|t| apply1(op.clone().into(), &[t])).transpose()?,
        S::DynamicSlice { .. } => match &ts[0] {
            None => None,
            Some(t) => {
                let mut ins: Vec<&Array> = vec![t];
                ins.extend(&xs[1..]);
                Some(apply1(op.clone().into(), &ins)?)
            }
        },
        S::DynamicUpdateSlice => {
            if ts[0].is_none() && ts[1].is_none() {
                None
            } else {
                let tx = instantiate(&ts[0], &xs[0].aval())?;
                let tu = instantiate(&ts[1], &xs[1].aval())?;
                let mut ins: Vec<&Array> = vec![&tx, &tu];
                ins.extend(&xs[2..]);
                Some(apply1(op.clone().into(), &ins)?)
            }
        }
        S::Concatenate { .. } => {
            let full = xs.iter().zip(ts).map(|(x, t)| instantiate(t, &x.aval())).collect::<Result<Vec<_>>>()?;
            let refs: Vec<&Array> = full.iter().collect();
            Some(apply1(op.clone().into(), &refs)?)
        }
        S::Pad { .. } => {
            let tx = instantiate(&ts[0], &xs[0].aval())?;
            let tv = instantiate(&ts[1], &xs[1].aval())?;
            Some(apply1(op.clone().into(), &[&tx, &tv])?)
        }
        S::Iota { .. } => None,
    };
    Ok((vec![z], vec![t]))
}

pub(crate) fn transpose(op: &S, cts: &[Tangent], ins: &[LinIn]) -> Result<Vec<Tangent>> {
    let n = ins.len();
    let Some(ct) = single(cts) else { return Ok(vec![None; n]) };
    let name = op.name();
    let x = ins[0].aval();
    let first = |v: Array| -> Vec<Tangent> {
        let mut out = vec![None; n];
        if ins[0].is_linear() {
            out[0] = Some(v);
        }
        out
    };
    match op {
        S::BroadcastInDim { shape, dims } => {
            // Sum over the new axes, then over the stretched size-1 axes.
            let new_axes: Vec<usize> = (0..shape.rank()).filter(|a| !dims.contains(a)).collect();
            let summed = lax::reduce_sum(ct, &new_axes)?;
            let stretched: Vec<usize> =
                dims.iter().enumerate().filter(|(i, &d)| x.shape[*i] == 1 && shape[d] != 1).map(|(i, _)| i).collect();
            let summed = lax::reduce_sum(&summed, &stretched)?;
            Ok(first(lax::reshape(&summed, &x.shape)?))
        }
        S::Reshape { .. } | S::Squeeze { .. } | S::ExpandDims { .. } => Ok(first(lax::reshape(ct, &x.shape)?)),
        S::Transpose { perm } => {
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            Ok(first(lax::transpose(ct, &inv)?))
        }
        S::Slice { start, limit: _, strides } => {
            let out = ct.shape().to_vec();
            let low: Vec<i64> = start.iter().map(|&s| s as i64).collect();
            let high: Vec<i64> = (0..x.rank())
                .map(|i| {
                    let last =
                        if out[i] == 0 { start[i] as i64 - 1 } else { (start[i] + (out[i] - 1) * strides[i]) as i64 };
                    x.shape[i] as i64 - last - 1
                })
                .collect();
            let interior: Vec<usize> = strides.iter().map(|s| s - 1).collect();
            let zero = lax::scalar(0.0, ct.dtype());
            // An empty slice pads nothing: its cotangent is all zeros.
            if out.contains(&0) {
                return Ok(first(lax::zeros_like(&x)?));
            }
            Ok(first(apply1(S::Pad { low, high, interior }.into(), &[ct, &zero])?))
        }
        S::DynamicSlice { .. } => {
            let zeros = lax::zeros_like(&x)?;
            let idx = ins[1..].iter().map(|i| i.known(name).cloned()).collect::<Result<Vec<_>>>()?;
            let mut args: Vec<&Array> = vec![&zeros, ct];
            args.extend(&idx);
            Ok(first(apply1(S::DynamicUpdateSlice.into(), &args)?))
        }
        S::DynamicUpdateSlice => {
            let u = ins[1].aval();
            let idx = ins[2..].iter().map(|i| i.known(name).cloned()).collect::<Result<Vec<_>>>()?;
            let mut out = vec![None; n];
            if ins[0].is_linear() {
                let zu = lax::zeros_like(&u)?;
                let mut args: Vec<&Array> = vec![ct, &zu];
                args.extend(&idx);
                out[0] = Some(apply1(S::DynamicUpdateSlice.into(), &args)?);
            }
            if ins[1].is_linear() {
                let mut args: Vec<&Array> = vec![ct];
                args.extend(&idx);
                out[1] = Some(apply1(S::DynamicSlice { sizes: u.shape.0.clone() }.into(), &args)?);
            }
            Ok(out)
        }
        S::Concatenate { axis } => {
            let mut out = Vec::with_capacity(n);
            let mut offset = 0;
            for i in ins {
                let a = i.aval();
                let len = a.shape[*axis];
                if i.is_linear() {
                    let mut start = vec![0; a.rank()];
                    let mut limit = ct.shape().to_vec();
                    start[*axis] = offset;
                    limit[*axis] = offset + len;
                    let strides = vec![1; a.rank()];
                    out.push(Some(apply1(S::Slice { start, limit, strides }.into(), &[ct])?));
                } else {
                    out.push(None);
                }
                offset += len;
            }
            Ok(out)
        }
        S::Pad { low, high, interior } => {
            // Undo the edge padding (negative padding extends), then take every
            // (interior+1)-th element.
            let mut out = vec![None; n];
            let zero = lax::scalar(0.0, ct.dtype());
            let unpad = apply1(
                S::Pad {
                    low: low.iter().map(|l| -l).collect(),
                    high: high.iter().map(|h| -h).collect(),
                    interior: vec![0; x.rank()],
                }
                .into(),
                &[ct, &zero],
            )?;
            let strides: Vec<usize> = interior.iter().map(|i| i + 1).collect();
            let limit = unpad.shape().to_vec();
            let tx = apply1(S::Slice { start: vec![0; x.rank()], limit, strides }.into(), &[&unpad])?;
            if ins[1].is_linear() {
                let all: Vec<usize> = (0..ct.ndim()).collect();
                let total = lax::reduce_sum(ct, &all)?;
                let inner = lax::reduce_sum(&tx, &all)?;
                out[1] = Some(lax::sub(&total, &inner)?);
            }
            if ins[0].is_linear() {
                out[0] = Some(tx);
            }
            Ok(out)
        }
        S::Iota { .. } => Err(nonlinear(name)),
    }
}
