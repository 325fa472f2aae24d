//! `exp`, `log`, `tanh`, `logistic`, `log1p`, `expm1`, `sin` and `cos` over a whole row, as
//! native functions compiled for the CPU's widest vectors (AVX-512 or AVX2, with FMA), which
//! kernels call on a row buffer instead of computing the function inline on Cranelift's 128-bit
//! vectors.
//!
//! Each is the inline function's common path (see `exp.rs`, `log.rs` and `trig.rs`), operation
//! for operation: the same constants, the same `fma`s and roundings, so the same bits (the tests
//! compare them with the inline code). Like the inline code, a row with an argument outside the
//! common path (an `exp` beyond the normal range, a `log` of a non-positive, subnormal, infinite
//! or NaN value, a NaN for `tanh` or `expm1`, a `sin` past the inline reduction; see `ok`) is not
//! finished here: the function says so, and the kernel computes that row inline.

use super::coeffs::{
    COS_F32, COS_F64, EXPM1_F32, EXPM1_F64, LN2_F32, LN2_F64, LOG_F32, LOG_F64, PIO2_F32, PIO2_F64, SIN_F32, SIN_F64,
};
use crate::width::{widest, Width};
use arrayjit_ir::prim::Elementwise;
use arrayjit_ir::DType;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// `out[i] = f(inp[i])` for `i < n` elements of the function's dtype; returns 1 when every
/// argument was on the common path (and `out` holds the results), 0 otherwise (and `out` holds
/// nothing of use).
pub(crate) type RowFn = unsafe extern "C" fn(inp: *const u8, out: *mut u8, n: i64) -> i32;

/// The functions a kernel may call over a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RowOp {
    Exp,
    Log,
    Tanh,
    Logistic,
    Log1p,
    Expm1,
    Sin,
    Cos,
}

impl RowOp {
    /// The row function computing `op`, if there is one.
    pub(crate) fn of(op: Elementwise) -> Option<RowOp> {
        Some(match op {
            Elementwise::Exp => RowOp::Exp,
            Elementwise::Log => RowOp::Log,
            Elementwise::Tanh => RowOp::Tanh,
            Elementwise::Logistic => RowOp::Logistic,
            Elementwise::Log1p => RowOp::Log1p,
            Elementwise::Expm1 => RowOp::Expm1,
            Elementwise::Sin => RowOp::Sin,
            Elementwise::Cos => RowOp::Cos,
            _ => return None,
        })
    }

    /// The operation this function computes.
    pub(crate) fn elementwise(self) -> Elementwise {
        match self {
            RowOp::Exp => Elementwise::Exp,
            RowOp::Log => Elementwise::Log,
            RowOp::Tanh => Elementwise::Tanh,
            RowOp::Logistic => Elementwise::Logistic,
            RowOp::Log1p => Elementwise::Log1p,
            RowOp::Expm1 => Elementwise::Expm1,
            RowOp::Sin => Elementwise::Sin,
            RowOp::Cos => Elementwise::Cos,
        }
    }
}

/// The native row function for `op` of `d` (f32 or f64) on this CPU, if it has vectors wider
/// than Cranelift's (and FMA, without which `mul_add` would be a library call).
pub(crate) fn row_fn(op: RowOp, d: DType) -> Option<RowFn> {
    widest().and_then(|w| variant(op, d, w))
}

/// Every variant of the row function for `op` of `d` this CPU can run, by name.
#[cfg(test)]
pub(super) fn variants(op: RowOp, d: DType) -> Vec<(&'static str, RowFn)> {
    crate::width::widths()
        .into_iter()
        .filter_map(|w| Some((if w == Width::Avx512 { "avx512" } else { "avx2" }, variant(op, d, w)?)))
        .collect()
}

#[cfg(target_arch = "x86_64")]
fn variant(op: RowOp, d: DType, w: Width) -> Option<RowFn> {
    match w {
        Width::Avx512 => avx512::get(op, d),
        Width::Avx2 => avx2::get(op, d),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn variant(_: RowOp, _: DType, _: Width) -> Option<RowFn> {
    None
}

/// Whether `x` is on `op`'s common path, where its row function computes it.
#[cfg(test)]
pub(super) fn common<T: Real>(op: RowOp, x: T) -> bool {
    ok(op, x)
}

/// The two float types, with what the functions need of their bits.
pub(super) trait Real:
    'static
    + Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// The round-to-integer shifter 1.5·2^mant (`Em::shifter`).
    const SHIFTER: Self;
    const LN2: [Self; 2];
    const EXPM1: &'static [Self];
    const LOG: &'static [Self];
    /// Below this |x|, `exp(x)` is a normal number (`exp::exp`'s branch).
    const EXP_NORMAL: Self;
    /// `exp::expm1`'s clamp, and the |x| below which it is x.
    const EXPM1_RANGE: [Self; 2];
    const EXPM1_TINY: Self;
    /// Below this |x|, `log1p(x)` is x (`log::log1p`'s branch).
    const LOG1P_TINY: Self;
    /// π/2 in three parts, and the sine and cosine polynomials (`trig::reduced`).
    const PIO2: [Self; 3];
    const SIN: &'static [Self];
    const COS: &'static [Self];
    /// Up to this |x| the inline reduction is used (`trig::cut`); below `SIN_TINY`, sin(x) is x.
    const TRIG_CUT: Self;
    const SIN_TINY: Self;
    const MIN_POSITIVE: Self;
    const MAX: Self;
    /// `v` rounded to this type, as `Em::f` makes constants.
    fn c(v: f64) -> Self;
    fn mul_add(self, a: Self, b: Self) -> Self;
    fn abs(self) -> Self;
    fn is_nan(self) -> bool;
    /// `Em::pow2_shifted`.
    fn pow2_shifted(t: Self) -> Self;
    /// `log::split` with the plain exponent offset: (f, e).
    fn split(x: Self) -> (Self, Self);
    /// `r` with the sign bit of `x` or-ed in (`Em::sign_of`, `Em::or`).
    fn or_sign(r: Self, x: Self) -> Self;
    /// The sine or cosine of x from those of r, for the quadrant q + `shift` held in the low
    /// bits of `t` (`trig::reduced`).
    fn quadrant(t: Self, shift: u32, sin_r: Self, cos_r: Self) -> Self;
}

macro_rules! real {
    ($t:ty, bits $bits:ty, mant $mant:expr, bias $bias:expr, expm1 $expm1:ident, log $log:ident, ln2 $ln2:ident,
     exp_normal $normal:expr, sqrt_half $sqrt_half:expr, expm1_range $expm1_range:expr,
     expm1_tiny $expm1_tiny:expr, log1p_tiny $log1p_tiny:expr, pio2 $pio2:ident, sin $sin:ident,
     cos $cos:ident, trig_cut $trig_cut:expr, sin_tiny $sin_tiny:expr) => {
        impl Real for $t {
            const SHIFTER: $t = 1.5 * (1u64 << $mant) as $t;
            const LN2: [$t; 2] = $ln2;
            const EXPM1: &'static [$t] = &$expm1;
            const LOG: &'static [$t] = &$log;
            const EXP_NORMAL: $t = $normal;
            const EXPM1_RANGE: [$t; 2] = $expm1_range;
            const EXPM1_TINY: $t = $expm1_tiny;
            const LOG1P_TINY: $t = $log1p_tiny;
            const PIO2: [$t; 3] = $pio2;
            const SIN: &'static [$t] = &$sin;
            const COS: &'static [$t] = &$cos;
            const TRIG_CUT: $t = $trig_cut;
            const SIN_TINY: $t = $sin_tiny;
            const MIN_POSITIVE: $t = <$t>::MIN_POSITIVE;
            const MAX: $t = <$t>::MAX;
            #[inline(always)]
            fn c(v: f64) -> $t {
                v as $t
            }
            #[inline(always)]
            fn mul_add(self, a: $t, b: $t) -> $t {
                <$t>::mul_add(self, a, b)
            }
            #[inline(always)]
            fn abs(self) -> $t {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline(always)]
            fn pow2_shifted(t: $t) -> $t {
                <$t>::from_bits(t.to_bits().wrapping_add($bias).wrapping_shl($mant))
            }
            #[inline(always)]
            fn split(x: $t) -> ($t, $t) {
                let sqrt_half: $bits = $sqrt_half.to_bits();
                let k = x.to_bits().wrapping_add((($bias as $bits) << $mant).wrapping_sub(sqrt_half));
                let eb = k >> $mant;
                let mb = (k & (((1 as $bits) << $mant) - 1)).wrapping_add(sqrt_half);
                let f = <$t>::from_bits(mb) - 1.0;
                let ef = <$t>::from_bits(eb.wrapping_add((($bias + $mant) as $bits) << $mant));
                let off = ((1 as $bits) << $mant) as $t + $bias as $t;
                (f, ef - off)
            }
            #[inline(always)]
            fn quadrant(t: $t, shift: u32, sin_r: $t, cos_r: $t) -> $t {
                let q = t.to_bits().wrapping_add(shift as $bits);
                let v = if q & 1 != 0 { cos_r } else { sin_r };
                let neg = (q & 2) << (<$bits>::BITS - 2);
                <$t>::from_bits(v.to_bits() ^ neg)
            }
            #[inline(always)]
            fn or_sign(r: $t, x: $t) -> $t {
                <$t>::from_bits(r.to_bits() | (x.to_bits() & (-0.0 as $t).to_bits()))
            }
        }
    };
}

real! {
    f32, bits u32, mant 23, bias 127, expm1 EXPM1_F32, log LOG_F32, ln2 LN2_F32, exp_normal 87.0,
    sqrt_half std::f32::consts::FRAC_1_SQRT_2, expm1_range [-30.0, 89.0],
    expm1_tiny 1.0 / (1u64 << 25) as f32, log1p_tiny 1.0 / (1u64 << 24) as f32, pio2 PIO2_F32,
    sin SIN_F32, cos COS_F32, trig_cut (1u64 << 21) as f32, sin_tiny 1.0 / (1u64 << 12) as f32
}
real! {
    f64, bits u64, mant 52, bias 1023, expm1 EXPM1_F64, log LOG_F64, ln2 LN2_F64, exp_normal 708.0,
    sqrt_half std::f64::consts::FRAC_1_SQRT_2, expm1_range [-80.0, 710.0],
    expm1_tiny 1.0 / (1u64 << 54) as f64, log1p_tiny 1.0 / (1u64 << 53) as f64, pio2 PIO2_F64,
    sin SIN_F64, cos COS_F64, trig_cut (1u64 << 48) as f64, sin_tiny 1.0 / (1u64 << 26) as f64
}

/// Horner's rule with `fma`, as `Em::poly`.
#[inline(always)]
fn poly<T: Real>(x: T, c: &[T]) -> T {
    let n = c.len();
    let mut acc = c[n - 1];
    for i in (0..n - 1).rev() {
        acc = acc.mul_add(x, c[i]);
    }
    acc
}

/// `exp::reduce`: x = n ln2 + rh + rl.
#[inline(always)]
fn reduce<T: Real>(x: T) -> (T, T, T) {
    let t = x.mul_add(T::c(std::f64::consts::LOG2_E), T::SHIFTER);
    let n = t - T::SHIFTER;
    let rh = n.mul_add(-T::LN2[0], x);
    let rl = n * -T::LN2[1];
    (n, rh, rl)
}

/// `Em::pow2`.
#[inline(always)]
fn pow2<T: Real>(n: T) -> T {
    T::pow2_shifted(n + T::SHIFTER)
}

/// `exp`'s common path (`exp::exp`, fast branch): right for |x| ≤ `EXP_NORMAL`.
#[inline(always)]
fn exp_common<T: Real>(x: T) -> T {
    let (n, rh, rl) = reduce(x);
    // `exp::expm1_sum`.
    let p = poly(rh, T::EXPM1);
    let q = rh.mul_add(p, T::c(0.5));
    let r2 = rh * rh;
    let p = r2.mul_add(q, rh);
    let c = rl.mul_add(p, rl);
    let p = p + c;
    let e = T::c(1.0) + p;
    e * pow2(n)
}

/// `log`'s common path (`log::log`, fast branch): right for positive, normal, finite x.
#[inline(always)]
fn log_common<T: Real>(x: T) -> T {
    let (f, e) = T::split(x);
    log_reduced(f, e, T::c(0.0))
}

/// `log1p`'s common path (`log::log1p`, fast branch, `log1p_reduced`): right for finite
/// x ≥ -1/2 with |x| at least `LOG1P_TINY`.
#[inline(always)]
fn log1p_common<T: Real>(x: T) -> T {
    let one = T::c(1.0);
    let u = x + one;
    let (f, e) = T::split(u);
    let c = (x - (u - one)) / u;
    log_reduced(f, e, c)
}

/// `log::log_reduced`: e·ln2 + log1p(f) + c.
#[inline(always)]
fn log_reduced<T: Real>(f: T, e: T, c: T) -> T {
    let u = f + T::c(2.0);
    let s = f / u;
    let z = s * s;
    let r = z * poly(z, T::LOG);
    let hfsq = (f * T::c(0.5)) * f;
    let lo = e.mul_add(T::LN2[1], c);
    let inner = s.mul_add(hfsq + r, lo);
    let v = f - (hfsq - inner);
    e.mul_add(T::LN2[0], v)
}

/// `exp::expm1_core`, for x from the clamp of its callers.
#[inline(always)]
fn expm1_core<T: Real>(x: T) -> T {
    let (n, rh, rl) = reduce(x);
    // `exp::expm1_pair`.
    let p = poly(rh, T::EXPM1);
    let q = rh.mul_add(p, T::c(0.5));
    let r2 = rh * rh;
    let a = r2 * q;
    let hi = rh + a;
    let d = hi - rh;
    let lo = a - d;
    let c = rl.mul_add(hi, rl);
    let pl = lo + c;
    let s = pow2(n - T::c(1.0));
    let sh = s - T::c(0.5);
    let t = s.mul_add(hi, sh);
    let t = s.mul_add(pl, t);
    t + t
}

/// `exp::expm1` (one path): right for every x but NaN.
#[inline(always)]
fn expm1_common<T: Real>(x: T) -> T {
    let [lo, hi] = T::EXPM1_RANGE;
    let xc = if x > hi { hi } else { x };
    let xc = if xc < lo { lo } else { xc };
    let e = expm1_core(xc);
    if x.abs() < T::EXPM1_TINY {
        x
    } else {
        e
    }
}

/// `trig::sin_cos`'s inline path (`trig::reduced`): right for |x| ≤ `TRIG_CUT`.
#[inline(always)]
fn sin_cos_common<T: Real, const COS: bool>(x: T) -> T {
    let t = x.mul_add(T::c(std::f64::consts::FRAC_2_PI), T::SHIFTER);
    let q = t - T::SHIFTER;
    let mut r = x;
    for c in T::PIO2 {
        r = q.mul_add(-c, r);
    }
    let z = r * r;
    let sin_r = (r * z).mul_add(poly(z, T::SIN), r);
    let ci = z.mul_add(poly(z, T::COS), T::c(-0.5));
    let cos_r = z.mul_add(ci, T::c(1.0));
    let v = T::quadrant(t, u32::from(COS), sin_r, cos_r);
    if !COS && x.abs() < T::SIN_TINY {
        x
    } else {
        v
    }
}

#[inline(always)]
fn sin_common<T: Real>(x: T) -> T {
    sin_cos_common::<T, false>(x)
}

#[inline(always)]
fn cos_common<T: Real>(x: T) -> T {
    sin_cos_common::<T, true>(x)
}

/// `exp::tanh` (one path): right for every x but NaN.
#[inline(always)]
fn tanh_common<T: Real>(x: T) -> T {
    let a = x.abs();
    let lim = T::c(20.0);
    let a = if a > lim { lim } else { a };
    let t = expm1_core(a + a);
    let two = T::c(2.0);
    let d = t + two;
    let r = t / d;
    let bb = d - t;
    let da = d - bb;
    let ea = t - da;
    let eb = two - bb;
    let dl = ea + eb;
    let inv_d = T::c(-0.5).mul_add(r, T::c(0.5));
    let nrdl = -(r * dl);
    T::or_sign(nrdl.mul_add(inv_d, r), x)
}

/// `exp::logistic` with `exp`'s common path: right for |x| ≤ `EXP_NORMAL`.
#[inline(always)]
fn logistic_common<T: Real>(x: T) -> T {
    let e = exp_common(-x.abs());
    let one = T::c(1.0);
    let d = one + e;
    let neg = x < T::c(0.0);
    let q = if neg { e } else { one } / d;
    let f = d - one;
    let dl = e - f;
    let inv_d = if neg { one - q } else { q };
    let nqdl = -(q * dl);
    nqdl.mul_add(inv_d, q)
}

#[inline(always)]
fn ok<T: Real>(op: RowOp, x: T) -> bool {
    match op {
        RowOp::Exp | RowOp::Logistic => x.abs() <= T::EXP_NORMAL,
        RowOp::Log => x >= T::MIN_POSITIVE && x <= T::MAX,
        RowOp::Tanh | RowOp::Expm1 => !x.is_nan(),
        RowOp::Log1p => x >= T::c(-0.5) && x <= T::MAX && x.abs() >= T::LOG1P_TINY,
        RowOp::Sin | RowOp::Cos => x.abs() <= T::TRIG_CUT,
    }
}

/// Bytes per step of the loop the functions share: one AVX-512 vector, two AVX2 ones.
const STEP_BYTES: usize = 64;

/// The loop the functions share, over whole steps of `N` elements (64 bytes): a row's last
/// partial step is the whole step that ends with the row (or, in a row shorter than a step, one
/// padded with `pad`, an argument on the common path). Each step is one run of straight-line
/// vector code (no early exit, the check folded into one flag).
#[inline(always)]
unsafe fn map_row<T: Real, const N: usize>(
    inp: *const u8,
    out: *mut u8,
    n: i64,
    pad: T,
    f: impl Fn(T) -> T,
    ok: impl Fn(T) -> bool,
) -> i32 {
    let n = usize::try_from(n).unwrap_or(0);
    // SAFETY: the caller hands `n` readable elements of type T at `inp` and `n` writable ones at
    // `out`, aligned to T and not overlapping.
    let (inp, out) =
        unsafe { (std::slice::from_raw_parts(inp.cast::<T>(), n), std::slice::from_raw_parts_mut(out.cast::<T>(), n)) };
    let step = |x: &[T; N], y: &mut [T; N]| {
        let mut all = true;
        for j in 0..N {
            all &= ok(x[j]);
            y[j] = f(x[j]);
        }
        all
    };
    let mut all = true;
    let whole = n / N * N;
    for (x, y) in inp[..whole].chunks_exact(N).zip(out[..whole].chunks_exact_mut(N)) {
        let (Ok(x), Ok(y)) = (<&[T; N]>::try_from(x), <&mut [T; N]>::try_from(y)) else { return 0 };
        all &= step(x, y);
    }
    let rest = n - whole;
    if rest > 0 && n >= N {
        // The last whole step again, ending at the row's end: its first
        // results are written twice, with the same values.
        let (Ok(x), Ok(y)) = (<&[T; N]>::try_from(&inp[n - N..]), <&mut [T; N]>::try_from(&mut out[n - N..])) else {
            return 0;
        };
        all &= step(x, y);
    } else if rest > 0 {
        let mut x = [pad; N];
        let mut y = [pad; N];
        x[..rest].copy_from_slice(&inp[whole..]);
        all &= step(&x, &mut y);
        out[whole..].copy_from_slice(&y[..rest]);
    }
    i32::from(all)
}

/// The row functions for one vector width: each function of each float type, compiled with
/// `$features`, and `get` to look them up.
macro_rules! width {
    ($m:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        mod $m {
            use super::*;

            macro_rules! row {
                ($name:ident, $t:ty, $op:expr, $f:ident, $pad:expr) => {
                    #[target_feature(enable = $features)]
                    unsafe extern "C" fn $name(inp: *const u8, out: *mut u8, n: i64) -> i32 {
                        const N: usize = STEP_BYTES / std::mem::size_of::<$t>();
                        // SAFETY: passed on from the caller (see `RowFn`).
                        unsafe { map_row::<$t, N>(inp, out, n, $pad, $f::<$t>, |x| ok($op, x)) }
                    }
                };
            }

            row!(exp_f32, f32, RowOp::Exp, exp_common, 0.0);
            row!(exp_f64, f64, RowOp::Exp, exp_common, 0.0);
            row!(log_f32, f32, RowOp::Log, log_common, 1.0);
            row!(log_f64, f64, RowOp::Log, log_common, 1.0);
            row!(tanh_f32, f32, RowOp::Tanh, tanh_common, 0.0);
            row!(tanh_f64, f64, RowOp::Tanh, tanh_common, 0.0);
            row!(logistic_f32, f32, RowOp::Logistic, logistic_common, 0.0);
            row!(logistic_f64, f64, RowOp::Logistic, logistic_common, 0.0);
            row!(log1p_f32, f32, RowOp::Log1p, log1p_common, 1.0);
            row!(log1p_f64, f64, RowOp::Log1p, log1p_common, 1.0);
            row!(expm1_f32, f32, RowOp::Expm1, expm1_common, 0.0);
            row!(expm1_f64, f64, RowOp::Expm1, expm1_common, 0.0);
            row!(sin_f32, f32, RowOp::Sin, sin_common, 0.0);
            row!(sin_f64, f64, RowOp::Sin, sin_common, 0.0);
            row!(cos_f32, f32, RowOp::Cos, cos_common, 0.0);
            row!(cos_f64, f64, RowOp::Cos, cos_common, 0.0);

            pub(super) fn get(op: RowOp, d: DType) -> Option<RowFn> {
                let f64s = match d {
                    DType::F32 => false,
                    DType::F64 => true,
                    DType::I32 | DType::Bool => return None,
                };
                let f: RowFn = match (op, f64s) {
                    (RowOp::Exp, false) => exp_f32,
                    (RowOp::Exp, true) => exp_f64,
                    (RowOp::Log, false) => log_f32,
                    (RowOp::Log, true) => log_f64,
                    (RowOp::Tanh, false) => tanh_f32,
                    (RowOp::Tanh, true) => tanh_f64,
                    (RowOp::Logistic, false) => logistic_f32,
                    (RowOp::Logistic, true) => logistic_f64,
                    (RowOp::Log1p, false) => log1p_f32,
                    (RowOp::Log1p, true) => log1p_f64,
                    (RowOp::Expm1, false) => expm1_f32,
                    (RowOp::Expm1, true) => expm1_f64,
                    (RowOp::Sin, false) => sin_f32,
                    (RowOp::Sin, true) => sin_f64,
                    (RowOp::Cos, false) => cos_f32,
                    (RowOp::Cos, true) => cos_f64,
                };
                Some(f)
            }
        }
    };
}

width!(avx512, "avx512f,fma");
width!(avx2, "avx2,fma");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_paths_give_std_results_to_an_ulp() {
        let step = (0x7f7f_ffff - 0x0080_0000) / 20000;
        for i in 0..20000u32 {
            let x = -87.0 + 174.0 * i as f32 / 20000.0;
            let (got, want) = (exp_common(x), (x as f64).exp());
            assert!((got as f64 - want).abs() <= 1.5 * ulp(want as f32), "exp({x}) = {got}, want {want}");
            let (got, want) = (tanh_common(x / 8.0), (x as f64 / 8.0).tanh());
            assert!((got as f64 - want).abs() <= 2.5 * ulp(want as f32), "tanh({x}) = {got}, want {want}");
            let (got, want) = (logistic_common(x / 4.0), 1.0 / (1.0 + (-(x as f64) / 4.0).exp()));
            assert!((got as f64 - want).abs() <= 2.5 * ulp(want as f32), "logistic({x}) = {got}, want {want}");
            let (got, want) = (expm1_common(x / 2.0), (x as f64 / 2.0).exp_m1());
            assert!((got as f64 - want).abs() <= 2.0 * ulp(want as f32), "expm1({x}) = {got}, want {want}");
            let u = x / 174.0 + 0.5;
            if u.abs() >= f32::EPSILON {
                let (got, want) = (log1p_common(u), (u as f64).ln_1p());
                assert!((got as f64 - want).abs() <= ulp(want as f32), "log1p({u}) = {got}, want {want}");
            }
            let y = f32::from_bits(0x0080_0000 + i * step);
            let (got, want) = (log_common(y), (y as f64).ln());
            assert!((got as f64 - want).abs() <= ulp(want as f32), "log({y}) = {got}, want {want}");
            let z = (y as f64) * 1e-20;
            let (got, want) = (log_common(z), z.ln());
            assert!((got - want).abs() <= 1.5 * want.abs() * f64::EPSILON, "log({z}) = {got}, want {want}");
        }
    }

    fn ulp(x: f32) -> f64 {
        let a = x.abs();
        (f32::from_bits(a.to_bits() + 1) - a) as f64
    }
}
