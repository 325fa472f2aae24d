//! `dot_general` as one strided, batched GEMM over row-major buffers, and
//! its translation to cuBLAS's column-major calling convention.
//!
//! A product qualifies when each operand, read in place, is a batch of
//! matrices whose rows and columns each have one stride, one of them 1 (a
//! plain or transposed matrix), with one stride between batch elements.
//! Others (contractions over several non-adjacent axes, say) return `None`,
//! and the executor runs them on the host.

use arrayjit_ir::prim::{DotDims, Linalg};
use arrayjit_ir::{AVal, DType};

/// How a matrix operand sits in its buffer, in elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Stride between rows and between columns; one of them is 1.
    pub rs: usize,
    pub cs: usize,
    /// Stride between batch elements.
    pub batch: usize,
}

/// `C[b] = A[b] · B[b]` for `b < batch`: `A[b]` is `m × k`, `B[b]` `k × n`,
/// `C[b]` `m × n` row-major and contiguous (batch stride `m·n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gemm {
    pub dtype: DType,
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Layout,
    pub b: Layout,
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The one stride walking `axes` (in order) as a single row-major axis, if any.
fn merged(shape: &[usize], strides: &[usize], axes: &[usize]) -> Option<usize> {
    let live: Vec<usize> = axes.iter().copied().filter(|&a| shape[a] != 1).collect();
    match live.as_slice() {
        [] => Some(1),
        [first, rest @ ..] => {
            let mut prev = *first;
            for &a in rest {
                if strides[prev] != strides[a] * shape[a] {
                    return None;
                }
                prev = a;
            }
            Some(strides[prev])
        }
    }
}

/// A matrix over `rows × cols` axes, batched over `batch` axes, if it has a GEMM layout.
fn layout(shape: &[usize], batch: &[usize], rows: &[usize], cols: &[usize]) -> Option<Layout> {
    let st = strides(shape);
    let size = |axes: &[usize]| axes.iter().map(|&a| shape[a]).product::<usize>();
    let (r, c) = (size(rows), size(cols));
    let (mut rs, mut cs) = (merged(shape, &st, rows)?, merged(shape, &st, cols)?);
    // A single row or column may take any stride: give it the one that
    // makes the matrix plainly row-major (or column-major).
    if r <= 1 {
        rs = c.max(1) * cs;
    }
    if c <= 1 {
        cs = if rs == 1 { r.max(1) } else { 1 };
    }
    if rs != 1 && cs != 1 {
        return None;
    }
    let batch = if size(batch) <= 1 { r * c } else { merged(shape, &st, batch)? };
    Some(Layout { rs, cs, batch })
}

impl Gemm {
    /// Plans `dot_general(dims)` of operands typed `lhs` and `rhs`.
    pub fn plan(dims: &DotDims, lhs: &AVal, rhs: &AVal) -> Option<Gemm> {
        Linalg::DotGeneral(dims.clone()).abstract_eval(&[lhs.clone(), rhs.clone()]).ok()?;
        if !lhs.dtype.is_float() {
            return None;
        }
        let (ls, rs) = (lhs.shape.dims(), rhs.shape.dims());
        let (lfree, rfree) = (dims.lhs_free(ls.len()), dims.rhs_free(rs.len()));
        let batch = dims.lhs_batch.iter().map(|&a| ls[a]).product();
        let m = lfree.iter().map(|&a| ls[a]).product();
        let n = rfree.iter().map(|&a| rs[a]).product();
        let k = dims.lhs_contract.iter().map(|&a| ls[a]).product();
        let a = layout(ls, &dims.lhs_batch, &lfree, &dims.lhs_contract)?;
        let b = layout(rs, &dims.rhs_batch, &dims.rhs_contract, &rfree)?;
        Some(Gemm { dtype: lhs.dtype, batch, m, n, k, a, b })
    }

    /// The product on the host, in `f64` accumulation order `l = 0..k`, for
    /// runtimes without a BLAS and for tests.
    pub fn reference<T: Copy + Into<f64>>(&self, a: &[T], b: &[T], c: &mut [f64]) {
        for bi in 0..self.batch {
            for i in 0..self.m {
                for j in 0..self.n {
                    let mut acc = 0.0;
                    for l in 0..self.k {
                        let x: f64 = a[bi * self.a.batch + i * self.a.rs + l * self.a.cs].into();
                        let y: f64 = b[bi * self.b.batch + l * self.b.rs + j * self.b.cs].into();
                        acc += x * y;
                    }
                    c[bi * self.m * self.n + i * self.n + j] = acc;
                }
            }
        }
    }

    /// The column-major call computing it: row-major `C = A·B` is
    /// column-major `Cᵀ = Bᵀ·Aᵀ`, so cuBLAS gets `B` first.
    pub fn column_major(&self) -> ColumnMajor {
        // An operand with unit column stride is, column-major, its own
        // transpose with leading dimension `rs`: no transposition needed.
        let op = |l: Layout| if l.cs == 1 { (false, l.rs) } else { (true, l.cs) };
        let (tb, ldb) = op(self.b);
        let (ta, lda) = op(self.a);
        ColumnMajor {
            m: self.n,
            n: self.m,
            k: self.k,
            first: (tb, ldb.max(1), self.b.batch),
            second: (ta, lda.max(1), self.a.batch),
            ldc: self.n.max(1),
            stride_c: self.m * self.n,
        }
    }
}

/// A column-major GEMM call: `C (m × n) = op(first) · op(second)`, each
/// operand as (transposed, leading dimension, batch stride).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnMajor {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub first: (bool, usize, usize),
    pub second: (bool, usize, usize),
    pub ldc: usize,
    pub stride_c: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayjit_ir::Shape;

    fn aval(dims: &[usize]) -> AVal {
        AVal::new(DType::F32, Shape::from(dims.to_vec()))
    }

    #[test]
    fn plain_transposed_and_batched_products_are_one_gemm() {
        let mm = Gemm::plan(&DotDims::matmul(), &aval(&[5, 3]), &aval(&[3, 4])).unwrap();
        assert_eq!((mm.m, mm.n, mm.k, mm.batch), (5, 4, 3, 1));
        assert_eq!(mm.a, Layout { rs: 3, cs: 1, batch: 15 });
        // MᵀM: the lhs is read transposed.
        let dims = DotDims { lhs_contract: vec![0], rhs_contract: vec![0], ..DotDims::default() };
        let g = Gemm::plan(&dims, &aval(&[7, 3]), &aval(&[7, 3])).unwrap();
        assert_eq!((g.m, g.n, g.k), (3, 3, 7));
        assert_eq!(g.a, Layout { rs: 1, cs: 3, batch: 21 });
        let cm = g.column_major();
        assert_eq!((cm.first.0, cm.second.0), (false, true));
        // A batch over the leading axis.
        let dims = DotDims { lhs_contract: vec![2], rhs_contract: vec![1], lhs_batch: vec![0], rhs_batch: vec![0] };
        let g = Gemm::plan(&dims, &aval(&[2, 5, 3]), &aval(&[2, 3, 4])).unwrap();
        assert_eq!((g.batch, g.a.batch, g.b.batch), (2, 15, 12));
    }

    #[test]
    fn the_reference_product_follows_the_layouts() {
        let dims = DotDims { lhs_contract: vec![0], rhs_contract: vec![0], ..DotDims::default() };
        let g = Gemm::plan(&dims, &aval(&[2, 2]), &aval(&[2, 2])).unwrap();
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let mut c = [0.0; 4];
        g.reference(&a, &a, &mut c);
        // [[1,2],[3,4]]ᵀ·[[1,2],[3,4]] = [[10,14],[14,20]]
        assert_eq!(c, [10.0, 14.0, 14.0, 20.0]);
    }

    #[test]
    fn contractions_that_need_packing_are_declined() {
        // Contracting axes 0 and 2 of a [2,3,2] lhs: no single stride.
        let dims = DotDims { lhs_contract: vec![0, 2], rhs_contract: vec![0, 1], ..DotDims::default() };
        assert!(Gemm::plan(&dims, &aval(&[2, 3, 2]), &aval(&[2, 2, 5])).is_none());
    }
}
