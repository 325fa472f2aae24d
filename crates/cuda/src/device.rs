//! CUDA devices: which there are, their names and architectures. Asking on
//! a machine without a driver is an error that says so, never a panic
//! (cudarc panics when it cannot load `libcuda`, so its presence is checked
//! first).

use crate::error::CudaError;

/// A CUDA device as the driver describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// Compute capability (major, minor).
    pub capability: (i32, i32),
}

impl DeviceInfo {
    /// The architecture NVRTC compiles for: `sm_90` for capability 9.0.
    pub fn arch(&self) -> String {
        format!("sm_{}{}", self.capability.0, self.capability.1)
    }
}

/// Whether a CUDA driver can be loaded.
pub fn driver_available() -> bool {
    // SAFETY: only tries to open the library by its usual names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// The CUDA devices of this machine.
pub fn devices() -> Result<Vec<DeviceInfo>, CudaError> {
    if !driver_available() {
        return Err(CudaError::NoDriver);
    }
    let driver = |e: cudarc::driver::DriverError| CudaError::Driver(e.to_string());
    let count = cudarc::driver::CudaContext::device_count().map_err(driver)?;
    (0..count.max(0) as usize)
        .map(|ordinal| {
            let ctx = cudarc::driver::CudaContext::new(ordinal).map_err(driver)?;
            Ok(DeviceInfo {
                ordinal,
                name: ctx.name().map_err(driver)?,
                capability: ctx.compute_capability().map_err(driver)?,
            })
        })
        .collect()
}

/// Device `ordinal`, or an error naming what there is instead.
pub fn device(ordinal: usize) -> Result<DeviceInfo, CudaError> {
    let all = devices()?;
    let count = all.len();
    all.into_iter().nth(ordinal).ok_or(CudaError::NoDevice { ordinal, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_driver_asking_for_devices_is_an_error_not_a_panic() {
        if driver_available() {
            // A machine with a GPU: the listing works and names an architecture.
            let all = devices().unwrap_or_default();
            assert!(all.iter().all(|d| d.arch().starts_with("sm_")));
        } else {
            let e = devices().unwrap_err();
            assert!(e.to_string().starts_with("no CUDA driver found"), "{e}");
            assert!(matches!(device(0), Err(CudaError::NoDriver)));
        }
    }
}
