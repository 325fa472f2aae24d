//! Derivatives of the elementwise primitives against finite differences.

mod common;
use arrayjit_trace::{where_, Array};
use common::{check_grads, Rng};
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
        ("sign", |x| x.sign() * x, 0.1, 0.9),
    ]
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..4, 0..3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

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

#[test]
fn pow_at_zero_has_finite_derivatives() {
    use arrayjit_ad::grad;
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
    use arrayjit_ad::grad;
    let x = Array::from_vec(vec![1.0f64, 2.0], [2]);
    let g = grad(|x: Array| x.maximum(1.0).sum(..))(x).unwrap().to_vec::<f64>();
    assert_eq!(g, vec![0.5, 1.0]);
}

#[test]
fn convert_between_floats() {
    let mut rng = Rng::new(3);
    let x = rng.array(&[5], -1.0, 1.0);
    let f = |xs: Vec<Array>| (xs[0].astype(arrayjit_trace::DType::F32).exp()).astype(arrayjit_trace::DType::F64);
    // f32 rounding limits the accuracy; compare the gradient with the f64 one loosely.
    let g32 = arrayjit_ad::grad(|xs: Vec<Array>| f(xs).sum(..))(vec![x.clone()]).unwrap();
    let g64 = arrayjit_ad::grad(|xs: Vec<Array>| xs[0].exp().sum(..))(vec![x]).unwrap();
    for (a, b) in g32[0].to_f64_vec().iter().zip(g64[0].to_f64_vec()) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn integer_inputs_get_zero_gradients() {
    let x = Array::from_vec(vec![1.0f64, 2.0], [2]);
    let k = Array::from_vec(vec![3i32, 4], [2]);
    let (gx, gk) =
        arrayjit_ad::grad(|(x, k): (Array, Array)| (&x * k.astype(arrayjit_trace::DType::F64)).sum(..))((x, k))
            .unwrap();
    assert_eq!(gx.to_vec::<f64>(), vec![3.0, 4.0]);
    assert_eq!(gk.to_vec::<i32>(), vec![0, 0]);
}
