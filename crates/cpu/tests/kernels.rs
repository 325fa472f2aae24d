//! Directed cases for the CPU backend: fused 2-D reductions that must be
//! right (XLA's CPU backend was measured 18% off on the first), vector widths,
//! memory reuse, compile-time bounds checks, signature errors, and eager
//! kernels.

use arrayjit_cpu::{CompileOptions, CpuError, Executable};
use arrayjit_ir::{parse, AVal, DType, Data, HostArray, Program};
use arrayjit_lower::{Affine, KNode, KOutput, Kernel, Node, OutputKind};

fn compile(p: &Program) -> Executable {
    let (q, _) = arrayjit_lower::optimize(p).unwrap();
    Executable::compile(&arrayjit_lower::fuse(&q), &CompileOptions::default()).unwrap()
}

/// Each output of `got` has `want`'s type and its values within `tol`
/// (relative to 1 + |want|).
fn assert_close(got: &[HostArray], want: &[HostArray], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (o, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.aval(), w.aval(), "{what}, output {o}");
        for e in 0..w.numel() {
            let (a, b) = (g.data().get(e).as_f64(), w.data().get(e).as_f64());
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}, output {o}, element {e}: {a} vs {b}");
        }
    }
}

fn f32s(shape: &[usize], v: Vec<f32>) -> HostArray {
    HostArray::new(shape.to_vec(), Data::F32(v)).unwrap()
}

#[test]
fn fused_log_sum_over_a_square_is_right() {
    let p = parse(
        "{ lambda ; k:f32[64,64] . let
            a:f32[64,64] = log k
            b:f32[64,64] = mul k 2.0:f32
            c:f32[64,64] = log b
            d:f32[64,64] = add a c
            e:f32[] = reduce_sum[axes=(0,1)] d
          in (e) }",
    )
    .unwrap();
    let k: Vec<f32> = (1..=4096).map(|i| i as f32).collect();
    let want: f64 = k.iter().map(|&x| (x as f64).ln() + (2.0 * x as f64).ln()).sum();
    let exe = compile(&p);
    assert_eq!(exe.lanes(), [4], "one vectorised kernel");
    let got = exe.run(&[&f32s(&[64, 64], k)]).unwrap()[0].data().get(0).as_f64();
    assert!((got - want).abs() / want < 1e-5, "{got} vs {want}");
}

#[test]
fn reductions_over_middle_and_outer_axes_with_tails() {
    for axes in ["(1)", "(0)", "(0,2)", "(2)", "(0,1,2)"] {
        let text = format!(
            "{{ lambda ; x:f32[5,7,9] . let
                y:f32[5,7,9] = exp x
                z:f32[..] = reduce_sum[axes={axes}] y
              in (z) }}"
        );
        // Fill in the result shape from the rule.
        let kept: Vec<usize> = [5usize, 7, 9]
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(&i.to_string()))
            .map(|(_, &d)| d)
            .collect();
        let shape = kept.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
        let p = parse(&text.replace("[..]", &format!("[{shape}]"))).unwrap();
        let x = f32s(&[5, 7, 9], (0..315).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect());
        let want = arrayjit_interp::eval_program(&p, std::slice::from_ref(&x)).unwrap();
        let got = compile(&p).run(&[&x]).unwrap();
        for i in 0..want[0].numel() {
            let (g, w) = (got[0].data().get(i).as_f64(), want[0].data().get(i).as_f64());
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "axes {axes}, element {i}: {g} vs {w}");
        }
    }
}

#[test]
fn vector_width_follows_the_dtypes() {
    let lanes = |text: &str| compile(&parse(text).unwrap()).lanes().to_vec();
    assert_eq!(lanes("{ lambda ; x:f32[7,13] . let y:f32[7,13] = exp x in (y) }"), [4]);
    assert_eq!(lanes("{ lambda ; x:f64[7,13] . let y:f64[7,13] = tanh x in (y) }"), [2]);
    assert_eq!(lanes("{ lambda ; x:i32[100] . let y:i32[100] = mul x x in (y) }"), [4]);
    // Mixed widths and boolean memory take the scalar path.
    assert_eq!(lanes("{ lambda ; x:f32[9] . let y:f64[9] = convert[new_dtype=f64] x in (y) }"), [1]);
    assert_eq!(lanes("{ lambda ; x:f32[9] . let y:bool[9] = lt x 0.0:f32 in (y) }"), [1]);
}

#[test]
fn temporaries_share_memory_once_dead() {
    // Each product's operand is materialised; the arena reuses dead ones.
    let p = parse(
        "{ lambda ; x:f64[32,32] . let
            a:f64[32,32] = exp x
            b:f64[32,32] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] a a
            c:f64[32,32] = tanh b
            d:f64[32,32] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] c c
            e:f64[32,32] = sin d
            f:f64[32,32] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] e e
          in (f) }",
    )
    .unwrap();
    let exe = compile(&p);
    let one = 32 * 32 * 8;
    assert!(exe.arena_bytes() <= 2 * one, "{} bytes for 5 temporaries of {one}", exe.arena_bytes());
    let x = HostArray::new([32, 32], Data::F64((0..1024).map(|i| (i as f64 * 0.001).sin() * 0.1).collect())).unwrap();
    let want = arrayjit_interp::eval_program(&p, std::slice::from_ref(&x)).unwrap();
    for _ in 0..2 {
        let got = exe.run(&[&x]).unwrap();
        for i in 0..1024 {
            let (g, w) = (got[0].data().get(i).as_f64(), want[0].data().get(i).as_f64());
            assert!((g - w).abs() <= 1e-10 * (1.0 + w.abs()), "{i}: {g} vs {w}");
        }
    }
}

#[test]
fn out_of_bounds_loads_are_refused_at_compile_time() {
    let kernel = Kernel {
        domain: vec![4],
        inputs: vec![AVal::new(DType::F32, [4])],
        nodes: vec![KNode {
            node: Node::Load { input: 0, at: Affine { offset: 1, coeffs: vec![1] } },
            dtype: DType::F32,
        }],
        outputs: vec![KOutput { node: 0, kind: OutputKind::Store, aval: AVal::new(DType::F32, [4]) }],
    };
    let mut m = arrayjit_cpu::codegen::KernelModule::new().unwrap();
    let e = arrayjit_cpu::codegen::define_kernel(
        &mut m,
        &kernel,
        &arrayjit_cpu::codegen::KernelOptions { keep_clif: false, row_functions: true, wide_vectors: true },
    )
    .unwrap_err();
    assert!(e.to_string().contains("would read positions 1..=4 of input 0, which holds 4 elements"), "{e}");
}

#[test]
fn arguments_must_match_the_signature() {
    let exe = compile(&parse("{ lambda ; x:f32[3] . let y:f32[3] = neg x in (y) }").unwrap());
    let e = exe.run(&[&f32s(&[4], vec![0.0; 4])]).unwrap_err();
    assert!(matches!(e, CpuError::Signature { .. }));
    assert_eq!(e.to_string(), "the compiled function takes f32[3] but was given f32[4]");
    assert!(exe.run(&[]).is_err());
}

#[test]
fn eager_operations_compile_once_per_signature() {
    use arrayjit_cpu::eager::{cached_ops, execute_prim};
    use arrayjit_ir::prim::Elementwise;
    let x = f32s(&[3], vec![0.0, 1.0, 2.0]);
    let before = cached_ops();
    let y = execute_prim(&Elementwise::Expm1.into(), &[&x]).unwrap();
    let after_first = cached_ops();
    assert!(after_first > before);
    execute_prim(&Elementwise::Expm1.into(), &[&y[0]]).unwrap();
    assert_eq!(cached_ops(), after_first, "a second call with the same types reuses the kernel");
    let v = y[0].data().get(2).as_f64();
    assert!((v - 2f64.exp_m1()).abs() < 1e-5);
}

#[test]
fn donated_arguments_hold_results_only_where_safe() {
    use arrayjit_cpu::Arg;
    let x = f32s(&[3, 5], (0..15).map(|i| i as f32 * 0.25).collect());
    // Elementwise at its own point, read by no later step: donated.
    let exe = compile(
        &parse("{ lambda ; x:f32[3,5] . let y:f32[3,5] = mul x 2.0:f32 z:f32[3,5] = add y 1.0:f32 in (z) }").unwrap(),
    );
    assert_eq!(exe.donations(), [(0, 0)]);
    let donated = x.clone();
    let addr = donated.as_ptr();
    let out = exe.run_with(vec![Arg::Donated(donated)]).unwrap();
    assert_eq!(out[0].as_ptr(), addr, "the result lives in the donated memory");
    for i in 0..15 {
        assert_eq!(out[0].data().get(i).as_f64(), i as f64 * 0.5 + 1.0);
    }
    // Borrowed arguments are never written.
    let out = exe.run(&[&x]).unwrap();
    assert_ne!(out[0].as_ptr(), x.as_ptr());
    assert_eq!(x.data().get(3).as_f64(), 0.75);
    // Read elsewhere than at its own point, read by a later step, or returned: refused.
    for text in [
        "{ lambda ; x:f32[5,5] . let t:f32[5,5] = transpose[permutation=(1,0)] x y:f32[5,5] = add x t in (y) }",
        "{ lambda ; x:f32[5,5] . let y:f32[5,5] = exp x
            z:f32[5,5] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] x y in (y, z) }",
        "{ lambda ; x:f32[5,5] . let y:f32[5,5] = exp x in (y, x) }",
    ] {
        let exe = compile(&parse(text).unwrap());
        assert!(exe.donations().is_empty(), "{text}: {:?}", exe.donations());
        let x = f32s(&[5, 5], (0..25).map(|i| i as f32 * 0.1).collect());
        let want = exe.run(&[&x]).unwrap();
        let got = exe.run_with(vec![Arg::Donated(x)]).unwrap();
        assert_eq!(got, want, "{text}");
    }
}

#[test]
fn an_input_is_not_donated_to_an_output_written_before_the_input_is_read() {
    use arrayjit_cpu::Arg;
    // One kernel; `u` is stored before `b` is loaded (outputs are emitted in
    // the order of their values), so `b` may hold `v` but not `u`; `a` is
    // returned, so it holds nothing.
    let p = parse(
        "{ lambda ; a:f32[4,6] b:f32[4,6] . let
            u:f32[4,6] = add a 1.0:f32
            w:f32[4,6] = mul b 3.0:f32
            v:f32[4,6] = add w u
          in (u, v, a) }",
    )
    .unwrap();
    let exe = compile(&p);
    assert_eq!(exe.donations(), [(1, 1)]);
    let a = f32s(&[4, 6], (0..24).map(|i| i as f32).collect());
    let b = f32s(&[4, 6], (0..24).map(|i| 100.0 - i as f32).collect());
    let want = exe.run(&[&a, &b]).unwrap();
    let got = exe.run_with(vec![Arg::Donated(a), Arg::Donated(b)]).unwrap();
    assert_eq!(got, want);
}

#[test]
fn steps_that_read_only_constants_run_once_when_compiled() {
    // Σ log(c) over a constant is a constant term: it runs when the
    // executable is built, in a kernel of its own (not fused with the
    // elementwise work on `x`, which would then run it on every call).
    let p = parse(
        "{ lambda c:f32[4,8]{1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0,
                              1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0} ;
            x:f32[4,8] . let
            l:f32[4,8] = log c
            t:f32[] = reduce_sum[axes=(0,1)] l
            y:f32[4,8] = mul x c
            z:f32[] = reduce_sum[axes=(0,1)] y
            w:f32[] = add z t
          in (w, y) }",
    )
    .unwrap();
    let (q, _) = arrayjit_lower::optimize(&p).unwrap();
    let schedule = arrayjit_lower::fuse(&q);
    let exe = Executable::compile(&schedule, &CompileOptions::default()).unwrap();
    assert_eq!(exe.schedule().steps.len(), schedule.steps.len() - 1, "{}", exe.schedule());
    let x = f32s(&[4, 8], (0..32).map(|i| i as f32 * 0.5).collect());
    let want = arrayjit_interp::eval_program(&p, std::slice::from_ref(&x)).unwrap();
    for _ in 0..2 {
        let got = exe.run(&[&x]).unwrap();
        assert_eq!(got[1], want[1]);
        let (g, w) = (got[0].data().get(0).as_f64(), want[0].data().get(0).as_f64());
        assert!((g - w).abs() <= 1e-5 * w.abs(), "{g} vs {w}");
    }
}

#[test]
fn pads_concatenations_and_dynamic_slices_are_fused() {
    let p = parse(
        "{ lambda ; x:f32[6,9] y:f32[6,3] i:i32[] j:i32[] . let
            a:f32[6,9] = exp x
            b:f32[9,27] = pad[low=(1,-1) high=(2,3) interior=(0,2)] a 0.5:f32
            c:f32[6,12] = concatenate[dimension=1] x y
            d:f32[6,15] = concatenate[dimension=1] c y
            e:f32[4,5] = dynamic_slice[slice_sizes=(4,5)] d i j
            f:f32[6,15] = dynamic_update_slice d e j i
            g:f32[6,15] = tanh f
          in (b, e, g) }",
    )
    .unwrap();
    let exe = compile(&p);
    let library: Vec<String> = exe
        .schedule()
        .steps
        .iter()
        .filter_map(|s| match s {
            arrayjit_lower::Step::Prim { prim, .. } => Some(prim.name().to_string()),
            arrayjit_lower::Step::Kernel { .. } => None,
        })
        .collect();
    assert!(library.is_empty(), "library steps left: {library:?}\n{}", exe.schedule());
    let x = f32s(&[6, 9], (0..54).map(|i| (i as f32 * 0.37).sin()).collect());
    let y = f32s(&[6, 3], (0..18).map(|i| i as f32 * 0.1 - 0.7).collect());
    // Starts out of range on both sides are clamped, as in the interpreter.
    for (si, sj) in [(1, 2), (-3, 40), (5, -1)] {
        let (i, j) = (HostArray::scalar(arrayjit_ir::Scalar::I32(si)), HostArray::scalar(arrayjit_ir::Scalar::I32(sj)));
        let args = [x.clone(), y.clone(), i, j];
        let want = arrayjit_interp::eval_program(&p, &args).unwrap();
        let got = exe.run(&args.iter().collect::<Vec<_>>()).unwrap();
        assert_close(&got, &want, 1e-5, &format!("starts ({si},{sj})"));
    }
}

#[test]
fn arg_reductions_run_as_kernels() {
    let p = parse(
        "{ lambda ; x:f32[7,9] . let
            a:i32[9] = argmax[axis=0] x
            b:i32[7] = argmin[axis=1] x
          in (a, b) }",
    )
    .unwrap();
    let exe = compile(&p);
    assert!(
        exe.schedule().steps.iter().all(|s| matches!(s, arrayjit_lower::Step::Kernel { .. })),
        "{}",
        exe.schedule()
    );
    let mut v: Vec<f32> = (0..63).map(|i| ((i * 17) % 11) as f32 - 5.0).collect();
    v[20] = f32::NAN;
    let x = f32s(&[7, 9], v);
    let want = arrayjit_interp::eval_program(&p, std::slice::from_ref(&x)).unwrap();
    assert_eq!(exe.run(&[&x]).unwrap(), want);
}

#[test]
fn max_and_min_against_constants_keep_ieee_semantics() {
    // Bounds that are neither zero nor NaN take the compare-and-select path;
    // a zero bound keeps the general one (which orders -0 below +0). NaN
    // passes through either way, in vector lanes and the scalar tail.
    let p = parse(
        "{ lambda ; x:f32[11] . let
            a:f32[11] = max x -0.1:f32
            b:f32[11] = min a 0.1:f32
            c:f32[11] = max 2.5:f32 x
            d:f32[11] = min -3.0:f32 x
            e:f32[11] = max x 0.0:f32
          in (b, c, d, e) }",
    )
    .unwrap();
    let xs = vec![f32::NAN, -0.0, 0.0, -0.1, 0.1, 2.5, -3.0, f32::INFINITY, f32::NEG_INFINITY, 0.05, f32::NAN];
    let exe = compile(&p);
    let got = exe.run(&[&f32s(&[11], xs.clone())]).unwrap();
    let want = arrayjit_interp::eval_program(&p, &[f32s(&[11], xs)]).unwrap();
    for (g, w) in got.iter().zip(&want) {
        for i in 0..11 {
            let (g, w) = (g.data().get(i).as_f64(), w.data().get(i).as_f64());
            assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "element {i}: {g} vs {w}");
        }
    }
}

#[test]
fn sums_that_pick_a_diagonal_read_only_the_diagonal() {
    // diag_part(X), trace(Xᵀ·2) and the diagonal of a broadcast, traced as
    // sums of a matrix masked to its diagonal, in both orientations of the mask.
    let p = parse(
        "{ lambda ; x:f32[5,5] v:f32[5] . let
            i:i32[5,5] = iota[dtype=i32 shape=(5,5) dimension=0]
            j:i32[5,5] = iota[dtype=i32 shape=(5,5) dimension=1]
            m:bool[5,5] = eq i j
            n:bool[5,5] = eq j i
            z:f32[5,5] = broadcast_in_dim[shape=(5,5) broadcast_dimensions=()] 0.0:f32
            a:f32[5,5] = select m x 0.0:f32
            d:f32[5] = reduce_sum[axes=(1)] a
            t:f32[5,5] = transpose[permutation=(1,0)] x
            u:f32[5,5] = mul t 2.0:f32
            b:f32[5,5] = select n u z
            e:f32[5] = reduce_sum[axes=(0)] b
            s:f32[] = reduce_sum[axes=(0)] e
            w:f32[5,5] = broadcast_in_dim[shape=(5,5) broadcast_dimensions=(0)] v
            c:f32[5,5] = select m w 0.0:f32
            g:f32[5] = reduce_sum[axes=(1)] c
          in (d, s, g) }",
    )
    .unwrap();
    let exe = compile(&p);
    for step in &exe.schedule().steps {
        if let arrayjit_lower::Step::Kernel { kernel, .. } = step {
            assert!(kernel.domain.iter().product::<usize>() <= 5, "no pass over the 5×5 matrix:\n{}", exe.schedule());
        }
    }
    let x = f32s(&[5, 5], (0..25).map(|i| (i as f32 * 0.7).sin()).collect());
    let v = f32s(&[5], vec![1.5, -2.0, 0.25, 4.0, -0.5]);
    let want = arrayjit_interp::eval_program(&p, &[x.clone(), v.clone()]).unwrap();
    let got = exe.run(&[&x, &v]).unwrap();
    assert_eq!(got[0], want[0]);
    assert_eq!(got[2], want[2]);
    let (g, w) = (got[1].data().get(0).as_f64(), want[1].data().get(0).as_f64());
    assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()), "{g} vs {w}");
}

#[test]
fn the_diagonal_of_a_masked_scalar_is_the_scalar() {
    // `select` broadcasts a rank-0 operand; the diagonal sum reads it as one
    // value, through index maps (a slice here) that have no rows to index.
    let p = parse(
        "{ lambda ; s:f64[] . let
            t:f64[] = slice[start_indices=() limit_indices=() strides=()] s
            d:i32[3,3] = iota[dtype=i32 shape=(3,3) dimension=0]
            e:i32[3,3] = iota[dtype=i32 shape=(3,3) dimension=1]
            f:bool[3,3] = eq d e
            g:f64[3,3] = select f t 0.0:f64
            h:f64[3] = reduce_sum[axes=(1)] g
            k:f64[3,3] = select f 2.5:f64 0.0:f64
            m:f64[3] = reduce_sum[axes=(0)] k
          in (h, m) }",
    )
    .unwrap();
    let exe = compile(&p);
    let s = HostArray::scalar(arrayjit_ir::Scalar::F64(-1.25));
    let want = arrayjit_interp::eval_program(&p, std::slice::from_ref(&s)).unwrap();
    let got = exe.run(&[&s]).unwrap();
    assert_eq!(got, want);
}

#[test]
fn row_tails_of_two_and_three_points_run_as_one_vector() {
    // Rows of 6, 7 and 10 leave 2, 3 and 2 points after their vectors, which
    // one vector takes: its loads (contiguous, transposed and boolean) must
    // read only the row, its stores write only the row, and its reductions
    // take only the row's points (the maximum of negative numbers and the
    // minimum of positive ones catch a lane that adds anything else). A row
    // of 9 leaves one point, which stays scalar.
    for w in [6usize, 7, 9, 10] {
        let text = "{ lambda ; x:f32[5,W] y:f32[W,5] m:bool[5,W] k:i32[5,W] . let
                t:f32[5,W] = transpose[permutation=(1,0)] y
                a:f32[5,W] = add x t
                i:i32[5,W] = iota[dtype=i32 shape=(5,W) dimension=1]
                f:f32[5,W] = convert[new_dtype=f32] i
                b:f32[5,W] = select m a f
                c:f32[5,W] = exp b
                n:f32[5,W] = neg c
                mx:f32[5] = reduce_max[axes=(1)] n
                mn:f32[5] = reduce_min[axes=(1)] c
                s:f32[W] = reduce_sum[axes=(0)] c
                ks:i32[5] = reduce_sum[axes=(1)] k
                k2:i32[5,W] = mul k k
              in (c, mx, mn, s, ks, k2) }"
            .replace('W', &w.to_string());
        let p = parse(&text).unwrap();
        let n = 5 * w;
        let x = f32s(&[5, w], (0..n).map(|i| ((i * 7) % 13) as f32 / 6.0 - 1.0).collect());
        let y = f32s(&[w, 5], (0..n).map(|i| ((i * 5) % 11) as f32 / 8.0 - 0.5).collect());
        let m = HostArray::new(vec![5, w], Data::Bool((0..n).map(|i| i % 3 != 1).collect())).unwrap();
        let k = HostArray::new(vec![5, w], Data::I32((0..n).map(|i| (i as i32 * 31) % 17 - 8).collect())).unwrap();
        let exe = compile(&p);
        assert!(exe.lanes().iter().all(|&l| l == 4), "rows of {w}: {:?}", exe.lanes());
        let inputs = [x, y, m, k];
        let got = exe.run(&inputs.iter().collect::<Vec<_>>()).unwrap();
        let want = arrayjit_interp::eval_program(&p, &inputs).unwrap();
        assert_close(&got, &want, 1e-6, &format!("rows of {w}"));
    }
}

#[test]
fn indices_in_vector_lanes() {
    // iota along either axis, as i32 and as f32, in full vectors and in a
    // row's partial one, feeding arithmetic and a comparison: exactly the
    // interpreter's values.
    for w in [8usize, 10, 11] {
        let text = "{ lambda ; x:f32[5,W] . let
                r:i32[5,W] = iota[dtype=i32 shape=(5,W) dimension=0]
                c:i32[5,W] = iota[dtype=i32 shape=(5,W) dimension=1]
                s:i32[5,W] = mul c 3:i32
                t:i32[5,W] = sub s r
                e:bool[5,W] = eq r c
                f:f32[5,W] = iota[dtype=f32 shape=(5,W) dimension=1]
                g:f32[5,W] = mul f x
                h:f32[5,W] = select e g x
                k:i32[5] = reduce_sum[axes=(1)] t
              in (t, h, k) }"
            .replace('W', &w.to_string());
        let p = parse(&text).unwrap();
        let x = f32s(&[5, w], (0..5 * w).map(|i| i as f32 * 0.5 - 3.0).collect());
        let exe = compile(&p);
        assert!(exe.lanes().iter().all(|&l| l == 4), "rows of {w}: {:?}", exe.lanes());
        let got = exe.run(&[&x]).unwrap();
        let want = arrayjit_interp::eval_program(&p, &[x]).unwrap();
        assert_eq!(got, want, "rows of {w}");
    }
}

#[test]
fn selects_against_zero_are_masks() {
    // select(mask, x, 0) and select(mask, 0, x) in vector lanes are one
    // `and` (`and not`) with the mask, with the general select's values, in
    // full vectors and in a row's partial one (whose reduction masks its
    // dead lanes the same way).
    for w in [8usize, 10] {
        let text = "{ lambda ; x:f32[6,W] . let
                r:i32[6,W] = iota[dtype=i32 shape=(6,W) dimension=0]
                c:i32[6,W] = iota[dtype=i32 shape=(6,W) dimension=1]
                e:bool[6,W] = eq r c
                d:f32[6,W] = select e x 0.0:f32
                o:f32[6,W] = select e 0.0:f32 x
                s:f32[6] = reduce_sum[axes=(1)] o
              in (d, s) }"
            .replace('W', &w.to_string());
        let p = parse(&text).unwrap();
        let (q, _) = arrayjit_lower::optimize(&p).unwrap();
        let opts = CompileOptions { keep_clif: true, wide_vectors: false, ..CompileOptions::default() };
        let exe = Executable::compile(&arrayjit_lower::fuse(&q), &opts).unwrap();
        let clif = exe.clif().join("\n");
        assert!(clif.contains("band") && !clif.contains("bitselect"), "rows of {w}:\n{clif}");
        let x = f32s(&[6, w], (0..6 * w).map(|i| i as f32 * 0.25 - 4.0).collect());
        let got = exe.run(&[&x]).unwrap();
        let want = arrayjit_interp::eval_program(&p, &[x]).unwrap();
        assert_eq!(got, want, "rows of {w}");
    }
}

/// The blocks of the Cranelift function of an executable's only kernel, as
/// optimised: the entry block first (the machine code after it left out).
fn blocks_of_only_kernel(exe: &Executable) -> Vec<String> {
    let clif = exe.clif().join("\n");
    let mut blocks: Vec<String> = Vec::new();
    let ir = clif.lines().take_while(|l| *l != "; machine code");
    for line in ir.skip_while(|l| !l.starts_with("block")) {
        if line.starts_with("block") {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    blocks
}

#[test]
fn values_the_same_at_every_point_are_computed_before_the_loops() {
    // An Adam-like update: `m / c1` becomes `m · (1/c1)`, and the reciprocal
    // of the scalar input (and its splat) runs once per call, in the entry
    // block, not once per vector. A boolean scalar picks between two values
    // through a mask made once too. Values equal the interpreter's, in full
    // vectors, a row's partial vector and scalar tails.
    for (dt, n) in [("f32", 1003usize), ("f64", 1001), ("f32", 6)] {
        let text = "{ lambda ; p:T[N] m:T[N] c:T[] b:bool[] . let
                r:T[N] = div m c
                s:T[N] = sub p r
                t:T[N] = mul p 2.0:T
                u:T[N] = select b s t
              in (u) }"
            .replace('T', dt)
            .replace('N', &n.to_string());
        let p = parse(&text).unwrap();
        let (q, _) = arrayjit_lower::optimize(&p).unwrap();
        // The Cranelift kernel's IR (not the AVX-512 one's).
        let opts = CompileOptions { keep_clif: true, wide_vectors: false, ..CompileOptions::default() };
        let exe = Executable::compile(&arrayjit_lower::fuse(&q), &opts).unwrap();
        let blocks = blocks_of_only_kernel(&exe);
        let divisions = blocks.iter().filter(|b| b.contains("fdiv")).count();
        assert!(blocks[0].contains("fdiv") && divisions == 1, "{dt}[{n}]:\n{}", blocks.join(""));
        let ramp = |s: f64| (0..n).map(|i| (i as f64 * 0.37 - 3.0) * s).collect::<Vec<f64>>();
        let arr = |v: Vec<f64>, shape: &[usize]| match dt {
            "f32" => HostArray::new(shape.to_vec(), Data::F32(v.iter().map(|&x| x as f32).collect())).unwrap(),
            _ => HostArray::new(shape.to_vec(), Data::F64(v)).unwrap(),
        };
        for flag in [true, false] {
            let args = [
                arr(ramp(1.0), &[n]),
                arr(ramp(0.1), &[n]),
                arr(vec![0.3], &[]),
                HostArray::new(vec![], Data::Bool(vec![flag])).unwrap(),
            ];
            let got = exe.run(&args.iter().collect::<Vec<_>>()).unwrap();
            let want = arrayjit_interp::eval_program(&q, &args).unwrap();
            assert_eq!(got, want, "{dt}[{n}], flag {flag}");
        }
    }
}

#[test]
fn sines_of_large_arguments_match_the_interpreter() {
    // Past the inline reduction's range (2^21 in f32) the lanes come from
    // the same functions the interpreter calls; before this they came out
    // as 0 or ±1 (a cosine of the product of a scan's inputs, 4354560).
    for (dt, n) in [("f32", 12usize), ("f64", 12)] {
        let text = "{ lambda ; x:T[N] . let s:T[N] = sin x  c:T[N] = cos x in (s, c) }"
            .replace('T', dt)
            .replace('N', &n.to_string());
        let p = parse(&text).unwrap();
        let v = [0.5, 4354560.0, -3.0e7, 1.0e30, 2.0e6, 1.0e15, -7.25, f64::INFINITY, f64::NAN, 3.0e38, 1e-3, 8.0e6];
        let x = match dt {
            "f32" => HostArray::new(vec![n], Data::F32(v.iter().map(|&a| a as f32).collect())).unwrap(),
            _ => HostArray::new(vec![n], Data::F64(v.to_vec())).unwrap(),
        };
        let got = compile(&p).run(&[&x]).unwrap();
        let want = arrayjit_interp::eval_program(&p, &[x]).unwrap();
        for (g, w) in got.iter().zip(&want) {
            for (e, x) in v.iter().enumerate() {
                let (a, b) = (g.data().get(e).as_f64(), w.data().get(e).as_f64());
                assert!((a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-6, "{dt} element {e} ({x}): {a} vs {b}");
            }
        }
    }
}

#[test]
fn integer_powers_are_exact_and_agree_with_the_interpreter() {
    // Every base against every exponent, the exponent read at run time:
    // wrapping products, the 31 bits of a positive exponent, negative ones.
    let xs = [3, -2, 2, 1, -1, 0, 7, 10, i32::MAX, i32::MIN];
    let ys = [0, 1, 2, 5, 9, 30, 31, 40, i32::MAX, -1, -2, -3, i32::MIN];
    let (a, b): (Vec<i32>, Vec<i32>) = xs.iter().flat_map(|&x| ys.iter().map(move |&y| (x, y))).unzip();
    let n = a.len();
    let p = parse(&format!("{{ lambda ; x:i32[{n}] y:i32[{n}] . let z:i32[{n}] = pow x y in (z) }}")).unwrap();
    let ins = [HostArray::new([n], Data::I32(a.clone())).unwrap(), HostArray::new([n], Data::I32(b.clone())).unwrap()];
    let got = compile(&p).run(&[&ins[0], &ins[1]]).unwrap();
    let want = arrayjit_interp::eval_program(&p, &ins).unwrap();
    assert_eq!(got, want);
    let Data::I32(z) = got[0].data() else { panic!("pow of i32 gives i32") };
    assert_eq!(z[a.iter().zip(&b).position(|(&x, &y)| x == 10 && y == 9).unwrap()], 1_000_000_000);
}
