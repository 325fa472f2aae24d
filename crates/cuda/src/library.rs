//! Factorizations as CUDA C, so that a program's small matrix work (the
//! PLN's 114×114 Cholesky factors and triangular solves, every iteration)
//! stays on the device instead of a round trip to the host. Sizes are baked
//! into the source; semantics are the reference interpreter's.
//!
//! - Cholesky: one block per matrix, left-looking by columns: the pivot
//!   from the row so far, then the column below it in parallel. A pivot that
//!   is not positive (or is NaN) makes the whole matrix NaN. Only the lower
//!   triangle is read; the upper triangle of the result is 0.
//! - LU with partial pivoting (rectangular too): one block per matrix; per
//!   column, one thread finds the pivot (the first of the largest magnitudes,
//!   never a NaN over the current candidate, as the reference), the rows
//!   swap in parallel, then the rows below are eliminated in parallel, each
//!   element updated in the reference's order.
//! - Triangular solve: one thread per right-hand side (a column of `B` when
//!   solving `op(A) X = B`, a row for `X op(A) = B`), each a substitution in
//!   a fixed order; only the named triangle of `A` is read.

use crate::render::{Launch, Param, RenderedKernel};
use crate::spelling::{literal, reg_type};
use arrayjit_ir::prim::Linalg;
use arrayjit_ir::{AVal, DType, Scalar};
use std::fmt::Write;

/// Threads per block of the library kernels.
const THREADS: u32 = 128;

/// `prim` on operands typed `ins` as functions named from `name`, or `None`
/// when it has no device version (products, integer operands).
pub fn render_library(prim: &Linalg, ins: &[AVal], name: &str) -> Option<RenderedKernel> {
    let a = ins.first()?;
    if !a.dtype.is_float() || a.rank() < 2 {
        return None;
    }
    let r = a.rank();
    let n = a.shape[r - 1];
    let batch: usize = a.shape[..r - 2].iter().product();
    if a.numel() > i32::MAX as usize {
        return None;
    }
    if let Linalg::Lu = prim {
        return Some(lu(name, a.dtype, a.shape[r - 2], n, batch));
    }
    if a.shape[r - 2] != n {
        return None;
    }
    let t = reg_type(a.dtype);
    match prim {
        Linalg::Cholesky => Some(cholesky(name, a.dtype, n, batch)),
        Linalg::TriangularSolve { left_side, lower, transpose_a, unit_diagonal } => {
            let b = ins.get(1)?;
            if b.numel() > i32::MAX as usize {
                return None;
            }
            let rb = b.rank();
            // Right-hand sides per matrix: B's columns (left) or rows (right).
            let rhs = if *left_side { b.shape[rb - 1] } else { b.shape[rb - 2] };
            Some(triangular_solve(name, t, n, rhs, batch, *left_side, *lower, *transpose_a, *unit_diagonal))
        }
        _ => None,
    }
}

fn cholesky(name: &str, dtype: DType, n: usize, batch: usize) -> RenderedKernel {
    let t = reg_type(dtype);
    let nan = literal(Scalar::from_f64(f64::NAN, dtype));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"extern "C" __global__ void {name}(const {t}* __restrict__ in0, {t}* __restrict__ out0) {{
  const int n = {n};
  const {t}* a = in0 + (long long)blockIdx.x * n * n;
  {t}* l = out0 + (long long)blockIdx.x * n * n;
  __shared__ {t} pivot;
  __shared__ int failed;
  if (threadIdx.x == 0) failed = 0;
  for (int e = threadIdx.x; e < n * n; e += blockDim.x) l[e] = ({t})0;
  __syncthreads();
  for (int j = 0; j < n; ++j) {{
    if (threadIdx.x == 0) {{
      {t} s = a[j * n + j];
      for (int k = 0; k < j; ++k) s -= l[j * n + k] * l[j * n + k];
      if (!(s > ({t})0)) failed = 1;
      pivot = sqrt(s);
      l[j * n + j] = pivot;
    }}
    __syncthreads();
    if (failed) break;
    for (int i = j + 1 + threadIdx.x; i < n; i += blockDim.x) {{
      {t} s = a[i * n + j];
      for (int k = 0; k < j; ++k) s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = s / pivot;
    }}
    __syncthreads();
  }}
  if (failed) {{
    const {t} nan = {nan};
    for (int e = threadIdx.x; e < n * n; e += blockDim.x) l[e] = nan;
  }}
}}
"#
    );
    let launches = per_matrix(name, batch * n, batch, vec![Param::Input(0), Param::Output(0)]);
    RenderedKernel { source: s, launches, partials: Vec::new() }
}

/// One block per matrix of a batch, none when there is nothing to compute.
fn per_matrix(name: &str, elements: usize, batch: usize, params: Vec<Param>) -> Vec<Launch> {
    if elements == 0 {
        return Vec::new();
    }
    vec![Launch { name: name.to_string(), grid: [batch as u32, 1, 1], block: [THREADS, 1, 1], params }]
}

fn lu(name: &str, dtype: DType, m: usize, n: usize, batch: usize) -> RenderedKernel {
    let t = reg_type(dtype);
    let k = m.min(n);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"extern "C" __global__ void {name}(const {t}* __restrict__ in0, {t}* __restrict__ out0, int* __restrict__ out1, int* __restrict__ out2) {{
  const int m = {m}, n = {n}, kmax = {k};
  const {t}* a0 = in0 + (long long)blockIdx.x * m * n;
  {t}* a = out0 + (long long)blockIdx.x * m * n;
  int* piv = out1 + (long long)blockIdx.x * kmax;
  int* perm = out2 + (long long)blockIdx.x * m;
  __shared__ int pivot_row;
  for (int e = threadIdx.x; e < m * n; e += blockDim.x) a[e] = a0[e];
  for (int i = threadIdx.x; i < m; i += blockDim.x) perm[i] = i;
  __syncthreads();
  for (int j = 0; j < kmax; ++j) {{
    if (threadIdx.x == 0) {{
      int p = j;
      for (int i = j + 1; i < m; ++i)
        if (fabs(a[i * n + j]) > fabs(a[p * n + j])) p = i;
      piv[j] = p;
      if (p != j) {{ int q = perm[j]; perm[j] = perm[p]; perm[p] = q; }}
      pivot_row = p;
    }}
    __syncthreads();
    const int p = pivot_row;
    if (p != j)
      for (int c = threadIdx.x; c < n; c += blockDim.x) {{
        {t} x = a[j * n + c]; a[j * n + c] = a[p * n + c]; a[p * n + c] = x;
      }}
    __syncthreads();
    const {t} pivot = a[j * n + j];
    for (int i = j + 1 + threadIdx.x; i < m; i += blockDim.x) {{
      {t} l = a[i * n + j];
      if (pivot != ({t})0) {{ l = l / pivot; a[i * n + j] = l; }}
      for (int c = j + 1; c < n; ++c) a[i * n + c] = a[i * n + c] - l * a[j * n + c];
    }}
    __syncthreads();
  }}
}}
"#
    );
    let params = vec![Param::Input(0), Param::Output(0), Param::Output(1), Param::Output(2)];
    let launches = per_matrix(name, batch * m * n, batch, params);
    RenderedKernel { source: s, launches, partials: Vec::new() }
}

#[allow(clippy::too_many_arguments)]
fn triangular_solve(
    name: &str,
    t: &str,
    n: usize,
    rhs: usize,
    batch: usize,
    left_side: bool,
    lower: bool,
    transpose_a: bool,
    unit_diagonal: bool,
) -> RenderedKernel {
    // M = op(A), the matrix solved with: M[i][k] reads A[i][k] or A[k][i],
    // and only A's named triangle (the other counts as 0).
    let m = |i: &str, k: &str| {
        let (r, c) = if transpose_a { (k, i) } else { (i, k) };
        format!("a[{r} * n + {c}]")
    };
    // Solving X M = B is solving Mᵀ Xᵀ = Bᵀ: the system's matrix is Mᵀ.
    let system_lower = (lower != transpose_a) == left_side;
    let sys = |i: &str, k: &str| if left_side { m(i, k) } else { m(k, i) };
    // Element i of right-hand side c in B (and X): B[i][c] on the left, B[c][i] on the right.
    let at = |i: &str| if left_side { format!("{i} * rhs + c") } else { format!("c * n + {i}") };
    let (first, past, step) = if system_lower { ("0", "n", "1") } else { ("n - 1", "-1", "-1") };
    let (k_from, k_to) = if system_lower { ("0", "i") } else { ("i + 1", "n") };
    let diagonal = if unit_diagonal { String::new() } else { format!(" / {}", sys("i", "i")) };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"extern "C" __global__ void {name}(const {t}* __restrict__ in0, const {t}* __restrict__ in1, {t}* __restrict__ out0) {{
  const int n = {n}, rhs = {rhs};
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= rhs) return;
  const {t}* a = in0 + (long long)blockIdx.y * n * n;
  const {t}* b = in1 + (long long)blockIdx.y * n * rhs;
  {t}* x = out0 + (long long)blockIdx.y * n * rhs;
  for (int i = {first}; i != {past}; i += {step}) {{
    {t} s = b[{bi}];
    for (int k = {k_from}; k < {k_to}; ++k) s -= {mik} * x[{xk}];
    x[{bi}] = s{diagonal};
  }}
}}
"#,
        bi = at("i"),
        xk = at("k"),
        mik = sys("i", "k"),
    );
    let launches = if batch == 0 || n == 0 || rhs == 0 {
        Vec::new()
    } else {
        vec![Launch {
            name: name.to_string(),
            grid: [(rhs as u32).div_ceil(THREADS), batch as u32, 1],
            block: [THREADS, 1, 1],
            params: vec![Param::Input(0), Param::Input(1), Param::Output(0)],
        }]
    };
    RenderedKernel { source: s, launches, partials: Vec::new() }
}
