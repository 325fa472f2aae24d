//! The constant part of a schedule: the steps that read only constants (or
//! what other such steps wrote). A backend runs them once, when it builds its
//! executable, and the values the other steps read from them become
//! constants, so a call never recomputes them (a log-likelihood's constant
//! term over a data set, an identity mask).

use crate::schedule::{Buffer, BufferId, BufferKind, OutputSource, Schedule, Step};
use arrayjit_ir::{HostArray, Prim};
use std::collections::HashMap;
use std::sync::Arc;

/// The constant steps of a schedule, as a schedule of their own.
#[derive(Clone, Debug)]
pub struct ConstantPart {
    /// The constant steps, with no inputs; its outputs are the values
    /// `frontier` names.
    pub schedule: Schedule,
    /// The buffers (of the whole schedule) the other steps read from the
    /// constant steps.
    pub frontier: Vec<BufferId>,
    constant_step: Vec<bool>,
}

impl Schedule {
    /// The constant part, or `None` when no step reads only constants.
    /// Loops and conditionals, and steps that write a program output, are
    /// never part of it.
    pub fn constant_part(&self) -> Option<ConstantPart> {
        let is_output: Vec<bool> =
            (0..self.buffers.len()).map(|b| self.outputs.contains(&OutputSource::Buffer(b))).collect();
        let mut constant: Vec<bool> = self.buffers.iter().map(|b| matches!(b.kind, BufferKind::Const(_))).collect();
        let mut constant_step = vec![false; self.steps.len()];
        for (si, step) in self.steps.iter().enumerate() {
            let control = matches!(step, Step::Prim { prim: Prim::Control(_), .. });
            if control || step.outputs().iter().any(|&b| is_output[b]) || !step.inputs().iter().all(|&b| constant[b]) {
                continue;
            }
            constant_step[si] = true;
            for &b in step.outputs() {
                constant[b] = true;
            }
        }
        if !constant_step.contains(&true) {
            return None;
        }
        let mut frontier: Vec<BufferId> = Vec::new();
        for (si, step) in self.steps.iter().enumerate() {
            if constant_step[si] {
                continue;
            }
            for &b in step.inputs() {
                let written = matches!(self.buffers[b].kind, BufferKind::Temp) && constant[b];
                if written && !frontier.contains(&b) {
                    frontier.push(b);
                }
            }
        }
        // The constant steps over their own buffers.
        let mut id: HashMap<BufferId, BufferId> = HashMap::new();
        let mut buffers: Vec<Buffer> = Vec::new();
        let mut map = |b: BufferId| -> BufferId {
            *id.entry(b).or_insert_with(|| {
                buffers.push(self.buffers[b].clone());
                buffers.len() - 1
            })
        };
        let mut steps = Vec::new();
        for (si, step) in self.steps.iter().enumerate() {
            if !constant_step[si] {
                continue;
            }
            let ins: Vec<BufferId> = step.inputs().iter().map(|&b| map(b)).collect();
            let outs: Vec<BufferId> = step.outputs().iter().map(|&b| map(b)).collect();
            steps.push(match step {
                Step::Kernel { kernel, .. } => Step::Kernel { kernel: kernel.clone(), inputs: ins, outputs: outs },
                Step::Prim { prim, .. } => Step::Prim { prim: prim.clone(), inputs: ins, outputs: outs },
            });
        }
        let outputs = frontier.iter().map(|&b| OutputSource::Buffer(map(b))).collect();
        Some(ConstantPart {
            schedule: Schedule { buffers, steps, outputs, notes: Vec::new() },
            frontier,
            constant_step,
        })
    }
}

impl ConstantPart {
    /// `whole` (the schedule this part came from) with `values` (the part's
    /// outputs, in order) as constants and the constant steps removed.
    pub fn fold_into(&self, whole: &Schedule, values: Vec<HostArray>) -> Schedule {
        let mut s = whole.clone();
        for (&b, v) in self.frontier.iter().zip(values) {
            s.buffers[b].kind = BufferKind::Const(Arc::new(v));
        }
        let mut k = self.constant_step.iter();
        s.steps.retain(|_| !*k.next().unwrap_or(&false));
        let n = self.constant_step.iter().filter(|c| **c).count();
        s.notes.push(format!("{n} steps read only constants: run once, when the executable was built"));
        s
    }
}
