//! Derivative rules of the higher-order primitives. A `call` is
//! differentiated by evaluating the JVP of its body inline, so the linear
//! program never contains a `call`. A loop's JVP is a loop over the JVP of
//! its body (carrying tangents beside the primal carries, found by a fixed
//! point: a carry has a tangent if its initial value or its update does);
//! a conditional's JVP is a conditional over the branches' JVPs. The
//! transpose of a linear `scan` is a scan in the other direction over the
//! transposed body, carrying the cotangents of the carries and accumulating
//! those of the loop-invariant operands; a linear `cond` transposes branch
//! by branch. `while` has no transpose (its trip count is unknown when the
//! program is built): partial evaluation reports that with advice. A
//! `custom_jvp` is differentiated by running its own rule in its place; a
//! `custom_vjp` by running its forward rule, its outputs' tangents left to
//! transposition, which runs its backward rule.

use super::{instantiate, transform_error, JvpOut, LinIn, Tangent};
use crate::jvp::{jvp_eval, list_def};
use crate::transpose::backward_pass;
use arrayjit_ir::prim::control::{custom_body_operands, CUSTOM_VJP_FORWARD};
use arrayjit_ir::prim::Control;
use arrayjit_ir::{AVal, Loc, Program};
use arrayjit_trace::control::hoist;
use arrayjit_trace::{lax, trace_avals, Array, Result};
use std::sync::Arc;

pub(crate) fn jvp(op: &Control, xs: &[Array], ts: &[Tangent]) -> Result<JvpOut> {
    match op {
        Control::Call { body } => jvp_eval(body, xs, ts),
        Control::Scan { body, num_consts, num_carry, length, reverse, unroll } => {
            let s =
                ScanOf { body, nc: *num_consts, nk: *num_carry, length: *length, reverse: *reverse, unroll: *unroll };
            jvp_scan(&s, xs, ts)
        }
        Control::While { cond, body, cond_consts, body_consts } => {
            jvp_while(cond, body, *cond_consts, *body_consts, xs, ts)
        }
        Control::Cond { branches } => jvp_cond(branches, xs, ts),
        Control::CustomJvp { jvp, body_consts, jvp_consts, .. } => jvp_custom(jvp, *body_consts, *jvp_consts, xs, ts),
        Control::CustomVjp { body, fwd, bwd, body_consts, fwd_consts } => {
            let c = CustomVjpOf {
                fwd,
                bwd,
                body_consts: *body_consts,
                fwd_consts: *fwd_consts,
                num_outputs: body.outputs.len(),
            };
            jvp_custom_vjp(c, xs, ts)
        }
        Control::CustomVjpTangent { .. } => Err(transform_error("custom_vjp", CUSTOM_VJP_FORWARD)),
    }
}

pub(crate) fn transpose(op: &Control, cts: &[Tangent], ins: &[LinIn]) -> Result<Vec<Tangent>> {
    match op {
        Control::Scan { body, num_consts, num_carry, length, reverse, unroll } => {
            let s =
                ScanOf { body, nc: *num_consts, nk: *num_carry, length: *length, reverse: *reverse, unroll: *unroll };
            transpose_scan(&s, cts, ins)
        }
        Control::Cond { branches } => transpose_cond(branches, cts, ins),
        Control::Call { .. } => Err(transform_error("call", "has no transpose rule (calls are differentiated inline)")),
        Control::CustomJvp { body, body_consts, jvp_consts: rule_consts, .. }
        | Control::CustomVjp { body, body_consts, fwd_consts: rule_consts, .. } => {
            transpose_custom_body(op.name(), body, *body_consts, *rule_consts, cts, ins)
        }
        Control::CustomVjpTangent { bwd } => transpose_custom_vjp(bwd, cts, ins),
        Control::While { .. } => Err(while_error()),
    }
}

pub(crate) fn while_error() -> arrayjit_trace::Error {
    transform_error(
        "while",
        "reverse-mode differentiation (grad, vjp) of a while_loop is not supported: its trip count is only known \
         when it runs. Use scan, or fori_loop with static bounds, for loops to be differentiated (forward mode, \
         jvp, works)",
    )
}

/// The JVP of a function with its own rule `jvp`: the rule runs in its place
/// on the arguments and their tangents (zeros where there are none). Without
/// tangents `rules::jvp` keeps the primitive as it is, for a later
/// transformation that may still need its rule. The values the function or its
/// rule closed over get no tangent: one that has one is an error, since the
/// rule could not account for it.
fn jvp_custom(jvp: &Program, body_consts: usize, jvp_consts: usize, xs: &[Array], ts: &[Tangent]) -> Result<JvpOut> {
    let nc = body_consts + jvp_consts;
    if let Some(k) = ts[..nc].iter().position(Option::is_some) {
        let whose = if k < body_consts { "function" } else { "derivative rule" };
        return Err(closed_over_error("custom_jvp", whose, &xs[k]));
    }
    // Some argument has a tangent (`rules::jvp` handles the case of none).
    let args = &xs[nc..];
    let n_out = jvp.outputs.len() / 2;
    let mut operands = xs[body_consts..nc].to_vec();
    operands.extend_from_slice(args);
    for (x, t) in args.iter().zip(&ts[nc..]) {
        operands.push(instantiate(t, &x.aval())?);
    }
    let mut outs = lax::apply_program(jvp, &operands)?;
    let touts = outs.split_off(n_out);
    // Integers carry no tangent, whatever the rule returned for them.
    Ok((outs, touts.into_iter().map(|t| t.aval().dtype.is_float().then_some(t)).collect()))
}

/// The JVP of a function with its own reverse-mode rules: `fwd` gives the
/// outputs and the residuals, and the outputs' tangents are a
/// `custom_vjp_tangent` of the residuals and the arguments' tangents, which
/// only transposition (running `bwd`) gives a value. As for `custom_jvp`,
/// values the function or `fwd` closed over get no tangent.
fn jvp_custom_vjp(c: CustomVjpOf<'_>, xs: &[Array], ts: &[Tangent]) -> Result<JvpOut> {
    let nc = c.body_consts + c.fwd_consts;
    if let Some(k) = ts[..nc].iter().position(Option::is_some) {
        let whose = if k < c.body_consts { "function" } else { "forward rule" };
        return Err(closed_over_error("custom_vjp", whose, &xs[k]));
    }
    let mut outs = lax::apply_program(c.fwd, &xs[c.body_consts..])?;
    let residuals = outs.split_off(c.num_outputs);
    let mut operands = residuals;
    for (x, t) in xs[nc..].iter().zip(&ts[nc..]) {
        operands.push(instantiate(t, &x.aval())?);
    }
    let refs: Vec<&Array> = operands.iter().collect();
    let touts = lax::apply(Control::CustomVjpTangent { bwd: c.bwd.clone() }.into(), &refs)?;
    Ok((outs, touts.into_iter().map(|t| t.aval().dtype.is_float().then_some(t)).collect()))
}

/// A `custom_vjp`'s rules and counts, for its JVP.
struct CustomVjpOf<'a> {
    fwd: &'a Program,
    bwd: &'a Arc<Program>,
    body_consts: usize,
    fwd_consts: usize,
    num_outputs: usize,
}

/// The transpose of `ẏ = L(r, ẋ)`: `bwd(r, ȳ)` gives the cotangents of the
/// tangents `ẋ` (those that are linear; the residuals must be known).
fn transpose_custom_vjp(bwd: &Program, cts: &[Tangent], ins: &[LinIn]) -> Result<Vec<Tangent>> {
    let nr = ins.len() - bwd.outputs.len();
    let mut operands = Vec::with_capacity(bwd.inputs.len());
    for r in &ins[..nr] {
        operands.push(r.known("custom_vjp_tangent")?.clone());
    }
    for (ct, aval) in cts.iter().zip(&bwd.in_avals()[nr..]) {
        operands.push(instantiate(ct, aval)?);
    }
    let x_cts = lax::apply_program(bwd, &operands)?;
    let mut out = vec![None; nr];
    out.extend(ins[nr..].iter().zip(x_cts).map(|(i, c)| (i.is_linear() && c.aval().dtype.is_float()).then_some(c)));
    Ok(out)
}

fn closed_over_error(op: &str, whose: &str, x: &Array) -> arrayjit_trace::Error {
    transform_error(
        op,
        format!(
            "the {whose} closes over a value that is being differentiated ({}); pass it to the function as an \
             argument, so that the rules account for it",
            x.aval()
        ),
    )
}

/// The transpose of a function with its own rules found in linear position
/// (a rule applied it to tangents): that of its body, which is what it
/// computes, transposed equation by equation.
fn transpose_custom_body(
    op: &str,
    body: &Program,
    body_consts: usize,
    rule_consts: usize,
    cts: &[Tangent],
    ins: &[LinIn],
) -> Result<Vec<Tangent>> {
    // Body input k is operand `at[k]`.
    let at = custom_body_operands(&(0..ins.len()).collect::<Vec<_>>(), body_consts, rule_consts);
    let (lin_k, known_k): (Vec<usize>, Vec<usize>) = (0..at.len()).partition(|&k| ins[at[k]].is_linear());
    let known = known_k.iter().map(|&k| ins[at[k]].known(op).cloned()).collect::<Result<Vec<_>>>()?;
    let lin_cts = backward_pass(&known_first(body, &known_k, &lin_k), &known, cts)?;
    let mut out = vec![None; ins.len()];
    for (&k, c) in lin_k.iter().zip(lin_cts) {
        out[at[k]] = Some(c);
    }
    Ok(out)
}

/// Traces `f` over `avals` into a closed body; values it closed over are
/// returned to become the primitive's leading operands.
fn trace_body(avals: &[AVal], f: impl FnOnce(Vec<Array>) -> Result<Vec<Array>>) -> Result<(Arc<Program>, Vec<Array>)> {
    let traced = trace_avals(f, &list_def(avals.len()), avals, Loc::default())?;
    Ok(hoist(&traced))
}

/// Splits `v` at the given counts.
fn parts<T: Clone>(v: &[T], counts: &[usize]) -> Vec<Vec<T>> {
    let mut out = Vec::with_capacity(counts.len());
    let mut at = 0;
    for &n in counts {
        out.push(v[at..at + n].to_vec());
        at += n;
    }
    out
}

fn masked<T: Clone>(v: &[T], mask: &[bool]) -> Vec<T> {
    v.iter().zip(mask).filter(|(_, m)| **m).map(|(x, _)| x.clone()).collect()
}

fn is_float(a: &AVal) -> bool {
    a.dtype.is_float()
}

/// A scan's parameters, as its rules read them.
struct ScanOf<'a> {
    body: &'a Arc<Program>,
    nc: usize,
    nk: usize,
    length: usize,
    reverse: bool,
    unroll: usize,
}

fn jvp_scan(s: &ScanOf<'_>, xs: &[Array], ts: &[Tangent]) -> Result<JvpOut> {
    let ScanOf { body, nc, nk, length, reverse, unroll } = *s;
    let ins = body.in_avals();
    let nx = ins.len() - nc - nk;
    let c_nz: Vec<bool> = ts[..nc].iter().map(Option::is_some).collect();
    let mut k_nz: Vec<bool> = ts[nc..nc + nk].iter().map(Option::is_some).collect();
    let x_nz: Vec<bool> = ts[nc + nk..].iter().map(Option::is_some).collect();
    // Fixed point: a carry whose update has a tangent carries one.
    let (jbody, captured, y_nz) = loop {
        let (jbody, captured, k_out, y_nz) = jvp_scan_body(body, &ins, nc, nk, &c_nz, &k_nz, &x_nz)?;
        let grown: Vec<usize> = (0..nk).filter(|&k| k_out[k] && !k_nz[k]).collect();
        if grown.is_empty() {
            break (jbody, captured, y_nz);
        }
        grown.into_iter().for_each(|k| k_nz[k] = true);
    };
    let [consts, carries, xv] = <[Vec<Array>; 3]>::try_from(parts(xs, &[nc, nk, nx])).map_err(|_| split_error())?;
    let [ct, kt, xt] = <[Vec<Tangent>; 3]>::try_from(parts(ts, &[nc, nk, nx])).map_err(|_| split_error())?;
    let mut operands: Vec<Array> = captured.clone();
    operands.extend(consts);
    operands.extend(ct.into_iter().flatten());
    let n_consts = operands.len();
    operands.extend(carries);
    for (k, t) in kt.iter().enumerate() {
        if k_nz[k] {
            operands.push(instantiate(t, &ins[nc + k])?);
        }
    }
    let n_carry = operands.len() - n_consts;
    operands.extend(xv);
    operands.extend(xt.into_iter().flatten());
    let prim = Control::Scan { body: jbody, num_consts: n_consts, num_carry: n_carry, length, reverse, unroll };
    let refs: Vec<&Array> = operands.iter().collect();
    let outs = lax::apply(prim.into(), &refs)?;
    let n_kt = k_nz.iter().filter(|b| **b).count();
    let ny = body.outputs.len() - nk;
    let [kout, ktout, yout, ytout] =
        <[Vec<Array>; 4]>::try_from(parts(&outs, &[nk, n_kt, ny, y_nz.iter().filter(|b| **b).count()]))
            .map_err(|_| split_error())?;
    let mut primals = kout;
    primals.extend(yout);
    let mut kt_iter = ktout.into_iter();
    let mut yt_iter = ytout.into_iter();
    let mut tangents: Vec<Tangent> = k_nz.iter().map(|nz| if *nz { kt_iter.next() } else { None }).collect();
    tangents.extend(y_nz.iter().map(|nz| if *nz { yt_iter.next() } else { None }));
    Ok((primals, tangents))
}

fn split_error() -> arrayjit_trace::Error {
    transform_error("scan", "internal error: operands do not split as the body says")
}

/// The JVP body of a scan: inputs `(consts, const tangents, carries, carry
/// tangents, xs, x tangents)` (tangents only where marked), outputs
/// `(carries, carry tangents, ys, y tangents)`. Also returns which carry
/// updates and which ys have tangents.
#[allow(clippy::type_complexity)]
fn jvp_scan_body(
    body: &Program,
    ins: &[AVal],
    nc: usize,
    nk: usize,
    c_nz: &[bool],
    k_nz: &[bool],
    x_nz: &[bool],
) -> Result<(Arc<Program>, Vec<Array>, Vec<bool>, Vec<bool>)> {
    let groups = [(0, nc, c_nz), (nc, nk, k_nz), (nc + nk, ins.len() - nc - nk, x_nz)];
    let mut avals = Vec::new();
    for &(start, n, nz) in &groups {
        avals.extend_from_slice(&ins[start..start + n]);
        avals.extend(masked(&ins[start..start + n], nz));
    }
    let mut k_out = vec![false; nk];
    let mut y_nz = Vec::new();
    let (prog, captured) = trace_body(&avals, |args: Vec<Array>| {
        let mut primals = Vec::with_capacity(ins.len());
        let mut tangents = Vec::with_capacity(ins.len());
        let mut at = 0;
        for &(_, n, nz) in &groups {
            primals.extend_from_slice(&args[at..at + n]);
            at += n;
            for m in nz {
                tangents.push(if *m {
                    at += 1;
                    Some(args[at - 1].clone())
                } else {
                    None
                });
            }
        }
        let (outs, touts) = jvp_eval(body, &primals, &tangents)?;
        let out_avals = body.out_avals();
        let mut res: Vec<Array> = outs[..nk].to_vec();
        for k in 0..nk {
            k_out[k] = touts[k].is_some();
            if k_nz[k] {
                res.push(instantiate(&touts[k], &out_avals[k])?);
            }
        }
        res.extend_from_slice(&outs[nk..]);
        for t in &touts[nk..] {
            y_nz.push(t.is_some());
            res.extend(t.iter().cloned());
        }
        Ok(res)
    })?;
    Ok((prog, captured, k_out, y_nz))
}

fn jvp_while(
    cond: &Arc<Program>,
    body: &Arc<Program>,
    cc: usize,
    bc: usize,
    xs: &[Array],
    ts: &[Tangent],
) -> Result<JvpOut> {
    let ins = body.in_avals();
    let nk = ins.len() - bc;
    let b_nz: Vec<bool> = ts[cc..cc + bc].iter().map(Option::is_some).collect();
    let mut k_nz: Vec<bool> = ts[cc + bc..].iter().map(Option::is_some).collect();
    let (jbody, captured) = loop {
        // The body as a scan body with no xs: the same layout.
        let (jbody, captured, k_out, _) = jvp_scan_body(body, &ins, bc, nk, &b_nz, &k_nz, &[])?;
        let grown: Vec<usize> = (0..nk).filter(|&k| k_out[k] && !k_nz[k]).collect();
        if grown.is_empty() {
            break (jbody, captured);
        }
        grown.into_iter().for_each(|k| k_nz[k] = true);
    };
    if !k_nz.contains(&true) {
        // No carry depends on a value with a tangent (a counter that only
        // compares against one): the loop as it was, with no tangents, so
        // that reverse mode, which cannot go through a loop, never meets it.
        let prim = Control::While { cond: cond.clone(), body: body.clone(), cond_consts: cc, body_consts: bc };
        let refs: Vec<&Array> = xs.iter().collect();
        return Ok((lax::apply(prim.into(), &refs)?, vec![None; nk]));
    }
    // The condition reads the primal carries only.
    let carry_avals = &ins[bc..];
    let mut cavals = cond.in_avals();
    cavals.extend(masked(carry_avals, &k_nz));
    let map: Vec<usize> = (0..cond.inputs.len()).collect();
    let jcond = Arc::new(cond.rebind_inputs(&cavals, &map));
    let mut operands: Vec<Array> = xs[..cc].to_vec();
    let n_cond_consts = operands.len();
    operands.extend(captured);
    operands.extend_from_slice(&xs[cc..cc + bc]);
    operands.extend(ts[cc..cc + bc].iter().flatten().cloned());
    let n_body_consts = operands.len() - n_cond_consts;
    operands.extend_from_slice(&xs[cc + bc..]);
    for (k, t) in ts[cc + bc..].iter().enumerate() {
        if k_nz[k] {
            operands.push(instantiate(t, &carry_avals[k])?);
        }
    }
    let prim = Control::While { cond: jcond, body: jbody, cond_consts: n_cond_consts, body_consts: n_body_consts };
    let refs: Vec<&Array> = operands.iter().collect();
    let mut outs = lax::apply(prim.into(), &refs)?;
    let touts = outs.split_off(nk);
    let mut it = touts.into_iter();
    let tangents = k_nz.iter().map(|nz| if *nz { it.next() } else { None }).collect();
    Ok((outs, tangents))
}

fn jvp_cond(branches: &[Arc<Program>], xs: &[Array], ts: &[Tangent]) -> Result<JvpOut> {
    let (index, ops) = xs.split_first().ok_or_else(|| transform_error("cond", "has no index operand"))?;
    let nz: Vec<bool> = ts[1..].iter().map(Option::is_some).collect();
    let ins = branches[0].in_avals();
    let outs_avals = branches[0].out_avals();
    let mut avals = ins.clone();
    avals.extend(masked(&ins, &nz));
    // Every branch returns a tangent for every float output (zeros where
    // its own is symbolic), so all branches share one signature.
    let mut traced = Vec::with_capacity(branches.len());
    for b in branches {
        traced.push(trace_body(&avals, |args: Vec<Array>| {
            let (primals, rest) = args.split_at(ins.len());
            let mut rest = rest.iter();
            let tangents: Vec<Tangent> = nz.iter().map(|m| if *m { rest.next().cloned() } else { None }).collect();
            let (outs, touts) = jvp_eval(b, primals, &tangents)?;
            let mut res = outs;
            for (t, a) in touts.iter().zip(&outs_avals) {
                if is_float(a) {
                    res.push(instantiate(t, a)?);
                }
            }
            Ok(res)
        })?);
    }
    let (programs, operands) = join_branches(traced, &avals);
    let mut all: Vec<&Array> = vec![index];
    all.extend(ops.iter());
    all.extend(ts[1..].iter().flatten());
    all.extend(operands.iter());
    let mut outs = lax::apply(Control::Cond { branches: programs }.into(), &all)?;
    let touts = outs.split_off(outs_avals.len());
    let mut it = touts.into_iter();
    let tangents = outs_avals.iter().map(|a| if is_float(a) { it.next() } else { None }).collect();
    Ok((outs, tangents))
}

/// Gives traced branches (inputs `avals`, then their own closed-over
/// values after `hoist` moved them first) one signature: `avals`, then
/// every branch's closed-over values. Returns the branches and those values.
fn join_branches(traced: Vec<(Arc<Program>, Vec<Array>)>, avals: &[AVal]) -> (Vec<Arc<Program>>, Vec<Array>) {
    let n = avals.len();
    let mut all = avals.to_vec();
    for (_, cap) in &traced {
        all.extend(cap.iter().map(Array::aval));
    }
    let mut captured: Vec<Array> = Vec::new();
    let mut programs = Vec::with_capacity(traced.len());
    for (p, cap) in traced {
        let offset = n + captured.len();
        let m = cap.len();
        // `hoist` put this branch's captured values first.
        let map: Vec<usize> = (offset..offset + m).chain(0..n).collect();
        programs.push(Arc::new(p.rebind_inputs(&all, &map)));
        captured.extend(cap);
    }
    (programs, captured)
}

/// `body` with its inputs reordered: those at `known` first, then those at `linear`.
fn known_first(body: &Program, known: &[usize], linear: &[usize]) -> Program {
    let ins = body.in_avals();
    let order: Vec<usize> = known.iter().chain(linear).copied().collect();
    let mut map = vec![0; ins.len()];
    for (new, &old) in order.iter().enumerate() {
        map[old] = new;
    }
    let reordered: Vec<AVal> = order.iter().map(|&i| ins[i].clone()).collect();
    body.rebind_inputs(&reordered, &map)
}

/// The transpose of a scan linear in some operands. Carries are always
/// treated as linear (a known initial carry of a linear scan is a zero
/// tangent that was materialised); known constants and xs are residuals.
fn transpose_scan(s: &ScanOf<'_>, cts: &[Tangent], ins: &[LinIn]) -> Result<Vec<Tangent>> {
    let ScanOf { body, nc, nk, length, reverse, unroll } = *s;
    let bins = body.in_avals();
    let nx = bins.len() - nc - nk;
    let c_lin: Vec<bool> = ins[..nc].iter().map(LinIn::is_linear).collect();
    let x_lin: Vec<bool> = ins[nc + nk..].iter().map(LinIn::is_linear).collect();
    let y_ct: Vec<bool> = cts[nk..].iter().map(Option::is_some).collect();
    let known = |i: usize| -> Result<Array> { ins[i].known("scan").cloned() };
    // The body with its known inputs first: (known consts, known xs, linear consts, carries, linear xs).
    let known_idx: Vec<usize> =
        (0..nc).filter(|&i| !c_lin[i]).chain((0..nx).filter(|&j| !x_lin[j]).map(|j| nc + nk + j)).collect();
    let lin_idx: Vec<usize> = (0..nc)
        .filter(|&i| c_lin[i])
        .chain(nc..nc + nk)
        .chain((0..nx).filter(|&j| x_lin[j]).map(|j| nc + nk + j))
        .collect();
    let rbody = known_first(body, &known_idx, &lin_idx);
    let n_known_c = (0..nc).filter(|&i| !c_lin[i]).count();
    let n_known_x = known_idx.len() - n_known_c;
    let lin_c_avals: Vec<AVal> = (0..nc).filter(|&i| c_lin[i]).map(|i| bins[i].clone()).collect();
    let n_lin_c = lin_c_avals.len();
    let outs = body.out_avals();
    // Transposed body inputs: (known consts; acc of linear consts, carry cts; y cts, known x slices).
    let mut tavals: Vec<AVal> = known_idx[..n_known_c].iter().map(|&i| bins[i].clone()).collect();
    tavals.extend(lin_c_avals.iter().cloned());
    tavals.extend_from_slice(&bins[nc..nc + nk]);
    tavals.extend(masked(&outs[nk..], &y_ct));
    tavals.extend(known_idx[n_known_c..].iter().map(|&i| bins[i].clone()));
    let n_yct = y_ct.iter().filter(|b| **b).count();
    let (tbody, captured) = trace_body(&tavals, |args: Vec<Array>| {
        let [kc, acc, ctk, cty, kx] =
            <[Vec<Array>; 5]>::try_from(parts(&args, &[n_known_c, n_lin_c, nk, n_yct, n_known_x]))
                .map_err(|_| split_error())?;
        let mut known_vals = kc;
        known_vals.extend(kx);
        let mut out_cts: Vec<Tangent> = ctk.into_iter().map(Some).collect();
        let mut cty = cty.into_iter();
        out_cts.extend(y_ct.iter().map(|m| if *m { cty.next() } else { None }));
        let in_cts = backward_pass(&rbody, &known_vals, &out_cts)?;
        let (c_cts, rest) = in_cts.split_at(n_lin_c);
        let (k_cts, x_cts) = rest.split_at(nk);
        let mut res = Vec::with_capacity(n_lin_c + nk + x_cts.len());
        for (a, c) in acc.iter().zip(c_cts) {
            res.push(lax::add(a, c)?);
        }
        res.extend_from_slice(k_cts);
        res.extend_from_slice(x_cts);
        Ok(res)
    })?;
    let mut operands: Vec<Array> = captured.clone();
    for &i in &known_idx[..n_known_c] {
        operands.push(known(i)?);
    }
    let n_consts = operands.len();
    for a in &lin_c_avals {
        operands.push(lax::zeros_like(a)?);
    }
    for (k, a) in bins[nc..nc + nk].iter().enumerate() {
        operands.push(instantiate(&cts[k], a)?);
    }
    operands.extend(cts[nk..].iter().flatten().cloned());
    for &i in &known_idx[n_known_c..] {
        operands.push(known(i)?);
    }
    let prim =
        Control::Scan { body: tbody, num_consts: n_consts, num_carry: n_lin_c + nk, length, reverse: !reverse, unroll };
    let refs: Vec<&Array> = operands.iter().collect();
    let res = lax::apply(prim.into(), &refs)?;
    let (c_cts, rest) = res.split_at(n_lin_c);
    let (k_cts, x_cts) = rest.split_at(nk);
    let mut c_it = c_cts.iter();
    let mut x_it = x_cts.iter();
    let mut out: Vec<Tangent> = (0..nc).map(|i| if c_lin[i] { c_it.next().cloned() } else { None }).collect();
    out.extend(k_cts.iter().cloned().map(Some));
    out.extend((0..nx).map(|j| if x_lin[j] { x_it.next().cloned() } else { None }));
    Ok(out)
}

/// The transpose of a conditional linear in some operands: each branch
/// transposed; the index and the known operands are read, not transposed.
fn transpose_cond(branches: &[Arc<Program>], cts: &[Tangent], ins: &[LinIn]) -> Result<Vec<Tangent>> {
    let index = ins[0].known("cond")?.clone();
    let ops = &ins[1..];
    let lin: Vec<bool> = ops.iter().map(LinIn::is_linear).collect();
    let bins = branches[0].in_avals();
    let outs = branches[0].out_avals();
    let ct_mask: Vec<bool> = cts.iter().map(Option::is_some).collect();
    let known_idx: Vec<usize> = (0..ops.len()).filter(|&i| !lin[i]).collect();
    let lin_idx: Vec<usize> = (0..ops.len()).filter(|&i| lin[i]).collect();

    let mut tavals: Vec<AVal> = known_idx.iter().map(|&i| bins[i].clone()).collect();
    tavals.extend(masked(&outs, &ct_mask));
    let nk = known_idx.len();
    let mut traced = Vec::with_capacity(branches.len());
    for b in branches {
        let rb = known_first(b, &known_idx, &lin_idx);
        traced.push(trace_body(&tavals, |args: Vec<Array>| {
            let (known, rest) = args.split_at(nk);
            let mut rest = rest.iter();
            let cts: Vec<Tangent> = ct_mask.iter().map(|m| if *m { rest.next().cloned() } else { None }).collect();
            backward_pass(&rb, known, &cts)
        })?);
    }
    let (programs, captured) = join_branches(traced, &tavals);
    let mut operands: Vec<Array> = vec![index];
    for &i in &known_idx {
        operands.push(ops[i].known("cond")?.clone());
    }
    operands.extend(cts.iter().flatten().cloned());
    operands.extend(captured);
    let refs: Vec<&Array> = operands.iter().collect();
    let res = lax::apply(Control::Cond { branches: programs }.into(), &refs)?;
    let mut it = res.into_iter();
    let mut out: Vec<Tangent> = vec![None];
    out.extend(lin.iter().map(|l| if *l { it.next() } else { None }));
    Ok(out)
}
