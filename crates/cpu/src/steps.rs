//! Library steps on the raw buffers of an executable: planned matrix
//! products in place, and the other library primitives on host-array copies.

use crate::exec::CpuError;
use crate::linalg::{eval_linalg, DotElem, DotPlan};
use arrayjit_ir::{AVal, DType, Data, HostArray, Prim};

/// Runs a planned matrix product on raw buffers.
///
/// # Safety
/// `l`, `r`, `o` must address buffers of `lhs`, `rhs`, `out` (dtype `T`), `o`
/// not overlapping the others, and `scratch` at least `sl` elements of `T`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dot<T: DotElem>(
    plan: &DotPlan,
    l: *mut u8,
    r: *mut u8,
    o: *mut u8,
    scratch: *mut u8,
    lhs: &AVal,
    rhs: &AVal,
    out: &AVal,
    sl: usize,
) -> Result<(), CpuError> {
    // SAFETY: guaranteed by the caller. The same operand twice gives equal
    // slices (the plan's symmetric path compares them by address).
    let (ls, rs, os, ss) = unsafe {
        (
            std::slice::from_raw_parts(l as *const T, lhs.numel()),
            std::slice::from_raw_parts(r as *const T, rhs.numel()),
            std::slice::from_raw_parts_mut(o as *mut T, out.numel()),
            std::slice::from_raw_parts_mut(scratch as *mut T, sl),
        )
    };
    plan.run(ls, rs, os, ss)?;
    Ok(())
}

/// Copies a buffer out as a host array.
///
/// # Safety
/// `p` must address a live buffer of `aval`'s element count and dtype.
pub(crate) unsafe fn read_host(aval: &AVal, p: *const u8) -> HostArray {
    let n = aval.numel();
    // SAFETY: guaranteed by the caller; booleans are stored as 0 or 1.
    let data = unsafe {
        match aval.dtype {
            DType::Bool => Data::Bool(std::slice::from_raw_parts(p as *const bool, n).to_vec()),
            DType::I32 => Data::I32(std::slice::from_raw_parts(p as *const i32, n).to_vec()),
            DType::F32 => Data::F32(std::slice::from_raw_parts(p as *const f32, n).to_vec()),
            DType::F64 => Data::F64(std::slice::from_raw_parts(p as *const f64, n).to_vec()),
        }
    };
    HostArray::new(aval.shape.clone(), data).unwrap_or_else(|_| HostArray::zeros(aval))
}

/// One library step on host arrays.
pub(crate) fn run_prim(prim: &Prim, ins: &[&HostArray]) -> Result<Vec<HostArray>, CpuError> {
    match prim {
        Prim::Linalg(l) => Ok(eval_linalg(l, ins)?),
        _ => {
            let owned: Vec<HostArray> = ins.iter().map(|a| (*a).clone()).collect();
            arrayjit_interp::eval_prim(prim, &owned)
                .map_err(|e| CpuError::Step { op: prim.name(), message: e.to_string() })
        }
    }
}
