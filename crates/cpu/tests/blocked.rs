//! Kernels large enough to run in blocks on several threads: stores,
//! reductions over the blocked axis (combined from per-block partials) and
//! over the others, against the reference interpreter.

use arrayjit_cpu::{CompileOptions, Executable};
use arrayjit_ir::{parse, HostArray, Program};

mod common;
use common::{data, same_on_1_2_3_threads};

/// `p` optimised, fused and compiled with the default options.
fn compiled(p: &Program) -> Executable {
    let (q, _) = arrayjit_lower::optimize(p).unwrap();
    Executable::compile(&arrayjit_lower::fuse(&q), &CompileOptions::default()).unwrap()
}

fn check(text: &str, shape: &[usize], f64s: bool, tol: f64) {
    let p = parse(text).unwrap();
    let n: usize = shape.iter().product();
    let args: Vec<HostArray> =
        (0..p.inputs.len()).map(|i| HostArray::new(shape.to_vec(), data(n, i as u64 + 7, f64s)).unwrap()).collect();
    let want = arrayjit_interp::eval_program(&p, &args).unwrap();
    let exe = compiled(&p);
    let refs: Vec<&HostArray> = args.iter().collect();
    for _ in 0..2 {
        // The second run reuses the arena and the partial buffers.
        let got = exe.run(&refs).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.aval(), w.aval());
            for i in 0..g.numel() {
                let (a, b) = (g.data().get(i).as_f64(), w.data().get(i).as_f64());
                assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{text}: element {i}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn blocked_stores_and_reductions_match_the_interpreter() {
    for (dt, f64s, tol) in [("f32", false, 1e-4), ("f64", true, 1e-11)] {
        let text = format!(
            "{{ lambda ; a:{dt}[1000,300] b:{dt}[1000,300] . let
                c:{dt}[1000,300] = mul a b
                d:{dt}[1000,300] = add c a
                e:{dt}[300] = reduce_sum[axes=(0)] d
                f:{dt}[1000] = reduce_max[axes=(1)] d
                g:{dt}[] = reduce_sum[axes=(0,1)] c
                h:{dt}[300] = reduce_min[axes=(0)] b
              in (d, e, f, g, h) }}"
        );
        check(&text, &[1000, 300], f64s, tol);
    }
}

#[test]
fn blocked_transposed_reads_match_the_interpreter() {
    let text = "{ lambda ; a:f32[500,400] b:f32[500,400] . let
        c:f32[400,500] = transpose[permutation=(1,0)] a
        d:f32[400,500] = transpose[permutation=(1,0)] b
        e:f32[400,500] = sub c d
        f:f32[500] = reduce_sum[axes=(0)] e
      in (e, f) }";
    check(text, &[500, 400], false, 1e-4);
}

#[test]
fn donated_memory_in_blocked_kernels() {
    let p = parse(
        "{ lambda ; a:f32[1000,300] b:f32[1000,300] . let
            c:f32[1000,300] = mul a b
            d:f32[1000,300] = add c a
            e:f32[300] = reduce_sum[axes=(0)] d
          in (d, e) }",
    )
    .unwrap();
    let exe = compiled(&p);
    assert!(!exe.donations().is_empty());
    let a = HostArray::new([1000, 300], data(300_000, 1, false)).unwrap();
    let b = HostArray::new([1000, 300], data(300_000, 2, false)).unwrap();
    let want = exe.run(&[&a, &b]).unwrap();
    let addr = a.as_ptr();
    let got = exe.run_with(vec![arrayjit_cpu::Arg::Donated(a), arrayjit_cpu::Arg::Borrowed(&b)]).unwrap();
    assert_eq!(got, want);
    assert_eq!(got[0].as_ptr(), addr);
}

/// Blocks are cut by size alone and partial results combined in block order,
/// so one thread and several give the same bits.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let p = parse(
        "{ lambda ; a:f32[2000,300] b:f32[2000,300] . let
            c:f32[2000,300] = mul a b
            d:f32[2000,300] = exp c
            e:f32[] = reduce_sum[axes=(0,1)] d
            f:f32[300] = reduce_sum[axes=(0)] c
            g:f32[300,300] = dot_general[lhs_contract=(0) rhs_contract=(0) lhs_batch=() rhs_batch=()] a a
            h:f32[2000,300] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] b g
          in (e, f, g, h) }",
    )
    .unwrap();
    let exe = compiled(&p);
    let a = HostArray::new([2000, 300], data(600_000, 3, false)).unwrap();
    let b = HostArray::new([2000, 300], data(600_000, 4, false)).unwrap();
    same_on_1_2_3_threads(|_| exe.run(&[&a, &b]).unwrap());
}

/// Runs `exe` on 1, 2 and 3 threads, which must give the same bits, and
/// compares the result with the interpreter's run of `p`: within
/// `tol·(1 + |want|)` per element, or `tol·max|want|` for results that are
/// sums in another order (`by_largest`).
fn agrees_with_the_interpreter(p: &Program, exe: &Executable, args: &[HostArray], tol: f64, by_largest: bool) {
    let refs: Vec<&HostArray> = args.iter().collect();
    let want = arrayjit_interp::eval_program(p, args).unwrap();
    let got = same_on_1_2_3_threads(|_| exe.run(&refs).unwrap());
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.aval(), w.aval());
        let largest = (0..w.numel()).map(|i| w.data().get(i).as_f64().abs()).fold(1.0, f64::max);
        for i in 0..g.numel() {
            let (a, b) = (g.data().get(i).as_f64(), w.data().get(i).as_f64());
            let bound = if by_largest { tol * largest } else { tol * (1.0 + b.abs()) };
            assert!((a - b).abs() <= bound, "output {k} element {i}: {a} vs {b}");
        }
    }
}

/// A product whose only reader is the next kernel runs with it by row
/// blocks: same results as the interpreter, and the same bits on any number
/// of threads.
#[test]
fn products_fused_by_rows_match_the_interpreter() {
    for (dt, f64s, tol) in [("f32", false, 2e-4), ("f64", true, 1e-10)] {
        let text = format!(
            "{{ lambda ; m:{dt}[3000,50] w:{dt}[50,50] x:{dt}[3000,50] . let
                o:{dt}[3000,50] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] m w
                a:{dt}[3000,50] = mul o 0.1:{dt}
                b:{dt}[3000,50] = exp a
                c:{dt}[3000,50] = mul b x
                y:{dt}[3000,50] = add c o
                s:{dt}[] = reduce_sum[axes=(0,1)] y
                col:{dt}[50] = reduce_sum[axes=(0)] y
                row:{dt}[3000] = reduce_max[axes=(1)] y
              in (y, s, col, row) }}"
        );
        let p = parse(&text).unwrap();
        let exe = compiled(&p);
        assert_eq!(exe.fused_products(), 1, "{}", exe.schedule());
        let args = [
            HostArray::new([3000, 50], data(150_000, 11, f64s)).unwrap(),
            HostArray::new([50, 50], data(2500, 12, f64s)).unwrap(),
            HostArray::new([3000, 50], data(150_000, 13, f64s)).unwrap(),
        ];
        agrees_with_the_interpreter(&p, &exe, &args, tol, false);
    }
}

/// A product whose only reader comes two steps later moves down next to it
/// and runs with it by row blocks; results stay those of the interpreter.
#[test]
fn a_product_moves_next_to_its_reader_to_run_with_it_by_rows() {
    let p = parse(
        "{ lambda ; m:f64[3000,50] w:f64[50,50] x:f64[3000,50] v:f64[40,9] . let
            o:f64[3000,50] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] m w
            e:f64[40,9] = exp v
            t:f64[] = reduce_sum[axes=(0,1)] e
            tb:f64[3000,50] = broadcast_in_dim[shape=(3000,50) broadcast_dimensions=()] t
            a:f64[3000,50] = mul o tb
            y:f64[3000,50] = add a x
            s:f64[50] = reduce_sum[axes=(0)] y
          in (y, s) }",
    )
    .unwrap();
    let (q, _) = arrayjit_lower::optimize(&p).unwrap();
    let schedule = arrayjit_lower::fuse(&q);
    let at = |dot: bool| schedule.steps.iter().position(|s| matches!(s, arrayjit_lower::Step::Prim { .. }) == dot);
    let (product, reader) = (at(true).unwrap(), schedule.steps.len() - 1);
    assert!(product + 1 < reader, "the product should not already precede its reader:\n{schedule}");
    let exe = Executable::compile(&schedule, &CompileOptions::default()).unwrap();
    assert_eq!(exe.fused_products(), 1, "{}", exe.schedule());
    let unfused = Executable::compile(&schedule, &CompileOptions { row_fusion: false, ..CompileOptions::default() });
    assert_eq!(unfused.unwrap().fused_products(), 0);
    let args = [
        HostArray::new([3000, 50], data(150_000, 21, true)).unwrap(),
        HostArray::new([50, 50], data(2500, 22, true)).unwrap(),
        HostArray::new([3000, 50], data(150_000, 23, true)).unwrap(),
        HostArray::new([40, 9], data(360, 24, true)).unwrap(),
    ];
    agrees_with_the_interpreter(&p, &exe, &args, 1e-10, false);
}

/// A Gram product `XᵀX` of the row-fused kernel's output is summed block by
/// block with it: results within rounding of the interpreter's (the sum is in
/// another order), and the same bits on any number of threads.
#[test]
fn gram_products_summed_by_row_blocks_match_the_interpreter() {
    for (dt, f64s, tol) in [("f32", false, 1e-4), ("f64", true, 1e-11)] {
        let text = format!(
            "{{ lambda ; m:{dt}[3000,50] w:{dt}[50,50] y:{dt}[3000,50] . let
                o:{dt}[3000,50] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] m w
                a:{dt}[3000,50] = mul o 0.1:{dt}
                b:{dt}[3000,50] = exp a
                x:{dt}[3000,50] = sub b y
                s:{dt}[50] = reduce_sum[axes=(0)] x
                g:{dt}[50,50] = dot_general[lhs_contract=(0) rhs_contract=(0) lhs_batch=() rhs_batch=()] x x
              in (x, s, g) }}"
        );
        let p = parse(&text).unwrap();
        let exe = compiled(&p);
        assert_eq!((exe.fused_products(), exe.fused_gram_products()), (1, 1), "{}", exe.schedule());
        let args = [
            HostArray::new([3000, 50], data(150_000, 31, f64s)).unwrap(),
            HostArray::new([50, 50], data(2500, 32, f64s)).unwrap(),
            HostArray::new([3000, 50], data(150_000, 33, f64s)).unwrap(),
        ];
        agrees_with_the_interpreter(&p, &exe, &args, tol, true);
    }
}

/// A product too small for two blocks of the usual size (a seed-sized PLN
/// step: 116 rows) is still cut in two, so that two threads share it and
/// the Gram product after it; results stay those of the interpreter.
#[test]
fn a_small_product_is_halved_to_run_by_row_blocks() {
    for (dt, f64s, tol) in [("f32", false, 1e-4), ("f64", true, 1e-11)] {
        let text = format!(
            "{{ lambda ; m:{dt}[116,114] w:{dt}[114,114] y:{dt}[116,114] . let
                o:{dt}[116,114] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] m w
                a:{dt}[116,114] = mul o 0.1:{dt}
                x:{dt}[116,114] = sub a y
                g:{dt}[114,114] = dot_general[lhs_contract=(0) rhs_contract=(0) lhs_batch=() rhs_batch=()] x x
              in (x, g) }}"
        );
        let p = parse(&text).unwrap();
        let exe = compiled(&p);
        assert_eq!((exe.fused_products(), exe.fused_gram_products()), (1, 1), "{}", exe.schedule());
        let args = [
            HostArray::new([116, 114], data(116 * 114, 51, f64s)).unwrap(),
            HostArray::new([114, 114], data(114 * 114, 52, f64s)).unwrap(),
            HostArray::new([116, 114], data(116 * 114, 53, f64s)).unwrap(),
        ];
        agrees_with_the_interpreter(&p, &exe, &args, tol, true);
    }
}

/// Two products read by the same kernel further down both move next to it,
/// in their order (the last one then runs with it by row blocks).
#[test]
fn products_read_by_one_kernel_move_next_to_it_together() {
    let p = parse(
        "{ lambda ; m:f64[3000,50] w:f64[50,50] u:f64[50,50] v:f64[40,9] . let
            o:f64[3000,50] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] m w
            q:f64[3000,50] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] m u
            e:f64[40,9] = exp v
            t:f64[] = reduce_sum[axes=(0,1)] e
            tb:f64[3000,50] = broadcast_in_dim[shape=(3000,50) broadcast_dimensions=()] t
            a:f64[3000,50] = mul o tb
            y:f64[3000,50] = add a q
          in (y) }",
    )
    .unwrap();
    let exe = compiled(&p);
    let steps = &exe.schedule().steps;
    let last_three: Vec<bool> =
        steps[steps.len() - 3..].iter().map(|s| matches!(s, arrayjit_lower::Step::Prim { .. })).collect();
    assert_eq!(last_three, [true, true, false], "{}", exe.schedule());
    assert_eq!(exe.fused_products(), 1, "{}", exe.schedule());
    let args = [
        HostArray::new([3000, 50], data(150_000, 41, true)).unwrap(),
        HostArray::new([50, 50], data(2500, 42, true)).unwrap(),
        HostArray::new([50, 50], data(2500, 43, true)).unwrap(),
        HostArray::new([40, 9], data(360, 44, true)).unwrap(),
    ];
    agrees_with_the_interpreter(&p, &exe, &args, 1e-10, false);
}
