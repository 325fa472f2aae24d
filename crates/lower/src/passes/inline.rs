//! Inlining: replaces every `call`, and every `custom_jvp` and `custom_vjp`
//! (whose rules only matter to differentiation, done by now), by its body's
//! equations, so later passes and fusion see one flat program.

use arrayjit_ir::prim::control::custom_body_operands;
use arrayjit_ir::prim::Control;
use arrayjit_ir::{Atom, Prim, Program, ProgramBuilder, Var};

/// The program with all calls (recursively) inlined.
pub fn inline_calls(p: &Program) -> Program {
    let mut b = ProgramBuilder::new();
    let mut map: Vec<Option<Atom>> = vec![None; p.num_vars()];
    for (v, value) in &p.consts {
        map[v.index()] = Some(Atom::Var(b.add_const(value.clone())));
    }
    for v in &p.inputs {
        map[v.index()] = Some(Atom::Var(b.add_input(p.aval(*v).clone())));
    }
    let outs = emit(p, &mut b, &mut map);
    b.finish(outs)
}

/// Emits `p`'s equations into `b` given the mapping of its consts and inputs;
/// returns its outputs.
fn emit(p: &Program, b: &mut ProgramBuilder, map: &mut [Option<Atom>]) -> Vec<Atom> {
    let get = |map: &[Option<Atom>], a: &Atom| match a {
        Atom::Var(v) => map[v.index()].unwrap_or(Atom::Var(*v)),
        lit => *lit,
    };
    for e in &p.eqns {
        let ins: Vec<Atom> = e.inputs.iter().map(|a| get(map, a)).collect();
        let inlined = match &e.prim {
            Prim::Control(Control::Call { body }) => Some((body, ins.clone())),
            Prim::Control(
                Control::CustomJvp { body, body_consts, jvp_consts: rule_consts, .. }
                | Control::CustomVjp { body, body_consts, fwd_consts: rule_consts, .. },
            ) => Some((body, custom_body_operands(&ins, *body_consts, *rule_consts))),
            _ => None,
        };
        match (&e.prim, inlined) {
            (_, Some((body, ins))) => {
                let mut inner: Vec<Option<Atom>> = vec![None; body.num_vars()];
                for (v, value) in &body.consts {
                    inner[v.index()] = Some(Atom::Var(b.add_const(value.clone())));
                }
                for (v, a) in body.inputs.iter().zip(&ins) {
                    inner[v.index()] = Some(*a);
                }
                let outs = emit(body, b, &mut inner);
                for (o, a) in e.outputs.iter().zip(outs) {
                    map[o.index()] = Some(a);
                }
            }
            (prim, None) => {
                let avals = e.outputs.iter().map(|v: &Var| p.aval(*v).clone()).collect();
                let outs = b.add_eqn(prim.clone(), ins, avals, e.loc);
                for (o, n) in e.outputs.iter().zip(outs) {
                    map[o.index()] = Some(Atom::Var(n));
                }
            }
        }
    }
    p.outputs.iter().map(|a| get(map, a)).collect()
}
