//! `jit`: compiled results against eager and interpreted ones, the compile
//! cache and its explanations, static arguments, the ahead-of-time stages,
//! dumps, errors, and composition with `grad`.

use arrayjit::{grad, jit, make_jaxpr, value_and_grad, Array, DType, Static, Tree};

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} != {b:?}");
    }
}

fn data(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
        })
        .collect()
}

fn model((w, x): (Array, Array)) -> Array {
    let h = x.matmul(&w).tanh();
    (h.square() * 0.5 + h.exp()).mean(..) + w.square().sum(..) * 1e-3
}

#[test]
fn compiled_results_match_eager_and_the_interpreter() {
    for dtype_f32 in [false, true] {
        let w = Array::from_vec(data(35, 1), [7, 5]);
        let x = Array::from_vec(data(91, 2), [13, 7]);
        let (w, x) = if dtype_f32 { (w.astype(DType::F32), x.astype(DType::F32)) } else { (w, x) };
        let eager = model((w.clone(), x.clone())).to_f64();
        let f = jit(model);
        let got = f.call((w.clone(), x.clone())).unwrap().to_f64();
        let p = make_jaxpr(model, &(w.clone(), x.clone())).unwrap();
        let interp = arrayjit::interp::eval_program(&p, &[w.to_host(), x.to_host()]).unwrap();
        let want = Array::from_host(interp[0].clone()).to_f64();
        let tol = if dtype_f32 { 1e-5 } else { 1e-12 };
        close(&[got], &[want], tol);
        close(&[eager], &[want], tol);
    }
}

#[test]
fn the_cache_compiles_once_per_signature_and_explains_misses() {
    let f = jit(|x: Array| (x * 2.0).sum(..)).named("double_sum");
    let a = Array::from_vec(vec![1.0f32, 2.0, 3.0], [3]);
    assert_eq!(f.call(a.clone()).unwrap().item::<f32>(), 12.0);
    assert_eq!(f.call(Array::from_vec(vec![5.0f32, 2.0, 3.0], [3])).unwrap().item::<f32>(), 20.0);
    assert_eq!(f.cache_size(), 1);
    assert!(f.cache_misses().is_empty());
    f.call(Array::from_vec(vec![1.0f32; 4], [4])).unwrap();
    f.call(Array::from_vec(vec![1.0f64; 4], [4])).unwrap();
    assert_eq!(f.cache_size(), 3);
    let why = f.cache_misses();
    assert_eq!(why.len(), 2);
    assert!(why[0].contains("`double_sum`") && why[0].contains("changed from f32[3] to f32[4]"), "{}", why[0]);
    assert!(why[1].contains("changed from f32[4] to f64[4]"), "{}", why[1]);
}

#[derive(Tree, Clone)]
struct Layer {
    w: Array,
    b: Array,
    #[tree(static)]
    relu: bool,
}

#[test]
fn static_values_join_the_key() {
    let f = jit(|(l, x): (Layer, Array)| {
        let y = x.matmul(&l.w) + &l.b;
        if l.relu {
            y.maximum(0.0)
        } else {
            y
        }
    });
    let l = Layer {
        w: Array::from_vec(vec![1.0f64, -1.0, 2.0, 0.5], [2, 2]),
        b: Array::from_vec(vec![0.0f64, -10.0], [2]),
        relu: true,
    };
    let x = Array::from_vec(vec![1.0f64, 1.0], [1, 2]);
    assert_eq!(f.call((l.clone(), x.clone())).unwrap().to_vec::<f64>(), [3.0, 0.0]);
    let linear = Layer { relu: false, ..l };
    assert_eq!(f.call((linear, x.clone())).unwrap().to_vec::<f64>(), [3.0, -10.5]);
    assert_eq!(f.cache_size(), 2);
    assert!(f.cache_misses()[0].contains("static value"), "{}", f.cache_misses()[0]);

    let g = jit(|(x, Static(k)): (Array, Static<usize>)| x.sum(..) * k as f64);
    assert_eq!(g.call((x.clone(), Static(3))).unwrap().item::<f64>(), 6.0);
    assert_eq!(g.call((x, Static(4))).unwrap().item::<f64>(), 8.0);
    assert_eq!(g.cache_size(), 2);
}

#[test]
fn ahead_of_time_stages_show_their_work() {
    let f = jit(|(x, y): (Array, Array)| ((x.exp() * &y).sum(..), (x - &y).square().mean(..)));
    let x = Array::from_vec(data(200, 3), [10, 20]).astype(DType::F32);
    let y = Array::from_vec(data(200, 4), [10, 20]).astype(DType::F32);
    let lowered = f.lower(&(x.clone(), y.clone())).unwrap();
    assert!(lowered.program().to_string().contains("exp"));
    let text = lowered.as_text();
    assert!(text.contains("fused"), "{text}");
    // Both reductions read x and y once, in one kernel; the mean's division
    // is a scalar epilogue.
    let big: Vec<_> = lowered
        .schedule()
        .steps
        .iter()
        .filter_map(|s| match s {
            arrayjit::lower::Step::Kernel { kernel, .. } if kernel.domain == [10, 20] => Some(kernel.outputs.len()),
            _ => None,
        })
        .collect();
    assert_eq!(big, [2], "{text}");
    let compiled = lowered.compile().unwrap();
    let clif = compiled.clif();
    assert!(clif.contains("f32x4"), "{clif}");
    // The machine code follows the IR, in 128-bit vector registers.
    let asm = clif.split("; machine code").nth(1).unwrap_or_default();
    let vector_register = if cfg!(target_arch = "x86_64") { "%xmm" } else { "v" };
    assert!(asm.contains(vector_register) && asm.contains("ret"), "{clif}");
    assert!(compiled.timings().total() > std::time::Duration::ZERO);
    let (s, m) = compiled.call((x.clone(), y.clone())).unwrap();
    let (es, em) = ((x.exp() * &y).sum(..), (&x - &y).square().mean(..));
    close(&[s.to_f64(), m.to_f64()], &[es.to_f64(), em.to_f64()], 1e-5);
}

#[test]
fn wrong_arguments_to_a_compiled_function_are_errors() {
    let f = jit(|x: Array| x.sum(..));
    let compiled = f.lower(&Array::from_vec(vec![1.0f32; 3], [3])).unwrap().compile().unwrap();
    let e = compiled.call(Array::from_vec(vec![1.0f32; 4], [4])).unwrap_err().to_string();
    assert!(e.contains("takes f32[3] but was given f32[4]"), "{e}");
    assert!(e.contains("jit.rs"), "the error names the caller's line: {e}");
    let e = compiled.call(Array::from_vec(vec![1.0f64; 3], [3])).unwrap_err().to_string();
    assert!(e.contains("f64[3]"), "{e}");
    // A tree of another structure (here a list of another length).
    let g = jit(|xs: Vec<Array>| xs.iter().fold(Array::scalar(0.0f32), |a, x| a + x.sum(..)));
    let two = vec![Array::from_vec(vec![1.0f32; 3], [3]); 2];
    let compiled = g.lower(&two).unwrap().compile().unwrap();
    let line = line!() + 1;
    let e = compiled.call(vec![Array::from_vec(vec![1.0f32; 3], [3]); 3]).unwrap_err().to_string();
    assert!(e.starts_with("tree structure mismatch: "), "{e}");
    assert!(e.contains(&format!("tests/jit.rs:{line}:")), "the error names the caller's line: {e}");
    // Through `as_fn` too, an error in the function names the line of the operation.
    let h = jit(|x: Array| x.reshape([4]));
    let (hf, line) = (h.as_fn(), line!() - 1);
    let e = hf(Array::from_vec(vec![1.0f32; 3], [3])).unwrap_err().to_string();
    assert!(e.contains(&format!("tests/jit.rs:{line}:")), "the error names the line of the reshape: {e}");
}

#[test]
fn jit_composes_with_grad() {
    let loss = |w: Array| (w.sin() * &w).sum(..);
    let w = Array::from_vec(data(6, 5), [2, 3]);
    let want: Vec<f64> = w.to_f64_vec().iter().map(|w| w.sin() + w * w.cos()).collect();
    let jitted_grad = jit(grad(loss));
    close(&jitted_grad.call(w.clone()).unwrap().to_f64_vec(), &want, 1e-12);
    let inner = jit(loss);
    let grad_of_jit = grad(inner.as_fn());
    close(&grad_of_jit(w.clone()).unwrap().to_f64_vec(), &want, 1e-12);
    let vg = jit(value_and_grad(loss));
    let (v, g) = vg.call(w.clone()).unwrap();
    close(&[v.to_f64()], &[loss(w).to_f64()], 1e-12);
    close(&g.to_f64_vec(), &want, 1e-12);
}

#[test]
fn dumps_write_every_stage() {
    let dir = std::env::temp_dir().join(format!("arrayjit-dump-{}", std::process::id()));
    // Only this test sets the variable, and it is read at compile time, so
    // other tests in this binary are unaffected unless they compile meanwhile
    // (which would only write more files).
    std::env::set_var("ARRAYJIT_DUMP", &dir);
    let f = jit(|x: Array| (x.exp() + 1.0).log().sum(..)).named("softplus_sum");
    f.call(Array::from_vec(vec![0.5f32; 9], [9])).unwrap();
    std::env::remove_var("ARRAYJIT_DUMP");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("softplus_sum"))
        .collect();
    for stage in [".0-traced.txt", "-cse.txt", "-dce.txt", ".fusion.txt", ".clif.txt"] {
        assert!(names.iter().any(|n| n.ends_with(stage)), "no {stage} in {names:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn arrays_moved_into_a_compiled_function_are_reused() {
    let step = jit(|(w, g): (Array, Array)| &w - g * 0.1);
    let (w, g) = (Array::from_vec(vec![1.0f32; 1000], [1000]), Array::from_vec(vec![2.0f32; 1000], [1000]));
    step.call((w.clone(), g.clone())).unwrap();
    // Held elsewhere: not donated, and left unchanged.
    let kept = w.clone();
    let out = step.call((w, g.clone())).unwrap();
    assert_eq!(kept.to_vec::<f32>()[0], 1.0);
    assert!((out.to_vec::<f32>()[0] - 0.8).abs() < 1e-6);
    // Moved in and held nowhere else: its memory holds the result.
    let before = out.try_host().unwrap().as_ptr();
    let next = step.call((out, g)).unwrap();
    assert_eq!(next.try_host().unwrap().as_ptr(), before);
    assert!((next.to_vec::<f32>()[0] - 0.6).abs() < 1e-6);
}
