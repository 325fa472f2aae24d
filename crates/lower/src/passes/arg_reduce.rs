//! Arg-reductions as fusible work: `argmax(x, axis)` becomes the first index
//! along `axis` where `x` equals its maximum — `reduce_min(select(x == max ∨
//! x ≠ x, iota, n))` — so it runs as two fused kernels instead of a library
//! call. A NaN counts as the extremum (the maximum is then NaN and only NaNs
//! match it), and ties go to the first index, as in the interpreter.

use super::rebuild::Rebuild;
use arrayjit_ir::prim::{Elementwise as E, Reduction, ShapeOp};
use arrayjit_ir::{AVal, Atom, DType, Loc, Prim, Program, ProgramBuilder, Scalar, Shape};

/// The program with every `argmax`/`argmin` expanded.
pub fn expand_arg_reductions(p: &Program) -> Program {
    let mut r = Rebuild::new(p);
    for e in &p.eqns {
        let ins = r.inputs(e);
        let expanded = match (&e.prim, &ins[..]) {
            (Prim::Reduce(Reduction::ArgMax { axis }), [Atom::Var(x)]) => {
                Some(expand(&mut r.b, *x, *axis, true, e.loc))
            }
            (Prim::Reduce(Reduction::ArgMin { axis }), [Atom::Var(x)]) => {
                Some(expand(&mut r.b, *x, *axis, false, e.loc))
            }
            _ => None,
        };
        match expanded {
            Some(a) => r.set(e.outputs[0], a),
            None => r.copy(e, ins),
        }
    }
    r.finish()
}

fn expand(b: &mut ProgramBuilder, x: arrayjit_ir::Var, axis: usize, max: bool, loc: Loc) -> Atom {
    let xa = b.aval(x).clone();
    let shape = xa.shape.clone();
    let kept: Vec<usize> = (0..xa.rank()).filter(|&k| k != axis).collect();
    let out_shape = Shape(kept.iter().map(|&k| shape[k]).collect());
    let one = |b: &mut ProgramBuilder, prim: Prim, ins: Vec<Atom>, aval: AVal| -> Atom {
        Atom::Var(b.add_eqn(prim, ins, vec![aval], loc)[0])
    };
    let extremum = if max { Reduction::Max { axes: vec![axis] } } else { Reduction::Min { axes: vec![axis] } };
    let m = one(b, extremum.into(), vec![Atom::Var(x)], AVal::new(xa.dtype, out_shape.clone()));
    let mb = one(b, ShapeOp::BroadcastInDim { shape: shape.clone(), dims: kept.clone() }.into(), vec![m], xa.clone());
    let flags = AVal::new(DType::Bool, shape.clone());
    let mut hit = one(b, E::Eq.into(), vec![Atom::Var(x), mb], flags.clone());
    if xa.dtype.is_float() {
        let nan = one(b, E::Ne.into(), vec![Atom::Var(x), Atom::Var(x)], flags.clone());
        hit = one(b, E::Or.into(), vec![hit, nan], flags);
    }
    let positions = AVal::new(DType::I32, shape.clone());
    let iota =
        one(b, ShapeOp::Iota { dtype: DType::I32, shape: shape.clone(), axis }.into(), vec![], positions.clone());
    let past_end = Atom::Lit(Scalar::I32(shape[axis] as i32));
    let picked = one(b, E::Select.into(), vec![hit, iota, past_end], positions);
    one(b, Reduction::Min { axes: vec![axis] }.into(), vec![picked], AVal::new(DType::I32, out_shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayjit_ir::{parse, typecheck, Data, HostArray};

    #[test]
    fn expansions_agree_with_the_interpreter_including_nans_and_ties() {
        let nan = f64::NAN;
        let x = HostArray::new(
            [4, 4],
            Data::F64(vec![
                1.0,
                nan,
                5.0,
                nan,
                nan,
                9.0,
                -9.0,
                1.0,
                2.0,
                2.0,
                -3.0,
                -3.0,
                -0.0,
                0.0,
                -f64::INFINITY,
                f64::INFINITY,
            ]),
        )
        .unwrap();
        for prim in ["argmax", "argmin"] {
            for axis in [0, 1] {
                let p =
                    parse(&format!("{{ lambda ; x:f64[4,4] . let y:i32[4] = {prim}[axis={axis}] x in (y) }}")).unwrap();
                let q = expand_arg_reductions(&p);
                typecheck(&q).unwrap();
                assert!(!q.to_string().contains(prim), "{q}");
                let want = arrayjit_interp::eval_program(&p, std::slice::from_ref(&x)).unwrap();
                let got = arrayjit_interp::eval_program(&q, std::slice::from_ref(&x)).unwrap();
                assert_eq!(got, want, "{prim} axis {axis}");
            }
        }
    }
}
