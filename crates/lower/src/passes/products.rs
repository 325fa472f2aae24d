//! Rewrites of matrix products:
//! - a product with an operand whose elements are all equal (a constant like
//!   a column of ones, or a broadcast scalar) is that value times a sum of
//!   the other operand over the contracted axes: a reduction, which fuses;
//! - a product whose contracted axes all have size 1 is an outer product:
//!   elementwise, so it fuses into its readers instead of being written out
//!   (`X·B` with X a column of ones is a broadcast of B);
//! - `transpose(dot_general(a, b))` of a plain product (no batch axes, one
//!   free axis per operand) becomes `dot_general(b, a)`, since (A·B)ᵀ = Bᵀ·Aᵀ
//!   (the cotangent of a product's right operand comes out transposed; left
//!   in place, the kernel reading it would read it column by column);
//! - `A·B + A·C` (the same left operand, square right operands, possibly one
//!   of them transposed) becomes `A·(B + C)`: one large product instead of
//!   two (the gradient of tr(MᵀM·Ω) in M is M·Ω + M·Ωᵀ).

use super::rebuild::Rebuild;
use arrayjit_ir::prim::{DotDims, Linalg, ShapeOp};
use arrayjit_ir::{Atom, Prim, Program};

/// How many times each variable is read, and the equation defining it.
pub(super) fn uses_and_defs(p: &Program) -> (Vec<usize>, Vec<Option<usize>>) {
    let mut uses = vec![0usize; p.num_vars()];
    for e in &p.eqns {
        for a in &e.inputs {
            if let Atom::Var(v) = a {
                uses[v.index()] += 1;
            }
        }
    }
    for a in &p.outputs {
        if let Atom::Var(v) = a {
            uses[v.index()] += 1;
        }
    }
    (uses, p.producers())
}

/// The program with transposed products computed in the transposed order.
pub fn transpose_products(p: &Program) -> Program {
    let (uses, def) = uses_and_defs(p);
    let mut r = Rebuild::new(p);
    for e in &p.eqns {
        let swapped = match (&e.prim, e.inputs.as_slice()) {
            (Prim::Shape(ShapeOp::Transpose { perm }), [Atom::Var(x)]) if perm == &[1, 0] && uses[x.index()] == 1 => {
                def[x.index()].and_then(|d| {
                    let de = &p.eqns[d];
                    match &de.prim {
                        Prim::Linalg(Linalg::DotGeneral(dims))
                            if dims.lhs_batch.is_empty()
                                && p.aval(de.outputs[0]).rank() == 2
                                && p.atom_aval(&de.inputs[0]).rank() == dims.lhs_contract.len() + 1 =>
                        {
                            let flipped = DotDims {
                                lhs_contract: dims.rhs_contract.clone(),
                                rhs_contract: dims.lhs_contract.clone(),
                                lhs_batch: vec![],
                                rhs_batch: vec![],
                            };
                            Some((flipped, de.inputs[1], de.inputs[0]))
                        }
                        _ => None,
                    }
                })
            }
            _ => None,
        };
        match swapped {
            Some((dims, lhs, rhs)) => {
                let ins = vec![r.get(&lhs), r.get(&rhs)];
                let avals = r.out_avals(e);
                let outs = r.b.add_eqn(Prim::Linalg(Linalg::DotGeneral(dims)), ins, avals, e.loc);
                r.set_all(&e.outputs, outs);
            }
            None => {
                let ins = r.inputs(e);
                r.copy(e, ins);
            }
        }
    }
    r.finish()
}

/// The program with sums of products sharing their left operand computed as one product.
pub fn distribute_products(p: &Program) -> Program {
    let (uses, def) = uses_and_defs(p);
    let mut r = Rebuild::new(p);
    for e in &p.eqns {
        match distribute(p, e, &def, &uses, &mut r) {
            Some(outs) => r.set_all(&e.outputs, outs),
            None => {
                let ins = r.inputs(e);
                r.copy(e, ins);
            }
        }
    }
    r.finish()
}

/// `add(A·B, A·C)` → `A·(B + C)` when both products are used only there,
/// share their left operand and its contracted axis, and B, C are square.
fn distribute(
    p: &Program,
    e: &arrayjit_ir::Eqn,
    def: &[Option<usize>],
    uses: &[usize],
    r: &mut Rebuild<'_>,
) -> Option<Vec<arrayjit_ir::Var>> {
    use arrayjit_ir::prim::Elementwise;
    let (Prim::Elementwise(Elementwise::Add), [Atom::Var(x), Atom::Var(y)]) = (&e.prim, e.inputs.as_slice()) else {
        return None;
    };
    let product = |v: &arrayjit_ir::Var| -> Option<(&DotDims, Atom, Atom)> {
        if uses[v.index()] != 1 {
            return None;
        }
        let de = &p.eqns[def[v.index()]?];
        match &de.prim {
            Prim::Linalg(Linalg::DotGeneral(d))
                if d.lhs_batch.is_empty() && d.rhs_contract.len() == 1 && p.atom_aval(&de.inputs[1]).rank() == 2 =>
            {
                let b = p.atom_aval(&de.inputs[1]);
                (b.shape.dims()[0] == b.shape.dims()[1]).then_some((d, de.inputs[0], de.inputs[1]))
            }
            _ => None,
        }
    };
    let ((d1, a1, b1), (d2, a2, b2)) = (product(x)?, product(y)?);
    if a1 != a2 || d1.lhs_contract != d2.lhs_contract || p.atom_aval(&b1) != p.atom_aval(&b2) {
        return None;
    }
    let aval = p.atom_aval(&b1);
    let b2 = if d1.rhs_contract == d2.rhs_contract {
        r.get(&b2)
    } else {
        let t = ShapeOp::Transpose { perm: vec![1, 0] };
        Atom::Var(r.b.add_eqn(t.into(), vec![r.get(&b2)], vec![aval.clone()], e.loc)[0])
    };
    let sum = r.b.add_eqn(Elementwise::Add.into(), vec![r.get(&b1), b2], vec![aval], e.loc)[0];
    let avals = r.out_avals(e);
    Some(r.b.add_eqn(Prim::Linalg(Linalg::DotGeneral(d1.clone())), vec![r.get(&a1), Atom::Var(sum)], avals, e.loc))
}

/// Rebuilds `p`, letting `rewrite` replace each plain `dot_general` (no
/// batch axes, float operands): it returns the new outputs, or `None` to
/// keep the equation.
fn rewrite_products(
    p: &Program,
    mut rewrite: impl FnMut(&mut Rebuild<'_>, &arrayjit_ir::Eqn, &DotDims, &[Atom]) -> Option<Vec<arrayjit_ir::Var>>,
) -> Program {
    let mut r = Rebuild::new(p);
    for e in &p.eqns {
        let ins = r.inputs(e);
        let done = match &e.prim {
            Prim::Linalg(Linalg::DotGeneral(d))
                if d.lhs_batch.is_empty() && p.atom_aval(&e.inputs[0]).dtype.is_float() =>
            {
                rewrite(&mut r, e, d, &ins)
            }
            _ => None,
        };
        match done {
            Some(outs) => r.set_all(&e.outputs, outs),
            None => r.copy(e, ins),
        }
    }
    r.finish()
}

/// The sizes of `aval`'s axes that are not contracted, in order.
fn free_dims(aval: &arrayjit_ir::AVal, contract: &[usize]) -> Vec<usize> {
    (0..aval.rank()).filter(|k| !contract.contains(k)).map(|k| aval.shape.dims()[k]).collect()
}

/// The program with products over size-1 axes written as broadcast multiplications.
pub fn outer_products(p: &Program) -> Program {
    use arrayjit_ir::prim::Elementwise;
    rewrite_products(p, |r, e, d, ins| {
        let la = p.atom_aval(&e.inputs[0]);
        if d.lhs_contract.is_empty() || !d.lhs_contract.iter().all(|&k| la.shape.dims()[k] == 1) {
            return None;
        }
        let out = r.out_avals(e).remove(0);
        let (lf, rf) = (free_dims(&la, &d.lhs_contract), free_dims(&p.atom_aval(&e.inputs[1]), &d.rhs_contract));
        let nl = lf.len();
        let side = |r: &mut Rebuild<'_>, x: Atom, dims: Vec<usize>, at: Vec<usize>| -> Atom {
            let shaped = arrayjit_ir::AVal::new(out.dtype, dims.clone());
            let v = r.b.add_eqn(ShapeOp::Reshape { shape: dims.into() }.into(), vec![x], vec![shaped], e.loc)[0];
            let bc = ShapeOp::BroadcastInDim { shape: out.shape.clone(), dims: at };
            Atom::Var(r.b.add_eqn(bc.into(), vec![Atom::Var(v)], vec![out.clone()], e.loc)[0])
        };
        let a = side(r, ins[0], lf, (0..nl).collect());
        let b = side(r, ins[1], rf.clone(), (nl..nl + rf.len()).collect());
        Some(r.b.add_eqn(Elementwise::Mul.into(), vec![a, b], vec![out.clone()], e.loc))
    })
}

/// The value every element of `a` holds, if `a` is a literal, a constant
/// with all elements equal, or a broadcast of a literal.
fn uniform(p: &Program, def: &[Option<usize>], a: &Atom) -> Option<arrayjit_ir::Scalar> {
    match a {
        Atom::Lit(s) => Some(*s),
        Atom::Var(v) => {
            if let Some(c) = p.uniform_constant(*v) {
                return Some(c);
            }
            let e = &p.eqns[def[v.index()]?];
            match &e.prim {
                Prim::Shape(ShapeOp::BroadcastInDim { .. }) => uniform(p, def, &e.inputs[0]),
                _ => None,
            }
        }
    }
}

/// The program with products by uniform operands written as scaled sums.
pub fn uniform_products(p: &Program) -> Program {
    use arrayjit_ir::prim::{Elementwise, Reduction};
    let (_, def) = uses_and_defs(p);
    rewrite_products(p, |r, e, d, ins| {
        let (c, other) = match uniform(p, &def, &e.inputs[0]) {
            Some(c) => (c, 1),
            None => (uniform(p, &def, &e.inputs[1])?, 0),
        };
        let (la, ra) = (p.atom_aval(&e.inputs[0]), p.atom_aval(&e.inputs[1]));
        let out = r.out_avals(e).remove(0);
        let (oa, contract) = if other == 1 { (&ra, &d.rhs_contract) } else { (&la, &d.lhs_contract) };
        let nl = la.rank() - d.lhs_contract.len();
        let nr = ra.rank() - d.rhs_contract.len();
        let summed_aval = arrayjit_ir::AVal::new(out.dtype, free_dims(oa, contract));
        // Σ c·x, scaled term by term as the product is (c·Σx could overflow
        // where the terms do not, and 0·Σx would be NaN where Σ 0·x is 0).
        let terms = if c.as_f64() == 1.0 {
            ins[other]
        } else {
            let scaled = arrayjit_ir::AVal::new(out.dtype, oa.shape.clone());
            Atom::Var(r.b.add_eqn(Elementwise::Mul.into(), vec![ins[other], Atom::Lit(c)], vec![scaled], e.loc)[0])
        };
        let sum = Reduction::Sum { axes: contract.clone() };
        let sum = r.b.add_eqn(sum.into(), vec![terms], vec![summed_aval], e.loc)[0];
        let at: Vec<usize> = if other == 1 { (nl..nl + nr).collect() } else { (0..nl).collect() };
        let bc = ShapeOp::BroadcastInDim { shape: out.shape.clone(), dims: at };
        Some(r.b.add_eqn(bc.into(), vec![Atom::Var(sum)], vec![out], e.loc))
    })
}
