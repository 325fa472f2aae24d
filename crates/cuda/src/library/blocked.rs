//! Blocked factorizations in shared memory, for matrices that fit there:
//! the work goes in blocks of 32 columns (or unknowns), so that a block of
//! threads meets at a barrier a few times per block rather than once per
//! column, and most of the arithmetic is a product spread over every
//! thread. Each element of a Cholesky factor or of a lower system's
//! solution receives its updates in the reference's order (ascending
//! column), so those results are the reference's up to fused multiply-adds;
//! an upper system is solved last row first, its updates in descending
//! column order, which rounds differently.

use super::PANEL;
use crate::render::{Launch, Param, RenderedKernel};
use crate::spelling::{literal, reg_type};
use arrayjit_ir::{DType, Scalar};
use std::fmt::Write;

/// Threads per block of the blocked kernels.
const THREADS: u32 = 512;
/// Shared memory a kernel may declare statically (48 KiB on every
/// architecture), less room for the compiler's own.
const SHARED_BYTES: usize = 46 * 1024;

/// Cholesky of each `n×n` matrix of a batch, one block per matrix, the lower
/// triangle packed in shared memory; `None` when it does not fit. Per block
/// of 32 columns: the diagonal block is factored by one warp (a lane per
/// row, meeting at `__syncwarp` per column), the rows below it solved
/// against it (a thread per row), and the trailing triangle updated by
/// every thread.
pub fn cholesky(name: &str, dtype: DType, n: usize, batch: usize) -> Option<RenderedKernel> {
    let packed = n * (n + 1) / 2;
    if packed.max(1) * dtype.size_bytes() > SHARED_BYTES {
        return None;
    }
    let t = reg_type(dtype);
    let nan = literal(Scalar::from_f64(f64::NAN, dtype));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"{start}  // Row i of the lower triangle starts at i(i+1)/2.
  __shared__ {t} s[{packed_alloc}];
  __shared__ int failed;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, warps = {THREADS} / 32;
  if (tid == 0) failed = 0;
  for (int i = warp; i < n; i += warps)
    for (int k = lane; k <= i; k += 32) s[i * (i + 1) / 2 + k] = a[i * n + k];
  __syncthreads();
  for (int p0 = 0; p0 < n; p0 += {PANEL}) {{
    const int p1 = min(p0 + {PANEL}, n);
    // The diagonal block: lane r holds row p0 + r.
    if (warp == 0) {{
      const int i = p0 + lane;
      {t}* row = s + i * (i + 1) / 2;
      for (int j = p0; j < p1; ++j) {{
        const {t} d = s[j * (j + 1) / 2 + j];
        if (!(d > ({t})0)) {{
          if (lane == 0) failed = 1;
          break;
        }}
        const {t} p = sqrt(d);
        if (i > j && i < p1) row[j] = row[j] / p;
        __syncwarp();
        if (i == j) row[j] = p;
        if (i > j && i < p1)
          for (int k = j + 1; k <= i; ++k) row[k] -= row[j] * s[k * (k + 1) / 2 + j];
        __syncwarp();
      }}
    }}
    __syncthreads();
    if (failed) break;
    // The rows below, against the diagonal block: a thread per row.
    for (int i = p1 + tid; i < n; i += {THREADS}) {{
      {t}* row = s + i * (i + 1) / 2;
      for (int j = p0; j < p1; ++j) {{
        const {t}* pivot = s + j * (j + 1) / 2;
        {t} v = row[j];
#pragma unroll 4
        for (int m = p0; m < j; ++m) v -= row[m] * pivot[m];
        row[j] = v / pivot[j];
      }}
    }}
    __syncthreads();
    // The trailing triangle, every element by the block's 32 columns in order.
    for (int i = p1 + warp; i < n; i += warps) {{
      {t}* row = s + i * (i + 1) / 2;
      for (int k = p1 + lane; k <= i; k += 32) {{
        const {t}* other = s + k * (k + 1) / 2;
        {t} v = row[k];
#pragma unroll 4
        for (int m = p0; m < p1; ++m) v -= row[m] * other[m];
        row[k] = v;
      }}
    }}
    __syncthreads();
  }}
  if (failed) {{
    const {t} nan = {nan};
    for (int e = tid; e < n * n; e += {THREADS}) l[e] = nan;
    return;
  }}
  for (int i = warp; i < n; i += warps)
    for (int k = lane; k < n; k += 32) l[i * n + k] = k <= i ? s[i * (i + 1) / 2 + k] : ({t})0;
}}
"#,
        packed_alloc = packed.max(1),
        start = super::cholesky_start(name, t, n),
    );
    Some(RenderedKernel { source: s, launches: launches(name, batch * n, [batch as u32, 1], 2), partials: Vec::new() })
}

/// How a triangular solve reads its operands, spelled by the caller.
pub struct SolveSpelling<'a> {
    /// `S(i, k)`: the system's matrix, row `i`, column `k`.
    pub sys: &'a dyn Fn(&str, &str) -> String,
    /// The offset of unknown `i` of right-hand side `c` in `B` and `X`.
    pub at: &'a dyn Fn(&str) -> String,
    /// Whether the system is lower triangular (solved first row first).
    pub lower: bool,
    pub unit_diagonal: bool,
}

/// A triangular solve with `n` unknowns per right-hand side, one block per
/// panel of 32 right-hand sides (a lane each), the panel in shared memory;
/// `None` when it does not fit. Per block of 32 unknowns: each lane solves
/// its own right-hand side's diagonal block, then every thread subtracts the
/// block's contribution from the unknowns still to solve.
pub fn triangular_solve(
    name: &str,
    dtype: DType,
    n: usize,
    rhs: usize,
    batch: usize,
    sp: &SolveSpelling,
) -> Option<RenderedKernel> {
    if n.max(1) * PANEL * dtype.size_bytes() > SHARED_BYTES {
        return None;
    }
    let t = reg_type(dtype);
    // Position q in the order of solution is row `row(q)`.
    let row = |q: &str| if sp.lower { format!("({q})") } else { format!("(n - 1 - ({q}))") };
    let over = |i: &str| if sp.unit_diagonal { String::new() } else { format!(" / {}", (sp.sys)(i, i)) };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"extern "C" __global__ void {name}(const {t}* __restrict__ in0, const {t}* __restrict__ in1, {t}* __restrict__ out0) {{
  const int n = {n}, rhs = {rhs};
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = {THREADS} / 32;
{operands}  __shared__ {t} xs[{n_alloc}][{PANEL}];
  for (int i = warp; i < n; i += warps) xs[i][lane] = live ? b[{bi}] : ({t})0;
  __syncthreads();
  for (int q0 = 0; q0 < n; q0 += {PANEL}) {{
    const int q1 = min(q0 + {PANEL}, n);
    // The diagonal block: each lane its own right-hand side.
    if (warp == 0)
      for (int q = q0; q < q1; ++q) {{
        const int i = {row_q};
        {t} v = xs[i][lane];
#pragma unroll 4
        for (int r = q0; r < q; ++r) {{
          const int k = {row_r};
          v -= {sik} * xs[k][lane];
        }}
        xs[i][lane] = v{over_i};
      }}
    __syncthreads();
    // The unknowns still to solve, less this block's contribution.
    for (int q = q1 + warp; q < n; q += warps) {{
      const int i = {row_q};
      {t} v = xs[i][lane];
#pragma unroll 4
      for (int r = q0; r < q1; ++r) {{
        const int k = {row_r};
        v -= {sik} * xs[k][lane];
      }}
      xs[i][lane] = v;
    }}
    __syncthreads();
  }}
  if (live)
    for (int i = warp; i < n; i += warps) x[{bi}] = xs[i][lane];
}}
"#,
        n_alloc = n.max(1),
        operands = super::panel_operands(t, rhs.div_ceil(PANEL)),
        bi = (sp.at)("i"),
        row_q = row("q"),
        row_r = row("r"),
        sik = (sp.sys)("i", "k"),
        over_i = over("i"),
    );
    let grid = [super::blocks(rhs.div_ceil(PANEL), batch), 1];
    Some(RenderedKernel { source: s, launches: launches(name, batch * n * rhs, grid, 3), partials: Vec::new() })
}

/// One launch over `grid` blocks (none when there is nothing to compute),
/// with `params` parameters: inputs, then one output.
fn launches(name: &str, work: usize, grid: [u32; 2], params: usize) -> Vec<Launch> {
    if work == 0 {
        return Vec::new();
    }
    let mut p: Vec<Param> = (0..params - 1).map(Param::Input).collect();
    p.push(Param::Output(0));
    vec![Launch { name: name.to_string(), grid: [grid[0], grid[1], 1], block: [THREADS, 1, 1], params: p }]
}
