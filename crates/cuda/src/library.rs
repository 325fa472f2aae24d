//! Factorizations as CUDA C, so that a program's small matrix work (the
//! PLN's 114×114 Cholesky factors and triangular solves, every iteration)
//! stays on the device instead of a round trip to the host. Sizes are baked
//! into the source; semantics are the reference interpreter's.
//!
//! - Cholesky: one block per matrix. When the lower triangle fits in shared
//!   memory (up to 149×149 in f32, 108×108 in f64), blocked by 32 columns
//!   (`blocked`). Otherwise, up to 127×127, right-looking with the
//!   lower triangle in the registers of 1024 threads: per column, one
//!   barrier, and only the warps holding columns still to update work.
//!   Larger, left-looking in global memory: the pivot from the row so far,
//!   then the column below it in parallel. A pivot that is not positive (or
//!   is NaN) makes the whole matrix NaN. Only the lower triangle is read;
//!   the upper triangle of the result is 0.
//! - The inverse from a Cholesky factor, `(L Lᵀ)⁻¹`: an identity, then the
//!   two triangular solves below (`L Y = I`, `Lᵀ X = Y`), through two
//!   temporary matrices.
//! - LU with partial pivoting (rectangular too): one block per matrix; per
//!   column, one thread finds the pivot (the first of the largest magnitudes,
//!   never a NaN over the current candidate, as the reference), the rows
//!   swap in parallel, then the rows below are eliminated in parallel, each
//!   element updated in the reference's order.
//! - Triangular solve: when a panel of 32 right-hand sides fits in shared
//!   memory (up to 368 unknowns in f32, 184 in f64), blocked by 32 unknowns
//!   (`blocked`). Otherwise, up to 256 unknowns, one block of 512 threads per
//!   panel of 32 right-hand sides (columns of `B` when solving `op(A) X = B`,
//!   rows for `X op(A) = B`), each thread holding rows of its right-hand
//!   side in registers: per unknown, its owner publishes it, the rows still
//!   to solve are updated in parallel, one barrier. Larger, one thread per
//!   right-hand side, each a substitution in a fixed order. Only the
//!   named triangle of `A` is read.

mod blocked;

use crate::render::{Launch, Param, Partial, RenderedKernel};
use crate::spelling::{literal, reg_type};
use arrayjit_ir::prim::Linalg;
use arrayjit_ir::{AVal, DType, Scalar};
use std::fmt::Write;

/// Threads per block of the library kernels.
const THREADS: u32 = 128;
/// Threads per block of the kernels that keep their matrix in registers.
const REGISTER_THREADS: u32 = 1024;
/// At most this many elements per thread of those kernels (with 1024
/// threads, 64 registers each).
const MAX_PER_THREAD: usize = 8;
/// Right-hand sides per block of the register triangular solve: one warp wide.
const PANEL: usize = 32;
/// Threads per block of the register triangular solve (at most 128
/// registers each), and rows of a right-hand side per thread at most.
const SOLVE_THREADS: u32 = 512;
const SOLVE_ROWS: usize = 16;

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
    match prim {
        Linalg::Cholesky => Some(cholesky(name, a.dtype, n, batch)),
        Linalg::CholeskyInverse => Some(cholesky_inverse(name, a.dtype, n, batch)),
        Linalg::TriangularSolve { left_side, lower, transpose_a, unit_diagonal } => {
            let b = ins.get(1)?;
            if b.numel() > i32::MAX as usize {
                return None;
            }
            let rb = b.rank();
            // Right-hand sides per matrix: B's columns (left) or rows (right).
            let rhs = if *left_side { b.shape[rb - 1] } else { b.shape[rb - 2] };
            Some(triangular_solve(name, a.dtype, n, rhs, batch, *left_side, *lower, *transpose_a, *unit_diagonal))
        }
        _ => None,
    }
}

fn cholesky(name: &str, dtype: DType, n: usize, batch: usize) -> RenderedKernel {
    if let Some(k) = blocked::cholesky(name, dtype, n, batch) {
        return k;
    }
    if n * (n + 1) / 2 <= REGISTER_THREADS as usize * MAX_PER_THREAD {
        return cholesky_registers(name, dtype, n, batch);
    }
    let t = reg_type(dtype);
    let nan = literal(Scalar::from_f64(f64::NAN, dtype));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"{start}  __shared__ {t} pivot;
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
"#,
        start = cholesky_start(name, t, n),
    );
    let launches = per_matrix(name, batch * n, batch, vec![Param::Input(0), Param::Output(0)]);
    RenderedKernel { source: s, launches, partials: Vec::new() }
}

/// `(L Lᵀ)⁻¹` for a batch of lower factors: the identity into temporary 0,
/// `L Y = I` into temporary 1, then `Lᵀ X = Y` into the output, each solve
/// the kernel [`triangular_solve`] renders for its flags.
fn cholesky_inverse(name: &str, dtype: DType, n: usize, batch: usize) -> RenderedKernel {
    let t = reg_type(dtype);
    let total = batch * n * n;
    let eye = format!("{name}_eye");
    let mut source = format!(
        r#"extern "C" __global__ void {eye}({t}* __restrict__ out0) {{
  const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= {total}LL) return;
  const int ij = (int)(e % {nn}LL);
  out0[e] = ij / {n1} == ij % {n1} ? ({t})1 : ({t})0;
}}
"#,
        // (Never launched when empty, but compiled: no division by zero.)
        nn = (n * n).max(1),
        n1 = n.max(1),
    );
    let mut launches = Vec::new();
    if total > 0 {
        let grid = blocks(total.div_ceil(THREADS as usize), 1);
        launches.push(Launch {
            name: eye,
            grid: [grid, 1, 1],
            block: [THREADS, 1, 1],
            params: vec![Param::Partial(0)],
        });
    }
    for (suffix, transpose_a, rhs, out) in
        [("_l", false, Param::Partial(0), Param::Partial(1)), ("_lt", true, Param::Partial(1), Param::Output(0))]
    {
        let k = triangular_solve(&format!("{name}{suffix}"), dtype, n, n, batch, true, true, transpose_a, false);
        // Its launches are remapped below, which assumes it has no temporaries of its own.
        debug_assert!(k.partials.is_empty(), "a solve kernel with temporaries");
        source.push_str(&k.source);
        for mut l in k.launches {
            for p in &mut l.params {
                *p = match *p {
                    Param::Input(1) => rhs,
                    Param::Output(0) => out,
                    other => other,
                };
            }
            launches.push(l);
        }
    }
    let partials = vec![Partial { dtype, len: total }; 2];
    RenderedKernel { source, launches, partials }
}

/// Right-looking Cholesky with the lower triangle in registers: element
/// `q` of the triangle in column order (column `k` holds rows `k..n`) is
/// kept by thread `q mod T`, so the elements still to update at column `j`
/// (those of columns after `j`) are a contiguous range of whole warps. The
/// update by column `j` uses it unscaled (`a_ik − a_ij·(1/d)·a_kj`), read
/// from a shared copy of the column that the owners of column `j + 1`
/// refresh for the next pass (two copies, alternating): one barrier per
/// column. Column `j` of the factor (`a_ij / √d`, the reference's division)
/// goes to the output from its owners. Every thread reads the same pivot,
/// so a failed one stops all of them alike.
fn cholesky_registers(name: &str, dtype: DType, n: usize, batch: usize) -> RenderedKernel {
    let t = reg_type(dtype);
    let nan = literal(Scalar::from_f64(f64::NAN, dtype));
    let packed = n * (n + 1) / 2;
    let per = packed.div_ceil(REGISTER_THREADS as usize).max(1);
    let threads = REGISTER_THREADS;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"extern "C" __global__ void __launch_bounds__({threads}) {name}(const {t}* __restrict__ in0, {t}* __restrict__ out0) {{
  const int n = {n}, packed = {packed};
  const {t}* a = in0 + (long long)blockIdx.x * n * n;
  {t}* l = out0 + (long long)blockIdx.x * n * n;
  // Column j, and the pivot's square root and reciprocal, two copies each.
  __shared__ {t} col[2][{n}];
  __shared__ {t} root[2], recip[2];
  const int tid = threadIdx.x;
  for (int e = tid; e < n * n; e += {threads})
    if (e % n > e / n) l[e] = ({t})0;
  {t} v[{per}];
  // Row i and column k + 1 of each element, as i·65536 + k + 1 (0: none).
  int at[{per}];
#pragma unroll
  for (int r = 0; r < {per}; ++r) {{
    const int q = tid + r * {threads};
    v[r] = ({t})0;
    at[r] = 0;
    if (q < packed) {{
      // Columns before k hold k·n − k(k−1)/2 elements: invert (in single
      // precision, off by at most one for these sizes), then settle.
      int k = (int)(((2.0f * n + 1.0f) - sqrtf((2.0f * n + 1.0f) * (2.0f * n + 1.0f) - 8.0f * q)) * 0.5f);
      if (k < 0) k = 0;
      if (k > 0 && k * n - k * (k - 1) / 2 > q) --k;
      if ((k + 1) * n - (k + 1) * k / 2 <= q) ++k;
      const int i = k + q - (k * n - k * (k - 1) / 2);
      v[r] = a[i * n + k];
      at[r] = i * 65536 + k + 1;
      if (k == 0) col[0][i] = v[r];
      if (q == 0) {{ root[0] = sqrt(v[r]); recip[0] = ({t})1 / v[r]; }}
    }}
  }}
  __syncthreads();
  bool failed = false;
  for (int j = 0; j < n; ++j) {{
    const {t}* c = col[j & 1];
    {t}* next = col[(j + 1) & 1];
    const {t} d = c[j];
    if (!(d > ({t})0)) {{ failed = true; break; }}
    const {t} p = root[j & 1], rcp = recip[j & 1];
#pragma unroll
    for (int r = 0; r < {per}; ++r) {{
      const int k = (at[r] & 65535) - 1, i = at[r] >> 16;
      if (k < j) continue;
      if (k == j) {{
        l[i * n + j] = i == j ? p : v[r] / p;
        continue;
      }}
      v[r] -= c[i] * rcp * c[k];
      if (k == j + 1) {{
        next[i] = v[r];
        if (i == k) {{ root[(j + 1) & 1] = sqrt(v[r]); recip[(j + 1) & 1] = ({t})1 / v[r]; }}
      }}
    }}
    __syncthreads();
  }}
  if (failed) {{
    const {t} nan = {nan};
    for (int e = tid; e < n * n; e += {threads}) l[e] = nan;
  }}
}}
"#
    );
    let launches = if batch * n == 0 {
        Vec::new()
    } else {
        vec![Launch {
            name: name.to_string(),
            grid: [batch as u32, 1, 1],
            block: [threads, 1, 1],
            params: vec![Param::Input(0), Param::Output(0)],
        }]
    };
    RenderedKernel { source: s, launches, partials: Vec::new() }
}

/// Blocks for `panels` per matrix of a batch of `batch`, along one grid
/// axis (2³¹ − 1 blocks; the second and third axes stop at 65 535): past
/// that the launch fails with the driver's error.
pub(crate) fn blocks(panels: usize, batch: usize) -> u32 {
    panels.saturating_mul(batch).min(u32::MAX as usize) as u32
}

/// The start of a Cholesky kernel: its signature, `n`, the block's matrix
/// `a` and its factor `l`.
pub(crate) fn cholesky_start(name: &str, t: &str, n: usize) -> String {
    format!(
        "extern \"C\" __global__ void {name}(const {t}* __restrict__ in0, {t}* __restrict__ out0) {{\n  const int n = {n};\n  const {t}* a = in0 + (long long)blockIdx.x * n * n;\n  {t}* l = out0 + (long long)blockIdx.x * n * n;\n"
    )
}

/// The operands of a solve's block, whose launch goes panel by panel
/// within each matrix of the batch: right-hand side `c` (of `rhs`, from the
/// block's panel and `lane`), whether it exists, and the matrix's `a`, `b`
/// and `x`.
pub(crate) fn panel_operands(t: &str, panels: usize) -> String {
    let panels = panels.max(1);
    format!(
        "  const int c = (int)(blockIdx.x % {panels}u) * {PANEL} + lane;\n  const long long mat = blockIdx.x / {panels}u;\n  const bool live = c < rhs;\n  const {t}* a = in0 + mat * n * n;\n  const {t}* b = in1 + mat * n * rhs;\n  {t}* x = out0 + mat * n * rhs;\n"
    )
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
    dtype: DType,
    n: usize,
    rhs: usize,
    batch: usize,
    left_side: bool,
    lower: bool,
    transpose_a: bool,
    unit_diagonal: bool,
) -> RenderedKernel {
    let t = reg_type(dtype);
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
    let spelling = blocked::SolveSpelling { sys: &sys, at: &at, lower: system_lower, unit_diagonal };
    if let Some(k) = blocked::triangular_solve(name, dtype, n, rhs, batch, &spelling) {
        return k;
    }
    let groups = SOLVE_THREADS as usize / PANEL;
    let rows = n.div_ceil(groups);
    if rows <= SOLVE_ROWS {
        // Unknown q of the substitution is row j; the next one, row j'.
        let (j_of, next_of, pending) =
            if system_lower { ("q", "q + 1", "i > j") } else { ("n - 1 - q", "n - 2 - q", "i < j") };
        let over = |i: &str| if unit_diagonal { String::new() } else { format!(" / {}", sys(i, i)) };
        let mut s = String::new();
        let _ = write!(
            s,
            r#"extern "C" __global__ void __launch_bounds__({threads}) {name}(const {t}* __restrict__ in0, const {t}* __restrict__ in1, {t}* __restrict__ out0) {{
  const int n = {n}, rhs = {rhs};
  const int lane = threadIdx.x % {PANEL}, group = threadIdx.x / {PANEL};
{operands}  __shared__ {t} solved[2][{PANEL}];
  // Each row's right-hand side, and its coefficient of the current unknown
  // (loaded a step ahead, so that the load's latency passes at the barrier).
  {t} v[{rows}], m[{rows}];
#pragma unroll
  for (int r = 0; r < {rows}; ++r) {{
    const int i = group + r * {groups}, j = {first};
    v[r] = live && i < n ? b[{bi}] : ({t})0;
    m[r] = i < n && {pending} ? {mij} : ({t})0;
    if (i == j) solved[0][lane] = v[r]{over_first};
  }}
  __syncthreads();
  for (int q = 0; q < n; ++q) {{
    const int j = {j_of}, jn = {next_of};
    const {t} xj = solved[q & 1][lane];
#pragma unroll
    for (int r = 0; r < {rows}; ++r) {{
      const int i = group + r * {groups};
      if (i >= n) continue;
      if (i == j) v[r] = xj;
      else if ({pending}) {{
        v[r] -= m[r] * xj;
        if (i == jn) solved[(q + 1) & 1][lane] = v[r]{over_next};
        else {{
          const int j = jn;
          m[r] = {mij};
        }}
      }}
    }}
    __syncthreads();
  }}
  if (live) {{
#pragma unroll
    for (int r = 0; r < {rows}; ++r) {{
      const int i = group + r * {groups};
      if (i < n) x[{bi}] = v[r];
    }}
  }}
}}
"#,
            bi = at("i"),
            operands = panel_operands(t, rhs.div_ceil(PANEL)),
            first = if system_lower { "0" } else { "n - 1" },
            threads = SOLVE_THREADS,
            over_first = over("i"),
            over_next = over("i"),
            mij = sys("i", "j"),
        );
        let launches = if batch == 0 || n == 0 || rhs == 0 {
            Vec::new()
        } else {
            vec![Launch {
                name: name.to_string(),
                grid: [blocks(rhs.div_ceil(PANEL), batch), 1, 1],
                block: [SOLVE_THREADS, 1, 1],
                params: vec![Param::Input(0), Param::Input(1), Param::Output(0)],
            }]
        };
        return RenderedKernel { source: s, launches, partials: Vec::new() };
    }
    // Past the register kernel's sizes: a thread per right-hand side.
    let (first, past, step) = if system_lower { ("0", "n", "1") } else { ("n - 1", "-1", "-1") };
    let (k_from, k_to) = if system_lower { ("0", "i") } else { ("i + 1", "n") };
    let diagonal = if unit_diagonal { String::new() } else { format!(" / {}", sys("i", "i")) };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"extern "C" __global__ void {name}(const {t}* __restrict__ in0, const {t}* __restrict__ in1, {t}* __restrict__ out0) {{
  const int n = {n}, rhs = {rhs};
  const int c = (int)(blockIdx.x % {panels}u) * blockDim.x + threadIdx.x;
  const long long mat = blockIdx.x / {panels}u;
  if (c >= rhs) return;
  const {t}* a = in0 + mat * n * n;
  const {t}* b = in1 + mat * n * rhs;
  {t}* x = out0 + mat * n * rhs;
  for (int i = {first}; i != {past}; i += {step}) {{
    {t} s = b[{bi}];
    for (int k = {k_from}; k < {k_to}; ++k) s -= {mik} * x[{xk}];
    x[{bi}] = s{diagonal};
  }}
}}
"#,
        bi = at("i"),
        xk = at("k"),
        panels = rhs.div_ceil(THREADS as usize).max(1),
        mik = sys("i", "k"),
    );
    let launches = if batch == 0 || n == 0 || rhs == 0 {
        Vec::new()
    } else {
        vec![Launch {
            name: name.to_string(),
            grid: [blocks(rhs.div_ceil(THREADS as usize), batch), 1, 1],
            block: [THREADS, 1, 1],
            params: vec![Param::Input(0), Param::Input(1), Param::Output(0)],
        }]
    };
    RenderedKernel { source: s, launches, partials: Vec::new() }
}
