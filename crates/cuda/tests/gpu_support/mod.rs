//! The GPU the tests run on, when there is one.

use arrayjit_cuda::{CudaError, CudaRuntime};

/// The GPU's runtime, or `None` after saying why there is none.
/// `ARRAYJIT_REQUIRE_GPU=1` makes its absence a failure; any error other
/// than a missing driver or device is one too.
pub fn gpu() -> Option<CudaRuntime> {
    match CudaRuntime::new(0) {
        Ok(rt) => Some(rt),
        Err(e) => {
            let required = std::env::var("ARRAYJIT_REQUIRE_GPU").is_ok_and(|v| v == "1");
            assert!(!required, "ARRAYJIT_REQUIRE_GPU=1 but: {e}");
            assert!(matches!(e, CudaError::NoDriver | CudaError::NoDevice { .. }), "{e}");
            eprintln!("skipped on the GPU: {e}");
            None
        }
    }
}
