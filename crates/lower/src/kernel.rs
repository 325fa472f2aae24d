//! The kernel IR: one fused loop nest over an iteration domain, whose body is
//! an expression DAG evaluated at every domain point, with outputs that are
//! stored (one element per point) or reduced over some domain axes. Backends
//! render it (Cranelift, CUDA C); `eval_reference` runs it with the
//! interpreter's scalar semantics for tests.

use arrayjit_ir::prim::Elementwise;
use arrayjit_ir::{AVal, DType, Data, HostArray, Scalar};
use std::fmt;

/// Index of a node in a kernel.
pub type NodeId = usize;

/// An affine function of the domain index: `offset + Σ coeffs[d]·i_d`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Affine {
    pub offset: i64,
    pub coeffs: Vec<i64>,
}

impl Affine {
    /// The row-major position of the domain point itself.
    pub fn own_point(domain: &[usize]) -> Affine {
        let strides = arrayjit_ir::Shape::from(domain).strides();
        Affine { offset: 0, coeffs: strides.iter().map(|&x| x as i64).collect() }
    }

    pub fn eval(&self, idx: &[usize]) -> i64 {
        self.offset + self.coeffs.iter().zip(idx).map(|(c, &i)| c * i as i64).sum::<i64>()
    }
}

/// A node of the body.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// The element of kernel input `input` at flat (row-major, in elements) position `at`.
    Load { input: usize, at: Affine },
    /// A constant.
    Const(Scalar),
    /// An affine function of the domain index, as a value (iota).
    Index(Affine),
    /// An elementwise primitive of earlier nodes.
    Op { op: Elementwise, args: Vec<NodeId> },
    /// The element of kernel input `input` at the flat position computed by
    /// node `index` (an i32), clamped into the input: positions that are not
    /// affine (pads with interior padding, concatenations, dynamic slices).
    /// Consumers select away the clamped reads they do not want.
    Gather { input: usize, index: NodeId },
}

/// Whether `nodes` (a kernel body over `domain`) read input `k` only at the
/// domain point itself: every load of it at [`Affine::own_point`], no gather.
/// Such an input's element is read in the same iteration that writes the
/// point's outputs, before them, so an output may take its place.
pub fn reads_only_at_own_point(nodes: &[KNode], k: usize, domain: &[usize]) -> bool {
    let own = Affine::own_point(domain);
    nodes.iter().all(|n| match &n.node {
        Node::Load { input, at } => *input != k || *at == own,
        Node::Gather { input, .. } => *input != k,
        Node::Const(_) | Node::Index(_) | Node::Op { .. } => true,
    })
}

/// A node with its element type.
#[derive(Clone, Debug, PartialEq)]
pub struct KNode {
    pub node: Node,
    pub dtype: DType,
}

/// How a reduction combines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
    Prod,
}

impl ReduceOp {
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::Prod => "prod",
        }
    }

    /// The value of an empty reduction.
    pub fn identity(self, dtype: DType) -> Scalar {
        match (self, dtype) {
            (ReduceOp::Sum, d) => Scalar::from_f64(0.0, d),
            (ReduceOp::Prod, d) => Scalar::from_f64(1.0, d),
            (ReduceOp::Max, DType::I32) => Scalar::I32(i32::MIN),
            (ReduceOp::Min, DType::I32) => Scalar::I32(i32::MAX),
            (ReduceOp::Max, d) => Scalar::from_f64(f64::NEG_INFINITY, d),
            (ReduceOp::Min, d) => Scalar::from_f64(f64::INFINITY, d),
        }
    }

    /// The elementwise primitive that combines two partial results.
    pub fn combine(self) -> Elementwise {
        match self {
            ReduceOp::Sum => Elementwise::Add,
            ReduceOp::Max => Elementwise::Max,
            ReduceOp::Min => Elementwise::Min,
            ReduceOp::Prod => Elementwise::Mul,
        }
    }
}

/// What an output does with its node's value.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputKind {
    /// Stored at every domain point, row-major over the domain.
    Store,
    /// Combined over `axes` of the domain; the result is row-major over the other axes.
    Reduce { op: ReduceOp, axes: Vec<usize> },
}

/// An output of a kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct KOutput {
    pub node: NodeId,
    pub kind: OutputKind,
    pub aval: AVal,
}

/// A fused loop kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub domain: Vec<usize>,
    /// The avals of the buffers read (row-major, contiguous).
    pub inputs: Vec<AVal>,
    pub nodes: Vec<KNode>,
    pub outputs: Vec<KOutput>,
}

impl Kernel {
    /// Number of domain points.
    pub fn points(&self) -> usize {
        self.domain.iter().product()
    }

    /// The same kernel over fewer, longer axes: adjacent domain axes `d` and
    /// `d+1` merge when every load, index and output walks them as one
    /// row-major axis (coefficient of `d` = coefficient of `d+1` × size of
    /// `d+1`, and each reduction reduces both or neither). A contiguous
    /// `[n, p]` kernel becomes one loop over `n·p` elements, so vector loops
    /// run without a tail per row.
    pub fn coalesced(&self) -> Kernel {
        let mut k = self.clone();
        let mut d = k.domain.len();
        while d >= 2 {
            d -= 1;
            if k.can_merge(d - 1) {
                k.merge(d - 1);
            }
        }
        k
    }

    fn can_merge(&self, d: usize) -> bool {
        let inner = self.domain[d + 1] as i64;
        let affine_ok = |a: &Affine| a.coeffs[d] == a.coeffs[d + 1] * inner;
        let nodes_ok = self.nodes.iter().all(|n| match &n.node {
            Node::Load { at, .. } => affine_ok(at),
            Node::Index(a) => affine_ok(a),
            Node::Const(_) | Node::Op { .. } | Node::Gather { .. } => true,
        });
        let outputs_ok = self.outputs.iter().all(|o| match &o.kind {
            OutputKind::Store => true,
            OutputKind::Reduce { axes, .. } => axes.contains(&d) == axes.contains(&(d + 1)),
        });
        nodes_ok && outputs_ok
    }

    fn merge(&mut self, d: usize) {
        self.domain[d] *= self.domain[d + 1];
        self.domain.remove(d + 1);
        let fold = |a: &mut Affine| {
            a.coeffs[d] = a.coeffs[d + 1];
            a.coeffs.remove(d + 1);
        };
        for n in &mut self.nodes {
            match &mut n.node {
                Node::Load { at, .. } => fold(at),
                Node::Index(a) => fold(a),
                Node::Const(_) | Node::Op { .. } | Node::Gather { .. } => {}
            }
        }
        for o in &mut self.outputs {
            if let OutputKind::Reduce { axes, .. } = &mut o.kind {
                axes.retain(|&a| a != d + 1);
                for a in axes.iter_mut() {
                    if *a > d + 1 {
                        *a -= 1;
                    }
                }
            }
        }
    }

    /// Runs the kernel with the reference interpreter's scalar semantics (slow;
    /// for tests of fusion independent of any code generator).
    pub fn eval_reference(&self, inputs: &[&HostArray]) -> Result<Vec<HostArray>, String> {
        let mut outs: Vec<Vec<Scalar>> = self
            .outputs
            .iter()
            .map(|o| match &o.kind {
                OutputKind::Store => vec![Scalar::from_f64(0.0, o.aval.dtype); o.aval.numel()],
                OutputKind::Reduce { op, .. } => vec![op.identity(o.aval.dtype); o.aval.numel()],
            })
            .collect();
        let mut idx = vec![0usize; self.domain.len()];
        for flat in 0..self.points() {
            let mut rem = flat;
            for d in (0..self.domain.len()).rev() {
                idx[d] = rem % self.domain[d];
                rem /= self.domain[d];
            }
            let mut vals: Vec<Scalar> = Vec::with_capacity(self.nodes.len());
            for n in &self.nodes {
                let v = match &n.node {
                    Node::Load { input, at } => {
                        let pos = usize::try_from(at.eval(&idx)).map_err(|_| "negative load position".to_string())?;
                        let h = inputs.get(*input).ok_or("missing input")?;
                        if pos >= h.numel() {
                            return Err(format!("load out of bounds: {pos} >= {}", h.numel()));
                        }
                        h.data().get(pos)
                    }
                    Node::Const(s) => *s,
                    Node::Index(a) => Scalar::from_f64(a.eval(&idx) as f64, n.dtype),
                    Node::Gather { input, index } => {
                        let h = inputs.get(*input).ok_or("missing input")?;
                        if h.numel() == 0 {
                            Scalar::from_f64(0.0, n.dtype)
                        } else {
                            let pos = (vals[*index].as_f64() as i64).clamp(0, h.numel() as i64 - 1);
                            h.data().get(pos as usize)
                        }
                    }
                    Node::Op { op, args } => {
                        let a: Vec<HostArray> = args.iter().map(|&i| HostArray::scalar(vals[i])).collect();
                        let r = arrayjit_interp::eval_prim(&(*op).into(), &a).map_err(|e| e.to_string())?;
                        r[0].as_scalar().ok_or("non-scalar result")?
                    }
                };
                vals.push(v);
            }
            for (o, buf) in self.outputs.iter().zip(outs.iter_mut()) {
                let v = vals[o.node];
                match &o.kind {
                    OutputKind::Store => buf[flat] = v,
                    OutputKind::Reduce { op, axes } => {
                        let mut pos = 0usize;
                        for (d, (&size, &i)) in self.domain.iter().zip(&idx).enumerate() {
                            if !axes.contains(&d) {
                                pos = pos * size + i;
                            }
                        }
                        let a = [HostArray::scalar(buf[pos]), HostArray::scalar(v)];
                        let r = arrayjit_interp::eval_prim(&op.combine().into(), &a).map_err(|e| e.to_string())?;
                        buf[pos] = r[0].as_scalar().ok_or("non-scalar result")?;
                    }
                }
            }
        }
        self.outputs
            .iter()
            .zip(outs)
            .map(|(o, v)| {
                HostArray::new(o.aval.shape.clone(), Data::from_scalars(o.aval.dtype, v)).map_err(|e| e.to_string())
            })
            .collect()
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dom: Vec<String> = self.domain.iter().map(|d| d.to_string()).collect();
        writeln!(f, "kernel over [{}]", dom.join(","))?;
        for (i, a) in self.inputs.iter().enumerate() {
            writeln!(f, "  in{i}: {a}")?;
        }
        let aff = |a: &Affine| {
            let mut s = a.offset.to_string();
            for (d, c) in a.coeffs.iter().enumerate() {
                if *c != 0 {
                    s.push_str(&format!(" + {c}·i{d}"));
                }
            }
            s
        };
        for (i, n) in self.nodes.iter().enumerate() {
            let body = match &n.node {
                Node::Load { input, at } => format!("load in{input}[{}]", aff(at)),
                Node::Gather { input, index } => format!("gather in{input}[n{index}]"),
                Node::Const(s) => format!("const {s}"),
                Node::Index(a) => format!("index {}", aff(a)),
                Node::Op { op, args } => {
                    let a: Vec<String> = args.iter().map(|x| format!("n{x}")).collect();
                    format!("{} {}", op.name(), a.join(" "))
                }
            };
            writeln!(f, "  n{i}: {} = {body}", n.dtype)?;
        }
        for (i, o) in self.outputs.iter().enumerate() {
            match &o.kind {
                OutputKind::Store => writeln!(f, "  out{i}: {} = store n{}", o.aval, o.node)?,
                OutputKind::Reduce { op, axes } => {
                    writeln!(f, "  out{i}: {} = reduce_{} n{} over {axes:?}", o.aval, op.name(), o.node)?
                }
            }
        }
        Ok(())
    }
}
