//! The text form: exact printed text of small programs, reading it back, and
//! the errors (with positions) that the parser reports for malformed text.

use arrayjit_ir::prim::{Control, Elementwise, Linalg, Reduction, ShapeOp};
use arrayjit_ir::{parse, AVal, Atom, DType, Data, HostArray, Loc, Prim, Program, ProgramBuilder, Scalar, Shape, Var};
use std::sync::Arc;

/// Adds an equation whose output types come from the primitive's own rule.
fn eqn(b: &mut ProgramBuilder, prim: impl Into<Prim>, inputs: Vec<Atom>) -> Vec<Var> {
    let prim = prim.into();
    let ins: Vec<AVal> = inputs
        .iter()
        .map(|a| match a {
            Atom::Var(v) => b.aval(*v).clone(),
            Atom::Lit(s) => AVal::scalar(s.dtype()),
        })
        .collect();
    let outs = prim.abstract_eval(&ins).unwrap();
    b.add_eqn(prim, inputs, outs, Loc::default())
}

fn f32s(xs: &[f32]) -> Arc<HostArray> {
    Arc::new(HostArray::new([xs.len()], Data::F32(xs.to_vec())).unwrap())
}

/// Checks the printed text and that it reads back to the same program.
fn assert_text(p: &Program, text: &str) {
    assert_eq!(p.to_string(), text);
    assert_eq!(parse(text).as_ref(), Ok(p));
}

#[test]
fn the_example_program() {
    let mut b = ProgramBuilder::new();
    let a = b.add_const(f32s(&[1.0, 2.0, 3.0]));
    let x = b.add_input(AVal::new(DType::F32, [3]));
    b.add_input(AVal::scalar(DType::I32));
    let d = eqn(&mut b, Elementwise::Add, vec![x.into(), a.into()]);
    let e = eqn(&mut b, ShapeOp::BroadcastInDim { shape: Shape::from([2, 3]), dims: vec![1] }, vec![d[0].into()]);
    let f = eqn(&mut b, Reduction::Sum { axes: vec![0, 1] }, vec![e[0].into()]);
    let g = eqn(&mut b, Elementwise::Mul, vec![f[0].into(), Atom::Lit(Scalar::F32(2.0))]);
    let p = b.finish(vec![g[0].into(), Atom::Lit(Scalar::I32(1))]);
    assert_text(
        &p,
        "{ lambda a:f32[3]{1.0, 2.0, 3.0} ; b:f32[3] c:i32[] . let
    d:f32[3] = add b a
    e:f32[2,3] = broadcast_in_dim[shape=(2,3) broadcast_dimensions=(1)] d
    f:f32[] = reduce_sum[axes=(0,1)] e
    g:f32[] = mul f 2.0:f32
  in (g, 1:i32) }",
    );
}

#[test]
fn nested_call_multiple_outputs_and_iota() {
    let body = {
        let mut b = ProgramBuilder::new();
        let half = b.add_const(Arc::new(HostArray::scalar(Scalar::F32(0.5))));
        let x = b.add_input(AVal::new(DType::F32, [2, 2]));
        let y = eqn(&mut b, Elementwise::Mul, vec![x.into(), half.into()]);
        b.finish(vec![y[0].into()])
    };
    let mut b = ProgramBuilder::new();
    let a = b.add_input(AVal::new(DType::F32, [2, 2]));
    let lu = eqn(&mut b, Linalg::Lu, vec![a.into()]);
    let iota = eqn(&mut b, ShapeOp::Iota { dtype: DType::I32, shape: Shape::from([2, 2]), axis: 1 }, vec![]);
    let call = eqn(&mut b, Control::Call { body: Arc::new(body) }, vec![lu[0].into()]);
    let p = b.finish(vec![call[0].into(), lu[1].into(), iota[0].into()]);
    assert_text(
        &p,
        "{ lambda ; a:f32[2,2] . let
    b:f32[2,2] c:i32[2] d:i32[2] = lu a
    e:i32[2,2] = iota[dtype=i32 shape=(2,2) dimension=1]
    f:f32[2,2] = call[
      body={ lambda a:f32[]{0.5} ; b:f32[2,2] . let
          c:f32[2,2] = mul b a
        in (c) }
    ] b
  in (f, c, e) }",
    );
}

#[test]
fn empty_programs_and_calls_without_outputs() {
    let empty = ProgramBuilder::new().finish(vec![]);
    assert_text(&empty, "{ lambda ; . let\n  in () }");
    let mut b = ProgramBuilder::new();
    let x = b.add_input(AVal::new(DType::Bool, [0]));
    eqn(&mut b, Control::Call { body: Arc::new(empty) }, vec![]);
    let p = b.finish(vec![x.into(), Atom::Lit(Scalar::F64(1.5))]);
    assert_text(
        &p,
        "{ lambda ; a:bool[0] . let
    = call[
      body={ lambda ; . let
        in () }
    ]
  in (a, 1.5:f64) }",
    );
}

#[test]
fn special_values_round_trip_bit_for_bit() {
    let mut b = ProgramBuilder::new();
    let odd_nan = f32::from_bits(0x7fc0_0001);
    let c = b.add_const(f32s(&[-0.0, f32::INFINITY, f32::NAN, -f32::NAN, odd_nan, 1e-45, f32::MAX]));
    let lit = Atom::Lit(Scalar::F64(-f64::NAN));
    let y = eqn(&mut b, Elementwise::Mul, vec![c.into(), Atom::Lit(Scalar::F32(f32::NEG_INFINITY))]);
    let p = b.finish(vec![y[0].into(), lit, Atom::Lit(Scalar::I32(i32::MIN)), Atom::Lit(Scalar::Bool(false))]);
    assert_text(
        &p,
        "{ lambda a:f32[7]{-0.0, inf, NaN, -NaN, NaN(0x7fc00001), 1e-45, 3.4028235e38} ; . let
    b:f32[7] = mul a -inf:f32
  in (b, -NaN:f64, -2147483648:i32, false:bool) }",
    );
}

#[test]
fn whitespace_and_names_are_free() {
    let canonical = parse("{ lambda ; a:f32[3] . let\n    b:f32[3] = neg a\n  in (b) }").unwrap();
    let messy = "{lambda;x:f32[ 3 ].let y : f32[3]=neg x in(y,)}";
    assert_eq!(parse(messy), Ok(canonical));
}

/// The error message for a text, with its position.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(p) => panic!("parsed:\n{p}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn errors_name_the_position_and_what_was_expected() {
    assert_eq!(
        error("{ lambda ; a:f32[3] . let\n    b:f32[3] neg a\n  in (b) }"),
        "line 2, column 14: expected `=`, found `neg`"
    );
    assert_eq!(
        error("{ lambda ; a:f32[3] . let\n    neg a\n  in (a) }"),
        "line 2, column 5: expected an equation (`b:f32[2] = neg a`) or `in`, found `neg`"
    );
    assert_eq!(
        error("{ lambda ; a:f16[3] . let in (a) }"),
        "line 1, column 14: unknown dtype `f16` (expected bool, i32, f32 or f64)"
    );
    assert_eq!(
        error("{ lambda ; a:f32[3] . let in (a) } x"),
        "line 1, column 36: expected the end of the text after the program, found `x`"
    );
    assert_eq!(
        error("{ lambda ; a:f32[3] . let\n  in (a"),
        "line 2, column 8: expected `,` or `)`, found the end of the text"
    );
    assert_eq!(error("{ lambda ; a:f32[3] @ . let in (a) }"), "line 1, column 21: unexpected character `@`");
    assert_eq!(
        error("{ lambda ; in:f32[3] . let in (in) }"),
        "line 1, column 12: `in` is a reserved word, not a variable name"
    );
}

#[test]
fn unknown_primitives_and_params_are_rejected() {
    assert_eq!(
        error("{ lambda ; a:f32[3] . let\n    b:f32[3] = frobnicate a\n  in (b) }"),
        "line 2, column 16: unknown primitive `frobnicate`"
    );
    assert_eq!(
        error("{ lambda ; a:f32[3] . let\n    b:f32[] = reduce_sum[axes=(0) keepdims=true] a\n  in (b) }"),
        "line 2, column 15: reduce_sum: unknown parameter `keepdims`"
    );
    assert_eq!(
        error("{ lambda ; a:f32[3] . let\n    b:f32[] = reduce_sum a\n  in (b) }"),
        "line 2, column 15: missing parameter `axes`"
    );
    assert_eq!(
        error("{ lambda ; a:f32[3] . let\n    b:f32[] = reduce_sum[axes=0] a\n  in (b) }"),
        "line 2, column 15: parameter `axes` should be a tuple of integers, got Int(0)"
    );
    assert_eq!(
        error("{ lambda ; a:f32[3] . let b:f32[] = reduce_sum[axes=(0) axes=(0)] a in (b) }"),
        "line 1, column 57: parameter `axes` is given twice"
    );
}

#[test]
fn variables_must_be_defined_once_before_use() {
    assert_eq!(
        error("{ lambda ; a:f32[3] . let\n    b:f32[3] = neg c\n  in (b) }"),
        "line 2, column 20: undefined variable `c`"
    );
    assert_eq!(
        error("{ lambda ; a:f32[3] . let\n    a:f32[3] = neg a\n  in (a) }"),
        "line 2, column 5: variable `a` is already defined"
    );
    assert_eq!(
        error("{ lambda ; a:f32[3] a:f32[3] . let in (a) }"),
        "line 1, column 21: variable `a` is already defined"
    );
    assert_eq!(
        error("{ lambda ; a:f32[2,2] . let b:f32[2,2] b:i32[2] c:i32[2] = lu a in (b) }"),
        "line 1, column 40: variable `b` is defined twice in one equation"
    );
    // A body sees only its own variables.
    assert_eq!(
        error("{ lambda ; a:f32[] . let\n    b:f32[] = call[\n      body={ lambda ; . let c:f32[] = neg a in (c) }\n    ]\n  in (b) }"),
        "line 3, column 43: undefined variable `a`"
    );
    assert_eq!(error("{ lambda ; a:f32[] . let in (b) }"), "line 1, column 30: undefined variable `b`");
}

#[test]
fn declared_types_must_match_the_rule() {
    assert_eq!(
        error("{ lambda ; a:f32[3] . let\n    b:f32[4] = exp a\n  in (b) }"),
        "line 2, column 5: the equation declares f32[4] but `exp` gives f32[3]"
    );
    assert_eq!(
        error("{ lambda ; a:f32[2,2] . let\n    b:f32[2,2] = lu a\n  in (b) }"),
        "line 2, column 5: the equation declares f32[2,2] but `lu` gives f32[2,2], i32[2] and i32[2]"
    );
    assert_eq!(
        error("{ lambda ; a:f32[3] b:f32[4] . let\n    c:f32[3] = add a b\n  in (c) }"),
        "line 2, column 16: add: operands f32[3] and f32[4] have different shapes; elementwise operands must have \
         equal shapes (or be scalars), so broadcast them first"
    );
}

#[test]
fn constants_and_literals_must_fit_their_types() {
    assert_eq!(
        error("{ lambda a:f32[3]{1.0, 2.0} ; . let in (a) }"),
        "line 1, column 18: constant `a`: cannot build an array of shape [3] from 2 elements: it needs 3"
    );
    assert_eq!(
        error("{ lambda a:i32[2]{1, 2.5} ; . let in (a) }"),
        "line 1, column 22: `2.5` is not a valid i32 value"
    );
    assert_eq!(error("{ lambda ; . let in (true:f32) }"), "line 1, column 22: `true` is not a valid f32 value");
    assert_eq!(
        error("{ lambda ; . let in (3000000000:i32) }"),
        "line 1, column 22: `3000000000` is not a valid i32 value"
    );
    assert_eq!(
        error("{ lambda ; . let in (NaN(0x3f800000):f32) }"),
        "line 1, column 22: `NaN(0x3f800000)`, whose bits are not a NaN, is not a valid f32 value"
    );
    assert_eq!(
        error("{ lambda ; a:f32[99999999999,99999999999,99999999999] . let in (a) }"),
        "line 1, column 14: the type f32[99999999999,99999999999,99999999999] holds more bytes than fit in memory"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let mut text = String::from("{ lambda ; . let in () }");
    for _ in 0..200 {
        text = format!("{{ lambda ; . let = call[body={text}] in () }}");
    }
    assert!(error(&text).contains("programs are nested more than 64 deep"), "{}", error(&text));
}

#[test]
fn large_constants_are_elided_unless_asked_for_in_full() {
    use arrayjit_ir::{AVal, Data, HostArray, Loc, ProgramBuilder};
    use std::sync::Arc;
    let mut b = ProgramBuilder::new();
    let c = b.add_const(Arc::new(HostArray::new([100], Data::F32((0..100).map(|i| i as f32).collect())).unwrap()));
    let x = b.add_input(AVal::new(arrayjit_ir::DType::F32, [100]));
    let y = b.add_eqn(
        arrayjit_ir::prim::Elementwise::Add.into(),
        vec![x.into(), c.into()],
        vec![AVal::new(arrayjit_ir::DType::F32, [100])],
        Loc::default(),
    );
    let p = b.finish(vec![y[0].into()]);
    let short = p.to_string();
    assert!(short.contains("a:f32[100]{…}"), "{short}");
    let e = parse(&short).unwrap_err().to_string();
    assert!(e.contains("elided") && e.contains("{:#}"), "{e}");
    assert_eq!(parse(&format!("{p:#}")), Ok(p));
}
