//! Executables on a device: a schedule's kernels and factorizations (Cholesky,
//! the inverse from its factor, LU, triangular solves) compiled into one module, its products as GEMMs,
//! its loops and conditionals run from the host over device buffers, and
//! what the device does not do (arg-reductions, products that need packing,
//! factorizations of integer matrices) run by the reference interpreter on
//! host copies. Steps that read only constants run once, when compiled.
//!
//! Everything stays on the device between steps and between iterations of a
//! loop; the host reads back only a `while` condition's flag and a `cond`'s
//! branch index, and the results.

use crate::array::DeviceArray;
use crate::bytes::{from_bytes, to_bytes};
use crate::error::CudaError;
use crate::gemm::Gemm;
use crate::render::{Launch, Param, Partial, RenderedKernel};
use crate::runtime::Runtime;
use arrayjit_ir::prim::{Control, Linalg};
use arrayjit_ir::{AVal, HostArray, Prim, Program};
use arrayjit_lower::{BufferKind, OutputSource, Schedule, Step};

/// How one step runs.
enum Plan<R: Runtime> {
    Kernel(RenderedKernel),
    Gemm(Gemm),
    /// On host copies, by the interpreter.
    Host(Prim),
    Scan {
        /// The body, with the slice copies in its module.
        body: Box<Executable<R>>,
        helpers: crate::scan_copy::ScanCopies,
        num_consts: usize,
        num_carry: usize,
        length: usize,
    },
    While {
        cond: Box<Executable<R>>,
        body: Box<Executable<R>>,
        cond_consts: usize,
        body_consts: usize,
    },
    Cond(Vec<Executable<R>>),
    Call(Box<Executable<R>>),
}

/// A compiled schedule for runtime `R`.
pub struct Executable<R: Runtime> {
    schedule: Schedule,
    module: Option<R::Module>,
    plans: Vec<Plan<R>>,
    consts: Vec<Option<R::Buf>>,
    in_avals: Vec<AVal>,
    /// Names this executable in profiles.
    id: usize,
    /// The temporaries of the last run, reused by the next.
    spare: std::sync::Mutex<Option<Spare<R>>>,
}

/// A run's temporaries: a buffer per schedule buffer, partial-result buffers per step.
struct Spare<R: Runtime> {
    temps: Vec<Option<R::Buf>>,
    partials: Vec<Vec<R::Buf>>,
}

static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static RECORDED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many loop iterations this process has recorded as graphs (two per
/// recorded loop: an even and an odd iteration).
pub fn graphs_recorded() -> usize {
    RECORDED.load(std::sync::atomic::Ordering::Relaxed)
}

fn bytes_of(a: &AVal) -> usize {
    // Types that pass the shape rules fit in memory; anything else asks the
    // device for more than it has and fails there.
    a.bytes().unwrap_or(usize::MAX)
}

/// Fuses and compiles a loop body, condition or branch (the passes already
/// ran on it with the enclosing program).
fn compile_program<R: Runtime>(rt: &R, p: &Program) -> Result<Executable<R>, CudaError> {
    Executable::compile(rt, &arrayjit_lower::fuse(p))
}

impl<R: Runtime> Executable<R> {
    /// Renders, compiles and loads `s`'s kernels, plans its other steps and
    /// uploads its constants.
    pub fn compile(rt: &R, s: &Schedule) -> Result<Executable<R>, CudaError> {
        Executable::compile_with(rt, s, &[])
    }

    /// [`Executable::compile`], with `extra` functions in its module.
    fn compile_with(rt: &R, s: &Schedule, extra: &[RenderedKernel]) -> Result<Executable<R>, CudaError> {
        // Steps that read only constants run once, here, on the device; their
        // results are constants of the executable.
        match s.constant_part() {
            Some(part) => {
                let values = Executable::compile_steps(rt, &part.schedule, &[])?.run(rt, &[])?;
                Executable::compile_steps(rt, &part.fold_into(s, values), extra)
            }
            None => Executable::compile_steps(rt, s, extra),
        }
    }

    /// Compiles every step of `s`, and `extra` functions into the same module.
    fn compile_steps(rt: &R, s: &Schedule, extra: &[RenderedKernel]) -> Result<Executable<R>, CudaError> {
        let mut rendered = render_steps(s)?;
        let module = if rendered.iter().any(Option::is_some) || !extra.is_empty() {
            let kernels: Vec<RenderedKernel> = rendered.iter().flatten().chain(extra).cloned().collect();
            Some(rt.load(&kernels)?)
        } else {
            None
        };
        let mut plans = Vec::with_capacity(s.steps.len());
        for (i, step) in s.steps.iter().enumerate() {
            plans.push(match step {
                Step::Kernel { .. } => {
                    Plan::Kernel(rendered[i].take().ok_or_else(|| CudaError::Lowering(format!("step {i}: no kernel")))?)
                }
                // Factorizations with a device version run as kernels.
                Step::Prim { .. } if rendered[i].is_some() => {
                    Plan::Kernel(rendered[i].take().ok_or_else(|| CudaError::Lowering(format!("step {i}: no kernel")))?)
                }
                Step::Prim { prim, inputs, .. } => match prim {
                    Prim::Linalg(Linalg::DotGeneral(dims)) if inputs.len() == 2 => {
                        let (l, r) = (&s.buffers[inputs[0]].aval, &s.buffers[inputs[1]].aval);
                        match Gemm::plan(dims, l, r) {
                            Some(g) => Plan::Gemm(g),
                            None => Plan::Host(prim.clone()),
                        }
                    }
                    Prim::Control(c) => Self::control(rt, c)?,
                    other => Plan::Host(other.clone()),
                },
            });
        }
        let consts = s
            .buffers
            .iter()
            .map(|b| match &b.kind {
                BufferKind::Const(c) => rt.upload(&to_bytes(c)).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        Ok(Executable {
            schedule: s.clone(),
            module,
            plans,
            consts,
            in_avals: s.input_avals(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            spare: std::sync::Mutex::new(None),
        })
    }

    fn control(rt: &R, c: &Control) -> Result<Plan<R>, CudaError> {
        Ok(match c {
            Control::Call { body } => Plan::Call(Box::new(compile_program(rt, body)?)),
            Control::CustomJvp { body, jvp: rule, body_consts, jvp_consts: rule_consts }
            | Control::CustomVjp { body, fwd: rule, body_consts, fwd_consts: rule_consts, .. } => {
                let body = arrayjit_ir::prim::control::custom_body_as_call(body, rule, *body_consts, *rule_consts);
                Plan::Call(Box::new(compile_program(rt, &body)?))
            }
            Control::CustomVjpTangent { .. } => {
                return Err(CudaError::Lowering(format!(
                    "custom_vjp_tangent: {}",
                    arrayjit_ir::prim::control::CUSTOM_VJP_FORWARD
                )))
            }
            Control::Scan { body, num_consts, num_carry, length, reverse, .. } => {
                let schedule = arrayjit_lower::fuse(body);
                let (nc, nk) = (*num_consts, *num_carry);
                let (helpers, functions) =
                    crate::scan_copy::ScanCopies::for_body("aj_scan", &schedule, nc, nk, *length, *reverse);
                Plan::Scan {
                    body: Box::new(Executable::compile_with(rt, &schedule, &functions)?),
                    helpers,
                    num_consts: nc,
                    num_carry: nk,
                    length: *length,
                }
            }
            Control::While { cond, body, cond_consts, body_consts } => Plan::While {
                cond: Box::new(compile_program(rt, cond)?),
                body: Box::new(compile_program(rt, body)?),
                cond_consts: *cond_consts,
                body_consts: *body_consts,
            },
            Control::Cond { branches } => {
                Plan::Cond(branches.iter().map(|b| compile_program(rt, b)).collect::<Result<_, _>>()?)
            }
        })
    }

    /// The argument types, in order.
    pub fn in_avals(&self) -> &[AVal] {
        &self.in_avals
    }

    /// Runs on host arrays: uploads them, runs, and downloads the results.
    pub fn run(&self, rt: &R, args: &[&HostArray]) -> Result<Vec<HostArray>, CudaError> {
        let avals: Vec<AVal> = args.iter().map(|a| a.aval()).collect();
        self.check(&avals)?;
        let bufs: Vec<R::Buf> = args.iter().map(|a| rt.upload(&to_bytes(a))).collect::<Result<_, _>>()?;
        let refs: Vec<&R::Buf> = bufs.iter().collect();
        let outs = self.run_device(rt, &refs)?;
        let out_avals = self.out_avals();
        outs.iter().zip(&out_avals).map(|(b, a)| from_bytes(a, &rt.download(b, bytes_of(a))?)).collect()
    }

    /// Runs on arrays already on the device; the results stay there.
    pub fn run_arrays(&self, rt: &R, args: &[&DeviceArray<R>]) -> Result<Vec<DeviceArray<R>>, CudaError> {
        let avals: Vec<AVal> = args.iter().map(|a| a.aval().clone()).collect();
        self.check(&avals)?;
        let bufs: Vec<&R::Buf> = args.iter().map(|a| a.buf()).collect();
        let outs = self.run_device(rt, &bufs)?;
        Ok(outs.into_iter().zip(self.out_avals()).map(|(b, a)| DeviceArray::from_buf(b, a)).collect())
    }

    /// Arguments of the types `avals` match the signature.
    fn check(&self, avals: &[AVal]) -> Result<(), CudaError> {
        if avals.len() < self.in_avals.len() || avals[..self.in_avals.len()] != self.in_avals[..] {
            return Err(CudaError::Signature {
                want: self.in_avals.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
                got: avals.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
            });
        }
        Ok(())
    }

    fn out_avals(&self) -> Vec<AVal> {
        self.schedule.output_avals()
    }

    /// Runs on device buffers (the inputs, in order); returns new buffers.
    pub fn run_device(&self, rt: &R, inputs: &[&R::Buf]) -> Result<Vec<R::Buf>, CudaError> {
        let (mut temps, partials) = self.run_steps(rt, inputs, &[])?;
        let results = crate::profile::timed(
            rt,
            || format!("x{} results", self.id),
            || self.take_results(rt, inputs, &mut temps),
        )?;
        self.keep(temps, partials);
        Ok(results)
    }

    /// Runs on device buffers and writes the results into `outputs` (one
    /// per output, each of its size). Every temporary is kept for the next
    /// run, so that run after run queues the same calls on the same buffers:
    /// what a recorded graph replays.
    pub fn run_into(&self, rt: &R, inputs: &[&R::Buf], outputs: &[&R::Buf]) -> Result<(), CudaError> {
        let s = &self.schedule;
        if outputs.len() != s.outputs.len() {
            return Err(CudaError::Lowering(format!(
                "{} result buffers for {} results",
                outputs.len(),
                s.outputs.len()
            )));
        }
        // A result computed by a step is written straight into its buffer
        // (the first result of that value; the others are copies).
        let mut given: Vec<Option<&R::Buf>> = vec![None; s.buffers.len()];
        let mut direct = vec![false; s.outputs.len()];
        for (j, (o, dst)) in s.outputs.iter().zip(outputs).enumerate() {
            if let OutputSource::Buffer(b) = *o {
                if matches!(s.buffers[b].kind, BufferKind::Temp) && given[b].is_none() {
                    given[b] = Some(*dst);
                    direct[j] = true;
                }
            }
        }
        let (temps, partials) = self.run_steps(rt, inputs, &given)?;
        crate::profile::timed(
            rt,
            || format!("x{} results copied out", self.id),
            || {
                for ((o, dst), done) in s.outputs.iter().zip(outputs).zip(&direct) {
                    match o {
                        _ if *done => {}
                        OutputSource::Literal(v) => {
                            let lit = rt.upload(&to_bytes(&HostArray::scalar(*v)))?;
                            rt.copy(&lit, 0, dst, 0, v.dtype().size_bytes())?;
                        }
                        OutputSource::Buffer(b) => {
                            let src = self.source(*b, inputs, &temps)?;
                            rt.copy(src, 0, dst, 0, bytes_of(&s.buffers[*b].aval))?;
                        }
                    }
                }
                Ok(())
            },
        )?;
        self.keep(temps, partials);
        Ok(())
    }

    /// Whether a run only queues work on the stream (kernels, products,
    /// copies): nothing read back, nothing allocated once the temporaries
    /// exist, so that it can be recorded and replayed.
    fn replayable(&self) -> bool {
        self.schedule.outputs.iter().all(|o| matches!(o, OutputSource::Buffer(_)))
            && self.plans.iter().all(|p| matches!(p, Plan::Kernel(_) | Plan::Gemm(_)))
    }

    /// Keeps a run's own temporaries for the next run.
    fn keep(&self, temps: Vec<Option<Slot<'_, R::Buf>>>, partials: Vec<Vec<R::Buf>>) {
        let temps = temps
            .into_iter()
            .map(|t| match t {
                Some(Slot::Own(b)) => Some(b),
                _ => None,
            })
            .collect();
        if let Ok(mut pool) = self.spare.lock() {
            *pool = Some(Spare { temps, partials });
        }
    }

    /// Where buffer `b` lives during a run.
    fn source<'a>(
        &'a self,
        b: usize,
        inputs: &[&'a R::Buf],
        temps: &'a [Option<Slot<'_, R::Buf>>],
    ) -> Result<&'a R::Buf, CudaError> {
        match &self.schedule.buffers[b].kind {
            BufferKind::Input(k) => inputs.get(*k).copied(),
            BufferKind::Const(_) => self.consts[b].as_ref(),
            BufferKind::Temp => temps[b].as_ref().map(Slot::buf),
        }
        .ok_or_else(|| CudaError::Lowering(format!("output buffer {b} is never written")))
    }

    /// Queues every step; returns the temporaries and partial-result
    /// buffers. A temporary with a buffer in `given` (by buffer, possibly
    /// empty) is written there.
    #[allow(clippy::type_complexity)]
    fn run_steps<'g>(
        &self,
        rt: &R,
        inputs: &[&R::Buf],
        given: &[Option<&'g R::Buf>],
    ) -> Result<(Vec<Option<Slot<'g, R::Buf>>>, Vec<Vec<R::Buf>>), CudaError> {
        let s = &self.schedule;
        let mut temps: Vec<Option<Slot<'g, R::Buf>>> = (0..s.buffers.len()).map(|_| None).collect();
        let given_for = |b: usize| given.get(b).copied().flatten();
        // The previous run's buffers, for kernels and products to write into
        // again (a loop body runs once per iteration). One stream orders every
        // use, so a buffer is rewritten only after what read it has run.
        let (mut spare, mut partials) = match self.spare.lock().ok().and_then(|mut p| p.take()) {
            Some(Spare { temps, partials }) => (temps, partials),
            None => (Vec::new(), Vec::new()),
        };
        spare.resize_with(s.buffers.len(), || None);
        partials.resize_with(s.steps.len(), Vec::new);
        let mut fresh = |b: usize| -> Result<Slot<'g, R::Buf>, CudaError> {
            if let Some(g) = given_for(b) {
                return Ok(Slot::Given(g));
            }
            match spare[b].take() {
                Some(buf) => Ok(Slot::Own(buf)),
                None => rt.alloc(bytes_of(&s.buffers[b].aval)).map(Slot::Own),
            }
        };
        for (i, (step, plan)) in s.steps.iter().zip(&self.plans).enumerate() {
            let mut outs: Vec<Slot<'g, R::Buf>> = Vec::with_capacity(step.outputs().len());
            {
                let get = |b: usize| -> Result<&R::Buf, CudaError> {
                    match &s.buffers[b].kind {
                        BufferKind::Input(k) => inputs.get(*k).copied(),
                        BufferKind::Const(_) => self.consts[b].as_ref(),
                        BufferKind::Temp => temps[b].as_ref().map(Slot::buf),
                    }
                    .ok_or_else(|| CudaError::Lowering(format!("step {i}: buffer {b} is read before it is written")))
                };
                let ins: Vec<&R::Buf> = step.inputs().iter().map(|&b| get(b)).collect::<Result<_, _>>()?;
                crate::profile::timed(
                    rt,
                    || self.label(i),
                    || {
                        match plan {
                            Plan::Kernel(k) => {
                                for &b in step.outputs() {
                                    outs.push(fresh(b)?);
                                }
                                if partials[i].len() != k.partials.len() {
                                    partials[i] = k
                                        .partials
                                        .iter()
                                        .map(|Partial { dtype, len }| rt.alloc(len * dtype.size_bytes()))
                                        .collect::<Result<_, _>>()?;
                                }
                                let written: Vec<&R::Buf> = outs.iter().map(Slot::buf).collect();
                                self.launch(rt, k, &ins, &written, &partials[i])?;
                            }
                            Plan::Gemm(g) => {
                                let c = fresh(step.outputs()[0])?;
                                rt.gemm(g, ins[0], ins[1], c.buf())?;
                                outs.push(c);
                            }
                            Plan::Host(prim) => {
                                let hosts: Vec<HostArray> = step
                                    .inputs()
                                    .iter()
                                    .zip(&ins)
                                    .map(|(&b, buf)| {
                                        let a = &s.buffers[b].aval;
                                        from_bytes(a, &rt.download(buf, bytes_of(a))?)
                                    })
                                    .collect::<Result<_, _>>()?;
                                let results = arrayjit_interp::eval_prim(prim, &hosts).map_err(|e| {
                                    CudaError::Host { op: prim.name().to_string(), message: e.to_string() }
                                })?;
                                for r in &results {
                                    outs.push(Slot::Own(rt.upload(&to_bytes(r))?));
                                }
                            }
                            Plan::Scan { body, helpers, num_consts, num_carry, length } => {
                                outs = own(scan(rt, body, helpers, &ins, *num_consts, *num_carry, *length)?);
                            }
                            Plan::While { cond, body, cond_consts, body_consts } => {
                                let (cc, bc) = (*cond_consts, *body_consts);
                                let mut carry = copies(rt, &ins[cc + bc..], &body.in_avals()[bc..])?;
                                loop {
                                    let mut args: Vec<&R::Buf> = ins[..cc].to_vec();
                                    args.extend(carry.iter());
                                    let flag = cond.run_device(rt, &args)?;
                                    let go = rt.download(&flag[0], 1)?.first().is_some_and(|&b| b != 0);
                                    if !go {
                                        break;
                                    }
                                    let mut args: Vec<&R::Buf> = ins[cc..cc + bc].to_vec();
                                    args.extend(carry.iter());
                                    carry = body.run_device(rt, &args)?;
                                }
                                outs = own(carry);
                            }
                            Plan::Cond(branches) => {
                                let raw = rt.download(ins[0], 4)?;
                                let index = i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                                let last = branches.len().saturating_sub(1);
                                let b = (index.max(0) as usize).min(last);
                                outs = own(branches[b].run_device(rt, &ins[1..])?);
                            }
                            Plan::Call(body) => outs = own(body.run_device(rt, &ins)?),
                        }
                        Ok(())
                    },
                )?;
            }
            for (&b, slot) in step.outputs().iter().zip(outs) {
                // A step that made its own buffer for a result given elsewhere: copied there.
                temps[b] = Some(match (slot, given_for(b)) {
                    (Slot::Own(buf), Some(g)) => {
                        rt.copy(&buf, 0, g, 0, bytes_of(&s.buffers[b].aval))?;
                        Slot::Given(g)
                    }
                    (slot, _) => slot,
                });
            }
        }
        Ok((temps, partials))
    }

    /// The schedule's outputs, each in a buffer of its own: a temporary is
    /// handed over (the next run allocates another), anything else copied.
    fn take_results(
        &self,
        rt: &R,
        inputs: &[&R::Buf],
        temps: &mut [Option<Slot<'_, R::Buf>>],
    ) -> Result<Vec<R::Buf>, CudaError> {
        let s = &self.schedule;
        let mut results: Vec<R::Buf> = Vec::with_capacity(s.outputs.len());
        for (j, o) in s.outputs.iter().enumerate() {
            let b = match o {
                OutputSource::Literal(v) => {
                    results.push(rt.upload(&to_bytes(&HostArray::scalar(*v)))?);
                    continue;
                }
                OutputSource::Buffer(b) => *b,
            };
            if matches!(temps[b], Some(Slot::Own(_))) {
                if let Some(Slot::Own(buf)) = temps[b].take() {
                    results.push(buf);
                    continue;
                }
            }
            // An input, a constant, or a temporary already handed over to an
            // earlier output: copied.
            let earlier = s.outputs[..j].iter().position(|e| *e == OutputSource::Buffer(b));
            let n = bytes_of(&s.buffers[b].aval);
            let out = rt.alloc(n)?;
            match earlier {
                Some(e) => rt.copy(&results[e], 0, &out, 0, n)?,
                None => rt.copy(self.source(b, inputs, temps)?, 0, &out, 0, n)?,
            }
            results.push(out);
        }
        Ok(results)
    }

    /// Step `i` as a profile names it: executable, step, what runs, first result.
    fn label(&self, i: usize) -> String {
        let s = &self.schedule;
        let step = &s.steps[i];
        let what = match (&self.plans[i], step) {
            (Plan::Kernel(k), Step::Prim { prim, .. }) => format!("{} ({} launch)", prim.name(), k.launches.len()),
            (Plan::Kernel(k), _) => format!("kernel ({} launches, {} outputs)", k.launches.len(), step.outputs().len()),
            (Plan::Gemm(g), _) => format!("gemm {}×{}×{} batch {}", g.m, g.n, g.k, g.batch),
            (Plan::Host(p), _) => format!("on the host: {}", p.name()),
            (Plan::Scan { length, .. }, _) => format!("scan of {length} (all of it)"),
            (Plan::While { .. }, _) => "while (all of it)".into(),
            (Plan::Cond(_), _) => "cond (all of it)".into(),
            (Plan::Call(_), _) => "call (all of it)".into(),
        };
        let out = step.outputs().first().map(|&b| s.buffers[b].aval.to_string()).unwrap_or_default();
        format!("x{}.s{i} {what} -> {out}", self.id)
    }

    /// Queues a kernel's launches, with its partial-result buffers.
    fn launch(
        &self,
        rt: &R,
        k: &RenderedKernel,
        ins: &[&R::Buf],
        outs: &[&R::Buf],
        partials: &[R::Buf],
    ) -> Result<(), CudaError> {
        let module = self.module.as_ref().ok_or_else(|| CudaError::Lowering("a kernel without a module".into()))?;
        for l in &k.launches {
            let params: Vec<u64> = l
                .params
                .iter()
                .map(|p| match *p {
                    Param::Input(j) => rt.address(ins[j]),
                    Param::Output(j) => rt.address(outs[j]),
                    Param::Partial(j) => rt.address(&partials[j]),
                })
                .collect();
            rt.launch(module, l, &params)?;
        }
        Ok(())
    }
}

/// A step's result during a run: a buffer of the run's own (kept for the
/// next run), or one the caller gave to write the result into.
enum Slot<'g, B> {
    Own(B),
    Given(&'g B),
}

impl<B> Slot<'_, B> {
    fn buf(&self) -> &B {
        match self {
            Slot::Own(b) => b,
            Slot::Given(b) => b,
        }
    }
}

fn own<'g, B>(bufs: Vec<B>) -> Vec<Slot<'g, B>> {
    bufs.into_iter().map(Slot::Own).collect()
}

/// Owned copies of `bufs` (of types `avals`).
fn copies<R: Runtime>(rt: &R, bufs: &[&R::Buf], avals: &[AVal]) -> Result<Vec<R::Buf>, CudaError> {
    bufs.iter()
        .zip(avals)
        .map(|(b, a)| {
            let n = bytes_of(a);
            let out = rt.alloc(n)?;
            rt.copy(b, 0, &out, 0, n)?;
            Ok(out)
        })
        .collect()
}

/// A scan: the body over slices of the stacked `xs`, carries threaded
/// through, each iteration's `ys` copied into place in the stacked outputs.
///
/// Every iteration queues the same calls on the same buffers: the carries
/// alternate between two sets, the slices go through buffers of their own,
/// and the iteration number lives on the device, where the slice copies
/// read it. After a first iteration (which allocates the body's
/// temporaries), a runtime that records work records one even and one odd
/// iteration and replays them, so that the host queues one graph per
/// iteration instead of every launch.
fn scan<R: Runtime>(
    rt: &R,
    body: &Executable<R>,
    copies_of: &crate::scan_copy::ScanCopies,
    ins: &[&R::Buf],
    nc: usize,
    nk: usize,
    length: usize,
) -> Result<Vec<R::Buf>, CudaError> {
    let in_avals = body.in_avals().to_vec();
    let out_avals = body.out_avals();
    let mut a = copies(rt, &ins[nc..nc + nk], &in_avals[nc..nc + nk])?;
    let y_bytes: Vec<usize> = out_avals[nk..].iter().map(bytes_of).collect();
    let ys: Vec<R::Buf> = y_bytes.iter().map(|b| rt.alloc(b * length)).collect::<Result<_, _>>()?;
    if length == 0 {
        a.extend(ys);
        return Ok(a);
    }
    let b: Vec<R::Buf> = in_avals[nc..nc + nk].iter().map(|v| rt.alloc(bytes_of(v))).collect::<Result<_, _>>()?;
    let xs: Vec<R::Buf> = in_avals[nc + nk..].iter().map(|v| rt.alloc(bytes_of(v))).collect::<Result<_, _>>()?;
    let y: Vec<R::Buf> = y_bytes.iter().map(|&n| rt.alloc(n)).collect::<Result<_, _>>()?;
    let step = rt.upload(&0i64.to_le_bytes())?;
    let module = body.module.as_ref().ok_or_else(|| CudaError::Lowering("a scan body without a module".into()))?;
    // Copy `j` of `launches` from `src(j)` to `dst(j)`, at the device's iteration number.
    let copy_each = |launches: &[Option<Launch>], src: &dyn Fn(usize) -> u64, dst: &dyn Fn(usize) -> u64| {
        for (j, l) in launches.iter().enumerate() {
            if let Some(l) = l {
                rt.launch(module, l, &[src(j), dst(j), rt.address(&step)])?;
            }
        }
        Ok(())
    };
    let iteration = |from: &[R::Buf], to: &[R::Buf]| -> Result<(), CudaError> {
        crate::profile::timed(
            rt,
            || "scan: slices of xs copied in".into(),
            || copy_each(&copies_of.x, &|j| rt.address(ins[nc + nk + j]), &|j| rt.address(&xs[j])),
        )?;
        let mut args: Vec<&R::Buf> = ins[..nc].to_vec();
        args.extend(from.iter());
        args.extend(xs.iter());
        let outs: Vec<&R::Buf> = to.iter().chain(y.iter()).collect();
        body.run_into(rt, &args, &outs)?;
        crate::profile::timed(
            rt,
            || "scan: ys copied out".into(),
            || {
                copy_each(&copies_of.y, &|j| rt.address(&y[j]), &|j| rt.address(&ys[j]))?;
                rt.launch(module, &copies_of.next, &[rt.address(&step)])
            },
        )
    };
    // Recording pays once a loop is long enough to replay it a few times.
    let mut record = length >= 4 && body.replayable() && !crate::profile::enabled();
    let mut graphs: [Option<R::Graph>; 2] = [None, None];
    for t in 0..length {
        let (from, to) = if t % 2 == 0 { (&a, &b) } else { (&b, &a) };
        if let Some(g) = &graphs[t % 2] {
            rt.replay(g)?;
            continue;
        }
        if record && t > 0 {
            if rt.begin_capture().unwrap_or(false) {
                let queued = iteration(from, to);
                let recorded = rt.end_capture();
                if let (Ok(()), Ok(g)) = (queued, recorded) {
                    rt.replay(&g)?;
                    graphs[t % 2] = Some(g);
                    RECORDED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
            }
            // What cannot be recorded runs as it comes, and a graph of the
            // other parity (whose temporaries may be gone) is not replayed.
            record = false;
            graphs = [None, None];
        }
        iteration(from, to)?;
    }
    let mut carry = if length.is_multiple_of(2) { a } else { b };
    carry.extend(ys);
    Ok(carry)
}

/// The device functions of `s`'s own steps, one per step (or none).
fn render_steps(s: &Schedule) -> Result<Vec<Option<RenderedKernel>>, CudaError> {
    (0..s.steps.len()).map(|i| crate::program::render_step(s, i, &format!("k{i}"))).collect()
}
