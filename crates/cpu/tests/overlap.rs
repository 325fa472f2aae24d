//! Loop iterations that overlap: in a `scan` whose body ends with library
//! steps (a factorization and an inverse) feeding a carry that the body's
//! first kernel does not read, each iteration's tail runs beside the next
//! iteration's head. Results must match the reference interpreter, with the
//! same bits on any number of threads (one thread runs them in order).

use arrayjit_cpu::{CompileOptions, Executable};
use arrayjit_ir::{parse, HostArray};

mod common;
use common::{data, same_on_1_2_3_threads};

/// A PLN-like step: the head is the sum of `exp m`, which scales the update
/// of `m` (so it runs as a kernel of its own); the tail factors the new Gram
/// matrix and inverts it into the carry `om`, which the head does not read.
/// With `head_reads_om`, the first kernel also reads `om`.
fn program(head_reads_om: bool) -> String {
    let e = if head_reads_om {
        "w:f64[] = reduce_sum[axes=(0,1)] om
         wb:f64[40,30] = broadcast_in_dim[shape=(40,30) broadcast_dimensions=()] w
         e0:f64[40,30] = exp m
         e:f64[40,30] = mul e0 wb"
    } else {
        "e:f64[40,30] = exp m"
    };
    format!(
        "{{ lambda ; y:f64[40,30] eye:f64[30,30] m:f64[40,30] om:f64[30,30] . let
            m2:f64[40,30] om2:f64[30,30] ls:f64[6] = scan[
              length=6
              num_consts=2
              num_carry=2
              reverse=false
              unroll=1
              body={{ lambda ; y:f64[40,30] eye:f64[30,30] m:f64[40,30] om:f64[30,30] . let
                  {e}
                  l:f64[] = reduce_sum[axes=(0,1)] e
                  d:f64[40,30] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] m om
                  g:f64[40,30] = sub e y
                  h:f64[40,30] = add g d
                  z:f64[] = mul l 0.0001:f64
                  zb:f64[40,30] = broadcast_in_dim[shape=(40,30) broadcast_dimensions=()] z
                  k:f64[40,30] = mul h zb
                  mn:f64[40,30] = sub m k
                  q:f64[30,30] = dot_general[lhs_contract=(0) rhs_contract=(0) lhs_batch=() rhs_batch=()] mn mn
                  r:f64[30,30] = mul q 0.025:f64
                  s:f64[30,30] = add r eye
                  c:f64[30,30] = cholesky s
                  o:f64[30,30] = cholesky_inverse c
                in (mn, o, l) }}
            ] y eye m om
          in (m2, om2, ls) }}"
    )
}

fn args() -> Vec<HostArray> {
    let eye: Vec<f64> = (0..900).map(|i| if i % 31 == 0 { 1.0 } else { 0.0 }).collect();
    let small = |seed| match data(1200, seed, true) {
        arrayjit_ir::Data::F64(v) => arrayjit_ir::Data::F64(v.into_iter().map(|x| 0.1 * x).collect()),
        d => d,
    };
    vec![
        HostArray::new([40, 30], data(1200, 61, true)).unwrap(),
        HostArray::new([30, 30], arrayjit_ir::Data::F64(eye.clone())).unwrap(),
        HostArray::new([40, 30], small(62)).unwrap(),
        HostArray::new([30, 30], arrayjit_ir::Data::F64(eye)).unwrap(),
    ]
}

fn compile(text: &str) -> Executable {
    let (q, _) = arrayjit_lower::optimize(&parse(text).unwrap()).unwrap();
    Executable::compile(&arrayjit_lower::fuse(&q), &CompileOptions::default()).unwrap()
}

#[test]
fn a_tail_of_factorizations_runs_beside_the_next_head() {
    let text = program(false);
    let exe = compile(&text);
    let overlaps = exe.loop_overlaps();
    assert!(matches!(overlaps[..], [Some((1, _))]), "{overlaps:?}\n{}", exe.schedule());
    let args = args();
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
            assert!((a - b).abs() <= 1e-10 * (1.0 + b.abs()), "output {k} element {i}: {a} vs {b}");
        }
    }
}

#[test]
fn a_head_that_reads_the_tails_carry_does_not_overlap() {
    let exe = compile(&program(true));
    assert_eq!(exe.loop_overlaps(), vec![None], "{}", exe.schedule());
}
