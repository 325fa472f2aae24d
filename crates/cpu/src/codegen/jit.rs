//! The Cranelift JIT module an executable's kernels are compiled into: native
//! ISA (SSE4/AVX/FMA as the host has them), `opt_level = speed`, and the few
//! runtime functions generated code may call.

use super::compile::{compile_all, Pending};
use super::CodegenError;
use crate::math::bulk::RowOp;
use arrayjit_ir::DType;
use cranelift_codegen::ir::{types, AbiParam, Signature};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};
use std::collections::HashMap;

/// The machine code's entry point: a pointer to an array of buffer pointers
/// (inputs, then outputs) and the range `lo..hi` of the outermost axis to run.
type RawKernelFn = unsafe extern "C" fn(*const *mut u8, i64, i64);

/// A compiled kernel, called only through its (unsafe) `call`.
#[derive(Clone, Copy)]
pub struct KernelFn(RawKernelFn);

impl KernelFn {
    /// Runs the kernel over `lo..hi` of its outermost axis, with `table`
    /// holding its buffer pointers (inputs, then outputs).
    ///
    /// # Safety
    /// Every pointer in `table` must address a buffer of the size and dtype
    /// the kernel was compiled for, and `lo..hi` must lie within its outermost
    /// axis; outputs must not overlap buffers the kernel reads, unless the
    /// kernel's plan allows it (see [`KernelCode`](super::KernelCode)).
    pub(crate) unsafe fn call(self, table: *const *mut u8, lo: usize, hi: usize) {
        clear_upper_halves();
        // SAFETY: guaranteed by the caller.
        unsafe { (self.0)(table, lo as i64, hi as i64) }
    }
}

/// Marks the upper halves of the 256-bit vector registers clean.
///
/// Cranelift's code mixes VEX-encoded instructions with legacy SSE ones
/// (register moves, spills). Code that used 256-bit registers and left their
/// upper halves dirty (the GEMM's kernels can) makes every legacy SSE
/// instruction after it wait on a merge with them: on the machines measured,
/// the PLN's forward kernel ran 25–50 times slower on a thread in that state,
/// until something else (a libc string function) cleared it.
fn clear_upper_halves() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX, checked just above.
        unsafe { vzeroupper() }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn vzeroupper() {
    std::arch::x86_64::_mm256_zeroupper();
}

extern "C" fn rt_fmodf(a: f32, b: f32) -> f32 {
    a % b
}

extern "C" fn rt_fmod(a: f64, b: f64) -> f64 {
    a % b
}

/// Names and signatures of the runtime functions kernels import.
pub(crate) const FMODF: &str = "arrayjit_fmodf";
pub(crate) const FMOD: &str = "arrayjit_fmod";

/// A module being filled with kernels.
pub struct KernelModule {
    pub(crate) module: JITModule,
    pub(crate) ctx: Context,
    pub(crate) fctx: FunctionBuilderContext,
    funcs: Vec<FuncId>,
    /// Kernels built but not yet compiled, in the order they were added.
    pub(crate) pending: Vec<Pending>,
    /// Inline fallbacks of row functions, by operation and dtype (see `define_row_fallback`).
    pub(crate) row_fallbacks: HashMap<(RowOp, DType), FuncId>,
    helpers: usize,
}

fn err(what: &str, e: impl std::fmt::Display) -> CodegenError {
    CodegenError { message: format!("{what}: {e}"), clif: None }
}

impl KernelModule {
    pub fn new() -> Result<KernelModule, CodegenError> {
        let mut fb = settings::builder();
        fb.set("opt_level", "speed").map_err(|e| err("flag opt_level", e))?;
        // The IR verifier costs about a quarter of compile time; debug builds
        // (and so the test suite) keep it as a check on the generator.
        let verify = if cfg!(debug_assertions) { "true" } else { "false" };
        fb.set("enable_verifier", verify).map_err(|e| err("flag enable_verifier", e))?;
        fb.set("use_colocated_libcalls", "false").map_err(|e| err("flag", e))?;
        fb.set("is_pic", "false").map_err(|e| err("flag is_pic", e))?;
        let isa_builder = cranelift_native::builder().map_err(|e| err("host ISA", e))?;
        let isa = isa_builder.finish(settings::Flags::new(fb)).map_err(|e| err("host ISA", e))?;
        let mut jb = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        jb.symbol(FMODF, rt_fmodf as *const u8);
        jb.symbol(FMOD, rt_fmod as *const u8);
        let module = JITModule::new(jb);
        let ctx = module.make_context();
        Ok(KernelModule {
            module,
            ctx,
            fctx: FunctionBuilderContext::new(),
            funcs: Vec::new(),
            pending: Vec::new(),
            row_fallbacks: HashMap::new(),
            helpers: 0,
        })
    }

    /// The signature of every kernel: the pointer table and a range, no result.
    pub(crate) fn kernel_signature(&self) -> Signature {
        let mut sig = Signature::new(self.module.isa().default_call_conv());
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        sig
    }

    pub(crate) fn declare_kernel(&mut self) -> Result<FuncId, CodegenError> {
        let name = format!("kernel{}", self.funcs.len());
        let sig = self.kernel_signature();
        let id = self.module.declare_function(&name, Linkage::Export, &sig).map_err(|e| err("declare", e))?;
        self.funcs.push(id);
        Ok(id)
    }

    /// A function of the kernels' signature that is not a kernel (it gets no
    /// entry point; kernels reach it through relocations).
    pub(crate) fn declare_helper(&mut self) -> Result<FuncId, CodegenError> {
        let name = format!("helper{}", self.helpers);
        self.helpers += 1;
        let sig = self.kernel_signature();
        self.module.declare_function(&name, Linkage::Local, &sig).map_err(|e| err("declare", e))
    }

    /// Compiles the kernels (several at once) and finalizes the module: the
    /// kernels' entry points, in the order they were added.
    pub fn finish(mut self) -> Result<CompiledModule, CodegenError> {
        let pending = std::mem::take(&mut self.pending);
        let compiled = compile_all(self.module.isa(), pending)?;
        let mut texts = Vec::with_capacity(compiled.len());
        for c in compiled {
            self.module.define_function_bytes(c.id, c.alignment, &c.bytes, &c.relocs).map_err(|e| err("define", e))?;
            texts.push(c.text);
        }
        self.module.finalize_definitions().map_err(|e| err("finalize", e))?;
        let fns = self
            .funcs
            .iter()
            .map(|id| {
                let ptr = self.module.get_finalized_function(*id);
                // SAFETY: every kernel was defined with `kernel_signature`, which is
                // `extern "C" fn(*const *mut u8, i64, i64)` on this platform's default call convention.
                KernelFn(unsafe { std::mem::transmute::<*const u8, RawKernelFn>(ptr) })
            })
            .collect();
        Ok(CompiledModule { _module: ModuleHolder(Some(self.module)), fns, texts })
    }
}

/// Keeps the JIT's code memory alive, and unmaps it when dropped (a
/// `JITModule` dropped without `free_memory` leaks its code pages).
struct ModuleHolder(Option<JITModule>);

impl Drop for ModuleHolder {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            // SAFETY: the holder is dropped together with the `CompiledModule`
            // owning the only copies of the kernels' entry points (its `fns`),
            // and executables never hand those pointers out, so no code in this
            // module can run after this.
            unsafe { m.free_memory() };
        }
    }
}

// SAFETY: after `finalize_definitions` the module's code and data are immutable;
// the holder only keeps the memory mapped and is never used to mutate it.
unsafe impl Send for ModuleHolder {}
// SAFETY: as above; no `&self` method of the holder is ever called.
unsafe impl Sync for ModuleHolder {}

/// Compiled kernels, alive as long as this value.
pub struct CompiledModule {
    _module: ModuleHolder,
    pub(crate) fns: Vec<KernelFn>,
    /// Per kernel, its optimised Cranelift IR and machine code when asked for (else empty).
    pub(crate) texts: Vec<String>,
}
