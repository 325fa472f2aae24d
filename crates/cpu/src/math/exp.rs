//! `exp`, `expm1`, `tanh` and `logistic`: x = n ln2 + r with |r| ≤ ln2/2 and a polynomial for expm1(r).

use super::coeffs::{EXPM1_F32, EXPM1_F64, LN2_F32, LN2_F64};
use super::Em;
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::Value;

/// Splits x into n ln2 + rh + rl, n an integer-valued float, |rh| ≤ ln2/2 (slightly more when the
/// rounding of x log2(e) in f32 picks the other neighbour) and rl = -n·ln2_lo.
fn reduce(m: &mut Em, x: Value) -> (Value, Value, Value) {
    let log2e = m.f(std::f64::consts::LOG2_E);
    let s = m.shifter();
    let t = m.fma(x, log2e, s);
    let n = m.sub(t, s);
    // With fma, x - n·ln2_hi is exact (|rh| < 1/2 and both have bits down to ulp(ln2_hi) or
    // ulp(x)). Keeping n·ln2_lo apart saves the half-ulp rounding of rh + rl, an error that
    // expm1(x) would see magnified near x = ±1/2, where e^x is several times expm1(x).
    let hi = m.fc(-LN2_F32[0], -LN2_F64[0]);
    let lo = m.fc(-LN2_F32[1], -LN2_F64[1]);
    let rh = m.fma(n, hi, x);
    let rl = m.mul(n, lo);
    (n, rh, rl)
}

/// expm1(r) = r + r²(1/2 + r P(r)) for |r| ≤ ln2/2.
pub(super) fn expm1_poly(m: &mut Em, r: Value) -> Value {
    let p = m.poly(r, &EXPM1_F32, &EXPM1_F64);
    let half = m.f(0.5);
    let q = m.fma(r, p, half);
    let r2 = m.mul(r, r);
    m.fma(r2, q, r)
}

/// expm1(rh + rl) = p + rl(1 + p), p = expm1(rh), for a tiny rl.
fn expm1_sum(m: &mut Em, rh: Value, rl: Value) -> Value {
    let p = expm1_poly(m, rh);
    let c = m.fma(rl, p, rl);
    m.add(p, c)
}

/// expm1(rh + rl) as hi + lo: the rounding of rh + rh²(...) is kept (|rh| exceeds the quadratic
/// part), since `expm1_core` doubles it when n = 1.
fn expm1_pair(m: &mut Em, rh: Value, rl: Value) -> (Value, Value) {
    let p = m.poly(rh, &EXPM1_F32, &EXPM1_F64);
    let half = m.f(0.5);
    let q = m.fma(rh, p, half);
    let r2 = m.mul(rh, rh);
    let a = m.mul(r2, q);
    let hi = m.add(rh, a);
    let d = m.sub(hi, rh);
    let lo = m.sub(a, d);
    let c = m.fma(rl, hi, rl);
    let lo = m.add(lo, c);
    (hi, lo)
}

/// e^x for x already clamped to a range where `scale` cannot wrap the exponent.
fn exp_clamped(m: &mut Em, x: Value) -> Value {
    let (n, rh, rl) = reduce(m, x);
    let p = expm1_sum(m, rh, rl);
    let one = m.f(1.0);
    let e = m.add(one, p);
    m.scale(e, n)
}

/// The clamp for `exp`: beyond it the result has over- or underflowed anyway, and within it n stays
/// within twice the exponent range, as `scale` needs.
fn exp_limit(m: &Em) -> f64 {
    if m.is64() {
        1000.0
    } else {
        120.0
    }
}

pub(super) fn exp(m: &mut Em, x: Value) -> Value {
    // Below this |x| the result is a normal number (n stays within the
    // exponent range), so 2^n scales in one step, exactly as `scale` would.
    let normal = m.f(if m.is64() { 708.0 } else { 87.0 });
    let a = m.abs(x);
    let ordinary = m.fcmp(FloatCC::LessThanOrEqual, a, normal);
    m.when_all(
        ordinary,
        |m| {
            let (n, rh, rl) = reduce(m, x);
            let p = expm1_sum(m, rh, rl);
            let one = m.f(1.0);
            let e = m.add(one, p);
            let s = m.pow2(n);
            m.mul(e, s)
        },
        |m| {
            let lim = exp_limit(m);
            let x = m.clamp(x, -lim, lim);
            exp_clamped(m, x)
        },
    )
}

/// expm1 without the clamp and the tiny-x fix-up, for x from -30 to 89 (f32) or -80 to 710 (f64).
///
/// The result is 2·(s p + (s - 1/2)) with s = 2^(n-1): s - 1/2 is exact for n up to the mantissa
/// width (beyond, the -1 hardly matters), and the exponent of s stays in range for n = 128 (1024),
/// which results just below the overflow threshold need. For n = 0 the halving of p is exact
/// unless p is subnormal (the callers take care of that).
fn expm1_core(m: &mut Em, x: Value) -> Value {
    let (n, rh, rl) = reduce(m, x);
    let (ph, pl) = expm1_pair(m, rh, rl);
    let one = m.f(1.0);
    let n1 = m.sub(n, one);
    let s = m.pow2(n1);
    let half = m.f(0.5);
    let sh = m.sub(s, half);
    let t = m.fma(s, ph, sh);
    let t = m.fma(s, pl, t);
    m.add(t, t)
}

pub(super) fn expm1(m: &mut Em, x: Value) -> Value {
    // Below the lower limit expm1 is -1 to within half an ulp; at the upper one it has overflowed
    // while n stays at most 128 (1024).
    let (lo, hi, tiny) = if m.is64() { (-80.0, 710.0, 2f64.powi(-54)) } else { (-30.0, 89.0, 2f64.powi(-25)) };
    let xc = m.clamp(x, lo, hi);
    let e = expm1_core(m, xc);
    // expm1(x) rounds to x for tiny x, which also keeps the sign of ±0 and subnormals exact.
    let a = m.abs(x);
    let tiny = m.f(tiny);
    let small = m.fcmp(FloatCC::LessThan, a, tiny);
    m.sel(small, x, e)
}

pub(super) fn tanh(m: &mut Em, x: Value) -> Value {
    // tanh(20) is 1 in f64 (and f32); the clamp keeps e^40 finite.
    let a = m.abs(x);
    let a = m.clamp_above(a, 20.0);
    let a2 = m.add(a, a);
    // t/(t+2) has no cancellation for small |x|, and for subnormal |x| t = 2|x| exactly.
    let t = expm1_core(m, a2);
    let two = m.f(2.0);
    let d = m.add(t, two);
    let r = m.div(t, d);
    // The rounding of t + 2 (dl, exact by two-sum) costs up to an ulp of r; take it out with
    // t/(d + dl) ≈ r - r·dl/d, where 1/d = (1 - r)/2 exactly.
    let bb = m.sub(d, t);
    let da = m.sub(d, bb);
    let ea = m.sub(t, da);
    let eb = m.sub(two, bb);
    let dl = m.add(ea, eb);
    let mhalf = m.f(-0.5);
    let half = m.f(0.5);
    let inv_d = m.fma(mhalf, r, half);
    let rdl = m.mul(r, dl);
    let nrdl = m.neg(rdl);
    let r = m.fma(nrdl, inv_d, r);
    let sign = m.sign_of(x);
    m.or(r, sign)
}

pub(super) fn logistic(m: &mut Em, x: Value) -> Value {
    // With E = e^-|x| ≤ 1 nothing overflows, and for very negative x the result E/(1+E) = E keeps
    // its subnormal bits.
    let a = m.abs(x);
    let na = m.neg(a);
    let e = exp(m, na);
    let one = m.f(1.0);
    let d = m.add(one, e);
    let zero = m.f(0.0);
    let neg = m.fcmp(FloatCC::LessThan, x, zero);
    let num = m.sel(neg, e, one);
    let q = m.div(num, d);
    // As in tanh: q·(1 - dl/d) with the exact rounding error dl of 1 + E, and 1/d = q (x ≥ 0) or
    // 1 - q (x < 0).
    let f = m.sub(d, one);
    let dl = m.sub(e, f);
    let omq = m.sub(one, q);
    let inv_d = m.sel(neg, omq, q);
    let qdl = m.mul(q, dl);
    let nqdl = m.neg(qdl);
    m.fma(nqdl, inv_d, q)
}
