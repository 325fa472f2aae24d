//! Dead-code elimination: drops equations whose outputs nothing uses, and
//! constants no equation reads. Every primitive is pure, so this is always safe.

use crate::{Atom, Program, ProgramBuilder, Var};

/// The program without dead equations and constants. Inputs are kept (the
/// signature does not change).
pub fn dce(p: &Program) -> Program {
    let mut live = vec![false; p.num_vars()];
    let mark = |live: &mut Vec<bool>, a: &Atom| {
        if let Atom::Var(v) = a {
            live[v.index()] = true;
        }
    };
    for a in &p.outputs {
        mark(&mut live, a);
    }
    let mut keep = vec![false; p.eqns.len()];
    for (i, e) in p.eqns.iter().enumerate().rev() {
        if e.outputs.iter().any(|v| live[v.index()]) {
            keep[i] = true;
            for a in &e.inputs {
                mark(&mut live, a);
            }
        }
    }
    let mut b = ProgramBuilder::new();
    let mut map: Vec<Option<Var>> = vec![None; p.num_vars()];
    for (v, value) in &p.consts {
        if live[v.index()] {
            map[v.index()] = Some(b.add_const(value.clone()));
        }
    }
    for v in &p.inputs {
        map[v.index()] = Some(b.add_input(p.aval(*v).clone()));
    }
    let remap = |map: &[Option<Var>], a: &Atom| match a {
        Atom::Var(v) => Atom::Var(map[v.index()].unwrap_or(*v)),
        lit => *lit,
    };
    for (e, _) in p.eqns.iter().zip(&keep).filter(|(_, k)| **k) {
        let inputs = e.inputs.iter().map(|a| remap(&map, a)).collect();
        let avals = e.outputs.iter().map(|v| p.aval(*v).clone()).collect();
        let outs = b.add_eqn(e.prim.clone(), inputs, avals, e.loc);
        for (o, n) in e.outputs.iter().zip(outs) {
            map[o.index()] = Some(n);
        }
    }
    let outputs = p.outputs.iter().map(|a| remap(&map, a)).collect();
    b.finish(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prim::Elementwise;
    use crate::{typecheck, AVal, DType, HostArray, Loc, Scalar};
    use std::sync::Arc;

    #[test]
    fn removes_unused_equations_and_constants() {
        let f = AVal::new(DType::F32, [2]);
        let mut b = ProgramBuilder::new();
        let c = b.add_const(Arc::new(HostArray::full([2], Scalar::F32(1.0))));
        let x = b.add_input(f.clone());
        let dead = b.add_eqn(Elementwise::Add.into(), vec![x.into(), c.into()], vec![f.clone()], Loc::default());
        let _dead2 = b.add_eqn(Elementwise::Exp.into(), vec![dead[0].into()], vec![f.clone()], Loc::default());
        let live = b.add_eqn(Elementwise::Sin.into(), vec![x.into()], vec![f.clone()], Loc::default());
        let p = b.finish(vec![live[0].into()]);
        let q = dce(&p);
        typecheck(&q).unwrap();
        assert_eq!(q.eqns.len(), 1);
        assert!(q.consts.is_empty());
        assert_eq!(q.inputs.len(), 1);
        assert_eq!(dce(&q), q);
    }
}
