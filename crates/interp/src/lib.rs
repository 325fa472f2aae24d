//! The reference interpreter of arrayjit: evaluates any program on host arrays
//! with plain loops, in every dtype and for every primitive. It is the oracle
//! that every compiled backend is tested against, so it is written for clarity
//! and correctness, not speed.
//!
//! What a backend compared with it should expect:
//! - `i32` arithmetic wraps; `div`/`rem` by zero follow XLA (`x / 0 = -1`, `x rem 0 = x`).
//! - `f32` elementwise functions are computed in `f64` and rounded once, so the
//!   basic operations are bit-exact IEEE `f32` and the transcendental ones
//!   (nearly always) correctly rounded; compare backends with a tolerance.
//! - sums, products and dot products of `f32` accumulate in `f64` and round once;
//!   cholesky, triangular_solve and lu compute in `f64` and round each result once.
//! - NaN propagates through `max`/`min` and their reductions; argmax/argmin pick
//!   the first NaN, else the first extremum.
//!
//! Each primitive family's file documents the rest of its semantics.
//! [`eval_program_nudged`] evaluates with every floating-point result moved
//! by a few ulps and its zeros signed at random: a program whose results
//! move beyond a tolerance under it is ill-conditioned at those inputs, and
//! differential tests do not count a backend's difference there.
//!
//! ```
//! use arrayjit_interp::{eval_prim, eval_program};
//! use arrayjit_ir::{prim::Elementwise, AVal, DType, Data, HostArray, Loc, ProgramBuilder};
//!
//! let x = HostArray::new([3], Data::F32(vec![1.0, 2.0, 3.0])).unwrap();
//! let y = eval_prim(&Elementwise::Mul.into(), &[x.clone(), x.clone()]).unwrap();
//! assert_eq!(y[0], HostArray::new([3], Data::F32(vec![1.0, 4.0, 9.0])).unwrap());
//!
//! // The same as a program: f(x) = -x.
//! let mut b = ProgramBuilder::new();
//! let v = b.add_input(AVal::new(DType::F32, [3]));
//! let out = Elementwise::Neg.abstract_eval(&[b.aval(v).clone()]).unwrap();
//! let r = b.add_eqn(Elementwise::Neg.into(), vec![v.into()], out, Loc::default());
//! let p = b.finish(vec![r[0].into()]);
//! let z = eval_program(&p, &[x]).unwrap();
//! assert_eq!(z[0], HostArray::new([3], Data::F32(vec![-1.0, -2.0, -3.0])).unwrap());
//! ```

mod control;
mod elementwise;
mod index;
mod linalg;
mod nudge;
mod reduce;
mod shape;
mod typed;

use arrayjit_ir::{AVal, HostArray, Prim, Program, TypeError, Var};

pub use nudge::{eval_program_nudged, moved_by_nudges};

/// Why a program or primitive could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The primitive's shape/dtype rule rejected the operands.
    #[error(transparent)]
    Type(#[from] TypeError),
    /// A program was called with the wrong number of arguments.
    #[error("the program takes {expected} argument(s) but was given {given}")]
    ArgCount { expected: usize, given: usize },
    /// A program argument does not have the type of the program's input.
    #[error("program argument {index} should be {expected} but is {given}")]
    ArgType { index: usize, expected: AVal, given: AVal },
    /// An equation (or the program's outputs) reads a variable that nothing defined before it.
    #[error("{user} reads {var:?} before it is defined")]
    Undefined { var: Var, user: String },
    /// An equation's declared output types differ from what evaluating it gave
    /// (a program the typechecker would reject).
    #[error("equation {index} ({prim}) declares outputs {declared} but evaluating it gives {got}")]
    Declared { index: usize, prim: &'static str, declared: String, got: String },
    /// An equation failed; `source` says why.
    #[error("equation {index} ({prim}) at {loc}: {source}")]
    InEquation { index: usize, prim: &'static str, loc: String, source: Box<EvalError> },
    /// A primitive that only exists inside a transformation has no value.
    #[error("{op}: {message}")]
    NotEvaluable { op: &'static str, message: &'static str },
    /// A kernel met operands its rule should have excluded: a bug in this crate.
    #[error("{op}: internal error: {message}")]
    Internal { op: &'static str, message: String },
}

/// Evaluates a program on concrete arguments.
///
/// Each argument's type must equal the program's input type (no promotion):
/// [`EvalError::ArgCount`] / [`EvalError::ArgType`] otherwise. Constants are
/// bound, literals become rank-0 arrays, the equations run in order (`call`
/// evaluates its body recursively) and the outputs are returned.
pub fn eval_program(p: &Program, args: &[HostArray]) -> Result<Vec<HostArray>, EvalError> {
    let refs: Vec<&HostArray> = args.iter().collect();
    check_args(p, &refs)?;
    control::run_program(p, &refs)
}

/// Evaluates one primitive on concrete operands.
///
/// The primitive's shape rule runs first, so operands it does not accept give
/// [`EvalError::Type`] rather than a panic; the results have the rule's types.
pub fn eval_prim(prim: &Prim, args: &[HostArray]) -> Result<Vec<HostArray>, EvalError> {
    let refs: Vec<&HostArray> = args.iter().collect();
    eval_prim_refs(prim, &refs)
}

/// [`eval_prim`] on borrowed operands (what the program interpreter holds).
pub(crate) fn eval_prim_refs(prim: &Prim, args: &[&HostArray]) -> Result<Vec<HostArray>, EvalError> {
    let in_avals: Vec<AVal> = args.iter().map(|a| a.aval()).collect();
    let out_avals = prim.abstract_eval(&in_avals)?;
    let results = match prim {
        Prim::Elementwise(op) => vec![elementwise::eval(*op, args, single(prim, &out_avals)?)?],
        Prim::Shape(op) => vec![shape::eval(op, args, single(prim, &out_avals)?)?],
        Prim::Reduce(op) => vec![reduce::eval(op, args, single(prim, &out_avals)?)?],
        Prim::Linalg(op) => linalg::eval(op, args, &out_avals)?,
        Prim::Control(op) => control::eval(op, args)?,
    };
    debug_assert!(
        results.iter().map(|r| r.aval()).eq(out_avals.iter().cloned()),
        "{}: results {:?} differ from the rule's {:?}",
        prim.name(),
        results.iter().map(|r| r.aval()).collect::<Vec<_>>(),
        out_avals
    );
    Ok(results)
}

/// The only output type of a single-output primitive.
fn single<'a>(prim: &Prim, outs: &'a [AVal]) -> Result<&'a AVal, EvalError> {
    match outs {
        [one] => Ok(one),
        _ => Err(EvalError::Internal {
            op: prim.name(),
            message: format!("the rule gave {} outputs where one was expected", outs.len()),
        }),
    }
}

/// Checks program arguments against the program's input types.
fn check_args(p: &Program, args: &[&HostArray]) -> Result<(), EvalError> {
    let want = p.in_avals();
    if want.len() != args.len() {
        return Err(EvalError::ArgCount { expected: want.len(), given: args.len() });
    }
    for (index, (expected, arg)) in want.into_iter().zip(args).enumerate() {
        let given = arg.aval();
        if given != expected {
            return Err(EvalError::ArgType { index, expected, given });
        }
    }
    Ok(())
}

/// Builders shared by the unit tests of every module.
#[cfg(test)]
pub(crate) mod test_util {
    use arrayjit_ir::{Data, HostArray, Prim};

    pub fn f32s(shape: &[usize], v: &[f32]) -> HostArray {
        HostArray::new(shape.to_vec(), Data::F32(v.to_vec())).unwrap()
    }
    pub fn f64s(shape: &[usize], v: &[f64]) -> HostArray {
        HostArray::new(shape.to_vec(), Data::F64(v.to_vec())).unwrap()
    }
    pub fn i32s(shape: &[usize], v: &[i32]) -> HostArray {
        HostArray::new(shape.to_vec(), Data::I32(v.to_vec())).unwrap()
    }
    pub fn bools(shape: &[usize], v: &[bool]) -> HostArray {
        HostArray::new(shape.to_vec(), Data::Bool(v.to_vec())).unwrap()
    }
    /// A float array of dtype `d` holding `v` (rounded to f32 where `d` is f32).
    pub fn fl(d: arrayjit_ir::DType, shape: &[usize], v: &[f64]) -> HostArray {
        let scalars = v.iter().map(|&x| arrayjit_ir::Scalar::F64(x));
        HostArray::new(shape.to_vec(), Data::from_scalars(d, scalars)).unwrap()
    }

    /// Evaluates a single-output primitive, panicking on error (tests only).
    pub fn eval1<const N: usize>(prim: impl Into<Prim>, args: [HostArray; N]) -> HostArray {
        let prim = prim.into();
        let mut r = crate::eval_prim(&prim, &args).unwrap_or_else(|e| panic!("{}: {e}", prim.name()));
        assert_eq!(r.len(), 1);
        r.remove(0)
    }

    /// The elements as f64 (tests compare values of any float dtype this way).
    pub fn vals(a: &HostArray) -> Vec<f64> {
        (0..a.numel()).map(|i| a.data().get(i).as_f64()).collect()
    }

    /// Asserts elementwise closeness (relative to max(1, |expected|)).
    pub fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "lengths differ: {got:?} vs {want:?}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * w.abs().max(1.0), "element {i}: got {g}, want {w}\n{got:?}\n{want:?}");
        }
    }

    /// A small deterministic pseudo-random generator (tests need no `rand`).
    pub struct Lcg(pub u64);

    impl Lcg {
        /// A value uniform in [-1, 1).
        pub fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        }
        pub fn vec(&mut self, n: usize) -> Vec<f64> {
            (0..n).map(|_| self.next()).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use arrayjit_ir::prim::elementwise::SIMPLE;
    use arrayjit_ir::prim::{Control, DotDims, Elementwise, Linalg, Reduction, ShapeOp};
    use arrayjit_ir::{AVal, DType, Loc, ProgramBuilder, Shape};
    use std::sync::Arc;

    /// A sample of every family, with parameters that fit some of the operand pool.
    fn sample_prims() -> Vec<Prim> {
        let mut prims: Vec<Prim> = SIMPLE.iter().map(|&e| e.into()).collect();
        prims.extend([Elementwise::Select, Elementwise::IntegerPow { exponent: 3 }].map(Prim::from));
        prims.extend([Elementwise::IntegerPow { exponent: -2 }].map(Prim::from));
        prims.extend(DType::ALL.map(|to| Prim::from(Elementwise::Convert { to })));
        prims.extend(
            [
                ShapeOp::BroadcastInDim { shape: Shape::from([2, 3]), dims: vec![1] },
                ShapeOp::BroadcastInDim { shape: Shape::from([2, 3]), dims: vec![] },
                ShapeOp::Reshape { shape: Shape::from([6]) },
                ShapeOp::Reshape { shape: Shape::from([0, 5]) },
                ShapeOp::Transpose { perm: vec![1, 0] },
                ShapeOp::Squeeze { axes: vec![] },
                ShapeOp::ExpandDims { axes: vec![0] },
                ShapeOp::Slice { start: vec![0, 1], limit: vec![2, 3], strides: vec![1, 2] },
                ShapeOp::DynamicSlice { sizes: vec![1, 2] },
                ShapeOp::DynamicSlice { sizes: vec![] },
                ShapeOp::DynamicUpdateSlice,
                ShapeOp::Concatenate { axis: 0 },
                ShapeOp::Pad { low: vec![1, -1], high: vec![0, 2], interior: vec![1, 0] },
                ShapeOp::Pad { low: vec![2], high: vec![-1], interior: vec![2] },
                ShapeOp::Iota { dtype: DType::I32, shape: Shape::from([2, 3]), axis: 1 },
            ]
            .map(Prim::from),
        );
        for axes in [vec![], vec![0], vec![1], vec![0, 1]] {
            prims.push(Reduction::Sum { axes: axes.clone() }.into());
            prims.push(Reduction::Prod { axes: axes.clone() }.into());
            prims.push(Reduction::Max { axes: axes.clone() }.into());
            prims.push(Reduction::Min { axes }.into());
        }
        prims.extend([Reduction::ArgMax { axis: 0 }, Reduction::ArgMin { axis: 1 }].map(Prim::from));
        prims.extend([Linalg::DotGeneral(DotDims::matmul()), Linalg::DotGeneral(DotDims::default())].map(Prim::from));
        prims.extend([Linalg::Cholesky, Linalg::CholeskyInverse, Linalg::Lu].map(Prim::from));
        for flags in 0..16 {
            let f = |bit: u32| flags & (1 << bit) != 0;
            let op = Linalg::TriangularSolve { left_side: f(0), lower: f(1), transpose_a: f(2), unit_diagonal: f(3) };
            prims.push(op.into());
        }
        let mut b = ProgramBuilder::new();
        let x = b.add_input(AVal::new(DType::F32, [2, 3]));
        let out = Elementwise::Exp.abstract_eval(&[b.aval(x).clone()]).unwrap_or_default();
        let y = b.add_eqn(Elementwise::Exp.into(), vec![x.into()], out, Loc::default());
        prims.push(Control::Call { body: Arc::new(b.finish(vec![y[0].into()])) }.into());
        prims
    }

    fn operand_pool() -> Vec<HostArray> {
        let mut rng = Lcg(5);
        vec![
            f32s(&[], &[0.5]),
            f32s(&[0], &[]),
            f32s(&[2, 3], &rng.vec(6).iter().map(|&v| v as f32).collect::<Vec<_>>()),
            f64s(&[2, 2], &[4.0, 1.0, 1.0, 3.0]),
            f64s(&[2, 3], &rng.vec(6)),
            i32s(&[2, 3], &[1, -2, 3, 0, i32::MIN, 7]),
            i32s(&[], &[1]),
            bools(&[2, 3], &[true, false, true, true, false, false]),
            bools(&[], &[true]),
        ]
    }

    /// Every sampled primitive on every operand list of up to three operands
    /// from the pool: the rule rejects, or the kernel gives the rule's types
    /// (debug-asserted in `eval_prim`); nothing panics.
    #[test]
    fn never_panics_and_results_match_the_rule() {
        let pool = operand_pool();
        let mut lists: Vec<Vec<HostArray>> = vec![vec![]];
        for _ in 0..3 {
            let longer: Vec<Vec<HostArray>> = lists
                .iter()
                .filter(|l| l.len() == lists.last().map_or(0, |x| x.len()))
                .flat_map(|l| pool.iter().map(move |a| [l.clone(), vec![a.clone()]].concat()))
                .collect();
            lists.extend(longer);
        }
        let (mut accepted, mut rejected) = (0, 0);
        for prim in sample_prims() {
            for args in &lists {
                let avals: Vec<AVal> = args.iter().map(|a| a.aval()).collect();
                match (prim.abstract_eval(&avals), eval_prim(&prim, args)) {
                    (Ok(want), Ok(got)) => {
                        assert_eq!(got.iter().map(|g| g.aval()).collect::<Vec<_>>(), want);
                        accepted += 1;
                    }
                    (Err(e), Err(EvalError::Type(t))) => {
                        assert_eq!(e, t);
                        rejected += 1;
                    }
                    (rule, got) => panic!("{} on {avals:?}: rule {rule:?} but eval {got:?}", prim.name()),
                }
            }
        }
        assert!(accepted > 500 && rejected > 1000, "{accepted} accepted, {rejected} rejected");
    }
}
