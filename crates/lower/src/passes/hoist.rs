//! Loop-invariant code motion for `scan`: equations of a loop body that
//! depend only on the loop's constants (its constant operands, the body's
//! own constants, literals) run once before the loop, and their results
//! enter the loop as extra constants. A model's terms that depend on data
//! alone (the PLN's Σ log Yᵢⱼ!) are then computed once, not per iteration.
//!
//! Values cheap to recompute and fusable into their readers (broadcasts,
//! iotas, reshapes, transposes, conversions) are left in the body rather
//! than materialised as constants; loops of no iterations and nested
//! control flow are left alone.

use super::rebuild::Rebuild;
use arrayjit_ir::prim::{Control, Elementwise, ShapeOp};
use arrayjit_ir::{dce, Atom, Eqn, Prim, Program, ProgramBuilder};
use std::sync::Arc;

/// The program with every scan's invariant equations hoisted (inner loops first).
pub fn hoist_loop_invariants(p: &Program) -> Program {
    if !p.eqns.iter().any(|e| matches!(e.prim, Prim::Control(Control::Scan { .. }))) {
        return p.clone();
    }
    let mut r = Rebuild::new(p);
    for e in &p.eqns {
        let ins = r.inputs(e);
        match &e.prim {
            Prim::Control(Control::Scan { body, num_consts, num_carry, length, reverse, unroll }) if *length > 0 => {
                let body = hoist_loop_invariants(body);
                let plan = Plan::of(&body, *num_consts);
                let (new_consts, body) = if plan.hoisted.iter().any(|h| *h) {
                    plan.apply(&body, &ins[..*num_consts], &mut r.b)
                } else {
                    (Vec::new(), body)
                };
                let prim = Control::Scan {
                    body: Arc::new(body),
                    num_consts: num_consts + new_consts.len(),
                    num_carry: *num_carry,
                    length: *length,
                    reverse: *reverse,
                    unroll: *unroll,
                };
                let mut operands = new_consts;
                operands.extend_from_slice(&ins);
                let avals = r.out_avals(e);
                let outs = r.b.add_eqn(prim.into(), operands, avals, e.loc);
                r.set_all(&e.outputs, outs);
            }
            _ => r.copy(e, ins),
        }
    }
    r.finish()
}

/// Which body equations run before the loop.
struct Plan {
    hoisted: Vec<bool>,
}

/// Cheap to recompute where read, and fused there: never materialised just
/// to be hoisted. Besides index maps, that is arithmetic as cheap as a load
/// on at most one array (`-Y`, `0.5·Y`, `Y == 0`): hoisting it would have
/// the loop read a second array (or the same one twice) to save one
/// instruction per element.
///
/// Values computed from no array at all (an identity mask from two iotas)
/// do not count as arrays read: fused, they are index arithmetic.
fn cheap(e: &Eqn, body: &Program, from_nothing: &[bool]) -> bool {
    use Elementwise as E;
    match &e.prim {
        Prim::Shape(
            ShapeOp::BroadcastInDim { .. } | ShapeOp::Iota { .. } | ShapeOp::Reshape { .. } | ShapeOp::Transpose { .. },
        ) => true,
        Prim::Elementwise(op) => {
            let arrays = e
                .inputs
                .iter()
                .filter(|a| matches!(a, Atom::Var(v) if body.aval(*v).shape.numel() > 1 && !from_nothing[v.index()]));
            let light = !matches!(
                op,
                E::Exp
                    | E::Log
                    | E::Log1p
                    | E::Expm1
                    | E::Tanh
                    | E::Logistic
                    | E::Sin
                    | E::Cos
                    | E::Pow
                    | E::Div
                    | E::Sqrt
                    | E::Rsqrt
                    | E::Rem
            );
            matches!(op, E::Convert { .. }) || (light && arrays.count() <= 1)
        }
        _ => false,
    }
}

impl Plan {
    fn of(body: &Program, num_consts: usize) -> Plan {
        let n = body.num_vars();
        let mut invariant = vec![false; n];
        for (v, _) in &body.consts {
            invariant[v.index()] = true;
        }
        for v in &body.inputs[..num_consts] {
            invariant[v.index()] = true;
        }
        let is_inv = |inv: &[bool], a: &Atom| match a {
            Atom::Var(v) => inv[v.index()],
            Atom::Lit(_) => true,
        };
        let mut hoisted = vec![false; body.eqns.len()];
        for (i, e) in body.eqns.iter().enumerate() {
            if matches!(e.prim, Prim::Control(_)) || !e.inputs.iter().all(|a| is_inv(&invariant, a)) {
                continue;
            }
            hoisted[i] = true;
            for o in &e.outputs {
                invariant[o.index()] = true;
            }
        }
        // Un-hoist cheap equations whose results the loop reads, until none
        // is left at the boundary (their operands may become boundary values).
        let mut def = vec![None; n];
        let mut from_nothing = vec![false; n];
        for (i, e) in body.eqns.iter().enumerate() {
            let none_read = e.inputs.iter().all(|a| match a {
                Atom::Var(v) => from_nothing[v.index()],
                Atom::Lit(_) => true,
            });
            let index_arithmetic = none_read && cheap(e, body, &from_nothing);
            for o in &e.outputs {
                def[o.index()] = Some(i);
                from_nothing[o.index()] = index_arithmetic;
            }
        }
        // A value a library step or a loop reads is materialised in the loop
        // whatever it costs: computed once before the loop, it stays there.
        let mut library_operand = vec![false; n];
        for e in &body.eqns {
            if matches!(e.prim, Prim::Linalg(_) | Prim::Control(_)) {
                for a in &e.inputs {
                    if let Atom::Var(v) = a {
                        library_operand[v.index()] = true;
                    }
                }
            }
        }
        loop {
            let plan = Plan { hoisted: hoisted.clone() };
            let mut changed = false;
            for v in plan.boundary(body) {
                if let Some(d) = def[v] {
                    if !library_operand[v] && cheap(&body.eqns[d], body, &from_nothing) {
                        hoisted[d] = false;
                        changed = true;
                    }
                }
            }
            if !changed {
                return Plan { hoisted };
            }
        }
    }

    /// Results of hoisted equations that the loop still reads (by variable index).
    fn boundary(&self, body: &Program) -> Vec<usize> {
        let mut from_hoisted = vec![false; body.num_vars()];
        for (e, h) in body.eqns.iter().zip(&self.hoisted) {
            if *h {
                for o in &e.outputs {
                    from_hoisted[o.index()] = true;
                }
            }
        }
        let mut seen = vec![false; body.num_vars()];
        let mut out = Vec::new();
        let mut note = |a: &Atom| {
            if let Atom::Var(v) = a {
                if from_hoisted[v.index()] && !seen[v.index()] {
                    seen[v.index()] = true;
                    out.push(v.index());
                }
            }
        };
        for (e, h) in body.eqns.iter().zip(&self.hoisted) {
            if !*h {
                e.inputs.iter().for_each(&mut note);
            }
        }
        body.outputs.iter().for_each(&mut note);
        out
    }

    /// Emits the hoisted equations into `outer` (the loop's constant
    /// operands are `consts`) and returns the new constant operands and the
    /// body that reads them as its first inputs.
    fn apply(&self, body: &Program, consts: &[Atom], outer: &mut ProgramBuilder) -> (Vec<Atom>, Program) {
        let n = body.num_vars();
        // Outside: the body's constants and constant inputs, then the hoisted equations.
        let mut out_map: Vec<Option<Atom>> = vec![None; n];
        for (v, value) in &body.consts {
            out_map[v.index()] = Some(outer.add_const(value.clone()).into());
        }
        for (v, a) in body.inputs.iter().zip(consts) {
            out_map[v.index()] = Some(*a);
        }
        let get = |map: &[Option<Atom>], a: &Atom| match a {
            Atom::Var(v) => map[v.index()].unwrap_or(*a),
            lit => *lit,
        };
        // A cheap equation left in the loop may also feed hoisted ones: it
        // then runs outside as well.
        let mut outside = self.hoisted.clone();
        let mut read_outside = vec![false; n];
        for (i, e) in body.eqns.iter().enumerate().rev() {
            outside[i] |= e.outputs.iter().any(|o| read_outside[o.index()]);
            if outside[i] {
                for a in &e.inputs {
                    if let Atom::Var(v) = a {
                        read_outside[v.index()] = true;
                    }
                }
            }
        }
        for (e, h) in body.eqns.iter().zip(&outside) {
            if *h {
                let ins = e.inputs.iter().map(|a| get(&out_map, a)).collect();
                let avals = e.outputs.iter().map(|v| body.aval(*v).clone()).collect();
                for (o, x) in e.outputs.iter().zip(outer.add_eqn(e.prim.clone(), ins, avals, e.loc)) {
                    out_map[o.index()] = Some(x.into());
                }
            }
        }
        let boundary = self.boundary(body);
        let new_consts: Vec<Atom> =
            boundary.iter().map(|&v| out_map[v].unwrap_or(Atom::Var(arrayjit_ir::Var(v as u32)))).collect();
        // Inside: the boundary values as new leading inputs, then the old inputs.
        let mut b = ProgramBuilder::new();
        let mut in_map: Vec<Option<Atom>> = vec![None; n];
        for (v, value) in &body.consts {
            in_map[v.index()] = Some(b.add_const(value.clone()).into());
        }
        for &v in &boundary {
            in_map[v] = Some(b.add_input(body.aval(arrayjit_ir::Var(v as u32)).clone()).into());
        }
        for v in &body.inputs {
            in_map[v.index()] = Some(b.add_input(body.aval(*v).clone()).into());
        }
        for (e, h) in body.eqns.iter().zip(&self.hoisted) {
            if !*h {
                let ins = e.inputs.iter().map(|a| get(&in_map, a)).collect();
                let avals = e.outputs.iter().map(|v| body.aval(*v).clone()).collect();
                for (o, x) in e.outputs.iter().zip(b.add_eqn(e.prim.clone(), ins, avals, e.loc)) {
                    in_map[o.index()] = Some(x.into());
                }
            }
        }
        let outputs = body.outputs.iter().map(|a| get(&in_map, a)).collect();
        (new_consts, dce(&b.finish(outputs)))
    }
}
