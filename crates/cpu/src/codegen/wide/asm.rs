//! An x86-64 encoder for the few instructions the wide kernels use: AVX-512
//! vector arithmetic on `zmm` registers (EVEX), opmask moves, and the
//! general-register moves, arithmetic and jumps of a loop. Each method
//! appends one instruction; jumps to labels are patched by [`Asm::finish`].

/// A general-purpose register, by its hardware number (rax = 0 … r15 = 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gpr(pub u8);

pub const RAX: Gpr = Gpr(0);
pub const RCX: Gpr = Gpr(1);
pub const RDX: Gpr = Gpr(2);
pub const RBX: Gpr = Gpr(3);
pub const RSP: Gpr = Gpr(4);
pub const RBP: Gpr = Gpr(5);
pub const RSI: Gpr = Gpr(6);
pub const RDI: Gpr = Gpr(7);
pub const R11: Gpr = Gpr(11);

/// A 512-bit vector register, `zmm0` … `zmm31`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zmm(pub u8);

/// An opmask register, `k1` … `k7` (`k0` means "no mask" in an instruction's
/// mask field, so it is never handed out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct K(pub u8);

/// `[base + disp]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mem {
    pub base: Gpr,
    pub disp: i32,
}

/// The last operand of a vector instruction: a register or a whole vector in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rm {
    Reg(Zmm),
    Mem(Mem),
}

/// Element width of a vector instruction: `ps` (f32, EVEX.W0) or `pd` (f64, W1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    F64,
}

impl Elem {
    pub fn bytes(self) -> i32 {
        match self {
            Elem::F32 => 4,
            Elem::F64 => 8,
        }
    }
    pub fn lanes(self) -> u32 {
        64 / self.bytes() as u32
    }
    fn w(self) -> bool {
        self == Elem::F64
    }
}

/// Masking of a vector instruction's destination: none, merge (lanes off in
/// the mask keep their value) or zero (they become zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Masking {
    None,
    Merge(K),
    Zero(K),
}

/// Vector operations of the form `dst = src1 op src2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VOp {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
    /// Bitwise, on the lanes' bits.
    And,
    AndNot,
    Or,
    Xor,
}

/// Comparison predicates of `vcmpps`/`vcmppd`, quiet (no exception on NaN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Cmp {
    EqOrdered = 0x00,
    Unordered = 0x03,
    NeUnordered = 0x04,
    LtOrdered = 0x11,
    LeOrdered = 0x12,
    GeOrdered = 0x1D,
    GtOrdered = 0x1E,
}

/// A position in the code that jumps may target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

/// Conditions of `jcc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Cond {
    Less = 0xC,
    NotZero = 0x5,
    LessOrEqual = 0xE,
}

#[derive(Default)]
pub struct Asm {
    pub code: Vec<u8>,
    labels: Vec<Option<usize>>,
    /// Positions of 32-bit jump displacements and the labels they reach.
    jumps: Vec<(usize, Label)>,
}

/// ModRM (and SIB and displacement) of `reg` with a memory operand whose
/// 8-bit displacements are scaled by `n` (EVEX's compressed displacement; 1
/// for legacy encodings).
fn modrm_mem(out: &mut Vec<u8>, reg: u8, m: Mem, n: i32) {
    let base = m.base.0 & 7;
    let (md, disp8) = if m.disp == 0 && base != 5 {
        (0u8, None)
    } else if m.disp % n == 0 && (m.disp / n) >= -128 && (m.disp / n) <= 127 {
        (1, Some((m.disp / n) as i8))
    } else {
        (2, None)
    };
    out.push((md << 6) | ((reg & 7) << 3) | base);
    if base == 4 {
        // rsp and r12 as a base need a SIB byte (no index).
        out.push(0x24);
    }
    match (md, disp8) {
        (1, Some(d)) => out.push(d as u8),
        (2, _) => out.extend_from_slice(&m.disp.to_le_bytes()),
        _ => {}
    }
}

impl Asm {
    pub fn new() -> Asm {
        Asm::default()
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.code.len());
    }

    /// The machine code, with every jump patched; `None` if a jump's label
    /// was never bound.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        for &(at, l) in &self.jumps {
            let target = self.labels[l.0]? as i64;
            let rel = i32::try_from(target - (at as i64 + 4)).ok()?;
            self.code[at..at + 4].copy_from_slice(&rel.to_le_bytes());
        }
        Some(self.code)
    }

    // ---- EVEX vector instructions -------------------------------------------------------------

    /// One EVEX-encoded 512-bit instruction: `map` 1 = 0F, 2 = 0F38;
    /// `pp` 0 = none, 1 = 66; `reg` the ModRM.reg register (5 bits), `v` the
    /// second source (5 bits; 0 when unused, encoded as 1111), `rm` the last.
    #[allow(clippy::too_many_arguments)]
    fn evex(&mut self, map: u8, pp: u8, w: bool, op: u8, reg: u8, v: u8, rm: Rm, mask: Masking, tuple: i32) {
        let (rm_reg, mem) = match rm {
            Rm::Reg(z) => (Some(z.0), None),
            Rm::Mem(m) => (None, Some(m)),
        };
        let r = (reg >> 3) & 1;
        let r2 = (reg >> 4) & 1;
        let (x, b) = match (rm_reg, mem) {
            (Some(z), _) => ((z >> 4) & 1, (z >> 3) & 1),
            (None, Some(m)) => (0, (m.base.0 >> 3) & 1),
            _ => (0, 0),
        };
        let p0 = ((r ^ 1) << 7) | ((x ^ 1) << 6) | ((b ^ 1) << 5) | ((r2 ^ 1) << 4) | (map & 3);
        let p1 = ((w as u8) << 7) | ((!v & 0xF) << 3) | 0b100 | (pp & 3);
        let (z, aaa) = match mask {
            Masking::None => (0, 0),
            Masking::Merge(k) => (0, k.0 & 7),
            Masking::Zero(k) => (1, k.0 & 7),
        };
        let v2 = ((v >> 4) & 1) ^ 1;
        let p2 = (z << 7) | (0b10 << 5) | (v2 << 3) | aaa;
        self.code.extend_from_slice(&[0x62, p0, p1, p2, op]);
        match (rm_reg, mem) {
            (Some(zr), _) => self.code.push(0xC0 | ((reg & 7) << 3) | (zr & 7)),
            (None, Some(m)) => modrm_mem(&mut self.code, reg, m, tuple),
            _ => {}
        }
    }

    /// `dst{mask} = a op b`.
    pub fn vop(&mut self, op: VOp, e: Elem, dst: Zmm, a: Zmm, b: Rm, mask: Masking) {
        let (map, pp, w, code) = match op {
            VOp::Add => (1, e.w() as u8, e.w(), 0x58),
            VOp::Mul => (1, e.w() as u8, e.w(), 0x59),
            VOp::Sub => (1, e.w() as u8, e.w(), 0x5C),
            VOp::Min => (1, e.w() as u8, e.w(), 0x5D),
            VOp::Div => (1, e.w() as u8, e.w(), 0x5E),
            VOp::Max => (1, e.w() as u8, e.w(), 0x5F),
            // vpandd/q, vpandnd/q, vpord/q, vpxord/q (AVX-512F).
            VOp::And => (1, 1, e.w(), 0xDB),
            VOp::AndNot => (1, 1, e.w(), 0xDF),
            VOp::Or => (1, 1, e.w(), 0xEB),
            VOp::Xor => (1, 1, e.w(), 0xEF),
        };
        self.evex(map, pp, w, code, dst.0, a.0, b, mask, 64);
    }

    /// `dst = sqrt(a)`.
    pub fn vsqrt(&mut self, e: Elem, dst: Zmm, a: Rm) {
        self.evex(1, e.w() as u8, e.w(), 0x51, dst.0, 0, a, Masking::None, 64);
    }

    /// `k = a cmp b`, lane by lane.
    pub fn vcmp(&mut self, e: Elem, k: K, a: Zmm, b: Rm, c: Cmp) {
        self.evex(1, e.w() as u8, e.w(), 0xC2, k.0, a.0, b, Masking::None, 64);
        self.code.push(c as u8);
    }

    /// `dst = k ? t : f`, lane by lane (`vblendmps`/`vblendmpd`).
    pub fn vblend(&mut self, e: Elem, dst: Zmm, k: K, f: Zmm, t: Rm) {
        self.evex(2, 1, e.w(), 0x65, dst.0, f.0, t, Masking::Merge(k), 64);
    }

    /// `dst = (b:a) >> shift` elements (`valignd`/`valignq` of `a` with
    /// itself: lane `shift` comes to lane 0).
    pub fn valign(&mut self, e: Elem, dst: Zmm, a: Zmm, shift: u8) {
        self.evex(3, 1, e.w(), 0x03, dst.0, a.0, Rm::Reg(a), Masking::None, 64);
        self.code.push(shift);
    }

    /// A vector load (`vmovups`/`vmovupd`), masked for a row's last partial vector.
    pub fn vload(&mut self, e: Elem, dst: Zmm, src: Mem, mask: Masking) {
        self.evex(1, e.w() as u8, e.w(), 0x10, dst.0, 0, Rm::Mem(src), mask, 64);
    }

    /// A vector store; a merge mask stores only the lanes in it.
    pub fn vstore(&mut self, e: Elem, dst: Mem, src: Zmm, mask: Masking) {
        self.evex(1, e.w() as u8, e.w(), 0x11, src.0, 0, Rm::Mem(dst), mask, 64);
    }

    /// A register copy (`vmovaps`/`vmovapd`).
    pub fn vmov(&mut self, e: Elem, dst: Zmm, src: Zmm) {
        self.evex(1, e.w() as u8, e.w(), 0x28, dst.0, 0, Rm::Reg(src), Masking::None, 64);
    }

    /// One element from memory in every lane (`vbroadcastss`/`vbroadcastsd`).
    pub fn vbroadcast(&mut self, e: Elem, dst: Zmm, src: Mem) {
        let op = if e == Elem::F64 { 0x19 } else { 0x18 };
        self.evex(2, 1, e.w(), op, dst.0, 0, Rm::Mem(src), Masking::None, e.bytes());
    }

    /// The low 32 (f32) or 64 (f64) bits of rax in every lane (`vpbroadcastd`/`q`).
    pub fn vbroadcast_rax(&mut self, e: Elem, dst: Zmm) {
        // A general register as the r/m operand: the register form, rax = 0.
        self.evex(2, 1, e.w(), 0x7C, dst.0, 0, Rm::Reg(Zmm(0)), Masking::None, 64);
    }

    // ---- opmask and VEX ---------------------------------------------------------------------

    /// `k = eax`'s low 16 bits (`kmovw`).
    pub fn kmov_from_eax(&mut self, k: K) {
        self.code.extend_from_slice(&[0xC5, 0xF8, 0x92, 0xC0 | ((k.0 & 7) << 3)]);
    }

    /// `eax = k` (`kmovw`).
    pub fn kmov_to_eax(&mut self, k: K) {
        self.code.extend_from_slice(&[0xC5, 0xF8, 0x93, 0xC0 | (k.0 & 7)]);
    }

    pub fn vzeroupper(&mut self) {
        self.code.extend_from_slice(&[0xC5, 0xF8, 0x77]);
    }

    // ---- general registers ------------------------------------------------------------------

    fn rex(&mut self, w: bool, reg: u8, base: u8, force: bool) {
        let rex = 0x40 | ((w as u8) << 3) | (((reg >> 3) & 1) << 2) | ((base >> 3) & 1);
        if rex != 0x40 || force {
            self.code.push(rex);
        }
    }

    /// `op reg64, [mem]` or `op [mem], reg64` by opcode.
    fn rm64(&mut self, op: u8, reg: u8, m: Mem) {
        self.rex(true, reg, m.base.0, false);
        self.code.push(op);
        modrm_mem(&mut self.code, reg, m, 1);
    }

    /// `op r/m64` in register form.
    fn rr64(&mut self, op: u8, reg: u8, rm: Gpr) {
        self.rex(true, reg, rm.0, false);
        self.code.push(op);
        self.code.push(0xC0 | ((reg & 7) << 3) | (rm.0 & 7));
    }

    /// `mov dst, [m]`.
    pub fn load64(&mut self, dst: Gpr, m: Mem) {
        self.rm64(0x8B, dst.0, m);
    }

    /// `mov [m], src`.
    pub fn store64(&mut self, m: Mem, src: Gpr) {
        self.rm64(0x89, src.0, m);
    }

    /// `mov dst, src`.
    pub fn mov64(&mut self, dst: Gpr, src: Gpr) {
        self.rr64(0x8B, dst.0, src);
    }

    /// `add dst, src`.
    pub fn add64(&mut self, dst: Gpr, src: Gpr) {
        self.rr64(0x03, dst.0, src);
    }

    /// `sub dst, src`.
    pub fn sub64(&mut self, dst: Gpr, src: Gpr) {
        self.rr64(0x2B, dst.0, src);
    }

    /// `add dst, imm` (`/0`), `sub` (`/5`) or `and` (`/4`) with a 32-bit immediate.
    fn alu_imm(&mut self, ext: u8, dst: Gpr, imm: i32) {
        self.rex(true, 0, dst.0, false);
        self.code.push(0x81);
        self.code.push(0xC0 | (ext << 3) | (dst.0 & 7));
        self.code.extend_from_slice(&imm.to_le_bytes());
    }

    pub fn add_imm(&mut self, dst: Gpr, imm: i32) {
        self.alu_imm(0, dst, imm);
    }

    pub fn sub_imm(&mut self, dst: Gpr, imm: i32) {
        self.alu_imm(5, dst, imm);
    }

    pub fn and_imm(&mut self, dst: Gpr, imm: i32) {
        self.alu_imm(4, dst, imm);
    }

    pub fn cmp_imm(&mut self, dst: Gpr, imm: i32) {
        self.alu_imm(7, dst, imm);
    }

    /// `eax = (1 << eax) - 1` for `eax` below 32 (ecx is clobbered).
    pub fn low_bits_eax(&mut self) {
        // mov ecx, eax; mov eax, 1; shl eax, cl; sub eax, 1
        self.code.extend_from_slice(&[0x89, 0xC1, 0xB8, 1, 0, 0, 0, 0xD3, 0xE0, 0x83, 0xE8, 0x01]);
    }

    /// `add qword [m], imm`.
    pub fn add_mem_imm(&mut self, m: Mem, imm: i32) {
        self.rex(true, 0, m.base.0, false);
        self.code.push(0x81);
        modrm_mem(&mut self.code, 0, m, 1);
        self.code.extend_from_slice(&imm.to_le_bytes());
    }

    /// `imul dst, [m], imm`.
    pub fn imul_mem_imm(&mut self, dst: Gpr, m: Mem, imm: i32) {
        self.rm64(0x69, dst.0, m);
        self.code.extend_from_slice(&imm.to_le_bytes());
    }

    /// `lea dst, [m]`.
    pub fn lea64(&mut self, dst: Gpr, m: Mem) {
        self.rm64(0x8D, dst.0, m);
    }

    /// `sub qword [m], imm`.
    pub fn sub_mem_imm(&mut self, m: Mem, imm: i32) {
        self.rex(true, 0, m.base.0, false);
        self.code.push(0x81);
        modrm_mem(&mut self.code, 5, m, 1);
        self.code.extend_from_slice(&imm.to_le_bytes());
    }

    /// `mov r32, imm` (the upper half cleared); r below r8.
    pub fn mov32_imm(&mut self, r: Gpr, imm: u32) {
        self.rex(false, 0, r.0, false);
        self.code.push(0xB8 | (r.0 & 7));
        self.code.extend_from_slice(&imm.to_le_bytes());
    }

    /// `call rax`.
    pub fn call_rax(&mut self) {
        self.code.extend_from_slice(&[0xFF, 0xD0]);
    }

    /// `test eax, eax`.
    pub fn test_eax(&mut self) {
        self.code.extend_from_slice(&[0x85, 0xC0]);
    }

    /// `test r, r`.
    pub fn test64(&mut self, r: Gpr) {
        self.rr64(0x85, r.0, r);
    }

    /// `mov eax, imm` (the upper half of rax cleared).
    pub fn mov_eax_imm(&mut self, imm: u32) {
        self.code.push(0xB8);
        self.code.extend_from_slice(&imm.to_le_bytes());
    }

    /// `mov rax, imm64`.
    pub fn mov_rax_imm64(&mut self, imm: u64) {
        self.code.extend_from_slice(&[0x48, 0xB8]);
        self.code.extend_from_slice(&imm.to_le_bytes());
    }

    /// `movzx eax, byte [m]`.
    pub fn load_byte_eax(&mut self, m: Mem) {
        self.rex(false, 0, m.base.0, false);
        self.code.extend_from_slice(&[0x0F, 0xB6]);
        modrm_mem(&mut self.code, 0, m, 1);
    }

    /// `neg eax`.
    pub fn neg_eax(&mut self) {
        self.code.extend_from_slice(&[0xF7, 0xD8]);
    }

    /// `sbb eax, eax`: after `neg eax`, all ones if eax was not zero.
    pub fn sbb_eax_eax(&mut self) {
        self.code.extend_from_slice(&[0x19, 0xC0]);
    }

    pub fn push(&mut self, r: Gpr) {
        self.rex(false, 0, r.0, false);
        self.code.push(0x50 | (r.0 & 7));
    }

    pub fn pop(&mut self, r: Gpr) {
        self.rex(false, 0, r.0, false);
        self.code.push(0x58 | (r.0 & 7));
    }

    pub fn jcc(&mut self, c: Cond, l: Label) {
        self.code.extend_from_slice(&[0x0F, 0x80 | c as u8]);
        self.jumps.push((self.code.len(), l));
        self.code.extend_from_slice(&[0; 4]);
    }

    pub fn jmp(&mut self, l: Label) {
        self.code.push(0xE9);
        self.jumps.push((self.code.len(), l));
        self.code.extend_from_slice(&[0; 4]);
    }

    pub fn ret(&mut self) {
        self.code.push(0xC3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R9: Gpr = Gpr(9);
    const R10: Gpr = Gpr(10);
    const R12: Gpr = Gpr(12);
    const R13: Gpr = Gpr(13);
    const R14: Gpr = Gpr(14);
    const R15: Gpr = Gpr(15);

    fn m(base: Gpr, disp: i32) -> Mem {
        Mem { base, disp }
    }

    /// Each instruction against the bytes the GNU assembler gives it (for the
    /// general-register forms with two encodings, against its disassembly).
    #[test]
    fn instructions_encode_as_the_assembler_does() {
        let (f, d) = (Elem::F32, Elem::F64);
        let z = Zmm;
        type Case<'a> = (Box<dyn Fn(&mut Asm) + 'a>, &'static [u8], &'static str);
        let cases: Vec<Case> = vec![
            (
                Box::new(|a| a.vop(VOp::Add, f, z(1), z(2), Rm::Reg(z(3)), Masking::None)),
                &[0x62, 0xf1, 0x6c, 0x48, 0x58, 0xcb],
                "vaddps zmm1,zmm2,zmm3",
            ),
            (
                Box::new(|a| a.vop(VOp::Add, f, z(17), z(30), Rm::Reg(z(9)), Masking::None)),
                &[0x62, 0xc1, 0x0c, 0x40, 0x58, 0xc9],
                "vaddps zmm17,zmm30,zmm9",
            ),
            (
                Box::new(|a| a.vop(VOp::Sub, d, z(0), z(1), Rm::Mem(m(RSP, 128)), Masking::None)),
                &[0x62, 0xf1, 0xf5, 0x48, 0x5c, 0x44, 0x24, 0x02],
                "vsubpd [rsp+128]",
            ),
            (
                Box::new(|a| a.vop(VOp::Div, f, z(28), z(29), Rm::Mem(m(R13, 0)), Masking::None)),
                &[0x62, 0x41, 0x14, 0x40, 0x5e, 0x65, 0x00],
                "vdivps [r13]",
            ),
            (
                Box::new(|a| a.vop(VOp::Max, f, z(29), z(1), Rm::Reg(z(2)), Masking::Merge(K(7)))),
                &[0x62, 0x61, 0x74, 0x4f, 0x5f, 0xea],
                "vmaxps {k7}",
            ),
            (
                Box::new(|a| a.vop(VOp::And, f, z(1), z(2), Rm::Reg(z(3)), Masking::Merge(K(7)))),
                &[0x62, 0xf1, 0x6d, 0x4f, 0xdb, 0xcb],
                "vpandd {k7}",
            ),
            (
                Box::new(|a| a.vop(VOp::Xor, d, z(1), z(2), Rm::Reg(z(31)), Masking::None)),
                &[0x62, 0x91, 0xed, 0x48, 0xef, 0xcf],
                "vpxorq zmm31",
            ),
            (
                Box::new(|a| a.vop(VOp::AndNot, f, z(4), z(5), Rm::Reg(z(6)), Masking::None)),
                &[0x62, 0xf1, 0x55, 0x48, 0xdf, 0xe6],
                "vpandnd",
            ),
            (
                Box::new(|a| a.vop(VOp::Or, f, z(4), z(5), Rm::Mem(m(R12, 64000)), Masking::None)),
                &[0x62, 0xd1, 0x55, 0x48, 0xeb, 0xa4, 0x24, 0x00, 0xfa, 0x00, 0x00],
                "vpord [r12+64000]",
            ),
            (Box::new(|a| a.vsqrt(f, z(3), Rm::Reg(z(20)))), &[0x62, 0xb1, 0x7c, 0x48, 0x51, 0xdc], "vsqrtps zmm20"),
            (
                Box::new(|a| a.vsqrt(d, z(3), Rm::Mem(m(RBX, 64)))),
                &[0x62, 0xf1, 0xfd, 0x48, 0x51, 0x5b, 0x01],
                "vsqrtpd [rbx+64]",
            ),
            (
                Box::new(|a| a.vcmp(f, K(3), z(1), Rm::Reg(z(2)), Cmp::LtOrdered)),
                &[0x62, 0xf1, 0x74, 0x48, 0xc2, 0xda, 0x11],
                "vcmplt_oqps",
            ),
            (
                Box::new(|a| a.vcmp(d, K(7), z(16), Rm::Mem(m(RSP, 64)), Cmp::Unordered)),
                &[0x62, 0xf1, 0xfd, 0x40, 0xc2, 0x7c, 0x24, 0x01, 0x03],
                "vcmpunordpd",
            ),
            (
                Box::new(|a| a.vblend(f, z(1), K(2), z(3), Rm::Reg(z(4)))),
                &[0x62, 0xf2, 0x65, 0x4a, 0x65, 0xcc],
                "vblendmps",
            ),
            (
                Box::new(|a| a.vblend(d, z(1), K(2), z(3), Rm::Mem(m(RBP, 0)))),
                &[0x62, 0xf2, 0xe5, 0x4a, 0x65, 0x4d, 0x00],
                "vblendmpd [rbp]",
            ),
            (
                Box::new(|a| a.vload(f, z(1), m(R9, 448), Masking::Zero(K(1)))),
                &[0x62, 0xd1, 0x7c, 0xc9, 0x10, 0x49, 0x07],
                "vmovups load {z}",
            ),
            (
                Box::new(|a| a.vstore(f, m(R15, 448), z(30), Masking::Merge(K(1)))),
                &[0x62, 0x41, 0x7c, 0x49, 0x11, 0x77, 0x07],
                "vmovups store {k1}",
            ),
            (
                Box::new(|a| a.vload(d, z(1), m(RAX, 0), Masking::None)),
                &[0x62, 0xf1, 0xfd, 0x48, 0x10, 0x08],
                "vmovupd load",
            ),
            (Box::new(|a| a.vmov(f, z(31), z(2))), &[0x62, 0x61, 0x7c, 0x48, 0x28, 0xfa], "vmovaps"),
            (
                Box::new(|a| a.vbroadcast(f, z(29), m(RAX, 12))),
                &[0x62, 0x62, 0x7d, 0x48, 0x18, 0x68, 0x03],
                "vbroadcastss",
            ),
            (
                Box::new(|a| a.vbroadcast(d, z(29), m(R11, 16))),
                &[0x62, 0x42, 0xfd, 0x48, 0x19, 0x6b, 0x02],
                "vbroadcastsd",
            ),
            (Box::new(|a| a.vbroadcast_rax(f, z(29))), &[0x62, 0x62, 0x7d, 0x48, 0x7c, 0xe8], "vpbroadcastd eax"),
            (Box::new(|a| a.vbroadcast_rax(d, z(3))), &[0x62, 0xf2, 0xfd, 0x48, 0x7c, 0xd8], "vpbroadcastq rax"),
            (Box::new(|a| a.kmov_from_eax(K(1))), &[0xc5, 0xf8, 0x92, 0xc8], "kmovw"),
            (Box::new(|a| a.vzeroupper()), &[0xc5, 0xf8, 0x77], "vzeroupper"),
            (Box::new(|a| a.kmov_to_eax(K(3))), &[0xc5, 0xf8, 0x93, 0xc3], "kmovw eax,k3"),
            (Box::new(|a| a.store64(m(RSP, 0), RAX)), &[0x48, 0x89, 0x04, 0x24], "mov [rsp],rax"),
            (Box::new(|a| a.load64(RAX, m(RSP, 8))), &[0x48, 0x8b, 0x44, 0x24, 0x08], "mov rax,[rsp+8]"),
            (
                Box::new(|a| a.store64(m(RSP, 200), R11)),
                &[0x4c, 0x89, 0x9c, 0x24, 0xc8, 0x00, 0x00, 0x00],
                "mov [rsp+200],r11",
            ),
            (Box::new(|a| a.add_imm(R14, 456)), &[0x49, 0x81, 0xc6, 0xc8, 0x01, 0x00, 0x00], "add r14,456"),
            (Box::new(|a| a.sub_imm(RSP, 192)), &[0x48, 0x81, 0xec, 0xc0, 0x00, 0x00, 0x00], "sub rsp,192"),
            (
                Box::new(|a| a.add_mem_imm(m(RSP, 24), 456)),
                &[0x48, 0x81, 0x44, 0x24, 0x18, 0xc8, 0x01, 0x00, 0x00],
                "add [rsp+24],456",
            ),
            (
                Box::new(|a| a.imul_mem_imm(R11, m(RSP, 16), 456)),
                &[0x4c, 0x69, 0x5c, 0x24, 0x10, 0xc8, 0x01, 0x00, 0x00],
                "imul",
            ),
            (Box::new(|a| a.test64(RCX)), &[0x48, 0x85, 0xc9], "test rcx,rcx"),
            (Box::new(|a| a.mov_eax_imm(3)), &[0xb8, 0x03, 0x00, 0x00, 0x00], "mov eax,3"),
            (Box::new(|a| a.mov_rax_imm64(0x3ff0000000000000)), &[0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f], "movabs"),
            (Box::new(|a| a.load_byte_eax(m(R11, 5))), &[0x41, 0x0f, 0xb6, 0x43, 0x05], "movzx"),
            (Box::new(|a| a.neg_eax()), &[0xf7, 0xd8], "neg eax"),
            (Box::new(|a| a.sbb_eax_eax()), &[0x19, 0xc0], "sbb eax,eax"),
            (Box::new(|a| a.cmp_imm(RAX, 1000)), &[0x48, 0x81, 0xf8, 0xe8, 0x03, 0x00, 0x00], "cmp rax,1000"),
            (Box::new(|a| a.low_bits_eax()), &[0x89, 0xc1, 0xb8, 1, 0, 0, 0, 0xd3, 0xe0, 0x83, 0xe8, 0x01], "low bits"),
            (Box::new(|a| a.valign(f, z(1), z(2), 4)), &[0x62, 0xf3, 0x6d, 0x48, 0x03, 0xca, 0x04], "valignd"),
            (Box::new(|a| a.valign(d, z(29), z(2), 2)), &[0x62, 0x63, 0xed, 0x48, 0x03, 0xea, 0x02], "valignq"),
            (Box::new(|a| a.valign(f, z(20), z(17), 12)), &[0x62, 0xa3, 0x75, 0x40, 0x03, 0xe1, 0x0c], "valignd zmm17"),
            (Box::new(|a| a.lea64(RDI, m(RSP, 1024))), &[0x48, 0x8d, 0xbc, 0x24, 0x00, 0x04, 0x00, 0x00], "lea rdi"),
            (Box::new(|a| a.lea64(RSI, m(RSP, 64))), &[0x48, 0x8d, 0x74, 0x24, 0x40], "lea rsi"),
            (Box::new(|a| a.mov32_imm(RDX, 114)), &[0xba, 0x72, 0x00, 0x00, 0x00], "mov edx,114"),
            (Box::new(|a| a.call_rax()), &[0xff, 0xd0], "call rax"),
            (Box::new(|a| a.test_eax()), &[0x85, 0xc0], "test eax,eax"),
            (
                Box::new(|a| a.vload(f, z(1), m(RBX, 16), Masking::Zero(K(7)))),
                &[0x62, 0xf1, 0x7c, 0xcf, 0x10, 0x8b, 0x10, 0x00, 0x00, 0x00],
                "vmovups disp32",
            ),
            // Disassembled: sub qword [rsp+40], 1 (imm32 form).
            (
                Box::new(|a| a.sub_mem_imm(m(RSP, 40), 1)),
                &[0x48, 0x81, 0x6c, 0x24, 0x28, 0x01, 0x00, 0x00, 0x00],
                "sub [rsp+40],1",
            ),
            (Box::new(|a| a.push(RBX)), &[0x53], "push rbx"),
            (Box::new(|a| a.push(R15)), &[0x41, 0x57], "push r15"),
            (Box::new(|a| a.pop(R12)), &[0x41, 0x5c], "pop r12"),
            (Box::new(|a| a.pop(RBP)), &[0x5d], "pop rbp"),
            (Box::new(|a| a.ret()), &[0xc3], "ret"),
            // Disassembled: mov r13,rax; add rcx,r10; sub rcx,rsi; and rsp,-64 (imm32 form).
            (Box::new(|a| a.mov64(R13, RAX)), &[0x4c, 0x8b, 0xe8], "mov r13,rax"),
            (Box::new(|a| a.add64(RCX, R10)), &[0x49, 0x03, 0xca], "add rcx,r10"),
            (Box::new(|a| a.sub64(RCX, RSI)), &[0x48, 0x2b, 0xce], "sub rcx,rsi"),
            (Box::new(|a| a.and_imm(RSP, -64)), &[0x48, 0x81, 0xe4, 0xc0, 0xff, 0xff, 0xff], "and rsp,-64"),
        ];
        for (emit, want, what) in cases {
            let mut a = Asm::new();
            emit(&mut a);
            assert_eq!(a.code, want, "{what}");
        }
    }

    #[test]
    fn jumps_reach_their_labels_backwards_and_forwards() {
        let mut a = Asm::new();
        let (top, end) = (a.label(), a.label());
        a.bind(top);
        a.jcc(Cond::LessOrEqual, end);
        a.ret();
        a.jcc(Cond::NotZero, top);
        a.bind(end);
        a.jmp(top);
        a.jcc(Cond::Less, end);
        let code = a.finish().unwrap();
        // jle +7 (over ret and the jnz); jnz back to 0 from 13.
        // Then jmp back to 0 from 18, and jl back to 13 from 24.
        assert_eq!(
            code,
            [
                0x0f, 0x8e, 7, 0, 0, 0, 0xc3, 0x0f, 0x85, 0xf3, 0xff, 0xff, 0xff, 0xe9, 0xee, 0xff, 0xff, 0xff, 0x0f,
                0x8c, 0xf5, 0xff, 0xff, 0xff
            ]
        );
        let mut a = Asm::new();
        let nowhere = a.label();
        a.jcc(Cond::NotZero, nowhere);
        assert!(a.finish().is_none());
    }
}
