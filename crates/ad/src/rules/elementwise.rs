//! Derivative rules of the elementwise primitives.

use super::{add_tangents, instantiate, nonlinear, single, JvpOut, LinIn, Tangent};
use arrayjit_ir::prim::Elementwise as E;
use arrayjit_ir::AVal;
use arrayjit_trace::lax::{self, add, binary, broadcast_in_dim, mul, neg, scalar, select, unary};
use arrayjit_trace::{Array, Result};

/// Broadcasts a rank-0 tangent to the output's shape (operands may be scalars
/// standing for the output shape).
fn fit(t: Array, out: &AVal) -> Result<Array> {
    if t.ndim() == 0 && out.rank() > 0 {
        broadcast_in_dim(&t, &out.shape, &[])
    } else {
        Ok(t)
    }
}

/// The cotangent of an operand of aval `a`, given the output cotangent: summed
/// over the output shape if the operand was a scalar standing for it.
fn unfit(ct: Array, a: &AVal) -> Result<Array> {
    if a.rank() == 0 && ct.ndim() > 0 {
        let axes: Vec<usize> = (0..ct.ndim()).collect();
        lax::reduce_sum(&ct, &axes)
    } else {
        Ok(ct)
    }
}

fn scaled(t: &Tangent, c: &Array) -> Result<Tangent> {
    t.as_ref().map(|t| mul(t, c)).transpose()
}

fn c(v: f64, like: &Array) -> Array {
    scalar(v, like.dtype())
}

pub(crate) fn jvp(op: E, xs: &[Array], ts: &[Tangent]) -> Result<JvpOut> {
    let refs: Vec<&Array> = xs.iter().collect();
    let z = lax::apply1(op.into(), &refs)?;
    let out = z.aval();
    let x = &xs[0];
    let tx = &ts[0];
    let t: Tangent = match op {
        E::Neg => tx.as_ref().map(neg).transpose()?,
        E::Abs => {
            // ±1 by x ≥ 0, as JAX: 1 at 0 (of the subgradients there, the
            // one JAX users see), −1 for NaN.
            let up = lax::convert(&binary(E::Ge, x, &c(0.0, x))?, x.dtype())?;
            scaled(tx, &lax::sub(&mul(&up, &c(2.0, x))?, &c(1.0, x))?)?
        }
        E::Exp => scaled(tx, &z)?,
        E::Log => tx.as_ref().map(|t| lax::div(t, x)).transpose()?,
        E::Log1p => tx.as_ref().map(|t| lax::div(t, &add(x, &c(1.0, x))?)).transpose()?,
        E::Expm1 => scaled(tx, &add(&z, &c(1.0, x))?)?,
        E::Sqrt => scaled(tx, &lax::div(&c(0.5, x), &z)?)?,
        // d/dx x^(-1/2) = -1/2 · x^(-1/2) / x
        E::Rsqrt => scaled(tx, &lax::div(&mul(&z, &c(-0.5, x))?, x)?)?,
        E::Tanh => scaled(tx, &lax::sub(&c(1.0, x), &mul(&z, &z)?)?)?,
        E::Logistic => scaled(tx, &mul(&z, &lax::sub(&c(1.0, x), &z)?)?)?,
        E::Sin => scaled(tx, &unary(E::Cos, x)?)?,
        E::Cos => scaled(tx, &neg(&unary(E::Sin, x)?)?)?,
        E::Sign | E::Floor | E::Ceil | E::IsFinite | E::Not | E::StopGradient => None,
        E::And | E::Or | E::Eq | E::Ne | E::Lt | E::Le | E::Gt | E::Ge => None,
        E::IntegerPow { exponent: 0 } => None,
        E::IntegerPow { exponent } => {
            let coef = match exponent {
                1 => c(1.0, x),
                2 => mul(x, &c(2.0, x))?,
                n => {
                    // x^(n-1); for n = i32::MIN, whose n - 1 does not fit, x^n / x.
                    let lower = match n.checked_sub(1) {
                        Some(m) => lax::integer_pow(x, m)?,
                        None => lax::div(&lax::integer_pow(x, n)?, x)?,
                    };
                    mul(&lower, &c(n as f64, x))?
                }
            };
            scaled(tx, &coef)?
        }
        E::Convert { to } => {
            if to.is_float() {
                tx.as_ref().map(|t| lax::convert(t, to)).transpose()?
            } else {
                None
            }
        }
        E::Add => add_tangents(tx.clone(), ts[1].clone())?,
        E::Sub => add_tangents(tx.clone(), ts[1].as_ref().map(neg).transpose()?)?,
        E::Mul => add_tangents(scaled(tx, &xs[1])?, scaled(&ts[1], x)?)?,
        E::Div => {
            // d(x/y) = (dx - z·dy) / y
            let y = &xs[1];
            let num = add_tangents(tx.clone(), scaled(&ts[1], &neg(&z)?)?)?;
            num.map(|n| lax::div(&n, y)).transpose()?
        }
        E::Rem => {
            // rem(x, y) = x - y·trunc(x/y): d/dx = 1, d/dy = -(x - z)/y
            let y = &xs[1];
            let dy = lax::div(&neg(&lax::sub(x, &z)?)?, y)?;
            add_tangents(tx.clone(), scaled(&ts[1], &dy)?)?
        }
        E::Pow => {
            let y = &xs[1];
            // d/dx = y·x^(y-1), defined as 0 where y = 0 (so 0·inf never appears at x = 0)
            let ym1 = lax::sub(y, &c(1.0, y))?;
            let dx = mul(y, &binary(E::Pow, x, &ym1)?)?;
            let y0 = binary(E::Eq, y, &c(0.0, y))?;
            let zero = c(0.0, x);
            let dx = select_fit(&y0, &zero, &dx)?;
            // d/dy = log(x)·z, with log(0) replaced by 0 (z is 0 or 1 there)
            let x0 = binary(E::Eq, x, &c(0.0, x))?;
            let safe = select_fit(&x0, &c(1.0, x), x)?;
            let dy = mul(&unary(E::Log, &safe)?, &z)?;
            add_tangents(scaled(tx, &dx)?, scaled(&ts[1], &dy)?)?
        }
        E::Max | E::Min => {
            // The tangent of the selected operand; ties share it equally.
            let y = &xs[1];
            let (win, lose) = if op == E::Max { (E::Gt, E::Lt) } else { (E::Lt, E::Gt) };
            let xw = lax::convert(&binary(win, x, y)?, x.dtype())?;
            let yw = lax::convert(&binary(lose, x, y)?, x.dtype())?;
            let tie = lax::convert(&binary(E::Eq, x, y)?, x.dtype())?;
            let half = mul(&tie, &c(0.5, x))?;
            let wx = add(&xw, &half)?;
            let wy = add(&yw, &half)?;
            add_tangents(scaled(tx, &wx)?, scaled(&ts[1], &wy)?)?
        }
        E::Select => {
            let (a, b) = (&ts[1], &ts[2]);
            match (a, b) {
                (None, None) => None,
                _ => {
                    let ta = fit(instantiate(a, &xs[1].aval())?, &out)?;
                    let tb = fit(instantiate(b, &xs[2].aval())?, &out)?;
                    Some(select(x, &ta, &tb)?)
                }
            }
        }
    };
    let t = t.map(|t| fit(t, &out)).transpose()?;
    Ok((vec![z], vec![t]))
}

/// `select` whose branches may be scalars: broadcast them to the predicate's shape first.
fn select_fit(p: &Array, a: &Array, b: &Array) -> Result<Array> {
    let shape = p.aval();
    let a = fit(a.clone(), &shape)?;
    let b = fit(b.clone(), &shape)?;
    select(p, &a, &b)
}

pub(crate) fn transpose(op: E, cts: &[Tangent], ins: &[LinIn]) -> Result<Vec<Tangent>> {
    let Some(ct) = single(cts) else { return Ok(vec![None; ins.len()]) };
    let name = op.name();
    let for_operand = |i: usize, v: Array| -> Result<Tangent> {
        if ins[i].is_linear() {
            Ok(Some(unfit(v, &ins[i].aval())?))
        } else {
            Ok(None)
        }
    };
    match op {
        E::Neg => Ok(vec![for_operand(0, neg(ct)?)?]),
        E::Add => Ok(vec![for_operand(0, ct.clone())?, for_operand(1, ct.clone())?]),
        E::Sub => Ok(vec![for_operand(0, ct.clone())?, for_operand(1, neg(ct)?)?]),
        E::Mul => match (&ins[0], &ins[1]) {
            (LinIn::Linear(_), LinIn::Known(y)) => Ok(vec![for_operand(0, mul(ct, y)?)?, None]),
            (LinIn::Known(x), LinIn::Linear(_)) => Ok(vec![None, for_operand(1, mul(x, ct)?)?]),
            _ => Err(nonlinear(name)),
        },
        E::Div => {
            let y = ins[1].known(name)?;
            if !ins[0].is_linear() {
                return Err(nonlinear(name));
            }
            Ok(vec![for_operand(0, lax::div(ct, y)?)?, None])
        }
        E::Convert { .. } => {
            let back = lax::convert(ct, ins[0].aval().dtype)?;
            Ok(vec![for_operand(0, back)?])
        }
        E::Select => {
            let p = ins[0].known(name)?;
            let zero = lax::zeros_like(&ct.aval())?;
            let a = if ins[1].is_linear() { for_operand(1, select(p, ct, &zero)?)? } else { None };
            let b = if ins[2].is_linear() { for_operand(2, select(p, &zero, ct)?)? } else { None };
            Ok(vec![None, a, b])
        }
        _ => Err(nonlinear(name)),
    }
}
