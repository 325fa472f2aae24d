//! Functions with derivative rules of their own: evaluation runs the
//! function, forward and reverse mode run the rule, higher derivatives
//! differentiate the rule, and a rule that does not fit is an error.

mod common;
use arrayjit_ad::{grad, jvp, value_and_grad};
use arrayjit_ir::Program;
use arrayjit_trace::{custom_jvp, make_jaxpr, Array, DType, Result};
use common::{assert_same, check_grads, three_steps, Rng};

/// `x³` whose derivative is declared to be `2`: whichever mode differentiates
/// it, the result shows which of the two ran.
fn cube_with_slope_two(x: Array) -> Result<Array> {
    custom_jvp(|x: Array| &x * &x * &x, |x: Array, t: Array| (&x * &x * &x, t * 2.0), x)
}

fn log1pexp(x: Array) -> Result<Array> {
    custom_jvp(|x: Array| x.exp().log1p(), |x: Array, t: Array| (x.exp().log1p(), t * x.logistic()), x)
}

fn has(p: &Program, name: &str) -> bool {
    p.eqns.iter().any(|e| e.prim.name() == name)
}

#[test]
fn values_come_from_the_function_and_derivatives_from_the_rule() {
    let x = Array::from_vec(vec![-1.5f64, 0.5, 2.0], [3]);
    let y = cube_with_slope_two(x.clone()).unwrap();
    assert_same("value", &y.to_f64_vec(), &[-3.375, 0.125, 8.0]);
    let g = grad(|x: Array| cube_with_slope_two(x).map(|y| y.sum(..)))(x.clone()).unwrap();
    assert_eq!(g.to_f64_vec(), vec![2.0; 3]);
    let (v, g2) = value_and_grad(|x: Array| cube_with_slope_two(x).map(|y| y.sum(..)))(x.clone()).unwrap();
    assert_same("value_and_grad's value", &v.to_f64_vec(), &[4.75]);
    assert_eq!(g2.to_f64_vec(), vec![2.0; 3]);
    let (out, t) = jvp(cube_with_slope_two, &x, &Array::from_vec(vec![1.0f64, -1.0, 0.5], [3])).unwrap();
    assert_same("jvp's value", &out.to_f64_vec(), &y.to_f64_vec());
    assert_eq!(t.to_f64_vec(), vec![2.0, -2.0, 1.0]);
    // The traced program holds the function with its rule; its gradient
    // program holds the rule's equations instead.
    let p = make_jaxpr(cube_with_slope_two, &x).unwrap();
    assert!(has(&p, "custom_jvp"), "{p}");
    let gp = make_jaxpr(grad(|x: Array| cube_with_slope_two(x).map(|y| y.sum(..))), &x).unwrap();
    assert!(!has(&gp, "custom_jvp"), "{gp}");
}

#[test]
fn a_stable_rule_where_the_formula_overflows() {
    let x = Array::from_vec(vec![100.0f32, 0.0, -100.0], [3]);
    let naive = grad(|x: Array| x.exp().log1p().sum(..))(x.clone()).unwrap().to_vec::<f32>();
    assert!(naive[0].is_nan(), "eˣ/(1 + eˣ) at 100 in f32 is ∞/∞: {naive:?}");
    let g = grad(|x: Array| log1pexp(x).map(|y| y.sum(..)))(x).unwrap().to_vec::<f32>();
    assert_eq!(g[0], 1.0);
    assert_eq!(g[1], 0.5);
    assert!(g[2] >= 0.0 && g[2] < 1e-40, "{g:?}");
}

/// `sin(x)·y·w` with its true derivative as the rule, `w` a constant both
/// close over: first and second derivatives (the latter differentiate the
/// rule) against finite differences, in both modes.
#[test]
fn a_true_rule_matches_finite_differences_to_second_order() {
    let mut rng = Rng::new(41);
    let w = rng.array(&[4], 0.5, 1.5);
    let f = |xs: Vec<Array>| -> Array {
        let (w1, w2) = (w.clone(), w.clone());
        custom_jvp(
            move |(x, y): (Array, Array)| x.sin() * &y * &w1,
            move |(x, y): (Array, Array), (dx, dy): (Array, Array)| {
                let out = x.sin() * &y * &w2;
                let t = (x.cos() * &y * dx + x.sin() * dy) * &w2;
                (out, t)
            },
            (xs[0].clone(), xs[1].clone()),
        )
        .unwrap()
    };
    let (x, y) = (rng.array(&[4], -2.0, 2.0), rng.array(&[4], -1.0, 1.0));
    check_grads(&f, &[x, y], 2, &mut rng);
}

#[test]
fn the_rule_is_used_inside_a_scan() {
    // Three steps of c ← c³ with declared slope 2: d c₃ / d c₀ = 2³.
    let f = |c0: Array| three_steps(cube_with_slope_two, c0);
    let g = grad(f)(Array::scalar(0.9f64)).unwrap();
    assert_eq!(g.to_f64_vec(), vec![8.0]);
    assert_same("value", &f(Array::scalar(0.9f64)).unwrap().to_f64_vec(), &[0.9f64.powi(27)]);
}

#[test]
fn integer_arguments_get_zero_tangents() {
    let n = Array::from_vec(vec![3i32, -2], [2]);
    let f = |x: Array| -> Result<Array> {
        let y = custom_jvp(
            |(x, n): (Array, Array)| &x * n.astype(DType::F64),
            |(x, n): (Array, Array), (dx, dn): (Array, Array)| {
                assert_eq!(dn.dtype(), DType::I32);
                let nf = n.astype(DType::F64);
                (&x * &nf, dx * &nf + dn.astype(DType::F64))
            },
            (x, n.clone()),
        )?;
        Ok(y.sum(..))
    };
    let g = grad(f)(Array::from_vec(vec![1.0f64, 1.0], [2])).unwrap();
    assert_eq!(g.to_f64_vec(), vec![3.0, -2.0]);
}

#[test]
fn rules_that_do_not_fit_are_errors_naming_the_leaf() {
    let x = Array::from_vec(vec![1.0f32, 2.0], [2]);
    // A tangent of another dtype.
    let e =
        custom_jvp(|x: Array| x.sin(), |x: Array, t: Array| (x.sin(), t.astype(DType::F64)), x.clone()).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("custom_jvp") && m.contains("tangent") && m.contains("f64[2]") && m.contains("f32[2]"), "{m}");
    assert!(m.contains("custom_jvp.rs"), "the error names the caller's line: {m}");
    // Outputs of another structure (the types agree, the lengths do not).
    let e = custom_jvp(|x: Array| vec![x.sin(), x.cos()], |x: Array, t: Array| (vec![x.sin()], vec![t]), x.clone())
        .unwrap_err();
    assert!(e.to_string().contains("(outputs, tangents)"), "{e}");
    // A rule over a value being differentiated that it closed over.
    let g = grad(|s: Array| -> Result<Array> {
        let y = custom_jvp(|x: Array| &x * &s, |x: Array, t: Array| (&x * &s, t * &s), x.clone())?;
        Ok(y.sum(..))
    })(Array::scalar(2.0f32));
    let m = g.unwrap_err().to_string();
    assert!(m.contains("custom_jvp") && m.contains("closes over") && m.contains("argument"), "{m}");
}

/// A rule may apply functions with rules of their own to its tangents:
/// reverse mode then transposes them as the functions they compute.
#[test]
fn rules_that_apply_custom_functions_to_tangents() {
    // Linear in x: doubling with a rule (custom_jvp), and negation with reverse-mode rules (custom_vjp).
    let double = |x: Array| custom_jvp(|x: Array| &x * 2.0, |x: Array, t: Array| (&x * 2.0, t * 2.0), x);
    let negate = |x: Array| arrayjit_trace::custom_vjp(|x: Array| -x, |x: Array| (-x, ()), |(): (), g: Array| -g, x);
    // sin with the declared derivative −2·cos.
    let f = |x: Array| -> Result<Array> {
        custom_jvp(
            |x: Array| x.sin(),
            |x: Array, t: Array| -> Result<(Array, Array)> { Ok((x.sin(), negate(double(x.cos() * t)?)?)) },
            x,
        )
    };
    let x = Array::from_vec(vec![0.3f64, -1.1, 2.0], [3]);
    let want: Vec<f64> = x.to_f64_vec().iter().map(|v| -2.0 * v.cos()).collect();
    let g = grad(|x: Array| f(x).map(|y| y.sum(..)))(x.clone()).unwrap();
    assert_same("grad", &g.to_f64_vec(), &want);
}
