//! Direct primitive application, without NumPy's broadcasting or promotion:
//! operands must already satisfy the primitive's rule (JAX's `lax`). Used by
//! transformation rules, which know their operands' exact types.

use crate::array::Array;
use crate::bind::{bind, bind1};
use crate::error::Result;
use arrayjit_ir::prim::{DotDims, Elementwise as E, Linalg, Reduction, ShapeOp};
use arrayjit_ir::{DType, Loc, Scalar, Shape};

thread_local! {
    static LOC: std::cell::Cell<Loc> = const { std::cell::Cell::new(Loc(None)) };
}

/// Runs `f` with equations it emits attributed to `at` (a transformation
/// attributes the equations a rule emits to the user's line of the original
/// operation).
pub fn at<R>(at: Loc, f: impl FnOnce() -> R) -> R {
    let prev = LOC.with(|l| l.replace(at));
    struct Restore(Loc);
    impl Drop for Restore {
        fn drop(&mut self) {
            LOC.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(prev);
    f()
}

fn loc() -> Loc {
    LOC.with(|l| l.get())
}

pub fn unary(op: E, x: &Array) -> Result<Array> {
    bind1(op.into(), &[x], loc())
}

pub fn binary(op: E, a: &Array, b: &Array) -> Result<Array> {
    bind1(op.into(), &[a, b], loc())
}

pub fn add(a: &Array, b: &Array) -> Result<Array> {
    binary(E::Add, a, b)
}

pub fn sub(a: &Array, b: &Array) -> Result<Array> {
    binary(E::Sub, a, b)
}

pub fn mul(a: &Array, b: &Array) -> Result<Array> {
    binary(E::Mul, a, b)
}

pub fn div(a: &Array, b: &Array) -> Result<Array> {
    binary(E::Div, a, b)
}

pub fn neg(x: &Array) -> Result<Array> {
    unary(E::Neg, x)
}

pub fn select(pred: &Array, on_true: &Array, on_false: &Array) -> Result<Array> {
    bind1(E::Select.into(), &[pred, on_true, on_false], loc())
}

pub fn convert(x: &Array, to: DType) -> Result<Array> {
    if x.dtype() == to {
        return Ok(x.clone());
    }
    bind1(E::Convert { to }.into(), &[x], loc())
}

pub fn integer_pow(x: &Array, exponent: i32) -> Result<Array> {
    bind1(E::IntegerPow { exponent }.into(), &[x], loc())
}

/// A rank-0 constant of `dtype`.
pub fn scalar(v: f64, dtype: DType) -> Array {
    Array::from_scalar(Scalar::from_f64(v, dtype))
}

/// `v` broadcast to `shape` (staged when tracing).
pub fn full(shape: &[usize], v: f64, dtype: DType) -> Result<Array> {
    let s = scalar(v, dtype);
    if shape.is_empty() {
        return Ok(s);
    }
    broadcast_in_dim(&s, shape, &[])
}

/// Zeros with `like`'s dtype and shape.
pub fn zeros_like(like: &arrayjit_ir::AVal) -> Result<Array> {
    full(&like.shape, 0.0, like.dtype)
}

pub fn broadcast_in_dim(x: &Array, shape: &[usize], dims: &[usize]) -> Result<Array> {
    if x.shape() == shape && dims.iter().enumerate().all(|(i, &d)| i == d) {
        return Ok(x.clone());
    }
    bind1(ShapeOp::BroadcastInDim { shape: Shape::from(shape), dims: dims.to_vec() }.into(), &[x], loc())
}

pub fn reshape(x: &Array, shape: &[usize]) -> Result<Array> {
    if x.shape() == shape {
        return Ok(x.clone());
    }
    bind1(ShapeOp::Reshape { shape: Shape::from(shape) }.into(), &[x], loc())
}

pub fn transpose(x: &Array, perm: &[usize]) -> Result<Array> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(x.clone());
    }
    bind1(ShapeOp::Transpose { perm: perm.to_vec() }.into(), &[x], loc())
}

pub fn reduce_sum(x: &Array, axes: &[usize]) -> Result<Array> {
    if axes.is_empty() {
        return Ok(x.clone());
    }
    bind1(Reduction::Sum { axes: axes.to_vec() }.into(), &[x], loc())
}

pub fn dot_general(a: &Array, b: &Array, dims: DotDims) -> Result<Array> {
    bind1(Linalg::DotGeneral(dims).into(), &[a, b], loc())
}

/// Applies any primitive (for rules that re-emit the primitive they handle).
pub fn apply(prim: arrayjit_ir::Prim, inputs: &[&Array]) -> Result<Vec<Array>> {
    bind(prim, inputs, loc())
}

/// Evaluates a closed program on `args` in the current context (for rules
/// that run a program in place of a primitive).
pub fn apply_program(p: &arrayjit_ir::Program, args: &[Array]) -> Result<Vec<Array>> {
    crate::bind::apply_program(p, args, loc())
}

/// Applies a single-output primitive.
pub fn apply1(prim: arrayjit_ir::Prim, inputs: &[&Array]) -> Result<Array> {
    bind1(prim, inputs, loc())
}
