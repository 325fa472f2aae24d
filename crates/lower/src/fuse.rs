//! Fusion: turns an optimised program into a schedule of loop kernels and
//! library steps.
//!
//! Elementwise primitives, views (broadcast, transpose, slice, reshape,
//! squeeze, expand_dims) and iota are fused into the kernels that consume
//! them, as expressions and affine index maps; broadcasts are never
//! materialised. Pads, concatenations and dynamic slices and updates are
//! fused too, as clamped reads at computed positions (`Node::Gather`) and
//! selects; the arrays they read that way are materialised.
//!
//! A value is materialised ("realized") only when it must be: a program
//! output, an operand of a library step, an expensive value that would be
//! recomputed under a broadcast or in several kernels, a view that no affine
//! map can express, or an array read at computed positions. Realized values and reductions are the kernels'
//! outputs; outputs over the same domain that do not depend on each other share
//! one kernel (one pass over memory). Every decision is written to
//! `Schedule::notes`.

use crate::kernel::{reads_only_at_own_point, Affine, KNode, KOutput, Kernel, Node, NodeId, OutputKind, ReduceOp};
use crate::schedule::{Buffer, BufferId, BufferKind, OutputSource, Schedule, Step};
use arrayjit_ir::prim::{Elementwise as E, Reduction, ShapeOp};
use arrayjit_ir::{AVal, Atom, HostArray, Prim, Program, Shape, Var};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

mod computed;

/// How an equation takes part in fusion.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Fusible,
    Reduce(ReduceOp),
    Opaque,
}

fn kind(p: &Prim) -> Kind {
    match p {
        Prim::Elementwise(_) => Kind::Fusible,
        // Every shape operation is an index map, affine or (pads with interior
        // padding, concatenations, dynamic slices) computed and clamped.
        Prim::Shape(_) => Kind::Fusible,
        Prim::Reduce(r) => match r {
            Reduction::Sum { .. } => Kind::Reduce(ReduceOp::Sum),
            Reduction::Max { .. } => Kind::Reduce(ReduceOp::Max),
            Reduction::Min { .. } => Kind::Reduce(ReduceOp::Min),
            Reduction::Prod { .. } => Kind::Reduce(ReduceOp::Prod),
            Reduction::ArgMax { .. } | Reduction::ArgMin { .. } => Kind::Opaque,
        },
        Prim::Linalg(_) | Prim::Control(_) => Kind::Opaque,
    }
}

/// How the expression being built indexes a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Map {
    /// One affine function of the domain index per dimension of the value.
    Multi(Vec<Affine>),
    /// The value's row-major flat index, as one affine function (after a reshape).
    Flat(Affine),
}

/// A value must be materialised, and why.
struct Realize(Var, String);

/// The weight of an equation in the recomputation cost model.
fn weight(p: &Prim) -> usize {
    match p {
        Prim::Elementwise(op) => match op {
            E::Exp | E::Log | E::Log1p | E::Expm1 | E::Tanh | E::Logistic | E::Sin | E::Cos | E::Pow => 8,
            E::Div | E::Sqrt | E::Rsqrt | E::Rem => 3,
            _ => 1,
        },
        _ => 0,
    }
}

/// The realized value (if any) whose cost makes recomputing it wasteful.
const RECOMPUTE_LIMIT: usize = 4;

struct Fuser<'a> {
    p: &'a Program,
    producer: Vec<Option<usize>>,
    realized: Vec<Option<String>>,
    cost: Vec<Option<usize>>,
}

/// Builds the nodes of one kernel.
#[derive(Default)]
struct KernelBuilder {
    domain: Vec<usize>,
    inputs: Vec<Var>,
    input_index: HashMap<Var, usize>,
    nodes: Vec<KNode>,
    memo: HashMap<(Var, Map), NodeId>,
    consts: HashMap<arrayjit_ir::Scalar, NodeId>,
    touched: BTreeSet<Var>,
    outputs: Vec<(KOutput, Var)>,
}

impl KernelBuilder {
    fn new(domain: &[usize]) -> KernelBuilder {
        KernelBuilder { domain: domain.to_vec(), ..Default::default() }
    }

    fn push(&mut self, node: Node, dtype: arrayjit_ir::DType) -> NodeId {
        self.nodes.push(KNode { node, dtype });
        self.nodes.len() - 1
    }

    fn constant(&mut self, s: arrayjit_ir::Scalar) -> NodeId {
        if let Some(&n) = self.consts.get(&s) {
            return n;
        }
        let n = self.push(Node::Const(s), s.dtype());
        self.consts.insert(s, n);
        n
    }

    fn identity(&self) -> Map {
        let r = self.domain.len();
        Map::Multi((0..r).map(|k| Affine { offset: 0, coeffs: (0..r).map(|d| (d == k) as i64).collect() }).collect())
    }
}

fn constant_affine(rank: usize, c: i64) -> Affine {
    Affine { offset: c, coeffs: vec![0; rank] }
}

/// `Σ stride_k · rows[k]` for a row-major array of `shape`.
fn flatten(rows: &[Affine], shape: &[usize], rank: usize) -> Affine {
    let strides = Shape::from(shape).strides();
    let mut out = constant_affine(rank, 0);
    for (row, s) in rows.iter().zip(strides) {
        out.offset += row.offset * s as i64;
        for (c, rc) in out.coeffs.iter_mut().zip(&row.coeffs) {
            *c += rc * s as i64;
        }
    }
    out
}

impl<'a> Fuser<'a> {
    fn new(p: &'a Program) -> Fuser<'a> {
        Fuser { p, producer: p.producers(), realized: vec![None; p.num_vars()], cost: vec![None; p.num_vars()] }
    }

    fn aval(&self, v: Var) -> &AVal {
        self.p.aval(v)
    }

    /// True when `v` lives in a buffer (not recomputed inside kernels).
    fn is_buffer(&self, v: Var) -> bool {
        match self.producer[v.index()] {
            None => true,
            Some(e) => kind(&self.p.eqns[e].prim) != Kind::Fusible || self.realized[v.index()].is_some(),
        }
    }

    fn cost_of(&mut self, v: Var) -> usize {
        if self.is_buffer(v) {
            return 0;
        }
        if let Some(c) = self.cost[v.index()] {
            return c;
        }
        let Some(e) = self.producer[v.index()] else { return 0 };
        let eqn = &self.p.eqns[e];
        let mut c = weight(&eqn.prim);
        for a in eqn.inputs.clone() {
            if let Atom::Var(u) = a {
                c += self.cost_of(u);
            }
        }
        self.cost[v.index()] = Some(c);
        c
    }

    /// Whether the kernel being built by `kb` could compute input `v` (its
    /// input number `k`) itself: an elementwise value of the kernel's shape,
    /// read only at the kernel's own point.
    fn inlineable(&self, v: Var, k: usize, kb: &KernelBuilder) -> bool {
        let elementwise = self.producer[v.index()].is_some_and(|e| kind(&self.p.eqns[e].prim) == Kind::Fusible);
        if !elementwise || self.aval(v).shape.0 != kb.domain {
            return false;
        }
        reads_only_at_own_point(&kb.nodes, k, &kb.domain)
    }

    /// Builds the value of atom `a` indexed by `map`.
    fn build(&mut self, kb: &mut KernelBuilder, a: &Atom, map: &Map) -> Result<NodeId, Realize> {
        match a {
            Atom::Lit(s) => Ok(kb.constant(*s)),
            Atom::Var(v) if self.is_buffer(*v) => {
                // A value this kernel already stores, read at its own point, is reused.
                let at = match map {
                    Map::Multi(rows) => flatten(rows, &self.aval(*v).shape, kb.domain.len()),
                    Map::Flat(a) => a.clone(),
                };
                if at == Affine::own_point(&kb.domain) {
                    let stored = kb.outputs.iter().find(|(o, u)| u == v && o.kind == OutputKind::Store);
                    if let Some((o, _)) = stored {
                        return Ok(o.node);
                    }
                }
                Ok(self.load(kb, *v, map))
            }
            Atom::Var(v) => self.build_producer(kb, *v, map),
        }
    }

    fn load(&self, kb: &mut KernelBuilder, v: Var, map: &Map) -> NodeId {
        let rank = kb.domain.len();
        let at = match map {
            Map::Multi(rows) => flatten(rows, &self.aval(v).shape, rank),
            Map::Flat(a) => a.clone(),
        };
        let key = (v, Map::Flat(at.clone()));
        if let Some(&n) = kb.memo.get(&key) {
            return n;
        }
        let input = match kb.input_index.get(&v) {
            Some(&i) => i,
            None => {
                kb.inputs.push(v);
                kb.input_index.insert(v, kb.inputs.len() - 1);
                kb.inputs.len() - 1
            }
        };
        let n = kb.push(Node::Load { input, at }, self.aval(v).dtype);
        kb.memo.insert(key, n);
        n
    }

    /// Builds the value computed by `v`'s producing equation.
    fn build_producer(&mut self, kb: &mut KernelBuilder, v: Var, map: &Map) -> Result<NodeId, Realize> {
        if let Some(&n) = kb.memo.get(&(v, map.clone())) {
            return Ok(n);
        }
        let Some(ei) = self.producer[v.index()] else { return Ok(self.load(kb, v, map)) };
        kb.touched.insert(v);
        let e = &self.p.eqns[ei];
        let out = self.aval(v).clone();
        let rank = kb.domain.len();
        let prim = e.prim.clone();
        let inputs = e.inputs.clone();
        let n = match &prim {
            Prim::Elementwise(op) => {
                let mut args = Vec::with_capacity(inputs.len());
                for a in &inputs {
                    let scalar = match a {
                        Atom::Var(u) => self.aval(*u).rank() == 0 && out.rank() > 0,
                        Atom::Lit(_) => true,
                    };
                    let m = if scalar { Map::Multi(vec![]) } else { map.clone() };
                    args.push(self.build(kb, a, &m)?);
                }
                kb.push(Node::Op { op: *op, args }, out.dtype)
            }
            Prim::Shape(s) => {
                let multi = || -> Result<Vec<Affine>, Realize> {
                    match map {
                        Map::Multi(rows) => Ok(rows.clone()),
                        Map::Flat(_) => {
                            Err(Realize(v, format!("{} under a reshape has no affine index map", s.name())))
                        }
                    }
                };
                match s {
                    ShapeOp::Iota { axis, dtype, .. } => match map {
                        Map::Multi(rows) => kb.push(Node::Index(rows[*axis].clone()), *dtype),
                        Map::Flat(_) => return Err(Realize(v, "iota under a reshape".into())),
                    },
                    ShapeOp::Reshape { .. } => {
                        let m = match map {
                            Map::Multi(rows) => Map::Flat(flatten(rows, &out.shape, rank)),
                            Map::Flat(a) => Map::Flat(a.clone()),
                        };
                        self.build(kb, &inputs[0], &m)?
                    }
                    ShapeOp::Squeeze { axes } => {
                        let m = match map {
                            Map::Multi(rows) => {
                                let mut src = rows.iter();
                                let n_in = out.rank() + axes.len();
                                Map::Multi(
                                    (0..n_in)
                                        .map(|k| {
                                            if axes.contains(&k) {
                                                constant_affine(rank, 0)
                                            } else {
                                                src.next().cloned().unwrap_or_else(|| constant_affine(rank, 0))
                                            }
                                        })
                                        .collect(),
                                )
                            }
                            Map::Flat(a) => Map::Flat(a.clone()),
                        };
                        self.build(kb, &inputs[0], &m)?
                    }
                    ShapeOp::ExpandDims { axes } => {
                        let m = match map {
                            Map::Multi(rows) => Map::Multi(
                                rows.iter()
                                    .enumerate()
                                    .filter(|(k, _)| !axes.contains(k))
                                    .map(|(_, r)| r.clone())
                                    .collect(),
                            ),
                            Map::Flat(a) => Map::Flat(a.clone()),
                        };
                        self.build(kb, &inputs[0], &m)?
                    }
                    ShapeOp::BroadcastInDim { dims, .. } => {
                        let rows = multi()?;
                        let Atom::Var(u) = inputs[0] else { return self.build(kb, &inputs[0], &Map::Multi(vec![])) };
                        let ushape = self.aval(u).shape.clone();
                        if ushape.numel() < out.numel() && !self.is_buffer(u) {
                            let c = self.cost_of(u);
                            if c >= RECOMPUTE_LIMIT {
                                return Err(Realize(
                                    u,
                                    format!(
                                        "costs {c} per element and is broadcast {}x",
                                        out.numel() / ushape.numel().max(1)
                                    ),
                                ));
                            }
                        }
                        let m: Vec<Affine> = dims
                            .iter()
                            .enumerate()
                            .map(|(i, &d)| if ushape[i] == 1 { constant_affine(rank, 0) } else { rows[d].clone() })
                            .collect();
                        self.build(kb, &inputs[0], &Map::Multi(m))?
                    }
                    ShapeOp::Transpose { perm } => {
                        let rows = multi()?;
                        let mut m = vec![constant_affine(rank, 0); perm.len()];
                        for (i, &pi) in perm.iter().enumerate() {
                            m[pi] = rows[i].clone();
                        }
                        self.build(kb, &inputs[0], &Map::Multi(m))?
                    }
                    ShapeOp::Slice { start, strides, .. } => {
                        let rows = multi()?;
                        let m: Vec<Affine> = rows
                            .iter()
                            .enumerate()
                            .map(|(k, r)| Affine {
                                offset: start[k] as i64 + strides[k] as i64 * r.offset,
                                coeffs: r.coeffs.iter().map(|c| c * strides[k] as i64).collect(),
                            })
                            .collect();
                        self.build(kb, &inputs[0], &Map::Multi(m))?
                    }
                    ShapeOp::Pad { low, interior, .. } => {
                        let rows = multi()?;
                        self.pad(kb, &inputs, &rows, low, interior, out.dtype)?
                    }
                    ShapeOp::Concatenate { axis } => {
                        let rows = multi()?;
                        self.concatenate(kb, &inputs, &rows, *axis, out.dtype)?
                    }
                    ShapeOp::DynamicSlice { sizes } => {
                        let rows = multi()?;
                        self.dynamic_slice(kb, &inputs, &rows, sizes)?
                    }
                    ShapeOp::DynamicUpdateSlice => {
                        let rows = multi()?;
                        self.dynamic_update_slice(kb, &inputs, &rows, map, out.dtype)?
                    }
                }
            }
            _ => return Ok(self.load(kb, v, map)),
        };
        kb.memo.insert((v, map.clone()), n);
        Ok(n)
    }

    /// The domain of a root: a realized fusible value's shape, or a
    /// reduction's input shape (a diagonal's length for a sum that only
    /// picks a diagonal, see [`Fuser::diagonal_sum`]).
    fn root_domain(&self, r: &Root) -> Vec<usize> {
        match r {
            Root::Value(v) => self.aval(*v).shape.0.clone(),
            Root::Reduce(e) => match (self.diagonal_sum(*e), &self.p.eqns[*e].inputs[0]) {
                (Some((_, n)), _) => vec![n],
                (None, Atom::Var(u)) => self.aval(*u).shape.0.clone(),
                (None, Atom::Lit(_)) => vec![],
            },
        }
    }

    /// For `reduce_sum(select(iota₀ == iota₁, X, 0))` over one axis of an
    /// n×n matrix (how `diag_part`, `trace` and the diagonal of a product
    /// trace): the matrix `X` and n. Such a sum is `X`'s diagonal, read at
    /// n points instead of summing n² (the sum of zeros and one term is the
    /// term, up to the sign of a zero).
    fn diagonal_sum(&self, e: usize) -> Option<(Atom, usize)> {
        let eqn = &self.p.eqns[e];
        let Prim::Reduce(Reduction::Sum { axes }) = &eqn.prim else { return None };
        let Atom::Var(u) = eqn.inputs[0] else { return None };
        let shape = &self.aval(u).shape;
        if axes.len() != 1 || shape.rank() != 2 || shape[0] != shape[1] || self.is_buffer(u) {
            return None;
        }
        let sel = &self.p.eqns[self.producer[u.index()]?];
        if sel.prim != Prim::Elementwise(E::Select) || !self.is_eye(&sel.inputs[0]) || !self.is_zero(&sel.inputs[2]) {
            return None;
        }
        Some((sel.inputs[1], shape[0]))
    }

    /// The equation defining variable `a`, as its primitive and operands.
    fn def(&self, a: &Atom) -> Option<(&Prim, &[Atom])> {
        match a {
            Atom::Var(v) => self.producer[v.index()].map(|e| (&self.p.eqns[e].prim, self.p.eqns[e].inputs.as_slice())),
            Atom::Lit(_) => None,
        }
    }

    fn is_eye(&self, a: &Atom) -> bool {
        crate::idioms::is_eye_mask(&|x: &Atom| self.def(x), a)
    }

    fn is_zero(&self, a: &Atom) -> bool {
        crate::idioms::is_zero(&|x: &Atom| self.def(x), a)
    }

    /// Builds a root's output into `kb`.
    fn build_root(&mut self, kb: &mut KernelBuilder, r: &Root) -> Result<(), Realize> {
        let id = kb.identity();
        match r {
            Root::Value(v) => {
                let n = self.build_producer(kb, *v, &id)?;
                kb.outputs.push((KOutput { node: n, kind: OutputKind::Store, aval: self.aval(*v).clone() }, *v));
            }
            Root::Reduce(ei) => {
                if let Some((x, _)) = self.diagonal_sum(*ei) {
                    // X at (i, i); a scalar X (select broadcasts it) is read as one.
                    let scalar = match x {
                        Atom::Var(u) => self.aval(u).rank() == 0,
                        Atom::Lit(_) => true,
                    };
                    let i = Affine { offset: 0, coeffs: vec![1] };
                    let map = if scalar { Map::Multi(vec![]) } else { Map::Multi(vec![i.clone(), i]) };
                    let n = self.build(kb, &x, &map)?;
                    let out = self.p.eqns[*ei].outputs[0];
                    kb.outputs.push((KOutput { node: n, kind: OutputKind::Store, aval: self.aval(out).clone() }, out));
                    return Ok(());
                }
                let e = &self.p.eqns[*ei];
                let (Kind::Reduce(op), Prim::Reduce(red)) = (kind(&e.prim), &e.prim) else { return Ok(()) };
                let input = e.inputs[0];
                let out = e.outputs[0];
                let n = self.build(kb, &input, &id)?;
                kb.outputs.push((
                    KOutput {
                        node: n,
                        kind: OutputKind::Reduce { op, axes: red.axes() },
                        aval: self.aval(out).clone(),
                    },
                    out,
                ));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Root {
    Value(Var),
    Reduce(usize),
}

impl Root {
    fn order(&self, f: &Fuser) -> usize {
        match self {
            Root::Value(v) => f.producer[v.index()].unwrap_or(0),
            Root::Reduce(e) => *e,
        }
    }
}

struct Group {
    domain: Vec<usize>,
    /// Whether the group reads only constants (it then runs once, when the
    /// executable is built, so it takes no root that reads anything else).
    constant: bool,
    roots: Vec<Root>,
    /// Groups this one reads from, transitively.
    ancestors: BTreeSet<usize>,
}

/// Fuses an optimised program (no `call`s) into a schedule.
pub fn fuse(p: &Program) -> Schedule {
    let mut f = Fuser::new(p);
    let mut notes = Vec::new();
    // Values that must live in buffers.
    for a in &p.outputs {
        if let Atom::Var(v) = a {
            if !f.is_buffer(*v) {
                f.realized[v.index()] = Some("it is a program output".into());
            }
        }
    }
    for e in &p.eqns {
        if kind(&e.prim) == Kind::Opaque {
            for a in &e.inputs {
                if let Atom::Var(v) = a {
                    if !f.is_buffer(*v) {
                        f.realized[v.index()] = Some(format!("it is an operand of {}", e.prim.name()));
                    }
                }
            }
        }
    }
    // Values computed from constants alone (not through loops or conditionals).
    let mut is_constant = vec![false; p.num_vars()];
    for (v, _) in &p.consts {
        is_constant[v.index()] = true;
    }
    for e in &p.eqns {
        let from_constants = !matches!(e.prim, Prim::Control(_))
            && e.inputs.iter().all(|a| match a {
                Atom::Var(u) => is_constant[u.index()],
                Atom::Lit(_) => true,
            });
        for o in &e.outputs {
            is_constant[o.index()] = from_constants;
        }
    }
    // Grouping, repeated while it discovers values that must be realized.
    let groups = loop {
        f.cost = vec![None; p.num_vars()];
        let mut roots: Vec<Root> = Vec::new();
        for (i, e) in p.eqns.iter().enumerate() {
            match kind(&e.prim) {
                Kind::Reduce(_) => roots.push(Root::Reduce(i)),
                Kind::Fusible => {
                    for o in &e.outputs {
                        if f.realized[o.index()].is_some() {
                            roots.push(Root::Value(*o));
                        }
                    }
                }
                Kind::Opaque => {}
            }
        }
        roots.sort_by_key(|r| r.order(&f));
        let mut groups: Vec<Group> = Vec::new();
        let mut producer_group: HashMap<Var, usize> = HashMap::new();
        let mut touched_by: HashMap<Var, BTreeSet<usize>> = HashMap::new();
        let mut restart = false;
        for r in &roots {
            let domain = f.root_domain(r);
            let mut scratch = KernelBuilder::new(&domain);
            if let Err(Realize(v, why)) = f.build_root(&mut scratch, r) {
                f.realized[v.index()] = Some(why);
                restart = true;
                break;
            }
            let mut ancestors = BTreeSet::new();
            for v in &scratch.inputs {
                ancestors.extend(var_ancestors(&f, *v, &producer_group, &groups));
            }
            // A root may join the kernel that computes an elementwise value it
            // reads at its own point: the value is then reused in registers,
            // not loaded, so the dependency is no reason for another kernel.
            let ancestors_if_joined = |g: usize| -> BTreeSet<usize> {
                let mut anc = BTreeSet::new();
                for (k, v) in scratch.inputs.iter().enumerate() {
                    if producer_group.get(v) == Some(&g) && f.inlineable(*v, k, &scratch) {
                        anc.extend(groups[g].ancestors.iter().copied());
                    } else {
                        anc.extend(var_ancestors(&f, *v, &producer_group, &groups));
                    }
                }
                anc
            };
            let constant = scratch.inputs.iter().all(|v| is_constant[v.index()]);
            let pick = (0..groups.len()).rev().find_map(|g| {
                if groups[g].domain != domain || groups[g].constant != constant {
                    return None;
                }
                let anc = ancestors_if_joined(g);
                (!anc.contains(&g)).then_some((g, anc))
            });
            let g = match pick {
                Some((g, anc)) => {
                    groups[g].roots.push(r.clone());
                    groups[g].ancestors.extend(anc);
                    g
                }
                None => {
                    groups.push(Group { domain: domain.clone(), constant, roots: vec![r.clone()], ancestors });
                    groups.len() - 1
                }
            };
            for (_, v) in &scratch.outputs {
                producer_group.insert(*v, g);
            }
            for v in &scratch.touched {
                touched_by.entry(*v).or_default().insert(g);
            }
        }
        if restart {
            continue;
        }
        // Expensive values recomputed by several kernels are realized once
        // instead, the cheapest first: an array computed from one realized
        // before it costs only what remains (`exp(z) − y` after `exp(z)`).
        // A scalar keeps its whole cost: a kernel over a larger domain would
        // recompute what remains at each of its points.
        let candidates: Vec<(Var, usize)> = touched_by
            .iter()
            .filter(|(v, gs)| gs.len() > 1 && f.realized[v.index()].is_none())
            .map(|(v, gs)| (*v, gs.len()))
            .collect();
        let mut shared: Vec<(usize, Var, usize)> = candidates.into_iter().map(|(v, n)| (f.cost_of(v), v, n)).collect();
        shared.sort_by_key(|&(c, v, _)| (c, v.index()));
        let mut realized_any = false;
        for (whole, v, n) in shared {
            let c = if f.aval(v).shape.rank() == 0 {
                whole
            } else {
                f.cost.iter_mut().for_each(|c| *c = None);
                f.cost_of(v)
            };
            if c >= RECOMPUTE_LIMIT {
                f.realized[v.index()] = Some(format!("it is used by {n} kernels and costs {c} per element"));
                realized_any = true;
            }
        }
        if !realized_any {
            break groups;
        }
    };
    for (i, r) in f.realized.iter().enumerate() {
        if let Some(why) = r {
            notes.push(format!("materialised %{i} {}: {why}", f.aval(Var(i as u32))));
        }
    }

    // Buffers.
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut buf_of: HashMap<Var, BufferId> = HashMap::new();
    for (v, value) in &p.consts {
        buf_of.insert(*v, buffers.len());
        buffers.push(Buffer { aval: value.aval(), kind: BufferKind::Const(value.clone()) });
    }
    for (i, v) in p.inputs.iter().enumerate() {
        buf_of.insert(*v, buffers.len());
        buffers.push(Buffer { aval: p.aval(*v).clone(), kind: BufferKind::Input(i) });
    }
    let buffer = |buffers: &mut Vec<Buffer>, buf_of: &mut HashMap<Var, BufferId>, v: Var| -> BufferId {
        *buf_of.entry(v).or_insert_with(|| {
            buffers.push(Buffer { aval: p.aval(v).clone(), kind: BufferKind::Temp });
            buffers.len() - 1
        })
    };

    // Steps with their position in program order (for a stable topological order).
    let mut steps: Vec<(usize, Step)> = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        let mut kb = KernelBuilder::new(&g.domain);
        for r in &g.roots {
            // The grouping loop built every root successfully with the same realized set.
            if f.build_root(&mut kb, r).is_err() {
                notes.push(format!("kernel {gi}: a root could not be rebuilt"));
            }
        }
        let inputs: Vec<BufferId> = kb.inputs.iter().map(|v| buffer(&mut buffers, &mut buf_of, *v)).collect();
        let outputs: Vec<BufferId> = kb.outputs.iter().map(|(_, v)| buffer(&mut buffers, &mut buf_of, *v)).collect();
        let kernel = Kernel {
            domain: g.domain.clone(),
            inputs: kb.inputs.iter().map(|v| p.aval(*v).clone()).collect(),
            nodes: kb.nodes,
            outputs: kb.outputs.into_iter().map(|(o, _)| o).collect(),
        };
        if g.roots.len() > 1 {
            notes.push(format!(
                "kernel over {:?} computes {} outputs in one pass (same domain, independent)",
                g.domain,
                g.roots.len()
            ));
        }
        let pos = g.roots.iter().map(|r| r.order(&f)).min().unwrap_or(0);
        steps.push((pos, Step::Kernel { kernel, inputs, outputs }));
    }
    for (i, e) in p.eqns.iter().enumerate() {
        if kind(&e.prim) != Kind::Opaque {
            continue;
        }
        let inputs: Vec<BufferId> = e
            .inputs
            .iter()
            .map(|a| match a {
                Atom::Var(v) => buffer(&mut buffers, &mut buf_of, *v),
                Atom::Lit(s) => {
                    buffers.push(Buffer {
                        aval: AVal::scalar(s.dtype()),
                        kind: BufferKind::Const(Arc::new(HostArray::scalar(*s))),
                    });
                    buffers.len() - 1
                }
            })
            .collect();
        let outputs: Vec<BufferId> = e.outputs.iter().map(|v| buffer(&mut buffers, &mut buf_of, *v)).collect();
        steps.push((i, Step::Prim { prim: e.prim.clone(), inputs, outputs }));
    }
    let steps = topological(steps, buffers.len());
    let outputs: Vec<OutputSource> = p
        .outputs
        .iter()
        .map(|a| match a {
            Atom::Lit(s) => OutputSource::Literal(*s),
            Atom::Var(v) => OutputSource::Buffer(buffer(&mut buffers, &mut buf_of, *v)),
        })
        .collect();
    let mut steps = steps;
    drop_dead_stores(&mut steps, &outputs, &mut notes);
    Schedule { buffers, steps, outputs, notes }
}

/// Removes kernel outputs that no step reads and the program does not
/// return: a value materialised for readers that fusion later merged into
/// its own kernel.
fn drop_dead_stores(steps: &mut [Step], outputs: &[OutputSource], notes: &mut Vec<String>) {
    let mut read: BTreeSet<BufferId> = outputs
        .iter()
        .filter_map(|o| match o {
            OutputSource::Buffer(b) => Some(*b),
            OutputSource::Literal(_) => None,
        })
        .collect();
    for s in steps.iter() {
        read.extend(s.inputs().iter().copied());
    }
    for (si, s) in steps.iter_mut().enumerate() {
        if let Step::Kernel { kernel, outputs, .. } = s {
            if outputs.len() < 2 {
                continue;
            }
            let keep: Vec<bool> = outputs.iter().map(|b| read.contains(b)).collect();
            if keep.iter().all(|k| *k) || !keep.iter().any(|k| *k) {
                continue;
            }
            let dead: Vec<BufferId> = outputs.iter().zip(&keep).filter(|(_, k)| !**k).map(|(b, _)| *b).collect();
            notes.push(format!("step {si}: dropped outputs nothing reads: {dead:?}"));
            let mut k = keep.iter();
            kernel.outputs.retain(|_| *k.next().unwrap_or(&true));
            let mut k = keep.iter();
            outputs.retain(|_| *k.next().unwrap_or(&true));
        }
    }
}

/// The kernels (groups) a buffer's value depends on, looking through library steps.
fn var_ancestors(f: &Fuser, v: Var, producer_group: &HashMap<Var, usize>, groups: &[Group]) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut stack = vec![v];
    let mut seen = BTreeSet::new();
    while let Some(v) = stack.pop() {
        if !seen.insert(v) {
            continue;
        }
        if let Some(&g) = producer_group.get(&v) {
            out.insert(g);
            out.extend(groups[g].ancestors.iter().copied());
        } else if let Some(e) = f.producer[v.index()] {
            let eqn = &f.p.eqns[e];
            if kind(&eqn.prim) == Kind::Opaque {
                stack.extend(eqn.inputs.iter().filter_map(|a| match a {
                    Atom::Var(u) => Some(*u),
                    Atom::Lit(_) => None,
                }));
            }
        }
    }
    out
}

/// Orders steps so each runs after the steps writing its inputs, otherwise by program position.
fn topological(mut steps: Vec<(usize, Step)>, num_buffers: usize) -> Vec<Step> {
    steps.sort_by_key(|(pos, _)| *pos);
    let mut writer: Vec<Option<usize>> = vec![None; num_buffers];
    for (i, (_, s)) in steps.iter().enumerate() {
        for &b in s.outputs() {
            writer[b] = Some(i);
        }
    }
    let mut done = vec![false; steps.len()];
    let mut order = Vec::with_capacity(steps.len());
    fn visit(i: usize, steps: &[(usize, Step)], writer: &[Option<usize>], done: &mut [bool], order: &mut Vec<usize>) {
        if done[i] {
            return;
        }
        done[i] = true;
        for &b in steps[i].1.inputs() {
            if let Some(w) = writer[b] {
                visit(w, steps, writer, done, order);
            }
        }
        order.push(i);
    }
    for i in 0..steps.len() {
        visit(i, &steps, &writer, &mut done, &mut order);
    }
    let mut slots: Vec<Option<Step>> = steps.into_iter().map(|(_, s)| Some(s)).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrayjit_ir::{parse, Data, HostArray};

    #[test]
    fn a_value_shared_by_kernels_is_stored_once_and_what_follows_from_it_recomputed() {
        // Both kernels read a = exp(z) and d = a − y (the second runs after a
        // sum of the first): a is stored, and d is recomputed from it, not
        // stored as well.
        let p = parse(
            "{ lambda ; z:f32[64,8] y:f32[64,8] . let
                a:f32[64,8] = exp z
                d:f32[64,8] = sub a y
                s:f32[] = reduce_sum[axes=(0,1)] d
                sb:f32[64,8] = broadcast_in_dim[shape=(64,8) broadcast_dimensions=()] s
                g:f32[64,8] = mul d sb
                h:f32[64,8] = add g a
              in (h) }",
        )
        .unwrap();
        let s = fuse(&p);
        let shared: Vec<&String> = s.notes.iter().filter(|n| n.contains("used by 2 kernels")).collect();
        assert_eq!(shared.len(), 1, "{}", s.notes.join("\n"));
        assert!(shared[0].contains("costs 8 per element"), "{}", shared[0]);
        let arg = |k: f32| HostArray::new([64, 8], Data::F32((0..512).map(|i| (i % 17) as f32 * k - 1.0).collect()));
        let args = [arg(0.1).unwrap(), arg(0.05).unwrap()];
        let want = arrayjit_interp::eval_program(&p, &args).unwrap();
        let got = s.eval_reference(&args).unwrap();
        for i in 0..want[0].numel() {
            let (g, w) = (got[0].data().get(i).as_f64(), want[0].data().get(i).as_f64());
            // The sum's order differs (f32): agreement to rounding.
            assert!((g - w).abs() <= 1e-5 * w.abs(), "element {i}: {g} vs {w}");
        }
    }
}
