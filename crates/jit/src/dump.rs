//! `ARRAYJIT_DUMP=dir`: every compilation writes its stages to files in `dir`
//! — the traced program, the program after each optimisation pass, the fused
//! schedule with its fusion decisions, and each kernel's Cranelift IR with the
//! machine code it became — one
//! file per stage, named `<function>-<n>.<stage>.txt`.

use crate::stages::{Compiled, Lowered};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

fn dir() -> Option<PathBuf> {
    std::env::var_os("ARRAYJIT_DUMP").filter(|v| !v.is_empty()).map(PathBuf::from)
}

pub(crate) fn enabled() -> bool {
    dir().is_some()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn file_stem(name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let clean = clean.trim_matches('_').chars().take(60).collect::<String>();
    format!("{clean}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Writes files; a dump that cannot be written is reported once on stderr and
/// never fails the compilation.
fn write(files: Vec<(String, String)>) {
    let Some(dir) = dir() else { return };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("arrayjit: cannot create the dump folder {}: {e}", dir.display());
        return;
    }
    for (name, text) in files {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("arrayjit: cannot write {}: {e}", path.display());
            return;
        }
    }
}

pub(crate) fn lowered<In, Out>(l: &Lowered<In, Out>) {
    if !enabled() {
        return;
    }
    let stem = file_stem(&l.name);
    let mut files = vec![(format!("{stem}.0-traced.txt"), l.traced.program.to_string())];
    for (i, (pass, p)) in l.stages.iter().enumerate() {
        files.push((format!("{stem}.{}-{pass}.txt", i + 1), p.to_string()));
    }
    files.push((format!("{stem}.fusion.txt"), l.schedule.to_string()));
    write(files);
}

pub(crate) fn compiled<In, Out>(c: &Compiled<In, Out>) {
    if !enabled() {
        return;
    }
    let stem = file_stem(&c.name);
    let text = format!("; {}: {}\n\n{}", c.name, c.timings, c.exe.clif_text());
    write(vec![(format!("{stem}.clif.txt"), text)]);
}
