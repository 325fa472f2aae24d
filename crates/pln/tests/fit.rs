//! The PLN fit: every level follows the same trajectory, the compiled loop
//! matches the reference interpreter, the gradient matches its closed form,
//! the loss decreases on oaks, and Σ is recovered from simulated data.

use arrayjit::optim::GradientTransformation;
use arrayjit::{make_jaxpr, value_and_grad, Array, DType, Result};
use arrayjit_pln::*;

fn small(dtype: DType) -> Dataset {
    let p: usize = 6;
    let sigma: Vec<f64> = (0..p * p).map(|k| 0.6 * 0.5f64.powi((k / p).abs_diff(k % p) as i32)).collect();
    simulate(40, &[0.5, 1.0, 1.5, 0.5, 1.0, 2.0], &sigma, 11, dtype).unwrap()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / (1.0 + a.abs().max(b.abs()))
}

#[test]
fn all_levels_follow_the_same_trajectory() {
    for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 2e-4)] {
        let data = small(dtype);
        let fits: Vec<Fit> = (0..=4).map(|l| fit(l, &data, 30, &mut |_| {}).unwrap()).collect();
        for f in &fits[1..] {
            assert_eq!(f.losses.len(), 30);
            for (i, (a, b)) in fits[0].losses.iter().zip(&f.losses).enumerate() {
                assert!(rel(*a, *b) < tol, "{dtype}: level {} iteration {i}: {b} vs level 0 {a}", f.level);
            }
        }
    }
    // And on the oaks data itself.
    let data = Dataset::oaks(1, DType::F64).unwrap();
    let a = fit(0, &data, 5, &mut |_| {}).unwrap();
    let b = fit(4, &data, 5, &mut |_| {}).unwrap();
    for (x, y) in a.losses.iter().zip(&b.losses) {
        assert!(rel(*x, *y) < 1e-10, "{x} vs {y}");
    }
}

#[test]
fn the_compiled_loop_matches_the_reference_interpreter() {
    let data = small(DType::F64);
    let (params, sigma, omega) = init(&data);
    let opt = optimizer().init_tree(&params).unwrap();
    type State = (Params, Array, Array, OptState);
    let fit50 = |s: State| -> Result<(State, Array)> {
        arrayjit::scan_with(
            |(p, _, om, o): State, (): ()| -> Result<(State, Array)> {
                let (p, sg, om, o, loss) = step(&data, p, &om, o)?;
                Ok(((p, sg, om, o), loss))
            },
            s,
            (),
            arrayjit::ScanOptions::default().length(50),
        )
    };
    let state: State = (params, sigma, omega, opt);
    let program = make_jaxpr(fit50, &state).unwrap();
    let (leaves, _) = arrayjit::tree_flatten(&state);
    let args: Vec<arrayjit::HostArray> = leaves.iter().map(|a| (**a.try_host().unwrap()).clone()).collect();
    let want = arrayjit_interp::eval_program(&program, &args).unwrap();
    let want_losses = Array::from_host(want.last().unwrap().clone()).to_vec::<f64>();
    let got = fit(2, &data, 50, &mut |_| {}).unwrap();
    for (i, (a, b)) in got.losses.iter().zip(&want_losses).enumerate() {
        assert!(rel(*a, *b) < 1e-9, "iteration {i}: compiled {a} vs interpreter {b}");
    }
}

#[test]
fn the_gradient_matches_its_closed_form() {
    let data = Dataset::oaks(1, DType::F64).unwrap();
    let (mut params, _, mut omega) = init(&data);
    let mut opt = optimizer().init_tree(&params).unwrap();
    let mut taken = 0;
    for at in [0, 10] {
        while taken < at {
            let (p, _, om, o, _) = step(&data, params, &omega, opt).unwrap();
            (params, omega, opt) = (p, om, o);
            taken += 1;
        }
        let (_, g) = value_and_grad(|p: Params| neg_elbo(&p, &omega, &data))(params.clone()).unwrap();
        let want = model::closed_form_gradient(&params, &omega, &data);
        for (name, a, b) in [("B", &g.b, &want.b), ("M", &g.m, &want.m), ("S", &g.s, &want.s)] {
            let (a, b) = (a.to_vec::<f64>(), b.to_vec::<f64>());
            let scale = b.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-9 * scale, "∂/∂{name} after {at} steps: {x} vs closed form {y}");
            }
        }
    }
}

#[test]
fn the_loss_decreases_on_oaks() {
    let data = Dataset::oaks(1, DType::F32).unwrap();
    let f = fit(2, &data, 200, &mut |_| {}).unwrap();
    let (first, last) = (f.losses[0], *f.losses.last().unwrap());
    assert!(last < 0.2 * first, "loss {first} → {last}");
    let later: Vec<f64> = f.losses.iter().step_by(20).copied().collect();
    assert!(later.windows(2).all(|w| w[1] < w[0]), "{later:?}");
    assert!(f.losses.iter().all(|l| l.is_finite()));
}

#[test]
fn sigma_is_recovered_from_simulated_data() {
    let p: usize = 4;
    let truth: Vec<f64> = (0..p * p).map(|k| 0.8 * 0.5f64.powi((k / p).abs_diff(k % p) as i32)).collect();
    let data = simulate(3000, &[1.0, 1.5, 2.0, 1.0], &truth, 5, DType::F64).unwrap();
    let f = fit(2, &data, 600, &mut |_| {}).unwrap();
    let got = f.sigma.to_vec::<f64>();
    let worst = got.iter().zip(&truth).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst < 0.1, "Σ estimated {got:?}, true {truth:?} (worst error {worst})");
    let b = f.params.b.to_vec::<f64>();
    for (x, y) in b.iter().zip([1.0, 1.5, 2.0, 1.0]) {
        assert!((x - y).abs() < 0.1, "B estimated {b:?}");
    }
}

#[test]
fn the_compiled_levels_run_on_a_device_runtime_as_on_the_cpu() {
    // The CUDA backend's emulator runs the generated CUDA C on the CPU; a GPU
    // runs the same programs through `CudaRuntime`. Level 1 keeps its state
    // on the device between the calls of its Rust loop.
    use arrayjit::cuda::emulator::HostRuntime;
    use arrayjit_pln::fit_on;
    if !HostRuntime::available() {
        eprintln!("skipped: g++ is not available for the CUDA emulator");
        return;
    }
    let data = Dataset::oaks(1, DType::F64).unwrap();
    let rt = std::sync::Arc::new(HostRuntime);
    for level in [1, 3, 4] {
        let on_device = fit_on(&rt, level, &data, 3, &mut |_| {}).unwrap();
        let on_cpu = fit(level, &data, 3, &mut |_| {}).unwrap();
        for (a, b) in on_device.losses.iter().zip(&on_cpu.losses) {
            assert!((a - b).abs() <= 1e-9 * b.abs(), "level {level}: {a} vs {b}");
        }
    }
    // Level 0 on a device: `crates/cuda/tests/exec.rs`.
}

/// At the tutorial's size (n = 11600, f32), S shrinks early on and Σ comes
/// close to singular (its inverse's entries reach 10⁴ by iteration 24): a
/// covariance update summed carelessly in f32 makes the Cholesky factor fail
/// there. Levels 1 and 2 (each computing MᵀM its own way) pass through.
#[test]
fn the_tutorial_size_passes_its_near_singular_phase_in_f32() {
    let data = Dataset::oaks(100, DType::F32).unwrap();
    let fits: Vec<Fit> = [1, 2].iter().map(|&l| fit(l, &data, 40, &mut |_| {}).unwrap()).collect();
    for f in &fits {
        assert!(f.losses.iter().all(|l| l.is_finite()), "level {}: {:?}", f.level, f.losses);
    }
    for (i, (a, b)) in fits[0].losses.iter().zip(&fits[1].losses).enumerate() {
        assert!(rel(*a, *b) < 1e-3, "iteration {i}: level 1 {a} vs level 2 {b}");
    }
}
