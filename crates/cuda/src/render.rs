//! Renders fused loop kernels (the backend-neutral [`Kernel`]) as CUDA C.
//!
//! A kernel's outputs are grouped by what they reduce: each group becomes
//! one `__global__` function, and stored outputs ride along with the first
//! group (every group visits each domain point exactly once).
//!
//! - A group without reductions runs one thread per domain point.
//! - A group reducing over axes R runs a grid of (kept element tile, chunk
//!   of reduced points): each thread walks its chunk's reduced points in
//!   increasing order, a block combines its threads' partials with a fixed
//!   tree in shared memory, and, when a reduction spans several chunks, a
//!   second function combines the chunks' partials (threads along the
//!   chunks, then a fixed tree).
//!
//! Chunks are cut by size alone, never by the device, and nothing is
//! accumulated with atomics: every reduction is a fixed-order computation,
//! so results do not change from run to run or from one GPU to another.

use crate::spelling::{literal, mem_type, reg_type, spell, PRELUDE};
use arrayjit_ir::prim::Elementwise as E;
use arrayjit_ir::DType;
use arrayjit_lower::{Affine, Kernel, Node, OutputKind, ReduceOp};
use std::fmt::Write;

/// Threads per block of a per-point function.
const POINT_THREADS: u32 = 256;
/// Most chunks a reduction is split into.
const MAX_CHUNKS: usize = 1024;
/// Fewest reduced points per thread in a chunk.
const MIN_PER_THREAD: usize = 8;

/// What a launch is passed, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// Kernel input `k` (read only).
    Input(usize),
    /// Kernel output `k`.
    Output(usize),
    /// Partial-result buffer `k` of [`RenderedKernel::partials`].
    Partial(usize),
}

/// One launch of a rendered kernel. Launches run in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The `extern "C"` function's name in the module.
    pub name: String,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub params: Vec<Param>,
}

/// A temporary buffer of a kernel's (partial reductions, or a library
/// kernel's intermediate matrices), `len` elements of `dtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partial {
    pub dtype: DType,
    pub len: usize,
}

/// A kernel rendered as CUDA C functions, with their launches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedKernel {
    /// The functions' source (without the module prelude).
    pub source: String,
    pub launches: Vec<Launch>,
    pub partials: Vec<Partial>,
}

/// A kernel the renderer cannot express.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render kernel `{kernel}` as CUDA C: {message}")]
pub struct RenderError {
    pub kernel: String,
    pub message: String,
}

/// A module's whole source: the prelude, then each kernel's functions.
pub fn module_source(kernels: &[RenderedKernel]) -> String {
    let mut s = String::from(PRELUDE);
    for k in kernels {
        s.push('\n');
        s.push_str(&k.source);
    }
    s
}

/// `kernels` as at most `parts` modules of about equal source length (each
/// with the prelude), to be compiled side by side; none when there are no kernels.
pub fn module_sources(kernels: &[RenderedKernel], parts: usize) -> Vec<String> {
    let parts = parts.clamp(1, kernels.len().max(1));
    let mut order: Vec<usize> = (0..kernels.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(kernels[i].source.len()));
    let mut bins: Vec<(usize, Vec<usize>)> = vec![(0, Vec::new()); parts];
    for i in order {
        if let Some(bin) = bins.iter_mut().min_by_key(|b| b.0) {
            bin.0 += kernels[i].source.len();
            bin.1.push(i);
        }
    }
    bins.into_iter()
        .filter(|b| !b.1.is_empty())
        .map(|(_, mut members)| {
            members.sort_unstable();
            let chosen: Vec<RenderedKernel> = members.iter().map(|&i| kernels[i].clone()).collect();
            module_source(&chosen)
        })
        .collect()
}

/// The marker every rendered function starts with.
const ENTRY: &str = "extern \"C\" __global__ void ";

/// The functions of a module's source, in order: each name with its text
/// (signature and body), as loaders and tests need them.
pub fn functions(source: &str) -> impl Iterator<Item = (&str, &str)> {
    source.split(ENTRY).skip(1).filter_map(|text| {
        // `__launch_bounds__(..)` may stand before the name.
        let named = match text.strip_prefix("__launch_bounds__(") {
            Some(rest) => rest.split_once(") ")?.1,
            None => text,
        };
        Some((named.split('(').next()?, text))
    })
}

/// Renders `k` as functions whose names start with `name` (a C identifier).
pub fn render_kernel(k: &Kernel, name: &str) -> Result<RenderedKernel, RenderError> {
    let k = k.coalesced();
    let err = |message: String| RenderError { kernel: name.to_string(), message };
    if k.domain.iter().any(|&d| d > i64::MAX as usize) {
        return Err(err("a domain axis is too long".into()));
    }
    let groups = groups(&k);
    let mut out = RenderedKernel { source: String::new(), launches: Vec::new(), partials: Vec::new() };
    let r = Renderer { k: &k, idx: index_type(&k) };
    for (g, group) in groups.iter().enumerate() {
        let fname = format!("{name}_{g}");
        match &group.axes {
            None => r.points(&fname, group, &mut out).map_err(err)?,
            Some(axes) => r.reduce(&fname, axes, group, &mut out).map_err(err)?,
        }
    }
    Ok(out)
}

/// Outputs that run in one function: stored ones and those reducing over `axes`.
struct Group {
    axes: Option<Vec<usize>>,
    stores: Vec<usize>,
    reduces: Vec<usize>,
}

fn groups(k: &Kernel) -> Vec<Group> {
    let mut gs: Vec<Group> = Vec::new();
    let stores: Vec<usize> =
        k.outputs.iter().enumerate().filter(|(_, o)| o.kind == OutputKind::Store).map(|(i, _)| i).collect();
    for (i, o) in k.outputs.iter().enumerate() {
        if let OutputKind::Reduce { axes, .. } = &o.kind {
            let mut axes = axes.clone();
            axes.sort_unstable();
            match gs.iter_mut().find(|g| g.axes.as_ref() == Some(&axes)) {
                Some(g) => g.reduces.push(i),
                None => gs.push(Group { axes: Some(axes), stores: Vec::new(), reduces: vec![i] }),
            }
        }
    }
    match gs.first_mut() {
        Some(g) => g.stores = stores,
        None if !stores.is_empty() => gs.push(Group { axes: None, stores, reduces: Vec::new() }),
        None => {}
    }
    gs
}

/// `int` when every position the kernel computes fits, else `long long`.
fn index_type(k: &Kernel) -> &'static str {
    let mut most = k.points();
    for a in &k.inputs {
        most = most.max(a.numel());
    }
    for o in &k.outputs {
        most = most.max(o.aval.numel());
    }
    if most < (1 << 30) {
        "int"
    } else {
        "long long"
    }
}

struct Renderer<'k> {
    k: &'k Kernel,
    idx: &'static str,
}

impl Renderer<'_> {
    fn params(&self, params: &[Param], partials: &[Partial]) -> String {
        params
            .iter()
            .map(|p| match *p {
                Param::Input(j) => format!("const {}* __restrict__ in{j}", mem_type(self.k.inputs[j].dtype)),
                Param::Output(j) => format!("{}* __restrict__ out{j}", mem_type(self.k.outputs[j].aval.dtype)),
                Param::Partial(j) => format!("{}* __restrict__ part{j}", reg_type(partials[j].dtype)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn input_params(&self) -> Vec<Param> {
        (0..self.k.inputs.len()).map(Param::Input).collect()
    }

    /// `offset + Σ coeffs[d]·i_d` in the index type.
    fn affine(&self, a: &Affine) -> String {
        let mut s = format!("({}){}", self.idx, a.offset);
        for (d, &c) in a.coeffs.iter().enumerate() {
            if c != 0 {
                let _ = write!(s, " + ({}){c} * i{d}", self.idx);
            }
        }
        format!("({s})")
    }

    /// Definitions of every node's value, `v0`, `v1`, ... at the domain point `i0, i1, ...`.
    fn body(&self, indent: &str) -> Result<String, String> {
        let mut s = String::new();
        for (n, node) in self.k.nodes.iter().enumerate() {
            let d = node.dtype;
            let expr = match &node.node {
                Node::Load { input, at } => {
                    let x = format!("in{input}[{}]", self.affine(at));
                    if d == DType::Bool {
                        format!("({x} != 0)")
                    } else {
                        x
                    }
                }
                Node::Const(c) => literal(*c),
                Node::Index(a) if d == DType::Bool => format!("({} != 0)", self.affine(a)),
                Node::Index(a) => format!("({}) {}", reg_type(d), self.affine(a)),
                Node::Op { op, args } => {
                    let names: Vec<String> = args.iter().map(|a| format!("v{a}")).collect();
                    let arg = match (op, args.as_slice()) {
                        (E::Select, [_, t, _]) => self.k.nodes[*t].dtype,
                        (_, [a, ..]) => self.k.nodes[*a].dtype,
                        _ => d,
                    };
                    spell(*op, &names, arg).ok_or_else(|| format!("n{n}: {} is missing an operand", op.name()))?
                }
                Node::Gather { input, index } => {
                    let len = self.k.inputs[*input].numel();
                    if len == 0 {
                        literal(arrayjit_ir::Scalar::from_f64(0.0, d))
                    } else {
                        let x = format!(
                            "in{input}[min(max(({})v{index}, ({})0), ({}){})]",
                            self.idx,
                            self.idx,
                            self.idx,
                            len - 1
                        );
                        if d == DType::Bool {
                            format!("({x} != 0)")
                        } else {
                            x
                        }
                    }
                }
            };
            let _ = writeln!(s, "{indent}const {} v{n} = {expr};", reg_type(d));
        }
        Ok(s)
    }

    /// Stores of outputs `stores` at the domain point.
    fn stores(&self, stores: &[usize], indent: &str) -> String {
        let strides = arrayjit_ir::Shape::from(self.k.domain.clone()).strides();
        let own = Affine { offset: 0, coeffs: strides.iter().map(|&s| s as i64).collect() };
        let at = self.affine(&own);
        let mut s = String::new();
        for &o in stores {
            let out = &self.k.outputs[o];
            let v = format!("v{}", out.node);
            let v = if out.aval.dtype == DType::Bool { format!("(unsigned char)({v})") } else { v };
            let _ = writeln!(s, "{indent}out{o}[{at}] = {v};");
        }
        s
    }

    /// Splits the flat position `var` over `axes` (innermost last) into `i{axis}`.
    fn unflatten(&self, var: &str, axes: &[usize], indent: &str) -> String {
        let mut s = format!("{indent}{} r_{var} = {var};\n", self.idx);
        for (pos, &a) in axes.iter().enumerate().rev() {
            if pos == 0 {
                let _ = writeln!(s, "{indent}const {} i{a} = r_{var};", self.idx);
            } else {
                let d = self.k.domain[a];
                let _ = writeln!(s, "{indent}const {} i{a} = r_{var} % {d}; r_{var} /= {d};", self.idx);
            }
        }
        s
    }

    fn points(&self, name: &str, g: &Group, out: &mut RenderedKernel) -> Result<(), String> {
        let points = self.k.points();
        let mut params = self.input_params();
        params.extend(g.stores.iter().map(|&o| Param::Output(o)));
        let axes: Vec<usize> = (0..self.k.domain.len()).collect();
        let mut s = String::new();
        let _ = writeln!(s, "{ENTRY}{name}({}) {{", self.params(&params, &out.partials));
        let _ = writeln!(
            s,
            "  for ({t} p = ({t})blockIdx.x * blockDim.x + threadIdx.x; p < ({t}){points}; p += ({t})gridDim.x * blockDim.x) {{",
            t = self.idx
        );
        s.push_str(&self.unflatten("p", &axes, "    "));
        s.push_str(&self.body("    ")?);
        s.push_str(&self.stores(&g.stores, "    "));
        s.push_str("  }\n}\n");
        out.source.push_str(&s);
        if points > 0 {
            let blocks = points.div_ceil(POINT_THREADS as usize).min(i32::MAX as usize) as u32;
            out.launches.push(Launch { name: name.into(), grid: [blocks, 1, 1], block: [POINT_THREADS, 1, 1], params });
        }
        Ok(())
    }

    fn reduce(&self, name: &str, axes: &[usize], g: &Group, out: &mut RenderedKernel) -> Result<(), String> {
        let k = self.k;
        let rank = k.domain.len();
        let kept: Vec<usize> = (0..rank).filter(|a| !axes.contains(a)).collect();
        let kn: usize = kept.iter().map(|&a| k.domain[a]).product();
        let qn: usize = axes.iter().map(|&a| k.domain[a]).product();
        // Threads down the reduced points: a power of two (for the tree), as
        // many as give each a few points, at most a block's worth. Across the
        // kept elements: a warp when the innermost axis is kept (coalesced
        // reads), else the rest of the block.
        let ty = (qn / MIN_PER_THREAD).clamp(1, 256).next_power_of_two().min(256) as u32;
        let (tx, ty) =
            if rank > 0 && kept.last() == Some(&(rank - 1)) { (32u32, ty.min(8)) } else { ((256 / ty).max(1), ty) };
        let ty_us = ty as usize;
        let chunk = qn.div_ceil(MAX_CHUNKS).max(ty_us * MIN_PER_THREAD).div_ceil(ty_us) * ty_us;
        let chunks = qn.div_ceil(chunk).max(1);
        let ops: Vec<(ReduceOp, DType)> = g
            .reduces
            .iter()
            .map(|&o| match &k.outputs[o].kind {
                OutputKind::Reduce { op, .. } => Ok((*op, k.outputs[o].aval.dtype)),
                OutputKind::Store => Err(format!("output {o} is not a reduction")),
            })
            .collect::<Result<_, _>>()?;
        let combine = |op: ReduceOp, d: DType, a: &str, b: &str| {
            spell(op.combine(), &[a.to_string(), b.to_string()], d).unwrap_or_default()
        };
        // Where each reduction's block results go: the output, or partials.
        let dest: Vec<Param> = g
            .reduces
            .iter()
            .zip(&ops)
            .map(|(&o, &(_, d))| {
                if chunks == 1 {
                    Param::Output(o)
                } else {
                    out.partials.push(Partial { dtype: d, len: chunks * kn });
                    Param::Partial(out.partials.len() - 1)
                }
            })
            .collect();
        let mut params = self.input_params();
        params.extend(g.stores.iter().map(|&o| Param::Output(o)));
        params.extend(dest.iter().copied());
        let t = self.idx;
        let mut s = String::new();
        let _ = writeln!(s, "{ENTRY}{name}({}) {{", self.params(&params, &out.partials));
        let _ = writeln!(s, "  const int tx = threadIdx.x, ty = threadIdx.y;");
        let _ = writeln!(s, "  const {t} k = ({t})blockIdx.x * {tx} + tx;");
        let _ = writeln!(s, "  const {t} s = blockIdx.y;");
        for (j, &(op, d)) in ops.iter().enumerate() {
            let _ = writeln!(s, "  {} acc{j} = {};", reg_type(d), literal(op.identity(d)));
        }
        let _ = writeln!(s, "  if (k < ({t}){kn}) {{");
        s.push_str(&self.unflatten("k", &kept, "    "));
        let _ = writeln!(s, "    const {t} q_end = min((s + 1) * ({t}){chunk}, ({t}){qn});");
        let _ = writeln!(s, "    for ({t} q = s * ({t}){chunk} + ty; q < q_end; q += {ty}) {{");
        s.push_str(&self.unflatten("q", axes, "      "));
        s.push_str(&self.body("      ")?);
        s.push_str(&self.stores(&g.stores, "      "));
        for (j, (&o, &(op, d))) in g.reduces.iter().zip(&ops).enumerate() {
            let v = format!("v{}", k.outputs[o].node);
            let _ = writeln!(s, "      acc{j} = {};", combine(op, d, &format!("acc{j}"), &v));
        }
        s.push_str("    }\n  }\n");
        for (j, &(op, d)) in ops.iter().enumerate() {
            let _ = writeln!(s, "  __shared__ {} sh{j}[{ty}][{tx}];", reg_type(d));
            let _ = writeln!(s, "  sh{j}[ty][tx] = acc{j};");
            let _ = writeln!(s, "  __syncthreads();");
            let _ = writeln!(s, "  for (int w = {}; w > 0; w >>= 1) {{", ty / 2);
            let _ = writeln!(
                s,
                "    if (ty < w) sh{j}[ty][tx] = {};",
                combine(op, d, &format!("sh{j}[ty][tx]"), &format!("sh{j}[ty + w][tx]"))
            );
            let _ = writeln!(s, "    __syncthreads();");
            let _ = writeln!(s, "  }}");
            let target = match dest[j] {
                Param::Partial(p) => format!("part{p}[s * ({t}){kn} + k]"),
                _ => format!("out{}[k]", g.reduces[j]),
            };
            let v = if d == DType::Bool && chunks == 1 {
                format!("(unsigned char)(sh{j}[0][tx])")
            } else {
                format!("sh{j}[0][tx]")
            };
            let _ = writeln!(s, "  if (ty == 0 && k < ({t}){kn}) {target} = {v};");
        }
        s.push_str("}\n");
        if kn > 0 {
            let blocks = kn.div_ceil(tx as usize).min(i32::MAX as usize) as u32;
            out.launches.push(Launch {
                name: name.into(),
                grid: [blocks, chunks as u32, 1],
                block: [tx, ty, 1],
                params,
            });
        }
        if chunks > 1 {
            self.combine_chunks(&format!("{name}_chunks"), g, &ops, &dest, kn, chunks, &mut s, out);
        }
        out.source.push_str(&s);
        Ok(())
    }

    /// The function combining each reduction's per-chunk partials: threads
    /// along the chunks (each combining every `ty`-th chunk in order), then
    /// a fixed tree across them in shared memory, so the order never
    /// depends on timing.
    #[allow(clippy::too_many_arguments)]
    fn combine_chunks(
        &self,
        name: &str,
        g: &Group,
        ops: &[(ReduceOp, DType)],
        dest: &[Param],
        kn: usize,
        chunks: usize,
        s: &mut String,
        out: &mut RenderedKernel,
    ) {
        let t = self.idx;
        let tx: u32 = if kn > 1 { 32 } else { 1 };
        let ty = (chunks.next_power_of_two() as u32).min(POINT_THREADS / tx);
        let combine = |op: ReduceOp, d: DType, a: &str, b: &str| {
            spell(op.combine(), &[a.to_string(), b.to_string()], d).unwrap_or_default()
        };
        let mut params: Vec<Param> = dest.to_vec();
        params.extend(g.reduces.iter().map(|&o| Param::Output(o)));
        let _ = writeln!(s, "{ENTRY}{name}({}) {{", self.params(&params, &out.partials));
        let _ = writeln!(s, "  const int tx = threadIdx.x, ty = threadIdx.y;");
        let _ = writeln!(s, "  const {t} k = ({t})blockIdx.x * {tx} + tx;");
        for (j, (&o, &(op, d))) in g.reduces.iter().zip(ops).enumerate() {
            let Param::Partial(p) = dest[j] else { continue };
            let _ = writeln!(s, "  {{");
            let _ = writeln!(s, "    {} acc = {};", reg_type(d), literal(op.identity(d)));
            let c = combine(op, d, "acc", &format!("part{p}[c * ({t}){kn} + k]"));
            let _ = writeln!(s, "    if (k < ({t}){kn})");
            let _ = writeln!(s, "      for (int c = ty; c < {chunks}; c += {ty}) acc = {c};");
            let _ = writeln!(s, "    __shared__ {} sh[{ty}][{tx}];", reg_type(d));
            let _ = writeln!(s, "    sh[ty][tx] = acc;");
            let _ = writeln!(s, "    __syncthreads();");
            let _ = writeln!(s, "    for (int w = {}; w > 0; w >>= 1) {{", ty / 2);
            let _ = writeln!(s, "      if (ty < w) sh[ty][tx] = {};", combine(op, d, "sh[ty][tx]", "sh[ty + w][tx]"));
            let _ = writeln!(s, "      __syncthreads();");
            let _ = writeln!(s, "    }}");
            let v = if d == DType::Bool { "(unsigned char)(sh[0][tx])".to_string() } else { "sh[0][tx]".to_string() };
            let _ = writeln!(s, "    if (ty == 0 && k < ({t}){kn}) out{o}[k] = {v};");
            let _ = writeln!(s, "    __syncthreads();");
            let _ = writeln!(s, "  }}");
        }
        s.push_str("}\n");
        if kn > 0 {
            let blocks = kn.div_ceil(tx as usize).min(i32::MAX as usize) as u32;
            out.launches.push(Launch { name: name.into(), grid: [blocks, 1, 1], block: [tx, ty, 1], params });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_split_in_parts_keeps_every_kernel_once() {
        let k = |name: &str, len: usize| RenderedKernel {
            source: format!("{ENTRY}{name}() {{ {} }}\n", "x".repeat(len)),
            launches: Vec::new(),
            partials: Vec::new(),
        };
        let kernels = vec![k("a", 50), k("b", 10), k("c", 40), k("d", 5), k("e", 30)];
        for parts in [1, 2, 3, 9] {
            let sources = module_sources(&kernels, parts);
            assert_eq!(sources.len(), parts.min(5));
            assert!(sources.iter().all(|s| s.starts_with(PRELUDE)));
            let mut names: Vec<&str> = sources.iter().flat_map(|s| functions(s).map(|(n, _)| n)).collect();
            names.sort_unstable();
            assert_eq!(names, ["a", "b", "c", "d", "e"]);
        }
        assert!(module_sources(&[], 4).is_empty());
    }
    use arrayjit_ir::{AVal, Shape};
    use arrayjit_lower::{KNode, KOutput};

    /// exp(x) over [rows, 8], stored, summed over rows and summed whole.
    fn kernel(rows: usize) -> Kernel {
        let own = Affine { offset: 0, coeffs: vec![8, 1] };
        let f32s = |dims: Vec<usize>| AVal::new(DType::F32, Shape::from(dims));
        Kernel {
            domain: vec![rows, 8],
            inputs: vec![f32s(vec![rows, 8])],
            nodes: vec![
                KNode { node: Node::Load { input: 0, at: own }, dtype: DType::F32 },
                KNode { node: Node::Op { op: E::Exp, args: vec![0] }, dtype: DType::F32 },
            ],
            outputs: vec![
                KOutput { node: 1, kind: OutputKind::Reduce { op: ReduceOp::Sum, axes: vec![0] }, aval: f32s(vec![8]) },
                KOutput { node: 1, kind: OutputKind::Store, aval: f32s(vec![rows, 8]) },
                KOutput {
                    node: 1,
                    kind: OutputKind::Reduce { op: ReduceOp::Max, axes: vec![0, 1] },
                    aval: f32s(vec![]),
                },
            ],
        }
    }

    #[test]
    fn stores_ride_with_the_first_reduction_and_each_reduction_shape_has_a_function() {
        let r = render_kernel(&kernel(40), "k").unwrap();
        let names: Vec<&str> = r.launches.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["k_0", "k_1"], "one chunk each: no combining pass");
        assert!(r.partials.is_empty());
        assert!(r.launches[0].params.contains(&Param::Output(1)), "the store is in the column sums' function");
        assert!(!r.launches[1].params.contains(&Param::Output(1)));
        // Column sums: 32 threads along the kept columns, 8 down the 40 rows.
        assert_eq!(r.launches[0].block, [32, 8, 1]);
        // The whole maximum (320 points): 64 threads down, 4 across.
        assert_eq!(r.launches[1].block, [4, 64, 1]);
        assert!(r.source.contains("aj_max(acc0, v1)"), "{}", r.source);
    }

    #[test]
    fn long_reductions_are_cut_into_chunks_by_size_alone() {
        let r = render_kernel(&kernel(100_000), "k").unwrap();
        let names: Vec<&str> = r.launches.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["k_0", "k_0_chunks", "k_1", "k_1_chunks"]);
        // 100 000 rows in chunks of at least 64: at most 1024 chunks.
        let chunks = r.launches[0].grid[1] as usize;
        assert!(chunks > 1 && chunks <= MAX_CHUNKS, "{chunks}");
        assert_eq!(r.partials[0], Partial { dtype: DType::F32, len: chunks * 8 });
        assert_eq!(render_kernel(&kernel(100_000), "k").unwrap(), r, "rendering is deterministic");
    }

    #[test]
    fn a_long_reduction_to_no_elements_launches_nothing() {
        let f32s = |dims: Vec<usize>| AVal::new(DType::F32, Shape::from(dims));
        let k = Kernel {
            domain: vec![100_000, 0],
            inputs: vec![f32s(vec![100_000, 0])],
            nodes: vec![KNode {
                node: Node::Load { input: 0, at: Affine { offset: 0, coeffs: vec![0, 1] } },
                dtype: DType::F32,
            }],
            outputs: vec![KOutput {
                node: 0,
                kind: OutputKind::Reduce { op: ReduceOp::Sum, axes: vec![0] },
                aval: f32s(vec![0]),
            }],
        };
        let r = render_kernel(&k, "k").unwrap();
        assert!(r.launches.is_empty(), "{:?}", r.launches);
    }

    #[test]
    fn an_empty_domain_launches_nothing_that_would_read() {
        let r = render_kernel(&kernel(0), "k").unwrap();
        // Column sums still run (they write the identity); the store has no point.
        assert_eq!(r.launches.len(), 2);
        assert!(r.source.contains("q < q_end"));
    }
}
