//! Loop iterations that overlap: in a `scan` whose body ends with library
//! steps (a factorization and an inverse) feeding a carry that the body's
//! first kernel does not read, each iteration's tail runs beside the next
//! iteration's head. Results must match the reference interpreter, with the
//! same bits on any number of threads (one thread runs them in order).

use arrayjit_cpu::{CompileOptions, Executable};
use arrayjit_ir::{parse, HostArray};

mod common;
use common::{data, same_on_1_2_3_threads};

/// How [`program`]'s body differs from a PLN-like step.
#[derive(Clone, Copy, PartialEq)]
enum Body {
    /// The head is the sum of `exp m`, which scales the update of `m` (so it
    /// runs as a kernel of its own); the tail factors the new Gram matrix and
    /// inverts it into the carry `om`, which the head does not read.
    Plain,
    /// The first kernel also reads `om`.
    HeadReadsOm,
    /// The tail's Σ also reads the head's sum.
    TailReadsHead,
    /// The tail also multiplies a third carry, 320 × 320, by a constant: a
    /// product cut into blocks for several threads.
    BigTail,
}

/// A loop of `length` iterations over `n` rows.
fn program(body: Body, n: usize, length: usize, reverse: bool) -> String {
    let e = if body == Body::HeadReadsOm {
        format!(
            "w:f64[] = reduce_sum[axes=(0,1)] om
             wb:f64[{n},30] = broadcast_in_dim[shape=({n},30) broadcast_dimensions=()] w
             e0:f64[{n},30] = exp m
             e:f64[{n},30] = mul e0 wb"
        )
    } else {
        format!("e:f64[{n},30] = exp m")
    };
    let s = match body {
        Body::TailReadsHead => "lt:f64[] = mul l 0.000001:f64
                  lb:f64[30,30] = broadcast_in_dim[shape=(30,30) broadcast_dimensions=()] lt
                  s0:f64[30,30] = add r eye
                  s:f64[30,30] = add s0 lb"
            .to_string(),
        Body::BigTail => {
            "bt:f64[320,320] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] big u
                  bs:f64[] = reduce_sum[axes=(0,1)] mn
                  bsb:f64[320,320] = broadcast_in_dim[shape=(320,320) broadcast_dimensions=()] bs
                  bt2:f64[320,320] = mul bt 0.001:f64
                  big2:f64[320,320] = add bt2 bsb
                  s:f64[30,30] = add r eye"
                .to_string()
        }
        _ => "s:f64[30,30] = add r eye".to_string(),
    };
    let (big_in, big_out, big_res, carries) = match body {
        Body::BigTail => (" u:f64[320,320] big:f64[320,320]", " big3:f64[320,320]", ", big2", 3),
        _ => ("", "", "", 2),
    };
    let (consts, u_const) = if body == Body::BigTail { (3, " u:f64[320,320]") } else { (2, "") };
    let big_carry = if body == Body::BigTail { " big:f64[320,320]" } else { "" };
    let scale = 0.004 / n as f64;
    let gram = 1.0 / n as f64;
    format!(
        "{{ lambda ; y:f64[{n},30] eye:f64[30,30] m:f64[{n},30] om:f64[30,30]{big_in} . let
            m2:f64[{n},30] om2:f64[30,30]{big_out} ls:f64[{length}] = scan[
              length={length}
              num_consts={consts}
              num_carry={carries}
              reverse={reverse}
              unroll=1
              body={{ lambda ; y:f64[{n},30] eye:f64[30,30]{u_const} m:f64[{n},30] om:f64[30,30]{big_carry} . let
                  {e}
                  l:f64[] = reduce_sum[axes=(0,1)] e
                  d:f64[{n},30] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] m om
                  g:f64[{n},30] = sub e y
                  h:f64[{n},30] = add g d
                  z:f64[] = mul l {scale:?}:f64
                  zb:f64[{n},30] = broadcast_in_dim[shape=({n},30) broadcast_dimensions=()] z
                  k:f64[{n},30] = mul h zb
                  mn:f64[{n},30] = sub m k
                  q:f64[30,30] = dot_general[lhs_contract=(0) rhs_contract=(0) lhs_batch=() rhs_batch=()] mn mn
                  r:f64[30,30] = mul q {gram:?}:f64
                  {s}
                  c:f64[30,30] = cholesky s
                  o:f64[30,30] = cholesky_inverse c
                in (mn, o{big_res}, l) }}
            ] y eye{u_arg} m om{big_carry_arg}
          in (m2, om2{big_out_name}, ls) }}",
        u_arg = if body == Body::BigTail { " u" } else { "" },
        big_carry_arg = if body == Body::BigTail { " big" } else { "" },
        big_out_name = if body == Body::BigTail { ", big3" } else { "" },
    )
}

/// Arguments of [`program`]: with `big`, the two 320 × 320 ones too.
fn args(n: usize, big: bool) -> Vec<HostArray> {
    let eye: Vec<f64> = (0..900).map(|i| if i % 31 == 0 { 1.0 } else { 0.0 }).collect();
    let small = match data(n * 30, 62, true) {
        arrayjit_ir::Data::F64(v) => arrayjit_ir::Data::F64(v.into_iter().map(|x| 0.1 * x).collect()),
        d => d,
    };
    let mut args = vec![
        HostArray::new([n, 30], data(n * 30, 61, true)).unwrap(),
        HostArray::new([30, 30], arrayjit_ir::Data::F64(eye.clone())).unwrap(),
        HostArray::new([n, 30], small).unwrap(),
        HostArray::new([30, 30], arrayjit_ir::Data::F64(eye)).unwrap(),
    ];
    if big {
        args.push(HostArray::new([320, 320], data(320 * 320, 63, true)).unwrap());
        args.push(HostArray::new([320, 320], data(320 * 320, 64, true)).unwrap());
    }
    args
}

fn compile(text: &str) -> Executable {
    let (q, _) = arrayjit_lower::optimize(&parse(text).unwrap()).unwrap();
    Executable::compile(&arrayjit_lower::fuse(&q), &CompileOptions::default()).unwrap()
}

/// Loops of several lengths (even and odd, which end in either carry
/// buffer), forward and reversed, with heads of one and two blocks.
#[test]
fn a_tail_of_factorizations_runs_beside_the_next_head() {
    for (n, length, reverse) in [(40, 6, false), (40, 3, true), (40, 2, false), (1000, 5, false), (1000, 4, true)] {
        let text = program(Body::Plain, n, length, reverse);
        let exe = compile(&text);
        let overlaps = exe.loop_overlaps();
        assert!(matches!(overlaps[..], [Some((1, _))]), "{overlaps:?}\n{}", exe.schedule());
        let args = args(n, false);
        let refs: Vec<&HostArray> = args.iter().collect();
        let want = arrayjit_interp::eval_program(&parse(&text).unwrap(), &args).unwrap();
        let got = same_on_1_2_3_threads(|threads| {
            let first = exe.run(&refs).unwrap();
            assert_eq!(exe.run(&refs).unwrap(), first, "a second run on {threads} threads differs");
            first
        });
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.aval(), w.aval());
            for i in 0..g.numel() {
                let (a, b) = (g.data().get(i).as_f64(), w.data().get(i).as_f64());
                assert!((a - b).abs() <= 1e-10 * (1.0 + b.abs()), "n {n} output {k} element {i}: {a} vs {b}");
            }
        }
    }
}

/// What may not overlap: a head that reads the carry the tail writes, a
/// tail that reads what the head writes, and a tail holding a product that
/// would run on several threads; the loop still matches the interpreter.
#[test]
fn loops_that_cannot_overlap_run_in_order() {
    for body in [Body::HeadReadsOm, Body::TailReadsHead, Body::BigTail] {
        let text = program(body, 40, 3, false);
        let exe = compile(&text);
        assert_eq!(exe.loop_overlaps(), vec![None], "{}", exe.schedule());
        let args = args(40, body == Body::BigTail);
        let refs: Vec<&HostArray> = args.iter().collect();
        let want = arrayjit_interp::eval_program(&parse(&text).unwrap(), &args).unwrap();
        let got = same_on_1_2_3_threads(|_| exe.run(&refs).unwrap());
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            for i in 0..g.numel() {
                let (a, b) = (g.data().get(i).as_f64(), w.data().get(i).as_f64());
                assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "output {k} element {i}: {a} vs {b}");
            }
        }
    }
}
