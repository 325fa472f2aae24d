//! Operands of array expressions (arrays or weakly-typed Rust scalars), and the
//! NumPy rules that turn them into IR operands: dtype promotion and broadcasting.

use crate::array::Array;
use crate::bind::bind1;
use crate::error::{Error, Result};
use arrayjit_ir::error::list_avals;
use arrayjit_ir::prim::{Elementwise, ShapeOp};
use arrayjit_ir::{broadcast_shapes, AVal, DType, Loc, Scalar, Shape, TypeError, WeakKind};

/// An array, or a Rust scalar that takes the array's dtype (see [`arrayjit_ir::dtype`]).
#[derive(Clone, Debug)]
pub enum Operand {
    Array(Array),
    Weak(Scalar, WeakKind),
}

impl From<Array> for Operand {
    fn from(a: Array) -> Operand {
        Operand::Array(a)
    }
}
impl From<&Array> for Operand {
    fn from(a: &Array) -> Operand {
        Operand::Array(a.clone())
    }
}
impl From<f64> for Operand {
    fn from(x: f64) -> Operand {
        Operand::Weak(Scalar::F64(x), WeakKind::Float)
    }
}
/// Weak like `f64`: `x * 2.0f32` keeps an f64 `x` in f64 (the scalar widens
/// exactly) and an f32 `x` in f32.
impl From<f32> for Operand {
    fn from(x: f32) -> Operand {
        Operand::Weak(Scalar::F32(x), WeakKind::Float)
    }
}
impl From<i32> for Operand {
    fn from(x: i32) -> Operand {
        Operand::Weak(Scalar::I32(x), WeakKind::Int)
    }
}
impl From<bool> for Operand {
    fn from(x: bool) -> Operand {
        Operand::Weak(Scalar::Bool(x), WeakKind::Bool)
    }
}

/// The Rust scalar types that can stand on the right of an array operator
/// (`x * 2.0f32`, `x + 1`). Sealed: the set is part of the promotion rules.
pub trait WeakScalar: Into<Operand> + Copy + sealed::Sealed {}

impl WeakScalar for f64 {}
impl WeakScalar for f32 {}
impl WeakScalar for i32 {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f64 {}
    impl Sealed for f32 {}
    impl Sealed for i32 {}
}

impl Operand {
    fn shape(&self) -> &[usize] {
        match self {
            Operand::Array(a) => a.shape(),
            Operand::Weak(..) => &[],
        }
    }
}

/// The dtype operands promote to.
pub(crate) fn result_dtype(ops: &[Operand]) -> DType {
    let strong = ops.iter().filter_map(|o| match o {
        Operand::Array(a) => Some(a.dtype()),
        Operand::Weak(..) => None,
    });
    let weak = ops.iter().filter_map(|o| match o {
        Operand::Weak(_, k) => Some(*k),
        Operand::Array(_) => None,
    });
    match strong.reduce(DType::promote) {
        Some(d) => weak.fold(d, DType::promote_weak),
        None => {
            let kinds: Vec<WeakKind> = weak.collect();
            if kinds.contains(&WeakKind::Float) {
                DType::F32
            } else if kinds.contains(&WeakKind::Int) {
                DType::I32
            } else {
                DType::Bool
            }
        }
    }
}

/// Converts an array to `dtype` (no-op if it already has it).
pub(crate) fn convert(a: &Array, dtype: DType, loc: Loc) -> Result<Array> {
    if a.dtype() == dtype {
        return Ok(a.clone());
    }
    bind1(Elementwise::Convert { to: dtype }.into(), &[a], loc)
}

/// Broadcasts an array to `shape` by NumPy's rules (no-op if equal).
pub(crate) fn broadcast_to(a: &Array, shape: &[usize], op: &str, loc: Loc) -> Result<Array> {
    if a.shape() == shape {
        return Ok(a.clone());
    }
    let (r, n) = (a.ndim(), shape.len());
    let ok = r <= n && a.shape().iter().zip(&shape[n - r..]).all(|(&d, &s)| d == s || d == 1);
    if !ok {
        return Err(Error::Type {
            source: TypeError::new(op, format!("cannot broadcast {} to shape {}", a.aval(), Shape::from(shape))),
            loc,
        });
    }
    let prim = ShapeOp::BroadcastInDim { shape: Shape::from(shape), dims: (n - r..n).collect() };
    bind1(prim.into(), &[a], loc)
}

/// The NumPy-broadcast shape of operands.
pub(crate) fn common_shape(op: &str, ops: &[Operand], loc: Loc) -> Result<Vec<usize>> {
    let mut shape: Vec<usize> = Vec::new();
    for o in ops {
        shape = match broadcast_shapes(&shape, o.shape()) {
            Some(s) => s.0,
            None => {
                let avals: Vec<AVal> = ops
                    .iter()
                    .map(|o| match o {
                        Operand::Array(a) => a.aval(),
                        Operand::Weak(s, _) => AVal::scalar(s.dtype()),
                    })
                    .collect();
                return Err(Error::Type {
                    source: TypeError::new(
                        op,
                        format!(
                            "cannot broadcast {} together (sizes must be equal or 1, aligned from the right)",
                            list_avals(&avals)
                        ),
                    ),
                    loc,
                });
            }
        };
    }
    Ok(shape)
}

/// An operand as an array of `dtype`, broadcast to `shape` unless it is rank 0
/// (the IR's elementwise rule lets scalars stand for any shape).
pub(crate) fn materialize(o: &Operand, dtype: DType, shape: &[usize], op: &str, loc: Loc) -> Result<Array> {
    match o {
        Operand::Weak(s, _) => Ok(Array::from_scalar(s.cast(dtype))),
        Operand::Array(a) => {
            let a = convert(a, dtype, loc)?;
            if a.ndim() == 0 {
                Ok(a)
            } else {
                broadcast_to(&a, shape, op, loc)
            }
        }
    }
}

/// Promotes and broadcasts operands of an elementwise op to one dtype (or
/// `dtype` if given) and one shape.
pub(crate) fn unify(op: &str, ops: Vec<Operand>, dtype: Option<DType>, loc: Loc) -> Result<Vec<Array>> {
    let dt = dtype.unwrap_or_else(|| result_dtype(&ops));
    let shape = common_shape(op, &ops, loc)?;
    ops.iter().map(|o| materialize(o, dt, &shape, op, loc)).collect()
}
