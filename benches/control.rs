//! Loops: the per-iteration overhead of a compiled `scan` (against a Rust
//! loop calling a compiled step), and the whole-program compile time of a
//! scan whose body is a PLN gradient step.
//!
//! `cargo bench --bench control` (BENCHMARKS.md records the figures).

use arrayjit::{jit, scan_with, value_and_grad, Array, DType, ScanOptions};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::time::Duration;

const LEN: usize = 10_000;

/// A body of one tiny kernel: what remains per iteration is the loop's own cost.
fn per_iteration(c: &mut Criterion) {
    let xs = Array::from_vec((0..LEN).map(|i| (i % 7) as f32).collect(), [LEN]);
    let step = |c: Array, x: Array| (&c * 0.999f32 + &x, ());
    let mut g = c.benchmark_group("scan_per_iteration");
    g.measurement_time(Duration::from_secs(4));
    for unroll in [1usize, 4] {
        let f = jit(move |xs: Array| scan_with(step, Array::scalar(0.0f32), xs, ScanOptions::default().unroll(unroll)));
        f.call(xs.clone()).unwrap();
        g.bench_with_input(BenchmarkId::new("scan_10000_iterations_unroll", unroll), &xs, |b, xs| {
            b.iter(|| black_box(f.call(xs.clone()).unwrap()))
        });
    }
    // The same loop in Rust, one compiled call per iteration.
    let one = jit(move |(c, x): (Array, Array)| step(c, x).0);
    let scalars: Vec<Array> = (0..LEN).map(|i| Array::scalar((i % 7) as f32)).collect();
    one.call((Array::scalar(0.0f32), scalars[0].clone())).unwrap();
    g.bench_function("rust_loop_of_jit_calls_10000", |b| {
        b.iter(|| {
            let mut c = Array::scalar(0.0f32);
            for x in &scalars {
                c = one.call((c, x.clone())).unwrap();
            }
            black_box(c)
        })
    });
    g.finish();
}

/// The PLN variational state and data.
#[derive(Clone)]
struct Data {
    y: Array,
    o: Array,
    x: Array,
}

/// One PLN step: the ELBO's gradient in (B, M, S), an Adam update, then
/// Σ = (MᵀM + diag(Σᵢ S²))/n and Ω = Σ⁻¹.
type State = ((Array, Array, Array), (Array, Array, Array), (Array, Array, Array), Array, Array);

fn pln_step(d: &Data, (params, m1, m2, omega, t): State) -> (State, Array) {
    let n = d.y.shape()[0] as f64;
    let neg_elbo = |(b, m, s): (Array, Array, Array)| {
        let s2 = &s * &s;
        let z = &d.o + &m + d.x.matmul(&b);
        let a = (&z + &s2 * 0.5f32).exp();
        let tr = ((m.t().matmul(&m) + s2.sum(0).diag()).matmul(&omega)).diag_part().sum(..);
        let elbo = omega.logdet() * (n / 2.0) + (-&a + &d.y * &z + s2.log() * 0.5f32).sum(..) - tr * 0.5f32;
        -elbo
    };
    let (loss, g) = value_and_grad(neg_elbo)(params.clone()).unwrap();
    let t = &t + 1.0f32;
    let (b1, b2, lr) = (0.9f32, 0.999f32, 0.01f32);
    let c1 = -(Array::scalar(b1).pow(&t)) + 1.0f32;
    let c2 = -(Array::scalar(b2).pow(&t)) + 1.0f32;
    let adam = |p: &Array, g: &Array, m: &Array, v: &Array| {
        let m = m * b1 + g * (1.0 - b1);
        let v = v * b2 + &(g * g) * (1.0 - b2);
        let p = p - &((&m / &c1) * lr / ((&v / &c2).sqrt() + 1e-8f32));
        (p, m, v)
    };
    let (b, mb, vb) = adam(&params.0, &g.0, &m1.0, &m2.0);
    let (m, mm, vm) = adam(&params.1, &g.1, &m1.1, &m2.1);
    let (s, ms, vs) = adam(&params.2, &g.2, &m1.2, &m2.2);
    let sigma = (m.t().matmul(&m) + (&s * &s).sum(0).diag()) / n as f32;
    let omega = sigma.inv_spd();
    (((b, m, s), (mb, mm, ms), (vb, vm, vs), omega, t), loss)
}

fn pln_inputs(n: usize, p: usize) -> (Data, State) {
    let f = |k: usize| Array::from_vec((0..n * p).map(|i| ((i * k) % 17) as f32).collect(), [n, p]);
    let d = Data { y: f(7), o: f(3) * 0.1f32, x: Array::ones([n, 1], DType::F32) };
    let z = |r, c| Array::zeros([r, c], DType::F32);
    let params = (z(1, p), z(n, p), Array::ones([n, p], DType::F32));
    let zeros = (z(1, p), z(n, p), z(n, p));
    (d, (params, zeros.clone(), zeros, Array::eye(p, DType::F32), Array::scalar(0.0f32)))
}

/// Trace, optimise, fuse and generate code for a 100-step scan of the PLN
/// step (n = 116, p = 114, f32), and run it once to check it works.
fn pln_scan_compile(c: &mut Criterion) {
    let (d, state) = pln_inputs(116, 114);
    let fit = |d: Data| {
        move |s: State| {
            let d = d.clone();
            scan_with(move |s: State, (): ()| pln_step(&d, s), s, (), ScanOptions::default().length(100))
                .map(|(s, _): (State, Array)| s)
        }
    };
    let compiled = jit(fit(d.clone())).lower(&state).unwrap().compile().unwrap();
    let t = compiled.timings();
    eprintln!(
        "pln_step_scan: trace {:?}, optimize {:?}, fuse {:?}, codegen {:?}",
        t.trace, t.optimize, t.fuse, t.codegen
    );
    let out = compiled.call(state.clone()).unwrap();
    assert!(out.3.to_vec::<f32>().iter().all(|v| v.is_finite()));
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("pln_step_scan", |b| {
        b.iter(|| black_box(jit(fit(d.clone())).lower(&state).unwrap().compile().unwrap()))
    });
    g.finish();
}

criterion_group!(benches, per_iteration, pln_scan_compile);
criterion_main!(benches);
