//! Evaluation with every floating-point result moved by a few units in the
//! last place and its zeros given either sign: what a program computes when
//! its roundings come out otherwise. A backend may round differently within
//! its accuracy bounds (and a product's zero may come out `-0`), so where
//! such nudges move a program's result beyond a tolerance, the program is
//! ill-conditioned at those inputs and a backend that differs from the plain
//! evaluation there has not been shown wrong.

use crate::EvalError;
use arrayjit_ir::{Data, HostArray, Program};
use std::cell::Cell;

thread_local! {
    /// The nudges' generator state while [`eval_program_nudged`] runs.
    static STATE: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Evaluates `p` as [`eval_program`](crate::eval_program) does, except that
/// each equation's floating-point results (in loop bodies too) are each
/// multiplied by `1 + k·ε` with `k` in `-2..=2`, and each zero among them
/// takes a sign, as drawn from `seed`. Inputs, constants and literals are
/// left as they are.
pub fn eval_program_nudged(p: &Program, args: &[HostArray], seed: u64) -> Result<Vec<HostArray>, EvalError> {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            STATE.with(|s| s.set(None));
        }
    }
    STATE.with(|s| s.set(Some(seed | 1)));
    let _reset = Reset;
    crate::eval_program(p, args)
}

/// Whether nudged evaluations of `p` (a few seeds of [`eval_program_nudged`])
/// give results that `same` does not accept as `want`, or fail: `p` is then
/// ill-conditioned at `args`.
pub fn moved_by_nudges(
    p: &Program,
    args: &[HostArray],
    want: &[HostArray],
    same: impl Fn(&HostArray, &HostArray) -> bool,
) -> bool {
    (1..=8).any(|seed| match eval_program_nudged(p, args, seed) {
        Ok(got) => got.iter().zip(want).any(|(g, w)| !same(g, w)),
        Err(_) => true,
    })
}

/// The next draw, when nudging.
fn draw() -> Option<u64> {
    STATE.with(|s| {
        let x = s.get()?;
        let x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        s.set(Some(x));
        Some(x >> 33)
    })
}

/// Whether results are being nudged on this thread.
pub(crate) fn active() -> bool {
    STATE.with(|s| s.get().is_some())
}

/// Nudges the floating-point elements of `value` (see [`eval_program_nudged`]).
pub(crate) fn apply(value: HostArray) -> HostArray {
    let shape = value.shape().clone();
    let data = match value.into_data() {
        Data::F32(v) => Data::F32(v.into_iter().map(|x| nudged(x as f64, f32::EPSILON as f64) as f32).collect()),
        Data::F64(v) => Data::F64(v.into_iter().map(|x| nudged(x, f64::EPSILON)).collect()),
        other => other,
    };
    // The shape and the number of elements are the ones the value had.
    HostArray::new(shape, data).unwrap_or_else(|e| unreachable!("a nudge changed no length: {e}"))
}

fn nudged(x: f64, eps: f64) -> f64 {
    let r = draw().unwrap_or(0);
    if x == 0.0 {
        if r & 1 == 0 {
            0.0
        } else {
            -0.0
        }
    } else {
        x * (1.0 + ((r % 5) as f64 - 2.0) * eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::f32s;
    use arrayjit_ir::parse;

    #[test]
    fn nudges_move_floats_by_ulps_and_sign_zeros_and_leave_plain_evaluation_alone() {
        let p = parse("{ lambda ; x:f32[64] . let y:f32[64] = mul x 1.0:f32 in (y) }").unwrap();
        let x: Vec<f32> = (0..64).map(|i| if i % 4 == 0 { 0.0 } else { i as f32 * 0.37 }).collect();
        let plain = crate::eval_program(&p, &[f32s(&[64], &x)]).unwrap();
        assert_eq!(plain[0], f32s(&[64], &x));
        let a = eval_program_nudged(&p, &[f32s(&[64], &x)], 7).unwrap();
        let b = eval_program_nudged(&p, &[f32s(&[64], &x)], 7).unwrap();
        assert_eq!(a, b, "the same seed nudges alike");
        let Data::F32(v) = a[0].data() else { panic!("{}", a[0]) };
        let mut moved = 0;
        for (&n, &o) in v.iter().zip(&x) {
            assert!((n as f64 - o as f64).abs() <= 2.5 * f32::EPSILON as f64 * o.abs() as f64, "{n} from {o}");
            moved += usize::from(n != o || n.is_sign_negative() != o.is_sign_negative());
        }
        assert!(moved > 16, "{moved} of 64 moved");
        assert!(v.iter().step_by(4).any(|z| z.is_sign_negative()) && v.iter().step_by(4).any(|z| z.is_sign_positive()));
        // Evaluation afterwards is plain again.
        assert_eq!(crate::eval_program(&p, &[f32s(&[64], &x)]).unwrap(), plain);
    }
}
