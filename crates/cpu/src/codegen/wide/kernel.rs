//! Kernels over a row-major `[rows, cols]` domain, every value f32 (or every
//! value f64), compiled to AVX-512 machine code of our own. Cranelift gives
//! x86 128-bit vectors in 16 registers; here each row is a fully unrolled run
//! of 512-bit vectors (its last one masked) with every value of the body in
//! one of 32 registers, so the elementwise passes of an optimizer's update
//! run the same operations, in the same order, on four times the lanes.
//!
//! [`compile`] takes only kernels it fully understands and returns `None` for
//! the rest, which the Cranelift generator compiles. Each operation gives the
//! bits the Cranelift code gives: IEEE arithmetic, square roots and
//! comparisons; max/min propagating NaN with −0 below +0; column reductions
//! accumulated row after row in the output, as there.

use super::asm::{
    Asm, Cmp, Cond, Elem, Gpr, Masking, Mem, Rm, VOp, Zmm, K, R11, RAX, RBP, RBX, RCX, RDI, RDX, RSI, RSP,
};
use arrayjit_ir::prim::Elementwise as E;
use arrayjit_ir::DType;
use arrayjit_lower::{Kernel, Node, OutputKind, ReduceOp};
use std::collections::HashMap;

/// The most vectors a row may take (each row is unrolled whole).
const MAX_VECTORS: usize = 32;
/// The most stack the code takes below its pushes: less than a page, so that
/// it needs no stack probes (a thread's guard page cannot be stepped over).
const MAX_FRAME: i32 = 3072;
/// Registers values live in: zmm0 … zmm28.
const VALUE_REGS: u8 = 29;
/// A sequence's result before it moves to its register.
const SEQ: Zmm = Zmm(29);
/// Operands brought from the stack into registers.
const SCRATCH: [Zmm; 2] = [Zmm(31), Zmm(30)];
/// Masks the last vector of a row when it is partial.
const TAIL: K = K(1);
/// A sequence's own mask.
const KSCRATCH: K = K(7);
/// Mask registers booleans live in.
const BOOL_REGS: [u8; 5] = [2, 3, 4, 5, 6];
/// General registers that hold row pointers (rax is scratch, rcx counts rows).
const STREAM_REGS: [Gpr; 13] =
    [RBX, RBP, RSI, RDI, RDX, Gpr(8), Gpr(9), Gpr(10), R11, Gpr(12), Gpr(13), Gpr(14), Gpr(15)];
const SAVED: [Gpr; 6] = [RBX, RBP, Gpr(12), Gpr(13), Gpr(14), Gpr(15)];

/// A kernel as machine code, with what the executable needs to know of it.
pub struct WideKernel {
    pub code: Vec<u8>,
    pub lanes: u32,
    /// Per output, per input: whether every read of the input at a point
    /// comes before the output's write there.
    pub reads_first: Vec<Vec<bool>>,
    /// A description for dumps.
    pub text: String,
}

/// Whether this CPU runs the code [`compile`] makes.
pub fn available() -> bool {
    cfg!(all(target_arch = "x86_64", unix)) && crate::width::widest() == Some(crate::width::Width::Avx512)
}

/// Where a value lives while the body runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    Reg(Zmm),
    /// A whole vector on the stack, at this offset from rsp.
    Slot(i32),
    Mask(K),
}

/// A value computed once before the loops.
#[derive(Clone, Debug)]
struct Inv {
    src: InvSrc,
    slot: i32,
    loc: Loc,
    /// Uses in the body, to pick which stay in registers.
    uses: usize,
}

#[derive(Clone, Debug, PartialEq)]
enum InvSrc {
    /// A constant's bits (one lane).
    Bits(u64),
    /// Node `n` of the kernel (a scalar load or an operation on invariants).
    Node(usize),
}

/// A row pointer: `table[buffer] + (offset + row · i) · size` at row `i`.
#[derive(Clone, Debug)]
struct Stream {
    buffer: usize,
    offset: i64,
    row: i64,
    uses: usize,
    slot: i32,
    reg: Option<Gpr>,
}

/// The plan of a kernel: classes of its nodes, their places, the streams.
struct Plan<'k> {
    k: &'k Kernel,
    e: Elem,
    cols: usize,
    /// Body nodes in order.
    body: Vec<usize>,
    /// Node → invariant index, for invariant nodes.
    inv_of: Vec<Option<usize>>,
    invs: Vec<Inv>,
    /// The sign-bit constant `neg` and `abs` use, and the 1 of `rsqrt`.
    sign: Option<usize>,
    one: Option<usize>,
    /// Node → its register (body nodes).
    loc: Vec<Option<Loc>>,
    /// Node → stream (body loads); output → stream.
    load_stream: Vec<Option<usize>>,
    out_stream: Vec<usize>,
    streams: Vec<Stream>,
    frame: i32,
    s_saved: i32,
    s_table: i32,
    s_lo: i32,
}

fn node_args(n: &Node) -> &[usize] {
    match n {
        Node::Op { args, .. } => args,
        _ => &[],
    }
}

/// Whether the op is one this generator emits, on operands of the kernel's float type `f`.
fn supported(op: E, args: &[DType], out: DType, f: DType) -> bool {
    let all_f = args.iter().all(|&a| a == f);
    match op {
        E::Neg | E::Abs | E::Sqrt | E::Rsqrt | E::StopGradient => all_f && out == f && args.len() == 1,
        E::Convert { to } => all_f && to == f && out == f && args.len() == 1,
        E::Add | E::Sub | E::Mul | E::Div | E::Max | E::Min => all_f && out == f && args.len() == 2,
        E::Eq | E::Ne | E::Lt | E::Le | E::Gt | E::Ge => all_f && out == DType::Bool && args.len() == 2,
        E::Select => args.len() == 3 && args[0] == DType::Bool && args[1] == f && args[2] == f && out == f,
        _ => false,
    }
}

fn bits(d: DType, v: f64) -> u64 {
    if d == DType::F64 {
        v.to_bits()
    } else {
        (v as f32).to_bits() as u64
    }
}

fn fits(v: i64) -> Option<i32> {
    i32::try_from(v).ok()
}

/// The machine code of `k` (already coalesced, rank ≥ 1), or `None` when the
/// kernel is not one this generator takes or the CPU lacks AVX-512.
pub fn compile(k: &Kernel) -> Option<WideKernel> {
    if !available() {
        return None;
    }
    let plan = Plan::new(k)?;
    let reads_first = plan.reads_first();
    let code = plan.emit()?;
    let text = format!(
        "AVX-512 kernel over {:?}: {} body nodes, {} values computed once ({} in registers), {} row pointers ({} in registers), {} bytes\n",
        k.domain,
        plan.body.len(),
        plan.invs.len(),
        plan.invs.iter().filter(|i| !matches!(i.loc, Loc::Slot(_))).count(),
        plan.streams.len(),
        plan.streams.iter().filter(|s| s.reg.is_some()).count(),
        code.len()
    );
    Some(WideKernel { code, lanes: plan.e.lanes(), reads_first, text })
}

impl<'k> Plan<'k> {
    fn new(k: &'k Kernel) -> Option<Plan<'k>> {
        let [rows, cols] = k.domain[..] else { return None };
        if rows == 0 || cols == 0 || k.outputs.is_empty() {
            return None;
        }
        let f = k.outputs[0].aval.dtype;
        let e = match f {
            DType::F32 => Elem::F32,
            DType::F64 => Elem::F64,
            _ => return None,
        };
        if cols.div_ceil(e.lanes() as usize) > MAX_VECTORS {
            return None;
        }
        let size = e.bytes() as i64;
        // What the outputs need.
        let mut needed = vec![false; k.nodes.len()];
        let mut stack: Vec<usize> = k.outputs.iter().map(|o| o.node).collect();
        while let Some(n) = stack.pop() {
            if n >= k.nodes.len() {
                return None;
            }
            if !std::mem::replace(&mut needed[n], true) {
                stack.extend_from_slice(node_args(&k.nodes[n].node));
            }
        }
        // Classes: invariant (computed once) or body.
        let mut invariant = vec![false; k.nodes.len()];
        for (ni, n) in k.nodes.iter().enumerate() {
            if !needed[ni] {
                continue;
            }
            invariant[ni] = match &n.node {
                Node::Const(_) => n.dtype == f,
                Node::Load { at, .. } => match at.coeffs[..] {
                    [0, 0] => n.dtype == f || n.dtype == DType::Bool,
                    [r, 1] if r >= 0 && n.dtype == f => false,
                    _ => return None,
                },
                Node::Op { op, args } => {
                    let ad: Vec<DType> = args.iter().map(|&a| k.nodes[a].dtype).collect();
                    if args.iter().any(|&a| a >= ni) || !supported(*op, &ad, n.dtype, f) {
                        return None;
                    }
                    args.iter().all(|&a| invariant[a])
                }
                Node::Index(_) | Node::Gather { .. } => return None,
            };
            if matches!(n.node, Node::Const(_)) && !invariant[ni] {
                return None;
            }
        }
        for o in &k.outputs {
            let ok = match &o.kind {
                OutputKind::Store => true,
                OutputKind::Reduce { axes, .. } => axes[..] == [0],
            };
            if !ok || o.aval.dtype != f || k.nodes[o.node].dtype != f {
                return None;
            }
        }
        let body: Vec<usize> = (0..k.nodes.len()).filter(|&n| needed[n] && !invariant[n]).collect();

        // Invariants: constants by their bits, the rest by node.
        let mut invs: Vec<Inv> = Vec::new();
        let mut inv_of = vec![None; k.nodes.len()];
        let mut by_bits: HashMap<u64, usize> = HashMap::new();
        let mut constant = |invs: &mut Vec<Inv>, b: u64| -> usize {
            *by_bits.entry(b).or_insert_with(|| {
                invs.push(Inv { src: InvSrc::Bits(b), slot: 0, loc: Loc::Slot(0), uses: 0 });
                invs.len() - 1
            })
        };
        for ni in 0..k.nodes.len() {
            if !(needed[ni] && invariant[ni]) {
                continue;
            }
            inv_of[ni] = Some(match &k.nodes[ni].node {
                Node::Const(c) => constant(&mut invs, bits(f, c.as_f64())),
                _ => {
                    invs.push(Inv { src: InvSrc::Node(ni), slot: 0, loc: Loc::Slot(0), uses: 0 });
                    invs.len() - 1
                }
            });
        }
        let mut sign = None;
        let mut one = None;
        for (ni, n) in k.nodes.iter().enumerate() {
            match n.node {
                Node::Op { op: E::Neg | E::Abs, .. } if needed[ni] => sign = Some(constant(&mut invs, bits(f, -0.0))),
                Node::Op { op: E::Rsqrt, .. } if needed[ni] => one = Some(constant(&mut invs, bits(f, 1.0))),
                _ => {}
            }
        }
        // Frame: 64-byte slots for the invariants, then 8-byte words.
        let mut at = 0i32;
        for inv in &mut invs {
            inv.slot = at;
            inv.loc = Loc::Slot(at);
            at += 64;
        }
        let (s_saved, s_table, s_lo) = (at, at + 8, at + 16);
        at += 24;

        // Streams.
        let mut streams: Vec<Stream> = Vec::new();
        let mut stream_of: HashMap<(usize, i64, i64), usize> = HashMap::new();
        let mut stream = |buffer: usize, offset: i64, row: i64| -> Option<usize> {
            fits(offset * size)?;
            fits(row * size)?;
            let s = *stream_of.entry((buffer, offset, row)).or_insert_with(|| {
                streams.push(Stream { buffer, offset, row, uses: 0, slot: 0, reg: None });
                streams.len() - 1
            });
            streams[s].uses += 1;
            Some(s)
        };
        let mut load_stream = vec![None; k.nodes.len()];
        for &ni in &body {
            if let Node::Load { input, at: a } = &k.nodes[ni].node {
                load_stream[ni] = Some(stream(*input, a.offset, a.coeffs[0])?);
            }
        }
        let mut out_stream = Vec::new();
        for (o, out) in k.outputs.iter().enumerate() {
            let row = if matches!(out.kind, OutputKind::Store) { cols as i64 } else { 0 };
            out_stream.push(stream(k.inputs.len() + o, 0, row)?);
        }
        for s in &mut streams {
            s.slot = at;
            at += 8;
        }
        let mut by_use: Vec<usize> = (0..streams.len()).collect();
        by_use.sort_by_key(|&s| std::cmp::Reverse(streams[s].uses));
        for (&s, &r) in by_use.iter().zip(STREAM_REGS.iter()) {
            streams[s].reg = Some(r);
        }
        let frame = (at + 63) / 64 * 64;
        if frame > MAX_FRAME {
            return None;
        }

        let mut plan = Plan {
            k,
            e,
            cols,
            body,
            inv_of,
            invs,
            sign,
            one,
            loc: vec![None; k.nodes.len()],
            load_stream,
            out_stream,
            streams,
            frame,
            s_saved,
            s_table,
            s_lo,
        };
        plan.allocate()?;
        Some(plan)
    }

    /// Body position of each node's last use.
    fn last_uses(&self) -> Vec<usize> {
        let mut last = vec![0usize; self.k.nodes.len()];
        for (p, &ni) in self.body.iter().enumerate() {
            last[ni] = last[ni].max(p);
            for &a in node_args(&self.k.nodes[ni].node) {
                last[a] = last[a].max(p);
            }
        }
        last
    }

    /// Registers for the body's values and for as many invariants as fit;
    /// `None` when the body alone needs more than there are.
    fn allocate(&mut self) -> Option<()> {
        let k = self.k;
        let mut bool_invs = 0;
        for inv in &self.invs {
            if let InvSrc::Node(n) = inv.src {
                if k.nodes[n].dtype == DType::Bool {
                    bool_invs += 1;
                }
            }
        }
        if bool_invs > BOOL_REGS.len() {
            return None;
        }
        // Body uses of each invariant.
        for &ni in &self.body {
            for &a in node_args(&k.nodes[ni].node) {
                if let Some(i) = self.inv_of[a] {
                    self.invs[i].uses += 1;
                }
            }
            let own = match k.nodes[ni].node {
                Node::Op { op: E::Neg | E::Abs, .. } => self.sign,
                Node::Op { op: E::Rsqrt, .. } => self.one,
                _ => None,
            };
            if let Some(s) = own {
                self.invs[s].uses += 1;
            }
        }
        for o in &k.outputs {
            if let Some(i) = self.inv_of[o.node] {
                self.invs[i].uses += 1;
            }
        }
        // Boolean invariants take the first mask registers.
        let mut kfree: Vec<u8> = BOOL_REGS.to_vec();
        for inv in &mut self.invs {
            if let InvSrc::Node(n) = inv.src {
                if k.nodes[n].dtype == DType::Bool {
                    inv.loc = Loc::Mask(K(kfree.remove(0)));
                }
            }
        }
        let peak = self.assign(VALUE_REGS, &kfree)?;
        // The most used float invariants in the registers left.
        let mut order: Vec<usize> = (0..self.invs.len())
            .filter(|&i| !matches!(self.invs[i].loc, Loc::Mask(_)) && self.invs[i].uses > 0)
            .collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.invs[i].uses));
        let pinned = order.len().min((VALUE_REGS as usize).saturating_sub(peak));
        let first_pinned = VALUE_REGS - pinned as u8;
        for (j, &i) in order[..pinned].iter().enumerate() {
            self.invs[i].loc = Loc::Reg(Zmm(first_pinned + j as u8));
        }
        self.assign(first_pinned, &kfree)?;
        Some(())
    }

    /// Linear allocation of the body over `zmm0..zmm{regs}` and the masks
    /// `kfree`: the peak of vector registers in use, or `None` if it runs out.
    fn assign(&mut self, regs: u8, kfree: &[u8]) -> Option<usize> {
        let k = self.k;
        let last = self.last_uses();
        let mut zfree: Vec<u8> = (0..regs).rev().collect();
        let mut kfree: Vec<u8> = kfree.iter().rev().copied().collect();
        let mut peak = 0;
        for (p, &ni) in self.body.iter().enumerate() {
            let mut args: Vec<usize> = node_args(&k.nodes[ni].node).to_vec();
            args.sort_unstable();
            args.dedup();
            for a in args {
                if last[a] == p {
                    match self.loc[a] {
                        Some(Loc::Reg(z)) => zfree.push(z.0),
                        Some(Loc::Mask(m)) => kfree.push(m.0),
                        _ => {}
                    }
                }
            }
            self.loc[ni] = Some(if k.nodes[ni].dtype == DType::Bool {
                Loc::Mask(K(kfree.pop()?))
            } else {
                Loc::Reg(Zmm(zfree.pop()?))
            });
            peak = peak.max(regs as usize - zfree.len());
            if last[ni] == p {
                // Read only by the outputs stored right after it.
                match self.loc[ni] {
                    Some(Loc::Reg(z)) => zfree.push(z.0),
                    Some(Loc::Mask(m)) => kfree.push(m.0),
                    _ => {}
                }
            }
        }
        Some(peak)
    }

    /// Where node `n`'s value is.
    fn at(&self, n: usize) -> Option<Loc> {
        match self.inv_of[n] {
            Some(i) => Some(self.invs[i].loc),
            None => self.loc[n],
        }
    }

    /// Body position after which output `o` is stored (`None`: before the body).
    fn store_position(&self, o: usize) -> Option<usize> {
        let n = self.k.outputs[o].node;
        self.body.iter().position(|&b| b == n)
    }

    fn reads_first(&self) -> Vec<Vec<bool>> {
        let k = self.k;
        (0..k.outputs.len())
            .map(|o| {
                let stored = self.store_position(o);
                (0..k.inputs.len())
                    .map(|i| {
                        self.body.iter().enumerate().all(|(p, &n)| {
                            let loads_i = matches!(&k.nodes[n].node, Node::Load { input, .. } if *input == i);
                            !loads_i || stored.is_some_and(|s| p <= s)
                        })
                    })
                    .collect()
            })
            .collect()
    }

    fn emit(&self) -> Option<Vec<u8>> {
        let mut em = Emit { p: self, a: Asm::new(), rax: None };
        em.prologue()?;
        let (top, end) = (em.a.label(), em.a.label());
        em.a.test64(RCX);
        em.a.jcc(Cond::LessOrEqual, end);
        em.a.bind(top);
        em.rax = None;
        let lanes = self.e.lanes() as usize;
        for j in 0..self.cols.div_ceil(lanes) {
            let tail = (j + 1) * lanes > self.cols;
            em.vector(j as i32 * 64, tail)?;
        }
        for s in &self.streams {
            if s.row != 0 {
                let step = fits(s.row * self.e.bytes() as i64)?;
                match s.reg {
                    Some(r) => em.a.add_imm(r, step),
                    None => em.a.add_mem_imm(Mem { base: RSP, disp: s.slot }, step),
                }
            }
        }
        em.a.sub_imm(RCX, 1);
        em.a.jcc(Cond::NotZero, top);
        em.a.bind(end);
        em.a.load64(RSP, Mem { base: RSP, disp: self.s_saved });
        for &r in SAVED.iter().rev() {
            em.a.pop(r);
        }
        em.a.vzeroupper();
        em.a.ret();
        em.a.finish()
    }
}

/// Emission state: the plan, the code so far, and which stream's pointer
/// rax holds.
struct Emit<'p, 'k> {
    p: &'p Plan<'k>,
    a: Asm,
    rax: Option<usize>,
}

impl Emit<'_, '_> {
    fn slot(&self, disp: i32) -> Mem {
        Mem { base: RSP, disp }
    }

    /// `rax = table[buffer]`.
    fn buffer_pointer(&mut self, buffer: usize) -> Option<()> {
        self.a.load64(RAX, self.slot(self.p.s_table));
        self.a.load64(RAX, Mem { base: RAX, disp: fits(buffer as i64 * 8)? });
        self.rax = None;
        Some(())
    }

    fn prologue(&mut self) -> Option<()> {
        let p = self.p;
        let e = p.e;
        for &r in &SAVED {
            self.a.push(r);
        }
        self.a.mov64(RAX, RSP);
        self.a.and_imm(RSP, -64);
        self.a.sub_imm(RSP, p.frame);
        self.a.store64(self.slot(p.s_saved), RAX);
        self.a.store64(self.slot(p.s_table), RDI);
        self.a.store64(self.slot(p.s_lo), RSI);
        self.a.mov64(RCX, RDX);
        self.a.sub64(RCX, RSI);
        let lanes = e.lanes() as usize;
        let rem = p.cols % lanes;
        if rem != 0 {
            self.a.mov_eax_imm((1u32 << rem) - 1);
            self.a.kmov_from_eax(TAIL);
        }
        // Invariants, constants first (operations read them), then the
        // nodes in order, each into its slot (booleans into their mask).
        let consts = p.invs.iter().filter(|i| matches!(i.src, InvSrc::Bits(_)));
        for inv in consts.chain(p.invs.iter().filter(|i| matches!(i.src, InvSrc::Node(_)))) {
            match inv.src {
                InvSrc::Bits(b) => self.materialize(SEQ, b),
                InvSrc::Node(n) => match &p.k.nodes[n].node {
                    Node::Load { input, at } => {
                        let off = fits(at.offset * p.k.nodes[n].dtype.size_bytes() as i64)?;
                        self.buffer_pointer(*input)?;
                        if let Loc::Mask(m) = inv.loc {
                            // Any byte but 0 is true: all ones.
                            self.a.load_byte_eax(Mem { base: RAX, disp: off });
                            self.a.neg_eax();
                            self.a.sbb_eax_eax();
                            self.a.kmov_from_eax(m);
                            continue;
                        }
                        self.a.vbroadcast(e, SEQ, Mem { base: RAX, disp: off });
                    }
                    Node::Op { op, args } => {
                        let dst = match inv.loc {
                            Loc::Mask(m) => Loc::Mask(m),
                            _ => Loc::Reg(SEQ),
                        };
                        // Operands from their slots (pinned ones are loaded below).
                        let from = |a: usize| match p.inv_of[a].map(|i| &p.invs[i]) {
                            Some(Inv { loc: Loc::Mask(m), .. }) => Loc::Mask(*m),
                            Some(i) => Loc::Slot(i.slot),
                            None => Loc::Slot(0),
                        };
                        let locs: Vec<Loc> = args.iter().map(|&a| from(a)).collect();
                        let sign = p.sign.map(|s| Loc::Slot(p.invs[s].slot));
                        let one = p.one.map(|s| Loc::Slot(p.invs[s].slot));
                        self.op(*op, n, dst, &locs, sign, one)?;
                        if matches!(dst, Loc::Mask(_)) {
                            continue;
                        }
                    }
                    _ => return None,
                },
            }
            self.a.vstore(e, self.slot(inv.slot), SEQ, Masking::None);
        }
        for inv in &p.invs {
            if let Loc::Reg(z) = inv.loc {
                self.a.vload(e, z, self.slot(inv.slot), Masking::None);
            }
        }
        // Column reductions start at their identity over the whole output.
        for (o, out) in p.k.outputs.iter().enumerate() {
            let OutputKind::Reduce { op, .. } = &out.kind else { continue };
            self.materialize(SEQ, bits(out.aval.dtype, op.identity(out.aval.dtype).as_f64()));
            self.buffer_pointer(p.k.inputs.len() + o)?;
            for j in 0..p.cols.div_ceil(lanes) {
                let mask = if (j + 1) * lanes > p.cols { Masking::Merge(TAIL) } else { Masking::None };
                self.a.vstore(e, Mem { base: RAX, disp: j as i32 * 64 }, SEQ, mask);
            }
        }
        // Row pointers at row `lo`, each into its word; then the registers.
        for s in &p.streams {
            self.buffer_pointer(s.buffer)?;
            if s.row != 0 {
                self.a.imul_mem_imm(R11, self.slot(p.s_lo), fits(s.row * e.bytes() as i64)?);
                self.a.add64(RAX, R11);
            }
            if s.offset != 0 {
                self.a.add_imm(RAX, fits(s.offset * e.bytes() as i64)?);
            }
            self.a.store64(self.slot(s.slot), RAX);
        }
        for s in &p.streams {
            if let Some(r) = s.reg {
                self.a.load64(r, self.slot(s.slot));
            }
        }
        Some(())
    }

    /// `dst = bits` in every lane.
    fn materialize(&mut self, dst: Zmm, b: u64) {
        if self.p.e == Elem::F64 {
            self.a.mov_rax_imm64(b);
        } else {
            self.a.mov_eax_imm(b as u32);
        }
        self.a.vbroadcast_rax(self.p.e, dst);
        self.rax = None;
    }

    /// The base register of stream `s` (its own, or rax loaded from its word).
    fn base(&mut self, s: usize) -> Gpr {
        let st = &self.p.streams[s];
        if let Some(r) = st.reg {
            return r;
        }
        if self.rax != Some(s) {
            self.a.load64(RAX, Mem { base: RSP, disp: st.slot });
            self.rax = Some(s);
        }
        RAX
    }

    /// A register holding `l` (brought from the stack into `scratch` if needed).
    fn reg(&mut self, l: Loc, scratch: Zmm) -> Option<Zmm> {
        match l {
            Loc::Reg(z) => Some(z),
            Loc::Slot(s) => {
                self.a.vload(self.p.e, scratch, self.slot(s), Masking::None);
                Some(scratch)
            }
            Loc::Mask(_) => None,
        }
    }

    fn rm(&self, l: Loc) -> Option<Rm> {
        match l {
            Loc::Reg(z) => Some(Rm::Reg(z)),
            Loc::Slot(s) => Some(Rm::Mem(self.slot(s))),
            Loc::Mask(_) => None,
        }
    }

    fn mask(l: Loc) -> Option<K> {
        match l {
            Loc::Mask(m) => Some(m),
            _ => None,
        }
    }

    /// Node `n` (operation `op`) into `dst` from operands at `args`.
    fn op(&mut self, op: E, n: usize, dst: Loc, args: &[Loc], sign: Option<Loc>, one: Option<Loc>) -> Option<()> {
        let e = self.p.e;
        let [s0, s1] = SCRATCH;
        let x = *args.first()?;
        let y = args.get(1).copied();
        if let Loc::Mask(kd) = dst {
            let c = match op {
                E::Eq => Cmp::EqOrdered,
                E::Ne => Cmp::NeUnordered,
                E::Lt => Cmp::LtOrdered,
                E::Le => Cmp::LeOrdered,
                E::Gt => Cmp::GtOrdered,
                E::Ge => Cmp::GeOrdered,
                _ => return None,
            };
            let a = self.reg(x, s0)?;
            let b = self.rm(y?)?;
            self.a.vcmp(e, kd, a, b, c);
            return Some(());
        }
        let Loc::Reg(d) = dst else { return None };
        match op {
            E::Add | E::Mul | E::Sub | E::Div => {
                // In the operands' order even where the op commutes: of two NaNs,
                // x86 returns the first, as the Cranelift code does.
                let a = self.reg(x, s0)?;
                let b = self.rm(y?)?;
                let v = match op {
                    E::Add => VOp::Add,
                    E::Mul => VOp::Mul,
                    E::Sub => VOp::Sub,
                    _ => VOp::Div,
                };
                self.a.vop(v, e, d, a, b, Masking::None);
            }
            E::Neg => {
                let a = self.reg(x, s0)?;
                let b = self.rm(sign?)?;
                self.a.vop(VOp::Xor, e, d, a, b, Masking::None);
            }
            E::Abs => {
                let m = self.reg(sign?, s0)?;
                let b = self.rm(x)?;
                self.a.vop(VOp::AndNot, e, d, m, b, Masking::None);
            }
            E::Sqrt => {
                let b = self.rm(x)?;
                self.a.vsqrt(e, d, b);
            }
            E::Rsqrt => {
                let b = self.rm(x)?;
                self.a.vsqrt(e, SEQ, b);
                let o = self.reg(one?, s0)?;
                self.a.vop(VOp::Div, e, d, o, Rm::Reg(SEQ), Masking::None);
            }
            E::StopGradient | E::Convert { .. } => {
                let a = self.reg(x, s0)?;
                if a != d {
                    self.a.vmov(e, d, a);
                }
            }
            E::Max | E::Min => {
                let max = op == E::Max;
                let args = node_args(&self.p.k.nodes[n].node);
                let bound = |a: usize| matches!(&self.p.k.nodes[a].node, Node::Const(c) if { let v = c.as_f64(); v != 0.0 && !v.is_nan() });
                let vop = if max { VOp::Max } else { VOp::Min };
                if bound(args[1]) || bound(args[0]) {
                    // Against a bound neither zero nor NaN, x86's max/min with the
                    // bound first is IEEE's: a NaN passes, equal values are one number.
                    let (v, c) = if bound(args[1]) { (x, y?) } else { (y?, x) };
                    let c = self.reg(c, s0)?;
                    let v = self.rm(v)?;
                    self.a.vop(vop, e, d, c, v, Masking::None);
                } else {
                    // x86 gives the second operand for NaNs and for equal values:
                    // fix equal values (±0: and/or of the bits) and NaNs (x + y).
                    let a = self.reg(x, s0)?;
                    let b = self.reg(y?, s1)?;
                    self.a.vop(vop, e, SEQ, b, Rm::Reg(a), Masking::None);
                    self.a.vcmp(e, KSCRATCH, a, Rm::Reg(b), Cmp::EqOrdered);
                    let zeros = if max { VOp::And } else { VOp::Or };
                    self.a.vop(zeros, e, SEQ, a, Rm::Reg(b), Masking::Merge(KSCRATCH));
                    self.a.vcmp(e, KSCRATCH, a, Rm::Reg(b), Cmp::Unordered);
                    self.a.vop(VOp::Add, e, SEQ, a, Rm::Reg(b), Masking::Merge(KSCRATCH));
                    if d != SEQ {
                        self.a.vmov(e, d, SEQ);
                    }
                }
            }
            E::Select => {
                let m = Self::mask(x)?;
                let f = self.reg(*args.get(2)?, s0)?;
                let t = self.rm(y?)?;
                self.a.vblend(e, d, m, f, t);
            }
            _ => return None,
        }
        Some(())
    }

    /// One vector of a row: `disp` bytes from each row pointer; `tail`: the
    /// row's last, partial vector.
    fn vector(&mut self, disp: i32, tail: bool) -> Option<()> {
        let p = self.p;
        let e = p.e;
        let load_mask = if tail { Masking::Zero(TAIL) } else { Masking::None };
        for o in 0..p.k.outputs.len() {
            if p.store_position(o).is_none() {
                self.output(o, disp, tail)?;
            }
        }
        let sign = p.sign.map(|s| p.invs[s].loc);
        let one = p.one.map(|s| p.invs[s].loc);
        for (pos, &n) in p.body.iter().enumerate() {
            let dst = p.loc[n]?;
            match &p.k.nodes[n].node {
                Node::Load { .. } => {
                    let Loc::Reg(d) = dst else { return None };
                    let base = self.base(p.load_stream[n]?);
                    self.a.vload(e, d, Mem { base, disp }, load_mask);
                }
                Node::Op { op, args } => {
                    let locs: Vec<Loc> = args.iter().map(|&a| p.at(a)).collect::<Option<_>>()?;
                    self.op(*op, n, dst, &locs, sign, one)?;
                }
                _ => return None,
            }
            for o in 0..p.k.outputs.len() {
                if p.store_position(o) == Some(pos) {
                    self.output(o, disp, tail)?;
                }
            }
        }
        Some(())
    }

    /// Stores output `o`'s vector, or adds it into its column reduction.
    fn output(&mut self, o: usize, disp: i32, tail: bool) -> Option<()> {
        let p = self.p;
        let e = p.e;
        let out = &p.k.outputs[o];
        let v = p.at(out.node)?;
        let store_mask = if tail { Masking::Merge(TAIL) } else { Masking::None };
        match &out.kind {
            OutputKind::Store => {
                let r = self.reg(v, SCRATCH[0])?;
                let base = self.base(p.out_stream[o]);
                self.a.vstore(e, Mem { base, disp }, r, store_mask);
            }
            OutputKind::Reduce { op, .. } => {
                let base = self.base(p.out_stream[o]);
                let at = Mem { base, disp };
                let load_mask = if tail { Masking::Zero(TAIL) } else { Masking::None };
                let [s0, s1] = SCRATCH;
                self.a.vload(e, s1, at, load_mask);
                let new = self.reg(v, s0)?;
                let combine = match op {
                    ReduceOp::Sum => E::Add,
                    ReduceOp::Prod => E::Mul,
                    ReduceOp::Max => E::Max,
                    ReduceOp::Min => E::Min,
                };
                match combine {
                    E::Add => self.a.vop(VOp::Add, e, SEQ, s1, Rm::Reg(new), Masking::None),
                    E::Mul => self.a.vop(VOp::Mul, e, SEQ, s1, Rm::Reg(new), Masking::None),
                    _ => self.combine_max_min(combine == E::Max, s1, new),
                }
                let base = self.base(p.out_stream[o]);
                self.a.vstore(e, Mem { base, disp }, SEQ, store_mask);
            }
        }
        Some(())
    }

    /// `SEQ = max(old, new)` (or min) with the interpreter's NaN and ±0 rules.
    fn combine_max_min(&mut self, max: bool, old: Zmm, new: Zmm) {
        let e = self.p.e;
        let vop = if max { VOp::Max } else { VOp::Min };
        self.a.vop(vop, e, SEQ, new, Rm::Reg(old), Masking::None);
        self.a.vcmp(e, KSCRATCH, old, Rm::Reg(new), Cmp::EqOrdered);
        let zeros = if max { VOp::And } else { VOp::Or };
        self.a.vop(zeros, e, SEQ, old, Rm::Reg(new), Masking::Merge(KSCRATCH));
        self.a.vcmp(e, KSCRATCH, old, Rm::Reg(new), Cmp::Unordered);
        self.a.vop(VOp::Add, e, SEQ, old, Rm::Reg(new), Masking::Merge(KSCRATCH));
    }
}
