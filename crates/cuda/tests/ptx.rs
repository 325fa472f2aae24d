//! Every generated kernel compiles and assembles cleanly: a corpus of
//! programs (elementwise chains, every reduction shape, integer and boolean
//! arithmetic, gathers, every transcendental, the PLN step in a scan) is
//! lowered, rendered as CUDA C, compiled by NVRTC for sm_80 and sm_90, and
//! assembled by `ptxas`, which must report no spills and no stack frame.
//!
//! Neither tool needs a GPU. NVRTC comes from `ARRAYJIT_NVRTC` (or the
//! loader's path) and `ptxas` from `ARRAYJIT_PTXAS` (or `PATH`); `.ci/run`
//! installs both. Without them these tests say so and pass, unless
//! `ARRAYJIT_REQUIRE_CUDA_TOOLS=1` (as CI sets), which makes them fail.

use arrayjit::optim::GradientTransformation;
use arrayjit::{jit, scan_with, Array, DType, ScanOptions};
use arrayjit_cuda::{nvrtc, render_schedule, RenderedProgram};
use arrayjit_pln::{init, optimizer, step, Dataset, OptState, Params};
use std::path::PathBuf;
use std::process::Command;

const ARCHES: [&str; 2] = ["sm_80", "sm_90"];

fn ptxas() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ARRAYJIT_PTXAS").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let found = Command::new("ptxas").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    found.then(|| PathBuf::from("ptxas"))
}

/// The tools, or `None` after saying why these tests do not run here.
fn tools() -> Option<PathBuf> {
    let required = std::env::var("ARRAYJIT_REQUIRE_CUDA_TOOLS").is_ok_and(|v| v == "1");
    let missing = match (nvrtc::available(), ptxas()) {
        (true, Some(p)) => return Some(p),
        (false, _) => "NVRTC (set ARRAYJIT_NVRTC)",
        (true, None) => "ptxas (set ARRAYJIT_PTXAS)",
    };
    assert!(!required, "ARRAYJIT_REQUIRE_CUDA_TOOLS=1 but {missing} is missing");
    eprintln!("skipped: {missing} is not available on this machine; the CUDA code generation is not checked");
    None
}

/// Compiles the program for each architecture and assembles it; returns the
/// number of functions ptxas reported on.
fn check(name: &str, program: &RenderedProgram, ptxas: &PathBuf) -> usize {
    let dir = std::env::temp_dir().join(format!("arrayjit-ptx-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut functions = 0;
    for arch in ARCHES {
        let compiled = nvrtc::compile(&program.source, arch).unwrap_or_else(|e| panic!("{name}: {e}"));
        let file = dir.join(format!("{name}_{arch}.ptx"));
        std::fs::write(&file, compiled.ptx.as_bytes()).unwrap();
        let out = Command::new(ptxas)
            .args([&format!("-arch={arch}"), "-v", "-o"])
            .arg(dir.join(format!("{name}_{arch}.cubin")))
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", ptxas.display()));
        let log = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} ({arch}): ptxas failed:\n{log}\n{}", program.source);
        let mut function = "";
        for line in log.lines() {
            if let Some(f) = line.split("Function properties for ").nth(1) {
                function = f.trim();
            }
            if !line.contains("bytes stack frame") {
                continue;
            }
            functions += 1;
            assert!(
                line.contains(" 0 bytes spill stores, 0 bytes spill loads"),
                "{name} ({arch}) {function}: {line}\n{log}"
            );
            // CUDA's accurate sin and cos reduce huge arguments (|x| > 1e5)
            // in a small local array: the one stack frame allowed.
            let uses_trig = function_source(&program.source, function).contains("sin");
            assert!(line.contains(" 0 bytes stack frame") || uses_trig, "{name} ({arch}) {function}: {line}\n{log}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    functions
}

/// The text of function `name` in a module's source.
fn function_source<'a>(source: &'a str, name: &str) -> &'a str {
    let Some(start) = source.find(&format!(" {name}(")) else { return "" };
    let rest = &source[start..];
    &rest[..rest[1..].find("extern \"C\"").map_or(rest.len(), |e| e + 1)]
}

fn ramp(shape: &[usize], dtype: DType) -> Array {
    let n: usize = shape.iter().product();
    Array::from_vec((0..n).map(|i| ((i % 17) as f64 - 8.0) * 0.25).collect::<Vec<f64>>(), shape.to_vec()).astype(dtype)
}

fn render<In: arrayjit::Tree, Out: arrayjit::Tree>(f: impl Fn(In) -> Out, args: &In) -> RenderedProgram {
    let lowered = jit(f).lower(args).unwrap();
    render_schedule(lowered.schedule()).unwrap()
}

#[test]
fn elementwise_reductions_and_integers_compile_for_sm80_and_sm90() {
    let Some(ptxas) = tools() else { return };
    let mut total = 0;
    for dtype in [DType::F32, DType::F64] {
        let x = ramp(&[37, 5], dtype);
        let v = ramp(&[5], dtype);
        // Stores, a broadcast, and sums over rows, columns and everything in one kernel.
        let p = render(
            |(x, v): (Array, Array)| {
                let y = (&x * &v + 1.0).exp() - x.tanh();
                (y.clone(), y.sum(0), y.sum(1), y.sum(..), x.max(0), x.min(..))
            },
            &(x.clone(), v.clone()),
        );
        total += check(&format!("reductions_{dtype}"), &p, &ptxas);
        // Every transcendental, and the comparisons and selects around them.
        let p = render(
            |x: Array| {
                let a = x.abs() + 0.5;
                let t = a.log() + a.log1p() + x.expm1() + x.logistic() + x.sin() * x.cos() + a.sqrt() + a.rsqrt();
                let t = t + a.pow(&x) + x.floor() - x.ceil() + x.sign() + x.rem(0.75) + x.powi(3) + x.powi(-2);
                let m = x.maximum(&a).minimum(2.0);
                (x.gt(0.0).select(&t, &m), x.is_finite())
            },
            &x,
        );
        total += check(&format!("transcendentals_{dtype}"), &p, &ptxas);
    }
    // Integers and booleans: division and remainder as XLA defines them, shifts of dtype, iota.
    let i = ramp(&[64], DType::F32).astype(DType::I32);
    let p = render(
        |i: Array| {
            let j = Array::iota(DType::I32, [64], 0) - 7;
            let q = i.div_raw(&j) + i.rem(&j) + i.powi(2) - i.abs().neg();
            let b = q.gt(&j).and(i.ne(0)).not();
            (q.clone(), b.select(&q, &i), q.astype(DType::F32).sum(..), b.astype(DType::I32).max(..))
        },
        &i,
    );
    total += check("integers", &p, &ptxas);
    // Gathers: concatenation and padding read clamped positions.
    let x = ramp(&[6, 4], DType::F32);
    let p = render(|x: Array| arrayjit::concatenate(&[x.clone(), x.exp()], 0).sum(1), &x);
    total += check("gathers", &p, &ptxas);
    assert!(total >= 10, "ptxas reported on {total} functions");
}

#[test]
fn the_pln_step_in_a_scan_compiles_for_sm80_and_sm90() {
    let Some(ptxas) = tools() else { return };
    let data = Dataset::oaks(1, DType::F32).unwrap();
    let (params, sigma, omega) = init(&data);
    let opt = optimizer().init_tree(&params).unwrap();
    type State = (Params, Array, Array, OptState);
    let fit = |state: State| {
        scan_with(
            |(params, _sigma, omega, opt): State, (): ()| -> arrayjit::Result<(State, Array)> {
                let (params, sigma, omega, opt, loss) = step(&data, params, &omega, opt)?;
                Ok(((params, sigma, omega, opt), loss))
            },
            state,
            (),
            ScanOptions::default().length(3),
        )
    };
    let lowered = jit(fit).lower(&(params, sigma, omega, opt)).unwrap();
    let program = render_schedule(lowered.schedule()).unwrap();
    assert!(program.kernels.iter().any(|k| k.at.contains('b')), "the scan body's kernels are rendered");
    let functions = check("pln_step", &program, &ptxas);
    assert!(functions >= 2 * program.kernels.len(), "ptxas reported on {functions} functions");
}
