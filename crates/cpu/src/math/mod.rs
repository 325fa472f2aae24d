//! Inline polynomial transcendental functions emitted as Cranelift IR, with no calls (except for
//! `sin` and `cos` of arguments too large for their reduction, see below).
//!
//! Each function takes a value of type `F32`, `F64`, `F32X4` or `F64X2` and returns one of the same
//! type, so the code generator can use it inside a loop body for scalars and vectors
//! alike. `exp`, `log` and `log1p` (and `logistic`, through `exp`) branch once: when every lane is
//! an ordinary input (a result in the normal range; a positive normal argument; for `log1p` one of
//! at least -1/2 and not tiny) they skip the clamping, two-step scaling, subnormal prescaling and
//! special-value fix-ups, whose results for such inputs are the same bits. The recipe is the same
//! throughout: a range reduction done with integer bit tricks and `fma` (the round-to-integer and
//! the `2^n` scaling use the 1.5·2^23 / 1.5·2^52 "shifter" so no float/int conversion instruction
//! is needed), a minimax polynomial whose coefficients `remez.py` derives (see `coeffs.rs`), and
//! special values fixed up at the end with `fcmp` + `select`/`bitselect`.
//!
//! Measured maximum errors in ulps of the exact result. f32: over all 2^32 inputs (the ignored test
//! `exhaustive_f32`), against the f64 function's value before rounding; pow over the random and
//! special pairs of `pow_accuracy`. f64: over the sweeps in `tests.rs` (random bit patterns, ranges
//! around the reduction boundaries, special values), against a double-double reference for exp,
//! expm1, tanh and logistic and against glibc otherwise, where the figure counts whole ulps
//! between the two results (glibc's own error is under one ulp there). The tests assert the bound
//! column.
//!
//! | function | method | f32 | f64 | bound f32 / f64 |
//! |---|---|---|---|---|
//! | `exp` | x = n ln2 + r, expm1(r) polynomial on \|r\| ≤ ln2/2, 2^n applied in two halves (subnormal results round once) | 1.05 | 1.04 | 1.5 / 1.5 |
//! | `expm1` | as `exp`; 2·(2^(n-1)·p + (2^(n-1) - ½)) with p = expm1(r) kept as a pair | 1.57 | 1.45 | 2 / 2 |
//! | `log` | x = 2^e (1+f), 1+f in [√½, √2); log1p(f) = f - (f²/2 - s(f²/2 + R(s²))), s = f/(2+f) | 0.84 | 1 | 1 / 1.5 |
//! | `log1p` | log of u = 1+x plus (x - (u-1))/u, the exact rounding error of u | 0.84 | 1 | 1 / 1.5 |
//! | `tanh` | t/(t+2) with t = expm1(2\|x\|) (\|x\| ≤ 20), corrected for the rounding of t+2 | 1.95 | 2.49 | 2.5 / 3 |
//! | `logistic` | E/(1+E) or 1/(1+E), E = exp(-\|x\|), corrected for the rounding of 1+E | 1.98 | 1.84 | 2.5 / 2.5 |
//! | `sin`, `cos` | q = round(2x/π), r = x - q·π/2 (three-part π/2, fma), sine or cosine polynomial on \|r\| ≤ π/4 | 1.95 (sin), 2.08 (cos) | 1 | 2.5 / 1.5 |
//! | `pow` | f32: e^(y ln\|x\|) in f64, rounded once; f64: ln\|x\| as a double-double (≈2^-64), e^(y ln\|x\|) from it | 0.5 | 1 | 1 / 1.5 |
//!
//! sin and cos reduce inline for |x| ≤ 2^21 (f32) and 2^48 (f64), where they hold those bounds.
//! A vector with a lane beyond (±inf included) branches once, and such lanes come from Rust's f64
//! `sin`/`cos` (rounded to f32 for f32), called lane by lane as the reference interpreter computes
//! them; ±inf and NaN give NaN.
//!
//! Special values follow Rust's std (so C99): NaN in gives NaN out (pow(x, ±0) = pow(1, y) = 1 even
//! then), exp/expm1 overflow to +inf and underflow through the subnormals to 0 (-1), log(±0) =
//! -inf, log(x < 0) = NaN, log1p(-1) = -inf, tanh saturates to ±1, logistic to 0 (through the
//! subnormals) or 1, and ±0 keeps its sign where std does (expm1, log1p, tanh, sin). pow has C's
//! rules for zero, infinite and negative bases (NaN for a negative finite base and a non-integer
//! exponent, the base's sign for odd integer exponents).
//!
//! `bulk` holds the common paths of `exp`, `log`, `tanh`, `logistic`, `log1p`, `expm1`, `sin` and
//! `cos` once more, as native functions over a whole row at the CPU's full vector width; they give
//! these functions' bits (`tests.rs` compares them), so a kernel may use either.

pub(crate) mod bulk;
mod coeffs;
mod exp;
mod log;
mod pow;
#[cfg(test)]
mod tests;
mod trig;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, BlockArg, Endianness, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

/// `e^x`.
pub(crate) fn exp(b: &mut FunctionBuilder, x: Value) -> Value {
    exp::exp(&mut Em::of(b, x), x)
}

/// The natural logarithm; NaN below zero, `-inf` at ±0.
pub(crate) fn log(b: &mut FunctionBuilder, x: Value) -> Value {
    log::log(&mut Em::of(b, x), x)
}

/// `ln(1 + x)`, accurate for small `x`.
pub(crate) fn log1p(b: &mut FunctionBuilder, x: Value) -> Value {
    log::log1p(&mut Em::of(b, x), x)
}

/// `e^x - 1`, accurate for small `x`.
pub(crate) fn expm1(b: &mut FunctionBuilder, x: Value) -> Value {
    exp::expm1(&mut Em::of(b, x), x)
}

/// The hyperbolic tangent.
pub(crate) fn tanh(b: &mut FunctionBuilder, x: Value) -> Value {
    exp::tanh(&mut Em::of(b, x), x)
}

/// The logistic sigmoid `1 / (1 + e^-x)`.
pub(crate) fn logistic(b: &mut FunctionBuilder, x: Value) -> Value {
    exp::logistic(&mut Em::of(b, x), x)
}

/// The sine of `x` radians.
pub(crate) fn sin(b: &mut FunctionBuilder, x: Value) -> Value {
    trig::sin_cos(&mut Em::of(b, x), x, false)
}

/// The cosine of `x` radians.
pub(crate) fn cos(b: &mut FunctionBuilder, x: Value) -> Value {
    trig::sin_cos(&mut Em::of(b, x), x, true)
}

/// `x^y` with the special cases of C's `pow` (and so of Rust's `powf`).
pub(crate) fn pow(b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
    pow::pow(&mut Em::of(b, x), x, y)
}

/// Flags for the register-to-register bitcasts; vectors need an explicit byte order.
fn le() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// Emits arithmetic on one float type (`F32`, `F64`, `F32X4` or `F64X2`): constants are splatted
/// for vectors, masks come from `fcmp`/`icmp` and pick with `select` (scalars) or `bitselect`
/// (vectors), and integer operations use the integer type of the same lane width, so that each
/// function is written once for all four types.
pub(super) struct Em<'a, 'f> {
    b: &'a mut FunctionBuilder<'f>,
    /// The float type worked on.
    ty: Type,
    /// The integer type with the same lanes.
    ity: Type,
}

impl<'a, 'f> Em<'a, 'f> {
    fn of(b: &'a mut FunctionBuilder<'f>, x: Value) -> Self {
        let ty = b.func.dfg.value_type(x);
        Self::new(b, ty)
    }

    fn new(b: &'a mut FunctionBuilder<'f>, ty: Type) -> Self {
        debug_assert!(matches!(ty, types::F32 | types::F64 | types::F32X4 | types::F64X2), "math on {ty}");
        Em { b, ty, ity: ty.as_int() }
    }

    /// The same builder working on another float type (pow's f32 path works in f64).
    fn with_type(&mut self, ty: Type) -> Em<'_, 'f> {
        Em::new(self.b, ty)
    }

    fn is64(&self) -> bool {
        self.ty.lane_bits() == 64
    }

    /// Explicit mantissa bits: 23 or 52.
    fn mant_bits(&self) -> i64 {
        if self.is64() {
            52
        } else {
            23
        }
    }

    /// The exponent bias: 127 or 1023.
    fn bias(&self) -> i64 {
        if self.is64() {
            1023
        } else {
            127
        }
    }

    /// A constant splatted over `ty`'s lanes, from the bit pattern of one lane.
    fn lanes(&mut self, ty: Type, lane: u64) -> Value {
        if !ty.is_vector() {
            return match ty {
                types::F32 => self.b.ins().f32const(f32::from_bits(lane as u32)),
                types::F64 => self.b.ins().f64const(f64::from_bits(lane)),
                types::I32 => self.b.ins().iconst(ty, (lane as u32) as i64),
                _ => self.b.ins().iconst(ty, lane as i64),
            };
        }
        crate::codegen::ops::vector_constant(self.b, ty, (0..ty.lane_count()).map(|_| lane))
    }

    /// A float constant (rounded to f32 for f32 types).
    fn f(&mut self, v: f64) -> Value {
        let bits = if self.is64() { v.to_bits() } else { (v as f32).to_bits() as u64 };
        self.lanes(self.ty, bits)
    }

    /// A float constant given exactly for each precision (e.g. one part of a split constant).
    fn fc(&mut self, v32: f32, v64: f64) -> Value {
        let bits = if self.is64() { v64.to_bits() } else { v32.to_bits() as u64 };
        self.lanes(self.ty, bits)
    }

    /// An integer constant of the integer type.
    fn i(&mut self, v: i64) -> Value {
        self.lanes(self.ity, v as u64)
    }

    /// The round-to-integer shifter 1.5·2^mant: adding it to |v| < 2^(mant-1) rounds v to an
    /// integer held in the low mantissa bits.
    fn shifter(&mut self) -> Value {
        self.f(if self.is64() { 6755399441055744.0 } else { 12582912.0 })
    }

    fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }

    fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }

    fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }

    fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }

    /// `a * b + c` with one rounding.
    fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        self.b.ins().fma(a, b, c)
    }

    fn abs(&mut self, a: Value) -> Value {
        crate::codegen::ops::fabs(self.b, a)
    }

    fn neg(&mut self, a: Value) -> Value {
        crate::codegen::ops::fneg(self.b, a)
    }

    fn trunc(&mut self, a: Value) -> Value {
        self.b.ins().trunc(a)
    }

    /// Bitwise and (floats, integers and masks alike).
    fn and(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }

    fn or(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bor(a, b)
    }

    fn xor(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bxor(a, b)
    }

    fn iadd(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().iadd(a, b)
    }

    fn ishl(&mut self, a: Value, n: i64) -> Value {
        let n = self.b.ins().iconst(types::I32, n);
        self.b.ins().ishl(a, n)
    }

    fn ushr(&mut self, a: Value, n: i64) -> Value {
        let n = self.b.ins().iconst(types::I32, n);
        self.b.ins().ushr(a, n)
    }

    /// The float's bits as the integer type.
    fn bits(&mut self, a: Value) -> Value {
        self.b.ins().bitcast(self.ity, le(), a)
    }

    /// Integer bits reinterpreted as the float type.
    fn float(&mut self, a: Value) -> Value {
        self.b.ins().bitcast(self.ty, le(), a)
    }

    /// A lane mask (`i8` 0/1 for scalars, all-ones lanes for vectors).
    fn fcmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.b.ins().fcmp(cc, a, b)
    }

    fn icmp(&mut self, cc: IntCC, a: Value, b: Value) -> Value {
        self.b.ins().icmp(cc, a, b)
    }

    /// `mask ? t : f` lane by lane.
    fn sel(&mut self, mask: Value, t: Value, f: Value) -> Value {
        let ty = self.b.func.dfg.value_type(t);
        if ty.is_vector() {
            let mask = if self.b.func.dfg.value_type(mask) == ty { mask } else { self.b.ins().bitcast(ty, le(), mask) };
            self.b.ins().bitselect(mask, t, f)
        } else {
            self.b.ins().select(mask, t, f)
        }
    }

    /// `fast` when `mask` holds in every lane, else `slow`: two code paths
    /// joined by a block parameter. For functions whose special inputs (out of
    /// range, subnormal, NaN) need work that ordinary inputs do not: the
    /// common case skips it, at the price of one well-predicted branch.
    fn when_all(
        &mut self,
        mask: Value,
        fast: impl FnOnce(&mut Self) -> Value,
        slow: impl FnOnce(&mut Self) -> Value,
    ) -> Value {
        // Every lane's sign bit set, read in one move (`vall_true` compares
        // against zero and tests: three instructions on x86).
        let cond = if self.ty.is_vector() {
            let bits = self.b.ins().vhigh_bits(types::I32, mask);
            let all = (1i64 << self.ty.lane_count()) - 1;
            self.b.ins().icmp_imm_s(IntCC::Equal, bits, all)
        } else {
            mask
        };
        let (fast_block, slow_block, join) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        let ty = self.ty;
        self.b.append_block_param(join, ty);
        self.b.ins().brif(cond, fast_block, &[], slow_block, &[]);
        self.b.seal_block(fast_block);
        self.b.seal_block(slow_block);
        self.b.switch_to_block(fast_block);
        let v = fast(self);
        self.b.ins().jump(join, &[BlockArg::Value(v)]);
        self.b.switch_to_block(slow_block);
        let v = slow(self);
        self.b.ins().jump(join, &[BlockArg::Value(v)]);
        self.b.seal_block(join);
        self.b.switch_to_block(join);
        self.b.block_params(join)[0]
    }

    /// `a > hi ? hi : a < lo ? lo : a`, letting NaN through.
    fn clamp(&mut self, a: Value, lo: f64, hi: f64) -> Value {
        let a = self.clamp_above(a, hi);
        self.clamp_below(a, lo)
    }

    /// `a > hi ? hi : a`, letting NaN through.
    fn clamp_above(&mut self, a: Value, hi: f64) -> Value {
        let hi = self.f(hi);
        let over = self.fcmp(FloatCC::GreaterThan, a, hi);
        self.sel(over, hi, a)
    }

    /// `a < lo ? lo : a`, letting NaN through.
    fn clamp_below(&mut self, a: Value, lo: f64) -> Value {
        let lo = self.f(lo);
        let under = self.fcmp(FloatCC::LessThan, a, lo);
        self.sel(under, lo, a)
    }

    /// `sum c[i] x^i` by Horner's rule with `fma`, with the coefficients of the working precision.
    fn poly(&mut self, x: Value, c32: &[f32], c64: &[f64]) -> Value {
        let n = if self.is64() { c64.len() } else { c32.len() };
        let coef =
            |m: &mut Self, i: usize| m.fc(c32.get(i).copied().unwrap_or(0.0), c64.get(i).copied().unwrap_or(0.0));
        let mut acc = coef(self, n - 1);
        for i in (0..n - 1).rev() {
            let c = coef(self, i);
            acc = self.fma(acc, x, c);
        }
        acc
    }

    /// `2^n` from `t = n + shifter()`, for an integer n in the normal exponent range.
    fn pow2_shifted(&mut self, t: Value) -> Value {
        let i = self.bits(t);
        // The low bits of t's mantissa hold n; the shift drops the shifter's own bit.
        let bias = self.i(self.bias());
        let i = self.iadd(i, bias);
        let i = self.ishl(i, self.mant_bits());
        self.float(i)
    }

    /// `2^n` for an integer-valued float n in the normal exponent range.
    fn pow2(&mut self, n: Value) -> Value {
        let s = self.shifter();
        let t = self.add(n, s);
        self.pow2_shifted(t)
    }

    /// `v * 2^n` for integer-valued n up to twice the exponent range, in two exactly representable
    /// halves so that a subnormal result is rounded only once and an out-of-range one saturates.
    fn scale(&mut self, v: Value, n: Value) -> Value {
        let s = self.shifter();
        let half = self.f(0.5);
        let t1 = self.fma(n, half, s);
        let n1 = self.sub(t1, s);
        let n2 = self.sub(n, n1);
        let s1 = self.pow2_shifted(t1);
        let s2 = self.pow2(n2);
        let v = self.mul(v, s1);
        self.mul(v, s2)
    }

    /// The sign bit of `a` alone (as a float: ±0).
    fn sign_of(&mut self, a: Value) -> Value {
        let m = self.f(-0.0);
        self.and(a, m)
    }
}
