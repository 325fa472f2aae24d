//! Loop carries updated in place: a `scan` whose body's kernel reads each
//! element of a carry before writing the same element of its next value (and
//! nothing reads the old value later) keeps that carry in one buffer. Results
//! must match the reference interpreter either way, with the same bits on any
//! number of threads, and the carries that do not qualify must not be updated
//! in place.

use arrayjit_cpu::{CompileOptions, Executable};
use arrayjit_ir::{parse, HostArray};

mod common;
use common::{data, same_on_1_2_3_threads};

/// Compiles `text`, checks which carries are updated in place, and compares
/// runs on 1, 2 and 3 threads with the interpreter (relative to `tol`) and
/// with each other (bit for bit). Each run is made twice, so the second
/// finds the arena and the loop's buffers as the first left them.
fn check(text: &str, shapes: &[&[usize]], f64s: bool, tol: f64, in_place: &[bool]) {
    let p = parse(text).unwrap();
    let args: Vec<HostArray> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| HostArray::new(s.to_vec(), data(s.iter().product(), 40 + i as u64, f64s)).unwrap())
        .collect();
    let want = arrayjit_interp::eval_program(&p, &args).unwrap();
    let (q, _) = arrayjit_lower::optimize(&p).unwrap();
    let exe = Executable::compile(&arrayjit_lower::fuse(&q), &CompileOptions::default()).unwrap();
    assert_eq!(exe.loop_carries_in_place(), vec![in_place.to_vec()], "{}", exe.schedule());
    let refs: Vec<&HostArray> = args.iter().collect();
    let got = same_on_1_2_3_threads(|threads| {
        let first = exe.run(&refs).unwrap();
        assert_eq!(exe.run(&refs).unwrap(), first, "a second run on {threads} threads differs");
        first
    });
    // The arguments are not written: the first iteration reads them, the rest read the outputs.
    for (a, s) in args.iter().zip(shapes.iter().enumerate()) {
        assert_eq!(a.data(), &data(s.1.iter().product(), 40 + s.0 as u64, f64s), "argument {} changed", s.0);
    }
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.aval(), w.aval());
        for i in 0..g.numel() {
            let (a, b) = (g.data().get(i).as_f64(), w.data().get(i).as_f64());
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{text}\noutput {k} element {i}: {a} vs {b}");
        }
    }
}

/// An optimizer-like update: two carries, each read at its own point by the
/// kernel that writes its next value.
#[test]
fn elementwise_updates_of_carries_run_in_place() {
    for (dt, f64s, tol) in [("f32", false, 1e-5), ("f64", true, 1e-12)] {
        let text = format!(
            "{{ lambda ; m:{dt}[300,70] v:{dt}[300,70] xs:{dt}[5,300,70] . let
                m2:{dt}[300,70] v2:{dt}[300,70] ys:{dt}[5] = scan[
                  length=5
                  num_consts=0
                  num_carry=2
                  reverse=false
                  unroll=1
                  body={{ lambda ; a:{dt}[300,70] b:{dt}[300,70] x:{dt}[300,70] . let
                      c:{dt}[300,70] = mul a 0.9:{dt}
                      d:{dt}[300,70] = mul x 0.1:{dt}
                      e:{dt}[300,70] = add c d
                      f:{dt}[300,70] = mul x x
                      g:{dt}[300,70] = add b f
                      h:{dt}[300,70] = abs g
                      j:{dt}[300,70] = sqrt h
                      k:{dt}[300,70] = add j 1.0:{dt}
                      i:{dt}[300,70] = div e k
                      s:{dt}[] = reduce_sum[axes=(0,1)] i
                    in (e, g, s) }}
                ] m v xs
              in (m2, v2, ys) }}"
        );
        check(&text, &[&[300, 70], &[300, 70], &[5, 300, 70]], f64s, tol, &[true, true]);
    }
}

/// The carry feeds a product run by row blocks with the kernel that writes
/// its next value, and that value's Gram product is summed by the same
/// blocks: each block reads its rows of the carry before overwriting them.
#[test]
fn a_carry_read_by_a_row_fused_product_runs_in_place() {
    for (dt, f64s, tol) in [("f32", false, 1e-4), ("f64", true, 1e-10)] {
        let text = format!(
            "{{ lambda ; w:{dt}[50,50] c:{dt}[3000,50] . let
                r:{dt}[3000,50] gs:{dt}[4,50,50] = scan[
                  length=4
                  num_consts=1
                  num_carry=1
                  reverse=false
                  unroll=1
                  body={{ lambda ; w:{dt}[50,50] c:{dt}[3000,50] . let
                      o:{dt}[3000,50] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] c w
                      a:{dt}[3000,50] = mul o 0.05:{dt}
                      t:{dt}[3000,50] = tanh c
                      d:{dt}[3000,50] = add t a
                      g:{dt}[50,50] = dot_general[lhs_contract=(0) rhs_contract=(0) lhs_batch=() rhs_batch=()] d d
                    in (d, g) }}
                ] w c
              in (r, gs) }}"
        );
        check(&text, &[&[50, 50], &[3000, 50]], f64s, tol, &[true]);
        // The body, compiled on its own, runs its product by row blocks with
        // the kernel, and the Gram product with them: the in-place case above
        // is the fused one.
        let body = format!(
            "{{ lambda ; w:{dt}[50,50] c:{dt}[3000,50] . let
                o:{dt}[3000,50] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] c w
                a:{dt}[3000,50] = mul o 0.05:{dt}
                t:{dt}[3000,50] = tanh c
                d:{dt}[3000,50] = add t a
                g:{dt}[50,50] = dot_general[lhs_contract=(0) rhs_contract=(0) lhs_batch=() rhs_batch=()] d d
              in (d, g) }}"
        );
        let (q, _) = arrayjit_lower::optimize(&parse(&body).unwrap()).unwrap();
        let exe = Executable::compile(&arrayjit_lower::fuse(&q), &CompileOptions::default()).unwrap();
        assert_eq!((exe.fused_products(), exe.fused_gram_products()), (1, 1), "{}", exe.schedule());
    }
}

/// A carry that a later step still reads (here a product of the new value
/// with the old one) keeps two buffers.
#[test]
fn a_carry_read_after_its_update_alternates_buffers() {
    let text = "{ lambda ; c:f64[64,64] . let
        r:f64[64,64] ps:f64[3,64,64] = scan[
          length=3
          num_consts=0
          num_carry=1
          reverse=false
          unroll=1
          body={ lambda ; c:f64[64,64] . let
              a:f64[64,64] = mul c 0.5:f64
              d:f64[64,64] = add a 1.0:f64
              p:f64[64,64] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] d c
            in (d, p) }
        ] c
      in (r, ps) }";
    check(text, &[&[64, 64]], true, 1e-12, &[false]);
}

/// A kernel that reads the carry away from its own point (a transpose) while
/// writing the next value keeps two buffers too.
#[test]
fn a_carry_read_transposed_alternates_buffers() {
    let text = "{ lambda ; c:f64[64,64] . let
        r:f64[64,64] = scan[
          length=3
          num_consts=0
          num_carry=1
          reverse=false
          unroll=1
          body={ lambda ; c:f64[64,64] . let
              t:f64[64,64] = transpose[permutation=(1,0)] c
              a:f64[64,64] = mul c 0.5:f64
              d:f64[64,64] = add a t
            in (d) }
        ] c
      in (r) }";
    check(text, &[&[64, 64]], true, 1e-12, &[false]);
}

/// A `while` loop updates its carries in place too where they qualify: the
/// counter (a float, from 0.756 here) and the array read at their own
/// points, not the matrix read transposed. The bounds give an odd, an even
/// and no number of iterations, so the double-buffered carry ends in either
/// buffer or never leaves the argument.
#[test]
fn while_loop_carries_run_in_place() {
    for bound in ["7.0", "6.0", "-5.0"] {
        let text = format!(
            "{{ lambda ; i:f64[] c:f64[200,30] e:f64[30,30] . let
                j:f64[] d:f64[200,30] f:f64[30,30] = while[
                  cond_consts=0
                  body_consts=0
                  cond={{ lambda ; i:f64[] c:f64[200,30] e:f64[30,30] . let
                      b:bool[] = lt i {bound}:f64
                    in (b) }}
                  body={{ lambda ; i:f64[] c:f64[200,30] e:f64[30,30] . let
                      k:f64[] = add i 1.0:f64
                      a:f64[200,30] = mul c 0.5:f64
                      s:f64[200,30] = sin c
                      d:f64[200,30] = add a s
                      t:f64[30,30] = transpose[permutation=(1,0)] e
                      h:f64[30,30] = mul e 0.5:f64
                      f:f64[30,30] = add h t
                    in (k, d, f) }}
                ] i c e
              in (j, d, f) }}"
        );
        check(&text, &[&[], &[200, 30], &[30, 30]], true, 1e-12, &[true, true, false]);
    }
}

/// A scan with both kinds of carry, unrolled (passes of two iterations, then
/// one) and reversed: the in-place carry and the double-buffered one each
/// end in the output.
#[test]
fn a_scan_mixes_in_place_and_double_buffered_carries() {
    for length in [4, 5] {
        let text = format!(
            "{{ lambda ; m:f64[100,40] e:f64[40,40] xs:f64[{length},100,40] . let
                m2:f64[100,40] e2:f64[40,40] ys:f64[{length}] = scan[
                  length={length}
                  num_consts=0
                  num_carry=2
                  reverse=true
                  unroll=2
                  body={{ lambda ; m:f64[100,40] e:f64[40,40] x:f64[100,40] . let
                      a:f64[100,40] = mul m 0.9:f64
                      b:f64[100,40] = add a x
                      t:f64[40,40] = transpose[permutation=(1,0)] e
                      h:f64[40,40] = mul e 0.5:f64
                      f:f64[40,40] = add h t
                      s:f64[] = reduce_sum[axes=(0,1)] b
                    in (b, f, s) }}
                ] m e xs
              in (m2, e2, ys) }}"
        );
        check(&text, &[&[100, 40], &[40, 40], &[length, 100, 40]], true, 1e-12, &[true, false]);
    }
}

/// A carry whose old value the body also returns (as a y) keeps two
/// buffers, as does a new value returned twice.
#[test]
fn carries_returned_as_they_are_or_twice_alternate_buffers() {
    let text = "{ lambda ; c:f64[50,20] d:f64[50,20] . let
        r:f64[50,20] q:f64[50,20] olds:f64[3,50,20] twice:f64[3,50,20] = scan[
          length=3
          num_consts=0
          num_carry=2
          reverse=false
          unroll=1
          body={ lambda ; c:f64[50,20] d:f64[50,20] . let
              a:f64[50,20] = mul c 0.5:f64
              b:f64[50,20] = add a 1.0:f64
              e:f64[50,20] = cos d
            in (b, e, c, e) }
        ] c d
      in (r, q, olds, twice) }";
    check(text, &[&[50, 20], &[50, 20]], true, 1e-12, &[false, false]);
}
