//! Clipping: each update element to ±c, or all updates together to a
//! maximum global norm.

use crate::GradientTransformation;
use arrayjit_trace::{Array, Result};

/// Clips every update element to `[-max, max]` (optax's `clip`).
#[derive(Clone, Copy, Debug)]
pub struct Clip(pub f64);

pub fn clip(max_delta: f64) -> Clip {
    Clip(max_delta)
}

impl GradientTransformation for Clip {
    type State = ();

    fn init(&self, _: &[Array]) -> Result<()> {
        Ok(())
    }

    fn update(&self, updates: Vec<Array>, (): (), _: &[Array]) -> Result<(Vec<Array>, ())> {
        let out = updates.iter().map(|u| u.try_maximum(-self.0)?.try_minimum(self.0)).collect::<Result<_>>()?;
        Ok((out, ()))
    }
}

/// Rescales all updates together so that their global norm
/// `√(Σ_leaves Σ u²)` is at most `max_norm` (unchanged when it already is).
#[derive(Clone, Copy, Debug)]
pub struct ClipByGlobalNorm(pub f64);

pub fn clip_by_global_norm(max_norm: f64) -> ClipByGlobalNorm {
    ClipByGlobalNorm(max_norm)
}

impl GradientTransformation for ClipByGlobalNorm {
    type State = ();

    fn init(&self, _: &[Array]) -> Result<()> {
        Ok(())
    }

    fn update(&self, updates: Vec<Array>, (): (), _: &[Array]) -> Result<(Vec<Array>, ())> {
        // The squared norms summed in the widest dtype among the leaves (an
        // f64 leaf's square could overflow an f32 total, as optax's would not).
        let Some(wide) = updates.iter().map(Array::dtype).max() else { return Ok((updates, ())) };
        let mut total = Array::zeros([], wide);
        for u in &updates {
            total = total.try_add(&u.try_mul(u)?.try_sum(..)?.try_astype(wide)?)?;
        }
        let norm = total.try_sqrt()?;
        let small = norm.try_lt(self.0)?;
        let out = updates
            .iter()
            .map(|u| {
                let scaled = u.try_div(&norm.try_astype(u.dtype())?)?.try_mul(self.0)?;
                arrayjit_trace::try_where(&small, u, &scaled)
            })
            .collect::<Result<_>>()?;
        Ok((out, ()))
    }
}
