//! Reductions: sum, product, max and min over any set of axes; argmax and
//! argmin along one axis.
//!
//! Each input element is folded, in row-major order, into the accumulator of
//! the output element it belongs to (its index with the reduced axes dropped).
//! Sums and products of `f32` accumulate in `f64` and round once; `i32` wraps.
//! Max and min propagate NaN. Over an empty set, the results are the
//! identities: 0 (sum), 1 (prod), -inf / `i32::MIN` (max), +inf / `i32::MAX` (min).

use crate::elementwise::{float_max, float_min};
use crate::index::{indices, ravel};
use crate::typed::{array, typed, with_num, Elem, Num};
use crate::EvalError;
use arrayjit_ir::prim::Reduction;
use arrayjit_ir::{AVal, HostArray};

use Reduction as R;

/// Evaluates a reduction; `out` is the rule's output type.
pub(crate) fn eval(op: &Reduction, args: &[&HostArray], out: &AVal) -> Result<HostArray, EvalError> {
    let name = op.name();
    let x = args[0];
    let internal = || EvalError::Internal { op: name, message: format!("cannot reduce {}", x.aval()) };
    let data = match op {
        R::Sum { axes } => with_num!(x.dtype(), T => T::wrap(fold::<T, _>(
            name, x, axes, &out.shape, T::ZERO, |acc, v| T::add(acc, v.widen()), T::narrow,
        )?), bool => return Err(internal())),
        R::Prod { axes } => with_num!(x.dtype(), T => T::wrap(fold::<T, _>(
            name, x, axes, &out.shape, T::ONE, |acc, v| T::mul(acc, v.widen()), T::narrow,
        )?), bool => return Err(internal())),
        R::Max { axes } => with_num!(x.dtype(), T => T::wrap(fold::<T, T>(
            name, x, axes, &out.shape, T::LOWEST, T::max_nan, |v| v,
        )?), bool => return Err(internal())),
        R::Min { axes } => with_num!(x.dtype(), T => T::wrap(fold::<T, T>(
            name, x, axes, &out.shape, T::HIGHEST, T::min_nan, |v| v,
        )?), bool => return Err(internal())),
        R::ArgMax { axis } => with_num!(x.dtype(), T => arrayjit_ir::Data::I32(
            arg_extremum::<T>(name, x, *axis, &out.shape, T::beats_max)?,
        ), bool => return Err(internal())),
        R::ArgMin { axis } => with_num!(x.dtype(), T => arrayjit_ir::Data::I32(
            arg_extremum::<T>(name, x, *axis, &out.shape, T::beats_min)?,
        ), bool => return Err(internal())),
    };
    array(name, &out.shape, data)
}

/// Folds every input element into its output element's accumulator, starting
/// from `init`, and finishes each accumulator with `finish`.
fn fold<T: Elem, A: Copy>(
    name: &'static str,
    x: &HostArray,
    axes: &[usize],
    out_dims: &[usize],
    init: A,
    step: impl Fn(A, T) -> A,
    finish: impl Fn(A) -> T,
) -> Result<Vec<T>, EvalError> {
    let xs = typed::<T>(name, x)?;
    let mut acc = vec![init; out_dims.iter().product()];
    for (flat, i) in indices(x.shape()).enumerate() {
        let kept: Vec<usize> = (0..i.len()).filter(|k| !axes.contains(k)).map(|k| i[k]).collect();
        let o = ravel(&kept, out_dims);
        acc[o] = step(acc[o], xs[flat]);
    }
    Ok(acc.into_iter().map(finish).collect())
}

/// The index along `axis` of the first element that no later element beats.
/// `beats(candidate, best)` says whether `candidate` replaces the current best;
/// it is strict, so ties keep the first.
fn arg_extremum<T: Elem>(
    name: &'static str,
    x: &HostArray,
    axis: usize,
    out_dims: &[usize],
    beats: fn(T, T) -> bool,
) -> Result<Vec<i32>, EvalError> {
    let xs = typed::<T>(name, x)?;
    let dims = x.shape().dims();
    let mut result = Vec::with_capacity(out_dims.iter().product());
    for o in indices(out_dims) {
        // The input index: the output index with the scanned axis put back.
        let mut i = o.clone();
        i.insert(axis, 0);
        let mut best_at = 0;
        let mut best = xs[ravel(&i, dims)];
        for j in 1..dims[axis] {
            i[axis] = j;
            let v = xs[ravel(&i, dims)];
            if beats(v, best) {
                best = v;
                best_at = j;
            }
        }
        let at = i32::try_from(best_at).map_err(|_| EvalError::Internal {
            op: name,
            message: format!("index {best_at} does not fit in the i32 result"),
        })?;
        result.push(at);
    }
    Ok(result)
}

/// The max/min identities and NaN-propagating comparisons per numeric type.
trait Extremum: Num {
    const LOWEST: Self;
    const HIGHEST: Self;
    fn max_nan(a: Self, b: Self) -> Self;
    fn min_nan(a: Self, b: Self) -> Self;
    /// Whether `v` replaces `best` as the maximum: it is larger, or it is the
    /// first NaN (a NaN counts as the maximum, and the first one wins).
    fn beats_max(v: Self, best: Self) -> bool;
    /// As [`Extremum::beats_max`] for the minimum.
    fn beats_min(v: Self, best: Self) -> bool;
}

impl Extremum for i32 {
    const LOWEST: i32 = i32::MIN;
    const HIGHEST: i32 = i32::MAX;
    fn max_nan(a: i32, b: i32) -> i32 {
        a.max(b)
    }
    fn min_nan(a: i32, b: i32) -> i32 {
        a.min(b)
    }
    fn beats_max(v: i32, best: i32) -> bool {
        v > best
    }
    fn beats_min(v: i32, best: i32) -> bool {
        v < best
    }
}

macro_rules! float_extremum {
    ($t:ty) => {
        impl Extremum for $t {
            const LOWEST: $t = <$t>::NEG_INFINITY;
            const HIGHEST: $t = <$t>::INFINITY;
            fn max_nan(a: $t, b: $t) -> $t {
                // Exact for f32: the larger of two f32 values is one of them.
                float_max(a as f64, b as f64) as $t
            }
            fn min_nan(a: $t, b: $t) -> $t {
                float_min(a as f64, b as f64) as $t
            }
            fn beats_max(v: $t, best: $t) -> bool {
                !best.is_nan() && (v.is_nan() || v > best)
            }
            fn beats_min(v: $t, best: $t) -> bool {
                !best.is_nan() && (v.is_nan() || v < best)
            }
        }
    };
}

float_extremum!(f32);
float_extremum!(f64);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval_prim;
    use crate::test_util::*;
    use arrayjit_ir::{DType, Data};

    fn axes(a: &[usize]) -> Vec<usize> {
        a.to_vec()
    }

    #[test]
    fn sums_and_products_over_any_axes() {
        for d in [DType::I32, DType::F32, DType::F64] {
            // [[1, 2, 3], [4, 5, 6]]
            let x = fl(d, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
            assert_eq!(eval1(R::Sum { axes: axes(&[0]) }, [x.clone()]), fl(d, &[3], &[5.0, 7.0, 9.0]));
            assert_eq!(eval1(R::Sum { axes: axes(&[1]) }, [x.clone()]), fl(d, &[2], &[6.0, 15.0]));
            assert_eq!(eval1(R::Sum { axes: axes(&[1, 0]) }, [x.clone()]), fl(d, &[], &[21.0]));
            assert_eq!(eval1(R::Sum { axes: axes(&[]) }, [x.clone()]), x);
            assert_eq!(eval1(R::Prod { axes: axes(&[0]) }, [x.clone()]), fl(d, &[3], &[4.0, 10.0, 18.0]));
            assert_eq!(eval1(R::Prod { axes: axes(&[0, 1]) }, [x.clone()]), fl(d, &[], &[720.0]));
            assert_eq!(eval1(R::Max { axes: axes(&[1]) }, [x.clone()]), fl(d, &[2], &[3.0, 6.0]));
            assert_eq!(eval1(R::Min { axes: axes(&[0]) }, [x.clone()]), fl(d, &[3], &[1.0, 2.0, 3.0]));
            assert_eq!(eval1(R::Sum { axes: axes(&[]) }, [fl(d, &[], &[4.0])]), fl(d, &[], &[4.0]));
        }
        // A 3-D reduction over the outer axes: out[j] = sum over i, k of x[i, j, k].
        let x = HostArray::new([2, 3, 2], Data::F64((0..12).map(|v| v as f64).collect())).unwrap();
        let r = eval1(R::Sum { axes: axes(&[0, 2]) }, [x.clone()]);
        assert_eq!(r, f64s(&[3], &[0.0 + 1.0 + 6.0 + 7.0, 2.0 + 3.0 + 8.0 + 9.0, 4.0 + 5.0 + 10.0 + 11.0]));
        assert_eq!(eval1(R::Max { axes: axes(&[1]) }, [x]), f64s(&[2, 2], &[4.0, 5.0, 10.0, 11.0]));
    }

    #[test]
    fn empty_reductions_give_identities() {
        let e = f32s(&[0, 3], &[]);
        assert_eq!(eval1(R::Sum { axes: axes(&[0]) }, [e.clone()]), f32s(&[3], &[0.0; 3]));
        assert_eq!(eval1(R::Prod { axes: axes(&[0]) }, [e.clone()]), f32s(&[3], &[1.0; 3]));
        assert_eq!(eval1(R::Max { axes: axes(&[0]) }, [e.clone()]), f32s(&[3], &[f32::NEG_INFINITY; 3]));
        assert_eq!(eval1(R::Min { axes: axes(&[0]) }, [e.clone()]), f32s(&[3], &[f32::INFINITY; 3]));
        assert_eq!(eval1(R::Sum { axes: axes(&[1]) }, [e]), f32s(&[0], &[]));
        let e = i32s(&[0], &[]);
        assert_eq!(eval1(R::Sum { axes: axes(&[0]) }, [e.clone()]), i32s(&[], &[0]));
        assert_eq!(eval1(R::Prod { axes: axes(&[0]) }, [e.clone()]), i32s(&[], &[1]));
        assert_eq!(eval1(R::Max { axes: axes(&[0]) }, [e.clone()]), i32s(&[], &[i32::MIN]));
        assert_eq!(eval1(R::Min { axes: axes(&[0]) }, [e]), i32s(&[], &[i32::MAX]));
        let e = f64s(&[2, 0], &[]);
        assert_eq!(eval1(R::Max { axes: axes(&[1]) }, [e]), f64s(&[2], &[f64::NEG_INFINITY; 2]));
    }

    #[test]
    fn accumulation_precision_and_wrapping() {
        // Ten copies of 0.1f32 summed in f64 round once to 1.0; an f32
        // accumulator gives 1.0000001.
        let r = eval1(R::Sum { axes: axes(&[0]) }, [f32s(&[10], &[0.1; 10])]);
        assert_eq!(r, f32s(&[], &[1.0]));
        let mut big = vec![1.0e8f32];
        big.extend([1.0f32; 16]);
        assert_eq!(eval1(R::Sum { axes: axes(&[0]) }, [f32s(&[17], &big)]), f32s(&[], &[100_000_016.0]));
        // The f32 product is rounded once: x^3 for x = 1 + 2^-12 is exact in f64
        // and rounds up in f32, while two f32 roundings land one ulp lower.
        let x = 1.0f32 + 2f32.powi(-12);
        let once = (x as f64).powi(3) as f32;
        assert_ne!(once, x * x * x);
        assert_eq!(eval1(R::Prod { axes: axes(&[0]) }, [f32s(&[3], &[x; 3])]), f32s(&[], &[once]));
        assert_eq!(eval1(R::Sum { axes: axes(&[0]) }, [i32s(&[2], &[i32::MAX, 2])]), i32s(&[], &[i32::MIN + 1]));
        assert_eq!(eval1(R::Prod { axes: axes(&[0]) }, [i32s(&[2], &[65536, 65536])]), i32s(&[], &[0]));
    }

    #[test]
    fn max_and_min_propagate_nan() {
        for d in [DType::F32, DType::F64] {
            let x = fl(d, &[2, 3], &[1.0, f64::NAN, 3.0, f64::NAN, -1.0, -2.0]);
            for op in [R::Max { axes: axes(&[1]) }, R::Min { axes: axes(&[1]) }] {
                assert!(vals(&eval1(op, [x.clone()])).iter().all(|v| v.is_nan()));
            }
            let r = vals(&eval1(R::Max { axes: axes(&[0]) }, [x.clone()]));
            assert!(r[0].is_nan() && r[1].is_nan() && r[2] == 3.0, "{r:?}");
            let z = fl(d, &[2], &[-0.0, 0.0]);
            assert!(vals(&eval1(R::Max { axes: axes(&[0]) }, [z.clone()]))[0].is_sign_positive());
            assert!(vals(&eval1(R::Min { axes: axes(&[0]) }, [z]))[0].is_sign_negative());
            let s = vals(&eval1(R::Sum { axes: axes(&[0]) }, [fl(d, &[2], &[f64::INFINITY, f64::NEG_INFINITY])]));
            assert!(s[0].is_nan());
        }
    }

    #[test]
    fn argmax_and_argmin_take_the_first_extremum() {
        let x = i32s(&[2, 4], &[1, 5, 5, 0, 7, -1, 7, -1]);
        assert_eq!(eval1(R::ArgMax { axis: 1 }, [x.clone()]), i32s(&[2], &[1, 0]));
        assert_eq!(eval1(R::ArgMin { axis: 1 }, [x.clone()]), i32s(&[2], &[3, 1]));
        assert_eq!(eval1(R::ArgMax { axis: 0 }, [x.clone()]), i32s(&[4], &[1, 0, 1, 0]));
        assert_eq!(eval1(R::ArgMin { axis: 0 }, [x]), i32s(&[4], &[0, 1, 0, 1]));
        for d in [DType::F32, DType::F64] {
            let nan = f64::NAN;
            let x = fl(
                d,
                &[4, 4],
                &[
                    1.0,
                    nan,
                    5.0,
                    nan, //
                    nan,
                    9.0,
                    -9.0,
                    1.0, //
                    2.0,
                    2.0,
                    -3.0,
                    -3.0, //
                    -0.0,
                    0.0,
                    f64::NEG_INFINITY,
                    f64::INFINITY,
                ],
            );
            assert_eq!(eval1(R::ArgMax { axis: 1 }, [x.clone()]), i32s(&[4], &[1, 0, 0, 3]));
            assert_eq!(eval1(R::ArgMin { axis: 1 }, [x.clone()]), i32s(&[4], &[1, 0, 2, 2]));
            assert_eq!(eval1(R::ArgMax { axis: 0 }, [x.clone()]), i32s(&[4], &[1, 0, 0, 0]));
            assert_eq!(eval1(R::ArgMin { axis: 0 }, [x]), i32s(&[4], &[1, 0, 3, 0]));
        }
        assert_eq!(eval1(R::ArgMax { axis: 0 }, [f32s(&[1], &[f32::NAN])]), i32s(&[], &[0]));
        assert_eq!(eval1(R::ArgMin { axis: 1 }, [f64s(&[0, 3], &[])]), i32s(&[0], &[]));
        assert_eq!(eval1(R::ArgMin { axis: 1 }, [f64s(&[2, 1], &[4.0, 3.0])]), i32s(&[2], &[0, 0]));
    }

    #[test]
    fn rule_violations_are_errors() {
        let e = eval_prim(&R::ArgMax { axis: 0 }.into(), &[f32s(&[0], &[])]).unwrap_err();
        assert!(e.to_string().contains("is empty, so it has no extremum"), "{e}");
        let e = eval_prim(&R::Sum { axes: axes(&[0]) }.into(), &[bools(&[1], &[true])]).unwrap_err();
        assert!(e.to_string().contains("numeric dtypes"), "{e}");
        assert!(eval_prim(&R::Sum { axes: axes(&[1]) }.into(), &[f32s(&[1], &[1.0])]).is_err());
    }
}
