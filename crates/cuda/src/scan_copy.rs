//! The copies a scan makes around its body, as kernels that read the
//! iteration number from device memory: slice `t` of each stacked input
//! into the body's argument, each per-iteration result into slice `t` of its
//! stacked output, and the counter's increment. Launched with the same
//! arguments every iteration, they let one recorded iteration be replayed
//! for every other.

use crate::render::{Launch, RenderedKernel};
use arrayjit_lower::Schedule;
use std::fmt::Write;

/// Threads per block of the copies.
const THREADS: u32 = 256;
/// At most this many blocks per copy (each thread then copies several words).
const MAX_BLOCKS: usize = 1024;

/// The launches of a scan's copies (`None` for a slice of no bytes).
#[derive(Clone, Debug)]
pub struct ScanCopies {
    /// Per stacked input: (stacked, slice, counter).
    pub x: Vec<Option<Launch>>,
    /// Per stacked output: (result, stacked, counter).
    pub y: Vec<Option<Launch>>,
    /// The counter's increment: (counter).
    pub next: Launch,
}

impl ScanCopies {
    /// The copies around `body`, a scan's body with `consts` constants and
    /// `carry` carries, over `length` iterations (see [`ScanCopies::render`]).
    pub fn for_body(
        prefix: &str,
        body: &Schedule,
        consts: usize,
        carry: usize,
        length: usize,
        reverse: bool,
    ) -> (ScanCopies, Vec<RenderedKernel>) {
        let bytes = |a: &arrayjit_ir::AVal| a.bytes().unwrap_or(usize::MAX);
        let xs: Vec<usize> = body.input_avals().iter().skip(consts + carry).map(bytes).collect();
        let ys: Vec<usize> = body.output_avals().iter().skip(carry).map(bytes).collect();
        ScanCopies::render(prefix, &xs, &ys, length, reverse)
    }

    /// The copies for slices of `xs` and `ys` bytes in a scan of `length`
    /// iterations, and their functions (named from `prefix`, a C identifier,
    /// to add to the body's module).
    pub fn render(
        prefix: &str,
        xs: &[usize],
        ys: &[usize],
        length: usize,
        reverse: bool,
    ) -> (ScanCopies, Vec<RenderedKernel>) {
        let mut functions = Vec::new();
        let mut one = |name: String, bytes: usize, into_stack: bool| {
            if bytes == 0 {
                return None;
            }
            // Four bytes at a time when every slice starts on a multiple of four.
            let (word, size) = if bytes.is_multiple_of(4) { ("unsigned int", 4) } else { ("unsigned char", 1) };
            let words = bytes / size;
            let t = if reverse { format!("{} - *step", length as i64 - 1) } else { "*step".to_string() };
            let (src, dst) = if into_stack { ("from", "to + t * n") } else { ("from + t * n", "to") };
            let mut source = String::new();
            let _ = write!(
                source,
                r#"extern "C" __global__ void {name}(const {word}* __restrict__ from, {word}* __restrict__ to, const long long* __restrict__ step) {{
  const long long n = {words}LL, t = {t};
  const {word}* s = {src};
  {word}* d = {dst};
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) d[e] = s[e];
}}
"#
            );
            let blocks = words.div_ceil(THREADS as usize).clamp(1, MAX_BLOCKS) as u32;
            functions.push(RenderedKernel { source, launches: Vec::new(), partials: Vec::new() });
            Some(Launch { name, grid: [blocks, 1, 1], block: [THREADS, 1, 1], params: Vec::new() })
        };
        let x = xs.iter().enumerate().map(|(j, &b)| one(format!("{prefix}_x{j}"), b, false)).collect();
        let y = ys.iter().enumerate().map(|(j, &b)| one(format!("{prefix}_y{j}"), b, true)).collect();
        functions.push(RenderedKernel {
            source: format!(
                "extern \"C\" __global__ void {prefix}_next(long long* __restrict__ step) {{\n  if (blockIdx.x == 0 && threadIdx.x == 0) *step += 1;\n}}\n"
            ),
            launches: Vec::new(),
            partials: Vec::new(),
        });
        let next = Launch { name: format!("{prefix}_next"), grid: [1, 1, 1], block: [1, 1, 1], params: Vec::new() };
        (ScanCopies { x, y, next }, functions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_copied_by_words_when_they_can_be() {
        let (c, f) = ScanCopies::render("aj_scan", &[12, 3, 0], &[8], 5, true);
        assert!(c.x[0].is_some() && c.x[1].is_some() && c.x[2].is_none());
        assert!(f[0].source.contains("unsigned int") && f[0].source.contains("n = 3LL"));
        assert!(f[1].source.contains("unsigned char"));
        // Reversed: iteration t reads slice length − 1 − t.
        assert!(f[0].source.contains("t = 4 - *step"));
        assert!(f[2].source.contains("to + t * n"));
        assert_eq!(f.len(), 4);
    }
}
