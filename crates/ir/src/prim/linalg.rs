//! Linear algebra primitives (dot_general, cholesky, cholesky_inverse, triangular_solve, lu):
//! names, params and the shape/dtype rule. Matrix primitives accept leading
//! batch dimensions: an operand of shape `[..., m, n]` is a batch of matrices.

use super::params::{ints, Param, Params};
use crate::error::list_avals;
use crate::{AVal, DType, TypeError};

/// Contraction and batch dimensions of a `dot_general`. The output's dimensions
/// are the batch dimensions, then the lhs free dimensions, then the rhs free ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct DotDims {
    pub lhs_contract: Vec<usize>,
    pub rhs_contract: Vec<usize>,
    pub lhs_batch: Vec<usize>,
    pub rhs_batch: Vec<usize>,
}

impl DotDims {
    /// `[m, k] x [k, n] -> [m, n]`.
    pub fn matmul() -> DotDims {
        DotDims { lhs_contract: vec![1], rhs_contract: vec![0], ..DotDims::default() }
    }

    /// The lhs dimensions that are neither contracted nor batch, in order.
    pub fn lhs_free(&self, rank: usize) -> Vec<usize> {
        (0..rank).filter(|d| !self.lhs_contract.contains(d) && !self.lhs_batch.contains(d)).collect()
    }

    /// The rhs dimensions that are neither contracted nor batch, in order.
    pub fn rhs_free(&self, rank: usize) -> Vec<usize> {
        (0..rank).filter(|d| !self.rhs_contract.contains(d) && !self.rhs_batch.contains(d)).collect()
    }
}

/// A linear-algebra primitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Linalg {
    DotGeneral(DotDims),
    /// Lower Cholesky factor `L` of a symmetric positive-definite matrix (`A = L Lᵀ`);
    /// only the lower triangle of the operand is read; the upper triangle of the result is 0.
    /// A matrix that is not positive definite gives NaNs.
    Cholesky,
    /// `(L Lᵀ)⁻¹` from a lower Cholesky factor `L`: the inverse of the
    /// matrix `L` factors. Only the lower triangle of the operand is read.
    CholeskyInverse,
    /// Solves `op(A) X = B` (`left_side`) or `X op(A) = B` for triangular `A`,
    /// where `op` transposes when `transpose_a`. Only `A`'s `lower` (or upper) triangle is read.
    TriangularSolve {
        left_side: bool,
        lower: bool,
        transpose_a: bool,
        unit_diagonal: bool,
    },
    /// LU with partial pivoting of `[..., m, n]`: outputs `lu` (unit-lower L and U packed),
    /// `pivots` (i32 `[..., min(m,n)]`: row `i` was swapped with row `pivots[i]`) and
    /// `permutation` (i32 `[..., m]`: `P A = L U` with `(P A)[i] = A[permutation[i]]`).
    Lu,
}

impl Linalg {
    pub fn name(&self) -> &'static str {
        match self {
            Linalg::DotGeneral(_) => "dot_general",
            Linalg::Cholesky => "cholesky",
            Linalg::CholeskyInverse => "cholesky_inverse",
            Linalg::TriangularSolve { .. } => "triangular_solve",
            Linalg::Lu => "lu",
        }
    }

    pub fn params(&self) -> Vec<(&'static str, Param)> {
        match self {
            Linalg::DotGeneral(d) => vec![
                ("lhs_contract", ints(&d.lhs_contract)),
                ("rhs_contract", ints(&d.rhs_contract)),
                ("lhs_batch", ints(&d.lhs_batch)),
                ("rhs_batch", ints(&d.rhs_batch)),
            ],
            Linalg::Cholesky | Linalg::CholeskyInverse | Linalg::Lu => vec![],
            Linalg::TriangularSolve { left_side, lower, transpose_a, unit_diagonal } => vec![
                ("left_side", Param::Bool(*left_side)),
                ("lower", Param::Bool(*lower)),
                ("transpose_a", Param::Bool(*transpose_a)),
                ("unit_diagonal", Param::Bool(*unit_diagonal)),
            ],
        }
    }

    pub fn from_parts(name: &str, p: &mut Params) -> Option<Result<Linalg, String>> {
        Some(match name {
            "dot_general" => (|| {
                Ok(Linalg::DotGeneral(DotDims {
                    lhs_contract: p.usizes("lhs_contract")?,
                    rhs_contract: p.usizes("rhs_contract")?,
                    lhs_batch: p.usizes("lhs_batch")?,
                    rhs_batch: p.usizes("rhs_batch")?,
                }))
            })(),
            "cholesky" => Ok(Linalg::Cholesky),
            "cholesky_inverse" => Ok(Linalg::CholeskyInverse),
            "lu" => Ok(Linalg::Lu),
            "triangular_solve" => (|| {
                Ok(Linalg::TriangularSolve {
                    left_side: p.bool("left_side")?,
                    lower: p.bool("lower")?,
                    transpose_a: p.bool("transpose_a")?,
                    unit_diagonal: p.bool("unit_diagonal")?,
                })
            })(),
            _ => return None,
        })
    }

    /// The shape/dtype rule.
    pub fn abstract_eval(&self, ins: &[AVal]) -> Result<Vec<AVal>, TypeError> {
        let name = self.name();
        let err = |m: String| TypeError::new(name, m);
        let want = match self {
            Linalg::DotGeneral(_) | Linalg::TriangularSolve { .. } => 2,
            Linalg::Cholesky | Linalg::CholeskyInverse | Linalg::Lu => 1,
        };
        if ins.len() != want {
            return Err(err(format!("expects {want} operand(s), got {}", list_avals(ins))));
        }
        match self {
            Linalg::DotGeneral(d) => {
                let (a, b) = (&ins[0], &ins[1]);
                if a.dtype != b.dtype || !a.dtype.is_numeric() {
                    return Err(err(format!("operands {a} and {b} must share one numeric dtype")));
                }
                let valid = |dims: &[usize], rank: usize| {
                    let mut seen = vec![false; rank];
                    dims.iter().all(|&x| x < rank && !std::mem::replace(&mut seen[x], true))
                };
                let all_l: Vec<usize> = d.lhs_contract.iter().chain(&d.lhs_batch).copied().collect();
                let all_r: Vec<usize> = d.rhs_contract.iter().chain(&d.rhs_batch).copied().collect();
                if d.lhs_contract.len() != d.rhs_contract.len()
                    || d.lhs_batch.len() != d.rhs_batch.len()
                    || !valid(&all_l, a.rank())
                    || !valid(&all_r, b.rank())
                {
                    return Err(err(format!("dimension numbers {d:?} are invalid for operands {a} and {b}")));
                }
                for (&l, &r) in d.lhs_contract.iter().zip(&d.rhs_contract) {
                    if a.shape[l] != b.shape[r] {
                        return Err(err(format!(
                            "cannot contract dimension {l} of {a} (size {}) with dimension {r} of {b} (size {})",
                            a.shape[l], b.shape[r]
                        )));
                    }
                }
                for (&l, &r) in d.lhs_batch.iter().zip(&d.rhs_batch) {
                    if a.shape[l] != b.shape[r] {
                        return Err(err(format!(
                            "batch dimension {l} of {a} (size {}) differs from batch dimension {r} of {b} (size {})",
                            a.shape[l], b.shape[r]
                        )));
                    }
                }
                let mut dims: Vec<usize> = d.lhs_batch.iter().map(|&i| a.shape[i]).collect();
                dims.extend(d.lhs_free(a.rank()).iter().map(|&i| a.shape[i]));
                dims.extend(d.rhs_free(b.rank()).iter().map(|&i| b.shape[i]));
                Ok(vec![AVal::new(a.dtype, dims)])
            }
            Linalg::Cholesky | Linalg::CholeskyInverse => {
                let a = &ins[0];
                square(name, a)?;
                Ok(vec![a.clone()])
            }
            Linalg::TriangularSolve { left_side, .. } => {
                let (a, b) = (&ins[0], &ins[1]);
                let m = square(name, a)?;
                if b.dtype != a.dtype || b.rank() != a.rank() || b.shape[..b.rank() - 2] != a.shape[..a.rank() - 2] {
                    return Err(err(format!(
                        "right-hand side {b} does not match matrix {a} (dtype, rank and batch dimensions)"
                    )));
                }
                let k = if *left_side { b.shape[b.rank() - 2] } else { b.shape[b.rank() - 1] };
                if k != m {
                    let side = if *left_side { "rows" } else { "columns" };
                    return Err(err(format!("right-hand side {b} must have {m} {side} to solve with {a}")));
                }
                Ok(vec![b.clone()])
            }
            Linalg::Lu => {
                let a = &ins[0];
                if a.rank() < 2 || !a.dtype.is_float() {
                    return Err(err(format!("expects a float matrix (rank ≥ 2), got {a}")));
                }
                let r = a.rank();
                let (m, n) = (a.shape[r - 2], a.shape[r - 1]);
                let batch = &a.shape[..r - 2];
                let mut piv = batch.to_vec();
                piv.push(m.min(n));
                let mut perm = batch.to_vec();
                perm.push(m);
                Ok(vec![a.clone(), AVal::new(DType::I32, piv), AVal::new(DType::I32, perm)])
            }
        }
    }
}

/// Checks for a float `[..., m, m]` operand and returns `m`.
fn square(name: &str, a: &AVal) -> Result<usize, TypeError> {
    let r = a.rank();
    if r < 2 || a.shape[r - 1] != a.shape[r - 2] || !a.dtype.is_float() {
        return Err(TypeError::new(name, format!("expects a float square matrix (or a batch of them), got {a}")));
    }
    Ok(a.shape[r - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &[usize]) -> AVal {
        AVal::new(DType::F64, s.to_vec())
    }

    #[test]
    fn dot_general_rule() {
        let mm = Linalg::DotGeneral(DotDims::matmul());
        assert_eq!(mm.abstract_eval(&[f(&[2, 3]), f(&[3, 4])]).unwrap(), vec![f(&[2, 4])]);
        let e = mm.abstract_eval(&[f(&[2, 3]), f(&[4, 4])]).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot contract dimension 1 of f64[2,3] (size 3) with dimension 0 of f64[4,4] (size 4)"),
            "{e}"
        );
        let bmm = Linalg::DotGeneral(DotDims {
            lhs_contract: vec![2],
            rhs_contract: vec![1],
            lhs_batch: vec![0],
            rhs_batch: vec![0],
        });
        assert_eq!(bmm.abstract_eval(&[f(&[5, 2, 3]), f(&[5, 3, 4])]).unwrap(), vec![f(&[5, 2, 4])]);
        let outer = Linalg::DotGeneral(DotDims::default());
        assert_eq!(outer.abstract_eval(&[f(&[2]), f(&[3])]).unwrap(), vec![f(&[2, 3])]);
    }

    #[test]
    fn matrix_rules() {
        assert!(Linalg::Cholesky.abstract_eval(&[f(&[2, 3])]).is_err());
        assert_eq!(Linalg::Cholesky.abstract_eval(&[f(&[4, 3, 3])]).unwrap(), vec![f(&[4, 3, 3])]);
        assert_eq!(Linalg::CholeskyInverse.abstract_eval(&[f(&[4, 3, 3])]).unwrap(), vec![f(&[4, 3, 3])]);
        let e = Linalg::CholeskyInverse.abstract_eval(&[f(&[3, 2])]).unwrap_err().to_string();
        assert!(e.starts_with("cholesky_inverse"), "{e}");
        assert!(Linalg::CholeskyInverse.abstract_eval(&[AVal::new(DType::I32, [2, 2])]).is_err());
        let ts = Linalg::TriangularSolve { left_side: true, lower: true, transpose_a: false, unit_diagonal: false };
        assert_eq!(ts.abstract_eval(&[f(&[3, 3]), f(&[3, 2])]).unwrap(), vec![f(&[3, 2])]);
        assert!(ts.abstract_eval(&[f(&[3, 3]), f(&[2, 3])]).is_err());
        let lu = Linalg::Lu.abstract_eval(&[f(&[4, 3])]).unwrap();
        assert_eq!(lu[1], AVal::new(DType::I32, [3]));
        assert_eq!(lu[2], AVal::new(DType::I32, [4]));
    }
}
