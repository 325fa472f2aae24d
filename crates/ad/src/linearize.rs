//! Linearization: JVP followed by partial evaluation with known primals and
//! unknown tangents. The known half computes the outputs and the residuals the
//! tangent computation needs; the unknown half is linear in the tangents.

use crate::jvp::jvp_program;
use crate::partial_eval::partial_eval;
use arrayjit_ir::Program;
use arrayjit_trace::Result;

/// A program split into its primal computation and its linear tangent map.
#[derive(Clone, Debug)]
pub struct Linearized {
    /// Inputs: the original inputs. Outputs: the original outputs, then the residuals.
    pub primal: Program,
    /// Inputs: the residuals, then a tangent per differentiated input. Outputs: the outputs' tangents.
    pub linear: Program,
    pub num_residuals: usize,
}

/// Linearizes `p` with respect to the inputs marked in `diff`.
pub fn linearize(p: &Program, diff: &[bool]) -> Result<Linearized> {
    let j = jvp_program(p, diff)?;
    let n_in = p.inputs.len();
    let n_diff = diff.iter().filter(|d| **d).count();
    let n_out = p.outputs.len();
    let mut unknown_in = vec![false; n_in];
    unknown_in.extend(std::iter::repeat_n(true, n_diff));
    let mut unknown_out = vec![false; n_out];
    unknown_out.extend(std::iter::repeat_n(true, n_out));
    let split = partial_eval(&j, &unknown_in, &unknown_out)?;
    Ok(Linearized { primal: split.known, linear: split.unknown, num_residuals: split.num_residuals })
}
