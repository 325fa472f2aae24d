//! The eager array API against hand-computed values.

use arrayjit_trace::*;

fn f32s(v: &[f32], shape: &[usize]) -> Array {
    Array::from_vec(v.to_vec(), shape.to_vec())
}

fn f64s(v: &[f64], shape: &[usize]) -> Array {
    Array::from_vec(v.to_vec(), shape.to_vec())
}

fn close(a: &Array, want: &[f64], tol: f64) {
    let got = a.to_f64_vec();
    assert_eq!(got.len(), want.len(), "{a}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "got {got:?}, want {want:?}");
    }
}

#[test]
fn arithmetic_broadcasts_and_promotes() {
    let x = f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let row = f32s(&[10.0, 20.0, 30.0], &[3]);
    let col = f32s(&[100.0, 200.0], &[2, 1]);
    let y = &x + &row;
    assert_eq!(y.shape(), &[2, 3]);
    assert_eq!(y.to_vec::<f32>(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    assert_eq!((&x * &col).to_vec::<f32>(), vec![100.0, 200.0, 300.0, 800.0, 1000.0, 1200.0]);
    assert_eq!((2.0 - &x).to_vec::<f32>(), vec![1.0, 0.0, -1.0, -2.0, -3.0, -4.0]);
    assert_eq!((&x / 2.0).dtype(), DType::F32);
    let i = Array::from_vec(vec![7i32, -7], [2]);
    assert_eq!((&i % 3).to_vec::<i32>(), vec![1, -1]);
    assert_eq!((&i / 2).to_vec::<f32>(), vec![3.5, -3.5]);
    assert_eq!((&i + 1).dtype(), DType::I32);
    assert_eq!((&i * 0.5).dtype(), DType::F32);
    let d = f64s(&[1.0, 2.0], &[2]);
    assert_eq!((&d + &f32s(&[1.0, 1.0], &[2])).dtype(), DType::F64);
    assert_eq!((-&d).to_vec::<f64>(), vec![-1.0, -2.0]);
    // size-0 and size-1 dimensions
    let e = Array::zeros([0, 3], DType::F32);
    assert_eq!((&e + &row).shape(), &[0, 3]);
    assert_eq!(e.sum(..).item::<f32>(), 0.0);
    let one = f32s(&[5.0], &[1, 1]);
    assert_eq!((&one * &x).to_vec::<f32>(), vec![5.0, 10.0, 15.0, 20.0, 25.0, 30.0]);
}

#[test]
fn math_functions() {
    let x = f64s(&[0.5, 1.0, 2.0], &[3]);
    close(&x.exp(), &[0.5f64.exp(), 1f64.exp(), 2f64.exp()], 1e-15);
    close(&x.log(), &[0.5f64.ln(), 0.0, 2f64.ln()], 1e-15);
    close(&x.sqrt(), &[0.5f64.sqrt(), 1.0, 2f64.sqrt()], 1e-15);
    close(&x.square(), &[0.25, 1.0, 4.0], 0.0);
    close(&x.powi(3), &[0.125, 1.0, 8.0], 0.0);
    close(&x.pow(0.5), &[0.5f64.sqrt(), 1.0, 2f64.sqrt()], 1e-15);
    // Integers to integer powers stay exact integers, as in JAX; booleans
    // count as integers; a float exponent makes a float.
    let i = Array::from_vec(vec![10i32, -3, 2, 0], [4]);
    let p = i.pow(Array::from_vec(vec![9i32, 3, -1, -2], [4]));
    assert_eq!(p.dtype(), DType::I32);
    assert_eq!(p.to_vec::<i32>(), vec![1_000_000_000, -27, 0, -1]);
    assert_eq!(i.pow(2).to_vec::<i32>(), vec![100, 9, 4, 0]);
    assert_eq!(i.pow(0.5).dtype(), DType::F32);
    let b = Array::from_vec(vec![true, false], [2]);
    assert_eq!(b.pow(&b).to_vec::<i32>(), vec![1, 1]);
    assert_eq!(b.pow(3).to_vec::<i32>(), vec![1, 0]);
    close(&x.tanh(), &[0.5f64.tanh(), 1f64.tanh(), 2f64.tanh()], 1e-15);
    close(
        &x.logistic(),
        &[1.0 / (1.0 + (-0.5f64).exp()), 1.0 / (1.0 + (-1f64).exp()), 1.0 / (1.0 + (-2f64).exp())],
        1e-15,
    );
    let i = Array::from_vec(vec![1i32, 4], [2]);
    assert_eq!(i.sqrt().to_vec::<f32>(), vec![1.0, 2.0]);
    let m = f32s(&[-1.5, 0.0, 2.5], &[3]);
    assert_eq!(m.abs().to_vec::<f32>(), vec![1.5, 0.0, 2.5]);
    assert_eq!(m.floor().to_vec::<f32>(), vec![-2.0, 0.0, 2.0]);
    assert_eq!(m.ceil().to_vec::<f32>(), vec![-1.0, 0.0, 3.0]);
    assert_eq!(m.sign().to_vec::<f32>(), vec![-1.0, 0.0, 1.0]);
    assert_eq!(m.maximum(0.0).to_vec::<f32>(), vec![0.0, 0.0, 2.5]);
}

#[test]
fn comparisons_and_where() {
    let x = f32s(&[-1.0, 0.0, 2.0], &[3]);
    let pos = x.gt(0.0);
    assert_eq!(pos.dtype(), DType::Bool);
    assert_eq!(pos.to_vec::<bool>(), vec![false, false, true]);
    assert_eq!(where_(&pos, &x, 0.0).to_vec::<f32>(), vec![0.0, 0.0, 2.0]);
    assert_eq!(x.le(0.0).select(1.0, &x).to_vec::<f32>(), vec![1.0, 1.0, 2.0]);
    let grid = where_(f32s(&[1.0, 0.0], &[2, 1]).gt(0.5), &x, -&x);
    assert_eq!(grid.to_vec::<f32>(), vec![-1.0, 0.0, 2.0, 1.0, -0.0, -2.0]);
    assert_eq!(x.eq(0.0).or(x.gt(1.0)).to_vec::<bool>(), vec![false, true, true]);
    assert_eq!(x.astype(DType::I32).to_vec::<i32>(), vec![-1, 0, 2]);
    assert_eq!(x.is_finite().to_vec::<bool>(), vec![true; 3]);
}

#[test]
fn reductions() {
    let x = f32s(&[1.0, 5.0, 3.0, 4.0, 2.0, 6.0], &[2, 3]);
    assert_eq!(x.sum(..).item::<f32>(), 21.0);
    assert_eq!(x.sum(0).to_vec::<f32>(), vec![5.0, 7.0, 9.0]);
    assert_eq!(x.sum(-1).to_vec::<f32>(), vec![9.0, 12.0]);
    assert_eq!(x.sum_keepdims(1).shape(), &[2, 1]);
    assert_eq!(x.mean(..).item::<f32>(), 3.5);
    assert_eq!(x.mean_keepdims(0).shape(), &[1, 3]);
    assert_eq!(x.max(1).to_vec::<f32>(), vec![5.0, 6.0]);
    assert_eq!(x.min(0).to_vec::<f32>(), vec![1.0, 2.0, 3.0]);
    assert_eq!(x.prod(..).item::<f32>(), 720.0);
    assert_eq!(x.argmax(1).to_vec::<i32>(), vec![1, 2]);
    assert_eq!(x.argmin(0).to_vec::<i32>(), vec![0, 1, 0]);
    assert_eq!(x.gt(2.5).sum(..).item::<i32>(), 4);
    // Booleans: any and all as max and min, the first true by argmax.
    let mask = x.gt(4.5);
    assert_eq!(mask.max(1).to_vec::<bool>(), vec![true, true]);
    assert!(!mask.min(..).item::<bool>());
    assert_eq!(mask.argmax(1).to_vec::<i32>(), vec![1, 2]);
    let centered = &x - x.mean_keepdims(1);
    close(&centered.sum(1), &[0.0, 0.0], 1e-6);
}

#[test]
fn floor_division_and_remainder_follow_python() {
    // Python: divmod(a, b) for every sign pair (and exact multiples).
    let (a, b) = ([7, -7, 7, -7, 6, -6, 0], [2, 2, -2, -2, 3, -3, 5]);
    let want_q = [3, -4, -4, 3, 2, 2, 0];
    let want_r = [1, 1, -1, -1, 0, 0, 0];
    let (x, y) = (Array::from_vec(a.to_vec(), [7]), Array::from_vec(b.to_vec(), [7]));
    assert_eq!(x.floor_divide(&y).to_vec::<i32>(), want_q);
    assert_eq!(x.remainder(&y).to_vec::<i32>(), want_r);
    let f = |v: [i32; 7]| Array::from_vec(v.iter().map(|&k| k as f64).collect(), [7]);
    assert_eq!(f(a).floor_divide(f(b)).to_vec::<f64>(), want_q.map(f64::from));
    assert_eq!(f(a).remainder(f(b)).to_vec::<f64>(), want_r.map(f64::from));
    // Python's 1 // 0.1 is 9.0 and 1 % 0.1 about 0.1, since 0.1 is a little above 1/10.
    let (one, tenth) = (Array::scalar(1.0f64), Array::scalar(0.1f64));
    assert_eq!(one.floor_divide(&tenth).item::<f64>(), 9.0);
    assert!((one.remainder(&tenth).item::<f64>() - 0.09999999999999995).abs() < 1e-17);
    // -1 mod 5 with a Rust scalar, for wrap-around indexing.
    assert_eq!(Array::from_vec(vec![-1i32, 4], [2]).remainder(5).to_vec::<i32>(), vec![4, 4]);
}

#[test]
fn shapes() {
    let x = f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    assert_eq!(x.reshape([3, 2]).shape(), &[3, 2]);
    assert_eq!(x.t().to_vec::<f32>(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(x.transpose(&[1, 0]).shape(), &[3, 2]);
    assert_eq!(x.slice(&[0, 1], &[2, 3]).to_vec::<f32>(), vec![2.0, 3.0, 5.0, 6.0]);
    assert_eq!(x.slice_strided(&[0, 0], &[2, 3], &[1, 2]).to_vec::<f32>(), vec![1.0, 3.0, 4.0, 6.0]);
    assert_eq!(x.index_axis(0, 1).to_vec::<f32>(), vec![4.0, 5.0, 6.0]);
    assert_eq!(x.expand_dims(&[0]).shape(), &[1, 2, 3]);
    assert_eq!(x.expand_dims(&[-1]).squeeze(&[-1]).shape(), &[2, 3]);
    assert_eq!(x.broadcast_to([4, 2, 3]).shape(), &[4, 2, 3]);
    assert_eq!(concatenate(&[x.clone(), x.clone()], 0).shape(), &[4, 3]);
    assert_eq!(stack(&[x.clone(), x.clone()], 1).shape(), &[2, 2, 3]);
    let v = f32s(&[1.0, 2.0], &[2]);
    assert_eq!(v.pad(&[1], &[2], &[1], 0.0).to_vec::<f32>(), vec![0.0, 1.0, 0.0, 2.0, 0.0, 0.0]);
    let i = Array::scalar(1i32);
    assert_eq!(x.dynamic_slice(&[i.clone(), i.clone()], &[1, 2]).to_vec::<f32>(), vec![5.0, 6.0]);
    let upd = x.dynamic_update_slice(&f32s(&[9.0], &[1, 1]), &[Array::scalar(0i32), Array::scalar(5i32)]);
    assert_eq!(upd.to_vec::<f32>(), vec![1.0, 2.0, 9.0, 4.0, 5.0, 6.0]);
    assert_eq!(Array::arange(4, DType::I32).to_vec::<i32>(), vec![0, 1, 2, 3]);
    assert_eq!(Array::eye(2, DType::F32).to_vec::<f32>(), vec![1.0, 0.0, 0.0, 1.0]);
    assert_eq!(Array::full([2], 7.0, DType::I32).to_vec::<i32>(), vec![7, 7]);
    let m = f32s(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    assert_eq!(m.diag_part().to_vec::<f32>(), vec![1.0, 4.0]);
    assert_eq!(m.trace().item::<f32>(), 5.0);
    assert_eq!(v.diag().to_vec::<f32>(), vec![1.0, 0.0, 0.0, 2.0]);
}

#[test]
fn linear_algebra() {
    let a = f64s(&[4.0, 2.0, 2.0, 3.0], &[2, 2]);
    let b = f64s(&[1.0, 2.0], &[2]);
    close(&a.matmul(&b), &[8.0, 8.0], 0.0);
    close(&b.dot(&b), &[5.0], 0.0);
    close(&a.inv(), &[0.375, -0.25, -0.25, 0.5], 1e-15);
    close(&a.inv_spd(), &[0.375, -0.25, -0.25, 0.5], 1e-15);
    close(&a.det(), &[8.0], 1e-15);
    close(&a.logdet(), &[8f64.ln()], 1e-15);
    let (s, l) = a.slogdet();
    close(&s, &[1.0], 0.0);
    close(&l, &[8f64.ln()], 1e-15);
    close(&a.solve(&b.reshape([2, 1])), &[-0.125, 0.75], 1e-15);
    close(&a.solve_spd(&b.reshape([2, 1])), &[-0.125, 0.75], 1e-15);
    // A vector right-hand side gives a vector, as NumPy's solve.
    assert_eq!(a.solve(&b).shape(), [2]);
    close(&a.solve(&b), &[-0.125, 0.75], 1e-15);
    close(&a.solve_spd(&b), &[-0.125, 0.75], 1e-15);
    let l = a.cholesky();
    close(&l.matmul(&l.t()), &[4.0, 2.0, 2.0, 3.0], 1e-15);
    // A permutation flips the determinant's sign.
    let p = f64s(&[0.0, 1.0, 1.0, 0.0], &[2, 2]);
    close(&p.det(), &[-1.0], 0.0);
    let (s, l) = p.slogdet();
    close(&s, &[-1.0], 0.0);
    close(&l, &[0.0], 0.0);
    // Batched matmul broadcasts the batch dimensions.
    let batch = Array::ones([3, 2, 2], DType::F64);
    assert_eq!(batch.matmul(&a).shape(), &[3, 2, 2]);
    close(&batch.matmul(&a).sum(..), &[3.0 * 22.0], 0.0);
    let x = triangular_solve(&l_lower(), &f64s(&[2.0, 5.0], &[2, 1]), TriangularSolve::default());
    close(&x, &[1.0, 1.0], 1e-15);
    // A 3x3 general matrix: inv · A = I.
    let g = f64s(&[0.0, 2.0, 1.0, 1.0, 1.0, 0.0, 3.0, 0.0, 1.0], &[3, 3]);
    close(&g.inv().matmul(&g), &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], 1e-14);
    close(&g.det(), &[-5.0], 1e-14);
}

fn l_lower() -> Array {
    f64s(&[2.0, 0.0, 3.0, 2.0], &[2, 2])
}

#[test]
fn read_back() {
    let x = f32s(&[1.0, 2.0], &[2]);
    assert!(x.try_to_vec::<f64>().unwrap_err().to_string().contains("cannot read f32[2] as f64"));
    assert!(x.try_item::<f32>().is_err());
    assert_eq!(Array::scalar(3.5f64).item::<f64>(), 3.5);
    assert_eq!(format!("{x}"), "f32[2]{1.0, 2.0}");
    let bad = Array::try_from_vec(vec![1.0f32; 5], [2, 3]).unwrap_err();
    assert!(bad.to_string().contains("cannot build an array of shape [2,3] from 5 elements"), "{bad}");
}

#[test]
fn f32_scalars_are_weak_like_f64_scalars() {
    let x32 = f32s(&[1.0, 2.0], &[2]);
    let x64 = f64s(&[1.0, 2.0], &[2]);
    let s = 0.5f32;
    // The array's dtype wins, whichever float type the scalar has.
    for (y, want) in [
        (&x32 * 2.0f32, DType::F32),
        (&x32 + s, DType::F32),
        (x32.clone() - 1.0f32, DType::F32),
        (&x32 / s, DType::F32),
        (&x32 % 2.0f32, DType::F32),
        (&x64 * 2.0f32, DType::F64),
        (x64.clone() + s, DType::F64),
        (&x64 - 1.0f32, DType::F64),
        (x64.clone() / s, DType::F64),
    ] {
        assert_eq!(y.dtype(), want, "{y}");
    }
    assert_eq!((&x32 * 2.0f32).to_vec::<f32>(), vec![2.0, 4.0]);
    assert_eq!((&x32 - 0.25f32).to_vec::<f32>(), vec![0.75, 1.75]);
    assert_eq!((&x32 / s).to_vec::<f32>(), vec![2.0, 4.0]);
    assert_eq!((&x64 + 0.1f32).to_vec::<f64>(), vec![1.0 + f64::from(0.1f32), 2.0 + f64::from(0.1f32)]);
    assert_eq!((&x64 * s).to_vec::<f64>(), vec![0.5, 1.0]);
    // Integer and bool arrays with a float scalar compute in f32, as with f64 scalars.
    let i = Array::from_vec(vec![1i32, 2], [2]);
    assert_eq!((&i * 1.5f32).to_vec::<f32>(), vec![1.5, 3.0]);
    assert_eq!((&i * 1.5f32).dtype(), (&i * 1.5).dtype());
    assert_eq!((Array::from_vec(vec![true, false], [2]) + 1.0f32).to_vec::<f32>(), vec![2.0, 1.0]);
    // Methods and `where_` take them too, in either position.
    assert_eq!(x32.maximum(1.5f32).to_vec::<f32>(), vec![1.5, 2.0]);
    assert_eq!(x64.try_sub(s).map(|y| y.to_vec::<f64>()).ok(), Some(vec![0.5, 1.5]));
    assert_eq!(where_(x32.gt(1.5f32), 0.0f32, &x32).to_vec::<f32>(), vec![1.0, 0.0]);
    assert_eq!(where_(x64.gt(1.5f32), 0.0f32, &x64).dtype(), DType::F64);
    assert_eq!(where_(true, 1.0f32, 2).dtype(), DType::F32);
    // A scalar on the left: f64 and i32 only, so that an unsuffixed literal
    // there still has one type and a method can be called on the result.
    assert_eq!((1.0 - &x32).abs().to_vec::<f32>(), vec![0.0, 1.0]);
    assert_eq!((f64::from(s) * &x32).to_vec::<f32>(), vec![0.5, 1.0]);
    // Unsuffixed literals on the right still default to f64, and are weak.
    assert_eq!((&x32 * 2.0).exp().dtype(), DType::F32);
}

#[test]
fn try_forms_agree_with_the_panicking_forms() {
    let x = f32s(&[1.0, 5.0, 3.0, 4.0, 2.0, 6.0], &[2, 3]);
    let same = |a: Result<Array>, b: Array| {
        let a = a.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((a.shape(), a.dtype(), a.to_f64_vec()), (b.shape(), b.dtype(), b.to_f64_vec()));
    };
    same(x.try_max(1), x.max(1));
    same(x.try_max_keepdims(1), x.max_keepdims(1));
    same(x.try_min(..), x.min(..));
    same(x.try_min_keepdims(0), x.min_keepdims(0));
    same(x.try_prod(0), x.prod(0));
    same(x.try_prod_keepdims(..), x.prod_keepdims(..));
    same(x.try_sum_keepdims(-1), x.sum_keepdims(-1));
    same(x.try_mean(1), x.mean(1));
    same(x.try_mean_keepdims([0, 1]), x.mean_keepdims([0, 1]));
    same(x.try_argmax(1), x.argmax(1));
    same(x.try_argmin(-2), x.argmin(-2));
    same(x.try_t(), x.t());
    same(x.try_slice(&[0, 1], &[2, 3]), x.slice(&[0, 1], &[2, 3]));
    same(x.try_index_axis(-1, 2), x.index_axis(-1, 2));
    same(x.try_pad(&[1, 0], &[0, -1], &[0, 1], 9.0), x.pad(&[1, 0], &[0, -1], &[0, 1], 9.0));
    let starts = [Array::scalar(1i32), Array::scalar(0i32)];
    same(x.try_dynamic_slice(&starts, &[1, 2]), x.dynamic_slice(&starts, &[1, 2]));
    let u = f32s(&[7.0, 8.0], &[1, 2]);
    same(x.try_dynamic_update_slice(&u, &starts), x.dynamic_update_slice(&u, &starts));
    let v = f32s(&[1.0, 2.0], &[2]);
    same(v.try_diag(), v.diag());
    same(x.try_square(), x.square());
    same(x.gt(2.5).try_select(&x, 0.0), x.gt(2.5).select(&x, 0.0));
    same(Array::try_iota(DType::F32, [2, 3], 1), Array::iota(DType::F32, [2, 3], 1));
    same(Array::try_arange(3, DType::I32), Array::arange(3, DType::I32));
    same(ops::shape::try_stack(&[v.clone(), v.astype(DType::F64)], 1), stack(&[v.clone(), v.astype(DType::F64)], 1));
    let a = f64s(&[4.0, 2.0, 2.0, 3.0], &[2, 2]);
    let b = f64s(&[1.0, 2.0], &[2, 1]);
    same(a.try_trace(), a.trace());
    same(a.try_dot(&a), a.dot(&a));
    let dims = arrayjit_ir::prim::DotDims { lhs_contract: vec![1], rhs_contract: vec![0], ..Default::default() };
    same(a.try_dot_general(&b, dims.clone()), a.dot_general(&b, dims));
    same(a.try_cholesky(), a.cholesky());
    same(a.try_inv(), a.inv());
    same(a.try_inv_spd(), a.inv_spd());
    same(a.try_solve(&b), a.solve(&b));
    same(a.try_solve_spd(&b), a.solve_spd(&b));
    same(a.try_logdet(), a.logdet());
    same(a.try_det(), a.det());
    let (s, l) = a.try_slogdet().unwrap_or_else(|e| panic!("{e}"));
    let (s2, l2) = a.slogdet();
    same(Ok(s), s2);
    same(Ok(l), l2);
    let o = TriangularSolve::default();
    same(ops::linalg::try_triangular_solve(&l_lower(), &b, o), triangular_solve(&l_lower(), &b, o));
}

#[test]
fn solves_broadcast_the_right_hand_side_over_the_batch() {
    let a = f64s(&[4.0, 2.0, 2.0, 3.0, 2.0, 0.0, 0.0, 4.0], &[2, 2, 2]);
    let b = f64s(&[1.0, 2.0], &[2, 1]);
    let x = a.solve(&b);
    assert_eq!(x.shape(), &[2, 2, 1]);
    close(&x, &[-0.125, 0.75, 0.5, 0.5], 1e-15);
    close(&a.solve_spd(&b), &[-0.125, 0.75, 0.5, 0.5], 1e-15);
    // Integer operands solve in f32 (to f32 rounding: the compiled backend's
    // LU may differ from exact arithmetic in the last place).
    let ai = Array::from_vec(vec![2i32, 0, 0, 4], [2, 2]);
    let bi = Array::from_vec(vec![2i32, 2], [2, 1]);
    for x in [ai.solve(&bi), ai.solve_spd(&bi)] {
        assert_eq!(x.dtype(), DType::F32);
        let v = x.to_vec::<f32>();
        assert!((v[0] - 1.0).abs() <= 1e-6 && (v[1] - 0.5).abs() <= 1e-6, "{v:?}");
    }
}

#[test]
fn stack_promotes_like_concatenate() {
    let i = Array::from_vec(vec![1i32, 2], [2]);
    let f = f64s(&[0.5, 1.5], &[2]);
    let s = stack(&[i.clone(), f.clone()], 0);
    assert_eq!(s.dtype(), DType::F64);
    assert_eq!(s.to_vec::<f64>(), vec![1.0, 2.0, 0.5, 1.5]);
    assert_eq!(stack(&[i, f], -1).to_vec::<f64>(), vec![1.0, 0.5, 2.0, 1.5]);
}
