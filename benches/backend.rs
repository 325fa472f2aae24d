//! The CPU backend's figures: fused elementwise throughput against a
//! hand-written Rust loop of the same math, `dot_general` against calling faer
//! directly, the inverse of a symmetric positive-definite matrix from its
//! factor against two solves, a product fused with its consumer by row blocks, softmax over
//! short rows, compile time per kernel and per 100-equation program, the
//! eager per-operation dispatch overhead, and what single operations cost per
//! element in a kernel.
//!
//! `cargo bench --bench backend` (BENCHMARKS.md records the figures).

use arrayjit::{jit, Array, DType};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|i| ((i % 1000) as f32 / 1000.0 - 0.5) * scale).collect()
}

/// out = x·y + exp(x): the kernel measured in the project's notes.
fn fused_elementwise(c: &mut Criterion) {
    let n = 1 << 20;
    let (xv, yv) = (ramp(n, 8.0), ramp(n, 3.0));
    let (x, y) = (Array::from_vec(xv.clone(), [n]), Array::from_vec(yv.clone(), [n]));
    let f = jit(|(x, y): (Array, Array)| &x * &y + x.exp());
    let compiled = f.lower(&(x.clone(), y.clone())).unwrap().compile().unwrap();
    let mut g = c.benchmark_group("fused_elementwise");
    // 12 bytes per element: two f32 reads, one write.
    g.throughput(Throughput::Bytes(12 * n as u64));
    g.bench_function("arrayjit", |b| b.iter(|| compiled.call((x.clone(), y.clone())).unwrap()));
    g.bench_function("rust_loop", |b| {
        b.iter(|| {
            let out: Vec<f32> = xv.iter().zip(&yv).map(|(a, b)| a * b + a.exp()).collect();
            black_box(out)
        })
    });
    g.finish();
}

/// One Adam step over 2²⁰ f32 parameters, fused into one kernel (four
/// arrays read, three written, a division and a square root per element,
/// bias corrections as runtime scalars), against the same arithmetic as a
/// hand-written Rust loop: compiled for the default target (SSE2, the
/// 128-bit vectors Cranelift emits too) and for AVX2.
fn fused_adam(c: &mut Criterion) {
    let mut g = c.benchmark_group("fused_adam");
    for n in [1 << 14, 1 << 20] {
        adam_sizes(&mut g, n);
    }
    g.finish();
}

fn adam_sizes(g: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>, n: usize) {
    let (pv, gv, mv) = (ramp(n, 2.0), ramp(n, 0.5), ramp(n, 0.1));
    let vv: Vec<f32> = ramp(n, 0.01).iter().map(|x| x * x).collect();
    let (c1, c2) = (0.271f32, 0.0199f32);
    let arr = |v: &Vec<f32>| Array::from_vec(v.clone(), [n]);
    let args = (arr(&pv), arr(&gv), arr(&mv), arr(&vv), Array::scalar(c1), Array::scalar(c2));
    let f = jit(|(p, g, m, v, c1, c2): (Array, Array, Array, Array, Array, Array)| {
        let m = &m * 0.9 + &g * 0.1;
        let v = &v * 0.999 + &(&g * &g) * 0.001;
        let step = (&m / &c1) / ((&v / &c2).sqrt() + 1e-8);
        (&p - &(step * 1e-3), m, v)
    });
    let compiled = f.lower(&args).unwrap().compile().unwrap();
    // 28 bytes per element: four f32 reads, three writes.
    g.throughput(Throughput::Bytes(28 * n as u64));
    g.bench_with_input(BenchmarkId::new("arrayjit", n), &args, |b, a| b.iter(|| compiled.call(a.clone()).unwrap()));
    let mut out = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    g.bench_function(BenchmarkId::new("rust_loop", n), |b| {
        b.iter(|| {
            adam_loop(&pv, &gv, &mv, &vv, black_box(c1), black_box(c2), &mut out);
            black_box(&out);
        })
    });
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        g.bench_function(BenchmarkId::new("rust_loop_avx2", n), |b| {
            b.iter(|| {
                // SAFETY: the CPU supports AVX2 (checked above).
                unsafe { adam_loop_avx2(&pv, &gv, &mv, &vv, black_box(c1), black_box(c2), &mut out) };
                black_box(&out);
            })
        });
    }
}

type AdamOut = (Vec<f32>, Vec<f32>, Vec<f32>);

#[inline(always)]
fn adam_body(p: &[f32], g: &[f32], m: &[f32], v: &[f32], c1: f32, c2: f32, out: &mut AdamOut) {
    let (po, mo, vo) = (&mut out.0[..p.len()], &mut out.1[..p.len()], &mut out.2[..p.len()]);
    let (g, m, v) = (&g[..p.len()], &m[..p.len()], &v[..p.len()]);
    for i in 0..p.len() {
        let mi = m[i] * 0.9 + g[i] * 0.1;
        let vi = v[i] * 0.999 + g[i] * g[i] * 0.001;
        po[i] = p[i] - (mi / c1) / ((vi / c2).sqrt() + 1e-8) * 1e-3;
        mo[i] = mi;
        vo[i] = vi;
    }
}

fn adam_loop(p: &[f32], g: &[f32], m: &[f32], v: &[f32], c1: f32, c2: f32, out: &mut AdamOut) {
    adam_body(p, g, m, v, c1, c2, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn adam_loop_avx2(p: &[f32], g: &[f32], m: &[f32], v: &[f32], c1: f32, c2: f32, out: &mut AdamOut) {
    adam_body(p, g, m, v, c1, c2, out)
}

/// M·Ω (11600×114 by 114×114, f32) and MᵀM, the PLN's products.
fn dot_general(c: &mut Criterion) {
    use faer::{Accum, MatMut, MatRef, Par};
    let (n, p) = (11600, 114);
    let mv = ramp(n * p, 1.0);
    let ov = ramp(p * p, 0.1);
    let m = Array::from_vec(mv.clone(), [n, p]);
    let o = Array::from_vec(ov.clone(), [p, p]);
    let mo = jit(|(m, o): (Array, Array)| m.matmul(&o)).lower(&(m.clone(), o.clone())).unwrap().compile().unwrap();
    let mtm = jit(|m: Array| m.t().matmul(&m)).lower(&m).unwrap().compile().unwrap();
    let mut g = c.benchmark_group("dot_general");
    g.throughput(Throughput::Elements((2 * n * p * p) as u64));
    g.sample_size(30);
    g.bench_function("arrayjit_m_omega", |b| b.iter(|| mo.call((m.clone(), o.clone())).unwrap()));
    g.bench_function("faer_m_omega", |b| {
        b.iter(|| {
            let mut out = vec![0f32; n * p];
            let dst = MatMut::from_row_major_slice_mut(&mut out, n, p);
            faer::linalg::matmul::matmul(
                dst,
                Accum::Replace,
                MatRef::from_row_major_slice(&mv, n, p),
                MatRef::from_row_major_slice(&ov, p, p),
                1.0f32,
                Par::Seq,
            );
            black_box(out)
        })
    });
    g.bench_function("arrayjit_mtm", |b| b.iter(|| mtm.call(m.clone()).unwrap()));
    g.bench_function("faer_mtm", |b| {
        b.iter(|| {
            let mut out = vec![0f32; p * p];
            let dst = MatMut::from_row_major_slice_mut(&mut out, p, p);
            let mr = MatRef::from_row_major_slice(&mv, n, p);
            faer::linalg::matmul::matmul(dst, Accum::Replace, mr.transpose(), mr, 1.0f32, Par::Seq);
            black_box(out)
        })
    });
    g.finish();
}

/// The inverse of the PLN's 114×114 Σ-shaped matrix: `inv_spd` (Cholesky,
/// then `cholesky_inverse`) against solving with the identity (Cholesky,
/// then two triangular solves), both compiled.
fn spd_inverse(c: &mut Criterion) {
    let p = 114;
    let b = Array::from_vec(ramp(p * p, 1.0), [p, p]);
    let sigma = (b.matmul(&b.t()) / p as f32 + Array::eye(p, DType::F32)).to_host();
    let sigma = Array::from_host(sigma);
    let inv = jit(|s: Array| s.inv_spd()).lower(&sigma).unwrap().compile().unwrap();
    let solve =
        jit(|s: Array| s.solve_spd(&Array::eye(s.shape()[0], DType::F32))).lower(&sigma).unwrap().compile().unwrap();
    let mut g = c.benchmark_group("spd_inverse");
    g.sample_size(50);
    g.bench_function("inv_spd", |b| b.iter(|| inv.call(sigma.clone()).unwrap()));
    g.bench_function("solve_spd_identity", |b| b.iter(|| solve.call(sigma.clone()).unwrap()));
    g.finish();
}

/// `M·Ω` feeding an elementwise kernel with reductions (the shape of the PLN
/// gradient's largest pass), with the product fused into the kernel by row
/// blocks and without.
fn row_fusion(c: &mut Criterion) {
    use arrayjit::cpu::{CompileOptions, Executable};
    let (n, p) = (11600, 114);
    let m = Array::from_vec(ramp(n * p, 1.0), [n, p]);
    let o = Array::from_vec(ramp(p * p, 0.05), [p, p]);
    let y = Array::from_vec(ramp(n * p, 2.0), [n, p]);
    let step = |(m, o, y): (Array, Array, Array)| {
        let mo = m.matmul(&o);
        let a = (&m * 0.5 + &mo).exp();
        let d = &a - &y + &mo;
        (d.sum(0), (&a * &m).sum(..))
    };
    let lowered = jit(step).lower(&(m.clone(), o.clone(), y.clone())).unwrap();
    let hosts = [m.to_host(), o.to_host(), y.to_host()];
    let refs: Vec<&arrayjit::HostArray> = hosts.iter().collect();
    let mut g = c.benchmark_group("row_fusion");
    g.sample_size(30);
    for (name, fused) in [("fused", true), ("unfused", false)] {
        let opts = CompileOptions { row_fusion: fused, ..CompileOptions::default() };
        let exe = Executable::compile(lowered.schedule(), &opts).unwrap();
        assert_eq!(exe.fused_products(), fused as usize);
        g.bench_function(name, |b| b.iter(|| exe.run(&refs).unwrap()));
    }
    g.finish();
}

/// A softmax over rows of 5, 7, 10 and 114 (2M elements in all): the inner
/// axis stays a loop of its own (reductions keep the rows), so each row ends
/// in a tail of `width % 4` points.
fn softmax_rows(c: &mut Criterion) {
    let mut g = c.benchmark_group("softmax_rows");
    g.sample_size(30);
    for w in [5usize, 7, 10, 114] {
        let n = 2_000_000 / w;
        let x = Array::from_vec(ramp(n * w, 4.0), [n, w]);
        let f = jit(|x: Array| {
            let e = (&x - &x.max_keepdims(1)).exp();
            &e / &e.sum_keepdims(1)
        });
        let compiled = f.lower(&x).unwrap().compile().unwrap();
        g.bench_with_input(BenchmarkId::from_parameter(w), &x, |b, x| b.iter(|| compiled.call(x.clone()).unwrap()));
    }
    g.finish();
}

/// A program of about 100 equations: a chain of elementwise steps with
/// broadcasts and reductions, as a model's loss produces.
fn hundred_equations((x, w): (Array, Array)) -> Array {
    let mut h = x.clone();
    for i in 0..12 {
        let s = h.sum_keepdims(1) * 0.01;
        h = ((&h * &w + &s).tanh() * (1.0 + i as f64 * 0.1) - h.exp() * 0.01).maximum(-3.0);
    }
    h.mean(..)
}

fn compile_time(c: &mut Criterion) {
    let x = Array::from_vec(ramp(64 * 32, 1.0), [64, 32]);
    let w = Array::from_vec(ramp(32, 1.0), [32]);
    let f = jit(hundred_equations);
    let eqns = f.lower(&(x.clone(), w.clone())).unwrap().program().eqns.len();
    let mut g = c.benchmark_group("compile");
    g.measurement_time(Duration::from_secs(4));
    g.bench_with_input(BenchmarkId::new("program", format!("{eqns}_eqns")), &(x, w), |b, args| {
        b.iter(|| jit(hundred_equations).lower(args).unwrap().compile().unwrap())
    });
    let v = Array::from_vec(ramp(1000, 1.0), [1000]);
    g.bench_function("one_kernel", |b| {
        b.iter(|| jit(|x: Array| (x.exp() * 2.0).sum(..)).lower(&v).unwrap().compile().unwrap())
    });
    g.finish();
}

/// A cached single operation on tiny arrays: the dispatch overhead itself.
fn eager_dispatch(c: &mut Criterion) {
    let a = Array::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [4]);
    let b = Array::from_vec(vec![0.5f32; 4], [4]);
    let _ = &a + &b;
    let mut g = c.benchmark_group("eager_dispatch");
    g.bench_function("add_f32x4", |bch| bch.iter(|| black_box(&a + &b)));
    let big = Array::from_vec(ramp(1 << 16, 1.0), [1 << 16]).astype(DType::F32);
    let _ = big.exp();
    g.bench_function("exp_f32_65536", |bch| bch.iter(|| black_box(big.exp())));
    g.finish();
}

/// What one operation adds to a kernel, per element: `x + y`, then the same
/// with the operation applied to `x`, over 1160 × 114 f32 (the PLN arrays at
/// ten repeats, in cache), so the time per element less `x + y`'s is the
/// operation's.
fn op_costs(c: &mut Criterion) {
    let (n, p) = (1160, 114);
    let x = Array::from_vec(ramp(n * p, 1.0).iter().map(|v| v + 1.0).collect(), [n, p]);
    let y = Array::from_vec(ramp(n * p, 3.0), [n, p]);
    let mut g = c.benchmark_group("op_costs");
    g.throughput(Throughput::Elements((n * p) as u64));
    type Op = fn(&Array) -> Array;
    let ops: [(&str, Op); 8] = [
        ("add", |x| x.clone()),
        ("exp", |x| x.exp()),
        ("log", |x| x.log()),
        ("sqrt", |x| x.sqrt()),
        ("reciprocal", |x| 1.0 / x),
        ("tanh", |x| x.tanh()),
        ("radam_ratio", |x| 1.0 / (x.sqrt() + 1e-8)),
        ("sin", |x| x.sin()),
    ];
    for (name, op) in ops.iter().copied() {
        let f = jit(move |(x, y): (Array, Array)| op(&x) + y);
        let compiled = f.lower(&(x.clone(), y.clone())).unwrap().compile().unwrap();
        g.bench_function(name, |b| b.iter(|| compiled.call((x.clone(), y.clone())).unwrap()));
    }
    // `exp`, `log`, `tanh` and `sin` in the native row functions and inline on
    // 128-bit vectors (without the row functions, which a CPU without AVX2
    // lacks, both run inline); arithmetic in the AVX-512 kernels of our own and
    // in Cranelift's 128-bit code (on a CPU without AVX-512 both are
    // Cranelift's). Each compiled and run the same way.
    let hosts = [x.to_host(), y.to_host()];
    let refs: Vec<&arrayjit::HostArray> = hosts.iter().collect();
    let rows = |row_functions| arrayjit::cpu::CompileOptions { row_functions, ..Default::default() };
    let wide = |wide_vectors| arrayjit::cpu::CompileOptions { wide_vectors, ..Default::default() };
    let compared = [
        ([ops[1], ops[2], ops[5], ops[7]], [("rows", rows(true)), ("inline", rows(false))]),
        ([ops[0], ops[3], ops[4], ops[6]], [("wide", wide(true)), ("narrow", wide(false))]),
    ];
    for (chosen, hows) in compared {
        for (name, op) in chosen {
            let lowered = jit(move |(x, y): (Array, Array)| op(&x) + y).lower(&(x.clone(), y.clone())).unwrap();
            for (how, opts) in &hows {
                let exe = arrayjit::cpu::Executable::compile(lowered.schedule(), opts).unwrap();
                g.bench_function(format!("{name}_{how}"), |b| b.iter(|| exe.run(&refs).unwrap()));
            }
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    fused_elementwise,
    fused_adam,
    dot_general,
    spd_inverse,
    row_fusion,
    softmax_rows,
    compile_time,
    eager_dispatch,
    op_costs
);
criterion_main!(benches);
