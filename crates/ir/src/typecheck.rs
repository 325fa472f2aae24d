//! The typechecker: re-runs every primitive's shape rule over a whole program
//! (and its sub-programs) and checks that variables are defined once, before use.

use crate::prim::Prim;
use crate::{Atom, Program, TypeError, Var};

/// Checks a program; the error names the equation that fails.
pub fn typecheck(p: &Program) -> Result<(), TypeError> {
    let mut defined = vec![false; p.num_vars()];
    fn define(defined: &mut [bool], v: Var, what: &str) -> Result<(), TypeError> {
        match defined.get_mut(v.index()) {
            None => Err(TypeError::new("typecheck", format!("{what} {v:?} has no type"))),
            Some(true) => Err(TypeError::new("typecheck", format!("{what} {v:?} is defined twice"))),
            Some(d) => {
                *d = true;
                Ok(())
            }
        }
    }
    for (v, value) in &p.consts {
        define(&mut defined, *v, "constant")?;
        if value.aval() != *p.aval(*v) {
            return Err(TypeError::new(
                "typecheck",
                format!("constant {v:?} has type {} but its value is {}", p.aval(*v), value.aval()),
            ));
        }
    }
    for v in &p.inputs {
        define(&mut defined, *v, "input")?;
    }
    for (i, e) in p.eqns.iter().enumerate() {
        let mut ins = Vec::with_capacity(e.inputs.len());
        for a in &e.inputs {
            if let Atom::Var(v) = a {
                if !defined.get(v.index()).copied().unwrap_or(false) {
                    return Err(TypeError::new(e.prim.name(), format!("equation {i} uses {v:?} before it is defined")));
                }
            }
            ins.push(p.atom_aval(a));
        }
        if let Prim::Control(c) = &e.prim {
            for body in c.sub_programs() {
                typecheck(body)?;
            }
        }
        let outs = e.prim.abstract_eval(&ins)?;
        let declared: Vec<_> = e.outputs.iter().map(|v| p.aval(*v).clone()).collect();
        if outs != declared {
            return Err(TypeError::new(
                e.prim.name(),
                format!(
                    "equation {i} declares outputs {} but the rule gives {}",
                    crate::error::list_avals(&declared),
                    crate::error::list_avals(&outs)
                ),
            ));
        }
        for v in &e.outputs {
            define(&mut defined, *v, "variable")?;
        }
    }
    for a in &p.outputs {
        if let Atom::Var(v) = a {
            if !defined.get(v.index()).copied().unwrap_or(false) {
                return Err(TypeError::new("typecheck", format!("output {v:?} is never defined")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prim::Elementwise;
    use crate::{AVal, DType, Loc, ProgramBuilder};

    #[test]
    fn detects_wrong_declared_types() {
        let mut b = ProgramBuilder::new();
        let x = b.add_input(AVal::new(DType::F32, [3]));
        let y = b.add_eqn(Elementwise::Exp.into(), vec![x.into()], vec![AVal::new(DType::F32, [4])], Loc::default());
        let p = b.finish(vec![y[0].into()]);
        let e = typecheck(&p).unwrap_err();
        assert!(e.to_string().contains("declares outputs f32[4] but the rule gives f32[3]"), "{e}");
    }

    #[test]
    fn accepts_well_typed_programs() {
        let mut b = ProgramBuilder::new();
        let x = b.add_input(AVal::new(DType::F32, [3]));
        let y = b.add_eqn(Elementwise::Exp.into(), vec![x.into()], vec![AVal::new(DType::F32, [3])], Loc::default());
        let p = b.finish(vec![y[0].into(), Atom::Lit(crate::Scalar::I32(1))]);
        typecheck(&p).unwrap();
    }
}
