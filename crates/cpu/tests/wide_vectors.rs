//! Kernels compiled to AVX-512 machine code of our own
//! (`CompileOptions::wide_vectors`): an optimizer's update over rows ending in
//! a partial vector, with scalar factors, a boolean switch, a column that
//! broadcasts down the rows and column sums, gives the bits of the Cranelift
//! kernels on 1, 2 and 3 threads, stays close to the interpreter, and really
//! runs in the wide code where the CPU has AVX-512.

use arrayjit_cpu::{CompileOptions, Executable};
use arrayjit_ir::{parse, Data, HostArray, Program};

mod common;
use common::{data, same_bits, same_on_1_2_3_threads};

fn compiled(p: &Program, wide_vectors: bool) -> Executable {
    let (q, _) = arrayjit_lower::optimize(p).unwrap();
    let opts = CompileOptions { wide_vectors, ..CompileOptions::default() };
    Executable::compile(&arrayjit_lower::fuse(&q), &opts).unwrap()
}

/// An RAdam-like step on `[rows, cols]`: moments, a bias-corrected ratio
/// under a switch, a clip, the new parameter and its squares' column sums.
fn check(dt: &str, rows: usize, cols: usize) {
    let s = format!("{dt}[{rows},{cols}]");
    let bc = |x: &str| format!("broadcast_in_dim[shape=({rows},{cols}) broadcast_dimensions=()] {x}");
    let text = format!(
        "{{ lambda ; x:{s} g:{s} m:{s} v:{s} col:{dt}[{cols}] a:{dt}[] b:{dt}[] t:{dt}[] . let
            m1:{s} = mul m 0.9:{dt}
            g1:{s} = mul g 0.1:{dt}
            m2:{s} = add m1 g1
            v1:{s} = mul v 0.999:{dt}
            gg:{s} = mul g g
            v2:{s} = add v1 gg
            ab:{s} = {ab}
            r0:{s} = mul m2 ab
            bb:{s} = {bb}
            vs:{s} = mul v2 bb
            sq:{s} = sqrt vs
            den:{s} = add sq 1e-8:{dt}
            r1:{s} = div r0 den
            on:bool[] = gt t 5.0:{dt}
            onb:bool[{rows},{cols}] = broadcast_in_dim[shape=({rows},{cols}) broadcast_dimensions=()] on
            r:{s} = select onb r1 r0
            nr:{s} = neg r
            lo:{s} = max nr -0.1:{dt}
            u:{s} = min lo 0.1:{dt}
            cb:{s} = broadcast_in_dim[shape=({rows},{cols}) broadcast_dimensions=(1)] col
            cx:{s} = mul x cb
            x1:{s} = add cx u
            w:{s} = max x1 g
            z:{s} = min w m
            y:{s} = abs z
            q:{s} = rsqrt y
            x2:{s} = mul x1 x1
            cs:{dt}[{cols}] = reduce_sum[axes=(0)] x2
          in (m2, v2, x1, q, cs) }}",
        ab = bc("a"),
        bb = bc("b"),
    );
    let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let f64s = dt == "f64";
    let n = rows * cols;
    let mut args: Vec<HostArray> =
        (0..4).map(|i| HostArray::new([rows, cols], data(n, 3 + i as u64, f64s)).unwrap()).collect();
    args.push(HostArray::new([cols], data(cols, 9, f64s)).unwrap());
    for v in [1.3, 0.7, 6.0] {
        let d = if f64s { Data::F64(vec![v]) } else { Data::F32(vec![v as f32]) };
        args.push(HostArray::new([], d).unwrap());
    }
    let refs: Vec<&HostArray> = args.iter().collect();
    let (wide, narrow) = (compiled(&p, true), compiled(&p, false));
    assert!(narrow.lanes().iter().all(|&l| l <= 4), "{:?}", narrow.lanes());
    if arrayjit_cpu::wide_vectors_available() {
        let lanes = if f64s { 8 } else { 16 };
        assert!(wide.lanes().contains(&lanes), "{dt} [{rows},{cols}]: {:?}\n{}", wide.lanes(), wide.schedule());
    }
    let got = same_on_1_2_3_threads(|_| wide.run(&refs).unwrap());
    let want = narrow.run(&refs).unwrap();
    same_bits(&got, &want, &format!("{dt} [{rows},{cols}]"));
    let reference = arrayjit_interp::eval_program(&p, &args).unwrap();
    let tol = if f64s { 1e-12 } else { 1e-5 };
    for (k, (g, w)) in got.iter().zip(&reference).enumerate() {
        for i in 0..g.numel() {
            let (x, y) = (g.data().get(i).as_f64(), w.data().get(i).as_f64());
            let close = (x - y).abs() <= tol * (1.0 + y.abs()) || x.is_nan() && y.is_nan();
            assert!(close, "{dt} [{rows},{cols}]: output {k} element {i}: {x} vs the interpreter's {y}");
        }
    }
}

#[test]
fn an_optimizer_step_gives_the_cranelift_kernels_bits() {
    for dt in ["f32", "f64"] {
        // 114 = 7 · 16 + 2 (f32) = 14 · 8 + 2 (f64); 16 and 8 end in whole vectors.
        check(dt, 300, 114);
        check(dt, 64, 16);
        check(dt, 5, 8);
        check(dt, 1000, 3);
    }
}

/// A log-softmax along rows: a max along each row, the row's value
/// broadcast back along it, `exp` through the row function, a sum along the
/// row: the same bits as the Cranelift kernels, and in the wide code.
#[test]
fn a_log_softmax_along_rows_gives_the_cranelift_kernels_bits() {
    for (dt, rows, cols) in [("f32", 200, 114), ("f64", 50, 33), ("f32", 7, 17)] {
        let s = format!("{dt}[{rows},{cols}]");
        let text = format!(
            "{{ lambda ; x:{s} . let
                m:{dt}[{rows}] = reduce_max[axes=(1)] x
                mb:{s} = broadcast_in_dim[shape=({rows},{cols}) broadcast_dimensions=(0)] m
                d:{s} = sub x mb
                e:{s} = exp d
                t:{dt}[{rows}] = reduce_sum[axes=(1)] e
                l:{dt}[{rows}] = log t
                lb:{s} = broadcast_in_dim[shape=({rows},{cols}) broadcast_dimensions=(0)] l
                y:{s} = sub d lb
              in (y, m) }}"
        );
        let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let x = HostArray::new([rows, cols], data(rows * cols, 17, dt == "f64")).unwrap();
        let (wide, narrow) = (compiled(&p, true), compiled(&p, false));
        if arrayjit_cpu::wide_vectors_available() {
            let lanes = if dt == "f64" { 8 } else { 16 };
            let wide_kernels = wide.lanes().iter().filter(|&&l| l == lanes).count();
            assert!(wide_kernels >= 2, "{dt} [{rows},{cols}]: {:?}\n{}", wide.lanes(), wide.schedule());
        }
        let got = same_on_1_2_3_threads(|_| wide.run(&[&x]).unwrap());
        same_bits(&got, &narrow.run(&[&x]).unwrap(), &format!("{dt} [{rows},{cols}]"));
        let reference = arrayjit_interp::eval_program(&p, &[x]).unwrap();
        let tol = if dt == "f64" { 1e-12 } else { 1e-5 };
        for (k, (g, w)) in got.iter().zip(&reference).enumerate() {
            for i in 0..g.numel() {
                let (a, b) = (g.data().get(i).as_f64(), w.data().get(i).as_f64());
                assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{dt}: output {k} element {i}: {a} vs {b}");
            }
        }
    }
}
