//! Compiling a jitted function for a device other than the host CPU: a CUDA
//! GPU ([`arrayjit_cuda::CudaRuntime`]) or any other [`Runtime`] (the CUDA
//! backend's emulator runs the same generated code on the CPU, for tests).
//!
//! ```no_run
//! use arrayjit_cuda::CudaRuntime;
//! use arrayjit_jit::jit;
//! use arrayjit_trace::Array;
//! use std::sync::Arc;
//! let gpu = Arc::new(CudaRuntime::new(0)?); // "no CUDA driver found" without one
//! let x = Array::from_vec(vec![1.0f32, 2.0, 3.0], [3]);
//! let f = jit(|x: Array| (x.exp() * 2.0).sum(..));
//! let on_gpu = f.lower(&x)?.compile_on(gpu)?;
//! let y = on_gpu.call(x)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::stages::{compile_error, leaves_of, Lowered, Timings};
use arrayjit_cuda::{DeviceArray, Executable, Runtime};
use arrayjit_ir::{AVal, HostArray, Loc};
use arrayjit_trace::{tree_unflatten, Array, Error, Result, Tree, TreeDef};
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;
use std::time::Instant;

/// A function compiled for runtime `R`: arguments are copied to the device,
/// the whole program runs there, and the results are copied back.
pub struct CompiledOn<R: Runtime, In, Out> {
    name: String,
    rt: Arc<R>,
    exe: Executable<R>,
    in_def: TreeDef,
    out_def: TreeDef,
    timings: Timings,
    _types: PhantomData<fn(In) -> Out>,
}

impl<In: Tree, Out: Tree> Lowered<In, Out> {
    /// Renders the fused kernels for the device, compiles them (NVRTC for a
    /// GPU) and plans the program's other steps there.
    pub fn compile_on<R: Runtime>(self, rt: Arc<R>) -> Result<CompiledOn<R, In, Out>> {
        let t = Instant::now();
        let exe = Executable::compile(&*rt, &self.schedule)
            .map_err(|e| compile_error(format!("compiling `{}` for the device failed: {e}", self.name), self.loc))?;
        let mut timings = self.timings;
        timings.codegen = t.elapsed();
        Ok(CompiledOn {
            name: self.name,
            rt,
            exe,
            in_def: self.traced.in_def,
            out_def: self.traced.out_def,
            timings,
            _types: PhantomData,
        })
    }
}

impl<R: Runtime, In: Tree, Out: Tree> CompiledOn<R, In, Out> {
    /// Runs on concrete arguments of exactly the compiled signature.
    #[track_caller]
    pub fn call(&self, args: In) -> Result<Out> {
        let loc = Loc(Some(Location::caller()));
        let leaves = leaves_of(&self.name, &self.in_def, &args, loc)?;
        let hosts: Vec<Arc<HostArray>> = leaves
            .iter()
            .map(|a| {
                a.try_host().cloned().map_err(|_| Error::Invalid {
                    message: format!("`{}`: a compiled function takes concrete arrays, not tracers", self.name),
                    loc,
                })
            })
            .collect::<Result<_>>()?;
        let refs: Vec<&HostArray> = hosts.iter().map(|h| h.as_ref()).collect();
        let outs = self
            .exe
            .run(&*self.rt, &refs)
            .map_err(|e| Error::Eval { message: format!("`{}`: {e}", self.name), loc })?;
        tree_unflatten(&self.out_def, outs.into_iter().map(Array::from_host).collect()).map_err(Error::from)
    }

    /// Runs on the leaves of the arguments (in tree order) already on the
    /// device; the leaves of the result stay there. A loop of such calls
    /// moves nothing between host and device.
    #[track_caller]
    pub fn call_device(&self, args: &[&DeviceArray<R>]) -> Result<Vec<DeviceArray<R>>> {
        let loc = Loc(Some(Location::caller()));
        self.exe.run_arrays(&*self.rt, args).map_err(|e| Error::Eval { message: format!("`{}`: {e}", self.name), loc })
    }

    /// Every stage's time; `codegen` is the device compile.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// The argument types.
    pub fn in_avals(&self) -> &[AVal] {
        self.exe.in_avals()
    }

    /// The runtime it runs on.
    pub fn runtime(&self) -> &Arc<R> {
        &self.rt
    }
}
