//! `#[derive(Tree)]` through the facade: round trips, nesting, generics, tuple
//! structs, static fields in the cache key, leaf paths and rebuild errors.

use arrayjit::{tree_flatten, tree_map, tree_unflatten, Array, StaticValue, Tree, TreeDef};
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

fn vec1(xs: &[f32]) -> Array {
    Array::from_vec(xs.to_vec(), [xs.len()])
}

fn values(leaves: &[Array]) -> Vec<Vec<f32>> {
    leaves.iter().map(|a| a.to_vec::<f32>()).collect()
}

fn hash_of(d: &TreeDef) -> u64 {
    let mut h = DefaultHasher::new();
    d.hash(&mut h);
    h.finish()
}

/// Flattens, rebuilds, and flattens again: the two flattenings must agree.
fn round_trip<T: Tree>(t: &T) -> T {
    let (leaves, def) = tree_flatten(t);
    let back: T = match tree_unflatten(&def, leaves.clone()) {
        Ok(b) => b,
        Err(e) => panic!("unflatten of {def} failed: {e}"),
    };
    let (leaves2, def2) = tree_flatten(&back);
    assert_eq!(def, def2);
    assert_eq!(values(&leaves), values(&leaves2));
    back
}

#[derive(Tree, Clone, Debug)]
struct Params {
    w: Array,
    b: Array,
}

fn params(w: &[f32], b: &[f32]) -> Params {
    Params { w: vec1(w), b: vec1(b) }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Activation {
    Relu,
    Tanh,
}

#[derive(Tree)]
struct Model {
    params: Params,
    layers: Vec<Params>,
    head: Option<Params>,
    extra: BTreeMap<String, Array>,
    pair: (Array, Array),
    #[tree(static)]
    name: String,
    #[tree(static)]
    act: Activation,
    taps: [Array; 2],
    none: (),
}

fn model(name: &str, act: Activation) -> Model {
    let mut extra = BTreeMap::new();
    extra.insert("scale".to_string(), vec1(&[7.0]));
    extra.insert("bias".to_string(), vec1(&[8.0, 9.0]));
    Model {
        params: params(&[1.0, 2.0], &[3.0]),
        layers: vec![params(&[4.0], &[5.0]), params(&[6.0], &[])],
        head: None,
        extra,
        pair: (vec1(&[10.0]), vec1(&[11.0])),
        name: name.to_string(),
        act,
        taps: [vec1(&[12.0]), vec1(&[13.0])],
        none: (),
    }
}

#[derive(Tree, Debug)]
struct Pair<T> {
    a: T,
    b: T,
}

#[derive(Tree)]
struct Affine(Array, Array);

#[derive(Tree)]
struct Tagged(Params, #[tree(static)] usize);

#[derive(Tree, Debug, PartialEq)]
struct Empty;

#[derive(Tree, Debug, PartialEq)]
struct OnlyStatic {
    #[tree(static)]
    size: usize,
}

#[derive(Tree)]
struct Scaled<S> {
    x: Array,
    #[tree(static)]
    scale: S,
}

#[derive(Tree)]
struct Stack<T, const N: usize>
where
    T: Clone,
{
    items: [T; N],
}

#[derive(Tree)]
#[tree(crate = "arrayjit_trace")]
struct Direct {
    x: Array,
}

#[derive(Tree)]
struct Keywords {
    r#type: Array,
}

#[test]
fn plain_struct_round_trips() {
    let p = params(&[1.0, 2.0], &[3.0]);
    let (leaves, def) = tree_flatten(&p);
    assert_eq!(values(&leaves), vec![vec![1.0, 2.0], vec![3.0]]);
    assert_eq!(def.to_string(), "Params { w: *, b: * }");
    assert_eq!(def.num_leaves(), 2);
    let back = round_trip(&p);
    assert_eq!(back.w.to_vec::<f32>(), vec![1.0, 2.0]);
    assert_eq!(back.b.to_vec::<f32>(), vec![3.0]);
    assert_eq!(back.w.aval(), p.w.aval());
}

#[test]
fn nested_containers_round_trip_in_declaration_order() {
    let m = model("mlp", Activation::Tanh);
    let (leaves, def) = tree_flatten(&m);
    // params, layers, head (None), extra (keys sorted), pair, taps; statics hold no leaves.
    let want: Vec<Vec<f32>> = vec![
        vec![1.0, 2.0],
        vec![3.0],
        vec![4.0],
        vec![5.0],
        vec![6.0],
        vec![],
        vec![8.0, 9.0],
        vec![7.0],
        vec![10.0],
        vec![11.0],
        vec![12.0],
        vec![13.0],
    ];
    assert_eq!(values(&leaves), want);
    let back = round_trip(&m);
    assert_eq!(back.name, "mlp");
    assert_eq!(back.act, Activation::Tanh);
    assert!(back.head.is_none());
    assert_eq!(back.layers.len(), 2);
    assert_eq!(back.extra["bias"].to_vec::<f32>(), vec![8.0, 9.0]);
    assert_eq!(def.num_leaves(), leaves.len());
}

#[test]
fn option_some_is_flattened() {
    let mut m = model("mlp", Activation::Relu);
    m.head = Some(params(&[20.0], &[21.0]));
    let back = round_trip(&m);
    let head = back.head.as_ref().map(|h| (h.w.to_vec::<f32>(), h.b.to_vec::<f32>()));
    assert_eq!(head, Some((vec![20.0], vec![21.0])));
    let (_, with_head) = tree_flatten(&m);
    let (_, without) = tree_flatten(&model("mlp", Activation::Relu));
    assert_ne!(with_head, without);
}

#[test]
fn leaf_paths_name_the_fields() {
    let (_, def) = tree_flatten(&model("mlp", Activation::Relu));
    let want = [
        ".params.w",
        ".params.b",
        ".layers[0].w",
        ".layers[0].b",
        ".layers[1].w",
        ".layers[1].b",
        ".extra[\"bias\"]",
        ".extra[\"scale\"]",
        ".pair.0",
        ".pair.1",
        ".taps.0",
        ".taps.1",
    ];
    assert_eq!(def.leaf_paths(), want);
    let (_, t) = tree_flatten(&Tagged(params(&[1.0], &[2.0]), 3));
    assert_eq!(t.leaf_paths(), [".0.w", ".0.b"]);
    let (_, k) = tree_flatten(&Keywords { r#type: vec1(&[1.0]) });
    assert_eq!(k.leaf_paths(), [".type"]);
}

#[test]
fn generic_struct_works_for_several_parameters() {
    let p = Pair { a: vec1(&[1.0]), b: vec1(&[2.0]) };
    let back = round_trip(&p);
    assert_eq!(back.b.to_vec::<f32>(), vec![2.0]);

    let pv = Pair { a: vec![vec1(&[1.0]), vec1(&[2.0])], b: vec![] };
    let (leaves, def) = tree_flatten(&pv);
    assert_eq!(leaves.len(), 2);
    assert_eq!(def.to_string(), "Pair { a: [*, *], b: [] }");
    let back = round_trip(&pv);
    assert_eq!(back.a.len(), 2);

    let pp = Pair { a: params(&[1.0], &[2.0]), b: params(&[3.0], &[4.0]) };
    let (_, def) = tree_flatten(&pp);
    assert_eq!(def.leaf_paths(), [".a.w", ".a.b", ".b.w", ".b.b"]);
    round_trip(&pp);

    let nested = Pair { a: Pair { a: vec1(&[1.0]), b: vec1(&[2.0]) }, b: Pair { a: vec1(&[3.0]), b: vec1(&[4.0]) } };
    let back = round_trip(&nested);
    assert_eq!(back.b.a.to_vec::<f32>(), vec![3.0]);
}

#[test]
fn generic_static_and_const_parameters() {
    let s = Scaled { x: vec1(&[1.0]), scale: 0.5f64 };
    let back = round_trip(&s);
    assert_eq!(back.scale, 0.5);
    let (_, half) = tree_flatten(&s);
    let (_, twice) = tree_flatten(&Scaled { x: vec1(&[1.0]), scale: 2.0f64 });
    assert_ne!(half, twice);
    assert_eq!(half.to_string(), "Scaled { x: *, scale = 0.5 }");

    let st = Stack { items: [vec1(&[1.0]), vec1(&[2.0]), vec1(&[3.0])] };
    let back = round_trip(&st);
    assert_eq!(back.items[2].to_vec::<f32>(), vec![3.0]);
}

#[test]
fn tuple_and_unit_structs() {
    let a = Affine(vec1(&[1.0, 2.0]), vec1(&[3.0]));
    let (leaves, def) = tree_flatten(&a);
    assert_eq!(leaves.len(), 2);
    assert_eq!(def.to_string(), "Affine { 0: *, 1: * }");
    assert_eq!(def.leaf_paths(), [".0", ".1"]);
    let back = round_trip(&a);
    assert_eq!(back.1.to_vec::<f32>(), vec![3.0]);

    let t = round_trip(&Tagged(params(&[1.0], &[2.0]), 7));
    assert_eq!(t.1, 7);

    let (leaves, def) = tree_flatten(&Empty);
    assert!(leaves.is_empty());
    assert_eq!(def.to_string(), "Empty { }");
    assert_eq!(round_trip(&Empty), Empty);

    assert_eq!(round_trip(&OnlyStatic { size: 4 }), OnlyStatic { size: 4 });
}

#[test]
fn static_fields_join_the_treedef_hash_and_equality() {
    let (_, relu) = tree_flatten(&model("mlp", Activation::Relu));
    let (_, relu2) = tree_flatten(&model("mlp", Activation::Relu));
    let (_, tanh) = tree_flatten(&model("mlp", Activation::Tanh));
    let (_, renamed) = tree_flatten(&model("cnn", Activation::Relu));
    assert_eq!(relu, relu2);
    assert_eq!(hash_of(&relu), hash_of(&relu2));
    assert_ne!(relu, tanh);
    assert_ne!(hash_of(&relu), hash_of(&tanh));
    assert_ne!(relu, renamed);
    assert_ne!(hash_of(&relu), hash_of(&renamed));

    let (_, t3) = tree_flatten(&Tagged(params(&[1.0], &[2.0]), 3));
    let (_, t4) = tree_flatten(&Tagged(params(&[1.0], &[2.0]), 4));
    assert_ne!(t3, t4);
    assert_ne!(hash_of(&t3), hash_of(&t4));
}

#[test]
fn statics_appear_in_display_and_in_the_def() {
    let (_, def) = tree_flatten(&Tagged(params(&[1.0], &[2.0]), 3));
    assert_eq!(def.to_string(), "Tagged { 0: Params { w: *, b: * }, 1 = 3 }");
    match &def {
        TreeDef::Struct { name, statics, .. } => {
            assert_eq!(*name, "Tagged");
            assert_eq!(statics.len(), 1);
            assert_eq!(statics[0].0, "1");
            assert_eq!(statics[0].1, StaticValue::new(3usize));
            assert_eq!(statics[0].1.get::<usize>(), Ok(3));
        }
        other => panic!("expected a struct def, got {other}"),
    }
}

#[test]
fn leaf_values_do_not_change_the_def_but_shapes_do() {
    let (_, a) = tree_flatten(&params(&[1.0, 2.0], &[3.0]));
    let (_, b) = tree_flatten(&params(&[5.0, 6.0], &[7.0]));
    // The def describes structure only; shapes are part of the leaves' avals.
    assert_eq!(a, b);
    let (_, c) = tree_flatten(&params(&[1.0], &[3.0]));
    assert_eq!(a, c);
}

#[test]
fn wrong_struct_def_is_an_error() {
    let (leaves, def) = tree_flatten(&Affine(vec1(&[1.0]), vec1(&[2.0])));
    let err = tree_unflatten::<Params>(&def, leaves).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("expected a struct Params, found a struct Affine"));

    let (leaves, def) = tree_flatten(&vec![vec1(&[1.0]), vec1(&[2.0])]);
    let err = tree_unflatten::<Params>(&def, leaves).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("expected a struct Params, found a Vec of 2"));
}

#[test]
fn same_name_with_other_field_names_is_an_error() {
    let def =
        TreeDef::Struct { name: "Params", fields: vec![("w", TreeDef::Leaf), ("c", TreeDef::Leaf)], statics: vec![] };
    let err = tree_unflatten::<Params>(&def, vec![vec1(&[1.0]), vec1(&[2.0])]).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("expected a struct Params, found a struct Params"));

    // A static where an array field is expected is a mismatch too.
    let def = TreeDef::Struct {
        name: "Tagged",
        fields: vec![],
        statics: vec![("0", StaticValue::new(1usize)), ("1", StaticValue::new(3usize))],
    };
    assert!(tree_unflatten::<Tagged>(&def, vec![]).is_err());
}

#[test]
fn nested_mismatch_names_the_field_path() {
    // Pair<Array> and Pair<Vec<Array>> share a struct name, so the outer check
    // passes and the field's own check fails.
    let (leaves, def) = tree_flatten(&Pair { a: vec![vec1(&[1.0])], b: vec![vec1(&[2.0])] });
    let err = tree_unflatten::<Pair<Array>>(&def, leaves).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("field `a` of Pair: expected an array, found a Vec of 1"));

    let inner = Pair { a: vec![vec1(&[1.0])], b: vec![] };
    let (leaves, def) = tree_flatten(&Pair { a: inner, b: Pair { a: vec![], b: vec![] } });
    let err = tree_unflatten::<Pair<Pair<Array>>>(&def, leaves).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("field `a` of Pair: field `a` of Pair: expected an array, found a Vec of 1"));
}

#[test]
fn static_of_the_wrong_type_is_an_error() {
    let def = TreeDef::Struct {
        name: "Tagged",
        fields: vec![(
            "0",
            TreeDef::Struct {
                name: "Params",
                fields: vec![("w", TreeDef::Leaf), ("b", TreeDef::Leaf)],
                statics: vec![],
            },
        )],
        statics: vec![("1", StaticValue::new("three"))],
    };
    let err = tree_unflatten::<Tagged>(&def, vec![vec1(&[1.0]), vec1(&[2.0])]).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("field `1` of Tagged: static value \"three\" has an unexpected type"));
}

#[test]
fn wrong_leaf_count_is_an_error() {
    let (mut leaves, def) = tree_flatten(&params(&[1.0], &[2.0]));
    leaves.pop();
    let err = tree_unflatten::<Params>(&def, leaves).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("Params { w: *, b: * } has 2 leaves but 1 arrays were given"));

    // Calling `Tree::unflatten` directly with too few leaves reports the field.
    let mut none = std::iter::empty::<Array>();
    let err = Params::unflatten(&def, &mut none).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("field `w` of Params: ran out of leaves"));
}

#[test]
fn tree_map_keeps_structure_and_statics() {
    let m = model("mlp", Activation::Tanh);
    // Doubles on the host so the test does not depend on the eager executor.
    let doubled = tree_map(&m, |a| {
        let v: Vec<f32> = a.to_vec::<f32>().iter().map(|x| x * 2.0).collect();
        Array::from_vec(v, a.shape().to_vec())
    });
    assert_eq!(doubled.name, "mlp");
    assert_eq!(doubled.act, Activation::Tanh);
    assert_eq!(doubled.params.w.to_vec::<f32>(), vec![2.0, 4.0]);
    assert_eq!(doubled.layers[1].b.to_vec::<f32>(), Vec::<f32>::new());
    assert_eq!(doubled.extra["scale"].to_vec::<f32>(), vec![14.0]);
    assert_eq!(doubled.taps[1].to_vec::<f32>(), vec![26.0]);
    let (_, d0) = tree_flatten(&m);
    let (_, d1) = tree_flatten(&doubled);
    assert_eq!(d0, d1);

    let p = tree_map(&Pair { a: vec1(&[1.0]), b: vec1(&[2.0, 3.0]) }, |a| a.clone());
    assert_eq!(p.b.aval(), vec1(&[0.0, 0.0]).aval());
}

#[test]
fn crate_option_and_raw_identifiers() {
    let d = round_trip(&Direct { x: vec1(&[1.0]) });
    assert_eq!(d.x.to_vec::<f32>(), vec![1.0]);
    let k = round_trip(&Keywords { r#type: vec1(&[2.0]) });
    assert_eq!(k.r#type.to_vec::<f32>(), vec![2.0]);
}

/// The example in the derive macro's documentation.
#[test]
fn derive_doc_example() {
    #[derive(Tree)]
    struct Layer {
        w: Array,
        b: Option<Array>,
        #[tree(static)]
        activation: String,
    }

    let l = Layer { w: Array::from_vec(vec![1.0f32, 2.0], [2]), b: None, activation: "relu".into() };
    let (leaves, def) = tree_flatten(&l);
    assert_eq!(leaves.len(), 1);
    assert_eq!(def.to_string(), r#"Layer { w: *, b: None, activation = "relu" }"#);
    let back: Layer = tree_unflatten(&def, leaves).unwrap();
    assert_eq!(back.activation, "relu");
    assert!(back.b.is_none());
}
