//! The kernels against the reference interpreter on random inputs: dot_general
//! over random dimension numbers and layouts, the symmetric path, Cholesky,
//! every triangular-solve flag combination and LU.

use super::*;
use arrayjit_ir::prim::{DotDims, Linalg, Prim};
use arrayjit_ir::{AVal, DType, Data, HostArray, Scalar};
use proptest::prelude::*;

/// A small deterministic generator of values uniform in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn array(dtype: DType, shape: &[usize], v: &[f64]) -> HostArray {
    HostArray::new(shape.to_vec(), Data::from_scalars(dtype, v.iter().map(|&x| Scalar::F64(x)))).unwrap()
}

fn vals(a: &HostArray) -> Vec<f64> {
    (0..a.numel()).map(|i| a.data().get(i).as_f64()).collect()
}

fn interp(prim: &Linalg, ins: &[&HostArray]) -> Vec<HostArray> {
    let owned: Vec<HostArray> = ins.iter().map(|&a| a.clone()).collect();
    arrayjit_interp::eval_prim(&Prim::Linalg(prim.clone()), &owned).unwrap_or_else(|e| panic!("interpreter: {e}"))
}

fn ours(prim: &Linalg, ins: &[&HostArray]) -> Vec<HostArray> {
    eval_linalg(prim, ins).unwrap_or_else(|e| panic!("cpu: {e}"))
}

/// Asserts `|got - want| <= tol * scale` elementwise, NaN matching NaN.
fn assert_close(got: &[f64], want: &[f64], scale: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, ((g, w), s)) in got.iter().zip(want).zip(scale).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= tol * s;
        assert!(ok, "{what}: element {i}: got {g}, want {w} (scale {s}, tol {tol})");
    }
}

fn dot(lc: &[usize], rc: &[usize], lb: &[usize], rb: &[usize]) -> DotDims {
    DotDims { lhs_contract: lc.to_vec(), rhs_contract: rc.to_vec(), lhs_batch: lb.to_vec(), rhs_batch: rb.to_vec() }
}

/// Runs `dims` on random operands of the shapes in every dtype and compares
/// with the interpreter: exactly for i32, and for floats within a rounding
/// bound relative to `Σ |lhs| |rhs|` (the interpreter's dot on absolute values).
fn check_dot(dims: &DotDims, ls: &[usize], rs: &[usize], seed: u64) {
    let mut rng = Lcg(seed);
    let (lv, rv) = (rng.vec(ls.iter().product()), rng.vec(rs.iter().product()));
    let k: usize = dims.lhs_contract.iter().map(|&a| ls[a]).product();
    let prim = Linalg::DotGeneral(dims.clone());
    for dtype in [DType::F32, DType::F64] {
        let (l, r) = (array(dtype, ls, &lv), array(dtype, rs, &rv));
        let got = vals(&ours(&prim, &[&l, &r])[0]);
        let want = vals(&interp(&prim, &[&l, &r])[0]);
        let abs = |a: &HostArray| array(DType::F64, a.shape(), &vals(a).iter().map(|x| x.abs()).collect::<Vec<_>>());
        let scale: Vec<f64> = vals(&interp(&prim, &[&abs(&l), &abs(&r)])[0]).iter().map(|s| s + 1e-30).collect();
        let eps = if dtype == DType::F32 { 1e-6 } else { 1e-15 };
        assert_close(
            &got,
            &want,
            &scale,
            4.0 * eps * ((k + 1) as f64).sqrt(),
            &format!("{dtype} {dims:?} {ls:?} {rs:?}"),
        );
    }
    let ints = |v: &[f64]| v.iter().map(|x| (x * 1e9) as i32 as f64).collect::<Vec<_>>();
    let (l, r) = (array(DType::I32, ls, &ints(&lv)), array(DType::I32, rs, &ints(&rv)));
    assert_eq!(ours(&prim, &[&l, &r]), interp(&prim, &[&l, &r]), "i32 {dims:?} {ls:?} {rs:?}");
}

/// Random dot_general problems: group sizes, then each operand's axes in a random order.
#[derive(Clone, Debug)]
struct DotCase {
    dims: DotDims,
    lhs: Vec<usize>,
    rhs: Vec<usize>,
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![10 => 1usize..5, 1 => Just(0usize)]
}

fn dot_case() -> impl Strategy<Value = DotCase> {
    (
        proptest::collection::vec(size(), 0..3),
        proptest::collection::vec(size(), 0..3),
        proptest::collection::vec(size(), 0..3),
        proptest::collection::vec(size(), 0..3),
    )
        .prop_flat_map(|(batch, contract, lfree, rfree)| {
            let nl = batch.len() + contract.len() + lfree.len();
            let nr = batch.len() + contract.len() + rfree.len();
            let lperm = Just((0..nl).collect::<Vec<_>>()).prop_shuffle();
            let rperm = Just((0..nr).collect::<Vec<_>>()).prop_shuffle();
            (Just((batch, contract, lfree, rfree)), lperm, rperm)
        })
        .prop_map(|((batch, contract, lfree, rfree), lperm, rperm)| {
            // Logical axes: batch, then contracting, then free; `perm[p]` is the logical axis at position p.
            let build = |free: &[usize], perm: &[usize]| {
                let logical: Vec<usize> = batch.iter().chain(&contract).chain(free).copied().collect();
                let shape: Vec<usize> = perm.iter().map(|&l| logical[l]).collect();
                let pos = |l: usize| perm.iter().position(|&x| x == l).unwrap_or(0);
                let b: Vec<usize> = (0..batch.len()).map(pos).collect();
                let c: Vec<usize> = (batch.len()..batch.len() + contract.len()).map(pos).collect();
                (shape, b, c)
            };
            let (lhs, lhs_batch, lhs_contract) = build(&lfree, &lperm);
            let (rhs, rhs_batch, rhs_contract) = build(&rfree, &rperm);
            DotCase { dims: DotDims { lhs_contract, rhs_contract, lhs_batch, rhs_batch }, lhs, rhs }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn dot_general_matches_interpreter_on_random_dimension_numbers(case in dot_case(), seed in any::<u64>()) {
        check_dot(&case.dims, &case.lhs, &case.rhs, seed);
    }
}

#[test]
fn dot_general_layouts_read_in_place_or_pack() {
    let f = |s: &[usize]| AVal::new(DType::F32, s.to_vec());
    // Dimension numbers, lhs and rhs shapes, and whether each side is packed.
    type Layout<'a> = (DotDims, &'a [usize], &'a [usize], (bool, bool));
    let cases: [Layout; 11] = [
        (DotDims::matmul(), &[5, 3], &[3, 4], (false, false)),
        // Transposed operands: swapped strides.
        (dot(&[0], &[1], &[], &[]), &[3, 5], &[4, 3], (false, false)),
        (dot(&[2], &[1], &[0], &[0]), &[2, 5, 3], &[2, 3, 4], (false, false)),
        // Batch dimension anywhere, as long as the matrix keeps a unit stride.
        (dot(&[0], &[2], &[1], &[0]), &[3, 2, 5], &[2, 4, 3], (false, false)),
        // Batch innermost: neither matrix stride is 1.
        (dot(&[1], &[1], &[2], &[0]), &[5, 3, 2], &[2, 3, 4], (true, false)),
        // Matrix-vector and vector-vector.
        (DotDims::matmul(), &[5, 3], &[3], (false, false)),
        (dot(&[0], &[0], &[], &[]), &[3], &[3], (false, false)),
        // Two contracting dimensions, listed in either order.
        (dot(&[1, 2], &[0, 1], &[], &[]), &[5, 2, 3], &[2, 3, 4], (false, false)),
        (dot(&[2, 1], &[1, 0], &[], &[]), &[5, 2, 3], &[2, 3, 4], (false, false)),
        // Contracting pairs in opposite memory orders: one side is copied.
        (dot(&[1, 2], &[1, 0], &[], &[]), &[5, 2, 3], &[3, 2, 4], (false, true)),
        // Free dimensions split by a contracting one.
        (dot(&[1], &[0], &[], &[]), &[5, 3, 2], &[3, 4], (true, false)),
    ];
    for (i, (dims, ls, rs, packs)) in cases.iter().enumerate() {
        let plan = DotPlan::new(dims, &f(ls), &f(rs), false).unwrap();
        assert_eq!(plan.packs(), *packs, "case {i}: {dims:?} {ls:?} {rs:?}");
        assert_eq!(plan.scratch_len() > 0, packs.0 || packs.1);
        check_dot(dims, ls, rs, i as u64);
    }
    // Size-1 dimensions do not break adjacency: lhs dims 1 and 3 merge across dim 2 (the rhs's 0 and 2 do not).
    let plan = DotPlan::new(&dot(&[1, 3], &[0, 2], &[], &[]), &f(&[5, 2, 1, 3]), &f(&[2, 4, 3]), false).unwrap();
    assert_eq!(plan.packs(), (false, true));
    let plan = DotPlan::new(&dot(&[1, 3], &[0, 1], &[], &[]), &f(&[5, 2, 1, 3]), &f(&[2, 3, 1, 4]), false).unwrap();
    assert_eq!((plan.packs(), plan.gemm_dims()), ((false, false), (1, 5, 4, 6)));
}

#[test]
fn dot_general_edge_sizes() {
    for (dims, ls, rs) in [
        (DotDims::matmul(), vec![2, 0], vec![0, 3]),
        (DotDims::matmul(), vec![0, 3], vec![3]),
        (DotDims::default(), vec![], vec![3]),
        (DotDims::default(), vec![], vec![]),
        (dot(&[1], &[1], &[0], &[0]), vec![0, 3], vec![0, 3]),
        (dot(&[1], &[0], &[], &[]), vec![1, 1], vec![1, 1]),
        (dot(&[0, 1], &[1, 0], &[], &[]), vec![2, 3], vec![3, 2]),
    ] {
        check_dot(&dims, &ls, &rs, 1);
    }
}

#[test]
fn dot_general_symmetric_rank_k() {
    let mut rng = Lcg(9);
    let cases: [(DotDims, &[usize]); 4] = [
        (dot(&[0], &[0], &[], &[]), &[40, 7]),         // XᵀX
        (dot(&[1], &[1], &[], &[]), &[6, 30]),         // XXᵀ
        (dot(&[1], &[1], &[0], &[0]), &[3, 33, 5]),    // batched XᵀX
        (dot(&[0, 2], &[0, 2], &[], &[]), &[4, 3, 5]), // two contracting dims: Xᵀ packed
    ];
    for (dims, shape) in cases {
        let prim = Linalg::DotGeneral(dims.clone());
        for dtype in [DType::F32, DType::F64] {
            let x = array(dtype, shape, &rng.vec(shape.iter().product()));
            let aval = x.aval();
            let plan = DotPlan::new(&dims, &aval, &aval, true).unwrap();
            assert!(plan.is_symmetric(), "{dims:?}");
            let got = ours(&prim, &[&x, &x]);
            let want = interp(&prim, &[&x, &x]);
            let (_, m, n, k) = plan.gemm_dims();
            assert_eq!(m, n);
            let g = vals(&got[0]);
            let scale = vec![k as f64; g.len()];
            assert_close(&g, &vals(&want[0]), &scale, if dtype == DType::F32 { 1e-6 } else { 1e-15 }, "syrk");
            for (b, mat) in g.chunks(m * m).enumerate() {
                for i in 0..m {
                    for j in 0..m {
                        assert_eq!(mat[i * m + j].to_bits(), mat[j * m + i].to_bits(), "batch {b} ({i},{j})");
                    }
                }
            }
            // The same plan on two different (equal) buffers takes the general path: same values.
            let y = x.clone();
            assert_close(&vals(&ours(&prim, &[&x, &y])[0]), &vals(&want[0]), &scale, 1e-6, "general");
        }
    }
    // Not symmetric: equal operands but a different pairing, or no flag.
    let a = AVal::new(DType::F64, [3, 3]);
    assert!(!DotPlan::new(&dot(&[0], &[1], &[], &[]), &a, &a, true).unwrap().is_symmetric());
    assert!(!DotPlan::new(&dot(&[0], &[0], &[], &[]), &a, &a, false).unwrap().is_symmetric());
}

#[test]
fn dot_general_errors_name_the_op_and_shapes() {
    let (a, b) = (AVal::new(DType::F32, [2, 3]), AVal::new(DType::F32, [4, 5]));
    let e = DotPlan::new(&DotDims::matmul(), &a, &b, false).unwrap_err();
    assert!(e.to_string().starts_with("dot_general: cannot contract dimension 1 of f32[2,3]"), "{e}");
    let b = AVal::new(DType::F32, [3, 5]);
    let plan = DotPlan::new(&DotDims::matmul(), &a, &b, false).unwrap();
    let e = plan.run(&[0.0f32; 6], &[0.0; 14], &mut [0.0; 10], &mut []).unwrap_err();
    assert_eq!(
        e.to_string(),
        "dot_general: the rhs buffer holds 14 elements, but dot_general of f32[2,3] and f32[3,5] needs 15"
    );
}

/// A random symmetric positive-definite `n x n` matrix, `B Bᵀ + n I`, with
/// NaN above the diagonal (which must never be read).
fn spd(rng: &mut Lcg, n: usize) -> Vec<f64> {
    let b = rng.vec(n * n);
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = if j > i {
                f64::NAN
            } else {
                (0..n).map(|l| b[i * n + l] * b[j * n + l]).sum::<f64>() + if i == j { n as f64 } else { 0.0 }
            };
        }
    }
    a
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().filter(|x| x.is_finite()).fold(1.0f64, |m, x| m.max(x.abs()))
}

#[test]
fn cholesky_matches_interpreter() {
    init();
    init();
    let mut rng = Lcg(4);
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-13 };
        for (batch, n) in [(1, 1), (1, 5), (3, 8), (2, 70), (2, 0), (0, 3)] {
            let mut v: Vec<f64> = (0..batch).flat_map(|_| spd(&mut rng, n)).collect();
            if batch == 3 {
                // The middle matrix is not positive definite: NaN for it alone.
                v[n * n] = -1.0;
            }
            let a = array(dtype, &[batch, n, n], &v);
            let got = vals(&ours(&Linalg::Cholesky, &[&a])[0]);
            let want = vals(&interp(&Linalg::Cholesky, &[&a])[0]);
            let scale = vec![max_abs(&want); want.len()];
            assert_close(&got, &want, &scale, tol, &format!("cholesky {dtype} {batch}x{n}x{n}"));
            if batch == 3 {
                assert!(got[n * n..2 * n * n].iter().all(|x| x.is_nan()));
                assert!(got[..n * n].iter().all(|x| !x.is_nan()));
            }
        }
        // Semi-definite, or NaN in the lower triangle: NaN.
        for v in [[1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, f64::NAN], [4.0, 0.0, f64::NAN, 5.0], [0.0, 0.0, 0.0, 0.0]] {
            let got = vals(&ours(&Linalg::Cholesky, &[&array(dtype, &[2, 2], &v)])[0]);
            assert!(got.iter().all(|x| x.is_nan()), "{v:?}: {got:?}");
        }
    }
    let mut buf = MemBuffer::new(StackReq::empty());
    let dims = MatDims { batch: 1, rows: 40, cols: 40 };
    let e = cholesky(&[0.0f64; 1600], &mut [0.0; 1600], dims, MemStack::new(&mut buf)).unwrap_err();
    assert!(
        e.to_string().starts_with("cholesky: the scratch stack holds 0 bytes, but 1 matrices of 40x40 needs"),
        "{e}"
    );
}

/// A random lower factor with a strong diagonal and NaN above it (never read).
fn factor(rng: &mut Lcg, n: usize) -> Vec<f64> {
    let mut l = vec![f64::NAN; n * n];
    for i in 0..n {
        for j in 0..=i {
            l[i * n + j] = if i == j { 1.5 + rng.next() } else { rng.next() / (n as f64).sqrt() };
        }
    }
    l
}

/// `cholesky_inverse` of random factors against the interpreter, relative to
/// the largest element; `out` must be exactly symmetric.
fn check_inverse(batch: usize, n: usize, seed: u64) {
    let mut rng = Lcg(seed);
    let l: Vec<f64> = (0..batch).flat_map(|_| factor(&mut rng, n)).collect();
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-13 };
        let a = array(dtype, &[batch, n, n], &l);
        let got = vals(&ours(&Linalg::CholeskyInverse, &[&a])[0]);
        let want = vals(&interp(&Linalg::CholeskyInverse, &[&a])[0]);
        let scale = vec![max_abs(&want); want.len()];
        assert_close(&got, &want, &scale, tol, &format!("cholesky_inverse {dtype} {batch}x{n}x{n}"));
        for (k, m) in got.chunks((n * n).max(1)).enumerate() {
            for i in 0..n {
                for j in 0..i {
                    assert_eq!(m[i * n + j], m[j * n + i], "matrix {k} of {batch}x{n}x{n} {dtype}: ({i}, {j})");
                }
            }
        }
    }
}

#[test]
fn cholesky_inverse_matches_interpreter() {
    // Sizes around the blocks of 4 rows and of 8 (f64) or 16 (f32) columns,
    // and the PLN's 114.
    for (batch, n) in [(1, 1), (2, 2), (1, 3), (1, 4), (3, 5), (1, 8), (1, 15), (2, 16), (1, 17), (1, 33), (1, 114)] {
        check_inverse(batch, n, n as u64);
    }
    check_inverse(0, 3, 1);
    check_inverse(2, 0, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn cholesky_inverse_matches_interpreter_on_random_sizes(batch in 1usize..3, n in 0usize..40, seed in any::<u64>()) {
        check_inverse(batch, n, seed);
    }
}

/// The portable path (no FMA) computes the same inverse as the interpreter,
/// whichever path the machine takes.
#[test]
fn cholesky_inverse_without_fma() {
    for n in [1, 5, 16, 21, 37] {
        let l64 = factor(&mut Lcg(n as u64), n);
        let l32: Vec<f32> = l64.iter().map(|&x| x as f32).collect();
        let want = vals(&interp(&Linalg::CholeskyInverse, &[&array(DType::F64, &[n, n], &l64)])[0]);
        let scale = vec![max_abs(&want); n * n];
        let mut out = vec![0.0f32; n * n];
        super::inverse::invert_portable::<f32, 16>(&l32, &mut out, n);
        let got: Vec<f64> = out.iter().map(|&x| f64::from(x)).collect();
        assert_close(&got, &want, &scale, 1e-5, &format!("portable f32, order {n}"));
        let mut out = vec![0.0f64; n * n];
        super::inverse::invert_portable::<f64, 8>(&l64, &mut out, n);
        assert_close(&out, &want, &scale, 1e-13, &format!("portable f64, order {n}"));
    }
}

#[test]
fn cholesky_inverse_errors() {
    let dims = MatDims { batch: 1, rows: 40, cols: 40 };
    let mut buf = MemBuffer::new(StackReq::empty());
    let e = cholesky_inverse(&[0.0f64; 1600], &mut [0.0; 1600], dims, MemStack::new(&mut buf)).unwrap_err();
    assert!(e.to_string().starts_with("cholesky_inverse: the scratch stack holds 0 bytes"), "{e}");
    let mut buf = MemBuffer::new(cholesky_inverse_scratch::<f64>(40));
    let e = cholesky_inverse(&[0.0f64; 1599], &mut [0.0; 1600], dims, MemStack::new(&mut buf)).unwrap_err();
    assert!(e.to_string().contains("the factor buffer holds 1599 elements"), "{e}");
    // A zero pivot divides by zero.
    let mut out = [0.0f32; 4];
    let dims = MatDims { batch: 1, rows: 2, cols: 2 };
    let mut buf = MemBuffer::new(cholesky_inverse_scratch::<f32>(2));
    cholesky_inverse(&[1.0f32, 0.0, 1.0, 0.0], &mut out, dims, MemStack::new(&mut buf)).unwrap();
    assert!(out.iter().any(|x| !x.is_finite()), "{out:?}");
}

/// One random triangular solve with the flags of bits `flags` (left, lower,
/// transpose, unit), against the interpreter. `A` has a strong diagonal, and
/// NaN in the triangle that must not be read (and on the diagonal when unit).
fn check_solve(flags: u8, batch: usize, n: usize, k: usize, seed: u64) {
    let (left_side, lower, transpose_a, unit_diagonal) =
        (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0, flags & 8 != 0);
    let prim = Linalg::TriangularSolve { left_side, lower, transpose_a, unit_diagonal };
    let mut rng = Lcg(seed);
    let mut a = Vec::new();
    for _ in 0..batch {
        for i in 0..n {
            for j in 0..n {
                let read = if i == j { !unit_diagonal } else { lower == (i > j) };
                let v = if i == j { 3.0 + rng.next() } else { rng.next() / (n as f64).sqrt() };
                a.push(if read { v } else { f64::NAN });
            }
        }
    }
    let (rows, cols) = if left_side { (n, k) } else { (k, n) };
    let b = rng.vec(batch * rows * cols);
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-13 };
        let a = array(dtype, &[batch, n, n], &a);
        let b = array(dtype, &[batch, rows, cols], &b);
        let got = vals(&ours(&prim, &[&a, &b])[0]);
        let want = vals(&interp(&prim, &[&a, &b])[0]);
        assert!(got.iter().all(|x| x.is_finite()), "{prim:?}: {got:?}");
        let scale = vec![max_abs(&want); want.len()];
        assert_close(&got, &want, &scale, tol, &format!("{prim:?} {dtype} {batch}x{n} {rows}x{cols}"));
    }
}

#[test]
fn triangular_solve_every_flag_combination() {
    for flags in 0..16 {
        for (batch, n, k) in [(2, 4, 3), (1, 40, 9), (3, 1, 2), (1, 3, 0), (0, 2, 2)] {
            check_solve(flags, batch, n, k, u64::from(flags) * 31 + n as u64);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn triangular_solve_matches_interpreter_on_random_sizes(
        flags in 0u8..16, batch in 0usize..3, n in 0usize..12, k in 0usize..6, seed in any::<u64>()
    ) {
        check_solve(flags, batch, n, k, seed);
    }
}

/// Checks `P A = L U` for one matrix and that the pivots replay to the permutation.
fn check_plu(a: &[f64], lu: &[f64], pivots: &[i32], perm: &[i32], m: usize, n: usize, tol: f64) {
    let k = m.min(n);
    let mut replay: Vec<i32> = (0..m as i32).collect();
    for (j, &p) in pivots.iter().enumerate() {
        assert!(p as usize >= j && (p as usize) < m, "pivot {p} at {j}");
        replay.swap(j, p as usize);
    }
    assert_eq!(replay, perm);
    let scale = max_abs(a);
    for i in 0..m {
        for j in 0..n {
            // L is unit lower (m x k), U upper (k x n): (L U)[i][j] sums t ≤ min(i, j), t < k.
            let l = |t: usize| if t == i { 1.0 } else { lu[i * n + t] };
            let lu_ij: f64 = (0..k.min(i + 1).min(j + 1)).map(|t| l(t) * lu[t * n + j]).sum();
            let want = a[perm[i] as usize * n + j];
            assert!((lu_ij - want).abs() <= tol * scale, "({i},{j}): L U gives {lu_ij}, P A has {want}");
        }
        for t in 0..k.min(i) {
            assert!(lu[i * n + t].abs() <= 1.0 + tol, "multiplier ({i},{t}) = {}", lu[i * n + t]);
        }
    }
}

/// LU of random `batch x m x n` operands: `P A = L U` in both float types, and
/// in f64 (continuous values, so no ties) the interpreter's exact pivots.
fn check_lu(batch: usize, m: usize, n: usize, seed: u64) {
    let v = Lcg(seed).vec(batch * m * n);
    let k = m.min(n);
    let ints = |v: &[f64]| v.iter().map(|&x| x as i32).collect::<Vec<i32>>();
    for dtype in [DType::F32, DType::F64] {
        let a = array(dtype, &[batch, m, n], &v);
        let got = ours(&Linalg::Lu, &[&a]);
        let want = interp(&Linalg::Lu, &[&a]);
        assert_eq!(got.iter().map(|g| g.aval()).collect::<Vec<_>>(), want.iter().map(|w| w.aval()).collect::<Vec<_>>());
        let held = vals(&a);
        let (lu, piv, perm) = (vals(&got[0]), ints(&vals(&got[1])), ints(&vals(&got[2])));
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-13 } * (m.max(n) as f64);
        for s in 0..batch {
            let mat = |v: &[f64]| v[s * m * n..(s + 1) * m * n].to_vec();
            check_plu(&mat(&held), &mat(&lu), &piv[s * k..(s + 1) * k], &perm[s * m..(s + 1) * m], m, n, tol);
        }
        if dtype == DType::F64 {
            assert_eq!((&got[1], &got[2]), (&want[1], &want[2]), "{batch}x{m}x{n}");
            let w = vals(&want[0]);
            assert_close(&lu, &w, &vec![max_abs(&w); w.len()], 1e-12, "lu f64");
        }
    }
}

#[test]
fn lu_matches_interpreter() {
    // Past 16 columns faer's LU recurses into blocks.
    for (seed, (batch, m, n)) in
        [(1, 4, 4), (1, 5, 3), (1, 3, 5), (3, 6, 6), (2, 40, 40), (1, 70, 33), (1, 20, 50), (2, 0, 3), (1, 3, 0)]
            .into_iter()
            .enumerate()
    {
        check_lu(batch, m, n, seed as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn lu_matches_interpreter_on_random_shapes(batch in 0usize..3, m in 0usize..9, n in 0usize..9, seed in any::<u64>()) {
        check_lu(batch, m, n, seed);
    }
}

#[test]
fn lu_singular_and_non_finite_follow_the_ir() {
    let cases: [(&[usize], &[f64]); 5] = [
        // A zero pivot column with rows below it: no division, exact as the interpreter.
        // (Exactly representable steps only: faer multiplies by the pivot's reciprocal,
        // so a rounded 1/3 leaves a tiny pivot instead of an exact zero.)
        (&[3, 2], &[1.0, 2.0, 2.0, 4.0, 4.0, 8.0]),
        (&[2, 2], &[0.0, 1.0, 0.0, 2.0]),
        (&[3, 3], &[0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 3.0]),
        // Ties keep the first row.
        (&[2, 2], &[1.0, 0.0, -1.0, 1.0]),
        (&[3, 3], &[1.0, f64::NAN, 2.0, 4.0, 1.0, 0.0, f64::INFINITY, 2.0, 1.0]),
    ];
    for (shape, v) in cases {
        for dtype in [DType::F32, DType::F64] {
            let a = array(dtype, shape, v);
            assert_eq!(ours(&Linalg::Lu, &[&a]), interp(&Linalg::Lu, &[&a]), "{dtype} {shape:?} {v:?}");
        }
    }
}
