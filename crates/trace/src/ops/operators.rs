//! Rust operators on arrays: `+ - * / %` between arrays and with Rust scalars
//! (either order), and unary `-`. `/` is true division (integers give f32);
//! `%` has the sign of the dividend, like Rust's.

use crate::array::{caller, Array};
use crate::error::OrRaise;
use crate::ops::elementwise::{binary, true_div, unary};
use crate::ops::operand::Operand;
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
        operator!(@scalar $trait, $method, $op, f64);
        operator!(@scalar $trait, $method, $op, i32);
    };
    (@scalar $trait:ident, $method:ident, $op:expr, $t:ty) => {
        impl $trait<$t> for Array {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: $t) -> Array {
                apply($op, self.into(), rhs.into(), caller())
            }
        }
        impl $trait<$t> for &Array {
            type Output = Array;
            #[track_caller]
            fn $method(self, rhs: $t) -> Array {
                apply($op, self.into(), rhs.into(), caller())
            }
        }
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
