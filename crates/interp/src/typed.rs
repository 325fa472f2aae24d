//! Element types: going from the dtype-tagged `Data` of a host array to typed
//! slices and back, so that each kernel is written once, generically.
//!
//! [`Elem`] is implemented for the four element types (`bool`, `i32`, `f32`,
//! `f64`); [`Num`] adds the accumulation rule of sums, products and dot
//! products for the three numeric ones. The macros [`with_dtype!`] and
//! [`with_num!`] turn a runtime `DType` into a type name for one generic body.

use crate::EvalError;
use arrayjit_ir::{DType, Data, HostArray};
use std::fmt::Debug;

/// One of the four element types of a host array.
pub(crate) trait Elem: Copy + PartialOrd + Debug + 'static {
    /// The element slice, or `None` when the data holds another type.
    fn slice(d: &Data) -> Option<&[Self]>;
    /// Wraps a vector of elements as data.
    fn wrap(v: Vec<Self>) -> Data;
}

macro_rules! impl_elem {
    ($t:ty, $variant:ident) => {
        impl Elem for $t {
            fn slice(d: &Data) -> Option<&[$t]> {
                match d {
                    Data::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn wrap(v: Vec<$t>) -> Data {
                Data::$variant(v)
            }
        }
    };
}

impl_elem!(bool, Bool);
impl_elem!(i32, I32);
impl_elem!(f32, F32);
impl_elem!(f64, F64);

/// The elements of `a` as a `T` slice.
///
/// The shape rules guarantee the dtype before a kernel runs, so a mismatch is
/// a bug in this crate; it is still reported as an error rather than a panic.
pub(crate) fn typed<'a, T: Elem>(op: &'static str, a: &'a HostArray) -> Result<&'a [T], EvalError> {
    T::slice(a.data()).ok_or_else(|| EvalError::Internal {
        op,
        message: format!("operand {} does not hold the expected element type", a.aval()),
    })
}

/// The numeric element types and how they accumulate.
///
/// Sums, products and dot products of `f32` accumulate in `f64` and round once
/// at the end, so that the oracle is at least as accurate as any backend;
/// `i32` accumulates in `i32` with wrapping arithmetic (two's complement, as
/// every backend computes it).
pub(crate) trait Num: Elem {
    type Acc: Copy + Debug;
    const ZERO: Self::Acc;
    const ONE: Self::Acc;
    fn widen(self) -> Self::Acc;
    fn narrow(acc: Self::Acc) -> Self;
    fn add(a: Self::Acc, b: Self::Acc) -> Self::Acc;
    fn mul(a: Self::Acc, b: Self::Acc) -> Self::Acc;
}

impl Num for i32 {
    type Acc = i32;
    const ZERO: i32 = 0;
    const ONE: i32 = 1;
    fn widen(self) -> i32 {
        self
    }
    fn narrow(acc: i32) -> i32 {
        acc
    }
    fn add(a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
    fn mul(a: i32, b: i32) -> i32 {
        a.wrapping_mul(b)
    }
}

impl Num for f32 {
    type Acc = f64;
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    fn widen(self) -> f64 {
        self as f64
    }
    fn narrow(acc: f64) -> f32 {
        acc as f32
    }
    fn add(a: f64, b: f64) -> f64 {
        a + b
    }
    fn mul(a: f64, b: f64) -> f64 {
        a * b
    }
}

impl Num for f64 {
    type Acc = f64;
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    fn widen(self) -> f64 {
        self
    }
    fn narrow(acc: f64) -> f64 {
        acc
    }
    fn add(a: f64, b: f64) -> f64 {
        a + b
    }
    fn mul(a: f64, b: f64) -> f64 {
        a * b
    }
}

/// Evaluates `$body` with the type alias `$T` naming the Rust element type of
/// `$dtype` (`bool`, `i32`, `f32` or `f64`).
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            arrayjit_ir::DType::Bool => {
                type $T = bool;
                $body
            }
            arrayjit_ir::DType::I32 => {
                type $T = i32;
                $body
            }
            arrayjit_ir::DType::F32 => {
                type $T = f32;
                $body
            }
            arrayjit_ir::DType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}
pub(crate) use with_dtype;

/// Like [`with_dtype!`] for the numeric types; `bool` evaluates `$other`
/// (the rules exclude it, so that arm reports an internal error).
macro_rules! with_num {
    ($dtype:expr, $T:ident => $body:expr, bool => $other:expr) => {
        match $dtype {
            arrayjit_ir::DType::Bool => $other,
            arrayjit_ir::DType::I32 => {
                type $T = i32;
                $body
            }
            arrayjit_ir::DType::F32 => {
                type $T = f32;
                $body
            }
            arrayjit_ir::DType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}
pub(crate) use with_num;

/// The elements of a float array widened to `f64` (exactly, for `f32`), for the
/// linear-algebra kernels, which compute in `f64` and round once.
pub(crate) fn to_f64s(op: &'static str, a: &HostArray) -> Result<Vec<f64>, EvalError> {
    match a.data() {
        Data::F32(v) => Ok(v.iter().map(|&x| x as f64).collect()),
        Data::F64(v) => Ok(v.clone()),
        _ => Err(EvalError::Internal { op, message: format!("operand {} is not a float array", a.aval()) }),
    }
}

/// `f64` results rounded to a float dtype (once, to nearest).
pub(crate) fn from_f64s(op: &'static str, dtype: DType, v: Vec<f64>) -> Result<Data, EvalError> {
    match dtype {
        DType::F32 => Ok(Data::F32(v.into_iter().map(|x| x as f32).collect())),
        DType::F64 => Ok(Data::F64(v)),
        d => Err(EvalError::Internal { op, message: format!("cannot produce {d} from a float kernel") }),
    }
}

/// Builds the result array, turning a length mismatch (a bug here) into an error.
pub(crate) fn array(op: &'static str, shape: &[usize], data: Data) -> Result<HostArray, EvalError> {
    HostArray::new(shape.to_vec(), data).map_err(|e| EvalError::Internal { op, message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum_all<T: Num>(xs: &[T]) -> T {
        T::narrow(xs.iter().fold(T::ZERO, |acc, &x| T::add(acc, x.widen())))
    }

    #[test]
    fn dispatch_names_the_element_type() {
        let data = [Data::Bool(vec![true]), Data::I32(vec![1]), Data::F32(vec![1.0]), Data::F64(vec![1.0])];
        for d in data {
            let ok = with_dtype!(d.dtype(), T => T::slice(&d).is_some());
            assert!(ok, "{:?}", d.dtype());
            let n = with_dtype!(d.dtype(), T => T::wrap(T::slice(&d).unwrap_or(&[]).to_vec()));
            assert_eq!(n, d);
        }
        assert!(f32::slice(&Data::F64(vec![])).is_none());
    }

    #[test]
    fn accumulation_rules() {
        // f32 sums accumulate in f64: 1e8 + 1 + ... + 1 (16 ones) keeps the ones,
        // an f32 accumulator would lose every one of them.
        let mut xs = vec![1.0e8f32];
        xs.extend([1.0f32; 16]);
        assert_eq!(sum_all(&xs), 100_000_016.0);
        assert_eq!(sum_all(&[i32::MAX, 1]), i32::MIN);
        assert_eq!(sum_all::<f64>(&[]), 0.0);
        assert_eq!(i32::narrow(i32::mul(i32::MAX, 2)), -2);
        assert_eq!(f32::narrow(f32::mul(f32::ONE, 3.0f32.widen())), 3.0);
        assert_eq!(with_num!(DType::F64, T => Some(std::mem::size_of::<T>()), bool => None), Some(8));
        assert_eq!(with_num!(DType::Bool, T => Some(std::mem::size_of::<T>()), bool => None), None);
    }

    #[test]
    fn float_round_trips() {
        let a = HostArray::new([2], Data::F32(vec![0.1, -2.5])).unwrap();
        let w = to_f64s("t", &a).unwrap();
        assert_eq!(w, vec![0.1f32 as f64, -2.5]);
        assert_eq!(from_f64s("t", DType::F32, w).unwrap(), Data::F32(vec![0.1, -2.5]));
        assert!(to_f64s("t", &HostArray::new([1], Data::I32(vec![1])).unwrap()).is_err());
        assert!(array("t", &[3], Data::I32(vec![1])).is_err());
    }
}
