//! Derivative rules of the higher-order primitives. A `call` is differentiated
//! by differentiating its body in place: the JVP of the body is evaluated
//! inline, so the linear program never contains a `call`.

use super::JvpOut;
use crate::jvp::jvp_eval;
use arrayjit_ir::prim::Control;
use arrayjit_trace::{Array, Result};

pub(crate) fn jvp(op: &Control, xs: &[Array], ts: &[super::Tangent]) -> Result<JvpOut> {
    match op {
        Control::Call { body } => jvp_eval(body, xs, ts),
    }
}
