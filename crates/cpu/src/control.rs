//! Loops and conditionals in an executable: `scan`, `while` and `cond` steps.
//!
//! Each body (and condition, and branch), optimised with the enclosing
//! program, is fused and compiled once into its own [`Executable`]; the step
//! runs it in a loop over raw buffer pointers. Nothing is allocated per iteration (except by the one
//! library step still run on host copies, the LU factorization) and nothing
//! is copied that the body does not compute: loop-invariant operands are
//! passed by pointer, each `x` slice is a pointer into the stacked input,
//! each `y` is written straight into its slot of the stacked output, and a
//! carry is double-buffered between the step's output buffer and one
//! temporary, arranged so that the last iteration writes the output, unless
//! the body can update it in place: it then stays in the output buffer.
//! A scan with `unroll = u` runs a body made of `u` copies of the original
//! (fused across iterations) for `length / u` passes, then the original for
//! the rest. A scan whose body ends with library steps that the body's first
//! kernels do not wait for runs each iteration's tail beside the next
//! iteration's head (see [`Overlap`]).

use crate::exec::{bytes_of, Arena, CompileOptions, CpuError, Executable, Overlap, RawTables};
use arrayjit_ir::prim::control::{custom_body_as_call, CUSTOM_VJP_FORWARD};
use arrayjit_ir::prim::Control;
use arrayjit_ir::{Atom, Program, ProgramBuilder};

/// Compiles a sub-program on its own: passes, fusion, code.
pub(crate) fn compile_program(p: &Program, opts: &CompileOptions) -> Result<Executable, CpuError> {
    let (p, _) = arrayjit_lower::optimize(p).map_err(|e| CpuError::Step { op: "control", message: e.to_string() })?;
    compile_body(&p, opts)
}

/// Compiles a loop body, condition or branch: the passes already ran on it
/// with the enclosing program (their `bodies` stage), so fusion and code only.
fn compile_body(p: &Program, opts: &CompileOptions) -> Result<Executable, CpuError> {
    Executable::compile(&arrayjit_lower::fuse(p), opts)
}

/// A compiled loop or conditional.
pub(crate) enum ControlStep {
    Scan(Box<ScanStep>),
    While(Box<WhileStep>),
    Cond(Vec<Executable>),
    /// A call left in a schedule that was fused without the inlining pass.
    Call(Box<Executable>),
}

pub(crate) struct ScanStep {
    /// The body, and (when unrolled) the body of `unroll` iterations.
    body: Executable,
    unrolled: Option<(Executable, usize)>,
    num_consts: usize,
    length: usize,
    reverse: bool,
    carry_bytes: Vec<usize>,
    /// The carries that every body updates in place (see
    /// [`Executable::updates_in_place`]): they live in the step's output
    /// buffer from the first iteration's result on.
    in_place: Vec<bool>,
    /// Bytes of one slice of each `x` and each `y`.
    x_bytes: Vec<usize>,
    y_bytes: Vec<usize>,
}

pub(crate) struct WhileStep {
    cond: Executable,
    body: Executable,
    cond_consts: usize,
    body_consts: usize,
    carry_bytes: Vec<usize>,
    /// The carries the body updates in place (as a scan's).
    in_place: Vec<bool>,
}

/// A loop step's memory, kept in the executable's arena between calls: the
/// second buffer of each carry, the bodies' own arenas and pointer tables.
#[derive(Default)]
pub(crate) struct LoopMemory {
    carries: Vec<Vec<u64>>,
    arenas: Vec<Arena>,
    args: Vec<*const u8>,
    dests: Vec<*mut u8>,
    ptrs: Vec<*mut u8>,
    outs: Vec<*mut u8>,
    flag: [u64; 1],
}

// SAFETY: the raw pointers held are scratch tables rewritten before every
// use; they never outlive the call that filled them.
unsafe impl Send for LoopMemory {}

impl ControlStep {
    pub(crate) fn compile(c: &Control, opts: &CompileOptions) -> Result<ControlStep, CpuError> {
        Ok(match c {
            Control::Call { body } => ControlStep::Call(Box::new(compile_body(body, opts)?)),
            Control::CustomJvp { body, jvp: rule, body_consts, jvp_consts: rule_consts }
            | Control::CustomVjp { body, fwd: rule, body_consts, fwd_consts: rule_consts, .. } => {
                let body = custom_body_as_call(body, rule, *body_consts, *rule_consts);
                ControlStep::Call(Box::new(compile_body(&body, opts)?))
            }
            Control::CustomVjpTangent { .. } => {
                return Err(CpuError::Step { op: "custom_vjp_tangent", message: CUSTOM_VJP_FORWARD.into() })
            }
            Control::Scan { body, num_consts, num_carry, length, reverse, unroll } => {
                let (nc, nk) = (*num_consts, *num_carry);
                let ins = body.in_avals();
                let outs = body.out_avals();
                let u = (*unroll).min(*length);
                let unrolled =
                    if u > 1 { Some((compile_program(&unroll_body(body, nc, nk, u), opts)?, u)) } else { None };
                let body = Executable::compile_loop_body(&arrayjit_lower::fuse(body), opts, nc, nk)?;
                let in_place = (0..nk)
                    .map(|k| {
                        let both = |e: &Executable| e.updates_in_place(nc + k, k);
                        both(&body) && unrolled.as_ref().is_none_or(|(e, _)| both(e))
                    })
                    .collect();
                ControlStep::Scan(Box::new(ScanStep {
                    body,
                    unrolled,
                    in_place,
                    num_consts: nc,
                    length: *length,
                    reverse: *reverse,
                    carry_bytes: ins[nc..nc + nk].iter().map(bytes_of).collect(),
                    x_bytes: ins[nc + nk..].iter().map(bytes_of).collect(),
                    y_bytes: outs[nk..].iter().map(bytes_of).collect(),
                }))
            }
            Control::While { cond, body: program, cond_consts, body_consts } => {
                let body = compile_body(program, opts)?;
                let carry_bytes: Vec<usize> = program.out_avals().iter().map(bytes_of).collect();
                let in_place = (0..carry_bytes.len()).map(|k| body.updates_in_place(body_consts + k, k)).collect();
                ControlStep::While(Box::new(WhileStep {
                    cond: compile_body(cond, opts)?,
                    body,
                    cond_consts: *cond_consts,
                    body_consts: *body_consts,
                    carry_bytes,
                    in_place,
                }))
            }
            Control::Cond { branches } => {
                ControlStep::Cond(branches.iter().map(|b| compile_body(b, opts)).collect::<Result<_, _>>()?)
            }
        })
    }

    /// The compiled sub-programs, each with a name for listings.
    pub(crate) fn executables(&self) -> Vec<(String, &Executable)> {
        match self {
            ControlStep::Scan(s) => {
                let mut v = vec![("scan body".to_string(), &s.body)];
                if let Some((u, n)) = &s.unrolled {
                    v.push((format!("scan body unrolled {n} times"), u));
                }
                v
            }
            ControlStep::While(w) => vec![("while condition".into(), &w.cond), ("while body".into(), &w.body)],
            ControlStep::Cond(bs) => bs.iter().enumerate().map(|(i, b)| (format!("cond branch {i}"), b)).collect(),
            ControlStep::Call(b) => vec![("call body".into(), &**b)],
        }
    }

    /// A scan's body (`None` for other steps).
    pub(crate) fn scan_body(&self) -> Option<&Executable> {
        match self {
            ControlStep::Scan(s) => Some(&s.body),
            _ => None,
        }
    }

    /// Which carries a loop updates in place (`None` for other steps).
    pub(crate) fn carries_in_place(&self) -> Option<&[bool]> {
        match self {
            ControlStep::Scan(s) => Some(&s.in_place),
            ControlStep::While(w) => Some(&w.in_place),
            _ => None,
        }
    }

    /// The memory the step keeps between calls.
    pub(crate) fn memory(&self) -> LoopMemory {
        // A carry updated in place needs no second buffer.
        let carries = |bytes: &[usize], in_place: &[bool]| {
            bytes.iter().zip(in_place).map(|(&b, &here)| vec![0u64; if here { 0 } else { b.div_ceil(8) }]).collect()
        };
        match self {
            ControlStep::Scan(s) => LoopMemory {
                carries: carries(&s.carry_bytes, &s.in_place),
                arenas: std::iter::once(&s.body)
                    .chain(s.unrolled.as_ref().map(|(e, _)| e))
                    .map(Executable::new_arena)
                    .collect(),
                ..LoopMemory::default()
            },
            ControlStep::While(w) => LoopMemory {
                carries: carries(&w.carry_bytes, &w.in_place),
                arenas: vec![w.cond.new_arena(), w.body.new_arena()],
                ..LoopMemory::default()
            },
            ControlStep::Cond(bs) => {
                LoopMemory { arenas: bs.iter().map(Executable::new_arena).collect(), ..LoopMemory::default() }
            }
            ControlStep::Call(e) => LoopMemory { arenas: vec![e.new_arena()], ..LoopMemory::default() },
        }
    }

    /// Runs the step on the operands `ins` into the outputs `outs`.
    ///
    /// # Safety
    /// Each pointer must address a live buffer of the type the primitive
    /// gives it (checked by its shape rule when the schedule was built), and
    /// no output may overlap an operand.
    pub(crate) unsafe fn run(&self, ins: &[*mut u8], outs: &[*mut u8], mem: &mut LoopMemory) -> Result<(), CpuError> {
        // SAFETY (for the whole function): forwarded from the caller; every
        // pointer computed below stays inside the buffer it is derived from
        // (slice `i < length` of a stacked buffer of `length` slices), and a
        // body writes a buffer it reads only where `run_raw` allows it: a
        // carry updated in place (`Executable::updates_in_place`); the other
        // carries alternate between two distinct buffers, ys go to distinct
        // slices.
        unsafe {
            match self {
                ControlStep::Scan(s) => s.run(ins, outs, mem),
                ControlStep::While(w) => w.run(ins, outs, mem),
                ControlStep::Cond(branches) => {
                    let (index, ops) = ins.split_first().ok_or_else(|| internal("a conditional without an index"))?;
                    let i = (*(*index as *const i32)).clamp(0, branches.len() as i32 - 1) as usize;
                    mem.args.clear();
                    mem.args.extend(ops.iter().map(|p| *p as *const u8));
                    let LoopMemory { arenas, args, ptrs, outs: scratch, .. } = mem;
                    branches[i].run_raw(args, outs, &mut arenas[i], scratch, ptrs)
                }
                ControlStep::Call(body) => {
                    mem.args.clear();
                    mem.args.extend(ins.iter().map(|p| *p as *const u8));
                    let LoopMemory { arenas, args, ptrs, outs: scratch, .. } = mem;
                    body.run_raw(args, outs, &mut arenas[0], scratch, ptrs)
                }
            }
        }
    }
}

fn internal(message: &str) -> CpuError {
    CpuError::Step { op: "control", message: message.into() }
}

impl ScanStep {
    unsafe fn run(&self, ins: &[*mut u8], outs: &[*mut u8], mem: &mut LoopMemory) -> Result<(), CpuError> {
        let nk = self.carry_bytes.len();
        let init = &ins[self.num_consts..self.num_consts + nk];
        let length = self.length;
        if length == 0 {
            for ((&src, &dst), &n) in init.iter().zip(outs).zip(&self.carry_bytes) {
                // SAFETY: both address a carry of `n` bytes; they are distinct buffers.
                unsafe { std::ptr::copy_nonoverlapping(src, dst, n) };
            }
            return Ok(());
        }
        let (passes, per) = match &self.unrolled {
            Some((_, u)) => (length / u, *u),
            None => (0, 1),
        };
        let runs = passes + (length - passes * per);
        if let (None, Some(ov)) = (&self.unrolled, self.body.overlap()) {
            if runs > 1 && crate::parallel::threads() > 1 {
                // SAFETY: as below.
                return unsafe { self.run_overlapped(ov, ins, outs, mem) };
            }
        }
        let LoopMemory { carries, arenas, args, dests, ptrs, outs: scratch, .. } = mem;
        let mut t = 0;
        for r in 0..runs {
            let (exe, arena, n) = match (&self.unrolled, r < passes) {
                (Some((e, u)), true) => (e, &mut arenas[1], *u),
                _ => (&self.body, &mut arenas[0], 1),
            };
            self.tables(ins, outs, carries, (r, runs), t..t + n, args, dests);
            // SAFETY: see `ControlStep::run`; a carry's destination is its
            // argument only where both bodies update it in place.
            unsafe { exe.run_raw(args, dests, arena, scratch, ptrs)? };
            t += n;
        }
        Ok(())
    }

    /// The arguments and destinations of run `r` of `runs`, which covers
    /// iterations `iters`: the last run writes the step's outputs, and runs
    /// alternate between those and the second buffers `carries`, except
    /// for carries updated in place.
    #[allow(clippy::too_many_arguments)]
    fn tables(
        &self,
        ins: &[*mut u8],
        outs: &[*mut u8],
        carries: &mut [Vec<u64>],
        (r, runs): (usize, usize),
        iters: std::ops::Range<usize>,
        args: &mut Vec<*const u8>,
        dests: &mut Vec<*mut u8>,
    ) {
        let nc = self.num_consts;
        let nk = self.carry_bytes.len();
        let (consts, rest) = ins.split_at(nc);
        let (init, xs) = rest.split_at(nk);
        let (finals, ys) = outs.split_at(nk);
        let to_out = (runs - 1 - r) % 2 == 0;
        args.clear();
        args.extend(consts.iter().map(|p| *p as *const u8));
        for (k, &init) in init.iter().enumerate() {
            args.push(if r == 0 {
                init as *const u8
            } else if to_out && !self.in_place[k] {
                carries[k].as_ptr() as *const u8
            } else {
                finals[k] as *const u8
            });
        }
        dests.clear();
        for (k, &fin) in finals.iter().enumerate() {
            dests.push(if to_out || self.in_place[k] { fin } else { carries[k].as_mut_ptr() as *mut u8 });
        }
        for t in iters {
            let i = if self.reverse { self.length - 1 - t } else { t };
            args.extend(xs.iter().zip(&self.x_bytes).map(|(&x, &b)| x.wrapping_add(i * b) as *const u8));
            dests.extend(ys.iter().zip(&self.y_bytes).map(|(&y, &b)| y.wrapping_add(i * b)));
        }
    }

    /// The loop with each iteration's tail run beside the next one's head
    /// (see [`Overlap`]): iteration `t` runs its head beside the tail of
    /// `t - 1`, then the steps in between; the last tail runs alone.
    ///
    /// # Safety
    /// As for [`ControlStep::run`], with `length > 1`.
    unsafe fn run_overlapped(
        &self,
        ov: Overlap,
        ins: &[*mut u8],
        outs: &[*mut u8],
        mem: &mut LoopMemory,
    ) -> Result<(), CpuError> {
        let LoopMemory { carries, arenas, ptrs, .. } = mem;
        let arena = &mut arenas[0];
        let body = &self.body;
        let (mut prev, mut cur) = (RawTables::default(), RawTables::default());
        let mut scratch = body.overlap_scratch(ov)?;
        for t in 0..self.length {
            self.tables(ins, outs, carries, (t, self.length), t..t + 1, &mut cur.args, &mut cur.dests);
            body.raw_outs(&cur.dests, &mut cur.outs);
            if t == 0 {
                body.run_step_range(0..ov.head, &cur.args, &cur.outs, arena, ptrs)?;
            } else {
                // SAFETY: `prev` is the run before `cur`, done up to its tail.
                unsafe { body.run_tail_beside_head(ov, &prev, &cur, arena, &mut scratch)? };
            }
            body.run_step_range(ov.head..ov.tail, &cur.args, &cur.outs, arena, ptrs)?;
            std::mem::swap(&mut prev, &mut cur);
        }
        body.run_step_range(ov.tail..body.schedule.steps.len(), &prev.args, &prev.outs, arena, ptrs)?;
        // SAFETY: the last run's steps have all run.
        unsafe { body.finish_raw(&prev.args, &prev.dests) };
        Ok(())
    }
}

impl WhileStep {
    unsafe fn run(&self, ins: &[*mut u8], outs: &[*mut u8], mem: &mut LoopMemory) -> Result<(), CpuError> {
        let (cc, rest) = ins.split_at(self.cond_consts);
        let (bc, init) = rest.split_at(self.body_consts);
        let LoopMemory { carries, arenas, args, dests, ptrs, outs: scratch, flag } = mem;
        let (cond_arena, rest) = arenas.split_at_mut(1);
        // Where the carry is now: 0 the initial operands, 1 the outputs, 2 the
        // temporaries; a carry updated in place is in the outputs from the
        // first iteration's result on.
        let mut at = 0;
        let carry = |at: usize, k: usize, carries: &mut [Vec<u64>]| -> *mut u8 {
            match at {
                0 => init[k],
                _ if self.in_place[k] => outs[k],
                1 => outs[k],
                _ => carries[k].as_mut_ptr() as *mut u8,
            }
        };
        loop {
            args.clear();
            args.extend(cc.iter().map(|p| *p as *const u8));
            for k in 0..init.len() {
                args.push(carry(at, k, carries));
            }
            dests.clear();
            dests.push(flag.as_mut_ptr() as *mut u8);
            // SAFETY: see `ControlStep::run`; the flag holds one bool.
            unsafe { self.cond.run_raw(args, dests, &mut cond_arena[0], scratch, ptrs)? };
            if flag[0] as u8 & 1 == 0 {
                break;
            }
            let next = if at == 1 { 2 } else { 1 };
            args.clear();
            args.extend(bc.iter().map(|p| *p as *const u8));
            for k in 0..init.len() {
                args.push(carry(at, k, carries));
            }
            dests.clear();
            for k in 0..init.len() {
                dests.push(carry(next, k, carries));
            }
            // SAFETY: see `ControlStep::run`; a carry's destination is its
            // argument only where the body updates it in place.
            unsafe { self.body.run_raw(args, dests, &mut rest[0], scratch, ptrs)? };
            at = next;
        }
        for (k, &n) in self.carry_bytes.iter().enumerate() {
            let src = carry(at, k, carries);
            if src != outs[k] {
                // SAFETY: distinct buffers of `n` bytes each.
                unsafe { std::ptr::copy_nonoverlapping(src, outs[k], n) };
            }
        }
        Ok(())
    }
}

/// The body of `u` consecutive iterations: inputs are the constants, the
/// carries, then each iteration's x slices in turn; outputs the carries,
/// then each iteration's y slices in turn.
fn unroll_body(body: &Program, nc: usize, nk: usize, u: usize) -> Program {
    let ins = body.in_avals();
    let mut b = ProgramBuilder::new();
    let consts: Vec<Atom> = ins[..nc].iter().map(|a| b.add_input(a.clone()).into()).collect();
    let mut carry: Vec<Atom> = ins[nc..nc + nk].iter().map(|a| b.add_input(a.clone()).into()).collect();
    let xs: Vec<Vec<Atom>> =
        (0..u).map(|_| ins[nc + nk..].iter().map(|a| b.add_input(a.clone()).into()).collect()).collect();
    let mut ys = Vec::new();
    for x in xs {
        let mut args = consts.clone();
        args.extend(carry.iter().copied());
        args.extend(x);
        let mut outs = b.inline(body, &args);
        ys.extend(outs.split_off(nk));
        carry = outs;
    }
    carry.extend(ys);
    b.finish(carry)
}
