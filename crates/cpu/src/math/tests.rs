//! Accuracy and special-value tests of the inline math: each function is JIT-compiled into a loop
//! over an array, once with scalars and once with 128-bit vectors, and compared with Rust's std.

use super::{cos, exp, expm1, log, log1p, logistic, pow, sin, tanh};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, AbiParam, InstBuilder, MemFlagsData, Type, Value};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module};

type Unary = fn(&mut FunctionBuilder, Value) -> Value;
type KernelFn = unsafe extern "C" fn(*const u8, *const u8, *mut u8, usize);

/// `dst[i] = op(a[i], b[i])` for `n` elements (a multiple of the lane count), JIT-compiled.
struct Kernel {
    _module: JITModule,
    f: KernelFn,
    lanes: usize,
}

fn compile(elem: Type, vector: bool, op: &dyn Fn(&mut FunctionBuilder, Value, Value) -> Value) -> Kernel {
    let mut fb = settings::builder();
    fb.set("opt_level", "speed").unwrap();
    fb.enable("enable_verifier").unwrap();
    let isa = cranelift_native::builder().unwrap().finish(settings::Flags::new(fb)).unwrap();
    let mut module = JITModule::new(JITBuilder::with_isa(isa, cranelift_module::default_libcall_names()));
    let mut ctx = module.make_context();
    for _ in 0..4 {
        ctx.func.signature.params.push(AbiParam::new(types::I64));
    }
    let id = module.declare_function("kernel", Linkage::Export, &ctx.func.signature).unwrap();
    let ty = if vector { elem.by(128 / elem.bits()).unwrap() } else { elem };
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    let (entry, header, body, exit) = (b.create_block(), b.create_block(), b.create_block(), b.create_block());
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let p = b.block_params(entry).to_vec();
    let size = b.ins().iconst(types::I64, elem.bytes() as i64);
    let end = b.ins().imul(p[3], size);
    let i = b.declare_var(types::I64);
    let zero = b.ins().iconst(types::I64, 0);
    b.def_var(i, zero);
    b.ins().jump(header, &[]);
    b.switch_to_block(header);
    let off = b.use_var(i);
    let go = b.ins().icmp(IntCC::UnsignedLessThan, off, end);
    b.ins().brif(go, body, &[], exit, &[]);
    b.switch_to_block(body);
    b.seal_block(body);
    let flags = MemFlagsData::new().with_notrap();
    let pa = b.ins().iadd(p[0], off);
    let x = b.ins().load(ty, flags, pa, 0);
    let pb = b.ins().iadd(p[1], off);
    let y = b.ins().load(ty, flags, pb, 0);
    let r = op(&mut b, x, y);
    assert_eq!(b.func.dfg.value_type(r), ty);
    let pd = b.ins().iadd(p[2], off);
    b.ins().store(flags, r, pd, 0);
    let step = b.ins().iconst(types::I64, ty.bytes() as i64);
    let next = b.ins().iadd(off, step);
    b.def_var(i, next);
    b.ins().jump(header, &[]);
    b.seal_block(header);
    b.switch_to_block(exit);
    b.seal_block(exit);
    b.ins().return_(&[]);
    b.finalize(module.target_config());
    module.define_function(id, &mut ctx).unwrap();
    module.clear_context(&mut ctx);
    module.finalize_definitions().unwrap();
    let ptr = module.get_finalized_function(id);
    // SAFETY: the function was defined above with four I64 parameters and no result, which is this
    // signature under the host's default C calling convention.
    let f = unsafe { std::mem::transmute::<*const u8, KernelFn>(ptr) };
    Kernel { _module: module, f, lanes: ty.lane_count() as usize }
}

fn unary_kernel(elem: Type, vector: bool, op: Unary) -> Kernel {
    compile(elem, vector, &|b, x, _| op(b, x))
}

fn binary_kernel(elem: Type, vector: bool) -> Kernel {
    compile(elem, vector, &|b, x, y| pow(b, x, y))
}

impl Kernel {
    fn run<T: Copy + Default>(&self, a: &[T], b: &[T]) -> Vec<T> {
        let n = a.len();
        let padded = n.div_ceil(self.lanes) * self.lanes;
        let (mut a, mut b) = (a.to_vec(), if b.is_empty() { a.to_vec() } else { b.to_vec() });
        a.resize(padded, T::default());
        b.resize(padded, T::default());
        let mut out = vec![T::default(); padded];
        // SAFETY: the kernel reads `padded` elements of `a` and `b` and writes `padded` elements of
        // `out`, all of which hold exactly that many elements of the kernel's element type.
        unsafe { (self.f)(a.as_ptr().cast(), b.as_ptr().cast(), out.as_mut_ptr().cast(), padded) };
        out.truncate(n);
        out
    }
}

/// The unit in the last place of an f32 at the magnitude of `v` (subnormal spacing below the
/// normal range, 2^104 above f32::MAX).
fn ulp32(v: f64) -> f64 {
    let e = ((v.abs().to_bits() >> 52) & 0x7ff) as i32 - 1023;
    pow2(e.clamp(-126, 127) - 23)
}

fn ulp64(v: f64) -> f64 {
    // Subnormals (biased exponent 0) have the spacing of the smallest normals.
    let e = (((v.abs().to_bits() >> 52) & 0x7ff) as i32).max(1) - 1023;
    pow2(e - 52)
}

/// 2^k exactly, subnormal powers included (`powi` underflows through 1/2^-k).
fn pow2(k: i32) -> f64 {
    if k >= -1022 {
        f64::from_bits(((k + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (k + 1074))
    }
}

/// The error of `got` in f32 ulps of the exact value `want` (given in f64); infinite when the
/// classes differ (NaN against a number, infinity against a value that does not round to it).
fn err32(got: f32, want: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    if got.is_infinite() {
        return if got == want as f32 { 0.0 } else { f64::INFINITY };
    }
    (got as f64 - want).abs() / ulp32(want)
}

/// The error of `got` in ulps of `want` + `lo` (a double-double reference; `lo` is usually 0).
fn err64(got: f64, want: f64, lo: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    if got.is_infinite() || want.is_infinite() {
        return if got == want { 0.0 } else { f64::INFINITY };
    }
    ((got - want) - lo).abs() / ulp64(want)
}

/// A deterministic xorshift stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// A double-double (hi + lo, |lo| ≤ ulp(hi)/2): just enough arithmetic for references that are
/// far more accurate than glibc's `tanh` (about 2 ulp) or than what the tests measure.
#[derive(Clone, Copy, Debug)]
struct Dd(f64, f64);

impl Dd {
    fn fast(a: f64, b: f64) -> Dd {
        let s = a + b;
        Dd(s, b - (s - a))
    }

    fn add(self, o: Dd) -> Dd {
        let s = self.0 + o.0;
        let v = s - self.0;
        let e = (self.0 - (s - v)) + (o.0 - v);
        Dd::fast(s, e + self.1 + o.1)
    }

    fn mul(self, o: Dd) -> Dd {
        let p = self.0 * o.0;
        let e = self.0.mul_add(o.0, -p) + (self.0 * o.1 + self.1 * o.0);
        Dd::fast(p, e)
    }

    fn div(self, o: Dd) -> Dd {
        let q1 = self.0 / o.0;
        let r = self.add(o.mul(Dd(-q1, 0.0)));
        let q2 = r.0 / o.0;
        let r = r.add(o.mul(Dd(-q2, 0.0)));
        Dd::fast(q1, q2).add(Dd(r.0 / o.0, 0.0))
    }

    fn scale(self, k: i32) -> Dd {
        let (a, b) = (pow2(k / 2), pow2(k - k / 2));
        Dd(self.0 * a * b, self.1 * a * b)
    }
}

/// expm1(r) for |r| ≤ 0.35 by its Taylor series (to degree 24: under 2^-110).
fn expm1_series(r: Dd) -> Dd {
    static INV_FACT: std::sync::OnceLock<Vec<Dd>> = std::sync::OnceLock::new();
    let c = INV_FACT.get_or_init(|| {
        let mut f = vec![Dd(1.0, 0.0)];
        for i in 1..=24 {
            let next = f[i - 1].div(Dd(i as f64, 0.0));
            f.push(next);
        }
        f
    });
    let mut acc = c[24];
    for ci in c[1..24].iter().rev() {
        acc = acc.mul(r).add(*ci);
    }
    acc.mul(r)
}

/// e^x as a double-double: e^x = 2^k e^r, r = x - k ln2 carried in double-double.
fn exp_dd(x: f64) -> Dd {
    if x > 710.0 {
        return Dd(f64::INFINITY, 0.0);
    }
    if x < -746.0 {
        return Dd(0.0, 0.0);
    }
    let k = (x * std::f64::consts::LOG2_E).round();
    let ln2 = Dd(std::f64::consts::LN_2, 2.3190468138462996e-17);
    let r = Dd(x, 0.0).add(ln2.mul(Dd(-k, 0.0)));
    Dd(1.0, 0.0).add(expm1_series(r)).scale(k as i32)
}

fn expm1_dd(x: f64) -> Dd {
    if x > 709.0 {
        return exp_dd(x);
    }
    if x.abs() <= 0.35 {
        expm1_series(Dd(x, 0.0))
    } else {
        exp_dd(x).add(Dd(-1.0, 0.0))
    }
}

fn exp_ref(x: f64) -> (f64, f64) {
    if x.is_nan() {
        return (x, 0.0);
    }
    let e = exp_dd(x);
    (e.0, e.1)
}

fn expm1_ref(x: f64) -> (f64, f64) {
    if x.is_nan() || x.is_infinite() || x == 0.0 {
        return (x.exp_m1(), 0.0);
    }
    let e = expm1_dd(x);
    (e.0, e.1)
}

fn tanh_ref(x: f64) -> (f64, f64) {
    if x.is_nan() || x.abs() > 20.0 || x == 0.0 {
        return (x.tanh(), 0.0);
    }
    let t = expm1_dd(2.0 * x.abs());
    let q = t.div(t.add(Dd(2.0, 0.0)));
    (q.0.copysign(x), q.1.copysign(x))
}

fn logistic_ref(x: f64) -> (f64, f64) {
    if x.is_nan() {
        return (x, 0.0);
    }
    let e = if x.is_infinite() { Dd(0.0, 0.0) } else { exp_dd(-x.abs()) };
    let num = if x < 0.0 { e } else { Dd(1.0, 0.0) };
    let q = num.div(Dd(1.0, 0.0).add(e));
    (q.0, q.1)
}

/// One function under test: its emitter, its references and its documented error bounds.
struct Case {
    name: &'static str,
    op: Unary,
    f32_ref: fn(f64) -> f64,
    f64_ref: fn(f64) -> (f64, f64),
    bound32: f64,
    bound64: f64,
    /// Ranges sampled uniformly in addition to the bit-pattern sweeps.
    ranges: &'static [(f64, f64)],
    /// Only |x| up to this (f32, f64) is held to the bounds.
    max_abs: (f64, f64),
}

const EXP: Case = Case {
    name: "exp",
    op: exp,
    f32_ref: f64::exp,
    f64_ref: exp_ref,
    bound32: 1.5,
    bound64: 1.5,
    ranges: &[(-110.0, 90.0), (-1.0, 1.0), (-746.0, 710.0), (-88.0, -86.0), (88.0, 89.0)],
    max_abs: (f64::INFINITY, f64::INFINITY),
};

const EXPM1: Case = Case {
    name: "expm1",
    op: expm1,
    f32_ref: f64::exp_m1,
    f64_ref: expm1_ref,
    bound32: 2.0,
    bound64: 2.0,
    ranges: &[(-20.0, 90.0), (-1.0, 1.0), (-0.001, 0.001), (-40.0, 710.0), (700.0, 710.0)],
    max_abs: (f64::INFINITY, f64::INFINITY),
};

const LOG: Case = Case {
    name: "log",
    op: log,
    f32_ref: f64::ln,
    f64_ref: |x| (x.ln(), 0.0),
    bound32: 1.0,
    bound64: 1.5,
    ranges: &[(0.0, 4.0), (0.5, 1.5), (0.999, 1.001), (0.0, 1e-37), (0.0, 1e-300)],
    max_abs: (f64::INFINITY, f64::INFINITY),
};

const LOG1P: Case = Case {
    name: "log1p",
    op: log1p,
    f32_ref: f64::ln_1p,
    f64_ref: |x| (x.ln_1p(), 0.0),
    bound32: 1.0,
    bound64: 1.5,
    ranges: &[(-1.0, 1.0), (-0.001, 0.001), (-1e-10, 1e-10), (0.0, 1e6), (-1.0, -0.99)],
    max_abs: (f64::INFINITY, f64::INFINITY),
};

const TANH: Case = Case {
    name: "tanh",
    op: tanh,
    f32_ref: f64::tanh,
    f64_ref: tanh_ref,
    bound32: 2.5,
    bound64: 3.0,
    ranges: &[(-10.0, 10.0), (-1.0, 1.0), (-0.01, 0.01), (-22.0, 22.0)],
    max_abs: (f64::INFINITY, f64::INFINITY),
};

const LOGISTIC: Case = Case {
    name: "logistic",
    op: logistic,
    f32_ref: |x| 1.0 / (1.0 + (-x).exp()),
    f64_ref: logistic_ref,
    bound32: 2.5,
    bound64: 2.5,
    ranges: &[(-110.0, 20.0), (-10.0, 10.0), (-750.0, 40.0)],
    max_abs: (f64::INFINITY, f64::INFINITY),
};

const SIN: Case = Case {
    name: "sin",
    op: sin,
    f32_ref: f64::sin,
    f64_ref: |x| (x.sin(), 0.0),
    bound32: 2.5,
    bound64: 1.5,
    ranges: &[(-10.0, 10.0), (-1e5, 1e5), (-1.0, 1.0)],
    max_abs: (f64::INFINITY, f64::INFINITY),
};

const COS: Case = Case {
    name: "cos",
    op: cos,
    f32_ref: f64::cos,
    f64_ref: |x| (x.cos(), 0.0),
    bound32: 2.5,
    bound64: 1.5,
    ranges: &[(-10.0, 10.0), (-1e5, 1e5), (-1.0, 1.0)],
    max_abs: (f64::INFINITY, f64::INFINITY),
};

/// The worst error and where it occurred.
#[derive(Default, Debug)]
struct Worst {
    err: f64,
    x: f64,
    got: f64,
}

impl Worst {
    fn add(&mut self, err: f64, x: f64, got: f64) {
        if err > self.err || err.is_nan() {
            *self = Worst { err, x, got };
        }
    }
}

/// f32 inputs: every 4093rd bit pattern (all classes and magnitudes), the case's ranges and the
/// values around every power of two's neighbourhood of special points.
fn inputs32(case: &Case) -> Vec<f32> {
    let mut xs: Vec<f32> = (0..=u32::MAX / 4093).map(|k| f32::from_bits(k.wrapping_mul(4093))).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for &(lo, hi) in case.ranges {
        xs.extend((0..100_000).map(|_| rng.uniform(lo, hi) as f32));
    }
    xs.extend(specials32());
    xs
}

fn inputs64(case: &Case) -> Vec<f64> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut xs: Vec<f64> = (0..200_000).map(|_| f64::from_bits(rng.next())).collect();
    for &(lo, hi) in case.ranges {
        xs.extend((0..100_000).map(|_| rng.uniform(lo, hi)));
    }
    xs.extend(specials64());
    xs
}

fn specials32() -> Vec<f32> {
    let base = [
        0.0,
        f32::MIN_POSITIVE,
        f32::MIN_POSITIVE / 2.0,
        f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        f32::MAX,
        f32::INFINITY,
        f32::NAN,
        1.0,
        0.5,
        2.0,
        1e-30,
        1e-10,
        1e-5,
        0.1,
        0.35,
        0.7,
        3.0,
        10.0,
        20.0,
        30.0,
        88.0,
        88.72283,
        88.72284,
        89.0,
        103.0,
        103.97,
        104.0,
        150.0,
        1e5,
        1e6,
        1e10,
        1e30,
    ];
    base.iter().flat_map(|&v| [v, -v]).collect()
}

fn specials64() -> Vec<f64> {
    let base = [
        0.0,
        f64::MIN_POSITIVE,
        f64::MIN_POSITIVE / 2.0,
        f64::from_bits(1),
        f64::MAX,
        f64::INFINITY,
        f64::NAN,
        1.0,
        0.5,
        2.0,
        1e-300,
        1e-20,
        1e-10,
        0.1,
        0.35,
        3.0,
        20.0,
        30.0,
        709.78,
        709.79,
        710.0,
        744.0,
        745.1,
        746.0,
        1e5,
        1e10,
        1e300,
    ];
    base.iter().flat_map(|&v| [v, -v]).collect()
}

/// Runs one case for f32 and f64, scalar and vector, and checks its bounds.
fn check(case: &Case) {
    let xs = inputs32(case);
    let want: Vec<f64> = xs.iter().map(|&x| (case.f32_ref)(x as f64)).collect();
    for vector in [false, true] {
        let got = unary_kernel(types::F32, vector, case.op).run(&xs, &[]);
        let (mut worst, mut beyond) = (Worst::default(), Worst::default());
        for ((&x, &g), &w) in xs.iter().zip(&got).zip(&want) {
            if (x as f64).abs() < case.max_abs.0 {
                worst.add(err32(g, w), x as f64, g as f64);
            } else {
                beyond.add(err32(g, w), x as f64, g as f64);
                assert!(x.is_nan() || x.is_infinite() || g.abs() <= 1.0, "{} f32 {x:e} -> {g:e}", case.name);
            }
        }
        eprintln!(
            "{} f32 vector={vector}: max {:.3} ulp at {:e} (got {:e}); beyond: {worst_b:.3e} ulp at {:e}",
            case.name,
            worst.err,
            worst.x,
            worst.got,
            beyond.x,
            worst_b = beyond.err
        );
        assert!(worst.err <= case.bound32, "{} f32 vector={vector}: {worst:?}", case.name);
    }
    let xs = inputs64(case);
    let want: Vec<(f64, f64)> = xs.iter().map(|&x| (case.f64_ref)(x)).collect();
    for vector in [false, true] {
        let got = unary_kernel(types::F64, vector, case.op).run(&xs, &[]);
        let (mut worst, mut beyond) = (Worst::default(), Worst::default());
        for ((&x, &g), &(w, lo)) in xs.iter().zip(&got).zip(&want) {
            if x.abs() < case.max_abs.1 {
                worst.add(err64(g, w, lo), x, g);
            } else {
                beyond.add(err64(g, w, lo), x, g);
                assert!(x.is_nan() || x.is_infinite() || g.abs() <= 1.0, "{} f64 {x:e} -> {g:e}", case.name);
            }
        }
        eprintln!(
            "{} f64 vector={vector}: max {:.3} ulp at {:e} (got {:e}); beyond: {worst_b:.3e} ulp at {:e}",
            case.name,
            worst.err,
            worst.x,
            worst.got,
            beyond.x,
            worst_b = beyond.err
        );
        assert!(worst.err <= case.bound64, "{} f64 vector={vector}: {worst:?}", case.name);
    }
}

#[test]
fn exp_accuracy() {
    check(&EXP);
}

#[test]
fn expm1_accuracy() {
    check(&EXPM1);
}

#[test]
fn log_accuracy() {
    check(&LOG);
}

#[test]
fn log1p_accuracy() {
    check(&LOG1P);
}

#[test]
fn tanh_accuracy() {
    check(&TANH);
}

#[test]
fn logistic_accuracy() {
    check(&LOGISTIC);
}

#[test]
fn sin_accuracy() {
    check(&SIN);
}

#[test]
fn cos_accuracy() {
    check(&COS);
}

/// Exact behaviour where the reference is NaN, ±0 or ±inf (sign included), bounds elsewhere.
fn check_specials(case: &Case) {
    for vector in [false, true] {
        let xs = specials32();
        let got = unary_kernel(types::F32, vector, case.op).run(&xs, &[]);
        for (&x, &g) in xs.iter().zip(&got) {
            let w = (case.f32_ref)(x as f64);
            let what = format!("{}({x:e}) f32 vector={vector}: got {g:e}, want {w:e}", case.name);
            if w.is_nan() {
                assert!(g.is_nan(), "{what}");
            } else if w == 0.0 || w.is_infinite() {
                assert_eq!(g.to_bits(), (w as f32).to_bits(), "{what}");
            } else if (x as f64).abs() < case.max_abs.0 {
                assert!(err32(g, w) <= case.bound32, "{what}");
            }
        }
        let xs = specials64();
        let got = unary_kernel(types::F64, vector, case.op).run(&xs, &[]);
        for (&x, &g) in xs.iter().zip(&got) {
            let (w, lo) = (case.f64_ref)(x);
            let what = format!("{}({x:e}) f64 vector={vector}: got {g:e}, want {w:e}", case.name);
            if w.is_nan() {
                assert!(g.is_nan(), "{what}");
            } else if w == 0.0 || w.is_infinite() {
                assert_eq!(g.to_bits(), w.to_bits(), "{what}");
            } else if x.abs() < case.max_abs.1 {
                assert!(err64(g, w, lo) <= case.bound64, "{what}");
            }
        }
    }
}

#[test]
fn special_values() {
    for case in [&EXP, &EXPM1, &LOG, &LOG1P, &TANH, &LOGISTIC, &SIN, &COS] {
        check_specials(case);
    }
}

/// sin and cos at the floats nearest to multiples of π/2, where the reduced argument is smallest
/// and the Cody-Waite reduction is put to the test.
#[test]
fn trig_near_multiples_of_half_pi() {
    let mut xs32 = Vec::new();
    let mut xs64 = Vec::new();
    for k in 1..64_000u32 {
        let x = k as f64 * std::f64::consts::FRAC_PI_2;
        let b = (x as f32).to_bits();
        xs32.extend((b - 2..=b + 2).map(f32::from_bits));
        let b = x.to_bits();
        xs64.extend((b - 2..=b + 2).map(f64::from_bits));
    }
    for case in [&SIN, &COS] {
        for vector in [false, true] {
            let got = unary_kernel(types::F32, vector, case.op).run(&xs32, &[]);
            let mut worst = Worst::default();
            for (&x, &g) in xs32.iter().zip(&got) {
                worst.add(err32(g, (case.f32_ref)(x as f64)), x as f64, g as f64);
            }
            eprintln!("{} near kπ/2 f32 vector={vector}: {worst:?}", case.name);
            assert!(worst.err <= case.bound32, "{} near kπ/2 f32 vector={vector}: {worst:?}", case.name);
            let got = unary_kernel(types::F64, vector, case.op).run(&xs64, &[]);
            let mut worst = Worst::default();
            for (&x, &g) in xs64.iter().zip(&got) {
                let (w, lo) = (case.f64_ref)(x);
                worst.add(err64(g, w, lo), x, g);
            }
            eprintln!("{} near kπ/2 f64 vector={vector}: {worst:?}", case.name);
            assert!(worst.err <= case.bound64, "{} near kπ/2 f64 vector={vector}: {worst:?}", case.name);
        }
    }
}

const POW_BOUND32: f64 = 1.0;
const POW_BOUND64: f64 = 1.5;

fn pow_specials64() -> Vec<f64> {
    let mut v = vec![
        0.0,
        1.0,
        0.5,
        2.0,
        3.0,
        1.5,
        10.0,
        8.0,
        1.0 / 3.0,
        0.999,
        1.001,
        1e10,
        1e300,
        9007199254740991.0, // 2^53 - 1, odd
        9007199254740994.0, // even, above 2^53
        1e20,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        f64::MAX,
        f64::INFINITY,
        f64::NAN,
    ];
    v.extend(v.clone().iter().map(|x| -x));
    v
}

fn pow_specials32() -> Vec<f32> {
    let mut v = vec![
        0.0,
        1.0,
        0.5,
        2.0,
        3.0,
        1.5,
        10.0,
        8.0,
        1.0 / 3.0,
        0.999,
        1.001,
        1e10,
        1e30,
        16777215.0, // 2^24 - 1, odd
        16777218.0, // even, above 2^24
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::MAX,
        f32::INFINITY,
        f32::NAN,
    ];
    v.extend(v.clone().iter().map(|x| -x));
    v
}

/// Every pair of special arguments: NaN, ±0 and ±inf results must match `powf` exactly.
#[test]
fn pow_special_values() {
    let s = pow_specials32();
    let (xs, ys): (Vec<f32>, Vec<f32>) = s.iter().flat_map(|&x| s.iter().map(move |&y| (x, y))).unzip();
    let s = pow_specials64();
    let (xd, yd): (Vec<f64>, Vec<f64>) = s.iter().flat_map(|&x| s.iter().map(move |&y| (x, y))).unzip();
    for vector in [false, true] {
        let got = binary_kernel(types::F32, vector).run(&xs, &ys);
        for ((&x, &y), &g) in xs.iter().zip(&ys).zip(&got) {
            let w = x.powf(y);
            let what = format!("pow({x:e}, {y:e}) f32 vector={vector}: got {g:e}, want {w:e}");
            if w.is_nan() {
                assert!(g.is_nan(), "{what}");
            } else if w == 0.0 || w.is_infinite() || w.abs() == 1.0 {
                assert_eq!(g.to_bits(), w.to_bits(), "{what}");
            } else {
                assert!(err32(g, (x as f64).powf(y as f64)) <= POW_BOUND32, "{what}");
            }
        }
        let got = binary_kernel(types::F64, vector).run(&xd, &yd);
        for ((&x, &y), &g) in xd.iter().zip(&yd).zip(&got) {
            let w = x.powf(y);
            let what = format!("pow({x:e}, {y:e}) f64 vector={vector}: got {g:e}, want {w:e}");
            if w.is_nan() {
                assert!(g.is_nan(), "{what}");
            } else if w == 0.0 || w.is_infinite() || w.abs() == 1.0 {
                assert_eq!(g.to_bits(), w.to_bits(), "{what}");
            } else {
                assert!(err64(g, w, 0.0) <= POW_BOUND64, "{what}");
            }
        }
    }
}

/// Random arguments: positive bases of every magnitude, bases near 1 with large exponents (where
/// ln x must be carried beyond f64), and negative bases with integer exponents.
#[test]
fn pow_accuracy() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut pairs = Vec::new();
    for _ in 0..200_000 {
        pairs.push((2f64.powf(rng.uniform(-1074.0, 1024.0)), rng.uniform(-2.0, 2.0)));
        pairs.push((2f64.powf(rng.uniform(-30.0, 30.0)), rng.uniform(-30.0, 30.0)));
        pairs.push((rng.uniform(0.5, 2.0), rng.uniform(-1000.0, 1000.0)));
        pairs.push((rng.uniform(0.99, 1.01), rng.uniform(-70000.0, 70000.0)));
        pairs.push((-rng.uniform(0.0, 10.0), rng.uniform(-300.0, 300.0).round()));
    }
    let (xd, yd): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let (xs, ys): (Vec<f32>, Vec<f32>) =
        pairs.iter().map(|&(x, y)| (x as f32, (y as f32).clamp(-200.0, 200.0))).unzip();
    for vector in [false, true] {
        let got = binary_kernel(types::F32, vector).run(&xs, &ys);
        let mut worst = Worst::default();
        for ((&x, &y), &g) in xs.iter().zip(&ys).zip(&got) {
            worst.add(err32(g, (x as f64).powf(y as f64)), x as f64, g as f64);
        }
        eprintln!("pow f32 vector={vector}: {worst:?}");
        assert!(worst.err <= POW_BOUND32, "pow f32 vector={vector}: {worst:?}");
        let got = binary_kernel(types::F64, vector).run(&xd, &yd);
        let mut worst = Worst::default();
        let mut wy = 0.0;
        for ((&x, &y), &g) in xd.iter().zip(&yd).zip(&got) {
            let e = err64(g, x.powf(y), 0.0);
            if e > worst.err {
                wy = y;
            }
            worst.add(e, x, g);
        }
        eprintln!("pow f64 vector={vector}: {worst:?} y={wy:e}");
        assert!(worst.err <= POW_BOUND64, "pow f64 vector={vector}: {worst:?} y={wy:e}");
    }
}

/// Every f32 input, for the accuracy table in the module doc (vector path; about a minute per
/// function with the test profile): `cargo test -p arrayjit-cpu --lib math::tests::exhaustive --
/// --ignored --nocapture`, optionally with `MATH_ONLY=sin,cos`.
#[test]
#[ignore]
fn exhaustive_f32() {
    let only = std::env::var("MATH_ONLY").unwrap_or_default();
    for case in [&EXP, &EXPM1, &LOG, &LOG1P, &TANH, &LOGISTIC, &SIN, &COS] {
        if !only.is_empty() && !only.split(',').any(|n| n == case.name) {
            continue;
        }
        let k = unary_kernel(types::F32, true, case.op);
        let (mut worst, mut beyond) = (Worst::default(), Worst::default());
        let chunk = 1u64 << 22;
        for start in (0..1u64 << 32).step_by(chunk as usize) {
            let xs: Vec<f32> = (start..start + chunk).map(|b| f32::from_bits(b as u32)).collect();
            let got = k.run(&xs, &[]);
            for (&x, &g) in xs.iter().zip(&got) {
                let e = err32(g, (case.f32_ref)(x as f64));
                if (x as f64).abs() < case.max_abs.0 {
                    worst.add(e, x as f64, g as f64);
                } else {
                    beyond.add(e, x as f64, g as f64);
                }
            }
        }
        eprintln!("{}: {worst:?}; beyond |x| > {:e}: {beyond:?}", case.name, case.max_abs.0);
    }
}

/// sin and cos on large arguments, log-uniform in |x| from 2^16.6 to 2^30 (f32) and 2^60 (f64),
/// across the inline reduction's cut-off (2^21, 2^48) and far past it, where lanes come from
/// Rust's functions: every octave within the function's bound.
#[test]
fn trig_large_arguments() {
    let mut rng = Rng(0x5151_7e57_0dd5_eed5);
    let xs64: Vec<f64> = (0..200_000)
        .map(|_| 2f64.powf(rng.uniform(16.6, 60.0)) * if rng.next() & 1 == 0 { 1.0 } else { -1.0 })
        .collect();
    let xs32: Vec<f32> = (0..200_000).map(|_| 2f64.powf(rng.uniform(16.6, 30.0)) as f32).collect();
    for case in [&SIN, &COS] {
        for vector in [false, true] {
            let got = unary_kernel(types::F32, vector, case.op).run(&xs32, &[]);
            let mut by_octave = [0f64; 31];
            for (&x, &g) in xs32.iter().zip(&got) {
                let o = (x.abs().log2() as usize).min(30);
                by_octave[o] = by_octave[o].max(err32(g, (case.f32_ref)(x as f64)));
            }
            eprintln!("{} f32 vector={vector}: max ulp by octave 2^16..2^30: {:.1?}", case.name, &by_octave[16..]);
            assert!(by_octave.iter().all(|&e| e <= case.bound32), "{} f32: {by_octave:?}", case.name);
            let got = unary_kernel(types::F64, vector, case.op).run(&xs64, &[]);
            let mut by_octave = [0f64; 61];
            for (&x, &g) in xs64.iter().zip(&got) {
                let o = (x.abs().log2() as usize).min(60);
                by_octave[o] = by_octave[o].max(err64(g, (case.f64_ref)(x).0, 0.0));
            }
            eprintln!("{} f64 vector={vector}: max ulp by octave 2^16..2^60: {:.1?}", case.name, &by_octave[16..]);
            assert!(by_octave.iter().all(|&e| e <= case.bound64), "{} f64: {by_octave:?}", case.name);
        }
    }
}

/// Integer powers whose result is a float come out exact (f64: below 2^53; f32: below 2^24).
#[test]
fn pow_exact_integer_powers() {
    let mut pairs = Vec::new();
    for x in 2..=31u32 {
        for y in -12..=40i32 {
            pairs.push((x as f64, y as f64));
            pairs.push((-(x as f64), y as f64));
            pairs.push((1.0 / x as f64, y as f64));
        }
    }
    let (xd, yd): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    let (xs, ys): (Vec<f32>, Vec<f32>) = pairs.iter().map(|&(x, y)| (x as f32, y as f32)).unzip();
    for vector in [false, true] {
        let got = binary_kernel(types::F64, vector).run(&xd, &yd);
        for ((&x, &y), &g) in xd.iter().zip(&yd).zip(&got) {
            if y >= 0.0 && x.fract() == 0.0 && x.abs().powf(y) < 9007199254740992.0 {
                assert_eq!(g, x.powf(y), "pow({x}, {y}) f64 vector={vector}");
            }
        }
        let got = binary_kernel(types::F32, vector).run(&xs, &ys);
        for ((&x, &y), &g) in xs.iter().zip(&ys).zip(&got) {
            if y >= 0.0 && x.fract() == 0.0 && (x.abs() as f64).powf(y as f64) < 16777216.0 {
                assert_eq!(g, x.powf(y), "pow({x}, {y}) f32 vector={vector}");
            }
        }
    }
}

/// `exp`, `log` and `log1p` (and `logistic`, through `exp`) take a shorter path when
/// every lane of a vector is an ordinary input, and `sin` and `cos` another one
/// when a lane is too large for their reduction: each lane's result must not
/// depend on its neighbours.
/// Every special value is put in each lane position among ordinary inputs,
/// and the results compared bit for bit with the scalar code's.
/// Each special value in each lane among ordinary ones: the vector result
/// of every lane equals the scalar one (bit for bit, any NaN for a NaN).
fn lanes_agree<T: Copy + Default + Into<f64> + std::fmt::LowerExp>(
    elem: Type,
    case: &Case,
    specials: &[T],
    ordinary: &[T],
) {
    let mut xs = Vec::new();
    for &s in specials {
        for lane in 0..ordinary.len() {
            let mut v = ordinary.to_vec();
            v[lane] = s;
            xs.extend_from_slice(&v);
        }
    }
    let vector = unary_kernel(elem, true, case.op).run(&xs, &[]);
    let scalar = unary_kernel(elem, false, case.op).run(&xs, &[]);
    for ((x, v), s) in xs.iter().zip(&vector).zip(&scalar) {
        // Widening to f64 is exact, so equal bits stay equal.
        let (vw, sw): (f64, f64) = ((*v).into(), (*s).into());
        assert!(vw.to_bits() == sw.to_bits() || (vw.is_nan() && sw.is_nan()), "{}({x:e}): {v:e} vs {s:e}", case.name);
    }
}

#[test]
fn vector_lanes_do_not_depend_on_their_neighbours() {
    for case in [&EXP, &LOG, &LOG1P, &LOGISTIC, &SIN, &COS] {
        lanes_agree(types::F32, case, &specials32(), &[0.75f32, 1.5, 2.25, 3.0]);
        lanes_agree(types::F64, case, &specials64(), &[0.75f64, 1.5]);
    }
    // Past the inline reduction's cut-off, in each lane among ordinary ones.
    for case in [&SIN, &COS] {
        lanes_agree(types::F32, case, &[4354560.0f32, -3.0e7, 1.0e30, f32::MAX], &[0.75f32, 1.5, 2.25, 3.0e6]);
        lanes_agree(types::F64, case, &[1.0e15f64, -3.0e20, f64::MAX], &[0.75f64, 2.0e14]);
    }
}

/// The native row functions of `bulk` (each width this CPU runs) against the inline vector code:
/// the same bits wherever they say they computed a row, and they decline exactly the rows with an
/// argument off the common path. Rows of 1 to 40 arguments cover every tail of their steps.
fn row_function_bits<T: Copy + Default + super::bulk::Real + std::fmt::Debug>(
    elem: Type,
    op: super::bulk::RowOp,
    case: &Case,
    xs: &[T],
    min_native: usize,
    bits: fn(T) -> u64,
) {
    use super::bulk::{common, variants};
    let d = if elem == types::F64 { arrayjit_ir::DType::F64 } else { arrayjit_ir::DType::F32 };
    let inline = unary_kernel(elem, true, case.op).run(xs, &[]);
    let fns = variants(op, d);
    assert!(!fns.is_empty() || super::bulk::row_fn(op, d).is_none(), "{op:?}: a row function without a variant");
    for (name, f) in fns {
        let (mut start, mut len, mut native) = (0usize, 1usize, 0usize);
        let mut out = vec![T::default(); 40];
        while start < xs.len() {
            let row = &xs[start..(start + len).min(xs.len())];
            // SAFETY: `row` and `out` hold at least `row.len()` elements of the function's type
            // and do not overlap.
            let ok = unsafe { f(row.as_ptr().cast(), out.as_mut_ptr().cast(), row.len() as i64) };
            let want_ok = row.iter().all(|&x| common(op, x));
            assert_eq!(ok == 1, want_ok, "{name} {op:?} {elem} over {row:?}");
            if ok == 1 {
                native += row.len();
                for (j, &x) in row.iter().enumerate() {
                    let (g, w) = (out[j], inline[start + j]);
                    assert_eq!(bits(g), bits(w), "{name} {op:?} {elem}({x:?}): {g:?} vs inline {w:?}");
                }
            }
            start += row.len();
            len = len % 40 + 1;
        }
        assert!(native > min_native, "{name} {op:?} {elem}: only {native} of {} arguments ran natively", xs.len());
    }
}

#[test]
fn row_functions_give_the_inline_bits() {
    use super::bulk::RowOp;
    for (op, case, lo, hi) in [
        (RowOp::Exp, &EXP, -87.0, 87.0),
        (RowOp::Log, &LOG, -80.0, 80.0),
        (RowOp::Tanh, &TANH, -25.0, 25.0),
        (RowOp::Logistic, &LOGISTIC, -87.0, 87.0),
        (RowOp::Log1p, &LOG1P, -0.5, 60.0),
        (RowOp::Expm1, &EXPM1, -35.0, 95.0),
        (RowOp::Sin, &SIN, -1e5, 1e5),
        (RowOp::Cos, &COS, -40.0, 40.0),
    ] {
        // Mostly ordinary arguments (for `log`, e to those), so that most rows run natively.
        let mut rng = Rng(0x0bad_cafe_f00d_d00d);
        let ordinary: Vec<f64> = (0..400_000)
            .map(|_| {
                let v = rng.uniform(lo, hi);
                if op == RowOp::Log {
                    v.exp()
                } else {
                    v
                }
            })
            .collect();
        let mut xs = inputs32(case);
        xs.extend(ordinary.iter().map(|&v| v as f32));
        row_function_bits(types::F32, op, case, &xs, ordinary.len() / 2, |v: f32| v.to_bits() as u64);
        let mut xs = inputs64(case);
        xs.extend(&ordinary);
        row_function_bits(types::F64, op, case, &xs, ordinary.len() / 2, f64::to_bits);
    }
}

/// The row functions against the inline vector code over every f32 input, in rows of 4096 (about a
/// minute and a half per function with the test profile): `cargo test -p arrayjit-cpu --lib
/// math::tests::row_functions_exhaustive -- --ignored --nocapture`, optionally with
/// `MATH_ONLY=log1p,expm1`.
#[test]
#[ignore]
fn row_functions_exhaustive_f32() {
    use super::bulk::{common, row_fn, RowOp};
    let cases = [
        (RowOp::Exp, &EXP),
        (RowOp::Log, &LOG),
        (RowOp::Tanh, &TANH),
        (RowOp::Logistic, &LOGISTIC),
        (RowOp::Log1p, &LOG1P),
        (RowOp::Expm1, &EXPM1),
        (RowOp::Sin, &SIN),
        (RowOp::Cos, &COS),
    ];
    let only = std::env::var("MATH_ONLY").unwrap_or_default();
    for (op, case) in cases {
        if !only.is_empty() && !only.split(',').any(|n| n == case.name) {
            continue;
        }
        let Some(f) = row_fn(op, arrayjit_ir::DType::F32) else { return };
        let k = unary_kernel(types::F32, true, case.op);
        let (mut native, mut declined) = (0u64, 0u64);
        let chunk = 1u64 << 22;
        let mut out = vec![0f32; 4096];
        for start in (0..1u64 << 32).step_by(chunk as usize) {
            let xs: Vec<f32> = (start..start + chunk).map(|b| f32::from_bits(b as u32)).collect();
            let inline = k.run(&xs, &[]);
            for (row, want) in xs.chunks(4096).zip(inline.chunks(4096)) {
                // SAFETY: `row` and `out` hold 4096 f32 and do not overlap.
                let ok = unsafe { f(row.as_ptr().cast(), out.as_mut_ptr().cast(), row.len() as i64) };
                assert_eq!(ok == 1, row.iter().all(|&x| common(op, x)), "{op:?} from {:#x}", row[0].to_bits());
                if ok == 1 {
                    native += row.len() as u64;
                    for ((x, g), w) in row.iter().zip(&out).zip(want) {
                        assert_eq!(g.to_bits(), w.to_bits(), "{op:?}({x:e}): {g:e} vs inline {w:e}");
                    }
                } else {
                    declined += row.len() as u64;
                }
            }
        }
        eprintln!("{op:?}: {native} inputs natively with the inline bits, {declined} in rows declined");
    }
}
