//! The generated CUDA C computes what the reference interpreter computes.
//! Without a GPU, the module is compiled as C++ for the host (with
//! `arrayjit_cuda::emulator::SHIM`: threads of a block are OS threads meeting
//! at a barrier) and every launch of every kernel runs there, in the rendered
//! order, on random inputs; each output must match the kernel's reference
//! evaluation. This checks the renderer's indexing, its reductions (the
//! per-thread walks, the shared-memory tree, the chunk combining) and its
//! spelling of every primitive, on any machine with `g++`.

mod corpus;

use arrayjit::DType;
use arrayjit_cuda::render::Param;
use arrayjit_cuda::RenderedProgram;
use arrayjit_ir::{Data, HostArray};
use std::fmt::Write;
use std::path::PathBuf;
use std::process::Command;

fn cxx() -> Option<&'static str> {
    let ok = Command::new("g++").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        eprintln!("skipped: g++ is not available, the generated CUDA C is not run on the host");
    }
    ok.then_some("g++")
}

fn mem(d: DType) -> &'static str {
    match d {
        DType::F32 => "float",
        DType::F64 => "double",
        DType::I32 => "int",
        DType::Bool => "unsigned char",
    }
}

/// A `main` that runs kernel `argv[1]`'s launches on the files in `argv[2]`.
fn driver(p: &RenderedProgram) -> String {
    let mut s = String::from("int main(int argc, char** argv) {\n  if (argc < 3) return 2;\n  const char* dir = argv[2];\n  switch (std::atoi(argv[1])) {\n");
    for (i, pk) in p.kernels.iter().enumerate() {
        let k = &pk.kernel;
        let _ = writeln!(s, "  case {i}: {{");
        for (j, a) in k.inputs.iter().enumerate() {
            let _ = writeln!(s, "    auto in{j} = load<{}>(dir, \"in{j}\", {});", mem(a.dtype), a.numel());
        }
        for (j, o) in k.outputs.iter().enumerate() {
            let _ = writeln!(s, "    std::vector<{}> out{j}({});", mem(o.aval.dtype), o.aval.numel());
        }
        for (j, part) in pk.rendered.partials.iter().enumerate() {
            let t = if part.dtype == DType::Bool { "bool" } else { mem(part.dtype) };
            let _ = writeln!(s, "    std::vector<{t}> part{j}({});", part.len);
        }
        for l in &pk.rendered.launches {
            let args: Vec<String> = l
                .params
                .iter()
                .map(|p| match p {
                    Param::Input(j) => format!("in{j}.data()"),
                    Param::Output(j) => format!("out{j}.data()"),
                    Param::Partial(j) => format!("part{j}.data()"),
                })
                .collect();
            let body = pk.rendered.source.split(&format!(" {}(", l.name)).nth(1).unwrap_or("");
            let body = body.split("extern \"C\"").next().unwrap_or("");
            let _ = writeln!(
                s,
                "    launch({{{}, {}, {}}}, {{{}, {}, {}}}, {}, [&] {{ {}({}); }});",
                l.grid[0],
                l.grid[1],
                l.grid[2],
                l.block[0],
                l.block[1],
                l.block[2],
                body.contains("__syncthreads"),
                l.name,
                args.join(", ")
            );
        }
        for j in 0..k.outputs.len() {
            let _ = writeln!(s, "    save(dir, \"out{j}\", out{j});");
        }
        s.push_str("  } break;\n");
    }
    s.push_str("  default: return 2;\n  }\n  return 0;\n}\n");
    s
}

fn bytes(h: &HostArray) -> Vec<u8> {
    match h.data() {
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Bool(v) => v.iter().map(|&b| b as u8).collect(),
    }
}

fn from_bytes(d: DType, b: &[u8]) -> Vec<f64> {
    match d {
        DType::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
        DType::F64 => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
        DType::I32 => b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
        DType::Bool => b.iter().map(|&x| x as f64).collect(),
    }
}

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

/// Compiles the program for the host and checks every kernel against its reference.
fn run(name: &str, p: &RenderedProgram, tol: f64) {
    run_with(name, p, &|_| tol)
}

/// [`run`] with a tolerance chosen per kernel.
fn run_with(name: &str, p: &RenderedProgram, tol: &dyn Fn(&arrayjit_lower::Kernel) -> f64) {
    let Some(cxx) = cxx() else { return };
    let dir = std::env::temp_dir().join(format!("arrayjit-host-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = format!("{}\n{}\n{}", arrayjit_cuda::emulator::SHIM, p.source, driver(p));
    let file = dir.join("module.cpp");
    std::fs::write(&file, src).unwrap();
    let exe: PathBuf = dir.join("module");
    let out = Command::new(cxx)
        .args(["-std=c++20", "-O1", "-pthread", "-w", "-o"])
        .arg(&exe)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{cxx}: {e}"));
    assert!(out.status.success(), "{name}: the host build failed:\n{}", String::from_utf8_lossy(&out.stderr));
    for (i, pk) in p.kernels.iter().enumerate() {
        let k = &pk.kernel;
        let inputs: Vec<HostArray> = k.inputs.iter().enumerate().map(|(j, a)| input(a, j + i)).collect();
        for (j, h) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("in{j}")), bytes(h)).unwrap();
        }
        let status = Command::new(&exe).arg(i.to_string()).arg(&dir).status().unwrap();
        assert!(status.success(), "{name}: kernel {} failed on the host", pk.at);
        let refs: Vec<&HostArray> = inputs.iter().collect();
        let want = k.eval_reference(&refs).unwrap_or_else(|e| panic!("{name} {}: {e}", pk.at));
        for (j, (o, w)) in k.outputs.iter().zip(&want).enumerate() {
            let got = from_bytes(o.aval.dtype, &std::fs::read(dir.join(format!("out{j}"))).unwrap());
            assert_eq!(got.len(), w.numel(), "{name} {} output {j}", pk.at);
            for (e, g) in got.iter().enumerate() {
                let x = w.data().get(e).as_f64();
                assert!(
                    close(*g, x, tol(k)),
                    "{name} {} output {j} element {e}: {g} vs {x}\n{}",
                    pk.at,
                    pk.rendered.source
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_corpus_runs_as_the_reference_says() {
    for c in corpus::cases() {
        run(&c.name, &c.program, c.tol);
    }
}

/// Kernels of random well-typed programs (every fusible primitive, every
/// dtype, sizes 0 and 1, transposes, pads, gathers), all in one module:
/// `ARRAYJIT_SOAK=N` renders N fresh programs instead of the fixed 60.
#[test]
fn kernels_of_random_programs_match_the_reference() {
    use arrayjit_ir::random::{arb_program_and_inputs, GenConfig};
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let soak = std::env::var("ARRAYJIT_SOAK").ok().and_then(|s| s.parse::<usize>().ok());
    let seed: [u8; 32] = match soak {
        Some(_) => std::array::from_fn(|i| (std::process::id() as u8).wrapping_add(i as u8)),
        None => [7; 32],
    };
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    // As the CPU's differential tests: no integer division by zero or float
    // remainder by tiny values (noise on both sides), no factorizations (not
    // kernels), and no floor, ceil or sign of values a few ulp apart.
    let config = GenConfig::default().without(&[
        "div",
        "rem",
        "cholesky",
        "triangular_solve",
        "lu",
        "floor",
        "ceil",
        "sign",
        "reduce_prod",
    ]);
    let strategy = arb_program_and_inputs(config);
    let mut kernels = Vec::new();
    for c in 0..soak.unwrap_or(60) {
        let Ok(tree) = strategy.new_tree(&mut runner) else { continue };
        let (p, _) = tree.current();
        let (q, _) = arrayjit_lower::optimize(&p).unwrap();
        let r = arrayjit_cuda::render_schedule_named(&arrayjit_lower::fuse(&q), &format!("p{c}_")).unwrap();
        kernels.extend(r.kernels);
    }
    assert!(kernels.len() >= 30, "only {} kernels", kernels.len());
    let rendered: Vec<_> = kernels.iter().map(|k| k.rendered.clone()).collect();
    let program =
        RenderedProgram { source: arrayjit_cuda::render::module_source(&rendered), kernels, library: Vec::new() };
    let f32_tol = |k: &arrayjit_lower::Kernel| {
        let any_f32 = k.nodes.iter().any(|n| n.dtype == DType::F32) || k.inputs.iter().any(|a| a.dtype == DType::F32);
        if any_f32 {
            2e-4
        } else {
            1e-9
        }
    };
    run_with("random", &program, &f32_tol);
}
