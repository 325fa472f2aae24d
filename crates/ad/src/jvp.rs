//! Forward mode: evaluating a program on (primal, tangent) pairs, and the JVP
//! program built by tracing that evaluation.

use crate::rules::{self, instantiate, locate, JvpOut, Tangent};
use arrayjit_ir::{AVal, Atom, HostArray, Loc, Program};
use arrayjit_trace::{lax, trace_avals, Array, Error, Result, TreeDef};

/// Evaluates `p` on primals and tangents (`None`: zero) in the current context,
/// returning the outputs and their tangents.
pub(crate) fn jvp_eval(p: &Program, primals: &[Array], tangents: &[Tangent]) -> Result<JvpOut> {
    let mut env: Vec<Option<(Array, Tangent)>> = vec![None; p.num_vars()];
    for (v, value) in &p.consts {
        env[v.index()] = Some((Array::from_shared(value.clone()), None));
    }
    for ((v, x), t) in p.inputs.iter().zip(primals).zip(tangents) {
        env[v.index()] = Some((x.clone(), t.clone()));
    }
    let read = |env: &[Option<(Array, Tangent)>], a: &Atom| -> Result<(Array, Tangent)> {
        match a {
            Atom::Lit(s) => Ok((Array::from_host(HostArray::scalar(*s)), None)),
            Atom::Var(v) => env[v.index()].clone().ok_or_else(|| undefined(*v)),
        }
    };
    for e in &p.eqns {
        let (xs, ts): (Vec<Array>, Vec<Tangent>) =
            e.inputs.iter().map(|a| read(&env, a)).collect::<Result<Vec<_>>>()?.into_iter().unzip();
        let (outs, touts) = lax::at(e.loc, || rules::jvp(&e.prim, &xs, &ts)).map_err(|err| locate(err, e.loc))?;
        for ((v, o), t) in e.outputs.iter().zip(outs).zip(touts) {
            env[v.index()] = Some((o, t));
        }
    }
    let outs = p.outputs.iter().map(|a| read(&env, a)).collect::<Result<Vec<_>>>()?;
    Ok(outs.into_iter().unzip())
}

fn undefined(v: arrayjit_ir::Var) -> Error {
    Error::Invalid { message: format!("variable {v:?} is used before it is defined"), loc: Loc::default() }
}

/// A list tree of `n` leaves.
pub(crate) fn list_def(n: usize) -> TreeDef {
    TreeDef::List(vec![TreeDef::Leaf; n])
}

/// The JVP program of `p`: its inputs are `p`'s inputs, then a tangent for each
/// input marked in `diff`; its outputs are `p`'s outputs, then their tangents
/// (zeros materialised).
pub fn jvp_program(p: &Program, diff: &[bool]) -> Result<Program> {
    let in_avals = p.in_avals();
    let mut avals = in_avals.clone();
    avals.extend(in_avals.iter().zip(diff).filter(|(_, d)| **d).map(|(a, _)| a.clone()));
    let n = in_avals.len();
    let out_avals: Vec<AVal> = p.out_avals();
    let traced = trace_avals(
        |args: Vec<Array>| -> Result<Vec<Array>> {
            let (primals, rest) = args.split_at(n);
            let mut rest = rest.iter();
            let tangents: Vec<Tangent> = diff.iter().map(|d| if *d { rest.next().cloned() } else { None }).collect();
            let (outs, touts) = jvp_eval(p, primals, &tangents)?;
            let mut all = outs;
            for (t, a) in touts.iter().zip(&out_avals) {
                all.push(instantiate(t, a)?);
            }
            Ok(all)
        },
        &list_def(avals.len()),
        &avals,
        Loc::default(),
    )?;
    Ok(traced.program)
}
