//! What differentiation reports when it cannot proceed: an `Err` (never a
//! panic) that names the primitive or the problem, and points at the user's
//! code: the line of the operation, or the line that created the transformation.

mod common;
use arrayjit_ad::*;
use arrayjit_ir::prim::{Control, Linalg};
use arrayjit_ir::{Loc, Program};
use arrayjit_trace::bind::bind;
use arrayjit_trace::{lax, make_jaxpr, Array, DType, Error, Result};
use std::sync::Arc;

/// `file:line:` of this file, as the messages print it.
fn at(line: u32) -> String {
    format!("{}:{line}:", file!())
}

fn expect_err<T>(r: Result<T>, starts: &str, line: u32) -> String {
    let Err(e) = r else { panic!("expected an error starting with {starts:?}") };
    let text = e.to_string();
    assert!(text.starts_with(starts), "{text}");
    assert!(text.contains(&at(line)), "expected the location {}, got: {text}", at(line));
    text
}

/// The packed factors of `lu` (a primitive that also accepts rectangular matrices).
fn packed_lu(a: &Array) -> Result<Array> {
    lax::apply(Linalg::Lu.into(), &[a]).map(|mut outs| outs.remove(0))
}

#[test]
fn lu_of_a_rectangular_matrix_has_no_derivative() {
    let a = Array::from_vec((0..12).map(|k| 1.0 + (k * k % 7) as f64).collect::<Vec<_>>(), [4, 3]);
    // Evaluating it is fine; differentiating it is not, in every mode.
    assert_eq!(packed_lu(&a).unwrap().shape(), &[4, 3]);
    let f = |a: Array| packed_lu(&a).map(|p| p.sum(..));
    let why = "lu: can only be differentiated for square matrices, got f64[4,3]";
    let (g, line) = (grad(f), line!());
    expect_err(g(a.clone()), why, line);
    let (r, line) = (value_and_grad(f)(a.clone()), line!());
    expect_err(r, why, line);
    let (r, line) = (jvp(f, &a, &a), line!());
    expect_err(r, why, line);
    let (r, line) = (vjp(f, &a), line!());
    expect_err(r.map(|(y, _)| y), why, line);
    let (j, line) = (jacfwd(|a: Array| packed_lu(&a)), line!());
    expect_err(j(a.clone()), why, line);
    let (j, line) = (jacrev(|a: Array| packed_lu(&a)), line!());
    expect_err(j(a.clone()), why, line);
    let (r, line) = (hvp(f, &a, &a), line!());
    expect_err(r, why, line);
}

/// A one-equation program applying `body` through `call`.
fn calling(body: Program, x: &Array) -> Program {
    let body = Arc::new(body);
    make_jaxpr(|x: Array| bind(Control::Call { body: body.clone() }.into(), &[&x], Loc::default()), x).unwrap()
}

/// Differentiation never puts a `call` or a non-linear primitive into a linear
/// program, but `transpose_program` accepts any program, and says which
/// equation it cannot transpose.
#[test]
fn transposing_what_has_no_transpose_rule_is_an_error() {
    let x = Array::from_vec(vec![1.0f64, 2.0], [2]);
    let doubled = make_jaxpr(|x: Array| &x * 2.0, &x).unwrap();
    let e = transpose_program(&calling(doubled, &x), 0, &[true]).unwrap_err();
    assert!(matches!(&e, Error::Transform { op, .. } if op == "call"), "{e:?}");
    assert!(e.to_string().starts_with("call: has no transpose rule"), "{e}");
    let (p, line) = (make_jaxpr(|x: Array| x.sin(), &x).unwrap(), line!());
    let e = transpose_program(&p, 0, &[true]).unwrap_err().to_string();
    assert!(e.starts_with("sin: is not linear in the operands being transposed"), "{e}");
    // The location is that of the equation: the user's `x.sin()`.
    assert!(e.contains(&at(line)), "{e}");
}

#[test]
fn grad_needs_a_scalar_float_loss() {
    let x = Array::from_vec(vec![1.0f64, 2.0], [2]);
    let why = "grad needs a scalar float loss, but the function returned";
    let (g, line) = (grad(|x: Array| x.exp()), line!());
    let e = expect_err(g(x.clone()), why, line);
    assert!(e.contains("f64[2]"), "{e}");
    let (g, line) = (grad(|x: Array| x.argmax(0)), line!());
    let e = expect_err(g(x.clone()), why, line);
    assert!(e.contains("i32[]"), "{e}");
    let (g, line) = (grad(|x: Array| x.sum(..).astype(DType::I32)), line!());
    expect_err(g(x.clone()), why, line);
    let (g, line) = (value_and_grad_aux(|x: Array| (x.sin(), x.cos())), line!());
    expect_err(g(x.clone()), why, line);
    let (g, line) = (grad_argnums(|(a, b): (Array, Array)| &a * &b, Arg::<0>), line!());
    expect_err(g((x.clone(), x.clone())), why, line);
    // Through nested transformations, the message points at the inner one.
    let (inner, line) = (grad(|x: Array| x.exp()), line!());
    expect_err(grad(|x: Array| inner(x).map(|g| g.sum(..)))(x), why, line);
}

#[test]
fn errors_point_at_the_users_line() {
    let x = Array::from_vec(vec![1.0f64, 2.0], [2]);
    // A shape error inside the differentiated function: the line of the operation.
    let (g, line) = (grad(|x: Array| x.reshape([3]).sum(..)), line!());
    expect_err(g(x.clone()), "reshape: cannot reshape f64[2]", line);
    // Bad tangents and cotangents: the line of the call.
    let (r, line) = (jvp(|x: Array| x.sin(), &x, &Array::ones([3], DType::F64)), line!());
    expect_err(r, "the tangent of input 0 is f64[3] but the input is f64[2]", line);
    let (_, pb) = vjp(|x: Array| x.sin(), &x).unwrap();
    let (r, line) = (pb.call(&Array::scalar(1.0f64)), line!());
    expect_err(r, "the cotangent of output 0 is f64[] but the output is f64[2]", line);
}
