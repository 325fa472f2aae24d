//! Programs: flat SSA lists of equations over typed variables (our jaxpr).
//!
//! A [`Program`] is built through a [`ProgramBuilder`], which numbers variables
//! densely in definition order (constants, then inputs, then equation outputs).
//! That canonical numbering is what makes `parse(print(p)) == p` hold.

use crate::{AVal, HostArray, Prim, Scalar};
use std::panic::Location;
use std::sync::Arc;

/// A variable of a program; its type is `program.aval(var)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub u32);

impl Var {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An operand: a variable or a rank-0 literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Atom {
    Var(Var),
    Lit(Scalar),
}

impl From<Var> for Atom {
    fn from(v: Var) -> Atom {
        Atom::Var(v)
    }
}

/// Where in the user's source an equation was recorded. Two locations always
/// compare equal: where a value was written does not change what a program means.
#[derive(Clone, Copy, Debug, Default)]
pub struct Loc(pub Option<&'static Location<'static>>);

impl PartialEq for Loc {
    fn eq(&self, _: &Loc) -> bool {
        true
    }
}

impl Eq for Loc {}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(l) => write!(f, "{}:{}:{}", l.file(), l.line(), l.column()),
            None => f.write_str("<unknown location>"),
        }
    }
}

/// One equation: `outputs = prim[params](inputs)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Eqn {
    pub prim: Prim,
    pub inputs: Vec<Atom>,
    pub outputs: Vec<Var>,
    pub loc: Loc,
}

/// A closed program: constants with their values, typed inputs, equations, outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    avals: Vec<AVal>,
    pub consts: Vec<(Var, Arc<HostArray>)>,
    pub inputs: Vec<Var>,
    pub eqns: Vec<Eqn>,
    pub outputs: Vec<Atom>,
}

impl Program {
    /// The type of a variable.
    pub fn aval(&self, v: Var) -> &AVal {
        &self.avals[v.index()]
    }

    /// The type of an operand.
    pub fn atom_aval(&self, a: &Atom) -> AVal {
        match a {
            Atom::Var(v) => self.aval(*v).clone(),
            Atom::Lit(s) => AVal::scalar(s.dtype()),
        }
    }

    pub fn num_vars(&self) -> usize {
        self.avals.len()
    }

    /// For each variable, the index of the equation that defines it (`None`
    /// for inputs and constants).
    pub fn producers(&self) -> Vec<Option<usize>> {
        let mut producer = vec![None; self.num_vars()];
        for (i, e) in self.eqns.iter().enumerate() {
            for o in &e.outputs {
                producer[o.index()] = Some(i);
            }
        }
        producer
    }

    /// The value every element of constant `v` holds, bit for bit (`None`
    /// when `v` is not a constant, is empty, or holds different values).
    pub fn uniform_constant(&self, v: Var) -> Option<crate::Scalar> {
        let (_, value) = self.consts.iter().find(|(c, _)| *c == v)?;
        value.uniform_value()
    }

    pub fn in_avals(&self) -> Vec<AVal> {
        self.inputs.iter().map(|v| self.aval(*v).clone()).collect()
    }

    pub fn out_avals(&self) -> Vec<AVal> {
        self.outputs.iter().map(|a| self.atom_aval(a)).collect()
    }

    /// Rebuilds the program with canonical variable numbering: constants, inputs,
    /// then equation outputs in order. Variables no one defines are dropped.
    pub fn canonicalize(&self) -> Program {
        let mut b = ProgramBuilder::new();
        let mut map = vec![None; self.avals.len()];
        for (v, val) in &self.consts {
            map[v.index()] = Some(b.add_const(val.clone()));
        }
        for v in &self.inputs {
            map[v.index()] = Some(b.add_input(self.aval(*v).clone()));
        }
        // A variable nothing defines (a malformed program) gets a fresh,
        // still undefined, variable, so the typechecker reports it.
        let remap = |map: &mut [Option<Var>], b: &mut ProgramBuilder, a: &Atom| match a {
            Atom::Var(v) => Atom::Var(*map[v.index()].get_or_insert_with(|| b.fresh(self.aval(*v).clone()))),
            lit => *lit,
        };
        for e in &self.eqns {
            let inputs = e.inputs.iter().map(|a| remap(&mut map, &mut b, a)).collect();
            let avals = e.outputs.iter().map(|v| self.aval(*v).clone()).collect();
            let outs = b.add_eqn(e.prim.clone(), inputs, avals, e.loc);
            for (o, n) in e.outputs.iter().zip(outs) {
                map[o.index()] = Some(n);
            }
        }
        let outputs = self.outputs.iter().map(|a| remap(&mut map, &mut b, a)).collect();
        Program { avals: b.avals, consts: b.consts, inputs: b.inputs, eqns: b.eqns, outputs }
    }
}

impl Program {
    /// The program of one equation, `prim` applied to inputs of types `avals`
    /// (how an eager operation is compiled); the shape rule's error otherwise.
    pub fn one_equation(prim: &Prim, avals: &[AVal]) -> Result<Program, crate::TypeError> {
        let outs = prim.abstract_eval(avals)?;
        let mut b = ProgramBuilder::new();
        let ins: Vec<Atom> = avals.iter().map(|a| Atom::Var(b.add_input(a.clone()))).collect();
        let vars = b.add_eqn(prim.clone(), ins, outs, Loc::default());
        Ok(b.finish(vars.into_iter().map(Atom::Var).collect()))
    }

    /// The same computation over a new list of inputs of types `avals`: old
    /// input `k` becomes new input `map[k]`; new inputs no old one maps to
    /// are unused. (Reorders inputs, or pads them, e.g. to give the branches
    /// of a conditional one signature.)
    ///
    /// Panics if `map` has not one entry per input or names an input of
    /// another type: both are internal errors of the caller.
    pub fn rebind_inputs(&self, avals: &[AVal], map: &[usize]) -> Program {
        assert_eq!(map.len(), self.inputs.len(), "rebind_inputs: one new position per input");
        let mut inputs = Vec::with_capacity(avals.len());
        let mut all = self.avals.clone();
        let mut fresh = Vec::with_capacity(avals.len());
        for a in avals {
            all.push(a.clone());
            fresh.push(Var(all.len() as u32 - 1));
        }
        for (k, &j) in map.iter().enumerate() {
            assert_eq!(self.aval(self.inputs[k]), &avals[j], "rebind_inputs: input {k} changes type");
            fresh[j] = self.inputs[k];
        }
        inputs.extend(fresh);
        let p = Program {
            avals: all,
            consts: self.consts.clone(),
            inputs,
            eqns: self.eqns.clone(),
            outputs: self.outputs.clone(),
        };
        p.canonicalize()
    }
}

impl Program {
    /// The same computation with its constants as leading inputs (in order),
    /// so that code compiled for it serves any values of those constants.
    pub fn consts_as_inputs(&self) -> Program {
        let mut inputs: Vec<Var> = self.consts.iter().map(|(v, _)| *v).collect();
        inputs.extend_from_slice(&self.inputs);
        let p = Program {
            avals: self.avals.clone(),
            consts: Vec::new(),
            inputs,
            eqns: self.eqns.clone(),
            outputs: self.outputs.clone(),
        };
        p.canonicalize()
    }
}

/// Builds a program, numbering variables in definition order.
#[derive(Clone, Debug, Default)]
pub struct ProgramBuilder {
    avals: Vec<AVal>,
    consts: Vec<(Var, Arc<HostArray>)>,
    inputs: Vec<Var>,
    eqns: Vec<Eqn>,
}

impl ProgramBuilder {
    pub fn new() -> ProgramBuilder {
        ProgramBuilder::default()
    }

    /// A fresh variable of the given type, not yet bound to anything.
    pub fn fresh(&mut self, aval: AVal) -> Var {
        self.avals.push(aval);
        Var(self.avals.len() as u32 - 1)
    }

    pub fn aval(&self, v: Var) -> &AVal {
        &self.avals[v.index()]
    }

    pub fn add_input(&mut self, aval: AVal) -> Var {
        let v = self.fresh(aval);
        self.inputs.push(v);
        v
    }

    pub fn add_const(&mut self, value: Arc<HostArray>) -> Var {
        let v = self.fresh(value.aval());
        self.consts.push((v, value));
        v
    }

    /// Appends an equation whose output types are already known (computed by the
    /// caller from the primitive's shape rule) and returns its output variables.
    pub fn add_eqn(&mut self, prim: Prim, inputs: Vec<Atom>, out_avals: Vec<AVal>, loc: Loc) -> Vec<Var> {
        let outputs: Vec<Var> = out_avals.into_iter().map(|a| self.fresh(a)).collect();
        self.eqns.push(Eqn { prim, inputs, outputs: outputs.clone(), loc });
        outputs
    }

    pub fn num_eqns(&self) -> usize {
        self.eqns.len()
    }

    /// Appends `p`'s equations applied to `args` (one per input of `p`;
    /// its constants become constants here) and returns its outputs.
    pub fn inline(&mut self, p: &Program, args: &[Atom]) -> Vec<Atom> {
        let mut map: Vec<Option<Atom>> = vec![None; p.num_vars()];
        for (v, value) in &p.consts {
            map[v.index()] = Some(self.add_const(value.clone()).into());
        }
        for (v, a) in p.inputs.iter().zip(args) {
            map[v.index()] = Some(*a);
        }
        let get = |map: &[Option<Atom>], a: &Atom| match a {
            Atom::Var(v) => map[v.index()].unwrap_or(*a),
            lit => *lit,
        };
        for e in &p.eqns {
            let ins = e.inputs.iter().map(|a| get(&map, a)).collect();
            let avals = e.outputs.iter().map(|v| p.aval(*v).clone()).collect();
            for (o, n) in e.outputs.iter().zip(self.add_eqn(e.prim.clone(), ins, avals, e.loc)) {
                map[o.index()] = Some(n.into());
            }
        }
        p.outputs.iter().map(|a| get(&map, a)).collect()
    }

    /// Finishes the program. The numbering is canonical when constants were
    /// added before inputs and inputs before equations; otherwise it is
    /// renumbered so that it is.
    pub fn finish(self, outputs: Vec<Atom>) -> Program {
        let p = Program { avals: self.avals, consts: self.consts, inputs: self.inputs, eqns: self.eqns, outputs };
        if p.is_canonical() {
            p
        } else {
            p.canonicalize()
        }
    }
}

impl Program {
    fn is_canonical(&self) -> bool {
        let mut next = 0u32;
        let mut check = |v: Var| {
            let ok = v.0 == next;
            next += 1;
            ok
        };
        self.consts.iter().all(|(v, _)| check(*v))
            && self.inputs.iter().all(|v| check(*v))
            && self.eqns.iter().all(|e| e.outputs.iter().all(|v| check(*v)))
            && next as usize == self.avals.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prim::Elementwise;
    use crate::{DType, Data};

    #[test]
    fn builder_renumbers_out_of_order_definitions() {
        let mut b = ProgramBuilder::new();
        let x = b.add_input(AVal::new(DType::F32, [3]));
        let c = b.add_const(Arc::new(HostArray::new([3], Data::F32(vec![1.0, 2.0, 3.0])).unwrap()));
        let y = b.add_eqn(
            Elementwise::Add.into(),
            vec![x.into(), c.into()],
            vec![AVal::new(DType::F32, [3])],
            Loc::default(),
        );
        let z = b.add_eqn(Elementwise::Exp.into(), vec![y[0].into()], vec![AVal::new(DType::F32, [3])], Loc::default());
        let p = b.finish(vec![z[0].into()]);
        assert_eq!(p.consts[0].0, Var(0));
        assert_eq!(p.inputs, vec![Var(1)]);
        assert_eq!(p.eqns[0].inputs, vec![Atom::Var(Var(1)), Atom::Var(Var(0))]);
        assert_eq!(p.outputs, vec![Atom::Var(Var(3))]);
        assert_eq!(p.canonicalize(), p);
    }
}
