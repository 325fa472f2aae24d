//! Optimisation passes over programs, each small and named. `optimize` runs
//! them in order and records the program after each one (for dumps).
//!
//! What the passes may change, against the reference interpreter (as XLA's
//! simplifier may against a literal evaluation):
//!
//! - roundings: sums and products are reassociated (`A·B + A·C` as
//!   `A·(B + C)`, Gram sums), divisions by a shared value become products by
//!   its reciprocal, and a computed divisor is assumed not subnormal;
//! - the sign of a zero: `x + 0` is `x`, and a sum reduced to one term (a
//!   diagonal read, an outer product) may give −0 where a sum from +0 gives +0;
//! - infinities and NaNs in a product by a structured operand: `diag(v)·B`
//!   scales rows, so an inf or NaN in `B` reaches its own row only, not every
//!   row through `0·inf`; `A·B + A·C` can overflow in `B + C` where neither
//!   product does; a Gram sum against an `X` holding an inf can give NaN;
//! - a carried log-determinant is that of the factor the inverse came from,
//!   which stays finite where factoring the rounded inverse would overflow.
//!
//! Finite inputs away from the range limits see roundings only: what the
//! differential tests check against the interpreter.

pub mod arg_reduce;
pub mod carry;
pub mod cse;
pub mod diagonal;
pub mod gram;
pub mod hoist;
pub mod inline;
pub mod logdet_carry;
pub mod products;
pub mod rebuild;
pub mod reciprocal;
pub mod simplify;

use arrayjit_ir::prim::Control;
use arrayjit_ir::{dce, typecheck, Prim, Program, TypeError};
use std::sync::Arc;

/// A pass: a name, a program-to-program function, and whether it also runs
/// on loop bodies, conditions and branches (see [`optimize`]).
pub struct Pass {
    pub name: &'static str,
    pub run: fn(&Program) -> Program,
    pub in_bodies: bool,
}

/// The passes `optimize` runs, in order.
pub const PASSES: &[Pass] = &[
    Pass { name: "inline", run: inline::inline_calls, in_bodies: true },
    Pass { name: "arg-reductions", run: arg_reduce::expand_arg_reductions, in_bodies: true },
    Pass { name: "diagonal", run: diagonal::diagonal_products, in_bodies: true },
    Pass { name: "simplify", run: simplify::simplify, in_bodies: true },
    Pass { name: "outer-products", run: products::outer_products, in_bodies: true },
    Pass { name: "uniform-products", run: products::uniform_products, in_bodies: true },
    Pass { name: "transpose-products", run: products::transpose_products, in_bodies: true },
    Pass { name: "distribute-products", run: products::distribute_products, in_bodies: true },
    Pass { name: "transpose-products-2", run: products::transpose_products, in_bodies: true },
    Pass { name: "cse", run: cse::cse, in_bodies: true },
    Pass { name: "dce", run: dce, in_bodies: true },
    Pass { name: "simplify-2", run: simplify::simplify, in_bodies: true },
    Pass { name: "cse-2", run: cse::cse, in_bodies: true },
    Pass { name: "dce-2", run: dce, in_bodies: true },
    Pass { name: "gram-sums", run: gram::gram_sums, in_bodies: false },
    Pass { name: "dce-3", run: dce, in_bodies: false },
    Pass { name: "reciprocal-divisors", run: reciprocal::reciprocal_divisors, in_bodies: true },
    Pass { name: "loop-carried-reuse", run: carry::reuse_carried, in_bodies: true },
    Pass { name: "carried-log-determinants", run: logdet_carry::carry_log_determinants, in_bodies: true },
    Pass { name: "hoist-loop-invariants", run: hoist::hoist_loop_invariants, in_bodies: true },
];

/// The program after each pass, by pass name.
pub type Stages = Vec<(&'static str, Program)>;

/// Runs every pass; returns the result and the program after each pass.
/// Each result is typechecked, so a pass that breaks a program is caught here.
///
/// Loop bodies, conditions and branches are optimised first, on their own
/// (stage `bodies`): the outer passes, loop-invariant hoisting above all,
/// then see bodies in which constants are folded, diagonal products are
/// scalings and duplicates are merged, rather than the raw trace. A body
/// skips `gram-sums` (and the `dce-3` after it): a Gram matrix of a loop's state is often carried from
/// the previous iteration instead (`loop-carried-reuse`), and then costs
/// nothing to read (the PLN fit's `scan` took as long with the rewrite).
pub fn optimize(p: &Program) -> Result<(Program, Stages), TypeError> {
    run_passes(p, false)
}

fn run_passes(p: &Program, in_body: bool) -> Result<(Program, Stages), TypeError> {
    let mut cur = optimize_bodies(p)?;
    let mut stages = Vec::with_capacity(PASSES.len() + 1);
    stages.push(("bodies", cur.clone()));
    for pass in PASSES.iter().filter(|pass| pass.in_bodies || !in_body) {
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
        let optimized = |b: &Program| run_passes(b, true).map(|(b, _)| Arc::new(b));
        e.prim = match &e.prim {
            // Only the function's body: its rules are never run once differentiation is done.
            Prim::Control(Control::CustomJvp { body, jvp, body_consts, jvp_consts }) => Control::CustomJvp {
                body: optimized(body)?,
                jvp: jvp.clone(),
                body_consts: *body_consts,
                jvp_consts: *jvp_consts,
            }
            .into(),
            Prim::Control(Control::CustomVjp { body, fwd, bwd, body_consts, fwd_consts }) => Control::CustomVjp {
                body: optimized(body)?,
                fwd: fwd.clone(),
                bwd: bwd.clone(),
                body_consts: *body_consts,
                fwd_consts: *fwd_consts,
            }
            .into(),
            // Never compiled (the backends report why).
            Prim::Control(Control::CustomVjpTangent { .. }) => continue,
            Prim::Control(c) => Prim::Control(c.map_programs(|b| run_passes(b, true).map(|(b, _)| b))?),
            _ => continue,
        };
    }
    Ok(q)
}
