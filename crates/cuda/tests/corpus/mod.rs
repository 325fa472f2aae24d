//! The programs whose generated CUDA C the tests compile (`ptx.rs`) and run
//! on the host (`host.rs`): stores with sums over rows, columns and
//! everything in one kernel (long enough to need chunks), every primitive's
//! spelling in both float types, the factorizations, integer and boolean
//! arithmetic, gathers, and the PLN step in a `scan`.

// Each test binary reads the part it needs.
#![allow(dead_code)]

use arrayjit::{jit, Array, DType};
use arrayjit_cuda::{render_schedule, RenderedProgram};
use arrayjit_pln::{scan_fit, scan_start, Dataset};

/// A program of the corpus, and the tolerance its results are held to.
pub struct Case {
    pub name: String,
    pub program: RenderedProgram,
    pub tol: f64,
}

fn ramp(shape: &[usize], dtype: DType) -> Array {
    let n: usize = shape.iter().product();
    Array::from_vec((0..n).map(|i| ((i % 17) as f64 - 8.0) * 0.25).collect::<Vec<f64>>(), shape.to_vec()).astype(dtype)
}

fn render<In: arrayjit::Tree, Out: arrayjit::Tree>(f: impl Fn(In) -> Out, args: &In) -> RenderedProgram {
    render_schedule(jit(f).lower(args).unwrap().schedule()).unwrap()
}

fn case(name: impl Into<String>, program: RenderedProgram, tol: f64) -> Case {
    Case { name: name.into(), program, tol }
}

pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for dtype in [DType::F32, DType::F64] {
        // 300 rows: several chunks, so the combining pass runs too.
        let (x, v) = (ramp(&[300, 5], dtype), ramp(&[5], dtype));
        let p = render(
            |(x, v): (Array, Array)| {
                let y = (&x * &v + 1.0).exp() - x.tanh();
                (y.clone(), y.sum(0), y.sum(1), y.sum(..), x.max(0), x.min(..), x.prod(1))
            },
            &(x, v),
        );
        out.push(case(format!("reductions_{dtype}"), p, 1e-5));
        let x = ramp(&[9, 7], dtype);
        let p = render(
            |x: Array| {
                let a = x.abs() + 0.5;
                let t = a.log() + a.log1p() + x.expm1() + x.logistic() + x.sin() * x.cos() + a.sqrt() + a.rsqrt();
                let t = t + a.pow(&x) + x.floor() - x.ceil() + x.sign() + x.rem(0.75) + x.powi(3) + x.powi(-2);
                let m = x.maximum(&a).minimum(2.0);
                (x.gt(0.0).select(&t, &m), x.is_finite(), x.astype(DType::I32))
            },
            &x,
        );
        out.push(case(format!("primitives_{dtype}"), p, 1e-5));
        // The factorizations rendered as device kernels: Cholesky, the
        // inverse from its factor (two triangular solves), and LU behind the
        // general inverse and log-determinant.
        let a = ramp(&[6, 6], dtype) + Array::eye(6, dtype) * 4.0;
        let p = render(
            |a: Array| {
                let s = a.matmul(&a.t()) + Array::eye(6, a.dtype());
                (s.cholesky(), s.inv_spd(), a.inv(), a.slogdet().1)
            },
            &a,
        );
        out.push(case(format!("factorizations_{dtype}"), p, 1e-4));
    }
    // Division and remainder as XLA defines them, integer powers (the
    // exponent read at run time, -3 to 3, so that the f32 sum below stays
    // exact), conversions, iota, booleans.
    let i = ramp(&[64], DType::F32).astype(DType::I32);
    let p = render(
        |i: Array| {
            let j = Array::iota(DType::I32, [64], 0) - 7;
            let q = i.div_raw(&j) + i.rem(&j) + i.powi(2) - i.abs().neg() + i.pow(j.rem(4));
            let b = q.gt(&j).and(i.ne(0)).not();
            (q.clone(), b.select(&q, &i), q.astype(DType::F32).sum(..), b.astype(DType::I32).max(..), b.clone())
        },
        &i,
    );
    out.push(case("integers", p, 0.0));
    // Concatenation reads clamped positions; a transpose reads with strides.
    let x = ramp(&[6, 4], DType::F32);
    let p = render(|x: Array| (arrayjit::concatenate(&[x.clone(), x.exp()], 0).sum(1), x.t().exp()), &x);
    out.push(case("gathers", p, 1e-6));
    for (dtype, name, tol) in [(DType::F32, "pln_step", 1e-4), (DType::F64, "pln_step_f64", 1e-9)] {
        let data = Dataset::oaks(1, dtype).unwrap();
        let lowered = jit(scan_fit(&data, 2)).lower(&scan_start(&data).unwrap()).unwrap();
        out.push(case(name, render_schedule(lowered.schedule()).unwrap(), tol));
    }
    out
}
