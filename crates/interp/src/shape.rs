//! Shape primitives: each is written as a *gather*, a list saying, for every
//! output element in row-major order, which operand and which flat offset in it
//! the element is copied from. One generic copy loop then serves every dtype.
//!
//! Reshape, squeeze and expand_dims keep the data as it is; iota creates it.

use crate::index::{indices, ravel};
use crate::typed::{array, typed, with_dtype, Elem};
use crate::EvalError;
use arrayjit_ir::prim::ShapeOp;
use arrayjit_ir::{AVal, HostArray, Scalar};

use ShapeOp as S;

/// "Copy element `offset` of operand `source`".
type Src = (usize, usize);

/// Evaluates a shape primitive; `out` is the rule's output type.
pub(crate) fn eval(op: &ShapeOp, args: &[&HostArray], out: &AVal) -> Result<HostArray, EvalError> {
    let name = op.name();
    let dims = out.shape.dims();
    // Operands past the sources (start indices) are not copied from.
    let sources = match op {
        S::DynamicSlice { .. } => &args[..1],
        S::DynamicUpdateSlice => &args[..2],
        _ => args,
    };
    let map: Vec<Src> = match op {
        S::Reshape { .. } | S::Squeeze { .. } | S::ExpandDims { .. } => {
            // Row-major order is unchanged: only the shape changes.
            return array(name, dims, args[0].data().clone());
        }
        S::Iota { dtype, axis, .. } => {
            let data = arrayjit_ir::Data::from_scalars(
                *dtype,
                indices(dims).map(|o| Scalar::from_f64(o[*axis] as f64, *dtype)),
            );
            return array(name, dims, data);
        }
        S::BroadcastInDim { dims: bdims, .. } => {
            let x = args[0].shape().dims();
            indices(dims)
                .map(|o| {
                    // A size-1 operand dimension stretches: it is always read at 0.
                    let i: Vec<usize> = bdims.iter().zip(x).map(|(&d, &n)| if n == 1 { 0 } else { o[d] }).collect();
                    (0, ravel(&i, x))
                })
                .collect()
        }
        S::Transpose { perm } => {
            let x = args[0].shape().dims();
            indices(dims)
                .map(|o| {
                    // Output dimension k is operand dimension perm[k].
                    let mut i = vec![0; x.len()];
                    for (k, &p) in perm.iter().enumerate() {
                        i[p] = o[k];
                    }
                    (0, ravel(&i, x))
                })
                .collect()
        }
        S::Slice { start, strides, .. } => {
            let x = args[0].shape().dims();
            indices(dims)
                .map(|o| {
                    let i: Vec<usize> = (0..x.len()).map(|k| start[k] + o[k] * strides[k]).collect();
                    (0, ravel(&i, x))
                })
                .collect()
        }
        S::DynamicSlice { sizes } => {
            let x = args[0].shape().dims();
            let starts = clamped_starts(name, &args[1..], x, sizes)?;
            indices(dims)
                .map(|o| {
                    let i: Vec<usize> = (0..x.len()).map(|k| starts[k] + o[k]).collect();
                    (0, ravel(&i, x))
                })
                .collect()
        }
        S::DynamicUpdateSlice => {
            let (x, u) = (args[0].shape().dims(), args[1].shape().dims());
            let starts = clamped_starts(name, &args[2..], x, u)?;
            indices(dims)
                .map(|o| {
                    // Inside the window [start, start + update size) read the update.
                    let inside = (0..x.len()).all(|k| o[k] >= starts[k] && o[k] < starts[k] + u[k]);
                    if inside {
                        let j: Vec<usize> = (0..x.len()).map(|k| o[k] - starts[k]).collect();
                        (1, ravel(&j, u))
                    } else {
                        (0, ravel(&o, x))
                    }
                })
                .collect()
        }
        S::Concatenate { axis } => {
            // Operand j covers [offsets[j], offsets[j+1]) along the axis.
            let mut offsets = vec![0];
            for a in args {
                offsets.push(offsets[offsets.len() - 1] + a.shape()[*axis]);
            }
            indices(dims)
                .map(|o| {
                    // The operand whose range holds o[axis]; empty operands own no range.
                    let j = (0..args.len()).rfind(|&j| offsets[j] <= o[*axis]).unwrap_or(0);
                    let mut i = o.clone();
                    i[*axis] -= offsets[j];
                    (j, ravel(&i, args[j].shape()))
                })
                .collect()
        }
        S::Pad { low, interior, .. } => {
            let x = args[0].shape().dims();
            indices(dims)
                .map(|o| match pad_source(&o, x, low, interior) {
                    Some(i) => (0, ravel(&i, x)),
                    None => (1, 0),
                })
                .collect()
        }
    };
    let data = with_dtype!(out.dtype, T => {
        let srcs: Vec<&[T]> = sources.iter().map(|a| typed::<T>(name, a)).collect::<Result<_, _>>()?;
        T::wrap(map.iter().map(|&(s, off)| srcs[s][off]).collect())
    });
    array(name, dims, data)
}

/// The operand index an element of a padded array comes from, or `None` for
/// padding.
///
/// Along dimension `k` the operand's elements sit at output positions
/// `low[k] + j * (interior[k] + 1)` for `j` in `0..x[k]`; everything else is
/// padding. A negative `low` shifts the elements left, so the first ones fall
/// off (cropping); a negative `high` simply shortens the output.
fn pad_source(o: &[usize], x: &[usize], low: &[i64], interior: &[usize]) -> Option<Vec<usize>> {
    let mut i = Vec::with_capacity(x.len());
    for k in 0..x.len() {
        let pos = o[k] as i64 - low[k];
        let step = interior[k] as i64 + 1;
        if pos < 0 || pos % step != 0 || pos / step >= x[k] as i64 {
            return None;
        }
        i.push((pos / step) as usize);
    }
    Some(i)
}

/// The start indices of a dynamic slice or update, each clamped to
/// `[0, dim - size]` so that the window stays in bounds (as in XLA).
fn clamped_starts(
    name: &'static str,
    starts: &[&HostArray],
    dims: &[usize],
    sizes: &[usize],
) -> Result<Vec<usize>, EvalError> {
    starts
        .iter()
        .zip(dims.iter().zip(sizes))
        .map(|(s, (&d, &size))| {
            let v = typed::<i32>(name, s)?.first().copied().unwrap_or(0);
            let max = d.saturating_sub(size) as i64;
            Ok((v as i64).clamp(0, max) as usize)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval_prim;
    use crate::test_util::*;
    use arrayjit_ir::{DType, Shape};

    fn idx(v: i32) -> HostArray {
        i32s(&[], &[v])
    }

    fn iota_f64(shape: &[usize]) -> HostArray {
        let n = shape.iter().product::<usize>();
        f64s(shape, &(0..n).map(|i| i as f64).collect::<Vec<_>>())
    }

    #[test]
    fn broadcast_in_dim() {
        let bc = |shape: &[usize], dims: &[usize]| S::BroadcastInDim { shape: Shape::from(shape), dims: dims.to_vec() };
        let row = f32s(&[3], &[1.0, 2.0, 3.0]);
        assert_eq!(eval1(bc(&[2, 3], &[1]), [row.clone()]), f32s(&[2, 3], &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]));
        assert_eq!(eval1(bc(&[3, 2], &[0]), [row]), f32s(&[3, 2], &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0]));
        assert_eq!(eval1(bc(&[2, 3], &[1]), [i32s(&[1], &[7])]), i32s(&[2, 3], &[7; 6]));
        assert_eq!(eval1(bc(&[2, 2], &[]), [bools(&[], &[true])]), bools(&[2, 2], &[true; 4]));
        assert_eq!(eval1(bc(&[], &[]), [i32s(&[], &[4])]), i32s(&[], &[4]));
        let col = i32s(&[2, 1], &[1, 2]);
        assert_eq!(eval1(bc(&[2, 3], &[0, 1]), [col.clone()]), i32s(&[2, 3], &[1, 1, 1, 2, 2, 2]));
        assert_eq!(eval1(bc(&[2, 4, 3], &[0, 2]), [col]).data(), i32s(&[24], &[[1; 12], [2; 12]].concat()).data());
        assert_eq!(eval1(bc(&[2, 0], &[1]), [f64s(&[0], &[])]), f64s(&[2, 0], &[]));
        assert_eq!(eval1(bc(&[0, 3], &[]), [f64s(&[], &[1.0])]), f64s(&[0, 3], &[]));
    }

    #[test]
    fn reshape_squeeze_expand_keep_the_data() {
        let x = iota_f64(&[2, 3]);
        let r = eval1(S::Reshape { shape: Shape::from([3, 2]) }, [x.clone()]);
        assert_eq!(r, iota_f64(&[3, 2]));
        assert_eq!(eval1(S::Reshape { shape: Shape::from([1, 1]) }, [idx(5)]), i32s(&[1, 1], &[5]));
        assert_eq!(eval1(S::Reshape { shape: Shape::from([3, 0]) }, [f32s(&[0, 3], &[])]), f32s(&[3, 0], &[]));
        let e = eval1(S::ExpandDims { axes: vec![0, 3] }, [x]);
        assert_eq!(e, iota_f64(&[1, 2, 3, 1]));
        assert_eq!(eval1(S::Squeeze { axes: vec![3, 0] }, [e]), iota_f64(&[2, 3]));
        assert_eq!(eval1(S::Squeeze { axes: vec![0] }, [bools(&[1], &[true])]), bools(&[], &[true]));
    }

    #[test]
    fn transpose() {
        let x = i32s(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(eval1(S::Transpose { perm: vec![1, 0] }, [x.clone()]), i32s(&[3, 2], &[1, 4, 2, 5, 3, 6]));
        assert_eq!(eval1(S::Transpose { perm: vec![0, 1] }, [x]), i32s(&[2, 3], &[1, 2, 3, 4, 5, 6]));
        // out[a, b, c] = x[b, c, a] for perm [2, 0, 1] on x: [2, 3, 4].
        let x = iota_f64(&[2, 3, 4]);
        let t = eval1(S::Transpose { perm: vec![2, 0, 1] }, [x]);
        assert_eq!(t.shape(), &Shape::from([4, 2, 3]));
        let v = vals(&t);
        for a in 0..4 {
            for b in 0..2 {
                for c in 0..3 {
                    assert_eq!(v[a * 6 + b * 3 + c], (b * 12 + c * 4 + a) as f64);
                }
            }
        }
        let e = eval1(S::Transpose { perm: vec![1, 0] }, [f32s(&[0, 2], &[])]);
        assert_eq!(e, f32s(&[2, 0], &[]));
        assert_eq!(eval1(S::Transpose { perm: vec![] }, [idx(3)]), idx(3));
    }

    #[test]
    fn static_slice() {
        let x = iota_f64(&[4, 5]);
        let s = S::Slice { start: vec![1, 0], limit: vec![4, 5], strides: vec![2, 2] };
        assert_eq!(eval1(s, [x.clone()]), f64s(&[2, 3], &[5.0, 7.0, 9.0, 15.0, 17.0, 19.0]));
        let s = S::Slice { start: vec![2, 3], limit: vec![2, 5], strides: vec![1, 1] };
        assert_eq!(eval1(s, [x.clone()]), f64s(&[0, 2], &[]));
        let s = S::Slice { start: vec![3, 4], limit: vec![4, 5], strides: vec![5, 7] };
        assert_eq!(eval1(s, [x]), f64s(&[1, 1], &[19.0]));
        let s = S::Slice { start: vec![1], limit: vec![3], strides: vec![1] };
        assert_eq!(eval1(s, [bools(&[3], &[true, false, true])]), bools(&[2], &[false, true]));
    }

    #[test]
    fn dynamic_slice_clamps_starts() {
        let x = i32s(&[5], &[10, 11, 12, 13, 14]);
        let ds = |n: usize| S::DynamicSlice { sizes: vec![n] };
        assert_eq!(eval1(ds(2), [x.clone(), idx(1)]), i32s(&[2], &[11, 12]));
        assert_eq!(eval1(ds(2), [x.clone(), idx(-3)]), i32s(&[2], &[10, 11]));
        assert_eq!(eval1(ds(2), [x.clone(), idx(4)]), i32s(&[2], &[13, 14]));
        assert_eq!(eval1(ds(2), [x.clone(), idx(i32::MAX)]), i32s(&[2], &[13, 14]));
        assert_eq!(eval1(ds(5), [x.clone(), idx(2)]), x.clone());
        assert_eq!(eval1(ds(0), [x, idx(9)]), i32s(&[0], &[]));
        let m = iota_f64(&[3, 4]);
        let r = eval1(S::DynamicSlice { sizes: vec![2, 2] }, [m, idx(2), idx(-1)]);
        assert_eq!(r, f64s(&[2, 2], &[4.0, 5.0, 8.0, 9.0]));
        let e = eval_prim(&ds(1).into(), &[f32s(&[2], &[1.0, 2.0]), f32s(&[], &[0.0])]).unwrap_err();
        assert!(e.to_string().contains("start indices must be i32 scalars, got f32[]"), "{e}");
    }

    #[test]
    fn dynamic_update_slice_clamps_starts() {
        let du = S::DynamicUpdateSlice;
        let x = f32s(&[5], &[0.0; 5]);
        let u = f32s(&[2], &[1.0, 2.0]);
        assert_eq!(eval1(du.clone(), [x.clone(), u.clone(), idx(1)]), f32s(&[5], &[0.0, 1.0, 2.0, 0.0, 0.0]));
        assert_eq!(eval1(du.clone(), [x.clone(), u.clone(), idx(-7)]), f32s(&[5], &[1.0, 2.0, 0.0, 0.0, 0.0]));
        assert_eq!(eval1(du.clone(), [x.clone(), u, idx(4)]), f32s(&[5], &[0.0, 0.0, 0.0, 1.0, 2.0]));
        assert_eq!(eval1(du.clone(), [x.clone(), f32s(&[0], &[]), idx(2)]), x);
        let m = i32s(&[3, 3], &[0; 9]);
        let u = i32s(&[2, 1], &[7, 8]);
        let r = eval1(du.clone(), [m, u, idx(5), idx(1)]);
        assert_eq!(r, i32s(&[3, 3], &[0, 0, 0, 0, 7, 0, 0, 8, 0]));
        let r = eval1(du, [bools(&[2], &[false, false]), bools(&[2], &[true, true]), idx(0)]);
        assert_eq!(r, bools(&[2], &[true, true]));
    }

    #[test]
    fn concatenate() {
        let a = i32s(&[2, 1], &[1, 2]);
        let b = i32s(&[2, 0], &[]);
        let c = i32s(&[2, 2], &[3, 4, 5, 6]);
        let r = eval1(S::Concatenate { axis: 1 }, [a.clone(), b.clone(), c.clone()]);
        assert_eq!(r, i32s(&[2, 3], &[1, 3, 4, 2, 5, 6]));
        let r = eval1(S::Concatenate { axis: 1 }, [b.clone(), c.clone(), b.clone()]);
        assert_eq!(r, c);
        let r = eval1(S::Concatenate { axis: 0 }, [c.clone(), c]);
        assert_eq!(r, i32s(&[4, 2], &[3, 4, 5, 6, 3, 4, 5, 6]));
        assert_eq!(eval1(S::Concatenate { axis: 0 }, [a.clone()]), a);
        let r = eval1(S::Concatenate { axis: 0 }, [bools(&[1], &[true]), bools(&[2], &[false, true])]);
        assert_eq!(r, bools(&[3], &[true, false, true]));
        assert_eq!(eval1(S::Concatenate { axis: 1 }, [b.clone(), b]), i32s(&[2, 0], &[]));
    }

    #[test]
    fn pad_grows_crops_and_interleaves() {
        let pad = |low: &[i64], high: &[i64], interior: &[usize]| S::Pad {
            low: low.to_vec(),
            high: high.to_vec(),
            interior: interior.to_vec(),
        };
        let x = f32s(&[3], &[1.0, 2.0, 3.0]);
        let z = f32s(&[], &[0.0]);
        let r = eval1(pad(&[1], &[2], &[1]), [x.clone(), z.clone()]);
        assert_eq!(r, f32s(&[8], &[0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 0.0]));
        assert_eq!(eval1(pad(&[-1], &[-1], &[1]), [x.clone(), z.clone()]), f32s(&[3], &[0.0, 2.0, 0.0]));
        assert_eq!(eval1(pad(&[-2], &[1], &[0]), [x.clone(), z.clone()]), f32s(&[2], &[3.0, 0.0]));
        assert_eq!(eval1(pad(&[-3], &[0], &[0]), [x.clone(), z.clone()]), f32s(&[0], &[]));
        assert_eq!(eval1(pad(&[0], &[0], &[0]), [x, z.clone()]), f32s(&[3], &[1.0, 2.0, 3.0]));
        assert_eq!(eval1(pad(&[2], &[1], &[3]), [f32s(&[0], &[]), f32s(&[], &[9.0])]), f32s(&[3], &[9.0; 3]));
        // 2-D: rows padded above and cropped below, columns interleaved.
        let m = i32s(&[2, 2], &[1, 2, 3, 4]);
        let r = eval1(pad(&[1, 0], &[-1, 1], &[0, 1]), [m, idx(-1)]);
        assert_eq!(r, i32s(&[2, 4], &[-1, -1, -1, -1, 1, -1, 2, -1]));
        let e = eval_prim(&pad(&[0], &[0], &[0]).into(), &[f32s(&[1], &[1.0]), f64s(&[], &[0.0])]).unwrap_err();
        assert!(e.to_string().contains("padding value must be a f32 scalar"), "{e}");
    }

    #[test]
    fn iota_counts_along_the_axis() {
        let io = |dtype, shape: &[usize], axis| S::Iota { dtype, shape: Shape::from(shape), axis };
        assert_eq!(eval1(io(DType::I32, &[2, 3], 1), []), i32s(&[2, 3], &[0, 1, 2, 0, 1, 2]));
        assert_eq!(eval1(io(DType::I32, &[2, 3], 0), []), i32s(&[2, 3], &[0, 0, 0, 1, 1, 1]));
        assert_eq!(eval1(io(DType::F32, &[4], 0), []), f32s(&[4], &[0.0, 1.0, 2.0, 3.0]));
        assert_eq!(eval1(io(DType::F64, &[1, 2], 1), []), f64s(&[1, 2], &[0.0, 1.0]));
        assert_eq!(eval1(io(DType::F64, &[0, 2], 1), []), f64s(&[0, 2], &[]));
        assert!(eval_prim(&io(DType::Bool, &[2], 0).into(), &[]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn pad_then_slice_gives_the_operand_back(
            dims in proptest::collection::vec(0usize..4, 1..4),
            low in 0i64..3, high in 0i64..3, interior in 0usize..3,
        ) {
            let n: usize = dims.iter().product();
            let x = i32s(&dims, &(0..n as i32).collect::<Vec<_>>());
            let r = dims.len();
            let padded = eval1(S::Pad { low: vec![low; r], high: vec![high; r], interior: vec![interior; r] }, [x.clone(), idx(-1)]);
            // The operand's elements sit at low + j * (interior + 1).
            let start = vec![low as usize; r];
            let limit: Vec<usize> = padded.shape().iter().map(|&d| d - high as usize).collect();
            let back = eval1(S::Slice { start, limit, strides: vec![interior + 1; r] }, [padded.clone()]);
            proptest::prop_assert_eq!(back, x);
            // Everything else is padding.
            let count = |a: &HostArray| vals(a).iter().filter(|&&v| v == -1.0).count();
            proptest::prop_assert_eq!(count(&padded), padded.numel() - n);
        }

        #[test]
        fn transpose_then_inverse_is_identity(dims in proptest::collection::vec(0usize..4, 3), rot in 0usize..3) {
            let n: usize = dims.iter().product();
            let x = i32s(&dims, &(0..n as i32).collect::<Vec<_>>());
            let perm: Vec<usize> = (0..3).map(|i| (i + rot) % 3).collect();
            let mut inv = vec![0; 3];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            let t = eval1(S::Transpose { perm }, [x.clone()]);
            proptest::prop_assert_eq!(eval1(S::Transpose { perm: inv }, [t]), x);
        }
    }
}
