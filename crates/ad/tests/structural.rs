//! Derivatives of the shape primitives and reductions against finite differences.

mod common;
use arrayjit_trace::{concatenate, stack, Array};
use common::{check_grads, Rng};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    #[test]
    fn shape_ops(a in 1usize..4, b in 1usize..5, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = rng.array(&[a, b], -1.0, 1.0);
        let cases: Vec<(&str, common::Case)> = vec![
            ("broadcast", Box::new(move |xs: Vec<Array>| xs[0].broadcast_to([3, a, b]).sin())),
            ("broadcast size-1", Box::new(move |xs: Vec<Array>| xs[0].sum_keepdims(0).broadcast_to([2, a, b]).sin())),
            ("reshape", Box::new(move |xs: Vec<Array>| xs[0].reshape([b, a]).exp())),
            ("transpose", Box::new(|xs: Vec<Array>| xs[0].t() * xs[0].t())),
            ("expand+squeeze", Box::new(|xs: Vec<Array>| xs[0].expand_dims(&[0, 2]).sin().squeeze(&[0]))),
            ("slice", Box::new(move |xs: Vec<Array>| xs[0].slice_strided(&[0, b / 2], &[a, b], &[2, 1]).sin())),
            ("index_axis", Box::new(move |xs: Vec<Array>| xs[0].index_axis(1, b - 1).exp())),
            ("pad", Box::new(|xs: Vec<Array>| xs[0].pad(&[1, -1], &[2, 1], &[1, 0], 0.5).sin())),
            ("concatenate", Box::new(|xs: Vec<Array>| concatenate(&[xs[0].clone(), xs[0].exp()], 1).sin())),
            ("stack", Box::new(|xs: Vec<Array>| stack(&[xs[0].clone(), xs[0].square()], 0))),
            ("dynamic_slice", Box::new(move |xs: Vec<Array>| xs[0].dynamic_slice(&[Array::scalar(1i32), Array::scalar(0i32)], &[a.min(1), b]).exp())),
            ("dynamic_update_slice", Box::new(|xs: Vec<Array>| {
                let u = xs[0].slice(&[0, 0], &[1, 1]).exp();
                xs[0].dynamic_update_slice(&u, &[Array::scalar(0i32), Array::scalar(1i32)]).sin()
            })),
            ("diag_part+trace", Box::new(|xs: Vec<Array>| {
                let m = xs[0].matmul(&xs[0].t());
                m.diag_part() * m.trace()
            })),
        ];
        for (name, f) in cases {
            eprintln!("checking {name}");
            check_grads(&*f, std::slice::from_ref(&x), 2, &mut rng);
        }
    }

    #[test]
    fn reductions(a in 1usize..4, b in 1usize..4, seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = rng.array(&[a, b], -1.0, 1.0);
        let cases: Vec<(&str, common::Case)> = vec![
            ("sum all", Box::new(|xs: Vec<Array>| xs[0].sin().sum(..))),
            ("sum axis", Box::new(|xs: Vec<Array>| xs[0].sin().sum(0))),
            ("mean", Box::new(|xs: Vec<Array>| xs[0].exp().mean(1))),
            ("max", Box::new(|xs: Vec<Array>| xs[0].max(1))),
            ("min", Box::new(|xs: Vec<Array>| xs[0].min(..))),
            ("prod", Box::new(|xs: Vec<Array>| xs[0].prod(0))),
            ("prod all", Box::new(|xs: Vec<Array>| xs[0].prod(..))),
        ];
        for (name, f) in cases {
            eprintln!("checking {name}");
            check_grads(&*f, std::slice::from_ref(&x), 2, &mut rng);
        }
    }
}

#[test]
fn prod_with_zeros() {
    use arrayjit_ad::grad;
    let x = Array::from_vec(vec![2.0f64, 0.0, 3.0, 0.0, 0.0, 5.0], [2, 3]);
    // Row 0 has one zero: only its own entry has a nonzero derivative (2·3).
    // Row 1 has two zeros: every derivative is 0.
    let g = grad(|x: Array| x.prod(1).sum(..))(x).unwrap().to_vec::<f64>();
    assert_eq!(g, vec![0.0, 6.0, 0.0, 0.0, 0.0, 0.0]);
    let y = Array::from_vec(vec![2.0f64, 4.0], [2]);
    assert_eq!(grad(|x: Array| x.prod(..))(y).unwrap().to_vec::<f64>(), vec![4.0, 2.0]);
}

#[test]
fn empty_and_size_one_dimensions() {
    let mut rng = Rng::new(11);
    let x = rng.array(&[1, 3], -1.0, 1.0);
    let f = |xs: Vec<Array>| (&xs[0] * xs[0].sum_keepdims(1)).exp();
    check_grads(&f, &[x], 2, &mut rng);
    let e = Array::zeros([0, 3], arrayjit_trace::DType::F64);
    let g = arrayjit_ad::grad(|x: Array| x.exp().sum(..))(e).unwrap();
    assert_eq!(g.shape(), &[0, 3]);
}
