//! Every generated kernel compiles and assembles cleanly: a corpus of
//! programs (elementwise chains, every reduction shape, integer and boolean
//! arithmetic, gathers, every transcendental, the PLN step in a scan) is
//! lowered, rendered as CUDA C, compiled by NVRTC for sm_80 and sm_90, and
//! assembled by `ptxas`, which must report no spills and no stack frame,
//! and registers few enough for every launch's block to fit on one
//! multiprocessor.
//!
//! Neither tool needs a GPU. NVRTC comes from `ARRAYJIT_NVRTC` (or the
//! loader's path) and `ptxas` from `ARRAYJIT_PTXAS` (or `PATH`); `.ci/run`
//! installs both. Without them these tests say so and pass, unless
//! `ARRAYJIT_REQUIRE_CUDA_TOOLS=1` (as CI sets), which makes them fail.

mod corpus;

use arrayjit_cuda::render;
use arrayjit_cuda::{nvrtc, RenderedProgram};
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
        // The most threads any launch of each function asks for.
        let threads: std::collections::HashMap<&str, u32> = program
            .kernels
            .iter()
            .map(|k| &k.rendered)
            .chain(program.library.iter().map(|(_, k)| k))
            .flat_map(|k| k.launches.iter())
            .fold(Default::default(), |mut m, l| {
                let t = l.block.iter().product::<u32>();
                let e = m.entry(l.name.as_str()).or_insert(0);
                *e = (*e).max(t);
                m
            });
        let mut function = "";
        let mut compiling = "";
        for line in log.lines() {
            if let Some(f) = line.split("Function properties for ").nth(1) {
                function = f.trim();
            }
            if let Some(f) = line.split("Compiling entry function '").nth(1) {
                compiling = f.split('\'').next().unwrap_or("");
            }
            // A block's threads must find their registers on one
            // multiprocessor (64 K, allocated 8 per thread at a time), or
            // the launch fails.
            if let Some(used) = line.split("Used ").nth(1).and_then(|r| r.split(' ').next()?.parse::<u32>().ok()) {
                let t = threads.get(compiling).copied().unwrap_or(0);
                assert!(
                    used.div_ceil(8) * 8 * t <= 65536,
                    "{name} ({arch}) {compiling}: {used} registers a thread for {t} threads a block"
                );
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
            let uses_trig = render::functions(&program.source).any(|(f, text)| f == function && text.contains("sin"));
            assert!(line.contains(" 0 bytes stack frame") || uses_trig, "{name} ({arch}) {function}: {line}\n{log}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    functions
}

#[test]
fn the_corpus_compiles_for_sm80_and_sm90_without_spills() {
    let Some(ptxas) = tools() else { return };
    for c in corpus::cases() {
        let functions = check(&c.name, &c.program, &ptxas);
        assert!(functions >= 2 * c.program.kernels.len(), "{}: ptxas reported on {functions} functions", c.name);
    }
}

/// The runtime loads machine code that NVRTC made for the device's
/// architecture: an ELF image, for the PLN step's module in parts.
#[test]
fn nvrtc_makes_machine_code_for_each_part_of_a_module() {
    if tools().is_none() {
        return;
    }
    let cases = corpus::cases();
    let Some(pln) = cases.iter().find(|c| c.name == "pln_step") else { panic!("no PLN step in the corpus") };
    let kernels: Vec<_> = pln
        .program
        .kernels
        .iter()
        .map(|k| k.rendered.clone())
        .chain(pln.program.library.iter().map(|(_, k)| k.clone()))
        .collect();
    let parts = render::module_sources(&kernels, 2);
    assert_eq!(parts.len(), 2);
    for part in &parts {
        let image = nvrtc::compile_cubin(part, "sm_90").unwrap_or_else(|e| panic!("{e}"));
        assert!(image.starts_with(b"\x7fELF"), "not an ELF image");
    }
}
