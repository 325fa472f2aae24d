//! A schedule: the steps an executable runs (fused kernels and primitives the
//! backend implements directly, e.g. matrix products) over a table of buffers.

use crate::kernel::Kernel;
use arrayjit_ir::{AVal, HostArray, Prim, Scalar};
use std::fmt;
use std::sync::Arc;

/// Index of a buffer in a schedule.
pub type BufferId = usize;

/// Where a buffer's contents come from.
#[derive(Clone, Debug)]
pub enum BufferKind {
    /// Argument `i` of the executable.
    Input(usize),
    /// A constant of the program.
    Const(Arc<HostArray>),
    /// Written by a step.
    Temp,
}

/// A buffer: a dense row-major array.
#[derive(Clone, Debug)]
pub struct Buffer {
    pub aval: AVal,
    pub kind: BufferKind,
}

/// One step of a schedule.
#[derive(Clone, Debug)]
pub enum Step {
    /// A fused loop kernel; its inputs and outputs in the kernel's order.
    Kernel { kernel: Kernel, inputs: Vec<BufferId>, outputs: Vec<BufferId> },
    /// A primitive the backend runs as a library call (linear algebra,
    /// arg-reductions).
    Prim { prim: Prim, inputs: Vec<BufferId>, outputs: Vec<BufferId> },
}

impl Step {
    pub fn inputs(&self) -> &[BufferId] {
        match self {
            Step::Kernel { inputs, .. } | Step::Prim { inputs, .. } => inputs,
        }
    }
    pub fn outputs(&self) -> &[BufferId] {
        match self {
            Step::Kernel { outputs, .. } | Step::Prim { outputs, .. } => outputs,
        }
    }
}

/// Where an output of the executable comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputSource {
    Buffer(BufferId),
    Literal(Scalar),
}

/// The lowered program.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub buffers: Vec<Buffer>,
    pub steps: Vec<Step>,
    pub outputs: Vec<OutputSource>,
    /// Why values were materialised and how kernels were grouped.
    pub notes: Vec<String>,
}

impl Schedule {
    /// Runs the schedule with reference semantics (kernels interpreted per point,
    /// primitives by the interpreter). For tests.
    pub fn eval_reference(&self, args: &[HostArray]) -> Result<Vec<HostArray>, String> {
        let mut vals: Vec<Option<HostArray>> = self
            .buffers
            .iter()
            .map(|b| match &b.kind {
                BufferKind::Input(i) => args.get(*i).cloned(),
                BufferKind::Const(c) => Some((**c).clone()),
                BufferKind::Temp => None,
            })
            .collect();
        for s in &self.steps {
            let ins: Vec<HostArray> = s
                .inputs()
                .iter()
                .map(|&b| vals[b].clone().ok_or_else(|| format!("buffer {b} read before it is written")))
                .collect::<Result<_, _>>()?;
            let outs = match s {
                Step::Kernel { kernel, .. } => kernel.eval_reference(&ins.iter().collect::<Vec<_>>())?,
                Step::Prim { prim, .. } => arrayjit_interp::eval_prim(prim, &ins).map_err(|e| e.to_string())?,
            };
            for (&b, o) in s.outputs().iter().zip(outs) {
                vals[b] = Some(o);
            }
        }
        self.outputs
            .iter()
            .map(|o| match o {
                OutputSource::Literal(s) => Ok(HostArray::scalar(*s)),
                OutputSource::Buffer(b) => vals[*b].clone().ok_or_else(|| format!("output buffer {b} never written")),
            })
            .collect()
    }

    /// The types of the arguments, in order (those the schedule reads).
    pub fn input_avals(&self) -> Vec<AVal> {
        let mut ins: Vec<(usize, AVal)> = self
            .buffers
            .iter()
            .filter_map(|b| match b.kind {
                BufferKind::Input(i) => Some((i, b.aval.clone())),
                _ => None,
            })
            .collect();
        ins.sort_by_key(|(i, _)| *i);
        ins.into_iter().map(|(_, a)| a).collect()
    }

    /// The types of the results, in order.
    pub fn output_avals(&self) -> Vec<AVal> {
        self.outputs
            .iter()
            .map(|o| match o {
                OutputSource::Buffer(b) => self.buffers[*b].aval.clone(),
                OutputSource::Literal(v) => AVal::scalar(v.dtype()),
            })
            .collect()
    }

    /// Number of fused kernels.
    pub fn num_kernels(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s, Step::Kernel { .. })).count()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.buffers.iter().enumerate() {
            let kind = match &b.kind {
                BufferKind::Input(k) => format!("input {k}"),
                BufferKind::Const(_) => "constant".to_string(),
                BufferKind::Temp => "temporary".to_string(),
            };
            writeln!(f, "buf{i}: {} ({kind})", b.aval)?;
        }
        let list = |v: &[BufferId]| v.iter().map(|b| format!("buf{b}")).collect::<Vec<_>>().join(", ");
        for (i, s) in self.steps.iter().enumerate() {
            match s {
                Step::Kernel { kernel, inputs, outputs } => {
                    writeln!(f, "\nstep {i}: ({}) = fused({})", list(outputs), list(inputs))?;
                    write!(f, "{kernel}")?;
                }
                Step::Prim { prim, inputs, outputs } => {
                    writeln!(f, "\nstep {i}: ({}) = {}({})", list(outputs), prim.name(), list(inputs))?;
                    if let Prim::Control(c) = prim {
                        // A loop's or branch's own schedule, as the backend
                        // compiles it (optimised and fused on its own).
                        for (k, body) in c.sub_programs().into_iter().enumerate() {
                            let text = match crate::passes::optimize(body) {
                                Ok((opt, _)) => crate::fuse(&opt).to_string(),
                                Err(e) => format!("(the body does not optimise: {e})\n"),
                            };
                            writeln!(f, "  sub-program {k} of {}:", c.name())?;
                            for line in text.lines() {
                                writeln!(f, "  | {line}")?;
                            }
                        }
                    }
                }
            }
        }
        let outs: Vec<String> = self
            .outputs
            .iter()
            .map(|o| match o {
                OutputSource::Buffer(b) => format!("buf{b}"),
                OutputSource::Literal(s) => s.to_string(),
            })
            .collect();
        writeln!(f, "\noutputs: ({})", outs.join(", "))?;
        if !self.notes.is_empty() {
            writeln!(f, "\nfusion decisions:")?;
            for n in &self.notes {
                writeln!(f, "  {n}")?;
            }
        }
        Ok(())
    }
}
