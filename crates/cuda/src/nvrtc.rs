//! CUDA C to PTX with NVRTC, cached in memory and on disk.
//!
//! NVRTC is loaded at run time. `ARRAYJIT_NVRTC` may name the library file
//! (or the folder holding `libnvrtc.so.12`), for an NVRTC that is not on the
//! loader's path, as the one a Python wheel installs; otherwise the usual
//! names are tried. Without one, compiling returns [`CudaError::NoNvrtc`].
//!
//! Compiled PTX and machine code are cached under a key hashing the source, the target
//! architecture and NVRTC's version: in memory for the process, and as files
//! in `ARRAYJIT_CACHE_DIR` (default `$XDG_CACHE_HOME/arrayjit` or
//! `~/.cache/arrayjit`; `ARRAYJIT_CACHE_DIR=` turns the disk cache off).

use crate::error::CudaError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// PTX for one architecture, and whether it came from a cache.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub ptx: Arc<str>,
    pub arch: String,
    pub cached: bool,
}

/// The loaded library, kept open so that cudarc's own lookup by name finds it.
fn library() -> Result<(), CudaError> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("ARRAYJIT_NVRTC").filter(|p| !p.is_empty()) {
                let mut path = PathBuf::from(path);
                if path.is_dir() {
                    path.push("libnvrtc.so.12");
                }
                // SAFETY: loading NVRTC runs its initialisers, which have no
                // preconditions; the handle is leaked so that it stays loaded.
                match unsafe { libloading::Library::new(&path) } {
                    Ok(lib) => std::mem::forget(lib),
                    Err(e) => return Err(format!("ARRAYJIT_NVRTC={}: {e}", path.display())),
                }
            }
            // SAFETY: only tries to open the library by its usual names.
            if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                Ok(())
            } else {
                Err("libnvrtc was not found (set ARRAYJIT_NVRTC to its file or folder)".into())
            }
        })
        .clone()
        .map_err(CudaError::NoNvrtc)
}

/// Whether NVRTC can be loaded.
pub fn available() -> bool {
    library().is_ok()
}

/// NVRTC's version, as `major.minor`.
pub fn version() -> Result<String, CudaError> {
    library()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is loaded; the call writes two integers.
    let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if r != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(CudaError::NoNvrtc(format!("nvrtcVersion failed: {r:?}")));
    }
    Ok(format!("{major}.{minor}"))
}

/// Compiles `source` (a whole module) to PTX for `arch` (`sm_80`, `sm_90`, ...).
pub fn compile(source: &str, arch: &str) -> Result<Compiled, CudaError> {
    let key = cache_key(source, arch, &version()?);
    let (bytes, cached) = cached(&key, "ptx", || {
        let opts = cudarc::nvrtc::CompileOptions {
            options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()],
            name: Some("arrayjit.cu".into()),
            ..Default::default()
        };
        match cudarc::nvrtc::compile_ptx_with_opts(source, opts) {
            Ok(p) => Ok(p.to_src().into_bytes()),
            Err(cudarc::nvrtc::CompileError::CompileError { log, .. }) => Err(CudaError::Compile {
                arch: arch.into(),
                log: log.to_string_lossy().into_owned(),
                code: numbered(source),
            }),
            Err(e) => Err(CudaError::Compile { arch: arch.into(), log: format!("{e:?}"), code: numbered(source) }),
        }
    })?;
    Ok(Compiled { ptx: String::from_utf8_lossy(&bytes).into(), arch: arch.into(), cached })
}

/// Compiles `source` to machine code for `arch` (a real architecture such as
/// `sm_90`), so that loading it needs no compilation by the driver. Cached
/// as [`compile`] caches PTX.
pub fn compile_cubin(source: &str, arch: &str) -> Result<Arc<[u8]>, CudaError> {
    let key = cache_key(source, arch, &version()?);
    cached(&key, "cubin", || cubin(source, arch)).map(|(image, _)| image)
}

/// What `make` makes under `key` and the file extension `ext`: from memory,
/// else from the disk cache, else made and kept in both; and whether it came
/// from a cache.
fn cached(
    key: &str,
    ext: &str,
    make: impl FnOnce() -> Result<Vec<u8>, CudaError>,
) -> Result<(Arc<[u8]>, bool), CudaError> {
    static MEMORY: OnceLock<Mutex<HashMap<String, Arc<[u8]>>>> = OnceLock::new();
    let memory = MEMORY.get_or_init(Default::default);
    let name = format!("{key}.{ext}");
    if let Some(made) = memory.lock().map_err(|_| CudaError::Poisoned)?.get(&name) {
        return Ok((made.clone(), true));
    }
    let file = cache_dir().map(|d| d.join(&name));
    if let Some(made) = file.as_ref().and_then(|f| std::fs::read(f).ok()).filter(|b| !b.is_empty()) {
        let made: Arc<[u8]> = made.into();
        memory.lock().map_err(|_| CudaError::Poisoned)?.insert(name, made.clone());
        return Ok((made, true));
    }
    let made: Arc<[u8]> = make()?.into();
    if let Some(f) = &file {
        // The cache is an optimisation: failing to write it is not an error.
        let tmp = temporary(f);
        if std::fs::create_dir_all(f.parent().unwrap_or(f)).is_ok() && std::fs::write(&tmp, &made).is_ok() {
            let _ = std::fs::rename(&tmp, f);
        }
    }
    memory.lock().map_err(|_| CudaError::Poisoned)?.insert(name, made.clone());
    Ok((made, false))
}

/// One NVRTC compilation, its machine code read back.
fn cubin(source: &str, arch: &str) -> Result<Vec<u8>, CudaError> {
    use cudarc::nvrtc::{result, sys};
    let failed = |log: String| CudaError::Compile { arch: arch.into(), log, code: numbered(source) };
    let src = std::ffi::CString::new(source).map_err(|e| failed(e.to_string()))?;
    let prog = result::create_program(&src, Some(c"arrayjit.cu")).map_err(|e| failed(format!("{e:?}")))?;
    let options = [format!("--gpu-architecture={arch}"), "--std=c++17".to_string()];
    // SAFETY: `prog` was just created and is destroyed once, below.
    let out = unsafe {
        let compiled = result::compile_program(prog, &options);
        let out = match compiled {
            Err(_) => {
                let log = result::get_program_log(prog).unwrap_or_default();
                let log: Vec<u8> = log.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
                Err(failed(String::from_utf8_lossy(&log).into_owned()))
            }
            Ok(()) => {
                let mut size = 0usize;
                match sys::nvrtcGetCUBINSize(prog, &mut size).result() {
                    Err(e) => Err(failed(format!("no machine code: {e:?}"))),
                    Ok(()) => {
                        let mut image = vec![0u8; size];
                        sys::nvrtcGetCUBIN(prog, image.as_mut_ptr().cast())
                            .result()
                            .map(|()| image)
                            .map_err(|e| failed(format!("no machine code: {e:?}")))
                    }
                }
            }
        };
        let _ = result::destroy_program(prog);
        out
    };
    out
}

/// A file beside `f` that no other process or thread writes: the cache is
/// written there, then renamed into place.
fn temporary(f: &std::path::Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    f.with_extension(format!("tmp{}-{n}", std::process::id()))
}

/// The source with line numbers, as a compile error shows it (NVRTC's log cites lines).
fn numbered(source: &str) -> String {
    source.lines().enumerate().map(|(i, l)| format!("{:5} | {l}\n", i + 1)).collect()
}

fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("ARRAYJIT_CACHE_DIR") {
        Some(d) if d.is_empty() => None,
        Some(d) => Some(PathBuf::from(d)),
        None => {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(base.join("arrayjit"))
        }
    }
}

/// A stable 128-bit hash (two FNV-1a lanes) of everything the PTX depends on.
fn cache_key(source: &str, arch: &str, version: &str) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for chunk in [source.as_bytes(), b"\0", arch.as_bytes(), b"\0", version.as_bytes()] {
        for &x in chunk {
            a = (a ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3);
            b = (b ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(5);
        }
    }
    format!("cuda-{arch}-{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_change_with_source_arch_and_version() {
        let k = cache_key("a", "sm_90", "12.9");
        assert_eq!(k, cache_key("a", "sm_90", "12.9"));
        assert_ne!(k, cache_key("b", "sm_90", "12.9"));
        assert_ne!(k, cache_key("a", "sm_80", "12.9"));
        assert_ne!(k, cache_key("a", "sm_90", "12.8"));
        assert_ne!(cache_key("ab", "c", ""), cache_key("a", "bc", ""));
    }
}
