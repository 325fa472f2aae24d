//! `sin` and `cos`: Cody-Waite reduction by π/2 in three parts, then a sine or cosine polynomial
//! on |r| ≤ π/4. Arguments too large for that reduction are computed by Rust's `f64` functions,
//! one lane at a time, as the reference interpreter computes them.

use super::coeffs::{COS_F32, COS_F64, PIO2_F32, PIO2_F64, SIN_F32, SIN_F64};
use super::Em;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, AbiParam, InstBuilder, Signature, Value};

/// Above this |x| the inline reduction is not used. Below it q = round(x·2/π) fits the shifter,
/// x - q·c1 is still exact and the rounding of 2/π moves q by at most one: measured within the
/// bounds of the module's table (2.5 ulp in f32, 1.5 in f64) below this cut, and within 4.5 ulp
/// in the octave above it, where the reduction still works but is no longer held to them.
pub(super) fn cut(m: &Em) -> f64 {
    if m.is64() {
        2f64.powi(48)
    } else {
        2f64.powi(21)
    }
}

extern "C" fn sin_f32(x: f32) -> f32 {
    (x as f64).sin() as f32
}

extern "C" fn cos_f32(x: f32) -> f32 {
    (x as f64).cos() as f32
}

extern "C" fn sin_f64(x: f64) -> f64 {
    x.sin()
}

extern "C" fn cos_f64(x: f64) -> f64 {
    x.cos()
}

/// sin(x), or cos(x) when `cos`. When a lane's |x| is past [`cut`] (±inf included), that lane
/// comes from Rust's function instead, called once per such vector for every lane and selected
/// lane by lane, so that no lane's result depends on its neighbours.
pub(super) fn sin_cos(m: &mut Em, x: Value, cos: bool) -> Value {
    let a = m.abs(x);
    let cut = m.f(cut(m));
    // NaN lanes stay inline (they give NaN there).
    let inline = m.fcmp(FloatCC::UnorderedOrLessThanOrEqual, a, cut);
    let v = reduced(m, x, a, cos);
    m.when_all(
        inline,
        |_| v,
        |m| {
            let by_call = call_per_lane(m, x, cos);
            m.sel(inline, v, by_call)
        },
    )
}

/// Rust's sin or cos of every lane of `x`, one call per lane through the function's address
/// (a function of this process, which outlives the generated code).
fn call_per_lane(m: &mut Em, x: Value, cos: bool) -> Value {
    let lane_ty = m.ty.lane_type();
    let f: usize = match (lane_ty == types::F64, cos) {
        (false, false) => sin_f32 as extern "C" fn(f32) -> f32 as usize,
        (false, true) => cos_f32 as extern "C" fn(f32) -> f32 as usize,
        (true, false) => sin_f64 as extern "C" fn(f64) -> f64 as usize,
        (true, true) => cos_f64 as extern "C" fn(f64) -> f64 as usize,
    };
    let mut sig = Signature::new(m.b.func.signature.call_conv);
    sig.params.push(AbiParam::new(lane_ty));
    sig.returns.push(AbiParam::new(lane_ty));
    let sig = m.b.import_signature(sig);
    let addr = m.b.ins().iconst(types::I64, f as i64);
    let call = |m: &mut Em, xl: Value| -> Value {
        let c = m.b.ins().call_indirect(sig, addr, &[xl]);
        m.b.inst_results(c)[0]
    };
    if !m.ty.is_vector() {
        return call(m, x);
    }
    let mut out = x;
    for lane in 0..m.ty.lane_count() as u8 {
        let xl = m.b.ins().extractlane(x, lane);
        let yl = call(m, xl);
        out = m.b.ins().insertlane(out, yl, lane);
    }
    out
}

/// sin(x) or cos(x) by the inline reduction, for |x| ≤ [`cut`] (`a` is |x|).
fn reduced(m: &mut Em, x: Value, a: Value, cos: bool) -> Value {
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
