//! Derivatives through `call`, the primitive that applies a closed program (a
//! `jit`-ed function called under another trace becomes one).

mod common;
use arrayjit_ad::{grad, jvp};
use arrayjit_ir::prim::Control;
use arrayjit_ir::{Loc, Program};
use arrayjit_trace::bind::bind;
use arrayjit_trace::{make_jaxpr, Array, DType};
use common::{assert_same, check_grads, Rng};
use std::sync::Arc;

/// Applies `body` to `args` as one `call` equation (or eagerly, outside a trace).
fn call(body: &Arc<Program>, args: &[&Array]) -> Vec<Array> {
    bind(Control::Call { body: body.clone() }.into(), args, Loc::default()).expect("the operands fit the body")
}

fn has_call(p: &Program) -> bool {
    p.eqns.iter().any(|e| e.prim.name() == "call")
}

#[test]
fn call_is_differentiated_through_its_body() {
    let mut rng = Rng::new(29);
    let x = rng.array(&[3], -1.0, 1.0);
    let y = rng.array(&[3], -1.0, 1.0);
    // Two outputs, and a constant the body closed over.
    let w = rng.array(&[3], 0.5, 1.5);
    let body = Arc::new(
        make_jaxpr(|(x, y): (Array, Array)| ((&x * &y).sin() * &w, x.exp().sum(..)), &(x.clone(), y.clone())).unwrap(),
    );
    assert!(!body.consts.is_empty(), "{body}");
    let f = {
        let body = body.clone();
        move |xs: Vec<Array>| {
            let o = call(&body, &[&xs[0], &xs[1]]);
            &o[0] * &o[1]
        }
    };
    assert!(has_call(&make_jaxpr(&f, &vec![x.clone(), y.clone()]).unwrap()));
    check_grads(&f, &[x.clone(), y.clone()], 2, &mut rng);

    // Against the derivative by hand: with s = Σ exp(x) and u = sin(x·y)·w,
    // d/dx Σ u·s = y·cos(x·y)·w·s + exp(x)·Σ u.
    let g = grad(|(x, y): (Array, Array)| f(vec![x, y]).sum(..))((x.clone(), y.clone())).unwrap();
    let s = x.exp().sum(..);
    let u = (&x * &y).sin() * &w;
    let want_x = &y * (&x * &y).cos() * &w * &s + x.exp() * u.sum(..);
    let want_y = &x * (&x * &y).cos() * &w * &s;
    assert_same("grad in x", &g.0.to_f64_vec(), &want_x.to_f64_vec());
    assert_same("grad in y", &g.1.to_f64_vec(), &want_y.to_f64_vec());
    let (out, t) = jvp(&f, &vec![x.clone(), y.clone()], &vec![Array::ones([3], DType::F64), y.zeros_like()]).unwrap();
    assert_same("jvp's output", &out.to_f64_vec(), &(&u * &s).to_f64_vec());
    // Along dx = 1: d(u·s) = y·cos(x·y)·w·s + u·Σ exp(x).
    let want_t = &y * (&x * &y).cos() * &w * &s + &u * &s;
    assert_same("jvp along x", &t.to_f64_vec(), &want_t.to_f64_vec());
    // The call's body is differentiated inline: the gradient program holds no call.
    let p = make_jaxpr(grad(|xs: Vec<Array>| f(xs).sum(..)), &vec![x, y]).unwrap();
    assert!(!has_call(&p), "{p}");
}

#[test]
fn nested_calls() {
    let mut rng = Rng::new(31);
    let x = rng.array(&[2, 3], -1.0, 1.0);
    let inner = Arc::new(make_jaxpr(|x: Array| x.tanh().matmul(&x.t()), &x).unwrap());
    let outer = {
        let inner = inner.clone();
        Arc::new(make_jaxpr(move |x: Array| call(&inner, &[&x.exp()]).remove(0).sin(), &x).unwrap())
    };
    assert!(has_call(&outer), "{outer}");
    let f = move |xs: Vec<Array>| call(&outer, &[&xs[0]]).remove(0) * &xs[0].sum(..);
    check_grads(&f, &[x], 2, &mut rng);
}

// ---- loops and conditionals ----

use arrayjit_ad::{value_and_grad, vjp};
use arrayjit_trace::control::{cond, fori_loop, scan, scan_with, switch, while_loop, ScanOptions};

/// An RNN-like scan: h ← tanh(w·h + x), y = h², closing over `w` (traced)
/// and a concrete scale; returns Σ ys + Σ h_final.
fn rnn(xs: Vec<Array>, reverse: bool) -> Array {
    let (w, h0, seq) = (xs[0].clone(), xs[1].clone(), xs[2].clone());
    let scale = Array::from_vec(vec![0.5f64, 1.5, -1.0], [3]);
    let (h, ys): (Array, Array) = scan_with(
        |h: Array, x: Array| {
            let h = (&w * &h + &x * &scale).tanh();
            let y = &h * &h;
            (h, y)
        },
        h0,
        seq,
        ScanOptions::default().reverse(reverse),
    )
    .unwrap();
    ys.sum(..) + h.sum(..)
}

/// The same loop written out by hand.
fn rnn_unrolled(xs: Vec<Array>) -> Array {
    let (w, mut h, seq) = (xs[0].clone(), xs[1].clone(), xs[2].clone());
    let scale = Array::from_vec(vec![0.5f64, 1.5, -1.0], [3]);
    let mut total = Array::scalar(0.0f64);
    for i in 0..seq.shape()[0] {
        let x = seq.slice(&[i, 0], &[i + 1, 3]).reshape([3]);
        h = (&w * &h + &x * &scale).tanh();
        total = total + (&h * &h).sum(..);
    }
    total + h.sum(..)
}

fn rnn_args(rng: &mut Rng) -> Vec<Array> {
    vec![rng.array(&[3], -1.0, 1.0), rng.array(&[3], -1.0, 1.0), rng.array(&[4, 3], -1.0, 1.0)]
}

#[test]
fn scan_gradients_match_finite_differences_to_second_order() {
    let mut rng = Rng::new(41);
    let args = rnn_args(&mut rng);
    check_grads(&|xs| rnn(xs, false), &args, 2, &mut rng);
    check_grads(&|xs| rnn(xs, true), &args, 1, &mut rng);
}

#[test]
fn scan_gradient_equals_the_unrolled_loop() {
    let mut rng = Rng::new(43);
    let args = rnn_args(&mut rng);
    let (v1, g1) = value_and_grad(|xs: Vec<Array>| rnn(xs, false))(args.clone()).unwrap();
    let (v2, g2) = value_and_grad(rnn_unrolled)(args).unwrap();
    assert_same("value", &v1.to_f64_vec(), &v2.to_f64_vec());
    for (a, b) in g1.iter().zip(&g2) {
        assert_same("gradient", &a.to_f64_vec(), &b.to_f64_vec());
    }
    // The gradient program holds two scans (forward with residuals, then a
    // reversed one), not an unrolled loop.
    let p = make_jaxpr(grad(|xs: Vec<Array>| rnn(xs, false)), &rnn_args(&mut Rng::new(1))).unwrap();
    let scans: Vec<_> = p.eqns.iter().filter(|e| e.prim.name() == "scan").collect();
    assert_eq!(scans.len(), 2, "{p}");
}

#[test]
fn nested_scans_and_carries_that_gain_a_tangent() {
    let mut rng = Rng::new(47);
    let f = |xs: Vec<Array>| {
        let a = xs[0].clone();
        let m = xs[1].clone();
        // The carry starts as a constant (no tangent) and picks one up from `a`.
        let (acc, _): (Array, ()) = scan(
            |acc: Array, row: Array| {
                let (inner, _): (Array, ()) =
                    scan(|c: Array, v: Array| ((&c * &v).sin() + &a, ()), acc.clone(), row).unwrap();
                (&inner * 0.5 + &acc, ())
            },
            Array::zeros([], DType::F64),
            m,
        )
        .unwrap();
        acc
    };
    check_grads(&f, &[rng.array(&[], -1.0, 1.0), rng.array(&[3, 4], -1.0, 1.0)], 2, &mut rng);
}

#[test]
fn fori_loop_with_an_integer_counter_is_differentiable() {
    let mut rng = Rng::new(53);
    let f = |xs: Vec<Array>| {
        let x = xs[0].clone();
        fori_loop(0, 5, |i: Array, c: Array| &c * &x + i.astype(DType::F64).sin(), Array::ones([2], DType::F64))
            .unwrap()
    };
    check_grads(&f, &[rng.array(&[2], -1.0, 1.0)], 2, &mut rng);
}

#[test]
fn cond_and_switch_gradients() {
    let mut rng = Rng::new(59);
    for sign in [1.0, -1.0] {
        let f = move |xs: Vec<Array>| {
            let (x, y) = (xs[0].clone(), xs[1].clone());
            let p = (x.sum(..) * sign).gt(0.0);
            let y2 = y.clone();
            cond(&p, move |(x, y): (Array, Array)| (&x * &y).sin() * &y2, |(x, _y): (Array, Array)| x.exp(), (x, y))
                .unwrap()
        };
        let args = [rng.array(&[3], 0.1, 1.0), rng.array(&[3], -1.0, 1.0)];
        check_grads(&f, &args, 2, &mut rng);
    }
    for i in 0..4 {
        let f = move |xs: Vec<Array>| {
            let branches: Vec<Box<dyn FnOnce(Array) -> Array>> =
                vec![Box::new(|x| x.sin()), Box::new(|x| &x * &x), Box::new(|x| x.exp().sum(..).broadcast_to([2]))];
            switch(&Array::scalar(i), branches, xs[0].clone()).unwrap()
        };
        check_grads(&f, &[rng.array(&[2], -1.0, 1.0)], 1, &mut rng);
    }
}

#[test]
fn while_loop_has_jvp_but_refuses_reverse_mode() {
    let f = |x: Array| {
        let (_, y): (Array, Array) = while_loop(
            |(i, _): (Array, Array)| i.lt(3i32),
            |(i, y): (Array, Array)| (&i + 1i32, (&y * 1.5).sin()),
            (Array::scalar(0i32), x),
        )
        .unwrap();
        y
    };
    let x = Array::from_vec(vec![0.3f64, -0.7], [2]);
    let (_, t) = jvp(|x: Array| f(x), &x, &Array::ones([2], DType::F64)).unwrap();
    let eps = 1e-6;
    let fd: Vec<f64> =
        f(&x + eps).to_f64_vec().iter().zip(f(&x - eps).to_f64_vec()).map(|(p, m)| (p - m) / (2.0 * eps)).collect();
    for (a, b) in t.to_f64_vec().iter().zip(&fd) {
        assert!((a - b).abs() < 1e-6, "jvp {a} vs finite differences {b}");
    }
    let err = vjp(|x: Array| f(x), &x).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("while_loop") && err.contains("Use scan"), "{err}");
}

#[test]
fn reverse_mode_passes_a_while_loop_that_carries_no_derivative() {
    // The loop counts while comparing against x: its result does not vary
    // with x, so the gradient goes around it (JAX's too).
    let f = |x: Array| {
        let k = while_loop(
            |k: Array| k.lt(10i32),
            |k: Array| &(&k + &x.gt(0.0).astype(DType::I32)) + 1i32,
            Array::scalar(0i32),
        )
        .unwrap();
        &x * &k.astype(DType::F64)
    };
    let g = grad(f)(Array::scalar(2.0f64)).unwrap();
    assert_eq!(g.item::<f64>(), 10.0);
}
