//! Gradient transformations for arrayjit, as optax does them: each is a pure
//! pair of functions, `init(params) -> state` and `update(updates, state,
//! params) -> (updates, state)`, over trees of arrays, with the state itself
//! a tree. Being built from array operations only, they run eagerly, under
//! `jit` and inside `scan` alike, and chain freely.
//!
//! ```
//! use arrayjit_optim::{apply_updates, chain, clip, scale, scale_by_radam, GradientTransformation};
//! use arrayjit_trace::{Array, DType};
//!
//! // The PLN tutorial's optimizer: RAdam, no learning rate, steps clipped to ±0.1.
//! let opt = chain(chain(scale_by_radam(), scale(-1.0)), clip(0.1));
//! let params = (Array::zeros([2], DType::F64), Array::ones([3], DType::F64));
//! let mut state = opt.init_tree(&params).unwrap();
//! let grads = (Array::ones([2], DType::F64), Array::ones([3], DType::F64) * -2.0);
//! let (updates, next) = opt.update_tree(grads, state, &params).unwrap();
//! state = next;
//! let params = apply_updates(&params, &updates).unwrap();
//! // Step 1 of RAdam is the bias-corrected momentum, the gradient itself, clipped.
//! assert_eq!(params.0.to_vec::<f64>(), vec![-0.1, -0.1]);
//! assert_eq!(params.1.to_vec::<f64>(), vec![1.1, 1.1, 1.1]);
//! # let _ = state;
//! ```

mod adam;
mod clipping;
mod combine;
mod simple;

pub use adam::{adam, radam, scale_by_adam, scale_by_radam, Adam, AdamState, RAdam};
pub use clipping::{clip, clip_by_global_norm, Clip, ClipByGlobalNorm};
pub use combine::{chain, Chain};
pub use simple::{add_decayed_weights, scale, scale_by_learning_rate, sgd, AddDecayedWeights, Scale};

use arrayjit_trace::{tree_flatten, tree_unflatten, Array, Error, Loc, Result, Tree};

/// A gradient transformation: how updates (at first, gradients) are turned
/// into the steps applied to the parameters, with state carried between steps.
pub trait GradientTransformation {
    /// The state carried from one step to the next: a tree of arrays.
    type State: Tree + Clone;

    /// The initial state for parameters `params` (the leaves of the tree).
    fn init(&self, params: &[Array]) -> Result<Self::State>;

    /// Transforms `updates` (one per parameter leaf) given the state and the
    /// current parameters; returns the new updates and state.
    fn update(&self, updates: Vec<Array>, state: Self::State, params: &[Array]) -> Result<(Vec<Array>, Self::State)>;

    /// [`init`](GradientTransformation::init) on a tree of parameters.
    fn init_tree<P: Tree>(&self, params: &P) -> Result<Self::State> {
        self.init(&tree_flatten(params).0)
    }

    /// [`update`](GradientTransformation::update) on trees: `updates` must
    /// have the structure of `params`.
    #[track_caller]
    fn update_tree<P: Tree>(&self, updates: P, state: Self::State, params: &P) -> Result<(P, Self::State)> {
        let loc = Loc(Some(std::panic::Location::caller()));
        let (u, udef) = tree_flatten(&updates);
        let (p, pdef) = tree_flatten(params);
        if udef != pdef {
            return Err(Error::Tree {
                message: format!(
                    "the updates have structure {} but the parameters {}",
                    udef.describe(),
                    pdef.describe()
                ),
                loc,
            });
        }
        let (u, state) = self.update(u, state, &p)?;
        Ok((tree_unflatten(&udef, u).map_err(Error::from)?, state))
    }
}

/// `params + updates`, leaf by leaf (optax's `apply_updates`); each result
/// keeps its parameter's dtype.
#[track_caller]
pub fn apply_updates<P: Tree>(params: &P, updates: &P) -> Result<P> {
    let loc = Loc(Some(std::panic::Location::caller()));
    let (p, pdef) = tree_flatten(params);
    let (u, udef) = tree_flatten(updates);
    if udef != pdef {
        return Err(Error::Tree {
            message: format!("the updates have structure {} but the parameters {}", udef.describe(), pdef.describe()),
            loc,
        });
    }
    let out = p.iter().zip(&u).map(|(p, u)| p.try_add(&u.try_astype(p.dtype())?)).collect::<Result<Vec<_>>>()?;
    tree_unflatten(&pdef, out).map_err(Error::from)
}

/// Checks that a transformation was given one update per parameter.
pub(crate) fn same_count(op: &str, updates: &[Array], params: &[Array]) -> Result<()> {
    if updates.len() != params.len() && !params.is_empty() {
        return Err(Error::Invalid {
            message: format!("{op}: {} updates for {} parameters", updates.len(), params.len()),
            loc: Default::default(),
        });
    }
    Ok(())
}
