//! Executables: a schedule whose fused kernels are compiled into one JIT
//! module, with a memory plan, run on host arrays.
//!
//! Temporaries live in an arena of slots assigned by liveness (a slot is
//! reused once every reader of its previous tenant has run), kept between
//! calls: a repeated call allocates only its outputs. Matrix products run
//! planned faer GEMMs straight on the arena; the other library steps (the
//! factorizations, and arg-reductions in a schedule fused without the
//! optimisation passes, which expand them) copy their operands out and run
//! on host arrays.
//!
//! ```
//! use arrayjit_cpu::{CompileOptions, Executable};
//! use arrayjit_ir::prim::{Elementwise, Reduction};
//! use arrayjit_ir::{AVal, DType, Data, HostArray, Loc, ProgramBuilder};
//!
//! // sum(exp(x)) over a vector of 10 f32.
//! let mut b = ProgramBuilder::new();
//! let x = b.add_input(AVal::new(DType::F32, [10]));
//! let e = b.add_eqn(Elementwise::Exp.into(), vec![x.into()], vec![AVal::new(DType::F32, [10])], Loc::default());
//! let s = b.add_eqn(
//!     Reduction::Sum { axes: vec![0] }.into(),
//!     vec![e[0].into()],
//!     vec![AVal::scalar(DType::F32)],
//!     Loc::default(),
//! );
//! let p = b.finish(vec![s[0].into()]);
//! let exe = Executable::compile(&arrayjit_lower::fuse(&p), &CompileOptions::default())?;
//! let out = exe.run(&[&HostArray::new([10], Data::F32(vec![0.0; 10]))?])?;
//! assert_eq!(out[0].as_scalar().map(|s| s.as_f64()), Some(10.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::codegen::{define_kernel, CodegenError, CompiledModule, KernelFn, KernelModule, KernelOptions};
use crate::control::{ControlStep, LoopMemory};
use crate::linalg::{DotPlan, LinalgError};
use crate::parallel::Table;
use crate::rows::{dot_rows, gram_rows, RowFusion};
use crate::steps::{dot, read_host, run_prim, FactorStep};
use arrayjit_ir::error::list_avals;
use arrayjit_ir::prim::Linalg;
use arrayjit_ir::{AVal, DType, HostArray, Prim};
use arrayjit_lower::{
    reads_only_at_own_point, BufferId, BufferKind, Kernel, OutputKind, OutputSource, ReduceOp, Schedule, Step,
};
use std::sync::{Arc, Mutex};

mod overlap;
pub(crate) use overlap::{Overlap, RawTables};

/// How to compile.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Keep each kernel's Cranelift IR, as Cranelift optimised it, and its machine code, as text
    /// (for dumps and `clif`).
    pub keep_clif: bool,
    /// Run a matrix product whose only reader is the next kernel together
    /// with it, by row blocks (on by default; off to compare).
    pub row_fusion: bool,
    /// Compute `exp`, `log`, `tanh`, `logistic`, `log1p`, `expm1`, `sin` and
    /// `cos` over whole rows with native functions at the CPU's full vector
    /// width, where it has vectors wider than Cranelift's (on by default; off
    /// to compare; same results either way).
    pub row_functions: bool,
    /// Compile kernels over rows (or over one axis) whose every value is f32
    /// (or every value f64) to AVX-512 machine code of our own where the CPU
    /// has AVX-512, instead of Cranelift's 128-bit vectors: arithmetic,
    /// comparisons, selects, the row functions, column reductions and
    /// reductions along rows (on by default; off to compare; same results
    /// either way).
    pub wide_vectors: bool,
}

impl Default for CompileOptions {
    fn default() -> CompileOptions {
        CompileOptions { keep_clif: false, row_fusion: true, row_functions: true, wide_vectors: true }
    }
}

/// Why compiling or running an executable failed.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error(transparent)]
    Codegen(#[from] CodegenError),
    /// The arguments do not match the executable's signature.
    #[error("the compiled function takes {want} but was given {got}")]
    Signature { want: String, got: String },
    /// A library step failed.
    #[error("{op}: {message}")]
    Step { op: &'static str, message: String },
    #[error(transparent)]
    Linalg(#[from] LinalgError),
}

fn internal(message: String) -> CpuError {
    CpuError::Step { op: "executable", message }
}

/// Where a buffer lives while the executable runs.
#[derive(Clone, Debug)]
pub(crate) enum Place {
    Arg(usize),
    Const(Arc<HostArray>),
    /// A slot of the arena, reused by liveness.
    Slot(usize),
    /// A freshly allocated output array (one per program output buffer).
    Output(usize),
}

/// A compiled kernel step: its function, the blocks of its outermost axis,
/// and, per output, how to combine per-block partial results when the
/// output reduces over that axis.
struct KernelStep {
    func: usize,
    /// Size of the outermost axis after coalescing.
    outer: usize,
    ranges: Vec<(usize, usize)>,
    partial: Vec<Option<(ReduceOp, DType, usize)>>,
    /// Run together with the product before it (see `rows`).
    fused: bool,
    /// Which inputs each output may be written over (see [`KernelCode`](crate::codegen::KernelCode)).
    reads_first: Vec<Vec<bool>>,
    /// Nodes computed by row functions (see [`CompileOptions::row_functions`]).
    row_calls: usize,
}

impl KernelStep {
    /// Partial buffers needed: one per extra block per outer-reduced output.
    fn partial_sizes(&self) -> Vec<usize> {
        let extra = self.ranges.len().saturating_sub(1);
        self.partial
            .iter()
            .flatten()
            .flat_map(|&(_, d, n)| std::iter::repeat_n((n * d.size_bytes()).div_ceil(8), extra))
            .collect()
    }

    /// One pointer table per block: `base` (inputs, then outputs), except
    /// that blocks after the first write outer-reduced outputs into their
    /// own partial buffers.
    fn block_tables(&self, base: &[*mut u8], n_in: usize, partials: &mut [Vec<u64>]) -> Vec<Table> {
        let blocks = self.ranges.len();
        let extra = blocks.saturating_sub(1);
        (0..blocks)
            .map(|blk| {
                let mut t = base.to_vec();
                if blk > 0 {
                    for (j, (o, _)) in self.partial.iter().enumerate().filter(|(_, p)| p.is_some()).enumerate() {
                        t[n_in + o] = partials[j * extra + blk - 1].as_mut_ptr() as *mut u8;
                    }
                }
                Table(t)
            })
            .collect()
    }

    /// Folds the partial results of blocks after the first into the
    /// outer-reduced outputs, in block order.
    ///
    /// # Safety
    /// `base` must be the table the blocks ran with: each outer-reduced
    /// output there holds its `n` elements, as each partial buffer does.
    unsafe fn combine_partials(&self, base: &[*mut u8], n_in: usize, partials: &[Vec<u64>]) {
        let extra = self.ranges.len().saturating_sub(1);
        for (j, (o, &(op, dtype, n))) in
            self.partial.iter().enumerate().filter_map(|(o, p)| p.as_ref().map(|p| (o, p))).enumerate()
        {
            for blk in 1..self.ranges.len() {
                let src = partials[j * extra + blk - 1].as_ptr() as *const u8;
                // SAFETY: guaranteed by the caller.
                unsafe { crate::parallel::combine(op, dtype, base[n_in + o], src, n) };
            }
        }
    }
}

/// How a step runs.
enum Action {
    Kernel(KernelStep),
    Dot(Box<DotPlan>),
    /// A product run by row blocks together with the kernel after it.
    DotRows(Box<DotPlan>, RowFusion),
    /// A Gram product summed by row blocks with the kernel before it (see
    /// [`GramTail`](crate::rows::GramTail)); nothing is left to run at its step.
    GramRows(Box<DotPlan>),
    /// A loop or a conditional, with its compiled sub-programs.
    Control(Box<ControlStep>),
    /// A factorization on the buffers in place.
    Factor(FactorStep),
    Host,
}

/// Reusable temporary memory: one 8-byte-aligned block per slot, one scratch
/// block per matrix product, and the partial results of blocked reductions.
#[derive(Default)]
pub(crate) struct Arena {
    slots: Vec<Vec<u64>>,
    scratch: Vec<Vec<u64>>,
    partials: Vec<Vec<Vec<u64>>>,
    /// One row-block buffer per worker, for products fused by rows.
    row_blocks: Vec<Vec<u64>>,
    /// Each row block's share of a fused Gram product.
    gram_blocks: Vec<u64>,
    /// The memory of each loop or conditional step.
    control: Vec<Option<LoopMemory>>,
    /// The scratch of each factorization step.
    factor: Vec<Option<crate::linalg::MemBuffer>>,
}

/// An argument of [`Executable::run_with`]: borrowed, or handed over so that
/// its memory may hold an output (donation).
#[derive(Debug)]
pub enum Arg<'a> {
    Borrowed(&'a HostArray),
    Donated(HostArray),
}

impl Arg<'_> {
    fn host(&self) -> &HostArray {
        match self {
            Arg::Borrowed(h) => h,
            Arg::Donated(h) => h,
        }
    }
}

/// A compiled schedule.
pub struct Executable {
    pub(crate) schedule: Schedule,
    module: CompiledModule,
    actions: Vec<Action>,
    pub(crate) places: Vec<Place>,
    /// Bytes of each slot.
    slot_bytes: Vec<usize>,
    /// Elements of scratch per step (0 when none).
    scratch_len: Vec<usize>,
    /// The buffer of each output array.
    pub(crate) output_buffers: Vec<usize>,
    /// How a raw run writes each program output (see `raw`).
    pub(crate) raw_outputs: Vec<crate::raw::RawOut>,
    /// For each output array, the argument whose memory may hold it when
    /// donated (see [`plan_donations`]).
    donors: Vec<Option<usize>>,
    in_avals: Vec<AVal>,
    clif: Vec<String>,
    lanes: Vec<u32>,
    arena: Mutex<Option<Arena>>,
    /// Names the executable in step profiles (`ARRAYJIT_PROFILE=1`).
    id: usize,
    /// For a loop body: how an iteration's tail may run beside the next
    /// iteration's head.
    overlap: Option<Overlap>,
}

impl std::fmt::Debug for Executable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Executable({} steps, {} kernels, {} arena slots)",
            self.schedule.steps.len(),
            self.module.fns.len(),
            self.slot_bytes.len()
        )
    }
}

/// Bytes of a dense buffer of type `a`.
pub(crate) fn bytes_of(a: &AVal) -> usize {
    // Every buffer's size was checked when the executable was compiled.
    a.bytes().unwrap_or(usize::MAX)
}

/// Assigns every temporary that is not a program output to an arena slot:
/// a slot is free again after the last step that reads its tenant. A product
/// in `fused` runs together with the step after it, so its operands count as
/// read by that step too.
/// The slots of what the first `pinned` steps write are never reused (see
/// [`Overlap`]: those steps run beside the end of the previous run).
fn plan_memory(s: &Schedule, is_output: &[bool], fused: &[usize], pinned: usize) -> (Vec<Option<usize>>, Vec<usize>) {
    let n = s.buffers.len();
    let mut last_read = vec![None; n];
    for (si, step) in s.steps.iter().enumerate() {
        let at = if fused.contains(&si) { si + 1 } else { si };
        for &b in step.inputs() {
            last_read[b] = Some(last_read[b].map_or(at, |r: usize| r.max(at)));
        }
    }
    let mut slot_of = vec![None; n];
    let mut slot_bytes: Vec<usize> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    // Slots to release after each step.
    let mut release: Vec<Vec<usize>> = vec![Vec::new(); s.steps.len()];
    for (si, step) in s.steps.iter().enumerate() {
        for &b in step.outputs() {
            if !matches!(s.buffers[b].kind, BufferKind::Temp) || is_output[b] || slot_of[b].is_some() {
                continue;
            }
            let need = bytes_of(&s.buffers[b].aval);
            // Best fit among free slots; a new slot when none is large enough
            // (a free slot that is too small grows instead when it is the largest).
            let fit =
                free.iter().enumerate().filter(|(_, &sl)| slot_bytes[sl] >= need).min_by_key(|(_, &sl)| slot_bytes[sl]);
            let slot = match fit {
                Some((i, _)) => free.swap_remove(i),
                None => match free.iter().enumerate().max_by_key(|(_, &sl)| slot_bytes[sl]) {
                    Some((i, _)) => {
                        let sl = free.swap_remove(i);
                        slot_bytes[sl] = need;
                        sl
                    }
                    None => {
                        slot_bytes.push(need);
                        slot_bytes.len() - 1
                    }
                },
            };
            slot_of[b] = Some(slot);
            if si < pinned {
                continue;
            }
            // A value nobody reads is dead right after its step.
            release[last_read[b].unwrap_or(si).max(si)].push(slot);
        }
        free.append(&mut release[si]);
    }
    (slot_of, slot_bytes)
}

/// Which argument may give its memory to which output: the output is stored
/// by a kernel, elementwise at the kernel's own point; the argument has the
/// output's type, is not itself a program output, is read by no later step,
/// and that kernel reads it only at its own point (each element is read
/// before the same element is written, in every block and vector lane).
fn plan_donations(s: &Schedule, actions: &[Action], output_buffers: &[usize]) -> Vec<Option<usize>> {
    let mut last_read = vec![None; s.buffers.len()];
    for (si, step) in s.steps.iter().enumerate() {
        for &b in step.inputs() {
            last_read[b] = Some(si);
        }
    }
    let returned: Vec<usize> = s
        .outputs
        .iter()
        .filter_map(|o| match o {
            OutputSource::Buffer(b) => Some(*b),
            OutputSource::Literal(_) => None,
        })
        .collect();
    let mut taken = vec![false; s.buffers.len()];
    output_buffers
        .iter()
        .map(|&ob| {
            let (si, kernel, inputs, j) = s.steps.iter().enumerate().find_map(|(si, st)| match st {
                Step::Kernel { kernel, inputs, outputs } => {
                    outputs.iter().position(|&o| o == ob).map(|j| (si, kernel, inputs, j))
                }
                Step::Prim { .. } => None,
            })?;
            if kernel.outputs[j].kind != OutputKind::Store {
                return None;
            }
            let donor = s.buffers.iter().enumerate().find(|(b, buf)| {
                matches!(buf.kind, BufferKind::Input(_))
                    && !taken[*b]
                    && buf.aval == s.buffers[ob].aval
                    && !returned.contains(b)
                    && last_read[*b] == Some(si)
                    && matches!(&actions[si], Action::Kernel(ks) if overwrites_as_it_reads(kernel, inputs, ks, j, *b))
            })?;
            taken[donor.0] = true;
            match donor.1.kind {
                BufferKind::Input(i) => Some(i),
                _ => None,
            }
        })
        .collect()
}

/// Whether `kernel` (its step's `inputs`, compiled as `ks`) reads buffer `b`
/// only at its own point and each time before storing output `j` there:
/// output `j` may then be written over `b`.
fn overwrites_as_it_reads(kernel: &Kernel, inputs: &[BufferId], ks: &KernelStep, j: usize, b: BufferId) -> bool {
    inputs.iter().enumerate().filter(|(_, &ib)| ib == b).all(|(k, _)| {
        reads_only_at_own_point(&kernel.nodes, k, &kernel.domain) && ks.reads_first[j].get(k) == Some(&true)
    })
}

impl Executable {
    /// Compiles every kernel of `s` into one module and plans its memory.
    /// The steps that read only constants run here, once (see
    /// [`Schedule::constant_part`]); their results are constants of the
    /// executable.
    pub fn compile(s: &Schedule, opts: &CompileOptions) -> Result<Executable, CpuError> {
        Executable::compile_as(s, opts, None)
    }

    /// Compiles the body of a loop whose first `consts` arguments are
    /// constants and next `carries` arguments (and first `carries` outputs)
    /// its carries: as [`compile`](Executable::compile), and planned for
    /// running one iteration's tail beside the next one's head where that
    /// pays (see [`Overlap`]).
    pub(crate) fn compile_loop_body(
        s: &Schedule,
        opts: &CompileOptions,
        consts: usize,
        carries: usize,
    ) -> Result<Executable, CpuError> {
        Executable::compile_as(s, opts, Some((consts, carries)))
    }

    fn compile_as(s: &Schedule, opts: &CompileOptions, body: Option<(usize, usize)>) -> Result<Executable, CpuError> {
        match s.constant_part() {
            Some(part) => {
                let values = Executable::compile_steps(&part.schedule, opts, None)?.run(&[])?;
                Executable::compile_steps(&part.fold_into(s, values), opts, body)
            }
            None => Executable::compile_steps(s, opts, body),
        }
    }

    /// Compiles every step of `s`; `body` as in [`compile_as`](Executable::compile_as).
    fn compile_steps(
        s: &Schedule,
        opts: &CompileOptions,
        body: Option<(usize, usize)>,
    ) -> Result<Executable, CpuError> {
        if let Some((b, buf)) = s.buffers.iter().enumerate().find(|(_, b)| b.aval.bytes().is_none()) {
            return Err(internal(format!("buffer {b}, {}, holds more bytes than fit in memory", buf.aval)));
        }
        let sunk = if opts.row_fusion { crate::rows::sink_products(s) } else { None };
        let s = sunk.as_ref().unwrap_or(s);
        crate::linalg::init();
        let mut m = KernelModule::new()?;
        let mut actions = Vec::with_capacity(s.steps.len());
        let mut scratch_len = Vec::with_capacity(s.steps.len());
        let mut lanes = Vec::new();
        for (si, step) in s.steps.iter().enumerate() {
            let mut scratch = 0;
            match step {
                Step::Kernel { kernel, inputs, outputs } => {
                    if kernel.outputs.len() != outputs.len() || kernel.inputs.len() != inputs.len() {
                        return Err(internal(format!("step {si}: the kernel's arity does not match the step")));
                    }
                    for (k, (a, &b)) in kernel.inputs.iter().zip(inputs).enumerate() {
                        if *a != s.buffers[b].aval {
                            return Err(internal(format!(
                                "step {si}: kernel input {k} is {a} but buffer {b} is {}",
                                s.buffers[b].aval
                            )));
                        }
                    }
                    let kopts = KernelOptions {
                        keep_clif: opts.keep_clif,
                        row_functions: opts.row_functions,
                        wide_vectors: opts.wide_vectors,
                    };
                    let code = define_kernel(&mut m, kernel, &kopts)?;
                    let ranges =
                        crate::parallel::blocks(code.outer, kernel.points(), crate::parallel::point_cost(kernel));
                    let partial = kernel
                        .outputs
                        .iter()
                        .zip(&code.reduces_outer)
                        .map(|(o, &outer)| match (&o.kind, outer) {
                            (OutputKind::Reduce { op, .. }, true) => Some((*op, o.aval.dtype, o.aval.numel())),
                            _ => None,
                        })
                        .collect();
                    actions.push(Action::Kernel(KernelStep {
                        func: lanes.len(),
                        outer: code.outer,
                        ranges,
                        partial,
                        fused: false,
                        row_calls: code.row_calls,
                        reads_first: code.reads_first,
                    }));
                    lanes.push(code.lanes);
                }
                Step::Prim { prim: Prim::Linalg(Linalg::DotGeneral(dims)), inputs, .. }
                    if inputs.len() == 2 && s.buffers[inputs[0]].aval.dtype != DType::Bool =>
                {
                    let (l, r) = (&s.buffers[inputs[0]].aval, &s.buffers[inputs[1]].aval);
                    let plan = DotPlan::new(dims, l, r, inputs[0] == inputs[1])?;
                    scratch = plan.scratch_len();
                    actions.push(Action::Dot(Box::new(plan)));
                }
                Step::Prim { prim: Prim::Control(c), .. } => {
                    actions.push(Action::Control(Box::new(ControlStep::compile(c, opts)?)))
                }
                Step::Prim { prim, inputs, outputs } => {
                    let avals: Vec<AVal> = inputs.iter().map(|&b| s.buffers[b].aval.clone()).collect();
                    match FactorStep::plan(prim, &avals) {
                        Some(f) if outputs.len() == 1 => actions.push(Action::Factor(f)),
                        _ => actions.push(Action::Host),
                    }
                }
            }
            scratch_len.push(scratch);
        }
        let mut module = m.finish()?;
        let clif = std::mem::take(&mut module.texts);
        let mut is_output = vec![false; s.buffers.len()];
        let mut output_buffers = Vec::new();
        for o in &s.outputs {
            if let OutputSource::Buffer(b) = o {
                if matches!(s.buffers[*b].kind, BufferKind::Temp) && !is_output[*b] {
                    is_output[*b] = true;
                    output_buffers.push(*b);
                }
            }
        }
        // Products whose only reader is the next kernel run with it by row blocks.
        let mut fused_steps = Vec::new();
        let fusable = if opts.row_fusion { actions.len().saturating_sub(1) } else { 0 };
        for d in 0..fusable {
            let (head, tail) = actions.split_at_mut(d + 1);
            let (Action::Dot(plan), Action::Kernel(k)) = (&head[d], &mut tail[0]) else { continue };
            let Some(mut f) = crate::rows::plan(s, d, plan, &is_output, k.outer) else { continue };
            let (_, n, _, _) = plan.gemm_dims();
            let unit = k.outer / n;
            k.ranges = f.rows.iter().map(|&(r0, r1)| (r0 * unit, r1 * unit)).collect();
            k.fused = true;
            fused_steps.push(d);
            let plan = match std::mem::replace(&mut head[d], Action::Host) {
                Action::Dot(plan) => plan,
                _ => return Err(internal(format!("step {d} is no longer a product"))),
            };
            if let Some(Action::Dot(gram)) = tail.get(1) {
                f.gram = crate::rows::gram_tail(s, &f, gram, n);
            }
            if let Some(g) = &f.gram {
                let gram = match std::mem::replace(&mut tail[1], Action::Host) {
                    Action::Dot(gram) => gram,
                    _ => return Err(internal(format!("step {} is no longer a product", g.step))),
                };
                tail[1] = Action::GramRows(gram);
            }
            head[d] = Action::DotRows(plan, f);
        }
        let overlap = body.and_then(|(consts, carries)| overlap::plan(s, &actions, consts, carries));
        let pinned = overlap.map_or(0, |o| o.head);
        let (slot_of, slot_bytes) = plan_memory(s, &is_output, &fused_steps, pinned);
        let mut donors = plan_donations(s, &actions, &output_buffers);
        // A fused product reads its operands while the kernel writes: no donation from them.
        for &d in &fused_steps {
            for &b in s.steps[d].inputs() {
                if let BufferKind::Input(i) = s.buffers[b].kind {
                    donors.iter_mut().filter(|x| **x == Some(i)).for_each(|x| *x = None);
                }
            }
        }
        let places: Vec<Place> = s
            .buffers
            .iter()
            .enumerate()
            .map(|(b, buf)| match &buf.kind {
                BufferKind::Input(i) => Place::Arg(*i),
                BufferKind::Const(c) => Place::Const(c.clone()),
                BufferKind::Temp => match output_buffers.iter().position(|&o| o == b) {
                    Some(k) => Place::Output(k),
                    // A temporary that no step writes is never read either.
                    None => Place::Slot(slot_of[b].unwrap_or(0)),
                },
            })
            .collect();
        let raw_outputs = crate::raw::plan_outputs(s, &places, &output_buffers);
        Ok(Executable {
            schedule: s.clone(),
            module,
            actions,
            places,
            slot_bytes,
            scratch_len,
            raw_outputs,
            output_buffers,
            donors,
            in_avals: s.input_avals(),
            clif,
            lanes,
            arena: Mutex::new(None),
            id: crate::profile::next_id(),
            overlap,
        })
    }

    /// The schedule this executable runs.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The argument types.
    pub fn in_avals(&self) -> &[AVal] {
        &self.in_avals
    }

    /// Each kernel's Cranelift IR, then its machine code (empty unless compiled with `keep_clif`).
    pub fn clif(&self) -> &[String] {
        &self.clif
    }

    /// Every kernel's Cranelift IR as one text, the kernels of loop bodies,
    /// conditions and branches included (under a heading naming the step
    /// and the sub-program); empty unless compiled with `keep_clif`.
    pub fn clif_text(&self) -> String {
        let mut out = String::new();
        self.write_clif("", &mut out);
        out
    }

    fn write_clif(&self, prefix: &str, out: &mut String) {
        for (i, (text, lanes)) in self.clif.iter().zip(&self.lanes).enumerate() {
            out.push_str(&format!("; {prefix}kernel {i} ({lanes} lanes)\n{text}\n"));
        }
        for (si, a) in self.actions.iter().enumerate() {
            if let Action::Control(c) = a {
                for (name, exe) in c.executables() {
                    exe.write_clif(&format!("{prefix}step {si} {name}, "), out);
                }
            }
        }
    }

    /// Each kernel's vector width (1: scalar).
    pub fn lanes(&self) -> &[u32] {
        &self.lanes
    }

    /// How many matrix products run by row blocks together with the kernel
    /// that consumes them.
    pub fn fused_products(&self) -> usize {
        self.actions.iter().filter(|a| matches!(a, Action::DotRows(..))).count()
    }

    /// How many kernel nodes native row functions compute (see
    /// [`CompileOptions::row_functions`]).
    pub fn row_function_nodes(&self) -> usize {
        self.actions.iter().map(|a| if let Action::Kernel(k) = a { k.row_calls } else { 0 }).sum()
    }

    /// How many Gram products `XᵀX` are summed by row blocks with the kernel
    /// that writes `X` (after a product run with it, see [`fused_products`](Executable::fused_products)).
    pub fn fused_gram_products(&self) -> usize {
        self.actions.iter().filter(|a| matches!(a, Action::GramRows(..))).count()
    }

    /// For each `scan` and `while` step, in schedule order, which of its
    /// carries the body updates in place, in the step's output buffer, instead
    /// of alternating two buffers (see `Executable::updates_in_place`).
    pub fn loop_carries_in_place(&self) -> Vec<Vec<bool>> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Control(c) => c.carries_in_place().map(<[bool]>::to_vec),
                _ => None,
            })
            .collect()
    }

    /// For each `scan` step, in schedule order, `Some((h, t))` when the
    /// body's steps from `t` on (library steps) run beside the next
    /// iteration's first `h` steps (small kernels), else `None`.
    pub fn loop_overlaps(&self) -> Vec<Option<(usize, usize)>> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Control(c) => c.scan_body().map(|b| b.overlap().map(|o| (o.head, o.tail))),
                _ => None,
            })
            .collect()
    }

    /// Bytes of temporary memory the arena holds (after liveness reuse).
    pub fn arena_bytes(&self) -> usize {
        self.slot_bytes.iter().sum()
    }

    fn take_arena(&self) -> Arena {
        let kept = match self.arena.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        // A concurrent call that finds the arena in use gets its own.
        kept.unwrap_or_else(|| self.new_arena())
    }

    /// Fresh temporary memory for one run at a time.
    pub(crate) fn new_arena(&self) -> Arena {
        Arena {
            slots: self.slot_bytes.iter().map(|&b| vec![0u64; b.div_ceil(8)]).collect(),
            scratch: self.scratch_len.iter().map(|&n| vec![0u64; n]).collect(),
            row_blocks: Vec::new(),
            gram_blocks: Vec::new(),
            partials: self
                .actions
                .iter()
                .map(|a| match a {
                    Action::Kernel(k) => k.partial_sizes().into_iter().map(|w| vec![0u64; w]).collect(),
                    _ => Vec::new(),
                })
                .collect(),
            control: self
                .actions
                .iter()
                .map(|a| match a {
                    Action::Control(c) => Some(c.memory()),
                    _ => None,
                })
                .collect(),
            factor: self
                .actions
                .iter()
                .map(|a| match a {
                    Action::Factor(f) => Some(f.scratch()),
                    _ => None,
                })
                .collect(),
        }
    }

    fn put_arena(&self, a: Arena) {
        match self.arena.lock() {
            Ok(mut g) => *g = Some(a),
            Err(p) => *p.into_inner() = Some(a),
        }
    }

    /// Runs on `args`, which must match the signature exactly.
    pub fn run(&self, args: &[&HostArray]) -> Result<Vec<HostArray>, CpuError> {
        self.run_with(args.iter().map(|a| Arg::Borrowed(a)).collect())
    }

    /// Whether a raw run may write program output `output` into the memory
    /// of argument `input` (see [`run_raw`](Executable::run_raw)): a loop then
    /// updates that carry in place instead of alternating two buffers, and
    /// the stores land on the cache lines the loads just brought in instead of
    /// lines that must first be fetched from memory.
    ///
    /// It holds when one kernel stores the output, elementwise at its own
    /// point, and is the last step to read the argument, reading each element
    /// only where it writes the same element and before writing it; the
    /// argument has the output's type and is not itself an output. A product
    /// run by row blocks with that kernel may read the argument too, as its
    /// left operand with rows one after another: each block reads its own rows
    /// before the kernel overwrites them.
    pub(crate) fn updates_in_place(&self, input: usize, output: usize) -> bool {
        let s = &self.schedule;
        let Some(&OutputSource::Buffer(ob)) = s.outputs.get(output) else { return false };
        let named = |b: usize| s.outputs.iter().filter(|o| matches!(o, OutputSource::Buffer(x) if *x == b)).count();
        let Some(ib) = s.buffers.iter().position(|b| matches!(b.kind, BufferKind::Input(i) if i == input)) else {
            return false;
        };
        if !matches!(self.raw_outputs.get(output), Some(crate::raw::RawOut::Direct))
            || named(ob) != 1
            || named(ib) != 0
            || s.buffers[ib].aval != s.buffers[ob].aval
        {
            return false;
        }
        let Some(si) = s.steps.iter().position(|st| st.outputs().contains(&ob)) else { return false };
        let (Step::Kernel { kernel, inputs, outputs }, Action::Kernel(ks)) = (&s.steps[si], &self.actions[si]) else {
            return false;
        };
        let Some(j) = outputs.iter().position(|&o| o == ob) else { return false };
        if kernel.outputs[j].kind != OutputKind::Store || !overwrites_as_it_reads(kernel, inputs, ks, j, ib) {
            return false;
        }
        s.steps.iter().enumerate().filter(|(_, st)| st.inputs().contains(&ib)).all(|(r, st)| match &self.actions[r] {
            _ if r == si => true,
            // Its row `r` must be the row `r` the kernel overwrites: the
            // kernel covers `[n, cols]` at its own point (`rows::plan`) and
            // the carry has the output's type, so rows of `cols` elements,
            // one after another.
            Action::DotRows(plan, f) if f.consumer == si => {
                st.inputs().first() == Some(&ib)
                    && st.inputs().get(1) != Some(&ib)
                    && plan.lhs_cols() == f.cols
                    && plan.lhs_row_stride() == Some(f.cols)
            }
            // Any other reader runs, whole, before the kernel.
            _ => r < si,
        })
    }

    /// Which outputs a donated argument can become: `(argument, output)` pairs.
    pub fn donations(&self) -> Vec<(usize, usize)> {
        self.donors.iter().enumerate().filter_map(|(k, d)| d.map(|i| (i, k))).collect()
    }

    /// Runs on `args`; the memory of a donated argument holds an output
    /// where [`donations`](Executable::donations) allows it (and is dropped
    /// otherwise).
    pub fn run_with(&self, mut args: Vec<Arg<'_>>) -> Result<Vec<HostArray>, CpuError> {
        let got: Vec<AVal> = args.iter().map(|a| a.host().aval()).collect();
        if got != self.in_avals {
            return Err(CpuError::Signature { want: list_avals(&self.in_avals), got: list_avals(&got) });
        }
        let s = &self.schedule;
        // Heap addresses do not move when a donated array moves into the outputs.
        let arg_ptrs: Vec<*const u8> = args.iter().map(|a| a.host().as_ptr()).collect();
        let mut outs: Vec<Option<HostArray>> = vec![None; self.output_buffers.len()];
        for (k, donor) in self.donors.iter().enumerate() {
            if let Some(i) = *donor {
                if matches!(args[i], Arg::Donated(_)) {
                    let emptied = Arg::Donated(HostArray::scalar(arrayjit_ir::Scalar::Bool(false)));
                    if let Arg::Donated(h) = std::mem::replace(&mut args[i], emptied) {
                        outs[k] = Some(h);
                    }
                }
            }
        }
        let mut outs: Vec<HostArray> = outs
            .into_iter()
            .zip(&self.output_buffers)
            .map(|(o, &b)| o.unwrap_or_else(|| HostArray::for_overwrite(&s.buffers[b].aval)))
            .collect();
        let mut arena = self.take_arena();
        let out_ptrs: Vec<*mut u8> = outs.iter_mut().map(HostArray::as_mut_ptr).collect();
        let r = self.run_steps(&arg_ptrs, &out_ptrs, &mut arena, &mut Vec::with_capacity(16));
        self.put_arena(arena);
        r?;
        let mut taken: Vec<Option<HostArray>> = outs.into_iter().map(Some).collect();
        let mut uses = vec![0usize; taken.len()];
        for o in &s.outputs {
            if let OutputSource::Buffer(b) = o {
                if let Place::Output(k) = self.places[*b] {
                    uses[k] += 1;
                }
            }
        }
        s.outputs
            .iter()
            .map(|o| match o {
                OutputSource::Literal(x) => Ok(HostArray::scalar(*x)),
                OutputSource::Buffer(b) => match &self.places[*b] {
                    // An argument returned as is was never donated (see `plan_donations`).
                    Place::Arg(i) => Ok(args[*i].host().clone()),
                    Place::Const(c) => Ok((**c).clone()),
                    Place::Output(k) => {
                        uses[*k] -= 1;
                        let v = if uses[*k] == 0 { taken[*k].take() } else { taken[*k].clone() };
                        v.ok_or_else(|| internal(format!("output buffer {b} was taken twice")))
                    }
                    Place::Slot(_) => Err(internal(format!("output buffer {b} lives in the arena"))),
                },
            })
            .collect()
    }

    /// The address of buffer `b`.
    fn ptr(&self, b: usize, args: &[*const u8], outs: &[*mut u8], arena: &mut Arena) -> *mut u8 {
        match &self.places[b] {
            Place::Arg(i) => args[*i] as *mut u8,
            Place::Const(c) => c.as_ptr() as *mut u8,
            Place::Slot(sl) => arena.slots[*sl].as_mut_ptr() as *mut u8,
            Place::Output(k) => outs[*k],
        }
    }

    /// Runs every step. `outs[k]` addresses output buffer `k`; `ptrs` is
    /// reused for each step's pointer table (no allocation per step).
    pub(crate) fn run_steps(
        &self,
        args: &[*const u8],
        outs: &[*mut u8],
        arena: &mut Arena,
        ptrs: &mut Vec<*mut u8>,
    ) -> Result<(), CpuError> {
        self.run_step_range(0..self.schedule.steps.len(), args, outs, arena, ptrs)
    }

    /// Runs steps `range`, as [`run_steps`](Executable::run_steps) does.
    pub(crate) fn run_step_range(
        &self,
        range: std::ops::Range<usize>,
        args: &[*const u8],
        outs: &[*mut u8],
        arena: &mut Arena,
        ptrs: &mut Vec<*mut u8>,
    ) -> Result<(), CpuError> {
        let timed = crate::profile::enabled();
        for si in range {
            let step = &self.schedule.steps[si];
            ptrs.clear();
            for &b in step.inputs().iter().chain(step.outputs()) {
                ptrs.push(self.ptr(b, args, outs, arena));
            }
            let start = timed.then(std::time::Instant::now);
            self.run_step(si, ptrs, args, outs, arena)?;
            if let Some(start) = start {
                crate::profile::record(|| self.label(si), start.elapsed());
            }
        }
        Ok(())
    }

    /// How step `si` appears in a step profile: the executable, the step,
    /// what runs and what it writes first.
    fn label(&self, si: usize) -> String {
        let step = &self.schedule.steps[si];
        let what = match (&self.actions[si], step) {
            (Action::Kernel(k), Step::Kernel { kernel, .. }) if k.fused => {
                format!("kernel over {:?} (run with the product before it)", kernel.domain)
            }
            (Action::Kernel(_), Step::Kernel { kernel, .. }) => {
                let n = kernel.outputs.len();
                format!("kernel over {:?} ({n} output{})", kernel.domain, if n == 1 { "" } else { "s" })
            }
            (Action::DotRows(_, f), _) if f.gram.is_some() => {
                "dot_general, the kernel after it and the Gram product of its output, by row blocks".to_string()
            }
            (Action::DotRows(..), _) => "dot_general and the kernel after it, by row blocks".to_string(),
            (Action::GramRows(_), _) => "dot_general (summed by row blocks with the kernel before it)".to_string(),
            (Action::Control(_), Step::Prim { prim, .. }) => format!("{} (all of it)", prim.name()),
            (_, Step::Prim { prim, .. }) => prim.name().to_string(),
            (_, Step::Kernel { .. }) => "kernel".to_string(),
        };
        let out = step.outputs().first().map(|&b| self.schedule.buffers[b].aval.to_string()).unwrap_or_default();
        format!("x{}.s{si} {what} -> {out}", self.id)
    }

    /// Runs step `si` on its buffers, `ptrs` (its inputs, then its outputs).
    fn run_step(
        &self,
        si: usize,
        ptrs: &[*mut u8],
        args: &[*const u8],
        outs: &[*mut u8],
        arena: &mut Arena,
    ) -> Result<(), CpuError> {
        let s = &self.schedule;
        let step = &s.steps[si];
        let (ins, outputs) = ptrs.split_at(step.inputs().len());
        match &self.actions[si] {
            // Already run, block by block, with the product before it.
            Action::Kernel(k) if k.fused => {}
            Action::GramRows(_) => {}
            Action::DotRows(plan, fusion) => self.run_fused(si, plan, fusion, args, outs, arena)?,
            Action::Factor(f) => {
                let scratch = arena.factor[si].as_mut().ok_or_else(|| internal(format!("step {si} has no scratch")))?;
                // SAFETY: the step's buffers have the types it was planned
                // for, and its output is a fresh buffer or a slot distinct
                // from its operands.
                unsafe { f.run(ins, outputs[0], scratch)? };
            }
            Action::Control(c) => {
                let mem = arena.control[si].as_mut().ok_or_else(|| internal(format!("step {si} has no memory")))?;
                // SAFETY: the step's buffers have the types its shape rule
                // gave (the schedule was built from a typechecked program),
                // and outputs are fresh buffers or slots distinct from its
                // operands (a slot is never reused within its step).
                unsafe { c.run(ins, outputs, mem)? };
            }
            Action::Kernel(k) => {
                let f = *self.module.fns.get(k.func).ok_or_else(|| internal(format!("step {si} has no kernel")))?;
                // SAFETY (for the calls below): the kernel was compiled for
                // exactly these buffers: its input avals equal the buffers'
                // (checked when compiling), every load position was checked
                // against the input lengths, every output buffer holds its
                // aval's elements (fresh outputs, arena slots sized by the plan,
                // partial buffers sized like their output), and the arguments
                // were checked against the signature. An output aliases an
                // input only when that input was donated to it, which
                // `plan_donations` allows only where this kernel reads each
                // element of it before writing that same element and no later
                // step reads it; a slot is reused only after every reader of
                // its previous tenant has run. Blocks write disjoint rows of
                // each output, or their own partial buffers.
                unsafe { self.run_kernel(si, k, f, ptrs, &mut arena.partials[si]) };
            }
            Action::Dot(plan) => {
                let (l, r, o) = (ins[0], ins[1], outputs[0]);
                let scratch = arena.scratch[si].as_mut_ptr() as *mut u8;
                let lhs = &s.buffers[step.inputs()[0]].aval;
                let rhs = &s.buffers[step.inputs()[1]].aval;
                let out = plan.out_aval();
                let sl = self.scratch_len[si];
                // SAFETY: each pointer addresses a buffer of its aval's element
                // count and dtype (the plan was made for these avals); scratch
                // holds `sl` 8-byte words, enough for `sl` elements of any dtype;
                // the output never aliases an operand (see above).
                unsafe {
                    match lhs.dtype {
                        DType::F32 => dot::<f32>(plan, l, r, o, scratch, lhs, rhs, out, sl)?,
                        DType::F64 => dot::<f64>(plan, l, r, o, scratch, lhs, rhs, out, sl)?,
                        DType::I32 => dot::<i32>(plan, l, r, o, scratch, lhs, rhs, out, sl)?,
                        DType::Bool => return Err(internal("boolean matrix product".into())),
                    }
                }
            }
            Action::Host => {
                let Step::Prim { prim, inputs, outputs: out_bufs } = step else {
                    return Err(internal(format!("step {si} is not a library step")));
                };
                // SAFETY: each pointer addresses a live buffer of its aval.
                let hosts: Vec<HostArray> =
                    inputs.iter().zip(ins).map(|(&b, &p)| unsafe { read_host(&s.buffers[b].aval, p) }).collect();
                let refs: Vec<&HostArray> = hosts.iter().collect();
                let results = run_prim(prim, &refs)?;
                for ((&b, &p), r) in out_bufs.iter().zip(outputs).zip(&results) {
                    let a = &s.buffers[b].aval;
                    if r.aval() != *a {
                        return Err(internal(format!("{} returned {} for a buffer of {a}", prim.name(), r.aval())));
                    }
                    // SAFETY: `p` addresses a buffer of `a`'s byte size, which
                    // equals the result's (same aval).
                    unsafe { std::ptr::copy_nonoverlapping(r.as_ptr(), p, bytes_of(a)) };
                }
            }
        }
        Ok(())
    }
}

impl Executable {
    /// Runs kernel step `si` (`k`, compiled as `f`) on its buffers `ptrs`,
    /// with `partials` its per-block partial results.
    ///
    /// # Safety
    /// As for the kernel steps of [`run_step`](Executable::run_step).
    unsafe fn run_kernel(&self, si: usize, k: &KernelStep, f: KernelFn, ptrs: &[*mut u8], partials: &mut [Vec<u64>]) {
        // SAFETY (for the calls below): guaranteed by the caller.
        if let [(lo, hi)] = k.ranges[..] {
            unsafe { f.call(ptrs.as_ptr(), lo, hi) };
            return;
        }
        let n_in = self.schedule.steps[si].inputs().len();
        let tables = k.block_tables(ptrs, n_in, partials);
        unsafe {
            crate::parallel::run_blocks(f, &tables, &k.ranges);
            k.combine_partials(ptrs, n_in, partials);
        }
    }

    /// Runs product step `d` and the kernel after it by row blocks: each
    /// worker computes a block of the product's rows into its own buffer and
    /// runs the kernel on those rows, reading the product from that buffer.
    fn run_fused(
        &self,
        d: usize,
        plan: &DotPlan,
        f: &RowFusion,
        args: &[*const u8],
        outs: &[*mut u8],
        arena: &mut Arena,
    ) -> Result<(), CpuError> {
        let s = &self.schedule;
        let (dstep, cstep) = (&s.steps[d], &s.steps[f.consumer]);
        let Action::Kernel(k) = &self.actions[f.consumer] else {
            return Err(internal(format!("step {} is not the kernel fused with step {d}", f.consumer)));
        };
        let func =
            *self.module.fns.get(k.func).ok_or_else(|| internal(format!("step {} has no kernel", f.consumer)))?;
        let (lb, rb) = (dstep.inputs()[0], dstep.inputs()[1]);
        let (ln, rn) = (s.buffers[lb].aval.numel(), s.buffers[rb].aval.numel());
        let operands = Table(vec![self.ptr(lb, args, outs, arena), self.ptr(rb, args, outs, arena)]);
        let base: Vec<*mut u8> =
            cstep.inputs().iter().chain(cstep.outputs()).map(|&b| self.ptr(b, args, outs, arena)).collect();
        let n_in = cstep.inputs().len();
        let blocks = f.rows.len();
        let size = f.dtype.size_bytes();
        let workers = crate::parallel::threads().clamp(1, blocks);
        let words = (f.block_rows * f.cols * size).div_ceil(8);
        while arena.row_blocks.len() < workers {
            arena.row_blocks.push(vec![0u64; words]);
        }
        let buffers = Table(arena.row_blocks[..workers].iter_mut().map(|b| b.as_mut_ptr() as *mut u8).collect());
        // The Gram tail: its plan and shape, and the share buffer (a matrix
        // per block) and `X` (the kernel's output).
        let gram = match &f.gram {
            Some(g) => {
                let Action::GramRows(plan) = &self.actions[g.step] else {
                    return Err(internal(format!("step {} is not the Gram product fused with step {d}", g.step)));
                };
                let x = base[n_in + g.output];
                let words = (blocks * g.cols * g.cols * g.dtype.size_bytes()).div_ceil(8);
                if arena.gram_blocks.len() < words {
                    arena.gram_blocks.resize(words, 0);
                }
                Some((plan, g, Table(vec![arena.gram_blocks.as_mut_ptr() as *mut u8, x])))
            }
            None => None,
        };
        let partials = &mut arena.partials[f.consumer];
        let tables = k.block_tables(&base, n_in, partials);
        let failure: Mutex<Option<CpuError>> = Mutex::new(None);
        let fail = |e: CpuError| {
            if let Ok(mut slot) = failure.lock() {
                slot.get_or_insert(e);
            }
        };
        let position = f.position;
        crate::parallel::for_each_by_worker(blocks, workers, |w, blk| {
            let (r0, r1) = f.rows[blk];
            let buf = buffers.at(w);
            // SAFETY: the operands are the product's buffers (checked against the
            // plan by `run_rows`), and `buf` is this worker's own block buffer of
            // `block_rows × cols` elements.
            let done = unsafe {
                match f.dtype {
                    DType::F32 => dot_rows::<f32>(plan, operands.at(0), ln, operands.at(1), rn, buf, f.cols, (r0, r1)),
                    DType::F64 => dot_rows::<f64>(plan, operands.at(0), ln, operands.at(1), rn, buf, f.cols, (r0, r1)),
                    DType::I32 => dot_rows::<i32>(plan, operands.at(0), ln, operands.at(1), rn, buf, f.cols, (r0, r1)),
                    DType::Bool => Ok(()),
                }
            };
            if let Err(e) = done {
                fail(e.into());
                return;
            }
            let mut t = tables[blk].0.clone();
            // The kernel reads the product at rows r0..r1 only: rebase its
            // pointer so that those rows land in the block buffer.
            t[position] = buf.wrapping_sub(r0 * f.cols * size);
            let (lo, hi) = k.ranges[blk];
            // SAFETY: as for every kernel call (see `run_steps`); the product's
            // rows this block reads are the ones just computed into `buf`, and
            // blocks write disjoint rows of each output or their own partials.
            unsafe { func.call(t.as_ptr(), lo, hi) };
            if let Some((plan, g, ptrs)) = &gram {
                let (share, x) = (ptrs.at(0).wrapping_add(blk * g.cols * g.cols * g.dtype.size_bytes()), ptrs.at(1));
                // SAFETY: `x` is the kernel's output of `n × cols` elements,
                // whose rows r0..r1 this block has just written (and no other
                // block writes), and `share` is this block's own `cols × cols`
                // part of the share buffer.
                let done = unsafe {
                    match g.dtype {
                        DType::F64 => gram_rows::<f64>(plan, x, g.cols, share, (r0, r1)),
                        _ => gram_rows::<f32>(plan, x, g.cols, share, (r0, r1)),
                    }
                };
                if let Err(e) = done {
                    fail(e.into());
                }
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        // SAFETY: the blocks ran with these tables (see `block_tables`).
        unsafe { k.combine_partials(&base, n_in, partials) };
        if let Some(g) = &f.gram {
            let out = self.ptr(s.steps[g.step].outputs()[0], args, outs, arena);
            let (len, size) = (g.cols * g.cols, g.dtype.size_bytes());
            let shares = arena.gram_blocks.as_ptr() as *const u8;
            // SAFETY: the output is the Gram product's buffer of `cols × cols`
            // elements, and the share buffer holds one such matrix per block;
            // the shares are added in block order.
            unsafe {
                std::ptr::copy_nonoverlapping(shares, out, len * size);
                for blk in 1..blocks {
                    crate::parallel::combine(ReduceOp::Sum, g.dtype, out, shares.add(blk * len * size), len);
                }
            }
        }
        Ok(())
    }
}
