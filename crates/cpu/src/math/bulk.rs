//! `exp` and `log` of f32 over a whole row, as native functions compiled for the CPU's widest
//! vectors (AVX-512 or AVX2, with FMA), which kernels call on a row buffer instead of computing
//! the function inline on Cranelift's 128-bit vectors.
//!
//! Each is the inline function's common path (see `exp.rs` and `log.rs`), operation for
//! operation: the same constants, the same `fma`s and roundings, so the same bits (the tests
//! compare them with the inline code). Like the inline code, a row with an argument outside the
//! common path (an `exp` beyond ±87, a `log` of a non-positive, subnormal, infinite or NaN value)
//! is not finished here: the function says so, and the kernel computes that row inline.

use super::coeffs::{EXPM1_F32, LN2_F32, LOG_F32};

/// `out[i] = f(inp[i])` for `i < n`; returns 1 when every argument was on the common path (and
/// `out` holds the results), 0 otherwise (and `out` holds nothing of use).
pub(crate) type RowFn = unsafe extern "C" fn(inp: *const f32, out: *mut f32, n: i64) -> i32;

/// The functions a kernel may call over a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RowOp {
    Exp,
    Log,
}

/// The native row function for `op` on this CPU, if it has vectors wider than Cranelift's (and
/// FMA, without which `mul_add` would be a library call).
pub(crate) fn row_fn(op: RowOp) -> Option<RowFn> {
    #[cfg(target_arch = "x86_64")]
    {
        let wide = if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            Width::Avx512
        } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            Width::Avx2
        } else {
            return None;
        };
        let f: RowFn = match (op, wide) {
            (RowOp::Exp, Width::Avx512) => exp_avx512,
            (RowOp::Exp, Width::Avx2) => exp_avx2,
            (RowOp::Log, Width::Avx512) => log_avx512,
            (RowOp::Log, Width::Avx2) => log_avx2,
        };
        Some(f)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = op;
        None
    }
}

/// Every variant of the row function for `op` this CPU can run, by name.
#[cfg(test)]
pub(super) fn variants(op: RowOp) -> Vec<(&'static str, RowFn)> {
    let mut v: Vec<(&'static str, RowFn)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        let fma = std::arch::is_x86_feature_detected!("fma");
        if fma && std::arch::is_x86_feature_detected!("avx512f") {
            v.push(("avx512", if op == RowOp::Exp { exp_avx512 } else { log_avx512 }));
        }
        if fma && std::arch::is_x86_feature_detected!("avx2") {
            v.push(("avx2", if op == RowOp::Exp { exp_avx2 } else { log_avx2 }));
        }
    }
    let _ = op;
    v
}

/// Whether `x` is on `op`'s common path, where its row function computes it.
#[cfg(test)]
pub(super) fn common(op: RowOp, x: f32) -> bool {
    match op {
        RowOp::Exp => exp_ok(x),
        RowOp::Log => log_ok(x),
    }
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Width {
    Avx512,
    Avx2,
}

const SHIFTER: f32 = 12582912.0;
const BIAS: u32 = 127;
const MANT: u32 = 23;
const SQRT_HALF_BITS: u32 = std::f32::consts::FRAC_1_SQRT_2.to_bits();

/// Horner's rule with `fma`, as `Em::poly`.
#[inline(always)]
fn poly<const N: usize>(x: f32, c: &[f32; N]) -> f32 {
    let mut acc = c[N - 1];
    for i in (0..N - 1).rev() {
        acc = acc.mul_add(x, c[i]);
    }
    acc
}

/// `2^n` from `t = n + SHIFTER`, as `Em::pow2_shifted`.
#[inline(always)]
fn pow2_shifted(t: f32) -> f32 {
    f32::from_bits(t.to_bits().wrapping_add(BIAS).wrapping_shl(MANT))
}

/// `exp`'s common path (`exp::exp`, fast branch): right for |x| ≤ 87.
#[inline(always)]
fn exp_common(x: f32) -> f32 {
    let t = x.mul_add(std::f64::consts::LOG2_E as f32, SHIFTER);
    let n = t - SHIFTER;
    let rh = n.mul_add(-LN2_F32[0], x);
    let rl = n * -LN2_F32[1];
    let p = poly(rh, &EXPM1_F32);
    let q = rh.mul_add(p, 0.5);
    let r2 = rh * rh;
    let p = r2.mul_add(q, rh);
    let c = rl.mul_add(p, rl);
    let p = p + c;
    let e = 1.0 + p;
    e * pow2_shifted(n + SHIFTER)
}

/// `log`'s common path (`log::log`, fast branch): right for positive, normal, finite x.
#[inline(always)]
fn log_common(x: f32) -> f32 {
    // `log::split`.
    let k = x.to_bits().wrapping_add((BIAS << MANT).wrapping_sub(SQRT_HALF_BITS));
    let eb = k >> MANT;
    let mb = (k & ((1 << MANT) - 1)).wrapping_add(SQRT_HALF_BITS);
    let f = f32::from_bits(mb) - 1.0;
    let ef = f32::from_bits(eb.wrapping_add((BIAS + MANT) << MANT));
    let e = ef - ((1u32 << MANT) as f32 + BIAS as f32);
    // `log::log_reduced` with c = 0.
    let u = f + 2.0;
    let s = f / u;
    let z = s * s;
    let r = z * poly(z, &LOG_F32);
    let hfsq = (f * 0.5) * f;
    let lo = e.mul_add(LN2_F32[1], 0.0);
    let inner = s.mul_add(hfsq + r, lo);
    let v = f - (hfsq - inner);
    e.mul_add(LN2_F32[0], v)
}

#[inline(always)]
fn exp_ok(x: f32) -> bool {
    x.abs() <= 87.0
}

#[inline(always)]
fn log_ok(x: f32) -> bool {
    (f32::MIN_POSITIVE..=f32::MAX).contains(&x)
}

/// Elements per step of the loop both functions share: one AVX-512 vector, two AVX2 ones.
const STEP: usize = 16;

/// The loop both functions share, over whole steps of [`STEP`] elements: a row's last partial
/// step is the whole step that ends with the row (or, in a row shorter than a step, one padded
/// with `pad`, an argument on the common path). Each step is one run of straight-line vector
/// code (no early exit, the check folded into one flag).
#[inline(always)]
unsafe fn map_row(
    inp: *const f32,
    out: *mut f32,
    n: i64,
    pad: f32,
    f: impl Fn(f32) -> f32,
    ok: impl Fn(f32) -> bool,
) -> i32 {
    let n = usize::try_from(n).unwrap_or(0);
    // SAFETY: the caller hands `n` readable elements at `inp` and `n` writable ones at `out`,
    // not overlapping.
    let (inp, out) = unsafe { (std::slice::from_raw_parts(inp, n), std::slice::from_raw_parts_mut(out, n)) };
    let step = |x: &[f32; STEP], y: &mut [f32; STEP]| {
        let mut all = true;
        for j in 0..STEP {
            all &= ok(x[j]);
            y[j] = f(x[j]);
        }
        all
    };
    let mut all = true;
    let mut xs = inp.chunks_exact(STEP);
    let mut ys = out.chunks_exact_mut(STEP);
    for (x, y) in (&mut xs).zip(&mut ys) {
        let (Ok(x), Ok(y)) = (<&[f32; STEP]>::try_from(x), <&mut [f32; STEP]>::try_from(y)) else { return 0 };
        all &= step(x, y);
    }
    let rest = xs.remainder().len();
    if rest > 0 && n >= STEP {
        // The last whole step again, ending at the row's end: its first
        // results are written twice, with the same values.
        let (x, y) = (&inp[n - STEP..], &mut out[n - STEP..]);
        let (Ok(x), Ok(y)) = (<&[f32; STEP]>::try_from(x), <&mut [f32; STEP]>::try_from(y)) else { return 0 };
        all &= step(x, y);
    } else if rest > 0 {
        let mut x = [pad; STEP];
        let mut y = [0.0; STEP];
        x[..rest].copy_from_slice(&inp[n - rest..]);
        all &= step(&x, &mut y);
        out[n - rest..].copy_from_slice(&y[..rest]);
    }
    i32::from(all)
}

macro_rules! row_fns {
    ($($name:ident, $features:literal, $f:ident, $ok:ident, $pad:literal;)*) => {$(
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe extern "C" fn $name(inp: *const f32, out: *mut f32, n: i64) -> i32 {
            // SAFETY: passed on from the caller (see `RowFn`).
            unsafe { map_row(inp, out, n, $pad, $f, $ok) }
        }
    )*};
}

row_fns! {
    exp_avx512, "avx512f,fma", exp_common, exp_ok, 0.0;
    exp_avx2, "avx2,fma", exp_common, exp_ok, 0.0;
    log_avx512, "avx512f,fma", log_common, log_ok, 1.0;
    log_avx2, "avx2,fma", log_common, log_ok, 1.0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_paths_give_std_results_to_an_ulp() {
        for i in 0..20000 {
            let x = -87.0 + 174.0 * i as f32 / 20000.0;
            let (got, want) = (exp_common(x), (x as f64).exp());
            assert!((got as f64 - want).abs() <= 1.5 * ulp(want as f32), "exp({x}) = {got}, want {want}");
            let y = f32::from_bits(0x0080_0000 + i * ((0x7f7f_ffff - 0x0080_0000) / 20000));
            let (got, want) = (log_common(y), (y as f64).ln());
            assert!((got as f64 - want).abs() <= ulp(want as f32), "log({y}) = {got}, want {want}");
        }
    }

    fn ulp(x: f32) -> f64 {
        let a = x.abs();
        (f32::from_bits(a.to_bits() + 1) - a) as f64
    }
}
