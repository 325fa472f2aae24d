//! Error messages: they name the op, the operands' types and the user's source line.

use arrayjit_trace::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "<non-string panic>".into()
    }
}

fn here(line: u32) -> String {
    format!("crates/trace/tests/errors.rs:{line}:")
}

#[test]
fn eager_shape_error_panics_with_the_source_line() {
    let a = Array::zeros([2, 3], DType::F32);
    let b = Array::zeros([4], DType::F32);
    let line = line!() + 1;
    let msg = panic_message(|| drop(&a + &b));
    assert!(msg.starts_with("add: cannot broadcast f32[2,3] and f32[4] together"), "{msg}");
    assert!(msg.contains(&here(line)), "{msg}");
    let err = a.try_add(&b).unwrap_err();
    assert!(matches!(err, Error::Type { .. }));
    let strip = |m: &str| m.split(" (at ").next().unwrap_or_default().to_string();
    assert_eq!(strip(&err.to_string()), strip(&msg));
}

#[test]
fn traced_shape_error_is_returned_by_the_entry_point() {
    let x = Array::zeros([2, 3], DType::F32);
    let line = line!() + 1;
    let err = make_jaxpr(|x: Array| x.reshape([4]) * 2.0, &x).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("reshape: cannot reshape f32[2,3] (6 elements) to shape [4] (4 elements) (at "), "{msg}");
    assert!(msg.contains(&here(line)), "{msg}");
    assert!(!is_tracing(), "the aborted trace must leave the stack empty");
}

#[test]
fn matmul_and_dtype_errors() {
    let a = Array::zeros([2, 3], DType::F64);
    let b = Array::zeros([2, 3], DType::F64);
    let msg = a.try_matmul(&b).unwrap_err().to_string();
    assert!(msg.starts_with("matmul: cannot multiply f64[2,3] by f64[2,3]: the inner sizes 3 and 2 differ"), "{msg}");
    let m = Array::zeros([2, 3], DType::F32);
    let line = line!() + 1;
    let msg = panic_message(|| drop(m.cholesky()));
    assert!(msg.starts_with("cholesky: expects a square matrix (or a batch of them), got f32[2,3]"), "{msg}");
    assert!(msg.contains(&here(line)), "{msg}");
    let bools = Array::from_vec(vec![true, false], [2]);
    let msg = bools.try_neg().unwrap_err().to_string();
    assert!(msg.starts_with("neg: is defined for a numeric dtype (i32, f32 or f64), got bool[2]"), "{msg}");
    let msg = a.try_sum(5).unwrap_err().to_string();
    assert!(msg.starts_with("reduce_sum: axis 5 is out of range for rank 2"), "{msg}");
}

#[test]
fn reading_a_tracer_is_a_concretization_error() {
    let x = Array::from_vec(vec![1.0f32, -2.0], [2]);
    let line = line!() + 3;
    let err = make_jaxpr(
        |x: Array| {
            if x.sum(..).item::<f32>() > 0.0 {
                x
            } else {
                -x
            }
        },
        &x,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Concretization { .. }), "{msg}");
    assert!(msg.starts_with("cannot read the value of array f32[] (the result of `reduce_sum` at"), "{msg}");
    assert!(msg.contains(&here(line)), "{msg}");
    assert!(msg.contains("Use `where_`/`select` (or `cond`) instead of a Rust `if`"), "{msg}");
    let err =
        make_jaxpr(|(_a, b): (Array, Array)| Array::scalar(b.to_vec::<f32>()[0]), &(x.clone(), x.clone())).unwrap_err();
    assert!(
        err.to_string().starts_with("cannot read the value of array f32[2] (the traced function's argument .1)"),
        "{err}"
    );
}

#[test]
fn leaked_tracers_are_reported() {
    use std::cell::RefCell;
    let x = Array::from_vec(vec![1.0f32, 2.0], [2]);
    let stash: RefCell<Option<Array>> = RefCell::new(None);
    make_jaxpr(
        |x: Array| {
            let y = x.exp();
            *stash.borrow_mut() = Some(y.clone());
            y
        },
        &x,
    )
    .unwrap();
    let leaked = stash.borrow().clone().unwrap();
    let msg = panic_message(|| drop(&leaked + 1.0));
    assert!(msg.starts_with("a traced value f32[2] (from the result of `exp` at"), "{msg}");
    assert!(msg.contains("escaped the function that was being traced"), "{msg}");
    // Used inside a later, unrelated trace it is an error of that trace.
    let err = make_jaxpr(|x: Array| &x + &leaked, &x).unwrap_err();
    assert!(matches!(err, Error::LeakedTracer { .. }), "{err}");
}

#[test]
fn user_panics_inside_a_trace_stay_panics() {
    let x = Array::zeros([2], DType::F32);
    let msg = panic_message(|| {
        let _ = make_jaxpr(|_: Array| -> Array { panic!("boom") }, &x);
    });
    assert_eq!(msg, "boom");
    assert!(!is_tracing());
}
