//! Transposes of eager arrays, deferred. Outside any trace, `x.t()` (any
//! `transpose`) returns a view of `x` with its axes permuted; the permuted
//! copy is made once, the first time something reads the elements. A
//! product (`dot_general`) reading a view reads the viewed array in place,
//! with its dimension numbers remapped: `x.t().matmul(&y)` copies nothing,
//! and `x.t().matmul(&x)` runs as the symmetric product `XᵀX` (half the
//! work). That is what the `transpose-products` and symmetric-product
//! rewrites give traced programs; views give it to eager code.

use crate::array::{Array, Repr};
use crate::eager;
use crate::error::{Error, Result};
use arrayjit_ir::prim::{DotDims, Linalg, ShapeOp};
use arrayjit_ir::{AVal, HostArray, Loc, Prim};
use std::sync::{Arc, OnceLock};

/// `source` with its axes permuted: axis `i` of the view is axis `perm[i]` of `source`.
pub(crate) struct Transposed {
    source: Arc<HostArray>,
    perm: Vec<usize>,
    aval: AVal,
    /// The permuted copy, made on first read.
    value: OnceLock<Arc<HostArray>>,
}

impl Transposed {
    pub fn aval(&self) -> &AVal {
        &self.aval
    }

    /// The elements, permuted: copied the first time, shared after.
    pub fn value(&self, loc: Loc) -> Result<&Arc<HostArray>> {
        if let Some(v) = self.value.get() {
            return Ok(v);
        }
        let prim: Prim = ShapeOp::Transpose { perm: self.perm.clone() }.into();
        let mut outs = eager::execute(&prim, &[self.source.as_ref()], loc)?;
        let v = match (outs.pop(), outs.is_empty()) {
            (Some(v), true) => v,
            _ => return Err(Error::Eval { message: "transpose gave other than one output".into(), loc }),
        };
        // Another thread may have copied it meanwhile; either copy is the same.
        Ok(self.value.get_or_init(|| Arc::new(v)))
    }
}

/// Runs `prim` on eager host operands when a view changes how: a transpose
/// becomes a view, and a product reads its views' arrays in place. `None`
/// when `prim` runs as usual. The operands' types were checked by the caller.
pub(crate) fn execute(prim: &Prim, inputs: &[&Array], loc: Loc) -> Result<Option<Vec<Array>>> {
    match (prim, inputs) {
        (Prim::Shape(ShapeOp::Transpose { perm }), [x]) => Ok(transpose(x, perm)?.map(|v| vec![v])),
        (Prim::Linalg(Linalg::DotGeneral(dims)), [lhs, rhs]) => product(dims, lhs, rhs, loc),
        _ => Ok(None),
    }
}

/// The view `x` transposed by `perm` (`x` itself for a view that undoes
/// another); `None` unless `x` is in host memory.
fn transpose(x: &Array, perm: &[usize]) -> Result<Option<Array>> {
    let (source, perm) = match &x.repr {
        Repr::Value(h) => (h.clone(), perm.to_vec()),
        // Axis i of the result is axis perm[i] of the view, which is axis t.perm[perm[i]] of its array.
        Repr::Transposed(t) => (t.source.clone(), perm.iter().map(|&p| t.perm[p]).collect()),
        Repr::Tracer(_) | Repr::Device(_) => return Ok(None),
    };
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(Some(Array::from_shared(source)));
    }
    let aval = AVal::new(source.dtype(), perm.iter().map(|&p| source.shape()[p]).collect::<Vec<_>>());
    Ok(Some(Array { repr: Repr::Transposed(Arc::new(Transposed { source, perm, aval, value: OnceLock::new() })) }))
}

/// `dot_general` with each view among the operands read as its array,
/// when the remapped dimension numbers give the same product; `None` when
/// no operand is a view that can be read so.
fn product(dims: &DotDims, lhs: &Array, rhs: &Array, loc: Loc) -> Result<Option<Vec<Array>>> {
    let l = in_place(lhs, &dims.lhs_contract, &dims.lhs_batch);
    let r = in_place(rhs, &dims.rhs_contract, &dims.rhs_batch);
    if l.is_none() && r.is_none() {
        return Ok(None);
    }
    let mut dims = dims.clone();
    let lhs_value = operand(lhs, l, &mut dims.lhs_contract, &mut dims.lhs_batch, loc)?;
    let rhs_value = operand(rhs, r, &mut dims.rhs_contract, &mut dims.rhs_batch, loc)?;
    let prim: Prim = Linalg::DotGeneral(dims).into();
    let outs = eager::execute(&prim, &[lhs_value.as_ref(), rhs_value.as_ref()], loc)?;
    Ok(Some(outs.into_iter().map(Array::from_host).collect()))
}

/// The array a product reads for operand `x`: a view's array (its
/// dimension numbers then renamed as that array's), else `x`'s value.
fn operand(
    x: &Array,
    in_place: Option<(Arc<HostArray>, Vec<usize>, Vec<usize>)>,
    contract: &mut Vec<usize>,
    batch: &mut Vec<usize>,
    loc: Loc,
) -> Result<Arc<HostArray>> {
    match in_place {
        Some((source, c, b)) => {
            (*contract, *batch) = (c, b);
            Ok(source)
        }
        None => crate::frame::concrete(x, loc, "operand").cloned(),
    }
}

/// A view's array, and the operand's contracting and batch dimensions
/// renamed as that array's, when the product can read it in place: the
/// free dimensions must keep their order, since they give the result's.
fn in_place(x: &Array, contract: &[usize], batch: &[usize]) -> Option<(Arc<HostArray>, Vec<usize>, Vec<usize>)> {
    let Repr::Transposed(t) = &x.repr else { return None };
    let rename = |dims: &[usize]| -> Option<Vec<usize>> { dims.iter().map(|&d| t.perm.get(d).copied()).collect() };
    let free: Vec<usize> =
        (0..t.perm.len()).filter(|d| !contract.contains(d) && !batch.contains(d)).map(|d| t.perm[d]).collect();
    if free.windows(2).any(|w| w[0] > w[1]) {
        return None;
    }
    Some((t.source.clone(), rename(contract)?, rename(batch)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_view(a: &Array) -> bool {
        matches!(a.repr, Repr::Transposed(_))
    }

    fn matrix(rows: usize, cols: usize, seed: f64) -> Array {
        let data: Vec<f64> = (0..rows * cols).map(|i| ((i as f64 + seed) * 0.37).sin()).collect();
        Array::from_vec(data, [rows, cols])
    }

    /// The product computed by the reference interpreter on copies.
    fn reference(prim: &Prim, args: &[&Array]) -> Vec<f64> {
        let hosts: Vec<HostArray> = args.iter().map(|a| a.to_host()).collect();
        let out = arrayjit_interp::eval_prim(prim, &hosts).expect("the interpreter runs the product");
        crate::array::data_f64(out[0].data())
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn a_transpose_is_a_view_until_read_and_reads_as_the_copy() {
        let x = matrix(3, 5, 0.0);
        let t = x.t();
        assert!(is_view(&t));
        assert_eq!(t.shape(), &[5, 3]);
        let (xs, ts) = (x.to_vec::<f64>(), t.to_vec::<f64>());
        for i in 0..3 {
            for j in 0..5 {
                assert_eq!(ts[j * 3 + i], xs[i * 5 + j]);
            }
        }
        // Elementwise operations read the copy.
        close(&(&t * 2.0).to_vec::<f64>(), &ts.iter().map(|v| v * 2.0).collect::<Vec<_>>());
        // The transpose of a view is the array again.
        assert!(matches!(&t.t().repr, Repr::Value(h) if Arc::ptr_eq(h, x.try_host().expect("host"))));
    }

    #[test]
    fn views_compose() {
        let x = Array::from_vec((0..24).map(f64::from).collect::<Vec<_>>(), [2, 3, 4]);
        let once = x.transpose(&[2, 0, 1]).transpose(&[0, 2, 1]);
        assert!(is_view(&once));
        let copied = Array::from_host(x.transpose(&[2, 0, 1]).to_host()).transpose(&[0, 2, 1]);
        assert_eq!(once.shape(), &[4, 3, 2]);
        assert_eq!(once.to_vec::<f64>(), copied.to_vec::<f64>());
        // A view that undoes another is the array itself.
        assert!(!is_view(&x.transpose(&[2, 0, 1]).transpose(&[1, 2, 0])));
    }

    #[test]
    fn products_of_views_read_the_arrays_in_place_and_agree_with_the_interpreter() {
        let (m, y) = (matrix(7, 4, 0.0), matrix(7, 3, 1.0));
        let prim: Prim = Linalg::DotGeneral(DotDims::matmul()).into();
        let (mt, yt) = (m.t(), y.t());
        let (a, b) = (matrix(4, 6, 2.0), matrix(5, 6, 3.0));
        let bt = b.t();
        // The view on either side, and Mᵀ·M (the symmetric product).
        let got = [mt.matmul(&y), mt.matmul(&m), yt.matmul(&m), a.matmul(&bt)];
        for v in [&mt, &yt, &bt] {
            let Repr::Transposed(t) = &v.repr else { panic!("not a view") };
            assert!(t.value.get().is_none(), "the product copied a view");
        }
        let want = [
            reference(&prim, &[&mt, &y]),
            reference(&prim, &[&mt, &m]),
            reference(&prim, &[&yt, &m]),
            reference(&prim, &[&a, &bt]),
        ];
        for (g, w) in got.iter().zip(&want) {
            close(&g.to_vec::<f64>(), w);
        }
    }

    #[test]
    fn products_of_permuted_batched_and_composed_views_read_in_place() {
        let x = Array::from_vec((0..24).map(|i| (f64::from(i) * 0.7).cos()).collect::<Vec<_>>(), [2, 3, 4]);
        let w = Array::from_vec((0..10).map(|i| f64::from(i) - 4.5).collect::<Vec<_>>(), [2, 5]);
        let contract_last = DotDims { lhs_contract: vec![2], rhs_contract: vec![0], ..DotDims::default() };
        // A cycle of the axes (not its own inverse): view axis i is x's axis [1, 2, 0][i].
        let cycled = x.transpose(&[1, 2, 0]);
        // The same view reached through two transposes.
        let composed = x.transpose(&[1, 0, 2]).transpose(&[0, 2, 1]);
        // A batch axis that is not the array's first: view [2, 3, 4] from y [3, 2, 4].
        let y = Array::from_vec((0..24).map(|i| (f64::from(i) * 0.3).sin()).collect::<Vec<_>>(), [3, 2, 4]);
        let batched = y.transpose(&[1, 0, 2]);
        let z = Array::from_vec((0..40).map(|i| f64::from(i) * 0.1).collect::<Vec<_>>(), [2, 4, 5]);
        let batch_dims =
            DotDims { lhs_contract: vec![2], rhs_contract: vec![1], lhs_batch: vec![0], rhs_batch: vec![0] };
        let got = [
            cycled.dot_general(&w, contract_last.clone()),
            composed.dot_general(&w, contract_last.clone()),
            batched.dot_general(&z, batch_dims.clone()),
        ];
        for v in [&cycled, &composed, &batched] {
            let Repr::Transposed(t) = &v.repr else { panic!("not a view") };
            assert!(t.value.get().is_none(), "the product copied a view");
        }
        let plain: Prim = Linalg::DotGeneral(contract_last).into();
        let want = [
            reference(&plain, &[&cycled, &w]),
            reference(&plain, &[&composed, &w]),
            reference(&Linalg::DotGeneral(batch_dims).into(), &[&batched, &z]),
        ];
        for (g, w) in got.iter().zip(&want) {
            close(&g.to_vec::<f64>(), w);
        }
    }

    #[test]
    fn a_product_that_would_reorder_free_axes_copies_the_view() {
        // A batched product over a view whose free axes are swapped.
        let x = Array::from_vec((0..24).map(|i| f64::from(i) * 0.5).collect::<Vec<_>>(), [2, 3, 4]);
        let v = x.transpose(&[0, 2, 1]);
        let w = Array::from_vec((0..8).map(f64::from).collect::<Vec<_>>(), [2, 4]);
        let dims = DotDims { lhs_contract: vec![1], rhs_contract: vec![1], lhs_batch: vec![0], rhs_batch: vec![0] };
        let prim: Prim = Linalg::DotGeneral(dims.clone()).into();
        close(&v.dot_general(&w, dims).to_vec::<f64>(), &reference(&prim, &[&v, &w]));
        let t = x.transpose(&[2, 1, 0]);
        let dims = DotDims { lhs_contract: vec![1], rhs_contract: vec![0], ..DotDims::default() };
        let u = Array::from_vec((0..3).map(f64::from).collect::<Vec<_>>(), [3]);
        let prim: Prim = Linalg::DotGeneral(dims.clone()).into();
        close(&t.dot_general(&u, dims).to_vec::<f64>(), &reference(&prim, &[&t, &u]));
        let Repr::Transposed(tv) = &t.repr else { panic!("not a view") };
        assert!(tv.value.get().is_some(), "free axes 2, 0 of x would come out reordered: read from the copy");
    }

    #[test]
    fn views_enter_traces_as_their_values() {
        let x = matrix(3, 4, 0.5);
        let t = x.t();
        let zeros = Array::zeros([4, 3], arrayjit_ir::DType::F64);
        let traced = crate::transform::trace(|a: Array| &a + &t, &zeros).expect("traces");
        let out = arrayjit_interp::eval_program(&traced.program, &[zeros.to_host()]).expect("runs");
        assert_eq!(crate::array::data_f64(out[0].data()), t.to_vec::<f64>());
    }
}
