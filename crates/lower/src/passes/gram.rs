//! Sums against a Gram matrix read from a product the program already has:
//! `sum((AᵀA) ⊙ X) = sum(A ⊙ (A·X))`, and the same with `A·Xᵀ` (AᵀA is
//! symmetric) or with `A·k(X + Xᵀ)` divided by `2k`.
//!
//! A Gaussian term `tr((AᵀA + D)·Ω)` and its gradient `A·(Ω + Ωᵀ)` meet this
//! way: after the diagonal and distribution passes the loss reads
//! `sum((AᵀA + D) ⊙ Ωᵀ)`, and the gradient has `A·½(Ωᵀ + Ω)`. The Gram
//! product (n·p² multiply-adds, as many as the gradient's product) then
//! goes, and its sum becomes a sum over the n×p elements of `A ⊙ (A·C)`,
//! which fuses into a pass over `A` the program makes anyway. The PLN fit's
//! loss-and-gradient function (level 1) loses one of its two products so.
//!
//! The product that stands in is moved up to the sum when it came later in
//! the program (the gradient follows the loss), with the equations it needs
//! that came later too; it never depends on the sum, or the rewrite is not
//! made.

use super::rebuild::Rebuild;
use arrayjit_ir::prim::{DotDims, Elementwise, Linalg, Reduction, ShapeOp};
use arrayjit_ir::{AVal, Atom, Prim, Program, Scalar, Var};

/// A sum to rewrite: the equation whose output is the scalar sum, the Gram
/// matrix's factor `A`, the other term added to the Gram matrix (if any),
/// the matrix `X`, the product `A·C` that stands in, and the factor to
/// divide its sum by.
struct Match {
    sum_eqn: usize,
    a: Atom,
    other: Option<Atom>,
    x: Atom,
    x_first: bool,
    product_eqn: usize,
    divide_by: f64,
}

fn var(a: &Atom) -> Option<Var> {
    match a {
        Atom::Var(v) => Some(*v),
        Atom::Lit(_) => None,
    }
}

fn is_plain(d: &DotDims, lhs: usize, rhs: usize) -> bool {
    d.lhs_batch.is_empty() && d.rhs_batch.is_empty() && d.lhs_contract == [lhs] && d.rhs_contract == [rhs]
}

fn is_transpose(prim: &Prim) -> bool {
    matches!(prim, Prim::Shape(ShapeOp::Transpose { perm }) if perm == &[1, 0])
}

struct Graph<'p> {
    p: &'p Program,
    def: Vec<Option<usize>>,
    uses: Vec<usize>,
}

impl Graph<'_> {
    /// The equation defining `a`, if it is a variable defined by one.
    fn eqn(&self, a: &Atom) -> Option<(usize, &arrayjit_ir::Eqn)> {
        let i = self.def[var(a)?.index()]?;
        Some((i, &self.p.eqns[i]))
    }

    fn used_once(&self, a: &Atom) -> bool {
        var(a).is_some_and(|v| self.uses[v.index()] == 1)
    }

    /// `x` read through a transpose, as `C` or as the `k` of `C = kX + (kX)ᵀ`:
    /// the factor `sum(A ⊙ A·C)` is of `sum(AᵀA ⊙ X)`.
    fn factor(&self, c: &Atom, x: &Atom) -> Option<f64> {
        if c == x {
            return Some(1.0);
        }
        // Whether `u` is `wᵀ`: one of them is defined as the other's transpose.
        let defined_as =
            |u: &Atom, w: &Atom| matches!(self.eqn(u), Some((_, e)) if is_transpose(&e.prim) && &e.inputs[0] == w);
        let transposes = |u: &Atom, w: &Atom| defined_as(u, w) || defined_as(w, u);
        if transposes(c, x) {
            return Some(1.0);
        }
        let (_, e) = self.eqn(c)?;
        if !matches!(e.prim, Prim::Elementwise(Elementwise::Add)) {
            return None;
        }
        let (l, r) = (&e.inputs[0], &e.inputs[1]);
        if !transposes(l, r) {
            return None;
        }
        // C = H + Hᵀ: with H (or Hᵀ) the matrix itself, or H = kX.
        if l == x || r == x {
            return Some(2.0);
        }
        let h = if defined_as(r, l) { l } else { r };
        let (_, m) = self.eqn(h)?;
        if !matches!(m.prim, Prim::Elementwise(Elementwise::Mul)) {
            return None;
        }
        let k = match (&m.inputs[0], &m.inputs[1]) {
            (Atom::Lit(k), y) | (y, Atom::Lit(k)) if y == x => k.as_f64(),
            _ => return None,
        };
        (k != 0.0 && k.is_finite()).then_some(2.0 * k)
    }

    /// Whether equation `target` reads, through any chain, the output of `from`.
    fn depends_on(&self, target: usize, from: usize) -> bool {
        let mut stack = vec![target];
        let mut seen = vec![false; self.p.eqns.len()];
        while let Some(i) = stack.pop() {
            if i == from {
                return true;
            }
            if std::mem::replace(&mut seen[i], true) || i < from {
                continue;
            }
            stack.extend(self.p.eqns[i].inputs.iter().filter_map(|a| self.eqn(a).map(|(j, _)| j)));
        }
        false
    }

    /// The rewrite of the scalar sum defined by equation `i`, if it is one.
    fn find(&self, i: usize) -> Option<Match> {
        let e = &self.p.eqns[i];
        // A chain of sums down to a matrix, covering both of its axes.
        let Prim::Reduce(Reduction::Sum { axes }) = &e.prim else { return None };
        let mut y = e.inputs[0];
        let mut summed = axes.len();
        if self.p.atom_aval(&Atom::Var(e.outputs[0])).rank() != 0 {
            return None;
        }
        while self.p.atom_aval(&y).rank() != 2 {
            let (_, inner) = self.eqn(&y)?;
            let Prim::Reduce(Reduction::Sum { axes }) = &inner.prim else { return None };
            if !self.used_once(&y) {
                return None;
            }
            summed += axes.len();
            y = inner.inputs[0];
        }
        if summed != 2 || !self.used_once(&y) {
            return None;
        }
        let (_, prod) = self.eqn(&y)?;
        if !matches!(prod.prim, Prim::Elementwise(Elementwise::Mul)) {
            return None;
        }
        let aval = self.p.atom_aval(&y);
        if !aval.dtype.is_float() || prod.inputs.iter().any(|a| self.p.atom_aval(a) != aval) {
            return None;
        }
        for (w_at, x_at) in [(0, 1), (1, 0)] {
            let (w, x) = (prod.inputs[w_at], prod.inputs[x_at]);
            // The Gram matrix, alone or plus another term.
            let mut candidates = vec![(w, None)];
            if let Some((_, add)) = self.eqn(&w) {
                if matches!(add.prim, Prim::Elementwise(Elementwise::Add)) && self.used_once(&w) {
                    let (l, r) = (add.inputs[0], add.inputs[1]);
                    if self.p.atom_aval(&l) == aval && self.p.atom_aval(&r) == aval {
                        candidates.push((l, Some(r)));
                        candidates.push((r, Some(l)));
                    }
                }
            }
            for (g, other) in candidates {
                let Some((gi, gram)) = self.eqn(&g) else { continue };
                let Prim::Linalg(Linalg::DotGeneral(d)) = &gram.prim else { continue };
                if !is_plain(d, 0, 0) || gram.inputs[0] != gram.inputs[1] || !self.used_once(&g) {
                    continue;
                }
                let a = gram.inputs[0];
                if self.p.atom_aval(&a).rank() != 2 {
                    continue;
                }
                // A product A·C, C standing for X, that does not depend on this sum.
                let found = self.p.eqns.iter().enumerate().find_map(|(j, pe)| {
                    let Prim::Linalg(Linalg::DotGeneral(pd)) = &pe.prim else { return None };
                    if j == gi || !is_plain(pd, 1, 0) || pe.inputs[0] != a || self.depends_on(j, i) {
                        return None;
                    }
                    self.factor(&pe.inputs[1], &x).map(|f| (j, f))
                });
                if let Some((product_eqn, divide_by)) = found {
                    return Some(Match { sum_eqn: i, a, other, x, x_first: x_at == 0, product_eqn, divide_by });
                }
            }
        }
        None
    }
}

/// The program with sums against Gram matrices read from existing products.
pub fn gram_sums(p: &Program) -> Program {
    let (uses, def) = super::products::uses_and_defs(p);
    let g = Graph { p, def, uses };
    // A Gram matrix of no rows is zeros, whose sum against X is NaN where X
    // holds one; the rewritten sum over no elements would be 0.
    let matches: Vec<Match> =
        (0..p.eqns.len()).filter_map(|i| g.find(i)).filter(|m| p.atom_aval(&m.a).shape.first() != Some(&0)).collect();
    if matches.is_empty() {
        return p.clone();
    }
    // The equations each rewritten sum needs moved up before it.
    let mut moved_to: Vec<Option<usize>> = vec![None; p.eqns.len()];
    for m in &matches {
        let mut stack = vec![m.product_eqn];
        while let Some(j) = stack.pop() {
            if j < m.sum_eqn || moved_to[j].is_some() {
                continue;
            }
            moved_to[j] = Some(m.sum_eqn);
            stack.extend(p.eqns[j].inputs.iter().filter_map(|a| g.eqn(a).map(|(k, _)| k)));
        }
    }
    let mut r = Rebuild::new(p);
    let mut done = vec![false; p.eqns.len()];
    for (i, e) in p.eqns.iter().enumerate() {
        if done[i] {
            continue;
        }
        if let Some(m) = matches.iter().find(|m| m.sum_eqn == i) {
            for (j, ej) in p.eqns.iter().enumerate().skip(i + 1) {
                if moved_to[j] == Some(i) && !done[j] {
                    let ins = r.inputs(ej);
                    r.copy(ej, ins);
                    done[j] = true;
                }
            }
            let out = emit(&mut r, p, e, m);
            r.set(e.outputs[0], out);
        } else {
            let ins = r.inputs(e);
            r.copy(e, ins);
        }
        done[i] = true;
    }
    r.finish()
}

/// `sum(A ⊙ (A·C)) / divide_by`, plus `sum(other ⊙ X)` when the Gram matrix had a term added.
fn emit(r: &mut Rebuild<'_>, p: &Program, e: &arrayjit_ir::Eqn, m: &Match) -> Atom {
    let product = Atom::Var(p.eqns[m.product_eqn].outputs[0]);
    let a_aval = p.atom_aval(&m.a);
    let dtype = a_aval.dtype;
    let scalar = AVal::new(dtype, Vec::<usize>::new());
    let full_sum = |r: &mut Rebuild<'_>, x: Atom, y: Atom, aval: &AVal| -> Atom {
        let t = r.b.add_eqn(Elementwise::Mul.into(), vec![x, y], vec![aval.clone()], e.loc)[0];
        let sum = Reduction::Sum { axes: vec![0, 1] };
        Atom::Var(r.b.add_eqn(sum.into(), vec![Atom::Var(t)], vec![scalar.clone()], e.loc)[0])
    };
    let (a, pr) = (r.get(&m.a), r.get(&product));
    let mut total = full_sum(r, a, pr, &a_aval);
    if m.divide_by != 1.0 {
        let inv = Scalar::from_f64(1.0 / m.divide_by, dtype);
        total = Atom::Var(
            r.b.add_eqn(Elementwise::Mul.into(), vec![total, Atom::Lit(inv)], vec![scalar.clone()], e.loc)[0],
        );
    }
    if let Some(other) = &m.other {
        let (o, x) = (r.get(other), r.get(&m.x));
        let ins = if m.x_first { (x, o) } else { (o, x) };
        let rest = full_sum(r, ins.0, ins.1, &p.atom_aval(&m.x));
        total = Atom::Var(r.b.add_eqn(Elementwise::Add.into(), vec![total, rest], vec![scalar], e.loc)[0]);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayjit_ir::{dce, parse, typecheck, Data, HostArray};

    fn mat(n: usize, m: usize, seed: f64) -> HostArray {
        let v: Vec<f64> = (0..n * m).map(|i| ((i as f64 + seed) * 0.37).sin()).collect();
        HostArray::new([n, m], Data::F64(v)).unwrap()
    }

    fn outputs(p: &Program, args: &[HostArray]) -> Vec<f64> {
        let out = arrayjit_interp::eval_program(p, args).unwrap();
        out.iter().flat_map(|o| (0..o.numel()).map(|i| o.data().get(i).as_f64()).collect::<Vec<_>>()).collect()
    }

    /// The loss `sum((AᵀA + D) ⊙ Xᵀ)` of a Gaussian term as the passes before
    /// leave it (the sum over rows, then over the rest), and a product `A·C`
    /// after it, as a gradient has it: `c` defines `C` from `x`.
    fn program(c: &str, gram_also_output: bool) -> Program {
        let text = format!(
            "{{ lambda ; a:f64[7,3] f:f64[3,3] d:f64[3,3] . let
                g:f64[3,3] = dot_general[lhs_contract=(0) rhs_contract=(0) lhs_batch=() rhs_batch=()] a a
                w:f64[3,3] = add g d
                x:f64[3,3] = transpose[permutation=(1,0)] f
                y:f64[3,3] = mul w x
                z:f64[3] = reduce_sum[axes=(1)] y
                s:f64[] = reduce_sum[axes=(0)] z
                {c}
                pr:f64[7,3] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] a cc
              in (s, pr{}) }}",
            if gram_also_output { ", g" } else { "" }
        );
        parse(&text).unwrap()
    }

    fn products(p: &Program) -> usize {
        p.to_string().matches("dot_general").count()
    }

    #[test]
    fn the_gram_product_goes_for_every_form_of_the_other_product() {
        let forms = [
            // `x` itself, once CSE has merged the two transposes.
            "cc:f64[3,3] = transpose[permutation=(1,0)] f",
            "cc:f64[3,3] = transpose[permutation=(1,0)] x",
            "cc:f64[3,3] = add x f",
            "h:f64[3,3] = mul 0.5:f64 x
             ht:f64[3,3] = transpose[permutation=(1,0)] h
             cc:f64[3,3] = add h ht",
            "h:f64[3,3] = mul x -3.0:f64
             ht:f64[3,3] = transpose[permutation=(1,0)] h
             cc:f64[3,3] = add ht h",
        ];
        let args = [mat(7, 3, 1.0), mat(3, 3, 2.0), mat(3, 3, 3.0)];
        for (k, c) in forms.iter().enumerate() {
            let p = super::super::cse::cse(&program(c, false));
            let q = dce(&gram_sums(&p));
            typecheck(&q).unwrap();
            assert_eq!((products(&p), products(&q)), (2, 1), "form {k}:\n{q}");
            let (want, got) = (outputs(&p, &args), outputs(&q, &args));
            for (w, g) in want.iter().zip(&got) {
                assert!((w - g).abs() <= 1e-12 * (1.0 + w.abs()), "form {k}: {want:?} vs {got:?}");
            }
        }
    }

    #[test]
    fn no_rewrite_without_a_product_to_read_or_when_the_gram_matrix_is_needed() {
        // `C = X·2` without its transpose is not a form whose sum gives the loss's.
        let p = program("cc:f64[3,3] = mul x 2.0:f64", false);
        assert_eq!(products(&dce(&gram_sums(&p))), 2);
        // The Gram matrix is an output: it stays, and so does its sum.
        let p = program("cc:f64[3,3] = transpose[permutation=(1,0)] f", true);
        assert_eq!(gram_sums(&p), p);
    }
}
