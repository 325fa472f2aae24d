//! Operations whose read positions are computed rather than affine — pads
//! (with interior padding), concatenations, dynamic slices and updates —
//! built as i32 index arithmetic, clamped gathers and selects.

use super::{Fuser, KernelBuilder, Map, Realize};
use crate::kernel::{Affine, Node, NodeId};
use arrayjit_ir::prim::Elementwise as E;
use arrayjit_ir::{Atom, DType, Scalar};

impl Fuser<'_> {
    /// An i32 node of an affine function of the domain index.
    fn index_i32(&self, kb: &mut KernelBuilder, a: &Affine) -> NodeId {
        kb.push(Node::Index(a.clone()), DType::I32)
    }

    fn op(&self, kb: &mut KernelBuilder, op: E, args: Vec<NodeId>, dtype: DType) -> NodeId {
        kb.push(Node::Op { op, args }, dtype)
    }

    fn int(&self, kb: &mut KernelBuilder, v: i64) -> NodeId {
        kb.constant(Scalar::I32(v as i32))
    }

    /// `lo <= x < hi` for an i32 node.
    fn within(&self, kb: &mut KernelBuilder, x: NodeId, lo: i64, hi: i64) -> NodeId {
        let l = self.int(kb, lo);
        let h = self.int(kb, hi);
        let a = self.op(kb, E::Ge, vec![x, l], DType::Bool);
        let b = self.op(kb, E::Lt, vec![x, h], DType::Bool);
        self.op(kb, E::And, vec![a, b], DType::Bool)
    }

    fn all(&self, kb: &mut KernelBuilder, conds: Vec<NodeId>) -> Option<NodeId> {
        conds.into_iter().reduce(|a, b| self.op(kb, E::And, vec![a, b], DType::Bool))
    }

    /// The element of `x` at i32 coordinates `coords` (clamped into `x` when
    /// read), for operations whose positions are not affine. `x` must live in
    /// a buffer; a literal is its own value everywhere.
    fn gather(&mut self, kb: &mut KernelBuilder, x: &Atom, coords: &[NodeId], why: &str) -> Result<NodeId, Realize> {
        let u = match x {
            Atom::Lit(s) => return Ok(kb.constant(*s)),
            Atom::Var(u) => *u,
        };
        if !self.is_buffer(u) {
            return Err(Realize(u, format!("it is read at computed positions by {why}")));
        }
        let shape = self.aval(u).shape.clone();
        let strides = shape.strides();
        let mut flat = self.int(kb, 0);
        for (&c, &st) in coords.iter().zip(&strides) {
            let term = if st == 1 {
                c
            } else {
                let k = self.int(kb, st as i64);
                self.op(kb, E::Mul, vec![c, k], DType::I32)
            };
            flat = self.op(kb, E::Add, vec![flat, term], DType::I32);
        }
        let input = match kb.input_index.get(&u) {
            Some(&i) => i,
            None => {
                kb.inputs.push(u);
                kb.input_index.insert(u, kb.inputs.len() - 1);
                kb.inputs.len() - 1
            }
        };
        Ok(kb.push(Node::Gather { input, index: flat }, self.aval(u).dtype))
    }

    /// `pad(x, value)`: the element of `x` where the output position maps
    /// onto one, else the padding value.
    pub(super) fn pad(
        &mut self,
        kb: &mut KernelBuilder,
        ins: &[Atom],
        rows: &[Affine],
        low: &[i64],
        interior: &[usize],
        dtype: DType,
    ) -> Result<NodeId, Realize> {
        let value = self.build(kb, &ins[1], &Map::Multi(vec![]))?;
        let in_shape = self.atom_shape(&ins[0]);
        if in_shape.iter().product::<usize>() == 0 {
            return Ok(value);
        }
        let (mut coords, mut conds) = (Vec::new(), Vec::new());
        for (k, row) in rows.iter().enumerate() {
            let shifted = Affine { offset: row.offset - low[k], coeffs: row.coeffs.clone() };
            let t = self.index_i32(kb, &shifted);
            let step = interior[k] as i64 + 1;
            let q = if step == 1 {
                t
            } else {
                let s = self.int(kb, step);
                let q = self.op(kb, E::Div, vec![t, s], DType::I32);
                let r = self.op(kb, E::Rem, vec![t, s], DType::I32);
                let zero = self.int(kb, 0);
                let on_grid = self.op(kb, E::Eq, vec![r, zero], DType::Bool);
                let nonneg = self.op(kb, E::Ge, vec![t, zero], DType::Bool);
                conds.push(on_grid);
                conds.push(nonneg);
                q
            };
            conds.push(self.within(kb, q, 0, in_shape[k] as i64));
            coords.push(q);
        }
        let x = self.gather(kb, &ins[0], &coords, "pad")?;
        match self.all(kb, conds) {
            Some(c) => Ok(self.op(kb, E::Select, vec![c, x, value], dtype)),
            None => Ok(x),
        }
    }

    /// `concatenate(xs)` along `axis`: each operand where its slab begins.
    pub(super) fn concatenate(
        &mut self,
        kb: &mut KernelBuilder,
        ins: &[Atom],
        rows: &[Affine],
        axis: usize,
        dtype: DType,
    ) -> Result<NodeId, Realize> {
        let along = self.index_i32(kb, &rows[axis]);
        let mut parts: Vec<(i64, NodeId)> = Vec::new();
        let mut offset = 0i64;
        for x in ins {
            let shape = self.atom_shape(x);
            let size = shape.get(axis).copied().unwrap_or(1) as i64;
            if shape.iter().product::<usize>() > 0 {
                let mut coords = Vec::with_capacity(rows.len());
                for (k, row) in rows.iter().enumerate() {
                    coords.push(if k == axis {
                        let o = self.int(kb, offset);
                        self.op(kb, E::Sub, vec![along, o], DType::I32)
                    } else {
                        self.index_i32(kb, row)
                    });
                }
                let g = self.gather(kb, x, &coords, "concatenate")?;
                parts.push((offset + size, g));
            }
            offset += size;
        }
        let Some(&(_, mut acc)) = parts.last() else { return Ok(kb.constant(Scalar::from_f64(0.0, dtype))) };
        for &(end, g) in parts.iter().rev().skip(1) {
            let e = self.int(kb, end);
            let before = self.op(kb, E::Lt, vec![along, e], DType::Bool);
            acc = self.op(kb, E::Select, vec![before, g, acc], dtype);
        }
        Ok(acc)
    }

    /// A start index of a dynamic slice or update, clamped to `[0, max]` as the interpreter does.
    fn start(&mut self, kb: &mut KernelBuilder, a: &Atom, max: i64) -> Result<NodeId, Realize> {
        let s = self.build(kb, a, &Map::Multi(vec![]))?;
        let s = match kb.nodes[s].dtype {
            DType::I32 => s,
            _ => self.op(kb, E::Convert { to: DType::I32 }, vec![s], DType::I32),
        };
        let zero = self.int(kb, 0);
        let hi = self.int(kb, max.max(0));
        let s = self.op(kb, E::Max, vec![s, zero], DType::I32);
        Ok(self.op(kb, E::Min, vec![s, hi], DType::I32))
    }

    pub(super) fn dynamic_slice(
        &mut self,
        kb: &mut KernelBuilder,
        ins: &[Atom],
        rows: &[Affine],
        sizes: &[usize],
    ) -> Result<NodeId, Realize> {
        let shape = self.atom_shape(&ins[0]);
        let mut coords = Vec::with_capacity(rows.len());
        for (k, row) in rows.iter().enumerate() {
            let s = self.start(kb, &ins[1 + k], shape[k] as i64 - sizes[k] as i64)?;
            let i = self.index_i32(kb, row);
            coords.push(self.op(kb, E::Add, vec![i, s], DType::I32));
        }
        self.gather(kb, &ins[0], &coords, "dynamic_slice")
    }

    pub(super) fn dynamic_update_slice(
        &mut self,
        kb: &mut KernelBuilder,
        ins: &[Atom],
        rows: &[Affine],
        map: &Map,
        dtype: DType,
    ) -> Result<NodeId, Realize> {
        let base = self.build(kb, &ins[0], map)?;
        let (shape, ushape) = (self.atom_shape(&ins[0]), self.atom_shape(&ins[1]));
        if ushape.iter().product::<usize>() == 0 {
            return Ok(base);
        }
        let (mut coords, mut conds) = (Vec::new(), Vec::new());
        for (k, row) in rows.iter().enumerate() {
            let s = self.start(kb, &ins[2 + k], shape[k] as i64 - ushape[k] as i64)?;
            let i = self.index_i32(kb, row);
            let rel = self.op(kb, E::Sub, vec![i, s], DType::I32);
            conds.push(self.within(kb, rel, 0, ushape[k] as i64));
            coords.push(rel);
        }
        let u = self.gather(kb, &ins[1], &coords, "dynamic_update_slice")?;
        match self.all(kb, conds) {
            Some(c) => Ok(self.op(kb, E::Select, vec![c, u, base], dtype)),
            None => Ok(u),
        }
    }

    fn atom_shape(&self, a: &Atom) -> Vec<usize> {
        match a {
            Atom::Var(v) => self.aval(*v).shape.0.clone(),
            Atom::Lit(_) => vec![],
        }
    }
}
