//! The CUDA backend's code generation: the fused kernels of the
//! backend-neutral lowering rendered as CUDA C ([`render`], spelled by one
//! table in [`spelling`]), compiled to PTX by NVRTC with a memory and disk
//! cache ([`nvrtc`]), and the machine's CUDA devices ([`device`]).
//!
//! Everything here builds and runs on a machine without a GPU or a CUDA
//! installation: the driver and NVRTC are loaded when first asked for, and
//! their absence is an error ([`CudaError::NoDriver`], [`CudaError::NoNvrtc`]).

pub mod device;
pub mod error;
pub mod nvrtc;
pub mod program;
pub mod render;
pub mod spelling;

pub use device::{device, devices, DeviceInfo};
pub use error::CudaError;
pub use program::{render_schedule, ProgramKernel, RenderedProgram};
