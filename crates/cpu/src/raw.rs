//! Running an executable on raw buffers: the entry point of loop bodies,
//! which read their operands where they already are and write each output
//! where the loop wants it (a carry buffer, a slot of a stacked output),
//! without allocating.

use crate::exec::{Arena, CpuError, Executable, Place};
use arrayjit_ir::HostArray;
use arrayjit_lower::{OutputSource, Schedule};
use std::sync::Arc;

/// How a raw run delivers one program output to its destination.
#[derive(Clone, Debug)]
pub(crate) enum RawOut {
    /// The step that computes output buffer `k` writes the destination itself.
    Direct,
    /// Copied after the steps: from argument `i`,
    Arg(usize),
    /// from a constant,
    Const(Arc<HostArray>),
    /// from the destination of output `j` (an output returned twice),
    Output(usize),
    /// or written from a literal's bytes.
    Literal(Vec<u8>),
}

/// The delivery plan of each program output. The first output that names an
/// output buffer is written directly; later ones copy it.
pub(crate) fn plan_outputs(s: &Schedule, places: &[Place], output_buffers: &[usize]) -> Vec<RawOut> {
    let mut first: Vec<Option<usize>> = vec![None; output_buffers.len()];
    s.outputs
        .iter()
        .enumerate()
        .map(|(j, o)| match o {
            OutputSource::Literal(x) => {
                let h = HostArray::scalar(*x);
                let n = h.dtype().size_bytes();
                // SAFETY: a scalar's data holds `n` bytes.
                RawOut::Literal(unsafe { std::slice::from_raw_parts(h.as_ptr(), n) }.to_vec())
            }
            OutputSource::Buffer(b) => match &places[*b] {
                Place::Arg(i) => RawOut::Arg(*i),
                Place::Const(c) => RawOut::Const(c.clone()),
                Place::Output(k) => match first[*k] {
                    Some(j0) => RawOut::Output(j0),
                    None => {
                        first[*k] = Some(j);
                        RawOut::Direct
                    }
                },
                // Outputs never live in the arena.
                Place::Slot(_) => RawOut::Literal(Vec::new()),
            },
        })
        .collect()
}

impl Executable {
    /// Runs on raw buffers: `args[i]` addresses argument `i`, `dests[j]`
    /// where output `j` goes. `outs` and `ptrs` are scratch tables.
    ///
    /// # Safety
    /// Each argument pointer must address a live buffer of the argument's
    /// type, each destination a writable buffer of the output's type, and
    /// no destination may overlap an argument or another destination, except
    /// that destination `j` may be argument `i` itself where
    /// [`updates_in_place(i, j)`](Executable::updates_in_place).
    pub(crate) unsafe fn run_raw(
        &self,
        args: &[*const u8],
        dests: &[*mut u8],
        arena: &mut Arena,
        outs: &mut Vec<*mut u8>,
        ptrs: &mut Vec<*mut u8>,
    ) -> Result<(), CpuError> {
        self.raw_outs(dests, outs);
        self.run_steps(args, outs, arena, ptrs)?;
        // SAFETY: guaranteed by the caller.
        unsafe { self.finish_raw(args, dests) };
        Ok(())
    }

    /// The address of each output buffer in a raw run: the destination of
    /// the program output it delivers directly (null for the others).
    pub(crate) fn raw_outs(&self, dests: &[*mut u8], outs: &mut Vec<*mut u8>) {
        outs.clear();
        outs.resize(self.output_buffers.len(), std::ptr::null_mut());
        for (j, (o, how)) in self.schedule.outputs.iter().zip(&self.raw_outputs).enumerate() {
            if let (RawOut::Direct, OutputSource::Buffer(b)) = (how, o) {
                if let Place::Output(k) = self.places[*b] {
                    outs[k] = dests[j];
                }
            }
        }
    }

    /// Delivers the outputs a raw run does not write directly, once its steps have run.
    ///
    /// # Safety
    /// As for [`run_raw`](Executable::run_raw), after its steps.
    pub(crate) unsafe fn finish_raw(&self, args: &[*const u8], dests: &[*mut u8]) {
        let s = &self.schedule;
        for (j, how) in self.raw_outputs.iter().enumerate() {
            let n = match &s.outputs[j] {
                OutputSource::Buffer(b) => crate::exec::bytes_of(&s.buffers[*b].aval),
                OutputSource::Literal(x) => x.dtype().size_bytes(),
            };
            let src: *const u8 = match how {
                RawOut::Direct => continue,
                RawOut::Arg(i) => args[*i],
                RawOut::Const(c) => c.as_ptr(),
                RawOut::Output(j0) => dests[*j0],
                RawOut::Literal(bytes) => bytes.as_ptr(),
            };
            // SAFETY: `src` holds `n` bytes of the output's type (an argument,
            // constant or earlier output of the same buffer, or the literal's
            // bytes) and does not overlap `dests[j]` (guaranteed by the caller).
            unsafe { std::ptr::copy_nonoverlapping(src, dests[j], n) };
        }
    }
}
