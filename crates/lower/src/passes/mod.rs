//! Optimisation passes over programs, each small and named. `optimize` runs
//! them in order and records the program after each one (for dumps).

pub mod arg_reduce;
pub mod carry;
pub mod cse;
pub mod diagonal;
pub mod hoist;
pub mod inline;
pub mod logdet_carry;
pub mod products;
pub mod rebuild;
pub mod reciprocal;
pub mod simplify;

use arrayjit_ir::{dce, typecheck, Prim, Program, TypeError};

/// A pass: a name and a program-to-program function.
pub struct Pass {
    pub name: &'static str,
    pub run: fn(&Program) -> Program,
}

/// The passes `optimize` runs, in order.
pub const PASSES: &[Pass] = &[
    Pass { name: "inline", run: inline::inline_calls },
    Pass { name: "arg-reductions", run: arg_reduce::expand_arg_reductions },
    Pass { name: "diagonal", run: diagonal::diagonal_products },
    Pass { name: "simplify", run: simplify::simplify },
    Pass { name: "outer-products", run: products::outer_products },
    Pass { name: "uniform-products", run: products::uniform_products },
    Pass { name: "transpose-products", run: products::transpose_products },
    Pass { name: "distribute-products", run: products::distribute_products },
    Pass { name: "transpose-products-2", run: products::transpose_products },
    Pass { name: "cse", run: cse::cse },
    Pass { name: "dce", run: dce },
    Pass { name: "simplify-2", run: simplify::simplify },
    Pass { name: "cse-2", run: cse::cse },
    Pass { name: "dce-2", run: dce },
    Pass { name: "reciprocal-divisors", run: reciprocal::reciprocal_divisors },
    Pass { name: "loop-carried-reuse", run: carry::reuse_carried },
    Pass { name: "carried-log-determinants", run: logdet_carry::carry_log_determinants },
    Pass { name: "hoist-loop-invariants", run: hoist::hoist_loop_invariants },
];

/// The program after each pass, by pass name.
pub type Stages = Vec<(&'static str, Program)>;

/// Runs every pass; returns the result and the program after each pass.
/// Each result is typechecked, so a pass that breaks a program is caught here.
///
/// Loop bodies, conditions and branches are optimised first, on their own
/// (stage `bodies`): the outer passes, loop-invariant hoisting above all,
/// then see bodies in which constants are folded, diagonal products are
/// scalings and duplicates are merged, rather than the raw trace.
pub fn optimize(p: &Program) -> Result<(Program, Stages), TypeError> {
    let mut cur = optimize_bodies(p)?;
    let mut stages = Vec::with_capacity(PASSES.len() + 1);
    stages.push(("bodies", cur.clone()));
    for pass in PASSES {
        cur = (pass.run)(&cur);
        typecheck(&cur)
            .map_err(|e| TypeError::new(pass.name, format!("the pass produced an ill-typed program: {e}")))?;
        stages.push((pass.name, cur.clone()));
    }
    Ok((cur, stages))
}

/// `p` with the sub-programs of its control equations optimised.
fn optimize_bodies(p: &Program) -> Result<Program, TypeError> {
    if !p.eqns.iter().any(|e| matches!(e.prim, Prim::Control(_))) {
        return Ok(p.clone());
    }
    let mut q = p.clone();
    for e in &mut q.eqns {
        if let Prim::Control(c) = &e.prim {
            e.prim = Prim::Control(c.map_programs(|b| optimize(b).map(|(b, _)| b))?);
        }
    }
    Ok(q)
}
