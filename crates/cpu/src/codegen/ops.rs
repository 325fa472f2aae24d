//! How each elementwise primitive is spelled in Cranelift IR, for scalars and
//! for 128-bit vectors (F32X4, F64X2, I32X4; booleans are `i8` 0/1 as scalars
//! and lane masks in vectors). Semantics follow the reference interpreter:
//! wrapping integer arithmetic, XLA's integer division by zero, NaN-propagating
//! max/min, saturating float-to-int conversion.

use super::CodegenError;
use crate::math;
use arrayjit_ir::prim::Elementwise as E;
use arrayjit_ir::DType;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, ConstantData, Endianness, InstBuilder, InstructionData, MemFlagsData, Opcode, Type, Value, ValueDef,
};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{Linkage, Module};

/// The register type of a dtype with `lanes` lanes (1: scalar).
pub(crate) fn reg_type(d: DType, lanes: u32) -> Type {
    match (d, lanes) {
        (DType::F32, 1) => types::F32,
        (DType::F64, 1) => types::F64,
        (DType::I32, 1) => types::I32,
        (DType::Bool, 1) => types::I8,
        (DType::F32, _) => types::F32X4,
        (DType::F64, _) => types::F64X2,
        (DType::I32, _) => types::I32X4,
        (DType::Bool, 4) => types::I32X4,
        (DType::Bool, _) => types::I64X2,
    }
}

/// The element type in memory.
pub(crate) fn mem_type(d: DType) -> Type {
    match d {
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::I32 => types::I32,
        DType::Bool => types::I8,
    }
}

/// Whether `op` becomes a polynomial approximation (with constants of its
/// own) rather than an instruction or two.
pub(crate) fn is_polynomial(op: E) -> bool {
    matches!(op, E::Exp | E::Log | E::Log1p | E::Expm1 | E::Tanh | E::Logistic | E::Sin | E::Cos | E::Pow)
}

/// Whether the vector path supports `op` on operands of `arg` dtype producing `out`.
pub(crate) fn vectorizable(op: E, arg: DType, out: DType) -> bool {
    match op {
        E::Rem | E::Div if arg == DType::I32 => false,
        E::Rem => false,
        E::Sign if arg == DType::I32 => false,
        E::IntegerPow { .. } if arg == DType::I32 => false,
        E::Convert { to } => {
            matches!(
                (arg, to),
                (DType::F32, DType::I32)
                    | (DType::I32, DType::F32)
                    | (DType::Bool, _)
                    | (DType::F32 | DType::F64 | DType::I32, DType::Bool)
            ) || arg == to
        }
        E::Not | E::And | E::Or => arg == DType::Bool,
        E::Lt | E::Le | E::Gt | E::Ge | E::Eq | E::Ne => arg != DType::Bool && out == DType::Bool,
        E::Exp | E::Log | E::Log1p | E::Expm1 | E::Tanh | E::Logistic | E::Sin | E::Cos | E::Pow => arg.is_float(),
        _ => true,
    }
}

/// A constant of dtype `d` as a register of `lanes` lanes.
pub(crate) fn constant(b: &mut FunctionBuilder, d: DType, lanes: u32, v: f64) -> Value {
    let s = match d {
        DType::F32 => b.ins().f32const(v as f32),
        DType::F64 => b.ins().f64const(v),
        DType::I32 => b.ins().iconst(types::I32, v as i32 as i64),
        DType::Bool => {
            if lanes == 1 {
                b.ins().iconst(types::I8, (v != 0.0) as i64)
            } else {
                let t = if lanes == 4 { types::I32 } else { types::I64 };
                b.ins().iconst(t, if v != 0.0 { -1 } else { 0 })
            }
        }
    };
    if lanes == 1 {
        s
    } else {
        b.ins().splat(reg_type(d, lanes), s)
    }
}

/// `-x` for a float scalar or vector. On vectors it is an xor with a -0.0
/// mask, and [`fabs`] an and-not: x86's `fneg`/`fabs` build that mask at
/// each use, in three instructions.
pub(crate) fn fneg(b: &mut FunctionBuilder, x: Value) -> Value {
    let ty = b.func.dfg.value_type(x);
    if !ty.is_vector() {
        return b.ins().fneg(x);
    }
    let sign = sign_mask(b, ty);
    b.ins().bxor(x, sign)
}

/// `|x|` for a float scalar or vector (see [`fneg`]).
pub(crate) fn fabs(b: &mut FunctionBuilder, x: Value) -> Value {
    let ty = b.func.dfg.value_type(x);
    if !ty.is_vector() {
        return b.ins().fabs(x);
    }
    let sign = sign_mask(b, ty);
    b.ins().band_not(x, sign)
}

/// Each lane's sign bit (-0.0) of the float vector type `ty`.
fn sign_mask(b: &mut FunctionBuilder, ty: Type) -> Value {
    let sign = 1u64 << (ty.lane_bits() - 1);
    vector_constant(b, ty, (0..ty.lane_count()).map(|_| sign))
}

/// A vector constant of type `ty` from the bit patterns of its lanes (each
/// cut to the lane width), first lane first.
pub(crate) fn vector_constant(b: &mut FunctionBuilder, ty: Type, lanes: impl IntoIterator<Item = u64>) -> Value {
    let width = (ty.lane_bits() / 8) as usize;
    let bytes: Vec<u8> = lanes.into_iter().flat_map(|l| l.to_le_bytes()[..width].to_vec()).collect();
    let c = b.func.dfg.constants.insert(ConstantData::from(bytes));
    b.ins().vconst(ty, c)
}

pub(crate) fn bitcast(b: &mut FunctionBuilder, to: Type, x: Value) -> Value {
    if b.func.dfg.value_type(x) == to {
        return x;
    }
    b.ins().bitcast(to, MemFlagsData::new().with_endianness(Endianness::Little), x)
}

/// `if pred { t } else { f }`, for scalars (pred i8) and vectors (pred a lane
/// mask). On vectors a zero side makes it one `and` (or `and not`) with the
/// mask, where a general select takes three instructions (an identity mask
/// picking a diagonal, a reduction's live lanes).
pub(crate) fn select(b: &mut FunctionBuilder, pred: Value, t: Value, f: Value) -> Value {
    let ty = b.func.dfg.value_type(t);
    if ty.is_vector() {
        let m = bitcast(b, ty, pred);
        if is_zero_vector(b, f) {
            b.ins().band(t, m)
        } else if is_zero_vector(b, t) {
            b.ins().band_not(f, m)
        } else {
            b.ins().bitselect(m, t, f)
        }
    } else {
        b.ins().select(pred, t, f)
    }
}

/// Whether `v` is a vector constant of all-zero bits, made here.
fn is_zero_vector(b: &FunctionBuilder, v: Value) -> bool {
    let dfg = &b.func.dfg;
    let ValueDef::Result(inst, _) = dfg.value_def(v) else { return false };
    match dfg.insts[inst] {
        InstructionData::UnaryConst { opcode: Opcode::Vconst, constant_handle } => {
            dfg.constants.get(constant_handle).as_slice().iter().all(|&x| x == 0)
        }
        InstructionData::Unary { opcode: Opcode::Splat, arg } => {
            let ValueDef::Result(c, _) = dfg.value_def(arg) else { return false };
            match dfg.insts[c] {
                InstructionData::UnaryIeee32 { opcode: Opcode::F32const, imm } => imm.bits() == 0,
                InstructionData::UnaryIeee64 { opcode: Opcode::F64const, imm } => imm.bits() == 0,
                InstructionData::UnaryImm { opcode: Opcode::Iconst, imm } => imm.bits() == 0,
                _ => false,
            }
        }
        _ => false,
    }
}

fn fcmp(b: &mut FunctionBuilder, cc: FloatCC, x: Value, y: Value) -> Value {
    b.ins().fcmp(cc, x, y)
}

/// Emits `op` on `args` (all of dtype `arg`, except `select`'s predicate).
pub(crate) fn emit(
    b: &mut FunctionBuilder,
    module: &mut cranelift_jit::JITModule,
    op: E,
    args: &[Value],
    arg: DType,
    out: DType,
    lanes: u32,
) -> Result<Value, CodegenError> {
    let x = args[0];
    let y = args.get(1).copied().unwrap_or(x);
    let float = arg.is_float();
    let unsupported = || CodegenError { message: format!("{} is not supported on {arg}", op.name()), clif: None };
    let v = match op {
        E::Neg if float => fneg(b, x),
        E::Neg => b.ins().ineg(x),
        E::Abs if float => fabs(b, x),
        E::Abs => b.ins().iabs(x),
        E::Sign if float => {
            let zero = constant(b, arg, lanes, 0.0);
            let one = constant(b, arg, lanes, 1.0);
            let m1 = constant(b, arg, lanes, -1.0);
            let pos = fcmp(b, FloatCC::GreaterThan, x, zero);
            let neg = fcmp(b, FloatCC::LessThan, x, zero);
            let inner = select(b, neg, m1, x);
            select(b, pos, one, inner)
        }
        E::Sign => {
            let zero = b.ins().iconst(types::I32, 0);
            let one = b.ins().iconst(types::I32, 1);
            let m1 = b.ins().iconst(types::I32, -1);
            let pos = b.ins().icmp(IntCC::SignedGreaterThan, x, zero);
            let neg = b.ins().icmp(IntCC::SignedLessThan, x, zero);
            let inner = b.ins().select(neg, m1, zero);
            b.ins().select(pos, one, inner)
        }
        E::Not if arg == DType::Bool && lanes == 1 => b.ins().bxor_imm_s(x, 1),
        E::Not => b.ins().bnot(x),
        E::Exp => math::exp(b, x),
        E::Log => math::log(b, x),
        E::Log1p => math::log1p(b, x),
        E::Expm1 => math::expm1(b, x),
        E::Tanh => math::tanh(b, x),
        E::Logistic => math::logistic(b, x),
        E::Sin => math::sin(b, x),
        E::Cos => math::cos(b, x),
        E::Pow if float => math::pow(b, x, y),
        E::Pow => int_pow(b, x, y),
        E::Sqrt => b.ins().sqrt(x),
        E::Rsqrt => {
            let s = b.ins().sqrt(x);
            let one = constant(b, arg, lanes, 1.0);
            b.ins().fdiv(one, s)
        }
        E::Floor => b.ins().floor(x),
        E::Ceil => b.ins().ceil(x),
        E::IsFinite => {
            let a = fabs(b, x);
            let inf = constant(b, arg, lanes, f64::INFINITY);
            fcmp(b, FloatCC::LessThan, a, inf)
        }
        E::StopGradient => x,
        E::Add if float => b.ins().fadd(x, y),
        E::Add => b.ins().iadd(x, y),
        E::Sub if float => b.ins().fsub(x, y),
        E::Sub => b.ins().isub(x, y),
        E::Mul if float => b.ins().fmul(x, y),
        E::Mul => b.ins().imul(x, y),
        E::Div if float => b.ins().fdiv(x, y),
        E::Rem if float => {
            let (name, ty) =
                if arg == DType::F32 { (super::jit::FMODF, types::F32) } else { (super::jit::FMOD, types::F64) };
            let mut sig = module.make_signature();
            sig.params.push(cranelift_codegen::ir::AbiParam::new(ty));
            sig.params.push(cranelift_codegen::ir::AbiParam::new(ty));
            sig.returns.push(cranelift_codegen::ir::AbiParam::new(ty));
            let id = module
                .declare_function(name, Linkage::Import, &sig)
                .map_err(|e| CodegenError { message: format!("import {name}: {e}"), clif: None })?;
            let f = module.declare_func_in_func(id, b.func);
            let call = b.ins().call(f, &[x, y]);
            b.inst_results(call)[0]
        }
        E::Div | E::Rem => int_div_rem(b, op, x, y),
        E::Max if float => b.ins().fmax(x, y),
        E::Max => b.ins().smax(x, y),
        E::Min if float => b.ins().fmin(x, y),
        E::Min => b.ins().smin(x, y),
        E::And => b.ins().band(x, y),
        E::Or => b.ins().bor(x, y),
        E::Eq | E::Ne | E::Lt | E::Le | E::Gt | E::Ge if float => {
            let cc = match op {
                E::Eq => FloatCC::Equal,
                E::Ne => FloatCC::NotEqual,
                E::Lt => FloatCC::LessThan,
                E::Le => FloatCC::LessThanOrEqual,
                E::Gt => FloatCC::GreaterThan,
                _ => FloatCC::GreaterThanOrEqual,
            };
            fcmp(b, cc, x, y)
        }
        E::Eq | E::Ne | E::Lt | E::Le | E::Gt | E::Ge => {
            // Booleans compare unsigned (false < true); i32 signed.
            let signed = arg == DType::I32;
            let cc = match (op, signed) {
                (E::Eq, _) => IntCC::Equal,
                (E::Ne, _) => IntCC::NotEqual,
                (E::Lt, true) => IntCC::SignedLessThan,
                (E::Le, true) => IntCC::SignedLessThanOrEqual,
                (E::Gt, true) => IntCC::SignedGreaterThan,
                (E::Ge, true) => IntCC::SignedGreaterThanOrEqual,
                (E::Lt, false) => IntCC::UnsignedLessThan,
                (E::Le, false) => IntCC::UnsignedLessThanOrEqual,
                (E::Gt, false) => IntCC::UnsignedGreaterThan,
                _ => IntCC::UnsignedGreaterThanOrEqual,
            };
            b.ins().icmp(cc, x, y)
        }
        E::IntegerPow { exponent } => integer_pow(b, x, exponent, arg, lanes),
        E::Select => select(b, args[0], args[1], args[2]),
        E::Convert { to } => convert(b, x, arg, to, lanes).ok_or_else(unsupported)?,
    };
    let _ = out;
    Ok(v)
}

/// XLA's integer division and remainder: x/0 = -1, x rem 0 = x, MIN/-1 = MIN, MIN rem -1 = 0.
fn int_div_rem(b: &mut FunctionBuilder, op: E, x: Value, y: Value) -> Value {
    let zero = b.ins().iconst(types::I32, 0);
    let one = b.ins().iconst(types::I32, 1);
    let m1 = b.ins().iconst(types::I32, -1);
    let min = b.ins().iconst(types::I32, i32::MIN as i64);
    let y0 = b.ins().icmp(IntCC::Equal, y, zero);
    let ym1 = b.ins().icmp(IntCC::Equal, y, m1);
    let xmin = b.ins().icmp(IntCC::Equal, x, min);
    let overflow = b.ins().band(ym1, xmin);
    let bad = b.ins().bor(y0, overflow);
    let safe = b.ins().select(bad, one, y);
    if op == E::Div {
        let q = b.ins().sdiv(x, safe);
        let q = b.ins().select(overflow, min, q);
        b.ins().select(y0, m1, q)
    } else {
        let r = b.ins().srem(x, safe);
        let r = b.ins().select(overflow, zero, r);
        b.ins().select(y0, x, r)
    }
}

fn integer_pow(b: &mut FunctionBuilder, x: Value, n: i32, d: DType, lanes: u32) -> Value {
    let mul = |b: &mut FunctionBuilder, p: Value, q: Value| {
        if d.is_float() {
            b.ins().fmul(p, q)
        } else {
            b.ins().imul(p, q)
        }
    };
    let mut e = n.unsigned_abs();
    let mut acc: Option<Value> = None;
    let mut base = x;
    while e > 0 {
        if e & 1 == 1 {
            acc = Some(match acc {
                None => base,
                Some(a) => mul(b, a, base),
            });
        }
        e >>= 1;
        if e > 0 {
            base = mul(b, base, base);
        }
    }
    let pos = match acc {
        Some(a) => a,
        None => constant(b, d, lanes, 1.0),
    };
    if n >= 0 {
        return pos;
    }
    if d.is_float() {
        let one = constant(b, d, lanes, 1.0);
        return b.ins().fdiv(one, pos);
    }
    let odd = n.unsigned_abs() & 1 == 1;
    let at_m1 = b.ins().iconst(types::I32, if odd { -1 } else { 1 });
    negative_int_pow(b, x, at_m1)
}

/// Integer `x^-k` (`k > 0`), which truncates: 1 for x = 1, `at_m1` (±1 by
/// the parity of `k`) for x = -1, -1 (as `1 / 0`) for x = 0, else 0.
fn negative_int_pow(b: &mut FunctionBuilder, x: Value, at_m1: Value) -> Value {
    let one = b.ins().iconst(types::I32, 1);
    let m1 = b.ins().iconst(types::I32, -1);
    let zero = b.ins().iconst(types::I32, 0);
    let is1 = b.ins().icmp(IntCC::Equal, x, one);
    let ism1 = b.ins().icmp(IntCC::Equal, x, m1);
    let is0 = b.ins().icmp(IntCC::Equal, x, zero);
    let r = b.ins().select(is0, m1, zero);
    let r = b.ins().select(ism1, at_m1, r);
    b.ins().select(is1, one, r)
}

/// `x^y` for scalar `i32`s, as `integer_pow` with the exponent read at run
/// time: by squaring with wrapping products over the 31 bits a non-negative
/// exponent can have, and for a negative one [`negative_int_pow`].
fn int_pow(b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
    let mut acc = b.ins().iconst(types::I32, 1);
    let mut base = x;
    for bit in 0..31 {
        let shifted = b.ins().ushr_imm_u(y, bit);
        let set = b.ins().band_imm_u(shifted, 1);
        let times = b.ins().imul(acc, base);
        acc = b.ins().select(set, times, acc);
        if bit < 30 {
            base = b.ins().imul(base, base);
        }
    }
    let (one, m1, zero) =
        (b.ins().iconst(types::I32, 1), b.ins().iconst(types::I32, -1), b.ins().iconst(types::I32, 0));
    let odd = b.ins().band_imm_u(y, 1);
    let at_m1 = b.ins().select(odd, m1, one);
    let negative = negative_int_pow(b, x, at_m1);
    let is_negative = b.ins().icmp(IntCC::SignedLessThan, y, zero);
    b.ins().select(is_negative, negative, acc)
}

fn convert(b: &mut FunctionBuilder, x: Value, from: DType, to: DType, lanes: u32) -> Option<Value> {
    if from == to {
        return Some(x);
    }
    let v = match (from, to) {
        (DType::F32, DType::F64) if lanes == 1 => b.ins().fpromote(types::F64, x),
        (DType::F64, DType::F32) if lanes == 1 => b.ins().fdemote(types::F32, x),
        (f, DType::I32) if f.is_float() => b.ins().fcvt_to_sint_sat(reg_type(DType::I32, lanes), x),
        (DType::I32, t) if t.is_float() => b.ins().fcvt_from_sint(reg_type(t, lanes), x),
        (f, DType::Bool) if f.is_float() && lanes == 1 => {
            let zero = constant(b, f, 1, 0.0);
            b.ins().fcmp(FloatCC::NotEqual, x, zero)
        }
        (DType::I32, DType::Bool) if lanes == 1 => b.ins().icmp_imm_s(IntCC::NotEqual, x, 0),
        (DType::Bool, DType::I32) if lanes == 1 => b.ins().uextend(types::I32, x),
        (DType::Bool, t) if t.is_float() && lanes == 1 => {
            let i = b.ins().uextend(types::I32, x);
            b.ins().fcvt_from_sint(reg_type(t, 1), i)
        }
        // Vector booleans are lane masks (all ones or zero): keep the bits of one.
        (DType::Bool, t) => {
            let one = match t {
                DType::F32 => 1f32.to_bits() as i64,
                DType::F64 => 1f64.to_bits() as i64,
                _ => 1,
            };
            let lane = if lanes == 4 { types::I32 } else { types::I64 };
            let ones = b.ins().iconst(lane, one);
            let ones = b.ins().splat(reg_type(DType::Bool, lanes), ones);
            let bits = b.ins().band(x, ones);
            bitcast(b, reg_type(t, lanes), bits)
        }
        (f, DType::Bool) if f.is_float() => {
            let zero = constant(b, f, lanes, 0.0);
            let m = b.ins().fcmp(FloatCC::NotEqual, x, zero);
            bitcast(b, reg_type(DType::Bool, lanes), m)
        }
        (DType::I32, DType::Bool) => {
            let zero = constant(b, DType::I32, lanes, 0.0);
            b.ins().icmp(IntCC::NotEqual, x, zero)
        }
        _ => return None,
    };
    Some(v)
}

/// `max(x, c)` (or `min`) against a bound `c` that is neither zero nor NaN:
/// `x < c ? c : x` (or `x > c ? c : x`). A NaN `x` fails the compare and is
/// returned, as IEEE `maximum` requires.
pub(super) fn clamp_by(b: &mut FunctionBuilder, max: bool, x: Value, c: Value) -> Value {
    let cc = if max { FloatCC::LessThan } else { FloatCC::GreaterThan };
    let m = fcmp(b, cc, x, c);
    select(b, m, c, x)
}
