//! Carried log-determinants for `scan`: when a loop body takes the
//! log-determinant of a carry as it enters (`Σ log diag cholesky(X)`, how
//! `logdet` traces) and leaves in that carry the inverse of a matrix it has
//! just factored (`X' = cholesky_inverse(L)` with `L = cholesky(Y)`, how the
//! inverse of a symmetric positive-definite matrix traces, or the same inverse
//! as `L⁻ᵀ·(L⁻¹·I)`), the next iteration's log-determinant is known without factoring `X'`:
//! `Σ log diag cholesky(Y⁻¹) = ½ logdet Y⁻¹ = −Σ log diag L`.
//! The pass carries that value instead. The value for the first iteration
//! is computed once before the loop, as the body would have computed it, and
//! the loop gains a scalar carry.
//!
//! The PLN step is the case in point: its loss reads logdet Ω, and its
//! closed-form update leaves Ω = Σ⁻¹. One of the step's two Cholesky
//! factorizations goes. From the second iteration on the carried value
//! rounds differently from a factorization of the rounded inverse (it is
//! the more accurate of the two); it feeds no derivative here, only values.

use super::carry::{add_carries_to_scans, BodyWithCarries};
use crate::idioms::{is_eye_mask, is_zero, Def};
use arrayjit_ir::prim::{Elementwise as E, Linalg, Reduction};
use arrayjit_ir::{Atom, Loc, Prim, Program, ProgramBuilder, Var};

/// The program with every scan's carried log-determinants carried (inner loops first).
pub fn carry_log_determinants(p: &Program) -> Program {
    add_carries_to_scans(p, carry_log_determinants, &|body, nc, nk, ins, outer, loc| {
        let producer = body.producers();
        let mut inits = Vec::new();
        let mut kept = Vec::new();
        for m in find(body, &producer, nc, nk) {
            if let Some(init) = initial_value(body, &producer, nc, &m, ins, outer, loc) {
                inits.push(init);
                kept.push(m);
            }
        }
        (!kept.is_empty()).then(|| (rewrite_body(body, nc, nk, &kept), inits))
    })
}

/// A carried log-determinant found in a body (indices are the body's).
struct Found {
    /// The carry whose log-determinant is taken.
    carry: usize,
    /// `h = Σ log diag cholesky(carry)`, a scalar.
    half_logdet: Var,
    /// The diagonal chain after the factor: `select(eye, F, 0)`, the sum
    /// that picks the diagonal, `log`, the sum of the logs (equation indices).
    chain: [usize; 4],
    /// The factor `L` whose inverse product the carry leaves with.
    next_factor: Atom,
}

/// Every carry of `body` whose log-determinant the body takes and whose next
/// value is the inverse of a matrix the body factors.
fn find(body: &Program, producer: &[Option<usize>], nc: usize, nk: usize) -> Vec<Found> {
    let n = body.num_vars();
    let mut uses: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, e) in body.eqns.iter().enumerate() {
        for a in &e.inputs {
            if let Atom::Var(v) = a {
                uses[v.index()].push(i);
            }
        }
    }
    let is_output: Vec<bool> = {
        let mut o = vec![false; n];
        for a in &body.outputs {
            if let Atom::Var(v) = a {
                o[v.index()] = true;
            }
        }
        o
    };
    let def: &Def<'_> = &|a: &Atom| match a {
        Atom::Var(v) => producer[v.index()].map(|i| (&body.eqns[i].prim, body.eqns[i].inputs.as_slice())),
        Atom::Lit(_) => None,
    };
    // The one equation reading `v`, when nothing else (an output included) does.
    let only_use = |v: Var| -> Option<usize> {
        match uses[v.index()].as_slice() {
            [i] if !is_output[v.index()] => Some(*i),
            _ => None,
        }
    };
    let mut found = Vec::new();
    for carry in 0..nk {
        let x = body.inputs[nc + carry];
        for (c, e) in body.eqns.iter().enumerate() {
            if e.prim != Prim::Linalg(Linalg::Cholesky) || e.inputs != [Atom::Var(x)] {
                continue;
            }
            let Some(chain) = diagonal_log_sum(body, def, &only_use, c) else { continue };
            let Some(next_factor) = inverse_factor(def, &body.outputs[carry]) else { continue };
            let half_logdet = body.eqns[chain[3]].outputs[0];
            found.push(Found { carry, half_logdet, chain, next_factor });
            break;
        }
    }
    found
}

/// The chain `select(eye, F, 0) → sum over one axis → log → sum` that is
/// the only reader of factor `F` (equation `c`'s output).
fn diagonal_log_sum(
    body: &Program,
    def: &Def<'_>,
    only_use: &dyn Fn(Var) -> Option<usize>,
    c: usize,
) -> Option<[usize; 4]> {
    let f = body.eqns[c].outputs[0];
    let s = only_use(f)?;
    let sel = &body.eqns[s];
    let picks_diagonal = matches!(sel.prim, Prim::Elementwise(E::Select))
        && sel.inputs[1] == Atom::Var(f)
        && is_eye_mask(def, &sel.inputs[0])
        && is_zero(def, &sel.inputs[2]);
    let r1 = only_use(sel.outputs[0])?;
    let one_axis = |i: usize| matches!(&body.eqns[i].prim, Prim::Reduce(Reduction::Sum { axes }) if axes.len() == 1);
    let g = only_use(body.eqns[r1].outputs[0])?;
    let r2 = only_use(body.eqns[g].outputs[0])?;
    let is_log = body.eqns[g].prim == Prim::Elementwise(E::Log);
    (picks_diagonal && one_axis(r1) && is_log && one_axis(r2)).then_some([s, r1, g, r2])
}

/// `L` when `a` is the inverse from `L = cholesky(Y)`: `cholesky_inverse(L)`,
/// or `L⁻ᵀ·(L⁻¹·I)` (two left-side, lower, non-unit solves with `L`, the
/// first against an identity matrix).
fn inverse_factor(def: &Def<'_>, a: &Atom) -> Option<Atom> {
    let factored = |l: &Atom| matches!(def(l), Some((Prim::Linalg(Linalg::Cholesky), _)));
    if let Some((Prim::Linalg(Linalg::CholeskyInverse), [l])) = def(a) {
        return factored(l).then_some(*l);
    }
    let solve = |a: &Atom, transpose: bool| match def(a) {
        Some((
            Prim::Linalg(Linalg::TriangularSolve { left_side: true, lower: true, transpose_a, unit_diagonal: false }),
            xs,
        )) if *transpose_a == transpose => Some((xs[0], xs[1])),
        _ => None,
    };
    let (l, inner) = solve(a, true)?;
    let (l2, identity) = solve(&inner, false)?;
    (l == l2 && factored(&l) && is_identity(def, &identity)).then_some(l)
}

/// An identity matrix: an identity mask converted to numbers.
fn is_identity(def: &Def<'_>, a: &Atom) -> bool {
    match def(a) {
        Some((Prim::Elementwise(E::Convert { .. }), xs)) => is_eye_mask(def, &xs[0]),
        _ => false,
    }
}

/// Emits, before the loop, the body's computation of `m.half_logdet` on the
/// scan's operands `ins` (the carry's initial value, loop constants, the
/// body's constants). `None` when it reads anything else.
fn initial_value(
    body: &Program,
    producer: &[Option<usize>],
    nc: usize,
    m: &Found,
    ins: &[Atom],
    outer: &mut ProgramBuilder,
    loc: Loc,
) -> Option<Atom> {
    let n = body.num_vars();
    // The equations `half_logdet` depends on, and what its leaves become outside.
    let mut map: Vec<Option<Atom>> = vec![None; n];
    let mut needed = vec![false; body.eqns.len()];
    let mut stack = vec![m.half_logdet];
    while let Some(v) = stack.pop() {
        if map[v.index()].is_some() {
            continue;
        }
        if let Some(i) = producer[v.index()] {
            if !needed[i] {
                needed[i] = true;
                if matches!(body.eqns[i].prim, Prim::Control(_)) {
                    return None;
                }
                stack.extend(body.eqns[i].inputs.iter().filter_map(|a| match a {
                    Atom::Var(u) => Some(*u),
                    Atom::Lit(_) => None,
                }));
            }
        } else if let Some(pos) = body.inputs.iter().position(|u| *u == v) {
            if pos >= nc && pos != nc + m.carry {
                return None;
            }
            map[v.index()] = Some(ins[pos]);
        } else {
            let value = body.consts.iter().find(|(u, _)| *u == v).map(|(_, c)| c.clone())?;
            map[v.index()] = Some(Atom::Var(outer.add_const(value)));
        }
    }
    for (e, _) in body.eqns.iter().zip(&needed).filter(|(_, n)| **n) {
        let operands = e.inputs.iter().map(|a| match a {
            Atom::Var(v) => map[v.index()].unwrap_or(*a),
            lit => *lit,
        });
        let avals = e.outputs.iter().map(|v| body.aval(*v).clone()).collect();
        let outs = outer.add_eqn(e.prim.clone(), operands.collect(), avals, loc);
        for (o, x) in e.outputs.iter().zip(outs) {
            map[o.index()] = Some(Atom::Var(x));
        }
    }
    map[m.half_logdet.index()]
}

/// The body with each found log-determinant read from a new carry (after
/// the old ones), whose next value is `−Σ log diag L`, computed by the same
/// diagonal chain on `L`.
fn rewrite_body(body: &Program, nc: usize, nk: usize, found: &[Found]) -> Program {
    let carried: Vec<Var> = found.iter().map(|m| m.half_logdet).collect();
    let mut nb = BodyWithCarries::new(body, nc, nk, &carried);
    let mut next = Vec::new();
    for m in found {
        // The same chain on the next factor: select(eye, L, 0), the sums and the log.
        let [sel, rest @ ..] = m.chain.map(|i| &body.eqns[i]);
        let emit = |b: &mut ProgramBuilder, e: &arrayjit_ir::Eqn, ins: Vec<Atom>| {
            let avals = e.outputs.iter().map(|v| body.aval(*v).clone()).collect();
            Atom::Var(b.add_eqn(e.prim.clone(), ins, avals, e.loc)[0])
        };
        let picked = vec![nb.get(&sel.inputs[0]), nb.get(&m.next_factor), nb.get(&sel.inputs[2])];
        let mut x = emit(&mut nb.b, sel, picked);
        for e in rest {
            x = emit(&mut nb.b, e, vec![x]);
        }
        let aval = body.aval(m.half_logdet).clone();
        let loc = body.eqns[m.chain[3]].loc;
        next.push(Atom::Var(nb.b.add_eqn(Prim::Elementwise(E::Neg), vec![x], vec![aval], loc)[0]));
    }
    nb.finish(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayjit_ir::{parse, typecheck, Data, HostArray};

    /// A loop carrying `x` and `y`: each iteration reads `h = Σ log diag
    /// cholesky(x)` (and lets it shape `y`), then leaves `x = y⁻¹` through
    /// `y`'s factor, or (`inverse = false`) `x = y` itself. The inverse is
    /// `cholesky_inverse`, or two triangular solves when `solves`.
    fn program(inverse: bool, extra_use: bool, solves: bool) -> Program {
        let next = if inverse { "x2" } else { "y3" };
        let inv = if solves {
            "t1:f64[3,3] = triangular_solve[left_side=true lower=true transpose_a=false unit_diagonal=false] k id
             x2:f64[3,3] = triangular_solve[left_side=true lower=true transpose_a=true unit_diagonal=false] k t1"
        } else {
            "x2:f64[3,3] = cholesky_inverse k"
        };
        let out = if extra_use { "f" } else { "y3" };
        parse(&format!(
            "{{ lambda ; x:f64[3,3] y:f64[3,3] . let
                a:f64[3,3] b:f64[3,3] c:f64[5] = scan[length=5 num_consts=0 num_carry=2 reverse=false unroll=1
                  body={{ lambda ; x:f64[3,3] y:f64[3,3] . let
                    f:f64[3,3] = cholesky x
                    i0:i32[3,3] = iota[dtype=i32 shape=(3,3) dimension=0]
                    i1:i32[3,3] = iota[dtype=i32 shape=(3,3) dimension=1]
                    e:bool[3,3] = eq i0 i1
                    s:f64[3,3] = select e f 0.0:f64
                    d:f64[3] = reduce_sum[axes=(1)] s
                    l:f64[3] = log d
                    h:f64[] = reduce_sum[axes=(0)] l
                    q:f64[] = mul h 0.1:f64
                    q1:f64[] = add q 1.0:f64
                    qb:f64[3,3] = broadcast_in_dim[shape=(3,3) broadcast_dimensions=()] q1
                    y2:f64[3,3] = mul y qb
                    id:f64[3,3] = convert[new_dtype=f64] e
                    hid:f64[3,3] = mul id 0.5:f64
                    y3:f64[3,3] = add y2 hid
                    k:f64[3,3] = cholesky y3
                    {inv}
                  in ({next}, {out}, h) }}] x y
              in (a, b, c) }}"
        ))
        .unwrap()
    }

    fn spd(seed: f64) -> HostArray {
        let g: Vec<f64> = (0..9).map(|i| ((i as f64 + seed) * 0.71).sin()).collect();
        // G·Gᵀ + I is symmetric positive definite.
        let v: Vec<f64> = (0..9)
            .map(|ij| {
                let (i, j) = (ij / 3, ij % 3);
                (0..3).map(|k| g[i * 3 + k] * g[j * 3 + k]).sum::<f64>() + if i == j { 1.0 } else { 0.0 }
            })
            .collect();
        HostArray::new([3, 3], Data::F64(v)).unwrap()
    }

    fn run(p: &Program) -> Vec<Vec<f64>> {
        let out = arrayjit_interp::eval_program(p, &[spd(0.3), spd(1.7)]).unwrap();
        out.iter().map(|a| (0..a.numel()).map(|i| a.data().get(i).as_f64()).collect()).collect()
    }

    fn factorizations_in_the_loop(p: &Program) -> usize {
        let Some(Prim::Control(arrayjit_ir::prim::Control::Scan { body, .. })) = p.eqns.last().map(|e| &e.prim) else {
            return 0;
        };
        body.eqns.iter().filter(|e| e.prim == Prim::Linalg(Linalg::Cholesky)).count()
    }

    #[test]
    fn the_log_determinant_of_a_carried_inverse_is_carried() {
        for solves in [false, true] {
            let p = program(true, false, solves);
            let q = carry_log_determinants(&p);
            typecheck(&q).unwrap();
            assert_eq!(factorizations_in_the_loop(&p), 2);
            assert_eq!(factorizations_in_the_loop(&q), 1, "{q}");
            let (want, got) = (run(&p), run(&q));
            for (w, g) in want.iter().zip(&got) {
                for (a, b) in w.iter().zip(g) {
                    assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()), "{want:?}\n{got:?}");
                }
            }
        }
    }

    #[test]
    fn other_loops_are_left_alone() {
        // The next value is not an inverse; the factor has another reader.
        for p in [program(false, false, false), program(true, true, false), program(true, true, true)] {
            let q = carry_log_determinants(&p);
            assert_eq!(factorizations_in_the_loop(&q), 2, "{q}");
            assert_eq!(run(&p), run(&q));
        }
    }
}
