//! The CUDA backend: the fused kernels of the backend-neutral lowering
//! rendered as CUDA C ([`render`], spelled by one table in [`spelling`]),
//! compiled to PTX by NVRTC with a memory and disk cache ([`nvrtc`]), and run
//! by an [`Executable`] over a [`Runtime`]: products as GEMMs ([`gemm`]),
//! loops and conditionals driven from the host over device buffers. The
//! runtime of a GPU is [`CudaRuntime`] (the driver and cuBLAS through
//! cudarc); [`device`] lists the machine's devices.
//!
//! Everything here builds and runs on a machine without a GPU or a CUDA
//! installation: the driver and NVRTC are loaded when first asked for, and
//! their absence is an error ([`CudaError::NoDriver`], [`CudaError::NoNvrtc`]).

pub mod array;
pub mod bytes;
pub mod cuda_runtime;
pub mod device;
pub mod eager;
pub mod emulator;
pub mod error;
pub mod exec;
pub mod gemm;
pub mod library;
pub mod nvrtc;
pub mod profile;
pub mod program;
pub mod render;
pub mod runtime;
pub mod scan_copy;
pub mod spelling;

pub use array::DeviceArray;
pub use cuda_runtime::CudaRuntime;
pub use device::{device, devices, DeviceInfo};
pub use eager::EagerDevice;
pub use error::CudaError;
pub use exec::Executable;
pub use program::{render_schedule, render_schedule_named, ProgramKernel, RenderedProgram};
pub use runtime::Runtime;
