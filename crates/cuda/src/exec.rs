//! Executables on a device: a schedule's kernels and factorizations (Cholesky,
//! LU, triangular solves) compiled into one module, its products as GEMMs,
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
use crate::render::{Param, Partial, RenderedKernel};
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
        body: Box<Executable<R>>,
        num_consts: usize,
        num_carry: usize,
        length: usize,
        reverse: bool,
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
    /// The temporaries of the last run, reused by the next.
    spare: std::sync::Mutex<Option<Spare<R>>>,
}

/// A run's temporaries: a buffer per schedule buffer, partial-result buffers per step.
struct Spare<R: Runtime> {
    temps: Vec<Option<R::Buf>>,
    partials: Vec<Vec<R::Buf>>,
}

fn bytes_of(a: &AVal) -> usize {
    a.numel() * a.dtype.size_bytes()
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
        // Steps that read only constants run once, here, on the device; their
        // results are constants of the executable.
        match s.constant_part() {
            Some(part) => {
                let values = Executable::compile_steps(rt, &part.schedule)?.run(rt, &[])?;
                Executable::compile_steps(rt, &part.fold_into(s, values))
            }
            None => Executable::compile_steps(rt, s),
        }
    }

    /// Compiles every step of `s`.
    fn compile_steps(rt: &R, s: &Schedule) -> Result<Executable<R>, CudaError> {
        let mut rendered = render_steps(s)?;
        let module = if rendered.iter().any(Option::is_some) {
            let kernels: Vec<RenderedKernel> = rendered.iter().flatten().cloned().collect();
            Some(rt.load(&crate::render::module_source(&kernels))?)
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
            spare: std::sync::Mutex::new(None),
        })
    }

    fn control(rt: &R, c: &Control) -> Result<Plan<R>, CudaError> {
        Ok(match c {
            Control::Call { body } => Plan::Call(Box::new(compile_program(rt, body)?)),
            Control::Scan { body, num_consts, num_carry, length, reverse, .. } => Plan::Scan {
                body: Box::new(compile_program(rt, body)?),
                num_consts: *num_consts,
                num_carry: *num_carry,
                length: *length,
                reverse: *reverse,
            },
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
        self.schedule
            .outputs
            .iter()
            .map(|o| match o {
                OutputSource::Buffer(b) => self.schedule.buffers[*b].aval.clone(),
                OutputSource::Literal(s) => AVal::scalar(s.dtype()),
            })
            .collect()
    }

    /// Runs on device buffers (the inputs, in order); returns new buffers.
    pub fn run_device(&self, rt: &R, inputs: &[&R::Buf]) -> Result<Vec<R::Buf>, CudaError> {
        let s = &self.schedule;
        let mut temps: Vec<Option<R::Buf>> = (0..s.buffers.len()).map(|_| None).collect();
        // The previous run's buffers, for kernels and products to write into
        // again (a loop body runs once per iteration). One stream orders every
        // use, so a buffer is rewritten only after what read it has run.
        let (mut spare, mut partials) = match self.spare.lock().ok().and_then(|mut p| p.take()) {
            Some(Spare { temps, partials }) => (temps, partials),
            None => (Vec::new(), Vec::new()),
        };
        spare.resize_with(s.buffers.len(), || None);
        partials.resize_with(s.steps.len(), Vec::new);
        let mut fresh = |b: usize| -> Result<R::Buf, CudaError> {
            match spare[b].take() {
                Some(buf) => Ok(buf),
                None => rt.alloc(bytes_of(&s.buffers[b].aval)),
            }
        };
        for (i, (step, plan)) in s.steps.iter().zip(&self.plans).enumerate() {
            let mut outs: Vec<R::Buf> = Vec::with_capacity(step.outputs().len());
            {
                let get = |b: usize| -> Result<&R::Buf, CudaError> {
                    match &s.buffers[b].kind {
                        BufferKind::Input(k) => inputs.get(*k).copied(),
                        BufferKind::Const(_) => self.consts[b].as_ref(),
                        BufferKind::Temp => temps[b].as_ref(),
                    }
                    .ok_or_else(|| CudaError::Lowering(format!("step {i}: buffer {b} is read before it is written")))
                };
                let ins: Vec<&R::Buf> = step.inputs().iter().map(|&b| get(b)).collect::<Result<_, _>>()?;
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
                        self.launch(rt, k, &ins, &outs, &partials[i])?;
                    }
                    Plan::Gemm(g) => {
                        let c = fresh(step.outputs()[0])?;
                        rt.gemm(g, ins[0], ins[1], &c)?;
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
                        let results = arrayjit_interp::eval_prim(prim, &hosts)
                            .map_err(|e| CudaError::Host { op: prim.name().to_string(), message: e.to_string() })?;
                        for r in &results {
                            outs.push(rt.upload(&to_bytes(r))?);
                        }
                    }
                    Plan::Scan { body, num_consts, num_carry, length, reverse } => {
                        outs = scan(rt, body, &ins, *num_consts, *num_carry, *length, *reverse)?;
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
                        outs = carry;
                    }
                    Plan::Cond(branches) => {
                        let raw = rt.download(ins[0], 4)?;
                        let index = i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                        let last = branches.len().saturating_sub(1);
                        let b = (index.max(0) as usize).min(last);
                        outs = branches[b].run_device(rt, &ins[1..])?;
                    }
                    Plan::Call(body) => outs = body.run_device(rt, &ins)?,
                }
            }
            for (&b, buf) in step.outputs().iter().zip(outs) {
                temps[b] = Some(buf);
            }
        }
        let mut results = Vec::with_capacity(s.outputs.len());
        for o in &s.outputs {
            results.push(match o {
                OutputSource::Literal(v) => rt.upload(&to_bytes(&HostArray::scalar(*v)))?,
                OutputSource::Buffer(b) => {
                    let src = match &s.buffers[*b].kind {
                        BufferKind::Input(k) => inputs.get(*k).copied(),
                        BufferKind::Const(_) => self.consts[*b].as_ref(),
                        BufferKind::Temp => temps[*b].as_ref(),
                    }
                    .ok_or_else(|| CudaError::Lowering(format!("output buffer {b} is never written")))?;
                    let n = bytes_of(&s.buffers[*b].aval);
                    let out = rt.alloc(n)?;
                    rt.copy(src, 0, &out, 0, n)?;
                    out
                }
            });
        }
        if let Ok(mut pool) = self.spare.lock() {
            *pool = Some(Spare { temps, partials });
        }
        Ok(results)
    }

    /// Queues a kernel's launches, with its partial-result buffers.
    fn launch(
        &self,
        rt: &R,
        k: &RenderedKernel,
        ins: &[&R::Buf],
        outs: &[R::Buf],
        partials: &[R::Buf],
    ) -> Result<(), CudaError> {
        let module = self.module.as_ref().ok_or_else(|| CudaError::Lowering("a kernel without a module".into()))?;
        for l in &k.launches {
            let params: Vec<u64> = l
                .params
                .iter()
                .map(|p| match *p {
                    Param::Input(j) => rt.address(ins[j]),
                    Param::Output(j) => rt.address(&outs[j]),
                    Param::Partial(j) => rt.address(&partials[j]),
                })
                .collect();
            rt.launch(module, l, &params)?;
        }
        Ok(())
    }
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
fn scan<R: Runtime>(
    rt: &R,
    body: &Executable<R>,
    ins: &[&R::Buf],
    nc: usize,
    nk: usize,
    length: usize,
    reverse: bool,
) -> Result<Vec<R::Buf>, CudaError> {
    let in_avals = body.in_avals().to_vec();
    let out_avals = body.out_avals();
    let mut carry = copies(rt, &ins[nc..nc + nk], &in_avals[nc..nc + nk])?;
    let x_bytes: Vec<usize> = in_avals[nc + nk..].iter().map(bytes_of).collect();
    let y_bytes: Vec<usize> = out_avals[nk..].iter().map(bytes_of).collect();
    let ys: Vec<R::Buf> = y_bytes.iter().map(|b| rt.alloc(b * length)).collect::<Result<_, _>>()?;
    let xs: Vec<R::Buf> = x_bytes.iter().map(|&b| rt.alloc(b)).collect::<Result<_, _>>()?;
    for step in 0..length {
        let t = if reverse { length - 1 - step } else { step };
        for (j, (x, &b)) in xs.iter().zip(&x_bytes).enumerate() {
            rt.copy(ins[nc + nk + j], t * b, x, 0, b)?;
        }
        let mut args: Vec<&R::Buf> = ins[..nc].to_vec();
        args.extend(carry.iter());
        args.extend(xs.iter());
        let mut outs = body.run_device(rt, &args)?;
        let rest = outs.split_off(nk.min(outs.len()));
        for ((y, out), &b) in rest.iter().zip(&ys).zip(&y_bytes) {
            rt.copy(y, 0, out, t * b, b)?;
        }
        carry = outs;
    }
    carry.extend(ys);
    Ok(carry)
}

/// The device functions of `s`'s own steps, one per step (or none).
fn render_steps(s: &Schedule) -> Result<Vec<Option<RenderedKernel>>, CudaError> {
    (0..s.steps.len()).map(|i| crate::program::render_step(s, i, &format!("k{i}"))).collect()
}
