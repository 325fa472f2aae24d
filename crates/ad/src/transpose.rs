//! Transposition of linear programs: the backward pass of reverse mode.
//! Cotangents flow from outputs to inputs through each linear equation's
//! transpose rule; zero cotangents stay symbolic, so no dead work is emitted.

use crate::jvp::list_def;
use crate::rules::{self, add_tangents, instantiate, locate, LinIn, Tangent};
use arrayjit_ir::{AVal, Atom, HostArray, Loc, Program};
use arrayjit_trace::{lax, trace_avals, Array, Error, Result};

/// Runs the transpose of `lin` in the current context. `lin`'s first
/// `known.len()` inputs are non-linear (given in `known`); the rest are linear.
/// `cts` holds a cotangent per output (`None`: zero). Returns the cotangent of
/// every linear input (zeros materialised).
pub(crate) fn backward_pass(lin: &Program, known: &[Array], cts: &[Tangent]) -> Result<Vec<Array>> {
    let n = lin.num_vars();
    let mut linear = vec![false; n];
    for v in &lin.inputs[known.len()..] {
        linear[v.index()] = true;
    }
    let is_linear = |linear: &[bool], a: &Atom| matches!(a, Atom::Var(v) if linear[v.index()]);
    let mut value: Vec<Option<Array>> = vec![None; n];
    for (v, c) in &lin.consts {
        value[v.index()] = Some(Array::from_shared(c.clone()));
    }
    for (v, x) in lin.inputs.iter().zip(known) {
        value[v.index()] = Some(x.clone());
    }
    let read = |value: &[Option<Array>], a: &Atom| -> Result<Array> {
        match a {
            Atom::Lit(s) => Ok(Array::from_host(HostArray::scalar(*s))),
            Atom::Var(v) => value[v.index()].clone().ok_or_else(|| internal(format!("{v:?} has no value"))),
        }
    };
    // Forward: the non-linear equations (constants the linear part reads).
    let mut eqn_linear = vec![false; lin.eqns.len()];
    for (i, e) in lin.eqns.iter().enumerate() {
        if e.inputs.iter().any(|a| is_linear(&linear, a)) {
            eqn_linear[i] = true;
            for o in &e.outputs {
                linear[o.index()] = true;
            }
        } else {
            let ins = e.inputs.iter().map(|a| read(&value, a)).collect::<Result<Vec<_>>>()?;
            let refs: Vec<&Array> = ins.iter().collect();
            let outs = lax::at(e.loc, || lax::apply(e.prim.clone(), &refs)).map_err(|err| locate(err, e.loc))?;
            for (o, x) in e.outputs.iter().zip(outs) {
                value[o.index()] = Some(x);
            }
        }
    }
    // Backward.
    let mut ct: Vec<Tangent> = vec![None; n];
    for (a, c) in lin.outputs.iter().zip(cts) {
        if let (Atom::Var(v), Some(c)) = (a, c) {
            if linear[v.index()] {
                ct[v.index()] = add_tangents(ct[v.index()].take(), Some(c.clone()))?;
            }
        }
    }
    for (i, e) in lin.eqns.iter().enumerate().rev() {
        if !eqn_linear[i] {
            continue;
        }
        let out_cts: Vec<Tangent> = e.outputs.iter().map(|o| ct[o.index()].take()).collect();
        if out_cts.iter().all(Option::is_none) {
            continue;
        }
        let ins = e
            .inputs
            .iter()
            .map(|a| match a {
                Atom::Var(v) if linear[v.index()] => Ok(LinIn::Linear(lin.aval(*v).clone())),
                other => read(&value, other).map(LinIn::Known),
            })
            .collect::<Result<Vec<_>>>()?;
        let in_cts = lax::at(e.loc, || rules::transpose(&e.prim, &out_cts, &ins)).map_err(|err| locate(err, e.loc))?;
        for (a, c) in e.inputs.iter().zip(in_cts) {
            if let (Atom::Var(v), Some(c)) = (a, c) {
                if linear[v.index()] {
                    ct[v.index()] = add_tangents(ct[v.index()].take(), Some(c))?;
                }
            }
        }
    }
    lin.inputs[known.len()..].iter().map(|v| instantiate(&ct[v.index()], lin.aval(*v))).collect()
}

fn internal(message: String) -> Error {
    Error::Invalid { message: format!("transposition: {message}"), loc: Loc::default() }
}

/// The transpose of `lin` as a program. Its inputs are `lin`'s first
/// `num_known` inputs, then a cotangent for each output marked in `ct_mask`;
/// its outputs are the cotangents of `lin`'s remaining (linear) inputs.
pub fn transpose_program(lin: &Program, num_known: usize, ct_mask: &[bool]) -> Result<Program> {
    let in_avals = lin.in_avals();
    let out_avals = lin.out_avals();
    let mut avals: Vec<AVal> = in_avals[..num_known].to_vec();
    avals.extend(out_avals.iter().zip(ct_mask).filter(|(_, m)| **m).map(|(a, _)| a.clone()));
    let traced = trace_avals(
        |args: Vec<Array>| -> Result<Vec<Array>> {
            let (known, rest) = args.split_at(num_known);
            let mut rest = rest.iter();
            let cts: Vec<Tangent> = ct_mask.iter().map(|m| if *m { rest.next().cloned() } else { None }).collect();
            backward_pass(lin, known, &cts)
        },
        &list_def(avals.len()),
        &avals,
        Loc::default(),
    )?;
    Ok(arrayjit_ir::dce(&traced.program))
}
