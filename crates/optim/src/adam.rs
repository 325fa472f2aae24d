//! Adam and rectified Adam (RAdam): moment estimates with bias correction.
//!
//! Scalars of the step (β₁ᵗ, β₂ᵗ, RAdam's ρₜ) are computed as optax computes
//! them: βᵗ as the correctly rounded power in the parameter's dtype (here:
//! the f64 power, rounded once), and ρₜ in that dtype. RAdam's ρₜ cancels
//! badly in f32, so a βᵗ accumulated by repeated multiplication would drift
//! from the reference trajectory.

use crate::{same_count, GradientTransformation};
use arrayjit_derive::Tree;
use arrayjit_trace::{where_, Array, DType, Result};

/// The state of [`scale_by_adam`] and [`scale_by_radam`]: the step count
/// and the first and second moments of each parameter.
#[derive(Clone, Debug, Tree)]
#[tree(crate = "arrayjit_trace")]
pub struct AdamState {
    /// Steps taken, an `i32` scalar.
    pub count: Array,
    pub mu: Vec<Array>,
    pub nu: Vec<Array>,
}

/// Scales updates by Adam's bias-corrected moments (Kingma & Ba, 2015):
/// `m̂ / (√(v̂ + eps_root) + eps)`.
#[derive(Clone, Copy, Debug)]
pub struct Adam {
    pub b1: f64,
    pub b2: f64,
    pub eps: f64,
    pub eps_root: f64,
}

/// Adam's scaling with optax's defaults (β₁ = 0.9, β₂ = 0.999, ε = 1e-8).
pub fn scale_by_adam() -> Adam {
    Adam { b1: 0.9, b2: 0.999, eps: 1e-8, eps_root: 0.0 }
}

/// Scales updates by rectified Adam (Liu et al., 2020): the bias-corrected
/// momentum while the variance estimate is intractable (ρₜ < threshold),
/// Adam's step times the rectification factor rₜ after.
#[derive(Clone, Copy, Debug)]
pub struct RAdam {
    pub b1: f64,
    pub b2: f64,
    pub eps: f64,
    pub eps_root: f64,
    pub threshold: f64,
}

/// RAdam's scaling with optax's defaults (β₁ = 0.9, β₂ = 0.999, ε = 1e-8, threshold 5).
pub fn scale_by_radam() -> RAdam {
    RAdam { b1: 0.9, b2: 0.999, eps: 1e-8, eps_root: 0.0, threshold: 5.0 }
}

/// Adam with a learning rate: `chain(scale_by_adam(), scale_by_learning_rate(lr))`.
pub fn adam(learning_rate: f64) -> crate::Chain<Adam, crate::Scale> {
    crate::chain(scale_by_adam(), crate::scale_by_learning_rate(learning_rate))
}

/// RAdam with a learning rate.
pub fn radam(learning_rate: f64) -> crate::Chain<RAdam, crate::Scale> {
    crate::chain(scale_by_radam(), crate::scale_by_learning_rate(learning_rate))
}

fn init_moments(params: &[Array]) -> AdamState {
    AdamState {
        count: Array::scalar(0i32),
        mu: params.iter().map(Array::zeros_like).collect(),
        nu: params.iter().map(Array::zeros_like).collect(),
    }
}

/// The count after this step (saturating at `i32::MAX`), and the new moments.
fn moments(b1: f64, b2: f64, updates: &[Array], state: AdamState) -> Result<(Array, Vec<Array>, Vec<Array>)> {
    let count = where_(state.count.try_lt(i32::MAX)?, state.count.try_add(1i32)?, &state.count);
    let mu = updates
        .iter()
        .zip(&state.mu)
        .map(|(g, m)| m.try_mul(b1)?.try_add(&g.try_mul(1.0 - b1)?))
        .collect::<Result<Vec<_>>>()?;
    let nu = updates
        .iter()
        .zip(&state.nu)
        .map(|(g, v)| v.try_mul(b2)?.try_add(&g.try_mul(g)?.try_mul(1.0 - b2)?))
        .collect::<Result<Vec<_>>>()?;
    Ok((count, mu, nu))
}

/// βᵗ in `dtype`: the f64 power, rounded once.
fn power(beta: f64, count: &Array, dtype: DType) -> Result<Array> {
    Array::scalar(beta).try_pow(&count.try_astype(DType::F64)?)?.try_astype(dtype)
}

/// `moment / (1 − βᵗ)`, the correction computed in the moment's dtype.
fn bias_corrected(moment: &Array, beta: f64, count: &Array) -> Result<Array> {
    let bt = power(beta, count, moment.dtype())?;
    moment.try_div(&bt.try_neg()?.try_add(1.0)?)
}

impl GradientTransformation for Adam {
    type State = AdamState;

    fn init(&self, params: &[Array]) -> Result<AdamState> {
        Ok(init_moments(params))
    }

    fn update(&self, updates: Vec<Array>, state: AdamState, params: &[Array]) -> Result<(Vec<Array>, AdamState)> {
        same_count("scale_by_adam", &updates, params)?;
        let (count, mu, nu) = moments(self.b1, self.b2, &updates, state)?;
        let out = mu
            .iter()
            .zip(&nu)
            .map(|(m, v)| {
                let m_hat = bias_corrected(m, self.b1, &count)?;
                let v_hat = bias_corrected(v, self.b2, &count)?;
                m_hat.try_div(&v_hat.try_add(self.eps_root)?.try_sqrt()?.try_add(self.eps)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((out, AdamState { count, mu, nu }))
    }
}

impl GradientTransformation for RAdam {
    type State = AdamState;

    fn init(&self, params: &[Array]) -> Result<AdamState> {
        Ok(init_moments(params))
    }

    fn update(&self, updates: Vec<Array>, state: AdamState, params: &[Array]) -> Result<(Vec<Array>, AdamState)> {
        same_count("scale_by_radam", &updates, params)?;
        let (count, mu, nu) = moments(self.b1, self.b2, &updates, state)?;
        let ro_inf = 2.0 / (1.0 - self.b2) - 1.0;
        let out = mu
            .iter()
            .zip(&nu)
            .map(|(m, v)| {
                let dtype = m.dtype();
                // ρₜ = ρ∞ − 2t·β₂ᵗ/(1 − β₂ᵗ), in the parameter's dtype.
                let b2t = power(self.b2, &count, dtype)?;
                let t = count.try_astype(dtype)?;
                let ro = t
                    .try_mul(2.0)?
                    .try_mul(&b2t)?
                    .try_div(&b2t.try_neg()?.try_add(1.0)?)?
                    .try_neg()?
                    .try_add(ro_inf)?;
                let m_hat = bias_corrected(m, self.b1, &count)?;
                let v_hat = bias_corrected(v, self.b2, &count)?;
                let r = ro
                    .try_sub(4.0)?
                    .try_mul(&ro.try_sub(2.0)?)?
                    .try_mul(ro_inf)?
                    .try_div(&ro.try_mul((ro_inf - 4.0) * (ro_inf - 2.0))?)?
                    .try_sqrt()?;
                let rectified =
                    r.try_mul(&m_hat)?.try_div(&v_hat.try_add(self.eps_root)?.try_sqrt()?.try_add(self.eps)?)?;
                arrayjit_trace::try_where(ro.try_ge(self.threshold)?, &rectified, &m_hat)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((out, AdamState { count, mu, nu }))
    }
}
