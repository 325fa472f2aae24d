//! Stateless transformations: scaling, the learning rate, weight decay, and
//! plain gradient descent.

use crate::{same_count, GradientTransformation};
use arrayjit_trace::{Array, Result};

/// Multiplies every update by a constant.
#[derive(Clone, Copy, Debug)]
pub struct Scale(pub f64);

/// Multiplies updates by `factor` (`scale(-1.0)` turns a gradient into a descent direction).
pub fn scale(factor: f64) -> Scale {
    Scale(factor)
}

/// Multiplies updates by `−learning_rate` (descent).
pub fn scale_by_learning_rate(learning_rate: f64) -> Scale {
    Scale(-learning_rate)
}

/// Plain gradient descent: `scale_by_learning_rate(learning_rate)`.
pub fn sgd(learning_rate: f64) -> Scale {
    scale_by_learning_rate(learning_rate)
}

impl GradientTransformation for Scale {
    type State = ();

    fn init(&self, _: &[Array]) -> Result<()> {
        Ok(())
    }

    fn update(&self, updates: Vec<Array>, (): (), _: &[Array]) -> Result<(Vec<Array>, ())> {
        Ok((updates.iter().map(|u| u.try_mul(self.0)).collect::<Result<_>>()?, ()))
    }
}

/// Adds `weight_decay · params` to the updates (decoupled weight decay, as in AdamW).
#[derive(Clone, Copy, Debug)]
pub struct AddDecayedWeights(pub f64);

pub fn add_decayed_weights(weight_decay: f64) -> AddDecayedWeights {
    AddDecayedWeights(weight_decay)
}

impl GradientTransformation for AddDecayedWeights {
    type State = ();

    fn init(&self, _: &[Array]) -> Result<()> {
        Ok(())
    }

    fn update(&self, updates: Vec<Array>, (): (), params: &[Array]) -> Result<(Vec<Array>, ())> {
        same_count("add_decayed_weights", &updates, params)?;
        if params.is_empty() && !updates.is_empty() {
            return Err(arrayjit_trace::Error::Invalid {
                message: "add_decayed_weights needs the parameters".into(),
                loc: Default::default(),
            });
        }
        let out = updates.iter().zip(params).map(|(u, p)| u.try_add(&p.try_mul(self.0)?)).collect::<Result<_>>()?;
        Ok((out, ()))
    }
}
