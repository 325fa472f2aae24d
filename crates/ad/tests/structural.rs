//! Derivatives of the shape primitives and reductions against finite differences.

mod common;
use arrayjit_ad::{grad, hvp, jvp, vjp};
use arrayjit_trace::{concatenate, make_jaxpr, stack, Array, DType};
use common::{assert_same, check_grads, Rng};
use proptest::prelude::*;

proptest! {
    #![proptest_config(common::proptest_config(10))]

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
    let x = Array::from_vec(vec![2.0f64, 0.0, 3.0, 0.0, 0.0, 5.0], [2, 3]);
    // Row 0 has one zero: only its own entry has a nonzero derivative (2·3).
    // Row 1 has two zeros: every derivative is 0.
    let g = grad(|x: Array| x.prod(1).sum(..))(x).unwrap().to_vec::<f64>();
    assert_eq!(g, vec![0.0, 6.0, 0.0, 0.0, 0.0, 0.0]);
    let y = Array::from_vec(vec![2.0f64, 4.0], [2]);
    assert_eq!(grad(|x: Array| x.prod(..))(y).unwrap().to_vec::<f64>(), vec![4.0, 2.0]);
}

/// `Πₖ xₖ` over `k ∉ skip`, in the order `prod` multiplies them.
fn prod_except(x: &[f64], skip: &[usize]) -> f64 {
    x.iter().enumerate().filter(|(k, _)| !skip.contains(k)).map(|(_, v)| v).product()
}

/// Second derivatives of `prod` are where a rule that special-cases zeros goes
/// wrong: at one zero `xᵢ`, `∂²/∂xᵢ∂xⱼ = Πₖ≠ᵢ,ⱼ xₖ` is not 0, and at two zeros
/// the mixed derivative of the pair is the product of the rest.
#[test]
fn prod_second_derivatives_at_zeros() {
    let mut rng = Rng::new(61);
    let base = [1.5f64, -0.7, 2.0, 0.9, -1.2];
    for zeros in [&[][..], &[1], &[1, 3], &[0, 2, 4]] {
        let mut v = base.to_vec();
        for &i in zeros {
            v[i] = 0.0;
        }
        let n = v.len();
        let x = Array::from_vec(v.clone(), [n]);
        let prod = |x: Array| x.prod(..);
        let g = grad(prod)(x.clone()).unwrap().to_vec::<f64>();
        let want: Vec<f64> = (0..n).map(|i| prod_except(&v, &[i])).collect();
        assert_same(&format!("gradient with zeros at {zeros:?}"), &g, &want);
        // Each Hessian column by forward over reverse, and by reverse over reverse.
        for j in 0..n {
            let mut e = vec![0.0; n];
            e[j] = 1.0;
            let e = Array::from_vec(e, [n]);
            let want: Vec<f64> = (0..n).map(|i| if i == j { 0.0 } else { prod_except(&v, &[i, j]) }).collect();
            let hv = hvp(prod, &x, &e).unwrap().to_vec::<f64>();
            assert_same(&format!("Hessian column {j} with zeros at {zeros:?}"), &hv, &want);
            let gg = grad(|x: Array| grad(prod)(x).map(|g| (g * &e).sum(..)))(x.clone()).unwrap().to_vec::<f64>();
            assert_same(&format!("grad of grad, column {j}, zeros at {zeros:?}"), &gg, &want);
        }
        check_grads(&|xs: Vec<Array>| xs[0].prod(..), std::slice::from_ref(&x), 2, &mut rng);
    }
}

/// Products along one axis of several shapes (odd and even lengths, length 1,
/// middle axes), with zeros in some rows, against finite differences.
#[test]
fn prod_along_axes_with_zeros() {
    let mut rng = Rng::new(67);
    for (shape, axes) in [
        (vec![3, 5], vec![1]),
        (vec![4, 3], vec![0]),
        (vec![2, 7, 2], vec![1]),
        (vec![2, 3, 4], vec![0, 2]),
        (vec![3, 1], vec![1]),
        (vec![6], vec![0]),
    ] {
        let numel: usize = shape.iter().product();
        let mut v: Vec<f64> = (0..numel).map(|_| rng.uniform(0.5, 1.5)).collect();
        // One zero in the first few elements, two near the end.
        v[1] = 0.0;
        v[numel - 1] = 0.0;
        if numel > 4 {
            v[numel - 3] = 0.0;
        }
        let x = Array::from_vec(v, shape.clone());
        let axes = axes.clone();
        let f = move |xs: Vec<Array>| xs[0].prod(axes.clone());
        eprintln!("checking prod over {shape:?}");
        check_grads(&f, std::slice::from_ref(&x), 2, &mut rng);
    }
    // The empty product is the constant 1.
    let e = Array::zeros([0, 3], DType::F64);
    let (p, t) = jvp(|x: Array| x.prod(0), &e, &e).unwrap();
    assert_eq!((p.to_vec::<f64>(), t.to_vec::<f64>()), (vec![1.0; 3], vec![0.0; 3]));
}

#[test]
fn argmax_and_argmin_index_the_differentiated_array() {
    let mut rng = Rng::new(71);
    let x = rng.array(&[6], -1.0, 1.0);
    // Through dynamic_slice, and through a one-hot mask made from iota.
    let f = |xs: Vec<Array>| {
        let x = &xs[0];
        let top = x.dynamic_slice(&[x.argmax(0)], &[1]);
        let low = Array::iota(DType::I32, [6], 0).eq(x.argmin(0)).astype(DType::F64);
        (top * 2.0).exp() + (x * &low).sum(..).sin() * x.sum(..)
    };
    check_grads(&f, std::slice::from_ref(&x), 2, &mut rng);
    let v = x.to_vec::<f64>();
    let at = |best: fn(f64, f64) -> bool| (0..6).fold(0, |b, i| if best(v[i], v[b]) { i } else { b });
    let (imax, imin) = (at(|a, b| a > b), at(|a, b| a < b));
    let g = grad(|x: Array| x.dynamic_slice(&[x.argmax(0)], &[1]).sum(..))(x.clone()).unwrap().to_vec::<f64>();
    assert_eq!(g, (0..6).map(|i| if i == imax { 1.0 } else { 0.0 }).collect::<Vec<_>>());
    let g =
        grad(|x: Array| (&x * Array::iota(DType::I32, [6], 0).eq(x.argmin(0)).astype(DType::F64)).sum(..))(x.clone())
            .unwrap()
            .to_vec::<f64>();
    assert_eq!(g, (0..6).map(|i| if i == imin { 1.0 } else { 0.0 }).collect::<Vec<_>>());
    // Along an axis of a matrix: the indices are integers, with a zero tangent
    // and no cotangent.
    let m = rng.array(&[3, 4], -1.0, 1.0);
    let (i, t) = jvp(|m: Array| m.argmax(1), &m, &Array::ones([3, 4], DType::F64)).unwrap();
    assert_eq!((i.dtype(), t.dtype()), (DType::I32, DType::I32));
    assert_eq!(t.to_vec::<i32>(), vec![0; 3]);
    let (_, pb) = vjp(|m: Array| (m.argmin(0), m.sin()), &m).unwrap();
    let ct = pb.call(&(Array::from_vec(vec![5i32; 4], [4]), Array::ones([3, 4], DType::F64))).unwrap();
    assert_same("pullback past argmin", &ct.to_f64_vec(), &m.cos().to_f64_vec());
}

#[test]
fn iota_is_a_constant() {
    let mut rng = Rng::new(73);
    let x = rng.array(&[3, 4], -1.0, 1.0);
    let cols = || Array::iota(DType::F64, [3, 4], 1);
    let rows = || Array::iota(DType::I32, [3, 4], 0).astype(DType::F64);
    // It is staged as a primitive, not folded into a constant.
    let p = make_jaxpr(|x: Array| &x * cols(), &x).unwrap();
    assert!(p.eqns.iter().any(|e| e.prim.name() == "iota"), "{p}");
    assert_eq!(grad(|x: Array| (&x * cols()).sum(..))(x.clone()).unwrap().to_vec::<f64>(), cols().to_vec::<f64>());
    assert_eq!(grad(|x: Array| (&x * rows()).sum(..))(x.clone()).unwrap().to_vec::<f64>(), rows().to_vec::<f64>());
    let f = move |xs: Vec<Array>| (&xs[0] * cols() + rows()).sin();
    check_grads(&f, &[x], 2, &mut rng);
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
