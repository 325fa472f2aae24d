//! The ahead-of-time stages of a jitted function, as in JAX: `lower` traces
//! and optimises and fuses ([`Lowered`]), `compile` generates native code
//! ([`Compiled`]). Each stage is timed and can show what it produced.

use crate::dump;
use arrayjit_cpu::{Arg, CompileOptions, Executable};
use arrayjit_ir::{AVal, HostArray, Loc, Program};
use arrayjit_lower::passes::Stages;
use arrayjit_lower::Schedule;
use arrayjit_trace::{tree_flatten, tree_unflatten, Array, Error, Result, Traced, Tree, TreeDef};
use std::fmt::Write;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long each stage took.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Running the Rust function on abstract arguments.
    pub trace: Duration,
    /// The optimisation passes.
    pub optimize: Duration,
    /// Fusion into loop kernels.
    pub fuse: Duration,
    /// Cranelift code generation for every kernel.
    pub codegen: Duration,
}

impl Timings {
    /// The whole compile: trace, optimise, fuse and generate code.
    pub fn total(&self) -> Duration {
        self.trace + self.optimize + self.fuse + self.codegen
    }
}

impl std::fmt::Display for Timings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "trace {:.3} ms, optimise {:.3} ms, fuse {:.3} ms, codegen {:.3} ms (total {:.3} ms)",
            ms(self.trace),
            ms(self.optimize),
            ms(self.fuse),
            ms(self.codegen),
            ms(self.total())
        )
    }
}

pub(crate) fn compile_error(message: String, loc: Loc) -> Error {
    Error::Transform { op: "jit".into(), message, loc }
}

/// A traced, optimised and fused function, not yet compiled.
pub struct Lowered<In, Out> {
    pub(crate) name: String,
    pub(crate) traced: Traced,
    pub(crate) optimized: Program,
    pub(crate) stages: Stages,
    pub(crate) schedule: Schedule,
    pub(crate) timings: Timings,
    pub(crate) loc: Loc,
    pub(crate) _types: PhantomData<fn(In) -> Out>,
}

impl<In: Tree, Out: Tree> Lowered<In, Out> {
    /// Optimises and fuses a traced function.
    pub(crate) fn from_traced(name: String, traced: Traced, trace_time: Duration, loc: Loc) -> Result<Self> {
        let t = Instant::now();
        let (optimized, stages) = arrayjit_lower::optimize(&traced.program)
            .map_err(|e| compile_error(format!("optimising `{name}` failed: {e}"), loc))?;
        let optimize = t.elapsed();
        let t = Instant::now();
        let schedule = arrayjit_lower::fuse(&optimized);
        let fuse = t.elapsed();
        let timings = Timings { trace: trace_time, optimize, fuse, codegen: Duration::ZERO };
        let lowered = Lowered { name, traced, optimized, stages, schedule, timings, loc, _types: PhantomData };
        dump::lowered(&lowered);
        Ok(lowered)
    }

    /// The program as traced (before any optimisation).
    pub fn program(&self) -> &Program {
        &self.traced.program
    }

    /// The program after the optimisation passes.
    pub fn optimized(&self) -> &Program {
        &self.optimized
    }

    /// The program after each optimisation pass, by pass name.
    pub fn stages(&self) -> &Stages {
        &self.stages
    }

    /// The fused schedule: buffers, loop kernels, library steps and the
    /// reasons behind each fusion decision.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The optimised program and the fused kernels, as text.
    pub fn as_text(&self) -> String {
        let mut s = String::new();
        let _ =
            writeln!(s, "# {}: optimised program\n{}\n# fused schedule\n{}", self.name, self.optimized, self.schedule);
        s
    }

    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// Generates native code for every kernel.
    pub fn compile(self) -> Result<Compiled<In, Out>> {
        self.compile_with(true)
    }

    pub(crate) fn compile_with(self, keep_clif: bool) -> Result<Compiled<In, Out>> {
        let t = Instant::now();
        let keep_clif = keep_clif || dump::enabled();
        let exe = Executable::compile(&self.schedule, &CompileOptions { keep_clif, ..CompileOptions::default() })
            .map_err(|e| compile_error(format!("compiling `{}` failed: {e}", self.name), self.loc))?;
        let mut timings = self.timings;
        timings.codegen = t.elapsed();
        let compiled = Compiled {
            name: self.name,
            exe: Arc::new(exe),
            in_def: self.traced.in_def,
            out_def: self.traced.out_def,
            timings,
            _types: PhantomData,
        };
        dump::compiled(&compiled);
        Ok(compiled)
    }
}

/// A compiled function: native code for one signature.
pub struct Compiled<In, Out> {
    pub(crate) name: String,
    pub(crate) exe: Arc<Executable>,
    pub(crate) in_def: TreeDef,
    pub(crate) out_def: TreeDef,
    pub(crate) timings: Timings,
    pub(crate) _types: PhantomData<fn(In) -> Out>,
}

impl<In: Tree, Out: Tree> Compiled<In, Out> {
    /// Runs on concrete arguments of exactly the compiled signature.
    #[track_caller]
    pub fn call(&self, args: In) -> Result<Out> {
        let loc = Loc(Some(Location::caller()));
        let leaves = leaves_of(&self.name, &self.in_def, &args, loc)?;
        drop(args);
        run(&self.exe, &self.name, leaves, &self.out_def, loc)
    }

    /// Each kernel's Cranelift IR, as Cranelift optimised it (loop-invariant
    /// values moved out of loops, constants folded), then the machine code it
    /// became, after a line `; machine code`.
    pub fn clif(&self) -> String {
        self.exe.clif_text()
    }

    /// Every stage's time, code generation included.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    pub fn executable(&self) -> &Executable {
        &self.exe
    }

    /// The argument types.
    pub fn in_avals(&self) -> &[AVal] {
        self.exe.in_avals()
    }
}

/// The leaves of `args`, which must have the structure `want` that `name` was compiled for.
pub(crate) fn leaves_of<In: Tree>(name: &str, want: &TreeDef, args: &In, loc: Loc) -> Result<Vec<Array>> {
    let (leaves, def) = tree_flatten(args);
    if def != *want {
        return Err(Error::Tree {
            message: format!("`{name}` was compiled for arguments {want} but was given {def}"),
            loc,
        });
    }
    Ok(leaves)
}

/// Runs an executable on the leaves of the arguments and rebuilds the result
/// tree. A leaf nobody else holds is donated: its memory may hold a result.
pub(crate) fn run<Out: Tree>(
    exe: &Executable,
    name: &str,
    leaves: Vec<Array>,
    out_def: &TreeDef,
    loc: Loc,
) -> Result<Out> {
    let not_concrete =
        || Error::Invalid { message: format!("`{name}`: a compiled function takes concrete arrays, not tracers"), loc };
    let mut owned: Vec<Option<HostArray>> = Vec::with_capacity(leaves.len());
    let mut shared: Vec<Option<Array>> = Vec::with_capacity(leaves.len());
    for leaf in leaves {
        match leaf.try_into_host() {
            Ok(h) => {
                owned.push(Some(h));
                shared.push(None);
            }
            Err(a) => {
                owned.push(None);
                shared.push(Some(a));
            }
        }
    }
    let mut args = Vec::with_capacity(owned.len());
    for (o, sh) in owned.into_iter().zip(&shared) {
        args.push(match (o, sh) {
            (Some(h), _) => Arg::Donated(h),
            (None, Some(a)) => {
                Arg::Borrowed(a.try_host().map_err(|e| if a.is_tracer() { not_concrete() } else { e })?.as_ref())
            }
            // Every leaf went to one side or the other.
            (None, None) => return Err(not_concrete()),
        });
    }
    let outs = exe.run_with(args).map_err(|e| Error::Eval { message: format!("`{name}`: {e}"), loc })?;
    tree_unflatten(out_def, outs.into_iter().map(Array::from_host).collect()).map_err(Error::from)
}
