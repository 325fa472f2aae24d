//! Row kernels in AVX-512 machine code of our own: an encoder for the
//! instructions they need, the kernels' plans, and their code.
//!
//! Cranelift gives x86 128-bit vectors in 16 registers. Here a kernel over a
//! row-major `[rows, cols]` domain (or one axis) whose every value is f32 (or
//! every value f64) runs each row as a fully unrolled run of 512-bit vectors,
//! its last one masked, with its values in 32 registers (past them, those
//! needed last on the stack); `exp`, `log` and the other transcendental
//! functions run in the native row functions, as in Cranelift's kernels. [`compile`] takes only kernels it fully understands
//! and returns `None` for the rest, which Cranelift compiles. Every result
//! has the bits of the Cranelift kernel's: the same IEEE operations on the
//! same operands, max/min propagating NaN with −0 below +0, column
//! reductions accumulated row after row in the output, and sums along a row
//! in the Cranelift kernel's own order (its 128-bit vectors one after
//! another, then their lanes).

mod asm;
mod emit;
mod plan;

use crate::math::bulk::RowOp;
use arrayjit_lower::Kernel;

/// A kernel as machine code, with what the executable needs to know of it.
pub struct WideKernel {
    pub code: Vec<u8>,
    /// Offsets in `code` of the 64-bit addresses of row functions' inline
    /// fallbacks (see `define_row_fallback`).
    pub fallbacks: Vec<(u32, RowOp)>,
    pub lanes: u32,
    /// Nodes computed by row functions.
    pub row_calls: usize,
    /// Per output, per input: whether every read of the input at a point
    /// comes before the output's write there.
    pub reads_first: Vec<Vec<bool>>,
    /// A description for dumps.
    pub text: String,
}

/// Whether this CPU runs the code [`compile`] makes.
pub fn available() -> bool {
    cfg!(all(target_arch = "x86_64", unix)) && crate::width::widest() == Some(crate::width::Width::Avx512)
}

/// The machine code of `k` (already coalesced), or `None` when the kernel is
/// not one this generator takes or the CPU lacks AVX-512. `lanes`: those of
/// the Cranelift kernel for `k`.
pub fn compile(k: &Kernel, row_functions: bool, lanes: u32) -> Option<WideKernel> {
    if !available() {
        return None;
    }
    let plan = plan::Plan::new(k, row_functions, lanes)?;
    let code = emit::emit(&plan)?;
    Some(WideKernel {
        text: plan.describe(code.bytes.len()),
        fallbacks: code.fallbacks,
        code: code.bytes,
        lanes: plan.e.lanes(),
        row_calls: plan.seqs.len() - 1,
        reads_first: plan.reads_first(),
    })
}

#[cfg(test)]
mod tests;
