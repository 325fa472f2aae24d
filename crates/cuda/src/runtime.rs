//! What the executor asks of a device: memory, copies, a module of compiled
//! kernels, launches and matrix products. [`crate::CudaRuntime`] answers with
//! the CUDA driver and cuBLAS; the tests answer with a host runtime that runs
//! the same generated CUDA C on the CPU, so that everything above this line
//! (memory plans, launch orders, products, loops) is tested on any machine.

use crate::error::CudaError;
use crate::gemm::Gemm;
use crate::render::{Launch, RenderedKernel};

/// A device that runs rendered programs.
pub trait Runtime {
    /// A block of device memory.
    type Buf;
    /// A loaded module of kernels.
    type Module;
    /// Recorded work that can be queued again as a whole (a CUDA graph).
    type Graph;

    /// `bytes` of uninitialised memory (at least one byte is allocated).
    fn alloc(&self, bytes: usize) -> Result<Self::Buf, CudaError>;
    /// A buffer holding `data`.
    fn upload(&self, data: &[u8]) -> Result<Self::Buf, CudaError>;
    /// The first `bytes` bytes of `buf`, once every queued write to it is done.
    fn download(&self, buf: &Self::Buf, bytes: usize) -> Result<Vec<u8>, CudaError>;
    /// Copies `bytes` from `src` at `src_offset` to `dst` at `dst_offset`, in queue order.
    fn copy(
        &self,
        src: &Self::Buf,
        src_offset: usize,
        dst: &Self::Buf,
        dst_offset: usize,
        bytes: usize,
    ) -> Result<(), CudaError>;
    /// The address a kernel parameter passes for `buf`.
    fn address(&self, buf: &Self::Buf) -> u64;
    /// Compiles and loads these functions as one module.
    fn load(&self, kernels: &[RenderedKernel]) -> Result<Self::Module, CudaError>;
    /// Queues `launch` with parameter addresses `params`.
    fn launch(&self, module: &Self::Module, launch: &Launch, params: &[u64]) -> Result<(), CudaError>;
    /// Queues `c = a · b` as `g` describes.
    fn gemm(&self, g: &Gemm, a: &Self::Buf, b: &Self::Buf, c: &Self::Buf) -> Result<(), CudaError>;
    /// Waits until everything queued has run (a runtime that runs each
    /// call as it comes has nothing to wait for).
    fn synchronize(&self) -> Result<(), CudaError> {
        Ok(())
    }
    /// Starts recording the work queued from now on instead of running it;
    /// `false` when this runtime does not record (then nothing changes).
    fn begin_capture(&self) -> Result<bool, CudaError> {
        Ok(false)
    }
    /// Stops recording and returns what was recorded, ready to [`Runtime::replay`].
    fn end_capture(&self) -> Result<Self::Graph, CudaError>;
    /// Queues recorded work again, with the buffers it was recorded with.
    fn replay(&self, graph: &Self::Graph) -> Result<(), CudaError>;
}
