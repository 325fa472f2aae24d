//! `#[derive(Tree)]`: lets a struct of arrays be passed to and returned from
//! arrayjit's transformations, with static fields joining the compile-cache key.

mod attrs;
mod expand;

use proc_macro::TokenStream;

/// Implements `Tree` for a struct: its array-holding fields become leaves (in
/// declaration order), its `#[tree(static)]` fields are kept in the `TreeDef`.
///
/// (Not run here: this crate does not depend on the facade. The same example
/// runs in the facade's `tests/tree.rs`.)
///
/// ```ignore
/// use arrayjit::{tree_flatten, tree_unflatten, Array, Tree};
///
/// #[derive(Tree)]
/// struct Layer {
///     w: Array,
///     b: Option<Array>,
///     #[tree(static)]
///     activation: String,
/// }
///
/// let l = Layer { w: Array::from_vec(vec![1.0f32, 2.0], [2]), b: None, activation: "relu".into() };
/// let (leaves, def) = tree_flatten(&l);
/// assert_eq!(leaves.len(), 1);
/// assert_eq!(def.to_string(), r#"Layer { w: *, b: None, activation = "relu" }"#);
/// let back: Layer = tree_unflatten(&def, leaves).unwrap();
/// assert_eq!(back.activation, "relu");
/// ```
///
/// # What it accepts
///
/// - Structs with named fields, tuple structs (fields are named `0`, `1`, ...,
///   so leaf paths read `.0`) and unit structs (no leaves).
/// - Generic structs: every field type that mentions a type parameter gets a
///   `FieldType: Tree` bound (or, for a static field, the bounds below), so
///   `struct Pair<T> { a: T, b: T }` is a `Tree` whenever `T` is.
/// - Every non-static field's type must implement `Tree`: `Array`, `()`,
///   tuples, `[T; N]`, `Vec<T>`, `Option<T>`, `BTreeMap<String, T>` and other
///   derived structs.
///
/// # Options
///
/// - `#[tree(static)]` on a field: the field holds no arrays. Its value is
///   stored in the `TreeDef` (compared and hashed with it, so two values that
///   differ in a static field compile separately) and given back by
///   `unflatten`. Its type must be
///   `Clone + PartialEq + Debug + Send + Sync + 'static`; rustc reports a
///   missing one at the field.
/// - `#[tree(crate = "path")]` on the struct: where the generated code finds
///   `Tree`, `TreeDef`, `StaticValue`, `TreeError` and `Array`. The default is
///   `::arrayjit`; crates that depend on `arrayjit_trace` but not on the facade
///   write `#[tree(crate = "arrayjit_trace")]`.
///
/// # Errors at compile time
///
/// Each is reported at the offending token:
///
/// ```text
/// #[derive(Tree)]
/// enum Choice { A(Array), B }
/// // error: derive(Tree) supports structs only            (at `enum`)
///
/// #[derive(Tree)]
/// struct S { #[tree(skip)] a: Array }
/// // error: unknown tree option `skip` on a field; the only field option is `static`
///
/// #[derive(Tree)]
/// #[tree(rename = "x")]
/// struct S { a: Array }
/// // error: unknown tree option `rename` on a struct; the only struct option is `crate = "path"`
///
/// #[derive(Tree)]
/// struct S { a: Array, b: String }
/// // error[E0277]: the trait bound `String: Tree` is not satisfied (at `String`)
///
/// #[derive(Tree)]
/// struct S { a: Array, #[tree(static)] f: std::cell::Cell<u8> }
/// // error[E0277]: the trait bound `Cell<u8>: StaticField` is not satisfied
/// //     (at the field type: the trait `Sync` is not implemented for `Cell<u8>`)
/// ```
///
/// Putting `static` on the struct or `crate` on a field, or repeating an
/// option, is an error too.
///
/// # Generated code
///
/// For `struct Layer { w: Array, #[tree(static)] act: String }` the impl is, in
/// outline (paths shortened, the locals have hygienic names):
///
/// ```text
/// impl Tree for Layer {
///     fn flatten(&self, leaves: &mut Vec<Array>) -> TreeDef {
///         TreeDef::Struct {
///             name: "Layer",
///             fields: vec![("w", Tree::flatten(&self.w, leaves))],
///             statics: vec![("act", StaticValue::new(Clone::clone(&self.act)))],
///         }
///     }
///     fn unflatten(def: &TreeDef, leaves: &mut dyn Iterator<Item = Array>) -> Result<Self, TreeError> {
///         let (fields, statics) = def.expect_struct("Layer", &["w"], &["act"])?;
///         let w: Array = <Array as Tree>::unflatten(&fields[0].1, leaves)
///             .map_err(|e| TreeError(format!("field `{}` of {}: {}", "w", "Layer", e)))?;
///         let act: String = statics[0].1.get::<String>().map_err(/* same */)?;
///         Ok(Layer { w, act })
///     }
/// }
/// ```
#[proc_macro_derive(Tree, attributes(tree))]
pub fn derive_tree(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::expand(input).unwrap_or_else(syn::Error::into_compile_error).into()
}
