//! Property tests of the shape rules: each rule agrees with an independent
//! computation of the output shape, and rejects ill-formed parameters and
//! operands with an error, never a panic.

use arrayjit_ir::prim::{DotDims, Linalg, Param, Params, Prim, Reduction, ShapeOp};
use arrayjit_ir::random::primitive_names;
use arrayjit_ir::{broadcast_shapes, AVal, DType, Shape};
use proptest::collection::vec;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn f32s(dims: &[usize]) -> AVal {
    AVal::new(DType::F32, dims.to_vec())
}

/// The one output shape of a rule that is expected to succeed.
fn out_shape(prim: impl Into<Prim>, ins: &[AVal]) -> Result<Vec<usize>, String> {
    let outs = prim.into().abstract_eval(ins).map_err(|e| e.to_string())?;
    Ok(outs[0].shape.0.clone())
}

fn shape_strategy(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    vec(0..=max_dim, 0..=max_rank)
}

/// A shape and a permutation of its axes.
fn shape_and_perm() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape_strategy(5, 4).prop_flat_map(|s| {
        let n = s.len();
        (Just(s), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
    })
}

/// The number of positions a padded dimension has, counted one by one: the
/// elements with `interior` gaps between them, then `low` and `high` cells
/// added (or removed, when negative) at the ends.
fn padded_size(d: usize, low: i64, high: i64, interior: usize) -> Option<usize> {
    let mut cells = 0i64;
    for i in 0..d {
        if i > 0 {
            cells += interior as i64;
        }
        cells += 1;
    }
    if low < -cells || high < -cells || low + high + cells < 0 {
        return None;
    }
    Some((low + high + cells) as usize)
}

/// NumPy's broadcasting, written out from its definition rather than from
/// `broadcast_shapes`: pad the shorter shape with leading 1s, then in every
/// position the sizes must be equal or one of them 1, and the result takes the
/// larger (so a 1 against a 0 gives 0).
fn numpy_broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let padded =
        |x: &[usize]| -> Vec<usize> { std::iter::repeat_n(1, rank - x.len()).chain(x.iter().copied()).collect() };
    let (pa, pb) = (padded(a), padded(b));
    let mut out = Vec::with_capacity(rank);
    for (&x, &y) in pa.iter().zip(&pb) {
        if x != y && x != 1 && y != 1 {
            return None;
        }
        out.push(if x == 1 { y } else { x });
    }
    Some(out)
}

/// A pair of shapes (ranks 0 to 5, sizes 0 to 4): half the time unrelated,
/// which is mostly incompatible, half the time both derived from one shape by
/// dropping leading axes and setting sizes to 1, which is always compatible.
fn shape_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    let independent = (shape_strategy(5, 4), shape_strategy(5, 4));
    let related = shape_strategy(5, 4).prop_flat_map(|full| {
        let n = full.len();
        let operand = move || (vec(proptest::bool::weighted(0.3), n), prop_oneof![2 => Just(0), 1 => 0..=n]);
        (Just(full), operand(), operand()).prop_map(|(full, (ones_a, drop_a), (ones_b, drop_b))| {
            let derive = |ones: &[bool], dropped: usize| -> Vec<usize> {
                full.iter().zip(ones).map(|(&d, &one)| if one { 1 } else { d }).skip(dropped).collect()
            };
            (derive(&ones_a, drop_a), derive(&ones_b, drop_b))
        })
    });
    prop_oneof![independent, related]
}

/// Every shape of rank ≤ `rank` with sizes in `0..=max_dim`.
fn all_shapes(rank: usize, max_dim: usize) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    let mut last = vec![vec![]];
    for _ in 0..rank {
        last =
            last.iter().flat_map(|s: &Vec<usize>| (0..=max_dim).map(move |d| [s.clone(), vec![d]].concat())).collect();
        out.extend(last.iter().cloned());
    }
    out
}

#[test]
fn broadcast_shapes_agrees_with_numpy_on_every_small_pair() {
    let shapes = all_shapes(3, 2);
    assert_eq!(shapes.len(), 1 + 3 + 9 + 27);
    let (mut compatible, mut incompatible) = (0, 0);
    for a in &shapes {
        for b in &shapes {
            let got = broadcast_shapes(a, b).map(|s| s.0);
            assert_eq!(got, numpy_broadcast(a, b), "{a:?} with {b:?}");
            if got.is_some() {
                compatible += 1;
            } else {
                incompatible += 1;
            }
        }
    }
    // Both outcomes are well represented, so the agreement means something.
    assert!(compatible > 400 && incompatible > 400, "{compatible} compatible, {incompatible} incompatible");
    // A few cases written out by hand, the model included.
    type Case<'a> = (&'a [usize], &'a [usize], Option<&'a [usize]>);
    let cases: [Case; 7] = [
        (&[], &[], Some(&[])),
        (&[3], &[], Some(&[3])),
        (&[2, 1], &[3], Some(&[2, 3])),
        (&[1, 0], &[4, 1], Some(&[4, 0])),
        (&[0], &[1], Some(&[0])),
        (&[0], &[2], None),
        (&[2, 3], &[3, 3], None),
    ];
    for (a, b, want) in cases {
        assert_eq!(numpy_broadcast(a, b).as_deref(), want, "model: {a:?} with {b:?}");
        assert_eq!(broadcast_shapes(a, b).map(|s| s.0).as_deref(), want, "{a:?} with {b:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn broadcast_shapes_agrees_with_numpy((a, b) in shape_pair()) {
        let want = numpy_broadcast(&a, &b);
        prop_assert_eq!(broadcast_shapes(&a, &b).map(|s| s.0), want.clone());
        // Symmetric, like the definition.
        prop_assert_eq!(broadcast_shapes(&b, &a).map(|s| s.0), want);
    }

    #[test]
    fn broadcast_in_dim_agrees_with_numpy_broadcasting(a in shape_strategy(4, 3), b in shape_strategy(4, 3)) {
        // Right-aligned, as NumPy does.
        let to = |x: &[usize], s: &[usize]| {
            let dims = (s.len() - x.len()..s.len()).collect();
            out_shape(ShapeOp::BroadcastInDim { shape: Shape(s.to_vec()), dims }, &[f32s(x)])
        };
        match broadcast_shapes(&a, &b) {
            Some(s) => {
                prop_assert_eq!(to(&a, &s), Ok(s.0.clone()));
                prop_assert_eq!(to(&b, &s), Ok(s.0.clone()));
            }
            None => {
                // Some dimension pair differs with neither of size 1: the
                // larger size cannot be reached from the other operand.
                let rank = a.len().max(b.len());
                let pad = |x: &[usize]| [vec![1; rank - x.len()], x.to_vec()].concat();
                let s: Vec<usize> = pad(&a).iter().zip(pad(&b)).map(|(x, y)| (*x).max(y)).collect();
                prop_assert!(to(&a, &s).is_err() || to(&b, &s).is_err());
            }
        }
    }

    #[test]
    fn reshape_preserves_the_element_count(x in shape_strategy(4, 4), t in shape_strategy(4, 4)) {
        let r = out_shape(ShapeOp::Reshape { shape: Shape(t.clone()) }, &[f32s(&x)]);
        let same = x.iter().product::<usize>() == t.iter().product::<usize>();
        prop_assert_eq!(r.is_ok(), same);
        if same {
            prop_assert_eq!(r, Ok(t));
        }
    }

    #[test]
    fn transpose_then_inverse_gives_back_the_shape((x, perm) in shape_and_perm()) {
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        let y = out_shape(ShapeOp::Transpose { perm: perm.clone() }, &[f32s(&x)]);
        prop_assert_eq!(&y, &Ok(perm.iter().map(|&p| x[p]).collect::<Vec<_>>()));
        let z = out_shape(ShapeOp::Transpose { perm: inverse }, &[f32s(&y.unwrap_or_default())]);
        prop_assert_eq!(z, Ok(x));
    }

    #[test]
    fn expand_dims_then_squeeze_gives_back_the_shape(x in shape_strategy(3, 4), picks in vec(0usize..6, 0..3)) {
        let rank = x.len() + picks.len();
        let mut axes: Vec<usize> = picks.iter().map(|p| p % rank.max(1)).collect();
        axes.sort_unstable();
        axes.dedup();
        let rank = x.len() + axes.len();
        let axes: Vec<usize> = axes.into_iter().filter(|&a| a < rank).collect();
        let y = out_shape(ShapeOp::ExpandDims { axes: axes.clone() }, &[f32s(&x)]);
        prop_assert!(y.is_ok(), "{:?}", y);
        let y = y.unwrap_or_default();
        prop_assert_eq!(y.len(), x.len() + axes.len());
        prop_assert!(axes.iter().all(|&a| y[a] == 1));
        prop_assert_eq!(out_shape(ShapeOp::Squeeze { axes }, &[f32s(&y)]), Ok(x));
    }

    #[test]
    fn slice_sizes_count_the_indices(
        x in shape_strategy(4, 6),
        raw in vec((0usize..8, 0usize..8, 0usize..4), 4),
    ) {
        let rank = x.len();
        let start: Vec<usize> = raw[..rank].iter().map(|r| r.0).collect();
        let limit: Vec<usize> = raw[..rank].iter().map(|r| r.1).collect();
        let strides: Vec<usize> = raw[..rank].iter().map(|r| r.2).collect();
        let valid = (0..rank).all(|i| start[i] <= limit[i] && limit[i] <= x[i] && strides[i] > 0);
        let r = out_shape(ShapeOp::Slice { start: start.clone(), limit: limit.clone(), strides: strides.clone() }, &[f32s(&x)]);
        prop_assert_eq!(r.is_ok(), valid, "{:?}", r);
        if valid {
            let counts: Vec<usize> = (0..rank).map(|i| (start[i]..limit[i]).step_by(strides[i]).count()).collect();
            prop_assert_eq!(r, Ok(counts));
        }
    }

    #[test]
    fn pad_sizes_count_the_positions(
        x in shape_strategy(3, 5),
        raw in vec((-6i64..6, -6i64..6, 0usize..3), 3),
    ) {
        let rank = x.len();
        let low: Vec<i64> = raw[..rank].iter().map(|r| r.0).collect();
        let high: Vec<i64> = raw[..rank].iter().map(|r| r.1).collect();
        let interior: Vec<usize> = raw[..rank].iter().map(|r| r.2).collect();
        let expected: Option<Vec<usize>> = (0..rank).map(|i| padded_size(x[i], low[i], high[i], interior[i])).collect();
        let r = out_shape(ShapeOp::Pad { low, high, interior }, &[f32s(&x), f32s(&[])]);
        match expected {
            Some(dims) => prop_assert_eq!(r, Ok(dims)),
            None => prop_assert!(r.is_err(), "{:?}", r),
        }
    }

    #[test]
    fn concatenate_adds_sizes_along_the_axis(
        x in shape_strategy(4, 4).prop_filter("rank ≥ 1", |s| !s.is_empty()),
        axis_pick in 0usize..4,
        sizes in vec(0usize..5, 1..4),
        mismatch in proptest::option::of(0usize..4),
    ) {
        let axis = axis_pick % x.len();
        let mut ins: Vec<AVal> = sizes.iter().map(|&n| { let mut s = x.clone(); s[axis] = n; f32s(&s) }).collect();
        let mut breaks = false;
        if let Some(d) = mismatch {
            // Change another dimension of the last operand.
            let d = d % x.len();
            if d != axis && ins.len() >= 2 {
                if let Some(last) = ins.last_mut() {
                    last.shape.0[d] += 1;
                    breaks = true;
                }
            }
        }
        let r = out_shape(ShapeOp::Concatenate { axis }, &ins);
        if breaks {
            prop_assert!(r.is_err());
        } else {
            let mut want = x.clone();
            want[axis] = sizes.iter().sum();
            prop_assert_eq!(r, Ok(want));
        }
    }

    #[test]
    fn reductions_drop_the_reduced_axes(x in shape_strategy(4, 4), axes in vec(0usize..5, 0..4)) {
        let valid = axes.iter().all(|&a| a < x.len()) && {
            let mut s = axes.clone();
            s.sort_unstable();
            s.windows(2).all(|w| w[0] != w[1])
        };
        let r = out_shape(Reduction::Sum { axes: axes.clone() }, &[f32s(&x)]);
        prop_assert_eq!(r.is_ok(), valid);
        if valid {
            let kept: Vec<usize> = (0..x.len()).filter(|i| !axes.contains(i)).map(|i| x[i]).collect();
            prop_assert_eq!(r, Ok(kept));
        }
    }

    #[test]
    fn dot_general_sizes_are_batch_then_free(
        (batch, contract, lhs_free, rhs_free, lo, ro) in dot_case(),
    ) {
        // lhs is batch ++ contract ++ free with its dimensions scattered by
        // `lo` (logical dimension k sits at position lo[k]); rhs likewise.
        let layout = |free: &[usize], order: &[usize]| {
            let logical: Vec<usize> = batch.iter().chain(&contract).chain(free).copied().collect();
            let mut shape = vec![0; logical.len()];
            for (k, &pos) in order.iter().enumerate() {
                shape[pos] = logical[k];
            }
            shape
        };
        let (ls, rs) = (layout(&lhs_free, &lo), layout(&rhs_free, &ro));
        let nb = batch.len();
        let nc = contract.len();
        let dims = DotDims {
            lhs_batch: lo[..nb].to_vec(),
            rhs_batch: ro[..nb].to_vec(),
            lhs_contract: lo[nb..nb + nc].to_vec(),
            rhs_contract: ro[nb..nb + nc].to_vec(),
        };
        // Free dimensions keep their operand order in the output.
        let free_sizes = |shape: &[usize], order: &[usize]| {
            let mut pos: Vec<usize> = order[nb + nc..].to_vec();
            pos.sort_unstable();
            pos.into_iter().map(|p| shape[p]).collect::<Vec<_>>()
        };
        let want: Vec<usize> = batch.iter().copied().chain(free_sizes(&ls, &lo)).chain(free_sizes(&rs, &ro)).collect();
        prop_assert_eq!(out_shape(Linalg::DotGeneral(dims.clone()), &[f32s(&ls), f32s(&rs)]), Ok(want));
        // Contracting a dimension with one of another size is an error.
        if let Some(&r) = dims.rhs_contract.first() {
            let mut bad = rs.clone();
            bad[r] += 1;
            prop_assert!(out_shape(Linalg::DotGeneral(dims), &[f32s(&ls), f32s(&bad)]).is_err());
        }
    }
}

/// Batch, contracted and free sizes of a `dot_general`, and where the lhs and
/// rhs dimensions sit (a permutation each).
#[allow(clippy::type_complexity)]
fn dot_case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>)> {
    let sizes = || vec(0usize..4, 0..3);
    (sizes(), sizes(), sizes(), sizes()).prop_flat_map(|(b, c, lf, rf)| {
        let perm = |n: usize| Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
        let (nl, nr) = (b.len() + c.len() + lf.len(), b.len() + c.len() + rf.len());
        (Just(b), Just(c), Just(lf), Just(rf), perm(nl), perm(nr))
    })
}

/// Parameter values as a fuzzer would write them: often sensible, sometimes
/// huge or negative.
#[derive(Clone, Debug)]
struct Garbage {
    ints: Vec<i64>,
    tuples: Vec<Vec<i64>>,
    bools: Vec<bool>,
    dtypes: Vec<DType>,
    /// Add a parameter the primitive does not have.
    bogus: bool,
}

/// Garbage parameters and operands. Tuples and operands mostly have one
/// common rank, so that rules get past their first checks and reach their
/// arithmetic.
fn garbage() -> impl Strategy<Value = (Garbage, Vec<AVal>)> {
    (0usize..4, proptest::sample::select(DType::ALL.to_vec())).prop_flat_map(|(rank, dtype)| {
        let int = || prop_oneof![6 => -2i64..6, 1 => any::<i64>(), 1 => Just(i64::MAX), 1 => Just(1i64 << 40)];
        let tuple = prop_oneof![3 => vec(int(), rank), 1 => vec(int(), 0..5)];
        let dim = || prop_oneof![8 => 0usize..5, 1 => Just(usize::MAX / 2), 1 => Just(1usize << 40)];
        let aval = prop_oneof![
            4 => vec(dim(), rank).prop_map(move |s| AVal::new(dtype, s)),
            2 => Just(AVal::scalar(dtype)),
            1 => Just(AVal::scalar(DType::I32)),
            1 => garbage_aval(),
        ];
        let g = (
            vec(int(), 8),
            vec(tuple, 8),
            vec(any::<bool>(), 8),
            vec(proptest::sample::select(DType::ALL.to_vec()), 8),
            proptest::bool::weighted(0.1),
        )
            .prop_map(|(ints, tuples, bools, dtypes, bogus)| Garbage { ints, tuples, bools, dtypes, bogus });
        (g, vec(aval, 0..5))
    })
}

/// Builds the named primitive from garbage values: starts with no parameters
/// and, led by `from_parts`' messages, adds each missing one and swaps in a
/// value of the kind it asks for. Returns the last error if it never succeeds.
fn build_from_garbage(name: &str, g: &Garbage) -> Result<Prim, String> {
    let mut map: BTreeMap<String, Param> = BTreeMap::new();
    if g.bogus {
        map.insert("bogus".into(), Param::Int(0));
    }
    let mut last = String::new();
    for i in 0..32 {
        match Prim::from_parts(name, Params::new(map.clone())) {
            Ok(p) => return Ok(p),
            Err(m) => {
                let key = m.split('`').nth(1).unwrap_or_default().to_string();
                let value = if m.contains("missing parameter") || m.contains("should be an integer") {
                    Param::Int(g.ints[i % 8])
                } else if m.contains("should be a tuple") {
                    Param::Ints(g.tuples[i % 8].clone())
                } else if m.contains("should be true or false") {
                    Param::Bool(g.bools[i % 8])
                } else if m.contains("should be a dtype") {
                    Param::DType(g.dtypes[i % 8])
                } else {
                    return Err(m);
                };
                map.insert(key, value);
                last = m;
            }
        }
    }
    Err(last)
}

/// The primitives whose rules read parameters (and so have the most to get wrong).
const PARAMETRIZED: [&str; 20] = [
    "integer_pow",
    "convert",
    "broadcast_in_dim",
    "reshape",
    "transpose",
    "squeeze",
    "expand_dims",
    "slice",
    "dynamic_slice",
    "dynamic_update_slice",
    "concatenate",
    "pad",
    "iota",
    "reduce_sum",
    "reduce_max",
    "argmax",
    "argmin",
    "dot_general",
    "triangular_solve",
    "lu",
];

fn garbage_aval() -> impl Strategy<Value = AVal> {
    let dim = prop_oneof![8 => 0usize..5, 1 => Just(usize::MAX / 2), 1 => Just(1usize << 40)];
    (proptest::sample::select(DType::ALL.to_vec()), vec(dim, 0..4)).prop_map(|(d, s)| AVal::new(d, s))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Whatever the parameters and operands, a rule answers: `from_parts`
    /// rejects missing, unknown or ill-typed parameters, and `abstract_eval`
    /// rejects operands the parameters do not fit. Neither panics.
    #[test]
    fn garbage_params_are_errors_not_panics(
        name in prop_oneof![
            1 => proptest::sample::select(primitive_names()),
            3 => proptest::sample::select(PARAMETRIZED.to_vec()),
        ],
        (g, ins) in garbage(),
    ) {
        if let Ok(prim) = build_from_garbage(name, &g) {
            let _ = prim.abstract_eval(&ins);
        }
    }
}

#[test]
fn garbage_builds_most_primitives() {
    // The garbage test above is only as good as the primitives it manages to
    // build: with plain values, every primitive but `call` (which needs a
    // program) must come out.
    let g = Garbage {
        ints: vec![1; 8],
        tuples: vec![vec![0]; 8],
        bools: vec![true; 8],
        dtypes: vec![DType::F32; 8],
        bogus: false,
    };
    for name in primitive_names() {
        let built = build_from_garbage(name, &g);
        assert_eq!(built.is_ok(), name != "call", "{name}: {built:?}");
    }
}

#[test]
fn unknown_and_missing_params_are_named() {
    let err = |name: &str, params: Vec<(&str, Param)>| {
        let map = params.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        Prim::from_parts(name, Params::new(map)).err().unwrap_or_default()
    };
    assert_eq!(err("frobnicate", vec![]), "unknown primitive `frobnicate`");
    assert_eq!(err("reduce_sum", vec![]), "missing parameter `axes`");
    assert_eq!(err("neg", vec![("axes", Param::Ints(vec![]))]), "neg: unknown parameter `axes`");
    assert!(err("transpose", vec![("permutation", Param::Int(0))]).contains("should be a tuple of integers"));
    assert!(err("reshape", vec![("new_sizes", Param::Ints(vec![-1]))]).contains("non-negative"));
}
