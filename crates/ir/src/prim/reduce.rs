//! Reductions (sum, max, min, prod over any axes; argmax/argmin along one axis):
//! names, params and the shape/dtype rule.

use super::params::{ints, Param, Params};
use crate::error::list_avals;
use crate::{AVal, DType, TypeError};

/// A reduction. The reduced axes disappear from the output shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Sum; 0 over an empty set.
    Sum { axes: Vec<usize> },
    /// Maximum; −∞ (floats) or `i32::MIN` over an empty set; NaN propagates.
    Max { axes: Vec<usize> },
    /// Minimum; +∞ (floats) or `i32::MAX` over an empty set; NaN propagates.
    Min { axes: Vec<usize> },
    /// Product; 1 over an empty set.
    Prod { axes: Vec<usize> },
    /// Index (i32) of the first maximum along `axis`; a NaN counts as the maximum.
    ArgMax { axis: usize },
    /// Index (i32) of the first minimum along `axis`; a NaN counts as the minimum.
    ArgMin { axis: usize },
}

use Reduction as R;

impl Reduction {
    pub fn name(&self) -> &'static str {
        match self {
            R::Sum { .. } => "reduce_sum",
            R::Max { .. } => "reduce_max",
            R::Min { .. } => "reduce_min",
            R::Prod { .. } => "reduce_prod",
            R::ArgMax { .. } => "argmax",
            R::ArgMin { .. } => "argmin",
        }
    }

    /// The axes removed from the operand's shape.
    pub fn axes(&self) -> Vec<usize> {
        match self {
            R::Sum { axes } | R::Max { axes } | R::Min { axes } | R::Prod { axes } => axes.clone(),
            R::ArgMax { axis } | R::ArgMin { axis } => vec![*axis],
        }
    }

    pub fn params(&self) -> Vec<(&'static str, Param)> {
        match self {
            R::Sum { axes } | R::Max { axes } | R::Min { axes } | R::Prod { axes } => vec![("axes", ints(axes))],
            R::ArgMax { axis } | R::ArgMin { axis } => vec![("axis", Param::Int(*axis as i64))],
        }
    }

    pub fn from_parts(name: &str, p: &mut Params) -> Option<Result<Reduction, String>> {
        Some(match name {
            "reduce_sum" => p.usizes("axes").map(|axes| R::Sum { axes }),
            "reduce_max" => p.usizes("axes").map(|axes| R::Max { axes }),
            "reduce_min" => p.usizes("axes").map(|axes| R::Min { axes }),
            "reduce_prod" => p.usizes("axes").map(|axes| R::Prod { axes }),
            "argmax" => p.usize("axis").map(|axis| R::ArgMax { axis }),
            "argmin" => p.usize("axis").map(|axis| R::ArgMin { axis }),
            _ => return None,
        })
    }

    /// The shape/dtype rule.
    pub fn abstract_eval(&self, ins: &[AVal]) -> Result<Vec<AVal>, TypeError> {
        let name = self.name();
        if ins.len() != 1 {
            return Err(TypeError::new(name, format!("expects 1 operand, got {}", list_avals(ins))));
        }
        let x = &ins[0];
        let axes = self.axes();
        let mut seen = vec![false; x.rank()];
        for &a in &axes {
            if a >= x.rank() || seen[a] {
                return Err(TypeError::new(
                    name,
                    format!("axes {axes:?} are invalid for {x} (out of range or repeated)"),
                ));
            }
            seen[a] = true;
        }
        if !x.dtype.is_numeric() {
            return Err(TypeError::new(name, format!("is defined for numeric dtypes, got {x}")));
        }
        let dims: Vec<usize> = (0..x.rank()).filter(|i| !seen[*i]).map(|i| x.shape[i]).collect();
        let dtype = match self {
            R::ArgMax { axis } | R::ArgMin { axis } => {
                if x.shape[*axis] == 0 {
                    return Err(TypeError::new(name, format!("axis {axis} of {x} is empty, so it has no extremum")));
                }
                if x.shape[*axis] > i32::MAX as usize {
                    return Err(TypeError::new(name, format!("axis {axis} of {x} is longer than an i32 index counts")));
                }
                DType::I32
            }
            _ => x.dtype,
        };
        Ok(vec![AVal::new(dtype, dims)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_rules() {
        let x = AVal::new(DType::F32, [2, 3, 4]);
        assert_eq!(
            R::Sum { axes: vec![0, 2] }.abstract_eval(std::slice::from_ref(&x)).unwrap(),
            vec![AVal::new(DType::F32, [3])]
        );
        assert_eq!(R::Max { axes: vec![] }.abstract_eval(std::slice::from_ref(&x)).unwrap(), vec![x.clone()]);
        assert_eq!(
            R::ArgMin { axis: 1 }.abstract_eval(std::slice::from_ref(&x)).unwrap(),
            vec![AVal::new(DType::I32, [2, 4])]
        );
        assert!(R::Sum { axes: vec![3] }.abstract_eval(std::slice::from_ref(&x)).is_err());
        assert!(R::Sum { axes: vec![1, 1] }.abstract_eval(&[x]).is_err());
        assert!(R::ArgMax { axis: 0 }.abstract_eval(&[AVal::new(DType::F32, [0, 2])]).is_err());
        // An index past i32::MAX would wrap; an axis up to it is fine.
        let long = |n: usize| R::ArgMax { axis: 0 }.abstract_eval(&[AVal::new(DType::F32, [n])]);
        assert!(long(1 << 31).unwrap_err().to_string().contains("longer than an i32 index counts"));
        assert_eq!(long((1 << 31) - 1).unwrap(), vec![AVal::scalar(DType::I32)]);
        assert_eq!(
            R::Sum { axes: vec![0] }.abstract_eval(&[AVal::new(DType::F64, [0, 2])]).unwrap(),
            vec![AVal::new(DType::F64, [2])]
        );
    }
}
