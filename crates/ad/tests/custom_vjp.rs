//! Functions with reverse-mode rules of their own: evaluation runs the
//! function, `grad` and `vjp` run the forward and backward rules, higher
//! derivatives differentiate them, forward mode is refused, and rules that
//! do not fit are errors.

mod common;
use arrayjit_ad::{grad, jvp, vjp};
use arrayjit_ir::Program;
use arrayjit_trace::{custom_vjp, make_jaxpr, scan_with, Array, DType, Result, ScanOptions};
use common::{assert_same, three_steps, Rng};

/// `x³` whose backward pass multiplies by 2 (the residual is unused).
fn cube_with_slope_two(x: Array) -> Result<Array> {
    custom_vjp(|x: Array| &x * &x * &x, |x: Array| (&x * &x * &x, x), |_x: Array, g: Array| g * 2.0, x)
}

/// `sin(x)·y` with its true gradient, from residuals `fwd` saves.
fn sin_times(xs: Vec<Array>) -> Result<Array> {
    custom_vjp(
        |(x, y): (Array, Array)| x.sin() * &y,
        |(x, y): (Array, Array)| (x.sin() * &y, (x.cos(), x.sin(), y)),
        |(c, s, y): (Array, Array, Array), g: Array| (c * &y * &g, s * g),
        (xs[0].clone(), xs[1].clone()),
    )
}

fn has(p: &Program, name: &str) -> bool {
    p.eqns.iter().any(|e| e.prim.name() == name)
}

/// Central differences of `f`'s sum along each coordinate of `x` (f64).
fn numeric_grad(f: &dyn Fn(Array) -> Array, x: &Array) -> Vec<f64> {
    let v = x.to_f64_vec();
    let eps = 1e-6;
    (0..v.len())
        .map(|i| {
            let at = |d: f64| {
                let mut w = v.clone();
                w[i] += d;
                f(Array::from_vec(w, x.shape().to_vec())).sum(..).to_f64_vec()[0]
            };
            (at(eps) - at(-eps)) / (2.0 * eps)
        })
        .collect()
}

fn near(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}: {got:?} vs {want:?}");
    }
}

#[test]
fn values_come_from_the_function_and_gradients_from_the_rules() {
    let x = Array::from_vec(vec![-1.5f64, 0.5, 2.0], [3]);
    let y = cube_with_slope_two(x.clone()).unwrap();
    assert_same("value", &y.to_f64_vec(), &[-3.375, 0.125, 8.0]);
    let g = grad(|x: Array| cube_with_slope_two(x).map(|y| y.sum(..)))(x.clone()).unwrap();
    assert_eq!(g.to_f64_vec(), vec![2.0; 3]);
    let (out, pb) = vjp(cube_with_slope_two, &x).unwrap();
    assert_same("vjp's value", &out.to_f64_vec(), &y.to_f64_vec());
    let ct = pb.call(&Array::from_vec(vec![1.0f64, -1.0, 0.5], [3])).unwrap();
    assert_eq!(ct.to_f64_vec(), vec![2.0, -2.0, 1.0]);
    let p = make_jaxpr(cube_with_slope_two, &x).unwrap();
    assert!(has(&p, "custom_vjp"), "{p}");
    let gp = make_jaxpr(grad(|x: Array| cube_with_slope_two(x).map(|y| y.sum(..))), &x).unwrap();
    assert!(!has(&gp, "custom_vjp") && !has(&gp, "custom_vjp_tangent"), "{gp}");
}

#[test]
fn a_clipped_gradient() {
    let clip = |x: Array| -> Result<Array> {
        custom_vjp(|x: Array| x, |x: Array| (x, ()), |(): (), g: Array| g.maximum(-1.0).minimum(1.0), x)
    };
    let x = Array::from_vec(vec![1.0f64, 2.0, 3.0], [3]);
    let w = Array::from_vec(vec![0.5f64, -4.0, 10.0], [3]);
    let g = grad(|x: Array| clip(x).map(|y| (y * &w).sum(..)))(x.clone()).unwrap();
    assert_eq!(g.to_f64_vec(), vec![0.5, -1.0, 1.0]);
    // The value passes through unchanged.
    assert_eq!(clip(x.clone()).unwrap().to_f64_vec(), x.to_f64_vec());
}

#[test]
fn a_true_rule_matches_finite_differences_to_second_order() {
    let mut rng = Rng::new(43);
    let (x, y) = (rng.array(&[4], -2.0, 2.0), rng.array(&[4], -1.0, 1.0));
    let c = rng.array(&[4], -1.0, 1.0);
    // First order, in each argument.
    let g = grad(|xs: Vec<Array>| sin_times(xs).map(|v| (v * &c).sum(..)))(vec![x.clone(), y.clone()]).unwrap();
    let yc = y.clone();
    near("d/dx", &g[0].to_f64_vec(), &numeric_grad(&|x| sin_times(vec![x, yc.clone()]).unwrap() * &c, &x), 1e-7);
    let xc = x.clone();
    near("d/dy", &g[1].to_f64_vec(), &numeric_grad(&|y| sin_times(vec![xc.clone(), y]).unwrap() * &c, &y), 1e-7);
    // Second order: the gradient of Σ d/dx, which differentiates fwd's residuals through bwd.
    let dx = |x: Array, y: Array| -> Array {
        grad(|xs: Vec<Array>| sin_times(xs).map(|v| (v * &c).sum(..)))(vec![x, y]).unwrap().remove(0)
    };
    let h = grad(|xs: Vec<Array>| -> Result<Array> { Ok(dx(xs[0].clone(), xs[1].clone()).sum(..)) })(vec![
        x.clone(),
        y.clone(),
    ])
    .unwrap();
    let yc = y.clone();
    near("d²/dx²", &h[0].to_f64_vec(), &numeric_grad(&|x| dx(x, yc.clone()), &x), 1e-6);
    near("d²/dxdy", &h[1].to_f64_vec(), &numeric_grad(&|y| dx(x.clone(), y), &y), 1e-6);
}

#[test]
fn the_rules_are_used_inside_a_scan() {
    let f = |c0: Array| three_steps(cube_with_slope_two, c0);
    assert_eq!(grad(f)(Array::scalar(0.9f64)).unwrap().to_f64_vec(), vec![8.0]);
}

#[test]
fn integer_arguments_get_no_cotangent() {
    let n = Array::from_vec(vec![3i32, -2], [2]);
    let f = |x: Array| -> Result<Array> {
        let y = custom_vjp(
            |(x, n): (Array, Array)| &x * n.astype(DType::F64),
            |(x, n): (Array, Array)| (&x * n.astype(DType::F64), n),
            |n: Array, g: Array| (g * n.astype(DType::F64), Array::from_vec(vec![7i32, 7], [2])),
            (x, n.clone()),
        )?;
        Ok(y.sum(..))
    };
    assert_eq!(grad(f)(Array::from_vec(vec![1.0f64, 1.0], [2])).unwrap().to_f64_vec(), vec![3.0, -2.0]);
}

#[test]
fn forward_mode_and_rules_that_do_not_fit_are_errors() {
    let x = Array::from_vec(vec![1.0f32, 2.0], [2]);
    let e = jvp(cube_with_slope_two, &x, &x).unwrap_err().to_string();
    assert!(e.contains("forward-mode") && e.contains("custom_jvp"), "{e}");
    assert!(e.contains("custom_vjp.rs"), "the error names the caller's line: {e}");
    // Unless no tangent of it is used.
    let (y, t) = jvp(|x: Array| cube_with_slope_two(x).map(|y| y.floor()), &x, &x).unwrap();
    assert_eq!((y.to_vec::<f32>(), t.to_vec::<f32>()), (vec![1.0, 8.0], vec![0.0, 0.0]));
    // bwd's cotangent of another dtype.
    let e =
        custom_vjp(|x: Array| x.sin(), |x: Array| (x.sin(), ()), |(): (), g: Array| g.astype(DType::F64), x.clone())
            .unwrap_err()
            .to_string();
    assert!(e.contains("custom_vjp") && e.contains("cotangent") && e.contains("f64[2]"), "{e}");
    // fwd's outputs of another type than the function's.
    let e = custom_vjp(|x: Array| x.sin(), |x: Array| (x.astype(DType::F64), ()), |(): (), g: Array| g, x.clone())
        .unwrap_err()
        .to_string();
    assert!(e.contains("fwd's output") && e.contains("f64[2]"), "{e}");
    // bwd closing over a traced value.
    let g = grad(|s: Array| -> Result<Array> {
        let y = custom_vjp(|x: Array| &x * &s, |x: Array| (&x * &s, ()), |(): (), g: Array| g * &s, x.clone())?;
        Ok(y.sum(..))
    })(Array::scalar(2.0f32));
    let m = g.unwrap_err().to_string();
    assert!(m.contains("bwd closes over") && m.contains("residual"), "{m}");
    // fwd closing over a value being differentiated.
    let g = grad(|s: Array| -> Result<Array> {
        let s2 = s.clone();
        let y = custom_vjp(|x: Array| &x * &s, move |x: Array| (&x * &s2, ()), |(): (), g: Array| g, x.clone())?;
        Ok(y.sum(..))
    })(Array::scalar(2.0f32));
    let m = g.unwrap_err().to_string();
    assert!(m.contains("closes over a value that is being differentiated"), "{m}");
}

/// The identity, whose gradient is clipped to [-1, 1].
fn clip_gradient(x: Array) -> Result<Array> {
    custom_vjp(|x: Array| x, |x: Array| (x, ()), |(): (), g: Array| g.maximum(-1.0).minimum(1.0), x)
}

/// The identity with a zero derivative (a stop-gradient as a rule).
fn zero_slope(x: Array) -> Result<Array> {
    arrayjit_trace::custom_jvp(|x: Array| x, |x: Array, t: Array| (x, t * 0.0), x)
}

/// A `custom_vjp` fed only tangents that do not depend on what is
/// differentiated (zero, though not symbolically): its outputs' tangents are
/// zero, at the top level, in a loop and behind a conditional, through
/// `grad` and `vjp` alike.
#[test]
fn tangents_that_are_zero_without_being_symbolic() {
    let x = Array::from_vec(vec![1.0f64, -2.0, 3.0], [3]);
    let top = |x: Array| -> Result<Array> { Ok((clip_gradient(zero_slope(x.clone())?)? * 5.0 + &x).sum(..)) };
    assert_eq!(grad(top)(x.clone()).unwrap().to_f64_vec(), vec![1.0; 3]);
    let (_, pb) = vjp(top, &x).unwrap();
    assert_eq!(pb.call(&Array::scalar(1.0f64)).unwrap().to_f64_vec(), vec![1.0; 3]);

    let looped = |x: Array| -> Result<Array> {
        let (c, _ys): (Array, Array) = scan_with(
            |c: Array, (): ()| -> Result<(Array, Array)> {
                let d = clip_gradient(zero_slope(c.clone())?)?;
                Ok((&c * 2.0 + d.sum(..), d))
            },
            x,
            (),
            ScanOptions::default().length(2),
        )?;
        Ok(c.sum(..))
    };
    // c₁ = 2c₀ + Σ c₀ (no derivative through the sum), c₂ = 2c₁ + Σ c₁: d Σc₂ / dc₀ = 4.
    assert_eq!(grad(looped)(x.clone()).unwrap().to_f64_vec(), vec![4.0; 3]);
    let (_, pb) = vjp(looped, &x).unwrap();
    assert_eq!(pb.call(&Array::scalar(1.0f64)).unwrap().to_f64_vec(), vec![4.0; 3]);

    let branched = |x: Array| -> Result<Array> {
        let p = x.sum(..).gt(0.0);
        // Neither branch's output depends on x: a tangent of zeros, known.
        let k = arrayjit_trace::cond(&p, |x: Array| x.zeros_like() + 1.0, |x: Array| x.zeros_like() - 1.0, x.clone())?;
        Ok((clip_gradient(k)? * 3.0 + &x * 2.0).sum(..))
    };
    assert_eq!(grad(branched)(x.clone()).unwrap().to_f64_vec(), vec![2.0; 3]);
    let (_, pb) = vjp(branched, &x).unwrap();
    assert_eq!(pb.call(&Array::scalar(1.0f64)).unwrap().to_f64_vec(), vec![2.0; 3]);
}
