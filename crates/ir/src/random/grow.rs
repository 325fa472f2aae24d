//! The program grower: the pool of typed variables, random values and shapes,
//! and the helpers that produce an operand of a wanted type (taking one from
//! the pool, converting, reshaping or broadcasting one, or making a new one).

use super::tape::Tape;
use super::GenConfig;
use crate::prim::{Prim, ShapeOp};
use crate::{AVal, Atom, DType, Data, HostArray, Loc, Program, ProgramBuilder, Scalar, Shape, Var};
use std::sync::Arc;

/// A program being grown.
pub(super) struct Grower<'c, 't, 'd> {
    pub cfg: &'c GenConfig,
    pub tape: &'t mut Tape<'d>,
    /// How deep this program is nested in `call` bodies (0 at the top).
    pub depth: usize,
    /// The most equations this program may get.
    pub max_eqns: usize,
    pub b: ProgramBuilder,
    /// Every variable defined so far, with its type, in definition order.
    pub pool: Vec<(Var, AVal)>,
}

/// Grows a program with the given input types (random ones when `None`) and
/// at most `max_eqns` equations.
pub(super) fn generate(
    cfg: &GenConfig,
    tape: &mut Tape<'_>,
    depth: usize,
    in_avals: Option<Vec<AVal>>,
    max_eqns: usize,
) -> Program {
    let mut g = Grower { cfg, tape, depth, max_eqns, b: ProgramBuilder::new(), pool: Vec::new() };
    for _ in 0..g.tape.below(cfg.max_consts + 1) {
        let rank = g.tape.below(cfg.max_rank.min(2) + 1);
        let dims: Vec<usize> = (0..rank).map(|_| g.dim().min(3)).collect();
        let aval = AVal::new(g.dtype(), dims);
        let value = g.array(&aval);
        let v = g.b.add_const(Arc::new(value));
        g.pool.push((v, aval));
    }
    let in_avals = in_avals.unwrap_or_else(|| {
        let n = if cfg.max_inputs == 0 || g.tape.chance(5) { 0 } else { 1 + g.tape.below(cfg.max_inputs) };
        (0..n).map(|_| g.aval()).collect()
    });
    for aval in in_avals {
        let v = g.b.add_input(aval.clone());
        g.pool.push((v, aval));
    }
    let target = g.tape.below(max_eqns + 1);
    let mut attempts = 0;
    while g.b.num_eqns() < target && attempts < 4 * target + 8 {
        attempts += 1;
        // A step adds the equation it chose and any it needed to make operands;
        // when it fails or overshoots, it is undone and another one is tried.
        let saved = (g.b.clone(), g.pool.clone());
        if g.step().is_none() || g.b.num_eqns() > target {
            (g.b, g.pool) = saved;
        }
    }
    let outputs = g.outputs();
    g.b.finish(outputs)
}

impl Grower<'_, '_, '_> {
    /// The outputs: the newest variable (so that the last equation is used),
    /// then a few random variables or literals.
    fn outputs(&mut self) -> Vec<Atom> {
        let mut outs = Vec::new();
        let first = match self.pool.last() {
            Some((v, _)) if self.b.num_eqns() > 0 => Atom::Var(*v),
            _ => self.any_atom(),
        };
        outs.push(first);
        for _ in 0..self.tape.below(self.cfg.max_outputs.max(1)) {
            let a = self.any_atom();
            outs.push(a);
        }
        outs
    }

    /// A random variable from the pool, or now and then (or when the pool is
    /// empty) a literal.
    fn any_atom(&mut self) -> Atom {
        if self.pool.is_empty() || self.tape.chance(10) {
            let d = self.dtype();
            return self.literal(d);
        }
        let i = self.tape.below(self.pool.len());
        Atom::Var(self.pool[i].0)
    }

    // ---- configuration ----

    pub fn allows(&self, name: &str) -> bool {
        self.cfg.allows(name)
    }

    /// The allowed dtypes (never empty).
    pub fn dtypes(&self) -> Vec<DType> {
        if self.cfg.dtypes.is_empty() {
            vec![DType::F32]
        } else {
            self.cfg.dtypes.clone()
        }
    }

    pub fn allowed(&self, d: DType) -> bool {
        self.dtypes().contains(&d)
    }

    /// The allowed dtypes that satisfy `pred`.
    pub fn dtypes_where(&self, pred: impl Fn(DType) -> bool) -> Vec<DType> {
        self.dtypes().into_iter().filter(|d| pred(*d)).collect()
    }

    // ---- random types and values ----

    pub fn dtype(&mut self) -> DType {
        let ds = self.dtypes();
        ds[self.tape.below(ds.len())]
    }

    /// A dimension size: 1 most often, sometimes 0, otherwise up to `max_dim`.
    pub fn dim(&mut self) -> usize {
        let max = self.cfg.max_dim;
        let d = match self.tape.below(8) {
            0 | 1 => 1,
            2 => 0,
            _ if max >= 2 => 2 + self.tape.below(max - 1),
            _ => 1,
        };
        d.min(max)
    }

    /// A random shape of rank at most `max_rank`.
    pub fn shape(&mut self, max_rank: usize) -> Vec<usize> {
        let rank = self.tape.below(max_rank.min(self.cfg.max_rank) + 1);
        (0..rank).map(|_| self.dim()).collect()
    }

    /// A random type for an input.
    pub fn aval(&mut self) -> AVal {
        let d = self.dtype();
        AVal::new(d, self.shape(self.cfg.max_rank))
    }

    /// A random value of a dtype: moderate numbers, or with `special_floats`
    /// now and then a value that is hard to print and read back.
    pub fn scalar(&mut self, d: DType) -> Scalar {
        if d.is_float() && self.cfg.special_floats && self.tape.chance(15) {
            return self.special(d);
        }
        match d {
            DType::Bool => Scalar::Bool(self.tape.below(2) == 1),
            DType::I32 => Scalar::I32(self.tape.range(-8, 8) as i32),
            _ if self.tape.chance(50) => Scalar::from_f64(self.tape.range(-16, 16) as f64 / 4.0, d),
            _ => Scalar::from_f64(self.tape.unit() * 8.0 - 4.0, d),
        }
    }

    fn special(&mut self, d: DType) -> Scalar {
        let i = self.tape.below(12);
        match d {
            DType::F32 => Scalar::F32(match i {
                0 => -0.0,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                3 => f32::NAN,
                4 => -f32::NAN,
                5 => f32::from_bits(0x7fc0_0001),
                6 => f32::from_bits(1),
                7 => f32::MAX,
                8 => f32::MIN_POSITIVE,
                9 => 0.1,
                10 => 1.0 / 3.0,
                _ => 16_777_217.0,
            }),
            _ => Scalar::F64(match i {
                0 => -0.0,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                3 => f64::NAN,
                4 => -f64::NAN,
                5 => f64::from_bits(0xfff0_0000_0000_0001),
                6 => f64::from_bits(1),
                7 => f64::MAX,
                8 => f64::MIN_POSITIVE,
                9 => 0.1,
                10 => 1.0 / 3.0,
                _ => 1e300,
            }),
        }
    }

    /// A random array (a constant).
    pub fn array(&mut self, aval: &AVal) -> HostArray {
        let xs: Vec<Scalar> = (0..aval.numel()).map(|_| self.scalar(aval.dtype)).collect();
        // Taking each variant's payload directly keeps NaN bits as drawn.
        let data = match aval.dtype {
            DType::Bool => Data::Bool(xs.iter().map(|s| matches!(s, Scalar::Bool(true))).collect()),
            DType::I32 => Data::I32(xs.iter().map(|s| if let Scalar::I32(v) = s { *v } else { 0 }).collect()),
            DType::F32 => Data::F32(xs.iter().map(|s| if let Scalar::F32(v) = s { *v } else { 0.0 }).collect()),
            DType::F64 => Data::F64(xs.iter().map(|s| if let Scalar::F64(v) = s { *v } else { 0.0 }).collect()),
        };
        HostArray::new(aval.shape.clone(), data).unwrap_or_else(|_| HostArray::zeros(aval))
    }

    pub fn literal(&mut self, d: DType) -> Atom {
        Atom::Lit(self.scalar(d))
    }

    // ---- the pool and equations ----

    /// Picks one of the pool indices, favouring the newest so that programs
    /// form chains rather than many independent branches.
    fn pick_index(&mut self, candidates: &[usize]) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        let i = if self.tape.chance(50) {
            let recent = candidates.len().min(3);
            candidates.len() - 1 - self.tape.below(recent)
        } else {
            self.tape.below(candidates.len())
        };
        Some(candidates[i])
    }

    /// A pool variable whose type satisfies `pred`.
    pub fn pick_var(&mut self, pred: impl Fn(&AVal) -> bool) -> Option<(Atom, AVal)> {
        let candidates: Vec<usize> = (0..self.pool.len()).filter(|&i| pred(&self.pool[i].1)).collect();
        let i = self.pick_index(&candidates)?;
        let (v, aval) = &self.pool[i];
        Some((Atom::Var(*v), aval.clone()))
    }

    fn atom_aval(&self, a: &Atom) -> AVal {
        match a {
            Atom::Var(v) => self.b.aval(*v).clone(),
            Atom::Lit(s) => AVal::scalar(s.dtype()),
        }
    }

    /// Adds an equation if the shape rule accepts it and every output has an
    /// allowed dtype and at most `max_numel` elements.
    pub fn emit(&mut self, prim: Prim, inputs: Vec<Atom>) -> Option<Vec<(Atom, AVal)>> {
        if !self.allows(prim.name()) {
            return None;
        }
        let in_avals: Vec<AVal> = inputs.iter().map(|a| self.atom_aval(a)).collect();
        let outs = prim.abstract_eval(&in_avals).ok()?;
        if outs.iter().any(|a| !self.allowed(a.dtype) || a.numel() > self.cfg.max_numel) {
            return None;
        }
        let vars = self.b.add_eqn(prim, inputs, outs.clone(), Loc::default());
        let pairs: Vec<(Var, AVal)> = vars.into_iter().zip(outs).collect();
        self.pool.extend(pairs.iter().cloned());
        Some(pairs.into_iter().map(|(v, a)| (Atom::Var(v), a)).collect())
    }

    /// [`Grower::emit`] for a primitive with one output.
    pub fn emit1(&mut self, prim: Prim, inputs: Vec<Atom>) -> Option<(Atom, AVal)> {
        self.emit(prim, inputs)?.into_iter().next()
    }

    // ---- operands ----

    /// An operand with one of `dtypes` whose type satisfies `pred`: from the
    /// pool, converted from a pool variable, or new.
    pub fn operand(&mut self, dtypes: &[DType], pred: impl Fn(&AVal) -> bool) -> Option<(Atom, AVal)> {
        if dtypes.is_empty() {
            return None;
        }
        let fits = |a: &AVal| dtypes.contains(&a.dtype) && pred(a);
        if !self.tape.chance(15) {
            if let Some(found) = self.pick_var(fits) {
                return Some(found);
            }
        }
        let d = dtypes[self.tape.below(dtypes.len())];
        if !self.tape.chance(25) {
            if let Some((x, xa)) = self.pick_var(&pred) {
                return self.as_dtype(x, &xa, d);
            }
        }
        // Nothing suitable in the pool: make a new array of a random fitting type.
        for _ in 0..4 {
            let aval = AVal::new(d, self.shape(self.cfg.max_rank));
            if pred(&aval) {
                let atom = self.make_new(&aval)?;
                return Some((atom, aval));
            }
        }
        None
    }

    /// The operand converted to dtype `to` (unchanged if it already has it).
    pub fn as_dtype(&mut self, x: Atom, xa: &AVal, to: DType) -> Option<(Atom, AVal)> {
        if xa.dtype == to {
            return Some((x, xa.clone()));
        }
        self.emit1(crate::prim::Elementwise::Convert { to }.into(), vec![x])
    }

    /// An operand of exactly the type `t`: a pool variable of that type, or
    /// one made from a pool variable by `convert` and `broadcast_in_dim` or
    /// `reshape`, or a new array (`iota`, a broadcast literal, a literal).
    pub fn fit(&mut self, t: &AVal) -> Option<Atom> {
        if !self.tape.chance(25) {
            if let Some((x, _)) = self.pick_var(|a| a == t) {
                return Some(x);
            }
        }
        if t.rank() == 0 && self.tape.chance(40) {
            return Some(self.literal(t.dtype));
        }
        let made = match self.tape.below(3) {
            0 => self.fit_by_broadcast(t),
            1 => self.fit_by_reshape(t),
            _ => self.make_new(t),
        };
        made.or_else(|| self.fit_by_broadcast(t)).or_else(|| self.make_new(t))
    }

    /// Broadcasts (NumPy-style, aligned on the right) a pool variable to `t`.
    fn fit_by_broadcast(&mut self, t: &AVal) -> Option<Atom> {
        let target = t.shape.clone();
        let (x, xa) = self.pick_var(|a| {
            a.rank() <= target.rank() && {
                let offset = target.rank() - a.rank();
                a.shape.iter().enumerate().all(|(i, &d)| d == 1 || d == target[offset + i])
            }
        })?;
        let (x, xa) = self.as_dtype(x, &xa, t.dtype)?;
        if xa.shape == t.shape {
            return Some(x);
        }
        let offset = t.rank() - xa.rank();
        let dims = (offset..t.rank()).collect();
        Some(self.emit1(ShapeOp::BroadcastInDim { shape: t.shape.clone(), dims }.into(), vec![x])?.0)
    }

    /// Reshapes a pool variable with as many elements as `t`.
    fn fit_by_reshape(&mut self, t: &AVal) -> Option<Atom> {
        let n = t.numel();
        let (x, xa) = self.pick_var(|a| a.numel() == n)?;
        let (x, xa) = self.as_dtype(x, &xa, t.dtype)?;
        if xa.shape == t.shape {
            return Some(x);
        }
        Some(self.emit1(ShapeOp::Reshape { shape: t.shape.clone() }.into(), vec![x])?.0)
    }

    /// A new array of type `t` that depends on no variable: a literal (rank 0),
    /// an `iota`, or a broadcast literal.
    pub fn make_new(&mut self, t: &AVal) -> Option<Atom> {
        if t.rank() == 0 {
            return Some(self.literal(t.dtype));
        }
        if t.dtype.is_numeric() && self.allows("iota") && self.tape.chance(50) {
            let axis = self.tape.below(t.rank());
            let iota = ShapeOp::Iota { dtype: t.dtype, shape: t.shape.clone(), axis };
            return Some(self.emit1(iota.into(), vec![])?.0);
        }
        let lit = self.literal(t.dtype);
        Some(self.emit1(ShapeOp::BroadcastInDim { shape: t.shape.clone(), dims: vec![] }.into(), vec![lit])?.0)
    }

    /// A new shape with as many elements as `dims`.
    pub fn reshaped(&mut self, dims: &Shape) -> Vec<usize> {
        let n = dims.numel();
        let max_rank = self.cfg.max_rank.max(1);
        if n == 0 {
            let mut s: Vec<usize> = (0..1 + self.tape.below(max_rank)).map(|_| self.dim()).collect();
            let zero = self.tape.below(s.len());
            s[zero] = 0;
            return s;
        }
        let rank = match self.tape.below(max_rank + 1) {
            0 if n > 1 => 1,
            r => r,
        };
        let mut s = vec![1; rank];
        for f in prime_factors(n) {
            let i = self.tape.below(rank);
            s[i] *= f;
        }
        s
    }
}

/// The prime factors of `n`, with repeats (none for 1).
fn prime_factors(mut n: usize) -> Vec<usize> {
    let mut fs = Vec::new();
    let mut p = 2;
    while p * p <= n {
        while n.checked_rem(p) == Some(0) {
            fs.push(p);
            n /= p;
        }
        p += 1;
    }
    if n > 1 {
        fs.push(n);
    }
    fs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_multiply_back() {
        for n in 1..200 {
            assert_eq!(prime_factors(n).iter().product::<usize>(), n);
        }
    }
}
