//! Error messages: they name the op, the operands' types and the user's source line.

use arrayjit_ir::prim::DotDims;
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

/// The text of an error without its location.
fn strip(msg: &str) -> &str {
    msg.split(" (at ").next().unwrap_or_default()
}

/// `tried` (a `try_` form called on `line`) failed and `panicked` (its
/// panicking form, called on the same line) panicked, both with a message that
/// starts with `want` (which names the op and the operand types) and points at
/// `line` of this file. Each case keeps both calls on one line for this.
#[track_caller]
fn same_error<T: std::fmt::Debug>(tried: Result<T>, panicked: &str, line: u32, want: &str) {
    let err = match tried {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected an error starting with {want:?}, got Ok({v:?})"),
    };
    assert!(err.starts_with(want), "\n got: {err}\nwant: {want}");
    assert!(err.contains(&here(line)), "{err} does not point at line {line}");
    assert!(panicked.contains(&here(line)), "{panicked} does not point at line {line}");
    assert_eq!(strip(&err), strip(panicked));
}

#[test]
fn reduction_errors_name_the_op_the_operand_and_the_line() {
    let x = Array::zeros([2, 3], DType::F32);
    let line = line!() + 1;
    let (t, p) = (x.try_max(5), panic_message(|| drop(x.max(5))));
    same_error(t, &p, line, "reduce_max: axis 5 is out of range for rank 2 (operand f32[2,3])");
    let line = line!() + 1;
    let (t, p) = (x.try_min_keepdims(-3), panic_message(|| drop(x.min_keepdims(-3))));
    same_error(t, &p, line, "reduce_min: axis -3 is out of range for rank 2 (operand f32[2,3])");
    let line = line!() + 1;
    let (t, p) = (x.try_prod([1, 7]), panic_message(|| drop(x.prod([1, 7]))));
    same_error(t, &p, line, "reduce_prod: axis 7 is out of range for rank 2 (operand f32[2,3])");
    let line = line!() + 1;
    let (t, p) = (x.try_mean([0, 0]), panic_message(|| drop(x.mean([0, 0]))));
    same_error(t, &p, line, "mean: axis 0 is given twice in [0, 0] (operand f32[2,3])");
    let line = line!() + 1;
    let (t, p) = (x.try_mean_keepdims(2), panic_message(|| drop(x.mean_keepdims(2))));
    same_error(t, &p, line, "mean: axis 2 is out of range for rank 2 (operand f32[2,3])");
    let line = line!() + 1;
    let (t, p) = (x.try_sum_keepdims([1, -1]), panic_message(|| drop(x.sum_keepdims([1, -1]))));
    same_error(t, &p, line, "reduce_sum: axis 1 is given twice in [1, -1] (operand f32[2,3])");
    let empty = Array::zeros([0, 3], DType::F32);
    let line = line!() + 1;
    let (t, p) = (empty.try_max(0), panic_message(|| drop(empty.max(0))));
    same_error(t, &p, line, "reduce_max: axis 0 of f32[0,3] is empty, so it has no extremum");
    assert_eq!(empty.min(1).shape(), [0], "a minimum over a non-empty axis of an empty array is fine");
    // A usize axis too large for i64 is out of range, not a negative axis counted from the end.
    let line = line!() + 1;
    let (t, p) = (x.try_sum(usize::MAX), panic_message(|| drop(x.sum(usize::MAX))));
    same_error(t, &p, line, "reduce_sum: axis 9223372036854775807 is out of range for rank 2");
    let s = Array::scalar(1.0f64);
    let line = line!() + 1;
    let (t, p) = (s.try_argmax(0), panic_message(|| drop(s.argmax(0))));
    same_error(t, &p, line, "argmax: axis 0 is out of range for rank 0 (operand f64[])");
    let line = line!() + 1;
    let (t, p) = (x.try_argmin(2), panic_message(|| drop(x.argmin(2))));
    same_error(t, &p, line, "argmin: axis 2 is out of range for rank 2 (operand f32[2,3])");
}

#[test]
fn linear_algebra_errors_name_the_op_the_operands_and_the_line() {
    let a = Array::zeros([2, 3], DType::F64);
    let sq = Array::eye(2, DType::F64);
    let v = Array::zeros([3], DType::I32);
    let v2 = Array::zeros([2], DType::I32);
    let line = line!() + 1;
    let (t, p) = (a.try_dot(&a), panic_message(|| drop(a.dot(&a))));
    same_error(t, &p, line, "dot: cannot multiply f64[2,3] by f64[2,3]: the inner sizes 3 and 2 differ");
    let line = line!() + 1;
    let (t, p) = (a.try_matmul(&v2), panic_message(|| drop(a.matmul(&v2))));
    same_error(t, &p, line, "matmul: cannot multiply f64[2,3] by i32[2]: the inner sizes 3 and 2 differ");
    let line = line!() + 1;
    let (t, p) = (v.try_dot(&v2), panic_message(|| drop(v.dot(&v2))));
    same_error(t, &p, line, "dot: cannot multiply i32[3] by i32[2]: the inner sizes 3 and 2 differ");
    let dims = DotDims { lhs_contract: vec![0], rhs_contract: vec![0], ..DotDims::default() };
    let f = Array::zeros([3], DType::F32);
    let line = line!() + 1;
    let (t, p) = (f.try_dot_general(&v, dims.clone()), panic_message(|| drop(f.dot_general(&v, dims))));
    same_error(t, &p, line, "dot_general: operands f32[3] and i32[3] must share one numeric dtype");
    let square = "expects a square matrix (or a batch of them), got";
    let line = line!() + 1;
    let (t, p) = (a.try_cholesky(), panic_message(|| drop(a.cholesky())));
    same_error(t, &p, line, &format!("cholesky: {square} f64[2,3]"));
    let line = line!() + 1;
    let (t, p) = (v.try_inv(), panic_message(|| drop(v.inv())));
    same_error(t, &p, line, &format!("inv: {square} i32[3]"));
    let line = line!() + 1;
    let (t, p) = (a.try_inv_spd(), panic_message(|| drop(a.inv_spd())));
    same_error(t, &p, line, &format!("inv_spd: {square} f64[2,3]"));
    let line = line!() + 1;
    let (t, p) = (v.try_cholesky_inverse(), panic_message(|| drop(v.cholesky_inverse())));
    same_error(t, &p, line, &format!("cholesky_inverse: {square} i32[3]"));
    let line = line!() + 1;
    let (t, p) = (a.try_det(), panic_message(|| drop(a.det())));
    same_error(t, &p, line, &format!("det: {square} f64[2,3]"));
    let line = line!() + 1;
    let (t, p) = (v.try_logdet(), panic_message(|| drop(v.logdet())));
    same_error(t, &p, line, &format!("logdet: {square} i32[3]"));
    let line = line!() + 1;
    let (t, p) = (a.try_slogdet(), panic_message(|| drop(a.slogdet())));
    same_error(t, &p, line, &format!("slogdet: {square} f64[2,3]"));
    let rhs = "the right-hand side must have shape [2, k]";
    let line = line!() + 1;
    let (t, p) = (sq.try_solve(&v), panic_message(|| drop(sq.solve(&v))));
    same_error(t, &p, line, "solve: cannot solve f64[2,2] · x = i32[3]: a vector right-hand side must have 2 elements");
    let line = line!() + 1;
    let (t, p) = (sq.try_solve_spd(&a.t()), panic_message(|| drop(sq.solve_spd(&a.t()))));
    same_error(t, &p, line, &format!("solve_spd: cannot solve f64[2,2] · X = f64[3,2]: {rhs}"));
    let (batch, b) = (Array::zeros([4, 2, 2], DType::F32), Array::zeros([3, 2, 1], DType::F32));
    let line = line!() + 1;
    let (t, p) = (batch.try_solve(&b), panic_message(|| drop(batch.solve(&b))));
    same_error(
        t,
        &p,
        line,
        "solve: cannot solve f32[4,2,2] · X = f32[3,2,1]: the right-hand side must have shape [4, 2, k]",
    );
    let (o, at) = (TriangularSolve::default(), a.t());
    use ops::linalg::try_triangular_solve as try_tri;
    let line = line!() + 1;
    let (t, p) = (try_tri(&sq, &at, o), panic_message(|| drop(triangular_solve(&sq, &at, o))));
    same_error(t, &p, line, "triangular_solve: right-hand side f64[3,2] must have 2 rows to solve with f64[2,2]");
}

#[test]
fn shape_errors_name_the_op_the_operands_and_the_line() {
    let x = Array::zeros([2, 3], DType::F32);
    let (lo, hi, st) = (&[0, 0], &[2, 3], &[0, 1]);
    let line = line!() + 1;
    let (t, p) = (x.try_slice(&[0, 0], &[3, 3]), panic_message(|| drop(x.slice(&[0, 0], &[3, 3]))));
    same_error(t, &p, line, "slice: invalid slice 0..3 step 1 of dimension 0 (size 2) of f32[2,3]");
    let line = line!() + 1;
    let (t, p) = (x.try_slice_strided(lo, hi, st), panic_message(|| drop(x.slice_strided(lo, hi, st))));
    same_error(t, &p, line, "slice: invalid slice 0..2 step 0 of dimension 0 (size 2) of f32[2,3]");
    let line = line!() + 1;
    let (t, p) = (x.try_pad(&[0], &[0], &[0], 0.0), panic_message(|| drop(x.pad(&[0], &[0], &[0], 0.0))));
    same_error(t, &p, line, "pad: low, high and interior must each have one entry per dimension of f32[2,3]");
    let f = Array::scalar(0.0f32);
    let fs = [f.clone(), f.clone()];
    let line = line!() + 1;
    let (t, p) = (x.try_dynamic_slice(&fs, &[1, 1]), panic_message(|| drop(x.dynamic_slice(&fs, &[1, 1]))));
    same_error(t, &p, line, "dynamic_slice: start indices must be i32 scalars, got f32[]");
    let (zs, big) = ([Array::scalar(0i32), Array::scalar(0i32)], Array::zeros([3, 3], DType::F32));
    let line = line!() + 1;
    let (t, p) = (x.try_dynamic_update_slice(&big, &zs), panic_message(|| drop(x.dynamic_update_slice(&big, &zs))));
    same_error(t, &p, line, "dynamic_update_slice: update f32[3,3] does not fit in operand f32[2,3]");
    let line = line!() + 1;
    let (t, p) = (x.try_index_axis(0, 2), panic_message(|| drop(x.index_axis(0, 2))));
    same_error(t, &p, line, "index_axis: index 2 is out of range for axis 0 (of size 2) of f32[2,3]");
    let line = line!() + 1;
    let (t, p) = (x.try_index_axis(2, 0), panic_message(|| drop(x.index_axis(2, 0))));
    same_error(t, &p, line, "index_axis: axis 2 is out of range for rank 2 (operand f32[2,3])");
    let line = line!() + 1;
    let (t, p) = (f.try_diag(), panic_message(|| drop(f.diag())));
    same_error(t, &p, line, "diag: expects a vector (or a batch of them), got f32[]");
    let line = line!() + 1;
    let (t, p) = (x.try_trace(), panic_message(|| drop(x.trace())));
    same_error(t, &p, line, "trace: expects a square matrix (or a batch of them), got f32[2,3]");
    let line = line!() + 1;
    let (t, p) = (f.try_t().and_then(|t| t.try_diag_part()), panic_message(|| drop(f.t().diag_part())));
    same_error(t, &p, line, "diag_part: expects a square matrix (or a batch of them), got f32[]");
    let pair = [x.clone(), x.reshape([3, 2])];
    let line = line!() + 1;
    let (t, p) = (ops::shape::try_stack(&pair, 0), panic_message(|| drop(stack(&pair, 0))));
    same_error(t, &p, line, "stack: needs arrays of one shape, got f32[2,3] and f32[3,2]");
    let line = line!() + 1;
    let (t, p) = (ops::shape::try_stack(&pair, 3), panic_message(|| drop(stack(&pair, 3))));
    same_error(t, &p, line, "stack: axis 3 is out of range for rank 3 (operand f32[2,3])");
}

#[test]
fn elementwise_and_constructor_errors_name_the_op_the_operands_and_the_line() {
    let b = Array::from_vec(vec![true, false], [2]);
    let (x, dt) = (Array::zeros([3], DType::F32), DType::I32);
    let line = line!() + 1;
    let (t, p) = (b.try_square(), panic_message(|| drop(b.square())));
    same_error(t, &p, line, "square: is defined for a numeric dtype (i32, f32 or f64), got bool[2]");
    let line = line!() + 1;
    let (t, p) = (b.try_select(&x, &x), panic_message(|| drop(b.select(&x, &x))));
    same_error(t, &p, line, "select: cannot broadcast bool[2], f32[3] and f32[3] together");
    let line = line!() + 1;
    let (t, p) = (Array::try_iota(dt, [2, 3], 2), panic_message(|| drop(Array::iota(dt, [2, 3], 2))));
    same_error(t, &p, line, "iota: axis 2 is out of range for shape [2,3]");
    let line = line!() + 1;
    let (t, p) = (Array::try_arange(3, DType::Bool), panic_message(|| drop(Array::arange(3, DType::Bool))));
    same_error(t, &p, line, "iota: cannot count in bool");
}

#[test]
fn arrays_too_large_for_memory_are_errors_before_anything_is_allocated() {
    let huge = [1usize << 31, 1 << 31];
    let x = Array::zeros([2], DType::F32);
    let line = line!() + 1;
    let (t, p) = (x.try_broadcast_to([1 << 62, 2]), panic_message(|| drop(x.broadcast_to([1 << 62, 2]))));
    same_error(t, &p, line, "broadcast_in_dim: its result f32[4611686018427387904,2] would hold more bytes");
    let line = line!() + 1;
    let (t, p) = (Array::try_iota(DType::I32, huge, 0), panic_message(|| drop(Array::iota(DType::I32, huge, 0))));
    same_error(t, &p, line, "iota: its result i32[2147483648,2147483648] would hold more bytes");
    // Under a trace too, whatever would compile it.
    let line = line!() + 1;
    let err = make_jaxpr(|x: Array| x.broadcast_to([1 << 40, 1 << 40, 2]).sum(..), &x).unwrap_err().to_string();
    assert!(err.starts_with("broadcast_in_dim: its result f32[1099511627776,1099511627776,2] would hold"), "{err}");
    assert!(err.contains(&here(line)), "{err}");
    // An array that fits is fine, however large its count of elements once broadcast against it.
    assert_eq!(Array::zeros([0, 1 << 40], DType::F64).shape(), [0, 1 << 40]);
}

#[test]
fn try_forms_return_errors_inside_a_trace_without_aborting_it() {
    let x = Array::zeros([2, 3], DType::F32);
    let line = line!() + 3;
    let traced = make_jaxpr(
        |x: Array| {
            let err = x.try_argmax(4).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.starts_with("argmax: axis 4 is out of range for rank 2 (operand f32[2,3])"), "{err}");
            assert!(err.contains(&here(line)), "{err}");
            x.try_max(1).unwrap_or_else(|_| x.clone())
        },
        &x,
    );
    assert!(traced.is_ok(), "{traced:?}");
}
