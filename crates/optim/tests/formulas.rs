//! Each transformation against its published update formula, computed here
//! by hand in f64 over several steps; and the same steps eager, under `jit`
//! and inside `scan` agree.

use arrayjit_jit::jit;
use arrayjit_optim::*;
use arrayjit_trace::Array;

/// Gradients for step t (1-based) of a 3-element parameter: varied signs and sizes.
fn grad_at(t: usize) -> Vec<f64> {
    (0..3).map(|i| ((t * 7 + i * 3) as f64).sin() * (1.0 + i as f64)).collect()
}

fn close(got: &[f64], want: &[f64], what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{what}: got {g}, want {w}");
    }
}

/// Runs `opt` for `steps` steps on f64 parameters, returning each step's updates.
fn run<T: GradientTransformation>(opt: &T, steps: usize) -> Vec<Vec<f64>> {
    let params = vec![Array::from_vec(vec![0.5f64, -1.0, 2.0], [3])];
    let mut state = opt.init(&params).unwrap();
    (1..=steps)
        .map(|t| {
            let g = vec![Array::from_vec(grad_at(t), [3])];
            let (u, s) = opt.update(g, state.clone(), &params).unwrap();
            state = s;
            u[0].to_vec::<f64>()
        })
        .collect()
}

#[test]
fn adam_matches_its_formula() {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let mut m = [0.0; 3];
    let mut v = [0.0; 3];
    for (t, got) in run(&scale_by_adam(), 8).iter().enumerate() {
        let t = t + 1;
        let g = grad_at(t);
        let want: Vec<f64> = (0..3)
            .map(|i| {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let mh = m[i] / (1.0 - b1.powi(t as i32));
                let vh = v[i] / (1.0 - b2.powi(t as i32));
                mh / (vh.sqrt() + eps)
            })
            .collect();
        close(got, &want, &format!("adam step {t}"));
    }
}

#[test]
fn radam_switches_from_momentum_to_the_rectified_step() {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let ro_inf = 2.0 / (1.0 - b2) - 1.0;
    let mut m = [0.0; 3];
    let mut v = [0.0; 3];
    let mut rectified_steps = Vec::new();
    for (t, got) in run(&scale_by_radam(), 10).iter().enumerate() {
        let t = t + 1;
        let g = grad_at(t);
        let b2t = b2.powi(t as i32);
        let ro = ro_inf - 2.0 * t as f64 * b2t / (1.0 - b2t);
        if ro >= 5.0 {
            rectified_steps.push(t);
        }
        let want: Vec<f64> = (0..3)
            .map(|i| {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let mh = m[i] / (1.0 - b1.powi(t as i32));
                let vh = v[i] / (1.0 - b2t);
                if ro >= 5.0 {
                    let r = ((ro - 4.0) * (ro - 2.0) * ro_inf / ((ro_inf - 4.0) * (ro_inf - 2.0) * ro)).sqrt();
                    r * mh / (vh.sqrt() + eps)
                } else {
                    mh
                }
            })
            .collect();
        close(got, &want, &format!("radam step {t}"));
    }
    // With β₂ = 0.999, ρₜ first reaches 5 at step 6.
    assert_eq!(rectified_steps, vec![6, 7, 8, 9, 10]);
}

#[test]
fn stateless_transformations() {
    let u = run(&chain(chain(scale(-2.0), add_decayed_weights(0.1)), clip(1.5)), 2);
    let p = [0.5, -1.0, 2.0];
    for (t, got) in u.iter().enumerate() {
        let want: Vec<f64> =
            grad_at(t + 1).iter().zip(&p).map(|(g, p)| (-2.0 * g + 0.1 * p).clamp(-1.5, 1.5)).collect();
        close(got, &want, "scale, decay, clip");
    }
    let g = grad_at(1);
    let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
    let got = &run(&clip_by_global_norm(0.5), 1)[0];
    close(got, &g.iter().map(|x| x / norm * 0.5).collect::<Vec<_>>(), "clip_by_global_norm");
    let got = &run(&clip_by_global_norm(100.0), 1)[0];
    close(got, &g, "clip_by_global_norm below the bound");
    close(&run(&sgd(0.1), 1)[0], &g.iter().map(|x| -0.1 * x).collect::<Vec<_>>(), "sgd");
}

#[test]
fn the_global_norm_of_mixed_precisions_is_taken_in_the_widest() {
    // 1e20² overflows f32: a total kept in the f32 leaf's dtype would be
    // infinite and every update scaled to 0.
    let updates = vec![Array::from_vec(vec![3.0f32], [1]), Array::from_vec(vec![1e20f64], [1])];
    let (out, ()) = clip_by_global_norm(1.0).update(updates, (), &[]).unwrap();
    assert!((out[1].to_vec::<f64>()[0] - 1.0).abs() < 1e-12, "{:?}", out[1].to_vec::<f64>());
    assert!((out[0].to_vec::<f32>()[0] - 3e-20).abs() < 1e-26, "{:?}", out[0].to_vec::<f32>());
}

#[test]
fn eager_jit_and_scan_agree() {
    let opt = chain(chain(radam(0.5), clip_by_global_norm(2.0)), clip(0.3));
    let p0 = (Array::from_vec(vec![0.5f32, -1.0, 2.0], [3]), Array::from_vec(vec![1.0f32, 2.0], [2]));
    // Gradient of Σ sin(p)·p, by hand: cos(p)·p + sin(p).
    let grad = |p: &Array| &p.cos() * p + p.sin();
    let step = |(p, s): ((Array, Array), _), (): ()| {
        let g = (grad(&p.0), grad(&p.1));
        let (u, s) = opt.update_tree(g, s, &p).unwrap();
        ((apply_updates(&p, &u).unwrap(), s), ())
    };
    let s0 = opt.init_tree(&p0).unwrap();
    let mut eager = (p0.clone(), s0.clone());
    for _ in 0..12 {
        eager = step(eager, ()).0;
    }
    let jstep = jit(|c: ((Array, Array), _)| step(c, ()).0);
    let mut jitted = (p0.clone(), s0.clone());
    for _ in 0..12 {
        jitted = jstep.call(jitted).unwrap();
    }
    let looped = jit(|c: ((Array, Array), _)| {
        arrayjit_trace::scan_with(step, c, (), arrayjit_trace::ScanOptions::default().length(12)).map(|(c, ())| c)
    })
    .call((p0, s0))
    .unwrap();
    for (a, b) in [
        (&eager.0 .0, &jitted.0 .0),
        (&eager.0 .1, &jitted.0 .1),
        (&eager.0 .0, &looped.0 .0),
        (&eager.0 .1, &looped.0 .1),
    ] {
        for (x, y) in a.to_vec::<f32>().iter().zip(b.to_vec::<f32>()) {
            assert!((x - y).abs() <= 2e-6 * (1.0 + x.abs()), "{x} vs {y}");
        }
    }
}
