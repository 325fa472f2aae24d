//! Matrix products with a diagonal side, rewritten as elementwise work:
//!
//! - `diag_part(A·B)` (a product masked to its diagonal, as `trace(A·B)` and
//!   `diag_part(A·B)` trace it) becomes the row sums of `A ⊙ Bᵀ`: n·k
//!   multiplications instead of an n·n·k product;
//! - `diag(v)·B` becomes a row scaling of `B`, and `B·diag(v)` a column
//!   scaling: n·m multiplications instead of n·n·m;
//! - `diag_part(diag(v))` is `v`.
//!
//! A diagonal matrix is recognised as `select(iota₀ == iota₁, X, 0)`, which
//! is how `diag`, `diag_part`, `trace` and `eye` are traced.

use super::rebuild::Rebuild;
use arrayjit_ir::prim::{DotDims, Elementwise as E, Linalg, Reduction, ShapeOp};
use arrayjit_ir::{AVal, Atom, Loc, Prim, Program, Shape, Var};

/// The program with every matching product rewritten.
pub fn diagonal_products(p: &Program) -> Program {
    let mut w = Rewriter { r: Rebuild::new(p), defs: Vec::new() };
    for e in &p.eqns {
        let ins = w.r.inputs(e);
        let outs = w.r.out_avals(e);
        let rewritten = match (&e.prim, &outs[..]) {
            (Prim::Elementwise(E::Select), [out]) => w.masked_product(&ins, out, e.loc),
            (Prim::Linalg(Linalg::DotGeneral(d)), [out]) => w.diagonal_factor(d, &ins, out, e.loc),
            (Prim::Reduce(Reduction::Sum { axes }), [out]) if axes.len() == 1 => w.vector_of_diagonal(&ins[0], out),
            _ => None,
        };
        match rewritten {
            Some(a) => w.r.set(e.outputs[0], a),
            None => {
                let vars = w.add(e.prim.clone(), ins, outs, e.loc);
                w.r.set_all(&e.outputs, vars);
            }
        }
    }
    w.r.finish()
}

struct Rewriter<'p> {
    r: Rebuild<'p>,
    /// The defining equation of each new variable.
    defs: Vec<Option<(Prim, Vec<Atom>)>>,
}

/// For a product of two matrices contracting one axis of each (any of the
/// four `A·B`, `Aᵀ·B`, `A·Bᵀ`, `Aᵀ·Bᵀ`): whether each operand enters
/// transposed, taking `A·B` (`lhs_contract = 1`, `rhs_contract = 0`) as neither.
fn matrix_product(d: &DotDims) -> Option<(bool, bool)> {
    if !d.lhs_batch.is_empty() || !d.rhs_batch.is_empty() {
        return None;
    }
    match (&d.lhs_contract[..], &d.rhs_contract[..]) {
        ([a], [b]) if *a < 2 && *b < 2 => Some((*a == 0, *b == 1)),
        _ => None,
    }
}

impl Rewriter<'_> {
    fn add(&mut self, prim: Prim, ins: Vec<Atom>, outs: Vec<AVal>, loc: Loc) -> Vec<Var> {
        let vars = self.r.b.add_eqn(prim.clone(), ins.clone(), outs, loc);
        for v in &vars {
            if self.defs.len() <= v.index() {
                self.defs.resize(v.index() + 1, None);
            }
            self.defs[v.index()] = Some((prim.clone(), ins.clone()));
        }
        vars
    }

    fn add1(&mut self, prim: Prim, ins: Vec<Atom>, out: AVal, loc: Loc) -> Atom {
        Atom::Var(self.add(prim, ins, vec![out], loc)[0])
    }

    fn def(&self, a: &Atom) -> Option<&(Prim, Vec<Atom>)> {
        match a {
            Atom::Var(v) => self.defs.get(v.index()).and_then(Option::as_ref),
            Atom::Lit(_) => None,
        }
    }

    fn aval(&self, a: &Atom) -> AVal {
        match a {
            Atom::Var(v) => self.r.b.aval(*v).clone(),
            Atom::Lit(s) => AVal::scalar(s.dtype()),
        }
    }

    /// A literal zero, or a broadcast of one.
    fn is_zero(&self, a: &Atom) -> bool {
        crate::idioms::is_zero(&|x: &Atom| self.def(x).map(|(p, i)| (p, i.as_slice())), a)
    }

    /// `iota(axis 0) == iota(axis 1)` over a square matrix.
    fn is_eye_mask(&self, a: &Atom) -> bool {
        crate::idioms::is_eye_mask(&|x: &Atom| self.def(x).map(|(p, i)| (p, i.as_slice())), a)
    }

    /// `select(eye, A·B, 0)` → `select(eye, broadcast(rowsum(A ⊙ Bᵀ)), 0)`.
    fn masked_product(&mut self, ins: &[Atom], out: &AVal, loc: Loc) -> Option<Atom> {
        if out.rank() != 2 || !self.is_eye_mask(&ins[0]) || !self.is_zero(&ins[2]) {
            return None;
        }
        let (Prim::Linalg(Linalg::DotGeneral(d)), ab) = self.def(&ins[1])?.clone() else { return None };
        let (ta, tb) = matrix_product(&d)?;
        let (aa, ba) = (self.aval(&ab[0]), self.aval(&ab[1]));
        if aa.rank() != 2 || ba.rank() != 2 || aa.dtype != ba.dtype || !aa.dtype.is_float() {
            return None;
        }
        // (A'·B')ᵢᵢ = Σₖ A'ᵢₖ·B'ₖᵢ with A' = op(A), B' = op(B): the row sums of A' ⊙ B'ᵀ.
        let a = self.oriented(ab[0], ta, loc);
        let b = self.oriented(ab[1], !tb, loc);
        let (n, k) = (out.shape[0], self.aval(&a).shape[1]);
        let prod = self.add1(E::Mul.into(), vec![a, b], AVal::new(aa.dtype, [n, k]), loc);
        let diag = self.add1(Reduction::Sum { axes: vec![1] }.into(), vec![prod], AVal::new(aa.dtype, [n]), loc);
        let full = self.add1(
            ShapeOp::BroadcastInDim { shape: Shape::from([n, n]), dims: vec![0] }.into(),
            vec![diag],
            out.clone(),
            loc,
        );
        Some(self.add1(E::Select.into(), vec![ins[0], full, ins[2]], out.clone(), loc))
    }

    /// `diag·B` → `d ⊙ B` by rows, `B·diag` → by columns, where `d` is the
    /// diagonal (the row or column sums of the diagonal matrix); `B` may
    /// enter the product transposed, and a diagonal factor is its own
    /// transpose.
    fn diagonal_factor(&mut self, d: &DotDims, ins: &[Atom], out: &AVal, loc: Loc) -> Option<Atom> {
        let (ta, tb) = matrix_product(d)?;
        if out.rank() != 2 || !out.dtype.is_float() {
            return None;
        }
        let diagonal = |r: &Rewriter, a: &Atom| match r.def(a) {
            Some((Prim::Elementwise(E::Select), s)) => r.is_eye_mask(&s[0]) && r.is_zero(&s[2]),
            _ => false,
        };
        let (side, diag_m, other, transposed) = if diagonal(self, &ins[0]) {
            (0, ins[0], ins[1], tb)
        } else if diagonal(self, &ins[1]) {
            (1, ins[1], ins[0], ta)
        } else {
            return None;
        };
        let da = self.aval(&diag_m);
        if da.rank() != 2 || da.dtype != out.dtype || self.aval(&other).dtype != out.dtype {
            return None;
        }
        let other = self.oriented(other, transposed, loc);
        let n = da.shape[0];
        let vector = AVal::new(da.dtype, [n]);
        let v = match self.vector_of_diagonal(&diag_m, &vector) {
            Some(v) => v,
            None => self.add1(Reduction::Sum { axes: vec![1] }.into(), vec![diag_m], vector, loc),
        };
        let dims = if side == 0 { vec![0] } else { vec![1] };
        let full = self.add1(
            ShapeOp::BroadcastInDim { shape: Shape(out.shape.0.clone()), dims }.into(),
            vec![v],
            out.clone(),
            loc,
        );
        Some(self.add1(E::Mul.into(), vec![full, other], out.clone(), loc))
    }

    /// The sum along either axis of `select(eye, broadcast(v), 0)` (a
    /// diagonal matrix built from the vector `v`, as `diag` and the rewrite
    /// of `diag_part(A·B)` above make it): `v` itself.
    fn vector_of_diagonal(&self, m: &Atom, out: &AVal) -> Option<Atom> {
        let Some((Prim::Elementwise(E::Select), s)) = self.def(m) else { return None };
        if !self.is_eye_mask(&s[0]) || !self.is_zero(&s[2]) {
            return None;
        }
        let Some((Prim::Shape(ShapeOp::BroadcastInDim { dims, .. }), v)) = self.def(&s[1]) else { return None };
        let v = v[0];
        (matches!(dims[..], [0] | [1]) && self.aval(&v) == *out).then_some(v)
    }

    /// Matrix `a`, transposed when asked.
    fn oriented(&mut self, a: Atom, transpose: bool, loc: Loc) -> Atom {
        if !transpose {
            return a;
        }
        let aa = self.aval(&a);
        let t = AVal::new(aa.dtype, [aa.shape[1], aa.shape[0]]);
        self.add1(ShapeOp::Transpose { perm: vec![1, 0] }.into(), vec![a], t, loc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayjit_ir::{parse, typecheck, Data, HostArray};

    fn run(p: &Program, args: &[HostArray]) -> Vec<f64> {
        let out = arrayjit_interp::eval_program(p, args).unwrap();
        (0..out[0].numel()).map(|i| out[0].data().get(i).as_f64()).collect()
    }

    fn mat(n: usize, m: usize, seed: f64) -> HostArray {
        let v: Vec<f64> = (0..n * m).map(|i| ((i as f64 + seed) * 0.37).sin()).collect();
        HostArray::new([n, m], Data::F64(v)).unwrap()
    }

    #[test]
    fn trace_of_a_product_needs_no_product() {
        let p = parse(
            "{ lambda ; a:f64[3,4] b:f64[4,3] . let
                c:f64[3,3] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] a b
                d:i32[3,3] = iota[dtype=i32 shape=(3,3) dimension=0]
                e:i32[3,3] = iota[dtype=i32 shape=(3,3) dimension=1]
                f:bool[3,3] = eq d e
                g:f64[3,3] = select f c 0.0:f64
                h:f64[3] = reduce_sum[axes=(1)] g
                i:f64[] = reduce_sum[axes=(0)] h
              in (i) }",
        )
        .unwrap();
        let q = arrayjit_ir::dce(&diagonal_products(&p));
        typecheck(&q).unwrap();
        assert!(!q.to_string().contains("dot_general"), "{q}");
        let args = [mat(3, 4, 1.0), mat(4, 3, 2.0)];
        let (want, got) = (run(&p, &args), run(&q, &args));
        assert!((want[0] - got[0]).abs() < 1e-12, "{want:?} {got:?}");
    }

    #[test]
    fn diagonal_factors_become_scalings() {
        for (lhs, rhs, dshape) in [("g", "b", "[3,3]"), ("b2", "g", "[3,3]")] {
            let text = format!(
                "{{ lambda ; v:f64[3,3] b:f64[3,5] b2:f64[5,3] . let
                    d:i32{dshape} = iota[dtype=i32 shape=(3,3) dimension=0]
                    e:i32{dshape} = iota[dtype=i32 shape=(3,3) dimension=1]
                    f:bool{dshape} = eq d e
                    g:f64{dshape} = select f v 0.0:f64
                    h:f64[{}] = dot_general[lhs_contract=(1) rhs_contract=(0) lhs_batch=() rhs_batch=()] {lhs} {rhs}
                  in (h) }}",
                if lhs == "g" { "3,5" } else { "5,3" }
            );
            let p = parse(&text).unwrap();
            let q = arrayjit_ir::dce(&diagonal_products(&p));
            typecheck(&q).unwrap();
            assert!(!q.to_string().contains("dot_general"), "{q}");
            let args = [mat(3, 3, 0.5), mat(3, 5, 1.5), mat(5, 3, 2.5)];
            let (want, got) = (run(&p, &args), run(&q, &args));
            for (w, g) in want.iter().zip(&got) {
                assert!((w - g).abs() < 1e-12, "{want:?} {got:?}");
            }
        }
    }

    #[test]
    fn the_diagonal_of_a_diagonal_matrix_is_its_vector() {
        for (dims, axis) in [("(0)", "(1)"), ("(1)", "(1)"), ("(0)", "(0)"), ("(1)", "(0)")] {
            let p = parse(&format!(
                "{{ lambda ; v:f64[3] . let
                    d:i32[3,3] = iota[dtype=i32 shape=(3,3) dimension=0]
                    e:i32[3,3] = iota[dtype=i32 shape=(3,3) dimension=1]
                    f:bool[3,3] = eq d e
                    g:f64[3,3] = broadcast_in_dim[shape=(3,3) broadcast_dimensions={dims}] v
                    h:f64[3,3] = select f g 0.0:f64
                    i:f64[3] = reduce_sum[axes={axis}] h
                    j:f64[3] = mul i 2.0:f64
                  in (j) }}"
            ))
            .unwrap();
            let q = arrayjit_ir::dce(&diagonal_products(&p));
            typecheck(&q).unwrap();
            assert!(!q.to_string().contains("select"), "{q}");
            let v = HostArray::new([3], Data::F64(vec![1.5, -2.0, 0.25])).unwrap();
            assert_eq!(run(&p, std::slice::from_ref(&v)), run(&q, &[v]));
        }
    }

    /// `(rows, cols)` of an operand that a product contracts on `axis`,
    /// given its free size and the contracted size.
    fn operand(free: usize, k: usize, contract: usize) -> (usize, usize) {
        if contract == 1 {
            (free, k)
        } else {
            (k, free)
        }
    }

    #[test]
    fn every_orientation_of_a_diagonal_factor_becomes_a_scaling() {
        for (a, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            for diag_left in [true, false] {
                // The diagonal is 3×3; the other operand has a free axis of 5.
                // The other operand: its free axis (5) is the one the product keeps.
                let (or, oc) = if diag_left { operand(5, 3, b) } else { operand(5, 3, a) };
                let (l, r) = if diag_left { ("g", "o") } else { ("o", "g") };
                let out = if diag_left { "3,5" } else { "5,3" };
                let text = format!(
                    "{{ lambda ; v:f64[3,3] o:f64[{or},{oc}] . let
                        d:i32[3,3] = iota[dtype=i32 shape=(3,3) dimension=0]
                        e:i32[3,3] = iota[dtype=i32 shape=(3,3) dimension=1]
                        f:bool[3,3] = eq d e
                        g:f64[3,3] = select f v 0.0:f64
                        h:f64[{out}] = dot_general[lhs_contract=({a}) rhs_contract=({b}) lhs_batch=() rhs_batch=()] {l} {r}
                      in (h) }}"
                );
                let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
                typecheck(&p).unwrap_or_else(|e| panic!("{e}\n{text}"));
                let q = arrayjit_ir::dce(&diagonal_products(&p));
                typecheck(&q).unwrap();
                assert!(!q.to_string().contains("dot_general"), "{q}");
                let args = [mat(3, 3, 0.5), mat(or, oc, 1.5)];
                let (want, got) = (run(&p, &args), run(&q, &args));
                assert_eq!(want.len(), 15);
                for (w, g) in want.iter().zip(&got) {
                    assert!((w - g).abs() < 1e-12, "a={a} b={b} left={diag_left}: {want:?} {got:?}");
                }
            }
        }
    }

    #[test]
    fn the_trace_of_every_orientation_of_a_product_needs_no_product() {
        for (a, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let (ar, ac) = operand(3, 4, a);
            let (br, bc) = if b == 0 { (4, 3) } else { (3, 4) };
            let text = format!(
                "{{ lambda ; x:f64[{ar},{ac}] y:f64[{br},{bc}] . let
                    c:f64[3,3] = dot_general[lhs_contract=({a}) rhs_contract=({b}) lhs_batch=() rhs_batch=()] x y
                    d:i32[3,3] = iota[dtype=i32 shape=(3,3) dimension=0]
                    e:i32[3,3] = iota[dtype=i32 shape=(3,3) dimension=1]
                    f:bool[3,3] = eq d e
                    g:f64[3,3] = select f c 0.0:f64
                  in (g) }}"
            );
            let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let q = arrayjit_ir::dce(&diagonal_products(&p));
            typecheck(&q).unwrap();
            assert!(!q.to_string().contains("dot_general"), "{q}");
            let args = [mat(ar, ac, 1.0), mat(br, bc, 2.0)];
            let (want, got) = (run(&p, &args), run(&q, &args));
            for (w, g) in want.iter().zip(&got) {
                assert!((w - g).abs() < 1e-12, "a={a} b={b}: {want:?} {got:?}");
            }
        }
    }
}
