//! Random programs for the CUDA tests: the runner that draws them (a fixed
//! seed, or fresh ones under `ARRAYJIT_SOAK=N`) and the primitives left out.

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Left out, as in the CPU's differential tests: integer division by zero and
/// float remainders by tiny values (noise on both sides), factorizations (of
/// random, often singular matrices; not kernels), and floor, ceil, sign and
/// products of values a few ulp apart.
pub const NOISY: [&str; 10] =
    ["div", "rem", "cholesky", "cholesky_inverse", "triangular_solve", "lu", "floor", "ceil", "sign", "reduce_prod"];

/// A runner and how many programs to draw: `fixed` of them from a seed made
/// of `seed`, or, under `ARRAYJIT_SOAK=N`, N from a fresh seed.
pub fn runner(seed: u8, fixed: usize) -> (TestRunner, usize) {
    let soak = std::env::var("ARRAYJIT_SOAK").ok().and_then(|s| s.parse::<usize>().ok());
    let bytes: [u8; 32] = match soak {
        Some(_) => std::array::from_fn(|i| (std::process::id() as u8).wrapping_add(i as u8)),
        None => [seed; 32],
    };
    let runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    (runner, soak.unwrap_or(fixed))
}
