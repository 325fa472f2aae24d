//! Loop-carried reuse for `scan`: when a loop body applies the same product
//! (or factorization) to a carry as it enters the iteration and to the value
//! the iteration leaves in that carry, the second result is the first one of
//! the next iteration. The pass carries it over instead of computing it
//! twice: the value for the first iteration is computed once before the
//! loop, and the loop gains a carry.
//!
//! The PLN step is the case in point: its loss reads MᵀM of the variational
//! means M, and its closed-form Σ update reads MᵀM of the updated M, which
//! is the next iteration's M. One of the step's three large products goes.
//!
//! Only library operations qualify (their cost is far above that of a small
//! extra carry); both applications must be the same primitive, with the same
//! parameters, on operands that correspond carry for carry (everything else
//! loop-invariant). Results are bit-for-bit unchanged: the carried value is
//! computed by the same operation on the same operands.

use super::rebuild::Rebuild;
use arrayjit_ir::prim::Control;
use arrayjit_ir::{Atom, Eqn, Loc, Prim, Program, ProgramBuilder, Var};
use std::sync::Arc;

/// The program with every scan's recomputed carried products carried instead (inner loops first).
pub fn reuse_carried(p: &Program) -> Program {
    add_carries_to_scans(p, reuse_carried, &|body, nc, nk, ins, outer, loc| {
        let pairs = matches(body, nc, nk);
        if pairs.is_empty() {
            return None;
        }
        let inits = initial_values(body, &pairs, ins, outer, loc);
        Some((carry_over(body, nc, nk, &pairs), inits))
    })
}

/// What a carry-adding pass makes of one loop body (given its numbers of
/// constants and carries, the scan's operands and the program before the
/// loop): the new body, whose carries are the old ones followed by new ones,
/// and the new carries' initial values, emitted before the loop. `None`
/// leaves the loop as it is.
pub(super) type BodyRewrite<'a> =
    dyn Fn(&Program, usize, usize, &[Atom], &mut ProgramBuilder, Loc) -> Option<(Program, Vec<Atom>)> + 'a;

/// `p` with `rewrite` applied to the body of every scan that runs at least
/// once, after `recurse` has been applied to the body (for loops inside it).
pub(super) fn add_carries_to_scans(
    p: &Program,
    recurse: fn(&Program) -> Program,
    rewrite: &BodyRewrite<'_>,
) -> Program {
    if !p.eqns.iter().any(|e| matches!(e.prim, Prim::Control(Control::Scan { .. }))) {
        return p.clone();
    }
    let mut r = Rebuild::new(p);
    for e in &p.eqns {
        let ins = r.inputs(e);
        let Prim::Control(Control::Scan { body, num_consts, num_carry, length, .. }) = &e.prim else {
            r.copy(e, ins);
            continue;
        };
        let body = recurse(body);
        let rewritten = if *length > 0 { rewrite(&body, *num_consts, *num_carry, &ins, &mut r.b, e.loc) } else { None };
        match rewritten {
            Some((body, inits)) => add_carries(&mut r, e, ins, body, inits),
            None => add_carries(&mut r, e, ins, body, Vec::new()),
        }
    }
    r.finish()
}

/// Emits scan equation `e` (operands `ins`) with `body`, whose carries are
/// `e`'s followed by `inits.len()` more, which start from `inits`; their
/// final values are not read. (Any other equation is copied as it is.)
fn add_carries(r: &mut Rebuild, e: &Eqn, ins: Vec<Atom>, body: Program, inits: Vec<Atom>) {
    let Prim::Control(Control::Scan { num_consts: nc, num_carry: nk, length, reverse, unroll, .. }) = &e.prim else {
        r.copy(e, ins);
        return;
    };
    let (nc, nk, added) = (*nc, *nk, inits.len());
    let extra: Vec<_> = body.inputs[nc + nk..nc + nk + added].iter().map(|v| body.aval(*v).clone()).collect();
    let prim = Control::Scan {
        body: Arc::new(body),
        num_consts: nc,
        num_carry: nk + added,
        length: *length,
        reverse: *reverse,
        unroll: *unroll,
    };
    let mut operands = ins[..nc + nk].to_vec();
    operands.extend(inits);
    operands.extend_from_slice(&ins[nc + nk..]);
    let mut avals = r.out_avals(e);
    let ys = avals.split_off(nk);
    avals.extend(extra);
    avals.extend(ys);
    let outs = r.b.add_eqn(prim.into(), operands, avals, e.loc);
    let kept: Vec<_> = outs[..nk].iter().chain(&outs[nk + added..]).copied().collect();
    r.set_all(&e.outputs, kept);
}

/// Pairs `(i, j)` of body equations: `i` reads carries as they enter (and
/// loop-invariant values), `j` is the same operation on the values those
/// carries leave with.
fn matches(body: &Program, nc: usize, nk: usize) -> Vec<(usize, usize)> {
    let n = body.num_vars();
    let mut carry_in: Vec<Option<usize>> = vec![None; n];
    for (k, v) in body.inputs[nc..nc + nk].iter().enumerate() {
        carry_in[v.index()] = Some(k);
    }
    let mut invariant = vec![false; n];
    for v in body.consts.iter().map(|(v, _)| v).chain(&body.inputs[..nc]) {
        invariant[v.index()] = true;
    }
    let mut pairs = Vec::new();
    for (i, e) in body.eqns.iter().enumerate() {
        if !matches!(e.prim, Prim::Linalg(_)) {
            continue;
        }
        let mut reads_carry = false;
        let mut next = Vec::with_capacity(e.inputs.len());
        for a in &e.inputs {
            match a {
                Atom::Var(v) => match carry_in[v.index()] {
                    Some(k) => {
                        reads_carry = true;
                        next.push(body.outputs[k]);
                    }
                    None if invariant[v.index()] => next.push(*a),
                    None => break,
                },
                Atom::Lit(_) => next.push(*a),
            }
        }
        if !reads_carry || next.len() != e.inputs.len() {
            continue;
        }
        if let Some(j) = body.eqns.iter().position(|f| f.prim == e.prim && f.inputs == next) {
            if j != i {
                pairs.push((i, j));
            }
        }
    }
    pairs
}

/// Emits each pair's first operation before the loop, on the scan's initial
/// carries and constant operands (`ins`); returns its results.
fn initial_values(
    body: &Program,
    pairs: &[(usize, usize)],
    ins: &[Atom],
    outer: &mut ProgramBuilder,
    loc: Loc,
) -> Vec<Atom> {
    let mut out = Vec::new();
    for &(i, _) in pairs {
        let e = &body.eqns[i];
        let operands = e
            .inputs
            .iter()
            .map(|a| match a {
                Atom::Var(v) => match body.inputs.iter().position(|u| u == v) {
                    Some(pos) => ins[pos],
                    None => {
                        let value = body.consts.iter().find(|(u, _)| u == v).map(|(_, c)| c.clone());
                        // `matches` admits only inputs and constants.
                        value.map(|c| Atom::Var(outer.add_const(c))).unwrap_or(*a)
                    }
                },
                lit => *lit,
            })
            .collect();
        let avals = e.outputs.iter().map(|v| body.aval(*v).clone()).collect();
        out.extend(outer.add_eqn(e.prim.clone(), operands, avals, loc).into_iter().map(Atom::Var));
    }
    out
}

/// The body with each pair's first operation replaced by new carries (after
/// the old ones), whose next values are the second operation's results.
fn carry_over(body: &Program, nc: usize, nk: usize, pairs: &[(usize, usize)]) -> Program {
    let carried: Vec<Var> = pairs.iter().flat_map(|&(i, _)| body.eqns[i].outputs.iter().copied()).collect();
    let nb = BodyWithCarries::new(body, nc, nk, &carried);
    let next = pairs.iter().flat_map(|&(_, j)| body.eqns[j].outputs.iter().map(|v| nb.get(&Atom::Var(*v)))).collect();
    nb.finish(next)
}

/// A loop body rebuilt with new carries: its constants and carries, then
/// one new carry per variable of `carried` (which the new carry stands for:
/// the equations defining them are dropped), then its scanned inputs, and
/// a copy of every other equation.
pub(super) struct BodyWithCarries<'p> {
    old: &'p Program,
    nk: usize,
    pub b: ProgramBuilder,
    map: Vec<Option<Atom>>,
}

impl<'p> BodyWithCarries<'p> {
    pub(super) fn new(body: &'p Program, nc: usize, nk: usize, carried: &[Var]) -> Self {
        let mut b = ProgramBuilder::new();
        let mut map: Vec<Option<Atom>> = vec![None; body.num_vars()];
        for (v, value) in &body.consts {
            map[v.index()] = Some(Atom::Var(b.add_const(value.clone())));
        }
        let inputs = body.inputs[..nc + nk].iter().chain(carried).chain(&body.inputs[nc + nk..]);
        for v in inputs {
            map[v.index()] = Some(Atom::Var(b.add_input(body.aval(*v).clone())));
        }
        for e in &body.eqns {
            if e.outputs.iter().all(|v| carried.contains(v)) {
                continue;
            }
            let ins = e.inputs.iter().map(|a| get(&map, a)).collect();
            let avals = e.outputs.iter().map(|v| body.aval(*v).clone()).collect();
            for (o, x) in e.outputs.iter().zip(b.add_eqn(e.prim.clone(), ins, avals, e.loc)) {
                if !carried.contains(o) {
                    map[o.index()] = Some(Atom::Var(x));
                }
            }
        }
        BodyWithCarries { old: body, nk, b, map }
    }

    /// The new atom of an old one.
    pub(super) fn get(&self, a: &Atom) -> Atom {
        get(&self.map, a)
    }

    /// The body, returning the old carries' next values, then `next` (the
    /// new carries'), then the old per-iteration outputs.
    pub(super) fn finish(self, next: Vec<Atom>) -> Program {
        let old = &self.old.outputs;
        let mut outputs: Vec<Atom> = old[..self.nk].iter().map(|a| self.get(a)).collect();
        outputs.extend(next);
        outputs.extend(old[self.nk..].iter().map(|a| self.get(a)));
        arrayjit_ir::dce(&self.b.finish(outputs))
    }
}

fn get(map: &[Option<Atom>], a: &Atom) -> Atom {
    match a {
        Atom::Var(v) => map[v.index()].unwrap_or(*a),
        lit => *lit,
    }
}
