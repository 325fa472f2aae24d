//! Division by a value that is the same across many points becomes a
//! multiplication by its reciprocal: `x / s` for a scalar `s`, and
//! `x / broadcast(u)` for a `u` at most a quarter of `x`'s size, become
//! `x · (1/s)` and `x · broadcast(1/u)`; a literal divisor becomes its
//! reciprocal literal. A loop kernel then multiplies at each point and the
//! few reciprocals are computed once, instead of a division at each point (a
//! vector division occupies x86's divider for several cycles; the PLN step's
//! bias corrections divided every element of four n×p arrays by a scalar).
//!
//! The product differs from the quotient by at most one more rounding. XLA
//! makes the same rewrite for constant divisors. Where the divisor is a
//! subnormal number its reciprocal overflows: a literal divisor whose
//! reciprocal is not a normal number is left alone, and a computed one is
//! assumed not to be subnormal (as flush-to-zero arithmetic would).

use super::rebuild::Rebuild;
use arrayjit_ir::prim::{Elementwise as E, ShapeOp};
use arrayjit_ir::{AVal, Atom, Loc, Prim, Program, Scalar, Var};
use std::collections::HashMap;

/// The largest share of the quotient's size a broadcast divisor may have.
const SHARE: usize = 4;

/// The program with divisions by broadcast values turned into products.
pub fn reciprocal_divisors(p: &Program) -> Program {
    let mut r = Rebuild::new(p);
    // The reciprocal of each divisor already made, by the divisor.
    let mut made: HashMap<Var, Var> = HashMap::new();
    let mut broadcasts: HashMap<Var, (Prim, Vec<Atom>)> = HashMap::new();
    for e in &p.eqns {
        let ins = r.inputs(e);
        let out = p.aval(e.outputs[0]).clone();
        let rewritten = match (&e.prim, &ins[..]) {
            (Prim::Elementwise(E::Div), [x, d]) if out.dtype.is_float() && out.numel() > 1 => {
                reciprocal(&mut r, &mut made, &broadcasts, d, &out, e.loc).map(|rd| (*x, rd))
            }
            _ => None,
        };
        match rewritten {
            Some((x, rd)) => {
                let news = r.b.add_eqn(E::Mul.into(), vec![x, rd], vec![out], e.loc);
                r.set_all(&e.outputs, news);
            }
            None => {
                r.copy(e, ins.clone());
                if let (Prim::Shape(ShapeOp::BroadcastInDim { .. }), Atom::Var(n)) =
                    (&e.prim, r.get(&Atom::Var(e.outputs[0])))
                {
                    broadcasts.insert(n, (e.prim.clone(), ins));
                }
            }
        }
    }
    r.finish()
}

/// The factor that replaces divisor `d` of a quotient of type `out`, when
/// `d` is the same across many of the quotient's points.
fn reciprocal(
    r: &mut Rebuild,
    made: &mut HashMap<Var, Var>,
    broadcasts: &HashMap<Var, (Prim, Vec<Atom>)>,
    d: &Atom,
    out: &AVal,
    loc: Loc,
) -> Option<Atom> {
    match d {
        Atom::Lit(c) => {
            let v = c.as_f64();
            let inv = Scalar::from_f64(1.0 / v, c.dtype());
            // Zero and infinities invert exactly (x·∞ and x·0 are x/0 and x/∞).
            let exact_enough = match inv {
                Scalar::F32(i) => i.is_normal() || v == 0.0 || v.is_infinite(),
                Scalar::F64(i) => i.is_normal() || v == 0.0 || v.is_infinite(),
                _ => false,
            };
            exact_enough.then_some(Atom::Lit(inv))
        }
        Atom::Var(s) => {
            let sa = r.b.aval(*s).clone();
            if sa.rank() == 0 {
                return Some(Atom::Var(invert(r, made, *s, loc)));
            }
            // A broadcast of a value much smaller than the quotient.
            let (Prim::Shape(ShapeOp::BroadcastInDim { shape, dims }), ins) = broadcasts.get(s)? else { return None };
            let Atom::Var(u) = ins[0] else { return None };
            let ua = r.b.aval(u).clone();
            if ua.numel().saturating_mul(SHARE) > out.numel() {
                return None;
            }
            let inv = invert(r, made, u, loc);
            let b = ShapeOp::BroadcastInDim { shape: shape.clone(), dims: dims.clone() };
            Some(Atom::Var(r.b.add_eqn(b.into(), vec![Atom::Var(inv)], vec![sa], loc)[0]))
        }
    }
}

/// `1/u`, made once per `u`.
fn invert(r: &mut Rebuild, made: &mut HashMap<Var, Var>, u: Var, loc: Loc) -> Var {
    if let Some(&inv) = made.get(&u) {
        return inv;
    }
    let ua = r.b.aval(u).clone();
    let one = Atom::Lit(Scalar::from_f64(1.0, ua.dtype));
    let inv = r.b.add_eqn(E::Div.into(), vec![one, Atom::Var(u)], vec![ua], loc)[0];
    made.insert(u, inv);
    inv
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayjit_ir::{parse, Data, HostArray};

    fn count(p: &Program, op: E, rank: usize) -> usize {
        p.eqns.iter().filter(|e| e.prim == Prim::Elementwise(op) && p.aval(e.outputs[0]).rank() == rank).count()
    }

    #[test]
    fn quotients_by_scalars_and_broadcast_rows_multiply_by_reciprocals_made_once() {
        let p = parse(
            "{ lambda ; x:f32[64,8] s:f32[] c:f32[8] . let
                a:f32[64,8] = div x s
                b:f32[64,8] = div a s
                cb:f32[64,8] = broadcast_in_dim[shape=(64,8) broadcast_dimensions=(1,)] c
                d:f32[64,8] = div b cb
                e:f32[64,8] = div d 4.0:f32
                f:f32[64,8] = div 2.0:f32 x
              in (e, f) }",
        )
        .unwrap();
        let q = reciprocal_divisors(&p);
        arrayjit_ir::typecheck(&q).unwrap();
        // One reciprocal of s, one of c; the quotient by a full array stays.
        assert_eq!(count(&q, E::Div, 0), 1, "{q}");
        assert_eq!(count(&q, E::Div, 1), 1, "{q}");
        assert_eq!(count(&q, E::Div, 2), 1, "{q}");
        let x = HostArray::new([64, 8], Data::F32((0..512).map(|i| (i % 13) as f32 * 0.37 - 2.0).collect())).unwrap();
        let s = HostArray::scalar(Scalar::F32(3.0));
        let c = HostArray::new([8], Data::F32((0..8).map(|i| 0.5 + i as f32).collect())).unwrap();
        let args = [x, s, c];
        let want = arrayjit_interp::eval_program(&p, &args).unwrap();
        let got = arrayjit_interp::eval_program(&q, &args).unwrap();
        for (w, g) in want.iter().zip(&got) {
            for i in 0..w.numel() {
                let (w, g) = (w.data().get(i).as_f64(), g.data().get(i).as_f64());
                // Each product adds at most one rounding to each quotient.
                assert!((w - g).abs() <= 4.0 * f32::EPSILON as f64 * w.abs(), "element {i}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn divisors_whose_reciprocals_are_not_normal_stay_divisors() {
        let p = parse(
            "{ lambda ; x:f32[16] . let
                a:f32[16] = div x 1e-39:f32
              in (a) }",
        )
        .unwrap();
        assert_eq!(count(&reciprocal_divisors(&p), E::Div, 1), 1);
        // A scalar quotient gains nothing.
        let scalar = parse(
            "{ lambda ; x:f32[] . let
                a:f32[] = div x 3.0:f32
              in (a) }",
        )
        .unwrap();
        assert_eq!(count(&reciprocal_divisors(&scalar), E::Div, 0), 1);
    }
}
