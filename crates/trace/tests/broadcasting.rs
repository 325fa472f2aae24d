//! Eager `a + b` against NumPy broadcasting computed by hand: the result's
//! shape and every element, for random compatible shapes.

use arrayjit_trace::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// The broadcast shape by NumPy's definition: align from the right, sizes
/// equal or one of them 1, the result the larger.
fn numpy_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let size = |x: &[usize], i: usize| if i < rank - x.len() { 1 } else { x[i - (rank - x.len())] };
    (0..rank)
        .map(|i| match (size(a, i), size(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// The row-major position in `shape` of the element that broadcasting reads
/// for output index `out`: size-1 axes repeat their one element, missing
/// leading axes are ignored.
fn source_offset(shape: &[usize], out: &[usize]) -> usize {
    let skip = out.len() - shape.len();
    shape.iter().zip(&out[skip..]).fold(0, |acc, (&n, &i)| acc * n + if n == 1 { 0 } else { i })
}

/// Every index of `shape` in row-major order.
fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let total: usize = shape.iter().product();
    (0..total)
        .map(|mut flat| {
            let mut idx = vec![0; shape.len()];
            for (k, &n) in shape.iter().enumerate().rev() {
                idx[k] = flat % n;
                flat /= n;
            }
            idx
        })
        .collect()
}

/// Two compatible shapes: one full shape (mostly of rank 2 to 4, sizes 0 to 4
/// with 0 and 1 among them), from which each operand keeps a suffix of the
/// axes (most often all of them) and turns some sizes into 1.
fn compatible_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    let size = || prop_oneof![1 => Just(0usize), 1 => Just(1usize), 4 => 2usize..=4];
    let full = prop_oneof![1 => vec(size(), 0..=1), 4 => vec(size(), 2..=4)];
    full.prop_flat_map(|full| {
        let n = full.len();
        let operand = move || {
            let ones = vec(proptest::bool::weighted(0.3), n);
            let dropped = prop_oneof![2 => Just(0), 1 => 0..=n];
            (ones, dropped)
        };
        (Just(full), operand(), operand()).prop_map(|(full, (ones_a, drop_a), (ones_b, drop_b))| {
            let derive = |ones: &[bool], dropped: usize| -> Vec<usize> {
                full.iter().zip(ones).map(|(&d, &one)| if one { 1 } else { d }).skip(dropped).collect()
            };
            (derive(&ones_a, drop_a), derive(&ones_b, drop_b))
        })
    })
}

/// Distinct values, so that a wrong index shows: `a` counts up from 1, `b`
/// in thousands.
fn operands(sa: &[usize], sb: &[usize]) -> (Array, Array, Vec<f64>, Vec<f64>) {
    let va: Vec<f64> = (0..sa.iter().product::<usize>()).map(|i| i as f64 + 1.0).collect();
    let vb: Vec<f64> = (0..sb.iter().product::<usize>()).map(|i| 1000.0 * (i as f64 + 1.0)).collect();
    (Array::from_vec(va.clone(), sa.to_vec()), Array::from_vec(vb.clone(), sb.to_vec()), va, vb)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn add_broadcasts_like_numpy((sa, sb) in compatible_pair()) {
        let shape = numpy_shape(&sa, &sb);
        prop_assert!(shape.is_some(), "the generator made incompatible shapes {:?} and {:?}", sa, sb);
        let shape = shape.unwrap_or_default();
        let (a, b, va, vb) = operands(&sa, &sb);
        let sum = a.try_add(&b);
        prop_assert!(sum.is_ok(), "{:?}", sum.err());
        let sum = sum.unwrap_or_else(|_| a.clone());
        prop_assert_eq!(sum.shape(), &shape[..]);
        prop_assert_eq!(sum.dtype(), DType::F64);
        let want: Vec<f64> =
            indices(&shape).iter().map(|i| va[source_offset(&sa, i)] + vb[source_offset(&sb, i)]).collect();
        prop_assert_eq!(sum.to_vec::<f64>(), want.clone());
        // The operator and the other order agree.
        prop_assert_eq!((&a + &b).to_vec::<f64>(), want.clone());
        prop_assert_eq!((&b + &a).to_vec::<f64>(), want);
    }

    #[test]
    fn incompatible_shapes_are_an_add_error(sa in vec(0usize..=4, 0..=4), sb in vec(0usize..=4, 0..=4)) {
        let (a, b, _, _) = operands(&sa, &sb);
        let r = a.try_add(&b);
        prop_assert_eq!(r.is_ok(), numpy_shape(&sa, &sb).is_some());
        if let Err(e) = r {
            let msg = e.to_string();
            prop_assert!(msg.starts_with(&format!("add: cannot broadcast {} and {} together", a.aval(), b.aval())), "{}", msg);
        }
    }
}

#[test]
fn hand_checked_examples() {
    // [2, 1] + [3]: rows of `a` repeat along the columns, `b` along the rows.
    let (a, b, _, _) = operands(&[2, 1], &[3]);
    assert_eq!((&a + &b).to_vec::<f64>(), vec![1001.0, 2001.0, 3001.0, 1002.0, 2002.0, 3002.0]);
    // A size-1 axis against a size-0 one gives size 0.
    let (a, b, _, _) = operands(&[1, 3], &[0, 1]);
    assert_eq!((&a + &b).shape(), &[0, 3]);
    // Rank 0 against anything.
    let (a, b, _, _) = operands(&[], &[2, 2]);
    assert_eq!((&a + &b).to_vec::<f64>(), vec![1001.0, 2001.0, 3001.0, 4001.0]);
}
