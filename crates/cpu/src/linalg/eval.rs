//! One linear-algebra primitive on host arrays: checks the operands with the
//! primitive's shape rule, allocates the outputs and scratch, and runs the
//! buffer kernels. For eager single ops and tests.

use super::{
    cholesky, cholesky_inverse, cholesky_inverse_scratch, cholesky_scratch, lu, lu_scratch, triangular_solve, DotElem,
    DotPlan, Float, LinalgError, LuOut, MatDims, MemBuffer, MemStack, TriangularSolve,
};
use arrayjit_ir::error::list_avals;
use arrayjit_ir::prim::Linalg;
use arrayjit_ir::{AVal, Data, HostArray};

/// Evaluates `prim` on `ins` with the CPU kernels; the results have the types
/// the primitive's rule gives. Passing the same array twice to a symmetric
/// `dot_general` (`XᵀX`, `XXᵀ`) takes the half-flop path.
///
/// ```
/// use arrayjit_cpu::linalg::eval_linalg;
/// use arrayjit_ir::prim::{DotDims, Linalg};
/// use arrayjit_ir::{Data, HostArray};
///
/// let x = HostArray::new([3, 2], Data::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))?;
/// let xtx = DotDims { lhs_contract: vec![0], rhs_contract: vec![0], ..DotDims::default() };
/// let r = eval_linalg(&Linalg::DotGeneral(xtx), &[&x, &x])?;
/// assert_eq!(r[0], HostArray::new([2, 2], Data::F32(vec![35.0, 44.0, 44.0, 56.0]))?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn eval_linalg(prim: &Linalg, ins: &[&HostArray]) -> Result<Vec<HostArray>, LinalgError> {
    let op = prim.name();
    let avals: Vec<AVal> = ins.iter().map(|a| a.aval()).collect();
    let outs = prim.abstract_eval(&avals)?;
    let unsupported = || LinalgError::Unsupported { op, avals: list_avals(&avals) };
    let out_aval = outs.first().ok_or_else(unsupported)?;
    match (prim, ins) {
        (Linalg::DotGeneral(dims), [a, b]) => {
            let plan = DotPlan::new(dims, &avals[0], &avals[1], std::ptr::eq(*a, *b))?;
            let data = match (a.data(), b.data()) {
                (Data::F32(x), Data::F32(y)) => Data::F32(run_dot(&plan, x, y)?),
                (Data::F64(x), Data::F64(y)) => Data::F64(run_dot(&plan, x, y)?),
                (Data::I32(x), Data::I32(y)) => Data::I32(run_dot(&plan, x, y)?),
                _ => return Err(unsupported()),
            };
            Ok(vec![array(op, out_aval, data)?])
        }
        (Linalg::Cholesky, [a]) => {
            let dims = MatDims::of(a.shape());
            let data = match a.data() {
                Data::F32(x) => Data::F32(run_cholesky(x, dims)?),
                Data::F64(x) => Data::F64(run_cholesky(x, dims)?),
                _ => return Err(unsupported()),
            };
            Ok(vec![array(op, out_aval, data)?])
        }
        (Linalg::CholeskyInverse, [a]) => {
            let dims = MatDims::of(a.shape());
            let data = match a.data() {
                Data::F32(x) => Data::F32(run_inverse(x, dims)?),
                Data::F64(x) => Data::F64(run_inverse(x, dims)?),
                _ => return Err(unsupported()),
            };
            Ok(vec![array(op, out_aval, data)?])
        }
        (&Linalg::TriangularSolve { left_side, lower, transpose_a, unit_diagonal }, [a, b]) => {
            let flags = TriangularSolve { left_side, lower, transpose_a, unit_diagonal };
            let dims = MatDims::of(b.shape());
            let data = match (a.data(), b.data()) {
                (Data::F32(x), Data::F32(y)) => Data::F32(run_solve(x, y, dims, flags)?),
                (Data::F64(x), Data::F64(y)) => Data::F64(run_solve(x, y, dims, flags)?),
                _ => return Err(unsupported()),
            };
            Ok(vec![array(op, out_aval, data)?])
        }
        (Linalg::Lu, [a]) => {
            let dims = MatDims::of(a.shape());
            let (data, pivots, perm) = match a.data() {
                Data::F32(x) => run_lu(x, dims).map(|(l, p, q)| (Data::F32(l), p, q))?,
                Data::F64(x) => run_lu(x, dims).map(|(l, p, q)| (Data::F64(l), p, q))?,
                _ => return Err(unsupported()),
            };
            let (piv_aval, perm_aval) = match &outs[..] {
                [_, p, q] => (p, q),
                _ => return Err(unsupported()),
            };
            Ok(vec![
                array(op, out_aval, data)?,
                array(op, piv_aval, Data::I32(pivots))?,
                array(op, perm_aval, Data::I32(perm))?,
            ])
        }
        _ => Err(unsupported()),
    }
}

/// Wraps a kernel's output as an array of type `aval`.
fn array(op: &'static str, aval: &AVal, data: Data) -> Result<HostArray, LinalgError> {
    let got = data.len();
    HostArray::new(aval.shape.clone(), data).map_err(|e| LinalgError::BufferLength {
        op,
        buffer: "output",
        shapes: aval.to_string(),
        got,
        want: e.need,
    })
}

fn run_dot<T: DotElem + Default>(plan: &DotPlan, x: &[T], y: &[T]) -> Result<Vec<T>, LinalgError> {
    let mut out = vec![T::default(); plan.out_aval().numel()];
    let mut scratch = vec![T::default(); plan.scratch_len()];
    plan.run(x, y, &mut out, &mut scratch)?;
    Ok(out)
}

fn run_cholesky<T: Float>(a: &[T], dims: MatDims) -> Result<Vec<T>, LinalgError> {
    let mut out = vec![T::ZERO; a.len()];
    let mut buf = MemBuffer::new(cholesky_scratch::<T>(dims.rows));
    cholesky(a, &mut out, dims, MemStack::new(&mut buf))?;
    Ok(out)
}

fn run_inverse<T: Float>(a: &[T], dims: MatDims) -> Result<Vec<T>, LinalgError> {
    let mut out = vec![T::ZERO; a.len()];
    let mut buf = MemBuffer::new(cholesky_inverse_scratch::<T>(dims.rows));
    cholesky_inverse(a, &mut out, dims, MemStack::new(&mut buf))?;
    Ok(out)
}

fn run_solve<T: Float>(a: &[T], b: &[T], dims: MatDims, flags: TriangularSolve) -> Result<Vec<T>, LinalgError> {
    let mut out = vec![T::ZERO; b.len()];
    triangular_solve(a, b, &mut out, dims, flags)?;
    Ok(out)
}

/// The packed factors, the pivots and the permutation.
type LuParts<T> = (Vec<T>, Vec<i32>, Vec<i32>);

fn run_lu<T: Float>(a: &[T], dims: MatDims) -> Result<LuParts<T>, LinalgError> {
    let mut lu_out = vec![T::ZERO; a.len()];
    let mut pivots = vec![0; dims.batch * dims.rows.min(dims.cols)];
    let mut perm = vec![0; dims.batch * dims.rows];
    let mut buf = MemBuffer::new(lu_scratch::<T>(dims));
    lu(a, dims, LuOut { lu: &mut lu_out, pivots: &mut pivots, perm: &mut perm }, MemStack::new(&mut buf))?;
    Ok((lu_out, pivots, perm))
}
