//! A [`Runtime`] that runs the generated CUDA C on the CPU, for testing the
//! CUDA backend on machines without a GPU: each module is compiled as C++
//! into a shared library by the system's `g++` (with [`SHIM`], which runs a
//! block's threads as fibers switched at its barriers and gives the device
//! intrinsics their PTX semantics), buffers are host memory, and products
//! are plain loops. It is slow and meant for tests: everything the executor
//! does above the runtime (memory, launch order, loops, products) is then
//! checked on any machine.

use crate::error::CudaError;
use crate::gemm::Gemm;
use crate::render::{Launch, RenderedKernel};
use crate::runtime::Runtime;
use arrayjit_ir::DType;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The header that makes generated CUDA C compile and run as host C++.
pub const SHIM: &str = include_str!("emulator_shim.h");

/// Host memory standing for device memory (8-byte aligned).
pub struct HostBuf {
    ptr: *mut u8,
    _mem: Vec<u64>,
}

/// A module built into a shared library.
pub struct HostModule {
    lib: libloading::Library,
}

/// The host runtime.
pub struct HostRuntime;

// SAFETY: a buffer owns its memory; the pointer is only an address into it.
unsafe impl Send for HostBuf {}
unsafe impl Sync for HostBuf {}

type LaunchFn = unsafe extern "C" fn(*const std::ffi::c_char, *const u32, *const u64) -> i32;

impl HostRuntime {
    /// Whether `g++` is there to build modules.
    pub fn available() -> bool {
        Command::new("g++").arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
    }
}

fn err(m: impl Into<String>) -> CudaError {
    CudaError::Driver(m.into())
}

/// The dispatcher the shared library exports: launches a function by name.
fn dispatcher(source: &str) -> String {
    let mut s = String::from(
        r#"
#include <cstring>
#include <utility>
template <typename... A, std::size_t... I>
void aj_call_impl(void (*f)(A...), const unsigned long long* p, std::index_sequence<I...>) {
  f(reinterpret_cast<A>(p[I])...);
}
template <typename... A> void aj_call(void (*f)(A...), const unsigned long long* p) {
  aj_call_impl(f, p, std::index_sequence_for<A...>{});
}
extern "C" int aj_launch(const char* name, const unsigned* d, const unsigned long long* p) {
  dim3 grid = {d[0], d[1], d[2]}, block = {d[3], d[4], d[5]};
"#,
    );
    for (name, text) in crate::render::functions(source) {
        let sync = text.contains("__syncthreads") || text.contains("__syncwarp");
        s.push_str(&format!(
            "  if (!std::strcmp(name, \"{name}\")) {{ return launch(grid, block, {sync}, [&] {{ aj_call({name}, p); }}); }}\n"
        ));
    }
    s.push_str("  return 1;\n}\n");
    s
}

impl Runtime for HostRuntime {
    type Buf = HostBuf;
    type Module = HostModule;
    /// Never made: this runtime runs each call as it comes.
    type Graph = std::convert::Infallible;

    fn alloc(&self, bytes: usize) -> Result<HostBuf, CudaError> {
        let mut mem = vec![0u64; bytes.div_ceil(8).max(1)];
        let ptr = mem.as_mut_ptr() as *mut u8;
        Ok(HostBuf { ptr, _mem: mem })
    }

    fn upload(&self, data: &[u8]) -> Result<HostBuf, CudaError> {
        let b = self.alloc(data.len())?;
        // SAFETY: `b` holds at least `data.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), b.ptr, data.len()) };
        Ok(b)
    }

    fn download(&self, buf: &HostBuf, bytes: usize) -> Result<Vec<u8>, CudaError> {
        let mut out = vec![0u8; bytes];
        // SAFETY: the executor reads at most a buffer's size.
        unsafe { std::ptr::copy_nonoverlapping(buf.ptr, out.as_mut_ptr(), bytes) };
        Ok(out)
    }

    fn copy(&self, src: &HostBuf, so: usize, dst: &HostBuf, d: usize, bytes: usize) -> Result<(), CudaError> {
        // SAFETY: offsets and lengths stay within the buffers (the executor's sizes).
        unsafe { std::ptr::copy(src.ptr.add(so), dst.ptr.add(d), bytes) };
        Ok(())
    }

    fn address(&self, buf: &HostBuf) -> u64 {
        buf.ptr as u64
    }

    fn load(&self, kernels: &[RenderedKernel]) -> Result<HostModule, CudaError> {
        let source = &crate::render::module_source(kernels);
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("arrayjit-hostrt-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        let text = format!("{SHIM}\n{source}\n{}", dispatcher(source));
        let file = dir.join("module.cpp");
        std::fs::write(&file, text).map_err(|e| err(e.to_string()))?;
        let so = dir.join("module.so");
        // Unoptimised: tests run small kernels, and -O1 cost more in compiling
        // (0.5-0.65 s a module against 0.3-0.4) than it saved in running them.
        let out = Command::new("g++")
            .args(["-std=c++20", "-O0", "-pthread", "-w", "-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(&file)
            .output()
            .map_err(|e| err(e.to_string()))?;
        if !out.status.success() {
            return Err(err(format!("g++: {}", String::from_utf8_lossy(&out.stderr))));
        }
        // SAFETY: the library is ours, built just now; its initialisers are the C++ runtime's.
        let lib = unsafe { libloading::Library::new(&so) }.map_err(|e| err(e.to_string()))?;
        // The loaded library stays mapped without its files.
        let _ = std::fs::remove_dir_all(&dir);
        Ok(HostModule { lib })
    }

    fn launch(&self, m: &HostModule, l: &Launch, params: &[u64]) -> Result<(), CudaError> {
        let dims = [l.grid[0], l.grid[1], l.grid[2], l.block[0], l.block[1], l.block[2]];
        let name = std::ffi::CString::new(l.name.clone()).map_err(|e| err(e.to_string()))?;
        // SAFETY: the symbol is the dispatcher `load` generated, with this signature;
        // the parameters are the addresses of live buffers of the kernel's sizes.
        let r = unsafe {
            let f: libloading::Symbol<LaunchFn> = m.lib.get(b"aj_launch").map_err(|e| err(e.to_string()))?;
            f(name.as_ptr(), dims.as_ptr(), params.as_ptr())
        };
        match r {
            0 => Ok(()),
            1 => Err(err(format!("no function {} in the module", l.name))),
            2 => Err(err(format!("{}: no stacks for the threads of a block of {:?}", l.name, l.block))),
            _ => Err(err(format!(
                "{}: threads of a block of {:?} wait at a barrier that the others left without reaching",
                l.name, l.block
            ))),
        }
    }

    fn end_capture(&self) -> Result<Self::Graph, CudaError> {
        Err(err("the host runtime does not record work"))
    }

    fn replay(&self, graph: &Self::Graph) -> Result<(), CudaError> {
        match *graph {}
    }

    fn gemm(&self, g: &Gemm, a: &HostBuf, b: &HostBuf, c: &HostBuf) -> Result<(), CudaError> {
        let len = |l: &crate::gemm::Layout, rows: usize, cols: usize| {
            (g.batch.max(1) - 1) * l.batch + (rows.max(1) - 1) * l.rs + (cols.max(1) - 1) * l.cs + 1
        };
        let (la, lb, lc) = (len(&g.a, g.m, g.k), len(&g.b, g.k, g.n), g.batch * g.m * g.n);
        let mut out = vec![0.0f64; lc];
        // SAFETY: the buffers hold the operands the plan describes.
        unsafe {
            match g.dtype {
                DType::F32 => {
                    let (x, y) = (
                        std::slice::from_raw_parts(a.ptr as *const f32, la),
                        std::slice::from_raw_parts(b.ptr as *const f32, lb),
                    );
                    g.reference(x, y, &mut out);
                    let c = std::slice::from_raw_parts_mut(c.ptr as *mut f32, lc);
                    c.iter_mut().zip(&out).for_each(|(c, o)| *c = *o as f32);
                }
                DType::F64 => {
                    let (x, y) = (
                        std::slice::from_raw_parts(a.ptr as *const f64, la),
                        std::slice::from_raw_parts(b.ptr as *const f64, lb),
                    );
                    g.reference(x, y, &mut out);
                    std::slice::from_raw_parts_mut(c.ptr as *mut f64, lc).copy_from_slice(&out);
                }
                d => return Err(err(format!("no {d} product"))),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Param;

    /// The host runtime, or `None` (saying so) without `g++`.
    fn runtime() -> Option<HostRuntime> {
        let ok = HostRuntime::available();
        if !ok {
            eprintln!("skipped: g++ is not available");
        }
        ok.then_some(HostRuntime)
    }

    /// A module of one hand-written function `name(float* out)` with
    /// `block` threads per block, its launch, and an output of `len` floats.
    fn one(
        rt: &HostRuntime,
        source: &str,
        name: &str,
        grid: u32,
        block: [u32; 3],
        len: usize,
    ) -> (HostModule, Launch, HostBuf) {
        let launch = Launch { name: name.into(), grid: [grid, 1, 1], block, params: vec![Param::Output(0)] };
        let k = RenderedKernel { source: source.into(), launches: vec![launch.clone()], partials: Vec::new() };
        let module = rt.load(&[k]).unwrap_or_else(|e| panic!("{e}"));
        (module, launch, rt.alloc(4 * len).unwrap_or_else(|e| panic!("{e}")))
    }

    fn floats(rt: &HostRuntime, b: &HostBuf, n: usize) -> Vec<f32> {
        let bytes = rt.download(b, 4 * n).unwrap_or_else(|e| panic!("{e}"));
        bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }

    #[test]
    fn threads_of_a_block_meet_at_barriers() {
        let Some(rt) = runtime() else { return };
        // Each block reverses its 2x64 slice through shared memory, twice
        // over a barrier; each warp then sums its 32 values through a
        // second shared array and __syncwarp, in lane 0's order.
        let source = r#"extern "C" __global__ void turn(float* out) {
  __shared__ float s[128];
  __shared__ float w[128];
  unsigned t = threadIdx.x + 64 * threadIdx.y, base = 128 * blockIdx.x;
  s[t] = (float)(base + t);
  __syncthreads();
  float v = s[127 - t];
  __syncthreads();
  s[t] = v * 2.0f;
  __syncthreads();
  out[base + t] = s[127 - t];
  w[t] = s[t];
  __syncwarp();
  if (t % 32 == 0) {
    float acc = 0.0f;
    for (int i = 0; i < 32; ++i) acc += w[t + i];
    out[256 + 4 * blockIdx.x + t / 32] = acc;
  }
}
"#;
        let (m, l, out) = one(&rt, source, "turn", 2, [64, 2, 1], 256 + 8);
        rt.launch(&m, &l, &[rt.address(&out)]).unwrap_or_else(|e| panic!("{e}"));
        let got = floats(&rt, &out, 256 + 8);
        for (i, &x) in got[..256].iter().enumerate() {
            assert_eq!(x, 2.0 * i as f32, "element {i}");
        }
        for (k, &x) in got[256..].iter().enumerate() {
            let (b, w) = (k / 4, k % 4);
            // Warp w of block b holds s[t] = 2·(base + 127 − t) for its 32 t.
            let want: f32 = (32 * w..32 * w + 32).map(|t| 2.0 * (128 * b + 127 - t) as f32).sum();
            assert_eq!(x, want, "warp {w} of block {b}");
        }
    }

    #[test]
    fn a_barrier_that_some_threads_skip_is_an_error_not_a_hang() {
        let Some(rt) = runtime() else { return };
        let source = r#"extern "C" __global__ void stuck(float* out) {
  if (threadIdx.x < 5) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}
"#;
        let (m, l, out) = one(&rt, source, "stuck", 1, [32, 1, 1], 32);
        let e = rt.launch(&m, &l, &[rt.address(&out)]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("stuck") && e.contains("barrier"), "{e}");
        // The runtime still runs work after it.
        let (m, l, out) = one(&rt, &source.replace("return;", "out[0] = 0.0f;"), "stuck", 1, [32, 1, 1], 32);
        rt.launch(&m, &l, &[rt.address(&out)]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(floats(&rt, &out, 32)[31], 1.0);
    }
}
