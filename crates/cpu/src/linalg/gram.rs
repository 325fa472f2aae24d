//! The Gram product `XᵀX` of a row-major `X` at the CPU's full vector width:
//! the product a fit's covariance update takes of every block of rows.
//!
//! The lower triangle is cut into tiles of up to [`MAX_ROWS`] rows by one vector
//! of columns; a tile's sums stay in registers while the rows of `X` stream
//! by, each step a broadcast value of the tile's row times a vector of the
//! tile's columns. A column block's rows (those on or below its diagonal)
//! are split into tiles of nearly equal height, so that no tile is left with
//! a few rows whose sums would wait on each other's latency. On 114 columns
//! (a PLN fit's), f32, AVX-512, this runs 1.4–1.6× faster than faer's
//! triangular product on the fit's blocks of 576 rows and on 116 rows.
//!
//! Every element `G[a][b]` sums `X[t][a] · X[t][b]` (fused) over runs of
//! [`RUN`] rows in order, and the runs' sums in order: the same sum as for
//! `G[b][a]`, so the result is exactly symmetric, and the same for any thread
//! count. Summed in one chain instead, a PLN fit's covariance at n = 11600 in
//! f32, near singular around its 25th step, lost its Cholesky factor.

use super::Float;

/// Whether this CPU runs the kernel: AVX-512 with FMA. Elsewhere faer's
/// triangular product, whose speed on AVX2 the kernel's narrower tiles only
/// matched, computes the product.
fn available() -> bool {
    crate::width::widest() == Some(crate::width::Width::Avx512)
}

/// Rows of a tile at most: its sums take 24 of the 32 vector registers.
const MAX_ROWS: usize = 24;

/// Rows of `X` a tile's sums run over before they are added to the output:
/// a sum of `n` products in one chain errs by up to `n` roundings, and a
/// fit's covariance update, near singular, needs better (faer blocks its
/// sums likewise).
const RUN: usize = 128;

/// `out = XᵀX` (`p × p`, row-major, both triangles) for `x`, `n` rows of
/// `p` elements, when this CPU runs the kernel; `false` (and `out`
/// untouched) otherwise, or when `x` holds fewer than `n · p` elements or
/// `out` fewer than `p · p`.
pub(crate) fn gram<T: GramElem>(x: &[T], n: usize, p: usize, out: &mut [T]) -> bool {
    let fits = n.checked_mul(p).is_some_and(|np| x.len() >= np) && p.checked_mul(p).is_some_and(|pp| out.len() >= pp);
    if !fits || !available() {
        return false;
    }
    let mut b0 = 0;
    while b0 < p {
        let live = (p - b0).min(T::LANES);
        let mut a0 = b0;
        while a0 < p {
            let tiles = (p - a0).div_ceil(MAX_ROWS);
            let height = (p - a0).div_ceil(tiles);
            // SAFETY: the lengths are checked above; the tile's rows
            // `a0..a0 + height` and columns `b0..b0 + live` lie within `p`;
            // the CPU runs the kernel.
            unsafe { T::tile(height, x, n, p, a0, b0, live, out) };
            a0 += height;
        }
        b0 += T::LANES;
    }
    for i in 0..p {
        for j in i + 1..p {
            out[i * p + j] = out[j * p + i];
        }
    }
    true
}

/// The element types [`gram`] runs on: `f32` and `f64`.
pub(crate) trait GramElem: Float {
    /// Elements of a vector.
    const LANES: usize;

    /// `G[a0 + i][b0 + j] = Σ_t X[t][a0 + i] · X[t][b0 + j]` for
    /// `i < height`, `j < live`, into `out` (row-major `p × p`).
    ///
    /// # Safety
    /// `x` must hold `n · p` elements and `out` `p · p`; `1 <= height <=
    /// MAX_ROWS`, `a0 + height <= p`, `live <= LANES`, `b0 + live <= p`; the
    /// CPU must have AVX-512 and FMA.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(height: usize, x: &[Self], n: usize, p: usize, a0: usize, b0: usize, live: usize, out: &mut [Self]);
}

/// [`GramElem`] for `$t` with the AVX-512 vector type `$v`, its mask type and
/// intrinsics.
macro_rules! gram_elem {
    ($t:ty, $v:ty, $mask:ty, $zero:ident, $maskz_load:ident, $set1:ident, $fmadd:ident, $add:ident, $mask_store:ident, [$($h:literal)*]) => {
        impl GramElem for $t {
            const LANES: usize = 64 / std::mem::size_of::<$t>();

            #[allow(unused_variables)]
            unsafe fn tile(
                height: usize,
                x: &[$t],
                n: usize,
                p: usize,
                a0: usize,
                b0: usize,
                live: usize,
                out: &mut [$t],
            ) {
                #[cfg(target_arch = "x86_64")]
                {
                    use std::arch::x86_64::*;

                    /// A tile of `H` rows (see `GramElem::tile`).
                    #[target_feature(enable = "avx512f,fma")]
                    unsafe fn rows<const H: usize>(
                        x: *const $t,
                        n: usize,
                        p: usize,
                        a0: usize,
                        b0: usize,
                        mask: $mask,
                        out: *mut $t,
                    ) {
                        // Rows in runs of `RUN`: each run's sums are added to
                        // the tile's (stored after the first run), so that no
                        // sum adds more than `RUN` products in a row.
                        let mut t0 = 0;
                        loop {
                            let t1 = (t0 + RUN).min(n);
                            let mut acc: [$v; H] = [$zero(); H];
                            for t in t0..t1 {
                                // SAFETY (here and below): row `t < n` of `x`;
                                // the masked lanes of the loads and the stores
                                // lie within columns `b0..b0 + live`, and rows
                                // `a0..a0 + H` within `p`.
                                let row = unsafe { x.add(t * p) };
                                let v = unsafe { $maskz_load(mask, row.add(b0)) };
                                for (i, sum) in acc.iter_mut().enumerate() {
                                    *sum = $fmadd($set1(unsafe { *row.add(a0 + i) }), v, *sum);
                                }
                            }
                            for (i, sum) in acc.iter().enumerate() {
                                let at = unsafe { out.add((a0 + i) * p + b0) };
                                let total = if t0 == 0 { *sum } else { $add(unsafe { $maskz_load(mask, at) }, *sum) };
                                unsafe { $mask_store(at, mask, total) };
                            }
                            if t1 >= n {
                                break;
                            }
                            t0 = t1;
                        }
                    }

                    let mask = ((1u32 << live) - 1) as $mask;
                    let (x, out) = (x.as_ptr(), out.as_mut_ptr());
                    match height {
                        // SAFETY: passed on from the caller.
                        $($h => unsafe { rows::<$h>(x, n, p, a0, b0, mask, out) },)*
                        _ => unreachable!("a tile of {height} rows"),
                    }
                }
            }
        }
    };
}

gram_elem!(f32, __m512, u16, _mm512_setzero_ps, _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_mask_storeu_ps, [1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24]);
gram_elem!(f64, __m512d, u8, _mm512_setzero_pd, _mm512_maskz_loadu_pd, _mm512_set1_pd, _mm512_fmadd_pd, _mm512_add_pd, _mm512_mask_storeu_pd, [1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24]);

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: GramElem + Into<f64>>(n: usize, p: usize, tol: f64, from: impl Fn(f64) -> T) {
        let x: Vec<T> = (0..n * p).map(|i| from(((i * 7919) % 1000) as f64 * 1e-3 - 0.5)).collect();
        let mut out = vec![from(f64::NAN); p * p];
        if !gram(&x, n, p, &mut out) {
            return;
        }
        for a in 0..p {
            for b in 0..p {
                let (mut want, mut scale) = (0.0f64, 0.0f64);
                for t in 0..n {
                    let prod = x[t * p + a].into() * x[t * p + b].into();
                    want += prod;
                    scale += prod.abs();
                }
                let got: f64 = out[a * p + b].into();
                assert!((got - want).abs() <= tol * scale.max(1.0), "{n}x{p}: G[{a}][{b}] = {got}, want {want}");
                assert_eq!(got, out[b * p + a].into(), "{n}x{p}: G[{a}][{b}] is not symmetric");
            }
        }
    }

    #[test]
    fn gram_sums_stay_accurate_over_many_rows() {
        // Positive products, whose rounding errors add up in one long chain:
        // summed by runs of rows, the error stays near that of faer's blocks.
        let (n, p) = (4096, 40);
        let x: Vec<f32> = (0..n * p).map(|i| 0.5 + ((i * 7919) % 1000) as f32 * 1e-3).collect();
        let mut out = vec![0.0f32; p * p];
        if !gram(&x, n, p, &mut out) {
            return;
        }
        for a in 0..p {
            for b in 0..=a {
                let want: f64 = (0..n).map(|t| x[t * p + a] as f64 * x[t * p + b] as f64).sum();
                let got = out[a * p + b] as f64;
                assert!((got - want).abs() <= 2e-6 * want, "G[{a}][{b}] = {got}, want {want}");
            }
        }
    }

    #[test]
    fn gram_matches_the_sums_in_f64() {
        for (n, p) in [(0, 3), (1, 1), (5, 7), (37, 16), (40, 17), (116, 114), (9, 50), (3, 100)] {
            check::<f32>(n, p, 1e-5, |v| v as f32);
            check::<f64>(n, p, 1e-12, |v| v);
        }
    }
}
