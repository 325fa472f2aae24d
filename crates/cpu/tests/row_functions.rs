//! Kernels whose `exp`, `log`, `tanh`, `logistic`, `log1p`, `expm1`, `sin`
//! and `cos` run over whole rows in native functions
//! (`CompileOptions::row_functions`): the same bits as the inline code, in
//! rows that end in a partial vector, in chunks of long rows and rank-1
//! domains, with one function's result feeding another, and with arguments
//! off the functions' common path (which the kernel then computes inline);
//! and close to the reference interpreter.

use arrayjit_cpu::{CompileOptions, Executable};
use arrayjit_ir::{parse, Data, HostArray, Program};

mod common;
use common::{same_bits, same_on_1_2_3_threads};

fn compiled(p: &Program, row_functions: bool) -> Executable {
    let (q, _) = arrayjit_lower::optimize(p).unwrap();
    let opts = CompileOptions { row_functions, ..CompileOptions::default() };
    Executable::compile(&arrayjit_lower::fuse(&q), &opts).unwrap()
}

/// Arguments in [-4, 4) for `exp` and in (0, 8] for `log`, from `seed`, with
/// an argument off the common path in every `odd`-th row (NaN, ±inf, zero,
/// negative, subnormal, or an `exp` beyond ±87), when `odd` is not 0.
fn args(n: usize, row: usize, seed: u64, odd: usize) -> (Vec<f32>, Vec<f32>) {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut a: Vec<f32> = (0..n).map(|_| next() * 8.0 - 4.0).collect();
    let mut b: Vec<f32> = (0..n).map(|_| 8.0 - next() * 8.0).collect();
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -1.5, 1e-40, 95.0, -110.0];
    if odd > 0 {
        for (k, r) in (0..n.div_ceil(row)).step_by(odd).enumerate() {
            let at = (r * row + k * 7 % row).min(n - 1);
            a[at] = specials[k % specials.len()];
            b[at] = specials[(k + 3) % specials.len()];
        }
    }
    (a, b)
}

/// exp and log over `shape`, their product reduced along the last axis,
/// `log(exp(a + b))`, `tanh(a)`, `logistic(a + b)`, `log1p(b)`, `expm1(a)`,
/// `sin(a)` and `cos(a + b)`, in f32 and f64: with row functions and without,
/// the same bits; and close to the interpreter.
fn check(shape: &[usize], odd: usize, expect_rows: bool) {
    check_as("f32", shape, odd, expect_rows);
    check_as("f64", shape, odd, expect_rows);
}

fn check_as(dt: &str, shape: &[usize], odd: usize, expect_rows: bool) {
    let dims = shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
    let last = shape.len() - 1;
    let reduced = shape[..last].iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
    let text = format!(
        "{{ lambda ; a:{dt}[{dims}] b:{dt}[{dims}] . let
            c:{dt}[{dims}] = exp a
            d:{dt}[{dims}] = log b
            e:{dt}[{dims}] = mul c d
            f:{dt}[{reduced}] = reduce_sum[axes=({last})] e
            g:{dt}[{dims}] = add a b
            h:{dt}[{dims}] = exp g
            i:{dt}[{dims}] = log h
            j:{dt}[{dims}] = tanh a
            k:{dt}[{dims}] = logistic g
            l:{dt}[{dims}] = log1p b
            m:{dt}[{dims}] = expm1 a
            o:{dt}[{dims}] = sin a
            q:{dt}[{dims}] = cos g
          in (c, d, f, i, j, k, l, m, o, q) }}"
    );
    let p = parse(&text).unwrap();
    let n: usize = shape.iter().product();
    let (a, b) = args(n, shape[last], 11 + n as u64, odd);
    let data = |v: Vec<f32>| if dt == "f64" { Data::F64(v.into_iter().map(f64::from).collect()) } else { Data::F32(v) };
    let args = [HostArray::new(shape.to_vec(), data(a)).unwrap(), HostArray::new(shape.to_vec(), data(b)).unwrap()];
    let refs: Vec<&HostArray> = args.iter().collect();
    let (native, inline) = (compiled(&p, true), compiled(&p, false));
    assert_eq!(inline.row_function_nodes(), 0);
    let natively = arrayjit_cpu::row_functions_available();
    assert_eq!(native.row_function_nodes() > 0, expect_rows && natively, "{dt} {shape:?}: row functions used");
    if expect_rows && natively {
        // exp a, log b, exp g, log h, tanh a, logistic g, log1p b, expm1 a,
        // sin a and cos g.
        assert_eq!(native.row_function_nodes(), 10, "{dt} {shape:?}");
    }
    let got = same_on_1_2_3_threads(|_| native.run(&refs).unwrap());
    let want = inline.run(&refs).unwrap();
    same_bits(&got, &want, &format!("{dt} {shape:?}, one row in {odd} off the common path"));
    let reference = arrayjit_interp::eval_program(&p, &args).unwrap();
    for (k, (g, w)) in got.iter().zip(&reference).enumerate() {
        for i in 0..g.numel() {
            let (x, y) = (g.data().get(i).as_f64(), w.data().get(i).as_f64());
            let close = (x - y).abs() <= 1e-5 * (1.0 + y.abs()) || x == y || x.is_nan() && y.is_nan();
            assert!(close, "{dt} {shape:?}: output {k} element {i}: {x} vs the interpreter's {y}");
        }
    }
}

#[test]
fn rows_with_a_partial_vector_at_their_end() {
    for odd in [0, 5] {
        check(&[300, 114], odd, true);
        check(&[64, 17], odd, true);
    }
}

#[test]
fn long_rows_and_rank_1_domains_run_in_chunks() {
    for odd in [0, 3] {
        check(&[3, 2500], odd, true);
        // Chunks of 1024 and 7, the last ending in a tail of 3 (f32) or 1 (f64).
        check(&[2, 1031], odd, true);
    }
    // Coalesced to one axis: 70 001 points in chunks and blocks, with a tail.
    check(&[70_001], 0, true);
    check(&[70_001], 9, true);
}

#[test]
fn short_rows_stay_inline() {
    check(&[500, 7], 4, false);
    check(&[2, 3], 1, false);
}

/// A kernel with more `exp`s than row buffers it may keep: the first ones
/// run in row functions, the rest inline, with the same bits.
#[test]
fn a_kernel_keeps_a_bounded_number_of_row_buffers() {
    let mut text = String::from("{ lambda ; a:f32[40,100] . let\n  x0:f32[40,100] = mul a a\n");
    for i in 1..=20 {
        text += &format!("  x{i}:f32[40,100] = exp x{}\n", i - 1);
        text += &format!("  y{i}:f32[40,100] = mul x{i} a\n");
    }
    let sums: Vec<String> = (1..=20).map(|i| format!("y{i}")).collect();
    text += &format!("in ({}) }}", sums.join(", "));
    let p = parse(&text).unwrap();
    let (a, _) = args(4000, 100, 5, 0);
    let a = HostArray::new([40, 100], Data::F32(a.iter().map(|v| v * 0.1).collect())).unwrap();
    let (native, inline) = (compiled(&p, true), compiled(&p, false));
    if arrayjit_cpu::row_functions_available() {
        assert!((1..=16).contains(&native.row_function_nodes()), "{}", native.row_function_nodes());
    }
    same_bits(&native.run(&[&a]).unwrap(), &inline.run(&[&a]).unwrap(), "20 exps");
}
