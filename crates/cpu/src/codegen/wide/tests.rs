//! The wide kernels against the Cranelift generator's, bit for bit: random
//! kernels over every operation taken, with NaN, ±0, ±∞ and subnormal
//! inputs, rows ending in partial vectors, more row pointers than general
//! registers and more constants than vector registers; and the kernels the
//! generator must leave to Cranelift.

use super::{available, compile};
use crate::codegen::{define_kernel, KernelModule, KernelOptions};
use arrayjit_ir::prim::Elementwise as E;
use arrayjit_ir::{AVal, DType, Scalar};
use arrayjit_lower::{Affine, KNode, KOutput, Kernel, Node, OutputKind, ReduceOp};
use proptest::prelude::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A value in [-4, 4), or now and then a special one.
    fn value(&mut self) -> f64 {
        // NaNs of two signs and payloads (f32 keeps the payload's top bits).
        let nan2 = f64::from_bits(0xfff4_5000_0000_0000);
        let special = [f64::NAN, nan2, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 1e-40, -3e-310, 1.0, 2.0];
        if self.below(8) == 0 {
            special[self.below(special.len())]
        } else {
            (self.next() % 8000) as f64 / 1000.0 - 4.0
        }
    }
}

/// Kernel inputs: `point` arrays `[rows, cols]`, one `[rows + 1, cols]` read
/// one row down, a column `[cols]`, a scalar, a boolean scalar and a value per
/// row `[rows]`.
fn inputs(rows: usize, cols: usize, point: usize, d: DType) -> Vec<AVal> {
    let mut v: Vec<AVal> = (0..point).map(|_| AVal::new(d, [rows, cols])).collect();
    v.push(AVal::new(d, [rows + 1, cols]));
    v.push(AVal::new(d, [cols]));
    v.push(AVal::new(d, []));
    v.push(AVal::new(DType::Bool, []));
    v.push(AVal::new(d, [rows]));
    v
}

/// A random kernel of `ops` operations over `[rows, cols]`.
fn random_kernel(seed: u64, rows: usize, cols: usize, d: DType, ops: usize) -> Kernel {
    let mut r = Rng(seed);
    let point = 1 + r.below(16);
    let ins = inputs(rows, cols, point, d);
    let c = cols as i64;
    let mut nodes: Vec<KNode> = Vec::new();
    let load = |input: usize, offset: i64, coeffs: Vec<i64>, dtype: DType| KNode {
        node: Node::Load { input, at: Affine { offset, coeffs } },
        dtype,
    };
    // The column, the scalar and the flag first; the arrays as operations take them.
    nodes.push(load(point + 1, 0, vec![0, 1], d));
    nodes.push(load(point + 2, 0, vec![0, 0], d));
    let flag = nodes.len();
    nodes.push(load(point + 3, 0, vec![0, 0], DType::Bool));
    // One value per row, broadcast along it.
    nodes.push(load(point + 4, 0, vec![1, 0], d));
    let mut fresh: Vec<KNode> = (0..point).map(|i| load(i, 0, vec![c, 1], d)).collect();
    fresh.push(load(point, c, vec![c, 1], d));
    fresh.reverse();
    let konst = |v: f64| {
        let s = if d == DType::F64 { Scalar::F64(v) } else { Scalar::F32(v as f32) };
        KNode { node: Node::Const(s), dtype: d }
    };
    let op = |op: E, args: Vec<usize>, dtype: DType| KNode { node: Node::Op { op, args }, dtype };
    let mut floats: Vec<usize> = vec![0, 1, 3];
    for _ in 0..ops {
        // Mostly recent values, so that chains grow (in long kernels, any value,
        // so that many stay live); now and then a new array.
        let pick = |r: &mut Rng, floats: &[usize]| {
            let n = floats.len();
            if ops > 60 || r.below(3) == 0 {
                floats[r.below(n)]
            } else {
                floats[n - 1 - r.below(n.min(6))]
            }
        };
        let x = pick(&mut r, &floats);
        let y = match fresh.pop() {
            Some(l) if r.below(3) == 0 || floats.len() < 3 => {
                nodes.push(l);
                nodes.len() - 1
            }
            other => {
                fresh.extend(other);
                pick(&mut r, &floats)
            }
        };
        let n = match r.below(16) {
            0 => op(E::Add, vec![x, y], d),
            1 => op(E::Sub, vec![x, y], d),
            2 => op(E::Mul, vec![x, y], d),
            3 => op(E::Div, vec![x, y], d),
            4 => op(E::Max, vec![x, y], d),
            5 => op(E::Min, vec![x, y], d),
            6 => op([E::Neg, E::Abs, E::Sqrt, E::Rsqrt, E::StopGradient][r.below(5)], vec![y], d),
            7 | 8 => {
                nodes.push(konst(r.value()));
                let k = nodes.len() - 1;
                let (a, b) = if r.below(2) == 0 { (y, k) } else { (k, y) };
                op([E::Add, E::Sub, E::Mul, E::Div, E::Max, E::Min][r.below(6)], vec![a, b], d)
            }
            9 => {
                // A clamp against a bound neither zero nor NaN.
                nodes.push(konst(0.25 + r.below(8) as f64));
                let k = nodes.len() - 1;
                op(if r.below(2) == 0 { E::Max } else { E::Min }, vec![y, k], d)
            }
            10 | 11 => {
                let cmp = [E::Eq, E::Ne, E::Lt, E::Le, E::Gt, E::Ge][r.below(6)];
                nodes.push(op(cmp, vec![x, y], DType::Bool));
                let z = pick(&mut r, &floats);
                op(E::Select, vec![nodes.len() - 1, y, z], d)
            }
            12 => op(E::Select, vec![flag, x, y], d),
            13 => op(E::Convert { to: d }, vec![y], d),
            // Through the row functions (and their fallbacks, for NaN, ±∞,
            // zero and negative arguments).
            _ => {
                let f = [E::Exp, E::Log, E::Tanh, E::Logistic, E::Log1p, E::Expm1, E::Sin, E::Cos];
                op(f[r.below(f.len())], vec![y], d)
            }
        };
        nodes.push(n);
        floats.push(nodes.len() - 1);
    }
    // Arrays no operation took join the last value.
    while let Some(l) = fresh.pop() {
        nodes.push(l);
        let last = *floats.last().unwrap_or(&0);
        nodes.push(op(E::Add, vec![last, nodes.len() - 1], d));
        floats.push(nodes.len() - 1);
    }
    if ops > 60 {
        // The last forty values summed at the end: all live at once.
        let tail: Vec<usize> = floats[floats.len().saturating_sub(40)..].to_vec();
        let mut acc = tail[0];
        for &v in &tail[1..] {
            nodes.push(op(E::Add, vec![acc, v], d));
            acc = nodes.len() - 1;
        }
        floats.push(acc);
    }
    let last = *floats.last().unwrap_or(&0);
    let mut outputs = vec![KOutput { node: last, kind: OutputKind::Store, aval: AVal::new(d, [rows, cols]) }];
    for _ in 0..r.below(4) {
        let n = floats[floats.len() - 1 - r.below(floats.len().min(10))];
        outputs.push(KOutput { node: n, kind: OutputKind::Store, aval: AVal::new(d, [rows, cols]) });
    }
    if r.below(2) == 0 {
        let op = [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min][r.below(4)];
        let n = floats[floats.len() - 1 - r.below(floats.len().min(10))];
        outputs.push(KOutput { node: n, kind: OutputKind::Reduce { op, axes: vec![0] }, aval: AVal::new(d, [cols]) });
    }
    if r.below(2) == 0 {
        // Along the rows: per row, or over everything.
        let op = [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Max, ReduceOp::Min][r.below(4)];
        let n = floats[floats.len() - 1 - r.below(floats.len().min(10))];
        let (axes, aval) =
            if r.below(2) == 0 { (vec![1], AVal::new(d, [rows])) } else { (vec![0, 1], AVal::new(d, [])) };
        outputs.push(KOutput { node: n, kind: OutputKind::Reduce { op, axes }, aval });
    }
    Kernel { domain: vec![rows, cols], inputs: ins, nodes, outputs }
}

/// `k` over a rank-1 domain of its points: loads along the rows step one
/// element, the column and other broadcasts become scalars, and reductions
/// are dropped.
fn flattened(k: &Kernel) -> Kernel {
    let n = k.points();
    let mut f = k.clone();
    f.domain = vec![n];
    for node in &mut f.nodes {
        if let Node::Load { at, .. } = &mut node.node {
            let coeffs = if at.coeffs[1] == 1 && at.coeffs[0] > 0 { vec![1] } else { vec![0] };
            at.coeffs = coeffs;
        }
    }
    f.outputs.retain(|o| o.kind == OutputKind::Store);
    for o in &mut f.outputs {
        o.aval = AVal::new(o.aval.dtype, [n]);
    }
    f
}

/// Raw buffers for a kernel's inputs, filled from `seed`.
fn input_data(k: &Kernel, seed: u64) -> Vec<Vec<u8>> {
    let mut r = Rng(seed ^ 0x9e37_79b9);
    k.inputs
        .iter()
        .map(|a| {
            let n = a.numel();
            match a.dtype {
                DType::F32 => (0..n).flat_map(|_| (r.value() as f32).to_le_bytes()).collect(),
                DType::F64 => (0..n).flat_map(|_| r.value().to_le_bytes()).collect(),
                _ => (0..n).map(|_| r.below(2) as u8).collect(),
            }
        })
        .collect()
}

/// Guard bytes around every buffer a kernel is handed.
const GUARD: usize = 128;

/// Runs `k` over rows `ranges` (one call each) with the given generator; the
/// outputs' bytes. `None` if the wide generator was asked for and declined.
/// Every buffer sits between guard bytes, which must come back untouched, as
/// must the inputs.
fn run(k: &Kernel, data: &[Vec<u8>], wide: bool, ranges: &[(usize, usize)]) -> Option<Vec<Vec<u8>>> {
    let mut m = KernelModule::new().unwrap();
    let code =
        define_kernel(&mut m, k, &KernelOptions { keep_clif: false, row_functions: true, wide_vectors: wide }).unwrap();
    if wide && code.lanes < 8 {
        return None;
    }
    let module = m.finish().unwrap();
    let guarded = |b: &[u8]| [vec![0x5Au8; GUARD], b.to_vec(), vec![0x5Au8; GUARD]].concat();
    let mut ins: Vec<Vec<u8>> = data.iter().map(|b| guarded(b)).collect();
    let mut outs: Vec<Vec<u8>> =
        k.outputs.iter().map(|o| guarded(&vec![0xA5u8; o.aval.numel() * o.aval.dtype.size_bytes()])).collect();
    // SAFETY: each buffer is longer than `GUARD`.
    let table: Vec<*mut u8> =
        ins.iter_mut().chain(outs.iter_mut()).map(|b| unsafe { b.as_mut_ptr().add(GUARD) }).collect();
    // A kernel whose axes coalesce into one runs over that axis: ranges of
    // rows become ranges of its points.
    let scale = code.outer / k.domain[0].max(1);
    for &(lo, hi) in ranges {
        // SAFETY: the table holds a buffer of each input's and output's size
        // and dtype, and the ranges lie within the kernel's outer axis.
        unsafe { module.fns[0].call(table.as_ptr(), lo * scale, hi * scale) };
    }
    for (i, (b, d)) in ins.iter().zip(data).enumerate() {
        assert!(*b == guarded(d), "input {i} or its guard bytes were written");
    }
    let outs = outs
        .into_iter()
        .enumerate()
        .map(|(o, b)| {
            let (head, rest) = b.split_at(GUARD);
            let (body, tail) = rest.split_at(rest.len() - GUARD);
            assert!(head.iter().chain(tail).all(|&x| x == 0x5A), "output {o}: bytes outside it were written");
            body.to_vec()
        })
        .collect();
    Some(outs)
}

/// The same bits, NaN matching any NaN: which NaN an operation on NaNs
/// gives is not part of its meaning (Cranelift's max and min give their own).
fn same(a: &[Vec<u8>], b: &[Vec<u8>], d: DType) -> Result<(), String> {
    for (o, (x, y)) in a.iter().zip(b).enumerate() {
        let w = d.size_bytes();
        for (i, (p, q)) in x.chunks(w).zip(y.chunks(w)).enumerate() {
            let (u, v) = if w == 4 {
                let f = |c: &[u8]| f32::from_le_bytes(c.try_into().unwrap_or_default()) as f64;
                (f(p), f(q))
            } else {
                let f = |c: &[u8]| f64::from_le_bytes(c.try_into().unwrap_or_default());
                (f(p), f(q))
            };
            if p != q && !(u.is_nan() && v.is_nan()) {
                return Err(format!("output {o} element {i}: {u:e} vs {v:e}"));
            }
        }
    }
    Ok(())
}

fn check(seed: u64, rows: usize, cols: usize, f64s: bool, ops: usize) -> Result<bool, TestCaseError> {
    let d = if f64s { DType::F64 } else { DType::F32 };
    let k = random_kernel(seed, rows, cols, d, ops);
    let data = input_data(&k, seed);
    let want = run(&k, &data, false, &[(0, rows)]).unwrap_or_default();
    let Some(got) = run(&k, &data, true, &[(0, rows)]) else { return Ok(false) };
    same(&got, &want, d).map_err(|e| TestCaseError::fail(format!("{e}\n{k:?}")))?;
    // A call from a later row: the reductions start over, the stores begin there.
    if rows > 1 {
        let late = run(&k, &data, false, &[(rows / 2, rows)]).unwrap_or_default();
        let got = run(&k, &data, true, &[(rows / 2, rows)]).unwrap_or_default();
        same(&got, &late, d).map_err(|e| TestCaseError::fail(format!("rows from {}: {e}", rows / 2)))?;
    }
    // Two calls over parts of the rows write the same stored outputs.
    if rows > 1 && k.outputs.iter().all(|o| o.kind == OutputKind::Store) {
        let split = run(&k, &data, true, &[(0, rows / 2), (rows / 2, rows)]).unwrap_or_default();
        same(&split, &want, d).map_err(|e| TestCaseError::fail(format!("split rows: {e}")))?;
    }
    // The same points as one axis: whole, from a later point, and in two
    // calls (a rank-1 kernel's calls begin at multiples of 64, see `parallel::blocks`).
    let f = flattened(&k);
    let n = f.points();
    let m = n / 2 / 64 * 64;
    for ranges in [vec![(0, n)], vec![(m, n)], vec![(0, m), (m, n)]] {
        let want = run(&f, &data, false, &ranges).unwrap_or_default();
        if let Some(got) = run(&f, &data, true, &ranges) {
            same(&got, &want, d).map_err(|e| TestCaseError::fail(format!("rank 1 over {ranges:?}: {e}\n{f:?}")))?;
        }
    }
    Ok(true)
}

/// A fixed seed, or `ARRAYJIT_SOAK=N` fresh cases.
fn config() -> ProptestConfig {
    match std::env::var("ARRAYJIT_SOAK").ok().and_then(|s| s.parse().ok()) {
        Some(n) => ProptestConfig::with_cases(n),
        None => ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x77de_0512),
            ..ProptestConfig::with_cases(200)
        },
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_kernels_give_the_cranelift_kernels_bits(
        seed in any::<u64>(),
        rows in 1usize..5,
        cols in prop_oneof![1usize..40, Just(114usize), Just(128usize), Just(130usize)],
        f64s in any::<bool>(),
        ops in prop_oneof![1usize..40, 40usize..150],
    ) {
        if available() {
            check(seed, rows, cols, f64s, ops)?;
        }
    }
}

/// The numbers in a kernel's description, in order.
fn numbers(text: &str) -> Vec<usize> {
    text.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect()
}

/// Most random kernels are taken (the test above would otherwise compare
/// little), among them kernels with row pointers and invariant values kept
/// on the stack rather than in registers.
#[test]
fn most_random_kernels_are_taken() {
    if !available() {
        return;
    }
    let (mut taken, mut stack_pointers, mut stack_values, mut row_functions, mut flat, mut spills) = (0, 0, 0, 0, 0, 0);
    for seed in 0..60 {
        let f64s = seed % 2 == 0;
        let d = if f64s { DType::F64 } else { DType::F32 };
        // Longer bodies now and then, beyond the registers.
        let k = random_kernel(seed, 3, 114, d, if seed % 3 == 0 { 120 } else { 36 });
        let lanes = if f64s { 2 } else { 4 };
        flat += compile(&flattened(&random_kernel(seed, 3, 114, d, 10)), true, lanes).is_some() as usize;
        if let Some(w) = compile(&k, true, lanes) {
            // "AVX-512 kernel over [3, 114]: F row functions, B body nodes (S on the
            // stack), V values computed once (R in registers), P row pointers (Q in
            // registers), N bytes"
            let n = numbers(&w.text);
            spills += (n[5] > 0) as usize;
            stack_values += (n[7] < n[6]) as usize;
            stack_pointers += (n[9] < n[8]) as usize;
            row_functions += (n[3] > 0) as usize;
        }
        taken += check(seed, 3, 114, f64s, if seed % 3 == 0 { 120 } else { 36 }).unwrap() as usize;
    }
    assert!(taken >= 36, "{taken} of 60");
    assert!(stack_pointers >= 5 && stack_values >= 5, "{stack_pointers} and {stack_values} of 60");
    assert!(row_functions >= 20, "{row_functions} of 60 call row functions");
    assert!(flat >= 20, "{flat} of 60 taken over one axis (without row functions)");
    assert!(spills >= 3, "{spills} of 60 with values on the stack");
}

#[test]
fn kernels_outside_its_reach_are_left_to_cranelift() {
    let d = DType::F32;
    let f = |node: Node| KNode { node, dtype: d };
    let ld = |coeffs: Vec<i64>| f(Node::Load { input: 0, at: Affine { offset: 0, coeffs } });
    let store = |node: usize, shape: &[usize]| KOutput { node, kind: OutputKind::Store, aval: AVal::new(d, shape) };
    let base = Kernel {
        domain: vec![4, 8],
        inputs: vec![AVal::new(d, [4, 8])],
        nodes: vec![ld(vec![8, 1]), f(Node::Op { op: E::Exp, args: vec![0] })],
        outputs: vec![store(0, &[4, 8])],
    };
    if available() {
        assert!(compile(&base, true, 4).is_some());
    }
    // exp on short rows; a transposed load; an index; a rank-1 sum; a strided load; long rows.
    let mut exp = base.clone();
    exp.outputs[0].node = 1;
    let mut transposed = base.clone();
    transposed.nodes[0] = ld(vec![1, 4]);
    transposed.inputs[0] = AVal::new(d, [8, 4]);
    let mut index = base.clone();
    index.nodes.push(KNode { node: Node::Index(Affine { offset: 0, coeffs: vec![0, 1] }), dtype: DType::I32 });
    index.outputs.push(KOutput { node: 2, kind: OutputKind::Store, aval: AVal::new(DType::I32, [4, 8]) });
    let mut rank1 = base.clone();
    rank1.domain = vec![32];
    rank1.nodes[0] = ld(vec![1]);
    rank1.outputs[0] =
        KOutput { node: 0, kind: OutputKind::Reduce { op: ReduceOp::Sum, axes: vec![0] }, aval: AVal::new(d, []) };
    let mut strided = base.clone();
    strided.nodes[0] = ld(vec![8, 2]);
    strided.inputs[0] = AVal::new(d, [4, 16]);
    let mut wide_rows = base.clone();
    wide_rows.domain = vec![2, 16 * 33];
    wide_rows.inputs[0] = AVal::new(d, [2, 16 * 33]);
    wide_rows.nodes[0] = ld(vec![16 * 33, 1]);
    wide_rows.outputs[0].aval = AVal::new(d, [2, 16 * 33]);
    for (what, k) in [
        ("exp on rows of 8", exp),
        ("transposed", transposed),
        ("index", index),
        ("a sum over a rank-1 domain", rank1),
        ("every other point of a row", strided),
        ("33 vectors a row", wide_rows),
    ] {
        assert!(compile(&k, true, 4).is_none(), "{what}");
    }
}

/// More values live at once than registers: the furthest needed live on the
/// stack, and the results are Cranelift's bits.
#[test]
fn a_body_beyond_the_registers_spills() {
    let d = DType::F32;
    let f = |node: Node| KNode { node, dtype: d };
    let n = 40;
    let mut nodes: Vec<KNode> =
        (0..n).map(|i| f(Node::Load { input: i, at: Affine { offset: 0, coeffs: vec![8, 1] } })).collect();
    // Σ x_i · x_{n-1-i}, every load live until the sums begin.
    let mut acc = None;
    for i in 0..n {
        nodes.push(f(Node::Op { op: E::Mul, args: vec![i, n - 1 - i] }));
        let m = nodes.len() - 1;
        acc = Some(match acc {
            None => m,
            Some(a) => {
                nodes.push(f(Node::Op { op: E::Add, args: vec![a, m] }));
                nodes.len() - 1
            }
        });
    }
    let k = Kernel {
        domain: vec![2, 8],
        inputs: vec![AVal::new(d, [2, 8]); n],
        nodes,
        outputs: vec![KOutput { node: acc.unwrap_or(0), kind: OutputKind::Store, aval: AVal::new(d, [2, 8]) }],
    };
    if !available() {
        return;
    }
    let w = compile(&k, true, 4).expect("taken");
    // "… B body nodes (S on the stack) …"
    let spilled = numbers(&w.text)[5];
    assert!(spilled >= 10, "{}", w.text);
    let data = input_data(&k, 7);
    let want = run(&k, &data, false, &[(0, 2)]).unwrap_or_default();
    let got = run(&k, &data, true, &[(0, 2)]).expect("taken");
    same(&got, &want, d).unwrap();
}
