//! The last columns of a product, by dot products: faer's micro-kernels cover
//! a product's output columns in whole vectors, so a product with one or two
//! columns past a multiple of the vector's lanes (a PLN fit's 114 = 7 · 16 + 2
//! in f32 on AVX-512) spends a whole vector's work on them. faer computes the
//! other columns; each of the last ones is a dot product of a row of the left
//! operand with a column of the right one, packed once.
//!
//! On `M·Ω` (576 × 114 by 114 × 114, f32, AVX-512) faer took 148 µs for the
//! whole product, 130 for its first 112 columns and 18 for the last two.

use crate::width::{widest, Width};

/// Columns past a multiple of the lanes that are computed here (at most).
const MAX_REST: usize = 2;

/// Elements of the packed columns at most (on the stack).
pub(crate) const MAX_PACKED: usize = 1024;

/// How many of a product's `n` output columns of `bytes`-byte elements, with
/// a contraction of `k`, to compute here: one or two past a multiple of the
/// vector's lanes, when there is such a multiple before them.
pub(crate) fn rest(n: usize, k: usize, bytes: usize) -> Option<usize> {
    let lanes = match widest()? {
        Width::Avx512 => 64 / bytes,
        Width::Avx2 => 32 / bytes,
    };
    let rest = n % lanes;
    (n > lanes && (1..=MAX_REST).contains(&rest) && rest * k <= MAX_PACKED).then_some(rest)
}

/// Rows of a left operand (`rows` of `k` elements, `a_stride` apart in `a`)
/// and `cols` packed columns of a right one (`k` elements each, one after
/// another in `b`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operands<'a, T> {
    pub a: &'a [T],
    pub a_stride: usize,
    pub rows: usize,
    pub k: usize,
    pub b: &'a [T],
    pub cols: usize,
}

/// The element types of [`dots`]: `f32` and `f64`.
pub(crate) trait DotsElem: super::Float {
    /// See [`dots`].
    ///
    /// # Safety
    /// As for [`dots`], with the lengths checked, and the CPU must run `w`.
    unsafe fn dots_at(w: WidthToken, ops: Operands<'_, Self>, out: &mut [Self], out_stride: usize);
}

/// A width this CPU runs (only [`dots`] makes one).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WidthToken(Width);

/// `out[i · out_stride + c] = Σ_q a[i · a_stride + q] · b[c · k + q]` for
/// rows `i < rows` and columns `c < cols` (see [`Operands`]). `false` (and
/// `out` untouched) when the CPU has no width the products are compiled
/// for, or the slices are too short.
pub(crate) fn dots<T: DotsElem>(ops: Operands<'_, T>, out: &mut [T], out_stride: usize) -> bool {
    let Some(w) = widest() else { return false };
    let Operands { a, a_stride, rows, k, b, cols } = ops;
    let last =
        |stride: usize, len: usize| rows.checked_sub(1).map_or(Some(0), |r| r.checked_mul(stride)?.checked_add(len));
    let fits = cols <= MAX_REST
        && b.len() >= cols * k
        && last(a_stride, k).is_some_and(|need| a.len() >= need)
        && last(out_stride, cols).is_some_and(|need| out.len() >= need);
    if !fits {
        return false;
    }
    // SAFETY: the lengths are checked above and `w` was detected on this CPU.
    unsafe { T::dots_at(WidthToken(w), ops, out, out_stride) };
    true
}

/// [`dots`] with `L` lanes of accumulators per column: each sum adds its
/// terms lane by lane, then the lanes in order, then the terms past the last
/// whole vector.
#[inline(always)]
fn dots_lanes<T: super::Float, const L: usize>(ops: Operands<'_, T>, out: &mut [T], out_stride: usize) {
    let Operands { a, a_stride, rows, k, b, cols } = ops;
    let whole = k / L * L;
    for i in 0..rows {
        let row = &a[i * a_stride..i * a_stride + k];
        for c in 0..cols {
            let col = &b[c * k..(c + 1) * k];
            let mut acc = [T::ZERO; L];
            for (x, y) in row[..whole].chunks_exact(L).zip(col[..whole].chunks_exact(L)) {
                for l in 0..L {
                    acc[l] = x[l].fused_mul_add(y[l], acc[l]);
                }
            }
            let mut sum = acc.iter().fold(T::ZERO, |s, &v| s + v);
            for q in whole..k {
                sum = row[q].fused_mul_add(col[q], sum);
            }
            out[i * out_stride + c] = sum;
        }
    }
}

/// [`DotsElem`] for `$t`, with a copy of [`dots_lanes`] compiled for each width.
macro_rules! dots_elem {
    ($t:ty) => {
        impl DotsElem for $t {
            #[allow(unused_variables)]
            unsafe fn dots_at(w: WidthToken, ops: Operands<'_, $t>, out: &mut [$t], out_stride: usize) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,fma")]
                    fn avx512(ops: Operands<'_, $t>, out: &mut [$t], out_stride: usize) {
                        dots_lanes::<$t, { 64 / std::mem::size_of::<$t>() }>(ops, out, out_stride)
                    }
                    #[target_feature(enable = "avx2,fma")]
                    fn avx2(ops: Operands<'_, $t>, out: &mut [$t], out_stride: usize) {
                        dots_lanes::<$t, { 32 / std::mem::size_of::<$t>() }>(ops, out, out_stride)
                    }
                    // SAFETY: the caller checked that the CPU runs `w`.
                    unsafe {
                        match w.0 {
                            Width::Avx512 => avx512(ops, out, out_stride),
                            Width::Avx2 => avx2(ops, out, out_stride),
                        }
                    }
                }
            }
        }
    };
}

dots_elem!(f32);
dots_elem!(f64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_match_sums_in_f64() {
        for (rows, k, cols) in [(1, 1, 1), (3, 15, 2), (5, 16, 1), (7, 114, 2), (2, 200, 2), (0, 9, 2)] {
            let (a_stride, out_stride) = (k + 3, cols + 5);
            let a: Vec<f32> = (0..rows * a_stride).map(|i| ((i * 37) % 101) as f32 * 0.01 - 0.5).collect();
            let b: Vec<f32> = (0..cols * k).map(|i| ((i * 53) % 89) as f32 * 0.02 - 0.9).collect();
            let mut out = vec![f32::NAN; rows * out_stride];
            let ops = Operands { a: &a, a_stride, rows, k, b: &b, cols };
            if !dots(ops, &mut out, out_stride) {
                return;
            }
            for i in 0..rows {
                for c in 0..out_stride {
                    let got = out[i * out_stride + c];
                    if c >= cols {
                        assert!(got.is_nan(), "({i}, {c}) was written");
                        continue;
                    }
                    let want: f64 = (0..k).map(|q| a[i * a_stride + q] as f64 * b[c * k + q] as f64).sum();
                    assert!((got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()), "({i}, {c}): {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn short_slices_are_refused() {
        let mut out = vec![0.0f64; 4];
        let ops = |a, cols| Operands { a, a_stride: 5, rows: 3, k: 5, b: &[1.0; 15], cols };
        assert!(!dots(ops(&[1.0; 10], 2), &mut out, 2));
        assert!(!dots(ops(&[1.0; 15], 3), &mut out, 2));
    }
}
