//! Eager transposes are views that products read in place, and an operand
//! passed twice is one input of the compiled operation: `Mᵀ·M` runs as the
//! symmetric product. The results must be those of plain loops.

use arrayjit::Array;

fn matrix(rows: usize, cols: usize, seed: u64) -> (Vec<f32>, Array) {
    let mut state = seed;
    let data: Vec<f32> = (0..rows * cols)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    (data.clone(), Array::from_vec(data, [rows, cols]))
}

/// `AᵀB` by a plain loop in f64, for `a: n x p`, `b: n x q` row-major.
fn at_b(a: &[f32], b: &[f32], n: usize, p: usize, q: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; p * q];
    for k in 0..n {
        for i in 0..p {
            for j in 0..q {
                out[i * q + j] += f64::from(a[k * p + i]) * f64::from(b[k * q + j]);
            }
        }
    }
    out
}

fn close(got: &[f32], want: &[f64], n: usize) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        // Sums of n products of numbers below 0.5 in magnitude, in f32.
        assert!((f64::from(*g) - w).abs() <= 1e-6 * n as f64, "{g} vs {w}");
    }
}

#[test]
fn transposed_products_in_eager_code_match_plain_loops() {
    // Tall enough that the products run in blocks (and on several threads).
    let (n, p, q) = (3001, 19, 7);
    let (md, m) = matrix(n, p, 1);
    let (yd, y) = matrix(n, q, 2);
    let mt = m.t();
    close(&mt.matmul(&m).to_vec::<f32>(), &at_b(&md, &md, n, p, p), n);
    close(&mt.matmul(&y).to_vec::<f32>(), &at_b(&md, &yd, n, p, q), n);
    // (Yᵀ·M)ᵀ = Mᵀ·Y, with the view on the left again.
    let ytm = y.t().matmul(&m).to_vec::<f32>();
    let want = at_b(&yd, &md, n, q, p);
    close(&ytm, &want, n);
    // The symmetric product is exactly symmetric.
    let g = mt.matmul(&m).to_vec::<f32>();
    for i in 0..p {
        for j in 0..p {
            assert_eq!(g[i * p + j], g[j * p + i]);
        }
    }
    // The view still reads as the transpose.
    let t = mt.to_vec::<f32>();
    assert!((0..n * p).all(|k| t[(k % p) * n + k / p] == md[k]));
}

#[test]
fn an_operand_passed_twice_is_read_once() {
    let (xd, x) = matrix(1000, 3, 3);
    let sq = (&x * &x).to_vec::<f32>();
    assert!(sq.iter().zip(&xd).all(|(s, v)| *s == v * v));
    let dot = x.t().matmul(&x).to_vec::<f32>();
    close(&dot, &at_b(&xd, &xd, 1000, 3, 3), 1000);
}

#[test]
fn views_pass_through_jit_grad_and_closures() {
    let (_, m) = matrix(40, 6, 4);
    let v = m.t();
    let w = Array::from_vec((0..40).map(|i| i as f32 * 0.01).collect::<Vec<_>>(), [40]);
    let copy = Array::from_host(v.to_host());
    // As an argument of a compiled function.
    let f = arrayjit::jit(|x: Array| (&x * 2.0).matmul(&x.t()));
    assert_eq!(f.call(v.clone()).unwrap().to_vec::<f32>(), f.call(copy.clone()).unwrap().to_vec::<f32>());
    // As a value a traced function closes over.
    let g = arrayjit::jit(|x: Array| v.matmul(&x));
    assert_eq!(g.call(w.clone()).unwrap().to_vec::<f32>(), copy.matmul(&w).to_vec::<f32>());
    // Differentiated with respect to.
    let d = arrayjit::grad(|x: Array| (x.matmul(&w)).sum(..))(v.clone()).unwrap();
    let want = arrayjit::grad(|x: Array| (x.matmul(&w)).sum(..))(copy).unwrap();
    assert_eq!(d.to_vec::<f32>(), want.to_vec::<f32>());
}
