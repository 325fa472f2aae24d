//! Shape primitives (broadcast, reshape, transpose, slicing, padding, iota):
//! names, params and the shape/dtype rule.

use super::params::{ints, Param, Params};
use crate::error::list_avals;
use crate::{AVal, DType, Shape, TypeError};

/// A primitive that moves, selects or creates elements without arithmetic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ShapeOp {
    /// Operand dimension `i` becomes output dimension `dims[i]` (size 1 stretches);
    /// other output dimensions are new. The only broadcast in the IR.
    BroadcastInDim { shape: Shape, dims: Vec<usize> },
    /// Same elements in row-major order, new shape.
    Reshape { shape: Shape },
    /// Output dimension `i` is operand dimension `perm[i]`.
    Transpose { perm: Vec<usize> },
    /// Removes the listed size-1 dimensions.
    Squeeze { axes: Vec<usize> },
    /// Inserts size-1 dimensions at the listed output positions.
    ExpandDims { axes: Vec<usize> },
    /// Static strided slice `start..limit` by `strides` per dimension.
    Slice { start: Vec<usize>, limit: Vec<usize>, strides: Vec<usize> },
    /// Operands: the array, then one rank-0 i32 start index per dimension.
    /// Starts are clamped so the window stays in bounds (as in XLA).
    DynamicSlice { sizes: Vec<usize> },
    /// Operands: the array, the update, then one rank-0 i32 start index per dimension (clamped).
    DynamicUpdateSlice,
    /// Joins operands along `axis`.
    Concatenate { axis: usize },
    /// Operands: the array and a rank-0 padding value. `low`/`high` may be negative (cropping).
    Pad { low: Vec<i64>, high: Vec<i64>, interior: Vec<usize> },
    /// No operands: the index along `axis`, broadcast to `shape`.
    Iota { dtype: DType, shape: Shape, axis: usize },
}

use ShapeOp as S;

fn err(op: &ShapeOp, msg: String) -> TypeError {
    TypeError::new(op.name(), msg)
}

fn check_arity(op: &ShapeOp, ins: &[AVal], n: usize) -> Result<(), TypeError> {
    if ins.len() != n {
        return Err(err(op, format!("expects {n} operand(s), got {} ({})", ins.len(), list_avals(ins))));
    }
    Ok(())
}

/// `axes` are distinct and below `rank`.
fn check_axes(op: &ShapeOp, axes: &[usize], rank: usize, what: &str) -> Result<(), TypeError> {
    let mut seen = vec![false; rank];
    for &a in axes {
        if a >= rank {
            return Err(err(op, format!("{what} {a} is out of range for rank {rank}")));
        }
        if seen[a] {
            return Err(err(op, format!("{what} {a} is repeated")));
        }
        seen[a] = true;
    }
    Ok(())
}

impl ShapeOp {
    pub fn name(&self) -> &'static str {
        match self {
            S::BroadcastInDim { .. } => "broadcast_in_dim",
            S::Reshape { .. } => "reshape",
            S::Transpose { .. } => "transpose",
            S::Squeeze { .. } => "squeeze",
            S::ExpandDims { .. } => "expand_dims",
            S::Slice { .. } => "slice",
            S::DynamicSlice { .. } => "dynamic_slice",
            S::DynamicUpdateSlice => "dynamic_update_slice",
            S::Concatenate { .. } => "concatenate",
            S::Pad { .. } => "pad",
            S::Iota { .. } => "iota",
        }
    }

    pub fn params(&self) -> Vec<(&'static str, Param)> {
        match self {
            S::BroadcastInDim { shape, dims } => vec![("shape", ints(shape)), ("broadcast_dimensions", ints(dims))],
            S::Reshape { shape } => vec![("new_sizes", ints(shape))],
            S::Transpose { perm } => vec![("permutation", ints(perm))],
            S::Squeeze { axes } => vec![("dimensions", ints(axes))],
            S::ExpandDims { axes } => vec![("dimensions", ints(axes))],
            S::Slice { start, limit, strides } => {
                vec![("start_indices", ints(start)), ("limit_indices", ints(limit)), ("strides", ints(strides))]
            }
            S::DynamicSlice { sizes } => vec![("slice_sizes", ints(sizes))],
            S::DynamicUpdateSlice => vec![],
            S::Concatenate { axis } => vec![("dimension", Param::Int(*axis as i64))],
            S::Pad { low, high, interior } => vec![
                ("low", Param::Ints(low.clone())),
                ("high", Param::Ints(high.clone())),
                ("interior", ints(interior)),
            ],
            S::Iota { dtype, shape, axis } => {
                vec![("dtype", Param::DType(*dtype)), ("shape", ints(shape)), ("dimension", Param::Int(*axis as i64))]
            }
        }
    }

    pub fn from_parts(name: &str, p: &mut Params) -> Option<Result<ShapeOp, String>> {
        let r = match name {
            "broadcast_in_dim" => {
                (|| Ok(S::BroadcastInDim { shape: Shape(p.usizes("shape")?), dims: p.usizes("broadcast_dimensions")? }))(
                )
            }
            "reshape" => p.usizes("new_sizes").map(|s| S::Reshape { shape: Shape(s) }),
            "transpose" => p.usizes("permutation").map(|perm| S::Transpose { perm }),
            "squeeze" => p.usizes("dimensions").map(|axes| S::Squeeze { axes }),
            "expand_dims" => p.usizes("dimensions").map(|axes| S::ExpandDims { axes }),
            "slice" => (|| {
                Ok(S::Slice {
                    start: p.usizes("start_indices")?,
                    limit: p.usizes("limit_indices")?,
                    strides: p.usizes("strides")?,
                })
            })(),
            "dynamic_slice" => p.usizes("slice_sizes").map(|sizes| S::DynamicSlice { sizes }),
            "dynamic_update_slice" => Ok(S::DynamicUpdateSlice),
            "concatenate" => p.usize("dimension").map(|axis| S::Concatenate { axis }),
            "pad" => (|| Ok(S::Pad { low: p.ints("low")?, high: p.ints("high")?, interior: p.usizes("interior")? }))(),
            "iota" => (|| {
                Ok(S::Iota { dtype: p.dtype("dtype")?, shape: Shape(p.usizes("shape")?), axis: p.usize("dimension")? })
            })(),
            _ => return None,
        };
        Some(r)
    }

    /// The shape/dtype rule.
    pub fn abstract_eval(&self, ins: &[AVal]) -> Result<Vec<AVal>, TypeError> {
        let out = match self {
            S::BroadcastInDim { shape, dims } => {
                check_arity(self, ins, 1)?;
                let x = &ins[0];
                if dims.len() != x.rank() {
                    return Err(err(
                        self,
                        format!("operand {x} has rank {} but {} broadcast dimensions were given", x.rank(), dims.len()),
                    ));
                }
                check_axes(self, dims, shape.rank(), "broadcast dimension")?;
                if dims.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(err(self, format!("broadcast dimensions {dims:?} must be increasing")));
                }
                for (i, &d) in dims.iter().enumerate() {
                    if x.shape[i] != 1 && x.shape[i] != shape[d] {
                        return Err(err(self, format!(
                            "cannot broadcast operand {x} to shape {shape}: operand dimension {i} has size {} but output dimension {d} has size {}",
                            x.shape[i], shape[d]
                        )));
                    }
                }
                AVal { dtype: x.dtype, shape: shape.clone() }
            }
            S::Reshape { shape } => {
                check_arity(self, ins, 1)?;
                let x = &ins[0];
                if x.numel() != shape.numel() {
                    return Err(err(
                        self,
                        format!(
                            "cannot reshape {x} ({} elements) to shape {shape} ({} elements)",
                            x.numel(),
                            shape.numel()
                        ),
                    ));
                }
                AVal { dtype: x.dtype, shape: shape.clone() }
            }
            S::Transpose { perm } => {
                check_arity(self, ins, 1)?;
                let x = &ins[0];
                if perm.len() != x.rank() {
                    return Err(err(self, format!("permutation {perm:?} does not match the rank of {x}")));
                }
                check_axes(self, perm, x.rank(), "permutation entry")?;
                AVal::new(x.dtype, perm.iter().map(|&p| x.shape[p]).collect::<Vec<_>>())
            }
            S::Squeeze { axes } => {
                check_arity(self, ins, 1)?;
                let x = &ins[0];
                check_axes(self, axes, x.rank(), "axis")?;
                if let Some(&a) = axes.iter().find(|&&a| x.shape[a] != 1) {
                    return Err(err(
                        self,
                        format!("cannot squeeze axis {a} of {x}: its size is {}, not 1", x.shape[a]),
                    ));
                }
                let dims: Vec<usize> = (0..x.rank()).filter(|i| !axes.contains(i)).map(|i| x.shape[i]).collect();
                AVal::new(x.dtype, dims)
            }
            S::ExpandDims { axes } => {
                check_arity(self, ins, 1)?;
                let x = &ins[0];
                let rank = x.rank() + axes.len();
                check_axes(self, axes, rank, "axis")?;
                let mut src = x.shape.iter();
                let dims: Vec<usize> =
                    (0..rank).map(|i| if axes.contains(&i) { 1 } else { *src.next().unwrap_or(&1) }).collect();
                AVal::new(x.dtype, dims)
            }
            S::Slice { start, limit, strides } => {
                check_arity(self, ins, 1)?;
                let x = &ins[0];
                if start.len() != x.rank() || limit.len() != x.rank() || strides.len() != x.rank() {
                    return Err(err(
                        self,
                        format!("start, limit and strides must each have one entry per dimension of {x}"),
                    ));
                }
                let mut dims = Vec::with_capacity(x.rank());
                for i in 0..x.rank() {
                    if start[i] > limit[i] || limit[i] > x.shape[i] || strides[i] == 0 {
                        return Err(err(
                            self,
                            format!(
                                "invalid slice {}..{} step {} of dimension {i} (size {}) of {x}",
                                start[i], limit[i], strides[i], x.shape[i]
                            ),
                        ));
                    }
                    dims.push((limit[i] - start[i]).div_ceil(strides[i]));
                }
                AVal::new(x.dtype, dims)
            }
            S::DynamicSlice { sizes } => {
                let x = ins.first().ok_or_else(|| err(self, "expects an operand".into()))?;
                check_arity(self, ins, 1 + x.rank())?;
                check_indices(self, &ins[1..])?;
                if sizes.len() != x.rank() || sizes.iter().zip(x.shape.iter()).any(|(s, d)| s > d) {
                    return Err(err(self, format!("slice sizes {sizes:?} do not fit in {x}")));
                }
                AVal::new(x.dtype, sizes.clone())
            }
            S::DynamicUpdateSlice => {
                let x = ins.first().ok_or_else(|| err(self, "expects operands".into()))?;
                check_arity(self, ins, 2 + x.rank())?;
                let u = &ins[1];
                check_indices(self, &ins[2..])?;
                if u.dtype != x.dtype || u.rank() != x.rank() || u.shape.iter().zip(x.shape.iter()).any(|(a, b)| a > b)
                {
                    return Err(err(self, format!("update {u} does not fit in operand {x}")));
                }
                x.clone()
            }
            S::Concatenate { axis } => {
                let x = ins.first().ok_or_else(|| err(self, "expects at least one operand".into()))?;
                if *axis >= x.rank() {
                    return Err(err(self, format!("axis {axis} is out of range for {x}")));
                }
                let mut dims = x.shape.0.clone();
                dims[*axis] = 0;
                for a in ins {
                    let same = a.dtype == x.dtype
                        && a.rank() == x.rank()
                        && (0..x.rank()).all(|i| i == *axis || a.shape[i] == x.shape[i]);
                    if !same {
                        return Err(err(
                            self,
                            format!(
                                "operands {} must have one dtype and equal sizes except along axis {axis}",
                                list_avals(ins)
                            ),
                        ));
                    }
                    dims[*axis] = dims[*axis].checked_add(a.shape[*axis]).ok_or_else(|| {
                        err(self, format!("operands {} are too large to join along axis {axis}", list_avals(ins)))
                    })?;
                }
                AVal::new(x.dtype, dims)
            }
            S::Pad { low, high, interior } => {
                check_arity(self, ins, 2)?;
                let (x, v) = (&ins[0], &ins[1]);
                if v.rank() != 0 || v.dtype != x.dtype {
                    return Err(err(self, format!("the padding value must be a {} scalar, got {v}", x.dtype)));
                }
                if low.len() != x.rank() || high.len() != x.rank() || interior.len() != x.rank() {
                    return Err(err(
                        self,
                        format!("low, high and interior must each have one entry per dimension of {x}"),
                    ));
                }
                let mut dims = Vec::with_capacity(x.rank());
                for i in 0..x.rank() {
                    // Checked arithmetic: parameters may come from parsed text.
                    let too_large = || {
                        let (l, h, a) = (low[i], high[i], interior[i]);
                        err(
                            self,
                            format!(
                                "padding ({l}, {h}, {a}) of dimension {i} of {x} gives a size too large to represent"
                            ),
                        )
                    };
                    let d = i64::try_from(x.shape[i]).map_err(|_| too_large())?;
                    let inner = i64::try_from(interior[i]).map_err(|_| too_large())?;
                    let grown =
                        (d - 1).max(0).checked_mul(inner).and_then(|g| g.checked_add(d)).ok_or_else(too_large)?;
                    let n = low[i].checked_add(high[i]).and_then(|s| s.checked_add(grown)).ok_or_else(too_large)?;
                    if n < 0 || low[i] < -grown || high[i] < -grown {
                        return Err(err(
                            self,
                            format!(
                                "padding ({}, {}, {}) of dimension {i} of {x} crops more than the dimension holds",
                                low[i], high[i], interior[i]
                            ),
                        ));
                    }
                    dims.push(n as usize);
                }
                AVal::new(x.dtype, dims)
            }
            S::Iota { dtype, shape, axis } => {
                check_arity(self, ins, 0)?;
                if *axis >= shape.rank() {
                    return Err(err(self, format!("axis {axis} is out of range for shape {shape}")));
                }
                if dtype.is_bool() {
                    return Err(err(self, "cannot count in bool; use i32, f32 or f64".into()));
                }
                // The last index, the length less one, must fit in i32.
                if *dtype == DType::I32 && shape[*axis] > 1 << 31 {
                    return Err(err(self, format!("axis {axis} of {shape} is longer than i32 counts")));
                }
                AVal { dtype: *dtype, shape: shape.clone() }
            }
        };
        Ok(vec![out])
    }
}

fn check_indices(op: &ShapeOp, idx: &[AVal]) -> Result<(), TypeError> {
    if let Some(a) = idx.iter().find(|a| a.rank() != 0 || a.dtype != DType::I32) {
        return Err(err(op, format!("start indices must be i32 scalars, got {a}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &[usize]) -> AVal {
        AVal::new(DType::F32, s.to_vec())
    }

    #[test]
    fn broadcast_rule() {
        let op = S::BroadcastInDim { shape: Shape::from([2, 3]), dims: vec![1] };
        assert_eq!(op.abstract_eval(&[f(&[3])]).unwrap(), vec![f(&[2, 3])]);
        assert_eq!(op.abstract_eval(&[f(&[1])]).unwrap(), vec![f(&[2, 3])]);
        assert!(op
            .abstract_eval(&[f(&[2])])
            .unwrap_err()
            .to_string()
            .contains("cannot broadcast operand f32[2] to shape [2,3]"));
    }

    #[test]
    fn i32_iotas_count_up_to_i32_max() {
        let iota = |n: usize, dtype| S::Iota { dtype, shape: Shape::from([n]), axis: 0 }.abstract_eval(&[]);
        assert_eq!(iota(1 << 31, DType::I32).unwrap(), vec![AVal::new(DType::I32, [1 << 31])]);
        assert!(iota((1 << 31) + 1, DType::I32).unwrap_err().to_string().contains("longer than i32 counts"));
        assert!(iota((1 << 31) + 1, DType::F32).is_ok());
    }

    #[test]
    fn slice_pad_and_concat_rules() {
        let s = S::Slice { start: vec![1, 0], limit: vec![4, 5], strides: vec![2, 1] };
        assert_eq!(s.abstract_eval(&[f(&[4, 5])]).unwrap(), vec![f(&[2, 5])]);
        let p = S::Pad { low: vec![1, -1], high: vec![0, 2], interior: vec![1, 0] };
        assert_eq!(p.abstract_eval(&[f(&[3, 4]), f(&[])]).unwrap(), vec![f(&[6, 5])]);
        let p0 = S::Pad { low: vec![2], high: vec![0], interior: vec![3] };
        assert_eq!(p0.abstract_eval(&[f(&[0]), f(&[])]).unwrap(), vec![f(&[2])]);
        let c = S::Concatenate { axis: 1 };
        assert_eq!(c.abstract_eval(&[f(&[2, 1]), f(&[2, 0]), f(&[2, 3])]).unwrap(), vec![f(&[2, 4])]);
        assert!(c.abstract_eval(&[f(&[2, 1]), f(&[3, 1])]).is_err());
    }

    #[test]
    fn squeeze_expand_transpose() {
        assert_eq!(S::Squeeze { axes: vec![0, 2] }.abstract_eval(&[f(&[1, 3, 1])]).unwrap(), vec![f(&[3])]);
        assert!(S::Squeeze { axes: vec![1] }.abstract_eval(&[f(&[1, 3])]).is_err());
        assert_eq!(S::ExpandDims { axes: vec![0, 2] }.abstract_eval(&[f(&[3])]).unwrap(), vec![f(&[1, 3, 1])]);
        assert_eq!(S::Transpose { perm: vec![1, 0] }.abstract_eval(&[f(&[2, 3])]).unwrap(), vec![f(&[3, 2])]);
        assert!(S::Transpose { perm: vec![0, 0] }.abstract_eval(&[f(&[2, 3])]).is_err());
    }

    #[test]
    fn dynamic_slices() {
        let i = AVal::scalar(DType::I32);
        let ds = S::DynamicSlice { sizes: vec![2, 2] };
        assert_eq!(ds.abstract_eval(&[f(&[4, 4]), i.clone(), i.clone()]).unwrap(), vec![f(&[2, 2])]);
        assert!(ds.abstract_eval(&[f(&[4, 4]), i.clone(), f(&[])]).is_err());
        let du = S::DynamicUpdateSlice;
        assert_eq!(du.abstract_eval(&[f(&[4]), f(&[2]), i.clone()]).unwrap(), vec![f(&[4])]);
        assert!(du.abstract_eval(&[f(&[4]), f(&[5]), i]).is_err());
    }
}
