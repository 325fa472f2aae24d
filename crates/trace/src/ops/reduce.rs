//! Reduction methods: sum, mean, max, min, prod over any axes (with
//! `_keepdims` forms), argmax/argmin along one axis.

use crate::array::{caller, Array};
use crate::bind::bind1;
use crate::error::{OrRaise, Result};
use crate::ops::operand::convert;
use crate::ops::shape::axis;
use arrayjit_ir::prim::{Reduction as R, ShapeOp};
use arrayjit_ir::{DType, Loc};
use std::ops::RangeFull;

/// Which axes to reduce: an axis (`0`, `-1`), a list (`[0, 1]`, `&[0, 1][..]`,
/// `vec![..]`), or all of them (`..`). Negative axes count from the end.
pub trait Axes {
    fn axes(&self, rank: usize) -> Option<Vec<i64>>;
}

impl Axes for i32 {
    fn axes(&self, _: usize) -> Option<Vec<i64>> {
        Some(vec![*self as i64])
    }
}
impl Axes for usize {
    fn axes(&self, _: usize) -> Option<Vec<i64>> {
        Some(vec![*self as i64])
    }
}
impl<const N: usize> Axes for [i32; N] {
    fn axes(&self, _: usize) -> Option<Vec<i64>> {
        Some(self.iter().map(|&a| a as i64).collect())
    }
}
impl Axes for &[i32] {
    fn axes(&self, _: usize) -> Option<Vec<i64>> {
        Some(self.iter().map(|&a| a as i64).collect())
    }
}
impl Axes for Vec<i32> {
    fn axes(&self, _: usize) -> Option<Vec<i64>> {
        Some(self.iter().map(|&a| a as i64).collect())
    }
}
impl Axes for &[usize] {
    fn axes(&self, _: usize) -> Option<Vec<i64>> {
        Some(self.iter().map(|&a| a as i64).collect())
    }
}
impl Axes for Vec<usize> {
    fn axes(&self, _: usize) -> Option<Vec<i64>> {
        Some(self.iter().map(|&a| a as i64).collect())
    }
}
impl Axes for RangeFull {
    fn axes(&self, rank: usize) -> Option<Vec<i64>> {
        Some((0..rank as i64).collect())
    }
}

fn resolve(op: &str, spec: &dyn Axes, rank: usize, loc: Loc) -> Result<Vec<usize>> {
    let raw = spec.axes(rank).unwrap_or_default();
    let mut out = raw.iter().map(|&a| axis(op, a, rank, loc)).collect::<Result<Vec<_>>>()?;
    out.sort_unstable();
    Ok(out)
}

pub(crate) fn reduce(r: R, x: &Array, loc: Loc) -> Result<Array> {
    bind1(r.into(), &[x], loc)
}

fn keep(reduced: Array, axes: &[usize], loc: Loc) -> Result<Array> {
    if axes.is_empty() {
        return Ok(reduced);
    }
    bind1(ShapeOp::ExpandDims { axes: axes.to_vec() }.into(), &[&reduced], loc)
}

fn reduce_axes(kind: fn(Vec<usize>) -> R, x: &Array, spec: &dyn Axes, keepdims: bool, loc: Loc) -> Result<Array> {
    let name = kind(vec![]).name();
    let axes = resolve(name, spec, x.ndim(), loc)?;
    // Sums of booleans count (as NumPy does).
    let x = if x.dtype() == DType::Bool { convert(x, DType::I32, loc)? } else { x.clone() };
    let r = reduce(kind(axes.clone()), &x, loc)?;
    if keepdims {
        keep(r, &axes, loc)
    } else {
        Ok(r)
    }
}

fn mean(x: &Array, spec: &dyn Axes, keepdims: bool, loc: Loc) -> Result<Array> {
    let axes = resolve("mean", spec, x.ndim(), loc)?;
    let count: usize = axes.iter().map(|&a| x.shape()[a]).product();
    let x = if x.dtype().is_float() { x.clone() } else { convert(x, DType::F32, loc)? };
    let s = reduce(R::Sum { axes: axes.clone() }, &x, loc)?;
    let m = crate::ops::elementwise::true_div(s.into(), (count as f64).into(), loc)?;
    if keepdims {
        keep(m, &axes, loc)
    } else {
        Ok(m)
    }
}

macro_rules! reductions {
    ($($(#[$doc:meta])* $name:ident $keep:ident => $kind:expr;)*) => {
        impl Array {
            $(
                $(#[$doc])*
                #[track_caller]
                pub fn $name(&self, axes: impl Axes) -> Array {
                    reduce_axes($kind, self, &axes, false, caller()).or_raise()
                }
                #[doc = concat!("[`Array::", stringify!($name), "`] keeping the reduced axes with size 1.")]
                #[track_caller]
                pub fn $keep(&self, axes: impl Axes) -> Array {
                    reduce_axes($kind, self, &axes, true, caller()).or_raise()
                }
            )*
        }
    };
}

reductions! {
    /// Sum over `axes` (`..` for all); booleans are counted.
    sum sum_keepdims => |axes| R::Sum { axes };
    /// Maximum over `axes` (NaN propagates).
    max max_keepdims => |axes| R::Max { axes };
    /// Minimum over `axes` (NaN propagates).
    min min_keepdims => |axes| R::Min { axes };
    /// Product over `axes`.
    prod prod_keepdims => |axes| R::Prod { axes };
}

impl Array {
    /// Mean over `axes` (`..` for all); integers average in f32.
    #[track_caller]
    pub fn mean(&self, axes: impl Axes) -> Array {
        mean(self, &axes, false, caller()).or_raise()
    }

    /// [`Array::mean`] keeping the reduced axes with size 1.
    #[track_caller]
    pub fn mean_keepdims(&self, axes: impl Axes) -> Array {
        mean(self, &axes, true, caller()).or_raise()
    }

    /// Index (i32) of the first maximum along `axis`.
    #[track_caller]
    pub fn argmax(&self, axis_: i64) -> Array {
        let loc = caller();
        axis("argmax", axis_, self.ndim(), loc).and_then(|a| reduce(R::ArgMax { axis: a }, self, loc)).or_raise()
    }

    /// Index (i32) of the first minimum along `axis`.
    #[track_caller]
    pub fn argmin(&self, axis_: i64) -> Array {
        let loc = caller();
        axis("argmin", axis_, self.ndim(), loc).and_then(|a| reduce(R::ArgMin { axis: a }, self, loc)).or_raise()
    }

    /// [`Array::sum`], returning errors.
    #[track_caller]
    pub fn try_sum(&self, axes: impl Axes) -> Result<Array> {
        reduce_axes(|axes| R::Sum { axes }, self, &axes, false, caller())
    }
}
