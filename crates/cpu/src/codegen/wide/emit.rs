//! The machine code of a planned wide kernel: a prologue that computes the
//! invariants and row pointers, then a loop over the call's rows that runs
//! each row function's sequence (its argument into a buffer, then the call),
//! and the body vector by vector, and an epilogue.

use super::asm::{Asm, Cmp, Cond, Elem, Gpr, Masking, Mem, Rm, VOp, Zmm, K, R11, RAX, RDI, RDX, RSI, RSP};
use super::plan::{along_rows, bits, fits, InvSrc, Loc, Plan, SAVED_REGS as SAVED};
use crate::codegen::kernel::clamp_bound;
use crate::codegen::order::args as node_args;
use crate::math::bulk::{self, RowOp};
use arrayjit_ir::prim::Elementwise as E;
use arrayjit_lower::{Node, OutputKind, ReduceOp};

/// A sequence's result before it moves to its register.
const SEQ: Zmm = Zmm(29);
/// Operands brought from the stack into registers.
const SCRATCH: [Zmm; 2] = [Zmm(31), Zmm(30)];
/// Masks the last vector of a row when it is partial.
const TAIL: K = K(1);
/// A sequence's own mask.
const KSCRATCH: K = K(7);

/// The code, and where a row function's inline fallback's address goes.
pub(super) struct Code {
    pub bytes: Vec<u8>,
    /// Offsets of 64-bit absolute addresses of the fallback of each row function.
    pub fallbacks: Vec<(u32, RowOp)>,
}

/// Emission state: the plan, the code so far, and which stream's pointer
/// rax holds.
struct Emit<'p, 'k> {
    p: &'p Plan<'k>,
    a: Asm,
    rax: Option<usize>,
    fallbacks: Vec<(u32, RowOp)>,
}

pub(super) fn emit(p: &Plan) -> Option<Code> {
    let mut em = Emit { p, a: Asm::new(), rax: None, fallbacks: Vec::new() };
    em.prologue()?;
    if p.flat {
        em.flat()?;
    } else {
        em.rows()?;
    }
    em.a.load64(RSP, Mem { base: RSP, disp: p.s_saved });
    for &r in SAVED.iter().rev() {
        em.a.pop(r);
    }
    em.a.vzeroupper();
    em.a.ret();
    let fallbacks = std::mem::take(&mut em.fallbacks);
    Some(Code { bytes: em.a.finish()?, fallbacks })
}

/// Vectors a rank-1 kernel's main loop takes at a time.
const FLAT_UNROLL: usize = 4;

impl Emit<'_, '_> {
    /// The loop over a call's rows.
    fn rows(&mut self) -> Option<()> {
        let p = self.p;
        let em = self;
        let (top, end) = (em.a.label(), em.a.label());
        em.a.load64(RAX, em.slot(p.s_count));
        em.a.test64(RAX);
        em.a.jcc(Cond::LessOrEqual, end);
        em.a.bind(top);
        em.rax = None;
        let lanes = p.e.lanes() as usize;
        let nvec = p.cols.div_ceil(lanes);
        for s in 0..p.seqs.len() {
            if s == p.body() {
                for o in 0..p.k.outputs.len() {
                    for acc in [p.acc[o], p.acc_last[o]].into_iter().flatten() {
                        em.materialize(acc, identity_bits(p, o)?);
                    }
                }
            }
            for j in 0..nvec {
                em.vector(s, j, fits(j as i64 * 64)?, (j + 1) * lanes > p.cols)?;
            }
            if let Some(r) = p.seqs[s].row_node {
                em.row_call(r)?;
            }
        }
        for o in 0..p.k.outputs.len() {
            if p.acc[o].is_some() {
                em.fold(o)?;
            }
        }
        em.advance(1)?;
        em.a.sub_mem_imm(em.slot(p.s_count), 1);
        em.a.jcc(Cond::NotZero, top);
        em.a.bind(end);
        Some(())
    }

    /// Every row pointer `steps` rows (elements, in a rank-1 kernel) on.
    fn advance(&mut self, steps: i64) -> Option<()> {
        for s in &self.p.streams {
            if s.row != 0 {
                let step = fits(s.row * steps * self.p.e.bytes() as i64)?;
                match s.reg {
                    Some(r) => self.a.add_imm(r, step),
                    None => self.a.add_mem_imm(Mem { base: RSP, disp: s.slot }, step),
                }
            }
        }
        Some(())
    }

    /// The loop over a rank-1 call's range: `FLAT_UNROLL` vectors at a time,
    /// then one, then the masked rest.
    fn flat(&mut self) -> Option<()> {
        let p = self.p;
        let lanes = p.e.lanes() as usize;
        let body = p.body();
        let (wide, one, rest, end) = (self.a.label(), self.a.label(), self.a.label(), self.a.label());
        for (top, next, n) in [(wide, one, FLAT_UNROLL), (one, rest, 1)] {
            self.a.bind(top);
            self.rax = None;
            self.a.load64(RAX, self.slot(p.s_count));
            self.a.cmp_imm(RAX, fits((n * lanes) as i64)?);
            self.a.jcc(Cond::Less, next);
            for q in 0..n {
                self.vector(body, 0, fits(q as i64 * 64)?, false)?;
            }
            self.advance((n * lanes) as i64)?;
            self.a.sub_mem_imm(self.slot(p.s_count), fits((n * lanes) as i64)?);
            self.a.jmp(top);
        }
        self.a.bind(rest);
        self.rax = None;
        self.a.load64(RAX, self.slot(p.s_count));
        self.a.test64(RAX);
        self.a.jcc(Cond::LessOrEqual, end);
        self.a.low_bits_eax();
        self.a.kmov_from_eax(TAIL);
        self.vector(body, 0, 0, true)?;
        self.a.bind(end);
        Some(())
    }
}

/// The bits of output `o`'s reduction identity.
fn identity_bits(p: &Plan, o: usize) -> Option<u64> {
    let out = &p.k.outputs[o];
    let OutputKind::Reduce { op, .. } = &out.kind else { return None };
    Some(bits(out.aval.dtype, op.identity(out.aval.dtype).as_f64()))
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

    /// `k = (1 << n) - 1`: the first `n` lanes.
    fn first_lanes(&mut self, k: K, n: usize) {
        self.a.mov_eax_imm(((1u64 << n) - 1) as u32);
        self.a.kmov_from_eax(k);
        self.rax = None;
    }

    /// Points in a row's last, partial vector (0: none, or a rank-1 kernel's, set at run time).
    fn tail_lanes(&self) -> usize {
        if self.p.flat {
            0
        } else {
            self.p.cols % self.p.e.lanes() as usize
        }
    }

    fn prologue(&mut self) -> Option<()> {
        let p = self.p;
        let e = p.e;
        for &r in &SAVED {
            self.a.push(r);
        }
        self.a.mov64(RAX, RSP);
        self.a.and_imm(RSP, -64);
        // A page at a time, each touched, so that none is skipped.
        let mut left = p.frame;
        while left > 0 {
            let step = left.min(4096);
            self.a.sub_imm(RSP, step);
            self.a.store64(self.slot(0), RAX);
            left -= step;
        }
        self.a.store64(self.slot(p.s_saved), RAX);
        self.a.store64(self.slot(p.s_table), RDI);
        self.a.store64(self.slot(p.s_lo), RSI);
        self.a.mov64(RAX, RDX);
        self.a.sub64(RAX, RSI);
        self.a.store64(self.slot(p.s_count), RAX);
        if self.tail_lanes() != 0 {
            self.first_lanes(TAIL, self.tail_lanes());
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
                            // Kept for after calls, which clobber the masks.
                            self.a.store64(self.slot(inv.slot), RAX);
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
                            Some(i) if matches!(i.loc, Loc::Mask(_)) => Some(i.loc),
                            Some(i) => Some(Loc::Slot(i.slot)),
                            None => None,
                        };
                        let locs: Vec<Loc> = args.iter().map(|&a| from(a)).collect::<Option<_>>()?;
                        let sign = p.sign.map(|s| Loc::Slot(p.invs[s].slot));
                        let one = p.one.map(|s| Loc::Slot(p.invs[s].slot));
                        self.op(*op, n, dst, &locs, sign, one)?;
                        if let Loc::Mask(m) = dst {
                            self.a.kmov_to_eax(m);
                            self.a.store64(self.slot(inv.slot), RAX);
                            continue;
                        }
                    }
                    _ => return None,
                },
            }
            self.a.vstore(e, self.slot(inv.slot), SEQ, Masking::None);
        }
        self.load_pinned(false);
        // Reductions over the rows' axis start at their identity, over the whole output.
        let lanes = e.lanes() as usize;
        for (o, out) in p.k.outputs.iter().enumerate() {
            let OutputKind::Reduce { axes, .. } = &out.kind else { continue };
            if !axes.contains(&0) {
                continue;
            }
            let n = out.aval.numel();
            self.materialize(SEQ, identity_bits(p, o)?);
            if n % lanes != 0 {
                self.first_lanes(KSCRATCH, n % lanes);
            }
            self.buffer_pointer(p.k.inputs.len() + o)?;
            for j in 0..n.div_ceil(lanes) {
                let mask = if (j + 1) * lanes > n { Masking::Merge(KSCRATCH) } else { Masking::None };
                self.a.vstore(e, Mem { base: RAX, disp: fits(j as i64 * 64)? }, SEQ, mask);
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

    /// The invariants kept in registers, from their slots (masks too, when
    /// `masks`: after a call).
    fn load_pinned(&mut self, masks: bool) {
        for inv in &self.p.invs {
            match inv.loc {
                Loc::Reg(z) => self.a.vload(self.p.e, z, self.slot(inv.slot), Masking::None),
                Loc::Mask(k) if masks => {
                    self.a.load64(RAX, self.slot(inv.slot));
                    self.a.kmov_from_eax(k);
                    self.rax = None;
                }
                _ => {}
            }
        }
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
                let vop = if max { VOp::Max } else { VOp::Min };
                let node = &self.p.k.nodes[n];
                if let Some((_, _, bound)) = clamp_bound(self.p.k, node) {
                    // Against a bound neither zero nor NaN, x86's max/min with the
                    // bound first is IEEE's: a NaN passes, equal values are one number.
                    let (v, c) = if node_args(&node.node).get(1) == Some(&bound) { (x, y?) } else { (y?, x) };
                    let c = self.reg(c, s0)?;
                    let v = self.rm(v)?;
                    self.a.vop(vop, e, d, c, v, Masking::None);
                } else {
                    let a = self.reg(x, s0)?;
                    let b = self.reg(y?, s1)?;
                    self.max_min(max, a, b);
                    if d != SEQ {
                        self.a.vmov(e, d, SEQ);
                    }
                }
            }
            E::Select => {
                let Loc::Mask(m) = x else { return None };
                let f = self.reg(*args.get(2)?, s0)?;
                let t = self.rm(y?)?;
                self.a.vblend(e, d, m, f, t);
            }
            _ => return None,
        }
        Some(())
    }

    /// `SEQ = max(a, b)` (or min) with the interpreter's rules: x86 gives the
    /// second operand for NaNs and for equal values, so equal values are
    /// fixed up (±0: the and/or of the bits) and NaNs become `a + b`.
    fn max_min(&mut self, max: bool, a: Zmm, b: Zmm) {
        let e = self.p.e;
        let vop = if max { VOp::Max } else { VOp::Min };
        self.a.vop(vop, e, SEQ, b, Rm::Reg(a), Masking::None);
        self.a.vcmp(e, KSCRATCH, a, Rm::Reg(b), Cmp::EqOrdered);
        let zeros = if max { VOp::And } else { VOp::Or };
        self.a.vop(zeros, e, SEQ, a, Rm::Reg(b), Masking::Merge(KSCRATCH));
        self.a.vcmp(e, KSCRATCH, a, Rm::Reg(b), Cmp::Unordered);
        self.a.vop(VOp::Add, e, SEQ, a, Rm::Reg(b), Masking::Merge(KSCRATCH));
    }

    /// Vector `j` of sequence `s`: its nodes, then (the body) the outputs
    /// after their nodes, or (a row function's) its argument into the buffer.
    fn vector(&mut self, s: usize, j: usize, disp: i32, tail: bool) -> Option<()> {
        let p = self.p;
        let e = p.e;
        let load_mask = if tail { Masking::Zero(TAIL) } else { Masking::None };
        let body = s == p.body();
        if body {
            for o in 0..p.k.outputs.len() {
                if p.store_position(o).is_none() {
                    self.output(o, j, disp, tail)?;
                }
            }
        }
        let sign = p.sign.map(|i| p.invs[i].loc);
        let one = p.one.map(|i| p.invs[i].loc);
        let seq = &p.seqs[s];
        for (pos, &n) in seq.nodes.iter().enumerate() {
            let at_dst = p.at(s, n)?;
            // A spilled value is computed in SEQ, then stored to its slot.
            let dst = match at_dst {
                Loc::Slot(_) => Loc::Reg(SEQ),
                l => l,
            };
            if p.reads_buffer(s, n) {
                let Loc::Reg(d) = dst else { return None };
                self.a.vload(e, d, self.slot(p.row_buffer[n]? + disp), load_mask);
            } else {
                match &p.k.nodes[n].node {
                    Node::Load { at, .. } => {
                        let Loc::Reg(d) = dst else { return None };
                        let base = self.base(p.load_stream[n]?);
                        if !p.flat && at.coeffs[1] == 0 {
                            // The row's one value, in every lane.
                            self.a.vbroadcast(e, d, Mem { base, disp: 0 });
                        } else {
                            self.a.vload(e, d, Mem { base, disp }, load_mask);
                        }
                    }
                    Node::Op { op, args } => {
                        let locs: Vec<Loc> = args.iter().map(|&a| p.at(s, a)).collect::<Option<_>>()?;
                        self.op(*op, n, dst, &locs, sign, one)?;
                    }
                    _ => return None,
                }
            }
            if let Loc::Slot(slot) = at_dst {
                self.a.vstore(e, self.slot(slot), SEQ, Masking::None);
            }
            if body {
                for o in 0..p.k.outputs.len() {
                    if p.store_position(o) == Some(pos) {
                        self.output(o, j, disp, tail)?;
                    }
                }
            }
        }
        if let Some(r) = seq.row_node {
            let arg = node_args(&p.k.nodes[r].node)[0];
            let v = self.reg(p.at(s, arg)?, SCRATCH[0])?;
            self.a.vstore(e, self.slot(p.arg_buffer + disp), v, Masking::None);
        }
        Some(())
    }

    /// The row function of node `r` over the argument buffer into `r`'s
    /// buffer; where it declines the row, the inline fallback. Then what the
    /// call clobbered: the tail mask and the invariants in registers.
    fn row_call(&mut self, r: usize) -> Option<()> {
        let p = self.p;
        let op = p.row_op[r]?;
        let f = bulk::row_fn(op, p.k.nodes[r].dtype)?;
        let out = p.row_buffer[r]?;
        let cols = u32::try_from(p.cols).ok()?;
        let done = self.a.label();
        let args = |a: &mut Asm| {
            a.lea64(RDI, Mem { base: RSP, disp: p.arg_buffer });
            a.lea64(RSI, Mem { base: RSP, disp: out });
            a.mov32_imm(RDX, cols);
        };
        args(&mut self.a);
        self.a.mov_rax_imm64(f as usize as u64);
        self.a.call_rax();
        self.a.test_eax();
        self.a.jcc(Cond::NotZero, done);
        args(&mut self.a);
        // The fallback is Cranelift's code, whose SSE instructions would wait
        // on the upper halves of the vector registers.
        self.a.vzeroupper();
        self.a.mov_rax_imm64(0);
        self.fallbacks.push((u32::try_from(self.a.code.len() - 8).ok()?, op));
        self.a.call_rax();
        self.a.bind(done);
        if self.tail_lanes() != 0 {
            self.first_lanes(TAIL, self.tail_lanes());
        }
        self.load_pinned(true);
        self.rax = None;
        Some(())
    }

    /// Stores output `o`'s vector `j`, adds it into its column reduction, or
    /// into its accumulator along the row.
    fn output(&mut self, o: usize, j: usize, disp: i32, tail: bool) -> Option<()> {
        let p = self.p;
        let e = p.e;
        let lanes = e.lanes() as usize;
        let out = &p.k.outputs[o];
        let v = p.at(p.body(), out.node)?;
        let store_mask = if tail { Masking::Merge(TAIL) } else { Masking::None };
        let [s0, s1] = SCRATCH;
        match &out.kind {
            OutputKind::Store => {
                let r = self.reg(v, s0)?;
                let base = self.base(p.out_stream[o]);
                self.a.vstore(e, Mem { base, disp }, r, store_mask);
            }
            OutputKind::Reduce { op, .. } if along_rows(p.k, o) => {
                let acc = p.acc[o]?;
                let vr = self.reg(v, s0)?;
                // As the Cranelift kernel sums a row: 128-bit vectors, one
                // after the other, lanes past the row adding the identity;
                // a last point alone into an accumulator of its own.
                let sub = p.narrow_lanes;
                for q in 0..lanes / sub {
                    let start = j * lanes + q * sub;
                    if start >= p.cols {
                        break;
                    }
                    let live = sub.min(p.cols - start);
                    let mut t = vr;
                    if q > 0 {
                        self.a.valign(e, s1, vr, (q * sub) as u8);
                        t = s1;
                    }
                    if live == 1 && sub > 1 {
                        let last = p.acc_last[o]?;
                        self.combine(*op, last, last, t);
                        continue;
                    }
                    if live < sub {
                        self.materialize(SEQ, identity_bits(p, o)?);
                        self.first_lanes(KSCRATCH, live);
                        self.a.vblend(e, s1, KSCRATCH, SEQ, Rm::Reg(t));
                        t = s1;
                    }
                    self.combine(*op, acc, acc, t);
                }
            }
            OutputKind::Reduce { op, .. } => {
                let base = self.base(p.out_stream[o]);
                let at = Mem { base, disp };
                let load_mask = if tail { Masking::Zero(TAIL) } else { Masking::None };
                self.a.vload(e, s1, at, load_mask);
                let new = self.reg(v, s0)?;
                match op {
                    ReduceOp::Sum => self.a.vop(VOp::Add, e, SEQ, s1, Rm::Reg(new), Masking::None),
                    ReduceOp::Prod => self.a.vop(VOp::Mul, e, SEQ, s1, Rm::Reg(new), Masking::None),
                    ReduceOp::Max => self.max_min(true, s1, new),
                    ReduceOp::Min => self.max_min(false, s1, new),
                }
                let base = self.base(p.out_stream[o]);
                self.a.vstore(e, Mem { base, disp }, SEQ, store_mask);
            }
        }
        Some(())
    }

    /// At a row's end, output `o`'s accumulator into memory as the Cranelift
    /// kernel folds it: its 128-bit lanes in order, then its (untouched)
    /// scalar accumulator, then into the output.
    fn fold(&mut self, o: usize) -> Option<()> {
        let p = self.p;
        let e = p.e;
        let acc = p.acc[o]?;
        let OutputKind::Reduce { op, axes } = &p.k.outputs[o].kind else { return None };
        let op = *op;
        let [s0, s1] = SCRATCH;
        let sub = p.narrow_lanes as u8;
        self.a.valign(e, s1, acc, 1);
        self.combine(op, s0, acc, s1);
        for l in 2..sub {
            self.a.valign(e, s1, acc, l);
            self.combine(op, s0, s0, s1);
        }
        let identity = identity_bits(p, o)?;
        let last = match p.acc_last[o] {
            Some(z) => z,
            None => {
                self.materialize(s1, identity);
                s1
            }
        };
        self.combine(op, s0, s0, last);
        self.materialize(s1, identity);
        self.first_lanes(KSCRATCH, 1);
        let base = self.base(p.out_stream[o]);
        if axes.contains(&0) {
            self.a.vload(e, s1, Mem { base, disp: 0 }, Masking::Zero(KSCRATCH));
        }
        // Else the row's own element, filled with the identity (as the
        // Cranelift kernel fills the call's rows first): identity op total.
        self.combine(op, s1, s1, s0);
        // Max and min used the mask.
        self.first_lanes(KSCRATCH, 1);
        let base = self.base(p.out_stream[o]);
        self.a.vstore(e, Mem { base, disp: 0 }, s1, Masking::Merge(KSCRATCH));
        Some(())
    }

    /// `dst = a op b` for a reduction's `op` (`a` and `b` not `SEQ`).
    fn combine(&mut self, op: ReduceOp, dst: Zmm, a: Zmm, b: Zmm) {
        let e = self.p.e;
        match op {
            ReduceOp::Sum => self.a.vop(VOp::Add, e, dst, a, Rm::Reg(b), Masking::None),
            ReduceOp::Prod => self.a.vop(VOp::Mul, e, dst, a, Rm::Reg(b), Masking::None),
            ReduceOp::Max | ReduceOp::Min => {
                self.max_min(op == ReduceOp::Max, a, b);
                self.a.vmov(e, dst, SEQ);
            }
        }
    }
}
