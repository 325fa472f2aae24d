//! Dense linear algebra on raw row-major buffers, single-threaded: through
//! faer, `dot_general` as a planned batched GEMM, Cholesky, triangular solves
//! and LU; our own register blocks for the inverse from a Cholesky factor, and
//! our own AVX-512 kernel for the Gram product `XᵀX` of a row-major `X`.
//!
//! Every kernel works on plain slices the caller owns (a JIT-compiled
//! executable or the runtime), with batch dimensions leading, and allocates
//! nothing: scratch is sized up front ([`DotPlan::scratch_len`],
//! [`cholesky_scratch`], [`cholesky_inverse_scratch`], [`lu_scratch`]) and
//! handed in. [`eval_linalg`] is the allocating entry point for one primitive
//! on host arrays (eager ops, tests).
//!
//! faer runs with [`Par::Seq`](faer::Par::Seq) everywhere: its rayon mode is
//! pathologically slow on small VMs (see `notes/machine-facts.md` §2). Call
//! [`init`] once at startup so that faer's global parallelism agrees.
//!
//! ```
//! use arrayjit_cpu::linalg::{init, DotPlan};
//! use arrayjit_ir::prim::DotDims;
//! use arrayjit_ir::{AVal, DType};
//!
//! init();
//! let (a, b) = (AVal::new(DType::F64, [2, 3]), AVal::new(DType::F64, [3, 2]));
//! let plan = DotPlan::new(&DotDims::matmul(), &a, &b, false)?;
//! let mut out = vec![0.0; plan.out_aval().numel()];
//! let mut scratch = vec![0.0; plan.scratch_len()];
//! plan.run(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0], &mut out, &mut scratch)?;
//! assert_eq!(out, [58.0, 64.0, 139.0, 154.0]);
//! # Ok::<(), arrayjit_cpu::linalg::LinalgError>(())
//! ```

mod blocks;
mod columns;
mod dot;
mod eval;
mod factor;
mod gram;
mod inverse;
mod triangular;

#[cfg(test)]
mod tests;

pub use dot::{DotElem, DotPlan};
pub use eval::eval_linalg;
pub use factor::{cholesky, cholesky_scratch, lu, lu_scratch, LuOut};
pub use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
pub use inverse::{cholesky_inverse, cholesky_inverse_scratch};
pub use triangular::{triangular_solve, TriangularSolve};

use arrayjit_ir::TypeError;

/// Makes faer single-threaded for the whole process: decompositions that are
/// not handed an explicit [`Par`](faer::Par) read this global setting. The
/// backend calls it once at startup; calling it again is harmless.
pub fn init() {
    faer::set_global_parallelism(faer::Par::Seq);
}

/// The shape of a batch of row-major matrices: `batch` matrices of
/// `rows x cols`, one after another (the leading dimensions flattened).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatDims {
    pub batch: usize,
    pub rows: usize,
    pub cols: usize,
}

impl MatDims {
    /// The dimensions of `[..., rows, cols]` (rank ≥ 2; lower ranks read as one `1 x n` or `1 x 1` matrix).
    pub fn of(shape: &[usize]) -> MatDims {
        match shape {
            [batch @ .., rows, cols] => MatDims { batch: batch.iter().product(), rows: *rows, cols: *cols },
            [cols] => MatDims { batch: 1, rows: 1, cols: *cols },
            [] => MatDims { batch: 1, rows: 1, cols: 1 },
        }
    }

    /// Elements in one matrix.
    pub fn matrix_len(self) -> usize {
        self.rows * self.cols
    }

    /// Elements in the whole batch.
    pub fn len(self) -> usize {
        self.batch * self.rows * self.cols
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for MatDims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} matrices of {}x{}", self.batch, self.rows, self.cols)
    }
}

/// Why a linear-algebra kernel could not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinalgError {
    /// The operands do not satisfy the primitive's shape/dtype rule.
    #[error(transparent)]
    Type(#[from] TypeError),
    /// A buffer's length does not match the shapes the kernel was given or planned for.
    #[error("{op}: the {buffer} buffer holds {got} elements, but {shapes} needs {want}")]
    BufferLength { op: &'static str, buffer: &'static str, shapes: String, got: usize, want: usize },
    /// The faer scratch stack handed to a kernel is smaller than its `*_scratch` function asked for.
    #[error("{op}: the scratch stack holds {got} bytes, but {shapes} needs {want} (see `{op}_scratch`)")]
    Scratch { op: &'static str, shapes: String, got: usize, want: usize },
    /// The CPU backend has no kernel for this primitive on these operand types.
    #[error("{op}: no CPU kernel for operands {avals}")]
    Unsupported { op: &'static str, avals: String },
    /// A row index does not fit in the i32 that `lu` reports pivots in.
    #[error("{op}: {shapes} has more rows than an i32 pivot can name")]
    IndexOverflow { op: &'static str, shapes: String },
}

/// Checks that `buffer` of a kernel holds exactly `want` elements.
pub(crate) fn check_len(
    op: &'static str,
    buffer: &'static str,
    got: usize,
    want: usize,
    shapes: impl FnOnce() -> String,
) -> Result<(), LinalgError> {
    if got == want {
        Ok(())
    } else {
        Err(LinalgError::BufferLength { op, buffer, shapes: shapes(), got, want })
    }
}

/// The float types the factorizations compute in: `f32` and `f64`.
pub trait Float:
    faer::traits::RealField + Copy + PartialOrd + Default + Send + Sync + std::fmt::Debug + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const NAN: Self;
    /// Neither infinite nor NaN.
    fn finite(self) -> bool;
    /// The absolute value.
    fn magnitude(self) -> Self;
    /// `self · a + b` with one rounding.
    fn fused_mul_add(self, a: Self, b: Self) -> Self;
}

impl Float for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    const NAN: f32 = f32::NAN;
    fn finite(self) -> bool {
        self.is_finite()
    }
    fn magnitude(self) -> Self {
        self.abs()
    }
    #[inline(always)]
    fn fused_mul_add(self, a: Self, b: Self) -> Self {
        f32::mul_add(self, a, b)
    }
}

impl Float for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    const NAN: f64 = f64::NAN;
    fn finite(self) -> bool {
        self.is_finite()
    }
    fn magnitude(self) -> Self {
        self.abs()
    }
    #[inline(always)]
    fn fused_mul_add(self, a: Self, b: Self) -> Self {
        f64::mul_add(self, a, b)
    }
}
