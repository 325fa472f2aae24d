//! Derivative rules, one file per primitive family (mirroring the IR): a JVP
//! rule for every primitive and a transpose rule for every primitive that can
//! be linear in some operand. Rules are written with `lax` operations on
//! arrays, so the equations they emit are recorded by the trace that runs them.

pub(crate) mod control;
pub(crate) mod elementwise;
pub(crate) mod linalg;
pub(crate) mod reduce;
pub(crate) mod shape;

use arrayjit_ir::{AVal, Loc, Prim};
use arrayjit_trace::lax;
use arrayjit_trace::{Array, Error, Result};

/// A tangent or cotangent; `None` is a symbolic zero (never materialised
/// unless an output needs it).
pub(crate) type Tangent = Option<Array>;

/// An operand of a linear equation during transposition.
pub(crate) enum LinIn {
    /// Depends linearly on the inputs being transposed; has no value.
    Linear(AVal),
    /// A known (residual or constant) value.
    Known(Array),
}

impl LinIn {
    pub(crate) fn aval(&self) -> AVal {
        match self {
            LinIn::Linear(a) => a.clone(),
            LinIn::Known(x) => x.aval(),
        }
    }

    pub(crate) fn known(&self, op: &str) -> Result<&Array> {
        match self {
            LinIn::Known(x) => Ok(x),
            LinIn::Linear(_) => Err(nonlinear(op)),
        }
    }

    pub(crate) fn is_linear(&self) -> bool {
        matches!(self, LinIn::Linear(_))
    }
}

pub(crate) fn transform_error(op: &str, message: impl Into<String>) -> Error {
    Error::Transform { op: op.to_string(), message: message.into(), loc: Default::default() }
}

/// Attributes an error that carries no source location yet to `loc` (the
/// equation being transformed, or the user's call of the transformation), so
/// that messages point at user code rather than at "<unknown location>".
pub(crate) fn locate(e: Error, loc: Loc) -> Error {
    let unknown = |l: &Loc| l.0.is_none();
    match e {
        Error::Type { source, loc: l } if unknown(&l) => Error::Type { source, loc },
        Error::Concretization { what, aval, loc: l } if unknown(&l) => Error::Concretization { what, aval, loc },
        Error::LeakedTracer { aval, origin, loc: l } if unknown(&l) => Error::LeakedTracer { aval, origin, loc },
        Error::Invalid { message, loc: l } if unknown(&l) => Error::Invalid { message, loc },
        Error::Transform { op, message, loc: l } if unknown(&l) => Error::Transform { op, message, loc },
        Error::Eval { message, loc: l } if unknown(&l) => Error::Eval { message, loc },
        Error::Tree { message, loc: l } if unknown(&l) => Error::Tree { message, loc },
        other => other,
    }
}

pub(crate) fn nonlinear(op: &str) -> Error {
    transform_error(op, "is not linear in the operands being transposed (an internal error of differentiation)")
}

/// Primals and tangents of a primitive's outputs.
pub(crate) type JvpOut = (Vec<Array>, Vec<Tangent>);

/// The JVP rule: outputs and their tangents, given inputs and their tangents.
pub(crate) fn jvp(prim: &Prim, primals: &[Array], tangents: &[Tangent]) -> Result<JvpOut> {
    // Integer and boolean values have no tangent.
    let tangents: Vec<Tangent> =
        primals.iter().zip(tangents).map(|(p, t)| if p.dtype().is_float() { t.clone() } else { None }).collect();
    if tangents.iter().all(Option::is_none) {
        let outs = lax::apply(prim.clone(), &primals.iter().collect::<Vec<_>>())?;
        let n = outs.len();
        return Ok((outs, vec![None; n]));
    }
    match prim {
        Prim::Elementwise(op) => elementwise::jvp(*op, primals, &tangents),
        Prim::Shape(op) => shape::jvp(op, primals, &tangents),
        Prim::Reduce(op) => reduce::jvp(op, primals, &tangents),
        Prim::Linalg(op) => linalg::jvp(op, primals, &tangents),
        Prim::Control(op) => control::jvp(op, primals, &tangents),
    }
}

/// The transpose rule: cotangents of the linear operands, given the outputs'
/// cotangents (at least one of which is not zero).
pub(crate) fn transpose(prim: &Prim, cts: &[Tangent], ins: &[LinIn]) -> Result<Vec<Tangent>> {
    match prim {
        Prim::Elementwise(op) => elementwise::transpose(*op, cts, ins),
        Prim::Shape(op) => shape::transpose(op, cts, ins),
        Prim::Reduce(op) => reduce::transpose(op, cts, ins),
        Prim::Linalg(op) => linalg::transpose(op, cts, ins),
        Prim::Control(op) => control::transpose(op, cts, ins),
    }
}

/// Sum of two tangents with symbolic zeros.
pub(crate) fn add_tangents(a: Tangent, b: Tangent) -> Result<Tangent> {
    Ok(match (a, b) {
        (None, t) | (t, None) => t,
        (Some(a), Some(b)) => Some(lax::add(&a, &b)?),
    })
}

/// A tangent of `aval`'s type, zeros materialised.
pub(crate) fn instantiate(t: &Tangent, aval: &AVal) -> Result<Array> {
    match t {
        Some(t) => Ok(t.clone()),
        None => lax::zeros_like(aval),
    }
}

/// The cotangent of a single-output equation (`None` if zero).
pub(crate) fn single(cts: &[Tangent]) -> Option<&Array> {
    cts.first().and_then(Option::as_ref)
}
