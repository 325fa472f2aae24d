//! Property tests over random programs: they typecheck, and the text form
//! reads back to the same program and prints the same again.

use arrayjit_ir::random::{
    arb_program, arb_program_and_inputs, arb_program_with, primitive_names, program_from_tape, GenConfig,
};
use arrayjit_ir::{parse, typecheck, Prim, Program};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Every primitive name used in a program and its bodies, with counts.
fn count_prims(p: &Program, counts: &mut BTreeMap<&'static str, usize>) {
    for e in &p.eqns {
        *counts.entry(e.prim.name()).or_default() += 1;
        if let Prim::Control(c) = &e.prim {
            for body in c.sub_programs() {
                count_prims(body, counts);
            }
        }
    }
}

/// Every variable's dtype in a program and its bodies.
fn all_dtypes(p: &Program) -> Vec<arrayjit_ir::DType> {
    let mut ds: Vec<_> = (0..p.num_vars()).map(|v| p.aval(arrayjit_ir::Var(v as u32)).dtype).collect();
    ds.extend(p.out_avals().iter().map(|a| a.dtype));
    for e in &p.eqns {
        ds.extend(e.inputs.iter().map(|a| p.atom_aval(a).dtype));
        if let Prim::Control(c) = &e.prim {
            for body in c.sub_programs() {
                ds.extend(all_dtypes(body));
            }
        }
    }
    ds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_programs_typecheck(p in arb_program(16)) {
        prop_assert_eq!(typecheck(&p), Ok(()));
        prop_assert!(p.eqns.len() <= 16);
    }

    #[test]
    fn text_round_trips(p in arb_program_with(GenConfig::new(16).with_special_floats())) {
        let text = format!("{p:#}");
        let back = parse(&text);
        prop_assert_eq!(back.as_ref(), Ok(&p), "{}", text);
        prop_assert_eq!(back.map(|q| format!("{q:#}")), Ok(text));
    }

    #[test]
    fn restricted_configs_are_respected(
        (p, inputs) in arb_program_and_inputs(GenConfig::new(12).floats_only().without_linalg()),
    ) {
        prop_assert_eq!(typecheck(&p), Ok(()));
        prop_assert!(all_dtypes(&p).iter().all(|d| d.is_float()), "{}", p);
        let mut counts = BTreeMap::new();
        count_prims(&p, &mut counts);
        prop_assert!(["dot_general", "cholesky", "cholesky_inverse", "triangular_solve", "lu"].iter().all(|n| !counts.contains_key(n)));
        let avals: Vec<_> = inputs.iter().map(|x| x.aval()).collect();
        prop_assert_eq!(avals, p.in_avals());
    }
}

/// A fixed stream of tapes (xorshift), so that coverage does not depend on the seed.
fn tapes(n: usize, len: usize) -> impl Iterator<Item = Vec<u32>> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n).map(move |_| {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u32
            })
            .collect()
    })
}

#[test]
fn the_generator_covers_every_primitive() {
    let config = GenConfig::new(16);
    let mut counts = BTreeMap::new();
    for tape in tapes(1000, 4000) {
        count_prims(&program_from_tape(&tape, &config), &mut counts);
    }
    let missing: Vec<_> = primitive_names().into_iter().filter(|n| counts.get(n).copied().unwrap_or(0) < 5).collect();
    assert!(missing.is_empty(), "rarely or never generated: {missing:?}\n{counts:?}");
}

#[test]
fn any_tape_gives_a_program() {
    let config = GenConfig::new(8);
    for tape in [vec![], vec![0; 10], vec![u32::MAX; 5000]] {
        let p = program_from_tape(&tape, &config);
        assert_eq!(typecheck(&p), Ok(()));
        assert_eq!(parse(&format!("{p:#}")), Ok(p));
    }
}
