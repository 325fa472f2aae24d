//! Functions with derivative rules of their own (JAX's `custom_jvp`): for a
//! formula whose automatic derivative is unstable or wasteful (`log(1 + eˣ)`
//! overflows to ∞/∞ where its derivative is 1), for derivatives known in
//! closed form, or to change what a gradient means (straight-through
//! estimators, clipping). The function runs as written when it is evaluated
//! or compiled; differentiation, in forward and in reverse mode, runs the
//! rule instead. The rule is itself ordinary code, so higher derivatives
//! differentiate it.

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
    let mut operands: Vec<&Array> = body_consts.iter().collect();
    operands.extend(jvp_consts.iter());
    operands.extend(xs.iter());
    let outs = bind(prim.into(), &operands, loc)?;
    tree_unflatten(&body.out_def, outs).map_err(Error::from)
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
