//! A whole program's kernels as one CUDA module: every fused kernel of its
//! schedule, and of the schedules of its loop bodies, conditions and
//! branches (optimised and fused on their own, as the CPU backend does),
//! rendered into one source so that NVRTC compiles a program once.

use crate::error::CudaError;
use crate::render::{module_source, render_kernel, RenderedKernel};
use arrayjit_ir::Prim;
use arrayjit_lower::{Kernel, Schedule, Step};

/// One kernel of a program, rendered.
#[derive(Clone, Debug)]
pub struct ProgramKernel {
    /// Where it comes from: `s3` is step 3, `s2b0s1` step 1 of sub-program 0 of step 2.
    pub at: String,
    pub kernel: Kernel,
    pub rendered: RenderedKernel,
}

/// The rendered kernels of a schedule and of its sub-programs.
#[derive(Clone, Debug)]
pub struct RenderedProgram {
    pub kernels: Vec<ProgramKernel>,
    /// The factorizations that run on the device, with where they come from.
    pub library: Vec<(String, RenderedKernel)>,
    /// The module: the prelude and every kernel's functions.
    pub source: String,
}

/// Renders every kernel of `s`, recursively through control flow.
pub fn render_schedule(s: &Schedule) -> Result<RenderedProgram, CudaError> {
    render_schedule_named(s, "k_")
}

/// [`render_schedule`] with function names starting with `prefix` (a C
/// identifier), so that several programs can share a module.
pub fn render_schedule_named(s: &Schedule, prefix: &str) -> Result<RenderedProgram, CudaError> {
    let (mut kernels, mut library) = (Vec::new(), Vec::new());
    collect(s, prefix, "", &mut kernels, &mut library)?;
    let all: Vec<RenderedKernel> =
        kernels.iter().map(|k| k.rendered.clone()).chain(library.iter().map(|(_, k)| k.clone())).collect();
    Ok(RenderedProgram { kernels, library, source: module_source(&all) })
}

fn collect(
    s: &Schedule,
    name: &str,
    prefix: &str,
    out: &mut Vec<ProgramKernel>,
    library: &mut Vec<(String, RenderedKernel)>,
) -> Result<(), CudaError> {
    for (i, step) in s.steps.iter().enumerate() {
        let here = format!("{prefix}s{i}");
        match step {
            Step::Kernel { kernel, .. } => {
                let rendered = render_kernel(kernel, &format!("{name}{here}"))?;
                out.push(ProgramKernel { at: here, kernel: kernel.coalesced(), rendered });
            }
            Step::Prim { prim: Prim::Control(c), .. } => {
                for (b, body) in c.sub_programs().into_iter().enumerate() {
                    let (p, _) = arrayjit_lower::optimize(body).map_err(|e| CudaError::Lowering(e.to_string()))?;
                    collect(&arrayjit_lower::fuse(&p), name, &format!("{here}b{b}"), out, library)?;
                }
            }
            Step::Prim { prim: Prim::Linalg(l), inputs, .. } => {
                let avals: Vec<_> = inputs.iter().map(|&b| s.buffers[b].aval.clone()).collect();
                if let Some(r) = crate::library::render_library(l, &avals, &format!("{name}{here}")) {
                    library.push((here, r));
                }
            }
            Step::Prim { .. } => {}
        }
    }
    Ok(())
}
