//! Random well-typed programs and inputs, as proptest strategies, for property
//! tests of the IR and differential tests of every interpreter and backend
//! against each other (feature `random`).
//!
//! A program is grown one equation at a time. The generator keeps a pool of the
//! variables defined so far with their types, picks a primitive, takes operands
//! from the pool (or first makes fitting ones with `convert`, `reshape`,
//! `broadcast_in_dim` or `iota`), draws parameters that suit the operands, and
//! lets the primitive's shape rule give the output types. So every program
//! typechecks, whatever the primitive set grows to, and covers the whole set:
//! every elementwise primitive (with literal and rank-0 operands, `select`,
//! `convert`, `integer_pow`), every shape primitive, every reduction,
//! `dot_general` with batch and contraction dimensions, `cholesky`,
//! `triangular_solve`, `lu`, and `call` with a random nested body. Shapes
//! include dimensions of size 0 and 1; constants hold random values.
//!
//! ```
//! use arrayjit_ir::random::{arb_program_and_inputs, GenConfig};
//! use arrayjit_ir::typecheck;
//! use proptest::prelude::*;
//! use proptest::test_runner::TestRunner;
//!
//! // Float-only programs without linear algebra, e.g. for a backend that has no `lu` yet.
//! let config = GenConfig::new(8).floats_only().without_linalg();
//! let mut runner = TestRunner::default();
//! runner
//!     .run(&arb_program_and_inputs(config), |(program, inputs)| {
//!         prop_assert!(typecheck(&program).is_ok());
//!         prop_assert_eq!(inputs.len(), program.inputs.len());
//!         Ok(())
//!     })
//!     .unwrap();
//! ```
//!
//! The programs are drawn from a tape of random numbers (see
//! [`program_from_tape`]), so proptest shrinks a failing program towards one with
//! fewer equations and plainer choices.

mod grow;
mod recipes;
mod tape;

use crate::prim::elementwise::SIMPLE;
use crate::{AVal, DType, Data, HostArray, Program};
use proptest::prelude::*;
use std::sync::Arc;

/// The `dot_general` and matrix-decomposition primitives, for [`GenConfig::without`].
pub const LINALG: [&str; 5] = ["dot_general", "cholesky", "cholesky_inverse", "triangular_solve", "lu"];

/// The matrix decompositions and solves, for [`GenConfig::without`].
pub const DECOMPOSITIONS: [&str; 4] = ["cholesky", "cholesky_inverse", "triangular_solve", "lu"];

/// The names of every primitive the generator can produce.
pub fn primitive_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = SIMPLE.iter().map(|e| e.name()).collect();
    names.extend([
        "integer_pow",
        "select",
        "convert",
        "broadcast_in_dim",
        "reshape",
        "transpose",
        "squeeze",
        "expand_dims",
        "slice",
        "dynamic_slice",
        "dynamic_update_slice",
        "concatenate",
        "pad",
        "iota",
        "reduce_sum",
        "reduce_max",
        "reduce_min",
        "reduce_prod",
        "argmax",
        "argmin",
    ]);
    names.extend(LINALG);
    names.push("call");
    names
}

/// What programs to generate. Start from [`GenConfig::new`] and narrow it with
/// the builder methods, or set the fields directly.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Most equations in the top-level program (nested bodies get half as many
    /// per level). The number is drawn from `0..=max_eqns`.
    pub max_eqns: usize,
    /// Most inputs of the top-level program (a program has none now and then).
    pub max_inputs: usize,
    /// Most constants of each program.
    pub max_consts: usize,
    /// Most outputs of each program (always at least one).
    pub max_outputs: usize,
    /// The dtypes every variable, literal and constant has. Primitives that
    /// would need another (comparisons need `bool`; `argmax`, `lu` and the
    /// dynamic slices need `i32`) are then not generated. Empty means `f32`.
    pub dtypes: Vec<DType>,
    /// Most dimensions of an input, constant or new array.
    pub max_rank: usize,
    /// Largest size of a dimension of an input, constant or new array
    /// (`pad` and `concatenate` can make larger ones).
    pub max_dim: usize,
    /// No variable has more elements than this.
    pub max_numel: usize,
    /// How deep `call` bodies nest; 0 generates no `call`.
    pub max_call_depth: usize,
    /// Whether float constants and literals may be special values: ±0, ±inf,
    /// NaNs (also with the sign set, or another payload), subnormals and
    /// extremes. Useful for print/parse tests; off by default so that values
    /// stay moderate.
    pub special_floats: bool,
    /// Primitive names never to generate (see [`primitive_names`]).
    pub exclude: Vec<String>,
}

impl Default for GenConfig {
    fn default() -> GenConfig {
        GenConfig {
            max_eqns: 12,
            max_inputs: 3,
            max_consts: 2,
            max_outputs: 3,
            dtypes: DType::ALL.to_vec(),
            max_rank: 4,
            max_dim: 4,
            max_numel: 1024,
            max_call_depth: 2,
            special_floats: false,
            exclude: Vec::new(),
        }
    }
}

impl GenConfig {
    /// Every primitive and dtype, up to `max_eqns` equations.
    pub fn new(max_eqns: usize) -> GenConfig {
        GenConfig { max_eqns, ..GenConfig::default() }
    }

    /// Only these dtypes (see [`GenConfig::dtypes`]).
    pub fn with_dtypes(mut self, dtypes: &[DType]) -> GenConfig {
        self.dtypes = dtypes.to_vec();
        self
    }

    /// Only `f32` and `f64` values anywhere in the program.
    pub fn floats_only(self) -> GenConfig {
        self.with_dtypes(&[DType::F32, DType::F64])
    }

    /// Never generates the named primitives.
    pub fn without(mut self, names: &[&str]) -> GenConfig {
        self.exclude.extend(names.iter().map(|n| n.to_string()));
        self
    }

    /// Never generates `dot_general`, `cholesky`, `triangular_solve` or `lu`.
    pub fn without_linalg(self) -> GenConfig {
        self.without(&LINALG)
    }

    /// Allows special float values in constants and literals.
    pub fn with_special_floats(mut self) -> GenConfig {
        self.special_floats = true;
        self
    }

    /// Nests `call` bodies at most this deep (0: no `call`).
    pub fn with_call_depth(mut self, depth: usize) -> GenConfig {
        self.max_call_depth = depth;
        self
    }

    /// Whether the primitive of that name may be generated.
    pub fn allows(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
    }

    /// How many random numbers one program may consume.
    fn tape_len(&self) -> usize {
        64 + 48 * self.max_eqns.max(1) * (1 + self.max_call_depth.min(3))
    }
}

/// The program that a tape of random numbers describes under `config`: the
/// deterministic core of [`arb_program_with`], for fuzzers and benchmarks that
/// bring their own randomness. Any tape gives a well-typed program; a shorter
/// tape reads as if padded with zeros, which mean the plainest choices.
pub fn program_from_tape(tape: &[u32], config: &GenConfig) -> Program {
    let mut tape = tape::Tape::new(tape);
    grow::generate(config, &mut tape, 0, None, config.max_eqns)
}

/// Random well-typed programs with up to `max_eqns` equations over every
/// primitive and dtype.
pub fn arb_program(max_eqns: usize) -> impl Strategy<Value = Program> {
    arb_program_with(GenConfig::new(max_eqns))
}

/// Random well-typed programs as `config` describes.
pub fn arb_program_with(config: GenConfig) -> impl Strategy<Value = Program> {
    let len = config.tape_len();
    proptest::collection::vec(any::<u32>(), len).prop_map(move |tape| program_from_tape(&tape, &config))
}

/// A random array of the given type: floats in `[-4, 4)`, integers in
/// `[-8, 8]`, booleans either way.
pub fn arb_array(aval: &AVal) -> BoxedStrategy<HostArray> {
    use proptest::collection::vec;
    let n = aval.numel();
    let owned = aval.clone();
    // The data has exactly `n` elements, so `HostArray::new` cannot fail.
    let build =
        move |data: Data| HostArray::new(owned.shape.clone(), data).unwrap_or_else(|_| HostArray::zeros(&owned));
    match aval.dtype {
        DType::Bool => vec(any::<bool>(), n).prop_map(move |v| build(Data::Bool(v))).boxed(),
        DType::I32 => vec(-8i32..=8, n).prop_map(move |v| build(Data::I32(v))).boxed(),
        DType::F32 => vec(-4.0f32..4.0, n).prop_map(move |v| build(Data::F32(v))).boxed(),
        DType::F64 => vec(-4.0f64..4.0, n).prop_map(move |v| build(Data::F64(v))).boxed(),
    }
}

/// Random inputs for a program, one array per input (see [`arb_array`] for the
/// value ranges). Matrices are not made positive definite, so `cholesky` of an
/// input may give NaNs.
pub fn arb_inputs(program: &Program) -> impl Strategy<Value = Vec<HostArray>> {
    program.in_avals().iter().map(arb_array).collect::<Vec<_>>()
}

/// A random program as `config` describes, with random inputs for it.
pub fn arb_program_and_inputs(config: GenConfig) -> impl Strategy<Value = (Program, Vec<HostArray>)> {
    arb_program_with(config).prop_flat_map(|p| {
        let inputs = arb_inputs(&p);
        (Just(p), inputs)
    })
}

/// A random program as the body of a three-iteration `scan`, run forward or
/// in reverse: each of its inputs is, at random, a loop constant, a slice of
/// an array scanned over, or a carry (when one of its outputs has the same
/// type, which becomes the next value of the carry); every output is
/// stacked. The loop also carries a counter the body passes on. Passes on
/// loops (loop-invariant code motion above all) and loop executors see every
/// mix of invariant, varying and loop-carried work this way.
pub fn arb_loop_and_inputs(config: GenConfig) -> impl Strategy<Value = (Program, Vec<HostArray>)> {
    arb_program_with(config)
        .prop_flat_map(|p| {
            let n = p.inputs.len();
            (Just(p), proptest::collection::vec(0u8..3, n), any::<bool>())
        })
        .prop_flat_map(|(p, roles, reverse)| {
            let q = in_a_loop(&p, &roles, reverse);
            let inputs = arb_inputs(&q);
            (Just(q), inputs)
        })
}

/// How an input of a loop body enters it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Constant,
    Slice,
    /// Carried, its next value being the body's output of this index.
    Carry(usize),
}

/// `p` as the body of a scan (see [`arb_loop_and_inputs`]): `roles[k]` asks
/// for input `k` to be a constant (0), a slice (1) or a carry (2; a constant
/// when no output left has its type).
fn in_a_loop(p: &Program, roles: &[u8], reverse: bool) -> Program {
    use crate::prim::Control;
    use crate::{Atom, Loc, ProgramBuilder};
    const LENGTH: usize = 3;
    let avals = p.in_avals();
    let out_avals = p.out_avals();
    let mut taken = vec![false; out_avals.len()];
    let roles: Vec<Role> = avals
        .iter()
        .zip(roles)
        .map(|(a, &r)| match r {
            1 => Role::Slice,
            2 => match (0..out_avals.len()).find(|&o| !taken[o] && out_avals[o] == *a) {
                Some(o) => {
                    taken[o] = true;
                    Role::Carry(o)
                }
                None => Role::Constant,
            },
            _ => Role::Constant,
        })
        .collect();
    let stacked = |a: &AVal| {
        let mut shape = vec![LENGTH];
        shape.extend_from_slice(&a.shape.0);
        AVal::new(a.dtype, shape)
    };
    let with = |want: fn(&Role) -> bool| -> Vec<usize> { (0..avals.len()).filter(|&k| want(&roles[k])).collect() };
    let (consts, carries, slices) =
        (with(|r| *r == Role::Constant), with(|r| matches!(r, Role::Carry(_))), with(|r| *r == Role::Slice));
    // The body's inputs: loop constants, the counter and the carries, then the slices.
    let mut body = ProgramBuilder::new();
    let mut args: Vec<Option<Atom>> = vec![None; avals.len()];
    for &k in &consts {
        args[k] = Some(body.add_input(avals[k].clone()).into());
    }
    let counter = body.add_input(AVal::scalar(DType::I32));
    for &k in carries.iter().chain(&slices) {
        args[k] = Some(body.add_input(avals[k].clone()).into());
    }
    let args: Vec<Atom> = args.into_iter().flatten().collect();
    let results = body.inline(p, &args);
    let mut outs = vec![Atom::Var(counter)];
    for &k in &carries {
        if let Role::Carry(o) = roles[k] {
            outs.push(results[o]);
        }
    }
    outs.extend(results);
    let body = body.finish(outs);

    let mut outer = ProgramBuilder::new();
    let mut operands: Vec<Atom> = consts.iter().map(|&k| outer.add_input(avals[k].clone()).into()).collect();
    operands.push(outer.add_input(AVal::scalar(DType::I32)).into());
    operands.extend(carries.iter().map(|&k| Atom::from(outer.add_input(avals[k].clone()))));
    operands.extend(slices.iter().map(|&k| Atom::from(outer.add_input(stacked(&avals[k])))));
    let num_carry = 1 + carries.len();
    let mut scan_out: Vec<AVal> = body.out_avals()[..num_carry].to_vec();
    scan_out.extend(body.out_avals()[num_carry..].iter().map(stacked));
    let scan =
        Control::Scan { body: Arc::new(body), num_consts: consts.len(), num_carry, length: LENGTH, reverse, unroll: 1 };
    let outs = outer.add_eqn(scan.into(), operands, scan_out, Loc(None));
    outer.finish(outs.into_iter().map(Atom::Var).collect())
}
