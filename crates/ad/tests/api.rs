//! The differentiation API: argnums, has_aux, higher order, Jacobians, HVPs,
//! the printed backward program, and the PLN ELBO's gradient in closed form.

mod common;
use arrayjit_ad::*;
use arrayjit_trace::{make_jaxpr, Array, DType};
use common::{assert_same, Rng};

fn close(a: &Array, b: &Array, tol: f64) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.to_f64_vec().iter().zip(b.to_f64_vec()) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a} vs {b}");
    }
}

/// The same values up to rounding: `a` and `b` come from different evaluation
/// paths (a transformed program against eager operations or the interpreter),
/// whose transcendental functions may differ in the last place.
fn same(a: &Array, b: &Array) {
    assert_eq!(a.shape(), b.shape());
    assert_same(&format!("{a} vs {b}"), &a.to_f64_vec(), &b.to_f64_vec());
}

fn same_f64(a: f64, b: f64) {
    assert_same("scalar", &[a], &[b]);
}

#[test]
fn argnums_select_typed_gradients() {
    let f = |(a, b, c): (Array, Array, Array)| (&a * &b + c.sin()).sum(..);
    let (a, b, c) = (Array::scalar(2.0f64), Array::scalar(3.0f64), Array::scalar(0.5f64));
    let gb: Array = grad_argnums(f, Arg::<1>)((a.clone(), b.clone(), c.clone())).unwrap();
    assert_eq!(gb.item::<f64>(), 2.0);
    let (ga, gc) = grad_argnums(f, (Arg::<0>, Arg::<2>))((a.clone(), b.clone(), c.clone())).unwrap();
    assert_eq!(ga.item::<f64>(), 3.0);
    same_f64(gc.item::<f64>(), 0.5f64.cos());
    let (v, gb) = value_and_grad_argnums(f, Arg::<1>)((a.clone(), b.clone(), c.clone())).unwrap();
    same_f64(v.item::<f64>(), 6.0 + 0.5f64.sin());
    assert_eq!(gb.item::<f64>(), 2.0);
    // Only the selected argument is differentiated: the program holds no work for the others.
    let p = make_jaxpr(grad_argnums(f, Arg::<1>), &(a, b, c)).unwrap();
    assert!(!p.eqns.iter().any(|e| e.prim.name() == "cos"), "{p}");
}

#[test]
fn has_aux_returns_the_auxiliary_value() {
    let f = |x: Array| {
        let y = x.exp();
        (y.sum(..), (y.clone(), x.max(..)))
    };
    let x = Array::from_vec(vec![0.0f64, 1.0], [2]);
    let (g, (y, m)) = grad_aux(f)(x.clone()).unwrap();
    same(&g, &x.exp());
    same(&y, &x.exp());
    assert_eq!(m.item::<f64>(), 1.0);
    let ((v, _), g2) = value_and_grad_aux(f)(x.clone()).unwrap();
    same(&v, &x.exp().sum(..));
    same(&g2, &g);
}

#[test]
fn gradients_of_trees() {
    let mut params = std::collections::BTreeMap::new();
    params.insert("w".to_string(), Array::from_vec(vec![1.0f64, 2.0], [2]));
    params.insert("b".to_string(), Array::scalar(0.5f64));
    let g = grad(|p: std::collections::BTreeMap<String, Array>| (&p["w"] * &p["b"]).square().sum(..))(params).unwrap();
    close(&g["w"], &Array::from_vec(vec![0.5f64, 1.0], [2]), 1e-15);
    close(&g["b"], &Array::scalar(2.0 * 0.5 * (1.0 + 4.0)), 1e-15);
}

#[test]
fn second_derivatives_match_analytic_ones() {
    // f(x) = x³·sin(x): f'' = 6x sin x + 6x² cos x − x³ sin x.
    let f = |x: Array| (x.powi(3) * x.sin()).sum(..);
    for &x0 in &[-1.3f64, 0.2, 2.1] {
        let x = Array::scalar(x0);
        let d2 = grad(|x: Array| grad(f)(x))(x.clone()).unwrap().item::<f64>();
        let want = 6.0 * x0 * x0.sin() + 6.0 * x0 * x0 * x0.cos() - x0.powi(3) * x0.sin();
        assert!((d2 - want).abs() < 1e-12, "{d2} vs {want}");
        // Third order through three nested transformations.
        let d3 = grad(|x: Array| grad(|x: Array| grad(f)(x))(x))(x).unwrap().item::<f64>();
        let want3 = 6.0 * x0.sin() + 18.0 * x0 * x0.cos() - 9.0 * x0 * x0 * x0.sin() - x0.powi(3) * x0.cos();
        assert!((d3 - want3).abs() < 1e-10, "{d3} vs {want3}");
    }
}

#[test]
fn abs_has_slope_one_at_zero_as_in_jax() {
    let x = Array::from_vec(vec![-2.0f64, -0.0, 0.0, 3.0], [4]);
    let g = grad(|x: Array| x.abs().sum(..))(x).unwrap();
    assert_eq!(g.to_vec::<f64>(), vec![-1.0, 1.0, 1.0, 1.0]);
}

#[test]
fn the_smallest_integer_power_has_a_derivative() {
    // d/dx x^n = n·x^(n-1), where n - 1 does not fit in i32 for n = i32::MIN.
    let n = i32::MIN;
    for (x0, want) in [(1.0f64, n as f64), (-1.0, -(n as f64))] {
        let d = grad(|x: Array| x.powi(n))(Array::scalar(x0)).unwrap().item::<f64>();
        assert_eq!(d, want, "at {x0}");
    }
}

#[test]
fn hessian_vector_products_match_finite_differences_of_gradients() {
    let mut rng = Rng::new(21);
    let a = rng.spd(3);
    let f = move |x: Array| (x.matmul(&a).dot(&x) * 0.5 + x.exp().sum(..)).sum(..);
    let x = rng.array(&[3], -1.0, 1.0);
    let v = rng.array(&[3], -1.0, 1.0);
    let hv = hvp(f.clone(), &x, &v).unwrap();
    let eps = 1e-5;
    let gp = grad(f.clone())(&x + &(&v * eps)).unwrap();
    let gm = grad(f)(&x - &(&v * eps)).unwrap();
    let fd = (gp - gm) / (2.0 * eps);
    close(&hv, &fd, 1e-7);
}

#[test]
fn jacobians_agree() {
    let mut rng = Rng::new(2);
    let w = rng.array(&[2, 3], -1.0, 1.0);
    let f = move |x: Array| w.matmul(&x.tanh());
    let x = rng.array(&[3], -1.0, 1.0);
    let jf = jacfwd(f.clone())(x.clone()).unwrap();
    let jr = jacrev(f.clone())(x.clone()).unwrap();
    assert_eq!(jf.shape(), &[2, 3]);
    close(&jf, &jr, 1e-14);
    // Column k is the JVP along e_k.
    let e1 = Array::from_vec(vec![0.0f64, 1.0, 0.0], [3]);
    let (_, t) = jvp(f, &x, &e1).unwrap();
    close(&jf.slice(&[0, 1], &[2, 2]).reshape([2]), &t, 1e-15);
}

#[test]
fn empty_jacobians_keep_the_dtype() {
    // No input elements (forward mode has no directions) or no output
    // elements (reverse mode has none): the Jacobian is empty, in f64 here.
    let empty = Array::zeros([0], DType::F64);
    let jf = jacfwd(|x: Array| x.sum(..).broadcast_to([2]))(empty).unwrap();
    assert_eq!((jf.shape(), jf.dtype()), (&[2usize, 0][..], DType::F64));
    let x = Array::from_vec(vec![1.0f64, 2.0], [2]);
    let jr = jacrev(|x: Array| x.slice(&[0], &[0]))(x).unwrap();
    assert_eq!((jr.shape(), jr.dtype()), (&[0usize, 2][..], DType::F64));
}

#[test]
fn the_backward_program_has_no_dead_work() {
    let x = Array::from_vec(vec![1.0f32, 2.0, 3.0], [3]);
    // The gradient of sum(sin(x)) needs cos(x) only: no sin, no sum.
    let p = make_jaxpr(grad(|x: Array| x.sin().sum(..)), &x).unwrap();
    let names: Vec<&str> = p.eqns.iter().map(|e| e.prim.name()).collect();
    assert!(!names.contains(&"sin") && !names.contains(&"reduce_sum"), "{p}");
    assert!(names.contains(&"cos"), "{p}");
    // A function of two arguments whose second does not matter.
    let y = Array::zeros([2], DType::F32);
    let p = make_jaxpr(grad(|(x, _y): (Array, Array)| x.exp().sum(..)), &(x, y)).unwrap();
    let names: Vec<&str> = p.eqns.iter().map(|e| e.prim.name()).collect();
    // exp(x) times the broadcast seed for x; a zeros broadcast for y; nothing else.
    assert_eq!(names, vec!["exp", "broadcast_in_dim", "mul", "broadcast_in_dim"], "{p}");
}

#[test]
fn vjp_pullback_and_errors() {
    let x = Array::from_vec(vec![1.0f64, 2.0], [2]);
    let (y, pb) = vjp(|x: Array| (x.exp(), x.sum(..)), &x).unwrap();
    same(&y.0, &x.exp());
    let ct = pb.call(&(Array::from_vec(vec![1.0f64, 0.0], [2]), Array::scalar(2.0f64))).unwrap();
    close(&ct, &Array::from_vec(vec![1f64.exp() + 2.0, 2.0], [2]), 1e-15);
    let bad = pb.call(&Array::scalar(1.0f64)).unwrap_err();
    assert!(bad.to_string().contains("the cotangent has structure * but the outputs have (*, *)"), "{bad}");
    let bad = pb.call(&(Array::scalar(1.0f64), Array::scalar(2.0f64))).unwrap_err();
    assert!(bad.to_string().contains("the cotangent of output 0 is f64[] but the output is f64[2]"), "{bad}");
    let e = grad(|x: Array| x.exp())(x.clone()).unwrap_err();
    assert!(e.to_string().contains("grad needs a scalar float loss, but the function returned f64[2]"), "{e}");
    // Errors inside the differentiated function come back as errors.
    let e = grad(|x: Array| x.reshape([3]).sum(..))(x).unwrap_err();
    assert!(e.to_string().starts_with("reshape: cannot reshape f64[2]"), "{e}");
}

#[test]
fn grad_under_an_enclosing_trace_and_of_closures() {
    let x = Array::from_vec(vec![0.3f64, -0.7], [2]);
    let y = Array::from_vec(vec![2.0f64, 5.0], [2]);
    // grad of a closure over an outer tracer, all inside make_jaxpr.
    let f = |(x, y): (Array, Array)| grad(|x: Array| (&x * &y).sin().sum(..))(x);
    let p = make_jaxpr(f, &(x.clone(), y.clone())).unwrap();
    let got = arrayjit_interp::eval_program(&p, &[x.to_host(), y.to_host()]).unwrap();
    same(&Array::from_host(got[0].clone()), &(&y * (&x * &y).cos()));
    // And the gradient flows through the closed-over value when the outer function is differentiated.
    let h = grad(|y: Array| grad(|x: Array| (&x * &y).sin().sum(..))(x.clone()).unwrap().sum(..))(y.clone()).unwrap();
    let xy = &x * &y;
    let want = xy.cos() - &x * &y * xy.sin();
    close(&h, &want, 1e-14);
}

/// The PLN loss (−ELBO) and its closed-form gradient in B, M, S with Ω fixed.
#[test]
fn pln_elbo_gradient_matches_its_closed_form() {
    let mut rng = Rng::new(33);
    let (n, p, d) = (6, 4, 2);
    let y = Array::from_vec((0..n * p).map(|i| ((i * 7) % 5) as f64).collect::<Vec<_>>(), [n, p]);
    let o = rng.array(&[n, p], -0.5, 0.5);
    let x = rng.array(&[n, d], -1.0, 1.0);
    let b = rng.array(&[d, p], -0.3, 0.3);
    let m = rng.array(&[n, p], -0.5, 0.5);
    let s = rng.array(&[n, p], 0.5, 1.5);
    let omega = rng.spd(p) * 0.2;
    let loss = {
        let (y, o, x, omega) = (y.clone(), o.clone(), x.clone(), omega.clone());
        move |(b, m, s): (Array, Array, Array)| {
            let n = y.shape()[0] as f64;
            let s2 = &s * &s;
            let xb = x.matmul(&b);
            let a = (&o + &m + &xb + &s2 * 0.5).exp();
            let tr = ((m.t().matmul(&m) + s2.sum(0).diag()).matmul(&omega)).trace();
            let elbo = omega.logdet() * (n / 2.0) + (-&a + &y * (&o + &m + &xb) + s2.log() * 0.5).sum(..) - tr * 0.5;
            -elbo
        }
    };
    let (_, (db, dm, ds)) = value_and_grad(loss)((b.clone(), m.clone(), s.clone())).unwrap();
    let a = (&o + &m + x.matmul(&b) + &s * &s * 0.5).exp();
    close(&db, &x.t().matmul(&(&a - &y)), 1e-12);
    close(&dm, &(&a - &y + m.matmul(&omega)), 1e-12);
    close(&ds, &(&s * &a - 1.0 / &s + &s * omega.diag_part()), 1e-12);
}

#[test]
fn stop_gradient_blocks_differentiation() {
    let x = Array::from_vec(vec![1.0f64, 2.0], [2]);
    // d/dx [x · stop(x)] = stop(x) = x.
    let g = grad(|x: Array| (&x * x.stop_gradient()).sum(..))(x.clone()).unwrap();
    close(&g, &x, 0.0);
    let p = make_jaxpr(|x: Array| x.stop_gradient(), &x).unwrap();
    assert!(p.to_string().contains("stop_gradient"), "{p}");
    let g2 = grad(|x: Array| x.exp().stop_gradient().sum(..))(x).unwrap();
    close(&g2, &Array::zeros([2], DType::F64), 0.0);
}
