//! Algebraic simplification and constant folding: `x·1`, `x+0`, `x−0`, `x/1`,
//! (with `1` and `0` literals, their broadcasts, or constant arrays whose
//! elements all hold that value, such as a column of ones for an intercept),
//! `−(−x)`, `x¹` become `x`; `a + (−b)`, `(−a) + b` and `a − (−b)` lose the negation; equations on literals are evaluated; transposes of
//! transposes, broadcasts of broadcasts and reshapes of reshapes compose;
//! transposed `dot_general` operands fold into the dimension numbers.

use arrayjit_ir::prim::{DotDims, Elementwise as E, Linalg, ShapeOp};
use arrayjit_ir::{AVal, Atom, HostArray, Prim, Program, ProgramBuilder, Scalar, Shape};
use std::collections::HashMap;

/// The program after one sweep of rewrites.
pub fn simplify(p: &Program) -> Program {
    let mut b = ProgramBuilder::new();
    let mut map: Vec<Option<Atom>> = vec![None; p.num_vars()];
    // The defining equation of each new variable, for pattern matching.
    let mut defs: Vec<Option<(Prim, Vec<Atom>)>> = Vec::new();
    let def_of = |defs: &mut Vec<Option<(Prim, Vec<Atom>)>>, v: arrayjit_ir::Var, d: Option<(Prim, Vec<Atom>)>| {
        if defs.len() <= v.index() {
            defs.resize(v.index() + 1, None);
        }
        defs[v.index()] = d;
    };
    let mut uniform = HashMap::new();
    for (v, value) in &p.consts {
        let n = b.add_const(value.clone());
        def_of(&mut defs, n, None);
        map[v.index()] = Some(Atom::Var(n));
        if let Some(s) = value.uniform_value() {
            uniform.insert(n, s);
        }
    }
    for v in &p.inputs {
        let n = b.add_input(p.aval(*v).clone());
        def_of(&mut defs, n, None);
        map[v.index()] = Some(Atom::Var(n));
    }
    let get = |map: &[Option<Atom>], a: &Atom| match a {
        Atom::Var(v) => map[v.index()].unwrap_or(Atom::Var(*v)),
        lit => *lit,
    };
    for e in &p.eqns {
        let ins: Vec<Atom> = e.inputs.iter().map(|a| get(&map, a)).collect();
        let out_avals: Vec<AVal> = e.outputs.iter().map(|v| p.aval(*v).clone()).collect();
        let ctx = Ctx { b: &b, defs: &defs, uniform: &uniform };
        if let Some(a) = ctx.rewrite_to_atom(&e.prim, &ins, &out_avals) {
            map[e.outputs[0].index()] = Some(a);
            continue;
        }
        let (prim, ins) = ctx.rewrite_eqn(&e.prim, &ins, &out_avals).unwrap_or((e.prim.clone(), ins));
        let outs = b.add_eqn(prim.clone(), ins.clone(), out_avals, e.loc);
        for (o, n) in e.outputs.iter().zip(&outs) {
            def_of(&mut defs, *n, Some((prim.clone(), ins.clone())));
            map[o.index()] = Some(Atom::Var(*n));
        }
    }
    let outputs = p.outputs.iter().map(|a| get(&map, a)).collect();
    b.finish(outputs)
}

struct Ctx<'a> {
    b: &'a ProgramBuilder,
    defs: &'a [Option<(Prim, Vec<Atom>)>],
    /// Constants whose elements all hold one value.
    uniform: &'a HashMap<arrayjit_ir::Var, Scalar>,
}

impl Ctx<'_> {
    fn aval(&self, a: &Atom) -> AVal {
        match a {
            Atom::Var(v) => self.b.aval(*v).clone(),
            Atom::Lit(s) => AVal::scalar(s.dtype()),
        }
    }

    fn def(&self, a: &Atom) -> Option<&(Prim, Vec<Atom>)> {
        match a {
            Atom::Var(v) => self.defs.get(v.index()).and_then(Option::as_ref),
            Atom::Lit(_) => None,
        }
    }

    /// A literal, a constant array of equal elements, or a broadcast,
    /// reshape or transpose of one.
    fn constant(&self, a: &Atom) -> Option<Scalar> {
        match a {
            Atom::Lit(s) => Some(*s),
            Atom::Var(v) => {
                if let Some(s) = self.uniform.get(v) {
                    return Some(*s);
                }
                match self.def(a)? {
                    (
                        Prim::Shape(
                            ShapeOp::BroadcastInDim { .. } | ShapeOp::Reshape { .. } | ShapeOp::Transpose { .. },
                        ),
                        ins,
                    ) => self.constant(&ins[0]),
                    _ => None,
                }
            }
        }
    }

    fn is_value(&self, a: &Atom, v: f64) -> bool {
        self.constant(a).is_some_and(|s| s.as_f64() == v)
    }

    /// Equations that reduce to an existing operand or a literal.
    fn rewrite_to_atom(&self, prim: &Prim, ins: &[Atom], outs: &[AVal]) -> Option<Atom> {
        let out = outs.first()?;
        let same = |a: &Atom| (self.aval(a) == *out).then_some(*a);
        match prim {
            Prim::Elementwise(op) => {
                if ins.iter().all(|a| matches!(a, Atom::Lit(_))) && outs.len() == 1 && out.rank() == 0 {
                    let args: Vec<HostArray> = ins
                        .iter()
                        .map(|a| match a {
                            Atom::Lit(s) => HostArray::scalar(*s),
                            Atom::Var(_) => HostArray::scalar(Scalar::Bool(false)),
                        })
                        .collect();
                    let r = arrayjit_interp::eval_prim(prim, &args).ok()?;
                    return r.first()?.as_scalar().map(Atom::Lit);
                }
                match op {
                    E::Mul if self.is_value(&ins[1], 1.0) => same(&ins[0]),
                    E::Mul if self.is_value(&ins[0], 1.0) => same(&ins[1]),
                    E::Add if self.is_value(&ins[1], 0.0) => same(&ins[0]),
                    E::Add if self.is_value(&ins[0], 0.0) => same(&ins[1]),
                    E::Sub if self.is_value(&ins[1], 0.0) => same(&ins[0]),
                    E::Div if self.is_value(&ins[1], 1.0) => same(&ins[0]),
                    E::IntegerPow { exponent: 1 } => same(&ins[0]),
                    E::Neg => match self.def(&ins[0]) {
                        Some((Prim::Elementwise(E::Neg), inner)) => same(&inner[0]),
                        _ => None,
                    },
                    _ => None,
                }
            }
            Prim::Shape(ShapeOp::Transpose { perm }) if perm.iter().enumerate().all(|(i, &p)| i == p) => same(&ins[0]),
            Prim::Shape(ShapeOp::Reshape { .. }) => same(&ins[0]),
            Prim::Shape(ShapeOp::BroadcastInDim { dims, .. }) if dims.iter().enumerate().all(|(i, &d)| i == d) => {
                same(&ins[0])
            }
            _ => None,
        }
    }

    /// Elementwise equations on constants: all-constant operands fold into
    /// a broadcast literal; a broadcast literal beside a full-shaped operand
    /// becomes a literal operand (fusion then sees a constant); `x·(−1)` is `−x`.
    fn rewrite_elementwise(&self, op: E, ins: &[Atom], out: &AVal) -> Option<(Prim, Vec<Atom>)> {
        let consts: Vec<Option<Scalar>> = ins.iter().map(|a| self.constant(a)).collect();
        if consts.iter().all(Option::is_some) && out.rank() > 0 {
            let args: Vec<HostArray> = consts.iter().flatten().map(|s| HostArray::scalar(*s)).collect();
            let r = arrayjit_interp::eval_prim(&Prim::Elementwise(op), &args).ok()?;
            let lit = r.first()?.as_scalar()?;
            return Some((
                ShapeOp::BroadcastInDim { shape: out.shape.clone(), dims: vec![] }.into(),
                vec![Atom::Lit(lit)],
            ));
        }
        // A negation feeding an addition or subtraction folds into it:
        // IEEE defines `a − b` as `a + (−b)`, so the results are the same
        // (bit for bit, but for the sign of a NaN, which IEEE leaves open).
        let negated = |a: &Atom| match self.def(a) {
            Some((Prim::Elementwise(E::Neg), inner)) => Some(inner[0]),
            _ => None,
        };
        match op {
            E::Add => {
                if let Some(b) = negated(&ins[1]) {
                    return Some((E::Sub.into(), vec![ins[0], b]));
                }
                if let Some(a) = negated(&ins[0]) {
                    return Some((E::Sub.into(), vec![ins[1], a]));
                }
            }
            E::Sub => {
                if let Some(b) = negated(&ins[1]) {
                    return Some((E::Add.into(), vec![ins[0], b]));
                }
            }
            _ => {}
        }
        if matches!(op, E::Mul) {
            for (x, c) in [(0, 1), (1, 0)] {
                if self.is_value(&ins[c], -1.0) && self.aval(&ins[x]) == *out {
                    return Some((E::Neg.into(), vec![ins[x]]));
                }
            }
        }
        let full = ins.iter().any(|a| self.aval(a) == *out);
        let mut changed = false;
        let new: Vec<Atom> = ins
            .iter()
            .zip(&consts)
            .map(|(a, c)| match (a, c) {
                (Atom::Var(_), Some(s)) if full && self.aval(a).rank() > 0 => {
                    changed = true;
                    Atom::Lit(*s)
                }
                _ => *a,
            })
            .collect();
        // Keep at least one operand of the output's shape.
        (changed && new.iter().any(|a| self.aval(a) == *out)).then(|| (Prim::Elementwise(op), new))
    }

    /// Equations replaced by a cheaper equation.
    fn rewrite_eqn(&self, prim: &Prim, ins: &[Atom], outs: &[AVal]) -> Option<(Prim, Vec<Atom>)> {
        match prim {
            Prim::Elementwise(op) if outs.len() == 1 => self.rewrite_elementwise(*op, ins, &outs[0]),
            Prim::Shape(ShapeOp::Transpose { perm }) => match self.def(&ins[0])? {
                (Prim::Shape(ShapeOp::Transpose { perm: inner }), x) => {
                    let composed: Vec<usize> = perm.iter().map(|&p| inner[p]).collect();
                    Some((ShapeOp::Transpose { perm: composed }.into(), x.clone()))
                }
                _ => None,
            },
            Prim::Shape(ShapeOp::Reshape { shape }) => match self.def(&ins[0])? {
                (Prim::Shape(ShapeOp::Reshape { .. }), x) => {
                    Some((ShapeOp::Reshape { shape: shape.clone() }.into(), x.clone()))
                }
                _ => None,
            },
            Prim::Shape(ShapeOp::BroadcastInDim { shape, dims }) => match self.def(&ins[0])? {
                (Prim::Shape(ShapeOp::BroadcastInDim { dims: inner, .. }), x) => {
                    let composed: Vec<usize> = inner.iter().map(|&d| dims[d]).collect();
                    Some((ShapeOp::BroadcastInDim { shape: Shape(shape.0.clone()), dims: composed }.into(), x.clone()))
                }
                _ => None,
            },
            Prim::Linalg(Linalg::DotGeneral(d)) => {
                let (mut d, mut ins2, mut changed) = (d.clone(), ins.to_vec(), false);
                for side in 0..2 {
                    if let Some((Prim::Shape(ShapeOp::Transpose { perm }), x)) = self.def(&ins[side]) {
                        if let Some(nd) = fold_transpose(&d, perm, side == 0) {
                            d = nd;
                            ins2[side] = x[0];
                            changed = true;
                        }
                    }
                }
                changed.then(|| (Linalg::DotGeneral(d).into(), ins2))
            }
            _ => None,
        }
    }
}

/// Dimension numbers for `dot_general(x, ..)` equal to `dot_general(transpose(x, perm), ..)`,
/// if the transpose keeps the free dimensions in order (so the output is unchanged).
fn fold_transpose(d: &DotDims, perm: &[usize], lhs: bool) -> Option<DotDims> {
    let rank = perm.len();
    let (contract, batch) = if lhs { (&d.lhs_contract, &d.lhs_batch) } else { (&d.rhs_contract, &d.rhs_batch) };
    let free: Vec<usize> = (0..rank).filter(|k| !contract.contains(k) && !batch.contains(k)).collect();
    let mapped: Vec<usize> = free.iter().map(|&k| perm[k]).collect();
    if mapped.windows(2).any(|w| w[0] > w[1]) {
        return None;
    }
    let c: Vec<usize> = contract.iter().map(|&k| perm[k]).collect();
    let b: Vec<usize> = batch.iter().map(|&k| perm[k]).collect();
    let mut nd = d.clone();
    if lhs {
        nd.lhs_contract = c;
        nd.lhs_batch = b;
    } else {
        nd.rhs_contract = c;
        nd.rhs_batch = b;
    }
    Some(nd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayjit_interp::eval_program;
    use arrayjit_ir::{parse, Data};

    #[test]
    fn a_constant_column_of_ones_multiplies_nothing() {
        // x · broadcast(ones) is x (an intercept's column of ones); a column
        // of unequal values stays a product.
        let src = |col: &str| {
            format!(
                "{{ lambda k:f32[4,1]{{{col}}} ; x:f32[4,3] . let
                    r:f32[4] = reshape[new_sizes=(4)] k
                    kb:f32[4,3] = broadcast_in_dim[shape=(4,3) broadcast_dimensions=(0)] r
                    y:f32[4,3] = mul kb x
                  in (y) }}"
            )
        };
        let ones = parse(&src("1.0, 1.0, 1.0, 1.0")).unwrap();
        let q = arrayjit_ir::dce(&simplify(&ones));
        assert!(q.eqns.is_empty(), "{q}");
        let mixed = parse(&src("1.0, 1.0, -1.0, 1.0")).unwrap();
        let q = arrayjit_ir::dce(&simplify(&mixed));
        assert!(q.eqns.iter().any(|e| e.prim == Prim::Elementwise(E::Mul)), "{q}");
        let x = HostArray::new([4, 3], Data::F32((0..12).map(|i| i as f32 - 5.5).collect())).unwrap();
        for p in [&ones, &mixed] {
            let q = simplify(p);
            let args = std::slice::from_ref(&x);
            assert_eq!(eval_program(p, args).unwrap(), eval_program(&q, args).unwrap());
        }
    }

    #[test]
    fn negations_fold_into_additions_and_subtractions_with_the_same_results() {
        let p = parse(
            "{ lambda ; a:f32[6] b:f32[6] . let
                na:f32[6] = neg a
                nb:f32[6] = neg b
                x:f32[6] = add na b
                y:f32[6] = add a nb
                z:f32[6] = sub a nb
              in (x, y, z) }",
        )
        .unwrap();
        let q = arrayjit_ir::dce(&simplify(&p));
        let names: Vec<&str> = q.eqns.iter().map(|e| e.prim.name()).collect();
        assert_eq!(names, ["sub", "sub", "add"]);
        let a = HostArray::new([6], Data::F32(vec![0.0, -0.0, 1.5, f32::INFINITY, f32::NAN, 3.0])).unwrap();
        let b = HostArray::new([6], Data::F32(vec![-0.0, 0.0, 1.5, f32::INFINITY, 2.0, -1e-45])).unwrap();
        let want = eval_program(&p, &[a.clone(), b.clone()]).unwrap();
        let got = eval_program(&q, &[a, b]).unwrap();
        for (w, g) in want.iter().zip(&got) {
            // Bit for bit, except that IEEE leaves the sign of a NaN open.
            let bits = |h: &HostArray| {
                (0..6)
                    .map(|i| h.data().get(i).as_f64())
                    .map(|v| if v.is_nan() { 0 } else { v.to_bits() })
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(w), bits(g));
        }
    }
}
