//! Index arithmetic for row-major arrays: multi-index <-> flat offset, and a
//! walk over every multi-index of a shape in row-major order.
//!
//! Every primitive is written as "for each output multi-index, find the input
//! multi-indices it reads", so this module is the whole of the interpreter's
//! addressing. It favours the obvious formulation over speed: each step costs
//! O(rank).

/// The flat row-major offset of `idx` in an array of shape `dims`.
///
/// `idx` must be in bounds (callers build indices from shapes the rules checked).
pub(crate) fn ravel(idx: &[usize], dims: &[usize]) -> usize {
    debug_assert_eq!(idx.len(), dims.len());
    idx.iter().zip(dims).fold(0, |off, (&i, &d)| {
        debug_assert!(i < d, "index {idx:?} out of bounds for shape {dims:?}");
        off * d + i
    })
}

/// The multi-index of flat offset `flat` in an array of shape `dims`
/// (the inverse of [`ravel`]).
#[cfg(test)]
pub(crate) fn unravel(mut flat: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for (i, &d) in dims.iter().enumerate().rev() {
        idx[i] = flat % d;
        flat /= d;
    }
    idx
}

/// Every multi-index of a shape, row-major (the last index varies fastest).
///
/// A rank-0 shape has one index (the empty one); a shape with a zero
/// dimension has none.
pub(crate) struct Indices {
    dims: Vec<usize>,
    next: Option<Vec<usize>>,
}

/// Iterates over the multi-indices of `dims` in row-major order.
pub(crate) fn indices(dims: &[usize]) -> Indices {
    let empty = dims.contains(&0);
    Indices { dims: dims.to_vec(), next: if empty { None } else { Some(vec![0; dims.len()]) } }
}

impl Iterator for Indices {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        let current = self.next.take()?;
        // Odometer step: bump the last digit, carrying leftwards; when the
        // carry falls off the front we have visited every index.
        let mut succ = current.clone();
        let mut axis = succ.len();
        while axis > 0 {
            axis -= 1;
            succ[axis] += 1;
            if succ[axis] < self.dims[axis] {
                self.next = Some(succ);
                return Some(current);
            }
            succ[axis] = 0;
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_row_major() {
        let all: Vec<Vec<usize>> = indices(&[2, 3]).collect();
        assert_eq!(all, vec![vec![0, 0], vec![0, 1], vec![0, 2], vec![1, 0], vec![1, 1], vec![1, 2]]);
        for (flat, idx) in all.iter().enumerate() {
            assert_eq!(ravel(idx, &[2, 3]), flat);
            assert_eq!(&unravel(flat, &[2, 3]), idx);
        }
    }

    #[test]
    fn scalar_and_empty_shapes() {
        assert_eq!(indices(&[]).collect::<Vec<_>>(), vec![Vec::<usize>::new()]);
        assert_eq!(ravel(&[], &[]), 0);
        assert_eq!(indices(&[3, 0, 2]).count(), 0);
        assert_eq!(indices(&[0]).count(), 0);
        assert_eq!(indices(&[1, 1, 1]).collect::<Vec<_>>(), vec![vec![0, 0, 0]]);
    }

    #[test]
    fn ravel_unravel_round_trip() {
        let dims = [3, 1, 4, 2];
        let n: usize = dims.iter().product();
        for (flat, idx) in indices(&dims).enumerate() {
            assert_eq!(ravel(&idx, &dims), flat);
            assert_eq!(unravel(flat, &dims), idx);
        }
        assert_eq!(indices(&dims).count(), n);
        assert_eq!(ravel(&[2, 0, 3, 1], &dims), 2 * 8 + 3 * 2 + 1);
    }
}
