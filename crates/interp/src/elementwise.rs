//! Elementwise primitives: one scalar function per primitive and dtype, mapped
//! over the operands.
//!
//! Rank-0 operands stand for arrays of the common shape (the rule admits
//! scalars mixed with arrays). The scalar semantics, where a choice exists:
//!
//! - `i32` arithmetic wraps (`add`, `sub`, `mul`, `neg`, `abs`). `div`
//!   truncates toward zero with `x / 0 = -1` and `i32::MIN / -1 = i32::MIN`;
//!   `rem` has the dividend's sign with `x rem 0 = x` (XLA's choices).
//! - `f32` is computed by widening to `f64` exactly, applying the `f64`
//!   function and rounding once. For `+ - * / sqrt rem floor ceil` this is
//!   exactly the IEEE `f32` operation; for the transcendental functions it is
//!   nearly always the correctly rounded result, the best an oracle can give.
//!   (NaN payloads are not promised to survive.)
//! - float `max`/`min` propagate NaN, and order `-0 < +0` (IEEE 754-2019
//!   maximum/minimum).
//! - `sign` is -1/0/1 on `i32`; on floats ±1, keeping ±0 and NaN.
//! - `logistic(x) = 1/(1+exp(-x))`, evaluated as `exp(x)/(1+exp(x))` for
//!   negative `x` so that no intermediate overflows.
//! - `integer_pow` multiplies by repeated squaring in the element type (see
//!   [`int_pow_float`], [`int_pow_i32`]).
//! - `not`/`and`/`or` are logical on `bool` and bitwise on `i32`.
//! - comparisons are IEEE (NaN compares false except under `ne`); `false < true`.
//! - `convert` has `Scalar::cast` semantics.

use crate::typed::{array, typed, with_dtype, Elem};
use crate::EvalError;
use arrayjit_ir::prim::Elementwise;
use arrayjit_ir::{AVal, DType, Data, HostArray};

use Elementwise as E;

/// Evaluates an elementwise primitive; `out` is the rule's output type.
pub(crate) fn eval(op: Elementwise, args: &[&HostArray], out: &AVal) -> Result<HostArray, EvalError> {
    let n = out.numel();
    let name = op.name();
    let data = match op {
        E::Select => {
            let pred: &[bool] = typed(name, args[0])?;
            with_dtype!(args[1].dtype(), T => {
                let (t, f) = (typed::<T>(name, args[1])?, typed::<T>(name, args[2])?);
                T::wrap((0..n).map(|i| if at(pred, i) { at(t, i) } else { at(f, i) }).collect())
            })
        }
        E::Convert { to } => convert(args[0], to),
        E::StopGradient => args[0].data().clone(),
        E::IsFinite => {
            let x = widened(name, args[0])?;
            Data::Bool(map1(&x, n, f64::is_finite))
        }
        E::IntegerPow { exponent } => match args[0].data() {
            Data::I32(x) => Data::I32(map1(x, n, |v| int_pow_i32(v, exponent))),
            Data::F32(x) => Data::F32(map1(x, n, |v| int_pow_float(v, exponent, 1.0, |a, b| a * b, |a| 1.0 / a))),
            Data::F64(x) => Data::F64(map1(x, n, |v| int_pow_float(v, exponent, 1.0, |a, b| a * b, |a| 1.0 / a))),
            Data::Bool(_) => return Err(no_kernel(op, DType::Bool)),
        },
        op if op.is_comparison() => with_dtype!(args[0].dtype(), T => {
            let f = compare_fn::<T>(op).ok_or_else(|| no_kernel(op, args[0].dtype()))?;
            Data::Bool(map2(typed::<T>(name, args[0])?, typed::<T>(name, args[1])?, n, |a, b| f(&a, &b)))
        }),
        E::Not | E::And | E::Or => match args[0].dtype() {
            DType::Bool => apply::<bool>(op, args, n, bool_fn1(op), bool_fn2(op))?,
            DType::I32 => apply::<i32>(op, args, n, bits_fn1(op), bits_fn2(op))?,
            d => return Err(no_kernel(op, d)),
        },
        _ => match args[0].dtype() {
            DType::I32 => apply::<i32>(op, args, n, int_fn1(op), int_fn2(op))?,
            DType::F64 => apply::<f64>(op, args, n, float_fn1(op), float_fn2(op))?,
            DType::F32 => {
                // Through f64, rounding once (see the module docs).
                let xs: Vec<Vec<f64>> = args.iter().map(|a| widened(name, a)).collect::<Result<_, _>>()?;
                let wide = match (float_fn1(op), float_fn2(op), xs.as_slice()) {
                    (Some(f), _, [x]) => map1(x, n, f),
                    (_, Some(f), [a, b]) => map2(a, b, n, f),
                    _ => return Err(no_kernel(op, DType::F32)),
                };
                Data::F32(wide.into_iter().map(|v| v as f32).collect())
            }
            d => return Err(no_kernel(op, d)),
        },
    };
    array(name, &out.shape, data)
}

/// Element `i` of an operand, where a one-element (rank-0) operand stands for
/// every position.
fn at<T: Copy>(xs: &[T], i: usize) -> T {
    if xs.len() == 1 {
        xs[0]
    } else {
        xs[i]
    }
}

fn map1<T: Copy, U>(x: &[T], n: usize, f: impl Fn(T) -> U) -> Vec<U> {
    (0..n).map(|i| f(at(x, i))).collect()
}

fn map2<T: Copy, U>(a: &[T], b: &[T], n: usize, f: impl Fn(T, T) -> U) -> Vec<U> {
    (0..n).map(|i| f(at(a, i), at(b, i))).collect()
}

/// Applies the unary or binary kernel of `op` (whichever its arity calls for).
fn apply<T: Elem>(
    op: Elementwise,
    args: &[&HostArray],
    n: usize,
    f1: Option<fn(T) -> T>,
    f2: Option<fn(T, T) -> T>,
) -> Result<Data, EvalError> {
    let name = op.name();
    let out = match (f1, f2, args) {
        (Some(f), _, [x]) => map1(typed::<T>(name, x)?, n, f),
        (_, Some(f), [a, b]) => map2(typed::<T>(name, a)?, typed::<T>(name, b)?, n, f),
        _ => return Err(no_kernel(op, args.first().map_or(DType::F32, |a| a.dtype()))),
    };
    Ok(T::wrap(out))
}

fn no_kernel(op: Elementwise, d: DType) -> EvalError {
    EvalError::Internal { op: op.name(), message: format!("no {d} kernel") }
}

/// The elements of a float array as `f64` (exact for `f32`).
fn widened(op: &'static str, a: &HostArray) -> Result<Vec<f64>, EvalError> {
    crate::typed::to_f64s(op, a)
}

/// `convert`: each element cast with `Scalar::cast` (floats to `i32` truncate
/// toward zero and saturate, NaN becomes 0; to `bool` is `!= 0`; `bool` to a
/// number is 0 or 1). Converting to the same dtype returns the data unchanged.
fn convert(x: &HostArray, to: DType) -> Data {
    if x.dtype() == to {
        return x.data().clone();
    }
    Data::from_scalars(to, (0..x.numel()).map(|i| x.data().get(i).cast(to)))
}

fn compare_fn<T: PartialOrd>(op: Elementwise) -> Option<fn(&T, &T) -> bool> {
    Some(match op {
        E::Eq => PartialEq::eq,
        E::Ne => PartialEq::ne,
        E::Lt => PartialOrd::lt,
        E::Le => PartialOrd::le,
        E::Gt => PartialOrd::gt,
        E::Ge => PartialOrd::ge,
        _ => return None,
    })
}

fn bool_fn1(op: Elementwise) -> Option<fn(bool) -> bool> {
    (op == E::Not).then_some(|x: bool| !x)
}

fn bool_fn2(op: Elementwise) -> Option<fn(bool, bool) -> bool> {
    match op {
        E::And => Some(|a, b| a && b),
        E::Or => Some(|a, b| a || b),
        _ => None,
    }
}

fn bits_fn1(op: Elementwise) -> Option<fn(i32) -> i32> {
    (op == E::Not).then_some(|x: i32| !x)
}

fn bits_fn2(op: Elementwise) -> Option<fn(i32, i32) -> i32> {
    match op {
        E::And => Some(|a, b| a & b),
        E::Or => Some(|a, b| a | b),
        _ => None,
    }
}

/// The unary `i32` kernels.
fn int_fn1(op: Elementwise) -> Option<fn(i32) -> i32> {
    Some(match op {
        E::Neg => i32::wrapping_neg,
        E::Abs => i32::wrapping_abs,
        E::Sign => i32::signum,
        _ => return None,
    })
}

/// The binary `i32` kernels.
fn int_fn2(op: Elementwise) -> Option<fn(i32, i32) -> i32> {
    Some(match op {
        E::Add => i32::wrapping_add,
        E::Sub => i32::wrapping_sub,
        E::Mul => i32::wrapping_mul,
        E::Div => int_div,
        E::Rem => int_rem,
        E::Pow => int_pow_i32,
        E::Max => |a, b| a.max(b),
        E::Min => |a, b| a.min(b),
        _ => return None,
    })
}

/// Division truncating toward zero; `x / 0 = -1` and `i32::MIN / -1 = i32::MIN` (XLA).
pub(crate) fn int_div(a: i32, b: i32) -> i32 {
    if b == 0 {
        -1
    } else {
        a.wrapping_div(b)
    }
}

/// Remainder with the dividend's sign; `x rem 0 = x` and `i32::MIN rem -1 = 0`.
pub(crate) fn int_rem(a: i32, b: i32) -> i32 {
    if b == 0 {
        a
    } else {
        a.wrapping_rem(b)
    }
}

/// The unary float kernels, on `f64`.
fn float_fn1(op: Elementwise) -> Option<fn(f64) -> f64> {
    Some(match op {
        E::Neg => |x| -x,
        E::Abs => f64::abs,
        E::Sign => float_sign,
        E::Exp => f64::exp,
        E::Log => f64::ln,
        E::Log1p => f64::ln_1p,
        E::Expm1 => f64::exp_m1,
        E::Sqrt => f64::sqrt,
        E::Rsqrt => |x| 1.0 / x.sqrt(),
        E::Tanh => f64::tanh,
        E::Logistic => logistic,
        E::Sin => f64::sin,
        E::Cos => f64::cos,
        E::Floor => f64::floor,
        E::Ceil => f64::ceil,
        _ => return None,
    })
}

/// The binary float kernels, on `f64`.
fn float_fn2(op: Elementwise) -> Option<fn(f64, f64) -> f64> {
    Some(match op {
        E::Add => |a, b| a + b,
        E::Sub => |a, b| a - b,
        E::Mul => |a, b| a * b,
        E::Div => |a, b| a / b,
        E::Rem => |a, b| a % b,
        E::Pow => f64::powf,
        E::Max => float_max,
        E::Min => float_min,
        _ => return None,
    })
}

/// ±1 for nonzero numbers; ±0 and NaN are returned unchanged.
fn float_sign(x: f64) -> f64 {
    if x == 0.0 || x.is_nan() {
        x
    } else {
        1f64.copysign(x)
    }
}

/// `1 / (1 + exp(-x))` without overflow: for negative `x`, `exp(-x)` could
/// overflow, so use the equal form `exp(x) / (1 + exp(x))`.
fn logistic(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The larger of two floats; NaN if either is NaN; `max(-0, +0) = +0`.
pub(crate) fn float_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        a + b
    } else if a > b || (a == b && b.is_sign_negative()) {
        a
    } else {
        b
    }
}

/// The smaller of two floats; NaN if either is NaN; `min(-0, +0) = -0`.
pub(crate) fn float_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        a + b
    } else if a < b || (a == b && a.is_sign_negative()) {
        a
    } else {
        b
    }
}

/// `x^n` for floats by repeated squaring in the element type: the bits of `|n|`
/// are read from the least significant up, multiplying the accumulator (which
/// starts at 1) by `x^(2^k)` for each set bit `k`; a negative `n` takes the
/// reciprocal at the end. `x^0 = 1` for every `x`, NaN included.
fn int_pow_float<T: Copy>(x: T, n: i32, one: T, mul: impl Fn(T, T) -> T, recip: impl Fn(T) -> T) -> T {
    let mut acc = one;
    let mut base = x;
    let mut k = n.unsigned_abs();
    while k > 0 {
        if k & 1 == 1 {
            acc = mul(acc, base);
        }
        k >>= 1;
        if k > 0 {
            base = mul(base, base);
        }
    }
    if n < 0 {
        recip(acc)
    } else {
        acc
    }
}

/// `x^n` for `i32` with wrapping multiplication. A negative `n` is integer
/// division `1 / x^|n|` truncated: 1 for `x = 1`, ±1 for `x = -1` (by parity),
/// -1 for `x = 0` (as `1 / 0`), else 0.
fn int_pow_i32(x: i32, n: i32) -> i32 {
    if n >= 0 {
        return int_pow_float(x, n, 1, i32::wrapping_mul, |a| a);
    }
    match x {
        1 => 1,
        -1 if n % 2 == 0 => 1,
        -1 => -1,
        0 => -1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use crate::{eval_prim, EvalError};

    const FLOATS: [DType; 2] = [DType::F32, DType::F64];

    fn tol(d: DType) -> f64 {
        if d == DType::F32 {
            1e-6
        } else {
            1e-14
        }
    }

    /// Checks `op` on each `(input, expected)` pair in both float dtypes.
    fn check_unary(op: Elementwise, cases: &[(f64, f64)]) {
        for d in FLOATS {
            let xs: Vec<f64> = cases.iter().map(|c| c.0).collect();
            let want: Vec<f64> = cases.iter().map(|c| c.1).collect();
            let r = eval1(op, [fl(d, &[xs.len()], &xs)]);
            assert_eq!(r.dtype(), d);
            assert_close(&vals(&r), &want, tol(d));
        }
    }

    fn check_binary(op: Elementwise, cases: &[(f64, f64, f64)]) {
        for d in FLOATS {
            let a: Vec<f64> = cases.iter().map(|c| c.0).collect();
            let b: Vec<f64> = cases.iter().map(|c| c.1).collect();
            let want: Vec<f64> = cases.iter().map(|c| c.2).collect();
            let r = eval1(op, [fl(d, &[a.len()], &a), fl(d, &[b.len()], &b)]);
            assert_close(&vals(&r), &want, tol(d));
        }
    }

    fn int2(op: Elementwise, a: i32, b: i32) -> i32 {
        let r = eval1(op, [i32s(&[], &[a]), i32s(&[], &[b])]);
        match r.data() {
            Data::I32(v) => v[0],
            d => panic!("{d:?}"),
        }
    }

    fn f64_1(op: Elementwise, x: f64) -> f64 {
        vals(&eval1(op, [f64s(&[], &[x])]))[0]
    }

    fn f32_1(op: Elementwise, x: f32) -> f32 {
        match eval1(op, [f32s(&[], &[x])]).into_data() {
            Data::F32(v) => v[0],
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn unary_float_functions() {
        let e = std::f64::consts::E;
        check_unary(E::Neg, &[(1.5, -1.5), (-2.0, 2.0), (0.0, 0.0)]);
        check_unary(E::Abs, &[(-1.5, 1.5), (2.0, 2.0)]);
        check_unary(E::Sign, &[(-3.5, -1.0), (0.25, 1.0), (f64::INFINITY, 1.0)]);
        check_unary(E::Exp, &[(0.0, 1.0), (1.0, e), (-1.0, 1.0 / e)]);
        check_unary(E::Log, &[(1.0, 0.0), (e, 1.0), (0.5, -std::f64::consts::LN_2)]);
        check_unary(E::Log1p, &[(0.0, 0.0), (e - 1.0, 1.0), (1e-10, 1e-10 - 5e-21)]);
        check_unary(E::Expm1, &[(0.0, 0.0), (1.0, e - 1.0), (1e-10, 1e-10 + 5e-21)]);
        check_unary(E::Sqrt, &[(4.0, 2.0), (2.0, std::f64::consts::SQRT_2), (0.0, 0.0)]);
        check_unary(E::Rsqrt, &[(4.0, 0.5), (0.25, 2.0), (2.0, std::f64::consts::FRAC_1_SQRT_2)]);
        check_unary(E::Tanh, &[(0.0, 0.0), (1.0, 0.7615941559557649), (-30.0, -1.0)]);
        check_unary(E::Logistic, &[(0.0, 0.5), (1.0, 0.7310585786300049), (-1.0, 0.2689414213699951)]);
        check_unary(E::Sin, &[(0.0, 0.0), (std::f64::consts::FRAC_PI_2, 1.0), (1.0, 0.8414709848078965)]);
        check_unary(E::Cos, &[(0.0, 1.0), (std::f64::consts::PI, -1.0), (1.0, 0.5403023058681398)]);
        check_unary(E::Floor, &[(1.5, 1.0), (-1.5, -2.0), (-0.5, -1.0), (3.0, 3.0)]);
        check_unary(E::Ceil, &[(1.5, 2.0), (-1.5, -1.0), (-0.5, 0.0), (3.0, 3.0)]);
    }

    #[test]
    fn unary_special_values() {
        assert_eq!(f64_1(E::Sign, -0.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(f64_1(E::Sign, 0.0).to_bits(), 0.0f64.to_bits());
        assert!(f64_1(E::Sign, f64::NAN).is_nan());
        assert_eq!(f32_1(E::Sign, -0.0).to_bits(), (-0.0f32).to_bits());
        assert!(f32_1(E::Sign, f32::NAN).is_nan());
        assert_eq!(f32_1(E::Sign, -1e-30), -1.0);
        // logistic never overflows to NaN.
        for x in [1000.0, -1000.0, f64::INFINITY, f64::NEG_INFINITY] {
            let want = if x > 0.0 { 1.0 } else { 0.0 };
            assert_eq!(f64_1(E::Logistic, x), want, "logistic({x})");
            assert_eq!(f32_1(E::Logistic, x as f32), want as f32);
        }
        // Deep in the negative tail the result is tiny but not zero (the naive
        // formula overflows exp(-x) and returns 0).
        let tail = f64_1(E::Logistic, -720.0);
        assert!(tail > 0.0 && (tail - (-720f64).exp()).abs() <= 1e-3 * tail, "{tail}");
        assert!(f32_1(E::Logistic, -100.0) > 0.0);
        assert_eq!(f64_1(E::Rsqrt, 0.0), f64::INFINITY);
        assert_eq!(f64_1(E::Log, 0.0), f64::NEG_INFINITY);
        assert!(f64_1(E::Log, -1.0).is_nan());
        assert!(f32_1(E::Sqrt, -1.0).is_nan());
        assert_eq!(f32_1(E::Sqrt, -0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f32_1(E::Neg, 0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f32_1(E::Exp, 100.0), f32::INFINITY);
        assert_eq!(f32_1(E::Abs, f32::NEG_INFINITY), f32::INFINITY);
        assert!(f32_1(E::Exp, f32::NAN).is_nan());
        // f32 goes through f64 but rounds once: exact ops equal the f32 ones.
        assert_eq!(f32_1(E::Sqrt, 2.0), 2f32.sqrt());
        assert_eq!(f32_1(E::Exp, 1.0), std::f32::consts::E);
    }

    #[test]
    fn binary_float_functions() {
        check_binary(E::Add, &[(1.5, 2.25, 3.75), (-1.0, 1.0, 0.0)]);
        check_binary(E::Sub, &[(1.5, 2.25, -0.75), (3.0, -1.0, 4.0)]);
        check_binary(E::Mul, &[(1.5, -2.0, -3.0), (0.5, 0.5, 0.25)]);
        check_binary(E::Div, &[(1.0, 4.0, 0.25), (-3.0, 2.0, -1.5)]);
        check_binary(E::Rem, &[(7.0, 3.0, 1.0), (-7.0, 3.0, -1.0), (7.0, -3.0, 1.0), (5.5, 2.0, 1.5)]);
        check_binary(E::Pow, &[(2.0, 10.0, 1024.0), (4.0, 0.5, 2.0), (2.0, -1.0, 0.5), (0.0, 0.0, 1.0)]);
        check_binary(E::Max, &[(1.0, 2.0, 2.0), (-1.0, -2.0, -1.0), (f64::NEG_INFINITY, -1e30, -1e30)]);
        check_binary(E::Min, &[(1.0, 2.0, 1.0), (-1.0, -2.0, -2.0), (f64::INFINITY, 1e30, 1e30)]);
        // f32 addition is exactly the f32 operation (0.1 + 0.2 rounds in f32).
        let r = eval1(E::Add, [f32s(&[1], &[0.1]), f32s(&[1], &[0.2])]);
        assert_eq!(r, f32s(&[1], &[0.1f32 + 0.2f32]));
    }

    #[test]
    fn binary_float_special_values() {
        for d in FLOATS {
            let nan = f64::NAN;
            let a = fl(d, &[6], &[nan, 1.0, nan, -0.0, 0.0, 1.0]);
            let b = fl(d, &[6], &[1.0, nan, nan, 0.0, -0.0, 0.0]);
            let max = vals(&eval1(E::Max, [a.clone(), b.clone()]));
            let min = vals(&eval1(E::Min, [a.clone(), b.clone()]));
            assert!(max[..3].iter().all(|v| v.is_nan()) && min[..3].iter().all(|v| v.is_nan()), "{max:?} {min:?}");
            // -0 < +0 for max and min, whichever side they come from.
            assert!(max[3] == 0.0 && max[3].is_sign_positive() && max[4].is_sign_positive());
            assert!(min[3] == 0.0 && min[3].is_sign_negative() && min[4].is_sign_negative());
            let div = vals(&eval1(E::Div, [a.clone(), b.clone()]));
            assert_eq!(div[5], f64::INFINITY);
            assert!(div[3].is_nan(), "0/0");
            let rem = vals(&eval1(E::Rem, [fl(d, &[2], &[1.0, -4.0]), fl(d, &[2], &[0.0, 2.0])]));
            assert!(rem[0].is_nan());
            assert!(rem[1] == 0.0 && rem[1].is_sign_negative(), "the dividend's sign, even for zero");
            assert!(vals(&eval1(E::Pow, [fl(d, &[], &[-8.0]), fl(d, &[], &[1.0 / 3.0])]))[0].is_nan());
        }
    }

    #[test]
    fn integer_arithmetic_wraps_and_follows_xla() {
        assert_eq!(int2(E::Add, i32::MAX, 1), i32::MIN);
        assert_eq!(int2(E::Sub, i32::MIN, 1), i32::MAX);
        assert_eq!(int2(E::Mul, i32::MAX, 2), -2);
        assert_eq!(int2(E::Mul, -6, 7), -42);
        assert_eq!(int2(E::Div, 7, 2), 3);
        assert_eq!(int2(E::Div, -7, 2), -3);
        assert_eq!(int2(E::Div, 7, -2), -3);
        assert_eq!(int2(E::Div, 5, 0), -1);
        assert_eq!(int2(E::Div, -5, 0), -1);
        assert_eq!(int2(E::Div, 0, 0), -1);
        assert_eq!(int2(E::Div, i32::MIN, -1), i32::MIN);
        assert_eq!(int2(E::Rem, 7, 3), 1);
        assert_eq!(int2(E::Rem, -7, 3), -1);
        assert_eq!(int2(E::Rem, 7, -3), 1);
        assert_eq!(int2(E::Rem, 9, 0), 9);
        assert_eq!(int2(E::Rem, -9, 0), -9);
        assert_eq!(int2(E::Rem, i32::MIN, -1), 0);
        assert_eq!(int2(E::Max, -3, 2), 2);
        assert_eq!(int2(E::Min, -3, 2), -3);
        let x = i32s(&[5], &[i32::MIN, -5, 0, 5, i32::MAX]);
        assert_eq!(eval1(E::Neg, [x.clone()]), i32s(&[5], &[i32::MIN, 5, 0, -5, -i32::MAX]));
        assert_eq!(eval1(E::Abs, [x.clone()]), i32s(&[5], &[i32::MIN, 5, 0, 5, i32::MAX]));
        assert_eq!(eval1(E::Sign, [x]), i32s(&[5], &[-1, -1, 0, 1, 1]));
    }

    #[test]
    fn pow_of_integers_is_exact() {
        // Wrapping powers for non-negative exponents; for negative ones the
        // truncated 1 / x^|y| (0 past ±1, -1 for 0 as 1 / 0 is).
        let xs = [3, -2, 2, 1, -1, 0, 7, i32::MAX, i32::MIN];
        let ys = [0, 1, 2, 5, 30, 31, 32, 40, i32::MAX, -1, -2, -3, i32::MIN];
        let (a, b): (Vec<i32>, Vec<i32>) = xs.iter().flat_map(|&x| ys.iter().map(move |&y| (x, y))).unzip();
        let n = a.len();
        let got = eval1(E::Pow, [i32s(&[n], &a), i32s(&[n], &b)]);
        for (k, (&x, &y)) in a.iter().zip(&b).enumerate() {
            let want = match (x, y) {
                (_, 0..) => x.wrapping_pow(y as u32),
                (1, _) => 1,
                (-1, _) if y % 2 == 0 => 1,
                (-1, _) => -1,
                (0, _) => -1,
                _ => 0,
            };
            assert_eq!(got.data().get(k), arrayjit_ir::Scalar::I32(want), "{x}^{y}");
        }
        assert_eq!(eval1(E::Pow, [i32s(&[3], &[2, 3, 10]), i32s(&[3], &[10, 40, 9])]).data().get(0).as_f64(), 1024.0);
        let big = eval1(E::Pow, [i32s(&[1], &[3]), i32s(&[1], &[40])]);
        assert_eq!(big, i32s(&[1], &[3i32.wrapping_pow(40)]));
        let exact = eval1(E::Pow, [i32s(&[1], &[10]), i32s(&[1], &[9])]);
        assert_eq!(exact, i32s(&[1], &[1_000_000_000]), "beyond f32's integers");
    }

    #[test]
    fn integer_pow_by_squaring() {
        let ip = |n: i32| E::IntegerPow { exponent: n };
        let x = i32s(&[6], &[3, -2, 2, 1, -1, 0]);
        assert_eq!(eval1(ip(5), [x.clone()]), i32s(&[6], &[243, -32, 32, 1, -1, 0]));
        assert_eq!(eval1(ip(0), [x.clone()]), i32s(&[6], &[1; 6]));
        assert_eq!(eval1(ip(31), [i32s(&[2], &[2, -2])]), i32s(&[2], &[i32::MIN, i32::MIN]));
        assert_eq!(eval1(ip(32), [i32s(&[2], &[2, 3])]), i32s(&[2], &[0, 3i32.wrapping_pow(32)]));
        // Negative exponents truncate like integer division of 1 by x^|n|.
        assert_eq!(eval1(ip(-3), [x.clone()]), i32s(&[6], &[0, 0, 0, 1, -1, -1]));
        assert_eq!(eval1(ip(-2), [x]), i32s(&[6], &[0, 0, 0, 1, 1, -1]));
        assert_eq!(eval1(ip(i32::MIN), [i32s(&[3], &[-1, 1, 7])]), i32s(&[3], &[1, 1, 0]));
        for d in FLOATS {
            let x = fl(d, &[4], &[2.0, -0.5, 0.0, 1.5]);
            assert_close(&vals(&eval1(ip(3), [x.clone()])), &[8.0, -0.125, 0.0, 3.375], 0.0);
            assert_close(&vals(&eval1(ip(-2), [x.clone()]))[..2], &[0.25, 4.0], 0.0);
            assert_eq!(vals(&eval1(ip(-1), [x.clone()]))[2], f64::INFINITY);
            let nan0 = vals(&eval1(ip(0), [fl(d, &[2], &[f64::NAN, 0.0])]));
            assert_eq!(nan0, vec![1.0, 1.0]);
            assert_eq!(vals(&eval1(ip(i32::MIN), [fl(d, &[2], &[2.0, 1.0])])), vec![0.0, 1.0]);
        }
        // The multiplications happen in f32, in the documented order:
        // x^10 = x^2 * x^8 with x^8 = (x^2)^2)^2.
        let x = 1.1f32;
        let (x2, x4) = (x * x, x * x * (x * x));
        let want = x2 * (x4 * x4);
        assert_eq!(eval1(ip(10), [f32s(&[], &[x])]), f32s(&[], &[want]));
        assert_eq!(eval1(ip(-10), [f32s(&[], &[x])]), f32s(&[], &[1.0 / want]));
    }

    #[test]
    fn comparisons_in_every_dtype() {
        let cmp = |op, a: HostArray, b: HostArray| eval1(op, [a, b]);
        let a = f32s(&[4], &[1.0, f32::NAN, -0.0, 2.0]);
        let b = f32s(&[4], &[1.0, f32::NAN, 0.0, 1.0]);
        assert_eq!(cmp(E::Eq, a.clone(), b.clone()), bools(&[4], &[true, false, true, false]));
        assert_eq!(cmp(E::Ne, a.clone(), b.clone()), bools(&[4], &[false, true, false, true]));
        assert_eq!(cmp(E::Lt, a.clone(), b.clone()), bools(&[4], &[false, false, false, false]));
        assert_eq!(cmp(E::Le, a.clone(), b.clone()), bools(&[4], &[true, false, true, false]));
        assert_eq!(cmp(E::Gt, a.clone(), b.clone()), bools(&[4], &[false, false, false, true]));
        assert_eq!(cmp(E::Ge, a, b), bools(&[4], &[true, false, true, true]));
        let nan_vs_one = cmp(E::Ge, f64s(&[2], &[f64::NAN, 1.0]), f64s(&[2], &[1.0, f64::NAN]));
        assert_eq!(nan_vs_one, bools(&[2], &[false, false]));
        let (a, b) = (i32s(&[3], &[-1, 0, 5]), i32s(&[3], &[0, 0, 4]));
        assert_eq!(cmp(E::Lt, a.clone(), b.clone()), bools(&[3], &[true, false, false]));
        assert_eq!(cmp(E::Ge, a, b), bools(&[3], &[false, true, true]));
        let (a, b) = (bools(&[4], &[false, false, true, true]), bools(&[4], &[false, true, false, true]));
        assert_eq!(cmp(E::Lt, a.clone(), b.clone()), bools(&[4], &[false, true, false, false]));
        assert_eq!(cmp(E::Eq, a.clone(), b.clone()), bools(&[4], &[true, false, false, true]));
        assert_eq!(cmp(E::Ge, a, b), bools(&[4], &[true, false, true, true]));
    }

    #[test]
    fn logic_is_logical_on_bool_and_bitwise_on_i32() {
        let (a, b) = (bools(&[4], &[false, false, true, true]), bools(&[4], &[false, true, false, true]));
        assert_eq!(eval1(E::And, [a.clone(), b.clone()]), bools(&[4], &[false, false, false, true]));
        assert_eq!(eval1(E::Or, [a.clone(), b]), bools(&[4], &[false, true, true, true]));
        assert_eq!(eval1(E::Not, [a]), bools(&[4], &[true, true, false, false]));
        let (a, b) = (i32s(&[2], &[12, -1]), i32s(&[2], &[10, 6]));
        assert_eq!(eval1(E::And, [a.clone(), b.clone()]), i32s(&[2], &[8, 6]));
        assert_eq!(eval1(E::Or, [a.clone(), b]), i32s(&[2], &[14, -1]));
        assert_eq!(eval1(E::Not, [a]), i32s(&[2], &[-13, 0]));
    }

    #[test]
    fn select_with_scalars_anywhere() {
        let p = bools(&[3], &[true, false, true]);
        let r = eval1(E::Select, [p.clone(), f32s(&[3], &[1.0, 2.0, 3.0]), f32s(&[], &[-1.0])]);
        assert_eq!(r, f32s(&[3], &[1.0, -1.0, 3.0]));
        let r = eval1(E::Select, [bools(&[], &[false]), i32s(&[3], &[1, 2, 3]), i32s(&[3], &[4, 5, 6])]);
        assert_eq!(r, i32s(&[3], &[4, 5, 6]));
        let r = eval1(E::Select, [p, bools(&[], &[true]), bools(&[], &[false])]);
        assert_eq!(r, bools(&[3], &[true, false, true]));
        let r = eval1(E::Select, [bools(&[0], &[]), f64s(&[], &[1.0]), f64s(&[0], &[])]);
        assert_eq!(r, f64s(&[0], &[]));
    }

    #[test]
    fn convert_follows_scalar_cast() {
        let to = |d| E::Convert { to: d };
        let x = f32s(&[7], &[-2.7, 2.7, 1e10, -1e10, f32::NAN, f32::INFINITY, -0.0]);
        assert_eq!(eval1(to(DType::I32), [x.clone()]), i32s(&[7], &[-2, 2, i32::MAX, i32::MIN, 0, i32::MAX, 0]));
        assert_eq!(eval1(to(DType::Bool), [x]), bools(&[7], &[true, true, true, true, true, true, false]));
        let b = bools(&[2], &[false, true]);
        assert_eq!(eval1(to(DType::F32), [b.clone()]), f32s(&[2], &[0.0, 1.0]));
        assert_eq!(eval1(to(DType::I32), [b]), i32s(&[2], &[0, 1]));
        let i = i32s(&[3], &[16_777_217, -3, 0]);
        assert_eq!(eval1(to(DType::F32), [i.clone()]), f32s(&[3], &[16_777_216.0, -3.0, 0.0]));
        assert_eq!(eval1(to(DType::F64), [i.clone()]), f64s(&[3], &[16_777_217.0, -3.0, 0.0]));
        assert_eq!(eval1(to(DType::Bool), [i]), bools(&[3], &[true, true, false]));
        let r = eval1(to(DType::F32), [f64s(&[2], &[0.1, 1e300])]);
        assert_eq!(r, f32s(&[2], &[0.1, f32::INFINITY]));
        assert_eq!(eval1(to(DType::F64), [f32s(&[1], &[0.1])]), f64s(&[1], &[0.1f32 as f64]));
        // Same dtype: the data is returned bit for bit (a signalling NaN stays).
        let snan = f32::from_bits(0x7f80_0001);
        let r = eval1(to(DType::F32), [f32s(&[1], &[snan])]);
        assert_eq!(r.data(), &Data::F32(vec![snan]));
    }

    #[test]
    fn is_finite() {
        let x = f64s(&[5], &[1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, f64::MAX]);
        assert_eq!(eval1(E::IsFinite, [x]), bools(&[5], &[true, false, false, false, true]));
        let x = f32s(&[2], &[f32::MAX, f32::NAN]);
        assert_eq!(eval1(E::IsFinite, [x]), bools(&[2], &[true, false]));
    }

    #[test]
    fn scalars_stand_for_the_common_shape() {
        let x = f32s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let two = f32s(&[], &[2.0]);
        assert_eq!(eval1(E::Sub, [x.clone(), two.clone()]), f32s(&[2, 2], &[-1.0, 0.0, 1.0, 2.0]));
        assert_eq!(eval1(E::Sub, [two.clone(), x]), f32s(&[2, 2], &[1.0, 0.0, -1.0, -2.0]));
        assert_eq!(eval1(E::Mul, [two.clone(), two.clone()]), f32s(&[], &[4.0]));
        assert_eq!(eval1(E::Mul, [f32s(&[0, 3], &[]), two.clone()]), f32s(&[0, 3], &[]));
        assert_eq!(eval1(E::Exp, [f32s(&[0], &[])]), f32s(&[0], &[]));
        assert_eq!(eval1(E::Add, [f32s(&[1], &[1.0]), two]), f32s(&[1], &[3.0]));
        assert_eq!(eval1(E::Lt, [i32s(&[1, 1], &[1]), i32s(&[1, 1], &[2])]), bools(&[1, 1], &[true]));
    }

    #[test]
    fn bad_operands_are_type_errors() {
        let e = eval_prim(&E::Add.into(), &[f32s(&[2], &[1.0, 2.0]), f32s(&[3], &[1.0, 2.0, 3.0])]).unwrap_err();
        assert!(matches!(e, EvalError::Type(_)));
        assert!(e.to_string().starts_with("add: operands f32[2] and f32[3] have different shapes"), "{e}");
        let e = eval_prim(&E::Exp.into(), &[i32s(&[1], &[1])]).unwrap_err();
        assert_eq!(e.to_string(), "exp: is defined for a float dtype (f32 or f64), got i32[1]");
        let e = eval_prim(&E::Add.into(), &[f32s(&[1], &[1.0])]).unwrap_err();
        assert!(e.to_string().contains("expects 2 operand(s), got 1"), "{e}");
        let e = eval_prim(&E::Add.into(), &[f32s(&[1], &[1.0]), f64s(&[1], &[1.0])]).unwrap_err();
        assert!(e.to_string().contains("different dtypes"), "{e}");
        assert!(eval_prim(&E::Not.into(), &[f32s(&[1], &[1.0])]).is_err());
        assert!(eval_prim(&E::Neg.into(), &[bools(&[1], &[true])]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn int_div_and_rem_reconstruct_the_dividend(a in proptest::num::i32::ANY, b in proptest::num::i32::ANY) {
            let (q, r) = (int2(E::Div, a, b), int2(E::Rem, a, b));
            if b == 0 {
                proptest::prop_assert_eq!((q, r), (-1, a));
            } else {
                proptest::prop_assert_eq!(q.wrapping_mul(b).wrapping_add(r), a);
                proptest::prop_assert!(r == 0 || (r < 0) == (a < 0));
                proptest::prop_assert!(r.unsigned_abs() < b.unsigned_abs());
            }
        }

        #[test]
        fn f32_through_f64_is_the_f32_operation(a in proptest::num::f32::ANY, b in proptest::num::f32::ANY) {
            let same = |got: HostArray, want: f32| match got.into_data() {
                Data::F32(v) => v[0].to_bits() == want.to_bits() || (v[0].is_nan() && want.is_nan()),
                _ => false,
            };
            let (x, y) = (f32s(&[], &[a]), f32s(&[], &[b]));
            proptest::prop_assert!(same(eval1(E::Add, [x.clone(), y.clone()]), a + b));
            proptest::prop_assert!(same(eval1(E::Sub, [x.clone(), y.clone()]), a - b));
            proptest::prop_assert!(same(eval1(E::Mul, [x.clone(), y.clone()]), a * b));
            proptest::prop_assert!(same(eval1(E::Div, [x.clone(), y.clone()]), a / b));
            proptest::prop_assert!(same(eval1(E::Rem, [x.clone(), y.clone()]), a % b));
            proptest::prop_assert!(same(eval1(E::Sqrt, [x.clone()]), a.sqrt()));
            proptest::prop_assert!(same(eval1(E::Floor, [x]), a.floor()));
        }
    }
}
