//! Partial evaluation: splits a program whose inputs are partly known into a
//! known program (run now, it also returns residuals) and an unknown program
//! (run later, on the residuals and the unknown inputs). Applied to a JVP
//! program with known primals and unknown tangents it gives linearization.

use arrayjit_ir::prim::{Control, ShapeOp};
use arrayjit_ir::{dce, AVal, Atom, Eqn, Prim, Program, ProgramBuilder, Scalar, Var};
use arrayjit_trace::{Error, Result};

/// The two halves of a partially evaluated program.
#[derive(Clone, Debug)]
pub struct Split {
    /// Inputs: the known inputs. Outputs: the outputs assigned to the known side, then the residuals.
    pub known: Program,
    /// Inputs: the residuals, then the unknown inputs. Outputs: the outputs assigned to the unknown side.
    pub unknown: Program,
    pub num_residuals: usize,
}

/// Splits `p`. `unknown_in` marks the unknown inputs; `unknown_out` marks the
/// outputs computed by the unknown program (the others must be known).
/// Equations that depend on no input at all (constants, iotas, zeros) are
/// recomputed where needed instead of becoming residuals.
///
/// A `custom_vjp_tangent` none of whose operands is unknown becomes zeros:
/// a tangent that does not depend on the unknown tangents is zero (a rule
/// that drops its tangent, a branch that differentiates nothing), and the
/// primitive itself has no value to compute.
pub fn partial_eval(p: &Program, unknown_in: &[bool], unknown_out: &[bool]) -> Result<Split> {
    // Loops and conditionals with both known and unknown operands are split first.
    let split = crate::split_control::split_control(p, unknown_in)?;
    let p = &split;
    let n = p.num_vars();
    let mut unknown = vec![false; n];
    let mut fixed = vec![false; n]; // depends on no input
    for (v, _) in &p.consts {
        fixed[v.index()] = true;
    }
    for (v, u) in p.inputs.iter().zip(unknown_in) {
        unknown[v.index()] = *u;
    }
    let is = |flags: &[bool], a: &Atom| match a {
        Atom::Var(v) => flags[v.index()],
        Atom::Lit(_) => false,
    };
    let is_fixed = |fixed: &[bool], a: &Atom| match a {
        Atom::Var(v) => fixed[v.index()],
        Atom::Lit(_) => true,
    };
    let mut eqn_unknown = vec![false; p.eqns.len()];
    let mut zeroed = vec![false; p.eqns.len()];
    for (i, e) in p.eqns.iter().enumerate() {
        let u = e.inputs.iter().any(|a| is(&unknown, a));
        zeroed[i] = !u && matches!(e.prim, Prim::Control(Control::CustomVjpTangent { .. }));
        let f = zeroed[i] || (!u && e.inputs.iter().all(|a| is_fixed(&fixed, a)));
        eqn_unknown[i] = u;
        for o in &e.outputs {
            unknown[o.index()] = u;
            fixed[o.index()] = f;
        }
    }
    // Residuals: known, input-dependent values the unknown side reads, in order of first use.
    let mut residuals: Vec<Var> = Vec::new();
    let mut is_res = vec![false; n];
    let mut need = |a: &Atom, residuals: &mut Vec<Var>| {
        if let Atom::Var(v) = a {
            if !unknown[v.index()] && !fixed[v.index()] && !is_res[v.index()] {
                is_res[v.index()] = true;
                residuals.push(*v);
            }
        }
    };
    for (e, _) in p.eqns.iter().zip(&eqn_unknown).filter(|(_, u)| **u) {
        for a in &e.inputs {
            need(a, &mut residuals);
        }
    }
    for (a, _) in p.outputs.iter().zip(unknown_out).filter(|(_, u)| **u) {
        need(a, &mut residuals);
    }

    // The known program.
    let mut kb = ProgramBuilder::new();
    let mut kmap: Vec<Option<Var>> = vec![None; n];
    for (v, value) in &p.consts {
        kmap[v.index()] = Some(kb.add_const(value.clone()));
    }
    for (v, u) in p.inputs.iter().zip(unknown_in) {
        if !*u {
            kmap[v.index()] = Some(kb.add_input(p.aval(*v).clone()));
        }
    }
    let remap = |map: &[Option<Var>], a: &Atom| -> Result<Atom> {
        match a {
            Atom::Var(v) => map[v.index()].map(Atom::Var).ok_or_else(|| missing(*v)),
            lit => Ok(*lit),
        }
    };
    for ((e, _), z) in p.eqns.iter().zip(&eqn_unknown).zip(&zeroed).filter(|((_, u), _)| !**u) {
        let outs = emit(&mut kb, p, e, &kmap, *z)?;
        for (o, m) in e.outputs.iter().zip(outs) {
            kmap[o.index()] = Some(m);
        }
    }
    let mut kouts = Vec::new();
    for (a, u) in p.outputs.iter().zip(unknown_out) {
        if !*u {
            if is(&unknown, a) {
                return Err(Error::Invalid {
                    message: "an output assigned to the known side depends on unknown inputs".into(),
                    loc: Default::default(),
                });
            }
            kouts.push(remap(&kmap, a)?);
        }
    }
    for r in &residuals {
        kouts.push(remap(&kmap, &Atom::Var(*r))?);
    }
    let known = dce(&kb.finish(kouts));

    // The unknown program.
    let mut ub = ProgramBuilder::new();
    let mut umap: Vec<Option<Var>> = vec![None; n];
    for (v, value) in &p.consts {
        umap[v.index()] = Some(ub.add_const(value.clone()));
    }
    for r in &residuals {
        umap[r.index()] = Some(ub.add_input(p.aval(*r).clone()));
    }
    for (v, u) in p.inputs.iter().zip(unknown_in) {
        if *u {
            umap[v.index()] = Some(ub.add_input(p.aval(*v).clone()));
        }
    }
    for (i, e) in p.eqns.iter().enumerate() {
        let input_free = !eqn_unknown[i] && e.outputs.iter().all(|o| fixed[o.index()]);
        if !(eqn_unknown[i] || input_free) {
            continue;
        }
        let outs = emit(&mut ub, p, e, &umap, zeroed[i])?;
        for (o, m) in e.outputs.iter().zip(outs) {
            umap[o.index()] = Some(m);
        }
    }
    let uouts = p
        .outputs
        .iter()
        .zip(unknown_out)
        .filter(|(_, u)| **u)
        .map(|(a, _)| remap(&umap, a))
        .collect::<Result<Vec<_>>>()?;
    let unknown = dce(&ub.finish(uouts));
    Ok(Split { known, unknown, num_residuals: residuals.len() })
}

/// Emits `e` into `b`, its operands mapped by `map`; zeros of its output
/// types instead when `zeroed`.
fn emit(b: &mut ProgramBuilder, p: &Program, e: &Eqn, map: &[Option<Var>], zeroed: bool) -> Result<Vec<Var>> {
    let avals: Vec<AVal> = e.outputs.iter().map(|v| p.aval(*v).clone()).collect();
    if zeroed {
        return Ok(avals
            .into_iter()
            .map(|a| {
                let zero = Atom::Lit(Scalar::from_f64(0.0, a.dtype));
                let bc = ShapeOp::BroadcastInDim { shape: a.shape.clone(), dims: vec![] };
                b.add_eqn(bc.into(), vec![zero], vec![a], e.loc)[0]
            })
            .collect());
    }
    let ins = e
        .inputs
        .iter()
        .map(|a| match a {
            Atom::Var(v) => map[v.index()].map(Atom::Var).ok_or_else(|| missing(*v)),
            lit => Ok(*lit),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(b.add_eqn(e.prim.clone(), ins, avals, e.loc))
}

fn missing(v: Var) -> Error {
    Error::Invalid { message: format!("partial evaluation lost variable {v:?}"), loc: Default::default() }
}
