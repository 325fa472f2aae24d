//! Partial evaluation of loops and conditionals whose operands are partly
//! known: each such equation is rewritten into a known equation and an
//! unknown one, so that the whole-equation split of `partial_eval` can put
//! them on different sides (as JAX's `_scan_partial_eval`).
//!
//! A scan splits into a known scan (the known carries and ys, plus the
//! residuals the unknown side needs, stacked per iteration as extra ys) and
//! an unknown scan that reads those stacks as extra xs; residuals that are
//! loop-invariant constants are passed once instead of stacked. A cond
//! splits into a known cond whose branches return every branch's residuals
//! (zeros for the other branches') and an unknown cond that reads them. A
//! `while` with unknown operands cannot be split (reverse mode through it is
//! refused with advice).

use crate::partial_eval::partial_eval;
use crate::rules::control::while_error;
use arrayjit_ir::prim::{Control, ShapeOp};
use arrayjit_ir::{AVal, Atom, Eqn, Prim, Program, ProgramBuilder, Scalar, Var};
use arrayjit_trace::{Error, Result};
use std::sync::Arc;

/// `p` with every partly-known loop and conditional split in two.
pub(crate) fn split_control(p: &Program, unknown_in: &[bool]) -> Result<Program> {
    if !p
        .eqns
        .iter()
        .any(|e| matches!(e.prim, Prim::Control(Control::Scan { .. } | Control::While { .. } | Control::Cond { .. })))
    {
        return Ok(p.clone());
    }
    let mut s =
        Splitter { b: ProgramBuilder::new(), map: vec![None; p.num_vars()], unknown: vec![false; p.num_vars()] };
    for (v, value) in &p.consts {
        s.map[v.index()] = Some(s.b.add_const(value.clone()).into());
    }
    for (v, u) in p.inputs.iter().zip(unknown_in) {
        s.map[v.index()] = Some(s.b.add_input(p.aval(*v).clone()).into());
        s.unknown[v.index()] = *u;
    }
    for e in &p.eqns {
        let flags: Vec<bool> = e.inputs.iter().map(|a| s.is_unknown(a)).collect();
        let mixed = flags.iter().any(|u| *u) && !flags.iter().all(|u| *u);
        match &e.prim {
            Prim::Control(Control::Scan { body, num_consts, num_carry, length, reverse, unroll }) if mixed => {
                let op =
                    ScanOp { nc: *num_consts, nk: *num_carry, length: *length, reverse: *reverse, unroll: *unroll };
                s.split_scan(e, body, op, &flags)?
            }
            Prim::Control(Control::While { .. }) if flags.iter().any(|u| *u) => return Err(while_error()),
            Prim::Control(Control::Cond { branches }) if mixed && !flags[0] => s.split_cond(p, e, branches, &flags)?,
            _ => {
                let ins = e.inputs.iter().map(|a| s.atom(a)).collect::<Result<Vec<_>>>()?;
                let avals = e.outputs.iter().map(|v| p.aval(*v).clone()).collect();
                let outs = s.b.add_eqn(e.prim.clone(), ins, avals, e.loc);
                let u = flags.iter().any(|u| *u);
                for (o, n) in e.outputs.iter().zip(outs) {
                    s.bind(*o, n.into(), u);
                }
            }
        }
    }
    let outs = p.outputs.iter().map(|a| s.atom(a)).collect::<Result<Vec<_>>>()?;
    Ok(s.b.finish(outs))
}

#[derive(Clone, Copy)]
struct ScanOp {
    nc: usize,
    nk: usize,
    length: usize,
    reverse: bool,
    unroll: usize,
}

struct Splitter {
    b: ProgramBuilder,
    map: Vec<Option<Atom>>,
    unknown: Vec<bool>,
}

/// Which outputs of `p` depend on inputs marked unknown, once its own
/// loops and conditionals are split (so that a nested loop's known part
/// stays known).
fn unknown_outputs(p: &Program, unknown_in: &[bool]) -> Result<Vec<bool>> {
    let p = &split_control(p, unknown_in)?;
    let mut u = vec![false; p.num_vars()];
    for (v, f) in p.inputs.iter().zip(unknown_in) {
        u[v.index()] = *f;
    }
    let is = |u: &[bool], a: &Atom| matches!(a, Atom::Var(v) if u[v.index()]);
    for e in &p.eqns {
        let any = e.inputs.iter().any(|a| is(&u, a));
        for o in &e.outputs {
            u[o.index()] = any;
        }
    }
    Ok(p.outputs.iter().map(|a| is(&u, a)).collect())
}

fn internal(message: &str) -> Error {
    Error::Invalid { message: format!("partial evaluation: {message}"), loc: Default::default() }
}

impl Splitter {
    fn is_unknown(&self, a: &Atom) -> bool {
        matches!(a, Atom::Var(v) if self.unknown[v.index()])
    }

    fn atom(&self, a: &Atom) -> Result<Atom> {
        match a {
            Atom::Var(v) => self.map[v.index()].ok_or_else(|| internal("a variable has no value")),
            lit => Ok(*lit),
        }
    }

    fn bind(&mut self, old: Var, new: Atom, unknown: bool) {
        self.map[old.index()] = Some(new);
        self.unknown[old.index()] = unknown;
    }

    fn add(&mut self, prim: Prim, ins: Vec<Atom>, e: &Eqn) -> Result<Vec<Var>> {
        let avals: Vec<AVal> = ins
            .iter()
            .map(|a| match a {
                Atom::Var(v) => self.b.aval(*v).clone(),
                Atom::Lit(s) => AVal::scalar(s.dtype()),
            })
            .collect();
        let outs = prim.abstract_eval(&avals).map_err(|source| Error::Type { source, loc: e.loc })?;
        Ok(self.b.add_eqn(prim, ins, outs, e.loc))
    }

    fn split_scan(&mut self, e: &Eqn, body: &Arc<Program>, op: ScanOp, flags: &[bool]) -> Result<()> {
        let ScanOp { nc, nk, .. } = op;
        let n_in = flags.len();
        let mut in_u = flags.to_vec();
        // Fixed point: a carry is unknown if its update depends on anything unknown.
        let out_u = loop {
            let out_u = unknown_outputs(body, &in_u)?;
            let grown: Vec<usize> = (0..nk).filter(|&k| out_u[k] && !in_u[nc + k]).collect();
            if grown.is_empty() {
                break out_u;
            }
            grown.into_iter().for_each(|k| in_u[nc + k] = true);
        };
        let mut out_u = out_u;
        // A carry unknown on entry is unknown on exit.
        out_u[..nk].copy_from_slice(&in_u[nc..nc + nk]);
        let split = partial_eval(body, &in_u, &out_u)?;
        let known_ins: Vec<usize> = (0..n_in).filter(|&i| !in_u[i]).collect();
        let unknown_ins: Vec<usize> = (0..n_in).filter(|&i| in_u[i]).collect();
        let n_kc = known_ins.iter().filter(|&&i| i < nc).count();
        let n_kk = known_ins.iter().filter(|&&i| i >= nc && i < nc + nk).count();
        let n_uc = unknown_ins.iter().filter(|&&i| i < nc).count();
        let n_uk = unknown_ins.iter().filter(|&&i| i >= nc && i < nc + nk).count();
        let n_known_out = out_u.iter().filter(|u| !**u).count();
        let m = split.num_residuals;
        // Residuals that are known constants of the body: passed once.
        let known = &split.known;
        let invariant: Vec<Option<usize>> = (0..m)
            .map(|r| match known.outputs.get(n_known_out + r) {
                Some(Atom::Var(v)) => known.inputs[..n_kc].iter().position(|i| i == v),
                _ => None,
            })
            .collect();
        let mut kbody = known.clone();
        kbody.outputs = known
            .outputs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j < n_known_out || invariant[j - n_known_out].is_none())
            .map(|(_, a)| *a)
            .collect();
        let kbody = arrayjit_ir::dce(&kbody);
        let ins: Vec<Atom> = e.inputs.iter().map(|a| self.atom(a)).collect::<Result<_>>()?;
        let kprim = Control::Scan {
            body: Arc::new(kbody),
            num_consts: n_kc,
            num_carry: n_kk,
            length: op.length,
            reverse: op.reverse,
            unroll: op.unroll,
        };
        let kouts = self.add(kprim.into(), known_ins.iter().map(|&i| ins[i]).collect(), e)?;
        let (kvals, stacks) = kouts.split_at(n_known_out);
        // The unknown body: (invariant residuals, unknown consts, unknown carries, unknown xs, stacked residuals).
        let ub = &split.unknown;
        let uavals = ub.in_avals();
        let n_inv = invariant.iter().flatten().count();
        let n_u = unknown_ins.len();
        let mut map = vec![0; m + n_u];
        let (mut inv_at, mut var_at) = (0, 0);
        for (r, inv) in invariant.iter().enumerate() {
            map[r] = match inv {
                Some(_) => {
                    inv_at += 1;
                    inv_at - 1
                }
                None => {
                    var_at += 1;
                    n_inv + n_u + var_at - 1
                }
            };
        }
        for j in 0..n_u {
            map[m + j] = n_inv + j;
        }
        let mut new_avals = vec![AVal::scalar(arrayjit_ir::DType::Bool); m + n_u];
        for (old, &new) in map.iter().enumerate() {
            new_avals[new] = uavals[old].clone();
        }
        let ubody = ub.rebind_inputs(&new_avals, &map);
        let mut uops: Vec<Atom> = invariant.iter().flatten().map(|&c| ins[known_ins[c]]).collect();
        uops.extend(unknown_ins.iter().map(|&i| ins[i]));
        uops.extend(stacks.iter().map(|v| Atom::Var(*v)));
        let uprim = Control::Scan {
            body: Arc::new(ubody),
            num_consts: n_inv + n_uc,
            num_carry: n_uk,
            length: op.length,
            reverse: op.reverse,
            unroll: op.unroll,
        };
        let uouts = self.add(uprim.into(), uops, e)?;
        let (mut ki, mut ui) = (kvals.iter(), uouts.iter());
        for (o, u) in e.outputs.iter().zip(&out_u) {
            let v = if *u { ui.next() } else { ki.next() };
            let v = v.ok_or_else(|| internal("a scan output is missing after the split"))?;
            self.bind(*o, Atom::Var(*v), *u);
        }
        Ok(())
    }

    fn split_cond(&mut self, p: &Program, e: &Eqn, branches: &[Arc<Program>], flags: &[bool]) -> Result<()> {
        let op_u = &flags[1..];
        let mut out_u = vec![false; branches[0].outputs.len()];
        for b in branches {
            for (o, u) in out_u.iter_mut().zip(unknown_outputs(b, op_u)?) {
                *o |= u;
            }
        }
        let splits = branches.iter().map(|b| partial_eval(b, op_u, &out_u)).collect::<Result<Vec<_>>>()?;
        // Every branch's residuals, in branch order.
        let res_avals: Vec<Vec<AVal>> = splits
            .iter()
            .map(|s| {
                let outs = s.known.out_avals();
                outs[outs.len() - s.num_residuals..].to_vec()
            })
            .collect();
        let all_res: Vec<AVal> = res_avals.iter().flatten().cloned().collect();
        let n_known_out = out_u.iter().filter(|u| !**u).count();
        let kbranches: Vec<Arc<Program>> = splits
            .iter()
            .enumerate()
            .map(|(i, s)| Arc::new(pad_residuals(&s.known, n_known_out, &res_avals, i)))
            .collect();
        let ins: Vec<Atom> = e.inputs.iter().map(|a| self.atom(a)).collect::<Result<_>>()?;
        let known_ops: Vec<usize> = (0..op_u.len()).filter(|&i| !op_u[i]).collect();
        let unknown_ops: Vec<usize> = (0..op_u.len()).filter(|&i| op_u[i]).collect();
        let mut kops = vec![ins[0]];
        kops.extend(known_ops.iter().map(|&i| ins[1 + i]));
        let kouts = self.add(Control::Cond { branches: kbranches }.into(), kops, e)?;
        let (kvals, res) = kouts.split_at(n_known_out);
        let n_res = all_res.len();
        let mut offset = 0;
        let mut ubranches = Vec::with_capacity(splits.len());
        for (s, ra) in splits.iter().zip(&res_avals) {
            let mut avals = all_res.clone();
            avals.extend(unknown_ops.iter().map(|&i| p_aval(p, e, 1 + i)));
            let map: Vec<usize> = (offset..offset + ra.len()).chain(n_res..n_res + unknown_ops.len()).collect();
            ubranches.push(Arc::new(s.unknown.rebind_inputs(&avals, &map)));
            offset += ra.len();
        }
        let mut uops = vec![ins[0]];
        uops.extend(res.iter().map(|v| Atom::Var(*v)));
        uops.extend(unknown_ops.iter().map(|&i| ins[1 + i]));
        let uouts = self.add(Control::Cond { branches: ubranches }.into(), uops, e)?;
        let (mut ki, mut ui) = (kvals.iter(), uouts.iter());
        for (o, u) in e.outputs.iter().zip(&out_u) {
            let v = if *u { ui.next() } else { ki.next() };
            let v = v.ok_or_else(|| internal("a cond output is missing after the split"))?;
            self.bind(*o, Atom::Var(*v), *u);
        }
        Ok(())
    }
}

/// The type of operand `i` of `e` in `p`.
fn p_aval(p: &Program, e: &Eqn, i: usize) -> AVal {
    p.atom_aval(&e.inputs[i])
}

/// Branch `mine`'s known program, returning its known outputs, then every
/// branch's residuals: its own, and zeros in the other branches' places.
fn pad_residuals(known: &Program, n_out: usize, res: &[Vec<AVal>], mine: usize) -> Program {
    let mut b = ProgramBuilder::new();
    let args: Vec<Atom> = known.inputs.iter().map(|v| b.add_input(known.aval(*v).clone()).into()).collect();
    let all = b.inline(known, &args);
    let mut outs: Vec<Atom> = all[..n_out].to_vec();
    let mut own = all[n_out..].iter();
    for (i, avals) in res.iter().enumerate() {
        for a in avals {
            if i == mine {
                if let Some(r) = own.next() {
                    outs.push(*r);
                }
                continue;
            }
            let zero = Atom::Lit(Scalar::from_f64(0.0, a.dtype));
            if a.rank() == 0 {
                outs.push(zero);
            } else {
                let bc = ShapeOp::BroadcastInDim { shape: a.shape.clone(), dims: vec![] };
                outs.push(b.add_eqn(bc.into(), vec![zero], vec![a.clone()], Default::default())[0].into());
            }
        }
    }
    b.finish(outs)
}
