//! Elementwise array methods: math functions, arithmetic, comparisons,
//! `where_`, `astype`. NumPy rules apply: operands broadcast and promote;
//! float functions of integer arrays compute in f32.

use crate::array::{caller, Array};
use crate::bind::bind1;
use crate::error::{Error, OrRaise, Result};
use crate::ops::operand::{common_shape, convert, materialize, result_dtype, unify, Operand};
use arrayjit_ir::prim::elementwise::DTypeClass;
use arrayjit_ir::prim::Elementwise as E;
use arrayjit_ir::{DType, Loc, TypeError};

pub(crate) fn unary(op: E, x: &Array, loc: Loc) -> Result<Array> {
    let x = if op.dtype_class() == DTypeClass::Float && !x.dtype().is_float() {
        convert(x, DType::F32, loc)?
    } else {
        x.clone()
    };
    bind1(op.into(), &[&x], loc)
}

pub(crate) fn binary(op: E, a: Operand, b: Operand, loc: Loc) -> Result<Array> {
    let mut dtype = None;
    if op.dtype_class() == DTypeClass::Float {
        let d = result_dtype(&[a.clone(), b.clone()]);
        if !d.is_float() {
            dtype = Some(DType::F32);
        }
    } else if op == E::Pow && result_dtype(&[a.clone(), b.clone()]) == DType::Bool {
        // As NumPy's and JAX's: booleans raised to powers count as integers.
        dtype = Some(DType::I32);
    }
    let xs = unify(op.name(), vec![a, b], dtype, loc)?;
    bind1(op.into(), &[&xs[0], &xs[1]], loc)
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident $try_name:ident => $op:expr;)*) => {
        impl Array {
            $(
                $(#[$doc])*
                #[track_caller]
                pub fn $name(&self) -> Array {
                    self.$try_name().or_raise()
                }
                #[doc = concat!("[`Array::", stringify!($name), "`], returning errors.")]
                #[track_caller]
                pub fn $try_name(&self) -> Result<Array> {
                    unary($op, self, caller())
                }
            )*
        }
    };
}

unary_methods! {
    /// Elementwise negation.
    neg try_neg => E::Neg;
    /// Absolute value.
    abs try_abs => E::Abs;
    /// −1, 0 or 1 by sign (floats keep ±0 and NaN).
    sign try_sign => E::Sign;
    /// Logical not (bool) or bitwise not (i32).
    not try_not => E::Not;
    /// eˣ.
    exp try_exp => E::Exp;
    /// Natural logarithm.
    log try_log => E::Log;
    /// ln(1 + x), accurate near 0.
    log1p try_log1p => E::Log1p;
    /// eˣ − 1, accurate near 0.
    expm1 try_expm1 => E::Expm1;
    /// Square root.
    sqrt try_sqrt => E::Sqrt;
    /// 1 / √x.
    rsqrt try_rsqrt => E::Rsqrt;
    /// Hyperbolic tangent.
    tanh try_tanh => E::Tanh;
    /// The logistic sigmoid 1 / (1 + e⁻ˣ).
    logistic try_logistic => E::Logistic;
    /// Sine.
    sin try_sin => E::Sin;
    /// Cosine.
    cos try_cos => E::Cos;
    /// Rounds down.
    floor try_floor => E::Floor;
    /// Rounds up.
    ceil try_ceil => E::Ceil;
    /// True where the element is neither infinite nor NaN.
    is_finite try_is_finite => E::IsFinite;
    /// The same values, treated as constants by differentiation.
    stop_gradient try_stop_gradient => E::StopGradient;
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident $try_name:ident => $op:expr;)*) => {
        impl Array {
            $(
                $(#[$doc])*
                #[track_caller]
                pub fn $name(&self, other: impl Into<Operand>) -> Array {
                    self.$try_name(other).or_raise()
                }
                #[doc = concat!("[`Array::", stringify!($name), "`], returning errors.")]
                #[track_caller]
                pub fn $try_name(&self, other: impl Into<Operand>) -> Result<Array> {
                    binary($op, self.into(), other.into(), caller())
                }
            )*
        }
    };
}

binary_methods! {
    /// Elementwise sum.
    add try_add => E::Add;
    /// Elementwise difference.
    sub try_sub => E::Sub;
    /// Elementwise product.
    mul try_mul => E::Mul;
    /// Division as the `div` primitive: truncating for integers (see also `/`, which is true division);
    /// integers never trap (XLA's choices): `x / 0` is -1, and `i32::MIN / -1` is `i32::MIN`.
    div_raw try_div_raw => E::Div;
    /// Remainder with the sign of the dividend, as Rust's `%` (and XLA's `rem`),
    /// except that integers never trap: `x % 0` is `x`, and `i32::MIN % -1` is 0.
    /// [`Array::remainder`] is Python's `%` (the divisor's sign).
    rem try_rem => E::Rem;
    /// xʸ. Integers to integer powers stay integers, as in JAX (booleans count
    /// as i32): exactly, by squaring with wrapping products, for every
    /// exponent; a negative one gives the truncated `1 / x^|y|` (1 for x = 1,
    /// ±1 for x = -1, -1 for x = 0 as `1 / 0` is, else 0), as `powi` does.
    /// With a float on either side the result is a float.
    pow try_pow => E::Pow;
    /// Elementwise maximum (NaN propagates).
    maximum try_maximum => E::Max;
    /// Elementwise minimum (NaN propagates).
    minimum try_minimum => E::Min;
    /// Logical (bool) or bitwise (i32) and.
    and try_and => E::And;
    /// Logical (bool) or bitwise (i32) or.
    or try_or => E::Or;
    /// `self == other`, elementwise.
    eq try_eq => E::Eq;
    /// `self != other`, elementwise.
    ne try_ne => E::Ne;
    /// `self < other`, elementwise.
    lt try_lt => E::Lt;
    /// `self <= other`, elementwise.
    le try_le => E::Le;
    /// `self > other`, elementwise.
    gt try_gt => E::Gt;
    /// `self >= other`, elementwise.
    ge try_ge => E::Ge;
}

pub(crate) fn true_div(a: Operand, b: Operand, loc: Loc) -> Result<Array> {
    let d = result_dtype(&[a.clone(), b.clone()]);
    let dtype = if d.is_float() { d } else { DType::F32 };
    let xs = unify("div", vec![a, b], Some(dtype), loc)?;
    bind1(E::Div.into(), &[&xs[0], &xs[1]], loc)
}

impl Array {
    /// True division: integer operands give f32 (as NumPy's `/`).
    #[track_caller]
    pub fn div(&self, other: impl Into<Operand>) -> Array {
        self.try_div(other).or_raise()
    }

    /// [`Array::div`], returning errors.
    #[track_caller]
    pub fn try_div(&self, other: impl Into<Operand>) -> Result<Array> {
        true_div(self.into(), other.into(), caller())
    }

    /// x², elementwise.
    #[track_caller]
    pub fn square(&self) -> Array {
        self.try_square().or_raise()
    }

    /// [`Array::square`], returning errors.
    #[track_caller]
    pub fn try_square(&self) -> Result<Array> {
        bind1(E::IntegerPow { exponent: 2 }.into(), &[self], caller()).map_err(|e| match e {
            // The user wrote `square`, not `integer_pow`: name what they called.
            Error::Type { source, loc } => Error::Type { source: TypeError::new("square", source.message), loc },
            other => other,
        })
    }

    /// xⁿ for a fixed integer n (exact repeated multiplication).
    #[track_caller]
    pub fn powi(&self, n: i32) -> Array {
        self.try_powi(n).or_raise()
    }

    /// [`Array::powi`], returning errors.
    #[track_caller]
    pub fn try_powi(&self, n: i32) -> Result<Array> {
        bind1(E::IntegerPow { exponent: n }.into(), &[self], caller())
    }

    /// Converts to another dtype (a no-op if it already has it).
    #[track_caller]
    pub fn astype(&self, dtype: DType) -> Array {
        self.try_astype(dtype).or_raise()
    }

    /// [`Array::astype`], returning errors.
    #[track_caller]
    pub fn try_astype(&self, dtype: DType) -> Result<Array> {
        convert(self, dtype, caller())
    }

    /// Elementwise `if self { on_true } else { on_false }`; see [`where_`].
    #[track_caller]
    pub fn select(&self, on_true: impl Into<Operand>, on_false: impl Into<Operand>) -> Array {
        self.try_select(on_true, on_false).or_raise()
    }

    /// [`Array::select`], returning errors.
    #[track_caller]
    pub fn try_select(&self, on_true: impl Into<Operand>, on_false: impl Into<Operand>) -> Result<Array> {
        select(self.into(), on_true.into(), on_false.into(), caller())
    }
}

pub(crate) fn select(cond: Operand, a: Operand, b: Operand, loc: Loc) -> Result<Array> {
    let ops = [cond, a, b];
    let shape = common_shape("select", &ops, loc)?;
    let dt = result_dtype(&ops[1..]);
    let pred = materialize(&ops[0], DType::Bool, &shape, "select", loc)?;
    let t = materialize(&ops[1], dt, &shape, "select", loc)?;
    let f = materialize(&ops[2], dt, &shape, "select", loc)?;
    bind1(E::Select.into(), &[&pred, &t, &f], loc)
}

/// `cond ? x : y` elementwise, with NumPy broadcasting of all three and
/// promotion of `x` and `y`. A non-bool condition is compared with zero.
/// The way to branch on array values inside traced code.
#[track_caller]
pub fn where_(cond: impl Into<Operand>, x: impl Into<Operand>, y: impl Into<Operand>) -> Array {
    try_where(cond, x, y).or_raise()
}

/// [`where_`], returning errors.
#[track_caller]
pub fn try_where(cond: impl Into<Operand>, x: impl Into<Operand>, y: impl Into<Operand>) -> Result<Array> {
    select(cond.into(), x.into(), y.into(), caller())
}

/// `x` and `y` unified, the truncated remainder `r` of `x / y`, and where
/// `r` has to move by one `y` to take `y`'s sign (floor semantics).
fn floor_parts(op: &str, a: Operand, b: Operand, loc: Loc) -> Result<(Array, Array, Array, Array)> {
    let xs = unify(op, vec![a, b], None, loc)?;
    let (x, y) = (&xs[0], &xs[1]);
    if x.dtype().is_bool() {
        return Err(Error::Type {
            source: TypeError::new(op, format!("is defined for numbers, got {}", x.aval())),
            loc,
        });
    }
    let r = bind1(E::Rem.into(), &[x, y], loc)?;
    let zero = crate::lax::scalar(0.0, x.dtype());
    let cmp = |op: E, a: &Array, b: &Array| bind1(op.into(), &[a, b], loc);
    let r_neg = cmp(E::Lt, &r, &zero)?;
    let y_neg = cmp(E::Lt, y, &zero)?;
    let other_sign = cmp(E::Ne, &r_neg, &y_neg)?;
    let shift = cmp(E::And, &cmp(E::Ne, &r, &zero)?, &other_sign)?;
    Ok((x.clone(), y.clone(), r, shift))
}

impl Array {
    /// `self mod other` with the divisor's sign, as NumPy's and JAX's
    /// `remainder` (Python's `%`): `-1 mod 5` is 4, where `%` (Rust's) gives −1.
    #[track_caller]
    pub fn remainder(&self, other: impl Into<Operand>) -> Array {
        self.try_remainder(other).or_raise()
    }

    /// [`Array::remainder`], returning errors.
    #[track_caller]
    pub fn try_remainder(&self, other: impl Into<Operand>) -> Result<Array> {
        let loc = caller();
        let (_, y, r, shift) = floor_parts("remainder", self.into(), other.into(), loc)?;
        let moved = bind1(E::Add.into(), &[&r, &y], loc)?;
        bind1(E::Select.into(), &[&shift, &moved, &r], loc)
    }

    /// The quotient rounded toward −∞, as NumPy's and JAX's `floor_divide`
    /// (Python's `//`): `-1 // 5` is −1, where `div_raw` truncates to 0.
    /// With [`Array::remainder`], `x = (x // y)·y + x mod y`.
    #[track_caller]
    pub fn floor_divide(&self, other: impl Into<Operand>) -> Array {
        self.try_floor_divide(other).or_raise()
    }

    /// [`Array::floor_divide`], returning errors.
    #[track_caller]
    pub fn try_floor_divide(&self, other: impl Into<Operand>) -> Result<Array> {
        let loc = caller();
        let (x, y, r, shift) = floor_parts("floor_divide", self.into(), other.into(), loc)?;
        let one = crate::lax::scalar(1.0, x.dtype());
        // The exact quotient of x − r by y: truncated for integers, and for
        // floats an integer up to rounding, which `floor(q + ½)` removes.
        let q = if x.dtype().is_float() {
            let exact = bind1(E::Div.into(), &[&bind1(E::Sub.into(), &[&x, &r], loc)?, &y], loc)?;
            let half = crate::lax::scalar(0.5, x.dtype());
            bind1(E::Floor.into(), &[&bind1(E::Add.into(), &[&exact, &half], loc)?], loc)?
        } else {
            bind1(E::Div.into(), &[&x, &y], loc)?
        };
        let less = bind1(E::Sub.into(), &[&q, &one], loc)?;
        bind1(E::Select.into(), &[&shift, &less, &q], loc)
    }
}
