//! Loops and conditionals: eager, traced and compiled results agree with the
//! reference interpreter, and errors name the leaf, the types and the line.

use arrayjit::{cond, fori_loop, jit, make_jaxpr, scan, scan_with, switch, while_loop, Array, ScanOptions};

fn cumsum(c: Array, x: Array) -> (Array, Array) {
    let s = &c + &x;
    (s.clone(), s)
}

#[test]
fn scan_cumsum_eager_and_jit() {
    let xs = Array::from_vec((1..=5).map(|i| i as f32).collect(), [5]);
    let (c, ys) = scan(cumsum, Array::scalar(0.0f32), xs.clone()).unwrap();
    assert_eq!(c.to_vec::<f32>(), vec![15.0]);
    assert_eq!(ys.to_vec::<f32>(), vec![1.0, 3.0, 6.0, 10.0, 15.0]);
    let f = jit(|xs: Array| scan(cumsum, Array::scalar(0.0f32), xs));
    let (c2, ys2) = f.call(xs.clone()).unwrap();
    assert_eq!(c2.to_vec::<f32>(), vec![15.0]);
    assert_eq!(ys2.to_vec::<f32>(), ys.to_vec::<f32>());
    let (_, rev) = scan_with(cumsum, Array::scalar(0.0f32), xs, ScanOptions::default().reverse(true)).unwrap();
    assert_eq!(rev.to_vec::<f32>(), vec![15.0, 14.0, 12.0, 9.0, 5.0]);
}

#[test]
fn while_and_cond() {
    let x = while_loop(|x: Array| x.lt(100.0f32), |x: Array| &x * 2.0f32, Array::scalar(3.0f32)).unwrap();
    assert_eq!(x.to_vec::<f32>(), vec![192.0]);
    let f = jit(|x: Array| while_loop(|x: Array| x.lt(100.0f32), |x: Array| &x * 2.0f32, x));
    assert_eq!(f.call(Array::scalar(3.0f32)).unwrap().to_vec::<f32>(), vec![192.0]);
    assert_eq!(f.call(Array::scalar(300.0f32)).unwrap().to_vec::<f32>(), vec![300.0]);
    let g = jit(|x: Array| cond(&x.gt(0.0f32), |x: Array| x.log(), |x: Array| -x, x));
    assert_eq!(g.call(Array::scalar(2.0f32)).unwrap().to_vec::<f32>(), vec![2f32.ln()]);
    assert_eq!(g.call(Array::scalar(-2.0f32)).unwrap().to_vec::<f32>(), vec![2.0]);
    let s =
        fori_loop(1, 11, |i: Array, acc: Array| &acc + &i.astype(arrayjit::DType::F64), Array::scalar(0.0f64)).unwrap();
    assert_eq!(s.to_vec::<f64>(), vec![55.0]);
    let branches: Vec<Box<dyn FnOnce(Array) -> Array>> =
        vec![Box::new(|x| &x + 1.0f32), Box::new(|x| &x * 10.0f32), Box::new(|x| -x)];
    let p = make_jaxpr(|(i, x): (Array, Array)| switch(&i, branches, x), &(Array::scalar(1i32), Array::scalar(3.0f32)))
        .unwrap();
    println!("{p}");
}

// ---- compiled loops against the reference interpreter ----

use arrayjit::{grad, interp, Error, Tree};
use proptest::prelude::*;

/// Runs `f` compiled (jit) and through the interpreter on its traced
/// program; the results must agree to `tol` (relative).
fn agree<In: Tree + Clone, Out: Tree>(f: impl Fn(In) -> arrayjit::Result<Out>, args: In, tol: f64) {
    let program = make_jaxpr(&f, &args).unwrap();
    let (leaves, _) = arrayjit::tree_flatten(&args);
    let hosts: Vec<arrayjit::HostArray> = leaves.iter().map(|a| (**a.try_host().unwrap()).clone()).collect();
    let want = interp::eval_program(&program, &hosts).unwrap();
    let got = jit(&f).call(args).unwrap();
    let (got, _) = arrayjit::tree_flatten(&got);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.aval(), w.aval(), "{program}");
        let w = Array::from_host(w.clone()).to_f64_vec();
        for (a, b) in g.to_f64_vec().iter().zip(&w) {
            let ok = a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()));
            assert!(ok, "compiled {a} vs interpreter {b}\n{program}");
        }
    }
}

fn seq(n: usize, m: usize, seed: u64) -> Array {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n * m)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        })
        .collect();
    Array::from_vec(v, [n, m])
}

/// A family of scan bodies exercising what the compiled loop must get
/// right: carries passed through, literal and duplicated outputs, several
/// dtypes, values closed over, a matrix product in the body, a nested scan,
/// a conditional in the body.
fn body_family(kind: usize, opts: ScanOptions, xs: Array, w: Array) -> arrayjit::Result<(Array, Array, Array)> {
    let m = xs.shape()[1];
    let init = (Array::zeros([m], arrayjit::DType::F32), Array::scalar(0i32));
    let ((h, n), ys): ((Array, Array), (Array, Array)) = scan_with(
        |(h, n): (Array, Array), x: Array| -> arrayjit::Result<_> {
            let n2 = &n + 1i32;
            Ok(match kind {
                // Carry read after being written, y equal to the carry.
                0 => {
                    let h = (&h * &w + &x).tanh();
                    ((h.clone(), n2), (h, n.clone()))
                }
                // A carry passed through unchanged, a literal y.
                1 => ((h.clone(), n2), (&x * 2.0f32, Array::scalar(7i32))),
                // A product in the body (library step) and a reduction.
                2 => {
                    let mat = w.reshape([m, 1]).matmul(&x.reshape([1, m]));
                    let h = mat.matmul(&h.reshape([m, 1])).reshape([m]).sin() + &x;
                    ((h.clone(), n2), (h.sum(..).broadcast_to([m]), n.clone()))
                }
                // A nested scan over the elements of x.
                3 => {
                    let (s, cums): (Array, Array) = scan(
                        |c: Array, v: Array| {
                            let c = &c * 0.5f32 + &v;
                            (c.clone(), c)
                        },
                        Array::scalar(0.0f32),
                        x.clone(),
                    )?;
                    ((&h + &cums * &s, n2), (cums, n.clone()))
                }
                // A conditional in the body.
                _ => {
                    let h = cond(&n.lt(2i32), |h: Array| &h + 1.0f32, |h: Array| (&h * &w).cos(), h)?;
                    ((h.clone(), n2), (h, &n * 3i32))
                }
            })
        },
        init,
        xs,
        opts,
    )?;
    Ok((h, n.astype(arrayjit::DType::F32).broadcast_to([m]) + ys.1.astype(arrayjit::DType::F32).sum(..), ys.0))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("ARRAYJIT_SOAK").ok().and_then(|s| s.parse().ok()).unwrap_or(48),
        rng_seed: if std::env::var("ARRAYJIT_SOAK").is_ok() { proptest::test_runner::RngSeed::Random } else { proptest::test_runner::RngSeed::Fixed(7) },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn compiled_scans_match_the_interpreter(
        kind in 0usize..5, length in 0usize..7, m in 1usize..6, reverse in any::<bool>(), unroll in 1usize..4, seed in 0u64..1000,
    ) {
        let opts = ScanOptions::default().reverse(reverse).unroll(unroll);
        let w = seq(1, m, seed ^ 99).reshape([m]);
        agree(move |(xs, w): (Array, Array)| body_family(kind, opts, xs, w), (seq(length, m, seed), w), 2e-5);
    }
}

#[test]
fn compiled_while_cond_and_big_bodies_match_the_interpreter() {
    // A while loop whose carries swap (each is read after the other is written).
    agree(
        |(a, b): (Array, Array)| {
            while_loop(|(a, _): (Array, Array)| a.sum(..).lt(50.0f32), |(a, b): (Array, Array)| (&a + &b, a), (a, b))
        },
        (seq(1, 3, 1).abs() + 0.5f32, seq(1, 3, 2).abs()),
        0.0,
    );
    // A body large enough to run its kernels in parallel blocks.
    let big = seq(3, 300_000, 5);
    agree(
        |xs: Array| {
            scan(
                |c: Array, x: Array| {
                    let c = (&c * 0.9f32 + &x).exp().log1p();
                    (c.clone(), c.sum(..))
                },
                Array::zeros([300_000], arrayjit::DType::F32),
                xs,
            )
        },
        big,
        1e-5,
    );
}

#[test]
fn jit_of_grad_of_scan_matches_the_interpreter_and_grad_of_jit() {
    let f = |(w, xs): (Array, Array)| {
        let (h, ys): (Array, Array) = scan(
            |h: Array, x: Array| {
                let h = (&h * &w + &x).tanh();
                (h.clone(), &h * &h)
            },
            w.zeros_like(),
            xs,
        )
        .unwrap();
        ys.sum(..) + h.sum(..)
    };
    let args = (seq(1, 4, 3).reshape([4]).astype(arrayjit::DType::F64), seq(6, 4, 4).astype(arrayjit::DType::F64));
    agree(grad(f), args.clone(), 1e-12);
    let a = jit(grad(f)).call(args.clone()).unwrap();
    let jf = jit(f);
    let b = grad(jf.as_fn())(args.clone()).unwrap();
    let c = grad(f)(args).unwrap();
    for (x, y) in [(&a.0, &b.0), (&a.1, &b.1), (&a.0, &c.0)] {
        for (p, q) in x.to_f64_vec().iter().zip(y.to_f64_vec()) {
            assert!((p - q).abs() <= 1e-12 * (1.0 + p.abs()), "{p} vs {q}");
        }
    }
}

#[test]
fn a_carry_that_changes_type_names_the_leaf_the_types_and_the_line() {
    let xs = Array::from_vec(vec![1.0f32, 2.0], [2]);
    let line = line!() + 1;
    let err = scan(
        |(a, b): (Array, Array), x: Array| ((a, (&b + &x).astype(arrayjit::DType::F64)), ()),
        (Array::scalar(0.0f32), Array::scalar(0.0f32)),
        xs,
    )
    .err()
    .map(|e: Error| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("carry leaf .1") && err.contains("f32[]") && err.contains("f64[]"), "{err}");
    assert!(err.contains(&format!("control.rs:{line}")), "{err}");
}

#[test]
fn loop_programs_print_and_parse_back() {
    let f = |(w, xs): (Array, Array)| -> arrayjit::Result<Array> {
        let (c, ys): (Array, Array) = scan_with(
            |c: Array, x: Array| -> arrayjit::Result<(Array, Array)> {
                let c2 = cond(&x.gt(0.0f32), |c: Array| &c * &w, |c: Array| c.sin(), c.clone())?;
                Ok((c2.clone(), &c2 + &x))
            },
            Array::scalar(1.0f32),
            xs,
            ScanOptions::default().reverse(true).unroll(2),
        )?;
        let c = while_loop(|c: Array| c.lt(10.0f32), |c: Array| &c * 2.0f32 + 1.0f32, c.abs())?;
        Ok(&c + &ys.sum(..))
    };
    let p = make_jaxpr(f, &(Array::scalar(0.5f32), seq(4, 1, 9).reshape([4]))).unwrap();
    let text = format!("{p:#}");
    assert!(text.contains("scan[") && text.contains("while[") && text.contains("cond["), "{text}");
    let back = arrayjit::parse(&text).unwrap();
    assert_eq!(back, p, "{text}");
    arrayjit::typecheck(&back).unwrap();
    // `w` is closed over: a constant operand of the scan, not a copy per iteration.
    let scan_eqn = p.eqns.iter().find(|e| e.prim.name() == "scan").unwrap();
    match &scan_eqn.prim {
        arrayjit::ir::Prim::Control(arrayjit::ir::prim::Control::Scan { num_consts, .. }) => assert_eq!(*num_consts, 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn eager_loops_see_each_new_value_they_close_over() {
    // A large constant is known to the loop cache by its address. While the
    // weights are ones, the compiled body simplifies them away; the next
    // weights, likely allocated where the freed ones were, must not find
    // that code.
    let xs = Array::ones([4, 65536], arrayjit::DType::F32);
    for scale in [1.0f32, 3.0, 1.0, 0.0, 2.0] {
        let w = Array::from_vec(vec![scale; 65536], [65536]);
        let (s, ()) =
            scan(|c: Array, x: Array| (&c + &(&x * &w).sum(..), ()), Array::scalar(0.0f32), xs.clone()).unwrap();
        assert_eq!(s.item::<f32>(), 4.0 * 65536.0 * scale, "weights of {scale}");
    }
}

#[test]
fn control_flow_errors_say_what_is_wrong() {
    let msg = |r: arrayjit::Result<Array>| r.err().map(|e| e.to_string()).unwrap_or_default();
    let x = Array::from_vec(vec![1.0f32, 2.0], [2]);
    let e = msg(while_loop(|x: Array| x.sum(..), |x: Array| x, x.clone()));
    assert!(e.contains("while_loop") && e.contains("bool[]") && e.contains("f32[]"), "{e}");
    let e = msg(cond(&Array::scalar(1.0f32), |x: Array| x, |x: Array| x, x.clone()));
    assert!(e.contains("cond") && e.contains("predicate") && e.contains("f32[]"), "{e}");
    let e = msg(cond(&Array::scalar(true), |x: Array| x.sum(..), |x: Array| x, x.clone()));
    assert!(e.contains("branch true") && e.contains("f32[]") && e.contains("f32[2]"), "{e}");
    let no_branches: Vec<Box<dyn FnOnce(Array) -> Array>> = Vec::new();
    let e = msg(switch(&Array::scalar(0i32), no_branches, x.clone()));
    assert!(e.contains("no branches"), "{e}");
    let e = scan(
        |c: Array, (a, b): (Array, Array)| (&c + &a + &b, ()),
        Array::scalar(0.0f32),
        (x.clone(), Array::ones([3], arrayjit::DType::F32)),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("xs leaf .1") && e.contains("leading axis 3") && e.contains("length is 2"), "{e}");
    let e =
        scan(|c: Array, (): ()| (c, ()), Array::scalar(0.0f32), ()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("length must be given"), "{e}");
}

#[test]
fn lowered_text_shows_the_loop_body_kernels() {
    let f = jit(|xs: Array| scan(cumsum, Array::scalar(0.0f32), xs));
    let text = f.lower(&Array::from_vec(vec![1.0f32, 2.0], [2])).unwrap().as_text();
    assert!(
        text.contains("= scan(") && text.contains("sub-program 0 of scan") && text.contains("| kernel over"),
        "{text}"
    );
}
