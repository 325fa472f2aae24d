//! `pow`: f32 as exp(y·ln|x|) in f64; f64 with a double-double ln|x| feeding an exp that takes a
//! double-double argument; then C's special cases.

use super::coeffs::{LN2_F64, LN2_POW_F64, LOG_TAIL_F64, TWO_THIRDS_F64};
use super::exp::expm1_poly;
use super::log::{exponent_offset, split};
use super::{exp, log, Em};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, ConstantData, InstBuilder, Value};

pub(super) fn pow(m: &mut Em, x: Value, y: Value) -> Value {
    match m.ty {
        types::F32 => {
            let xd = m.b.ins().fpromote(types::F64, x);
            let yd = m.b.ins().fpromote(types::F64, y);
            let r = pow_via_f64(&mut m.with_type(types::F64), xd, yd);
            m.b.ins().fdemote(types::F32, r)
        }
        types::F32X4 => {
            let (xl, xh) = halves(m, x);
            let (yl, yh) = halves(m, y);
            let rl = pow_via_f64(&mut m.with_type(types::F64X2), xl, yl);
            let rh = pow_via_f64(&mut m.with_type(types::F64X2), xh, yh);
            let rl = m.b.ins().fvdemote(rl);
            let rh = m.b.ins().fvdemote(rh);
            // Lanes 0-1 of each demoted half, side by side.
            shuffle(m, rl, rh, [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23])
        }
        _ => pow_f64(m, x, y),
    }
}

/// A byte shuffle of two F32X4 values.
fn shuffle(m: &mut Em, a: Value, b: Value, bytes: [u8; 16]) -> Value {
    let a = m.b.ins().bitcast(types::I8X16, super::le(), a);
    let b = m.b.ins().bitcast(types::I8X16, super::le(), b);
    let imm = m.b.func.dfg.immediates.push(ConstantData::from(&bytes[..]));
    let s = m.b.ins().shuffle(a, b, imm);
    m.b.ins().bitcast(types::F32X4, super::le(), s)
}

/// An F32X4 as two F64X2 (lanes 0-1, lanes 2-3).
fn halves(m: &mut Em, x: Value) -> (Value, Value) {
    let lo = m.b.ins().fvpromote_low(x);
    let up = shuffle(m, x, x, [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
    let hi = m.b.ins().fvpromote_low(up);
    (lo, hi)
}

/// f32 pow computed in f64: ln|x| to about 1 ulp of f64 gives y·ln|x| an error far below f32's
/// ulp for every result that does not over- or underflow f32.
fn pow_via_f64(m: &mut Em, x: Value, y: Value) -> Value {
    let a = m.abs(x);
    let l = log::log_positive(m, a);
    let w = m.mul(y, l);
    let mag = exp::exp(m, w);
    special_cases(m, x, y, mag)
}

fn pow_f64(m: &mut Em, x: Value, y: Value) -> Value {
    let a = m.abs(x);
    let (lh, ll) = log_dd(m, a);
    let wh = m.mul(y, lh);
    let nwh = m.neg(wh);
    let we = m.fma(y, lh, nwh);
    let wl = m.fma(y, ll, we);
    let mag = exp_dd(m, wh, wl);
    special_cases(m, x, y, mag)
}

/// ln a as hi + lo with a relative error near 2^-64, for a > 0 finite (subnormals prescaled).
///
/// log1p(f) = 2s + 2s³/3 + s z² T(z) with s = f/(2+f): s and s³·2/3 are carried as
/// double-doubles, the tail (under 2^-12 of the result) in plain f64.
fn log_dd(m: &mut Em, a: Value) -> (Value, Value) {
    let min = m.f(f64::MIN_POSITIVE);
    let sub = m.fcmp(FloatCC::LessThan, a, min);
    let pre = m.f(2f64.powi(54));
    let scaled = m.mul(a, pre);
    let a = m.sel(sub, scaled, a);
    let off = exponent_offset(m);
    let off_sub = m.f(off + 54.0);
    let off = m.f(off);
    let off = m.sel(sub, off_sub, off);
    let (f, e) = split(m, a, off);

    // 2 + f = uh + ul exactly (|f| < 2).
    let two = m.f(2.0);
    let uh = m.add(f, two);
    let t = m.sub(uh, two);
    let ul = m.sub(f, t);
    // s = sh + sl: sh needs no correct rounding, the residual f - sh·u recovers the rest.
    let one = m.f(1.0);
    let rcp = m.div(one, uh);
    let sh = m.mul(f, rcp);
    let nsh = m.neg(sh);
    let rho = m.fma(nsh, uh, f);
    let rho = m.fma(nsh, ul, rho);
    let sl = m.mul(rho, rcp);

    // z = s² = p + zl, s³ = t3 + t3l.
    let p = m.mul(sh, sh);
    let np = m.neg(p);
    let pe = m.fma(sh, sh, np);
    let shsl = m.mul(sh, sl);
    let zl = m.fma(shsl, two, pe);
    let t3 = m.mul(sh, p);
    let nt3 = m.neg(t3);
    let t3e = m.fma(sh, p, nt3);
    let t3l = m.fma(sh, zl, t3e);
    let t3l = m.fma(sl, p, t3l);

    // 2s³/3 = v + vl.
    let c = m.f(TWO_THIRDS_F64[0]);
    let cl = m.f(TWO_THIRDS_F64[1]);
    let v = m.mul(c, t3);
    let nv = m.neg(v);
    let ve = m.fma(c, t3, nv);
    let vl = m.fma(c, t3l, ve);
    let vl = m.fma(cl, t3, vl);

    // s z² T(z) = s³ z T(z).
    let tp = m.poly(p, &[], &LOG_TAIL_F64);
    let t3p = m.mul(t3, p);
    let tail = m.mul(t3p, tp);

    // 2sh + v (|2sh| ≥ |v|, so the fast two-sum is exact), then the small terms.
    let h = m.add(sh, sh);
    let h1 = m.add(h, v);
    let d = m.sub(h1, h);
    let l1 = m.sub(v, d);
    let small = m.add(vl, tail);
    let small = m.fma(sl, two, small);
    let l1 = m.add(l1, small);

    // + e·ln2: e·ln2_hi is exact (ln2_hi has 42 bits, |e| < 2^11) and |e ln2| ≥ |h1| when e ≠ 0.
    let ln2h = m.f(LN2_POW_F64[0]);
    let ln2l = m.f(LN2_POW_F64[1]);
    let eh = m.mul(e, ln2h);
    let hi = m.add(eh, h1);
    let d = m.sub(hi, eh);
    let lo = m.sub(h1, d);
    let lo = m.add(lo, l1);
    let lo = m.fma(e, ln2l, lo);
    // The tail (up to 2^-12 of the result) sits in lo: renormalise so |lo| ≤ ulp(hi), as exp_dd needs.
    let h = m.add(hi, lo);
    let d = m.sub(h, hi);
    let l = m.sub(lo, d);
    (h, l)
}

/// e^(wh + wl) for |wl| ≤ ulp(wh): with r = rh + rl, e^r = (1 + p)(1 + rl), p = expm1(rh).
fn exp_dd(m: &mut Em, wh: Value, wl: Value) -> Value {
    // Beyond ±1000 the result has saturated; the low part is dropped there, as it may be NaN when
    // y·ln|x| overflowed.
    let a = m.abs(wh);
    let lim = m.f(1000.0);
    let big = m.fcmp(FloatCC::GreaterThan, a, lim);
    let zero = m.f(0.0);
    let wl = m.sel(big, zero, wl);
    let wh = m.clamp(wh, -1000.0, 1000.0);
    let log2e = m.f(std::f64::consts::LOG2_E);
    let s = m.shifter();
    let t = m.fma(wh, log2e, s);
    let n = m.sub(t, s);
    // wh - n·ln2_hi is exact (as in `exp::reduce`); n·ln2_lo goes with wl into rl.
    let hi = m.f(-LN2_F64[0]);
    let lo = m.f(-LN2_F64[1]);
    let rh = m.fma(n, hi, wh);
    let rl = m.fma(n, lo, wl);
    let p = expm1_poly(m, rh);
    let q = m.fma(rl, p, rl);
    let s = m.add(p, q);
    let one = m.f(1.0);
    let e = m.add(one, s);
    m.scale(e, n)
}

/// C99 `pow` special cases around the magnitude `mag` = e^(y ln|x|) (in f64).
fn special_cases(m: &mut Em, x: Value, y: Value, mag: Value) -> Value {
    let zero = m.f(0.0);
    let one = m.f(1.0);
    let inf = m.f(f64::INFINITY);
    let nan = m.f(f64::NAN);
    let ax = m.abs(x);
    let ty = m.trunc(y);
    let is_int = m.fcmp(FloatCC::Equal, ty, y);
    let not_int = m.fcmp(FloatCC::NotEqual, ty, y);
    let half = m.f(0.5);
    let yh = m.mul(y, half);
    let th = m.trunc(yh);
    let half_frac = m.fcmp(FloatCC::NotEqual, th, yh);
    let odd = m.and(is_int, half_frac);

    // x = ±0, ±inf or y = ±inf: y·ln|x| is ±inf, so the result is +inf or 0 by its sign.
    let x0 = m.fcmp(FloatCC::Equal, ax, zero);
    let xinf = m.fcmp(FloatCC::Equal, ax, inf);
    let ay = m.abs(y);
    let yinf = m.fcmp(FloatCC::Equal, ay, inf);
    let ext = m.or(x0, xinf);
    let ext = m.or(ext, yinf);
    let yneg = m.fcmp(FloatCC::LessThan, y, zero);
    let xbig = m.fcmp(FloatCC::GreaterThanOrEqual, ax, one);
    let up = m.xor(yneg, xbig);
    let ev = m.sel(up, inf, zero);
    let mag = m.sel(ext, ev, mag);
    let x1 = m.fcmp(FloatCC::Equal, ax, one);
    let mag = m.sel(x1, one, mag);

    // A negative base keeps its sign for odd integer y, and has no real power for non-integer y.
    let sx = m.sign_of(x);
    let sgn = m.sel(odd, sx, zero);
    let r = m.xor(mag, sgn);
    let xneg = m.fcmp(FloatCC::LessThan, x, zero);
    let ninf = m.f(f64::NEG_INFINITY);
    let xfin = m.fcmp(FloatCC::GreaterThan, x, ninf);
    let bad = m.and(xneg, xfin);
    let bad = m.and(bad, not_int);
    let r = m.sel(bad, nan, r);
    let uno = m.fcmp(FloatCC::Unordered, x, y);
    let r = m.sel(uno, nan, r);
    // pow(x, ±0) = 1 and pow(1, y) = 1 even for NaN.
    let y0 = m.fcmp(FloatCC::Equal, y, zero);
    let r = m.sel(y0, one, r);
    let xp1 = m.fcmp(FloatCC::Equal, x, one);
    m.sel(xp1, one, r)
}
