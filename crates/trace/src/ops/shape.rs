//! Shape methods: reshape, broadcast, transpose, squeeze/expand, slicing,
//! padding, concatenation, dynamic slices, diagonals.

use crate::array::{caller, Array};
use crate::bind::bind1;
use crate::error::{Error, OrRaise, Result};
use crate::ops::operand::broadcast_to as bcast;
use arrayjit_ir::prim::ShapeOp as S;
use arrayjit_ir::{DType, Loc, Scalar, Shape, TypeError};

fn invalid(op: &str, msg: String, loc: Loc) -> Error {
    Error::Type { source: TypeError::new(op, msg), loc }
}

/// Normalises a possibly negative axis among `rank` axes. `of` is the operand,
/// named in the error (`rank` differs from its rank where an op adds axes).
pub(crate) fn axis(op: &str, a: i64, rank: usize, of: &Array, loc: Loc) -> Result<usize> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(invalid(op, format!("axis {a} is out of range for rank {rank} (operand {})", of.aval()), loc));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

impl Array {
    /// The same elements in row-major order under a new shape.
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> Array {
        self.try_reshape(shape).or_raise()
    }

    /// [`Array::reshape`], returning errors.
    #[track_caller]
    pub fn try_reshape(&self, shape: impl Into<Shape>) -> Result<Array> {
        let shape = shape.into();
        if shape.dims() == self.shape() {
            return Ok(self.clone());
        }
        bind1(S::Reshape { shape }.into(), &[self], caller())
    }

    /// Broadcasts to `shape` by NumPy's rules.
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Array {
        self.try_broadcast_to(shape).or_raise()
    }

    /// [`Array::broadcast_to`], returning errors.
    #[track_caller]
    pub fn try_broadcast_to(&self, shape: impl Into<Shape>) -> Result<Array> {
        bcast(self, &shape.into(), "broadcast_to", caller())
    }

    /// Permutes the axes: output axis `i` is input axis `perm[i]`.
    ///
    /// In eager code the result is a view, copied only when its elements are
    /// read; a matrix product reads it in place (`m.t().matmul(&m)` is the
    /// symmetric product, with no copy of `m`).
    #[track_caller]
    pub fn transpose(&self, perm: &[usize]) -> Array {
        self.try_transpose(perm).or_raise()
    }

    /// [`Array::transpose`], returning errors.
    #[track_caller]
    pub fn try_transpose(&self, perm: &[usize]) -> Result<Array> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) && perm.len() == self.ndim() {
            return Ok(self.clone());
        }
        bind1(S::Transpose { perm: perm.to_vec() }.into(), &[self], caller())
    }

    /// Reverses the axes (NumPy's `.T`): the transpose of a matrix.
    #[track_caller]
    pub fn t(&self) -> Array {
        self.try_t().or_raise()
    }

    /// [`Array::t`], returning errors.
    #[track_caller]
    pub fn try_t(&self) -> Result<Array> {
        let perm: Vec<usize> = (0..self.ndim()).rev().collect();
        self.try_transpose(&perm)
    }

    /// Removes size-1 axes (negative axes count from the end).
    #[track_caller]
    pub fn squeeze(&self, axes: &[i64]) -> Array {
        self.try_squeeze(axes).or_raise()
    }

    /// [`Array::squeeze`], returning errors.
    #[track_caller]
    pub fn try_squeeze(&self, axes: &[i64]) -> Result<Array> {
        let loc = caller();
        let mut ax = axes.iter().map(|&a| axis("squeeze", a, self.ndim(), self, loc)).collect::<Result<Vec<_>>>()?;
        ax.sort_unstable();
        bind1(S::Squeeze { axes: ax }.into(), &[self], loc)
    }

    /// Inserts size-1 axes at the given output positions (negative count from the end).
    #[track_caller]
    pub fn expand_dims(&self, axes: &[i64]) -> Array {
        self.try_expand_dims(axes).or_raise()
    }

    /// [`Array::expand_dims`], returning errors.
    #[track_caller]
    pub fn try_expand_dims(&self, axes: &[i64]) -> Result<Array> {
        let loc = caller();
        let rank = self.ndim() + axes.len();
        let mut ax = axes.iter().map(|&a| axis("expand_dims", a, rank, self, loc)).collect::<Result<Vec<_>>>()?;
        ax.sort_unstable();
        bind1(S::ExpandDims { axes: ax }.into(), &[self], loc)
    }

    /// The block `start..limit` (per axis).
    #[track_caller]
    pub fn slice(&self, start: &[usize], limit: &[usize]) -> Array {
        self.try_slice(start, limit).or_raise()
    }

    /// [`Array::slice`], returning errors.
    #[track_caller]
    pub fn try_slice(&self, start: &[usize], limit: &[usize]) -> Result<Array> {
        self.try_slice_strided(start, limit, &vec![1; start.len()])
    }

    /// The elements `start, start+stride, ..` below `limit`, per axis.
    #[track_caller]
    pub fn slice_strided(&self, start: &[usize], limit: &[usize], strides: &[usize]) -> Array {
        self.try_slice_strided(start, limit, strides).or_raise()
    }

    /// [`Array::slice_strided`], returning errors.
    #[track_caller]
    pub fn try_slice_strided(&self, start: &[usize], limit: &[usize], strides: &[usize]) -> Result<Array> {
        let prim = S::Slice { start: start.to_vec(), limit: limit.to_vec(), strides: strides.to_vec() };
        bind1(prim.into(), &[self], caller())
    }

    /// Index `i` along `axis`, removing the axis: `x[.., i, ..]`.
    #[track_caller]
    pub fn index_axis(&self, axis: i64, i: usize) -> Array {
        self.try_index_axis(axis, i).or_raise()
    }

    /// [`Array::index_axis`], returning errors.
    #[track_caller]
    pub fn try_index_axis(&self, axis_: i64, i: usize) -> Result<Array> {
        let loc = caller();
        let ax = axis("index_axis", axis_, self.ndim(), self, loc)?;
        let n = self.shape()[ax];
        if i >= n {
            let message = format!("index {i} is out of range for axis {axis_} (of size {n}) of {}", self.aval());
            return Err(invalid("index_axis", message, loc));
        }
        let mut start = vec![0; self.ndim()];
        let mut limit = self.shape().to_vec();
        start[ax] = i;
        limit[ax] = i + 1;
        let s = bind1(S::Slice { start, limit, strides: vec![1; self.ndim()] }.into(), &[self], loc)?;
        bind1(S::Squeeze { axes: vec![ax] }.into(), &[&s], loc)
    }

    /// Pads with `value`: `low`/`high` elements before/after each axis (negative
    /// crops) and `interior` elements between neighbours.
    #[track_caller]
    pub fn pad(&self, low: &[i64], high: &[i64], interior: &[usize], value: f64) -> Array {
        self.try_pad(low, high, interior, value).or_raise()
    }

    /// [`Array::pad`], returning errors.
    #[track_caller]
    pub fn try_pad(&self, low: &[i64], high: &[i64], interior: &[usize], value: f64) -> Result<Array> {
        let v = Array::from_scalar(Scalar::from_f64(value, self.dtype()));
        let prim = S::Pad { low: low.to_vec(), high: high.to_vec(), interior: interior.to_vec() };
        bind1(prim.into(), &[self, &v], caller())
    }

    /// The window of size `sizes` starting at `starts` (i32 scalar arrays, or
    /// traced values), clamped to stay in bounds.
    #[track_caller]
    pub fn dynamic_slice(&self, starts: &[Array], sizes: &[usize]) -> Array {
        self.try_dynamic_slice(starts, sizes).or_raise()
    }

    /// [`Array::dynamic_slice`], returning errors.
    #[track_caller]
    pub fn try_dynamic_slice(&self, starts: &[Array], sizes: &[usize]) -> Result<Array> {
        let mut ins: Vec<&Array> = vec![self];
        ins.extend(starts);
        bind1(S::DynamicSlice { sizes: sizes.to_vec() }.into(), &ins, caller())
    }

    /// A copy with `update` written at `starts` (clamped to stay in bounds).
    #[track_caller]
    pub fn dynamic_update_slice(&self, update: &Array, starts: &[Array]) -> Array {
        self.try_dynamic_update_slice(update, starts).or_raise()
    }

    /// [`Array::dynamic_update_slice`], returning errors.
    #[track_caller]
    pub fn try_dynamic_update_slice(&self, update: &Array, starts: &[Array]) -> Result<Array> {
        let mut ins: Vec<&Array> = vec![self, update];
        ins.extend(starts);
        bind1(S::DynamicUpdateSlice.into(), &ins, caller())
    }

    /// The main diagonal of the last two axes: `[.., n, n] -> [.., n]`.
    #[track_caller]
    pub fn diag_part(&self) -> Array {
        self.try_diag_part().or_raise()
    }

    /// [`Array::diag_part`], returning errors.
    #[track_caller]
    pub fn try_diag_part(&self) -> Result<Array> {
        diag_part("diag_part", self, caller())
    }

    /// The square matrix with `self` (a vector, or a batch of them) on its diagonal.
    #[track_caller]
    pub fn diag(&self) -> Array {
        self.try_diag().or_raise()
    }

    /// [`Array::diag`], returning errors.
    #[track_caller]
    pub fn try_diag(&self) -> Result<Array> {
        let loc = caller();
        let n = *self.shape().last().ok_or_else(|| {
            invalid("diag", format!("expects a vector (or a batch of them), got {}", self.aval()), loc)
        })?;
        let mask = eye_mask(n, loc)?;
        let v = bind1(S::ExpandDims { axes: vec![self.ndim() - 1] }.into(), &[self], loc)?;
        let zero = Array::from_scalar(Scalar::from_f64(0.0, self.dtype()));
        crate::ops::elementwise::select(mask.into(), v.into(), zero.into(), loc)
    }

    /// The sum of the main diagonal of the last two axes.
    #[track_caller]
    pub fn trace(&self) -> Array {
        self.try_trace().or_raise()
    }

    /// [`Array::trace`], returning errors.
    #[track_caller]
    pub fn try_trace(&self) -> Result<Array> {
        let loc = caller();
        let d = diag_part("trace", self, loc)?;
        crate::ops::reduce::reduce(arrayjit_ir::prim::Reduction::Sum { axes: vec![d.ndim() - 1] }, &d, loc)
    }
}

/// The diagonal of the last two axes, with errors naming `op` (the user's method).
pub(crate) fn diag_part(op: &str, x: &Array, loc: Loc) -> Result<Array> {
    let r = x.ndim();
    if r < 2 || x.shape()[r - 1] != x.shape()[r - 2] {
        return Err(invalid(op, format!("expects a square matrix (or a batch of them), got {}", x.aval()), loc));
    }
    let mask = eye_mask(x.shape()[r - 1], loc)?;
    let zero = Array::from_scalar(Scalar::from_f64(0.0, x.dtype()));
    let m = crate::ops::elementwise::select(mask.into(), x.into(), zero.into(), loc)?;
    crate::ops::reduce::reduce(arrayjit_ir::prim::Reduction::Sum { axes: vec![r - 1] }, &m, loc)
}

/// `[n, n]` bool, true on the diagonal.
fn eye_mask(n: usize, loc: Loc) -> Result<Array> {
    let rows = bind1(S::Iota { dtype: DType::I32, shape: Shape::from([n, n]), axis: 0 }.into(), &[], loc)?;
    let cols = bind1(S::Iota { dtype: DType::I32, shape: Shape::from([n, n]), axis: 1 }.into(), &[], loc)?;
    bind1(arrayjit_ir::prim::Elementwise::Eq.into(), &[&rows, &cols], loc)
}

/// Joins arrays along `axis` (they are promoted to a common dtype).
#[track_caller]
pub fn concatenate(arrays: &[Array], axis_: i64) -> Array {
    try_concatenate(arrays, axis_).or_raise()
}

/// [`concatenate`], returning errors.
#[track_caller]
pub fn try_concatenate(arrays: &[Array], axis_: i64) -> Result<Array> {
    let loc = caller();
    let first = arrays.first().ok_or_else(|| invalid("concatenate", "needs at least one array".into(), loc))?;
    let ax = axis("concatenate", axis_, first.ndim(), first, loc)?;
    let dt = arrays.iter().map(Array::dtype).fold(first.dtype(), DType::promote);
    let conv = arrays.iter().map(|a| crate::ops::operand::convert(a, dt, loc)).collect::<Result<Vec<_>>>()?;
    let refs: Vec<&Array> = conv.iter().collect();
    bind1(S::Concatenate { axis: ax }.into(), &refs, loc)
}

/// Stacks equal-shaped arrays along a new axis (promoted to a common dtype, as
/// in [`concatenate`]).
#[track_caller]
pub fn stack(arrays: &[Array], axis: i64) -> Array {
    try_stack(arrays, axis).or_raise()
}

/// [`stack`], returning errors.
#[track_caller]
pub fn try_stack(arrays: &[Array], axis_: i64) -> Result<Array> {
    let loc = caller();
    let first = arrays.first().ok_or_else(|| invalid("stack", "needs at least one array".into(), loc))?;
    let ax = axis("stack", axis_, first.ndim() + 1, first, loc)?;
    if let Some(other) = arrays.iter().find(|a| a.shape() != first.shape()) {
        let message = format!("needs arrays of one shape, got {} and {}", first.aval(), other.aval());
        return Err(invalid("stack", message, loc));
    }
    let dt = arrays.iter().map(Array::dtype).fold(first.dtype(), DType::promote);
    let ex = arrays
        .iter()
        .map(|a| {
            let a = crate::ops::operand::convert(a, dt, loc)?;
            bind1(S::ExpandDims { axes: vec![ax] }.into(), &[&a], loc)
        })
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&Array> = ex.iter().collect();
    bind1(S::Concatenate { axis: ax }.into(), &refs, loc)
}
