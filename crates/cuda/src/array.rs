//! Arrays that live on a device: placed there from host arrays, passed from
//! one compiled call to the next without coming back, and copied back when
//! asked. Their type travels with them, so a call checks its arguments as on
//! the host.

use crate::bytes::{from_bytes, to_bytes};
use crate::error::CudaError;
use crate::runtime::Runtime;
use arrayjit_ir::{AVal, HostArray};

/// An array in device memory.
pub struct DeviceArray<R: Runtime> {
    buf: R::Buf,
    aval: AVal,
}

impl<R: Runtime> DeviceArray<R> {
    /// Copies `h` to the device.
    pub fn put(rt: &R, h: &HostArray) -> Result<DeviceArray<R>, CudaError> {
        Ok(DeviceArray { buf: rt.upload(&to_bytes(h))?, aval: h.aval() })
    }

    /// Wraps a buffer holding an array of type `aval`.
    pub(crate) fn from_buf(buf: R::Buf, aval: AVal) -> DeviceArray<R> {
        DeviceArray { buf, aval }
    }

    /// Copies the array back, once what is queued before has written it.
    pub fn get(&self, rt: &R) -> Result<HostArray, CudaError> {
        from_bytes(&self.aval, &rt.download(&self.buf, self.aval.bytes().unwrap_or(usize::MAX))?)
    }

    pub fn aval(&self) -> &AVal {
        &self.aval
    }

    pub(crate) fn buf(&self) -> &R::Buf {
        &self.buf
    }
}
