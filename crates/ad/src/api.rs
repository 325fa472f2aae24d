//! The differentiation API: `vjp`, `jvp`, `grad`, `value_and_grad` (with
//! `argnums` and `has_aux` forms), `jacfwd`, `jacrev` and `hvp`.
//!
//! Each function traces the user's function, transforms the program, and
//! evaluates the result in the current context: inlined into an enclosing
//! trace (so `grad(grad(f))` and `grad` under `jit` compose) or run eagerly.

use crate::argnums::Argnums;
use crate::jvp::{jvp_program, list_def};
use crate::linearize::linearize;
use crate::rules::locate;
use crate::transpose::transpose_program;
use arrayjit_ir::{dce, AVal, DType, Loc, Program};
use arrayjit_trace::bind::apply_program;
use arrayjit_trace::{
    lax, trace_avals, tree_flatten, tree_unflatten, Array, Error, Result, TraceOutput, Traced, Tree, TreeDef,
};
use std::cell::RefCell;
use std::marker::PhantomData;
use std::panic::Location;

/// The user's call site: every public function here is `#[track_caller]`, and
/// those that return closures capture it when the transformation is created,
/// so that errors raised later (when the closure runs) still point at it.
#[track_caller]
fn here() -> Loc {
    Loc(Some(Location::caller()))
}

/// Traces `f` on arguments like `args`, attributing the trace to `loc`.
fn trace_at<In: Tree, R: TraceOutput>(f: impl FnOnce(In) -> R, args: &In, loc: Loc) -> Result<Traced> {
    let (leaves, def) = tree_flatten(args);
    let avals: Vec<AVal> = leaves.iter().map(Array::aval).collect();
    trace_avals(f, &def, &avals, loc)
}

/// Whether `p` (or a program it holds) has the tangents of a `custom_vjp`,
/// which forward mode cannot evaluate.
fn holds_custom_vjp_tangent(p: &Program) -> bool {
    p.eqns.iter().any(|e| match &e.prim {
        arrayjit_ir::Prim::Control(c) => {
            matches!(c, arrayjit_ir::prim::Control::CustomVjpTangent { .. })
                || c.sub_programs().iter().any(|b| holds_custom_vjp_tangent(b))
        }
        _ => false,
    })
}

fn invalid(message: String, loc: Loc) -> Error {
    Error::Invalid { message, loc }
}

/// The pullback of [`vjp`]: maps output cotangents to input cotangents.
pub struct Pullback<In> {
    transposed: Program,
    residuals: Vec<Array>,
    in_def: TreeDef,
    in_avals: Vec<AVal>,
    diff: Vec<bool>,
    out_def: TreeDef,
    out_avals: Vec<AVal>,
    _in: PhantomData<fn() -> In>,
}

impl<In: Tree> Pullback<In> {
    /// The cotangent of the inputs for an output cotangent `ct` (a tree shaped
    /// like the outputs; entries of integer outputs are ignored).
    #[track_caller]
    pub fn call<Ct: Tree>(&self, ct: &Ct) -> Result<In> {
        let loc = here();
        self.call_at(ct, loc).map_err(|e| locate(e, loc))
    }

    fn call_at<Ct: Tree>(&self, ct: &Ct, loc: Loc) -> Result<In> {
        let (leaves, def) = tree_flatten(ct);
        if def != self.out_def {
            return Err(Error::Tree {
                message: format!("the cotangent has structure {def} but the outputs have {}", self.out_def),
                loc,
            });
        }
        let mut args = self.residuals.clone();
        for (i, (c, a)) in leaves.iter().zip(&self.out_avals).enumerate() {
            if c.aval() != *a {
                return Err(invalid(format!("the cotangent of output {i} is {} but the output is {a}", c.aval()), loc));
            }
            if a.dtype.is_float() {
                args.push(c.clone());
            }
        }
        let mut cts = apply_program(&self.transposed, &args, loc)?.into_iter();
        let mut out = Vec::with_capacity(self.in_avals.len());
        for (a, d) in self.in_avals.iter().zip(&self.diff) {
            let c = if *d { cts.next() } else { None };
            out.push(match c {
                Some(c) => c,
                None => lax::zeros_like(a)?,
            });
        }
        tree_unflatten(&self.in_def, out).map_err(Error::from)
    }
}

/// Reverse mode: the outputs of `f` at `primals`, and the pullback that maps
/// output cotangents to input cotangents. Float leaves are differentiated;
/// integer and boolean leaves get zero cotangents.
#[track_caller]
pub fn vjp<In: Tree, R: TraceOutput>(f: impl FnOnce(In) -> R, primals: &In) -> Result<(R::Tree, Pullback<In>)> {
    let loc = here();
    vjp_at(f, primals, loc).map_err(|e| locate(e, loc))
}

fn vjp_at<In: Tree, R: TraceOutput>(
    f: impl FnOnce(In) -> R,
    primals: &In,
    loc: Loc,
) -> Result<(R::Tree, Pullback<In>)> {
    let traced = trace_at(f, primals, loc)?;
    let (leaves, in_def) = tree_flatten(primals);
    let in_avals: Vec<AVal> = leaves.iter().map(Array::aval).collect();
    let diff: Vec<bool> = in_avals.iter().map(|a| a.dtype.is_float()).collect();
    let mut full_diff = diff.clone();
    full_diff.extend(std::iter::repeat_n(false, traced.captured.len()));
    let lin = linearize(&traced.program, &full_diff)?;
    let mut args = leaves;
    args.extend(traced.captured.iter().cloned());
    let mut outs = apply_program(&lin.primal, &args, loc)?;
    let n_out = traced.program.outputs.len();
    let residuals = outs.split_off(n_out);
    let out_avals = traced.program.out_avals();
    let ct_mask: Vec<bool> = out_avals.iter().map(|a| a.dtype.is_float()).collect();
    let transposed = transpose_program(&lin.linear, lin.num_residuals, &ct_mask)?;
    let out = tree_unflatten(&traced.out_def, outs).map_err(Error::from)?;
    let pb = Pullback {
        transposed,
        residuals,
        in_def,
        in_avals,
        diff,
        out_def: traced.out_def,
        out_avals,
        _in: PhantomData,
    };
    Ok((out, pb))
}

/// Forward mode: the outputs of `f` at `primals` and their tangents along
/// `tangents` (a tree shaped like `primals`; integer leaves are ignored).
#[track_caller]
pub fn jvp<In: Tree, R: TraceOutput>(
    f: impl FnOnce(In) -> R,
    primals: &In,
    tangents: &In,
) -> Result<(R::Tree, R::Tree)> {
    let loc = here();
    jvp_at(f, primals, tangents, loc).map_err(|e| locate(e, loc))
}

fn jvp_at<In: Tree, R: TraceOutput>(
    f: impl FnOnce(In) -> R,
    primals: &In,
    tangents: &In,
    loc: Loc,
) -> Result<(R::Tree, R::Tree)> {
    let traced = trace_at(f, primals, loc)?;
    let (leaves, def) = tree_flatten(primals);
    let (tleaves, tdef) = tree_flatten(tangents);
    if def != tdef {
        return Err(Error::Tree {
            message: format!("the tangents have structure {tdef} but the primals have {def}"),
            loc,
        });
    }
    let mut diff = Vec::new();
    let mut args = leaves.clone();
    args.extend(traced.captured.iter().cloned());
    let mut tans = Vec::new();
    for (i, (p, t)) in leaves.iter().zip(&tleaves).enumerate() {
        let d = p.dtype().is_float();
        if d && t.aval() != p.aval() {
            return Err(invalid(
                format!("the tangent of input {i} is {} but the input is {}", t.aval(), p.aval()),
                loc,
            ));
        }
        diff.push(d);
        if d {
            tans.push(t.clone());
        }
    }
    diff.extend(std::iter::repeat_n(false, traced.captured.len()));
    let j = dce(&jvp_program(&traced.program, &diff)?);
    if holds_custom_vjp_tangent(&j) {
        return Err(Error::Transform {
            op: "jvp".into(),
            message: arrayjit_ir::prim::control::CUSTOM_VJP_FORWARD.into(),
            loc,
        });
    }
    args.extend(tans);
    let mut outs = apply_program(&j, &args, loc)?;
    let touts = outs.split_off(traced.program.outputs.len());
    let out = tree_unflatten(&traced.out_def, outs).map_err(Error::from)?;
    let tout = tree_unflatten(&traced.out_def, touts).map_err(Error::from)?;
    Ok((out, tout))
}

/// The core of the `grad` family, built as one program so that its text is
/// clean and dead work is removed: outputs of `f` (all leaves) then the
/// gradients of the leaves marked in `select` (others get zeros). Errors
/// without a location of their own are attributed to `loc`, where the user
/// created the transformation.
fn value_and_grad_leaves<In: Tree, R: TraceOutput>(
    f: &impl Fn(In) -> R,
    args: &In,
    select: &dyn Fn(&TreeDef) -> Result<Vec<bool>>,
    has_aux: bool,
    want_value: bool,
    loc: Loc,
) -> Result<(Vec<Array>, TreeDef, Vec<Array>)> {
    grad_leaves_at(f, args, select, has_aux, want_value, loc).map_err(|e| locate(e, loc))
}

fn grad_leaves_at<In: Tree, R: TraceOutput>(
    f: &impl Fn(In) -> R,
    args: &In,
    select: &dyn Fn(&TreeDef) -> Result<Vec<bool>>,
    has_aux: bool,
    want_value: bool,
    loc: Loc,
) -> Result<(Vec<Array>, TreeDef, Vec<Array>)> {
    let (leaves, in_def) = tree_flatten(args);
    let in_avals: Vec<AVal> = leaves.iter().map(Array::aval).collect();
    let wanted = select(&in_def)?;
    let out_def_cell: RefCell<Option<TreeDef>> = RefCell::new(None);
    let g = trace_avals(
        |xs: Vec<Array>| -> Result<Vec<Array>> {
            let a: In = tree_unflatten(&in_def, xs.clone()).map_err(Error::from)?;
            let traced = trace_at(f, &a, loc)?;
            let out_avals = traced.program.out_avals();
            check_loss(&traced.out_def, &out_avals, has_aux, loc)?;
            *out_def_cell.borrow_mut() = Some(traced.out_def.clone());
            let diff: Vec<bool> = in_avals.iter().zip(&wanted).map(|(a, w)| *w && a.dtype.is_float()).collect();
            let mut full = diff.clone();
            full.extend(std::iter::repeat_n(false, traced.captured.len()));
            let lin = linearize(&traced.program, &full)?;
            let mut args = xs;
            args.extend(traced.captured.iter().cloned());
            let mut outs = apply_program(&lin.primal, &args, loc)?;
            let residuals = outs.split_off(out_avals.len());
            let mut ct_mask = vec![false; out_avals.len()];
            ct_mask[0] = true;
            let t = transpose_program(&lin.linear, lin.num_residuals, &ct_mask)?;
            let mut targs = residuals;
            targs.push(lax::scalar(1.0, out_avals[0].dtype));
            let mut cts = apply_program(&t, &targs, loc)?.into_iter();
            let mut grads = Vec::new();
            for (a, d) in in_avals.iter().zip(&diff) {
                let c = if *d { cts.next() } else { None };
                grads.push(match c {
                    Some(c) => c,
                    None => lax::zeros_like(a)?,
                });
            }
            // Without the value, only the auxiliary outputs are kept (DCE drops the rest).
            let mut result = if want_value { outs } else { outs.split_off(if has_aux { 1 } else { outs.len() }) };
            result.extend(grads);
            Ok(result)
        },
        &list_def(in_avals.len()),
        &in_avals,
        loc,
    )?;
    let out_def = out_def_cell.into_inner().ok_or_else(|| invalid("the function was not traced".into(), loc))?;
    let program = dce(&g.program);
    let mut args = leaves;
    args.extend(g.captured);
    let mut outs = apply_program(&program, &args, loc)?;
    let n_kept = if want_value {
        out_def.num_leaves()
    } else if has_aux {
        out_def.num_leaves() - 1
    } else {
        0
    };
    let grads = outs.split_off(n_kept);
    Ok((outs, out_def, grads))
}

fn check_loss(def: &TreeDef, avals: &[AVal], has_aux: bool, loc: Loc) -> Result<()> {
    let ok_shape = if has_aux {
        matches!(def, TreeDef::Tuple(c) if c.len() == 2 && c[0] == TreeDef::Leaf)
    } else {
        *def == TreeDef::Leaf
    };
    if !ok_shape {
        let want = if has_aux { "a pair (loss, aux) with an array loss" } else { "one array" };
        return Err(invalid(format!("the differentiated function must return {want}, but it returned {def}"), loc));
    }
    let a = &avals[0];
    if a.rank() != 0 || !a.dtype.is_float() {
        return Err(invalid(
            format!("grad needs a scalar float loss, but the function returned {a}; reduce it (e.g. with sum) first"),
            loc,
        ));
    }
    Ok(())
}

fn all_leaves(def: &TreeDef) -> Result<Vec<bool>> {
    Ok(vec![true; def.num_leaves()])
}

fn positions_mask(def: &TreeDef, positions: &[usize], loc: Loc) -> Result<Vec<bool>> {
    let TreeDef::Tuple(children) = def else {
        return Err(invalid(format!("argnums needs a tuple argument, got {def}"), loc));
    };
    let mut mask = Vec::new();
    for (i, c) in children.iter().enumerate() {
        mask.extend(std::iter::repeat_n(positions.contains(&i), c.num_leaves()));
    }
    Ok(mask)
}

fn rebuild<In: Tree>(args: &In, grads: Vec<Array>) -> Result<In> {
    let (_, def) = tree_flatten(args);
    tree_unflatten(&def, grads).map_err(Error::from)
}

/// The gradient of a scalar-valued `f`, with respect to all of its (float)
/// arguments, as a function: `grad(f)(x)` has the structure of `x`.
#[track_caller]
pub fn grad<In: Tree, R: TraceOutput<Tree = Array>>(f: impl Fn(In) -> R) -> impl Fn(In) -> Result<In> {
    let loc = here();
    move |x: In| {
        let (_, _, g) = value_and_grad_leaves(&f, &x, &all_leaves, false, false, loc)?;
        rebuild(&x, g)
    }
}

/// The value and the gradient of a scalar-valued `f`.
#[track_caller]
pub fn value_and_grad<In: Tree, R: TraceOutput<Tree = Array>>(
    f: impl Fn(In) -> R,
) -> impl Fn(In) -> Result<(Array, In)> {
    let loc = here();
    move |x: In| {
        let (mut outs, _, g) = value_and_grad_leaves(&f, &x, &all_leaves, false, true, loc)?;
        Ok((outs.remove(0), rebuild(&x, g)?))
    }
}

/// The gradient of `f` returning `(loss, aux)`, and the auxiliary value.
#[track_caller]
pub fn grad_aux<In: Tree, Aux: Tree, R: TraceOutput<Tree = (Array, Aux)>>(
    f: impl Fn(In) -> R,
) -> impl Fn(In) -> Result<(In, Aux)> {
    let loc = here();
    move |x: In| {
        let (outs, def, g) = value_and_grad_leaves(&f, &x, &all_leaves, true, false, loc)?;
        let TreeDef::Tuple(parts) = &def else {
            return Err(Error::Tree { message: format!("expected (loss, aux), got {def}"), loc: Loc::default() });
        };
        let aux: Aux = tree_unflatten(&parts[1], outs).map_err(Error::from)?;
        Ok((rebuild(&x, g)?, aux))
    }
}

/// `((loss, aux), gradient)` of `f` returning `(loss, aux)`.
#[track_caller]
pub fn value_and_grad_aux<In: Tree, Aux: Tree, R: TraceOutput<Tree = (Array, Aux)>>(
    f: impl Fn(In) -> R,
) -> impl Fn(In) -> Result<((Array, Aux), In)> {
    let loc = here();
    move |x: In| {
        let (outs, def, g) = value_and_grad_leaves(&f, &x, &all_leaves, true, true, loc)?;
        Ok((tree_unflatten(&def, outs).map_err(Error::from)?, rebuild(&x, g)?))
    }
}

/// The gradient with respect to selected elements of a tuple argument
/// (JAX's `argnums`): `grad_argnums(f, Arg::<1>)((a, b))` is the gradient in `b`.
#[track_caller]
pub fn grad_argnums<In: Tree, R: TraceOutput<Tree = Array>, S: Argnums<In>>(
    f: impl Fn(In) -> R,
    argnums: S,
) -> impl Fn(In) -> Result<S::Grads> {
    let loc = here();
    move |x: In| {
        let pos = argnums.positions();
        let sel = |d: &TreeDef| positions_mask(d, &pos, loc);
        let (_, _, g) = value_and_grad_leaves(&f, &x, &sel, false, false, loc)?;
        Ok(argnums.select(rebuild(&x, g)?))
    }
}

/// The value and the gradient with respect to selected tuple elements.
#[track_caller]
pub fn value_and_grad_argnums<In: Tree, R: TraceOutput<Tree = Array>, S: Argnums<In>>(
    f: impl Fn(In) -> R,
    argnums: S,
) -> impl Fn(In) -> Result<(Array, S::Grads)> {
    let loc = here();
    move |x: In| {
        let pos = argnums.positions();
        let sel = |d: &TreeDef| positions_mask(d, &pos, loc);
        let (mut outs, _, g) = value_and_grad_leaves(&f, &x, &sel, false, true, loc)?;
        Ok((outs.remove(0), argnums.select(rebuild(&x, g)?)))
    }
}

/// `((loss, aux), gradient)` with respect to selected tuple elements.
#[track_caller]
pub fn value_and_grad_argnums_aux<In: Tree, Aux: Tree, R: TraceOutput<Tree = (Array, Aux)>, S: Argnums<In>>(
    f: impl Fn(In) -> R,
    argnums: S,
) -> impl Fn(In) -> Result<((Array, Aux), S::Grads)> {
    let loc = here();
    move |x: In| {
        let pos = argnums.positions();
        let sel = |d: &TreeDef| positions_mask(d, &pos, loc);
        let (outs, def, g) = value_and_grad_leaves(&f, &x, &sel, true, true, loc)?;
        Ok((tree_unflatten(&def, outs).map_err(Error::from)?, argnums.select(rebuild(&x, g)?)))
    }
}

/// One-hot basis arrays of `aval`, one per element.
fn basis(aval: &AVal, loc: Loc) -> Result<Vec<Array>> {
    let n = aval.numel();
    (0..n)
        .map(|k| {
            let mut v = vec![0.0; n];
            v[k] = 1.0;
            let data = arrayjit_ir::Data::from_scalars(aval.dtype, v.into_iter().map(arrayjit_ir::Scalar::F64));
            arrayjit_ir::HostArray::new(aval.shape.clone(), data)
                .map(Array::from_host)
                .map_err(|e| invalid(e.to_string(), loc))
        })
        .collect()
}

/// Stacks per-direction results `rows[k]` (each of shape `inner`) into
/// `outer ++ inner` or `inner ++ outer`; with no directions, an empty array of
/// `dtype` (the Jacobian's).
fn assemble(rows: Vec<Array>, inner: &[usize], outer: &[usize], outer_first: bool, dtype: DType) -> Result<Array> {
    let flat: Vec<Array> = rows.iter().map(|r| lax::reshape(r, &[1, inner.iter().product()])).collect::<Result<_>>()?;
    let refs: Vec<&Array> = flat.iter().collect();
    let m = if refs.is_empty() {
        lax::full(&[0, inner.iter().product()], 0.0, dtype)?
    } else {
        lax::apply1(arrayjit_ir::prim::ShapeOp::Concatenate { axis: 0 }.into(), &refs)?
    };
    if outer_first {
        let mut s = outer.to_vec();
        s.extend_from_slice(inner);
        lax::reshape(&m, &s)
    } else {
        let t = lax::transpose(&m, &[1, 0])?;
        let mut s = inner.to_vec();
        s.extend_from_slice(outer);
        lax::reshape(&t, &s)
    }
}

/// The Jacobian of `f: Array -> Array` by forward mode (one JVP per input
/// element), shaped `out.shape ++ x.shape`.
#[track_caller]
pub fn jacfwd<R: TraceOutput<Tree = Array>>(f: impl Fn(Array) -> R) -> impl Fn(Array) -> Result<Array> {
    let loc = here();
    move |x: Array| {
        let jac = || {
            let dirs = basis(&x.aval(), loc)?;
            let mut cols = Vec::with_capacity(dirs.len());
            let mut out = None;
            for d in &dirs {
                let (y, t) = jvp_at(&f, &x, d, loc)?;
                out = Some(y.aval());
                cols.push(t);
            }
            let out = match out {
                Some(a) => a,
                None => trace_at(&f, &x, loc)?.program.out_avals()[0].clone(),
            };
            assemble(cols, &out.shape, x.shape(), false, out.dtype)
        };
        jac().map_err(|e| locate(e, loc))
    }
}

/// The Jacobian of `f: Array -> Array` by reverse mode (one pullback per
/// output element), shaped `out.shape ++ x.shape`.
#[track_caller]
pub fn jacrev<R: TraceOutput<Tree = Array>>(f: impl Fn(Array) -> R) -> impl Fn(Array) -> Result<Array> {
    let loc = here();
    move |x: Array| {
        let jac = || {
            let (y, pb) = vjp_at(&f, &x, loc)?;
            let rows = basis(&y.aval(), loc)?.iter().map(|c| pb.call_at(c, loc)).collect::<Result<Vec<_>>>()?;
            assemble(rows, x.shape(), y.shape(), true, x.dtype())
        };
        jac().map_err(|e| locate(e, loc))
    }
}

/// The Hessian-vector product `∇²f(x)·v` of a scalar-valued `f`, as forward
/// mode over reverse mode.
#[track_caller]
pub fn hvp<In: Tree, R: TraceOutput<Tree = Array>>(f: impl Fn(In) -> R, x: &In, v: &In) -> Result<In> {
    let g = grad(f);
    let (_, t) = jvp(|x: In| g(x), x, v)?;
    Ok(t)
}
