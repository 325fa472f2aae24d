//! Rust operators on arrays: `+ - * / %` between arrays and with Rust scalars,
//! and unary `-`. `/` is true division (integers give f32); `%` has the sign
//! of the dividend, like Rust's.
//!
//! A scalar may be an `f64`, `f32` or `i32` on the right (`x * 2.0f32`), and
//! an `f64` or `i32` on the left (`2.0 * x`). An `f32` on the left is left out
//! on purpose: with two float types implementing `Mul<Array>`, the type of
//! `2.0 * x` would stay unknown until the literal falls back to f64, and a
//! method call on it (`(1.0 - x).log()`) would no longer compile. Write
//! `x * s`, or `f64::from(s) * x` (exact, and the scalar is weak either way).
//!
//! ```
//! use arrayjit_trace::{Array, DType};
//! let x = Array::from_vec(vec![1.0f64, 2.0], [2]);
//! let s = 0.5f32;
//! assert_eq!((&x * s).dtype(), DType::F64); // the array's dtype wins
//! assert_eq!((1.0 - &x).abs().to_vec::<f64>(), vec![0.0, 1.0]);
//! assert_eq!((f64::from(s) * &x).to_vec::<f64>(), vec![0.5, 1.0]);
//! ```

use crate::array::{caller, Array};
use crate::error::OrRaise;
use crate::ops::elementwise::{binary, true_div, unary};
use crate::ops::operand::{Operand, WeakScalar};
use arrayjit_ir::prim::Elementwise as E;
use std::ops::{Add, Div, Mul, Neg, Rem, Sub};

#[track_caller]
fn apply(op: E, a: Operand, b: Operand, loc: arrayjit_ir::Loc) -> Array {
    match op {
        E::Div => true_div(a, b, loc),
        _ => binary(op, a, b, loc),
    }
    .or_raise()
}

macro_rules! operator {
    ($trait:ident, $method:ident, $op:expr) => {
        impl $trait<Array> for Array {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: Array) -> Array {
                apply($op, self.into(), rhs.into(), caller())
            }
        }
        impl $trait<&Array> for Array {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: &Array) -> Array {
                apply($op, self.into(), rhs.into(), caller())
            }
        }
        impl $trait<Array> for &Array {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: Array) -> Array {
                apply($op, self.into(), rhs.into(), caller())
            }
        }
        impl $trait<&Array> for &Array {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: &Array) -> Array {
                apply($op, self.into(), rhs.into(), caller())
            }
        }
        // One generic impl for every scalar type: the output type is then
        // `Array` before the literal's type is known, so `(&x * 2.0).exp()`
        // type-checks although `2.0` could be f32 or f64 (it falls back to f64).
        impl<S: WeakScalar> $trait<S> for Array {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: S) -> Array {
                apply($op, self.into(), rhs.into(), caller())
            }
        }
        impl<S: WeakScalar> $trait<S> for &Array {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: S) -> Array {
                apply($op, self.into(), rhs.into(), caller())
            }
        }
        operator!(@scalar_lhs $trait, $method, $op, f64);
        operator!(@scalar_lhs $trait, $method, $op, i32);
    };
    (@scalar_lhs $trait:ident, $method:ident, $op:expr, $t:ty) => {
        impl $trait<Array> for $t {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: Array) -> Array {
                apply($op, self.into(), rhs.into(), caller())
            }
        }
        impl $trait<&Array> for $t {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: &Array) -> Array {
                apply($op, self.into(), rhs.into(), caller())
            }
        }
    };
}

operator!(Add, add, E::Add);
operator!(Sub, sub, E::Sub);
operator!(Mul, mul, E::Mul);
operator!(Div, div, E::Div);
operator!(Rem, rem, E::Rem);

impl Neg for Array {
    type Output = Array;
    #[track_caller]
    fn neg(self) -> Array {
        unary(E::Neg, &self, caller()).or_raise()
    }
}

impl Neg for &Array {
    type Output = Array;
    #[track_caller]
    fn neg(self) -> Array {
        unary(E::Neg, self, caller()).or_raise()
    }
}
