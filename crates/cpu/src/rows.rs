//! Fusion across a matrix product by row blocks: when the only reader of
//! `O = L·R` (`L` n×k with rows read in place, `R` small) is the kernel right
//! after it (where [`sink_products`] moves products that have their reader
//! further down), reading `O` elementwise at its own point over `[n, p]`, the
//! two run together block by block. Each worker computes a block of rows of `O`
//! into its own small buffer, which stays in cache, and runs the kernel on
//! the same rows straight away; `O` itself is never written to memory.
//!
//! When the step after the kernel is the Gram product `XᵀX` of one of its
//! outputs, each block also adds its rows' share of it while they are in
//! cache (see [`GramTail`]): the schedule walks the rows once for the three.
//!
//! Blocks are cut by size alone and the kernel's reductions over rows are
//! combined from per-block partials in block order, so results do not depend
//! on the number of threads.

use crate::linalg::{DotElem, DotPlan, LinalgError};
use arrayjit_ir::DType;
use arrayjit_lower::{reads_only_at_own_point, OutputKind, Schedule, Step};

/// The schedule with each product moved down to just before its only
/// reader, when that reader is a kernel and nothing in between touches the
/// product's operands: the product can then run with it by row blocks.
/// Products that feed the same kernel keep their order. `None` when no
/// product moves.
pub(crate) fn sink_products(s: &Schedule) -> Option<Schedule> {
    let target: Vec<Option<usize>> = (0..s.steps.len()).map(|d| sink_target(&s.steps, d)).collect();
    if target.iter().all(Option::is_none) {
        return None;
    }
    // Every step stays in order, except that a moving product is placed
    // right before its reader (which never moves: it is a kernel).
    let mut steps = Vec::with_capacity(s.steps.len());
    for (i, step) in s.steps.iter().enumerate() {
        if target[i].is_some() {
            continue;
        }
        steps.extend((0..i).filter(|&d| target[d] == Some(i)).map(|d| s.steps[d].clone()));
        steps.push(step.clone());
    }
    Some(Schedule { steps, ..s.clone() })
}

/// Where product step `d` could move to (its reader's index), if later than `d + 1`.
fn sink_target(steps: &[Step], d: usize) -> Option<usize> {
    let Step::Prim { prim: arrayjit_ir::Prim::Linalg(arrayjit_ir::prim::Linalg::DotGeneral(_)), inputs, outputs } =
        &steps[d]
    else {
        return None;
    };
    let [o] = outputs[..] else { return None };
    let readers: Vec<usize> = (d + 1..steps.len()).filter(|&i| steps[i].inputs().contains(&o)).collect();
    let [c] = readers[..] else { return None };
    if c == d + 1 || !matches!(steps[c], Step::Kernel { .. }) {
        return None;
    }
    // Buffers are written once, but a step in between must not write an operand either way.
    let untouched = steps[d + 1..c].iter().all(|st| st.outputs().iter().all(|b| !inputs.contains(b)));
    untouched.then_some(c)
}

/// Products smaller than this many multiply-adds are not fused.
const MIN_WORK: usize = 1 << 20;
/// About this many elements of `O` per block: a block buffer stays in L2.
const BLOCK_ELEMENTS: usize = 1 << 16;

/// A product fused with the kernel after it.
#[derive(Clone, Debug)]
pub(crate) struct RowFusion {
    /// The consuming kernel's step (the product's step + 1).
    pub consumer: usize,
    /// Where the product's output sits in the consumer's inputs.
    pub position: usize,
    /// Rows of `O` per block, and the blocks.
    pub block_rows: usize,
    pub rows: Vec<(usize, usize)>,
    /// Columns of `O`, and its dtype.
    pub cols: usize,
    pub dtype: DType,
    /// The Gram product of one of the kernel's outputs, summed block by block.
    pub gram: Option<GramTail>,
}

/// The Gram product `G = XᵀX` of an output `X` of the fused kernel, when it
/// is the step right after the kernel: each block adds its rows' share
/// `X[r0..r1]ᵀ X[r0..r1]` while they are still in cache (per-block shares
/// summed in block order, so the result does not depend on the thread count).
#[derive(Clone, Debug)]
pub(crate) struct GramTail {
    /// The product's step (the consumer's step + 1).
    pub step: usize,
    /// Where `X` sits among the kernel's outputs.
    pub output: usize,
    /// `X`'s columns (`G` is `cols × cols`), and its dtype.
    pub cols: usize,
    pub dtype: DType,
}

/// The Gram tail of fusion `f` whose kernel covers `n` rows, when step
/// `f.consumer + 1` is such a product (planned as `plan`).
pub(crate) fn gram_tail(s: &Schedule, f: &RowFusion, plan: &DotPlan, n: usize) -> Option<GramTail> {
    let step = f.consumer + 1;
    let Step::Prim { inputs, .. } = s.steps.get(step)? else { return None };
    let Step::Kernel { kernel, outputs, .. } = &s.steps[f.consumer] else { return None };
    let [x, y] = inputs[..] else { return None };
    let (rows, cols) = plan.gram_of_rows()?;
    let dtype = s.buffers[x].aval.dtype;
    if x != y || rows != n || !matches!(dtype, DType::F32 | DType::F64) {
        return None;
    }
    // `X` is stored by the kernel at its own point, so a block writes exactly its rows of it.
    let output = outputs.iter().position(|&b| b == x)?;
    let stored = matches!(kernel.outputs[output].kind, OutputKind::Store) && kernel.domain == [rows, cols];
    stored.then_some(GramTail { step, output, cols, dtype })
}

/// The fusion of product step `d` with step `d + 1`, if it applies. `outer`
/// is the consumer kernel's outermost axis size after coalescing.
pub(crate) fn plan(s: &Schedule, d: usize, plan: &DotPlan, is_output: &[bool], outer: usize) -> Option<RowFusion> {
    let Step::Prim { outputs, .. } = &s.steps[d] else { return None };
    let o = *outputs.first()?;
    let c = d + 1;
    let Step::Kernel { kernel, inputs, .. } = s.steps.get(c)? else { return None };
    let (batch, n, p, k) = plan.gemm_dims();
    if batch != 1 || !plan.rows_runnable() || n * p * k < MIN_WORK || is_output[o] {
        return None;
    }
    // The consumer is the only reader of `O`, once, over `[n, p]` at its own point.
    let readers = s.steps.iter().filter(|st| st.inputs().contains(&o)).count();
    let positions: Vec<usize> = inputs.iter().enumerate().filter(|(_, &b)| b == o).map(|(i, _)| i).collect();
    if readers != 1 || positions.len() != 1 || kernel.domain != [n, p] {
        return None;
    }
    let position = positions[0];
    let elementwise = reads_only_at_own_point(&kernel.nodes, position, &kernel.domain);
    // The kernel's range must count whole rows of `O`.
    if !elementwise || outer == 0 || !outer.is_multiple_of(n) {
        return None;
    }
    // Blocks of about `BLOCK_ELEMENTS`, but at least two: a product too
    // small for two such blocks is halved, so that two threads share it.
    let by_size = (BLOCK_ELEMENTS / p.max(1)).clamp(16, n.max(16)) / 16 * 16;
    let block_rows = by_size.min(n.div_ceil(2).next_multiple_of(16));
    if n <= block_rows {
        return None;
    }
    let rows = (0..n).step_by(block_rows).map(|r0| (r0, (r0 + block_rows).min(n))).collect();
    Some(RowFusion { consumer: c, position, block_rows, rows, cols: p, dtype: s.buffers[o].aval.dtype, gram: None })
}

/// Rows `r0..r1` of a product into `out`.
///
/// # Safety
/// `l` and `r` must address the plan's operands (dtype `T`, their full
/// element counts `ln`, `rn`), and `out` `(r1 - r0) × cols` elements of `T`
/// that nothing else uses meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dot_rows<T: DotElem>(
    plan: &DotPlan,
    l: *const u8,
    ln: usize,
    r: *const u8,
    rn: usize,
    out: *mut u8,
    cols: usize,
    (r0, r1): (usize, usize),
) -> Result<(), LinalgError> {
    // The block views only the elements its rows read: with rows one after
    // another, only its own rows of `L`, which the kernel may then overwrite
    // in place while other blocks run (see `Executable::updates_in_place`).
    let (start, len) = plan.lhs_rows_span(r0, r1);
    let start = start.min(ln);
    // SAFETY: guaranteed by the caller; `start + len <= ln`.
    let (ls, rs, os) = unsafe {
        (
            std::slice::from_raw_parts((l as *const T).add(start), len.min(ln - start)),
            std::slice::from_raw_parts(r as *const T, rn),
            std::slice::from_raw_parts_mut(out as *mut T, (r1 - r0) * cols),
        )
    };
    plan.run_rows(ls, rs, os, r1 - r0)
}

/// One block's share of a fused Gram product (see [`GramTail`]):
/// `X[r0..r1]ᵀ X[r0..r1]` for `X` of `cols` columns.
///
/// # Safety
/// `x` must address `X`, whose rows `r0..r1` nothing writes meanwhile, and
/// `share` `cols × cols` elements of `T` that nothing else uses meanwhile.
pub(crate) unsafe fn gram_rows<T: DotElem>(
    plan: &DotPlan,
    x: *const u8,
    cols: usize,
    share: *mut u8,
    (r0, r1): (usize, usize),
) -> Result<(), LinalgError> {
    // SAFETY: guaranteed by the caller; only this block's rows are viewed,
    // since other blocks write theirs meanwhile.
    let (block, out) = unsafe {
        (
            std::slice::from_raw_parts((x as *const T).add(r0 * cols), (r1 - r0) * cols),
            std::slice::from_raw_parts_mut(share as *mut T, cols * cols),
        )
    };
    plan.run_gram_block(block, out)
}
