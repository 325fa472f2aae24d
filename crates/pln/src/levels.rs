//! The fit at the tutorial's JIT levels. Every level runs the same model
//! code ([`crate::model`]); what changes is how much of the loop is
//! compiled, and how the state is held:
//!
//! - 0: eager. Each step traces the loss for its gradient and runs every
//!   operation as a cached single-op kernel.
//! - 1: `jit` of the loss-and-gradient, the optimizer update, the parameter
//!   update, the Σ update and the inverse, called from a Rust loop.
//! - 2: the whole loop in one `scan` under `jit`, the state in tuples.
//! - 3: as 2, the state a struct with `#[derive(Tree)]`.
//! - 4: as 2, a model struct with methods and static fields.
//!
//! Compilation is timed apart from the run where a level compiles: levels 2
//! to 4 compile ahead of time (`lower().compile()`); levels 0 and 1 compile
//! during their first step, which is run once before timing (and reported as
//! their compile time).

use crate::data::Dataset;
use crate::model::{init, neg_elbo, optimizer, sigma_closed_form, step, OptState, Optimizer, Params};
use arrayjit::cuda::Runtime;
use arrayjit::optim::{apply_updates, GradientTransformation};
use arrayjit::{jit, scan_with, tree_map, value_and_grad, Array, Jit, Result, ScanOptions, Tree};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the compiled loop of levels 2 to 4 runs: the CPU ([`Cpu`]), or a
/// device runtime (`Arc<CudaRuntime>` for a GPU).
pub trait Target {
    /// Compiles `f` for `state` ahead of time, then runs it once; returns the
    /// result, the compile time and the run time.
    fn compiled_fit<S: Tree + Clone, R: Tree>(
        &self,
        f: impl Fn(S) -> Result<R>,
        state: S,
    ) -> Result<(R, Duration, Duration)>;
    /// Level 0: eager operations (and the gradient's program) from a Rust loop.
    fn level0(&self, data: &Dataset, iters: usize, progress: &mut dyn FnMut(usize)) -> Result<Fit>;
    /// Level 1: the five jitted pieces called from a Rust loop.
    fn level1(&self, data: &Dataset, iters: usize, progress: &mut dyn FnMut(usize)) -> Result<Fit>;
}

/// Compiles for `state`, then runs what was compiled on it; returns the
/// result and both durations.
fn timed<S, C, R>(
    state: S,
    compile: impl FnOnce(&S) -> Result<C>,
    run: impl FnOnce(C, S) -> Result<R>,
) -> Result<(R, Duration, Duration)> {
    let t = Instant::now();
    let compiled = compile(&state)?;
    let compile = t.elapsed();
    let t = Instant::now();
    let out = run(compiled, state)?;
    Ok((out, compile, t.elapsed()))
}

/// The CPU backend.
pub struct Cpu;

impl Target for Cpu {
    fn compiled_fit<S: Tree + Clone, R: Tree>(
        &self,
        f: impl Fn(S) -> Result<R>,
        state: S,
    ) -> Result<(R, Duration, Duration)> {
        timed(state, |s| jit(f).lower(s)?.compile(), |c, s| c.call(s))
    }

    fn level0(&self, data: &Dataset, iters: usize, progress: &mut dyn FnMut(usize)) -> Result<Fit> {
        rust_loop(0, data, iters, progress, Ok, |params, omega, opt| step(data, params, &omega, opt))
    }

    fn level1(&self, data: &Dataset, iters: usize, progress: &mut dyn FnMut(usize)) -> Result<Fit> {
        level1(data, iters, progress)
    }
}

impl<Rt> Target for Arc<Rt>
where
    Rt: Runtime + Send + Sync + 'static,
    Rt::Buf: Send + Sync,
    Rt::Module: Send + Sync,
{
    fn compiled_fit<S: Tree + Clone, R: Tree>(
        &self,
        f: impl Fn(S) -> Result<R>,
        state: S,
    ) -> Result<(R, Duration, Duration)> {
        // The run includes copying the state in and the results back, which
        // waits for the device to finish.
        timed(state, |s| jit(f).lower(s)?.compile_on(self.clone()), |c, s| c.call(s))
    }

    /// The state lives on the device: every operation of the step runs
    /// there, each as a cached single-operation kernel, the gradient as one
    /// program compiled for the device once its structure comes back; the
    /// data the loss closes over become that program's constants.
    fn level0(&self, data: &Dataset, iters: usize, progress: &mut dyn FnMut(usize)) -> Result<Fit> {
        let device = arrayjit::cuda::EagerDevice::new(self.clone(), "device").handle();
        let place = |(params, sigma, omega, opt): (Params, Array, Array, OptState)| -> Result<_> {
            let put = |a: &Array| a.to_device(&device);
            Ok((tree_map(&params, put), put(&sigma), put(&omega), tree_map(&opt, put)))
        };
        let fit = rust_loop(0, data, iters, progress, place, |params, omega, opt| step(data, params, &omega, opt))?;
        // The final state comes back to the host.
        let host = |a: &Array| Array::from_host(a.to_host());
        Ok(Fit { params: tree_map(&fit.params, host), sigma: host(&fit.sigma), omega: host(&fit.omega), ..fit })
    }

    fn level1(&self, data: &Dataset, iters: usize, progress: &mut dyn FnMut(usize)) -> Result<Fit> {
        level1_on_device(self, data, iters, progress)
    }
}

/// Level 1 on a device: the five pieces compiled for it ahead of time, the
/// state placed there once and passed from call to call as device arrays
/// (leaves in tree order); the losses and the final state come back at the end.
fn level1_on_device<Rt: Runtime>(
    rt: &Arc<Rt>,
    data: &Dataset,
    iters: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Fit> {
    use arrayjit::cuda::DeviceArray;
    let dev = |e: arrayjit::cuda::CudaError| arrayjit::Error::Eval { message: e.to_string(), loc: Default::default() };
    let opt_t = optimizer();
    let (params, sigma, omega) = init(data);
    let opt = opt_t.init_tree(&params)?;
    let t = Instant::now();
    let (loss_and_grad, update, apply, get_sigma, inv) = level1_pieces(data, &opt_t);
    let loss_and_grad = loss_and_grad.lower(&(params.clone(), omega.clone()))?.compile_on(rt.clone())?;
    let update = update.lower(&(params.clone(), opt.clone(), params.clone()))?.compile_on(rt.clone())?;
    let apply = apply.lower(&(params.clone(), params.clone()))?.compile_on(rt.clone())?;
    let get_sigma = get_sigma.lower(&(params.m.clone(), params.s.clone()))?.compile_on(rt.clone())?;
    let inv = inv.lower(&sigma)?.compile_on(rt.clone())?;
    let compile = t.elapsed();
    let put = |leaves: Vec<Array>| -> Result<Vec<DeviceArray<Rt>>> {
        leaves.iter().map(|a| DeviceArray::put(&**rt, a.try_host()?.as_ref()).map_err(dev)).collect()
    };
    let t = Instant::now();
    let mut p = put(arrayjit::tree_leaves(&params))?;
    let mut o = put(arrayjit::tree_leaves(&opt))?;
    let mut om = put(vec![omega.clone()])?.remove(0);
    let mut sg = None;
    let mut losses = Vec::with_capacity(iters);
    for i in 0..iters {
        let args: Vec<&DeviceArray<Rt>> = p.iter().chain(std::iter::once(&om)).collect();
        let mut out = loss_and_grad.call_device(&args)?;
        losses.push(out.remove(0));
        let grads = out;
        let args: Vec<&DeviceArray<Rt>> = grads.iter().chain(&o).chain(&p).collect();
        let mut out = update.call_device(&args)?;
        o = out.split_off(p.len());
        let updates = out;
        let args: Vec<&DeviceArray<Rt>> = p.iter().chain(&updates).collect();
        p = apply.call_device(&args)?;
        // Params' leaves are b, m, s in that order.
        let sigma = get_sigma.call_device(&[&p[1], &p[2]])?.remove(0);
        om = inv.call_device(&[&sigma])?.remove(0);
        sg = Some(sigma);
        progress(i + 1);
    }
    let host = |a: &DeviceArray<Rt>| -> Result<Array> { Ok(Array::from_host(a.get(&**rt).map_err(dev)?)) };
    let losses: Vec<f64> = losses.iter().map(|l| host(l).map(|a| crate::model::scalar(&a))).collect::<Result<_>>()?;
    let run = t.elapsed();
    let leaves = p.iter().map(host).collect::<Result<Vec<_>>>()?;
    let params: Params =
        arrayjit::tree_unflatten(&arrayjit::tree_flatten(&params).1, leaves).map_err(arrayjit::Error::from)?;
    let sigma = match &sg {
        Some(s) => host(s)?,
        None => sigma,
    };
    let omega = host(&om)?;
    Ok(Fit { level: 1, losses, params, sigma, omega, compile, run, timed_iters: iters })
}

/// The outcome of a fit.
#[derive(Clone, Debug)]
pub struct Fit {
    pub level: u8,
    /// The loss (−ELBO) at each iteration, before its step.
    pub losses: Vec<f64>,
    pub params: Params,
    pub sigma: Array,
    pub omega: Array,
    /// Compile time (ahead of time for levels 2–4; the first step's extra time for 0 and 1).
    pub compile: Duration,
    /// The timed run: all iterations for levels 2–4, all but the first for 0 and 1.
    pub run: Duration,
    /// How many iterations `run` covers.
    pub timed_iters: usize,
}

impl Fit {
    /// Milliseconds per timed iteration.
    pub fn ms_per_iter(&self) -> f64 {
        self.run.as_secs_f64() * 1e3 / self.timed_iters.max(1) as f64
    }
}

fn losses_of(x: &Array) -> Vec<f64> {
    x.astype(arrayjit::DType::F64).to_vec::<f64>()
}

/// Fits `data` for `iters` iterations at `level` (0 to 4) on the CPU.
/// `progress` is called with the number of iterations done where the level
/// has a Rust loop.
pub fn fit(level: u8, data: &Dataset, iters: usize, progress: &mut dyn FnMut(usize)) -> Result<Fit> {
    fit_on(&Cpu, level, data, iters, progress)
}

/// [`fit`] on `target`. On a device, level 0 runs each operation there and
/// level 1 keeps its state on the device between the calls of its Rust loop.
pub fn fit_on(
    target: &impl Target,
    level: u8,
    data: &Dataset,
    iters: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Fit> {
    match level {
        0 => target.level0(data, iters, progress),
        1 => target.level1(data, iters, progress),
        2 => level2(target, data, iters),
        3 => level3(target, data, iters),
        4 => level4(target, data, iters),
        _ => Err(arrayjit::Error::Invalid {
            message: format!("there is no level {level} (0 to 4)"),
            loc: Default::default(),
        }),
    }
}

/// Runs `iters` steps from a Rust loop, timing the first (which compiles
/// what it meets) apart from the rest.
fn rust_loop(
    level: u8,
    data: &Dataset,
    iters: usize,
    progress: &mut dyn FnMut(usize),
    place: impl FnOnce((Params, Array, Array, OptState)) -> Result<(Params, Array, Array, OptState)>,
    mut step: impl FnMut(Params, Array, OptState) -> Result<(Params, Array, Array, OptState, Array)>,
) -> Result<Fit> {
    let (params, sigma, omega) = init(data);
    let opt = optimizer().init_tree(&params)?;
    let (mut params, mut sigma, mut omega, mut opt) = place((params, sigma, omega, opt))?;
    let mut losses = Vec::with_capacity(iters);
    let mut compile = Duration::ZERO;
    let mut started = Instant::now();
    for i in 0..iters {
        let t = Instant::now();
        let (p, sg, om, o, loss) = step(params, omega, opt)?;
        (params, sigma, omega, opt) = (p, sg, om, o);
        losses.push(crate::model::scalar(&loss));
        if i == 0 {
            // The first step compiles every single-op kernel it meets
            // (and, at level 1, each jitted piece).
            compile = t.elapsed();
            started = Instant::now();
        }
        progress(i + 1);
    }
    let run = started.elapsed();
    Ok(Fit { level, losses, params, sigma, omega, compile, run, timed_iters: iters.saturating_sub(1) })
}

/// Level 1's five jitted pieces: the loss and its gradient, the optimizer's
/// update, the parameter update, Σ, and Ω = Σ⁻¹.
#[allow(clippy::type_complexity)]
fn level1_pieces<'a>(
    data: &'a Dataset,
    opt: &'a Optimizer,
) -> (
    Jit<impl Fn((Params, Array)) -> Result<(Array, Params)> + 'a, (Params, Array), Result<(Array, Params)>>,
    Jit<
        impl Fn((Params, OptState, Params)) -> Result<(Params, OptState)> + 'a,
        (Params, OptState, Params),
        Result<(Params, OptState)>,
    >,
    Jit<impl Fn((Params, Params)) -> Result<Params>, (Params, Params), Result<Params>>,
    Jit<impl Fn((Array, Array)) -> Array, (Array, Array), Array>,
    Jit<impl Fn(Array) -> Result<Array>, Array, Result<Array>>,
) {
    (
        jit(move |(params, omega): (Params, Array)| value_and_grad(|p: Params| neg_elbo(&p, &omega, data))(params)),
        jit(move |(grads, state, params): (Params, OptState, Params)| opt.update_tree(grads, state, &params)),
        jit(|(params, updates): (Params, Params)| apply_updates(&params, &updates)),
        jit(|(m, s): (Array, Array)| sigma_closed_form(&m, &s)),
        jit(|sigma: Array| sigma.try_inv_spd()),
    )
}

fn level1(data: &Dataset, iters: usize, progress: &mut dyn FnMut(usize)) -> Result<Fit> {
    let opt_t = optimizer();
    let (loss_and_grad, update, apply, get_sigma, inv) = level1_pieces(data, &opt_t);
    rust_loop(1, data, iters, progress, Ok, |params, omega, opt| {
        let (loss, grads) = loss_and_grad.call((params.clone(), omega))?;
        let (updates, opt) = update.call((grads, opt, params.clone()))?;
        let params = apply.call((params, updates))?;
        let sigma = get_sigma.call((params.m.clone(), params.s.clone()))?;
        let omega = inv.call(sigma.clone())?;
        Ok((params, sigma, omega, opt, loss))
    })
}

fn scan_opts(iters: usize) -> ScanOptions {
    ScanOptions::default().length(iters)
}

/// Level 2's state: the parameters, Σ, Ω and the optimizer's state, in a tuple.
pub type ScanState = (Params, Array, Array, OptState);

/// Level 2's starting state for `data`.
pub fn scan_start(data: &Dataset) -> Result<ScanState> {
    let (params, sigma, omega) = init(data);
    let opt = optimizer().init_tree(&params)?;
    Ok((params, sigma, omega, opt))
}

/// Level 2's program: `iters` steps in one `scan`, returning the final state
/// and the loss before each step.
pub fn scan_fit(data: &Dataset, iters: usize) -> impl Fn(ScanState) -> Result<(ScanState, Array)> + Clone + '_ {
    move |state: ScanState| {
        scan_with(
            |(params, _sigma, omega, opt): ScanState, (): ()| -> Result<(ScanState, Array)> {
                let (params, sigma, omega, opt, loss) = step(data, params, &omega, opt)?;
                Ok(((params, sigma, omega, opt), loss))
            },
            state,
            (),
            scan_opts(iters),
        )
    }
}

fn level2(target: &impl Target, data: &Dataset, iters: usize) -> Result<Fit> {
    let (((params, sigma, omega, _), losses), compile, run) =
        target.compiled_fit(scan_fit(data, iters), scan_start(data)?)?;
    Ok(Fit { level: 2, losses: losses_of(&losses), params, sigma, omega, compile, run, timed_iters: iters })
}

/// The fit's state as a struct.
#[derive(Clone, Debug, Tree)]
pub struct FitState {
    pub params: Params,
    pub sigma: Array,
    pub omega: Array,
    pub opt: OptState,
}

fn level3(target: &impl Target, data: &Dataset, iters: usize) -> Result<Fit> {
    let (params, sigma, omega) = init(data);
    let opt = optimizer().init_tree(&params)?;
    let fit3 = |state: FitState| {
        scan_with(
            |s: FitState, (): ()| -> Result<(FitState, Array)> {
                let (params, sigma, omega, opt, loss) = step(data, s.params, &s.omega, s.opt)?;
                Ok((FitState { params, sigma, omega, opt }, loss))
            },
            state,
            (),
            scan_opts(iters),
        )
    };
    let ((s, losses), compile, run) = target.compiled_fit(fit3, FitState { params, sigma, omega, opt })?;
    Ok(Fit {
        level: 3,
        losses: losses_of(&losses),
        params: s.params,
        sigma: s.sigma,
        omega: s.omega,
        compile,
        run,
        timed_iters: iters,
    })
}

/// The model as a struct with methods: its parameters and covariance are
/// array fields, its sizes static fields (part of the compile-cache key).
#[derive(Clone, Debug, Tree)]
pub struct PlnModel {
    pub b: Array,
    pub m: Array,
    pub s: Array,
    pub sigma: Array,
    pub omega: Array,
    #[tree(static)]
    pub n: usize,
    #[tree(static)]
    pub p: usize,
}

impl PlnModel {
    pub fn new(data: &Dataset) -> PlnModel {
        let (params, sigma, omega) = init(data);
        PlnModel { b: params.b, m: params.m, s: params.s, sigma, omega, n: data.n, p: data.p }
    }

    pub fn params(&self) -> Params {
        Params { b: self.b.clone(), m: self.m.clone(), s: self.s.clone() }
    }

    pub fn with_params(self, p: Params) -> PlnModel {
        PlnModel { b: p.b, m: p.m, s: p.s, ..self }
    }

    pub fn loss(&self, data: &Dataset) -> Array {
        neg_elbo(&self.params(), &self.omega, data)
    }

    pub fn update_sigma(self) -> PlnModel {
        let sigma = sigma_closed_form(&self.m, &self.s);
        PlnModel { sigma, ..self }
    }

    pub fn update_omega(self) -> Result<PlnModel> {
        let omega = self.sigma.try_inv_spd()?;
        Ok(PlnModel { omega, ..self })
    }

    /// One gradient step on (B, M, S), then Σ and Ω.
    pub fn step(self, opt: OptState, data: &Dataset) -> Result<(PlnModel, OptState, Array)> {
        let omega = self.omega.clone();
        let (loss, grads) = value_and_grad(|p: Params| neg_elbo(&p, &omega, data))(self.params())?;
        let params = self.params();
        let (updates, opt) = optimizer().update_tree(grads, opt, &params)?;
        let model = self.with_params(apply_updates(&params, &updates)?).update_sigma().update_omega()?;
        Ok((model, opt, loss))
    }
}

fn level4(target: &impl Target, data: &Dataset, iters: usize) -> Result<Fit> {
    let model = PlnModel::new(data);
    let opt = optimizer().init_tree(&model.params())?;
    let fit4 = |(model, opt): (PlnModel, OptState)| {
        scan_with(
            |(model, opt): (PlnModel, OptState), (): ()| -> Result<((PlnModel, OptState), Array)> {
                let (model, opt, loss) = model.step(opt, data)?;
                Ok(((model, opt), loss))
            },
            (model, opt),
            (),
            scan_opts(iters),
        )
    };
    let (((m, _), losses), compile, run) = target.compiled_fit(fit4, (model, opt))?;
    let params = m.params();
    Ok(Fit {
        level: 4,
        losses: losses_of(&losses),
        params,
        sigma: m.sigma,
        omega: m.omega,
        compile,
        run,
        timed_iters: iters,
    })
}
