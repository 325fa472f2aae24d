//! The scaffolding every rewriting pass shares: a new program with the old
//! one's constants and inputs, and the map from old variables to new atoms.

use arrayjit_ir::{AVal, Atom, Eqn, Program, ProgramBuilder, Var};

/// A program being rebuilt from `old`, equation by equation.
pub struct Rebuild<'p> {
    pub old: &'p Program,
    pub b: ProgramBuilder,
    map: Vec<Option<Atom>>,
}

impl<'p> Rebuild<'p> {
    /// A builder holding `old`'s constants and inputs, mapped.
    pub fn new(old: &'p Program) -> Rebuild<'p> {
        let mut b = ProgramBuilder::new();
        let mut map: Vec<Option<Atom>> = vec![None; old.num_vars()];
        for (v, value) in &old.consts {
            map[v.index()] = Some(Atom::Var(b.add_const(value.clone())));
        }
        for v in &old.inputs {
            map[v.index()] = Some(Atom::Var(b.add_input(old.aval(*v).clone())));
        }
        Rebuild { old, b, map }
    }

    /// The new atom of an old one.
    pub fn get(&self, a: &Atom) -> Atom {
        match a {
            Atom::Var(v) => self.map[v.index()].unwrap_or(Atom::Var(*v)),
            lit => *lit,
        }
    }

    /// The new operands of an old equation.
    pub fn inputs(&self, e: &Eqn) -> Vec<Atom> {
        e.inputs.iter().map(|a| self.get(a)).collect()
    }

    /// The types of an old equation's outputs.
    pub fn out_avals(&self, e: &Eqn) -> Vec<AVal> {
        e.outputs.iter().map(|v| self.old.aval(*v).clone()).collect()
    }

    /// Old variable `v` now stands for `a`.
    pub fn set(&mut self, v: Var, a: Atom) {
        self.map[v.index()] = Some(a);
    }

    /// Old outputs `olds` are now the new variables `news`.
    pub fn set_all(&mut self, olds: &[Var], news: Vec<Var>) {
        for (o, n) in olds.iter().zip(news) {
            self.set(*o, Atom::Var(n));
        }
    }

    /// Copies an old equation with new operands `ins`.
    pub fn copy(&mut self, e: &Eqn, ins: Vec<Atom>) {
        let avals = self.out_avals(e);
        let news = self.b.add_eqn(e.prim.clone(), ins, avals, e.loc);
        self.set_all(&e.outputs, news);
    }

    /// The finished program, with `old`'s outputs mapped.
    pub fn finish(self) -> Program {
        let outputs = self.old.outputs.iter().map(|a| self.get(a)).collect();
        self.b.finish(outputs)
    }
}
