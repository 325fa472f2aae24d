//! Which kernels the wide generator takes, and where everything lives: the
//! values computed once before the loops, the row pointers, the sequences a
//! row runs (one per row function, computing its argument, then the body),
//! the registers of each sequence's values, and the stack frame.

use super::asm::{Elem, Gpr, Zmm, K, R11, RBP, RBX, RCX, RDI, RDX, RSI};
use crate::codegen::kernel::{invariant_nodes, CHUNK, MAX_ROW_NODES, MIN_ROW};
use crate::codegen::order::args as node_args;
use crate::math::bulk::{self, RowOp};
use arrayjit_ir::prim::Elementwise as E;
use arrayjit_ir::DType;
use arrayjit_lower::{Kernel, Node, OutputKind};
use std::collections::HashMap;

/// The most vectors a row may take (each row is unrolled whole). Rows stay
/// within one of the Cranelift kernel's chunks, so that its sums along a row
/// and its row functions' calls cover the whole row, as here.
const MAX_VECTORS: usize = 32;
const _: () = assert!(MAX_VECTORS * 16 <= CHUNK);
/// The most stack the code takes below its pushes (it touches each page on
/// the way down, so that a thread's guard page cannot be stepped over).
const MAX_FRAME: i32 = 16384;
/// Registers values live in: zmm0 … zmm28 (zmm29–31 are the emitter's).
pub(super) const VALUE_REGS: u8 = 29;
/// Mask registers booleans live in (k1 masks a row's tail, k7 is scratch).
const BOOL_REGS: [u8; 5] = [2, 3, 4, 5, 6];
/// General registers that may hold row pointers (rax is scratch); with calls
/// in the row, only those calls preserve.
const STREAM_REGS: [Gpr; 14] =
    [RBX, RBP, RSI, RDI, RDX, Gpr(8), Gpr(9), Gpr(10), R11, Gpr(12), Gpr(13), Gpr(14), Gpr(15), RCX];
/// The registers the ABI has callees keep: saved and restored by the code.
pub(super) const SAVED_REGS: [Gpr; 6] = [RBX, RBP, Gpr(12), Gpr(13), Gpr(14), Gpr(15)];

/// The slot of a spilled value before its place in the frame is known.
const SPILLED: i32 = -1;

/// Where a value lives while a sequence runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Loc {
    Reg(Zmm),
    /// A whole vector on the stack, at this offset from rsp.
    Slot(i32),
    Mask(K),
}

/// A value computed once before the loops.
#[derive(Clone, Debug)]
pub(super) struct Inv {
    pub src: InvSrc,
    pub slot: i32,
    pub loc: Loc,
    /// Uses in the loops, to pick which stay in registers.
    uses: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum InvSrc {
    /// A constant's bits (one lane).
    Bits(u64),
    /// Node `n` of the kernel (a scalar load or an operation on invariants).
    Node(usize),
}

/// A row pointer: `table[buffer] + (offset + row · i) · size` at row `i`.
#[derive(Clone, Debug)]
pub(super) struct Stream {
    pub buffer: usize,
    pub offset: i64,
    pub row: i64,
    uses: usize,
    pub slot: i32,
    pub reg: Option<Gpr>,
}

/// What a row runs, in order: a sequence per row function (computing its
/// argument into the argument buffer), then the body (storing the outputs).
#[derive(Clone, Debug)]
pub(super) struct Seq {
    /// The row function's node, or `None` for the body.
    pub row_node: Option<usize>,
    /// Nodes in order; row-function nodes among them are read from their buffers.
    pub nodes: Vec<usize>,
    /// Node → its register in this sequence.
    pub loc: Vec<Option<Loc>>,
}

/// The plan of a kernel.
pub(super) struct Plan<'k> {
    pub k: &'k Kernel,
    pub e: Elem,
    /// A rank-1 domain: its range runs in whole vectors and a masked last
    /// one (`cols` is then the lanes).
    pub flat: bool,
    pub cols: usize,
    pub seqs: Vec<Seq>,
    /// Node → invariant index, for invariant nodes.
    pub inv_of: Vec<Option<usize>>,
    pub invs: Vec<Inv>,
    /// The sign-bit constant of `neg` and `abs`, and the 1 of `rsqrt`.
    pub sign: Option<usize>,
    pub one: Option<usize>,
    /// Node → its row function (row-function nodes).
    pub row_op: Vec<Option<RowOp>>,
    /// Node → the offset of its row buffer (row-function nodes).
    pub row_buffer: Vec<Option<i32>>,
    pub arg_buffer: i32,
    /// Node → stream (loads); output → stream.
    pub load_stream: Vec<Option<usize>>,
    pub out_stream: Vec<usize>,
    pub streams: Vec<Stream>,
    /// Per output reducing along the rows, its accumulator, and the one of
    /// the row's last point when the Cranelift kernel adds that point alone.
    pub acc: Vec<Option<Zmm>>,
    pub acc_last: Vec<Option<Zmm>>,
    /// Lanes of the Cranelift kernel's vectors.
    pub narrow_lanes: usize,
    pub frame: i32,
    pub s_saved: i32,
    pub s_table: i32,
    pub s_lo: i32,
    pub s_count: i32,
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
        _ => RowOp::of(op).is_some() && all_f && out == f && args.len() == 1,
    }
}

pub(super) fn bits(d: DType, v: f64) -> u64 {
    if d == DType::F64 {
        v.to_bits()
    } else {
        (v as f32).to_bits() as u64
    }
}

pub(super) fn fits(v: i64) -> Option<i32> {
    i32::try_from(v).ok()
}

/// Whether output `o` reduces along the rows (axis 1, alone or with axis 0).
pub(super) fn along_rows(k: &Kernel, o: usize) -> bool {
    matches!(&k.outputs[o].kind, OutputKind::Reduce { axes, .. } if axes.contains(&1))
}

impl<'k> Plan<'k> {
    /// `lanes`: those of the Cranelift kernel, whose order of sums along a row
    /// the wide one follows.
    pub fn new(k: &'k Kernel, row_functions: bool, lanes: u32) -> Option<Plan<'k>> {
        let f = k.outputs.first()?.aval.dtype;
        let e = match f {
            DType::F32 => Elem::F32,
            DType::F64 => Elem::F64,
            _ => return None,
        };
        let (rows, cols, flat) = match k.domain[..] {
            [rows, cols] => (rows, cols, false),
            [n] => (n, e.lanes() as usize, true),
            _ => return None,
        };
        if rows == 0 || cols == 0 {
            return None;
        }
        let nvec = cols.div_ceil(e.lanes() as usize);
        if nvec > MAX_VECTORS {
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
        // Invariant nodes (computed once, as the Cranelift kernel hoists them),
        // row functions' nodes, and what the rest may be.
        let invariant = invariant_nodes(k);
        let mut row_op = vec![None; k.nodes.len()];
        for (ni, n) in k.nodes.iter().enumerate() {
            if !needed[ni] {
                continue;
            }
            let ok = match &n.node {
                Node::Const(_) => n.dtype == f,
                Node::Load { at, .. } => match at.coeffs[..] {
                    [0, 0] | [0] => n.dtype == f || n.dtype == DType::Bool,
                    // Along the row, or one value per row broadcast along it.
                    [r, 1 | 0] if r >= 0 => n.dtype == f,
                    [1] => n.dtype == f,
                    _ => false,
                },
                Node::Op { op, args } => {
                    let ad: Vec<DType> = args.iter().map(|&a| k.nodes[a].dtype).collect();
                    if args.iter().any(|&a| a >= ni) || !supported(*op, &ad, n.dtype, f) {
                        return None;
                    }
                    if let Some(r) = RowOp::of(*op) {
                        // Through the row function (never inline: this generator
                        // has no exp), where the Cranelift kernel calls it too.
                        let narrow = lanes as usize * f.size_bytes() == 16;
                        if invariant[ni] || !row_functions || flat || cols < MIN_ROW || !narrow {
                            return None;
                        }
                        bulk::row_fn(r, f)?;
                        row_op[ni] = Some(r);
                    }
                    true
                }
                Node::Index(_) | Node::Gather { .. } => false,
            };
            if !ok {
                return None;
            }
        }
        for (o, out) in k.outputs.iter().enumerate() {
            let ok = match &out.kind {
                OutputKind::Store => true,
                OutputKind::Reduce { .. } if flat => false,
                OutputKind::Reduce { axes, .. } => axes[..] == [0] || along_rows(k, o),
            };
            if !ok || out.aval.dtype != f || k.nodes[out.node].dtype != f {
                return None;
            }
            if along_rows(k, o) && lanes as usize * f.size_bytes() != 16 {
                // The Cranelift kernel sums this row in other than 128-bit vectors.
                return None;
            }
        }
        if row_op.iter().flatten().count() > MAX_ROW_NODES {
            return None;
        }

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
        let (mut sign, mut one) = (None, None);
        for (ni, n) in k.nodes.iter().enumerate() {
            match n.node {
                Node::Op { op: E::Neg | E::Abs, .. } if needed[ni] => sign = Some(constant(&mut invs, bits(f, -0.0))),
                Node::Op { op: E::Rsqrt, .. } if needed[ni] => one = Some(constant(&mut invs, bits(f, 1.0))),
                _ => {}
            }
        }

        // The sequences: each row function's argument, then the body.
        let closure = |roots: &[usize]| -> Vec<usize> {
            let mut seen = vec![false; k.nodes.len()];
            let mut stack = roots.to_vec();
            while let Some(n) = stack.pop() {
                if invariant[n] || std::mem::replace(&mut seen[n], true) {
                    continue;
                }
                if row_op[n].is_none() {
                    stack.extend_from_slice(node_args(&k.nodes[n].node));
                }
            }
            (0..k.nodes.len()).filter(|&n| seen[n]).collect()
        };
        let mut seqs = Vec::new();
        for (ni, n) in k.nodes.iter().enumerate() {
            if let (Some(_), [arg]) = (row_op[ni], node_args(&n.node)) {
                seqs.push(Seq { row_node: Some(ni), nodes: closure(&[*arg]), loc: Vec::new() });
            }
        }
        let roots: Vec<usize> = k.outputs.iter().map(|o| o.node).collect();
        seqs.push(Seq { row_node: None, nodes: closure(&roots), loc: Vec::new() });
        let calls = seqs.len() > 1;

        // The frame: 64-byte slots for the invariants and row buffers, then 8-byte words.
        let mut at = 0i32;
        for inv in &mut invs {
            inv.slot = at;
            inv.loc = Loc::Slot(at);
            at += 64;
        }
        let buffer = nvec as i32 * 64;
        let mut row_buffer = vec![None; k.nodes.len()];
        let arg_buffer = at;
        if calls {
            at += buffer;
            for s in &seqs {
                if let Some(r) = s.row_node {
                    row_buffer[r] = Some(at);
                    at += buffer;
                }
            }
        }
        let (s_saved, s_table, s_lo, s_count) = (at, at + 8, at + 16, at + 24);
        at += 32;

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
        for s in &seqs {
            for &ni in &s.nodes {
                if let Node::Load { input, at: a } = &k.nodes[ni].node {
                    // A rank-1 domain steps one element at a time.
                    let row = if flat { 1 } else { a.coeffs[0] };
                    load_stream[ni] = Some(stream(*input, a.offset, row)?);
                }
            }
        }
        let mut out_stream = Vec::new();
        for (o, out) in k.outputs.iter().enumerate() {
            let row = match &out.kind {
                OutputKind::Store if flat => 1,
                OutputKind::Store => cols as i64,
                OutputKind::Reduce { axes, .. } if axes.contains(&0) => 0,
                OutputKind::Reduce { .. } => 1,
            };
            out_stream.push(stream(k.inputs.len() + o, 0, row)?);
        }
        for s in &mut streams {
            s.slot = at;
            at += 8;
        }
        // A rank-1 kernel's last vector builds its mask in ecx.
        let regs: &[Gpr] = if calls {
            &SAVED_REGS
        } else if flat {
            &STREAM_REGS[..STREAM_REGS.len() - 1]
        } else {
            &STREAM_REGS
        };
        let mut by_use: Vec<usize> = (0..streams.len()).collect();
        by_use.sort_by_key(|&s| std::cmp::Reverse(streams[s].uses));
        for (&s, &r) in by_use.iter().zip(regs.iter()) {
            streams[s].reg = Some(r);
        }
        let frame = (at + 63) / 64 * 64;
        if frame > MAX_FRAME {
            return None;
        }

        let mut plan = Plan {
            k,
            e,
            flat,
            cols,
            seqs,
            inv_of,
            invs,
            sign,
            one,
            row_op,
            row_buffer,
            arg_buffer,
            load_stream,
            out_stream,
            streams,
            acc: vec![None; k.outputs.len()],
            acc_last: vec![None; k.outputs.len()],
            narrow_lanes: lanes as usize,
            frame,
            s_saved,
            s_table,
            s_lo,
            s_count,
        };
        plan.allocate()?;
        Some(plan)
    }

    /// Registers for each sequence's values (spilling where they run out),
    /// for the accumulators of reductions along the rows, and for as many
    /// invariants as fit; `None` when the masks run out or the frame grows
    /// past its limit.
    fn allocate(&mut self) -> Option<()> {
        let k = self.k;
        if self.invs.iter().filter(|i| matches!(i.src, InvSrc::Node(n) if k.nodes[n].dtype == DType::Bool)).count()
            > BOOL_REGS.len()
        {
            return None;
        }
        // Uses of each invariant in the loops.
        for s in 0..self.seqs.len() {
            for &ni in &self.seqs[s].nodes {
                let is_row = self.row_op[ni].is_some() && self.seqs[s].row_node != Some(ni);
                if is_row {
                    continue;
                }
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
                if let Some(i) = own {
                    self.invs[i].uses += 1;
                }
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
        // Accumulators at the top of the value registers.
        let mut top = VALUE_REGS;
        for o in 0..k.outputs.len() {
            if along_rows(k, o) {
                top = top.checked_sub(1)?;
                self.acc[o] = Some(Zmm(top));
                if self.cols % self.narrow_lanes == 1 {
                    top = top.checked_sub(1)?;
                    self.acc_last[o] = Some(Zmm(top));
                }
            }
        }
        let mut peak = 0;
        for s in 0..self.seqs.len() {
            peak = peak.max(self.assign(s, top, &kfree)?);
        }
        // The most used float invariants in the registers left.
        let mut order: Vec<usize> = (0..self.invs.len())
            .filter(|&i| !matches!(self.invs[i].loc, Loc::Mask(_)) && self.invs[i].uses > 0)
            .collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.invs[i].uses));
        let pinned = order.len().min((top as usize).saturating_sub(peak));
        let first_pinned = top - pinned as u8;
        for (j, &i) in order[..pinned].iter().enumerate() {
            self.invs[i].loc = Loc::Reg(Zmm(first_pinned + j as u8));
        }
        for s in 0..self.seqs.len() {
            self.assign(s, first_pinned, &kfree)?;
        }
        // Slots for the spilled values, below the frame so far.
        for seq in &mut self.seqs {
            for l in seq.loc.iter_mut().flatten() {
                if *l == Loc::Slot(SPILLED) {
                    *l = Loc::Slot(self.frame);
                    self.frame += 64;
                }
            }
        }
        (self.frame <= MAX_FRAME).then_some(())
    }

    /// Whether node `n` is read from its row buffer in sequence `s`.
    pub fn reads_buffer(&self, s: usize, n: usize) -> bool {
        self.row_op[n].is_some() && self.seqs[s].row_node != Some(n)
    }

    /// Linear allocation of sequence `s` over `zmm0..zmm{regs}` and the masks
    /// `kfree`: the peak of vector registers in use, or `None` if the masks
    /// run out. Where the registers run out, the value whose last use is
    /// furthest away lives on the stack for its whole life (`SPILLED`, given
    /// its slot once the allocation is final), and the allocation starts over.
    fn assign(&mut self, s: usize, regs: u8, kfree: &[u8]) -> Option<usize> {
        let mut spilled = vec![false; self.k.nodes.len()];
        loop {
            match self.assign_with(s, regs, kfree, &spilled)? {
                Ok(peak) => return Some(peak),
                Err(victim) => spilled[victim] = true,
            }
        }
    }

    /// One try of [`Plan::assign`] with the values `spilled` on the stack:
    /// the peak, or the value to spill next.
    fn assign_with(&mut self, s: usize, regs: u8, kfree: &[u8], spilled: &[bool]) -> Option<Result<usize, usize>> {
        let k = self.k;
        let nodes = self.seqs[s].nodes.clone();
        let leaf = |n: usize| self.row_op[n].is_some();
        // Body position of each node's last use.
        let mut last = vec![0usize; k.nodes.len()];
        for (p, &ni) in nodes.iter().enumerate() {
            last[ni] = last[ni].max(p);
            if !leaf(ni) {
                for &a in node_args(&k.nodes[ni].node) {
                    last[a] = last[a].max(p);
                }
            }
        }
        let mut loc = vec![None; k.nodes.len()];
        let mut zfree: Vec<u8> = (0..regs).rev().collect();
        let mut kfree: Vec<u8> = kfree.iter().rev().copied().collect();
        let mut peak = 0;
        // Values in registers now.
        let mut live: Vec<usize> = Vec::new();
        let free = |l: Option<Loc>, zfree: &mut Vec<u8>, kfree: &mut Vec<u8>| match l {
            Some(Loc::Reg(z)) => zfree.push(z.0),
            Some(Loc::Mask(m)) => kfree.push(m.0),
            _ => {}
        };
        for (p, &ni) in nodes.iter().enumerate() {
            if !leaf(ni) {
                let mut args: Vec<usize> = node_args(&k.nodes[ni].node).to_vec();
                args.sort_unstable();
                args.dedup();
                for a in args {
                    if last[a] == p && self.inv_of[a].is_none() {
                        free(loc[a], &mut zfree, &mut kfree);
                        live.retain(|&v| v != a);
                    }
                }
            }
            loc[ni] = Some(if k.nodes[ni].dtype == DType::Bool {
                Loc::Mask(K(kfree.pop()?))
            } else if spilled[ni] {
                Loc::Slot(SPILLED)
            } else if let Some(z) = zfree.pop() {
                live.push(ni);
                Loc::Reg(Zmm(z))
            } else {
                // Out of registers: spill whichever of this value and those in
                // registers is needed last.
                let victim = live.iter().copied().filter(|&v| last[v] > last[ni]).max_by_key(|&v| last[v]);
                match victim {
                    Some(v) => return Some(Err(v)),
                    None => Loc::Slot(SPILLED),
                }
            });
            peak = peak.max(regs as usize - zfree.len());
            if last[ni] == p {
                // Read only by the outputs stored (or the argument written) right after it.
                free(loc[ni], &mut zfree, &mut kfree);
                live.retain(|&v| v != ni);
            }
        }
        self.seqs[s].loc = loc;
        Some(Ok(peak))
    }

    /// Where node `n`'s value is in sequence `s`.
    pub fn at(&self, s: usize, n: usize) -> Option<Loc> {
        match self.inv_of[n] {
            Some(i) => Some(self.invs[i].loc),
            None => self.seqs[s].loc.get(n).copied().flatten(),
        }
    }

    /// The body's index.
    pub fn body(&self) -> usize {
        self.seqs.len() - 1
    }

    /// Body position after which output `o` is stored (`None`: before the body).
    pub fn store_position(&self, o: usize) -> Option<usize> {
        let n = self.k.outputs[o].node;
        self.seqs[self.body()].nodes.iter().position(|&b| b == n)
    }

    /// Per output, per input: whether every read of the input at a point
    /// comes before the output's write there (the row functions' sequences
    /// run over the whole row before the body).
    pub fn reads_first(&self) -> Vec<Vec<bool>> {
        let k = self.k;
        let body = &self.seqs[self.body()].nodes;
        (0..k.outputs.len())
            .map(|o| {
                let stored = self.store_position(o);
                (0..k.inputs.len())
                    .map(|i| {
                        body.iter().enumerate().all(|(p, &n)| {
                            let loads_i = matches!(&k.nodes[n].node, Node::Load { input, .. } if *input == i);
                            !loads_i || stored.is_some_and(|s| p <= s)
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// How the plan came out, for dumps.
    pub fn describe(&self, bytes: usize) -> String {
        format!(
            "AVX-512 kernel over {:?}: {} row functions, {} body nodes ({} on the stack), {} values computed once ({} in registers), {} row pointers ({} in registers), {} bytes\n",
            self.k.domain,
            self.seqs.len() - 1,
            self.seqs[self.body()].nodes.len(),
            self.seqs.iter().flat_map(|s| s.loc.iter()).filter(|l| matches!(l, Some(Loc::Slot(_)))).count(),
            self.invs.len(),
            self.invs.iter().filter(|i| !matches!(i.loc, Loc::Slot(_))).count(),
            self.streams.len(),
            self.streams.iter().filter(|s| s.reg.is_some()).count(),
            bytes
        )
    }
}
