//! Reduction methods: sum, mean, max, min, prod over any axes (with
//! `_keepdims` forms), argmax/argmin along one axis.

use crate::array::{caller, Array};
use crate::bind::bind1;
use crate::error::{Error, OrRaise, Result};
use crate::ops::operand::convert;
use crate::ops::shape::axis;
use arrayjit_ir::prim::{Reduction as R, ShapeOp};
use arrayjit_ir::{DType, Loc, TypeError};
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
/// A `usize` axis as the signed axes the checks take: one beyond `i64` is
/// out of range for every array, and must not wrap to a negative axis.
fn signed(a: usize) -> i64 {
    i64::try_from(a).unwrap_or(i64::MAX)
}

impl Axes for usize {
    fn axes(&self, _: usize) -> Option<Vec<i64>> {
        Some(vec![signed(*self)])
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
        Some(self.iter().map(|&a| signed(a)).collect())
    }
}
impl Axes for Vec<usize> {
    fn axes(&self, _: usize) -> Option<Vec<i64>> {
        Some(self.iter().map(|&a| signed(a)).collect())
    }
}
impl Axes for RangeFull {
    fn axes(&self, rank: usize) -> Option<Vec<i64>> {
        Some((0..rank as i64).collect())
    }
}

fn resolve(op: &str, spec: &dyn Axes, x: &Array, loc: Loc) -> Result<Vec<usize>> {
    let rank = x.ndim();
    let raw = spec.axes(rank).unwrap_or_default();
    let mut out = raw.iter().map(|&a| axis(op, a, rank, x, loc)).collect::<Result<Vec<_>>>()?;
    out.sort_unstable();
    if let Some(w) = out.windows(2).find(|w| w[0] == w[1]) {
        let message = format!("axis {} is given twice in {raw:?} (operand {})", w[0], x.aval());
        return Err(Error::Type { source: TypeError::new(op, message), loc });
    }
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
    let axes = resolve(name, spec, x, loc)?;
    // As NumPy and JAX: a maximum or minimum of no elements has no value
    // (the primitive itself gives the identity, −∞ or +∞).
    let extremum = matches!(kind(vec![]), R::Max { .. } | R::Min { .. });
    if let Some(&a) = axes.iter().find(|&&a| extremum && x.shape()[a] == 0) {
        let message = format!("axis {a} of {} is empty, so it has no extremum", x.aval());
        return Err(Error::Type { source: TypeError::new(name, message), loc });
    }
    // Sums and products of booleans count (as NumPy does); their maximum
    // and minimum are booleans again (any, all).
    let bool_in = x.dtype() == DType::Bool;
    let x = if bool_in { convert(x, DType::I32, loc)? } else { x.clone() };
    let r = reduce(kind(axes.clone()), &x, loc)?;
    let r = if bool_in && extremum { convert(&r, DType::Bool, loc)? } else { r };
    if keepdims {
        keep(r, &axes, loc)
    } else {
        Ok(r)
    }
}

fn mean(x: &Array, spec: &dyn Axes, keepdims: bool, loc: Loc) -> Result<Array> {
    let axes = resolve("mean", spec, x, loc)?;
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
    ($($(#[$doc:meta])* $name:ident $try_name:ident, $keep:ident $try_keep:ident => $kind:expr;)*) => {
        impl Array {
            $(
                $(#[$doc])*
                #[track_caller]
                pub fn $name(&self, axes: impl Axes) -> Array {
                    self.$try_name(axes).or_raise()
                }
                #[doc = concat!("[`Array::", stringify!($name), "`], returning errors.")]
                #[track_caller]
                pub fn $try_name(&self, axes: impl Axes) -> Result<Array> {
                    reduce_axes($kind, self, &axes, false, caller())
                }
                #[doc = concat!("[`Array::", stringify!($name), "`] keeping the reduced axes with size 1.")]
                #[track_caller]
                pub fn $keep(&self, axes: impl Axes) -> Array {
                    self.$try_keep(axes).or_raise()
                }
                #[doc = concat!("[`Array::", stringify!($keep), "`], returning errors.")]
                #[track_caller]
                pub fn $try_keep(&self, axes: impl Axes) -> Result<Array> {
                    reduce_axes($kind, self, &axes, true, caller())
                }
            )*
        }
    };
}

reductions! {
    /// Sum over `axes` (`..` for all); booleans are counted.
    sum try_sum, sum_keepdims try_sum_keepdims => |axes| R::Sum { axes };
    /// Maximum over `axes` (NaN propagates; an empty axis is an error; for
    /// booleans, whether any is true).
    max try_max, max_keepdims try_max_keepdims => |axes| R::Max { axes };
    /// Minimum over `axes` (NaN propagates; an empty axis is an error; for
    /// booleans, whether all are true).
    min try_min, min_keepdims try_min_keepdims => |axes| R::Min { axes };
    /// Product over `axes`.
    prod try_prod, prod_keepdims try_prod_keepdims => |axes| R::Prod { axes };
}

impl Array {
    /// Mean over `axes` (`..` for all); integers average in f32.
    #[track_caller]
    pub fn mean(&self, axes: impl Axes) -> Array {
        self.try_mean(axes).or_raise()
    }

    /// [`Array::mean`], returning errors.
    #[track_caller]
    pub fn try_mean(&self, axes: impl Axes) -> Result<Array> {
        mean(self, &axes, false, caller())
    }

    /// [`Array::mean`] keeping the reduced axes with size 1.
    #[track_caller]
    pub fn mean_keepdims(&self, axes: impl Axes) -> Array {
        self.try_mean_keepdims(axes).or_raise()
    }

    /// [`Array::mean_keepdims`], returning errors.
    #[track_caller]
    pub fn try_mean_keepdims(&self, axes: impl Axes) -> Result<Array> {
        mean(self, &axes, true, caller())
    }

    /// Index (i32) of the first maximum along `axis`.
    #[track_caller]
    pub fn argmax(&self, axis: i64) -> Array {
        self.try_argmax(axis).or_raise()
    }

    /// [`Array::argmax`], returning errors.
    #[track_caller]
    pub fn try_argmax(&self, axis: i64) -> Result<Array> {
        arg_reduce("argmax", |axis| R::ArgMax { axis }, self, axis, caller())
    }

    /// Index (i32) of the first minimum along `axis`.
    #[track_caller]
    pub fn argmin(&self, axis: i64) -> Array {
        self.try_argmin(axis).or_raise()
    }

    /// [`Array::argmin`], returning errors.
    #[track_caller]
    pub fn try_argmin(&self, axis: i64) -> Result<Array> {
        arg_reduce("argmin", |axis| R::ArgMin { axis }, self, axis, caller())
    }
}

fn arg_reduce(op: &str, kind: fn(usize) -> R, x: &Array, axis_: i64, loc: Loc) -> Result<Array> {
    let a = axis(op, axis_, x.ndim(), x, loc)?;
    // The first true (or false) of a mask: on booleans counted as 0 and 1.
    if x.dtype() == DType::Bool {
        return reduce(kind(a), &convert(x, DType::I32, loc)?, loc);
    }
    reduce(kind(a), x, loc)
}
