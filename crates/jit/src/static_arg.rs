//! Static arguments: values that are not arrays, known when tracing, and part
//! of the compile-cache key (JAX's `static_argnums`).

use arrayjit_trace::tree::StaticField;
use arrayjit_trace::{Array, StaticValue, Tree, TreeDef, TreeError};

/// A non-array argument of a jitted function: its value is visible to the
/// traced code as a plain Rust value and joins the cache key, so each
/// distinct value compiles once.
///
/// ```
/// use arrayjit_jit::{jit, Static};
/// use arrayjit_trace::Array;
///
/// let power = jit(|(x, Static(n)): (Array, Static<i32>)| x.powi(n));
/// let x = Array::from_vec(vec![2.0f64], [1]);
/// assert_eq!(power.call((x.clone(), Static(3)))?.to_vec::<f64>(), [8.0]);
/// assert_eq!(power.call((x, Static(2)))?.to_vec::<f64>(), [4.0]);
/// assert_eq!(power.cache_size(), 2);
/// # Ok::<(), arrayjit_trace::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Static<T>(pub T);

impl<T: StaticField + Clone> Tree for Static<T> {
    fn flatten(&self, _leaves: &mut Vec<Array>) -> TreeDef {
        TreeDef::Struct { name: "Static", fields: vec![], statics: vec![("value", StaticValue::new(self.0.clone()))] }
    }

    fn unflatten(def: &TreeDef, _leaves: &mut dyn Iterator<Item = Array>) -> Result<Self, TreeError> {
        let (_, statics) = def.expect_struct("Static", &[], &["value"])?;
        let v = statics.first().ok_or_else(|| TreeError("a Static without its value".into()))?;
        v.1.get::<T>().map(Static)
    }
}
