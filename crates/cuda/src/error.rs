//! The CUDA backend's errors: each says what is missing or what failed, and
//! for a failed compile, the compiler's log and the generated source.

/// Why a CUDA operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CudaError {
    /// No CUDA driver (`libcuda`) could be loaded: no NVIDIA GPU or driver here.
    #[error("no CUDA driver found: libcuda could not be loaded (is there an NVIDIA GPU and driver on this machine?)")]
    NoDriver,
    /// The driver is there but reports no device, or not the one asked for.
    #[error("no CUDA device {ordinal}: the driver reports {count} device(s)")]
    NoDevice { ordinal: usize, count: usize },
    /// NVRTC (`libnvrtc`) could not be loaded.
    #[error("NVRTC is not available: {0}")]
    NoNvrtc(String),
    /// NVRTC rejected generated code.
    #[error("NVRTC failed to compile the generated CUDA C for {arch}:\n{log}\nthe source:\n{code}")]
    Compile { arch: String, log: String, code: String },
    /// A kernel the renderer cannot express.
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    /// Optimising or fusing a sub-program failed.
    #[error("lowering a sub-program failed: {0}")]
    Lowering(String),
    /// A call into the driver failed.
    #[error("CUDA driver call failed: {0}")]
    Driver(String),
    /// Arguments that do not match the executable's signature.
    #[error("the executable takes ({want}) but was given ({got})")]
    Signature { want: String, got: String },
    /// A step run on the host failed.
    #[error("{op} (run on the host) failed: {message}")]
    Host { op: String, message: String },
    #[error("a lock was poisoned by a panic in another thread")]
    Poisoned,
}
