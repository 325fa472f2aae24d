//! Tracing a Rust function into a program: the first step of every
//! transformation, and `make_jaxpr`, which shows its result.

use crate::array::{caller, Array};
use crate::error::{catch_abort, Error, Result};
use crate::frame::push_frame;
use crate::tree::{tree_flatten, tree_unflatten, Tree, TreeDef};
use arrayjit_ir::{AVal, Loc, Program};

/// A traced function: its program, and how its arguments and results map to
/// the program's inputs and outputs.
#[derive(Clone, Debug)]
pub struct Traced {
    /// Inputs are the flattened arguments, then `captured`.
    pub program: Program,
    /// Tracers of enclosing traces that the function closed over; they are the
    /// program's last inputs (empty when tracing from eager code).
    pub captured: Vec<Array>,
    pub in_def: TreeDef,
    pub out_def: TreeDef,
}

/// What a traced function may return: a tree, or a `Result` of one (so that
/// functions built by transformations, which return `Result`, compose: an `Err`
/// aborts the enclosing trace with that error).
pub trait TraceOutput {
    type Tree: Tree;
    fn into_tree(self) -> Result<Self::Tree>;
}

impl<T: Tree> TraceOutput for T {
    type Tree = T;
    fn into_tree(self) -> Result<T> {
        Ok(self)
    }
}

impl<T: Tree> TraceOutput for Result<T> {
    type Tree = T;
    fn into_tree(self) -> Result<T> {
        self
    }
}

/// Traces `f` on abstract arguments with the structure `in_def` and leaf types `in_avals`.
pub fn trace_avals<In: Tree, Out: TraceOutput>(
    f: impl FnOnce(In) -> Out,
    in_def: &TreeDef,
    in_avals: &[AVal],
    loc: Loc,
) -> Result<Traced> {
    let paths = in_def.leaf_paths();
    let (guard, inputs) = push_frame(in_avals, &paths);
    let args: In = tree_unflatten(in_def, inputs).map_err(Error::from)?;
    let out = catch_abort(move || f(args).into_tree())??;
    let (leaves, out_def) = tree_flatten(&out);
    let (program, captured) = guard.finish(&leaves, loc)?;
    Ok(Traced { program, captured, in_def: in_def.clone(), out_def })
}

/// Traces `f` on arguments shaped like `example` (only their structure, dtypes
/// and shapes are used).
#[track_caller]
pub fn trace<In: Tree, Out: TraceOutput>(f: impl FnOnce(In) -> Out, example: &In) -> Result<Traced> {
    let loc = caller();
    let (leaves, def) = tree_flatten(example);
    let avals: Vec<AVal> = leaves.iter().map(Array::aval).collect();
    trace_avals(f, &def, &avals, loc)
}

/// The program `f` stages out for arguments like `example` (JAX's `make_jaxpr`).
/// Its `Display` is the readable text form.
///
/// ```
/// use arrayjit_trace::{make_jaxpr, Array};
/// let x = Array::from_vec(vec![1.0f32, 2.0, 3.0], [3]);
/// let p = make_jaxpr(|x: Array| (x.exp() * 2.0).sum(..), &x).unwrap();
/// assert_eq!(p.eqns.len(), 3);
/// ```
#[track_caller]
pub fn make_jaxpr<In: Tree, Out: TraceOutput>(f: impl FnOnce(In) -> Out, example: &In) -> Result<Program> {
    trace(f, example).map(|t| t.program)
}
