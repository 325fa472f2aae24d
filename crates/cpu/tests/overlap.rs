//! Loop iterations that overlap: in a `scan` whose body ends with library
//! steps (a factorization and an inverse) feeding a carry that the body's
//! first kernel does not read, each iteration's tail runs beside the next
//! iteration's head. Results must match the reference interpreter, with the
//! same bits on any number of threads (one thread runs them in order).
//! `ARRAYJIT_SOAK=N` runs N fresh random loops instead of the fixed ones.

use arrayjit_cpu::{CompileOptions, Executable};
use arrayjit_ir::{parse, HostArray};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

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

/// The sizes and types of [`program`]'s loop: `n` rows of `p` columns of
/// `dt`, `op` the head's elementwise function, `length` iterations.
#[derive(Clone, Copy, Debug)]
struct Loop {
    n: usize,
    p: usize,
    dt: &'static str,
    op: &'static str,
    length: usize,
    reverse: bool,
}

impl Loop {
    /// The loop of `n` rows of 30 columns of f64 with `exp` in its head.
    fn f64s(n: usize, length: usize, reverse: bool) -> Loop {
        Loop { n, p: 30, dt: "f64", op: "exp", length, reverse }
    }
}

/// The program of loop `l` with body `body`.
fn program(body: Body, l: Loop) -> String {
    let Loop { n, p, dt, op, length, reverse } = l;
    let e = if body == Body::HeadReadsOm {
        format!(
            "w:{dt}[] = reduce_sum[axes=(0,1)] om
             wb:{dt}[{n},{p}] = broadcast_in_dim[shape=({n},{p}) broadcast_dimensions=()] w
             e0:{dt}[{n},{p}] = {op} m
             e:{dt}[{n},{p}] = mul e0 wb"
        )
    } else {
        format!("e:{dt}[{n},{p}] = {op} m")
    };
    let s = match body {
        Body::TailReadsHead => format!(
            "lt:{dt}[] = mul l 0.000001:{dt}
             lb:{dt}[{p},{p}] = broadcast_in_dim[shape=({p},{p}) broadcast_dimensions=()] lt
             s0:{dt}[{p},{p}] = add r eye
             s:{dt}[{p},{p}] = add s0 lb"
        ),
        Body::BigTail => format!(
            "bt:{dt}[320,320] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] big u
             bs:{dt}[] = reduce_sum[axes=(0,1)] mn
             bsb:{dt}[320,320] = broadcast_in_dim[shape=(320,320) broadcast_dimensions=()] bs
             bt2:{dt}[320,320] = mul bt 0.001:{dt}
             big2:{dt}[320,320] = add bt2 bsb
             s:{dt}[{p},{p}] = add r eye"
        ),
        _ => format!("s:{dt}[{p},{p}] = add r eye"),
    };
    let big = body == Body::BigTail;
    let pick = |yes: &str| if big { yes.replace("DT", dt) } else { String::new() };
    let (big_in, big_out, big_res) =
        (pick(" u:DT[320,320] big:DT[320,320]"), pick(" big3:DT[320,320]"), pick(", big2"));
    let (u_const, big_carry) = (pick(" u:DT[320,320]"), pick(" big:DT[320,320]"));
    let (u_arg, big_arg, big_out_name) = (pick(" u"), pick(" big"), pick(", big3"));
    let (consts, carries) = if big { (3, 3) } else { (2, 2) };
    let scale = 0.004 / n as f64;
    let gram = 1.0 / n as f64;
    format!(
        "{{ lambda ; y:{dt}[{n},{p}] eye:{dt}[{p},{p}] m:{dt}[{n},{p}] om:{dt}[{p},{p}]{big_in} . let
            m2:{dt}[{n},{p}] om2:{dt}[{p},{p}]{big_out} ls:{dt}[{length}] = scan[
              length={length}
              num_consts={consts}
              num_carry={carries}
              reverse={reverse}
              unroll=1
              body={{ lambda ; y:{dt}[{n},{p}] eye:{dt}[{p},{p}]{u_const} m:{dt}[{n},{p}] om:{dt}[{p},{p}]{big_carry} . let
                  {e}
                  l:{dt}[] = reduce_sum[axes=(0,1)] e
                  d:{dt}[{n},{p}] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] m om
                  g:{dt}[{n},{p}] = sub e y
                  h:{dt}[{n},{p}] = add g d
                  z:{dt}[] = mul l {scale:?}:{dt}
                  zb:{dt}[{n},{p}] = broadcast_in_dim[shape=({n},{p}) broadcast_dimensions=()] z
                  k:{dt}[{n},{p}] = mul h zb
                  mn:{dt}[{n},{p}] = sub m k
                  q:{dt}[{p},{p}] = dot_general[lhs_contract=(0) rhs_contract=(0) lhs_batch=() rhs_batch=()] mn mn
                  r:{dt}[{p},{p}] = mul q {gram:?}:{dt}
                  {s}
                  c:{dt}[{p},{p}] = cholesky s
                  o:{dt}[{p},{p}] = cholesky_inverse c
                in (mn, o{big_res}, l) }}
            ] y eye{u_arg} m om{big_arg}
          in (m2, om2{big_out_name}, ls) }}"
    )
}

/// Arguments of [`program`] for loop `l`: with `big`, the two 320 × 320 ones too.
fn args(l: Loop, big: bool) -> Vec<HostArray> {
    let (n, p, f64s) = (l.n, l.p, l.dt == "f64");
    let eye: Vec<f64> = (0..p * p).map(|i| if i % (p + 1) == 0 { 1.0 } else { 0.0 }).collect();
    let eye = || match f64s {
        true => arrayjit_ir::Data::F64(eye.clone()),
        false => arrayjit_ir::Data::F32(eye.iter().map(|&x| x as f32).collect()),
    };
    let small = match data(n * p, 62, f64s) {
        arrayjit_ir::Data::F64(v) => arrayjit_ir::Data::F64(v.into_iter().map(|x| 0.1 * x).collect()),
        arrayjit_ir::Data::F32(v) => arrayjit_ir::Data::F32(v.into_iter().map(|x| 0.1 * x).collect()),
        d => d,
    };
    let mut args = vec![
        HostArray::new([n, p], data(n * p, 61, f64s)).unwrap(),
        HostArray::new([p, p], eye()).unwrap(),
        HostArray::new([n, p], small).unwrap(),
        HostArray::new([p, p], eye()).unwrap(),
    ];
    if big {
        args.push(HostArray::new([320, 320], data(320 * 320, 63, f64s)).unwrap());
        args.push(HostArray::new([320, 320], data(320 * 320, 64, f64s)).unwrap());
    }
    args
}

/// Runs `exe` (compiled from `text`) on 1, 2 and 3 threads, which must give
/// the same bits, twice each, and compares with the interpreter within `tol`.
fn agrees_with_the_interpreter(text: &str, exe: &Executable, args: &[HostArray], tol: f64) {
    let refs: Vec<&HostArray> = args.iter().collect();
    let want = arrayjit_interp::eval_program(&parse(text).unwrap(), args).unwrap();
    let got = same_on_1_2_3_threads(|threads| {
        let first = exe.run(&refs).unwrap();
        assert_eq!(exe.run(&refs).unwrap(), first, "a second run on {threads} threads differs");
        first
    });
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.aval(), w.aval());
        for i in 0..g.numel() {
            let (a, b) = (g.data().get(i).as_f64(), w.data().get(i).as_f64());
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{text}\noutput {k} element {i}: {a} vs {b}");
        }
    }
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
        let l = Loop::f64s(n, length, reverse);
        let text = program(Body::Plain, l);
        let exe = compile(&text);
        let overlaps = exe.loop_overlaps();
        assert!(matches!(overlaps[..], [Some((1, _))]), "{overlaps:?}\n{}", exe.schedule());
        agrees_with_the_interpreter(&text, &exe, &args(l, false), 1e-10);
    }
}

/// What may not overlap: a head that reads the carry the tail writes, a
/// tail that reads what the head writes, and a tail holding a product that
/// would run on several threads; the loop still matches the interpreter.
#[test]
fn loops_that_cannot_overlap_run_in_order() {
    for body in [Body::HeadReadsOm, Body::TailReadsHead, Body::BigTail] {
        let l = Loop::f64s(40, 3, false);
        let text = program(body, l);
        let exe = compile(&text);
        assert_eq!(exe.loop_overlaps(), vec![None], "{}", exe.schedule());
        agrees_with_the_interpreter(&text, &exe, &args(l, body == Body::BigTail), 1e-9);
    }
}

/// A fixed seed, so that every run checks the same cases, unless
/// `ARRAYJIT_SOAK=N` asks for N fresh ones.
fn config() -> ProptestConfig {
    match std::env::var("ARRAYJIT_SOAK").ok().and_then(|s| s.parse().ok()) {
        Some(n) => ProptestConfig::with_cases(n),
        None => ProptestConfig { rng_seed: RngSeed::Fixed(0x0e7e_1a95), ..ProptestConfig::with_cases(24) },
    }
}

proptest! {
    #![proptest_config(config())]

    /// Overlapped loops of random sizes, lengths, directions, dtypes and
    /// head functions agree with the interpreter, with the same bits on any
    /// number of threads.
    #[test]
    fn random_overlapped_loops_match_the_interpreter(
        n in 4usize..160,
        p in 1usize..24,
        f64s in any::<bool>(),
        op in prop::sample::select(vec!["exp", "tanh", "sin", "logistic"]),
        length in 2usize..7,
        reverse in any::<bool>(),
    ) {
        let l = Loop { n, p, dt: if f64s { "f64" } else { "f32" }, op, length, reverse };
        let text = program(Body::Plain, l);
        let exe = compile(&text);
        prop_assert!(matches!(exe.loop_overlaps()[..], [Some((1, _))]), "{}", exe.schedule());
        agrees_with_the_interpreter(&text, &exe, &args(l, false), if f64s { 1e-9 } else { 2e-3 });
    }
}
