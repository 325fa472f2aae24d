//! Tracing: traced-then-interpreted results equal eager results; constants,
//! literals, staged constructors, nested traces and trees.

use arrayjit_ir::{typecheck, Atom, HostArray, Prim};
use arrayjit_trace::bind::apply_program;
use arrayjit_trace::*;
use std::collections::BTreeMap;

/// Runs `f` eagerly and as a traced program, the program through the same
/// eager executor equation by equation; the two must agree bit for bit (the
/// same kernels compute both, so any difference is a tracing bug).
fn eager_equals_traced<In: Tree + Clone, Out: Tree>(f: impl Fn(In) -> Out, args: In) {
    let eager = tree_leaves(&f(args.clone()));
    let traced = trace(&f, &args).unwrap();
    typecheck(&traced.program).unwrap();
    assert!(traced.captured.is_empty());
    let inputs: Vec<HostArray> = tree_leaves(&args).iter().map(Array::to_host).collect();
    let refs: Vec<&HostArray> = inputs.iter().collect();
    let outs = eager::executor().execute_program(&traced.program, &refs).unwrap();
    assert_eq!(outs.len(), eager.len());
    for (o, e) in outs.iter().zip(&eager) {
        assert_eq!(*o, e.to_host());
    }
}

fn sample(shape: &[usize], seed: u32) -> Array {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f64) / 250.0 - 2.0)
        .collect();
    Array::from_vec(v, shape.to_vec())
}

#[test]
fn elementwise_and_reductions_agree() {
    let x = sample(&[3, 4], 1);
    let y = sample(&[4], 2);
    eager_equals_traced(
        |(x, y): (Array, Array)| {
            let z = (&x * &y + 1.0).tanh() - x.exp() / (y.square() + 1.0);
            let w = where_(z.gt(0.0), z.log1p(), z.expm1());
            (w.sum(..), w.max(0), w.mean_keepdims(1), x.argmax(1), (&x % 0.7).abs().sqrt())
        },
        (x, y),
    );
}

#[test]
fn shapes_and_linalg_agree() {
    let a = sample(&[3, 3], 3);
    let spd = a.matmul(&a.t()) + Array::eye(3, DType::F64);
    let b = sample(&[3, 2], 4);
    eager_equals_traced(
        |(s, b): (Array, Array)| {
            let x = s.solve(&b);
            let y = s.inv_spd().matmul(&b);
            let l = s.cholesky();
            (
                x,
                y,
                s.logdet(),
                s.det(),
                s.slogdet(),
                l.t().reshape([9]),
                concatenate(&[b.clone(), b.clone()], 1).pad(&[1, 0], &[0, -1], &[0, 1], 9.0),
            )
        },
        (spd, b),
    );
}

#[test]
fn closed_over_arrays_become_constants_and_scalars_literals() {
    let data = Array::from_vec(vec![1.0f32, 2.0, 3.0], [3]);
    let scale = Array::scalar(0.5f32);
    let x = Array::zeros([3], DType::F32);
    let p = make_jaxpr(|x: Array| (&x + &data) * &scale + &data, &x).unwrap();
    assert_eq!(p.consts.len(), 1, "the same closed-over array is one constant");
    assert_eq!(*p.consts[0].1, data.to_host());
    assert!(p.eqns.iter().any(|e| e.inputs.contains(&Atom::Lit(arrayjit_ir::Scalar::F32(0.5)))));
    // Constructors are staged, not baked in.
    let p = make_jaxpr(|x: Array| &x + Array::ones([3], DType::F32) + Array::eye(3, DType::F32).sum(0), &x).unwrap();
    assert!(p.consts.is_empty());
    assert!(p.eqns.iter().any(|e| e.prim.name() == "broadcast_in_dim"));
    assert!(p.eqns.iter().any(|e| e.prim.name() == "iota"));
}

#[test]
fn trees_in_and_out() {
    let mut params = BTreeMap::new();
    params.insert("w".to_string(), sample(&[2, 2], 5));
    params.insert("b".to_string(), sample(&[2], 6));
    let xs = vec![sample(&[2], 7), sample(&[2], 8)];
    let f = |(p, xs, opt): (BTreeMap<String, Array>, Vec<Array>, Option<Array>)| {
        let outs: Vec<Array> = xs.iter().map(|x| p["w"].matmul(x) + &p["b"]).collect();
        (outs, opt.map(|o| o * 2.0), ())
    };
    let args = (params, xs, Some(sample(&[1], 9)));
    eager_equals_traced(f, args.clone());
    let t = trace(f, &args).unwrap();
    assert_eq!(t.program.inputs.len(), 5);
    assert_eq!(t.in_def.leaf_paths(), vec![".0[\"b\"]", ".0[\"w\"]", ".1[0]", ".1[1]", ".2"]);
    assert_eq!(t.out_def.num_leaves(), 3);
}

#[test]
fn nested_traces_capture_outer_tracers() {
    let x = sample(&[3], 10);
    let outer = trace(
        |x: Array| {
            let y = x.exp();
            // An inner trace that closes over the outer tracer `y`.
            let inner = trace(|z: Array| &z * &y + 1.0, &x).unwrap();
            assert_eq!(inner.captured.len(), 1, "y is captured");
            assert_eq!(inner.program.inputs.len(), 2);
            let mut args = vec![x.clone()];
            args.extend(inner.captured.clone());
            // Evaluated in the outer context, the inner program is inlined.
            apply_program(&inner.program, &args, Default::default()).unwrap().remove(0)
        },
        &x,
    )
    .unwrap();
    typecheck(&outer.program).unwrap();
    assert!(outer.captured.is_empty());
    let names: Vec<&str> = outer.program.eqns.iter().map(|e| e.prim.name()).collect();
    assert_eq!(names, vec!["exp", "mul", "add"]);
    let got = arrayjit_interp::eval_program(&outer.program, &[x.to_host()]).unwrap();
    let want = (&x * x.exp() + 1.0).to_host();
    assert_eq!(got[0], want);
}

#[test]
fn apply_program_runs_eagerly_outside_traces() {
    let x = sample(&[2, 2], 11);
    let p = make_jaxpr(|x: Array| x.matmul(&x).sum(..), &x).unwrap();
    let out = apply_program(&p, std::slice::from_ref(&x), Default::default()).unwrap();
    assert_eq!(out[0].to_host(), x.matmul(&x).sum(..).to_host());
    let bad = apply_program(&p, &[sample(&[3], 1)], Default::default()).unwrap_err();
    assert!(bad.to_string().contains("the program takes f64[2,2] but was given f64[3]"), "{bad}");
}

#[test]
fn equations_record_the_user_line() {
    let x = sample(&[2], 12);
    let line = line!() + 1;
    let p = make_jaxpr(|x: Array| x.sin(), &x).unwrap();
    let loc = p.eqns[0].loc.0.unwrap();
    assert_eq!((loc.file(), loc.line()), ("crates/trace/tests/tracing.rs", line));
    assert!(matches!(p.eqns[0].prim, Prim::Elementwise(_)));
}
