//! Array constructors that are staged when tracing: zeros, ones, full, eye,
//! iota/arange. Under a trace they become equations, not baked-in constants.

use crate::array::{caller, Array};
use crate::bind::bind1;
use crate::error::{OrRaise, Result};
use arrayjit_ir::prim::ShapeOp;
use arrayjit_ir::{DType, Loc, Scalar, Shape};

fn full_(shape: Shape, value: Scalar, loc: Loc) -> Result<Array> {
    let s = Array::from_scalar(value);
    if shape.rank() == 0 {
        return Ok(s);
    }
    bind1(ShapeOp::BroadcastInDim { shape, dims: vec![] }.into(), &[&s], loc)
}

impl Array {
    /// An array of `shape` filled with `value` (converted to `dtype`).
    #[track_caller]
    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType) -> Array {
        full_(shape.into(), Scalar::from_f64(value, dtype), caller()).or_raise()
    }

    /// Zeros of `shape` and `dtype`.
    #[track_caller]
    pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Array {
        full_(shape.into(), Scalar::from_f64(0.0, dtype), caller()).or_raise()
    }

    /// Ones of `shape` and `dtype`.
    #[track_caller]
    pub fn ones(shape: impl Into<Shape>, dtype: DType) -> Array {
        full_(shape.into(), Scalar::from_f64(1.0, dtype), caller()).or_raise()
    }

    /// Zeros with the shape and dtype of `self`.
    #[track_caller]
    pub fn zeros_like(&self) -> Array {
        full_(Shape(self.shape().to_vec()), Scalar::from_f64(0.0, self.dtype()), caller()).or_raise()
    }

    /// Ones with the shape and dtype of `self`.
    #[track_caller]
    pub fn ones_like(&self) -> Array {
        full_(Shape(self.shape().to_vec()), Scalar::from_f64(1.0, self.dtype()), caller()).or_raise()
    }

    /// The `n × n` identity matrix.
    #[track_caller]
    pub fn eye(n: usize, dtype: DType) -> Array {
        crate::ops::linalg::eye(n, dtype, caller()).or_raise()
    }

    /// The index along `axis`, broadcast to `shape`.
    #[track_caller]
    pub fn iota(dtype: DType, shape: impl Into<Shape>, axis: usize) -> Array {
        Array::try_iota(dtype, shape, axis).or_raise()
    }

    /// [`Array::iota`], returning errors (an axis out of range, a bool dtype).
    #[track_caller]
    pub fn try_iota(dtype: DType, shape: impl Into<Shape>, axis: usize) -> Result<Array> {
        bind1(ShapeOp::Iota { dtype, shape: shape.into(), axis }.into(), &[], caller())
    }

    /// `[0, 1, .., n-1]`.
    #[track_caller]
    pub fn arange(n: usize, dtype: DType) -> Array {
        Array::try_arange(n, dtype).or_raise()
    }

    /// [`Array::arange`], returning errors (a bool dtype).
    #[track_caller]
    pub fn try_arange(n: usize, dtype: DType) -> Result<Array> {
        bind1(ShapeOp::Iota { dtype, shape: Shape::from([n]), axis: 0 }.into(), &[], caller())
    }
}
