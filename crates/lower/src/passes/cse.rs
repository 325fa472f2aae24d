//! Common-subexpression elimination: two equations with the same primitive,
//! parameters and operands compute the same values (every primitive is pure).

use super::rebuild::Rebuild;
use arrayjit_ir::{Atom, Program, Var};
use std::collections::HashMap;

/// The program with duplicate equations removed.
pub fn cse(p: &Program) -> Program {
    let mut r = Rebuild::new(p);
    // Keyed by the primitive's debug text (params included) and the operands.
    let mut seen: HashMap<(String, Vec<Atom>), Vec<Var>> = HashMap::new();
    for e in &p.eqns {
        let ins = r.inputs(e);
        let key = (format!("{:?}", e.prim), ins.clone());
        let outs = match seen.get(&key) {
            Some(prev) => prev.clone(),
            None => {
                let avals = r.out_avals(e);
                let outs = r.b.add_eqn(e.prim.clone(), ins, avals, e.loc);
                seen.insert(key, outs.clone());
                outs
            }
        };
        r.set_all(&e.outputs, outs);
    }
    r.finish()
}
