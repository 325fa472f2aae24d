//! Library steps on the raw buffers of an executable: planned matrix
//! products and factorizations in place, and the other library primitives
//! on host-array copies.

use crate::exec::CpuError;
use crate::linalg::{
    cholesky, cholesky_inverse, cholesky_inverse_scratch, cholesky_scratch, eval_linalg, triangular_solve, DotElem,
    DotPlan, Float, LinalgError, MatDims, MemBuffer, MemStack, TriangularSolve,
};
use arrayjit_ir::prim::Linalg;
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

/// A factorization run on the executable's buffers with scratch planned at
/// compile time (no copies, no allocation): Cholesky, the inverse from a
/// Cholesky factor and triangular solves.
pub(crate) enum FactorStep {
    Cholesky { dims: MatDims, dtype: DType },
    Inverse { dims: MatDims, dtype: DType },
    Solve { dims: MatDims, flags: TriangularSolve, dtype: DType },
}

impl FactorStep {
    /// The plan for `prim` on operands of types `ins`, if it runs in place.
    pub(crate) fn plan(prim: &Prim, ins: &[AVal]) -> Option<FactorStep> {
        let float = |a: &AVal| a.dtype.is_float();
        match (prim, ins) {
            (Prim::Linalg(Linalg::Cholesky), [a]) if float(a) => {
                Some(FactorStep::Cholesky { dims: MatDims::of(a.shape.dims()), dtype: a.dtype })
            }
            (Prim::Linalg(Linalg::CholeskyInverse), [a]) if float(a) => {
                Some(FactorStep::Inverse { dims: MatDims::of(a.shape.dims()), dtype: a.dtype })
            }
            (&Prim::Linalg(Linalg::TriangularSolve { left_side, lower, transpose_a, unit_diagonal }), [a, b])
                if float(a) && a.dtype == b.dtype =>
            {
                let flags = TriangularSolve { left_side, lower, transpose_a, unit_diagonal };
                Some(FactorStep::Solve { dims: MatDims::of(b.shape.dims()), flags, dtype: a.dtype })
            }
            _ => None,
        }
    }

    /// Scratch memory the step needs.
    pub(crate) fn scratch(&self) -> MemBuffer {
        match self {
            FactorStep::Cholesky { dims, dtype: DType::F32 } => MemBuffer::new(cholesky_scratch::<f32>(dims.rows)),
            FactorStep::Cholesky { dims, .. } => MemBuffer::new(cholesky_scratch::<f64>(dims.rows)),
            FactorStep::Inverse { dims, dtype: DType::F32 } => {
                MemBuffer::new(cholesky_inverse_scratch::<f32>(dims.rows))
            }
            FactorStep::Inverse { dims, .. } => MemBuffer::new(cholesky_inverse_scratch::<f64>(dims.rows)),
            FactorStep::Solve { .. } => MemBuffer::new(faer::dyn_stack::StackReq::EMPTY),
        }
    }

    /// Runs the step.
    ///
    /// # Safety
    /// `ins` and `out` must address buffers of the operand and result types
    /// the step was planned for; `out` must not overlap an operand.
    pub(crate) unsafe fn run(&self, ins: &[*mut u8], out: *mut u8, scratch: &mut MemBuffer) -> Result<(), CpuError> {
        // SAFETY (for the slices below): guaranteed by the caller; each
        // length is the element count of the planned operand or result.
        unsafe {
            match *self {
                FactorStep::Cholesky { dims, dtype: DType::F32 } => {
                    one_matrix::<f32>(cholesky, ins, out, dims, scratch)?
                }
                FactorStep::Cholesky { dims, .. } => one_matrix::<f64>(cholesky, ins, out, dims, scratch)?,
                FactorStep::Inverse { dims, dtype: DType::F32 } => {
                    one_matrix::<f32>(cholesky_inverse, ins, out, dims, scratch)?
                }
                FactorStep::Inverse { dims, .. } => one_matrix::<f64>(cholesky_inverse, ins, out, dims, scratch)?,
                FactorStep::Solve { dims, flags, dtype } => {
                    let n = if flags.left_side { dims.rows } else { dims.cols };
                    let an = dims.batch * n * n;
                    let bn = dims.len();
                    match dtype {
                        DType::F32 => triangular_solve(
                            std::slice::from_raw_parts(ins[0] as *const f32, an),
                            std::slice::from_raw_parts(ins[1] as *const f32, bn),
                            std::slice::from_raw_parts_mut(out as *mut f32, bn),
                            dims,
                            flags,
                        )?,
                        _ => triangular_solve(
                            std::slice::from_raw_parts(ins[0] as *const f64, an),
                            std::slice::from_raw_parts(ins[1] as *const f64, bn),
                            std::slice::from_raw_parts_mut(out as *mut f64, bn),
                            dims,
                            flags,
                        )?,
                    }
                }
            }
        }
        Ok(())
    }
}

/// A kernel from one batch of matrices to one of the same shape, with scratch.
type OneMatrix<T> = fn(&[T], &mut [T], MatDims, &mut MemStack) -> Result<(), LinalgError>;

/// Runs `f` on the executable's buffers.
///
/// # Safety
/// `ins[0]` and `out` must address `dims.len()` elements of `T` each, not
/// overlapping.
unsafe fn one_matrix<T: Float>(
    f: OneMatrix<T>,
    ins: &[*mut u8],
    out: *mut u8,
    dims: MatDims,
    scratch: &mut MemBuffer,
) -> Result<(), LinalgError> {
    let n = dims.len();
    // SAFETY: guaranteed by the caller.
    let (a, o) = unsafe {
        (std::slice::from_raw_parts(ins[0] as *const T, n), std::slice::from_raw_parts_mut(out as *mut T, n))
    };
    f(a, o, dims, MemStack::new(scratch))
}
