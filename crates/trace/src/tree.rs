//! Pytrees: nested containers of arrays that transformations take and return.
//!
//! A [`Tree`] flattens into its array leaves plus a [`TreeDef`] describing the
//! structure (and the values of static, non-array fields), and is rebuilt from
//! the two. `TreeDef` is hashable: together with the leaves' avals it is what a
//! compile cache keys on. `#[derive(Tree)]` implements the trait for structs.

use crate::Array;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The structure of a tree, without its leaves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TreeDef {
    /// One array.
    Leaf,
    /// `()`: no leaves.
    Unit,
    /// A tuple or fixed-size array.
    Tuple(Vec<TreeDef>),
    /// A `Vec`.
    List(Vec<TreeDef>),
    /// An `Option`.
    Option(Option<Box<TreeDef>>),
    /// A `BTreeMap<String, _>`, keys in order.
    Map(Vec<(String, TreeDef)>),
    /// A struct with array-holding fields and static fields.
    Struct { name: &'static str, fields: Vec<(&'static str, TreeDef)>, statics: Vec<(&'static str, StaticValue)> },
}

impl TreeDef {
    /// Number of leaves.
    pub fn num_leaves(&self) -> usize {
        match self {
            TreeDef::Leaf => 1,
            TreeDef::Unit | TreeDef::Option(None) => 0,
            TreeDef::Tuple(c) | TreeDef::List(c) => c.iter().map(TreeDef::num_leaves).sum(),
            TreeDef::Option(Some(c)) => c.num_leaves(),
            TreeDef::Map(c) => c.iter().map(|(_, d)| d.num_leaves()).sum(),
            TreeDef::Struct { fields, .. } => fields.iter().map(|(_, d)| d.num_leaves()).sum(),
        }
    }

    /// A readable path for every leaf, in flattening order: `.0`, `[2]`, `.M`, `["key"]`.
    pub fn leaf_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.paths_into(String::new(), &mut out);
        out
    }

    fn paths_into(&self, prefix: String, out: &mut Vec<String>) {
        match self {
            TreeDef::Leaf => out.push(if prefix.is_empty() { "<root>".to_string() } else { prefix }),
            TreeDef::Unit | TreeDef::Option(None) => {}
            TreeDef::Tuple(c) => c.iter().enumerate().for_each(|(i, d)| d.paths_into(format!("{prefix}.{i}"), out)),
            TreeDef::List(c) => c.iter().enumerate().for_each(|(i, d)| d.paths_into(format!("{prefix}[{i}]"), out)),
            TreeDef::Option(Some(c)) => c.paths_into(prefix, out),
            TreeDef::Map(c) => c.iter().for_each(|(k, d)| d.paths_into(format!("{prefix}[{k:?}]"), out)),
            TreeDef::Struct { fields, .. } => {
                fields.iter().for_each(|(k, d)| d.paths_into(format!("{prefix}.{k}"), out))
            }
        }
    }

    /// A short description for error messages.
    pub fn describe(&self) -> String {
        match self {
            TreeDef::Leaf => "an array".into(),
            TreeDef::Unit => "()".into(),
            TreeDef::Tuple(c) => format!("a tuple of {}", c.len()),
            TreeDef::List(c) => format!("a Vec of {}", c.len()),
            TreeDef::Option(None) => "None".into(),
            TreeDef::Option(Some(_)) => "Some(..)".into(),
            TreeDef::Map(c) => format!("a map with {} keys", c.len()),
            TreeDef::Struct { name, .. } => format!("a struct {name}"),
        }
    }

    fn mismatch(&self, want: &str) -> TreeError {
        TreeError(format!("expected {want}, found {}", self.describe()))
    }

    /// The children of a tuple of `n`, for `unflatten` implementations.
    pub fn expect_tuple(&self, n: usize) -> Result<&[TreeDef], TreeError> {
        match self {
            TreeDef::Tuple(c) if c.len() == n => Ok(c),
            _ => Err(self.mismatch(&format!("a tuple of {n}"))),
        }
    }

    /// The field and static definitions of a struct, checked against the names
    /// the type declares (used by `#[derive(Tree)]`).
    // The return type mirrors `TreeDef::Struct`'s fields; an alias would only hide that.
    #[allow(clippy::type_complexity)]
    pub fn expect_struct(
        &self,
        want: &'static str,
        field_names: &[&str],
        static_names: &[&str],
    ) -> Result<(&[(&'static str, TreeDef)], &[(&'static str, StaticValue)]), TreeError> {
        match self {
            TreeDef::Struct { name, fields, statics }
                if *name == want
                    && fields.iter().map(|f| f.0).eq(field_names.iter().copied())
                    && statics.iter().map(|s| s.0).eq(static_names.iter().copied()) =>
            {
                Ok((fields, statics))
            }
            _ => Err(self.mismatch(&format!("a struct {want}"))),
        }
    }
}

impl fmt::Display for TreeDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeDef::Leaf => f.write_str("*"),
            TreeDef::Unit => f.write_str("()"),
            TreeDef::Tuple(c) => {
                f.write_str("(")?;
                for (i, d) in c.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str(if c.len() == 1 { ",)" } else { ")" })
            }
            TreeDef::List(c) => {
                f.write_str("[")?;
                for (i, d) in c.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str("]")
            }
            TreeDef::Option(None) => f.write_str("None"),
            TreeDef::Option(Some(d)) => write!(f, "Some({d})"),
            TreeDef::Map(c) => {
                f.write_str("{")?;
                for (i, (k, d)) in c.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: {d}")?;
                }
                f.write_str("}")
            }
            TreeDef::Struct { name, fields, statics } => {
                write!(f, "{name} {{")?;
                let mut first = true;
                for (k, d) in fields {
                    write!(f, "{}{k}: {d}", if first { " " } else { ", " })?;
                    first = false;
                }
                for (k, s) in statics {
                    write!(f, "{}{k} = {s:?}", if first { " " } else { ", " })?;
                    first = false;
                }
                f.write_str(" }")
            }
        }
    }
}

/// A tree could not be rebuilt from a definition and leaves.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TreeError(pub String);

/// What a static (non-array) struct field must offer to join a cache key.
///
/// Any `Debug + PartialEq` type qualifies. Two values are the same key when
/// they have the same type, compare equal and print the same; the hash is
/// taken from the printed text, so equal keys always hash alike. For floats
/// this means:
///
/// - `0.0` and `-0.0` are different keys, although `0.0 == -0.0`: a function
///   can tell them apart (`1.0 / x`), so a compiled result for one must not be
///   reused for the other.
/// - NaN is one key, equal to itself, whatever its sign or payload (all print
///   `NaN`). In general a value that is not `==` to itself (a NaN somewhere
///   inside) is compared by its printed text alone, so such a type's `Debug`
///   must show everything that matters.
///
/// A type whose equal values print differently (e.g. a `HashSet`, whose order
/// varies) only causes extra cache misses, never a wrong hit.
pub trait StaticField: Any + Send + Sync + fmt::Debug {
    fn eq_dyn(&self, other: &dyn StaticField) -> bool;
    fn hash_dyn(&self, state: &mut dyn Hasher);
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + Send + Sync + fmt::Debug + PartialEq> StaticField for T {
    fn eq_dyn(&self, other: &dyn StaticField) -> bool {
        other.as_any().downcast_ref::<T>().is_some_and(|o| same_key(self, o))
    }
    fn hash_dyn(&self, mut state: &mut dyn Hasher) {
        format!("{self:?}").hash(&mut state);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The key equality of [`StaticField`]. Requiring equal text on top of `==`
/// is what keeps it consistent with the hash; the `==` part guards against a
/// `Debug` that leaves out fields. `==` cannot be asked of values that are not
/// equal to themselves, so those are keyed by their text.
fn same_key<T: fmt::Debug + PartialEq>(a: &T, b: &T) -> bool {
    // Deliberately `x == x`: it is false exactly when a NaN is inside.
    #[allow(clippy::eq_op)]
    let reflexive = |x: &T| x == x;
    let same_text = || format!("{a:?}") == format!("{b:?}");
    match (reflexive(a), reflexive(b)) {
        (true, true) => a == b && same_text(),
        (false, false) => same_text(),
        _ => false,
    }
}

/// The value of a static field, kept in a [`TreeDef`].
#[derive(Clone)]
pub struct StaticValue(Arc<dyn StaticField>);

impl StaticValue {
    pub fn new<T: StaticField>(v: T) -> StaticValue {
        StaticValue(Arc::new(v))
    }

    /// The value, if it has type `T`.
    pub fn get<T: StaticField + Clone>(&self) -> Result<T, TreeError> {
        self.0
            .as_any()
            .downcast_ref::<T>()
            .cloned()
            .ok_or_else(|| TreeError(format!("static value {:?} has an unexpected type", self.0)))
    }
}

impl fmt::Debug for StaticValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Equality and hashing follow [`StaticField`]: an equivalence relation
/// (NaN equals itself) that the hash agrees with (`-0.0` and `0.0` differ).
impl PartialEq for StaticValue {
    fn eq(&self, other: &StaticValue) -> bool {
        self.0.eq_dyn(&*other.0)
    }
}

impl Eq for StaticValue {}

impl Hash for StaticValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_any().type_id().hash(state);
        self.0.hash_dyn(state);
    }
}

/// A nested container of arrays.
pub trait Tree: Sized {
    /// Appends the leaves in order and describes the structure.
    fn flatten(&self, leaves: &mut Vec<Array>) -> TreeDef;
    /// Rebuilds a value from a structure and the leaves, taking leaves in order.
    fn unflatten(def: &TreeDef, leaves: &mut dyn Iterator<Item = Array>) -> Result<Self, TreeError>;
}

/// The leaves and structure of a tree.
pub fn tree_flatten<T: Tree>(t: &T) -> (Vec<Array>, TreeDef) {
    let mut leaves = Vec::new();
    let def = t.flatten(&mut leaves);
    (leaves, def)
}

/// Rebuilds a tree; every leaf must be used.
pub fn tree_unflatten<T: Tree>(def: &TreeDef, leaves: Vec<Array>) -> Result<T, TreeError> {
    let n = leaves.len();
    if n != def.num_leaves() {
        return Err(TreeError(format!("{} has {} leaves but {n} arrays were given", def, def.num_leaves())));
    }
    let mut it = leaves.into_iter();
    T::unflatten(def, &mut it)
}

/// Applies `f` to every leaf, keeping the structure.
///
/// # Panics
/// If `T`'s [`Tree`] implementation cannot rebuild what its own `flatten`
/// gave (every implementation in this crate and every derived one can).
#[track_caller]
pub fn tree_map<T: Tree>(t: &T, mut f: impl FnMut(&Array) -> Array) -> T {
    let (leaves, def) = tree_flatten(t);
    let mapped: Vec<Array> = leaves.iter().map(&mut f).collect();
    match tree_unflatten(&def, mapped) {
        Ok(v) => v,
        Err(e) => panic!(
            "tree_map: the Tree implementation of {} does not rebuild what it flattens: {e}",
            std::any::type_name::<T>()
        ),
    }
}

/// The leaves of a tree, in order.
pub fn tree_leaves<T: Tree>(t: &T) -> Vec<Array> {
    tree_flatten(t).0
}

fn next_leaf(leaves: &mut dyn Iterator<Item = Array>) -> Result<Array, TreeError> {
    leaves.next().ok_or_else(|| TreeError("ran out of leaves".into()))
}

impl Tree for Array {
    fn flatten(&self, leaves: &mut Vec<Array>) -> TreeDef {
        leaves.push(self.clone());
        TreeDef::Leaf
    }
    fn unflatten(def: &TreeDef, leaves: &mut dyn Iterator<Item = Array>) -> Result<Self, TreeError> {
        match def {
            TreeDef::Leaf => next_leaf(leaves),
            d => Err(d.mismatch("an array")),
        }
    }
}

impl Tree for () {
    fn flatten(&self, _: &mut Vec<Array>) -> TreeDef {
        TreeDef::Unit
    }
    fn unflatten(def: &TreeDef, _: &mut dyn Iterator<Item = Array>) -> Result<Self, TreeError> {
        match def {
            TreeDef::Unit => Ok(()),
            d => Err(d.mismatch("()")),
        }
    }
}

macro_rules! tuple_tree {
    ($n:expr; $($t:ident $i:tt),+) => {
        impl<$($t: Tree),+> Tree for ($($t,)+) {
            fn flatten(&self, leaves: &mut Vec<Array>) -> TreeDef {
                TreeDef::Tuple(vec![$(self.$i.flatten(leaves)),+])
            }
            fn unflatten(def: &TreeDef, leaves: &mut dyn Iterator<Item = Array>) -> Result<Self, TreeError> {
                let c = def.expect_tuple($n)?;
                Ok(($($t::unflatten(&c[$i], leaves)?,)+))
            }
        }
    };
}

tuple_tree!(1; A 0);
tuple_tree!(2; A 0, B 1);
tuple_tree!(3; A 0, B 1, C 2);
tuple_tree!(4; A 0, B 1, C 2, D 3);
tuple_tree!(5; A 0, B 1, C 2, D 3, E 4);
tuple_tree!(6; A 0, B 1, C 2, D 3, E 4, F 5);
tuple_tree!(7; A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_tree!(8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

impl<T: Tree> Tree for Vec<T> {
    fn flatten(&self, leaves: &mut Vec<Array>) -> TreeDef {
        TreeDef::List(self.iter().map(|x| x.flatten(leaves)).collect())
    }
    fn unflatten(def: &TreeDef, leaves: &mut dyn Iterator<Item = Array>) -> Result<Self, TreeError> {
        match def {
            TreeDef::List(c) => c.iter().map(|d| T::unflatten(d, leaves)).collect(),
            d => Err(d.mismatch("a Vec")),
        }
    }
}

impl<T: Tree, const N: usize> Tree for [T; N] {
    fn flatten(&self, leaves: &mut Vec<Array>) -> TreeDef {
        TreeDef::Tuple(self.iter().map(|x| x.flatten(leaves)).collect())
    }
    fn unflatten(def: &TreeDef, leaves: &mut dyn Iterator<Item = Array>) -> Result<Self, TreeError> {
        let c = def.expect_tuple(N)?;
        let v: Vec<T> = c.iter().map(|d| T::unflatten(d, leaves)).collect::<Result<_, _>>()?;
        v.try_into().map_err(|_| TreeError(format!("expected {N} elements")))
    }
}

impl<T: Tree> Tree for Option<T> {
    fn flatten(&self, leaves: &mut Vec<Array>) -> TreeDef {
        TreeDef::Option(self.as_ref().map(|x| Box::new(x.flatten(leaves))))
    }
    fn unflatten(def: &TreeDef, leaves: &mut dyn Iterator<Item = Array>) -> Result<Self, TreeError> {
        match def {
            TreeDef::Option(None) => Ok(None),
            TreeDef::Option(Some(d)) => Ok(Some(T::unflatten(d, leaves)?)),
            d => Err(d.mismatch("an Option")),
        }
    }
}

impl<T: Tree> Tree for BTreeMap<String, T> {
    fn flatten(&self, leaves: &mut Vec<Array>) -> TreeDef {
        TreeDef::Map(self.iter().map(|(k, v)| (k.clone(), v.flatten(leaves))).collect())
    }
    fn unflatten(def: &TreeDef, leaves: &mut dyn Iterator<Item = Array>) -> Result<Self, TreeError> {
        match def {
            TreeDef::Map(c) => c.iter().map(|(k, d)| Ok((k.clone(), T::unflatten(d, leaves)?))).collect(),
            d => Err(d.mismatch("a map")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn arr(xs: &[f32]) -> Array {
        Array::from_vec(xs.to_vec(), [xs.len()])
    }

    fn values(leaves: &[Array]) -> Vec<Vec<f32>> {
        leaves.iter().map(|a| a.to_vec::<f32>()).collect()
    }

    fn hash_of<T: Hash>(x: &T) -> u64 {
        let mut h = DefaultHasher::new();
        x.hash(&mut h);
        h.finish()
    }

    /// Flattens, rebuilds and flattens again; both flattenings must agree.
    fn round_trip<T: Tree>(t: &T) -> (T, TreeDef) {
        let (leaves, def) = tree_flatten(t);
        assert_eq!(def.num_leaves(), leaves.len());
        let back: T = match tree_unflatten(&def, leaves.clone()) {
            Ok(b) => b,
            Err(e) => panic!("unflatten of {def} failed: {e}"),
        };
        let (leaves2, def2) = tree_flatten(&back);
        assert_eq!(def, def2);
        assert_eq!(values(&leaves), values(&leaves2));
        (back, def)
    }

    fn err_text<T: Tree>(def: &TreeDef, leaves: Vec<Array>) -> Option<String> {
        tree_unflatten::<T>(def, leaves).err().map(|e| e.to_string())
    }

    #[test]
    fn single_array_is_a_root_leaf() {
        let (back, def) = round_trip(&arr(&[1.0, 2.0]));
        assert_eq!(def, TreeDef::Leaf);
        assert_eq!(def.to_string(), "*");
        assert_eq!(def.leaf_paths(), ["<root>"]);
        assert_eq!(back.to_vec::<f32>(), vec![1.0, 2.0]);
    }

    #[test]
    fn unit_has_no_leaves() {
        let ((), def) = round_trip(&());
        assert_eq!(def, TreeDef::Unit);
        assert_eq!(def.num_leaves(), 0);
        assert_eq!(def.to_string(), "()");
        assert!(def.leaf_paths().is_empty());
    }

    #[test]
    fn tuples_nest_and_print() {
        let t = (arr(&[1.0]), (arr(&[2.0]), arr(&[3.0])), ());
        let (back, def) = round_trip(&t);
        assert_eq!(def.to_string(), "(*, (*, *), ())");
        assert_eq!(def.leaf_paths(), [".0", ".1.0", ".1.1"]);
        assert_eq!(back.1 .1.to_vec::<f32>(), vec![3.0]);
        let (_, one) = tree_flatten(&(arr(&[1.0]),));
        assert_eq!(one.to_string(), "(*,)");
        let eight =
            (arr(&[1.0]), arr(&[2.0]), arr(&[3.0]), arr(&[4.0]), arr(&[5.0]), arr(&[6.0]), arr(&[7.0]), arr(&[8.0]));
        let (back, def) = round_trip(&eight);
        assert_eq!(def.num_leaves(), 8);
        assert_eq!(back.7.to_vec::<f32>(), vec![8.0]);
    }

    #[test]
    fn vecs_keep_length_and_order() {
        let (back, def) = round_trip(&vec![arr(&[1.0]), arr(&[2.0, 3.0])]);
        assert_eq!(def.to_string(), "[*, *]");
        assert_eq!(def.leaf_paths(), ["[0]", "[1]"]);
        assert_eq!(values(&back), vec![vec![1.0], vec![2.0, 3.0]]);
        let (empty, def) = round_trip(&Vec::<Array>::new());
        assert!(empty.is_empty());
        assert_eq!(def.to_string(), "[]");
        // Length is structure: Vecs of different lengths have different defs.
        let (_, two) = tree_flatten(&vec![arr(&[1.0]), arr(&[2.0])]);
        let (_, three) = tree_flatten(&vec![arr(&[1.0]), arr(&[2.0]), arr(&[3.0])]);
        assert_ne!(two, three);
    }

    #[test]
    fn fixed_size_arrays_are_tuples() {
        let (back, def) = round_trip(&[arr(&[1.0]), arr(&[2.0]), arr(&[3.0])]);
        assert_eq!(def.to_string(), "(*, *, *)");
        assert_eq!(def.leaf_paths(), [".0", ".1", ".2"]);
        assert_eq!(back[2].to_vec::<f32>(), vec![3.0]);
        let (leaves, def) = tree_flatten(&[arr(&[1.0]), arr(&[2.0])]);
        assert_eq!(err_text::<[Array; 3]>(&def, leaves).as_deref(), Some("expected a tuple of 3, found a tuple of 2"));
    }

    #[test]
    fn options_record_presence() {
        let (none, def) = round_trip(&None::<Array>);
        assert!(none.is_none());
        assert_eq!(def.to_string(), "None");
        assert_eq!(def.num_leaves(), 0);
        let (some, def) = round_trip(&Some(arr(&[4.0])));
        assert_eq!(some.map(|a| a.to_vec::<f32>()), Some(vec![4.0]));
        assert_eq!(def.to_string(), "Some(*)");
        assert_eq!(def.leaf_paths(), ["<root>"]);
        assert_ne!(TreeDef::Option(None), def);
    }

    #[test]
    fn maps_flatten_in_key_order() {
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), arr(&[2.0]));
        m.insert("a".to_string(), arr(&[1.0]));
        let (leaves, def) = tree_flatten(&m);
        assert_eq!(values(&leaves), vec![vec![1.0], vec![2.0]]);
        assert_eq!(def.to_string(), r#"{"a": *, "b": *}"#);
        assert_eq!(def.leaf_paths(), [r#"["a"]"#, r#"["b"]"#]);
        let (back, _) = round_trip(&m);
        assert_eq!(back["b"].to_vec::<f32>(), vec![2.0]);
    }

    #[test]
    fn leaf_paths_compose_through_nesting() {
        let mut m = BTreeMap::new();
        m.insert("w".to_string(), vec![(arr(&[1.0]), None), (arr(&[2.0]), Some(arr(&[3.0])))]);
        let (_, def) = tree_flatten(&(arr(&[0.0]), m));
        assert_eq!(def.leaf_paths(), [".0", r#".1["w"][0].0"#, r#".1["w"][1].0"#, r#".1["w"][1].1"#]);
        assert_eq!(def.to_string(), r#"(*, {"w": [(*, None), (*, Some(*))]})"#);
    }

    #[test]
    fn struct_defs_print_fields_then_statics() {
        let def = TreeDef::Struct {
            name: "Layer",
            fields: vec![("w", TreeDef::Leaf), ("b", TreeDef::Option(None))],
            statics: vec![("act", StaticValue::new("relu")), ("k", StaticValue::new(3usize))],
        };
        assert_eq!(def.to_string(), r#"Layer { w: *, b: None, act = "relu", k = 3 }"#);
        assert_eq!(def.leaf_paths(), [".w"]);
        assert_eq!(def.num_leaves(), 1);
        assert_eq!(def.describe(), "a struct Layer");
        let ok = def.expect_struct("Layer", &["w", "b"], &["act", "k"]).map(|(f, s)| (f.len(), s.len()));
        assert_eq!(ok, Ok((2, 2)));
        let wrong_static = def.expect_struct("Layer", &["w", "b"], &["act"]).err().map(|e| e.to_string());
        assert_eq!(wrong_static.as_deref(), Some("expected a struct Layer, found a struct Layer"));
        assert!(def.expect_struct("Other", &["w", "b"], &["act", "k"]).is_err());
        assert!(TreeDef::Leaf.expect_struct("Layer", &[], &[]).is_err());
    }

    #[test]
    fn static_values_compare_by_type_and_value() {
        let a = StaticValue::new(1u32);
        assert_eq!(a, StaticValue::new(1u32));
        assert_eq!(hash_of(&a), hash_of(&StaticValue::new(1u32)));
        assert_ne!(a, StaticValue::new(2u32));
        assert_ne!(hash_of(&a), hash_of(&StaticValue::new(2u32)));
        // Same Debug text, different types: neither equal nor (by the TypeId) hashed alike.
        assert_ne!(a, StaticValue::new(1u64));
        assert_ne!(hash_of(&a), hash_of(&StaticValue::new(1u64)));
        assert_eq!(StaticValue::new(0.5f64), StaticValue::new(0.5f64));
        assert_eq!(format!("{:?}", StaticValue::new("x")), r#""x""#);
        assert_eq!(a.get::<u32>(), Ok(1));
        assert_eq!(
            a.get::<u64>().err().map(|e| e.to_string()).as_deref(),
            Some("static value 1 has an unexpected type")
        );
    }

    /// Values that `==` or print alike but must be told apart, and the NaNs.
    fn floats() -> Vec<f64> {
        let tiny = f64::from_bits(1);
        vec![0.0, -0.0, 1.0, -1.0, 0.1, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -f64::NAN, tiny, f64::MAX]
    }

    #[test]
    fn static_floats_are_keys_that_hash_consistently() {
        let (zero, neg_zero) = (StaticValue::new(0.0f64), StaticValue::new(-0.0f64));
        assert_ne!(zero, neg_zero, "0.0 and -0.0 can give different results, so they are different keys");
        assert_ne!(StaticValue::new(0.0f32), StaticValue::new(-0.0f32));
        let nan = StaticValue::new(f64::NAN);
        assert_eq!(nan, nan.clone(), "a key must equal itself, NaN included");
        assert_eq!(nan, StaticValue::new(-f64::NAN));
        assert_eq!(hash_of(&nan), hash_of(&StaticValue::new(-f64::NAN)));
        assert_eq!(StaticValue::new(f32::NAN), StaticValue::new(f32::NAN));
        assert_ne!(nan, StaticValue::new(f32::NAN), "different types are different keys");
        assert_ne!(nan, StaticValue::new(1.0f64));
        // Every pair: equal keys hash alike, and equality is an equivalence.
        let keys: Vec<StaticValue> = floats().into_iter().map(StaticValue::new).collect();
        for a in &keys {
            assert_eq!(a, a);
            for b in &keys {
                assert_eq!(a == b, b == a, "{a:?} vs {b:?}");
                if a == b {
                    assert_eq!(hash_of(a), hash_of(b), "{a:?} == {b:?} but they hash differently");
                    for c in keys.iter().filter(|c| *c == b) {
                        assert_eq!(a, c, "{a:?} == {b:?} == {c:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn static_values_with_a_nan_inside_compare_by_their_text() {
        let with_nan = StaticValue::new((1u8, f64::NAN, vec![0.5f32, f32::NAN]));
        assert_eq!(with_nan, with_nan.clone());
        assert_eq!(with_nan, StaticValue::new((1u8, f64::NAN, vec![0.5f32, f32::NAN])));
        assert_ne!(with_nan, StaticValue::new((2u8, f64::NAN, vec![0.5f32, f32::NAN])));
        assert_ne!(with_nan, StaticValue::new((1u8, 0.0f64, vec![0.5f32, f32::NAN])));
        assert_ne!(StaticValue::new(vec![0.0f64]), StaticValue::new(vec![-0.0f64]));
        // A tree definition holding one is usable as a map key.
        let def = |x: f64| TreeDef::Struct { name: "S", fields: vec![], statics: vec![("x", StaticValue::new(x))] };
        let mut cache = std::collections::HashMap::new();
        cache.insert(def(f64::NAN), "nan");
        cache.insert(def(0.0), "zero");
        cache.insert(def(-0.0), "negative zero");
        assert_eq!(cache.get(&def(f64::NAN)), Some(&"nan"));
        assert_eq!(cache.get(&def(0.0)), Some(&"zero"));
        assert_eq!(cache.get(&def(-0.0)), Some(&"negative zero"));
        assert_eq!(cache.len(), 3);
    }

    /// Compares both fields but prints only `shown`.
    #[derive(Clone, PartialEq)]
    struct Terse {
        shown: u8,
        hidden: u8,
    }

    impl fmt::Debug for Terse {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "Terse({})", self.shown)
        }
    }

    #[test]
    fn static_values_need_both_equality_and_equal_text() {
        // Same text, unequal values: a `Debug` that hides a field must not
        // make two different values one key.
        let a = StaticValue::new(Terse { shown: 1, hidden: 1 });
        let b = StaticValue::new(Terse { shown: 1, hidden: 2 });
        assert_ne!(a, b);
        assert_eq!(a, StaticValue::new(Terse { shown: 1, hidden: 1 }));
        assert_eq!(hash_of(&a), hash_of(&StaticValue::new(Terse { shown: 1, hidden: 1 })));
        assert_eq!(a.get::<Terse>().map(|t| t.hidden), Ok(1));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Any f64, with the special values (both zeros, NaNs) drawn often.
        fn float() -> impl Strategy<Value = f64> {
            prop_oneof![proptest::sample::select(floats()), proptest::num::f64::ANY]
        }

        proptest! {
            #[test]
            fn equal_static_floats_hash_equal(a in float(), b in float()) {
                let (ka, kb) = (StaticValue::new(a), StaticValue::new(b));
                prop_assert_eq!(&ka, &ka);
                prop_assert_eq!(ka == kb, a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
                if ka == kb {
                    prop_assert_eq!(hash_of(&ka), hash_of(&kb));
                }
            }
        }
    }

    #[test]
    fn wrong_leaf_count_is_an_error() {
        let (mut leaves, def) = tree_flatten(&(arr(&[1.0]), arr(&[2.0])));
        leaves.push(arr(&[3.0]));
        assert_eq!(
            err_text::<(Array, Array)>(&def, leaves).as_deref(),
            Some("(*, *) has 2 leaves but 3 arrays were given")
        );
        assert_eq!(
            err_text::<Vec<Array>>(&TreeDef::List(vec![TreeDef::Leaf]), vec![]).as_deref(),
            Some("[*] has 1 leaves but 0 arrays were given")
        );
        // `Tree::unflatten` itself, given too few leaves, says so.
        let mut none = std::iter::empty::<Array>();
        assert_eq!(
            Array::unflatten(&TreeDef::Leaf, &mut none).err().map(|e| e.to_string()).as_deref(),
            Some("ran out of leaves")
        );
    }

    #[test]
    fn mismatched_defs_describe_both_sides() {
        let leaf = || vec![arr(&[1.0])];
        let two = TreeDef::Tuple(vec![TreeDef::Leaf, TreeDef::Leaf]);
        let e = |r: Option<String>| r.unwrap_or_else(|| "no error".into());
        assert_eq!(e(err_text::<Array>(&TreeDef::Unit, vec![])), "expected an array, found ()");
        assert_eq!(e(err_text::<()>(&TreeDef::Leaf, leaf())), "expected (), found an array");
        assert_eq!(
            e(err_text::<Vec<Array>>(&two, leaf().into_iter().chain(leaf()).collect())),
            "expected a Vec, found a tuple of 2"
        );
        assert_eq!(e(err_text::<Option<Array>>(&TreeDef::Leaf, leaf())), "expected an Option, found an array");
        assert_eq!(
            e(err_text::<BTreeMap<String, Array>>(&TreeDef::List(vec![]), vec![])),
            "expected a map, found a Vec of 0"
        );
        assert_eq!(
            e(err_text::<(Array,)>(&TreeDef::Option(Some(Box::new(TreeDef::Leaf))), leaf())),
            "expected a tuple of 1, found Some(..)"
        );
        assert_eq!(
            e(err_text::<(Array, Array)>(&TreeDef::Map(vec![]), vec![])),
            "expected a tuple of 2, found a map with 0 keys"
        );
    }

    #[test]
    fn tree_map_and_leaves_keep_structure() {
        let t = (vec![arr(&[1.0]), arr(&[2.0, 3.0])], Some(arr(&[4.0])));
        let mapped = tree_map(&t, |a| {
            let v: Vec<f32> = a.to_vec::<f32>().iter().map(|x| x + 10.0).collect();
            Array::from_vec(v, a.shape().to_vec())
        });
        assert_eq!(values(&tree_leaves(&mapped)), vec![vec![11.0], vec![12.0, 13.0], vec![14.0]]);
        assert_eq!(tree_flatten(&mapped).1, tree_flatten(&t).1);
    }
}
