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
