//! Structured control flow: `scan`, `fori_loop`, `while_loop`, `cond` and
//! `switch`. Each traces its body (or branches) once into a closed program
//! held by the primitive; arrays of enclosing traces the body closes over
//! become the primitive's leading operands (hoisted out of the loop, never
//! copied per iteration), concrete arrays become the body's constants.
//!
//! ```
//! use arrayjit_trace::{control::scan, Array};
//! // Cumulative sum: the carry is the running total, each y the total so far.
//! let xs = Array::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [4]);
//! let (total, partial): (Array, Array) =
//!     scan(|c: Array, x: Array| { let s = &c + &x; (s.clone(), s) }, Array::scalar(0.0f32), xs).unwrap();
//! assert_eq!(total.to_vec::<f32>(), vec![10.0]);
//! assert_eq!(partial.to_vec::<f32>(), vec![1.0, 3.0, 6.0, 10.0]);
//! ```

use crate::array::{caller, Array};
use crate::bind::bind;
use crate::error::{Error, Result};
use crate::lax;
use crate::transform::{trace_avals, TraceOutput, Traced};
use crate::tree::{tree_flatten, tree_unflatten, Tree, TreeDef};
use arrayjit_ir::prim::control::unstacked;
use arrayjit_ir::prim::Control;
use arrayjit_ir::{AVal, DType, Loc, Program};
use std::sync::Arc;

/// How a [`scan_with`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanOptions {
    /// The number of iterations; required when `xs` has no leaves, checked
    /// against their leading axis otherwise.
    pub length: Option<usize>,
    /// Walk `xs` (and write `ys`) from the last index down.
    pub reverse: bool,
    /// Iterations per pass of the compiled loop (at least 1); results do not depend on it.
    pub unroll: usize,
}

impl Default for ScanOptions {
    fn default() -> ScanOptions {
        ScanOptions { length: None, reverse: false, unroll: 1 }
    }
}

impl ScanOptions {
    pub fn length(mut self, n: usize) -> ScanOptions {
        self.length = Some(n);
        self
    }
    pub fn reverse(mut self, r: bool) -> ScanOptions {
        self.reverse = r;
        self
    }
    pub fn unroll(mut self, u: usize) -> ScanOptions {
        self.unroll = u;
        self
    }
}

/// Loops `f(carry, x) -> (carry, y)` over the leading axis of `xs`, returning
/// the final carry and the `y`s stacked along a new leading axis (JAX's
/// `lax.scan`). Carries, xs and ys are trees; the carry must keep its
/// structure and types. See [`scan_with`] for a length without `xs`, reverse
/// order and unrolling.
#[track_caller]
pub fn scan<C, X, Y, F, R>(f: F, init: C, xs: X) -> Result<(C, Y)>
where
    C: Tree,
    X: Tree,
    Y: Tree,
    F: FnOnce(C, X) -> R,
    R: TraceOutput<Tree = (C, Y)>,
{
    scan_at(f, init, xs, ScanOptions::default(), caller())
}

/// [`scan`] with options.
#[track_caller]
pub fn scan_with<C, X, Y, F, R>(f: F, init: C, xs: X, opts: ScanOptions) -> Result<(C, Y)>
where
    C: Tree,
    X: Tree,
    Y: Tree,
    F: FnOnce(C, X) -> R,
    R: TraceOutput<Tree = (C, Y)>,
{
    scan_at(f, init, xs, opts, caller())
}

fn scan_at<C, X, Y, F, R>(f: F, init: C, xs: X, opts: ScanOptions, loc: Loc) -> Result<(C, Y)>
where
    C: Tree,
    X: Tree,
    Y: Tree,
    F: FnOnce(C, X) -> R,
    R: TraceOutput<Tree = (C, Y)>,
{
    let invalid = |message: String| Error::Invalid { message: format!("scan: {message}"), loc };
    let (carry, carry_def) = tree_flatten(&init);
    let (xs, xs_def) = tree_flatten(&xs);
    let x_paths = xs_def.leaf_paths();
    let mut length = opts.length;
    for (x, path) in xs.iter().zip(&x_paths) {
        let Some(&n) = x.shape().first() else {
            return Err(invalid(format!(
                "xs leaf {path} is a scalar {}; xs are scanned along a leading axis",
                x.aval()
            )));
        };
        match length {
            None => length = Some(n),
            Some(l) if l != n => {
                return Err(invalid(format!(
                    "xs leaf {path} ({}) has leading axis {n} but the scan length is {l}{}",
                    x.aval(),
                    if opts.length.is_some() { " (given)" } else { " (from the first xs leaf)" }
                )))
            }
            Some(_) => {}
        }
    }
    let length = length.ok_or_else(|| invalid("xs has no arrays, so the length must be given".into()))?;
    if opts.unroll == 0 {
        return Err(invalid("unroll must be at least 1".into()));
    }
    let carry_avals: Vec<AVal> = carry.iter().map(Array::aval).collect();
    let mut in_avals = carry_avals.clone();
    in_avals.extend(xs.iter().map(|x| unstacked(&x.aval())));
    let in_def = TreeDef::Tuple(vec![carry_def.clone(), xs_def]);
    let traced = trace_avals(|(c, x): (C, X)| f(c, x), &in_def, &in_avals, loc)?;
    let [out_carry_def, y_def] = match &traced.out_def {
        TreeDef::Tuple(parts) if parts.len() == 2 => [parts[0].clone(), parts[1].clone()],
        other => return Err(invalid(format!("the body must return (carry, y), got {}", other.describe()))),
    };
    let out_avals = traced.program.out_avals();
    check_carry("scan", &carry_def, &carry_avals, &out_carry_def, &out_avals[..out_carry_def.num_leaves()], loc)?;
    let (body, consts) = hoist(&traced);
    let nk = carry.len();
    let prim = Control::Scan {
        body,
        num_consts: consts.len(),
        num_carry: nk,
        length,
        reverse: opts.reverse,
        unroll: opts.unroll,
    };
    let mut operands: Vec<&Array> = consts.iter().collect();
    operands.extend(carry.iter());
    operands.extend(xs.iter());
    let mut outs = bind(prim.into(), &operands, loc)?;
    let ys = outs.split_off(nk);
    let c = tree_unflatten(&carry_def, outs).map_err(Error::from)?;
    let y = tree_unflatten(&y_def, ys).map_err(Error::from)?;
    Ok((c, y))
}

/// Checks that a loop body returns a carry of the initial carry's structure
/// and leaf types; the error names the first leaf that differs.
fn check_carry(op: &str, def: &TreeDef, avals: &[AVal], out_def: &TreeDef, out: &[AVal], loc: Loc) -> Result<()> {
    if def != out_def {
        return Err(Error::Invalid {
            message: format!(
                "{op}: the body returns a carry of structure {} but the initial carry is {}",
                out_def.describe(),
                def.describe()
            ),
            loc,
        });
    }
    for ((path, a), b) in def.leaf_paths().iter().zip(avals).zip(out) {
        if a != b {
            return Err(Error::Invalid {
                message: format!(
                    "{op}: the carry leaf {path} is {a} on entry but the body returns {b}; a carry must keep its \
                     dtype and shape (convert or broadcast it in the body, or change the initial value)"
                ),
                loc,
            });
        }
    }
    Ok(())
}

/// The traced body with the values it closed over moved to the front of its
/// inputs (the primitive's constants), and those values.
pub fn hoist(t: &Traced) -> (Arc<Program>, Vec<Array>) {
    let p = &t.program;
    let n = p.inputs.len();
    let nc = t.captured.len();
    let declared = n - nc;
    // Old input k: declared ones move back by `nc`, captured ones to the front.
    let map: Vec<usize> = (0..n).map(|k| if k < declared { k + nc } else { k - declared }).collect();
    let mut avals = vec![AVal::scalar(DType::Bool); n];
    for (k, &j) in map.iter().enumerate() {
        avals[j] = p.aval(p.inputs[k]).clone();
    }
    (Arc::new(p.rebind_inputs(&avals, &map)), t.captured.clone())
}

/// Runs `body(i, carry)` for `i` in `lower..upper` (JAX's `fori_loop` with
/// static bounds): a scan whose carry also holds the `i32` index, so it can
/// be differentiated in reverse mode.
///
/// ```
/// use arrayjit_trace::{control::fori_loop, Array};
/// // 1 + 2 + ... + 10, accumulated in f64.
/// let s = fori_loop(1, 11, |i: Array, acc: Array| &acc + &i.astype(arrayjit_trace::DType::F64), Array::scalar(0.0f64)).unwrap();
/// assert_eq!(s.to_vec::<f64>(), vec![55.0]);
/// ```
#[track_caller]
pub fn fori_loop<C, F, R>(lower: i32, upper: i32, body: F, init: C) -> Result<C>
where
    C: Tree,
    F: FnOnce(Array, C) -> R,
    R: TraceOutput<Tree = C>,
{
    let loc = caller();
    let length = (upper as i64 - lower as i64).max(0) as usize;
    let start = Array::from_host(arrayjit_ir::HostArray::scalar(arrayjit_ir::Scalar::I32(lower)));
    let step = |(i, c): (Array, C), (): ()| -> Result<((Array, C), ())> {
        let next = lax::add(&i, &lax::scalar(1.0, DType::I32))?;
        let c = body(i, c).into_tree()?;
        Ok(((next, c), ()))
    };
    let ((_, c), ()) = scan_at(step, (start, init), (), ScanOptions::default().length(length), loc)?;
    Ok(c)
}

/// Runs `body` on the carry while `cond(carry)` is true (JAX's `while_loop`).
/// `cond` returns a boolean scalar. Reverse-mode differentiation of a
/// `while_loop` is not possible (its trip count is unknown when tracing):
/// use [`scan`] or [`fori_loop`] for loops to be differentiated.
///
/// ```
/// use arrayjit_trace::{control::while_loop, Array};
/// // Doubles x until it exceeds 100.
/// let x = while_loop(|x: Array| x.lt(100.0f32), |x: Array| &x * 2.0f32, Array::scalar(3.0f32)).unwrap();
/// assert_eq!(x.to_vec::<f32>(), vec![192.0]);
/// ```
#[track_caller]
pub fn while_loop<C, P, F, RP, RF>(cond: P, body: F, init: C) -> Result<C>
where
    C: Tree,
    P: FnOnce(C) -> RP,
    F: FnOnce(C) -> RF,
    RP: TraceOutput<Tree = Array>,
    RF: TraceOutput<Tree = C>,
{
    let loc = caller();
    let (carry, def) = tree_flatten(&init);
    let avals: Vec<AVal> = carry.iter().map(Array::aval).collect();
    let tc = trace_avals(cond, &def, &avals, loc)?;
    let pred = tc.program.out_avals();
    if pred != [AVal::scalar(DType::Bool)] {
        return Err(Error::Invalid {
            message: format!(
                "while_loop: the condition must return a bool[] scalar, got {}",
                arrayjit_ir::error::list_avals(&pred)
            ),
            loc,
        });
    }
    let tb = trace_avals(body, &def, &avals, loc)?;
    check_carry("while_loop", &def, &avals, &tb.out_def, &tb.program.out_avals(), loc)?;
    let (cond, cond_consts) = hoist(&tc);
    let (body, body_consts) = hoist(&tb);
    let prim = Control::While { cond, body, cond_consts: cond_consts.len(), body_consts: body_consts.len() };
    let mut operands: Vec<&Array> = cond_consts.iter().chain(&body_consts).collect();
    operands.extend(carry.iter());
    let outs = bind(prim.into(), &operands, loc)?;
    tree_unflatten(&def, outs).map_err(Error::from)
}

/// `on_true(operands)` if `pred` (a boolean scalar) holds, else
/// `on_false(operands)` (JAX's `lax.cond`). Both branches are traced; only
/// one runs. They must return the same structure and types.
///
/// ```
/// use arrayjit_trace::{control::cond, Array};
/// let x = Array::scalar(2.0f32);
/// let y = cond(&x.gt(0.0f32), |x: Array| x.log(), |x: Array| -x, x.clone()).unwrap();
/// assert_eq!(y.to_vec::<f32>(), vec![2f32.ln()]);
/// ```
#[track_caller]
pub fn cond<O, R, T, F, RT, RF>(pred: &Array, on_true: T, on_false: F, operands: O) -> Result<R>
where
    O: Tree,
    R: Tree,
    T: FnOnce(O) -> RT,
    F: FnOnce(O) -> RF,
    RT: TraceOutput<Tree = R>,
    RF: TraceOutput<Tree = R>,
{
    let loc = caller();
    if pred.aval() != AVal::scalar(DType::Bool) {
        return Err(Error::Invalid {
            message: format!("cond: the predicate must be a bool[] scalar, got {}", pred.aval()),
            loc,
        });
    }
    let index = lax::convert(pred, DType::I32)?;
    let (ops, def) = tree_flatten(&operands);
    let avals: Vec<AVal> = ops.iter().map(Array::aval).collect();
    let branches = vec![trace_avals(on_false, &def, &avals, loc)?, trace_avals(on_true, &def, &avals, loc)?];
    bind_cond(&index, branches, &ops, &["false", "true"], loc)
}

/// Runs `branches[index]` on `operands`, the index clamped into range (JAX's
/// `lax.switch`). `index` is an `i32` scalar.
///
/// ```
/// use arrayjit_trace::{control::switch, Array};
/// let branches: Vec<Box<dyn FnOnce(Array) -> Array>> =
///     vec![Box::new(|x| &x + 1.0f32), Box::new(|x| &x * 10.0f32), Box::new(|x| -x)];
/// let y = switch(&Array::scalar(1i32), branches, Array::scalar(3.0f32)).unwrap();
/// assert_eq!(y.to_vec::<f32>(), vec![30.0]);
/// ```
#[track_caller]
pub fn switch<O, R, F, RF>(index: &Array, branches: Vec<F>, operands: O) -> Result<R>
where
    O: Tree,
    R: Tree,
    F: FnOnce(O) -> RF,
    RF: TraceOutput<Tree = R>,
{
    let loc = caller();
    if index.aval() != AVal::scalar(DType::I32) {
        return Err(Error::Invalid {
            message: format!("switch: the index must be an i32[] scalar, got {}", index.aval()),
            loc,
        });
    }
    if branches.is_empty() {
        return Err(Error::Invalid { message: "switch: there are no branches".into(), loc });
    }
    let (ops, def) = tree_flatten(&operands);
    let avals: Vec<AVal> = ops.iter().map(Array::aval).collect();
    let traced = branches.into_iter().map(|b| trace_avals(b, &def, &avals, loc)).collect::<Result<Vec<_>>>()?;
    let names: Vec<String> = (0..traced.len()).map(|i| i.to_string()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    bind_cond(index, traced, &ops, &names, loc)
}

/// Gives the traced branches one signature (the operands, then every
/// branch's closed-over values) and binds `cond`.
fn bind_cond<R: Tree>(index: &Array, branches: Vec<Traced>, ops: &[Array], names: &[&str], loc: Loc) -> Result<R> {
    let first = &branches[0];
    let first_avals = first.program.out_avals();
    for (b, name) in branches.iter().zip(names).skip(1) {
        let avals = b.program.out_avals();
        if b.out_def != first.out_def || avals != first_avals {
            return Err(Error::Invalid {
                message: format!(
                    "cond: branch {name} returns {} ({}) but branch {} returns {} ({})",
                    b.out_def.describe(),
                    arrayjit_ir::error::list_avals(&avals),
                    names[0],
                    first.out_def.describe(),
                    arrayjit_ir::error::list_avals(&first_avals)
                ),
                loc,
            });
        }
    }
    let n = ops.len();
    let mut all: Vec<AVal> = ops.iter().map(Array::aval).collect();
    let mut captured: Vec<Array> = Vec::new();
    let mut programs = Vec::with_capacity(branches.len());
    let total: usize = branches.iter().map(|b| b.captured.len()).sum();
    for b in &branches {
        all.extend(b.captured.iter().map(Array::aval));
    }
    for b in &branches {
        let offset = n + captured.len();
        let map: Vec<usize> = (0..n).chain(offset..offset + b.captured.len()).collect();
        programs.push(Arc::new(b.program.rebind_inputs(&all, &map)));
        captured.extend(b.captured.iter().cloned());
    }
    debug_assert_eq!(captured.len(), total);
    let mut operands: Vec<&Array> = vec![index];
    operands.extend(ops.iter());
    operands.extend(captured.iter());
    let outs = bind(Control::Cond { branches: programs }.into(), &operands, loc)?;
    tree_unflatten(&first.out_def, outs).map_err(Error::from)
}
