//! The [`Runtime`] of a real GPU: the CUDA driver through cudarc (one
//! context and stream per device; memory from the stream's pool), kernels
//! compiled by NVRTC for the device's architecture, products by cuBLAS.
//! Work is queued on the stream; [`CudaRuntime::synchronize`] waits for it,
//! and every download waits for the writes before it.

use crate::device::{device, DeviceInfo};
use crate::error::CudaError;
use crate::gemm::Gemm;
use crate::render::{Launch, RenderedKernel};
use crate::runtime::Runtime;
use arrayjit_ir::DType;
use cudarc::cublas::sys::cublasOperation_t as Op;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg,
};
use std::collections::HashMap;
use std::sync::Arc;

/// At most this many NVRTC compilations of one module's parts at a time.
const MAX_COMPILE_THREADS: usize = 8;

/// A CUDA device ready to run executables.
pub struct CudaRuntime {
    info: DeviceInfo,
    _ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: cudarc::cublas::CudaBlas,
}

/// Loaded modules and their functions by name.
pub struct CudaKernels {
    _modules: Vec<Arc<CudaModule>>,
    functions: HashMap<String, CudaFunction>,
}

fn driver(e: cudarc::driver::DriverError) -> CudaError {
    CudaError::Driver(e.to_string())
}

impl CudaRuntime {
    /// Device `ordinal`: an error (not a panic) without a driver, a device, or cuBLAS.
    pub fn new(ordinal: usize) -> Result<CudaRuntime, CudaError> {
        let info = device(ordinal)?;
        // SAFETY: only tries to open the library by its usual names.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(CudaError::Driver("cuBLAS (libcublas) could not be loaded".into()));
        }
        let ctx = CudaContext::new(ordinal).map_err(driver)?;
        // SAFETY: everything of this runtime (kernels, copies, cuBLAS) is
        // queued on its one stream, which orders every use of a buffer; the
        // per-buffer events cudarc would otherwise create and record on each
        // allocation and use only order work across streams.
        unsafe { ctx.disable_event_tracking() };
        // A stream of our own: the legacy default stream cannot be recorded
        // into a graph.
        let stream = ctx.new_stream().map_err(driver)?;
        let blas = cudarc::cublas::CudaBlas::new(stream.clone()).map_err(|e| CudaError::Driver(e.to_string()))?;
        Ok(CudaRuntime { info, _ctx: ctx, stream, blas })
    }

    /// The device this runtime runs on.
    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    /// Waits until everything queued has run (JAX's `block_until_ready`).
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.stream.synchronize().map_err(driver)
    }

    fn ptr(&self, buf: &CudaSlice<u8>) -> u64 {
        let (p, _sync) = buf.device_ptr(&self.stream);
        p
    }
}

/// Whether loops may be recorded as CUDA graphs (`ARRAYJIT_CUDA_GRAPHS=0`
/// turns them off, to compare).
fn graphs_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("ARRAYJIT_CUDA_GRAPHS").map_or(true, |v| v != "0"))
}

impl Runtime for CudaRuntime {
    type Buf = CudaSlice<u8>;
    type Module = CudaKernels;
    type Graph = cudarc::driver::CudaGraph;

    fn alloc(&self, bytes: usize) -> Result<CudaSlice<u8>, CudaError> {
        // SAFETY: the memory is uninitialised; every executor step writes
        // what it allocates before anything reads it.
        unsafe { self.stream.alloc::<u8>(bytes.max(1)) }.map_err(driver)
    }

    fn upload(&self, data: &[u8]) -> Result<CudaSlice<u8>, CudaError> {
        if data.is_empty() {
            return self.alloc(1);
        }
        self.stream.clone_htod(data).map_err(driver)
    }

    fn download(&self, buf: &CudaSlice<u8>, bytes: usize) -> Result<Vec<u8>, CudaError> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        self.stream.clone_dtoh(&buf.slice(0..bytes)).map_err(driver)
    }

    fn copy(
        &self,
        src: &CudaSlice<u8>,
        so: usize,
        dst: &CudaSlice<u8>,
        d: usize,
        bytes: usize,
    ) -> Result<(), CudaError> {
        if bytes == 0 {
            return Ok(());
        }
        if so + bytes > src.len() || d + bytes > dst.len() {
            return Err(CudaError::Driver(format!("a copy of {bytes} bytes falls outside its buffers")));
        }
        let (s, dd) = (self.ptr(src), self.ptr(dst));
        // SAFETY: both ranges lie within live allocations (checked above), on this stream.
        unsafe {
            cudarc::driver::result::memcpy_dtod_async(dd + d as u64, s + so as u64, bytes, self.stream.cu_stream())
        }
        .map_err(driver)
    }

    fn synchronize(&self) -> Result<(), CudaError> {
        CudaRuntime::synchronize(self)
    }

    fn begin_capture(&self) -> Result<bool, CudaError> {
        if !graphs_enabled() {
            return Ok(false);
        }
        // Thread-local: other threads' unrelated CUDA calls stay legal meanwhile.
        self.stream
            .begin_capture(cudarc::driver::sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(driver)?;
        Ok(true)
    }

    fn end_capture(&self) -> Result<cudarc::driver::CudaGraph, CudaError> {
        let flags = cudarc::driver::sys::CUgraphInstantiate_flags(0);
        self.stream
            .end_capture(flags)
            .map_err(driver)?
            .ok_or_else(|| CudaError::Driver("a capture recorded nothing".into()))
    }

    fn replay(&self, graph: &cudarc::driver::CudaGraph) -> Result<(), CudaError> {
        graph.launch().map_err(driver)
    }

    fn address(&self, buf: &CudaSlice<u8>) -> u64 {
        self.ptr(buf)
    }

    fn load(&self, kernels: &[RenderedKernel]) -> Result<CudaKernels, CudaError> {
        // NVRTC's time grows with the functions compiled, so the module is
        // compiled in parts, side by side, each to machine code for this
        // device (nothing left for the driver to compile at load).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_COMPILE_THREADS);
        let sources = crate::render::module_sources(kernels, threads);
        let arch = self.info.arch();
        let images: Vec<Result<std::sync::Arc<[u8]>, CudaError>> = std::thread::scope(|s| {
            let handles: Vec<_> =
                sources.iter().map(|src| s.spawn(|| crate::nvrtc::compile_cubin(src, &arch))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(CudaError::Driver("an NVRTC compilation panicked".into()))))
                .collect()
        });
        let mut modules = Vec::with_capacity(sources.len());
        let mut functions = HashMap::new();
        for (source, image) in sources.iter().zip(images) {
            let module = match self._ctx.load_module(cudarc::nvrtc::Ptx::from_binary(image?.to_vec())) {
                Ok(m) => m,
                // Machine code the driver refuses: PTX, which it compiles itself.
                Err(_) => {
                    let ptx = crate::nvrtc::compile(source, &arch)?;
                    self._ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx.ptx.to_string())).map_err(driver)?
                }
            };
            for (name, _) in crate::render::functions(source) {
                functions.insert(name.to_string(), module.load_function(name).map_err(driver)?);
            }
            modules.push(module);
        }
        Ok(CudaKernels { _modules: modules, functions })
    }

    fn launch(&self, m: &CudaKernels, l: &Launch, params: &[u64]) -> Result<(), CudaError> {
        let f = m
            .functions
            .get(&l.name)
            .ok_or_else(|| CudaError::Driver(format!("no function {} in the module", l.name)))?;
        let cfg = LaunchConfig {
            grid_dim: (l.grid[0], l.grid[1], l.grid[2]),
            block_dim: (l.block[0], l.block[1], l.block[2]),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream.launch_builder(f);
        for p in params {
            b.arg(p);
        }
        // SAFETY: the parameters are the addresses of live device buffers of
        // the sizes the kernel was rendered for, in the order it declares them.
        unsafe { b.launch(cfg) }.map_err(driver)?;
        Ok(())
    }

    fn gemm(&self, g: &Gemm, a: &CudaSlice<u8>, b: &CudaSlice<u8>, c: &CudaSlice<u8>) -> Result<(), CudaError> {
        if g.batch == 0 || g.m == 0 || g.n == 0 {
            return Ok(());
        }
        let cm = g.column_major();
        let op = |t: bool| if t { Op::CUBLAS_OP_T } else { Op::CUBLAS_OP_N };
        let int = |x: usize| {
            i32::try_from(x).map_err(|_| CudaError::Driver(format!("a product dimension {x} exceeds cuBLAS's range")))
        };
        let (x, y, z) = (self.ptr(b), self.ptr(a), self.ptr(c));
        let h = *self.blas.handle();
        let blas = |e: cudarc::cublas::result::CublasError| CudaError::Driver(e.to_string());
        // SAFETY: the operands hold the matrices the plan describes (the
        // executor sized them from the same types), `c` holds `batch·m·n`
        // elements, and cuBLAS runs on this runtime's stream.
        // One call, spelled for each precision.
        macro_rules! strided_batched {
            ($f:path, $t:ty) => {{
                let (one, zero): ($t, $t) = (1.0, 0.0);
                $f(
                    h,
                    op(cm.first.0),
                    op(cm.second.0),
                    int(cm.m)?,
                    int(cm.n)?,
                    int(cm.k)?,
                    &one,
                    x as *const $t,
                    int(cm.first.1)?,
                    cm.first.2 as i64,
                    y as *const $t,
                    int(cm.second.1)?,
                    cm.second.2 as i64,
                    &zero,
                    z as *mut $t,
                    int(cm.ldc)?,
                    cm.stride_c as i64,
                    int(g.batch)?,
                )
                .map_err(blas)
            }};
        }
        unsafe {
            match g.dtype {
                DType::F32 => strided_batched!(cudarc::cublas::result::sgemm_strided_batched, f32),
                DType::F64 => strided_batched!(cudarc::cublas::result::dgemm_strided_batched, f64),
                d => Err(CudaError::Driver(format!("no cuBLAS product for {d}"))),
            }
        }
    }
}
