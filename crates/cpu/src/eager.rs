//! Eager execution through the compiled backend, as JAX does it: each
//! primitive applied to concrete arrays runs a single-operation executable,
//! compiled on first use and cached by the primitive (with its parameters)
//! and the operand types.
//!
//! Whole programs evaluated eagerly (what `grad` and the other
//! transformations derive, traced anew at each call) run equation by
//! equation the first time; a program seen again with the same structure
//! (by [`fingerprint`](arrayjit_ir::fingerprint::fingerprint)) is compiled
//! whole, fused like `jit` would, and its code reused from then on. A
//! gradient taken eagerly in a loop thus runs compiled from the second
//! iteration, without the user writing `jit`.

use crate::exec::{CompileOptions, CpuError, Executable};
use arrayjit_ir::fingerprint::by_address;
use arrayjit_ir::prim::control::custom_body_operands;
use arrayjit_ir::prim::{Control, Elementwise, Linalg, Reduction, ShapeOp};
use arrayjit_ir::{AVal, Atom, HostArray, Prim, Program};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// A primitive without sub-programs, hashable as a cache key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum OpKey {
    Elementwise(Elementwise),
    Shape(ShapeOp),
    Reduce(Reduction),
    Linalg(Linalg),
}

impl OpKey {
    fn of(p: &Prim) -> Option<OpKey> {
        Some(match p {
            Prim::Elementwise(e) => OpKey::Elementwise(*e),
            Prim::Shape(s) => OpKey::Shape(s.clone()),
            Prim::Reduce(r) => OpKey::Reduce(r.clone()),
            Prim::Linalg(l) => OpKey::Linalg(l.clone()),
            Prim::Control(_) => return None,
        })
    }
}

/// The primitive, its operand types, and which operands are the same
/// array (operand `i` is operand `alias[i]`, the first one it equals).
type Key = (OpKey, Vec<AVal>, Vec<usize>);

type Cache = Mutex<HashMap<Key, Arc<Executable>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The number of single-operation executables compiled so far (for tests and benchmarks).
pub fn cached_ops() -> usize {
    match cache().lock() {
        Ok(c) => c.len(),
        Err(p) => p.into_inner().len(),
    }
}

/// The single-equation program `prim(args)`.
fn one_op_program(prim: &Prim, avals: &[AVal]) -> Result<Program, CpuError> {
    Program::one_equation(prim, avals).map_err(|e| CpuError::Step { op: prim.name(), message: e.to_string() })
}

/// For each operand, the first operand that is the same array in memory.
fn aliases(args: &[&HostArray]) -> Vec<usize> {
    (0..args.len()).map(|i| (0..i).find(|&j| std::ptr::eq(args[j], args[i])).unwrap_or(i)).collect()
}

/// `prim` applied to one input per distinct operand: an operand passed twice
/// is one input read twice, so that the compiled step knows it (`XᵀX` runs
/// as the symmetric product).
fn aliased_op_program(prim: &Prim, avals: &[AVal], alias: &[usize]) -> Result<Program, CpuError> {
    let outs = prim.abstract_eval(avals).map_err(|e| CpuError::Step { op: prim.name(), message: e.to_string() })?;
    let mut b = arrayjit_ir::ProgramBuilder::new();
    let mut ins: Vec<Atom> = Vec::with_capacity(avals.len());
    for (i, a) in avals.iter().enumerate() {
        let atom = if alias[i] == i { Atom::Var(b.add_input(a.clone())) } else { ins[alias[i]] };
        ins.push(atom);
    }
    let vars = b.add_eqn(prim.clone(), ins, outs, arrayjit_ir::Loc::default());
    Ok(b.finish(vars.into_iter().map(Atom::Var).collect()))
}

/// Runs one primitive on concrete arrays with a cached compiled kernel.
pub fn execute_prim(prim: &Prim, args: &[&HostArray]) -> Result<Vec<HostArray>, CpuError> {
    let avals: Vec<AVal> = args.iter().map(|a| a.aval()).collect();
    let Some(op) = OpKey::of(prim) else {
        return match prim {
            Prim::Control(Control::Call { body }) => execute_equations(body, args),
            Prim::Control(
                Control::CustomJvp { body, body_consts, jvp_consts: rule_consts, .. }
                | Control::CustomVjp { body, body_consts, fwd_consts: rule_consts, .. },
            ) => execute_equations(body, &custom_body_operands(args, *body_consts, *rule_consts)),
            Prim::Control(Control::Cond { branches }) => {
                let (index, ops) = args.split_first().ok_or_else(|| CpuError::Signature {
                    want: "an index and the operands".into(),
                    got: "no operands".into(),
                })?;
                let i = match index.as_scalar() {
                    Some(arrayjit_ir::Scalar::I32(i)) => i.clamp(0, branches.len() as i32 - 1) as usize,
                    _ => return Err(CpuError::Step { op: "cond", message: "the index is not an i32 scalar".into() }),
                };
                execute_equations(&branches[i], ops)
            }
            // A loop runs as one compiled executable (its body fused), as
            // under `jit`, cached by the loop's structure (its body is a new
            // program each time it is traced).
            Prim::Control(_) => {
                let p = one_op_program(prim, &avals)?;
                let key = ProgramKey { hash: arrayjit_ir::fingerprint::fingerprint(&p), kept: by_address(&p, true) };
                match program_code(key, 1, || crate::control::compile_program(&p, &CompileOptions::default()))? {
                    Some(exe) => exe.run(args),
                    None => Err(CpuError::Step { op: prim.name(), message: "the loop was not compiled".into() }),
                }
            }
            _ => Err(CpuError::Step { op: prim.name(), message: "has no eager implementation".into() }),
        };
    };
    let alias = aliases(args);
    let distinct: Vec<&HostArray> = args.iter().enumerate().filter(|&(i, _)| alias[i] == i).map(|(_, a)| *a).collect();
    let key = (op, avals, alias);
    let hit = match cache().lock() {
        Ok(c) => c.get(&key).cloned(),
        Err(p) => p.into_inner().get(&key).cloned(),
    };
    let exe = match hit {
        Some(e) => e,
        None => {
            let p = aliased_op_program(prim, &key.1, &key.2)?;
            // The passes expand what is not a kernel or a library call by itself (arg-reductions).
            let (p, _) =
                arrayjit_lower::optimize(&p).map_err(|e| CpuError::Step { op: prim.name(), message: e.to_string() })?;
            let exe = Arc::new(Executable::compile(&arrayjit_lower::fuse(&p), &CompileOptions::default())?);
            let mut c = match cache().lock() {
                Ok(c) => c,
                Err(p) => p.into_inner(),
            };
            c.entry(key).or_insert(exe).clone()
        }
    };
    exe.run(&distinct)
}

/// A program's fingerprint, and the constants it identifies by address,
/// kept alive with the cache entry so that no other array can take their
/// address while the entry lives (the compiled code may not hold them).
struct ProgramKey {
    hash: u64,
    kept: Vec<Arc<HostArray>>,
}

/// How many times each program structure was run, and its compiled code once
/// hot, with the constants its fingerprint names by address.
type ProgramCache = Mutex<HashMap<u64, Entry>>;

struct Entry {
    runs: u32,
    code: Option<Arc<Executable>>,
    _kept: Vec<Arc<HostArray>>,
}

fn programs() -> &'static ProgramCache {
    static CACHE: OnceLock<ProgramCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Programs kept compiled at most (the cache starts over beyond).
const MAX_PROGRAMS: usize = 256;

/// The number of whole programs compiled by eager evaluation so far.
pub fn cached_programs() -> usize {
    match programs().lock() {
        Ok(c) => c.values().filter(|e| e.code.is_some()).count(),
        Err(p) => p.into_inner().values().filter(|e| e.code.is_some()).count(),
    }
}

/// Counts a run of the program with fingerprint `key` and returns its
/// compiled code, compiling it with `compile` on its `hot_after`-th run
/// (`None` before).
fn program_code(
    key: ProgramKey,
    hot_after: u32,
    compile: impl FnOnce() -> Result<Executable, CpuError>,
) -> Result<Option<Arc<Executable>>, CpuError> {
    let hash = key.hash;
    let (seen, exe) = {
        let mut c = match programs().lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if c.len() >= MAX_PROGRAMS && !c.contains_key(&hash) {
            c.clear();
        }
        let entry = c.entry(hash).or_insert(Entry { runs: 0, code: None, _kept: key.kept });
        entry.runs = entry.runs.saturating_add(1);
        (entry.runs, entry.code.clone())
    };
    if exe.is_some() || seen < hot_after {
        return Ok(exe);
    }
    let exe = Arc::new(compile()?);
    if let Ok(mut c) = programs().lock() {
        if let Some(entry) = c.get_mut(&hash) {
            entry.code = Some(exe.clone());
        }
    }
    Ok(Some(exe))
}

/// Runs a program eagerly: equation by equation the first time its
/// structure is seen, compiled whole from the second time on.
pub fn execute_program(p: &Program, args: &[&HostArray]) -> Result<Vec<HostArray>, CpuError> {
    if p.eqns.len() < 2 {
        return execute_equations(p, args);
    }
    // Constants count by type: the code takes their values as arguments, so
    // a program closing over values that change from call to call (the
    // current parameters) still finds it.
    let key = ProgramKey { hash: arrayjit_ir::fingerprint::fingerprint_without_consts(p), kept: by_address(p, false) };
    let compile = || crate::control::compile_program(&p.consts_as_inputs(), &CompileOptions::default());
    match program_code(key, 2, compile)? {
        Some(exe) => {
            let with_consts: Vec<&HostArray> =
                p.consts.iter().map(|(_, c)| c.as_ref()).chain(args.iter().copied()).collect();
            exe.run(&with_consts)
        }
        None => execute_equations(p, args),
    }
}

/// Runs a program equation by equation, each through [`execute_prim`] (eager
/// semantics: no fusion across equations).
pub fn execute_equations(p: &Program, args: &[&HostArray]) -> Result<Vec<HostArray>, CpuError> {
    let want = p.in_avals();
    let got: Vec<AVal> = args.iter().map(|a| a.aval()).collect();
    if want != got {
        return Err(CpuError::Signature {
            want: arrayjit_ir::error::list_avals(&want),
            got: arrayjit_ir::error::list_avals(&got),
        });
    }
    let mut env: Vec<Option<HostArray>> = vec![None; p.num_vars()];
    for (v, c) in &p.consts {
        env[v.index()] = Some((**c).clone());
    }
    for (v, a) in p.inputs.iter().zip(args) {
        env[v.index()] = Some((*a).clone());
    }
    let read = |env: &[Option<HostArray>], a: &Atom| -> Result<HostArray, CpuError> {
        match a {
            Atom::Lit(s) => Ok(HostArray::scalar(*s)),
            Atom::Var(v) => env[v.index()].clone().ok_or_else(|| CpuError::Step {
                op: "program",
                message: format!("variable {v:?} is used before it is defined"),
            }),
        }
    };
    for e in &p.eqns {
        let ins = e.inputs.iter().map(|a| read(&env, a)).collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&HostArray> = ins.iter().collect();
        let outs = execute_prim(&e.prim, &refs)?;
        for (v, o) in e.outputs.iter().zip(outs) {
            env[v.index()] = Some(o);
        }
    }
    p.outputs.iter().map(|a| read(&env, a)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayjit_ir::prim::DotDims;
    use arrayjit_ir::Data;

    #[test]
    fn an_operand_passed_twice_is_one_input_of_the_compiled_operation() {
        let x =
            HostArray::new([40, 3], Data::F64((0..120).map(|i| (f64::from(i) * 0.9).sin()).collect())).expect("shape");
        let copy = x.clone();
        let xtx: Prim =
            Linalg::DotGeneral(DotDims { lhs_contract: vec![0], rhs_contract: vec![0], ..DotDims::default() }).into();
        assert_eq!(aliases(&[&x, &x, &copy]), vec![0, 0, 2]);
        let p = aliased_op_program(&xtx, &[x.aval(), x.aval()], &[0, 0]).expect("types");
        assert_eq!(p.inputs.len(), 1);
        let same = execute_prim(&xtx, &[&x, &x]).expect("runs");
        let apart = execute_prim(&xtx, &[&x, &copy]).expect("runs");
        let keys: Vec<Vec<usize>> = match cache().lock() {
            Ok(c) => c
                .keys()
                .filter(|k| k.0 == OpKey::of(&xtx).expect("an op") && k.1[0] == x.aval())
                .map(|k| k.2.clone())
                .collect(),
            Err(p) => p.into_inner().keys().map(|k| k.2.clone()).collect(),
        };
        assert!(keys.contains(&vec![0, 0]) && keys.contains(&vec![0, 1]), "{keys:?}");
        let (a, b) = (same[0].data(), apart[0].data());
        for i in 0..9 {
            assert!((a.get(i).as_f64() - b.get(i).as_f64()).abs() < 1e-12);
        }
    }
}
