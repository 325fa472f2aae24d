//! A structural fingerprint of a program: equal for programs with the same
//! equations, types, parameters and constants, so that a program traced
//! anew each time (a gradient evaluated eagerly in a loop) can find the
//! code compiled for its earlier copies. Large constants are identified by
//! the buffer they share (data closed over by the traced function is the
//! same buffer every time), small ones by their contents. A cache keyed by a
//! fingerprint must keep those buffers alive ([`by_address`]): the code may
//! no longer hold them (a constant of ones multiplies nothing once
//! simplified), and a later array at the same address would find it.

use crate::prim::{Control, Param, Prim};
use crate::{Data, HostArray, Program};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Constants with more elements than this are identified by address.
const BY_ADDRESS: usize = 4096;

/// The fingerprint of `p`.
pub fn fingerprint(p: &Program) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    program(p, true, &mut h);
    h.finish()
}

/// The fingerprint of `p` up to the values of its own (top-level)
/// constants, which count by type only: for code that takes them as
/// arguments ([`Program::consts_as_inputs`]).
pub fn fingerprint_without_consts(p: &Program) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    program(p, false, &mut h);
    h.finish()
}

/// The constants identified by address in `fingerprint(p)` (with `top`) or
/// `fingerprint_without_consts(p)` (without): those of more than
/// [`BY_ADDRESS`] elements, in `p` itself if `top` and in its loops' and
/// branches' programs at any depth.
pub fn by_address(p: &Program, top: bool) -> Vec<Arc<HostArray>> {
    let mut out = Vec::new();
    collect(p, top, &mut out);
    out
}

fn collect(p: &Program, top: bool, out: &mut Vec<Arc<HostArray>>) {
    if top {
        out.extend(p.consts.iter().filter(|(_, c)| c.numel() > BY_ADDRESS).map(|(_, c)| c.clone()));
    }
    for e in &p.eqns {
        if let Prim::Control(c) = &e.prim {
            c.sub_programs().into_iter().for_each(|b| collect(b, true, out));
        }
    }
}

fn program(p: &Program, values: bool, h: &mut impl Hasher) {
    p.consts.len().hash(h);
    for (v, value) in &p.consts {
        v.hash(h);
        value.aval().hash(h);
        if !values {
            continue;
        }
        if value.numel() > BY_ADDRESS {
            (std::sync::Arc::as_ptr(value) as usize).hash(h);
        } else {
            match value.data() {
                Data::Bool(x) => x.hash(h),
                Data::I32(x) => x.hash(h),
                Data::F32(x) => x.iter().for_each(|f| f.to_bits().hash(h)),
                Data::F64(x) => x.iter().for_each(|f| f.to_bits().hash(h)),
            }
        }
    }
    p.inputs.len().hash(h);
    for v in &p.inputs {
        p.aval(*v).hash(h);
    }
    p.eqns.len().hash(h);
    for e in &p.eqns {
        prim(&e.prim, h);
        e.inputs.hash(h);
        for o in &e.outputs {
            p.aval(*o).hash(h);
        }
    }
    p.outputs.hash(h);
}

fn prim(x: &Prim, h: &mut impl Hasher) {
    x.name().hash(h);
    match x {
        Prim::Elementwise(e) => e.hash(h),
        Prim::Shape(s) => s.hash(h),
        Prim::Reduce(r) => r.hash(h),
        Prim::Linalg(l) => l.hash(h),
        Prim::Control(c) => control(c, h),
    }
}

fn control(c: &Control, h: &mut impl Hasher) {
    for (name, value) in c.params() {
        name.hash(h);
        match value {
            Param::Int(v) => v.hash(h),
            Param::Ints(v) => v.hash(h),
            Param::Bool(v) => v.hash(h),
            Param::DType(v) => v.hash(h),
            Param::Program(p) => program(&p, true, h),
            Param::Programs(ps) => ps.iter().for_each(|p| program(p, true, h)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prim::Elementwise;
    use crate::{AVal, Atom, DType, Loc, ProgramBuilder};

    fn exp_plus(c: f32) -> Program {
        let mut b = ProgramBuilder::new();
        let x = b.add_input(AVal::new(DType::F32, [3]));
        let y = b.add_eqn(Elementwise::Exp.into(), vec![x.into()], vec![AVal::new(DType::F32, [3])], Loc::default());
        let z = b.add_eqn(
            Elementwise::Add.into(),
            vec![y[0].into(), Atom::Lit(crate::Scalar::F32(c))],
            vec![AVal::new(DType::F32, [3])],
            Loc::default(),
        );
        b.finish(vec![z[0].into()])
    }

    #[test]
    fn equal_structure_equal_fingerprint() {
        assert_eq!(fingerprint(&exp_plus(1.0)), fingerprint(&exp_plus(1.0)));
        assert_ne!(fingerprint(&exp_plus(1.0)), fingerprint(&exp_plus(2.0)));
        assert_eq!(fingerprint_without_consts(&exp_plus(1.0)), fingerprint_without_consts(&exp_plus(1.0)));
    }
}
