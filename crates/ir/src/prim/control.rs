//! Higher-order primitives: those that hold a sub-program. `call` applies a
//! closed program to operands (what a `jit`-ed function becomes when it is called
//! under another trace); loops and conditionals join this family.

use super::params::{Param, Params};
use crate::error::list_avals;
use crate::{AVal, Program, TypeError};
use std::sync::Arc;

/// A primitive holding sub-programs.
#[derive(Clone, Debug, PartialEq)]
pub enum Control {
    /// Applies `body` to the operands; the outputs are the body's outputs.
    Call { body: Arc<Program> },
}

impl Control {
    pub fn name(&self) -> &'static str {
        match self {
            Control::Call { .. } => "call",
        }
    }

    pub fn params(&self) -> Vec<(&'static str, Param)> {
        match self {
            Control::Call { body } => vec![("body", Param::Program(body.clone()))],
        }
    }

    pub fn from_parts(name: &str, p: &mut Params) -> Option<Result<Control, String>> {
        Some(match name {
            "call" => p.program("body").map(|body| Control::Call { body }),
            _ => return None,
        })
    }

    /// The sub-programs held, for passes that recurse (typecheck, printing).
    pub fn sub_programs(&self) -> Vec<&Arc<Program>> {
        match self {
            Control::Call { body } => vec![body],
        }
    }

    /// The shape/dtype rule. (The bodies themselves are checked by the typechecker.)
    pub fn abstract_eval(&self, ins: &[AVal]) -> Result<Vec<AVal>, TypeError> {
        match self {
            Control::Call { body } => {
                let want = body.in_avals();
                if want != ins {
                    return Err(TypeError::new(
                        self.name(),
                        format!("the body takes {} but was given {}", list_avals(&want), list_avals(ins)),
                    ));
                }
                Ok(body.out_avals())
            }
        }
    }
}
