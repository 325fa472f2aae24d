//! Optimised and fused programs against the reference interpreter, on random
//! well-typed programs (the schedule run with reference kernel semantics).

use arrayjit_ir::random::{arb_program_and_inputs, GenConfig};
use arrayjit_ir::{typecheck, Data, HostArray};
use proptest::prelude::*;

fn close(a: &HostArray, b: &HostArray) -> bool {
    if a.aval() != b.aval() {
        return false;
    }
    let (x, y): (Vec<f64>, Vec<f64>) =
        (0..a.numel()).map(|i| (a.data().get(i).as_f64(), b.data().get(i).as_f64())).unzip();
    let tol = match a.data() {
        Data::F32(_) => 1e-4,
        _ => 1e-9,
    };
    x.iter().zip(&y).all(|(p, q)| (p.is_nan() && q.is_nan()) || p == q || (p - q).abs() <= tol * (1.0 + q.abs()))
}

fn config() -> GenConfig {
    GenConfig::default().without(&["div", "rem"])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn optimised_programs_compute_the_same(case in arb_program_and_inputs(config())) {
        let (p, inputs) = case;
        let want = arrayjit_interp::eval_program(&p, &inputs).unwrap();
        let (q, _) = arrayjit_lower::optimize(&p).unwrap();
        typecheck(&q).unwrap();
        let got = arrayjit_interp::eval_program(&q, &inputs).unwrap();
        for (g, w) in got.iter().zip(&want) {
            prop_assert!(close(g, w), "optimised result {g} differs from {w}\nprogram:\n{p}\noptimised:\n{q}");
        }
    }

    #[test]
    fn fused_schedules_compute_the_same(case in arb_program_and_inputs(config())) {
        let (p, inputs) = case;
        let want = arrayjit_interp::eval_program(&p, &inputs).unwrap();
        let (q, _) = arrayjit_lower::optimize(&p).unwrap();
        let s = arrayjit_lower::fuse(&q);
        let got = s.eval_reference(&inputs);
        prop_assert!(got.is_ok(), "{:?}\nprogram:\n{q}\nschedule:\n{s}", got.err());
        let got = got.unwrap();
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert!(close(g, w), "fused result {g} differs from {w}\nprogram:\n{q}\nschedule:\n{s}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Coalescing axes never changes what a kernel computes.
    #[test]
    fn coalesced_kernels_compute_the_same(case in arb_program_and_inputs(config())) {
        let (p, inputs) = case;
        let (q, _) = arrayjit_lower::optimize(&p).unwrap();
        let mut s = arrayjit_lower::fuse(&q);
        let want = s.eval_reference(&inputs).unwrap();
        for step in &mut s.steps {
            if let arrayjit_lower::Step::Kernel { kernel, .. } = step {
                *kernel = kernel.coalesced();
            }
        }
        let got = s.eval_reference(&inputs).unwrap();
        for (g, w) in got.iter().zip(&want) {
            prop_assert!(close(g, w), "coalesced result {g} differs from {w}\nschedule:\n{s}");
        }
    }
}
