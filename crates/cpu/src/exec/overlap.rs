//! Running the tail of one loop iteration beside the head of the next.
//!
//! The last steps of a loop body often feed only carries that the first
//! steps of the next iteration do not read: in a PLN step, the tail factors
//! the new Σ and inverts it into Ω, while the head, the forward kernel,
//! reads M, S and B. At small sizes the tail's factorizations run on one
//! thread while the others wait; run beside the next iteration's head, they
//! keep two threads busy. Results are the same bits: every step runs as it
//! would, on the same operands, and only steps independent of each other
//! change order.
//!
//! The head is a prefix of small kernels (at most [`SMALL_BLOCKS`] blocks)
//! that write only arena slots and per-iteration outputs; the tail is the
//! suffix after the last step that writes a carry the head reads, reads
//! nothing the head writes, and holds only small kernels and products and
//! factorizations (which run on one thread): inside the pair, each side
//! runs on one thread, so a step that would have used more stays out. The memory plan keeps the head's slots to the
//! head (see `plan_memory`), so the two never share memory, and the tail's
//! copies of outputs (which a raw run makes after its steps) never write a
//! carry the head reads.

use super::{Action, Arena, CpuError, Executable, KernelStep};
use crate::codegen::KernelFn;
use arrayjit_lower::{BufferKind, OutputSource, Schedule};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Steps `0..head` of an iteration may run beside steps `tail..` of the
/// iteration before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Overlap {
    pub head: usize,
    pub tail: usize,
}

/// Steps of more blocks than this gain more from every thread than from
/// running beside another step on one, so they are left out of heads and
/// tails.
const SMALL_BLOCKS: usize = 2;

/// The overlap of a loop body whose first `consts` arguments are constants
/// and next `carries` its carries, if it has one worth running.
pub(super) fn plan(s: &Schedule, actions: &[Action], consts: usize, carries: usize) -> Option<Overlap> {
    // A head may write temporaries and per-iteration outputs, but no carry:
    // the tail may still read the buffer a carry's next value goes to.
    let is_carry = |b: usize| s.outputs[..carries.min(s.outputs.len())].contains(&OutputSource::Buffer(b));
    let longest = actions
        .iter()
        .zip(&s.steps)
        .take_while(|(a, st)| match a {
            Action::Kernel(k) => {
                !k.fused
                    && k.ranges.len() <= SMALL_BLOCKS
                    && st.outputs().iter().all(|&b| matches!(s.buffers[b].kind, BufferKind::Temp) && !is_carry(b))
            }
            _ => false,
        })
        .count();
    // The longest head whose tail holds library work: a longer head may
    // read a carry written late (Ω, say), which leaves no tail worth it.
    (1..=longest).rev().find_map(|head| with_head(s, actions, consts, carries, head))
}

/// The overlap with a head of `head` steps, if its tail is worth running beside it.
fn with_head(s: &Schedule, actions: &[Action], consts: usize, carries: usize, head: usize) -> Option<Overlap> {
    // The tail starts after every step that writes a carry the head reads.
    // Such a carry must be written by a step, not copied after the steps.
    let mut tail = head;
    for &b in s.steps[..head].iter().flat_map(|st| st.inputs()) {
        let BufferKind::Input(i) = s.buffers[b].kind else { continue };
        if !(consts..consts + carries).contains(&i) {
            continue;
        }
        let c = i - consts;
        let Some(OutputSource::Buffer(o)) = s.outputs.get(c) else { return None };
        let named_before = s.outputs[..c].iter().any(|x| matches!(x, OutputSource::Buffer(y) if y == o));
        if named_before || !matches!(s.buffers[*o].kind, BufferKind::Temp) {
            return None;
        }
        let writer = s.steps.iter().position(|st| st.outputs().contains(o))?;
        tail = tail.max(writer + 1);
    }
    if tail >= s.steps.len() {
        return None;
    }
    let head_writes: Vec<usize> = s.steps[..head].iter().flat_map(|st| st.outputs().iter().copied()).collect();
    if s.steps[tail..].iter().any(|st| st.inputs().iter().any(|b| head_writes.contains(b))) {
        return None;
    }
    // Worth it when the tail holds library work, and possible when all of
    // it would run on one thread anyway.
    // (A kernel or Gram product run by row blocks with a product before the
    // tail is done by then: nothing is left to run at its step.)
    let small = actions[tail..].iter().all(|a| match a {
        Action::Kernel(k) => k.fused || k.ranges.len() <= SMALL_BLOCKS,
        Action::Dot(plan) => plan.blocks() <= SMALL_BLOCKS,
        Action::Factor(_) | Action::Host | Action::GramRows(_) => true,
        Action::DotRows(..) | Action::Control(_) => false,
    });
    let library = actions[tail..].iter().any(|a| matches!(a, Action::Factor(_) | Action::Dot(_) | Action::Host));
    (small && library).then_some(Overlap { head, tail })
}

/// The pointer tables of one raw run: its arguments, its output buffers
/// (see [`Executable::raw_outs`]) and its outputs' destinations.
#[derive(Default)]
pub(crate) struct RawTables {
    pub args: Vec<*const u8>,
    pub outs: Vec<*mut u8>,
    pub dests: Vec<*mut u8>,
}

/// What the overlapped iterations of one loop run reuse: the head's
/// kernels, pointer tables and partial buffers, and the tail's step table.
pub(crate) struct OverlapScratch<'a> {
    kernels: Vec<(&'a KernelStep, KernelFn)>,
    head: Vec<Vec<*mut u8>>,
    partials: Vec<Vec<Vec<u64>>>,
    tail_ptrs: Vec<*mut u8>,
}

/// What the two threads of [`Executable::run_tail_beside_head`] share.
struct Shared<'a> {
    prev: &'a RawTables,
    head: &'a [Vec<*mut u8>],
    kernels: &'a [(&'a KernelStep, KernelFn)],
}

impl<'a> Shared<'a> {
    /// Methods, so that closures capture the whole (`Sync`) value.
    fn prev(&self) -> &'a RawTables {
        self.prev
    }
    fn head(&self) -> impl Iterator<Item = (&'a (&'a KernelStep, KernelFn), &'a Vec<*mut u8>)> {
        self.kernels.iter().zip(self.head)
    }
}

// SAFETY: the tables address buffers that outlive the call sharing them;
// the head writes only its own slots and its iteration's slices of the
// per-iteration outputs, and the tail nothing the head reads
// (see the module's documentation), so the two threads touch disjoint
// memory except for buffers both only read.
unsafe impl Sync for Shared<'_> {}

/// What the tail's thread takes: the arena and a pointer table.
struct Tail<'a> {
    arena: &'a mut Arena,
    ptrs: &'a mut Vec<*mut u8>,
}

// SAFETY: the table is scratch, rewritten before each use; the arena is the
// tail's alone while it runs (the head's slots and partials excepted, which
// the tail does not touch).
unsafe impl Send for Tail<'_> {}

impl Executable {
    /// How this loop body's iterations overlap, if they do.
    pub(crate) fn overlap(&self) -> Option<Overlap> {
        self.overlap
    }

    /// The scratch of [`run_tail_beside_head`](Executable::run_tail_beside_head) under `ov`.
    pub(crate) fn overlap_scratch(&self, ov: Overlap) -> Result<OverlapScratch<'_>, CpuError> {
        let mut kernels = Vec::with_capacity(ov.head);
        for si in 0..ov.head {
            let Action::Kernel(k) = &self.actions[si] else {
                return Err(super::internal(format!("step {si} of an overlapped head is not a kernel")));
            };
            let f = *self.module.fns.get(k.func).ok_or_else(|| super::internal(format!("step {si} has no kernel")))?;
            kernels.push((k, f));
        }
        Ok(OverlapScratch {
            kernels,
            head: vec![Vec::new(); ov.head],
            partials: vec![Vec::new(); ov.head],
            tail_ptrs: Vec::with_capacity(16),
        })
    }

    /// Runs the tail of the previous iteration (`prev`'s tables), output
    /// copies included, beside the head of this one (`cur`'s), on two
    /// threads when a second is free, else one after the other.
    ///
    /// # Safety
    /// Both tables must be those of raw runs valid as for
    /// [`run_raw`](Executable::run_raw), `prev` the run just before `cur`
    /// with every step before the tail done, and `ov` this executable's
    /// overlap, `scratch` made for it.
    pub(crate) unsafe fn run_tail_beside_head(
        &self,
        ov: Overlap,
        prev: &RawTables,
        cur: &RawTables,
        arena: &mut Arena,
        scratch: &mut OverlapScratch<'_>,
    ) -> Result<(), CpuError> {
        // The head's pointer tables and partial buffers are taken now: the
        // tail has the arena meanwhile.
        for (si, table) in scratch.head.iter_mut().enumerate() {
            let st = &self.schedule.steps[si];
            table.clear();
            table.extend(st.inputs().iter().chain(st.outputs()).map(|&b| self.ptr(b, &cur.args, &cur.outs, arena)));
        }
        for (mine, theirs) in scratch.partials.iter_mut().zip(&mut arena.partials) {
            std::mem::swap(mine, theirs);
        }
        let OverlapScratch { kernels, head, partials, tail_ptrs } = scratch;
        let shared = Shared { prev, head, kernels };
        let steps = self.schedule.steps.len();
        let tail = Mutex::new(Some(Tail { arena: &mut *arena, ptrs: tail_ptrs }));
        let head_partials = Mutex::new(Some(&mut *partials));
        let failure: Mutex<Option<CpuError>> = Mutex::new(None);
        let next = AtomicUsize::new(0);
        let timed = crate::profile::enabled();
        let job = |_: usize| loop {
            match next.fetch_add(1, Ordering::Relaxed) {
                0 => {
                    let Some(Tail { arena, ptrs }) = take(&tail) else { break };
                    let prev = shared.prev();
                    match self.run_step_range(ov.tail..steps, &prev.args, &prev.outs, arena, ptrs) {
                        // SAFETY: guaranteed by the caller; the tail's steps have run.
                        Ok(()) => unsafe { self.finish_raw(&prev.args, &prev.dests) },
                        Err(e) => {
                            if let Ok(mut slot) = failure.lock() {
                                slot.get_or_insert(e);
                            }
                        }
                    }
                }
                1 => {
                    let Some(partials) = take(&head_partials) else { break };
                    for (si, ((k, f), ptrs)) in shared.head().enumerate() {
                        let start = timed.then(std::time::Instant::now);
                        // SAFETY: the tables address the head's operands and
                        // slots, which nothing else touches meanwhile (see
                        // `Shared`); the kernel was compiled for them.
                        unsafe { self.run_kernel(si, k, *f, ptrs, &mut partials[si]) };
                        if let Some(start) = start {
                            crate::profile::record(|| self.label(si), start.elapsed());
                        }
                    }
                }
                _ => break,
            }
        };
        // The partial buffers go back even when a step panics, so that the
        // arena stays whole for whoever catches it.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crate::pool::run(2, &job)));
        for (mine, theirs) in partials.iter_mut().zip(&mut arena.partials) {
            std::mem::swap(mine, theirs);
        }
        if let Err(panic) = ran {
            std::panic::resume_unwind(panic);
        }
        failure.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).map_or(Ok(()), Err)
    }
}

/// What `m` holds, taken out (a poisoned lock still gives it up).
fn take<T>(m: &Mutex<Option<T>>) -> Option<T> {
    match m.lock() {
        Ok(mut g) => g.take(),
        Err(p) => p.into_inner().take(),
    }
}
