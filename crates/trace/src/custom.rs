//! Functions with derivative rules of their own (JAX's `custom_jvp` and
//! `custom_vjp`): for a formula whose automatic derivative is unstable or
//! wasteful (`log(1 + eˣ)` overflows to ∞/∞ where its derivative is 1), for
//! derivatives known in closed form, or to change what a gradient means
//! (straight-through estimators, clipping). The function runs as written
//! when it is evaluated or compiled; differentiation runs the rules instead.
//! The rules are themselves ordinary code, so higher derivatives
//! differentiate them.

use crate::array::{caller, Array};
use crate::bind::bind;
use crate::control::hoist;
use crate::error::{Error, Result};
use crate::transform::{trace_avals, TraceOutput};
use crate::tree::{tree_flatten, tree_unflatten, Tree, TreeDef};
use arrayjit_ir::prim::Control;
use arrayjit_ir::{AVal, Loc};

/// Applies `f` to `args`, with `rule` as its derivative: `rule(x, ẋ)` returns
/// `(f(x), ẏ)`, the outputs and their tangents along the arguments' tangents
/// `ẋ` (trees of the arguments' structure and types; integer arguments get
/// zeros). `ẏ` must be linear in `ẋ` for reverse mode (`grad`, `vjp`) to
/// transpose it, as in JAX. `f` and `rule` may close over other arrays, but
/// not over values being differentiated: pass those as arguments, so that
/// the rule sees their tangents (differentiating one is an error).
///
/// ```
/// use arrayjit_trace::{custom_jvp, Array, Result};
///
/// // log(1 + eˣ), whose derivative through the formula is eˣ/(1 + eˣ): ∞/∞ at
/// // x = 100 in f32. The rule's logistic(x) is 1 there.
/// fn log1pexp(x: Array) -> Result<Array> {
///     custom_jvp(|x: Array| x.exp().log1p(), |x: Array, t: Array| (x.exp().log1p(), t * x.logistic()), x)
/// }
/// let y = log1pexp(Array::from_vec(vec![0.0f32, 2.0], [2]))?;
/// assert!((y.to_vec::<f32>()[0] - 2f32.ln()).abs() < 1e-6);
/// # Ok::<(), arrayjit_trace::Error>(())
/// ```
#[track_caller]
pub fn custom_jvp<A, Y, F, J, RF, RJ>(f: F, rule: J, args: A) -> Result<Y>
where
    A: Tree,
    Y: Tree,
    F: FnOnce(A) -> RF,
    J: FnOnce(A, A) -> RJ,
    RF: TraceOutput<Tree = Y>,
    RJ: TraceOutput<Tree = (Y, Y)>,
{
    let loc = caller();
    let (xs, def) = tree_flatten(&args);
    let avals: Vec<AVal> = xs.iter().map(Array::aval).collect();
    let body = trace_avals(f, &def, &avals, loc)?;
    let mut both = avals.clone();
    both.extend_from_slice(&avals);
    let pair_def = TreeDef::Tuple(vec![def.clone(), def]);
    let jvp = trace_avals(|(x, t): (A, A)| rule(x, t), &pair_def, &both, loc)?;
    check_rule(&body.out_def, &body.program.out_avals(), &jvp.out_def, &jvp.program.out_avals(), loc)?;
    let (body_program, body_consts) = hoist(&body);
    let (jvp_program, jvp_consts) = hoist(&jvp);
    let prim = Control::CustomJvp {
        body: body_program,
        jvp: jvp_program,
        body_consts: body_consts.len(),
        jvp_consts: jvp_consts.len(),
    };
    bind_custom(prim, [&body_consts, &jvp_consts, &xs], &body.out_def, loc)
}

/// Binds a `custom_jvp` or `custom_vjp` to its operands (the body's
/// constants, the rule's, the arguments); the outputs as a tree of `def`.
fn bind_custom<Y: Tree>(prim: Control, operands: [&[Array]; 3], def: &TreeDef, loc: Loc) -> Result<Y> {
    let refs: Vec<&Array> = operands.iter().flat_map(|part| part.iter()).collect();
    let outs = bind(prim.into(), &refs, loc)?;
    tree_unflatten(def, outs).map_err(Error::from)
}

/// Checks that the rule returns `(outputs, tangents)`, each of the
/// function's output structure and leaf types; the error names the first
/// leaf that differs.
fn check_rule(out_def: &TreeDef, outs: &[AVal], rule_def: &TreeDef, rule_outs: &[AVal], loc: Loc) -> Result<()> {
    let invalid = |message: String| Error::Invalid { message: format!("custom_jvp: {message}"), loc };
    let want = TreeDef::Tuple(vec![out_def.clone(), out_def.clone()]);
    if *rule_def != want {
        return Err(invalid(format!(
            "the rule must return (outputs, tangents), each of the function's output structure {}, but returns {}",
            out_def.describe(),
            rule_def.describe()
        )));
    }
    let n = outs.len();
    for (half, name) in [(0, "output"), (1, "tangent")] {
        for ((path, want), got) in out_def.leaf_paths().iter().zip(outs).zip(&rule_outs[half * n..]) {
            if want != got {
                return Err(invalid(format!(
                    "the rule's {name} {path} is {got} but the function's output {path} is {want}"
                )));
            }
        }
    }
    Ok(())
}

/// Applies `f` to `args` with reverse-mode rules of its own (JAX's
/// `custom_vjp`): `fwd(x)` returns `(f(x), r)`, the outputs and residuals (a
/// tree of arrays) saved for the backward pass, and `bwd(r, ȳ)` returns the
/// cotangents of the arguments (a tree of the arguments' structure and
/// types; those of integer arguments are ignored) given the outputs'. `grad`,
/// `vjp` and their compositions run `fwd` and `bwd`; forward mode (`jvp`,
/// `jacfwd`) is an error, as in JAX. `f` and `fwd` may close over arrays that
/// are not differentiated; `bwd` may close over none that is being traced
/// (return it from `fwd` as a residual).
///
/// ```
/// use arrayjit_trace::{custom_vjp, Array, Result};
///
/// // Gradient clipping as a function: the identity, whose backward pass
/// // clips the cotangent to [-1, 1].
/// fn clip_gradient(x: Array) -> Result<Array> {
///     custom_vjp(|x: Array| x, |x: Array| (x, ()), |(): (), g: Array| g.maximum(-1.0f32).minimum(1.0f32), x)
/// }
/// let y = clip_gradient(Array::from_vec(vec![3.0f32, -4.0], [2]))?;
/// assert_eq!(y.to_vec::<f32>(), vec![3.0, -4.0]);
/// # Ok::<(), arrayjit_trace::Error>(())
/// ```
#[track_caller]
pub fn custom_vjp<A, Y, R, F, Fw, Bw, RF, RFw, RBw>(f: F, fwd: Fw, bwd: Bw, args: A) -> Result<Y>
where
    A: Tree,
    Y: Tree,
    R: Tree,
    F: FnOnce(A) -> RF,
    Fw: FnOnce(A) -> RFw,
    Bw: FnOnce(R, Y) -> RBw,
    RF: TraceOutput<Tree = Y>,
    RFw: TraceOutput<Tree = (Y, R)>,
    RBw: TraceOutput<Tree = A>,
{
    let loc = caller();
    let invalid = |message: String| Error::Invalid { message: format!("custom_vjp: {message}"), loc };
    let (xs, def) = tree_flatten(&args);
    let avals: Vec<AVal> = xs.iter().map(Array::aval).collect();
    let body = trace_avals(f, &def, &avals, loc)?;
    let out_avals = body.program.out_avals();
    let forward = trace_avals(fwd, &def, &avals, loc)?;
    let res_def = match &forward.out_def {
        TreeDef::Tuple(parts) if parts.len() == 2 && parts[0] == body.out_def => parts[1].clone(),
        other => {
            return Err(invalid(format!(
                "fwd must return (outputs, residuals), the outputs of the function's structure {}, but returns {}",
                body.out_def.describe(),
                other.describe()
            )))
        }
    };
    let fwd_avals = forward.program.out_avals();
    let (fwd_outs, res_avals) = fwd_avals.split_at(out_avals.len());
    for ((path, want), got) in body.out_def.leaf_paths().iter().zip(&out_avals).zip(fwd_outs) {
        if want != got {
            return Err(invalid(format!("fwd's output {path} is {got} but the function's is {want}")));
        }
    }
    let mut bwd_avals = res_avals.to_vec();
    bwd_avals.extend_from_slice(&out_avals);
    let bwd_def = TreeDef::Tuple(vec![res_def, body.out_def.clone()]);
    let backward = trace_avals(|(r, ct): (R, Y)| bwd(r, ct), &bwd_def, &bwd_avals, loc)?;
    if !backward.captured.is_empty() {
        return Err(invalid(format!(
            "bwd closes over {} traced value(s) ({}); return them from fwd as residuals",
            backward.captured.len(),
            arrayjit_ir::error::list_avals(&backward.captured.iter().map(Array::aval).collect::<Vec<_>>())
        )));
    }
    if backward.out_def != def {
        return Err(invalid(format!(
            "bwd must return the arguments' cotangents, of their structure {}, but returns {}",
            def.describe(),
            backward.out_def.describe()
        )));
    }
    for ((path, want), got) in def.leaf_paths().iter().zip(&avals).zip(&backward.program.out_avals()) {
        if want != got {
            return Err(invalid(format!("bwd's cotangent of argument {path} is {got} but the argument is {want}")));
        }
    }
    let (body_program, body_consts) = hoist(&body);
    let (fwd_program, fwd_consts) = hoist(&forward);
    let prim = Control::CustomVjp {
        body: body_program,
        fwd: fwd_program,
        bwd: std::sync::Arc::new(backward.program),
        body_consts: body_consts.len(),
        fwd_consts: fwd_consts.len(),
    };
    bind_custom(prim, [&body_consts, &fwd_consts, &xs], &body.out_def, loc)
}
