//! Functions with their own derivative rules (`custom_jvp`, `custom_vjp`)
//! under `jit`: compiled values and gradients agree with eager ones and with
//! the reference interpreter, the compiled program runs the function (the
//! rules only where something is differentiated), and the primitives' text
//! form parses back.

use arrayjit::{custom_jvp, custom_vjp, grad, interp, jit, make_jaxpr, parse, Array, Result};

/// `x·tanh(x)` with its true derivative `tanh(x) + x·(1 − tanh²(x))` as the
/// rule, and a weight it closes over.
fn xtanh(x: Array, w: &Array) -> Result<Array> {
    let (w1, w2) = (w.clone(), w.clone());
    custom_jvp(
        move |x: Array| &x * x.tanh() * &w1,
        move |x: Array, t: Array| {
            let th = x.tanh();
            let d = &th + &x * (1.0 - th.square());
            (&x * &th * &w2, t * d * &w2)
        },
        x,
    )
}

fn loss(x: Array) -> Result<Array> {
    let w = Array::from_vec(vec![0.5f64, 1.5, 2.0, -1.0], [4]);
    Ok(xtanh(x.sin(), &w)?.exp().sum(..))
}

fn close(what: &str, a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{what}: {a:?} vs {b:?}");
    }
}

/// The interpreter's outputs for `f`'s traced program at `x`.
fn interpreted(f: impl Fn(Array) -> Result<Array>, x: &Array) -> Vec<f64> {
    let program = make_jaxpr(&f, x).unwrap();
    let host = (**x.try_host().unwrap()).clone();
    let out = interp::eval_program(&program, &[host]).unwrap();
    Array::from_host(out[0].clone()).to_f64_vec()
}

#[test]
fn compiled_values_and_gradients_agree_with_eager_and_the_interpreter() {
    let x = Array::from_vec(vec![-1.2f64, 0.3, 0.9, 2.5], [4]);
    let eager = loss(x.clone()).unwrap().to_f64_vec();
    close("jit", &jit(loss).call(x.clone()).unwrap().to_f64_vec(), &eager);
    close("interpreter", &interpreted(loss, &x), &eager);

    let g = grad(loss)(x.clone()).unwrap().to_f64_vec();
    close("jit(grad)", &jit(grad(loss)).call(x.clone()).unwrap().to_f64_vec(), &g);
    close("interpreter of grad", &interpreted(grad(loss), &x), &g);
    // The rule is the true derivative, so the gradient is the formula's.
    let plain = |x: Array| -> Result<Array> {
        let w = Array::from_vec(vec![0.5f64, 1.5, 2.0, -1.0], [4]);
        let s = x.sin();
        Ok((&s * s.tanh() * &w).exp().sum(..))
    };
    let want = grad(plain)(x.clone()).unwrap().to_f64_vec();
    for (a, b) in g.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{g:?} vs {want:?}");
    }
    // Second derivatives differentiate the rule, compiled or not.
    let g2 = |x: Array| grad(loss)(x).map(|g| g.sum(..));
    let h = grad(g2)(x.clone()).unwrap().to_f64_vec();
    close("jit(grad(grad))", &jit(grad(g2)).call(x.clone()).unwrap().to_f64_vec(), &h);
    let h_plain = grad(|x: Array| grad(plain)(x).map(|g| g.sum(..)))(x).unwrap().to_f64_vec();
    for (a, b) in h.iter().zip(&h_plain) {
        assert!((a - b).abs() <= 1e-10 * (1.0 + b.abs()), "{h:?} vs {h_plain:?}");
    }
}

#[test]
fn the_compiled_program_runs_the_function_and_the_text_form_parses_back() {
    let x = Array::from_vec(vec![0.1f64, 0.2, 0.3, 0.4], [4]);
    let p = make_jaxpr(loss, &x).unwrap();
    let text = p.to_string();
    assert!(text.contains("custom_jvp"), "{text}");
    assert_eq!(parse(&text).as_ref(), Ok(&p));
    // What jit compiles is the function, the primitive inlined away.
    let lowered = jit(loss).lower(&x).unwrap();
    let optimised = lowered.optimized();
    assert!(optimised.eqns.iter().all(|e| e.prim.name() != "custom_jvp"), "{optimised}");
    close(
        "compiled",
        &lowered.compile().unwrap().call(x.clone()).unwrap().to_f64_vec(),
        &loss(x).unwrap().to_f64_vec(),
    );
}

/// `x·tanh(x)·w` again, with reverse-mode rules: `fwd` saves `tanh(x)`.
fn xtanh_vjp(x: Array, w: &Array) -> Result<Array> {
    let (w1, w2, w3) = (w.clone(), w.clone(), w.clone());
    custom_vjp(
        move |x: Array| &x * x.tanh() * &w1,
        move |x: Array| {
            let th = x.tanh();
            (&x * &th * &w2, (x, th))
        },
        move |(x, th): (Array, Array), g: Array| (&th + &x * (1.0 - th.square())) * &w3 * g,
        x,
    )
}

fn loss_vjp(x: Array) -> Result<Array> {
    let w = Array::from_vec(vec![0.5f64, 1.5, 2.0, -1.0], [4]);
    Ok(xtanh_vjp(x.sin(), &w)?.exp().sum(..))
}

#[test]
fn reverse_mode_rules_compiled_agree_with_eager_the_interpreter_and_custom_jvp() {
    let x = Array::from_vec(vec![-1.2f64, 0.3, 0.9, 2.5], [4]);
    let eager = loss_vjp(x.clone()).unwrap().to_f64_vec();
    close("jit", &jit(loss_vjp).call(x.clone()).unwrap().to_f64_vec(), &eager);
    close("interpreter", &interpreted(loss_vjp, &x), &eager);
    close("against custom_jvp's", &eager, &loss(x.clone()).unwrap().to_f64_vec());
    let g = grad(loss_vjp)(x.clone()).unwrap().to_f64_vec();
    close("jit(grad)", &jit(grad(loss_vjp)).call(x.clone()).unwrap().to_f64_vec(), &g);
    close("interpreter of grad", &interpreted(grad(loss_vjp), &x), &g);
    close("against custom_jvp's gradient", &g, &grad(loss)(x.clone()).unwrap().to_f64_vec());
    // Second order through fwd and bwd, compiled or not.
    let g2 = |x: Array| grad(loss_vjp)(x).map(|g| g.sum(..));
    let h = grad(g2)(x.clone()).unwrap().to_f64_vec();
    close("jit(grad(grad))", &jit(grad(g2)).call(x.clone()).unwrap().to_f64_vec(), &h);
    let h_jvp = grad(|x: Array| grad(loss)(x).map(|g| g.sum(..)))(x.clone()).unwrap().to_f64_vec();
    for (a, b) in h.iter().zip(&h_jvp) {
        assert!((a - b).abs() <= 1e-10 * (1.0 + b.abs()), "{h:?} vs {h_jvp:?}");
    }
    let p = make_jaxpr(loss_vjp, &x).unwrap();
    let text = p.to_string();
    assert!(text.contains("custom_vjp"), "{text}");
    assert_eq!(parse(&text).as_ref(), Ok(&p));
    // The program between linearization and transposition holds the
    // outputs' tangents as a primitive of their own; its text parses back too.
    let lin = arrayjit::ad::linearize(&p, &[true]).unwrap().linear;
    let text = lin.to_string();
    assert!(text.contains("custom_vjp_tangent"), "{text}");
    assert_eq!(parse(&text).as_ref(), Ok(&lin));
}

/// Three steps of `c ← tanh(c + x)` from zero.
fn three_steps(x: &Array) -> Result<Array> {
    let step = |c: Array, (): ()| {
        let c = (&c + x).tanh();
        (c.clone(), c)
    };
    let (c, _): (Array, Array) =
        arrayjit::scan_with(step, x.zeros_like(), (), arrayjit::ScanOptions::default().length(3))?;
    Ok(c)
}

/// A loop inside a function with a rule, and such a function inside a loop,
/// compiled: the results agree with eager ones and with the interpreter.
#[test]
fn loops_inside_and_around_functions_with_rules() {
    // The loop with the rule of the identity (a straight-through estimator).
    let straight = |x: Array| -> Result<Array> {
        custom_jvp(
            |x: Array| three_steps(&x),
            |x: Array, t: Array| -> Result<(Array, Array)> { Ok((three_steps(&x)?, t)) },
            x,
        )
    };
    let outer = |x: Array| -> Result<Array> {
        let step = |c: Array, (): ()| -> Result<(Array, Array)> {
            let c = straight(&c * 0.5 + 1.0)?;
            Ok((c.clone(), c))
        };
        let (c, _): (Array, Array) = arrayjit::scan_with(step, x, (), arrayjit::ScanOptions::default().length(2))?;
        Ok(c.exp().sum(..))
    };
    let x = Array::from_vec(vec![-0.7f64, 0.2, 1.4], [3]);
    let eager = outer(x.clone()).unwrap().to_f64_vec();
    close("jit", &jit(outer).call(x.clone()).unwrap().to_f64_vec(), &eager);
    close("interpreter", &interpreted(outer, &x), &eager);
    // d/dx of Σ exp(c₂) with c₂ = ½(½x + 1) + 1 through the straight-through rule: ¼·exp(c₂).
    let g = grad(outer)(x.clone()).unwrap().to_f64_vec();
    let c2 = |v: f64| {
        let t = |y: f64| (0..3).fold(0.0, |c: f64, _| (c + y).tanh());
        t(t(v * 0.5 + 1.0) * 0.5 + 1.0)
    };
    let want: Vec<f64> = x.to_f64_vec().iter().map(|&v| 0.25 * c2(v).exp()).collect();
    close("grad", &g, &want);
    close("jit(grad)", &jit(grad(outer)).call(x.clone()).unwrap().to_f64_vec(), &g);
    close("interpreter of grad", &interpreted(grad(outer), &x), &g);
}

/// `det`'s own rule compiled: the gradient at singular matrices (the
/// transposed adjugate) and at a regular one, against eager evaluation.
#[test]
fn det_gradient_compiled() {
    let a = Array::from_vec(
        vec![2.0f64, 1.0, 1.0, 4.0, 2.0, 2.0, 1.0, 3.0, 5.0, 2.0, -1.0, 0.5, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0],
        [2, 3, 3],
    );
    let g = |a: Array| grad(|a: Array| Ok::<_, arrayjit::Error>(a.det().sum(..)))(a);
    let eager = g(a.clone()).unwrap().to_f64_vec();
    assert!(eager.iter().all(|v| v.is_finite()), "{eager:?}");
    assert_eq!(&eager[..3], &[4.0, -18.0, 10.0]);
    close("jit(grad(det))", &jit(g).call(a.clone()).unwrap().to_f64_vec(), &eager);
    close("interpreter", &interpreted(|a: Array| g(a).map(|g| g.sum(..)), &a), &[eager.iter().sum()]);
}
