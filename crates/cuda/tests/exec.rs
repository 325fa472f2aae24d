//! The executor, end to end: programs with products, reductions, host-run
//! factorizations, `scan` (forward and reverse, with stacked inputs and
//! outputs), `while_loop`, `cond`, `custom_jvp` and `custom_vjp`, and the PLN fit itself, each checked
//! against the CPU backend. One body per case runs on every runtime: the
//! host runtime (`arrayjit_cuda::emulator`, any machine with `g++`) and the GPU (where
//! there is one; `ARRAYJIT_REQUIRE_GPU=1` makes its absence a failure).

use arrayjit::value_and_grad;
use arrayjit::{cond, custom_jvp, custom_vjp, grad, jit, scan_with, while_loop, Array, DType, HostArray, ScanOptions};
mod gpu_support;
mod random_support;

use arrayjit_cuda::emulator::HostRuntime;
use arrayjit_cuda::{EagerDevice, Executable, Runtime};
use gpu_support::gpu;
use std::sync::Arc;

fn host() -> bool {
    let ok = HostRuntime::available();
    if !ok {
        eprintln!("skipped on the host runtime: g++ is not available");
    }
    ok
}

/// Each case as two tests: on the host runtime and on the GPU.
macro_rules! on_every_runtime {
    ($($case:ident),* $(,)?) => {
        mod host {
            $(#[test] fn $case() { if super::host() { super::$case(&super::HostRuntime) } })*
        }
        mod gpu {
            $(#[test] fn $case() { if let Some(rt) = super::gpu() { super::$case(&rt) } })*
        }
    };
}

on_every_runtime!(
    products_reductions_and_host_steps,
    factorizations_on_the_device,
    loops_and_conditionals,
    random_loops,
    pln_fit_at_level_2
);

/// Eager operations on arrays placed on a device: each runs there as a
/// cached kernel, host operands are copied over, a gradient evaluated eagerly
/// runs as one program, results stay on the device until copied back, and
/// the same operations again compile nothing.
fn eager_on<R>(rt: Arc<R>, name: &str)
where
    R: Runtime + Send + Sync + 'static,
    R::Buf: Send + Sync,
    R::Module: Send + Sync,
{
    let device = EagerDevice::new(rt, name);
    let dev = device.handle();
    let (x, c) = (ramp(&[4, 3], 0.3), ramp(&[4, 3], 0.8));
    let xd = x.to_device(&dev);
    assert!(xd.device().is_some() && x.device().is_none());
    let step = |x: &Array| {
        let y = (x * 2.0 + 1.0).exp() - &c;
        let z = y.matmul(&x.t()).sum(1) / 3.0;
        let (v, g) = value_and_grad(|a: Array| (a.sin() * &c).sum(..) + a.powi(2).mean(..))(x.clone()).unwrap();
        (z, v, g)
    };
    let (zh, vh, gh) = step(&x);
    let (zd, vd, gd) = step(&xd);
    for (got, want) in [(&zd, &zh), (&vd, &vh), (&gd, &gh)] {
        assert!(got.device().is_some(), "{name}: a result came back to the host");
        let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
        assert_eq!(got.aval(), want.aval());
        for (a, b) in g.iter().zip(&w) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{name}: {a} vs {b}");
        }
    }
    let compiled = device.cached_programs();
    step(&xd);
    assert_eq!(device.cached_programs(), compiled, "{name}: the same operations compiled again");
    // `jit` runs on the device its arguments live on, once compiled there.
    let f = arrayjit::jit(|(a, b): (Array, Array)| ((a.exp() * &b).sum(0), a.t().matmul(&b)));
    let (h0, h1) = f.call((x.clone(), c.clone())).unwrap();
    let (d0, d1) = f.call((xd.clone(), c.clone())).unwrap();
    let compiled = device.cached_programs();
    f.call((xd.clone(), c.clone())).unwrap();
    assert_eq!(device.cached_programs(), compiled, "{name}: a jitted call compiled again");
    for (got, want) in [(&d0, &h0), (&d1, &h1)] {
        assert!(got.device().is_some(), "{name}: a jitted result came back to the host");
        for (a, b) in got.to_f64_vec().iter().zip(&want.to_f64_vec()) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{name}: {a} vs {b}");
        }
    }
    // A traced function closing over a device array takes it as a constant
    // (copied back once); called on host arrays, it runs on the CPU.
    let closes = arrayjit::jit(|a: Array| (&a * &xd).sum(..));
    let (got, want) = (closes.call(c.clone()).unwrap(), (&c * &x).sum(..));
    assert!(got.device().is_none());
    assert!((got.to_f64() - want.to_f64()).abs() <= 1e-12 * want.to_f64().abs());
    // Operands on two devices are refused, with both named.
    let other = EagerDevice::new(device.runtime().clone(), "another").handle();
    let err = xd.try_add(x.to_device(&other)).unwrap_err().to_string();
    assert!(err.contains(name) && err.contains("another"), "{err}");
}

#[test]
fn eager_operations_on_the_host_runtime() {
    if host() {
        eager_on(Arc::new(HostRuntime), "host-emulator");
    }
}

#[test]
fn eager_operations_on_the_gpu() {
    if let Some(rt) = gpu() {
        eager_on(Arc::new(rt), "cuda:0");
    }
}

/// A long loop on the GPU is recorded (an even and an odd iteration) and
/// replayed, with the same results as the CPU's.
#[test]
fn loops_are_recorded_once_and_replayed_on_the_gpu() {
    let Some(rt) = gpu() else { return };
    let before = arrayjit_cuda::exec::graphs_recorded();
    for length in [41, 50] {
        check(
            &rt,
            &format!("scan of {length}"),
            |(c0, xs): (Array, Array)| {
                scan_with(
                    |(c, d): (Array, Array), x: Array| {
                        let c = (&c * 0.9 + &x).tanh() + d.matmul(&d).sum(1) * 1e-3;
                        ((c.clone(), d), c.sum(..))
                    },
                    (c0, ramp(&[3, 3], 0.2)),
                    xs,
                    ScanOptions::default(),
                )
                .unwrap()
            },
            (ramp(&[3], 1.1), ramp(&[length, 3], 0.4)),
            1e-12,
        );
    }
    if std::env::var("ARRAYJIT_CUDA_GRAPHS").map_or(true, |v| v != "0") {
        assert!(arrayjit_cuda::exec::graphs_recorded() >= before + 4, "no graph was recorded");
    }
}

fn ramp(shape: &[usize], k: f64) -> Array {
    let n: usize = shape.iter().product();
    Array::from_vec((0..n).map(|i| (i as f64 * k).sin()).collect::<Vec<f64>>(), shape.to_vec())
}

/// Runs `f` on the host runtime and on the CPU backend; they must agree.
fn check<R: Runtime, In: arrayjit::Tree + Clone, Out: arrayjit::Tree>(
    rt: &R,
    name: &str,
    f: impl Fn(In) -> Out + Clone,
    args: In,
    tol: f64,
) {
    let lowered = jit(f.clone()).lower(&args).unwrap();
    let exe = Executable::compile(rt, lowered.schedule()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let hosts: Vec<HostArray> = arrayjit::tree_leaves(&args).iter().map(|a| a.to_host()).collect();
    let refs: Vec<&HostArray> = hosts.iter().collect();
    let got = exe.run(rt, &refs).unwrap_or_else(|e| panic!("{name}: {e}"));
    let want: Vec<HostArray> = arrayjit::tree_leaves(&jit(f).call(args).unwrap()).iter().map(|a| a.to_host()).collect();
    assert_eq!(got.len(), want.len(), "{name}");
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.aval(), w.aval(), "{name} output {k}");
        for e in 0..w.numel() {
            let (x, y) = (g.data().get(e).as_f64(), w.data().get(e).as_f64());
            let ok = (x.is_nan() && y.is_nan()) || (x - y).abs() <= tol * (1.0 + y.abs());
            assert!(ok, "{name} output {k} element {e}: {x} vs {y}");
        }
    }
}

fn products_reductions_and_host_steps<R: Runtime>(rt: &R) {
    let (a, b) = (ramp(&[7, 5], 0.3), ramp(&[5, 4], 0.7));
    check(rt, "matmul", |(a, b): (Array, Array)| (a.matmul(&b).exp().sum(0), a.t().matmul(&a)), (a.clone(), b), 1e-12);
    let batch = (ramp(&[3, 4, 5], 0.2), ramp(&[3, 5, 2], 0.9));
    check(rt, "batched", |(x, y): (Array, Array)| x.matmul(&y).tanh(), batch, 1e-12);
    // Cholesky and a triangular solve run on the host, between device steps.
    check(
        rt,
        "factorizations",
        |a: Array| {
            let s = a.t().matmul(&a) + Array::eye(5, DType::F64);
            let l = s.cholesky();
            (l.clone(), s.inv_spd().sum(..), l.diag_part().log().sum(..))
        },
        a,
        1e-10,
    );
}

/// Every triangular solve (left and right, lower and upper, transposed or
/// not, unit diagonal or not) on a batch, and Cholesky factors of a batch
/// holding a matrix that is not positive definite (all NaN, as on the CPU).
fn factorizations_on_the_device<R: Runtime>(rt: &R) {
    use arrayjit::{triangular_solve, TriangularSolve};
    let a = ramp(&[2, 5, 5], 0.37) + Array::eye(5, DType::F64) * 3.0;
    for left_side in [true, false] {
        let b = if left_side { ramp(&[2, 5, 3], 0.9) } else { ramp(&[2, 3, 5], 0.9) };
        for lower in [true, false] {
            for transpose_a in [true, false] {
                for unit_diagonal in [true, false] {
                    let o = TriangularSolve { left_side, lower, transpose_a, unit_diagonal };
                    let name = format!("{o:?}");
                    check(
                        rt,
                        &name,
                        move |(a, b): (Array, Array)| triangular_solve(&a, &b, o),
                        (a.clone(), b.clone()),
                        1e-10,
                    );
                }
            }
        }
    }
    // LU (partial pivoting, on the device) behind the general inverse,
    // solve and log-determinant; the second matrix needs a row exchange at
    // every column and ties in magnitude (the first row is kept).
    let general = arrayjit::stack(
        &[
            ramp(&[5, 5], 0.61) * 3.0 + Array::eye(5, DType::F64),
            Array::from_vec(
                vec![
                    0.0, 1.0, 2.0, 0.5, 1.0, 3.0, -3.0, 1.0, 0.0, 2.0, -3.0, 3.0, 4.0, 1.0, 0.0, 1.0, 2.0, -1.0, 5.0,
                    1.0, 2.0, 0.0, 1.0, 1.0, -6.0,
                ],
                vec![5, 5],
            ),
        ],
        0,
    );
    let rhs = ramp(&[2, 5, 3], 0.43);
    check(
        rt,
        "lu",
        |(a, b): (Array, Array)| {
            let (sign, logabs) = a.slogdet();
            (a.inv(), a.solve(&b), sign, logabs, a.det())
        },
        (general, rhs),
        1e-10,
    );
    let spd = |m: Array| m.matmul(&m.t()) + Array::eye(4, DType::F64);
    let batch = arrayjit::stack(&[spd(ramp(&[4, 4], 0.3)), -spd(ramp(&[4, 4], 0.5)), spd(ramp(&[4, 4], 0.8))], 0);
    check(rt, "cholesky", |a: Array| a.cholesky(), batch, 1e-10);
    // The inverse from the factor: an identity and two solves per matrix,
    // on the device (not the host's fallback), reading only the factor's
    // lower triangle (the ramp above the diagonal is never read).
    let planned = arrayjit_cuda::library::render_library(
        &arrayjit::ir::prim::Linalg::CholeskyInverse,
        &[arrayjit::AVal::new(DType::F64, [2, 4, 4])],
        "inverse",
    );
    assert!(planned.is_some_and(|k| k.launches.len() == 3), "cholesky_inverse has a device version");
    let pair = arrayjit::stack(&[spd(ramp(&[4, 4], 0.3)), spd(ramp(&[4, 4], 0.8))], 0);
    check(rt, "cholesky_inverse", |a: Array| a.cholesky().cholesky_inverse(), pair, 1e-10);
    let factor = ramp(&[2, 5, 5], 0.3) + Array::eye(5, DType::F64) * 3.0;
    check(rt, "cholesky_inverse of a full matrix", |l: Array| l.cholesky_inverse(), factor, 1e-10);
    let m = ramp(&[70, 70], 0.71);
    let spd70 = m.matmul(&m.t()) * 0.01 + Array::eye(70, DType::F64);
    check(rt, "inv_spd 70", |a: Array| a.inv_spd(), spd70, 1e-9);
    // Each kernel's range of sizes (in f64): Cholesky blocked in shared
    // memory up to 108 (70: three blocks of columns, the last partial),
    // in registers up to 127, in global memory past that; solves blocked up
    // to 184 unknowns, in registers up to 256, in global memory past that.
    // A pivot that fails in a later block makes the whole factor NaN.
    let late = {
        let m = ramp(&[40, 40], 0.71);
        let spd = m.matmul(&m.t()) + Array::eye(40, DType::F64);
        let bump = Array::from_vec((0..40).map(|i| if i == 35 { -1e4 } else { 0.0 }).collect::<Vec<f64>>(), vec![40]);
        spd + bump.diag()
    };
    check(rt, "cholesky failing at column 35", |a: Array| a.cholesky(), late, 1e-9);
    for n in [70, 108, 127, 130] {
        let m = ramp(&[n, n], 0.71);
        check(
            rt,
            &format!("cholesky {n}"),
            |a: Array| a.cholesky(),
            m.matmul(&m.t()) + Array::eye(n, DType::F64),
            1e-9,
        );
    }
    for n in [184, 256, 260] {
        let tall = ramp(&[n, n], 0.13) * 0.05 + Array::eye(n, DType::F64) * 2.0;
        let o = TriangularSolve { left_side: true, lower: false, transpose_a: false, unit_diagonal: false };
        let b = ramp(&[n, 3], 0.3);
        check(rt, &format!("solve {n}"), move |(a, b): (Array, Array)| triangular_solve(&a, &b, o), (tall, b), 1e-9);
    }
    // Batches of several panels each, for every kind of solve kernel: the
    // blocks of a launch go panel by panel within each matrix.
    for (n, rhs) in [(70, 40), (200, 40), (260, 130)] {
        let a = ramp(&[2, n, n], 0.37) * 0.01 + Array::eye(n, DType::F64) * 2.0;
        let b = ramp(&[2, n, rhs], 0.9);
        let o = TriangularSolve { left_side: true, lower: true, transpose_a: false, unit_diagonal: false };
        check(
            rt,
            &format!("batched panels {n}"),
            move |(a, b): (Array, Array)| triangular_solve(&a, &b, o),
            (a, b),
            1e-9,
        );
    }
    // Several panels of right-hand sides, the last one partial, and three
    // blocks of unknowns, the last partial.
    let a = ramp(&[70, 70], 0.37) * 0.02 + Array::eye(70, DType::F64) * 2.0;
    for (left_side, lower) in [(true, true), (true, false), (false, true), (false, false)] {
        let b = if left_side { ramp(&[70, 40], 0.9) } else { ramp(&[40, 70], 0.9) };
        let o = TriangularSolve { left_side, lower, transpose_a: !lower, unit_diagonal: false };
        check(
            rt,
            &format!("panels {o:?}"),
            move |(a, b): (Array, Array)| triangular_solve(&a, &b, o),
            (a.clone(), b),
            1e-10,
        );
    }
}

fn loops_and_conditionals<R: Runtime>(rt: &R) {
    let xs = ramp(&[6, 3], 0.4);
    for reverse in [false, true] {
        check(
            rt,
            &format!("scan reverse={reverse}"),
            move |(c0, xs): (Array, Array)| {
                scan_with(
                    |c: Array, x: Array| {
                        let c = (&c * 0.9 + &x).tanh();
                        (c.clone(), c.sum(..))
                    },
                    c0,
                    xs,
                    ScanOptions::default().reverse(reverse),
                )
                .unwrap()
            },
            (ramp(&[3], 1.1), xs.clone()),
            1e-12,
        );
    }
    // Carries that are not fresh values: one passed through from another
    // carry (a swap), one the same value as another, and a constant.
    for length in [5, 6] {
        check(
            rt,
            &format!("scan of {length}, swapping carries"),
            move |(a0, b0, xs): (Array, Array, Array)| {
                scan_with(
                    |(a, b, _, _): (Array, Array, Array, Array), x: Array| {
                        let s = (&a * 0.9 + &x).tanh();
                        ((b, s.clone(), s, Array::full([3], 2.0, DType::F64)), a.sum(..))
                    },
                    (a0, b0.clone(), b0.clone(), b0),
                    xs,
                    ScanOptions::default(),
                )
                .unwrap()
            },
            (ramp(&[3], 1.1), ramp(&[3], 0.3), ramp(&[length, 3], 0.4)),
            1e-12,
        );
    }
    check(
        rt,
        "while",
        |x: Array| {
            while_loop(
                |(i, _): (Array, Array)| i.lt(5),
                |(i, x): (Array, Array)| (&i + 1, x.exp() * 0.5),
                (Array::scalar(0i32), x),
            )
            .unwrap()
        },
        ramp(&[4], 0.5),
        1e-12,
    );
    check(
        rt,
        "cond",
        |(p, x): (Array, Array)| cond(&p, |x: Array| x.sin(), |x: Array| x.cos() * 2.0, x).unwrap(),
        (Array::scalar(true), ramp(&[4], 0.5)),
        1e-12,
    );
    // A function with its own derivative rule, and a gradient through it.
    check(
        rt,
        "custom_jvp",
        |x: Array| {
            let f = |x: Array| {
                custom_jvp(|x: Array| x.exp().log1p(), |x: Array, t: Array| (x.exp().log1p(), t * x.logistic()), x)
            };
            let g = grad(|x: Array| f(x).map(|y| y.sum(..)))(x.clone()).unwrap();
            (f(x).unwrap(), g)
        },
        ramp(&[4], 0.5),
        1e-12,
    );
    check(
        rt,
        "custom_vjp",
        |x: Array| {
            let f = |x: Array| {
                custom_vjp(
                    |x: Array| x.tanh(),
                    |x: Array| (x.tanh(), x.tanh()),
                    |th: Array, g: Array| (1.0 - th.square()) * g,
                    x,
                )
            };
            let g = grad(|x: Array| f(x).map(|y| y.sum(..)))(x.clone()).unwrap();
            (f(x).unwrap(), g)
        },
        ramp(&[4], 0.5),
        1e-12,
    );
}

/// Level 0 on a device (every operation there, the gradient as one program)
/// follows the CPU's level 0.
fn pln_at_level_0_on<R>(rt: Arc<R>)
where
    R: Runtime + Send + Sync + 'static,
    R::Buf: Send + Sync,
    R::Module: Send + Sync,
{
    use arrayjit_pln::{fit, fit_on, Dataset};
    let data = Dataset::oaks(1, DType::F64).unwrap();
    let on_device = fit_on(&rt, 0, &data, 3, &mut |_| ()).unwrap();
    let on_cpu = fit(0, &data, 3, &mut |_| ()).unwrap();
    for (a, b) in on_device.losses.iter().zip(&on_cpu.losses) {
        assert!((a - b).abs() <= 1e-9 * b.abs(), "{a} vs {b}");
    }
    assert!(on_device.params.m.device().is_none(), "the final state comes back to the host");
    let (a, b) = (on_device.params.m.to_f64_vec(), on_cpu.params.m.to_f64_vec());
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + y.abs())));
}

#[test]
fn pln_at_level_0_on_the_host_runtime() {
    if host() {
        pln_at_level_0_on(Arc::new(HostRuntime));
    }
}

#[test]
fn pln_at_level_0_on_the_gpu() {
    if let Some(rt) = gpu() {
        pln_at_level_0_on(Arc::new(rt));
    }
}

fn pln_fit_at_level_2<R: Runtime>(rt: &R) {
    use arrayjit_pln::{scan_fit, scan_start, Dataset};
    let data = Dataset::oaks(1, DType::F64).unwrap();
    let fit = scan_fit(&data, 3);
    let fit = move |state| fit(state).unwrap();
    check(rt, "pln level 2", fit, scan_start(&data).unwrap(), 1e-9);
}

/// Random programs as loop bodies (loop constants, scanned slices and carries
/// mixed, forward and reverse, every output stacked), run by the executor against the reference
/// interpreter: the loop's slice copies, its alternating carry buffers and
/// (on a GPU) its recorded iterations see bodies nobody wrote by hand.
/// `ARRAYJIT_SOAK=N` runs N fresh programs instead of the fixed 12.
fn random_loops<R: Runtime>(rt: &R) {
    use arrayjit_ir::random::{arb_loop_and_inputs, GenConfig};
    use proptest::strategy::{Strategy, ValueTree};
    let (mut runner, count) = random_support::runner(11, 12);
    let config = GenConfig::new(8).without(&random_support::NOISY);
    let strategy = arb_loop_and_inputs(config);
    for c in 0..count {
        let Ok(tree) = strategy.new_tree(&mut runner) else { continue };
        let (p, inputs) = tree.current();
        let want = arrayjit_interp::eval_program(&p, &inputs).unwrap();
        let (q, _) = arrayjit_lower::optimize(&p).unwrap();
        let s = arrayjit_lower::fuse(&q);
        let exe = Executable::compile(rt, &s).unwrap_or_else(|e| panic!("loop {c}: {e}\nprogram:\n{p}"));
        let refs: Vec<&HostArray> = inputs.iter().collect();
        let got = exe.run(rt, &refs).unwrap_or_else(|e| panic!("loop {c}: {e}\nprogram:\n{p}"));
        let tol = if p.to_string().contains("f32") { 2e-4 } else { 1e-9 };
        assert_eq!(got.len(), want.len(), "loop {c}");
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.aval(), w.aval(), "loop {c} output {k}");
            for e in 0..w.numel() {
                let (x, y) = (g.data().get(e).as_f64(), w.data().get(e).as_f64());
                let ok = (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= tol * (1.0 + y.abs());
                assert!(ok, "loop {c} output {k} element {e}: {x} vs {y}\nprogram:\n{p}\nschedule:\n{s}");
            }
        }
    }
}
