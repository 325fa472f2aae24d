//! How traced idioms look, for the rewrites and the fusion that recognise
//! them: an identity mask (`iota₀ == iota₁` over a square matrix, how `eye`,
//! `diag`, `diag_part` and `trace` trace) and a zero (a literal, or a
//! broadcast of one). Each takes a way to find an atom's defining primitive
//! and operands, so passes that are rebuilding a program and fusion, which
//! reads a finished one, share them.

use arrayjit_ir::prim::{Elementwise as E, ShapeOp};
use arrayjit_ir::{Atom, Prim};

/// An atom's defining primitive and operands, if a variable defined by an equation.
pub(crate) type Def<'a> = dyn Fn(&Atom) -> Option<(&'a Prim, &'a [Atom])> + 'a;

/// `iota(axis 0) == iota(axis 1)` over a square matrix, either way round.
pub(crate) fn is_eye_mask(def: &Def<'_>, a: &Atom) -> bool {
    let Some((Prim::Elementwise(E::Eq), xy)) = def(a) else { return false };
    let axis = |v: &Atom| match def(v) {
        Some((Prim::Shape(ShapeOp::Iota { axis, shape, .. }), _)) if shape.rank() == 2 && shape[0] == shape[1] => {
            Some(*axis)
        }
        _ => None,
    };
    matches!((axis(&xy[0]), axis(&xy[1])), (Some(0), Some(1)) | (Some(1), Some(0)))
}

/// A literal zero, or a broadcast of one.
pub(crate) fn is_zero(def: &Def<'_>, a: &Atom) -> bool {
    match a {
        Atom::Lit(s) => s.as_f64() == 0.0,
        Atom::Var(_) => match def(a) {
            Some((Prim::Shape(ShapeOp::BroadcastInDim { .. }), x)) => is_zero(def, &x[0]),
            _ => false,
        },
    }
}
