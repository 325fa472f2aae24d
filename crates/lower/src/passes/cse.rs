//! Common-subexpression elimination: two equations with the same primitive,
//! parameters and operands compute the same values (every primitive is pure).

use super::rebuild::Rebuild;
use arrayjit_ir::prim::Param;
use arrayjit_ir::{Atom, Prim, Program, Var};
use std::collections::HashMap;
use std::fmt::Write;

/// A key equal for equal primitives: the name and parameters, with
/// sub-programs named by address (two loops are merged only when they hold
/// the very same body; formatting bodies, with their constants, would cost
/// more than any saving).
fn prim_key(prim: &Prim) -> String {
    let mut key = prim.name().to_string();
    for (name, value) in prim.params() {
        let _ = match value {
            Param::Program(p) => write!(key, " {name}=@{:p}", std::sync::Arc::as_ptr(&p)),
            Param::Programs(ps) => write!(key, " {name}=[")
                .and_then(|_| ps.iter().try_for_each(|p| write!(key, "@{:p} ", std::sync::Arc::as_ptr(p)))),
            other => write!(key, " {name}={other:?}"),
        };
    }
    key
}

/// The program with duplicate equations removed.
pub fn cse(p: &Program) -> Program {
    let mut r = Rebuild::new(p);
    // Keyed by the primitive with its parameters, and the operands.
    let mut seen: HashMap<(String, Vec<Atom>), Vec<Var>> = HashMap::new();
    for e in &p.eqns {
        let ins = r.inputs(e);
        let key = (prim_key(&e.prim), ins.clone());
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
