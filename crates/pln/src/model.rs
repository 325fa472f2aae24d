//! The PLN model: variational parameters, the negative ELBO, the closed-form
//! covariance update and one optimisation step. Every function here is
//! plain array code: it runs eagerly, under `jit` and inside `scan` alike.

use crate::data::Dataset;
use arrayjit::optim::{chain, clip, scale, scale_by_radam, Chain, Clip, GradientTransformation, RAdam, Scale};
use arrayjit::{value_and_grad, Array, DType, Result, Tree};

/// The parameters fitted by gradient steps: B (d×p), M and S (n×p).
#[derive(Clone, Debug, Tree)]
pub struct Params {
    pub b: Array,
    pub m: Array,
    pub s: Array,
}

/// The tutorial's optimizer: RAdam, no learning rate, steps clipped to ±0.1.
pub type Optimizer = Chain<Chain<RAdam, Scale>, Clip>;
/// Its state.
pub type OptState = <Optimizer as GradientTransformation>::State;

pub fn optimizer() -> Optimizer {
    chain(chain(scale_by_radam(), scale(-1.0)), clip(0.1))
}

/// The starting point: B = 0, M = 0, S = 1, Σ = Ω = I.
pub fn init(data: &Dataset) -> (Params, Array, Array) {
    let (n, p, d) = (data.n, data.p, data.x.shape()[1]);
    let params = Params {
        b: Array::zeros([d, p], data.dtype),
        m: Array::zeros([n, p], data.dtype),
        s: Array::ones([n, p], data.dtype),
    };
    (params, Array::eye(p, data.dtype), Array::eye(p, data.dtype))
}

/// log(k!) by Stirling's formula, as the tutorial: log√(2πk') + k'·log(k'/e), k' = k + [k = 0].
pub fn log_stirling(k: &Array) -> Array {
    let kp = k + k.eq(0.0).astype(k.dtype());
    (&kp * (2.0 * std::f64::consts::PI)).sqrt().log() + &kp * (&kp / std::f64::consts::E).log()
}

/// −ELBO at `params` with Ω held fixed:
/// ELBO = n/2·logdet Ω + Σ(−A + Y⊙(O + M + XB) + ½ log S²) − ½ tr((MᵀM + diag Σᵢ S²)·Ω)
/// + ½ n p − Σ log_stirling(Y), with A = exp(O + M + XB + S²/2).
pub fn neg_elbo(params: &Params, omega: &Array, data: &Dataset) -> Array {
    let (n, p) = (data.n as f64, data.p as f64);
    let Params { b, m, s } = params;
    let s2 = s * s;
    let z = &data.o + m + data.x.matmul(b);
    let a = (&z + &s2 * 0.5).exp();
    let tr = (m.t().matmul(m) + s2.sum(0).diag()).matmul(omega).diag_part().sum(..);
    let elbo = omega.logdet() * (n / 2.0) + (-&a + &data.y * &z + s2.log() * 0.5).sum(..) - tr * 0.5 + 0.5 * n * p
        - log_stirling(&data.y).sum(..);
    -elbo
}

/// Σ = (MᵀM + diag(Σᵢ S²))/n, the ELBO's maximiser in Σ.
pub fn sigma_closed_form(m: &Array, s: &Array) -> Array {
    let n = m.shape()[0] as f64;
    (m.t().matmul(m) + (s * s).sum(0).diag()) / n
}

/// One step: the loss and its gradient in (B, M, S), the optimizer's update,
/// then the closed-form Σ and Ω = Σ⁻¹. Returns the new parameters, Σ, Ω,
/// optimizer state, and the loss before the step.
pub fn step(
    data: &Dataset,
    params: Params,
    omega: &Array,
    opt: OptState,
) -> Result<(Params, Array, Array, OptState, Array)> {
    let (loss, grads) = value_and_grad(|p: Params| neg_elbo(&p, omega, data))(params.clone())?;
    let (updates, opt) = optimizer().update_tree(grads, opt, &params)?;
    let params = arrayjit::optim::apply_updates(&params, &updates)?;
    let sigma = sigma_closed_form(&params.m, &params.s);
    let omega = sigma.try_inv_spd()?;
    Ok((params, sigma, omega, opt, loss))
}

/// The gradient of −ELBO in closed form (for tests): with A as above,
/// ∂/∂M = A − Y + M·(Ω + Ωᵀ)/2, ∂/∂S = A⊙S − 1/S + S⊙diag(Ω) (broadcast over rows),
/// ∂/∂B = Xᵀ(A − Y).
pub fn closed_form_gradient(params: &Params, omega: &Array, data: &Dataset) -> Params {
    let Params { b, m, s } = params;
    let a = (&data.o + m + data.x.matmul(b) + s * s * 0.5).exp();
    let r = &a - &data.y;
    Params {
        b: data.x.t().matmul(&r),
        m: &r + m.matmul(&((omega + omega.t()) * 0.5)),
        s: &a * s - s.powi(-1) + s * omega.diag_part(),
    }
}

/// Converts a scalar array to f64.
pub fn scalar(x: &Array) -> f64 {
    x.astype(DType::F64).item::<f64>()
}
