//! The primitive set, one family per file. Each family file holds, for its
//! primitives, the typed params, the name, the generic params used by the
//! printer and parser, and the shape/dtype rule. This file only dispatches.

pub mod control;
pub mod elementwise;
pub mod linalg;
pub mod params;
pub mod reduce;
pub mod shape;

pub use control::Control;
pub use elementwise::Elementwise;
pub use linalg::{DotDims, Linalg};
pub use params::{Param, Params};
pub use reduce::Reduction;
pub use shape::ShapeOp;

use crate::{AVal, TypeError};

/// A primitive with its typed parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Prim {
    Elementwise(Elementwise),
    Shape(ShapeOp),
    Reduce(Reduction),
    Linalg(Linalg),
    Control(Control),
}

impl Prim {
    /// The name printed in programs, e.g. `add`, `broadcast_in_dim`, `reduce_sum`.
    pub fn name(&self) -> &'static str {
        match self {
            Prim::Elementwise(p) => p.name(),
            Prim::Shape(p) => p.name(),
            Prim::Reduce(p) => p.name(),
            Prim::Linalg(p) => p.name(),
            Prim::Control(p) => p.name(),
        }
    }

    /// The parameters as `key=value` pairs, in printing order.
    pub fn params(&self) -> Vec<(&'static str, Param)> {
        match self {
            Prim::Elementwise(p) => p.params(),
            Prim::Shape(p) => p.params(),
            Prim::Reduce(p) => p.params(),
            Prim::Linalg(p) => p.params(),
            Prim::Control(p) => p.params(),
        }
    }

    /// Rebuilds a primitive from its name and parameters (the parser's side).
    pub fn from_parts(name: &str, mut params: Params) -> Result<Prim, String> {
        let p = &mut params;
        let prim = if let Some(r) = Elementwise::from_parts(name, p) {
            Prim::Elementwise(r?)
        } else if let Some(r) = ShapeOp::from_parts(name, p) {
            Prim::Shape(r?)
        } else if let Some(r) = Reduction::from_parts(name, p) {
            Prim::Reduce(r?)
        } else if let Some(r) = Linalg::from_parts(name, p) {
            Prim::Linalg(r?)
        } else if let Some(r) = Control::from_parts(name, p) {
            Prim::Control(r?)
        } else {
            return Err(format!("unknown primitive `{name}`"));
        };
        params.finish().map_err(|e| format!("{name}: {e}"))?;
        Ok(prim)
    }

    /// The shape/dtype rule: the output types for these operand types, or why
    /// the operands are not accepted.
    /// Every result must be an array that could exist: its size in bytes
    /// must fit in memory (code that allocates and indexes it relies on it).
    pub fn abstract_eval(&self, ins: &[AVal]) -> Result<Vec<AVal>, TypeError> {
        let outs = match self {
            Prim::Elementwise(p) => p.abstract_eval(ins),
            Prim::Shape(p) => p.abstract_eval(ins),
            Prim::Reduce(p) => p.abstract_eval(ins),
            Prim::Linalg(p) => p.abstract_eval(ins),
            Prim::Control(p) => p.abstract_eval(ins),
        }?;
        match outs.iter().find(|a| a.bytes().is_none()) {
            Some(a) => Err(TypeError::new(
                self.name(),
                format!("its result {a} would hold more bytes than any array can (at most {} bytes)", isize::MAX),
            )),
            None => Ok(outs),
        }
    }
}

impl From<Elementwise> for Prim {
    fn from(p: Elementwise) -> Prim {
        Prim::Elementwise(p)
    }
}
impl From<ShapeOp> for Prim {
    fn from(p: ShapeOp) -> Prim {
        Prim::Shape(p)
    }
}
impl From<Reduction> for Prim {
    fn from(p: Reduction) -> Prim {
        Prim::Reduce(p)
    }
}
impl From<Linalg> for Prim {
    fn from(p: Linalg) -> Prim {
        Prim::Linalg(p)
    }
}
impl From<Control> for Prim {
    fn from(p: Control) -> Prim {
        Prim::Control(p)
    }
}
