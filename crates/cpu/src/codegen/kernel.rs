//! Renders one fused loop kernel as a Cranelift function: a loop nest over the
//! kernel's domain whose innermost loop runs 128-bit vectors (4 × f32/i32 or
//! 2 × f64) followed by a tail (scalars, or one partial vector). Loads and stores sit at affine
//! positions; a reduction along the innermost axis accumulates in registers
//! (lane-wise, then across lanes, then into memory), any other reduction
//! accumulates in its output buffer. The order of every reduction is fixed by
//! the kernel, so results never vary from run to run.
//!
//! Every load position is checked against its buffer's length when the kernel
//! is compiled: generated code never reads out of bounds.

use super::compile::{Compiled, Pending};
use super::jit::KernelModule;
use super::ops::{self, constant, mem_type, reg_type};
use super::order::{self, Item, Order, Stage};
use super::CodegenError;
use crate::math::bulk::{self, RowOp};
use arrayjit_ir::prim::Elementwise as E;
use arrayjit_ir::{DType, Shape};
use arrayjit_lower::{Affine, KNode, Kernel, Node, OutputKind};
use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, Block, InstBuilder, MemFlagsData, StackSlot, StackSlotData, StackSlotKind, Type, Value,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Module, ModuleReloc, ModuleRelocTarget};

/// A kernel defined in a module.
///
/// Calls over disjoint ranges of the outermost axis (of the kernel's
/// [`coalesced`](arrayjit_lower::Kernel::coalesced) domain, whose size is
/// `outer`) write disjoint parts of every output, except that an output
/// reducing over that axis receives the whole reduction of the range: each
/// range then needs its own partial buffer, combined afterwards.
#[derive(Clone, Debug)]
pub struct KernelCode {
    pub id: FuncId,
    /// Size of the outermost axis after coalescing (1 for a rank-0 kernel).
    pub outer: usize,
    /// Which outputs reduce over the outermost axis.
    pub reduces_outer: Vec<bool>,
    /// Vector lanes of the innermost loop (1: scalar code only).
    pub lanes: u32,
    /// Nodes computed by native row functions.
    pub row_calls: usize,
    /// Per output, per input: whether the kernel reads each element of the
    /// input before it writes the same element of the output, so that the
    /// output may be written into the input's memory (donation).
    pub reads_first: Vec<Vec<bool>>,
}

fn cg_err(message: impl Into<String>) -> CodegenError {
    CodegenError { message: message.into(), clif: None }
}

/// How [`define_kernel`] compiles.
#[derive(Clone, Copy, Debug)]
pub struct KernelOptions {
    /// Keep the kernel's code as text (for dumps).
    pub keep_clif: bool,
    /// See `CompileOptions::row_functions`.
    pub row_functions: bool,
    /// See `CompileOptions::wide_vectors`.
    pub wide_vectors: bool,
}

/// Defines `k` as a function of `m`. The function takes a pointer to an
/// array of buffer pointers (the kernel's inputs, then its outputs) and the
/// range `lo..hi` of the outermost domain axis to run; see [`KernelCode`].
pub fn define_kernel(m: &mut KernelModule, k: &Kernel, opts: &KernelOptions) -> Result<KernelCode, CodegenError> {
    let KernelOptions { keep_clif, row_functions, wide_vectors } = *opts;
    let k = normalized(&k.coalesced());
    check_bounds(&k)?;
    let reduces_outer: Vec<bool> =
        k.outputs.iter().map(|o| matches!(&o.kind, OutputKind::Reduce { axes, .. } if axes.contains(&0))).collect();
    let lanes = choose_lanes(&k);
    if let Some(w) = wide_vectors.then(|| super::wide::compile(&k, row_functions, lanes)).flatten() {
        let d = k.outputs.first().map_or(DType::F32, |o| o.aval.dtype);
        let mut relocs = Vec::new();
        for &(offset, op) in &w.fallbacks {
            let f = define_row_fallback(m, op, d)?;
            relocs.push(ModuleReloc { offset, kind: Reloc::Abs8, name: ModuleRelocTarget::from(f), addend: 0 });
        }
        let id = m.declare_kernel()?;
        let text = if keep_clif { w.text } else { String::new() };
        m.pending.push(Pending::Ready(Compiled { id, bytes: w.code, alignment: 64, relocs, text }));
        let outer = k.domain[0];
        let (lanes, row_calls, reads_first) = (w.lanes, w.row_calls, w.reads_first);
        return Ok(KernelCode { id, outer, reduces_outer, lanes, row_calls, reads_first });
    }
    let row_ops = if row_functions { row_ops(&k, lanes) } else { Vec::new() };
    let order = order::plan(&k, &row_ops);
    let id = m.declare_kernel()?;
    build_function(m, id, keep_clif, |b, module| {
        Emitter::new(&k, lanes, order.clone(), b).and_then(|mut e| e.emit(b, module))
    })?;
    let outer = k.domain[0];
    Ok(KernelCode { id, outer, reduces_outer, lanes, row_calls: order.stages.len(), reads_first: order.reads_first })
}

/// A function `(inp, out, n)` computing `op` of `d` inline over `n`
/// elements, in vectors of Cranelift's lanes and then one by one, as a
/// kernel does for a row its row function declines: what wide kernels call
/// then, so that they give the same bits. One per module and operation.
pub(crate) fn define_row_fallback(m: &mut KernelModule, op: RowOp, d: DType) -> Result<FuncId, CodegenError> {
    if let Some(&id) = m.row_fallbacks.get(&(op, d)) {
        return Ok(id);
    }
    let id = m.declare_helper()?;
    build_function(m, id, false, |b, module| row_fallback_body(b, module, op, d))?;
    m.row_fallbacks.insert((op, d), id);
    Ok(id)
}

/// Builds function `id` of `m` (of the kernels' signature) with `body`, and
/// queues it to be compiled with the module's others when the module is
/// finished; an error carries the function's IR.
fn build_function(
    m: &mut KernelModule,
    id: FuncId,
    keep_text: bool,
    body: impl FnOnce(&mut FunctionBuilder, &mut JITModule) -> Result<(), CodegenError>,
) -> Result<(), CodegenError> {
    m.ctx.func.signature = m.kernel_signature();
    let built = {
        let mut b = FunctionBuilder::new(&mut m.ctx.func, &mut m.fctx);
        let r = body(&mut b, &mut m.module);
        b.finalize(m.module.target_config());
        r
    };
    if let Err(mut e) = built {
        e.clif = Some(m.ctx.func.display().to_string());
        m.module.clear_context(&mut m.ctx);
        return Err(e);
    }
    let func = std::mem::replace(&mut m.ctx.func, cranelift_codegen::ir::Function::new());
    m.module.clear_context(&mut m.ctx);
    m.pending.push(Pending::Clif { id, func: Box::new(func), keep_text });
    Ok(())
}

/// Starts a function of the kernels' signature: its entry block, and its three arguments.
fn entry(b: &mut FunctionBuilder) -> Result<[Value; 3], CodegenError> {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    match b.block_params(entry) {
        &[x, y, z] => Ok([x, y, z]),
        _ => Err(cg_err("the function does not take three arguments")),
    }
}

fn row_fallback_body(b: &mut FunctionBuilder, module: &mut JITModule, op: RowOp, d: DType) -> Result<(), CodegenError> {
    let [pa, po, n] = entry(b)?;
    let lanes = if d == DType::F64 { 2 } else { 4 };
    inline_over(b, module, op.elementwise(), d, lanes, [pa, po, n])?;
    b.ins().return_(&[]);
    Ok(())
}

/// `out[i] = op(inp[i])` for `i < n` (`[inp, out, n]`), inline: in vectors of
/// `lanes` (when more than 1), then one element at a time.
fn inline_over(
    b: &mut FunctionBuilder,
    module: &mut JITModule,
    op: E,
    d: DType,
    lanes: u32,
    [pa, po, n]: [Value; 3],
) -> Result<(), CodegenError> {
    let shift = d.size_bytes().trailing_zeros() as i64;
    let var = b.declare_var(types::I64);
    let zero = b.ins().iconst(types::I64, 0);
    b.def_var(var, zero);
    let widths = if lanes > 1 { vec![lanes, 1] } else { vec![1] };
    for lanes in widths {
        let (lp, j) = begin_loop(b, LoopShape::InPlace, var, n, lanes as i64);
        let off = b.ins().ishl_imm_s(j, shift);
        let (ia, oa) = (b.ins().iadd(pa, off), b.ins().iadd(po, off));
        let x = b.ins().load(reg_type(d, lanes), data_flags(), ia, 0);
        let y = ops::emit(b, module, op, &[x], d, d, lanes)?;
        b.ins().store(data_flags(), y, oa, 0);
        end_loop(b, lp, j, lanes as i64);
    }
    Ok(())
}

/// A rank-0 domain becomes `[1]`, so every kernel has an innermost loop.
fn normalized(k: &Kernel) -> Kernel {
    if !k.domain.is_empty() {
        return k.clone();
    }
    let widen = |a: &Affine| Affine { offset: a.offset, coeffs: vec![0] };
    let mut k = k.clone();
    k.domain = vec![1];
    for n in &mut k.nodes {
        match &mut n.node {
            Node::Load { at, .. } => *at = widen(at),
            Node::Index(a) => *a = widen(a),
            Node::Const(_) | Node::Op { .. } | Node::Gather { .. } => {}
        }
    }
    k
}

/// The smallest and largest value of `a` over `domain` (which has points).
fn affine_range(a: &Affine, domain: &[usize]) -> (i64, i64) {
    let (mut lo, mut hi) = (a.offset, a.offset);
    for (c, &n) in a.coeffs.iter().zip(domain) {
        let span = c * (n as i64 - 1);
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    (lo, hi)
}

fn check_bounds(k: &Kernel) -> Result<(), CodegenError> {
    if k.points() == 0 {
        return Ok(());
    }
    for (i, n) in k.nodes.iter().enumerate() {
        if let Node::Gather { input, .. } = &n.node {
            if *input >= k.inputs.len() {
                return Err(cg_err(format!("n{i} gathers from a missing input")));
            }
        }
        if let Node::Load { input, at } = &n.node {
            let len =
                k.inputs.get(*input).map(|a| a.numel()).ok_or_else(|| cg_err(format!("n{i} loads a missing input")))?;
            let (lo, hi) = affine_range(at, &k.domain);
            if lo < 0 || hi >= len as i64 {
                return Err(cg_err(format!(
                    "n{i} would read positions {lo}..={hi} of input {input}, which holds {len} elements"
                )));
            }
        }
    }
    Ok(())
}

/// The dtype of an elementwise node's operands (`select` is typed by its branches).
fn arg_dtype(k: &Kernel, op: E, args: &[usize]) -> DType {
    let pick = if op == E::Select { 1 } else { 0 };
    args.get(pick).map(|&a| k.nodes[a].dtype).unwrap_or(DType::F32)
}

/// Lanes of the innermost loop: 4 when every value is 32-bit, 2 when every
/// value is f64, otherwise (or for booleans in memory, or an unsupported op) 1.
fn choose_lanes(k: &Kernel) -> u32 {
    let mut lanes: Option<u32> = None;
    let mut agree = |d: DType| -> bool {
        let want = match d {
            DType::F32 | DType::I32 => 4,
            DType::F64 => 2,
            DType::Bool => return true,
        };
        *lanes.get_or_insert(want) == want
    };
    for n in &k.nodes {
        if !agree(n.dtype) {
            return 1;
        }
        if let Node::Op { op, args } = &n.node {
            let arg = arg_dtype(k, *op, args);
            if !agree(arg) || !ops::vectorizable(*op, arg, n.dtype) {
                return 1;
            }
        }
    }
    if k.outputs.iter().any(|o| o.aval.dtype == DType::Bool) {
        return 1;
    }
    let l = lanes.unwrap_or(1);
    match k.domain.last() {
        Some(&n) if n >= l as usize => l,
        _ => 1,
    }
}

/// A boolean byte as one lane of a mask register (all ones or zero).
fn bool_mask(b: &mut FunctionBuilder, byte: Value, lanes: u32) -> Value {
    let lane = if lanes == 4 { types::I32 } else { types::I64 };
    b.ins().bmask(lane, byte)
}

fn data_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// A loop `for i in (start..).step_by(step) while i + span <= bound`; the
/// caller defines `var` as the start before `begin_loop`.
///
/// Its shape decides what Cranelift moves out of it. Entered through a guard
/// and tested again at the bottom of its body ([`LoopShape::Hoisting`]), the body
/// is the loop's header and the block after the loop is dominated by the
/// guard: Cranelift then hoists loop-invariant arithmetic (vector constants,
/// a scalar input's reciprocal, its splat) to the guard. Tested at the top
/// ([`LoopShape::InPlace`]), the exit is a second child of the header in the
/// dominator tree, elaborated before the body, and Cranelift hoists nothing:
/// every constant is loaded where it is used. See [`hoists_invariants`] for
/// which kernels get which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoopShape {
    Hoisting,
    InPlace,
}

struct Loop {
    header: Block,
    body: Block,
    exit: Block,
    var: Variable,
    bound: Value,
    span: i64,
    shape: LoopShape,
}

fn begin_loop(b: &mut FunctionBuilder, shape: LoopShape, var: Variable, bound: Value, span: i64) -> (Loop, Value) {
    let body = b.create_block();
    let exit = b.create_block();
    let header = match shape {
        LoopShape::Hoisting => body,
        LoopShape::InPlace => {
            let header = b.create_block();
            b.ins().jump(header, &[]);
            b.switch_to_block(header);
            header
        }
    };
    let start = b.use_var(var);
    let end = b.ins().iadd_imm_s(start, span);
    let go = b.ins().icmp(IntCC::SignedLessThanOrEqual, end, bound);
    b.ins().brif(go, body, &[], exit, &[]);
    b.switch_to_block(body);
    let i = match shape {
        LoopShape::Hoisting => b.use_var(var),
        LoopShape::InPlace => {
            b.seal_block(body);
            start
        }
    };
    (Loop { header, body, exit, var, bound, span, shape }, i)
}

fn end_loop(b: &mut FunctionBuilder, l: Loop, i: Value, step: i64) {
    let next = b.ins().iadd_imm_s(i, step);
    b.def_var(l.var, next);
    match l.shape {
        LoopShape::Hoisting => {
            let end = b.ins().iadd_imm_s(next, l.span);
            let go = b.ins().icmp(IntCC::SignedLessThanOrEqual, end, l.bound);
            b.ins().brif(go, l.body, &[], l.exit, &[]);
        }
        LoopShape::InPlace => {
            b.ins().jump(l.header, &[]);
        }
    }
    b.seal_block(l.header);
    b.switch_to_block(l.exit);
    b.seal_block(l.exit);
}

/// Whether a kernel's loops hoist what does not change inside them
/// ([`LoopShape::Hoisting`]): when everything hoisted fits in x86's sixteen
/// vector registers beside what the body keeps alive, and its buffer
/// pointers fit in the general registers. A hoisted value that does not fit
/// is spilled to the stack and reloaded at each use, which costs what
/// loading a constant there costs, and the register allocator then also
/// stores spilled pointers back on every iteration: the PLN's gradient
/// kernel (21 buffers, 9 constants) ran 3–5% slower hoisted, an Adam update
/// (9 buffers, 6 constants, two reciprocals of scalar inputs) 1.5× faster.
fn hoists_invariants(k: &Kernel, order: &Order, invariant: &[bool]) -> bool {
    const VECTOR_REGISTERS: usize = 16;
    const POINTER_REGISTERS: usize = 10;
    if k.inputs.len() + k.outputs.len() > POINTER_REGISTERS {
        return false;
    }
    let mut constants: Vec<u64> = Vec::new();
    let mut hoisted = 0;
    for (ni, n) in k.nodes.iter().enumerate() {
        match &n.node {
            Node::Const(c) => {
                let bits = c.as_f64().to_bits();
                if !constants.contains(&bits) {
                    constants.push(bits);
                }
            }
            // Polynomial functions bring constants of their own.
            Node::Op { op, .. } if ops::is_polynomial(*op) && !order.stages.iter().any(|s| s.node == ni) => {
                hoisted += 8
            }
            _ if invariant[ni] => hoisted += 1,
            _ => {}
        }
    }
    hoisted + constants.len() + peak_live(k, order, invariant) <= VECTOR_REGISTERS
}

/// The most values the body or a stage keeps alive at once, emitted in
/// `order`: a node's value lives from the item that computes it to the last
/// item that reads it (values the same at every point are counted by the
/// caller).
fn peak_live(k: &Kernel, order: &Order, invariant: &[bool]) -> usize {
    let stages = order.stages.iter().map(|s| items_peak_live(k, &s.items, Some(s.arg), invariant));
    stages.chain([items_peak_live(k, &order.items, None, invariant)]).max().unwrap_or(0)
}

/// [`peak_live`] of one list of items, whose last one also reads `last`.
fn items_peak_live(k: &Kernel, items: &[Item], last: Option<usize>, invariant: &[bool]) -> usize {
    let mut last_use = vec![0usize; k.nodes.len()];
    for (t, item) in items.iter().enumerate() {
        match *item {
            Item::Node(ni) => {
                for &a in order::args(&k.nodes[ni].node) {
                    last_use[a] = t;
                }
            }
            Item::Output(o) => last_use[k.outputs[o].node] = t,
            Item::Row(_) => {}
        }
    }
    if let Some(a) = last {
        last_use[a] = items.len().saturating_sub(1);
    }
    let (mut live, mut peak) = (0usize, 0usize);
    let mut ends = vec![0usize; items.len() + 1];
    for (t, item) in items.iter().enumerate() {
        if let Item::Node(ni) | Item::Row(ni) = *item {
            if !invariant[ni] {
                live += 1;
                ends[last_use[ni].max(t)] += 1;
            }
        }
        peak = peak.max(live);
        live -= ends[t];
    }
    peak
}

/// The shortest innermost axis whose rows go through row functions: a call
/// and the trip through a row buffer cost about what a dozen points of
/// inline `exp` do.
pub(super) const MIN_ROW: usize = 16;
/// Rows longer than this (and every rank-1 domain) run their stages and body
/// chunk by chunk, so that row buffers stay small and in L1.
pub(super) const CHUNK: usize = 1024;
/// Row functions per kernel at most (each needs a row buffer on the stack of
/// the thread running the kernel); further nodes stay inline.
pub(super) const MAX_ROW_NODES: usize = 16;

/// Which nodes a native row function computes ([`crate::math::bulk`]):
/// `exp`, `log`, `tanh`, `logistic`, `log1p`, `expm1`, `sin` and `cos` of f32
/// or f64 in a vector kernel whose rows are long enough, when this CPU has
/// vectors wider than Cranelift's. Nodes computed once before the loops stay
/// inline.
fn row_ops(k: &Kernel, lanes: u32) -> Vec<Option<RowOp>> {
    let invariant = invariant_nodes(k);
    let long = k.domain.last().is_some_and(|&n| n >= MIN_ROW);
    let mut taken = 0;
    k.nodes
        .iter()
        .enumerate()
        .map(|(ni, n)| {
            let Node::Op { op, .. } = &n.node else { return None };
            let op = RowOp::of(*op)?;
            let vector = matches!((n.dtype, lanes), (DType::F32, 4) | (DType::F64, 2));
            let eligible = vector && long && !invariant[ni] && taken < MAX_ROW_NODES;
            let take = eligible && bulk::row_fn(op, n.dtype).is_some();
            taken += usize::from(take);
            take.then_some(op)
        })
        .collect()
}

/// Where a row of a buffer starts at the current outer indices: its base
/// pointer and the element index of the row's start.
#[derive(Clone, Copy)]
struct Row {
    base: Value,
    start: Value,
}

/// An output's accumulators when it reduces along the innermost axis.
#[derive(Clone, Copy)]
struct Acc {
    vector: Variable,
    scalar: Variable,
}

/// How many lanes a body computes, and how many of them are points of the
/// domain (`live`, the first ones): fewer than `lanes` in the one vector
/// that takes a row's tail, whose other lanes are never read from memory,
/// written to memory or reduced.
#[derive(Clone, Copy)]
struct Width {
    lanes: u32,
    live: u32,
}

impl Width {
    fn full(lanes: u32) -> Width {
        Width { lanes, live: lanes }
    }

    fn is_full(self) -> bool {
        self.live == self.lanes
    }
}

struct Emitter<'k> {
    k: &'k Kernel,
    lanes: u32,
    /// The table of buffer pointers the kernel is called with.
    table: Value,
    /// Buffer pointers: inputs, then outputs.
    ptrs: Vec<Value>,
    /// The range of the outermost axis this call runs.
    lo: Value,
    hi: Value,
    /// One index variable per domain axis.
    idx: Vec<Variable>,
    /// Where each output's element of a domain point lives.
    out_at: Vec<Affine>,
    /// Row pointers (at the current outer indices) of loads and outputs.
    load_row: Vec<Option<Row>>,
    out_row: Vec<Row>,
    row_starts: std::collections::HashMap<Affine, Value>,
    acc: Vec<Option<Acc>>,
    order: Order,
    /// Which nodes have the same value at every point ([`invariant_nodes`]).
    invariant: Vec<bool>,
    /// The shape of every loop of this kernel.
    shape: LoopShape,
    /// Values of the nodes that are the same at every point, computed once
    /// before the loops (see [`invariant_nodes`]).
    hoisted: Vec<Option<Hoisted>>,
    /// The row buffers of the nodes stages compute, and the one their
    /// arguments go through (see [`order`]).
    row_buffers: Vec<Option<StackSlot>>,
    arg_buffer: Option<StackSlot>,
    /// Where the current chunk of the innermost axis starts: element `i` of a
    /// row buffer holds the value at index `chunk_start + i`.
    chunk_start: Option<Value>,
}

/// A node's value computed before the loops: as a scalar, and splatted to
/// the kernel's vector lanes.
#[derive(Clone, Copy)]
struct Hoisted {
    scalar: Value,
    vector: Option<HoistedVector>,
}

/// Where a hoisted node's vector lives. In a loop of shape
/// [`LoopShape::Hoisting`] it stays in a register. In one of shape
/// [`LoopShape::InPlace`] Cranelift would move the splat (and a boolean's
/// mask) back into the loop, two to six instructions per step; there the
/// vector is stored in a stack slot once, and each step loads it (one
/// instruction).
#[derive(Clone, Copy)]
enum HoistedVector {
    Register(Value),
    Stack(StackSlot, Type),
}

impl<'k> Emitter<'k> {
    fn new(k: &'k Kernel, lanes: u32, order: Order, b: &mut FunctionBuilder) -> Result<Emitter<'k>, CodegenError> {
        let [table, lo, hi] = entry(b)?;
        let n = k.inputs.len() + k.outputs.len();
        let ptrs = load_pointers(b, table, n);
        let idx = k.domain.iter().map(|_| b.declare_var(types::I64)).collect();
        let rank = k.domain.len();
        let strides = Shape::from(k.domain.clone()).strides();
        let out_at = k
            .outputs
            .iter()
            .map(|o| match &o.kind {
                OutputKind::Store => Affine { offset: 0, coeffs: strides.iter().map(|&s| s as i64).collect() },
                OutputKind::Reduce { axes, .. } => {
                    let mut coeffs = vec![0i64; rank];
                    let mut s = 1i64;
                    for d in (0..rank).rev() {
                        if !axes.contains(&d) {
                            coeffs[d] = s;
                            s *= k.domain[d] as i64;
                        }
                    }
                    Affine { offset: 0, coeffs }
                }
            })
            .collect();
        let invariant = invariant_nodes(k);
        Ok(Emitter {
            k,
            lanes,
            table,
            ptrs,
            lo,
            hi,
            idx,
            out_at,
            load_row: vec![None; k.nodes.len()],
            out_row: Vec::new(),
            row_starts: Default::default(),
            acc: vec![None; k.outputs.len()],
            shape: if hoists_invariants(k, &order, &invariant) { LoopShape::Hoisting } else { LoopShape::InPlace },
            invariant,
            order,
            hoisted: vec![None; k.nodes.len()],
            row_buffers: vec![None; k.nodes.len()],
            arg_buffer: None,
            chunk_start: None,
        })
    }

    fn inner_reduced(&self, o: usize) -> bool {
        let last = self.k.domain.len() - 1;
        matches!(&self.k.outputs[o].kind, OutputKind::Reduce { axes, .. } if axes.contains(&last))
    }

    fn emit(&mut self, b: &mut FunctionBuilder, module: &mut JITModule) -> Result<(), CodegenError> {
        if !self.order.stages.is_empty() {
            // Room for the whole vector that takes a row's tail.
            let len = (self.chunk_len() + self.lanes as usize) * self.row_dtype().size_bytes();
            let mut slot = || b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, len as u32, 4));
            self.arg_buffer = Some(slot());
            for s in &self.order.stages {
                self.row_buffers[s.node] = Some(slot());
            }
        }
        self.hoist(b, module)?;
        self.init_reductions(b)?;
        self.nest(b, module, 0)?;
        b.ins().return_(&[]);
        Ok(())
    }

    /// Computes the nodes that are the same at every point once, before the
    /// loops: a bias correction `1 / c` of a scalar input `c` would otherwise
    /// cost a vector division per loop step. Cranelift moves pure arithmetic
    /// out of loops itself, but not loads, so a node over a loaded scalar
    /// stayed in the loop. Constants stay at their uses (Cranelift
    /// rematerialises them there anyway) unless a hoisted node reads them.
    /// A kernel without points runs no loop step, so nothing is hoisted and
    /// no load runs that the loops would not have run.
    fn hoist(&mut self, b: &mut FunctionBuilder, module: &mut JITModule) -> Result<(), CodegenError> {
        let k = self.k;
        if k.points() == 0 {
            return Ok(());
        }
        let mut scalar: Vec<Option<Value>> = vec![None; k.nodes.len()];
        for (ni, n) in k.nodes.iter().enumerate() {
            if !self.invariant[ni] {
                continue;
            }
            let arg = |a: usize| scalar[a].ok_or_else(|| cg_err(format!("n{ni} reads n{a} before it is hoisted")));
            let v = match &n.node {
                Node::Const(c) => constant(b, n.dtype, 1, c.as_f64()),
                Node::Load { input, at } => {
                    let mt = mem_type(n.dtype);
                    let base = *self.ptrs.get(*input).ok_or_else(|| cg_err(format!("n{ni} loads a missing input")))?;
                    let addr = b.ins().iadd_imm_s(base, at.offset * mt.bytes() as i64);
                    b.ins().load(mt, data_flags(), addr, 0)
                }
                Node::Op { op, args } => match clamp_bound(k, n) {
                    Some((max, x, c)) => ops::clamp_by(b, max, arg(x)?, arg(c)?),
                    None => {
                        let argv = args.iter().map(|&a| arg(a)).collect::<Result<Vec<Value>, _>>()?;
                        ops::emit(b, module, *op, &argv, arg_dtype(k, *op, args), n.dtype, 1)?
                    }
                },
                Node::Index(_) | Node::Gather { .. } => continue,
            };
            scalar[ni] = Some(v);
            if matches!(n.node, Node::Const(_)) {
                continue;
            }
            let vector = (self.lanes > 1).then(|| {
                let lane = if n.dtype == DType::Bool { bool_mask(b, v, self.lanes) } else { v };
                let ty = reg_type(n.dtype, self.lanes);
                let splat = b.ins().splat(ty, lane);
                match self.shape {
                    LoopShape::Hoisting => HoistedVector::Register(splat),
                    LoopShape::InPlace => {
                        // 16 bytes, aligned to 2^4: every vector type here is 128 bits.
                        let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 4));
                        b.ins().stack_store(types::I64, splat, slot, 0);
                        HoistedVector::Stack(slot, ty)
                    }
                }
            });
            self.hoisted[ni] = Some(Hoisted { scalar: v, vector });
        }
        Ok(())
    }

    /// Fills the part of every reduction's output that this call's range of
    /// the outermost axis writes with the reduction's identity: the whole
    /// output when the reduction runs over that axis (the caller then hands
    /// each range its own partial buffer), else the range's rows.
    fn init_reductions(&mut self, b: &mut FunctionBuilder) -> Result<(), CodegenError> {
        for (o, out) in self.k.outputs.iter().enumerate() {
            let OutputKind::Reduce { op, axes } = &out.kind else { continue };
            let d = out.aval.dtype;
            let id = op.identity(d).as_f64();
            let ptr = self.ptrs[self.k.inputs.len() + o];
            let var = b.declare_var(types::I64);
            let (start, end) = if axes.contains(&0) {
                (b.ins().iconst(types::I64, 0), b.ins().iconst(types::I64, out.aval.numel() as i64))
            } else {
                let row = self.out_at[o].coeffs[0];
                (b.ins().imul_imm_s(self.lo, row), b.ins().imul_imm_s(self.hi, row))
            };
            b.def_var(var, start);
            let (lp, i) = begin_loop(b, self.shape, var, end, 1);
            let v = constant(b, d, 1, id);
            let off = b.ins().imul_imm_s(i, mem_type(d).bytes() as i64);
            let addr = b.ins().iadd(ptr, off);
            b.ins().store(data_flags(), v, addr, 0);
            end_loop(b, lp, i, 1);
        }
        Ok(())
    }

    fn nest(&mut self, b: &mut FunctionBuilder, module: &mut JITModule, d: usize) -> Result<(), CodegenError> {
        let r = self.k.domain.len();
        if d + 1 == r {
            return self.innermost(b, module);
        }
        let (start, bound) = self.range(b, d);
        b.def_var(self.idx[d], start);
        let (lp, i) = begin_loop(b, self.shape, self.idx[d], bound, 1);
        self.nest(b, module, d + 1)?;
        end_loop(b, lp, i, 1);
        Ok(())
    }

    /// Where axis `d`'s loop starts and ends: the call's range for the
    /// outermost axis, the whole axis otherwise.
    fn range(&self, b: &mut FunctionBuilder, d: usize) -> (Value, Value) {
        if d == 0 {
            (self.lo, self.hi)
        } else {
            (b.ins().iconst(types::I64, 0), b.ins().iconst(types::I64, self.k.domain[d] as i64))
        }
    }

    /// `a.offset + Σ_{outer d} a.coeffs[d]·i_d`: the element of a row's
    /// start (memoised by the affine's outer part, so that equal offsets are
    /// one value the whole body indexes from).
    fn row_start(&mut self, b: &mut FunctionBuilder, a: &Affine) -> Value {
        let r = self.k.domain.len();
        let key = Affine { offset: a.offset, coeffs: a.coeffs[..r - 1].to_vec() };
        if let Some(&v) = self.row_starts.get(&key) {
            return v;
        }
        let mut off = b.ins().iconst(types::I64, a.offset);
        for d in 0..r - 1 {
            let c = a.coeffs[d];
            if c != 0 {
                let i = b.use_var(self.idx[d]);
                let t = b.ins().imul_imm_s(i, c);
                off = b.ins().iadd(off, t);
            }
        }
        self.row_starts.insert(key, off);
        off
    }

    fn innermost(&mut self, b: &mut FunctionBuilder, module: &mut JITModule) -> Result<(), CodegenError> {
        let k = self.k;
        let r = k.domain.len();
        self.set_rows(b);
        // Accumulators of reductions along this axis start at the identity.
        for o in 0..k.outputs.len() {
            if !self.inner_reduced(o) {
                continue;
            }
            let OutputKind::Reduce { op, .. } = &k.outputs[o].kind else { continue };
            let d = k.outputs[o].aval.dtype;
            let id = op.identity(d).as_f64();
            let vector = b.declare_var(reg_type(d, self.lanes.max(2)));
            let scalar = b.declare_var(reg_type(d, 1));
            if self.lanes > 1 {
                let v = constant(b, d, self.lanes, id);
                b.def_var(vector, v);
            }
            let s = constant(b, d, 1, id);
            b.def_var(scalar, s);
            self.acc[o] = Some(Acc { vector, scalar });
        }
        let var = self.idx[r - 1];
        let (start, end) = self.range(b, r - 1);
        if self.order.stages.is_empty() {
            self.span(b, module, var, start, end, Part::Body)?;
        } else if !self.chunked() {
            self.chunk_start = Some(start);
            self.chunk(b, module, var, start, end)?;
        } else {
            // Chunks of `CHUNK` points, the last one shorter.
            let cvar = b.declare_var(types::I64);
            b.def_var(cvar, start);
            let (lp, c) = begin_loop(b, self.shape, cvar, end, 1);
            let cend = b.ins().iadd_imm_s(c, CHUNK as i64);
            let cend = b.ins().smin(cend, end);
            self.chunk_start = Some(c);
            self.chunk(b, module, var, c, cend)?;
            end_loop(b, lp, c, CHUNK as i64);
        }
        // Fold the accumulators into memory: lanes in order, then the tail.
        for o in 0..k.outputs.len() {
            let Some(acc) = self.acc[o] else { continue };
            let OutputKind::Reduce { op, .. } = &k.outputs[o].kind else { continue };
            let d = k.outputs[o].aval.dtype;
            let combine = op.combine();
            let mut total = None;
            if self.lanes > 1 {
                let v = b.use_var(acc.vector);
                for lane in 0..self.lanes {
                    let x = b.ins().extractlane(v, lane as u8);
                    total = Some(match total {
                        None => x,
                        Some(t) => ops::emit(b, module, combine, &[t, x], d, d, 1)?,
                    });
                }
            }
            let s = b.use_var(acc.scalar);
            let total = match total {
                None => s,
                Some(t) => ops::emit(b, module, combine, &[t, s], d, d, 1)?,
            };
            let size = mem_type(d).bytes() as i64;
            let addr = self.element(b, self.out_row[o], self.out_row[o].start, 0, size);
            let old = b.ins().load(mem_type(d), data_flags(), addr, 0);
            let new = ops::emit(b, module, combine, &[old, total], d, d, 1)?;
            b.ins().store(data_flags(), new, addr, 0);
            self.acc[o] = None;
        }
        Ok(())
    }

    /// Where each load's and output's row starts, at the current outer indices.
    fn set_rows(&mut self, b: &mut FunctionBuilder) {
        let k = self.k;
        self.row_starts.clear();
        for (i, n) in k.nodes.iter().enumerate() {
            if let Node::Load { input, at } = &n.node {
                let start = self.row_start(b, at);
                self.load_row[i] = Some(Row { base: self.ptrs[*input], start });
            }
        }
        self.out_row = Vec::with_capacity(k.outputs.len());
        for o in 0..k.outputs.len() {
            let at = self.out_at[o].clone();
            let start = self.row_start(b, &at);
            self.out_row.push(Row { base: self.ptrs[k.inputs.len() + o], start });
        }
    }

    /// Whether the innermost axis runs in chunks (see [`CHUNK`]).
    fn chunked(&self) -> bool {
        self.k.domain.len() == 1 || self.k.domain.last().is_some_and(|&n| n > CHUNK)
    }

    /// Elements a row buffer holds (besides the tail's vector).
    fn chunk_len(&self) -> usize {
        if self.chunked() {
            CHUNK
        } else {
            self.k.domain.last().copied().unwrap_or(1)
        }
    }

    /// The stages, then the body, over points `lo..hi` of the innermost axis.
    fn chunk(
        &mut self,
        b: &mut FunctionBuilder,
        module: &mut JITModule,
        var: Variable,
        lo: Value,
        hi: Value,
    ) -> Result<(), CodegenError> {
        // Buffer pointers and row starts are loaded and computed again before
        // each loop. Kept from the kernel's entry, they would live across the
        // calls, which clobber every register a loop could hold them in: the
        // loops then reloaded them from the stack and stored them back on
        // every step.
        let kept = (self.ptrs.clone(), self.load_row.clone(), self.out_row.clone(), self.row_starts.clone());
        for s in 0..self.order.stages.len() {
            self.reload_pointers(b);
            self.span(b, module, var, lo, hi, Part::Stage(s))?;
            let n = b.ins().isub(hi, lo);
            self.row_call(b, module, s, n)?;
        }
        self.reload_pointers(b);
        let r = self.span(b, module, var, lo, hi, Part::Body);
        (self.ptrs, self.load_row, self.out_row, self.row_starts) = kept;
        r
    }

    /// Loads the buffer pointers from the table again, and the row starts.
    fn reload_pointers(&mut self, b: &mut FunctionBuilder) {
        self.ptrs = load_pointers(b, self.table, self.k.inputs.len() + self.k.outputs.len());
        self.set_rows(b);
    }

    /// A vector loop over `lo..hi` of the innermost axis running `part`, then
    /// what it leaves.
    fn span(
        &mut self,
        b: &mut FunctionBuilder,
        module: &mut JITModule,
        var: Variable,
        lo: Value,
        hi: Value,
        part: Part,
    ) -> Result<(), CodegenError> {
        let r = self.k.domain.len();
        b.def_var(var, lo);
        if self.lanes > 1 {
            let l = self.lanes as i64;
            let (lp, i) = begin_loop(b, self.shape, var, hi, l);
            self.body(b, module, i, Width::full(self.lanes), part)?;
            end_loop(b, lp, i, l);
        }
        // What the vector loop leaves. The axis of a rank-1 domain is split
        // into blocks whose boundaries are multiples of 64 (see
        // `parallel::blocks`), so only its last block has a tail; it runs as
        // scalars, once per call. An inner axis of a larger domain runs whole
        // on every row: there the vector loop always leaves the same
        // `size % lanes` points, and when they are two or three, one vector
        // whose other lanes are neither read nor written takes them. (Rows of
        // 7 and 10 ran 1.2× and 1.1× faster so; a lone point runs faster as a
        // scalar.) A row run in chunks (whose lengths are multiples of the
        // lanes, but for the last) leaves the same points in its last chunk
        // only, and takes them the same way, so that reductions add in the
        // same order with row functions and without.
        let size = self.k.domain[r - 1];
        let tail = if self.lanes > 1 { size % self.lanes as usize } else { size };
        if tail > 1 && self.lanes > 1 && r > 1 {
            let i = b.use_var(var);
            let w = Width { lanes: self.lanes, live: tail as u32 };
            if self.order.stages.is_empty() || !self.chunked() {
                self.body(b, module, i, w, part)?;
            } else {
                let (last, after) = (b.create_block(), b.create_block());
                let left = b.ins().icmp(IntCC::SignedLessThan, i, hi);
                b.ins().brif(left, last, &[], after, &[]);
                b.seal_block(last);
                b.switch_to_block(last);
                self.body(b, module, i, w, part)?;
                b.ins().jump(after, &[]);
                b.seal_block(after);
                b.switch_to_block(after);
            }
        } else if tail > 0 {
            let (lp, i) = begin_loop(b, self.shape, var, hi, 1);
            self.body(b, module, i, Width::full(1), part)?;
            end_loop(b, lp, i, 1);
        }
        Ok(())
    }

    /// The dtype of every row function's argument and result in this kernel:
    /// that of its vector lanes.
    fn row_dtype(&self) -> DType {
        if self.lanes == 2 {
            DType::F64
        } else {
            DType::F32
        }
    }

    /// log2 of the bytes of a row buffer's element.
    fn row_shift(&self) -> i64 {
        self.row_dtype().size_bytes().trailing_zeros() as i64
    }

    /// Where element `i` of the chunk (`i` counted from the axis' start) sits
    /// in a row buffer.
    fn buffer_at(&self, b: &mut FunctionBuilder, slot: StackSlot, i: Value) -> Result<Value, CodegenError> {
        let start = self.chunk_start.ok_or_else(|| cg_err("a row buffer is used outside a chunk"))?;
        let base = b.ins().stack_addr(types::I64, slot, 0);
        let j = b.ins().isub(i, start);
        let off = b.ins().ishl_imm_s(j, self.row_shift());
        Ok(b.ins().iadd(base, off))
    }

    /// Runs stage `s`'s row function over the `n` arguments in the argument
    /// buffer; when it declines (an argument off its common path), computes
    /// them inline instead.
    fn row_call(
        &mut self,
        b: &mut FunctionBuilder,
        module: &mut JITModule,
        s: usize,
        n: Value,
    ) -> Result<(), CodegenError> {
        let Stage { node, op, .. } = self.order.stages[s];
        let (Some(arg), Some(out)) = (self.arg_buffer, self.row_buffers[node]) else {
            return Err(cg_err(format!("n{node} has no row buffers")));
        };
        let d = self.row_dtype();
        let inline_op = op.elementwise();
        // Called through its address: a function of this process, which
        // outlives the generated code.
        let f = bulk::row_fn(op, d).ok_or_else(|| cg_err(format!("no row function for {op:?} of {d}")))?;
        let mut sig = module.make_signature();
        sig.params.extend([AbiParam::new(types::I64); 3]);
        sig.returns.push(AbiParam::new(types::I32));
        let sig = b.import_signature(sig);
        let addr = b.ins().iconst(types::I64, f as usize as i64);
        let (pa, po) = (b.ins().stack_addr(types::I64, arg, 0), b.ins().stack_addr(types::I64, out, 0));
        let call = b.ins().call_indirect(sig, addr, &[pa, po, n]);
        let ok = b.inst_results(call)[0];
        let (fallback, done) = (b.create_block(), b.create_block());
        b.ins().brif(ok, done, &[], fallback, &[]);
        b.seal_block(fallback);
        b.switch_to_block(fallback);
        inline_over(b, module, inline_op, d, self.lanes, [pa, po, n])?;
        b.ins().jump(done, &[]);
        b.seal_block(done);
        b.switch_to_block(done);
        Ok(())
    }

    /// The address of element `i` (+ lane offsets) of a row:
    /// `base + (start + i·c)·size`, in a form x86 addresses in one operand.
    fn element(&self, b: &mut FunctionBuilder, row: Row, i: Value, c: i64, size: i64) -> Value {
        let index = match c {
            0 => row.start,
            1 => b.ins().iadd(row.start, i),
            _ => {
                let t = b.ins().imul_imm_s(i, c);
                b.ins().iadd(row.start, t)
            }
        };
        let scaled = if size == 1 { index } else { b.ins().ishl_imm_s(index, size.trailing_zeros() as i64) };
        b.ins().iadd(row.base, scaled)
    }

    /// Loads `w.live` elements of stride `c` (vector load, splat or gather);
    /// lanes past them repeat the first element.
    fn load(&self, b: &mut FunctionBuilder, row: Row, i: Value, c: i64, d: DType, w: Width) -> Value {
        let lanes = w.lanes;
        let mt = mem_type(d);
        let size = mt.bytes() as i64;
        let addr = self.element(b, row, i, c, size);
        if lanes == 1 {
            return b.ins().load(mt, data_flags(), addr, 0);
        }
        let vt = reg_type(d, lanes);
        if d == DType::Bool {
            // Booleans are bytes in memory and lane masks in registers.
            let first = b.ins().load(mt, data_flags(), addr, 0);
            let first = bool_mask(b, first, lanes);
            let mut v = b.ins().splat(vt, first);
            if c != 0 {
                for lane in 1..w.live {
                    let x = b.ins().load(mt, data_flags(), addr, (lane as i64 * c * size) as i32);
                    let x = bool_mask(b, x, lanes);
                    v = b.ins().insertlane(v, x, lane as u8);
                }
            }
            return v;
        }
        match c {
            1 if w.is_full() => b.ins().load(vt, data_flags(), addr, 0),
            0 => {
                let s = b.ins().load(mt, data_flags(), addr, 0);
                b.ins().splat(vt, s)
            }
            _ => {
                let first = b.ins().load(mt, data_flags(), addr, 0);
                let mut v = b.ins().splat(vt, first);
                for lane in 1..w.live {
                    let x = b.ins().load(mt, data_flags(), addr, (lane as i64 * c * size) as i32);
                    v = b.ins().insertlane(v, x, lane as u8);
                }
                v
            }
        }
    }

    /// Loads input `input` at the i32 positions `index` (one per lane),
    /// each clamped into the input so that no read is out of bounds.
    fn gather(&self, b: &mut FunctionBuilder, input: usize, index: Value, d: DType, lanes: u32) -> Value {
        let len = self.k.inputs[input].numel() as i64;
        if len == 0 {
            return constant(b, d, lanes, 0.0);
        }
        let mt = mem_type(d);
        let base = self.ptrs[input];
        let at = |b: &mut FunctionBuilder, i32_pos: Value| -> Value {
            let pos = b.ins().sextend(types::I64, i32_pos);
            let zero = b.ins().iconst(types::I64, 0);
            let last = b.ins().iconst(types::I64, len - 1);
            let pos = b.ins().smax(pos, zero);
            let pos = b.ins().smin(pos, last);
            let off = b.ins().imul_imm_s(pos, mt.bytes() as i64);
            let addr = b.ins().iadd(base, off);
            b.ins().load(mt, data_flags(), addr, 0)
        };
        if lanes == 1 {
            return at(b, index);
        }
        let lane_value = |b: &mut FunctionBuilder, x: Value| if d == DType::Bool { bool_mask(b, x, lanes) } else { x };
        let first_pos = b.ins().extractlane(index, 0u8);
        let first = at(b, first_pos);
        let first = lane_value(b, first);
        let mut v = b.ins().splat(reg_type(d, lanes), first);
        for lane in 1..lanes {
            let p = b.ins().extractlane(index, lane as u8);
            let x = at(b, p);
            let x = lane_value(b, x);
            v = b.ins().insertlane(v, x, lane as u8);
        }
        v
    }

    /// The value of an affine index at inner index `i + lane`, converted to `d`.
    fn index_scalar(&self, b: &mut FunctionBuilder, a: &Affine, i: Value, lane: i64, d: DType) -> Value {
        let r = self.k.domain.len();
        let mut v = b.ins().iconst(types::I64, a.offset + a.coeffs[r - 1] * lane);
        for (dim, &c) in a.coeffs.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let x = if dim == r - 1 { i } else { b.use_var(self.idx[dim]) };
            let t = b.ins().imul_imm_s(x, c);
            v = b.ins().iadd(v, t);
        }
        match d {
            DType::I32 => b.ins().ireduce(types::I32, v),
            DType::F32 => b.ins().fcvt_from_sint(types::F32, v),
            DType::F64 => b.ins().fcvt_from_sint(types::F64, v),
            DType::Bool => b.ins().icmp_imm_s(IntCC::NotEqual, v, 0),
        }
    }

    /// The values of an affine index at inner indices `i..i + 4` as one
    /// vector of i32 or f32: the first lane's value splatted, plus each lane's
    /// offset (rather than four scalar computations and three lane inserts).
    /// f32 lanes convert from i32 lanes, as exactly as each lane's own
    /// conversion; `None` when the index could leave the i32 range.
    fn index_vector(&self, b: &mut FunctionBuilder, a: &Affine, i: Value, d: DType, lanes: u32) -> Option<Value> {
        if lanes != 4 || !matches!(d, DType::I32 | DType::F32) {
            return None;
        }
        let c = *a.coeffs.last()?;
        // Lanes past a row's end (a partial vector's) count too.
        let (lo, hi) = affine_range(a, &self.k.domain);
        let reach = 3 * c.abs();
        let fits = |v: i64| i32::try_from(v).is_ok();
        if !fits(lo - reach) || !fits(hi + reach) {
            return None;
        }
        let first = self.index_scalar(b, a, i, 0, DType::I32);
        let mut v = b.ins().splat(types::I32X4, first);
        if c != 0 {
            let steps = ops::vector_constant(b, types::I32X4, (0..4).map(|l| (l * c) as u64));
            v = b.ins().iadd(v, steps);
        }
        Some(if d == DType::F32 { b.ins().fcvt_from_sint(types::F32X4, v) } else { v })
    }

    /// The value of node `ni` at inner index `i`, from the values of its arguments.
    fn node(
        &self,
        b: &mut FunctionBuilder,
        module: &mut JITModule,
        ni: usize,
        i: Value,
        w: Width,
        vals: &[Option<Value>],
    ) -> Result<Value, CodegenError> {
        let k = self.k;
        let lanes = w.lanes;
        let last = k.domain.len() - 1;
        let n = &k.nodes[ni];
        if let Some(h) = self.hoisted[ni] {
            return match (lanes, h.vector) {
                (1, _) => Ok(h.scalar),
                (_, Some(HoistedVector::Register(v))) => Ok(v),
                (_, Some(HoistedVector::Stack(slot, ty))) => Ok(b.ins().stack_load(types::I64, ty, slot, 0)),
                (_, None) => Err(cg_err(format!("n{ni} was hoisted without its vector"))),
            };
        }
        let arg = |a: usize| vals[a].ok_or_else(|| cg_err(format!("n{ni} reads n{a} before it is computed")));
        Ok(match &n.node {
            Node::Load { at, .. } => {
                let row = self.load_row[ni].ok_or_else(|| cg_err(format!("n{ni} has no row pointer")))?;
                self.load(b, row, i, at.coeffs[last], n.dtype, w)
            }
            Node::Const(s) => constant(b, n.dtype, lanes, s.as_f64()),
            Node::Index(a) => {
                if let Some(v) = self.index_vector(b, a, i, n.dtype, lanes) {
                    return Ok(v);
                }
                let first = self.index_scalar(b, a, i, 0, n.dtype);
                if lanes == 1 {
                    first
                } else {
                    let mut v = b.ins().splat(reg_type(n.dtype, lanes), first);
                    for lane in 1..lanes {
                        let x = self.index_scalar(b, a, i, lane as i64, n.dtype);
                        v = b.ins().insertlane(v, x, lane as u8);
                    }
                    v
                }
            }
            Node::Op { op, args } => match clamp_bound(k, n) {
                Some((max, x, c)) => ops::clamp_by(b, max, arg(x)?, arg(c)?),
                None => {
                    let argv = args.iter().map(|&a| arg(a)).collect::<Result<Vec<Value>, _>>()?;
                    ops::emit(b, module, *op, &argv, arg_dtype(k, *op, args), n.dtype, lanes)?
                }
            },
            Node::Gather { input, index } => self.gather(b, *input, arg(*index)?, n.dtype, lanes),
        })
    }

    /// Stores or accumulates output `o`'s value `v` at inner index `i`.
    fn output(
        &self,
        b: &mut FunctionBuilder,
        module: &mut JITModule,
        o: usize,
        v: Value,
        i: Value,
        w: Width,
    ) -> Result<(), CodegenError> {
        let out = &self.k.outputs[o];
        let last = self.k.domain.len() - 1;
        let d = out.aval.dtype;
        let size = mem_type(d).bytes() as i64;
        let lanes = w.lanes;
        match &out.kind {
            OutputKind::Store => {
                let addr = self.element(b, self.out_row[o], i, 1, size);
                store_live(b, v, addr, size, w);
            }
            OutputKind::Reduce { op, .. } => {
                if let Some(acc) = self.acc[o] {
                    let var = if lanes == 1 { acc.scalar } else { acc.vector };
                    let v = if w.is_full() {
                        v
                    } else {
                        // Lanes past the row add the reduction's identity.
                        let identity = constant(b, d, lanes, op.identity(d).as_f64());
                        let live = live_mask(b, reg_type(d, lanes), w);
                        ops::select(b, live, v, identity)
                    };
                    let old = b.use_var(var);
                    let new = ops::emit(b, module, op.combine(), &[old, v], d, d, lanes)?;
                    b.def_var(var, new);
                } else {
                    let c = self.out_at[o].coeffs[last];
                    if lanes > 1 && c != 1 {
                        // Its lanes would not be consecutive elements; an output reducing
                        // along the inner axis (`c == 0`) accumulates in registers instead.
                        return Err(cg_err(format!("output {o} reduces in memory with stride {c}")));
                    }
                    let old = self.load(b, self.out_row[o], i, c, d, w);
                    let new = ops::emit(b, module, op.combine(), &[old, v], d, d, lanes)?;
                    let addr = self.element(b, self.out_row[o], i, c, size);
                    store_live(b, new, addr, size, w);
                }
            }
        }
        Ok(())
    }

    /// The body, or a stage, at inner index `i`.
    fn body(
        &self,
        b: &mut FunctionBuilder,
        module: &mut JITModule,
        i: Value,
        w: Width,
        part: Part,
    ) -> Result<(), CodegenError> {
        let mut vals: Vec<Option<Value>> = vec![None; self.k.nodes.len()];
        let items = match part {
            Part::Body => &self.order.items,
            Part::Stage(s) => &self.order.stages[s].items,
        };
        for &item in items {
            match item {
                Item::Node(ni) => vals[ni] = Some(self.node(b, module, ni, i, w, &vals)?),
                Item::Row(ni) => {
                    let slot = self.row_buffers[ni].ok_or_else(|| cg_err(format!("n{ni} has no row buffer")))?;
                    let addr = self.buffer_at(b, slot, i)?;
                    let ty = reg_type(self.k.nodes[ni].dtype, w.lanes);
                    vals[ni] = Some(b.ins().load(ty, data_flags(), addr, 0));
                }
                Item::Output(o) => {
                    let node = self.k.outputs[o].node;
                    let v = vals[node].ok_or_else(|| cg_err(format!("output {o} has no value")))?;
                    self.output(b, module, o, v, i, w)?;
                }
            }
        }
        if let Part::Stage(s) = part {
            let arg = self.order.stages[s].arg;
            let v = vals[arg].ok_or_else(|| cg_err(format!("stage {s} has no argument")))?;
            let slot = self.arg_buffer.ok_or_else(|| cg_err("no argument buffer"))?;
            // Whole vectors, the tail's too: the buffer has room for one more.
            let addr = self.buffer_at(b, slot, i)?;
            b.ins().store(data_flags(), v, addr, 0);
        }
        Ok(())
    }
}

/// What a loop over the innermost axis runs: a stage, or the body.
#[derive(Clone, Copy)]
enum Part {
    Stage(usize),
    Body,
}

/// The first `n` pointers of a kernel's pointer table.
fn load_pointers(b: &mut FunctionBuilder, table: Value, n: usize) -> Vec<Value> {
    (0..n).map(|i| b.ins().load(types::I64, MemFlagsData::trusted(), table, (8 * i) as i32)).collect()
}

/// Stores the live lanes of `v` (a scalar, or a vector) at `addr`, one
/// element after another.
fn store_live(b: &mut FunctionBuilder, v: Value, addr: Value, size: i64, w: Width) {
    if w.is_full() {
        b.ins().store(data_flags(), v, addr, 0);
        return;
    }
    for lane in 0..w.live {
        let x = b.ins().extractlane(v, lane as u8);
        b.ins().store(data_flags(), x, addr, (lane as i64 * size) as i32);
    }
}

/// A vector of type `ty` whose live lanes are all ones and the others zero.
fn live_mask(b: &mut FunctionBuilder, ty: cranelift_codegen::ir::Type, w: Width) -> Value {
    ops::vector_constant(b, ty, (0..w.lanes).map(|l| if l < w.live { u64::MAX } else { 0 }))
}

/// Which nodes have the same value at every point of the domain: constants,
/// loads whose position does not move with any index, and operations on
/// such nodes only. (Node order is a topological order.)
pub(super) fn invariant_nodes(k: &Kernel) -> Vec<bool> {
    let mut inv = vec![false; k.nodes.len()];
    for (ni, n) in k.nodes.iter().enumerate() {
        inv[ni] = match &n.node {
            Node::Const(_) => true,
            Node::Load { at, .. } => at.coeffs.iter().all(|&c| c == 0),
            Node::Op { args, .. } => args.iter().all(|&a| inv[a]),
            Node::Index(_) | Node::Gather { .. } => false,
        };
    }
    inv
}

/// For a float `max`/`min` node of a value and a constant that is neither
/// zero nor NaN: whether it is `max`, the value's node and the constant's.
/// Against such a bound a compare and a select give IEEE `maximum`/`minimum`
/// exactly (a NaN operand fails the compare and passes through; equal
/// operands are the same number, with no ±0 to order), in two instructions
/// instead of the NaN- and zero-aware sequence of eight that `fmax`/`fmin`
/// become on x86.
pub(super) fn clamp_bound(k: &Kernel, n: &KNode) -> Option<(bool, usize, usize)> {
    let Node::Op { op: op @ (E::Max | E::Min), args } = &n.node else { return None };
    if !n.dtype.is_float() {
        return None;
    }
    let is_bound =
        |a: usize| matches!(&k.nodes[a].node, Node::Const(s) if { let v = s.as_f64(); v != 0.0 && !v.is_nan() });
    let max = matches!(op, E::Max);
    match args[..] {
        [x, c] if is_bound(c) => Some((max, x, c)),
        [c, x] if is_bound(c) => Some((max, x, c)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayjit_ir::{AVal, Scalar};
    use arrayjit_lower::KOutput;

    /// A kernel over `[n]` storing, for each input, `input · c + c'` with
    /// constants of its own (so `inputs` buffers, `inputs` outputs and
    /// `2 · inputs` constants), and `exps` exponentials of the first input.
    fn kernel(inputs: usize, exps: usize) -> Kernel {
        let aval = AVal::new(DType::F32, [64]);
        let (mut nodes, mut outputs) = (Vec::new(), Vec::new());
        let node = |node: Node| KNode { node, dtype: DType::F32 };
        for i in 0..inputs {
            let at = Affine { offset: 0, coeffs: vec![1] };
            nodes.push(node(Node::Load { input: i, at }));
            nodes.push(node(Node::Const(Scalar::F32(1.5 + i as f32))));
            nodes.push(node(Node::Op { op: E::Mul, args: vec![nodes.len() - 2, nodes.len() - 1] }));
            nodes.push(node(Node::Const(Scalar::F32(-2.5 - i as f32))));
            nodes.push(node(Node::Op { op: E::Add, args: vec![nodes.len() - 2, nodes.len() - 1] }));
            outputs.push(KOutput { node: nodes.len() - 1, kind: OutputKind::Store, aval: aval.clone() });
        }
        for _ in 0..exps {
            nodes.push(node(Node::Op { op: E::Exp, args: vec![0] }));
            outputs.push(KOutput { node: nodes.len() - 1, kind: OutputKind::Store, aval: aval.clone() });
        }
        Kernel { domain: vec![64], inputs: vec![aval; inputs], nodes, outputs }
    }

    fn hoists(k: &Kernel) -> bool {
        hoists_invariants(k, &order::plan(k, &[]), &invariant_nodes(k))
    }

    #[test]
    fn loops_hoist_what_fits_in_registers() {
        // Two inputs: 4 buffers, 4 constants, a few live values.
        assert!(hoists(&kernel(2, 0)));
        // Three inputs and an exponential: 7 buffers, 6 constants and the
        // exponential's own; more than sixteen vector registers.
        assert!(!hoists(&kernel(3, 1)));
        // Six inputs: 12 buffer pointers, more than the general registers hold.
        assert!(!hoists(&kernel(6, 0)));
    }

    #[test]
    fn values_that_do_not_move_with_the_indices_are_invariant() {
        let f = |node: Node| KNode { node, dtype: DType::F32 };
        let k = Kernel {
            domain: vec![4, 8],
            inputs: vec![AVal::new(DType::F32, [4, 8]), AVal::new(DType::F32, [])],
            nodes: vec![
                f(Node::Load { input: 1, at: Affine { offset: 0, coeffs: vec![0, 0] } }),
                f(Node::Const(Scalar::F32(1.0))),
                f(Node::Op { op: E::Div, args: vec![1, 0] }),
                f(Node::Load { input: 0, at: Affine { offset: 0, coeffs: vec![8, 1] } }),
                f(Node::Op { op: E::Mul, args: vec![3, 2] }),
                f(Node::Load { input: 0, at: Affine { offset: 3, coeffs: vec![8, 0] } }),
            ],
            outputs: vec![],
        };
        assert_eq!(invariant_nodes(&k), [true, true, true, false, false, false]);
    }
}
