//! `dot_general` as a batched GEMM: a plan made once per operand types maps the
//! dimension numbers onto strided faer matrix views, packing an operand into
//! scratch only when its layout cannot be read as a matrix in place.
//!
//! Each operand is seen as a batch of matrices: lhs `M x K` (its free
//! dimensions, then its contracting ones) and rhs `K x N`; the output
//! `[batch, lhs free, rhs free]` is then a batch of row-major `M x N` matrices.
//! A group of dimensions (the free ones, or the contracting ones) can be read
//! in place when its dimensions are adjacent in memory in the group's order
//! (size-1 dimensions do not count), so that it is one strided index; a matrix
//! can be read in place when both groups can and one of the two strides is 1.
//! The order of the contracting pairs is free (the sum does not care), so the
//! plan tries the lhs's memory order and the rhs's and keeps the one that
//! copies less. Batch dimensions never need to be adjacent: each batch is an
//! offset into the operand.

use super::{check_len, Float, LinalgError};
use arrayjit_ir::prim::{DotDims, Linalg};
use arrayjit_ir::AVal;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, MatMut, MatRef, Par};

/// The element types `dot_general` multiplies: `f32` and `f64` through faer,
/// `i32` with a plain wrapping loop.
pub trait DotElem: Copy + Send + Sync + 'static + sealed::Kernel {}

impl DotElem for f32 {}
impl DotElem for f64 {}
impl DotElem for i32 {}

mod sealed {
    use super::View;

    /// The matrix products behind [`DotElem`](super::DotElem).
    pub trait Kernel: Copy + Send + Sync {
        const ZERO: Self;
        /// `a + b` (wrapping for integers).
        fn add(a: Self, b: Self) -> Self;
        /// `out = lhs · rhs` for `lhs: m x k`, `rhs: k x n` and `out` a contiguous row-major `m x n`.
        fn gemm(out: &mut [Self], lhs: View<'_, Self>, rhs: View<'_, Self>);
        /// `out = lhs · lhsᵀ` (symmetric `m x m`).
        fn syrk(out: &mut [Self], lhs: View<'_, Self>) {
            Self::gemm(out, lhs, lhs.t())
        }
    }
}

/// A strided `rows x cols` matrix whose element `(0, 0)` is `data[0]`. One of
/// the strides is 1 unless the matrix has a single row or column (the plan
/// guarantees it), which is what faer's safe slice constructors accept.
#[derive(Clone, Copy)]
pub struct View<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T: Copy> View<'a, T> {
    fn t(self) -> View<'a, T> {
        View { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    fn at(&self, i: usize, j: usize) -> T {
        self.data[i * self.rs + j * self.cs]
    }

    fn faer(self) -> MatRef<'a, T> {
        if self.cs == 1 || self.cols <= 1 {
            MatRef::from_row_major_slice_with_stride(self.data, self.rows, self.cols, self.rs)
        } else {
            debug_assert!(self.rs == 1 || self.rows <= 1, "{self:?} has no unit stride");
            MatRef::from_column_major_slice_with_stride(self.data, self.rows, self.cols, self.cs)
        }
    }
}

impl<'a, T: Copy> std::fmt::Debug for View<'a, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{} view (strides {}, {})", self.rows, self.cols, self.rs, self.cs)
    }
}

fn faer_gemm<T: Float>(out: &mut [T], lhs: View<'_, T>, rhs: View<'_, T>) {
    let dst = MatMut::from_row_major_slice_mut(out, lhs.rows, rhs.cols);
    faer::linalg::matmul::matmul(dst, Accum::Replace, lhs.faer(), rhs.faer(), T::ONE, Par::Seq);
}

/// `out = lhs · rhs` with faer but for the last one or two columns, which
/// [`super::columns`] computes as dot products when faer's vectors would
/// mostly waste their work on them; `false` (and `out` untouched) where that
/// does not apply.
fn gemm_with_last_columns<T: Float + super::columns::DotsElem>(
    out: &mut [T],
    lhs: View<'_, T>,
    rhs: View<'_, T>,
) -> bool {
    use super::columns::{dots, rest, Operands, MAX_PACKED};
    let (m, n, k) = (lhs.rows, rhs.cols, lhs.cols);
    let Some(rest) = rest(n, k, std::mem::size_of::<T>()) else { return false };
    if lhs.cs != 1 || m == 0 || k == 0 || out.len() < m * n {
        return false;
    }
    let main = n - rest;
    let mut packed = [T::ZERO; MAX_PACKED];
    for c in 0..rest {
        for q in 0..k {
            packed[c * k + q] = rhs.at(q, main + c);
        }
    }
    // The dot products first: they may decline, and then faer computes the whole product.
    let ops = Operands { a: lhs.data, a_stride: lhs.rs, rows: m, k, b: &packed[..rest * k], cols: rest };
    if !dots(ops, &mut out[main..], n) {
        return false;
    }
    let dst = MatMut::from_row_major_slice_mut(out, m, n);
    let (dst, _) = dst.split_at_col_mut(main);
    let (r, _) = rhs.faer().split_at_col(main);
    faer::linalg::matmul::matmul(dst, Accum::Replace, lhs.faer(), r, T::ONE, Par::Seq);
    true
}

/// The lower triangle with faer's triangular matmul (half the flops), then mirrored.
fn faer_syrk<T: Float>(out: &mut [T], lhs: View<'_, T>) {
    let m = lhs.rows;
    let l = lhs.faer();
    let dst = MatMut::from_row_major_slice_mut(out, m, m);
    triangular::matmul(
        dst,
        BlockStructure::TriangularLower,
        Accum::Replace,
        l,
        BlockStructure::Rectangular,
        l.transpose(),
        BlockStructure::Rectangular,
        T::ONE,
        Par::Seq,
    );
    for i in 0..m {
        for j in i + 1..m {
            out[i * m + j] = out[j * m + i];
        }
    }
}

macro_rules! float_kernel {
    ($t:ty) => {
        impl sealed::Kernel for $t {
            const ZERO: $t = 0.0;
            fn add(a: $t, b: $t) -> $t {
                a + b
            }
            fn gemm(out: &mut [$t], lhs: View<'_, $t>, rhs: View<'_, $t>) {
                if !gemm_with_last_columns(out, lhs, rhs) {
                    faer_gemm(out, lhs, rhs)
                }
            }
            fn syrk(out: &mut [$t], lhs: View<'_, $t>) {
                // `lhs` is `Xᵀ` for a row-major `X` (as in every Gram product
                // of a fit): our own kernel, where the CPU runs it.
                let (m, k) = (lhs.rows, lhs.cols);
                let gram = lhs.rs == 1 && lhs.cs == m && super::gram::gram(lhs.data, k, m, out);
                if !gram {
                    faer_syrk(out, lhs)
                }
            }
        }
    };
}

float_kernel!(f32);
float_kernel!(f64);

impl sealed::Kernel for i32 {
    const ZERO: i32 = 0;
    fn add(a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
    /// Wrapping arithmetic, as the reference interpreter.
    fn gemm(out: &mut [i32], lhs: View<'_, i32>, rhs: View<'_, i32>) {
        let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
        for i in 0..m {
            for (j, o) in out[i * n..(i + 1) * n].iter_mut().enumerate() {
                *o = (0..k).fold(0i32, |acc, p| acc.wrapping_add(lhs.at(i, p).wrapping_mul(rhs.at(p, j))));
            }
        }
    }
}

/// One loop of a packing copy: `size` steps of `src` elements in the source and `dst` in the packed copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loop {
    size: usize,
    src: usize,
    dst: usize,
}

/// How one operand reaches the GEMM: its matrices are read in place, or from a
/// packed row-major copy `[batch..., rows, cols]` at the start of its scratch part.
#[derive(Clone, Debug)]
struct Operand {
    /// Elements in the operand.
    len: usize,
    /// The offset of each output batch dimension's step in the buffer the GEMM reads.
    batch_strides: Vec<usize>,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    /// The copy into scratch, outermost loop first; `None` when read in place.
    pack: Option<Vec<Loop>>,
}

impl Operand {
    /// An operand no GEMM reads (the output is empty or the contraction is).
    fn unread(shape: &[usize], batch_axes: &[usize]) -> Operand {
        let len = shape.iter().product();
        Operand { len, batch_strides: vec![0; batch_axes.len()], rows: 0, cols: 0, rs: 1, cs: 1, pack: None }
    }

    /// Plans the operand of `shape` as matrices of `row_axes x col_axes`, batched over `batch_axes`.
    fn analyse(shape: &[usize], batch_axes: &[usize], row_axes: &[usize], col_axes: &[usize]) -> Operand {
        let strides = row_major_strides(shape);
        let size = |axes: &[usize]| axes.iter().map(|&a| shape[a]).product::<usize>();
        let (rows, cols) = (size(row_axes), size(col_axes));
        let len = shape.iter().product();
        match (merged_stride(shape, &strides, row_axes), merged_stride(shape, &strides, col_axes)) {
            (Some(rs), Some(cs)) if rs == 1 || cs == 1 || rows <= 1 || cols <= 1 => {
                let batch_strides = batch_axes.iter().map(|&a| strides[a]).collect();
                Operand { len, batch_strides, rows, cols, rs, cs, pack: None }
            }
            _ => {
                let batch_sizes: Vec<usize> = batch_axes.iter().map(|&a| shape[a]).collect();
                let batch_strides = row_major_strides(&batch_sizes).iter().map(|s| s * rows * cols).collect();
                let order: Vec<usize> = batch_axes.iter().chain(row_axes).chain(col_axes).copied().collect();
                let pack = Some(pack_loops(shape, &strides, &order));
                Operand { len, batch_strides, rows, cols, rs: cols, cs: 1, pack }
            }
        }
    }

    /// Scratch elements the packed copy takes (0 when read in place).
    fn packed_len(&self) -> usize {
        if self.pack.is_some() {
            self.len
        } else {
            0
        }
    }

    /// Batch `b`'s matrix (`b` row-major over `batch` sizes) in `buf`.
    fn view<'a, T: Copy>(&self, buf: &'a [T], b: usize, batch: &[usize]) -> View<'a, T> {
        let mut rest = b;
        let mut offset = 0;
        for (&size, &stride) in batch.iter().zip(&self.batch_strides).rev() {
            offset += (rest % size) * stride;
            rest /= size;
        }
        View { data: &buf[offset..], rows: self.rows, cols: self.cols, rs: self.rs, cs: self.cs }
    }
}

fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// The stride of `axes` taken together as one index (in the given order), if
/// they are adjacent in memory in that order once size-1 dimensions are
/// dropped; 1 for a group of total size 1.
fn merged_stride(shape: &[usize], strides: &[usize], axes: &[usize]) -> Option<usize> {
    let mut last: Option<usize> = None;
    for &a in axes.iter().filter(|&&a| shape[a] != 1) {
        if let Some(p) = last {
            if strides[p] != strides[a] * shape[a] {
                return None;
            }
        }
        last = Some(a);
    }
    Some(last.map_or(1, |p| strides[p]))
}

/// The loops that copy the axes of `shape` in `order` into a contiguous
/// row-major buffer: size-1 axes dropped, adjacent ones merged.
fn pack_loops(shape: &[usize], strides: &[usize], order: &[usize]) -> Vec<Loop> {
    let mut loops: Vec<Loop> = Vec::new();
    for &a in order.iter().filter(|&&a| shape[a] != 1) {
        match loops.last_mut() {
            Some(l) if l.src == strides[a] * shape[a] => {
                l.size *= shape[a];
                l.src = strides[a];
            }
            _ => loops.push(Loop { size: shape[a], src: strides[a], dst: 0 }),
        }
    }
    let mut dst = 1;
    for l in loops.iter_mut().rev() {
        l.dst = dst;
        dst *= l.size;
    }
    loops
}

/// Copies `src` through `loops` into the contiguous `dst`.
fn copy_strided<T: Copy>(loops: &[Loop], src: &[T], dst: &mut [T]) {
    match loops {
        [] => {
            if let (Some(d), Some(s)) = (dst.first_mut(), src.first()) {
                *d = *s;
            }
        }
        [l] if l.src == 1 => dst[..l.size].copy_from_slice(&src[..l.size]),
        [l] => {
            for (d, s) in dst[..l.size].iter_mut().zip(src.iter().step_by(l.src)) {
                *d = *s;
            }
        }
        [l, rest @ ..] => {
            for i in 0..l.size {
                copy_strided(rest, &src[i * l.src..], &mut dst[i * l.dst..]);
            }
        }
    }
}

/// A `dot_general` planned for given operand types: made once, run many times
/// on buffers of those types without allocating.
///
/// The output is the batch of row-major `M x N` products
/// `[batch..., lhs free..., rhs free...]` (see [`DotDims`]). Operands are read
/// in place whenever their layout allows it (plain, transposed and batched
/// matmuls, matrix-vector products, contractions over several adjacent
/// dimensions, batch dimensions anywhere); otherwise they are first packed into
/// the scratch buffer, of [`DotPlan::scratch_len`] elements.
#[derive(Clone, Debug)]
pub struct DotPlan {
    lhs_aval: AVal,
    rhs_aval: AVal,
    out: AVal,
    /// The output's batch sizes.
    batch: Vec<usize>,
    m: usize,
    n: usize,
    k: usize,
    lhs: Operand,
    rhs: Operand,
    symmetric: bool,
    scratch_len: usize,
}

impl DotPlan {
    /// Plans `dot_general(dims)` of operands typed `lhs` and `rhs` (checked
    /// with the primitive's shape rule).
    ///
    /// `same_operand` says that both operands will be the same buffer. When
    /// the product is then symmetric (`XᵀX`, `XXᵀ`, batched or with several
    /// contracting dimensions: equal dimension numbers on both sides), [`run`]
    /// computes only its lower triangle (half the flops) and mirrors it,
    /// provided it is indeed handed one slice twice.
    ///
    /// [`run`]: DotPlan::run
    pub fn new(dims: &DotDims, lhs: &AVal, rhs: &AVal, same_operand: bool) -> Result<DotPlan, LinalgError> {
        let prim = Linalg::DotGeneral(dims.clone());
        let out = prim.abstract_eval(&[lhs.clone(), rhs.clone()])?.into_iter().next().ok_or_else(|| {
            LinalgError::Unsupported { op: "dot_general", avals: format!("{lhs} and {rhs} (no output type)") }
        })?;
        let (ls, rs) = (lhs.shape.dims(), rhs.shape.dims());
        let (lfree, rfree) = (dims.lhs_free(ls.len()), dims.rhs_free(rs.len()));
        let batch: Vec<usize> = dims.lhs_batch.iter().map(|&a| ls[a]).collect();
        let m = lfree.iter().map(|&a| ls[a]).product();
        let n = rfree.iter().map(|&a| rs[a]).product();
        let k = dims.lhs_contract.iter().map(|&a| ls[a]).product();
        let (lhs_op, rhs_op) = if out.numel() == 0 || k == 0 {
            (Operand::unread(ls, &dims.lhs_batch), Operand::unread(rs, &dims.rhs_batch))
        } else {
            let pairs: Vec<(usize, usize)> =
                dims.lhs_contract.iter().copied().zip(dims.rhs_contract.iter().copied()).collect();
            let mut by_lhs = pairs.clone();
            by_lhs.sort_unstable();
            let mut by_rhs = pairs;
            by_rhs.sort_unstable_by_key(|p| p.1);
            let candidates = [by_lhs, by_rhs].map(|order| {
                let lc: Vec<usize> = order.iter().map(|p| p.0).collect();
                let rc: Vec<usize> = order.iter().map(|p| p.1).collect();
                let l = Operand::analyse(ls, &dims.lhs_batch, &lfree, &lc);
                let r = Operand::analyse(rs, &dims.rhs_batch, &rc, &rfree);
                (l.packed_len() + r.packed_len(), l, r)
            });
            // The first of equal costs: the lhs's order.
            let [a, b] = candidates;
            let (_, l, r) = if b.0 < a.0 { b } else { a };
            (l, r)
        };
        let symmetric = same_operand
            && lhs == rhs
            && dims.lhs_contract == dims.rhs_contract
            && dims.lhs_batch == dims.rhs_batch
            && m == n;
        let scratch_len = lhs_op.packed_len() + rhs_op.packed_len();
        Ok(DotPlan {
            lhs_aval: lhs.clone(),
            rhs_aval: rhs.clone(),
            out,
            batch,
            m,
            n,
            k,
            lhs: lhs_op,
            rhs: rhs_op,
            symmetric,
            scratch_len,
        })
    }

    /// The output's type.
    pub fn out_aval(&self) -> &AVal {
        &self.out
    }

    /// Elements of scratch [`run`](DotPlan::run) needs (0 when no operand is packed).
    pub fn scratch_len(&self) -> usize {
        self.scratch_len
    }

    /// Whether the lhs and the rhs are packed into scratch (`false`: read in place).
    pub fn packs(&self) -> (bool, bool) {
        (self.lhs.pack.is_some(), self.rhs.pack.is_some())
    }

    /// Whether [`run`](DotPlan::run) computes one triangle and mirrors it when
    /// handed the same slice as both operands.
    pub fn is_symmetric(&self) -> bool {
        self.symmetric
    }

    /// `(batch count, M, N, K)`: the GEMMs this plan runs.
    pub fn gemm_dims(&self) -> (usize, usize, usize, usize) {
        (self.batch.iter().product(), self.m, self.n, self.k)
    }

    /// How many blocks each matrix of the product is cut into for the
    /// worker threads (1: one call on the calling thread).
    pub fn blocks(&self) -> usize {
        if self.symmetric {
            syrk_block_count(self.m, self.k)
        } else {
            gemm_blocks(self.m, self.n, self.k)
        }
    }

    fn shapes(&self) -> String {
        format!("dot_general of {} and {}", self.lhs_aval, self.rhs_aval)
    }

    /// Computes the product into `out` (row-major, of [`out_aval`](DotPlan::out_aval)'s
    /// size); `scratch` needs at least [`scratch_len`](DotPlan::scratch_len)
    /// elements and its contents do not matter. The element type must be the
    /// operands' dtype.
    pub fn run<T: DotElem>(&self, lhs: &[T], rhs: &[T], out: &mut [T], scratch: &mut [T]) -> Result<(), LinalgError> {
        const OP: &str = "dot_general";
        check_len(OP, "lhs", lhs.len(), self.lhs.len, || self.shapes())?;
        check_len(OP, "rhs", rhs.len(), self.rhs.len, || self.shapes())?;
        check_len(OP, "output", out.len(), self.out.numel(), || self.shapes())?;
        if scratch.len() < self.scratch_len {
            return Err(LinalgError::BufferLength {
                op: OP,
                buffer: "scratch",
                shapes: self.shapes(),
                got: scratch.len(),
                want: self.scratch_len,
            });
        }
        if out.is_empty() {
            return Ok(());
        }
        if self.k == 0 {
            out.fill(T::ZERO);
            return Ok(());
        }
        let symmetric = self.symmetric && std::ptr::eq(lhs, rhs);
        let (lscratch, rscratch) = scratch[..self.scratch_len].split_at_mut(self.lhs.packed_len());
        let lbuf: &[T] = match &self.lhs.pack {
            Some(loops) => {
                copy_strided(loops, lhs, lscratch);
                lscratch
            }
            None => lhs,
        };
        let rbuf: &[T] = match &self.rhs.pack {
            Some(loops) if !symmetric => {
                copy_strided(loops, rhs, rscratch);
                rscratch
            }
            _ => rhs,
        };
        for (b, out_b) in out.chunks_exact_mut(self.m * self.n).enumerate() {
            let l = self.lhs.view(lbuf, b, &self.batch);
            if symmetric {
                syrk_blocked(out_b, l);
            } else {
                gemm_blocked(out_b, l, self.rhs.view(rbuf, b, &self.batch));
            }
        }
        Ok(())
    }
}

impl DotPlan {
    /// Whether [`run_rows`](DotPlan::run_rows) applies: one product (no
    /// batch), operands read in place, not the symmetric path.
    pub fn rows_runnable(&self) -> bool {
        self.batch.iter().product::<usize>() == 1
            && self.lhs.pack.is_none()
            && self.rhs.pack.is_none()
            && !self.symmetric
    }

    /// The left operand's columns: the contraction's size.
    pub fn lhs_cols(&self) -> usize {
        self.lhs.cols
    }

    /// The distance between the left operand's rows in its buffer, when they
    /// lie one after another (row-major, read in place): the
    /// [`lhs_rows_span`](DotPlan::lhs_rows_span) of some rows then holds
    /// those rows and no others.
    pub fn lhs_row_stride(&self) -> Option<usize> {
        let l = &self.lhs;
        (self.rows_runnable() && (l.cs == 1 || l.cols <= 1) && l.rs >= l.cols).then_some(l.rs)
    }

    /// The elements of the left operand's buffer that rows `r0..r1` of the
    /// product read, as `(start, len)`: what [`run_rows`](DotPlan::run_rows)
    /// is handed.
    pub fn lhs_rows_span(&self, r0: usize, r1: usize) -> (usize, usize) {
        let l = &self.lhs;
        let len = if r1 > r0 && l.cols > 0 { (r1 - r0 - 1) * l.rs + (l.cols - 1) * l.cs + 1 } else { 0 };
        (r0 * l.rs, len)
    }

    /// `rows` consecutive rows of the product, into `out` (`rows × N`,
    /// row-major), computed as [`run`](DotPlan::run) computes them, from
    /// `lhs`, the left operand's elements from the first of those rows on
    /// (their [`lhs_rows_span`](DotPlan::lhs_rows_span)). Only for plans that
    /// are [`rows_runnable`](DotPlan::rows_runnable).
    pub fn run_rows<T: DotElem>(&self, lhs: &[T], rhs: &[T], out: &mut [T], rows: usize) -> Result<(), LinalgError> {
        const OP: &str = "dot_general";
        check_len(OP, "rhs", rhs.len(), self.rhs.len, || self.shapes())?;
        if !self.rows_runnable() || rows > self.m {
            return Err(LinalgError::Unsupported { op: OP, avals: format!("{rows} rows of {}", self.shapes()) });
        }
        check_len(OP, "output rows", out.len(), rows * self.n, || self.shapes())?;
        if out.is_empty() {
            return Ok(());
        }
        // An empty contraction reads nothing.
        if self.k == 0 {
            out.fill(T::ZERO);
            return Ok(());
        }
        let (_, need) = self.lhs_rows_span(0, rows);
        if lhs.len() < need {
            return Err(LinalgError::Unsupported {
                op: OP,
                avals: format!("{rows} rows from {} elements of {}", lhs.len(), self.shapes()),
            });
        }
        let l = View { data: lhs, rows, cols: self.lhs.cols, rs: self.lhs.rs, cs: self.lhs.cs };
        T::gemm(out, l, self.rhs.view(rhs, 0, &self.batch));
        Ok(())
    }
}

impl DotPlan {
    /// `(n, p)` when this plan is the Gram product `XᵀX` of one row-major
    /// `n × p` matrix read in place, handed the same slice twice: then
    /// [`run_gram_block`](DotPlan::run_gram_block) computes the share of a
    /// block of `X`'s rows, and the product is the sum of the blocks' shares.
    pub fn gram_of_rows(&self) -> Option<(usize, usize)> {
        let (n, p) = (self.k, self.m);
        let xtx = self.symmetric
            && self.batch.is_empty()
            && self.lhs.pack.is_none()
            && self.lhs_aval.shape.dims() == [n, p]
            && (self.lhs.rs, self.lhs.cs) == (1, p);
        xtx.then_some((n, p))
    }

    /// `BᵀB` into `out` (`p × p`, row-major, both triangles) for a block `B`
    /// of consecutive rows of `X` (`block.len()` a multiple of `p`), for a
    /// plan that is a [`gram_of_rows`](DotPlan::gram_of_rows).
    pub fn run_gram_block<T: DotElem>(&self, block: &[T], out: &mut [T]) -> Result<(), LinalgError> {
        const OP: &str = "dot_general";
        let bad = || LinalgError::Unsupported { op: OP, avals: format!("{} rows of {}", block.len(), self.shapes()) };
        let (n, p) = self.gram_of_rows().ok_or_else(bad)?;
        check_len(OP, "output", out.len(), p * p, || self.shapes())?;
        if p == 0 || !block.len().is_multiple_of(p) || block.len() > n * p {
            return Err(bad());
        }
        if block.is_empty() {
            out.fill(T::ZERO);
            return Ok(());
        }
        T::syrk(out, View { data: block, rows: p, cols: block.len() / p, rs: 1, cs: p });
        Ok(())
    }
}

/// Gram products smaller than this many multiply-adds run as one call (each
/// further block costs a partial product to add).
const BLOCKED_MIN_WORK: usize = 1 << 23;

/// How many blocks of `len` (rows or contraction terms) a product of `work`
/// multiply-adds is cut into: by size alone, never by the thread count, so
/// results do not depend on how many threads run the blocks.
fn block_count(work: usize, len: usize, min_len: usize) -> usize {
    if work < BLOCKED_MIN_WORK {
        1
    } else {
        (len / min_len).clamp(1, 8)
    }
}

/// Multiply-adds per block of rows of a product, at least. Small products
/// gain from a second thread too: `M·Ω` at 116×114 by 114×114 (1.5 million
/// multiply-adds) took 36 µs as one call and 23–32 µs as two blocks of rows
/// on two threads.
const GEMM_BLOCK_WORK: usize = 1 << 19;

/// How many blocks of rows `out = lhs · rhs` is cut into: by size alone, as
/// [`block_count`], with at least 32 rows a block.
fn gemm_block_count(m: usize, work: usize) -> usize {
    (work / GEMM_BLOCK_WORK).min(m / 32).clamp(1, 8)
}

/// How many blocks of rows an `m × k` by `k × n` product is cut into.
fn gemm_blocks(m: usize, n: usize, k: usize) -> usize {
    gemm_block_count(m, m.saturating_mul(n).saturating_mul(k))
}

/// How many blocks of its `k` contraction terms the `m × m` product of an
/// `m × k` matrix by its transpose is cut into.
fn syrk_block_count(m: usize, k: usize) -> usize {
    block_count(m * m * k / 2, k, 2048)
}

/// `out = lhs · rhs`, by blocks of rows on several threads (each row of the
/// output is computed exactly as by one call).
fn gemm_blocked<T: DotElem>(out: &mut [T], lhs: View<'_, T>, rhs: View<'_, T>) {
    let (m, n) = (lhs.rows, rhs.cols);
    let blocks = gemm_blocks(m, n, lhs.cols);
    if blocks == 1 || n == 0 {
        T::gemm(out, lhs, rhs);
        return;
    }
    let rows = m.div_ceil(blocks);
    let mut parts: Vec<(usize, &mut [T])> = out.chunks_mut(rows * n).enumerate().map(|(i, c)| (i * rows, c)).collect();
    crate::parallel::for_each_mut(&mut parts, |_, (r0, chunk)| {
        let sub = View { data: &lhs.data[*r0 * lhs.rs..], rows: chunk.len() / n, ..lhs };
        T::gemm(chunk, sub, rhs);
    });
}

/// `out = lhs · lhsᵀ`: the contraction cut into blocks whose partial
/// products (one triangle each) run on several threads and are summed in
/// block order.
fn syrk_blocked<T: DotElem>(out: &mut [T], lhs: View<'_, T>) {
    let (m, k) = (lhs.rows, lhs.cols);
    let blocks = syrk_block_count(m, k);
    if blocks == 1 {
        T::syrk(out, lhs);
        return;
    }
    let cols = k.div_ceil(blocks);
    let mut parts: Vec<(usize, Vec<T>)> = (0..k.div_ceil(cols)).map(|i| (i * cols, vec![T::ZERO; m * m])).collect();
    crate::parallel::for_each_mut(&mut parts, |_, (c0, partial)| {
        let width = cols.min(k - *c0);
        let sub = View { data: &lhs.data[*c0 * lhs.cs..], cols: width, ..lhs };
        T::syrk(partial, sub);
    });
    let (first, rest) = parts.split_at(1);
    out.copy_from_slice(&first[0].1);
    for (_, p) in rest {
        for (o, &x) in out.iter_mut().zip(p) {
            *o = T::add(*o, x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_split_into_row_blocks_by_size() {
        // One call below a block's work; M·Ω at n = 116 in two; at most eight.
        assert_eq!(gemm_block_count(64, 64 * 64 * 64), 1);
        assert_eq!(gemm_block_count(116, 116 * 114 * 114), 2);
        assert_eq!(gemm_block_count(11600, 11600 * 114 * 114), 8);
        // Never fewer than 32 rows a block, nor no block.
        assert_eq!(gemm_block_count(40, usize::MAX), 1);
        assert_eq!(gemm_block_count(0, 0), 1);
    }

    #[test]
    fn merging_and_packing_loops() {
        let shape = [2, 1, 3, 4];
        let s = row_major_strides(&shape);
        assert_eq!(s, vec![12, 12, 4, 1]);
        assert_eq!(merged_stride(&shape, &s, &[0, 1, 2]), Some(4));
        assert_eq!(merged_stride(&shape, &s, &[2, 0]), None);
        assert_eq!(merged_stride(&shape, &s, &[0, 3]), None);
        assert_eq!(merged_stride(&shape, &s, &[1]), Some(1));
        assert_eq!(pack_loops(&shape, &s, &[0, 2, 3]), vec![Loop { size: 24, src: 1, dst: 1 }]);
        assert_eq!(
            pack_loops(&shape, &s, &[3, 0, 2]),
            vec![Loop { size: 4, src: 1, dst: 6 }, Loop { size: 6, src: 4, dst: 1 }]
        );
        let src: Vec<i32> = (0..24).collect();
        let mut dst = vec![0; 24];
        copy_strided(&pack_loops(&shape, &s, &[3, 0, 2]), &src, &mut dst);
        assert_eq!(&dst[..8], &[0, 4, 8, 12, 16, 20, 1, 5]);
    }

    /// Products with one or two columns past a multiple of the vector lanes
    /// (their last columns computed as dot products where the CPU has the
    /// vectors), whole and by rows, against a plain loop; f32 and f64.
    #[test]
    fn products_with_a_few_last_columns_match_a_plain_loop() {
        fn check<T: DotElem + Float + Into<f64>>(from: impl Fn(f64) -> T, tol: f64) {
            for (m, k, n) in [(5, 7, 17), (33, 114, 114), (70, 3, 18), (9, 300, 10), (600, 114, 114)] {
                let a: Vec<T> = (0..m * k).map(|i| from(((i * 7919) % 1000) as f64 / 500.0 - 1.0)).collect();
                let b: Vec<T> = (0..k * n).map(|i| from(((i * 104729) % 997) as f64 / 997.0 - 0.5)).collect();
                let dtype =
                    if std::mem::size_of::<T>() == 4 { arrayjit_ir::DType::F32 } else { arrayjit_ir::DType::F64 };
                let (la, ra) = (AVal::new(dtype, [m, k]), AVal::new(dtype, [k, n]));
                let plan = DotPlan::new(&DotDims::matmul(), &la, &ra, false).unwrap();
                let mut out = vec![<T as Float>::ZERO; m * n];
                plan.run(&a, &b, &mut out, &mut []).unwrap();
                let mut rows = vec![<T as Float>::ZERO; 3 * n];
                plan.run_rows(&a[2 * k..], &b, &mut rows, 3).unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let terms = (0..k).map(|q| a[i * k + q].into() * b[q * n + j].into());
                        let (want, scale) = terms.fold((0.0f64, 0.0f64), |(s, t), x: f64| (s + x, t + x.abs()));
                        let got: f64 = out[i * n + j].into();
                        assert!((got - want).abs() <= tol * scale.max(1.0), "{m}x{k}x{n} ({i},{j}): {got} vs {want}");
                        if (2..5).contains(&i) {
                            let by_rows: f64 = rows[(i - 2) * n + j].into();
                            assert_eq!(by_rows, got, "{m}x{k}x{n} ({i},{j}) by rows");
                        }
                    }
                }
            }
        }
        check::<f32>(|v| v as f32, 1e-5);
        check::<f64>(|v| v, 1e-12);
    }

    /// Products large enough to run in blocks (rows of `M·Ω`, the contraction
    /// of `MᵀM`, with a column-major operand too) against a plain loop.
    #[test]
    fn blocked_products_match_a_plain_loop() {
        let (n, p) = (4096, 64);
        let m: Vec<f64> = (0..n * p).map(|i| ((i * 7919) % 1000) as f64 / 500.0 - 1.0).collect();
        let o: Vec<f64> = (0..p * p).map(|i| ((i * 104729) % 997) as f64 / 997.0 - 0.5).collect();
        let cases = [
            (DotDims::matmul(), vec![n, p], vec![p, p], n, p, false),
            (
                DotDims { lhs_contract: vec![0], rhs_contract: vec![0], ..DotDims::default() },
                vec![n, p],
                vec![n, p],
                p,
                p,
                true,
            ),
            (
                DotDims { lhs_contract: vec![0], rhs_contract: vec![0], ..DotDims::default() },
                vec![n, p],
                vec![n, p],
                p,
                p,
                false,
            ),
        ];
        let m2: Vec<f64> = m.iter().rev().map(|x| x * 0.5).collect();
        for (dims, ls, rs, rows, cols, same) in cases {
            let (l, r): (&[f64], &[f64]) = if same { (&m, &m) } else { (&m, if rs[0] == n { &m2 } else { &o }) };
            let la = AVal::new(arrayjit_ir::DType::F64, ls.clone());
            let ra = AVal::new(arrayjit_ir::DType::F64, rs.clone());
            let plan = DotPlan::new(&dims, &la, &ra, same).unwrap();
            assert_eq!(plan.is_symmetric(), same);
            let mut out = vec![0.0; rows * cols];
            let mut scratch = vec![0.0; plan.scratch_len()];
            plan.run(l, r, &mut out, &mut scratch).unwrap();
            let (lt, rk) = (dims.lhs_contract == [0], rs[0]);
            for i in 0..rows {
                for j in 0..cols {
                    let want: f64 = (0..rk)
                        .map(|q| {
                            let a = if lt { l[q * p + i] } else { l[i * p + q] };
                            a * r[q * cols + j]
                        })
                        .sum();
                    let got = out[i * cols + j];
                    assert!((got - want).abs() <= 1e-9 * (1.0 + want.abs()), "({i},{j}): {got} vs {want}");
                }
            }
        }
    }
    /// Blocks of rows' shares of `XᵀX` add up to the product; plans that are
    /// not the Gram product of rows (`XXᵀ`, two operands) have no shares.
    #[test]
    fn gram_shares_of_row_blocks_add_up_to_the_product() {
        let (n, p) = (37, 5);
        let x: Vec<f64> = (0..n * p).map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0).collect();
        let xa = AVal::new(arrayjit_ir::DType::F64, [n, p]);
        let xtx = DotDims { lhs_contract: vec![0], rhs_contract: vec![0], ..DotDims::default() };
        let plan = DotPlan::new(&xtx, &xa, &xa, true).unwrap();
        assert_eq!(plan.gram_of_rows(), Some((n, p)));
        let mut whole = vec![0.0; p * p];
        plan.run(&x, &x, &mut whole, &mut []).unwrap();
        let (mut sum, mut share) = (vec![0.0; p * p], vec![0.0; p * p]);
        for (r0, r1) in [(0, 10), (10, 10), (10, 36), (36, 37)] {
            plan.run_gram_block(&x[r0 * p..r1 * p], &mut share).unwrap();
            sum.iter_mut().zip(&share).for_each(|(s, v)| *s += v);
        }
        for (a, b) in sum.iter().zip(&whole) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
        }
        assert!(plan.run_gram_block(&x[..7], &mut share).is_err());
        let xxt = DotDims { lhs_contract: vec![1], rhs_contract: vec![1], ..DotDims::default() };
        assert_eq!(DotPlan::new(&xxt, &xa, &xa, true).unwrap().gram_of_rows(), None);
        assert_eq!(DotPlan::new(&xtx, &xa, &xa, false).unwrap().gram_of_rows(), None);
        assert!(DotPlan::new(&xtx, &xa, &xa, false).unwrap().run_gram_block(&x[..p], &mut share).is_err());
    }
}
