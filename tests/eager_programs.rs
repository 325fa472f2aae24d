//! A gradient taken eagerly in a loop is compiled whole once its program
//! comes back, and gives the same values as the first, equation-by-equation
//! evaluation, whatever the values the function closes over.

use arrayjit::{grad, Array};

#[test]
fn an_eager_gradient_is_compiled_from_its_second_call() {
    let x = Array::from_vec((0..2000).map(|i| (i as f64 * 0.01).sin()).collect(), [2000]);
    let before = arrayjit::cpu::eager::cached_programs();
    let mut results = Vec::new();
    for k in 0..4 {
        // A closed-over value that changes at every call.
        let w = Array::from_vec((0..2000).map(|i| (i + k) as f64 * 1e-3).collect(), [2000]);
        let g = grad(|x: Array| ((&x * &w).tanh() * &x).sum(..))(x.clone()).unwrap();
        let by_hand = {
            let t = (&x * &w).tanh();
            &t + &x * &w * (-&t * &t + 1.0)
        };
        results.push((g.to_vec::<f64>(), by_hand.to_vec::<f64>()));
    }
    assert!(arrayjit::cpu::eager::cached_programs() > before, "no program was compiled");
    for (g, want) in &results {
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}
