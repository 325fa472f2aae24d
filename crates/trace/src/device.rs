//! Arrays in a device's memory and eager execution there. A backend (the
//! CUDA crate) implements [`Device`]; an [`Array`](crate::Array) placed on a
//! device holds a [`DeviceBuffer`], and every eager operation with such an
//! operand runs on that device (host operands are copied over), as a cached
//! kernel for the operation's types. Tracing a function that closes over a
//! device array copies it back once, as a constant of the program.

use arrayjit_ir::{AVal, HostArray, Prim, Program};
use std::sync::Arc;

/// A device that holds arrays and runs operations on them.
pub trait Device: Send + Sync {
    /// A name for messages (`cuda:0`, `host-emulator`).
    fn name(&self) -> String;
    /// Copies `h` into the device's memory.
    fn put(&self, h: &HostArray) -> Result<Arc<dyn DeviceBuffer>, String>;
    /// Applies `prim` to arrays on this device.
    fn execute(&self, prim: &Prim, args: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>, String>;
    /// Runs a closed program on arrays on this device.
    fn execute_program(&self, p: &Program, args: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>, String>;
}

/// An array in a device's memory.
pub trait DeviceBuffer: Send + Sync {
    fn aval(&self) -> &AVal;
    /// The device holding it.
    fn device(&self) -> Arc<dyn Device>;
    /// Copies it back to the host, once the work queued before has written it.
    fn to_host(&self) -> Result<HostArray, String>;
    /// For the backend to reach its own buffer type.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Whether two handles name the same device.
pub fn same_device(a: &Arc<dyn Device>, b: &Arc<dyn Device>) -> bool {
    std::ptr::eq(Arc::as_ptr(a) as *const (), Arc::as_ptr(b) as *const ())
}
