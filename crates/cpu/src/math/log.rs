//! `log` and `log1p`: x = 2^e (1 + f) with 1 + f in [√½, √2), and log1p(f) through s = f / (2 + f).

use super::coeffs::{LN2_F32, LN2_F64, LOG_F32, LOG_F64};
use super::Em;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::Value;

/// The bits of √½, where the reduced mantissa range starts.
pub(super) fn sqrt_half_bits(m: &Em) -> i64 {
    if m.is64() {
        std::f64::consts::FRAC_1_SQRT_2.to_bits() as i64
    } else {
        std::f32::consts::FRAC_1_SQRT_2.to_bits() as i64
    }
}

/// The float 2^mant + bias, which `split` subtracts to turn the shifted exponent field into e.
pub(super) fn exponent_offset(m: &Em) -> f64 {
    (1i64 << m.mant_bits()) as f64 + m.bias() as f64
}

/// Splits a positive finite normal `a` into (f, e) with a = 2^e (1 + f), 1 + f in [√½, √2) and e an
/// integer-valued float; `off` is `exponent_offset` (plus the exponent of any prescale of `a`).
pub(super) fn split(m: &mut Em, a: Value, off: Value) -> (Value, Value) {
    let mant = m.mant_bits();
    let sqrt_half = sqrt_half_bits(m);
    // Moving [√½, √2) onto a whole binade first lets one shift and one mask split exponent and
    // mantissa; adding the bias keeps the sum non-negative so a logical shift will do.
    let bits = m.bits(a);
    let k = m.i((m.bias() << mant) - sqrt_half);
    let k = m.iadd(bits, k);
    let eb = m.ushr(k, mant);
    let mask = m.i((1 << mant) - 1);
    let mb = m.and(k, mask);
    let sh = m.i(sqrt_half);
    let mb = m.iadd(mb, sh);
    let mf = m.float(mb);
    let one = m.f(1.0);
    let f = m.sub(mf, one);
    // The biased exponent as the low bits of 2^mant gives it as a float without a conversion.
    let two_mant = m.i((m.bias() + mant) << mant);
    let eb = m.iadd(eb, two_mant);
    let ef = m.float(eb);
    let e = m.sub(ef, off);
    (f, e)
}

/// e·ln2 + log1p(f) + c for f from `split` and a small correction c. The form
/// f - (f²/2 - s(f²/2 + R)) keeps the exact f as the leading term, so the rounding of s only
/// reaches the small part.
pub(super) fn log_reduced(m: &mut Em, f: Value, e: Value, c: Value) -> Value {
    let two = m.f(2.0);
    let u = m.add(f, two);
    let s = m.div(f, u);
    let z = m.mul(s, s);
    let p = m.poly(z, &LOG_F32, &LOG_F64);
    let r = m.mul(z, p);
    let half = m.f(0.5);
    let hf = m.mul(f, half);
    let hfsq = m.mul(hf, f);
    let ln2_lo = m.fc(LN2_F32[1], LN2_F64[1]);
    let lo = m.fma(e, ln2_lo, c);
    let hr = m.add(hfsq, r);
    let inner = m.fma(s, hr, lo);
    let t = m.sub(hfsq, inner);
    let v = m.sub(f, t);
    let ln2_hi = m.fc(LN2_F32[0], LN2_F64[0]);
    m.fma(e, ln2_hi, v)
}

/// ln|a| for a > 0 without special cases (subnormals are prescaled).
pub(super) fn log_positive(m: &mut Em, a: Value) -> Value {
    let (min, pre, pre_e) = if m.is64() {
        (f64::MIN_POSITIVE, 2f64.powi(54), 54.0)
    } else {
        (f32::MIN_POSITIVE as f64, 2f64.powi(24), 24.0)
    };
    let min = m.f(min);
    let sub = m.fcmp(FloatCC::LessThan, a, min);
    let pre = m.f(pre);
    let scaled = m.mul(a, pre);
    let a = m.sel(sub, scaled, a);
    let off = exponent_offset(m);
    let off_sub = m.f(off + pre_e);
    let off = m.f(off);
    let off = m.sel(sub, off_sub, off);
    let (f, e) = split(m, a, off);
    let zero = m.f(0.0);
    log_reduced(m, f, e, zero)
}

pub(super) fn log(m: &mut Em, x: Value) -> Value {
    // Positive, normal and finite in every lane (NaN fails the compares):
    // no prescaling and no special values.
    let (min, max) = if m.is64() { (f64::MIN_POSITIVE, f64::MAX) } else { (f32::MIN_POSITIVE as f64, f32::MAX as f64) };
    let (min, max) = (m.f(min), m.f(max));
    let above = m.fcmp(FloatCC::GreaterThanOrEqual, x, min);
    let below = m.fcmp(FloatCC::LessThanOrEqual, x, max);
    let ordinary = m.and(above, below);
    m.when_all(
        ordinary,
        |m| {
            let off = exponent_offset(m);
            let off = m.f(off);
            let (f, e) = split(m, x, off);
            let zero = m.f(0.0);
            log_reduced(m, f, e, zero)
        },
        |m| log_special(m, x),
    )
}

/// `log` for any input: subnormals prescaled, then ±0, +inf, negatives and NaN fixed up.
fn log_special(m: &mut Em, x: Value) -> Value {
    let r = log_positive(m, x);
    let inf = m.f(f64::INFINITY);
    let is_inf = m.fcmp(FloatCC::Equal, x, inf);
    let r = m.sel(is_inf, x, r);
    let zero = m.f(0.0);
    let ninf = m.f(f64::NEG_INFINITY);
    let is_zero = m.fcmp(FloatCC::Equal, x, zero);
    let r = m.sel(is_zero, ninf, r);
    let nan = m.f(f64::NAN);
    let bad = m.fcmp(FloatCC::UnorderedOrLessThan, x, zero);
    m.sel(bad, nan, r)
}

pub(super) fn log1p(m: &mut Em, x: Value) -> Value {
    // Ordinary in every lane: x ≥ -1/2 (so 1 + x is normal), finite, and not
    // so small that the result is x itself. No special values to fix up.
    let tiny = if m.is64() { 2f64.powi(-53) } else { 2f64.powi(-24) };
    let max = if m.is64() { f64::MAX } else { f32::MAX as f64 };
    let (lo, hi, tiny_v) = (m.f(-0.5), m.f(max), m.f(tiny));
    let above = m.fcmp(FloatCC::GreaterThanOrEqual, x, lo);
    let below = m.fcmp(FloatCC::LessThanOrEqual, x, hi);
    let a = m.abs(x);
    let big = m.fcmp(FloatCC::GreaterThanOrEqual, a, tiny_v);
    let in_range = m.and(above, below);
    let ordinary = m.and(in_range, big);
    m.when_all(ordinary, |m| log1p_reduced(m, x), |m| log1p_special(m, x))
}

/// log1p(x) for any x whose 1 + x is positive and normal, without special cases.
fn log1p_reduced(m: &mut Em, x: Value) -> Value {
    let one = m.f(1.0);
    let u = m.add(x, one);
    let off = exponent_offset(m);
    let off = m.f(off);
    let (f, e) = split(m, u, off);
    // log1p(x) = log(u) + log(1 + c/u), c = x - (u - 1) the (exact) rounding error of u.
    let um1 = m.sub(u, one);
    let c = m.sub(x, um1);
    let c = m.div(c, u);
    log_reduced(m, f, e, c)
}

/// `log1p` for any input: ±inf, -1, below -1, NaN and tiny values fixed up.
fn log1p_special(m: &mut Em, x: Value) -> Value {
    let r = log1p_reduced(m, x);
    let inf = m.f(f64::INFINITY);
    let is_inf = m.fcmp(FloatCC::Equal, x, inf);
    let r = m.sel(is_inf, x, r);
    let m1 = m.f(-1.0);
    let ninf = m.f(f64::NEG_INFINITY);
    let is_m1 = m.fcmp(FloatCC::Equal, x, m1);
    let r = m.sel(is_m1, ninf, r);
    let nan = m.f(f64::NAN);
    let bad = m.fcmp(FloatCC::UnorderedOrLessThan, x, m1);
    let r = m.sel(bad, nan, r);
    // log1p(x) rounds to x for tiny x; this also keeps -0 and subnormals exact.
    let tiny = m.f(if m.is64() { 2f64.powi(-53) } else { 2f64.powi(-24) });
    let a = m.abs(x);
    let small = m.fcmp(FloatCC::LessThan, a, tiny);
    m.sel(small, x, r)
}
