//! `sin` and `cos`: Cody-Waite reduction by π/2 in three parts, then a sine or cosine polynomial on |r| ≤ π/4.

use super::coeffs::{COS_F32, COS_F64, PIO2_F32, PIO2_F64, SIN_F32, SIN_F64};
use super::Em;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::Value;

/// Above this |x| the reduction is abandoned and r is taken as 0 (the result is then 0 or ±1 by
/// the quadrant bits). Below it q = round(x·2/π) fits the shifter, x - q·c1 is still exact and
/// the rounding of 2/π moves q by at most one (measured: within 4.5 ulp; within 1.5 ulp below
/// half the cut-off).
pub(super) fn cut(m: &Em) -> f64 {
    if m.is64() {
        2f64.powi(49)
    } else {
        2f64.powi(22)
    }
}

/// sin(x), or cos(x) when `cos` (cos x = sin(x + π/2): the same with the quadrant one further).
pub(super) fn sin_cos(m: &mut Em, x: Value, cos: bool) -> Value {
    let two_over_pi = m.f(std::f64::consts::FRAC_2_PI);
    let s = m.shifter();
    let t = m.fma(x, two_over_pi, s);
    let q = m.sub(t, s);
    // c1 + c2 + c3 carry π/2 to about 3 × 24 (53) bits; with fma each step rounds only its result,
    // and the first is exact (see `cut`).
    let mut r = x;
    for k in 0..3 {
        let c = m.fc(-PIO2_F32[k], -PIO2_F64[k]);
        r = m.fma(q, c, r);
    }
    // For huge x a finite garbage r would leave the polynomials' range: take 0 instead (x·0 also
    // turns ±inf into the NaN that sin(±inf) must be).
    let a = m.abs(x);
    let cut = m.f(cut(m));
    let huge = m.fcmp(FloatCC::GreaterThan, a, cut);
    let zero = m.f(0.0);
    let x0 = m.mul(x, zero);
    let r = m.sel(huge, x0, r);

    let z = m.mul(r, r);
    let sp = m.poly(z, &SIN_F32, &SIN_F64);
    let rz = m.mul(r, z);
    let sin_r = m.fma(rz, sp, r);
    let cp = m.poly(z, &COS_F32, &COS_F64);
    let mhalf = m.f(-0.5);
    let ci = m.fma(z, cp, mhalf);
    let one = m.f(1.0);
    // 1 + z(-1/2 + z P) never rounds above 1, so |cos| ≤ 1 holds even for a garbage r.
    let cos_r = m.fma(z, ci, one);

    // The quadrant is q mod 4, read from the shifter's low mantissa bits.
    let mut qi = m.bits(t);
    if cos {
        let one_i = m.i(1);
        qi = m.iadd(qi, one_i);
    }
    let one_i = m.i(1);
    let odd = m.and(qi, one_i);
    let zero_i = m.i(0);
    let odd = m.icmp(IntCC::NotEqual, odd, zero_i);
    let v = m.sel(odd, cos_r, sin_r);
    let two_i = m.i(2);
    let neg = m.and(qi, two_i);
    let neg = m.ishl(neg, m.ty.lane_bits() as i64 - 2);
    let vb = m.bits(v);
    let vb = m.xor(vb, neg);
    let v = m.float(vb);
    if cos {
        return v;
    }
    // sin(x) rounds to x for tiny x; this also keeps the sign of -0, which r + r·z·P loses.
    let tiny = m.f(if m.is64() { 2f64.powi(-26) } else { 2f64.powi(-12) });
    let small = m.fcmp(FloatCC::LessThan, a, tiny);
    m.sel(small, x, v)
}
