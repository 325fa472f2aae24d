//! Eager execution on a device: arrays placed in its memory
//! ([`Array::to_device`](arrayjit_trace::Array::to_device)) and operations on
//! them. Each operation runs as a one-equation program compiled once for its
//! primitive, parameters and operand types, each whole program (a gradient
//! evaluated eagerly) once for its structure; both are cached, as JAX caches
//! its eager kernels.

use crate::array::DeviceArray;
use crate::exec::Executable;
use crate::runtime::Runtime;
use arrayjit_ir::fingerprint::fingerprint;
use arrayjit_ir::{AVal, HostArray, Prim, Program};
use arrayjit_trace::{Device, DeviceBuffer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// Programs kept compiled at most.
const MAX_PROGRAMS: usize = 256;

/// Compiled programs by fingerprint, with the program (which keeps the
/// constants the fingerprint identifies by address alive).
type Cache<R> = HashMap<u64, (Program, Arc<Executable<R>>)>;

/// A runtime as a [`Device`] arrays can live on.
pub struct EagerDevice<R: Runtime> {
    rt: Arc<R>,
    name: String,
    me: Weak<EagerDevice<R>>,
    cache: Mutex<Cache<R>>,
}

/// An array in an [`EagerDevice`]'s memory.
struct Buffer<R: Runtime> {
    array: DeviceArray<R>,
    device: Arc<EagerDevice<R>>,
}

impl<R> EagerDevice<R>
where
    R: Runtime + Send + Sync + 'static,
    R::Buf: Send + Sync,
    R::Module: Send + Sync,
{
    /// `rt` as a device named `name` (for messages).
    pub fn new(rt: Arc<R>, name: impl Into<String>) -> Arc<EagerDevice<R>> {
        Arc::new_cyclic(|me| EagerDevice { rt, name: name.into(), me: me.clone(), cache: Mutex::new(HashMap::new()) })
    }

    /// The handle arrays take (`Array::to_device`).
    pub fn handle(self: &Arc<Self>) -> Arc<dyn Device> {
        self.clone()
    }

    pub fn runtime(&self) -> &Arc<R> {
        &self.rt
    }

    /// Programs compiled so far.
    pub fn cached_programs(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn this(&self) -> Result<Arc<EagerDevice<R>>, String> {
        self.me.upgrade().ok_or_else(|| "the device was dropped".to_string())
    }

    fn executable(&self, p: Program) -> Result<Arc<Executable<R>>, String> {
        let key = fingerprint(&p);
        if let Some((_, e)) = self.cache.lock().map_err(|_| "the device's cache is poisoned")?.get(&key) {
            return Ok(e.clone());
        }
        let (optimized, _) = arrayjit_lower::optimize(&p).map_err(|e| e.to_string())?;
        let exe =
            Arc::new(Executable::compile(&*self.rt, &arrayjit_lower::fuse(&optimized)).map_err(|e| e.to_string())?);
        let mut cache = self.cache.lock().map_err(|_| "the device's cache is poisoned")?;
        // As on the CPU: a bounded cache that starts over when full.
        if cache.len() >= MAX_PROGRAMS {
            cache.clear();
        }
        cache.insert(key, (p, exe.clone()));
        Ok(exe)
    }

    fn run(&self, exe: &Executable<R>, args: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>, String> {
        let arrays = args
            .iter()
            .map(|b| match b.as_any().downcast_ref::<Buffer<R>>() {
                Some(own) if std::ptr::eq(Arc::as_ptr(&own.device), self) => Ok(&own.array),
                _ => Err(format!("an operand is not in the memory of {}", self.name)),
            })
            .collect::<Result<Vec<_>, String>>()?;
        let outs = exe.run_arrays(&self.rt, &arrays).map_err(|e| e.to_string())?;
        let device = self.this()?;
        Ok(outs
            .into_iter()
            .map(|array| Arc::new(Buffer { array, device: device.clone() }) as Arc<dyn DeviceBuffer>)
            .collect())
    }
}

impl<R> Device for EagerDevice<R>
where
    R: Runtime + Send + Sync + 'static,
    R::Buf: Send + Sync,
    R::Module: Send + Sync,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    fn put(&self, h: &HostArray) -> Result<Arc<dyn DeviceBuffer>, String> {
        let array = DeviceArray::put(&*self.rt, h).map_err(|e| e.to_string())?;
        Ok(Arc::new(Buffer { array, device: self.this()? }))
    }

    fn execute(&self, prim: &Prim, args: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>, String> {
        let avals: Vec<AVal> = args.iter().map(|a| a.aval().clone()).collect();
        let exe = self.executable(Program::one_equation(prim, &avals).map_err(|e| e.to_string())?)?;
        self.run(&exe, args)
    }

    fn execute_program(&self, p: &Program, args: &[&dyn DeviceBuffer]) -> Result<Vec<Arc<dyn DeviceBuffer>>, String> {
        let exe = self.executable(p.clone())?;
        self.run(&exe, args)
    }
}

impl<R> DeviceBuffer for Buffer<R>
where
    R: Runtime + Send + Sync + 'static,
    R::Buf: Send + Sync,
    R::Module: Send + Sync,
{
    fn aval(&self) -> &AVal {
        self.array.aval()
    }

    fn device(&self) -> Arc<dyn Device> {
        self.device.clone()
    }

    fn to_host(&self) -> Result<HostArray, String> {
        self.array.get(&self.device.rt).map_err(|e| e.to_string())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
