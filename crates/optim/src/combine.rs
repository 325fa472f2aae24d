//! Chaining transformations: the updates flow through each in turn; the
//! state is the tuple of their states.

use crate::GradientTransformation;
use arrayjit_trace::{Array, Result};

/// `first`, then `second`.
#[derive(Clone, Copy, Debug)]
pub struct Chain<A, B> {
    pub first: A,
    pub second: B,
}

/// Applies `first`, then `second` to its output (optax's `chain`; nest for more).
pub fn chain<A: GradientTransformation, B: GradientTransformation>(first: A, second: B) -> Chain<A, B> {
    Chain { first, second }
}

impl<A: GradientTransformation, B: GradientTransformation> GradientTransformation for Chain<A, B> {
    type State = (A::State, B::State);

    fn init(&self, params: &[Array]) -> Result<Self::State> {
        Ok((self.first.init(params)?, self.second.init(params)?))
    }

    fn update(&self, updates: Vec<Array>, (a, b): Self::State, params: &[Array]) -> Result<(Vec<Array>, Self::State)> {
        let (u, a) = self.first.update(updates, a, params)?;
        let (u, b) = self.second.update(u, b, params)?;
        Ok((u, (a, b)))
    }
}
