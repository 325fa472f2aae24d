//! The tape of random numbers that drives program generation.
//!
//! Every choice the generator makes reads the next number from the tape, and a
//! zero always means the plainest option (no extra operand, the first primitive
//! of a list, size 1). Proptest shrinks the tape's numbers towards zero, so a
//! failing program shrinks towards a plainer one; past the tape's end every
//! number reads as zero.

/// A cursor over the random numbers.
pub(crate) struct Tape<'a> {
    data: &'a [u32],
    pos: usize,
}

impl<'a> Tape<'a> {
    pub fn new(data: &'a [u32]) -> Tape<'a> {
        Tape { data, pos: 0 }
    }

    pub fn next(&mut self) -> u32 {
        let v = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        v
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let v = self.next() as usize;
        if n == 0 {
            0
        } else {
            v % n
        }
    }

    /// A number in `lo..=hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            self.next();
            return lo;
        }
        lo + self.below((hi - lo + 1) as usize) as i64
    }

    /// True with the given percentage; a zero on the tape reads as false.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) >= 100 - percent.min(100)
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.next() as f64 / (u32::MAX as f64 + 1.0)
    }

    /// One of the items (`None` for an empty slice).
    pub fn pick<'s, T>(&mut self, items: &'s [T]) -> Option<&'s T> {
        let i = self.below(items.len());
        items.get(i)
    }

    /// A random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            p.swap(i, j);
        }
        p
    }

    /// A random subset of `0..n` with at most `max` elements, in increasing order.
    pub fn subset(&mut self, n: usize, max: usize) -> Vec<usize> {
        let k = self.below(max.min(n) + 1);
        let mut chosen = self.permutation(n);
        chosen.truncate(k);
        chosen.sort_unstable();
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_mean_plain_choices() {
        let mut t = Tape::new(&[]);
        assert_eq!(t.below(5), 0);
        assert!(!t.chance(90));
        assert_eq!(t.range(-2, 3), -2);
        assert_eq!(t.pick(&[7, 8]), Some(&7));
        assert_eq!(t.subset(4, 2), Vec::<usize>::new());
    }

    #[test]
    fn permutations_are_permutations() {
        let data: Vec<u32> = (0..64u32).map(|i| i.wrapping_mul(2_654_435_761).rotate_left(i)).collect();
        let mut t = Tape::new(&data);
        for n in 0..8 {
            let mut p = t.permutation(n);
            p.sort_unstable();
            assert_eq!(p, (0..n).collect::<Vec<_>>());
        }
    }
}
