//! Static shapes and abstract values (dtype + shape), the type of every IR variable.

use crate::DType;
use std::fmt;
use std::ops::Deref;

/// A static, row-major array shape. Rank 0 is a scalar.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    pub fn new(dims: impl Into<Vec<usize>>) -> Shape {
        Shape(dims.into())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar, 0 when any dimension is 0).
    /// A count beyond `usize` saturates at `usize::MAX` rather than panicking:
    /// shape rules run on parsed text, and no such array can be allocated anyway.
    pub fn numel(&self) -> usize {
        self.0.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut s = vec![1; self.0.len()];
        for i in (0..self.0.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }
}

impl Deref for Shape {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.0
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Shape {
        Shape(v)
    }
}

impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Shape {
        Shape(v.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Shape {
        Shape(v.to_vec())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// The abstract value of an array: what tracing knows about it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AVal {
    pub dtype: DType,
    pub shape: Shape,
}

impl AVal {
    pub fn new(dtype: DType, shape: impl Into<Shape>) -> AVal {
        AVal { dtype, shape: shape.into() }
    }

    pub fn scalar(dtype: DType) -> AVal {
        AVal { dtype, shape: Shape::scalar() }
    }

    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// Bytes of a dense array of this type, when it could exist: the count
    /// must not overflow, and no allocation can exceed `isize::MAX` bytes.
    pub fn bytes(&self) -> Option<usize> {
        let n = self.shape.0.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        n.checked_mul(self.dtype.size_bytes()).filter(|&b| b <= isize::MAX as usize)
    }
}

impl fmt::Display for AVal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}

/// NumPy broadcasting of two shapes: align from the right, a 1 stretches.
/// Returns `None` when a pair of dimensions differs and neither is 1.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() { 1 } else { a[i - (rank - a.len())] };
        let db = if i < rank - b.len() { 1 } else { b[i - (rank - b.len())] };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(Shape(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strides_and_numel() {
        let s = Shape::from([2, 3, 4]);
        assert_eq!(s.strides(), vec![12, 4, 1]);
        assert_eq!(s.numel(), 24);
        assert_eq!(Shape::scalar().numel(), 1);
        assert_eq!(Shape::from([3, 0]).numel(), 0);
        assert_eq!(format!("{}", AVal::new(DType::F32, [2, 3])), "f32[2,3]");
        assert_eq!(format!("{}", AVal::scalar(DType::I32)), "i32[]");
    }

    #[test]
    fn broadcasting_examples() {
        assert_eq!(broadcast_shapes(&[3, 1], &[4]), Some(Shape::from([3, 4])));
        assert_eq!(broadcast_shapes(&[], &[2, 2]), Some(Shape::from([2, 2])));
        assert_eq!(broadcast_shapes(&[0, 1], &[1, 5]), Some(Shape::from([0, 5])));
        assert_eq!(broadcast_shapes(&[3], &[4]), None);
    }

    proptest! {
        #[test]
        fn broadcasting_is_symmetric_and_idempotent(
            a in proptest::collection::vec(0usize..4, 0..4),
            b in proptest::collection::vec(0usize..4, 0..4),
        ) {
            let ab = broadcast_shapes(&a, &b);
            prop_assert_eq!(&ab, &broadcast_shapes(&b, &a));
            if let Some(s) = ab {
                prop_assert_eq!(s.rank(), a.len().max(b.len()));
                prop_assert_eq!(broadcast_shapes(&s, &a), Some(s.clone()));
                prop_assert_eq!(broadcast_shapes(&s, &s), Some(s.clone()));
            }
        }

        #[test]
        fn broadcasting_with_ones_is_identity(a in proptest::collection::vec(0usize..5, 0..5)) {
            let ones = vec![1; a.len()];
            prop_assert_eq!(broadcast_shapes(&a, &ones), Some(Shape(a.clone())));
        }
    }
}
