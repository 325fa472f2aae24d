//! Cranelift's compilation of a module's kernels into machine code, several
//! kernels at once on the worker threads: each is a function of its own, so
//! only placing the code into the module's memory has to happen in order.

use super::CodegenError;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::Context;
use cranelift_module::{FuncId, ModuleReloc};

/// A kernel waiting to be placed into the module.
pub(crate) enum Pending {
    /// Cranelift IR, to be compiled.
    Clif {
        id: FuncId,
        func: Box<Function>,
        /// Keep the optimised IR and the machine code as text.
        keep_text: bool,
    },
    /// Machine code made without Cranelift (see `wide`).
    Ready(Compiled),
}

impl Pending {
    /// Instructions to compile: the larger are started first.
    fn size(&self) -> usize {
        match self {
            Pending::Clif { func, .. } => func.dfg.num_insts(),
            Pending::Ready(_) => 0,
        }
    }
}

/// A kernel's machine code, ready to be placed into the module.
pub(crate) struct Compiled {
    pub id: FuncId,
    pub bytes: Vec<u8>,
    pub alignment: u64,
    pub relocs: Vec<ModuleReloc>,
    /// The IR as Cranelift optimised it, then the machine code; empty unless asked for.
    pub text: String,
}

/// One kernel's compilation: its place in the module, the IR, then the result.
struct Job {
    index: usize,
    input: Option<Pending>,
    output: Option<Result<Compiled, CodegenError>>,
}

/// Compiles every pending kernel, the largest first so that the threads
/// finish together; the results come back in the order of `pending`.
pub(crate) fn compile_all(isa: &dyn TargetIsa, pending: Vec<Pending>) -> Result<Vec<Compiled>, CodegenError> {
    let mut jobs: Vec<Job> =
        pending.into_iter().enumerate().map(|(index, p)| Job { index, input: Some(p), output: None }).collect();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.input.as_ref().map_or(0, Pending::size)));
    crate::parallel::for_each_mut(&mut jobs, |_, job| {
        if let Some(p) = job.input.take() {
            job.output = Some(compile_one(isa, p));
        }
    });
    jobs.sort_by_key(|j| j.index);
    jobs.into_iter().map(|j| j.output.unwrap_or_else(|| Err(missing(j.index)))).collect()
}

fn missing(i: usize) -> CodegenError {
    CodegenError { message: format!("kernel {i} was not compiled"), clif: None }
}

fn compile_one(isa: &dyn TargetIsa, p: Pending) -> Result<Compiled, CodegenError> {
    let (id, func, keep_text) = match p {
        Pending::Clif { id, func, keep_text } => (id, func, keep_text),
        Pending::Ready(c) => return Ok(c),
    };
    let mut ctx = Context::for_function(*func);
    ctx.set_disasm(keep_text);
    if let Err(e) = ctx.compile(isa, &mut ControlPlane::default()) {
        let message = format!("Cranelift rejected the kernel: {:?}", e.inner);
        return Err(CodegenError { message, clif: Some(e.func.display().to_string()) });
    }
    let code =
        ctx.compiled_code().ok_or_else(|| CodegenError { message: "Cranelift compiled no code".into(), clif: None })?;
    let relocs = code.buffer.relocs().iter().map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, id)).collect();
    let text = if keep_text {
        // As Cranelift optimised it (what the machine code was made from), then the machine code.
        format!("{}\n; machine code\n{}", ctx.func.display(), code.vcode.as_deref().unwrap_or_default())
    } else {
        String::new()
    };
    Ok(Compiled { id, bytes: code.code_buffer().to_vec(), alignment: code.buffer.alignment as u64, relocs, text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::KernelModule;
    use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Type, UserFuncName};
    use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
    use cranelift_module::Module;

    /// A kernel-shaped function that stores `count` splats of `ty` through its first argument.
    fn splat_store(m: &KernelModule, ty: Type, count: i32) -> Function {
        let mut func = Function::with_name_signature(UserFuncName::default(), m.kernel_signature());
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        b.seal_block(block);
        let ptr = b.block_params(block)[0];
        for i in 0..count {
            let x = b.ins().f32const(1.5 + i as f32);
            let v = b.ins().splat(ty, x);
            b.ins().store(MemFlagsData::new().with_notrap(), v, ptr, 16 * i);
        }
        b.ins().return_(&[]);
        b.finalize(m.module.target_config());
        func
    }

    #[test]
    fn kernels_come_back_in_order_and_a_rejected_one_carries_its_ir() {
        let mut m = KernelModule::new().unwrap();
        // Of different sizes, so that compiling the largest first reorders them.
        let small = splat_store(&m, types::F32X4, 1);
        let large = splat_store(&m, types::F32X4, 20);
        let ids: Vec<FuncId> = (0..3).map(|_| m.declare_kernel().unwrap()).collect();
        let pending = vec![
            Pending::Clif { id: ids[0], func: Box::new(small.clone()), keep_text: false },
            Pending::Clif { id: ids[1], func: Box::new(large), keep_text: true },
            Pending::Clif { id: ids[2], func: Box::new(small), keep_text: false },
        ];
        let compiled = compile_all(m.module.isa(), pending).unwrap();
        assert_eq!(compiled.iter().map(|c| c.id).collect::<Vec<_>>(), ids);
        assert!(compiled[0].text.is_empty() && !compiled[0].bytes.is_empty());
        assert!(compiled[1].text.contains("; machine code"), "{}", compiled[1].text);

        // x86 has no 256-bit vectors in Cranelift: an error, not a panic, with the function.
        let id = m.declare_kernel().unwrap();
        let wide = splat_store(&m, types::F32X8, 1);
        let ok = splat_store(&m, types::F32X4, 1);
        let ok_id = m.declare_kernel().unwrap();
        let e = compile_all(
            m.module.isa(),
            vec![
                Pending::Clif { id: ok_id, func: Box::new(ok), keep_text: false },
                Pending::Clif { id, func: Box::new(wide), keep_text: false },
            ],
        )
        .err()
        .unwrap();
        assert!(e.message.contains("Cranelift rejected the kernel"), "{}", e.message);
        assert!(e.clif.as_deref().unwrap_or_default().contains("f32x8"), "{e}");
    }
}
