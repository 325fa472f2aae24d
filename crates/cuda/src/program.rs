//! A whole program's kernels as one CUDA module: every fused kernel of its
//! schedule, and of the schedules of its loop bodies, conditions and
//! branches (optimised with the program, fused on their own),
//! rendered into one source so that NVRTC compiles a program once.

use crate::error::CudaError;
use crate::render::{module_source, render_kernel, RenderedKernel};
use arrayjit_ir::prim::Control;
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

/// The device functions of step `i` of `s`, named from `name`: a fused
/// kernel, or a factorization with a device version; `None` for the steps
/// that run otherwise (products, control flow, host steps).
pub(crate) fn render_step(s: &Schedule, i: usize, name: &str) -> Result<Option<RenderedKernel>, CudaError> {
    Ok(match &s.steps[i] {
        Step::Kernel { kernel, .. } => Some(render_kernel(kernel, name)?),
        Step::Prim { prim: Prim::Linalg(l), inputs, .. } => {
            let avals: Vec<_> = inputs.iter().map(|&b| s.buffers[b].aval.clone()).collect();
            crate::library::render_library(l, &avals, name)
        }
        Step::Prim { .. } => None,
    })
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
        if let Step::Prim { prim: Prim::Control(c), .. } = step {
            for (b, body) in c.sub_programs().into_iter().enumerate() {
                let fused = arrayjit_lower::fuse(body);
                collect(&fused, name, &format!("{here}b{b}"), out, library)?;
                // A scan's slice copies go into its body's module.
                if let Control::Scan { num_consts, num_carry, length, reverse, .. } = c {
                    let prefix = format!("{name}{here}_scan");
                    let (_, functions) = crate::scan_copy::ScanCopies::for_body(
                        &prefix,
                        &fused,
                        *num_consts,
                        *num_carry,
                        *length,
                        *reverse,
                    );
                    library.extend(functions.into_iter().map(|f| (format!("{here}copies"), f)));
                }
            }
            continue;
        }
        let Some(rendered) = render_step(s, i, &format!("{name}{here}"))? else { continue };
        match step {
            Step::Kernel { kernel, .. } => out.push(ProgramKernel { at: here, kernel: kernel.coalesced(), rendered }),
            Step::Prim { .. } => library.push((here, rendered)),
        }
    }
    Ok(())
}
