//! A quick comparison run by hand, not part of the suite: `DotPlan` against
//! direct faer calls on `M` (11600x114, f32) · `Ω` (114x114) and on `MᵀM`,
//! median of 40 runs, and on the first 116 rows of `M`; the factorizations at
//! 114x114; `cholesky_inverse` against two triangular solves at orders 114
//! to 1024. `DotPlan` splits large products over the worker threads
//! (`ARRAYJIT_THREADS`, all cores by default); the direct calls run on one.
//! Run it with
//! `cargo test -p arrayjit-cpu --release --test linalg_bench -- --ignored --nocapture`.

use arrayjit_cpu::linalg::{
    cholesky, cholesky_inverse, cholesky_inverse_scratch, cholesky_scratch, init, lu, lu_scratch, triangular_solve,
    DotPlan, LuOut, MatDims, MemBuffer, MemStack, TriangularSolve,
};
use arrayjit_ir::prim::DotDims;
use arrayjit_ir::{AVal, DType};
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};
use std::time::Instant;

/// The median wall time of `f` in milliseconds, after warming up.
fn median_ms(mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut t: Vec<f64> = (0..40)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// `out` against faer's `direct`, both `l · r` for `r` of `p × p`: the last
/// columns may be dot products of their own (see `linalg::columns`), the same
/// sums in another order.
fn close_products(out: &[f32], direct: &[f32], l: &[f32], r: &[f32], p: usize) {
    for (i, (a, b)) in out.iter().zip(direct).enumerate() {
        let (row, col) = (i / p, i % p);
        let scale: f32 = (0..p).map(|q| (l[row * p + q] * r[q * p + col]).abs()).sum();
        assert!((a - b).abs() <= 1e-5 * scale.max(1.0), "({row}, {col}): {a} vs {b}");
    }
}

#[test]
#[ignore = "a benchmark: run by hand with --ignored --nocapture, in release"]
fn linalg_bench_dot_plan_against_faer() {
    init();
    println!("DotPlan on {} thread(s)", arrayjit_cpu::parallel::threads());
    let (n, p) = (11600, 114);
    let mut state = 1u64;
    let mut rand = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    };
    let (m, omega) = (rand(n * p), rand(p * p));
    let (am, ao) = (AVal::new(DType::F32, [n, p]), AVal::new(DType::F32, [p, p]));
    let gflops = |ms: f64| 2.0 * (n * p * p) as f64 / (ms * 1e6);

    // M · Ω.
    let mut out = vec![0.0f32; n * p];
    let plan = DotPlan::new(&DotDims::matmul(), &am, &ao, false).unwrap();
    assert_eq!(plan.packs(), (false, false));
    let t_plan = median_ms(|| plan.run(&m, &omega, &mut out, &mut []).unwrap());
    let mut direct = vec![0.0f32; n * p];
    let t_faer = median_ms(|| {
        let dst = MatMut::from_row_major_slice_mut(&mut direct, n, p);
        let (l, r) = (MatRef::from_row_major_slice(&m, n, p), MatRef::from_row_major_slice(&omega, p, p));
        faer::linalg::matmul::matmul(dst, Accum::Replace, l, r, 1.0f32, Par::Seq);
    });
    close_products(&out, &direct, &m, &omega, p);
    println!("M·Ω   DotPlan {t_plan:.2} ms ({:.0} GFLOP/s), faer direct {t_faer:.2} ms", gflops(t_plan));

    // MᵀM: the symmetric plan (same buffer twice), the general plan, and faer's triangular matmul.
    let xtx = DotDims { lhs_contract: vec![0], rhs_contract: vec![0], ..DotDims::default() };
    let mut out = vec![0.0f32; p * p];
    let sym = DotPlan::new(&xtx, &am, &am, true).unwrap();
    assert!(sym.is_symmetric());
    let t_sym = median_ms(|| sym.run(&m, &m, &mut out, &mut []).unwrap());
    let general = DotPlan::new(&xtx, &am, &am, false).unwrap();
    let mut full = vec![0.0f32; p * p];
    let t_general = median_ms(|| general.run(&m, &m, &mut full, &mut []).unwrap());
    let mut direct = vec![0.0f32; p * p];
    let t_tri = median_ms(|| {
        let dst = MatMut::from_row_major_slice_mut(&mut direct, p, p);
        let x = MatRef::from_row_major_slice(&m, n, p);
        triangular::matmul(
            dst,
            BlockStructure::TriangularLower,
            Accum::Replace,
            x.transpose(),
            BlockStructure::Rectangular,
            x,
            BlockStructure::Rectangular,
            1.0f32,
            Par::Seq,
        );
    });
    // The symmetric plan runs its own kernel: the same sums, in another
    // order, so they agree to rounding relative to the sums of magnitudes.
    for i in 0..p {
        for j in 0..=i {
            let (a, b) = (out[i * p + j], direct[i * p + j]);
            let scale: f32 = (0..n).map(|k| (m[k * p + i] * m[k * p + j]).abs()).sum();
            assert!((a - b).abs() <= 1e-5 * scale.max(1.0), "({i}, {j}): {a} vs {b}");
        }
    }
    println!(
        "MᵀM   DotPlan symmetric {t_sym:.2} ms ({:.0} GFLOP/s equiv), general {t_general:.2} ms, \
         faer triangular direct {t_tri:.2} ms",
        gflops(t_sym)
    );

    // The factorizations on the 114x114 SPD matrix MᵀM/n + I (f32).
    let spd: Vec<f32> =
        out.iter().enumerate().map(|(i, v)| v / n as f32 + if i % (p + 1) == 0 { 1.0 } else { 0.0 }).collect();
    let dims = MatDims { batch: 1, rows: p, cols: p };
    let mut l = vec![0.0f32; p * p];
    let mut buf = MemBuffer::new(cholesky_scratch::<f32>(p).or(lu_scratch::<f32>(dims)));
    let t_chol = median_ms(|| cholesky(&spd, &mut l, dims, MemStack::new(&mut buf)).unwrap());
    let flags = TriangularSolve { left_side: true, lower: true, ..TriangularSolve::default() };
    let mut x = vec![0.0f32; p * p];
    let t_solve = median_ms(|| triangular_solve(&l, &omega, &mut x, dims, flags).unwrap());
    let (mut f, mut piv, mut perm) = (vec![0.0f32; p * p], vec![0; p], vec![0; p]);
    let t_lu = median_ms(|| {
        let out = LuOut { lu: &mut f, pivots: &mut piv, perm: &mut perm };
        lu(&spd, dims, out, MemStack::new(&mut buf)).unwrap()
    });
    println!(
        "114x114 cholesky {:.1} µs, triangular_solve (114 right-hand sides) {:.1} µs, lu {:.1} µs",
        t_chol * 1e3,
        t_solve * 1e3,
        t_lu * 1e3
    );

    // The inverse from the factor: two triangular solves against the
    // identity, as `inv_spd` did, against `cholesky_inverse`; alternating,
    // medians, at several orders.
    for q in [114usize, 256, 512, 1024] {
        let b = rand(q * q);
        let mut a = vec![0.0f32; q * q];
        for i in 0..q {
            for j in 0..=i {
                let dot: f32 = (0..q).map(|k| b[i * q + k] * b[j * q + k]).sum();
                a[i * q + j] = dot / q as f32 + if i == j { 1.0 } else { 0.0 };
            }
        }
        let dims = MatDims { batch: 1, rows: q, cols: q };
        let mut l = vec![0.0f32; q * q];
        let mut buf = MemBuffer::new(cholesky_scratch::<f32>(q));
        cholesky(&a, &mut l, dims, MemStack::new(&mut buf)).unwrap();
        let eye: Vec<f32> = (0..q * q).map(|i| if i % (q + 1) == 0 { 1.0 } else { 0.0 }).collect();
        let back = TriangularSolve { transpose_a: true, ..flags };
        let (mut x, mut two, mut inv) = (vec![0.0f32; q * q], vec![0.0f32; q * q], vec![0.0f32; q * q]);
        let (mut t_two, mut t_inv) = (Vec::new(), Vec::new());
        let mut inv_buf = MemBuffer::new(cholesky_inverse_scratch::<f32>(q));
        let rounds = (2000 * 114usize.pow(3) / q.pow(3)).max(11);
        for _ in 0..rounds {
            let start = Instant::now();
            triangular_solve(&l, &eye, &mut x, dims, flags).unwrap();
            triangular_solve(&l, &x, &mut two, dims, back).unwrap();
            t_two.push(start.elapsed().as_secs_f64() * 1e6);
            let start = Instant::now();
            cholesky_inverse(&l, &mut inv, dims, MemStack::new(&mut inv_buf)).unwrap();
            t_inv.push(start.elapsed().as_secs_f64() * 1e6);
        }
        let scale = two.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let worst = two.iter().zip(&inv).map(|(a, b)| (a - b).abs() / scale).fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "cholesky_inverse differs from the solves by {worst}");
        t_two.sort_by(f64::total_cmp);
        t_inv.sort_by(f64::total_cmp);
        println!(
            "{q}x{q} inverse from the factor: two triangular solves {:.1} µs, cholesky_inverse {:.1} µs \
             (largest difference {worst:.1e} of the largest element)",
            t_two[rounds / 2],
            t_inv[rounds / 2]
        );
    }

    // M·Ω at n = 116, where DotPlan splits the rows in two blocks (one per
    // thread), against one faer call; alternating in one loop, medians.
    let small = 116;
    let (ms, am_small) = (&m[..small * p], AVal::new(DType::F32, [small, p]));
    let plan = DotPlan::new(&DotDims::matmul(), &am_small, &ao, false).unwrap();
    let (mut out, mut direct) = (vec![0.0f32; small * p], vec![0.0f32; small * p]);
    let (mut t_plan, mut t_one) = (Vec::new(), Vec::new());
    for _ in 0..3000 {
        let start = Instant::now();
        plan.run(ms, &omega, &mut out, &mut []).unwrap();
        t_plan.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        let dst = MatMut::from_row_major_slice_mut(&mut direct, small, p);
        let (l, r) = (MatRef::from_row_major_slice(ms, small, p), MatRef::from_row_major_slice(&omega, p, p));
        faer::linalg::matmul::matmul(dst, Accum::Replace, l, r, 1.0f32, Par::Seq);
        t_one.push(start.elapsed().as_secs_f64() * 1e6);
    }
    close_products(&out, &direct, ms, &omega, p);
    t_plan.sort_by(f64::total_cmp);
    t_one.sort_by(f64::total_cmp);
    println!("M·Ω at n = {small}: DotPlan {:.1} µs, one faer call {:.1} µs", t_plan[1500], t_one[1500]);

    // Many tiny products: a batch of 10000 (4x4 · 4x4) and of (8x8 · 8x8) in f32.
    for s in [2usize, 4, 8, 16] {
        let batch = 10000;
        let bmm = DotDims { lhs_contract: vec![2], rhs_contract: vec![1], lhs_batch: vec![0], rhs_batch: vec![0] };
        let a = AVal::new(DType::F32, [batch, s, s]);
        let plan = DotPlan::new(&bmm, &a, &a, false).unwrap();
        let (x, y) = (rand(batch * s * s), rand(batch * s * s));
        let mut out = vec![0.0f32; batch * s * s];
        let t = median_ms(|| plan.run(&x, &y, &mut out, &mut []).unwrap());
        println!("batched {batch} x ({s}x{s} · {s}x{s}): {:.3} ms ({:.0} ns per product)", t, t * 1e6 / batch as f64);
    }
}
