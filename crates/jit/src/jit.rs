//! `jit(f)`: trace once per abstract signature, compile, cache, run.

use crate::explain;
use crate::stages::{run, Compiled, Lowered};
use arrayjit_ir::{AVal, Loc};
use arrayjit_trace::bind::apply_program;
use arrayjit_trace::{
    is_tracing, trace_avals, tree_flatten, tree_unflatten, Array, Error, Result, TraceOutput, Tree, TreeDef,
};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The cache key: the argument tree's structure (static values included) and
/// every leaf's dtype and shape.
type Key = (TreeDef, Vec<AVal>);

/// Compiled executables by signature.
type Cache<In, Out> = Mutex<HashMap<Key, Arc<Compiled<In, Out>>>>;

/// A jitted function. See [`jit`].
pub struct Jit<F, In, R: TraceOutput> {
    f: F,
    name: String,
    explain: bool,
    cache: Cache<In, R::Tree>,
    misses: Mutex<Vec<String>>,
    /// Compiled signatures, oldest first (cache-miss explanations compare
    /// with the most recent closest one).
    history: Mutex<Vec<Key>>,
    /// Traced programs by signature, for calls whose arguments live on a
    /// device (the device compiles and caches its own code for them).
    on_device: Mutex<HashMap<Key, Arc<(arrayjit_ir::Program, TreeDef)>>>,
    _types: PhantomData<fn(In) -> R>,
}

/// Compiles `f` for each abstract signature it is called with.
///
/// Called on concrete arrays, the first call per signature (tree structure,
/// shapes, dtypes, [`Static`](crate::Static) values) traces `f`, optimises,
/// fuses and compiles it; later calls run the cached native code. Called
/// under another transformation (`grad`, another `jit`), `f` is traced into
/// the enclosing program, so `grad(jit(f))` and `jit(grad(f))` both work.
///
/// ```
/// use arrayjit_jit::jit;
/// use arrayjit_trace::Array;
///
/// // log(1 + eˣ), written so that it neither overflows nor loses small values.
/// let softplus = jit(|x: Array| x.maximum(0.0) + (-x.abs()).exp().log1p());
/// let y = softplus.call(Array::from_vec(vec![0.0f64, 1000.0, -50.0], [3]))?.to_vec::<f64>();
/// assert!((y[0] - 2f64.ln()).abs() < 1e-12 && y[1] == 1000.0 && (y[2] - (-50f64).exp()).abs() < 1e-30);
/// # Ok::<(), arrayjit_trace::Error>(())
/// ```
pub fn jit<In: Tree, R: TraceOutput, F: Fn(In) -> R>(f: F) -> Jit<F, In, R> {
    let name = short_type_name(std::any::type_name::<F>());
    let explain = std::env::var("ARRAYJIT_EXPLAIN_CACHE_MISSES").is_ok_and(|v| !v.is_empty() && v != "0");
    Jit {
        f,
        name,
        explain,
        cache: Mutex::new(HashMap::new()),
        misses: Mutex::new(Vec::new()),
        history: Mutex::new(Vec::new()),
        on_device: Mutex::new(HashMap::new()),
        _types: PhantomData,
    }
}

/// `a::b::main::{{closure}}` → `main::{{closure}}`.
fn short_type_name(full: &str) -> String {
    let parts: Vec<&str> = full.split("::").collect();
    let keep = parts.len().saturating_sub(2);
    parts[keep..].join("::")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl<F, In, R> Jit<F, In, R>
where
    In: Tree,
    R: TraceOutput,
    F: Fn(In) -> R,
{
    /// Names the function in messages, dumps and cache-miss explanations.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Logs each recompilation and what changed in the signature (also
    /// turned on for every jitted function by `ARRAYJIT_EXPLAIN_CACHE_MISSES=1`).
    pub fn explain_cache_misses(mut self, on: bool) -> Self {
        self.explain = on;
        self
    }

    /// The number of compiled signatures.
    pub fn cache_size(&self) -> usize {
        lock(&self.cache).len()
    }

    /// Why each compilation after the first happened, oldest first.
    pub fn cache_misses(&self) -> Vec<String> {
        lock(&self.misses).clone()
    }

    /// Calls the function: compiled and cached for concrete arguments, traced
    /// into the enclosing program under a transformation.
    #[track_caller]
    pub fn call(&self, args: In) -> Result<R::Tree> {
        self.call_at(args, Loc(Some(Location::caller())))
    }

    fn call_at(&self, args: In, loc: Loc) -> Result<R::Tree> {
        let (leaves, def) = tree_flatten(&args);
        // The leaves now hold the only other handles: an array moved in can be donated.
        drop(args);
        let avals: Vec<AVal> = leaves.iter().map(Array::aval).collect();
        if is_tracing() {
            let traced = trace_avals(|a: In| (self.f)(a), &def, &avals, loc)?;
            let mut all = leaves;
            all.extend(traced.captured.iter().cloned());
            let outs = apply_program(&traced.program, &all, loc)?;
            return tree_unflatten(&traced.out_def, outs).map_err(Error::from);
        }
        let key = (def, avals);
        if leaves.iter().any(|a| a.device().is_some()) {
            return self.call_on_device(key, leaves, loc);
        }
        let hit = lock(&self.cache).get(&key).cloned();
        let compiled = match hit {
            Some(c) => c,
            None => {
                let c = Arc::new(self.lower_key(&key, loc)?.compile_with(false)?);
                let mut cache = lock(&self.cache);
                let mut history = lock(&self.history);
                if !cache.contains_key(&key) {
                    history.push(key.clone());
                }
                if history.len() > 1 && !cache.contains_key(&key) {
                    let why = explain::miss(&self.name, &key, history[..history.len() - 1].iter().rev());
                    if self.explain {
                        eprintln!("arrayjit: {why}");
                    }
                    lock(&self.misses).push(why);
                }
                cache.entry(key.clone()).or_insert(c).clone()
            }
        };
        run(&compiled.exe, &self.name, leaves, &compiled.out_def, loc)
    }

    /// A call with arguments on a device: the function is traced once per
    /// signature and runs there (compiled by the device for that program and
    /// cached); host arguments are copied over, results stay on the device.
    fn call_on_device(&self, key: Key, leaves: Vec<Array>, loc: Loc) -> Result<R::Tree> {
        let hit = lock(&self.on_device).get(&key).cloned();
        let traced = match hit {
            Some(t) => t,
            None => {
                let t = trace_avals(|a: In| (self.f)(a), &key.0, &key.1, loc)?;
                let t = Arc::new((t.program, t.out_def));
                lock(&self.on_device).entry(key).or_insert(t).clone()
            }
        };
        let outs = apply_program(&traced.0, &leaves, loc)?;
        tree_unflatten(&traced.1, outs).map_err(Error::from)
    }

    /// Traces, optimises and fuses for arguments like `args` (only their
    /// structure, shapes, dtypes and static values matter), without compiling.
    #[track_caller]
    pub fn lower(&self, args: &In) -> Result<Lowered<In, R::Tree>> {
        let loc = Loc(Some(Location::caller()));
        let (leaves, def) = tree_flatten(args);
        let avals: Vec<AVal> = leaves.iter().map(Array::aval).collect();
        self.lower_key(&(def, avals), loc)
    }

    fn lower_key(&self, key: &Key, loc: Loc) -> Result<Lowered<In, R::Tree>> {
        let t = Instant::now();
        let traced = trace_avals(|a: In| (self.f)(a), &key.0, &key.1, loc)?;
        let trace_time = t.elapsed();
        if !traced.captured.is_empty() {
            return Err(Error::Invalid {
                message: format!(
                    "`{}` closes over {} traced value(s) of an enclosing transformation; it can only be lowered \
                     on its own, outside any trace",
                    self.name,
                    traced.captured.len()
                ),
                loc,
            });
        }
        Lowered::from_traced(self.name.clone(), traced, trace_time, loc)
    }

    /// The function as a closure, for use where a `Fn` is expected
    /// (`grad(jitted.as_fn())`); its errors point at the line that called
    /// `as_fn`.
    #[track_caller]
    pub fn as_fn(&self) -> impl Fn(In) -> Result<R::Tree> + '_ {
        let loc = Loc(Some(Location::caller()));
        move |args| self.call_at(args, loc)
    }
}
