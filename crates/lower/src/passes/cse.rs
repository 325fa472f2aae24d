//! Common-subexpression elimination: two equations with the same primitive,
//! parameters and operands compute the same values (every primitive is pure).

use arrayjit_ir::{Atom, Program, ProgramBuilder, Var};
use std::collections::HashMap;

/// The program with duplicate equations removed.
pub fn cse(p: &Program) -> Program {
    let mut b = ProgramBuilder::new();
    let mut map: Vec<Option<Atom>> = vec![None; p.num_vars()];
    for (v, value) in &p.consts {
        map[v.index()] = Some(Atom::Var(b.add_const(value.clone())));
    }
    for v in &p.inputs {
        map[v.index()] = Some(Atom::Var(b.add_input(p.aval(*v).clone())));
    }
    let get = |map: &[Option<Atom>], a: &Atom| match a {
        Atom::Var(v) => map[v.index()].unwrap_or(Atom::Var(*v)),
        lit => *lit,
    };
    // Keyed by the primitive's debug text (params included) and the operands.
    let mut seen: HashMap<(String, Vec<Atom>), Vec<Var>> = HashMap::new();
    for e in &p.eqns {
        let ins: Vec<Atom> = e.inputs.iter().map(|a| get(&map, a)).collect();
        let key = (format!("{:?}", e.prim), ins.clone());
        let outs = match seen.get(&key) {
            Some(prev) => prev.clone(),
            None => {
                let avals = e.outputs.iter().map(|v| p.aval(*v).clone()).collect();
                let outs = b.add_eqn(e.prim.clone(), ins, avals, e.loc);
                seen.insert(key, outs.clone());
                outs
            }
        };
        for (o, n) in e.outputs.iter().zip(outs) {
            map[o.index()] = Some(Atom::Var(n));
        }
    }
    let outputs = p.outputs.iter().map(|a| get(&map, a)).collect();
    b.finish(outputs)
}
