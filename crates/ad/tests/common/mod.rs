//! `check_grads`: derivatives against central finite differences in f64; and
//! the property-test settings every test file shares.
#![allow(dead_code)]

use arrayjit_ad::{jvp, vjp};
use arrayjit_trace::{Array, DType};
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

/// Property-test settings: `cases` cases from a fixed seed, so that a normal
/// run is deterministic. With `ARRAYJIT_SOAK=n` set, `n` cases from a random
/// seed instead, to look for new failures (proptest prints the seed of a
/// failure; `PROPTEST_RNG_SEED` replays it).
pub fn proptest_config(cases: u32) -> ProptestConfig {
    match std::env::var("ARRAYJIT_SOAK") {
        Ok(n) => match n.trim().parse() {
            Ok(n) => ProptestConfig::with_cases(n),
            Err(_) => panic!("ARRAYJIT_SOAK must be a number of cases, got {n:?}"),
        },
        Err(_) => ProptestConfig { rng_seed: RngSeed::Fixed(0x5eed), ..ProptestConfig::with_cases(cases) },
    }
}

/// A named function of a list of arrays, to check.
pub type Case = Box<dyn Fn(Vec<Array>) -> Array>;

/// A deterministic pseudo-random generator (tests must be reproducible).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407))
    }
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }
    pub fn array(&mut self, shape: &[usize], lo: f64, hi: f64) -> Array {
        let n: usize = shape.iter().product();
        Array::from_vec((0..n).map(|_| self.uniform(lo, hi)).collect::<Vec<f64>>(), shape.to_vec())
    }
    /// A well-conditioned symmetric positive-definite matrix.
    pub fn spd(&mut self, n: usize) -> Array {
        let a = self.array(&[n, n], -1.0, 1.0);
        a.matmul(&a.t()) + Array::eye(n, DType::F64) * (n as f64)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(xs: &[Array], us: &[Array], eps: f64) -> Vec<Array> {
    xs.iter().zip(us).map(|(x, u)| x + &(u * eps)).collect()
}

fn flat(xs: &[Array]) -> Vec<f64> {
    xs.iter().flat_map(|x| x.to_f64_vec()).collect()
}

fn assert_close(what: &str, got: f64, want: f64, tol: f64) {
    assert_near(what, got, want, tol, 0.0);
}

/// [`assert_close`] with `noise` more allowed: the rounding error of a
/// finite difference, which a small derivative of a large function can be
/// below (found by a soak: `det` of a 4×4 matrix near 4000, whose derivative
/// along the direction drawn was 0.09, came out 1.1e-6 off).
fn assert_near(what: &str, got: f64, want: f64, tol: f64, noise: f64) {
    let scale = 1.0 + got.abs().max(want.abs());
    assert!(
        (got - want).abs() <= tol * scale + noise,
        "{what}: got {got}, want {want} (tolerance {tol}, rounding noise {noise:e})"
    );
}

/// Bounds the rounding error of a central difference `(f(x+h) − f(x−h)) / 2h`
/// whose values are at most `magnitude` in size: each evaluation may be off by
/// a couple of ulps of it, and their difference is divided by twice the step.
fn difference_noise(magnitude: f64, eps: f64) -> f64 {
    4.0 * f64::EPSILON * magnitude / (2.0 * eps)
}

/// Equal up to a relative `1e-12`: for values computed by two evaluation paths
/// (eager kernels and a whole program may round transcendental functions
/// differently in the last place).
pub fn assert_same(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (g, w) in got.iter().zip(want) {
        let same = g == w || (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-12 * g.abs().max(w.abs());
        assert!(same, "{what}: got {g}, want {w}");
    }
}

/// Step and tolerances of a finite-difference check.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    /// The finite-difference step.
    pub eps: f64,
    /// First derivatives against finite differences.
    pub first: f64,
    /// Second derivatives (derivatives of the gradient) against finite differences.
    pub second: f64,
    /// Forward against reverse mode.
    pub modes: f64,
}

/// For functions computed in f64 throughout.
pub const F64: Tol = Tol { eps: 1e-6, first: 1e-6, second: 1e-5, modes: 1e-10 };

/// Checks `f`'s JVP and VJP at `args` against central differences along random
/// directions, and that they agree with each other (`<c, J u>` both ways).
/// With `order == 2` also checks the derivatives of the gradient map.
pub fn check_grads(f: &dyn Fn(Vec<Array>) -> Array, args: &[Array], order: usize, rng: &mut Rng) {
    check_grads_with(f, args, order, rng, F64);
}

/// [`check_grads`] with another step and tolerances: for functions that round
/// through a narrower type on the way.
pub fn check_grads_with(f: &dyn Fn(Vec<Array>) -> Array, args: &[Array], order: usize, rng: &mut Rng, tol: Tol) {
    check_first(f, args, rng, tol.eps, tol.first, tol.modes);
    if order >= 2 {
        // The gradient of x ↦ <c, f(x)> for a fixed random c.
        let y = f(args.to_vec());
        let c = rng.array(y.shape(), -1.0, 1.0);
        let g = move |xs: Vec<Array>| -> Array {
            let c = c.clone();
            let gr = arrayjit_ad::grad(move |xs: Vec<Array>| (f(xs) * &c).sum(..))(xs).unwrap();
            // Concatenate the gradients into one vector, so one output serves all inputs.
            let parts: Vec<Array> = gr.iter().map(|a| a.reshape([a.size()])).collect();
            arrayjit_trace::concatenate(&parts, 0)
        };
        check_first(&g, args, rng, tol.eps, tol.second, tol.modes);
    }
}

fn check_first(f: &dyn Fn(Vec<Array>) -> Array, args: &[Array], rng: &mut Rng, eps: f64, tol: f64, modes: f64) {
    for _ in 0..2 {
        let us: Vec<Array> = args.iter().map(|a| rng.array(a.shape(), -1.0, 1.0)).collect();
        let y = f(args.to_vec());
        let c = rng.array(y.shape(), -1.0, 1.0);
        let plus = f(axpy(args, &us, eps)).to_f64_vec();
        let minus = f(axpy(args, &us, -eps)).to_f64_vec();
        let fd: Vec<f64> = plus.iter().zip(&minus).map(|(p, m)| (p - m) / (2.0 * eps)).collect();
        let fd_dir = dot(&c.to_f64_vec(), &fd);
        let magnitude = plus.iter().chain(&minus).fold(0.0f64, |m, v| m.max(v.abs()));
        let noise = difference_noise(magnitude, eps);
        let c_mass: f64 = c.to_f64_vec().iter().map(|v| v.abs()).sum();
        // Forward mode.
        let (y2, t) = jvp(|xs: Vec<Array>| f(xs), &args.to_vec(), &us).unwrap();
        assert_same("jvp's primal output against f", &y2.to_f64_vec(), &y.to_f64_vec());
        for (a, b) in t.to_f64_vec().iter().zip(&fd) {
            assert_near("jvp vs finite differences", *a, *b, tol, noise);
        }
        // Reverse mode.
        let (_, pb) = vjp(|xs: Vec<Array>| f(xs), &args.to_vec()).unwrap();
        let ct = pb.call(&c).unwrap();
        let rev = dot(&flat(&ct), &flat(&us));
        assert_near("vjp vs finite differences", rev, fd_dir, tol, noise * c_mass);
        assert_close("vjp vs jvp", rev, dot(&c.to_f64_vec(), &t.to_f64_vec()), modes);
    }
}

/// Three steps of `c ← step(c)` from `c0` in a `scan`: the final carry.
pub fn three_steps(step: fn(Array) -> arrayjit_trace::Result<Array>, c0: Array) -> arrayjit_trace::Result<Array> {
    let (c, _ys): (Array, Array) = arrayjit_trace::scan_with(
        |c: Array, (): ()| step(c).map(|c| (c.clone(), c)),
        c0,
        (),
        arrayjit_trace::ScanOptions::default().length(3),
    )?;
    Ok(c)
}
