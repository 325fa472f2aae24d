//! Rewrites that reverse mode and training loops call for: transposed and
//! distributed products, and loop-invariant code motion out of `scan`. Each
//! must fire where it should and leave results unchanged.

use arrayjit::{jit, scan_with, Array, ScanOptions};

fn count(p: &arrayjit::Program, name: &str) -> usize {
    p.eqns.iter().filter(|e| e.prim.name() == name).count()
}

fn ramp(n: usize, m: usize, k: f64) -> Array {
    Array::from_vec((0..n * m).map(|i| (i as f64 * k).sin()).collect(), [n, m])
}

fn same(a: &Array, b: &Array) {
    for (x, y) in a.to_vec::<f64>().iter().zip(b.to_vec::<f64>()) {
        assert!((x - y).abs() <= 1e-12 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

#[test]
fn transposed_and_summed_products_become_one_product_in_order() {
    let f = |(a, b, c): (Array, Array, Array)| (a.matmul(&b) + a.matmul(&c.t())).t().exp();
    let args = (ramp(7, 5, 0.3), ramp(5, 5, 0.7), ramp(5, 5, 1.1));
    let lowered = jit(f).lower(&args).unwrap();
    let p = lowered.optimized();
    assert_eq!(count(p, "dot_general"), 1, "{p}");
    assert_eq!(count(p, "transpose"), 1, "only the 5×5 operand is transposed: {p}");
    same(&jit(f).call(args.clone()).unwrap(), &f(args));
}

#[test]
fn loop_invariant_work_runs_once_before_the_loop() {
    let data = ramp(50, 8, 0.37).abs() + 1.0;
    let f = |c0: Array| {
        let data = data.clone();
        scan_with(
            move |c: Array, (): ()| {
                // Σ log(data) does not depend on the carry: hoisted.
                let k = data.log().sum(..);
                let c = (&c * 0.5 + &k).tanh();
                (c.clone(), c)
            },
            c0,
            (),
            ScanOptions::default().length(6),
        )
    };
    let c0 = Array::scalar(0.25f64);
    let lowered = jit(&f).lower(&c0).unwrap();
    let p = lowered.optimized();
    assert_eq!(count(p, "log"), 1, "the log runs outside the loop: {p}");
    let scan = p.eqns.iter().find(|e| e.prim.name() == "scan").unwrap();
    if let arrayjit::ir::Prim::Control(c) = &scan.prim {
        assert_eq!(count(c.sub_programs()[0], "log"), 0, "{p}");
    }
    let (a, ys): (Array, Array) = jit(&f).call(c0.clone()).unwrap();
    let (b, zs) = f(c0).unwrap();
    same(&a, &b);
    same(&ys, &zs);
}

#[test]
fn products_by_uniform_operands_become_sums() {
    let ones = Array::ones([6, 1], arrayjit::DType::F64);
    let f = |(r, b): (Array, Array)| {
        let ones = ones.clone();
        // Xᵀ·R with X a column of ones, and X·B: a column sum and a broadcast.
        (ones.t().matmul(&r), ones.matmul(&b))
    };
    let args = (ramp(6, 4, 0.3), ramp(1, 4, 0.9));
    let lowered = jit(&f).lower(&args).unwrap();
    assert_eq!(count(lowered.optimized(), "dot_general"), 0, "{}", lowered.optimized());
    let (a, b) = jit(&f).call(args.clone()).unwrap();
    let (c, d) = f(args);
    same(&a, &c);
    same(&b, &d);
}

#[test]
fn products_by_extreme_uniform_operands_give_what_products_give() {
    // The sums scale term by term, as a product does: inf·(1 − 1 + 5) would
    // be inf where inf·1 + inf·(−1) + inf·5 is NaN; 0·(1e308 + 1e308) would
    // be NaN where 0·1e308 + 0·1e308 is 0; and a product over an empty
    // contraction is 0 whatever the operand holds.
    let f = |(h, e, big): (Array, Array, Array)| {
        let inf = Array::full([1, 3], f64::INFINITY, arrayjit::DType::F64);
        let nan = Array::full([2, 0], f64::NAN, arrayjit::DType::F64);
        let zero = Array::zeros([1, 2], arrayjit::DType::F64);
        (inf.matmul(&h), nan.matmul(&e), zero.matmul(&big))
    };
    let args = (
        Array::from_vec(vec![1.0, -1.0, 5.0], [3, 1]),
        Array::zeros([0, 4], arrayjit::DType::F64),
        Array::from_vec(vec![1e308, 1e308], [2, 1]),
    );
    for (a, b, c) in [jit(&f).call(args.clone()).unwrap(), f(args)] {
        assert!(a.to_vec::<f64>()[0].is_nan());
        assert_eq!(b.to_vec::<f64>(), vec![0.0; 8]);
        assert_eq!(c.to_vec::<f64>(), vec![0.0]);
    }
}

#[test]
fn loop_bodies_are_optimised_before_hoisting() {
    let y = ramp(40, 6, 0.21);
    let f = |(c0, w0): (Array, Array)| {
        let y = y.clone();
        scan_with(
            move |(c, w): (Array, Array), (): ()| {
                // diag(½)·W is a scaling once the body is simplified; hoisted
                // raw, the diagonal matrix would be a constant operand of a
                // product in every iteration.
                let half = Array::from_vec(vec![0.5f64; 6], [6]).diag();
                let g = half.matmul(&w);
                // -Y is as cheap as reading Y: it stays in the loop's kernel.
                let c = (c.matmul(&g) - &y).tanh();
                let s = c.sum(..);
                ((c, &w * 0.9), s)
            },
            (c0, w0),
            (),
            ScanOptions::default().length(4),
        )
    };
    let args = (ramp(40, 6, 0.05), ramp(6, 6, 0.4));
    let lowered = jit(&f).lower(&args).unwrap();
    let p = lowered.optimized();
    let scan = p.eqns.iter().find(|e| e.prim.name() == "scan").unwrap();
    let arrayjit::ir::Prim::Control(c) = &scan.prim else { unreachable!() };
    let body = c.sub_programs()[0];
    assert_eq!(count(body, "dot_general") + count(p, "dot_general"), 1, "one product, c·(½W): {p}");
    let numel = |a: &arrayjit::ir::Atom| match a {
        arrayjit::ir::Atom::Var(v) => p.aval(*v).shape.numel(),
        arrayjit::ir::Atom::Lit(_) => 1,
    };
    let big = scan.inputs.iter().filter(|a| numel(a) == 240).count();
    assert_eq!(big, 1, "the initial carry only; -Y is not hoisted: {p}");
    let ((a, _), ys): ((Array, Array), Array) = jit(&f).call(args.clone()).unwrap();
    let ((b, _), zs) = f(args).unwrap();
    same(&a, &b);
    same(&ys, &zs);
}

#[test]
fn a_product_of_the_next_carry_is_carried_to_the_next_iteration() {
    // The loss reads MᵀM of M as it enters; the update reads MᵀM of M as it
    // leaves, which is next iteration's M: one product per iteration, not two.
    let f = |(m0, s0): (Array, Array)| {
        scan_with(
            |(m, s): (Array, Array), (): ()| {
                let loss = m.t().matmul(&m).sum(..);
                let m = (&m * 0.9 + m.matmul(&s) * 0.01).tanh();
                let s = m.t().matmul(&m) / 20.0;
                ((m, s), loss)
            },
            (m0, s0),
            (),
            ScanOptions::default().length(5),
        )
    };
    let args = (ramp(20, 4, 0.3), ramp(4, 4, 0.2));
    let lowered = jit(&f).lower(&args).unwrap();
    let p = lowered.optimized();
    let scan = p.eqns.iter().find(|e| e.prim.name() == "scan").unwrap();
    let arrayjit::ir::Prim::Control(c) = &scan.prim else { unreachable!() };
    let body = c.sub_programs()[0];
    assert_eq!(count(p, "dot_general"), 1, "MᵀM of the initial M, before the loop: {p}");
    assert_eq!(count(body, "dot_general"), 2, "M·S and the new MᵀM; the loss's is carried over: {p}");
    let ((a, s1), ys): ((Array, Array), Array) = jit(&f).call(args.clone()).unwrap();
    let ((b, s2), zs) = f(args).unwrap();
    same(&a, &b);
    same(&s1, &s2);
    same(&ys, &zs);
}

#[test]
fn identity_masks_stay_in_the_loop_unless_a_library_step_reads_them() {
    let data = ramp(6, 6, 0.37);
    let f = |(c0, s0): (Array, Array)| {
        let data = data.clone();
        scan_with(
            move |(c, s): (Array, Array), (): ()| {
                let eye = Array::eye(6, arrayjit::DType::F64);
                // Read by hoisted work (exp(data ⊙ I) is invariant) and by the
                // loop's own kernel: computed on both sides of the loop.
                let k = (&data * &eye).exp();
                let c = (&c * 0.5 + &eye + &k).tanh();
                // The diagonal of a loop value: read by the loop's kernel as
                // index arithmetic, not a boolean matrix made once and loaded.
                let d = c.diag().sum(..);
                // An operand of a library step: made once, before the loop.
                let s = (&s * 0.5 + &eye).solve_spd(&eye);
                ((c, s), d)
            },
            (c0, s0),
            (),
            ScanOptions::default().length(5),
        )
    };
    let args = (ramp(6, 6, 0.05), Array::eye(6, arrayjit::DType::F64) * 2.0);
    let lowered = jit(&f).lower(&args).unwrap();
    let p = lowered.optimized();
    let scan = p.eqns.iter().find(|e| e.prim.name() == "scan").unwrap();
    let arrayjit::ir::Prim::Control(c) = &scan.prim else { unreachable!() };
    let body = c.sub_programs()[0];
    let bools = |q: &arrayjit::Program, vars: &[arrayjit::ir::Var]| {
        vars.iter().filter(|v| q.aval(**v).dtype == arrayjit::DType::Bool).count()
    };
    assert_eq!(bools(body, &body.inputs), 0, "no identity mask enters the loop: {p}");
    assert_eq!(count(body, "exp"), 0, "exp(data ⊙ I) runs before the loop: {p}");
    let identity = |q: &arrayjit::Program| count(q, "iota");
    assert!(identity(body) > 0 && identity(p) > 0, "the identity is made on both sides of the loop: {p}");
    let square = scan.inputs.iter().filter(|a| matches!(a, arrayjit::ir::Atom::Var(v) if p.aval(*v).shape.0 == [6, 6]));
    assert_eq!(square.count(), 4, "the carries, exp(data ⊙ I) and the solve's identity: {p}");
    let ((a, b), ys): ((Array, Array), Array) = jit(&f).call(args.clone()).unwrap();
    let ((a2, b2), zs) = f(args).unwrap();
    same(&a, &a2);
    same(&b, &b2);
    same(&ys, &zs);
}
