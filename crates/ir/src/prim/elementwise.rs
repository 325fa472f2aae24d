//! Elementwise primitives: their names, dtype classes and shape/dtype rule.
//!
//! Operands of an elementwise primitive have equal shapes, except that rank-0
//! operands (scalars and literals) stand for arrays of the common shape. NumPy
//! broadcasting is resolved before the IR, into `broadcast_in_dim`. Operands have
//! equal dtypes (promotion inserts `convert`), except `select`'s boolean predicate.

use super::params::{Param, Params};
use crate::error::list_avals;
use crate::{AVal, DType, Shape, TypeError};

/// An elementwise primitive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elementwise {
    Neg,
    Abs,
    Sign,
    Not,
    Exp,
    Log,
    Log1p,
    Expm1,
    Sqrt,
    Rsqrt,
    Tanh,
    Logistic,
    Sin,
    Cos,
    Floor,
    Ceil,
    IsFinite,
    /// The identity, whose derivative is zero (it blocks differentiation).
    StopGradient,
    Add,
    Sub,
    Mul,
    Div,
    /// Remainder with the sign of the dividend (C's `fmod`, Rust's `%`).
    Rem,
    /// `x ** y`; for `i32`, as `integer_pow` with the exponent read at run
    /// time (wrapping products; a negative exponent truncates `1 / x^|y|`).
    Pow,
    Max,
    Min,
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `x ** exponent` for a fixed integer exponent.
    IntegerPow {
        exponent: i32,
    },
    /// `select(pred, on_true, on_false)`.
    Select,
    /// Conversion to another dtype (floats to integers truncate toward zero and saturate; NaN becomes 0).
    Convert {
        to: DType,
    },
}

/// Which operand dtypes an elementwise primitive accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DTypeClass {
    Float,
    Numeric,
    BoolOrInt,
    Any,
}

impl DTypeClass {
    fn admits(self, d: DType) -> bool {
        match self {
            DTypeClass::Float => d.is_float(),
            DTypeClass::Numeric => d.is_numeric(),
            DTypeClass::BoolOrInt => d.is_bool() || d.is_int(),
            DTypeClass::Any => true,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            DTypeClass::Float => "a float dtype (f32 or f64)",
            DTypeClass::Numeric => "a numeric dtype (i32, f32 or f64)",
            DTypeClass::BoolOrInt => "bool or i32",
            DTypeClass::Any => "any dtype",
        }
    }
}

use Elementwise as E;

/// Every parameterless elementwise primitive, for tables and tests.
pub const SIMPLE: [Elementwise; 34] = [
    E::Neg,
    E::Abs,
    E::Sign,
    E::Not,
    E::Exp,
    E::Log,
    E::Log1p,
    E::Expm1,
    E::Sqrt,
    E::Rsqrt,
    E::Tanh,
    E::Logistic,
    E::Sin,
    E::Cos,
    E::Floor,
    E::Ceil,
    E::IsFinite,
    E::StopGradient,
    E::Add,
    E::Sub,
    E::Mul,
    E::Div,
    E::Rem,
    E::Pow,
    E::Max,
    E::Min,
    E::And,
    E::Or,
    E::Eq,
    E::Ne,
    E::Lt,
    E::Le,
    E::Gt,
    E::Ge,
];

impl Elementwise {
    pub fn name(&self) -> &'static str {
        match self {
            E::Neg => "neg",
            E::Abs => "abs",
            E::Sign => "sign",
            E::Not => "not",
            E::Exp => "exp",
            E::Log => "log",
            E::Log1p => "log1p",
            E::Expm1 => "expm1",
            E::Sqrt => "sqrt",
            E::Rsqrt => "rsqrt",
            E::Tanh => "tanh",
            E::Logistic => "logistic",
            E::Sin => "sin",
            E::Cos => "cos",
            E::Floor => "floor",
            E::Ceil => "ceil",
            E::IsFinite => "is_finite",
            E::StopGradient => "stop_gradient",
            E::Add => "add",
            E::Sub => "sub",
            E::Mul => "mul",
            E::Div => "div",
            E::Rem => "rem",
            E::Pow => "pow",
            E::Max => "max",
            E::Min => "min",
            E::And => "and",
            E::Or => "or",
            E::Eq => "eq",
            E::Ne => "ne",
            E::Lt => "lt",
            E::Le => "le",
            E::Gt => "gt",
            E::Ge => "ge",
            E::IntegerPow { .. } => "integer_pow",
            E::Select => "select",
            E::Convert { .. } => "convert",
        }
    }

    /// Number of operands.
    pub fn arity(&self) -> usize {
        match self {
            E::Add | E::Sub | E::Mul | E::Div | E::Rem | E::Pow | E::Max | E::Min | E::And | E::Or => 2,
            E::Eq | E::Ne | E::Lt | E::Le | E::Gt | E::Ge => 2,
            E::Select => 3,
            _ => 1,
        }
    }

    /// True for the comparisons, which produce `bool`.
    pub fn is_comparison(&self) -> bool {
        matches!(self, E::Eq | E::Ne | E::Lt | E::Le | E::Gt | E::Ge)
    }

    /// The dtypes the (data) operands may have.
    pub fn dtype_class(&self) -> DTypeClass {
        match self {
            E::Exp | E::Log | E::Log1p | E::Expm1 | E::Sqrt | E::Rsqrt | E::Tanh | E::Logistic | E::Sin | E::Cos => {
                DTypeClass::Float
            }
            E::Floor | E::Ceil | E::IsFinite => DTypeClass::Float,
            E::Neg | E::Abs | E::Sign | E::Add | E::Sub | E::Mul | E::Div | E::Rem | E::Pow | E::Max | E::Min => {
                DTypeClass::Numeric
            }
            E::IntegerPow { .. } => DTypeClass::Numeric,
            E::Not | E::And | E::Or => DTypeClass::BoolOrInt,
            E::Eq | E::Ne | E::Lt | E::Le | E::Gt | E::Ge | E::Select | E::Convert { .. } => DTypeClass::Any,
            E::StopGradient => DTypeClass::Any,
        }
    }

    pub fn params(&self) -> Vec<(&'static str, Param)> {
        match self {
            E::IntegerPow { exponent } => vec![("y", Param::Int(*exponent as i64))],
            E::Convert { to } => vec![("new_dtype", Param::DType(*to))],
            _ => vec![],
        }
    }

    /// The primitive of that name, or `None` if the name is not elementwise.
    pub fn from_parts(name: &str, params: &mut Params) -> Option<Result<Elementwise, String>> {
        if let Some(op) = SIMPLE.iter().find(|op| op.name() == name) {
            return Some(Ok(*op));
        }
        match name {
            "integer_pow" => Some(params.int("y").and_then(|y| {
                i32::try_from(y)
                    .map(|exponent| E::IntegerPow { exponent })
                    .map_err(|_| format!("exponent {y} out of range"))
            })),
            "convert" => Some(params.dtype("new_dtype").map(|to| E::Convert { to })),
            "select" => Some(Ok(E::Select)),
            _ => None,
        }
    }

    /// The shape/dtype rule.
    pub fn abstract_eval(&self, ins: &[AVal]) -> Result<Vec<AVal>, TypeError> {
        let name = self.name();
        if ins.len() != self.arity() {
            return Err(TypeError::new(
                name,
                format!("expects {} operand(s), got {} ({})", self.arity(), ins.len(), list_avals(ins)),
            ));
        }
        let shape = common_shape(name, ins)?;
        let data = if *self == E::Select { &ins[1..] } else { ins };
        if *self == E::Select && ins[0].dtype != DType::Bool {
            return Err(TypeError::new(
                name,
                format!("the predicate must be bool, got {} (operands {})", ins[0], list_avals(ins)),
            ));
        }
        let dtype = data[0].dtype;
        if data.iter().any(|a| a.dtype != dtype) {
            return Err(TypeError::new(
                name,
                format!("operands {} have different dtypes; convert one first", list_avals(data)),
            ));
        }
        let class = self.dtype_class();
        if !class.admits(dtype) {
            return Err(TypeError::new(name, format!("is defined for {}, got {}", class.describe(), list_avals(ins))));
        }
        let out = match self {
            E::IsFinite => DType::Bool,
            op if op.is_comparison() => DType::Bool,
            E::Convert { to } => *to,
            _ => dtype,
        };
        Ok(vec![AVal { dtype: out, shape }])
    }
}

/// The common shape of elementwise operands: all non-scalar shapes must agree.
fn common_shape(name: &str, ins: &[AVal]) -> Result<Shape, TypeError> {
    let mut shape: Option<&Shape> = None;
    for a in ins.iter().filter(|a| a.rank() > 0) {
        match shape {
            None => shape = Some(&a.shape),
            Some(s) if *s == a.shape => {}
            Some(_) => {
                return Err(TypeError::new(
                    name,
                    format!(
                        "operands {} have different shapes; elementwise operands must have equal shapes \
                         (or be scalars), so broadcast them first",
                        list_avals(ins)
                    ),
                ))
            }
        }
    }
    Ok(shape.cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(s: &[usize]) -> AVal {
        AVal::new(DType::F32, s.to_vec())
    }

    #[test]
    fn binary_rule() {
        assert_eq!(E::Add.abstract_eval(&[f32s(&[2, 3]), f32s(&[2, 3])]).unwrap(), vec![f32s(&[2, 3])]);
        assert_eq!(E::Mul.abstract_eval(&[f32s(&[]), f32s(&[2, 3])]).unwrap(), vec![f32s(&[2, 3])]);
        let e = E::Add.abstract_eval(&[f32s(&[2, 3]), f32s(&[4])]).unwrap_err();
        assert!(e.to_string().starts_with("add: operands f32[2,3] and f32[4] have different shapes"), "{e}");
        let e = E::Add.abstract_eval(&[f32s(&[2]), AVal::new(DType::F64, [2])]).unwrap_err();
        assert!(e.to_string().contains("different dtypes"), "{e}");
    }

    #[test]
    fn dtype_classes() {
        let i = AVal::new(DType::I32, [3]);
        assert!(E::Exp.abstract_eval(std::slice::from_ref(&i)).unwrap_err().to_string().contains("float dtype"));
        assert_eq!(E::Lt.abstract_eval(&[i.clone(), i.clone()]).unwrap()[0].dtype, DType::Bool);
        assert_eq!(E::Convert { to: DType::F64 }.abstract_eval(std::slice::from_ref(&i)).unwrap()[0].dtype, DType::F64);
        assert_eq!(E::IsFinite.abstract_eval(&[f32s(&[3])]).unwrap()[0].dtype, DType::Bool);
    }

    #[test]
    fn select_rule() {
        let b = AVal::new(DType::Bool, [3]);
        assert_eq!(E::Select.abstract_eval(&[b.clone(), f32s(&[3]), f32s(&[])]).unwrap(), vec![f32s(&[3])]);
        let e = E::Select.abstract_eval(&[f32s(&[3]), f32s(&[3]), f32s(&[3])]).unwrap_err();
        assert!(e.to_string().contains("predicate must be bool"));
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = SIMPLE.iter().map(|e| e.name()).collect();
        names.push("integer_pow");
        names.push("select");
        names.push("convert");
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
