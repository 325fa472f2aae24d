//! The generated CUDA C computes what the reference interpreter computes.
//! Without a GPU, each module runs on the emulator runtime (compiled as C++
//! for the host; threads of a block are fibers switched at its barriers):
//! every launch of every kernel runs in the rendered order, on fixed inputs,
//! and each output must match the kernel's reference evaluation. Where there
//! is a GPU, the same runs there too. This checks
//! the renderer's indexing, its reductions (the per-thread walks, the
//! shared-memory tree, the chunk combining) and its spelling of every
//! primitive, on any machine with `g++`.

mod corpus;
mod gpu_support;
mod random_support;

use gpu_support::gpu;

use arrayjit::DType;
use arrayjit_cuda::bytes::{from_bytes, to_bytes};
use arrayjit_cuda::emulator::HostRuntime;
use arrayjit_cuda::render::Param;
use arrayjit_cuda::{RenderedProgram, Runtime};
use arrayjit_ir::{Data, HostArray};

/// Deterministic inputs: floats in [-2, 2], small integers, mixed booleans.
fn input(a: &arrayjit_ir::AVal, seed: usize) -> HostArray {
    let n = a.numel();
    let x = |i: usize| (((i * 7919 + seed * 104_729) % 1009) as f64 / 1009.0) * 4.0 - 2.0;
    let data = match a.dtype {
        DType::F32 => Data::F32((0..n).map(|i| x(i) as f32).collect()),
        DType::F64 => Data::F64((0..n).map(x).collect()),
        DType::I32 => Data::I32((0..n).map(|i| (x(i) * 3.0).round() as i32).collect()),
        DType::Bool => Data::Bool((0..n).map(|i| x(i) > 0.0).collect()),
    };
    HostArray::new(a.shape.clone(), data).unwrap_or_else(|e| panic!("{e}"))
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

/// Runs the program's kernels on the host and checks each against its reference.
fn run(name: &str, p: &RenderedProgram, tol: f64) {
    run_with(name, p, &|_| tol)
}

/// [`run`] with a tolerance chosen per kernel.
fn run_with(name: &str, p: &RenderedProgram, tol: &dyn Fn(&arrayjit_lower::Kernel) -> f64) {
    if !HostRuntime::available() {
        eprintln!("skipped: g++ is not available, the generated CUDA C is not run on the host");
        return;
    }
    run_on(&HostRuntime, name, p, tol)
}

/// Runs every launch of every kernel of `p` on `rt` and checks each output
/// against the kernel's reference evaluation.
fn run_on<R: Runtime>(rt: &R, name: &str, p: &RenderedProgram, tol: &dyn Fn(&arrayjit_lower::Kernel) -> f64) {
    let all: Vec<_> =
        p.kernels.iter().map(|k| k.rendered.clone()).chain(p.library.iter().map(|(_, k)| k.clone())).collect();
    let module = rt.load(&all).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (i, pk) in p.kernels.iter().enumerate() {
        let k = &pk.kernel;
        let inputs: Vec<HostArray> = k.inputs.iter().enumerate().map(|(j, a)| input(a, j + i)).collect();
        let ins: Vec<_> = inputs.iter().map(|h| rt.upload(&to_bytes(h)).unwrap()).collect();
        let size = |a: &arrayjit_ir::AVal| a.numel() * a.dtype.size_bytes();
        let outs: Vec<_> = k.outputs.iter().map(|o| rt.alloc(size(&o.aval)).unwrap()).collect();
        let parts: Vec<_> =
            pk.rendered.partials.iter().map(|q| rt.alloc(q.len * q.dtype.size_bytes()).unwrap()).collect();
        for l in &pk.rendered.launches {
            let params: Vec<u64> = l
                .params
                .iter()
                .map(|p| match *p {
                    Param::Input(j) => rt.address(&ins[j]),
                    Param::Output(j) => rt.address(&outs[j]),
                    Param::Partial(j) => rt.address(&parts[j]),
                })
                .collect();
            rt.launch(&module, l, &params).unwrap_or_else(|e| panic!("{name} {}: {e}", pk.at));
        }
        let refs: Vec<&HostArray> = inputs.iter().collect();
        let want = k.eval_reference(&refs).unwrap_or_else(|e| panic!("{name} {}: {e}", pk.at));
        for (j, ((o, w), buf)) in k.outputs.iter().zip(&want).zip(&outs).enumerate() {
            let got = from_bytes(&o.aval, &rt.download(buf, size(&o.aval)).unwrap()).unwrap();
            for e in 0..w.numel() {
                let (g, x) = (got.data().get(e).as_f64(), w.data().get(e).as_f64());
                assert!(
                    close(g, x, tol(k)),
                    "{name} {} output {j} element {e}: {g} vs {x}\n{}",
                    pk.at,
                    pk.rendered.source
                );
            }
        }
    }
}

#[test]
fn the_corpus_runs_as_the_reference_says() {
    for c in corpus::cases() {
        run(&c.name, &c.program, c.tol);
    }
}

#[test]
fn the_corpus_runs_as_the_reference_says_on_the_gpu() {
    let Some(rt) = gpu() else { return };
    for c in corpus::cases() {
        run_on(&rt, &c.name, &c.program, &|_| c.tol);
    }
}

/// Kernels of random well-typed programs (every fusible primitive, every
/// dtype, sizes 0 and 1, transposes, pads, gathers), all in one module:
/// `ARRAYJIT_SOAK=N` renders N fresh programs instead of the fixed 60.
#[test]
fn kernels_of_random_programs_match_the_reference() {
    run_with("random", &random_kernels(), &random_tolerance);
}

#[test]
fn kernels_of_random_programs_match_the_reference_on_the_gpu() {
    let Some(rt) = gpu() else { return };
    run_on(&rt, "random", &random_kernels(), &random_tolerance);
}

fn random_tolerance(k: &arrayjit_lower::Kernel) -> f64 {
    let any_f32 = k.nodes.iter().any(|n| n.dtype == DType::F32) || k.inputs.iter().any(|a| a.dtype == DType::F32);
    if any_f32 {
        2e-4
    } else {
        1e-9
    }
}

/// The kernels of the random programs, as one program.
fn random_kernels() -> RenderedProgram {
    use arrayjit_ir::random::{arb_program_and_inputs, GenConfig};
    use proptest::strategy::{Strategy, ValueTree};
    let (mut runner, count) = random_support::runner(7, 60);
    let config = GenConfig::default().without(&random_support::NOISY);
    let strategy = arb_program_and_inputs(config);
    let mut kernels = Vec::new();
    for c in 0..count {
        let Ok(tree) = strategy.new_tree(&mut runner) else { continue };
        let (p, _) = tree.current();
        let (q, _) = arrayjit_lower::optimize(&p).unwrap();
        let r = arrayjit_cuda::render_schedule_named(&arrayjit_lower::fuse(&q), &format!("p{c}_")).unwrap();
        kernels.extend(r.kernels);
    }
    assert!(kernels.len() >= 30, "only {} kernels", kernels.len());
    let rendered: Vec<_> = kernels.iter().map(|k| k.rendered.clone()).collect();
    RenderedProgram { source: arrayjit_cuda::render::module_source(&rendered), kernels, library: Vec::new() }
}
