//! Derivatives of dot_general and the matrix primitives (and the functions built
//! on them: inv, inv_spd, cholesky_inverse, solve, det, logdet, slogdet) against
//! finite differences.

mod common;
use arrayjit_ir::prim::{DotDims, Linalg};
use arrayjit_trace::{lax, triangular_solve, Array, DType, TriangularSolve};
use common::{check_grads, Rng};
use proptest::prelude::*;

/// A symmetric, diagonally dominant matrix built from any square input, so
/// functions of SPD matrices can be checked along arbitrary directions.
fn spd_of(x: &Array) -> Array {
    let n = x.shape()[x.ndim() - 1];
    (x + &x.t()) * 0.5 + Array::eye(n, DType::F64) * (2.0 * n as f64)
}

/// A general (unsymmetric) matrix far from singular, built from any square
/// input with entries in [-1, 1]: such an `n × n` input has spectral norm at
/// most `n`, so adding `2n·I` keeps every singular value at least `n`.
fn shifted(x: &Array) -> Array {
    let n = x.shape()[x.ndim() - 1];
    x + Array::eye(n, DType::F64) * (2.0 * n as f64)
}

proptest! {
    #![proptest_config(common::proptest_config(8))]

    #[test]
    fn dot_general_with_batch_dims(b in 1usize..3, m in 1usize..4, k in 1usize..4, n in 1usize..4, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = rng.array(&[b, m, k], -1.0, 1.0);
        let y = rng.array(&[k, b, n], -1.0, 1.0);
        let dims = DotDims { lhs_contract: vec![2], rhs_contract: vec![0], lhs_batch: vec![0], rhs_batch: vec![1] };
        let f = move |xs: Vec<Array>| xs[0].dot_general(&xs[1], dims.clone());
        check_grads(&f, &[x.clone(), y.clone()], 2, &mut rng);
        // Contraction over two axes, no batch.
        let z = rng.array(&[k, n, b], -1.0, 1.0);
        let dims2 = DotDims { lhs_contract: vec![0, 2], rhs_contract: vec![2, 0], lhs_batch: vec![], rhs_batch: vec![] };
        let g = move |xs: Vec<Array>| xs[0].dot_general(&xs[1], dims2.clone());
        check_grads(&g, &[x, z], 2, &mut rng);
        // matmul with broadcast batch and a vector.
        let v = rng.array(&[k], -1.0, 1.0);
        let h = |xs: Vec<Array>| xs[0].matmul(&xs[1]);
        check_grads(&h, &[rng.array(&[b, m, k], -1.0, 1.0), v], 2, &mut rng);
    }

    #[test]
    fn matrix_functions(n in 1usize..5, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = rng.array(&[n, n], -1.0, 1.0);
        let b = rng.array(&[n, 2], -1.0, 1.0);
        let cases: Vec<(&str, common::Case)> = vec![
            ("cholesky", Box::new(|xs: Vec<Array>| spd_of(&xs[0]).cholesky())),
            ("logdet", Box::new(|xs: Vec<Array>| spd_of(&xs[0]).logdet())),
            ("inv_spd", Box::new(|xs: Vec<Array>| spd_of(&xs[0]).inv_spd())),
            // A factor with a strong diagonal; its upper triangle is never read.
            ("cholesky_inverse", Box::new(|xs: Vec<Array>| shifted(&xs[0]).cholesky_inverse())),
            ("solve_spd", Box::new(|xs: Vec<Array>| spd_of(&xs[0]).solve_spd(&xs[1]))),
            ("inv", Box::new(|xs: Vec<Array>| shifted(&xs[0]).matmul(&spd_of(&xs[0])).inv())),
            ("det", Box::new(|xs: Vec<Array>| shifted(&xs[0]).det())),
            ("slogdet", Box::new(|xs: Vec<Array>| {
                let (s, l) = shifted(&xs[0]).slogdet();
                s * l
            })),
            ("solve", Box::new(|xs: Vec<Array>| shifted(&xs[0]).solve(&xs[1]))),
        ];
        for (name, f) in cases {
            eprintln!("checking {name}");
            check_grads(&*f, &[x.clone(), b.clone()], 2, &mut rng);
        }
    }

    #[test]
    fn triangular_solve_every_flag(n in 1usize..4, k in 1usize..3, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let a = shifted(&rng.array(&[n, n], -1.0, 1.0));
        for flags in 0..16u32 {
            let o = TriangularSolve {
                left_side: flags & 1 != 0,
                lower: flags & 2 != 0,
                transpose_a: flags & 4 != 0,
                unit_diagonal: flags & 8 != 0,
            };
            let b = if o.left_side { rng.array(&[n, k], -1.0, 1.0) } else { rng.array(&[k, n], -1.0, 1.0) };
            let f = move |xs: Vec<Array>| triangular_solve(&xs[0], &xs[1], o);
            check_grads(&f, &[a.clone(), b], 2, &mut rng);
        }
    }
}

#[test]
fn batched_cholesky_and_inverse() {
    let mut rng = Rng::new(5);
    let x = rng.array(&[2, 3, 3], -1.0, 1.0);
    let f = |xs: Vec<Array>| {
        let s = (&xs[0] + xs[0].transpose(&[0, 2, 1])) * 0.5 + Array::eye(3, DType::F64) * 6.0;
        (s.cholesky(), s.inv()).1 + s.cholesky() + s.inv_spd()
    };
    check_grads(&f, std::slice::from_ref(&x), 1, &mut rng);
    let g = |xs: Vec<Array>| (&xs[0] + Array::eye(3, DType::F64) * 4.0).cholesky_inverse();
    check_grads(&g, &[x], 2, &mut rng);
}

#[test]
fn logdet_gradient_is_the_inverse() {
    let mut rng = Rng::new(9);
    let s = rng.spd(4);
    let g = arrayjit_ad::grad(|m: Array| m.logdet())(s.clone()).unwrap();
    let inv = s.inv();
    for (a, b) in g.to_f64_vec().iter().zip(inv.to_f64_vec()) {
        assert!((a - b).abs() < 1e-12);
    }
}

/// The `lu` primitive itself: packed factors, pivots, permutation.
fn lu(a: &Array) -> (Array, Array, Array) {
    let mut outs = lax::apply(Linalg::Lu.into(), &[a]).expect("lu of a float matrix").into_iter();
    match (outs.next(), outs.next(), outs.next()) {
        (Some(lu), Some(pivots), Some(perm)) => (lu, pivots, perm),
        _ => panic!("lu has three outputs"),
    }
}

/// The rows of a column-diagonally-dominant matrix in reverse order: partial
/// pivoting has to swap rows, and each pivot wins by a wide margin, so the
/// factors are smooth functions of the entries around it.
fn needs_pivoting(rng: &mut Rng, batch: &[usize], n: usize) -> Array {
    let mut shape = batch.to_vec();
    shape.extend([n, n]);
    let d = shifted(&rng.array(&shape, -1.0, 1.0));
    let rev: Vec<f64> = (0..n * n).map(|k| if k / n + k % n == n - 1 { 1.0 } else { 0.0 }).collect();
    Array::from_vec(rev, [n, n]).matmul(&d)
}

#[test]
fn lu_factors_directly() {
    let mut rng = Rng::new(13);
    for (batch, n) in [(vec![], 1), (vec![], 3), (vec![], 4), (vec![2], 3)] {
        let a = needs_pivoting(&mut rng, &batch, n);
        let (_, _, perm) = lu(&a);
        if n > 1 {
            assert_ne!(perm.to_vec::<i32>()[0], 0, "the test matrix should need pivoting");
        }
        let w = rng.array(a.shape(), -1.0, 1.0);
        // A smooth function of both packed factors (strict lower part: L, upper part: U).
        let f = move |xs: Vec<Array>| (lu(&xs[0]).0 * &w).sin();
        eprintln!("checking lu of {:?}", a.shape());
        check_grads(&f, std::slice::from_ref(&a), 2, &mut rng);
    }
    // det A = ±Π Uᵢᵢ, the sign from the pivots (an integer output, which
    // carries no derivative); its gradient is det(A)·A⁻ᵀ.
    for n in [3, 4] {
        let a = needs_pivoting(&mut rng, &[], n);
        let det = move |a: Array| {
            let (packed, pivots, _) = lu(&a);
            let swaps = pivots.ne(Array::iota(DType::I32, [n], 0)).astype(DType::F64).sum(..);
            let sign = (swaps % 2.0) * -2.0 + 1.0;
            packed.diag_part().prod(..) * sign
        };
        let d = det(a.clone()).item::<f64>();
        assert!((d - a.det().item::<f64>()).abs() <= 1e-12 * d.abs(), "{d} vs {}", a.det());
        let g = arrayjit_ad::grad(det)(a.clone()).unwrap();
        let want = a.inv().t() * d;
        for (x, y) in g.to_f64_vec().iter().zip(want.to_f64_vec()) {
            assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{g} vs {want}");
        }
    }
}

/// The adjugate of a 3×3 matrix by cofactors: `adj(A)[i][j] = C[j][i]`.
fn adjugate3(a: &[f64]) -> Vec<f64> {
    let m = |r: usize, c: usize| a[r * 3 + c];
    let cof = |r: usize, c: usize| {
        let (r0, r1) = ((r + 1) % 3, (r + 2) % 3);
        let (c0, c1) = ((c + 1) % 3, (c + 2) % 3);
        m(r0, c0) * m(r1, c1) - m(r0, c1) * m(r1, c0)
    };
    (0..9).map(|k| cof(k % 3, k / 3)).collect()
}

/// The determinant's gradient is the transposed adjugate at singular
/// matrices too (rank n − 1: a rank-one adjugate; lower: zero), as JAX's:
/// through the LU factors alone it would be NaN there. (The documented gap,
/// rank n − 1 with several zero pivots, gives zeros: finite, not right.)
#[test]
fn det_gradient_at_singular_matrices() {
    let grad_det = arrayjit_ad::grad(|a: Array| a.det().sum(..));
    let cases: [(&str, [f64; 9]); 4] = [
        // Pivoting leaves an exact zero pivot last.
        ("rank 2", [2.0, 1.0, 1.0, 4.0, 2.0, 2.0, 1.0, 3.0, 5.0]),
        // The zero pivot in the middle.
        ("rank 2, middle pivot", [1.0, 2.0, 3.0, 2.0, 4.0, 6.5, 0.0, 0.0, 1.0]),
        ("rank 1", [1.0, 2.0, 3.0, 2.0, 4.0, 6.0, -1.0, -2.0, -3.0]),
        ("regular", [2.0, -1.0, 0.5, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0]),
    ];
    for (what, a) in cases {
        let g = grad_det(Array::from_vec(a.to_vec(), [3, 3])).unwrap().to_f64_vec();
        let adj = adjugate3(&a);
        let want: Vec<f64> = (0..9).map(|k| adj[(k % 3) * 3 + k / 3]).collect();
        for (x, y) in g.iter().zip(&want) {
            assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{what}: {g:?} vs {want:?}");
        }
    }
    // The gap: [[0, 1], [0, 0]] has adjugate [[0, −1], [0, 0]], its factor two zero pivots.
    let g = grad_det(Array::from_vec(vec![0.0f64, 1.0, 0.0, 0.0], [2, 2])).unwrap().to_f64_vec();
    assert_eq!(g, vec![0.0; 4]);
    // A batch of all four.
    let batch: Vec<f64> = cases.iter().flat_map(|(_, a)| a.to_vec()).collect();
    let g = grad_det(Array::from_vec(batch, [4, 3, 3])).unwrap().to_f64_vec();
    for (b, (what, a)) in cases.iter().enumerate() {
        let adj = adjugate3(a);
        for k in 0..9 {
            let (x, want) = (g[b * 9 + k], adj[(k % 3) * 3 + k / 3]);
            assert!((x - want).abs() <= 1e-12 * (1.0 + want.abs()), "batched {what}: {x} vs {want}");
        }
    }
}
