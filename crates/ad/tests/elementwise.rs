//! Derivatives of the elementwise primitives against finite differences.

mod common;
use arrayjit_ad::{grad, jvp, vjp};
use arrayjit_trace::{where_, Array, DType};
use common::{assert_same, check_grads, check_grads_with, Rng, Tol};
use proptest::prelude::*;

type Unary = fn(&Array) -> Array;
type Binary = fn(&Array, &Array) -> Array;

fn unaries() -> Vec<(&'static str, Unary, f64, f64)> {
    vec![
        ("neg", |x| -x, -2.0, 2.0),
        ("abs", |x| x.abs(), 0.2, 2.0),
        ("exp", |x| x.exp(), -2.0, 2.0),
        ("log", |x| x.log(), 0.2, 3.0),
        ("log1p", |x| x.log1p(), -0.5, 2.0),
        ("expm1", |x| x.expm1(), -2.0, 2.0),
        ("sqrt", |x| x.sqrt(), 0.2, 3.0),
        ("rsqrt", |x| x.rsqrt(), 0.2, 3.0),
        ("tanh", |x| x.tanh(), -2.0, 2.0),
        ("logistic", |x| x.logistic(), -3.0, 3.0),
        ("sin", |x| x.sin(), -3.0, 3.0),
        ("cos", |x| x.cos(), -3.0, 3.0),
        ("square", |x| x.square(), -2.0, 2.0),
        ("powi3", |x| x.powi(3), -2.0, 2.0),
        ("powi-2", |x| x.powi(-2), 0.5, 2.0),
        ("floor", |x| x.floor() * x, 0.1, 0.9),
        ("ceil", |x| x.ceil() * x, 0.1, 0.9),
        ("sign", |x| x.sign() * x, 0.1, 0.9),
    ]
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..4, 0..3)
}

proptest! {
    #![proptest_config(common::proptest_config(12))]

    #[test]
    fn unary_ops(s in shape(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        for (name, op, lo, hi) in unaries() {
            let x = rng.array(&s, lo, hi);
            let f = move |xs: Vec<Array>| op(&xs[0]);
            eprintln!("checking {name}");
            check_grads(&f, &[x], 2, &mut rng);
        }
    }

    #[test]
    fn binary_ops_with_broadcasting(a in 1usize..4, b in 1usize..4, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        // Shapes that broadcast: full, row, column, scalar.
        let shapes: [&[usize]; 4] = [&[a, b], &[b], &[a, 1], &[]];
        for sy in shapes {
            let x = rng.array(&[a, b], 0.5, 2.0);
            let y = rng.array(sy, 0.5, 2.0);
            let ops: Vec<(&str, Binary)> = vec![
                ("add", |x, y| x + y),
                ("sub", |x, y| x - y),
                ("mul", |x, y| x * y),
                ("div", |x, y| x / y),
                ("pow", |x, y| x.pow(y)),
                ("max", |x, y| x.maximum(y)),
                ("min", |x, y| x.minimum(y)),
                ("rem", |x, y| x % (y * 3.0)),
            ];
            for (name, op) in ops {
                eprintln!("checking {name} with {sy:?}");
                let f = move |xs: Vec<Array>| op(&xs[0], &xs[1]);
                check_grads(&f, &[x.clone(), y.clone()], 2, &mut rng);
                let g = move |xs: Vec<Array>| op(&xs[1], &xs[0]);
                check_grads(&g, &[x.clone(), y.clone()], 1, &mut rng);
            }
        }
    }
}

#[test]
fn select_and_comparisons() {
    let mut rng = Rng::new(7);
    let x = rng.array(&[3, 4], -1.0, 1.0);
    let y = rng.array(&[4], -1.0, 1.0);
    let f = |xs: Vec<Array>| where_(xs[0].gt(&xs[1]), xs[0].exp(), xs[1].sin() * 2.0);
    check_grads(&f, &[x.clone(), y.clone()], 2, &mut rng);
    let g = |xs: Vec<Array>| where_(xs[0].lt(0.0), 0.0, &xs[0]) * &xs[1];
    check_grads(&g, &[x, y], 2, &mut rng);
}

/// Points at least 0.1 from every integer, so rounding is locally constant.
fn off_integers() -> Array {
    Array::from_vec(vec![-2.6f64, -1.3, -0.2, 0.4, 1.5, 2.9], [6])
}

#[test]
fn floor_and_ceil_have_zero_derivatives() {
    let mut rng = Rng::new(41);
    let x = off_integers();
    let ops: [(&str, Unary); 2] = [("floor", |x| x.floor()), ("ceil", |x| x.ceil())];
    for (name, op) in ops {
        let zeros = vec![0.0; 6];
        assert_eq!(grad(|x: Array| op(&x).sum(..))(x.clone()).unwrap().to_vec::<f64>(), zeros, "{name}");
        let (_, t) = jvp(|x: Array| op(&x), &x, &Array::ones([6], DType::F64)).unwrap();
        assert_eq!(t.to_vec::<f64>(), zeros, "{name}");
        // d/dx [round(x)·x] is round(x) exactly: the rounding contributes nothing.
        let g = grad(|x: Array| (op(&x) * &x).sum(..))(x.clone()).unwrap();
        assert_eq!(g.to_vec::<f64>(), op(&x).to_vec::<f64>(), "{name}");
        let f = move |xs: Vec<Array>| op(&xs[0]) * xs[0].sin();
        check_grads(&f, std::slice::from_ref(&x), 2, &mut rng);
    }
}

#[test]
fn is_finite_drives_a_select() {
    let mut rng = Rng::new(43);
    // log is NaN below zero; there the other branch is taken.
    let x = Array::from_vec(vec![-1.5f64, -0.3, 0.4, 1.2, 2.5], [5]);
    let f = |xs: Vec<Array>| where_(xs[0].log().is_finite(), xs[0].sin(), &xs[0] * 3.0);
    check_grads(&f, std::slice::from_ref(&x), 2, &mut rng);
    let g = grad(|x: Array| f(vec![x]).sum(..))(x.clone()).unwrap().to_vec::<f64>();
    let want: Vec<f64> = x.to_vec::<f64>().iter().map(|v| if *v > 0.0 { v.cos() } else { 3.0 }).collect();
    assert_same("grad through is_finite", &g, &want);
    // A boolean output has no tangent and takes no cotangent.
    let (_, t) = jvp(|x: Array| x.log().is_finite(), &x, &Array::ones([5], DType::F64)).unwrap();
    assert_eq!(t.to_vec::<bool>(), vec![false; 5]);
    let (_, pb) = vjp(|x: Array| (x.log().is_finite(), x.exp()), &x).unwrap();
    let ct = pb.call(&(Array::from_vec(vec![true; 5], [5]), Array::ones([5], DType::F64))).unwrap();
    assert_same("pullback past a bool output", &ct.to_f64_vec(), &x.exp().to_f64_vec());
}

#[test]
fn comparisons_and_logic_drive_a_select() {
    let mut rng = Rng::new(47);
    let x = rng.array(&[4, 3], -1.0, 1.0);
    let y = rng.array(&[3], -1.0, 1.0);
    // Every comparison and logical operation feeds a predicate; only the
    // selected branches carry derivatives.
    let f = |xs: Vec<Array>| {
        let (x, y) = (&xs[0], &xs[1]);
        let a = x.gt(y).and(x.le(0.5));
        let b = x.lt(-0.5).or(y.ge(0.0).not());
        let c = x.floor().eq(0.0).and(x.ne(y));
        where_(a, x.exp() * y, where_(b, y.sin(), where_(c, x * x, x + y)))
    };
    check_grads(&f, &[x, y], 2, &mut rng);
    // On fixed points, against the derivative worked out by hand.
    let x = Array::from_vec(vec![-1.5f64, -0.5, 0.5, 1.5, 2.5], [5]);
    let h = |x: Array| {
        let inside = x.gt(0.0).and(x.lt(1.0));
        let middle = x.ge(2.0).or(x.le(-1.0)).not();
        where_(inside, x.square(), where_(middle, &x * 3.0, &x)).sum(..)
    };
    assert_eq!(grad(h)(x.clone()).unwrap().to_vec::<f64>(), vec![1.0, 3.0, 1.0, 3.0, 1.0]);
    // A comparison's output is boolean: no tangent, and its cotangent is ignored.
    let (_, t) = jvp(|x: Array| x.gt(0.0).or(x.lt(-1.0)), &x, &Array::ones([5], DType::F64)).unwrap();
    assert_eq!(t.to_vec::<bool>(), vec![false; 5]);
    let (_, pb) = vjp(|x: Array| (x.ne(0.5).and(x.eq(&x)), x.square()), &x).unwrap();
    let ct = pb.call(&(Array::from_vec(vec![true; 5], [5]), Array::ones([5], DType::F64))).unwrap();
    assert_eq!(ct.to_vec::<f64>(), vec![-3.0, -1.0, 1.0, 3.0, 5.0]);
}

#[test]
fn pow_at_zero_has_finite_derivatives() {
    let x = Array::from_vec(vec![0.0f64, 0.0, 2.0], [3]);
    let y = Array::from_vec(vec![2.0f64, 0.0, 3.0], [3]);
    // d/dx x^y at x = 0: 0 for y = 2, 0 (not NaN) for y = 0.
    let gx = grad(|x: Array| x.pow(&y).sum(..))(x.clone()).unwrap().to_vec::<f64>();
    assert_eq!(gx, vec![0.0, 0.0, 12.0]);
    // d/dy x^y at x = 0 is 0 (log 0 is replaced), never NaN.
    let gy = grad(|y: Array| x.pow(&y).sum(..))(y.clone()).unwrap().to_vec::<f64>();
    assert_eq!(gy[..2], [0.0, 0.0]);
    assert!((gy[2] - 8.0 * 2f64.ln()).abs() < 1e-12);
}

#[test]
fn max_ties_share_the_tangent() {
    let x = Array::from_vec(vec![1.0f64, 2.0], [2]);
    let g = grad(|x: Array| x.maximum(1.0).sum(..))(x).unwrap().to_vec::<f64>();
    assert_eq!(g, vec![0.5, 1.0]);
}

#[test]
fn convert_between_floats() {
    let mut rng = Rng::new(3);
    let x = rng.array(&[5], -1.0, 1.0);
    let f = |xs: Vec<Array>| (xs[0].astype(DType::F32).exp()).astype(DType::F64);
    // f32 rounding limits the accuracy; compare the gradient with the f64 one loosely.
    let g32 = grad(|xs: Vec<Array>| f(xs).sum(..))(vec![x.clone()]).unwrap();
    let g64 = grad(|xs: Vec<Array>| xs[0].exp().sum(..))(vec![x]).unwrap();
    for (a, b) in g32[0].to_f64_vec().iter().zip(g64[0].to_f64_vec()) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn convert_to_f32_and_back_against_finite_differences() {
    let mut rng = Rng::new(53);
    let x = rng.array(&[4], -1.0, 1.0);
    let y = rng.array(&[4], 0.5, 1.5);
    let f = |xs: Vec<Array>| (xs[0].astype(DType::F32).exp() * xs[1].astype(DType::F32)).astype(DType::F64);
    // The f32 stretch rounds to ~6e-8: a larger step keeps that rounding small
    // against the step, and the tolerances match what is left.
    let tol = Tol { eps: 1e-3, first: 1e-3, second: 1e-3, modes: 1e-5 };
    check_grads_with(&f, &[x, y], 2, &mut rng, tol);
}

#[test]
fn convert_from_f32_to_f64() {
    let x = Array::from_vec(vec![-0.75f32, 0.25, 1.5], [3]);
    let g = grad(|x: Array| x.astype(DType::F64).exp().sum(..))(x.clone()).unwrap();
    // The cotangent comes back in the input's type.
    assert_eq!(g.dtype(), DType::F32);
    for (got, v) in g.to_f64_vec().iter().zip(x.to_f64_vec()) {
        assert!((got - v.exp()).abs() <= 1e-7 * v.exp(), "{got} vs {}", v.exp());
    }
    let (y, t) = jvp(|x: Array| x.astype(DType::F64).sin(), &x, &Array::ones([3], DType::F32)).unwrap();
    assert_eq!((y.dtype(), t.dtype()), (DType::F64, DType::F64));
    assert_same("jvp of f32 -> f64", &t.to_f64_vec(), &x.astype(DType::F64).cos().to_f64_vec());
}

#[test]
fn convert_to_integers_has_no_cotangent() {
    let mut rng = Rng::new(59);
    let x = off_integers();
    let trunc: Vec<f64> = x.to_vec::<f64>().iter().map(|v| (*v as i32) as f64).collect();
    // d/dx [x · i32(x)] = i32(x): the conversion contributes nothing.
    let g = grad(|x: Array| (&x * x.astype(DType::I32).astype(DType::F64)).sum(..))(x.clone()).unwrap();
    assert_eq!(g.to_vec::<f64>(), trunc);
    let f = |xs: Vec<Array>| xs[0].sin() * xs[0].astype(DType::I32).astype(DType::F64);
    check_grads(&f, std::slice::from_ref(&x), 2, &mut rng);
    // An integer output: a zero tangent, and its cotangent is ignored.
    let (i, t) = jvp(|x: Array| x.astype(DType::I32), &x, &Array::ones([6], DType::F64)).unwrap();
    assert_eq!(i.to_vec::<i32>(), trunc.iter().map(|v| *v as i32).collect::<Vec<_>>());
    assert_eq!(t.dtype(), DType::I32);
    assert_eq!(t.to_vec::<i32>(), vec![0; 6]);
    let (_, pb) = vjp(|x: Array| (x.astype(DType::I32), x.exp()), &x).unwrap();
    let ct = pb.call(&(Array::from_vec(vec![7i32; 6], [6]), Array::ones([6], DType::F64))).unwrap();
    assert_same("pullback past an integer output", &ct.to_f64_vec(), &x.exp().to_f64_vec());
}

#[test]
fn integer_inputs_get_zero_gradients() {
    let x = Array::from_vec(vec![1.0f64, 2.0], [2]);
    let k = Array::from_vec(vec![3i32, 4], [2]);
    let (gx, gk) = grad(|(x, k): (Array, Array)| (&x * k.astype(DType::F64)).sum(..))((x, k)).unwrap();
    assert_eq!(gx.to_vec::<f64>(), vec![3.0, 4.0]);
    assert_eq!(gk.to_vec::<i32>(), vec![0, 0]);
}
